//! `export`: consumes export jobs and delivers one person's complete data as a ZIP in S3:
//! `data.json` (machine-readable, for portability), `index.html` (to read: a summary of every
//! source with its first [`RECORDS_PER_PAGE`] records, linking to `sources/<source>/page-N.html`
//! for the rest), the recordings' files under `files/`, and the disclosure the policy promises
//! (categories, origins, purposes, recipients, retention; for CCPA the two separate lists of s12
//! and what was collected on or after 1 January 2022, [`CCPA_PERIOD_START`]).
//!
//! The ZIP is written as it is produced, through a small pipe, into an S3 multipart upload
//! (SSE-KMS when a key is configured), and the records are read into it a page at a time: memory
//! stays bounded by a page whatever the person holds (hundreds of thousands of chat messages, or
//! a terabyte of recordings). A ZIP's entries follow one another, so the sources are read twice:
//! once into `data.json`, once into the readable pages (a record written between the two reads
//! may be in one and not the other; `data.json` is the export's record). `data.json` and the
//! recordings are streamed into their entries, which then carry their sizes and CRC in a data
//! descriptor after the data rather than in the local header. A stored entry ending in a data
//! descriptor cannot be read by a streaming reader (nothing says where its bytes end), so the
//! streamed entries are deflated (recordings at the fastest level: they barely compress, but a
//! deflate stream marks its own end); the pages, one page of records each, are written whole,
//! sizes and CRC in the header. Each recording's entry is named by its key below the person's
//! prefix, so two recordings of the same name in different folders both go in.
//!
//! An export too big for one invocation to write in its time is split (given an export queue,
//! [`Split`]): when the person's recordings come to more than `EXPORT_PART_BYTES`, the job that
//! finds this writes the plan of the parts (`plan.json`: which recordings go in which part,
//! greedy in listing order, [`assign_parts`]) and queues a job per part, each in a message group
//! of its own so the parts are written side by side. Each part is a ZIP of its own
//! (`export-part-01-of-03.zip`): part 1 holds `data.json`, the index (which says which part holds
//! each recording) and the pages with its share of the recordings, the others recordings only.
//! A part's job writes its part unless it exists (a redelivery), then looks whether every part
//! exists; the one that finds them all completes the request, with the number of parts for the
//! completion mail's links. Below the threshold nothing changes: one `export.zip`, one job.
//!
//! A job carries the request version that asked for it; a staff extension before the job starts
//! bumps the version without changing what was asked, so a verified request at that version or
//! later is still exported, and only a request that moved on (closed, say) drops the job. The
//! request moves verified -> in_progress before the work and in_progress -> completed only after
//! the object exists; a failure leaves it in_progress and the message is retried.
//!
//! Erasure wins over export. An erasure of the person marks them before it deletes their exports
//! (`ErasureMark`); an export whose request was verified before that mark cannot complete (the
//! store's transaction checks the mark), because the erasure may have deleted the exports before
//! this one was uploaded and its receipt says they are all gone. Such an export deletes whatever
//! it uploaded and closes its request as denied, with the reason for the requester, instead of
//! completing: a completion would bring a download link, and the person asked for their data to
//! be gone. A request verified after the mark is exported as usual.

mod overview;
pub mod readable;

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, DeflateOption, ZipEntryBuilder};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use chrono::{DateTime, Utc};
use futures_lite::io::{AsyncWrite, AsyncWriteExt as _};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use privacy_shared::config::{Env, WorkerSettings};
use privacy_shared::datamap::{CcpaDisclosure, DataMap, Location, Source};
use privacy_shared::deps::WebhookEndpoints;
use privacy_shared::domain::{
    BusinessCalendar, Completion, Language, PartOf, Regime, RequestId, RequestRecord, StaffText, Status,
    Transition, export_key, export_plan_key, export_prefix,
};
use privacy_shared::domain::{DenialBasis, SourceOperation, SourceTask, TaskState};
use privacy_shared::jobs::{ExportJob, ExportPart, JobQueue, QueueError, SqsJobQueue, each_job};
use privacy_shared::outside::{Asking, Outside, OutsideError, Staging, all_answered, ask_all, page_key};
use privacy_shared::sources::{
    AwsPersonalData, Person, PersonalData, SourceError, StoredObject, person_prefix,
};

use overview::{Facts, FileView, RecordView, Summary};
use privacy_shared::store::{
    Change, DynamoStore, Outcome, People, Requests, SourceTasks, StoreError, export_asked_at,
    transition_or_reload,
};
use privacy_shared::{Clock, ConfigError, SystemClock};
use readable::{Pseudonyms, Show, Words, WordsError, data_pseudonym, fill};

/// S3 multipart parts (the minimum is 5 MiB); with the pipe, the bound on buffered export bytes.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
const PIPE_BYTES: usize = 256 * 1024;
/// The deflate level of streamed recordings: they are compressed media already.
const FASTEST: i32 = 1;
/// The most records one readable page holds: `index.html` shows each source's first page, and
/// each further page is a file of its own, so rendering one never holds more than this.
pub const RECORDS_PER_PAGE: usize = 250;
const TEMPLATES: [(&str, &str); 4] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("records.html", include_str!("../templates/records.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("page.html", include_str!("../templates/page.html")),
];
/// `data.json` is handed to the archive in pieces about this large.
const JSON_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{operation} failed: {code}")]
    S3 { operation: &'static str, code: String },
    #[error("writing the archive failed: {0}")]
    Archive(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("export job is not readable")]
    BadJob,
    /// A part's job found no plan of the parts (it is written before any part is queued).
    #[error("an export part has no plan")]
    NoPlan,
    #[error("the plan of an export's parts is not readable")]
    Plan,
    /// A recording changed between the listing and the download: the retry lists it again.
    #[error("a recording of source `{0}` changed while it was exported")]
    Changed(String),
    #[error("the reason for closing an overtaken export is not valid text")]
    Reason,
    #[error(transparent)]
    Outside(#[from] OutsideError),
    #[error(transparent)]
    Words(#[from] WordsError),
}

/// Why an export an erasure overtook was closed, for the requester (it is the denial's reason).
pub fn overtaken_reason(language: Language) -> &'static str {
    match language {
        Language::En => {
            "You also asked us to erase your personal data, and that erasure was carried out while \
             this copy was being prepared. The erasure comes first: the copy was deleted with the \
             rest of your data, so there is nothing of it left to send you. If you make a new \
             request, we will send you the personal data we hold about you by then."
        }
        Language::Nl => {
            "U hebt ons ook gevraagd uw persoonsgegevens te wissen, en dat is gebeurd terwijl deze \
             kopie werd samengesteld. Het wissen gaat voor: de kopie is met de rest van uw gegevens \
             verwijderd, dus wij hebben u daarvan niets meer te sturen. Als u een nieuw verzoek \
             doet, sturen wij u de persoonsgegevens die wij dan van u hebben."
        }
    }
}

fn s3_error<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    operation: &'static str,
) -> impl FnOnce(aws_smithy_runtime_api::client::result::SdkError<E, R>) -> ExportError {
    move |e| ExportError::S3 { operation, code: privacy_shared::aws::error_code(&e) }
}

fn archive_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Archive(e.to_string())
}

/// Where exports go: `exports/<request id>/export.zip` in this bucket, or the numbered parts of
/// a big export and their plan beside it.
#[derive(Clone, Debug)]
pub struct ExportTarget {
    pub bucket: String,
    pub kms_key_id: Option<String>,
}

