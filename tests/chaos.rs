//! The fault run's short version (`make chaos` runs 100 requests on a whole local stack, and kills
//! its pump): a handful of requests of every kind, submitted and confirmed by a requester who
//! retries what a client retries (a 5xx or 429, with backoff, the same body), fulfilled by the
//! real handlers under their own roles through the event pump, while 30% of the functions' and
//! the pump's AWS calls fail as AWS fails them under stress (dev/emulator_faults.py, a fixed
//! seed). What the pump gives up on is redriven (`devstack redrive`) with the faults off. Then
//! every request has ended where it would have without faults, once: one request per submission,
//! one mail of each kind, one export object, an audit trail without a gap.

use anyhow::Result;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::emulator_faults::FaultyEmulator;
use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use devstack::pump::{Invoker, Pump, QueueMapping, ScheduleMapping, StreamMapping};
use devstack::stream::StreamReader;
use privacy_shared::domain::{Event, RequestId, Status};
use privacy_shared::sources::AwsPersonalData;
use privacy_shared::store::DynamoStore;

const SEED: &str = "20261128";

/// The event functions, in-process, each under its own role; one delivery per invocation (the
/// faults make the redeliveries).
struct Functions {
    dispatcher: AwsDispatcher,
    exporter: export::Exporter<DynamoStore, AwsPersonalData>,
    eraser: erasure::Eraser<DynamoStore, AwsPersonalData>,
    sweeper: AwsSweeper,
}

impl Invoker for Functions {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        let context = Context::default();
        Ok(match function {
            "dispatch" => {
                let event: StreamEvent = serde_json::from_value(payload)?;
                serde_json::to_value(
                    dispatch::handle(&self.dispatcher, LambdaEvent::new(event, context)).await?,
                )?
            }
            "export" => {
                let event: export::SqsEvent = serde_json::from_value(payload)?;
                serde_json::to_value(export::handle(&self.exporter, LambdaEvent::new(event, context)).await?)?
            }
            "erasure" => {
                let event: erasure::SqsEvent = serde_json::from_value(payload)?;
                serde_json::to_value(erasure::handle(&self.eraser, LambdaEvent::new(event, context)).await?)?
            }
            "reminders" => serde_json::to_value(
                reminders::handle(&self.sweeper, LambdaEvent::new(payload, context))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )?,
            other => anyhow::bail!("no function {other}"),
        })
    }
}

struct Run {
    emulator: FaultyEmulator,
    stack: Stack,
    intake: Stack,
    verify: Stack,
    admin: AwsAdmin,
    staff: String,
    bucket: String,
    pump: Pump<Functions>,
    /// 5xx and 429 answers the requester met and retried, by route.
    retried: BTreeMap<&'static str, usize>,
}

/// The SDK's standard retries (3 tries, throttling and 5xx), with millisecond pauses: the same
/// classification, without waiting a second per fault.
fn quick_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_initial_backoff(Duration::from_millis(2))
        .with_max_backoff(Duration::from_millis(20))
}

/// A 5xx or a 429: what a client tries again, after a pause, with the same body.
fn retryable(status: u16) -> bool {
    status >= 500 || status == 429
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
}

