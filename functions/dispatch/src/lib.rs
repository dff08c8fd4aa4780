//! `dispatch`: consumes the requests table's stream (the transactional outbox) and turns each
//! committed transition into its work.
//!
//! A verified request is first triaged against the data map's account source: an
//! enterprise-managed account is referred to its administrator, a third CCPA right-to-know
//! request within 12 months is rejected, and otherwise the request is cleared (noting a child
//! under 16). A cleared request becomes its work: an export job, an erasure or self-service
//! correction job, the confirmation of a third-party recipient, and a notice to the privacy staff.
//! Completion, an extension, a refusal and a referral each become a notice to the requester.
//!
//! Stream records arrive at least once, so every effect goes through the effect ledger
//! (claim, perform, finish): a redelivered record finds its effects done. The job queues are FIFO
//! with a deduplication id per job as a second guard. A failing record is reported as the batch's
//! first failure; Lambda redelivers from there (`ReportBatchItemFailures`).

use chrono::{Days, Duration};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;

use privacy_shared::Deps;
use privacy_shared::datamap::DataMap;
use privacy_shared::domain::{
    Actor, EmailAddress, Event, Regime, RequestId, RequestKind, RequestRecord, Status, Triage,
    VerificationToken,
};
use privacy_shared::mail::{MailError, Mailer, SesMailer};
use privacy_shared::sources::{AwsPersonalData, PersonalData, SourceError};
use privacy_shared::store::{
    Change, Claim, DynamoStore, RequestStore, StoreError, TokenSlot, Verification, record_from_image,
};

/// How long one delivery may hold an effect before a redelivery may take it over.
const EFFECT_LEASE_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("effect {0} is being performed by another delivery")]
    Busy(String),
}

#[derive(Debug, thiserror::Error)]
#[error("SendMessage failed: {code}")]
pub struct QueueError {
    pub code: String,
}

/// The job queues port: exports, and the jobs that change a person's data (erasure, correction).
pub trait JobQueue: Send + Sync {
    fn enqueue_export(
        &self,
        id: RequestId,
        version: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    fn enqueue_erasure(&self, job: &ErasureJob) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// What the erasure worker is asked to do to one person's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataChange {
    /// Delete (or anonymise, where the data map says why) everything, and prove it.
    Erase,
    /// Apply the requester's self-service corrections.
    Correct,
}

/// The job an erasure worker receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureJob {
    pub request_id: RequestId,
    /// The version of the request that cleared the work (its `triaged` transition).
    pub version: u32,
    pub change: DataChange,
}

/// The job an export worker receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    pub request_id: RequestId,
    /// The version of the request that asked for the export (its `verified` transition).
    pub version: u32,
}

/// SQS FIFO queues: one message group per request, deduplicated per job.
#[derive(Clone, Debug)]
pub struct SqsJobQueue {
    client: aws_sdk_sqs::Client,
    export_url: String,
    erasure_url: String,
}

impl SqsJobQueue {
    pub fn new(
        client: aws_sdk_sqs::Client,
        export_url: impl Into<String>,
        erasure_url: impl Into<String>,
    ) -> SqsJobQueue {
        SqsJobQueue { client, export_url: export_url.into(), erasure_url: erasure_url.into() }
    }

    async fn send(&self, url: &str, body: String, group: String, dedup: String) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .map_err(|e| QueueError {
                code: aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("dispatch_failure")
                    .to_owned(),
            })?;
        Ok(())
    }
}

impl JobQueue for SqsJobQueue {
    async fn enqueue_export(&self, id: RequestId, version: u32) -> Result<(), QueueError> {
        let body = serde_json::to_string(&ExportJob { request_id: id, version })
            .map_err(|_| QueueError { code: "serialize".into() })?;
        self.send(&self.export_url, body, id.to_string(), format!("{id}-export-v{version}")).await
    }

