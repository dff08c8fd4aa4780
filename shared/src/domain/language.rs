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
