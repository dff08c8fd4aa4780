//! `reminders`: the daily sweep that keeps every legal clock visible. Run by EventBridge Scheduler
//! (locally by the pump's schedule tick, or `make sweep`).
//!
//! It reads only the sparse due-date index, never the table: pending requests older than the
//! reminder age, and verified or in-progress ones due within the digest window or overdue. Then:
//! - a requester who has not verified after `UNVERIFIED_REMINDER_DAYS` gets one reminder with a
//!   fresh link; after `UNVERIFIED_EXPIRY_DAYS` the request is closed as expired (audited; the
//!   transition deletes its verification data), as locked where wrong codes locked its links and
//!   no new link came after, else as timed out; `dispatch` then tells the person, once;
//! - a portability request whose third-party recipient was not confirmed by the date its
//!   confirmation mail gave (the sparse index's `OPEN#recipient_wait` partition) goes ahead
//!   without it (`Transition::LapseRecipient`, audited): `dispatch` queues the export, which goes
//!   to the requester only; a wait whose request moved on otherwise leaves the list;
//! - the privacy staff get one digest: overdue, due by the next business day, due within the
//!   window, and CCPA acknowledgements whose deadline is near;
//! - the number of overdue requests is published as a metric (CloudWatch Embedded Metric Format
//!   in the log), which the stack's alarm watches.
//!
//! - sources outside AWS that requests wait for (the sparse index's `OPEN#source_task`
//!   partition): a webhook still waiting is polled (its task is woken, and `dispatch` sends the
//!   waiting worker again, which asks it), one past its answer date alerts staff once (a
//!   `source_late` audit event, an error log line and the `LateSources` metric); the digest lists
//!   late sources and manual sources for staff to search, each once. A task whose request was
//!   closed meanwhile leaves the list.
//!
//! Every mail goes through the effect ledger, one entry per request and threshold (the digest
//! thresholds include the due date, so an extension re-arms them): a second sweep the same day,
//! or a rerun after a crash, sends nothing twice. An entry another run still holds is deferred,
//! and the sweep fails so that Lambda retries it once that claim has lapsed.

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use std::sync::Arc;

use privacy_shared::config::{Env, ReminderSettings};
pub use privacy_shared::config::{Metrics, SweepPolicy};
use privacy_shared::domain::{
    Actor, EmailAddress, Event, ExpiryReason, RequestRecord, Status, Transition, VerificationToken,
};
use privacy_shared::domain::{SourceTask, TaskChange, TaskState};
use privacy_shared::mail::templates::{
    Digest, DigestRow, DigestSection, EarlierRequest, SourceRow, SourceSection,
};
use privacy_shared::mail::{MailError, Mailer, SesMailer, send_guarded};
use privacy_shared::store::ledger::{Once, claim_all, once};
use privacy_shared::store::{
    Bound, Change, DueIndex, DynamoStore, EffectLedger, LiveToken, OpenQuery, OpenRequest, People, Requests,
    Secrets, SourceTasks, StoreError, TokenSlot, change_task,
};
use privacy_shared::store::{RecipientWait, RecipientWaits};
use privacy_shared::{Clock, ConfigError, Deps};
/// How long one run may hold a ledger entry: longer than a sweep takes (its timeout is 60 s).
const CLAIM_LEASE_SECONDS: i64 = 120;
const PAGE_SIZE: u32 = 200;
/// Business days before a CCPA acknowledgement deadline when the digest starts warning.
const ACKNOWLEDGEMENT_WARNING_BUSINESS_DAYS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    /// Some work is held by another run, or failed; a retry finishes it without repeating the rest.
    #[error("{0} item(s) left for a retry")]
    Incomplete(u32),
}