    async fn enqueue_erasure(&self, job: &ErasureJob) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(|_| QueueError { code: "serialize".into() })?;
        let dedup = format!("{}-{:?}-v{}", job.request_id, job.change, job.version);
        self.send(&self.erasure_url, body, job.request_id.to_string(), dedup).await
    }
}

/// What a committed transition asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Triage,
    QueueExport,
    QueueErasure,
    QueueCorrection,
    ConfirmRecipient,
    NotifyStaff,
    NotifyRequesterCompleted,
    NotifyRecipient,
    NotifyRequesterExtended,
    NotifyRequesterDenied,
    NotifyRequesterExcessive,
    NotifyRequesterReferred,
    NotifyRequesterLimit,
}

impl Effect {
    /// The ledger key: one per effect per transition.
    fn ledger_key(self, version: u32) -> String {
        let name = match self {
            Effect::Triage => "triaged",
            Effect::QueueExport => "export_queued",
            Effect::QueueErasure => "erasure_queued",
            Effect::QueueCorrection => "correction_queued",
            Effect::ConfirmRecipient => "recipient_confirmation_sent",
            Effect::NotifyStaff => "staff_notified",
            Effect::NotifyRequesterCompleted => "requester_notified_completed",
            Effect::NotifyRecipient => "recipient_notified",
            Effect::NotifyRequesterExtended => "requester_notified_extended",
            Effect::NotifyRequesterDenied => "requester_notified_denied",
            Effect::NotifyRequesterExcessive => "requester_notified_excessive",
            Effect::NotifyRequesterReferred => "requester_notified_referred",
            Effect::NotifyRequesterLimit => "requester_notified_limit",
        };
        format!("{name}#v{version}")
    }
}

/// Why a request was referred, or rejected for the limit; shown to staff and in the audit trail.
pub const ENTERPRISE_REASON: &str = "enterprise_managed";
pub const LIMIT_REASON: &str = "right_to_know_limit";
/// Right-to-know requests a person may make in 12 months (CCPA; policy section 12).
pub const RIGHT_TO_KNOW_PER_YEAR: usize = 2;
/// How long a third-party recipient confirmation link stays valid.
const RECIPIENT_CONFIRMATION_DAYS: i64 = 7;

fn has_export(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::Access | RequestKind::Portability)
}

/// The work a cleared request becomes, besides the staff notice.
fn work(request: &RequestRecord) -> Vec<Effect> {
    match request.kind {
        RequestKind::Portability if request.recipient.is_some() => vec![Effect::ConfirmRecipient],
        RequestKind::Access | RequestKind::Portability => vec![Effect::QueueExport],
        RequestKind::Deletion => vec![Effect::QueueErasure],
        RequestKind::Rectification if request.corrections.is_some() => vec![Effect::QueueCorrection],
        _ => Vec::new(),
    }
}

/// The whole routing table. Status changes act, and so do the three changes that keep the
/// status: the triage, a confirmed recipient and the one extension; any other write to a request
/// (an acknowledgement stamp, say) is ignored.
pub fn effects(old: Option<&RequestRecord>, new: &RequestRecord) -> Vec<Effect> {
    if let Some(old) = old.filter(|o| o.status == new.status) {
        if old.triage.is_none() && new.triage.is_some() && new.status == Status::Verified {
            let mut effects = work(new);
            effects.push(Effect::NotifyStaff);
            return effects;
        }
        if old.recipient_confirmed_at.is_none() && new.recipient_confirmed_at.is_some() {
            return vec![Effect::QueueExport];
        }
        let extended = old.original_due_on.is_none() && new.original_due_on.is_some();
        return if extended { vec![Effect::NotifyRequesterExtended] } else { Vec::new() };
    }
    match new.status {
        Status::Verified => vec![Effect::Triage],
        Status::Completed if new.recipient_confirmed_at.is_some() => {
            vec![Effect::NotifyRequesterCompleted, Effect::NotifyRecipient]
        }
        Status::Completed => vec![Effect::NotifyRequesterCompleted],
        Status::Denied => vec![Effect::NotifyRequesterDenied],
        Status::Rejected if new.cost_estimate.is_some() => vec![Effect::NotifyRequesterExcessive],
        Status::Rejected if new.closed_reason.as_deref() == Some(LIMIT_REASON) => {
            vec![Effect::NotifyRequesterLimit]
        }
        Status::Referred => vec![Effect::NotifyRequesterReferred],
        _ => Vec::new(),
    }
}

