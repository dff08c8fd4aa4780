//! Requests nobody confirms, on the event path against the emulator: a request whose address was
//! never confirmed is closed by the sweep and the person told so once (timed out or locked, in
//! their language, never to a suppressed address), and a portability request whose third-party
//! recipient was not confirmed by its date goes ahead with the copy to the requester only.
//! Every stream batch is delivered twice and every sweep run again, as Lambda and the scheduler
//! may.

use chrono::{Duration, TimeZone, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::DynamoDbEventResponse as BatchResponse;
use devstack::mailbox::SentMail;
use devstack::stream::StreamReader;
use privacy_shared::domain::{Event, ExpiryReason, RequestId, Status};
use privacy_shared::jobs::ExportJob;
use privacy_shared::store::{MailSuppression, SuppressionCause};

struct Setup {
    stack: Stack,
    dispatcher: AwsDispatcher,
    sweeper: AwsSweeper,
    stream: StreamReader,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn setup() -> Setup {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let name = format!("export-{}.fifo", uuid::Uuid::new_v4().simple());
    let queue_url = devstack::provision::create_queue(&sqs, &name, None).await.unwrap();
    let staff = unique_address("staff");
    let dispatcher = dispatcher(&stack, &queue_url, &staff).await;
    let sweeper = sweeper(&stack, &staff);
    let stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    Setup { stack, dispatcher, sweeper, stream, sqs, queue_url }
}

impl Setup {
    /// Delivers the stream to `dispatch`, each batch twice, until it has nothing more to say.
    async fn dispatch(&mut self) {
        for _ in 0..10 {
            let records = self.stream.poll().await.unwrap();
            if records.is_empty() {
                return;
            }
            for _ in 0..2 {
                let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
                let response =
                    dispatch::handle(&self.dispatcher, LambdaEvent::new(event, Context::default())).await;
                assert_eq!(response.unwrap(), BatchResponse::default());
            }
        }
        panic!("the stream did not settle");
    }

    /// Runs the sweep twice at the clock's moment (the second finds nothing left to do); the
    /// first run's report.
    async fn sweep(&self) -> reminders::SweepReport {
        let first = run_sweep(&self.sweeper).await.unwrap();
        let again = run_sweep(&self.sweeper).await.unwrap();
        assert_eq!((again.expired, again.recipients_lapsed, again.reminded), (0, 0, 0), "{again:?}");
        first
    }

    async fn submit(&self, body: Value) -> RequestId {
        let (status, answer) = submit(&self.stack.deps(), &body.to_string()).await;
        assert_eq!(status, 202, "{answer}");
        RequestId::parse(answer["request_id"].as_str().unwrap()).unwrap()
    }

    async fn events(&self, id: RequestId) -> Vec<(Event, Option<String>)> {
        let trail = self.stack.deps().store.audit_trail(id).await.unwrap();
        trail.into_iter().map(|e| (e.event, e.reason)).collect()
    }

    async fn export_jobs(&self) -> Vec<ExportJob> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        out.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect()
    }
}

fn about(mails: &[SentMail], subject: &str) -> Vec<String> {
    mails.iter().filter(|m| m.subject == subject).map(SentMail::plain_text).collect()
}

#[tokio::test]
async fn a_request_never_confirmed_is_closed_on_day_14_and_the_person_told_once_in_their_language() {
    let mut setup = setup().await;
    let address = unique_address("never-confirmed");
    let id = setup.submit(json!({"email": address, "kind": "deletion", "region": "NL"})).await;
    setup.stack.clock.set(start_time() + Duration::days(14));
    assert_eq!(setup.sweep().await.expired, 1);
    setup.dispatch().await;
    setup.dispatch().await;

    let record = setup.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Expired);
    assert_eq!(record.closed_reason.as_deref(), Some(ExpiryReason::NotVerified.as_str()));
    let mails = setup.stack.mail_to(&address).await;
    let notices = about(&mails, "Een privacyverzoek voor dit e-mailadres is gesloten: het is niet bevestigd");
    assert_eq!(
        notices.len(),
        1,
        "exactly one notice: {:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let notice = &notices[0];
    for said in [
        "Geachte heer of mevrouw",
        "verwijdering van uw persoonsgegevens",
        &id.to_string(),
        "niet op tijd bevestigd",
        "gesloten zonder het uit te voeren",
        "de links in onze e-mails werken dus niet meer",
        "privacy@lifesize.com",
        "Autoriteit Persoonsgegevens",
    ] {
        assert!(notice.contains(said), "{said}: {notice}");
    }
    assert!(!notice.contains("verkeerde code"), "timed out, not locked: {notice}");
    assert!(!notice.contains("verkoop of het delen"), "no CCPA opt-out under the GDPR: {notice}");
    let mail = mails.iter().find(|m| m.subject.starts_with("Een privacyverzoek")).unwrap();
    let links = mail.links();
    let form = format!("{PUBLIC_BASE_URL}/privacy/deletion?lang=nl&region=NL");
    assert!(links.contains(&form), "a new request, in the same language and region: {links:?}");
    let status = format!("{PUBLIC_BASE_URL}/status?lang=nl#{id}.");
    assert!(links.iter().any(|l| l.starts_with(&status)), "the status page shows it closed: {links:?}");
    assert!(setup.stack.item(&format!("REQ#{id}"), "VERIFY").await.is_none(), "the codes are deleted");
}

#[tokio::test]
async fn a_request_locked_by_wrong_codes_and_never_confirmed_is_closed_as_locked_and_says_so() {
    let mut setup = setup().await;
    let address = unique_address("locked");
    let id =
        setup.submit(json!({"email": address, "kind": "access", "region": "US-CA", "language": "en"})).await;
    setup.stack.clock.set(start_time() + Duration::days(3));
    assert_eq!(setup.sweep().await.reminded, 1);
    // After the reminder's fresh link, someone guesses until the links lock.
    setup.stack.clock.set(start_time() + Duration::days(5));
    let verifier = setup.stack.verifier();
    let mut last = 0;
    for _ in 0..5 {
        last = verify_with(&verifier, &id.to_string(), &"A".repeat(43)).await.0;
    }
    assert_eq!(last, 403, "locked");
    setup.stack.clock.set(start_time() + Duration::days(14));
    assert_eq!(setup.sweep().await.expired, 1);
    setup.dispatch().await;

    let record = setup.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.closed_reason.as_deref(), Some(ExpiryReason::TooManyAttempts.as_str()));
    let expired: Vec<_> = setup.events(id).await.into_iter().filter(|(e, _)| *e == Event::Expired).collect();
    assert_eq!(expired, vec![(Event::Expired, Some("too_many_attempts".to_owned()))], "audited with why");
    let mails = setup.stack.mail_to(&address).await;
    let notices = about(&mails, "A privacy request for this email address was closed: it was not confirmed");
    assert_eq!(notices.len(), 1);
    let notice = &notices[0];
    for said in [
        "A wrong code was entered too many times",
        "could not verify that the request came from the owner of this email address",
        "nothing has been done with your data",
        // CCPA regulations §7024(b): where the general practices are described.
        "described in our privacy policy",
        "you do not need to confirm anything",
        "California Privacy Protection Agency",
    ] {
        assert!(notice.contains(said), "{said}: {notice}");
    }
    let links = mails.iter().find(|m| m.subject.starts_with("A privacy request")).unwrap().links();
    for form in ["access", "opt_out_of_sale"] {
        let link = format!("{PUBLIC_BASE_URL}/privacy/{form}?lang=en&region=US-CA");
        assert!(links.contains(&link), "{link}: {links:?}");
    }
}

