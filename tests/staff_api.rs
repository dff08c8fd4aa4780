//! The staff API through the real handler, with requests shaped as API Gateway delivers them:
//! only signed callers get in, and every action is one audited transition whose notice reaches
//! the requester through the stream and the dispatcher.

use chrono::{TimeZone, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use devstack::stream::StreamReader;
use privacy_shared::domain::{Actor, Event, RequestId, Status};

/// Delivers whatever the stream holds to the real dispatcher (twice, as Lambda may).
async fn dispatch_stream(stack: &Stack, stream: &mut StreamReader) {
    let records = stream.poll().await.unwrap();
    let dispatcher =
        dispatcher(stack, "http://127.0.0.1:1/unused-queue.fifo", &unique_address("staff")).await;
    for _ in 0..2 {
        let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let response =
            dispatch::handle(&dispatcher, LambdaEvent::new(event, Context::default())).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
}

async fn version_of(stack: &Stack, id: RequestId) -> u32 {
    stack.deps().store.get(id).await.unwrap().unwrap().version
}

#[tokio::test]
async fn an_unsigned_call_is_refused_and_changes_nothing() {
    let stack = Stack::new().await;
    let id = verified_request(&stack, &unique_address("unsigned"), "rectification", "NL").await;
    let api = staff_api(&stack);
    let deny = json!({"reason": "no"});
    for (method, path, body) in [
        ("GET", "/staff/requests".to_owned(), None),
        ("GET", format!("/staff/requests/{id}"), None),
        ("POST", format!("/staff/requests/{id}/deny"), Some(&deny)),
        ("GET", "/staff/requests/not-even-an-id".to_owned(), None),
    ] {
        let response = admin::handle(&api, staff_call(method, &path, body, None)).await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{method} {path}");
        assert_eq!(json_of(&response)["error"]["code"], "unauthenticated");
    }
    assert_eq!(version_of(&stack, id).await, 2, "nothing changed");
}

#[tokio::test]
async fn the_local_key_opens_the_api_only_where_it_is_configured() {
    let stack = Stack::new().await;
    let key = "local-key-0123456789abcdefghij";
    let env = stack.env(&[
        ("STAFF_LOCAL_KEY", key.to_owned()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000".to_owned()),
    ]);
    let settings = privacy_shared::config::AdminSettings::load(&env).unwrap();
    let local = admin::Admin::with_sdk(&stack.sdk, settings, stack.clock.clone());
    let with_key = |key: &str| {
        let mut request = staff_call("GET", "/staff/requests", None, None);
        request.headers_mut().insert(admin::LOCAL_KEY_HEADER, key.parse().unwrap());
        request
    };
    assert_eq!(admin::handle(&local, with_key(key)).await.unwrap().status().as_u16(), 200);
    assert_eq!(
        admin::handle(&local, with_key("local-key-0123456789abcdefghiX")).await.unwrap().status().as_u16(),
        401
    );
    let deployed = staff_api(&stack);
    assert_eq!(admin::handle(&deployed, with_key(key)).await.unwrap().status().as_u16(), 401, "IAM only");
}

#[tokio::test]
async fn staff_list_open_requests_by_status_and_due_date_page_by_page() {
    let stack = Stack::new().await;
    let ccpa = verified_request(&stack, &unique_address("list-ca"), "deletion", "US-CA").await; // 12 January
    let nl = verified_request(&stack, &unique_address("list-nl"), "deletion", "NL").await; // 28 December
    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let de = verified_request(&stack, &unique_address("list-de"), "objection", "DE").await; // 4 January
    let (_, pending) = submit(&stack.deps(), &submission(&unique_address("list-p"), "access", "NL")).await;
    let api = staff_api(&stack);

    let (status, first) = staff(&api, "GET", "/staff/requests?status=verified&limit=2", None).await;
    assert_eq!(status, 200, "{first}");
    let ids = |page: &Value| -> Vec<String> {
        page["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), vec![nl.to_string(), de.to_string()], "by due date");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) =
        staff(&api, "GET", &format!("/staff/requests?status=verified&limit=2&cursor={cursor}"), None).await;
    assert_eq!(ids(&second), vec![ccpa.to_string()]);
    assert!(second["next_cursor"].is_null());

    let (_, due_soon) =
        staff(&api, "GET", "/staff/requests?status=verified&due_before=2027-01-05", None).await;
    assert_eq!(ids(&due_soon), vec![nl.to_string(), de.to_string()]);

    // Without a status a page fills from verified, then in progress, then pending requests.
    let pending_id = pending["request_id"].as_str().unwrap().to_owned();
    let (_, all) = staff(&api, "GET", "/staff/requests?limit=3", None).await;
    assert_eq!(ids(&all), vec![nl.to_string(), de.to_string(), ccpa.to_string()]);
    let cursor = all["next_cursor"].as_str().expect("more follow");
    let (_, rest) = staff(&api, "GET", &format!("/staff/requests?cursor={cursor}"), None).await;
    assert_eq!(ids(&rest), vec![pending_id.clone()]);
    assert_eq!(rest["requests"][0]["status"], "pending_verification");
    assert!(rest["next_cursor"].is_null());
    let (_, everything) = staff(&api, "GET", "/staff/requests", None).await;
    assert_eq!(ids(&everything), vec![nl.to_string(), de.to_string(), ccpa.to_string(), pending_id]);
    let text = all.to_string() + &first.to_string();
    assert!(!text.contains("list-") && !text.contains("@"), "the list holds no personal data: {text}");

    for bad in ["status=completed", "limit=0", "limit=101", "due_before=tomorrow", "cursor=abc", "sort=due"] {
        let (status, body) = staff(&api, "GET", &format!("/staff/requests?{bad}"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{bad}");
    }
}

#[tokio::test]
async fn show_returns_the_request_with_its_audit_trail() {
    let stack = Stack::new().await;
    let address = unique_address("show");
    let id = verified_request(&stack, &address, "rectification", "NL").await;
    let (status, body) = staff(&staff_api(&stack), "GET", &format!("/staff/requests/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["request"]["email"], address.as_str());
    assert_eq!(body["request"]["status"], "verified");
    assert_eq!(body["request"]["due_on"], "2026-12-28");
    let events: Vec<&str> =
        body["audit"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["submitted", "verified"]);
    let (status, body) =
        staff(&staff_api(&stack), "GET", &format!("/staff/requests/{}", RequestId::generate()), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn an_extension_moves_the_due_date_once_and_the_requester_is_told_why_and_until_when() {
    let stack = Stack::new().await;
    let address = unique_address("extend");
    let id = verified_request(&stack, &address, "rectification", "GB").await; // due 28 December
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    stream.poll().await.unwrap();
    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 20, 10, 0, 0).unwrap());
    let api = staff_api(&stack);

    let reason = "Your account spans three of our services; collecting the records takes longer.";
    let (status, body) = staff(
        &api,
        "POST",
        &format!("/staff/requests/{id}/extend"),
        Some(json!({"until": "2027-02-26", "reason": reason})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["due_on"], "2027-02-26");
    assert_eq!(body["request"]["original_due_on"], "2026-12-28");
    assert_eq!(body["request"]["status"], "verified", "an extension is not a change of status");

    dispatch_stream(&stack, &mut stream).await;
    let mails = stack.mail_to(&address).await;
    assert_eq!(mails.len(), 2, "verification and one extension notice");
    let notice = &mails[1];
    assert_eq!(notice.subject, "We need more time for your privacy request");
    assert!(notice.body.contains(reason), "{}", notice.body);
    assert!(notice.body.contains("26 February 2027") && notice.body.contains("28 December 2026"));
    assert!(notice.body.contains("Information Commissioner"), "where to complain");

    let trail = stack.deps().store.audit_trail(id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!((last.event, last.to), (Event::Extended, Status::Verified));
    assert_eq!(last.actor, Actor::Staff(STAFF_ARN.to_owned()));
    assert_eq!(last.reason.as_deref(), Some(reason));

    let (status, body) = staff(
        &api,
        "POST",
        &format!("/staff/requests/{id}/extend"),
        Some(json!({"until": "2027-02-27", "reason": "more"})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("already_extended")));
}

#[tokio::test]
async fn extensions_outside_the_rules_are_refused_with_errors_that_name_the_rule() {
    let stack = Stack::new().await;
    let gdpr = verified_request(&stack, &unique_address("rules-nl"), "objection", "NL").await; // 28 December
    let ccpa = verified_request(&stack, &unique_address("rules-ca"), "deletion", "US-CA").await; // 12 January
    let api = staff_api(&stack);
    let extend = |id: RequestId, body: Value| {
        let api = &api;
        async move { staff(api, "POST", &format!("/staff/requests/{id}/extend"), Some(body)).await }
    };
    let cases = [
        (gdpr, json!({"until": "2027-01-15"}), 422, "missing_field"),
        (gdpr, json!({"until": "2027-01-15", "reason": "   "}), 422, "reason_required"),
        (gdpr, json!({"until": "2026-12-28", "reason": "r"}), 422, "extension_not_later"),
        // Two months after 28 December is Sunday 28 February, rolled to Monday 1 March.
        (gdpr, json!({"until": "2027-03-02", "reason": "r"}), 422, "extension_too_long"),
        // CCPA: 45 more days, 90 in all.
        (ccpa, json!({"until": "2027-02-27", "reason": "r"}), 422, "extension_too_long"),
        (gdpr, json!({"until": "next month", "reason": "r"}), 422, "invalid_field"),
        (gdpr, json!({"until": "2027-01-15", "reason": "r", "extra": 1}), 422, "unknown_field"),
    ];
    for (id, body, status, code) in cases {
        let (got, response) = extend(id, body.clone()).await;
        assert_eq!((got, response["error"]["code"].as_str()), (status, Some(code)), "{body}");
        assert!(response["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(version_of(&stack, gdpr).await, 2, "nothing was written");
    assert_eq!(
        extend(gdpr, json!({"until": "2027-03-01", "reason": "r"})).await.0,
        200,
        "the longest allowed"
    );
    assert_eq!(
        extend(ccpa, json!({"until": "2027-02-26", "reason": "r"})).await.0,
        200,
        "the longest allowed"
    );

    let late = verified_request(&stack, &unique_address("rules-late"), "objection", "NL").await;
    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 29, 8, 0, 0).unwrap());
    let (status, body) = extend(late, json!({"until": "2027-01-20", "reason": "r"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("extension_too_late")));
    assert!(body["error"]["message"].as_str().unwrap().contains("2026-12-28"), "{body}");
}

#[tokio::test]
async fn a_denial_closes_the_request_and_its_notice_names_the_supervisory_authority() {
    let stack = Stack::new().await;
    let address = unique_address("deny");
    let id = verified_request(&stack, &address, "objection", "NL").await;
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let api = staff_api(&stack);
    let reason = "De verwerking is nodig om uw contract uit te voeren (artikel 6, lid 1, onder b, AVG).";
    let (status, body) =
        staff(&api, "POST", &format!("/staff/requests/{id}/deny"), Some(json!({"reason": reason}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["status"], "denied");
    assert_eq!(body["request"]["closed_reason"], reason);

    dispatch_stream(&stack, &mut stream).await;
    let notice = stack.mail_to(&address).await.pop().unwrap();
    assert_eq!(notice.subject, "Uw privacyverzoek: onze beslissing");
    assert!(
        notice.body.contains(reason) && notice.body.contains("Autoriteit Persoonsgegevens"),
        "{}",
        notice.body
    );

    let (status, body) =
        staff(&api, "POST", &format!("/staff/requests/{id}/deny"), Some(json!({"reason": "again"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_state")));
    let (_, listed) = staff(&api, "GET", "/staff/requests", None).await;
    assert!(listed["requests"].as_array().unwrap().is_empty(), "closed requests leave the list");
}

#[tokio::test]
async fn an_excessive_request_is_refused_with_the_reason_and_the_cost_estimate() {
    let stack = Stack::new().await;
    let address = unique_address("excessive");
    let id = verified_request(&stack, &address, "rectification", "IE").await;
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let api = staff_api(&stack);
    let path = format!("/staff/requests/{id}/excessive");
    for (estimate, field) in [
        (json!({"amount": "25", "currency": "EUR"}), "cost_estimate"),
        (json!({"amount": "25.00", "currency": "euro"}), "cost_estimate"),
        (json!({"amount": 25, "currency": "EUR"}), "cost_estimate.amount"),
    ] {
        let (status, body) =
            staff(&api, "POST", &path, Some(json!({"reason": "r", "cost_estimate": estimate}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_field")), "{estimate}");
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{body}");
    }
    let reason = "This is the sixth identical request this month.";
    let body = json!({"reason": reason, "cost_estimate": {"amount": "40.00", "currency": "EUR"}});
    let (status, response) = staff(&api, "POST", &path, Some(body)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["request"]["status"], "rejected");
    assert_eq!(response["request"]["cost_estimate"], json!({"amount": "40.00", "currency": "EUR"}));

    dispatch_stream(&stack, &mut stream).await;
    let notice = stack.mail_to(&address).await.pop().unwrap();
    assert_eq!(notice.subject, "Your privacy request: our decision and a fee");
    assert!(notice.body.contains(reason) && notice.body.contains("a fee of €40.00"), "{}", notice.body);
    assert!(!notice.body.contains("EUR"), "the amount as the reader writes it: {}", notice.body);
    assert!(notice.body.contains("manifestly unfounded or excessive"), "the legal test: {}", notice.body);
    // Decided on Saturday 28 November 2026 (the stack's clock): a month on is a Monday.
    assert!(notice.body.contains("reply to this email by 28 December 2026"), "{}", notice.body);
    assert!(notice.body.contains("supervisory authority"));
}

#[tokio::test]
async fn a_manual_request_is_completed_with_a_note_but_an_export_cannot_be_completed_by_hand() {
    let stack = Stack::new().await;
    let address = unique_address("complete");
    let id = verified_request(&stack, &address, "rectification", "NL").await;
    let access = verified_request(&stack, &unique_address("complete-a"), "access", "NL").await;
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let api = staff_api(&stack);
    let note = "We hebben uw functietitel gecorrigeerd in ons CRM-systeem.";
    let (status, body) =
        staff(&api, "POST", &format!("/staff/requests/{id}/complete"), Some(json!({"note": note}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["status"], "completed");

    dispatch_stream(&stack, &mut stream).await;
    let notice = stack.mail_to(&address).await.pop().unwrap();
    assert_eq!(notice.subject, "Uw privacyverzoek is afgehandeld");
    assert!(notice.body.contains(note), "{}", notice.body);

    let (status, body) =
        staff(&api, "POST", &format!("/staff/requests/{access}/complete"), Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("automatic_fulfilment")));
    assert_eq!(version_of(&stack, access).await, 2);
}

#[tokio::test]
async fn a_deletion_or_a_self_service_correction_cannot_be_completed_by_hand_either() {
    let stack = Stack::new().await;
    let deletion = verified_request(&stack, &unique_address("complete-d"), "deletion", "NL").await;
    let address = unique_address("complete-c");
    let body = json!({"email": address, "kind": "rectification", "region": "NL", "corrections": {"job_title": "Lead designer"}});
    let (status, created) = submit(&stack.deps(), &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let (id, token) = link_parts(&stack.mail_to(&address).await[0]);
    assert_eq!(verify_with(&stack.verifier(), &id, &token).await.0, 200);
    let correction = RequestId::parse(&id).unwrap();
    let api = staff_api(&stack);
    for request in [deletion, correction] {
        let path = format!("/staff/requests/{request}/complete");
        let (status, body) = staff(&api, "POST", &path, Some(json!({"note": "Done by hand."}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("automatic_fulfilment")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("by hand"), "{body}");
        assert_eq!(version_of(&stack, request).await, 2, "nothing changed");
    }
}

#[tokio::test]
async fn actions_are_refused_before_verification_and_on_unknown_requests() {
    let stack = Stack::new().await;
    let (_, pending) = submit(&stack.deps(), &submission(&unique_address("early"), "objection", "NL")).await;
    let id = pending["request_id"].as_str().unwrap();
    let api = staff_api(&stack);
    let (status, body) =
        staff(&api, "POST", &format!("/staff/requests/{id}/deny"), Some(json!({"reason": "r"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_state")));
    let (status, _) = staff(
        &api,
        "POST",
        &format!("/staff/requests/{}/deny", RequestId::generate()),
        Some(json!({"reason": "r"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = staff(&api, "DELETE", &format!("/staff/requests/{id}"), None).await;
    assert_eq!(status, 405);
}
