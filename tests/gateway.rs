//! The local API Gateway (`devstack gateway`) in front of the real handlers, which run in-process
//! against the emulator: what reaches a function is the payload-format-2.0 event API Gateway
//! sends (path parameters, query string, headers, a body that is not UTF-8 base64-encoded), what
//! comes back is the function's answer, and what no route matches gets API Gateway's own answer.

use anyhow::{Result, bail};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::support::*;
use devstack::gateway::{Gateway, Routes};
use devstack::pump::Invoker;
use devstack::template::{self, Template};

/// The local staff key the in-process admin function accepts.
pub const STAFF_KEY: &str = "gateway-test-key-0123456789abcdef";

/// The HTTP functions of the template, in-process, as `cargo lambda watch` runs their binaries:
/// each event goes through `lambda_http`'s own adapter (event to request, response to answer).
pub struct Handlers {
    intake: privacy_shared::AwsDeps,
    verifier: AwsVerifier,
    downloads: download::Downloads<privacy_shared::store::DynamoStore>,
    admin: AwsAdmin,
}

impl Handlers {
    pub fn new(stack: &Stack) -> Handlers {
        Handlers::with_env(stack, Vec::new())
    }

    /// The same, with the staff API's replays of the erasures working (a tombstones table and an
    /// erasure queue of their own; nothing runs the queued replays).
    pub async fn with_replays(stack: &Stack) -> Handlers {
        let (tombstones, queue) = crate::erasure_replay::replay_resources(stack).await;
        Handlers::with_env(stack, vec![("TOMBSTONES_TABLE", tombstones), ("ERASURE_QUEUE_URL", queue)])
    }

    fn with_env(stack: &Stack, mut extra: Vec<(&str, String)>) -> Handlers {
        extra.extend([
            ("STAFF_LOCAL_KEY", STAFF_KEY.to_owned()),
            // What the local key requires (every AWS endpoint on loopback); the SDK is the stack's.
            ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
        ]);
        let env = stack.env(&extra);
        let settings = privacy_shared::config::AdminSettings::load(&env).expect("admin settings");
        Handlers {
            intake: stack.deps(),
            verifier: stack.verifier(),
            downloads: download::Downloads {
                store: stack.deps().store,
                s3: devstack::provision::s3_client(&stack.sdk),
                bucket: "privacy-exports-local".to_owned(),
                clock: stack.clock.clone(),
                status: download::StatusPages::from_config(&stack.config()),
            },
            admin: admin::Admin::with_sdk(&stack.sdk, settings, stack.clock.clone()),
        }
    }
}

/// What `lambda_http::run` does with one invocation of `handler`.
pub(crate) async fn through_lambda_http<F, Fut>(payload: Value, handler: F) -> Result<Value>
where
    F: FnMut(lambda_http::Request) -> Fut,
    Fut: Future<Output = Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible>> + Send,
{
    let event: LambdaRequest = serde_json::from_value(payload)?;
    let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(handler));
    let answer = adapter.call(LambdaEvent::new(event, Context::default())).await?;
    Ok(serde_json::to_value(answer)?)
}

impl Invoker for Handlers {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        match function {
            "intake" => through_lambda_http(payload, |r| intake::handle(&self.intake, r)).await,
            "verify" => through_lambda_http(payload, |r| verify::handle(&self.verifier, r)).await,
            "download" => through_lambda_http(payload, |r| download::handle(&self.downloads, r)).await,
            "admin" => through_lambda_http(payload, |r| admin::handle(&self.admin, r)).await,
            other => bail!("no HTTP function {other}"),
        }
    }
}

/// Keeps every event it passes on, by function.
struct Recording<I> {
    inner: I,
    events: Arc<Mutex<Vec<(String, Value)>>>,
}

impl<I: Invoker> Invoker for Recording<I> {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        self.events.lock().unwrap().push((function.to_owned(), payload.clone()));
        self.inner.invoke(function, payload).await
    }
}

