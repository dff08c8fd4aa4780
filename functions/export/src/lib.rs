//! `export`: consumes export jobs and delivers one person's complete data as a ZIP in S3:
//! `data.json` (machine-readable, for portability), `index.html` (to read: a summary of every
//! source with its first [`RECORDS_PER_PAGE`] records, linking to `sources/<source>/page-N.html`
//! for the rest), the recordings' files under `files/`, and the disclosure the policy promises
//! (categories, origins, purposes, recipients, retention; for CCPA the two separate lists of s12
//! and only the 12 months before the verified request).
//!
//! The ZIP is written as it is produced, through a small pipe, into an S3 multipart upload
//! (SSE-KMS when a key is configured), and the records are read into it a page at a time: memory
//! stays bounded by a page whatever the person holds (hundreds of thousands of chat messages, or
//! a terabyte of recordings). A ZIP's entries follow one another, so the sources are read twice:
//! once into `data.json`, once into the readable pages (a record written between the two reads
//! may be in one and not the other; `data.json` is the export's record). `data.json` and the
//! recordings are streamed into their entries, which then carry their sizes and CRC in a data
//! descriptor after the data rather than in the local header. A stored entry ending in a data
//! descriptor cannot be read by a streaming reader (nothing says where its bytes end), so the
//! streamed entries are deflated (recordings at the fastest level: they barely compress, but a
//! deflate stream marks its own end); the pages, one page of records each, are written whole,
//! sizes and CRC in the header. Each recording's entry is named by its key below the person's
//! prefix, so two recordings of the same name in different folders both go in.
//!
//! A job carries the request version that asked for it; a staff extension before the job starts
//! bumps the version without changing what was asked, so a verified request at that version or
//! later is still exported, and only a request that moved on (closed, say) drops the job. The
//! request moves verified -> in_progress before the work and in_progress -> completed only after
//! the object exists; a failure leaves it in_progress and the message is retried.
//!
//! Erasure wins over export. An erasure of the person marks them before it deletes their exports
//! (`ErasureMark`); an export whose request was verified before that mark cannot complete (the
//! store's transaction checks the mark), because the erasure may have deleted the exports before
//! this one was uploaded and its receipt says they are all gone. Such an export deletes whatever
//! it uploaded and closes its request as denied, with the reason for the requester, instead of
//! completing: a completion would bring a download link, and the person asked for their data to
//! be gone. A request verified after the mark is exported as usual.

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, DeflateOption, ZipEntryBuilder};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use chrono::{DateTime, Months, Utc};
use futures_lite::io::{AsyncWrite, AsyncWriteExt as _};
use lambda_runtime::LambdaEvent;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use privacy_shared::config::{Env, WorkerSettings};
use privacy_shared::datamap::{CcpaDisclosure, DataMap, Location, Source};
use privacy_shared::domain::{Completion, Language, Regime, RequestRecord, StaffText, Status, Transition};
use privacy_shared::jobs::{ExportJob, each_job};
use privacy_shared::sources::{
    AwsPersonalData, Person, PersonalData, SourceError, StoredObject, find_user_id, person_prefix,
};
use privacy_shared::store::{
    Change, DynamoStore, Outcome, People, Requests, StoreError, export_asked_at, transition_or_reload,
};
use privacy_shared::{Clock, ConfigError, SystemClock};

