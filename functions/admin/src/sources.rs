//! Staff answer the data map's manual sources (`store: manual`): the sources no system can ask,
//! which staff look through by hand. When an export or an erasure runs it opens one task per
//! such source (`with_staff`) and the request waits until staff answer it here:
//!
//! - an access task with the person's files: `uploads` presigns one PUT per file into the
//!   export bucket's staging area, the staff member's client uploads them, and `access` checks
//!   what arrived and answers the task with it (or with `nothing_found`);
//! - an erasure task with the counts: `erasure` records what staff deleted or anonymised.
//!
//! Answering is one conditional write of the task (`change_task`): the first answer stands and a
//! second is a 409. The answer wakes the worker that waits for it (through the table's stream and
//! `dispatch`), and is in the request's audit trail with the staff member as its actor.

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::ServerSideEncryption;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::time::Duration;

use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::datamap::{Location, Source};
use privacy_shared::domain::{
    Actor, ErasedSource, Event, RequestId, RequestRecord, SourceOperation, SourceTask, StagedFile, Status,
    TaskChange,
};
use privacy_shared::outside::{Staging, file_key};
use privacy_shared::store::change_task;

use crate::{Admin, AdminError, StaffStore, staff_text, view};

/// The largest file staff may attach: an export is for the person to read, and a manual source's
/// records of one person are a spreadsheet or a few documents, not a data dump.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
pub const MAX_NAME_CHARS: usize = 120;
/// Files per call: a source's answer is a handful of files the person can open, and a call
/// naming the most files with the longest names (each character `\u`-escaped) stays under the
/// API's 16 KiB body.
pub const MAX_FILES: usize = 10;
/// How long a presigned upload may be used.
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// What an attached file may be: formats the person can open, none that a browser runs.
pub const CONTENT_TYPES: [&str; 8] = [
    "text/csv",
    "application/json",
    "application/pdf",
    "text/plain",
    "image/png",
    "image/jpeg",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

/// What staff do with a manual source's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceAction {
    /// Ask where to upload the person's files.
    Uploads,
    /// Answer the access task with the uploaded files (or nothing found).
    Access,
    /// Answer the erasure task with what was deleted and anonymised.
    Erasure,
}

impl SourceAction {
    pub(crate) fn parse(segment: &str) -> Option<SourceAction> {
        match segment {
            "uploads" => Some(SourceAction::Uploads),
            "access" => Some(SourceAction::Access),
            "erasure" => Some(SourceAction::Erasure),
            _ => None,
        }
    }
}

/// A data map id as a path may carry it (the form a job id allows): anything else is no route.
pub(crate) fn is_source_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why a file name cannot be a staged object's last segment and an archive entry's name.
pub fn file_name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some("is longer than 120 characters")
    } else if name.chars().any(char::is_control) {
        Some("contains control characters")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a path separator; give the file's name only")
    } else if name.contains("..") || name.starts_with('.') || name.ends_with('.') {
        Some("starts or ends with a dot, or contains `..`")
    } else if name != name.trim() {
        Some("starts or ends with white space")
    } else {
        None
    }
}

/// Why a size cannot be attached.
pub fn size_problem(size: u64) -> Option<&'static str> {
    match size {
        0 => Some("is 0: the file is empty"),
        s if s > MAX_FILE_BYTES => Some("is over 50 MiB"),
        _ => None,
    }
}

/// The content type, if it is one an attached file may have: exactly as listed (the upload is
/// signed for it, so S3 stores it as given).
pub fn allowed_type(content_type: &str) -> Option<&'static str> {
    CONTENT_TYPES.into_iter().find(|t| *t == content_type)
}

fn invalid_file(field: String, why: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file", format!("`{field}` {why}."))
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// A count as JSON Schema reads one: a whole number, written `3` or `3.0`.
fn whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_u64().or_else(|| {
        number.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f)).map(|f| f as u64)
    });
    whole
        .and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| serde::de::Error::custom("not a whole number in range"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToUpload {
    name: String,
    #[serde(deserialize_with = "whole")]
    size: u64,
    content_type: String,
}

#[derive(Deserialize)]
struct UploadsBody {
    files: Vec<FileToUpload>,
}

#[derive(Deserialize)]
struct AccessBody {
    files: Vec<String>,
    #[serde(default)]
    nothing_found: bool,
}

#[derive(Deserialize)]
struct ErasureBody {
    #[serde(deserialize_with = "whole")]
    deleted: u32,
    #[serde(default, deserialize_with = "whole")]
    anonymised: u32,
    kept_reason: Option<String>,
}

/// The names of the files of one call: each a safe file name, a few at most, and in an answer
/// none twice (an upload asked twice is the same upload).
fn check_names<'a>(names: impl ExactSizeIterator<Item = &'a str>, unique: bool) -> Result<(), ApiError> {
    if names.len() > MAX_FILES {
        return Err(invalid_file("files".into(), &format!("lists more than {MAX_FILES} files")));
    }
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if let Some(why) = file_name_problem(name) {
            return Err(invalid_file(format!("files[{i}].name"), why));
        }
        if unique && !seen.insert(name) {
            return Err(invalid_file(format!("files[{i}].name"), "names a file listed before"));
        }
    }
    Ok(())
}

