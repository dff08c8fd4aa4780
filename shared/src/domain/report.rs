//! The yearly figures of CCPA regulations §7102 from the records of one year's requests: per kind
//! and regime, how many were received, complied with in whole or in part, denied (by basis), not
//! verified, referred and still open, and the mean and median days to respond; and the records
//! themselves as CSV, for an auditor. Pure: the store reads the records, this counts them.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{ComplianceRecord, Outcome, Regime, RequestKind};

/// The figures of one group of requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub received: u32,
    pub complied: u32,
    pub complied_in_part: u32,
    pub denied: Denials,
    pub not_verified: u32,
    pub referred: u32,
    pub open: u32,
    pub days_to_respond: DaysToRespond,
}

/// Refusals: a denial counts under its coded basis, a rejection as `excessive` or
/// `right_to_know_limit` (§7102 counts every request not complied with as denied).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Denials {
    pub total: u32,
    pub by_basis: BTreeMap<&'static str, u32>,
}

/// How long answers took, in calendar days from receipt, over the requests that were answered:
/// every closed one but those closed unverified, which were never answered.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DaysToRespond {
    pub responded: u32,
    /// Rounded to one decimal; none when nothing was answered.
    pub mean: Option<f64>,
    pub median: Option<f64>,
}

/// One kind of request under one regime.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportRow {
    pub kind: RequestKind,
    pub regime: Regime,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The figures of the requests received in one calendar year: a row per kind and regime that
/// had any (kinds in the policy's order, then GDPR, CCPA, other), and the total.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct YearReport {
    pub year: i32,
    pub rows: Vec<ReportRow>,
    pub total: Figures,
}

const REGIMES: [Regime; 3] = [Regime::Gdpr, Regime::Ccpa, Regime::Other];

impl YearReport {
    /// The report of `year` from its records; a record received in another year is left out.
    pub fn of(year: i32, records: &[ComplianceRecord]) -> YearReport {
        let records: Vec<&ComplianceRecord> = records.iter().filter(|r| r.year() == year).collect();
        let mut rows = Vec::new();
        for kind in RequestKind::ALL {
            for regime in REGIMES {
                let group: Vec<&ComplianceRecord> =
                    records.iter().copied().filter(|r| r.kind == kind && r.regime == regime).collect();
                if !group.is_empty() {
                    rows.push(ReportRow { kind, regime, figures: Figures::of(&group) });
                }
            }
        }
        YearReport { year, rows, total: Figures::of(&records) }
    }
}

impl Figures {
    fn of(records: &[&ComplianceRecord]) -> Figures {
        let mut figures = Figures { received: records.len() as u32, ..Figures::default() };
        let mut days = Vec::new();
        for record in records {
            match record.outcome {
                Outcome::Open => figures.open += 1,
                Outcome::Complied => figures.complied += 1,
                Outcome::CompliedInPart { .. } => figures.complied_in_part += 1,
                Outcome::NotVerified => figures.not_verified += 1,
                Outcome::Referred => figures.referred += 1,
                Outcome::Denied { .. } | Outcome::RejectedExcessive | Outcome::RejectedLimit => {}
            }
            if let Some(basis) = record.outcome.refusal_basis() {
                figures.denied.total += 1;
                *figures.denied.by_basis.entry(basis).or_default() += 1;
            }
            let answered = !matches!(record.outcome, Outcome::Open | Outcome::NotVerified);
            if let Some(n) = record.days_to_respond.filter(|_| answered) {
                days.push(n);
            }
        }
        figures.days_to_respond = DaysToRespond::of(days);
        figures
    }
}

impl DaysToRespond {
    fn of(mut days: Vec<u32>) -> DaysToRespond {
        days.sort_unstable();
        let n = days.len();
        if n == 0 {
            return DaysToRespond::default();
        }
        let sum: u64 = days.iter().map(|&d| u64::from(d)).sum();
        let mean = (sum as f64 / n as f64 * 10.0).round() / 10.0;
        let median = match n % 2 {
            1 => f64::from(days[n / 2]),
            _ => (f64::from(days[n / 2 - 1]) + f64::from(days[n / 2])) / 2.0,
        };
        DaysToRespond { responded: n as u32, mean: Some(mean), median: Some(median) }
    }
}

