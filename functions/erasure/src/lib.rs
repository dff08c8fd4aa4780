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
//! Jobs are delivered at least once and may die halfway: progress is kept per source in the
//! table (with the user id, looked up before the account that maps the address to it is
//! deleted), so a redelivery resumes where the last delivery stopped and never touches anyone
//! else: every read and write is by the person's own key.
//!
//! Every change is conditional on the record still being the person's: a stale index entry is
//! skipped, never someone else's record changed, and only what was changed is counted.
//!
//! The erasure converges: the re-read that proves nothing is left may find a record written
//! while the job ran (the person's app still syncing, say). That source is erased again, up to
//! [`MAX_PASSES`] times in one delivery; a source that still keeps getting new data after that
//! alerts staff (an `erasure_stalled` audit event, an error log line and the `StalledErasures`
//! metric, which the stack's alarm watches) and the request stays in progress, open for staff
//! to see in the staff API and the digest, instead of failing until the dead-letter queue.
//!
//! A correction applies a requester's self-service corrections to the sources the data map marks
//! as correctable, then completes the request.

use lambda_runtime::LambdaEvent;
use std::convert::Infallible;
use std::sync::Arc;

pub use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use privacy_shared::config::{Env, WorkerSettings};
use privacy_shared::datamap::Source;
use privacy_shared::datamap::{DataMap, ErasurePolicy, Location};
use privacy_shared::domain::{
    Actor, Completion, ErasedSource, ErasureReceipt, Event, RequestKind, RequestRecord, Status, Transition,
};
use privacy_shared::jobs::{DataChange, ErasureJob, each_job};
use privacy_shared::sources::{AwsPersonalData, Person, PersonalData, SourceError, Written, find_user_id};
use privacy_shared::store::{
    Change, DynamoStore, ErasureLog, ErasureProgress, Outcome, People, Requests, StoreError,
    transition_or_reload,
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
}

/// How many times one delivery goes through the sources before it gives up on a source that
/// keeps getting new data of the person, and alerts staff.
pub const MAX_PASSES: u32 = 3;

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
}

impl Eraser<DynamoStore, AwsPersonalData> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = WorkerSettings::erasure(&Env::process())?;
        Ok(Eraser::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: WorkerSettings, clock: Arc<dyn Clock>) -> Self {
        let worker = privacy_shared::deps::SourceWorker::new(sdk, settings);
        Eraser {
            store: worker.store,
            data: worker.data,
            map: worker.map,
            s3: worker.s3,
            export_bucket: worker.export_bucket,
            clock,
        }
    }
}

/// What an erasure touches: requests, the person's history (their earlier exports), its progress.
pub trait ErasureStore: Requests + People + ErasureLog {}

impl<T: Requests + People + ErasureLog> ErasureStore for T {}

pub async fn handle<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    Ok(each_job(event.payload, |job: ErasureJob| async move { run(eraser, &job).await }).await)
}

