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
        Command::Report(_) => render_report(response),
        Command::Show { .. } => render_show(response),
        Command::ReplayErasures(_) => crate::replay::render(response),
        Command::Attach(_) | Command::ConfirmErasure { .. } => render_answer(command, response),
        Command::Submit(args) => render_submitted(args.channel.as_str(), response),
        _ => render_action(command, response),
    }
}

/// `GET /staff/reports/{year}`: a row per kind and regime and the total, then what the denials
/// were based on.
pub fn render_report(response: &Value) -> String {
    let year = field(response, "year");
    let rows = response.get("rows").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        return format!("No requests were received in {year}.\n");
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "KIND",
        "REGIME",
        "RECEIVED",
        "COMPLIED",
        "IN PART",
        "DENIED",
        "NOT VERIFIED",
        "REFERRED",
        "OPEN",
        "MEAN DAYS",
        "MEDIAN DAYS",
    ]);
    let total = response.get("total").unwrap_or(&Value::Null);
    let figures = |kind: String, regime: String, f: &Value| {
        let days = f.get("days_to_respond").unwrap_or(&Value::Null);
        let denied = f.get("denied").unwrap_or(&Value::Null);
        [
            kind,
            regime,
            field(f, "received"),
            field(f, "complied"),
            field(f, "complied_in_part"),
            field(denied, "total"),
            field(f, "not_verified"),
            field(f, "referred"),
            field(f, "open"),
            field(days, "mean"),
            field(days, "median"),
        ]
    };
    for row in rows {
        table.add_row(figures(field(row, "kind"), field(row, "regime"), row));
    }
    table.add_row(figures("total".into(), String::new(), total));
    let mut text = format!("Requests received in {year} (CCPA regulations §7102)\n{table}\n");
    let bases: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let by_basis = row.get("denied")?.get("by_basis")?.as_object()?;
            let counts: Vec<String> = by_basis.iter().map(|(basis, n)| format!("{basis} {n}")).collect();
            (!counts.is_empty()).then(|| {
                format!("  {} ({}): {}", field(row, "kind"), field(row, "regime"), counts.join(", "))
            })
        })
        .collect();
    if !bases.is_empty() {
        text.push_str("Denied, by basis:\n");
        text.push_str(&bases.join("\n"));
        text.push('\n');
    }
    text.push_str("Days to respond: calendar days from receipt, over the requests answered (not those closed unverified).\n");
    text
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

/// `GET /staff/requests/{id}`: the request, its audit trail, then its sources' tasks.
pub fn render_show(response: &Value) -> String {
    let request = response.get("request").unwrap_or(&Value::Null);
    let mut text = render_request(request);
    text.push_str(&render_audit(response));
    let tasks = response.get("tasks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if !tasks.is_empty() {
        text.push_str(&render_tasks(&field(request, "request_id"), tasks));
    }
    text
}

fn render_audit(response: &Value) -> String {
    let mut text = String::new();
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

/// What the request waits for from the sources outside AWS; for each one staff answer, what to
/// do and the command that answers it.
pub fn render_tasks(id: &str, tasks: &[Value]) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(["SOURCE", "OPERATION", "STATE", "ANSWER BY", "ATTEMPTS", "PROBLEM", "ANSWER"]);
    for task in tasks {
        let answer_by = match task.get("late") {
            Some(Value::Bool(true)) => format!("{} (late)", field(task, "answer_by")),
            _ => field(task, "answer_by"),
        };
        table.add_row([
            field(task, "source"),
            field(task, "operation"),
            field(task, "state"),
            answer_by,
            field(task, "attempts"),
            field(task, "problem"),
            answer(task),
        ]);
    }
    let mut text = format!("\nSources outside AWS\n{table}\n");
    for task in tasks.iter().filter(|t| field(t, "state") == "with_staff") {
        let source = field(task, "source");
        text.push_str(&format!(
            "\n{source} ({}) waits for you: {}\n",
            field(task, "operation"),
            field(task, "instructions")
        ));
        let command = match task.get("operation").and_then(Value::as_str) {
            Some("erasure") => format!(
                "staff confirm-erasure {id} --source {source} --deleted N [--anonymised N --kept-reason TEXT]"
            ),
            _ => format!("staff attach {id} --source {source} FILE... | --nothing-found"),
        };
        text.push_str(&format!("  answer with: {command}\n"));
    }
    text
}

/// A task's answer in a few words: the files attached, or what was erased.
fn answer(task: &Value) -> String {
    if let Some(collected) = task.get("collected").filter(|c| c.is_object()) {
        let files = collected.get("files").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        return match (files.len(), field(collected, "records").as_str()) {
            (0, "0") => "nothing found".into(),
            (0, records) => format!("{records} records"),
            _ => files.iter().map(|f| field(f, "name")).collect::<Vec<_>>().join(", "),
        };
    }
    if let Some(receipt) = task.get("receipt").filter(|r| r.is_object()) {
        return format!("{} deleted, {} anonymised", field(receipt, "deleted"), field(receipt, "anonymised"));
    }
    "-".into()
}

