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

    /// The whole units and the cents, for a formatter that writes them as its reader expects
    /// (`mail::words::money`: "€ 25,00" in Dutch, "€25.00" in English).
    pub fn units_and_cents(&self) -> (u64, u64) {
        (self.minor_units / 100, self.minor_units % 100)
    }
}

/// The wire form, for staff and logs ("EUR 25.00"); a requester reads `mail::words::money`.
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
    /// The latest a request received on `received_on` and due on `due_on` may be extended to.
    /// GDPR (Art. 12(3)): three months from receipt in all, "extended by two further months",
    /// counted from the day of receipt like the first (same day number, else the month's last
    /// day) and only that last day moved to the next working day; the ICO's example: received 3
    /// September, extended deadline 3 December. Counting two months on from the rolled one-month
    /// date instead could give days past the legal maximum. CCPA and elsewhere 45 more days (90
    /// in all).
    pub fn extension_limit(&self, regime: Regime, received_on: NaiveDate, due_on: NaiveDate) -> NaiveDate {
        match regime {
            Regime::Gdpr => self.on_or_next_business_day(
                received_on.checked_add_months(chrono::Months::new(3)).unwrap_or(NaiveDate::MAX),
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
        let latest = self.extension_limit(request.regime, request.received_on, request.due_on);
        if until > latest {
            return Err(ExtensionError::TooLong { latest });
        }
        Ok(())
    }
}

#[cfg(test)]
mod extension_limits {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// The GDPR's longest extension, by table: three months from receipt, only the last day
    /// rolled to a working day (Dutch public holidays of 2026-2028 as business holidays).
    #[test]
    fn a_gdpr_extension_ends_three_months_after_receipt_rolled_only_at_its_end() {
        let calendar = BusinessCalendar::parse(
            "Europe/Amsterdam",
            "2026-12-25,2026-12-26,2027-01-01,2027-03-28,2027-03-29,2027-04-27,2027-05-05,2027-05-06,2027-05-16,2027-05-17,2027-12-25,2027-12-26,2028-01-01,2028-04-27",
        )
        .unwrap();
        let cases = [
            // The ICO's example: received 3 September, extended deadline 3 December (a Friday).
            ("2027-09-03", "2027-12-03", "a plain case"),
            // Month ends: no 31 February, May has a 31st, so does August.
            ("2026-11-30", "2027-03-01", "28 February 2027 is a Sunday: the next working day"),
            ("2027-01-31", "2027-04-30", "31 April does not exist: the month's last day, a Friday"),
            ("2027-05-31", "2027-08-31", "31 August, a Tuesday"),
            ("2027-11-30", "2028-02-29", "a leap year: 29 February 2028, a Tuesday"),
            ("2027-11-29", "2028-02-29", "29 February exists in 2028"),
            ("2026-10-31", "2027-02-01", "31 January 2027 is a Sunday: Monday 1 February"),
            // Holidays and weekends at the end only.
            ("2026-09-25", "2026-12-28", "25 December is Christmas, the 26th a Saturday: Monday"),
            ("2026-10-01", "2027-01-04", "1 January is New Year's Day, then a weekend"),
            ("2027-01-27", "2027-04-28", "27 April is King's Day"),
        ];
        for (received, limit, why) in cases {
            let received = day(received);
            let due_on =
                calendar.deadlines(Regime::Gdpr, received.and_hms_opt(12, 0, 0).unwrap().and_utc()).due_on;
            assert_eq!(
                calendar.extension_limit(Regime::Gdpr, received, due_on),
                day(limit),
                "{received}: {why}"
            );
        }
    }

    /// Where the old count (two months on from the rolled due date) allowed more than the law.
    #[test]
    fn a_due_date_rolled_past_a_weekend_does_not_stretch_the_extension() {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        // Received 31 December 2026: one month is 31 January 2027, a Sunday, so the request is
        // due Monday 1 February. Three months from receipt is Wednesday 31 March; two months on
        // from the rolled due date would have been 1 April, a day past the legal maximum.
        let received = day("2026-12-31");
        let due_on =
            calendar.deadlines(Regime::Gdpr, received.and_hms_opt(12, 0, 0).unwrap().and_utc()).due_on;
        assert_eq!(due_on, day("2027-02-01"));
        assert_eq!(calendar.extension_limit(Regime::Gdpr, received, due_on), day("2027-03-31"));
        assert_eq!(due_on.checked_add_months(chrono::Months::new(2)).unwrap(), day("2027-04-01"));
    }

    #[test]
    fn ccpa_and_elsewhere_extend_by_45_days_to_90_in_all() {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let received = day("2026-12-03");
        for regime in [Regime::Ccpa, Regime::Other] {
            let due_on = calendar.deadlines(regime, received.and_hms_opt(12, 0, 0).unwrap().and_utc()).due_on;
            assert_eq!(calendar.extension_limit(regime, received, due_on), received + chrono::Days::new(90));
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::domain::{EmailAddress, Language, Region, RequestId, RequestKind, Status};
    use chrono::{DateTime, Days, Utc};
    use proptest::prelude::*;

    /// Text with the characters staff text is about: line breaks of both kinds, tabs, other
    /// controls, Unicode spaces and letters.
    fn text_like(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a', 'Z', ' ', '.', '\n', '\r', '\t', '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}',
                'é', '例', '\u{2028}', '\u{3000}', '\u{200b}',
            ]),
            0..max,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    /// Printable text: what staff may write.
    fn printable(min: usize, max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>().prop_filter("printable", |c| !c.is_control()), min..max)
            .prop_map(|c| c.into_iter().collect())
    }

    fn amount_text(minor: u64) -> String {
        format!("{}.{:02}", minor / 100, minor % 100)
    }

    proptest! {
        #[test]
        fn staff_text_parse_never_panics_on_any_string(input in any::<String>()) {
            let _ = StaffText::parse(&input);
        }

        #[test]
        fn accepted_staff_text_keeps_the_rules_and_is_a_fixed_point(input in text_like(40)) {
            match StaffText::parse(&input) {
                Ok(text) => {
                    let s = text.as_str();
                    prop_assert!(!s.is_empty());
                    prop_assert_eq!(s, s.trim());
                    prop_assert!(s.chars().count() <= MAX_STAFF_TEXT_CHARS);
                    prop_assert!(!s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
                    prop_assert!(!s.contains('\r'));
                    prop_assert_eq!(StaffText::parse(s), Ok(text.clone()));
                    let json = serde_json::to_string(&text).unwrap();
                    prop_assert_eq!(serde_json::from_str::<StaffText>(&json).unwrap(), text);
                }
                Err(StaffTextError::Blank) => prop_assert!(input.trim().is_empty()),
                Err(StaffTextError::TooLong) => prop_assert!(input.chars().count() > MAX_STAFF_TEXT_CHARS),
                Err(StaffTextError::ControlCharacters) => prop_assert!(input.chars().any(|c| c.is_control())),
            }
        }

        #[test]
        fn printable_text_is_kept_trimmed(input in printable(1, 200)) {
            prop_assume!(!input.trim().is_empty());
            let text = StaffText::parse(&input).unwrap();
            prop_assert_eq!(text.as_str(), input.trim());
        }

        #[test]
        fn windows_line_breaks_are_kept_as_plain_line_breaks(lines in prop::collection::vec("[a-z]{1,10}", 1..5)) {
            let text = StaffText::parse(&lines.join("\r\n")).unwrap();
            prop_assert_eq!(text.as_str(), lines.join("\n"));
        }

        #[test]
        fn a_control_character_inside_is_refused(
            before in "[a-z]{1,10}",
            after in "[a-z]{1,10}",
            bad in any::<char>().prop_filter("control, not a line break or tab", |c| c.is_control() && !matches!(c, '\n' | '\t')),
        ) {
            prop_assert_eq!(StaffText::parse(&format!("{before}{bad}{after}")), Err(StaffTextError::ControlCharacters));
        }

        #[test]
        fn blank_text_is_blank(input in "[ \t\n\r\u{a0}\u{3000}\u{2028}]{0,20}") {
            prop_assert_eq!(StaffText::parse(&input), Err(StaffTextError::Blank));
        }

        #[test]
        fn the_length_limit_counts_characters_not_bytes(n in 1..=MAX_STAFF_TEXT_CHARS + 10, c in prop::sample::select(vec!['a', 'é', '例', '😀'])) {
            let input: String = std::iter::repeat_n(c, n).collect();
            let result = StaffText::parse(&input);
            if n <= MAX_STAFF_TEXT_CHARS {
                prop_assert!(result.is_ok());
            } else {
                prop_assert_eq!(result, Err(StaffTextError::TooLong));
            }
        }

        #[test]
        fn cost_estimate_parse_never_panics(amount in any::<String>(), currency in any::<String>()) {
            let _ = CostEstimate::parse(&amount, &currency);
        }

        #[test]
        fn cost_estimate_parse_never_panics_on_number_like_text(amount in "[0-9.,+-]{0,14}", currency in "[A-Za-z]{2,4}") {
            if let Ok(estimate) = CostEstimate::parse(&amount, &currency) {
                prop_assert_eq!(CostEstimate::parse(&estimate.amount(), estimate.currency()), Ok(estimate));
            }
        }

        #[test]
        fn every_amount_in_range_round_trips(minor in 1..=MAX_MINOR_UNITS, currency in "[A-Z]{3}") {
            let text = amount_text(minor);
            let estimate = CostEstimate::parse(&text, &currency).unwrap();
            prop_assert_eq!(estimate.amount(), text.clone());
            prop_assert_eq!(estimate.currency(), currency.as_str());
            prop_assert_eq!(estimate.to_string(), format!("{currency} {text}"));
            let json = serde_json::to_string(&estimate).unwrap();
            prop_assert_eq!(serde_json::from_str::<CostEstimate>(&json).unwrap(), estimate);
        }

        #[test]
        fn leading_zeros_read_as_the_same_amount(minor in 1..=99_999u64, zeros in 1..3usize) {
            let text = format!("{}{}", "0".repeat(zeros), amount_text(minor));
            prop_assume!(text.split_once('.').unwrap().0.len() <= 6);
            prop_assert_eq!(CostEstimate::parse(&text, "EUR").unwrap().amount(), amount_text(minor));
        }

        #[test]
        fn zero_and_amounts_over_the_limit_are_refused(minor in prop_oneof![Just(0u64), MAX_MINOR_UNITS + 1..=99_999_999]) {
            prop_assert_eq!(CostEstimate::parse(&amount_text(minor), "EUR"), Err(CostEstimateError::Amount));
        }

        #[test]
        fn other_amount_shapes_are_refused(whole in "[0-9]{1,6}", cents in "[0-9]{0,4}", sep in prop::sample::select(vec![".", ",", ""])) {
            prop_assume!(!(sep == "." && cents.len() == 2));
            prop_assert_eq!(CostEstimate::parse(&format!("{whole}{sep}{cents}"), "EUR"), Err(CostEstimateError::Amount));
        }

        #[test]
        fn a_currency_that_is_not_three_capitals_is_refused_before_the_amount(currency in any::<String>(), amount in any::<String>()) {
            prop_assume!(!(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())));
            prop_assert_eq!(CostEstimate::parse(&amount, &currency), Err(CostEstimateError::Currency));
        }
    }

    fn verified(regime_region: &str, received_on: NaiveDate, due_on: NaiveDate) -> RequestRecord {
        let at: DateTime<Utc> = received_on.and_hms_opt(12, 0, 0).unwrap().and_utc();
        let deadlines = crate::domain::Deadlines { received_on, due_on, acknowledge_by: None };
        RequestRecord {
            status: Status::Verified,
            ..RequestRecord::received(
                RequestId::generate(),
                RequestKind::Access,
                Region::parse(regime_region).unwrap(),
                Language::En,
                EmailAddress::parse("a@example.com").unwrap(),
                at,
                deadlines,
            )
        }
    }

    fn day_in_range() -> impl Strategy<Value = NaiveDate> {
        let first = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        (0..7671u64).prop_map(move |n| first + Days::new(n))
    }

    proptest! {
        /// The extension rules as a model: in time, later than the due date, within the limit.
        #[test]
        fn an_extension_is_allowed_exactly_in_time_and_up_to_the_limit(
            region in prop::sample::select(vec!["NL", "US-CA", "JP"]),
            received_on in day_in_range(),
            today_offset in 0..80u64,
            until_offset in 0..200u64,
        ) {
            let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
            let regime = Region::parse(region).unwrap().regime();
            let at = received_on.and_hms_opt(12, 0, 0).unwrap().and_utc();
            let due_on = calendar.deadlines(regime, at).due_on;
            let request = verified(region, received_on, due_on);
            let today = received_on + Days::new(today_offset);
            let until = received_on + Days::new(until_offset);
            let latest = calendar.extension_limit(regime, received_on, due_on);
            let expected = if today > due_on {
                Err(ExtensionError::TooLate { due_on })
            } else if until <= due_on {
                Err(ExtensionError::NotLater { due_on })
            } else if until > latest {
                Err(ExtensionError::TooLong { latest })
            } else {
                Ok(())
            };
            prop_assert_eq!(calendar.check_extension(&request, today, until), expected);
            let extended = RequestRecord { original_due_on: Some(due_on), ..request.clone() };
            prop_assert_eq!(calendar.check_extension(&extended, today, until), Err(ExtensionError::AlreadyExtended));
        }
    }
}
