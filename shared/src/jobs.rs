//! The job contracts between `dispatch` (which enqueues) and the workers (`export`, `erasure`):
//! the messages, the queue port with its SQS implementation and an in-memory one, and the batch
//! loop every worker runs over an SQS event. Adding a job is one type and one `Job` impl.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Mutex;

use crate::aws::error_code;
use crate::domain::RequestId;

/// The queues jobs travel on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueName {
    Export,
    /// Jobs that change a person's data: erasure and self-service correction.
    Erasure,
}

/// A message one function sends another through a queue.
pub trait Job: Serialize + DeserializeOwned + Send + Sync {
    const QUEUE: QueueName;
    /// The same job sent twice is one message (FIFO deduplication): a redelivered stream
    /// record cannot start the work twice.
    fn deduplication_id(&self) -> String;
    /// The FIFO message group: a group's messages are delivered one after another, so a
    /// request's jobs (the group is the request's id) never run side by side.
    fn message_group(&self) -> String;
}

/// The job an export worker receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    pub request_id: RequestId,
    /// The version of the request that asked for the export.
    pub version: u32,
}

impl Job for ExportJob {
    const QUEUE: QueueName = QueueName::Export;
    fn deduplication_id(&self) -> String {
        format!("{}-export-v{}", self.request_id, self.version)
    }
    fn message_group(&self) -> String {
        self.request_id.to_string()
    }
}

/// An export job as the export queue carries it: the job `dispatch` sent (no part: the whole
/// export, or, when it is too big for one invocation, the plan of its parts), or one part of a
/// planned export (1, 2, …), which the planning job sends itself. Each part has its own
/// deduplication id (sent twice by a redelivered plan, still one message) and its own message
/// group: in the request's group the parts would run one after another, each waiting for the
/// one before, which is the long single run the split is there to avoid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPart {
    #[serde(flatten)]
    pub job: ExportJob,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
    /// The job sent again because a source outside AWS answered, or may have ([`Wake`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<Wake>,
}

impl ExportPart {
    /// Part `number` of the export `job` asked for.
    pub fn of(job: &ExportJob, number: u32) -> ExportPart {
        ExportPart { job: job.clone(), part: Some(number), wake: None }
    }

    /// The job, sent again to look at what `wake` says a source answered.
    pub fn woken(job: &ExportJob, wake: Wake) -> ExportPart {
        ExportPart { job: job.clone(), part: None, wake: Some(wake) }
    }
}

/// What sends a waiting job again: a source outside AWS answered (its callback, staff) or is to
/// be asked again (the daily sweep's poll). Each of a task's wakes is one message: the same wake
/// sent twice (a redelivered stream record) is deduplicated, a later one is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub source: String,
    /// The task's wake count.
    pub count: u32,
}

fn wake_suffix(wake: Option<&Wake>) -> String {
    wake.map(|w| format!("-wake-{}-{}", w.source, w.count)).unwrap_or_default()
}

impl Job for ExportPart {
    const QUEUE: QueueName = QueueName::Export;
    fn deduplication_id(&self) -> String {
        let base = match self.part {
            None => self.job.deduplication_id(),
            Some(n) => format!("{}-part{n}", self.job.deduplication_id()),
        };
        format!("{base}{}", wake_suffix(self.wake.as_ref()))
    }
    fn message_group(&self) -> String {
        match self.part {
            None => self.job.message_group(),
            Some(n) => format!("{}-p{n}", self.job.request_id),
        }
    }
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

impl Job for ErasureJob {
    const QUEUE: QueueName = QueueName::Erasure;
    fn deduplication_id(&self) -> String {
        format!("{}-{:?}-v{}", self.request_id, self.change, self.version)
    }
    fn message_group(&self) -> String {
        self.request_id.to_string()
    }
}

/// An erasure job as the erasure queue carries it: the job `dispatch` sent (part 0, the same
/// message), or a continuation the erasure sends itself when an invocation runs out of time
/// (part 1, 2, …), so a large erasure goes on in a fresh invocation instead of failing towards
/// the dead-letter queue. Each part has its own deduplication id, so the FIFO queue does not drop
/// a continuation as a repeat of the job it continues, and a part sent twice (by a redelivered
/// invocation) is still one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasurePart {
    #[serde(flatten)]
    pub job: ErasureJob,
    #[serde(default, skip_serializing_if = "is_first")]
    pub part: u32,
    /// The job sent again because a source outside AWS answered, or may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<Wake>,
}

fn is_first(part: &u32) -> bool {
    *part == 0
}

impl ErasurePart {
    /// The part that carries on where this one stopped.
    pub fn next(&self) -> ErasurePart {
        ErasurePart { job: self.job.clone(), part: self.part + 1, wake: self.wake.clone() }
    }

