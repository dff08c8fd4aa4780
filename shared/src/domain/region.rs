use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the requester lives: an ISO 3166-1 alpha-2 country code, or `US-CA`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

/// The law whose clocks and rules apply, which follows from the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    Gdpr,
    Ccpa,
    Other,
}

impl Regime {
    pub fn as_str(self) -> &'static str {
        match self {
            Regime::Gdpr => "gdpr",
            Regime::Ccpa => "ccpa",
            Regime::Other => "other",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    #[error("region must be an ISO 3166-1 alpha-2 country code or US-CA")]
    Unknown,
}

/// EU member states and their outermost regions that carry their own ISO code, the rest of the
/// EEA, the United Kingdom (UK GDPR) and Switzerland (revFADP, read the same way here).
const GDPR_REGIONS: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
    "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", // EU-27
    "AX", "GF", "GP", "MQ", "RE", "YT", "MF", // EU territory with its own code
    "IS", "LI", "NO", // EEA
    "GB", "CH",
];

impl Region {
    /// Accepts any case; stores the canonical upper-case code.
    pub fn parse(input: &str) -> Result<Region, RegionError> {
        let code = input.to_ascii_uppercase();
        if code == "US-CA" {
            return Ok(Region(code));
        }
        if code.len() == 2
            && code.bytes().all(|b| b.is_ascii_uppercase())
            && isocountry::CountryCode::for_alpha2(&code).is_ok()
        {
            return Ok(Region(code));
        }
        Err(RegionError::Unknown)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn regime(&self) -> Regime {
        if self.0 == "US-CA" {
            Regime::Ccpa
        } else if GDPR_REGIONS.contains(&self.0.as_str()) {
            Regime::Gdpr
        } else {
            Regime::Other
        }
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.0)
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Region::parse(&value)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regime_follows_from_the_region() {
        for (code, regime) in [
            ("NL", Regime::Gdpr),
            ("de", Regime::Gdpr),
            ("GB", Regime::Gdpr),
            ("CH", Regime::Gdpr),
            ("NO", Regime::Gdpr),
            ("RE", Regime::Gdpr),
            ("US-CA", Regime::Ccpa),
            ("us-ca", Regime::Ccpa),
            ("US", Regime::Other),
            ("JP", Regime::Other),
            ("BR", Regime::Other),
        ] {
            assert_eq!(Region::parse(code).unwrap().regime(), regime, "{code}");
        }
    }

    #[test]
    fn unknown_codes_and_other_subdivisions_are_refused() {
        for bad in ["", "N", "NLD", "XX", "ZZ", "US-NY", "US_CA", "N1", "nl ", "\u{0130}T"] {
            assert_eq!(Region::parse(bad), Err(RegionError::Unknown), "{bad:?}");
        }
    }

    #[test]
    fn every_gdpr_code_is_a_real_country_code() {
        for code in GDPR_REGIONS {
            assert!(Region::parse(code).is_ok(), "{code}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Two characters, mostly ASCII letters in either case, sometimes anything.
    fn code_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z]{2}",
            "[a-zA-Z]{2}-[a-zA-Z]{2}",
            prop::collection::vec(any::<char>(), 0..6).prop_map(|c| c.into_iter().collect()),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(input in any::<String>()) {
            let _ = Region::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
            let _ = Region::parse(&String::from_utf8_lossy(&bytes));
            let _ = serde_json::from_slice::<Region>(&bytes);
        }

        #[test]
        fn an_accepted_region_is_canonical_upper_case_and_round_trips(input in code_like()) {
            if let Ok(region) = Region::parse(&input) {
                let code = region.as_str();
                prop_assert!(code == "US-CA" || (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())));
                prop_assert_eq!(code, input.to_ascii_uppercase());
                prop_assert_eq!(Region::parse(code), Ok(region.clone()));
                let json = serde_json::to_string(&region).unwrap();
                prop_assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), region.clone());
                prop_assert_eq!(region.regime() == Regime::Ccpa, code == "US-CA");
            }
        }

        #[test]
        fn case_never_changes_the_region(input in code_like()) {
            prop_assert_eq!(Region::parse(&input.to_ascii_lowercase()), Region::parse(&input.to_ascii_uppercase()));
        }

        #[test]
        fn a_two_letter_code_is_accepted_exactly_when_iso_3166_knows_it(code in "[A-Z]{2}") {
            let known = isocountry::CountryCode::for_alpha2(&code).is_ok();
            prop_assert_eq!(Region::parse(&code).is_ok(), known);
        }

        #[test]
        fn any_other_length_or_subdivision_is_unknown(input in any::<String>()) {
            prop_assume!(input.len() != 2 && !input.eq_ignore_ascii_case("US-CA"));
            prop_assert_eq!(Region::parse(&input), Err(RegionError::Unknown));
        }

        #[test]
        fn surrounding_space_is_refused(code in "[A-Z]{2}", pad in prop::sample::select(vec![" ", "\t", "\n", "\0"])) {
            let (before, after) = (format!("{pad}{code}"), format!("{code}{pad}"));
            prop_assert!(Region::parse(&before).is_err());
            prop_assert!(Region::parse(&after).is_err());
        }
    }
}
