//! The request store port: everything the functions need from the table, and nothing more.
//! Its one implementation is DynamoDB ([`DynamoStore`]).

mod dynamo;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::future::Future;

use crate::domain::{
    Actor, AuditEvent, CostEstimate, ErasedSource, ErasureReceipt, Event, Language, Regime, RequestId,
    RequestKind, RequestRecord, Status, SubjectKey, TokenHash, TransitionError, Triage,
};

pub use dynamo::{DUE_INDEX, DynamoStore, record_from_image};

/// The verification secret of a pending request, as stored: a hash, a deadline, a counter.
#[derive(Clone, Debug)]
pub struct Verification {
    pub token_hash: TokenHash,
    pub expires_at: DateTime<Utc>,
    pub wrong_attempts: u32,
}

/// What creating a request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    /// The same person already has an open request of this kind; nothing was written.
    AlreadyOpen(RequestId),
}

/// One state change, as the caller asks for it. The store applies the state machine, writes the
/// new state and its audit event in one transaction, conditional on the version it was read at.
#[derive(Clone, Debug)]
pub struct Change {
    pub event: Event,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub reason: Option<String>,
    /// Succeeds only if this is still the stored verification hash, which is then deleted:
    /// that makes a token single-use even under concurrent requests.
    pub consume_token: Option<TokenHash>,
    /// For an extension: the new due date (the old one is kept as the original).
    pub extend_to: Option<NaiveDate>,
    /// For a request marked excessive: what doing it would cost.
    pub cost_estimate: Option<CostEstimate>,
    /// Which stored secret `consume_token` must match (the requester's, or the recipient one).
    pub token_slot: TokenSlot,
    pub triage: Option<Triage>,
    pub referral_contact: Option<String>,
    pub receipt: Option<ErasureReceipt>,
}

/// Where a one-time secret of a request lives: the requester's verification, or the second
/// verification that confirms a third-party recipient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenSlot {
    #[default]
    Requester,
    Recipient,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuppressionList {
    /// Unsubscribed from marketing email.
    Marketing,
    /// Opted out of the sale or sharing of personal data.
    Sale,
}

impl SuppressionList {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionList::Marketing => "marketing",
            SuppressionList::Sale => "sale",
        }
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

/// Whether other systems must leave this address alone for `list`: the library call behind the
/// staff API's suppression check, for systems that read the table directly.
pub async fn is_suppressed<S: RequestStore>(
    store: &S,
    email: &crate::domain::EmailAddress,
    list: SuppressionList,
) -> Result<bool, StoreError> {
    Ok(store.suppressions(&email.subject_key()).await?.iter().any(|s| s.list == list))
}

/// How far an erasure has come: what each finished source gave, so a redelivered job resumes
/// where the last one stopped. Holds the person's user id while the job runs (the account that
/// maps the address to it is deleted on the way), so `Debug` hides it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ErasureProgress {
    pub user_id: Option<String>,
    pub sources: Vec<ErasedSource>,
    pub exports_deleted: Option<u32>,
}

impl std::fmt::Debug for ErasureProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureProgress")
            .field("sources", &self.sources.len())
            .field("exports_deleted", &self.exports_deleted)
            .finish_non_exhaustive()
    }
}

impl Change {
    pub fn new(event: Event, at: DateTime<Utc>, actor: Actor) -> Change {
        Change {
            event,
            at,
            actor,
            reason: None,
            consume_token: None,
            extend_to: None,
            cost_estimate: None,
            token_slot: TokenSlot::Requester,
            triage: None,
            referral_contact: None,
            receipt: None,
        }
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Change {
        self.reason = Some(reason.into());
        self
    }
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
    /// Items DynamoDB read for this page (its `ScannedCount`): what the read cost.
    pub items_read: u64,
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

pub trait RequestStore: Send + Sync {
    /// Writes the request, its submission audit event, its verification hash and the person's
    /// open-request marker for this kind, all or nothing.
    fn create(
        &self,
        request: &RequestRecord,
        verification: &Verification,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    fn get(&self, id: RequestId) -> impl Future<Output = Result<Option<RequestRecord>, StoreError>> + Send;

    fn open_request(
        &self,
        subject: &SubjectKey,
        kind: RequestKind,
    ) -> impl Future<Output = Result<Option<RequestId>, StoreError>> + Send;

    fn verification(
        &self,
        id: RequestId,
    ) -> impl Future<Output = Result<Option<Verification>, StoreError>> + Send;

    /// Replaces the secret of a request still pending verification and resets its counter.
    /// False when there is nothing to replace (the request was verified or closed meanwhile).
    fn replace_verification(
        &self,
        id: RequestId,
        verification: &Verification,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts one wrong try, atomically; returns the new count, or None if no secret is stored.
    fn count_wrong_attempt(
        &self,
        id: RequestId,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    fn transition(
        &self,
        current: &RequestRecord,
        change: Change,
    ) -> impl Future<Output = Result<RequestRecord, StoreError>> + Send;

    fn audit_trail(&self, id: RequestId) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// Stores the hash of a download token for a completed export (replacing any earlier one);
    /// the recipient slot holds a third party's link.
    fn put_download_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The download tokens of a request (the requester's and a recipient's, where there is one).
    fn download_tokens(
        &self,
        id: RequestId,
    ) -> impl Future<Output = Result<Vec<(TokenHash, DateTime<Utc>)>, StoreError>> + Send;

    /// Adds an event that changes nothing (a download, a reminder) to the audit trail.
    fn record_event(
        &self,
        request: &RequestRecord,
        event: Event,
        at: DateTime<Utc>,
        actor: Actor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Notes that the confirmation of receipt went out (the first time only).
    fn mark_acknowledged(
        &self,
        id: RequestId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of open requests of one status from the sparse due-date index, in index order.
    fn open_requests(&self, query: &OpenQuery) -> impl Future<Output = Result<OpenPage, StoreError>> + Send;

    /// Claims a side effect of a committed transition for a lease; redelivered stream records
    /// find it done, so each effect happens once.
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

    /// Writes a request that needs no verification (an opt-out or unsubscribe) as completed,
    /// with its audit event, and puts the address on the suppression list at once.
    fn create_opt_out(
        &self,
        request: &RequestRecord,
        list: SuppressionList,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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

    /// Stores a one-time secret in a slot (replacing one that is there).
    fn put_secret(
        &self,
        id: RequestId,
        slot: TokenSlot,
        verification: &Verification,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn secret(
        &self,
        id: RequestId,
        slot: TokenSlot,
    ) -> impl Future<Output = Result<Option<Verification>, StoreError>> + Send;

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

    /// Removes what an erased person's earlier requests still hold of them: the name and free
    /// text, and any secrets and download links. The requests and their audit trails stay.
    fn scrub_request(&self, id: RequestId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes one of `limit` slots in the sliding `window` for mail to this person. False when
    /// all are taken: the caller must not send.
    fn take_mail_slot(
        &self,
        subject: &SubjectKey,
        now: DateTime<Utc>,
        limit: u32,
        window: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