/// What Lambda records when a sweep fails; the message holds counts and error codes only.
impl From<SweepError> for lambda_runtime::Diagnostic {
    fn from(err: SweepError) -> Self {
        let error_type = match err {
            SweepError::Incomplete(_) => "SweepIncomplete",
            SweepError::Store(_) | SweepError::Mail(_) => "SweepFailed",
        };
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}

pub struct Sweeper<S, M> {
    pub deps: Deps<S, M>,
    pub staff: EmailAddress,
    pub policy: SweepPolicy,
    pub metrics: Option<Metrics>,
}

/// What one sweep did; returned to the invoker and logged (counts only, no personal data).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Items the index queries read (their `ScannedCount`): the cost of finding the work.
    pub index_items_read: u64,
    /// Requests read in full, only those a requester mail or an expiry needs.
    pub requests_read: u64,
    pub reminded: u32,
    pub expired: u32,
    pub digest_items: u32,
    pub overdue: u32,
    /// Held by another run, or failed: left for the retry.
    pub deferred: u32,
    /// Webhook sources asked again (their waiting workers woken).
    pub sources_polled: u32,
    /// Sources outside AWS found past their answer date for the first time (staff alerted).
    pub sources_late: u32,
    /// Third-party recipients not confirmed by their date: those exports go to the requester only.
    pub recipients_lapsed: u32,
}

impl Sweeper<DynamoStore, SesMailer> {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = ReminderSettings::load(&Env::process())?;
        let sdk = privacy_shared::deps::sdk_from_env().await;
        Ok(Sweeper::with_sdk(&sdk, settings, Arc::new(privacy_shared::SystemClock)))
    }

    pub fn with_sdk(sdk: &aws_config::SdkConfig, settings: ReminderSettings, clock: Arc<dyn Clock>) -> Self {
        Sweeper {
            deps: privacy_shared::AwsDeps::with_sdk(sdk, settings.core, clock),
            staff: settings.staff,
            policy: settings.policy,
            metrics: settings.metrics,
        }
    }
}

/// What the sweep touches: requests, their verification secrets, the ledger, the index (with the
/// waits for a recipient's confirmation), and the mail suppression of the people it reminds.
pub trait SweepStore:
    Requests + Secrets + EffectLedger + DueIndex + People + SourceTasks + RecipientWaits
{
}

impl<T: Requests + Secrets + EffectLedger + DueIndex + People + SourceTasks + RecipientWaits> SweepStore
    for T
{
}

/// The scheduler's event carries nothing the sweep needs: it works from the clock.
pub async fn handle<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, SweepError> {
    let report = sweep(sweeper).await?;
    tracing::info!(
        index_items_read = report.index_items_read,
        requests_read = report.requests_read,
        reminded = report.reminded,
        expired = report.expired,
        digest_items = report.digest_items,
        overdue = report.overdue,
        deferred = report.deferred,
        sources_polled = report.sources_polled,
        sources_late = report.sources_late,
        recipients_lapsed = report.recipients_lapsed,
        "sweep finished"
    );
    if let Some(metrics) = &sweeper.metrics {
        println!("{}", overdue_metric(metrics, sweeper.deps.clock.now(), report.overdue));
        println!("{}", late_sources_metric(metrics, sweeper.deps.clock.now(), report.sources_late));
    }
    if report.deferred > 0 {
        return Err(SweepError::Incomplete(report.deferred));
    }
    Ok(report)
}

/// One CloudWatch Embedded Metric Format record: `OverdueRequests`, by stack.
pub fn overdue_metric(metrics: &Metrics, at: DateTime<Utc>, overdue: u32) -> serde_json::Value {
    count_metric(metrics, at, "OverdueRequests", overdue)
}

/// One CloudWatch Embedded Metric Format record: `LateSources` (found late this sweep), by stack.
pub fn late_sources_metric(metrics: &Metrics, at: DateTime<Utc>, late: u32) -> serde_json::Value {
    count_metric(metrics, at, "LateSources", late)
}

fn count_metric(metrics: &Metrics, at: DateTime<Utc>, name: &str, count: u32) -> serde_json::Value {
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": metrics.namespace,
                "Dimensions": [["Stack"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "Stack": metrics.stack,
    });
    record[name] = serde_json::json!(count);
    record
}

/// What a verified or in-progress request due on `due_on` calls for on `today`, if anything.
pub fn due_section(
    calendar: &privacy_shared::domain::BusinessCalendar,
    today: NaiveDate,
    due_on: NaiveDate,
    window_days: u64,
) -> Option<DigestSection> {
    let next_business_day = calendar.add_business_days(today, 1);
    if due_on < today {
        Some(DigestSection::Overdue)
    } else if due_on <= next_business_day {
        Some(DigestSection::DueByNextBusinessDay)
    } else if due_on <= today + Days::new(window_days) {
        Some(DigestSection::DueSoon)
    } else {
        None
    }
}

