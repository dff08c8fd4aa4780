//! Storing a request that passed the edge, and sending what it needs.
//!
//! Answers never reveal whether an address is known: a new request, a repeat of an open one and
//! a request whose email was held back by the flood guard all answer alike. Nor does an address
//! our mail may no longer go to (it bounced for good, or complained): its verification email is
//! withheld, and the request records that.
//!
//! An opt-out of sale and an unsubscribe need no verification (the CCPA forbids requiring it):
//! the address goes on the suppression list in the same transaction that records the request as
//! completed, and `dispatch` acknowledges it by email. A repeat changes nothing and sends nothing.

use std::net::IpAddr;

use crate::budget::BudgetCharge;
use crate::domain::{
    EmailAddress, Intake, Language, Region, RequestId, RequestKind, RequestRecord, Status, VerificationToken,
};
use crate::mail::templates::{AgentStage, Templates, VerificationEmail};
use crate::mail::{MailError, Mailer, SesMailer, send_guarded};
use crate::store::{Created, LiveToken, People, Requests, Secrets, StoreError, SuppressionList, TokenSlot};
use crate::{Clock, Config, Deps};

use super::Submission;

/// Our own failures on the way in; the caller logs them and answers that they happened.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// What taking a request in uses, borrowed: a function's [`Deps`], or the staff API's own store
/// and clock with its mailer and templates (its store is the one its other routes use).
pub struct IntakeDeps<'a, S, M> {
    pub store: &'a S,
    pub mailer: &'a M,
    pub clock: &'a dyn Clock,
    pub config: &'a Config,
    pub templates: &'a Templates,
}

impl<'a, S, M> From<&'a Deps<S, M>> for IntakeDeps<'a, S, M> {
    fn from(deps: &'a Deps<S, M>) -> Self {
        IntakeDeps {
            store: &deps.store,
            mailer: &deps.mailer,
            clock: &*deps.clock,
            config: &deps.config,
            templates: &deps.templates,
        }
    }
}

/// The mail side of taking requests in, for a function that holds no [`Deps`] (the staff API):
/// the mailer, and the templates and settings the verification email is made with.
pub struct IntakeMail<M> {
    pub mailer: M,
    pub templates: Templates,
    pub config: Config,
}

impl<M> IntakeMail<M> {
    /// Taking requests in with the caller's own store and clock.
    pub fn with<'a, S>(&'a self, store: &'a S, clock: &'a dyn Clock) -> IntakeDeps<'a, S, M> {
        IntakeDeps { store, mailer: &self.mailer, clock, config: &self.config, templates: &self.templates }
    }
}

impl IntakeMail<SesMailer> {
    /// As [`crate::AwsDeps`] mails: SES v2 from the standard environment, from `MAIL_FROM`.
    pub fn with_sdk(sdk: &aws_config::SdkConfig, config: Config) -> IntakeMail<SesMailer> {
        let mailer = SesMailer::new(
            aws_sdk_sesv2::Client::new(sdk),
            config.mail_from.clone(),
            config.ses_configuration_set.clone(),
        );
        IntakeMail { mailer, templates: Templates::new(), config }
    }
}

