//! The export against the emulator: a verified access request of a seeded person ends with a ZIP
//! in the bucket holding exactly that person's data, the recordings and the disclosure, and the
//! request completed and audited.

use serde_json::Value;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::*;
use devstack::seed::{self, SampleData};
use export::{ExportTarget, Exporter};
use privacy_shared::Clock as _;
use privacy_shared::datamap::{DataMap, Source};
use privacy_shared::domain::{
    Actor, BusinessCalendar, EmailAddress, Event, Language, Region, RequestId, RequestKind, RequestRecord,
    Status, TokenHash, Transition,
};
use privacy_shared::jobs::{DataChange, ErasureJob, ExportJob};
use privacy_shared::sources::{
    AwsPersonalData, Cursor, Page, PersonalData, SourceError, StoredObject, Written,
};
use privacy_shared::store::{Change, DynamoStore, LiveToken, Requests, Secrets};

pub(crate) struct World {
    stack: Stack,
    pub(crate) exporter: Exporter<DynamoStore, AwsPersonalData>,
    s3: aws_sdk_s3::Client,
    prefix: String,
}

pub(crate) async fn world() -> World {
    let stack = Stack::new().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let map = DataMap::builtin().unwrap().aws_only().with_name_prefix(&prefix);
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
        outside: crate::support::no_outside(&stack.sdk),
        calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
    };
    World { stack, exporter, s3, prefix }
}

pub(crate) async fn verified(world: &World, address: &str, kind: &str, region: &str) -> ExportJob {
    let (_, body) = submit(
        &world.stack.deps(),
        &serde_json::json!({"email": address, "kind": kind, "region": region}).to_string(),
    )
    .await;
    // The sample people's addresses are shared by tests running side by side: this request's link.
    let submitted = body["request_id"].as_str().unwrap().to_owned();
    let mails = world.stack.mail_to(address).await;
    let (id, token) =
        mails.iter().filter(|m| asks_to_verify(m)).map(link_parts).find(|(id, _)| *id == submitted).unwrap();
    assert_eq!(verify_with(&world.stack.verifier(), &id, &token).await.0, 200);
    ExportJob { request_id: RequestId::parse(&id).unwrap(), version: 2 }
}

/// Whether a mail carries a verification link (the sample people get other mails too, from the
/// tests running beside these).
fn asks_to_verify(mail: &devstack::mailbox::SentMail) -> bool {
    mail.links().iter().any(|l| l.contains("/verify") && l.contains('#'))
}

fn open_zip(bytes: Vec<u8>) -> zip::ZipArchive<std::io::Cursor<Vec<u8>>> {
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the export is a valid ZIP")
}

fn entry(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    archive.by_name(name).unwrap_or_else(|_| panic!("{name} in the archive")).read_to_end(&mut out).unwrap();
    out
}

pub(crate) async fn download(world: &World, id: RequestId) -> Vec<u8> {
    let key = format!("exports/{id}/export.zip");
    let object = world.s3.get_object().bucket(&world.exporter.target.bucket).key(key).send().await.unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The text a reader sees: the tags taken out, and what `<code>` holds (file names).
pub(crate) fn visible_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        text.push(' ');
        let tag_end = rest[start..].find('>').map_or(rest.len(), |e| start + e + 1);
        let tag = &rest[start..tag_end];
        rest = &rest[tag_end..];
        if tag.starts_with("<code") || tag.starts_with("<style") {
            let close = if tag.starts_with("<code") { "</code>" } else { "</style>" };
            rest = rest.find(close).map_or("", |e| &rest[e + close.len()..]);
        }
    }
    text.push_str(rest);
    text.replace("&amp;", "&").replace("&#39;", "'").replace("&quot;", "\"")
}

/// English words a Dutch page must not hold (outside the person's own data; not "of", "is" or
/// "we", which Dutch has too).
const ENGLISH: &[&str] = &[
    " the ",
    " and ",
    " your ",
    " you ",
    " our ",
    " from ",
    "record",
    "Retention",
    "Categories",
    "Recipients",
    "participant",
    "Shown",
    "Page ",
    " hour",
    " minutes",
    " seconds",
    " Yes",
    " No ",
    "none",
    "not given",
    "Service provider",
    "Purposes",
    "Where ",
    "What ",
    "Who ",
];

