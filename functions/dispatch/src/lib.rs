//! `dispatch`: consumes the requests table's stream (the transactional outbox) and turns each
//! committed transition into its work.
//!
//! A verified request is first triaged against the data map's account source: an
//! enterprise-managed account is referred to its administrator, a third CCPA right-to-know
//! request within 12 months is rejected, and otherwise the request is cleared (noting a child
//! under 16). A cleared request becomes its work: an export job, an erasure or self-service
//! correction job, the confirmation of a third-party recipient, and a notice to the privacy staff.
//! Completion, an extension, a refusal and a referral each become a notice to the requester. A
//! referral hands the customer's data to the customer; what the company keeps for its own
//! purposes (the data map's `own_purpose` sources) stays the company's to handle: a referred
//! deletion still erases those in AWS, and tells their recipients, before its notice goes out.
//! Every new version of a request is also written to its de-identified record (CCPA regulations
//! §7101), which outlives the person's erasure and feeds the yearly report.
//!
//! Mail to a requester (or their recipient) is withheld where the address bounced for good or
//! complained before (`mail-events` records that), except the request's answer: it is sent all
//! the same, and staff are alerted that it may never be read.
//!
//! Stream records arrive at least once, so every effect goes through the effect ledger
//! (claim, perform, finish): a redelivered record finds its effects done. The job queues are FIFO
//! with a deduplication id per job as a second guard. A failing record is reported as the batch's
//! first failure; Lambda redelivers from there (`ReportBatchItemFailures`).
//!
//! A claim lasts until its invocation has certainly ended (Lambda stops it at its deadline). An
//! effect found claimed is waited for, within this invocation's time: the holder finishes it, or
//! its lease runs out (it crashed) and it is taken over here. So a crash costs a retry or two,
//! never the record: the failure queue only sees records whose work itself keeps failing.

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{Days, Duration};
use lambda_runtime::{Context, LambdaEvent};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use privacy_shared::config::{DispatchSettings, Env};
use privacy_shared::datamap::Location;
use privacy_shared::datamap::{BuiltinMap, DataMapError};
use privacy_shared::datamap::{ErasurePolicy, Source, SubjectAttribute};
use privacy_shared::domain::{
    Actor, EmailAddress, Event, LIMIT_REASON, Regime, RequestKind, RequestRecord, Status, Transition, Triage,
    VerificationToken,
};
use privacy_shared::domain::{
    ComplianceRecord, OutsideSources, RecordRetention, SourceOperation, SourceTask,
};
use privacy_shared::jobs::{
    DataChange, ErasureJob, ErasurePart, ExportJob, ExportPart, JobQueue, QueueError, SqsJobQueue, Wake,
};
use privacy_shared::mail::templates::{AgentStage, AnswerAlert, EarlierRequest, OutsideTask};
use privacy_shared::mail::templates::{Instruction, OwnPurposeData};
use privacy_shared::mail::{Guard, MailError, Mailer, OutgoingEmail, SesMailer, guard, record_withheld};
use privacy_shared::sources::{
    AwsPersonalData, Person, PersonalData, SourceError, Written, find_user_id, holds_any,
};
use privacy_shared::store::RecipientWait;
use privacy_shared::store::ledger::{Invocation, Once, once_or_take_over};
use privacy_shared::store::{
    Change, DownloadToken, DynamoStore, LiveToken, Outcome, RequestStore, StoreError, TokenSlot,
    record_from_image, task_from_image, transition_or_reload,
};
use privacy_shared::{Clock, ConfigError, Deps};

/// What an invocation keeps, when it waits for an effect held elsewhere, for performing it and
/// the rest of its batch.
const WAIT_RESERVE: Duration = Duration::seconds(15);

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
    #[error(transparent)]
    DataMap(#[from] DataMapError),
    #[error("effect {0} is being performed by another delivery")]
    Busy(String),
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
    /// A referred deletion still erases what the company keeps for its own purposes (the data
    /// map's `own_purpose` sources in AWS), and tells their recipients: that part of the request
    /// is the company's, not the enterprise customer's. Before the referral notice, which says so.
    EraseOwnPurposeData,
    NotifyRequesterLimit,
    /// The agent who made the request for the person is told of the step (never its content).
    NotifyAgent(AgentStage),
    /// Every recipient of an affected source is told to erase, correct or restrict too (GDPR
    /// Art. 19), each once per request.
    TellRecipients,
    /// Closed unconfirmed (timed out, or locked): the person is told it was not carried out,
    /// and what they can do (CCPA regulations §7024).
    NotifyRequesterUnverified,
    /// Staff confirmed receipt by hand (CCPA regulations §7021(b)): the confirmation goes out.
    NotifyRequesterReceipt,
    /// The person accepted the fee: told the work restarted, and the new due date.
    NotifyRequesterFeeAccepted,
    /// The dispute of a refused correction is noted and the data restricted: the person is told.
    NotifyRequesterDispute,
    /// The lift of that restriction is announced, before it happens (GDPR Art. 18(3)).
    NotifyRequesterLifting,
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
            Effect::EraseOwnPurposeData => "own_purpose_data_erased",
            Effect::NotifyRequesterLimit => "requester_notified_limit",
            Effect::NotifyAgent(stage) => return format!("agent_notified_{}#v{version}", stage.as_str()),
            Effect::TellRecipients => "recipients_told",
            Effect::NotifyRequesterUnverified => "requester_notified_unverified",
            Effect::NotifyRequesterReceipt => "requester_notified_receipt",
            Effect::NotifyRequesterFeeAccepted => "requester_notified_fee_accepted",
            Effect::NotifyRequesterDispute => "requester_notified_dispute",
            Effect::NotifyRequesterLifting => "requester_notified_lifting",
        };
        format!("{name}#v{version}")
    }
}

