//! `erasure`: the worker that changes a person's data, from the erasure queue fed by `dispatch`.
//!
//! An erasure deletes the person's records and objects in every source of the data map, or
//! anonymises them where the map says a record must be kept for a legal reason (and why), then
//! reads every source again to prove nothing of the person is left. Their earlier exports (every
//! version of the objects), download links and secrets go too, and their earlier requests keep no
//! name or free text. The request completes with a receipt (counts per source, what was kept and
//! why, which recipients were instructed) and no copy of the data; `dispatch` mails it.
//!
//! Erasure wins over an export running meanwhile: before it deletes exports it marks the person
//! (`ErasureMark`), and no export verified before that mark completes; the export worker deletes
//! what it uploaded and closes its request instead, so the receipt's count stays true.
//!
//! Jobs are delivered at least once and may die halfway, and a person can hold hundreds of
//! thousands of records: sources are erased a page at a time, and after every page the progress
//! is saved in the table (the counts so far, the pass, the sources still to do and the cursor of
//! the next page, with the user id, looked up before the account that maps the address to it is
//! deleted). A redelivery resumes at the page after the last one saved and never touches anyone
//! else: every read and write is by the person's own key. A page's counts are saved together with
//! the cursor past it, so no page is counted twice; a redelivery after a crash between a page's
//! changes and its save finds what that page changed gone or no longer the person's, and does
//! not count it again (the receipt may then count up to a page fewer than were erased, never
//! more). A page's writes run [`WRITES_IN_FLIGHT`] at a time; when one fails, what the others did
//! is saved before the job fails, so a retry counts exactly.
//!
//! An invocation stops taking pages [`ContinuationSettings::stop_before_deadline`] before its
//! deadline (after one page at least, so every invocation moves the job on), and sends the next
//! part of the job ([`ErasurePart`]) to the erasure queue before it acknowledges its own message:
//! a large erasure goes on in fresh invocations, one after another in the request's message
//! group, and never fails towards the dead-letter queue merely for its size.
//!
//! Every change is conditional on the record still being the person's: a stale index entry is
//! skipped, never someone else's record changed, and only what was changed is counted.
//!
//! The erasure converges: the re-read that proves nothing is left may find a record written
//! while the job ran (the person's app still syncing, say). That source is erased again, up to
//! [`MAX_PASSES`] passes in one job; a source that still keeps getting new data after that
//! alerts staff (an `erasure_stalled` audit event, an error log line and the `StalledErasures`
//! metric, which the stack's alarm watches) and the request stays in progress, open for staff
//! to see in the staff API and the digest, instead of failing until the dead-letter queue.
//!
//! A correction applies a requester's self-service corrections to the sources the data map marks
//! as correctable, then completes the request.
//!
//! Just before an erasure completes it writes its tombstone (keyed hashes of the person's
//! identifiers, no plain address), and the erasure queue also carries the replays of the
//! erasures after a restore: [`replay`].

mod replay;

pub use replay::{Tombstoning, replay, run_replay_part};

