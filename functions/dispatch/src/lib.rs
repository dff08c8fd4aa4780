//! `dispatch`: consumes the requests table's stream (the transactional outbox) and turns each
//! committed transition into its work: a verified access or portability request becomes an export
//! job, every verified request a notice to the privacy staff; completion, an extension, a denial
//! and an excessive-request decision each a notice to the requester (with the reason, the new date
//! or the estimate, and where to complain).
//!
//! Stream records arrive at least once, so every effect goes through the effect ledger
//! (claim, perform, finish): a redelivered record finds its effects done. The export queue is FIFO
//! with a deduplication id per job as a second guard. A failing record is reported as the batch's
//! first failure; Lambda redelivers from there (`ReportBatchItemFailures`).

use chrono::{Days, Duration};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;

use privacy_shared::Deps;
use privacy_shared::domain::{
    EmailAddress, RequestId, RequestKind, RequestRecord, Status, VerificationToken,
};
use privacy_shared::mail::{MailError, Mailer, SesMailer};
use privacy_shared::store::{Claim, DynamoStore, RequestStore, StoreError, record_from_image};

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
    #[error("effect {0} is being performed by another delivery")]
    Busy(String),
}

#[derive(Debug, thiserror::Error)]
#[error("SendMessage failed: {code}")]
pub struct QueueError {
    pub code: String,
}

/// The export queue port.
pub trait JobQueue: Send + Sync {
    fn enqueue_export(
        &self,
        id: RequestId,
        version: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The job an export worker receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    pub request_id: RequestId,
    /// The version of the request that asked for the export (its `verified` transition).
    pub version: u32,
}

/// SQS FIFO: one message group per request, deduplicated per job.
#[derive(Clone, Debug)]
pub struct SqsJobQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsJobQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> SqsJobQueue {
        SqsJobQueue { client, url: url.into() }
    }
}

impl JobQueue for SqsJobQueue {
    async fn enqueue_export(&self, id: RequestId, version: u32) -> Result<(), QueueError> {
        let body = serde_json::to_string(&ExportJob { request_id: id, version })
            .map_err(|_| QueueError { code: "serialize".into() })?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(id.to_string())
            .message_deduplication_id(format!("{id}-export-v{version}"))
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

/// What a committed transition asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    QueueExport,
    NotifyStaff,
    NotifyRequesterCompleted,
    NotifyRequesterExtended,
    NotifyRequesterDenied,
    NotifyRequesterExcessive,
}

impl Effect {
    /// The ledger key: one per effect per transition.
    fn ledger_key(self, version: u32) -> String {
        let name = match self {
            Effect::QueueExport => "export_queued",
            Effect::NotifyStaff => "staff_notified",
            Effect::NotifyRequesterCompleted => "requester_notified_completed",
            Effect::NotifyRequesterExtended => "requester_notified_extended",
            Effect::NotifyRequesterDenied => "requester_notified_denied",
            Effect::NotifyRequesterExcessive => "requester_notified_excessive",
        };
        format!("{name}#v{version}")
    }
}

fn has_export(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::Access | RequestKind::Portability)
}