pub fn object_key(request: &RequestRecord) -> String {
    export_key(request.id, None)
}

/// How exports too big for one invocation are split: recordings of more than `part_bytes` in
/// all go in numbered parts of at most that much each, each part its own job on `queue`.
pub struct Split<Q> {
    pub part_bytes: u64,
    pub queue: Q,
}

/// The export function as Lambda runs it: the exporter, and how big exports split (none without
/// an export queue: every export is then written whole, as [`export`] writes it).
pub struct Worker<S, P, Q> {
    pub exporter: Exporter<S, P>,
    pub split: Option<Split<Q>>,
}

impl Worker<DynamoStore, AwsPersonalData, SqsJobQueue> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = WorkerSettings::export(&Env::process())?;
        Ok(Worker::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: WorkerSettings, clock: Arc<dyn Clock>) -> Self {
        let split = settings.export_parts.clone().map(|parts| Split {
            part_bytes: parts.part_bytes,
            queue: SqsJobQueue::with_sdk(sdk, parts.queue_url, ""),
        });
        Worker { exporter: Exporter::with_sdk(sdk, settings, clock), split }
    }
}

pub struct Exporter<S, P> {
    pub store: S,
    pub data: P,
    pub map: DataMap,
    pub s3: aws_sdk_s3::Client,
    pub target: ExportTarget,
    pub clock: Arc<dyn Clock>,
    /// The map's sources outside AWS, asked before the archive is written.
    pub outside: Outside<WebhookEndpoints>,
    /// The pages tell dates and times on the business time zone's clock.
    pub calendar: BusinessCalendar,
}

impl<S, P> Exporter<S, P> {
    /// Where webhook answers and attached files wait for the archive: the export bucket.
    fn staging(&self) -> Staging {
        Staging {
            s3: self.s3.clone(),
            bucket: self.target.bucket.clone(),
            kms_key_id: self.target.kms_key_id.clone(),
        }
    }
}

impl Exporter<DynamoStore, AwsPersonalData> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = WorkerSettings::export(&Env::process())?;
        Ok(Exporter::with_sdk(&privacy_shared::deps::sdk_from_env().await, settings, Arc::new(SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: WorkerSettings, clock: Arc<dyn Clock>) -> Self {
        let kms_key_id = settings.export_kms_key_id.clone();
        let calendar = settings.calendar.clone();
        let worker = privacy_shared::deps::SourceWorker::new(sdk, settings);
        Exporter {
            store: worker.store,
            data: worker.data,
            map: worker.map,
            s3: worker.s3,
            target: ExportTarget { bucket: worker.export_bucket, kms_key_id },
            clock,
            outside: worker.outside,
            calendar,
        }
    }
}

/// No split: what [`handle`] and [`export`] run with.
const WHOLE: Option<&Split<SqsJobQueue>> = None;

/// The export queue's messages, every export written whole (a part of an export another worker
/// planned is still written as its plan says).
pub async fn handle<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    Ok(each_job(event.payload, |job: ExportPart| async move { run(exporter, WHOLE, &job).await }).await)
}

/// The export queue's messages as the function handles them: big exports split into parts.
pub async fn handle_jobs<S: Requests + People + SourceTasks, P: PersonalData, Q: JobQueue>(
    worker: &Worker<S, P, Q>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let split = worker.split.as_ref();
    Ok(each_job(event.payload, |job: ExportPart| async move { run(&worker.exporter, split, &job).await })
        .await)
}

/// One message of the export queue: the export `dispatch` asked for, or one part of it.
pub async fn run<S: Requests + People + SourceTasks, P: PersonalData, Q: JobQueue>(
    exporter: &Exporter<S, P>,
    split: Option<&Split<Q>>,
    message: &ExportPart,
) -> Result<(), ExportError> {
    // Boxed: the export's futures nest deep enough to overflow the compiler's layout queries.
    match message.part {
        None => Box::pin(export_or_split(exporter, split, &message.job)).await,
        Some(number) => Box::pin(export_part(exporter, &message.job, number)).await,
    }
}

/// Runs one job to completion (or leaves the request in progress for the retry), the export
/// written whole whatever its size.
pub async fn export<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    job: &ExportJob,
) -> Result<(), ExportError> {
    export_or_split(exporter, WHOLE, job).await
}

/// The job `dispatch` sent: the whole export, written and completed here; or, when its
/// recordings come to more than a part may hold, the plan of its parts and a job per part.
async fn export_or_split<S: Requests + People + SourceTasks, P: PersonalData, Q: JobQueue>(
    exporter: &Exporter<S, P>,
    split: Option<&Split<Q>>,
    job: &ExportJob,
) -> Result<(), ExportError> {
    let Some(mut request) = exporter.store.get(job.request_id).await? else {
        tracing::warn!(request_id = %job.request_id, "export job for an unknown request");
        return Ok(());
    };
    match request.status {
        // Later versions of a verified request (a staff extension) still ask for this export.
        Status::Verified if request.version >= job.version => {}
        Status::InProgress => {} // a retry of a job that started
        _ => {
            tracing::info!(request_id = %request.id, status = %request.status, "nothing to export");
            return Ok(());
        }
    }
    // Saves the work only: the completion's own condition is what keeps an overtaken export out.
    if overtaken(exporter, &request).await? {
        return withdraw(exporter, &request).await;
    }
    // Started before: this job delivered again, its archive perhaps written already.
    let again = request.status == Status::InProgress;
    if request.status == Status::Verified {
        request = start(exporter, &request).await?;
    }
    // Sources outside AWS first: until each has answered, the archive cannot be complete. The
    // request stays in progress and this job ends; a source's answer sends it again.
    // Whose data: the account gives the user id (and the person's own identifiers, which are
    // never pseudonymised), looked up once for the sources and the plan.
    let (person, own) = whose(exporter, &request).await?;
    let outside = ask_outside(exporter, &request, &person).await?;
    if !all_answered(&outside) {
        let waiting: Vec<&str> =
            outside.iter().filter(|t| !t.state.is_answered()).map(|t| t.source.as_str()).collect();
        tracing::info!(request_id = %request.id, sources = %waiting.join(","), "export waits for sources outside AWS");
        return Ok(());
    }
    if let Some(split) = split {
        // A plan stored before (this job delivered again) is the one the parts follow, whatever
        // the sources hold by now.
        let there = listed(exporter, request.id).await?;
        let stored = match read_plan(exporter, request.id, &there).await? {
            Some(stored) => stored,
            None => {
                let plan = plan(exporter, &request, person, own, outside).await?;
                let sizes: Vec<u64> = plan.files.iter().map(|f| f.object.size).collect();
                let parts = assign_parts(&sizes, split.part_bytes);
                if parts.last().is_none_or(|last| *last == 1) {
                    return export_whole(exporter, &request, plan, again).await;
                }
                let stored = StoredPlan::of(&plan, &parts);
                write_plan(exporter, request.id, &stored).await?;
                stored
            }
        };
        for number in 1..=stored.parts {
            split.queue.enqueue(&ExportPart::of(job, number)).await?;
        }
        tracing::info!(request_id = %request.id, parts = stored.parts, "export split into parts");
        return Ok(());
    }
    let plan = plan(exporter, &request, person, own, outside).await?;
    export_whole(exporter, &request, plan, again).await
}

