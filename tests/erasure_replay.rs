//! Backups remember what erasure forgot (CCPA regulations §7022(d)): every erasure leaves a
//! tombstone that names nobody, and after a restore `staff replay-erasures --since DATE` erases
//! the people the backup brought back, leaves new data and other people alone, and a second run
//! finds nothing. The erasure and the staff API run under their own roles from the template.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::SystemTime;

use crate::support::*;
use privacy_shared::Clock;
use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::{
    Actor, BusinessCalendar, EmailAddress, ErasureReceipt, Language, Region, RequestId, RequestKind,
    RequestRecord, Status, TokenHash, Transition,
};
use privacy_shared::jobs::{DataChange, ErasureJob, SqsJobQueue};
use privacy_shared::sources::{AwsPersonalData, Person, PersonalData};
use privacy_shared::store::{Change, DynamoStore, LiveToken};
use privacy_shared::tombstones::{
    DynamoTombstones, SourceScanner, Tombstone, TombstoneKey, TombstoneRetention,
};

const TOMBSTONE_KEY: &str = "a-test-only-tombstone-key-not-a-secret";
const KEY: &str = "replay-test-key-0123456789abcdef";

struct Restorable {
    stack: Stack,
    map: DataMap,
    eraser: erasure::Eraser<DynamoStore, AwsPersonalData>,
    /// The staff API under its role, and the same over HTTP with the local key (for the CLI).
    admin_env: Vec<(&'static str, String)>,
    admin_stack: Stack,
    /// The developer's view of the sources, for the test's own reads.
    data: AwsPersonalData,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    tombstones: String,
    queue: String,
}

/// A tombstones table and an erasure queue of the stack's own: their names (the queue's URL).
pub(crate) async fn replay_resources(stack: &Stack) -> (String, String) {
    let template = devstack::template::Template::load(&devstack::template::default_path()).unwrap();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let tombstones = format!("tombstones-{tag}");
    devstack::provision::create_table(&stack.dynamo, &tombstones, &template.tombstones_table().unwrap())
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue = devstack::provision::create_queue(&sqs, &format!("erasure-{tag}.fifo"), None).await.unwrap();
    (tombstones, queue)
}

async fn restorable() -> Restorable {
    let stack = Stack::new().await;
    let map = stack.data_map().await;
    let template = devstack::template::Template::load(&devstack::template::default_path()).unwrap();
    let (tombstones, queue) = replay_resources(&stack).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("x{tag}-exports");
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    devstack::provision::configure_bucket(&s3, &bucket, &template.bucket("ExportBucket").unwrap())
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_name = queue.rsplit('/').next().unwrap().to_owned();
    let roles = stack
        .roles(&[("ErasureQueue", &queue_name), ("ExportBucket", &bucket), ("TombstonesTable", &tombstones)])
        .await;
    let as_erasure = stack.signing_as(&roles, "erasure");
    let erasure_s3 = devstack::provision::s3_client(&as_erasure.sdk);
    let erasure_dynamo = aws_sdk_dynamodb::Client::new(&as_erasure.sdk);
    let eraser = erasure::Eraser {
        store: as_erasure.deps().store,
        data: AwsPersonalData::new(erasure_dynamo.clone(), erasure_s3.clone()),
        map: map.clone(),
        s3: erasure_s3.clone(),
        export_bucket: bucket.clone(),
        clock: stack.clock.clone(),
        outside: no_outside(&stack.sdk),
        continuation: Some(erasure::Continuation {
            queue: SqsJobQueue::new(aws_sdk_sqs::Client::new(&as_erasure.sdk), "", &queue),
            // More than the second each invocation is given: every invocation takes one step.
            stop_before_deadline: std::time::Duration::from_secs(30),
        }),
        tombstones: Some(erasure::Tombstoning {
            book: DynamoTombstones::new(erasure_dynamo.clone(), &tombstones),
            key: TombstoneKey::parse(TOMBSTONE_KEY).unwrap(),
            retention: TombstoneRetention::default(),
            // Pages of three: a source takes several invocations.
            scanner: SourceScanner::new(erasure_dynamo, erasure_s3, 3),
        }),
    };
    let admin_env = vec![("TOMBSTONES_TABLE", tombstones.clone()), ("ERASURE_QUEUE_URL", queue.clone())];
    let data = AwsPersonalData::new(stack.dynamo.clone(), s3.clone());
    let admin_stack = stack.signing_as(&roles, "admin");
    Restorable { stack, map, eraser, admin_env, admin_stack, data, s3, sqs, bucket, tombstones, queue }
}

impl Restorable {
    fn admin(&self) -> AwsAdmin {
        let settings =
            privacy_shared::config::AdminSettings::load(&self.admin_stack.env(&self.admin_env)).unwrap();
        admin::Admin::with_sdk(&self.admin_stack.sdk, settings, self.stack.clock.clone())
    }

