//! The webhook source contract (`api/source-webhook.yaml`) holds: its signature example
//! recomputes, and the reference server (`devstack source-server`, the one `make dev` runs)
//! answers every call as the document says, checked against the document's own schemas. The
//! signatures here are computed independently of the server's code.

use hmac::{Hmac, Mac};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devstack::source_server::{self, Handle, Keys, Mode, Options, SigningKey};

const KEY: &str = "contract-test-current-key";
const PREVIOUS_KEY: &str = "contract-test-previous-key";
const SOURCE: &str = "job_applications";

fn document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/source-webhook.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Panics unless the document's schema `name` accepts `body` (formats asserted, `$ref`s resolved
/// in the whole document).
fn assert_valid(doc: &Value, name: &str, body: &Value) {
    let mut root = doc.clone();
    root.as_object_mut().unwrap().insert("$ref".into(), json!(format!("#/components/schemas/{name}")));
    let validator =
        jsonschema::options().should_validate_formats(true).build(&root).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{body} is not a valid {name}: {errors:?}");
}

fn hmac_hex(key: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn reference_server(mode: Mode) -> Handle {
    let records = source_server::seed_records(&devstack::seed::default_path(), SOURCE).unwrap();
    let mut options =
        Options::new(Keys::new(SigningKey::new(KEY), vec![SigningKey::new(PREVIOUS_KEY)]), records);
    options.mode = mode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    source_server::start(listener, options)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn access_call(request_id: &str, email: &str, user_id: Option<&str>, since: Option<&str>) -> Value {
    json!({
        "job_id": format!("{request_id}.access.{SOURCE}"), "operation": "access",
        "request_id": request_id, "source": SOURCE,
        "subject": {"email": email, "user_id": user_id},
        "since": since, "cursor": null, "callback_url": null,
    })
}

fn erasure_call(request_id: &str, email: &str, user_id: Option<&str>) -> Value {
    json!({
        "job_id": format!("{request_id}.erasure.{SOURCE}"), "operation": "erasure",
        "request_id": request_id, "source": SOURCE,
        "subject": {"email": email, "user_id": user_id}, "callback_url": null,
    })
}

/// How a call is signed.
enum Signed<'a> {
    /// `Privacy-Signature` as given, at this timestamp (`None`: the header left out).
    As { timestamp: String, signature: Option<String> },
    /// One `v1=` under `key`, now.
    With(&'a str),
}

/// POSTs `body` to the server's `path`, signed as `signed`; the status and the JSON answer.
async fn post(server: &Handle, path: &str, body: &[u8], job_id: &str, signed: Signed<'_>) -> (u16, Value) {
    let (timestamp, signature) = match signed {
        Signed::As { timestamp, signature } => (timestamp, signature),
        Signed::With(key) => {
            let timestamp = now().to_string();
            let signature = format!("v1={}", hmac_hex(key, &timestamp, body));
            (timestamp, Some(signature))
        }
    };
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .header("content-type", "application/json")
        .header("idempotency-key", job_id)
        .header("privacy-timestamp", timestamp)
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("privacy-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} answered non-JSON: {text}")))
}

/// A signed call of `body` (its `job_id` as the idempotency key).
async fn call(server: &Handle, path: &str, body: &Value) -> (u16, Value) {
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    post(server, path, body.to_string().as_bytes(), &job_id, Signed::With(KEY)).await
}

/// Every page of an access job, following `next_cursor`; each page checked against AccessAnswer.
async fn all_pages(server: &Handle, doc: &Value, mut body: Value) -> Vec<Value> {
    let mut pages = Vec::new();
    loop {
        let (status, page) = call(server, "/access", &body).await;
        assert_eq!(status, 200, "{page}");
        assert_valid(doc, "AccessAnswer", &page);
        let next = page["next_cursor"].clone();
        pages.push(page);
        if next.is_null() {
            return pages;
        }
        assert!(pages.len() < 10, "the cursor never ends");
        body["cursor"] = next;
    }
}

