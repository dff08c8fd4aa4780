//! The record kept of every request (CCPA regulations §7101): when it was received, what was
//! asked and how, when and how it was answered, and the coded basis of a refusal. It holds no
//! address, no name and no free text, so it is kept apart from the request (its own item, which
//! neither an erasure nor a scrub touches) and outlives the person's erasure; it expires after
//! the retention period, at least 24 months counted from the response (from receipt while open).
//! The yearly figures of §7102 are read from these records ([`super::YearReport`]).

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::{
    BusinessCalendar, Intake, LIMIT_REASON, OfflineChannel, Regime, Region, RequestId, RequestKind,
    RequestRecord, Status,
};

/// The least a record may be kept: CCPA regulations §7101(a), 24 months.
pub const MIN_RECORD_RETENTION_MONTHS: u32 = 24;

/// How long records are kept, in months; never less than [`MIN_RECORD_RETENTION_MONTHS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRetention {
    months: u32,
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("records must be kept at least {MIN_RECORD_RETENTION_MONTHS} months (CCPA regulations §7101)")]
pub struct RetentionTooShort;

impl RecordRetention {
    pub const MINIMUM: RecordRetention = RecordRetention { months: MIN_RECORD_RETENTION_MONTHS };

    pub fn months(months: u32) -> Result<RecordRetention, RetentionTooShort> {
        if months < MIN_RECORD_RETENTION_MONTHS {
            return Err(RetentionTooShort);
        }
        Ok(RecordRetention { months })
    }

    pub fn as_months(self) -> u32 {
        self.months
    }

    /// The last day a record whose retention starts on `from` is kept.
    pub fn keep_until(self, from: NaiveDate) -> NaiveDate {
        from.checked_add_months(Months::new(self.months)).unwrap_or(NaiveDate::MAX)
    }
}

impl Default for RecordRetention {
    fn default() -> Self {
        RecordRetention::MINIMUM
    }
}

/// Why a request was denied, as a code: the reason staff write goes to the requester and may
/// quote them, so the record keeps this instead (§7101 asks for "the basis for the denial").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialBasis {
    /// A legal exemption applies (CCPA Civil Code §1798.145, a restriction of GDPR Art. 23).
    Exemption,
    /// The law requires us to keep or process the data (GDPR Art. 17(3)(b), §1798.105(d)(8)).
    LegalObligation,
    /// Needed to establish, exercise or defend legal claims (GDPR Art. 17(3)(e)).
    LegalClaims,
    /// Answering would adversely affect the rights and freedoms of others (GDPR Art. 15(4)).
    RightsOfOthers,
    /// The requester, or an agent's authority, could not be verified.
    Unverifiable,
    /// The person's data was erased at their own request before this request could be answered
    /// (an export overtaken by an erasure; set by the system).
    Erased,
    #[default]
    Other,
}

impl DenialBasis {
    pub const ALL: [DenialBasis; 7] = [
        DenialBasis::Exemption,
        DenialBasis::LegalObligation,
        DenialBasis::LegalClaims,
        DenialBasis::RightsOfOthers,
        DenialBasis::Unverifiable,
        DenialBasis::Erased,
        DenialBasis::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenialBasis::Exemption => "exemption",
            DenialBasis::LegalObligation => "legal_obligation",
            DenialBasis::LegalClaims => "legal_claims",
            DenialBasis::RightsOfOthers => "rights_of_others",
            DenialBasis::Unverifiable => "unverifiable",
            DenialBasis::Erased => "erased",
            DenialBasis::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<DenialBasis> {
        DenialBasis::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

impl fmt::Display for DenialBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a completed request was complied with only in part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartReason {
    /// The erasure kept (anonymised) records where the data map gives a legal reason to.
    KeptForLegalReason,
    /// A source outside AWS had not delivered when the request was completed.
    SourcesNotDelivered,
}

impl PartReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PartReason::KeptForLegalReason => "kept_for_legal_reason",
            PartReason::SourcesNotDelivered => "sources_not_delivered",
        }
    }
}

