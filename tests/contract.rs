//! The handlers against the OpenAPI document: every response a test provokes is documented for
//! its operation and status, and its body validates against the documented schema.

use chrono::Duration;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

use crate::support::*;
use privacy_shared::Clock;
use privacy_shared::domain::{
    Completion, ErasedSource, ErasureReceipt, Event, RequestId, RequestKind, Transition, Triage,
    VerificationToken,
};
use privacy_shared::store::{Change, LiveToken, Secrets, TokenSlot};

fn openapi() -> Value {
    document("openapi.yaml")
}

pub(crate) fn document(name: &str) -> Value {
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
pub(crate) fn assert_documented(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
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

/// Checks that the document's schema `name` accepts `body` (or refuses it) as the handler does,
/// with `format` (email, date-time) asserted.
fn assert_schema_agrees(doc: &Value, name: &str, body: &Value, accepted: bool) {
    let mut root = doc.clone();
    root.as_object_mut().unwrap().insert("$ref".into(), json!(format!("#/components/schemas/{name}")));
    let validator =
        jsonschema::options().should_validate_formats(true).build(&root).expect("schema compiles");
    let verdict = if accepted { "accept" } else { "refuse" };
    assert_eq!(validator.is_valid(body), accepted, "the {name} schema should {verdict} {body}");
}

/// As API Gateway delivers `POST /requests/{id}/recipient`: path parameter set.
fn recipient_request(id: &str, content_type: Option<&str>, body: &str) -> Request {
    http("POST", &format!("/requests/{id}/recipient"), content_type, Body::Text(body.to_owned()))
        .with_path_parameters(HashMap::from([("id".to_owned(), id.to_owned())]))
}

async fn confirm_recipient(verifier: &LocalVerifier, id: &str, token: &str) -> (u16, Value) {
    let request = recipient_request(id, Some("application/json"), &token_body(token));
    let response = verify::handle(verifier, request).await.unwrap();
    (response.status().as_u16(), json_of(&response))
}

/// Submits `body` and verifies it through the real handlers; returns its id.
async fn verified(stack: &Local, body: Value) -> RequestId {
    let (status, response) = submit(&stack.deps(), &body.to_string()).await;
    assert_eq!(status, 202, "{response}");
    let mails = stack.mail_to(body["email"].as_str().unwrap()).await;
    let (id, token) = link_parts(mails.last().expect("a verification email"));
    assert_eq!(verify_with(&stack.verifier(), &id, &token).await.0, 200);
    RequestId::parse(&id).unwrap()
}

/// Stores a recipient confirmation token as `dispatch` does when it mails the second link.
async fn recipient_token(stack: &Local, id: RequestId) -> VerificationToken {
    let token = VerificationToken::generate();
    let live = LiveToken { token_hash: token.hash(), expires_at: stack.clock.now() + Duration::days(7) };
    let now = stack.clock.now();
    assert!(stack.deps().store.issue_token(id, TokenSlot::Recipient, &live, now).await.unwrap());
    token
}

/// Moves a request on as the event functions would (`dispatch`, `erasure`), straight in the store.
async fn system_change(stack: &Local, id: RequestId, transition: Transition) {
    let store = stack.deps().store;
    let record = store.get(id).await.unwrap().unwrap();
    store.transition(&record, Change::system(transition, stack.clock.now())).await.unwrap();
}

#[tokio::test]
async fn every_response_matches_the_openapi_document() {
    let doc = openapi();
    let stack = Local::new();
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

#[tokio::test]
async fn submissions_with_a_recipient_or_corrections_match_the_openapi_document() {
    let doc = openapi();
    let stack = Local::new();
    let deps = stack.deps();
    let address = unique_address("contract-fields");
    let with = |kind: &str, extra: Value| {
        let mut body = json!({"email": address, "kind": kind, "region": "NL"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    let every_correctable: serde_json::Map<String, Value> = privacy_shared::datamap::DataMap::builtin()
        .unwrap()
        .correctable_fields()
        .into_iter()
        .map(|(_, field)| (field.to_owned(), json!("Corrected")))
        .collect();
    for body in [
        with("portability", json!({"recipient": unique_address("contract-third-party")})),
        with(
            "rectification",
            json!({"corrections": {"job_title": "Senior designer", "phone": "+31 20 123"}}),
        ),
        with("rectification", json!({"corrections": every_correctable})),
        with("rectification", json!({"corrections": {"name": "x".repeat(200)}})),
        with("access", json!({"recipient": null, "corrections": null})),
    ] {
        let (status, response) = submit(&deps, &body.to_string()).await;
        assert_eq!((status, response["status"].as_str()), (202, Some("pending_verification")), "{body}");
        assert_documented(&doc, "/requests", "post", status, &response);
        assert_schema_agrees(&doc, "Submission", &body, true);
    }

    let third_party = unique_address("contract-third-party");
    let eleven: serde_json::Map<String, Value> = (0..11).map(|i| (format!("f{i}"), json!("x"))).collect();
    // (body, whether the document's schema can tell it is refused)
    for (body, schema_refuses) in [
        (with("access", json!({"recipient": third_party})), true),
        (with("deletion", json!({"recipient": third_party})), true),
        (with("portability", json!({"recipient": "not an address"})), true),
        (with("portability", json!({"recipient": 5})), true),
        (with("portability", json!({"recipient": "third\nparty@example.com"})), true),
        // The requester's own address: a rule the schema cannot express.
        (with("portability", json!({"recipient": address.to_uppercase()})), false),
        (with("deletion", json!({"corrections": {"job_title": "Designer"}})), true),
        (with("portability", json!({"corrections": {"job_title": "Designer"}})), true),
        (with("rectification", json!({"corrections": {}})), true),
        (with("rectification", json!({"corrections": eleven})), true),
        (with("rectification", json!({"corrections": {"email": "new@example.com"}})), true),
        (with("rectification", json!({"corrections": {"user_id": "u-x"}})), true),
        (with("rectification", json!({"corrections": {"job_title": ""}})), true),
        (with("rectification", json!({"corrections": {"job_title": "x".repeat(201)}})), true),
        (with("rectification", json!({"corrections": {"job_title": 5}})), true),
        (with("rectification", json!({"corrections": ["job_title"]})), true),
        (with("rectification", json!({"corrections": "job_title=Designer"})), true),
        (with("rectification", json!({"corrections": {"job_title": "a\nb"}})), false),
    ] {
        let (status, response) = submit(&deps, &body.to_string()).await;
        assert_eq!((status, response["error"]["code"].as_str()), (422, Some("invalid_field")), "{body}");
        assert_documented(&doc, "/requests", "post", status, &response);
        if schema_refuses {
            assert_schema_agrees(&doc, "Submission", &body, false);
        }
    }
}

#[tokio::test]
async fn opt_outs_answer_completed_at_once_and_a_repeat_the_first_request() {
    let doc = openapi();
    let stack = Local::new();
    let deps = stack.deps();
    for (kind, region) in [("opt_out_of_sale", "US-CA"), ("unsubscribe", "NL")] {
        let address = unique_address("contract-opt-out");
        let (status, first) = submit(&deps, &submission(&address, kind, region)).await;
        assert_eq!((status, first["status"].as_str()), (202, Some("completed")), "{kind}");
        assert_documented(&doc, "/requests", "post", status, &first);
        let (status, repeat) = submit(&deps, &submission(&address.to_uppercase(), kind, region)).await;
        assert_eq!(status, 202, "{kind}");
        assert_eq!(repeat, first, "{kind}: a repeat answers with the first request");
        assert_documented(&doc, "/requests", "post", status, &repeat);
        assert!(stack.mail_to(&address).await.is_empty(), "{kind}: nothing to verify");
    }
}

#[tokio::test]
async fn recipient_confirmation_responses_match_the_openapi_document() {
    let doc = openapi();
    let stack = Local::new();
    let verifier = stack.verifier();
    let path = "/requests/{id}/recipient";
    let body = json!({
        "email": unique_address("contract-portability"),
        "kind": "portability",
        "region": "NL",
        "recipient": unique_address("contract-new-provider"),
    });
    let id = verified(&stack, body).await.to_string();

    // Before the second link was sent, with a wrong token, for an unknown request, for a request
    // without a recipient: one answer.
    let plain = verified(
        &stack,
        json!({"email": unique_address("contract-plain"), "kind": "portability", "region": "NL"}),
    )
    .await
    .to_string();
    for (id, token) in [
        (id.clone(), "A".repeat(43)),
        (RequestId::generate().to_string(), "A".repeat(43)),
        (plain, "A".repeat(43)),
        (id.clone(), "not a token!".to_owned()),
    ] {
        let (status, response) = confirm_recipient(&verifier, &id, &token).await;
        assert_eq!((status, response["error"]["code"].as_str()), (400, Some("verification_failed")));
        assert_documented(&doc, path, "post", status, &response);
    }
    let (status, response) = confirm_recipient(&verifier, "nope", &"A".repeat(43)).await;
    assert_eq!(status, 404);
    assert_documented(&doc, path, "post", status, &response);
    for (content_type, payload, expected) in [
        (Some("application/json"), "{", 400),
        (Some("text/plain"), r#"{"token":"x"}"#, 415),
        (Some("application/json"), "{}", 422),
        (Some("application/json"), r#"{"token":"x","z":1}"#, 422),
        (Some("application/json"), r#"{"token":5}"#, 422),
    ] {
        let response =
            verify::handle(&verifier, recipient_request(&id, content_type, payload)).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{payload}");
        assert_documented(&doc, path, "post", expected, &json_of(&response));
    }
    let response =
        verify::handle(&verifier, http("PUT", &format!("/requests/{id}/recipient"), None, Body::Empty))
            .await
            .unwrap();
    assert_documented(&doc, path, "post", response.status().as_u16(), &json_of(&response));

    let token = recipient_token(&stack, RequestId::parse(&id).unwrap()).await;
    let (status, response) = confirm_recipient(&verifier, &id, token.expose_secret()).await;
    assert_eq!((status, response["status"].as_str()), (200, Some("verified")), "{response}");
    assert_documented(&doc, path, "post", status, &response);
    let (status, response) = confirm_recipient(&verifier, &id, token.expose_secret()).await;
    assert_eq!(status, 400, "single use");
    assert_documented(&doc, path, "post", status, &response);
}

#[test]
fn the_documented_submission_fields_are_exactly_the_accepted_ones() {
    let doc = openapi();
    let schema = &doc["components"]["schemas"]["Submission"];
    let correctable: Vec<&str> = schema["properties"]["corrections"]["propertyNames"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let map = privacy_shared::datamap::DataMap::builtin().unwrap();
    let ours: Vec<&str> = map.correctable_fields().into_iter().map(|(_, field)| field).collect();
    assert_eq!(correctable, ours, "the documented correctable fields are the data map's");
    let form = doc["components"]["schemas"]["RequestForm"]["properties"].as_object().unwrap();
    let on_the_form: Vec<&str> = form.keys().filter_map(|k| k.strip_prefix("correction_")).collect();
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(on_the_form, sorted, "the request form documents a field per correctable field");
    let mut documented: Vec<&str> =
        schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut accepted = intake::FIELDS.to_vec();
    documented.sort();
    accepted.sort();
    assert_eq!(documented, accepted);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["kind"]["$ref"], "#/components/schemas/Kind");
    let kinds: Vec<&str> = doc["components"]["schemas"]["Kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ours: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, ours);
}

#[tokio::test]
async fn every_staff_api_response_matches_the_staff_openapi_document() {
    let doc = document("staff-openapi.yaml");
    let stack = Local::new();
    let api = stack.staff_api();
    let gdpr = stack.verified_request(&unique_address("contract-staff"), "rectification", "NL").await;
    let other = stack.verified_request(&unique_address("contract-staff2"), "objection", "US-CA").await;
    let third = stack.verified_request(&unique_address("contract-staff3"), "restriction", "DE").await;
    let access = stack.verified_request(&unique_address("contract-staff4"), "access", "NL").await;
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

#[tokio::test]
async fn a_request_shows_its_triage_recipient_corrections_referral_and_receipt_as_documented() {
    let doc = document("staff-openapi.yaml");
    let stack = Local::new();
    let api = stack.staff_api();
    let show = |id: RequestId| {
        let api = &api;
        let doc = &doc;
        async move {
            let (status, body) = staff(api, "GET", &format!("/staff/requests/{id}"), None).await;
            assert_eq!(status, 200, "{body}");
            assert_documented(doc, "/staff/requests/{id}", "get", status, &body);
            body
        }
    };

    // A portability request to a third party: triaged by dispatch, the recipient confirmed.
    let recipient = unique_address("contract-new-provider");
    let portability = verified(
        &stack,
        json!({"email": unique_address("contract-portability"), "kind": "portability", "region": "NL", "recipient": recipient}),
    )
    .await;
    let before = show(portability).await;
    assert_eq!(before["request"]["recipient"], json!(recipient));
    assert_eq!(before["request"]["recipient_confirmed_at"], Value::Null);
    assert_eq!(before["request"]["triage"], Value::Null);
    let triage = Triage { has_account: true, child: false };
    system_change(&stack, portability, Transition::Triage(triage)).await;
    let token = recipient_token(&stack, portability).await;
    let confirmed =
        confirm_recipient(&stack.verifier(), &portability.to_string(), token.expose_secret()).await;
    assert_eq!(confirmed.0, 200, "{}", confirmed.1);
    let after = show(portability).await;
    assert_eq!(after["request"]["triage"], json!({"has_account": true, "child": false}));
    assert!(after["request"]["recipient_confirmed_at"].is_string(), "{after}");
    let events: Vec<&str> =
        after["audit"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(events, ["submitted", "verified", "triaged", "recipient_confirmed"]);

    // A self-service rectification.
    let corrected = verified(
        &stack,
        json!({"email": unique_address("contract-rectify"), "kind": "rectification", "region": "NL", "corrections": {"job_title": "Lead designer"}}),
    )
    .await;
    assert_eq!(show(corrected).await["request"]["corrections"], json!({"job_title": "Lead designer"}));

    // An erasure's receipt: one source with a reason for what was kept, one without.
    let erased = verified(
        &stack,
        json!({"email": unique_address("contract-erase"), "kind": "deletion", "region": "NL"}),
    )
    .await;
    system_change(&stack, erased, Transition::StartWork).await;
    let receipt = ErasureReceipt {
        sources: vec![
            ErasedSource {
                source: "accounts".into(),
                description: "Accounts".into(),
                categories: vec!["contact details".into()],
                deleted: 1,
                anonymised: 0,
                kept_because: None,
            },
            ErasedSource {
                source: "call_detail_records".into(),
                description: "Call detail records".into(),
                categories: vec!["usage".into(), "billing".into()],
                deleted: 0,
                anonymised: 3,
                kept_because: Some("Kept 25 months for billing disputes.".into()),
            },
        ],
        exports_deleted: 1,
        processors_instructed: vec!["service_providers".into()],
        recipients_told: vec!["Nimbus Hosting B.V. (hosting and storage)".into()],
        wording: Some(privacy_shared::domain::ReceiptWording {
            language: privacy_shared::domain::Language::Nl,
            sources: vec![privacy_shared::domain::SourceWording {
                source: "call_detail_records".into(),
                label: "Gesprekken".into(),
                categories: vec!["Gespreksgegevens".into()],
                unit: privacy_shared::domain::ErasedUnit::Record,
                kept_reason: Some("Bewaard voor betwiste facturen.".into()),
                legal_basis: Some("Artikel 17, derde lid, onder e, AVG.".into()),
            }],
            processors: vec!["Dienstverleners die in onze opdracht werken".into()],
            recipients: vec!["Nimbus Hosting B.V. (hosting en opslag)".into()],
        }),
    };
    system_change(&stack, erased, Transition::Complete(Completion::Erased(receipt))).await;
    let shown = show(erased).await;
    assert_eq!(shown["request"]["receipt"]["sources"][1]["anonymised"], 3, "{shown}");
    assert!(shown["request"]["receipt"]["sources"][0].get("kept_because").is_none());

    // A referral to an enterprise account's administrator.
    let referred = verified(
        &stack,
        json!({"email": unique_address("contract-refer"), "kind": "access", "region": "GB"}),
    )
    .await;
    let refer = Transition::Refer {
        customer: Some("Acme Corp".into()),
        contact: Some("it-admin@acme.example".into()),
    };
    system_change(&stack, referred, refer).await;
    let shown = show(referred).await;
    assert_eq!(shown["request"]["referral_contact"], "it-admin@acme.example");
    assert_eq!(shown["request"]["referral_customer"], "Acme Corp");

    // An opt-out: completed at once, never verified.
    let (_, opt_out) =
        submit(&stack.deps(), &submission(&unique_address("contract-opt-out"), "opt_out_of_sale", "US-CA"))
            .await;
    let shown = show(RequestId::parse(opt_out["request_id"].as_str().unwrap()).unwrap()).await;
    assert_eq!(shown["request"]["status"], "completed");
}

#[tokio::test]
async fn the_suppression_check_matches_the_staff_openapi_document() {
    let doc = document("staff-openapi.yaml");
    let stack = Local::new();
    let api = stack.staff_api();
    let path = "/staff/suppressions/check";
    let both = unique_address("contract-suppressed");
    let marketing_only = unique_address("contract-unsubscribed");
    for (address, kind, region) in [
        (&both, "unsubscribe", "NL"),
        (&both, "opt_out_of_sale", "US-CA"),
        (&marketing_only, "unsubscribe", "DE"),
    ] {
        assert_eq!(submit(&stack.deps(), &submission(address, kind, region)).await.0, 202);
    }
    let since = json!(stack.clock.now());
    for (address, marketing, sale) in [
        (both.to_uppercase(), true, true),
        (marketing_only.clone(), true, false),
        (unique_address("contract-clean"), false, false),
    ] {
        let (status, body) = staff(&api, "POST", path, Some(json!({"email": address}))).await;
        assert_eq!(status, 200, "{body}");
        assert_documented(&doc, path, "post", status, &body);
        let expect =
            |on: bool| json!({"suppressed": on, "since": if on { since.clone() } else { Value::Null }});
        assert_eq!(body, json!({"marketing": expect(marketing), "sale": expect(sale)}), "{address}");
        assert!(!body.to_string().to_lowercase().contains(&address.to_lowercase()), "no echo");
    }

    for (body, expected) in [
        (json!({"email": "not-an-address"}), (422, "invalid_field")),
        (json!({"email": ""}), (422, "invalid_field")),
        (json!({"email": 5}), (422, "invalid_field")),
        (json!({}), (422, "missing_field")),
        (json!({"email": both, "list": "sale"}), (422, "unknown_field")),
        (json!("{"), (400, "malformed_json")),
        (json!([both]), (400, "malformed_json")),
    ] {
        let (status, response) = staff(&api, "POST", path, Some(body.clone())).await;
        assert_eq!((status, response["error"]["code"].as_str()), (expected.0, Some(expected.1)), "{body}");
        assert_documented(&doc, path, "post", status, &response);
    }
    let mut text = staff_call("POST", path, Some(&json!({"email": both})), Some(STAFF_ARN));
    text.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    let response = admin::handle(&api, text).await.unwrap();
    assert_eq!(response.status(), 415);
    assert_documented(&doc, path, "post", 415, &json_of(&response));
    let (status, response) = staff(&api, "GET", path, None).await;
    assert_eq!(status, 405);
    assert_documented(&doc, path, "post", status, &response);
    let unsigned =
        admin::handle(&api, staff_call("POST", path, Some(&json!({"email": both})), None)).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_documented(&doc, path, "post", 401, &json_of(&unsigned));
}

#[test]
fn the_documented_statuses_and_audit_events_are_exactly_ours() {
    let names = |value: &Value| -> Vec<String> {
        value["enum"].as_array().unwrap().iter().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let statuses: Vec<String> =
        privacy_shared::domain::Status::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let events: Vec<String> = Event::ALL.iter().map(|e| e.as_str().to_owned()).collect();
    let staff = document("staff-openapi.yaml");
    let schemas = &staff["components"]["schemas"];
    assert_eq!(names(&schemas["Status"]), statuses);
    assert_eq!(names(&schemas["AuditEntry"]["properties"]["event"]), events);
    assert_eq!(names(&openapi()["components"]["schemas"]["RequestStatus"]["properties"]["status"]), statuses);
}
