//! The data map against the emulator: the synthetic people are seeded into the map's tables and
//! bucket, each person's data is found in every source, complete and nobody else's, and erasing,
//! anonymising or correcting one person's data changes theirs only, however often it runs.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use chrono::TimeZone;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::support::*;
use devstack::seed::{self, SampleData};
use privacy_shared::ManualClock;
use privacy_shared::datamap::{DataMap, ErasurePolicy, Location, Source};
use privacy_shared::domain::EmailAddress;
use privacy_shared::sources::{
    AwsPersonalData, Cursor, Page, Person, PersonalData, SourceError, Written, delete_all_versions,
    find_user_id,
};

struct Seeded {
    map: DataMap,
    sources: AwsPersonalData,
    data: SampleData,
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

/// The instant the changes in these tests are stamped with.
fn stamp() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

async fn seeded_sources() -> Seeded {
    let (sdk, _) = emulator_sdk().await;
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let map = DataMap::builtin().unwrap().aws_only().with_name_prefix(&prefix);
    let data = SampleData::load(&seed::default_path()).unwrap();
    seed::create_sources(&sdk, &map).await.unwrap();
    seed::seed(&sdk, &map, &data).await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = devstack::provision::s3_client(&sdk);
    let sources =
        AwsPersonalData::new(dynamo.clone(), s3.clone()).with_clock(Arc::new(ManualClock::new(stamp())));
    Seeded { map, sources, data, dynamo, s3 }
}

async fn seeded() -> (DataMap, AwsPersonalData, SampleData) {
    let Seeded { map, sources, data, .. } = seeded_sources().await;
    (map, sources, data)
}

async fn person(map: &DataMap, sources: &AwsPersonalData, address: &str) -> Person {
    let email = EmailAddress::parse(address).unwrap();
    let user_id = find_user_id(sources, map, &email).await.unwrap();
    Person { email, user_id }
}

/// What the sample data holds for a person in one source, by the source's lookup attribute.
fn expected(data: &SampleData, source: &str, attribute: &str, key: &str) -> usize {
    data.items.get(source).map_or(0, |items| items.iter().filter(|i| i[attribute] == key).count())
}

#[tokio::test]
async fn each_persons_data_is_found_in_every_source_and_nobody_elses() {
    let (map, sources, data) = seeded().await;
    for address in ["alice@example.com", "Bob@Example.com", "carol@example.org", "eve@example.net"] {
        let person = person(&map, &sources, address).await;
        let user_id = person.user_id.clone().expect("every sample person has an account");
        for source in map.sources() {
            let key = person.key_for(source.find_by()).unwrap();
            match &source.location {
                Location::Table { .. } => {
                    let attribute = if key == user_id { "user_id" } else { "email" };
                    let records = sources.records(source, key).await.unwrap();
                    assert_eq!(
                        records.len(),
                        expected(&data, &source.id, attribute, key),
                        "{address} in {}",
                        source.id
                    );
                    assert!(
                        records.iter().all(|r| r[attribute] == key),
                        "{address} got another's record in {}",
                        source.id
                    );
                }
                Location::Objects { .. } => {
                    let objects = sources.objects(source, key).await.unwrap();
                    let own = format!("recordings/{user_id}/");
                    let want = data.objects[&source.id].iter().filter(|o| o.key.starts_with(&own)).count();
                    assert_eq!(objects.len(), want, "{address} recordings");
                    assert!(objects.iter().all(|o| o.key.starts_with(&own)));
                }
                Location::Webhook { .. } | Location::Manual { .. } => unreachable!("an AWS-only map"),
            }
        }
    }
}

#[tokio::test]
async fn alice_has_data_everywhere_and_the_lookalike_prefix_is_not_hers() {
    let (map, sources, _) = seeded().await;
    let alice = person(&map, &sources, "alice@example.com").await;
    assert_eq!(alice.user_id.as_deref(), Some("u-alice"));
    let recordings = sources.objects(map.source("recordings").unwrap(), "u-alice").await.unwrap();
    let keys: Vec<&str> = recordings.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("u-alice-2")));
    assert!(recordings.iter().all(|o| o.size > 0));
    let cdrs = sources.records(map.source("call_detail_records").unwrap(), "u-alice").await.unwrap();
    assert_eq!(cdrs.len(), 3);
    assert!(cdrs.iter().all(|r| r["quality"].is_object()), "nested attributes come back as JSON");
}

