//! The handlers against the OpenAPI document: every response a test provokes is documented for
//! its operation and status, and its body validates against the documented schema.

use lambda_http::Body;
use serde_json::{Value, json};
use std::path::Path;

use integration_tests::*;

fn openapi() -> Value {
    document("openapi.yaml")
}

fn document(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api").join(name);
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => resolve(doc, doc.pointer(pointer.trim_start_matches('#')).expect("ref resolves")),
        None => value,
    }
}

/// Validates `body` against the JSON schema documented for `path`/`method`/`status`.
fn assert_documented(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][path][method];
    let response = operation["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {path} does not document {status}"));
    let schema = resolve(doc, response)["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status}: the body schema is a named component"))
        .to_owned();
    // Validated in the context of the whole document, so the schema's own $refs resolve.
    let mut root = doc.clone();
    root.as_object_mut().unwrap().insert("$ref".into(), json!(schema));
    let validator = jsonschema::validator_for(&root).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {body} does not match: {errors:?}");
}

#[tokio::test]
async fn every_response_matches_the_openapi_document() {
    let doc = openapi();
    let stack = Stack::new().await;
    let deps = stack.deps();
    let verifier = stack.verifier();
    let address = unique_address("contract");

    let (status, body) = submit(&deps, &submission(&address, "access", "US-CA")).await;
    assert_documented(&doc, "/requests", "post", status, &body);
    for (content_type, payload) in [
        (Some("application/json"), "{"),
        (Some("text/plain"), "{}"),
        (Some("application/json"), r#"{"email":"x"}"#),
        (Some("application/json"), r#"{"email":"x","kind":"access","region":"NL","z":1}"#),
        (Some("application/json"), r#"{"email":"not-an-email","kind":"access","region":"NL"}"#),
    ] {
        let response =
            intake::handle(&deps, http("POST", "/requests", content_type, Body::Text(payload.into())))
                .await
                .unwrap();
        assert_documented(&doc, "/requests", "post", response.status().as_u16(), &json_of(&response));
    }
    let response = intake::handle(&deps, http("GET", "/requests", None, Body::Empty)).await.unwrap();
    assert_documented(&doc, "/requests", "post", response.status().as_u16(), &json_of(&response));

    let (id, token) = link_parts(&stack.mail_to(&address).await[0]);
    let (status, body) = verify_with(&verifier, &id, "x".repeat(43).as_str()).await;
    assert_documented(&doc, "/requests/{id}/verify", "post", status, &body);
    let (status, body) = verify_with(&verifier, &id, &token).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "/requests/{id}/verify", "post", status, &body);
    let response = verify::handle(&verifier, verify_request("nope", &token_body(&token))).await.unwrap();
    assert_documented(&doc, "/requests/{id}/verify", "post", response.status().as_u16(), &json_of(&response));
}

#[test]
fn the_documented_submission_fields_are_exactly_the_accepted_ones() {
    let doc = openapi();
    let schema = &doc["components"]["schemas"]["Submission"];
    let mut documented: Vec<&str> =
        schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut accepted = intake::FIELDS.to_vec();
    documented.sort();
    accepted.sort();
    assert_eq!(documented, accepted);
    assert_eq!(schema["additionalProperties"], false);
    let kinds: Vec<&str> =
        schema["properties"]["kind"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let ours: Vec<&str> = privacy_shared::domain::RequestKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, ours);
}

#[tokio::test]
async fn every_staff_api_response_matches_the_staff_openapi_document() {
    let doc = document("staff-openapi.yaml");
    let stack = Stack::new().await;
    let api = staff_api(&stack);
    let gdpr = verified_request(&stack, &unique_address("contract-staff"), "rectification", "NL").await;
    let other = verified_request(&stack, &unique_address("contract-staff2"), "objection", "US-CA").await;
    let third = verified_request(&stack, &unique_address("contract-staff3"), "restriction", "DE").await;
    let access = verified_request(&stack, &unique_address("contract-staff4"), "access", "NL").await;
    submit(&stack.deps(), &submission(&unique_address("contract-pending"), "deletion", "NL")).await;

    let calls: Vec<(&str, String, &str, Option<Value>)> = vec![
        ("get", "/staff/requests".into(), "/staff/requests", None),
        ("get", "/staff/requests?status=verified&limit=1".into(), "/staff/requests", None),
        ("get", "/staff/requests?limit=1000".into(), "/staff/requests", None),
        ("get", format!("/staff/requests/{gdpr}"), "/staff/requests/{id}", None),
        (
            "get",
            format!("/staff/requests/{}", privacy_shared::domain::RequestId::generate()),
            "/staff/requests/{id}",
            None,
        ),
        (
            "post",
            format!("/staff/requests/{gdpr}/extend"),
            "/staff/requests/{id}/extend",
            Some(json!({"until": "2027-01-30", "reason": "Three systems to search."})),
        ),
        (
            "post",
            format!("/staff/requests/{gdpr}/extend"),
            "/staff/requests/{id}/extend",
            Some(json!({"until": "2027-02-01", "reason": "Again."})),
        ),
        (
            "post",
            format!("/staff/requests/{gdpr}/extend"),
            "/staff/requests/{id}/extend",
            Some(json!({"until": 5})),
        ),
        ("get", format!("/staff/requests/{gdpr}"), "/staff/requests/{id}", None),
        (
            "post",
            format!("/staff/requests/{other}/deny"),
            "/staff/requests/{id}/deny",
            Some(json!({"reason": "No."})),
        ),
        (
            "post",
            format!("/staff/requests/{other}/deny"),
            "/staff/requests/{id}/deny",
            Some(json!({"reason": "No."})),
        ),
        (
            "post",
            format!("/staff/requests/{third}/excessive"),
            "/staff/requests/{id}/excessive",
            Some(json!({"reason": "Sixth time.", "cost_estimate": {"amount": "30.00", "currency": "EUR"}})),
        ),
        (
            "post",
            format!("/staff/requests/{gdpr}/complete"),
            "/staff/requests/{id}/complete",
            Some(json!({"note": "Done."})),
        ),
        (
            "post",
            format!("/staff/requests/{access}/complete"),
            "/staff/requests/{id}/complete",
            Some(json!({})),
        ),
    ];
    for (method, path, template, body) in calls {
        let (status, response) = staff(&api, &method.to_uppercase(), &path, body).await;
        assert_documented(&doc, template, method, status, &response);
    }
    let unsigned = admin::handle(&api, staff_call("GET", "/staff/requests", None, None)).await.unwrap();
    assert_documented(&doc, "/staff/requests", "get", unsigned.status().as_u16(), &json_of(&unsigned));
}
