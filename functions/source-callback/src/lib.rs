//! `POST /sources/{source}/callback`: a webhook source (`store: webhook`, `auth: hmac` in the
//! data map) says that a job it accepted earlier (202) is done. The worker that asked ended its
//! invocation and waits on the job's [`SourceTask`]; the callback wakes it ([`TaskChange::Wake`]),
//! `dispatch` sees the task change on the table's stream and sends the worker its job again, and
//! the worker fetches the answer from the endpoint. The callback carries no answer and no
//! personal data, so nothing it says is taken as a result: at worst a forged or repeated
//! callback makes the worker look once more.
//!
//! Nothing is read from the table before the signature holds (the source's secret, current or
//! previous, over the raw body; `api/source-webhook.yaml`), so an unsigned caller learns nothing
//! about which jobs exist and costs no table read. A callback for a job that is answered already,
//! or whose request is closed, changes nothing and is answered 204 like the first: the endpoint
//! may repeat it safely. A callback for a job still waiting wakes it each time (one more look).
//! The body is never logged; the log line says the request, the source and the outcome.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use std::convert::Infallible;
use std::sync::Arc;

use privacy_shared::api::ApiError;
use privacy_shared::config::{self, ConfigError};
use privacy_shared::datamap::{DataMap, Location, WebhookAuth};
use privacy_shared::domain::{JobId, RequestId, TaskChange};
use privacy_shared::store::{DynamoStore, Requests, SourceTasks, StoreError, change_task};
use privacy_shared::webhook::{
    Callback, KeyError, KeySource, SIGNATURE_HEADER, SecretsManagerKeys, SignatureError, TIMESTAMP_HEADER,
};
use privacy_shared::{Clock, Env, SystemClock};

/// The largest callback body read: the contract's body is about a hundred bytes.
pub const MAX_CALLBACK_BYTES: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(transparent)]
    Input(#[from] ApiError),
    /// Not a webhook source of the map that signs its calls.
    #[error("no such webhook source")]
    UnknownSource,
    #[error("the signature headers are missing")]
    Unsigned,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The job id does not read, or names another source or operation than the callback.
    #[error("the job is not this source's")]
    WrongJob,
    /// No task of that job: nothing waits for it.
    #[error("no such job waiting")]
    NoTask,
    /// The source's signing secret could not be read: ours to fix, the endpoint retries.
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallbackError {
    /// What the log line calls it (no value of the request's).
    fn outcome(&self) -> &'static str {
        match self {
            CallbackError::Input(err) if err.status == StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            CallbackError::Input(err) if err.status == StatusCode::METHOD_NOT_ALLOWED => "wrong_method",
            CallbackError::Input(_) => "unreadable",
            CallbackError::UnknownSource => "unknown_source",
            CallbackError::Unsigned => "unsigned",
            CallbackError::Signature(SignatureError::Stale) => "stale_timestamp",
            CallbackError::Signature(_) => "bad_signature",
            CallbackError::WrongJob => "wrong_job",
            CallbackError::NoTask => "no_task",
            CallbackError::Keys(_) => "secret_unreadable",
            CallbackError::Store(_) => "store_failed",
        }
    }

    /// The one place where failures become status codes.
    fn into_response(self) -> Response<Body> {
        match self {
            CallbackError::Input(err) => err.into_response(),
            CallbackError::UnknownSource | CallbackError::NoTask => ApiError::not_found().into_response(),
            CallbackError::Unsigned | CallbackError::Signature(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "The Privacy-Signature header is missing or matches no key of the source, or \
                 Privacy-Timestamp is more than 300 seconds from now.",
            )
            .into_response(),
            CallbackError::WrongJob => bad_request("`job_id` is not a job of this source and operation."),
            CallbackError::Keys(_) | CallbackError::Store(_) => ApiError::unavailable().into_response(),
        }
    }
}

fn bad_request(message: &str) -> Response<Body> {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).into_response()
}

