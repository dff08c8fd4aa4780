//! The store port, by item family: each trait is one kind of thing the table keeps, so a
//! handler's bounds say what it touches. [`RequestStore`] is all of them. There is one AWS
//! implementation ([`DynamoStore`]) and one in memory ([`MemoryStore`]) for fast flow tests;
//! what only DynamoDB can show (conditions, transactions, races, the index) is tested against the
//! emulator, and the same contract tests run against both.

mod dynamo;
pub mod ledger;
mod memory;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::future::Future;

use crate::budget::BudgetCharge;
use crate::domain::{
    Actor, AuditEvent, ComplianceRecord, ErasedSource, Event, Language, Regime, RequestId, RequestKind,
    RequestRecord, SourceOperation, SourceTask, Status, SubjectKey, TokenHash, Transition, TransitionError,
};

pub use dynamo::{DUE_INDEX, DynamoStore, record_from_image, task_from_image};
pub use memory::MemoryStore;

/// How many links of one slot work at once: a resubmission or a reminder adds a link without
/// killing the ones already in the mailbox (each still single use; the oldest goes first).
pub const MAX_LIVE_TOKENS: usize = 3;

/// One link that works: the hash of its token and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveToken {
    pub token_hash: TokenHash,
    pub expires_at: DateTime<Utc>,
}

/// The one-time secrets of one slot of a request, as stored: the links that still work, the
/// wrong tries since they were issued, and when wrong tries last locked them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    pub tokens: Vec<LiveToken>,
    pub wrong_attempts: u32,
    pub locked_at: Option<DateTime<Utc>>,
}

impl Verification {
    pub fn new(token: LiveToken) -> Verification {
        Verification { tokens: vec![token], ..Verification::default() }
    }

    /// Whether `presented` is one of the live tokens and still valid at `now`. Every token is
    /// compared (in constant time) and every expiry checked whatever the others say: the timing
    /// of an answer shows neither which nor whether.
    pub fn accepts(&self, presented: &TokenHash, now: DateTime<Utc>) -> bool {
        self.tokens.iter().fold(false, |accepted, token| {
            let matches = token.token_hash.matches(presented);
            let fresh = now < token.expires_at;
            accepted | (matches & fresh)
        })
    }

    /// Wrong tries locked every link and none was issued since: only a new link helps.
    pub fn is_locked(&self) -> bool {
        self.tokens.is_empty() && self.locked_at.is_some()
    }

    /// The set after a new link: expired links dropped, and at most [`MAX_LIVE_TOKENS`] kept,
    /// the one closest to expiry leaving first (the store keeps no order of issue, and links of
    /// one lifetime expire in the order they were issued).
    pub fn with_token(&self, token: LiveToken, now: DateTime<Utc>) -> Verification {
        let mut tokens: Vec<LiveToken> = self.tokens.iter().filter(|t| now < t.expires_at).cloned().collect();
        tokens.push(token);
        tokens.sort_by_key(|t| t.expires_at);
        let excess = tokens.len().saturating_sub(MAX_LIVE_TOKENS);
        tokens.drain(..excess);
        Verification { tokens, ..self.clone() }
    }

    /// The set after one more wrong try: at `limit` every live link is locked and the count
    /// starts again for the links issued after.
    pub fn after_wrong_attempt(&self, now: DateTime<Utc>, limit: u32) -> (Verification, WrongAttempt) {
        let attempts = self.wrong_attempts + 1;
        if attempts >= limit {
            let locked = Verification { tokens: Vec::new(), wrong_attempts: 0, locked_at: Some(now) };
            (locked, WrongAttempt::Locked)
        } else {
            (Verification { wrong_attempts: attempts, ..self.clone() }, WrongAttempt::Counted(attempts))
        }
    }
}

/// What one wrong try did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrongAttempt {
    Counted(u32),
    /// This try reached the limit: every live link of the slot stopped working.
    Locked,
    /// Nothing to guess at (no secret stored in the slot).
    NoSecret,
}

/// A download link's token, as stored: its hash and until when the export is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadToken {
    pub token_hash: TokenHash,
    pub expires_at: DateTime<Utc>,
}

