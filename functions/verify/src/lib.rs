//! `POST /requests/{id}/verify` proves the requester owns the address, `POST
//! /requests/{id}/recipient` confirms a third-party recipient, `POST /requests/{id}/preview`
//! tells the confirmation page what a link would confirm (without using it), `GET /verify`
//! serves that page, and `POST /verify` is that page without JavaScript: its forms, answered with
//! the page rendered on the server (step 1 shows what the code would confirm, step 2 confirms).
//!
//! Opening a link changes nothing: mail scanners and previews open links and run their scripts.
//! The page shows what will be confirmed and confirms only when the person presses its button.
//!
//! A token is single-use, expires, and is compared in constant time against the stored hashes
//! (a slot keeps a few live links, so a resubmission does not kill the one already in the
//! mailbox). Wrong, expired, used and unknown tokens all get the same answer. Wrong tries are
//! limited per request: at the limit every live link of the slot is locked, but the request stays
//! open and a new link (submitting again, or the reminder) works; nobody who merely knows a
//! request id can close it.

mod page;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

use privacy_shared::Deps;
use privacy_shared::api::{ApiError, json_response, path_request_id, read_json};
use privacy_shared::domain::{
    Actor, Language, RequestId, RequestKind, RequestRecord, Status, TokenHash, Transition, VerificationToken,
};
use privacy_shared::mail::Mailer;
use privacy_shared::pages;
use privacy_shared::store::{Change, Requests, Secrets, StoreError, TokenSlot, WrongAttempt};

pub use page::Page;
use page::{Refusal, View};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Input(#[from] ApiError),
    /// Wrong, expired, already used, or for an unknown request: deliberately one answer.
    #[error("verification failed")]
    Failed,
    /// Too many wrong tries: the slot's links no longer work (the request stays open).
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
                "Too many wrong attempts: this link no longer works. Submit your request again to get a new one.",
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

#[derive(Deserialize)]
struct PreviewBody {
    token: String,
    #[serde(default)]
    confirm: Confirmation,
}

/// What a link confirms: the request itself, or the third party an export may go to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    #[default]
    Request,
    Recipient,
}

impl Confirmation {
    fn slot(self) -> TokenSlot {
        match self {
            Confirmation::Request => TokenSlot::Requester,
            Confirmation::Recipient => TokenSlot::Recipient,
        }
    }

    /// Whether the request is where a link of this slot can still be used.
    fn usable(self, record: &RequestRecord) -> bool {
        let in_status = record.status == self.slot().usable_in();
        match self {
            Confirmation::Request => in_status,
            Confirmation::Recipient => {
                in_status && record.recipient.is_some() && record.recipient_confirmed_at.is_none()
            }
        }
    }
}

#[derive(Serialize)]
struct Verified {
    request_id: RequestId,
    status: Status,
}

/// What the page shows before the person confirms. Only for a holder of a live link, who is
/// the owner of the mailbox the link went to.
#[derive(Serialize)]
struct Preview {
    request_id: RequestId,
    confirm: Confirmation,
    kind: RequestKind,
    language: Language,
    /// A deletion cannot be undone once confirmed.
    irreversible: bool,
    /// For a recipient confirmation: where the export would go.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<String>,
}

/// The verify function: state it keeps between invocations.
pub struct Verifier<S, M> {
    pub deps: Deps<S, M>,
    pub page: Page,
}

impl<S: Requests + Secrets, M: Mailer> Verifier<S, M> {
    pub fn new(deps: Deps<S, M>) -> Self {
        Verifier { deps, page: Page::new() }
    }
}

/// The route a POST names: under `/requests/{id}/` by its last path segment, else the page's
/// own form (`POST /verify`, behind any stage prefix).
fn action(request: &Request) -> &'static str {
    let path = request.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    // Anything under /requests is a JSON route (a malformed id there is a 404, not the page).
    if !segments.contains(&"requests") {
        return "page";
    }
    let last = segments.last().copied().unwrap_or_default();
    ["recipient", "preview"].into_iter().find(|a| last == *a).unwrap_or("verify")
}

pub async fn handle<S: Requests + Secrets, M: Mailer>(
    verifier: &Verifier<S, M>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let deps = &verifier.deps;
    let answer = match *request.method() {
        Method::GET | Method::HEAD => return Ok(verifier.page.respond(&request)),
        Method::POST => match action(&request) {
            "page" => return Ok(form(verifier, &request).await),
            "preview" => preview(deps, &request).await.map(|p| json_response(StatusCode::OK, &p)),
            "recipient" => confirm(deps, &request, Confirmation::Recipient).await,
            _ => confirm(deps, &request, Confirmation::Request).await,
        },
        _ => Err(ApiError::method_not_allowed().into()),
    };
    Ok(answer.unwrap_or_else(VerifyError::into_response))
}

