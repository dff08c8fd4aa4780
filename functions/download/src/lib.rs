//! `GET /requests/{id}/download?token=…`: the link in the completion email. Checks the download
//! token (stored only as a hash, compared in constant time), audits the download, and redirects
//! to a presigned S3 URL valid for at most 15 minutes. Once the bucket's lifecycle has removed
//! the export, it says so in JSON (410), never with S3's XML. Erasure wins: once an erasure of the
//! person has begun deleting their exports after the request was verified, the link is refused,
//! whatever else was left behind.
//!
//! An export in parts (too big for one invocation to write) is downloaded a part at a time with
//! the same link and `&part=N`; without a part number the link gives the whole export, or the
//! first part of one in parts. A part the export does not have is a 404 in JSON.
//!
//! "Where is my request" lives here too, as it reads what a download reads: `POST
//! /requests/{id}/status` answers with the status for a status token (the link in every email,
//! derived from the request id, [`privacy_shared::domain::StatusKey`]), `GET /status` is the page that asks it, `POST
//! /status` the same page for a browser without JavaScript, and `POST /requests/{id}/download`
//! the page's download button: the requester's status token in a form instead of the link's
//! download token, then the same checks, audit and redirect.

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, NaiveDate, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use privacy_shared::api::{ApiError, json_response, path_request_id, read_json};
use privacy_shared::config::{DownloadSettings, Env};
use privacy_shared::domain::{
    Actor, Audience, Event, RequestId, RequestKind, RequestRecord, Status, VerificationToken, export_key,
};
use privacy_shared::pages;
use privacy_shared::store::{DynamoStore, People, Requests, Secrets, StoreError, export_asked_at};
use privacy_shared::{Clock, ConfigError, SystemClock};

mod page;
pub mod status;

use page::Message;
pub use page::{SCRIPT as STATUS_SCRIPT, StatusPages};
use status::StatusView;

/// The longest a presigned URL may live.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Input(#[from] ApiError),
    /// Wrong token, unknown request, or nothing to download: one answer.
    #[error("download refused")]
    Refused,
    /// Wrong status token, unknown request: one answer, whatever the failure.
    #[error("status unavailable")]
    StatusUnavailable,
    #[error("export expired")]
    Expired,
    #[error("no such part")]
    NoSuchPart,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{operation} failed: {code}")]
    S3 { operation: &'static str, code: String },
}

impl DownloadError {
    fn into_response(self) -> Response<Body> {
        match self {
            DownloadError::Input(err) => err.into_response(),
            DownloadError::Refused => {
                ApiError::new(StatusCode::FORBIDDEN, "download_refused", "This download link is not valid.")
                    .into_response()
            }
            DownloadError::StatusUnavailable => ApiError::new(
                StatusCode::NOT_FOUND,
                "status_unavailable",
                "There is no request with this reference and code.",
            )
            .into_response(),
            DownloadError::Expired => ApiError::new(
                StatusCode::GONE,
                "export_expired",
                "This export has expired and was deleted. You can submit a new request.",
            )
            .into_response(),
            DownloadError::NoSuchPart => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "This export has no such part.")
                    .into_response()
            }
            DownloadError::Store(err) => {
                tracing::error!(error = %err, "request store failed");
                ApiError::unavailable().into_response()
            }
            DownloadError::S3 { operation, code } => {
                tracing::error!(operation, code = %code, "export bucket failed");
                ApiError::unavailable().into_response()
            }
        }
    }
}

pub struct Downloads<S> {
    pub store: S,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub clock: Arc<dyn Clock>,
    pub status: StatusPages,
}

impl Downloads<DynamoStore> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = DownloadSettings::load(&Env::process())?;
        Ok(Downloads::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: DownloadSettings, clock: Arc<dyn Clock>) -> Self {
        Downloads {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table_name),
            s3: privacy_shared::deps::s3_client(sdk, settings.s3_path_style),
            bucket: settings.export_bucket,
            clock,
            status: StatusPages::new(settings.status_links, settings.calendar),
        }
    }
}

