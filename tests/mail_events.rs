//! What became of the mail: SES's events, built from mail the system really sent (its SES message
//! id and tags, as the mailer recorded them), delivered through SNS to the real `mail-events`
//! handler against the emulator; and what the senders do with an address that bounced for good
//! or complained.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

use crate::support::*;
use devstack::stream::StreamReader;
use privacy_shared::Clock;
use privacy_shared::Deps;
use privacy_shared::domain::{Actor, Completion, EmailAddress, Event, RequestId, Transition};
use privacy_shared::mail::{MailError, Mailer, MessageId, MessageKind, OutgoingEmail, SesMailer};
use privacy_shared::store::{Change, DynamoStore, MailSuppression, SuppressionCause};

/// The real SES mailer (the emulator), keeping what it sent with the id SES gave each mail.
#[derive(Clone)]
struct Recorded {
    inner: SesMailer,
    sent: Arc<Mutex<Vec<(MessageId, OutgoingEmail)>>>,
}

impl Mailer for Recorded {
    async fn send(&self, email: &OutgoingEmail) -> Result<MessageId, MailError> {
        let id = self.inner.send(email).await?;
        self.sent.lock().unwrap().push((id.clone(), email.clone()));
        Ok(id)
    }
}

impl Recorded {
    fn of(stack: &Stack) -> Recorded {
        Recorded { inner: stack.deps().mailer, sent: Arc::default() }
    }

    fn to(&self, address: &str) -> Vec<(MessageId, OutgoingEmail)> {
        let sent = self.sent.lock().unwrap();
        sent.iter().filter(|(_, m)| m.to.as_str().eq_ignore_ascii_case(address)).cloned().collect()
    }

    /// The one mail of this kind sent to `address`.
    fn one(&self, address: &str, kind: MessageKind) -> (MessageId, OutgoingEmail) {
        let mut of_kind: Vec<_> = self.to(address).into_iter().filter(|(_, m)| m.tags.kind == kind).collect();
        assert_eq!(of_kind.len(), 1, "one {kind} mail to the address");
        of_kind.remove(0)
    }

    fn kinds_to(&self, address: &str) -> Vec<MessageKind> {
        self.to(address).into_iter().map(|(_, m)| m.tags.kind).collect()
    }
}

struct World {
    stack: Stack,
    mailer: Recorded,
    staff: String,
    events: mail_events::MailEvents<DynamoStore, Recorded>,
}

async fn world() -> World {
    let stack = Stack::new().await;
    let mailer = Recorded::of(&stack);
    let staff = unique_address("staff");
    let settings =
        privacy_shared::config::MailEventsSettings::load(&stack.env(&[("STAFF_ADDRESS", staff.clone())]))
            .expect("mail-events settings are valid");
    let real = mail_events::MailEvents::with_sdk(&stack.sdk, settings, stack.clock.clone());
    let events = mail_events::MailEvents {
        store: real.store,
        mailer: mailer.clone(),
        templates: real.templates,
        staff: real.staff,
        clock: real.clock,
    };
    World { stack, mailer, staff, events }
}

impl World {
    fn deps(&self) -> Deps<DynamoStore, Recorded> {
        recorded(self.stack.deps(), &self.mailer)
    }

    fn sweeper(&self) -> reminders::Sweeper<DynamoStore, Recorded> {
        let real = sweeper(&self.stack, &self.staff);
        reminders::Sweeper {
            deps: recorded(real.deps, &self.mailer),
            staff: real.staff,
            policy: real.policy,
            metrics: real.metrics,
        }
    }

    /// Submits through the real intake handler, its mail recorded; the request's id.
    async fn submit(&self, address: &str, kind: &str, region: &str) -> RequestId {
        let (status, body) = submit(&self.deps(), &submission(address, kind, region)).await;
        assert_eq!(status, 202);
        RequestId::parse(body["request_id"].as_str().unwrap()).unwrap()
    }

