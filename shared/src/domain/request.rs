use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{CostEstimate, Deadlines, EmailAddress, Event, Language, Regime, Region, RequestKind, Status};

/// A request's public identifier: a random UUID, so ids cannot be guessed or enumerated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(uuid::Uuid);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a request id")]
pub struct BadRequestId;

impl RequestId {
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::new_v4())
    }

    /// Only the canonical lower-case hyphenated form, the one we hand out.
    pub fn parse(input: &str) -> Result<RequestId, BadRequestId> {
        let id = uuid::Uuid::try_parse(input).map_err(|_| BadRequestId)?;
        let canonical = id.hyphenated().to_string();
        if canonical == input { Ok(RequestId(id)) } else { Err(BadRequestId) }
    }
}

impl FromStr for RequestId {
    type Err = BadRequestId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestId::parse(s)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl TryFrom<String> for RequestId {
    type Error = BadRequestId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RequestId::parse(&value)
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> String {
        id.to_string()
    }
}

/// Who caused an event. Staff are named by their principal, never by a requester's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "id")]
pub enum Actor {
    Requester,
    System,
    Staff(String),
}

/// One line of a request's audit trail: what happened, when, by whom, and why. It holds no
/// personal data, so it can outlive an erasure as proof the request was honoured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub request_id: RequestId,
    /// The request's version after this event; 1 for the submission.
    pub version: u32,
    pub event: Event,
    pub from: Option<Status>,
    pub to: Status,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub reason: Option<String>,
}

/// What dispatch learnt about the requester from the data map before any work started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    /// The address has an account with us.
    pub has_account: bool,
    /// A source shows a birth date under 16: the staff notice flags it, deletion is offered.
    pub child: bool,
}

/// What an erasure did in one source of the data map: counts and categories, never the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedSource {
    pub source: String,
    pub description: String,
    pub categories: Vec<String>,
    pub deleted: u32,
    pub anonymised: u32,
    /// Why anonymised records were kept rather than deleted (the policy promises to say why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

/// The erasure's receipt, kept on the request: proof it was honoured, with no copy of the data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReceipt {
    pub sources: Vec<ErasedSource>,
    /// Earlier exports of this person's data (and their download links) that were deleted.
    pub exports_deleted: u32,
    /// Recipient categories the data map names as processors, instructed to delete too.
    pub processors_instructed: Vec<String>,
    /// The recipients told to delete (GDPR Art. 19: the person is told who they are), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients_told: Vec<String>,
    /// What the person's receipt says, in the request's language, as the data map worded it when
    /// the erasure completed (the mail must not depend on a later map). Absent on receipts from
    /// before it existed, which the mail words from the codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wording: Option<ReceiptWording>,
}

/// The data map's words for an erasure receipt, in one language: no code reaches the person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptWording {
    pub language: Language,
    /// One per source of the receipt that has its words, by the source's id.
    pub sources: Vec<SourceWording>,
    /// The recipient categories of `processors_instructed`, in words (`Service providers working
    /// on our behalf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<String>,
    /// The recipients of `recipients_told`, each with what it does for us.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

impl ReceiptWording {
    /// The words of one source of the receipt.
    pub fn source(&self, id: &str) -> Option<&SourceWording> {
        self.sources.iter().find(|s| s.source == id)
    }
}

/// One source of an erasure receipt as the person reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceWording {
    pub source: String,
    /// Its name (`Gesprekken`).
    pub label: String,
    /// The kinds of data it holds, in words.
    pub categories: Vec<String>,
    /// What its counts count.
    pub unit: ErasedUnit,
    /// Why anonymised records are kept, and the law that requires it: the map's, for a source
    /// that anonymises; none for one outside AWS, whose receipt gives its own reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
}

/// What one item counted in a receipt is: a record of a table (or of a source outside AWS), or a
/// file (an object of a bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasedUnit {
    Record,
    File,
}

impl ErasedUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasedUnit::Record => "record",
            ErasedUnit::File => "file",
        }
    }
}

