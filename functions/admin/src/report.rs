//! The yearly report (CCPA regulations §7102): `GET /staff/reports/{year}` answers the figures of
//! the requests received that year, per kind and regime, as JSON; `GET
//! /staff/reports/{year}/records` answers the de-identified records themselves as CSV, for an
//! auditor (§7101). Both read one partition of the table, the year's records; neither holds an
//! address, a name or free text.

use lambda_http::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};

use privacy_shared::api::{ApiError, json_response};
use privacy_shared::domain::{YearReport, records_csv};

use crate::{Admin, AdminError, StaffStore};

/// The years a report may be asked for: from the first the system could hold, to far enough
/// ahead that no clock skew refuses a real one.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2999;

/// Which report a path names; its year is checked when served (a bad one is a 400, not a 404).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Report {
    year: String,
    records: bool,
}

impl Report {
    /// `…/staff/reports/{year}` or `…/staff/reports/{year}/records`.
    pub(crate) fn route(segments: &[&str]) -> Option<Report> {
        let at = segments
            .iter()
            .rposition(|s| *s == "reports")
            .filter(|i| *i > 0 && segments[i - 1] == "staff")?;
        match &segments[at + 1..] {
            [year] => Some(Report { year: (*year).to_owned(), records: false }),
            [year, "records"] => Some(Report { year: (*year).to_owned(), records: true }),
            _ => None,
        }
    }
}

fn parse_year(raw: &str) -> Result<i32, ApiError> {
    let year = (raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse::<i32>().ok())
        .flatten()
        .filter(|y| YEARS.contains(y));
    year.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_year",
            format!(
                "The year must be written in four digits, from {} to {}, like 2026.",
                YEARS.start(),
                YEARS.end()
            ),
        )
    })
}

pub(crate) async fn serve<S: StaffStore>(
    admin: &Admin<S>,
    report: &Report,
) -> Result<Response<Body>, AdminError> {
    let year = parse_year(&report.year)?;
    let records = admin.store.records_of_year(year).await?;
    if !report.records {
        return Ok(json_response(StatusCode::OK, &YearReport::of(year, &records)));
    }
    let mut response = Response::new(Body::Text(records_csv(&records)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let disposition = format!("attachment; filename=\"requests-{year}.csv\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    tracing::info!(year, records = records.len(), "records of requests read");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<&str> {
        path.split('/').filter(|s| !s.is_empty()).collect()
    }

    #[test]
    fn a_report_path_names_its_year_and_whether_the_records_are_wanted() {
        assert_eq!(
            Report::route(&segments("/staff/reports/2026")),
            Some(Report { year: "2026".into(), records: false })
        );
        assert_eq!(
            Report::route(&segments("/prod/staff/reports/2026/records")),
            Some(Report { year: "2026".into(), records: true })
        );
        assert_eq!(
            Report::route(&segments("/staff/reports/x")),
            Some(Report { year: "x".into(), records: false })
        );
        for other in
            ["/staff/reports", "/staff/reports/2026/csv", "/reports/2026", "/staff/reports/2026/records/x"]
        {
            assert_eq!(Report::route(&segments(other)), None, "{other}");
        }
    }

    #[test]
    fn only_a_four_digit_year_in_range_is_a_year() {
        assert_eq!(parse_year("2026").unwrap(), 2026);
        assert_eq!(parse_year("2000").unwrap(), 2000);
        for bad in ["26", "02026", "1999", "3000", "20x6", "+202", "-2026", "", "２０２６", "2026 "] {
            let err = parse_year(bad).unwrap_err();
            assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "invalid_year"), "{bad:?}");
        }
    }
}