/// The request and the presented token's hash when `token` is a live link of the slot; a wrong
/// try is counted against the slot.
async fn check<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    id: RequestId,
    token: &str,
    confirmation: Confirmation,
) -> Result<(RequestRecord, TokenHash), VerifyError> {
    let token = VerificationToken::parse(token).ok_or(VerifyError::Failed)?;
    let record = deps.store.get(id).await?.ok_or(VerifyError::Failed)?;
    if !confirmation.usable(&record) {
        return Err(VerifyError::Failed);
    }
    let slot = confirmation.slot();
    let stored = deps.store.secret(id, slot).await?.ok_or(VerifyError::Failed)?;
    if stored.is_locked() {
        return Err(VerifyError::Locked);
    }
    let now = deps.clock.now();
    let presented = token.hash();
    if stored.accepts(&presented, now) {
        return Ok((record, presented));
    }
    let limit = deps.config.verification.max_wrong_attempts;
    match deps.store.count_wrong_attempt(id, slot, now, limit).await {
        Ok(WrongAttempt::Locked) => {
            tracing::warn!(request_id = %id, "links locked after too many wrong tokens; the request stays open");
            Err(VerifyError::Locked)
        }
        Ok(WrongAttempt::Counted(attempts)) => {
            tracing::info!(request_id = %id, attempts, "wrong verification token");
            Err(VerifyError::Failed)
        }
        // Changed meanwhile: this try simply failed.
        Ok(WrongAttempt::NoSecret) | Err(StoreError::Conflict) => Err(VerifyError::Failed),
        Err(err) => Err(err.into()),
    }
}

/// `POST /requests/{id}/preview`: what the page should show. Reads; spends nothing.
async fn preview<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
) -> Result<Preview, VerifyError> {
    let id = path_request_id(request, "preview")?;
    let body: PreviewBody = read_json(request, &["token", "confirm"])?;
    let (record, _) = check(deps, id, &body.token, body.confirm).await?;
    Ok(Preview::of(&record, body.confirm))
}

impl Preview {
    fn of(record: &RequestRecord, confirm: Confirmation) -> Preview {
        Preview {
            request_id: record.id,
            confirm,
            kind: record.kind,
            language: record.language,
            irreversible: record.kind == RequestKind::Deletion && confirm == Confirmation::Request,
            recipient: match confirm {
                Confirmation::Recipient => record.recipient.as_ref().map(|r| r.as_str().to_owned()),
                Confirmation::Request => None,
            },
        }
    }
}

/// `POST /requests/{id}/verify` and `POST /requests/{id}/recipient`: the person pressed the
/// button. The token is spent in the same transaction that moves the request.
async fn confirm<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
    confirmation: Confirmation,
) -> Result<Response<Body>, VerifyError> {
    let route = match confirmation {
        Confirmation::Request => "verify",
        Confirmation::Recipient => "recipient",
    };
    let id = path_request_id(request, route)?;
    let body: TokenBody = read_json(request, &["token"])?;
    let updated = confirmed(deps, id, &body.token, confirmation).await?;
    Ok(json_response(StatusCode::OK, &Verified { request_id: updated.id, status: updated.status }))
}

/// Spends the token in the same transaction that moves the request (or confirms its recipient).
async fn confirmed<S: Requests + Secrets, M: Mailer>(
    deps: &Deps<S, M>,
    id: RequestId,
    token: &str,
    confirmation: Confirmation,
) -> Result<RequestRecord, VerifyError> {
    let (record, presented) = check(deps, id, token, confirmation).await?;
    let transition = match confirmation {
        Confirmation::Request => Transition::Verify { token: presented },
        Confirmation::Recipient => Transition::ConfirmRecipient { token: presented },
    };
    match deps.store.transition(&record, Change::new(transition, deps.clock.now(), Actor::Requester)).await {
        Ok(updated) => {
            let route = match confirmation {
                Confirmation::Request => "verify",
                Confirmation::Recipient => "recipient",
            };
            tracing::info!(request_id = %id, confirmed = route, "confirmed by the requester");
            Ok(updated)
        }
        // Someone else used this token (or the request moved on) first.
        Err(StoreError::Conflict) => Err(VerifyError::Failed),
        Err(err) => Err(err.into()),
    }
}

