//! A big export against the emulator, with a part size of a few KiB: a person whose recordings
//! come to more than a part is exported as numbered ZIP parts, each written by a job of its own
//! (in a message group of its own), under the export function's own role. Every part is a valid
//! ZIP, every recording is in exactly one part, the records only in part 1; redelivered jobs
//! write nothing twice; the request completes once, the completion mail links every part, each
//! link downloads its part, and the person's erasure takes the parts and the plan with it.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::support::*;
use export::{ExportTarget, Exporter, Split, Worker};
use privacy_shared::Clock as _;
use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::{Event, RequestId, Status};
use privacy_shared::jobs::{DataChange, ErasureJob, ExportJob, ExportPart, SqsJobQueue};
use privacy_shared::sources::AwsPersonalData;
use privacy_shared::store::DynamoStore;

/// A part holds at most this much: the person's recordings below make four parts of it.
const PART_BYTES: u64 = 6 * 1024;
/// The person's recordings, in listing order, with their sizes: `a` and `b` share part 1, `c`
/// is part 2, `d` is larger than a part and alone in part 3, `e` is part 4.
const RECORDINGS: [(&str, usize); 5] =
    [("a.mp4", 3000), ("b.mp4", 2500), ("c.mp4", 4000), ("d.mp4", 9000), ("e.mp4", 1000)];

type AwsWorker = Worker<DynamoStore, AwsPersonalData, SqsJobQueue>;

struct World {
    stack: Stack,
    roles: Roles,
    worker: AwsWorker,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    s3: aws_sdk_s3::Client,
    bucket: String,
    map: DataMap,
    address: String,
    /// Archive path -> content of each of the person's recordings.
    recordings: BTreeMap<String, Vec<u8>>,
}

fn recording(name: &str, size: usize) -> Vec<u8> {
    name.bytes().cycle().take(size).enumerate().map(|(i, b)| b.wrapping_add((i % 251) as u8)).collect()
}

/// A fresh person with an account and the recordings above, and the export function under its
/// role with a part size of [`PART_BYTES`].
async fn world(part_bytes: u64) -> World {
    let stack = Stack::new().await;
    let map = stack.data_map().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let queue = devstack::provision::create_queue(&sqs, &format!("export-{tag}.fifo"), None).await.unwrap();
    let bucket = format!("x{tag}-exports");
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    // Versioned, as the template has it: a part written twice would leave two versions.
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning().bucket(&bucket).versioning_configuration(versioning).send().await.unwrap();

    let address = unique_address("big");
    let user = format!("u-{tag}");
    let Location::Table { table: accounts, .. } = &map.source("accounts").unwrap().location else {
        panic!("accounts is a table")
    };
    let account = json!({"email": address, "user_id": user, "name": "Big Exporter"});
    stack
        .dynamo
        .put_item()
        .table_name(accounts)
        .set_item(Some(serde_dynamo::to_item(account).unwrap()))
        .send()
        .await
        .unwrap();
    let Location::Objects { bucket: recordings_bucket, .. } = &map.source("recordings").unwrap().location
    else {
        panic!("recordings are objects")
    };
    let mut recordings = BTreeMap::new();
    for (name, size) in RECORDINGS {
        let body = recording(name, size);
        s3.put_object()
            .bucket(recordings_bucket)
            .key(format!("recordings/{user}/{name}"))
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
        recordings.insert(format!("files/recordings/{name}"), body);
    }

    let queue_name = queue.rsplit('/').next().unwrap().to_owned();
    let roles = stack.roles(&[("ExportQueue", &queue_name), ("ExportBucket", &bucket)]).await;
    let as_export = stack.signing_as(&roles, "export");
    let export_s3 = devstack::provision::s3_client(&as_export.sdk);
    let worker = Worker {
        exporter: Exporter {
            store: as_export.deps().store,
            data: AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&as_export.sdk), export_s3.clone()),
            map: map.clone(),
            s3: export_s3,
            target: ExportTarget { bucket: bucket.clone(), kms_key_id: None },
            clock: stack.clock.clone(),
            outside: crate::support::no_outside(&stack.sdk),
            calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
        },
        split: Some(Split {
            part_bytes,
            queue: SqsJobQueue::new(aws_sdk_sqs::Client::new(&as_export.sdk), &queue, ""),
        }),
    };
    World { stack, roles, worker, sqs, queue, s3, bucket, map, address, recordings }
}

