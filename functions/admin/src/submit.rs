//! `POST /staff/requests`: a request a staff member took by phone, post, email, chat or in
//! person, entered for the person. The public API's fields and rules, plus the `channel`; then
//! the public API's path ([`privacy_shared::intake::accept`]): stored with its deadlines, and the
//! verification email sent to the person's mailbox. Nothing irreversible happens until the
//! mailbox's owner confirms, as online (an opt-out or unsubscribe, which needs no confirmation,
//! is honoured at once, as online). The request, its audit trail and its record name the channel
//! and the staff member who entered it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::domain::{Intake, OfflineChannel, RequestId, Status};
use privacy_shared::intake::{AcceptError, FIELDS, IntakeMail, RawSubmission, Submission};
use privacy_shared::mail::SesMailer;

use crate::{Admin, AdminError, StaffStore};

/// The mail of the requests staff enter, made on the first one: the rest of the staff API
/// mails nobody, and its cold start builds no SES client or templates for them.
pub struct StaffMail {
    sdk: aws_config::SdkConfig,
    config: privacy_shared::Config,
    built: OnceLock<IntakeMail<SesMailer>>,
}

impl StaffMail {
    pub fn new(sdk: &aws_config::SdkConfig, config: privacy_shared::Config) -> StaffMail {
        StaffMail { sdk: sdk.clone(), config, built: OnceLock::new() }
    }

    fn get(&self) -> &IntakeMail<SesMailer> {
        self.built.get_or_init(|| IntakeMail::with_sdk(&self.sdk, self.config.clone()))
    }
}

/// The body: the public API's fields, and how the request reached us. Read as two views of one
/// body (a flattened struct would name a field of the wrong type `.`, not as the public API does).
struct StaffSubmission {
    channel: String,
    request: RawSubmission,
}

#[derive(Deserialize)]
struct ChannelField {
    channel: String,
}

#[derive(Serialize)]
struct Accepted {
    request_id: RequestId,
    status: Status,
}

/// Every field the body may hold.
fn fields() -> Vec<&'static str> {
    let mut fields = FIELDS.to_vec();
    fields.push("channel");
    fields
}

fn channel(raw: &str) -> Result<OfflineChannel, ApiError> {
    OfflineChannel::parse(raw).ok_or_else(|| {
        let names: Vec<_> = OfflineChannel::ALL.iter().map(|c| c.as_str()).collect();
        ApiError::invalid_field(
            "channel",
            &format!(
                "must be one of {} (a request made online the person makes themselves).",
                names.join(", ")
            ),
        )
    })
}

fn read(request: &Request) -> Result<StaffSubmission, ApiError> {
    let fields = fields();
    let ChannelField { channel } = read_json(request, &fields)?;
    Ok(StaffSubmission { channel, request: read_json(request, &fields)? })
}

pub(crate) async fn serve<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    principal: String,
) -> Result<Response<Body>, AdminError> {
    let body = read(request)?;
    let channel = channel(&body.channel)?;
    // The public API's rules, and its answer: the first problem, named by its field.
    let submission =
        Submission::parse(body.request).map_err(|problems| match problems.into_iter().next() {
            Some(first) => ApiError::from(first),
            None => ApiError::invalid_field("email", "is required."),
        })?;
    let Some(mail) = &admin.mail else {
        tracing::error!("no mailer is configured; requests cannot be entered");
        return Err(ApiError::unavailable().into());
    };
    let intake = Intake::Staff { channel, entered_by: principal.clone() };
    let deps = mail.get().with(&admin.store, &*admin.clock);
    // No client network: the staff member's address is not the person's, and the person's
    // mailbox budget is what guards them.
    let (id, status) =
        privacy_shared::intake::accept(&deps, submission, intake, None).await.map_err(|err| match err {
            AcceptError::Store(err) => AdminError::Store(err),
            AcceptError::Mail(err) => {
                tracing::error!(error = %err, "verification email failed");
                AdminError::Input(ApiError::unavailable())
            }
        })?;
    tracing::info!(request_id = %id, channel = %channel, staff = %principal, "request entered by staff");
    Ok(json_response(StatusCode::ACCEPTED, &Accepted { request_id: id, status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_channel_other_than_the_web_is_taken_and_a_wrong_one_is_not_quoted() {
        assert_eq!(channel("phone").unwrap(), OfflineChannel::Phone);
        assert_eq!(channel("in_person").unwrap(), OfflineChannel::InPerson);
        for wrong in ["web", "Phone", "fax", ""] {
            let err = channel(wrong).unwrap_err();
            assert_eq!(err.code, "invalid_field", "{wrong}");
            assert!(err.message.starts_with("`channel` must be one of phone, post, email, chat, in_person"));
            assert!(wrong.is_empty() || !err.message.contains(&format!("`{wrong}`")), "{}", err.message);
        }
    }

    fn parse(body: serde_json::Value) -> Result<StaffSubmission, ApiError> {
        let mut request = Request::new(Body::Text(body.to_string()));
        request.headers_mut().insert("content-type", "application/json".parse().unwrap());
        read(&request)
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_as_on_the_public_api() {
        let base =
            serde_json::json!({"channel": "phone", "email": "a@b.nl", "kind": "access", "region": "NL"});
        for (field, value) in [
            ("email", serde_json::json!(5)),
            ("name", serde_json::json!(["x"])),
            ("channel", serde_json::json!(1)),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let err = parse(body).err().expect("refused");
            assert_eq!(err.message, format!("`{field}` has the wrong type."), "{field}");
        }
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove("channel");
        assert_eq!(parse(body).err().expect("refused").code, "missing_field");
        let mut body = base;
        body["entered_by"] = serde_json::json!("me");
        assert_eq!(parse(body).err().expect("refused").code, "unknown_field");
    }

    #[test]
    fn the_body_takes_the_public_apis_fields_and_the_channel() {
        let body = parse(serde_json::json!({
            "channel": "post", "email": "a@b.nl", "kind": "access", "region": "NL", "name": "A",
        }))
        .unwrap();
        assert_eq!(body.channel, "post");
        assert_eq!((body.request.email.as_str(), body.request.name.as_deref()), ("a@b.nl", Some("A")));
        assert!(fields().contains(&"channel") && fields().contains(&"period_from"));
    }
}