#[tokio::test]
async fn an_unknown_person_has_no_user_id_and_no_records() {
    let (map, sources, _) = seeded().await;
    let nobody = person(&map, &sources, "nobody@example.com").await;
    assert_eq!(nobody.user_id, None);
    for source in map.sources().iter().filter(|s| matches!(s.location, Location::Table { .. })) {
        if let Some(key) = nobody.key_for(source.find_by()) {
            assert_eq!(sources.records(source, key).await.unwrap(), Vec::<Value>::new(), "{}", source.id);
        }
    }
}

fn table_of(source: &Source) -> (&str, &str) {
    match &source.location {
        Location::Table { table, table_key, .. } => (table, table_key),
        _ => panic!("{} is not a table", source.id),
    }
}

fn bucket_of(source: &Source) -> &str {
    match &source.location {
        Location::Objects { bucket, .. } => bucket,
        _ => panic!("{} is not a bucket", source.id),
    }
}

/// The record as stored, by its table key, or `None` if it is gone.
async fn stored(s: &Seeded, source: &Source, key: &str) -> Option<Value> {
    let (table, table_key) = table_of(source);
    let item = s
        .dynamo
        .get_item()
        .table_name(table)
        .key(table_key, AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    Some(serde_dynamo::from_item(item).unwrap())
}

/// Every version and delete marker of exactly this key.
async fn versions_of(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> usize {
    let out = s3.list_object_versions().bucket(bucket).prefix(key).send().await.unwrap();
    let versions = out.versions().iter().filter(|v| v.key() == Some(key)).count();
    let markers = out.delete_markers().iter().filter(|m| m.key() == Some(key)).count();
    versions + markers
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &'static [u8]) {
    s3.put_object().bucket(bucket).key(key).body(body.to_vec().into()).send().await.unwrap();
}

async fn turn_versioning_on(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
        )
        .send()
        .await
        .unwrap();
}

/// Erases one person from every table as the map says: delete, or anonymise.
async fn erase_records(s: &Seeded, person: &Person) {
    for source in s.map.sources().iter().filter(|s| matches!(s.location, Location::Table { .. })) {
        let Some(key) = person.key_for(source.find_by()) else { continue };
        for record in s.sources.records(source, key).await.unwrap() {
            let written = match &source.erasure {
                ErasurePolicy::Delete => s.sources.delete_record(source, &record).await.unwrap(),
                ErasurePolicy::Anonymise { attributes, .. } => {
                    s.sources.anonymise_record(source, &record, attributes).await.unwrap()
                }
            };
            assert_eq!(written, Written::Applied, "{}", source.id);
        }
    }
}

#[tokio::test]
async fn erasing_one_persons_records_leaves_everyone_elses_and_keeps_anonymised_records_unfindable() {
    let s = seeded_sources().await;
    let alice = person(&s.map, &s.sources, "alice@example.com").await;
    let bob = person(&s.map, &s.sources, "bob@example.com").await;
    let cdrs = s.map.source("call_detail_records").unwrap();
    let alices_calls: Vec<Value> = s.sources.records(cdrs, "u-alice").await.unwrap();
    assert_eq!(alices_calls.len(), 3);

    erase_records(&s, &alice).await;

    for source in s.map.sources().iter().filter(|s| matches!(s.location, Location::Table { .. })) {
        let attribute = if source.find_by() == privacy_shared::datamap::SubjectAttribute::Email {
            "email"
        } else {
            "user_id"
        };
        let alices_key = alice.key_for(source.find_by()).unwrap();
        assert_eq!(
            s.sources.records(source, alices_key).await.unwrap(),
            Vec::<Value>::new(),
            "{}",
            source.id
        );
        let bobs_key = bob.key_for(source.find_by()).unwrap();
        let bobs = s.sources.records(source, bobs_key).await.unwrap();
        assert_eq!(bobs.len(), expected(&s.data, &source.id, attribute, bobs_key), "bob's {}", source.id);
        assert!(bobs.iter().all(|r| r.get("anonymised_at").is_none()), "bob's {} untouched", source.id);
    }
    // The call records are kept for the stated reason, without what named her.
    let ErasurePolicy::Anonymise { attributes, .. } = &cdrs.erasure else { panic!("cdrs are anonymised") };
    for call in &alices_calls {
        let call_id = call["call_id"].as_str().unwrap();
        let kept = stored(&s, cdrs, call_id).await.expect("the anonymised record is kept");
        for attribute in attributes {
            assert!(kept.get(attribute).is_none(), "{attribute} still in {call_id}");
        }
        assert_eq!(kept["anonymised_at"], "2026-12-01T10:00:00Z");
        assert_eq!(kept["duration_seconds"], call["duration_seconds"]);
        assert_eq!(kept["quality"], call["quality"]);
    }
    // Her account is gone, so her address no longer leads to a user id either.
    assert_eq!(person(&s.map, &s.sources, "alice@example.com").await.user_id, None);
}

#[tokio::test]
async fn delete_object_removes_every_version_from_a_versioned_bucket_and_only_that_key() {
    let s = seeded_sources().await;
    let recordings = s.map.source("recordings").unwrap();
    let bucket = bucket_of(recordings);
    turn_versioning_on(&s.s3, bucket).await;
    let key = "recordings/u-alice/2026-11-30-retake.mp4";
    let lookalike = "recordings/u-alice/2026-11-30-retake.mp4.part";
    put(&s.s3, bucket, key, b"first take").await;
    put(&s.s3, bucket, key, b"second take").await;
    put(&s.s3, bucket, lookalike, b"partial").await;
    // A plain delete in a versioned bucket leaves the versions behind a delete marker.
    s.s3.delete_object().bucket(bucket).key(key).send().await.unwrap();
    assert_eq!(versions_of(&s.s3, bucket, key).await, 3);
    // Seeded before versioning was on: its one version is the `null` version.
    let seeded_key = "recordings/u-alice/2026-10-02-design-review.mp4";

    s.sources.delete_object(recordings, "u-alice", key).await.unwrap();
    s.sources.delete_object(recordings, "u-alice", seeded_key).await.unwrap();

    assert_eq!(versions_of(&s.s3, bucket, key).await, 0, "every version and marker is gone");
    assert_eq!(versions_of(&s.s3, bucket, seeded_key).await, 0);
    assert_eq!(versions_of(&s.s3, bucket, lookalike).await, 1, "a longer key is another object");
    let left: Vec<String> =
        s.sources.objects(recordings, "u-alice").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.iter().any(|k| k == key || k == seeded_key), "{left:?}");
}

