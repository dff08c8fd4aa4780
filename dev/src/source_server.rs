//! The reference webhook source: `api/source-webhook.yaml` served from memory, as a company's
//! applicant-tracking system would serve it. `make dev` runs it behind the data map's
//! `job_applications` source (`devstack source-server`), and the tests start it in-process
//! ([`start`]) to hold both sides of the contract to the document.
//!
//! It checks every call as the contract asks (signature under any key it holds, the clock, the
//! body's shape, the idempotency key) and logs only the job id and the outcome: never a person's
//! address or records.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:7010";
/// A call signed further than this from the server's clock is refused.
pub const TIMESTAMP_TOLERANCE_SECONDS: u64 = 300;
/// Calls carry identifiers, never data: anything bigger is not a call.
pub const MAX_CALL_BYTES: usize = 64 * 1024;
/// The data map's category of every record this source holds.
pub const CATEGORY: &str = "job_application";
/// Why an application that led to a job survives an erasure (the person reads it).
pub const HIRED_REASON: &str = "You were hired from this application. It is part of your personnel file, \
     which employment law requires us to keep until seven years after your employment ends.";

/// One shared key: the secret's string, used as its UTF-8 bytes. Never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(secret: &str) -> SigningKey {
        SigningKey(secret.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// The keys the endpoint holds: the current one signs its callbacks; any of them verifies a call
/// (during a rotation the previous key still does).
#[derive(Clone, Debug)]
pub struct Keys {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl Keys {
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Keys {
        Keys { current, previous }
    }

    /// `current[,previous…]`, as `SOURCE_SIGNING_KEYS` holds them.
    pub fn parse(list: &str) -> Result<Keys> {
        let mut keys = list.split(',').map(str::trim);
        let current = keys.next().filter(|key| !key.is_empty()).context("no signing key")?;
        let previous: Vec<&str> = keys.collect();
        if previous.iter().any(|key| key.is_empty()) {
            bail!("an empty signing key in the list");
        }
        Ok(Keys::new(SigningKey::new(current), previous.into_iter().map(SigningKey::new).collect()))
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

fn mac(key: &SigningKey, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The contract's signature: lower-case hex of HMAC-SHA256 over `<timestamp>.<body>`.
pub fn signature(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
    hex::encode(mac(key, timestamp, body).finalize().into_bytes())
}

/// Whether any `v1=` value of a `Privacy-Signature` header matches `body` at `timestamp` under any
/// of `keys` (compared in constant time). The clock is not looked at here.
pub fn signature_matches(keys: &Keys, timestamp: &str, header: &str, body: &[u8]) -> bool {
    let offered: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|value| hex::decode(value).ok())
        .collect();
    keys.all().any(|key| offered.iter().any(|value| mac(key, timestamp, body).verify_slice(value).is_ok()))
}

/// How the endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every call answered at once (200).
    Immediate,
    /// A job's first call answered 202; the work done `delay` later, then the callback made; the
    /// job's later calls answered 200 with the result (202 until then).
    Deferred { delay: Duration },
}

/// Not `Debug`: it holds the records.
#[derive(Clone)]
pub struct Options {
    /// The data map's id of the source served (a call for another is refused).
    pub source: String,
    pub keys: Keys,
    /// The source's records, as `webhook_sources.<source>` of the sample data holds them.
    pub records: Vec<Value>,
    /// Records per access page: small by default, so that a person with two records already
    /// takes the cursor path.
    pub page_size: NonZeroUsize,
    pub mode: Mode,
}

impl Options {
    /// Serves `records` as `job_applications`, one record a page, answering at once.
    pub fn new(keys: Keys, records: Vec<Value>) -> Options {
        Options {
            source: "job_applications".to_owned(),
            keys,
            records,
            page_size: NonZeroUsize::MIN,
            mode: Mode::Immediate,
        }
    }

    /// From the environment: `SOURCE_SIGNING_KEYS` (required, `current[,previous…]`), `SOURCE_ID`
    /// (default job_applications), `SOURCE_SERVER_SEED` (default dev/seed/sample-data.json),
    /// `SOURCE_SERVER_PAGE_SIZE` (default 1), `SOURCE_SERVER_MODE` (`immediate`, the default, or
    /// `deferred`) and `SOURCE_SERVER_DELAY_MS` (deferred work's delay, default 2000).
    pub fn from_env() -> Result<Options> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        let keys = Keys::parse(&var("SOURCE_SIGNING_KEYS").context("SOURCE_SIGNING_KEYS is not set")?)
            .context("SOURCE_SIGNING_KEYS")?;
        let source = var("SOURCE_ID").unwrap_or_else(|| "job_applications".to_owned());
        let seed = var("SOURCE_SERVER_SEED").map_or_else(crate::seed::default_path, Into::into);
        let number = |name: &str, default: u64| -> Result<u64> {
            var(name).map_or(Ok(default), |v| v.trim().parse().with_context(|| format!("{name}={v:?}")))
        };
        let page_size = NonZeroUsize::new(usize::try_from(number("SOURCE_SERVER_PAGE_SIZE", 1)?)?)
            .context("SOURCE_SERVER_PAGE_SIZE is at least 1")?;
        let mode = match var("SOURCE_SERVER_MODE").as_deref().map(str::trim) {
            None | Some("immediate") => Mode::Immediate,
            Some("deferred") => {
                Mode::Deferred { delay: Duration::from_millis(number("SOURCE_SERVER_DELAY_MS", 2000)?) }
            }
            Some(other) => bail!("SOURCE_SERVER_MODE={other:?}: immediate or deferred"),
        };
        let records = seed_records(&seed, &source)?;
        Ok(Options { source, keys, records, page_size, mode })
    }
}

/// The records of `source` in the sample data's `webhook_sources` (none if it has no such key).
pub fn seed_records(path: &Path, source: &str) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let data: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match data.pointer(&format!("/webhook_sources/{source}")) {
        None => Ok(Vec::new()),
        Some(Value::Array(records)) if records.iter().all(Value::is_object) => Ok(records.clone()),
        Some(_) => bail!("webhook_sources.{source} in {} is not a list of objects", path.display()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Access,
    Erasure,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Access => "access",
            Operation::Erasure => "erasure",
        }
    }
}

/// One callback the server made (each attempt): the job and the status it got (None: no answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackAttempt {
    pub job_id: String,
    pub status: Option<u16>,
}

