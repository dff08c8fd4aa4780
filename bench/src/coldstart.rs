//! Measures each bootstrap the way Lambda runs it: this program plays the Lambda Runtime API on
//! loopback, starts the bootstrap with the Lambda environment, and times
//! - init: process start until its first `GET /runtime/invocation/next`,
//! - first response: process start until the first invocation's response,
//! - peak RSS (VmHWM) after a run of warm invocations.
//!
//! usage: coldstart [--runs N] [--warm N] NAME=PATH/TO/bootstrap:EVENT_KIND ...
//! EVENT_KIND: intake | verify | empty. The AWS environment (endpoint, table...) is passed through.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

struct Api {
    next_asked: mpsc::UnboundedSender<Instant>,
    events: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    responses: mpsc::UnboundedSender<(Instant, Value)>,
}

fn respond(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    response
}

async fn handle(api: Arc<Api>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if request.method() == hyper::Method::GET && path.ends_with("/runtime/invocation/next") {
        let _ = api.next_asked.send(Instant::now());
        let Some((id, event)) = api.events.lock().await.recv().await else {
            return Ok(respond(500, Bytes::new()));
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 30_000)
            .unwrap_or_default();
        let mut response = respond(200, Bytes::from(event.to_string()));
        let headers = response.headers_mut();
        let set = |h: &mut hyper::HeaderMap, k: &'static str, v: String| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        set(headers, "lambda-runtime-aws-request-id", id);
        set(headers, "lambda-runtime-deadline-ms", deadline.to_string());
        set(
            headers,
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:eu-west-1:123456789012:function:bench".into(),
        );
        set(headers, "lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".into());
        set(headers, "content-type", "application/json".into());
        return Ok(response);
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if path.ends_with("/response") {
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let _ = api.responses.send((Instant::now(), value));
    } else if path.ends_with("/error") {
        let _ =
            api.responses.send((Instant::now(), json!({"runtime_error": String::from_utf8_lossy(&body)})));
    }
    Ok(respond(202, Bytes::new()))
}

struct Target {
    name: String,
    path: String,
    event: String,
}

struct Measured {
    init: Vec<Duration>,
    first_response: Vec<Duration>,
    peak_rss_kib: u64,
    warm_per_invocation: Duration,
    failures: usize,
}

fn api_gateway_event(
    method: &str,
    path: &str,
    route: &str,
    body: Option<String>,
    params: Option<Value>,
) -> Value {
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.example"},
        "pathParameters": params,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.example", "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": route, "stage": "$default",
            "time": "28/Nov/2026:10:00:00 +0000", "timeEpoch": 1_795_860_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

static SUBMISSIONS: AtomicUsize = AtomicUsize::new(0);
const KINDS: [&str; 9] = [
    "access",
    "portability",
    "rectification",
    "deletion",
    "restriction",
    "objection",
    "withdraw_consent",
    "opt_out_of_sale",
    "unsubscribe",
];

/// One event of the kind the function serves, doing real work against the emulator.
/// Submissions cycle through 10 addresses and the 9 kinds: the first 90 create requests (one
/// transaction each), later ones take the repeat path (token rotation and a new email). The
/// emulator copies a whole table for every transaction, so unbounded growth would measure it.
fn event(kind: &str) -> Value {
    match kind {
        "intake" => {
            let n = SUBMISSIONS.fetch_add(1, Ordering::Relaxed);
            let body = json!({"email": format!("bench+{}@example.com", n % 10), "kind": KINDS[(n / 10) % 9], "region": "NL"});
            api_gateway_event("POST", "/requests", "POST /requests", Some(body.to_string()), None)
        }
        "verify" => {
            let id = uuid::Uuid::new_v4().to_string();
            api_gateway_event(
                "POST",
                &format!("/requests/{id}/verify"),
                "POST /requests/{id}/verify",
                Some(json!({"token": "A".repeat(43)}).to_string()),
                Some(json!({"id": id})),
            )
        }
        _ => json!({}),
    }
}

fn ok(response: &Value) -> bool {
    if response.get("runtime_error").is_some() {
        return false;
    }
    // HTTP functions answer with an API Gateway response; anything below 500 is a handled request.
    response.get("statusCode").and_then(Value::as_u64).is_none_or(|s| s < 500)
}

fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")
}

/// Starts the bootstrap against a fresh Runtime API; returns init, first response, and the
/// handles to drive more invocations.
async fn run_once(
    target: &Target,
    warm: usize,
) -> Result<(Duration, Duration, Option<(u64, Duration)>, usize)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (next_tx, mut next_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (response_tx, mut response_rx) = mpsc::unbounded_channel();
    let api = Arc::new(Api { next_asked: next_tx, events: Mutex::new(event_rx), responses: response_tx });
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(api.clone(), request));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });

    let started = Instant::now();
    let mut child = tokio::process::Command::new(&target.path)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &target.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", target.path))?;
    let pid = child.id().context("pid")?;

    let timeout = Duration::from_secs(30);
    let asked = tokio::time::timeout(timeout, next_rx.recv()).await?.context("runtime API closed")?;
    let init = asked - started;
    event_tx.send((uuid::Uuid::new_v4().to_string(), event(&target.event)))?;
    let (answered, first) =
        tokio::time::timeout(timeout, response_rx.recv()).await?.context("no response")?;
    let first_response = answered - started;
    let mut failures = usize::from(!ok(&first));
    if !ok(&first) {
        eprintln!("{}: first invocation failed: {first}", target.name);
    }

    let mut warm_result = None;
    if warm > 0 {
        let warm_start = Instant::now();
        for _ in 0..warm {
            event_tx.send((uuid::Uuid::new_v4().to_string(), event(&target.event)))?;
            let (_, response) =
                tokio::time::timeout(timeout, response_rx.recv()).await?.context("no response")?;
            if !ok(&response) {
                failures += 1;
            }
        }
        let per = warm_start.elapsed() / warm as u32;
        // The process now waits for its next event: its high-water mark covers every invocation.
        tokio::time::timeout(timeout, next_rx.recv()).await?;
        warm_result = Some((peak_rss_kib(pid)?, per));
    }
    child.kill().await.ok();
    server.abort();
    Ok((init, first_response, warm_result, failures))
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut runs = 15;
    let mut warm = 1000;
    let mut targets = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--warm" => warm = args.next().context("--warm N")?.parse()?,
            spec => {
                let (name, rest) = spec.split_once('=').context("NAME=PATH:EVENT")?;
                let (path, event) = rest.rsplit_once(':').context("NAME=PATH:EVENT")?;
                targets.push(Target { name: name.into(), path: path.into(), event: event.into() });
            }
        }
    }
    if targets.is_empty() || runs == 0 {
        bail!("usage: coldstart [--runs N] [--warm N] NAME=PATH:EVENT ...");
    }
    for target in &targets {
        run_once(target, 0).await?; // brings the binary into the page cache; not counted
    }
    // Round-robin over the targets, so drift on a noisy machine hits every target alike.
    let mut results: Vec<Measured> = targets
        .iter()
        .map(|_| Measured {
            init: Vec::new(),
            first_response: Vec::new(),
            peak_rss_kib: 0,
            warm_per_invocation: Duration::ZERO,
            failures: 0,
        })
        .collect();
    for run in 0..runs {
        for (target, m) in targets.iter().zip(results.iter_mut()) {
            // The last round also drives the warm invocations.
            let (init, first, warm_result, failures) =
                run_once(target, if run + 1 == runs { warm } else { 0 }).await?;
            m.init.push(init);
            m.first_response.push(first);
            m.failures += failures;
            if let Some((rss, per)) = warm_result {
                m.peak_rss_kib = rss;
                m.warm_per_invocation = per;
            }
        }
    }
    let floor = targets.iter().position(|t| t.name == "floor-sdk").map(|i| median(&results[i].init));
    println!(
        "| function | init median (ms) | init min (ms) | first response median (ms) | init / SDK floor | peak RSS after {warm} warm (MiB) | warm per invocation (ms) | failures |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (target, m) in targets.iter().zip(&results) {
        let init = median(&m.init);
        let ratio =
            floor.map(|f| format!("{:.2}x", init.as_secs_f64() / f.as_secs_f64())).unwrap_or_default();
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {} |",
            target.name,
            ms(init),
            ms(*m.init.iter().min().unwrap_or(&Duration::ZERO)),
            ms(median(&m.first_response)),
            ratio,
            m.peak_rss_kib as f64 / 1024.0,
            ms(m.warm_per_invocation),
            m.failures
        );
    }
    Ok(())
}
