//! Which HTTP call each command makes: pure, so that the contract with the staff API can be
//! tested without a server.

use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::attach::LocalFile;
use crate::cli::{AttachArgs, Command, ListArgs, ReportArgs, SubmitArgs};

/// One call to the staff API, relative to the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: Method,
    /// Starts with `/`; the query, if any, is already percent-encoded.
    pub path_and_query: String,
    /// The JSON body of a POST.
    pub body: Option<Value>,
}

/// SigV4's unreserved set: anything else is percent-encoded, so the signed query is exactly the
/// one API Gateway canonicalises (a `+` would be read as a space by one side and not the other).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn api_call(command: &Command) -> ApiCall {
    match command {
        Command::List(args) => list_call(args, args.cursor.as_deref()),
        Command::Show { id } => ApiCall { method: Method::GET, path_and_query: request_path(id), body: None },
        Command::Extend { id, until, reason } => {
            post(id, "extend", json!({ "until": until.format("%Y-%m-%d").to_string(), "reason": reason }))
        }
        Command::Deny { id, reason, basis } => {
            let mut body = json!({ "reason": reason });
            if let Some(basis) = basis {
                body["basis"] = json!(basis.as_str());
            }
            post(id, "deny", body)
        }
        Command::Report(args) => report_call(args),
        Command::Excessive { id, reason, amount, currency } => post(
            id,
            "excessive",
            json!({ "reason": reason, "cost_estimate": { "amount": amount, "currency": currency } }),
        ),
        Command::Complete { id, note } => {
            let body = match note {
                Some(note) => json!({ "note": note }),
                None => json!({}),
            };
            post(id, "complete", body)
        }
        Command::ConfirmReceipt { id } => post(id, "receipt-confirmation", json!({})),
        Command::AcceptFee { id, accepted_on } => {
            let body = match accepted_on {
                Some(day) => json!({ "accepted_on": day.format("%Y-%m-%d").to_string() }),
                None => json!({}),
            };
            post(id, "fee-acceptance", body)
        }
        Command::RecordDispute { id, statement } => {
            let body = match statement {
                Some(statement) => json!({ "statement": statement }),
                None => json!({}),
            };
            post(id, "dispute", body)
        }
        Command::LiftRestriction { id, reason, on } => post(
            id,
            "restriction-lifting",
            json!({ "reason": reason, "on": on.format("%Y-%m-%d").to_string() }),
        ),
        Command::Submit(args) => submit_call(args),
        Command::ReplayErasures(args) => crate::replay::first_call(args),
        // With files, the answer that names them; `attach` uploads them first (`uploads_call`).
        Command::Attach(args) => {
            let body = if args.nothing_found {
                json!({ "files": [], "nothing_found": true })
            } else {
                let names: Vec<String> = args
                    .files
                    .iter()
                    .map(|path| path.file_name().unwrap_or_default().to_string_lossy().into_owned())
                    .collect();
                json!({ "files": names })
            };
            source_post(&args.id, &args.source, "access", body)
        }
        Command::ConfirmErasure { id, source, deleted, anonymised, kept_reason } => {
            let mut body = json!({ "deleted": deleted });
            if let Some(anonymised) = anonymised {
                body["anonymised"] = json!(anonymised);
            }
            if let Some(reason) = kept_reason {
                body["kept_reason"] = json!(reason);
            }
            source_post(id, source, "erasure", body)
        }
    }
}

/// `submit`: the public API's fields the staff member gave, and the channel.
pub fn submit_call(args: &SubmitArgs) -> ApiCall {
    let mut body = json!({
        "channel": args.channel.as_str(),
        "email": args.email,
        "kind": args.kind,
        "region": args.region,
    });
    for (field, value) in [("language", &args.language), ("name", &args.name), ("details", &args.details)] {
        if let Some(value) = value {
            body[field] = json!(value);
        }
    }
    ApiCall { method: Method::POST, path_and_query: "/staff/requests".into(), body: Some(body) }
}

/// `report`: the year's figures, or with `--csv` its records (answered as CSV, not JSON).
pub fn report_call(args: &ReportArgs) -> ApiCall {
    let tail = if args.csv { "/records" } else { "" };
    ApiCall {
        method: Method::GET,
        path_and_query: format!("/staff/reports/{:04}{tail}", args.year),
        body: None,
    }
}

/// Where to upload the files of `attach`, each with its size and type.
pub fn uploads_call(args: &AttachArgs, files: &[LocalFile]) -> ApiCall {
    let files: Vec<Value> = files
        .iter()
        .map(|f| json!({ "name": f.name, "size": f.size, "content_type": f.content_type }))
        .collect();
    source_post(&args.id, &args.source, "uploads", json!({ "files": files }))
}

/// One page of the list; `cursor` overrides the one on the command line when following pages.
pub fn list_call(args: &ListArgs, cursor: Option<&str>) -> ApiCall {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(status) = args.status {
        query.push(("status", status.as_str().to_string()));
    }
    if let Some(date) = args.due_before {
        query.push(("due_before", date.format("%Y-%m-%d").to_string()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = cursor {
        query.push(("cursor", cursor.to_string()));
    }
    let mut path_and_query = "/staff/requests".to_string();
    for (i, (name, value)) in query.iter().enumerate() {
        path_and_query.push(if i == 0 { '?' } else { '&' });
        path_and_query.push_str(name);
        path_and_query.push('=');
        path_and_query.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    ApiCall { method: Method::GET, path_and_query, body: None }
}

fn request_path(id: &uuid::Uuid) -> String {
    format!("/staff/requests/{}", id.hyphenated())
}

/// A call about one of the request's sources; the source id is a checked data map id, safe in a path.
fn source_post(id: &uuid::Uuid, source: &str, action: &str, body: Value) -> ApiCall {
    post(id, &format!("sources/{source}/{action}"), body)
}

fn post(id: &uuid::Uuid, action: &str, body: Value) -> ApiCall {
    ApiCall {
        method: Method::POST,
        path_and_query: format!("{}/{action}", request_path(id)),
        body: Some(body),
    }
}
