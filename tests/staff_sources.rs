//! Staff answer the data map's manual sources through the real staff API handler, against the
//! emulator: the files of an access task are uploaded with presigned PUTs into the export
//! bucket's staging area and named in the answer, an erasure task is answered with its counts;
//! each task is answered once, the answer wakes the waiting worker, and staff are its actor in
//! the audit trail.

use aws_sdk_s3::types::ServerSideEncryption;
use chrono::Days;
use serde_json::{Value, json};
use std::path::Path;

use crate::support::*;
use privacy_shared::Clock;
use privacy_shared::domain::{
    Actor, Event, RequestId, SourceOperation, SourceTask, StagedFile, TaskState, Transition,
};
use privacy_shared::outside::file_key;
use privacy_shared::store::{Change, SourceTasks};

const SOURCE: &str = "website_analytics";
const INSTRUCTIONS: &str = "search the visitor profiles";

struct Manual {
    stack: Stack,
    api: AwsAdmin,
    s3: aws_sdk_s3::Client,
    bucket: String,
    doc: Value,
}

/// A stack whose staff API sees the whole data map (manual sources too) and stages files in a
/// bucket of the test's own.
async fn manual() -> Manual {
    let stack = Stack::new().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("staging-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let env = stack.env(&[
        ("DATA_MAP_SCOPE", "all".to_owned()),
        ("EXPORT_BUCKET", bucket.clone()),
        ("S3_FORCE_PATH_STYLE", "true".to_owned()),
    ]);
    let settings = privacy_shared::config::AdminSettings::load(&env).unwrap();
    let api = admin::Admin::with_sdk(&stack.sdk, settings, stack.clock.clone());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/staff-openapi.yaml");
    let doc = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Manual { stack, api, s3, bucket, doc }
}

/// A request in progress (the export or the erasure started) whose task for `source` waits for
/// staff, as the worker opens it.
async fn waiting_for_staff(m: &Manual, kind: &str, operation: SourceOperation, source: &str) -> RequestId {
    let id = verified_request(&m.stack, &unique_address("manual"), kind, "NL").await;
    let store = m.stack.deps().store;
    let record = store.get(id).await.unwrap().unwrap();
    let now = m.stack.clock.now();
    store.transition(&record, Change::new(Transition::StartWork, now, Actor::System)).await.unwrap();
    let task = SourceTask {
        request_id: id,
        operation,
        source: source.to_owned(),
        answer_by: record.due_on.checked_sub_days(Days::new(5)).unwrap(),
        opened_at: now,
        state: TaskState::WithStaff,
        version: 1,
        wakes: 0,
        attempts: 0,
        late: false,
    };
    store.open_task(&task).await.unwrap();
    id
}

async fn task(m: &Manual, id: RequestId, operation: SourceOperation) -> SourceTask {
    m.stack.deps().store.task(id, operation, SOURCE).await.unwrap().expect("the task")
}

/// A staff call whose answer is checked against the staff OpenAPI document.
async fn call(m: &Manual, path: &str, template: &str, body: Option<Value>) -> (u16, Value) {
    let method = if body.is_some() { "POST" } else { "GET" };
    let (status, answer) = staff(&m.api, method, path, body).await;
    assert_documented(&m.doc, template, &method.to_lowercase(), status, &answer);
    (status, answer)
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => resolve(doc, doc.pointer(pointer.trim_start_matches('#')).expect("ref resolves")),
        None => value,
    }
}

fn assert_documented(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let response = doc["paths"][path][method]["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {path} does not document {status}"));
    let schema = resolve(doc, response)["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status}: the body schema is a named component"))
        .to_owned();
    let mut root = doc.clone();
    root.as_object_mut().unwrap().insert("$ref".into(), json!(schema));
    let validator = jsonschema::validator_for(&root).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {body} does not match: {errors:?}");
}

const UPLOADS: &str = "/staff/requests/{id}/sources/{source}/uploads";
const ACCESS: &str = "/staff/requests/{id}/sources/{source}/access";
const ERASURE: &str = "/staff/requests/{id}/sources/{source}/erasure";

