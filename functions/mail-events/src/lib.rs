//! `mail-events`: what became of the mail we sent. SES publishes the configuration set's events
//! (delivery, bounce, complaint, …) to an SNS topic this function is subscribed to; each mail
//! carries its kind and request as tags, so an event finds its request without any address.
//!
//! - A delivery is recorded on the request (`mail_delivered`: the kind, at the delivery time). A
//!   delivered confirmation of receipt (the verification email, or the reminder) stamps the
//!   request's `acknowledged_at`: the CCPA's confirmation counts when it reached the requester,
//!   not when we sent it.
//! - A permanent bounce or a complaint suppresses the address (an item under the hash of the
//!   address, never the address): requester mail to it is withheld from then on, except the
//!   request's answer, which still goes out with a staff alert (see `dispatch`). It is recorded
//!   on the request; a permanent bounce of the answer itself alerts staff at once. A transient or
//!   undetermined bounce is only recorded.
//! - Mail to staff is never suppressed: a staff mailbox that bounces is logged as an error.
//! - Other event types (send, reject, delivery delay, opens, …) and mail not tagged as ours are
//!   ignored.
//!
//! SNS delivers at least once: each event is performed once per mail and event type through the
//! effect ledger, and every write is idempotent besides. A message that cannot be read is logged
//! (its SNS id and a reason, none of its content) and skipped: no retry would make it readable,
//! and failing would only hold it until Lambda gives up. A failure of the table or SES fails the
//! invocation: Lambda retries it (twice), then hands the event to the dead-letter queue (alarmed).
//!
//! Nothing it logs names an address, a subject or a body.

mod event;

use chrono::Duration;
use lambda_runtime::LambdaEvent;
use std::sync::Arc;

pub use aws_lambda_events::sns::SnsEvent;
pub use event::{BounceType, MailEvent, Malformed, Notice, parse};
use privacy_shared::config::{Env, MailEventsSettings};
use privacy_shared::domain::{Actor, EmailAddress, Event, RequestRecord};
use privacy_shared::mail::templates::{AnswerAlert, Templates};
use privacy_shared::mail::{MailError, Mailer, MessageKind, SesMailer};
use privacy_shared::store::ledger::{Once, once};
use privacy_shared::store::{
    DynamoStore, EffectLedger, MailSuppression, People, Requests, StoreError, SuppressionCause,
};
use privacy_shared::{Clock, ConfigError, SystemClock};

/// How long one delivery may hold an event in the ledger: well beyond the function's timeout.
const CLAIM_LEASE_SECONDS: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum MailEventsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    /// Another delivery of the same event holds it; the retry finds it done.
    #[error("mail event {0} is being handled by another delivery")]
    Busy(String),
}

/// What Lambda records when an invocation fails: error codes and keys, no personal data.
impl From<MailEventsError> for lambda_runtime::Diagnostic {
    fn from(err: MailEventsError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "MailEventFailed".to_owned(),
            error_message: err.to_string(),
        }
    }
}

pub struct MailEvents<S, M> {
    pub store: S,
    /// Sends the staff alert when an answer bounces for good.
    pub mailer: M,
    pub templates: Templates,
    pub staff: EmailAddress,
    pub clock: Arc<dyn Clock>,
}

impl MailEvents<DynamoStore, SesMailer> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = MailEventsSettings::load(&Env::process())?;
        let sdk = privacy_shared::deps::sdk_from_env().await;
        Ok(MailEvents::with_sdk(&sdk, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(
        sdk: &aws_config::SdkConfig,
        settings: MailEventsSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        MailEvents {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table_name),
            mailer: SesMailer::new(
                aws_sdk_sesv2::Client::new(sdk),
                settings.mail_from,
                settings.ses_configuration_set,
            ),
            templates: Templates::new(),
            staff: settings.staff,
            clock,
        }
    }
}

/// What the function touches: requests (their audit trail and acknowledgement), the ledger, and
/// the people's mail suppression.
pub trait MailEventStore: Requests + People + EffectLedger {}

impl<T: Requests + People + EffectLedger> MailEventStore for T {}

/// One SNS delivery (in practice one record). A record that fails fails the invocation; those
/// before it are done, and their redelivery finds them so.
pub async fn handle<S: MailEventStore, M: Mailer>(
    events: &MailEvents<S, M>,
    event: LambdaEvent<SnsEvent>,
) -> Result<(), MailEventsError> {
    for record in event.payload.records {
        match parse(&record.sns.message) {
            Ok(notice) => process(events, &notice).await?,
            Err(why) => {
                tracing::error!(sns_message_id = %record.sns.message_id, reason = why.0, "malformed mail event skipped");
            }
        }
    }
    Ok(())
}