    /// The staff API over HTTP with the local key, as `make staff` reaches it.
    async fn admin_url(&self) -> String {
        let mut env = self.admin_env.clone();
        env.push(("STAFF_LOCAL_KEY", KEY.to_owned()));
        env.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000".to_owned()));
        let settings = privacy_shared::config::AdminSettings::load(&self.admin_stack.env(&env)).unwrap();
        crate::staff_command_line::serve(admin::Admin::with_sdk(
            &self.admin_stack.sdk,
            settings,
            self.stack.clock.clone(),
        ))
        .await
    }

    /// A verified request of `address`, written through the store (no mail): with a name, so
    /// that what an erasure scrubs from it shows.
    async fn verified(&self, address: &str, kind: RequestKind) -> RequestRecord {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let region = Region::parse("NL").unwrap();
        let now = self.stack.clock.now();
        let email = EmailAddress::parse(address).unwrap();
        let deadlines = calendar.deadlines(region.regime(), now);
        let mut record =
            RequestRecord::received(RequestId::generate(), kind, region, Language::Nl, email, now, deadlines);
        record.name = Some("Alice Janssen".into());
        let token = TokenHash::of_secret("t");
        let store = self.stack.deps().store;
        let live = LiveToken { token_hash: token.clone(), expires_at: now + Duration::hours(1) };
        store.create(&record, &live).await.unwrap();
        store
            .transition(&record, Change::new(Transition::Verify { token }, now, Actor::Requester))
            .await
            .unwrap()
    }

    /// How much of one person each AWS source holds (records found by their keys, objects).
    async fn holdings(&self, email: &str, user_id: &str) -> Vec<(String, usize)> {
        let person = Person { email: EmailAddress::parse(email).unwrap(), user_id: Some(user_id.to_owned()) };
        let mut holdings = Vec::new();
        for source in self.map.sources() {
            let key = person.key_for(source.find_by()).unwrap();
            let count = match &source.location {
                Location::Table { .. } => self.data.records(source, key).await.unwrap().len(),
                Location::Objects { .. } => self.data.objects(source, key).await.unwrap().len(),
                _ => continue,
            };
            holdings.push((source.id.clone(), count));
        }
        holdings
    }

    /// What a backup holds: every item of every table source, and every object of every object
    /// source with its body.
    async fn backup(&self) -> Backup {
        let mut items = Vec::new();
        let mut objects = Vec::new();
        for source in self.map.sources() {
            match &source.location {
                Location::Table { table, .. } => {
                    let out = self.stack.dynamo.scan().table_name(table).send().await.unwrap();
                    assert!(out.last_evaluated_key.is_none(), "a sample table fits a page");
                    for item in out.items.unwrap_or_default() {
                        items.push((table.clone(), item));
                    }
                }
                Location::Objects { bucket, .. } => {
                    let listed = self.s3.list_objects_v2().bucket(bucket).send().await.unwrap();
                    for object in listed.contents() {
                        let key = object.key().unwrap().to_owned();
                        let body = self.s3.get_object().bucket(bucket).key(&key).send().await.unwrap();
                        let bytes = body.body.collect().await.unwrap().into_bytes().to_vec();
                        objects.push((bucket.clone(), key, bytes));
                    }
                }
                _ => {}
            }
        }
        Backup { items, objects }
    }