impl World {
    async fn verified(&self) -> ExportJob {
        let id = verified_request(&self.stack, &self.address, "access", "NL").await;
        ExportJob { request_id: id, version: 2 }
    }

    /// Delivers `messages` to the export handler, one invocation each, as the event source
    /// mapping does; every one must succeed.
    async fn deliver(&self, messages: &[aws_sdk_sqs::types::Message]) {
        for message in messages {
            let mut sqs_message = aws_lambda_events::sqs::SqsMessage::default();
            sqs_message.message_id = message.message_id().map(str::to_owned);
            sqs_message.body = message.body().map(str::to_owned);
            let mut event = export::SqsEvent::default();
            event.records.push(sqs_message);
            let invocation = lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default());
            let response = export::handle_jobs(&self.worker, invocation).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
        }
    }

    /// Every message waiting on the export queue (taken off it).
    async fn queued(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut messages = Vec::new();
        for _ in 0..10 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                let receipt = message.receipt_handle().unwrap();
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap();
            }
            messages.extend(received.messages().iter().cloned());
        }
        messages
    }

    /// The plan's job (the message dispatch sends): the parts' jobs it queued.
    async fn split(&self, job: &ExportJob) -> Vec<aws_sdk_sqs::types::Message> {
        export::run(
            &self.worker.exporter,
            self.worker.split.as_ref(),
            &ExportPart { job: job.clone(), part: None, wake: None },
        )
        .await
        .unwrap();
        self.queued().await
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        let got = self.s3.get_object().bucket(&self.bucket).key(key).send().await.unwrap();
        got.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// Every version (and delete marker) under `prefix` in the export bucket, by key.
    async fn versions(&self, prefix: &str) -> BTreeMap<String, usize> {
        let out = self.s3.list_object_versions().bucket(&self.bucket).prefix(prefix).send().await.unwrap();
        let mut counts = BTreeMap::new();
        for key in out
            .versions()
            .iter()
            .filter_map(|v| v.key())
            .chain(out.delete_markers().iter().filter_map(|m| m.key()))
        {
            *counts.entry(key.to_owned()).or_default() += 1;
        }
        counts
    }

    async fn completions(&self, id: RequestId) -> usize {
        let trail = self.stack.deps().store.audit_trail(id).await.unwrap();
        trail.iter().filter(|e| e.event == Event::Completed).count()
    }
}

fn part_of(message: &aws_sdk_sqs::types::Message) -> ExportPart {
    serde_json::from_str(message.body().unwrap()).unwrap()
}

fn entries(bytes: Vec<u8>) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("each part is a valid ZIP");
    let names: Vec<String> = archive.file_names().map(|n| n.expect("a readable name").into_owned()).collect();
    names
        .into_iter()
        .map(|name| {
            let mut content = Vec::new();
            archive.by_name(&name).unwrap().read_to_end(&mut content).unwrap();
            (name, content)
        })
        .collect()
}

fn part_key(id: RequestId, number: u32) -> String {
    format!("exports/{id}/export-part-{number:02}-of-04.zip")
}