impl Run {
    async fn start() -> Run {
        let emulator = FaultyEmulator::start(&[
            ("EMULATOR_FAULTS", "0.3"),
            ("EMULATOR_FAULTS_SEED", SEED),
            ("EMULATOR_FAULTS_PUMP", "1"),
        ])
        .await;
        let mut stack = Stack::at(emulator.endpoint.clone(), &[]).await;
        stack.sdk = stack.sdk.to_builder().retry_config(quick_retries()).build();
        let map = stack.data_map().await;
        let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
        let template = devstack::template::Template::load(&devstack::template::default_path()).unwrap();
        // The template's queues with their redrive policies, named as `make dev` names them.
        let queues = devstack::provision::create_queues(&sqs, &template, "").await.unwrap();
        let url = |id: &str| queues.iter().find(|(q, _)| q == id).map(|(_, url)| url.clone()).unwrap();
        let s3 = devstack::provision::s3_client(&stack.sdk);
        let bucket = format!("x{}-exports", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
        devstack::provision::configure_bucket(&s3, &bucket, &template.bucket("ExportBucket").unwrap())
            .await
            .unwrap();
        let roles = stack
            .roles(&[
                ("ExportQueue", "ExportQueue.fifo"),
                ("ErasureQueue", "ErasureQueue.fifo"),
                ("ExportBucket", &bucket),
            ])
            .await;
        let staff = unique_address("staff");
        let as_export = stack.signing_as(&roles, "export");
        let export_s3 = devstack::provision::s3_client(&as_export.sdk);
        let as_erasure = stack.signing_as(&roles, "erasure");
        let erasure_s3 = devstack::provision::s3_client(&as_erasure.sdk);
        let functions = Functions {
            dispatcher: dispatcher_with(
                &stack.signing_as(&roles, "dispatch"),
                &url("ExportQueue"),
                &url("ErasureQueue"),
                &staff,
            )
            .await,
            exporter: export::Exporter {
                store: as_export.deps().store,
                data: AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&as_export.sdk), export_s3.clone()),
                map: map.clone(),
                s3: export_s3,
                target: export::ExportTarget { bucket: bucket.clone(), kms_key_id: None },
                clock: stack.clock.clone(),
                outside: crate::support::no_outside(&stack.sdk),
                calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
            },
            eraser: erasure::Eraser {
                store: as_erasure.deps().store,
                data: AwsPersonalData::new(
                    aws_sdk_dynamodb::Client::new(&as_erasure.sdk),
                    erasure_s3.clone(),
                ),
                map,
                s3: erasure_s3,
                export_bucket: bucket.clone(),
                clock: stack.clock.clone(),
                outside: crate::support::no_outside(&stack.sdk),
                tombstones: None,
                continuation: None,
            },
            sweeper: sweeper(&stack.signing_as(&roles, "reminders"), &staff),
        };
        // The pump's own calls fail too (EMULATOR_FAULTS_PUMP): its stream reads, receives,
        // deletes and failure descriptions.
        let pump_sdk = devstack::pump::as_pump(&stack.sdk).unwrap();
        let reader = loop {
            if let Ok(reader) = StreamReader::open(&pump_sdk, &stack.table).await {
                break reader;
            }
        };
        let stream = StreamMapping {
            reader,
            function: "dispatch".into(),
            batch_size: 10,
            max_retries: 5,
            on_failure_queue_url: Some(url("DispatchFailureQueue")),
        };
        let mut mappings = Vec::new();
        for (queue, function) in [("ExportQueue", "export"), ("ErasureQueue", "erasure")] {
            mappings.push(QueueMapping {
                arn: devstack::provision::queue_arn(&sqs, &url(queue)).await.unwrap(),
                url: url(queue),
                function: function.into(),
                batch_size: 1,
                retry_after_seconds: 0,
                wait_seconds: 0,
            });
        }
        let pump = Pump::new(functions, &pump_sdk, Some(stream), mappings).with_schedule(ScheduleMapping {
            function: "reminders".into(),
            payload: json!({"sweep": "daily"}),
            every: Duration::from_secs(3600),
            retry_after: Duration::ZERO,
            dead_letter_queue_url: Some(url("RemindersDeadLetterQueue")),
        });
        Run {
            intake: stack.signing_as(&roles, "intake"),
            verify: stack.signing_as(&roles, "verify"),
            admin: staff_api(&stack.signing_as(&roles, "admin")),
            emulator,
            stack,
            staff,
            bucket,
            pump,
            retried: BTreeMap::new(),
        }
    }

    /// Submits as a client does: a 5xx or 429 is tried again with the same body.
    async fn submit(&mut self, body: &Value) -> String {
        for attempt in 0..10 {
            let (status, answer) = submit(&self.intake.deps(), &body.to_string()).await;
            if status == 202 {
                return answer["request_id"].as_str().unwrap().to_owned();
            }
            assert!(retryable(status), "submitting {body} answered {status}: {answer}");
            *self.retried.entry("submit").or_default() += 1;
            backoff(attempt).await;
        }
        panic!("submitting {body} failed ten times");
    }

    /// Confirms with the newest link mailed for request `id`, as a client does.
    async fn confirm(&mut self, address: &str, id: &str) {
        let mails = self.stack.mail_to(address).await;
        let (_, token) = mails
            .iter()
            .flat_map(|m| m.verification_links())
            .rfind(|(link_id, _)| link_id == id)
            .unwrap_or_else(|| panic!("no verification link for {id}"));
        for attempt in 0..10 {
            let (status, answer) = verify_with(&self.verify.verifier(), id, &token).await;
            if status == 200 {
                return;
            }
            assert!(retryable(status), "confirming {id} answered {status}: {answer}");
            *self.retried.entry("verify").or_default() += 1;
            backoff(attempt).await;
        }
        panic!("confirming {id} failed ten times");
    }

    /// Staff complete a request that needs a person, through the staff API (retried likewise).
    async fn complete_by_staff(&mut self, id: &str) {
        for attempt in 0..10 {
            let note = json!({"note": "We stopped the processing you objected to."});
            let (status, answer) =
                staff(&self.admin, "POST", &format!("/staff/requests/{id}/complete"), Some(note)).await;
            if status == 200 {
                return;
            }
            assert!(retryable(status), "completing {id} answered {status}: {answer}");
            *self.retried.entry("staff").or_default() += 1;
            backoff(attempt).await;
        }
        panic!("completing {id} failed ten times");
    }

    /// Ticks the pump until it has had nothing to do for a few ticks in a row (a tick that fails,
    /// its own calls failing, counts as busy).
    async fn pump_until_idle(&mut self, patience: Duration) -> usize {
        let (started, mut idle, mut errors) = (Instant::now(), 0, 0);
        while idle < 3 && started.elapsed() < patience {
            match self.pump.tick().await {
                Ok(tick) if tick.idle() => idle += 1,
                Ok(_) => idle = 0,
                Err(_) => {
                    idle = 0;
                    errors += 1;
                }
            }
        }
        errors
    }

    async fn status(&self, id: &str) -> Status {
        let id = RequestId::parse(id).unwrap();
        self.stack.deps().store.get(id).await.unwrap().unwrap().status
    }
}