use futures_util::stream::{self, StreamExt as _};
use lambda_runtime::LambdaEvent;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
pub use privacy_shared::config::ContinuationSettings;
use privacy_shared::config::{Env, WorkerSettings};
use privacy_shared::datamap::Source;
use privacy_shared::datamap::{DataMap, ErasurePolicy, Location, Recipient};
use privacy_shared::deps::WebhookEndpoints;
use privacy_shared::domain::{
    Actor, Completion, ErasedSource, ErasedUnit, ErasureReceipt, Event, Language, ReceiptWording,
    RequestKind, RequestRecord, SourceWording, Status, Transition,
};
use privacy_shared::domain::{SourceOperation, SourceTask, TaskState};
use privacy_shared::jobs::{
    DataChange, ErasureJob, ErasureMessage, ErasurePart, JobQueue, QueueError, SqsJobQueue, each_job,
};
use privacy_shared::outside::{Asking, Outside, OutsideError, Staging, all_answered, ask_all};
use privacy_shared::sources::{
    AwsPersonalData, Cursor, Person, PersonalData, SourceError, Written, find_user_id,
};
use privacy_shared::store::{
    Change, DynamoStore, ErasureAt, ErasureLog, ErasureProgress, Outcome, People, Requests, Secrets,
    SourceTasks, StoreError, transition_or_reload,
};
use privacy_shared::{Clock, ConfigError, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the job message is not readable")]
    BadJob,
    /// The continuation of a job that ran out of time could not be sent: the message is
    /// retried, and resumes where the saved progress stands.
    #[error("continuing the erasure failed: {0}")]
    Continue(#[from] QueueError),
    /// Out of time with no queue to continue on: the message is retried, and resumes.
    #[error("the erasure ran out of time and has no queue to continue on")]
    OutOfTime,
    #[error(transparent)]
    Outside(#[from] OutsideError),
    /// A replay reached an erasure function given no tombstones table (a tool, a test).
    #[error("this erasure function keeps no tombstones, so it cannot replay erasures")]
    NoTombstones,
}

/// How many passes through the sources one job makes before it gives up on a source that keeps
/// getting new data of the person, and alerts staff.
pub const MAX_PASSES: u32 = 3;

/// The most records one page of the erasure holds: each is a conditional write of its own, so
/// this bounds the time between two saves of the progress (and two looks at the deadline). With
/// [`WRITES_IN_FLIGHT`] writes at a time, a page takes well under a second of DynamoDB's time.
pub const PAGE_RECORDS: u32 = 1000;

/// How many of a page's conditional writes are in flight at once: one at a time, a person with a
/// million records would hold the function for a million round trips. Each write is by its own
/// key and conditional on its own record, so their order does not matter.
pub const WRITES_IN_FLIGHT: usize = 16;

/// The most objects one step deletes (each with all its versions) before the progress is saved
/// and the deadline looked at.
pub const OBJECTS_PER_STEP: usize = 50;

/// The metric a stalled erasure publishes (CloudWatch Embedded Metric Format, in the log).
pub const STALLED_METRIC: &str = "StalledErasures";
pub const METRICS_NAMESPACE: &str = "PrivacyRequests";

/// Recipient categories that are told to delete too (art 19); authorities are not processors.
const NOT_INSTRUCTED: [&str; 2] = ["government_regulators", "law_enforcement"];

pub struct Eraser<S, P> {
    pub store: S,
    pub data: P,
    pub map: DataMap,
    pub s3: aws_sdk_s3::Client,
    /// Where exports live (`exports/<request id>/…`).
    pub export_bucket: String,
    pub clock: Arc<dyn Clock>,
    /// How a job that would outlast its invocation goes on; without it [`handle`] runs every job
    /// to its end (a tool, a test), whatever the invocation's deadline.
    pub continuation: Option<Continuation>,
    /// The map's sources outside AWS, asked to erase too; the request completes once each has.
    pub outside: Outside<WebhookEndpoints>,
    /// Where each erasure's tombstone is written, and what replays read. The deployed function
    /// always has it (its settings require it); without it (a tool, a test) erasures write none
    /// and replays fail.
    pub tombstones: Option<Tombstoning>,
}

/// The erasure queue a job that runs out of time continues on, and how long before the
/// invocation's deadline it stops.
pub struct Continuation {
    pub queue: SqsJobQueue,
    pub stop_before_deadline: Duration,
}

impl Continuation {
    pub fn new(sqs: aws_sdk_sqs::Client, settings: &ContinuationSettings) -> Continuation {
        Continuation {
            queue: SqsJobQueue::new(sqs, String::new(), settings.queue_url.clone()),
            stop_before_deadline: settings.stop_before_deadline,
        }
    }
}

/// When an invocation stops taking new work: its deadline less the margin, and not before it
/// has done one step (a page, a few objects), so every invocation moves its job on.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    stop_at: Option<Instant>,
    steps: u32,
}

impl Budget {
    /// No deadline: the job runs to its end.
    pub fn unlimited() -> Budget {
        Budget { stop_at: None, steps: 0 }
    }

    /// Stops `margin` before `deadline` (a Lambda context's, in milliseconds since the epoch; 0,
    /// as a local invocation without one gives, means none).
    pub fn until(deadline_ms: u64, margin: Duration) -> Budget {
        if deadline_ms == 0 {
            return Budget::unlimited();
        }
        let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        Budget { stop_at: Some(Instant::now() + left.saturating_sub(margin)), steps: 0 }
    }

    fn spent(&self) -> bool {
        self.steps > 0 && self.stop_at.is_some_and(|at| Instant::now() >= at)
    }

    fn step(&mut self) {
        self.steps += 1;
    }
}

/// How far one invocation took a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Done with: completed, stalled (staff alerted), or nothing to do.
    Finished,
    /// Out of time, with the progress saved: the job goes on in another invocation.
    OutOfTime,
}

