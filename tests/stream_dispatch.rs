//! The stream dispatcher against the emulator: transitions committed by the real handlers are
//! read from the table's stream, delivered to `dispatch` (twice, as Lambda may), and each one's
//! work happens exactly once.

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::DynamoDbEventResponse as BatchResponse;
use devstack::stream::StreamReader;
use privacy_shared::Clock;
use privacy_shared::domain::{Completion, RequestId, Transition};
use privacy_shared::jobs::ExportJob;
use privacy_shared::store::ledger::Invocation;
use privacy_shared::store::{Change, Claim, EffectLedger};

struct Setup {
    stack: Stack,
    dispatcher: AwsDispatcher,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    staff: String,
}

async fn setup() -> Setup {
    setup_with(Stack::new().await).await
}

async fn setup_with(stack: Stack) -> Setup {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_url = devstack::provision::create_queue(
        &sqs,
        &format!("export-{}.fifo", uuid::Uuid::new_v4().simple()),
        None,
    )
    .await
    .unwrap();
    let staff = unique_address("staff");
    let dispatcher = dispatcher(&stack, &queue_url, &staff).await;
    Setup { stack, dispatcher, sqs, queue_url, staff }
}

async fn deliver(setup: &Setup, records: &[Value]) -> BatchResponse {
    let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    dispatch::handle(&setup.dispatcher, LambdaEvent::new(event, Context::default())).await.unwrap()
}