pub(crate) async fn serve<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    id: RequestId,
    source: &str,
    action: SourceAction,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    match action {
        SourceAction::Uploads => uploads(admin, request, id, source).await,
        SourceAction::Access => access(admin, request, id, source, principal).await,
        SourceAction::Erasure => erasure(admin, request, id, source, principal).await,
    }
}

/// The request, the manual source and its open task for the action's operation, or the refusal
/// that says which of them is missing or why the task cannot be answered.
async fn open_task<S: StaffStore>(
    admin: &Admin<S>,
    id: RequestId,
    source_id: &str,
    operation: SourceOperation,
) -> Result<(RequestRecord, Source, SourceTask), AdminError> {
    let record = admin.store.get(id).await?.ok_or_else(ApiError::not_found)?;
    let map = admin.map.get().map_err(|err| {
        tracing::error!(error = %err, "the data map does not read");
        ApiError::unavailable()
    })?;
    let source = map.source(source_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_source",
            format!("The data map has no source `{source_id}`."),
        )
    })?;
    if !matches!(source.location, Location::Manual { .. }) {
        return Err(conflict(
            "not_manual",
            format!(
                "`{source_id}` is not a manual source: the system asks it itself, staff do not answer it."
            ),
        )
        .into());
    }
    let Some(task) = admin.store.task(id, operation, source_id).await? else {
        let other = match operation {
            SourceOperation::Access => SourceOperation::Erasure,
            SourceOperation::Erasure => SourceOperation::Access,
        };
        if admin.store.task(id, other, source_id).await?.is_some() {
            return Err(conflict(
                "wrong_operation",
                format!("This request asks `{source_id}` for {other}, not for {operation}."),
            )
            .into());
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_task",
            format!(
                "This request has no {operation} task for `{source_id}` (the export or the erasure opens it when it runs)."
            ),
        )
        .into());
    };
    if task.state.is_answered() {
        return Err(already_answered(source_id).into());
    }
    if record.status != Status::InProgress {
        return Err(conflict(
            "invalid_state",
            format!(
                "The request is {}, not in progress: its sources are no longer asked.",
                record.status.as_str()
            ),
        )
        .into());
    }
    Ok((record, source.clone(), task))
}

fn already_answered(source: &str) -> ApiError {
    conflict(
        "already_answered",
        format!("The task for `{source}` has been answered already; its answer stands."),
    )
}

fn staging<S>(admin: &Admin<S>) -> Result<&Staging, ApiError> {
    admin.staging.as_ref().ok_or_else(|| {
        tracing::error!("no staging bucket is configured; files cannot be attached");
        ApiError::unavailable()
    })
}

/// `POST /staff/requests/{id}/sources/{source}/uploads`: a presigned PUT per file, for the
/// file's exact size and type, encrypted as exports are.
async fn uploads<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    id: RequestId,
    source: &str,
) -> Result<Response<Body>, AdminError> {
    // Bad input is refused before anything is read, and nothing is presigned for it.
    let body: UploadsBody = read_json(request, &["files"])?;
    if body.files.is_empty() {
        return Err(invalid_file("files".into(), "is empty: name at least one file").into());
    }
    check_names(body.files.iter().map(|f| f.name.as_str()), false)?;
    let mut files = Vec::with_capacity(body.files.len());
    for (i, file) in body.files.iter().enumerate() {
        if let Some(why) = size_problem(file.size) {
            return Err(invalid_file(format!("files[{i}].size"), why).into());
        }
        let content_type = allowed_type(&file.content_type).ok_or_else(|| {
            invalid_file(
                format!("files[{i}].content_type"),
                &format!("must be one of {}", CONTENT_TYPES.join(", ")),
            )
        })?;
        files.push((file, content_type));
    }
    open_task(admin, id, source, SourceOperation::Access).await?;
    let staging = staging(admin)?;
    let mut uploads = Vec::with_capacity(files.len());
    for (file, content_type) in files {
        let key = file_key(id, source, &file.name);
        let put = staging
            .s3
            .put_object()
            .bucket(&staging.bucket)
            .key(&key)
            .content_type(content_type)
            .content_length(i64::try_from(file.size).unwrap_or(i64::MAX));
        let put = match &staging.kms_key_id {
            Some(kms) => put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms),
            None => put.server_side_encryption(ServerSideEncryption::Aes256),
        };
        let presigning = PresigningConfig::expires_in(UPLOAD_LIFETIME)
            .map_err(|_| AdminError::S3 { operation: "presign", code: "config".into() })?;
        let presigned = put
            .presigned(presigning)
            .await
            .map_err(|_| AdminError::S3 { operation: "presign", code: "presign".into() })?;
        // What the signature covers besides the URL: a client that sends another length, type or
        // encryption is refused by S3.
        let headers: Map<String, Value> =
            presigned.headers().map(|(name, value)| (name.to_ascii_lowercase(), json!(value))).collect();
        uploads.push(json!({ "name": file.name, "key": key, "method": "PUT", "url": presigned.uri(), "headers": headers }));
    }
    tracing::info!(request_id = %id, source, files = uploads.len(), "uploads presigned");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "uploads": uploads, "expires_in_seconds": UPLOAD_LIFETIME.as_secs() }),
    ))
}