#[tokio::test]
async fn ten_requests_under_faults_end_as_without_them_each_once() {
    let mut run = Run::start().await;
    let kinds = [
        (unique_address("access"), json!({"kind": "access", "region": "NL"})),
        (unique_address("access"), json!({"kind": "access", "region": "US-CA"})),
        ("carol@example.org".to_owned(), json!({"kind": "access", "region": "NL"})),
        (unique_address("portability"), json!({"kind": "portability", "region": "DE"})),
        (unique_address("deletion"), json!({"kind": "deletion", "region": "NL"})),
        ("bob@example.com".to_owned(), json!({"kind": "deletion", "region": "NL"})),
        (
            "alice@example.com".to_owned(),
            json!({"kind": "rectification", "region": "NL", "corrections": {"job_title": "Lead designer"}}),
        ),
        (unique_address("objection"), json!({"kind": "objection", "region": "DE"})),
        (unique_address("opt-out"), json!({"kind": "opt_out_of_sale", "region": "US-CA"})),
        (unique_address("unsubscribe"), json!({"kind": "unsubscribe", "region": "NL"})),
    ];
    let mut made = Vec::new();
    for (address, mut body) in kinds {
        body["email"] = json!(address);
        let id = run.submit(&body).await;
        let kind = body["kind"].as_str().unwrap().to_owned();
        if !matches!(kind.as_str(), "opt_out_of_sale" | "unsubscribe") {
            run.confirm(&address, &id).await;
        }
        made.push((address, kind, id));
    }
    let pump_errors = run.pump_until_idle(Duration::from_secs(120)).await;
    let objection = made.iter().find(|(_, kind, _)| kind == "objection").unwrap().2.clone();
    assert_eq!(run.status(&objection).await, Status::Verified, "a staff task waits for staff");
    run.complete_by_staff(&objection).await;
    run.pump_until_idle(Duration::from_secs(60)).await;

    // What the pump gave up on, redriven with the faults off, as `make redrive` does.
    let report = run.emulator.report().await;
    run.emulator.set(json!({"rate": 0.0})).await;
    let sqs = aws_sdk_sqs::Client::new(&run.stack.sdk);
    let queues = devstack::redrive::dead_letter_queues(&sqs).await.unwrap();
    assert_eq!(queues.len(), 5, "{queues:?}");
    let outcomes = devstack::redrive::redrive(&run.stack.sdk, &run.stack.table, run.pump.invoker(), &queues)
        .await
        .unwrap();
    for outcome in &outcomes {
        assert!(outcome.failed.is_empty(), "{outcome:?}");
    }
    run.pump_until_idle(Duration::from_secs(60)).await;
    eprintln!(
        "faults: {} calls, injected {}; requester retries {:?}; pump ticks failed {pump_errors}; redriven {:?}",
        report["calls"],
        report["injected"],
        run.retried,
        outcomes.iter().map(|o| (o.queue.as_str(), o.before)).collect::<Vec<_>>()
    );
    assert!(report["calls"].as_u64() > Some(100), "the run met faults: {report}");

    let store = run.stack.deps().store;
    let items = run.stack.items().await;
    let mut exports = 0;
    for (address, kind, id) in &made {
        assert_eq!(run.status(id).await, Status::Completed, "{kind} {id}");
        // One request per submission, however often it was sent.
        let requests = items
            .iter()
            .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|s| s == "META"))
            .filter(|i| i.get("email").and_then(|v| v.as_s().ok()).is_some_and(|e| e == address))
            .filter(|i| i.get("kind").and_then(|v| v.as_s().ok()).is_some_and(|k| k == kind))
            .count();
        assert_eq!(requests, 1, "{kind}: one request for {address}");
        // One mail of each kind: links to confirm may come again (a retried submission mails one
        // more, as the contract says), every other mail once.
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        for mail in run.stack.mail_to(address).await {
            if mail.verification_links().is_empty() && mail.body.contains(id.as_str()) {
                *answers.entry(mail.subject.clone()).or_default() += 1;
            }
        }
        assert!(answers.values().all(|n| *n == 1), "{kind}: a mail sent twice: {answers:?}");
        assert!(!answers.is_empty(), "{kind}: the answer was mailed");
        // The audit trail: a transition for every version, none missing.
        let request_id = RequestId::parse(id).unwrap();
        let record = store.get(request_id).await.unwrap().unwrap();
        let trail = store.audit_trail(request_id).await.unwrap();
        let pk = format!("REQ#{id}");
        let mut versions: Vec<u32> = items
            .iter()
            .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk))
            .filter_map(|i| i.get("sk")?.as_s().ok()?.strip_prefix("AUDIT#")?.parse().ok())
            .collect();
        versions.sort();
        assert_eq!(
            versions,
            (1..=record.version).collect::<Vec<_>>(),
            "{kind}: a version without its audit event"
        );
        let events: Vec<Event> = trail.iter().map(|e| e.event).collect();
        assert_eq!(events.first(), Some(&Event::Submitted), "{kind}: {events:?}");
        // An opt-out is completed as it is submitted; every other request completes once.
        let completions = events.iter().filter(|e| **e == Event::Completed).count();
        let opt_out = matches!(kind.as_str(), "opt_out_of_sale" | "unsubscribe");
        assert_eq!(completions, usize::from(!opt_out), "{kind}: {events:?}");
        if matches!(kind.as_str(), "access" | "portability") {
            exports += 1;
        }
    }
    // Staff were told of each verified request once.
    for (_, kind, id) in
        made.iter().filter(|(_, kind, _)| !matches!(kind.as_str(), "opt_out_of_sale" | "unsubscribe"))
    {
        let notices =
            run.stack.mail_to(&run.staff).await.into_iter().filter(|m| m.body.contains(id.as_str())).count();
        assert_eq!(notices, 1, "{kind}: staff told once");
    }
    // One object per export, written once (the bucket keeps versions).
    let s3 = devstack::provision::s3_client(&run.stack.sdk);
    let versions = s3.list_object_versions().bucket(&run.bucket).send().await.unwrap();
    let keys: Vec<&str> = versions.versions().iter().filter_map(|v| v.key()).collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique, "an object written twice");
    assert_eq!(keys.len(), exports, "{keys:?}");
}

