use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::EmailAddress;

/// Someone asking on another person's behalf (CCPA regulations §7063, GDPR recital 59's
/// representatives). The request stays the person's: their address gets the verification and
/// any data; the agent is only told how it goes. `Debug` shows neither name nor address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub name: String,
    pub email: EmailAddress,
    pub relationship: Relationship,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent").field("relationship", &self.relationship).finish_non_exhaustive()
    }
}

/// Why the agent may act for the person: what staff check before acting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// With the person's signed permission (CCPA regulations §7063(a)).
    AuthorisedAgent,
    ParentOrGuardian,
    /// A power of attorney or another legal mandate (§7063(b)).
    LegalRepresentative,
}

impl Relationship {
    pub const ALL: [Relationship; 3] =
        [Relationship::AuthorisedAgent, Relationship::ParentOrGuardian, Relationship::LegalRepresentative];

    pub fn as_str(self) -> &'static str {
        match self {
            Relationship::AuthorisedAgent => "authorised_agent",
            Relationship::ParentOrGuardian => "parent_or_guardian",
            Relationship::LegalRepresentative => "legal_representative",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown relationship")]
pub struct UnknownRelationship;

impl FromStr for Relationship {
    type Err = UnknownRelationship;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Relationship::ALL.into_iter().find(|r| r.as_str() == s).ok_or(UnknownRelationship)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relationship_reads_back_from_its_name_and_nothing_else_reads() {
        for relationship in Relationship::ALL {
            assert_eq!(relationship.as_str().parse::<Relationship>(), Ok(relationship));
        }
        assert_eq!("friend".parse::<Relationship>(), Err(UnknownRelationship));
    }

    #[test]
    fn debug_of_an_agent_names_neither_person_nor_address() {
        let agent = Agent {
            name: "Agatha Agent".into(),
            email: EmailAddress::parse("agatha@agents.example").unwrap(),
            relationship: Relationship::AuthorisedAgent,
        };
        let shown = format!("{agent:?}");
        assert!(!shown.contains("Agatha") && !shown.contains("agents.example"), "{shown}");
    }
}
