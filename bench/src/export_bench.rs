//! Phases of the export benchmark, each run as its own process so its peak RSS is its own:
//! - `seed MIB`: the data map's sources (prefix `DATA_NAME_PREFIX`) with one person holding about
//!   MIB of recordings, and that person's verified access request; prints the request id.
//! - `export ID`: runs the real export of that request; prints seconds and bytes written.
//! - `export-parts ID CONCURRENCY`: the real export of that request as the function runs it with
//!   its export queue (`EXPORT_QUEUE_URL`) and part size (`EXPORT_PART_BYTES`): the job dispatch
//!   sends plans the parts and queues a job per part, and those jobs run CONCURRENCY at a time in
//!   this process, as Lambda would run them side by side; prints seconds, parts and bytes written.
//! - `bare MIB`: a plain multipart upload of the same number of bytes, 8 MiB parts; prints seconds.
//! - `seed-records N`: gives the same person N records across the sources (BatchWriteItem), and a
//!   new verified access request; prints the request id and the seconds seeding took.
//! - `erase TIMEOUT`: a verified deletion request of that person, erased by the real handler the
//!   way Lambda runs it: each message of `ERASURE_QUEUE_URL` delivered to one invocation with
//!   TIMEOUT seconds to run, the continuations it sends delivered in turn, until the request is
//!   completed; prints seconds, invocations and the records the receipt counts.

use anyhow::{Context, Result, bail};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::sync::Arc;
use std::time::Instant;

use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::{
    Actor, EmailAddress, Language, Region, RequestId, RequestKind, RequestRecord, Status, Transition,
    VerificationToken,
};
use privacy_shared::jobs::{DataChange, ErasureJob, ExportPart, JobQueue, SqsJobQueue};
use privacy_shared::store::{Change, DynamoStore, LiveToken, Requests};

const RECORDING_MIB: usize = 64;
const ADDRESS: &str = "big.exporter@example.com";
const USER_ID: &str = "u-big";

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

async fn sdk() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