/// Whether the sources outside AWS a request waited for all delivered (an answered task each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideSources {
    Delivered,
    NotDelivered,
}

/// How a request ended, or that it has not yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Open,
    /// Complied with in whole.
    Complied,
    CompliedInPart {
        in_part_because: PartReason,
    },
    Denied {
        denial_basis: DenialBasis,
    },
    /// Never verified: closed when the link expired or too many wrong tokens were tried.
    NotVerified,
    /// An enterprise-managed account: the requester was sent to its administrator.
    Referred,
    /// Manifestly unfounded or excessive (GDPR Art. 12(5)), with a cost estimate.
    RejectedExcessive,
    /// A third CCPA right-to-know request within 12 months.
    RejectedLimit,
}

impl Outcome {
    /// The outcome of `request` as it stands. `outside` matters only for a completed request.
    pub fn of(request: &RequestRecord, outside: OutsideSources) -> Outcome {
        match request.status {
            Status::PendingVerification | Status::Verified | Status::InProgress => Outcome::Open,
            Status::Completed => {
                let kept = request
                    .receipt
                    .as_ref()
                    .is_some_and(|r| r.sources.iter().any(|s| s.anonymised > 0 || s.kept_because.is_some()));
                match (kept, outside) {
                    (true, _) => Outcome::CompliedInPart { in_part_because: PartReason::KeptForLegalReason },
                    (false, OutsideSources::NotDelivered) => {
                        Outcome::CompliedInPart { in_part_because: PartReason::SourcesNotDelivered }
                    }
                    (false, OutsideSources::Delivered) => Outcome::Complied,
                }
            }
            Status::Expired => Outcome::NotVerified,
            // A request denied before bases were coded has none: `other`.
            Status::Denied => Outcome::Denied { denial_basis: request.denial_basis.unwrap_or_default() },
            Status::Referred => Outcome::Referred,
            Status::Rejected if request.closed_reason.as_deref() == Some(LIMIT_REASON) => {
                Outcome::RejectedLimit
            }
            Status::Rejected => Outcome::RejectedExcessive,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Complied => "complied",
            Outcome::CompliedInPart { .. } => "complied_in_part",
            Outcome::Denied { .. } => "denied",
            Outcome::NotVerified => "not_verified",
            Outcome::Referred => "referred",
            Outcome::RejectedExcessive => "rejected_excessive",
            Outcome::RejectedLimit => "rejected_limit",
        }
    }

    /// The basis a refusal counts under in the report: a denial's code, or the rejection's own.
    pub fn refusal_basis(self) -> Option<&'static str> {
        match self {
            Outcome::Denied { denial_basis } => Some(denial_basis.as_str()),
            Outcome::RejectedExcessive => Some("excessive"),
            Outcome::RejectedLimit => Some("right_to_know_limit"),
            _ => None,
        }
    }
}

/// How the request was made, as the record keeps it (who entered it stays on the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Web,
    Offline(OfflineChannel),
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Offline(channel) => channel.as_str(),
        }
    }
}