/// Right-to-know requests a person may make in 12 months (CCPA; policy section 12).
pub const RIGHT_TO_KNOW_PER_YEAR: usize = 2;
/// How long a third-party recipient confirmation link stays valid: through the seventh day after
/// the request was cleared; unconfirmed by then, the export goes to the requester only.
pub const RECIPIENT_CONFIRMATION_DAYS: u64 = 7;

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
    let mut effects = person_effects(old, new);
    if new.agent.is_some() {
        effects.extend(agent_stage(old, new).map(Effect::NotifyAgent));
    }
    effects
}

/// The step an agent is told of, if this transition is one. A request's first image is not:
/// intake tells the agent of what it stored.
fn agent_stage(old: Option<&RequestRecord>, new: &RequestRecord) -> Option<AgentStage> {
    let old = old?;
    if old.status == new.status {
        let extended = old.original_due_on.is_none() && new.original_due_on.is_some();
        return extended.then_some(AgentStage::Extended);
    }
    match new.status {
        Status::Verified => Some(AgentStage::Verified),
        Status::Completed => Some(AgentStage::Completed),
        Status::Denied | Status::Rejected | Status::Referred => Some(AgentStage::Decided),
        Status::Expired => Some(AgentStage::Expired),
        Status::PendingVerification | Status::InProgress => None,
    }
}

/// What a transition asks for on behalf of the person (and their work).
fn person_effects(old: Option<&RequestRecord>, new: &RequestRecord) -> Vec<Effect> {
    if let Some(old) = old.filter(|o| o.status == new.status) {
        if old.triage.is_none() && new.triage.is_some() && new.status == Status::Verified {
            let mut effects = work(new);
            effects.push(Effect::NotifyStaff);
            return effects;
        }
        if old.recipient_confirmed_at.is_none() && new.recipient_confirmed_at.is_some() {
            return vec![Effect::QueueExport];
        }
        // Not confirmed by its date: the export goes ahead, to the requester only.
        if old.recipient_lapsed_at.is_none() && new.recipient_lapsed_at.is_some() {
            return vec![Effect::QueueExport];
        }
        if old.receipt_confirmed_at.is_none() && new.receipt_confirmed_at.is_some() {
            return vec![Effect::NotifyRequesterReceipt];
        }
        // A disputed correction: the restriction reaches the recipients too (GDPR Art. 19).
        if old.dispute.is_none() && new.dispute.is_some() {
            return vec![Effect::NotifyRequesterDispute, Effect::TellRecipients];
        }
        let lifting = |r: &RequestRecord| r.dispute.as_ref().and_then(|d| d.lifting()).is_some();
        if !lifting(old) && lifting(new) {
            return vec![Effect::NotifyRequesterLifting];
        }
        let extended = old.original_due_on.is_none() && new.original_due_on.is_some();
        return if extended { vec![Effect::NotifyRequesterExtended] } else { Vec::new() };
    }
    // A fee accepted: the person is told, and the work starts again where the rejection stopped
    // it (a request triaged before is not triaged again: the person is paying for this one).
    if old.is_some_and(|o| o.status == Status::Rejected) && new.status == Status::Verified {
        let mut effects = vec![Effect::NotifyRequesterFeeAccepted];
        if new.triage.is_some() {
            effects.extend(work(new));
            effects.push(Effect::NotifyStaff);
        } else {
            effects.push(Effect::Triage);
        }
        return effects;
    }
    match new.status {
        Status::Verified => vec![Effect::Triage],
        Status::Completed if new.recipient_confirmed_at.is_some() => {
            vec![Effect::NotifyRequesterCompleted, Effect::NotifyRecipient]
        }
        // An opt-out that came in over a spent mail budget is honoured without a mail.
        Status::Completed if new.mail_withheld => Vec::new(),
        Status::Completed if tells_recipients(new.kind) => {
            vec![Effect::NotifyRequesterCompleted, Effect::TellRecipients]
        }
        Status::Completed => vec![Effect::NotifyRequesterCompleted],
        Status::Denied => vec![Effect::NotifyRequesterDenied],
        // The limit first: a request whose fee was accepted keeps its estimate, and may still
        // reach the limit at its triage.
        Status::Rejected if new.closed_reason.as_deref() == Some(LIMIT_REASON) => {
            vec![Effect::NotifyRequesterLimit]
        }
        Status::Rejected if new.cost_estimate.is_some() => vec![Effect::NotifyRequesterExcessive],
        Status::Referred if new.kind == RequestKind::Deletion => {
            vec![Effect::EraseOwnPurposeData, Effect::NotifyRequesterReferred]
        }
        Status::Referred => vec![Effect::NotifyRequesterReferred],
        // Closed unconfirmed (the transition, not a first image). A request whose mail budget
        // was spent gets no mail of ours, as the opt-out above.
        Status::Expired if old.is_some() && !new.mail_withheld => vec![Effect::NotifyRequesterUnverified],
        _ => Vec::new(),
    }
}

pub struct Dispatcher<S, M, Q, P> {
    pub deps: Deps<S, M>,
    pub queue: Q,
    pub staff: EmailAddress,
    pub export_retention_days: u64,
    /// The data map's account source is read to triage a verified request.
    pub data: P,
    /// Read at the first triage: most deliveries are other transitions.
    pub map: BuiltinMap,
    /// The function's timeout, for an invocation without a deadline ([`DispatchSettings::timeout`]).
    pub timeout: Duration,
    /// How long the records of requests it writes are kept.
    pub record_retention: RecordRetention,
}