#[tokio::test]
async fn an_address_that_cannot_receive_our_mail_is_not_told_and_the_withholding_is_audited() {
    let mut setup = setup().await;
    let address = unique_address("bounced");
    let id = setup.submit(json!({"email": address, "kind": "objection", "region": "DE"})).await;
    let subject = privacy_shared::domain::EmailAddress::parse(&address).unwrap().subject_key();
    let bounced =
        MailSuppression { cause: SuppressionCause::Bounce, since: start_time(), request_id: Some(id) };
    setup.stack.deps().store.suppress_mail(&subject, &bounced).await.unwrap();
    setup.stack.clock.set(start_time() + Duration::days(14));
    assert_eq!(setup.sweep().await.expired, 1);
    setup.dispatch().await;

    assert_eq!(setup.stack.mail_to(&address).await.len(), 1, "the verification email only");
    let events = setup.events(id).await;
    let withheld: Vec<_> = events.iter().filter(|(e, _)| *e == Event::MailWithheld).collect();
    assert_eq!(withheld, vec![&(Event::MailWithheld, Some("unverified".to_owned()))], "{events:?}");
}

#[tokio::test]
async fn a_request_made_by_an_agent_that_expires_tells_the_person_and_the_agent_once_each() {
    let mut setup = setup().await;
    let (person, agent) = (unique_address("represented"), unique_address("agent"));
    let agent_json = json!({"name": "Agatha Agent", "email": agent, "relationship": "authorised_agent"});
    setup.submit(json!({"email": person, "kind": "deletion", "region": "US-CA", "agent": agent_json})).await;
    setup.stack.clock.set(start_time() + Duration::days(14));
    assert_eq!(setup.sweep().await.expired, 1);
    setup.dispatch().await;

    let notices = about(
        &setup.stack.mail_to(&person).await,
        "A privacy request for this email address was closed: it was not confirmed",
    );
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains("made by Agatha Agent on your behalf"), "{}", notices[0]);
    let to_agent = setup.stack.mail_to(&agent).await;
    assert_eq!(
        to_agent.len(),
        2,
        "told it came in, and that it closed: {:?}",
        to_agent.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(!to_agent[1].plain_text().contains(&person), "the agent is not sent the person's mail");
}

