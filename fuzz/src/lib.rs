//! What each fuzz target does with its input, through privacy-shared's public API only. One file
//! for two builds: the libFuzzer targets (fuzz_targets/*.rs, nightly) and privacy-shared's
//! `fuzz_corpus` test, which replays every file of corpus/<target>/ through the same function
//! under stable, so the seeds and every crash kept as one are a regression suite without nightly.
//!
//! Each function panics when a rule the parser promises is broken, not only when the parser
//! itself panics: a refusal that is not a 4xx, a message that quotes the input, an accepted
//! address SES cannot take, a loaded map that breaks its own checks.

use lambda_http::http::{HeaderValue, header};
use lambda_http::{Body, Request};
use privacy_shared::api::{ApiError, MAX_BODY_BYTES, path_request_id, read_json};
use privacy_shared::datamap::{DataMap, ErasurePolicy, Location, SubjectAttribute};
use privacy_shared::domain::{
    CostEstimate, EmailAddress, Language, Region, RequestId, RequestKind, StaffText,
};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// What a target does with one input: returns, or panics when a rule is broken.
pub type Target = fn(&[u8]);

/// Every target by the name of its binary and its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[("json_edge", json_edge), ("email", email), ("datamap", datamap)];

/// The intake body's shape (functions/intake): what a requester sends.
#[derive(Deserialize)]
struct Submission {
    email: String,
    kind: String,
    region: String,
    name: Option<String>,
    language: Option<String>,
    details: Option<String>,
    recipient: Option<String>,
    corrections: Option<BTreeMap<String, String>>,
}

const SUBMISSION_FIELDS: &[&str] =
    &["email", "kind", "region", "name", "language", "details", "recipient", "corrections"];

/// The staff API's body for an excessive request (functions/admin): a nested object.
#[derive(Deserialize)]
struct Excessive {
    reason: String,
    cost_estimate: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    amount: String,
    currency: String,
}

