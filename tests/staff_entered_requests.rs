//! Requests by other channels: a staff member enters a request a person made by phone, post,
//! email, chat or in person (`POST /staff/requests`, `staff submit`). It takes the public API's
//! path: the person's mailbox gets the verification link, nothing happens until its owner
//! confirms, and then it runs to completion like one made online; the request, its audit trail
//! and the staff API name the channel and who entered it.

use serde_json::{Value, json};

use crate::contract::{assert_documented, document};
use crate::rights::world;
use crate::staff_command_line::{KEY, cli, local_admin};
use crate::support::*;
use privacy_shared::domain::{Actor, Event, Intake, OfflineChannel, RequestId, Status};
use privacy_shared::store::Records;

/// Enters a request through the staff API as the privacy officer; the answer's id.
async fn entered<S: admin::StaffStore>(api: &admin::Admin<S>, body: Value) -> RequestId {
    let (status, answer) = staff(api, "POST", "/staff/requests", Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    RequestId::parse(answer["request_id"].as_str().expect("a request id")).unwrap()
}

/// The verification link mailed for request `id` (picked by its id: other requests may mail the
/// same address).
async fn link_for(stack: &Stack, address: &str, id: RequestId) -> (String, String) {
    let mails = stack.mail_to(address).await;
    mails
        .iter()
        .map(link_parts)
        .rfind(|(linked, _)| *linked == id.to_string())
        .expect("a link for the request")
}

fn by_phone() -> Intake {
    Intake::Staff { channel: OfflineChannel::Phone, entered_by: STAFF_ARN.to_owned() }
}

#[tokio::test]
async fn a_request_taken_by_phone_waits_for_the_mailbox_owner_then_completes_as_one_made_online() {
    let mut world = world().await;
    // The staff API under its own role from the template: it may store the request and mail it.
    let roles = world.stack.roles(&[]).await;
    let api = staff_api(&world.stack.signing_as(&roles, "admin"));
    let address = unique_address("by-phone");
    let body = json!({"channel": "phone", "email": address, "kind": "deletion", "region": "NL", "name": "Pat Caller"});
    let id = entered(&api, body).await;

    // Nothing irreversible before the person confirms from their mailbox.
    world.drain().await;
    let record = world.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::PendingVerification);
    assert_eq!(record.intake, by_phone());
    assert_eq!(record.name.as_deref(), Some("Pat Caller"));

    let (linked, token) = link_for(&world.stack, &address, id).await;
    assert_eq!(verify_with(&world.verify.verifier(), &linked, &token).await.0, 200);
    world.drain().await;
    let record = world.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.intake, by_phone(), "the channel stays on the request");
    let mails = world.stack.mail_to(&address).await;
    assert_eq!(mails.len(), 2, "the link, then the answer, to the person's mailbox");
    assert!(mails[1].body.contains(&id.to_string()));

    // The audit trail: entered by the staff member, confirmed by the person.
    let trail = world.stack.deps().store.audit_trail(id).await.unwrap();
    assert_eq!(trail[0].event, Event::Submitted);
    assert_eq!(trail[0].actor, Actor::Staff(STAFF_ARN.to_owned()));
    assert_eq!(trail[0].reason.as_deref(), Some("channel: phone"));
    let verified = trail.iter().find(|e| e.event == Event::Verified).expect("verified");
    assert_eq!(verified.actor, Actor::Requester);

    // Its de-identified record of requests (CCPA regulations §7101) keeps the channel.
    let year = chrono::Datelike::year(&record.received_at);
    let records = world.stack.deps().store.records_of_year(year).await.unwrap();
    let kept = records.iter().find(|r| r.request_id == id).expect("a record of the request");
    assert_eq!((kept.channel.as_str(), kept.status), ("phone", Status::Completed));

    // And as staff see it.
    let (status, shown) = staff(&api, "GET", &format!("/staff/requests/{id}"), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["request"]["channel"], "phone");
    assert_eq!(shown["request"]["entered_by"], STAFF_ARN);
    assert_eq!(shown["audit"][0]["actor"], json!({"type": "staff", "id": STAFF_ARN}));
    assert_eq!(shown["audit"][0]["reason"], "channel: phone");
}

#[tokio::test]
async fn a_repeat_of_an_open_request_answers_with_it_and_an_opt_out_is_honoured_at_once() {
    let stack = Stack::new().await;
    let api = staff_api(&stack);
    let address = unique_address("repeat");
    let (status, online) = submit(&stack.deps(), &submission(&address, "access", "NL")).await;
    assert_eq!(status, 202);
    let again =
        entered(&api, json!({"channel": "chat", "email": address, "kind": "access", "region": "NL"})).await;
    assert_eq!(again.to_string(), online["request_id"].as_str().unwrap(), "the open request");
    let record = stack.deps().store.get(again).await.unwrap().unwrap();
    assert!(record.intake.is_web(), "still the request the person made online");
    let links: Vec<_> = stack.mail_to(&address).await.iter().map(link_parts).collect();
    assert_eq!(links.len(), 2, "a fresh link for the open request");
    assert!(links.iter().all(|(id, _)| *id == again.to_string()));

    let opted = unique_address("opt-out-by-post");
    let body = json!({"channel": "post", "email": opted, "kind": "opt_out_of_sale", "region": "US-CA"});
    let (status, answer) = staff(&api, "POST", "/staff/requests", Some(body.clone())).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("completed")), "{answer}");
    let (_, check) = staff(&api, "POST", "/staff/suppressions/check", Some(json!({"email": opted}))).await;
    assert_eq!(check["sale"]["suppressed"], true, "{check}");
    let id = RequestId::parse(answer["request_id"].as_str().unwrap()).unwrap();
    let trail = stack.deps().store.audit_trail(id).await.unwrap();
    assert_eq!(trail[0].actor, Actor::Staff(STAFF_ARN.to_owned()));
    assert_eq!(trail[0].reason.as_deref(), Some("channel: post; no_verification_required"));
    let (_, repeat) = staff(&api, "POST", "/staff/requests", Some(body)).await;
    assert_eq!(repeat["request_id"], answer["request_id"], "a repeat changes nothing");
}