/// The stream event as Lambda delivers it.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    pub dynamodb: StreamData,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamData {
    pub sequence_number: String,
    #[serde(default)]
    pub new_image: Option<HashMap<String, serde_dynamo::AttributeValue>>,
    #[serde(default)]
    pub old_image: Option<HashMap<String, serde_dynamo::AttributeValue>>,
}

/// An SQS batch as Lambda delivers it to the job workers (`export`, `erasure`).
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsMessage>,
}

#[derive(Debug, Deserialize)]
pub struct SqsMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub body: String,
}

/// Runs `work` on the job in every message of an SQS batch and reports the messages whose job
/// failed (or could not be read) as failures, so the queue redelivers only those.
pub async fn each_job<J, E, F, Fut>(event: SqsEvent, mut work: F) -> BatchResponse
where
    J: serde::de::DeserializeOwned,
    E: std::fmt::Display,
    F: FnMut(J) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut response = BatchResponse::default();
    for message in event.records {
        let failure = match serde_json::from_str::<J>(&message.body) {
            Ok(job) => work(job).await.err().map(|err| err.to_string()),
            Err(_) => Some("the job message is not readable".to_owned()),
        };
        if let Some(error) = failure {
            tracing::error!(%error, message_id = %message.message_id, "job failed; the message will be retried");
            response.batch_item_failures.push(ItemFailure { item_identifier: message.message_id });
        }
    }
    response
}

/// `ReportBatchItemFailures` response.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

pub struct Dispatcher<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData> {
    pub deps: Deps<S, M>,
    pub queue: Q,
    pub staff: EmailAddress,
    pub export_retention_days: u64,
    /// The data map's account source is read to triage a verified request.
    pub data: P,
    pub map: DataMap,
}

impl Dispatcher<DynamoStore, SesMailer, SqsJobQueue, AwsPersonalData> {
    pub async fn from_env() -> Result<Self, privacy_shared::ConfigError> {
        let config = privacy_shared::Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let get = |name| std::env::var(name).ok();
        Dispatcher::with_sdk(&sdk, config, std::sync::Arc::new(privacy_shared::SystemClock), get)
    }

    pub fn with_sdk(
        sdk: &aws_config::SdkConfig,
        config: privacy_shared::Config,
        clock: std::sync::Arc<dyn privacy_shared::Clock>,
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, privacy_shared::ConfigError> {
        use privacy_shared::ConfigError;
        let staff = get("STAFF_ADDRESS").ok_or(ConfigError::Missing("STAFF_ADDRESS"))?;
        let staff = EmailAddress::parse(&staff).map_err(|_| ConfigError::Invalid {
            name: "STAFF_ADDRESS",
            why: "not an email address".into(),
        })?;
        let url = get("EXPORT_QUEUE_URL").ok_or(ConfigError::Missing("EXPORT_QUEUE_URL"))?;
        let erasure_url = get("ERASURE_QUEUE_URL").ok_or(ConfigError::Missing("ERASURE_QUEUE_URL"))?;
        let map = DataMap::builtin()
            .map_err(|e| ConfigError::Invalid { name: "DATA_MAP", why: e.to_string() })?
            .with_name_prefix(&get("DATA_NAME_PREFIX").unwrap_or_default());
        let export_retention_days = match get("EXPORT_RETENTION_DAYS") {
            None => 30,
            Some(raw) => raw.trim().parse().ok().filter(|d| *d > 0).ok_or(ConfigError::Invalid {
                name: "EXPORT_RETENTION_DAYS",
                why: "must be a positive number of days".into(),
            })?,
        };
        Ok(Dispatcher {
            deps: privacy_shared::AwsDeps::with_sdk(sdk, config, clock),
            queue: SqsJobQueue::new(aws_sdk_sqs::Client::new(sdk), url, erasure_url),
            staff,
            export_retention_days,
            data: AwsPersonalData::new(
                aws_sdk_dynamodb::Client::new(sdk),
                privacy_shared::deps::s3_client(sdk, privacy_shared::deps::s3_path_style_from_env()),
            ),
            map,
        })
    }
}

pub async fn handle<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    event: LambdaEvent<StreamEvent>,
) -> Result<BatchResponse, Infallible> {
    let mut response = BatchResponse::default();
    for record in event.payload.records {
        let sequence = record.dynamodb.sequence_number.clone();
        if let Err(err) = process(dispatcher, record).await {
            tracing::error!(error = %err, sequence = %sequence, "stream record failed; redelivering from it");
            // Streams are ordered: everything after a failure is redelivered anyway.
            response.batch_item_failures.push(ItemFailure { item_identifier: sequence });
            break;
        }
    }
    Ok(response)
}

