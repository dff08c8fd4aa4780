//! The staff API's JSON as tables for people. Tolerant of missing fields: a table with a `-` is
//! more useful than no output when the server adds or drops a field.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ColumnConstraint, ContentArrangement, Table, Width};
use serde_json::Value;

use crate::cli::Command;

/// Wide enough for a UUID and a timestamp side by side; long details and reasons wrap.
const WIDTH: u16 = 110;

/// Shown after a date that is not the original legal deadline.
pub const EXTENDED_MARK: &str = "(ext.)";

/// The human output for `command`'s successful response.
pub fn render(command: &Command, response: &Value) -> String {
    match command {
        Command::List(_) => render_list(response),
        Command::Show { .. } => render_show(response),
        _ => render_action(command, response),
    }
}

/// The server's JSON, pretty-printed, for `--json`.
pub fn render_json(response: &Value) -> String {
    let mut text = serde_json::to_string_pretty(response).unwrap_or_else(|_| response.to_string());
    text.push('\n');
    text
}

/// A page (or all pages) of `GET /staff/requests`.
pub fn render_list(response: &Value) -> String {
    let requests = response.get("requests").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut text = if requests.is_empty() {
        "No requests.\n".to_string()
    } else {
        let mut table = Table::new();
        table
            .load_style(UTF8_FULL_CONDENSED)
            .set_header(["ID", "STATUS", "KIND", "REGIME", "RECEIVED", "DUE", "ACK BY"]);
        for request in requests {
            table.add_row([
                field(request, "request_id"),
                field(request, "status"),
                field(request, "kind"),
                field(request, "regime"),
                field(request, "received_at"),
                due(request),
                field(request, "acknowledge_by"),
            ]);
        }
        format!("{table}\n")
    };
    if let Some(cursor) = response.get("next_cursor").and_then(Value::as_str) {
        text.push_str(&format!(
            "More requests follow: run with --all, or --cursor {cursor} for the next page.\n"
        ));
    }
    text
}

/// `GET /staff/requests/{id}`: the request, then its audit trail.
pub fn render_show(response: &Value) -> String {
    let request = response.get("request").unwrap_or(&Value::Null);
    let mut text = render_request(request);
    let audit = response.get("audit").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    text.push_str("\nAudit trail\n");
    if audit.is_empty() {
        text.push_str("(empty)\n");
        return text;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(["VERSION", "AT", "EVENT", "FROM→TO", "ACTOR", "REASON"])
        // Timestamps, states and ARNs are read and copied whole; only the reason wraps.
        .set_constraints([
            ColumnConstraint::ContentWidth,
            ColumnConstraint::ContentWidth,
            ColumnConstraint::ContentWidth,
            ColumnConstraint::ContentWidth,
            ColumnConstraint::ContentWidth,
            ColumnConstraint::LowerBoundary(Width::Fixed(20)),
        ]);
    for entry in audit {
        table.add_row([
            field(entry, "version"),
            field(entry, "at"),
            field(entry, "event"),
            transition(entry),
            actor(entry.get("actor")),
            field(entry, "reason"),
        ]);
    }
    text.push_str(&format!("{table}\n"));
    text
}

/// One request as a key/value table.
pub fn render_request(request: &Value) -> String {
    let cost = match request.get("cost_estimate") {
        Some(Value::Object(cost)) => format!(
            "{} {}",
            cost.get("amount").and_then(Value::as_str).unwrap_or("?"),
            cost.get("currency").and_then(Value::as_str).unwrap_or("")
        )
        .trim_end()
        .to_string(),
        _ => "-".into(),
    };
    let rows = [
        ("ID", field(request, "request_id")),
        ("Status", field(request, "status")),
        ("Version", field(request, "version")),
        ("Kind", field(request, "kind")),
        ("Region", field(request, "region")),
        ("Regime", field(request, "regime")),
        ("Language", field(request, "language")),
        ("Email", field(request, "email")),
        ("Name", field(request, "name")),
        ("Details", field(request, "details")),
        ("Agent", agent(request)),
        ("Received at", field(request, "received_at")),
        ("Due on", due(request)),
        ("Original due on", field(request, "original_due_on")),
        ("Extension reason", field(request, "extension_reason")),
        ("Acknowledge by", field(request, "acknowledge_by")),
        ("Acknowledged at", field(request, "acknowledged_at")),
        ("Verified at", field(request, "verified_at")),
        ("Closed reason", field(request, "closed_reason")),
        ("Cost estimate", cost),
        ("Updated at", field(request, "updated_at")),
    ];
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH);
    for (key, value) in rows {
        table.add_row([key.to_string(), value]);
    }
    format!("{table}\n")
}

