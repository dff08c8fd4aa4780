//! The daily sweep against the emulator, with a clock the test moves: digests that report each
//! request once per threshold, reminders for the unverified, expiry at day 14, and reruns that
//! never send anything twice.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::*;
use privacy_shared::Clock;
use privacy_shared::Deps;
use privacy_shared::domain::{Actor, Event, Status};
use privacy_shared::mail::{MailError, Mailer, OutgoingEmail};
use privacy_shared::store::Change;
use std::sync::atomic::{AtomicUsize, Ordering};

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 6, 0, 0).unwrap()
}

#[tokio::test]
async fn a_request_due_in_six_days_appears_in_the_digest_once_however_often_the_sweep_runs() {
    let stack = Stack::new().await;
    let staff = unique_address("staff");
    let address = unique_address("due-soon");
    let id = verified_request(&stack, &address, "rectification", "NL").await; // due Monday 28 December
    let sweeper = sweeper(&stack, &staff);

    stack.clock.set(at(2026, 12, 22));
    let first = run_sweep(&sweeper).await.unwrap();
    assert_eq!(first.digest_items, 1);
    run_sweep(&sweeper).await.unwrap();
    stack.clock.advance(Duration::hours(3));
    let again = run_sweep(&sweeper).await.unwrap();
    assert_eq!(again.digest_items, 0, "{again:?}");

    let mails = stack.mail_to(&staff).await;
    assert_eq!(mails.len(), 1, "one digest, one line");
    let digest = &mails[0];
    assert!(digest.subject.contains("1 due within 7 days"), "{}", digest.subject);
    assert!(digest.body.contains(&id.to_string()) && digest.body.contains("2026-12-28"));
    assert!(digest.body.contains("rectification") && digest.body.contains("GDPR"));
    for mail_text in [&digest.subject, &digest.body] {
        assert!(!mail_text.contains(&address) && !mail_text.contains("due-soon"), "no requester data");
    }
}

#[tokio::test]
async fn a_request_moves_up_the_digest_as_its_date_nears_and_is_reported_overdue_after_it() {
    let stack = Stack::new().await;
    let staff = unique_address("staff");
    let id = verified_request(&stack, &unique_address("nearing"), "objection", "NL").await;
    let sweeper = sweeper(&stack, &staff);

    let mut subjects = Vec::new();
    // Friday 25 December is a holiday; the next business day is Monday 28, the due date.
    for day in [at(2026, 12, 21), at(2026, 12, 24), at(2026, 12, 25), at(2026, 12, 29), at(2026, 12, 30)] {
        stack.clock.set(day);
        let report = run_sweep(&sweeper).await.unwrap();
        assert_eq!(report.overdue, u32::from(day >= at(2026, 12, 29)), "{day}: {report:?}");
    }
    for mail in stack.mail_to(&staff).await {
        assert!(mail.body.contains(&id.to_string()));
        subjects.push(mail.subject);
    }
    assert_eq!(subjects.len(), 3, "{subjects:#?}");
    assert!(subjects[0].ends_with(": 1 due within 7 days"), "{}", subjects[0]);
    assert!(subjects[1].ends_with(": 1 due by the next business day"), "{}", subjects[1]);
    assert!(subjects[2].ends_with(": 1 overdue"), "{}", subjects[2]);
}

#[tokio::test]
async fn the_sweep_reads_only_the_due_slice_of_the_index() {
    let stack = Stack::new().await;
    let staff = unique_address("staff");
    verified_request(&stack, &unique_address("gdpr"), "restriction", "NL").await; // due 28 December
    verified_request(&stack, &unique_address("ccpa"), "restriction", "US-CA").await; // due 12 January
    stack.clock.set(at(2026, 12, 21));
    submit(&stack.deps(), &submission(&unique_address("fresh"), "deletion", "NL")).await; // pending, 1 day
    stack.clock.set(at(2026, 12, 22));
    submit(&stack.deps(), &submission(&unique_address("today"), "deletion", "DE")).await;

    let report = run_sweep(&sweeper(&stack, &staff)).await.unwrap();
    assert_eq!(report.index_items_read, 1, "only the request due within the window: {report:?}");
    assert_eq!(report.requests_read, 0, "the digest needs no full request");
    assert_eq!(report.digest_items, 1);
}

