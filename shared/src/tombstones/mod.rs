//! What erasure leaves behind so that a restored backup cannot bring an erased person back
//! (CCPA regulations §7022(d)): a tombstone per erasure, and the replay that re-applies every
//! tombstone after a restore.
//!
//! The tables have point-in-time recovery (35 days) and a bucket can be restored too: a restore
//! to a moment before an erasure holds the person again. A tombstone remembers, for as long as
//! the longest backup is kept, who was erased, without remembering them: keyed hashes
//! (HMAC-SHA256 under `TOMBSTONE_KEY`) of the normalised address and of the user id(s) the
//! erasure found, the ids of the person's requests the erasure scrubbed (random ids, which name
//! nobody), and when. Without the key a hash cannot be tested against a guessed address, and the
//! key lives in Secrets Manager, given only to the erasure function.
//!
//! Tombstones live in a table of their own ([`DynamoTombstones`]), which a restore never rolls
//! back (infra/README.md, "Restoring a backup"). The replay ([`ReplayRun`], run by the erasure
//! function) scans every AWS source of the data map page by page, hashes each record's `find_by`
//! value with the same key, and applies the source's own erasure rule (delete, or anonymise) to
//! the records a tombstone matches ([`Matcher`]); then it scrubs the restored requests again.
//!
//! What `since` guarantees: every erasure whose tombstone was written at or after `since` (its
//! completion; a tombstone is written just before the request completes) is applied again, so a
//! backup taken at `since` or later holds nobody it must not. Data collected after an erasure is
//! not the erased data and is left alone: a record found by the address whose time attribute is
//! after the erasure (a new account, a new subscription) stays, unless it carries a user id the
//! erasure found; user ids are never reused, so a record of a user id the erasure found is always
//! the erased person's.

mod dynamo;
mod scan;

pub use dynamo::DynamoTombstones;
pub use scan::{KeyPage, SourceScanner};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::datamap::{Location, Source, SubjectAttribute};
use crate::domain::{EmailAddress, RequestId};
use crate::sources::Cursor;

/// The shortest key accepted: 32 characters of a generated secret carry well over 128 bits.
pub const MIN_KEY_CHARS: usize = 32;

/// The longest backup retention the tombstones must outlive: DynamoDB's point-in-time recovery
/// keeps 35 days. A retention below it is refused.
pub const MIN_RETENTION_DAYS: u32 = 35;

/// The default: the 35 days of point-in-time recovery, plus a week for a restore to be noticed,
/// done and replayed.
pub const DEFAULT_RETENTION_DAYS: u32 = 42;

/// The secret identifiers are hashed with (`TOMBSTONE_KEY`). Whoever holds it can test a guessed
/// address against the tombstones, so it lives in Secrets Manager and never in a log.
#[derive(Clone)]
pub struct TombstoneKey(Vec<u8>);

impl fmt::Debug for TombstoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TombstoneKey(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be at least {MIN_KEY_CHARS} characters")]
pub struct ShortTombstoneKey;

/// A keyed hash of one identifier (hex of HMAC-SHA256): what a tombstone keeps instead of it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdentifierHash(String);

impl fmt::Debug for IdentifierHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentifierHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

impl IdentifierHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TombstoneKey {
    pub fn parse(secret: &str) -> Result<TombstoneKey, ShortTombstoneKey> {
        if secret.chars().count() < MIN_KEY_CHARS {
            return Err(ShortTombstoneKey);
        }
        Ok(TombstoneKey(secret.as_bytes().to_vec()))
    }

    /// The hash of a verified address: of its normalised form, the one the sources are keyed by.
    pub fn email(&self, email: &EmailAddress) -> IdentifierHash {
        self.mac("email", email.normalized())
    }

    /// The hash of an address as a record stores it, normalised as [`EmailAddress`] does (a
    /// value that is no address is hashed as it is, and matches nothing a person asked with).
    pub fn stored_email(&self, stored: &str) -> IdentifierHash {
        match EmailAddress::parse(stored) {
            Ok(email) => self.email(&email),
            Err(_) => self.mac("email", stored),
        }
    }

    pub fn user_id(&self, user_id: &str) -> IdentifierHash {
        self.mac("user_id", user_id)
    }

    /// Each kind of identifier in its own domain: an address never hashes like a user id.
    fn mac(&self, kind: &str, value: &str) -> IdentifierHash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        IdentifierHash(hex::encode(mac.finalize().into_bytes()))
    }
}