/// Which of the function's routes a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `/requests/{id}/download`
    Download,
    /// `/requests/{id}/status`
    Status,
    /// `/status`
    Page,
}

fn route(request: &Request) -> Route {
    let path = request.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        [.., "requests", _, "status"] => Route::Status,
        [.., "requests", _, "download"] => Route::Download,
        [.., "status"] => Route::Page,
        // Anything else the router sent here is the download link's to refuse (a 404).
        _ => Route::Download,
    }
}

pub async fn handle<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    Ok(match (route(&request), method) {
        (Route::Download, Method::GET) => match link_download(downloads, &request).await {
            Ok(url) => redirect_to(StatusCode::FOUND, &url),
            Err(err) => err.into_response(),
        },
        (Route::Download, Method::POST) => match form_download(downloads, &request).await {
            Ok(url) => redirect_to(StatusCode::SEE_OTHER, &url),
            Err(err) => err.into_response(),
        },
        (Route::Status, Method::POST) => match status_answer(downloads, &request).await {
            Ok(view) => json_response(StatusCode::OK, &view),
            Err(err) => err.into_response(),
        },
        (Route::Page, Method::GET | Method::HEAD) => {
            let target = export_origin(downloads).await;
            downloads.status.render(&request, StatusCode::OK, None, None, "", target.as_deref())
        }
        (Route::Page, Method::POST) => status_form(downloads, &request).await,
        _ => ApiError::method_not_allowed().into_response(),
    })
}

fn redirect_to(status: StatusCode, url: &str) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(url) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// What opens a download: the completion email's download token, or the status page's button
/// with the requester's status token.
enum Presented {
    Link(VerificationToken),
    Status(String),
}

/// `GET /requests/{id}/download?token=…[&part=N]`
async fn link_download<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    request: &Request,
) -> Result<String, DownloadError> {
    let id = path_request_id(request, "download")?;
    let query = request.query_string_parameters_ref();
    let asked_part = match query.and_then(|q| q.first("part")) {
        None => None,
        Some(raw) => Some(part_number(raw)?),
    };
    let token = query
        .and_then(|q| q.first("token"))
        .and_then(VerificationToken::parse)
        .ok_or(DownloadError::Refused)?;
    redirect(downloads, id, asked_part, Presented::Link(token)).await
}

/// `POST /requests/{id}/download` with the form `token=<status token>[&part=N]`.
async fn form_download<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    request: &Request,
) -> Result<String, DownloadError> {
    if !pages::same_origin(request) {
        return Err(pages::cross_site().into());
    }
    let id = path_request_id(request, "download")?;
    let form = pages::read_form_of(request, |name| matches!(name, "token" | "part"))?;
    let asked_part = form.get("part").map(|raw| part_number(raw)).transpose()?;
    let token = form.get("token").ok_or(DownloadError::Refused)?;
    redirect(downloads, id, asked_part, Presented::Status(token.clone())).await
}

