//! Our own house: what the functions log never carries an address, a name, free text or a token.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn logs_never_carry_the_address_name_details_or_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    // The functions' own logging set-up, asked for everything.
    let subscriber = privacy_shared::telemetry::subscriber(move || writer.clone(), Some("trace"), true);
    let _guard = tracing::subscriber::set_default(subscriber);

    let stack = Stack::new().await;
    let deps = stack.deps();
    let verifier = stack.verifier();
    let address = unique_address("Private.Person");
    let name = "Prudence Privatename";
    let details = "my customer number is 98765-SECRET";
    let body =
        json!({"email": address, "kind": "deletion", "region": "US-CA", "name": name, "details": details});
    assert_eq!(submit(&deps, &body.to_string()).await.0, 202);
    assert_eq!(submit(&deps, &body.to_string()).await.0, 202);
    for kind in ["access", "portability", "objection"] {
        submit(&deps, &json!({"email": address, "kind": kind, "region": "US-CA"}).to_string()).await;
    }
    let unknown_field = json!({"email": address, "kind": "access", "region": "NL", address.clone(): name});
    assert_eq!(submit(&deps, &unknown_field.to_string()).await.0, 422);

    let mails = stack.mail_to(&address).await;
    let (id, token) = link_parts(mails.last().unwrap());
    for _ in 0..5 {
        verify_with(&verifier, &id, &"A".repeat(43)).await;
    }
    // The repeat of the deletion request added a second link beside the first.
    let (deletion_id, deletion_token) = link_parts(&mails[1]);
    assert_eq!(verify_with(&verifier, &deletion_id, &deletion_token).await.0, 200);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request submitted"), "the functions did log: {logs}");
    assert!(logs.contains("mail budget spent"), "{logs}");
    assert!(logs.contains("locked after too many wrong tokens"), "{logs}");
    assert!(logs.contains("confirmed by the requester"), "{logs}");
    for secret in [
        address.as_str(),
        &address.to_lowercase(),
        "Prudence",
        "Privatename",
        "98765",
        &token,
        &deletion_token,
    ] {
        assert!(!logs.contains(secret), "the logs carry {secret:?}:\n{logs}");
    }
}

#[tokio::test]
async fn the_sweep_and_the_staff_api_log_no_address_name_reason_or_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = privacy_shared::telemetry::subscriber(move || writer.clone(), Some("trace"), true);
    let _guard = tracing::subscriber::set_default(subscriber);

    let stack = Stack::new().await;
    let name = "Quentin Quietname";
    let verified = unique_address("Quiet.Verified");
    let id = verified_request(&stack, &verified, "rectification", "NL").await;
    stack.clock.set(start_time() + chrono::Duration::days(20));
    let pending = unique_address("Quiet.Pending");
    let body = json!({"email": pending, "kind": "objection", "region": "NL", "name": name});
    submit(&stack.deps(), &body.to_string()).await;
    stack.clock.set(start_time() + chrono::Duration::days(24));
    let report = run_sweep(&sweeper(&stack, &unique_address("staff"))).await.unwrap();
    assert_eq!((report.reminded, report.digest_items), (1, 1));
    let (_, reminder_token) = link_parts(stack.mail_to(&pending).await.last().unwrap());
    stack.clock.set(start_time() + chrono::Duration::days(4));
    let api = staff_api(&stack);
    let reason = "Quentin asked about invoice 55501-SECRET";
    staff(&api, "GET", &format!("/staff/requests/{id}"), None).await;
    let extend = json!({"until": "2027-01-20", "reason": reason});
    assert_eq!(staff(&api, "POST", &format!("/staff/requests/{id}/extend"), Some(extend)).await.0, 200);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("sweep finished") && logs.contains("staff action"),
        "the functions did log: {logs}"
    );
    for secret in [pending.as_str(), verified.as_str(), "Quentin", "Quietname", "55501", &reminder_token] {
        assert!(!logs.contains(secret), "the logs carry {secret:?}:\n{logs}");
    }
}

/// The Lambda runtime logs each raw invocation event at TRACE (and `lambda_http` the request at
/// DEBUG): the body, with its address and token. Those are dropped whatever level is configured,
/// while our own events keep that level.
#[test]
fn the_runtime_never_logs_the_raw_event_whatever_level_is_asked_for() {
    let address = "Runtime.Person@example.com";
    let token = "tok_RuntimeSecret0123456789abcdefghijklmnopq";
    let event = json!({"body": json!({"email": address, "token": token}).to_string()}).to_string();
    for (level, json_format) in [("trace", true), ("TRACE", false), ("debug", true)] {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            privacy_shared::telemetry::subscriber(move || writer.clone(), Some(level), json_format);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = %event, "raw JSON event received from Lambda");
            tracing::debug!(target: "lambda_runtime::layers::api_client", payload = %event, "invocation");
            tracing::debug!(target: "lambda_http", body = %event, "request");
            tracing::trace!(target: "lambda_runtime_api_client", body = %event, "response");
            tracing::info!(target: "lambda_runtime", "runtime started");
            tracing::debug!(target: "intake", "our own debug event");
            tracing::info!(target: "intake", "our own info event");
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("our own info event"), "{level}: our own logs are kept: {logs}");
        assert!(logs.contains("our own debug event"), "{level}: at the configured level: {logs}");
        assert!(logs.contains("runtime started"), "{level}: the runtime's INFO is kept: {logs}");
        for secret in [address, "Runtime.Person", token] {
            assert!(!logs.contains(secret), "{level}: the logs carry {secret:?}:\n{logs}");
        }
    }
}
