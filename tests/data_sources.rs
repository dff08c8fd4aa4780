//! The data map against the emulator: the synthetic people are seeded into the map's tables and
//! bucket, and each person's data is found in every source, complete and nobody else's.

use serde_json::Value;

use devstack::seed::{self, SampleData};
use integration_tests::*;
use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::EmailAddress;
use privacy_shared::sources::{AwsPersonalData, Person, PersonalData, find_user_id};

async fn seeded() -> (DataMap, AwsPersonalData, SampleData) {
    let (sdk, _) = emulator_sdk().await;
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let map = DataMap::builtin().unwrap().with_name_prefix(&prefix);
    let data = SampleData::load(&seed::default_path()).unwrap();
    seed::create_sources(&sdk, &map).await.unwrap();
    seed::seed(&sdk, &map, &data).await.unwrap();
    let sources =
        AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&sdk), devstack::provision::s3_client(&sdk));
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