/// An action's confirmation line and the request as it now stands.
pub fn render_action(command: &Command, response: &Value) -> String {
    let request = response.get("request").unwrap_or(&Value::Null);
    let id = field(request, "request_id");
    let line = match command {
        Command::Extend { .. } => format!("Extended request {id}: now due {}.", field(request, "due_on")),
        Command::Deny { .. } => format!("Denied request {id}."),
        Command::Excessive { amount, currency, .. } => {
            format!("Marked request {id} excessive, cost estimate {amount} {currency}.")
        }
        Command::Complete { .. } => format!("Completed request {id}."),
        Command::List(_) | Command::Show { .. } => format!("Request {id}."),
    };
    format!("{line}\n{}", render_request(request))
}

/// Who asked for the person: name, address and why they may (`-` when the person asked).
fn agent(request: &Value) -> String {
    match request.get("agent") {
        Some(agent @ Value::Object(_)) => {
            format!("{} <{}>, {}", field(agent, "name"), field(agent, "email"), field(agent, "relationship"))
        }
        _ => "-".into(),
    }
}

/// A field as text: `-` for null or missing, strings unquoted.
fn field(object: &Value, key: &str) -> String {
    match object.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The due date, marked when it was extended past the original deadline.
fn due(request: &Value) -> String {
    let due = field(request, "due_on");
    match request.get("original_due_on") {
        None | Some(Value::Null) => due,
        Some(_) => format!("{due} {EXTENDED_MARK}"),
    }
}

fn transition(entry: &Value) -> String {
    let state = |key| entry.get(key).and_then(Value::as_str);
    match (state("from"), state("to")) {
        (Some(from), Some(to)) => format!("{from} → {to}"),
        (None, Some(to)) => format!("→ {to}"),
        (Some(from), None) => format!("{from} →"),
        (None, None) => "-".into(),
    }
}

fn actor(actor: Option<&Value>) -> String {
    let Some(actor) = actor.filter(|a| !a.is_null()) else { return "-".into() };
    match (actor.get("type").and_then(Value::as_str), actor.get("id").and_then(Value::as_str)) {
        (Some(kind), Some(id)) => format!("{kind} {id}"),
        (Some(kind), None) => kind.to_string(),
        _ => actor.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_and_null_fields_show_as_a_dash() {
        assert_eq!(field(&json!({ "a": null }), "a"), "-");
        assert_eq!(field(&json!({}), "a"), "-");
        assert_eq!(field(&json!({ "a": 3 }), "a"), "3");
    }

    #[test]
    fn staff_actors_show_their_identity() {
        assert_eq!(
            actor(Some(&json!({ "type": "staff", "id": "arn:aws:iam::1:user/x" }))),
            "staff arn:aws:iam::1:user/x"
        );
        assert_eq!(actor(Some(&json!({ "type": "system" }))), "system");
        assert_eq!(actor(None), "-");
    }

    #[test]
    fn transitions_show_where_a_request_came_from_and_went() {
        assert_eq!(transition(&json!({ "from": "verified", "to": "in_progress" })), "verified → in_progress");
        assert_eq!(
            transition(&json!({ "from": null, "to": "pending_verification" })),
            "→ pending_verification"
        );
        assert_eq!(transition(&json!({ "from": null, "to": null })), "-");
    }

    #[test]
    fn a_request_made_by_an_agent_shows_who_and_why_they_may() {
        let agent = json!({ "agent": { "name": "Agatha", "email": "a@agents.example", "relationship": "authorised_agent" } });
        assert_eq!(super::agent(&agent), "Agatha <a@agents.example>, authorised_agent");
        assert_eq!(super::agent(&json!({ "agent": null })), "-");
        assert!(render_request(&agent).contains("Agatha <a@agents.example>"));
    }
}
