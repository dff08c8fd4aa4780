//! Every email's words, in English and Dutch, rendered by minijinja from files under
//! `shared/templates/` (HTML is auto-escaped by file extension).

use chrono::{Datelike, NaiveDate};
use minijinja::{Environment, Value, context};

use super::words::{agent_kind_label, court, digest_section, money, relationship_label, words};
pub use super::words::{complaint, kind_label};
use super::{MailError, MailTags, MessageKind, OutgoingEmail};
use crate::domain::BusinessCalendar;
use crate::domain::ExpiryReason;
use crate::domain::{
    Audience, EmailAddress, Language, Regime, RequestId, RequestKind, RequestRecord, Status, StatusKey,
    VerificationToken,
};
use crate::store::SuppressionCause;

/// Every file under `shared/templates/mail/`, by its path there (see `build.rs`).
pub(super) const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/mail_files.rs"));

/// The template environment, built once per cold start.
pub struct Templates {
    env: Environment<'static>,
}

/// What the "where is my request" link in every email to the requester is made of: the key its
/// token is derived with and where the status page is (`Config::status_page`).
#[derive(Clone, Copy)]
pub struct StatusLinks<'a> {
    pub key: &'a StatusKey,
    pub public_base_url: &'a str,
}

impl StatusLinks<'_> {
    /// The requester's own link to their request's status page, in the request's language.
    pub fn requester(&self, id: RequestId, language: Language) -> String {
        self.key.link(self.public_base_url, id, Audience::Requester, language)
    }

    /// The agent's link: progress only, never a download.
    pub fn agent(&self, id: RequestId, language: Language) -> String {
        self.key.link(self.public_base_url, id, Audience::Agent, language)
    }
}

/// What an agent is told about the request they made for someone: that it came in, and each step
/// the person is told of (without what the person is sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStage {
    Received,
    Verified,
    Extended,
    Completed,
    /// Denied, rejected over the limit, referred, or marked excessive: the person is told why.
    Decided,
    Expired,
}

impl AgentStage {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStage::Received => "received",
            AgentStage::Verified => "verified",
            AgentStage::Extended => "extended",
            AgentStage::Completed => "completed",
            AgentStage::Decided => "decided",
            AgentStage::Expired => "expired",
        }
    }
}

/// What the verification (and receipt-confirmation) email says.
pub struct VerificationEmail<'a> {
    pub to: &'a EmailAddress,
    pub language: Language,
    pub request_id: RequestId,
    pub kind: RequestKind,
    pub regime: Regime,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    pub token: &'a VerificationToken,
    pub valid_hours: i64,
    pub public_base_url: &'a str,
    pub status: StatusLinks<'a>,
    /// Who asked for the person, if someone did: the person must know before they confirm.
    pub agent: Option<&'a crate::domain::Agent>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        for (name, source) in FILES {
            // The sources are compiled in; a syntax error fails every test, never production.
            if !name.ends_with(".yaml") {
                env.add_template(name, source).expect("built-in template is valid");
            }
        }
        Templates { env }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, MailError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| MailError::Template(format!("{name}: {}", e.kind())))
    }

    /// The close of every message that leaves the company: the team, who is responsible for the
    /// data and where to write, and that we never ask for a password (phishing imitates our
    /// mail). Added after the body: its text, and its paragraphs for the HTML layout.
    fn sign(&self, body: &str, language: Language) -> Result<(String, Vec<String>), MailError> {
        let footer = self.render(&format!("footer/{}.txt", language.as_str()), context! {})?;
        let paragraphs =
            footer.split("\n\n").map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
        Ok((format!("{}\n\n{}\n", body.trim_end(), footer.trim_end()), paragraphs))
    }

    pub fn verification(&self, email: &VerificationEmail<'_>) -> Result<OutgoingEmail, MailError> {
        let lang = email.language.as_str();
        // The page opens in the request's language; the secret stays in the fragment.
        let verify_page = format!("{}/verify?lang={lang}", email.public_base_url);
        let link =
            format!("{verify_page}#request_id={}&token={}", email.request_id, email.token.expose_secret());
        let status_link = email.status.requester(email.request_id, email.language);
        let subject =
            self.render(&format!("verification/{lang}.subject.txt"), context! {})?.trim().to_owned();
        // minijinja's HTML escaping also encodes `/`; URLs read better escaped only where needed.
        let html_links = context! {
            link => Value::from_safe_string(escape_attribute(&link)),
            verify_page => Value::from_safe_string(escape_attribute(&verify_page)),
            status_link => Value::from_safe_string(escape_attribute(&status_link)),
        };
        let ctx = context! {
            lang,
            title => subject,
            request_id => email.request_id.to_string(),
            kind_label => kind_label(email.kind, email.language),
            regime => email.regime.as_str(),
            received_on => long_date(email.received_on, email.language),
            due_on => long_date(email.due_on, email.language),
            valid_hours => email.valid_hours,
            link,
            verify_page,
            status_link,
            code => email.token.expose_secret(),
            agent_name => email.agent.map(|a| a.name.clone()),
            agent_relationship => email.agent.map(|a| relationship_label(a.relationship, email.language)),
        };
        let (text, footer) =
            self.sign(&self.render(&format!("verification/{lang}.txt"), ctx.clone())?, email.language)?;
        Ok(OutgoingEmail {
            to: email.to.clone(),
            text,
            html: self.render(
                &format!("verification/{lang}.html"),
                context! { footer, ..context! { ..html_links, ..ctx } },
            )?,
            subject,
            tags: MailTags::new(MessageKind::Verification, Some(email.request_id)),
        })
    }
}