    /// Hands SNS a message for mail-events, as the topic's subscription does.
    async fn publish(&self, message: &str) {
        let event = json!({"Records": [sns_record(message)]});
        let event: mail_events::SnsEvent = serde_json::from_value(event).unwrap();
        mail_events::handle(&self.events, lambda_runtime::LambdaEvent::new(event, Default::default()))
            .await
            .expect("the mail event is handled");
    }

    async fn trail(&self, id: RequestId) -> Vec<(Event, Option<String>, DateTime<Utc>)> {
        let trail = self.stack.deps().store.audit_trail(id).await.unwrap();
        trail.into_iter().map(|e| (e.event, e.reason, e.at)).collect()
    }

    async fn suppression(&self, address: &str) -> Option<MailSuppression> {
        let subject = EmailAddress::parse(address).unwrap().subject_key();
        self.stack.deps().store.mail_suppression(&subject).await.unwrap()
    }
}

/// The same wiring, its mail recorded.
fn recorded(deps: Deps<DynamoStore, SesMailer>, mailer: &Recorded) -> Deps<DynamoStore, Recorded> {
    Deps {
        store: deps.store,
        mailer: mailer.clone(),
        clock: deps.clock,
        config: deps.config,
        templates: deps.templates,
    }
}

/// One SNS record of the configuration set's topic carrying `message`.
fn sns_record(message: &str) -> Value {
    json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:MailEventsTopic:0b9c6a3e",
        "Sns": {
            "Type": "Notification",
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:MailEventsTopic",
            "Subject": null,
            "Message": message,
            "Timestamp": "2026-11-28T09:00:05.000Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/cert.pem",
            "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    })
}

/// SES's event (event publishing format) about a mail we sent: `mail` from what was sent, plus
/// the event type's own object.
fn ses_event(sent: &(MessageId, OutgoingEmail), event_type: &str, detail: Value) -> String {
    let (id, email) = sent;
    let mut tags = serde_json::Map::new();
    tags.insert("ses:configuration-set".into(), json!([CONFIGURATION_SET]));
    tags.insert("ses:from-domain".into(), json!(["example.com"]));
    for (name, value) in email.tags.pairs() {
        tags.insert(name.to_owned(), json!([value]));
    }
    let mut event = json!({
        "eventType": event_type,
        "mail": {
            "timestamp": "2026-11-28T09:00:00.000Z",
            "source": MAIL_FROM,
            "sendingAccountId": "123456789012",
            "messageId": id.as_str(),
            "destination": [email.to.as_str()],
            "headersTruncated": false,
            "tags": tags,
        }
    });
    if let Value::Object(detail) = detail {
        event.as_object_mut().unwrap().extend(detail);
    }
    event.to_string()
}

fn delivery(sent: &(MessageId, OutgoingEmail), at: DateTime<Utc>) -> String {
    let detail = json!({"delivery": {
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "processingTimeMillis": 1200,
        "recipients": [sent.1.to.as_str()],
        "smtpResponse": "250 2.6.0 Message received",
        "reportingMTA": "a1-2.smtp-out.eu-west-1.amazonses.com"
    }});
    ses_event(sent, "Delivery", detail)
}

fn bounce(sent: &(MessageId, OutgoingEmail), bounce_type: &str, at: DateTime<Utc>) -> String {
    let detail = json!({"bounce": {
        "feedbackId": "0102018c-bounce",
        "bounceType": bounce_type,
        "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": sent.1.to.as_str(), "action": "failed", "status": "5.1.1"}],
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "reportingMTA": "dns; a1-2.smtp-out.eu-west-1.amazonses.com"
    }});
    ses_event(sent, "Bounce", detail)
}

fn complaint(sent: &(MessageId, OutgoingEmail), at: DateTime<Utc>) -> String {
    let detail = json!({"complaint": {
        "feedbackId": "0102018c-complaint",
        "complainedRecipients": [{"emailAddress": sent.1.to.as_str()}],
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "complaintFeedbackType": "abuse"
    }});
    ses_event(sent, "Complaint", detail)
}

