//! Phases of the export benchmark, each run as its own process so its peak RSS is its own:
//! - `seed MIB`: the data map's sources (prefix `DATA_NAME_PREFIX`) with one person holding about
//!   MIB of recordings, and that person's verified access request; prints the request id.
//! - `export ID`: runs the real export of that request; prints seconds and bytes written.
//! - `bare MIB`: a plain multipart upload of the same number of bytes, 8 MiB parts; prints seconds.

use anyhow::{Context, Result, bail};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::sync::Arc;
use std::time::Instant;

use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::{
    Actor, EmailAddress, Language, Region, RequestId, RequestKind, RequestRecord, Transition,
    VerificationToken,
};
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
    let map = DataMap::builtin()?.with_name_prefix(&std::env::var("DATA_NAME_PREFIX").unwrap_or_default());
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
    let store = DynamoStore::new(dynamo, env("TABLE_NAME")?);
    let now = chrono::Utc::now();
    let email = EmailAddress::parse(ADDRESS)?;
    let token = VerificationToken::generate();
    let day = now.date_naive();
    let deadlines = privacy_shared::domain::Deadlines { received_on: day, due_on: day, acknowledge_by: None };
    let region = Region::parse("NL")?;
    let record = RequestRecord::received(
        RequestId::generate(),
        RequestKind::Access,
        region,
        Language::En,
        email,
        now,
        deadlines,
    );
    store
        .create(
            &record,
            &LiveToken { token_hash: token.hash(), expires_at: now + chrono::Duration::hours(1) },
        )
        .await?;
    let change = Change::new(Transition::Verify { token: token.hash() }, now, Actor::Requester);
    store.transition(&record, change).await?;
    println!("{}", record.id);
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
        (Some("bare"), Some(mib)) => bare(mib.parse()?).await,
        _ => bail!("usage: export-bench seed MIB | export ID | bare MIB"),
    }
}