impl<S, M, Q, P> Dispatcher<S, M, Q, P> {
    /// This invocation on the dispatcher's clock: what is left until Lambda's deadline (a
    /// wall-clock instant), or a whole timeout where there is none.
    fn invocation(&self, context: &Context) -> Invocation {
        let left = match context.deadline {
            0 => self.timeout,
            _ => context
                .deadline()
                .duration_since(SystemTime::now())
                .ok()
                .and_then(|left| Duration::from_std(left).ok())
                .unwrap_or_else(Duration::zero),
        };
        Invocation::ending_at(self.deps.clock.now() + left)
    }
}

impl Dispatcher<DynamoStore, SesMailer, SqsJobQueue, AwsPersonalData> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = DispatchSettings::load(&Env::process())?;
        let sdk = privacy_shared::deps::sdk_from_env().await;
        Ok(Dispatcher::with_sdk(&sdk, settings, Arc::new(privacy_shared::SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: DispatchSettings, clock: Arc<dyn Clock>) -> Self {
        let s3 = privacy_shared::deps::s3_client(sdk, settings.s3_path_style);
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        Dispatcher {
            deps: privacy_shared::AwsDeps::with_dynamo(sdk, dynamo.clone(), settings.core, clock),
            queue: SqsJobQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                settings.queues.export,
                settings.queues.erasure,
            ),
            staff: settings.staff,
            export_retention_days: settings.export_retention_days,
            data: AwsPersonalData::new(dynamo, s3),
            map: settings.data_map,
            timeout: settings.timeout,
            record_retention: settings.record_retention,
        }
    }
}

pub async fn handle<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    event: LambdaEvent<StreamEvent>,
) -> Result<DynamoDbEventResponse, Infallible> {
    let mut response = DynamoDbEventResponse::default();
    let invocation = dispatcher.invocation(&event.context);
    for record in event.payload.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        if let Err(err) = process(dispatcher, invocation, record).await {
            tracing::error!(error = %err, sequence = %sequence, "stream record failed; redelivering from it");
            // Streams are ordered: everything after a failure is redelivered anyway.
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            response.batch_item_failures.push(failure);
            break;
        }
    }
    Ok(response)
}

async fn process<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    invocation: Invocation,
    record: EventRecord,
) -> Result<(), DispatchError> {
    let Some(new) = record_from_image(record.change.new_image.clone()) else {
        // A source task woken (its endpoint called back, staff answered, the sweep polls): the
        // worker waiting for it is sent again.
        if let Some(task) = task_from_image(record.change.new_image) {
            let before = task_from_image(record.change.old_image).map_or(0, |t| t.wakes);
            if task.wakes > before {
                wake(dispatcher, invocation, &task).await?;
            }
        }
        return Ok(());
    };
    let old = record_from_image(record.change.old_image);
    keep_record(dispatcher, old.as_ref(), &new).await?;
    for effect in effects(old.as_ref(), &new) {
        perform(dispatcher, invocation, effect, &new).await?;
    }
    Ok(())
}

/// Writes the request's de-identified record (CCPA regulations §7101) as of this version: a
/// conditional put, so a redelivered or late older image never overwrites a newer record and a
/// repeat writes nothing. A write that keeps the version (the acknowledgement stamp, a scrub after
/// an erasure) changes nothing the record holds.
async fn keep_record<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    old: Option<&RequestRecord>,
    new: &RequestRecord,
) -> Result<(), DispatchError> {
    if old.is_some_and(|old| old.version == new.version) {
        return Ok(());
    }
    // What follows a refusal (a disputed correction, the lift of its restriction announced) is
    // no response to the request: the record stays as the request was closed, responded that day.
    if old.is_some_and(|old| old.status == new.status && !old.status.is_open()) {
        return Ok(());
    }
    let store = &dispatcher.deps.store;
    // A completed request some source outside AWS did not deliver for was complied with in part.
    let waits = has_export(new.kind) || new.kind == RequestKind::Deletion;
    let outside = if new.status == Status::Completed && waits {
        let tasks = store.tasks(new.id).await?;
        if tasks.iter().all(|t| t.state.is_answered()) {
            OutsideSources::Delivered
        } else {
            OutsideSources::NotDelivered
        }
    } else {
        OutsideSources::Delivered
    };
    let calendar = &dispatcher.deps.config.calendar;
    let record = ComplianceRecord::of(new, outside, calendar, dispatcher.record_retention);
    if store.put_record(&record).await? {
        tracing::info!(request_id = %new.id, version = new.version, outcome = record.outcome.name(), "request recorded");
    }
    Ok(())
}

/// Sends the job waiting for `task` again, once per wake (the effect ledger, and the queue's
/// deduplication id). A request no longer in progress has nothing waiting.
async fn wake<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    invocation: Invocation,
    task: &SourceTask,
) -> Result<(), DispatchError> {
    let key = format!("source_woken#{}#{}#{}", task.operation, task.source, task.wakes);
    let deps = &dispatcher.deps;
    let work = async {
        let Some(request) = deps.store.get(task.request_id).await? else { return Ok(()) };
        if request.status != Status::InProgress {
            tracing::info!(request_id = %request.id, status = %request.status, "a source answered a request no longer in progress");
            return Ok(());
        }
        let wake = Wake { source: task.source.clone(), count: task.wakes };
        match task.operation {
            SourceOperation::Access => {
                let job = ExportJob { request_id: request.id, version: request.version };
                dispatcher.queue.enqueue(&ExportPart::woken(&job, wake)).await?;
            }
            SourceOperation::Erasure => {
                let job = ErasureJob {
                    request_id: request.id,
                    version: request.version,
                    change: DataChange::Erase,
                };
                dispatcher.queue.enqueue(&ErasurePart::woken(&job, wake)).await?;
            }
        }
        tracing::info!(request_id = %request.id, source = %task.source, operation = %task.operation, "worker woken");
        Ok::<(), DispatchError>(())
    };
    let clock = deps.clock.as_ref();
    match once_or_take_over(
        &deps.store,
        clock,
        invocation,
        WAIT_RESERVE,
        task.request_id,
        &key,
        Box::pin(work),
    )
    .await?
    {
        Once::Performed(()) | Once::AlreadyDone => Ok(()),
        Once::Busy => Err(DispatchError::Busy(key)),
    }
}