/// How long a tombstone is kept: at least [`MIN_RETENTION_DAYS`] (`TOMBSTONE_RETENTION_DAYS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TombstoneRetention(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number of days from {MIN_RETENTION_DAYS} to 3650 (the longest backup retention)")]
pub struct BadRetention;

impl Default for TombstoneRetention {
    fn default() -> Self {
        TombstoneRetention(DEFAULT_RETENTION_DAYS)
    }
}

impl TombstoneRetention {
    pub fn days(days: u32) -> Result<TombstoneRetention, BadRetention> {
        if (MIN_RETENTION_DAYS..=3650).contains(&days) {
            Ok(TombstoneRetention(days))
        } else {
            Err(BadRetention)
        }
    }

    pub fn parse(raw: &str) -> Result<TombstoneRetention, BadRetention> {
        raw.trim().parse::<u32>().map_err(|_| BadRetention).and_then(TombstoneRetention::days)
    }

    pub fn as_days(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::days(i64::from(self.0))
    }
}

/// One erasure, remembered without the person: kept until `expires_at` (DynamoDB's TTL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// The erasure request.
    pub request_id: RequestId,
    /// When the erasure completed (the tombstone is written just before the completion).
    pub erased_at: DateTime<Utc>,
    pub email: IdentifierHash,
    /// The user ids the erasure found (none when the person had no account).
    pub user_ids: Vec<IdentifierHash>,
    /// The person's requests whose items the erasure scrubbed, the erasure's own included.
    pub requests: Vec<RequestId>,
    pub expires_at: DateTime<Utc>,
}

impl Tombstone {
    /// The tombstone of `request_id`'s erasure of the person with this address and user id.
    pub fn of(
        key: &TombstoneKey,
        request_id: RequestId,
        email: &EmailAddress,
        user_id: Option<&str>,
        requests: &[RequestId],
        erased_at: DateTime<Utc>,
        retention: TombstoneRetention,
    ) -> Tombstone {
        let mut ids: Vec<RequestId> = requests.iter().copied().chain([request_id]).collect();
        ids.sort_by_key(RequestId::to_string);
        ids.dedup();
        Tombstone {
            request_id,
            erased_at,
            email: key.email(email),
            user_ids: user_id.map(|u| key.user_id(u)).into_iter().collect(),
            requests: ids,
            expires_at: erased_at + retention.duration(),
        }
    }
}

/// The earliest instant a replay's `since` may name: a bare date (`2026-11-20`) counts from the
/// first moment that day exists anywhere (00:00 at UTC+14), so that no erasure of the day the
/// backup was taken is missed wherever its time was read; an RFC 3339 time is taken as it is.
/// Applying a tombstone the backup did not need does no harm: it finds nothing.
pub fn parse_since(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc() - Duration::hours(14))
}

/// A replay's id: a random UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplayRunId(uuid::Uuid);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a replay run id")]
pub struct BadReplayRunId;

impl ReplayRunId {
    pub fn generate() -> ReplayRunId {
        ReplayRunId(uuid::Uuid::new_v4())
    }

    /// Only the canonical lower-case hyphenated form, the one we hand out.
    pub fn parse(input: &str) -> Result<ReplayRunId, BadReplayRunId> {
        let id = uuid::Uuid::try_parse(input).map_err(|_| BadReplayRunId)?;
        if id.hyphenated().to_string() == input { Ok(ReplayRunId(id)) } else { Err(BadReplayRunId) }
    }
}

impl fmt::Display for ReplayRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for ReplayRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayRunId({self})")
    }
}

impl TryFrom<String> for ReplayRunId {
    type Error = BadReplayRunId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ReplayRunId::parse(&value)
    }
}

impl From<ReplayRunId> for String {
    fn from(id: ReplayRunId) -> String {
        id.to_string()
    }
}

