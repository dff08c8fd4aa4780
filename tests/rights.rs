//! Every right in the policy, end to end on the local stack's event path: submit, verify (or
//! not, for opt-outs), the pump delivering the stream to `dispatch` and the queues to `export` and
//! `erasure` (every delivery twice), then the stored data, the emails and the audit trail.

use anyhow::Result;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use devstack::pump::{Invoker, Pump, QueueMapping, StreamMapping};
use devstack::stream::StreamReader;
use privacy_shared::datamap::{DataMap, Source};
use privacy_shared::domain::{Event, RequestId, RequestRecord, Status};
use privacy_shared::jobs::{DataChange, ErasureJob};
use privacy_shared::sources::{
    AwsPersonalData, Cursor, Page, Person, PersonalData, SourceError, StoredObject, Written,
};
use privacy_shared::store::{DynamoStore, SuppressionList};

type AwsExporter = export::Exporter<DynamoStore, AwsPersonalData>;
type AwsEraser = erasure::Eraser<DynamoStore, AwsPersonalData>;

/// The three event functions, in-process, each delivery made twice (as Lambda may).
struct InProcess {
    dispatcher: AwsDispatcher,
    exporter: AwsExporter,
    eraser: AwsEraser,
}

impl Invoker for InProcess {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        let mut last = Value::Null;
        for _ in 0..2 {
            let context = Context::default();
            last = match function {
                "dispatch" => {
                    let event: StreamEvent = serde_json::from_value(payload.clone())?;
                    serde_json::to_value(
                        dispatch::handle(&self.dispatcher, LambdaEvent::new(event, context)).await?,
                    )?
                }
                "export" => {
                    let event: export::SqsEvent = serde_json::from_value(payload.clone())?;
                    serde_json::to_value(
                        export::handle(&self.exporter, LambdaEvent::new(event, context)).await?,
                    )?
                }
                "erasure" => {
                    let event: erasure::SqsEvent = serde_json::from_value(payload.clone())?;
                    serde_json::to_value(
                        erasure::handle(&self.eraser, LambdaEvent::new(event, context)).await?,
                    )?
                }
                other => anyhow::bail!("no function {other}"),
            };
        }
        Ok(last)
    }
}

/// The emulator-backed stack with every function under its own role and a pump for the event
/// functions (also the privacy center's journey, `privacy_center_journey`).
pub(crate) struct World {
    pub(crate) stack: Stack,
    /// Intake and verify, each signing with its own role (the event functions in `pump` too).
    pub(crate) intake: Stack,
    pub(crate) verify: Stack,
    pub(crate) download: Stack,
    map: DataMap,
    data: AwsPersonalData,
    s3: aws_sdk_s3::Client,
    pub(crate) bucket: String,
    staff: String,
    erasure_queue: String,
    pump: Pump<InProcess>,
}