async fn perform<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    invocation: Invocation,
    effect: Effect,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let key = effect.ledger_key(record.version);
    let deps = &dispatcher.deps;
    // Boxed: the effects' futures nest deep enough to overflow the compiler's layout queries.
    let work = Box::pin(perform_effect(dispatcher, effect, record));
    let clock = deps.clock.as_ref();
    match once_or_take_over(&deps.store, clock, invocation, WAIT_RESERVE, record.id, &key, work).await? {
        Once::Performed(()) => {
            tracing::info!(request_id = %record.id, effect = %key, "effect performed");
            Ok(())
        }
        Once::AlreadyDone => Ok(()),
        Once::Busy => Err(DispatchError::Busy(key)),
    }
}

async fn perform_effect<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    effect: Effect,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let templates = &dispatcher.deps.templates;
    let status = dispatcher.deps.config.status_page();
    let erasure = |change| ErasureJob { request_id: record.id, version: record.version, change };
    match effect {
        Effect::Triage => triage(dispatcher, record).await,
        Effect::TellRecipients => tell_recipients(dispatcher, record).await,
        Effect::QueueExport => {
            let job = ExportJob { request_id: record.id, version: record.version };
            Ok(dispatcher.queue.enqueue(&job).await?)
        }
        Effect::QueueErasure => Ok(dispatcher.queue.enqueue(&erasure(DataChange::Erase)).await?),
        Effect::QueueCorrection => Ok(dispatcher.queue.enqueue(&erasure(DataChange::Correct)).await?),
        Effect::ConfirmRecipient => confirm_recipient(dispatcher, record).await,
        Effect::NotifyStaff => notify_staff(dispatcher, record).await,
        Effect::NotifyRequesterCompleted => notify_completed(dispatcher, record).await,
        Effect::NotifyRecipient => notify_recipient(dispatcher, record).await,
        Effect::NotifyRequesterReferred => {
            let own = own_purpose_data(dispatcher, record)?;
            notify(dispatcher, record, templates.referred(record, &own, status)).await
        }
        Effect::EraseOwnPurposeData => erase_own_purpose_data(dispatcher, record).await,
        Effect::NotifyRequesterLimit => {
            let again = asks_again_on(dispatcher, record).await?;
            notify(dispatcher, record, templates.limit_reached(record, again, status)).await
        }
        Effect::NotifyRequesterExtended => {
            notify(dispatcher, record, templates.extended(record, status)).await
        }
        Effect::NotifyRequesterDenied => notify(dispatcher, record, templates.denied(record, status)).await,
        Effect::NotifyRequesterUnverified => {
            notify(dispatcher, record, templates.unverified(record, status)).await
        }
        Effect::NotifyRequesterExcessive => {
            let calendar = &dispatcher.deps.config.calendar;
            notify(dispatcher, record, templates.excessive(record, calendar, status)).await
        }
        Effect::NotifyRequesterReceipt => {
            notify(dispatcher, record, templates.receipt_confirmation(record, status)).await
        }
        Effect::NotifyRequesterFeeAccepted => {
            notify(dispatcher, record, templates.fee_accepted(record, status)).await
        }
        Effect::NotifyRequesterDispute => {
            notify(dispatcher, record, templates.dispute_recorded(record, status)).await
        }
        Effect::NotifyRequesterLifting => {
            notify(dispatcher, record, templates.restriction_lifting(record, status)).await
        }
        Effect::NotifyAgent(stage) => match templates.agent_notice(record, stage, status)? {
            Some(email) => send_to_person(dispatcher, record, &email).await,
            None => Ok(()),
        },
    }
}

