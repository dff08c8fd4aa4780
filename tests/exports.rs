//! The export against the emulator: a verified access request of a seeded person ends with a ZIP
//! in the bucket holding exactly that person's data, the recordings and the disclosure, and the
//! request completed and audited.

use serde_json::Value;
use std::io::Read;
use std::sync::Arc;

use crate::support::*;
use devstack::seed::{self, SampleData};
use export::{ExportTarget, Exporter};
use privacy_shared::datamap::DataMap;
use privacy_shared::domain::{Event, RequestId, Status};
use privacy_shared::jobs::ExportJob;
use privacy_shared::sources::AwsPersonalData;
use privacy_shared::store::DynamoStore;

struct World {
    stack: Stack,
    exporter: Exporter<DynamoStore, AwsPersonalData>,
    s3: aws_sdk_s3::Client,
    prefix: String,
}

async fn world() -> World {
    let stack = Stack::new().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let map = DataMap::builtin().unwrap().with_name_prefix(&prefix);
    seed::create_sources(&stack.sdk, &map).await.unwrap();
    seed::seed(&stack.sdk, &map, &SampleData::load(&seed::default_path()).unwrap()).await.unwrap();
    let bucket = format!("{prefix}exports");
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let exporter = Exporter {
        store: stack.deps().store,
        data: AwsPersonalData::new(stack.dynamo.clone(), s3.clone()),
        map,
        s3: s3.clone(),
        target: ExportTarget { bucket, kms_key_id: None },
        clock: stack.clock.clone() as Arc<dyn privacy_shared::Clock>,
    };
    World { stack, exporter, s3, prefix }
}

async fn verified(world: &World, address: &str, kind: &str, region: &str) -> ExportJob {
    submit(
        &world.stack.deps(),
        &serde_json::json!({"email": address, "kind": kind, "region": region}).to_string(),
    )
    .await;
    let (id, token) = link_parts(&world.stack.mail_to(address).await.pop().unwrap());
    assert_eq!(verify_with(&world.stack.verifier(), &id, &token).await.0, 200);
    ExportJob { request_id: RequestId::parse(&id).unwrap(), version: 2 }
}

fn open_zip(bytes: Vec<u8>) -> zip::ZipArchive<std::io::Cursor<Vec<u8>>> {
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the export is a valid ZIP")
}

fn entry(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    archive.by_name(name).unwrap_or_else(|_| panic!("{name} in the archive")).read_to_end(&mut out).unwrap();
    out
}

