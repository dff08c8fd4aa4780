//! A heavy user against the emulator: a person with more records than many pages. The export
//! reads them a page at a time into a complete `data.json` and readable pages of bounded size;
//! the erasure saves its progress per page, stops before its invocation's deadline, continues
//! through its queue in fresh invocations and counts every record once.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, SystemTime};

use crate::support::*;
use export::{ExportTarget, Exporter, RECORDS_PER_PAGE};
use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::Status;
use privacy_shared::jobs::{DataChange, ErasureJob, ErasurePart, SqsJobQueue};
use privacy_shared::sources::{AwsPersonalData, PersonalData};
use privacy_shared::store::{ErasureLog, Requests};

/// The emulator's table of a data map source.
fn table_of(map: &DataMap, source: &str) -> String {
    match &map.source(source).unwrap().location {
        Location::Table { table, .. } => table.clone(),
        _ => panic!("{source} is not a table"),
    }
}

/// Writes `items` into `table`, 25 to a BatchWriteItem.
async fn put_all(stack: &Stack, table: &str, items: Vec<Value>) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(serde_dynamo::to_item(item).unwrap())).build();
                WriteRequest::builder().put_request(put.unwrap()).build()
            })
            .collect();
        let out = stack.dynamo.batch_write_item().request_items(table, writes).send().await.unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()), "the emulator took every item");
    }
}

fn chats(user: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "message_id": format!("m-{user}-{i:05}"), "user_id": user, "recipients": ["u-bob"],
                "sent_at": "2026-10-02T09:05:00Z", "content": format!("message {i} of {user}"),
            })
        })
        .collect()
}

fn calls(user: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "call_id": format!("c-{user}-{i:05}"), "user_id": user, "started_at": "2026-10-02T09:00:00Z",
                "duration_seconds": i, "participants": [user, "u-bob"],
            })
        })
        .collect()
}

