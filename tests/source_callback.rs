//! `POST /sources/{source}/callback` (functions/source-callback) against the emulator: a webhook
//! source's signed callback wakes the task its job waits on, once per callback while it waits,
//! and changes nothing once the task is answered or the request closed; anything unsigned,
//! stale, tampered or not the source's own job changes nothing at all. The signatures here are
//! computed apart from the code under test; the source's key is a Secrets Manager secret of the
//! test's own (current, and previous after a rotation).
//!
//! A second callback for a task still waiting wakes it again: the callback carries no answer, so
//! a wake only makes the worker ask the endpoint once more, and the endpoint answers a finished
//! job the same way each time.

use chrono::Duration;
use hmac::{Hmac, Mac};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;

use privacy_shared::Clock;
use privacy_shared::datamap::DataMap;
use privacy_shared::domain::{
    Actor, RequestId, SourceOperation, SourceTask, StaffText, TaskChange, TaskState, Transition, answer_by,
};
use privacy_shared::store::{Change, DynamoStore, Requests, SourceTasks, change_task};
use privacy_shared::webhook::SecretsManagerKeys;
use source_callback::{CallbackSettings, MAX_CALLBACK_BYTES, Receiver};

use crate::support::{Captured, Item, Stack, json_of, unique_address, verified_request};

const SOURCE: &str = "job_applications";
const KEY: &str = "callback-test-current-key";

type AwsReceiver = Receiver<DynamoStore, SecretsManagerKeys>;

/// A stack, a request with a waiting access task at the webhook source, and the callback function
/// wired as deployed, its source signing with a secret of this test's own.
struct World {
    stack: Stack,
    /// The Secrets Manager secret the source signs with.
    secret: String,
    map: DataMap,
    request: RequestId,
}

/// The built-in data map with the webhook source's secret renamed (one per test: tests beside
/// this one rotate theirs).
fn map_with_secret(secret: &str) -> DataMap {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/datamap.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let builtin = format!("secret: privacy-requests/sources/{SOURCE}");
    assert!(text.contains(&builtin), "the map's job_applications source signs with its secret");
    DataMap::parse(&text.replace(&builtin, &format!("secret: {secret}"))).unwrap()
}

async fn world() -> World {
    let stack = Stack::new().await;
    let secret = format!("privacy-requests/sources/test-{}", uuid::Uuid::new_v4().simple());
    secrets(&stack).create_secret().name(&secret).secret_string(KEY).send().await.unwrap();
    let request = verified_request(&stack, &unique_address("callback"), "access", "NL").await;
    let world = World { map: map_with_secret(&secret), stack, secret, request };
    world.open_task(world.request, SourceOperation::Access).await;
    world
}

fn secrets(stack: &Stack) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
}

impl World {
    /// The function as its cold start builds it (a fresh key cache), on this test's table.
    fn receiver(&self) -> AwsReceiver {
        let settings = CallbackSettings { table_name: self.stack.table.clone(), data_map: self.map.clone() };
        Receiver::with_sdk(&self.stack.sdk, settings, self.stack.clock.clone())
    }

    fn store(&self) -> DynamoStore {
        self.stack.deps().store
    }

    /// A webhook task waiting, as the worker leaves it after a 202.
    async fn open_task(&self, request: RequestId, operation: SourceOperation) -> SourceTask {
        let now = self.stack.clock.now();
        let record = self.store().get(request).await.unwrap().unwrap();
        let task = SourceTask {
            request_id: request,
            operation,
            source: SOURCE.to_owned(),
            answer_by: answer_by(record.due_on, now.date_naive()),
            opened_at: now,
            state: TaskState::Waiting { problem: None },
            version: 1,
            wakes: 0,
            attempts: 1,
            late: false,
        };
        self.store().open_task(&task).await.unwrap()
    }

    async fn task(&self) -> SourceTask {
        self.store().task(self.request, SourceOperation::Access, SOURCE).await.unwrap().unwrap()
    }

