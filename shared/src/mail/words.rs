//! The words several emails share (`templates/mail/words/<lang>.yaml`): the names of the rights,
//! where to complain, the court route, the buttons. A translator finds them beside the messages.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::domain::{CostEstimate, Language, Regime, Relationship, RequestKind, RequestRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Words {
    kind: HashMap<RequestKind, String>,
    kind_theirs: HashMap<RequestKind, String>,
    relationship: HashMap<Relationship, String>,
    complaint: HashMap<String, String>,
    court: HashMap<String, String>,
    pub button: Buttons,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buttons {
    pub download: String,
    pub download_part: String,
    pub download_theirs: String,
    pub confirm_request: String,
    pub confirm_recipient: String,
    /// The privacy center's opt-out of the sale or sharing (offered with a refused deletion).
    pub opt_out: String,
}

fn file(name: &str) -> &'static str {
    super::templates::FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, source)| *source)
        .unwrap_or_else(|| panic!("{name} is compiled in"))
}

// The files are compiled in and every entry is checked by the tests below: a broken file fails
// every test run, never a deployed function.
static EN: LazyLock<Words> =
    LazyLock::new(|| serde_norway::from_str(file("words/en.yaml")).expect("words/en.yaml is valid"));
static NL: LazyLock<Words> =
    LazyLock::new(|| serde_norway::from_str(file("words/nl.yaml")).expect("words/nl.yaml is valid"));

/// A section of the staff digest, in words (`digest/en.sections.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestSectionWords {
    pub title: String,
    pub label: String,
    pub explanation: String,
}

static DIGEST: LazyLock<HashMap<String, DigestSectionWords>> = LazyLock::new(|| {
    serde_norway::from_str(file("digest/en.sections.yaml")).expect("digest/en.sections.yaml is valid")
});

/// The words of the digest section named `name` (its `as_str`); every section has them (tested).
pub fn digest_section(name: &str) -> &'static DigestSectionWords {
    DIGEST.get(name).unwrap_or_else(|| panic!("no digest words for {name}"))
}

pub fn words(language: Language) -> &'static Words {
    match language {
        Language::En => &EN,
        Language::Nl => &NL,
    }
}

fn entry<'a, K: std::hash::Hash + Eq + std::fmt::Debug>(map: &'a HashMap<K, String>, key: &K) -> &'a str {
    map.get(key).map(String::as_str).unwrap_or_else(|| panic!("no words for {key:?}"))
}

/// How each right is named in a sentence ("your request for …" / "uw verzoek om …").
pub fn kind_label(kind: RequestKind, language: Language) -> &'static str {
    entry(&words(language).kind, &kind)
}

/// A right named for an agent, about the person ("deletion of their personal data").
pub fn agent_kind_label(kind: RequestKind, language: Language) -> &'static str {
    entry(&words(language).kind_theirs, &kind)
}

/// Why an agent may act for the person, in words.
pub fn relationship_label(relationship: Relationship, language: Language) -> &'static str {
    entry(&words(language).relationship, &relationship)
}

/// The key of a request's regime and country in `complaint` and `court`, most specific first.
fn places(record: &RequestRecord) -> [String; 2] {
    let regime = record.regime.as_str();
    [format!("{regime}_{}", record.region.as_str().to_ascii_lowercase()), regime.to_owned()]
}

/// Where a requester can complain about a refusal or a delay, by regime and country.
pub fn complaint(record: &RequestRecord) -> &'static str {
    let complaints = &words(record.language).complaint;
    places(record)
        .iter()
        .find_map(|key| complaints.get(key))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no complaint words for {}", record.regime.as_str()))
}

/// The court route a refusal names beside the complaint (UAVG art. 35: a petition to the
/// rechtbank within six weeks), where Dutch law gives one; `None` elsewhere.
pub fn court(record: &RequestRecord) -> Option<&'static str> {
    if record.regime != Regime::Gdpr {
        return None;
    }
    let courts = &words(record.language).court;
    let [specific, general] = places(record);
    // A person outside the Netherlands is told of the Dutch court only in Dutch: an English
    // reader elsewhere in Europe goes to their own courts, which the complaint sentence names.
    courts
        .get(&specific)
        .or_else(|| (record.language == Language::Nl).then(|| courts.get(&general)).flatten())
        .map(String::as_str)
}