/// Runs one job to completion; a failure leaves what was done recorded for the retry.
pub async fn run<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    job: &ErasureJob,
) -> Result<(), ErasureError> {
    let Some(record) = eraser.store.get(job.request_id).await? else { return Ok(()) };
    match job.change {
        DataChange::Erase if record.kind == RequestKind::Deletion => erase(eraser, record).await,
        DataChange::Correct if record.kind == RequestKind::Rectification => correct(eraser, record).await,
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
) -> Result<(), ErasureError> {
    let Some(request) = start(eraser, record).await? else { return Ok(()) };
    let store = &eraser.store;
    // The user id first: the account that maps the address to it is among what goes.
    let mut progress = match store.erasure_progress(request.id).await? {
        Some(progress) => progress,
        None => {
            let user_id = find_user_id(&eraser.data, &eraser.map, &request.email).await?;
            let progress = ErasureProgress { user_id, ..ErasureProgress::default() };
            store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
            progress
        }
    };
    let person = Person { email: request.email.clone(), user_id: progress.user_id.clone() };

    // Sources whose re-read found something: erased again on the next pass.
    let mut again: Vec<String> = Vec::new();
    for pass in 1..=MAX_PASSES {
        for source in eraser.map.sources() {
            let done = progress.sources.iter().position(|d| d.source == source.id);
            if done.is_some() && !again.contains(&source.id) {
                continue;
            }
            let erased = erase_source(eraser, source, &person).await?;
            match done {
                Some(i) => add_counts(&mut progress.sources[i], erased),
                None => progress.sources.push(erased),
            }
            store.save_erasure_progress(request.id, &progress, eraser.clock.now()).await?;
            tracing::info!(request_id = %request.id, source = %source.id, pass, "source erased");
        }
        again = leftovers(eraser, &person).await?;
        if again.is_empty() {
            break;
        }
        tracing::warn!(
            request_id = %request.id, pass, sources = %again.join(","),
            "the person's data appeared again during the erasure; erasing those sources again"
        );
    }
    if !again.is_empty() {
        return stalled(eraser, &request, &again).await;
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
    let receipt = receipt(eraser, &progress, exports_deleted);
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
    Ok(())
}

/// Erases the person from one source as the data map says; counts only what was changed (a
/// record that is no longer theirs is skipped).
async fn erase_source<S: ErasureStore, P: PersonalData>(
    eraser: &Eraser<S, P>,
    source: &Source,
    person: &Person,
) -> Result<ErasedSource, ErasureError> {
    let mut erased = ErasedSource {
        source: source.id.clone(),
        description: source.description.clone(),
        categories: source.disclosure.categories.iter().map(wire_name).collect(),
        deleted: 0,
        anonymised: 0,
        kept_because: None,
    };
    let Some(key) = person.key_for(source.find_by()) else { return Ok(erased) };
    let mut not_theirs = 0;
    match (&source.location, &source.erasure) {
        (Location::Table { .. }, ErasurePolicy::Delete) => {
            for record in eraser.data.records(source, key).await? {
                match eraser.data.delete_record(source, &record).await? {
                    Written::Applied => erased.deleted += 1,
                    Written::NotTheirs => not_theirs += 1,
                }
            }
        }
        (Location::Table { .. }, ErasurePolicy::Anonymise { attributes, reason }) => {
            for record in eraser.data.records(source, key).await? {
                match eraser.data.anonymise_record(source, &record, attributes).await? {
                    Written::Applied => erased.anonymised += 1,
                    Written::NotTheirs => not_theirs += 1,
                }
            }
            erased.kept_because = (erased.anonymised > 0).then(|| reason.clone());
        }
        (Location::Objects { .. }, _) => {
            for object in eraser.data.objects(source, key).await? {
                eraser.data.delete_object(source, key, &object.key).await?;
                erased.deleted += 1;
            }
        }
    }
    if not_theirs > 0 {
        tracing::info!(source = %source.id, skipped = not_theirs, "records no longer the person's were left alone");
    }
    Ok(erased)
}

/// A later pass over a source adds to what the earlier ones did.
fn add_counts(total: &mut ErasedSource, pass: ErasedSource) {
    total.deleted += pass.deleted;
    total.anonymised += pass.anonymised;
    if total.kept_because.is_none() {
        total.kept_because = pass.kept_because;
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
            Location::Table { .. } => !eraser.data.records(source, key).await?.is_empty(),
            Location::Objects { .. } => !eraser.data.objects(source, key).await?.is_empty(),
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
    exports_deleted: u32,
) -> ErasureReceipt {
    let mut instructed: Vec<String> = Vec::new();
    for done in progress.sources.iter().filter(|s| s.deleted + s.anonymised > 0) {
        let Some(source) = eraser.map.sources().iter().find(|s| s.id == done.source) else { continue };
        for recipient in &source.disclosure.recipients {
            let name = wire_name(recipient);
            if !NOT_INSTRUCTED.contains(&name.as_str()) && !instructed.contains(&name) {
                instructed.push(name);
            }
        }
    }
    ErasureReceipt { sources: progress.sources.clone(), exports_deleted, processors_instructed: instructed }
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