/// S3 multipart parts (the minimum is 5 MiB); with the pipe, the bound on buffered export bytes.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
const PIPE_BYTES: usize = 256 * 1024;
/// The deflate level of streamed recordings: they are compressed media already.
const FASTEST: i32 = 1;
/// The most records one readable page holds: `index.html` shows each source's first page, and
/// each further page is a file of its own, so rendering one never holds more than this.
pub const RECORDS_PER_PAGE: usize = 250;
const TEMPLATES: [(&str, &str); 4] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("records.html", include_str!("../templates/records.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("page.html", include_str!("../templates/page.html")),
];
/// `data.json` is handed to the archive in pieces about this large.
const JSON_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{operation} failed: {code}")]
    S3 { operation: &'static str, code: String },
    #[error("writing the archive failed: {0}")]
    Archive(String),
    #[error("export job is not readable")]
    BadJob,
    /// A recording changed between the listing and the download: the retry lists it again.
    #[error("a recording of source `{0}` changed while it was exported")]
    Changed(String),
    #[error("the reason for closing an overtaken export is not valid text")]
    Reason,
}

/// Why an export an erasure overtook was closed, for the requester (it is the denial's reason).
pub fn overtaken_reason(language: Language) -> &'static str {
    match language {
        Language::En => {
            "You also asked us to erase your personal data, and that erasure was carried out while \
             this copy was being prepared. The erasure comes first: the copy was deleted with the \
             rest of your data, so there is nothing of it left to send you. If you make a new \
             request, we will send you the personal data we hold about you by then."
        }
        Language::Nl => {
            "U hebt ons ook gevraagd uw persoonsgegevens te wissen, en dat is gebeurd terwijl deze \
             kopie werd samengesteld. Het wissen gaat voor: de kopie is met de rest van uw gegevens \
             verwijderd, dus wij hebben u daarvan niets meer te sturen. Als u een nieuw verzoek \
             doet, sturen wij u de persoonsgegevens die wij dan van u hebben."
        }
    }
}

fn s3_error<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    operation: &'static str,
) -> impl FnOnce(aws_smithy_runtime_api::client::result::SdkError<E, R>) -> ExportError {
    move |e| ExportError::S3 { operation, code: privacy_shared::aws::error_code(&e) }
}

fn archive_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Archive(e.to_string())
}

/// Where exports go: `exports/<request id>/export.zip` in this bucket.
#[derive(Clone, Debug)]
pub struct ExportTarget {
    pub bucket: String,
    pub kms_key_id: Option<String>,
}

pub fn object_key(request: &RequestRecord) -> String {
    format!("exports/{}/export.zip", request.id)
}

pub struct Exporter<S, P> {
    pub store: S,
    pub data: P,
    pub map: DataMap,
    pub s3: aws_sdk_s3::Client,
    pub target: ExportTarget,
    pub clock: Arc<dyn Clock>,
}

impl Exporter<DynamoStore, AwsPersonalData> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = WorkerSettings::export(&Env::process())?;
        Ok(Exporter::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: WorkerSettings, clock: Arc<dyn Clock>) -> Self {
        let kms_key_id = settings.export_kms_key_id.clone();
        let worker = privacy_shared::deps::SourceWorker::new(sdk, settings);
        Exporter {
            store: worker.store,
            data: worker.data,
            map: worker.map,
            s3: worker.s3,
            target: ExportTarget { bucket: worker.export_bucket, kms_key_id },
            clock,
        }
    }
}

pub async fn handle<S: Requests + People, P: PersonalData>(
    exporter: &Exporter<S, P>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    Ok(each_job(event.payload, |job: ExportJob| async move { export(exporter, &job).await }).await)
}