#[tokio::test]
async fn delete_object_refuses_a_key_outside_the_persons_prefix() {
    let s = seeded_sources().await;
    let recordings = s.map.source("recordings").unwrap();
    let bucket = bucket_of(recordings);
    for outside in [
        "recordings/u-alice-2/not-alices.mp4",
        "recordings/u-bob/2026-10-02-design-review.mp4",
        "recordings/u-alice/../u-bob/2026-10-02-design-review.mp4",
        "recordings/u-alice/",
    ] {
        let err = s.sources.delete_object(recordings, "u-alice", outside).await.unwrap_err();
        assert!(matches!(err, SourceError::NotThePersons(ref id) if id == "recordings"), "{outside}: {err}");
        assert!(!err.to_string().contains("u-"), "the error names no key: {err}");
    }
    assert_eq!(versions_of(&s.s3, bucket, "recordings/u-alice-2/not-alices.mp4").await, 1);
    assert_eq!(versions_of(&s.s3, bucket, "recordings/u-bob/2026-10-02-design-review.mp4").await, 1);
    let err = s.sources.delete_object(recordings, "u-alice/..", "recordings/u-alice/x").await.unwrap_err();
    assert!(matches!(err, SourceError::UnsafeKey(_)), "{err}");
    let err = s.sources.delete_object(s.map.source("accounts").unwrap(), "u-alice", "x").await.unwrap_err();
    assert!(matches!(err, SourceError::WrongKind(_)), "{err}");
}