/// Whose data the export holds: the person's address, their user id from the source that
/// provides it, and their own identifiers there (the attributes the map marks `identifies`),
/// which stay as they are wherever they turn up among other people's. One read of the account.
async fn whose<S, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<(Person, Vec<String>), ExportError> {
    let mut own = vec![request.email.normalized().to_owned()];
    let Some(source) = exporter.map.user_id_source() else {
        return Ok((Person { email: request.email.clone(), user_id: None }, own));
    };
    let attribute = source.provides_user_id.as_deref().unwrap_or("user_id");
    let records = exporter.data.records(source, request.email.normalized()).await?;
    let user_id = records.iter().find_map(|r| r.get(attribute).and_then(Value::as_str)).map(str::to_owned);
    for record in &records {
        for identifying in source.attributes().iter().filter(|a| a.identifies) {
            if let Some(value) = record.get(&identifying.name).and_then(Value::as_str) {
                own.push(value.to_owned());
            }
        }
    }
    Ok((Person { email: request.email.clone(), user_id }, own))
}

/// The request's answers from the sources outside AWS, each asked (again) if still waiting.
async fn ask_outside<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    person: &Person,
) -> Result<Vec<SourceTask>, ExportError> {
    if !exporter.map.sources().iter().any(Source::is_external) {
        return Ok(Vec::new());
    }
    let (since, _) = window(request);
    let staging = exporter.staging();
    let now = exporter.clock.now();
    let operation = SourceOperation::Access;
    let asking = Asking { request, operation, person, since, now };
    Ok(ask_all(&exporter.store, &exporter.outside, &staging, &exporter.map, asking).await?)
}

/// Writes the archive and completes the request. A job delivered `again` whose archive exists
/// (its completion failed last time) only completes: a multipart upload becomes an object only
/// once whole, and writing it again left a second copy of the person's data in the bucket
/// (found by the fault run, `make chaos`).
async fn export_whole<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: Plan,
    again: bool,
) -> Result<(), ExportError> {
    let found = if again && listed(exporter, request.id).await?.contains(&export_key(request.id, None)) {
        tracing::info!(request_id = %request.id, "export exists already");
        count_found(exporter, request, &plan).await?
    } else {
        write_archive(exporter, request, &plan, None).await?.unwrap_or_default()
    };
    complete(exporter, request, Completion::Exported { found }).await
}

/// How many records and files the export of `plan` holds, counted by reading the sources again
/// (no byte written): for a completion that comes after the archive was written by another
/// invocation (a redelivery, another part's job), so that the completion still says whether
/// anything was found. Records written since may make it differ from `data.json` by as many.
async fn count_found<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
) -> Result<u64, ExportError> {
    let mut found = plan.files.len() as u64;
    for source in exporter.map.sources() {
        let Some(key) = plan.person.key_for(source.find_by()) else { continue };
        if let Location::Objects { .. } | Location::Manual { .. } = &source.location {
            continue; // the plan's files
        }
        let mut reader = Reader::of(source, plan);
        while let Some(records) = reader.next(exporter, request.id, source, key).await? {
            found += records.iter().filter(|r| within(r, reader.time_attribute(source), plan.since)).count()
                as u64;
        }
    }
    Ok(found)
}

/// Part `number` of a planned export: written unless it exists already (this job delivered
/// again), then, if every part exists, the request completed. Each part's job looks after writing
/// its own, so the last to finish sees them all; should two finish together, both see them all
/// and the second finds the request completed.
async fn export_part<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    job: &ExportJob,
    number: u32,
) -> Result<(), ExportError> {
    let Some(request) = exporter.store.get(job.request_id).await? else {
        tracing::warn!(request_id = %job.request_id, "export job for an unknown request");
        return Ok(());
    };
    // The job that planned the parts started the work; completed (by another part) or closed
    // since, there is nothing left to write.
    if request.status != Status::InProgress {
        tracing::info!(request_id = %request.id, part = number, status = %request.status, "nothing to export");
        return Ok(());
    }
    if overtaken(exporter, &request).await? {
        return withdraw(exporter, &request).await;
    }
    let there = listed(exporter, request.id).await?;
    let stored = read_plan(exporter, request.id, &there).await?.ok_or(ExportError::NoPlan)?;
    let part = PartOf::new(number, stored.parts).ok_or(ExportError::BadJob)?;
    if there.contains(&export_key(request.id, Some(part))) {
        tracing::info!(request_id = %request.id, part = number, "export part exists already");
    } else {
        let plan = stored.into_plan(exporter, &request, part).await?;
        write_archive(exporter, &request, &plan, Some(part)).await?;
        tracing::info!(request_id = %request.id, part = number, parts = part.of(), "export part written");
    }
    let there = listed(exporter, request.id).await?;
    let all = (1..=part.of())
        .filter_map(|n| PartOf::new(n, part.of()))
        .all(|p| there.contains(&export_key(request.id, Some(p))));
    if !all {
        return Ok(());
    }
    // Whichever part's job finds them all completes the export: it counts what the whole
    // export holds, as the plan has it (every recording, and the records).
    let stored = read_plan(exporter, request.id, &there).await?.ok_or(ExportError::NoPlan)?;
    let first = PartOf::new(1, stored.parts).ok_or(ExportError::BadJob)?;
    let whole = stored.into_plan(exporter, &request, first).await?;
    let found = count_found(exporter, &request, &whole).await?;
    complete(exporter, &request, Completion::ExportedInParts { parts: part.of(), found }).await
}

/// How often a completion that lost a race to another change of an open request is tried again.
const COMPLETION_TRIES: usize = 3;

