//! What a request waits for from a source outside AWS (a webhook, or staff for a manual source):
//! one task per request, operation and source, kept in the table so that the worker that asked
//! can end its invocation and be woken again (by the endpoint's callback, by staff answering, or
//! by the daily sweep's poll) instead of holding a Lambda busy for days.
//!
//! A task is answered once: its answer (the records it staged, or its erasure receipt) is final,
//! and a later callback or answer of the same task changes nothing. What can happen to a task is
//! one enum ([`TaskChange`]); [`SourceTask::apply`] refuses what its state does not allow.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::{ErasedSource, RequestId};

/// What the request asks of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOperation {
    /// The person's records, for an access or portability request.
    Access,
    /// Erase the person's records, for a deletion request.
    Erasure,
}

impl SourceOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceOperation::Access => "access",
            SourceOperation::Erasure => "erasure",
        }
    }

    pub fn parse(text: &str) -> Option<SourceOperation> {
        match text {
            "access" => Some(SourceOperation::Access),
            "erasure" => Some(SourceOperation::Erasure),
            _ => None,
        }
    }
}

impl fmt::Display for SourceOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The task's name outside the system: `<request id>.<operation>.<source id>`. It is the
/// idempotency key of every call for the task (the endpoint answers the same job the same way)
/// and what a callback names. It holds no personal data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobId {
    pub request_id: RequestId,
    pub operation: SourceOperation,
    pub source: String,
}

impl JobId {
    /// Reads a job id as an endpoint sends it back; anything else is `None`.
    pub fn parse(text: &str) -> Option<JobId> {
        let mut parts = text.splitn(3, '.');
        let request_id = parts.next()?.parse().ok()?;
        let operation = SourceOperation::parse(parts.next()?)?;
        let source = parts.next()?;
        let valid = !source.is_empty()
            && source.len() <= 64
            && source.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid.then(|| JobId { request_id, operation, source: source.to_owned() })
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.request_id, self.operation, self.source)
    }
}

/// Why the last attempt to get a webhook's answer failed. Codes only: never a body or a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskProblem {
    /// No answer within the time allowed (after the retries).
    Timeout,
    /// The endpoint could not be reached, or kept answering 5xx or 429.
    Unavailable,
    /// It answered something the contract does not allow (not JSON, a wrong shape, a status
    /// the contract does not name).
    BadAnswer,
    /// It answered more than the contract allows (a page over its size, too many records or
    /// pages): nothing of it is kept.
    TooLarge,
    /// It refused the call (401 or 403): the signing secret or the role is wrong.
    Refused,
    /// The signing secret could not be read.
    NoSecret,
}

impl TaskProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskProblem::Timeout => "timeout",
            TaskProblem::Unavailable => "unavailable",
            TaskProblem::BadAnswer => "bad_answer",
            TaskProblem::TooLarge => "too_large",
            TaskProblem::Refused => "refused",
            TaskProblem::NoSecret => "no_secret",
        }
    }

    /// A problem the endpoint's owners must fix (a retry meets it again): staff are alerted at
    /// once, not only when the task is late.
    pub fn needs_people(self) -> bool {
        matches!(
            self,
            TaskProblem::BadAnswer | TaskProblem::TooLarge | TaskProblem::Refused | TaskProblem::NoSecret
        )
    }
}

/// A file staff attached for a manual source, staged in the export bucket until the export
/// takes it into the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// The file's name in the archive (`files/<source>/<name>`).
    pub name: String,
    /// Its key in the export bucket, under `staging/<request id>/<source>/`.
    pub key: String,
    pub size: u64,
    pub content_type: String,
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// A webhook was asked and has not answered yet: it said it is working on it (202), or the
    /// last attempt failed (`problem`). Woken by its callback, or polled by the daily sweep.
    Waiting {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        problem: Option<TaskProblem>,
    },
    /// A manual source: staff have to look.
    WithStaff,
    /// The person's records are staged: `pages` pages of records from a webhook, or the files
    /// staff attached (neither, when nothing was found).
    Collected {
        records: u64,
        pages: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<StagedFile>,
    },
    /// The source erased the person, with its receipt.
    Erased { receipt: ErasedSource },
}