/// An HTTP request from the input: the first line is the Content-Type (left out when it is no
/// header value), the second the path, the rest the body. Seeds stay readable that way.
fn request_from(data: &[u8]) -> (Request, String) {
    let (content_type, rest) = split_line(data);
    let (path, body) = split_line(rest);
    let path = std::str::from_utf8(path)
        .ok()
        .filter(|p| p.starts_with('/') && p.parse::<lambda_http::http::Uri>().is_ok())
        .unwrap_or("/requests")
        .to_owned();
    let mut builder = lambda_http::http::Request::builder().method("POST").uri(path.as_str());
    if let Ok(value) = HeaderValue::from_bytes(content_type) {
        builder = builder.header(header::CONTENT_TYPE, value);
    }
    // API Gateway hands a text body over as text and anything else base64-decoded, as bytes.
    let body = match std::str::from_utf8(body) {
        Ok(text) => Body::Text(text.to_owned()),
        Err(_) => Body::Binary(body.to_vec()),
    };
    (builder.body(body).expect("a request from a checked path and header"), path)
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// A refusal is the caller's fault, has the public shape, and quotes nothing it was sent: every
/// name a message may show is a plain field name, so no `@`, quote or control character.
fn check_refusal(err: &ApiError) {
    assert!(err.status.is_client_error(), "a refusal must be a 4xx: {err:?}");
    assert!(
        !err.message.chars().any(|c| c == '@' || c == '"' || c == '\\' || c.is_control()),
        "the message quotes the input: {:?}",
        err.message
    );
    let response = err.clone().into_response();
    let body: serde_json::Value = serde_json::from_slice(response.body()).expect("an error body is JSON");
    assert_eq!(body["error"]["code"], err.code);
}

fn body_len(request: &Request) -> usize {
    match request.body() {
        Body::Text(text) => text.len(),
        Body::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}

/// The JSON edge as the functions use it: `read_json` into the intake and staff shapes, the
/// domain parsers on what it reads, and the path's request id.
pub fn json_edge(data: &[u8]) {
    let (request, path) = request_from(data);
    match read_json::<Submission>(&request, SUBMISSION_FIELDS) {
        Ok(submission) => {
            assert!(body_len(&request) <= MAX_BODY_BYTES);
            check_email(&submission.email);
            if let Some(recipient) = &submission.recipient {
                check_email(recipient);
            }
            if let Ok(kind) = submission.kind.parse::<RequestKind>() {
                assert_eq!(kind.as_str(), submission.kind);
            }
            if let Ok(region) = Region::parse(&submission.region) {
                assert_eq!(region.as_str(), submission.region.to_ascii_uppercase());
            }
            if let Some(language) = &submission.language {
                let _ = language.parse::<Language>();
            }
            for text in [&submission.name, &submission.details].into_iter().flatten() {
                check_staff_text(text);
            }
            for (field, value) in submission.corrections.iter().flatten() {
                check_staff_text(field);
                check_staff_text(value);
            }
        }
        Err(err) => check_refusal(&err),
    }
    match read_json::<Excessive>(&request, &["reason", "cost_estimate"]) {
        Ok(body) => {
            check_staff_text(&body.reason);
            if let Ok(estimate) =
                CostEstimate::parse(&body.cost_estimate.amount, &body.cost_estimate.currency)
            {
                assert_eq!(CostEstimate::parse(&estimate.amount(), estimate.currency()), Ok(estimate));
            }
        }
        Err(err) => check_refusal(&err),
    }
    if let Err(err) = read_json::<serde_json::Value>(&request, &["token", "confirm"]) {
        check_refusal(&err);
    }
    match path_request_id(&request, "verify") {
        Ok(id) => {
            assert!(path.contains(&id.to_string()), "an id that is not in the path");
            assert_eq!(RequestId::parse(&id.to_string()), Ok(id));
        }
        Err(err) => assert_eq!(err, ApiError::not_found()),
    }
}

fn check_staff_text(text: &str) {
    if let Ok(parsed) = StaffText::parse(text) {
        let kept = parsed.as_str();
        assert!(!kept.is_empty() && kept == kept.trim());
        assert!(!kept.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
        assert_eq!(StaffText::parse(kept), Ok(parsed.clone()));
    }
}

/// An address is accepted only in a form SES can send to, and reads back as itself.
fn check_email(input: &str) {
    let Ok(address) = EmailAddress::parse(input) else { return };
    let sent = address.as_str();
    assert!(sent.is_ascii() && sent.len() <= 254, "not sendable: {} bytes", sent.len());
    assert!(!sent.chars().any(|c| c.is_control() || c.is_whitespace()));
    assert_eq!(address.normalized(), sent.to_ascii_lowercase());
    let (local, domain) = sent.rsplit_once('@').expect("an accepted address has an @");
    assert!(!local.is_empty() && domain.contains('.'));
    assert!(domain.split('.').all(|label| (1..=63).contains(&label.len())));
    let again = EmailAddress::parse(sent).expect("an accepted address parses as sent");
    assert_eq!(again, address);
    assert_eq!(again.subject_key(), address.subject_key());
}

/// The email parser on any text, and through JSON as the edge reads it.
pub fn email(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_email(text);
    let from_json = serde_json::from_value::<EmailAddress>(serde_json::Value::String(text.to_owned()));
    assert_eq!(from_json.ok(), EmailAddress::parse(text).ok());
}

/// The data map loader on any text: a map it loads keeps every rule it checks.
pub fn datamap(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let map = match DataMap::parse(text) {
        Ok(map) => map,
        Err(err) => {
            assert!(!err.entry.is_empty(), "an error names its entry");
            return;
        }
    };
    let sources = map.sources();
    assert!(!sources.is_empty());
    let ids: BTreeSet<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), sources.len(), "ids are unique");
    let providers = sources.iter().filter(|s| s.provides_user_id.is_some()).count();
    assert!(providers <= 1);
    if sources.iter().any(|s| s.find_by() == SubjectAttribute::UserId) {
        assert_eq!(providers, 1, "a source found by user id needs the source that provides it");
    }
    let mut correctable = BTreeSet::new();
    for source in sources {
        assert!(source.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        assert!(!source.disclosure.retention.trim().is_empty() && !source.description.trim().is_empty());
        match &source.location {
            Location::Table { table_key, .. } => {
                if let ErasurePolicy::Anonymise { attributes, .. } = &source.erasure {
                    let find = match source.find_by() {
                        SubjectAttribute::Email => "email",
                        SubjectAttribute::UserId => "user_id",
                    };
                    assert!(attributes.iter().any(|a| a == find) && !attributes.contains(table_key));
                }
            }
            Location::Objects { prefix, .. } => {
                assert!(prefix.ends_with('/'));
                assert_eq!(source.erasure, ErasurePolicy::Delete);
            }
            Location::Webhook { endpoint, .. } => {
                assert!(privacy_shared::datamap::check_endpoint(&source.id, endpoint).is_ok());
                assert_eq!(source.erasure, ErasurePolicy::Delete);
                assert!(source.correctable.is_empty());
            }
            Location::Manual { instructions } => {
                assert!(!instructions.trim().is_empty());
                assert_eq!(source.erasure, ErasurePolicy::Delete);
                assert!(source.correctable.is_empty());
            }
        }
        for attribute in &source.correctable {
            assert!(correctable.insert(attribute.as_str()), "one source per correctable attribute");
        }
    }
    assert_eq!(map.with_name_prefix("").sources(), sources);
}
