//! What staff send or set off by hand, through the real staff API handler and the real
//! dispatcher against the emulator: the language staff write free text in, the CCPA confirmation
//! of receipt, a fee accepted for an excessive request, and a disputed correction with its
//! restriction and the notice before that is lifted. Each notice reaches the requester exactly
//! once, however often the stream delivers its change; each response matches the staff API's
//! OpenAPI document.

use chrono::{Duration, TimeZone, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::contract::{assert_documented, document};
use crate::staff_command_line::{KEY, cli, local_admin};
use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use devstack::mailbox::SentMail;
use devstack::stream::StreamReader;
use privacy_shared::domain::{Actor, Event, RequestId, Status};
use privacy_shared::store::{MailSuppression, Records, SuppressionCause};

/// Delivers whatever the stream holds to the real dispatcher, twice (as Lambda may), until it
/// is quiet; the staff notices go to `staff`.
async fn dispatch_stream(stack: &Stack, stream: &mut StreamReader, staff: &str) {
    let dispatcher = dispatcher(stack, "http://127.0.0.1:1/unused-queue.fifo", staff).await;
    for _ in 0..10 {
        let records = stream.poll().await.unwrap();
        if records.is_empty() {
            return;
        }
        for _ in 0..2 {
            let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
            let response =
                dispatch::handle(&dispatcher, LambdaEvent::new(event, Context::default())).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
        }
    }
    panic!("the stream did not settle");
}

/// A staff call, checked against the staff API's document.
async fn documented(api: &AwsAdmin, doc: &Value, template: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, response) = staff(api, "POST", path, Some(body)).await;
    assert_documented(doc, template, "post", status, &response);
    (status, response)
}

fn code(response: &(u16, Value)) -> (u16, Option<&str>) {
    (response.0, response.1["error"]["code"].as_str())
}

/// The mails `address` got whose subject is `subject`.
async fn mails_titled(stack: &Stack, address: &str, subject: &str) -> Vec<SentMail> {
    stack.mail_to(address).await.into_iter().filter(|m| m.subject == subject).collect()
}

