//! What staff send or set off by hand, beside a request's own course: each one audited,
//! conditional transition whose notice the dispatcher sends from the stream (once, whatever the
//! redeliveries).
//!
//! - `POST …/receipt-confirmation` `{}`: the CCPA's confirmation of receipt (regulations
//!   §7021(b)) that no delivered mail gave yet (the digest lists these); once per request.
//! - `POST …/fee-acceptance` `{"accepted_on"?: date}`: the person accepted, by reply, the fee of a
//!   request rejected as excessive; the request is verified again, due a fresh legal period
//!   (one month GDPR, 45 days otherwise) from the day they accepted (today if not given).
//! - `POST …/dispute` `{"statement"?: text}`: after a refused correction the person disputes the
//!   accuracy of their data (§7023(f)); noted, with their statement, and the data restricted
//!   while it is disputed (GDPR Art. 18(1)(a)), its recipients told to restrict it too.
//! - `POST …/restriction-lifting` `{"reason": text, "on": date}`: the person is told, now, that
//!   the restriction is lifted on `on` and why (Art. 18(3)). `on` must be after today, so the
//!   notice always comes first; from that day the restriction reads as lifted.

use chrono::NaiveDate;
use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde::Deserialize;

use privacy_shared::api::{ApiError, json_response, read_json};
use privacy_shared::domain::{
    Actor, LIMIT_REASON, RequestId, RequestKind, RequestRecord, Restriction, Status, Transition,
};
use privacy_shared::store::Change;

use crate::{Admin, AdminError, StaffStore, staff_text, view};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ByHand {
    ConfirmReceipt,
    AcceptFee,
    RecordDispute,
    AnnounceLift,
}

impl ByHand {
    /// The route's last segment.
    pub(crate) fn parse(segment: &str) -> Option<ByHand> {
        Some(match segment {
            "receipt-confirmation" => ByHand::ConfirmReceipt,
            "fee-acceptance" => ByHand::AcceptFee,
            "dispute" => ByHand::RecordDispute,
            "restriction-lifting" => ByHand::AnnounceLift,
            _ => return None,
        })
    }
}

#[derive(Deserialize)]
struct NoFields {}

#[derive(Deserialize)]
struct FeeBody {
    accepted_on: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct DisputeBody {
    statement: Option<String>,
}

#[derive(Deserialize)]
struct LiftBody {
    reason: String,
    on: NaiveDate,
}

/// What the body asks, before the request is read: bad input is refused the same for every id.
enum Asked {
    ConfirmReceipt,
    AcceptFee { accepted_on: Option<NaiveDate> },
    RecordDispute(Transition),
    AnnounceLift(Transition),
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

pub(crate) async fn serve<S: StaffStore>(
    admin: &Admin<S>,
    request: &Request,
    id: RequestId,
    action: ByHand,
    principal: String,
) -> Result<lambda_http::Response<lambda_http::Body>, AdminError> {
    let asked = match action {
        ByHand::ConfirmReceipt => {
            let NoFields {} = read_json(request, &[])?;
            Asked::ConfirmReceipt
        }
        ByHand::AcceptFee => {
            let body: FeeBody = read_json(request, &["accepted_on"])?;
            Asked::AcceptFee { accepted_on: body.accepted_on }
        }
        ByHand::RecordDispute => {
            let body: DisputeBody = read_json(request, &["statement"])?;
            let statement = match body.statement.filter(|s| !s.trim().is_empty()) {
                Some(statement) => Some(staff_text("statement", &statement, false)?),
                None => None,
            };
            Asked::RecordDispute(Transition::RecordDispute { statement })
        }
        ByHand::AnnounceLift => {
            let body: LiftBody = read_json(request, &["reason", "on"])?;
            let reason = staff_text("reason", &body.reason, true)?;
            Asked::AnnounceLift(Transition::AnnounceLift { on: body.on, reason })
        }
    };
    let record = admin.store.get(id).await?.ok_or_else(ApiError::not_found)?;
    let today = admin.calendar.local_date(admin.clock.now());
    let transition = match asked {
        Asked::ConfirmReceipt => {
            confirmable(&record)?;
            // The guard would withhold it: say so now, instead of recording a confirmation
            // that never leaves.
            if admin.store.mail_suppression(&record.email.subject_key()).await?.is_some() {
                return Err(conflict(
                    "address_suppressed",
                    "Mail to this address bounced for good or was reported as spam, so the confirmation \
                     would not be sent. Confirm receipt another way (by phone or post).",
                )
                .into());
            }
            Transition::ConfirmReceipt
        }
        Asked::AcceptFee { accepted_on } => {
            let accepted_on = accepted_on.unwrap_or(today);
            fee_acceptable(&record, accepted_on, today, admin.calendar.local_date(record.updated_at))?;
            let due_on = admin.calendar.deadlines_from(record.regime, accepted_on).due_on;
            Transition::AcceptFee { accepted_on, due_on }
        }
        Asked::RecordDispute(transition) => {
            disputable(&record)?;
            transition
        }
        Asked::AnnounceLift(transition) => {
            liftable(&record)?;
            if let Transition::AnnounceLift { on, .. } = &transition
                && *on <= today
            {
                return Err(unprocessable(
                    "lift_not_in_future",
                    format!(
                        "`on` must be after today ({today}): the person is told before the restriction \
                         is lifted (GDPR Art. 18(3))."
                    ),
                )
                .into());
            }
            transition
        }
    };
    let change = Change::new(transition, admin.clock.now(), Actor::Staff(principal.clone()));
    let updated = admin.store.transition(&record, change).await?;
    tracing::info!(request_id = %id, action = ?action, staff = %principal, version = updated.version, "staff action");
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "request": view::full(&updated, today) })))
}

