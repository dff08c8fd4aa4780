//! The tables staff read: the right columns, the values from the server's JSON, and extended
//! deadlines marked.

use clap::Parser;
use serde_json::{Value, json};
use staff_cli::render::{render, render_json, render_list, render_show};
use staff_cli::{Cli, Command};

const ID: &str = "3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52";
const OTHER: &str = "9a1c2d3e-4f50-4617-8829-3a4b5c6d7e8f";

fn list_page() -> Value {
    json!({
        "requests": [
            {
                "request_id": ID, "status": "verified", "kind": "access", "regime": "gdpr",
                "language": "nl", "received_at": "2026-11-28T09:00:00Z", "due_on": "2026-12-28",
                "original_due_on": null, "acknowledge_by": null
            },
            {
                "request_id": OTHER, "status": "in_progress", "kind": "deletion", "regime": "ccpa",
                "language": "en", "received_at": "2026-11-20T15:30:00Z", "due_on": "2027-02-26",
                "original_due_on": "2027-01-04", "acknowledge_by": "2026-12-04"
            }
        ],
        "next_cursor": null
    })
}

fn full_request() -> Value {
    json!({
        "request_id": OTHER, "status": "in_progress", "version": 4, "kind": "deletion",
        "region": "US-CA", "regime": "ccpa", "language": "en", "email": "pat@example.com",
        "name": "Pat Example", "details": null, "received_at": "2026-11-20T15:30:00Z",
        "received_on": "2026-11-20", "due_on": "2027-02-26", "original_due_on": "2027-01-04",
        "extension_reason": "records in three systems", "acknowledge_by": "2026-12-04",
        "acknowledged_at": "2026-11-20T15:30:05Z", "verified_at": "2026-11-20T16:00:00Z",
        "closed_reason": null, "cost_estimate": { "amount": "25.00", "currency": "EUR" },
        "updated_at": "2026-12-01T10:00:00Z"
    })
}

fn show_response() -> Value {
    json!({
        "request": full_request(),
        "audit": [
            { "version": 1, "event": "submitted", "from": null, "to": "pending_verification",
              "at": "2026-11-20T15:30:00Z", "actor": { "type": "requester" }, "reason": null },
            { "version": 2, "event": "verified", "from": "pending_verification", "to": "verified",
              "at": "2026-11-20T16:00:00Z", "actor": { "type": "requester" }, "reason": null },
            { "version": 3, "event": "work_started", "from": "verified", "to": "in_progress",
              "at": "2026-11-21T08:00:00Z", "actor": { "type": "system" }, "reason": null },
            { "version": 4, "event": "extended", "from": "in_progress", "to": "in_progress",
              "at": "2026-12-01T10:00:00Z",
              "actor": { "type": "staff", "id": "arn:aws:iam::123456789012:user/alex" },
              "reason": "records in three systems" }
        ]
    })
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle}:\n{text}"))
}

fn command(args: &[&str]) -> Command {
    Cli::try_parse_from(["staff", "--endpoint", "http://x"].iter().chain(args)).unwrap().command
}