/// The columns of the records' CSV, in order.
pub const CSV_HEADER: &str = "request_id,received_on,kind,regime,region,channel,by_agent,verified_on,due_on,\
original_due_on,status,outcome,denial_basis,in_part_because,responded_on,days_to_respond,keep_until";

/// The records as CSV (RFC 4180, CRLF line ends), the header first, one line per record in the
/// order given. Every value is a code, a date or a number; an empty field is a value not known.
pub fn records_csv(records: &[ComplianceRecord]) -> String {
    let mut csv = String::with_capacity(160 * (records.len() + 1));
    csv.push_str(CSV_HEADER);
    csv.push_str("\r\n");
    let day = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    for r in records {
        let (basis, part) = match r.outcome {
            Outcome::Denied { denial_basis } => (denial_basis.as_str(), ""),
            Outcome::CompliedInPart { in_part_because } => ("", in_part_because.as_str()),
            _ => ("", ""),
        };
        let fields = [
            r.request_id.to_string(),
            r.received_on.to_string(),
            r.kind.as_str().to_owned(),
            r.regime.as_str().to_owned(),
            r.region.as_str().to_owned(),
            r.channel.as_str().to_owned(),
            r.by_agent.to_string(),
            day(r.verified_on),
            r.due_on.to_string(),
            day(r.original_due_on),
            r.status.as_str().to_owned(),
            r.outcome.name().to_owned(),
            basis.to_owned(),
            part.to_owned(),
            day(r.responded_on),
            r.days_to_respond.map(|n| n.to_string()).unwrap_or_default(),
            r.keep_until.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    csv
}

/// Quoted where a value could break the line (none of ours can; a spreadsheet formula prefix is
/// neutralised all the same, should a code ever start with one).
fn csv_field(value: &str) -> String {
    let value = match value.chars().next() {
        Some('=' | '+' | '-' | '@') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if value.contains([',', '"', '\r', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, DenialBasis, OfflineChannel, PartReason, Region, RequestId, Status};
    use chrono::{DateTime, Days, NaiveDate, Utc};

    /// A record of a request received on `received` and answered `days` later (none: open).
    fn kept(
        kind: RequestKind,
        region: &str,
        received: &str,
        outcome: Outcome,
        days: Option<u32>,
    ) -> ComplianceRecord {
        let received_on = NaiveDate::parse_from_str(received, "%Y-%m-%d").unwrap();
        let received_at: DateTime<Utc> = received_on.and_hms_opt(9, 0, 0).unwrap().and_utc();
        let region = Region::parse(region).unwrap();
        let status = match outcome {
            Outcome::Open => Status::Verified,
            Outcome::Complied | Outcome::CompliedInPart { .. } => Status::Completed,
            Outcome::Denied { .. } => Status::Denied,
            Outcome::NotVerified => Status::Expired,
            Outcome::Referred => Status::Referred,
            Outcome::RejectedExcessive | Outcome::RejectedLimit => Status::Rejected,
        };
        let responded_on = days.map(|d| received_on + Days::new(u64::from(d)));
        ComplianceRecord {
            request_id: RequestId::generate(),
            version: 4,
            kind,
            regime: region.regime(),
            region,
            channel: Channel::Web,
            by_agent: false,
            received_at,
            received_on,
            verified_on: Some(received_on),
            due_on: received_on + Days::new(30),
            original_due_on: None,
            status,
            outcome,
            responded_on,
            days_to_respond: days,
            keep_until: responded_on.unwrap_or(received_on) + Days::new(731),
        }
    }

    fn denied(basis: DenialBasis) -> Outcome {
        Outcome::Denied { denial_basis: basis }
    }

    /// Known data: 2026's requests (and two of other years that must not count).
    fn year_of_records() -> Vec<ComplianceRecord> {
        use RequestKind::{Access, Deletion, OptOutOfSale};
        let in_part = Outcome::CompliedInPart { in_part_because: PartReason::KeptForLegalReason };
        vec![
            kept(Access, "NL", "2026-01-05", Outcome::Complied, Some(10)),
            kept(Access, "DE", "2026-02-01", Outcome::Complied, Some(20)),
            kept(Access, "FR", "2026-03-01", Outcome::Complied, Some(31)),
            kept(Access, "NL", "2026-04-01", denied(DenialBasis::RightsOfOthers), Some(7)),
            kept(Access, "NL", "2026-05-01", Outcome::RejectedExcessive, Some(3)),
            kept(Access, "NL", "2026-06-01", Outcome::NotVerified, Some(14)),
            kept(Access, "NL", "2026-12-30", Outcome::Open, None),
            kept(Access, "US-CA", "2026-01-10", Outcome::Complied, Some(44)),
            kept(Access, "US-CA", "2026-02-10", Outcome::RejectedLimit, Some(1)),
            kept(Access, "US-CA", "2026-03-10", Outcome::Referred, Some(1)),
            kept(Deletion, "US-CA", "2026-01-15", in_part, Some(12)),
            kept(Deletion, "US-CA", "2026-02-15", Outcome::Complied, Some(6)),
            kept(Deletion, "US-CA", "2026-03-15", denied(DenialBasis::LegalObligation), Some(30)),
            kept(Deletion, "US-CA", "2026-04-15", denied(DenialBasis::LegalObligation), Some(40)),
            kept(OptOutOfSale, "US-CA", "2026-07-01", Outcome::Complied, Some(0)),
            kept(Access, "NL", "2025-12-31", Outcome::Complied, Some(2)),
            kept(Access, "NL", "2027-01-01", Outcome::Open, None),
        ]
    }

    fn row(report: &YearReport, kind: RequestKind, regime: Regime) -> &Figures {
        &report.rows.iter().find(|r| r.kind == kind && r.regime == regime).unwrap().figures
    }

    #[test]
    fn each_kind_and_regime_is_counted_by_outcome_on_known_data() {
        let report = YearReport::of(2026, &year_of_records());
        assert_eq!(report.year, 2026);
        let order: Vec<(RequestKind, Regime)> = report.rows.iter().map(|r| (r.kind, r.regime)).collect();
        assert_eq!(
            order,
            [
                (RequestKind::Access, Regime::Gdpr),
                (RequestKind::Access, Regime::Ccpa),
                (RequestKind::Deletion, Regime::Ccpa),
                (RequestKind::OptOutOfSale, Regime::Ccpa),
            ]
        );

        let access_gdpr = row(&report, RequestKind::Access, Regime::Gdpr);
        assert_eq!(access_gdpr.received, 7, "the requests of 2025 and 2027 are not 2026's");
        assert_eq!((access_gdpr.complied, access_gdpr.complied_in_part), (3, 0));
        assert_eq!(access_gdpr.denied.total, 2);
        assert_eq!(access_gdpr.denied.by_basis, BTreeMap::from([("excessive", 1), ("rights_of_others", 1)]));
        assert_eq!((access_gdpr.not_verified, access_gdpr.referred, access_gdpr.open), (1, 0, 1));
        // Answered: 10, 20, 31, 7, 3 (the unverified and the open one are not).
        assert_eq!(
            access_gdpr.days_to_respond,
            DaysToRespond { responded: 5, mean: Some(14.2), median: Some(10.0) }
        );

        let access_ccpa = row(&report, RequestKind::Access, Regime::Ccpa);
        assert_eq!((access_ccpa.received, access_ccpa.complied, access_ccpa.referred), (3, 1, 1));
        assert_eq!(access_ccpa.denied.by_basis, BTreeMap::from([("right_to_know_limit", 1)]));
        // 44, 1, 1: the median is the middle one.
        assert_eq!(
            access_ccpa.days_to_respond,
            DaysToRespond { responded: 3, mean: Some(15.3), median: Some(1.0) }
        );

        let deletion = row(&report, RequestKind::Deletion, Regime::Ccpa);
        assert_eq!((deletion.received, deletion.complied, deletion.complied_in_part), (4, 1, 1));
        assert_eq!(deletion.denied.by_basis, BTreeMap::from([("legal_obligation", 2)]));
        // 6, 12, 30, 40: an even count's median is the mean of the middle two.
        assert_eq!(
            deletion.days_to_respond,
            DaysToRespond { responded: 4, mean: Some(22.0), median: Some(21.0) }
        );

        let opt_out = row(&report, RequestKind::OptOutOfSale, Regime::Ccpa);
        assert_eq!(
            opt_out.days_to_respond,
            DaysToRespond { responded: 1, mean: Some(0.0), median: Some(0.0) }
        );
    }

    #[test]
    fn the_total_adds_every_row_up_and_every_request_is_counted_once() {
        let report = YearReport::of(2026, &year_of_records());
        let total = &report.total;
        assert_eq!(total.received, 15);
        let sum = |f: fn(&Figures) -> u32| report.rows.iter().map(|r| f(&r.figures)).sum::<u32>();
        assert_eq!(sum(|f| f.received), total.received);
        assert_eq!(sum(|f| f.complied), total.complied);
        assert_eq!(sum(|f| f.denied.total), total.denied.total);
        for figures in report.rows.iter().map(|r| &r.figures).chain([total]) {
            let outcomes = figures.complied
                + figures.complied_in_part
                + figures.denied.total
                + figures.not_verified
                + figures.referred
                + figures.open;
            assert_eq!(outcomes, figures.received, "{figures:?}");
            assert_eq!(figures.denied.by_basis.values().sum::<u32>(), figures.denied.total);
        }
        assert_eq!(total.days_to_respond.responded, 13);
        // 10 20 31 7 3 44 1 1 12 6 30 40 0: 205 / 13; the seventh of the sorted is 10.
        assert_eq!(total.days_to_respond.mean, Some(15.8));
        assert_eq!(total.days_to_respond.median, Some(10.0));
    }

    #[test]
    fn a_year_without_requests_has_no_rows_and_no_days() {
        let report = YearReport::of(2024, &year_of_records());
        assert!(report.rows.is_empty());
        assert_eq!(report.total, Figures::default());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["total"]["days_to_respond"]["mean"], serde_json::Value::Null);
    }

    #[test]
    fn the_figures_serialise_flat_per_row_with_denials_by_basis() {
        let json = serde_json::to_value(YearReport::of(2026, &year_of_records())).unwrap();
        let first = &json["rows"][0];
        assert_eq!(first["kind"], "access");
        assert_eq!(first["regime"], "gdpr");
        assert_eq!(first["received"], 7);
        assert_eq!(first["denied"]["by_basis"]["rights_of_others"], 1);
        assert_eq!(first["days_to_respond"]["median"], 10.0);
    }

    #[test]
    fn the_csv_has_the_header_and_a_line_per_record_with_codes_only() {
        let mut records = year_of_records();
        records[3].channel = Channel::Offline(OfflineChannel::InPerson);
        records[3].by_agent = true;
        let csv = records_csv(&records[..4]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines.len(), 6, "header, four records, and the last line end");
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[5], "");
        let columns = CSV_HEADER.split(',').count();
        assert_eq!(columns, 17);
        for line in &lines[1..5] {
            assert_eq!(line.split(',').count(), columns, "{line}");
        }
        let first = records[0].request_id;
        assert_eq!(
            lines[1],
            format!(
                "{first},2026-01-05,access,gdpr,NL,web,false,2026-01-05,2026-02-04,,completed,complied,,,2026-01-15,10,2028-01-16"
            )
        );
        let denial: Vec<&str> = lines[4].split(',').collect();
        assert_eq!(&denial[4..8], ["NL", "in_person", "true", "2026-04-01"]);
        assert_eq!(&denial[10..14], ["denied", "denied", "rights_of_others", ""]);
        assert_eq!(records_csv(&[]), format!("{CSV_HEADER}\r\n"));
    }

    #[test]
    fn a_csv_field_that_could_break_a_line_or_run_as_a_formula_is_neutralised() {
        assert_eq!(csv_field("US-CA"), "US-CA");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