// What the fault run found, each on its own: the faults aimed at one operation.

/// A request submitted and verified with the faults off; returns its id.
async fn verified_quietly(stack: &Stack, address: &str) -> RequestId {
    let (status, answer) = submit(&stack.deps(), &submission(address, "access", "NL")).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["request_id"].as_str().unwrap().to_owned();
    let (_, token) = link_parts(&stack.mail_to(address).await[0]);
    assert_eq!(verify_with(&stack.verifier(), &id, &token).await.0, 200);
    RequestId::parse(&id).unwrap()
}

#[tokio::test]
async fn a_confirmation_whose_transaction_conflicts_with_another_is_a_503_to_retry_never_a_refused_token() {
    let emulator = FaultyEmulator::start(&[("EMULATOR_FAULTS", "0"), ("EMULATOR_FAULTS_SEED", "5")]).await;
    let mut stack = Stack::at(emulator.endpoint.clone(), &[]).await;
    stack.sdk = stack.sdk.to_builder().retry_config(quick_retries()).build();
    let roles = stack.roles(&[]).await;
    let address = unique_address("conflict");
    let (status, answer) =
        submit(&stack.signing_as(&roles, "intake").deps(), &submission(&address, "access", "NL")).await;
    assert_eq!(status, 202, "{answer}");
    let (id, token) = link_parts(&stack.mail_to(&address).await[0]);

    // Every transaction of the functions fails: throttled (retried by the SDK) or cancelled for a
    // conflict with a transaction in flight (not retried, a TransactionConflict reason).
    emulator.set(json!({"rate": 1.0, "only": ["dynamodb:TransactWriteItems"]})).await;
    let verifier = stack.signing_as(&roles, "verify").verifier();
    let mut conflicts = 0;
    for _ in 0..8 {
        let before = emulator.recent().await.len();
        let (status, answer) = verify_with(&verifier, &id, &token).await;
        let last = emulator.recent().await.into_iter().skip(before).last().map(|f| f.2);
        conflicts += usize::from(last.as_deref() == Some("TransactionCanceledException"));
        assert_eq!(status, 503, "a transient failure, to try again ({last:?}): {answer}");
    }
    assert!(conflicts > 0, "the seed drew no conflict");
    emulator.set(json!({"rate": 0.0})).await;
    assert_eq!(verify_with(&verifier, &id, &token).await.0, 200, "the link still works");
}