    /// Puts a backup back, as a restore would (what was written since is overwritten).
    async fn restore(&self, backup: &Backup) {
        for (table, item) in &backup.items {
            self.stack.dynamo.put_item().table_name(table).set_item(Some(item.clone())).send().await.unwrap();
        }
        for (bucket, key, body) in &backup.objects {
            self.s3.put_object().bucket(bucket).key(key).body(body.clone().into()).send().await.unwrap();
        }
    }

    async fn put(&self, source: &str, item: Value) {
        let Location::Table { table, .. } = &self.map.source(source).unwrap().location else { panic!() };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(item).unwrap();
        self.stack.dynamo.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
    }

    async fn tombstone_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let out =
            self.stack.dynamo.scan().table_name(&self.tombstones).consistent_read(true).send().await.unwrap();
        out.items
            .unwrap_or_default()
            .into_iter()
            .filter(|i| matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("TOMB#")))
            .collect()
    }

    async fn erase(&self, address: &str) -> (RequestRecord, ErasureReceipt) {
        let request = self.verified(address, RequestKind::Deletion).await;
        let job = ErasureJob { request_id: request.id, version: request.version, change: DataChange::Erase };
        erasure::run(&self.eraser, &job).await.unwrap();
        let done = self.stack.deps().store.get(request.id).await.unwrap().unwrap();
        assert_eq!(done.status, Status::Completed);
        let receipt = done.receipt.clone().unwrap();
        (done, receipt)
    }

    /// Plays the erasure queue's event source mapping until the queue is empty, each message
    /// given one second (so each invocation takes one step); returns the invocations.
    async fn drain(&self) -> usize {
        let mut invocations = 0;
        loop {
            let received = self.sqs.receive_message().queue_url(&self.queue).send().await.unwrap();
            let Some(message) = received.messages().first() else { return invocations };
            let record = json!({"messageId": message.message_id(), "body": message.body()});
            let event: erasure::SqsEvent = serde_json::from_value(json!({"Records": [record]})).unwrap();
            let mut context = Context::default();
            let deadline = SystemTime::now() + std::time::Duration::from_secs(1);
            context.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
            let response = erasure::handle(&self.eraser, LambdaEvent::new(event, context)).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "a replay's part failed: {response:?}");
            let receipt = message.receipt_handle().unwrap();
            self.sqs.delete_message().queue_url(&self.queue).receipt_handle(receipt).send().await.unwrap();
            invocations += 1;
            assert!(invocations < 300, "the replay ends");
        }
    }

    /// Starts a replay through the staff API and runs it to its end; returns the receipt.
    async fn replay(&self, since: DateTime<Utc>) -> (Value, usize) {
        let admin = self.admin();
        let (status, started) =
            staff(&admin, "POST", "/staff/erasures/replays", Some(json!({"since": rfc3339(since)}))).await;
        assert_eq!(status, 202, "{started}");
        assert_eq!(started["status"], "queued");
        let invocations = self.drain().await;
        let run = started["run_id"].as_str().unwrap();
        let (status, receipt) = staff(&admin, "GET", &format!("/staff/erasures/replays/{run}"), None).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["status"], "finished", "{receipt}");
        (receipt, invocations)
    }
}

