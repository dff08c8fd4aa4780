//! The whole program against a tiny local HTTP server that records what it receives: signed
//! requests verify with SigV4 on the server side, the local key replaces the signature, and the
//! server's answers reach stdout, stderr and the exit code as documented.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use staff_cli::CredentialSource;
use tokio::net::TcpListener;

const REGION: &str = "eu-west-1";
const ACCESS_KEY: &str = "AKIDTEST";
const SECRET: &str = "secret";
const TOKEN: &str = "session-token-value";
const LOCAL_KEY: &str = "local-dev-key-1234";
const ID: &str = "3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52";

/// What the server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Serves the canned `(status, body)` answers in order, one per request, recording each request.
async fn server(answers: Vec<(u16, Value)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (log, answers) = (log.clone(), answers.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (log, answers) = (log.clone(), answers.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        log.lock().unwrap().push(Received {
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string()))
                                .collect(),
                            body,
                        });
                        let (status, answer) =
                            answers.lock().unwrap().next().expect("an answer for every request");
                        let response = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(answer.to_string())))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (endpoint, received)
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn staff(credentials: CredentialSource, args: &[&str]) -> Outcome {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code =
        staff_cli::run(std::iter::once("staff").chain(args.iter().copied()), credentials, &mut out, &mut err)
            .await;
    let outcome =
        Outcome { code, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() };
    for secret in [SECRET, TOKEN, LOCAL_KEY] {
        assert!(!outcome.stdout.contains(secret) && !outcome.stderr.contains(secret), "{secret} was printed");
    }
    outcome
}

fn credentials(token: Option<&str>) -> CredentialSource {
    CredentialSource::Fixed(Credentials::new(ACCESS_KEY, SECRET, token.map(str::to_string), None, "test"))
}

fn request_json() -> Value {
    json!({
        "request_id": ID, "status": "denied", "version": 3, "kind": "access", "region": "NL",
        "regime": "gdpr", "language": "nl", "email": "a@example.com", "name": null, "details": null,
        "received_at": "2026-11-28T09:00:00Z", "received_on": "2026-11-28", "due_on": "2026-12-28",
        "original_due_on": null, "extension_reason": null, "acknowledge_by": null,
        "acknowledged_at": null, "verified_at": "2026-11-28T09:10:00Z",
        "closed_reason": "identity unclear", "cost_estimate": null, "updated_at": "2026-11-29T10:00:00Z"
    })
}

fn empty_page() -> Value {
    json!({ "requests": [], "next_cursor": null })
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn authorization_parts(authorization: &str) -> (String, Vec<String>, String) {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256 ").expect("SigV4 algorithm");
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(", ") {
        match part.split_once('=').unwrap() {
            ("Credential", value) => credential = Some(value.to_string()),
            ("SignedHeaders", value) => signed_headers = Some(value.split(';').map(str::to_string).collect()),
            ("Signature", value) => signature = Some(value.to_string()),
            (other, _) => panic!("unexpected part {other}"),
        }
    }
    (credential.unwrap(), signed_headers.unwrap(), signature.unwrap())
}

/// What API Gateway does: recompute the signature from the request as received (only the
/// headers the client says it signed), with the caller's secret. Returns (sent, recomputed).
fn signatures(received: &Received, session_token: Option<&str>) -> (String, String) {
    let authorization = received.header("authorization").expect("an Authorization header");
    let (_, signed_headers, signature) = authorization_parts(authorization);
    let amz_date = received.header("x-amz-date").expect("x-amz-date");
    let time = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").unwrap().and_utc();
    let identity: Identity =
        Credentials::new(ACCESS_KEY, SECRET, session_token.map(str::to_string), None, "server").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("execute-api")
        .time(SystemTime::from(time))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = received
        .headers
        .iter()
        .filter(|(name, _)| signed_headers.contains(name))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let signable = SignableRequest::new(
        &received.method,
        received.uri.as_str(),
        headers,
        SignableBody::Bytes(&received.body),
    )
    .unwrap();
    let (_, recomputed) = sign(signable, &params).unwrap().into_parts();
    (signature, recomputed)
}

fn assert_signature_verifies(received: &Received, session_token: Option<&str>) {
    let authorization = received.header("authorization").expect("an Authorization header");
    let (credential, signed_headers, _) = authorization_parts(authorization);
    let amz_date = received.header("x-amz-date").expect("x-amz-date");
    assert_eq!(credential, format!("{ACCESS_KEY}/{}/{REGION}/execute-api/aws4_request", &amz_date[..8]));
    for required in ["host", "x-amz-date"] {
        assert!(signed_headers.iter().any(|h| h == required), "{required} not signed: {signed_headers:?}");
    }
    assert_eq!(
        signed_headers.iter().any(|h| h == "x-amz-security-token"),
        session_token.is_some(),
        "{signed_headers:?}"
    );
    let (sent, recomputed) = signatures(received, session_token);
    assert_eq!(sent.len(), 64, "hex SHA-256: {sent}");
    assert_eq!(sent, recomputed);
}

#[tokio::test]
async fn a_signed_list_request_verifies_on_the_server() {
    let (endpoint, received) = server(vec![(200, empty_page())]).await;
    let outcome = staff(
        credentials(None),
        &[
            "--endpoint",
            &endpoint,
            "--region",
            REGION,
            "list",
            "--status",
            "verified",
            "--due-before",
            "2026-12-31",
        ],
    )
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "No requests.\n");

    let received = received.lock().unwrap()[0].clone();
    assert_eq!(received.method, "GET");
    assert_eq!(received.uri, "/staff/requests?status=verified&due_before=2026-12-31");
    assert!(
        received
            .header("authorization")
            .unwrap()
            .starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"))
    );
    assert!(received.header("x-amz-security-token").is_none());
    assert!(received.header("x-staff-key").is_none());
    assert_signature_verifies(&received, None);
}