impl Eraser<DynamoStore, AwsPersonalData> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = WorkerSettings::erasure(&Env::process())?;
        Ok(Eraser::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: WorkerSettings, clock: Arc<dyn Clock>) -> Self {
        let continuation =
            settings.continuation.as_ref().map(|c| Continuation::new(aws_sdk_sqs::Client::new(sdk), c));
        let tombstone_settings = settings.tombstones.clone();
        let worker = privacy_shared::deps::SourceWorker::new(sdk, settings);
        let tombstones = tombstone_settings.map(|t| Tombstoning::new(sdk, &t, worker.s3.clone()));
        Eraser {
            store: worker.store,
            data: worker.data.with_page_size(PAGE_RECORDS),
            map: worker.map,
            s3: worker.s3,
            export_bucket: worker.export_bucket,
            clock,
            continuation,
            outside: worker.outside,
            tombstones,
        }
    }
}

/// What an erasure touches: requests, the person's history (their earlier exports), its progress;
/// and the secrets a replay finds restored on a request.
pub trait ErasureStore: Requests + People + ErasureLog + SourceTasks + Secrets {}

impl<T: Requests + People + ErasureLog + SourceTasks + Secrets> ErasureStore for T {}

pub async fn handle<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let budget = match &eraser.continuation {
        Some(c) => Budget::until(event.context.deadline, c.stop_before_deadline),
        None => Budget::unlimited(),
    };
    // Boxed: the whole job nested in the runtime's future is deeper than the compiler's layout
    // limit.
    Ok(each_job(event.payload, |message: ErasureMessage| async move {
        match message {
            ErasureMessage::Request(part) => Box::pin(run_part(eraser, &part, budget)).await.map(drop),
            ErasureMessage::Replay(job) => Box::pin(run_replay_part(eraser, &job, budget)).await.map(drop),
        }
    })
    .await)
}

/// Runs one part of a job until it is done or the budget is spent; then sends the next part to
/// the erasure queue, so the current message is acknowledged and the job goes on.
pub async fn run_part<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    part: &ErasurePart,
    budget: Budget,
) -> Result<Ran, ErasureError> {
    let ran = run_until(eraser, &part.job, budget).await?;
    if ran == Ran::OutOfTime {
        let Some(continuation) = &eraser.continuation else { return Err(ErasureError::OutOfTime) };
        let next = part.next();
        continuation.queue.enqueue(&next).await?;
        tracing::info!(
            request_id = %part.job.request_id, part = next.part,
            "out of time: the erasure goes on in a fresh invocation"
        );
    }
    Ok(ran)
}

/// Runs one job to completion; a failure leaves what was done recorded for the retry.
pub async fn run<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    job: &ErasureJob,
) -> Result<(), ErasureError> {
    run_until(eraser, job, Budget::unlimited()).await.map(drop)
}

/// Runs one job until it is done or the budget is spent (the progress saved either way).
pub async fn run_until<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    job: &ErasureJob,
    budget: Budget,
) -> Result<Ran, ErasureError> {
    let Some(record) = eraser.store.get(job.request_id).await? else { return Ok(Ran::Finished) };
    match job.change {
        DataChange::Erase if record.kind == RequestKind::Deletion => erase(eraser, record, budget).await,
        DataChange::Correct if record.kind == RequestKind::Rectification => {
            correct(eraser, record).await.map(|()| Ran::Finished)
        }
        _ => Err(ErasureError::BadJob),
    }
}

/// Moves a verified request to in progress (once), or returns it as it is.
async fn start<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    record: RequestRecord,
) -> Result<Option<RequestRecord>, ErasureError> {
    match record.status {
        Status::InProgress => Ok(Some(record)),
        Status::Verified => {
            let change = Change::system(Transition::StartWork, eraser.clock.now());
            match transition_or_reload(&eraser.store, &record, change).await? {
                Outcome::Applied(started) => Ok(Some(started)),
                Outcome::Overtaken(Some(fresh)) if fresh.status == Status::InProgress => Ok(Some(fresh)),
                Outcome::Overtaken(_) => Ok(None),
            }
        }
        // Done before, or closed by staff meanwhile: nothing to do.
        _ => Ok(None),
    }
}