fn entry(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Option<String> {
    let mut out = String::new();
    archive.by_name(name).ok()?.read_to_string(&mut out).unwrap();
    Some(out)
}

/// The chat message ids a readable page shows, one per record table.
fn shown_messages(html: &str) -> Vec<String> {
    let marker = "<th scope=\"row\">Bericht-ID</th><td>";
    html.split(marker).skip(1).map(|rest| rest.split("</td>").next().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_export_of_a_person_with_many_pages_of_records_holds_all_of_them_in_data_json_and_bounded_pages() {
    let stack = Stack::new().await;
    let map = stack.data_map().await;
    // Three full readable pages and a bit, read in Query pages of 100 records.
    let extra = 3 * RECORDS_PER_PAGE + 17;
    put_all(&stack, &table_of(&map, "chat_transcripts"), chats("u-alice", extra)).await;
    put_all(&stack, &table_of(&map, "chat_transcripts"), chats("u-bob", 30)).await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("x{}-exports", uuid::Uuid::new_v4().simple());
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let exporter = Exporter {
        store: stack.deps().store,
        data: AwsPersonalData::new(stack.dynamo.clone(), s3.clone()).with_page_size(100),
        map: map.clone(),
        s3: s3.clone(),
        target: ExportTarget { bucket: bucket.clone(), kms_key_id: None },
        clock: stack.clock.clone(),
        outside: crate::support::no_outside(&stack.sdk),
        calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
    };
    let id = verified_request(&stack, "alice@example.com", "access", "NL").await;
    let job = privacy_shared::jobs::ExportJob { request_id: id, version: 2 };
    export::export(&exporter, &job).await.unwrap();
    assert_eq!(stack.deps().store.get(id).await.unwrap().unwrap().status, Status::Completed);

    let key = format!("exports/{id}/export.zip");
    let object = s3.get_object().bucket(&bucket).key(key).send().await.unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid ZIP");

    // data.json: every record of hers, each once, and nobody else's.
    let data: Value = serde_json::from_str(&entry(&mut archive, "data.json").unwrap()).expect("valid JSON");
    let records = data["sources"]["chat_transcripts"]["records"].as_array().unwrap();
    let ids: BTreeSet<String> =
        records.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect();
    let sample = devstack::seed::SampleData::load(&devstack::seed::default_path()).unwrap();
    let sampled = sample.items["chat_transcripts"].iter().filter(|m| m["user_id"] == "u-alice").count();
    assert_eq!(records.len(), extra + sampled, "every record");
    assert_eq!(ids.len(), records.len(), "each once");
    assert!(records.iter().all(|r| r["user_id"] == "u-alice"), "only hers");
    assert_eq!(
        records.iter().find(|r| r["message_id"] == "m-u-alice-00007").unwrap()["content"],
        "message 7 of u-alice"
    );
    assert_eq!(
        data["sources"]["accounts"]["records"][0]["email"], "alice@example.com",
        "the other sources too"
    );
    assert_eq!(data["sources"]["recordings"]["files"].as_array().unwrap().len(), 2);
    assert!(data["disclosure"]["categories"].as_array().unwrap().contains(&json!("chat_transcripts")));
    assert_eq!(data["request"]["id"], id.to_string());

    // The readable part: the index shows the first page of each source and links the rest; no
    // page holds more than a page of records, and together they show what data.json holds.
    let index = entry(&mut archive, "index.html").unwrap();
    assert!(index.contains("Design review"), "a small source is read in the index");
    let mut shown = shown_messages(&index);
    assert_eq!(shown.len(), RECORDS_PER_PAGE);
    let pages = (extra + sampled).div_ceil(RECORDS_PER_PAGE);
    for n in 2..=pages {
        let name = format!("sources/chat_transcripts/page-{n}.html");
        assert!(index.contains(&format!("href=\"{name}\"")), "the index links {name}");
        let page = entry(&mut archive, &name).unwrap_or_else(|| panic!("{name} in the archive"));
        let on_page = shown_messages(&page);
        assert!(!on_page.is_empty() && on_page.len() <= RECORDS_PER_PAGE, "{name}: {}", on_page.len());
        assert_eq!(
            page.contains("page-") && page.contains("Volgende pagina"),
            n < pages,
            "{name}: next link"
        );
        assert!(page.contains("href=\"../../index.html\""), "{name} leads back to the overview");
        shown.extend(on_page);
    }
    assert!(entry(&mut archive, &format!("sources/chat_transcripts/page-{}.html", pages + 1)).is_none());
    assert_eq!(shown.iter().cloned().collect::<BTreeSet<_>>(), ids, "the pages show what data.json holds");
    assert_eq!(shown.len(), ids.len(), "each record on one page");
}

/// A Lambda context whose deadline is `left` from now.
fn context_with(left: Duration) -> Context {
    let deadline = SystemTime::now() + left;
    let mut context = Context::default();
    context.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    context
}

/// The message as the event source mapping hands it over, with a second left to run.
fn event_of(message: &aws_sdk_sqs::types::Message) -> LambdaEvent<SqsEvent> {
    let record = json!({"messageId": message.message_id(), "body": message.body()});
    let event: SqsEvent = serde_json::from_value(json!({"Records": [record]})).unwrap();
    LambdaEvent::new(event, context_with(Duration::from_secs(1)))
}

#[tokio::test]
async fn an_erasure_that_runs_out_of_time_continues_in_fresh_invocations_and_counts_each_record_once() {
    let stack = Stack::new().await;
    let map = stack.data_map().await;
    put_all(&stack, &table_of(&map, "chat_transcripts"), chats("u-bob", 45)).await;
    put_all(&stack, &table_of(&map, "call_detail_records"), calls("u-bob", 23)).await;
    put_all(&stack, &table_of(&map, "chat_transcripts"), chats("u-alice", 12)).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let dead_letters =
        devstack::provision::create_queue(&sqs, &format!("erasure-dlq-{tag}.fifo"), None).await.unwrap();
    let dead_letter_arn = devstack::provision::queue_arn(&sqs, &dead_letters).await.unwrap();
    let queue_name = format!("erasure-{tag}.fifo");
    let queue =
        devstack::provision::create_queue(&sqs, &queue_name, Some((&dead_letter_arn, 5))).await.unwrap();
    let bucket = format!("x{tag}-exports");
    devstack::provision::create_bucket(&devstack::provision::s3_client(&stack.sdk), &bucket).await.unwrap();

    // The erasure under its own role: sending its continuation is a call the role must allow.
    let roles = stack.roles(&[("ErasureQueue", &queue_name), ("ExportBucket", &bucket)]).await;
    let as_erasure = stack.signing_as(&roles, "erasure");
    let s3 = devstack::provision::s3_client(&as_erasure.sdk);
    let eraser = erasure::Eraser {
        store: as_erasure.deps().store,
        data: AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&as_erasure.sdk), s3.clone())
            .with_page_size(10),
        map: map.clone(),
        s3,
        export_bucket: bucket,
        clock: stack.clock.clone(),
        outside: crate::support::no_outside(&stack.sdk),
        tombstones: None,
        continuation: Some(erasure::Continuation {
            queue: SqsJobQueue::new(aws_sdk_sqs::Client::new(&as_erasure.sdk), "", &queue),
            // More than the second each invocation is given: every invocation takes one step.
            stop_before_deadline: Duration::from_secs(30),
        }),
    };
    let alice_chats = map.source("chat_transcripts").unwrap();
    let alice_before = eraser.data.records(alice_chats, "u-alice").await.unwrap().len();

    let id = verified_request(&stack, "bob@example.com", "deletion", "US-CA").await;
    let version = stack.deps().store.get(id).await.unwrap().unwrap().version;
    let job = ErasureJob { request_id: id, version, change: DataChange::Erase };
    sqs.send_message()
        .queue_url(&queue)
        .message_body(serde_json::to_string(&job).unwrap())
        .message_group_id(id.to_string())
        .message_deduplication_id(privacy_shared::jobs::Job::deduplication_id(&job))
        .send()
        .await
        .unwrap();

    // The event source mapping, played by hand: each message delivered twice (as Lambda may),
    // then acknowledged.
    let mut invocations = 0;
    let mut parts = Vec::new();
    loop {
        let received =
            sqs.receive_message().queue_url(&queue).max_number_of_messages(1).send().await.unwrap();
        let Some(message) = received.messages().first() else { break };
        parts.push(serde_json::from_str::<ErasurePart>(message.body().unwrap()).unwrap().part);
        for _ in 0..2 {
            let response = erasure::handle(&eraser, event_of(message)).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "a large erasure is no failure: {response:?}");
            invocations += 1;
        }
        let receipt = message.receipt_handle().unwrap();
        sqs.delete_message().queue_url(&queue).receipt_handle(receipt).send().await.unwrap();
        assert!(invocations < 200, "the erasure ends");
    }
    let done = stack.deps().store.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed);
    // About fifteen steps (pages of ten records, the other sources, the re-read), one per
    // invocation, two invocations per message.
    assert!(parts.len() >= 6, "many invocations, one step each: {parts:?}");
    assert_eq!(parts, (0..parts.len() as u32).collect::<Vec<_>>(), "each part once, in order");
    let receipt = done.receipt.expect("a receipt");
    let count = |source: &str| receipt.sources.iter().find(|s| s.source == source).unwrap().clone();
    let sample = devstack::seed::SampleData::load(&devstack::seed::default_path()).unwrap();
    let bobs = |source: &str| sample.items[source].iter().filter(|i| i["user_id"] == "u-bob").count() as u32;
    assert_eq!(count("chat_transcripts").deleted, 45 + bobs("chat_transcripts"), "each record counted once");
    assert_eq!(count("call_detail_records").anonymised, 23 + bobs("call_detail_records"));
    assert_eq!(count("call_detail_records").deleted, 0);
    assert!(count("call_detail_records").kept_because.is_some());
    assert!(eraser.data.records(alice_chats, "u-bob").await.unwrap().is_empty(), "nothing of his is left");
    assert_eq!(eraser.data.records(alice_chats, "u-alice").await.unwrap().len(), alice_before, "hers stay");
    assert!(eraser.store.erasure_progress(id).await.unwrap().is_none(), "the progress is gone with the job");
    let dead = sqs.receive_message().queue_url(&dead_letters).send().await.unwrap();
    assert!(dead.messages().is_empty(), "nothing reached the dead-letter queue");
}
