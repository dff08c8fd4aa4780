//! Webhook sources (`store: webhook` in the data map): the contract of `api/source-webhook.yaml`
//! from the caller's side. The signature both ways, the calls and answers on the wire, the port
//! the export and the erasure ask through ([`Endpoints`]), and its HTTP implementation.
//!
//! An endpoint is somebody else's code, so nothing it answers is trusted: a page is read up to
//! [`MAX_PAGE_BYTES`] and no further, must be the contract's JSON with at most
//! [`MAX_RECORDS_PER_PAGE`] objects, and a source may give at most [`MAX_PAGES`] pages. Anything
//! else is a [`TaskProblem`], never a partial answer: the caller keeps the task waiting and
//! staff see why. Timeouts, connection failures, 5xx and 429 are retried with backoff within one
//! call; the task's idempotency key (its [`JobId`]) makes every retry the same job for the
//! endpoint. No body, address or value ever reaches a log line or an error.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::datamap::{Category, Location, Source, WebhookAuth};
use crate::domain::{ErasedSource, JobId, SourceOperation, TaskProblem};

pub const TIMESTAMP_HEADER: &str = "privacy-timestamp";
pub const SIGNATURE_HEADER: &str = "privacy-signature";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// How far a signed timestamp may be from the receiver's clock.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;
/// The largest page (or receipt) read from an endpoint.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
pub const MAX_RECORDS_PER_PAGE: usize = 1000;
/// The most pages one source gives one person: a million records at most.
pub const MAX_PAGES: u32 = 1000;
/// The longest reason a receipt may give for what was kept.
pub const MAX_REASON_CHARS: usize = 1000;
/// One attempt's time limit; a call makes up to [`ATTEMPTS`] attempts.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
pub const ATTEMPTS: u32 = 3;

type HmacSha256 = Hmac<Sha256>;

/// The keys a source's calls are signed with: the current one, and while a rotation is under way
/// the previous one too (the endpoint may hold either). `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("previous", &self.previous.is_some()).finish_non_exhaustive()
    }
}

impl SigningKeys {
    pub fn new(current: impl Into<Vec<u8>>, previous: Option<Vec<u8>>) -> SigningKeys {
        SigningKeys { current: current.into(), previous: previous.filter(|p| !p.is_empty()) }
    }