/// Completes the request once its export exists. Should another writer get in first: an erasure
/// of the person wins (the export is withdrawn); a completion by another delivery (or another
/// part) is this one's too; any other change of the request (a staff extension, say) is read and
/// the completion tried again from there.
async fn complete<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    completion: Completion,
) -> Result<(), ExportError> {
    let mut current = request.clone();
    for _ in 0..COMPLETION_TRIES {
        let change = Change::system(Transition::Complete(completion.clone()), exporter.clock.now());
        match exporter.store.transition(&current, change).await {
            Ok(_) => {
                tracing::info!(request_id = %current.id, "export completed");
                // The archive holds what was staged; the copy goes (the lifecycle rule is the
                // net should this fail).
                if let Err(err) = exporter.staging().clear(current.id).await {
                    tracing::warn!(request_id = %current.id, error = %err, "staged answers not deleted");
                }
                return Ok(());
            }
            // Another delivery completed it, or an erasure of the person overtook it (the store
            // refuses the completion then), or the request changed otherwise.
            Err(StoreError::Conflict) => {
                if overtaken(exporter, &current).await? {
                    return withdraw(exporter, &current).await;
                }
                match exporter.store.get(current.id).await? {
                    Some(now) if now.status == Status::InProgress => current = now,
                    _ => {
                        tracing::info!(request_id = %current.id, "export completed by another delivery");
                        return Ok(());
                    }
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Whether an erasure of the person began deleting their exports after this request was verified.
async fn overtaken<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<bool, ExportError> {
    let mark = exporter.store.erasure_mark(&request.email.subject_key()).await?;
    Ok(mark.is_some_and(|m| m.overtakes(export_asked_at(request))))
}

/// Erasure wins: deletes every version of whatever this export uploaded, closes the request as
/// denied with the reason (never completed, which would bring a download link), and removes what
/// the request still holds of the person, download links included.
async fn withdraw<S: Requests + People + SourceTasks, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<(), ExportError> {
    let prefix = format!("exports/{}/", request.id);
    privacy_shared::sources::delete_all_versions(&exporter.s3, &exporter.target.bucket, &prefix).await?;
    exporter.staging().clear(request.id).await?;
    let reason = StaffText::parse(overtaken_reason(request.language)).map_err(|_| ExportError::Reason)?;
    let change =
        Change::system(Transition::Deny { reason, basis: DenialBasis::Erased }, exporter.clock.now());
    match transition_or_reload(&exporter.store, request, change).await? {
        // Still open at another version (a staff extension): the retry closes it from there.
        Outcome::Overtaken(Some(now)) if now.status.is_open() => return Err(StoreError::Conflict.into()),
        Outcome::Applied(_) | Outcome::Overtaken(_) => {}
    }
    exporter.store.scrub_request(request.id).await?;
    tracing::info!(request_id = %request.id, "export withdrawn: an erasure of the person overtook it");
    Ok(())
}

async fn start<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
) -> Result<RequestRecord, ExportError> {
    let change = Change::system(Transition::StartWork, exporter.clock.now());
    match transition_or_reload(&exporter.store, request, change).await? {
        Outcome::Applied(started) => Ok(started),
        // A concurrent delivery started it: carry on from the stored state.
        Outcome::Overtaken(now) => now.ok_or(ExportError::BadJob),
    }
}

/// What the archive is made of, known before any byte of it is written: whose data, which
/// window, when, and the recordings (one entry each; `data.json` and the index list them). The
/// records themselves are read while the archive is written, a page at a time.
pub struct Plan {
    person: Person,
    /// The person's own identifiers: never pseudonymised (see [`readable::Pseudonyms`]).
    own: Vec<String>,
    /// CCPA: the start of the period the export covers; none for other regimes.
    since: Option<DateTime<Utc>>,
    asked_at: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    pub files: Vec<ArchivedFile>,
    /// An export in parts: how many (each file names its own).
    parts: Option<u32>,
    /// The answers of the sources outside AWS (staged pages, attached files).
    outside: Vec<SourceTask>,
}

impl Plan {
    /// How many pages of records a webhook source staged for the person (none for any other).
    fn staged_pages(&self, source_id: &str) -> Option<u32> {
        self.outside.iter().find(|t| t.source == source_id).and_then(|t| match &t.state {
            TaskState::Collected { pages, .. } => Some(*pages),
            _ => None,
        })
    }
}

/// One recording and where it goes in the archive (and, for an export in parts, in which part).
#[derive(Clone, Debug)]
pub struct ArchivedFile {
    pub path: String,
    pub source_id: String,
    pub object: StoredObject,
    pub part: Option<u32>,
}

impl Plan {
    /// The recordings of one object source, as `data.json` and the index list them.
    fn listing(&self, source_id: &str) -> Vec<Value> {
        self.files
            .iter()
            .filter(|f| f.source_id == source_id)
            .map(|f| {
                let mut listed =
                    json!({"path": f.path, "size": f.object.size, "last_modified": f.object.last_modified});
                if let Some(part) = f.part {
                    listed["part"] = json!(part);
                }
                listed
            })
            .collect()
    }
}

/// The part (from 1) of each recording of sizes `sizes`, in listing order: each part takes the
/// recordings that follow one another until the next would take it past `limit` bytes; a
/// recording larger than `limit` gets a part of its own. Deterministic, so a plan made twice is
/// the same plan. Part 1 also holds the records (`data.json` and the pages), which are not
/// counted: next to recordings they are small (a hundred thousand records are some 60 MB).
pub fn assign_parts(sizes: &[u64], limit: u64) -> Vec<u32> {
    let mut part = 1;
    let mut used = 0u64;
    sizes
        .iter()
        .map(|&size| {
            if used > 0 && used.saturating_add(size) > limit {
                part += 1;
                used = 0;
            }
            used = used.saturating_add(size);
            part
        })
        .collect()
}

/// `plan.json`: which recording goes in which part, and when the export was compiled. The job
/// that splits the export writes it once, before any part is queued; every part's job builds its
/// part from it, so a retry writes the part it would have written the first time.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredPlan {
    parts: u32,
    generated_at: DateTime<Utc>,
    files: Vec<PlannedFile>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PlannedFile {
    part: u32,
    source_id: String,
    path: String,
    bucket: String,
    key: String,
    size: u64,
    last_modified: Option<DateTime<Utc>>,
}

impl StoredPlan {
    fn of(plan: &Plan, parts: &[u32]) -> StoredPlan {
        let files = plan
            .files
            .iter()
            .zip(parts)
            .map(|(file, part)| PlannedFile {
                part: *part,
                source_id: file.source_id.clone(),
                path: file.path.clone(),
                bucket: file.object.bucket.clone(),
                key: file.object.key.clone(),
                size: file.object.size,
                last_modified: file.object.last_modified,
            })
            .collect();
        StoredPlan { parts: parts.iter().copied().max().unwrap_or(1), generated_at: plan.generated_at, files }
    }

    /// The plan of one part. Only the first, which holds the records, needs to know whose they
    /// are; the others hold recordings the plan names by their keys.
    async fn into_plan<S: Requests + SourceTasks, P: PersonalData>(
        self,
        exporter: &Exporter<S, P>,
        request: &RequestRecord,
        part: PartOf,
    ) -> Result<Plan, ExportError> {
        let (person, own) = match part.number() {
            1 => whose(exporter, request).await?,
            _ => (Person { email: request.email.clone(), user_id: None }, Vec::new()),
        };
        let (since, asked_at) = window(request);
        let files = self
            .files
            .into_iter()
            .map(|f| ArchivedFile {
                path: f.path,
                source_id: f.source_id,
                object: StoredObject {
                    bucket: f.bucket,
                    key: f.key,
                    size: f.size,
                    last_modified: f.last_modified,
                },
                part: Some(f.part),
            })
            .collect();
        Ok(Plan {
            person,
            own,
            since,
            asked_at,
            generated_at: self.generated_at,
            files,
            parts: Some(self.parts),
            outside: exporter.store.tasks(request.id).await?,
        })
    }
}

/// The keys under the request's export prefix. A listing rather than a read of each key: without
/// `s3:ListBucket`, S3 answers a read of a missing key with 403, not 404, and the listing is
/// scoped to `exports/` in the role.
async fn listed<S, P>(exporter: &Exporter<S, P>, id: RequestId) -> Result<BTreeSet<String>, ExportError> {
    let mut keys = BTreeSet::new();
    let mut pages = exporter
        .s3
        .list_objects_v2()
        .bucket(&exporter.target.bucket)
        .prefix(export_prefix(id))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(s3_error("ListObjectsV2"))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    Ok(keys)
}

/// The plan of the parts, if the export's keys (`listed`) hold one.
async fn read_plan<S, P>(
    exporter: &Exporter<S, P>,
    id: RequestId,
    listed: &BTreeSet<String>,
) -> Result<Option<StoredPlan>, ExportError> {
    let key = export_plan_key(id);
    if !listed.contains(&key) {
        return Ok(None);
    }
    let got = exporter
        .s3
        .get_object()
        .bucket(&exporter.target.bucket)
        .key(&key)
        .send()
        .await
        .map_err(s3_error("GetObject"))?;
    let bytes = got.body.collect().await.map_err(archive_error)?.into_bytes();
    serde_json::from_slice(&bytes).map(Some).map_err(|_| ExportError::Plan)
}

async fn write_plan<S, P>(
    exporter: &Exporter<S, P>,
    id: RequestId,
    plan: &StoredPlan,
) -> Result<(), ExportError> {
    let body = serde_json::to_vec(plan).map_err(|_| ExportError::Plan)?;
    let put = exporter
        .s3
        .put_object()
        .bucket(&exporter.target.bucket)
        .key(export_plan_key(id))
        .content_type("application/json")
        .body(body.into());
    // Encrypted as the parts are: it names the person's recordings.
    let put = match &exporter.target.kms_key_id {
        Some(kms) => put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms),
        None => put.server_side_encryption(ServerSideEncryption::Aes256),
    };
    put.send().await.map_err(s3_error("PutObject"))?;
    Ok(())
}

/// The archive path of an object: its key below the person's prefix (`relative`), in its
/// source's folder. Segments an extractor could resolve outside that folder (`..`, `.`, empty)
/// are dropped and backslashes replaced; should two keys still come to one path (`a//b.mp4` and
/// `a/b.mp4`), the later one gets a numbered suffix, so every entry name is unique and the same
/// listing always gives the same names.
pub fn entry_path(source_id: &str, relative: &str, taken: &mut BTreeSet<String>) -> String {
    let segments: Vec<String> = relative
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .map(|s| s.replace('\\', "_"))
        .collect();
    let name = if segments.is_empty() { "file".to_owned() } else { segments.join("/") };
    let mut path = format!("files/{source_id}/{name}");
    let mut n = 2;
    while taken.contains(&path) {
        let (folder, file) = name.rsplit_once('/').map_or(("", name.as_str()), |(d, f)| (d, f));
        let numbered = match file.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
            _ => format!("{file} ({n})"),
        };
        let folder = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        path = format!("files/{source_id}/{folder}{numbered}");
        n += 1;
    }
    taken.insert(path.clone());
    path
}

fn within(record: &Value, attribute: Option<&str>, since: Option<DateTime<Utc>>) -> bool {
    let (Some(attribute), Some(since)) = (attribute, since) else { return true };
    match record.get(attribute).and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(at) => at >= since,
        // Undated records cannot be shown to be older: they are included.
        None => true,
    }
}

fn names<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    let set: BTreeSet<String> =
        items.into_iter().filter_map(|i| serde_json::to_value(i).ok()?.as_str().map(str::to_owned)).collect();
    set.into_iter().map(Value::String).collect()
}