fn path(id: RequestId, source: &str, action: &str) -> String {
    format!("/staff/requests/{id}/sources/{source}/{action}")
}

/// PUTs `bytes` to an upload the staff API handed out, with its headers (or overrides).
async fn put(upload: &Value, bytes: Vec<u8>, overrides: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().put(upload["url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        if overrides.iter().all(|(n, _)| !n.eq_ignore_ascii_case(name)) {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    for (name, value) in overrides {
        request = request.header(*name, *value);
    }
    request.body(bytes).send().await.unwrap()
}

#[tokio::test]
async fn staff_attach_a_manual_sources_files_and_the_answer_wakes_the_export_once() {
    let m = manual().await;
    let id = waiting_for_staff(&m, "access", SourceOperation::Access, SOURCE).await;
    let csv = b"date,page,ip\n2026-11-01,/pricing,192.0.2.1\n".to_vec();
    let pdf = b"%PDF-1.4 a profile".to_vec();

    let (status, shown) = call(&m, &format!("/staff/requests/{id}"), "/staff/requests/{id}", None).await;
    assert_eq!(status, 200, "{shown}");
    let waiting = &shown["tasks"][0];
    assert_eq!((waiting["source"].as_str(), waiting["state"].as_str()), (Some(SOURCE), Some("with_staff")));
    assert!(waiting["instructions"].as_str().unwrap().contains(INSTRUCTIONS), "{waiting}");
    assert_eq!(waiting["manual"], true);

    let body = json!({"files": [
        {"name": "visits.csv", "size": csv.len(), "content_type": "text/csv"},
        {"name": "profile.pdf", "size": pdf.len(), "content_type": "application/pdf"},
    ]});
    let (status, answer) = call(&m, &path(id, SOURCE, "uploads"), UPLOADS, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let uploads = answer["uploads"].as_array().unwrap();
    assert_eq!(uploads[0]["key"], file_key(id, SOURCE, "visits.csv"));
    let headers = &uploads[0]["headers"];
    assert_eq!(headers["content-type"], "text/csv");
    assert_eq!(headers["x-amz-server-side-encryption"], "AES256", "{headers}");
    for (upload, bytes) in uploads.iter().zip([csv.clone(), pdf.clone()]) {
        let response = put(upload, bytes, &[]).await;
        assert!(response.status().is_success(), "{:?}", response.text().await);
    }
    let staged =
        m.s3.head_object().bucket(&m.bucket).key(file_key(id, SOURCE, "visits.csv")).send().await.unwrap();
    assert_eq!(staged.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "encrypted at rest");
    assert_eq!((staged.content_length(), staged.content_type()), (Some(csv.len() as i64), Some("text/csv")));

    let answer_body = json!({"files": ["visits.csv", "profile.pdf"]});
    let (status, answered) = call(&m, &path(id, SOURCE, "access"), ACCESS, Some(answer_body.clone())).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["task"]["state"], "collected");
    assert_eq!(answered["task"]["collected"]["files"][1]["name"], "profile.pdf");

    let stored = task(&m, id, SourceOperation::Access).await;
    let expected = vec![
        StagedFile {
            name: "visits.csv".into(),
            key: file_key(id, SOURCE, "visits.csv"),
            size: csv.len() as u64,
            content_type: "text/csv".into(),
        },
        StagedFile {
            name: "profile.pdf".into(),
            key: file_key(id, SOURCE, "profile.pdf"),
            size: pdf.len() as u64,
            content_type: "application/pdf".into(),
        },
    ];
    assert_eq!(stored.state, TaskState::Collected { records: 0, pages: 0, files: expected });
    assert_eq!((stored.version, stored.wakes), (2, 1), "one answer, one wake of the export");

    let trail = m.stack.deps().store.audit_trail(id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.event, Event::SourceAnswered);
    assert_eq!(last.actor, Actor::Staff(STAFF_ARN.to_owned()));
    assert_eq!(last.reason.as_deref(), Some("source=website_analytics operation=access by=staff"));

    let (status, again) = call(&m, &path(id, SOURCE, "access"), ACCESS, Some(answer_body)).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("already_answered")));
    let body = json!({"files": [{"name": "more.csv", "size": 3, "content_type": "text/csv"}]});
    let (status, late) = call(&m, &path(id, SOURCE, "uploads"), UPLOADS, Some(body)).await;
    assert_eq!((status, late["error"]["code"].as_str()), (409, Some("already_answered")));
    assert_eq!(task(&m, id, SourceOperation::Access).await, stored, "the first answer stands");
    let (_, shown) = call(&m, &format!("/staff/requests/{id}"), "/staff/requests/{id}", None).await;
    assert_eq!(shown["tasks"][0]["state"], "collected");
    let events =
        shown["audit"].as_array().unwrap().iter().filter(|e| e["event"] == "source_answered").count();
    assert_eq!(events, 1, "one answer in the trail");
}