impl Templates {
    /// Tells the privacy staff a request was verified. English; the subject names no person.
    pub fn staff_notice(
        &self,
        to: &EmailAddress,
        record: &RequestRecord,
        automatic: bool,
        outside: &[OutsideTask<'_>],
        earlier: &[EarlierRequest<'_>],
    ) -> Result<OutgoingEmail, MailError> {
        let earlier = earlier_lines(earlier);
        let manual: Vec<Value> = outside
            .iter()
            .filter(|t| t.instructions.is_some())
            .map(|t| {
                context! {
                    source => t.source,
                    instructions => t.instructions,
                    answer_by => long_date(t.answer_by, Language::En),
                }
            })
            .collect();
        let webhooks: Vec<&str> =
            outside.iter().filter(|t| t.instructions.is_none()).map(|t| t.source).collect();
        let ctx = context! {
            lang => "en",
            request_id => record.id.to_string(),
            kind => record.kind.as_str(),
            regime => record.regime.as_str().to_uppercase(),
            region => record.region.as_str(),
            language => record.language.as_str(),
            received_on => long_date(record.received_on, Language::En),
            due_on => long_date(record.due_on, Language::En),
            acknowledge_by => record.acknowledge_by.map(|d| long_date(d, Language::En)),
            email => record.email.as_str(),
            name => record.name.clone(),
            details => record.details.clone(),
            automatic,
            child => record.triage.as_ref().is_some_and(|t| t.child),
            child_deletion_on => child_deletion_on(record).map(|d| long_date(d, Language::En)),
            child_objection_days => CHILD_OBJECTION_DAYS,
            has_account => record.triage.as_ref().map(|t| t.has_account),
            manual,
            webhooks => webhooks.join(", "),
            earlier,
        };
        let subject = self.render("staff_notice/en.subject.txt", ctx.clone())?.trim().to_owned();
        Ok(OutgoingEmail {
            to: to.clone(),
            text: self.render("staff_notice/en.txt", ctx.clone())?,
            html: self.render("staff_notice/en.html", context! { title => subject.clone(), ..ctx })?,
            subject,
            tags: MailTags::new(MessageKind::StaffNotice, Some(record.id)),
        })
    }

    /// Tells the requester their request is done: with a download link where there is an export,
    /// the receipt of an erasure (in the request's language, as the erasure worded it from the data
    /// map), the suppression of an opt-out, the offer to delete a child's data, and that a record
    /// of the request is kept.
    pub fn completed(
        &self,
        record: &RequestRecord,
        download: Option<(&str, NaiveDate)>,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let receipt = record.receipt.as_ref().filter(|_| record.kind == RequestKind::Deletion);
        // The erasure's own words; a receipt from before they were kept (or, never, in another
        // language) falls back on the codes.
        let wording = receipt.and_then(|r| r.wording.as_ref()).filter(|w| w.language == lang);
        // A label starts a sentence in the map; in a list inside one it is lower case, except a
        // word in capitals ("IP address" stays).
        let in_sentence = |label: &str| {
            let mut chars = label.chars();
            match (chars.next(), chars.next()) {
                (Some(first), Some(second)) if second.is_lowercase() => {
                    first.to_lowercase().chain(label[first.len_utf8()..].chars()).collect()
                }
                _ => label.to_owned(),
            }
        };
        let line = |s: &crate::domain::ErasedSource, count: u32| {
            let words = wording.and_then(|w| w.source(&s.source));
            let (label, categories) = match words {
                Some(w) => (w.label.clone(), w.categories.iter().map(|c| in_sentence(c)).collect()),
                None => (
                    s.description.trim_end_matches('.').to_owned(),
                    s.categories.iter().map(|c| c.replace('_', " ")).collect::<Vec<_>>(),
                ),
            };
            // The map's reason and law for a source that anonymises; a source outside AWS gives
            // its own reason with its receipt (staff's or the source's words, as written).
            let map_reason = words.and_then(|w| w.kept_reason.clone());
            context! {
                label,
                categories,
                count,
                unit => words.map_or("record", |w| w.unit.as_str()),
                unlinked => map_reason.is_some(),
                legal_basis => map_reason.as_ref().and(words.and_then(|w| w.legal_basis.clone())),
                reason => map_reason.or_else(|| s.kept_because.clone()),
            }
        };
        let deleted: Vec<Value> = receipt
            .map(|r| r.sources.iter().filter(|s| s.deleted > 0).map(|s| line(s, s.deleted)).collect())
            .unwrap_or_default();
        let kept: Vec<Value> = receipt
            .map(|r| r.sources.iter().filter(|s| s.anonymised > 0).map(|s| line(s, s.anonymised)).collect())
            .unwrap_or_default();
        let processors: Vec<String> = match (receipt, wording) {
            (_, Some(w)) => w.processors.iter().map(|p| in_sentence(p)).collect(),
            (Some(r), None) => r.processors_instructed.iter().map(|p| p.replace('_', " ")).collect(),
            (None, None) => Vec::new(),
        };
        let recipients: Vec<String> = match (receipt, wording) {
            (_, Some(w)) if !w.recipients.is_empty() => w.recipients.clone(),
            (Some(r), _) => r.recipients_told.clone(),
            (None, _) => Vec::new(),
        };
        let parts = part_links(record, download.map(|(url, _)| url));
        let ctx = context! {
            note => record.closed_reason.clone(),
            download => download.map(|(url, _)| url.to_owned()),
            download_parts => parts,
            available_until => download.map(|(_, until)| long_date(until, lang)),
            suppressed => crate::store::SuppressionList::for_kind(record.kind).map(|l| l.as_str()),
            suppressed_since => long_date(record.received_on, lang),
            receipt_nothing => receipt.is_some() && deleted.is_empty() && kept.is_empty(),
            receipt_deleted => deleted,
            receipt_kept => kept,
            receipt_exports => receipt.map(|r| r.exports_deleted).filter(|n| *n > 0),
            receipt_processors => processors,
            receipt_recipients => recipients,
            record_months => crate::domain::MIN_RECORD_RETENTION_MONTHS,
            child_deletion_on => child_deletion_on(record).map(|d| long_date(d, lang)),
            // An export that found nothing says so, instead of "your data is ready".
            found_nothing => record.export_found == Some(0),
            // The third party was not confirmed by its date: the copy went to the requester only.
            recipient_lapsed => record
                .recipient
                .as_ref()
                .filter(|_| record.recipient_lapsed_at.is_some())
                .map(|r| r.as_str().to_owned()),
        };
        let button = &words(lang).button;
        let label = if record.export_parts.is_some() { &button.download_part } else { &button.download };
        self.notice(MessageKind::Completed, record, ctx, Some(status), None, label)
    }

    /// Sends the requester of an enterprise-managed account to its administrator, naming the
    /// organisation, and says what becomes of the data the company keeps for its own purposes.
    pub fn referred(
        &self,
        record: &RequestRecord,
        own: &OwnPurposeData,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let ctx = context! {
            customer => record.referral_customer.clone(),
            contact => record.referral_contact.clone(),
            own_deleted => own.deleted.clone(),
            own_open => own.open.clone(),
        };
        self.notice(MessageKind::Referred, record, ctx, Some(status), None, "")
    }

    /// Refuses a third CCPA right-to-know request within 12 months; `ask_again_on` is the first
    /// day a new one would be answered, where the earlier requests show it.
    pub fn limit_reached(
        &self,
        record: &RequestRecord,
        ask_again_on: Option<NaiveDate>,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let ctx = context! { ask_again_on => ask_again_on.map(|d| long_date(d, record.language)) };
        self.notice(MessageKind::Limit, record, ctx, Some(status), None, "")
    }

    /// The second verification: the requester confirms the third party their export may go to.
    /// `valid_until` is the last day the link works; not confirmed by then, the copy goes to the
    /// requester only (the sweep's `Transition::LapseRecipient`), and the mail says so.
    pub fn recipient_confirmation(
        &self,
        record: &RequestRecord,
        token: &VerificationToken,
        valid_until: NaiveDate,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let verify_page = format!("{}/verify?lang={}", status.public_base_url, record.language.as_str());
        let link = format!(
            "{verify_page}#request_id={}&token={}&confirm=recipient",
            record.id,
            token.expose_secret()
        );
        let ctx = context! {
            recipient => record.recipient.as_ref().map(|r| r.as_str().to_owned()),
            link,
            verify_page,
            code => token.expose_secret(),
            valid_until => long_date(valid_until, record.language),
        };
        let label = &words(record.language).button.confirm_recipient;
        let code = Some(token.expose_secret());
        self.notice(MessageKind::RecipientConfirmation, record, ctx, Some(status), code, label)
    }

    /// Tells the person that a request for their address was closed without being confirmed
    /// (timed out, or locked after too many wrong codes), so it was not carried out, and what
    /// they can do: a new request (an opt-out under the CCPA needs no confirmation at all), or a
    /// mail; for a CCPA request to know, where the privacy policy describes what we collect
    /// (CCPA regulations §7024(a), (b); GDPR Art. 12(4): the reason, and the right to complain).
    pub fn unverified(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language.as_str();
        // The privacy center's form for a right, in the person's language and region.
        let form = |kind: RequestKind| {
            format!(
                "{}/privacy/{}?lang={lang}&region={}",
                status.public_base_url,
                kind.as_str(),
                record.region.as_str()
            )
        };
        let ccpa = record.regime == Regime::Ccpa;
        let ctx = context! {
            received_on => long_date(record.received_on, record.language),
            locked => record.closed_reason.as_deref() == Some(ExpiryReason::TooManyAttempts.as_str()),
            agent_name => record.agent.as_ref().map(|a| a.name.clone()),
            new_request => form(record.kind),
            right_to_know => ccpa && matches!(record.kind, RequestKind::Access | RequestKind::Portability),
            // Honoured at once, never verified (so never expired itself): always open to them.
            opt_out => (ccpa && record.kind != RequestKind::OptOutOfSale).then(|| form(RequestKind::OptOutOfSale)),
        };
        let label = self.render(&format!("unverified/{lang}.button.txt"), context! {})?;
        self.notice(MessageKind::Unverified, record, ctx, Some(status), None, label.trim())
    }

    /// Delivers a confirmed portability export to the third party. English: we do not know the
    /// recipient's language.
    pub fn recipient_delivery(
        &self,
        record: &RequestRecord,
        recipient: &EmailAddress,
        link: &str,
        until: NaiveDate,
    ) -> Result<OutgoingEmail, MailError> {
        let parts = part_links(record, Some(link));
        let button = &words(Language::En).button;
        let label = if parts.is_empty() { &button.download_theirs } else { &button.download_part };
        let ctx = context! {
            requester => record.email.as_str(),
            link,
            parts,
            available_until => long_date(until, Language::En),
        };
        let mut as_english = record.clone();
        as_english.language = Language::En;
        // To the third party: the requester's status link is not theirs.
        let mut email = self.notice(MessageKind::RecipientDelivery, &as_english, ctx, None, None, label)?;
        email.to = recipient.clone();
        Ok(email)
    }
}

/// The last day to accept the fee of a request rejected as excessive: one month after the day it
/// was decided (the day of the record's last change, in the business calendar; the rejection is
/// its last change when the notice goes out), rolled to a working day, as a GDPR period is.
pub fn fee_reply_by(record: &RequestRecord, calendar: &BusinessCalendar) -> NaiveDate {
    let decided_on = calendar.local_date(record.updated_at);
    calendar.deadlines_from(Regime::Gdpr, decided_on).due_on
}

/// What a referral says of the data the company keeps for its own purposes (the data map's
/// `own_purpose` sources), by their names in the request's language: what was deleted already,
/// and what the requester is asked to reply for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnPurposeData {
    pub deleted: Vec<String>,
    pub open: Vec<String>,
}

/// A paragraph of text for the HTML: a list where every line is a "- " item (mail clients and
/// screen readers then say how many there are), else lines kept as written.
fn html_lines(paragraph: &str) -> Value {
    let items: Option<Vec<&str>> = paragraph.lines().map(|l| l.strip_prefix("- ")).collect();
    match items {
        Some(items) => context! { items },
        None => context! { lines => paragraph.lines().collect::<Vec<_>>() },
    }
}

/// One download link per part of an export in parts (the same token, `&part=N`); none for an
/// export in one piece, whose one link is the plain one.
fn part_links(record: &RequestRecord, link: Option<&str>) -> Vec<String> {
    match (link, record.export_parts) {
        (Some(link), Some(parts)) => (1..=parts).map(|n| format!("{link}&part={n}")).collect(),
        _ => Vec::new(),
    }
}

/// The sections of the staff digest, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DigestSection {
    Overdue,
    DueByNextBusinessDay,
    DueSoon,
    AcknowledgementDue,
}

impl DigestSection {
    pub const ALL: [DigestSection; 4] = [
        DigestSection::Overdue,
        DigestSection::DueByNextBusinessDay,
        DigestSection::DueSoon,
        DigestSection::AcknowledgementDue,
    ];