fn in_seconds(stack: &Stack, seconds: i64) -> DateTime<Utc> {
    stack.clock.now() + Duration::seconds(seconds)
}

#[tokio::test]
async fn every_mail_carries_its_kind_and_request_as_tags_and_a_delivery_is_recorded_on_the_request() {
    let world = world().await;
    let address = unique_address("delivered");
    let id = world.submit(&address, "objection", "NL").await;
    let verification = world.mailer.one(&address, MessageKind::Verification);
    assert_eq!(verification.1.tags.request, Some(id));
    assert!(!verification.0.as_str().is_empty(), "SES gave the mail an id");
    let mailbox = world.stack.mail_to(&address).await;
    assert!(mailbox.iter().any(|m| m.id == verification.0.as_str()), "the id is the one SES keeps");

    let delivered_at = in_seconds(&world.stack, 2);
    world.publish(&delivery(&verification, delivered_at)).await;

    let trail = world.trail(id).await;
    let delivered =
        trail.iter().find(|(e, _, _)| *e == Event::MailDelivered).expect("the delivery is recorded");
    assert_eq!((delivered.1.as_deref(), delivered.2), (Some("verification"), delivered_at));
    let stored = world.stack.deps().store.audit_trail(id).await.unwrap();
    for event in stored {
        let shown = serde_json::to_string(&event).unwrap();
        assert!(!shown.contains("delivered."), "no address in the audit trail: {shown}");
    }
}

#[tokio::test]
async fn a_ccpa_confirmation_of_receipt_counts_when_it_is_delivered_not_when_it_is_sent() {
    let world = world().await;
    let delivered = unique_address("ccpa-delivered");
    let lost = unique_address("ccpa-lost");
    let delivered_id = world.submit(&delivered, "access", "US-CA").await;
    let lost_id = world.submit(&lost, "access", "US-CA").await;
    let store = world.stack.deps().store;
    for id in [delivered_id, lost_id] {
        let record = store.get(id).await.unwrap().unwrap();
        assert_eq!(record.acknowledged_at, None, "sent is not yet acknowledged");
    }

    let delivered_at = in_seconds(&world.stack, 3);
    let verification = world.mailer.one(&delivered, MessageKind::Verification);
    world.publish(&delivery(&verification, delivered_at)).await;
    let record = store.get(delivered_id).await.unwrap().unwrap();
    assert_eq!(record.acknowledged_at, Some(delivered_at), "acknowledged at the delivery");
    assert_eq!(store.get(lost_id).await.unwrap().unwrap().acknowledged_at, None);

    // Received Saturday 28 November: acknowledge by Friday 11 December. Two business days before,
    // the digest names the request no confirmation reached, though its reminder was sent.
    world.stack.clock.set(chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 9, 6, 0, 0).unwrap());
    let report = reminders::sweep(&world.sweeper()).await.unwrap();
    assert_eq!(report.reminded, 2, "{report:?}");
    assert_eq!(report.digest_items, 1, "{report:?}");
    let (_, digest) = world.mailer.one(&world.staff, MessageKind::Digest);
    assert!(digest.subject.ends_with(": 1 acknowledgement due"), "{}", digest.subject);
    assert!(digest.text.contains(&lost_id.to_string()), "{}", digest.text);
    assert!(!digest.text.contains(&delivered_id.to_string()), "{}", digest.text);
}