/// The confirmation of a source's answer (`attach`, `confirm-erasure`) and the task as it now
/// stands.
pub fn render_answer(command: &Command, response: &Value) -> String {
    let task = response.get("task").unwrap_or(&Value::Null);
    let (id, source) = match command {
        Command::Attach(args) => (args.id.hyphenated().to_string(), args.source.clone()),
        Command::ConfirmErasure { id, source, .. } => (id.hyphenated().to_string(), source.clone()),
        _ => ("-".into(), field(task, "source")),
    };
    let line = match command {
        Command::ConfirmErasure { .. } => {
            format!("Confirmed the erasure in {source} for request {id}: {}.", answer(task))
        }
        _ => format!("Answered {source} for request {id}: {}.", answer(task)),
    };
    format!("{line}{}", render_tasks(&id, std::slice::from_ref(task)))
}

/// `submit`: the request's id and what happens next. The answer is the same for a new request
/// and a repeat of an open one (which it then names), as on the public API.
pub fn render_submitted(channel: &str, response: &Value) -> String {
    let id = field(response, "request_id");
    let next = match response.get("status").and_then(Value::as_str) {
        Some("completed") => "Done: an opt-out or unsubscribe needs no confirmation. The address is \
                              suppressed now, and the person is told by email."
            .to_string(),
        _ => "Nothing happens until the person confirms it from their mailbox: the verification \
              email goes to the address given, and they must follow its link (a request never \
              confirmed expires). If the address already had an open request of this kind, this is \
              that request, and the link went out again within the address's mail budget."
            .to_string(),
    };
    format!("Entered request {id} (received by {channel}).\n{next}\nFollow it with: staff show {id}\n")
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
        ("Language", language(request)),
        ("Channel", channel(request)),
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
        ("Fee accepted on", field(request, "fee_accepted_on")),
        ("Receipt confirmed at", field(request, "receipt_confirmed_at")),
        ("Dispute", dispute(request)),
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
        Command::ConfirmReceipt { .. } => {
            format!("Confirmation of receipt recorded for request {id}; it is sent to the requester now.")
        }
        Command::AcceptFee { .. } => format!(
            "Fee accepted for request {id}: the work restarts, now due {}; the requester is told.",
            field(request, "due_on")
        ),
        Command::RecordDispute { .. } => format!(
            "Dispute recorded for request {id}: the disputed data is restricted, its recipients and the \
             requester are told."
        ),
        Command::LiftRestriction { on, .. } => format!(
            "Lift of the restriction announced for request {id}: the requester is told now; it is \
             lifted on {on}."
        ),
        _ => format!("Request {id}."),
    };
    format!("{line}\n{}", render_request(request))
}

/// The language the requester reads, and what that means for the text staff write: "Dutch (nl) —
/// notes and reasons you write are sent verbatim; write them in Dutch".
pub fn language(request: &Value) -> String {
    let code = field(request, "language");
    let name = match (request.get("language_name").and_then(Value::as_str), code.as_str()) {
        (Some(name), _) => name.to_string(),
        (None, "en") => "English".to_string(),
        (None, "nl") => "Dutch".to_string(),
        (None, _) => return code,
    };
    format!("{name} ({code}) — notes and reasons you write are sent verbatim; write them in {name}")
}

/// A refused correction the person disputes: since when, whether its data is restricted, and the
/// announced lift (`-` when there is no dispute).
fn dispute(request: &Value) -> String {
    let Some(dispute @ Value::Object(_)) = request.get("dispute") else { return "-".into() };
    let since = field(dispute, "recorded_at");
    let mut text = match dispute.get("restriction").and_then(Value::as_str) {
        Some("lifting") => format!(
            "disputed since {since}; restricted until {} (lift announced: {})",
            field(dispute, "lift_on"),
            field(dispute, "lift_reason")
        ),
        Some("lifted") => {
            format!("disputed since {since}; restriction lifted on {}", field(dispute, "lift_on"))
        }
        _ => format!("disputed since {since}; processing restricted"),
    };
    if let Some(statement) = dispute.get("statement").and_then(Value::as_str) {
        text.push_str(&format!("; statement: {statement}"));
    }
    text
}