struct Backup {
    items: Vec<(String, HashMap<String, AttributeValue>)>,
    objects: Vec<(String, String, Vec<u8>)>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn counts(receipt: &Value, source: &str) -> (u64, u64) {
    let found = receipt["sources"].as_array().unwrap().iter().find(|s| s["source"] == source);
    found.map_or((0, 0), |s| (s["deleted"].as_u64().unwrap(), s["anonymised"].as_u64().unwrap()))
}

fn nothing_again(receipt: &Value) {
    for source in receipt["sources"].as_array().unwrap() {
        assert_eq!(
            (source["deleted"].as_u64(), source["anonymised"].as_u64()),
            (Some(0), Some(0)),
            "{receipt}"
        );
    }
    assert_eq!(receipt["requests_scrubbed"], 0, "{receipt}");
    assert_eq!(receipt["exports_deleted"], 0, "{receipt}");
}

#[tokio::test]
async fn an_erasure_leaves_one_tombstone_of_keyed_hashes_and_a_redelivery_keeps_it_as_it_was() {
    let world = restorable().await;
    let access = world.verified("alice@example.com", RequestKind::Access).await;
    let request = world.verified("alice@example.com", RequestKind::Deletion).await;
    let job = ErasureJob { request_id: request.id, version: request.version, change: DataChange::Erase };
    erasure::run(&world.eraser, &job).await.unwrap();
    let items = world.tombstone_items().await;
    assert_eq!(items.len(), 1, "one tombstone per erasure");
    let item: Value = serde_dynamo::from_item(items[0].clone()).unwrap();
    let text = item.to_string().to_lowercase();
    for plain in ["alice", "u-alice", "janssen"] {
        assert!(!text.contains(plain), "the tombstone holds no plain identifier ({plain}): {text}");
    }
    let key = TombstoneKey::parse(TOMBSTONE_KEY).unwrap();
    assert_eq!(item["email_hash"], key.email(&EmailAddress::parse("Alice@Example.com").unwrap()).as_str());
    assert_eq!(item["user_id_hashes"], json!([key.user_id("u-alice").as_str()]));
    let mut requests: Vec<String> = serde_json::from_value(item["requests"].clone()).unwrap();
    requests.sort();
    let mut expected = vec![access.id.to_string(), request.id.to_string()];
    expected.sort();
    assert_eq!(requests, expected, "the requests the erasure scrubbed, by their ids");
    let erased_at = world.stack.clock.now();
    let ttl = item["ttl"].as_i64().unwrap();
    assert_eq!(
        ttl,
        (erased_at + Duration::days(42)).timestamp(),
        "kept as long as the longest backup, and a week"
    );

    // A redelivery writes nothing new: the first moment stands.
    world.stack.clock.advance(Duration::hours(2));
    erasure::run(&world.eraser, &job).await.unwrap();
    let book = DynamoTombstones::new(world.stack.dynamo.clone(), &world.tombstones);
    let later = Tombstone::of(
        &key,
        request.id,
        &EmailAddress::parse("alice@example.com").unwrap(),
        None,
        &[],
        world.stack.clock.now(),
        TombstoneRetention::default(),
    );
    book.put_tombstone(&later).await.unwrap();
    assert_eq!(world.tombstone_items().await, items, "still one tombstone, unchanged");
}

#[tokio::test]
async fn a_replay_after_a_restore_erases_the_person_again_keeps_new_data_and_others_and_a_second_finds_nothing()
 {
    let world = restorable().await;
    let alice_before = world.holdings("alice@example.com", "u-alice").await;
    let bob_before = world.holdings("bob@example.com", "u-bob").await;
    assert!(alice_before.iter().all(|(_, n)| *n > 0), "Alice is in every AWS source: {alice_before:?}");
    // An earlier request of hers, with its export.
    let access = world.verified("alice@example.com", RequestKind::Access).await;
    let export = format!("exports/{}/export.zip", access.id);
    world
        .s3
        .put_object()
        .bucket(&world.bucket)
        .key(&export)
        .body(b"zip".to_vec().into())
        .send()
        .await
        .unwrap();
    let access_item = world.stack.item(&format!("REQ#{}", access.id), "META").await.unwrap();

    // The backup, then the erasure an hour later.
    let backup_at = world.stack.clock.now();
    let backup = world.backup().await;
    world.stack.clock.advance(Duration::hours(1));
    let (_, erased) = world.erase("alice@example.com").await;
    assert!(world.holdings("alice@example.com", "u-alice").await.iter().all(|(_, n)| *n == 0));

    // The restore brings her back: the sources, her earlier request unscrubbed, its export.
    world.stack.clock.advance(Duration::hours(1));
    world.restore(&backup).await;
    world
        .stack
        .dynamo
        .put_item()
        .table_name(&world.stack.table)
        .set_item(Some(access_item))
        .send()
        .await
        .unwrap();
    world
        .s3
        .put_object()
        .bucket(&world.bucket)
        .key(&export)
        .body(b"zip".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        world.holdings("alice@example.com", "u-alice").await,
        alice_before,
        "the backup remembers her"
    );
    // After the restore, before the replay, she signs up again: a new account (a new user id, a
    // device of it) and a new newsletter subscription. That is new data, not what was erased.
    world.stack.clock.advance(Duration::minutes(10));
    let now = rfc3339(world.stack.clock.now());
    world
        .put("accounts", json!({"email": "alice@example.com", "user_id": "u-alice-new", "name": "Alice", "updated_at": now}))
        .await;
    world
        .put("devices", json!({"device_id": "d-alice-new", "user_id": "u-alice-new", "last_seen_at": now}))
        .await;
    world
        .put("marketing", json!({"email": "alice@example.com", "newsletter": true, "subscribed_at": now}))
        .await;

    // A replay from after the erasure applies no tombstone: she stays restored.
    let (late, _) = world.replay(world.stack.clock.now() - Duration::minutes(30)).await;
    assert_eq!(late["tombstones_considered"], 0, "{late}");
    nothing_again(&late);
    assert!(world.holdings("alice@example.com", "u-alice").await.iter().any(|(_, n)| *n > 0));

    // From the backup's moment: everything the erasure erased is erased again.
    let (receipt, invocations) = world.replay(backup_at).await;
    assert!(invocations > 3, "a page at a time, across invocations: {invocations}");
    assert_eq!(receipt["tombstones_considered"], 1, "{receipt}");
    for source in &erased.sources {
        let again = counts(&receipt, &source.source);
        match source.source.as_str() {
            // Overwritten by her new account and subscription: nothing of the erased data left.
            "accounts" | "marketing" => assert_eq!(again, (0, 0), "{}: new data is kept", source.source),
            _ => assert_eq!(
                again,
                (u64::from(source.deleted), u64::from(source.anonymised)),
                "{}: as the erasure did",
                source.source
            ),
        }
    }
    assert_eq!(receipt["requests_scrubbed"], 1, "her earlier request held her name again: {receipt}");
    assert_eq!(receipt["exports_deleted"], 1, "{receipt}");
    assert_eq!(receipt["ask_by_hand"], json!([]), "the AWS-only map has no source outside AWS");

    let left: Vec<(String, usize)> = world.holdings("alice@example.com", "u-alice").await;
    for (source, n) in &left {
        let expected = usize::from(source == "accounts" || source == "marketing");
        assert_eq!(*n, expected, "{source}: {left:?}");
    }
    let accounts = world.map.source("accounts").unwrap();
    let account = world.data.records(accounts, "alice@example.com").await.unwrap();
    assert_eq!(account[0]["user_id"], "u-alice-new", "the new account is hers to keep");
    let devices = world.map.source("devices").unwrap();
    assert_eq!(world.data.records(devices, "u-alice-new").await.unwrap().len(), 1, "and its device");
    assert_eq!(world.holdings("bob@example.com", "u-bob").await, bob_before, "Bob is untouched");
    assert_eq!(world.stack.deps().store.get(access.id).await.unwrap().unwrap().name, None);
    let versions =
        world.s3.list_object_versions().bucket(&world.bucket).prefix(&export).send().await.unwrap();
    assert!(versions.versions().is_empty() && versions.delete_markers().is_empty(), "every version is gone");

    // A second replay finds nothing: it is idempotent.
    let (second, _) = world.replay(backup_at).await;
    assert_eq!(second["tombstones_considered"], 1);
    nothing_again(&second);
}

#[tokio::test]
async fn staff_replay_erasures_starts_the_run_follows_it_and_prints_its_receipt() {
    let world = restorable().await;
    let backup_at = world.stack.clock.now();
    let backup = world.backup().await;
    world.stack.clock.advance(Duration::hours(1));
    world.erase("carol@example.org").await;
    world.restore(&backup).await;
    let base = world.admin_url().await;

    let since = rfc3339(backup_at);
    let (code, started, err) = cli(&base, &["replay-erasures", "--since", &since, "--no-wait"]).await;
    assert_eq!(code, 0, "{err}");
    let run = started.split("--run ").nth(1).unwrap().trim().to_owned();
    assert!(started.contains("queued"), "{started}");
    let follow = ["replay-erasures", "--run", run.as_str(), "--poll-ms", "20"];
    let ((code, out, err), invocations) = tokio::join!(cli(&base, &follow), world.drain());
    assert_eq!(code, 0, "{err}");
    assert!(invocations > 0);
    for part in
        ["finished", "1 erasures applied again", "accounts", "DELETED AGAIN", "Requests scrubbed again"]
    {
        assert!(out.contains(part), "{part}: {out}");
    }
    assert!(!out.contains("carol"), "the receipt names nobody: {out}");
    assert!(world.holdings("carol@example.org", "u-carol").await.iter().all(|(_, n)| *n == 0));

    let (code, _, err) = cli(&base, &["replay-erasures", "--since", "20-11-2026"]).await;
    assert_eq!(code, 2, "a malformed date is refused before anything is sent: {err}");
}

#[tokio::test]
async fn a_replay_is_refused_from_the_future_or_beyond_the_tombstones_retention_and_an_unknown_run_is_not_found()
 {
    let world = restorable().await;
    let admin = world.admin();
    let now = world.stack.clock.now();
    for (since, code) in [
        (rfc3339(now + Duration::hours(1)), "since_in_future"),
        (rfc3339(now - Duration::days(43)), "since_beyond_retention"),
        ("last week".to_owned(), "invalid_field"),
    ] {
        let (status, body) =
            staff(&admin, "POST", "/staff/erasures/replays", Some(json!({"since": since}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some(code)), "{since}: {body}");
    }
    let (status, _) =
        staff(&admin, "POST", "/staff/erasures/replays", Some(json!({"since": "2026-11-20", "x": 1}))).await;
    assert_eq!(status, 422, "unknown fields are refused");
    let unknown = privacy_shared::tombstones::ReplayRunId::generate();
    let (status, _) = staff(&admin, "GET", &format!("/staff/erasures/replays/{unknown}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = staff(&admin, "GET", "/staff/erasures/replays/not-a-run", None).await;
    assert_eq!(status, 404);
    let (status, _) = staff(
        &Local::new().staff_api(),
        "POST",
        "/staff/erasures/replays",
        Some(json!({"since": "2026-11-20"})),
    )
    .await;
    assert_eq!(status, 503, "the in-memory stack keeps no tombstones");

    // The staff API's role may write replay runs, never a tombstone (dynamodb:LeadingKeys).
    let dynamo = aws_sdk_dynamodb::Client::new(&world.admin_stack.sdk);
    let item = |pk: &str| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
            ("sk".to_owned(), AttributeValue::S("TOMBSTONE".to_owned())),
        ])
    };
    let forged = dynamo.put_item().table_name(&world.tombstones).set_item(Some(item("TOMB#x"))).send().await;
    let error = forged.expect_err("the admin role may not write a tombstone");
    assert_eq!(error.as_service_error().and_then(|e| e.meta().code()), Some("AccessDeniedException"));
    let run = dynamo.put_item().table_name(&world.tombstones).set_item(Some(item("REPLAY#x"))).send().await;
    assert!(run.is_ok(), "{run:?}");
}

/// Runs `staff --endpoint <base> --local-key <key> args...`; returns exit code, stdout, stderr.
async fn cli(base: &str, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["staff", "--endpoint", base, "--local-key", KEY];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = staff_cli::run(argv, staff_cli::CredentialSource::AwsChain, &mut out, &mut err).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}