impl From<&Intake> for Channel {
    fn from(intake: &Intake) -> Channel {
        match intake {
            Intake::Web => Channel::Web,
            Intake::Staff { channel, .. } => Channel::Offline(*channel),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown channel")]
pub struct UnknownChannel;

impl TryFrom<String> for Channel {
    type Error = UnknownChannel;
    fn try_from(name: String) -> Result<Channel, UnknownChannel> {
        match name.as_str() {
            "web" => Ok(Channel::Web),
            other => OfflineChannel::parse(other).map(Channel::Offline).ok_or(UnknownChannel),
        }
    }
}

impl From<Channel> for String {
    fn from(channel: Channel) -> String {
        channel.as_str().to_owned()
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Channel, D::Error> {
        Channel::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The de-identified record of one request, as of one version of it. Every field is a code, a
/// date or a count: nothing here names or reaches the person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceRecord {
    pub request_id: RequestId,
    /// The request's version this record was made from: a record is only ever replaced by one
    /// of a later version.
    pub version: u32,
    pub kind: RequestKind,
    pub regime: Regime,
    pub region: Region,
    pub channel: Channel,
    /// Made by an authorised agent (who, stays on the request).
    pub by_agent: bool,
    pub received_at: DateTime<Utc>,
    pub received_on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_on: Option<NaiveDate>,
    pub due_on: NaiveDate,
    /// The due date before the extension, where there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_due_on: Option<NaiveDate>,
    pub status: Status,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The day the request was closed: answered, refused, referred, or closed unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responded_on: Option<NaiveDate>,
    /// Calendar days from receipt to `responded_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_to_respond: Option<u32>,
    /// The last day the record is kept: the retention counted from `responded_on`, or from
    /// receipt while the request is open (a later version moves it on).
    pub keep_until: NaiveDate,
}

impl ComplianceRecord {
    /// The record of `request` as it stands. Dates are business-local days, as the deadlines are.
    pub fn of(
        request: &RequestRecord,
        outside: OutsideSources,
        calendar: &BusinessCalendar,
        retention: RecordRetention,
    ) -> ComplianceRecord {
        // A closed request's record is made at its closing, so its last update is its closing
        // (what may follow a refusal, a dispute noted, is no response and writes no record).
        let responded_on = (!request.status.is_open()).then(|| calendar.local_date(request.updated_at));
        let days_to_respond =
            responded_on.map(|day| u32::try_from((day - request.received_on).num_days()).unwrap_or_default());
        ComplianceRecord {
            request_id: request.id,
            version: request.version,
            kind: request.kind,
            regime: request.regime,
            region: request.region.clone(),
            channel: Channel::from(&request.intake),
            by_agent: request.agent.is_some(),
            received_at: request.received_at,
            received_on: request.received_on,
            verified_on: request.verified_at.map(|at| calendar.local_date(at)),
            due_on: request.due_on,
            original_due_on: request.original_due_on,
            status: request.status,
            outcome: Outcome::of(request, outside),
            responded_on,
            days_to_respond,
            keep_until: retention.keep_until(responded_on.unwrap_or(request.received_on)),
        }
    }

    /// The calendar year the record is filed under: that of its receipt.
    pub fn year(&self) -> i32 {
        use chrono::Datelike;
        self.received_on.year()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Agent, CostEstimate, EmailAddress, ErasedSource, ErasureReceipt, Language, Relationship, StaffText,
        Transition,
    };

    fn calendar() -> BusinessCalendar {
        BusinessCalendar::parse("Europe/Amsterdam", "").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn request(kind: RequestKind, region: &str) -> RequestRecord {
        let received = at("2026-03-02T09:00:00Z");
        let region = Region::parse(region).unwrap();
        let deadlines = calendar().deadlines(region.regime(), received);
        let email = EmailAddress::parse("jan.jansen@example.nl").unwrap();
        RequestRecord {
            name: Some("Jan Jansen".into()),
            details: Some("my account number is 12345".into()),
            ..RequestRecord::received(
                RequestId::generate(),
                kind,
                region,
                Language::Nl,
                email,
                received,
                deadlines,
            )
        }
    }

    fn then(request: &RequestRecord, transition: Transition, when: &str) -> RequestRecord {
        request.apply(&transition, at(when)).unwrap()
    }

    fn verified(kind: RequestKind, region: &str) -> RequestRecord {
        let token = crate::domain::TokenHash::of_secret("t");
        then(&request(kind, region), Transition::Verify { token }, "2026-03-02T10:00:00Z")
    }

    fn record(request: &RequestRecord) -> ComplianceRecord {
        ComplianceRecord::of(request, OutsideSources::Delivered, &calendar(), RecordRetention::MINIMUM)
    }

    #[test]
    fn retention_is_at_least_24_months() {
        assert_eq!(RecordRetention::months(23), Err(RetentionTooShort));
        assert_eq!(RecordRetention::months(0), Err(RetentionTooShort));
        assert_eq!(RecordRetention::months(24).unwrap(), RecordRetention::MINIMUM);
        assert_eq!(RecordRetention::months(36).unwrap().as_months(), 36);
        let two_years = RecordRetention::MINIMUM;
        assert_eq!(two_years.keep_until(day("2026-03-31")), day("2028-03-31"));
        assert_eq!(two_years.keep_until(day("2026-02-28")), day("2028-02-28"));
        assert_eq!(
            two_years.keep_until(day("2028-02-29")),
            day("2030-02-28"),
            "a leap day keeps to month end"
        );
    }

    #[test]
    fn an_open_request_is_kept_from_receipt_and_a_closed_one_from_its_response() {
        let open = record(&verified(RequestKind::Access, "NL"));
        assert_eq!(open.outcome, Outcome::Open);
        assert_eq!((open.responded_on, open.days_to_respond), (None, None));
        assert_eq!(open.verified_on, Some(day("2026-03-02")));
        assert_eq!(open.keep_until, day("2028-03-02"));

        let started =
            then(&verified(RequestKind::Access, "NL"), Transition::StartWork, "2026-03-03T09:00:00Z");
        let done = then(
            &started,
            Transition::Complete(crate::domain::Completion::Exported { found: 1 }),
            "2026-03-20T22:30:00Z",
        );
        let closed = record(&done);
        assert_eq!(closed.outcome, Outcome::Complied);
        assert_eq!(closed.responded_on, Some(day("2026-03-20")), "the business day in Amsterdam");
        assert_eq!(closed.days_to_respond, Some(18));
        assert_eq!(closed.keep_until, day("2028-03-20"));
        let longer = ComplianceRecord::of(
            &done,
            OutsideSources::Delivered,
            &calendar(),
            RecordRetention::months(36).unwrap(),
        );
        assert_eq!(longer.keep_until, day("2029-03-20"));
    }

    #[test]
    fn each_way_a_request_ends_has_its_outcome() {
        let text = |s: &str| StaffText::parse(s).unwrap();
        let later = "2026-03-10T09:00:00Z";
        let denied = then(
            &verified(RequestKind::Access, "NL"),
            Transition::Deny {
                reason: text("Jan Jansen is under investigation."),
                basis: DenialBasis::LegalClaims,
            },
            later,
        );
        let estimate = CostEstimate::parse("25.00", "EUR").unwrap();
        let excessive = then(
            &verified(RequestKind::Access, "NL"),
            Transition::RejectExcessive { reason: text("Sixth time."), estimate },
            later,
        );
        let limit = then(&verified(RequestKind::Access, "US-CA"), Transition::RejectOverLimit, later);
        let referred = then(
            &verified(RequestKind::Access, "NL"),
            Transition::Refer { customer: None, contact: None },
            later,
        );
        let expired = then(
            &request(RequestKind::Access, "NL"),
            Transition::Expire(crate::domain::ExpiryReason::NotVerified),
            later,
        );
        let cases = [
            (denied, Outcome::Denied { denial_basis: DenialBasis::LegalClaims }, Some("legal_claims")),
            (excessive, Outcome::RejectedExcessive, Some("excessive")),
            (limit, Outcome::RejectedLimit, Some("right_to_know_limit")),
            (referred, Outcome::Referred, None),
            (expired, Outcome::NotVerified, None),
        ];
        for (request, outcome, basis) in cases {
            let kept = record(&request);
            assert_eq!(kept.outcome, outcome, "{:?}", request.status);
            assert_eq!(outcome.refusal_basis(), basis);
            assert_eq!(kept.responded_on, Some(day("2026-03-10")));
            assert_eq!(kept.days_to_respond, Some(8));
        }
        let mut old = verified(RequestKind::Access, "NL");
        old.status = Status::Denied;
        assert_eq!(
            record(&old).outcome,
            Outcome::Denied { denial_basis: DenialBasis::Other },
            "no basis: other"
        );
    }

    #[test]
    fn an_erasure_that_kept_records_or_a_request_a_source_did_not_deliver_for_is_complied_with_in_part() {
        let started =
            then(&verified(RequestKind::Deletion, "NL"), Transition::StartWork, "2026-03-03T09:00:00Z");
        let source = |anonymised, kept_because: Option<&str>| ErasedSource {
            source: "call_detail_records".into(),
            description: "Calls".into(),
            categories: vec!["usage".into()],
            deleted: 3,
            anonymised,
            kept_because: kept_because.map(str::to_owned),
        };
        let erased = |sources| {
            let receipt = ErasureReceipt { sources, ..ErasureReceipt::default() };
            then(
                &started,
                Transition::Complete(crate::domain::Completion::Erased(receipt)),
                "2026-03-04T09:00:00Z",
            )
        };
        assert_eq!(record(&erased(vec![source(0, None)])).outcome, Outcome::Complied);
        let kept = erased(vec![source(0, None), source(2, Some("Kept 25 months for billing disputes."))]);
        assert_eq!(
            record(&kept).outcome,
            Outcome::CompliedInPart { in_part_because: PartReason::KeptForLegalReason }
        );
        let whole = erased(vec![source(0, None)]);
        let undelivered =
            ComplianceRecord::of(&whole, OutsideSources::NotDelivered, &calendar(), RecordRetention::MINIMUM);
        assert_eq!(
            undelivered.outcome,
            Outcome::CompliedInPart { in_part_because: PartReason::SourcesNotDelivered }
        );
        let open = ComplianceRecord::of(
            &started,
            OutsideSources::NotDelivered,
            &calendar(),
            RecordRetention::MINIMUM,
        );
        assert_eq!(open.outcome, Outcome::Open, "an open request waits; it is not answered in part");
    }

    #[test]
    fn the_record_keeps_the_channel_and_whether_an_agent_asked_but_nothing_of_the_person() {
        let mut request = verified(RequestKind::Deletion, "NL");
        request.intake =
            Intake::Staff { channel: OfflineChannel::Phone, entered_by: "arn:aws:iam::1:user/kim".into() };
        request.agent = Some(Agent {
            name: "Agatha Agent".into(),
            email: EmailAddress::parse("agatha@agents.example").unwrap(),
            relationship: Relationship::AuthorisedAgent,
        });
        request.extension_reason = Some("We must ask Jan Jansen.".into());
        let kept = record(&request);
        assert_eq!(kept.channel, Channel::Offline(OfflineChannel::Phone));
        assert!(kept.by_agent);
        let json = serde_json::to_string(&kept).unwrap();
        for secret in ["jan", "Jansen", "12345", "example", "Agatha", "agents", "kim", "ask"] {
            assert!(!json.to_lowercase().contains(&secret.to_lowercase()), "{secret} in {json}");
        }
    }

    #[test]
    fn a_record_round_trips_through_json_and_dynamodb_with_its_outcome_flat() {
        let denied = then(
            &verified(RequestKind::Access, "US-CA"),
            Transition::Deny { reason: StaffText::parse("No.").unwrap(), basis: DenialBasis::Exemption },
            "2026-03-10T09:00:00Z",
        );
        let kept = record(&denied);
        let json = serde_json::to_value(&kept).unwrap();
        assert_eq!(json["outcome"], "denied");
        assert_eq!(json["denial_basis"], "exemption");
        assert_eq!(json["channel"], "web");
        assert_eq!(serde_json::from_value::<ComplianceRecord>(json).unwrap(), kept);
        let item: serde_dynamo::Item = serde_dynamo::to_item(&kept).unwrap();
        assert_eq!(serde_dynamo::from_item::<_, ComplianceRecord>(item).unwrap(), kept);
        let open = record(&verified(RequestKind::Access, "NL"));
        assert_eq!(serde_json::to_value(&open).unwrap()["outcome"], "open");
    }

    #[test]
    fn denial_bases_and_channels_read_back_from_their_names() {
        for basis in DenialBasis::ALL {
            assert_eq!(DenialBasis::parse(basis.as_str()), Some(basis));
            assert_eq!(serde_json::to_value(basis).unwrap(), basis.as_str());
        }
        assert_eq!(DenialBasis::parse("Other"), None);
        for name in Intake::channel_names() {
            assert_eq!(Channel::try_from(name.to_owned()).unwrap().as_str(), name);
        }
        assert_eq!(Channel::try_from("fax".to_owned()), Err(UnknownChannel));
    }
}