fn application_ids(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page["records"].as_array().unwrap())
        .map(|record| record["application_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_documents_signature_example_recomputes_to_its_documented_hex() {
    let doc = document();
    let example = &doc["components"]["securitySchemes"]["privacySignature"]["x-signature-example"];
    let text = |name: &str| example[name].as_str().unwrap_or_else(|| panic!("x-signature-example.{name}"));
    let (key, previous, timestamp, body) =
        (text("key"), text("previous_key"), text("timestamp"), text("body"));
    let current_hex = hmac_hex(key, timestamp, body.as_bytes());
    let previous_hex = hmac_hex(previous, timestamp, body.as_bytes());
    assert_eq!(text("signature"), format!("v1={current_hex}"));
    assert_eq!(text("rotating_signature"), format!("v1={current_hex}, v1={previous_hex}"));
    // The reference server signs the same way.
    assert_eq!(source_server::signature(&SigningKey::new(key), timestamp, body.as_bytes()), current_hex);
    // The prose a developer reads says the same as the machine-readable example.
    let description = doc["info"]["description"].as_str().unwrap();
    for shown in [key, previous, body, &current_hex, &previous_hex, &format!("{} bytes", body.len())] {
        assert!(description.contains(shown), "the introduction does not show {shown}");
    }
    assert!(description.contains(&format!("Privacy-Timestamp: {timestamp}")));
    // And the example is a valid call.
    assert_valid(&doc, "AccessCall", &serde_json::from_str(body).unwrap());
}

#[test]
fn the_document_gives_both_operations_their_answers_limits_and_callback() {
    let doc = document();
    for (path, answer) in [("/access", "AccessAnswer"), ("/erasure", "ErasureReceipt")] {
        let operation = &doc["paths"][path]["post"];
        assert_eq!(
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            json!(format!("#/components/schemas/{answer}"))
        );
        for status in ["202", "400", "401"] {
            assert!(operation["responses"][status].is_object(), "{path} documents {status}");
        }
        let callback = operation["callbacks"]["jobDone"]["$ref"].as_str().unwrap();
        let callback = doc.pointer(callback.trim_start_matches('#')).unwrap();
        assert!(callback["{$request.body#/callback_url}"]["post"].is_object(), "{path}'s callback");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["privacyTimestamp"]["name"], "Privacy-Timestamp");
    assert_eq!(schemes["privacySignature"]["name"], "Privacy-Signature");
    assert_eq!(doc["security"], json!([{"privacyTimestamp": [], "privacySignature": []}]));
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["AccessAnswer"]["properties"]["records"]["maxItems"], 1000);
    assert_eq!(
        schemas["ErasureReceipt"]["properties"]["kept"]["items"]["properties"]["reason"]["maxLength"],
        1000
    );
    // A page of 1001 records is refused by the schema, so a caller validating against it refuses it.
    let mut root = doc.clone();
    root.as_object_mut().unwrap().insert("$ref".into(), json!("#/components/schemas/AccessAnswer"));
    let too_many = json!({"records": vec![json!({}); 1001], "next_cursor": null});
    assert!(!jsonschema::validator_for(&root).unwrap().is_valid(&too_many));
}

/// openapi-spec-validator (dev/bin/lint-infra) does not follow references inside callbacks.
#[test]
fn every_reference_in_the_document_resolves() {
    fn check(doc: &Value, value: &Value, at: &str) {
        match value {
            Value::Object(fields) => {
                if let Some(Value::String(reference)) = fields.get("$ref") {
                    let pointer = reference
                        .strip_prefix('#')
                        .unwrap_or_else(|| panic!("{at}: {reference} is not local"));
                    assert!(doc.pointer(pointer).is_some(), "{at}: {reference} does not resolve");
                }
                for (name, field) in fields {
                    check(doc, field, &format!("{at}/{name}"));
                }
            }
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(n, item)| check(doc, item, &format!("{at}/{n}")))
            }
            _ => {}
        }
    }
    let doc = document();
    check(&doc, &doc, "");
}

#[tokio::test]
async fn a_signed_access_call_gets_the_persons_records_one_page_at_a_time_through_next_cursor() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    // Alice's two applications: one under another case of her address and no user id, one under
    // another address and her user id.
    let pages =
        all_pages(&server, &doc, access_call(&request_id(), "alice@example.com", Some("u-alice"), None))
            .await;
    assert_eq!(pages.len(), 2, "one record a page: {pages:?}");
    assert!(pages[0]["next_cursor"].is_string());
    let mut ids = application_ids(&pages);
    ids.sort();
    assert_eq!(ids, ["app-2021-0042", "app-2025-0317"]);
    // Without the user id only the address matches.
    let pages = all_pages(&server, &doc, access_call(&request_id(), "alice@example.com", None, None)).await;
    assert_eq!(application_ids(&pages), ["app-2021-0042"]);
    let headers = server.last_headers().unwrap();
    assert!(headers["idempotency-key"].to_str().unwrap().ends_with(".access.job_applications"));
}

#[tokio::test]
async fn an_access_call_with_since_leaves_out_the_records_from_before_it() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    let call = access_call(&request_id(), "alice@example.com", Some("u-alice"), Some("2022-01-01T00:00:00Z"));
    let pages = all_pages(&server, &doc, call).await;
    assert_eq!(application_ids(&pages), ["app-2025-0317"]);
    let late = access_call(&request_id(), "alice@example.com", Some("u-alice"), Some("2025-09-03T14:05:01Z"));
    assert_eq!(all_pages(&server, &doc, late).await, [json!({"records": [], "next_cursor": null})]);
}

