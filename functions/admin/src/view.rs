//! The staff API's JSON shapes (see `api/staff-openapi.yaml`). The list carries no personal data;
//! the single request does, for the staff member acting on it.

use serde_json::{Value, json};

use privacy_shared::domain::{AuditEvent, RequestRecord};
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

pub fn full(r: &RequestRecord) -> Value {
    json!({
        "request_id": r.id,
        "status": r.status,
        "version": r.version,
        "kind": r.kind,
        "region": r.region.as_str(),
        "regime": r.regime,
        "language": r.language,
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
        "cost_estimate": r.cost_estimate,
        "triage": r.triage,
        "referral_contact": r.referral_contact,
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
        "updated_at": r.updated_at,
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
