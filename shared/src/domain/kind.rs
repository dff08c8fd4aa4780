use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the requester asks for; one variant per right in the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Access,
    Portability,
    Rectification,
    Deletion,
    Restriction,
    Objection,
    WithdrawConsent,
    OptOutOfSale,
    Unsubscribe,
}

impl RequestKind {
    pub const ALL: [RequestKind; 9] = [
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

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Portability => "portability",
            RequestKind::Rectification => "rectification",
            RequestKind::Deletion => "deletion",
            RequestKind::Restriction => "restriction",
            RequestKind::Objection => "objection",
            RequestKind::WithdrawConsent => "withdraw_consent",
            RequestKind::OptOutOfSale => "opt_out_of_sale",
            RequestKind::Unsubscribe => "unsubscribe",
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown request kind")]
pub struct UnknownKind;

impl FromStr for RequestKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(UnknownKind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_wire_name() {
        for kind in RequestKind::ALL {
            assert_eq!(kind.as_str().parse::<RequestKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn wire_names_are_case_sensitive_and_closed() {
        assert!("Access".parse::<RequestKind>().is_err());
        assert!("erase".parse::<RequestKind>().is_err());
        assert!("".parse::<RequestKind>().is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_wire_names(input in any::<String>()) {
            let known = RequestKind::ALL.iter().find(|k| k.as_str() == input).copied();
            prop_assert_eq!(input.parse::<RequestKind>().ok(), known);
            // The JSON edge reads the same closed set.
            let json = serde_json::to_string(&input).unwrap();
            prop_assert_eq!(serde_json::from_str::<RequestKind>(&json).ok(), known);
        }

        #[test]
        fn a_wire_name_in_another_case_or_with_padding_is_refused(
            kind in prop::sample::select(RequestKind::ALL.to_vec()),
            pad in prop::sample::select(vec!["", " ", "\n", "\0"]),
        ) {
            prop_assert_eq!(kind.to_string().parse::<RequestKind>(), Ok(kind));
            prop_assert!(kind.as_str().to_uppercase().parse::<RequestKind>().is_err());
            if !pad.is_empty() {
                let (before, after) = (format!("{pad}{kind}"), format!("{kind}{pad}"));
                prop_assert!(before.parse::<RequestKind>().is_err());
                prop_assert!(after.parse::<RequestKind>().is_err());
            }
        }
    }
}