/// The running server; stops (with any deferred work) when dropped.
pub struct Handle {
    base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// `http://ADDRESS`: the endpoint's base URL (`/access`, `/erasure` below it).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Requests received, whatever became of them.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// The headers of the last request received.
    pub fn last_headers(&self) -> Option<HeaderMap> {
        lock(&self.shared.last_headers).clone()
    }

    /// Every callback attempt so far, oldest first.
    pub fn callbacks(&self) -> Vec<CallbackAttempt> {
        lock(&self.shared.data).callbacks.clone()
    }

    /// How many records the server still holds.
    pub fn record_count(&self) -> usize {
        lock(&self.shared.data).records.len()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.server.abort();
        lock(&self.shared.deferred).abort_all();
    }
}

/// Serves `options` on `listener` until the handle is dropped. Call within a Tokio runtime.
pub fn start(listener: tokio::net::TcpListener, options: Options) -> Handle {
    let base_url = match listener.local_addr() {
        Ok(address) => format!("http://{address}"),
        Err(_) => "http://127.0.0.1".to_owned(),
    };
    let shared = Arc::new(Shared::new(options));
    let server = tokio::spawn(serve(listener, shared.clone()));
    Handle { base_url, shared, server }
}

/// `devstack source-server [ADDRESS]`: the server of [`Options::from_env`] on ADDRESS.
pub async fn run(address: &str) -> Result<()> {
    let options = Options::from_env()?;
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("listening on {address}"))?;
    let mode = match options.mode {
        Mode::Immediate => "answering at once".to_owned(),
        Mode::Deferred { delay } => format!("answering 202 and calling back after {} ms", delay.as_millis()),
    };
    println!(
        "source-server: {} on http://{} ({} records, {} a page, {mode})",
        options.source,
        listener.local_addr()?,
        options.records.len(),
        options.page_size
    );
    serve(listener, Arc::new(Shared::new(options))).await;
    Ok(())
}