#[tokio::test]
async fn a_big_export_is_written_as_numbered_parts_each_a_zip_with_every_recording_once_and_the_records_in_part_1()
 {
    let world = world(PART_BYTES).await;
    let job = world.verified().await;
    let id = job.request_id;
    let queued = world.split(&job).await;

    let store = &world.worker.exporter.store;
    assert_eq!(store.get(id).await.unwrap().unwrap().status, Status::InProgress, "not done before its parts");
    let mut numbers: Vec<u32> = queued.iter().map(|m| part_of(m).part.expect("a part's job")).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4], "a job per part");
    assert!(queued.iter().all(|m| part_of(m).job == job), "for the export dispatch asked for");
    let groups: BTreeSet<&str> = queued
        .iter()
        .map(|m| m.attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId].as_str())
        .collect();
    assert_eq!(groups.len(), 4, "each part in a group of its own, so the parts run side by side");
    assert!(!groups.contains(id.to_string().as_str()), "and not in the request's own group");
    let prefix = format!("exports/{id}/");
    let stored: Vec<String> = world.versions(&prefix).await.into_keys().collect();
    assert_eq!(stored, [format!("{prefix}plan.json")], "only the plan before the parts' jobs run");

    world.deliver(&queued[..3]).await;
    assert_eq!(store.get(id).await.unwrap().unwrap().status, Status::InProgress, "a part is missing");
    world.deliver(&queued[3..]).await;
    let done = store.get(id).await.unwrap().unwrap();
    assert_eq!((done.status, done.export_parts), (Status::Completed, Some(4)));
    assert!(
        done.export_found.is_some_and(|n| n > RECORDINGS.len() as u64),
        "records and files: {:?}",
        done.export_found
    );

    let mut seen: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for number in 1..=4 {
        let inside = entries(world.object(&part_key(id, number)).await);
        let records = ["data.json", "index.html"].iter().filter(|name| inside.contains_key(**name)).count();
        assert_eq!(records, if number == 1 { 2 } else { 0 }, "part {number}: {:?}", inside.keys());
        for (name, content) in inside.into_iter().filter(|(name, _)| name.starts_with("files/")) {
            assert!(seen.insert(name.clone(), content).is_none(), "{name} is in two parts");
        }
    }
    assert_eq!(seen, world.recordings, "every recording exactly once, whole");

    let first = entries(world.object(&part_key(id, 1)).await);
    let data: Value = serde_json::from_slice(&first["data.json"]).unwrap();
    assert_eq!(data["request"]["parts"], 4);
    let where_: BTreeMap<&str, u64> = data["sources"]["recordings"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["part"].as_u64().unwrap()))
        .collect();
    let expected = [("a", 1), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]
        .map(|(name, part)| (format!("files/recordings/{name}.mp4"), part));
    assert_eq!(where_, expected.iter().map(|(n, p)| (n.as_str(), *p)).collect(), "data.json says which part");
    assert!(data["sources"]["accounts"]["records"].as_array().is_some_and(|r| r.len() == 1), "the records");
    let index = String::from_utf8(first["index.html"].clone()).unwrap();
    assert!(index.contains("Deze kopie bestaat uit 4 delen"), "{index}");
    let d = index
        .split("files/recordings/d.mp4</code>: ")
        .nth(1)
        .expect("d.mp4 is listed")
        .split("</li>")
        .next()
        .unwrap();
    assert!(
        d.starts_with("8,79 kB, van ") && d.ends_with(", in deel 3"),
        "its size, date and part in words: {d}"
    );
    assert!(!index.contains("href=\"files/recordings/d.mp4\""), "a file in another part is not linked");
    assert!(index.contains("href=\"files/recordings/a.mp4\""), "one in this part is");
    assert_eq!(world.completions(id).await, 1);
}

#[tokio::test]
async fn redelivered_jobs_write_nothing_twice_and_parts_finishing_together_complete_the_request_once() {
    let world = world(PART_BYTES).await;
    let job = world.verified().await;
    let id = job.request_id;
    let queued = world.split(&job).await;
    assert_eq!(queued.len(), 4);

    // Every part's job at once, then each delivered again, all at once: parts finishing together
    // see every part there; one completion wins, the others find the request completed. (A
    // part's deliveries never overlap: its group has one message in flight at a time.)
    let part = |n: usize| world.deliver(std::slice::from_ref(&queued[n]));
    tokio::join!(part(0), part(1), part(2), part(3));
    tokio::join!(part(3), part(2), part(1), part(0));
    let done = world.worker.exporter.store.get(id).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(world.completions(id).await, 1, "completed once");
    let versions = world.versions(&format!("exports/{id}/")).await;
    assert_eq!(versions.len(), 5, "the plan and four parts: {versions:?}");

    // Delivered once more, after the completion, and the plan's job too (the queue's
    // deduplication would drop its part jobs for five minutes; afterwards they come again).
    world.deliver(&queued).await;
    assert!(world.split(&job).await.is_empty(), "the same part jobs are the same messages");
    assert_eq!(world.versions(&format!("exports/{id}/")).await, versions, "no object written twice");
    assert!(versions.values().all(|n| *n == 1), "{versions:?}");
    assert_eq!(world.completions(id).await, 1);
}