/// A request as stored (the store adds its keys around these fields). `Debug` leaves out the
/// requester's address, name and free text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    #[serde(rename = "request_id")]
    pub id: RequestId,
    pub status: Status,
    pub version: u32,
    pub kind: RequestKind,
    pub region: Region,
    pub regime: Regime,
    pub language: Language,
    pub email: EmailAddress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    pub received_at: DateTime<Utc>,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_by: Option<NaiveDate>,
    /// When a confirmation of receipt (the verification email, or the reminder) was delivered,
    /// as SES reported it (`mail-events`); sending one is not enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// The due date before the one extension, once there has been one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_due_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_reason: Option<String>,
    /// Why it was closed (or, for a completion, the staff's note to the requester).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<String>,
    /// A denial's coded basis: what the records keep (the reason above is free text for the
    /// requester, and may quote them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial_basis: Option<super::DenialBasis>,
    /// Set when staff mark the request excessive or repetitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_estimate: Option<CostEstimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triage: Option<Triage>,
    /// For a referral: the enterprise customer's administrator, whom the requester should ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_contact: Option<String>,
    /// For a referral: the enterprise customer (the organisation) that manages the account, by
    /// the name its account record gives; the referral notice names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_customer: Option<String>,
    /// Portability to a third party: where the export may go, once the requester confirms it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_confirmed_at: Option<DateTime<Utc>>,
    /// The recipient was not confirmed by the confirmation's date: the export goes to the
    /// requester only, and nothing to the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_lapsed_at: Option<DateTime<Utc>>,
    /// Made by an agent for the person whose address `email` is: the agent is told how it goes,
    /// never sent the person's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<super::Agent>,
    /// A CCPA request to know for a shorter period than the law's default (1 January 2022 on):
    /// what was collected from this day on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_from: Option<NaiveDate>,
    /// How the request reached us (online unless staff entered it).
    #[serde(default, skip_serializing_if = "super::Intake::is_web")]
    pub intake: super::Intake,
    /// Self-service rectification: attribute -> corrected value, checked against the data map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrections: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ErasureReceipt>,
    /// An export too big for one invocation, completed as this many numbered parts; none for an
    /// export in one piece (and every other request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_parts: Option<u32>,
    /// A completed export: how many records and files it holds (0: nothing was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_found: Option<u64>,
    /// A mail budget was spent when this request came in: it gets no acknowledgement by mail
    /// (an opt-out is honoured all the same).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mail_withheld: bool,
    /// When staff sent a confirmation of receipt by hand (CCPA regulations §7021(b)), once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_confirmed_at: Option<DateTime<Utc>>,
    /// The day the person accepted the fee of a request rejected as excessive (by reply); the
    /// work then started over, due a fresh legal period from that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_accepted_on: Option<NaiveDate>,
    /// A refused correction the person disputes, and the restriction that holds meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<super::Dispute>,
    pub updated_at: DateTime<Utc>,
}

impl RequestRecord {
    /// A request as it is received: pending verification, version 1, its deadlines fixed, and
    /// nothing else known or decided yet.
    pub fn received(
        id: RequestId,
        kind: RequestKind,
        region: Region,
        language: Language,
        email: EmailAddress,
        received_at: DateTime<Utc>,
        deadlines: Deadlines,
    ) -> RequestRecord {
        RequestRecord {
            id,
            status: Status::PendingVerification,
            version: 1,
            kind,
            regime: region.regime(),
            region,
            language,
            email,
            name: None,
            details: None,
            received_at,
            received_on: deadlines.received_on,
            due_on: deadlines.due_on,
            acknowledge_by: deadlines.acknowledge_by,
            acknowledged_at: None,
            verified_at: None,
            original_due_on: None,
            extension_reason: None,
            closed_reason: None,
            denial_basis: None,
            cost_estimate: None,
            triage: None,
            referral_contact: None,
            referral_customer: None,
            recipient: None,
            recipient_confirmed_at: None,
            recipient_lapsed_at: None,
            agent: None,
            period_from: None,
            intake: super::Intake::Web,
            corrections: None,
            receipt: None,
            export_parts: None,
            export_found: None,
            mail_withheld: false,
            receipt_confirmed_at: None,
            fee_accepted_on: None,
            dispute: None,
            updated_at: received_at,
        }
    }
}

