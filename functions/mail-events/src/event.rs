//! SES's event publishing format, as the configuration set's SNS destination carries it (the SNS
//! message is this JSON), read into what `mail-events` acts on. Only what it needs is read; an
//! event type it does not know is kept by name and ignored.
//!
//! Nothing of a message's content reaches an error: a message that cannot be read is
//! [`Malformed`], with a reason of our own words (serde's messages may quote the input).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

use privacy_shared::domain::EmailAddress;
use privacy_shared::mail::{MailTags, MessageKind};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    /// `notificationType` in SES's older identity notifications, which say the same.
    #[serde(alias = "notificationType")]
    event_type: String,
    mail: RawMail,
    #[serde(default)]
    bounce: Option<RawBounce>,
    #[serde(default)]
    complaint: Option<RawComplaint>,
    #[serde(default)]
    delivery: Option<RawDelivery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMail {
    message_id: String,
    timestamp: DateTime<Utc>,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBounce {
    bounce_type: String,
    #[serde(default)]
    bounced_recipients: Vec<RawRecipient>,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComplaint {
    #[serde(default)]
    complained_recipients: Vec<RawRecipient>,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDelivery {
    timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecipient {
    email_address: String,
}

/// How SES classifies a bounce. Only a permanent one means the address will never take mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceType {
    Permanent,
    Transient,
    Undetermined,
}

impl BounceType {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::Permanent => "permanent",
            BounceType::Transient => "transient",
            BounceType::Undetermined => "undetermined",
        }
    }
}

/// What happened to one mail. `Debug` shows no address.
#[derive(Clone, PartialEq, Eq)]
pub enum MailEvent {
    Delivered {
        at: DateTime<Utc>,
    },
    Bounced {
        bounce: BounceType,
        recipients: Vec<EmailAddress>,
        at: DateTime<Utc>,
    },
    Complained {
        recipients: Vec<EmailAddress>,
        at: DateTime<Utc>,
    },
    /// `Send`, `Reject`, `DeliveryDelay`, `Open`, `Click`, …: nothing to act on.
    Other(String),
}

impl MailEvent {
    /// Its name in ledger keys and logs.
    pub fn name(&self) -> &str {
        match self {
            MailEvent::Delivered { .. } => "delivery",
            MailEvent::Bounced { .. } => "bounce",
            MailEvent::Complained { .. } => "complaint",
            MailEvent::Other(name) => name,
        }
    }
}

impl std::fmt::Debug for MailEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailEvent::Delivered { at } => f.debug_struct("Delivered").field("at", at).finish(),
            MailEvent::Bounced { bounce, recipients, at } => f
                .debug_struct("Bounced")
                .field("bounce", bounce)
                .field("recipients", &recipients.len())
                .field("at", at)
                .finish(),
            MailEvent::Complained { recipients, at } => {
                f.debug_struct("Complained").field("recipients", &recipients.len()).field("at", at).finish()
            }
            MailEvent::Other(name) => f.debug_tuple("Other").field(name).finish(),
        }
    }
}

/// One SES event about one of our mails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// SES's id of the mail (as `SendEmail` returned it).
    pub message_id: String,
    /// The mail's kind and request; `None` for a mail that is not tagged as ours.
    pub tags: Option<MailTags>,
    pub event: MailEvent,
}

impl Notice {
    pub fn kind(&self) -> Option<MessageKind> {
        self.tags.map(|t| t.kind)
    }
}