/// The policy's disclosure for the sources that hold this person's data.
pub fn disclosure(sources: &[&Source], regime: Regime) -> Value {
    let d = |f: fn(&Source) -> Vec<Value>| -> Vec<Value> {
        let set: BTreeSet<String> =
            sources.iter().flat_map(|s| f(s)).filter_map(|v| v.as_str().map(str::to_owned)).collect();
        set.into_iter().map(Value::String).collect()
    };
    let mut out = json!({
        "categories": d(|s| names(&s.disclosure.categories)),
        "origins": d(|s| names(&s.disclosure.origins)),
        "purposes": d(|s| names(&s.disclosure.purposes)),
        "recipients": d(|s| names(&s.disclosure.recipients)),
        "retention": sources.iter().map(|s| json!({"source": s.id, "retention": s.disclosure.retention})).collect::<Vec<_>>(),
    });
    if regime == Regime::Ccpa {
        let list = |which: CcpaDisclosure| {
            let chosen: Vec<&&Source> =
                sources.iter().filter(|s| s.disclosure.ccpa_disclosure == which).collect();
            json!({
                "categories": names(chosen.iter().flat_map(|s| s.disclosure.ccpa_categories.iter())),
                "recipients": names(chosen.iter().flat_map(|s| s.disclosure.recipients.iter())),
            })
        };
        out["ccpa"] = json!({
            "sold_or_shared": list(CcpaDisclosure::SoldOrShared),
            "business_purpose": list(CcpaDisclosure::BusinessPurpose),
        });
    }
    out
}

/// Who, which window, and the recordings to stream.
pub async fn plan<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    person: Person,
    own: Vec<String>,
    outside: Vec<SourceTask>,
) -> Result<Plan, ExportError> {
    let (since, asked_at) = window(request);
    let mut files = Vec::new();
    let mut taken = BTreeSet::new();
    for source in exporter.map.sources() {
        // Files staff attached for a manual source: staged in the export bucket.
        if let Some(task) =
            outside.iter().find(|t| t.source == source.id && t.operation == SourceOperation::Access)
            && let TaskState::Collected { files: attached, .. } = &task.state
        {
            for file in attached {
                let path = entry_path(&source.id, &file.name, &mut taken);
                let object = StoredObject {
                    bucket: exporter.target.bucket.clone(),
                    key: file.key.clone(),
                    size: file.size,
                    last_modified: Some(task.opened_at),
                };
                files.push(ArchivedFile { path, source_id: source.id.clone(), object, part: None });
            }
            continue;
        }
        let Some(key) = person.key_for(source.find_by()) else { continue };
        let Location::Objects { .. } = &source.location else { continue };
        let objects: Vec<StoredObject> = exporter
            .data
            .objects(source, key)
            .await?
            .into_iter()
            .filter(|o| since.is_none_or(|s| o.last_modified.is_none_or(|m| m >= s)))
            .collect();
        let prefix = person_prefix(source, key)?;
        for object in objects {
            let relative = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
            let path = entry_path(&source.id, relative, &mut taken);
            files.push(ArchivedFile { path, source_id: source.id.clone(), object, part: None });
        }
    }
    let outside = outside.into_iter().filter(|t| t.operation == SourceOperation::Access).collect();
    Ok(Plan { person, own, since, asked_at, generated_at: exporter.clock.now(), files, parts: None, outside })
}

/// The start of what a CCPA request to know covers: everything collected on or after 1 January
/// 2022 (CCPA regulations §7024(h), 2023), not only the 12 months before the request the policy
/// still names; a business may stop there only where going further proves impossible or
/// disproportionate (Civil Code §1798.130(a)(2)(B)), which the data map's sources are not.
pub const CCPA_PERIOD_START: &str = "2022-01-01T00:00:00Z";

/// When the request asked (its verification), and, under the CCPA, the start of the period the
/// export covers ([`CCPA_PERIOD_START`]).
fn window(request: &RequestRecord) -> (Option<DateTime<Utc>>, DateTime<Utc>) {
    let asked_at = request.verified_at.unwrap_or(request.received_at);
    let since = (request.regime == Regime::Ccpa)
        .then(|| DateTime::parse_from_rfc3339(CCPA_PERIOD_START).ok().map(|d| d.with_timezone(&Utc)))
        .flatten()
        .map(|start| {
            // A shorter period the person asked for (never longer: intake refuses an earlier day),
            // and never past the request itself.
            let chosen = request.period_from.and_then(|day| day.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
            chosen.map_or(start, |chosen| chosen.max(start).min(asked_at))
        });
    (since, asked_at)
}

/// Reads a source's records for the archive a page at a time: a table's from DynamoDB, a
/// webhook's from the pages staged when it answered.
enum Reader {
    Table { cursor: Option<privacy_shared::sources::Cursor>, done: bool },
    Staged { next: u32, last: u32 },
}

impl Reader {
    fn of(source: &Source, plan: &Plan) -> Reader {
        match source.location {
            Location::Webhook { .. } => {
                Reader::Staged { next: 1, last: plan.staged_pages(&source.id).unwrap_or(0) }
            }
            _ => Reader::Table { cursor: None, done: false },
        }
    }

    /// The attribute a table's window is applied to; a webhook applied `since` itself.
    fn time_attribute<'a>(&self, source: &'a Source) -> Option<&'a str> {
        match &source.location {
            Location::Table { time_attribute, .. } => time_attribute.as_deref(),
            _ => None,
        }
    }

    async fn next<S, P: PersonalData>(
        &mut self,
        exporter: &Exporter<S, P>,
        request: RequestId,
        source: &Source,
        key: &str,
    ) -> Result<Option<Vec<Value>>, ExportError> {
        match self {
            Reader::Table { done: true, .. } => Ok(None),
            Reader::Table { cursor, done } => {
                let page = exporter.data.records_page(source, key, cursor.take()).await?;
                match page.next {
                    Some(next) => *cursor = Some(next),
                    None => *done = true,
                }
                Ok(Some(page.records))
            }
            Reader::Staged { next, last } if *next <= *last => {
                let records = exporter.staging().page(&page_key(request, &source.id, *next)).await?;
                *next += 1;
                Ok(Some(records))
            }
            Reader::Staged { .. } => Ok(None),
        }
    }
}