struct Shared {
    source: String,
    keys: Keys,
    page_size: NonZeroUsize,
    mode: Mode,
    data: Mutex<Data>,
    calls: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
    deferred: Mutex<tokio::task::JoinSet<()>>,
    client: reqwest::Client,
}

#[derive(Default)]
struct Data {
    records: Vec<Value>,
    /// Erasure receipts by job id: a repeat gets the same one.
    receipts: HashMap<String, Value>,
    /// Deferred jobs by id: `false` while working, `true` once done.
    jobs: HashMap<String, bool>,
    callbacks: Vec<CallbackAttempt>,
}

impl Shared {
    fn new(options: Options) -> Shared {
        Shared {
            source: options.source,
            keys: options.keys,
            page_size: options.page_size,
            mode: options.mode,
            data: Mutex::new(Data { records: options.records, ..Data::default() }),
            calls: AtomicUsize::new(0),
            last_headers: Mutex::new(None),
            deferred: Mutex::new(tokio::task::JoinSet::new()),
            client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the data is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    use hyper_util::rt::TokioIo;
    // Owned here, so that stopping the server (aborting this task) closes its connections too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                eprintln!("source-server: accepting a connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A refusal: status, code and a message naming no personal data.
struct Refusal(StatusCode, &'static str, String);

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal(status, code, message.into())
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn answer(
    shared: &Arc<Shared>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    *lock(&shared.last_headers) = Some(request.headers().clone());
    let path = request.uri().path().to_owned();
    let (status, body) = match handle(shared, request).await {
        Ok((status, body)) => {
            println!("source-server: POST {path} {} -> {}", body.job_id, status.as_u16());
            (status, body.answer)
        }
        Err(Refusal(status, code, message)) => {
            println!("source-server: {path} -> {} {code}", status.as_u16());
            (status, json!({"error": {"code": code, "message": message}}))
        }
    };
    json_response(status, &body)
}

struct Answered {
    job_id: String,
    answer: Value,
}

async fn handle(
    shared: &Arc<Shared>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<(StatusCode, Answered), Refusal> {
    let operation = match request.uri().path() {
        "/access" => Operation::Access,
        "/erasure" => Operation::Erasure,
        _ => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                "the endpoint serves POST /access and POST /erasure",
            ));
        }
    };
    if request.method() != Method::POST {
        return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "only POST"));
    }
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_CALL_BYTES).collect().await.map(|c| c.to_bytes()).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("the body is unreadable or over {MAX_CALL_BYTES} bytes"),
        )
    })?;
    check_signature(&shared.keys, &parts.headers, &body, unix_now())?;
    let call = Call::parse(operation, &parts.headers, &body, &shared.source)?;
    let job_id = call.job_id.clone();
    let (status, answer) = respond(shared, call);
    Ok((status, Answered { job_id, answer }))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// The contract's check: both headers, a timestamp within the tolerance, a matching signature.
fn check_signature(keys: &Keys, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(timestamp), Some(signature)) = (header("privacy-timestamp"), header("privacy-signature"))
    else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing_signature",
            "Privacy-Timestamp and Privacy-Signature are required",
        ));
    };
    let fresh = !timestamp.is_empty()
        && timestamp.bytes().all(|b| b.is_ascii_digit())
        && timestamp.parse::<u64>().is_ok_and(|at| at.abs_diff(now) <= TIMESTAMP_TOLERANCE_SECONDS);
    if !fresh {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
            format!(
                "Privacy-Timestamp is not Unix seconds within {TIMESTAMP_TOLERANCE_SECONDS} s of this endpoint's clock"
            ),
        ));
    }
    if !signature_matches(keys, timestamp, signature, body) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "no signature matches a key this endpoint holds",
        ));
    }
    Ok(())
}