/// Why a message could not be read. The reasons are ours; no part of the message is in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed mail event: {0}")]
pub struct Malformed(pub &'static str);

/// SES message ids are letters, digits and hyphens; anything else is not one (and would not do
/// as part of a ledger key).
fn valid_message_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// An address as SES reports it, bare or as `Name <address>`; `None` when it is neither.
fn address(raw: &str) -> Option<EmailAddress> {
    let bare = match (raw.rfind('<'), raw.rfind('>')) {
        (Some(open), Some(close)) if open < close => &raw[open + 1..close],
        _ => raw,
    };
    EmailAddress::parse(bare.trim()).ok()
}

/// The recipients that are addresses; those that are not cannot be suppressed and are dropped
/// (counted in the log by the caller through the difference, never shown).
fn addresses(raw: &[RawRecipient]) -> Vec<EmailAddress> {
    raw.iter().filter_map(|r| address(&r.email_address)).collect()
}

/// Reads one SNS message of the configuration set's event destination.
pub fn parse(message: &str) -> Result<Notice, Malformed> {
    let raw: RawEvent = serde_json::from_str(message).map_err(|_| Malformed("not an SES event"))?;
    if !valid_message_id(&raw.mail.message_id) {
        return Err(Malformed("message id"));
    }
    let tags = MailTags::from_event(&raw.mail.tags);
    let event = match raw.event_type.as_str() {
        "Delivery" => {
            let at = raw.delivery.map_or(raw.mail.timestamp, |d| d.timestamp);
            MailEvent::Delivered { at }
        }
        "Bounce" => {
            let bounce = raw.bounce.ok_or(Malformed("bounce without its details"))?;
            let kind = match bounce.bounce_type.as_str() {
                "Permanent" => BounceType::Permanent,
                "Transient" => BounceType::Transient,
                _ => BounceType::Undetermined,
            };
            MailEvent::Bounced {
                bounce: kind,
                recipients: addresses(&bounce.bounced_recipients),
                at: bounce.timestamp.unwrap_or(raw.mail.timestamp),
            }
        }
        "Complaint" => {
            let complaint = raw.complaint.ok_or(Malformed("complaint without its details"))?;
            MailEvent::Complained {
                recipients: addresses(&complaint.complained_recipients),
                at: complaint.timestamp.unwrap_or(raw.mail.timestamp),
            }
        }
        other if other.len() <= 40 && other.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') => {
            MailEvent::Other(other.to_owned())
        }
        _ => return Err(Malformed("event type")),
    };
    Ok(Notice { message_id: raw.mail.message_id, tags, event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy_shared::domain::RequestId;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn mail(id: RequestId, kind: &str) -> serde_json::Value {
        json!({
            "timestamp": "2026-11-28T09:00:00.000Z",
            "source": "privacy@example.com",
            "messageId": "0102018c1a2b3c4d-5e6f-4a1b-9c8d-000000000000-000000",
            "destination": ["person@example.com"],
            "tags": {
                "ses:configuration-set": ["privacy-requests"],
                "ses:source-ip": ["192.0.2.1"],
                "kind": [kind],
                "request": [id.to_string()]
            }
        })
    }

    #[test]
    fn a_delivery_names_its_time_kind_and_request() {
        let id = RequestId::generate();
        let message = json!({
            "eventType": "Delivery",
            "mail": mail(id, "verification"),
            "delivery": {
                "timestamp": "2026-11-28T09:00:02.118Z",
                "processingTimeMillis": 2118,
                "recipients": ["person@example.com"],
                "smtpResponse": "250 ok",
                "reportingMTA": "a8-70.smtp-out.amazonses.com"
            }
        });
        let notice = parse(&message.to_string()).unwrap();
        assert_eq!(notice.tags, Some(MailTags::new(MessageKind::Verification, Some(id))));
        assert_eq!(notice.event, MailEvent::Delivered { at: at("2026-11-28T09:00:02.118Z") });
        assert_eq!(notice.message_id, "0102018c1a2b3c4d-5e6f-4a1b-9c8d-000000000000-000000");
    }

    #[test]
    fn a_bounce_names_its_type_and_recipients() {
        let id = RequestId::generate();
        for (raw, expected) in [
            ("Permanent", BounceType::Permanent),
            ("Transient", BounceType::Transient),
            ("Undetermined", BounceType::Undetermined),
        ] {
            let message = json!({
                "eventType": "Bounce",
                "mail": mail(id, "reminder"),
                "bounce": {
                    "bounceType": raw,
                    "bounceSubType": "General",
                    "bouncedRecipients": [
                        {"emailAddress": "Person@Example.com", "action": "failed", "status": "5.1.1"},
                        {"emailAddress": "\"A Person\" <other@example.org>"}
                    ],
                    "timestamp": "2026-11-28T09:00:03.000Z",
                    "feedbackId": "0102018c-feedback"
                }
            });
            let notice = parse(&message.to_string()).unwrap();
            let MailEvent::Bounced { bounce, recipients, at: when } = notice.event else {
                panic!("a bounce")
            };
            assert_eq!(bounce, expected);
            assert_eq!(when, at("2026-11-28T09:00:03Z"));
            let addresses: Vec<&str> = recipients.iter().map(|r| r.as_str()).collect();
            assert_eq!(addresses, ["Person@Example.com", "other@example.org"]);
        }
    }

    #[test]
    fn a_complaint_names_its_recipients() {
        let message = json!({
            "eventType": "Complaint",
            "mail": mail(RequestId::generate(), "completed"),
            "complaint": {
                "complainedRecipients": [{"emailAddress": "person@example.com"}],
                "timestamp": "2026-11-29T10:00:00Z",
                "complaintFeedbackType": "abuse"
            }
        });
        let notice = parse(&message.to_string()).unwrap();
        let MailEvent::Complained { recipients, at: when } = notice.event else { panic!("a complaint") };
        assert_eq!(recipients.len(), 1);
        assert_eq!(when, at("2026-11-29T10:00:00Z"));
    }

    #[test]
    fn other_event_types_are_kept_by_name_to_be_ignored() {
        for kind in ["Send", "Reject", "DeliveryDelay", "Open", "Rendering Failure", "SomethingNew"] {
            let message = json!({"eventType": kind, "mail": mail(RequestId::generate(), "digest")});
            assert_eq!(parse(&message.to_string()).unwrap().event, MailEvent::Other(kind.to_owned()));
        }
    }

    #[test]
    fn untagged_mail_has_no_kind_or_request() {
        let mut untagged = mail(RequestId::generate(), "x");
        untagged["tags"] = json!({"ses:configuration-set": ["privacy-requests"]});
        let message = json!({"eventType": "Delivery", "mail": untagged});
        let notice = parse(&message.to_string()).unwrap();
        assert_eq!(notice.tags, None);
        assert_eq!(notice.event, MailEvent::Delivered { at: at("2026-11-28T09:00:00Z") });
    }

    #[test]
    fn unreadable_messages_are_malformed_and_say_nothing_of_their_content() {
        let id = RequestId::generate();
        let mut bad_id = mail(id, "reminder");
        bad_id["messageId"] = json!("person@example.com <script>");
        let cases = [
            "person@example.com".to_owned(),
            json!({"eventType": "Bounce"}).to_string(),
            json!({"eventType": "Bounce", "mail": mail(id, "reminder")}).to_string(),
            json!({"eventType": "Complaint", "mail": mail(id, "reminder")}).to_string(),
            json!({"eventType": "Delivery", "mail": bad_id}).to_string(),
            json!({"eventType": "person@example.com", "mail": mail(id, "reminder")}).to_string(),
            json!({"eventType": "Delivery", "mail": {"messageId": "x", "timestamp": "yesterday"}})
                .to_string(),
        ];
        for message in cases {
            let err = parse(&message).expect_err(&message);
            assert!(!err.to_string().contains("person") && !err.to_string().contains("example"), "{err}");
        }
    }

    #[test]
    fn debug_of_an_event_shows_no_address() {
        let event = MailEvent::Complained {
            recipients: vec![EmailAddress::parse("person@example.com").unwrap()],
            at: at("2026-11-29T10:00:00Z"),
        };
        let shown = format!("{event:?}");
        assert!(!shown.contains("person") && !shown.contains("example"), "{shown}");
    }
}