/// The ledger key of a digest line: per section and per date, so a moved date counts afresh.
fn digest_key(section: DigestSection, request: &OpenRequest) -> String {
    let date = match section {
        DigestSection::AcknowledgementDue => request.acknowledge_by.unwrap_or(request.due_on),
        _ => request.due_on,
    };
    format!("digest#{}#{date}", section.as_str())
}

const REMINDER_KEY: &str = "reminder#verification";

pub async fn sweep<S: SweepStore, M: Mailer>(sweeper: &Sweeper<S, M>) -> Result<SweepReport, SweepError> {
    let deps = &sweeper.deps;
    let now = deps.clock.now();
    let calendar = &deps.config.calendar;
    let today = calendar.local_date(now);
    let mut report = SweepReport::default();
    let mut digest: Vec<(DigestSection, OpenRequest)> = Vec::new();

    // Pending requests old enough for a reminder (and, among them, those to close).
    let pending = read_all(
        deps,
        Status::PendingVerification,
        Bound::ReceivedBy(now - sweeper.policy.reminder_after),
        &mut report,
    )
    .await?;
    let acknowledgement_horizon = calendar.add_business_days(today, ACKNOWLEDGEMENT_WARNING_BUSINESS_DAYS);
    for request in pending {
        let outcome = if now - request.received_at >= sweeper.policy.expire_after {
            expire(sweeper, &request, &mut report).await
        } else {
            remind(sweeper, &request, &mut report).await
        };
        let acknowledged = match outcome {
            Ok(acknowledged) => acknowledged,
            Err(err) => {
                tracing::error!(request_id = %request.id, error = %err, "pending request left for the retry");
                report.deferred += 1;
                request.acknowledged_at.is_some()
            }
        };
        // No mail of ours has been delivered to this requester (sent is not enough: it may have
        // bounced): staff must confirm receipt another way.
        if !acknowledged && request.acknowledge_by.is_some_and(|by| by <= acknowledgement_horizon) {
            digest.push((DigestSection::AcknowledgementDue, request));
        }
    }

    // Verified and in-progress requests due within the window, or overdue.
    for status in [Status::Verified, Status::InProgress] {
        let bound = Bound::DueBy(today + Days::new(sweeper.policy.digest_window_days));
        for request in read_all(deps, status, bound, &mut report).await? {
            let Some(section) =
                due_section(calendar, today, request.due_on, sweeper.policy.digest_window_days)
            else {
                continue;
            };
            if section == DigestSection::Overdue {
                report.overdue += 1;
            }
            digest.push((section, request));
        }
    }
    lapse_recipients(sweeper, &mut report).await?;
    let sources = sweep_sources(sweeper, today, &mut report).await?;
    send_digest(sweeper, digest, sources, today, &mut report).await?;
    Ok(report)
}

/// The most lapsed recipient confirmations one sweep handles (the rest the next run).
const RECIPIENT_WAITS_PER_SWEEP: u32 = 1000;

/// Lets every portability request whose recipient was not confirmed by its date go ahead without
/// it: one conditional transition each (it takes the wait off the list and stops the confirmation
/// link in the same write), so a rerun finds nothing left to do. A wait whose request moved on
/// (confirmed, closed, or its recipient erased) just leaves the list.
async fn lapse_recipients<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let store = &sweeper.deps.store;
    let now = sweeper.deps.clock.now();
    let waits = store.lapsed_recipient_waits(now, RECIPIENT_WAITS_PER_SWEEP).await?;
    report.index_items_read += waits.len() as u64;
    for wait in waits {
        if let Err(err) = lapse(sweeper, &wait, report).await {
            tracing::error!(request_id = %wait.request_id, error = %err, "recipient wait left for the retry");
            report.deferred += 1;
        }
    }
    Ok(())
}