#[tokio::test]
async fn a_signed_post_with_a_session_token_covers_the_token_and_the_body() {
    let (endpoint, received) = server(vec![(200, json!({ "request": request_json() }))]).await;
    let outcome = staff(
        credentials(Some(TOKEN)),
        &["--endpoint", &endpoint, "--region", REGION, "deny", ID, "--reason", "identity unclear"],
    )
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(outcome.stdout.starts_with(&format!("Denied request {ID}.")), "{}", outcome.stdout);

    let received = received.lock().unwrap()[0].clone();
    assert_eq!(
        (received.method.as_str(), received.uri.as_str()),
        ("POST", format!("/staff/requests/{ID}/deny").as_str())
    );
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<Value>(&received.body).unwrap(),
        json!({ "reason": "identity unclear" })
    );
    assert_eq!(received.header("x-amz-security-token"), Some(TOKEN));
    assert_signature_verifies(&received, Some(TOKEN));
}

#[tokio::test]
async fn a_tampered_body_no_longer_verifies() {
    let (endpoint, received) = server(vec![(200, json!({ "request": request_json() }))]).await;
    staff(
        credentials(None),
        &["--endpoint", &endpoint, "--region", REGION, "complete", ID, "--note", "done"],
    )
    .await;
    let mut received = received.lock().unwrap()[0].clone();
    assert_signature_verifies(&received, None);
    received.body = br#"{"note":"undone"}"#.to_vec();
    let (sent, recomputed) = signatures(&received, None);
    assert_ne!(sent, recomputed, "a changed body must change the signature");
}

#[tokio::test]
async fn with_a_local_key_there_is_no_signature_only_the_key_header() {
    let (endpoint, received) = server(vec![(200, json!({ "request": request_json(), "audit": [] }))]).await;
    let outcome =
        staff(credentials(None), &["--endpoint", &endpoint, "--local-key", LOCAL_KEY, "show", ID]).await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(outcome.stdout.contains("identity unclear"), "{}", outcome.stdout);

    let received = received.lock().unwrap()[0].clone();
    assert_eq!(received.uri, format!("/staff/requests/{ID}"));
    assert_eq!(received.header("x-staff-key"), Some(LOCAL_KEY));
    assert!(received.header("authorization").is_none());
    assert!(received.header("x-amz-date").is_none());
}

#[tokio::test]
async fn the_local_key_needs_no_aws_credentials_or_region() {
    let (endpoint, _received) = server(vec![(200, empty_page())]).await;
    // AwsChain would read the machine's AWS configuration; the local key must short-circuit it.
    let outcome =
        staff(CredentialSource::AwsChain, &["--endpoint", &endpoint, "--local-key", LOCAL_KEY, "list"]).await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
}

#[tokio::test]
async fn api_errors_go_to_stderr_with_their_code_and_exit_code_1() {
    let error =
        json!({ "error": { "code": "extension_too_late", "message": "the deadline has already passed" } });
    let (endpoint, _received) = server(vec![(422, error)]).await;
    let outcome = staff(
        credentials(None),
        &[
            "--endpoint",
            &endpoint,
            "--region",
            REGION,
            "extend",
            ID,
            "--until",
            "2027-02-26",
            "--reason",
            "r",
        ],
    )
    .await;
    assert_eq!(outcome.code, 1);
    assert_eq!(outcome.stdout, "");
    assert_eq!(outcome.stderr, "error: extension_too_late: the deadline has already passed\n");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_panic() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let outcome = staff(credentials(None), &["--endpoint", &endpoint, "--region", REGION, "list"]).await;
    assert_eq!(outcome.code, 1);
    assert!(outcome.stderr.starts_with("error: unreachable: "), "{}", outcome.stderr);
}

#[tokio::test]
async fn signing_without_a_region_is_an_error() {
    let outcome = staff(credentials(None), &["--endpoint", "http://127.0.0.1:9", "list"]).await;
    if std::env::var_os("AWS_REGION").is_none() {
        assert_eq!(outcome.code, 1);
        assert!(outcome.stderr.starts_with("error: no_region: "), "{}", outcome.stderr);
    }
}

