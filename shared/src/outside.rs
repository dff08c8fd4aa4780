//! Asking the data map's sources outside AWS (webhooks, and staff for manual sources) on behalf
//! of a worker: the export (access) and the erasure. The worker opens one [`SourceTask`] per
//! source, asks every webhook still waiting, stages what an access answer holds in the export
//! bucket, and returns the tasks: when any is unanswered, it ends its invocation with the request
//! still in progress, and is sent again when a task is woken (a callback, staff answering, the
//! sweep's poll; see `dispatch`). Nothing holds a Lambda while a source takes its time.
//!
//! An answer is recorded only whole: a webhook's pages are staged one by one, and the task becomes
//! `collected` only after the last one; a failure on the way leaves the task waiting (with the
//! problem, for staff) and the next attempt stages from the first page again. Every step is in
//! the request's audit trail (`source_asked`, `source_answered`, `source_failed`), with the source
//! and the problem's code only.

use aws_sdk_s3::types::ServerSideEncryption;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::datamap::{DataMap, Location, Source};
use crate::domain::{
    Actor, Event, JobId, RequestRecord, SourceOperation, SourceTask, TaskChange, TaskProblem, TaskState,
    answer_by,
};
use crate::sources::Person;
use crate::store::{Requests, SourceTasks, StoreError, change_task};
use crate::webhook::{Answer, Call, Endpoints, MAX_PAGES, Subject};

#[derive(Debug, thiserror::Error)]
pub enum OutsideError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("staging failed: {operation}: {code}")]
    Staging { operation: &'static str, code: String },
}

/// Where access answers wait for the export: `staging/<request id>/<source>/` in the export
/// bucket, encrypted as exports are. The export deletes a request's staging once it completes;
/// the bucket's lifecycle rule removes what an abandoned request left.
#[derive(Clone, Debug)]
pub struct Staging {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub kms_key_id: Option<String>,
}

pub fn staging_prefix(request: crate::domain::RequestId) -> String {
    format!("staging/{request}/")
}

pub fn page_key(request: crate::domain::RequestId, source: &str, number: u32) -> String {
    format!("{}{source}/page-{number:05}.json", staging_prefix(request))
}

/// Where a file staff attach for a manual source is uploaded.
pub fn file_key(request: crate::domain::RequestId, source: &str, name: &str) -> String {
    format!("{}{source}/files/{name}", staging_prefix(request))
}

impl Staging {
    async fn put_page(&self, key: &str, records: &[Map<String, Value>]) -> Result<(), OutsideError> {
        let body = serde_json::to_vec(records)
            .map_err(|_| OutsideError::Staging { operation: "serialize", code: "json".into() })?;
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into());
        let put = match &self.kms_key_id {
            Some(kms) => put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms),
            None => put.server_side_encryption(ServerSideEncryption::Aes256),
        };
        put.send().await.map_err(|e| OutsideError::Staging {
            operation: "PutObject",
            code: crate::aws::error_code(&e),
        })?;
        Ok(())
    }

    /// The records of one staged page.
    pub async fn page(&self, key: &str) -> Result<Vec<Value>, OutsideError> {
        let got = self.s3.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            OutsideError::Staging { operation: "GetObject", code: crate::aws::error_code(&e) }
        })?;
        let bytes = got
            .body
            .collect()
            .await
            .map_err(|_| OutsideError::Staging { operation: "GetObject", code: "body".into() })?
            .into_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|_| OutsideError::Staging { operation: "read", code: "json".into() })
    }

    /// Deletes everything staged for the request (every version).
    pub async fn clear(&self, request: crate::domain::RequestId) -> Result<u64, OutsideError> {
        crate::sources::delete_all_versions(&self.s3, &self.bucket, &staging_prefix(request))
            .await
            .map_err(|e| OutsideError::Staging { operation: "delete", code: e.to_string() })
    }
}

/// The worker's view of the sources outside AWS: how it calls webhooks, and the callback URL it
/// gives them (`{PUBLIC_BASE_URL}/sources/{source}/callback`; none: the sweep polls).
pub struct Outside<E> {
    pub endpoints: E,
    pub callback_base: Option<String>,
}

impl<E> Outside<E> {
    fn callback_url(&self, source: &Source) -> Option<String> {
        match &source.location {
            Location::Webhook { auth: crate::datamap::WebhookAuth::Hmac { .. }, .. } => self
                .callback_base
                .as_ref()
                .map(|base| format!("{}/sources/{}/callback", base.trim_end_matches('/'), source.id)),
            _ => None,
        }
    }
}

fn reason(source: &str, operation: SourceOperation, problem: Option<TaskProblem>) -> String {
    match problem {
        Some(p) => format!("source={source} operation={operation} problem={}", p.as_str()),
        None => format!("source={source} operation={operation}"),
    }
}

/// What a worker asks the sources outside AWS for: whose data (`person`), for which request and
/// operation, from when (`since`: the CCPA window of an access answer), at `now`.
pub struct Asking<'a> {
    pub request: &'a RequestRecord,
    pub operation: SourceOperation,
    pub person: &'a Person,
    pub since: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Opens the request's task for every source outside AWS and asks each webhook still waiting;
/// returns every task as it now stands.
pub async fn ask_all<S: Requests + SourceTasks, E: Endpoints>(
    store: &S,
    outside: &Outside<E>,
    staging: &Staging,
    map: &DataMap,
    asking: Asking<'_>,
) -> Result<Vec<SourceTask>, OutsideError> {
    let Asking { request, operation, person, since, now } = asking;
    let mut tasks = Vec::new();
    for source in map.sources().iter().filter(|s| s.is_external()) {
        let task = open(store, request, operation, source, now).await?;
        let task = match (&source.location, &task.state) {
            (Location::Webhook { .. }, TaskState::Waiting { .. }) => {
                ask(store, outside, staging, source, request, task, person, since, now).await?
            }
            _ => task,
        };
        tasks.push(task);
    }
    Ok(tasks)
}