    /// The job, sent again to look at what `wake` says a source answered.
    pub fn woken(job: &ErasureJob, wake: Wake) -> ErasurePart {
        ErasurePart { job: job.clone(), part: 0, wake: Some(wake) }
    }
}

impl Job for ErasurePart {
    const QUEUE: QueueName = QueueName::Erasure;
    fn deduplication_id(&self) -> String {
        let base = match self.part {
            0 => self.job.deduplication_id(),
            n => format!("{}-part{n}", self.job.deduplication_id()),
        };
        format!("{base}{}", wake_suffix(self.wake.as_ref()))
    }
    fn message_group(&self) -> String {
        self.job.message_group()
    }
}

/// A replay of the erasures after a restore ([`crate::tombstones`]), as the erasure queue
/// carries it: the job the staff API sends (part 0), or its continuation (part 1, 2, …) when an
/// invocation runs out of time, like an erasure's. Its own message group, one part after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub replay: crate::tombstones::ReplayRunId,
    #[serde(default, skip_serializing_if = "is_first")]
    pub part: u32,
}

impl ReplayJob {
    pub fn next(&self) -> ReplayJob {
        ReplayJob { replay: self.replay, part: self.part + 1 }
    }
}

impl Job for ReplayJob {
    const QUEUE: QueueName = QueueName::Erasure;
    fn deduplication_id(&self) -> String {
        format!("replay-{}-part{}", self.replay, self.part)
    }
    fn message_group(&self) -> String {
        format!("replay-{}", self.replay)
    }
}

/// Whatever the erasure queue carries: a replay (it names its run), or a job of one request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ErasureMessage {
    Replay(ReplayJob),
    Request(ErasurePart),
}

#[derive(Debug, thiserror::Error)]
#[error("SendMessage failed: {code}")]
pub struct QueueError {
    pub code: String,
}

/// The job queues port.
pub trait JobQueue: Send + Sync {
    fn enqueue<J: Job>(&self, job: &J) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// SQS FIFO queues: one message group per request (unless the job says otherwise), deduplicated
/// per job.
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

    /// The same, with a client of its own from `sdk` (for a worker that has no other use for SQS).
    pub fn with_sdk(
        sdk: &aws_config::SdkConfig,
        export_url: impl Into<String>,
        erasure_url: impl Into<String>,
    ) -> SqsJobQueue {
        SqsJobQueue::new(aws_sdk_sqs::Client::new(sdk), export_url, erasure_url)
    }

    fn url(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Export => &self.export_url,
            QueueName::Erasure => &self.erasure_url,
        }
    }
}

impl JobQueue for SqsJobQueue {
    async fn enqueue<J: Job>(&self, job: &J) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(|_| QueueError { code: "serialize".into() })?;
        self.client
            .send_message()
            .queue_url(self.url(J::QUEUE))
            .message_body(body)
            .message_group_id(job.message_group())
            .message_deduplication_id(job.deduplication_id())
            .send()
            .await
            .map_err(|err| QueueError { code: error_code(&err) })?;
        Ok(())
    }
}

/// Queues in memory, for flow tests: every message sent, in order, with FIFO deduplication.
#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<(QueueName, String, serde_json::Value)>>,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    /// The jobs sent to `J`'s queue, oldest first.
    pub fn jobs<J: Job>(&self) -> Vec<J> {
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter()
            .filter(|(queue, _, _)| *queue == J::QUEUE)
            .filter_map(|(_, _, body)| serde_json::from_value(body.clone()).ok())
            .collect()
    }
}

impl JobQueue for MemoryQueue {
    async fn enqueue<J: Job>(&self, job: &J) -> Result<(), QueueError> {
        let body = serde_json::to_value(job).map_err(|_| QueueError { code: "serialize".into() })?;
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let dedup = job.deduplication_id();
        if !sent.iter().any(|(queue, id, _)| *queue == J::QUEUE && *id == dedup) {
            sent.push((J::QUEUE, dedup, body));
        }
        Ok(())
    }
}