/// Stores a request that passed the edge and sends what it needs: the one path of the JSON API,
/// the form and the staff API. `intake` says how it reached us; `network` is the client's, for
/// its mail budget (none for a request staff entered).
pub async fn accept<S: Requests + Secrets + People, M: Mailer>(
    deps: &IntakeDeps<'_, S, M>,
    submission: Submission,
    intake: Intake,
    network: Option<IpAddr>,
) -> Result<(RequestId, Status), AcceptError> {
    let now = deps.clock.now();

    if let Some(list) = SuppressionList::for_kind(submission.kind) {
        return opt_out(deps, submission, intake, list, network).await.map(|id| (id, Status::Completed));
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
        intake,
        ..new_record(deps, submission.kind, submission.region, submission.language, submission.email, now)
    };
    let token = VerificationToken::generate();
    match deps.store.create(&record, &live_token(deps, &token)).await? {
        Created::New => {
            tracing::info!(
                request_id = %record.id,
                kind = %record.kind,
                regime = regime.as_str(),
                channel = record.intake.channel(),
                "request submitted"
            );
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
    deps: &IntakeDeps<'_, S, M>,
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
    deps: &IntakeDeps<'_, S, M>,
    submission: Submission,
    intake: Intake,
    list: SuppressionList,
    network: Option<IpAddr>,
) -> Result<RequestId, AcceptError> {
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
        intake,
        ..received
    };
    let created = deps.store.create_opt_out(&record, list).await;
    if let (Err(_), Some(charges)) = (&created, charges) {
        // This try's acknowledgement will not go out (the other try's will, on a conflict).
        charges.refund(deps).await;
    }
    match created {
        Ok(()) => {
            tracing::info!(
                request_id = %record.id,
                list = list.as_str(),
                channel = record.intake.channel(),
                "address suppressed"
            );
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
    deps: &IntakeDeps<'_, S, M>,
    id: RequestId,
    network: Option<IpAddr>,
) -> Result<RequestId, AcceptError> {
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

fn live_token<S, M>(deps: &IntakeDeps<'_, S, M>, token: &VerificationToken) -> LiveToken {
    LiveToken {
        token_hash: token.hash(),
        expires_at: deps.clock.now() + deps.config.verification.token_lifetime,
    }
}

/// Charges one mail to `email` against every budget, narrowest first (see
/// [`crate::budget`]). None when one is spent: then nothing may be sent, and the log line
/// (counted by a metric filter into `MailBudgetSpent`, with an alarm) tells staff which.
async fn within_budgets<S: People, M: Mailer>(
    deps: &IntakeDeps<'_, S, M>,
    email: &EmailAddress,
    network: Option<IpAddr>,
) -> Result<Option<Charges>, AcceptError> {
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
        deps: &IntakeDeps<'_, S, M>,
        mail: impl std::future::Future<Output = Result<T, AcceptError>>,
    ) -> Result<T, AcceptError> {
        let result = mail.await;
        if result.is_err() {
            self.refund(deps).await;
        }
        result
    }

    async fn refund<S: People, M: Mailer>(self, deps: &IntakeDeps<'_, S, M>) {
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
    deps: &IntakeDeps<'_, S, M>,
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
            send_guarded::<_, _, AcceptError>(deps.store, deps.mailer, record, &notice, deps.clock.now())
                .await?;
            Ok::<_, AcceptError>(())
        };
        charges.spent_on(deps, send).await
    };
    match sent.await {
        Ok(()) => tracing::info!(request_id = %record.id, "agent told"),
        Err(err) => tracing::warn!(request_id = %record.id, error = %err, "agent notice not sent"),
    }
}

async fn deliver<S: Requests + Secrets + People, M: Mailer>(
    deps: &IntakeDeps<'_, S, M>,
    record: &RequestRecord,
    token: &VerificationToken,
) -> Result<(), AcceptError> {
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
    let sent = send_guarded::<_, _, AcceptError>(deps.store, deps.mailer, record, &email, deps.clock.now());
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
    use std::sync::Arc;

    use crate::domain::{Actor, Event, OfflineChannel};
    use crate::mail::MessageKind;
    use crate::{Env, ManualClock, MemoryDeps};

    const STAFF: &str = "arn:aws:iam::123456789012:user/privacy-officer";

    fn deps() -> MemoryDeps {
        let env = Env::from_pairs(&[
            ("TABLE_NAME", "requests"),
            ("MAIL_FROM", "privacy@example.com"),
            ("PUBLIC_BASE_URL", "https://privacy.example.com"),
            ("STATUS_LINK_KEY", "a-local-status-link-key-for-the-intake-tests"),
            ("VERIFICATION_EMAILS_PER_HOUR", "2"),
        ]);
        let now = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        MemoryDeps::in_memory(Config::load(&env).unwrap(), Arc::new(ManualClock::new(now)))
    }

    fn submission(email: &str, kind: &str) -> Submission {
        let raw = super::super::RawSubmission {
            email: email.into(),
            kind: kind.into(),
            region: "US-CA".into(),
            ..Default::default()
        };
        Submission::parse(raw).expect("a valid submission")
    }

    fn by_phone() -> Intake {
        Intake::Staff { channel: OfflineChannel::Phone, entered_by: STAFF.into() }
    }

    #[tokio::test]
    async fn a_request_staff_took_by_phone_waits_for_the_persons_mailbox_and_names_who_entered_it() {
        let deps = deps();
        let (id, status) =
            accept(&IntakeDeps::from(&deps), submission("caller@example.com", "deletion"), by_phone(), None)
                .await
                .unwrap();
        assert_eq!(status, Status::PendingVerification, "nothing happens before the person confirms");
        let record = deps.store.get(id).await.unwrap().unwrap();
        assert_eq!(record.intake, by_phone());
        let mail = deps.mailer.sent_to("caller@example.com");
        assert_eq!(mail.len(), 1);
        assert_eq!((mail[0].tags.kind, mail[0].tags.request), (MessageKind::Verification, Some(id)));
        let trail = deps.store.audit_trail(id).await.unwrap();
        assert_eq!(trail[0].event, Event::Submitted);
        assert_eq!(trail[0].actor, Actor::Staff(STAFF.into()));
        assert_eq!(trail[0].reason.as_deref(), Some("channel: phone"));
    }

    #[tokio::test]
    async fn a_repeat_entered_by_staff_answers_with_the_open_request_within_the_mailbox_budget() {
        let deps = deps();
        let deps = IntakeDeps::from(&deps);
        let online =
            accept(&deps, submission("repeat@example.com", "access"), Intake::Web, None).await.unwrap();
        let again =
            accept(&deps, submission("repeat@example.com", "access"), by_phone(), None).await.unwrap();
        assert_eq!(again, online, "the request made online, still as made online");
        assert!(deps.store.get(online.0).await.unwrap().unwrap().intake.is_web());
        let third =
            accept(&deps, submission("repeat@example.com", "access"), by_phone(), None).await.unwrap();
        assert_eq!(third, online);
        assert_eq!(deps.mailer.sent_to("repeat@example.com").len(), 2, "the mailbox's budget is two an hour");
    }

    #[tokio::test]
    async fn an_opt_out_staff_took_in_person_is_honoured_at_once_and_names_its_channel() {
        let deps = deps();
        let intake = Intake::Staff { channel: OfflineChannel::InPerson, entered_by: STAFF.into() };
        let (id, status) = accept(
            &IntakeDeps::from(&deps),
            submission("walk-in@example.com", "opt_out_of_sale"),
            intake.clone(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, Status::Completed);
        assert_eq!(deps.store.get(id).await.unwrap().unwrap().intake, intake);
        let trail = deps.store.audit_trail(id).await.unwrap();
        assert_eq!(trail[0].actor, Actor::Staff(STAFF.into()));
        assert_eq!(trail[0].reason.as_deref(), Some("channel: in_person; no_verification_required"));
    }
}
