//! Each command line maps to exactly the HTTP call the staff API documents, and bad input is a
//! usage error (exit 2) before anything is sent.

use clap::{CommandFactory, Parser};
use http::Method;
use serde_json::json;
use staff_cli::{ApiCall, Cli, CredentialSource, api_call, list_call};

const ID: &str = "3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52";

fn call(args: &[&str]) -> ApiCall {
    let cli = Cli::try_parse_from(
        ["staff", "--endpoint", "http://127.0.0.1:9000", "--local-key", "k"].iter().chain(args),
    )
    .unwrap_or_else(|e| panic!("{args:?} should parse: {e}"));
    api_call(&cli.command)
}

fn get(path_and_query: &str) -> ApiCall {
    ApiCall { method: Method::GET, path_and_query: path_and_query.into(), body: None }
}

fn post(path: &str, body: serde_json::Value) -> ApiCall {
    ApiCall { method: Method::POST, path_and_query: path.into(), body: Some(body) }
}

#[test]
fn list_without_filters_gets_all_open_requests() {
    assert_eq!(call(&["list"]), get("/staff/requests"));
}

#[test]
fn list_filters_become_query_parameters() {
    assert_eq!(
        call(&["list", "--status", "pending_verification", "--due-before", "2026-12-31", "--limit", "100"]),
        get("/staff/requests?status=pending_verification&due_before=2026-12-31&limit=100")
    );
    assert_eq!(call(&["list", "--status", "in_progress"]), get("/staff/requests?status=in_progress"));
}

#[test]
fn list_cursors_are_percent_encoded_so_the_signed_query_is_unambiguous() {
    assert_eq!(
        call(&["list", "--cursor", "eyJrIjoi+/=", "--limit", "1"]),
        get("/staff/requests?limit=1&cursor=eyJrIjoi%2B%2F%3D")
    );
}

#[test]
fn following_pages_replaces_the_cursor_and_keeps_the_filters() {
    let cli =
        Cli::try_parse_from(["staff", "--endpoint", "http://x", "list", "--status", "verified", "--all"])
            .unwrap();
    let staff_cli::Command::List(args) = cli.command else { panic!("not a list") };
    assert!(args.all);
    assert_eq!(list_call(&args, Some("page-2")), get("/staff/requests?status=verified&cursor=page-2"));
}

#[test]
fn show_gets_one_request() {
    assert_eq!(call(&["show", ID]), get(&format!("/staff/requests/{ID}")));
}

#[test]
fn show_normalises_an_upper_case_id() {
    assert_eq!(call(&["show", &ID.to_uppercase()]), get(&format!("/staff/requests/{ID}")));
}

#[test]
fn extend_posts_the_new_date_and_reason() {
    assert_eq!(
        call(&["extend", ID, "--until", "2027-02-26", "--reason", "three systems to search"]),
        post(
            &format!("/staff/requests/{ID}/extend"),
            json!({ "until": "2027-02-26", "reason": "three systems to search" })
        )
    );
}

#[test]
fn deny_posts_the_reason() {
    assert_eq!(
        call(&["deny", ID, "--reason", "identity could not be confirmed"]),
        post(&format!("/staff/requests/{ID}/deny"), json!({ "reason": "identity could not be confirmed" }))
    );
}

#[test]
fn excessive_posts_the_reason_and_cost_estimate() {
    assert_eq!(
        call(&[
            "excessive",
            ID,
            "--reason",
            "fifth request this month",
            "--amount",
            "25.00",
            "--currency",
            "eur"
        ]),
        post(
            &format!("/staff/requests/{ID}/excessive"),
            json!({
                "reason": "fifth request this month",
                "cost_estimate": { "amount": "25.00", "currency": "EUR" }
            })
        )
    );
}

#[test]
fn complete_posts_the_note_when_given() {
    assert_eq!(
        call(&["complete", ID, "--note", "answered by post"]),
        post(&format!("/staff/requests/{ID}/complete"), json!({ "note": "answered by post" }))
    );
}

#[test]
fn complete_without_a_note_posts_an_empty_object() {
    assert_eq!(call(&["complete", ID]), post(&format!("/staff/requests/{ID}/complete"), json!({})));
}