/// A verified portability request to `recipient`, triaged, its confirmation mail sent; returns
/// the id and the confirmation mail.
async fn waiting_for_recipient(setup: &mut Setup, requester: &str, recipient: &str) -> (RequestId, SentMail) {
    let body = json!({"email": requester, "kind": "portability", "region": "NL", "language": "en", "recipient": recipient});
    let id = setup.submit(body).await;
    let (linked, token) = link_parts(&setup.stack.mail_to(requester).await[0]);
    assert_eq!(verify_with(&setup.stack.verifier(), &linked, &token).await.0, 200);
    setup.dispatch().await;
    let mails = setup.stack.mail_to(requester).await;
    let confirmation =
        mails.into_iter().find(|m| m.subject == "Confirm where we may send your data").unwrap();
    (id, confirmation)
}

fn recipient_token(mail: &SentMail) -> String {
    let link =
        mail.links().into_iter().find(|l| l.contains("confirm=recipient")).expect("a confirmation link");
    link.split("token=").nth(1).unwrap().split('&').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_recipient_not_confirmed_by_its_date_lapses_once_and_the_export_goes_ahead_without_it() {
    let mut setup = setup().await;
    let (requester, recipient) = (unique_address("lapsing"), unique_address("new-service"));
    let (id, confirmation) = waiting_for_recipient(&mut setup, &requester, &recipient).await;
    // Cleared on Saturday 28 November: the link works through Saturday 5 December.
    let text = confirmation.plain_text();
    assert!(
        text.contains("If you do not confirm by 5 December 2026, we send the copy to you only, and nothing to this recipient."),
        "{text}"
    );
    assert!(setup.export_jobs().await.is_empty(), "nothing before the date");

    // The last minute of 5 December in Amsterdam: still waiting.
    setup.stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 5, 22, 59, 0).unwrap());
    assert_eq!(setup.sweep().await.recipients_lapsed, 0);
    setup.dispatch().await;
    assert!(setup.export_jobs().await.is_empty());
    // The sweep of Sunday 6 December: the date has passed.
    setup.stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap());
    assert_eq!(setup.sweep().await.recipients_lapsed, 1);
    setup.dispatch().await;

    let record = setup.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Verified, "a new version of the same status");
    assert!(record.recipient_lapsed_at.is_some() && record.recipient_confirmed_at.is_none());
    let lapsed: Vec<_> =
        setup.events(id).await.into_iter().filter(|(e, _)| *e == Event::RecipientLapsed).collect();
    assert_eq!(lapsed.len(), 1, "audited once");
    assert_eq!(
        setup.export_jobs().await,
        vec![ExportJob { request_id: id, version: record.version }],
        "one export"
    );
    // Too late to confirm now: the link stopped working with the wait.
    let late = post_json(&format!("/requests/{id}/recipient"), &token_body(&recipient_token(&confirmation)));
    assert_eq!(verify::handle(&setup.stack.verifier(), late).await.unwrap().status(), 400);
    assert!(setup.stack.item(&format!("REQ#{id}"), "RECIPIENT_WAIT").await.is_none(), "off the list");
    assert!(setup.stack.item(&format!("REQ#{id}"), "VERIFY#recipient").await.is_none());
    setup.stack.clock.advance(Duration::days(1));
    assert_eq!(setup.sweep().await.recipients_lapsed, 0, "the next day finds nothing");
    assert!(setup.stack.mail_to(&recipient).await.is_empty(), "nothing to the recipient");
}