/// `value` as pretty JSON whose lines after the first are indented `depth` levels, to sit at
/// that depth in `data.json`. JSON strings hold no raw newline, so every newline is the layout's.
fn pretty_at(value: &Value, depth: usize) -> Result<String, ExportError> {
    let text = serde_json::to_string_pretty(value).map_err(archive_error)?;
    Ok(text.replace('\n', &format!("\n{}", "  ".repeat(depth))))
}

/// What reading the sources into `data.json` found.
struct Collected {
    records: u64,
    files: u64,
    /// The oldest and the newest record, by each table's time attribute.
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Writes `data.json` into the archive as the sources are read, a page at a time: the same
/// document a whole `serde_json` value would be, but never more than a page of it in memory.
/// Other people in each record are pseudonymised as the map says (`participant-2`, numbered in
/// `people`, which the pages go on numbering from), every record and field kept.
async fn write_data_json<S: Requests, P: PersonalData, W: AsyncWrite + Unpin>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
    people: &mut Pseudonyms,
    zip: &mut ZipFileWriter<W>,
) -> Result<Collected, ExportError> {
    let mut head = json!({
        "id": request.id, "kind": request.kind, "regime": request.regime,
        "received_at": request.received_at, "verified_at": request.verified_at,
        "generated_at": plan.generated_at,
        "period": plan.since.map(|s| json!({"from": s, "to": plan.asked_at})),
    });
    if let Some(parts) = plan.parts {
        head["parts"] = json!(parts);
    }
    let mut entry = zip
        .write_entry_stream(ZipEntryBuilder::new("data.json".into(), Compression::Deflate))
        .await
        .map_err(archive_error)?;
    let mut out = format!(
        "{{\n  \"request\": {},\n  \"subject\": {},\n  \"sources\": {{",
        pretty_at(&head, 1)?,
        pretty_at(&json!({"email": request.email.as_str()}), 1)?,
    );
    let mut with_data: Vec<&Source> = Vec::new();
    let mut first_source = true;
    let (mut records_found, mut files_found) = (0u64, 0u64);
    let mut period: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    let mut replaced = 0usize;
    for source in exporter.map.sources() {
        let Some(key) = plan.person.key_for(source.find_by()) else { continue };
        out.push_str(if first_source { "\n    " } else { ",\n    " });
        first_source = false;
        out.push_str(&format!(
            "{}: {{\n      \"description\": {},\n",
            json!(source.id),
            json!(source.description)
        ));
        match &source.location {
            Location::Table { .. } | Location::Webhook { .. } => {
                out.push_str("      \"records\": [");
                let mut count = 0u64;
                let mut reader = Reader::of(source, plan);
                while let Some(records) = reader.next(exporter, request.id, source, key).await? {
                    let time = reader.time_attribute(source);
                    for record in records.iter().filter(|r| within(r, time, plan.since)) {
                        if let Some(at) = time.and_then(|t| dated(record, t)) {
                            period = Some(period.map_or((at, at), |(from, to)| (from.min(at), to.max(at))));
                        }
                        let mut record = record.clone();
                        replaced += readable::pseudonymise(source, &mut record, people, &data_pseudonym);
                        out.push_str(if count == 0 { "\n        " } else { ",\n        " });
                        out.push_str(&pretty_at(&record, 4)?);
                        count += 1;
                        if out.len() >= JSON_CHUNK {
                            entry.write_all(out.as_bytes()).await.map_err(archive_error)?;
                            out.clear();
                        }
                    }
                }
                out.push_str(if count == 0 { "]\n    }" } else { "\n      ]\n    }" });
                if count > 0 {
                    with_data.push(source);
                }
                records_found += count;
            }
            Location::Objects { .. } | Location::Manual { .. } => {
                let listed = plan.listing(&source.id);
                if !listed.is_empty() {
                    with_data.push(source);
                }
                files_found += listed.len() as u64;
                out.push_str(&format!("      \"files\": {}\n    }}", pretty_at(&Value::Array(listed), 3)?));
            }
        }
    }
    let mut disclosure = disclosure(&with_data, request.regime);
    // The disclosure says which period it covers, as the CCPA asks of an answer to know.
    if let Some(since) = plan.since {
        disclosure["period"] = json!({
            "from": since, "to": plan.asked_at,
            "basis": match request.period_from {
                Some(_) => "the shorter period the person asked for",
                None => "CCPA regulations §7024(h): personal information collected on or after 1 January 2022",
            },
        });
    }
    // The recipients by name, not only their categories (CJEU C-154/21).
    let ids: Vec<&str> = with_data.iter().map(|s| s.id.as_str()).collect();
    disclosure["recipients_named"] = exporter
        .map
        .recipients_of(&ids)
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "role": r.role(request.language), "category": r.category,
                "sources": r.sources.iter().filter(|s| ids.contains(&s.as_str())).collect::<Vec<_>>(),
            })
        })
        .collect::<Vec<_>>()
        .into();
    // Art. 15(4): what was done to other people's identifiers, and why.
    disclosure["others_pseudonymised"] = json!({
        "basis": "GDPR Article 15(4) (CCPA: Civil Code §1798.145(k)): a copy of the person's data must not adversely affect the rights and freedoms of others",
        "replaced_with": "participant-N: the same N for the same person throughout this export; the person's own identifiers are kept",
        "attributes": overview::pseudonymised_attributes(&with_data),
        "people": people.people(),
        "values_replaced": replaced,
    });
    out.push_str(if first_source { "},\n" } else { "\n  },\n" });
    out.push_str(&format!("  \"disclosure\": {}\n}}", pretty_at(&disclosure, 1)?));
    entry.write_all(out.as_bytes()).await.map_err(archive_error)?;
    entry.close().await.map_err(archive_error)?;
    Ok(Collected { records: records_found, files: files_found, period })
}

/// A record's moment by its source's time attribute, if it has one in ISO 8601.
fn dated(record: &Value, attribute: &str) -> Option<DateTime<Utc>> {
    let text = record.get(attribute)?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc))
}

fn templates() -> Result<minijinja::Environment<'static>, ExportError> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(archive_error)?;
    }
    Ok(env)
}

/// How the pages spell a person among others: "deelnemer 2"; the requester as themselves.
fn page_pseudonym<'a>(show: &'a Show<'a>) -> impl Fn(readable::Person<'_>) -> Option<String> + 'a {
    move |person| match person {
        readable::Person::Other(number) => Some(show.pseudonym(number)),
        readable::Person::Own(identifier) => Some(show.own(identifier)),
    }
}

