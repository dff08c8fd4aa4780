//! The mailer port, its SES v2 implementation, and the templates of every email we send.
//!
//! Every email carries tags (SES `EmailTags`): what it is ([`MessageKind`]) and which request it
//! concerns. SES hands them back with each delivery, bounce and complaint event, which is how
//! `mail-events` finds the request a mail belonged to without keeping any address.

pub mod catalogue;
mod guard;
mod memory;
mod ses;
pub mod templates;
pub mod words;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use crate::domain::{EmailAddress, RequestId};

pub use guard::{Guard, guard, record_withheld, send_guarded};
pub use memory::MemoryMailer;
pub use ses::SesMailer;

/// What a mail is. Its name is the `kind` tag's value and the name of its template files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    Verification,
    Reminder,
    RecipientConfirmation,
    RecipientDelivery,
    Extended,
    Completed,
    Denied,
    Excessive,
    Referred,
    Limit,
    StaffNotice,
    Digest,
    /// Tells staff that a request's answer went to (or bounced from) an address that cannot
    /// receive our mail.
    AnswerAlert,
    /// Tells an agent how the request they made for someone goes (never the person's data).
    AgentNotice,
    /// Tells a recipient of the company's data (a processor) to erase, correct or restrict a
    /// person's data too (GDPR Art. 19).
    RecipientInstruction,
    /// A request closed because the address was never confirmed (timed out, or locked after
    /// wrong codes): it was not acted on, and what the person can do (CCPA regulations §7024).
    Unverified,
    /// A confirmation of receipt staff send by hand (CCPA regulations §7021(b)): received when,
    /// how it will be verified and handled, and by when it will be answered.
    ReceiptConfirmation,
    /// The person accepted the fee of an excessive request: the work restarts, due on a new date.
    FeeAccepted,
    /// The person's dispute of a refused correction is noted, and the data restricted meanwhile.
    DisputeRecorded,
    /// The restriction of disputed data will be lifted on a day, and why (GDPR Art. 18(3)).
    RestrictionLifting,
}