#[tokio::test]
async fn a_permanent_bounce_suppresses_the_address_and_the_reminder_is_withheld() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = privacy_shared::telemetry::subscriber(move || writer.clone(), Some("trace"), true);
    let _guard = tracing::subscriber::set_default(subscriber);

    let world = world().await;
    let address = unique_address("Bounced.Person");
    let id = world.submit(&address, "deletion", "NL").await;
    let verification = world.mailer.one(&address, MessageKind::Verification);
    let bounced_at = in_seconds(&world.stack, 4);
    world.publish(&bounce(&verification, "Permanent", bounced_at)).await;

    let suppression = world.suppression(&address).await.expect("the address is suppressed");
    assert_eq!(
        suppression,
        MailSuppression { cause: SuppressionCause::Bounce, since: bounced_at, request_id: Some(id) }
    );
    let subject = EmailAddress::parse(&address).unwrap().subject_key();
    let item = world.stack.item(&format!("SUBJ#{}", subject.as_str()), "MAIL#suppressed").await.unwrap();
    let stored = format!("{item:?}").to_lowercase();
    assert!(!stored.contains("bounced.person") && !stored.contains("example"), "no address stored: {stored}");

    world.stack.clock.set(start_time() + Duration::days(3));
    let report = reminders::sweep(&world.sweeper()).await.unwrap();
    assert_eq!(report.reminded, 0, "{report:?}");
    assert_eq!(world.mailer.kinds_to(&address), [MessageKind::Verification], "no reminder went out");
    let events: Vec<(Event, Option<String>)> =
        world.trail(id).await.into_iter().map(|(e, r, _)| (e, r)).collect();
    assert!(events.contains(&(Event::MailBounced, Some("verification: permanent".into()))), "{events:?}");
    assert!(events.contains(&(Event::MailWithheld, Some("reminder".into()))), "{events:?}");
    assert!(!events.iter().any(|(e, _)| *e == Event::Reminded));
    // Once withheld, the next sweep does not try again.
    world.stack.clock.advance(Duration::hours(2));
    reminders::sweep(&world.sweeper()).await.unwrap();
    let withheld = world.trail(id).await.into_iter().filter(|(e, _, _)| *e == Event::MailWithheld).count();
    assert_eq!(withheld, 1);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap().to_lowercase();
    assert!(logs.contains("mail suppressed") && logs.contains("mail withheld"), "{logs}");
    for secret in ["bounced.person", &verification.1.subject.to_lowercase()] {
        assert!(!logs.contains(secret), "the logs carry {secret}");
    }
}