fn confirmable(record: &RequestRecord) -> Result<(), ApiError> {
    if let Some(at) = record.receipt_confirmed_at {
        return Err(conflict(
            "already_confirmed",
            format!("A confirmation of receipt was sent at {at}; it is not sent twice."),
        ));
    }
    if !record.status.is_open() {
        return Err(conflict(
            "invalid_state",
            format!("Not possible: the request is {}; receipt is confirmed while it is open.", record.status),
        ));
    }
    Ok(())
}

fn fee_acceptable(
    record: &RequestRecord,
    accepted_on: NaiveDate,
    today: NaiveDate,
    rejected_on: NaiveDate,
) -> Result<(), ApiError> {
    let excessive = record.status == Status::Rejected
        && record.cost_estimate.is_some()
        && record.closed_reason.as_deref() != Some(LIMIT_REASON);
    if !excessive {
        return Err(conflict(
            "no_fee_to_accept",
            format!(
                "Not possible: the request is {}; only a request rejected as excessive, with a cost \
                 estimate, has a fee to accept.",
                record.status
            ),
        ));
    }
    if accepted_on > today {
        return Err(unprocessable("accepted_in_future", format!("`accepted_on` is after today ({today}).")));
    }
    if accepted_on < rejected_on {
        return Err(unprocessable(
            "accepted_before_rejection",
            format!("`accepted_on` is before the request was rejected as excessive ({rejected_on})."),
        ));
    }
    Ok(())
}

fn disputable(record: &RequestRecord) -> Result<(), ApiError> {
    if record.kind != RequestKind::Rectification || record.status != Status::Denied {
        return Err(conflict(
            "not_a_refused_correction",
            format!(
                "Not possible: this is a {} request that is {}; a dispute follows a refused correction \
                 (a rectification request that was denied).",
                record.kind, record.status
            ),
        ));
    }
    if let Some(dispute) = &record.dispute {
        return Err(conflict(
            "already_disputed",
            format!("The dispute was recorded at {}; it is recorded once.", dispute.recorded_at),
        ));
    }
    Ok(())
}

fn liftable(record: &RequestRecord) -> Result<(), ApiError> {
    match record.dispute.as_ref().map(|d| &d.restriction) {
        None => Err(conflict(
            "not_disputed",
            "Not possible: no dispute is recorded on this request, so nothing is restricted.",
        )),
        Some(Restriction::Lifting { on, .. }) => Err(conflict(
            "lift_already_announced",
            format!("The lift was announced already, for {on}; the person was told."),
        )),
        Some(Restriction::InForce) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_name_what_is_done_by_hand_and_nothing_else() {
        assert_eq!(ByHand::parse("receipt-confirmation"), Some(ByHand::ConfirmReceipt));
        assert_eq!(ByHand::parse("fee-acceptance"), Some(ByHand::AcceptFee));
        assert_eq!(ByHand::parse("dispute"), Some(ByHand::RecordDispute));
        assert_eq!(ByHand::parse("restriction-lifting"), Some(ByHand::AnnounceLift));
        for other in ["receipt_confirmation", "Dispute", "lift", "", "extend"] {
            assert_eq!(ByHand::parse(other), None, "{other}");
        }
    }
}
