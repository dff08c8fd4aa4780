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
    fn request_id(&self) -> RequestId;
    /// The same job sent twice is one message (FIFO deduplication): a redelivered stream
    /// record cannot start the work twice.
    fn deduplication_id(&self) -> String;
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
    fn request_id(&self) -> RequestId {
        self.request_id
    }
    fn deduplication_id(&self) -> String {
        format!("{}-export-v{}", self.request_id, self.version)
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
    fn request_id(&self) -> RequestId {
        self.request_id
    }
    fn deduplication_id(&self) -> String {
        format!("{}-{:?}-v{}", self.request_id, self.change, self.version)
    }
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
            .message_group_id(job.request_id().to_string())
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