/// One replay of the erasures after a restore: asked for by staff, run by the erasure function
/// a page at a time (its progress saved after each), and its receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRun {
    pub id: ReplayRunId,
    /// The point in time the restored backup was taken from: tombstones from then on apply.
    pub since: DateTime<Utc>,
    /// When staff asked: tombstones written later are of erasures that ran on the restored data
    /// themselves, so a run's set of tombstones is fixed ([since, requested_at]).
    pub requested_at: DateTime<Utc>,
    /// The staff principal who asked.
    pub requested_by: String,
    pub state: ReplayState,
    pub receipt: ReplayReceipt,
    /// User ids (hashed) of restored accounts the replay erased that no tombstone names (an
    /// account the person closed between the backup and the erasure): their records in the
    /// sources keyed by user id are the person's too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned_user_ids: Vec<IdentifierHash>,
}

/// Where a replay stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// Asked for; the erasure function has not taken it up yet.
    Queued,
    Running(ReplayAt),
    Finished,
}

impl ReplayState {
    pub fn name(&self) -> &'static str {
        match self {
            ReplayState::Queued => "queued",
            ReplayState::Running(_) => "running",
            ReplayState::Finished => "finished",
        }
    }
}

/// A running replay's position: the AWS sources still to scan (the first under way, from
/// `next`), then the requests to scrub again (after the last one done, in id order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayAt {
    Sources {
        pending: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<ScanPosition>,
    },
    Requests {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<RequestId>,
    },
}

/// Where the next page of a source's scan starts. It is a key of the source (an address or a
/// user id, possibly), kept only while that source is scanned, so `Debug` shows none.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanPosition {
    Table(Cursor),
    /// After this object key (its every version).
    Objects(String),
}

impl fmt::Debug for ScanPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScanPosition(<redacted>)")
    }
}

/// What a replay did, for the staff: counts only, nothing of any person.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReceipt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The tombstones applied (erasures completed from `since` until the run was asked for).
    pub tombstones_considered: u32,
    /// Per AWS source of the data map, in the map's order: what was erased again.
    pub sources: Vec<ReplayedSource>,
    /// Restored requests of erased people that held their name, free text or secrets again.
    pub requests_scrubbed: u32,
    /// Restored exports of erased people, deleted again (every version).
    pub exports_deleted: u32,
    /// The map's sources outside AWS: a restore of theirs is their owners' to replay; staff ask
    /// them to apply again every erasure they were asked for since `since`.
    pub ask_by_hand: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayedSource {
    pub source: String,
    pub deleted: u64,
    pub anonymised: u64,
}

impl ReplayRun {
    /// A run staff just asked for.
    pub fn queued(since: DateTime<Utc>, now: DateTime<Utc>, requested_by: &str) -> ReplayRun {
        ReplayRun {
            id: ReplayRunId::generate(),
            since,
            requested_at: now,
            requested_by: requested_by.to_owned(),
            state: ReplayState::Queued,
            receipt: ReplayReceipt::default(),
            learned_user_ids: Vec::new(),
        }
    }

    /// The counts of `source`, added to the receipt in the order sources are first met.
    pub fn source_mut(&mut self, source: &str) -> &mut ReplayedSource {
        let at = match self.receipt.sources.iter().position(|s| s.source == source) {
            Some(at) => at,
            None => {
                self.receipt.sources.push(ReplayedSource {
                    source: source.to_owned(),
                    deleted: 0,
                    anonymised: 0,
                });
                self.receipt.sources.len() - 1
            }
        };
        &mut self.receipt.sources[at]
    }
}

/// What the replay does with one record or object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not of an erased person (or collected after their erasure): left alone.
    Keep,
    /// Of an erased person: the source's erasure rule applies. `learned` is the hashed user id of
    /// an account no tombstone names, to be erased in the sources keyed by user id too.
    Erase { learned: Option<IdentifierHash> },
}

/// Decides which records the tombstones of one replay cover.
pub struct Matcher<'k> {
    key: &'k TombstoneKey,
    /// Per hashed address, its latest erasure: a record collected after it is new data.
    emails: HashMap<IdentifierHash, DateTime<Utc>>,
    user_ids: HashSet<IdentifierHash>,
}