/// `POST /staff/requests/{id}/sources/{source}/access`: the access task answered with the
/// files staff uploaded, each checked where it is staged, or with nothing found.
async fn access<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    id: RequestId,
    source: &str,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    let body: AccessBody = read_json(request, &["files", "nothing_found"])?;
    match (body.files.is_empty(), body.nothing_found) {
        (true, false) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "nothing_attached",
                "Name the uploaded files in `files`, or set `nothing_found` when the source holds nothing of the person.",
            )
            .into());
        }
        (false, true) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "nothing_attached",
                "`nothing_found` says the source holds nothing of the person, yet `files` names files: send one or the other.",
            )
            .into());
        }
        _ => {}
    }
    check_names(body.files.iter().map(String::as_str), true)?;
    let (record, _, task) = open_task(admin, id, source, SourceOperation::Access).await?;
    let mut staged = Vec::with_capacity(body.files.len());
    if !body.files.is_empty() {
        let staging = staging(admin)?;
        for (i, name) in body.files.iter().enumerate() {
            staged.push(staged_file(staging, id, source, i, name).await?);
        }
    }
    let change = TaskChange::Collected { records: 0, pages: 0, files: staged };
    answer(admin, &record, &task, &change, principal).await
}

/// What is staged under the file's key, checked as the upload was: present, within the size,
/// of an allowed type.
async fn staged_file(
    staging: &Staging,
    id: RequestId,
    source: &str,
    index: usize,
    name: &str,
) -> Result<StagedFile, AdminError> {
    let key = file_key(id, source, name);
    let head = match staging.s3.head_object().bucket(&staging.bucket).key(&key).send().await {
        Ok(head) => head,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
            return Err(conflict(
                "file_not_uploaded",
                format!(
                    "`files[{index}]` was not uploaded (ask for its upload with `uploads`, then upload it)."
                ),
            )
            .into());
        }
        Err(err) => {
            return Err(AdminError::S3 {
                operation: "HeadObject",
                code: privacy_shared::aws::error_code(&err),
            });
        }
    };
    // Only an upload presigned here puts a file there, signed for its size and type: this is a
    // second look, and what fails it was not uploaded as presigned.
    let not_as_presigned = || {
        conflict(
            "file_not_uploaded",
            format!("`files[{index}]` was not uploaded as presigned: its size or type is not one allowed."),
        )
    };
    let size = head.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
    if size_problem(size).is_some() {
        return Err(not_as_presigned().into());
    }
    let content_type = head.content_type().and_then(allowed_type).ok_or_else(not_as_presigned)?;
    Ok(StagedFile { name: name.to_owned(), key, size, content_type: content_type.to_owned() })
}