async fn erase<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    record: RequestRecord,
    mut budget: Budget,
) -> Result<Ran, ErasureError> {
    let Some(request) = start(eraser, record).await? else { return Ok(Ran::Finished) };
    let store = &eraser.store;
    // The user id first: the account that maps the address to it is among what goes.
    let mut progress = match store.erasure_progress(request.id).await? {
        Some(progress) => progress,
        None => {
            let user_id = find_user_id(&eraser.data, &eraser.map, &request.email).await?;
            let progress = ErasureProgress { user_id, ..ErasureProgress::default() };
            store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
            // The sources outside AWS are asked first, so they work while this one does.
            let person = Person { email: request.email.clone(), user_id: progress.user_id.clone() };
            ask_outside(eraser, &request, &person).await?;
            progress
        }
    };
    let person = Person { email: request.email.clone(), user_id: progress.user_id.clone() };
    let mut at = progress.at.clone().unwrap_or_else(|| ErasureAt {
        pass: 1,
        // Progress an older version saved (per source) lists finished sources only.
        pending: (eraser.map.sources().iter())
            .filter(|s| !s.is_external())
            .filter(|s| !progress.sources.iter().any(|done| done.source == s.id))
            .map(|s| s.id.clone())
            .collect(),
        next: None,
    });

    loop {
        while let Some(source_id) = at.pending.first().cloned() {
            if budget.spent() {
                return Ok(Ran::OutOfTime);
            }
            let Some(source) = eraser.map.source(&source_id) else {
                // No longer in the data map (a new version deployed meanwhile): nothing to erase.
                at.pending.remove(0);
                at.next = None;
                continue;
            };
            let step = erase_step(eraser, source, &person, at.next.clone()).await?;
            match progress.sources.iter().position(|d| d.source == source.id) {
                Some(i) => add_counts(&mut progress.sources[i], step.erased),
                None => progress.sources.push(step.erased),
            }
            match step.next {
                Next::Failed(err) => {
                    // What the page's other writes did is counted; the retry reads the page
                    // again and finds those records no longer the person's.
                    progress.at = Some(at.clone());
                    store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
                    return Err(err.into());
                }
                Next::Page(cursor) => at.next = Some(cursor),
                Next::Again => at.next = None,
                Next::Done => {
                    at.next = None;
                    at.pending.remove(0);
                    tracing::info!(request_id = %request.id, source = %source.id, pass = at.pass, "source erased");
                }
            }
            // The page's counts and where the next page starts, in one write.
            progress.at = Some(at.clone());
            store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
            budget.step();
        }
        if budget.spent() {
            return Ok(Ran::OutOfTime);
        }
        let again = leftovers(eraser, &person).await?;
        if again.is_empty() {
            break;
        }
        if at.pass >= MAX_PASSES {
            // A later delivery (staff redriving it, say) starts a fresh round of passes.
            progress.at = Some(ErasureAt { pass: 1, pending: Vec::new(), next: None });
            store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
            stalled(eraser, &request, &again).await?;
            return Ok(Ran::Finished);
        }
        tracing::warn!(
            request_id = %request.id, pass = at.pass, sources = %again.join(","),
            "the person's data appeared again during the erasure; erasing those sources again"
        );
        at = ErasureAt { pass: at.pass + 1, pending: again, next: None };
        progress.at = Some(at.clone());
        store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
    }

    // Every source in AWS is erased and proven so; the request completes once every source
    // outside it has erased too. Until then the job ends here, the request in progress, and a
    // source's answer sends it again (it proves the AWS sources once more, then comes here).
    let outside = ask_outside(eraser, &request, &person).await?;
    if !all_answered(&outside) {
        progress.at = Some(ErasureAt { pass: at.pass, pending: Vec::new(), next: None });
        store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
        let waiting: Vec<&str> =
            outside.iter().filter(|t| !t.state.is_answered()).map(|t| t.source.as_str()).collect();
        tracing::info!(request_id = %request.id, sources = %waiting.join(","), "erasure waits for sources outside AWS");
        return Ok(Ran::Finished);
    }

    let exports_deleted = match progress.exports_deleted {
        Some(n) => n,
        None => {
            // Erasure wins over an export running meanwhile: from this mark on, no export of a
            // request verified before it can complete (the store refuses it), so one that uploads
            // after the deletion below cannot leave the person's data behind, and the receipt's
            // count stays true. Written before the history is read, on every delivery that
            // deletes, so any export the deletion could miss is verified before the mark.
            store.mark_erasure_started(&request.email.subject_key(), request.id, eraser.clock.now()).await?;
            let n = erase_earlier_requests(eraser, &request).await?;
            progress.exports_deleted = Some(n);
            store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
            n
        }
    };
    // Before the completion, so that no completed erasure lacks one: a restored backup can then
    // never bring the person back for good (the first write stands on a redelivery).
    if let Some(tombstones) = &eraser.tombstones {
        replay::remember(tombstones, store, &request, progress.user_id.as_deref(), eraser.clock.now())
            .await?;
    }
    let receipt = receipt(eraser, &progress, &outside, exports_deleted, request.language);
    let change = Change::system(Transition::Complete(Completion::Erased(receipt)), eraser.clock.now());
    if let Outcome::Overtaken(Some(now)) = transition_or_reload(store, &request, change).await? {
        // Still in progress: the other writer did not finish it; the retry will.
        if now.status == Status::InProgress {
            return Err(StoreError::Conflict.into());
        }
    }
    // Last: the progress (with the user id), and the request's own name and free text.
    store.scrub_request(request.id).await?;
    tracing::info!(request_id = %request.id, "erasure completed");
    Ok(Ran::Finished)
}

