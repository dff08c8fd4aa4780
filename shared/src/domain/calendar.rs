use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::Regime;

/// Business days and the one time zone every legal clock is counted in.
///
/// Zones come from jiff's bundled tz database (compact TZif bytes, read on demand): the deployed
/// image needs no zoneinfo, and the binary carries no per-zone pointer tables to relocate at start.
#[derive(Clone, Debug)]
pub struct BusinessCalendar {
    zone: TimeZone,
    zone_name: String,
    holidays: BTreeSet<NaiveDate>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("unknown time zone {0:?}")]
    UnknownZone(String),
    #[error("holiday {0:?} is not a YYYY-MM-DD date")]
    BadHoliday(String),
}

/// The dates a request must meet, fixed at receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// The day of receipt in the business time zone.
    pub received_on: NaiveDate,
    /// The last day to answer (inclusive).
    pub due_on: NaiveDate,
    /// The last day to confirm receipt, where the law sets one (CCPA: 10 business days).
    pub acknowledge_by: Option<NaiveDate>,
}

impl BusinessCalendar {
    /// From configuration text: an IANA zone name and comma-separated ISO dates.
    pub fn parse(zone: &str, holidays: &str) -> Result<BusinessCalendar, CalendarError> {
        let zone_name = zone.to_owned();
        let zone = TimeZone::get(zone).map_err(|_| CalendarError::UnknownZone(zone_name.clone()))?;
        let holidays = holidays
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| CalendarError::BadHoliday(s.to_owned()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(BusinessCalendar { zone, zone_name, holidays })
    }

    /// UTC, without holidays: for a worker that tells no dates (it reads no zone).
    pub fn utc() -> BusinessCalendar {
        BusinessCalendar { zone: TimeZone::UTC, zone_name: "UTC".to_owned(), holidays: BTreeSet::new() }
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        // Every DateTime<Utc> chrono can hold from a clock is inside jiff's range; the fallback
        // (the UTC date) is unreachable in practice and still a sane answer.
        jiff::Timestamp::new(at.timestamp(), at.timestamp_subsec_nanos() as i32)
            .ok()
            .map(|ts| self.zone.to_datetime(ts).date())
            .and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year()), d.month() as u32, d.day() as u32))
            .unwrap_or_else(|| at.date_naive())
    }

    /// The wall-clock date and time at `at` in the business time zone (to the second).
    pub fn local_datetime(&self, at: DateTime<Utc>) -> chrono::NaiveDateTime {
        jiff::Timestamp::new(at.timestamp(), 0)
            .ok()
            .map(|ts| self.zone.to_datetime(ts))
            .and_then(|t| {
                let date = NaiveDate::from_ymd_opt(i32::from(t.year()), t.month() as u32, t.day() as u32)?;
                date.and_hms_opt(t.hour() as u32, t.minute() as u32, t.second() as u32)
            })
            .unwrap_or_else(|| at.naive_utc())
    }

    /// The first instant of `day` in the business time zone (midnight, or the first hour after a
    /// gap): a date a mail promises "by" holds until the start of the next.
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        let start = i8::try_from(day.month())
            .ok()
            .zip(i8::try_from(day.day()).ok())
            .and_then(|(m, d)| jiff::civil::Date::new(i16::try_from(day.year()).ok()?, m, d).ok())
            .and_then(|date| self.zone.to_ambiguous_timestamp(date.at(0, 0, 0, 0)).compatible().ok())
            .and_then(|ts| DateTime::from_timestamp(ts.as_second(), 0));
        // Out of jiff's range (never a date a request carries): the day's start in UTC.
        start.unwrap_or_else(|| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
    }

    pub fn is_business_day(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&day)
    }

    /// `day` itself if it is a business day, else the next one.
    pub fn on_or_next_business_day(&self, mut day: NaiveDate) -> NaiveDate {
        while !self.is_business_day(day) {
            day = day + Days::new(1);
        }
        day
    }

    /// The `n`th business day after `day` (the day itself does not count).
    pub fn add_business_days(&self, mut day: NaiveDate, n: u32) -> NaiveDate {
        let mut left = n;
        while left > 0 {
            day = day + Days::new(1);
            if self.is_business_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The clocks of the brief: GDPR one month (same day number, else the month's last day,
    /// then rolled to a working day); CCPA and elsewhere 45 calendar days, and for CCPA a
    /// confirmation of receipt within 10 business days.
    pub fn deadlines(&self, regime: Regime, received_at: DateTime<Utc>) -> Deadlines {
        self.deadlines_from(regime, self.local_date(received_at))
    }

    /// [`BusinessCalendar::deadlines`] counted from a business-local day: the clock that starts
    /// again when a person accepts the fee of an excessive request, from the day they did.
    pub fn deadlines_from(&self, regime: Regime, received_on: NaiveDate) -> Deadlines {
        match regime {
            Regime::Gdpr => Deadlines {
                received_on,
                due_on: self.on_or_next_business_day(add_one_month(received_on)),
                acknowledge_by: None,
            },
            Regime::Ccpa | Regime::Other => Deadlines {
                received_on,
                due_on: received_on + Days::new(45),
                acknowledge_by: Some(self.add_business_days(received_on, 10)),
            },
        }
    }
}

/// Same day number next month; where that month is shorter, its last day. chrono clamps the
/// same way, and never fails within its range.
fn add_one_month(day: NaiveDate) -> NaiveDate {
    day.checked_add_months(Months::new(1)).unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn amsterdam(holidays: &str) -> BusinessCalendar {
        BusinessCalendar::parse("Europe/Amsterdam", holidays).unwrap()
    }

    /// Noon in Amsterdam on the given date, as UTC.
    fn noon(s: &str) -> DateTime<Utc> {
        let local: jiff::civil::DateTime = format!("{s}T12:00:00").parse().unwrap();
        let ts =
            TimeZone::get("Europe/Amsterdam").unwrap().to_ambiguous_timestamp(local).compatible().unwrap();
        DateTime::from_timestamp(ts.as_second(), 0).unwrap()
    }

    #[test]
    fn a_moment_is_told_on_the_business_zones_clock_summer_and_winter() {
        let cal = amsterdam("");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let local = |s: &str| cal.local_datetime(at(s)).format("%Y-%m-%d %H:%M:%S").to_string();
        assert_eq!(local("2026-10-02T09:00:30Z"), "2026-10-02 11:00:30", "summer time: UTC+2");
        assert_eq!(local("2026-12-31T23:30:00Z"), "2027-01-01 00:30:00", "winter time: UTC+1, the next day");
    }

    #[test]
    fn a_day_starts_at_local_midnight_and_the_moment_before_is_still_the_day_before() {
        let cal = amsterdam("");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(cal.start_of(d("2026-11-10")), at("2026-11-09T23:00:00Z"), "winter time: UTC+1");
        assert_eq!(cal.start_of(d("2026-07-10")), at("2026-07-09T22:00:00Z"), "summer time: UTC+2");
        let start = cal.start_of(d("2026-11-10"));
        assert_eq!(cal.local_date(start), d("2026-11-10"));
        assert_eq!(cal.local_date(start - chrono::Duration::seconds(1)), d("2026-11-09"));
    }

    fn gdpr_due(received: &str, cal: &BusinessCalendar) -> NaiveDate {
        cal.deadlines(Regime::Gdpr, noon(received)).due_on
    }

    #[test]
    fn gdpr_month_ends_on_the_same_day_number_next_month() {
        // 2026-03-05 is a Thursday; 2026-04-05 is a Sunday -> Monday 6th (without holidays).
        let cal = amsterdam("");
        assert_eq!(gdpr_due("2026-03-04", &cal), d("2026-04-06")); // Apr 4 is Saturday
        assert_eq!(gdpr_due("2026-06-10", &cal), d("2026-07-10")); // Friday, stays
    }

    #[test]
    fn gdpr_january_31_ends_on_the_last_day_of_february() {
        let cal = amsterdam("");
        // 2027-02-28 is a Sunday -> Monday March 1st.
        assert_eq!(gdpr_due("2027-01-31", &cal), d("2027-03-01"));
        // 2029-02-28 is a Wednesday: the clamp alone.
        assert_eq!(gdpr_due("2029-01-31", &cal), d("2029-02-28"));
    }

    #[test]
    fn gdpr_january_31_in_a_leap_year_ends_on_february_29() {
        let cal = amsterdam("");
        // 2028 is a leap year; Feb 29 2028 is a Tuesday.
        assert_eq!(gdpr_due("2028-01-31", &cal), d("2028-02-29"));
        assert_eq!(gdpr_due("2028-01-29", &cal), d("2028-02-29"));
        // Feb 29 -> Mar 29 (Thursday).
        assert_eq!(gdpr_due("2028-02-29", &cal), d("2028-03-29"));
    }

    #[test]
    fn gdpr_other_month_ends_clamp_too() {
        let cal = amsterdam("");
        // Mar 31 -> Apr 30 2026 (Thursday); Aug 31 -> Sep 30 2026 (Wednesday).
        assert_eq!(gdpr_due("2026-03-31", &cal), d("2026-04-30"));
        assert_eq!(gdpr_due("2026-08-31", &cal), d("2026-09-30"));
        // Dec 31 -> Jan 31 2027 is a Sunday -> Feb 1.
        assert_eq!(gdpr_due("2026-12-31", &cal), d("2027-02-01"));
    }

    #[test]
    fn gdpr_end_on_a_holiday_rolls_past_it_and_the_weekend() {
        // 2026-12-25 (Friday) and 12-28 (Monday) holidays: Nov 25 -> Dec 25 -> Dec 29.
        let cal = amsterdam("2026-12-25, 2026-12-28");
        assert_eq!(gdpr_due("2026-11-25", &cal), d("2026-12-29"));
    }

    #[test]
    fn receipt_day_is_taken_in_the_business_time_zone() {
        let cal = amsterdam("");
        // 23:30 UTC on Jan 30 is already Jan 31 in Amsterdam.
        let late = Utc.with_ymd_and_hms(2029, 1, 30, 23, 30, 0).unwrap();
        let dl = cal.deadlines(Regime::Gdpr, late);
        assert_eq!(dl.received_on, d("2029-01-31"));
        assert_eq!(dl.due_on, d("2029-02-28"));
        // In Los Angeles the same instant is still Jan 30.
        let la = BusinessCalendar::parse("America/Los_Angeles", "").unwrap();
        assert_eq!(la.deadlines(Regime::Gdpr, late).received_on, d("2029-01-30"));
    }

    #[test]
    fn ccpa_answers_in_45_calendar_days_and_confirms_in_10_business_days() {
        let cal = amsterdam("");
        // Received Friday 2026-11-27.
        let dl = cal.deadlines(Regime::Ccpa, noon("2026-11-27"));
        assert_eq!(dl.due_on, d("2027-01-11"));
        // 10 business days after Fri Nov 27: Dec 11 (Fri).
        assert_eq!(dl.acknowledge_by, Some(d("2026-12-11")));
    }

    #[test]
    fn ccpa_business_days_skip_configured_holidays() {
        let cal = amsterdam("2026-12-25, 2026-12-28");
        // From Fri Dec 18: 21,22,23,24,(25 hol),(26,27 weekend),(28 hol),29,30,31, Jan 1, 4, 5 -> Jan 5.
        let dl = cal.deadlines(Regime::Ccpa, noon("2026-12-18"));
        assert_eq!(dl.acknowledge_by, Some(d("2027-01-05")));
        // The 45 days are calendar days: holidays do not move them.
        assert_eq!(dl.due_on, d("2027-02-01"));
    }

    #[test]
    fn elsewhere_uses_45_days() {
        let cal = amsterdam("");
        let dl = cal.deadlines(Regime::Other, noon("2028-02-14"));
        assert_eq!(dl.due_on, d("2028-03-30")); // leap year: Feb has 29 days
    }

    #[test]
    fn gdpr_sets_no_separate_acknowledgement_date() {
        let cal = amsterdam("");
        assert_eq!(cal.deadlines(Regime::Gdpr, noon("2026-05-05")).acknowledge_by, None);
    }

    #[test]
    fn bad_configuration_is_named() {
        assert_eq!(
            BusinessCalendar::parse("Mars/Olympus", "").unwrap_err(),
            CalendarError::UnknownZone("Mars/Olympus".into())
        );
        assert_eq!(
            BusinessCalendar::parse("UTC", "2026-12-25,25-12-2026").unwrap_err(),
            CalendarError::BadHoliday("25-12-2026".into())
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const REGIMES: [Regime; 3] = [Regime::Gdpr, Regime::Ccpa, Regime::Other];

    fn first_day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
    }

    fn last_day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2040, 12, 31).unwrap()
    }

    fn day_in_range() -> impl Strategy<Value = NaiveDate> {
        let days = (last_day() - first_day()).num_days() as u64;
        (0..=days).prop_map(|n| first_day() + Days::new(n))
    }

    /// The Dutch public holidays that fall on fixed dates, every year of the range.
    fn fixed_holidays() -> String {
        (2020..=2041)
            .flat_map(|y| {
                [(1, 1), (4, 27), (5, 5), (12, 25), (12, 26)].map(|(m, d)| format!("{y:04}-{m:02}-{d:02}"))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn business_days_between(calendar: &BusinessCalendar, after: NaiveDate, until: NaiveDate) -> usize {
        after.iter_days().skip(1).take_while(|d| *d <= until).filter(|d| calendar.is_business_day(*d)).count()
    }

    /// Every rule the deadlines keep, for one receipt.
    fn check_deadlines(
        calendar: &BusinessCalendar,
        regime: Regime,
        received_at: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let dl = calendar.deadlines(regime, received_at);
        let received = dl.received_on;
        prop_assert!(dl.due_on > received, "{regime:?} {received}: due {} not after receipt", dl.due_on);
        let limit = calendar.extension_limit(regime, received, dl.due_on);
        prop_assert!(
            limit > dl.due_on,
            "{regime:?} {received}: extension limit {limit} not after due {}",
            dl.due_on
        );
        match regime {
            Regime::Gdpr => {
                let month_later = add_one_month(received);
                // Same day number next month, or that month's last day where it is shorter.
                prop_assert_eq!(month_later.month(), received.month() % 12 + 1);
                prop_assert!(
                    month_later.day() == received.day() || month_later.succ_opt().unwrap().day() == 1
                );
                prop_assert!(
                    calendar.is_business_day(dl.due_on),
                    "{received}: due {} is no business day",
                    dl.due_on
                );
                prop_assert!(dl.due_on >= month_later);
                prop_assert_eq!(
                    business_days_between(calendar, month_later.pred_opt().unwrap(), dl.due_on),
                    1
                );
                prop_assert_eq!(dl.acknowledge_by, None);
                prop_assert!(calendar.is_business_day(limit));
                // Three months from receipt, only the last day rolled: never before that day,
                // and never past the first working day on or after it.
                let three_months = received.checked_add_months(Months::new(3)).unwrap();
                prop_assert!(limit >= three_months);
                prop_assert!(business_days_between(calendar, three_months.pred_opt().unwrap(), limit) == 1);
            }
            Regime::Ccpa | Regime::Other => {
                prop_assert_eq!(dl.due_on, received + Days::new(45));
                let ack = dl.acknowledge_by.expect("a confirmation date");
                prop_assert!(ack > received && calendar.is_business_day(ack));
                prop_assert_eq!(business_days_between(calendar, received, ack), 10);
                prop_assert_eq!(limit, dl.due_on + Days::new(45));
            }
        }
        Ok(())
    }

    /// Every day of 2020..=2040, every regime, with the fixed holidays: exhaustive, not sampled.
    #[test]
    fn every_day_from_2020_to_2040_gets_deadlines_that_keep_the_rules() {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", &fixed_holidays()).unwrap();
        for day in first_day().iter_days().take_while(|d| *d <= last_day()) {
            // 11:00 UTC is midday in Amsterdam, summer or winter.
            let at = day.and_hms_opt(11, 0, 0).unwrap().and_utc();
            for regime in REGIMES {
                assert_eq!(calendar.deadlines(regime, at).received_on, day);
                check_deadlines(&calendar, regime, at).unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn deadlines_keep_the_rules_for_any_holidays_zone_and_instant(
            day in day_in_range(),
            second_of_day in 0..86_400u32,
            zone in prop::sample::select(vec!["Europe/Amsterdam", "America/Los_Angeles", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]),
            holidays in prop::collection::btree_set(day_in_range(), 0..60),
            regime in prop::sample::select(REGIMES.to_vec()),
        ) {
            let text = holidays.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            let calendar = BusinessCalendar::parse(zone, &text).unwrap();
            let at = day.and_hms_opt(0, 0, 0).unwrap().and_utc() + chrono::Duration::seconds(second_of_day.into());
            let received = calendar.deadlines(regime, at).received_on;
            // The receipt day is the business zone's date of the instant: at most a day off UTC's.
            prop_assert!((received - at.date_naive()).num_days().abs() <= 1);
            check_deadlines(&calendar, regime, at)?;
        }

        #[test]
        fn parse_never_panics_on_any_configuration(zone in any::<String>(), holidays in any::<String>()) {
            let _ = BusinessCalendar::parse(&zone, &holidays);
        }

        #[test]
        fn parse_never_panics_on_date_like_holidays(holidays in "[0-9, -]{0,40}") {
            if let Ok(calendar) = BusinessCalendar::parse("UTC", &holidays) {
                for day in holidays.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
                    prop_assert!(!calendar.is_business_day(day));
                }
            } else {
                prop_assert!(matches!(BusinessCalendar::parse("UTC", &holidays), Err(CalendarError::BadHoliday(_))));
            }
        }

        #[test]
        fn configured_holidays_round_trip_and_are_no_business_days(holidays in prop::collection::btree_set(day_in_range(), 0..30)) {
            let text = holidays.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect::<Vec<_>>().join(",");
            let calendar = BusinessCalendar::parse("Europe/Amsterdam", &text).unwrap();
            prop_assert_eq!(&calendar.holidays, &holidays);
            for day in &holidays {
                prop_assert!(!calendar.is_business_day(*day));
            }
        }

        #[test]
        fn the_next_business_day_is_the_first_on_or_after_and_adding_counts_business_days(
            day in day_in_range(),
            n in 0..30u32,
            holidays in prop::collection::btree_set(day_in_range(), 0..60),
        ) {
            let text = holidays.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
            let calendar = BusinessCalendar::parse("UTC", &text).unwrap();
            let next = calendar.on_or_next_business_day(day);
            prop_assert!(next >= day && calendar.is_business_day(next));
            prop_assert_eq!(business_days_between(&calendar, day.pred_opt().unwrap(), next), 1);
            prop_assert_eq!(calendar.on_or_next_business_day(next), next);
            let later = calendar.add_business_days(day, n);
            prop_assert_eq!(business_days_between(&calendar, day, later), n as usize);
            if n > 0 {
                prop_assert!(calendar.is_business_day(later));
            } else {
                prop_assert_eq!(later, day);
            }
        }

        #[test]
        fn an_unknown_zone_is_named(zone in "[A-Z][a-z]{3,8}/[A-Z][a-z]{3,8}9") {
            prop_assert_eq!(BusinessCalendar::parse(&zone, "").unwrap_err(), CalendarError::UnknownZone(zone.clone()));
        }
    }
}