#[tokio::test]
async fn the_answer_still_goes_to_a_suppressed_address_and_staff_are_alerted_first() {
    let world = world().await;
    let address = unique_address("answered");
    let id = world.submit(&address, "objection", "NL").await;
    let (_, token) = link_parts(world.stack.mail_to(&address).await.last().unwrap());
    assert_eq!(verify_with(&world.stack.verifier(), &id.to_string(), &token).await.0, 200);
    let verification = world.mailer.one(&address, MessageKind::Verification);
    world.publish(&complaint(&verification, in_seconds(&world.stack, 5))).await;

    // Staff complete the objection; dispatch sends the answer from the stream.
    let real = dispatcher(&world.stack, "unused", &world.staff).await;
    let dispatcher = dispatch::Dispatcher {
        deps: recorded(real.deps, &world.mailer),
        queue: real.queue,
        staff: real.staff,
        export_retention_days: real.export_retention_days,
        data: real.data,
        map: real.map,
        timeout: real.timeout,
        record_retention: real.record_retention,
    };
    let mut stream = StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let store = world.stack.deps().store;
    let current = store.get(id).await.unwrap().unwrap();
    let done = Transition::Complete(Completion::ByStaff { note: None });
    let staff = Actor::Staff(STAFF_ARN.to_owned());
    store.transition(&current, Change::new(done, world.stack.clock.now(), staff)).await.unwrap();
    let records = stream.poll().await.unwrap();
    let event: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(json!({"Records": records})).unwrap();
    let response = dispatch::handle(&dispatcher, lambda_runtime::LambdaEvent::new(event, Default::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());

    assert_eq!(world.mailer.kinds_to(&address), [MessageKind::Verification, MessageKind::Completed]);
    let (_, alert) = world.mailer.one(&world.staff, MessageKind::AnswerAlert);
    assert_eq!(alert.tags.request, Some(id));
    assert!(alert.subject.contains(&id.to_string()), "{}", alert.subject);
    assert!(alert.text.contains("reported our mail as spam"), "{}", alert.text);
    for text in [&alert.subject, &alert.text, &alert.html] {
        assert!(!text.contains(&address) && !text.contains("answered"), "no address in the alert");
    }
    let sent = world.mailer.sent.lock().unwrap().clone();
    let position = |kind| sent.iter().position(|(_, m)| m.tags.kind == kind).unwrap();
    assert!(position(MessageKind::AnswerAlert) < position(MessageKind::Completed), "the alert goes first");
    let events: Vec<Event> = world.trail(id).await.into_iter().map(|(e, _, _)| e).collect();
    assert!(events.contains(&Event::MailComplained) && events.contains(&Event::AnswerToSuppressedAddress));
}

#[tokio::test]
async fn an_answer_that_bounces_for_good_alerts_staff_once() {
    let world = world().await;
    let address = unique_address("answer-bounced");
    let id = world.submit(&address, "restriction", "NL").await;
    let (_, token) = link_parts(world.stack.mail_to(&address).await.last().unwrap());
    assert_eq!(verify_with(&world.stack.verifier(), &id.to_string(), &token).await.0, 200);
    let store = world.stack.deps().store;
    let current = store.get(id).await.unwrap().unwrap();
    let reason = privacy_shared::domain::StaffText::parse("The processing is required by law.").unwrap();
    let denied = store
        .transition(
            &current,
            Change::new(
                Transition::Deny { reason, basis: privacy_shared::domain::DenialBasis::Other },
                world.stack.clock.now(),
                Actor::System,
            ),
        )
        .await
        .unwrap();
    let answer = world.deps().templates.denied(&denied, world.deps().config.status_page()).unwrap();
    let sent = (world.mailer.send(&answer).await.unwrap(), answer);

    let message = bounce(&sent, "Permanent", in_seconds(&world.stack, 6));
    world.publish(&message).await;
    world.publish(&message).await;

    let (_, alert) = world.mailer.one(&world.staff, MessageKind::AnswerAlert);
    assert!(alert.text.contains("denied mail of privacy request") && alert.text.contains("bounced for good"));
    assert!(world.suppression(&address).await.is_some());
}

#[tokio::test]
async fn a_recipient_whose_instruction_bounces_is_an_alert_to_staff_once_not_a_silent_skip() {
    use privacy_shared::mail::templates::Instruction;
    let world = world().await;
    let address = unique_address("recipient-bounce");
    let id = world.submit(&address, "restriction", "NL").await;
    let record = world.stack.deps().store.get(id).await.unwrap().unwrap();
    let processor = unique_address("processor");
    let to = EmailAddress::parse(&processor).unwrap();
    let instruction = world
        .deps()
        .templates
        .recipient_instruction(
            &to,
            "Mailing platform",
            &record,
            &["marketing_contacts"],
            Instruction::Restrict,
        )
        .unwrap();
    let sent = (world.mailer.send(&instruction).await.unwrap(), instruction);

    // SES gave up on a full mailbox: not for good, and still not told.
    let message = bounce(&sent, "Transient", in_seconds(&world.stack, 9));
    world.publish(&message).await;
    world.publish(&message).await;

    let (_, alert) = world.mailer.one(&world.staff, MessageKind::AnswerAlert);
    assert!(alert.subject.contains(&id.to_string()), "{}", alert.subject);
    assert!(alert.text.contains("has not been told"), "{}", alert.text);
    assert!(!alert.text.contains(&processor) && !alert.text.contains(&address), "no address in the alert");
    let events: Vec<(Event, Option<String>)> =
        world.trail(id).await.into_iter().map(|(e, r, _)| (e, r)).collect();
    assert!(
        events.contains(&(Event::MailBounced, Some("recipient_instruction: transient".into()))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_complaint_suppresses_the_address_and_a_repeated_submission_gets_no_mail() {
    let world = world().await;
    let address = unique_address("complained");
    let id = world.submit(&address, "access", "NL").await;
    let verification = world.mailer.one(&address, MessageKind::Verification);
    let at = in_seconds(&world.stack, 7);
    world.publish(&complaint(&verification, at)).await;
    let suppression = world.suppression(&address).await.expect("suppressed");
    assert_eq!(suppression.cause, SuppressionCause::Complaint);

    world.stack.clock.advance(Duration::hours(2));
    assert_eq!(world.submit(&address, "access", "NL").await, id, "answered as usual");
    assert_eq!(world.mailer.kinds_to(&address), [MessageKind::Verification], "no second link was sent");
    let events: Vec<Event> = world.trail(id).await.into_iter().map(|(e, _, _)| e).collect();
    assert!(events.contains(&Event::MailComplained) && events.contains(&Event::MailWithheld), "{events:?}");
}

#[tokio::test]
async fn a_transient_bounce_is_recorded_and_suppresses_nothing() {
    let world = world().await;
    let address = unique_address("mailbox-full");
    let id = world.submit(&address, "objection", "NL").await;
    let verification = world.mailer.one(&address, MessageKind::Verification);
    world.publish(&bounce(&verification, "Transient", in_seconds(&world.stack, 8))).await;

    assert_eq!(world.suppression(&address).await, None);
    let events: Vec<(Event, Option<String>)> =
        world.trail(id).await.into_iter().map(|(e, r, _)| (e, r)).collect();
    assert!(events.contains(&(Event::MailBounced, Some("verification: transient".into()))), "{events:?}");
    world.stack.clock.set(start_time() + Duration::days(3));
    assert_eq!(reminders::sweep(&world.sweeper()).await.unwrap().reminded, 1, "the reminder still goes out");
    assert_eq!(world.mailer.kinds_to(&address), [MessageKind::Verification, MessageKind::Reminder]);
}

#[tokio::test]
async fn a_duplicate_event_is_harmless() {
    let world = world().await;
    let address = unique_address("twice");
    let id = world.submit(&address, "access", "US-CA").await;
    let verification = world.mailer.one(&address, MessageKind::Verification);
    let first = in_seconds(&world.stack, 2);
    let message = delivery(&verification, first);
    world.publish(&message).await;
    world.stack.clock.advance(Duration::minutes(5));
    world.publish(&message).await;
    // The same mail's delivery, delivered again with a different timestamp, is still one delivery.
    world.publish(&delivery(&verification, first + Duration::seconds(1))).await;

    let delivered = world.trail(id).await.into_iter().filter(|(e, _, _)| *e == Event::MailDelivered).count();
    assert_eq!(delivered, 1);
    let record = world.stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.acknowledged_at, Some(first));
}

#[tokio::test]
async fn unknown_event_types_untagged_mail_and_unreadable_messages_change_nothing() {
    let world = world().await;
    let address = unique_address("ignored");
    let id = world.submit(&address, "objection", "NL").await;
    let verification = world.mailer.one(&address, MessageKind::Verification);
    let before = world.stack.items().await.len();

    for event_type in ["Open", "Send", "DeliveryDelay", "SomethingSesAddsNextYear"] {
        world.publish(&ses_event(&verification, event_type, json!({}))).await;
    }
    world.publish("not an SES event").await;
    world.publish(&json!({"eventType": "Bounce", "mail": {"messageId": "x"}}).to_string()).await;
    let mut untagged = verification.clone();
    untagged.1.tags = privacy_shared::mail::MailTags::new(MessageKind::Verification, None);
    let mut foreign: Value = serde_json::from_str(&delivery(&untagged, in_seconds(&world.stack, 1))).unwrap();
    foreign["mail"]["tags"] = json!({"campaign": ["newsletter"]});
    world.publish(&foreign.to_string()).await;

    assert_eq!(world.stack.items().await.len(), before, "nothing was written");
    assert_eq!(world.trail(id).await.len(), 1, "only the submission");
}