/// What one step in a source did, and what comes next there.
struct Step {
    erased: ErasedSource,
    next: Next,
}

enum Next {
    /// More records, from this page on.
    Page(Cursor),
    /// More objects: the listing, which no longer holds the deleted ones, starts over.
    Again,
    /// Nothing more of the person in this source, in this pass.
    Done,
    /// A write of the page failed (the others ran to their end): retried from the same page.
    Failed(SourceError),
}

/// Erases one page of the person's records (or a few of their objects) as the data map says;
/// counts only what was changed (a record that is no longer theirs is skipped).
async fn erase_step<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    source: &Source,
    person: &Person,
    cursor: Option<Cursor>,
) -> Result<Step, ErasureError> {
    let mut erased = ErasedSource {
        source: source.id.clone(),
        description: source.description.clone(),
        categories: source.disclosure.categories.iter().map(wire_name).collect(),
        deleted: 0,
        anonymised: 0,
        kept_because: None,
    };
    let Some(key) = person.key_for(source.find_by()) else { return Ok(Step { erased, next: Next::Done }) };
    let mut not_theirs = 0;
    let next = match (&source.location, &source.erasure) {
        (Location::Table { .. }, policy) => {
            // A deleted or anonymised record leaves the person's key range, and the cursor is a
            // position in it, so the next page starts after this one whatever was changed.
            let page = eraser.data.records_page(source, key, cursor).await?;
            // Collected first: a lazy map held across the await trips the compiler's check that the
            // future is `Send` for every lifetime.
            let writes: Vec<_> = page
                .records
                .iter()
                .map(|record| erase_record(&eraser.data, source, policy, record))
                .collect();
            let writes: Vec<Result<Written, SourceError>> =
                stream::iter(writes).buffer_unordered(WRITES_IN_FLIGHT).collect().await;
            let mut failed = None;
            for written in writes {
                match (written, policy) {
                    (Ok(Written::Applied), ErasurePolicy::Delete) => erased.deleted += 1,
                    (Ok(Written::Applied), ErasurePolicy::Anonymise { .. }) => erased.anonymised += 1,
                    (Ok(Written::NotTheirs), _) => not_theirs += 1,
                    (Err(err), _) => failed = Some(err),
                }
            }
            if let ErasurePolicy::Anonymise { reason, .. } = policy {
                erased.kept_because = (erased.anonymised > 0).then(|| reason.clone());
            }
            match failed {
                Some(err) => Next::Failed(err),
                None => page.next.map_or(Next::Done, Next::Page),
            }
        }
        // Asked through their tasks ([`ask_outside`]), never here.
        (Location::Webhook { .. } | Location::Manual { .. }, _) => Next::Done,
        (Location::Objects { .. }, _) => {
            let objects = eraser.data.objects(source, key).await?;
            for object in objects.iter().take(OBJECTS_PER_STEP) {
                eraser.data.delete_object(source, key, &object.key).await?;
                erased.deleted += 1;
            }
            if objects.len() > OBJECTS_PER_STEP { Next::Again } else { Next::Done }
        }
    };
    if not_theirs > 0 {
        tracing::info!(source = %source.id, skipped = not_theirs, "records no longer the person's were left alone");
    }
    Ok(Step { erased, next })
}

