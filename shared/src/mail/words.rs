//! The words several emails share (`templates/mail/words/<lang>.yaml`): the names of the rights,
//! where to complain, the court route, the buttons. A translator finds them beside the messages.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::domain::{Language, Regime, Relationship, RequestKind, RequestRecord};

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

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [RequestKind; 9] = [
        RequestKind::Access,
        RequestKind::Portability,
        RequestKind::Rectification,
        RequestKind::Deletion,
        RequestKind::Restriction,
        RequestKind::Objection,
        RequestKind::WithdrawConsent,
        RequestKind::OptOutOfSale,
        RequestKind::Unsubscribe,
    ];

    #[test]
    fn every_right_relationship_and_regime_has_words_in_every_language() {
        for language in [Language::En, Language::Nl] {
            for kind in KINDS {
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
            assert_eq!(words(language).kind.len(), KINDS.len());
            assert_eq!(words(language).kind_theirs.len(), KINDS.len());
        }
    }
}