/// The page as a reader meets it: no attribute name or code (nothing with an underscore), no
/// ISO 8601 timestamp, no JSON; in Dutch, no English word outside the person's own data.
pub(crate) fn readable_in(html: &str, language: Language) {
    let text = visible_text(html);
    for word in text.split_whitespace() {
        assert!(!word.contains('_'), "a code or raw attribute name is shown: {word:?}");
        assert!(!word.contains("{\"") && !word.contains("[\""), "raw JSON is shown: {word:?}");
        let bytes = word.as_bytes();
        let iso = bytes
            .windows(11)
            .any(|w| w[..4].iter().all(u8::is_ascii_digit) && w[4] == b'-' && w[7] == b'-' && w[10] == b'T');
        assert!(!iso, "an ISO timestamp is shown: {word:?}");
    }
    if language == Language::Nl {
        // The person's own data may be in any language: it is taken out first.
        let mut theirs: Vec<String> = Vec::new();
        fn strings(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
                Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
                _ => {}
            }
        }
        let sample: Value =
            serde_json::from_str(&std::fs::read_to_string(seed::default_path()).unwrap()).unwrap();
        strings(&sample["items"], &mut theirs);
        strings(&sample["webhook_sources"], &mut theirs);
        theirs.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut left = format!(" {} ", text.split_whitespace().collect::<Vec<_>>().join(" "));
        // Short values ("on", "nl") would cut Dutch words apart; they hold no English words.
        for data in theirs.iter().filter(|d| d.len() >= 5) {
            left = left.replace(data.as_str(), " ");
        }
        for english in ENGLISH {
            assert!(!left.contains(english), "English in the Dutch page: {english:?} in …{}…", {
                let at = left.find(english).unwrap();
                &left[at.saturating_sub(60)..(at + 60).min(left.len())]
            });
        }
    }
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
    let expected = alices("call_detail_records", "user_id", "u-alice");
    assert_eq!(cdrs.len(), expected.len(), "GDPR: every record, any age");
    let without_participants = |record: &Value| {
        let mut record = record.clone();
        record.as_object_mut().unwrap().remove("participants");
        record
    };
    for (got, want) in cdrs.iter().zip(&expected) {
        assert_eq!(without_participants(got), without_participants(want), "every other field as it is");
        for (shown, held) in
            got["participants"].as_array().unwrap().iter().zip(want["participants"].as_array().unwrap())
        {
            match held.as_str() {
                Some("u-alice") => assert_eq!(shown, held, "her own id stays"),
                _ => assert!(shown.as_str().unwrap().starts_with("participant-"), "{shown} replaces {held}"),
            }
        }
    }
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
    // Other people are one pseudonym each, the same wherever they turn up (Art. 15(4)).
    let sources = &data["sources"];
    let record = |source: &str, key: &str, id: &str| -> Value {
        sources[source]["records"].as_array().unwrap().iter().find(|r| r[key] == id).unwrap().clone()
    };
    let bob = record("call_detail_records", "call_id", "c-1001")["participants"][1].clone();
    assert_eq!(record("chat_transcripts", "message_id", "m-1")["recipients"][0], bob);
    assert_eq!(record("chat_transcripts", "message_id", "m-1")["read_by"][0], bob);
    assert_eq!(record("meeting_rooms", "room_id", "r-alice-1")["invitations"][0], bob);
    assert_eq!(
        record("meeting_rooms", "room_id", "r-alice-1")["participants"],
        serde_json::json!(["u-alice", bob])
    );
    let carol = record("call_detail_records", "call_id", "c-1002")["participants"][1].clone();
    assert_eq!(record("chat_transcripts", "message_id", "m-3")["recipients"][0], carol);
    assert_ne!(bob, carol);
    assert_eq!(
        record("chat_transcripts", "message_id", "m-1")["content"],
        "Here are the slides for today.",
        "her own words in full"
    );
    let others = &data["disclosure"]["others_pseudonymised"];
    assert!(others["basis"].as_str().unwrap().contains("15(4)"), "{others}");
    assert!(
        others["attributes"].as_array().unwrap().contains(&Value::from("call_detail_records.participants"))
    );
    let everything = data.to_string();
    for other in [
        "bob@example.com",
        "Thanks Alice",
        "someone.else",
        "not-alices",
        "homework",
        "u-bob",
        "u-carol",
        "carol@example.org",
    ] {
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
    let named = data["disclosure"]["recipients_named"].as_array().unwrap();
    assert!(named.iter().any(|r| r["name"] == "Nimbus Hosting B.V."), "{named:?}");

    let index = String::from_utf8(entry(&mut archive, "index.html")).unwrap();
    assert!(index.contains("<html lang=\"nl\">") && index.contains("Uw persoonsgegevens"));
    assert!(index.contains("Design review"), "records are readable in the page");
    // A layered answer: the summary first, in plain words, then the details, then the rest of
    // Art. 15 and the rights.
    let at = |text: &str| index.find(text).unwrap_or_else(|| panic!("{text:?} is on the page"));
    assert!(at("In het kort") < at("Gesprekken") && at("Gesprekken") < at("Wat wij met uw gegevens doen"));
    assert!(at("Wat wij met uw gegevens doen") < at("Uw rechten"));
    for said in [
        "Wij hebben 1", // "Wij hebben 1x vermeldingen en 2 bestanden gevonden"
        "2 bestanden gevonden die aan alice@example.com gekoppeld zijn",
        "artikel 15, vierde lid",
        "Begonnen op",
        "Deelnemers",
        "Kwaliteit van de verbinding",
        "Gratis account",
        "2 oktober 2026 om 11:00",
        "30 minuten en 20 seconden",
        "0,4%",
        "Mobiel netwerk (4G)",
        "Here are the slides for today.",
        "Nimbus Hosting B.V.</strong>: hosting en opslag",
        "Tot u zich afmeldt",
        "blijvend",
        "Autoriteit Persoonsgegevens",
        "modelcontractbepalingen",
        "geautomatiseerde verwerking",
        "te verbeteren",
        "te wissen",
        "beperking",
        "bezwaar",
        "Lifesize, Inc.",
    ] {
        assert!(index.contains(said), "the Dutch page says {said:?}");
    }
    let bob_number = bob.as_str().unwrap().trim_start_matches("participant-");
    assert!(index.contains(&format!("deelnemer {bob_number}")), "the page numbers Bob as data.json does");
    assert!(index.contains("u-alice (uzelf)"), "Alice among the participants is herself");
    readable_in(&index, Language::Nl);

    let store = &world.exporter.store;
    let request = store.get(job.request_id).await.unwrap().unwrap();
    assert_eq!(request.status, Status::Completed);
    let found = data["sources"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["records"].as_array().or(s["files"].as_array()).map_or(0, |r| r.len() as u64))
        .sum::<u64>();
    assert_eq!(request.export_found, Some(found), "the completion keeps how much was found");
    let events: Vec<Event> =
        store.audit_trail(job.request_id).await.unwrap().iter().map(|e| e.event).collect();
    assert_eq!(events, vec![Event::Submitted, Event::Verified, Event::WorkStarted, Event::Completed]);
}

