use serde::{Deserialize, Serialize};
use std::str::FromStr;

use super::Region;

/// The languages the company answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Nl,
}

impl Language {
    /// Dutch for requests from the Netherlands, English everywhere else.
    pub fn default_for(region: &Region) -> Language {
        if region.as_str() == "NL" { Language::Nl } else { Language::En }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Nl => "nl",
        }
    }

    /// The preferred supported language of an `Accept-Language` header, by q-value.
    pub fn from_accept_language(header: &str) -> Option<Language> {
        let mut best: Option<(Language, f32)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Ok(lang) = primary.parse::<Language>() else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((lang, q));
            }
        }
        best.map(|(l, _)| l)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported language")]
pub struct UnknownLanguage;

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Language::En),
            "nl" => Ok(Language::Nl),
            _ => Err(UnknownLanguage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dutch_is_the_default_for_the_netherlands_only() {
        assert_eq!(Language::default_for(&Region::parse("NL").unwrap()), Language::Nl);
        assert_eq!(Language::default_for(&Region::parse("BE").unwrap()), Language::En);
        assert_eq!(Language::default_for(&Region::parse("US-CA").unwrap()), Language::En);
    }

    #[test]
    fn accept_language_picks_the_highest_supported_preference() {
        assert_eq!(Language::from_accept_language("nl-NL,nl;q=0.9,en;q=0.8"), Some(Language::Nl));
        assert_eq!(Language::from_accept_language("de-DE, en;q=0.5, nl;q=0.7"), Some(Language::Nl));
        assert_eq!(Language::from_accept_language("fr, de"), None);
        assert_eq!(Language::from_accept_language("nl;q=0, en"), Some(Language::En));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One entry of an Accept-Language header: a tag (supported or not, any case, maybe with a
    /// subtag) and a q-value in thousandths, or none (1).
    fn entry() -> impl Strategy<Value = (String, Option<u16>)> {
        (
            prop::sample::select(vec!["en", "nl", "EN", "Nl", "en-GB", "nl-BE", "de", "fr-FR", "*", "e", ""]),
            prop::option::of(0..=1000u16),
        )
            .prop_map(|(tag, q)| (tag.to_owned(), q))
    }

    fn header_of(entries: &[(String, Option<u16>)]) -> String {
        let parts: Vec<String> = entries
            .iter()
            .map(|(tag, q)| match q {
                Some(q) => format!("{tag};q={}.{:03}", q / 1000, q % 1000),
                None => tag.clone(),
            })
            .collect();
        parts.join(", ")
    }

    proptest! {
        #[test]
        fn from_str_accepts_exactly_en_and_nl(input in any::<String>()) {
            let expected = match input.as_str() {
                "en" => Some(Language::En),
                "nl" => Some(Language::Nl),
                _ => None,
            };
            prop_assert_eq!(input.parse::<Language>().ok(), expected);
            let json = serde_json::to_string(&input).unwrap();
            prop_assert_eq!(serde_json::from_str::<Language>(&json).ok(), expected);
            if let Some(language) = expected {
                prop_assert_eq!(language.as_str(), input.as_str());
            }
        }

        #[test]
        fn accept_language_never_panics_on_any_header(header in any::<String>()) {
            let _ = Language::from_accept_language(&header);
        }

        #[test]
        fn accept_language_never_panics_on_header_like_text(header in "[a-zA-Z;=,. q0-9*-]{0,60}") {
            let _ = Language::from_accept_language(&header);
        }

        /// The model: the first supported entry with the highest q above zero.
        #[test]
        fn accept_language_picks_the_first_highest_supported_preference(entries in prop::collection::vec(entry(), 0..6)) {
            let mut best: Option<(Language, u16)> = None;
            for (tag, q) in &entries {
                let primary = tag.split('-').next().unwrap().to_ascii_lowercase();
                let Ok(language) = primary.parse::<Language>() else { continue };
                let q = q.unwrap_or(1000);
                if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
                    best = Some((language, q));
                }
            }
            prop_assert_eq!(Language::from_accept_language(&header_of(&entries)), best.map(|(l, _)| l));
        }
    }
}