    /// Its name in ledger keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestSection::Overdue => "overdue",
            DigestSection::DueByNextBusinessDay => "due_next_business_day",
            DigestSection::DueSoon => "due_soon",
            DigestSection::AcknowledgementDue => "acknowledgement_due",
        }
    }
}

/// One request in the digest: what staff need to find and prioritise it, and no personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestRow {
    pub request_id: RequestId,
    pub kind: RequestKind,
    pub regime: Regime,
    pub status: Status,
    pub due_on: NaiveDate,
    pub original_due_on: Option<NaiveDate>,
    pub acknowledge_by: Option<NaiveDate>,
    /// The person's requests of the same kind in the 12 months before this one (GDPR Art. 12(5)).
    pub earlier: Vec<EarlierRequest<'static>>,
}

pub struct Digest<'a> {
    pub to: &'a EmailAddress,
    pub date: NaiveDate,
    pub zone: &'a str,
    pub window_days: u64,
    pub rows: &'a [(DigestSection, DigestRow)],
    /// Sources outside AWS that requests wait for.
    pub sources: &'a [SourceRow],
}

/// The earlier requests as the staff notice and the digest show them.
fn earlier_lines(earlier: &[EarlierRequest<'_>]) -> Vec<Value> {
    earlier
        .iter()
        .map(|e| {
            context! {
                request_id => e.id.to_string(),
                received_on => long_date(e.received_on, Language::En),
                status => e.status,
            }
        })
        .collect()
}

/// A request of the same person and kind, received in the 12 months before the one the staff
/// notice is about, and how it ended or stands: for judging a repeated request (GDPR Art. 12(5)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlierRequest<'a> {
    pub id: RequestId,
    pub received_on: NaiveDate,
    pub status: &'a str,
}

/// A source outside AWS the request's work will wait for, as the staff notice lists it: a manual
/// one (with the map's instructions: staff search it) or a webhook (asked automatically).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideTask<'a> {
    pub source: &'a str,
    pub instructions: Option<&'a str>,
    pub answer_by: NaiveDate,
}

/// Why a source outside AWS is in the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceSection {
    /// Past its answer date, unanswered: chase it, or extend the request.
    Late,
    /// A manual source: staff have to look, attach and confirm.
    WithStaff,
}

impl SourceSection {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceSection::Late => "source_late",
            SourceSection::WithStaff => "source_with_staff",
        }
    }
}

/// One source a request waits for: ids, dates and codes, no personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRow {
    pub section: SourceSection,
    pub request_id: RequestId,
    pub source: String,
    pub operation: &'static str,
    pub answer_by: NaiveDate,
    /// A webhook's last problem (its code), if any.
    pub problem: Option<&'static str>,
}

impl Templates {
    /// Reminds a requester who has not verified, with a fresh link valid until the request closes.
    pub fn reminder(
        &self,
        record: &RequestRecord,
        token: &VerificationToken,
        closes_on: NaiveDate,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let verify_page = format!("{}/verify?lang={}", status.public_base_url, record.language.as_str());
        let link = format!("{verify_page}#request_id={}&token={}", record.id, token.expose_secret());
        let ctx = context! {
            received_on => long_date(record.received_on, record.language),
            closes_on => long_date(closes_on, record.language),
            link => link.clone(),
            verify_page,
            code => token.expose_secret(),
        };
        let label = &words(record.language).button.confirm_request;
        self.notice(MessageKind::Reminder, record, ctx, Some(status), Some(token.expose_secret()), label)
    }

    /// Tells the requester the due date moved, why, and the new date.
    pub fn extended(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let ctx = context! {
            original_due_on => record.original_due_on.map(|d| long_date(d, lang)),
            due_on => long_date(record.due_on, lang),
            reason => record.extension_reason.clone(),
        };
        self.notice(MessageKind::Extended, record, ctx, Some(status), None, "")
    }

    /// Tells the requester their request is refused, why, and where to complain. A refused
    /// correction offers to record the dispute and restrict the data meanwhile (GDPR Art.
    /// 18(1)(a), CCPA regulations §7023(f)); a refused CCPA deletion asks whether the person
    /// would rather opt out of the sale or sharing of their data, with the privacy center's link
    /// (§7022(f)).
    pub fn denied(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language.as_str();
        let opt_out = (record.regime == Regime::Ccpa && record.kind == RequestKind::Deletion).then(|| {
            format!(
                "{}/privacy/{}?lang={lang}&region={}",
                status.public_base_url,
                RequestKind::OptOutOfSale.as_str(),
                record.region.as_str()
            )
        });
        let label = if opt_out.is_some() { words(record.language).button.opt_out.as_str() } else { "" };
        let ctx = context! {
            reason => record.closed_reason.clone(),
            kind => record.kind.as_str(),
            opt_out_link => opt_out,
        };
        self.notice(MessageKind::Denied, record, ctx, Some(status), None, label)
    }

    /// Tells the requester why their request counts as manifestly unfounded or excessive (GDPR
    /// Art. 12(5), CCPA §1798.145(h)(3)), the fee and what it rests on, and the day to accept it
    /// by: one month after the decision (the record's last change, a day in the business
    /// calendar), rolled to a working day as the legal periods are.
    pub fn excessive(
        &self,
        record: &RequestRecord,
        calendar: &BusinessCalendar,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let ctx = context! {
            reason => record.closed_reason.clone(),
            fee => record.cost_estimate.as_ref().map(|c| money(c, lang)),
            reply_by => long_date(fee_reply_by(record, calendar), lang),
        };
        self.notice(MessageKind::Excessive, record, ctx, Some(status), None, "")
    }

