//! What "where is my request" answers: the status in words the page can show, the dates, any
//! extension and why, what the person has to do, and the download once the export is ready.
//! Nothing personal: no address, name, free text or recipient; an agent never sees the download.

use chrono::NaiveDate;
use serde::Serialize;

use privacy_shared::domain::{Audience, CostEstimate, RequestId, RequestKind, RequestRecord, Status};

/// What is expected from the person now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// Confirm the request with the link in the verification email.
    Confirm,
    /// Confirm the third party a portable copy may go to (the second email).
    ConfirmRecipient,
    /// Say whether to go ahead at the estimated cost of a request judged excessive.
    DecideOnCost,
    /// Download the export before it expires.
    Download,
    Nothing,
}

impl Expected {
    pub const ALL: [Expected; 5] = [
        Expected::Confirm,
        Expected::ConfirmRecipient,
        Expected::DecideOnCost,
        Expected::Download,
        Expected::Nothing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Expected::Confirm => "confirm",
            Expected::ConfirmRecipient => "confirm_recipient",
            Expected::DecideOnCost => "decide_on_cost",
            Expected::Download => "download",
            Expected::Nothing => "nothing",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Extension {
    pub until: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Download {
    pub parts: u32,
    pub available_until: NaiveDate,
}

/// The answer of `POST /requests/{id}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusView {
    pub request_id: RequestId,
    /// Whose link opened it: `requester` or `agent`.
    pub audience: &'static str,
    pub kind: RequestKind,
    pub status: Status,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended: Option<Extension>,
    pub expected: Expected,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_estimate: Option<CostEstimate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<Download>,
}

impl StatusView {
    /// `downloadable_until`: the last day the export can be downloaded, when it can be now.
    pub fn of(
        record: &RequestRecord,
        audience: Audience,
        downloadable_until: Option<NaiveDate>,
    ) -> StatusView {
        // The agent is told how it goes, never handed the person's data.
        let download = downloadable_until
            .filter(|_| audience == Audience::Requester)
            .map(|until| Download { parts: record.export_parts.unwrap_or(1), available_until: until });
        // Not once its date has passed: the export then goes ahead to the person alone.
        let awaiting_recipient = record.awaits_recipient();
        let expected = match record.status {
            Status::PendingVerification => Expected::Confirm,
            Status::Verified if awaiting_recipient => Expected::ConfirmRecipient,
            Status::Rejected if record.cost_estimate.is_some() => Expected::DecideOnCost,
            Status::Completed if download.is_some() => Expected::Download,
            _ => Expected::Nothing,
        };
        StatusView {
            request_id: record.id,
            audience: audience.as_str(),
            kind: record.kind,
            status: record.status,
            received_on: record.received_on,
            due_on: record.due_on,
            extended: record
                .original_due_on
                .map(|_| Extension { until: record.due_on, reason: record.extension_reason.clone() }),
            expected,
            cost_estimate: record.cost_estimate.clone(),
            download,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy_shared::domain::{Deadlines, EmailAddress, Language, Region};

    fn record(status: Status) -> RequestRecord {
        let at = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let day = at.date_naive();
        let due = day + chrono::Days::new(30);
        let received = RequestRecord::received(
            RequestId::generate(),
            RequestKind::Access,
            Region::parse("NL").unwrap(),
            Language::Nl,
            EmailAddress::parse("jan@example.nl").unwrap(),
            at,
            Deadlines { received_on: day, due_on: due, acknowledge_by: None },
        );
        RequestRecord { status, name: Some("Jan Jansen".into()), details: Some("secret".into()), ..received }
    }

    #[test]
    fn a_pending_request_expects_the_person_to_confirm() {
        let view = StatusView::of(&record(Status::PendingVerification), Audience::Requester, None);
        assert_eq!(view.expected, Expected::Confirm);
        assert_eq!(view.extended, None);
    }

    #[test]
    fn an_extension_shows_the_new_date_and_its_reason() {
        let mut extended = record(Status::InProgress);
        extended.original_due_on = Some(extended.due_on);
        extended.due_on = extended.due_on + chrono::Days::new(60);
        extended.extension_reason = Some("Three systems hold your data.".into());
        let view = StatusView::of(&extended, Audience::Requester, None);
        let expected = Extension { until: extended.due_on, reason: extended.extension_reason.clone() };
        assert_eq!(view.extended, Some(expected));
        assert_eq!(view.expected, Expected::Nothing);
    }

    #[test]
    fn the_download_is_offered_to_the_requester_only() {
        let mut done = record(Status::Completed);
        done.export_parts = Some(3);
        let until = done.due_on;
        let view = StatusView::of(&done, Audience::Requester, Some(until));
        assert_eq!(view.download, Some(Download { parts: 3, available_until: until }));
        assert_eq!(view.expected, Expected::Download);
        let agent = StatusView::of(&done, Audience::Agent, Some(until));
        assert_eq!((agent.download, agent.expected), (None, Expected::Nothing));
        assert_eq!(agent.audience, "agent");
    }

    #[test]
    fn expected_serialises_as_its_name() {
        for what in Expected::ALL {
            assert_eq!(serde_json::to_value(what).unwrap(), what.as_str());
        }
    }

    #[test]
    fn the_answer_holds_no_personal_data() {
        let mut done = record(Status::Completed);
        done.recipient = Some(EmailAddress::parse("other@example.org").unwrap());
        let json = serde_json::to_string(&StatusView::of(&done, Audience::Requester, None)).unwrap();
        for secret in ["jan", "Jansen", "secret", "other@"] {
            assert!(!json.contains(secret), "{json}");
        }
    }

    #[test]
    fn an_excessive_request_asks_for_a_decision_on_the_cost() {
        let mut rejected = record(Status::Rejected);
        rejected.cost_estimate = Some(CostEstimate::parse("25.00", "EUR").unwrap());
        let view = StatusView::of(&rejected, Audience::Requester, None);
        assert_eq!(view.expected, Expected::DecideOnCost);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["cost_estimate"], serde_json::json!({"amount": "25.00", "currency": "EUR"}));
        assert_eq!(
            StatusView::of(&record(Status::Rejected), Audience::Requester, None).expected,
            Expected::Nothing
        );
    }
}
