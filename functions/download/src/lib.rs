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

use aws_sdk_s3::presigning::PresigningConfig;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use privacy_shared::api::{ApiError, path_request_id};
use privacy_shared::config::{DownloadSettings, Env};
use privacy_shared::domain::{Actor, Event, RequestKind, Status, VerificationToken, export_key};
use privacy_shared::store::{DynamoStore, People, Requests, Secrets, StoreError, export_asked_at};
use privacy_shared::{Clock, ConfigError, SystemClock};

/// The longest a presigned URL may live.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Input(#[from] ApiError),
    /// Wrong token, unknown request, or nothing to download: one answer.
    #[error("download refused")]
    Refused,
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
        }
    }
}

pub async fn handle<S: Requests + Secrets + People>(
    downloads: &Downloads<S>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    if request.method() != lambda_http::http::Method::GET {
        return Ok(ApiError::method_not_allowed().into_response());
    }
    Ok(match redirect(downloads, &request).await {
        Ok(url) => {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::FOUND;
            let headers = response.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&url) {
                headers.insert(header::LOCATION, location);
            }
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        Err(err) => err.into_response(),
    })
}

async fn redirect<S: Requests + Secrets + People>(
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
    let record = downloads.store.get(id).await?.ok_or(DownloadError::Refused)?;
    if record.status != Status::Completed
        || !matches!(record.kind, RequestKind::Access | RequestKind::Portability)
    {
        return Err(DownloadError::Refused);
    }
    // The requester's link, or a confirmed third party's: each its own token.
    let presented = token.hash();
    let tokens = downloads.store.download_tokens(id).await?;
    let mut matched = None;
    for stored in tokens {
        if stored.token_hash.matches(&presented) {
            matched = Some(stored.expires_at);
        }
    }
    let expires_at = matched.ok_or(DownloadError::Refused)?;
    // The erasure deletes the export and its links; should a link or an object outlive that (a
    // completion mail sent late, say), the person's erasure still stands.
    let mark = downloads.store.erasure_mark(&record.email.subject_key()).await?;
    if mark.is_some_and(|m| m.overtakes(export_asked_at(&record))) {
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