#[tokio::test]
async fn an_export_delivered_again_after_its_completion_failed_leaves_one_object() {
    let emulator = FaultyEmulator::start(&[("EMULATOR_FAULTS", "0"), ("EMULATOR_FAULTS_SEED", "5")]).await;
    let stack = Stack::at(emulator.endpoint.clone(), &[]).await;
    let map = stack.data_map().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("x{}-exports", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let template = devstack::template::Template::load(&devstack::template::default_path()).unwrap();
    devstack::provision::configure_bucket(&s3, &bucket, &template.bucket("ExportBucket").unwrap())
        .await
        .unwrap();
    let roles = stack.roles(&[("ExportBucket", &bucket)]).await;
    let as_export = stack.signing_as(&roles, "export");
    let export_s3 = devstack::provision::s3_client(&as_export.sdk);
    let exporter = export::Exporter {
        store: as_export.deps().store,
        data: AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&as_export.sdk), export_s3.clone()),
        map,
        s3: export_s3,
        target: export::ExportTarget { bucket: bucket.clone(), kms_key_id: None },
        clock: stack.clock.clone(),
        outside: crate::support::no_outside(&stack.sdk),
        calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
    };
    let id = verified_quietly(&stack, "carol@example.org").await;
    let record = stack.deps().store.get(id).await.unwrap().unwrap();
    let job = privacy_shared::jobs::ExportJob { request_id: id, version: record.version };

    // The archive is written, then every transaction fails: the job fails and is delivered again.
    emulator.set(json!({"rate": 1.0, "only": ["dynamodb:TransactWriteItems"]})).await;
    let started = stack.deps().store;
    let change = privacy_shared::store::Change::system(
        privacy_shared::domain::Transition::StartWork,
        privacy_shared::Clock::now(stack.clock.as_ref()),
    );
    started.transition(&record, change).await.unwrap();
    assert!(export::export(&exporter, &job).await.is_err(), "the completion failed");
    emulator.set(json!({"rate": 0.0})).await;
    export::export(&exporter, &job).await.unwrap();

    assert_eq!(stack.deps().store.get(id).await.unwrap().unwrap().status, Status::Completed);
    let versions = s3.list_object_versions().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = versions.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, [privacy_shared::domain::export_key(id, None)], "one object, written once");
}