#[tokio::test]
async fn a_recipient_confirmed_in_time_leaves_the_list_and_nothing_lapses_later() {
    let mut setup = setup().await;
    let (requester, recipient) = (unique_address("confirming"), unique_address("new-service"));
    let (id, confirmation) = waiting_for_recipient(&mut setup, &requester, &recipient).await;
    assert!(setup.stack.item(&format!("REQ#{id}"), "RECIPIENT_WAIT").await.is_some(), "listed for the sweep");
    setup.stack.clock.advance(Duration::days(6));
    let confirm =
        post_json(&format!("/requests/{id}/recipient"), &token_body(&recipient_token(&confirmation)));
    assert_eq!(verify::handle(&setup.stack.verifier(), confirm).await.unwrap().status(), 200);
    setup.dispatch().await;
    assert!(setup.stack.item(&format!("REQ#{id}"), "RECIPIENT_WAIT").await.is_none(), "off the list");
    assert_eq!(setup.export_jobs().await.len(), 1);

    setup.stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap());
    assert_eq!(setup.sweep().await.recipients_lapsed, 0);
    let record = setup.stack.deps().store.get(id).await.unwrap().unwrap();
    assert!(record.recipient_confirmed_at.is_some() && record.recipient_lapsed_at.is_none());
}

#[tokio::test]
async fn a_wait_whose_request_was_closed_meanwhile_just_leaves_the_list() {
    let mut setup = setup().await;
    let (requester, recipient) = (unique_address("closed"), unique_address("new-service"));
    let (id, _) = waiting_for_recipient(&mut setup, &requester, &recipient).await;
    let store = setup.stack.deps().store;
    let current = store.get(id).await.unwrap().unwrap();
    let reason = privacy_shared::domain::StaffText::parse("We cannot send this copy.").unwrap();
    let deny = privacy_shared::domain::Transition::Deny {
        reason,
        basis: privacy_shared::domain::DenialBasis::Other,
    };
    store.transition(&current, privacy_shared::store::Change::system(deny, start_time())).await.unwrap();

    setup.stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap());
    let report = setup.sweep().await;
    assert_eq!((report.recipients_lapsed, report.deferred), (0, 0), "{report:?}");
    assert!(setup.stack.item(&format!("REQ#{id}"), "RECIPIENT_WAIT").await.is_none(), "retired");
    assert_eq!(store.get(id).await.unwrap().unwrap().status, Status::Denied);
}