/// What creating a request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    /// The same person already has an open request of this kind; nothing was written.
    AlreadyOpen(RequestId),
}

/// One change of a request as the caller asks for it: what happens, when, and by whom. The store
/// applies it ([`RequestRecord::apply`]) and writes the new state, its audit event and the
/// clean-up it implies in one transaction, conditional on the status and version it was read at.
#[derive(Clone, Debug)]
pub struct Change {
    pub transition: Transition,
    pub at: DateTime<Utc>,
    pub actor: Actor,
}

impl Change {
    pub fn new(transition: Transition, at: DateTime<Utc>, actor: Actor) -> Change {
        Change { transition, at, actor }
    }

    /// A change the system makes on its own.
    pub fn system(transition: Transition, at: DateTime<Utc>) -> Change {
        Change::new(transition, at, Actor::System)
    }

    /// The audit event this change writes after `current`.
    pub fn audit_event(&self, current: &RequestRecord, to: Status) -> AuditEvent {
        AuditEvent {
            request_id: current.id,
            version: current.version + 1,
            event: self.transition.event(),
            from: Some(current.status),
            to,
            at: self.at,
            actor: self.actor.clone(),
            reason: self.transition.reason(),
        }
    }
}

/// The audit event of a new request: made by the requester online, or entered by a staff member,
/// whose channel the reason names (`channel: phone`).
pub fn submitted_event(request: &RequestRecord, reason: Option<&str>) -> AuditEvent {
    let (actor, channel) = match &request.intake {
        crate::domain::Intake::Web => (Actor::Requester, None),
        crate::domain::Intake::Staff { channel, entered_by } => {
            (Actor::Staff(entered_by.clone()), Some(format!("channel: {channel}")))
        }
    };
    let reason = match (channel, reason) {
        (Some(channel), Some(reason)) => Some(format!("{channel}; {reason}")),
        (channel, reason) => channel.or(reason.map(str::to_owned)),
    };
    AuditEvent {
        request_id: request.id,
        version: request.version,
        event: Event::Submitted,
        from: None,
        to: request.status,
        at: request.received_at,
        actor,
        reason,
    }
}

/// Where a one-time secret of a request lives: the requester's verification, or the second
/// verification that confirms a third-party recipient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenSlot {
    #[default]
    Requester,
    Recipient,
}

impl TokenSlot {
    /// The status a request must have for a link of this slot to be of use.
    pub fn usable_in(self) -> Status {
        match self {
            TokenSlot::Requester => Status::PendingVerification,
            TokenSlot::Recipient => Status::Verified,
        }
    }
}

/// A verified request of one person, as the per-person history keeps it (for the right-to-know
/// limit, and for erasure to find the person's earlier exports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastRequest {
    pub id: RequestId,
    pub kind: RequestKind,
    pub received_at: DateTime<Utc>,
}

/// The lists an address can be on without any verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SuppressionList {
    /// Unsubscribed from marketing email.
    Marketing,
    /// Opted out of the sale or sharing of personal data.
    Sale,
}

impl SuppressionList {
    pub const ALL: [SuppressionList; 2] = [SuppressionList::Marketing, SuppressionList::Sale];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionList::Marketing => "marketing",
            SuppressionList::Sale => "sale",
        }
    }

    pub fn parse(name: &str) -> Option<SuppressionList> {
        SuppressionList::ALL.into_iter().find(|l| l.as_str() == name)
    }

    pub fn for_kind(kind: RequestKind) -> Option<SuppressionList> {
        match kind {
            RequestKind::Unsubscribe => Some(SuppressionList::Marketing),
            RequestKind::OptOutOfSale => Some(SuppressionList::Sale),
            _ => None,
        }
    }
}

/// One address on one suppression list: since when, and through which request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub list: SuppressionList,
    pub since: DateTime<Utc>,
    pub request_id: RequestId,
}

/// Why an address gets no more of our mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuppressionCause {
    /// A permanent bounce: the mailbox does not exist or refuses our mail for good.
    Bounce,
    /// Its owner reported our mail as spam.
    Complaint,
}