#[tokio::test]
async fn correct_changes_only_correctable_attributes_and_refuses_others() {
    let s = seeded_sources().await;
    let accounts = s.map.source("accounts").unwrap();
    let before = stored(&s, accounts, "alice@example.com").await.unwrap();
    let change = |pairs: Value| pairs.as_object().unwrap().clone();

    for refused in [
        json!({"plan": "enterprise"}),
        json!({"job_title": "Lead designer", "user_id": "u-mallory"}),
        json!({"email": "mallory@example.com"}),
    ] {
        let err = s.sources.correct(accounts, &before, &change(refused.clone())).await.unwrap_err();
        assert!(matches!(err, SourceError::NotCorrectable(ref id) if id == "accounts"), "{refused}: {err}");
        assert!(!err.to_string().contains("mallory"), "{err}");
    }
    assert_eq!(
        stored(&s, accounts, "alice@example.com").await.unwrap(),
        before,
        "nothing of a refusal is written"
    );

    let corrected = s
        .sources
        .correct(
            accounts,
            &before,
            &change(json!({"job_title": "Lead designer", "name": "Alice Jansen-Smit", "phone": null})),
        )
        .await
        .unwrap();
    assert_eq!(corrected, Written::Applied);
    let after = stored(&s, accounts, "alice@example.com").await.unwrap();
    assert_eq!(after["job_title"], "Lead designer");
    assert_eq!(after["name"], "Alice Jansen-Smit");
    assert!(after.get("phone").is_none(), "null removes the attribute");
    assert_eq!(after["corrected_at"], "2026-12-01T10:00:00Z");
    let untouched = |v: &Value| {
        let mut v = v.as_object().unwrap().clone();
        for a in ["job_title", "name", "phone", "corrected_at"] {
            v.remove(a);
        }
        v
    };
    assert_eq!(untouched(&after), untouched(&before));
    let bobs = stored(&s, accounts, "bob@example.com").await.unwrap();
    assert!(bobs.get("corrected_at").is_none());

    // A source with nothing correctable refuses everything.
    let cdrs = s.map.source("call_detail_records").unwrap();
    let call = stored(&s, cdrs, "c-1001").await.unwrap();
    let err = s.sources.correct(cdrs, &call, &change(json!({"network": "5g"}))).await.unwrap_err();
    assert!(matches!(err, SourceError::NotCorrectable(_)), "{err}");
}

#[tokio::test]
async fn deleting_anonymising_and_correcting_twice_or_after_deletion_is_fine() {
    let s = seeded_sources().await;
    let devices = s.map.source("devices").unwrap();
    let device = stored(&s, devices, "d-alice-laptop").await.unwrap();
    assert_eq!(s.sources.delete_record(devices, &device).await.unwrap(), Written::Applied);
    assert_eq!(s.sources.delete_record(devices, &device).await.unwrap(), Written::NotTheirs, "gone");
    assert_eq!(stored(&s, devices, "d-alice-laptop").await, None);

    let cdrs = s.map.source("call_detail_records").unwrap();
    let ErasurePolicy::Anonymise { attributes, .. } = &cdrs.erasure else { panic!("cdrs are anonymised") };
    let call = stored(&s, cdrs, "c-1001").await.unwrap();
    assert_eq!(s.sources.anonymise_record(cdrs, &call, attributes).await.unwrap(), Written::Applied);
    let once = stored(&s, cdrs, "c-1001").await.unwrap();
    assert_eq!(s.sources.anonymise_record(cdrs, &call, attributes).await.unwrap(), Written::NotTheirs);
    assert_eq!(stored(&s, cdrs, "c-1001").await.unwrap(), once);
    // Anonymised, the record is no longer hers: a late delete in her name leaves it kept.
    assert_eq!(s.sources.delete_record(cdrs, &call).await.unwrap(), Written::NotTheirs);
    assert_eq!(stored(&s, cdrs, "c-1001").await.unwrap(), once);
    // Anonymising or correcting a record deleted meanwhile does not bring it back.
    let other_call = stored(&s, cdrs, "c-1002").await.unwrap();
    assert_eq!(s.sources.delete_record(cdrs, &other_call).await.unwrap(), Written::Applied);
    assert_eq!(s.sources.anonymise_record(cdrs, &other_call, attributes).await.unwrap(), Written::NotTheirs);
    assert_eq!(stored(&s, cdrs, "c-1002").await, None);
    let accounts = s.map.source("accounts").unwrap();
    let account = stored(&s, accounts, "carol@example.org").await.unwrap();
    assert_eq!(s.sources.delete_record(accounts, &account).await.unwrap(), Written::Applied);
    let change = json!({"job_title": "x"}).as_object().unwrap().clone();
    assert_eq!(s.sources.correct(accounts, &account, &change).await.unwrap(), Written::NotTheirs);
    assert_eq!(stored(&s, accounts, "carol@example.org").await, None);

    // A record without its key cannot be deleted: nothing would say which.
    let err = s.sources.delete_record(devices, &json!({"user_id": "u-alice"})).await.unwrap_err();
    assert!(matches!(err, SourceError::Unreadable(_)), "{err}");

    // Objects in an unversioned bucket, twice.
    let recordings = s.map.source("recordings").unwrap();
    let key = "recordings/u-alice/2024-06-01-solo-practice.mp4";
    s.sources.delete_object(recordings, "u-alice", key).await.unwrap();
    s.sources.delete_object(recordings, "u-alice", key).await.unwrap();
    assert_eq!(versions_of(&s.s3, bucket_of(recordings), key).await, 0);
}

