//! Sources outside AWS end to end against the emulator: a request's export and erasure ask the
//! webhook source (the reference server of `make dev`, in process) and open a task for staff for
//! the manual source, and complete only once every source, in AWS and outside it, has answered.
//! A webhook that misbehaves never completes a request with a partial answer; a source that
//! never answers is late, alerted once, and in the staff digest, while the request stays open.

use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use devstack::seed::{self, SampleData};
use devstack::source_server::{self, Keys, Mode, Options, SigningKey};
use export::{ExportTarget, Exporter};
use privacy_shared::config::OutsideSettings;
use privacy_shared::datamap::DataMap;
use privacy_shared::domain::{
    ErasedSource, Event, RequestId, SourceOperation, StagedFile, Status, TaskChange, TaskProblem, TaskState,
};
use privacy_shared::jobs::{DataChange, ErasureJob, ExportJob};
use privacy_shared::outside::file_key;
use privacy_shared::sources::AwsPersonalData;
use privacy_shared::store::{DynamoStore, Requests, SourceTasks, change_task};

/// The signing key every test's source uses: the secret is one per emulator.
const KEY: &str = "test-source-key-4f1c2a9d7e";
const SECRET: &str = "privacy-requests/sources/job_applications";

struct World {
    stack: Stack,
    exporter: Exporter<DynamoStore, AwsPersonalData>,
    s3: aws_sdk_s3::Client,
    bucket: String,
    /// The job applications source's base URL.
    url: String,
}