#[test]
fn attach_answers_the_access_task_naming_the_files_by_their_names_only() {
    assert_eq!(
        call(&["attach", ID, "--source", "website_analytics", "exports/visits.csv", "/tmp/profile.pdf"]),
        post(
            &format!("/staff/requests/{ID}/sources/website_analytics/access"),
            json!({ "files": ["visits.csv", "profile.pdf"] })
        )
    );
}

#[test]
fn attach_with_nothing_found_answers_with_no_files() {
    assert_eq!(
        call(&["attach", ID, "--source", "website_analytics", "--nothing-found"]),
        post(
            &format!("/staff/requests/{ID}/sources/website_analytics/access"),
            json!({ "files": [], "nothing_found": true })
        )
    );
}

#[test]
fn attach_asks_where_to_upload_each_file_with_its_size_and_type() {
    let cli =
        Cli::try_parse_from(["staff", "--endpoint", "http://x", "attach", ID, "--source", "crm", "a.csv"])
            .unwrap();
    let staff_cli::Command::Attach(args) = cli.command else { panic!("not an attach") };
    let file = staff_cli::LocalFile {
        path: "a.csv".into(),
        name: "a.csv".into(),
        size: 12,
        content_type: "text/csv",
    };
    assert_eq!(
        staff_cli::uploads_call(&args, &[file]),
        post(
            &format!("/staff/requests/{ID}/sources/crm/uploads"),
            json!({ "files": [{ "name": "a.csv", "size": 12, "content_type": "text/csv" }] })
        )
    );
}

#[test]
fn confirm_erasure_posts_the_counts_and_why_anonymised_records_were_kept() {
    assert_eq!(
        call(&["confirm-erasure", ID, "--source", "website_analytics", "--deleted", "4"]),
        post(&format!("/staff/requests/{ID}/sources/website_analytics/erasure"), json!({ "deleted": 4 }))
    );
    assert_eq!(
        call(&[
            "confirm-erasure",
            ID,
            "--source",
            "website_analytics",
            "--deleted",
            "4",
            "--anonymised",
            "2",
            "--kept-reason",
            " Kept for fraud checks. "
        ]),
        post(
            &format!("/staff/requests/{ID}/sources/website_analytics/erasure"),
            json!({ "deleted": 4, "anonymised": 2, "kept_reason": "Kept for fraud checks." })
        )
    );
}

#[test]
fn global_json_flag_works_after_the_subcommand() {
    let cli = Cli::try_parse_from(["staff", "--endpoint", "http://x", "show", ID, "--json"]).unwrap();
    assert!(cli.json);
}