    /// A requester notice: subject and text from `<kind>.<lang>.*`, the HTML built from the text's
    /// paragraphs (a paragraph that is only a link becomes a button, the code a code block, the
    /// status line a sentence with its link). Every notice to the requester carries their status
    /// link; `status` is `None` only for mail to someone else.
    fn notice(
        &self,
        kind: MessageKind,
        record: &RequestRecord,
        extra: Value,
        status: Option<StatusLinks<'_>>,
        code: Option<&str>,
        link_label: &str,
    ) -> Result<OutgoingEmail, MailError> {
        let name = kind.as_str();
        let lang = record.language.as_str();
        let status_link = status.map(|s| s.requester(record.id, record.language));
        let subject = self.render(&format!("{name}/{lang}.subject.txt"), context! {})?.trim().to_owned();
        let ctx = context! {
            request_id => record.id.to_string(),
            kind_label => kind_label(record.kind, record.language),
            regime => record.regime.as_str(),
            complaint => complaint(record),
            court => court(record),
            status_link => status_link.clone(),
            ..extra
        };
        let body = self.render(&format!("{name}/{lang}.txt"), ctx)?;
        let paragraphs: Vec<Value> = body
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let is_link = (p.starts_with("https://") || p.starts_with("http://"))
                    && !p.contains(char::is_whitespace);
                let status_line = status_link
                    .as_deref()
                    .and_then(|link| Some((p.strip_suffix(link)?.trim_end(), link)))
                    .filter(|(lead, _)| !lead.is_empty() && !lead.contains('\n'));
                if let Some((lead, link)) = status_line {
                    context! { lead, status => Value::from_safe_string(escape_attribute(link)) }
                } else if is_link {
                    context! { link => Value::from_safe_string(escape_attribute(p)) }
                } else if code == Some(p) {
                    context! { code => p }
                } else {
                    html_lines(p)
                }
            })
            .collect();
        let (text, footer) = self.sign(&body, record.language)?;
        let html = self.render(
            "notice.html",
            context! { lang, title => subject.clone(), paragraphs, link_label, footer },
        )?;
        Ok(OutgoingEmail {
            to: record.email.clone(),
            subject,
            text,
            html,
            tags: MailTags::new(kind, Some(record.id)),
        })
    }

    /// The staff digest. English; neither the subject nor the body names a requester.
    pub fn digest(&self, digest: &Digest<'_>) -> Result<OutgoingEmail, MailError> {
        let date = long_date(digest.date, Language::En);
        let mut sections = Vec::new();
        let mut summary = Vec::new();
        for section in DigestSection::ALL {
            let rows: Vec<Value> = digest
                .rows
                .iter()
                .filter(|(s, _)| *s == section)
                .map(|(_, r)| {
                    context! {
                        request_id => r.request_id.to_string(),
                        kind => r.kind.as_str(),
                        regime => r.regime.as_str().to_uppercase(),
                        status => r.status.as_str(),
                        due_on => r.due_on.to_string(),
                        original_due_on => r.original_due_on.map(|d| d.to_string()),
                        acknowledge_by => r.acknowledge_by.map(|d| d.to_string()),
                        earlier => earlier_lines(&r.earlier),
                    }
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let words = digest_section(section.as_str());
            let days = digest.window_days.to_string();
            let title = words.title.replace("{days}", &days);
            let label = words.label.replace("{days}", &days);
            let explanation = &words.explanation;
            summary.push(format!("{} {label}", rows.len()));
            sections.push(context! {
                title,
                explanation,
                rows,
                acknowledgements => section == DigestSection::AcknowledgementDue,
            });
        }
        let mut source_sections = Vec::new();
        for section in [SourceSection::Late, SourceSection::WithStaff] {
            let rows: Vec<Value> = digest
                .sources
                .iter()
                .filter(|r| r.section == section)
                .map(|r| {
                    context! {
                        request_id => r.request_id.to_string(),
                        source => &r.source,
                        operation => r.operation,
                        answer_by => r.answer_by.to_string(),
                        problem => r.problem,
                    }
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let words = digest_section(section.as_str());
            let (title, label, explanation) = (&words.title, &words.label, &words.explanation);
            summary.push(format!("{} {label}", rows.len()));
            source_sections.push(context! { title, explanation, rows });
        }
        let ctx = context! {
            lang => "en",
            date,
            zone => digest.zone,
            summary => summary.join(", "),
            sections,
            source_sections,
        };
        let subject = self.render("digest/en.subject.txt", ctx.clone())?.trim().to_owned();
        Ok(OutgoingEmail {
            to: digest.to.clone(),
            text: self.render("digest/en.txt", ctx.clone())?,
            html: self.render("digest/en.html", context! { title => subject.clone(), ..ctx })?,
            subject,
            tags: MailTags::new(MessageKind::Digest, None),
        })
    }
}

/// Why staff hear about a request's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerAlert {
    /// It is being sent to an address that bounced for good, or complained, before.
    SentToSuppressed(SuppressionCause),
    /// It bounced for good.
    Bounced,
    /// A recipient's instruction (GDPR Art. 19) bounced, for good or not: the recipient was not
    /// told, and staff must tell it another way.
    RecipientBounced { permanent: bool },
}

impl Templates {
    /// Tells staff that a request's answer may not reach the requester. English; names the
    /// request only, never the address.
    pub fn answer_alert(
        &self,
        to: &EmailAddress,
        request_id: RequestId,
        answer: MessageKind,
        why: AnswerAlert,
    ) -> Result<OutgoingEmail, MailError> {
        let (case, cause, permanent) = match why {
            AnswerAlert::SentToSuppressed(cause) => ("sent_to_suppressed", Some(cause.as_str()), true),
            AnswerAlert::Bounced => ("bounced", None, true),
            AnswerAlert::RecipientBounced { permanent } => ("recipient_bounced", None, permanent),
        };
        let ctx = context! {
            lang => "en",
            request_id => request_id.to_string(),
            answer => answer.as_str().replace('_', " "),
            case,
            cause,
            permanent,
        };
        let subject = self.render("answer_alert/en.subject.txt", ctx.clone())?.trim().to_owned();
        Ok(OutgoingEmail {
            to: to.clone(),
            text: self.render("answer_alert/en.txt", ctx.clone())?,
            html: self.render("answer_alert/en.html", context! { title => subject.clone(), ..ctx })?,
            subject,
            tags: MailTags::new(MessageKind::AnswerAlert, Some(request_id)),
        })
    }
}

/// What a recipient of the company's data is asked to do with a person's data (GDPR Art. 19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction<'a> {
    Erase,
    /// The corrected values, by attribute (none: staff corrected by hand, see the note).
    Correct(Option<&'a std::collections::BTreeMap<String, String>>),
    Restrict,
}

impl Templates {
    /// Tells a recipient (a processor, a partner) to erase, correct or restrict the data it
    /// received from us about the person: English, to the recipient's privacy contact, naming
    /// the person by the address the request was verified for (the recipient must find them).
    pub fn recipient_instruction(
        &self,
        to: &EmailAddress,
        recipient_name: &str,
        record: &RequestRecord,
        sources: &[&str],
        instruction: Instruction<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let (action, corrections) = match instruction {
            Instruction::Erase => ("erase", None),
            Instruction::Correct(corrections) => ("correct", corrections),
            Instruction::Restrict => ("restrict the processing of", None),
        };
        let ctx = context! {
            lang => "en",
            request_id => record.id.to_string(),
            recipient => recipient_name,
            action,
            email => record.email.as_str(),
            sources => sources.join(", "),
            corrections => corrections.map(|c| c.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>()),
            // A restriction for a disputed correction says so, with the person's statement
            // (CCPA regulations §7023(f): the contest is noted to whoever received the data).
            note => match &record.dispute {
                Some(dispute) => Some(format!(
                    "The person disputes the accuracy of this data (we refused the correction they asked \
                     for); restrict its processing while it is disputed.{}",
                    dispute.statement.as_ref().map(|s| format!(" Their statement: {}", s.as_str())).unwrap_or_default()
                )),
                None => record.closed_reason.clone(),
            },
        };
        let subject = self.render("recipient_instruction/en.subject.txt", ctx.clone())?.trim().to_owned();
        let (text, footer) =
            self.sign(&self.render("recipient_instruction/en.txt", ctx.clone())?, Language::En)?;
        Ok(OutgoingEmail {
            to: to.clone(),
            text,
            html: self.render(
                "recipient_instruction/en.html",
                context! { title => subject.clone(), footer, ..ctx },
            )?,
            subject,
            tags: MailTags::new(MessageKind::RecipientInstruction, Some(record.id)),
        })
    }
}

/// Escapes what is special in HTML text and quoted attributes.
pub fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How long a requester flagged as under 16, or a parent or guardian, has to object before the
/// child's data is deleted (privacy policy section 13), counted from the request's due date: the
/// completion that tells them comes by then, so they always have at least this long.
pub const CHILD_OBJECTION_DAYS: u64 = 30;

/// The day the data of a requester flagged as under 16 is deleted unless they or a parent or
/// guardian object: the one date both their completion notice and the staff notice name. None
/// when no child is flagged, and for a deletion, which deletes the data anyway. An extension
/// moves it with the due date (staff are told so).
pub fn child_deletion_on(record: &RequestRecord) -> Option<NaiveDate> {
    let child = record.triage.as_ref().is_some_and(|t| t.child);
    (child && record.kind != RequestKind::Deletion)
        .then(|| record.due_on + chrono::Days::new(CHILD_OBJECTION_DAYS))
}

/// "28 December 2026" / "28 december 2026".
pub fn long_date(day: NaiveDate, language: Language) -> String {
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const NL: [&str; 12] = [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let months = match language {
        Language::En => &EN,
        Language::Nl => &NL,
    };
    format!("{} {} {}", day.day(), months[day.month0() as usize], day.year())
}

impl Templates {
    /// The agent's notice of `stage`; None for a request made by the person themselves.
    pub fn agent_notice(
        &self,
        record: &RequestRecord,
        stage: AgentStage,
        status: StatusLinks<'_>,
    ) -> Result<Option<OutgoingEmail>, MailError> {
        let Some(agent) = &record.agent else { return Ok(None) };
        let lang = record.language.as_str();
        let link = status.agent(record.id, record.language);
        let ctx = context! {
            stage => stage.as_str(),
            agent_name => agent.name,
            request_id => record.id.to_string(),
            kind_label => agent_kind_label(record.kind, record.language),
            due_on => long_date(record.due_on, record.language),
            status_link => link.clone(),
        };
        let subject =
            self.render(&format!("agent_notice/{lang}.subject.txt"), ctx.clone())?.trim().to_owned();
        let body = self.render(&format!("agent_notice/{lang}.txt"), ctx)?;
        let paragraphs: Vec<Value> = body
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_suffix(link.as_str()).map(str::trim_end) {
                Some(lead) if !lead.is_empty() => {
                    context! { lead, status => Value::from_safe_string(escape_attribute(&link)) }
                }
                _ => html_lines(p),
            })
            .collect();
        let (text, footer) = self.sign(&body, record.language)?;
        let html = self.render(
            "notice.html",
            context! { lang, title => subject.clone(), paragraphs, link_label => "", footer },
        )?;
        Ok(Some(OutgoingEmail {
            to: agent.email.clone(),
            subject,
            text,
            html,
            tags: MailTags::new(MessageKind::AgentNotice, Some(record.id)),
        }))
    }
}

/// What staff send or set off by hand: the confirmation of receipt, the restart after an accepted
/// fee, and what follows a refused correction (the dispute noted, the lift of its restriction
/// announced). Each a requester notice in the request's language, from its own folder.
impl Templates {
    /// Confirms receipt (CCPA regulations §7021(b)): when it came in, how it is verified and
    /// handled, and by when it is answered, with the deadline's law and how it may be extended.
    pub fn receipt_confirmation(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let ctx = context! {
            received_on => long_date(record.received_on, lang),
            verified_on => record.verified_at.map(|at| long_date(at.date_naive(), lang)),
            due_on => long_date(record.due_on, lang),
            extended => record.original_due_on.is_some(),
        };
        self.notice(MessageKind::ReceiptConfirmation, record, ctx, Some(status), None, "")
    }

    /// The person accepted the fee of an excessive request: on which day, the fee, and the new
    /// due date of the work that restarted.
    pub fn fee_accepted(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let ctx = context! {
            accepted_on => record.fee_accepted_on.map(|d| long_date(d, lang)),
            fee => record.cost_estimate.as_ref().map(|c| money(c, lang)),
            due_on => long_date(record.due_on, lang),
        };
        self.notice(MessageKind::FeeAccepted, record, ctx, Some(status), None, "")
    }

    /// The dispute of a refused correction is noted (with the person's statement, if any), the
    /// data restricted meanwhile, and the person will be told before the restriction is lifted.
    pub fn dispute_recorded(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let dispute = record.dispute.as_ref();
        let ctx = context! {
            recorded_on => dispute.map(|d| long_date(d.recorded_at.date_naive(), lang)),
            statement => dispute.and_then(|d| d.statement.as_ref()).map(|s| s.as_str().to_owned()),
        };
        self.notice(MessageKind::DisputeRecorded, record, ctx, Some(status), None, "")
    }

    /// Before the restriction of disputed data is lifted (GDPR Art. 18(3)): on which day, why,
    /// and what the person can do.
    pub fn restriction_lifting(
        &self,
        record: &RequestRecord,
        status: StatusLinks<'_>,
    ) -> Result<OutgoingEmail, MailError> {
        let lang = record.language;
        let dispute = record.dispute.as_ref();
        let lifting = dispute.and_then(|d| d.lifting());
        let ctx = context! {
            recorded_on => dispute.map(|d| long_date(d.recorded_at.date_naive(), lang)),
            lift_on => lifting.map(|(on, _)| long_date(on, lang)),
            reason => lifting.map(|(_, reason)| reason.as_str().to_owned()),
        };
        self.notice(MessageKind::RestrictionLifting, record, ctx, Some(status), None, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(language: Language, regime: Regime) -> (OutgoingEmail, VerificationToken, RequestId) {
        let to = EmailAddress::parse("person@example.com").unwrap();
        let token = VerificationToken::generate();
        let id = RequestId::generate();
        let email = Templates::new()
            .verification(&VerificationEmail {
                agent: None,
                to: &to,
                language,
                request_id: id,
                kind: RequestKind::Access,
                regime,
                received_on: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
                due_on: NaiveDate::from_ymd_opt(2026, 12, 28).unwrap(),
                token: &token,
                valid_hours: 24,
                public_base_url: "https://privacy.example.com",
                status: links(&status_key()),
            })
            .unwrap();
        (email, token, id)
    }

    #[test]
    fn english_email_has_the_link_the_code_and_the_due_date() {
        let (email, token, id) = render(Language::En, Regime::Gdpr);
        let link = format!(
            "https://privacy.example.com/verify?lang=en#request_id={id}&token={}",
            token.expose_secret()
        );
        assert_eq!(email.subject, "Confirm your privacy request");
        assert!(email.text.contains(&link), "{}", email.text);
        assert!(email.html.contains(&link.replace('&', "&amp;")), "{}", email.html);
        for body in [&email.text, &email.html] {
            assert!(body.contains("28 December 2026"));
            assert!(body.contains("access to your personal data"));
            assert!(body.contains("GDPR"));
            assert!(body.matches(token.expose_secret()).count() >= 2, "link and code");
        }
    }

    #[test]
    fn dutch_email_is_in_dutch() {
        let (email, _, _) = render(Language::Nl, Regime::Gdpr);
        assert_eq!(email.subject, "Bevestig uw privacyverzoek");
        for body in [&email.text, &email.html] {
            assert!(body.contains("uiterlijk op"), "{body}");
            assert!(body.contains("28 december 2026"));
            assert!(body.contains("AVG"));
            assert!(!body.contains("Once you have confirmed"));
        }
        assert!(email.html.contains("<html lang=\"nl\">"));
    }

    #[test]
    fn ccpa_email_cites_the_45_days() {
        let (email, _, _) = render(Language::En, Regime::Ccpa);
        assert!(email.text.contains("45 days after we received it, as the CCPA requires"));
    }

    #[test]
    fn every_kind_has_a_label_in_every_language() {
        for kind in RequestKind::ALL {
            for language in [Language::En, Language::Nl] {
                assert!(!kind_label(kind, language).is_empty());
            }
        }
        assert_ne!(
            kind_label(RequestKind::Deletion, Language::En),
            kind_label(RequestKind::Deletion, Language::Nl)
        );
    }

    #[test]
    fn the_answer_alert_names_the_request_and_why_but_no_address() {
        let staff = EmailAddress::parse("privacy-team@example.com").unwrap();
        let id = RequestId::generate();
        let templates = Templates::new();
        let sent = templates
            .answer_alert(
                &staff,
                id,
                MessageKind::Completed,
                AnswerAlert::SentToSuppressed(SuppressionCause::Complaint),
            )
            .unwrap();
        assert_eq!(sent.tags, MailTags::new(MessageKind::AnswerAlert, Some(id)));
        assert!(sent.subject.contains(&id.to_string()), "{}", sent.subject);
        assert!(sent.text.contains("reported our mail as spam"), "{}", sent.text);
        let bounced = templates.answer_alert(&staff, id, MessageKind::Denied, AnswerAlert::Bounced).unwrap();
        assert!(bounced.text.contains("denied mail of privacy request"), "{}", bounced.text);
        assert!(bounced.html.contains("bounced for good"));
        let recipient = templates
            .answer_alert(
                &staff,
                id,
                MessageKind::RecipientInstruction,
                AnswerAlert::RecipientBounced { permanent: false },
            )
            .unwrap();
        assert!(
            recipient.subject.contains("recipient of the person's data was not reached"),
            "{}",
            recipient.subject
        );
        assert!(recipient.text.contains("has not been told"), "{}", recipient.text);
        assert!(
            !recipient.text.contains("for good"),
            "a soft bounce is not called permanent: {}",
            recipient.text
        );
        assert!(recipient.html.contains("Art. 19"));
    }

    fn exported(language: Language, export_parts: Option<u32>) -> RequestRecord {
        let at = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let day = at.date_naive();
        let deadlines = crate::domain::Deadlines { received_on: day, due_on: day, acknowledge_by: None };
        let record = RequestRecord::received(
            RequestId::generate(),
            RequestKind::Access,
            crate::domain::Region::parse("NL").unwrap(),
            language,
            EmailAddress::parse("person@example.com").unwrap(),
            at,
            deadlines,
        );
        RequestRecord { status: Status::Completed, export_parts, ..record }
    }

    #[test]
    fn an_export_that_found_nothing_says_so_plainly_in_both_languages_instead_of_data_ready() {
        let link = "https://privacy.example.com/requests/r/download?token=abc";
        let until = NaiveDate::from_ymd_opt(2026, 12, 28).unwrap();
        let templates = Templates::new();
        for (language, nothing, ready) in [
            (Language::En, "We found no personal data linked to this email address", "Your data is ready"),
            (
                Language::Nl,
                "geen persoonsgegevens gevonden die aan dit e-mailadres gekoppeld zijn",
                "Uw gegevens staan klaar",
            ),
        ] {
            let key = status_key();
            let empty = RequestRecord { export_found: Some(0), ..exported(language, None) };
            let mail = templates.completed(&empty, Some((link, until)), links(&key)).unwrap();
            assert!(mail.text.contains(nothing) && !mail.text.contains(ready), "{}", mail.text);
            assert!(
                mail.text.contains(&format!("\n\n{link}\n\n")),
                "the file still goes with it: {}",
                mail.text
            );
            let found = RequestRecord { export_found: Some(12), ..exported(language, None) };
            let mail = templates.completed(&found, Some((link, until)), links(&key)).unwrap();
            assert!(mail.text.contains(ready) && !mail.text.contains(nothing), "{}", mail.text);
        }
    }

    #[test]
    fn the_completion_of_an_export_in_parts_links_every_part_in_both_languages() {
        let link = "https://privacy.example.com/requests/r/download?token=abc";
        let until = NaiveDate::from_ymd_opt(2026, 12, 28).unwrap();
        let templates = Templates::new();
        for (language, part, label) in [
            (Language::En, "Part 2 of 3:", "Download this part"),
            (Language::Nl, "Deel 2 van 3:", "Dit deel downloaden"),
        ] {
            let key = status_key();
            let mail =
                templates.completed(&exported(language, Some(3)), Some((link, until)), links(&key)).unwrap();
            for n in 1..=3 {
                assert!(mail.text.contains(&format!("\n\n{link}&part={n}\n\n")), "{n}: {}", mail.text);
                assert!(mail.html.contains(&format!("{link}&amp;part={n}\"")), "{n}: {}", mail.html);
            }
            assert!(mail.text.contains(part), "{}", mail.text);
            assert_eq!(mail.html.matches(label).count(), 3, "a button per part: {}", mail.html);
            assert!(!mail.text.contains(&format!("{link}\n")), "no link without a part: {}", mail.text);

            let whole =
                templates.completed(&exported(language, None), Some((link, until)), links(&key)).unwrap();
            assert!(whole.text.contains(&format!("\n\n{link}\n\n")), "{}", whole.text);
            assert!(!whole.text.contains("part="), "{}", whole.text);
        }
        let recipient = EmailAddress::parse("new@example.org").unwrap();
        let delivery =
            templates.recipient_delivery(&exported(Language::Nl, Some(2)), &recipient, link, until);
        let delivery = delivery.unwrap();
        assert!(
            delivery.text.contains(&format!("{link}&part=1"))
                && delivery.text.contains(&format!("{link}&part=2"))
        );
        assert!(delivery.text.contains("Part 2 of 2:"), "{}", delivery.text);
    }

    /// An erasure's receipt as the erasure words it from the data map, in `language`: one record
    /// and two files deleted, 14 records kept for a legal reason, `exports` earlier exports.
    fn worded_receipt(language: Language, exports: u32) -> crate::domain::ErasureReceipt {
        use crate::domain::{ErasedSource, ErasedUnit, ErasureReceipt, ReceiptWording, SourceWording};
        let nl = language == Language::Nl;
        let pick = |en: &str, nl_text: &str| (if nl { nl_text } else { en }).to_owned();
        let source = |id: &str, deleted, anonymised| ErasedSource {
            source: id.to_owned(),
            description: "An English description.".to_owned(),
            categories: vec!["contact_data".to_owned()],
            deleted,
            anonymised,
            kept_because: (anonymised > 0).then(|| "The English reason.".to_owned()),
        };
        let words =
            |id: &str, label: String, categories: Vec<String>, unit, kept: Option<(String, String)>| {
                SourceWording {
                    source: id.to_owned(),
                    label,
                    categories,
                    unit,
                    kept_reason: kept.as_ref().map(|k| k.0.clone()),
                    legal_basis: kept.map(|k| k.1),
                }
            };
        ErasureReceipt {
            sources: vec![source("accounts", 1, 0), source("recordings", 2, 0), source("cdrs", 0, 14)],
            exports_deleted: exports,
            processors_instructed: vec!["service_providers".to_owned()],
            recipients_told: vec!["Nimbus Hosting B.V.".to_owned()],
            wording: Some(ReceiptWording {
                language,
                sources: vec![
                    words(
                        "accounts",
                        pick("Account and profile", "Account en profiel"),
                        vec![
                            pick(
                                "Identifiers (name, username, user ID)",
                                "Identificatiegegevens (naam, gebruikersnaam, gebruikers-ID)",
                            ),
                            pick("Contact details", "Contactgegevens"),
                        ],
                        ErasedUnit::Record,
                        None,
                    ),
                    words("recordings", pick("Recordings", "Opnamen"), vec![], ErasedUnit::File, None),
                    words(
                        "cdrs",
                        pick("Calls", "Gesprekken"),
                        vec![pick("Call details", "Gespreksgegevens")],
                        ErasedUnit::Record,
                        Some((
                            pick(
                                "Kept 25 months for disputed invoices.",
                                "Bewaard 25 maanden voor betwiste facturen.",
                            ),
                            pick("Article 17(3)(e) GDPR.", "Artikel 17, derde lid, onder e, AVG."),
                        )),
                    ),
                ],
                processors: vec![pick(
                    "Service providers working on our behalf",
                    "Dienstverleners die in onze opdracht werken",
                )],
                recipients: vec![pick(
                    "Nimbus Hosting B.V. (hosting and storage)",
                    "Nimbus Hosting B.V. (hosting en opslag)",
                )],
            }),
        }
    }

    fn erased(language: Language, receipt: crate::domain::ErasureReceipt) -> RequestRecord {
        RequestRecord { kind: RequestKind::Deletion, receipt: Some(receipt), ..exported(language, None) }
    }

    #[test]
    fn an_erasure_receipt_reads_as_sentences_with_units_and_the_law_in_the_persons_language() {
        let key = status_key();
        let templates = Templates::new();
        for (language, expected, absent) in [
            (
                Language::En,
                [
                    "- Account and profile: 1 record deleted. Kinds of data: identifiers (name, username, user ID); contact details.\n",
                    "- Recordings: 2 files deleted.\n",
                    "- Calls: 14 records kept, no longer linked to you. Kinds of data: call details. Why: Kept 25 months for disputed invoices. Legal basis: Article 17(3)(e) GDPR.\n",
                    "We also deleted the earlier copy of your data that we had prepared for you, and its download link.",
                    "We have asked those who received your data from us to delete it as well: service providers working on our behalf. They are Nimbus Hosting B.V. (hosting and storage).",
                    "We keep a record of this request for 24 months: what you asked for, when, and how we answered it, without a copy of your data. It lets us show that we handled your request as the law requires (GDPR Article 5(2)).",
                ],
                ["An English description", "The English reason", "contact_data", "copy(ies)"],
            ),
            (
                Language::Nl,
                [
                    "- Account en profiel: 1 record verwijderd. Soorten gegevens: identificatiegegevens (naam, gebruikersnaam, gebruikers-ID); contactgegevens.\n",
                    "- Opnamen: 2 bestanden verwijderd.\n",
                    "- Gesprekken: 14 records bewaard, niet meer aan u gekoppeld. Soorten gegevens: gespreksgegevens. Waarom: Bewaard 25 maanden voor betwiste facturen. Rechtsgrond: Artikel 17, derde lid, onder e, AVG.\n",
                    "Wij hebben ook de kopie van uw gegevens verwijderd die wij eerder voor u hadden klaargezet, met de downloadlink.",
                    "Wij hebben de partijen die uw gegevens van ons ontvingen gevraagd ze ook te verwijderen: dienstverleners die in onze opdracht werken. Het gaat om Nimbus Hosting B.V. (hosting en opslag).",
                    "Wij bewaren 24 maanden een vastlegging van dit verzoek: wat u vroeg, wanneer, en hoe wij het hebben beantwoord, zonder kopie van uw gegevens. Zo kunnen wij aantonen dat wij uw verzoek hebben behandeld zoals de wet voorschrijft (artikel 5, tweede lid, AVG).",
                ],
                ["An English description", "The English reason", "contact_data", "kopie(ën)"],
            ),
        ] {
            let mail = templates
                .completed(&erased(language, worded_receipt(language, 1)), None, links(&key))
                .unwrap();
            for line in expected {
                assert!(mail.text.contains(line), "{line}\n---\n{}", mail.text);
            }
            for word in absent {
                assert!(!mail.text.contains(word), "{word}\n---\n{}", mail.text);
            }
        }
    }

    #[test]
    fn more_than_one_earlier_export_is_counted_in_the_plural_in_both_languages() {
        let key = status_key();
        let templates = Templates::new();
        for (language, plural) in [
            (
                Language::En,
                "We also deleted the 3 earlier copies of your data that we had prepared for you, and their download links.",
            ),
            (
                Language::Nl,
                "Wij hebben ook de 3 kopieën van uw gegevens verwijderd die wij eerder voor u hadden klaargezet, met de downloadlinks.",
            ),
        ] {
            let mail = templates
                .completed(&erased(language, worded_receipt(language, 3)), None, links(&key))
                .unwrap();
            assert!(mail.text.contains(plural), "{}", mail.text);
            let none = templates
                .completed(&erased(language, worded_receipt(language, 0)), None, links(&key))
                .unwrap();
            assert!(
                !none.text.contains("earlier cop") && !none.text.contains("eerder voor u"),
                "{}",
                none.text
            );
        }
    }

    #[test]
    fn a_receipt_from_before_its_wording_was_kept_still_counts_with_units() {
        let key = status_key();
        // As a stored receipt of before reads: no `wording`.
        let mut stored = serde_json::to_value(worded_receipt(Language::En, 0)).unwrap();
        stored.as_object_mut().unwrap().remove("wording");
        let receipt: crate::domain::ErasureReceipt = serde_json::from_value(stored).unwrap();
        assert_eq!(receipt.wording, None);
        let mail = Templates::new().completed(&erased(Language::En, receipt), None, links(&key)).unwrap();
        assert!(
            mail.text.contains("- An English description: 1 record deleted. Kinds of data: contact data.\n"),
            "{}",
            mail.text
        );
        assert!(
            mail.text.contains("14 records kept. Kinds of data: contact data. Why: The English reason.\n"),
            "{}",
            mail.text
        );
        assert!(
            mail.text.contains("delete it as well: service providers. They are Nimbus Hosting B.V.."),
            "{}",
            mail.text
        );
    }

    #[test]
    fn every_completion_says_a_record_of_the_request_is_kept_24_months_in_both_languages() {
        let key = status_key();
        let templates = Templates::new();
        for (language, sentence) in [
            (Language::En, "We keep a record of this request for 24 months"),
            (Language::Nl, "Wij bewaren 24 maanden een vastlegging van dit verzoek"),
        ] {
            for kind in RequestKind::ALL {
                for region in ["NL", "US-CA", "JP"] {
                    let record = RequestRecord {
                        kind,
                        regime: crate::domain::Region::parse(region).unwrap().regime(),
                        ..exported(language, None)
                    };
                    let mail = templates.completed(&record, None, links(&key)).unwrap();
                    assert!(mail.text.contains(sentence), "{kind:?} {region}: {}", mail.text);
                    assert!(mail.html.contains(sentence), "{kind:?} {region}");
                }
            }
            let ccpa = RequestRecord { regime: Regime::Ccpa, ..exported(language, None) };
            let mail = templates.completed(&ccpa, None, links(&key)).unwrap();
            assert!(mail.text.contains("7101"), "{}", mail.text);
        }
    }

    #[test]
    fn an_opt_out_and_an_unsubscribe_are_permanent_and_say_what_a_person_who_did_not_ask_can_do() {
        let key = status_key();
        let templates = Templates::new();
        for (language, kind, expected) in [
            (
                Language::En,
                RequestKind::Unsubscribe,
                [
                    "We keep your address on that list permanently",
                    "If you did not ask for this, nothing else changes: your account and your data stay as they are.",
                ],
            ),
            (
                Language::En,
                RequestKind::OptOutOfSale,
                [
                    "We keep your address on our opt-out list permanently",
                    "If you did not ask for this, nothing else changes: your account, your data",
                ],
            ),
            (
                Language::Nl,
                RequestKind::Unsubscribe,
                [
                    "Wij houden uw adres blijvend op die lijst",
                    "Heeft u hier niet om gevraagd, dan verandert er verder niets",
                ],
            ),
            (
                Language::Nl,
                RequestKind::OptOutOfSale,
                [
                    "Wij houden uw adres blijvend op onze afmeldlijst",
                    "Heeft u hier niet om gevraagd, dan verandert er verder niets",
                ],
            ),
        ] {
            let record = RequestRecord { kind, ..exported(language, None) };
            let mail = templates.completed(&record, None, links(&key)).unwrap();
            for line in expected {
                assert!(mail.text.contains(line), "{kind:?} {line}: {}", mail.text);
            }
            assert!(
                mail.text.contains(&long_date(record.received_on, language)),
                "since when: {}",
                mail.text
            );
        }
    }

    #[test]
    fn a_child_and_the_staff_are_told_the_same_deletion_date() {
        let key = status_key();
        let templates = Templates::new();
        let staff = EmailAddress::parse("privacy-team@example.com").unwrap();
        let child = Some(crate::domain::Triage { has_account: true, child: true });
        for (language, lead) in [
            (Language::En, "we will delete your data on "),
            (Language::Nl, "verwijderen wij uw gegevens op "),
        ] {
            let record = RequestRecord { triage: child.clone(), ..exported(language, None) };
            let on = child_deletion_on(&record).expect("a child's date");
            assert_eq!(on, record.due_on + chrono::Days::new(CHILD_OBJECTION_DAYS));
            let done = templates.completed(&record, None, links(&key)).unwrap();
            assert!(done.text.contains(&format!("{lead}{}", long_date(on, language))), "{}", done.text);
            let notice = templates.staff_notice(&staff, &record, true, &[], &[]).unwrap();
            let date = long_date(on, Language::En);
            assert!(notice.text.contains(&format!("deleted on {date}")), "{}", notice.text);
            assert!(
                notice.text.contains(&format!("Delete it on {date} unless an objection")),
                "{}",
                notice.text
            );
            assert!(notice.html.contains(&date), "{}", notice.html);
            assert!(notice.text.contains("staff submit --channel email --kind"), "{}", notice.text);
        }
        let deletion =
            RequestRecord { kind: RequestKind::Deletion, triage: child, ..exported(Language::En, None) };
        assert_eq!(child_deletion_on(&deletion), None, "a deletion deletes anyway");
        let notice = templates.staff_notice(&staff, &deletion, false, &[], &[]).unwrap();
        assert!(notice.text.contains("request deletes their data: nothing more to do"), "{}", notice.text);
        let adult = exported(Language::En, None);
        assert_eq!(child_deletion_on(&adult), None);
        assert!(!templates.completed(&adult, None, links(&key)).unwrap().text.contains("younger than 16"));
    }

    fn status_key() -> StatusKey {
        StatusKey::parse("a-status-link-key-for-the-template-tests-only").unwrap()
    }

    fn links(key: &StatusKey) -> StatusLinks<'_> {
        StatusLinks { key, public_base_url: "https://privacy.example.com" }
    }

    /// Every email to the requester, of a request in `language`.
    fn every_requester_email(language: Language) -> Vec<(RequestRecord, OutgoingEmail)> {
        let key = status_key();
        let templates = Templates::new();
        let record = exported(language, None);
        let token = VerificationToken::generate();
        let day = record.received_on;
        let to = record.email.clone();
        let verification = templates
            .verification(&VerificationEmail {
                agent: None,
                to: &to,
                language,
                request_id: record.id,
                kind: record.kind,
                regime: record.regime,
                received_on: day,
                due_on: day,
                token: &token,
                valid_hours: 24,
                public_base_url: "https://privacy.example.com",
                status: links(&key),
            })
            .unwrap();
        let link = "https://privacy.example.com/requests/r/download?token=abc";
        let recipient = RequestRecord {
            recipient: Some(EmailAddress::parse("new@example.org").unwrap()),
            ..record.clone()
        };
        vec![
            (record.clone(), verification),
            (record.clone(), templates.reminder(&record, &token, day, links(&key)).unwrap()),
            (record.clone(), templates.completed(&record, Some((link, day)), links(&key)).unwrap()),
            (record.clone(), templates.completed(&record, None, links(&key)).unwrap()),
            (record.clone(), templates.denied(&record, links(&key)).unwrap()),
            (record.clone(), templates.extended(&record, links(&key)).unwrap()),
            (record.clone(), templates.excessive(&record, &BusinessCalendar::utc(), links(&key)).unwrap()),
            (record.clone(), templates.referred(&record, &OwnPurposeData::default(), links(&key)).unwrap()),
            (record.clone(), templates.limit_reached(&record, None, links(&key)).unwrap()),
            (
                recipient.clone(),
                templates.recipient_confirmation(&recipient, &token, day, links(&key)).unwrap(),
            ),
        ]
    }

    #[test]
    fn every_requester_email_in_each_language_carries_a_working_status_link() {
        let key = status_key();
        for (language, lead) in [
            (Language::En, "See where your request stands: "),
            (Language::Nl, "Bekijk hoe het met uw verzoek staat: "),
        ] {
            let mails = every_requester_email(language);
            assert_eq!(mails.len(), 10);
            for (record, mail) in mails {
                let kind = mail.tags.kind;
                let line = mail
                    .text
                    .lines()
                    .find(|l| l.starts_with(lead))
                    .unwrap_or_else(|| panic!("{kind:?}: {}", mail.text));
                let link = line.strip_prefix(lead).unwrap();
                let page = format!("https://privacy.example.com/status?lang={}#", language.as_str());
                let fragment = link.strip_prefix(&page).unwrap_or_else(|| panic!("{kind:?}: {link}"));
                let (id, token) = fragment.split_once('.').unwrap();
                assert_eq!(id, record.id.to_string(), "{kind:?}");
                assert_eq!(key.audience_of(record.id, token), Some(Audience::Requester), "{kind:?}");
                let anchor = format!("<a href=\"{link}\">{link}</a>");
                assert!(
                    mail.html.contains(&format!("{} {anchor}", lead.trim_end())),
                    "{kind:?}: {}",
                    mail.html
                );
            }
        }
    }

    #[test]
    fn the_third_partys_delivery_carries_no_status_link_of_the_requester() {
        let record = exported(Language::En, Some(2));
        let recipient = EmailAddress::parse("new@example.org").unwrap();
        let until = record.received_on;
        let mail =
            Templates::new().recipient_delivery(&record, &recipient, "https://x/d?token=t", until).unwrap();
        assert!(!mail.text.contains("/status?"), "{}", mail.text);
        assert!(!mail.html.contains("/status?"), "{}", mail.html);
    }

    #[test]
    fn long_dates_use_the_language_month_names() {
        let d = NaiveDate::from_ymd_opt(2028, 2, 29).unwrap();
        assert_eq!(long_date(d, Language::En), "29 February 2028");
        assert_eq!(long_date(d, Language::Nl), "29 februari 2028");
    }

    #[test]
    fn an_agent_is_told_each_step_with_their_own_status_link_and_never_the_persons_data() {
        let key = status_key();
        let templates = Templates::new();
        let agent = crate::domain::Agent {
            name: "Agatha".into(),
            email: EmailAddress::parse("agatha@agents.example").unwrap(),
            relationship: crate::domain::Relationship::AuthorisedAgent,
        };
        assert!(
            templates
                .agent_notice(&exported(Language::En, None), AgentStage::Received, links(&key))
                .unwrap()
                .is_none()
        );
        for (language, received, completed) in [
            (Language::En, "confirm it: nothing happens until they do", "The answer went to the person"),
            (Language::Nl, "bevestigen: er gebeurt niets totdat", "Het antwoord ging naar degene"),
        ] {
            let record = RequestRecord { agent: Some(agent.clone()), ..exported(language, None) };
            let agent_link = key.link("https://privacy.example.com", record.id, Audience::Agent, language);
            let person_link =
                key.link("https://privacy.example.com", record.id, Audience::Requester, language);
            let mail = templates.agent_notice(&record, AgentStage::Received, links(&key)).unwrap().unwrap();
            assert_eq!(mail.to.as_str(), "agatha@agents.example");
            assert!(mail.text.contains(received), "{}", mail.text);
            assert!(mail.text.contains(&agent_link) && !mail.text.contains(&person_link), "{}", mail.text);
            assert!(
                mail.html.contains(&format!("href=\"{}\"", agent_link.replace('&', "&amp;"))),
                "{}",
                mail.html
            );
            assert!(
                !mail.text.contains("person@example.com"),
                "the person's address is not the agent's business"
            );
            assert_eq!(mail.tags.kind, MessageKind::AgentNotice);
            for kind in RequestKind::ALL {
                let label = agent_kind_label(kind, language);
                assert!(!label.contains("your ") && !label.contains("uw "), "{label}");
            }
            let done = templates.agent_notice(&record, AgentStage::Completed, links(&key)).unwrap().unwrap();
            assert!(done.text.contains(completed), "{}", done.text);
            assert!(!done.text.contains("download"), "{}", done.text);
        }
    }
}

/// The refusals (denied, excessive, limit, referred): what the law requires each to say, in
/// both languages.
#[cfg(test)]
mod refusals {
    use super::*;
    use crate::domain::CostEstimate;
    use crate::mail::catalogue::request;
    use chrono::DateTime;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn amsterdam() -> BusinessCalendar {
        BusinessCalendar::parse("Europe/Amsterdam", "").unwrap()
    }

    fn key() -> StatusKey {
        StatusKey::parse("a-status-link-key-for-the-refusal-tests").unwrap()
    }

    fn links(key: &StatusKey) -> StatusLinks<'_> {
        StatusLinks { key, public_base_url: "https://privacy.example.com" }
    }

    fn excessive(language: Language, region: &str, amount: &str, currency: &str) -> RequestRecord {
        RequestRecord {
            status: Status::Rejected,
            closed_reason: Some("The fourth identical request in three months.".to_owned()),
            cost_estimate: Some(CostEstimate::parse(amount, currency).unwrap()),
            updated_at: at("2026-11-20T10:00:00Z"),
            ..request(language, RequestKind::Access, region)
        }
    }

    fn has_all(text: &str, expected: &[&str]) {
        for e in expected {
            assert!(text.contains(e), "{e:?} in:\n{text}");
        }
    }

    #[test]
    fn an_excessive_request_is_told_the_legal_test_the_fee_and_its_basis_and_a_date_to_accept_by() {
        let key = key();
        let t = Templates::new();
        let mail = t.excessive(&excessive(Language::En, "NL", "25.00", "EUR"), &amsterdam(), links(&key));
        has_all(
            &mail.unwrap().text,
            &[
                "Under Article 12(5) of the GDPR, we may refuse a request, or carry it out only for a reasonable \
                 fee, where it is manifestly unfounded or excessive, in particular because of its repetitive \
                 character.",
                "The fourth identical request in three months.",
                "a fee of €25.00.",
                "based on the administrative costs of providing the information or taking the action you asked \
                 for (Article 12(5)(a) GDPR)",
                // Decided on Friday 20 November; a month on is a Sunday.
                "reply to this email by 21 December 2026",
                "within one month of the day we receive your acceptance",
                "you may refuse to pay the fee",
                "Autoriteit Persoonsgegevens",
                "rechtbank",
            ],
        );
        let mail = t.excessive(&excessive(Language::Nl, "NL", "25.00", "EUR"), &amsterdam(), links(&key));
        let text = mail.unwrap().text;
        has_all(
            &text,
            &[
                "Op grond van artikel 12, vijfde lid, AVG mogen wij een verzoek dat kennelijk ongegrond of \
                 buitensporig is, met name vanwege het repetitieve karakter, weigeren",
                "uw verzoek om inzage in uw persoonsgegevens",
                "een vergoeding van €\u{a0}25,00.",
                "administratieve kosten",
                "(artikel 12, vijfde lid, onder a, AVG)",
                "beantwoord deze e-mail dan uiterlijk op 21 december 2026",
                "binnen een maand na de dag waarop wij uw aanvaarding ontvangen",
                "u mag weigeren haar te betalen",
                "rechtbank",
            ],
        );
        assert!(!text.contains("EUR") && !text.contains("25.00"), "{text}");

        let ccpa =
            t.excessive(&excessive(Language::En, "US-CA", "1250.00", "USD"), &amsterdam(), links(&key));
        let text = ccpa.unwrap().text;
        has_all(
            &text,
            &[
                "section 1798.145(h)(3) of the California Consumer Privacy Act",
                "US$1,250.00",
                "45 calendar days",
            ],
        );
        assert!(!text.contains("Article 12") && !text.contains("rechtbank"), "{text}");
    }

    #[test]
    fn the_day_to_accept_a_fee_by_is_a_month_after_the_decision_in_the_business_calendar() {
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        // 23:30 UTC on Monday 23 November is already Tuesday the 24th in Amsterdam.
        let late = RequestRecord {
            updated_at: at("2026-11-23T23:30:00Z"),
            ..excessive(Language::En, "NL", "25.00", "EUR")
        };
        assert_eq!(fee_reply_by(&late, &amsterdam()), day(12, 24));
        assert_eq!(fee_reply_by(&late, &BusinessCalendar::utc()), day(12, 23));
        // A month after Friday 20 November is a Sunday: the next working day.
        let friday = RequestRecord { updated_at: at("2026-11-20T10:00:00Z"), ..late };
        assert_eq!(fee_reply_by(&friday, &amsterdam()), day(12, 21));
    }

    #[test]
    fn a_referral_names_the_organisation_and_what_becomes_of_the_companys_own_data() {
        let key = key();
        let t = Templates::new();
        for (language, named, deleted, open, closed) in [
            (
                Language::En,
                "managed by your organisation, Voorbeeld Zorg B.V., which is our customer",
                "We have deleted all data of these kinds that we held about you",
                "We keep the following outside our main systems. Reply to this email and we will delete it too",
                "We have closed this request for the data your organisation manages.",
            ),
            (
                Language::Nl,
                "beheerd door uw organisatie, Voorbeeld Zorg B.V., die klant bij ons is",
                "Wij hebben alle gegevens van deze soorten die wij over u hadden, verwijderd",
                "Het volgende bewaren wij buiten onze hoofdsystemen. Beantwoord deze e-mail, dan verwijderen wij ook dat",
                "Wij hebben dit verzoek gesloten voor de gegevens die uw organisatie beheert.",
            ),
        ] {
            let record = RequestRecord {
                status: Status::Referred,
                referral_customer: Some("Voorbeeld Zorg B.V.".to_owned()),
                referral_contact: Some("it-beheer@voorbeeld-zorg.nl".to_owned()),
                ..request(language, RequestKind::Deletion, "NL")
            };
            let own = OwnPurposeData {
                deleted: vec!["Newsletters".to_owned()],
                open: vec!["Job applications".to_owned(), "Website visits".to_owned()],
            };
            let mail = t.referred(&record, &own, links(&key)).unwrap();
            has_all(
                &mail.text,
                &[
                    named,
                    "it-beheer@voorbeeld-zorg.nl",
                    deleted,
                    "\n- Newsletters\n",
                    open,
                    "\n- Job applications\n- Website visits\n",
                    closed,
                    "rechtbank",
                ],
            );
            assert!(mail.html.contains("Voorbeeld Zorg B.V."), "{}", mail.html);

            // A referral from before the organisation was carried, with no own-purpose data.
            let old = RequestRecord { referral_customer: None, ..record };
            let mail = t.referred(&old, &OwnPurposeData::default(), links(&key)).unwrap();
            assert!(!mail.text.contains(deleted) && !mail.text.contains(open), "{}", mail.text);
            assert!(
                !mail.text.contains("organisation, ,") && !mail.text.contains("organisatie, ,"),
                "{}",
                mail.text
            );
        }
    }

    #[test]
    fn a_refused_correction_offers_the_dispute_and_a_refused_ccpa_deletion_the_opt_out() {
        let key = key();
        let t = Templates::new();
        let refused = |language, kind, region| RequestRecord {
            status: Status::Denied,
            closed_reason: Some("We could not confirm the account is yours.".to_owned()),
            ..request(language, kind, region)
        };
        for (language, offer, law) in [
            (Language::En, "ask us to record that you dispute its accuracy", "(Article 18(1)(a) GDPR)"),
            (
                Language::Nl,
                "vast te leggen dat u de juistheid ervan betwist",
                "(artikel 18, eerste lid, onder a, AVG)",
            ),
        ] {
            let mail = t.denied(&refused(language, RequestKind::Rectification, "NL"), links(&key)).unwrap();
            has_all(&mail.text, &[offer, law]);
            let ccpa =
                t.denied(&refused(language, RequestKind::Rectification, "US-CA"), links(&key)).unwrap();
            assert!(ccpa.text.contains(offer) && ccpa.text.contains("7023(f)"), "{}", ccpa.text);
            let access = t.denied(&refused(language, RequestKind::Access, "NL"), links(&key)).unwrap();
            assert!(!access.text.contains(offer), "{}", access.text);
        }
        for (language, question, button) in [
            (
                Language::En,
                "Would you like us not to sell or share your personal data instead?",
                "Opt out of the sale",
            ),
            (
                Language::Nl,
                "Wilt u in plaats daarvan dat wij uw persoonsgegevens niet verkopen of delen?",
                "Afmelden voor verkoop",
            ),
        ] {
            let link = format!(
                "https://privacy.example.com/privacy/opt_out_of_sale?lang={}&region=US-CA",
                language.as_str()
            );
            let mail = t.denied(&refused(language, RequestKind::Deletion, "US-CA"), links(&key)).unwrap();
            has_all(&mail.text, &[question, "7022(f)", &format!("\n\n{link}\n\n")]);
            assert!(mail.html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))), "{}", mail.html);
            assert!(mail.html.contains(button), "{}", mail.html);
            let gdpr = t.denied(&refused(language, RequestKind::Deletion, "NL"), links(&key)).unwrap();
            assert!(!gdpr.text.contains(question) && !gdpr.text.contains("opt_out_of_sale"), "{}", gdpr.text);
        }
    }

    #[test]
    fn the_limit_says_from_when_the_person_may_ask_again_where_it_is_known() {
        let key = key();
        let t = Templates::new();
        let record =
            RequestRecord { status: Status::Rejected, ..request(Language::Nl, RequestKind::Access, "US-CA") };
        let again = NaiveDate::from_ymd_opt(2027, 3, 15);
        let mail = t.limit_reached(&record, again, links(&key)).unwrap();
        assert!(mail.text.contains("U kunt het opnieuw vragen vanaf 15 maart 2027"), "{}", mail.text);
        let mail = t.limit_reached(&record, None, links(&key)).unwrap();
        assert!(mail.text.contains("zodra 12 maanden zijn verstreken"), "{}", mail.text);
    }
}