#[tokio::test]
async fn staff_are_told_the_language_the_requester_reads_and_that_their_free_text_reaches_them_verbatim() {
    let stack = Stack::new().await;
    let dutch = verified_request(&stack, &unique_address("lang-nl"), "rectification", "NL").await;
    let english = verified_request(&stack, &unique_address("lang-en"), "rectification", "GB").await;
    let api = staff_api(&stack);
    let doc = document("staff-openapi.yaml");
    let (status, body) = staff(&api, "GET", &format!("/staff/requests/{dutch}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_documented(&doc, "/staff/requests/{id}", "get", status, &body);
    assert_eq!(body["request"]["language_name"], "Dutch");
    assert_eq!(
        body["request"]["free_text_note"],
        "Reasons and notes you write are sent to the requester verbatim: write them in Dutch."
    );
    let (_, body) = staff(&api, "GET", &format!("/staff/requests/{english}"), None).await;
    assert_eq!(body["request"]["language_name"], "English");

    let base = local_admin(&stack).await;
    let (code, out, err) = cli(&base, KEY, &["show", &dutch.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.contains("Language")).unwrap_or_default();
    assert!(line.contains("Dutch (nl) — notes and reasons you write are sent verbatim;"), "{out}");
    assert!(out.contains("write them in Dutch"), "{out}");
    // An action shows the request as it now stands, the language with it.
    let (code, out, err) = cli(
        &base,
        KEY,
        &["extend", &english.to_string(), "--until", "2027-01-28", "--reason", "Three systems."],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("English (en) — notes and reasons you write are sent verbatim"), "{out}");
    for command in ["deny", "extend", "complete", "excessive", "lift-restriction"] {
        let (code, out, _) = cli(&base, KEY, &[command, "--help"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("verbatim") && out.contains("request's language"), "{command}: {out}");
    }
}

#[tokio::test]
async fn a_confirmation_of_receipt_goes_out_once_in_the_requesters_language_and_the_digest_stops_asking_for_it()
 {
    // One verification email per address an hour: a second request of the same address gets
    // none, and no confirmation of receipt reaches that requester.
    let stack = Stack::with_env(&[("VERIFICATION_EMAILS_PER_HOUR", "1")]).await;
    let staff_address = unique_address("staff");
    let held = |address: &str| {
        let stack = &stack;
        let address = address.to_owned();
        async move {
            let first = json!({"email": address, "kind": "access", "region": "US-CA", "language": "nl"});
            let (_, first) = submit(&stack.deps(), &first.to_string()).await;
            let first = RequestId::parse(first["request_id"].as_str().unwrap()).unwrap();
            stack.deps().store.mark_acknowledged(first, start_time()).await.unwrap();
            let second = json!({"email": address, "kind": "deletion", "region": "US-CA", "language": "nl"});
            let (status, second) = submit(&stack.deps(), &second.to_string()).await;
            assert_eq!(status, 202, "{second}");
            RequestId::parse(second["request_id"].as_str().unwrap()).unwrap()
        }
    };
    let address = unique_address("receipt");
    let confirmed = held(&address).await;
    let other = held(&unique_address("receipt-other")).await;
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let api = staff_api(&stack);
    let doc = document("staff-openapi.yaml");
    let template = "/staff/requests/{id}/receipt-confirmation";
    let path = format!("/staff/requests/{confirmed}/receipt-confirmation");

    // Received Saturday 28 November: acknowledge by Friday 11 December; the digest warns from the 9th.
    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 9, 8, 0, 0).unwrap());
    let refused = documented(&api, &doc, template, &path, json!({"note": "x"})).await;
    assert_eq!(code(&refused), (422, Some("unknown_field")));
    let (status, body) = documented(&api, &doc, template, &path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["status"], "pending_verification", "the request goes on as it was");
    assert_eq!(body["request"]["receipt_confirmed_at"], "2026-12-09T08:00:00Z");
    assert_eq!(body["request"]["acknowledged_at"], "2026-12-09T08:00:00Z");
    let again = documented(&api, &doc, template, &path, json!({})).await;
    assert_eq!(code(&again), (409, Some("already_confirmed")));

    dispatch_stream(&stack, &mut stream, &staff_address).await;
    let sent = mails_titled(&stack, &address, "Wij hebben uw privacyverzoek ontvangen").await;
    assert_eq!(sent.len(), 1, "exactly once, however often the stream delivers it");
    let text = &sent[0].body;
    for words in [
        "28 november 2026",
        &confirmed.to_string(),
        "artikel 7021(b) van de CCPA-regelgeving",
        "uiterlijk op 12 januari 2027",
        "45 kalenderdagen",
        "/status?lang=nl",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }
    let trail = stack.deps().store.audit_trail(confirmed).await.unwrap();
    let last = trail.iter().rev().find(|e| e.event == Event::ReceiptConfirmed).expect("audited");
    assert_eq!((last.to, &last.actor), (Status::PendingVerification, &Actor::Staff(STAFF_ARN.to_owned())));

    // The digest lists the one still unconfirmed, and no longer the confirmed one.
    let sweeper = sweeper(&stack, &staff_address);
    let report = run_sweep(&sweeper).await.unwrap();
    assert_eq!(report.digest_items, 1, "{report:?}");
    let digest = stack.mail_to(&staff_address).await.pop().expect("a digest");
    assert!(digest.body.contains(&other.to_string()), "{}", digest.body);
    assert!(!digest.body.contains(&confirmed.to_string()), "{}", digest.body);
    assert!(
        digest.body.contains("staff confirm-receipt ID"),
        "the digest names the command: {}",
        digest.body
    );

    // An address whose mail bounced for good would not get it: staff are told to confirm otherwise.
    let subject = stack.deps().store.get(other).await.unwrap().unwrap().email.subject_key();
    let bounce = MailSuppression { cause: SuppressionCause::Bounce, since: start_time(), request_id: None };
    stack.deps().store.suppress_mail(&subject, &bounce).await.unwrap();
    let path = format!("/staff/requests/{other}/receipt-confirmation");
    let suppressed = documented(&api, &doc, template, &path, json!({})).await;
    assert_eq!(code(&suppressed), (409, Some("address_suppressed")));
    let unknown = format!("/staff/requests/{}/receipt-confirmation", RequestId::generate());
    assert_eq!(code(&documented(&api, &doc, template, &unknown, json!({})).await).0, 404);
}

#[tokio::test]
async fn an_accepted_fee_restarts_the_work_due_a_fresh_month_from_the_acceptance_and_tells_the_person_once() {
    let stack = Stack::new().await;
    let staff_address = unique_address("staff");
    let address = unique_address("fee");
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    let id = verified_request(&stack, &address, "objection", "NL").await;
    dispatch_stream(&stack, &mut stream, &staff_address).await; // triaged: staff are told
    let api = staff_api(&stack);
    let doc = document("staff-openapi.yaml");
    let template = "/staff/requests/{id}/fee-acceptance";
    let path = format!("/staff/requests/{id}/fee-acceptance");
    let open = documented(&api, &doc, template, &path, json!({})).await;
    assert_eq!(code(&open), (409, Some("no_fee_to_accept")), "nothing to accept before a fee is asked");

    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let estimate = json!({"reason": "Dit is het zesde gelijke verzoek deze maand.", "cost_estimate": {"amount": "40.00", "currency": "EUR"}});
    let (status, body) =
        staff(&api, "POST", &format!("/staff/requests/{id}/excessive"), Some(estimate)).await;
    assert_eq!(status, 200, "{body}");
    dispatch_stream(&stack, &mut stream, &staff_address).await;

    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap());
    for (body, expected) in [
        (json!({"accepted_on": "2026-12-05"}), "accepted_in_future"),
        (json!({"accepted_on": "2026-11-30"}), "accepted_before_rejection"),
        (json!({"accepted_on": "yesterday"}), "invalid_field"),
    ] {
        let refused = documented(&api, &doc, template, &path, body.clone()).await;
        assert_eq!(code(&refused), (422, Some(expected)), "{body}");
    }
    // The reply came on Thursday 3 December: one month on is Sunday 3 January, so Monday the 4th.
    let (status, body) = documented(&api, &doc, template, &path, json!({"accepted_on": "2026-12-03"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["status"], "verified");
    assert_eq!(body["request"]["due_on"], "2027-01-04");
    assert_eq!(body["request"]["fee_accepted_on"], "2026-12-03");
    assert_eq!(body["request"]["cost_estimate"], json!({"amount": "40.00", "currency": "EUR"}));
    let twice = documented(&api, &doc, template, &path, json!({})).await;
    assert_eq!(code(&twice), (409, Some("no_fee_to_accept")));

    dispatch_stream(&stack, &mut stream, &staff_address).await;
    let told = mails_titled(&stack, &address, "Uw privacyverzoek: kosten aanvaard, wij gaan verder").await;
    assert_eq!(told.len(), 1, "exactly once, however often the stream delivers it");
    for words in ["3 december 2026", "€\u{a0}40,00", "4 januari 2027", "een maand"] {
        assert!(told[0].body.contains(words), "{words}: {}", told[0].body);
    }
    let notices = stack.mail_to(&staff_address).await;
    assert_eq!(notices.len(), 2, "the work starts again: staff are told again, once");
    assert!(notices[1].body.contains(&id.to_string()));
    let (_, listed) = staff(&api, "GET", "/staff/requests?status=verified", None).await;
    assert!(listed.to_string().contains(&id.to_string()), "open again, in the list: {listed}");
    let trail = stack.deps().store.audit_trail(id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!(
        (last.event, last.from, last.to),
        (Event::FeeAccepted, Some(Status::Rejected), Status::Verified)
    );
    let triages = trail.iter().filter(|e| e.event == Event::Triaged).count();
    assert_eq!(triages, 1, "triaged once: the person pays for this work, no limit applies again");
}

#[tokio::test]
async fn a_disputed_correction_is_restricted_its_recipients_told_and_the_lift_announced_before_it_happens() {
    let stack = Stack::new().await;
    let staff_address = unique_address("staff");
    let address = unique_address("dispute");
    let id = verified_request(&stack, &address, "rectification", "NL").await;
    let objection = verified_request(&stack, &unique_address("dispute-other"), "objection", "NL").await;
    let api = staff_api(&stack);
    let doc = document("staff-openapi.yaml");
    let dispute = "/staff/requests/{id}/dispute";
    let lift = "/staff/requests/{id}/restriction-lifting";
    let path = |id: RequestId, action: &str| format!("/staff/requests/{id}/{action}");

    let early = documented(&api, &doc, dispute, &path(id, "dispute"), json!({})).await;
    assert_eq!(code(&early), (409, Some("not_a_refused_correction")), "refused first");
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let reason = json!({"reason": "Volgens ons paspoortonderzoek is uw geboortedatum juist."});
    for refused in [id, objection] {
        let (status, body) = staff(&api, "POST", &path(refused, "deny"), Some(reason.clone())).await;
        assert_eq!(status, 200, "{body}");
    }
    let other = documented(&api, &doc, dispute, &path(objection, "dispute"), json!({})).await;
    assert_eq!(code(&other), (409, Some("not_a_refused_correction")), "a correction only");
    let nothing = documented(
        &api,
        &doc,
        lift,
        &path(id, "restriction-lifting"),
        json!({"reason": "r", "on": "2027-01-01"}),
    )
    .await;
    assert_eq!(code(&nothing), (409, Some("not_disputed")));
    dispatch_stream(&stack, &mut stream, &staff_address).await; // the refusals are told

    // The person replies a few days later.
    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());

    let statement = "Mijn geboortedatum is 3 mei 1980, niet 5 maart 1980.";
    let (status, body) =
        documented(&api, &doc, dispute, &path(id, "dispute"), json!({"statement": statement})).await;
    assert_eq!(status, 200, "{body}");
    let request = &body["request"];
    assert_eq!(request["status"], "denied", "the refusal stands");
    assert_eq!(request["closed_reason"], reason["reason"], "with its reason");
    assert_eq!(request["dispute"]["restriction"], "in_force");
    assert_eq!(request["dispute"]["restricted"], true);
    assert_eq!(request["dispute"]["statement"], statement);
    let again = documented(&api, &doc, dispute, &path(id, "dispute"), json!({})).await;
    assert_eq!(code(&again), (409, Some("already_disputed")));

    dispatch_stream(&stack, &mut stream, &staff_address).await;
    let noted =
        mails_titled(&stack, &address, "Uw privacyverzoek: wij hebben uw betwisting vastgelegd").await;
    assert_eq!(noted.len(), 1, "exactly once, however often the stream delivers it");
    for words in
        [statement, "2 december 2026", "beperken wij de verwerking", "artikel 18, eerste lid, onder a"]
    {
        assert!(noted[0].body.contains(words), "{words}: {}", noted[0].body);
    }
    // Its recipients restrict it too (GDPR Art. 19), told that it is disputed and what the person says.
    let told: Vec<_> = stack
        .mail_to("privacy@nimbus-hosting.example")
        .await
        .into_iter()
        .filter(|m| m.body.contains(&id.to_string()))
        .collect();
    assert_eq!(told.len(), 1, "the recipient is told once");
    assert!(told[0].subject.contains("please restrict the processing of"), "{}", told[0].subject);
    assert!(
        told[0].body.contains("disputes the accuracy") && told[0].body.contains("3 mei 1980"),
        "{}",
        told[0].body
    );

    // The lift is announced for a later day only, and told now.
    stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 10, 9, 0, 0).unwrap());
    let today = documented(
        &api,
        &doc,
        lift,
        &path(id, "restriction-lifting"),
        json!({"reason": "r", "on": "2026-12-10"}),
    )
    .await;
    assert_eq!(code(&today), (422, Some("lift_not_in_future")));
    let blank = documented(
        &api,
        &doc,
        lift,
        &path(id, "restriction-lifting"),
        json!({"reason": " ", "on": "2026-12-24"}),
    )
    .await;
    assert_eq!(code(&blank), (422, Some("reason_required")));
    let why = "De bron heeft uw geboortedatum met uw paspoort vergeleken.";
    let (status, body) = documented(
        &api,
        &doc,
        lift,
        &path(id, "restriction-lifting"),
        json!({"reason": why, "on": "2026-12-24"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["dispute"]["restriction"], "lifting");
    assert_eq!(body["request"]["dispute"]["restricted"], true, "it holds until the day");
    assert_eq!(body["request"]["dispute"]["lift_on"], "2026-12-24");
    let twice = documented(
        &api,
        &doc,
        lift,
        &path(id, "restriction-lifting"),
        json!({"reason": why, "on": "2026-12-28"}),
    )
    .await;
    assert_eq!(code(&twice), (409, Some("lift_already_announced")));

    dispatch_stream(&stack, &mut stream, &staff_address).await;
    let lifting =
        mails_titled(&stack, &address, "Uw privacyverzoek: de beperking van uw gegevens wordt opgeheven")
            .await;
    assert_eq!(lifting.len(), 1, "exactly once, however often the stream delivers it");
    for words in [why, "24 december 2026", "artikel 18, derde lid, AVG", "Autoriteit Persoonsgegevens"] {
        assert!(lifting[0].body.contains(words), "{words}: {}", lifting[0].body);
    }
    let audit: Vec<Event> =
        stack.deps().store.audit_trail(id).await.unwrap().iter().map(|e| e.event).collect();
    assert!(
        audit.ends_with(&[Event::Denied, Event::DisputeRecorded, Event::RestrictionLiftAnnounced]),
        "{audit:?}"
    );

    // The record of the request (CCPA regulations §7101) keeps the refusal as its response: what
    // followed it is no new answer.
    let records = stack.deps().store.records_of_year(2026).await.unwrap();
    let record = records.iter().find(|r| r.request_id == id).expect("a record of the request");
    assert_eq!(
        (record.status, record.responded_on.map(|d| d.to_string())),
        (Status::Denied, Some("2026-11-28".into()))
    );

    // From that day on it reads as lifted.
    stack.clock.advance(Duration::days(14));
    let (_, shown) = staff(&api, "GET", &format!("/staff/requests/{id}"), None).await;
    assert_eq!(shown["request"]["dispute"]["restriction"], "lifted");
    assert_eq!(shown["request"]["dispute"]["restricted"], false);
}

#[tokio::test]
async fn the_cli_confirms_receipt_accepts_a_fee_and_records_and_lifts_a_dispute() {
    let stack = Stack::new().await;
    let base = local_admin(&stack).await;
    let (_, pending) =
        submit(&stack.deps(), &submission(&unique_address("cli-receipt"), "access", "US-CA")).await;
    let pending = pending["request_id"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(&base, KEY, &["confirm-receipt", &pending]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Confirmation of receipt recorded for request {pending}")), "{out}");
    assert!(out.contains("Receipt confirmed at"), "{out}");
    let (code, _, err) = cli(&base, KEY, &["confirm-receipt", &pending]).await;
    assert_eq!((code, err.starts_with("error: already_confirmed:")), (1, true), "{err}");

    let fee = verified_request(&stack, &unique_address("cli-fee"), "objection", "GB").await.to_string();
    let (code, _, err) = cli(
        &base,
        KEY,
        &["excessive", &fee, "--reason", "Sixth time.", "--amount", "25.00", "--currency", "GBP"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&base, KEY, &["accept-fee", &fee]).await;
    assert_eq!(code, 0, "{err}");
    // Accepted today, Saturday 28 November: a month on, Monday 28 December.
    assert!(out.contains("the work restarts, now due 2026-12-28"), "{out}");

    let correction =
        verified_request(&stack, &unique_address("cli-dispute"), "rectification", "NL").await.to_string();
    let (code, _, err) = cli(&base, KEY, &["deny", &correction, "--reason", "Uw gegevens kloppen."]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        cli(&base, KEY, &["record-dispute", &correction, "--statement", "Mijn naam is Jansen."]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Dispute recorded") && out.contains("processing restricted"), "{out}");
    let (code, _, err) =
        cli(&base, KEY, &["lift-restriction", &correction, "--reason", "Nagekeken.", "--on", "2026-11-28"])
            .await;
    assert_eq!((code, err.starts_with("error: lift_not_in_future:")), (1, true), "{err}");
    let (code, out, err) =
        cli(&base, KEY, &["lift-restriction", &correction, "--reason", "Nagekeken.", "--on", "2026-12-15"])
            .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lifted on 2026-12-15") && out.contains("restricted until 2026-12-15"), "{out}");
}