#[tokio::test]
async fn an_unverified_request_is_reminded_on_day_3_and_expired_on_day_14() {
    let stack = Stack::new().await;
    let staff = unique_address("staff");
    let address = unique_address("unverified");
    let (_, body) = submit(&stack.deps(), &submission(&address, "access", "NL")).await;
    let id = privacy_shared::domain::RequestId::parse(body["request_id"].as_str().unwrap()).unwrap();
    let sweeper = sweeper(&stack, &staff);
    let received = start_time();

    stack.clock.set(received + Duration::days(3) - Duration::minutes(1));
    assert_eq!(run_sweep(&sweeper).await.unwrap().reminded, 0, "not yet three days");
    stack.clock.set(received + Duration::days(3));
    assert_eq!(run_sweep(&sweeper).await.unwrap().reminded, 1);
    stack.clock.advance(Duration::hours(1));
    assert_eq!(run_sweep(&sweeper).await.unwrap().reminded, 0, "once only");
    stack.clock.set(received + Duration::days(10));
    assert_eq!(
        run_sweep(&sweeper).await.unwrap(),
        reminders::SweepReport { index_items_read: 1, ..Default::default() }
    );

    let mails = stack.mail_to(&address).await;
    assert_eq!(mails.len(), 2, "verification and one reminder");
    let reminder = &mails[1];
    assert_eq!(reminder.subject, "Herinnering: bevestig uw privacyverzoek");
    assert!(reminder.body.contains("12 december 2026"), "names the day it closes: {}", reminder.body);
    let (linked_id, _) = link_parts(reminder);
    assert_eq!(linked_id, id.to_string());

    stack.clock.set(received + Duration::days(14));
    assert_eq!(run_sweep(&sweeper).await.unwrap().expired, 1);
    let record = stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Expired);
    assert_eq!(
        record.closed_reason.as_deref(),
        Some(privacy_shared::domain::ExpiryReason::NotVerified.as_str())
    );
    assert!(stack.item(&format!("REQ#{id}"), "VERIFY").await.is_none(), "verification data deleted");
    let trail = stack.deps().store.audit_trail(id).await.unwrap();
    let events: Vec<(Event, &Actor)> = trail.iter().map(|e| (e.event, &e.actor)).collect();
    assert_eq!(
        events,
        vec![
            (Event::Submitted, &Actor::Requester),
            (Event::Reminded, &Actor::System),
            (Event::Expired, &Actor::System)
        ]
    );
    assert_eq!(run_sweep(&sweeper).await.unwrap(), reminders::SweepReport::default(), "gone from the index");
}

#[tokio::test]
async fn the_reminder_link_verifies_the_request_until_it_closes_even_after_ttl_removed_the_first() {
    let stack = Stack::new().await;
    let address = unique_address("late");
    let (_, body) = submit(&stack.deps(), &submission(&address, "deletion", "GB")).await;
    // By day 4 the first link has expired and DynamoDB's TTL may have deleted its item.
    let pending = body["request_id"].as_str().unwrap();
    stack.delete_item(&format!("REQ#{pending}"), "VERIFY").await;
    stack.clock.set(start_time() + Duration::days(4));
    run_sweep(&sweeper(&stack, &unique_address("staff"))).await.unwrap();
    let mails = stack.mail_to(&address).await;
    let (first_id, first_token) = link_parts(&mails[0]);
    let (id, token) = link_parts(&mails[1]);
    assert_eq!(first_id, id);

    stack.clock.set(start_time() + Duration::days(13));
    let verifier = stack.verifier();
    assert_eq!(
        verify_with(&verifier, &id, &first_token).await.0,
        400,
        "the first link expired after its day"
    );
    assert_eq!(verify_with(&verifier, &id, &token).await.0, 200);
}

/// The real SES mailer that accepts `allow` emails and then fails, as if the function died.
struct Dies {
    inner: privacy_shared::mail::SesMailer,
    allow: usize,
    sent: AtomicUsize,
}

impl Mailer for Dies {
    async fn send(&self, email: &OutgoingEmail) -> Result<privacy_shared::mail::MessageId, MailError> {
        if self.sent.fetch_add(1, Ordering::SeqCst) >= self.allow {
            return Err(MailError::Send { code: "injected".into() });
        }
        self.inner.send(email).await
    }
}

#[tokio::test]
async fn a_sweep_that_dies_halfway_sends_nothing_twice_when_it_runs_again() {
    let stack = Stack::new().await;
    let staff = unique_address("staff");
    let due = unique_address("due");
    verified_request(&stack, &due, "rectification", "NL").await; // due 28 December
    stack.clock.set(at(2026, 12, 17));
    let pending: Vec<String> = (0..3).map(|i| unique_address(&format!("pending{i}"))).collect();
    for address in &pending {
        submit(&stack.deps(), &submission(address, "objection", "NL")).await;
    }

    stack.clock.set(at(2026, 12, 22));
    let real = sweeper(&stack, &staff);
    let deps = stack.deps();
    let dying = reminders::Sweeper {
        deps: Deps {
            store: deps.store,
            mailer: Dies { inner: deps.mailer, allow: 1, sent: AtomicUsize::new(0) },
            clock: deps.clock,
            config: deps.config,
            templates: deps.templates,
        },
        staff: real.staff.clone(),
        policy: real.policy,
        metrics: None,
    };
    let event = lambda_runtime::LambdaEvent::new(serde_json::json!({}), Default::default());
    assert!(reminders::handle(&dying, event).await.is_err(), "the first run fails halfway");

    let rerun = run_sweep(&real).await.unwrap();
    assert_eq!((rerun.reminded, rerun.digest_items), (2, 1), "{rerun:?}");
    assert_eq!(run_sweep(&real).await.unwrap().reminded, 0);
    for address in &pending {
        assert_eq!(stack.mail_to(address).await.len(), 2, "verification and exactly one reminder");
    }
    assert_eq!(stack.mail_to(&staff).await.len(), 1, "exactly one digest");
}