    fn all(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.current.as_slice()).chain(self.previous.as_deref())
    }

    /// The `Privacy-Signature` header of a body sent at `timestamp`: one `v1=` per key.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        self.all()
            .map(|key| format!("v1={}", hex::encode(mac(key, timestamp, body))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `header` holds a `v1=` signature of the body at `timestamp` under any of the keys,
    /// and the timestamp is within the tolerance of `now`. Compared in constant time.
    pub fn verify(
        &self,
        timestamp: &str,
        header: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let at: i64 = timestamp.trim().parse().map_err(|_| SignatureError::Timestamp)?;
        if (now.timestamp() - at).abs() > SIGNATURE_TOLERANCE_SECONDS {
            return Err(SignatureError::Stale);
        }
        let presented: Vec<Vec<u8>> = header
            .split(',')
            .filter_map(|part| part.trim().strip_prefix("v1="))
            .filter_map(|hex| hex::decode(hex).ok())
            .collect();
        let matches = self.all().any(|key| {
            let expected = mac(key, at, body);
            presented.iter().any(|p| subtle::ConstantTimeEq::ct_eq(p.as_slice(), expected.as_slice()).into())
        });
        if matches { Ok(()) } else { Err(SignatureError::Mismatch) }
    }
}

fn mac(key: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp is not readable")]
    Timestamp,
    #[error("the timestamp is too far from now")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Where a source's signing keys come from: Secrets Manager in the functions.
pub trait KeySource: Send + Sync {
    fn keys(&self, secret_id: &str) -> impl Future<Output = Result<SigningKeys, KeyError>> + Send;

    /// The keys read afresh, past any cache: for a signature that matched none of the cached
    /// keys, which may be older than a rotation.
    fn fresh_keys(&self, secret_id: &str) -> impl Future<Output = Result<SigningKeys, KeyError>> + Send {
        self.keys(secret_id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reading the signing secret failed: {code}")]
pub struct KeyError {
    pub code: String,
}

/// How long keys read from Secrets Manager are used before they are read again: a rotation is
/// seen within this, and the previous key stays valid at the endpoint meanwhile.
pub const KEY_CACHE: Duration = Duration::from_secs(300);

/// Secrets Manager: `AWSCURRENT` and, when it exists, `AWSPREVIOUS` of the secret, cached.
#[derive(Clone)]
pub struct SecretsManagerKeys {
    client: aws_sdk_secretsmanager::Client,
    cache: Arc<Mutex<HashMap<String, (Instant, SigningKeys)>>>,
}

impl std::fmt::Debug for SecretsManagerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerKeys").finish_non_exhaustive()
    }
}

impl SecretsManagerKeys {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> SecretsManagerKeys {
        SecretsManagerKeys { client, cache: Arc::default() }
    }

    async fn stage(&self, secret_id: &str, stage: &str) -> Result<Option<Vec<u8>>, KeyError> {
        match self.client.get_secret_value().secret_id(secret_id).version_stage(stage).send().await {
            Ok(out) => Ok(out.secret_string().map(|s| s.as_bytes().to_vec())),
            Err(err)
                if stage != "AWSCURRENT" && crate::aws::error_code(&err) == "ResourceNotFoundException" =>
            {
                Ok(None)
            }
            Err(err) => Err(KeyError { code: crate::aws::error_code(&err) }),
        }
    }
}

impl KeySource for SecretsManagerKeys {
    async fn keys(&self, secret_id: &str) -> Result<SigningKeys, KeyError> {
        if let Some((at, keys)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(secret_id)
            && at.elapsed() < KEY_CACHE
        {
            return Ok(keys.clone());
        }
        self.fresh_keys(secret_id).await
    }

    async fn fresh_keys(&self, secret_id: &str) -> Result<SigningKeys, KeyError> {
        let current = self.stage(secret_id, "AWSCURRENT").await?.filter(|k| !k.is_empty());
        let current = current.ok_or_else(|| KeyError { code: "EmptySecret".into() })?;
        let previous = self.stage(secret_id, "AWSPREVIOUS").await?;
        let keys = SigningKeys::new(current, previous);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(secret_id.to_owned(), (Instant::now(), keys.clone()));
        Ok(keys)
    }
}

/// Keys given directly (tests, tools).
#[derive(Clone, Debug, Default)]
pub struct FixedKeys(pub HashMap<String, SigningKeys>);

impl KeySource for FixedKeys {
    async fn keys(&self, secret_id: &str) -> Result<SigningKeys, KeyError> {
        self.0.get(secret_id).cloned().ok_or_else(|| KeyError { code: "ResourceNotFoundException".into() })
    }
}

/// Who the call is about: the address (normalised) and the user id the account gave.
#[derive(Clone, Serialize)]
pub struct Subject {
    pub email: String,
    pub user_id: Option<String>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subject(<redacted>)")
    }
}

/// One call's body, as the contract gives it.
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    pub job_id: String,
    pub operation: SourceOperation,
    pub request_id: String,
    pub source: String,
    pub subject: Subject,
    #[serde(skip_serializing_if = "is_erasure_field_absent")]
    pub since: Option<Option<DateTime<Utc>>>,
    #[serde(skip_serializing_if = "is_erasure_field_absent")]
    pub cursor: Option<Option<String>>,
    pub callback_url: Option<String>,
}

/// `since` and `cursor` are in every access call (null when unset) and in no erasure call.
fn is_erasure_field_absent<T>(field: &Option<Option<T>>) -> bool {
    field.is_none()
}

impl Call {
    pub fn access(
        job: &JobId,
        subject: Subject,
        since: Option<DateTime<Utc>>,
        cursor: Option<String>,
        callback_url: Option<String>,
    ) -> Call {
        Call {
            job_id: job.to_string(),
            operation: SourceOperation::Access,
            request_id: job.request_id.to_string(),
            source: job.source.clone(),
            subject,
            since: Some(since),
            cursor: Some(cursor),
            callback_url,
        }
    }

    pub fn erasure(job: &JobId, subject: Subject, callback_url: Option<String>) -> Call {
        Call {
            job_id: job.to_string(),
            operation: SourceOperation::Erasure,
            request_id: job.request_id.to_string(),
            source: job.source.clone(),
            subject,
            since: None,
            cursor: None,
            callback_url,
        }
    }
}

/// An endpoint's answer: the result now, or later (202).
#[derive(Clone, Debug, PartialEq)]
pub enum Answer<T> {
    Now(T),
    Later,
}

/// One page of the person's records.
#[derive(Clone, PartialEq)]
pub struct RecordPage {
    pub records: Vec<Map<String, Value>>,
    pub next_cursor: Option<String>,
}

impl std::fmt::Debug for RecordPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordPage").field("records", &self.records.len()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    records: Vec<Value>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceipt {
    #[serde(default)]
    deleted: BTreeMap<String, u64>,
    #[serde(default)]
    anonymised: BTreeMap<String, u64>,
    #[serde(default)]
    kept: Vec<RawKept>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKept {
    category: String,
    count: u64,
    reason: String,
}

/// Reads a page as the contract allows it, or says what is wrong with it.
pub fn read_page(body: &[u8]) -> Result<RecordPage, TaskProblem> {
    if body.len() > MAX_PAGE_BYTES {
        return Err(TaskProblem::TooLarge);
    }
    let raw: RawPage = serde_json::from_slice(body).map_err(|_| TaskProblem::BadAnswer)?;
    if raw.records.len() > MAX_RECORDS_PER_PAGE {
        return Err(TaskProblem::TooLarge);
    }
    let records = raw
        .records
        .into_iter()
        .map(|r| match r {
            Value::Object(o) => Ok(o),
            _ => Err(TaskProblem::BadAnswer),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if raw.next_cursor.as_deref().is_some_and(|c| c.is_empty() || c.len() > 4096) {
        return Err(TaskProblem::BadAnswer);
    }
    Ok(RecordPage { records, next_cursor: raw.next_cursor })
}

/// Reads an erasure receipt as the contract allows it (categories the data map knows, a reason
/// for anything kept) into the receipt line the request keeps for the source.
pub fn read_receipt(body: &[u8], source: &Source) -> Result<ErasedSource, TaskProblem> {
    if body.len() > MAX_PAGE_BYTES {
        return Err(TaskProblem::TooLarge);
    }
    let raw: RawReceipt = serde_json::from_slice(body).map_err(|_| TaskProblem::BadAnswer)?;
    let known = |name: &str| serde_json::from_value::<Category>(Value::String(name.to_owned())).is_ok();
    let categories =
        raw.deleted.keys().chain(raw.anonymised.keys()).chain(raw.kept.iter().map(|k| &k.category));
    if categories.clone().any(|c| !known(c)) {
        return Err(TaskProblem::BadAnswer);
    }
    if raw.kept.iter().any(|k| k.reason.trim().is_empty() || k.reason.chars().count() > MAX_REASON_CHARS) {
        return Err(TaskProblem::BadAnswer);
    }
    let sum = |m: &BTreeMap<String, u64>| m.values().fold(0u64, |a, b| a.saturating_add(*b));
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let kept: u64 = raw.kept.iter().map(|k| k.count).fold(0, u64::saturating_add);
    let reasons: Vec<String> = raw.kept.iter().map(|k| k.reason.trim().to_owned()).collect();
    Ok(ErasedSource {
        source: source.id.clone(),
        description: source.description.clone(),
        categories: source
            .disclosure
            .categories
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_owned))
            .collect(),
        deleted: clamp(sum(&raw.deleted)),
        anonymised: clamp(sum(&raw.anonymised).saturating_add(kept)),
        kept_because: (!reasons.is_empty()).then(|| reasons.join(" ")),
    })
}

/// The port the export and the erasure call webhook sources through.
pub trait Endpoints: Send + Sync {
    /// One page of the person's records (`call` an access call), or "later".
    fn access_page(
        &self,
        source: &Source,
        call: &Call,
    ) -> impl Future<Output = Result<Answer<RecordPage>, TaskProblem>> + Send;

    /// The source's erasure receipt (`call` an erasure call), or "later".
    fn erase(
        &self,
        source: &Source,
        call: &Call,
    ) -> impl Future<Output = Result<Answer<ErasedSource>, TaskProblem>> + Send;
}

/// Calls over HTTPS, signed as the source's `auth` says.
#[derive(Clone)]
pub struct HttpEndpoints<K> {
    http: reqwest::Client,
    keys: K,
    /// Base URLs that replace the map's (`SOURCE_ENDPOINTS`), by source id.
    overrides: HashMap<String, String>,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    /// The first retry's wait; each later one doubles it.
    backoff: Duration,
}

impl<K> std::fmt::Debug for HttpEndpoints<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoints").field("overrides", &self.overrides.keys()).finish_non_exhaustive()
    }
}