impl MessageKind {
    pub const ALL: [MessageKind; 20] = [
        MessageKind::Verification,
        MessageKind::Reminder,
        MessageKind::RecipientConfirmation,
        MessageKind::RecipientDelivery,
        MessageKind::Extended,
        MessageKind::Completed,
        MessageKind::Denied,
        MessageKind::Excessive,
        MessageKind::Referred,
        MessageKind::Limit,
        MessageKind::StaffNotice,
        MessageKind::Digest,
        MessageKind::AnswerAlert,
        MessageKind::AgentNotice,
        MessageKind::RecipientInstruction,
        MessageKind::Unverified,
        MessageKind::ReceiptConfirmation,
        MessageKind::FeeAccepted,
        MessageKind::DisputeRecorded,
        MessageKind::RestrictionLifting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Verification => "verification",
            MessageKind::Reminder => "reminder",
            MessageKind::RecipientConfirmation => "recipient_confirmation",
            MessageKind::RecipientDelivery => "recipient_delivery",
            MessageKind::Extended => "extended",
            MessageKind::Completed => "completed",
            MessageKind::Denied => "denied",
            MessageKind::Excessive => "excessive",
            MessageKind::Referred => "referred",
            MessageKind::Limit => "limit",
            MessageKind::StaffNotice => "staff_notice",
            MessageKind::Digest => "digest",
            MessageKind::AnswerAlert => "answer_alert",
            MessageKind::AgentNotice => "agent_notice",
            MessageKind::RecipientInstruction => "recipient_instruction",
            MessageKind::Unverified => "unverified",
            MessageKind::ReceiptConfirmation => "receipt_confirmation",
            MessageKind::FeeAccepted => "fee_accepted",
            MessageKind::DisputeRecorded => "dispute_recorded",
            MessageKind::RestrictionLifting => "restriction_lifting",
        }
    }

    pub fn parse(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Mail to the privacy staff: never withheld, and its bounces suppress nothing (a staff
    /// mailbox that bounces is an operational fault, not a person who cannot be reached).
    pub fn is_to_staff(self) -> bool {
        matches!(self, MessageKind::StaffNotice | MessageKind::Digest | MessageKind::AnswerAlert)
    }

    /// The answer the law owes the requester (the request's outcome, or the extension of its
    /// deadline): sent even to a suppressed address, with a staff alert, because not sending it
    /// would leave the request unanswered on our side as well.
    pub fn is_answer(self) -> bool {
        matches!(
            self,
            MessageKind::Completed
                | MessageKind::Denied
                | MessageKind::Excessive
                | MessageKind::Referred
                | MessageKind::Limit
                | MessageKind::Extended
        )
    }

    /// A confirmation of receipt (the CCPA's, within 10 business days): it counts once delivered.
    pub fn confirms_receipt(self) -> bool {
        matches!(self, MessageKind::Verification | MessageKind::Reminder | MessageKind::ReceiptConfirmation)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tags a mail carries: its kind and the request it concerns, if one. Both values keep to
/// SES's tag alphabet (`[A-Za-z0-9_-]`) and name no person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailTags {
    pub kind: MessageKind,
    pub request: Option<RequestId>,
}

impl MailTags {
    pub const KIND: &'static str = "kind";
    pub const REQUEST: &'static str = "request";

    pub fn new(kind: MessageKind, request: Option<RequestId>) -> MailTags {
        MailTags { kind, request }
    }

    /// As SES takes them: (name, value) pairs.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![(MailTags::KIND, self.kind.as_str().to_owned())];
        if let Some(request) = self.request {
            pairs.push((MailTags::REQUEST, request.to_string()));
        }
        pairs
    }

    /// As SES hands them back in an event (`mail.tags`: name -> values, SES's own `ses:*` tags
    /// among them). `None` without a kind we know: not a mail of ours, or of a newer version.
    pub fn from_event(tags: &BTreeMap<String, Vec<String>>) -> Option<MailTags> {
        let first = |name: &str| tags.get(name).and_then(|values| values.first()).map(String::as_str);
        let kind = MessageKind::parse(first(MailTags::KIND)?)?;
        let request = first(MailTags::REQUEST).and_then(|id| RequestId::parse(id).ok());
        Some(MailTags { kind, request })
    }
}

/// The id SES gave a mail it accepted (what its events name the mail by).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MessageId(pub String);

impl MessageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rendered email. `Debug` shows neither the recipient nor the body (the body carries secrets).
#[derive(Clone)]
pub struct OutgoingEmail {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub tags: MailTags,
}

impl fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail").field("tags", &self.tags).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SendEmail failed: {code}")]
    Send { code: String },
    #[error("template failed: {0}")]
    Template(String),
}

pub trait Mailer: Send + Sync {
    /// Sends one email with its tags; the id SES gave it.
    fn send(&self, email: &OutgoingEmail) -> impl Future<Output = Result<MessageId, MailError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names_and_keep_to_the_tag_alphabet() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
            assert!(kind.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
        assert_eq!(MessageKind::parse("newsletter"), None);
    }

