//! Every message the system sends, rendered in both languages with realistic data, and read the
//! way a reviewer would: nothing left unfilled, no code or ISO date where a reader expects words,
//! no English in a Dutch text, and the footer (controller, contact, password warning) on every
//! message that leaves the company. A new message gets an entry in `every_message`.
//!
//! The same samples are what `make mail-preview` writes out and the browser test screenshots:
//! a translator or reviewer reads every message as its reader will.

use chrono::{DateTime, Datelike, NaiveDate};

use super::OutgoingEmail;
use super::templates::{AgentStage, Instruction, StatusLinks, Templates, VerificationEmail};
use crate::domain::ExpiryReason;
use crate::domain::{
    Agent, CostEstimate, Deadlines, EmailAddress, ErasedSource, ErasedUnit, ErasureReceipt, Language,
    ReceiptWording, Region, Relationship, RequestId, RequestKind, RequestRecord, SourceWording, Status,
    StatusKey, Triage, VerificationToken,
};

const BASE: &str = "https://privacy.example.com";
const DOWNLOAD: &str = "https://privacy.example.com/requests/r/download?token=abc";

fn key() -> StatusKey {
    StatusKey::parse("a-status-link-key-for-the-catalogue-only").unwrap()
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

/// A request of `kind` from someone in `region`, received on 2 November 2026 and due a month on.
pub fn request(language: Language, kind: RequestKind, region: &str) -> RequestRecord {
    let at = DateTime::parse_from_rfc3339("2026-11-02T09:30:00Z").unwrap().to_utc();
    let region = Region::parse(region).unwrap();
    let deadlines = Deadlines { received_on: day(11, 2), due_on: day(12, 2), acknowledge_by: None };
    let record = RequestRecord::received(
        RequestId::generate(),
        kind,
        region,
        language,
        EmailAddress::parse("jan.jansen@example.nl").unwrap(),
        at,
        deadlines,
    );
    RequestRecord { status: Status::Completed, name: Some("Jan Jansen".to_owned()), ..record }
}

/// What staff wrote, as they would: in the request's language (they are told it).
fn staff_text(language: Language, en: &str, nl: &str) -> String {
    match language {
        Language::En => en.to_owned(),
        Language::Nl => nl.to_owned(),
    }
}

/// Every message, by a name for the failure message, as a reader in `language` gets it.
pub fn every_message(language: Language) -> Vec<(String, OutgoingEmail)> {
    let key = key();
    let links = StatusLinks { key: &key, public_base_url: BASE };
    let t = Templates::new();
    let token = VerificationToken::generate();
    let mut out: Vec<(String, OutgoingEmail)> = Vec::new();
    let mut add = |name: &str, mail: Result<OutgoingEmail, super::MailError>| {
        out.push((name.to_owned(), mail.unwrap_or_else(|e| panic!("{name}: {e}"))));
    };

    let access = request(language, RequestKind::Access, "NL");
    let agent = Agent {
        name: "Mr. Example Agent".to_owned(),
        email: EmailAddress::parse("agent@example.org").unwrap(),
        relationship: Relationship::AuthorisedAgent,
    };
    for (name, regime_region, with_agent) in
        [("verification", "NL", false), ("verification (CCPA, by an agent)", "US-CA", true)]
    {
        let record = request(language, RequestKind::Deletion, regime_region);
        add(
            name,
            t.verification(&VerificationEmail {
                to: &record.email,
                language,
                request_id: record.id,
                kind: record.kind,
                regime: record.regime,
                received_on: record.received_on,
                due_on: record.due_on,
                token: &token,
                valid_hours: 24,
                public_base_url: BASE,
                status: links,
                agent: with_agent.then_some(&agent),
            }),
        );
    }
    add("reminder", t.reminder(&access, &token, day(11, 16), links));

    let found = RequestRecord { export_found: Some(57), ..access.clone() };
    add("completed access", t.completed(&found, Some((DOWNLOAD, day(12, 9))), links));
    let parts = RequestRecord { export_parts: Some(3), export_found: Some(5000), ..access.clone() };
    add("completed access in parts", t.completed(&parts, Some((DOWNLOAD, day(12, 9))), links));
    let nothing = RequestRecord { export_found: Some(0), ..access.clone() };
    add("completed access, nothing found", t.completed(&nothing, Some((DOWNLOAD, day(12, 9))), links));
    let child = RequestRecord { triage: Some(Triage { has_account: true, child: true }), ..found.clone() };
    add("completed access of a child", t.completed(&child, Some((DOWNLOAD, day(12, 9))), links));

    let erased = RequestRecord {
        receipt: Some(erasure_receipt(language)),
        ..request(language, RequestKind::Deletion, "NL")
    };
    add("completed deletion", t.completed(&erased, None, links));
    let erased_nothing = RequestRecord {
        receipt: Some(ErasureReceipt::default()),
        ..request(language, RequestKind::Deletion, "DE")
    };
    add("completed deletion, nothing found", t.completed(&erased_nothing, None, links));
    for kind in [RequestKind::Unsubscribe, RequestKind::OptOutOfSale] {
        let region = if kind == RequestKind::OptOutOfSale { "US-CA" } else { "NL" };
        add(
            &format!("completed {}", kind.as_str()),
            t.completed(&request(language, kind, region), None, links),
        );
    }
    let corrected = RequestRecord {
        closed_reason: Some(staff_text(
            language,
            "Your surname has been corrected in your account.",
            "Uw achternaam is gecorrigeerd in uw account.",
        )),
        ..request(language, RequestKind::Rectification, "NL")
    };
    add("completed rectification", t.completed(&corrected, None, links));

    let extended = RequestRecord {
        status: Status::InProgress,
        original_due_on: Some(day(12, 2)),
        due_on: NaiveDate::from_ymd_opt(2027, 2, 2).unwrap(),
        extension_reason: Some(staff_text(
            language,
            "A source outside our systems has yet to answer.",
            "Een externe bron moet nog antwoorden.",
        )),
        ..access.clone()
    };
    add("extended", t.extended(&extended, links));
    for (kind, region) in [
        (RequestKind::Access, "NL"),
        (RequestKind::Rectification, "NL"),
        (RequestKind::Rectification, "US-CA"),
        (RequestKind::Deletion, "US-CA"),
        (RequestKind::Objection, "BE"),
    ] {
        let denied = RequestRecord {
            status: Status::Denied,
            closed_reason: Some(staff_text(
                language,
                "We cannot establish that this account is yours.",
                "Wij kunnen niet vaststellen dat dit account van u is.",
            )),
            ..request(language, kind, region)
        };
        add(&format!("denied {} ({region})", kind.as_str()), t.denied(&denied, links));
    }
    // Decided on Friday 20 November: one month on is a Sunday, so the reply is due on Monday.
    let calendar = crate::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
    let decided = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap().to_utc();
    for (amount, currency, region) in
        [("25.00", "EUR", "NL"), ("1250.00", "USD", "US-CA"), ("40.00", "CHF", "CH")]
    {
        let excessive = RequestRecord {
            status: Status::Rejected,
            closed_reason: Some(staff_text(
                language,
                "This is the fourth identical request in three months.",
                "Dit is het vierde gelijke verzoek in drie maanden.",
            )),
            cost_estimate: Some(CostEstimate::parse(amount, currency).unwrap()),
            updated_at: decided,
            ..request(language, RequestKind::Access, region)
        };
        add(&format!("excessive ({region}, {currency})"), t.excessive(&excessive, &calendar, links));
    }
    let referral = |kind, customer: Option<&str>| RequestRecord {
        status: Status::Referred,
        referral_customer: customer.map(str::to_owned),
        referral_contact: Some("it-beheer@voorbeeld-klant.nl".to_owned()),
        ..request(language, kind, "NL")
    };
    let label = |en: &str, nl: &str| if language == Language::En { en.to_owned() } else { nl.to_owned() };
    let own_deleted = super::templates::OwnPurposeData {
        deleted: vec![label("Newsletters and seminars", "Nieuwsbrieven en seminars")],
        open: vec![label("Job applications", "Sollicitaties"), label("Website visits", "Websitebezoeken")],
    };
    let own_open = super::templates::OwnPurposeData {
        deleted: Vec::new(),
        open: [own_deleted.deleted.clone(), own_deleted.open.clone()].concat(),
    };
    let deletion = referral(RequestKind::Deletion, Some("Voorbeeld Zorg B.V."));
    add("referred deletion", t.referred(&deletion, &own_deleted, links));
    let access_referral = referral(RequestKind::Access, Some("Voorbeeld Zorg B.V."));
    add("referred access", t.referred(&access_referral, &own_open, links));
    let unnamed = referral(RequestKind::Access, None);
    add("referred, no organisation named", t.referred(&unnamed, &Default::default(), links));
    let limit = RequestRecord { status: Status::Rejected, ..request(language, RequestKind::Access, "US-CA") };
    add("limit", t.limit_reached(&limit, Some(day(3, 15).with_year(2027).unwrap()), links));
    add("limit, no date known", t.limit_reached(&limit, None, links));

    let portable = RequestRecord {
        status: Status::Verified,
        recipient: Some(EmailAddress::parse("import@nieuwe-dienst.example").unwrap()),
        ..request(language, RequestKind::Portability, "NL")
    };
    add("recipient confirmation", t.recipient_confirmation(&portable, &token, day(11, 10), links));
    let lapsed = RequestRecord {
        recipient_lapsed_at: Some(DateTime::parse_from_rfc3339("2026-11-11T06:00:00Z").unwrap().to_utc()),
        export_found: Some(57),
        ..portable.clone()
    };
    add(
        "completed portability, recipient not confirmed",
        t.completed(&lapsed, Some((DOWNLOAD, day(12, 9))), links),
    );

    // Closed unconfirmed: timed out or locked, under the GDPR and the CCPA (whose opt-out needs no
    // confirmation), and made by an agent.
    for (name, reason, kind, region, by_agent) in [
        ("unverified, timed out", ExpiryReason::NotVerified, RequestKind::Deletion, "NL", false),
        ("unverified, locked", ExpiryReason::TooManyAttempts, RequestKind::Objection, "DE", false),
        ("unverified (CCPA right to know)", ExpiryReason::NotVerified, RequestKind::Access, "US-CA", false),
        (
            "unverified (CCPA, locked, by an agent)",
            ExpiryReason::TooManyAttempts,
            RequestKind::Deletion,
            "US-CA",
            true,
        ),
    ] {
        let expired = RequestRecord {
            status: Status::Expired,
            closed_reason: Some(reason.as_str().to_owned()),
            agent: by_agent.then(|| agent.clone()),
            ..request(language, kind, region)
        };
        add(name, t.unverified(&expired, links));
    }

    let with_agent = RequestRecord { agent: Some(agent.clone()), ..access.clone() };
    for stage in [
        AgentStage::Received,
        AgentStage::Verified,
        AgentStage::Extended,
        AgentStage::Completed,
        AgentStage::Decided,
        AgentStage::Expired,
    ] {
        let mail = t.agent_notice(&with_agent, stage, links).map(|m| m.expect("an agent's request"));
        add(&format!("agent notice {}", stage.as_str()), mail);
    }

    // What staff send or set off by hand.
    for (name, region) in [("receipt confirmation (CCPA)", "US-CA"), ("receipt confirmation", "NL")] {
        let pending = RequestRecord {
            status: Status::PendingVerification,
            ..request(language, RequestKind::Deletion, region)
        };
        add(name, t.receipt_confirmation(&pending, links));
    }
    let verified = RequestRecord {
        status: Status::Verified,
        verified_at: Some(DateTime::parse_from_rfc3339("2026-11-03T08:00:00Z").unwrap().to_utc()),
        ..request(language, RequestKind::Access, "US-CA")
    };
    add("receipt confirmation (verified)", t.receipt_confirmation(&verified, links));
    let reopened = RequestRecord {
        status: Status::Verified,
        cost_estimate: Some(CostEstimate::parse("1250.00", "EUR").unwrap()),
        fee_accepted_on: Some(day(11, 20)),
        due_on: day(12, 21),
        ..access.clone()
    };
    add("fee accepted", t.fee_accepted(&reopened, links));
    let refused = RequestRecord {
        status: Status::Denied,
        closed_reason: Some(staff_text(
            language,
            "Our records show that your date of birth is correct.",
            "Volgens onze administratie is uw geboortedatum juist.",
        )),
        ..request(language, RequestKind::Rectification, "NL")
    };
    let recorded_at = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap().to_utc();
    let statement = crate::domain::StaffText::parse("Mijn geboortedatum is 3 mei 1980, niet 5 maart 1980.");
    let disputed = RequestRecord {
        dispute: Some(crate::domain::Dispute::new(recorded_at, statement.ok())),
        ..refused.clone()
    };
    add("dispute recorded", t.dispute_recorded(&disputed, links));
    let without_statement = RequestRecord {
        dispute: Some(crate::domain::Dispute::new(recorded_at, None)),
        ..request(language, RequestKind::Rectification, "US-CA")
    };
    add("dispute recorded (CCPA, no statement)", t.dispute_recorded(&without_statement, links));
    let reason =
        crate::domain::StaffText::parse("De bron heeft de geboortedatum met uw paspoort vergeleken.");
    let lifting = RequestRecord {
        dispute: Some(crate::domain::Dispute {
            restriction: crate::domain::Restriction::Lifting {
                on: day(12, 15),
                reason: reason.unwrap(),
                announced_at: recorded_at,
            },
            ..crate::domain::Dispute::new(recorded_at, None)
        }),
        ..refused
    };
    add("restriction lifting", t.restriction_lifting(&lifting, links));
    out
}

/// Messages that go to a third party in English whatever the requester's language.
pub fn english_only() -> Vec<(String, OutgoingEmail)> {
    let t = Templates::new();
    let record = RequestRecord {
        recipient: Some(EmailAddress::parse("import@nieuwe-dienst.example").unwrap()),
        ..request(Language::Nl, RequestKind::Portability, "NL")
    };
    let recipient = record.recipient.clone().unwrap();
    let processor = EmailAddress::parse("privacy@processor.example").unwrap();
    vec![
        (
            "recipient delivery".to_owned(),
            t.recipient_delivery(&record, &recipient, DOWNLOAD, day(12, 9)).unwrap(),
        ),
        (
            "recipient instruction".to_owned(),
            t.recipient_instruction(&processor, "Example CRM", &record, &["crm"], Instruction::Erase)
                .unwrap(),
        ),
    ]
}

/// An erasure as the erasure function words it (the data map's texts, in `language`): a record and
/// files deleted, records kept for a legal reason, a source outside AWS with its own reason, two
/// earlier exports, processors and named recipients told.
fn erasure_receipt(language: Language) -> ErasureReceipt {
    let nl = language == Language::Nl;
    let pick = |en: &str, nl_text: &str| if nl { nl_text.to_owned() } else { en.to_owned() };
    let line = |source: &str, deleted, anonymised, kept_because: Option<&str>| ErasedSource {
        source: source.to_owned(),
        description: format!("The {source} source."),
        categories: vec!["identifiers".to_owned(), "contact_data".to_owned()],
        deleted,
        anonymised,
        kept_because: kept_because.map(str::to_owned),
    };
    let words =
        |source: &str, label: String, categories: Vec<String>, unit, kept: Option<(String, String)>| {
            SourceWording {
                source: source.to_owned(),
                label,
                categories,
                unit,
                kept_reason: kept.as_ref().map(|(reason, _)| reason.clone()),
                legal_basis: kept.map(|(_, basis)| basis),
            }
        };
    let staff_reason = pick(
        "Two applications are kept for four weeks after the procedure, as our recruitment terms say.",
        "Twee sollicitaties bewaren wij tot vier weken na de procedure, zoals onze wervingsvoorwaarden zeggen.",
    );
    ErasureReceipt {
        sources: vec![
            line("accounts", 1, 0, None),
            line("recordings", 2, 0, None),
            line("call_detail_records", 0, 14, Some("Records of your calls are kept for 25 months.")),
            line("job_applications", 1, 2, Some(&staff_reason)),
            line("presence", 0, 0, None),
        ],
        exports_deleted: 2,
        processors_instructed: vec!["service_providers".to_owned(), "affiliates".to_owned()],
        recipients_told: vec!["Nimbus Hosting B.V.".to_owned(), "Lifesize Group Support".to_owned()],
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
                        pick("Work details (employer, job title)", "Werkgegevens (werkgever, functie)"),
                    ],
                    ErasedUnit::Record,
                    None,
                ),
                words(
                    "recordings",
                    pick("Recordings", "Opnamen"),
                    vec![pick("Recordings of meetings", "Opnamen van vergaderingen")],
                    ErasedUnit::File,
                    None,
                ),
                words(
                    "call_detail_records",
                    pick("Calls", "Gesprekken"),
                    vec![pick(
                        "Call details (time, duration, participants, quality)",
                        "Gespreksgegevens (tijd, duur, deelnemers, kwaliteit)",
                    )],
                    ErasedUnit::Record,
                    Some((
                        pick(
                            "Records of your calls are kept for 25 months after each call, the period in which a customer can dispute an invoice for them. They no longer name you.",
                            "Gegevens over uw gesprekken bewaren wij 25 maanden na elk gesprek: zo lang kan een klant een factuur ervoor betwisten. Ze noemen u niet meer.",
                        ),
                        pick(
                            "Article 17(3)(e) GDPR: the establishment, exercise or defence of legal claims.",
                            "Artikel 17, derde lid, onder e, AVG: de instelling, uitoefening of onderbouwing van een rechtsvordering.",
                        ),
                    )),
                ),
                words(
                    "job_applications",
                    pick("Job applications", "Sollicitaties"),
                    vec![pick("Job applications", "Sollicitaties")],
                    ErasedUnit::Record,
                    None,
                ),
                words(
                    "presence",
                    pick("Presence status", "Aanwezigheidsstatus"),
                    vec![],
                    ErasedUnit::Record,
                    None,
                ),
            ],
            processors: vec![
                pick(
                    "Service providers working on our behalf",
                    "Dienstverleners die in onze opdracht werken",
                ),
                pick("Companies of our group", "Bedrijven van ons concern"),
            ],
            recipients: vec![
                pick("Nimbus Hosting B.V. (hosting and storage)", "Nimbus Hosting B.V. (hosting en opslag)"),
                pick(
                    "Lifesize Group Support (support desk of our group)",
                    "Lifesize Group Support (helpdesk van ons concern)",
                ),
            ],
        }),
    }
}