async fn download(world: &World, id: RequestId) -> Vec<u8> {
    let key = format!("exports/{id}/export.zip");
    let object = world.s3.get_object().bucket(&world.exporter.target.bucket).key(key).send().await.unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn an_access_export_holds_exactly_the_persons_data_recordings_and_disclosure() {
    let world = world().await;
    // Alice's addresses are fixed by the sample data; a fresh table keeps this test's requests apart.
    let job = verified(&world, "alice@example.com", "access", "NL").await;
    export::export(&world.exporter, &job).await.unwrap();

    let mut archive = open_zip(download(&world, job.request_id).await);
    let data: Value = serde_json::from_slice(&entry(&mut archive, "data.json")).unwrap();
    let sample = SampleData::load(&seed::default_path()).unwrap();
    let alices = |source: &str, attribute: &str, key: &str| -> Vec<Value> {
        sample.items[source].iter().filter(|i| i[attribute] == key).cloned().collect()
    };
    let mut cdrs = data["sources"]["call_detail_records"]["records"].as_array().unwrap().clone();
    cdrs.sort_by_key(|r| r["call_id"].as_str().unwrap().to_owned());
    assert_eq!(cdrs, alices("call_detail_records", "user_id", "u-alice"), "GDPR: every record, any age");
    assert_eq!(
        data["sources"]["accounts"]["records"].as_array().unwrap(),
        &alices("accounts", "email", "alice@example.com")
    );
    assert_eq!(data["sources"]["marketing"]["records"].as_array().unwrap().len(), 1);
    // Every record is Alice's own (it may name others, as a call's participants do).
    for (source, content) in data["sources"].as_object().unwrap() {
        for record in content["records"].as_array().into_iter().flatten() {
            let owner = record.get("user_id").or_else(|| record.get("email")).and_then(Value::as_str);
            assert!(matches!(owner, Some("u-alice" | "alice@example.com")), "{source}: {record}");
        }
    }
    let everything = data.to_string();
    for other in ["bob@example.com", "Thanks Alice", "someone.else", "not-alices", "homework"] {
        assert!(!everything.contains(other), "{other:?} leaked into Alice's export");
    }
    let files = data["sources"]["recordings"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for file in files {
        let path = file["path"].as_str().unwrap();
        let bytes = entry(&mut archive, path);
        assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap(), "{path} is the whole recording");
    }
    assert!(
        data["disclosure"]["categories"].as_array().unwrap().contains(&Value::from("call_detail_records"))
    );
    assert!(data["disclosure"]["purposes"].as_array().unwrap().len() >= 2);
    assert!(data["disclosure"].get("ccpa").is_none(), "GDPR request");
    let index = String::from_utf8(entry(&mut archive, "index.html")).unwrap();
    assert!(index.contains("<html lang=\"nl\">") && index.contains("Uw persoonsgegevens"));
    assert!(index.contains("Design review"), "records are readable in the page");

    let store = &world.exporter.store;
    let request = store.get(job.request_id).await.unwrap().unwrap();
    assert_eq!(request.status, Status::Completed);
    let events: Vec<Event> =
        store.audit_trail(job.request_id).await.unwrap().iter().map(|e| e.event).collect();
    assert_eq!(events, vec![Event::Submitted, Event::Verified, Event::WorkStarted, Event::Completed]);
}

#[tokio::test]
async fn a_ccpa_export_covers_the_12_months_before_the_request_with_both_lists() {
    let world = world().await;
    let job = verified(&world, "bob@example.com", "portability", "US-CA").await;
    export::export(&world.exporter, &job).await.unwrap();
    let mut archive = open_zip(download(&world, job.request_id).await);
    let data: Value = serde_json::from_slice(&entry(&mut archive, "data.json")).unwrap();
    let calls: Vec<&str> = data["sources"]["call_detail_records"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(calls, vec!["c-2001"], "the August 2025 call is older than 12 months before 28 Nov 2026");
    assert!(data["sources"]["marketing"]["records"].as_array().unwrap().is_empty(), "subscribed in 2024");
    assert!(data["request"]["period"]["from"].as_str().unwrap().starts_with("2025-11-28"));
    let ccpa = &data["disclosure"]["ccpa"];
    assert!(ccpa["sold_or_shared"].is_object() && ccpa["business_purpose"].is_object(), "{ccpa}");
}

#[tokio::test]
async fn a_source_failing_once_leaves_the_request_in_progress_and_the_retry_completes_it() {
    let mut world = world().await;
    let job = verified(&world, "alice@example.com", "access", "NL").await;
    // One source points at a table that does not exist yet.
    let healthy = world.exporter.map.clone();
    world.exporter.map = DataMap::builtin().unwrap().with_name_prefix(&format!("{}missing-", world.prefix));
    assert!(export::export(&world.exporter, &job).await.is_err());
    let store = &world.exporter.store;
    assert_eq!(
        store.get(job.request_id).await.unwrap().unwrap().status,
        Status::InProgress,
        "never completed without its object"
    );
    let missing = world
        .s3
        .head_object()
        .bucket(&world.exporter.target.bucket)
        .key(format!("exports/{}/export.zip", job.request_id))
        .send()
        .await;
    assert!(missing.is_err(), "no object was written");

    world.exporter.map = healthy;
    export::export(&world.exporter, &job).await.unwrap();
    assert_eq!(store.get(job.request_id).await.unwrap().unwrap().status, Status::Completed);
    assert!(!download(&world, job.request_id).await.is_empty());
    // A duplicate delivery of the same job changes nothing.
    export::export(&world.exporter, &job).await.unwrap();
    let events = store.audit_trail(job.request_id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event == Event::Completed).count(), 1);
}

/// The completion notice's download link, as dispatch sends it after the export completed.
async fn download_link(world: &World, address: &str) -> String {
    let mut stream =
        devstack::stream::StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    let records = stream.poll().await.unwrap();
    let dispatcher = dispatcher(&world.stack, "unused", &unique_address("staff")).await;
    let completed: Vec<Value> =
        records.into_iter().filter(|r| r["dynamodb"]["NewImage"]["status"]["S"] == "completed").collect();
    let event: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(serde_json::json!({ "Records": completed })).unwrap();
    dispatch::handle(
        &dispatcher,
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .unwrap();
    let mail = world.stack.mail_to(address).await.pop().unwrap();
    mail.links().into_iter().find(|l| l.contains("/download?token=")).expect("a download link")
}

fn get(url: &str) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let path_and_query = url.trim_start_matches(PUBLIC_BASE_URL);
    http("GET", path_and_query, None, lambda_http::Body::Empty).with_query_string_parameters(
        url.split_once('?')
            .map(|(_, q)| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<std::collections::HashMap<_, _>>()
            })
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_emailed_download_link_redirects_to_the_zip_and_each_download_is_audited() {
    let world = world().await;
    let job = verified(&world, "carol@example.org", "access", "NL").await;
    export::export(&world.exporter, &job).await.unwrap();
    let link = download_link(&world, "carol@example.org").await;
    let downloads = download::Downloads {
        store: world.stack.deps().store,
        s3: world.s3.clone(),
        bucket: world.exporter.target.bucket.clone(),
        clock: world.stack.clock.clone(),
    };

    let response = download::handle(&downloads, get(&link)).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("X-Amz-Expires=900"), "valid 15 minutes: {location}");
    let bytes = reqwest::get(&location).await.unwrap().bytes().await.unwrap().to_vec();
    assert_eq!(bytes, download(&world, job.request_id).await, "the URL serves the export");
    open_zip(bytes);
    let trail = world.exporter.store.audit_trail(job.request_id).await.unwrap();
    assert_eq!(trail.last().map(|e| e.event), Some(Event::Downloaded));

    let wrong = link.replace("token=", "token=A").chars().take(link.len()).collect::<String>();
    let refused = download::handle(&downloads, get(&wrong)).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(json_of(&refused)["error"]["code"], "download_refused");

    // The bucket's lifecycle removed the export: a JSON 410, not S3's XML.
    let key = format!("exports/{}/export.zip", job.request_id);
    let versions =
        world.s3.list_object_versions().bucket(&downloads.bucket).prefix(&key).send().await.unwrap();
    for v in versions.versions() {
        world
            .s3
            .delete_object()
            .bucket(&downloads.bucket)
            .key(&key)
            .set_version_id(v.version_id().map(str::to_owned))
            .send()
            .await
            .unwrap();
    }
    world.s3.delete_object().bucket(&downloads.bucket).key(&key).send().await.unwrap();
    let gone = download::handle(&downloads, get(&link)).await.unwrap();
    assert_eq!(gone.status(), 410);
    assert_eq!(json_of(&gone)["error"]["code"], "export_expired");
}