/// A call, checked against the contract. Not `Debug`: it holds an address.
struct Call {
    job_id: String,
    operation: Operation,
    /// Normalised (trimmed, lower case).
    email: String,
    user_id: Option<String>,
    since: Option<DateTime<Utc>>,
    cursor: Option<String>,
    callback_url: Option<reqwest::Url>,
}

impl Call {
    fn parse(operation: Operation, headers: &HeaderMap, body: &[u8], source: &str) -> Result<Call, Refusal> {
        let bad = |message: String| refuse(StatusCode::BAD_REQUEST, "bad_body", message);
        let json = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(bad("Content-Type is not application/json".into()));
        }
        let body: Value = serde_json::from_slice(body).map_err(|_| bad("the body is not JSON".into()))?;
        let what = format!("the body is not an {} call", operation.as_str());
        // Messages name the field, never its value (it may be an address).
        let field = |name: &str| body.get(name).ok_or_else(|| bad(format!("{what}: `{name}` is missing")));
        let text = |name: &str| -> Result<String, Refusal> {
            field(name)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("{what}: `{name}` is not a string")))
        };
        let nullable = |value: &Value, name: &str| -> Result<Option<String>, Refusal> {
            match value {
                Value::Null => Ok(None),
                Value::String(text) => Ok(Some(text.clone())),
                _ => Err(bad(format!("{what}: `{name}` is neither a string nor null"))),
            }
        };
        let job_id = text("job_id")?;
        let request_id = text("request_id")?;
        let source_id = text("source")?;
        if text("operation")? != operation.as_str() {
            return Err(bad(format!("{what}: `operation` is not {}", operation.as_str())));
        }
        // A lower-case, hyphenated UUID, as the privacy system's request ids are.
        let uuid_shape = request_id.len() == 36
            && request_id.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if !uuid_shape {
            return Err(bad(format!("{what}: `request_id` is not a lower-case UUID")));
        }
        if job_id != format!("{request_id}.{}.{source_id}", operation.as_str()) {
            return Err(bad(format!("{what}: `job_id` is not <request_id>.<operation>.<source>")));
        }
        if source_id != source {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "unknown_source",
                format!("this endpoint serves `{source}`"),
            ));
        }
        if headers.get("idempotency-key").and_then(|v| v.to_str().ok()) != Some(job_id.as_str()) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "bad_idempotency_key",
                "Idempotency-Key is not the body's job_id",
            ));
        }
        let subject = field("subject")?;
        let email = subject
            .get("email")
            .and_then(Value::as_str)
            .map(|email| email.trim().to_lowercase())
            .filter(|email| !email.is_empty())
            .ok_or_else(|| bad(format!("{what}: `subject.email` is not a non-empty string")))?;
        let user_id = nullable(
            subject.get("user_id").ok_or_else(|| bad(format!("{what}: `subject.user_id` is missing")))?,
            "subject.user_id",
        )?
        .filter(|id| !id.is_empty());
        let callback_url = nullable(field("callback_url")?, "callback_url")?
            .map(|url| {
                reqwest::Url::parse(&url)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https"))
                    .ok_or_else(|| bad(format!("{what}: `callback_url` is not an http(s) URL")))
            })
            .transpose()?;
        let (since, cursor) = match operation {
            Operation::Erasure => (None, None),
            Operation::Access => {
                let since = nullable(field("since")?, "since")?
                    .map(|since| {
                        DateTime::parse_from_rfc3339(&since)
                            .map(|since| since.with_timezone(&Utc))
                            .map_err(|_| bad(format!("{what}: `since` is not an RFC 3339 date-time")))
                    })
                    .transpose()?;
                (since, nullable(field("cursor")?, "cursor")?)
            }
        };
        Ok(Call { job_id, operation, email, user_id, since, cursor, callback_url })
    }

    fn belongs_to_subject(&self, record: &Value) -> bool {
        let email = record.get("email").and_then(Value::as_str).map(|email| email.trim().to_lowercase());
        email.as_deref() == Some(self.email.as_str())
            || self
                .user_id
                .as_deref()
                .is_some_and(|id| record.get("user_id").and_then(Value::as_str) == Some(id))
    }

    /// Within the call's window. A record without a readable date is given (better an answer too
    /// full than one that hides a record).
    fn in_window(&self, record: &Value) -> bool {
        let applied = record
            .get("applied_at")
            .and_then(Value::as_str)
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok());
        match (self.since, applied) {
            (Some(since), Some(applied)) => applied >= since,
            _ => true,
        }
    }
}