/// Acts on one event, once however often it is delivered.
pub async fn process<S: MailEventStore, M: Mailer>(
    events: &MailEvents<S, M>,
    notice: &Notice,
) -> Result<(), MailEventsError> {
    let kind = notice.kind().map_or("untagged", MessageKind::as_str);
    if let MailEvent::Other(name) = &notice.event {
        tracing::info!(event_type = name.as_str(), kind, "mail event ignored");
        return Ok(());
    }
    let request = match notice.tags.and_then(|t| t.request) {
        Some(id) => events.store.get(id).await?,
        None => None,
    };
    let Some(request) = request else {
        // Nothing to record on; the suppression is idempotent by itself.
        return apply(events, notice, None).await;
    };
    let key = format!("mail#{}#{}", notice.event.name(), notice.message_id);
    let now = events.clock.now();
    let lease = Duration::seconds(CLAIM_LEASE_SECONDS);
    match once(&events.store, request.id, &key, now, lease, apply(events, notice, Some(&request))).await? {
        Once::Performed(()) => Ok(()),
        Once::AlreadyDone => {
            tracing::info!(request_id = %request.id, event_type = notice.event.name(), kind, "mail event seen before");
            Ok(())
        }
        Once::Busy => Err(MailEventsError::Busy(key)),
    }
}

async fn apply<S: MailEventStore, M: Mailer>(
    events: &MailEvents<S, M>,
    notice: &Notice,
    request: Option<&RequestRecord>,
) -> Result<(), MailEventsError> {
    let store = &events.store;
    let kind = notice.kind();
    let kind_name = kind.map_or("untagged", MessageKind::as_str);
    let request_id = request.map(|r| r.id.to_string()).unwrap_or_default();
    let to_staff = kind.is_some_and(MessageKind::is_to_staff);
    match &notice.event {
        MailEvent::Delivered { at } => {
            if let Some(request) = request {
                record(store, request, Event::MailDelivered, *at, kind_name.to_owned()).await?;
                if kind.is_some_and(MessageKind::confirms_receipt) {
                    store.mark_acknowledged(request.id, *at).await?;
                }
            }
            tracing::info!(request_id, kind = kind_name, "mail delivered");
        }
        MailEvent::Bounced { bounce, recipients, at } => {
            let permanent = *bounce == BounceType::Permanent;
            if permanent {
                suppress(events, notice, recipients, SuppressionCause::Bounce, *at, request).await?;
            }
            if let Some(request) = request {
                let reason = format!("{kind_name}: {}", bounce.as_str());
                record(store, request, Event::MailBounced, *at, reason).await?;
            }
            tracing::warn!(request_id, kind = kind_name, bounce = bounce.as_str(), "mail bounced");
            // A recipient that cannot be reached has not been told (GDPR Art. 19): every bounce of
            // its instruction is an alert, a soft one too (SES gave up on it).
            if let (Some(request), Some(MessageKind::RecipientInstruction)) = (request, kind) {
                let why = AnswerAlert::RecipientBounced { permanent };
                let alert = events.templates.answer_alert(
                    &events.staff,
                    request.id,
                    MessageKind::RecipientInstruction,
                    why,
                )?;
                events.mailer.send(&alert).await?;
                tracing::error!(request_id, "a recipient's instruction bounced; staff alerted");
                return Ok(());
            }
            // Last: should anything before fail, the retry sends no second alert.
            if let (true, Some(request), Some(answer)) = (permanent, request, kind.filter(|k| k.is_answer()))
            {
                let alert =
                    events.templates.answer_alert(&events.staff, request.id, answer, AnswerAlert::Bounced)?;
                events.mailer.send(&alert).await?;
                tracing::warn!(request_id, kind = kind_name, "the answer bounced for good; staff alerted");
            }
        }
        MailEvent::Complained { recipients, at } => {
            suppress(events, notice, recipients, SuppressionCause::Complaint, *at, request).await?;
            if let Some(request) = request {
                record(store, request, Event::MailComplained, *at, kind_name.to_owned()).await?;
            }
            tracing::warn!(request_id, kind = kind_name, "mail reported as spam");
        }
        MailEvent::Other(_) => {}
    }
    if to_staff && !matches!(notice.event, MailEvent::Delivered { .. }) {
        tracing::error!(kind = kind_name, "staff mail did not arrive: check STAFF_ADDRESS");
    }
    Ok(())
}

/// No more requester mail to these addresses (staff mail is never suppressed).
async fn suppress<S: MailEventStore, M: Mailer>(
    events: &MailEvents<S, M>,
    notice: &Notice,
    recipients: &[EmailAddress],
    cause: SuppressionCause,
    since: chrono::DateTime<chrono::Utc>,
    request: Option<&RequestRecord>,
) -> Result<(), MailEventsError> {
    if notice.kind().is_some_and(MessageKind::is_to_staff) {
        return Ok(());
    }
    let suppression = MailSuppression { cause, since, request_id: request.map(|r| r.id) };
    for recipient in recipients {
        events.store.suppress_mail(&recipient.subject_key(), &suppression).await?;
    }
    tracing::info!(
        request_id = request.map(|r| r.id.to_string()).unwrap_or_default(),
        cause = cause.as_str(),
        addresses = recipients.len(),
        "mail suppressed"
    );
    Ok(())
}

async fn record<S: MailEventStore>(
    store: &S,
    request: &RequestRecord,
    event: Event,
    at: chrono::DateTime<chrono::Utc>,
    reason: String,
) -> Result<(), StoreError> {
    store.record_event_because(request, event, at, Actor::System, Some(reason)).await
}