impl TaskState {
    pub fn is_answered(&self) -> bool {
        matches!(self, TaskState::Collected { .. } | TaskState::Erased { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Waiting { .. } => "waiting",
            TaskState::WithStaff => "with_staff",
            TaskState::Collected { .. } => "collected",
            TaskState::Erased { .. } => "erased",
        }
    }
}

/// One request's wait for one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTask {
    pub request_id: RequestId,
    pub operation: SourceOperation,
    pub source: String,
    /// By when the source should have answered: a few days before the request is due, so
    /// staff have time to chase it. Past it, staff are alerted once and the digest shows it late.
    pub answer_by: NaiveDate,
    pub opened_at: DateTime<Utc>,
    pub state: TaskState,
    /// Counts every write, for the conditional update that keeps two writers from both winning.
    pub version: u32,
    /// Counts the times the worker was asked to look again (a callback, a poll, an answer: staff
    /// answer outside the worker, so an answer is news for it): each new count is one job for
    /// the worker, sent once through the stream. A job that finds nothing new ends at once.
    pub wakes: u32,
    /// Calls made to the endpoint, for the staff's view.
    #[serde(default)]
    pub attempts: u32,
    /// Staff were alerted that the source is late (once).
    #[serde(default)]
    pub late: bool,
}

/// A change of a task; each is one conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskChange {
    /// A call to the endpoint ended without the answer: accepted for later (`None`), or failed.
    StillWaiting(Option<TaskProblem>),
    /// The endpoint (or staff) answered the access: the records are staged.
    Collected { records: u64, pages: u32, files: Vec<StagedFile> },
    /// The endpoint (or staff) erased, with the receipt.
    Erased(ErasedSource),
    /// Look again: the endpoint called back, the sweep polls, or staff answered.
    Wake,
    /// The answer is late and staff were alerted.
    MarkedLate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskChangeError {
    #[error("the source has answered already")]
    Answered,
    #[error("the answer is for the other operation")]
    WrongOperation,
    #[error("only staff answer a manual source, and only an endpoint a webhook")]
    WrongSourceKind,
}

impl SourceTask {
    /// The task after `change`, at the next version; an answered task takes no further answer
    /// and no wake (a second callback changes nothing).
    pub fn apply(&self, change: &TaskChange) -> Result<SourceTask, TaskChangeError> {
        let mut next = self.clone();
        next.version += 1;
        match change {
            TaskChange::StillWaiting(problem) => match &self.state {
                TaskState::Waiting { .. } => {
                    next.state = TaskState::Waiting { problem: *problem };
                    next.attempts += 1;
                }
                TaskState::WithStaff => return Err(TaskChangeError::WrongSourceKind),
                _ => return Err(TaskChangeError::Answered),
            },
            TaskChange::Collected { records, pages, files } => {
                if self.state.is_answered() {
                    return Err(TaskChangeError::Answered);
                }
                if self.operation != SourceOperation::Access {
                    return Err(TaskChangeError::WrongOperation);
                }
                next.state = TaskState::Collected { records: *records, pages: *pages, files: files.clone() };
                next.wakes += 1;
                next.attempts += u32::from(self.asks_an_endpoint());
            }
            TaskChange::Erased(receipt) => {
                if self.state.is_answered() {
                    return Err(TaskChangeError::Answered);
                }
                if self.operation != SourceOperation::Erasure {
                    return Err(TaskChangeError::WrongOperation);
                }
                next.state = TaskState::Erased { receipt: receipt.clone() };
                next.wakes += 1;
                next.attempts += u32::from(self.asks_an_endpoint());
            }
            TaskChange::Wake => {
                if self.state.is_answered() {
                    return Err(TaskChangeError::Answered);
                }
                next.wakes += 1;
            }
            TaskChange::MarkedLate => {
                if self.state.is_answered() {
                    return Err(TaskChangeError::Answered);
                }
                next.late = true;
            }
        }
        Ok(next)
    }

    /// Whether answering it is a call to an endpoint (a webhook's task), which counts an attempt.
    fn asks_an_endpoint(&self) -> bool {
        matches!(self.state, TaskState::Waiting { .. })
    }

    pub fn job_id(&self) -> JobId {
        JobId { request_id: self.request_id, operation: self.operation, source: self.source.clone() }
    }

    /// Whether the task is past its answer date on `today` and unanswered.
    pub fn is_late(&self, today: NaiveDate) -> bool {
        !self.state.is_answered() && today > self.answer_by
    }
}

/// How many days before the request's due date a source should have answered.
pub const ANSWER_MARGIN_DAYS: u64 = 5;