/// Deletes or anonymises one record, as the source's policy says.
async fn erase_record<P: PersonalData>(
    data: &P,
    source: &Source,
    policy: &ErasurePolicy,
    record: &serde_json::Value,
) -> Result<Written, SourceError> {
    match policy {
        ErasurePolicy::Delete => data.delete_record(source, record).await,
        ErasurePolicy::Anonymise { attributes, .. } => {
            data.anonymise_record(source, record, attributes).await
        }
    }
}

/// A later page or pass over a source adds to what the earlier ones did.
fn add_counts(total: &mut ErasedSource, step: ErasedSource) {
    total.deleted += step.deleted;
    total.anonymised += step.anonymised;
    if total.kept_because.is_none() {
        total.kept_because = step.kept_because;
    }
}

/// Reads every source again with the person's keys: the sources where anything is found.
async fn leftovers<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    person: &Person,
) -> Result<Vec<String>, ErasureError> {
    let mut left = Vec::new();
    for source in eraser.map.sources() {
        let Some(key) = person.key_for(source.find_by()) else { continue };
        let found = match &source.location {
            Location::Table { .. } | Location::Objects { .. } => {
                privacy_shared::sources::holds_any(&eraser.data, source, key).await?
            }
            // Their receipts are their proof.
            Location::Webhook { .. } | Location::Manual { .. } => false,
        };
        if found {
            left.push(source.id.clone());
        }
    }
    Ok(left)
}

/// The passes are used up and `sources` still get new data of the person: staff are alerted
/// once (a redelivery finds the event) and the request stays in progress. The job is done with
/// (not failed): another retry would only meet the same writer, and then the dead-letter queue.
async fn stalled<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    request: &RequestRecord,
    sources: &[String],
) -> Result<(), ErasureError> {
    let trail = eraser.store.audit_trail(request.id).await?;
    let alerted = trail.iter().any(|e| e.event == Event::ErasureStalled && e.version == request.version);
    if alerted {
        return Ok(());
    }
    let now = eraser.clock.now();
    eraser.store.record_event(request, Event::ErasureStalled, now, Actor::System).await?;
    // Source ids and the request id only: nothing of the person.
    tracing::error!(
        request_id = %request.id, sources = %sources.join(","), passes = MAX_PASSES,
        "erasure stalled: new data of the person keeps appearing; staff must stop the writer and erase again"
    );
    println!("{}", stalled_metric(now));
    Ok(())
}

/// One CloudWatch Embedded Metric Format record of one stalled erasure.
pub fn stalled_metric(at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": STALLED_METRIC, "Unit": "Count"}],
            }],
        },
        STALLED_METRIC: 1,
    })
}

/// The person's earlier exports (every object version) and what their earlier requests still
/// hold of them. Returns how many exports were deleted.
async fn erase_earlier_requests<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    request: &RequestRecord,
) -> Result<u32, ErasureError> {
    let mut exports = 0;
    for past in eraser.store.history(&request.email.subject_key()).await? {
        if past.id == request.id {
            continue;
        }
        let prefix = format!("exports/{}/", past.id);
        let deleted =
            privacy_shared::sources::delete_all_versions(&eraser.s3, &eraser.export_bucket, &prefix).await?;
        if deleted > 0 {
            exports += 1;
        }
        eraser.store.scrub_request(past.id).await?;
    }
    Ok(exports)
}

/// A vocabulary term as the data map spells it (`contact_data`).
fn wire_name<T: serde::Serialize>(term: &T) -> String {
    serde_json::to_value(term).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn receipt<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    progress: &ErasureProgress,
    outside: &[SourceTask],
    exports_deleted: u32,
    language: Language,
) -> ErasureReceipt {
    let mut sources = progress.sources.clone();
    // The sources outside AWS in the map's order, with their own receipts.
    for source in eraser.map.sources() {
        if let Some(TaskState::Erased { receipt }) =
            outside.iter().find(|t| t.source == source.id).map(|t| &t.state)
        {
            sources.push(receipt.clone());
        }
    }
    let mut instructed: Vec<Recipient> = Vec::new();
    for done in sources.iter().filter(|s| s.deleted + s.anonymised > 0) {
        let Some(source) = eraser.map.sources().iter().find(|s| s.id == done.source) else { continue };
        for recipient in &source.disclosure.recipients {
            let name = wire_name(recipient);
            if !NOT_INSTRUCTED.contains(&name.as_str()) && !instructed.contains(recipient) {
                instructed.push(*recipient);
            }
        }
    }
    let affected: Vec<&str> =
        sources.iter().filter(|s| s.deleted + s.anonymised > 0).map(|s| s.source.as_str()).collect();
    let told = eraser.map.recipients_of(&affected);
    let wording = ReceiptWording {
        language,
        sources: sources
            .iter()
            .filter_map(|s| eraser.map.source(&s.source))
            .map(|s| wording(&eraser.map, s, language))
            .collect(),
        processors: instructed.iter().map(|r| eraser.map.label(*r, language).to_owned()).collect(),
        recipients: told.iter().map(|r| r.label(language)).collect(),
    };
    ErasureReceipt {
        sources,
        exports_deleted,
        processors_instructed: instructed.iter().map(wire_name).collect(),
        recipients_told: told.iter().map(|r| r.name.clone()).collect(),
        wording: Some(wording),
    }
}