/// Runs one job to completion (or leaves the request in progress for the retry).
pub async fn export<S: Requests + People, P: PersonalData>(
    exporter: &Exporter<S, P>,
    job: &ExportJob,
) -> Result<(), ExportError> {
    let Some(mut request) = exporter.store.get(job.request_id).await? else {
        tracing::warn!(request_id = %job.request_id, "export job for an unknown request");
        return Ok(());
    };
    match request.status {
        // Later versions of a verified request (a staff extension) still ask for this export.
        Status::Verified if request.version >= job.version => {}
        Status::InProgress => {} // a retry of a job that started
        _ => {
            tracing::info!(request_id = %request.id, status = %request.status, "nothing to export");
            return Ok(());
        }
    }
    // Saves the work only: the completion's own condition is what keeps an overtaken export out.
    if overtaken(exporter, &request).await? {
        return withdraw(exporter, &request).await;
    }
    if request.status == Status::Verified {
        request = start(exporter, &request).await?;
    }
    let plan = plan(exporter, &request).await?;
    write_archive(exporter, &request, &plan).await?;
    let change = Change::system(Transition::Complete(Completion::Exported), exporter.clock.now());
    match exporter.store.transition(&request, change).await {
        Ok(_) => {
            tracing::info!(request_id = %request.id, "export completed");
            Ok(())
        }
        // Another delivery completed it, or an erasure of the person overtook it (the store
        // refuses the completion then).
        Err(StoreError::Conflict) => {
            if overtaken(exporter, &request).await? {
                return withdraw(exporter, &request).await;
            }
            tracing::info!(request_id = %request.id, "export completed by another delivery");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether an erasure of the person began deleting their exports after this request was verified.
async fn overtaken<S: Requests + People, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<bool, ExportError> {
    let mark = exporter.store.erasure_mark(&request.email.subject_key()).await?;
    Ok(mark.is_some_and(|m| m.overtakes(export_asked_at(request))))
}

/// Erasure wins: deletes every version of whatever this export uploaded, closes the request as
/// denied with the reason (never completed, which would bring a download link), and removes what
/// the request still holds of the person, download links included.
async fn withdraw<S: Requests + People, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<(), ExportError> {
    let prefix = format!("exports/{}/", request.id);
    privacy_shared::sources::delete_all_versions(&exporter.s3, &exporter.target.bucket, &prefix).await?;
    let reason = StaffText::parse(overtaken_reason(request.language)).map_err(|_| ExportError::Reason)?;
    let change = Change::system(Transition::Deny { reason }, exporter.clock.now());
    match transition_or_reload(&exporter.store, request, change).await? {
        // Still open at another version (a staff extension): the retry closes it from there.
        Outcome::Overtaken(Some(now)) if now.status.is_open() => return Err(StoreError::Conflict.into()),
        Outcome::Applied(_) | Outcome::Overtaken(_) => {}
    }
    exporter.store.scrub_request(request.id).await?;
    tracing::info!(request_id = %request.id, "export withdrawn: an erasure of the person overtook it");
    Ok(())
}

async fn start<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<RequestRecord, ExportError> {
    let change = Change::system(Transition::StartWork, exporter.clock.now());
    match transition_or_reload(&exporter.store, request, change).await? {
        Outcome::Applied(started) => Ok(started),
        // A concurrent delivery started it: carry on from the stored state.
        Outcome::Overtaken(now) => now.ok_or(ExportError::BadJob),
    }
}

/// What the archive is made of, known before any byte of it is written: whose data, which
/// window, when, and the recordings (one entry each; `data.json` and the index list them). The
/// records themselves are read while the archive is written, a page at a time.
pub struct Plan {
    person: Person,
    /// CCPA: the start of the 12 months before the request; none for other regimes.
    since: Option<DateTime<Utc>>,
    asked_at: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    pub files: Vec<ArchivedFile>,
    /// The listing of each object source, as `data.json` and the index show it.
    listings: BTreeMap<String, Vec<Value>>,
}

/// One recording and where it goes in the archive.
#[derive(Clone, Debug)]
pub struct ArchivedFile {
    pub path: String,
    pub source_id: String,
    pub object: StoredObject,
}

/// The archive path of an object: its key below the person's prefix (`relative`), in its
/// source's folder. Segments an extractor could resolve outside that folder (`..`, `.`, empty)
/// are dropped and backslashes replaced; should two keys still come to one path (`a//b.mp4` and
/// `a/b.mp4`), the later one gets a numbered suffix, so every entry name is unique and the same
/// listing always gives the same names.
pub fn entry_path(source_id: &str, relative: &str, taken: &mut BTreeSet<String>) -> String {
    let segments: Vec<String> = relative
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .map(|s| s.replace('\\', "_"))
        .collect();
    let name = if segments.is_empty() { "file".to_owned() } else { segments.join("/") };
    let mut path = format!("files/{source_id}/{name}");
    let mut n = 2;
    while taken.contains(&path) {
        let (folder, file) = name.rsplit_once('/').map_or(("", name.as_str()), |(d, f)| (d, f));
        let numbered = match file.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
            _ => format!("{file} ({n})"),
        };
        let folder = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        path = format!("files/{source_id}/{folder}{numbered}");
        n += 1;
    }
    taken.insert(path.clone());
    path
}

fn within(record: &Value, attribute: Option<&str>, since: Option<DateTime<Utc>>) -> bool {
    let (Some(attribute), Some(since)) = (attribute, since) else { return true };
    match record.get(attribute).and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(at) => at >= since,
        // Undated records cannot be shown to be older: they are included.
        None => true,
    }
}

fn names<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    let set: BTreeSet<String> =
        items.into_iter().filter_map(|i| serde_json::to_value(i).ok()?.as_str().map(str::to_owned)).collect();
    set.into_iter().map(Value::String).collect()
}