fn recording(index: usize) -> Vec<u8> {
    // Incompressible-looking bytes, as video is.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ index as u64;
    (0..RECORDING_MIB * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn seed(mib: usize) -> Result<()> {
    let sdk = sdk().await;
    let map = DataMap::builtin()?
        .aws_only()
        .with_name_prefix(&std::env::var("DATA_NAME_PREFIX").unwrap_or_default());
    devstack::seed::create_sources(&sdk, &map).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = devstack::provision::s3_client(&sdk);
    for source in map.sources() {
        match &source.location {
            Location::Table { table, .. } if source.id == "accounts" => {
                let item = serde_json::json!({"email": ADDRESS, "user_id": USER_ID, "name": "Big Exporter"});
                dynamo
                    .put_item()
                    .table_name(table)
                    .set_item(Some(serde_dynamo::to_item(item)?))
                    .send()
                    .await?;
            }
            Location::Objects { bucket, .. } => {
                for index in 0..mib.div_ceil(RECORDING_MIB) {
                    s3.put_object()
                        .bucket(bucket)
                        .key(format!("recordings/{USER_ID}/meeting-{index:03}.mp4"))
                        .body(recording(index).into())
                        .send()
                        .await?;
                }
            }
            _ => {}
        }
    }
    let record = verified_request(&DynamoStore::new(dynamo, env("TABLE_NAME")?), RequestKind::Access).await?;
    println!("{}", record.id);
    Ok(())
}

/// A verified request of the bench's person.
async fn verified_request(store: &DynamoStore, kind: RequestKind) -> Result<RequestRecord> {
    let now = chrono::Utc::now();
    let email = EmailAddress::parse(ADDRESS)?;
    let token = VerificationToken::generate();
    let day = now.date_naive();
    let deadlines = privacy_shared::domain::Deadlines { received_on: day, due_on: day, acknowledge_by: None };
    let region = Region::parse("NL")?;
    let record =
        RequestRecord::received(RequestId::generate(), kind, region, Language::En, email, now, deadlines);
    store
        .create(
            &record,
            &LiveToken { token_hash: token.hash(), expires_at: now + chrono::Duration::hours(1) },
        )
        .await?;
    let change = Change::new(Transition::Verify { token: token.hash() }, now, Actor::Requester);
    Ok(store.transition(&record, change).await?)
}

/// The person's `index`th record in `source`, about as large as a real one (a few hundred bytes).
fn record(source: &str, index: usize) -> Option<serde_json::Value> {
    let at =
        format!("2026-{:02}-{:02}T{:02}:{:02}:00Z", 1 + index % 11, 1 + index % 28, index % 24, index % 60);
    Some(match source {
        "chat_transcripts" => serde_json::json!({
            "message_id": format!("m-big-{index:07}"), "user_id": USER_ID, "recipients": ["u-colleague", "u-other"],
            "sent_at": at, "read_by": ["u-colleague"],
            "content": format!("Message {index}: the slides for the review are in the shared folder; the numbers are on page four, the open questions at the end."),
        }),
        "call_detail_records" => serde_json::json!({
            "call_id": format!("c-big-{index:07}"), "user_id": USER_ID, "started_at": at,
            "duration_seconds": index % 3600, "participants": [USER_ID, "u-colleague", "u-other"],
            "actions": ["share_screen", "mute", "chat"], "quality": {"packet_loss_pct": 0.4, "jitter_ms": 12},
            "network": "wifi",
        }),
        "meeting_rooms" => serde_json::json!({
            "room_id": format!("r-big-{index:07}"), "user_id": USER_ID, "title": format!("Weekly review {index}"),
            "link": format!("https://meet.example/r/big-{index}"), "invitations": ["u-colleague"],
            "participants": [USER_ID, "u-colleague"], "features_used": ["chat"], "created_at": at,
        }),
        "devices" => serde_json::json!({
            "device_id": format!("d-big-{index:07}"), "user_id": USER_ID, "model": "Laptop", "os": "macOS 15.1",
            "app_version": "7.4.2", "connected_hardware": ["USB camera"], "last_seen_at": at,
        }),
        _ => return None,
    })
}

/// How the bench's records are spread over the sources, in percent.
const SPREAD: [(&str, usize); 4] =
    [("chat_transcripts", 50), ("call_detail_records", 40), ("meeting_rooms", 5), ("devices", 5)];

async fn seed_records(count: usize) -> Result<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let sdk = sdk().await;
    let map = DataMap::builtin()?
        .aws_only()
        .with_name_prefix(&std::env::var("DATA_NAME_PREFIX").unwrap_or_default());
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let started = Instant::now();
    let mut seeded = 0;
    for (i, (id, percent)) in SPREAD.iter().enumerate() {
        let Some(Location::Table { table, .. }) = map.source(id).map(|s| &s.location) else {
            bail!("the data map has no table source {id}")
        };
        // The last source takes what rounding left, so the total is exactly `count`.
        let n = if i + 1 == SPREAD.len() { count - seeded } else { count * percent / 100 };
        // A few batches in flight: the emulator serves one at a time, but the round trips overlap.
        let mut flight = tokio::task::JoinSet::new();
        for start in (0..n).step_by(25) {
            let writes = (start..(start + 25).min(n))
                .filter_map(|index| record(id, index))
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(serde_dynamo::to_item(item)?)).build()?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>>>()?;
            let (dynamo, table) = (dynamo.clone(), table.clone());
            flight.spawn(async move {
                let mut pending = writes;
                while !pending.is_empty() {
                    let out = dynamo.batch_write_item().request_items(&table, pending).send().await?;
                    pending = out.unprocessed_items.and_then(|mut u| u.remove(&table)).unwrap_or_default();
                }
                anyhow::Ok(())
            });
            if flight.len() >= 4 {
                flight.join_next().await.context("a batch")???;
            }
        }
        while let Some(done) = flight.join_next().await {
            done??;
        }
        seeded += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    let store = DynamoStore::new(dynamo, env("TABLE_NAME")?);
    let request = verified_request(&store, RequestKind::Access).await?;
    println!("{} {seconds:.3}", request.id);
    Ok(())
}

/// The person's erasure, invocation after invocation as Lambda would run it, each with `timeout`
/// seconds; prints seconds, invocations and the records the receipt counts.
async fn erase(timeout: u64) -> Result<()> {
    let mut eraser = erasure::Eraser::from_env().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    eraser.clock = Arc::new(privacy_shared::SystemClock);
    let queue_url = env("ERASURE_QUEUE_URL")?;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let request = verified_request(&eraser.store, RequestKind::Deletion).await?;
    let job = ErasureJob { request_id: request.id, version: request.version, change: DataChange::Erase };
    SqsJobQueue::new(sqs.clone(), "", &queue_url).enqueue(&job).await?;

    let started = Instant::now();
    let mut invocations = 0;
    loop {
        let received = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(1).send().await?;
        let Some(message) = received.messages().first() else { break };
        let records = serde_json::json!([{"messageId": message.message_id(), "body": message.body()}]);
        let event: erasure::SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records }))?;
        let mut context = lambda_runtime::Context::default();
        let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(timeout);
        context.deadline = deadline.duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
        let response = erasure::handle(&eraser, lambda_runtime::LambdaEvent::new(event, context)).await?;
        invocations += 1;
        if !response.batch_item_failures.is_empty() {
            bail!("invocation {invocations} failed; see the log");
        }
        let receipt = message.receipt_handle().context("a receipt handle")?;
        sqs.delete_message().queue_url(&queue_url).receipt_handle(receipt).send().await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = eraser.store.get(request.id).await?.context("the request")?;
    if done.status != Status::Completed {
        bail!("the erasure did not complete: {}", done.status);
    }
    let receipt = done.receipt.context("a receipt")?;
    let records: u64 = receipt.sources.iter().map(|s| u64::from(s.deleted + s.anonymised)).sum();
    println!("{seconds:.3} {invocations} {records}");
    Ok(())
}