/// A function that cannot be invoked (not built, crashed, out of time).
struct Broken;

impl Invoker for Broken {
    async fn invoke(&self, function: &str, _payload: Value) -> Result<Value> {
        bail!("{function} is not running")
    }
}

/// Serves the template's routes on a free port in front of `invoker`; returns the base URL.
pub async fn start_gateway<I: Invoker + 'static>(invoker: I) -> String {
    let routes = Routes::from_template(&Template::load(&template::default_path()).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(Arc::new(Gateway::new(routes, invoker)).serve(listener));
    base
}

struct Recorded {
    base: String,
    stack: Stack,
    events: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Recorded {
    async fn start() -> Recorded {
        let stack = Stack::new().await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let base = start_gateway(Recording { inner: Handlers::new(&stack), events: events.clone() }).await;
        Recorded { base, stack, events }
    }

    fn events(&self) -> Vec<(String, Value)> {
        self.events.lock().unwrap().clone()
    }

    fn last_event(&self) -> (String, Value) {
        self.events().pop().expect("a function was invoked")
    }
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_body_that_is_not_utf8_reaches_the_function_base64_encoded_and_gets_its_json_error() {
    let gateway = Recorded::start().await;
    let body = b"{\"email\": \"a\xff\xfe@example.com\", \"kind\": \"access\", \"region\": \"NL\"}".to_vec();
    let response = client()
        .post(format!("{}/requests", gateway.base))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, error) = answer(response).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "malformed_json", "the function's own answer: {error}");

    let (function, event) = gateway.last_event();
    assert_eq!(function, "intake");
    assert_eq!(event["isBase64Encoded"], true);
    // The exact bytes, base64 (standard alphabet, padded).
    assert_eq!(
        event["body"],
        "eyJlbWFpbCI6ICJh//5AZXhhbXBsZS5jb20iLCAia2luZCI6ICJhY2Nlc3MiLCAicmVnaW9uIjogIk5MIn0="
    );
}

#[tokio::test]
async fn a_body_of_a_type_api_gateway_does_not_treat_as_text_arrives_base64_and_is_refused_by_type() {
    let gateway = Recorded::start().await;
    let response = client()
        .post(format!("{}/requests", gateway.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40example.com&kind=access&region=NL")
        .send()
        .await
        .unwrap();
    let (status, error) = answer(response).await;
    assert_eq!(status, 415, "{error}");
    assert_eq!(error["error"]["code"], "unsupported_media_type");
    assert_eq!(gateway.last_event().1["isBase64Encoded"], true);
}

#[tokio::test]
async fn a_method_or_path_no_route_declares_gets_api_gateways_404_and_no_function_runs() {
    let gateway = Recorded::start().await;
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        ("GET", "/requests".to_owned()),
        ("PUT", "/requests".to_owned()),
        ("DELETE", format!("/requests/{id}/verify")),
        ("PUT", "/verify".to_owned()),
        ("POST", "/requests//verify".to_owned()),
        ("POST", format!("/requests/{id}/verify/")),
        ("GET", "/nowhere".to_owned()),
        ("PUT", "/".to_owned()),
        ("OPTIONS", "/requests".to_owned()),
        ("DELETE", "/staff/requests".to_owned()),
    ] {
        let response = client()
            .request(method.parse().unwrap(), format!("{}{path}", gateway.base))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("apigw-requestid"));
        let (status, body) = answer(response).await;
        assert_eq!((status, body), (404, json!({"message": "Not Found"})), "{method} {path}");
    }
    assert!(gateway.events().is_empty(), "no function was invoked");
}