#[tokio::test]
async fn a_ccpa_export_covers_what_was_collected_since_1_january_2022_with_both_lists() {
    let world = world().await;
    let job = verified(&world, "bob@example.com", "portability", "US-CA").await;
    export::export(&world.exporter, &job).await.unwrap();
    let mut archive = open_zip(download(&world, job.request_id).await);
    let data: Value = serde_json::from_slice(&entry(&mut archive, "data.json")).unwrap();
    let mut calls: Vec<&str> = data["sources"]["call_detail_records"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    calls.sort();
    assert_eq!(calls, vec!["c-2001", "c-2002"], "the August 2025 call too: not only the last 12 months");
    assert_eq!(data["sources"]["marketing"]["records"].as_array().unwrap().len(), 1, "subscribed in 2024");
    assert!(data["request"]["period"]["from"].as_str().unwrap().starts_with("2022-01-01"));
    let period = &data["disclosure"]["period"];
    assert!(period["from"].as_str().unwrap().starts_with("2022-01-01"), "{period}");
    assert!(period["basis"].as_str().unwrap().contains("7024(h)"));
    let ccpa = &data["disclosure"]["ccpa"];
    assert!(ccpa["sold_or_shared"].is_object() && ccpa["business_purpose"].is_object(), "{ccpa}");
    // A copy that may go on to a third party (portability) names no one else either.
    let call = data["sources"]["call_detail_records"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_id"] == "c-2001")
        .unwrap()
        .clone();
    assert_eq!(call["participants"], serde_json::json!(["participant-2", "u-bob"]));
    assert!(!data.to_string().contains("u-alice"), "Alice is pseudonymised in Bob's data.json");

    let index = String::from_utf8(entry(&mut archive, "index.html")).unwrap();
    assert!(index.contains("<html lang=\"en\">") && index.contains("Your personal data"));
    for said in [
        "In short",
        "linked to bob@example.com",
        "Calls",
        "Started on",
        "2 October 2026 at 11:00",
        "30 minutes and 20 seconds",
        "participant 2",
        "u-bob (you)",
        "Chat messages",
        "Thanks Alice, looks great.",
        "from 1 January 2022 up to your request",
        "section 7024(h)",
        "section 1798.145(k)",
        "Categories sold or shared, and with whom",
        "Commercial information",
        "Partner companies we work with",
        "Summit Partners Inc.</strong>: organises seminars with us",
        "Categories disclosed for a business purpose",
        "California Privacy Protection Agency",
        "the right to opt out",
        "We will not treat you differently",
        "standard contractual clauses",
        "based solely on automated processing",
    ] {
        assert!(index.contains(said), "the English page says {said:?}");
    }
    assert!(!index.contains("u-alice"), "Alice is pseudonymised in Bob's page");
    readable_in(&index, Language::En);
}

#[tokio::test]
async fn a_person_of_whom_nothing_is_found_is_told_so_plainly_and_the_completion_counts_nothing() {
    let world = world().await;
    for (language, says, not) in [
        (
            Language::Nl,
            "Wij hebben geen persoonsgegevens gevonden die aan dit adres",
            "Wat wij met uw gegevens doen",
        ),
        (Language::En, "We found no personal data linked to this address", "What we do with your data"),
    ] {
        let address = unique_address("nobody");
        let job = verified_quietly_in(&world, &address, RequestKind::Access, language).await;
        export::export(&world.exporter, &job).await.unwrap();
        let request = world.exporter.store.get(job.request_id).await.unwrap().unwrap();
        assert_eq!(
            (request.status, request.export_found),
            (Status::Completed, Some(0)),
            "nothing, and so counted"
        );
        let mut archive = open_zip(download(&world, job.request_id).await);
        let index = String::from_utf8(entry(&mut archive, "index.html")).unwrap();
        assert!(index.contains(says) && index.contains(&address), "{language:?}: plainly said");
        assert!(!index.contains(not), "{language:?}: nothing to disclose about data there is none of");
        assert!(
            index.contains("Autoriteit Persoonsgegevens"),
            "{language:?}: the rights and the complaint still"
        );
        readable_in(&index, language);
    }
}

#[tokio::test]
async fn a_ccpa_request_to_know_for_a_shorter_period_covers_only_that_period_and_says_so() {
    let world = world().await;
    let (status, body) = submit(
        &world.stack.deps(),
        &serde_json::json!({"email": "bob@example.com", "kind": "access", "region": "US-CA", "period_from": "2026-01-01"})
            .to_string(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // Other tests mail Bob too: this request's link.
    let submitted = body["request_id"].as_str().unwrap().to_owned();
    let mails = world.stack.mail_to("bob@example.com").await;
    let (id, token) =
        mails.iter().filter(|m| asks_to_verify(m)).map(link_parts).find(|(id, _)| *id == submitted).unwrap();
    assert_eq!(verify_with(&world.stack.verifier(), &id, &token).await.0, 200);
    let job = ExportJob { request_id: RequestId::parse(&id).unwrap(), version: 2 };
    export::export(&world.exporter, &job).await.unwrap();
    let mut archive = open_zip(download(&world, job.request_id).await);
    let data: Value = serde_json::from_slice(&entry(&mut archive, "data.json")).unwrap();
    let calls: Vec<&str> = data["sources"]["call_detail_records"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(calls, vec!["c-2001"], "the August 2025 call is before the period asked for");
    assert!(data["sources"]["marketing"]["records"].as_array().unwrap().is_empty(), "subscribed in 2024");
    let period = &data["disclosure"]["period"];
    assert!(period["from"].as_str().unwrap().starts_with("2026-01-01"), "{period}");
    assert_eq!(period["basis"], "the shorter period the person asked for");
}

#[tokio::test]
async fn a_source_failing_once_leaves_the_request_in_progress_and_the_retry_completes_it() {
    let mut world = world().await;
    let job = verified(&world, "alice@example.com", "access", "NL").await;
    // One source points at a table that does not exist yet.
    let healthy = world.exporter.map.clone();
    world.exporter.map =
        DataMap::builtin().unwrap().aws_only().with_name_prefix(&format!("{}missing-", world.prefix));
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

/// Hands stream records to the real dispatch handler, as the event source mapping would.
async fn dispatched<S, M, Q, P>(
    dispatcher: &dispatch::Dispatcher<S, M, Q, P>,
    records: Vec<Value>,
) -> aws_lambda_events::streams::DynamoDbEventResponse
where
    S: privacy_shared::store::RequestStore,
    M: privacy_shared::mail::Mailer,
    Q: privacy_shared::jobs::JobQueue,
    P: PersonalData,
{
    let event: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    dispatch::handle(dispatcher, lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()))
        .await
        .unwrap()
}

/// The completion notice's download link, as dispatch sends it after the export completed.
async fn download_link(world: &World, address: &str) -> String {
    let mut stream =
        devstack::stream::StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    let records = stream.poll().await.unwrap();
    let dispatcher = dispatcher(&world.stack, "unused", &unique_address("staff")).await;
    let completed: Vec<Value> =
        records.into_iter().filter(|r| r["dynamodb"]["NewImage"]["status"]["S"] == "completed").collect();
    dispatched(&dispatcher, completed).await;
    let mail = world.stack.mail_to(address).await.pop().unwrap();
    mail.links().into_iter().find(|l| l.contains("/download?token=")).expect("a download link")
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
        status: download::StatusPages::from_config(&world.stack.config()),
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

async fn put_recording(world: &World, key: &str, body: &[u8]) {
    let bucket = match &world.exporter.map.source("recordings").unwrap().location {
        privacy_shared::datamap::Location::Objects { bucket, .. } => bucket.clone(),
        _ => unreachable!("recordings are objects"),
    };
    world.s3.put_object().bucket(bucket).key(key).body(body.to_vec().into()).send().await.unwrap();
}

/// Every entry of the archive, read front to back the way a streaming reader must: no central
/// directory, each entry's end found from its local header or its own compressed data.
async fn stream_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use futures_lite::io::AsyncReadExt as _;
    let mut entries = Vec::new();
    let mut zip = async_zip::base::read::stream::ZipFileReader::with_tokio(bytes);
    while let Some(mut entry) = zip.next_with_entry().await.expect("a readable local header") {
        let name = entry.reader().entry().filename().as_str().unwrap().to_owned();
        let mut data = Vec::new();
        entry.reader_mut().read_to_end(&mut data).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        zip = entry.done().await.unwrap_or_else(|e| panic!("after {name}: {e}"));
        entries.push((name, data));
    }
    entries
}

#[tokio::test]
async fn recordings_of_the_same_name_in_two_folders_are_both_exported_and_a_streaming_reader_reads_every_entry()
 {
    let world = world().await;
    put_recording(&world, "recordings/u-alice/2025/standup.mp4", b"the 2025 standup").await;
    put_recording(&world, "recordings/u-alice/2026/standup.mp4", b"the 2026 standup, longer").await;
    let job = verified(&world, "alice@example.com", "access", "NL").await;
    export::export(&world.exporter, &job).await.unwrap();
    let bytes = download(&world, job.request_id).await;

    let mut archive = open_zip(bytes.clone());
    let data: Value = serde_json::from_slice(&entry(&mut archive, "data.json")).unwrap();
    let files = data["sources"]["recordings"]["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 4, "the two seeded recordings and both standups: {paths:?}");
    let unique: std::collections::BTreeSet<&&str> = paths.iter().collect();
    assert_eq!(unique.len(), paths.len(), "every entry has its own name: {paths:?}");
    assert!(paths.contains(&"files/recordings/2025/standup.mp4"), "{paths:?}");
    assert!(paths.contains(&"files/recordings/2026/standup.mp4"), "{paths:?}");
    assert_eq!(archive.len(), 2 + files.len(), "data.json, index.html and each recording once");
    assert_eq!(entry(&mut archive, "files/recordings/2025/standup.mp4"), b"the 2025 standup");
    assert_eq!(entry(&mut archive, "files/recordings/2026/standup.mp4"), b"the 2026 standup, longer");

    // Read as a stream, every entry comes out whole and as the central directory has it.
    let streamed = stream_entries(&bytes).await;
    let names: Vec<&str> = streamed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(streamed.len(), archive.len(), "{names:?}");
    for (name, content) in &streamed {
        assert_eq!(content, &entry(&mut archive, name), "{name} read as a stream");
    }
}

#[tokio::test]
async fn a_staff_extension_before_the_export_starts_does_not_drop_the_job() {
    let world = world().await;
    let sqs = aws_sdk_sqs::Client::new(&world.stack.sdk);
    let queue = format!("export-{}.fifo", uuid::Uuid::new_v4().simple());
    let queue = devstack::provision::create_queue(&sqs, &queue, None).await.unwrap();
    let dispatcher = dispatcher(&world.stack, &queue, &unique_address("staff")).await;
    let mut stream =
        devstack::stream::StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    let job = verified(&world, "carol@example.org", "access", "NL").await;
    // Dispatch triages the verified request, then queues its export job.
    for _ in 0..2 {
        let response = dispatched(&dispatcher, stream.poll().await.unwrap()).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let received = sqs.receive_message().queue_url(&queue).max_number_of_messages(10).send().await.unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "one export job");
    let queued: ExportJob = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(queued.request_id, job.request_id);

    // Staff extend the deadline before the worker gets to the job: a new version, same status.
    let (status, body) = staff(
        &staff_api(&world.stack),
        "POST",
        &format!("/staff/requests/{}/extend", job.request_id),
        Some(serde_json::json!({"until": "2027-02-26", "reason": "Three services hold the data."})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let store = &world.exporter.store;
    let extended = store.get(job.request_id).await.unwrap().unwrap();
    assert_eq!(extended.status, Status::Verified);
    assert!(extended.version > queued.version, "the extension is a new version");

    let mut message = aws_lambda_events::sqs::SqsMessage::default();
    message.message_id = messages[0].message_id().map(str::to_owned);
    message.body = messages[0].body().map(str::to_owned);
    let mut event = export::SqsEvent::default();
    event.records.push(message);
    let response = export::handle(
        &world.exporter,
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let done = store.get(job.request_id).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed, "the job was not dropped");
    assert_eq!(done.due_on, extended.due_on, "the extension stands");
    open_zip(download(&world, job.request_id).await);
}

// Erasure wins over export: no export or download link of a person survives their erasure.

type AwsEraser = erasure::Eraser<DynamoStore, AwsPersonalData>;

fn eraser(world: &World, export_bucket: &str) -> AwsEraser {
    erasure::Eraser {
        store: world.stack.deps().store,
        data: AwsPersonalData::new(world.stack.dynamo.clone(), world.s3.clone()),
        map: world.exporter.map.clone(),
        s3: world.s3.clone(),
        export_bucket: export_bucket.to_owned(),
        clock: world.stack.clock.clone(),
        outside: crate::support::no_outside(&world.stack.sdk),
        tombstones: None,
        continuation: None,
    }
}

/// A Dutch request of `address`, submitted and verified now through the store: no verification
/// mail, so no other test's mail to the same sample person can get in the way.
async fn verified_quietly(world: &World, address: &str, kind: RequestKind) -> ExportJob {
    verified_quietly_in(world, address, kind, Language::Nl).await
}

/// The same, in `language`.
async fn verified_quietly_in(
    world: &World,
    address: &str,
    kind: RequestKind,
    language: Language,
) -> ExportJob {
    verified_quietly_from(world, address, kind, "NL", language).await
}

/// The same, from `region` in `language`.
pub(crate) async fn verified_quietly_from(
    world: &World,
    address: &str,
    kind: RequestKind,
    region: &str,
    language: Language,
) -> ExportJob {
    let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
    let region = Region::parse(region).unwrap();
    let now = world.stack.clock.now();
    let deadlines = calendar.deadlines(region.regime(), now);
    let email = EmailAddress::parse(address).unwrap();
    let record =
        RequestRecord::received(RequestId::generate(), kind, region, language, email, now, deadlines);
    let token = TokenHash::of_secret("t");
    let store = &world.exporter.store;
    let live = LiveToken { token_hash: token.clone(), expires_at: now + chrono::Duration::hours(1) };
    store.create(&record, &live).await.unwrap();
    store
        .transition(&record, Change::new(Transition::Verify { token }, now, Actor::Requester))
        .await
        .unwrap();
    ExportJob { request_id: record.id, version: 2 }
}

fn erase(job: &ExportJob) -> ErasureJob {
    ErasureJob { request_id: job.request_id, version: job.version, change: DataChange::Erase }
}

/// The real sources, except that the person's whole erasure runs right after the export read
/// its first page: the export then uploads after the erasure deleted the person's exports.
struct ErasedWhileCollecting {
    inner: AwsPersonalData,
    eraser: AwsEraser,
    job: ErasureJob,
    erased: AtomicBool,
}

impl PersonalData for ErasedWhileCollecting {
    async fn records_page(
        &self,
        source: &Source,
        key: &str,
        cursor: Option<Cursor>,
    ) -> Result<Page, SourceError> {
        let page = self.inner.records_page(source, key, cursor).await;
        if !self.erased.swap(true, Ordering::SeqCst) {
            erasure::run(&self.eraser, &self.job).await.expect("the erasure completes");
        }
        page
    }
    async fn objects(&self, source: &Source, key: &str) -> Result<Vec<StoredObject>, SourceError> {
        self.inner.objects(source, key).await
    }
    async fn delete_record(&self, source: &Source, record: &Value) -> Result<Written, SourceError> {
        self.inner.delete_record(source, record).await
    }
    async fn anonymise_record(
        &self,
        source: &Source,
        record: &Value,
        attributes: &[String],
    ) -> Result<Written, SourceError> {
        self.inner.anonymise_record(source, record, attributes).await
    }
    async fn delete_object(&self, source: &Source, person: &str, key: &str) -> Result<(), SourceError> {
        self.inner.delete_object(source, person, key).await
    }
    async fn correct(
        &self,
        source: &Source,
        record: &Value,
        changes: &serde_json::Map<String, Value>,
    ) -> Result<Written, SourceError> {
        self.inner.correct(source, record, changes).await
    }
}

/// Every version and delete marker under `prefix` in the export bucket.
async fn versions_under(world: &World, prefix: &str) -> usize {
    let out = world
        .s3
        .list_object_versions()
        .bucket(&world.exporter.target.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.versions().len() + out.delete_markers().len()
}

/// Dispatch, given the stream's closing records (completions and denials): the notices go out.
async fn deliver_closings(world: &World) {
    let mut stream =
        devstack::stream::StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    let closing: Vec<Value> = stream
        .poll()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r["dynamodb"]["NewImage"]["status"]["S"].as_str(), Some("completed" | "denied")))
        .collect();
    let dispatcher = dispatcher(&world.stack, "unused", &unique_address("staff")).await;
    let response = dispatched(&dispatcher, closing).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

/// The download link dispatch mailed for request `id` (other tests mail the same sample people).
async fn mailed_link(world: &World, address: &str, id: RequestId) -> String {
    deliver_closings(world).await;
    let path = format!("/requests/{id}/download?token=");
    let mails = world.stack.mail_to(address).await;
    mails.iter().flat_map(|m| m.links()).find(|l| l.contains(&path)).expect("a download link")
}

fn downloads(world: &World) -> download::Downloads<DynamoStore> {
    download::Downloads {
        store: world.stack.deps().store,
        s3: world.s3.clone(),
        bucket: world.exporter.target.bucket.clone(),
        clock: world.stack.clock.clone(),
        status: download::StatusPages::from_config(&world.stack.config()),
    }
}

#[tokio::test]
async fn an_export_uploaded_after_the_persons_erasure_deleted_their_exports_leaves_no_object_and_no_link() {
    let world = world().await;
    let access = verified_quietly(&world, "eve@example.net", RequestKind::Access).await;
    world.stack.clock.advance(chrono::Duration::minutes(1));
    let deletion = verified_quietly(&world, "eve@example.net", RequestKind::Deletion).await;
    let racing = Exporter {
        store: world.stack.deps().store,
        data: ErasedWhileCollecting {
            inner: AwsPersonalData::new(world.stack.dynamo.clone(), world.s3.clone()),
            eraser: eraser(&world, &world.exporter.target.bucket),
            job: erase(&deletion),
            erased: AtomicBool::new(false),
        },
        map: world.exporter.map.clone(),
        s3: world.s3.clone(),
        target: world.exporter.target.clone(),
        clock: world.stack.clock.clone(),
        outside: crate::support::no_outside(&world.stack.sdk),
        calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
    };

    export::export(&racing, &access).await.unwrap();
    assert!(racing.data.erased.load(Ordering::SeqCst), "the erasure ran while the export collected");

    let store = &world.exporter.store;
    let erased = store.get(deletion.request_id).await.unwrap().unwrap();
    assert_eq!(erased.status, Status::Completed);
    assert_eq!(erased.receipt.expect("a receipt").exports_deleted, 0, "nothing was uploaded before it");
    assert_eq!(versions_under(&world, "exports/").await, 0, "the receipt holds: no export of Eve is left");
    let overtaken = store.get(access.request_id).await.unwrap().unwrap();
    assert_eq!(overtaken.status, Status::Denied, "closed, never completed");
    let trail = store.audit_trail(access.request_id).await.unwrap();
    assert!(!trail.iter().any(|e| e.event == Event::Completed), "{trail:?}");

    deliver_closings(&world).await;
    assert!(store.download_tokens(access.request_id).await.unwrap().is_empty(), "no download link");
    // The mailbox is shared with other tests of Eve: this request's mails only.
    let id = access.request_id.to_string();
    let mails: Vec<_> =
        world.stack.mail_to("eve@example.net").await.into_iter().filter(|m| m.body.contains(&id)).collect();
    assert!(mails.iter().all(|m| !m.body.contains("/download?token=")), "no link was mailed");
    let denial =
        mails.iter().find(|m| m.body.contains("Het wissen gaat voor")).expect("the requester is told why");
    assert!(!denial.body.contains("download"), "{}", denial.body);
}

#[tokio::test]
async fn a_download_link_is_refused_once_the_persons_erasure_has_begun_deleting_their_exports() {
    let world = world().await;
    let address = unique_address("erased");
    let access = verified_quietly(&world, &address, RequestKind::Access).await;
    export::export(&world.exporter, &access).await.unwrap();
    let link = mailed_link(&world, &address, access.request_id).await;
    assert_eq!(download::handle(&downloads(&world), get(&link)).await.unwrap().status(), 302);

    // The erasure gets as far as deleting the exports, and the export bucket fails it there: the
    // object and the link are still in place.
    world.stack.clock.advance(chrono::Duration::minutes(1));
    let deletion = verified_quietly(&world, &address, RequestKind::Deletion).await;
    let failing = eraser(&world, &format!("{}no-such-bucket", world.prefix));
    assert!(erasure::run(&failing, &erase(&deletion)).await.is_err());
    assert_eq!(versions_under(&world, &format!("exports/{}/", access.request_id)).await, 1);

    let refused = download::handle(&downloads(&world), get(&link)).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(json_of(&refused)["error"]["code"], "download_refused");
    let trail = world.exporter.store.audit_trail(access.request_id).await.unwrap();
    assert_eq!(trail.iter().filter(|e| e.event == Event::Downloaded).count(), 1, "only the earlier one");
}

#[tokio::test]
async fn an_access_request_verified_after_a_completed_erasure_is_exported_as_usual() {
    let world = world().await;
    let address = unique_address("erased");
    let deletion = verified_quietly(&world, &address, RequestKind::Deletion).await;
    erasure::run(&eraser(&world, &world.exporter.target.bucket), &erase(&deletion)).await.unwrap();
    let store = &world.exporter.store;
    assert_eq!(store.get(deletion.request_id).await.unwrap().unwrap().status, Status::Completed);

    world.stack.clock.advance(chrono::Duration::minutes(1));
    let access = verified_quietly(&world, &address, RequestKind::Access).await;
    export::export(&world.exporter, &access).await.unwrap();
    assert_eq!(store.get(access.request_id).await.unwrap().unwrap().status, Status::Completed);
    open_zip(download(&world, access.request_id).await);
    let link = mailed_link(&world, &address, access.request_id).await;
    assert_eq!(download::handle(&downloads(&world), get(&link)).await.unwrap().status(), 302);
}