async fn notify_staff<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    // The sources outside AWS the work will wait for: an export's, or an erasure's.
    let map = dispatcher.map.get()?;
    let waits = has_export(record.kind) || record.kind == RequestKind::Deletion;
    let today = dispatcher.deps.config.calendar.local_date(dispatcher.deps.clock.now());
    let answer_by = privacy_shared::domain::answer_by(record.due_on, today);
    let outside: Vec<OutsideTask<'_>> = map
        .sources()
        .iter()
        .filter(|_| waits)
        .filter_map(|source| match &source.location {
            Location::Manual { instructions } => {
                Some(OutsideTask { source: &source.id, instructions: Some(instructions), answer_by })
            }
            Location::Webhook { .. } => {
                Some(OutsideTask { source: &source.id, instructions: None, answer_by })
            }
            _ => None,
        })
        .collect();
    let earlier = privacy_shared::store::earlier_of_kind(&dispatcher.deps.store, record).await?;
    let earlier: Vec<EarlierRequest<'_>> = earlier
        .iter()
        .map(|past| EarlierRequest {
            id: past.id,
            received_on: past.received_on,
            status: past.status.as_str(),
        })
        .collect();
    let templates = &dispatcher.deps.templates;
    let email =
        templates.staff_notice(&dispatcher.staff, record, has_export(record.kind), &outside, &earlier)?;
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
    let account = match dispatcher.map.get()?.user_id_source() {
        Some(source) => dispatcher.data.records(source, record.email.normalized()).await?.into_iter().next(),
        None => None,
    };
    let text =
        |name: &str| account.as_ref().and_then(|a| a.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
    let now = deps.clock.now();
    let transition = if text("account_type").as_deref() == Some("enterprise_managed") {
        Transition::Refer { customer: text("customer"), contact: text("administrator_contact") }
    } else if over_limit(dispatcher, record).await? {
        Transition::RejectOverLimit
    } else {
        let today = deps.config.calendar.local_date(now);
        let child = text("birth_date").is_some_and(|born| under_16(&born, today));
        Transition::Triage(Triage { has_account: account.is_some(), child })
    };
    tracing::info!(request_id = %record.id, outcome = %transition.event(), "request triaged");
    match transition_or_reload(&deps.store, record, Change::system(transition, now)).await? {
        Outcome::Applied(_) => Ok(()),
        // Still waiting for its triage: the other writer was not a triage; try again.
        Outcome::Overtaken(Some(now)) if now.status == Status::Verified && now.triage.is_none() => {
            Err(StoreError::Conflict.into())
        }
        // Changed meanwhile (staff acted, or another delivery triaged it): nothing left to decide.
        Outcome::Overtaken(_) => Ok(()),
    }
}

/// What the referral notice says of the data the company keeps for its own purposes, in the
/// request's language: for a deletion, the own-purpose sources in AWS were erased before it
/// ([`erase_own_purpose_data`]); everything else of that part waits for the person's reply.
fn own_purpose_data<S, M, Q, P>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<OwnPurposeData, DispatchError> {
    let mut own = OwnPurposeData::default();
    for source in dispatcher.map.get()?.own_purpose_sources() {
        let label = source.label(record.language).to_owned();
        if record.kind == RequestKind::Deletion && !source.is_external() {
            own.deleted.push(label);
        } else {
            own.open.push(label);
        }
    }
    Ok(own)
}

/// The company's own part of a referred deletion: every own-purpose source in AWS (the data
/// map's `own_purpose`) is erased as its erasure policy says, and the recipients of a source that
/// held anything of the person are told to erase it too (GDPR Art. 19). Recipients first: a
/// retry after a crash in between finds the records still there and tells no recipient twice
/// (each has its own ledger entry); once erased, nothing is left to find and no one to tell.
/// The sources outside AWS are not asked here (that takes the workers' outside machinery): the
/// notice asks the person to reply for those.
async fn erase_own_purpose_data<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let map = dispatcher.map.get()?;
    let own: Vec<&Source> = map.own_purpose_sources().into_iter().filter(|s| !s.is_external()).collect();
    let user_id = match own.iter().any(|s| s.find_by() == SubjectAttribute::UserId) {
        true => find_user_id(&dispatcher.data, map, &record.email).await?,
        false => None,
    };
    let person = Person { email: record.email.clone(), user_id };
    let mut held: Vec<&str> = Vec::new();
    for source in &own {
        let Some(key) = person.key_for(source.find_by()) else { continue };
        if holds_any(&dispatcher.data, source, key).await? {
            held.push(&source.id);
        }
    }
    // The referral's reason is a code, not a note for a recipient.
    let told = RequestRecord { closed_reason: None, ..record.clone() };
    instruct_recipients(dispatcher, &told, &held, Instruction::Erase).await?;
    for source in own.iter().filter(|s| held.contains(&s.id.as_str())) {
        let Some(key) = person.key_for(source.find_by()) else { continue };
        let erased = erase_all(&dispatcher.data, source, key).await?;
        tracing::info!(request_id = %record.id, source = %source.id, erased, "own-purpose data of a referred deletion erased");
    }
    Ok(())
}

/// Erases every record (as the source's erasure policy says) or object of the person in one
/// source; counts what was changed. Own-purpose sources hold a few records per person (a
/// subscription, a registration), so this runs within the effect, page by page; a record that is
/// no longer theirs is left alone, and a retry finds only what is left.
async fn erase_all<P: PersonalData>(data: &P, source: &Source, key: &str) -> Result<u64, SourceError> {
    let mut erased = 0;
    if let Location::Objects { .. } = source.location {
        for object in data.objects(source, key).await? {
            data.delete_object(source, key, &object.key).await?;
            erased += 1;
        }
        return Ok(erased);
    }
    let mut cursor = None;
    loop {
        // An erased record leaves the person's key range and the cursor is a position in it: the
        // next page starts after this one whatever was changed.
        let page = data.records_page(source, key, cursor).await?;
        for found in &page.records {
            let written = match &source.erasure {
                ErasurePolicy::Delete => data.delete_record(source, found).await?,
                ErasurePolicy::Anonymise { attributes, .. } => {
                    data.anonymise_record(source, found, attributes).await?
                }
            };
            erased += u64::from(written == Written::Applied);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(erased),
        }
    }
}

/// A third right-to-know request within 12 months, under the CCPA (the policy's California
/// section allows two; elsewhere a repeat is for staff to judge as excessive).
/// A completed request of this kind changed the person's data, which recipients must follow.
fn tells_recipients(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::Deletion | RequestKind::Rectification | RequestKind::Restriction)
}

/// How long one recipient's mail may hold its ledger entry.
const RECIPIENT_LEASE: Duration = Duration::seconds(120);