/// The request's task for the source, opened (and audited) the first time.
async fn open<S: Requests + SourceTasks>(
    store: &S,
    request: &RequestRecord,
    operation: SourceOperation,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<SourceTask, OutsideError> {
    if let Some(task) = store.task(request.id, operation, &source.id).await? {
        return Ok(task);
    }
    let state = match source.location {
        Location::Manual { .. } => TaskState::WithStaff,
        _ => TaskState::Waiting { problem: None },
    };
    let task = SourceTask {
        request_id: request.id,
        operation,
        source: source.id.clone(),
        answer_by: answer_by(request.due_on, now.date_naive()),
        opened_at: now,
        state,
        version: 1,
        wakes: 0,
        attempts: 0,
        late: false,
    };
    let stored = store.open_task(&task).await?;
    if stored == task {
        store
            .record_event_because(
                request,
                Event::SourceAsked,
                now,
                Actor::System,
                Some(reason(&source.id, operation, None)),
            )
            .await?;
    }
    Ok(stored)
}

/// Asks a waiting webhook once (its pages, or its receipt) and records what came of it.
#[allow(clippy::too_many_arguments)]
async fn ask<S: Requests + SourceTasks, E: Endpoints>(
    store: &S,
    outside: &Outside<E>,
    staging: &Staging,
    source: &Source,
    request: &RequestRecord,
    task: SourceTask,
    person: &Person,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<SourceTask, OutsideError> {
    let job = JobId { request_id: request.id, operation: task.operation, source: source.id.clone() };
    let subject = Subject { email: person.email.normalized().to_owned(), user_id: person.user_id.clone() };
    let callback = outside.callback_url(source);
    let result = match task.operation {
        SourceOperation::Access => {
            collect(outside, staging, source, request, &job, subject, since, callback).await?
        }
        SourceOperation::Erasure => {
            let call = Call::erasure(&job, subject, callback);
            outside.endpoints.erase(source, &call).await.map(|answer| match answer {
                Answer::Now(receipt) => Some(TaskChange::Erased(receipt)),
                Answer::Later => None,
            })
        }
    };
    let change = match result {
        Ok(Some(answer)) => answer,
        Ok(None) => TaskChange::StillWaiting(None),
        Err(problem) => TaskChange::StillWaiting(Some(problem)),
    };
    let Some(next) = change_task(store, &task, &change).await? else {
        // Answered meanwhile by another delivery: that answer stands.
        return Ok(store.task(task.request_id, task.operation, &task.source).await?.unwrap_or(task));
    };
    match &change {
        TaskChange::Collected { .. } | TaskChange::Erased(_) => {
            tracing::info!(request_id = %request.id, source = %source.id, operation = %task.operation, "source answered");
            store
                .record_event_because(
                    request,
                    Event::SourceAnswered,
                    now,
                    Actor::System,
                    Some(reason(&source.id, task.operation, None)),
                )
                .await?;
        }
        TaskChange::StillWaiting(Some(problem)) => {
            tracing::error!(
                request_id = %request.id, source = %source.id, operation = %task.operation, problem = problem.as_str(),
                "source did not answer as the contract says; the request waits, staff see why"
            );
            // Once per problem in a row: a source that keeps failing the same way is one line.
            let repeated = matches!(task.state, TaskState::Waiting { problem: Some(p) } if p == *problem);
            if !repeated {
                store
                    .record_event_because(
                        request,
                        Event::SourceFailed,
                        now,
                        Actor::System,
                        Some(reason(&source.id, task.operation, Some(*problem))),
                    )
                    .await?;
            }
        }
        _ => tracing::info!(request_id = %request.id, source = %source.id, "source answers later"),
    }
    Ok(next)
}

/// Reads every page of the person's records from the webhook into the staging area: the change
/// to record (collected, or `None` for "later"), or the problem that stopped it.
#[allow(clippy::too_many_arguments)]
async fn collect<E: Endpoints>(
    outside: &Outside<E>,
    staging: &Staging,
    source: &Source,
    request: &RequestRecord,
    job: &JobId,
    subject: Subject,
    since: Option<DateTime<Utc>>,
    callback: Option<String>,
) -> Result<Result<Option<TaskChange>, TaskProblem>, OutsideError> {
    let mut cursor = None;
    let mut records = 0u64;
    let mut pages = 0u32;
    loop {
        let call = Call::access(job, subject.clone(), since, cursor.take(), callback.clone());
        let page = match outside.endpoints.access_page(source, &call).await {
            Ok(Answer::Now(page)) => page,
            // A later answer is a whole new reading: what was staged so far is written over.
            Ok(Answer::Later) => return Ok(Ok(None)),
            Err(problem) => return Ok(Err(problem)),
        };
        if pages >= MAX_PAGES {
            return Ok(Err(TaskProblem::TooLarge));
        }
        pages += 1;
        records += page.records.len() as u64;
        staging.put_page(&page_key(request.id, &source.id, pages), &page.records).await?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(Ok(Some(TaskChange::Collected { records, pages, files: Vec::new() }))),
        }
    }
}

/// Whether every task is answered.
pub fn all_answered(tasks: &[SourceTask]) -> bool {
    tasks.iter().all(|t| t.state.is_answered())
}