impl<K: KeySource> HttpEndpoints<K> {
    pub fn new(
        keys: K,
        overrides: HashMap<String, String>,
        credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    ) -> HttpEndpoints<K> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // An endpoint is the company's own: it is never followed elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        HttpEndpoints { http, keys, overrides, credentials, backoff: Duration::from_millis(500) }
    }

    /// The same, with a shorter first wait between attempts (tests).
    pub fn with_backoff(self, backoff: Duration) -> HttpEndpoints<K> {
        HttpEndpoints { backoff, ..self }
    }

    /// The same, with another time limit per attempt (tests of a slow endpoint).
    pub fn with_timeout(self, timeout: Duration) -> HttpEndpoints<K> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        HttpEndpoints { http, ..self }
    }

    fn base<'a>(&'a self, source: &'a Source) -> Result<(&'a str, &'a WebhookAuth), TaskProblem> {
        let Location::Webhook { endpoint, auth } = &source.location else {
            return Err(TaskProblem::BadAnswer);
        };
        Ok((self.overrides.get(&source.id).map_or(endpoint.as_str(), String::as_str), auth))
    }

    /// Posts `call` to `{base}/{operation}` with retries; the status and the body (bounded).
    async fn post(&self, source: &Source, call: &Call) -> Result<(u16, Vec<u8>), TaskProblem> {
        let (base, auth) = self.base(source)?;
        let url = format!("{}/{}", base.trim_end_matches('/'), call.operation);
        let body = serde_json::to_vec(call).map_err(|_| TaskProblem::BadAnswer)?;
        let mut last = TaskProblem::Unavailable;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
            }
            let request = self.signed(&url, auth, &call.job_id, &body).await?;
            match self.send(request).await {
                Ok((status, bytes)) if status == 429 || status >= 500 => {
                    tracing::warn!(source = %source.id, status, attempt, "source endpoint unavailable");
                    last = TaskProblem::Unavailable;
                    let _ = bytes;
                }
                Ok(answer) => return Ok(answer),
                Err(problem @ (TaskProblem::Timeout | TaskProblem::Unavailable)) => {
                    tracing::warn!(source = %source.id, problem = problem.as_str(), attempt, "source endpoint call failed");
                    last = problem;
                }
                Err(problem) => return Err(problem),
            }
        }
        Err(last)
    }

    async fn signed(
        &self,
        url: &str,
        auth: &WebhookAuth,
        job_id: &str,
        body: &[u8],
    ) -> Result<reqwest::Request, TaskProblem> {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(url)
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, job_id)
            .body(body.to_vec())
            .map_err(|_| TaskProblem::BadAnswer)?;
        match auth {
            WebhookAuth::Hmac { secret } => {
                let keys = self.keys.keys(secret).await.map_err(|err| {
                    tracing::error!(error = %err, "the signing secret of a source is not readable");
                    TaskProblem::NoSecret
                })?;
                let now = Utc::now().timestamp();
                let headers = request.headers_mut();
                let stamp =
                    http::HeaderValue::from_str(&now.to_string()).map_err(|_| TaskProblem::BadAnswer)?;
                let signature =
                    http::HeaderValue::from_str(&keys.sign(now, body)).map_err(|_| TaskProblem::BadAnswer)?;
                headers.insert(TIMESTAMP_HEADER, stamp);
                headers.insert(SIGNATURE_HEADER, signature);
            }
            WebhookAuth::SigV4 { region, service } => self.sign_v4(&mut request, region, service).await?,
        }
        reqwest::Request::try_from(request).map_err(|_| TaskProblem::BadAnswer)
    }

    async fn sign_v4(
        &self,
        request: &mut http::Request<Vec<u8>>,
        region: &str,
        service: &str,
    ) -> Result<(), TaskProblem> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let provider = self.credentials.as_ref().ok_or(TaskProblem::NoSecret)?;
        let credentials = provider.provide_credentials().await.map_err(|_| TaskProblem::NoSecret)?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| TaskProblem::NoSecret)?
            .into();
        let uri = request.uri().to_string();
        let body = request.body().clone();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            uri,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|_| TaskProblem::NoSecret)?;
        let (instructions, _) = sign(signable, &params).map_err(|_| TaskProblem::NoSecret)?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    /// One attempt: the status and at most [`MAX_PAGE_BYTES`] + 1 bytes of the body (one more
    /// than allowed tells "too large" without reading the rest).
    async fn send(&self, request: reqwest::Request) -> Result<(u16, Vec<u8>), TaskProblem> {
        let mut response =
            self.http.execute(request).await.map_err(|err| {
                if err.is_timeout() { TaskProblem::Timeout } else { TaskProblem::Unavailable }
            })?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > MAX_PAGE_BYTES as u64) {
            return Err(TaskProblem::TooLarge);
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_PAGE_BYTES {
                        return Err(TaskProblem::TooLarge);
                    }
                }
                Ok(None) => return Ok((status, body)),
                Err(err) if err.is_timeout() => return Err(TaskProblem::Timeout),
                Err(_) => return Err(TaskProblem::Unavailable),
            }
        }
    }
}