fn cursor_for(job_id: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{job_id}:{offset}"))
}

/// The offset a cursor stands for; refused unless this server made it for this job.
fn offset_of(job_id: &str, cursor: &str) -> Option<usize> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (job, offset) = decoded.rsplit_once(':')?;
    if job != job_id {
        return None;
    }
    offset.parse().ok()
}

fn respond(shared: &Arc<Shared>, call: Call) -> (StatusCode, Value) {
    if let Mode::Deferred { delay } = shared.mode {
        let mut data = lock(&shared.data);
        match data.jobs.get(&call.job_id) {
            Some(true) => {}
            Some(false) => return (StatusCode::ACCEPTED, json!({"status": "accepted"})),
            None => {
                data.jobs.insert(call.job_id.clone(), false);
                drop(data);
                let mut deferred = lock(&shared.deferred);
                while deferred.try_join_next().is_some() {}
                deferred.spawn(finish_later(Arc::downgrade(shared), call, delay));
                return (StatusCode::ACCEPTED, json!({"status": "accepted"}));
            }
        }
    }
    let mut data = lock(&shared.data);
    match call.operation {
        Operation::Access => match page(&data, &call, shared.page_size) {
            Ok(page) => (StatusCode::OK, page),
            Err(Refusal(status, code, message)) => {
                (status, json!({"error": {"code": code, "message": message}}))
            }
        },
        Operation::Erasure => (StatusCode::OK, erase(&mut data, &call)),
    }
}

fn page(data: &Data, call: &Call, page_size: NonZeroUsize) -> Result<Value, Refusal> {
    let offset = match &call.cursor {
        None => 0,
        Some(cursor) => offset_of(&call.job_id, cursor).ok_or_else(|| {
            refuse(StatusCode::BAD_REQUEST, "bad_cursor", "the cursor is not one this job was given")
        })?,
    };
    let matching: Vec<&Value> = data
        .records
        .iter()
        .filter(|record| call.belongs_to_subject(record) && call.in_window(record))
        .collect();
    let end = offset.saturating_add(page_size.get());
    let records: Vec<&Value> = matching.iter().skip(offset).take(page_size.get()).copied().collect();
    let next_cursor = (end < matching.len()).then(|| cursor_for(&call.job_id, end));
    Ok(json!({"records": records, "next_cursor": next_cursor}))
}

/// Deletes the subject's applications but those that led to a job; the same receipt for a repeat.
fn erase(data: &mut Data, call: &Call) -> Value {
    if let Some(receipt) = data.receipts.get(&call.job_id) {
        return receipt.clone();
    }
    let before = data.records.len();
    let mut kept = 0_usize;
    data.records.retain(|record| {
        if !call.belongs_to_subject(record) {
            return true;
        }
        let hired = record.get("status").and_then(Value::as_str) == Some("hired");
        kept += usize::from(hired);
        hired
    });
    let deleted = before - data.records.len();
    let kept: Vec<Value> = (kept > 0)
        .then(|| json!({"category": CATEGORY, "count": kept, "reason": HIRED_REASON}))
        .into_iter()
        .collect();
    let receipt = json!({"deleted": {CATEGORY: deleted}, "anonymised": {}, "kept": kept});
    data.receipts.insert(call.job_id.clone(), receipt.clone());
    receipt
}