#[tokio::test]
async fn an_export_within_the_part_size_is_one_export_zip_as_before() {
    let world = world(1 << 20).await;
    let job = world.verified().await;
    assert!(world.split(&job).await.is_empty(), "no part jobs");
    let done = world.worker.exporter.store.get(job.request_id).await.unwrap().unwrap();
    assert_eq!((done.status, done.export_parts), (Status::Completed, None));
    let keys: Vec<String> =
        world.versions(&format!("exports/{}/", job.request_id)).await.into_keys().collect();
    assert_eq!(keys, [format!("exports/{}/export.zip", job.request_id)], "no plan, no parts");
    let inside = entries(world.object(&keys[0]).await);
    assert!(inside.contains_key("data.json") && inside.contains_key("index.html"));
    assert_eq!(inside.keys().filter(|n| n.starts_with("files/")).count(), RECORDINGS.len());
}

/// The documented answers of `GET /requests/{id}/download` (api/openapi.yaml).
fn documented(status: u16, body: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/openapi.yaml");
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let operation = &doc["paths"]["/requests/{id}/download"]["get"];
    assert!(operation["responses"].get(status.to_string()).is_some(), "{status} is not documented");
    let parameters = operation["parameters"].as_array().unwrap();
    assert!(parameters.iter().any(|p| p["name"] == "part" && p["in"] == "query"), "`part` is documented");
    if status >= 400 {
        let codes =
            &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
        assert!(codes.as_array().unwrap().contains(&body["error"]["code"]), "{body}");
    }
}

#[tokio::test]
async fn the_completion_mail_links_every_part_each_link_downloads_its_part_and_the_erasure_takes_them_all() {
    let world = world(PART_BYTES).await;
    let job = world.verified().await;
    let id = job.request_id;
    let mut stream =
        devstack::stream::StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    stream.poll().await.unwrap();
    let queued = world.split(&job).await;
    world.deliver(&queued).await;

    // Dispatch, given the completion: the notice to the requester.
    let completed: Vec<Value> = stream
        .poll()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r["dynamodb"]["NewImage"]["status"]["S"] == "completed")
        .collect();
    assert_eq!(completed.len(), 1);
    let dispatcher = dispatcher(&world.stack, "unused", &unique_address("staff")).await;
    let event: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(json!({ "Records": completed })).unwrap();
    let invocation = lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default());
    let response = dispatch::handle(&dispatcher, invocation).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mail = world.stack.mail_to(&world.address).await.pop().expect("the completion mail");
    let links: Vec<String> = mail.links().into_iter().filter(|l| l.contains("/download?token=")).collect();
    assert_eq!(links.len(), 4, "a link per part: {links:?}");
    for (n, link) in links.iter().enumerate() {
        assert!(link.ends_with(&format!("&part={}", n + 1)), "{link}");
    }
    for n in 1..=4 {
        assert!(mail.body.contains(&format!("Deel {n} van 4")), "{}", mail.body);
    }

    let as_download = world.stack.signing_as(&world.roles, "download");
    let downloads = download::Downloads {
        store: as_download.deps().store,
        s3: devstack::provision::s3_client(&as_download.sdk),
        bucket: world.bucket.clone(),
        clock: world.stack.clock.clone(),
        status: download::StatusPages::from_config(&world.stack.config()),
    };
    for (n, link) in links.iter().enumerate() {
        world.stack.clock.advance(chrono::Duration::seconds(1));
        let response = download::handle(&downloads, get(link)).await.unwrap();
        assert_eq!(response.status(), 302, "{:?}", response.body());
        documented(302, &Value::Null);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains(&format!("part-{:02}-of-04.zip", n + 1)), "named as its part: {location}");
        let bytes = reqwest::get(&location).await.unwrap().bytes().await.unwrap().to_vec();
        assert_eq!(bytes, world.object(&part_key(id, n as u32 + 1)).await, "link {} serves its part", n + 1);
    }
    let first = links[0].trim_end_matches("&part=1").to_owned();
    world.stack.clock.advance(chrono::Duration::seconds(1));
    let response = download::handle(&downloads, get(&first)).await.unwrap();
    assert_eq!(response.status(), 302, "no part number: part 1");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("part-01-of-04.zip"), "{location}");
    for (part, status, code) in
        [("5", 404, "not_found"), ("0", 422, "invalid_field"), ("x", 422, "invalid_field")]
    {
        let response = download::handle(&downloads, get(&format!("{first}&part={part}"))).await.unwrap();
        let body = json_of(&response);
        assert_eq!(
            (response.status().as_u16(), body["error"]["code"].as_str()),
            (status, Some(code)),
            "{part}"
        );
        documented(status, &body);
    }
    // The number of parts is told only to a valid link.
    let wrong = format!("{}&part=5", first.replace("token=", "token=A"));
    let refused = download::handle(&downloads, get(&wrong)).await.unwrap();
    assert_eq!(refused.status(), 403);
    let trail = world.stack.deps().store.audit_trail(id).await.unwrap();
    let downloaded: Vec<Option<&str>> =
        trail.iter().filter(|e| e.event == Event::Downloaded).map(|e| e.reason.as_deref()).collect();
    let parts = ["part 1 of 4", "part 2 of 4", "part 3 of 4", "part 4 of 4", "part 1 of 4"];
    assert_eq!(downloaded, parts.map(Some), "each download audited, with its part");

    // The person's erasure deletes every part and the plan, every version.
    world.stack.clock.advance(chrono::Duration::minutes(1));
    let deletion = verified_request(&world.stack, &world.address, "deletion", "NL").await;
    let eraser = erasure::Eraser {
        store: world.stack.deps().store,
        data: AwsPersonalData::new(world.stack.dynamo.clone(), world.s3.clone()),
        map: world.map.clone(),
        s3: world.s3.clone(),
        export_bucket: world.bucket.clone(),
        clock: world.stack.clock.clone(),
        outside: crate::support::no_outside(&world.stack.sdk),
        tombstones: None,
        continuation: None,
    };
    let erase = ErasureJob { request_id: deletion, version: 2, change: DataChange::Erase };
    erasure::run(&eraser, &erase).await.unwrap();
    assert!(world.versions(&format!("exports/{id}/")).await.is_empty(), "nothing of the export is left");
    let receipt = world.stack.deps().store.get(deletion).await.unwrap().unwrap().receipt.unwrap();
    assert_eq!(receipt.exports_deleted, 1, "one export, in four parts");
}