/// Tells every recipient the data map lists for a source the request changed: for an erasure
/// the sources its receipt shows changed, for a self-service correction the corrected ones, and
/// otherwise (a restriction, a correction staff made by hand) every source. Each recipient once
/// per request, through its own ledger entry; a recipient whose mail cannot be sent fails the
/// effect, so the stream retries it and, in the end, the failure queue's alarm tells staff.
async fn tell_recipients<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let map = dispatcher.map.get()?;
    let affected: Vec<&str> = match (&record.kind, &record.receipt, &record.corrections) {
        (RequestKind::Deletion, Some(receipt), _) => receipt
            .sources
            .iter()
            .filter(|s| s.deleted + s.anonymised > 0)
            .map(|s| s.source.as_str())
            .collect(),
        (RequestKind::Rectification, _, Some(corrections)) => corrections
            .keys()
            .filter_map(|field| map.correction_source(field))
            .map(|s| s.id.as_str())
            .collect(),
        _ => map.sources().iter().map(|s| s.id.as_str()).collect(),
    };
    let instruction = match record.kind {
        // A refused correction the person disputes: its data is restricted meanwhile.
        RequestKind::Rectification if record.dispute.is_some() => Instruction::Restrict,
        RequestKind::Deletion => Instruction::Erase,
        RequestKind::Rectification => Instruction::Correct(record.corrections.as_ref()),
        _ => Instruction::Restrict,
    };
    instruct_recipients(dispatcher, record, &affected, instruction).await
}

/// Tells every recipient of the `affected` sources what to do, each once per request version
/// (its own ledger entry).
async fn instruct_recipients<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
    affected: &[&str],
    instruction: Instruction<'_>,
) -> Result<(), DispatchError> {
    let map = dispatcher.map.get()?;
    let deps = &dispatcher.deps;
    for recipient in map.recipients_of(affected) {
        let to = &recipient.address;
        let theirs: Vec<&str> =
            recipient.sources.iter().map(String::as_str).filter(|s| affected.contains(s)).collect();
        let email =
            deps.templates.recipient_instruction(to, &recipient.name, record, &theirs, instruction)?;
        let key = format!("recipient_told#{}#v{}", recipient.id, record.version);
        let send = async { deps.mailer.send(&email).await.map(drop).map_err(DispatchError::from) };
        let now = deps.clock.now();
        match privacy_shared::store::ledger::once(&deps.store, record.id, &key, now, RECIPIENT_LEASE, send)
            .await?
        {
            privacy_shared::store::ledger::Once::Performed(()) => {
                tracing::info!(request_id = %record.id, recipient = %recipient.id, "recipient told");
            }
            privacy_shared::store::ledger::Once::AlreadyDone => {}
            privacy_shared::store::ledger::Once::Busy => return Err(DispatchError::Busy(key)),
        }
    }
    Ok(())
}

async fn over_limit<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<bool, DispatchError> {
    if record.regime != Regime::Ccpa || !has_export(record.kind) {
        return Ok(false);
    }
    Ok(answered_within_a_year(dispatcher, record).await?.len() >= RIGHT_TO_KNOW_PER_YEAR)
}

/// When the person's earlier right-to-know requests answered in the year before `record` came
/// in, oldest first.
async fn answered_within_a_year<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<Vec<chrono::DateTime<chrono::Utc>>, DispatchError> {
    let since = record.received_at - Duration::days(365);
    let store = &dispatcher.deps.store;
    let mut answered_at = Vec::new();
    for past in store.history(&record.email.subject_key()).await? {
        let in_window = past.received_at > since && past.received_at <= record.received_at;
        if past.id == record.id || !has_export(past.kind) || !in_window {
            continue;
        }
        // A request we turned down (for this very limit, say) was not answered, so it does not count.
        let answered = store.get(past.id).await?.is_some_and(|p| {
            !matches!(p.status, Status::Rejected | Status::Referred | Status::Denied | Status::Expired)
        });
        if answered {
            answered_at.push(past.received_at);
        }
    }
    answered_at.sort();
    Ok(answered_at)
}

/// The first day a request to know, after one refused over the limit, would be answered: the day
/// after the one on which the older of the last two answered requests turns a year old (the
/// window is counted to the instant; the day after holds whatever the hour). None where the
/// history no longer shows two (an erasure removed it, say): the notice then stays general.
async fn asks_again_on<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<Option<chrono::NaiveDate>, DispatchError> {
    let answered = answered_within_a_year(dispatcher, record).await?;
    let Some(first) = answered.len().checked_sub(RIGHT_TO_KNOW_PER_YEAR).map(|i| answered[i]) else {
        return Ok(None);
    };
    let calendar = &dispatcher.deps.config.calendar;
    Ok(Some(calendar.local_date(first + Duration::days(365)) + Days::new(1)))
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
    // Valid through the whole day the mail names, counted from the triage (a retry names the
    // same day); from the start of the next day the export goes ahead to the requester only.
    let calendar = &deps.config.calendar;
    let valid_until = calendar.local_date(record.updated_at) + Days::new(RECIPIENT_CONFIRMATION_DAYS);
    let expires_at = calendar.start_of(valid_until + Days::new(1));
    let live = LiveToken { token_hash: token.hash(), expires_at };
    if !deps.store.issue_token(record.id, TokenSlot::Recipient, &live, deps.clock.now()).await? {
        // No longer verified (staff closed it meanwhile): there is nothing to confirm.
        return Ok(());
    }
    // Listed for the daily sweep before the mail goes out: the request never waits unseen.
    deps.store.await_recipient(&RecipientWait { request_id: record.id, lapses_at: expires_at }).await?;
    let email =
        deps.templates.recipient_confirmation(record, &token, valid_until, deps.config.status_page())?;
    send_to_person(dispatcher, record, &email).await
}