/// The policy's disclosure for the sources that hold this person's data.
pub fn disclosure(sources: &[&Source], regime: Regime) -> Value {
    let d = |f: fn(&Source) -> Vec<Value>| -> Vec<Value> {
        let set: BTreeSet<String> =
            sources.iter().flat_map(|s| f(s)).filter_map(|v| v.as_str().map(str::to_owned)).collect();
        set.into_iter().map(Value::String).collect()
    };
    let mut out = json!({
        "categories": d(|s| names(&s.disclosure.categories)),
        "origins": d(|s| names(&s.disclosure.origins)),
        "purposes": d(|s| names(&s.disclosure.purposes)),
        "recipients": d(|s| names(&s.disclosure.recipients)),
        "retention": sources.iter().map(|s| json!({"source": s.id, "retention": s.disclosure.retention})).collect::<Vec<_>>(),
    });
    if regime == Regime::Ccpa {
        let list = |which: CcpaDisclosure| {
            let chosen: Vec<&&Source> =
                sources.iter().filter(|s| s.disclosure.ccpa_disclosure == which).collect();
            json!({
                "categories": names(chosen.iter().flat_map(|s| s.disclosure.ccpa_categories.iter())),
                "recipients": names(chosen.iter().flat_map(|s| s.disclosure.recipients.iter())),
            })
        };
        out["ccpa"] = json!({
            "sold_or_shared": list(CcpaDisclosure::SoldOrShared),
            "business_purpose": list(CcpaDisclosure::BusinessPurpose),
        });
    }
    out
}

/// Who, which window, and the recordings to stream.
pub async fn plan<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<Plan, ExportError> {
    let person = Person {
        email: request.email.clone(),
        user_id: find_user_id(&exporter.data, &exporter.map, &request.email).await?,
    };
    let asked_at = request.verified_at.unwrap_or(request.received_at);
    let since =
        (request.regime == Regime::Ccpa).then(|| asked_at.checked_sub_months(Months::new(12))).flatten();
    let mut files = Vec::new();
    let mut listings = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for source in exporter.map.sources() {
        let Some(key) = person.key_for(source.find_by()) else { continue };
        let Location::Objects { .. } = &source.location else { continue };
        let objects: Vec<StoredObject> = exporter
            .data
            .objects(source, key)
            .await?
            .into_iter()
            .filter(|o| since.is_none_or(|s| o.last_modified.is_none_or(|m| m >= s)))
            .collect();
        let prefix = person_prefix(source, key)?;
        let listed: Vec<Value> = objects
            .into_iter()
            .map(|o| {
                let relative = o.key.strip_prefix(&prefix).unwrap_or(&o.key);
                let path = entry_path(&source.id, relative, &mut taken);
                let listed = json!({"path": path, "size": o.size, "last_modified": o.last_modified});
                files.push(ArchivedFile { path, source_id: source.id.clone(), object: o });
                listed
            })
            .collect();
        listings.insert(source.id.clone(), listed);
    }
    Ok(Plan { person, since, asked_at, generated_at: exporter.clock.now(), files, listings })
}

/// `value` as pretty JSON whose lines after the first are indented `depth` levels, to sit at
/// that depth in `data.json`. JSON strings hold no raw newline, so every newline is the layout's.
fn pretty_at(value: &Value, depth: usize) -> Result<String, ExportError> {
    let text = serde_json::to_string_pretty(value).map_err(archive_error)?;
    Ok(text.replace('\n', &format!("\n{}", "  ".repeat(depth))))
}