impl SuppressionCause {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionCause::Bounce => "bounce",
            SuppressionCause::Complaint => "complaint",
        }
    }

    pub fn parse(name: &str) -> Option<SuppressionCause> {
        [SuppressionCause::Bounce, SuppressionCause::Complaint].into_iter().find(|c| c.as_str() == name)
    }
}

/// An address our mail must no longer go to (kept under the hash of the address, like every
/// per-person item): why, since when, and the request whose mail told us, if one did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSuppression {
    pub cause: SuppressionCause,
    pub since: DateTime<Utc>,
    pub request_id: Option<RequestId>,
}

/// Whether other systems must leave this address alone for `list`: the library call behind the
/// staff API's suppression check, for systems that read the table directly.
pub async fn is_suppressed<S: People + ?Sized>(
    store: &S,
    email: &crate::domain::EmailAddress,
    list: SuppressionList,
) -> Result<bool, StoreError> {
    Ok(store.suppressions(&email.subject_key()).await?.iter().any(|s| s.list == list))
}

/// The latest moment an erasure of one person began deleting their exports, kept under the
/// person's subject: an export of theirs whose request was verified at or before it must not
/// survive (the store refuses to complete it, and the download function to serve it). An
/// export verified after it is of data that exists after the erasure, and goes ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureMark {
    pub request_id: RequestId,
    pub started_at: DateTime<Utc>,
}

impl ErasureMark {
    /// Whether this erasure overtakes an export of a request verified at `verified_at`. Compared
    /// to the microsecond, as DynamoDB compares it; on a tie the erasure wins.
    pub fn overtakes(&self, verified_at: DateTime<Utc>) -> bool {
        erasure_instant(self.started_at) >= erasure_instant(verified_at)
    }
}

/// The instant an erasure mark compares at (microseconds since the epoch: a number, because
/// RFC 3339 text with varying fractions does not sort as time).
pub(crate) fn erasure_instant(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// When the request an export answers was asked: its verification (received, should an old
/// record lack it).
pub fn export_asked_at(request: &RequestRecord) -> DateTime<Utc> {
    request.verified_at.unwrap_or(request.received_at)
}

/// How far an erasure has come, saved after every page: what each source gave so far (counts
/// over every page and pass) and where it stands, so the next invocation (a continuation, or a
/// redelivery after a crash) resumes at the page after the last one saved and counts nothing
/// twice. Holds the person's user id while the job runs (the account that maps the address to it
/// is deleted on the way) and a cursor among their records, so `Debug` hides both.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ErasureProgress {
    pub user_id: Option<String>,
    pub sources: Vec<ErasedSource>,
    pub exports_deleted: Option<u32>,
    /// Where the erasure stands; None before its first page (and in progress saved before pages
    /// were: every source in `sources` is done).
    pub at: Option<ErasureAt>,
}

impl std::fmt::Debug for ErasureProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureProgress")
            .field("sources", &self.sources.len())
            .field("exports_deleted", &self.exports_deleted)
            .field("pass", &self.at.as_ref().map(|at| at.pass))
            .finish_non_exhaustive()
    }
}

/// Where an erasure stands: its pass over the sources (1 first; a later pass erases what the
/// re-read found again), the sources this pass has still to erase in the map's order (the first
/// is under way), and where that source's next page starts (None: at its beginning).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErasureAt {
    pub pass: u32,
    pub pending: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<crate::sources::Cursor>,
}

/// An open request as the due-date index holds it: enough to sort, remind and list, and no
/// personal data (the index never carries an address, a name or free text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    pub id: RequestId,
    pub status: Status,
    pub version: u32,
    pub kind: RequestKind,
    pub regime: Regime,
    pub language: Language,
    pub received_at: DateTime<Utc>,
    pub due_on: NaiveDate,
    pub original_due_on: Option<NaiveDate>,
    pub acknowledge_by: Option<NaiveDate>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// Which slice of the due-date index to read. Each open status is its own partition: pending