async fn redirect<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    id: RequestId,
    asked_part: Option<u32>,
    presented: Presented,
) -> Result<String, DownloadError> {
    // Only the person's own status link opens a download; the agent's never does.
    if let Presented::Status(token) = &presented
        && downloads.status.key.audience_of(id, token) != Some(Audience::Requester)
    {
        return Err(DownloadError::Refused);
    }
    let record = downloads.store.get(id).await?.ok_or(DownloadError::Refused)?;
    if record.status != Status::Completed || !has_export(record.kind) {
        return Err(DownloadError::Refused);
    }
    let tokens = downloads.store.download_tokens(id).await?;
    let matched = match &presented {
        // The requester's link, or a confirmed third party's: each its own token.
        Presented::Link(token) => {
            let presented = token.hash();
            let mut matched = None;
            for stored in &tokens {
                if stored.token_hash.matches(&presented) {
                    matched = Some(stored.expires_at);
                }
            }
            matched
        }
        // The export is ready once its completion issued the download links; it lasts as long.
        Presented::Status(_) => tokens.iter().map(|t| t.expires_at).max(),
    };
    let expires_at = matched.ok_or(DownloadError::Refused)?;
    // The erasure deletes the export and its links; should a link or an object outlive that (a
    // completion mail sent late, say), the person's erasure still stands.
    if erased_since(downloads, &record).await? {
        tracing::info!(request_id = %id, "download refused: the person's data was erased since");
        return Err(DownloadError::Refused);
    }
    let now = downloads.clock.now();
    if now >= expires_at {
        return Err(DownloadError::Expired);
    }
    // Only once the link is known good: the number of parts is nobody else's business.
    let part = record.export_part(asked_part).map_err(|_| DownloadError::NoSuchPart)?;
    let key = export_key(id, part);
    let file_name = match part {
        None => format!("privacy-export-{id}.zip"),
        Some(part) => format!("privacy-export-{id}-{}", part.file_name().trim_start_matches("export-")),
    };
    match downloads.s3.head_object().bucket(&downloads.bucket).key(&key).send().await {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
            return Err(DownloadError::Expired);
        }
        Err(err) => {
            return Err(DownloadError::S3 {
                operation: "HeadObject",
                code: privacy_shared::aws::error_code(&err),
            });
        }
    }
    let presigning = PresigningConfig::expires_in(LINK_LIFETIME)
        .map_err(|_| DownloadError::S3 { operation: "presign", code: "config".into() })?;
    let presigned = downloads
        .s3
        .get_object()
        .bucket(&downloads.bucket)
        .key(&key)
        .response_content_disposition(format!("attachment; filename=\"{file_name}\""))
        .response_content_type("application/zip")
        .presigned(presigning)
        .await
        .map_err(|_| DownloadError::S3 { operation: "presign", code: "presign".into() })?;
    let which = part.map(|p| format!("part {} of {}", p.number(), p.of()));
    downloads.store.record_event_because(&record, Event::Downloaded, now, Actor::Requester, which).await?;
    tracing::info!(request_id = %id, part = part.map(|p| p.number()), "export downloaded");
    Ok(presigned.uri().to_owned())
}

fn has_export(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::Access | RequestKind::Portability)
}

/// Whether an erasure of the person began deleting their exports after this one was asked for.
async fn erased_since<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    record: &RequestRecord,
) -> Result<bool, DownloadError> {
    let mark = downloads.store.erasure_mark(&record.email.subject_key()).await?;
    Ok(mark.is_some_and(|m| m.overtakes(export_asked_at(record))))
}

/// The last day the requester can download the export, when they can now: the request is
/// completed with an export, its links were issued and have not expired, and no erasure of the
/// person came since.
async fn downloadable_until<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    record: &RequestRecord,
) -> Result<Option<NaiveDate>, DownloadError> {
    if record.status != Status::Completed || !has_export(record.kind) {
        return Ok(None);
    }
    let tokens = downloads.store.download_tokens(record.id).await?;
    let Some(expires_at) = tokens.iter().map(|t| t.expires_at).max() else { return Ok(None) };
    if downloads.clock.now() >= expires_at || erased_since(downloads, record).await? {
        return Ok(None);
    }
    Ok(Some(last_day(&downloads.status, expires_at)))
}

/// The date the completion email gave for the link's end (the business calendar's day).
fn last_day(status: &StatusPages, expires_at: DateTime<Utc>) -> NaiveDate {
    status.calendar.local_date(expires_at)
}

/// The status for a status token: every failure one answer, before or after the store is read.
async fn look_up<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    id: RequestId,
    token: &str,
) -> Result<StatusView, DownloadError> {
    let audience = downloads.status.key.audience_of(id, token).ok_or(DownloadError::StatusUnavailable)?;
    let record = downloads.store.get(id).await?.ok_or(DownloadError::StatusUnavailable)?;
    let until = match audience {
        Audience::Requester => downloadable_until(downloads, &record).await?,
        Audience::Agent => None,
    };
    Ok(StatusView::of(&record, audience, until))
}