    fn job_id(&self) -> String {
        format!("{}.access.{SOURCE}", self.request)
    }

    /// The contract's callback body for this world's job.
    fn done(&self) -> Vec<u8> {
        json!({"job_id": self.job_id(), "operation": "access", "status": "done"}).to_string().into_bytes()
    }

    /// Posts `body` to `source`'s callback, signed as `signed`; the status and the JSON answer.
    async fn post(
        &self,
        receiver: &AwsReceiver,
        source: &str,
        body: Vec<u8>,
        signed: Signed<'_>,
    ) -> (u16, Value) {
        let now = self.stack.clock.now().timestamp();
        let headers: Vec<(&str, String)> = match signed {
            Signed::With(key) => {
                vec![
                    ("privacy-timestamp", now.to_string()),
                    ("privacy-signature", signature(&[key], now, &body)),
                ]
            }
            Signed::At(key, at) => {
                vec![
                    ("privacy-timestamp", at.to_string()),
                    ("privacy-signature", signature(&[key], at, &body)),
                ]
            }
            Signed::Headers(headers) => headers,
        };
        let response =
            source_callback::handle(receiver, callback_request(source, &headers, body)).await.unwrap();
        (response.status().as_u16(), answer(&response))
    }

    /// [`World::post`] of this world's `done` callback, signed now with `key`.
    async fn call_back(&self, receiver: &AwsReceiver, key: &str) -> (u16, Value) {
        self.post(receiver, SOURCE, self.done(), Signed::With(key)).await
    }

    /// Every item of the table, in key order: what "nothing changed" compares.
    async fn snapshot(&self) -> Vec<Item> {
        let mut items = self.stack.items().await;
        let key = |item: &Item| {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            (text("pk"), text("sk"))
        };
        items.sort_by_key(key);
        items
    }
}