#[tokio::test]
async fn the_mailbox_budget_holds_for_requests_staff_enter_as_for_those_made_online() {
    let stack = Stack::new().await;
    let api = staff_api(&stack);
    let address = unique_address("budget");
    // Four requests of different kinds for one address within the hour: three links (the
    // default mailbox budget), every answer the same 202.
    for kind in ["access", "deletion", "objection", "restriction"] {
        entered(&api, json!({"channel": "email", "email": address, "kind": kind, "region": "DE"})).await;
    }
    assert_eq!(stack.mail_to(&address).await.len(), 3);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_never_the_value_and_an_unsigned_call_changes_nothing() {
    let doc = document("staff-openapi.yaml");
    let stack = Stack::new().await;
    let api = staff_api(&stack);
    let address = unique_address("refused");
    let valid = json!({"channel": "phone", "email": address, "kind": "access", "region": "NL"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    for (body, code, field) in [
        (with("channel", json!("web")), "invalid_field", "`channel`"),
        (with("channel", json!("carrier-pigeon")), "invalid_field", "`channel`"),
        (with("channel", json!(7)), "invalid_field", "`channel`"),
        (without("channel"), "missing_field", "`channel`"),
        (with("email", json!("not-an-address")), "invalid_field", "`email`"),
        (with("kind", json!("forget-me-now")), "invalid_field", "`kind`"),
        (with("region", json!("XX")), "invalid_field", "`region`"),
        (with("recipient", json!("other@example.org")), "invalid_field", "`recipient`"),
        (with("entered_by", json!("someone-else")), "unknown_field", "`entered_by`"),
    ] {
        let (status, answer) = staff(&api, "POST", "/staff/requests", Some(body.clone())).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
        for value in
            ["carrier-pigeon", "not-an-address", "forget-me-now", "other@example.org", "someone-else"]
        {
            assert!(!message.contains(value), "{message} quotes the value");
        }
        assert_documented(&doc, "/staff/requests", "post", status, &answer);
    }
    let response =
        admin::handle(&api, staff_call("POST", "/staff/requests", Some(&valid), None)).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(json_of(&response)["error"]["code"], "unauthenticated");
    assert_documented(&doc, "/staff/requests", "post", 401, &json_of(&response));
    assert!(stack.mail_to(&address).await.is_empty(), "nothing was stored or sent");

    let (status, answer) = staff(&api, "POST", "/staff/requests", Some(valid)).await;
    assert_eq!(status, 202);
    assert_documented(&doc, "/staff/requests", "post", status, &answer);
    let id = answer["request_id"].as_str().unwrap();
    let (_, shown) = staff(&api, "GET", &format!("/staff/requests/{id}"), None).await;
    assert_documented(&doc, "/staff/requests/{id}", "get", 200, &shown);
}

#[tokio::test]
async fn staff_submit_prints_the_request_and_that_the_person_must_confirm_from_their_mailbox() {
    let stack = Stack::new().await;
    let base = local_admin(&stack).await;
    let address = unique_address("cli-submit");
    let args =
        ["submit", "--channel", "in_person", "--email", &address, "--kind", "objection", "--region", "BE"];
    let (code, out, err) = cli(&base, KEY, &args).await;
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().nth(2).expect("Entered request <id>");
    assert!(out.starts_with(&format!("Entered request {id} (received by in_person).")), "{out}");
    assert!(out.contains("until the person confirms it from their mailbox"), "{out}");
    let id = RequestId::parse(id).unwrap();
    let record = stack.deps().store.get(id).await.unwrap().unwrap();
    let local = Intake::Staff { channel: OfflineChannel::InPerson, entered_by: "local:staff".to_owned() };
    assert_eq!((record.status, record.intake), (Status::PendingVerification, local));
    link_for(&stack, &address, id).await;

    let (code, out, err) = cli(&base, KEY, &["show", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("in_person, entered by local:staff") && out.contains("channel: in_person"), "{out}");

    let web = ["submit", "--channel", "web", "--email", &address, "--kind", "access", "--region", "BE"];
    let (code, _, err) = cli(&base, KEY, &web).await;
    assert_eq!(code, 2, "a usage error, nothing sent: {err}");
}

#[test]
fn the_staff_submission_is_the_public_submission_with_its_channel() {
    let public = document("openapi.yaml");
    let staff = document("staff-openapi.yaml");
    let mut ours = staff["components"]["schemas"]["StaffSubmission"].clone();
    let theirs = &public["components"]["schemas"]["Submission"];
    let channel = ours["properties"].as_object_mut().unwrap().remove("channel").expect("a channel");
    let names: Vec<&str> = OfflineChannel::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(channel["enum"], json!(names));
    let required = ours["required"].as_array_mut().unwrap();
    required.retain(|f| f != "channel");
    ours.as_object_mut().unwrap().remove("description");
    assert_eq!(&ours, theirs, "the staff document's copy of the public submission");
    for referenced in ["Kind", "Blank"] {
        assert_eq!(staff["components"]["schemas"][referenced], public["components"]["schemas"][referenced]);
    }
    let mut fields: Vec<&str> =
        theirs["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut accepted = privacy_shared::intake::FIELDS.to_vec();
    fields.sort();
    accepted.sort();
    assert_eq!(fields, accepted);
}