impl fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRecord")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("region", &self.region)
            .field("regime", &self.regime)
            .field("language", &self.language)
            .field("channel", &self.intake.channel())
            .field("received_at", &self.received_at)
            .field("due_on", &self.due_on)
            .field("acknowledge_by", &self.acknowledge_by)
            .field("acknowledged_at", &self.acknowledged_at)
            .field("verified_at", &self.verified_at)
            .field("original_due_on", &self.original_due_on)
            .field("denial_basis", &self.denial_basis)
            .field("cost_estimate", &self.cost_estimate)
            .field("triage", &self.triage)
            .field("recipient_confirmed_at", &self.recipient_confirmed_at)
            .field("recipient_lapsed_at", &self.recipient_lapsed_at)
            .field("agent", &self.agent)
            .field("receipt", &self.receipt)
            .field("export_parts", &self.export_parts)
            .field("export_found", &self.export_found)
            .field("receipt_confirmed_at", &self.receipt_confirmed_at)
            .field("fee_accepted_on", &self.fee_accepted_on)
            .field("dispute", &self.dispute)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_record_shows_no_personal_data() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z").unwrap().with_timezone(&Utc);
        let day = at.date_naive();
        let deadlines = Deadlines { received_on: day, due_on: day, acknowledge_by: None };
        let email = EmailAddress::parse("jan.jansen@example.nl").unwrap();
        let region = Region::parse("NL").unwrap();
        let record = RequestRecord {
            name: Some("Jan Jansen".into()),
            details: Some("my account number is 12345".into()),
            extension_reason: Some("we need to ask Jan Jansen".into()),
            closed_reason: Some("Jan Jansen asked twice".into()),
            ..RequestRecord::received(
                RequestId::generate(),
                RequestKind::Access,
                region,
                Language::Nl,
                email,
                at,
                deadlines,
            )
        };
        let shown = format!("{record:?}");
        for secret in ["jan", "Jansen", "12345", "example"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains(&record.id.to_string()));
    }

    #[test]
    fn request_ids_are_random_uuids_in_canonical_form() {
        let a = RequestId::generate();
        assert_ne!(a, RequestId::generate());
        assert_eq!(RequestId::parse(&a.to_string()), Ok(a));
        assert_eq!(a.to_string().len(), 36);
    }

    #[test]
    fn request_id_parse_refuses_other_spellings() {
        let a = RequestId::generate().to_string();
        for bad in [
            a.to_uppercase(),
            a.replace('-', ""),
            format!("{{{a}}}"),
            format!("{a} "),
            "../etc/passwd".to_owned(),
            String::new(),
        ] {
            assert!(RequestId::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn actor_serialises_with_a_type_tag() {
        assert_eq!(serde_json::to_value(Actor::Requester).unwrap(), serde_json::json!({"type": "requester"}));
        assert_eq!(
            serde_json::to_value(Actor::Staff("arn:aws:iam::1:user/p".into())).unwrap(),
            serde_json::json!({"type": "staff", "id": "arn:aws:iam::1:user/p"})
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = RequestId> {
        any::<u128>().prop_map(|n| RequestId(uuid::Uuid::from_u128(n)))
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(input in any::<String>()) {
            let _ = RequestId::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_id_like_text(input in "[0-9a-fA-F{}urn:-]{0,45}") {
            if let Ok(id) = RequestId::parse(&input) {
                prop_assert_eq!(id.to_string(), input);
            }
        }

        #[test]
        fn an_accepted_id_is_exactly_its_canonical_form(input in any::<String>()) {
            if let Ok(id) = RequestId::parse(&input) {
                prop_assert_eq!(id.to_string(), input);
            }
        }

        #[test]
        fn every_id_round_trips_through_display_and_json(id in id()) {
            let text = id.to_string();
            prop_assert_eq!(text.len(), 36);
            prop_assert_eq!(RequestId::parse(&text), Ok(id));
            prop_assert_eq!(text.parse::<RequestId>(), Ok(id));
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<RequestId>(&json).unwrap(), id);
        }

        #[test]
        fn other_spellings_of_the_same_uuid_are_refused(id in id()) {
            let uuid = id.0;
            for other in [
                uuid.simple().to_string(),
                uuid.braced().to_string(),
                uuid.urn().to_string(),
                format!(" {uuid}"),
                format!("{uuid}/"),
            ] {
                prop_assert_eq!(RequestId::parse(&other), Err(BadRequestId), "{:?}", other);
            }
            let upper = uuid.hyphenated().to_string().to_uppercase();
            prop_assert_eq!(RequestId::parse(&upper).is_ok(), upper == uuid.hyphenated().to_string());
        }
    }
}