/// requests sorted by receipt (their reminders count from it), the others by due date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenQuery {
    pub status: Status,
    /// Pending: received at or before this instant. Others: due on or before this day.
    pub until: Option<Bound>,
    pub limit: u32,
    /// Where the previous page ended ([`OpenPage::next`]).
    pub after: Option<PageKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    ReceivedBy(DateTime<Utc>),
    DueBy(NaiveDate),
}

/// The position of the last item of a page in the index (its sort key), opaque to callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageKey {
    pub status: Status,
    pub sort_key: String,
}

#[derive(Clone, Debug, Default)]
pub struct OpenPage {
    pub requests: Vec<OpenRequest>,
    pub next: Option<PageKey>,
    /// Items the index read for this page (DynamoDB's `ScannedCount`): what the read cost.
    pub items_read: u64,
}

/// The fixed window `now` falls in (its number since the epoch) and when it ends.
pub(crate) fn budget_window(now: DateTime<Utc>, window: Duration) -> (i64, DateTime<Utc>) {
    let width = window.num_seconds().max(1);
    let number = now.timestamp().div_euclid(width);
    let ends = DateTime::from_timestamp((number + 1) * width, 0).unwrap_or(now);
    (number, ends)
}

/// Fixed width, so the index sorts receipt times as text.
pub(crate) fn received_key(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The request's sort key in its status's partition of the due-date index, or none once closed.
pub(crate) fn due_sort_key(r: &RequestRecord) -> Option<String> {
    match r.status {
        Status::PendingVerification => Some(format!("{}#{}", received_key(r.received_at), r.id)),
        Status::Verified | Status::InProgress => Some(format!("{}#{}", r.due_on, r.id)),
        _ => None,
    }
}

/// The inclusive upper end of a bounded index read, as a sort key: `~` sorts after every digit and
/// `#`, so this is "up to and including this key prefix".
pub(crate) fn upper_sort_key(bound: Bound) -> String {
    match bound {
        Bound::ReceivedBy(at) => format!("{}~", received_key(at)),
        Bound::DueBy(day) => format!("{day}~"),
    }
}

/// The request id at the end of a page key, when the key belongs to the queried status.
pub(crate) fn page_key_id(after: &PageKey, status: Status) -> Result<RequestId, StoreError> {
    after
        .sort_key
        .rsplit_once('#')
        .and_then(|(_, id)| RequestId::parse(id).ok())
        .filter(|_| after.status == status)
        .ok_or_else(|| StoreError::Corrupt("page key".into()))
}

/// The outcome of claiming a side effect (a queue message, an email) in the effect ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours to perform; finish or release it afterwards.
    Acquired,
    /// Performed before: do nothing.
    AlreadyDone,
    /// Another delivery is performing it right now (its lease has not run out).
    InProgress,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold: someone else changed the item first.
    #[error("conflicting write")]
    Conflict,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// An AWS call failed. Only the operation and the service's error code are kept, never a
    /// message that could quote stored data.
    #[error("{operation} failed: {code}")]
    Aws { operation: &'static str, code: String },
    #[error("stored item is not readable: {0}")]
    Corrupt(String),
}

/// Requests themselves: their state, their audit trail, and the per-person open-request marker.
pub trait Requests: Send + Sync {
    /// Writes the request, its submission audit event, its verification hash and the person's
    /// open-request marker for this kind, all or nothing.
    fn create(
        &self,
        request: &RequestRecord,
        token: &LiveToken,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Writes a request that needs no verification (an opt-out or unsubscribe) as completed,
    /// with its audit event, and puts the address on the suppression list at once.
    fn create_opt_out(
        &self,
        request: &RequestRecord,
        list: SuppressionList,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, id: RequestId) -> impl Future<Output = Result<Option<RequestRecord>, StoreError>> + Send;

    /// The open request of this kind the person has, if any.
    fn open_request(
        &self,
        subject: &SubjectKey,
        kind: RequestKind,
    ) -> impl Future<Output = Result<Option<RequestId>, StoreError>> + Send;

    /// Applies the change to `current` and writes it, with its audit event and clean-up, in one
    /// transaction: `Conflict` when the request is no longer at `current`'s status and version
    /// (or a token to consume is not the stored one, or an export would complete over an
    /// erasure of the person that [overtakes](ErasureMark::overtakes) it).
    fn transition(
        &self,
        current: &RequestRecord,
        change: Change,
    ) -> impl Future<Output = Result<RequestRecord, StoreError>> + Send;

    fn audit_trail(&self, id: RequestId) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// Adds an event that changes nothing (a download, a reminder) to the audit trail.
    fn record_event(
        &self,
        request: &RequestRecord,
        event: Event,
        at: DateTime<Utc>,
        actor: Actor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.record_event_because(request, event, at, actor, None)
    }

    /// [`Requests::record_event`] with a reason (which must name no person: a mail's kind, say).
    /// Written under its version, event and moment: the same event at the same moment (a
    /// redelivered mail event) is one line.
    fn record_event_because(
        &self,
        request: &RequestRecord,
        event: Event,
        at: DateTime<Utc>,
        actor: Actor,
        reason: Option<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Notes that a confirmation of receipt was delivered (the first time only).
    fn mark_acknowledged(
        &self,
        id: RequestId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes what an erased person's earlier requests still hold of them: the name and free
    /// text, and any secrets and download links. The requests and their audit trails stay.
    fn scrub_request(&self, id: RequestId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One-time secrets: verification tokens (per slot) and download tokens, kept only as hashes.
pub trait Secrets: Send + Sync {
    fn secret(
        &self,
        id: RequestId,
        slot: TokenSlot,
    ) -> impl Future<Output = Result<Option<Verification>, StoreError>> + Send;

    /// Adds a link to the slot (see [`Verification::with_token`]), recreating the stored secrets
    /// where DynamoDB's TTL removed them, but only while the request can still use it: pending
    /// verification for the requester's slot, verified for the recipient's. False otherwise.
    fn issue_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &LiveToken,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts one wrong try against the slot, atomically (see [`Verification::after_wrong_attempt`]).
    fn count_wrong_attempt(
        &self,
        id: RequestId,
        slot: TokenSlot,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<WrongAttempt, StoreError>> + Send;

    /// Stores the hash of a download token for a completed export (replacing any earlier one);
    /// the recipient slot holds a third party's link.
    fn put_download_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &DownloadToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The download tokens of a request (the requester's and a recipient's, where there is one).
    fn download_tokens(
        &self,
        id: RequestId,
    ) -> impl Future<Output = Result<Vec<DownloadToken>, StoreError>> + Send;
}

/// The effect ledger: each side effect of a committed change happens once, however often the
/// change is delivered. [`ledger`] holds the claim, perform, finish-or-release protocol.
pub trait EffectLedger: Send + Sync {
    /// Claims a side effect for a lease; a claim whose lease ran out can be taken over.
    fn claim_effect(
        &self,
        id: RequestId,
        effect: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    fn finish_effect(
        &self,
        id: RequestId,
        effect: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a claimed effect back after it failed, so a retry can perform it.
    fn release_effect(
        &self,
        id: RequestId,
        effect: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The sparse due-date index of open requests.
pub trait DueIndex: Send + Sync {
    /// One page of open requests of one status, in index order.
    fn open_requests(&self, query: &OpenQuery) -> impl Future<Output = Result<OpenPage, StoreError>> + Send;
}

/// What is kept per person (by the hash of their address, never the address): suppressions,
/// the mail suppression (bounces and complaints), the history of verified requests, and the
/// mail rate window.
pub trait People: Send + Sync {
    /// The suppression lists this person is on.
    fn suppressions(
        &self,
        subject: &SubjectKey,
    ) -> impl Future<Output = Result<Vec<Suppression>, StoreError>> + Send;

    /// This person's verified requests, oldest first.
    fn history(
        &self,
        subject: &SubjectKey,
    ) -> impl Future<Output = Result<Vec<PastRequest>, StoreError>> + Send;

    /// The latest erasure of this person that began deleting their exports, if any.
    fn erasure_mark(
        &self,
        subject: &SubjectKey,
    ) -> impl Future<Output = Result<Option<ErasureMark>, StoreError>> + Send;

    /// Records that `request_id`, an erasure of this person, begins deleting their exports at
    /// `at`. Idempotent, and the mark only moves forward: a redelivery writes a later moment, an
    /// earlier one (a clock behind) leaves the stored one.
    fn mark_erasure_started(
        &self,
        subject: &SubjectKey,
        request_id: RequestId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether our mail must no longer go to this person's address, and why.
    fn mail_suppression(
        &self,
        subject: &SubjectKey,
    ) -> impl Future<Output = Result<Option<MailSuppression>, StoreError>> + Send;

    /// Stops our mail to this person's address. Idempotent: the first suppression stands.
    fn suppress_mail(
        &self,
        subject: &SubjectKey,
        suppression: &MailSuppression,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts one mail against `charge` in the current fixed `window` (windows start at the
    /// epoch), atomically: false, and nothing counted, when its limit is reached.
    fn charge_budget(
        &self,
        charge: &BudgetCharge,
        now: DateTime<Utc>,
        window: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes back one mail counted by [`People::charge_budget`] at `now` (the same window) that
    /// never went out, so that a failed try does not spend the budget of the retry.
    fn refund_budget(
        &self,
        charge: &BudgetCharge,
        now: DateTime<Utc>,
        window: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How far each erasure has come.
pub trait ErasureLog: Send + Sync {
    fn erasure_progress(
        &self,
        id: RequestId,
    ) -> impl Future<Output = Result<Option<ErasureProgress>, StoreError>> + Send;

    fn save_erasure_progress(
        &self,
        id: RequestId,
        progress: &ErasureProgress,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What requests wait for from sources outside AWS ([`SourceTask`]): one task per request,
/// operation and source. Unanswered tasks are listed for the daily sweep (the sparse index, in
/// a partition of their own), oldest answer date first; answered ones leave that list.
pub trait SourceTasks: Send + Sync {
    /// Writes `task` unless the request has one for that operation and source; returns the task
    /// as stored (the earlier one, when there was).
    fn open_task(&self, task: &SourceTask) -> impl Future<Output = Result<SourceTask, StoreError>> + Send;

    fn task(
        &self,
        id: RequestId,
        operation: SourceOperation,
        source: &str,
    ) -> impl Future<Output = Result<Option<SourceTask>, StoreError>> + Send;

    /// Every task of the request, answered or not.
    fn tasks(&self, id: RequestId) -> impl Future<Output = Result<Vec<SourceTask>, StoreError>> + Send;

    /// Writes `next` (one [`SourceTask::apply`] later) only if the stored task is still at the
    /// version before it: [`StoreError::Conflict`] when another writer got there first.
    fn update_task(&self, next: &SourceTask) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Unanswered tasks, oldest answer date first, at most `limit`.
    fn waiting_tasks(&self, limit: u32) -> impl Future<Output = Result<Vec<SourceTask>, StoreError>> + Send;

    /// Takes an unanswered task off the sweep's list for good (its request was closed).
    fn retire_task(&self, task: &SourceTask) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A portability request waiting for its requester to confirm the third-party recipient: from
/// `lapses_at` on (the start of the day after the date the confirmation mail gave) the export
/// goes ahead to the requester only. No personal data: the request and a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecipientWait {
    pub request_id: RequestId,
    pub lapses_at: DateTime<Utc>,
}

/// The waits for a recipient's confirmation, listed for the daily sweep (the sparse index, in a
/// partition of their own, soonest first) so that an unconfirmed recipient never stalls a
/// request: [`Transition::LapseRecipient`] and [`Transition::ConfirmRecipient`] take a wait off
/// the list in their own transaction; the sweep retires one whose request moved on otherwise.
pub trait RecipientWaits: Send + Sync {
    /// Lists `wait` (replacing an earlier one of its request).
    fn await_recipient(&self, wait: &RecipientWait) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The waits that lapse at or before `now`, soonest first, at most `limit`.
    fn lapsed_recipient_waits(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RecipientWait>, StoreError>> + Send;

    /// Takes a request's wait off the list (nothing happens where there is none).
    fn end_recipient_wait(&self, id: RequestId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The de-identified records of requests (CCPA regulations §7101; [`ComplianceRecord`]), one
/// per request, filed under the year of receipt. They are items of their own: an erasure and
/// [`Requests::scrub_request`] leave them alone, and they expire after their retention.
pub trait Records: Send + Sync {
    /// Writes `record` unless the stored one was made from the same or a later version of the
    /// request (a redelivered older image never overwrites a newer record): true when written.
    fn put_record(&self, record: &ComplianceRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The records of the requests received in `year`, in order of receipt.
    fn records_of_year(
        &self,
        year: i32,
    ) -> impl Future<Output = Result<Vec<ComplianceRecord>, StoreError>> + Send;
}

/// The sort key of an event that changes nothing: after the transition it follows (`version`),
/// unique per event, moment and reason. The same event at the same moment with the same reason (a
/// redelivered mail event) is one line; with another reason (two sources asked in one run) it is
/// another.
pub(crate) fn event_sort_key(
    version_key: &str,
    event: Event,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> String {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match reason {
        None => format!("{version_key}#{event}#{at}"),
        Some(reason) => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(reason.as_bytes());
            format!("{version_key}#{event}#{at}#{}", hex::encode(&digest[..6]))
        }
    }
}

/// [`SourceTasks::update_task`] of `change`, reading the task again when another writer won, a
/// few times: `None` when the change does not apply (answered already, say).
pub async fn change_task<S: SourceTasks + ?Sized>(
    store: &S,
    task: &SourceTask,
    change: &crate::domain::TaskChange,
) -> Result<Option<SourceTask>, StoreError> {
    let mut current = task.clone();
    for _ in 0..5 {
        let Ok(next) = current.apply(change) else { return Ok(None) };
        match store.update_task(&next).await {
            Ok(()) => return Ok(Some(next)),
            Err(StoreError::Conflict) => {
                match store.task(current.request_id, current.operation, &current.source).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(None),
                }
            }
            Err(err) => return Err(err),
        }
    }
    Err(StoreError::Conflict)
}

/// The person's requests of the same kind as `record` received in the 12 months before it, as
/// they stand now, oldest first: the facts staff weigh a "manifestly unfounded or excessive"
/// request by (GDPR Art. 12(5)), in the staff notice and the digest.
pub async fn earlier_of_kind<S: Requests + People + ?Sized>(
    store: &S,
    record: &RequestRecord,
) -> Result<Vec<RequestRecord>, StoreError> {
    let since = record.received_at - Duration::days(365);
    let mut earlier = Vec::new();
    for past in store.history(&record.email.subject_key()).await? {
        let in_window = past.received_at > since && past.received_at <= record.received_at;
        if past.id == record.id || past.kind != record.kind || !in_window {
            continue;
        }
        earlier.extend(store.get(past.id).await?);
    }
    Ok(earlier)
}

/// Every item family: what a function that touches them all (dispatch) asks for.
pub trait RequestStore:
    Requests + Secrets + EffectLedger + DueIndex + People + ErasureLog + SourceTasks + Records + RecipientWaits
{
}

impl<
    T: Requests
        + Secrets
        + EffectLedger
        + DueIndex
        + People
        + ErasureLog
        + SourceTasks
        + Records
        + RecipientWaits,
> RequestStore for T
{
}

/// A transition that may lose a race.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied(RequestRecord),
    /// Someone else changed the request first; this is how it is now (None: it is gone).
    Overtaken(Option<RequestRecord>),
}

/// [`Requests::transition`], reading the request again when another writer won.
pub async fn transition_or_reload<S: Requests + ?Sized>(
    store: &S,
    current: &RequestRecord,
    change: Change,
) -> Result<Outcome, StoreError> {
    match store.transition(current, change).await {
        Ok(updated) => Ok(Outcome::Applied(updated)),
        Err(StoreError::Conflict) => Ok(Outcome::Overtaken(store.get(current.id).await?)),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(secret: &str, expires_at: DateTime<Utc>) -> LiveToken {
        LiveToken { token_hash: TokenHash::of_secret(secret), expires_at }
    }

    #[test]
    fn a_secret_is_accepted_only_when_it_matches_a_live_token_that_is_fresh() {
        let now = DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let secret = Verification::new(live("right", now + Duration::hours(1)))
            .with_token(live("second", now + Duration::hours(2)), now);
        assert!(secret.accepts(&TokenHash::of_secret("right"), now));
        assert!(secret.accepts(&TokenHash::of_secret("second"), now), "an older link keeps working");
        assert!(!secret.accepts(&TokenHash::of_secret("wrong"), now));
        assert!(!secret.accepts(&TokenHash::of_secret("right"), now + Duration::hours(1)));
        assert!(secret.accepts(&TokenHash::of_secret("second"), now + Duration::hours(1)));
    }

    #[test]
    fn at_most_three_links_live_and_expired_ones_are_dropped_first() {
        let now = DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let mut secret = Verification::new(live("old", now + Duration::minutes(1)));
        for name in ["a", "b", "c"] {
            secret = secret.with_token(live(name, now + Duration::hours(1)), now);
        }
        let names: Vec<bool> =
            ["old", "a", "b", "c"].iter().map(|n| secret.accepts(&TokenHash::of_secret(n), now)).collect();
        assert_eq!(names, [false, true, true, true]);
        let later = now + Duration::minutes(2);
        let renewed =
            Verification::new(live("gone", now)).with_token(live("new", later + Duration::hours(1)), later);
        assert_eq!(renewed.tokens.len(), 1, "the expired link is not kept");
    }

    #[test]
    fn wrong_tries_lock_the_live_links_at_the_limit_and_a_new_link_works_again() {
        let now = DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let mut secret = Verification::new(live("right", now + Duration::hours(1)));
        for n in 1..5 {
            let (next, outcome) = secret.after_wrong_attempt(now, 5);
            assert_eq!(outcome, WrongAttempt::Counted(n));
            secret = next;
        }
        let (locked, outcome) = secret.after_wrong_attempt(now, 5);
        assert_eq!(outcome, WrongAttempt::Locked);
        assert!(locked.is_locked());
        assert!(!locked.accepts(&TokenHash::of_secret("right"), now), "even the right link is locked");
        let fresh = locked.with_token(live("fresh", now + Duration::hours(1)), now);
        assert!(!fresh.is_locked());
        assert!(fresh.accepts(&TokenHash::of_secret("fresh"), now));
        assert_eq!(fresh.wrong_attempts, 0, "a fresh budget of tries");
    }

    #[test]
    fn suppression_lists_round_trip_their_names() {
        for list in SuppressionList::ALL {
            assert_eq!(SuppressionList::parse(list.as_str()), Some(list));
        }
        assert_eq!(SuppressionList::parse("other"), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_suppression_list_is_read_exactly_from_its_own_name(name in any::<String>()) {
            let known = SuppressionList::ALL.into_iter().find(|l| l.as_str() == name);
            prop_assert_eq!(SuppressionList::parse(&name), known);
        }

        #[test]
        fn a_suppression_cause_is_read_exactly_from_its_own_name(name in any::<String>()) {
            let known = [SuppressionCause::Bounce, SuppressionCause::Complaint].into_iter().find(|c| c.as_str() == name);
            prop_assert_eq!(SuppressionCause::parse(&name), known);
        }

        #[test]
        fn names_round_trip_and_other_spellings_do_not_read(
            pad in prop::sample::select(vec!["", " ", "\n", "s"]),
            upper in any::<bool>(),
        ) {
            for list in SuppressionList::ALL {
                let mut name = format!("{}{pad}", list.as_str());
                if upper {
                    name = name.to_uppercase();
                }
                prop_assert_eq!(SuppressionList::parse(&name), (pad.is_empty() && !upper).then_some(list));
            }
            for cause in [SuppressionCause::Bounce, SuppressionCause::Complaint] {
                let mut name = format!("{pad}{}", cause.as_str());
                if upper {
                    name = name.to_uppercase();
                }
                prop_assert_eq!(SuppressionCause::parse(&name), (pad.is_empty() && !upper).then_some(cause));
            }
        }

    }
}
