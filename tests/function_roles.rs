//! Every function runs under its own role from the template, and the emulator's IAM guard refuses
//! what a role does not allow, as AWS would. The rights tests run intake, verify, dispatch,
//! export, download and erasure that way; here the staff API and the daily sweep, and calls
//! outside a role failing.

use serde_json::json;

use crate::support::*;

/// A request submitted by intake and verified by verify, each under its own role.
async fn verified_under_roles(stack: &Stack, roles: &Roles, address: &str) -> String {
    let (status, answer) =
        submit(&stack.signing_as(roles, "intake").deps(), &submission(address, "access", "NL")).await;
    assert_eq!(status, 202, "{answer}");
    let (id, token) = link_parts(&stack.mail_to(address).await.pop().expect("a verification email"));
    let (status, answer) = verify_with(&stack.signing_as(roles, "verify").verifier(), &id, &token).await;
    assert_eq!(status, 200, "{answer}");
    id
}

#[tokio::test]
async fn the_staff_api_and_the_daily_sweep_work_under_their_own_roles() {
    let stack = Stack::new().await;
    let roles = stack.roles(&[]).await;
    let id = verified_under_roles(&stack, &roles, &unique_address("roles")).await;

    let admin = staff_api(&stack.signing_as(&roles, "admin"));
    let (status, list) = staff(&admin, "GET", "/staff/requests", None).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains(&id), "the list holds the request: {list}");
    let (status, one) = staff(&admin, "GET", &format!("/staff/requests/{id}"), None).await;
    assert_eq!(status, 200, "{one}");
    let (status, check) =
        staff(&admin, "POST", "/staff/suppressions/check", Some(json!({"email": unique_address("x")}))).await;
    assert_eq!(status, 200, "{check}");

    let sweep = run_sweep(&sweeper(&stack.signing_as(&roles, "reminders"), &unique_address("staff"))).await;
    assert!(sweep.is_ok(), "the sweep under its role: {sweep:?}");
}

#[tokio::test]
async fn a_call_outside_a_functions_role_is_refused_as_in_aws() {
    let stack = Stack::new().await;
    let roles = stack.roles(&[]).await;
    let intake = aws_sdk_dynamodb::Client::new(&roles.sdk(&stack.sdk, "intake"));

    // Intake may read and write request items, never scan the table.
    let scan = intake.scan().table_name(&stack.table).send().await;
    let error = scan.expect_err("intake's role has no Scan");
    assert_eq!(error.as_service_error().and_then(|e| e.meta().code()), Some("AccessDeniedException"));
    // Nor read a source of the data map.
    let accounts = format!("{}accounts", stack.data_prefix);
    let query = intake
        .query()
        .table_name(&accounts)
        .key_condition_expression("email = :e")
        .expression_attribute_values(
            ":e",
            aws_sdk_dynamodb::types::AttributeValue::S("alice@example.com".into()),
        )
        .send()
        .await;
    assert_eq!(
        query.expect_err("intake's role reads no source").as_service_error().and_then(|e| e.meta().code()),
        Some("AccessDeniedException")
    );
    // The developer's credentials (what the tests set up with) are not limited.
    assert!(stack.dynamo.scan().table_name(&stack.table).send().await.is_ok());
}

#[tokio::test]
async fn a_handler_under_another_functions_role_fails_where_its_own_succeeds() {
    let stack = Stack::new().await;
    let roles = stack.roles(&[]).await;
    let address = unique_address("wrong-role");
    // The download function's role may not write requests: intake under it cannot store one, and
    // answers with an error, not with a stored request.
    let (status, _) =
        submit(&stack.signing_as(&roles, "download").deps(), &submission(&address, "access", "NL")).await;
    assert!(status >= 500, "refused by IAM: {status}");
    assert!(stack.mail_to(&address).await.is_empty(), "nothing was sent");
    let (status, _) =
        submit(&stack.signing_as(&roles, "intake").deps(), &submission(&address, "access", "NL")).await;
    assert_eq!(status, 202);
}