async fn lapse<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    wait: &RecipientWait,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let store = &sweeper.deps.store;
    report.requests_read += 1;
    let waiting =
        store.get(wait.request_id).await?.filter(|r| r.status == Status::Verified && r.awaits_recipient());
    let Some(record) = waiting else {
        return Ok(store.end_recipient_wait(wait.request_id).await?);
    };
    let change = Change::system(Transition::LapseRecipient, sweeper.deps.clock.now());
    match store.transition(&record, change).await {
        Ok(_) => {
            tracing::info!(request_id = %record.id, "recipient not confirmed in time; the export goes to the requester only");
            report.recipients_lapsed += 1;
            Ok(())
        }
        // Changed at this very moment (confirmed, or staff acted): the next run looks again, and
        // retires the wait if it is no longer awaited.
        Err(StoreError::Conflict) => {
            report.deferred += 1;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// The most waiting source tasks one sweep looks at (oldest answer date first).
const SOURCE_TASKS_PER_SWEEP: u32 = 1000;

/// Polls the webhooks requests wait for, alerts staff once about each source past its date, and
/// returns the digest's source lines. A task whose request is no longer open leaves the list.
async fn sweep_sources<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    today: NaiveDate,
    report: &mut SweepReport,
) -> Result<Vec<SourceRow>, SweepError> {
    let store = &sweeper.deps.store;
    let now = sweeper.deps.clock.now();
    let mut rows = Vec::new();
    for task in store.waiting_tasks(SOURCE_TASKS_PER_SWEEP).await? {
        report.requests_read += 1;
        let Some(request) = store.get(task.request_id).await?.filter(|r| r.status.is_open()) else {
            store.retire_task(&task).await?;
            continue;
        };
        let mut task = task;
        if task.is_late(today)
            && !task.late
            && let Some(marked) = change_task(store, &task, &TaskChange::MarkedLate).await?
        {
            let reason = format!("source={} operation={}", task.source, task.operation);
            store.record_event_because(&request, Event::SourceLate, now, Actor::System, Some(reason)).await?;
            tracing::error!(
                request_id = %request.id, source = %task.source, operation = %task.operation,
                answer_by = %task.answer_by, "a source outside AWS is late; staff alerted"
            );
            report.sources_late += 1;
            task = marked;
        }
        if let TaskState::Waiting { .. } = task.state
            && let Some(woken) = change_task(store, &task, &TaskChange::Wake).await?
        {
            report.sources_polled += 1;
            task = woken;
        }
        rows.extend(source_rows(&task, today));
    }
    Ok(rows)
}

/// The digest lines of a waiting task: a manual source for staff to search, and a late one.
fn source_rows(task: &SourceTask, today: NaiveDate) -> Vec<SourceRow> {
    let problem = match &task.state {
        TaskState::Waiting { problem } => problem.map(|p| p.as_str()),
        _ => None,
    };
    let row = |section| SourceRow {
        section,
        request_id: task.request_id,
        source: task.source.clone(),
        operation: task.operation.as_str(),
        answer_by: task.answer_by,
        problem,
    };
    let mut rows = Vec::new();
    if task.is_late(today) {
        rows.push(row(SourceSection::Late));
    }
    if task.state == TaskState::WithStaff {
        rows.push(row(SourceSection::WithStaff));
    }
    rows
}

/// A digest line, of a request or of a source it waits for.
enum Line {
    Request(DigestSection, OpenRequest),
    Source(SourceRow),
}

async fn read_all<S: SweepStore, M: Mailer>(
    deps: &Deps<S, M>,
    status: Status,
    bound: Bound,
    report: &mut SweepReport,
) -> Result<Vec<OpenRequest>, StoreError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let query = OpenQuery { status, until: Some(bound), limit: PAGE_SIZE, after };
        let page = deps.store.open_requests(&query).await?;
        report.index_items_read += page.items_read;
        all.extend(page.requests);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// The whole request, read only where a mail or an expiry needs it; none once it has left
/// pending verification (verified or closed since the index was read).
async fn still_pending<S: SweepStore, M: Mailer>(
    deps: &Deps<S, M>,
    request: &OpenRequest,
    report: &mut SweepReport,
) -> Result<Option<RequestRecord>, StoreError> {
    report.requests_read += 1;
    Ok(deps.store.get(request.id).await?.filter(|r| r.status == Status::PendingVerification))
}

/// Closes a request never verified. Returns true: a closed request needs no acknowledgement.
async fn expire<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    request: &OpenRequest,
    report: &mut SweepReport,
) -> Result<bool, SweepError> {
    let deps = &sweeper.deps;
    let Some(record) = still_pending(deps, request, report).await? else { return Ok(true) };
    // Locked by wrong codes, and no new link since (a reminder or a resubmission would have
    // opened the slot again): the person is told that, rather than that time ran out.
    let locked = deps.store.secret(record.id, TokenSlot::Requester).await?.is_some_and(|v| v.is_locked());
    let reason = if locked { ExpiryReason::TooManyAttempts } else { ExpiryReason::NotVerified };
    let change = Change::system(Transition::Expire(reason), deps.clock.now());
    match deps.store.transition(&record, change).await {
        Ok(_) => {
            tracing::info!(request_id = %record.id, reason = reason.as_str(), "unverified request expired");
            report.expired += 1;
            Ok(true)
        }
        // Verified (or closed) at this very moment: nothing to expire.
        Err(StoreError::Conflict) => Ok(true),
        Err(err) => Err(err.into()),
    }
}