/// A stack with the whole data map, its sources seeded, and the job applications source at `url`.
async fn world(url: &str) -> World {
    let stack = Stack::with_env(&[("DATA_MAP_SCOPE", "all")]).await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let map = DataMap::builtin().unwrap().with_name_prefix(&prefix);
    assert!(map.source("job_applications").is_some() && map.source("website_analytics").is_some());
    seed::create_sources(&stack.sdk, &map).await.unwrap();
    seed::seed(&stack.sdk, &map, &SampleData::load(&seed::default_path()).unwrap()).await.unwrap();
    // Tests run side by side on one emulator: one of them creates the secret, the others find it.
    for attempt in 0.. {
        match source_server::put_signing_key(&stack.sdk, SECRET, KEY).await {
            Ok(_) => break,
            Err(err) if attempt == 3 => panic!("{err:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let bucket = format!("{prefix}exports");
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let exporter = Exporter {
        store: stack.deps().store,
        data: AwsPersonalData::new(stack.dynamo.clone(), s3.clone()),
        map,
        s3: s3.clone(),
        target: ExportTarget { bucket: bucket.clone(), kms_key_id: None },
        clock: stack.clock.clone() as Arc<dyn privacy_shared::Clock>,
        outside: outside(&stack, url, Duration::from_secs(10)),
        calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
    };
    World { stack, exporter, s3, bucket, url: url.to_owned() }
}

fn outside(
    stack: &Stack,
    url: &str,
    timeout: Duration,
) -> privacy_shared::outside::Outside<privacy_shared::deps::WebhookEndpoints> {
    let settings = OutsideSettings {
        endpoints: HashMap::from([("job_applications".to_owned(), url.to_owned())]),
        callback_base: None,
    };
    let mut outside = privacy_shared::deps::webhook_endpoints(&stack.sdk, &settings);
    outside.endpoints = outside.endpoints.with_timeout(timeout).with_backoff(Duration::from_millis(20));
    outside
}

fn eraser(world: &World) -> erasure::Eraser<DynamoStore, AwsPersonalData> {
    erasure::Eraser {
        store: world.stack.deps().store,
        data: AwsPersonalData::new(world.stack.dynamo.clone(), world.s3.clone()),
        map: world.exporter.map.clone(),
        s3: world.s3.clone(),
        export_bucket: world.bucket.clone(),
        clock: world.stack.clock.clone(),
        outside: outside(&world.stack, &world.url, Duration::from_secs(10)),
        tombstones: None,
        continuation: None,
    }
}

/// The reference source serving the sample data's job applications.
async fn reference_source(mode: Mode) -> source_server::Handle {
    let records = source_server::seed_records(&seed::default_path(), "job_applications").unwrap();
    let mut options = Options::new(Keys::new(SigningKey::new(KEY), Vec::new()), records);
    options.mode = mode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    source_server::start(listener, options)
}

async fn verified(world: &World, address: &str, kind: &str, region: &str) -> RequestId {
    submit(
        &world.stack.deps(),
        &serde_json::json!({"email": address, "kind": kind, "region": region}).to_string(),
    )
    .await;
    let (id, token) = link_parts(&world.stack.mail_to(address).await.pop().unwrap());
    assert_eq!(verify_with(&world.stack.verifier(), &id, &token).await.0, 200);
    RequestId::parse(&id).unwrap()
}

async fn status(world: &World, id: RequestId) -> Status {
    world.exporter.store.get(id).await.unwrap().unwrap().status
}

async fn task_state(world: &World, id: RequestId, operation: SourceOperation, source: &str) -> TaskState {
    world.exporter.store.task(id, operation, source).await.unwrap().expect("a task").state
}

/// What the staff API does for `staff attach`: the file lands under the request's staging
/// prefix, and the task is collected with it.
async fn staff_attach(world: &World, id: RequestId, name: &str, body: &[u8]) {
    let key = file_key(id, "website_analytics", name);
    world.s3.put_object().bucket(&world.bucket).key(&key).body(body.to_vec().into()).send().await.unwrap();
    let store = &world.exporter.store;
    let task = store.task(id, SourceOperation::Access, "website_analytics").await.unwrap().unwrap();
    let file =
        StagedFile { name: name.into(), key, size: body.len() as u64, content_type: "text/csv".into() };
    let change = TaskChange::Collected { records: 0, pages: 0, files: vec![file] };
    assert!(change_task(store, &task, &change).await.unwrap().is_some());
}

async fn events(world: &World, id: RequestId) -> Vec<(Event, Option<String>)> {
    let trail = world.exporter.store.audit_trail(id).await.unwrap();
    trail.into_iter().map(|e| (e.event, e.reason)).collect()
}

fn open_zip(bytes: Vec<u8>) -> zip::ZipArchive<std::io::Cursor<Vec<u8>>> {
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the export is a valid ZIP")
}

fn entry(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    archive.by_name(name).unwrap_or_else(|_| panic!("{name} in the archive")).read_to_end(&mut out).unwrap();
    out
}

async fn keys_under(world: &World, prefix: &str) -> Vec<String> {
    let out = world.s3.list_objects_v2().bucket(&world.bucket).prefix(prefix).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

#[tokio::test]
async fn an_access_request_waits_for_every_source_outside_aws_and_its_zip_holds_them_all() {
    let source = reference_source(Mode::Immediate).await;
    let world = world(source.base_url()).await;
    let id = verified(&world, "alice@example.com", "access", "NL").await;
    let job = ExportJob { request_id: id, version: 2 };

    export::export(&world.exporter, &job).await.unwrap();
    // The webhook answered at once, page by page (Alice has two applications, one a page); staff
    // have not looked in the analytics tool yet, so there is no export and the request waits.
    match task_state(&world, id, SourceOperation::Access, "job_applications").await {
        TaskState::Collected { records, pages, .. } => assert_eq!((records, pages), (2, 2)),
        other => panic!("the webhook's answer is staged: {other:?}"),
    }
    assert_eq!(
        task_state(&world, id, SourceOperation::Access, "website_analytics").await,
        TaskState::WithStaff
    );
    assert_eq!(status(&world, id).await, Status::InProgress);
    assert!(keys_under(&world, &format!("exports/{id}/")).await.is_empty(), "no partial export");
    let headers = source.last_headers().unwrap();
    assert_eq!(headers["idempotency-key"], format!("{id}.access.job_applications"));

    staff_attach(&world, id, "visits.csv", b"visited_at,ip\n2026-11-02T10:00:00Z,192.0.2.10\n").await;
    // The staff's answer wakes the export (through dispatch); here it is run again directly.
    export::export(&world.exporter, &job).await.unwrap();
    assert_eq!(status(&world, id).await, Status::Completed);

    let zip =
        world.s3.get_object().bucket(&world.bucket).key(format!("exports/{id}/export.zip")).send().await;
    let mut archive = open_zip(zip.unwrap().body.collect().await.unwrap().into_bytes().to_vec());
    let data: Value = serde_json::from_slice(&entry(&mut archive, "data.json")).unwrap();
    let applications = data["sources"]["job_applications"]["records"].as_array().unwrap();
    let mut ids: Vec<&str> = applications.iter().map(|a| a["application_id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["app-2021-0042", "app-2025-0317"], "by address and by user id, every age (GDPR)");
    assert!(!data.to_string().contains("app-2026-0108"), "Bob's application is not Alice's");
    let files = data["sources"]["website_analytics"]["files"].as_array().unwrap();
    assert_eq!(files[0]["path"], "files/website_analytics/visits.csv");
    assert!(entry(&mut archive, "files/website_analytics/visits.csv").starts_with(b"visited_at,ip"));
    // The AWS sources are there as before.
    assert_eq!(data["sources"]["recordings"]["files"].as_array().unwrap().len(), 2);
    assert!(!data["sources"]["accounts"]["records"].as_array().unwrap().is_empty());
    let categories = data["disclosure"]["categories"].as_array().unwrap();
    assert!(
        categories.contains(&Value::from("job_application"))
            && categories.contains(&Value::from("geolocation"))
    );
    let index = String::from_utf8(entry(&mut archive, "index.html")).unwrap();
    assert!(index.contains("Senior product designer"), "the webhook's records are readable in the page");
    // The referees are other people: pseudonymised in the page and in data.json alike.
    for referee in ["Noor Visser", "Tim Bos", "Sam de Boer"] {
        assert!(
            !index.contains(referee) && !data.to_string().contains(referee),
            "{referee} is pseudonymised"
        );
    }
    assert!(index.contains("Voormalig leidinggevende") && index.contains("deelnemer "), "labelled, numbered");
    assert!(index.contains("<a href=\"files/website_analytics/visits.csv\">"), "the attached file is linked");
    // The staged copies went with the completion; every step is audited.
    assert!(keys_under(&world, &format!("staging/{id}/")).await.is_empty());
    let trail = events(&world, id).await;
    let count = |event: Event| trail.iter().filter(|(e, _)| *e == event).count();
    assert_eq!((count(Event::SourceAsked), count(Event::SourceAnswered)), (2, 1));
    assert!(trail.iter().any(|(e, r)| *e == Event::SourceAsked
        && r.as_deref() == Some("source=website_analytics operation=access")));
    assert!(
        trail.iter().all(|(_, r)| !r.as_deref().unwrap_or("").contains("alice")),
        "no address in the trail"
    );
}

#[tokio::test]
async fn a_ccpa_access_request_asks_the_webhook_for_its_window_only() {
    let source = reference_source(Mode::Immediate).await;
    let world = world(source.base_url()).await;
    let id = verified(&world, "alice@example.com", "access", "US-CA").await;
    export::export(&world.exporter, &ExportJob { request_id: id, version: 2 }).await.unwrap();
    // What was collected on or after 1 January 2022: the September 2025 application, not the
    // 2021 one; the endpoint was given the start and left it out.
    match task_state(&world, id, SourceOperation::Access, "job_applications").await {
        TaskState::Collected { records, .. } => assert_eq!(records, 1),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_webhook_that_answers_later_is_collected_once_woken_and_never_before() {
    let source = reference_source(Mode::Deferred { delay: Duration::from_millis(300) }).await;
    let world = world(source.base_url()).await;
    let id = verified(&world, "bob@example.com", "portability", "NL").await;
    let job = ExportJob { request_id: id, version: 2 };
    export::export(&world.exporter, &job).await.unwrap();
    assert_eq!(
        task_state(&world, id, SourceOperation::Access, "job_applications").await,
        TaskState::Waiting { problem: None },
        "202: the task waits, and the invocation ends"
    );
    assert!(keys_under(&world, &format!("staging/{id}/job_applications/")).await.is_empty());
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Its callback (or the sweep's poll) wakes the task; the woken export asks again.
    let store = &world.exporter.store;
    let task = store.task(id, SourceOperation::Access, "job_applications").await.unwrap().unwrap();
    let woken = change_task(store, &task, &TaskChange::Wake).await.unwrap().unwrap();
    assert_eq!(woken.wakes, 1);
    staff_attach(&world, id, "nothing.csv", b"visited_at,ip\n").await;
    export::export(&world.exporter, &job).await.unwrap();
    assert_eq!(status(&world, id).await, Status::Completed);
    assert!(matches!(
        task_state(&world, id, SourceOperation::Access, "job_applications").await,
        TaskState::Collected { records: 1, .. }
    ));
}

#[tokio::test]
async fn an_erasure_completes_only_when_the_webhook_and_staff_have_erased_and_its_receipt_names_both() {
    let source = reference_source(Mode::Immediate).await;
    let world = world(source.base_url()).await;
    let eraser = eraser(&world);
    let id = verified(&world, "alice@example.com", "deletion", "NL").await;
    let job = ErasureJob { request_id: id, version: 2, change: DataChange::Erase };
    erasure::run(&eraser, &job).await.unwrap();
    assert_eq!(source.record_count(), 1, "the source deleted Alice's two applications");
    assert!(matches!(
        task_state(&world, id, SourceOperation::Erasure, "job_applications").await,
        TaskState::Erased { .. }
    ));
    assert_eq!(status(&world, id).await, Status::InProgress, "staff have not confirmed the manual source");

    let store = &world.exporter.store;
    let task = store.task(id, SourceOperation::Erasure, "website_analytics").await.unwrap().unwrap();
    let receipt = ErasedSource {
        source: "website_analytics".into(),
        description: "Website visits".into(),
        categories: vec!["internet_activity".into()],
        deleted: 4,
        anonymised: 0,
        kept_because: None,
    };
    change_task(store, &task, &TaskChange::Erased(receipt)).await.unwrap().unwrap();
    erasure::run(&eraser, &job).await.unwrap();
    let request = store.get(id).await.unwrap().unwrap();
    assert_eq!(request.status, Status::Completed);
    let receipt = request.receipt.unwrap();
    let line = |source: &str| receipt.sources.iter().find(|s| s.source == source).cloned();
    assert_eq!(line("job_applications").map(|s| s.deleted), Some(2));
    assert_eq!(line("website_analytics").map(|s| s.deleted), Some(4));
    assert!(line("accounts").is_some_and(|s| s.deleted == 1), "the AWS sources as before");
    // Asked once: the second run found the webhook's receipt and did not call again.
    assert_eq!(source.calls(), 1);
}

/// An endpoint that answers every call the same way, after `delay`.
async fn misbehaving(status: u16, body: Vec<u8>, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                tokio::time::sleep(delay).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_webhook_that_answers_garbage_too_much_too_slowly_or_refuses_leaves_the_request_waiting_with_the_reason()
 {
    let huge =
        format!(r#"{{"records": [{{"cv": "{}"}}], "next_cursor": null}}"#, "x".repeat(2 * 1024 * 1024));
    let cases = [
        (misbehaving(200, b"<html>oops</html>".to_vec(), Duration::ZERO).await, TaskProblem::BadAnswer),
        (misbehaving(200, huge.into_bytes(), Duration::ZERO).await, TaskProblem::TooLarge),
        (misbehaving(200, b"{}".to_vec(), Duration::from_secs(3)).await, TaskProblem::Timeout),
        (
            misbehaving(401, br#"{"error":{"code":"bad_signature"}}"#.to_vec(), Duration::ZERO).await,
            TaskProblem::Refused,
        ),
        (misbehaving(503, b"".to_vec(), Duration::ZERO).await, TaskProblem::Unavailable),
    ];
    for (url, problem) in cases {
        let mut world = world(&url).await;
        world.exporter.outside = outside(&world.stack, &url, Duration::from_millis(500));
        let id = verified(&world, "alice@example.com", "access", "NL").await;
        let job = ExportJob { request_id: id, version: 2 };
        staff_attach_after_open(&world, id, &job).await;
        export::export(&world.exporter, &job).await.unwrap();
        assert_eq!(
            task_state(&world, id, SourceOperation::Access, "job_applications").await,
            TaskState::Waiting { problem: Some(problem) },
            "{problem:?}"
        );
        assert_eq!(
            status(&world, id).await,
            Status::InProgress,
            "{problem:?}: no partial answer completes it"
        );
        assert!(keys_under(&world, &format!("exports/{id}/")).await.is_empty());
        let failed: Vec<Option<String>> = events(&world, id)
            .await
            .into_iter()
            .filter(|(e, _)| *e == Event::SourceFailed)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            failed,
            vec![Some(format!("source=job_applications operation=access problem={}", problem.as_str()))],
            "staff see why, once"
        );
    }
}

/// Opens the request's tasks (one export run) and answers the manual one, so that only the
/// webhook is left.
async fn staff_attach_after_open(world: &World, id: RequestId, job: &ExportJob) {
    export::export(&world.exporter, job).await.unwrap();
    staff_attach(world, id, "visits.csv", b"visited_at,ip\n").await;
}

#[tokio::test]
async fn a_manual_source_staff_never_answer_is_late_alerted_once_and_in_the_digest_while_the_request_stays_open()
 {
    let source = reference_source(Mode::Immediate).await;
    let world = world(source.base_url()).await;
    let id = verified(&world, "carol@example.org", "access", "NL").await;
    export::export(&world.exporter, &ExportJob { request_id: id, version: 2 }).await.unwrap();
    let task =
        world.exporter.store.task(id, SourceOperation::Access, "website_analytics").await.unwrap().unwrap();

    let sweeper = sweeper(&world.stack, "privacy-team@example.com");
    let first = reminders::sweep(&sweeper).await.unwrap();
    assert_eq!(first.sources_late, 0);
    let digest = world.stack.mail_to("privacy-team@example.com").await.pop().expect("a digest");
    assert!(digest.body.contains("Sources for staff to search") && digest.body.contains(&id.to_string()));
    assert!(digest.body.contains("website_analytics") && digest.body.contains(&task.answer_by.to_string()));

    // Past the day the source should have answered by.
    world.stack.clock.set((task.answer_by + chrono::Days::new(1)).and_hms_opt(9, 0, 0).unwrap().and_utc());
    let late = reminders::sweep(&sweeper).await.unwrap();
    assert_eq!(late.sources_late, 1);
    let again = reminders::sweep(&sweeper).await.unwrap();
    assert_eq!(again.sources_late, 0, "alerted once");
    let late_events = events(&world, id).await.into_iter().filter(|(e, _)| *e == Event::SourceLate).count();
    assert_eq!(late_events, 1);
    let digests = world.stack.mail_to("privacy-team@example.com").await;
    let late_digest =
        digests.iter().find(|m| m.body.contains("Sources late")).expect("the late source in a digest");
    assert!(late_digest.body.contains("website_analytics") && late_digest.body.contains(&id.to_string()));
    assert!(!late_digest.body.contains("carol"), "the digest names no requester");
    assert_eq!(status(&world, id).await, Status::InProgress, "the request stays open");
    assert!(
        world
            .exporter
            .store
            .task(id, SourceOperation::Access, "website_analytics")
            .await
            .unwrap()
            .unwrap()
            .late
    );
}