    #[test]
    fn tags_name_the_kind_and_the_request_and_come_back_from_an_event() {
        let id = RequestId::generate();
        let tags = MailTags::new(MessageKind::Completed, Some(id));
        let pairs = tags.pairs();
        assert_eq!(pairs, vec![("kind", "completed".to_owned()), ("request", id.to_string())]);
        for (_, value) in &pairs {
            assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{value}");
        }
        let mut event: BTreeMap<String, Vec<String>> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), vec![v])).collect();
        event.insert("ses:configuration-set".into(), vec!["privacy-requests".into()]);
        assert_eq!(MailTags::from_event(&event), Some(tags));
        let digest = MailTags::new(MessageKind::Digest, None);
        assert_eq!(digest.pairs().len(), 1, "no request tag without a request");
    }

    #[test]
    fn unknown_or_missing_kinds_are_not_ours() {
        let mut tags = BTreeMap::new();
        assert_eq!(MailTags::from_event(&tags), None);
        tags.insert("kind".to_owned(), vec!["newsletter".to_owned()]);
        assert_eq!(MailTags::from_event(&tags), None);
        tags.insert("kind".to_owned(), vec!["reminder".to_owned()]);
        tags.insert("request".to_owned(), vec!["not-an-id".to_owned()]);
        assert_eq!(MailTags::from_event(&tags), Some(MailTags::new(MessageKind::Reminder, None)));
    }

    #[test]
    fn answers_are_sent_whatever_and_staff_mail_is_never_a_requesters() {
        for kind in MessageKind::ALL {
            assert!(!(kind.is_answer() && kind.is_to_staff()), "{kind}");
            assert!(!(kind.confirms_receipt() && kind.is_answer()), "{kind}");
        }
        assert!(MessageKind::Completed.is_answer());
        assert!(!MessageKind::Reminder.is_answer());
        assert!(MessageKind::Verification.confirms_receipt());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = MessageKind> {
        prop::sample::select(MessageKind::ALL.to_vec())
    }

    fn request_id() -> impl Strategy<Value = RequestId> {
        any::<u128>().prop_map(|n| RequestId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap())
    }

    proptest! {
        #[test]
        fn a_kind_is_read_exactly_from_its_own_name(name in any::<String>()) {
            let known = MessageKind::ALL.into_iter().find(|k| k.as_str() == name);
            prop_assert_eq!(MessageKind::parse(&name), known);
        }

        #[test]
        fn a_kind_in_another_case_or_padded_is_not_ours(kind in kind(), pad in prop::sample::select(vec![" ", "\n", "\0", "-"])) {
            prop_assert_eq!(MessageKind::parse(&kind.to_string()), Some(kind));
            prop_assert_eq!(MessageKind::parse(&kind.as_str().to_uppercase()), None);
            let (before, after) = (format!("{pad}{kind}"), format!("{kind}{pad}"));
            prop_assert_eq!(MessageKind::parse(&before), None);
            prop_assert_eq!(MessageKind::parse(&after), None);
        }

        /// What SES hands back is what was sent, whatever else SES adds.
        #[test]
        fn tags_come_back_from_an_event_as_they_were_sent(
            kind in kind(),
            request in prop::option::of(request_id()),
            others in prop::collection::btree_map("ses:[a-z-]{1,20}", prop::collection::vec(any::<String>(), 0..3), 0..4),
        ) {
            let tags = MailTags::new(kind, request);
            let mut event = others;
            for (name, value) in tags.pairs() {
                prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{}", value);
                event.insert(name.to_owned(), vec![value]);
            }
            prop_assert_eq!(MailTags::from_event(&event), Some(tags));
        }

        #[test]
        fn any_event_tags_give_ours_or_none_without_panicking(
            tags in prop::collection::btree_map(
                prop_oneof![Just("kind".to_owned()), Just("request".to_owned()), any::<String>()],
                prop::collection::vec(prop_oneof![kind().prop_map(|k| k.to_string()), any::<String>()], 0..3),
                0..4,
            ),
        ) {
            let read = MailTags::from_event(&tags);
            let first = |name: &str| tags.get(name).and_then(|v| v.first()).cloned();
            match read {
                Some(read) => {
                    prop_assert_eq!(Some(read.kind.as_str().to_owned()), first("kind"));
                    if let Some(id) = read.request {
                        prop_assert_eq!(Some(id.to_string()), first("request"));
                    }
                }
                None => prop_assert!(first("kind").and_then(|k| MessageKind::parse(&k)).is_none()),
            }
        }
    }
}
