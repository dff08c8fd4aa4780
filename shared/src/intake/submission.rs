//! What a person asks for, parsed at the edge: the same rules for the JSON API, the form and a
//! request staff enter for someone, so the page can name each problem next to its field, in the
//! page's language, and the APIs in their plain English message.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::api::ApiError;
use crate::domain::{
    Agent, EmailAddress, EmailError, Language, Region, Relationship, RequestKind, has_control_chars,
};

/// The body fields `POST /requests` accepts (and `POST /staff/requests`, with the channel);
/// anything else is refused.
pub const FIELDS: &[&str] = &[
    "email",
    "kind",
    "region",
    "name",
    "language",
    "details",
    "recipient",
    "corrections",
    "agent",
    "period_from",
];
/// The earliest a CCPA request to know may be asked to start: what it covers by default.
pub const CCPA_PERIOD_START: (i32, u32, u32) = (2022, 1, 1);
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DETAILS_CHARS: usize = 5000;
pub const MAX_CORRECTIONS: usize = 10;
pub const MAX_CORRECTION_CHARS: usize = 200;

/// The fields a requester may correct themselves, from the compiled-in data map.
pub fn correctable() -> &'static [String] {
    static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        crate::datamap::DataMap::builtin()
            .map(|map| map.correctable_fields().into_iter().map(|(_, field)| field.to_owned()).collect())
            .unwrap_or_default()
    })
}

/// The body as sent; every field becomes a domain type in [`Submission::parse`].
#[derive(Debug, Default, Deserialize)]
pub struct RawSubmission {
    pub email: String,
    pub kind: String,
    pub region: String,
    pub name: Option<String>,
    pub language: Option<String>,
    pub details: Option<String>,
    pub recipient: Option<String>,
    pub corrections: Option<BTreeMap<String, String>>,
    pub agent: Option<RawAgent>,
    pub period_from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub name: String,
    pub email: String,
    pub relationship: String,
}

/// A request that passed every check at the edge.
pub struct Submission {
    pub email: EmailAddress,
    pub kind: RequestKind,
    pub region: Region,
    pub language: Language,
    pub name: Option<String>,
    pub details: Option<String>,
    pub recipient: Option<EmailAddress>,
    pub corrections: Option<BTreeMap<String, String>>,
    pub agent: Option<Agent>,
    /// A CCPA request to know for a shorter period than the law's default: from this day on.
    pub period_from: Option<chrono::NaiveDate>,
}

/// What is wrong with one field. Names the field, never quotes the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// As the JSON API names it: `email`, `agent.email`, `corrections.job_title`.
    pub field: String,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Required,
    TooLong(usize),
    ControlCharacters,
    Email,
    Kind,
    Region,
    Language,
    RecipientNotPortability,
    RecipientSelf,
    CorrectionsOnlyRectification,
    CorrectionsCount,
    CorrectionField,
    CorrectionValue,
    AgentSelf,
    Relationship,
    /// A rectification that says nothing about what to correct (the form asks for it).
    NothingToCorrect,
    /// A period asked of something other than a CCPA request to know.
    PeriodNotKnowRequest,
    /// A period start that is no date, or before 1 January 2022.
    PeriodStart,
}