#[tokio::test]
async fn an_erasure_of_the_person_before_the_parts_are_written_wins_over_every_part() {
    let world = world(PART_BYTES).await;
    let job = world.verified().await;
    let id = job.request_id;
    let queued = world.split(&job).await;
    world.deliver(&queued[..1]).await;

    world.stack.clock.advance(chrono::Duration::minutes(1));
    let deletion = verified_request(&world.stack, &world.address, "deletion", "NL").await;
    let eraser = erasure::Eraser {
        store: world.stack.deps().store,
        data: AwsPersonalData::new(world.stack.dynamo.clone(), world.s3.clone()),
        map: world.map.clone(),
        s3: world.s3.clone(),
        export_bucket: world.bucket.clone(),
        clock: world.stack.clock.clone(),
        outside: crate::support::no_outside(&world.stack.sdk),
        tombstones: None,
        continuation: None,
    };
    let erase = ErasureJob { request_id: deletion, version: 2, change: DataChange::Erase };
    erasure::run(&eraser, &erase).await.unwrap();

    // The store refuses the completion of an export in parts over the erasure, as of one export.
    let store = world.stack.deps().store;
    let in_progress = store.get(id).await.unwrap().unwrap();
    assert_eq!(in_progress.status, Status::InProgress);
    let complete = privacy_shared::store::Change::system(
        privacy_shared::domain::Transition::Complete(privacy_shared::domain::Completion::ExportedInParts {
            parts: 4,
            found: 1,
        }),
        world.stack.clock.now(),
    );
    let refused = privacy_shared::store::Requests::transition(&store, &in_progress, complete).await;
    assert!(matches!(refused, Err(privacy_shared::store::StoreError::Conflict)), "{refused:?}");

    world.deliver(&queued[1..]).await;
    let closed = store.get(id).await.unwrap().unwrap();
    assert_eq!(closed.status, Status::Denied, "withdrawn, never completed");
    assert_eq!(world.completions(id).await, 0);
    assert!(world.versions(&format!("exports/{id}/")).await.is_empty(), "no part and no plan is left");
}