/// How the request reached us, and who entered it when staff did.
fn channel(request: &Value) -> String {
    match request.get("entered_by").and_then(Value::as_str) {
        Some(staff) => format!("{}, entered by {staff}", field(request, "channel")),
        None => field(request, "channel"),
    }
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
    fn a_report_reads_as_a_row_per_kind_and_regime_the_total_and_the_bases_of_denials() {
        let figures = |received: u32, denied: Value, mean: Value, median: Value| {
            json!({
                "received": received, "complied": 3, "complied_in_part": 1, "denied": denied,
                "not_verified": 1, "referred": 0, "open": 1,
                "days_to_respond": {"responded": 5, "mean": mean, "median": median}
            })
        };
        let mut row = figures(
            7,
            json!({"total": 2, "by_basis": {"excessive": 1, "legal_obligation": 1}}),
            json!(14.2),
            json!(10.0),
        );
        row["kind"] = json!("access");
        row["regime"] = json!("gdpr");
        let total = figures(7, json!({"total": 2, "by_basis": {}}), json!(14.2), json!(10.5));
        let text = render_report(&json!({"year": 2026, "rows": [row], "total": total}));
        assert!(text.starts_with("Requests received in 2026"), "{text}");
        let access = text.lines().find(|l| l.contains("access")).unwrap();
        for cell in ["gdpr", "7", "3", "1", "2", "14.2", "10"] {
            assert!(access.contains(cell), "{cell} in {access}");
        }
        assert!(text.lines().any(|l| l.contains("total") && l.contains("10.5")), "{text}");
        assert!(text.contains("access (gdpr): excessive 1, legal_obligation 1"), "{text}");
        let empty = render_report(&json!({"year": 2024, "rows": [], "total": {}}));
        assert_eq!(empty, "No requests were received in 2024.\n");
    }

    #[test]
    fn the_language_row_tells_staff_to_write_in_the_requesters_language() {
        let dutch = json!({ "language": "nl", "language_name": "Dutch" });
        assert_eq!(
            language(&dutch),
            "Dutch (nl) — notes and reasons you write are sent verbatim; write them in Dutch"
        );
        assert!(language(&json!({ "language": "en" })).starts_with("English (en) — "), "without the name");
        assert_eq!(language(&json!({ "language": "xx" })), "xx");
        assert!(render_request(&dutch).contains("write them in Dutch"));
    }

    #[test]
    fn a_dispute_shows_whether_its_data_is_restricted_and_the_announced_lift() {
        let lifting = json!({ "dispute": { "recorded_at": "2026-12-01T10:00:00Z", "statement": "Born 1980.",
            "restriction": "lifting", "restricted": true, "lift_on": "2026-12-24", "lift_reason": "Checked." } });
        let text = dispute(&lifting);
        assert!(text.contains("restricted until 2026-12-24") && text.contains("Checked."), "{text}");
        assert!(text.contains("statement: Born 1980."), "{text}");
        let in_force =
            json!({ "dispute": { "recorded_at": "t", "statement": null, "restriction": "in_force" } });
        assert_eq!(dispute(&in_force), "disputed since t; processing restricted");
        assert_eq!(dispute(&json!({ "dispute": null })), "-");
    }

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
    fn a_task_waiting_for_staff_says_what_to_do_and_how_to_answer() {
        let tasks = [
            json!({ "source": "website_analytics", "operation": "access", "state": "with_staff",
                    "answer_by": "2026-12-23", "late": true, "attempts": 0, "problem": null,
                    "instructions": "Search the visitor profiles.", "collected": null, "receipt": null }),
            json!({ "source": "job_applications", "operation": "access", "state": "collected",
                    "answer_by": "2026-12-23", "late": false, "attempts": 1, "problem": null,
                    "instructions": null, "collected": { "records": 0, "pages": 0, "files": [
                        { "name": "cv.pdf", "size": 10, "content_type": "application/pdf" } ] }, "receipt": null }),
        ];
        let text = render_tasks("ID", &tasks);
        assert!(text.contains("2026-12-23 (late)") && text.contains("cv.pdf"), "{text}");
        assert!(text.contains("Search the visitor profiles."), "{text}");
        assert!(text.contains("staff attach ID --source website_analytics"), "{text}");
        assert!(!text.contains("--source job_applications"), "an answered task needs nothing: {text}");
    }

    #[test]
    fn an_answer_reads_as_its_files_nothing_found_or_its_counts() {
        let files = json!({ "collected": { "records": 0, "pages": 0, "files": [{ "name": "a.csv" }, { "name": "b.pdf" }] } });
        assert_eq!(answer(&files), "a.csv, b.pdf");
        assert_eq!(
            answer(&json!({ "collected": { "records": 0, "pages": 0, "files": [] } })),
            "nothing found"
        );
        assert_eq!(
            answer(&json!({ "collected": null, "receipt": { "deleted": 3, "anonymised": 1 } })),
            "3 deleted, 1 anonymised"
        );
        assert_eq!(answer(&json!({ "collected": null, "receipt": null })), "-");
    }

    #[test]
    fn a_request_made_by_an_agent_shows_who_and_why_they_may() {
        let agent = json!({ "agent": { "name": "Agatha", "email": "a@agents.example", "relationship": "authorised_agent" } });
        assert_eq!(super::agent(&agent), "Agatha <a@agents.example>, authorised_agent");
        assert_eq!(super::agent(&json!({ "agent": null })), "-");
        assert!(render_request(&agent).contains("Agatha <a@agents.example>"));
    }
}