#[tokio::test]
async fn delete_all_versions_empties_one_prefix_of_a_versioned_bucket() {
    let s = seeded_sources().await;
    let bucket = format!("exports-{}", uuid::Uuid::new_v4().simple());
    devstack::provision::create_bucket(&s.s3, &bucket).await.unwrap();
    turn_versioning_on(&s.s3, &bucket).await;
    for key in ["exports/req-1/export.zip", "exports/req-1/manifest.json"] {
        put(&s.s3, &bucket, key, b"one").await;
        put(&s.s3, &bucket, key, b"two").await;
    }
    put(&s.s3, &bucket, "exports/req-10/export.zip", b"another request").await;
    s.s3.delete_object().bucket(&bucket).key("exports/req-1/manifest.json").send().await.unwrap();

    assert_eq!(
        delete_all_versions(&s.s3, &bucket, "exports/req-1/").await.unwrap(),
        5,
        "4 versions, 1 marker"
    );
    assert_eq!(delete_all_versions(&s.s3, &bucket, "exports/req-1/").await.unwrap(), 0);
    let left = s.s3.list_object_versions().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = left.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["exports/req-10/export.zip"]);
    assert!(left.delete_markers().is_empty());
    assert!(matches!(delete_all_versions(&s.s3, &bucket, "").await, Err(SourceError::EmptyPrefix)));
}