#[cfg(test)]
mod checks {
    use super::*;

    /// Words that give away English in a Dutch text. Whole words, lower case.
    const ENGLISH: &[&str] = &[
        "the",
        "your",
        "you",
        "we",
        "and",
        "request",
        "please",
        "hello",
        "dear",
        "deleted",
        "kept",
        "reason",
        "reference",
        "days",
        "until",
        "confirm",
        "here",
        "part",
        "none",
        // Informal: a Dutch letter from a company opens formally or neutrally.
        "hallo",
    ];

    /// What a text looks like with its links, file names and secret codes taken out (they hold
    /// codes and English paths by design).
    fn prose(text: &str) -> String {
        text.split_whitespace()
            .filter(|w| !w.contains("://") && !w.contains('@') && !w.contains('/') && w.chars().count() < 30)
            .filter(|w| !w.trim_end_matches(['.', ',', ')', ':', ';']).contains('.'))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn words(text: &str) -> impl Iterator<Item = String> + '_ {
        text.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-').map(str::to_lowercase)
    }

    fn iso_date(text: &str) -> Option<&str> {
        let b = text.as_bytes();
        (0..b.len().saturating_sub(9)).find_map(|i| {
            let s = &b[i..i + 10];
            let shape = s
                .iter()
                .enumerate()
                .all(|(j, c)| if j == 4 || j == 7 { *c == b'-' } else { c.is_ascii_digit() });
            shape.then(|| &text[i..i + 10])
        })
    }