#[tokio::test]
async fn a_person_the_source_holds_nothing_of_gets_an_empty_last_page() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    let pages =
        all_pages(&server, &doc, access_call(&request_id(), "carol@example.org", Some("u-carol"), None))
            .await;
    assert_eq!(pages, [json!({"records": [], "next_cursor": null})]);
}

#[tokio::test]
async fn a_cursor_of_another_job_is_refused_with_400() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    let first = access_call(&request_id(), "alice@example.com", Some("u-alice"), None);
    let (_, page) = call(&server, "/access", &first).await;
    let mut other = access_call(&request_id(), "alice@example.com", Some("u-alice"), None);
    other["cursor"] = page["next_cursor"].clone();
    let (status, body) = call(&server, "/access", &other).await;
    assert_eq!(status, 400, "{body}");
    assert_valid(&doc, "Error", &body);
    assert_eq!(body["error"]["code"], "bad_cursor");
}

#[tokio::test]
async fn an_erasure_deletes_the_persons_records_and_answers_a_repeat_of_the_job_with_the_same_receipt() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    let erasure = erasure_call(&request_id(), "alice@example.com", Some("u-alice"));
    let (status, receipt) = call(&server, "/erasure", &erasure).await;
    assert_eq!(status, 200, "{receipt}");
    assert_valid(&doc, "ErasureReceipt", &receipt);
    assert_eq!(receipt, json!({"deleted": {"job_application": 2}, "anonymised": {}, "kept": []}));
    assert_eq!(server.record_count(), 1, "Bob's application stays");
    let (status, again) = call(&server, "/erasure", &erasure).await;
    assert_eq!((status, &again), (200, &receipt), "a repeat of the job: the same receipt");
    // Nothing of Alice is left to give; a new erasure job finds nothing to delete.
    let pages =
        all_pages(&server, &doc, access_call(&request_id(), "alice@example.com", Some("u-alice"), None))
            .await;
    assert_eq!(pages, [json!({"records": [], "next_cursor": null})]);
    let (_, second) =
        call(&server, "/erasure", &erasure_call(&request_id(), "alice@example.com", Some("u-alice"))).await;
    assert_eq!(second["deleted"], json!({"job_application": 0}));
    assert_eq!(server.record_count(), 1);
}

#[tokio::test]
async fn an_unsigned_wrongly_signed_or_stale_call_is_refused_with_401_and_an_error_body() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    let body = access_call(&request_id(), "alice@example.com", Some("u-alice"), None);
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    let bytes = body.to_string().into_bytes();
    let at = |timestamp: u64, key: &str| Signed::As {
        timestamp: timestamp.to_string(),
        signature: Some(format!("v1={}", hmac_hex(key, &timestamp.to_string(), &bytes))),
    };
    let other_body = format!("v1={}", hmac_hex(KEY, &now().to_string(), b"{}"));
    let cases = [
        ("no signature", Signed::As { timestamp: now().to_string(), signature: None }, "missing_signature"),
        ("an unknown key", Signed::With("not-the-key"), "bad_signature"),
        (
            "another body's signature",
            Signed::As { timestamp: now().to_string(), signature: Some(other_body) },
            "bad_signature",
        ),
        (
            "the signature without its v1= prefix",
            Signed::As {
                timestamp: now().to_string(),
                signature: Some(hmac_hex(KEY, &now().to_string(), &bytes)),
            },
            "bad_signature",
        ),
        ("signed 310 s ago", at(now() - 310, KEY), "stale_timestamp"),
        ("signed 310 s ahead", at(now() + 310, KEY), "stale_timestamp"),
        ("a timestamp in milliseconds", at(now() * 1000, KEY), "stale_timestamp"),
    ];
    for (case, signed, code) in cases {
        let (status, answer) = post(&server, "/access", &bytes, &job_id, signed).await;
        assert_eq!(status, 401, "{case}: {answer}");
        assert_valid(&doc, "Error", &answer);
        assert_eq!(answer["error"]["code"], code, "{case}");
        assert!(!answer.to_string().contains("alice"), "{case}: the error names nobody");
    }
    // Within the tolerance, and during a rotation (the previous key's signature second), it passes.
    let (status, _) = post(&server, "/access", &bytes, &job_id, at(now() - 290, KEY)).await;
    assert_eq!(status, 200);
    let timestamp = now().to_string();
    let rotating = format!(
        "v1={}, v1={}",
        hmac_hex("a-newer-key", &timestamp, &bytes),
        hmac_hex(PREVIOUS_KEY, &timestamp, &bytes)
    );
    let (status, _) =
        post(&server, "/access", &bytes, &job_id, Signed::As { timestamp, signature: Some(rotating) }).await;
    assert_eq!(status, 200, "any v1 value under any key the endpoint holds");
}

