//! After a refused correction: the person disputes the accuracy of their data (CCPA regulations
//! §7023(f)), and processing of the disputed data is restricted while it is disputed (GDPR
//! Art. 18(1)(a)); before the restriction is lifted the person is told (Art. 18(3)).
//!
//! The restriction is one state, not a set of flags: in force, or announced to be lifted on a
//! day. A lift is announced before that day (staff give a date after today), so the notice always
//! precedes it; from that day on the restriction reads as lifted, with nothing left to run.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::StaffText;

/// The dispute noted on a refused correction, and the restriction it holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// When staff noted it (the person asked by reply).
    pub recorded_at: DateTime<Utc>,
    /// The person's own statement, as they want it noted; none when they gave only the wish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<StaffText>,
    pub restriction: Restriction,
}

/// Where the restriction of the disputed data stands.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Restriction {
    /// Processing of the disputed data is restricted (it is kept, not used).
    InForce,
    /// The person was told, at `announced_at`, that the restriction is lifted on `on`, and why.
    /// It holds until the day before.
    Lifting { on: NaiveDate, reason: StaffText, announced_at: DateTime<Utc> },
}

/// The restriction as of one day, for views and checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestrictionState {
    InForce,
    /// Announced; in force until `on`.
    Lifting {
        on: NaiveDate,
    },
    Lifted {
        on: NaiveDate,
    },
}

impl RestrictionState {
    pub fn as_str(self) -> &'static str {
        match self {
            RestrictionState::InForce => "in_force",
            RestrictionState::Lifting { .. } => "lifting",
            RestrictionState::Lifted { .. } => "lifted",
        }
    }

    /// Whether processing of the disputed data is restricted on that day.
    pub fn restricts(self) -> bool {
        !matches!(self, RestrictionState::Lifted { .. })
    }
}

impl Dispute {
    pub fn new(recorded_at: DateTime<Utc>, statement: Option<StaffText>) -> Dispute {
        Dispute { recorded_at, statement, restriction: Restriction::InForce }
    }

    /// The restriction on `today` (the business-local date).
    pub fn restriction_on(&self, today: NaiveDate) -> RestrictionState {
        match &self.restriction {
            Restriction::InForce => RestrictionState::InForce,
            Restriction::Lifting { on, .. } if today < *on => RestrictionState::Lifting { on: *on },
            Restriction::Lifting { on, .. } => RestrictionState::Lifted { on: *on },
        }
    }

    /// The announced day of the lift, and why, if it was announced.
    pub fn lifting(&self) -> Option<(NaiveDate, &StaffText)> {
        match &self.restriction {
            Restriction::InForce => None,
            Restriction::Lifting { on, reason, .. } => Some((*on, reason)),
        }
    }
}

/// The statement and the reason may quote the person: only their lengths are shown.
impl fmt::Debug for Dispute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispute")
            .field("recorded_at", &self.recorded_at)
            .field("statement", &self.statement)
            .field("restriction", &self.restriction)
            .finish()
    }
}

impl fmt::Debug for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restriction::InForce => f.write_str("InForce"),
            Restriction::Lifting { on, reason, announced_at } => f
                .debug_struct("Lifting")
                .field("on", on)
                .field("reason", reason)
                .field("announced_at", announced_at)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_restriction_holds_until_the_announced_day_and_is_lifted_from_it() {
        let mut dispute = Dispute::new(at("2026-12-01T10:00:00Z"), None);
        assert_eq!(dispute.restriction_on(day("2030-01-01")), RestrictionState::InForce);
        let reason = StaffText::parse("Uw gegevens zijn opnieuw nagekeken.").unwrap();
        dispute.restriction =
            Restriction::Lifting { on: day("2026-12-20"), reason, announced_at: at("2026-12-05T09:00:00Z") };
        let lifting = dispute.restriction_on(day("2026-12-19"));
        assert_eq!(lifting, RestrictionState::Lifting { on: day("2026-12-20") });
        assert!(lifting.restricts());
        let lifted = dispute.restriction_on(day("2026-12-20"));
        assert_eq!(lifted, RestrictionState::Lifted { on: day("2026-12-20") });
        assert!(!lifted.restricts());
    }

    #[test]
    fn the_state_round_trips_as_a_tagged_object() {
        let reason = StaffText::parse("Checked again.").unwrap();
        let dispute = Dispute {
            recorded_at: at("2026-12-01T10:00:00Z"),
            statement: Some(StaffText::parse("My birth date is 3 May 1980.").unwrap()),
            restriction: Restriction::Lifting {
                on: day("2026-12-20"),
                reason,
                announced_at: at("2026-12-05T09:00:00Z"),
            },
        };
        let json = serde_json::to_value(&dispute).unwrap();
        assert_eq!(json["restriction"]["state"], "lifting");
        assert_eq!(json["restriction"]["on"], "2026-12-20");
        assert_eq!(serde_json::from_value::<Dispute>(json).unwrap(), dispute);
        let shown = format!("{dispute:?}");
        assert!(!shown.contains("1980") && !shown.contains("Checked"), "{shown}");
    }
}