async fn process<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: StreamRecord,
) -> Result<(), DispatchError> {
    let Some(new) = record.dynamodb.new_image.and_then(record_from_image) else {
        return Ok(());
    };
    let old = record.dynamodb.old_image.and_then(record_from_image);
    for effect in effects(old.as_ref(), &new) {
        perform(dispatcher, effect, &new).await?;
    }
    Ok(())
}

async fn perform<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    effect: Effect,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let store = &dispatcher.deps.store;
    let key = effect.ledger_key(record.version);
    let now = dispatcher.deps.clock.now();
    match store.claim_effect(record.id, &key, now, Duration::seconds(EFFECT_LEASE_SECONDS)).await? {
        Claim::AlreadyDone => return Ok(()),
        Claim::InProgress => return Err(DispatchError::Busy(key)),
        Claim::Acquired => {}
    }
    let templates = &dispatcher.deps.templates;
    let outcome = match effect {
        Effect::Triage => triage(dispatcher, record).await,
        Effect::QueueExport => {
            dispatcher.queue.enqueue_export(record.id, record.version).await.map_err(DispatchError::from)
        }
        Effect::QueueErasure | Effect::QueueCorrection => {
            let change = if effect == Effect::QueueErasure { DataChange::Erase } else { DataChange::Correct };
            let job = ErasureJob { request_id: record.id, version: record.version, change };
            dispatcher.queue.enqueue_erasure(&job).await.map_err(DispatchError::from)
        }
        Effect::ConfirmRecipient => confirm_recipient(dispatcher, record).await,
        Effect::NotifyStaff => notify_staff(dispatcher, record).await,
        Effect::NotifyRequesterCompleted => notify_completed(dispatcher, record).await,
        Effect::NotifyRecipient => notify_recipient(dispatcher, record).await,
        Effect::NotifyRequesterReferred => notify(dispatcher, templates.referred(record)).await,
        Effect::NotifyRequesterLimit => notify(dispatcher, templates.limit_reached(record)).await,
        Effect::NotifyRequesterExtended => {
            notify(dispatcher, dispatcher.deps.templates.extended(record)).await
        }
        Effect::NotifyRequesterDenied => notify(dispatcher, dispatcher.deps.templates.denied(record)).await,
        Effect::NotifyRequesterExcessive => {
            notify(dispatcher, dispatcher.deps.templates.excessive(record)).await
        }
    };
    match outcome {
        Ok(()) => {
            store.finish_effect(record.id, &key).await?;
            tracing::info!(request_id = %record.id, effect = %key, "effect performed");
            Ok(())
        }
        Err(err) => {
            store.release_effect(record.id, &key).await?;
            Err(err)
        }
    }
}

async fn notify_staff<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let email = dispatcher.deps.templates.staff_notice(&dispatcher.staff, record, has_export(record.kind))?;
    dispatcher.deps.mailer.send(&email).await?;
    Ok(())
}