pub(crate) async fn world() -> World {
    let stack = Stack::new().await;
    let map = stack.data_map().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let export_queue =
        devstack::provision::create_queue(&sqs, &format!("export-{tag}.fifo"), None).await.unwrap();
    let erasure_queue =
        devstack::provision::create_queue(&sqs, &format!("erasure-{tag}.fifo"), None).await.unwrap();
    let bucket = format!("x{tag}-exports");
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let staff = unique_address("staff");
    let data = AwsPersonalData::new(stack.dynamo.clone(), s3.clone());
    // Every function runs under its own role from the template: a call it does not allow fails
    // here as it would in AWS.
    let export_queue_name = export_queue.rsplit('/').next().unwrap().to_owned();
    let erasure_queue_name = erasure_queue.rsplit('/').next().unwrap().to_owned();
    let roles = stack
        .roles(&[
            ("ExportQueue", &export_queue_name),
            ("ErasureQueue", &erasure_queue_name),
            ("ExportBucket", &bucket),
        ])
        .await;
    let as_export = stack.signing_as(&roles, "export");
    let export_s3 = devstack::provision::s3_client(&as_export.sdk);
    let as_erasure = stack.signing_as(&roles, "erasure");
    let erasure_s3 = devstack::provision::s3_client(&as_erasure.sdk);
    let functions = InProcess {
        dispatcher: dispatcher_with(
            &stack.signing_as(&roles, "dispatch"),
            &export_queue,
            &erasure_queue,
            &staff,
        )
        .await,
        exporter: export::Exporter {
            store: as_export.deps().store,
            data: AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&as_export.sdk), export_s3.clone()),
            map: map.clone(),
            s3: export_s3,
            target: export::ExportTarget { bucket: bucket.clone(), kms_key_id: None },
            clock: stack.clock.clone(),
            outside: crate::support::no_outside(&stack.sdk),
            calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
        },
        eraser: eraser(&as_erasure, &map, &erasure_s3, &bucket),
    };
    let stream = StreamMapping {
        reader: StreamReader::open(&stack.sdk, &stack.table).await.unwrap(),
        function: "dispatch".into(),
        batch_size: 10,
        max_retries: 3,
        on_failure_queue_url: None,
    };
    let mut queues = Vec::new();
    for (url, function) in [(&export_queue, "export"), (&erasure_queue, "erasure")] {
        queues.push(QueueMapping {
            arn: devstack::provision::queue_arn(&sqs, url).await.unwrap(),
            url: url.clone(),
            function: function.into(),
            batch_size: 1,
            retry_after_seconds: 0,
            wait_seconds: 0,
        });
    }
    let pump = Pump::new(functions, &stack.sdk, Some(stream), queues);
    let intake = stack.signing_as(&roles, "intake");
    let verify = stack.signing_as(&roles, "verify");
    let download = stack.signing_as(&roles, "download");
    World { stack, intake, verify, download, map, data, s3, bucket, staff, erasure_queue, pump }
}

fn eraser(stack: &Stack, map: &DataMap, s3: &aws_sdk_s3::Client, bucket: &str) -> AwsEraser {
    erasure::Eraser {
        store: stack.deps().store,
        data: AwsPersonalData::new(aws_sdk_dynamodb::Client::new(&stack.sdk), s3.clone()),
        map: map.clone(),
        s3: s3.clone(),
        export_bucket: bucket.to_owned(),
        clock: stack.clock.clone(),
        outside: crate::support::no_outside(&stack.sdk),
        tombstones: None,
        continuation: None,
    }
}

impl World {
    pub(crate) async fn drain(&mut self) {
        let total = self.pump.drain(80).await.unwrap();
        assert_eq!(total.stream_records_given_up, 0, "{total:?}");
    }

    /// Submits through intake and verifies with the emailed link; returns the id.
    async fn verified(&self, body: Value) -> RequestId {
        let address = body["email"].as_str().unwrap().to_owned();
        let (status, answer) = submit(&self.intake.deps(), &body.to_string()).await;
        assert_eq!(status, 202, "{answer}");
        // The seeded people's mailboxes are shared with the tests running beside this one.
        let submitted = answer["request_id"].as_str().unwrap().to_owned();
        let mails = self.stack.mail_to(&address).await;
        let (id, token) = mails.iter().map(link_parts).rfind(|(id, _)| *id == submitted).unwrap();
        assert_eq!(verify_with(&self.verify.verifier(), &id, &token).await.0, 200);
        RequestId::parse(&id).unwrap()
    }

    /// The last mail to `address` about request `id` (other tests mail the seeded people too).
    async fn mail_about(&self, address: &str, id: RequestId) -> devstack::mailbox::SentMail {
        let mails = self.stack.mail_to(address).await;
        mails.into_iter().rfind(|m| m.body.contains(&id.to_string())).expect("a mail about the request")
    }

    async fn record(&self, id: RequestId) -> RequestRecord {
        self.stack.deps().store.get(id).await.unwrap().unwrap()
    }

    async fn events(&self, id: RequestId) -> Vec<Event> {
        self.stack.deps().store.audit_trail(id).await.unwrap().into_iter().map(|e| e.event).collect()
    }