#[derive(serde::Deserialize)]
struct StatusQuery {
    token: String,
}

/// `POST /requests/{id}/status` with `{"token": "…"}`.
async fn status_answer<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    request: &Request,
) -> Result<StatusView, DownloadError> {
    let id = path_request_id(request, "status")?;
    let query: StatusQuery = read_json(request, &["token"])?;
    look_up(downloads, id, &query.token).await
}

/// `POST /status`: the page's form, answered with the page (JavaScript off).
async fn status_form<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    request: &Request,
) -> Response<Body> {
    if !pages::same_origin(request) {
        return pages::cross_site().into_response();
    }
    let form = match pages::read_form_of(request, |name| matches!(name, "reference" | "code")) {
        Ok(form) => form,
        Err(err) => return err.into_response(),
    };
    let typed = form.get("reference").map(|r| trim(r)).unwrap_or_default();
    let code = form.get("code").map(|c| trim(c)).unwrap_or_default();
    let (reference, token) = reference_and_code(typed, code);
    let target = export_origin(downloads).await;
    let page = |status, answer, message| {
        downloads.status.render(request, status, answer, message, typed, target.as_deref())
    };
    if reference.is_empty() || token.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, None, Some(Message::Incomplete));
    }
    let Ok(id) = RequestId::parse(reference) else {
        return page(StatusCode::NOT_FOUND, None, Some(Message::Unavailable));
    };
    match look_up(downloads, id, token).await {
        Ok(view) => page(StatusCode::OK, Some((&view, token)), None),
        Err(DownloadError::Store(err)) => {
            tracing::error!(error = %err, "request store failed");
            page(StatusCode::SERVICE_UNAVAILABLE, None, Some(Message::Failed))
        }
        Err(_) => page(StatusCode::NOT_FOUND, None, Some(Message::Unavailable)),
    }
}

/// Spaces around a pasted value, as a form field holds them (ASCII only: what the document calls
/// blank, and no more).
fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// The reference and code as typed; a pasted link (or its fragment, `<reference>.<code>`) in the
/// reference field brings both.
fn reference_and_code<'a>(typed: &'a str, code: &'a str) -> (&'a str, &'a str) {
    let fragment = typed.rsplit_once('#').map_or(typed, |(_, fragment)| fragment);
    match fragment.split_once('.') {
        Some((reference, pasted)) if code.is_empty() => (trim(reference), trim(pasted)),
        Some((reference, _)) => (trim(reference), code),
        None => (fragment, code),
    }
}

/// Where the presigned download URLs point (the export bucket's origin), for the page's policy.
async fn export_origin<S>(downloads: &Downloads<S>) -> Option<String> {
    let presign = || async {
        let presigning = PresigningConfig::expires_in(Duration::from_secs(60)).map_err(|_| ())?;
        let presigned = downloads
            .s3
            .get_object()
            .bucket(&downloads.bucket)
            .key("exports/")
            .presigned(presigning)
            .await
            .map_err(|_| ())?;
        page::origin_of(presigned.uri()).ok_or(())
    };
    downloads.status.export_origin.get_or_try_init(presign).await.ok().cloned()
}

/// `part=N`: a whole number from 1, written plainly (no sign, no leading zero).
fn part_number(raw: &str) -> Result<u32, DownloadError> {
    raw.parse::<u32>()
        .ok()
        .filter(|n| *n >= 1 && n.to_string() == raw)
        .ok_or_else(|| ApiError::invalid_field("part", "must be a whole number from 1").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_number_is_a_plain_whole_number_from_one() {
        assert_eq!(part_number("1").ok(), Some(1));
        assert_eq!(part_number("12").ok(), Some(12));
        for bad in ["0", "-1", "+1", "01", "1.0", "", "one", "4294967296", " 1"] {
            assert!(matches!(part_number(bad), Err(DownloadError::Input(_))), "{bad:?}");
        }
    }
}