#[tokio::test]
async fn an_unreadable_or_inconsistent_call_is_refused_with_400_and_an_error_body() {
    let doc = document();
    let server = reference_server(Mode::Immediate).await;
    let good = access_call(&request_id(), "alice@example.com", Some("u-alice"), None);
    let job_id = good["job_id"].as_str().unwrap().to_owned();
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        body.to_string()
    };
    let mut wrong_job = good.clone();
    wrong_job["operation"] = json!("erasure");
    let mut subject_as_text = good.clone();
    subject_as_text["subject"] = json!("alice@example.com");
    for (case, body) in [
        ("not JSON", "{not json".to_owned()),
        ("without subject", without("subject")),
        ("without since", without("since")),
        ("the other operation", wrong_job.to_string()),
        ("a subject that is a string", subject_as_text.to_string()),
    ] {
        let (status, answer) = post(&server, "/access", body.as_bytes(), &job_id, Signed::With(KEY)).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_valid(&doc, "Error", &answer);
        assert!(!answer.to_string().contains("alice"), "{case}: the error names nobody: {answer}");
    }
    // The idempotency key is the job id.
    let (status, answer) =
        post(&server, "/access", good.to_string().as_bytes(), "another.access.job", Signed::With(KEY)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("bad_idempotency_key")));
}

/// A stand-in for the privacy system's callback route: records each callback, answers 204.
async fn callback_receiver() -> (String, Arc<Mutex<Vec<(lambda_http::http::HeaderMap, Vec<u8>)>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let served = crate::support::http::serve(move |request: lambda_http::Request| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push((request.headers().clone(), request.body().as_ref().to_vec()));
            Response::builder().status(204).body(Body::Empty).unwrap()
        }
    })
    .await;
    (format!("{}/sources/{SOURCE}/callback", served.base), received)
}

async fn wait_for<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(value) = ready() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {what} within 5 s")
}

#[tokio::test]
async fn a_deferred_job_answers_202_then_calls_back_signed_and_then_answers_200_with_the_result() {
    let doc = document();
    let server = reference_server(Mode::Deferred { delay: Duration::from_millis(300) }).await;
    let (callback_url, received) = callback_receiver().await;
    let mut access = access_call(&request_id(), "alice@example.com", Some("u-alice"), None);
    access["callback_url"] = json!(callback_url);
    let job_id = access["job_id"].as_str().unwrap().to_owned();

    let (status, accepted) = call(&server, "/access", &access).await;
    assert_eq!(status, 202, "{accepted}");
    assert_valid(&doc, "Accepted", &accepted);
    let (status, _) = call(&server, "/access", &access).await;
    assert_eq!(status, 202, "still working: accepted again");
    assert!(received.lock().unwrap().is_empty(), "no callback before the work is done");

    let (headers, body) = wait_for("callback", || received.lock().unwrap().first().cloned()).await;
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let notice: Value = serde_json::from_slice(&body).unwrap();
    assert_valid(&doc, "JobDone", &notice);
    assert_eq!(notice, json!({"job_id": job_id, "operation": "access", "status": "done"}));
    assert_eq!(header("idempotency-key"), job_id);
    assert!(header("content-type").starts_with("application/json"));
    let timestamp = header("privacy-timestamp");
    assert!(timestamp.parse::<u64>().unwrap().abs_diff(now()) <= 5, "signed just now");
    assert_eq!(
        header("privacy-signature"),
        format!("v1={}", hmac_hex(KEY, &timestamp, &body)),
        "signed with the current key"
    );

    let pages = all_pages(&server, &doc, access).await;
    assert_eq!(application_ids(&pages).len(), 2, "the finished result, page by page");
    assert_eq!(received.lock().unwrap().len(), 1, "one callback per job");
    assert_eq!(server.callbacks().len(), 1);
    assert_eq!(server.callbacks()[0].status, Some(204));
}

#[tokio::test]
async fn a_deferred_erasure_without_a_callback_url_is_finished_when_the_same_job_is_polled() {
    let doc = document();
    let server = reference_server(Mode::Deferred { delay: Duration::from_millis(100) }).await;
    let erasure = erasure_call(&request_id(), "bob@example.com", Some("u-bob"));
    let (status, _) = call(&server, "/erasure", &erasure).await;
    assert_eq!(status, 202);
    assert_eq!(server.record_count(), 3, "nothing deleted yet");
    wait_for("erasure", || (server.record_count() == 2).then_some(())).await;
    let (status, receipt) = call(&server, "/erasure", &erasure).await;
    assert_eq!(status, 200, "{receipt}");
    assert_valid(&doc, "ErasureReceipt", &receipt);
    assert_eq!(receipt["deleted"], json!({"job_application": 1}));
    let (_, again) = call(&server, "/erasure", &erasure).await;
    assert_eq!(again, receipt);
    assert!(server.callbacks().is_empty(), "no callback_url, no callback");
}