/// S3 refuses a presigned PUT whose signed headers differ from what was signed. The emulator
/// checks no presigned signature at all (a forged one is accepted too), so what is checked here
/// is that the length, type and encryption are among the signed headers.
#[tokio::test]
async fn an_upload_is_signed_for_its_length_type_and_encryption() {
    let m = manual().await;
    let id = waiting_for_staff(&m, "portability", SourceOperation::Access, SOURCE).await;
    let body = json!({"files": [{"name": "visits.csv", "size": 12, "content_type": "text/csv"}]});
    let (status, answer) = call(&m, &path(id, SOURCE, "uploads"), UPLOADS, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let upload = &answer["uploads"][0];
    let url = url::Url::parse(upload["url"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let signed: Vec<&str> = query["X-Amz-SignedHeaders"].split(';').collect();
    for header in ["content-length", "content-type", "host", "x-amz-server-side-encryption"] {
        assert!(signed.contains(&header), "{header} is not signed: {signed:?}");
    }
    let expires: u64 = query["X-Amz-Expires"].parse().unwrap();
    assert_eq!(expires, 15 * 60);
    assert_eq!(upload["headers"]["content-length"], "12");
    assert!(url.path().ends_with(&format!("staging/{id}/{SOURCE}/files/visits.csv")), "{url}");
}

#[tokio::test]
async fn a_source_that_holds_nothing_of_the_person_is_answered_with_no_files() {
    let m = manual().await;
    let id = waiting_for_staff(&m, "access", SourceOperation::Access, SOURCE).await;
    let (status, refused) = call(&m, &path(id, SOURCE, "access"), ACCESS, Some(json!({"files": []}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("nothing_attached")));
    let both = json!({"files": ["a.csv"], "nothing_found": true});
    let (status, refused) = call(&m, &path(id, SOURCE, "access"), ACCESS, Some(both)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("nothing_attached")));

    let (status, answered) =
        call(&m, &path(id, SOURCE, "access"), ACCESS, Some(json!({"files": [], "nothing_found": true})))
            .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["task"]["collected"], json!({"records": 0, "pages": 0, "files": []}));
    let stored = task(&m, id, SourceOperation::Access).await;
    assert_eq!(stored.state, TaskState::Collected { records: 0, pages: 0, files: vec![] });
    assert_eq!(stored.wakes, 1);
}

#[tokio::test]
async fn files_that_may_not_be_attached_are_refused_and_nothing_is_presigned_or_answered() {
    let m = manual().await;
    let id = waiting_for_staff(&m, "access", SourceOperation::Access, SOURCE).await;
    let file = |name: &str, size: u64, content_type: &str| json!({"name": name, "size": size, "content_type": content_type});
    let many: Vec<Value> = (0..=admin::MAX_FILES).map(|i| file(&format!("{i}.csv"), 1, "text/csv")).collect();
    for (files, status, code) in [
        (json!([file("../visits.csv", 10, "text/csv")]), 422, "invalid_file"),
        (json!([file("a/visits.csv", 10, "text/csv")]), 422, "invalid_file"),
        (json!([file(".htaccess", 10, "text/plain")]), 422, "invalid_file"),
        (json!([file("tab\tname.csv", 10, "text/csv")]), 422, "invalid_file"),
        (json!([file(&"x".repeat(121), 10, "text/csv")]), 422, "invalid_file"),
        (json!([file("visits.csv", 0, "text/csv")]), 422, "invalid_file"),
        (json!([file("visits.csv", 50 * 1024 * 1024 + 1, "text/csv")]), 422, "invalid_file"),
        (json!([file("page.html", 10, "text/html")]), 422, "invalid_file"),
        (json!([file("visits.csv", 10, "text/csv; charset=utf-8")]), 422, "invalid_file"),
        (json!([file("visits.", 10, "text/csv")]), 422, "invalid_file"),
        (json!(many), 422, "invalid_file"),
        (json!([]), 422, "invalid_file"),
        (
            json!([file("ok.csv", 10, "text/csv"), file("bad.exe", 10, "application/x-msdownload")]),
            422,
            "invalid_file",
        ),
        (json!([{"name": "a.csv", "size": -1, "content_type": "text/csv"}]), 422, "invalid_field"),
        (
            json!([{"name": "a.csv", "size": 1, "content_type": "text/csv", "acl": "public-read"}]),
            422,
            "invalid_field",
        ),
        (json!("visits.csv"), 422, "invalid_field"),
    ] {
        let (got, answer) =
            call(&m, &path(id, SOURCE, "uploads"), UPLOADS, Some(json!({"files": files}))).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{files}");
        assert!(answer.get("uploads").is_none());
        assert!(!answer.to_string().contains("X-Amz-Signature"), "nothing presigned: {answer}");
    }
    let (status, answer) =
        call(&m, &path(id, SOURCE, "uploads"), UPLOADS, Some(json!({"files": [], "extra": 1}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("unknown_field")));
    for files in [json!(["../x.csv"]), json!(["a.csv", "a.csv"])] {
        let (status, answer) =
            call(&m, &path(id, SOURCE, "access"), ACCESS, Some(json!({"files": files}))).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("invalid_file")), "{files}");
    }
    // Asking twice for one name is one upload, presigned twice.
    let twice = json!({"files": [file("a.csv", 10, "text/csv"), file("a.csv", 10, "text/csv")]});
    let (status, answer) = call(&m, &path(id, SOURCE, "uploads"), UPLOADS, Some(twice)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["uploads"][0]["key"], answer["uploads"][1]["key"]);

    // A file that was never uploaded (or not under that name) cannot be named.
    let (status, answer) =
        call(&m, &path(id, SOURCE, "access"), ACCESS, Some(json!({"files": ["never.csv"]}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("file_not_uploaded")), "{answer}");
    let unchanged = task(&m, id, SourceOperation::Access).await;
    assert_eq!((unchanged.state, unchanged.version, unchanged.wakes), (TaskState::WithStaff, 1, 0));
}

#[tokio::test]
async fn staff_confirm_a_manual_erasure_with_its_counts_and_why_records_were_kept() {
    let m = manual().await;
    let id = waiting_for_staff(&m, "deletion", SourceOperation::Erasure, SOURCE).await;
    let erasure = path(id, SOURCE, "erasure");
    for (body, code) in [
        (json!({"deleted": 3, "anonymised": 1}), "reason_required"),
        (json!({"deleted": 3, "anonymised": 1, "kept_reason": "   "}), "reason_required"),
        (json!({"deleted": 3, "kept_reason": "kept"}), "invalid_field"),
        (json!({"deleted": 3, "anonymised": 0, "kept_reason": "  "}), "invalid_field"),
        (json!({"deleted": -3}), "invalid_field"),
        (json!({"anonymised": 1, "kept_reason": "kept"}), "missing_field"),
        (json!({"deleted": 1, "anonymised": 1, "kept_reason": "a\u{0}b"}), "invalid_field"),
    ] {
        let (status, answer) = call(&m, &erasure, ERASURE, Some(body.clone())).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{body}");
    }
    assert_eq!(task(&m, id, SourceOperation::Erasure).await.version, 1, "nothing written");

    let reason = "Visits of the last 30 days are kept without the address, for fraud checks.";
    let body = json!({"deleted": 3, "anonymised": 1, "kept_reason": reason});
    let (status, answered) = call(&m, &erasure, ERASURE, Some(body.clone())).await;
    assert_eq!(status, 200, "{answered}");
    let receipt = &answered["task"]["receipt"];
    assert_eq!(receipt["categories"], json!(["internet_activity", "geolocation", "identifiers"]));
    assert_eq!((receipt["deleted"].as_u64(), receipt["kept_because"].as_str()), (Some(3), Some(reason)));
    let stored = task(&m, id, SourceOperation::Erasure).await;
    let TaskState::Erased { receipt } = &stored.state else { panic!("{:?}", stored.state) };
    assert_eq!((receipt.source.as_str(), receipt.anonymised), (SOURCE, 1));
    assert_eq!(stored.wakes, 1, "the erasure is woken");
    let trail = m.stack.deps().store.audit_trail(id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!((last.event, &last.actor), (Event::SourceAnswered, &Actor::Staff(STAFF_ARN.to_owned())));
    assert_eq!(last.reason.as_deref(), Some("source=website_analytics operation=erasure by=staff"));

    let (status, again) = call(&m, &erasure, ERASURE, Some(body)).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("already_answered")));
}

#[tokio::test]
async fn answers_for_the_wrong_operation_source_or_request_are_refused() {
    let m = manual().await;
    let access = waiting_for_staff(&m, "access", SourceOperation::Access, SOURCE).await;
    let deletion = waiting_for_staff(&m, "deletion", SourceOperation::Erasure, SOURCE).await;
    let counts = json!({"deleted": 1});
    let nothing = json!({"files": [], "nothing_found": true});
    let cases = [
        (path(access, SOURCE, "erasure"), ERASURE, counts.clone(), 409, "wrong_operation"),
        (path(deletion, SOURCE, "access"), ACCESS, nothing.clone(), 409, "wrong_operation"),
        (path(access, "crm_notes", "access"), ACCESS, nothing.clone(), 404, "unknown_source"),
        (path(access, "accounts", "access"), ACCESS, nothing.clone(), 409, "not_manual"),
        (path(RequestId::generate(), SOURCE, "access"), ACCESS, nothing.clone(), 404, "not_found"),
    ];
    for (path, template, body, status, code) in cases {
        let (got, answer) = call(&m, &path, template, Some(body)).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{path}: {answer}");
    }
    // A request whose export has not asked the source yet has no task to answer.
    let early = verified_request(&m.stack, &unique_address("manual-early"), "access", "NL").await;
    let (status, answer) = call(&m, &path(early, SOURCE, "access"), ACCESS, Some(nothing)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("no_task")), "{answer}");
    let (status, _) = staff(&m.api, "GET", &path(access, SOURCE, "access"), None).await;
    assert_eq!(status, 405);
    for (id, operation) in [(access, SourceOperation::Access), (deletion, SourceOperation::Erasure)] {
        assert_eq!(task(&m, id, operation).await.version, 1, "nothing was answered");
    }
}

