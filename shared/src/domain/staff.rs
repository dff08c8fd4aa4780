//! What privacy staff put into a request: reasons and notes that the requester will read, cost
//! estimates for excessive requests, and the rules an extension must keep.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::{BusinessCalendar, Regime, RequestRecord};

/// The most a reason or note may hold; it goes into an email and the audit trail.
pub const MAX_STAFF_TEXT_CHARS: usize = 2000;

/// A reason or note written by staff for the requester: trimmed, not blank, bounded, and free of
/// control characters other than line breaks and tabs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StaffText(String);

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum StaffTextError {
    #[error("is blank")]
    Blank,
    #[error("is longer than {MAX_STAFF_TEXT_CHARS} characters")]
    TooLong,
    #[error("contains control characters")]
    ControlCharacters,
}

impl StaffText {
    pub fn parse(input: &str) -> Result<StaffText, StaffTextError> {
        let text = input.replace("\r\n", "\n");
        let text = text.trim();
        if text.is_empty() {
            return Err(StaffTextError::Blank);
        }
        if text.chars().count() > MAX_STAFF_TEXT_CHARS {
            return Err(StaffTextError::TooLong);
        }
        if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(StaffTextError::ControlCharacters);
        }
        Ok(StaffText(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StaffText {
    type Error = StaffTextError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        StaffText::parse(&value)
    }
}

impl From<StaffText> for String {
    fn from(text: StaffText) -> String {
        text.0
    }
}

/// Staff text may quote the requester; keep it out of logs and panics.
impl fmt::Debug for StaffText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaffText({} chars)", self.0.chars().count())
    }
}

/// What an excessive or repetitive request would cost, told to the requester before any work
/// (GDPR art 12(5)). Money in minor units, never floating point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CostEstimateWire", into = "CostEstimateWire")]
pub struct CostEstimate {
    minor_units: u64,
    currency: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct CostEstimateWire {
    amount: String,
    currency: String,
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum CostEstimateError {
    #[error("amount must be a positive decimal with two decimals, at most 100000.00, like \"25.00\"")]
    Amount,
    #[error("currency must be an ISO 4217 code of three capital letters, like \"EUR\"")]
    Currency,
}

/// Keeps an estimate plausible: a fee for handling a request, not a typo with six zeros.
const MAX_MINOR_UNITS: u64 = 100_000 * 100;

impl CostEstimate {
    pub fn parse(amount: &str, currency: &str) -> Result<CostEstimate, CostEstimateError> {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CostEstimateError::Currency);
        }
        let (whole, cents) = amount.split_once('.').ok_or(CostEstimateError::Amount)?;
        let digits =
            |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole, 6) || cents.len() != 2 || !digits(cents, 2) {
            return Err(CostEstimateError::Amount);
        }
        let minor_units = whole
            .parse::<u64>()
            .ok()
            .and_then(|w| w.checked_mul(100))
            .and_then(|w| cents.parse::<u64>().ok().map(|c| w + c))
            .filter(|m| (1..=MAX_MINOR_UNITS).contains(m))
            .ok_or(CostEstimateError::Amount)?;
        Ok(CostEstimate { minor_units, currency: currency.to_owned() })
    }

    pub fn amount(&self) -> String {
        format!("{}.{:02}", self.minor_units / 100, self.minor_units % 100)
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }
}

impl fmt::Display for CostEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.currency, self.amount())
    }
}

impl TryFrom<CostEstimateWire> for CostEstimate {
    type Error = CostEstimateError;
    fn try_from(wire: CostEstimateWire) -> Result<Self, Self::Error> {
        CostEstimate::parse(&wire.amount, &wire.currency)
    }
}

impl From<CostEstimate> for CostEstimateWire {
    fn from(estimate: CostEstimate) -> Self {
        CostEstimateWire { amount: estimate.amount(), currency: estimate.currency }
    }
}

/// Why an extension is refused; each names the rule it breaks.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ExtensionError {
    #[error("only a verified or in-progress request can be extended")]
    NotActive,
    #[error("this request was extended before; it can be extended only once")]
    AlreadyExtended,
    #[error("the original due date {due_on} has passed; an extension must be given before it")]
    TooLate { due_on: NaiveDate },
    #[error("the new date must be after the current due date {due_on}")]
    NotLater { due_on: NaiveDate },
    #[error("the new date may be at most {latest}, the longest extension the regime allows")]
    TooLong { latest: NaiveDate },
}

impl BusinessCalendar {
    /// The latest a request may be extended to: GDPR two further months (counted like the first,
    /// rolled to a working day), CCPA and elsewhere 45 more days (90 in all).
    pub fn extension_limit(&self, regime: Regime, due_on: NaiveDate) -> NaiveDate {
        match regime {
            Regime::Gdpr => self.on_or_next_business_day(
                due_on.checked_add_months(chrono::Months::new(2)).unwrap_or(NaiveDate::MAX),
            ),
            Regime::Ccpa | Regime::Other => due_on + chrono::Days::new(45),
        }
    }

    /// The extension rules, checked in the order a person would ask about them.
    pub fn check_extension(
        &self,
        request: &RequestRecord,
        today: NaiveDate,
        until: NaiveDate,
    ) -> Result<(), ExtensionError> {
        use super::Status;
        if !matches!(request.status, Status::Verified | Status::InProgress) {
            return Err(ExtensionError::NotActive);
        }
        if request.original_due_on.is_some() {
            return Err(ExtensionError::AlreadyExtended);
        }
        if today > request.due_on {
            return Err(ExtensionError::TooLate { due_on: request.due_on });
        }
        if until <= request.due_on {
            return Err(ExtensionError::NotLater { due_on: request.due_on });
        }
        let latest = self.extension_limit(request.regime, request.due_on);
        if until > latest {
            return Err(ExtensionError::TooLong { latest });
        }
        Ok(())
    }
}
