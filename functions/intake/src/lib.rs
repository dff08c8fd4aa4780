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
use privacy_shared::budget::BudgetCharge;
use privacy_shared::domain::{
    EmailAddress, Language, Region, RequestId, RequestKind, RequestRecord, Status, VerificationToken,
};
use privacy_shared::mail::templates::{AgentStage, VerificationEmail};
use privacy_shared::mail::{MailError, Mailer, send_guarded};
use privacy_shared::store::{
    Created, LiveToken, People, Requests, Secrets, StoreError, SuppressionList, TokenSlot,
};
use std::net::IpAddr;

mod pages;
mod submission;

pub use pages::Pages;
pub use submission::{FIELDS, FieldError, Problem, RawAgent, RawSubmission, Submission};

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
/// and the form.
pub async fn accept<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    submission: Submission,
    network: Option<IpAddr>,
) -> Result<(RequestId, Status), IntakeError> {
    let now = deps.clock.now();

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
        agent: submission.agent,
        period_from: submission.period_from,
        ..new_record(deps, submission.kind, submission.region, submission.language, submission.email, now)
    };
    let token = VerificationToken::generate();
    match deps.store.create(&record, &live_token(deps, &token)).await? {
        Created::New => {
            tracing::info!(request_id = %record.id, kind = %record.kind, regime = regime.as_str(), "request submitted");
            if let Some(charges) = within_budgets(deps, &record.email, network).await? {
                charges.spent_on(deps, deliver(deps, &record, &token)).await?;
            }
            tell_agent(deps, &record, AgentStage::Received, network).await;
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
        agent: submission.agent,
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
            tell_agent(deps, &record, AgentStage::Completed, network).await;
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

/// Tells the agent who made a request for someone what became of it, within the same mail
/// budgets as any mail (the agent's address is one a stranger typed in). Best effort: the
/// request is the person's and stands whether or not the agent's notice goes out; its failure is
/// logged, not answered.
async fn tell_agent<S: Requests + Secrets + People, M: Mailer>(
    deps: &Deps<S, M>,
    record: &RequestRecord,
    stage: AgentStage,
    network: Option<IpAddr>,
) {
    let Some(agent) = &record.agent else { return };
    let notice = match deps.templates.agent_notice(record, stage, deps.config.status_page()) {
        Ok(Some(notice)) => notice,
        Ok(None) => return,
        Err(err) => {
            tracing::error!(request_id = %record.id, error = %err, "agent notice did not render");
            return;
        }
    };
    let sent = async {
        let Some(charges) = within_budgets(deps, &agent.email, network).await? else { return Ok(()) };
        let send = async {
            send_guarded::<_, _, IntakeError>(&deps.store, &deps.mailer, record, &notice, deps.clock.now())
                .await?;
            Ok::<_, IntakeError>(())
        };
        charges.spent_on(deps, send).await
    };
    match sent.await {
        Ok(()) => tracing::info!(request_id = %record.id, "agent told"),
        Err(err) => tracing::warn!(request_id = %record.id, error = %err, "agent notice not sent"),
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
        status: deps.config.status_page(),
        agent: record.agent.as_ref(),
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

    use std::collections::BTreeMap;
    use submission::{MAX_NAME_CHARS, RawAgent};

    fn raw(email: &str, kind: &str, region: &str) -> RawSubmission {
        RawSubmission {
            email: email.into(),
            kind: kind.into(),
            region: region.into(),
            ..RawSubmission::default()
        }
    }

    /// What the JSON API answers: the first problem.
    fn refused(raw: RawSubmission) -> ApiError {
        ApiError::from(Submission::parse(raw).err().expect("refused").remove(0))
    }

    fn code_of(raw: RawSubmission) -> String {
        let err = refused(raw);
        format!("{}: {}", err.code, err.message)
    }

    #[test]
    fn a_shorter_period_is_only_for_a_ccpa_request_to_know_and_starts_no_earlier_than_2022() {
        let with = |kind: &str, region: &str, from: &str| {
            let mut r = raw("a@b.nl", kind, region);
            r.period_from = Some(from.into());
            r
        };
        let ok = Submission::parse(with("access", "US-CA", "2026-01-01")).unwrap();
        assert_eq!(ok.period_from, chrono::NaiveDate::from_ymd_opt(2026, 1, 1));
        assert!(Submission::parse(with("portability", "us-ca", "2022-01-01")).is_ok(), "the earliest day");
        for (kind, region, from, says) in [
            ("access", "NL", "2026-01-01", "only for access and portability requests under the CCPA"),
            ("deletion", "US-CA", "2026-01-01", "only for access and portability requests under the CCPA"),
            ("access", "US-CA", "2021-12-31", "on or after 2022-01-01"),
            ("access", "US-CA", "2026-02-30", "a date (YYYY-MM-DD)"),
            ("access", "US-CA", "1 January 2026", "a date (YYYY-MM-DD)"),
            ("access", "US-CA", "2026-1-1", "a date (YYYY-MM-DD)"),
        ] {
            assert!(code_of(with(kind, region, from)).contains(says), "{kind} {region} {from}");
        }
        assert_eq!(Submission::parse(raw("a@b.nl", "access", "US-CA")).unwrap().period_from, None);
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
        assert_eq!(refused(long).code, "invalid_field");
    }

    #[test]
    fn field_errors_name_the_field_not_the_value() {
        let err = refused(raw("not-an-address", "access", "NL"));
        assert_eq!(err.message, "`email` is not a valid email address.");
        let err = refused(raw("a@b.nl", "forget-me", "NL"));
        assert!(err.message.starts_with("`kind` must be one of access,"), "{}", err.message);
        assert!(!err.message.contains("forget-me"));
    }

    #[test]
    fn a_form_learns_every_problem_at_once_in_the_order_of_its_fields() {
        let mut many = raw("not-an-address", "portability", "XX");
        many.name = Some("x".repeat(MAX_NAME_CHARS + 1));
        many.recipient = Some("nope".into());
        let fields: Vec<String> =
            Submission::parse(many).err().unwrap().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["email", "region", "name", "recipient"]);
    }

    #[test]
    fn an_agent_needs_a_name_their_own_address_and_a_known_relationship() {
        let agent = |name: &str, email: &str, relationship: &str| {
            let mut r = raw("person@example.nl", "access", "NL");
            r.agent =
                Some(RawAgent { name: name.into(), email: email.into(), relationship: relationship.into() });
            r
        };
        let parsed =
            Submission::parse(agent(" Agatha ", "agatha@agents.example", "authorised_agent")).unwrap();
        let stored = parsed.agent.unwrap();
        assert_eq!((stored.name.as_str(), stored.email.as_str()), ("Agatha", "agatha@agents.example"));
        assert_eq!(parsed.email.as_str(), "person@example.nl", "the request stays the person's");
        for (bad, field, message) in [
            (agent("", "agatha@agents.example", "authorised_agent"), "agent.name", "is required"),
            (agent("Agatha", "PERSON@example.nl", "authorised_agent"), "agent.email", "must differ"),
            (agent("Agatha", "agatha@agents.example", "friend"), "agent.relationship", "must be one of"),
        ] {
            let err = refused(bad);
            assert!(err.message.starts_with(&format!("`{field}` {message}")), "{}", err.message);
        }
    }
}