/// The real SES mailer, except that mail to one address bounces.
struct Bounces {
    inner: privacy_shared::mail::SesMailer,
    address: String,
}

impl Mailer for Bounces {
    async fn send(&self, email: &OutgoingEmail) -> Result<privacy_shared::mail::MessageId, MailError> {
        if email.to.as_str() == self.address {
            return Err(MailError::Send { code: "MessageRejected".into() });
        }
        self.inner.send(email).await
    }
}

#[tokio::test]
async fn a_ccpa_request_that_no_confirmation_of_receipt_reached_is_flagged_before_its_deadline() {
    let stack = Stack::with_env(&[("VERIFICATION_EMAILS_PER_HOUR", "1")]).await;
    let staff = unique_address("staff");
    let address = unique_address("unacknowledged");
    let (_, confirmed) = submit(&stack.deps(), &submission(&address, "access", "US-CA")).await;
    // Its email was delivered, which is when it confirms receipt: `mail-events` stamps that on
    // SES's delivery event (tests/mail_events.rs drives it).
    let confirmed =
        privacy_shared::domain::RequestId::parse(confirmed["request_id"].as_str().unwrap()).unwrap();
    stack.deps().store.mark_acknowledged(confirmed, start_time()).await.unwrap();
    let (_, held) = submit(&stack.deps(), &submission(&address, "deletion", "US-CA")).await; // flood guard
    assert_eq!(stack.mail_to(&address).await.len(), 1, "the second email was held back");

    let real = sweeper(&stack, &staff);
    let deps = stack.deps();
    let bouncing = reminders::Sweeper {
        deps: Deps {
            store: deps.store,
            mailer: Bounces { inner: deps.mailer, address: address.clone() },
            clock: deps.clock,
            config: deps.config,
            templates: deps.templates,
        },
        staff: real.staff.clone(),
        policy: real.policy,
        metrics: None,
    };
    // Received Saturday 28 November: acknowledge by Friday 11 December (10 business days).
    stack.clock.set(at(2026, 12, 8));
    let report = reminders::sweep(&bouncing).await.unwrap();
    assert_eq!((report.digest_items, report.deferred), (0, 2), "reminders bounce; not near yet: {report:?}");
    stack.clock.set(at(2026, 12, 9));
    let report = reminders::sweep(&bouncing).await.unwrap();
    assert_eq!(report.digest_items, 1, "{report:?}");

    let digest = stack.mail_to(&staff).await.pop().expect("a digest");
    assert!(digest.subject.ends_with(": 1 acknowledgement due"), "{}", digest.subject);
    let held = held["request_id"].as_str().unwrap();
    assert!(digest.body.contains(held) && digest.body.contains("2026-12-11"), "{}", digest.body);
    stack.clock.set(at(2026, 12, 10));
    assert_eq!(reminders::sweep(&bouncing).await.unwrap().digest_items, 0, "once");
}

#[tokio::test]
async fn the_digest_flags_a_request_that_repeats_one_of_the_same_kind_with_its_outcome() {
    let stack = Stack::new().await;
    let staff = unique_address("staff");
    let address = unique_address("repeater");
    let store = stack.deps().store;
    let first = verified_request(&stack, &address, "objection", "NL").await;
    let current = store.get(first).await.unwrap().unwrap();
    let reason = privacy_shared::domain::StaffText::parse("We found no processing to object to.").unwrap();
    let basis = privacy_shared::domain::DenialBasis::Other;
    let denied = privacy_shared::domain::Transition::Deny { reason, basis };
    store.transition(&current, Change::system(denied, stack.clock.now())).await.unwrap();
    stack.clock.advance(Duration::days(10));
    let second = verified_request(&stack, &address, "objection", "NL").await;
    let first_timer = verified_request(&stack, &unique_address("first-timer"), "objection", "NL").await;

    let due = store.get(second).await.unwrap().unwrap().due_on;
    stack.clock.set(Utc.from_utc_datetime(&(due - Duration::days(3)).and_hms_opt(6, 0, 0).unwrap()));
    run_sweep(&sweeper(&stack, &staff)).await.unwrap();

    let mails = stack.mail_to(&staff).await;
    assert_eq!(mails.len(), 1, "one digest");
    let body = &mails[0].body;
    assert!(body.contains(&second.to_string()) && body.contains(&first_timer.to_string()), "{body}");
    assert_eq!(body.matches("repeated: ").count(), 1, "only the repeat is flagged: {body}");
    assert!(body.contains("repeated: 1 earlier objection request of this person"), "{body}");
    let flag = &body[body.find("repeated: ").unwrap()..];
    assert!(flag.contains(&first.to_string()) && flag.contains("denied"), "with its outcome: {flag}");
    assert!(!body.contains(&address) && !body.contains("repeater"), "no requester data");
}