/// Hands a stored record to someone else (a device passed on, a merged account): what an index
/// still lists under the old owner is then a stale entry.
async fn hand_over(s: &Seeded, source: &Source, key: &str, owner_attribute: &str, new_owner: &str) {
    let (table, table_key) = table_of(source);
    s.dynamo
        .update_item()
        .table_name(table)
        .key(table_key, AttributeValue::S(key.to_owned()))
        .update_expression("SET #o = :o")
        .expression_attribute_names("#o", owner_attribute)
        .expression_attribute_values(":o", AttributeValue::S(new_owner.to_owned()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stale_index_entry_never_deletes_anonymises_or_corrects_a_record_that_is_now_someone_elses() {
    use privacy_shared::sources::Written;
    let s = seeded_sources().await;
    let devices = s.map.source("devices").unwrap();
    let cdrs = s.map.source("call_detail_records").unwrap();
    let ErasurePolicy::Anonymise { attributes, .. } = &cdrs.erasure else { panic!("cdrs are anonymised") };
    // Alice's records as her lookup returned them...
    let alices_devices = s.sources.records(devices, "u-alice").await.unwrap();
    let laptop = alices_devices.iter().find(|d| d["device_id"] == "d-alice-laptop").unwrap().clone();
    let phone = alices_devices.iter().find(|d| d["device_id"] == "d-alice-phone").unwrap().clone();
    let call =
        s.sources.records(cdrs, "u-alice").await.unwrap().into_iter().find(|c| c["call_id"] == "c-1001");
    let call = call.unwrap();
    // ...of which two now belong to Bob.
    hand_over(&s, devices, "d-alice-laptop", "user_id", "u-bob").await;
    hand_over(&s, cdrs, "c-1001", "user_id", "u-bob").await;
    let bobs_laptop = stored(&s, devices, "d-alice-laptop").await.unwrap();
    let bobs_call = stored(&s, cdrs, "c-1001").await.unwrap();

    assert_eq!(s.sources.delete_record(devices, &laptop).await.unwrap(), Written::NotTheirs);
    assert_eq!(s.sources.anonymise_record(cdrs, &call, attributes).await.unwrap(), Written::NotTheirs);
    assert_eq!(
        stored(&s, devices, "d-alice-laptop").await.as_ref(),
        Some(&bobs_laptop),
        "Bob's device stays"
    );
    assert_eq!(stored(&s, cdrs, "c-1001").await.as_ref(), Some(&bobs_call), "Bob's call keeps his id");
    // Skipped, not an error, and said so (above).
    // A correction is held to the same condition (a source found by user id, correctable here
    // only to show the guard: the map allows corrections only where the key is the address).
    let mut correctable = devices.clone();
    correctable.correctable = vec!["label".to_owned()];
    let change = json!({"label": "Alice's laptop"}).as_object().unwrap().clone();
    assert_eq!(s.sources.correct(&correctable, &laptop, &change).await.unwrap(), Written::NotTheirs);
    assert_eq!(stored(&s, devices, "d-alice-laptop").await.as_ref(), Some(&bobs_laptop));

    // What is still hers is changed, and said so.
    assert_eq!(s.sources.correct(&correctable, &phone, &change).await.unwrap(), Written::Applied);
    assert_eq!(stored(&s, devices, "d-alice-phone").await.unwrap()["label"], "Alice's laptop");
    assert_eq!(s.sources.delete_record(devices, &phone).await.unwrap(), Written::Applied);
    assert_eq!(stored(&s, devices, "d-alice-phone").await, None);
    assert_eq!(s.sources.delete_record(devices, &phone).await.unwrap(), Written::NotTheirs, "gone: a skip");
    // A record that does not say whose it is cannot be changed conditionally: refused.
    let err = s.sources.delete_record(devices, &json!({"device_id": "d-bob-room"})).await.unwrap_err();
    assert!(matches!(err, SourceError::Unreadable(_)), "{err}");
    assert!(stored(&s, devices, "d-bob-room").await.is_some());
}

/// The real source access, except that every deletion in one source is followed by a new record
/// of the person there (`writes` times at most), as an app still syncing during the erasure.
struct KeepsWriting {
    inner: AwsPersonalData,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    writes: std::sync::atomic::AtomicU32,
}

impl KeepsWriting {
    async fn write_one(&self, source: &Source) {
        use std::sync::atomic::Ordering;
        if source.id != "devices"
            || self.writes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err()
        {
            return;
        }
        let id = format!("d-alice-new-{}", uuid::Uuid::new_v4().simple());
        let item =
            serde_dynamo::to_item(json!({"device_id": id, "user_id": "u-alice", "model": "sync"})).unwrap();
        self.dynamo.put_item().table_name(&self.table).set_item(Some(item)).send().await.unwrap();
    }
}

impl PersonalData for KeepsWriting {
    async fn records_page(
        &self,
        source: &Source,
        key: &str,
        cursor: Option<Cursor>,
    ) -> Result<Page, SourceError> {
        self.inner.records_page(source, key, cursor).await
    }
    async fn objects(
        &self,
        source: &Source,
        key: &str,
    ) -> Result<Vec<privacy_shared::sources::StoredObject>, SourceError> {
        self.inner.objects(source, key).await
    }
    async fn delete_record(&self, source: &Source, record: &Value) -> Result<Written, SourceError> {
        let written = self.inner.delete_record(source, record).await;
        self.write_one(source).await;
        written
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

struct Erasing {
    stack: Stack,
    eraser: erasure::Eraser<privacy_shared::store::DynamoStore, KeepsWriting>,
    job: privacy_shared::jobs::ErasureJob,
}

/// Alice's verified deletion request, and an erasure worker whose devices source gets `writes`
/// new records of hers while it runs.
async fn erasing_alice(writes: u32) -> Erasing {
    let stack = Stack::new().await;
    let map = stack.data_map().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("x{}-exports", uuid::Uuid::new_v4().simple());
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let (table, _) = table_of(map.source("devices").unwrap());
    let data = KeepsWriting {
        inner: AwsPersonalData::new(stack.dynamo.clone(), s3.clone()),
        dynamo: stack.dynamo.clone(),
        table: table.to_owned(),
        writes: std::sync::atomic::AtomicU32::new(writes),
    };
    let id = verified_request(&stack, "alice@example.com", "deletion", "NL").await;
    let version = stack.deps().store.get(id).await.unwrap().unwrap().version;
    let job = privacy_shared::jobs::ErasureJob {
        request_id: id,
        version,
        change: privacy_shared::jobs::DataChange::Erase,
    };
    let eraser = erasure::Eraser {
        store: stack.deps().store,
        data,
        map,
        s3,
        export_bucket: bucket,
        clock: stack.clock.clone(),
        outside: crate::support::no_outside(&stack.sdk),
        tombstones: None,
        continuation: None,
    };
    Erasing { stack, eraser, job }
}

#[tokio::test]
async fn a_record_written_during_the_erasure_is_erased_by_another_pass_and_the_erasure_completes() {
    let e = erasing_alice(1).await;
    erasure::run(&e.eraser, &e.job).await.unwrap();
    let done = e.stack.deps().store.get(e.job.request_id).await.unwrap().unwrap();
    assert_eq!(done.status, privacy_shared::domain::Status::Completed);
    let receipt = done.receipt.expect("a receipt");
    let devices = receipt.sources.iter().find(|s| s.source == "devices").unwrap();
    assert_eq!(devices.deleted, 3, "her two devices and the one written meanwhile");
    let devices_source = e.eraser.map.source("devices").unwrap();
    assert!(e.eraser.data.records(devices_source, "u-alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_source_that_keeps_getting_new_data_alerts_staff_after_bounded_passes_and_the_request_stays_open() {
    use privacy_shared::domain::{Event, Status};
    let e = erasing_alice(u32::MAX).await;
    let store = e.stack.deps().store;
    // Done with, not failed: the queue does not retry it into the dead-letter queue.
    erasure::run(&e.eraser, &e.job).await.unwrap();
    let open = store.get(e.job.request_id).await.unwrap().unwrap();
    assert_eq!(open.status, Status::InProgress, "visibly open");
    assert!(open.receipt.is_none());
    let writes_left = e.eraser.data.writes.load(std::sync::atomic::Ordering::SeqCst);
    // Two devices at first, so two new ones after each pass over the source.
    assert_eq!(u32::MAX - writes_left, 2 * erasure::MAX_PASSES, "bounded passes");
    let stalled = |trail: &[privacy_shared::domain::AuditEvent]| {
        trail.iter().filter(|e| e.event == Event::ErasureStalled).count()
    };
    let trail = store.audit_trail(e.job.request_id).await.unwrap();
    assert_eq!(stalled(&trail), 1, "staff are alerted: {trail:?}");
    let event = trail.iter().find(|e| e.event == Event::ErasureStalled).unwrap();
    assert_eq!((event.from, event.to), (Some(Status::InProgress), Status::InProgress));
    assert!(!serde_json::to_string(&trail).unwrap().contains("alice"), "no personal data in the trail");

    // A redelivery tries again and alerts no second time.
    erasure::run(&e.eraser, &e.job).await.unwrap();
    let trail = store.audit_trail(e.job.request_id).await.unwrap();
    assert_eq!(stalled(&trail), 1);
    assert_eq!(store.get(e.job.request_id).await.unwrap().unwrap().status, Status::InProgress);
}