/// Sends the one verification reminder. Returns whether a confirmation of receipt has reached the
/// requester by now: one was delivered (`mail-events` stamps the request when SES says so; this
/// reminder counts once it is delivered, not when it is sent).
async fn remind<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    request: &OpenRequest,
    report: &mut SweepReport,
) -> Result<bool, SweepError> {
    let deps = &sweeper.deps;
    let now = deps.clock.now();
    let acknowledged = request.acknowledged_at.is_some();
    let lease = Duration::seconds(CLAIM_LEASE_SECONDS);
    let work = send_reminder(sweeper, request, report);
    match once(&deps.store, request.id, REMINDER_KEY, now, lease, work).await? {
        Once::Performed(()) | Once::AlreadyDone => Ok(acknowledged),
        Once::Busy => {
            report.deferred += 1;
            Ok(acknowledged)
        }
    }
}

/// A fresh token (the first has long expired), valid until the request would close. Withheld
/// (and recorded) where the address bounced for good or complained.
async fn send_reminder<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    request: &OpenRequest,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let deps = &sweeper.deps;
    let Some(record) = still_pending(deps, request, report).await? else { return Ok(()) };
    let closes_at = record.received_at + sweeper.policy.expire_after;
    let token = VerificationToken::generate();
    // Added beside any link still in the mailbox; recreated if DynamoDB's TTL swept the first.
    let live = LiveToken { token_hash: token.hash(), expires_at: closes_at };
    if !deps.store.issue_token(record.id, TokenSlot::Requester, &live, deps.clock.now()).await? {
        return Ok(());
    }
    let closes_on = deps.config.calendar.local_date(closes_at);
    let email = deps.templates.reminder(&record, &token, closes_on, deps.config.status_page())?;
    let sent = send_guarded::<_, _, SweepError>(&deps.store, &deps.mailer, &record, &email, deps.clock.now());
    if sent.await?.is_none() {
        return Ok(());
    }
    let now = deps.clock.now();
    deps.store.record_event(&record, Event::Reminded, now, Actor::System).await?;
    tracing::info!(request_id = %record.id, "verification reminder sent");
    report.reminded += 1;
    Ok(())
}

/// The person's earlier requests of the same kind, for the digest to flag a repetition. The
/// index holds no address to find them by, so the request itself is read. Best effort: a line
/// without the flag beats no digest, so a failed read is logged and shows none.
async fn earlier_of<S: SweepStore, M: Mailer>(
    deps: &Deps<S, M>,
    id: privacy_shared::domain::RequestId,
) -> Vec<EarlierRequest<'static>> {
    let earlier = async {
        let Some(record) = deps.store.get(id).await? else { return Ok(Vec::new()) };
        privacy_shared::store::earlier_of_kind(&deps.store, &record).await
    };
    match earlier.await {
        Ok(earlier) => earlier
            .iter()
            .map(|past| EarlierRequest {
                id: past.id,
                received_on: past.received_on,
                status: past.status.as_str(),
            })
            .collect(),
        Err(err) => {
            tracing::warn!(request_id = %id, error = %err, "earlier requests not read for the digest");
            Vec::new()
        }
    }
}

