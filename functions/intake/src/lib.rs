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

use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;

use privacy_shared::Deps;
use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::budget::BudgetCharge;
use privacy_shared::domain::{
    EmailAddress, EmailError, Language, Region, RequestId, RequestKind, RequestRecord, Status,
    VerificationToken, has_control_chars,
};
use privacy_shared::mail::templates::VerificationEmail;
use privacy_shared::mail::{MailError, Mailer, send_guarded};
use privacy_shared::store::{
    Created, LiveToken, People, Requests, Secrets, StoreError, SuppressionList, TokenSlot,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

/// The body fields `POST /requests` accepts; anything else is refused.
pub const FIELDS: &[&str] =
    &["email", "kind", "region", "name", "language", "details", "recipient", "corrections"];
const MAX_NAME_CHARS: usize = 200;
const MAX_DETAILS_CHARS: usize = 5000;
const MAX_CORRECTIONS: usize = 10;
const MAX_CORRECTION_CHARS: usize = 200;

/// The fields a requester may correct themselves, from the compiled-in data map.
fn correctable() -> &'static [String] {
    static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        privacy_shared::datamap::DataMap::builtin()
            .map(|map| map.correctable_fields().into_iter().map(|(_, field)| field.to_owned()).collect())
            .unwrap_or_default()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Input(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl IntakeError {
    /// The one place where failures become status codes.
    fn into_response(self) -> Response<Body> {
        match self {
            IntakeError::Input(err) => err.into_response(),
            IntakeError::Store(err) => {
                tracing::error!(error = %err, "request store failed");
                ApiError::unavailable().into_response()
            }
            IntakeError::Mail(err) => {
                tracing::error!(error = %err, "verification email failed");
                ApiError::unavailable().into_response()
            }
        }
    }
}

/// The body as sent; every field becomes a domain type in [`Submission::parse`].
#[derive(Deserialize)]
struct RawSubmission {
    email: String,
    kind: String,
    region: String,
    name: Option<String>,
    language: Option<String>,
    details: Option<String>,
    recipient: Option<String>,
    corrections: Option<BTreeMap<String, String>>,
}

/// A request that passed every check at the edge.
pub struct Submission {
    pub email: EmailAddress,
    pub kind: RequestKind,
    pub region: Region,
    pub language: Language,
    pub name: Option<String>,
    pub details: Option<String>,
    pub recipient: Option<EmailAddress>,
    pub corrections: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct Accepted {
    request_id: RequestId,
    status: Status,
}

impl Submission {
    fn parse(raw: RawSubmission) -> Result<Submission, ApiError> {
        for (field, value) in [
            ("email", Some(&raw.email)),
            ("kind", Some(&raw.kind)),
            ("region", Some(&raw.region)),
            ("name", raw.name.as_ref()),
            ("language", raw.language.as_ref()),
            ("details", raw.details.as_ref()),
            ("recipient", raw.recipient.as_ref()),
        ] {
            if value.is_some_and(|v| has_control_chars(v)) {
                return Err(ApiError::invalid_field(
                    field,
                    "must not contain control characters (such as line breaks).",
                ));
            }
        }
        let email = EmailAddress::parse(&raw.email).map_err(|e| match e {
            EmailError::Empty => ApiError::invalid_field("email", "is required."),
            EmailError::TooLong => ApiError::invalid_field("email", "must be at most 254 characters."),
            EmailError::Invalid => ApiError::invalid_field("email", "is not a valid email address."),
        })?;
        let kind = raw.kind.parse::<RequestKind>().map_err(|_| {
            let names: Vec<_> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::invalid_field("kind", &format!("must be one of {}.", names.join(", ")))
        })?;
        let region = Region::parse(&raw.region).map_err(|_| {
            ApiError::invalid_field("region", "must be an ISO 3166-1 alpha-2 country code or US-CA.")
        })?;
        let language = match raw.language.as_deref() {
            None => Language::default_for(&region),
            Some(code) => {
                code.parse().map_err(|_| ApiError::invalid_field("language", "must be en or nl."))?
            }
        };
        let name = optional_text(raw.name, "name", MAX_NAME_CHARS)?;
        let details = optional_text(raw.details, "details", MAX_DETAILS_CHARS)?;
        let recipient = match raw.recipient.filter(|r| !r.trim().is_empty()) {
            None => None,
            Some(_) if kind != RequestKind::Portability => {
                return Err(ApiError::invalid_field("recipient", "is only for portability requests."));
            }
            Some(raw) => {
                let recipient = EmailAddress::parse(&raw)
                    .map_err(|_| ApiError::invalid_field("recipient", "is not a valid email address."))?;
                if recipient.normalized() == email.normalized() {
                    return Err(ApiError::invalid_field("recipient", "must be someone else's address."));
                }
                Some(recipient)
            }
        };
        let corrections = match raw.corrections {
            None => None,
            Some(_) if kind != RequestKind::Rectification => {
                return Err(ApiError::invalid_field("corrections", "is only for rectification requests."));
            }
            Some(corrections) => Some(parse_corrections(corrections)?),
        };
        Ok(Submission { email, kind, region, language, name, details, recipient, corrections })
    }
}

fn parse_corrections(corrections: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    if corrections.is_empty() || corrections.len() > MAX_CORRECTIONS {
        return Err(ApiError::invalid_field(
            "corrections",
            &format!("must hold 1 to {MAX_CORRECTIONS} fields."),
        ));
    }
    let allowed = correctable();
    let mut parsed = BTreeMap::new();
    for (field, value) in corrections {
        if !allowed.contains(&field) {
            return Err(ApiError::invalid_field(
                "corrections",
                &format!("may only correct {}; describe other corrections in `details`.", allowed.join(", ")),
            ));
        }
        let value = value.trim().to_owned();
        if value.is_empty() || value.chars().count() > MAX_CORRECTION_CHARS || has_control_chars(&value) {
            return Err(ApiError::invalid_field(
                &format!("corrections.{field}"),
                &format!("must be 1 to {MAX_CORRECTION_CHARS} characters without control characters."),
            ));
        }
        parsed.insert(field, value);
    }
    Ok(parsed)
}

fn optional_text(value: Option<String>, field: &str, max_chars: usize) -> Result<Option<String>, ApiError> {
    let Some(text) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > max_chars {
        return Err(ApiError::invalid_field(field, &format!("must be at most {max_chars} characters.")));
    }
    Ok(Some(text))
}

pub async fn handle<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(match submit(deps, &request).await {
        Ok((id, status)) => json_response(StatusCode::ACCEPTED, &Accepted { request_id: id, status }),
        Err(err) => err.into_response(),
    })
}

async fn submit<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    request: &Request,
) -> Result<(RequestId, Status), IntakeError> {
    if request.method() != lambda_http::http::Method::POST {
        return Err(ApiError::method_not_allowed().into());
    }
    let submission = Submission::parse(read_json::<RawSubmission>(request, FIELDS)?)?;
    let now = deps.clock.now();
    let network = client_network(request);

    if let Some(list) = SuppressionList::for_kind(submission.kind) {
        return opt_out(deps, submission, list, network).await.map(|id| (id, Status::Completed));
    }
    if let Some(existing) = deps.store.open_request(&submission.email.subject_key(), submission.kind).await? {
        return resubmitted(deps, existing, network).await.map(|id| (id, Status::PendingVerification));
    }

    let regime = submission.region.regime();
    let record = RequestRecord {
        name: submission.name,
        details: submission.details,
        recipient: submission.recipient,
        corrections: submission.corrections,
        ..new_record(deps, submission.kind, submission.region, submission.language, submission.email, now)
    };
    let token = VerificationToken::generate();
    match deps.store.create(&record, &live_token(deps, &token)).await? {
        Created::New => {
            tracing::info!(request_id = %record.id, kind = %record.kind, regime = regime.as_str(), "request submitted");
            if let Some(charges) = within_budgets(deps, &record.email, network).await? {
                charges.spent_on(deps, deliver(deps, &record, &token)).await?;
            }
            Ok((record.id, Status::PendingVerification))
        }
        Created::AlreadyOpen(existing) => {
            resubmitted(deps, existing, network).await.map(|id| (id, Status::PendingVerification))
        }
    }
}

/// A new request with its deadlines, counted in the business calendar from `now`.
fn new_record<S, M>(
    deps: &Deps<S, M>,
    kind: RequestKind,
    region: Region,
    language: Language,
    email: EmailAddress,
    now: chrono::DateTime<chrono::Utc>,
) -> RequestRecord {
    let deadlines = deps.config.calendar.deadlines(region.regime(), now);
    RequestRecord::received(RequestId::generate(), kind, region, language, email, now, deadlines)
}

/// Suppresses the address at once and records the request as completed; the acknowledgement
/// goes out from the stream. A repeat answers with the first request and sends nothing more.
async fn opt_out<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    submission: Submission,
    list: SuppressionList,
    network: Option<IpAddr>,
) -> Result<RequestId, IntakeError> {
    let subject = submission.email.subject_key();
    let earlier = deps.store.suppressions(&subject).await?.into_iter().find(|s| s.list == list);
    if let Some(earlier) = earlier {
        tracing::info!(request_id = %earlier.request_id, list = list.as_str(), "repeat of an opt-out");
        return Ok(earlier.request_id);
    }
    let now = deps.clock.now();
    // Honoured whatever the budgets say; only its acknowledgement waits for budget.
    let charges = within_budgets(deps, &submission.email, network).await?;
    let mail_withheld = charges.is_none();
    let received =
        new_record(deps, submission.kind, submission.region, submission.language, submission.email, now);
    // Done the moment it is stored: nothing to verify, no clock to run.
    let record = RequestRecord {
        status: Status::Completed,
        mail_withheld,
        due_on: received.received_on,
        acknowledge_by: None,
        name: submission.name,
        details: submission.details,
        ..received
    };
    let created = deps.store.create_opt_out(&record, list).await;
    if let (Err(_), Some(charges)) = (&created, charges) {
        // This try's acknowledgement will not go out (the other try's will, on a conflict).
        charges.refund(deps).await;
    }
    match created {
        Ok(()) => {
            tracing::info!(request_id = %record.id, list = list.as_str(), "address suppressed");
            Ok(record.id)
        }
        // The same person opting out twice at the same moment: the other one won.
        Err(StoreError::Conflict) => {
            match deps.store.suppressions(&subject).await?.into_iter().find(|s| s.list == list) {
                Some(earlier) => Ok(earlier.request_id),
                None => Err(StoreError::Conflict.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}

/// The same person asked for the same thing again while a request is open: answer with that
/// request. If it still waits for verification, send one more link (the links already sent keep
/// working, so a resubmission by someone else takes nothing from the owner), within the same
/// flood guard as a first email.
async fn resubmitted<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    id: RequestId,
    network: Option<IpAddr>,
) -> Result<RequestId, IntakeError> {
    tracing::info!(request_id = %id, "repeat of an open request");
    let Some(record) = deps.store.get(id).await? else {
        return Ok(id);
    };
    if record.status != Status::PendingVerification {
        return Ok(id);
    }
    let Some(charges) = within_budgets(deps, &record.email, network).await? else { return Ok(id) };
    let token = VerificationToken::generate();
    let now = deps.clock.now();
    let mail = async {
        if deps.store.issue_token(id, TokenSlot::Requester, &live_token(deps, &token), now).await? {
            deliver(deps, &record, &token).await?;
        }
        Ok(())
    };
    charges.spent_on(deps, mail).await?;
    Ok(id)
}

fn live_token<S, M>(deps: &Deps<S, M>, token: &VerificationToken) -> LiveToken {
    LiveToken {
        token_hash: token.hash(),
        expires_at: deps.clock.now() + deps.config.verification.token_lifetime,
    }
}

/// Charges one mail to `email` against every budget, narrowest first (see
/// [`privacy_shared::budget`]). None when one is spent: then nothing may be sent, and the log
/// line (counted by a metric filter into `MailBudgetSpent`, with an alarm) tells staff which.
async fn within_budgets<S: People, M: Mailer>(
    deps: &Deps<S, M>,
    email: &EmailAddress,
    network: Option<IpAddr>,
) -> Result<Option<Charges>, IntakeError> {
    let policy = deps.config.verification;
    let mut charges = Charges { made: Vec::new(), at: deps.clock.now() };
    for charge in policy.budgets.charges(email, network) {
        match deps.store.charge_budget(&charge, charges.at, policy.email_window).await {
            Ok(true) => charges.made.push(charge),
            Ok(false) => {
                tracing::warn!(scope = charge.scope.as_str(), "mail budget spent: nothing sent");
                return Ok(None);
            }
            Err(err) => {
                charges.refund(deps).await;
                return Err(err.into());
            }
        }
    }
    Ok(Some(charges))
}

/// One mail's charges against the budgets, made at one moment.
struct Charges {
    made: Vec<BudgetCharge>,
    at: chrono::DateTime<chrono::Utc>,
}

impl Charges {
    /// Runs `mail` (what sends it), taking the charges back if it fails: the client retries the
    /// 503, and a retry must not find the budget spent by tries that sent nothing (found by the
    /// fault run, `make chaos`: three failed tries spent a mailbox's hourly budget, and the
    /// fourth answered 202 without a link).
    async fn spent_on<S: People, M: Mailer, T>(
        self,
        deps: &Deps<S, M>,
        mail: impl std::future::Future<Output = Result<T, IntakeError>>,
    ) -> Result<T, IntakeError> {
        let result = mail.await;
        if result.is_err() {
            self.refund(deps).await;
        }
        result
    }

    async fn refund<S: People, M: Mailer>(self, deps: &Deps<S, M>) {
        let window = deps.config.verification.email_window;
        for charge in self.made.iter().rev() {
            if let Err(err) = deps.store.refund_budget(charge, self.at, window).await {
                tracing::warn!(error = %err, scope = charge.scope.as_str(), "a mail budget charge was not refunded");
            }
        }
    }
}

/// The client's address as API Gateway saw it (none when invoked otherwise, as in tests).
fn client_network(request: &Request) -> Option<IpAddr> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

async fn deliver<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    record: &RequestRecord,
    token: &VerificationToken,
) -> Result<(), IntakeError> {
    let email = deps.templates.verification(&VerificationEmail {
        to: &record.email,
        language: record.language,
        request_id: record.id,
        kind: record.kind,
        regime: record.regime,
        received_on: record.received_on,
        due_on: record.due_on,
        token,
        valid_hours: deps.config.verification.token_lifetime.num_hours(),
        public_base_url: &deps.config.public_base_url,
    })?;
    // Withheld from an address that bounced for good or complained: answered as usual (the
    // answer never tells whether an address is known), recorded on the request.
    let sent = send_guarded::<_, _, IntakeError>(&deps.store, &deps.mailer, record, &email, deps.clock.now());
    if sent.await?.is_some() {
        tracing::info!(request_id = %record.id, language = record.language.as_str(), "verification email sent");
    }
    // This email is also the confirmation of receipt the CCPA asks for within 10 business days.
    // It counts once SES reports it delivered (`mail-events` stamps the request then); the daily
    // digest warns staff about requests it never reached.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(email: &str, kind: &str, region: &str) -> RawSubmission {
        RawSubmission {
            email: email.into(),
            kind: kind.into(),
            region: region.into(),
            name: None,
            language: None,
            details: None,
            recipient: None,
            corrections: None,
        }
    }

    fn code_of(raw: RawSubmission) -> String {
        let err = Submission::parse(raw).err().expect("refused");
        format!("{}: {}", err.code, err.message)
    }

    #[test]
    fn a_recipient_is_only_for_portability_and_must_be_someone_else() {
        let mut ok = raw("a@b.nl", "portability", "NL");
        ok.recipient = Some("new-provider@example.org".into());
        assert_eq!(Submission::parse(ok).unwrap().recipient.unwrap().as_str(), "new-provider@example.org");
        let mut wrong_kind = raw("a@b.nl", "access", "NL");
        wrong_kind.recipient = Some("new-provider@example.org".into());
        assert!(code_of(wrong_kind).contains("only for portability"));
        let mut self_sent = raw("a@b.nl", "portability", "NL");
        self_sent.recipient = Some("A@B.NL".into());
        assert!(code_of(self_sent).contains("someone else"));
        let mut bad = raw("a@b.nl", "portability", "NL");
        bad.recipient = Some("not an address".into());
        assert!(code_of(bad).contains("not a valid email address"));
    }

    #[test]
    fn corrections_are_only_for_rectification_and_only_of_correctable_fields() {
        let corrections = |pairs: &[(&str, &str)]| {
            Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
        };
        let mut ok = raw("a@b.nl", "rectification", "NL");
        ok.corrections = corrections(&[("job_title", "  Senior designer ")]);
        assert_eq!(Submission::parse(ok).unwrap().corrections.unwrap()["job_title"], "Senior designer");
        for (kind, pairs, expected) in [
            ("access", vec![("job_title", "x")], "only for rectification"),
            ("rectification", vec![("email", "x@y.z")], "may only correct"),
            ("rectification", vec![("user_id", "u-x")], "may only correct"),
            ("rectification", vec![("name", "")], "corrections.name"),
            ("rectification", vec![("name", "a\nb")], "corrections.name"),
            ("rectification", vec![], "1 to 10"),
        ] {
            let mut submission = raw("a@b.nl", kind, "NL");
            submission.corrections = corrections(&pairs);
            assert!(code_of(submission).contains(expected), "{kind} {pairs:?}");
        }
    }

    #[test]
    fn language_defaults_to_dutch_for_nl_and_english_elsewhere() {
        assert_eq!(Submission::parse(raw("a@b.nl", "access", "NL")).unwrap().language, Language::Nl);
        assert_eq!(Submission::parse(raw("a@b.de", "access", "DE")).unwrap().language, Language::En);
        let mut explicit = raw("a@b.nl", "access", "NL");
        explicit.language = Some("en".into());
        assert_eq!(Submission::parse(explicit).unwrap().language, Language::En);
    }

    #[test]
    fn blank_optional_text_is_dropped_and_long_text_refused() {
        let mut r = raw("a@b.nl", "deletion", "NL");
        r.name = Some("   ".into());
        r.details = Some(" please delete ".into());
        let s = Submission::parse(r).unwrap();
        assert_eq!(s.name, None);
        assert_eq!(s.details.as_deref(), Some("please delete"));
        let mut long = raw("a@b.nl", "deletion", "NL");
        long.name = Some("x".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(Submission::parse(long).err().unwrap().code, "invalid_field");
    }

    #[test]
    fn field_errors_name_the_field_not_the_value() {
        let err = Submission::parse(raw("not-an-address", "access", "NL")).err().unwrap();
        assert_eq!(err.message, "`email` is not a valid email address.");
        let err = Submission::parse(raw("a@b.nl", "forget-me", "NL")).err().unwrap();
        assert!(err.message.starts_with("`kind` must be one of access,"), "{}", err.message);
        assert!(!err.message.contains("forget-me"));
    }
}