/// How a call is signed.
enum Signed<'a> {
    /// One `v1=` under the key, at the stack's now.
    With(&'a str),
    /// One `v1=` under the key, at this Unix time.
    At(&'a str, i64),
    /// These headers exactly.
    Headers(Vec<(&'static str, String)>),
}

fn hmac_hex(key: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `Privacy-Signature`: one `v1=` per key, as the contract writes it during a rotation.
fn signature(keys: &[&str], timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|key| format!("v1={}", hmac_hex(key, timestamp, body))).collect::<Vec<_>>().join(", ")
}

/// The callback as API Gateway delivers it: the route's path parameter set.
fn callback_request(source: &str, headers: &[(&str, String)], body: Vec<u8>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("https://api.example.test/sources/{source}/callback"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Body::Binary(body))
        .unwrap()
        .with_path_parameters(HashMap::from([("source".to_owned(), source.to_owned())]))
}

/// The JSON answer, or null for an empty body (204).
fn answer(response: &Response<Body>) -> Value {
    if response.body().is_empty() { Value::Null } else { json_of(response) }
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_signed_callback_wakes_the_waiting_task_and_answers_204() {
    let world = world().await;
    let before = world.task().await;
    assert_eq!((before.wakes, before.version), (0, 1));
    let (status, body) = world.call_back(&world.receiver(), KEY).await;
    assert_eq!((status, &body), (204, &Value::Null));
    let after = world.task().await;
    assert_eq!((after.wakes, after.version), (1, 2), "one wake: one more look by the worker");
    assert_eq!(after.state, TaskState::Waiting { problem: None }, "a callback is no answer");
}

#[tokio::test]
async fn each_signed_callback_on_a_task_still_waiting_wakes_it_again() {
    let world = world().await;
    let receiver = world.receiver();
    assert_eq!(world.call_back(&receiver, KEY).await.0, 204);
    assert_eq!(world.call_back(&receiver, KEY).await.0, 204);
    let task = world.task().await;
    assert_eq!((task.wakes, task.version), (2, 3));
}

#[tokio::test]
async fn a_callback_for_a_task_answered_already_answers_204_and_writes_nothing() {
    let world = world().await;
    let collected = TaskChange::Collected { records: 2, pages: 1, files: vec![] };
    let answered = change_task(&world.store(), &world.task().await, &collected)
        .await
        .unwrap()
        .expect("the task takes its answer");
    let before = world.snapshot().await;
    let receiver = world.receiver();
    for _ in 0..2 {
        assert_eq!(world.call_back(&receiver, KEY).await, (204, Value::Null));
    }
    assert_eq!(world.snapshot().await, before, "a callback after the answer changes nothing");
    assert_eq!(world.task().await, answered, "no wake after the answer");
}

#[tokio::test]
async fn a_callback_for_a_request_closed_meanwhile_answers_204_and_writes_nothing() {
    let world = world().await;
    let store = world.store();
    let current = store.get(world.request).await.unwrap().unwrap();
    let reason = StaffText::parse("Denied while the source was still working.").unwrap();
    let change = Change::new(
        Transition::Deny { reason, basis: privacy_shared::domain::DenialBasis::Other },
        world.stack.clock.now(),
        Actor::System,
    );
    store.transition(&current, change).await.unwrap();
    let before = world.snapshot().await;
    assert_eq!(world.call_back(&world.receiver(), KEY).await, (204, Value::Null));
    assert_eq!(world.snapshot().await, before, "nobody waits: nothing is woken");
}

#[tokio::test]
async fn a_wrong_key_a_tampered_body_a_stale_or_future_timestamp_or_missing_headers_are_refused_401_and_change_nothing()
 {
    let world = world().await;
    let receiver = world.receiver();
    let before = world.snapshot().await;
    let now = world.stack.clock.now().timestamp();
    let body = world.done();
    let tampered = String::from_utf8(body.clone()).unwrap().replace("\"done\"", "\"done\" ").into_bytes();
    let signed_now = signature(&[KEY], now, &body);
    let cases: Vec<(&str, Vec<u8>, Signed<'_>)> = vec![
        ("a key that is not the source's", body.clone(), Signed::With("someone-elses-key")),
        (
            "a body other than the one signed",
            tampered,
            Signed::Headers(vec![
                ("privacy-timestamp", now.to_string()),
                ("privacy-signature", signed_now.clone()),
            ]),
        ),
        (
            "a timestamp other than the one signed",
            body.clone(),
            Signed::Headers(vec![
                ("privacy-timestamp", (now + 1).to_string()),
                ("privacy-signature", signed_now.clone()),
            ]),
        ),
        ("signed 301 s ago", body.clone(), Signed::At(KEY, now - 301)),
        ("signed 301 s ahead", body.clone(), Signed::At(KEY, now + 301)),
        ("no signature", body.clone(), Signed::Headers(vec![("privacy-timestamp", now.to_string())])),
        ("no timestamp", body.clone(), Signed::Headers(vec![("privacy-signature", signed_now.clone())])),
        ("no headers at all", body.clone(), Signed::Headers(vec![])),
        (
            "a timestamp that is no number",
            body.clone(),
            Signed::Headers(vec![
                ("privacy-timestamp", "soon".to_owned()),
                ("privacy-signature", signed_now.clone()),
            ]),
        ),
        (
            "a signature that is not v1 hex",
            body.clone(),
            Signed::Headers(vec![
                ("privacy-timestamp", now.to_string()),
                ("privacy-signature", signed_now.replace("v1=", "v2=")),
            ]),
        ),
    ];
    for (case, body, signed) in cases {
        let (status, answer) = world.post(&receiver, SOURCE, body, signed).await;
        assert_eq!((status, code(&answer)), (401, "bad_signature"), "{case}: {answer}");
    }
    assert_eq!(world.snapshot().await, before, "no refused callback changes anything");
    // Within the tolerance, either way, is accepted.
    assert_eq!(world.post(&receiver, SOURCE, world.done(), Signed::At(KEY, now - 299)).await.0, 204);
    assert_eq!(world.post(&receiver, SOURCE, world.done(), Signed::At(KEY, now + 299)).await.0, 204);
}

#[tokio::test]
async fn the_signature_is_checked_before_the_table_is_read_and_a_failing_store_answers_503() {
    let world = world().await;
    // The same function on a table that does not exist: every read of it fails.
    let settings = CallbackSettings { table_name: "no-such-table".to_owned(), data_map: world.map.clone() };
    let broken = Receiver::with_sdk(&world.stack.sdk, settings, world.stack.clock.clone());
    let (status, answer) = world.call_back(&broken, "someone-elses-key").await;
    assert_eq!((status, code(&answer)), (401, "bad_signature"), "refused before any read: {answer}");
    let (status, answer) = world.call_back(&broken, KEY).await;
    assert_eq!(
        (status, code(&answer)),
        (503, "service_unavailable"),
        "ours to fix; the endpoint retries: {answer}"
    );
}

#[tokio::test]
async fn a_callback_signed_with_the_previous_key_during_a_rotation_is_accepted() {
    let world = world().await;
    const NEW_KEY: &str = "callback-test-rotated-key";
    // The new value becomes AWSCURRENT and the old one AWSPREVIOUS.
    secrets(&world.stack)
        .put_secret_value()
        .secret_id(&world.secret)
        .secret_string(NEW_KEY)
        .send()
        .await
        .unwrap();
    let receiver = world.receiver();
    assert_eq!(world.call_back(&receiver, KEY).await.0, 204, "the endpoint still holds the previous key");
    assert_eq!(world.call_back(&receiver, NEW_KEY).await.0, 204, "or already the new one");
    let now = world.stack.clock.now().timestamp();
    let both = Signed::Headers(vec![
        ("privacy-timestamp", now.to_string()),
        ("privacy-signature", signature(&["unrelated-key", NEW_KEY], now, &world.done())),
    ]);
    assert_eq!(world.post(&receiver, SOURCE, world.done(), both).await.0, 204, "any v1 value may match");
    assert_eq!(world.task().await.wakes, 3);

    // A second rotation retires the first key.
    secrets(&world.stack)
        .put_secret_value()
        .secret_id(&world.secret)
        .secret_string("callback-test-third-key")
        .send()
        .await
        .unwrap();
    let (status, answer) = world.call_back(&world.receiver(), KEY).await;
    assert_eq!((status, code(&answer)), (401, "bad_signature"), "two rotations ago: {answer}");
}

#[tokio::test]
async fn a_source_the_map_does_not_have_or_that_does_not_sign_its_calls_is_not_found() {
    let world = world().await;
    let receiver = world.receiver();
    let before = world.snapshot().await;
    // No such source; a table, a bucket and a manual source (none calls back).
    for source in ["nobody", "accounts", "recordings", "website_analytics"] {
        let (status, answer) = world.post(&receiver, source, world.done(), Signed::With(KEY)).await;
        assert_eq!((status, code(&answer)), (404, "not_found"), "{source}: {answer}");
    }
    assert_eq!(world.snapshot().await, before);
}

#[tokio::test]
async fn a_job_of_another_source_or_operation_or_one_that_does_not_read_is_a_bad_request() {
    let world = world().await;
    let receiver = world.receiver();
    let before = world.snapshot().await;
    let request = world.request;
    for (case, job_id, operation) in [
        ("another source's job", format!("{request}.access.website_analytics"), "access"),
        ("the job of the other operation", format!("{request}.erasure.{SOURCE}"), "access"),
        ("an operation other than the job's", world.job_id(), "erasure"),
        ("not a job id", "nonsense".to_owned(), "access"),
        (
            "an id with the request's case changed",
            format!("{}.access.{SOURCE}", request.to_string().to_uppercase()),
            "access",
        ),
    ] {
        let body =
            json!({"job_id": job_id, "operation": operation, "status": "done"}).to_string().into_bytes();
        let (status, answer) = world.post(&receiver, SOURCE, body, Signed::With(KEY)).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "{case}: {answer}");
    }
    assert_eq!(world.snapshot().await, before);
}

#[tokio::test]
async fn a_callback_for_a_job_nobody_waits_for_is_not_found() {
    let world = world().await;
    let receiver = world.receiver();
    let before = world.snapshot().await;
    for (case, job_id, operation) in [
        ("a request that does not exist", format!("{}.access.{SOURCE}", RequestId::generate()), "access"),
        ("an erasure the request never asked for", format!("{}.erasure.{SOURCE}", world.request), "erasure"),
    ] {
        let body =
            json!({"job_id": job_id, "operation": operation, "status": "done"}).to_string().into_bytes();
        let (status, answer) = world.post(&receiver, SOURCE, body, Signed::With(KEY)).await;
        assert_eq!((status, code(&answer)), (404, "not_found"), "{case}: {answer}");
    }
    assert_eq!(world.snapshot().await, before);
}

#[tokio::test]
async fn an_oversized_body_is_refused_413_and_a_body_that_is_not_the_callback_400_even_when_signed() {
    let world = world().await;
    let receiver = world.receiver();
    let before = world.snapshot().await;
    let oversized = format!(
        r#"{{"job_id": "{}", "operation": "access", "status": "done", "pad": "{}"}}"#,
        world.job_id(),
        "x".repeat(MAX_CALLBACK_BYTES)
    );
    let (status, answer) = world.post(&receiver, SOURCE, oversized.into_bytes(), Signed::With(KEY)).await;
    assert_eq!((status, code(&answer)), (413, "payload_too_large"), "{answer}");
    let job = world.job_id();
    for (case, body) in [
        ("not JSON", b"job done".to_vec()),
        ("empty", Vec::new()),
        ("not an object", b"[]".to_vec()),
        (
            "a field the contract does not have",
            json!({"job_id": job, "operation": "access", "status": "done", "records": []})
                .to_string()
                .into_bytes(),
        ),
        (
            "a status other than done",
            json!({"job_id": job, "operation": "access", "status": "failed"}).to_string().into_bytes(),
        ),
        ("no status", json!({"job_id": job, "operation": "access"}).to_string().into_bytes()),
        (
            "an unknown operation",
            json!({"job_id": job, "operation": "read", "status": "done"}).to_string().into_bytes(),
        ),
    ] {
        let (status, answer) = world.post(&receiver, SOURCE, body, Signed::With(KEY)).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "{case}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap_or_default().contains(&job), "{case}: no echo");
    }
    assert_eq!(world.snapshot().await, before);
}

#[tokio::test]
async fn a_callback_is_logged_by_request_source_and_outcome_and_its_body_never() {
    let world = world().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = privacy_shared::telemetry::subscriber(move || writer.clone(), Some("trace"), true);
    let _guard = tracing::subscriber::set_default(subscriber);
    let receiver = world.receiver();
    assert_eq!(world.call_back(&receiver, KEY).await.0, 204);
    assert_eq!(world.call_back(&receiver, "someone-elses-key").await.0, 401);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let line = |outcome: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} line in {log}"))
            .clone()
    };
    let woken = line("woken");
    assert_eq!(woken["fields"]["request_id"], world.request.to_string());
    assert_eq!(woken["fields"]["source"], SOURCE);
    assert_eq!(line("bad_signature")["fields"]["source"], SOURCE);
    let body = String::from_utf8(world.done()).unwrap();
    for secret in [body.as_str(), &world.job_id(), KEY] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
}

/// Time moves on while the task waits: the signature is checked against the function's clock.
#[tokio::test]
async fn a_callback_signed_before_the_clock_moved_on_is_stale() {
    let world = world().await;
    let receiver = world.receiver();
    let signed_at = world.stack.clock.now().timestamp();
    world.stack.clock.set(world.stack.clock.now() + Duration::minutes(6));
    let (status, answer) = world.post(&receiver, SOURCE, world.done(), Signed::At(KEY, signed_at)).await;
    assert_eq!((status, code(&answer)), (401, "bad_signature"), "{answer}");
    assert_eq!(world.task().await.wakes, 0);
}