async fn run_export(id: &str) -> Result<()> {
    let mut exporter = export::Exporter::from_env().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    exporter.clock = Arc::new(privacy_shared::SystemClock);
    let job = privacy_shared::jobs::ExportJob {
        request_id: RequestId::parse(id).map_err(|_| anyhow::anyhow!("bad id"))?,
        version: 2,
    };
    let started = Instant::now();
    export::export(&exporter, &job).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let head = exporter
        .s3
        .head_object()
        .bucket(&exporter.target.bucket)
        .key(format!("exports/{id}/export.zip"))
        .send()
        .await?;
    println!("{seconds:.3} {}", head.content_length().unwrap_or_default());
    Ok(())
}

/// The export of request `id` split into parts, as in the module docs.
async fn export_parts(id: &str, concurrency: usize) -> Result<()> {
    let mut worker = export::Worker::from_env().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    worker.exporter.clock = Arc::new(privacy_shared::SystemClock);
    let worker = Arc::new(worker);
    let split = worker.split.as_ref().context("EXPORT_QUEUE_URL is not set: nothing would split")?;
    let request_id = RequestId::parse(id).map_err(|_| anyhow::anyhow!("bad id"))?;
    let job = privacy_shared::jobs::ExportJob { request_id, version: 2 };
    let started = Instant::now();
    let plan = ExportPart { job, part: None, wake: None };
    export::run(&worker.exporter, Some(split), &plan).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let planned = started.elapsed().as_secs_f64();

    // The parts' jobs the plan queued, taken off the queue and run `concurrency` at a time.
    let queue_url = env("EXPORT_QUEUE_URL")?;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let mut parts = Vec::new();
    loop {
        let received = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await?;
        if received.messages().is_empty() {
            break;
        }
        for message in received.messages() {
            parts.push(serde_json::from_str::<ExportPart>(message.body().context("a body")?)?);
            let receipt = message.receipt_handle().context("a receipt handle")?;
            sqs.delete_message().queue_url(&queue_url).receipt_handle(receipt).send().await?;
        }
    }
    if parts.is_empty() {
        bail!("the export was not split: is EXPORT_PART_BYTES below the recordings' size?");
    }
    let count = parts.len() as u32;
    let mut running = tokio::task::JoinSet::new();
    for part in parts {
        if running.len() >= concurrency {
            running.join_next().await.context("a part")???;
        }
        let worker = worker.clone();
        running.spawn(async move {
            export::run(&worker.exporter, worker.split.as_ref(), &part)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = worker.exporter.store.get(request_id).await?.context("the request")?;
    if done.status != Status::Completed || done.export_parts != Some(count) {
        bail!("the export did not complete in {} parts: {} {:?}", count, done.status, done.export_parts);
    }
    let mut bytes = 0;
    for number in 1..=count {
        let part = privacy_shared::domain::PartOf::new(number, count).context("a part")?;
        let key = privacy_shared::domain::export_key(request_id, Some(part));
        let head =
            worker.exporter.s3.head_object().bucket(&worker.exporter.target.bucket).key(key).send().await?;
        bytes += head.content_length().unwrap_or_default();
    }
    println!("{seconds:.3} {count} {bytes} {planned:.3}");
    Ok(())
}

async fn bare(mib: usize) -> Result<()> {
    let sdk = sdk().await;
    let s3 = devstack::provision::s3_client(&sdk);
    let bucket = env("EXPORT_BUCKET")?;
    let key = "bench/bare-upload.bin";
    let started = Instant::now();
    let upload = s3.create_multipart_upload().bucket(&bucket).key(key).send().await?;
    let upload_id = upload.upload_id().context("upload id")?;
    let mut parts = Vec::new();
    let mut number = 1;
    for index in 0..mib.div_ceil(RECORDING_MIB) {
        // Generated as the export reads them: one recording in memory at a time.
        let bytes = recording(index);
        for chunk in bytes.chunks(export::PART_SIZE) {
            let part = s3
                .upload_part()
                .bucket(&bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(chunk.to_vec().into())
                .send()
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
            number += 1;
        }
    }
    s3.complete_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await?;
    println!("{:.3}", started.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("seed"), Some(mib)) => seed(mib.parse()?).await,
        (Some("export"), Some(id)) => run_export(id).await,
        (Some("export-parts"), Some(id)) => {
            export_parts(id, args.get(2).map(|n| n.parse()).transpose()?.unwrap_or(2)).await
        }
        (Some("bare"), Some(mib)) => bare(mib.parse()?).await,
        (Some("seed-records"), Some(count)) => seed_records(count.parse()?).await,
        (Some("erase"), Some(timeout)) => erase(timeout.parse()?).await,
        _ => bail!(
            "usage: export-bench seed MIB | export ID | export-parts ID CONCURRENCY | bare MIB | seed-records N | erase TIMEOUT"
        ),
    }
}