#[test]
fn the_list_has_the_documented_columns_in_order() {
    let text = render_list(&list_page());
    let header = line_with(&text, "ID");
    let positions: Vec<usize> = ["ID", "STATUS", "KIND", "REGIME", "RECEIVED", "DUE", "ACK BY"]
        .iter()
        .map(|column| header.find(column).unwrap_or_else(|| panic!("{column} missing: {header}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{header}");
}

#[test]
fn each_listed_request_is_one_row_with_its_values() {
    let text = render_list(&list_page());
    let first = line_with(&text, ID);
    for value in ["verified", "access", "gdpr", "2026-11-28T09:00:00Z", "2026-12-28"] {
        assert!(first.contains(value), "{value} missing: {first}");
    }
    let second = line_with(&text, OTHER);
    for value in ["in_progress", "deletion", "ccpa", "2026-11-20T15:30:00Z", "2026-12-04"] {
        assert!(second.contains(value), "{value} missing: {second}");
    }
}

#[test]
fn extended_deadlines_are_marked_and_original_ones_are_not() {
    let text = render_list(&list_page());
    assert!(line_with(&text, OTHER).contains("2027-02-26 (ext.)"));
    assert!(!line_with(&text, ID).contains("(ext.)"));
}

#[test]
fn an_empty_list_says_so() {
    assert_eq!(render_list(&json!({ "requests": [], "next_cursor": null })), "No requests.\n");
}

#[test]
fn a_list_with_more_pages_says_how_to_get_them() {
    let mut page = list_page();
    page["next_cursor"] = json!("abc123");
    let text = render_list(&page);
    assert!(text.contains("--all") && text.contains("--cursor abc123"), "{text}");
}

#[test]
fn show_prints_the_request_as_keys_and_values() {
    let text = render_show(&show_response());
    for (key, value) in [
        ("ID", OTHER),
        ("Status", "in_progress"),
        ("Version", "4"),
        ("Region", "US-CA"),
        ("Email", "pat@example.com"),
        ("Name", "Pat Example"),
        ("Due on", "2027-02-26 (ext.)"),
        ("Original due on", "2027-01-04"),
        ("Extension reason", "records in three systems"),
        ("Cost estimate", "25.00 EUR"),
    ] {
        let line = line_with(&text, key);
        assert!(line.contains(value), "{key}: {value} missing: {line}");
    }
    assert!(line_with(&text, "Details").contains(" - "), "null shows as a dash");
}

#[test]
fn show_prints_the_audit_trail_with_transitions_and_actors() {
    let text = render_show(&show_response());
    let header = line_with(&text, "VERSION");
    for column in ["VERSION", "AT", "EVENT", "FROM→TO", "ACTOR", "REASON"] {
        assert!(header.contains(column), "{column} missing: {header}");
    }
    assert!(line_with(&text, "submitted").contains("→ pending_verification"));
    assert!(line_with(&text, "work_started").contains("verified → in_progress"));
    assert!(line_with(&text, "work_started").contains("system"));
    let extended = line_with(&text, "extended");
    assert!(extended.contains("staff arn:aws:iam::123456789012:user/alex"), "{extended}");
}

#[test]
fn actions_confirm_in_one_line_then_show_the_request() {
    let response = json!({ "request": full_request() });
    let cases = [
        (vec!["extend", OTHER, "--until", "2027-02-26", "--reason", "r"], "Extended request"),
        (vec!["deny", OTHER, "--reason", "r"], "Denied request"),
        (
            vec!["excessive", OTHER, "--reason", "r", "--amount", "25.00", "--currency", "EUR"],
            "Marked request",
        ),
        (vec!["complete", OTHER], "Completed request"),
    ];
    for (args, verb) in cases {
        let text = render(&command(&args), &response);
        let first = text.lines().next().unwrap();
        assert!(first.starts_with(verb) && first.contains(OTHER), "{first}");
        assert!(line_with(&text, "Status").contains("in_progress"), "{text}");
    }
    let extended = render(&command(&["extend", OTHER, "--until", "2027-02-26", "--reason", "r"]), &response);
    assert!(extended.starts_with(&format!("Extended request {OTHER}: now due 2027-02-26.")), "{extended}");
    let excessive = render(
        &command(&["excessive", OTHER, "--reason", "r", "--amount", "25.00", "--currency", "EUR"]),
        &response,
    );
    assert!(excessive.lines().next().unwrap().contains("25.00 EUR"));
}

#[test]
fn json_output_is_the_servers_json_pretty_printed() {
    let text = render_json(&list_page());
    assert!(text.starts_with("{\n  \"") && text.ends_with("}\n"), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), list_page());
}

#[test]
fn a_request_entered_by_phone_prints_its_id_and_that_the_person_must_confirm_it() {
    let submit =
        command(&["submit", "--channel", "phone", "--email", "a@b.nl", "--kind", "access", "--region", "NL"]);
    let text = render(&submit, &json!({ "request_id": ID, "status": "pending_verification" }));
    assert!(text.starts_with(&format!("Entered request {ID} (received by phone).\n")), "{text}");
    assert!(text.contains("Nothing happens until the person confirms it from their mailbox"), "{text}");
    assert!(text.contains(&format!("staff show {ID}")), "{text}");
    let opt_out = command(&[
        "submit",
        "--channel",
        "post",
        "--email",
        "a@b.nl",
        "--kind",
        "unsubscribe",
        "--region",
        "NL",
    ]);
    let text = render(&opt_out, &json!({ "request_id": ID, "status": "completed" }));
    assert!(text.contains("(received by post)") && text.contains("needs no confirmation"), "{text}");
}

#[test]
fn a_request_staff_entered_shows_its_channel_and_who_entered_it() {
    let mut request = full_request();
    request["channel"] = json!("in_person");
    request["entered_by"] = json!("arn:aws:iam::123456789012:user/kim");
    let text = render(&command(&["show", OTHER]), &json!({ "request": request, "audit": [], "tasks": [] }));
    assert!(line_with(&text, "Channel").contains("in_person, entered by arn:aws:iam::123456789012:user/kim"));
    let mut online = full_request();
    online["channel"] = json!("web");
    let text = render(&command(&["show", OTHER]), &json!({ "request": online, "audit": [], "tasks": [] }));
    assert!(line_with(&text, "Channel").contains("web") && !text.contains("entered by"));
}