/// What a status the contract names means; anything else is a bad answer.
fn outcome(status: u16) -> Result<bool, TaskProblem> {
    match status {
        200 => Ok(true),
        202 => Ok(false),
        401 | 403 => Err(TaskProblem::Refused),
        _ => Err(TaskProblem::BadAnswer),
    }
}

impl<K: KeySource> Endpoints for HttpEndpoints<K> {
    async fn access_page(&self, source: &Source, call: &Call) -> Result<Answer<RecordPage>, TaskProblem> {
        let (status, body) = self.post(source, call).await?;
        if !outcome(status)? {
            return Ok(Answer::Later);
        }
        read_page(&body).map(Answer::Now)
    }

    async fn erase(&self, source: &Source, call: &Call) -> Result<Answer<ErasedSource>, TaskProblem> {
        let (status, body) = self.post(source, call).await?;
        if !outcome(status)? {
            return Ok(Answer::Later);
        }
        read_receipt(&body, source).map(Answer::Now)
    }
}

/// `SOURCE_ENDPOINTS`: `id=url,id=url`, each url checked as the map's are.
pub fn parse_overrides(text: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, url) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not id=url"))?;
        crate::datamap::check_endpoint(id, url).map_err(|e| e.to_string())?;
        out.insert(id.trim().to_owned(), url.trim().to_owned());
    }
    Ok(out)
}