#[tokio::test]
async fn a_payload_over_10_mb_gets_api_gateways_413_before_any_function_runs() {
    let gateway = Recorded::start().await;
    let response = client()
        .post(format!("{}/requests", gateway.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(response).await, (413, json!({"message": "Request Entity Too Large"})));
    // Under the gateway's limit, the function's own limit answers, in its own shape.
    let response = client()
        .post(format!("{}/requests", gateway.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    let (status, error) = answer(response).await;
    assert_eq!((status, &error["error"]["code"]), (413, &json!("payload_too_large")));
    assert_eq!(gateway.events().len(), 1);
}

#[tokio::test]
async fn a_function_that_fails_gets_api_gateways_500() {
    let base = start_gateway(Broken).await;
    let response = client()
        .post(format!("{base}/requests"))
        .header("content-type", "application/json")
        .body(submission(&unique_address("broken"), "access", "NL"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(response).await, (500, json!({"message": "Internal Server Error"})));
}

#[tokio::test]
async fn a_submission_is_verified_with_the_mailed_token_through_the_gateway() {
    let gateway = Recorded::start().await;
    let address = unique_address("through-gateway");
    let response = client()
        .post(format!("{}/requests", gateway.base))
        .header("content-type", "application/json")
        .body(submission(&address, "access", "NL"))
        .send()
        .await
        .unwrap();
    let (status, submitted) = answer(response).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["status"], "pending_verification");
    let (function, event) = gateway.last_event();
    assert_eq!(function, "intake");
    assert_eq!(event["isBase64Encoded"], false, "JSON that is UTF-8 travels as text");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");

    let (id, token) = link_parts(&gateway.stack.mail_to(&address).await[0]);
    assert_eq!(submitted["request_id"], id.as_str());
    let preview = client()
        .post(format!("{}/requests/{id}/preview", gateway.base))
        .header("content-type", "application/json")
        .body(token_body(&token))
        .send()
        .await
        .unwrap();
    let (status, preview) = answer(preview).await;
    assert_eq!((status, &preview["kind"]), (200, &json!("access")), "{preview}");

    let verify = |token: String| {
        client()
            .post(format!("{}/requests/{id}/verify", gateway.base))
            .header("content-type", "application/json")
            .body(token_body(&token))
            .send()
    };
    let (status, verified) = answer(verify(token.clone()).await.unwrap()).await;
    assert_eq!((status, verified), (200, json!({"request_id": id, "status": "verified"})));
    let (function, event) = gateway.last_event();
    assert_eq!(function, "verify");
    assert_eq!(event["pathParameters"], json!({"id": id}));
    assert_eq!(event["routeKey"], "POST /requests/{id}/verify");

    let (status, again) = answer(verify(token).await.unwrap()).await;
    assert_eq!((status, &again["error"]["code"]), (400, &json!("verification_failed")), "single use");
}

#[tokio::test]
async fn query_strings_headers_and_path_parameters_reach_the_handlers_as_they_read_them() {
    let gateway = Recorded::start().await;
    // The page: its language from ?lang=, else from Accept-Language; its own headers come back.
    let page = client().get(format!("{}/verify?lang=nl", gateway.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<html lang=\"nl\">"));
    let page = client()
        .get(format!("{}/verify", gateway.base))
        .header("accept-language", "nl-NL,nl;q=0.9")
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("<html lang=\"nl\">"));
    let (_, event) = gateway.last_event();
    assert_eq!(event["headers"]["accept-language"], "nl-NL,nl;q=0.9");
    assert!(event.get("pathParameters").is_none());

    // The download link: id from the path, token and part from the query.
    let id = uuid::Uuid::new_v4();
    let response = client()
        .get(format!("{}/requests/{id}/download?token=not-a-real-token&part=2", gateway.base))
        .send()
        .await
        .unwrap();
    let (status, refused) = answer(response).await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("download_refused")), "{refused}");
    let (function, event) = gateway.last_event();
    assert_eq!(function, "download");
    assert_eq!(event["pathParameters"], json!({"id": id.to_string()}));
    assert_eq!(event["rawQueryString"], "token=not-a-real-token&part=2");
    assert_eq!(event["queryStringParameters"], json!({"token": "not-a-real-token", "part": "2"}));
    let response =
        client().get(format!("{}/requests/{id}/download?part=1", gateway.base)).send().await.unwrap();
    assert_eq!(answer(response).await.0, 403, "no token");

    // An id that is not one: the function's own 404.
    let response = client()
        .post(format!("{}/requests/not-an-id/verify", gateway.base))
        .header("content-type", "application/json")
        .body(token_body("abc"))
        .send()
        .await
        .unwrap();
    let (status, missing) = answer(response).await;
    assert_eq!((status, &missing["error"]["code"]), (404, &json!("not_found")));
}