/// Writes `data.json` into the archive as the sources are read, a page at a time: the same
/// document a whole `serde_json` value would be, but never more than a page of it in memory.
/// Returns the disclosure for the sources that hold the person's data (it ends the document;
/// the index shows it too).
async fn write_data_json<S: Requests, P: PersonalData, W: AsyncWrite + Unpin>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
    zip: &mut ZipFileWriter<W>,
) -> Result<Value, ExportError> {
    let head = json!({
        "id": request.id, "kind": request.kind, "regime": request.regime,
        "received_at": request.received_at, "verified_at": request.verified_at,
        "generated_at": plan.generated_at,
        "period": plan.since.map(|s| json!({"from": s, "to": plan.asked_at})),
    });
    let mut entry = zip
        .write_entry_stream(ZipEntryBuilder::new("data.json".into(), Compression::Deflate))
        .await
        .map_err(archive_error)?;
    let mut out = format!(
        "{{\n  \"request\": {},\n  \"subject\": {},\n  \"sources\": {{",
        pretty_at(&head, 1)?,
        pretty_at(&json!({"email": request.email.as_str()}), 1)?,
    );
    let mut with_data: Vec<&Source> = Vec::new();
    let mut first_source = true;
    for source in exporter.map.sources() {
        let Some(key) = plan.person.key_for(source.find_by()) else { continue };
        out.push_str(if first_source { "\n    " } else { ",\n    " });
        first_source = false;
        out.push_str(&format!(
            "{}: {{\n      \"description\": {},\n",
            json!(source.id),
            json!(source.description)
        ));
        match &source.location {
            Location::Table { time_attribute, .. } => {
                out.push_str("      \"records\": [");
                let mut count = 0u64;
                let mut cursor = None;
                loop {
                    let page = exporter.data.records_page(source, key, cursor.take()).await?;
                    for record in
                        page.records.iter().filter(|r| within(r, time_attribute.as_deref(), plan.since))
                    {
                        out.push_str(if count == 0 { "\n        " } else { ",\n        " });
                        out.push_str(&pretty_at(record, 4)?);
                        count += 1;
                        if out.len() >= JSON_CHUNK {
                            entry.write_all(out.as_bytes()).await.map_err(archive_error)?;
                            out.clear();
                        }
                    }
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                out.push_str(if count == 0 { "]\n    }" } else { "\n      ]\n    }" });
                if count > 0 {
                    with_data.push(source);
                }
            }
            Location::Objects { .. } => {
                let listed = plan.listings.get(&source.id).cloned().unwrap_or_default();
                if !listed.is_empty() {
                    with_data.push(source);
                }
                out.push_str(&format!("      \"files\": {}\n    }}", pretty_at(&Value::Array(listed), 3)?));
            }
        }
    }
    let disclosure = disclosure(&with_data, request.regime);
    out.push_str(if first_source { "},\n" } else { "\n  },\n" });
    out.push_str(&format!("  \"disclosure\": {}\n}}", pretty_at(&disclosure, 1)?));
    entry.write_all(out.as_bytes()).await.map_err(archive_error)?;
    entry.close().await.map_err(archive_error)?;
    Ok(disclosure)
}

/// The human-readable pages' words, in the request's language.
fn texts(language: Language) -> Value {
    match language {
        Language::Nl => json!({
            "title": "Uw persoonsgegevens",
            "intro": "Dit zijn de persoonsgegevens die wij over u bewaren, voor verzoek",
            "generated": "Samengesteld op", "period": "Periode:",
            "machine": "Dezelfde gegevens staan machineleesbaar in data.json; opnames staan in de map files.",
            "nothing": "Geen gegevens.", "disclosure": "Wat wij met deze gegevens doen",
            "categories": "Categorieën", "origins": "Bronnen", "purposes": "Doelen", "recipients": "Ontvangers",
            "sold": "Verkocht of gedeeld", "business": "Verstrekt voor een zakelijk doel",
            "retention": "Bewaartermijnen",
            "shown": "Hier staan de eerste", "of": "van de", "records": "gegevens", "more": "De rest staat op",
            "page": "pagina", "page_heading": "Pagina", "back": "Terug naar het overzicht",
            "previous": "Vorige pagina", "next": "Volgende pagina",
        }),
        Language::En => json!({
            "title": "Your personal data",
            "intro": "This is the personal data we hold about you, for request",
            "generated": "Compiled on", "period": "Period:",
            "machine": "The same data is in data.json, machine-readable; recordings are in the files folder.",
            "nothing": "No data.", "disclosure": "What we do with this data",
            "categories": "Categories", "origins": "Sources", "purposes": "Purposes", "recipients": "Recipients",
            "sold": "Sold or shared", "business": "Disclosed for a business purpose",
            "retention": "Retention",
            "shown": "Shown here are the first", "of": "of", "records": "records", "more": "The rest are on",
            "page": "page", "page_heading": "Page", "back": "Back to the overview",
            "previous": "Previous page", "next": "Next page",
        }),
    }
}

fn templates() -> Result<minijinja::Environment<'static>, ExportError> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(archive_error)?;
    }
    Ok(env)
}