impl Problem {
    /// The key of its words on the pages (`form.errors.<key>`), and the number they mention.
    pub fn words_key(&self) -> (&'static str, Option<usize>) {
        match self {
            Problem::Required => ("required", None),
            Problem::TooLong(max) => ("too_long", Some(*max)),
            Problem::ControlCharacters => ("control_characters", None),
            Problem::Email => ("email", None),
            Problem::Region => ("region", None),
            Problem::Kind | Problem::Language => ("invalid", None),
            Problem::RecipientNotPortability => ("recipient_not_portability", None),
            Problem::RecipientSelf => ("recipient_self", None),
            Problem::CorrectionsOnlyRectification => ("corrections_only_rectification", None),
            Problem::CorrectionsCount => ("corrections_count", Some(MAX_CORRECTIONS)),
            Problem::CorrectionField => ("correction_field", None),
            Problem::CorrectionValue => ("correction_value", Some(MAX_CORRECTION_CHARS)),
            Problem::AgentSelf => ("agent_self", None),
            Problem::Relationship => ("relationship", None),
            Problem::NothingToCorrect => ("nothing_to_correct", None),
            Problem::PeriodNotKnowRequest => ("period_ccpa_only", None),
            Problem::PeriodStart => ("period_start", None),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> ApiError {
        let why = match err.problem {
            Problem::Required => "is required.".to_owned(),
            Problem::TooLong(max) => format!("must be at most {max} characters."),
            Problem::ControlCharacters => {
                "must not contain control characters (such as line breaks).".to_owned()
            }
            Problem::Email => "is not a valid email address.".to_owned(),
            Problem::Kind => {
                let names: Vec<_> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("must be one of {}.", names.join(", "))
            }
            Problem::Region => "must be an ISO 3166-1 alpha-2 country code or US-CA.".to_owned(),
            Problem::Language => "must be en or nl.".to_owned(),
            Problem::RecipientNotPortability => "is only for portability requests.".to_owned(),
            Problem::RecipientSelf => "must be someone else's address.".to_owned(),
            Problem::CorrectionsOnlyRectification => "is only for rectification requests.".to_owned(),
            Problem::CorrectionsCount => format!("must hold 1 to {MAX_CORRECTIONS} fields."),
            Problem::CorrectionField => format!(
                "may only correct {}; describe other corrections in `details`.",
                correctable().join(", ")
            ),
            Problem::CorrectionValue => {
                format!("must be 1 to {MAX_CORRECTION_CHARS} characters without control characters.")
            }
            Problem::AgentSelf => {
                "must differ from the address of the person the request is about.".to_owned()
            }
            Problem::Relationship => {
                let names: Vec<_> = Relationship::ALL.iter().map(|r| r.as_str()).collect();
                format!("must be one of {}.", names.join(", "))
            }
            Problem::NothingToCorrect => {
                "must say what to correct when no `corrections` are given.".to_owned()
            }
            Problem::PeriodNotKnowRequest => {
                "is only for access and portability requests under the CCPA (region US-CA).".to_owned()
            }
            Problem::PeriodStart => "must be a date (YYYY-MM-DD) on or after 2022-01-01.".to_owned(),
        };
        ApiError::invalid_field(&err.field, &why)
    }
}

fn problem(field: &str, problem: Problem) -> FieldError {
    FieldError { field: field.to_owned(), problem }
}

fn email_problem(field: &str, err: EmailError) -> FieldError {
    match err {
        EmailError::Empty => problem(field, Problem::Required),
        EmailError::TooLong => problem(field, Problem::TooLong(254)),
        EmailError::Invalid => problem(field, Problem::Email),
    }
}

impl Submission {
    /// Every problem found, in the order of the form's fields (a page shows them all at once; the
    /// API names the first).
    pub fn parse(raw: RawSubmission) -> Result<Submission, Vec<FieldError>> {
        let mut problems = Vec::new();
        let mut text = |field: &str, value: Option<&String>| {
            let bad = value.is_some_and(|v| has_control_chars(v));
            if bad {
                problems.push(problem(field, Problem::ControlCharacters));
            }
            !bad
        };
        let email_ok = text("email", Some(&raw.email));
        let kind_ok = text("kind", Some(&raw.kind));
        let region_ok = text("region", Some(&raw.region));
        let name_ok = text("name", raw.name.as_ref());
        let language_ok = text("language", raw.language.as_ref());
        let details_ok = text("details", raw.details.as_ref());
        let recipient_ok = text("recipient", raw.recipient.as_ref());

        let email = email_ok
            .then(|| {
                EmailAddress::parse(&raw.email).map_err(|e| problems.push(email_problem("email", e))).ok()
            })
            .flatten();
        let kind = kind_ok
            .then(|| {
                raw.kind
                    .parse::<RequestKind>()
                    .map_err(|_| problems.push(problem("kind", Problem::Kind)))
                    .ok()
            })
            .flatten();
        let region = region_ok
            .then(|| {
                Region::parse(&raw.region).map_err(|_| problems.push(problem("region", Problem::Region))).ok()
            })
            .flatten();
        let language = match (language_ok, raw.language.as_deref()) {
            (false, _) => None,
            (true, None) => region.as_ref().map(Language::default_for),
            (true, Some(code)) => {
                code.parse().map_err(|_| problems.push(problem("language", Problem::Language))).ok()
            }
        };
        let name = name_ok.then(|| optional_text(raw.name, "name", MAX_NAME_CHARS, &mut problems)).flatten();
        let details = details_ok
            .then(|| optional_text(raw.details, "details", MAX_DETAILS_CHARS, &mut problems))
            .flatten();
        let recipient = match raw.recipient.filter(|r| recipient_ok && !r.trim().is_empty()) {
            None => None,
            Some(_) if kind.is_some_and(|k| k != RequestKind::Portability) => {
                problems.push(problem("recipient", Problem::RecipientNotPortability));
                None
            }
            Some(raw_recipient) => match EmailAddress::parse(&raw_recipient) {
                Err(_) => {
                    problems.push(problem("recipient", Problem::Email));
                    None
                }
                Ok(recipient) if email.as_ref().is_some_and(|e| e.normalized() == recipient.normalized()) => {
                    problems.push(problem("recipient", Problem::RecipientSelf));
                    None
                }
                Ok(recipient) => Some(recipient),
            },
        };
        let corrections = match raw.corrections {
            None => None,
            Some(_) if kind.is_some_and(|k| k != RequestKind::Rectification) => {
                problems.push(problem("corrections", Problem::CorrectionsOnlyRectification));
                None
            }
            Some(corrections) => parse_corrections(corrections, &mut problems),
        };
        let agent = raw.agent.and_then(|agent| parse_agent(agent, email.as_ref(), &mut problems));
        let period_from = match raw.period_from {
            None => None,
            Some(_)
                if kind.is_some_and(|k| !matches!(k, RequestKind::Access | RequestKind::Portability))
                    || region.as_ref().is_some_and(|r| r.regime() != crate::domain::Regime::Ccpa) =>
            {
                problems.push(problem("period_from", Problem::PeriodNotKnowRequest));
                None
            }
            Some(text) => {
                let (y, m, d) = CCPA_PERIOD_START;
                let earliest = chrono::NaiveDate::from_ymd_opt(y, m, d);
                match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
                    Ok(day) if Some(day) >= earliest && text.trim().len() == 10 => Some(day),
                    _ => {
                        problems.push(problem("period_from", Problem::PeriodStart));
                        None
                    }
                }
            }
        };

        match (email, kind, region, language) {
            (Some(email), Some(kind), Some(region), Some(language)) if problems.is_empty() => {
                Ok(Submission {
                    email,
                    kind,
                    region,
                    language,
                    name,
                    details,
                    recipient,
                    corrections,
                    agent,
                    period_from,
                })
            }
            _ => Err(problems),
        }
    }
}

fn parse_agent(
    raw: RawAgent,
    person: Option<&EmailAddress>,
    problems: &mut Vec<FieldError>,
) -> Option<Agent> {
    let before = problems.len();
    let name = raw.name.trim().to_owned();
    if name.is_empty() {
        problems.push(problem("agent.name", Problem::Required));
    } else if has_control_chars(&name) {
        problems.push(problem("agent.name", Problem::ControlCharacters));
    } else if name.chars().count() > MAX_NAME_CHARS {
        problems.push(problem("agent.name", Problem::TooLong(MAX_NAME_CHARS)));
    }
    let email = match EmailAddress::parse(&raw.email) {
        Err(e) => {
            problems.push(email_problem("agent.email", e));
            None
        }
        // The agent path must not become a way to send the person's own mail elsewhere or twice.
        Ok(email) if person.is_some_and(|p| p.normalized() == email.normalized()) => {
            problems.push(problem("agent.email", Problem::AgentSelf));
            None
        }
        Ok(email) => Some(email),
    };
    let relationship = raw
        .relationship
        .parse::<Relationship>()
        .map_err(|_| problems.push(problem("agent.relationship", Problem::Relationship)))
        .ok();
    match (email, relationship) {
        (Some(email), Some(relationship)) if problems.len() == before => {
            Some(Agent { name, email, relationship })
        }
        _ => None,
    }
}

fn parse_corrections(
    corrections: BTreeMap<String, String>,
    problems: &mut Vec<FieldError>,
) -> Option<BTreeMap<String, String>> {
    if corrections.is_empty() || corrections.len() > MAX_CORRECTIONS {
        problems.push(problem("corrections", Problem::CorrectionsCount));
        return None;
    }
    let allowed = correctable();
    let mut parsed = BTreeMap::new();
    for (field, value) in corrections {
        if !allowed.contains(&field) {
            problems.push(problem("corrections", Problem::CorrectionField));
            return None;
        }
        let value = value.trim().to_owned();
        if value.is_empty() || value.chars().count() > MAX_CORRECTION_CHARS || has_control_chars(&value) {
            problems.push(problem(&format!("corrections.{field}"), Problem::CorrectionValue));
            continue;
        }
        parsed.insert(field, value);
    }
    Some(parsed)
}

fn optional_text(
    value: Option<String>,
    field: &str,
    max_chars: usize,
    problems: &mut Vec<FieldError>,
) -> Option<String> {
    let text = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())?;
    if text.chars().count() > max_chars {
        problems.push(problem(field, Problem::TooLong(max_chars)));
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(email: &str, kind: &str, region: &str) -> RawSubmission {
        RawSubmission {
            email: email.into(),
            kind: kind.into(),
            region: region.into(),
            ..RawSubmission::default()
        }
    }

    /// What the JSON API answers: the first problem.
    fn refused(raw: RawSubmission) -> ApiError {
        ApiError::from(Submission::parse(raw).err().expect("refused").remove(0))
    }

    fn code_of(raw: RawSubmission) -> String {
        let err = refused(raw);
        format!("{}: {}", err.code, err.message)
    }

    #[test]
    fn a_shorter_period_is_only_for_a_ccpa_request_to_know_and_starts_no_earlier_than_2022() {
        let with = |kind: &str, region: &str, from: &str| {
            let mut r = raw("a@b.nl", kind, region);
            r.period_from = Some(from.into());
            r
        };
        let ok = Submission::parse(with("access", "US-CA", "2026-01-01")).unwrap();
        assert_eq!(ok.period_from, chrono::NaiveDate::from_ymd_opt(2026, 1, 1));
        assert!(Submission::parse(with("portability", "us-ca", "2022-01-01")).is_ok(), "the earliest day");
        for (kind, region, from, says) in [
            ("access", "NL", "2026-01-01", "only for access and portability requests under the CCPA"),
            ("deletion", "US-CA", "2026-01-01", "only for access and portability requests under the CCPA"),
            ("access", "US-CA", "2021-12-31", "on or after 2022-01-01"),
            ("access", "US-CA", "2026-02-30", "a date (YYYY-MM-DD)"),
            ("access", "US-CA", "1 January 2026", "a date (YYYY-MM-DD)"),
            ("access", "US-CA", "2026-1-1", "a date (YYYY-MM-DD)"),
        ] {
            assert!(code_of(with(kind, region, from)).contains(says), "{kind} {region} {from}");
        }
        assert_eq!(Submission::parse(raw("a@b.nl", "access", "US-CA")).unwrap().period_from, None);
    }

    #[test]
    fn a_recipient_is_only_for_portability_and_must_be_someone_else() {
        let mut ok = raw("a@b.nl", "portability", "NL");
        ok.recipient = Some("new-provider@example.org".into());
        assert_eq!(Submission::parse(ok).unwrap().recipient.unwrap().as_str(), "new-provider@example.org");
        let mut wrong_kind = raw("a@b.nl", "access", "NL");
        wrong_kind.recipient = Some("new-provider@example.org".into());
        assert!(code_of(wrong_kind).contains("only for portability"));
        let mut self_sent = raw("a@b.nl", "portability", "NL");
        self_sent.recipient = Some("A@B.NL".into());
        assert!(code_of(self_sent).contains("someone else"));
        let mut bad = raw("a@b.nl", "portability", "NL");
        bad.recipient = Some("not an address".into());
        assert!(code_of(bad).contains("not a valid email address"));
    }

    #[test]
    fn corrections_are_only_for_rectification_and_only_of_correctable_fields() {
        let corrections = |pairs: &[(&str, &str)]| {
            Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
        };
        let mut ok = raw("a@b.nl", "rectification", "NL");
        ok.corrections = corrections(&[("job_title", "  Senior designer ")]);
        assert_eq!(Submission::parse(ok).unwrap().corrections.unwrap()["job_title"], "Senior designer");
        for (kind, pairs, expected) in [
            ("access", vec![("job_title", "x")], "only for rectification"),
            ("rectification", vec![("email", "x@y.z")], "may only correct"),
            ("rectification", vec![("user_id", "u-x")], "may only correct"),
            ("rectification", vec![("name", "")], "corrections.name"),
            ("rectification", vec![("name", "a\nb")], "corrections.name"),
            ("rectification", vec![], "1 to 10"),
        ] {
            let mut submission = raw("a@b.nl", kind, "NL");
            submission.corrections = corrections(&pairs);
            assert!(code_of(submission).contains(expected), "{kind} {pairs:?}");
        }
    }

    #[test]
    fn language_defaults_to_dutch_for_nl_and_english_elsewhere() {
        assert_eq!(Submission::parse(raw("a@b.nl", "access", "NL")).unwrap().language, Language::Nl);
        assert_eq!(Submission::parse(raw("a@b.de", "access", "DE")).unwrap().language, Language::En);
        let mut explicit = raw("a@b.nl", "access", "NL");
        explicit.language = Some("en".into());
        assert_eq!(Submission::parse(explicit).unwrap().language, Language::En);
    }

    #[test]
    fn blank_optional_text_is_dropped_and_long_text_refused() {
        let mut r = raw("a@b.nl", "deletion", "NL");
        r.name = Some("   ".into());
        r.details = Some(" please delete ".into());
        let s = Submission::parse(r).unwrap();
        assert_eq!(s.name, None);
        assert_eq!(s.details.as_deref(), Some("please delete"));
        let mut long = raw("a@b.nl", "deletion", "NL");
        long.name = Some("x".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(refused(long).code, "invalid_field");
    }

    #[test]
    fn field_errors_name_the_field_not_the_value() {
        let err = refused(raw("not-an-address", "access", "NL"));
        assert_eq!(err.message, "`email` is not a valid email address.");
        let err = refused(raw("a@b.nl", "forget-me", "NL"));
        assert!(err.message.starts_with("`kind` must be one of access,"), "{}", err.message);
        assert!(!err.message.contains("forget-me"));
    }

    #[test]
    fn a_form_learns_every_problem_at_once_in_the_order_of_its_fields() {
        let mut many = raw("not-an-address", "portability", "XX");
        many.name = Some("x".repeat(MAX_NAME_CHARS + 1));
        many.recipient = Some("nope".into());
        let fields: Vec<String> =
            Submission::parse(many).err().unwrap().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["email", "region", "name", "recipient"]);
    }

    #[test]
    fn an_agent_needs_a_name_their_own_address_and_a_known_relationship() {
        let agent = |name: &str, email: &str, relationship: &str| {
            let mut r = raw("person@example.nl", "access", "NL");
            r.agent =
                Some(RawAgent { name: name.into(), email: email.into(), relationship: relationship.into() });
            r
        };
        let parsed =
            Submission::parse(agent(" Agatha ", "agatha@agents.example", "authorised_agent")).unwrap();
        let stored = parsed.agent.unwrap();
        assert_eq!((stored.name.as_str(), stored.email.as_str()), ("Agatha", "agatha@agents.example"));
        assert_eq!(parsed.email.as_str(), "person@example.nl", "the request stays the person's");
        for (bad, field, message) in [
            (agent("", "agatha@agents.example", "authorised_agent"), "agent.name", "is required"),
            (agent("Agatha", "PERSON@example.nl", "authorised_agent"), "agent.email", "must differ"),
            (agent("Agatha", "agatha@agents.example", "friend"), "agent.relationship", "must be one of"),
        ] {
            let err = refused(bad);
            assert!(err.message.starts_with(&format!("`{field}` {message}")), "{}", err.message);
        }
    }
}