    /// How much of one person each source holds: (source id, records or objects).
    async fn holdings(&self, email: &str, user_id: &str) -> Vec<(String, usize)> {
        let person = Person {
            email: privacy_shared::domain::EmailAddress::parse(email).unwrap(),
            user_id: Some(user_id.to_owned()),
        };
        let mut holdings = Vec::new();
        for source in self.map.sources() {
            let key = person.key_for(source.find_by()).unwrap();
            let count = match &source.location {
                privacy_shared::datamap::Location::Table { .. } => {
                    self.data.records(source, key).await.unwrap().len()
                }
                privacy_shared::datamap::Location::Objects { .. } => {
                    self.data.objects(source, key).await.unwrap().len()
                }
                // Not in the AWS-only map these tests run with.
                _ => continue,
            };
            holdings.push((source.id.clone(), count));
        }
        holdings
    }

    async fn exports(&self) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket(&self.bucket).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }
}

fn nothing(holdings: &[(String, usize)]) -> bool {
    holdings.iter().all(|(_, n)| *n == 0)
}

#[tokio::test]
async fn an_erasure_removes_one_person_out_of_several_and_the_receipt_says_what_was_kept_and_why() {
    let mut world = world().await;
    let bob_before = world.holdings("bob@example.com", "u-bob").await;
    // An earlier access request leaves an export and a download link behind.
    let access = world
        .verified(json!({"email": "alice@example.com", "kind": "access", "region": "NL", "name": "Alice J"}))
        .await;
    world.drain().await;
    assert_eq!(world.exports().await.len(), 1);
    // The emailed link, served by the download function under its role: the presigned URL it
    // answers with is signed by that role, so the role must be able to read the export.
    let link = world
        .mail_about("alice@example.com", access)
        .await
        .links()
        .into_iter()
        .find(|l| l.contains("/download?token="))
        .expect("a download link");
    let downloads = download::Downloads {
        store: world.download.deps().store,
        s3: devstack::provision::s3_client(&world.download.sdk),
        bucket: world.bucket.clone(),
        clock: world.stack.clock.clone(),
        status: download::StatusPages::from_config(&world.stack.config()),
    };
    let redirect = download::handle(&downloads, get(&link)).await.unwrap();
    assert_eq!(redirect.status(), 302);
    let presigned = redirect.headers()["location"].to_str().unwrap().to_owned();
    let fetched = reqwest::get(&presigned).await.unwrap();
    assert_eq!(fetched.status(), 200, "the download role reads exports/*");

    let deletion =
        world.verified(json!({"email": "alice@example.com", "kind": "deletion", "region": "NL"})).await;
    world.drain().await;

    let done = world.record(deletion).await;
    assert_eq!(done.status, Status::Completed, "{done:?}");
    assert!(nothing(&world.holdings("alice@example.com", "u-alice").await), "nothing of Alice is left");
    assert_eq!(world.holdings("bob@example.com", "u-bob").await, bob_before, "Bob is untouched");
    let look_alike = world
        .s3
        .list_objects_v2()
        .bucket(format!("{}recordings", world.stack.data_prefix))
        .prefix("recordings/u-alice-2/")
        .send()
        .await
        .unwrap();
    assert_eq!(look_alike.contents().len(), 1, "a look-alike prefix is someone else's");
    assert!(world.exports().await.is_empty(), "the earlier export is gone");
    assert!(world.stack.item(&format!("REQ#{access}"), "DOWNLOAD").await.is_none(), "and its link");
    assert_eq!(world.record(access).await.name, None, "earlier requests keep no name");
    assert!(
        world.stack.item(&format!("REQ#{deletion}"), "ERASURE").await.is_none(),
        "progress is cleaned up"
    );

    let receipt = done.receipt.expect("a receipt");
    let cdr = receipt.sources.iter().find(|s| s.source == "call_detail_records").unwrap();
    assert_eq!((cdr.deleted, cdr.anonymised), (0, 3));
    assert!(cdr.kept_because.as_deref().is_some_and(|r| r.contains("25 months")));
    assert_eq!(receipt.sources.iter().find(|s| s.source == "recordings").unwrap().deleted, 2);
    assert_eq!(receipt.exports_deleted, 1);
    assert!(receipt.processors_instructed.contains(&"service_providers".to_owned()));

    let mail = world.mail_about("alice@example.com", deletion).await;
    assert_eq!(mail.subject, "Uw privacyverzoek is afgehandeld");
    // In Dutch throughout: the data map's words for each source, with units and the law a kept
    // record rests on, and the record of the request.
    for expected in [
        "Wat wij hebben verwijderd",
        "<li style=\"margin-bottom:8px;\">Opnamen: 2 bestanden verwijderd.",
        "Wat wij hebben bewaard, en waarom",
        "<li style=\"margin-bottom:8px;\">Gesprekken: 3 records bewaard, niet meer aan u gekoppeld.",
        "25 maanden na elk gesprek",
        "Rechtsgrond: Artikel 17, derde lid, onder e, AVG",
        "dienstverleners die in onze opdracht werken",
        "Nimbus Hosting B.V. (hosting en opslag)",
        "de kopie van uw gegevens verwijderd die wij eerder voor u hadden klaargezet",
        "Wij bewaren 24 maanden een vastlegging van dit verzoek",
    ] {
        assert!(mail.body.contains(expected), "{expected}: {}", mail.body);
    }
    for english in ["25 months", "Records of", "service providers", "contact_data", "Call detail records"] {
        assert!(!mail.body.contains(english), "{english}: {}", mail.body);
    }
    let wording = receipt.wording.as_ref().expect("the receipt keeps its words");
    assert_eq!(wording.language, privacy_shared::domain::Language::Nl);
    assert_eq!(wording.source("recordings").map(|s| s.unit), Some(privacy_shared::domain::ErasedUnit::File));
    let trail = world.stack.deps().store.audit_trail(deletion).await.unwrap();
    let events: Vec<Event> = trail.iter().map(|e| e.event).collect();
    assert_eq!(
        events,
        vec![Event::Submitted, Event::Verified, Event::Triaged, Event::WorkStarted, Event::Completed]
    );
    let text = serde_json::to_string(&trail).unwrap();
    assert!(!text.contains("alice") && !text.contains("u-alice"), "the audit trail holds no copy: {text}");
}