/// A deferred job: the work after `delay`, then the signed callback (if the call gave a URL).
async fn finish_later(shared: Weak<Shared>, call: Call, delay: Duration) {
    tokio::time::sleep(delay).await;
    let Some(shared) = shared.upgrade() else { return };
    {
        let mut data = lock(&shared.data);
        if call.operation == Operation::Erasure {
            erase(&mut data, &call);
        }
        data.jobs.insert(call.job_id.clone(), true);
    }
    if let Some(url) = &call.callback_url {
        call_back(&shared, &call, url).await;
    }
}

/// `POST callback_url` with `{"job_id", "operation", "status": "done"}`, signed with the current
/// key; tried three times at most (the system polls daily anyway), never again once answered 4xx.
async fn call_back(shared: &Shared, call: &Call, url: &reqwest::Url) {
    let body =
        json!({"job_id": call.job_id, "operation": call.operation.as_str(), "status": "done"}).to_string();
    for attempt in 0..3_u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        }
        let timestamp = unix_now().to_string();
        let sent = shared
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &call.job_id)
            .header("Privacy-Timestamp", &timestamp)
            .header(
                "Privacy-Signature",
                format!("v1={}", signature(shared.keys.current(), &timestamp, body.as_bytes())),
            )
            .body(body.clone())
            .send()
            .await;
        let status = sent.as_ref().ok().map(|response| response.status().as_u16());
        lock(&shared.data).callbacks.push(CallbackAttempt { job_id: call.job_id.clone(), status });
        println!(
            "source-server: callback for {} -> {}",
            call.job_id,
            status.map_or_else(|| "no answer".to_owned(), |s| s.to_string())
        );
        if status.is_some_and(|status| status < 500) {
            return;
        }
    }
}

/// What [`put_signing_key`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretChange {
    Created,
    Updated,
    Unchanged,
}