#[tokio::test]
async fn the_copy_of_an_unconfirmed_recipient_goes_to_the_requester_only_and_the_completion_says_why() {
    let mut world = crate::rights::world().await;
    let (requester, recipient) = (unique_address("copy-to-me"), unique_address("new-service"));
    let body = json!({"email": requester, "kind": "portability", "region": "NL", "recipient": recipient});
    let (status, answer) = submit(&world.intake.deps(), &body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["request_id"].as_str().unwrap().to_owned();
    let (linked, token) = link_parts(&world.stack.mail_to(&requester).await[0]);
    assert_eq!(verify_with(&world.verify.verifier(), &linked, &token).await.0, 200);
    world.drain().await;
    let confirmation = world.stack.mail_to(&requester).await.pop().unwrap();
    assert_eq!(confirmation.subject, "Bevestig naar wie wij uw gegevens mogen sturen");
    assert!(
        confirmation.plain_text().contains(
            "Bevestigt u niet uiterlijk op 5 december 2026, dan sturen wij de kopie alleen naar u, en niets naar deze ontvanger."
        ),
        "{}",
        confirmation.plain_text()
    );

    world.stack.clock.set(Utc.with_ymd_and_hms(2026, 12, 6, 6, 0, 0).unwrap());
    let sweeper = sweeper(&world.stack, &unique_address("staff"));
    assert_eq!(run_sweep(&sweeper).await.unwrap().recipients_lapsed, 1);
    world.drain().await;
    assert_eq!(run_sweep(&sweeper).await.unwrap().recipients_lapsed, 0);
    world.drain().await;

    let record = world.stack.deps().store.get(RequestId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed, "done within its deadline, not stalled");
    let mails = world.stack.mail_to(&requester).await;
    let done: Vec<_> = mails.iter().filter(|m| m.subject == "Uw privacyverzoek is afgehandeld").collect();
    assert_eq!(done.len(), 1, "one completion notice");
    let text = done[0].plain_text();
    assert!(
        text.contains(&format!(
            "Daarom hebben wij de kopie alleen naar u gestuurd, en niets naar {recipient}."
        )),
        "{text}"
    );
    assert!(done[0].links().iter().any(|l| l.contains("/download?token=")), "the requester's own copy");
    assert!(world.stack.mail_to(&recipient).await.is_empty(), "nothing to the recipient");
}

/// The waits' contract, held against both stores: listed until they lapse, soonest first, a new
/// one replacing its request's earlier one; the transitions that end a wait take it off in their
/// own write, the lapse stopping the confirmation link with it.
async fn waits_are_listed_until_they_lapse_and_the_end_of_a_wait_takes_them_off<S>(store: &S)
where
    S: privacy_shared::store::RequestStore,
{
    use privacy_shared::domain::{Actor, TokenHash, Transition, Triage};
    use privacy_shared::store::{Change, LiveToken, RecipientWait, TokenSlot};
    let at = |days: i64| start_time() + Duration::days(days);
    let mut waiting = Vec::new();
    for n in 0..3 {
        let address = unique_address("waits");
        let email = privacy_shared::domain::EmailAddress::parse(&address).unwrap();
        let calendar = privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let region = privacy_shared::domain::Region::parse("NL").unwrap();
        let deadlines = calendar.deadlines(region.regime(), at(0));
        let record = privacy_shared::domain::RequestRecord {
            recipient: Some(privacy_shared::domain::EmailAddress::parse("new@example.org").unwrap()),
            ..privacy_shared::domain::RequestRecord::received(
                RequestId::generate(),
                privacy_shared::domain::RequestKind::Portability,
                region,
                privacy_shared::domain::Language::Nl,
                email,
                at(0),
                deadlines,
            )
        };
        let live = |token: &str| LiveToken { token_hash: TokenHash::of_secret(token), expires_at: at(8) };
        store.create(&record, &live("t")).await.unwrap();
        let verify =
            Change::new(Transition::Verify { token: TokenHash::of_secret("t") }, at(0), Actor::Requester);
        let verified = store.transition(&record, verify).await.unwrap();
        let cleared = Change::system(Transition::Triage(Triage::default()), at(0));
        let cleared = store.transition(&verified, cleared).await.unwrap();
        assert!(store.issue_token(record.id, TokenSlot::Recipient, &live("r"), at(0)).await.unwrap());
        // Listed twice: the second replaces the first.
        store.await_recipient(&RecipientWait { request_id: record.id, lapses_at: at(30) }).await.unwrap();
        let wait = RecipientWait { request_id: record.id, lapses_at: at(7) + Duration::hours(n) };
        store.await_recipient(&wait).await.unwrap();
        waiting.push((cleared, wait));
    }
    let mine = |waits: Vec<RecipientWait>| -> Vec<RecipientWait> {
        waits.into_iter().filter(|w| waiting.iter().any(|(r, _)| r.id == w.request_id)).collect()
    };
    assert!(mine(store.lapsed_recipient_waits(at(7) - Duration::seconds(1), 100).await.unwrap()).is_empty());
    let due = mine(store.lapsed_recipient_waits(at(7) + Duration::hours(1), 100).await.unwrap());
    assert_eq!(due, vec![waiting[0].1, waiting[1].1], "lapsed by then, soonest first");

    let (first, _) = &waiting[0];
    store.transition(first, Change::system(Transition::LapseRecipient, at(8))).await.unwrap();
    assert!(store.secret(first.id, TokenSlot::Recipient).await.unwrap().is_none(), "the link stops working");
    let (second, _) = &waiting[1];
    let confirm = Transition::ConfirmRecipient { token: TokenHash::of_secret("r") };
    store.transition(second, Change::new(confirm, at(6), Actor::Requester)).await.unwrap();
    let (third, _) = &waiting[2];
    store.end_recipient_wait(third.id).await.unwrap();
    store.end_recipient_wait(third.id).await.unwrap();
    assert!(mine(store.lapsed_recipient_waits(at(60), 100).await.unwrap()).is_empty(), "all off the list");
}

#[tokio::test]
async fn recipient_waits_keep_the_same_contract_in_dynamodb_and_in_memory() {
    let stack = Stack::new().await;
    waits_are_listed_until_they_lapse_and_the_end_of_a_wait_takes_them_off(&stack.deps().store).await;
    waits_are_listed_until_they_lapse_and_the_end_of_a_wait_takes_them_off(
        &privacy_shared::store::MemoryStore::new(),
    )
    .await;
}