/// What a valid callback did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The task was waiting: the worker looks again.
    Woken,
    /// The source answered already: nothing to do.
    Answered,
    /// The request is closed: nobody waits for the answer.
    Closed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Woken => "woken",
            Outcome::Answered => "already_answered",
            Outcome::Closed => "request_closed",
        }
    }
}

/// The function's settings: the table (every function's) and the data map, which says which
/// sources call back and with which secret.
#[derive(Clone, Debug)]
pub struct CallbackSettings {
    pub table_name: String,
    pub data_map: DataMap,
}

impl CallbackSettings {
    pub fn load(env: &Env) -> Result<CallbackSettings, ConfigError> {
        Ok(CallbackSettings { table_name: env.required("TABLE_NAME")?, data_map: config::data_map(env)? })
    }
}

/// The function: state it keeps between invocations.
pub struct Receiver<S, K> {
    pub store: S,
    pub keys: K,
    pub map: DataMap,
    pub clock: Arc<dyn Clock>,
}

pub type AwsReceiver = Receiver<DynamoStore, SecretsManagerKeys>;

impl AwsReceiver {
    pub async fn from_env() -> Result<AwsReceiver, ConfigError> {
        let settings = CallbackSettings::load(&Env::process())?;
        Ok(Receiver::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(
        sdk: &aws_config::SdkConfig,
        settings: CallbackSettings,
        clock: Arc<dyn Clock>,
    ) -> AwsReceiver {
        Receiver {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table_name),
            keys: SecretsManagerKeys::new(aws_sdk_secretsmanager::Client::new(sdk)),
            map: settings.data_map,
            clock,
        }
    }
}

pub async fn handle<S: Requests + SourceTasks, K: KeySource>(
    receiver: &Receiver<S, K>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let source = path_source(&request);
    let answer = receive(receiver, &request, source.as_deref()).await;
    // Only a source of the map is named in the log: the path is the caller's text.
    let known = source.as_deref().filter(|s| receiver.map.source(s).is_some()).unwrap_or("-");
    Ok(match answer {
        Ok((id, outcome)) => {
            tracing::info!(request_id = %id, source = known, outcome = outcome.as_str(), "source callback");
            Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).unwrap_or_default()
        }
        Err(err) => {
            match &err {
                CallbackError::Keys(e) => {
                    tracing::error!(source = known, error = %e, "the signing secret of a source is not readable")
                }
                CallbackError::Store(e) => {
                    tracing::error!(source = known, error = %e, "request store failed")
                }
                _ => {}
            }
            tracing::warn!(source = known, outcome = err.outcome(), "source callback refused");
            err.into_response()
        }
    })
}

/// The `{source}` of `/sources/{source}/callback`: from the route's path parameter, or from the
/// path itself where the router passes none.
fn path_source(request: &Request) -> Option<String> {
    let from_params = request.path_parameters_ref().and_then(|p| p.first("source").map(str::to_owned));
    from_params.or_else(|| {
        let segments: Vec<&str> = request.uri().path().trim_end_matches('/').split('/').collect();
        match segments.as_slice() {
            [.., "sources", source, "callback"] => Some((*source).to_owned()),
            _ => None,
        }
    })
}

/// The Secrets Manager secret a source signs with, if it is a webhook source that signs.
fn signing_secret<'a>(map: &'a DataMap, source: &str) -> Option<&'a str> {
    match &map.source(source)?.location {
        Location::Webhook { auth: WebhookAuth::Hmac { secret }, .. } => Some(secret),
        _ => None,
    }
}