/// Makes `key` the current value of the Secrets Manager secret `secret_id` (created if missing),
/// as the deployed stack keeps a source's key: the functions read it there. Writing the same key
/// again adds no version, so a restart does not push a previous key out of `AWSPREVIOUS`.
pub async fn put_signing_key(
    sdk: &aws_config::SdkConfig,
    secret_id: &str,
    key: &str,
) -> Result<SecretChange> {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    match secrets.get_secret_value().secret_id(secret_id).send().await {
        Ok(current) if current.secret_string() == Some(key) => Ok(SecretChange::Unchanged),
        Ok(_) => {
            secrets
                .put_secret_value()
                .secret_id(secret_id)
                .secret_string(key)
                .send()
                .await
                .with_context(|| format!("updating the secret {secret_id}"))?;
            Ok(SecretChange::Updated)
        }
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            secrets
                .create_secret()
                .name(secret_id)
                .description("The webhook source's HMAC signing key (api/source-webhook.yaml).")
                .secret_string(key)
                .send()
                .await
                .with_context(|| format!("creating the secret {secret_id}"))?;
            Ok(SecretChange::Created)
        }
        Err(err) => Err(err).with_context(|| format!("reading the secret {secret_id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(email: &str, user_id: Option<&str>) -> Call {
        Call {
            job_id: "R1.erasure.job_applications".into(),
            operation: Operation::Erasure,
            email: email.into(),
            user_id: user_id.map(Into::into),
            since: None,
            cursor: None,
            callback_url: None,
        }
    }

    #[test]
    fn keys_are_the_current_first_then_the_previous_ones() {
        let keys = Keys::parse(" new , old").unwrap();
        let body = b"{}";
        assert_eq!(signature(keys.current(), "1", body), signature(&SigningKey::new("new"), "1", body));
        let old = format!("v1={}", signature(&SigningKey::new("old"), "1", body));
        assert!(signature_matches(&keys, "1", &old, body), "a previous key still verifies");
        assert!(Keys::parse("").is_err());
        assert!(Keys::parse("a,,b").is_err());
        assert_eq!(format!("{:?}", keys.current()), "SigningKey(..)", "a key is never printed");
    }

    #[test]
    fn any_v1_value_of_the_header_may_match_and_other_schemes_are_ignored() {
        let keys = Keys::parse("k").unwrap();
        let good = signature(keys.current(), "7", b"x");
        assert!(signature_matches(&keys, "7", &format!("v1={}, v1={good}", "0".repeat(64)), b"x"));
        assert!(!signature_matches(&keys, "7", &format!("v2={good}"), b"x"));
        assert!(!signature_matches(&keys, "8", &format!("v1={good}"), b"x"), "the timestamp is signed");
        assert!(!signature_matches(&keys, "7", &format!("v1={good}"), b"y"), "the body is signed");
    }

    #[test]
    fn a_timestamp_is_refused_beyond_five_minutes_either_way() {
        let keys = Keys::parse("k").unwrap();
        let headers = |at: u64| {
            let mut headers = HeaderMap::new();
            headers.insert("privacy-timestamp", at.to_string().parse().unwrap());
            let value = format!("v1={}", signature(keys.current(), &at.to_string(), b""));
            headers.insert("privacy-signature", value.parse().unwrap());
            headers
        };
        let now = 1_767_225_600;
        for at in [now - 300, now, now + 300] {
            assert!(check_signature(&keys, &headers(at), b"", now).is_ok(), "{at}");
        }
        for at in [now - 301, now + 301] {
            assert!(matches!(
                check_signature(&keys, &headers(at), b"", now),
                Err(Refusal(_, "stale_timestamp", _))
            ));
        }
    }

    #[test]
    fn a_record_is_the_subjects_by_normalised_email_or_by_user_id() {
        let record = json!({"email": " Alice@Example.com", "user_id": null});
        assert!(call("alice@example.com", None).belongs_to_subject(&record));
        assert!(
            !call("bob@example.com", Some("u-alice")).belongs_to_subject(&record),
            "a null id matches nobody"
        );
        let by_id = json!({"email": "other@example.org", "user_id": "u-alice"});
        assert!(call("alice@example.com", Some("u-alice")).belongs_to_subject(&by_id));
        assert!(!call("alice@example.com", Some("u-alice-2")).belongs_to_subject(&by_id));
    }

    #[test]
    fn an_erasure_keeps_a_hired_application_with_its_reason_and_repeats_its_receipt() {
        let mut data = Data {
            records: vec![
                json!({"email": "a@example.com", "status": "rejected"}),
                json!({"email": "a@example.com", "status": "hired"}),
                json!({"email": "b@example.com", "status": "rejected"}),
            ],
            ..Data::default()
        };
        let erasure = call("a@example.com", None);
        let receipt = erase(&mut data, &erasure);
        assert_eq!(receipt["deleted"], json!({"job_application": 1}));
        assert_eq!(receipt["kept"][0]["count"], 1);
        assert!(receipt["kept"][0]["reason"].as_str().unwrap().chars().count() <= 1000);
        assert_eq!(data.records.len(), 2, "the hired application and somebody else's stay");
        assert_eq!(erase(&mut data, &erasure), receipt, "a repeat: the same receipt, nothing more deleted");
        assert_eq!(data.records.len(), 2);
    }

    #[test]
    fn a_cursor_is_only_good_for_the_job_it_was_given_to() {
        let cursor = cursor_for("R1.access.job_applications", 3);
        assert_eq!(offset_of("R1.access.job_applications", &cursor), Some(3));
        assert_eq!(offset_of("R2.access.job_applications", &cursor), None);
        assert_eq!(offset_of("R1.access.job_applications", "not a cursor"), None);
    }

    #[test]
    fn the_sample_data_gives_alice_two_applications_and_bob_one() {
        let records = seed_records(&crate::seed::default_path(), "job_applications").unwrap();
        let alice = call("alice@example.com", Some("u-alice"));
        let bob = call("bob@example.com", Some("u-bob"));
        assert_eq!(records.iter().filter(|r| alice.belongs_to_subject(r)).count(), 2);
        assert_eq!(records.iter().filter(|r| bob.belongs_to_subject(r)).count(), 1);
        assert_eq!(records.len(), 3, "nobody else");
    }
}
