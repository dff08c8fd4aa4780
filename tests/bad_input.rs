//! Malformed requests: each gets a 4xx with the JSON error shape, and nothing is written or sent.

use lambda_http::Body;
use serde_json::{Value, json};

use crate::support::*;

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Body,
    status: u16,
    code: &'static str,
}

fn json_case(name: &'static str, body: Value, status: u16, code: &'static str) -> Case {
    Case { name, content_type: Some("application/json"), body: Body::Text(body.to_string()), status, code }
}

fn raw_case(
    name: &'static str,
    content_type: Option<&'static str>,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case { name, content_type, body: Body::Text(body.to_owned()), status, code }
}

fn intake_cases(address: &str) -> Vec<Case> {
    let valid = |extra: Value| {
        let mut body = json!({"email": address, "kind": "access", "region": "NL"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let ok = valid(json!({})).to_string();
    vec![
        raw_case("no content type", None, &ok, 415, "unsupported_media_type"),
        raw_case("text/plain", Some("text/plain"), &ok, 415, "unsupported_media_type"),
        raw_case(
            "form encoded",
            Some("application/x-www-form-urlencoded"),
            "email=a%40b.nl&kind=access",
            415,
            "unsupported_media_type",
        ),
        raw_case(
            "json in another charset",
            Some("application/json; charset=iso-8859-1"),
            &ok,
            415,
            "unsupported_media_type",
        ),
        raw_case(
            "body over 16 KiB",
            Some("application/json"),
            &valid(json!({"details": "x".repeat(17 * 1024)})).to_string(),
            413,
            "payload_too_large",
        ),
        raw_case("empty body", Some("application/json"), "", 400, "malformed_json"),
        raw_case(
            "truncated json",
            Some("application/json"),
            r#"{"email": "a@b.nl", "kind": "acc"#,
            400,
            "malformed_json",
        ),
        raw_case("json array", Some("application/json"), "[]", 400, "malformed_json"),
        raw_case("json null", Some("application/json"), "null", 400, "malformed_json"),
        raw_case("trailing garbage", Some("application/json"), &format!("{ok} x"), 400, "malformed_json"),
        Case {
            name: "invalid utf-8",
            content_type: Some("application/json"),
            body: Body::Binary(
                b"{\"email\": \"\xff\xfe@b.nl\", \"kind\": \"access\", \"region\": \"NL\"}".to_vec(),
            ),
            status: 400,
            code: "malformed_json",
        },
        json_case("unknown field", valid(json!({"admin": true})), 422, "unknown_field"),
        json_case("missing email", json!({"kind": "access", "region": "NL"}), 422, "missing_field"),
        json_case("missing kind", json!({"email": address, "region": "NL"}), 422, "missing_field"),
        json_case("email not a string", valid(json!({"email": 42})), 422, "invalid_field"),
        json_case("kind null", valid(json!({"kind": null})), 422, "invalid_field"),
        json_case("name is an object", valid(json!({"name": {"first": "A"}})), 422, "invalid_field"),
        json_case("not an email address", valid(json!({"email": "not-an-address"})), 422, "invalid_field"),
        json_case(
            "email with header injection",
            valid(json!({"email": format!("{address}\r\nBcc: victim@example.org")})),
            422,
            "invalid_field",
        ),
        json_case(
            "email too long",
            valid(json!({"email": format!("{}@example.com", "a".repeat(250))})),
            422,
            "invalid_field",
        ),
        json_case(
            "email with a display name",
            valid(json!({"email": format!("Alice <{address}>")})),
            422,
            "invalid_field",
        ),
        json_case("name with CR LF", valid(json!({"name": "Alice\r\nSmith"})), 422, "invalid_field"),
        json_case(
            "details with a line feed",
            valid(json!({"details": "line one\nline two"})),
            422,
            "invalid_field",
        ),
        json_case("name with NUL", valid(json!({"name": "Al\u{0}ice"})), 422, "invalid_field"),
        json_case("kind with CR", valid(json!({"kind": "access\r"})), 422, "invalid_field"),
        json_case("unknown kind", valid(json!({"kind": "forget_me"})), 422, "invalid_field"),
        json_case("kind in another case", valid(json!({"kind": "Access"})), 422, "invalid_field"),
        json_case("unknown country", valid(json!({"region": "XX"})), 422, "invalid_field"),
        json_case("state other than California", valid(json!({"region": "US-NY"})), 422, "invalid_field"),
        json_case("alpha-3 country", valid(json!({"region": "NLD"})), 422, "invalid_field"),
        json_case("unsupported language", valid(json!({"language": "fr"})), 422, "invalid_field"),
        json_case("name too long", valid(json!({"name": "n".repeat(201)})), 422, "invalid_field"),
        json_case("details too long", valid(json!({"details": "d".repeat(5001)})), 422, "invalid_field"),
    ]
}

fn assert_error_shape(case: &str, response: &lambda_http::Response<Body>, status: u16, code: &str) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    assert_eq!(response.headers()["content-type"], "application/json", "{case}");
    let body = json_of(response);
    let error = body["error"].as_object().unwrap_or_else(|| panic!("{case}: no error object in {body}"));
    assert_eq!(error.len(), 2, "{case}: only code and message");
    assert_eq!(error["code"], code, "{case}: {body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}");
}

#[tokio::test]
async fn every_malformed_submission_gets_a_json_4xx_and_nothing_is_written_or_sent() {
    let stack = Local::new();
    let deps = stack.deps();
    let address = unique_address("bad");
    let cases = intake_cases(&address);
    assert!(cases.len() >= 20);
    for case in cases {
        let request = http("POST", "/requests", case.content_type, case.body);
        let response = intake::handle(&deps, request).await.unwrap();
        assert_error_shape(case.name, &response, case.status, case.code);
        let message = json_of(&response)["error"]["message"].as_str().unwrap().to_owned();
        assert!(!message.contains(&address), "{}: the message quotes the address", case.name);
        assert!(stack.store.is_empty(), "{}: something was written", case.name);
    }
    assert!(stack.mail_to(&address).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn malformed_verifications_get_a_json_4xx_and_change_nothing() {
    let stack = Local::new();
    let deps = stack.deps();
    let verifier = stack.verifier();
    let address = unique_address("badverify");
    submit(&deps, &submission(&address, "access", "NL")).await;
    let (id, token) = link_parts(&stack.mail_to(&address).await[0]);
    let before = stack.store.fingerprint();

    let path = format!("/requests/{id}/verify");
    let cases: Vec<(&str, lambda_http::Request, u16, &str)> = vec![
        (
            "wrong content type",
            http("POST", &path, Some("text/plain"), Body::Text(token_body(&token))),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown field",
            verify_request(&id, &json!({"token": token, "extra": 1}).to_string()),
            422,
            "unknown_field",
        ),
        ("token not a string", verify_request(&id, r#"{"token": 12}"#), 422, "invalid_field"),
        ("no token", verify_request(&id, "{}"), 422, "missing_field"),
        ("not json", verify_request(&id, "token=abc"), 400, "malformed_json"),
        (
            "oversized",
            verify_request(&id, &json!({"token": "t".repeat(20_000)}).to_string()),
            413,
            "payload_too_large",
        ),
        ("request id not a uuid", verify_request("../../etc", &token_body(&token)), 404, "not_found"),
        ("request id upper case", verify_request(&id.to_uppercase(), &token_body(&token)), 404, "not_found"),
        ("token of the wrong shape", verify_request(&id, &token_body("short")), 400, "verification_failed"),
    ];
    for (name, request, status, code) in cases {
        let response = verify::handle(&verifier, request).await.unwrap();
        assert_error_shape(name, &response, status, code);
    }
    assert_eq!(stack.store.fingerprint(), before, "no attempt counted, nothing changed");
    // And the right token still works afterwards.
    assert_eq!(verify_with(&verifier, &id, &token).await.0, 200);
}

/// An address SES could never deliver to: refused at the edge for every kind, so no record is
/// stored that dispatch would then fail to acknowledge forever.
#[tokio::test]
async fn an_address_with_a_non_ascii_local_part_is_refused_for_every_kind() {
    let stack = Local::new();
    let deps = stack.deps();
    for (kind, region) in [("access", "NL"), ("opt_out_of_sale", "US-CA"), ("unsubscribe", "NL")] {
        let body = json!({"email": "jösé@example.com", "kind": kind, "region": region});
        let response = intake::handle(&deps, post_json("/requests", &body.to_string())).await.unwrap();
        assert_error_shape(kind, &response, 422, "invalid_field");
        assert!(!json_of(&response).to_string().contains("jösé"), "{kind}: the message quotes the address");
    }
    let recipient = json!({
        "email": unique_address("sender"), "kind": "portability", "region": "NL",
        "recipient": "jösé@example.org",
    });
    let response = intake::handle(&deps, post_json("/requests", &recipient.to_string())).await.unwrap();
    assert_error_shape("third-party recipient", &response, 422, "invalid_field");
    assert!(stack.store.is_empty(), "nothing was written");
    assert!(stack.mailer.sent().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn an_internationalised_domain_is_accepted_and_mail_goes_to_its_punycode_form() {
    let stack = Local::new();
    let deps = stack.deps();
    let local = format!("idn+{}", uuid::Uuid::new_v4().simple());
    let typed = format!("{local}@bücher.example");
    let sendable = format!("{local}@xn--bcher-kva.example");

    let (status, _) = submit(&deps, &submission(&typed, "access", "NL")).await;
    assert_eq!(status, 202);
    let mails = stack.mail_to(&sendable).await;
    assert_eq!(mails.len(), 1, "the verification email goes to the punycode form");
    assert!(stack.mailer.sent().iter().all(|m| m.to.as_str().is_ascii()), "no address SES would refuse");

    let (status, body) = submit(&deps, &submission(&typed, "opt_out_of_sale", "US-CA")).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("completed")), "{body}");
    let id = privacy_shared::domain::RequestId::parse(body["request_id"].as_str().unwrap()).unwrap();
    let record = deps.store.get(id).await.unwrap().expect("the opt-out is recorded");
    assert_eq!(record.email.as_str(), sendable, "the acknowledgement will go to the punycode form");
    let email = privacy_shared::domain::EmailAddress::parse(&sendable).unwrap();
    let list = privacy_shared::store::SuppressionList::Sale;
    assert!(privacy_shared::store::is_suppressed(&deps.store, &email, list).await.unwrap());
}

/// Two parsers that disagree on which copy of a key wins are an attack surface (a gateway or WAF
/// reads the first, serde the last): a body with a key twice is refused outright.
#[tokio::test]
async fn a_body_with_a_duplicate_key_is_refused_on_the_public_and_the_staff_api() {
    let stack = Local::new();
    let deps = stack.deps();
    let address = unique_address("dup");
    for body in [
        format!(r#"{{"email":"{address}","kind":"access","region":"NL","email":"victim@example.org"}}"#),
        format!(r#"{{"email":"{address}","kind":"access","region":"NL","kin\u0064":"deletion"}}"#),
        format!(
            r#"{{"email":"{address}","kind":"rectification","region":"NL","corrections":{{"name":"A","name":"B"}}}}"#
        ),
    ] {
        let response = intake::handle(&deps, post_json("/requests", &body)).await.unwrap();
        assert_error_shape(&body, &response, 400, "duplicate_key");
        assert!(!json_of(&response).to_string().contains(&address), "the message quotes the address");
    }
    assert!(stack.store.is_empty(), "nothing was written");
    assert!(stack.mailer.sent().is_empty(), "nothing was sent");

    let api = stack.staff_api();
    let mut request = staff_call("POST", "/staff/suppressions/check", None, Some(STAFF_ARN));
    *request.body_mut() = Body::Text(r#"{"email":"a@example.com","email":"b@example.com"}"#.to_owned());
    let response = admin::handle(&api, request).await.unwrap();
    assert_error_shape("staff suppression check", &response, 400, "duplicate_key");
}