async fn usage_error(args: &[&str]) -> (i32, String) {
    let mut argv = vec!["staff", "--endpoint", "http://127.0.0.1:1", "--local-key", "k"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = staff_cli::run(argv, CredentialSource::AwsChain, &mut out, &mut err).await;
    assert!(out.is_empty(), "nothing on stdout for {args:?}");
    (code, String::from_utf8(err).unwrap())
}

#[tokio::test]
async fn malformed_arguments_are_usage_errors_with_exit_code_2() {
    for (args, expected) in [
        (vec!["show", "12345"], "expected a request id"),
        (vec!["extend", ID, "--until", "26-02-2027", "--reason", "x"], "expected a date as YYYY-MM-DD"),
        (vec!["extend", ID, "--until", "2027-02-30", "--reason", "x"], "not a calendar date"),
        (vec!["extend", ID, "--until", "2027-02-26"], "--reason"),
        (vec!["deny", ID, "--reason", "  "], "must not be empty"),
        (
            vec!["excessive", ID, "--reason", "x", "--amount", "25", "--currency", "EUR"],
            "exactly two decimals",
        ),
        (vec!["excessive", ID, "--reason", "x", "--amount", "25.00", "--currency", "EURO"], "three-letter"),
        (vec!["list", "--limit", "0"], "--limit"),
        (vec!["list", "--limit", "101"], "--limit"),
        (vec!["list", "--status", "completed"], "--status"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["attach", ID, "--source", "website_analytics"], "FILE"),
        (
            vec!["attach", ID, "--source", "website_analytics", "a.csv", "--nothing-found"],
            "cannot be used with",
        ),
        (vec!["attach", ID, "--source", "Web-Analytics", "a.csv"], "expected a source id"),
        (vec!["attach", ID, "a.csv"], "--source"),
        (vec!["confirm-erasure", ID, "--source", "crm"], "--deleted"),
        (vec!["confirm-erasure", ID, "--source", "crm", "--deleted", "-1"], "--deleted"),
        (
            vec!["confirm-erasure", ID, "--source", "crm", "--deleted", "1", "--anonymised", "2"],
            "--kept-reason",
        ),
        (
            vec!["confirm-erasure", ID, "--source", "crm", "--deleted", "1", "--kept-reason", "x"],
            "--anonymised",
        ),
    ] {
        let (code, stderr) = usage_error(&args).await;
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn help_goes_to_stdout_with_exit_code_0() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = staff_cli::run(["staff", "--help"], CredentialSource::AwsChain, &mut out, &mut err).await;
    assert_eq!(code, 0);
    let help = String::from_utf8(out).unwrap();
    for command in ["list", "show", "extend", "deny", "excessive", "complete", "attach", "confirm-erasure"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn help_never_shows_the_local_keys_value_from_the_environment() {
    let command = Cli::command();
    let local_key = command.get_arguments().find(|a| a.get_id() == "local_key").unwrap();
    assert!(local_key.is_hide_env_values_set());
}

#[test]
fn the_command_line_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn submit_posts_the_persons_fields_and_the_channel_to_the_requests() {
    assert_eq!(
        call(&[
            "submit",
            "--channel",
            "phone",
            "--email",
            "pat@example.com",
            "--kind",
            "deletion",
            "--region",
            "US-CA"
        ]),
        post(
            "/staff/requests",
            json!({ "channel": "phone", "email": "pat@example.com", "kind": "deletion", "region": "US-CA" })
        )
    );
    assert_eq!(
        call(&[
            "submit",
            "--channel",
            "in_person",
            "--email",
            "a@b.nl",
            "--kind",
            "access",
            "--region",
            "NL",
            "--language",
            "en",
            "--name",
            "Ann de Vries",
            "--details",
            "asked at the front desk",
        ]),
        post(
            "/staff/requests",
            json!({
                "channel": "in_person", "email": "a@b.nl", "kind": "access", "region": "NL", "language": "en",
                "name": "Ann de Vries", "details": "asked at the front desk",
            })
        )
    );
}

#[test]
fn deny_posts_the_coded_basis_when_one_is_given() {
    assert_eq!(
        call(&["deny", ID, "--reason", "kept for the tax office", "--basis", "legal_obligation"]),
        post(
            &format!("/staff/requests/{ID}/deny"),
            json!({ "reason": "kept for the tax office", "basis": "legal_obligation" })
        )
    );
}

#[test]
fn report_gets_the_years_figures_or_with_csv_its_records() {
    assert_eq!(call(&["report", "--year", "2026"]), get("/staff/reports/2026"));
    assert_eq!(call(&["report", "--year", "2026", "--csv"]), get("/staff/reports/2026/records"));
}

#[test]
fn what_follows_by_hand_posts_to_its_own_route() {
    let path = |action: &str| format!("/staff/requests/{ID}/{action}");
    assert_eq!(call(&["confirm-receipt", ID]), post(&path("receipt-confirmation"), json!({})));
    assert_eq!(call(&["accept-fee", ID]), post(&path("fee-acceptance"), json!({})));
    assert_eq!(
        call(&["accept-fee", ID, "--accepted-on", "2026-12-01"]),
        post(&path("fee-acceptance"), json!({ "accepted_on": "2026-12-01" }))
    );
    assert_eq!(call(&["record-dispute", ID]), post(&path("dispute"), json!({})));
    assert_eq!(
        call(&["record-dispute", ID, "--statement", "My birth date is 3 May 1980."]),
        post(&path("dispute"), json!({ "statement": "My birth date is 3 May 1980." }))
    );
    assert_eq!(
        call(&["lift-restriction", ID, "--reason", "Checked at the source.", "--on", "2026-12-24"]),
        post(&path("restriction-lifting"), json!({ "reason": "Checked at the source.", "on": "2026-12-24" }))
    );
}