/// Looks the requester up in the account source and decides: referred, rejected for the limit,
/// or cleared (with what the work needs to know). One conditional transition either way.
async fn triage<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let account = match dispatcher.map.user_id_source() {
        Some(source) => dispatcher.data.records(source, record.email.normalized()).await?.into_iter().next(),
        None => None,
    };
    let text =
        |name: &str| account.as_ref().and_then(|a| a.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
    let now = deps.clock.now();
    let change = if text("account_type").as_deref() == Some("enterprise_managed") {
        let mut change = Change::new(Event::Referred, now, Actor::System).with_reason(ENTERPRISE_REASON);
        change.referral_contact = text("administrator_contact");
        change
    } else if over_limit(dispatcher, record).await? {
        Change::new(Event::Rejected, now, Actor::System).with_reason(LIMIT_REASON)
    } else {
        let today = deps.config.calendar.local_date(now);
        let child = text("birth_date").is_some_and(|born| under_16(&born, today));
        let mut change = Change::new(Event::Triaged, now, Actor::System);
        change.triage = Some(Triage { has_account: account.is_some(), child });
        change
    };
    tracing::info!(request_id = %record.id, outcome = %change.event, "request triaged");
    match deps.store.transition(record, change).await {
        Ok(_) => Ok(()),
        // Changed meanwhile (staff acted, or another delivery triaged it): nothing left to decide.
        Err(StoreError::Conflict) => match deps.store.get(record.id).await? {
            Some(now) if now.status == Status::Verified && now.triage.is_none() => {
                Err(StoreError::Conflict.into())
            }
            _ => Ok(()),
        },
        Err(err) => Err(err.into()),
    }
}

/// A third right-to-know request within 12 months, under the CCPA (the policy's California
/// section allows two; elsewhere a repeat is for staff to judge as excessive).
async fn over_limit<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<bool, DispatchError> {
    if record.regime != Regime::Ccpa || !has_export(record.kind) {
        return Ok(false);
    }
    let since = record.received_at - Duration::days(365);
    let store = &dispatcher.deps.store;
    let mut earlier = 0;
    for past in store.history(&record.email.subject_key()).await? {
        let in_window = past.received_at > since && past.received_at <= record.received_at;
        if past.id == record.id || !has_export(past.kind) || !in_window {
            continue;
        }
        // A request we turned down (for this very limit, say) was not answered, so it does not count.
        let answered = store.get(past.id).await?.is_some_and(|p| {
            !matches!(p.status, Status::Rejected | Status::Referred | Status::Denied | Status::Expired)
        });
        earlier += usize::from(answered);
    }
    Ok(earlier >= RIGHT_TO_KNOW_PER_YEAR)
}

/// Under 16 on `today`, from a `YYYY-MM-DD` birth date; an unreadable date is not a child.
pub fn under_16(born: &str, today: chrono::NaiveDate) -> bool {
    chrono::NaiveDate::parse_from_str(born, "%Y-%m-%d")
        .ok()
        .and_then(|born| born.checked_add_months(chrono::Months::new(16 * 12)))
        .is_some_and(|sixteenth| today < sixteenth)
}

/// The second verification: the requester confirms the third party the export may go to.
async fn confirm_recipient<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let token = VerificationToken::generate();
    let expires_at = deps.clock.now() + Duration::days(RECIPIENT_CONFIRMATION_DAYS);
    let secret = Verification { token_hash: token.hash(), expires_at, wrong_attempts: 0 };
    deps.store.put_secret(record.id, TokenSlot::Recipient, &secret).await?;
    let valid_until = deps.config.calendar.local_date(expires_at);
    let email =
        deps.templates.recipient_confirmation(record, &token, valid_until, &deps.config.public_base_url)?;
    deps.mailer.send(&email).await?;
    Ok(())
}

