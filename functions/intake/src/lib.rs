//! `POST /requests`: a person asks to exercise a right. The request is stored with its legal
//! deadlines, and a verification email (which also confirms receipt) goes to the address given.
//!
//! Answers never reveal whether an address is known: a new request, a repeat of an open one and
//! a request whose email was held back by the flood guard all get the same 202. Nor does an
//! address our mail may no longer go to (it bounced for good, or complained): its verification
//! email is withheld, and the request records that.
//!
//! An opt-out of sale and an unsubscribe need no verification (the CCPA forbids requiring it):
//! the address goes on the suppression list in the same transaction that records the request as
//! completed, and `dispatch` acknowledges it by email. A repeat changes nothing and sends nothing.
//!
//! A portability request may name a third-party `recipient` (the export goes there only after a
//! second confirmation), and a rectification may carry `corrections` of the fields the data map
//! marks as self-service correctable.

use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::convert::Infallible;

use privacy_shared::Deps;
use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::domain::{Intake, RequestId, Status};
use privacy_shared::intake::{AcceptError, IntakeDeps};
use privacy_shared::mail::{MailError, Mailer};
use privacy_shared::store::{People, Requests, Secrets, StoreError};
use std::net::IpAddr;

mod pages;

pub use pages::Pages;
pub use privacy_shared::intake::{FIELDS, FieldError, Problem, RawAgent, RawSubmission, Submission};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Input(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl From<AcceptError> for IntakeError {
    fn from(err: AcceptError) -> IntakeError {
        match err {
            AcceptError::Store(err) => IntakeError::Store(err),
            AcceptError::Mail(err) => IntakeError::Mail(err),
        }
    }
}

impl IntakeError {
    /// The one place where failures become status codes.
    fn into_response(self) -> Response<Body> {
        self.into_api_error().into_response()
    }

    /// What the caller is told; our own failures are logged here and told only that they happened.
    fn into_api_error(self) -> ApiError {
        match self {
            IntakeError::Input(err) => err,
            IntakeError::Store(err) => {
                tracing::error!(error = %err, "request store failed");
                ApiError::unavailable()
            }
            IntakeError::Mail(err) => {
                tracing::error!(error = %err, "verification email failed");
                ApiError::unavailable()
            }
        }
    }
}

#[derive(Serialize)]
struct Accepted {
    request_id: RequestId,
    status: Status,
}

pub async fn handle<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let read = pages::is_read(request.method());
    let post = request.method() == Method::POST;
    Ok(match pages::Route::of(request.uri().path()) {
        pages::Route::Requests => match submit(deps, &request).await {
            Ok((id, status)) => json_response(StatusCode::ACCEPTED, &Accepted { request_id: id, status }),
            Err(err) => err.into_response(),
        },
        pages::Route::Start if read => pages::start(deps, &request),
        pages::Route::Form(kind) if read => pages::form(deps, &request, kind),
        pages::Route::Form(kind) if post => {
            pages::submit_form(deps, &request, kind).await.unwrap_or_else(ApiError::into_response)
        }
        pages::Route::GpcResource if read => pages::gpc_resource(),
        pages::Route::Unknown => ApiError::not_found().into_response(),
        _ => ApiError::method_not_allowed().into_response(),
    })
}

async fn submit<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
) -> Result<(RequestId, Status), IntakeError> {
    if request.method() != Method::POST {
        return Err(ApiError::method_not_allowed().into());
    }
    let submission =
        Submission::parse(read_json::<RawSubmission>(request, FIELDS)?).map_err(|problems| match problems
            .into_iter()
            .next()
        {
            Some(first) => ApiError::from(first),
            None => ApiError::invalid_field("email", "is required."),
        })?;
    accept(deps, submission, client_network(request)).await
}

/// Stores a request that passed the edge and sends what it needs: the one path of the JSON API
/// and the form, and the staff API's too ([`privacy_shared::intake::accept`]), here as made online.
pub async fn accept<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    submission: Submission,
    network: Option<IpAddr>,
) -> Result<(RequestId, Status), IntakeError> {
    Ok(privacy_shared::intake::accept(&IntakeDeps::from(deps), submission, Intake::Web, network).await?)
}

/// The client's address as API Gateway saw it (none when invoked otherwise, as in tests).
fn client_network(request: &Request) -> Option<IpAddr> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}