/// The real source access, except that the first delete or anonymisation in one source fails,
/// as if the function died there.
struct CrashesOnce {
    inner: AwsPersonalData,
    source: &'static str,
    crashed: AtomicBool,
}

impl CrashesOnce {
    fn crash(&self, source: &Source) -> Result<(), SourceError> {
        if source.id == self.source && !self.crashed.swap(true, Ordering::SeqCst) {
            return Err(SourceError::Unreadable(source.id.clone()));
        }
        Ok(())
    }
}

impl PersonalData for CrashesOnce {
    async fn records_page(
        &self,
        source: &Source,
        key: &str,
        cursor: Option<Cursor>,
    ) -> Result<Page, SourceError> {
        self.inner.records_page(source, key, cursor).await
    }
    async fn objects(&self, source: &Source, key: &str) -> Result<Vec<StoredObject>, SourceError> {
        self.inner.objects(source, key).await
    }
    async fn delete_record(&self, source: &Source, record: &Value) -> Result<Written, SourceError> {
        self.crash(source)?;
        self.inner.delete_record(source, record).await
    }
    async fn anonymise_record(
        &self,
        source: &Source,
        record: &Value,
        attributes: &[String],
    ) -> Result<Written, SourceError> {
        self.crash(source)?;
        self.inner.anonymise_record(source, record, attributes).await
    }
    async fn delete_object(&self, source: &Source, person: &str, key: &str) -> Result<(), SourceError> {
        self.crash(source)?;
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

#[tokio::test]
async fn an_erasure_that_dies_between_two_sources_finishes_on_redelivery_without_touching_anyone_else() {
    let world = world().await;
    let alice_before = world.holdings("alice@example.com", "u-alice").await;
    let id = world.verified(json!({"email": "bob@example.com", "kind": "deletion", "region": "US-CA"})).await;
    // Only the stream: the erasure job stays on its queue, delivered by hand below.
    let mut stream = StreamReader::open(&world.stack.sdk, &world.stack.table).await.unwrap();
    let dispatcher =
        dispatcher_with(&world.stack, "http://127.0.0.1:1/unused.fifo", &world.erasure_queue, &world.staff)
            .await;
    for _ in 0..3 {
        let records = stream.poll().await.unwrap();
        let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        dispatch::handle(&dispatcher, LambdaEvent::new(event, Context::default())).await.unwrap();
    }
    let job =
        ErasureJob { request_id: id, version: world.record(id).await.version, change: DataChange::Erase };

    let real = eraser(&world.stack, &world.map, &world.s3, &world.bucket);
    let crashing = erasure::Eraser {
        store: world.stack.deps().store,
        data: CrashesOnce {
            inner: world.data.clone(),
            source: "call_detail_records",
            crashed: AtomicBool::new(false),
        },
        map: world.map.clone(),
        s3: world.s3.clone(),
        export_bucket: world.bucket.clone(),
        clock: world.stack.clock.clone(),
        outside: crate::support::no_outside(&world.stack.sdk),
        tombstones: None,
        continuation: None,
    };
    assert!(erasure::run(&crashing, &job).await.is_err(), "dies in the third source");
    let halfway = world.holdings("bob@example.com", "u-bob").await;
    assert_eq!(halfway.iter().find(|(s, _)| s == "accounts").unwrap().1, 0, "the account went first");
    assert!(halfway.iter().find(|(s, _)| s == "call_detail_records").unwrap().1 > 0, "the rest did not");
    assert_eq!(world.record(id).await.status, Status::InProgress);

    // Redelivered (twice): it resumes with the user id it kept, although the account is gone.
    erasure::run(&real, &job).await.unwrap();
    erasure::run(&real, &job).await.unwrap();
    assert!(nothing(&world.holdings("bob@example.com", "u-bob").await));
    assert_eq!(world.holdings("alice@example.com", "u-alice").await, alice_before, "Alice is untouched");
    let receipt = world.record(id).await.receipt.unwrap();
    assert_eq!(receipt.sources.iter().find(|s| s.source == "accounts").unwrap().deleted, 1, "counted once");
    assert_eq!(receipt.sources.iter().find(|s| s.source == "call_detail_records").unwrap().anonymised, 2);
    assert_eq!(world.events(id).await.iter().filter(|e| **e == Event::Completed).count(), 1);
}

#[tokio::test]
async fn opt_outs_need_no_verification_and_suppress_the_address_at_once() {
    let mut world = world().await;
    let address = unique_address("opt-out");
    let deps = world.intake.deps();
    let (status, first) =
        submit(&deps, &json!({"email": address, "kind": "unsubscribe", "region": "NL"}).to_string()).await;
    assert_eq!((status, first["status"].as_str()), (202, Some("completed")));
    let (_, sale) =
        submit(&deps, &json!({"email": address, "kind": "opt_out_of_sale", "region": "US-CA"}).to_string())
            .await;
    assert_eq!(sale["status"], "completed");
    let email = privacy_shared::domain::EmailAddress::parse(&address).unwrap();
    for list in [SuppressionList::Marketing, SuppressionList::Sale] {
        assert!(
            privacy_shared::store::is_suppressed(&world.stack.deps().store, &email, list).await.unwrap(),
            "{list:?} at once"
        );
    }
    let (_, repeat) = submit(
        &deps,
        &json!({"email": address.to_uppercase(), "kind": "unsubscribe", "region": "NL"}).to_string(),
    )
    .await;
    assert_eq!(repeat["request_id"], first["request_id"], "a repeat answers with the first request");

    world.drain().await;
    let mails = world.stack.mail_to(&address).await;
    assert_eq!(mails.len(), 2, "one acknowledgement each, none for the repeat");
    assert!(
        mails.iter().any(|m| m.body.contains("blokkeerlijst")),
        "the unsubscribe is acknowledged in Dutch"
    );
    assert!(mails.iter().any(|m| m.body.contains("we do not sell or share your personal data")));
    assert!(mails.iter().all(|m| !m.body.contains("/verify")), "nothing to verify");

    let api = staff_api(&world.stack);
    let (status, check) =
        staff(&api, "POST", "/staff/suppressions/check", Some(json!({"email": address}))).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(
        (check["marketing"]["suppressed"].as_bool(), check["sale"]["suppressed"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(!check.to_string().contains(&address), "the answer does not echo the address");
    let (_, clean) =
        staff(&api, "POST", "/staff/suppressions/check", Some(json!({"email": "someone.else@example.com"})))
            .await;
    assert_eq!(clean["marketing"]["suppressed"], false);
}

#[tokio::test]
async fn an_enterprise_managed_account_is_referred_to_its_administrator() {
    let mut world = world().await;
    let id = world.verified(json!({"email": "dave@acme.example", "kind": "access", "region": "GB"})).await;
    world.drain().await;
    let record = world.record(id).await;
    assert_eq!(
        (record.status, record.closed_reason.as_deref()),
        (Status::Referred, Some(privacy_shared::domain::ENTERPRISE_REASON))
    );
    assert!(world.exports().await.is_empty(), "nothing was exported");
    let mail = world.stack.mail_to("dave@acme.example").await.pop().unwrap();
    assert_eq!(mail.subject, "Your privacy request: please ask your organisation");
    assert!(mail.body.contains("it-admin@acme.example"), "{}", mail.body);
    assert!(mail.body.contains("managed by your organisation, Acme Corp,"), "named: {}", mail.body);
    assert_eq!(record.referral_customer.as_deref(), Some("Acme Corp"));
    assert!(mail.body.contains("Information Commissioner"), "where to complain");
    assert!(world.stack.mail_to(&world.staff).await.is_empty(), "no task for the staff");
}

#[tokio::test]
async fn a_referred_deletion_still_erases_the_companys_own_marketing_data_and_tells_its_recipients_once() {
    let mut world = world().await;
    // Dave's account is his employer's (Acme Corp manages it); his newsletter subscription and
    // seminar registration are the company's own, kept for its own marketing.
    let marketing = world.map.source("marketing").unwrap().clone();
    let privacy_shared::datamap::Location::Table { table, .. } = &marketing.location else { panic!() };
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    world
        .stack
        .dynamo
        .put_item()
        .table_name(table)
        .item("email", s("dave@acme.example"))
        .item("source", s("seminar"))
        .item("subscribed_at", s("2026-05-01T10:00:00Z"))
        .send()
        .await
        .unwrap();
    let before = world.holdings("dave@acme.example", "u-dave").await;
    assert!(before.contains(&("marketing".to_owned(), 1)), "{before:?}");

    let id = world
        .verified(json!({"email": "dave@acme.example", "kind": "deletion", "region": "NL", "language": "nl"}))
        .await;
    // Every stream record is delivered twice.
    world.drain().await;

    let record = world.record(id).await;
    assert_eq!(record.status, Status::Referred);
    let after = world.holdings("dave@acme.example", "u-dave").await;
    for (source, count) in &after {
        let expected =
            if source == "marketing" { 0 } else { before.iter().find(|(s, _)| s == source).unwrap().1 };
        assert_eq!(*count, expected, "{source}: the customer's data is theirs to decide on; ours goes");
    }
    for recipient in ["dpo@postvak-mailing.example", "privacy@summit-partners.example"] {
        let told: Vec<_> = (world.stack.mail_to(recipient).await.into_iter())
            .filter(|m| m.body.contains(&id.to_string()))
            .collect();
        assert_eq!(told.len(), 1, "{recipient} is told once (GDPR Art. 19)");
        assert!(told[0].body.contains("erase") && !told[0].body.contains("enterprise_managed"));
    }
    assert!(
        (world.stack.mail_to("privacy@nimbus-hosting.example").await.iter())
            .all(|m| !m.body.contains(&id.to_string())),
        "the hosting of the customer's data is not told: nothing of it was erased"
    );
    let notices: Vec<_> = (world.stack.mail_to("dave@acme.example").await.into_iter())
        .filter(|m| m.body.contains(&id.to_string()))
        .collect();
    assert_eq!(notices.len(), 2, "the verification and one referral notice: {notices:?}");
    let notice = notices.last().unwrap();
    assert_eq!(notice.subject, "Uw privacyverzoek: neem contact op met uw organisatie");
    for expected in [
        "beheerd door uw organisatie, Acme Corp,",
        "it-admin@acme.example",
        "voor onze eigen doeleinden",
        "Wij hebben alle gegevens van deze soorten die wij over u hadden, verwijderd",
        // The mail's HTML (what the emulator keeps) lists it.
        ">Nieuwsbrieven en seminars<",
        "Autoriteit Persoonsgegevens",
        "rechtbank",
    ] {
        assert!(notice.body.contains(expected), "{expected}: {}", notice.body);
    }
}

#[tokio::test]
async fn a_third_ccpa_right_to_know_request_within_12_months_is_rejected_with_the_reason() {
    let mut world = world().await;
    for kind in ["access", "portability"] {
        let id = world.verified(json!({"email": "bob@example.com", "kind": kind, "region": "US-CA"})).await;
        world.drain().await;
        assert_eq!(world.record(id).await.status, Status::Completed, "{kind}");
        world.stack.clock.advance(chrono::Duration::days(30));
    }
    let third =
        world.verified(json!({"email": "bob@example.com", "kind": "access", "region": "US-CA"})).await;
    world.drain().await;
    let record = world.record(third).await;
    assert_eq!(
        (record.status, record.closed_reason.as_deref()),
        (Status::Rejected, Some(privacy_shared::domain::LIMIT_REASON))
    );
    let mail = world.mail_about("bob@example.com", third).await;
    assert_eq!(mail.subject, "Your privacy request: limit reached");
    assert!(
        mail.body.contains("two requests in the past 12 months")
            && mail.body.contains("California Privacy Protection Agency")
    );
    // The first was received on 28 November 2026: a year and a day on, whatever its hour.
    assert!(mail.body.contains("You can ask again from 29 November 2027"), "{}", mail.body);
    assert_eq!(world.exports().await.len(), 2, "no third export");

    // A year after the first, the right is back.
    world.stack.clock.set(start_time() + chrono::Duration::days(366));
    let later =
        world.verified(json!({"email": "bob@example.com", "kind": "access", "region": "US-CA"})).await;
    world.drain().await;
    assert_eq!(world.record(later).await.status, Status::Completed);
}

#[tokio::test]
async fn a_child_under_16_is_flagged_to_staff_and_offered_deletion() {
    let mut world = world().await;
    let id = world.verified(json!({"email": "eve@example.net", "kind": "access", "region": "NL"})).await;
    world.drain().await;
    let record = world.record(id).await;
    assert!(record.triage.as_ref().is_some_and(|t| t.child && t.has_account), "{record:?}");
    let notice = world.stack.mail_to(&world.staff).await.pop().unwrap();
    assert!(notice.subject.ends_with("child under 16"), "{}", notice.subject);
    assert!(notice.body.contains("offered deletion"));
    let done = world.stack.mail_to("eve@example.net").await.pop().unwrap();
    assert!(done.body.contains("jonger dan 16") && done.body.contains("verwijderen"), "{}", done.body);
    // Both name the same day: the one the data goes unless someone objects.
    use privacy_shared::mail::templates::{child_deletion_on, long_date};
    let on = child_deletion_on(&record).expect("a child's access has a deletion date");
    let nl =
        format!("verwijderen wij uw gegevens op {}", long_date(on, privacy_shared::domain::Language::Nl));
    assert!(done.body.contains(&nl), "{nl}: {}", done.body);
    let en =
        format!("Delete it on {} unless an objection", long_date(on, privacy_shared::domain::Language::En));
    assert!(notice.body.contains(&en), "{en}: {}", notice.body);
}

#[tokio::test]
async fn portability_to_a_third_party_goes_there_only_after_a_second_confirmation() {
    let mut world = world().await;
    let recipient = unique_address("new-provider");
    let id = world
        .verified(json!({"email": "carol@example.org", "kind": "portability", "region": "NL", "recipient": recipient, "language": "en"}))
        .await;
    world.drain().await;
    assert!(world.exports().await.is_empty(), "no export before the second confirmation");
    assert!(world.stack.mail_to(&recipient).await.is_empty());
    let confirmation = world.stack.mail_to("carol@example.org").await.pop().unwrap();
    assert_eq!(confirmation.subject, "Confirm where we may send your data");
    assert!(confirmation.body.contains(&recipient));
    let link = confirmation
        .links()
        .into_iter()
        .find(|l| l.contains("confirm=recipient"))
        .expect("a confirmation link");
    let token = link.split("token=").nth(1).unwrap().split('&').next().unwrap().to_owned();

    let confirm = |token: &str| post_json(&format!("/requests/{id}/recipient"), &token_body(token));
    let verifier = world.stack.verifier();
    let wrong = verify::handle(&verifier, confirm(&"A".repeat(43))).await.unwrap();
    assert_eq!(wrong.status(), 400);
    let right = verify::handle(&verifier, confirm(&token)).await.unwrap();
    assert_eq!(right.status(), 200, "{}", json_of(&right));
    assert_eq!(verify::handle(&verifier, confirm(&token)).await.unwrap().status(), 400, "single use");
    world.drain().await;

    assert_eq!(world.record(id).await.status, Status::Completed);
    let delivery = world.stack.mail_to(&recipient).await;
    assert_eq!(delivery.len(), 1);
    assert!(delivery[0].body.contains("carol@example.org"));
    let link = delivery[0].links().into_iter().find(|l| l.contains("/download?token=")).unwrap();
    assert!(
        world
            .stack
            .mail_to("carol@example.org")
            .await
            .pop()
            .unwrap()
            .links()
            .iter()
            .any(|l| l.contains("/download?token=") && *l != link),
        "each has its own link"
    );
    let events = world.events(id).await;
    assert!(events.contains(&Event::RecipientConfirmed), "{events:?}");
}

#[tokio::test]
async fn a_self_service_correction_is_applied_and_the_requester_told() {
    let mut world = world().await;
    let body = json!({"email": "alice@example.com", "kind": "rectification", "region": "NL", "corrections": {"job_title": "Lead designer"}});
    let id = world.verified(body).await;
    world.drain().await;
    assert_eq!(world.record(id).await.status, Status::Completed);
    let accounts = world.map.source("accounts").unwrap();
    let account = world.data.records(accounts, "alice@example.com").await.unwrap().pop().unwrap();
    assert_eq!(account["job_title"], "Lead designer");
    assert_eq!(account["employer"], "Janssen Design", "nothing else changed");
    let mail = world.mail_about("alice@example.com", id).await;
    assert!(mail.body.contains("Corrected: job title."), "{}", mail.body);
}

#[tokio::test]
async fn restriction_objection_and_consent_withdrawal_are_staff_tasks_completed_through_the_staff_api() {
    let mut world = world().await;
    let api = staff_api(&world.stack);
    for kind in ["restriction", "objection", "withdraw_consent"] {
        let address = unique_address(kind);
        let id = world.verified(json!({"email": address, "kind": kind, "region": "DE", "details": "Please stop the newsletter profiling."})).await;
        world.drain().await;
        let task = world.stack.mail_to(&world.staff).await.pop().unwrap();
        assert!(task.body.contains(&id.to_string()) && task.body.contains("needs a person"), "{kind}");
        let note = format!("We stopped the processing for {kind}.");
        let (status, _) =
            staff(&api, "POST", &format!("/staff/requests/{id}/complete"), Some(json!({"note": note}))).await;
        assert_eq!(status, 200);
        world.drain().await;
        let done = world.stack.mail_to(&address).await.pop().unwrap();
        assert!(done.body.contains(&note), "{kind}: {}", done.body);
    }
}

/// The short version of `make bench-local`: a backlog of requests confirmed at once goes through
/// the stream and the queues in batches, and each request ends once, with one answer.
#[tokio::test]
async fn a_backlog_of_requests_confirmed_together_completes_each_once_with_one_answer() {
    let mut world = world().await;
    let mut made = Vec::new();
    for n in 0..12 {
        let kind = if n % 3 == 2 { "deletion" } else { "access" };
        let address = unique_address("backlog");
        let id = world.verified(json!({"email": address, "kind": kind, "region": "NL"})).await;
        made.push((address, id, kind));
    }
    world.drain().await;

    for (address, id, kind) in &made {
        assert_eq!(world.record(*id).await.status, Status::Completed, "{kind}");
        let completions = world.events(*id).await.iter().filter(|e| **e == Event::Completed).count();
        assert_eq!(completions, 1, "{kind}");
        assert_eq!(
            world.stack.mail_to(address).await.len(),
            2,
            "a confirmation link, then one answer ({kind})"
        );
    }
    let access = made.iter().filter(|(_, _, kind)| *kind == "access").count();
    assert_eq!(world.exports().await.len(), access, "one export per access request");
}