/// The confirmed third party gets its own download link (its own token; only the hash is kept).
async fn notify_recipient<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let Some(recipient) = &record.recipient else { return Ok(()) };
    let token = VerificationToken::generate();
    let expires_at = record.updated_at + Duration::days(dispatcher.export_retention_days as i64);
    deps.store.put_download_token(record.id, TokenSlot::Recipient, &token.hash(), expires_at).await?;
    let link = download_link(&deps.config.public_base_url, record.id, &token);
    let until = deps.config.calendar.local_date(expires_at);
    let email = deps.templates.recipient_delivery(record, recipient, &link, until)?;
    deps.mailer.send(&email).await?;
    Ok(())
}

fn download_link(base: &str, id: RequestId, token: &VerificationToken) -> String {
    format!("{base}/requests/{id}/download?token={}", token.expose_secret())
}

async fn notify<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    email: Result<privacy_shared::mail::OutgoingEmail, MailError>,
) -> Result<(), DispatchError> {
    dispatcher.deps.mailer.send(&email?).await?;
    Ok(())
}

/// The completion notice; for an export it carries a download link with a fresh token (only its
/// hash is stored), valid as long as the export is kept.
async fn notify_completed<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let mut link = None;
    if has_export(record.kind) {
        let token = VerificationToken::generate();
        let expires_at = record.updated_at + Duration::days(dispatcher.export_retention_days as i64);
        deps.store.put_download_token(record.id, TokenSlot::Requester, &token.hash(), expires_at).await?;
        link = Some(download_link(&deps.config.public_base_url, record.id, &token));
    }
    let until =
        deps.config.calendar.local_date(record.updated_at) + Days::new(dispatcher.export_retention_days);
    let email = deps.templates.completed(record, link.as_deref().map(|l| (l, until)))?;
    deps.mailer.send(&email).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy_shared::domain::{Language, Region};

    fn record(kind: RequestKind, status: Status) -> RequestRecord {
        let at = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let day = at.date_naive();
        let deadlines =
            privacy_shared::domain::Deadlines { received_on: day, due_on: day, acknowledge_by: None };
        let email = EmailAddress::parse("a@example.com").unwrap();
        let region = Region::parse("NL").unwrap();
        let received =
            RequestRecord::received(RequestId::generate(), kind, region, Language::Nl, email, at, deadlines);
        RequestRecord { status, version: 2, ..received }
    }

    /// The same request after the triage cleared it.
    fn triaged(kind: RequestKind) -> (RequestRecord, RequestRecord) {
        let verified = record(kind, Status::Verified);
        let mut cleared = verified.clone();
        cleared.version += 1;
        cleared.triage = Some(Triage::default());
        (verified, cleared)
    }

    #[test]
    fn a_verified_request_is_triaged_before_anything_else() {
        for kind in RequestKind::ALL {
            let old = record(kind, Status::PendingVerification);
            assert_eq!(effects(Some(&old), &record(kind, Status::Verified)), vec![Effect::Triage], "{kind}");
        }
    }

    #[test]
    fn a_cleared_request_becomes_its_work_and_a_staff_notice() {
        use Effect as E;
        use RequestKind as K;
        for (kind, work) in [
            (K::Access, vec![E::QueueExport]),
            (K::Portability, vec![E::QueueExport]),
            (K::Deletion, vec![E::QueueErasure]),
            (K::Rectification, vec![]),
            (K::Restriction, vec![]),
            (K::Objection, vec![]),
            (K::WithdrawConsent, vec![]),
        ] {
            let (old, new) = triaged(kind);
            let mut expected = work;
            expected.push(E::NotifyStaff);
            assert_eq!(effects(Some(&old), &new), expected, "{kind}");
        }
        let (old, mut corrections) = triaged(K::Rectification);
        corrections.corrections = Some([("job_title".to_owned(), "Lead".to_owned())].into());
        assert_eq!(effects(Some(&old), &corrections), vec![E::QueueCorrection, E::NotifyStaff]);
        let (old, mut third_party) = triaged(K::Portability);
        third_party.recipient = Some(EmailAddress::parse("new@example.org").unwrap());
        assert_eq!(effects(Some(&old), &third_party), vec![E::ConfirmRecipient, E::NotifyStaff]);
        let mut confirmed = third_party.clone();
        confirmed.recipient_confirmed_at = Some(confirmed.updated_at);
        assert_eq!(effects(Some(&third_party), &confirmed), vec![E::QueueExport], "export once confirmed");
    }

    #[test]
    fn completion_notifies_the_requester_and_nothing_else_acts() {
        let done = record(RequestKind::Access, Status::Completed);
        assert_eq!(
            effects(Some(&record(RequestKind::Access, Status::InProgress)), &done),
            vec![Effect::NotifyRequesterCompleted]
        );
        let mut delivered = done.clone();
        delivered.recipient_confirmed_at = Some(done.updated_at);
        assert_eq!(
            effects(Some(&record(RequestKind::Access, Status::InProgress)), &delivered),
            vec![Effect::NotifyRequesterCompleted, Effect::NotifyRecipient]
        );
        for status in [Status::PendingVerification, Status::InProgress, Status::Expired] {
            assert!(effects(None, &record(RequestKind::Access, status)).is_empty(), "{status}");
        }
    }

    #[test]
    fn a_referral_and_the_limit_are_told_to_the_requester() {
        let verified = record(RequestKind::Access, Status::Verified);
        let referred = record(RequestKind::Access, Status::Referred);
        assert_eq!(effects(Some(&verified), &referred), vec![Effect::NotifyRequesterReferred]);
        let mut limited = record(RequestKind::Access, Status::Rejected);
        limited.closed_reason = Some(LIMIT_REASON.to_owned());
        assert_eq!(effects(Some(&verified), &limited), vec![Effect::NotifyRequesterLimit]);
    }

    #[test]
    fn sixteen_is_counted_from_the_birthday() {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(under_16("2012-05-01", day("2028-04-30")));
        assert!(!under_16("2012-05-01", day("2028-05-01")));
        assert!(!under_16("1990-01-01", day("2026-11-28")));
        assert!(under_16("2012-02-29", day("2028-02-28")), "a leap-day birthday counts on 29 February");
        assert!(!under_16("not a date", day("2026-11-28")), "unreadable is not a child");
    }

    #[test]
    fn refusals_and_the_extension_notify_the_requester() {
        let verified = record(RequestKind::Rectification, Status::Verified);
        let mut extended = verified.clone();
        extended.version += 1;
        extended.original_due_on = Some(verified.due_on);
        extended.due_on = verified.due_on + Days::new(30);
        assert_eq!(effects(Some(&verified), &extended), vec![Effect::NotifyRequesterExtended]);
        assert!(effects(Some(&extended), &extended).is_empty(), "a later write is not a second extension");

        let denied = record(RequestKind::Rectification, Status::Denied);
        assert_eq!(effects(Some(&verified), &denied), vec![Effect::NotifyRequesterDenied]);

        let mut excessive = record(RequestKind::Access, Status::Rejected);
        assert!(effects(Some(&verified), &excessive).is_empty(), "no estimate, no excessive notice");
        excessive.cost_estimate = Some(privacy_shared::domain::CostEstimate::parse("25.00", "EUR").unwrap());
        assert_eq!(effects(Some(&verified), &excessive), vec![Effect::NotifyRequesterExcessive]);
    }

    #[test]
    fn a_write_that_keeps_the_status_is_not_a_transition() {
        let same = record(RequestKind::Access, Status::Verified);
        assert!(effects(Some(&same), &same).is_empty());
    }

    #[test]
    fn ledger_keys_are_per_effect_and_version() {
        assert_eq!(Effect::QueueExport.ledger_key(2), "export_queued#v2");
        assert_ne!(Effect::NotifyStaff.ledger_key(2), Effect::NotifyStaff.ledger_key(3));
    }
}