    fn check(name: &str, language: Language, mail: &OutgoingEmail) -> Vec<String> {
        let mut problems = Vec::new();
        let mut fail = |what: String| problems.push(format!("{name} ({}): {what}", language.as_str()));
        for (part, body) in [("subject", &mail.subject), ("text", &mail.text), ("html", &mail.html)] {
            for leftover in ["{{", "{%", "}}", "undefined", "None", "[]"] {
                if body.contains(leftover) {
                    fail(format!("{part} has {leftover:?}"));
                }
            }
            let readable = prose(body);
            if let Some(date) = iso_date(&readable) {
                fail(format!("{part} has the unformatted date {date}"));
            }
            if let Some(code) = words(&readable).find(|w| w.contains('_')) {
                fail(format!("{part} has the code {code:?}"));
            }
            for amount in ["25.00 EUR", "EUR 25", "25.00EUR"] {
                if readable.contains(amount) {
                    fail(format!("{part} has the unformatted amount {amount:?}"));
                }
            }
            if language == Language::Nl
                && part != "html"
                && let Some(word) = words(&readable).find(|w| ENGLISH.contains(&w.as_str()))
            {
                fail(format!("{part} has the English (or informal) word {word:?}: {readable}"));
            }
        }
        for must in ["Lifesize, Inc.", "privacy@lifesize.com"] {
            if !mail.text.contains(must) || !mail.html.contains(must) {
                fail(format!("no {must:?} in the footer"));
            }
        }
        let password = match language {
            Language::En => "never ask for your password",
            Language::Nl => "nooit per e-mail om uw wachtwoord",
        };
        if !mail.text.contains(password) || !mail.html.contains(password) {
            fail("no password warning".to_owned());
        }
        problems
    }

    #[test]
    fn every_message_reads_right_in_both_languages() {
        let mut problems = Vec::new();
        for language in [Language::En, Language::Nl] {
            let messages = every_message(language);
            assert!(messages.len() >= 27, "the catalogue covers every message: {}", messages.len());
            for (name, mail) in &messages {
                problems.extend(check(name, language, mail));
            }
        }
        for (name, mail) in english_only() {
            problems.extend(check(&name, Language::En, &mail));
        }
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    }

    #[test]
    fn the_check_catches_english_in_dutch_an_iso_date_a_code_and_a_missing_footer() {
        let mail = OutgoingEmail {
            to: EmailAddress::parse("jan.jansen@example.nl").unwrap(),
            subject: "Uw verzoek".to_owned(),
            text: "Uw request van 2026-11-02 over contact_data.".to_owned(),
            html: "<p>Uw verzoek</p>".to_owned(),
            tags: crate::mail::MailTags::new(crate::mail::MessageKind::Completed, None),
        };
        let problems = check("sample", Language::Nl, &mail).join("\n");
        for expected in
            ["word \"request\"", "unformatted date 2026-11-02", "code \"contact_data\"", "footer", "password"]
        {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
    }
}