/// `POST /staff/requests/{id}/sources/{source}/erasure`: the erasure task answered with what
/// staff deleted and anonymised, and why anonymised records were kept.
async fn erasure<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    id: RequestId,
    source: &str,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    let body: ErasureBody = read_json(request, &["deleted", "anonymised", "kept_reason"])?;
    let kept_because = match (body.anonymised, body.kept_reason) {
        (0, None) => None,
        (0, Some(_)) => {
            return Err(ApiError::invalid_field(
                "kept_reason",
                "says why anonymised records were kept; with `anonymised` 0 there are none.",
            )
            .into());
        }
        (_, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reason_required",
                "`kept_reason` is required when records were anonymised: the requester is told why they were kept.",
            )
            .into());
        }
        // A blank one is `reason_required` too.
        (_, Some(reason)) => Some(staff_text("kept_reason", &reason, true)?.as_str().to_owned()),
    };
    let (record, source, task) = open_task(admin, id, source, SourceOperation::Erasure).await?;
    let receipt = ErasedSource {
        source: source.id.clone(),
        description: source.description.clone(),
        categories: source.disclosure.categories.iter().map(wire_name).collect(),
        deleted: body.deleted,
        anonymised: body.anonymised,
        kept_because,
    };
    answer(admin, &record, &task, &TaskChange::Erased(receipt), principal).await
}

fn wire_name<T: serde::Serialize>(term: &T) -> String {
    serde_json::to_value(term).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Writes the answer (which wakes the waiting worker) and audits it as the staff member's.
async fn answer<S: StaffStore>(
    admin: &Admin<S>,
    record: &RequestRecord,
    task: &SourceTask,
    change: &TaskChange,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    let Some(answered) = change_task(&admin.store, task, change).await? else {
        // Answered meanwhile (a second staff member, a retried call): that answer stands.
        return Err(already_answered(&task.source).into());
    };
    let now = admin.clock.now();
    let reason = format!("source={} operation={} by=staff", task.source, task.operation);
    admin
        .store
        .record_event_because(
            record,
            Event::SourceAnswered,
            now,
            Actor::Staff(principal.clone()),
            Some(reason),
        )
        .await?;
    tracing::info!(request_id = %record.id, source = %task.source, operation = %task.operation, staff = %principal, "source answered by staff");
    let map = admin.map.get().ok();
    let today = admin.calendar.local_date(now);
    let source = map.and_then(|m| m.source(&answered.source));
    Ok(json_response(StatusCode::OK, &json!({ "task": view::task(&answered, source, today) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_plain_names_of_a_readable_length() {
        for good in ["visits.csv", "Profiel export (2026).xlsx", "a", &"x".repeat(120), "rapport-été.pdf"] {
            assert_eq!(file_name_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "   ",
            "../visits.csv",
            "a/b.csv",
            "a\\b.csv",
            "..",
            ".",
            ".hidden",
            "a..b",
            "tab\there",
            "new\nline",
            " padded.csv",
            "padded.csv\u{a0}",
            "file.",
            &"x".repeat(121),
        ] {
            assert!(file_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_run_from_one_byte_to_fifty_mebibytes() {
        assert!(size_problem(0).is_some());
        assert_eq!(size_problem(1), None);
        assert_eq!(size_problem(MAX_FILE_BYTES), None);
        assert!(size_problem(MAX_FILE_BYTES + 1).is_some());
    }

    #[test]
    fn only_listed_content_types_are_allowed_exactly_as_listed() {
        assert_eq!(allowed_type("text/csv"), Some("text/csv"));
        for bad in ["text/html", "image/svg+xml", "", "text/csv2", "Text/CSV", "text/csv; charset=utf-8"] {
            assert_eq!(allowed_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_answer_naming_a_file_twice_or_too_many_files_is_refused() {
        assert!(check_names(["a.csv", "b.csv"].into_iter(), true).is_ok());
        assert_eq!(check_names(["a.csv", "a.csv"].into_iter(), true).unwrap_err().code, "invalid_file");
        assert!(check_names(["a.csv", "a.csv"].into_iter(), false).is_ok(), "one upload, asked twice");
        let many: Vec<String> = (0..=MAX_FILES).map(|i| format!("{i}.csv")).collect();
        assert_eq!(check_names(many.iter().map(String::as_str), false).unwrap_err().code, "invalid_file");
    }

    #[test]
    fn counts_are_whole_numbers_however_written() {
        #[derive(Deserialize)]
        struct Count(#[serde(deserialize_with = "whole")] u32);
        let read = |v: serde_json::Value| serde_json::from_value::<Count>(v).ok().map(|c| c.0);
        assert_eq!(read(json!(3)), Some(3));
        assert_eq!(read(json!(3.0)), Some(3));
        assert_eq!(read(json!(4294967295u64)), Some(u32::MAX));
        for bad in [json!(3.5), json!(-1), json!(4294967296u64), json!("3"), json!(null), json!(1e300)] {
            assert_eq!(read(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn source_ids_in_paths_are_data_map_ids() {
        assert!(is_source_id("website_analytics"));
        for bad in ["", "Website", "a-b", "a.b", "..", &"a".repeat(65)] {
            assert!(!is_source_id(bad), "{bad}");
        }
    }
}