/// A file as the pages list it: linked where it is in this archive (all of a whole export's;
/// part 1's own of one in parts), with its size and date in words.
fn file_view(show: &Show<'_>, file: &Value) -> FileView {
    let w = show.words;
    let path = file["path"].as_str().unwrap_or_default().to_owned();
    let size = show.bytes(file["size"].as_u64().unwrap_or_default());
    let date = file["last_modified"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let mut about = match date {
        Some(at) => {
            fill(&w.details.file, &[("size", &size), ("date", &show.datetime(at.with_timezone(&Utc)))])
        }
        None => fill(&w.details.file_undated, &[("size", &size)]),
    };
    let part = file["part"].as_u64();
    if let Some(part) = part {
        about.push_str(", ");
        about.push_str(&fill(&w.details.in_part, &[("part", &show.integer(part))]));
    }
    // Escaped here (a key may hold any character), so the page shows the path as it is.
    FileView { path: readable::escape(&path), linked: part.is_none_or(|p| p == 1), about }
}

/// Writes the readable pages of every table source (its second page on; the first is the
/// index's) as its records are read, one page in memory at a time; returns what the index shows.
async fn write_pages<S: Requests, P: PersonalData, W: AsyncWrite + Unpin>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
    show: &Show<'_>,
    people: &mut Pseudonyms,
    env: &minijinja::Environment<'static>,
    zip: &mut ZipFileWriter<W>,
) -> Result<Vec<Summary>, ExportError> {
    let spell = page_pseudonym(show);
    let mut summaries = Vec::new();
    for source in exporter.map.sources() {
        let Some(key) = plan.person.key_for(source.find_by()) else { continue };
        let mut summary = Summary {
            id: source.id.clone(),
            label: source.label(show.language).to_owned(),
            description: source.describe(show.language).to_owned(),
            count: 0,
            pages: 0,
            records: Vec::new(),
            files: None,
            more: None,
        };
        if let Location::Objects { .. } | Location::Manual { .. } = &source.location {
            summary.files = Some(plan.listing(&source.id).iter().map(|f| file_view(show, f)).collect());
            summaries.push(summary);
            continue;
        }
        // The page being filled; it is written once a record for the next one turns up (so it
        // knows it has a next page) or the records end. Captions are numbered when the page is
        // written, once the count so far is known.
        let mut current: Vec<Vec<readable::Row>> = Vec::new();
        let mut reader = Reader::of(source, plan);
        while let Some(records) = reader.next(exporter, request.id, source, key).await? {
            for record in records.iter().filter(|r| within(r, reader.time_attribute(source), plan.since)) {
                if current.len() == RECORDS_PER_PAGE {
                    summary.pages += 1;
                    let full = std::mem::take(&mut current);
                    write_page(env, show, &mut summary, full, true, zip).await?;
                }
                let mut record = record.clone();
                readable::pseudonymise(source, &mut record, people, &spell);
                current.push(show.rows(source, &record));
                summary.count += 1;
            }
        }
        if !current.is_empty() {
            summary.pages += 1;
            write_page(env, show, &mut summary, current, false, zip).await?;
        }
        if summary.pages > 1 {
            let shown = show.integer(summary.records.len() as u64);
            let count = show.count(summary.count, &show.words.words.record);
            summary.more = Some(fill(&show.words.details.shown, &[("shown", &shown), ("count", &count)]));
        }
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Page `summary.pages` of a source: the first stays with the summary for the index, the
/// others become `sources/<source>/page-N.html`.
async fn write_page<W: AsyncWrite + Unpin>(
    env: &minijinja::Environment<'static>,
    show: &Show<'_>,
    summary: &mut Summary,
    rows: Vec<Vec<readable::Row>>,
    has_next: bool,
    zip: &mut ZipFileWriter<W>,
) -> Result<(), ExportError> {
    let number = summary.pages;
    let first = (number - 1) * RECORDS_PER_PAGE;
    let records: Vec<RecordView> = rows
        .into_iter()
        .enumerate()
        .map(|(i, rows)| RecordView {
            caption: fill(
                &show.words.details.record,
                &[("label", &summary.label), ("n", &show.integer((first + i + 1) as u64))],
            ),
            rows,
        })
        .collect();
    if number == 1 {
        summary.records = records;
        return Ok(());
    }
    // The first page is the index's.
    let previous =
        if number > 2 { format!("page-{}.html", number - 1) } else { "../../index.html".to_owned() };
    let words = show.words;
    let html = env
        .get_template("page.html")
        .and_then(|tpl| {
            tpl.render(minijinja::context! {
                lang => show.language.as_str(),
                w => minijinja::Value::from_serialize(words),
                title => fill(&words.pages.heading, &[("label", &summary.label), ("n", &show.integer(number as u64))]),
                previous => previous,
                next => has_next.then(|| format!("page-{}.html", number + 1)),
                records => minijinja::Value::from_serialize(&records),
            })
        })
        .map_err(archive_error)?;
    let name = format!("sources/{}/page-{number}.html", summary.id);
    zip.write_entry_whole(ZipEntryBuilder::new(name.into(), Compression::Deflate), html.as_bytes())
        .await
        .map_err(archive_error)
}

/// Writes the whole export (`part` none) or one part of it: the records (`data.json`, the pages
/// and the index) go in the whole export and in part 1, each recording where the plan puts it.
/// Returns how many records and files the export holds (for the whole export and part 1).
async fn write_archive<S: Requests, P: PersonalData>(
    exporter: &Exporter<S, P>,
    request: &RequestRecord,
    plan: &Plan,
    part: Option<PartOf>,
) -> Result<Option<u64>, ExportError> {
    let (zip_side, upload_side) = tokio::io::duplex(PIPE_BYTES);
    let key = export_key(request.id, part);
    let upload = upload_multipart(exporter.s3.clone(), exporter.target.clone(), key, upload_side);
    let number = part.map(PartOf::number);
    let produce = async {
        let mut zip = ZipFileWriter::with_tokio(zip_side);
        let mut found = None;
        if number.is_none_or(|n| n == 1) {
            let env = templates()?;
            let show = Show {
                language: request.language,
                calendar: &exporter.calendar,
                words: Words::of(request.language)?,
            };
            // One numbering of other people for data.json and the pages.
            let mut people = Pseudonyms::new(plan.own.iter().cloned());
            let collected = write_data_json(exporter, request, plan, &mut people, &mut zip).await?;
            found = Some(collected.records + collected.files);
            let summaries = write_pages(exporter, request, plan, &show, &mut people, &env, &mut zip).await?;
            let facts = Facts {
                request,
                map: &exporter.map,
                generated_at: plan.generated_at,
                window: plan.since.map(|since| (since, plan.asked_at)),
                period: collected.period,
                parts: plan.parts,
                pseudonymised: people.people() > 0,
                complaint: privacy_shared::mail::templates::complaint(request),
            };
            let index = env
                .get_template("index.html")
                .and_then(|tpl| tpl.render(overview::context(&show, &facts, &summaries)))
                .map_err(archive_error)?;
            drop(summaries);
            zip.write_entry_whole(
                ZipEntryBuilder::new("index.html".into(), Compression::Deflate),
                index.as_bytes(),
            )
            .await
            .map_err(archive_error)?;
        }
        for file in plan.files.iter().filter(|f| f.part == number) {
            let object = &file.object;
            let got = exporter
                .s3
                .get_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .send()
                .await
                .map_err(s3_error("GetObject"))?;
            // Streamed, so sizes and CRC follow the data: deflated, so a streaming reader finds
            // where the data ends (see the module docs).
            let builder = ZipEntryBuilder::new(file.path.clone().into(), Compression::Deflate)
                .deflate_option(DeflateOption::Other(FASTEST));
            let mut entry = zip.write_entry_stream(builder).await.map_err(archive_error)?;
            let mut body = got.body;
            let mut written = 0u64;
            while let Some(chunk) = body.try_next().await.map_err(archive_error)? {
                written += chunk.len() as u64;
                entry.write_all(&chunk).await.map_err(archive_error)?;
            }
            entry.close().await.map_err(archive_error)?;
            // data.json gives the listed size: an archive that says otherwise is not written.
            if written != object.size {
                return Err(ExportError::Changed(file.source_id.clone()));
            }
        }
        let mut inner = zip.close().await.map_err(archive_error)?.into_inner();
        inner.shutdown().await.map_err(archive_error)?;
        Ok::<Option<u64>, ExportError>(found)
    };
    let (produced, uploaded) = tokio::join!(produce, upload);
    let found = produced?;
    uploaded?;
    Ok(found)
}

/// Reads the archive from the pipe in `PART_SIZE` parts and uploads them; aborts the upload on
/// any failure so no partial object is ever visible.
async fn upload_multipart(
    s3: aws_sdk_s3::Client,
    target: ExportTarget,
    key: String,
    mut pipe: tokio::io::DuplexStream,
) -> Result<(), ExportError> {
    let mut create =
        s3.create_multipart_upload().bucket(&target.bucket).key(&key).content_type("application/zip");
    create = match &target.kms_key_id {
        Some(kms) => create.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms),
        None => create.server_side_encryption(ServerSideEncryption::Aes256),
    };
    let created = create.send().await.map_err(s3_error("CreateMultipartUpload"))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = async {
        let mut parts = Vec::new();
        let mut buffer = vec![0u8; PART_SIZE];
        loop {
            let mut filled = 0;
            while filled < PART_SIZE {
                let n = pipe.read(&mut buffer[filled..]).await.map_err(archive_error)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 && !parts.is_empty() {
                break;
            }
            let number = parts.len() as i32 + 1;
            let part = s3
                .upload_part()
                .bucket(&target.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(buffer[..filled].to_vec().into())
                .send()
                .await
                .map_err(s3_error("UploadPart"))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
            if filled < PART_SIZE {
                break;
            }
        }
        s3.complete_multipart_upload()
            .bucket(&target.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(s3_error("CompleteMultipartUpload"))?;
        Ok::<(), ExportError>(())
    }
    .await;
    if result.is_err() {
        // Drain nothing more; drop the pipe so the producer stops, and discard the parts.
        drop(pipe);
        let _ =
            s3.abort_multipart_upload().bucket(&target.bucket).key(&key).upload_id(&upload_id).send().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_outside_the_ccpa_window_are_left_out_and_undated_ones_kept() {
        let since = DateTime::parse_from_rfc3339("2025-11-28T00:00:00Z").unwrap().with_timezone(&Utc);
        assert!(within(&json!({"at": "2026-01-01T00:00:00Z"}), Some("at"), Some(since)));
        assert!(!within(&json!({"at": "2025-11-27T23:59:59Z"}), Some("at"), Some(since)));
        assert!(within(&json!({"other": 1}), Some("at"), Some(since)));
        assert!(within(&json!({"at": "2020-01-01T00:00:00Z"}), Some("at"), None), "no window outside CCPA");
    }

    #[test]
    fn entry_names_keep_the_folders_stay_inside_the_source_folder_and_never_repeat() {
        let mut taken = BTreeSet::new();
        let mut path = |relative: &str| entry_path("recordings", relative, &mut taken);
        assert_eq!(path("2026/a.mp4"), "files/recordings/2026/a.mp4");
        assert_eq!(path("2025/a.mp4"), "files/recordings/2025/a.mp4");
        assert_eq!(path("2026//a.mp4"), "files/recordings/2026/a (2).mp4");
        assert_eq!(path("2026/./a.mp4"), "files/recordings/2026/a (3).mp4");
        assert_eq!(path("../../etc/passwd"), "files/recordings/etc/passwd");
        assert_eq!(path(".."), "files/recordings/file");
        assert_eq!(path("notes"), "files/recordings/notes");
        assert_eq!(path("notes/"), "files/recordings/notes (2)");
        assert_eq!(path("a\\..\\b.mp4"), "files/recordings/a_.._b.mp4");
    }

    #[test]
    fn recordings_are_parted_greedily_in_listing_order_within_the_limit() {
        assert_eq!(assign_parts(&[], 10), Vec::<u32>::new());
        assert_eq!(assign_parts(&[3, 3, 4], 10), [1, 1, 1], "all fit: one part");
        assert_eq!(assign_parts(&[4, 4, 4, 4], 10), [1, 1, 2, 2]);
        assert_eq!(assign_parts(&[5, 5, 5], 10), [1, 1, 2], "exactly full is full");
        assert_eq!(assign_parts(&[6, 1, 6, 1], 10), [1, 1, 2, 2], "listing order, no reshuffling");
        assert_eq!(assign_parts(&[0, 10, 0, 1], 10), [1, 1, 1, 2]);
    }

    #[test]
    fn a_recording_larger_than_a_part_gets_a_part_of_its_own() {
        assert_eq!(assign_parts(&[3, 20, 3], 10), [1, 2, 3]);
        assert_eq!(assign_parts(&[20, 20], 10), [1, 2]);
        assert_eq!(assign_parts(&[20], 10), [1], "one recording is one part, however large");
        assert_eq!(assign_parts(&[u64::MAX, u64::MAX, 1], 10), [1, 2, 3], "no overflow");
    }

    #[test]
    fn every_part_keeps_within_the_limit_unless_it_holds_one_recording_and_parts_follow_one_another() {
        let sizes: Vec<u64> = (0..200u64).map(|i| (i * 7919) % 23 + 1).collect();
        for limit in [1, 5, 23, 24, 100, 5000] {
            let parts = assign_parts(&sizes, limit);
            assert_eq!(parts, assign_parts(&sizes, limit), "deterministic");
            assert_eq!(parts.first(), Some(&1));
            assert!(parts.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1), "{parts:?}");
            for part in 1..=*parts.last().unwrap() {
                let inside: Vec<u64> =
                    sizes.iter().zip(&parts).filter(|(_, p)| **p == part).map(|(s, _)| *s).collect();
                assert!(inside.len() == 1 || inside.iter().sum::<u64>() <= limit, "{limit}: {inside:?}");
            }
        }
    }

    #[test]
    fn the_reason_an_overtaken_export_gives_is_valid_text_in_every_language() {
        for language in [Language::En, Language::Nl] {
            assert!(StaffText::parse(overtaken_reason(language)).is_ok(), "{language:?}");
        }
    }

    #[test]
    fn the_ccpa_disclosure_keeps_the_two_lists_apart() {
        let map = DataMap::builtin().unwrap();
        let sources: Vec<&Source> = map.sources().iter().collect();
        let d = disclosure(&sources, Regime::Ccpa);
        let sold = &d["ccpa"]["sold_or_shared"]["categories"];
        assert!(sold.as_array().unwrap().contains(&json!("commercial_information")), "{d}");
        assert!(
            d["ccpa"]["business_purpose"]["categories"]
                .as_array()
                .unwrap()
                .contains(&json!("sensitive_personal_information"))
        );
        assert!(disclosure(&sources, Regime::Gdpr).get("ccpa").is_none());
        assert_eq!(d["retention"].as_array().unwrap().len(), map.sources().len());
    }
}