async fn receive<S: Requests + SourceTasks, K: KeySource>(
    receiver: &Receiver<S, K>,
    request: &Request,
    source: Option<&str>,
) -> Result<(RequestId, Outcome), CallbackError> {
    if request.method() != Method::POST {
        return Err(ApiError::method_not_allowed().into());
    }
    let source = source.ok_or(CallbackError::UnknownSource)?;
    let secret = signing_secret(&receiver.map, source).ok_or(CallbackError::UnknownSource)?;
    let body = body_of(request)?;
    check_signature(receiver, request, secret, body).await?;

    // Signed by the source: from here on the body is the source's word.
    let callback: Callback = serde_json::from_slice(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", UNREADABLE))?;
    let job = JobId::parse(&callback.job_id).ok_or(CallbackError::WrongJob)?;
    if job.source != source || job.operation != callback.operation {
        return Err(CallbackError::WrongJob);
    }
    let store = &receiver.store;
    let task = store.task(job.request_id, job.operation, &job.source).await?.ok_or(CallbackError::NoTask)?;
    if task.state.is_answered() {
        return Ok((job.request_id, Outcome::Answered));
    }
    let open = store.get(job.request_id).await?.is_some_and(|r| r.status.is_open());
    if !open {
        return Ok((job.request_id, Outcome::Closed));
    }
    match change_task(store, &task, &TaskChange::Wake).await? {
        Some(_) => Ok((job.request_id, Outcome::Woken)),
        // Answered meanwhile (the worker got there first).
        None => Ok((job.request_id, Outcome::Answered)),
    }
}

const UNREADABLE: &str =
    "The body must be {\"job_id\": ..., \"operation\": \"access\" | \"erasure\", \"status\": \"done\"}.";

/// The raw body, refused over [`MAX_CALLBACK_BYTES`]. Raw: the signature is over these bytes.
fn body_of(request: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_CALLBACK_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body must be at most {MAX_CALLBACK_BYTES} bytes."),
        ));
    }
    Ok(bytes)
}

/// `Privacy-Timestamp` and `Privacy-Signature` against the source's keys (current and previous).
async fn check_signature<S, K: KeySource>(
    receiver: &Receiver<S, K>,
    request: &Request,
    secret: &str,
    body: &[u8],
) -> Result<(), CallbackError> {
    let headers = request.headers();
    let timestamp =
        headers.get(TIMESTAMP_HEADER).and_then(|v| v.to_str().ok()).ok_or(CallbackError::Unsigned)?;
    // Every value of the header, as one list (a proxy may have split it).
    let signatures: Vec<&str> =
        headers.get_all(SIGNATURE_HEADER).iter().filter_map(|v| v.to_str().ok()).collect();
    if signatures.is_empty() {
        return Err(CallbackError::Unsigned);
    }
    let header = signatures.join(",");
    let now = receiver.clock.now();
    let keys = receiver.keys.keys(secret).await?;
    match keys.verify(timestamp, &header, body, now) {
        // The key may have been rotated since it was cached: read it once more before refusing.
        Err(privacy_shared::webhook::SignatureError::Mismatch) => {
            receiver.keys.fresh_keys(secret).await?.verify(timestamp, &header, body, now)?;
        }
        other => other?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> Request {
        lambda_http::http::Request::builder().method("POST").uri(path).body(Body::Empty).unwrap()
    }

    #[test]
    fn the_source_is_the_segment_before_callback() {
        assert_eq!(
            path_source(&post("/sources/job_applications/callback")).as_deref(),
            Some("job_applications")
        );
        assert_eq!(path_source(&post("/prod/sources/crm/callback/")).as_deref(), Some("crm"));
        assert_eq!(path_source(&post("/sources/callback")), None);
        assert_eq!(path_source(&post("/requests/x/verify")), None);
    }

    #[test]
    fn only_a_webhook_source_that_signs_has_a_secret() {
        let map = DataMap::builtin().unwrap();
        assert_eq!(
            signing_secret(&map, "job_applications"),
            Some("privacy-requests/sources/job_applications")
        );
        for other in ["accounts", "recordings", "website_analytics", "nobody"] {
            assert_eq!(signing_secret(&map, other), None, "{other}");
        }
    }
}