/// A fresh download link for `slot`, valid as long as the export is kept (only its hash is
/// stored), and the day it stops working.
async fn download_link<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
    slot: TokenSlot,
) -> Result<(String, chrono::NaiveDate), DispatchError> {
    let deps = &dispatcher.deps;
    let token = VerificationToken::generate();
    let expires_at = record.updated_at + Duration::days(dispatcher.export_retention_days as i64);
    let stored = DownloadToken { token_hash: token.hash(), expires_at };
    deps.store.put_download_token(record.id, slot, &stored).await?;
    let base = &deps.config.public_base_url;
    let link = format!("{base}/requests/{}/download?token={}", record.id, token.expose_secret());
    Ok((link, deps.config.calendar.local_date(expires_at)))
}

/// The confirmed third party gets its own download link (its own token).
async fn notify_recipient<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let Some(recipient) = &record.recipient else { return Ok(()) };
    let (link, until) = download_link(dispatcher, record, TokenSlot::Recipient).await?;
    let email = dispatcher.deps.templates.recipient_delivery(record, recipient, &link, until)?;
    send_to_person(dispatcher, record, &email).await
}

async fn notify<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
    email: Result<OutgoingEmail, MailError>,
) -> Result<(), DispatchError> {
    send_to_person(dispatcher, record, &email?).await
}

/// Sends a mail to the requester (or their recipient) past the mail suppression: withheld, and
/// recorded, where the address bounced for good or complained before; but the request's answer
/// goes out all the same, after staff are alerted. The alert comes first: should the answer then
/// fail, the effect's retry repeats the alert, never the answer.
async fn send_to_person<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
    email: &OutgoingEmail,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let now = deps.clock.now();
    match guard(&deps.store, email).await? {
        Guard::Send => {}
        Guard::Withhold(_) => return Ok(record_withheld(&deps.store, record, email, now).await?),
        Guard::SendDespite(suppression) => {
            let kind = email.tags.kind;
            let why = AnswerAlert::SentToSuppressed(suppression.cause);
            let alert = deps.templates.answer_alert(&dispatcher.staff, record.id, kind, why)?;
            deps.mailer.send(&alert).await?;
            let reason = Some(kind.to_string());
            let event = Event::AnswerToSuppressedAddress;
            deps.store.record_event_because(record, event, now, Actor::System, reason).await?;
            tracing::warn!(request_id = %record.id, kind = %kind, "answer sent to a suppressed address; staff alerted");
        }
    }
    deps.mailer.send(email).await?;
    Ok(())
}