/// An amount as a reader in `language` writes it: the euro as "€ 25,00" in Dutch and "€25.00"
/// in English; the dollar and the pound by their sign ("US$25.00", "US$ 25,00", "£25.00"); any
/// other currency by its code before the amount ("CHF 25.00", "CHF 25,00"). Thousands are
/// grouped ("€1,250.00", "€ 1.250,00"). Never the wire form "EUR 25.00", which staff type.
pub fn money(amount: &CostEstimate, language: Language) -> String {
    let (units, cents) = amount.units_and_cents();
    let (group, decimal) = match language {
        Language::En => (',', '.'),
        Language::Nl => ('.', ','),
    };
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(digit);
    }
    let number = format!("{grouped}{decimal}{cents:02}");
    let sign = match amount.currency() {
        "EUR" => Some("€"),
        "USD" => Some("US$"),
        "GBP" => Some("£"),
        _ => None,
    };
    match (sign, language) {
        // English sets a sign against the number; Dutch writes "€ 25,00".
        (Some(sign), Language::En) => format!("{sign}{number}"),
        (Some(sign), Language::Nl) => format!("{sign}\u{a0}{number}"),
        // A code is a word in both languages: "CHF 25.00", "CHF 25,00".
        (None, _) => format!("{}\u{a0}{number}", amount.currency()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fee(amount: &str, currency: &str) -> CostEstimate {
        CostEstimate::parse(amount, currency).unwrap()
    }

    #[test]
    fn an_amount_is_written_as_its_reader_writes_money_never_as_the_wire_code() {
        let nbsp = |s: &str| s.replace(' ', "\u{a0}");
        for (amount, currency, en, nl) in [
            ("25.00", "EUR", "€25.00", "€ 25,00"),
            ("0.50", "EUR", "€0.50", "€ 0,50"),
            ("1250.00", "EUR", "€1,250.00", "€ 1.250,00"),
            ("100000.00", "EUR", "€100,000.00", "€ 100.000,00"),
            ("999.99", "EUR", "€999.99", "€ 999,99"),
            ("25.00", "USD", "US$25.00", "US$ 25,00"),
            ("12.30", "GBP", "£12.30", "£ 12,30"),
            ("25.00", "CHF", "CHF 25.00", "CHF 25,00"),
            ("2500.00", "SEK", "SEK 2,500.00", "SEK 2.500,00"),
        ] {
            let fee = fee(amount, currency);
            assert_eq!(money(&fee, Language::En), nbsp(en), "{amount} {currency}");
            assert_eq!(money(&fee, Language::Nl), nbsp(nl), "{amount} {currency}");
        }
        // The space in "€ 25,00" never breaks the sign from its number at a line end.
        assert!(money(&fee("25.00", "EUR"), Language::Nl).contains('\u{a0}'));
    }

    #[test]
    fn every_section_of_the_staff_digest_has_a_title_a_label_and_what_to_do() {
        use crate::mail::templates::{DigestSection, SourceSection};
        let names = DigestSection::ALL
            .iter()
            .map(|s| s.as_str())
            .chain([SourceSection::Late, SourceSection::WithStaff].iter().map(|s| s.as_str()));
        for name in names {
            let words = digest_section(name);
            assert!(
                !words.title.is_empty() && !words.label.is_empty() && !words.explanation.is_empty(),
                "{name}"
            );
        }
        assert_eq!(DIGEST.len(), 6, "no words for a section that does not exist");
    }

    #[test]
    fn every_right_relationship_and_regime_has_words_in_every_language() {
        for language in [Language::En, Language::Nl] {
            for kind in RequestKind::ALL {
                assert!(!kind_label(kind, language).is_empty());
                assert!(!agent_kind_label(kind, language).is_empty());
            }
            for relationship in [
                Relationship::AuthorisedAgent,
                Relationship::ParentOrGuardian,
                Relationship::LegalRepresentative,
            ] {
                assert!(!relationship_label(relationship, language).is_empty());
            }
            for regime in ["gdpr", "ccpa", "other"] {
                assert!(words(language).complaint.contains_key(regime), "{regime} in {language:?}");
            }
            assert_eq!(words(language).kind.len(), RequestKind::ALL.len());
            assert_eq!(words(language).kind_theirs.len(), RequestKind::ALL.len());
        }
    }
}