/// `POST /verify`: the page's forms without JavaScript. Step 1 (the reference and code) checks
/// the code like the preview route, counting a wrong one, and answers with what it would confirm
/// and one button; step 2 (that button, `step=confirm`) confirms like `POST
/// /requests/{id}/verify` or `/recipient`. Refusals are said in words on the page, with a 4xx.
async fn form<S: Requests + Secrets, M: Mailer>(
    verifier: &Verifier<S, M>,
    request: &Request,
) -> Response<Body> {
    // Another site's form could otherwise make a visitor's browser confirm, or spend their
    // wrong tries: refused before anything is read.
    if !pages::same_origin(request) {
        return pages::cross_site().into_response();
    }
    let page = &verifier.page;
    let fields = match pages::read_form(request) {
        Ok(fields) => fields,
        Err(err) => {
            let refused = View::Refused { outcome: Refusal::Unreadable, request_id: "" };
            return page.answer(err.status, pages::page_language(request), refused);
        }
    };
    let field = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let language =
        field("lang").and_then(|l| l.parse().ok()).unwrap_or_else(|| pages::page_language(request));
    let typed = field("request_id").unwrap_or("");
    let refuse = |status: StatusCode, outcome: Refusal| {
        page.answer(status, language, View::Refused { outcome, request_id: typed })
    };
    let (Some(raw_id), Some(token)) = (field("request_id"), field("token")) else {
        return refuse(StatusCode::BAD_REQUEST, Refusal::Incomplete);
    };
    // A malformed reference or `confirm` is no request's: the one answer for every wrong code.
    let Ok(id) = RequestId::parse(raw_id) else {
        return refuse(StatusCode::BAD_REQUEST, Refusal::Failed);
    };
    // A typed code may confirm either (the recipient's email also says to type its code here);
    // at most one applies to a request at any time, so a wrong code counts once.
    let confirms: &[Confirmation] = match field("confirm") {
        None => &[Confirmation::Request, Confirmation::Recipient],
        Some("request") => &[Confirmation::Request],
        Some("recipient") => &[Confirmation::Recipient],
        Some(_) => return refuse(StatusCode::BAD_REQUEST, Refusal::Failed),
    };
    let refused = |err: VerifyError| match err {
        VerifyError::Locked => refuse(StatusCode::FORBIDDEN, Refusal::Locked),
        VerifyError::Store(err) => {
            tracing::error!(error = %err, "request store failed");
            refuse(StatusCode::SERVICE_UNAVAILABLE, Refusal::Unavailable)
        }
        VerifyError::Input(err) => refuse(err.status, Refusal::Unreadable),
        VerifyError::Failed => refuse(StatusCode::BAD_REQUEST, Refusal::Failed),
    };
    let deps = &verifier.deps;
    if field("step") == Some("confirm") {
        let confirmation = confirms[0];
        return match confirmed(deps, id, token, confirmation).await {
            Ok(record) => page.answer(StatusCode::OK, record.language, View::Confirmed(confirmation)),
            Err(err) => refused(err),
        };
    }
    let mut outcome = VerifyError::Failed;
    for (i, confirmation) in confirms.iter().enumerate() {
        match check(deps, id, token, *confirmation).await {
            Ok((record, _)) => {
                let preview = Preview::of(&record, *confirmation);
                // Shown in the request's own language, as the script shows it.
                return page.answer(
                    StatusCode::OK,
                    record.language,
                    View::Summary { preview: &preview, token },
                );
            }
            Err(VerifyError::Failed) if i + 1 < confirms.len() => {}
            Err(err) => {
                outcome = err;
                break;
            }
        }
    }
    refused(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> Request {
        lambda_http::http::Request::builder().method("POST").uri(path).body(Body::Empty).unwrap()
    }

    #[test]
    fn each_post_route_is_named_by_its_last_segment() {
        let id = RequestId::generate();
        assert_eq!(action(&post(&format!("/requests/{id}/verify"))), "verify");
        assert_eq!(action(&post(&format!("/requests/{id}/recipient/"))), "recipient");
        assert_eq!(action(&post(&format!("/prod/requests/{id}/preview"))), "preview");
        assert_eq!(action(&post("/verify")), "page");
        assert_eq!(action(&post("/prod/verify/")), "page");
        assert_eq!(action(&post("/requests//verify")), "verify", "an empty id is the API's 404");
    }
}