/// A record as the pages show it: every value as text.
fn readable(record: &Value) -> Value {
    let flat: Map<String, Value> = record
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (k.clone(), Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Object(flat)
}

/// One source as the index shows it: its first page of records (or its files), how many records
/// it has and how many pages they fill.
#[derive(serde::Serialize)]
struct Summary {
    id: String,
    description: String,
    count: u64,
    pages: usize,
    records: Vec<Value>,
    files: Option<Vec<Value>>,
}

/// Writes the readable pages of every table source (its second page on; the first is the
/// index's) as its records are read, one page in memory at a time; returns what the index shows.
async fn write_pages<S: Requests, P: PersonalData, W: AsyncWrite + Unpin>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
    env: &minijinja::Environment<'static>,
    zip: &mut ZipFileWriter<W>,
) -> Result<Vec<Summary>, ExportError> {
    let t = minijinja::Value::from_serialize(texts(request.language));
    let mut summaries = Vec::new();
    for source in exporter.map.sources() {
        let Some(key) = plan.person.key_for(source.find_by()) else { continue };
        let mut summary = Summary {
            id: source.id.clone(),
            description: source.description.clone(),
            count: 0,
            pages: 0,
            records: Vec::new(),
            files: None,
        };
        let time_attribute = match &source.location {
            Location::Table { time_attribute, .. } => time_attribute.as_deref(),
            Location::Objects { .. } => {
                summary.files = plan.listings.get(&source.id).cloned();
                summaries.push(summary);
                continue;
            }
        };
        // The page being filled; it is written once a record for the next one turns up (so it
        // knows it has a next page) or the records end.
        let mut current: Vec<Value> = Vec::new();
        let mut cursor = None;
        loop {
            let page = exporter.data.records_page(source, key, cursor.take()).await?;
            for record in page.records.iter().filter(|r| within(r, time_attribute, plan.since)) {
                if current.len() == RECORDS_PER_PAGE {
                    summary.pages += 1;
                    let full = std::mem::take(&mut current);
                    write_page(env, &t, request, &mut summary, full, true, zip).await?;
                }
                current.push(readable(record));
                summary.count += 1;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if !current.is_empty() {
            summary.pages += 1;
            write_page(env, &t, request, &mut summary, current, false, zip).await?;
        }
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Page `summary.pages` of a source: the first stays with the summary for the index, the
/// others become `sources/<source>/page-N.html`.
async fn write_page<W: AsyncWrite + Unpin>(
    env: &minijinja::Environment<'static>,
    t: &minijinja::Value,
    request: &RequestRecord,
    summary: &mut Summary,
    records: Vec<Value>,
    has_next: bool,
    zip: &mut ZipFileWriter<W>,
) -> Result<(), ExportError> {
    let number = summary.pages;
    if number == 1 {
        summary.records = records;
        return Ok(());
    }
    // The first page is the index's.
    let previous =
        if number > 2 { format!("page-{}.html", number - 1) } else { "../../index.html".to_owned() };
    let html = env
        .get_template("page.html")
        .and_then(|tpl| {
            tpl.render(minijinja::context! {
                lang => request.language.as_str(),
                t => t.clone(),
                description => &summary.description,
                number => number,
                previous => previous,
                next => has_next.then(|| format!("page-{}.html", number + 1)),
                records => minijinja::Value::from_serialize(&records),
            })
        })
        .map_err(archive_error)?;
    let name = format!("sources/{}/page-{number}.html", summary.id);
    zip.write_entry_whole(ZipEntryBuilder::new(name.into(), Compression::Deflate), html.as_bytes())
        .await
        .map_err(archive_error)
}

fn render_index(
    env: &minijinja::Environment<'static>,
    request: &RequestRecord,
    plan: &Plan,
    summaries: &[Summary],
    disclosure: &Value,
) -> Result<String, ExportError> {
    env.get_template("index.html")
        .and_then(|tpl| {
            tpl.render(minijinja::context! {
                lang => request.language.as_str(),
                t => minijinja::Value::from_serialize(texts(request.language)),
                request_id => request.id.to_string(),
                generated_at => plan.generated_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                period => plan.since.map(|s| json!({"from": s, "to": plan.asked_at})),
                sources => minijinja::Value::from_serialize(summaries),
                disclosure => minijinja::Value::from_serialize(disclosure),
            })
        })
        .map_err(archive_error)
}

async fn write_archive<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
) -> Result<(), ExportError> {
    let (zip_side, upload_side) = tokio::io::duplex(PIPE_BYTES);
    let key = object_key(request);
    let upload = upload_multipart(exporter.s3.clone(), exporter.target.clone(), key, upload_side);
    let produce = async {
        let env = templates()?;
        let mut zip = ZipFileWriter::with_tokio(zip_side);
        let disclosure = write_data_json(exporter, request, plan, &mut zip).await?;
        let summaries = write_pages(exporter, request, plan, &env, &mut zip).await?;
        let index = render_index(&env, request, plan, &summaries, &disclosure)?;
        drop(summaries);
        zip.write_entry_whole(
            ZipEntryBuilder::new("index.html".into(), Compression::Deflate),
            index.as_bytes(),
        )
        .await
        .map_err(archive_error)?;
        for file in &plan.files {
            let object = &file.object;
            let got = exporter
                .s3
                .get_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .send()
                .await
                .map_err(s3_error("GetObject"))?;
            // Streamed, so sizes and CRC follow the data: deflated, so a streaming reader finds
            // where the data ends (see the module docs).
            let builder = ZipEntryBuilder::new(file.path.clone().into(), Compression::Deflate)
                .deflate_option(DeflateOption::Other(FASTEST));
            let mut entry = zip.write_entry_stream(builder).await.map_err(archive_error)?;
            let mut body = got.body;
            let mut written = 0u64;
            while let Some(chunk) = body.try_next().await.map_err(archive_error)? {
                written += chunk.len() as u64;
                entry.write_all(&chunk).await.map_err(archive_error)?;
            }
            entry.close().await.map_err(archive_error)?;
            // data.json gives the listed size: an archive that says otherwise is not written.
            if written != object.size {
                return Err(ExportError::Changed(file.source_id.clone()));
            }
        }
        let mut inner = zip.close().await.map_err(archive_error)?.into_inner();
        inner.shutdown().await.map_err(archive_error)?;
        Ok::<(), ExportError>(())
    };
    let (produced, uploaded) = tokio::join!(produce, upload);
    produced.and(uploaded)
}

/// Reads the archive from the pipe in `PART_SIZE` parts and uploads them; aborts the upload on
/// any failure so no partial object is ever visible.
async fn upload_multipart(
    s3: aws_sdk_s3::Client,
    target: ExportTarget,
    key: String,
    mut pipe: tokio::io::DuplexStream,
) -> Result<(), ExportError> {
    let mut create =
        s3.create_multipart_upload().bucket(&target.bucket).key(&key).content_type("application/zip");
    create = match &target.kms_key_id {
        Some(kms) => create.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms),
        None => create.server_side_encryption(ServerSideEncryption::Aes256),
    };
    let created = create.send().await.map_err(s3_error("CreateMultipartUpload"))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = async {
        let mut parts = Vec::new();
        let mut buffer = vec![0u8; PART_SIZE];
        loop {
            let mut filled = 0;
            while filled < PART_SIZE {
                let n = pipe.read(&mut buffer[filled..]).await.map_err(archive_error)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 && !parts.is_empty() {
                break;
            }
            let number = parts.len() as i32 + 1;
            let part = s3
                .upload_part()
                .bucket(&target.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(buffer[..filled].to_vec().into())
                .send()
                .await
                .map_err(s3_error("UploadPart"))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
            if filled < PART_SIZE {
                break;
            }
        }
        s3.complete_multipart_upload()
            .bucket(&target.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(s3_error("CompleteMultipartUpload"))?;
        Ok::<(), ExportError>(())
    }
    .await;
    if result.is_err() {
        // Drain nothing more; drop the pipe so the producer stops, and discard the parts.
        drop(pipe);
        let _ =
            s3.abort_multipart_upload().bucket(&target.bucket).key(&key).upload_id(&upload_id).send().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_outside_the_ccpa_window_are_left_out_and_undated_ones_kept() {
        let since = DateTime::parse_from_rfc3339("2025-11-28T00:00:00Z").unwrap().with_timezone(&Utc);
        assert!(within(&json!({"at": "2026-01-01T00:00:00Z"}), Some("at"), Some(since)));
        assert!(!within(&json!({"at": "2025-11-27T23:59:59Z"}), Some("at"), Some(since)));
        assert!(within(&json!({"other": 1}), Some("at"), Some(since)));
        assert!(within(&json!({"at": "2020-01-01T00:00:00Z"}), Some("at"), None), "no window outside CCPA");
    }

    #[test]
    fn entry_names_keep_the_folders_stay_inside_the_source_folder_and_never_repeat() {
        let mut taken = BTreeSet::new();
        let mut path = |relative: &str| entry_path("recordings", relative, &mut taken);
        assert_eq!(path("2026/a.mp4"), "files/recordings/2026/a.mp4");
        assert_eq!(path("2025/a.mp4"), "files/recordings/2025/a.mp4");
        assert_eq!(path("2026//a.mp4"), "files/recordings/2026/a (2).mp4");
        assert_eq!(path("2026/./a.mp4"), "files/recordings/2026/a (3).mp4");
        assert_eq!(path("../../etc/passwd"), "files/recordings/etc/passwd");
        assert_eq!(path(".."), "files/recordings/file");
        assert_eq!(path("notes"), "files/recordings/notes");
        assert_eq!(path("notes/"), "files/recordings/notes (2)");
        assert_eq!(path("a\\..\\b.mp4"), "files/recordings/a_.._b.mp4");
    }

    #[test]
    fn the_reason_an_overtaken_export_gives_is_valid_text_in_every_language() {
        for language in [Language::En, Language::Nl] {
            assert!(StaffText::parse(overtaken_reason(language)).is_ok(), "{language:?}");
        }
    }

    #[test]
    fn the_ccpa_disclosure_keeps_the_two_lists_apart() {
        let map = DataMap::builtin().unwrap();
        let sources: Vec<&Source> = map.sources().iter().collect();
        let d = disclosure(&sources, Regime::Ccpa);
        let sold = &d["ccpa"]["sold_or_shared"]["categories"];
        assert!(sold.as_array().unwrap().contains(&json!("commercial_information")), "{d}");
        assert!(
            d["ccpa"]["business_purpose"]["categories"]
                .as_array()
                .unwrap()
                .contains(&json!("sensitive_personal_information"))
        );
        assert!(disclosure(&sources, Regime::Gdpr).get("ccpa").is_none());
        assert_eq!(d["retention"].as_array().unwrap().len(), map.sources().len());
    }
}