/// When a source asked on `today` for a request due on `due_on` should have answered: the
/// margin before the due date, but never before tomorrow (a request due within the margin still
/// gives the source a day).
pub fn answer_by(due_on: NaiveDate, today: NaiveDate) -> NaiveDate {
    let by = due_on.checked_sub_days(chrono::Days::new(ANSWER_MARGIN_DAYS)).unwrap_or(due_on);
    by.max(today.succ_opt().unwrap_or(today))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(operation: SourceOperation, state: TaskState) -> SourceTask {
        SourceTask {
            request_id: RequestId::generate(),
            operation,
            source: "job_applications".into(),
            answer_by: NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
            opened_at: Utc::now(),
            state,
            version: 1,
            wakes: 0,
            attempts: 1,
            late: false,
        }
    }

    fn receipt() -> ErasedSource {
        ErasedSource {
            source: "job_applications".into(),
            description: "Job applications".into(),
            categories: vec!["job_application".into()],
            deleted: 2,
            anonymised: 0,
            kept_because: None,
        }
    }

    #[test]
    fn a_job_id_reads_back_exactly_and_nothing_else_reads() {
        let id = task(SourceOperation::Erasure, TaskState::WithStaff).job_id();
        assert_eq!(JobId::parse(&id.to_string()), Some(id.clone()));
        let request = id.request_id;
        for bad in [
            String::new(),
            format!("{request}"),
            format!("{request}.access"),
            format!("{request}.access."),
            format!("{request}.read.job_applications"),
            format!("{request}.access.Job"),
            format!("{request}.access.a/b"),
            "not-a-request.access.job_applications".to_owned(),
            format!("{request}.access.{}", "a".repeat(65)),
        ] {
            assert_eq!(JobId::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn an_answered_task_takes_no_second_answer_and_no_wake() {
        let waiting = task(SourceOperation::Erasure, TaskState::Waiting { problem: None });
        let erased = waiting.apply(&TaskChange::Erased(receipt())).unwrap();
        assert_eq!((erased.version, erased.wakes), (2, 1), "an answer wakes the waiting worker");
        for change in [
            TaskChange::Erased(receipt()),
            TaskChange::Wake,
            TaskChange::MarkedLate,
            TaskChange::StillWaiting(None),
        ] {
            assert_eq!(erased.apply(&change), Err(TaskChangeError::Answered), "{change:?}");
        }
    }

    #[test]
    fn an_answer_must_be_for_the_tasks_operation() {
        let access = task(SourceOperation::Access, TaskState::WithStaff);
        assert_eq!(access.apply(&TaskChange::Erased(receipt())), Err(TaskChangeError::WrongOperation));
        let collected = access.apply(&TaskChange::Collected { records: 0, pages: 0, files: vec![] }).unwrap();
        assert!(collected.state.is_answered());
        assert_eq!(collected.attempts, access.attempts, "staff's answer is no call to an endpoint");
        let webhook = task(SourceOperation::Access, TaskState::Waiting { problem: None });
        let answered = webhook.apply(&TaskChange::Collected { records: 2, pages: 2, files: vec![] }).unwrap();
        assert_eq!(answered.attempts, webhook.attempts + 1, "the endpoint's answer was a call");
        let erasure = task(SourceOperation::Erasure, TaskState::WithStaff);
        assert_eq!(
            erasure.apply(&TaskChange::Collected { records: 1, pages: 1, files: vec![] }),
            Err(TaskChangeError::WrongOperation)
        );
    }

    #[test]
    fn each_wake_counts_once_and_a_failed_call_counts_an_attempt_but_not_a_wake() {
        let waiting = task(SourceOperation::Access, TaskState::Waiting { problem: None });
        let woken = waiting.apply(&TaskChange::Wake).unwrap().apply(&TaskChange::Wake).unwrap();
        assert_eq!((woken.wakes, woken.version), (2, 3));
        let failed = woken.apply(&TaskChange::StillWaiting(Some(TaskProblem::Timeout))).unwrap();
        assert_eq!((failed.wakes, failed.attempts), (2, 2));
        assert_eq!(failed.state, TaskState::Waiting { problem: Some(TaskProblem::Timeout) });
        let manual = task(SourceOperation::Access, TaskState::WithStaff);
        assert_eq!(manual.apply(&TaskChange::StillWaiting(None)), Err(TaskChangeError::WrongSourceKind));
    }

    #[test]
    fn a_source_answers_some_days_before_the_request_is_due_but_never_before_tomorrow() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        assert_eq!(answer_by(day(31), day(3)), day(26));
        assert_eq!(answer_by(day(6), day(3)), day(4), "due within the margin: tomorrow");
        assert_eq!(answer_by(day(3), day(3)), day(4));
        let t = task(SourceOperation::Access, TaskState::WithStaff);
        assert!(!t.is_late(day(20)) && t.is_late(day(21)));
        let answered = t.apply(&TaskChange::Collected { records: 0, pages: 0, files: vec![] }).unwrap();
        assert!(!answered.is_late(day(31)), "an answered task is never late");
    }
}