/// The body of a callback an endpoint sends when a job it accepted is done.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    pub job_id: String,
    pub operation: SourceOperation,
    pub status: CallbackStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datamap::DataMap;

    fn keys() -> SigningKeys {
        SigningKeys::new(b"current-key".to_vec(), Some(b"previous-key".to_vec()))
    }

    #[test]
    fn a_signature_verifies_under_either_key_and_only_for_its_body_and_time() {
        let now = Utc::now();
        let at = now.timestamp();
        let header = keys().sign(at, b"{}");
        assert_eq!(header.matches("v1=").count(), 2, "both keys sign while rotating");
        assert_eq!(keys().verify(&at.to_string(), &header, b"{}", now), Ok(()));
        // The endpoint holds only the old key, or only the new one: either verifies.
        let old_only = SigningKeys::new(b"previous-key".to_vec(), None);
        let new_only = SigningKeys::new(b"current-key".to_vec(), None);
        assert_eq!(old_only.verify(&at.to_string(), &header, b"{}", now), Ok(()));
        assert_eq!(new_only.verify(&at.to_string(), &new_only.sign(at, b"{}"), b"{}", now), Ok(()));
        assert_eq!(keys().verify(&at.to_string(), &header, b"{ }", now), Err(SignatureError::Mismatch));
        assert_eq!(keys().verify(&(at + 1).to_string(), &header, b"{}", now), Err(SignatureError::Mismatch));
        let stranger = SigningKeys::new(b"someone-else".to_vec(), None);
        assert_eq!(
            keys().verify(&at.to_string(), &stranger.sign(at, b"{}"), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        let old = (now - chrono::Duration::seconds(301)).timestamp();
        assert_eq!(
            keys().verify(&old.to_string(), &keys().sign(old, b"{}"), b"{}", now),
            Err(SignatureError::Stale)
        );
        assert_eq!(keys().verify("soon", &header, b"{}", now), Err(SignatureError::Timestamp));
        assert_eq!(keys().verify(&at.to_string(), "v1=zz, v2=00", b"{}", now), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // The worked example of api/source-webhook.yaml's description is recomputed by its own
        // test; this one pins the construction.
        let key = SigningKeys::new(b"k".to_vec(), None);
        let mut mac = HmacSha256::new_from_slice(b"k").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            key.sign(1_700_000_000, b"{\"a\":1}"),
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        let secret = SigningKeys::new(b"secret-value".to_vec(), Some(b"older-value".to_vec()));
        assert!(
            !format!("{secret:?}").contains("secret-value") && !format!("{secret:?}").contains("older-value")
        );
    }

    #[test]
    fn a_page_must_be_the_contracts_json_within_its_bounds() {
        let page = read_page(br#"{"records": [{"a": 1}], "next_cursor": "c2"}"#).unwrap();
        assert_eq!((page.records.len(), page.next_cursor.as_deref()), (1, Some("c2")));
        assert!(read_page(br#"{"records": [], "next_cursor": null}"#).unwrap().records.is_empty());
        for (bad, problem) in [
            (b"<html>".to_vec(), TaskProblem::BadAnswer),
            (br#"{"records": [1], "next_cursor": null}"#.to_vec(), TaskProblem::BadAnswer),
            (br#"{"records": {}, "next_cursor": null}"#.to_vec(), TaskProblem::BadAnswer),
            (br#"{"records": [], "next_cursor": null, "extra": 1}"#.to_vec(), TaskProblem::BadAnswer),
            (br#"{"records": [], "next_cursor": ""}"#.to_vec(), TaskProblem::BadAnswer),
            (
                format!(r#"{{"records": [{}], "next_cursor": null}}"#, vec!["{}"; 1001].join(","))
                    .into_bytes(),
                TaskProblem::TooLarge,
            ),
            (vec![b' '; MAX_PAGE_BYTES + 1], TaskProblem::TooLarge),
        ] {
            assert_eq!(
                read_page(&bad).map(|_| ()),
                Err(problem),
                "{}",
                String::from_utf8_lossy(&bad[..bad.len().min(60)])
            );
        }
    }

    #[test]
    fn a_receipt_counts_what_was_deleted_and_kept_and_says_why_in_the_sources_own_words() {
        let map = DataMap::builtin().unwrap();
        let ats = map.source("job_applications").unwrap();
        let body = br#"{"deleted": {"job_application": 2, "contact_data": 1},
            "anonymised": {},
            "kept": [{"category": "job_application", "count": 1, "reason": "Kept for the hiring record."}]}"#;
        let receipt = read_receipt(body, ats).unwrap();
        assert_eq!((receipt.deleted, receipt.anonymised), (3, 1));
        assert_eq!(receipt.kept_because.as_deref(), Some("Kept for the hiring record."));
        assert_eq!(receipt.source, "job_applications");
        for bad in [
            br#"{"deleted": {"cvs": 1}}"#.as_slice(),
            br#"{"deleted": {"job_application": -1}}"#,
            br#"{"kept": [{"category": "job_application", "count": 1, "reason": " "}]}"#,
            br#"{"deleted": {}, "note": "x"}"#,
            b"null",
        ] {
            assert_eq!(
                read_receipt(bad, ats),
                Err(TaskProblem::BadAnswer),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn an_access_call_carries_since_and_cursor_even_when_null_and_an_erasure_call_neither() {
        let job = JobId::parse(&format!("{}.access.job_applications", crate::domain::RequestId::generate()))
            .unwrap();
        let subject = Subject { email: "a@example.com".into(), user_id: None };
        let access = serde_json::to_value(Call::access(&job, subject.clone(), None, None, None)).unwrap();
        assert!(access["since"].is_null() && access.get("since").is_some() && access.get("cursor").is_some());
        assert_eq!(access["job_id"], job.to_string());
        let erasure = serde_json::to_value(Call::erasure(&job, subject.clone(), None)).unwrap();
        assert!(erasure.get("since").is_none() && erasure.get("cursor").is_none());
        assert!(!format!("{subject:?}").contains("a@example.com"));
    }

    #[tokio::test]
    async fn an_endpoint_behind_iam_is_signed_with_sigv4_and_gets_no_shared_key_signature() {
        use aws_credential_types::Credentials;
        use aws_credential_types::provider::SharedCredentialsProvider;
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let endpoints = HttpEndpoints::new(
            FixedKeys::default(),
            HashMap::new(),
            Some(SharedCredentialsProvider::new(credentials)),
        );
        let auth = WebhookAuth::SigV4 { region: "eu-west-1".into(), service: "execute-api".into() };
        let request =
            endpoints.signed("https://ats.example.com/privacy/access", &auth, "job", b"{}").await.unwrap();
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && authorization.contains("/eu-west-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(request.headers().get(SIGNATURE_HEADER).is_none());
        assert_eq!(request.headers()[IDEMPOTENCY_HEADER], "job");
        let unsigned = HttpEndpoints::new(FixedKeys::default(), HashMap::new(), None);
        assert_eq!(
            unsigned.signed("https://ats.example.com/privacy/access", &auth, "job", b"{}").await.err(),
            Some(TaskProblem::NoSecret),
            "no credentials: nothing is sent unsigned"
        );
    }

    #[tokio::test]
    async fn an_hmac_source_whose_secret_cannot_be_read_is_not_called() {
        let endpoints = HttpEndpoints::new(FixedKeys::default(), HashMap::new(), None);
        let auth = WebhookAuth::Hmac { secret: "privacy-requests/sources/missing".into() };
        let signed = endpoints.signed("https://ats.example.com/privacy/access", &auth, "job", b"{}").await;
        assert_eq!(signed.err(), Some(TaskProblem::NoSecret));
    }

    #[test]
    fn endpoint_overrides_are_checked_like_the_maps_endpoints() {
        let parsed =
            parse_overrides("job_applications=http://127.0.0.1:7010, crm=https://crm.example/p").unwrap();
        assert_eq!(parsed["job_applications"], "http://127.0.0.1:7010");
        assert!(parse_overrides("x=http://evil.example/").is_err());
        assert!(parse_overrides("nonsense").is_err());
        assert!(parse_overrides("").unwrap().is_empty());
    }
}