async fn queued_jobs(setup: &Setup) -> Vec<ExportJob> {
    let mut jobs = Vec::new();
    loop {
        let out = setup
            .sqs
            .receive_message()
            .queue_url(&setup.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages();
        if messages.is_empty() {
            return jobs;
        }
        for m in messages {
            jobs.push(serde_json::from_str(m.body().unwrap()).unwrap());
            setup
                .sqs
                .delete_message()
                .queue_url(&setup.queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

async fn verified_request(setup: &Setup, kind: &str) -> (String, String) {
    let deps = setup.stack.deps();
    let address = unique_address("dispatch");
    submit(&deps, &submission(&address, kind, "NL")).await;
    let (id, token) = link_parts(&setup.stack.mail_to(&address).await[0]);
    assert_eq!(verify_with(&setup.stack.verifier(), &id, &token).await.0, 200);
    (address, id)
}

#[tokio::test]
async fn a_verified_access_request_becomes_one_export_job_and_one_staff_notice_even_when_delivered_twice() {
    let setup = setup().await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    let (address, id) = verified_request(&setup, "access").await;
    let records = stream.poll().await.unwrap();
    assert!(records.len() >= 2, "insert and verify are on the stream");

    assert_eq!(deliver(&setup, &records).await, BatchResponse::default());
    assert_eq!(deliver(&setup, &records).await, BatchResponse::default(), "redelivery is harmless");
    let triaged = stream.poll().await.unwrap();
    let triage: Vec<_> = triaged.iter().filter(|r| r["dynamodb"]["NewImage"]["triage"].is_object()).collect();
    assert_eq!(triage.len(), 1, "the triage is one more committed transition");
    assert_eq!(triage[0]["dynamodb"]["NewImage"]["triage"]["M"]["has_account"]["BOOL"], false);
    assert_eq!(deliver(&setup, &triaged).await, BatchResponse::default());
    assert_eq!(deliver(&setup, &triaged).await, BatchResponse::default(), "redelivery is harmless");

    let jobs = queued_jobs(&setup).await;
    assert_eq!(jobs, vec![ExportJob { request_id: RequestId::parse(&id).unwrap(), version: 3 }]);
    let notices = setup.stack.mail_to(&setup.staff).await;
    assert_eq!(notices.len(), 1, "one staff notice");
    assert!(
        notices[0].subject.starts_with("Verified privacy request: access (GDPR), due"),
        "{}",
        notices[0].subject
    );
    assert!(!notices[0].subject.contains(&address) && !notices[0].subject.contains("example"));
    assert!(notices[0].body.contains(&id) && notices[0].body.contains(&address));
    assert_eq!(setup.stack.mail_to(&address).await.len(), 1, "the requester got only the verification email");
}

#[tokio::test]
async fn a_verified_objection_only_notifies_the_staff() {
    let setup = setup().await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    verified_request(&setup, "objection").await;
    deliver_until_quiet(&setup, &mut stream).await;
    assert!(queued_jobs(&setup).await.is_empty());
    let notices = setup.stack.mail_to(&setup.staff).await;
    assert_eq!(notices.len(), 1);
    assert!(notices[0].body.contains("This request needs a person"), "{}", notices[0].body);
}

/// Delivers the stream to the dispatcher (each batch twice) until it has nothing more to say.
async fn deliver_until_quiet(setup: &Setup, stream: &mut StreamReader) {
    for _ in 0..10 {
        let records = stream.poll().await.unwrap();
        if records.is_empty() {
            return;
        }
        assert_eq!(deliver(setup, &records).await, BatchResponse::default());
        assert_eq!(deliver(setup, &records).await, BatchResponse::default());
    }
    panic!("the stream did not settle");
}

#[tokio::test]
async fn completion_sends_the_requester_one_notice_with_the_download_link() {
    let setup = setup().await;
    let (address, id) = verified_request(&setup, "portability").await;
    let store = &setup.dispatcher.deps.store;
    let request_id = RequestId::parse(&id).unwrap();
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    stream.poll().await.unwrap(); // what came before is another test's business
    for transition in [Transition::StartWork, Transition::Complete(Completion::Exported { found: 1 })] {
        let current = store.get(request_id).await.unwrap().unwrap();
        store.transition(&current, Change::system(transition, setup.stack.clock.now())).await.unwrap();
    }
    let records = stream.poll().await.unwrap();
    deliver(&setup, &records).await;
    deliver(&setup, &records).await;

    let mails = setup.stack.mail_to(&address).await;
    assert_eq!(mails.len(), 2, "verification and one completion notice");
    let done = &mails[1];
    assert_eq!(done.subject, "Uw privacyverzoek is afgehandeld");
    let download = format!("{PUBLIC_BASE_URL}/requests/{id}/download?token=");
    assert!(done.links().iter().any(|l| l.starts_with(&download)), "{:?}", done.links());
    assert!(done.body.contains("Autoriteit Persoonsgegevens"), "names the right to complain");
}

#[tokio::test]
async fn a_failing_effect_is_reported_and_released_for_the_retry() {
    let setup = setup().await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    let (_, id) = verified_request(&setup, "access").await;
    deliver(&setup, &stream.poll().await.unwrap()).await;
    let records = stream.poll().await.unwrap();

    // The same dispatcher, pointed at a queue that does not exist.
    let broken = dispatcher(&setup.stack, &format!("{}-missing.fifo", setup.queue_url), &setup.staff).await;
    let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = dispatch::handle(&broken, LambdaEvent::new(event, Context::default())).await.unwrap();
    let verified_record = records.iter().find(|r| r["dynamodb"]["NewImage"]["triage"].is_object()).unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        verified_record["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned)
    );

    // Redelivered to a working dispatcher: the job goes out once, nothing was lost.
    assert_eq!(deliver(&setup, &records).await, BatchResponse::default());
    let jobs = queued_jobs(&setup).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].request_id.to_string(), id);
}

/// Delivers `records` the way Lambda retries a failing batch, each time as a new invocation
/// (`MaximumRetryAttempts: 5` in the template: six deliveries in all); how many it took.
async fn deliver_with_retries(setup: &Setup, records: &[Value]) -> usize {
    const DELIVERIES: usize = 6;
    for delivery in 1..=DELIVERIES {
        if deliver(setup, records).await == BatchResponse::default() {
            return delivery;
        }
    }
    panic!("the record would have gone to the failure queue after {DELIVERIES} deliveries");
}

#[tokio::test]
async fn an_effect_left_claimed_by_a_crashed_invocation_is_taken_over_in_time_and_happens_once() {
    let setup = setup().await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    let (_, id) = verified_request(&setup, "access").await;
    assert_eq!(deliver(&setup, &stream.poll().await.unwrap()).await, BatchResponse::default());
    let records = stream.poll().await.unwrap();
    let request_id = RequestId::parse(&id).unwrap();

    // An invocation of a whole function timeout (60 s) claimed the export and crashed: it will
    // neither finish nor release the claim.
    let store = &setup.dispatcher.deps.store;
    let started = setup.stack.clock.now();
    let crashed = Invocation::ending_at(started + chrono::Duration::seconds(60));
    let lease = crashed.lease(started);
    let claim = store.claim_effect(request_id, "export_queued#v3", started, lease).await.unwrap();
    assert_eq!(claim, Claim::Acquired);

    let deliveries = deliver_with_retries(&setup, &records).await;
    assert!(deliveries <= 2, "taken over by the first retry that outlives the lease, not {deliveries}");
    assert!(setup.stack.clock.now() > started + lease, "waited on the clock until the lease ran out");
    assert_eq!(deliver(&setup, &records).await, BatchResponse::default(), "redelivery is harmless");
    let jobs = queued_jobs(&setup).await;
    assert_eq!(jobs, vec![ExportJob { request_id, version: 3 }], "the export was queued exactly once");
    assert_eq!(setup.stack.mail_to(&setup.staff).await.len(), 1, "one staff notice");
}

#[tokio::test]
async fn a_woken_source_task_sends_the_waiting_export_again_once_per_wake_and_the_notice_names_the_manual_source()
 {
    use privacy_shared::domain::{SourceOperation, SourceTask, TaskChange, TaskState};
    use privacy_shared::jobs::{ExportPart, Wake};
    use privacy_shared::store::{SourceTasks, change_task};
    let setup = setup_with(Stack::with_env(&[("DATA_MAP_SCOPE", "all")]).await).await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    let (_, id) = verified_request(&setup, "access").await;
    deliver_until_quiet(&setup, &mut stream).await;
    let notice = setup.stack.mail_to(&setup.staff).await.pop().expect("the staff notice");
    assert!(notice.body.contains("Sources with no API, for you to search (1)"), "{}", notice.body);
    assert!(notice.body.contains("website_analytics") && notice.body.contains("web analytics tool"));
    assert!(notice.body.contains(&format!("staff attach {id} --source SOURCE")));
    assert!(notice.body.contains("Asked automatically: job_applications"));
    assert_eq!(queued_jobs(&setup).await.len(), 1, "the export itself");

    // The export started, asked the sources and ended waiting for staff.
    let store = &setup.dispatcher.deps.store;
    let request_id = RequestId::parse(&id).unwrap();
    let current = store.get(request_id).await.unwrap().unwrap();
    store.transition(&current, Change::system(Transition::StartWork, setup.stack.clock.now())).await.unwrap();
    let task = SourceTask {
        request_id,
        operation: SourceOperation::Access,
        source: "website_analytics".into(),
        answer_by: current.due_on,
        opened_at: setup.stack.clock.now(),
        state: TaskState::WithStaff,
        version: 1,
        wakes: 0,
        attempts: 0,
        late: false,
    };
    store.open_task(&task).await.unwrap();
    deliver_until_quiet(&setup, &mut stream).await;
    assert!(queued_jobs(&setup).await.is_empty(), "an opened task wakes nothing");

    let answer = TaskChange::Collected { records: 0, pages: 0, files: Vec::new() };
    change_task(store, &task, &answer).await.unwrap().unwrap();
    deliver_until_quiet(&setup, &mut stream).await;
    let woken: Vec<ExportPart> =
        queued_raw(&setup).await.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
    assert_eq!(woken.len(), 1, "one job per wake, however often the record is delivered");
    assert_eq!(woken[0].job.request_id, request_id);
    assert_eq!(woken[0].wake, Some(Wake { source: "website_analytics".into(), count: 1 }));
}

async fn queued_raw(setup: &Setup) -> Vec<String> {
    let out = setup
        .sqs
        .receive_message()
        .queue_url(&setup.queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    out.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
}

#[tokio::test]
async fn the_staff_notice_of_a_repeated_request_lists_the_persons_earlier_ones_of_that_kind_with_their_outcome()
 {
    let setup = setup().await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    let deps = setup.stack.deps();
    let address = unique_address("repeat");
    let mut ids = Vec::new();
    for kind in ["objection", "objection", "access"] {
        setup.stack.clock.advance(chrono::Duration::days(20));
        submit(&deps, &submission(&address, kind, "NL")).await;
        let (id, token) = link_parts(setup.stack.mail_to(&address).await.last().unwrap());
        assert_eq!(verify_with(&setup.stack.verifier(), &id, &token).await.0, 200);
        deliver_until_quiet(&setup, &mut stream).await;
        // Answered before the next: an open request of a kind takes no second one.
        let store = &setup.dispatcher.deps.store;
        let current = store.get(RequestId::parse(&id).unwrap()).await.unwrap().unwrap();
        let reason = privacy_shared::domain::StaffText::parse("We cannot find an account for you.").unwrap();
        let done = Transition::Deny { reason, basis: privacy_shared::domain::DenialBasis::Other };
        store.transition(&current, Change::system(done, setup.stack.clock.now())).await.unwrap();
        deliver_until_quiet(&setup, &mut stream).await;
        ids.push(id);
    }
    let notices = setup.stack.mail_to(&setup.staff).await;
    assert_eq!(notices.len(), 3, "one staff notice per verified request, in order");
    let notice_of = |n: usize| {
        assert!(notices[n].body.contains(&ids[n]));
        &notices[n]
    };
    assert!(!notice_of(0).body.contains("earlier request(s) of this kind"), "the first is no repeat");
    let second = &notice_of(1).body;
    assert!(second.contains("1 earlier request(s) of this kind by this person"), "{second}");
    assert!(second.contains(&ids[0]) && second.contains("denied"), "with its outcome: {second}");
    assert!(!notice_of(2).body.contains("earlier request(s) of this kind"), "another kind is no repeat");
}

#[tokio::test]
async fn an_erasure_tells_each_recipient_of_an_affected_source_exactly_once_under_redelivery() {
    use privacy_shared::domain::{ErasedSource, ErasureReceipt};
    let setup = setup().await;
    let mut stream = StreamReader::open(&setup.stack.sdk, &setup.stack.table).await.unwrap();
    let (address, id) = verified_request(&setup, "deletion").await;
    deliver_until_quiet(&setup, &mut stream).await;
    let store = &setup.dispatcher.deps.store;
    let request_id = RequestId::parse(&id).unwrap();
    let line = |source: &str, deleted| ErasedSource {
        source: source.into(),
        description: source.into(),
        categories: vec![],
        deleted,
        anonymised: 0,
        kept_because: None,
    };
    let receipt = ErasureReceipt {
        sources: vec![line("accounts", 1), line("marketing", 1), line("devices", 0)],
        recipients_told: vec!["Nimbus Hosting B.V. (hosting and storage)".into()],
        ..ErasureReceipt::default()
    };
    for transition in [Transition::StartWork, Transition::Complete(Completion::Erased(receipt))] {
        let current = store.get(request_id).await.unwrap().unwrap();
        store.transition(&current, Change::system(transition, setup.stack.clock.now())).await.unwrap();
    }
    deliver_until_quiet(&setup, &mut stream).await;

    for contact in [
        "privacy@nimbus-hosting.example",
        "privacy@group-support.example",
        "dpo@postvak-mailing.example",
        "privacy@summit-partners.example",
    ] {
        // Other tests' erasures tell the same recipients: this request's mails only.
        let mails: Vec<_> =
            setup.stack.mail_to(contact).await.into_iter().filter(|m| m.body.contains(&id)).collect();
        assert_eq!(mails.len(), 1, "{contact} is told once");
        assert!(mails[0].subject.contains("please erase"), "{}", mails[0].subject);
        assert!(mails[0].body.contains(&address) && mails[0].body.contains(&id));
    }
    let hosting = setup.stack.mail_to("privacy@nimbus-hosting.example").await;
    let hosting = hosting.iter().find(|m| m.body.contains(&id)).unwrap();
    assert!(hosting.body.contains("(accounts)"), "only the affected sources it receives: {}", hosting.body);
    for untouched in ["privacy@hireflow.example", "datenschutz@clickmeter.example"] {
        let mails = setup.stack.mail_to(untouched).await;
        assert!(!mails.iter().any(|m| m.body.contains(&id)), "{untouched} receives no affected source");
    }
    let done = setup.stack.mail_to(&address).await.pop().unwrap();
    assert!(done.body.contains("Nimbus Hosting B.V."), "the receipt names the recipients told");
}