#[tokio::test]
async fn the_staff_api_opens_with_the_local_key_header_and_plays_no_iam_identity() {
    let gateway = Recorded::start().await;
    let address = unique_address("staff-through-gateway");
    let id = verified_request(&gateway.stack, &address, "objection", "NL").await;
    let staff = |path: String, key: Option<&str>| {
        let mut request = client().get(format!("{}{path}", gateway.base));
        if let Some(key) = key {
            request = request.header(admin::LOCAL_KEY_HEADER, key);
        }
        request.send()
    };
    let (status, listed) =
        answer(staff("/staff/requests?status=verified&limit=100".into(), Some(STAFF_KEY)).await.unwrap())
            .await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed["requests"].as_array().unwrap().iter().any(|r| r["request_id"] == id.to_string()));
    let (_, event) = gateway.last_event();
    assert_eq!(event["queryStringParameters"], json!({"status": "verified", "limit": "100"}));
    assert!(event["requestContext"].get("authorizer").is_none(), "no IAM identity is made up");

    let (status, shown) =
        answer(staff(format!("/staff/requests/{id}"), Some(STAFF_KEY)).await.unwrap()).await;
    assert_eq!((status, &shown["request"]["email"]), (200, &json!(address)));
    for key in [None, Some("wrong-key-0123456789abcdefghij")] {
        let (status, refused) = answer(staff(format!("/staff/requests/{id}"), key).await.unwrap()).await;
        assert_eq!((status, &refused["error"]["code"]), (401, &json!("unauthenticated")), "{key:?}");
    }
    let events: HashMap<String, usize> =
        gateway.events().into_iter().fold(HashMap::new(), |mut m, (f, _)| {
            *m.entry(f).or_default() += 1;
            m
        });
    assert_eq!(events, HashMap::from([("admin".to_owned(), 4)]));
}

#[tokio::test]
async fn the_confirmation_pages_form_reaches_verify_base64_encoded_and_confirms_in_two_steps() {
    let gateway = Recorded::start().await;
    let address = unique_address("form-through-gateway");
    let response = client()
        .post(format!("{}/requests", gateway.base))
        .header("content-type", "application/json")
        .body(submission(&address, "access", "NL"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (id, token) = link_parts(&gateway.stack.mail_to(&address).await[0]);
    let form = |body: String| {
        client()
            .post(format!("{}/verify", gateway.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(body)
            .send()
    };

    let summary = form(format!("request_id={id}&token={token}&lang=en")).await.unwrap();
    assert_eq!(summary.status(), 200);
    let html = summary.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"nl\">") && html.contains("name=\"step\" value=\"confirm\""),
        "{html}"
    );
    let (function, event) = gateway.last_event();
    assert_eq!((function.as_str(), &event["routeKey"]), ("verify", &json!("POST /verify")));
    assert_eq!(event["isBase64Encoded"], true, "a form travels base64-encoded, as API Gateway sends it");

    let confirmed =
        form(format!("request_id={id}&token={token}&confirm=request&step=confirm&lang=nl")).await.unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed.text().await.unwrap().contains("Uw verzoek is bevestigd"));
    let again =
        form(format!("request_id={id}&token={token}&confirm=request&step=confirm&lang=nl")).await.unwrap();
    assert_eq!(again.status(), 400, "single use");
}