#[tokio::test]
async fn list_all_follows_next_cursor_to_the_end() {
    let row = |id: &str| {
        json!({ "request_id": id, "status": "verified", "kind": "access", "regime": "gdpr", "language": "en",
                "received_at": "2026-11-28T09:00:00Z", "due_on": "2026-12-28", "original_due_on": null,
                "acknowledge_by": null })
    };
    let second = "9a1c2d3e-4f50-4617-8829-3a4b5c6d7e8f";
    let (endpoint, received) = server(vec![
        (200, json!({ "requests": [row(ID)], "next_cursor": "page 2/+" })),
        (200, json!({ "requests": [row(second)], "next_cursor": null })),
    ])
    .await;
    let outcome = staff(
        credentials(None),
        &["--endpoint", &endpoint, "--region", REGION, "--json", "list", "--limit", "1", "--all"],
    )
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(printed, json!({ "requests": [row(ID), row(second)], "next_cursor": null }));

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].uri, "/staff/requests?limit=1");
    assert_eq!(received[1].uri, "/staff/requests?limit=1&cursor=page%202%2F%2B");
    assert_signature_verifies(&received[1], None);
}

#[tokio::test]
async fn json_output_prints_the_servers_answer() {
    let answer = json!({ "request": request_json(), "audit": [] });
    let (endpoint, _received) = server(vec![(200, answer.clone())]).await;
    let outcome =
        staff(credentials(None), &["--endpoint", &endpoint, "--local-key", LOCAL_KEY, "--json", "show", ID])
            .await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(serde_json::from_str::<Value>(&outcome.stdout).unwrap(), answer);
    assert!(outcome.stdout.contains("\n  \"request\": {"), "pretty-printed: {}", outcome.stdout);
}

#[tokio::test]
async fn the_endpoints_stage_path_is_kept() {
    let (endpoint, received) = server(vec![(200, empty_page())]).await;
    let outcome =
        staff(credentials(None), &["--endpoint", &format!("{endpoint}/prod/"), "--region", REGION, "list"])
            .await;
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let received = received.lock().unwrap()[0].clone();
    assert_eq!(received.uri, "/prod/staff/requests");
    assert_signature_verifies(&received, None);
}

/// A directory of its own under the system's temporary directory.
fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("staff-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn files_that_cannot_be_attached_are_refused_before_anything_is_sent() {
    let dir = scratch();
    let fine = dir.join("visits.csv");
    std::fs::write(&fine, "date,page\n2026-11-01,/pricing\n").unwrap();
    // Sparse: the size is what is checked, no 50 MiB is written.
    let huge = dir.join("dump.csv");
    std::fs::File::create(&huge).unwrap().set_len(50 * 1024 * 1024 + 1).unwrap();
    let word = dir.join("notes.docx");
    std::fs::write(&word, "x").unwrap();
    let empty = dir.join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing.csv");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (endpoint, received) = server(vec![]).await;
    for (file, code, says) in [
        (path(&missing), "file_not_found", "does not exist"),
        (path(&huge), "invalid_file", "at most 50 MiB"),
        (path(&word), "invalid_file", "allowed are csv"),
        (path(&empty), "invalid_file", "is empty"),
        (path(&dir), "invalid_file", "is not a file"),
    ] {
        let args = [
            "--endpoint",
            &endpoint,
            "--local-key",
            LOCAL_KEY,
            "attach",
            ID,
            "--source",
            "crm",
            &path(&fine),
            &file,
        ];
        let outcome = staff(credentials(None), &args).await;
        assert_eq!(outcome.code, 1, "{file}");
        assert!(outcome.stderr.starts_with(&format!("error: {code}: ")), "{file}: {}", outcome.stderr);
        assert!(outcome.stderr.contains(says), "{file}: {}", outcome.stderr);
    }
    let twice = [
        "--endpoint",
        &endpoint,
        "--local-key",
        LOCAL_KEY,
        "attach",
        ID,
        "--source",
        "crm",
        &path(&fine),
        &path(&fine),
    ];
    let outcome = staff(credentials(None), &twice).await;
    assert!(outcome.stderr.contains("the name of another file"), "{}", outcome.stderr);
    let mut eleven = vec!["--endpoint", &endpoint, "--local-key", LOCAL_KEY, "attach", ID, "--source", "crm"];
    let fine_path = path(&fine);
    eleven.extend(std::iter::repeat_n(fine_path.as_str(), 11));
    let outcome = staff(credentials(None), &eleven).await;
    assert!(outcome.stderr.starts_with("error: invalid_file: 11 files are too many"), "{}", outcome.stderr);
    assert!(received.lock().unwrap().is_empty(), "nothing was sent");
    std::fs::remove_dir_all(&dir).unwrap();
}
