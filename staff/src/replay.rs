//! `staff replay-erasures`: after a backup was restored, apply again every erasure completed since
//! the moment the backup was taken from (CCPA regulations §7022(d)). The command starts the run,
//! asks how it stands until it is finished, and prints its receipt (infra/README.md, "Restoring a
//! backup").

use clap::Args;
use http::Method;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;

use crate::api::ApiCall;
use crate::cli::parse_date;
use crate::{Client, Error};

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ReplayArgs {
    /// The moment the restored backup was taken from: a time (2026-11-20T08:30:00Z), or a date
    /// (2026-11-20), which counts from the earliest moment that day starts anywhere.
    #[arg(long, value_parser = parse_since, value_name = "DATE", required_unless_present = "run", conflicts_with = "run")]
    pub since: Option<String>,
    /// Follow a replay started before (its run id) instead of starting one.
    #[arg(long, value_parser = parse_run, value_name = "RUN")]
    pub run: Option<Uuid>,
    /// Print the run's id once it is started, without waiting for it to finish.
    #[arg(long)]
    pub no_wait: bool,
    /// How often to ask how the run stands, in milliseconds.
    #[arg(long, default_value_t = 2000, hide = true)]
    pub poll_ms: u64,
}

/// A date as `YYYY-MM-DD`, or an RFC 3339 time; sent as typed (the server reads it the same way).
pub fn parse_since(value: &str) -> Result<String, String> {
    if chrono::DateTime::parse_from_rfc3339(value).is_ok() {
        return Ok(value.to_owned());
    }
    parse_date(value)
        .map(|_| value.to_owned())
        .map_err(|_| "expected a date as YYYY-MM-DD or a time as 2026-11-20T08:30:00Z".to_owned())
}

pub fn parse_run(value: &str) -> Result<Uuid, String> {
    Uuid::parse_str(value)
        .ok()
        .filter(|_| value.len() == 36)
        .ok_or_else(|| "expected a run id like 3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52".to_owned())
}

/// The call that starts the run, or, with `--run`, the one that reads it.
pub fn first_call(args: &ReplayArgs) -> ApiCall {
    match (&args.run, &args.since) {
        (Some(run), _) => receipt_call(&run.hyphenated().to_string()),
        (None, since) => ApiCall {
            method: Method::POST,
            path_and_query: "/staff/erasures/replays".into(),
            body: Some(json!({ "since": since.clone().unwrap_or_default() })),
        },
    }
}

pub fn receipt_call(run: &str) -> ApiCall {
    ApiCall { method: Method::GET, path_and_query: format!("/staff/erasures/replays/{run}"), body: None }
}

/// Starts (or finds) the run and, unless `--no-wait`, follows it until it is finished.
pub async fn replay(client: &Client, args: &ReplayArgs) -> Result<Value, Error> {
    let mut run = client.send(&first_call(args)).await?;
    if args.no_wait {
        return Ok(run);
    }
    let id =
        run.get("run_id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
            Error::UnexpectedResponse { status: 200, detail: "the answer names no run".into() }
        })?;
    while run.get("status").and_then(Value::as_str) != Some("finished") {
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        run = client.send(&receipt_call(&id)).await?;
    }
    Ok(run)
}

fn text(value: &Value, name: &str) -> String {
    match value.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The run as it stands: its receipt once finished, else how to follow it.
pub fn render(response: &Value) -> String {
    let run = text(response, "run_id");
    let status = text(response, "status");
    let since = text(response, "since");
    if status != "finished" {
        return format!(
            "Replay {run} of the erasures since {since}: {status}.\nFollow it with: staff replay-erasures --run {run}\n"
        );
    }
    let mut out = format!(
        "Replay {run} of the erasures since {since}: finished.\n  started {}, finished {}; {} erasures applied again\n",
        text(response, "started_at"),
        text(response, "finished_at"),
        text(response, "tombstones_considered"),
    );
    let sources = response.get("sources").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(["SOURCE", "DELETED AGAIN", "ANONYMISED AGAIN"]);
    for source in sources {
        table.add_row([text(source, "source"), text(source, "deleted"), text(source, "anonymised")]);
    }
    out.push_str(&format!("{table}\n"));
    out.push_str(&format!(
        "Requests scrubbed again: {}; exports deleted again: {}.\n",
        text(response, "requests_scrubbed"),
        text(response, "exports_deleted"),
    ));
    let by_hand: Vec<String> = response
        .get("ask_by_hand")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if !by_hand.is_empty() {
        out.push_str(&format!(
            "Outside AWS, ask the owners of {} to apply again every erasure they were asked for since {since}, \
             if they restored a backup too.\n",
            by_hand.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_date_or_a_time() {
        assert_eq!(parse_since("2026-11-20"), Ok("2026-11-20".into()));
        assert_eq!(parse_since("2026-11-20T08:30:00Z"), Ok("2026-11-20T08:30:00Z".into()));
        for bad in ["2026-11-31", "20-11-2026", "yesterday", ""] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_replay_is_started_with_since_or_followed_by_its_run() {
        let args = ReplayArgs { since: Some("2026-11-20".into()), run: None, no_wait: false, poll_ms: 1 };
        let call = first_call(&args);
        assert_eq!((call.method, call.path_and_query.as_str()), (Method::POST, "/staff/erasures/replays"));
        assert_eq!(call.body, Some(json!({"since": "2026-11-20"})));
        let run = Uuid::new_v4();
        let call = first_call(&ReplayArgs { since: None, run: Some(run), ..args });
        assert_eq!(call.path_and_query, format!("/staff/erasures/replays/{run}"));
        assert_eq!(call.method, Method::GET);
    }

    #[test]
    fn the_receipt_names_each_source_and_who_to_ask_by_hand() {
        let receipt = json!({
            "run_id": "r-1", "status": "finished", "since": "2026-11-20T00:00:00Z",
            "tombstones_considered": 2, "requests_scrubbed": 1, "exports_deleted": 1,
            "sources": [{"source": "devices", "deleted": 2, "anonymised": 0}],
            "ask_by_hand": ["job_applications"],
        });
        let shown = render(&receipt);
        for part in ["finished", "2 erasures", "devices", "Requests scrubbed again: 1", "job_applications"] {
            assert!(shown.contains(part), "{part}: {shown}");
        }
        let queued = render(&json!({"run_id": "r-1", "status": "queued", "since": "x"}));
        assert!(queued.contains("staff replay-erasures --run r-1"), "{queued}");
    }
}