#[tokio::test]
async fn submissions_whose_mail_failed_leave_the_mailbox_budget_to_the_retry_that_sends() {
    let emulator = FaultyEmulator::start(&[("EMULATOR_FAULTS", "0"), ("EMULATOR_FAULTS_SEED", "5")]).await;
    let mut stack = Stack::at(emulator.endpoint.clone(), &[]).await;
    stack.sdk = stack.sdk.to_builder().retry_config(quick_retries()).build();
    let roles = stack.roles(&[]).await;
    let intake = stack.signing_as(&roles, "intake");
    let address = unique_address("budget");
    let body = submission(&address, "access", "NL");
    let budget = stack.config().verification.budgets.per_mailbox;

    // As many tries as the mailbox may get mails in an hour, each failing to send its mail.
    emulator.set(json!({"rate": 1.0, "only": ["sesv2:SendEmail"]})).await;
    for _ in 0..budget {
        let (status, answer) = submit(&intake.deps(), &body).await;
        assert_eq!(status, 503, "{answer}");
    }
    emulator.set(json!({"rate": 0.0})).await;
    let (status, _) = submit(&intake.deps(), &body).await;
    assert_eq!(status, 202);
    assert_eq!(stack.mail_to(&address).await.len(), 1, "the retry mailed the link");
}

/// Takes every batch, as a function that succeeds.
struct Accepts;

impl Invoker for Accepts {
    async fn invoke(&self, _function: &str, _payload: Value) -> Result<Value> {
        Ok(json!({"batchItemFailures": []}))
    }
}

#[tokio::test]
async fn a_pump_started_again_goes_on_after_its_checkpoint_not_from_the_streams_start() {
    let stack = Stack::new().await;
    submit(&stack.deps(), &submission(&unique_address("before"), "access", "NL")).await;
    let reader = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    let stream = StreamMapping {
        reader,
        function: "dispatch".into(),
        batch_size: 2,
        max_retries: 1,
        on_failure_queue_url: None,
    };
    let mut pump = Pump::new(Accepts, &stack.sdk, Some(stream), Vec::new());
    pump.drain(20).await.unwrap();
    let checkpoint = pump.stream_checkpoint().expect("records were processed").to_owned();

    // Killed here; meanwhile one more request.
    submit(&stack.deps(), &submission(&unique_address("after"), "access", "NL")).await;
    let mut again = StreamReader::open_after(&stack.sdk, &stack.table, &checkpoint).await.unwrap();
    let records = again.poll().await.unwrap();
    let number = |r: &Value| r["dynamodb"]["SequenceNumber"].as_str().unwrap().parse::<u128>().unwrap();
    assert!(!records.is_empty(), "the new request's records");
    assert!(
        records.iter().all(|r| number(r) > checkpoint.parse().unwrap()),
        "nothing done is delivered again"
    );
}
