//! The staff API's JSON shapes (see `api/staff-openapi.yaml`). The list carries no personal data;
//! the single request does, for the staff member acting on it.

use serde_json::{Value, json};

use chrono::NaiveDate;

use privacy_shared::datamap::{Location, Source};
use privacy_shared::domain::{AuditEvent, Dispute, Intake, Language, RequestRecord, SourceTask, TaskState};
use privacy_shared::store::OpenRequest;

pub fn summary(r: &OpenRequest) -> Value {
    json!({
        "request_id": r.id,
        "status": r.status,
        "kind": r.kind,
        "regime": r.regime,
        "language": r.language,
        "received_at": r.received_at,
        "due_on": r.due_on,
        "original_due_on": r.original_due_on,
        "acknowledge_by": r.acknowledge_by,
    })
}

/// The language the requester reads, in English for staff.
pub fn language_name(language: Language) -> &'static str {
    match language {
        Language::En => "English",
        Language::Nl => "Dutch",
    }
}

/// The request as of `today` (the business-local date: whether a restriction still holds).
pub fn full(r: &RequestRecord, today: NaiveDate) -> Value {
    let language = language_name(r.language);
    json!({
        "request_id": r.id,
        "status": r.status,
        "version": r.version,
        "kind": r.kind,
        "region": r.region.as_str(),
        "regime": r.regime,
        "language": r.language,
        // Staff free text (reasons, notes) reaches the requester as written: staff must know
        // the language to write it in.
        "language_name": language,
        "free_text_note": format!(
            "Reasons and notes you write are sent to the requester verbatim: write them in {language}."
        ),
        // How it reached us, and for one a staff member entered, who did.
        "channel": r.intake.channel(),
        "entered_by": match &r.intake {
            Intake::Web => None,
            Intake::Staff { entered_by, .. } => Some(entered_by),
        },
        "email": r.email.as_str(),
        "name": r.name,
        "details": r.details,
        "received_at": r.received_at,
        "received_on": r.received_on,
        "due_on": r.due_on,
        "original_due_on": r.original_due_on,
        "extension_reason": r.extension_reason,
        "acknowledge_by": r.acknowledge_by,
        "acknowledged_at": r.acknowledged_at,
        "verified_at": r.verified_at,
        "closed_reason": r.closed_reason,
        "denial_basis": r.denial_basis,
        "cost_estimate": r.cost_estimate,
        "triage": r.triage,
        "referral_contact": r.referral_contact,
        "referral_customer": r.referral_customer,
        "recipient": r.recipient.as_ref().map(|e| e.as_str()),
        "recipient_confirmed_at": r.recipient_confirmed_at,
        "corrections": r.corrections,
        // Who asked for the person, and why they may: what staff check before acting.
        "agent": r.agent.as_ref().map(|a| json!({
            "name": a.name,
            "email": a.email.as_str(),
            "relationship": a.relationship,
        })),
        "receipt": r.receipt,
        "receipt_confirmed_at": r.receipt_confirmed_at,
        "fee_accepted_on": r.fee_accepted_on,
        "dispute": r.dispute.as_ref().map(|d| dispute(d, today)),
        "updated_at": r.updated_at,
    })
}

/// A refused correction the person disputes: what was noted, and whether the disputed data is
/// restricted today (until the day an announced lift takes effect).
fn dispute(d: &Dispute, today: NaiveDate) -> Value {
    let state = d.restriction_on(today);
    let lifting = d.lifting();
    json!({
        "recorded_at": d.recorded_at,
        "statement": d.statement.as_ref().map(|s| s.as_str()),
        "restriction": state.as_str(),
        "restricted": state.restricts(),
        "lift_on": lifting.map(|(on, _)| on),
        "lift_reason": lifting.map(|(_, reason)| reason.as_str()),
    })
}

/// An audit entry without the request id it sits under.
pub fn audit(e: &AuditEvent) -> Value {
    json!({
        "version": e.version,
        "event": e.event,
        "from": e.from,
        "to": e.to,
        "at": e.at,
        "actor": e.actor,
        "reason": e.reason,
    })
}

/// A task of a source outside AWS, as staff follow it: where it stands, whether it is late, what
/// went wrong last (a code), and for a manual source what staff are to do. The files' staging
/// keys stay inside.
pub fn task(t: &SourceTask, source: Option<&Source>, today: NaiveDate) -> Value {
    let instructions = source.and_then(|s| match &s.location {
        Location::Manual { instructions } => Some(instructions.as_str()),
        _ => None,
    });
    let problem = match &t.state {
        TaskState::Waiting { problem } => problem.map(|p| p.as_str()),
        _ => None,
    };
    let collected = match &t.state {
        TaskState::Collected { records, pages, files } => json!({
            "records": records,
            "pages": pages,
            "files": files.iter().map(|f| json!({
                "name": f.name,
                "size": f.size,
                "content_type": f.content_type,
            })).collect::<Vec<_>>(),
        }),
        _ => Value::Null,
    };
    let receipt = match &t.state {
        TaskState::Erased { receipt } => json!(receipt),
        _ => Value::Null,
    };
    json!({
        "source": t.source,
        "description": source.map(|s| s.description.as_str()),
        "operation": t.operation,
        "state": t.state.name(),
        "manual": instructions.is_some(),
        "instructions": instructions,
        "answer_by": t.answer_by,
        "opened_at": t.opened_at,
        "late": t.late || t.is_late(today),
        "attempts": t.attempts,
        "problem": problem,
        "collected": collected,
        "receipt": receipt,
    })
}