/// The whole routing table. Status changes act, and so does the one extension a request may get;
/// any other write to a request (an acknowledgement stamp, say) is ignored.
pub fn effects(old: Option<&RequestRecord>, new: &RequestRecord) -> Vec<Effect> {
    if let Some(old) = old.filter(|o| o.status == new.status) {
        let extended = old.original_due_on.is_none() && new.original_due_on.is_some();
        return if extended { vec![Effect::NotifyRequesterExtended] } else { Vec::new() };
    }
    match new.status {
        Status::Verified if has_export(new.kind) => vec![Effect::QueueExport, Effect::NotifyStaff],
        Status::Verified => vec![Effect::NotifyStaff],
        Status::Completed => vec![Effect::NotifyRequesterCompleted],
        Status::Denied => vec![Effect::NotifyRequesterDenied],
        Status::Rejected if new.cost_estimate.is_some() => vec![Effect::NotifyRequesterExcessive],
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

pub struct Dispatcher<S: RequestStore, M: Mailer, Q: JobQueue> {
    pub deps: Deps<S, M>,
    pub queue: Q,
    pub staff: EmailAddress,
    pub export_retention_days: u64,
}

impl Dispatcher<DynamoStore, SesMailer, SqsJobQueue> {
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
        let export_retention_days = match get("EXPORT_RETENTION_DAYS") {
            None => 30,
            Some(raw) => raw.trim().parse().ok().filter(|d| *d > 0).ok_or(ConfigError::Invalid {
                name: "EXPORT_RETENTION_DAYS",
                why: "must be a positive number of days".into(),
            })?,
        };
        Ok(Dispatcher {
            deps: privacy_shared::AwsDeps::with_sdk(sdk, config, clock),
            queue: SqsJobQueue::new(aws_sdk_sqs::Client::new(sdk), url),
            staff,
            export_retention_days,
        })
    }
}

pub async fn handle<S: RequestStore, M: Mailer, Q: JobQueue>(
    dispatcher: &Dispatcher<S, M, Q>,
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

async fn process<S: RequestStore, M: Mailer, Q: JobQueue>(
    dispatcher: &Dispatcher<S, M, Q>,
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

async fn perform<S: RequestStore, M: Mailer, Q: JobQueue>(
    dispatcher: &Dispatcher<S, M, Q>,
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
    let outcome = match effect {
        Effect::QueueExport => {
            dispatcher.queue.enqueue_export(record.id, record.version).await.map_err(DispatchError::from)
        }
        Effect::NotifyStaff => notify_staff(dispatcher, record).await,
        Effect::NotifyRequesterCompleted => notify_completed(dispatcher, record).await,
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

async fn notify_staff<S: RequestStore, M: Mailer, Q: JobQueue>(
    dispatcher: &Dispatcher<S, M, Q>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let email = dispatcher.deps.templates.staff_notice(&dispatcher.staff, record, has_export(record.kind))?;
    dispatcher.deps.mailer.send(&email).await?;
    Ok(())
}

async fn notify<S: RequestStore, M: Mailer, Q: JobQueue>(
    dispatcher: &Dispatcher<S, M, Q>,
    email: Result<privacy_shared::mail::OutgoingEmail, MailError>,
) -> Result<(), DispatchError> {
    dispatcher.deps.mailer.send(&email?).await?;
    Ok(())
}

/// The completion notice; for an export it carries a download link with a fresh token (only its
/// hash is stored), valid as long as the export is kept.
async fn notify_completed<S: RequestStore, M: Mailer, Q: JobQueue>(
    dispatcher: &Dispatcher<S, M, Q>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let mut link = None;
    if has_export(record.kind) {
        let token = VerificationToken::generate();
        let expires_at = record.updated_at + Duration::days(dispatcher.export_retention_days as i64);
        deps.store.put_download_token(record.id, &token.hash(), expires_at).await?;
        link = Some(format!(
            "{}/requests/{}/download?token={}",
            deps.config.public_base_url,
            record.id,
            token.expose_secret()
        ));
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
    use privacy_shared::domain::{Language, Regime, Region};

    fn record(kind: RequestKind, status: Status) -> RequestRecord {
        let at = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        RequestRecord {
            id: RequestId::generate(),
            status,
            version: 2,
            kind,
            region: Region::parse("NL").unwrap(),
            regime: Regime::Gdpr,
            language: Language::Nl,
            email: EmailAddress::parse("a@example.com").unwrap(),
            name: None,
            details: None,
            received_at: at,
            received_on: at.date_naive(),
            due_on: at.date_naive(),
            acknowledge_by: None,
            verified_at: None,
            acknowledged_at: None,
            original_due_on: None,
            extension_reason: None,
            closed_reason: None,
            cost_estimate: None,
            updated_at: at,
        }
    }

    #[test]
    fn verified_access_and_portability_get_an_export_and_a_staff_notice() {
        for kind in [RequestKind::Access, RequestKind::Portability] {
            let old = record(kind, Status::PendingVerification);
            let new = record(kind, Status::Verified);
            assert_eq!(effects(Some(&old), &new), vec![Effect::QueueExport, Effect::NotifyStaff]);
        }
    }

    #[test]
    fn other_verified_kinds_only_notify_the_staff() {
        for kind in RequestKind::ALL.into_iter().filter(|k| !has_export(*k)) {
            let new = record(kind, Status::Verified);
            assert_eq!(
                effects(Some(&record(kind, Status::PendingVerification)), &new),
                vec![Effect::NotifyStaff]
            );
        }
    }

    #[test]
    fn completion_notifies_the_requester_and_nothing_else_acts() {
        let done = record(RequestKind::Access, Status::Completed);
        assert_eq!(
            effects(Some(&record(RequestKind::Access, Status::InProgress)), &done),
            vec![Effect::NotifyRequesterCompleted]
        );
        for status in [Status::PendingVerification, Status::InProgress, Status::Expired, Status::Referred] {
            assert!(effects(None, &record(RequestKind::Access, status)).is_empty(), "{status}");
        }
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