/// The completion notice; for an export it carries the requester's download link.
async fn notify_completed<S: RequestStore, M: Mailer, Q: JobQueue, P: PersonalData>(
    dispatcher: &Dispatcher<S, M, Q, P>,
    record: &RequestRecord,
) -> Result<(), DispatchError> {
    let deps = &dispatcher.deps;
    let mut link = None;
    if has_export(record.kind) {
        link = Some(download_link(dispatcher, record, TokenSlot::Requester).await?.0);
    }
    let until =
        deps.config.calendar.local_date(record.updated_at) + Days::new(dispatcher.export_retention_days);
    let email =
        deps.templates.completed(record, link.as_deref().map(|l| (l, until)), deps.config.status_page())?;
    send_to_person(dispatcher, record, &email).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy_shared::domain::{Language, Region, RequestId};

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
        // A referred deletion still erases the company's own data, before the notice says so.
        let deletion = record(RequestKind::Deletion, Status::Verified);
        let referred = record(RequestKind::Deletion, Status::Referred);
        assert_eq!(
            effects(Some(&deletion), &referred),
            vec![Effect::EraseOwnPurposeData, Effect::NotifyRequesterReferred]
        );
        assert_ne!(
            Effect::EraseOwnPurposeData.ledger_key(3),
            Effect::NotifyRequesterReferred.ledger_key(3),
            "each has its own ledger entry"
        );
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
    fn an_agent_is_told_each_step_the_person_is_and_nothing_of_a_request_made_by_the_person() {
        use AgentStage as A;
        let by_agent = |kind, status| RequestRecord {
            agent: Some(privacy_shared::domain::Agent {
                name: "Agatha".into(),
                email: EmailAddress::parse("agatha@agents.example").unwrap(),
                relationship: privacy_shared::domain::Relationship::AuthorisedAgent,
            }),
            ..record(kind, status)
        };
        let pending = by_agent(RequestKind::Access, Status::PendingVerification);
        let verified = by_agent(RequestKind::Access, Status::Verified);
        assert_eq!(
            effects(Some(&pending), &verified),
            vec![Effect::Triage, Effect::NotifyAgent(A::Verified)]
        );
        let (old, new) = (
            by_agent(RequestKind::Access, Status::InProgress),
            by_agent(RequestKind::Access, Status::Completed),
        );
        assert_eq!(
            effects(Some(&old), &new),
            vec![Effect::NotifyRequesterCompleted, Effect::NotifyAgent(A::Completed)]
        );
        let denied = by_agent(RequestKind::Access, Status::Denied);
        assert_eq!(
            effects(Some(&verified), &denied),
            vec![Effect::NotifyRequesterDenied, Effect::NotifyAgent(A::Decided)]
        );
        let expired = by_agent(RequestKind::Access, Status::Expired);
        assert_eq!(
            effects(Some(&pending), &expired),
            vec![Effect::NotifyRequesterUnverified, Effect::NotifyAgent(A::Expired)],
            "the person is told too"
        );
        let mut extended = verified.clone();
        extended.original_due_on = Some(verified.due_on);
        assert_eq!(
            effects(Some(&verified), &extended),
            vec![Effect::NotifyRequesterExtended, Effect::NotifyAgent(A::Extended)]
        );
        assert!(effects(None, &pending).is_empty(), "intake tells the agent of a new request");
        let in_progress = by_agent(RequestKind::Access, Status::InProgress);
        assert!(effects(Some(&verified), &in_progress).is_empty(), "work starting is no news");
        assert_ne!(
            Effect::NotifyAgent(A::Verified).ledger_key(3),
            Effect::NotifyAgent(A::Completed).ledger_key(3),
            "each step once"
        );
        let plain = record(RequestKind::Access, Status::Completed);
        assert_eq!(
            effects(Some(&record(RequestKind::Access, Status::InProgress)), &plain),
            vec![Effect::NotifyRequesterCompleted]
        );
    }

    #[test]
    fn a_request_closed_unconfirmed_tells_the_person_once_unless_its_mail_was_withheld() {
        let pending = record(RequestKind::Deletion, Status::PendingVerification);
        let mut expired = record(RequestKind::Deletion, Status::Expired);
        expired.version = pending.version + 1;
        assert_eq!(effects(Some(&pending), &expired), vec![Effect::NotifyRequesterUnverified]);
        assert!(effects(Some(&expired), &expired).is_empty(), "a later write of the closed request");
        assert!(effects(None, &expired).is_empty(), "only the transition tells");
        let withheld = RequestRecord { mail_withheld: true, ..expired.clone() };
        assert!(effects(Some(&pending), &withheld).is_empty(), "no mail over a spent budget");
        assert_eq!(
            Effect::NotifyRequesterUnverified.ledger_key(expired.version),
            format!("requester_notified_unverified#v{}", expired.version)
        );
    }

    #[test]
    fn a_recipient_not_confirmed_in_time_sends_the_export_to_the_requester_only() {
        let (_, mut waiting) = triaged(RequestKind::Portability);
        waiting.recipient = Some(EmailAddress::parse("new@example.org").unwrap());
        let mut lapsed = waiting.clone();
        lapsed.version += 1;
        lapsed.recipient_lapsed_at = Some(lapsed.updated_at);
        assert_eq!(effects(Some(&waiting), &lapsed), vec![Effect::QueueExport], "the export goes ahead");
        assert!(effects(Some(&lapsed), &lapsed).is_empty(), "once");
        let in_progress = RequestRecord { status: Status::InProgress, ..lapsed.clone() };
        let done = RequestRecord { status: Status::Completed, ..lapsed };
        assert_eq!(
            effects(Some(&in_progress), &done),
            vec![Effect::NotifyRequesterCompleted],
            "the requester is told; the recipient gets nothing"
        );
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

    #[test]
    fn what_staff_set_off_by_hand_is_told_to_the_requester_once_per_change() {
        use privacy_shared::domain::{Dispute, Restriction, StaffText};
        let pending = record(RequestKind::Deletion, Status::PendingVerification);
        let confirmed = RequestRecord {
            version: 3,
            receipt_confirmed_at: Some(pending.updated_at),
            acknowledged_at: Some(pending.updated_at),
            ..pending.clone()
        };
        assert_eq!(effects(Some(&pending), &confirmed), vec![Effect::NotifyRequesterReceipt]);
        assert!(effects(Some(&confirmed), &confirmed).is_empty(), "a later write sends nothing again");

        let refused = record(RequestKind::Rectification, Status::Denied);
        let disputed =
            RequestRecord { dispute: Some(Dispute::new(refused.updated_at, None)), ..refused.clone() };
        assert_eq!(
            effects(Some(&refused), &disputed),
            vec![Effect::NotifyRequesterDispute, Effect::TellRecipients],
            "the restriction reaches the recipients too"
        );
        let reason = StaffText::parse("Checked at the source.").unwrap();
        let on = disputed.received_on + Days::new(30);
        let announced = Restriction::Lifting { on, reason, announced_at: disputed.updated_at };
        let lifting = RequestRecord {
            dispute: Some(Dispute { restriction: announced, ..disputed.dispute.clone().unwrap() }),
            ..disputed.clone()
        };
        assert_eq!(effects(Some(&disputed), &lifting), vec![Effect::NotifyRequesterLifting]);
        assert!(effects(Some(&lifting), &lifting).is_empty());
    }

    #[test]
    fn an_accepted_fee_restarts_the_work_without_a_second_triage_and_tells_the_requester() {
        let estimate = privacy_shared::domain::CostEstimate::parse("25.00", "EUR").unwrap();
        let rejected = RequestRecord {
            cost_estimate: Some(estimate),
            triage: Some(Triage::default()),
            ..record(RequestKind::Access, Status::Rejected)
        };
        let reopened = RequestRecord { status: Status::Verified, version: 4, ..rejected.clone() };
        assert_eq!(
            effects(Some(&rejected), &reopened),
            vec![Effect::NotifyRequesterFeeAccepted, Effect::QueueExport, Effect::NotifyStaff]
        );
        let untriaged = RequestRecord { triage: None, ..rejected.clone() };
        let reopened = RequestRecord { status: Status::Verified, ..untriaged.clone() };
        assert_eq!(
            effects(Some(&untriaged), &reopened),
            vec![Effect::NotifyRequesterFeeAccepted, Effect::Triage]
        );
        // Rejected again at that triage, over the CCPA limit: the limit's notice, not the fee's.
        let limited = RequestRecord {
            status: Status::Rejected,
            closed_reason: Some(LIMIT_REASON.to_owned()),
            ..reopened.clone()
        };
        assert_eq!(effects(Some(&reopened), &limited), vec![Effect::NotifyRequesterLimit]);
    }
}