impl<'k> Matcher<'k> {
    pub fn new(key: &'k TombstoneKey, tombstones: &[Tombstone], learned: &[IdentifierHash]) -> Matcher<'k> {
        let mut emails: HashMap<IdentifierHash, DateTime<Utc>> = HashMap::new();
        let mut user_ids: HashSet<IdentifierHash> = learned.iter().cloned().collect();
        for tombstone in tombstones {
            let latest = emails.entry(tombstone.email.clone()).or_insert(tombstone.erased_at);
            *latest = (*latest).max(tombstone.erased_at);
            user_ids.extend(tombstone.user_ids.iter().cloned());
        }
        Matcher { key, emails, user_ids }
    }

    pub fn learn(&mut self, user_id: IdentifierHash) {
        self.user_ids.insert(user_id);
    }

    /// A record of a table source, as a scan page holds it.
    pub fn record(&self, source: &Source, record: &Value) -> Verdict {
        let Location::Table { find_by, time_attribute, .. } = &source.location else { return Verdict::Keep };
        let text = |attribute: &str| record.get(attribute).and_then(Value::as_str).filter(|v| !v.is_empty());
        match find_by {
            SubjectAttribute::UserId => match text("user_id") {
                Some(id) if self.user_ids.contains(&self.key.user_id(id)) => Verdict::Erase { learned: None },
                _ => Verdict::Keep,
            },
            SubjectAttribute::Email => {
                let Some(erased_at) = text("email").and_then(|e| self.emails.get(&self.key.stored_email(e)))
                else {
                    return Verdict::Keep;
                };
                let user_id = source.provides_user_id.as_deref().and_then(text).map(|u| self.key.user_id(u));
                // The erased account itself, whenever it last changed.
                if user_id.as_ref().is_some_and(|u| self.user_ids.contains(u)) {
                    return Verdict::Erase { learned: None };
                }
                // Collected after the erasure: a new account, a new subscription.
                let written = time_attribute
                    .as_deref()
                    .and_then(text)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                if written.is_some_and(|at| at.with_timezone(&Utc) > *erased_at) {
                    return Verdict::Keep;
                }
                Verdict::Erase { learned: user_id }
            }
        }
    }

    /// An object of an object source, by the person's key its prefix holds. An object restored
    /// from a backup is written anew, so its time says nothing: only the key decides.
    pub fn object(&self, source: &Source, person_key: &str) -> bool {
        match source.find_by() {
            SubjectAttribute::UserId => self.user_ids.contains(&self.key.user_id(person_key)),
            SubjectAttribute::Email => self.emails.contains_key(&self.key.stored_email(person_key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datamap::DataMap;
    use serde_json::json;

    fn key() -> TombstoneKey {
        TombstoneKey::parse("a-test-only-tombstone-key-not-a-secret").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn alice(erased_at: &str) -> Tombstone {
        let email = EmailAddress::parse("Alice@Example.com").unwrap();
        Tombstone::of(
            &key(),
            RequestId::generate(),
            &email,
            Some("u-alice"),
            &[],
            at(erased_at),
            TombstoneRetention::default(),
        )
    }

    #[test]
    fn a_key_is_long_enough_and_never_printed() {
        assert!(matches!(TombstoneKey::parse("short"), Err(ShortTombstoneKey)));
        assert_eq!(format!("{:?}", key()), "TombstoneKey(<redacted>)");
    }

    #[test]
    fn identifiers_hash_by_kind_under_the_key_and_addresses_as_normalised() {
        let k = key();
        let email = EmailAddress::parse("alice@example.com").unwrap();
        assert_eq!(k.email(&email), k.stored_email("Alice@Example.com"));
        assert_ne!(k.email(&email), k.user_id("alice@example.com"), "an address is not a user id");
        let other = TombstoneKey::parse("another-test-only-tombstone-key-xyz").unwrap();
        assert_ne!(k.user_id("u-alice"), other.user_id("u-alice"), "without the key, no match");
        assert_eq!(k.user_id("u-alice").as_str().len(), 64);
        assert!(!k.user_id("u-alice").as_str().contains("alice"));
    }

    #[test]
    fn a_tombstone_keeps_no_plain_identifier_and_expires_after_the_retention() {
        let t = alice("2026-11-28T10:00:00Z");
        let shown = format!("{t:?}");
        assert!(!shown.to_lowercase().contains("alice"), "{shown}");
        assert_eq!(t.expires_at - t.erased_at, Duration::days(42));
        assert_eq!(t.requests, vec![t.request_id]);
    }

    #[test]
    fn the_retention_outlives_the_backups() {
        assert!(TombstoneRetention::days(34).is_err());
        assert_eq!(TombstoneRetention::parse("35").unwrap().as_days(), 35);
        assert!(TombstoneRetention::parse("forever").is_err());
    }

    #[test]
    fn since_takes_a_time_as_it_is_and_a_date_from_its_earliest_start() {
        assert_eq!(parse_since("2026-11-20T08:30:00+01:00"), Some(at("2026-11-20T07:30:00Z")));
        assert_eq!(parse_since("2026-11-20"), Some(at("2026-11-19T10:00:00Z")));
        assert_eq!(parse_since("20-11-2026"), None);
        assert_eq!(parse_since("2026-02-30"), None);
    }

    #[test]
    fn a_record_of_an_erased_user_id_is_erased_whenever_it_was_written() {
        let map = DataMap::builtin().unwrap();
        let tombstones = [alice("2026-11-28T10:00:00Z")];
        let k = key();
        let matcher = Matcher::new(&k, &tombstones, &[]);
        let devices = map.source("devices").unwrap();
        let later = json!({"device_id": "d-1", "user_id": "u-alice", "last_seen_at": "2026-12-01T00:00:00Z"});
        assert_eq!(matcher.record(devices, &later), Verdict::Erase { learned: None });
        assert_eq!(matcher.record(devices, &json!({"device_id": "d-2", "user_id": "u-bob"})), Verdict::Keep);
        assert_eq!(matcher.record(devices, &json!({"device_id": "d-3"})), Verdict::Keep);
    }

    #[test]
    fn a_record_found_by_the_address_and_collected_after_the_erasure_is_new_data() {
        let map = DataMap::builtin().unwrap();
        let tombstones = [alice("2026-11-28T10:00:00Z")];
        let k = key();
        let matcher = Matcher::new(&k, &tombstones, &[]);
        let marketing = map.source("marketing").unwrap();
        let restored = json!({"email": "alice@example.com", "subscribed_at": "2025-12-01T10:00:00Z"});
        let resubscribed = json!({"email": "alice@example.com", "subscribed_at": "2026-12-02T10:00:00Z"});
        assert_eq!(matcher.record(marketing, &restored), Verdict::Erase { learned: None });
        assert_eq!(matcher.record(marketing, &resubscribed), Verdict::Keep);
        assert_eq!(matcher.record(marketing, &json!({"email": "bob@example.com"})), Verdict::Keep);

        let accounts = map.source("accounts").unwrap();
        let erased =
            json!({"email": "alice@example.com", "user_id": "u-alice", "updated_at": "2026-12-05T00:00:00Z"});
        assert_eq!(matcher.record(accounts, &erased), Verdict::Erase { learned: None }, "the erased account");
        let new = json!({"email": "alice@example.com", "user_id": "u-alice-2", "updated_at": "2026-12-05T00:00:00Z"});
        assert_eq!(matcher.record(accounts, &new), Verdict::Keep, "a new account");
        let closed =
            json!({"email": "alice@example.com", "user_id": "u-old", "updated_at": "2026-01-05T00:00:00Z"});
        assert_eq!(
            matcher.record(accounts, &closed),
            Verdict::Erase { learned: Some(k.user_id("u-old")) },
            "an account the erasure never saw: its user id is learned"
        );
    }

    #[test]
    fn objects_match_by_the_key_in_their_prefix() {
        let map = DataMap::builtin().unwrap();
        let tombstones = [alice("2026-11-28T10:00:00Z")];
        let k = key();
        let mut matcher = Matcher::new(&k, &tombstones, &[]);
        let recordings = map.source("recordings").unwrap();
        assert!(matcher.object(recordings, "u-alice"));
        assert!(!matcher.object(recordings, "u-alice-2"));
        matcher.learn(k.user_id("u-alice-2"));
        assert!(matcher.object(recordings, "u-alice-2"));
    }

    #[test]
    fn run_ids_are_canonical_uuids() {
        let id = ReplayRunId::generate();
        assert_eq!(ReplayRunId::parse(&id.to_string()), Ok(id));
        assert!(ReplayRunId::parse(&id.to_string().to_uppercase()).is_err());
        assert!(ReplayRunId::parse("x").is_err());
    }
}
