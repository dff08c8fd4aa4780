//! `POST /requests/{id}/verify` proves the requester owns the address, and `GET /verify` serves
//! the page the email links to.
//!
//! A token is single-use, expires, and is compared in constant time against the stored hash.
//! Wrong, expired, used and unknown tokens all get the same answer; after too many wrong tries
//! the request is closed (expired, "too_many_attempts") and must be submitted again.

mod page;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

use privacy_shared::Deps;
use privacy_shared::api::{ApiError, json_response, path_request_id, read_json};
use privacy_shared::domain::{
    Actor, ExpiryReason, RequestId, RequestRecord, Status, Transition, VerificationToken,
};
use privacy_shared::mail::Mailer;
use privacy_shared::store::{
    Change, Outcome, Requests, Secrets, StoreError, TokenSlot, transition_or_reload,
};

pub use page::Page;

const MAX_LOCK_RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Input(#[from] ApiError),
    /// Wrong, expired, already used, or for an unknown request: deliberately one answer.
    #[error("verification failed")]
    Failed,
    #[error("verification locked")]
    Locked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// The one place where failures become status codes.
    fn into_response(self) -> Response<Body> {
        match self {
            VerifyError::Input(err) => err.into_response(),
            VerifyError::Failed => ApiError::new(
                StatusCode::BAD_REQUEST,
                "verification_failed",
                "The link or code is not valid. It may have expired or been used already.",
            )
            .into_response(),
            VerifyError::Locked => ApiError::new(
                StatusCode::FORBIDDEN,
                "verification_locked",
                "Too many wrong attempts. This request is closed; please submit it again.",
            )
            .into_response(),
            VerifyError::Store(err) => {
                tracing::error!(error = %err, "request store failed");
                ApiError::unavailable().into_response()
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

#[derive(Serialize)]
struct Verified {
    request_id: RequestId,
    status: Status,
}

/// The verify function: state it keeps between invocations.
pub struct Verifier<S: Requests + Secrets, M: Mailer> {
    pub deps: Deps<S, M>,
    pub page: Page,
}

impl<S: Requests + Secrets, M: Mailer> Verifier<S, M> {
    pub fn new(deps: Deps<S, M>) -> Self {
        Verifier { deps, page: Page::new() }
    }
}

pub async fn handle<S: Requests + Secrets, M: Mailer>(
    verifier: &Verifier<S, M>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(match *request.method() {
        Method::GET | Method::HEAD => verifier.page.respond(&request),
        Method::POST if request.uri().path().trim_end_matches('/').ends_with("/recipient") => {
            match confirm_recipient(&verifier.deps, &request).await {
                Ok(record) => {
                    json_response(StatusCode::OK, &Verified { request_id: record.id, status: record.status })
                }
                Err(err) => err.into_response(),
            }
        }
        Method::POST => match verify(&verifier.deps, &request).await {
            Ok(record) => {
                json_response(StatusCode::OK, &Verified { request_id: record.id, status: record.status })
            }
            Err(err) => err.into_response(),
        },
        _ => ApiError::method_not_allowed().into_response(),
    })
}

async fn verify<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
) -> Result<RequestRecord, VerifyError> {
    let id = path_request_id(request, "verify")?;
    let body: TokenBody = read_json(request, &["token"])?;
    let token = VerificationToken::parse(&body.token).ok_or(VerifyError::Failed)?;

    let record = deps.store.get(id).await?.ok_or(VerifyError::Failed)?;
    match record.status {
        Status::PendingVerification => {}
        Status::Expired
            if record.closed_reason.as_deref() == Some(ExpiryReason::TooManyAttempts.as_str()) =>
        {
            return Err(VerifyError::Locked);
        }
        _ => return Err(VerifyError::Failed),
    }
    let stored = deps.store.secret(id, TokenSlot::Requester).await?.ok_or(VerifyError::Failed)?;
    let now = deps.clock.now();
    let presented = token.hash();
    if !stored.accepts(&presented, now) {
        return Err(wrong_attempt(deps, record).await);
    }
    let change = Change::new(Transition::Verify { token: presented }, now, Actor::Requester);
    match deps.store.transition(&record, change).await {
        Ok(verified) => {
            tracing::info!(request_id = %id, "request verified");
            Ok(verified)
        }
        // Someone else used this token (or closed the request) first.
        Err(StoreError::Conflict) => Err(VerifyError::Failed),
        Err(err) => Err(err.into()),
    }
}

/// `POST /requests/{id}/recipient`: the second verification of a portability request that names
/// a third party. The same uniform refusal as the first; no lock-out counter, as the request is
/// already verified and a 256-bit token cannot be guessed.
async fn confirm_recipient<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
) -> Result<RequestRecord, VerifyError> {
    let id = path_request_id(request, "recipient")?;
    let body: TokenBody = read_json(request, &["token"])?;
    let token = VerificationToken::parse(&body.token).ok_or(VerifyError::Failed)?;
    let record = deps.store.get(id).await?.ok_or(VerifyError::Failed)?;
    if record.status != Status::Verified
        || record.recipient.is_none()
        || record.recipient_confirmed_at.is_some()
    {
        return Err(VerifyError::Failed);
    }
    let stored = deps.store.secret(id, TokenSlot::Recipient).await?.ok_or(VerifyError::Failed)?;
    let now = deps.clock.now();
    let presented = token.hash();
    if !stored.accepts(&presented, now) {
        return Err(VerifyError::Failed);
    }
    let change = Change::new(Transition::ConfirmRecipient { token: presented }, now, Actor::Requester);
    match deps.store.transition(&record, change).await {
        Ok(confirmed) => {
            tracing::info!(request_id = %id, "third-party recipient confirmed");
            Ok(confirmed)
        }
        Err(StoreError::Conflict) => Err(VerifyError::Failed),
        Err(err) => Err(err.into()),
    }
}

/// Counts the try; the try that reaches the limit closes the request.
async fn wrong_attempt<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    mut record: RequestRecord,
) -> VerifyError {
    let attempts = match deps.store.count_wrong_attempt(record.id).await {
        Ok(Some(n)) => n,
        Ok(None) => return VerifyError::Failed,
        Err(err) => return err.into(),
    };
    tracing::info!(request_id = %record.id, attempts, "wrong verification token");
    if attempts < deps.config.verification.max_wrong_attempts {
        return VerifyError::Failed;
    }
    for _ in 0..MAX_LOCK_RETRIES {
        let change = Change::system(Transition::Expire(ExpiryReason::TooManyAttempts), deps.clock.now());
        match transition_or_reload(&deps.store, &record, change).await {
            Ok(Outcome::Applied(_)) => {
                tracing::warn!(request_id = %record.id, "request locked after too many wrong tokens");
                return VerifyError::Locked;
            }
            Ok(Outcome::Overtaken(Some(fresh))) if fresh.status == Status::PendingVerification => {
                record = fresh
            }
            // Verified or closed by someone else meanwhile: this try simply failed.
            Ok(Outcome::Overtaken(_)) => return VerifyError::Failed,
            Err(err) => return err.into(),
        }
    }
    VerifyError::Failed
}