/// Runs `work` on the job in every message of an SQS batch and reports the messages whose job
/// failed (or could not be read) as failures, so the queue redelivers only those.
pub async fn each_job<J, E, F, Fut>(event: SqsEvent, mut work: F) -> SqsBatchResponse
where
    J: DeserializeOwned,
    E: std::fmt::Display,
    F: FnMut(J) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.unwrap_or_default();
        let job = message.body.as_deref().and_then(|body| serde_json::from_str::<J>(body).ok());
        let failure = match job {
            Some(job) => work(job).await.err().map(|err| err.to_string()),
            None => Some("the job message is not readable".to_owned()),
        };
        if let Some(error) = failure {
            tracing::error!(%error, message_id = %id, "job failed; the message will be retried");
            response.add_failure(id);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_part_is_a_message_of_its_own_in_a_group_of_its_own_and_no_part_is_the_job_dispatch_sent() {
        let job = ExportJob { request_id: RequestId::generate(), version: 2 };
        let whole: ExportPart = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(whole, ExportPart { job: job.clone(), part: None, wake: None });
        assert_eq!(whole.deduplication_id(), job.deduplication_id(), "the same message as dispatch's");
        assert_eq!(whole.message_group(), job.request_id.to_string());
        assert_eq!(serde_json::to_value(&whole).unwrap(), serde_json::to_value(&job).unwrap());
        let (one, two) = (ExportPart::of(&job, 1), ExportPart::of(&job, 2));
        assert_ne!(one.deduplication_id(), whole.deduplication_id());
        assert_ne!(one.deduplication_id(), two.deduplication_id());
        assert_eq!(
            one.deduplication_id(),
            ExportPart::of(&job, 1).deduplication_id(),
            "sent twice, one message"
        );
        assert_ne!(one.message_group(), two.message_group(), "parts run side by side");
        assert_ne!(one.message_group(), whole.message_group());
        let body = serde_json::to_value(&two).unwrap();
        assert_eq!(body["part"], 2);
        assert_eq!(serde_json::from_value::<ExportJob>(body).unwrap(), job, "still an export job");
    }

    #[test]
    fn each_wake_of_a_waiting_job_is_a_message_of_its_own_and_a_repeated_wake_is_not() {
        let job = ExportJob { request_id: RequestId::generate(), version: 4 };
        let wake = |count| Wake { source: "job_applications".into(), count };
        let first = ExportPart::woken(&job, wake(1));
        assert_ne!(first.deduplication_id(), job.deduplication_id());
        assert_eq!(first.deduplication_id(), ExportPart::woken(&job, wake(1)).deduplication_id());
        assert_ne!(first.deduplication_id(), ExportPart::woken(&job, wake(2)).deduplication_id());
        assert_eq!(first.message_group(), job.request_id.to_string(), "in the request's group");
        let erasure = ErasureJob { request_id: job.request_id, version: 4, change: DataChange::Erase };
        let woken = ErasurePart::woken(&erasure, wake(1));
        assert_ne!(woken.deduplication_id(), erasure.deduplication_id());
        assert_ne!(woken.next().deduplication_id(), woken.deduplication_id());
        let read: ErasurePart = serde_json::from_value(serde_json::to_value(&woken).unwrap()).unwrap();
        assert_eq!(read, woken);
    }

    #[test]
    fn the_erasure_queue_tells_a_replay_from_a_requests_job_and_a_replay_runs_in_a_group_of_its_own() {
        let job = ErasureJob { request_id: RequestId::generate(), version: 3, change: DataChange::Erase };
        let part = ErasurePart { job: job.clone(), part: 2, wake: None };
        let read: ErasureMessage = serde_json::from_value(serde_json::to_value(&part).unwrap()).unwrap();
        assert_eq!(read, ErasureMessage::Request(part));
        let replay = ReplayJob { replay: crate::tombstones::ReplayRunId::generate(), part: 0 };
        let body = serde_json::to_value(&replay).unwrap();
        assert_eq!(body, serde_json::json!({"replay": replay.replay.to_string()}));
        assert_eq!(
            serde_json::from_value::<ErasureMessage>(body).unwrap(),
            ErasureMessage::Replay(replay.clone())
        );
        assert_ne!(replay.deduplication_id(), replay.next().deduplication_id());
        assert_eq!(replay.message_group(), replay.next().message_group());
        assert_ne!(replay.message_group(), job.message_group());
        assert!(serde_json::from_str::<ErasureMessage>(r#"{"replay": "not-an-id"}"#).is_err());
    }

    #[test]
    fn a_continued_erasure_is_a_new_message_and_its_first_part_is_the_job_dispatch_sent() {
        let job = ErasureJob { request_id: RequestId::generate(), version: 3, change: DataChange::Erase };
        let first: ErasurePart = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(first, ErasurePart { job: job.clone(), part: 0, wake: None });
        assert_eq!(first.deduplication_id(), job.deduplication_id(), "the same message as dispatch's");
        let second = first.next();
        assert_ne!(second.deduplication_id(), first.deduplication_id());
        assert_eq!(second.deduplication_id(), first.next().deduplication_id(), "sent twice, one message");
        let body = serde_json::to_value(&second).unwrap();
        assert_eq!(body["part"], 1);
        assert_eq!(serde_json::from_value::<ErasureJob>(body).unwrap(), job, "still an erasure job");
    }
}