/// One digest for every line not reported before; the lines are claimed first and finished once
/// the mail is accepted, or released if it is not.
async fn send_digest<S: SweepStore, M: Mailer>(
    sweeper: &Sweeper<S, M>,
    candidates: Vec<(DigestSection, OpenRequest)>,
    sources: Vec<SourceRow>,
    today: NaiveDate,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let deps = &sweeper.deps;
    let now = deps.clock.now();
    let requests = candidates.into_iter().map(|(section, request)| {
        (request.id, digest_key(section, &request), Line::Request(section, request))
    });
    // Each source line once: per task and section (a late line per answer date).
    let sources = sources.into_iter().map(|row| {
        let key =
            format!("digest#{}#{}#{}#{}", row.section.as_str(), row.operation, row.source, row.answer_by);
        (row.request_id, key, Line::Source(row))
    });
    let mut claims =
        claim_all(&deps.store, requests.chain(sources), now, Duration::seconds(CLAIM_LEASE_SECONDS)).await?;
    report.deferred += claims.busy as u32;
    if claims.acquired.is_empty() {
        return Ok(());
    }
    claims.acquired.sort_by_key(|(_, _, line)| match line {
        Line::Request(section, request) => (0, *section as u8, request.due_on, request.id.to_string()),
        Line::Source(row) => (1, row.section as u8, row.answer_by, row.request_id.to_string()),
    });
    let source_rows: Vec<SourceRow> = claims
        .acquired
        .iter()
        .filter_map(|(_, _, line)| match line {
            Line::Source(row) => Some(row.clone()),
            Line::Request(..) => None,
        })
        .collect();
    let mut rows: Vec<(DigestSection, DigestRow)> = Vec::new();
    for (_, _, line) in &claims.acquired {
        let Line::Request(section, r) = line else { continue };
        let row = DigestRow {
            request_id: r.id,
            kind: r.kind,
            regime: r.regime,
            status: r.status,
            due_on: r.due_on,
            original_due_on: r.original_due_on,
            acknowledge_by: r.acknowledge_by,
            earlier: earlier_of(deps, r.id).await,
        };
        rows.push((*section, row));
    }
    let digest = Digest {
        to: &sweeper.staff,
        date: today,
        zone: deps.config.calendar.zone_name(),
        window_days: sweeper.policy.digest_window_days,
        rows: &rows,
        sources: &source_rows,
    };
    let sent = match deps.templates.digest(&digest) {
        Ok(email) => deps.mailer.send(&email).await,
        Err(err) => Err(err),
    };
    claims.settle(&deps.store, sent.map_err(SweepError::from)).await?;
    report.digest_items += claims.acquired.len() as u32;
    tracing::info!(items = claims.acquired.len(), "staff digest sent");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy_shared::domain::BusinessCalendar;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn sections_follow_the_days_left() {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "2026-12-25").unwrap();
        let today = d("2026-12-02"); // a Wednesday
        assert_eq!(due_section(&calendar, today, d("2026-12-01"), 7), Some(DigestSection::Overdue));
        assert_eq!(
            due_section(&calendar, today, d("2026-12-02"), 7),
            Some(DigestSection::DueByNextBusinessDay)
        );
        assert_eq!(
            due_section(&calendar, today, d("2026-12-03"), 7),
            Some(DigestSection::DueByNextBusinessDay)
        );
        assert_eq!(due_section(&calendar, today, d("2026-12-04"), 7), Some(DigestSection::DueSoon));
        assert_eq!(due_section(&calendar, today, d("2026-12-09"), 7), Some(DigestSection::DueSoon));
        assert_eq!(due_section(&calendar, today, d("2026-12-10"), 7), None);
    }

    #[test]
    fn on_a_friday_the_next_business_day_is_monday() {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let friday = d("2026-12-04");
        assert_eq!(
            due_section(&calendar, friday, d("2026-12-07"), 7),
            Some(DigestSection::DueByNextBusinessDay)
        );
        assert_eq!(due_section(&calendar, friday, d("2026-12-08"), 7), Some(DigestSection::DueSoon));
    }

    #[test]
    fn the_overdue_metric_is_embedded_metric_format() {
        let metrics = Metrics { namespace: "PrivacyRequests".into(), stack: "prod".into() };
        let at = DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let line = overdue_metric(&metrics, at, 3);
        assert_eq!(line["OverdueRequests"], 3);
        assert_eq!(line["Stack"], "prod");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "PrivacyRequests");
        assert_eq!(directive["Dimensions"][0][0], "Stack");
        assert_eq!(directive["Metrics"][0]["Name"], "OverdueRequests");
        assert_eq!(line["_aws"]["Timestamp"], 1_795_860_000_000_i64);
        let late = late_sources_metric(&metrics, at, 2);
        assert_eq!(late["LateSources"], 2);
        assert_eq!(late["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "LateSources");
        assert!(late.get("OverdueRequests").is_none());
    }
}