#[tokio::test]
async fn staff_attach_files_and_confirm_an_erasure_with_the_cli() {
    let m = manual().await;
    let access = waiting_for_staff(&m, "access", SourceOperation::Access, SOURCE).await;
    let deletion = waiting_for_staff(&m, "deletion", SourceOperation::Erasure, SOURCE).await;
    let key = "cli-sources-key-0123456789abcdef";
    let env = m.stack.env(&[
        ("STAFF_LOCAL_KEY", key.to_owned()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000".to_owned()),
        ("DATA_MAP_SCOPE", "all".to_owned()),
        ("EXPORT_BUCKET", m.bucket.clone()),
        ("S3_FORCE_PATH_STYLE", "true".to_owned()),
    ]);
    let settings = privacy_shared::config::AdminSettings::load(&env).unwrap();
    let base = crate::staff_command_line::serve(admin::Admin::with_sdk(
        &m.stack.sdk,
        settings,
        m.stack.clock.clone(),
    ))
    .await;
    let dir = std::env::temp_dir().join(format!("staff-sources-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let visits = dir.join("Bezoeken november é.csv");
    std::fs::write(&visits, "date,page\n2026-11-01,/pricing\n").unwrap();
    let cli = |args: Vec<String>| {
        let base = base.clone();
        async move {
            let mut argv =
                vec!["staff".to_owned(), "--endpoint".into(), base, "--local-key".into(), key.into()];
            argv.extend(args);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = staff_cli::run(argv, staff_cli::CredentialSource::AwsChain, &mut out, &mut err).await;
            (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (code, out, err) = cli(args(&["show", &access.to_string()])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(INSTRUCTIONS) && out.contains("staff attach"), "{out}");

    let (code, out, err) =
        cli(args(&["attach", &access.to_string(), "--source", SOURCE, visits.to_str().unwrap()])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Bezoeken november é.csv") && out.contains("collected"), "{out}");
    let stored = task(&m, access, SourceOperation::Access).await;
    let TaskState::Collected { files, .. } = &stored.state else { panic!("{:?}", stored.state) };
    assert_eq!(files[0].size, std::fs::metadata(&visits).unwrap().len());
    let staged = m.s3.get_object().bucket(&m.bucket).key(&files[0].key).send().await.unwrap();
    assert_eq!(staged.body.collect().await.unwrap().into_bytes().as_ref(), std::fs::read(&visits).unwrap());

    let (code, _, err) =
        cli(args(&["attach", &access.to_string(), "--source", SOURCE, "--nothing-found"])).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: already_answered:"), "{err}");

    let reason = "Kept without the address for fraud checks.";
    let (code, out, err) = cli(args(&[
        "confirm-erasure",
        &deletion.to_string(),
        "--source",
        SOURCE,
        "--deleted",
        "2",
        "--anonymised",
        "1",
        "--kept-reason",
        reason,
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 deleted, 1 anonymised"), "{out}");
    let TaskState::Erased { receipt } = task(&m, deletion, SourceOperation::Erasure).await.state else {
        panic!("not erased")
    };
    assert_eq!(receipt.kept_because.as_deref(), Some(reason));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The document's `FileName` accepts exactly the names the handler does: schemathesis relies on
/// it both ways.
#[test]
fn the_documented_file_name_is_exactly_the_one_the_handler_takes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/staff-openapi.yaml");
    let mut root: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    root.as_object_mut().unwrap().insert("$ref".into(), json!("#/components/schemas/FileName"));
    let schema = jsonschema::validator_for(&root).unwrap();
    let mut names: Vec<String> = [
        "a",
        "a.b",
        "a.b.c",
        "visits.csv",
        "a b",
        "a..b",
        ".a",
        "a.",
        "..",
        ".",
        "",
        " a",
        "a ",
        "\ta",
        "a\u{a0}",
        "\u{a0}a",
        "a\u{85}b",
        "a\u{7f}",
        "a/b",
        "a\\b",
        "\u{feff}a",
        "a\u{2028}b",
        "\u{2028}a",
        "a\u{3000}",
        "a\u{1680}",
        "a\u{180e}",
        "a\u{200b}",
        "\u{1f600}",
        "é.csv",
        "a. b",
        "a .b",
        "a .",
        "a\tb",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend(["x".repeat(120), "x".repeat(121), "é".repeat(120), "\u{1f600}".repeat(121)]);
    for name in names {
        let handler = admin::file_name_problem(&name).is_none();
        assert_eq!(schema.is_valid(&json!(name)), handler, "{name:?}: the handler says {handler}");
    }
}