/// A source as the person's receipt names it, in their language: the data map's words, taken
/// when the erasure completes, so the mail never shows a code or another language.
fn wording(map: &DataMap, source: &Source, language: Language) -> SourceWording {
    SourceWording {
        source: source.id.clone(),
        label: source.label(language).to_owned(),
        categories: source.disclosure.categories.iter().map(|c| map.label(*c, language).to_owned()).collect(),
        unit: match source.location {
            Location::Objects { .. } => ErasedUnit::File,
            Location::Table { .. } | Location::Webhook { .. } | Location::Manual { .. } => ErasedUnit::Record,
        },
        kept_reason: source.kept_reason(language).map(str::to_owned),
        legal_basis: source.legal_basis(language).map(str::to_owned),
    }
}

/// Asks every source outside AWS to erase the person (each still waiting, again).
async fn ask_outside<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    request: &RequestRecord,
    person: &Person,
) -> Result<Vec<SourceTask>, ErasureError> {
    if !eraser.map.sources().iter().any(Source::is_external) {
        return Ok(Vec::new());
    }
    let staging = Staging { s3: eraser.s3.clone(), bucket: eraser.export_bucket.clone(), kms_key_id: None };
    let now = eraser.clock.now();
    let operation = SourceOperation::Erasure;
    let asking = Asking { request, operation, person, since: None, now };
    Ok(ask_all(&eraser.store, &eraser.outside, &staging, &eraser.map, asking).await?)
}

/// Applies the requester's corrections to the correctable sources and completes the request.
async fn correct<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    record: RequestRecord,
) -> Result<(), ErasureError> {
    if record.status != Status::Verified && record.status != Status::InProgress {
        return Ok(());
    }
    let corrections = record.corrections.clone().unwrap_or_default();
    let person = Person { email: record.email.clone(), user_id: None };
    let mut changed = Vec::new();
    for (field, value) in &corrections {
        let Some(source) = eraser.map.correction_source(field) else { continue };
        let Some(key) = person.key_for(source.find_by()) else { continue };
        let mut changes = serde_json::Map::new();
        changes.insert(field.clone(), serde_json::Value::String(value.clone()));
        let mut applied = false;
        for found in eraser.data.records(source, key).await? {
            applied |= eraser.data.correct(source, &found, &changes).await? == Written::Applied;
        }
        if applied {
            changed.push(field.clone());
        }
    }
    let note = if changed.is_empty() {
        "We found no record of yours with these details to correct.".to_owned()
    } else {
        format!("Corrected: {}.", changed.join(", ").replace('_', " "))
    };
    let change = Change::system(Transition::Complete(Completion::Corrected { note }), eraser.clock.now());
    match eraser.store.transition(&record, change).await {
        Ok(_) | Err(StoreError::Conflict) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_ms(from_now: Duration) -> u64 {
        (SystemTime::now() + from_now).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn an_invocation_stops_the_margin_before_its_deadline_but_only_after_one_step() {
        let margin = Duration::from_secs(30);
        let mut late = Budget::until(in_ms(Duration::from_secs(10)), margin);
        assert!(!late.spent(), "every invocation takes one step");
        late.step();
        assert!(late.spent(), "then stops: less than the margin is left");

        let mut early = Budget::until(in_ms(Duration::from_secs(300)), margin);
        early.step();
        early.step();
        assert!(!early.spent(), "minutes left");

        let mut none = Budget::until(0, margin);
        none.step();
        assert!(!none.spent(), "a local invocation without a deadline runs to the end");
    }
}
