//! The records of requests (CCPA regulations §7101) and the yearly report (§7102) against the
//! emulator: `dispatch` writes a request's de-identified record from the table's stream (once per
//! version, whatever is redelivered), the record outlives the person's erasure and names nobody,
//! its TTL follows the retention, and the staff API counts the records of a year and lists them as
//! CSV.

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Days, NaiveDate, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::contract::{assert_documented, document};
use crate::support::*;
use devstack::stream::StreamReader;
use privacy_shared::Clock;
use privacy_shared::domain::{
    CSV_HEADER, Channel, Completion, ComplianceRecord, DenialBasis, ErasedSource, ErasureReceipt, Outcome,
    PartReason, Region, RequestId, RequestKind, SourceOperation, SourceTask, Status, TaskState, Transition,
};
use privacy_shared::store::{Change, Records, SourceTasks};

const EVE: &str = "eve@example.net";

struct Setup {
    stack: Stack,
    dispatcher: AwsDispatcher,
}

async fn setup(env: &[(&str, &str)]) -> Setup {
    let stack = Stack::with_env(env).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let name = format!("export-{}.fifo", uuid::Uuid::new_v4().simple());
    let queue_url = devstack::provision::create_queue(&sqs, &name, None).await.unwrap();
    let dispatcher = dispatcher(&stack, &queue_url, &unique_address("staff")).await;
    Setup { stack, dispatcher }
}

async fn deliver(setup: &Setup, records: &[Value]) {
    let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response =
        dispatch::handle(&setup.dispatcher, LambdaEvent::new(event, Context::default())).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

/// Delivers the stream (each batch twice, as Lambda may) until it is quiet; returns what it
/// delivered, for a test to deliver again later.
async fn deliver_until_quiet(setup: &Setup, stream: &mut StreamReader) -> Vec<Value> {
    let mut delivered = Vec::new();
    for _ in 0..10 {
        let records = stream.poll().await.unwrap();
        if records.is_empty() {
            return delivered;
        }
        deliver(setup, &records).await;
        deliver(setup, &records).await;
        delivered.extend(records);
    }
    panic!("the stream did not settle");
}

fn text(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        Some(AttributeValue::Bool(b)) => b.to_string(),
        other => panic!("{name}: {other:?}"),
    }
}

/// Every record item of the table, by request id.
async fn record_items(stack: &Stack) -> Vec<(String, Item)> {
    let mut items: Vec<(String, Item)> = stack
        .items()
        .await
        .into_iter()
        .filter(|item| matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("RECORD#")))
        .map(|item| (text(&item, "request_id"), item))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

async fn record_item(stack: &Stack, id: &str) -> Item {
    let items = record_items(stack).await;
    let mine: Vec<&Item> = items.iter().filter(|(of, _)| of == id).map(|(_, item)| item).collect();
    assert_eq!(mine.len(), 1, "one record per request: {items:?}");
    mine[0].clone()
}

/// The moment DynamoDB may delete a record kept until `day`: the start of the next day.
fn ttl_after(day: &str) -> String {
    let next = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap() + Days::new(1);
    next.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp().to_string()
}

async fn submitted(stack: &Stack, address: &str, kind: &str, region: &str) -> String {
    let (status, body) = submit(&stack.deps(), &submission(address, kind, region)).await;
    assert_eq!(status, 202, "{body}");
    body["request_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_request_is_recorded_from_the_stream_once_per_version_and_an_older_image_never_overwrites_it() {
    let setup = setup(&[("RECORD_RETENTION_MONTHS", "36")]).await;
    let stack = &setup.stack;
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    let address = unique_address("recorded");
    let id = verified_request(stack, &address, "objection", "NL").await.to_string();
    let opt_out = submitted(stack, &unique_address("recorded-opt-out"), "opt_out_of_sale", "US-CA").await;
    let earlier = deliver_until_quiet(&setup, &mut stream).await;

    // Verified and triaged: open, kept 36 months from receipt.
    let open = record_item(stack, &id).await;
    assert_eq!(text(&open, "pk"), "RECORD#2026");
    assert_eq!(text(&open, "sk"), format!("2026-11-28T09:00:00Z#{id}"), "filed by receipt");
    assert_eq!(text(&open, "version"), "3", "submitted, verified, triaged");
    assert_eq!((text(&open, "status"), text(&open, "outcome")), ("verified".into(), "open".into()));
    assert_eq!((text(&open, "channel"), text(&open, "by_agent")), ("web".into(), "false".into()));
    assert_eq!(text(&open, "keep_until"), "2029-11-28");
    assert_eq!(text(&open, "ttl"), ttl_after("2029-11-28"));
    assert!(!open.contains_key("responded_on"));

    // An opt-out is honoured at once: complied with on the day.
    let honoured = record_item(stack, &opt_out).await;
    assert_eq!(
        (text(&honoured, "outcome"), text(&honoured, "days_to_respond")),
        ("complied".into(), "0".into())
    );
    assert_eq!(text(&honoured, "regime"), "ccpa");

    // Staff deny it five days later with a coded basis; the reason is for the requester only.
    stack.clock.advance(chrono::Duration::days(5));
    let reason = "Jan Jansen's case is before a court.";
    let api = staff_api(stack);
    let path = format!("/staff/requests/{id}/deny");
    let (status, body) =
        staff(&api, "POST", &path, Some(json!({"reason": reason, "basis": "legal_claims"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request"]["denial_basis"], "legal_claims");
    deliver_until_quiet(&setup, &mut stream).await;
    let denied = record_item(stack, &id).await;
    assert_eq!(text(&denied, "version"), "4");
    assert_eq!(
        (text(&denied, "outcome"), text(&denied, "denial_basis")),
        ("denied".into(), "legal_claims".into())
    );
    assert_eq!(
        (text(&denied, "responded_on"), text(&denied, "days_to_respond")),
        ("2026-12-03".into(), "5".into())
    );
    assert_eq!(text(&denied, "keep_until"), "2029-12-03", "kept 36 months from the response");
    assert_eq!(text(&denied, "ttl"), ttl_after("2029-12-03"));
    let shown = format!("{denied:?}");
    assert!(!shown.contains("Jansen") && !shown.contains("court"), "no free text: {shown}");

    // The older images delivered again, late: the newer record stands, and nothing else is written.
    deliver(&setup, &earlier).await;
    assert_eq!(record_item(stack, &id).await, denied);
    assert_eq!(record_items(stack).await.len(), 2);
    let year = stack.deps().store.records_of_year(2026).await.unwrap();
    assert_eq!(year.len(), 2);
    assert!(year.iter().any(|r| r.request_id.to_string() == id && r.status == Status::Denied));
}

#[tokio::test]
async fn a_completed_request_a_source_outside_aws_did_not_deliver_for_is_recorded_as_complied_with_in_part() {
    let setup = setup(&[]).await;
    let stack = &setup.stack;
    let mut stream = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    let id = verified_request(stack, &unique_address("undelivered"), "deletion", "NL").await;
    let store = stack.deps().store;
    let at = stack.clock.now();
    let task = SourceTask {
        request_id: id,
        operation: SourceOperation::Erasure,
        source: "job_applications".into(),
        answer_by: at.date_naive() + Days::new(20),
        opened_at: at,
        state: TaskState::Waiting { problem: None },
        version: 1,
        wakes: 0,
        attempts: 0,
        late: false,
    };
    store.open_task(&task).await.unwrap();
    let current = store.get(id).await.unwrap().unwrap();
    let started = store.transition(&current, Change::system(Transition::StartWork, at)).await.unwrap();
    let erased = ErasedSource {
        source: "accounts".into(),
        description: "Accounts".into(),
        categories: vec!["contact details".into()],
        deleted: 1,
        anonymised: 0,
        kept_because: None,
    };
    let receipt = ErasureReceipt { sources: vec![erased], ..ErasureReceipt::default() };
    let done = Transition::Complete(Completion::Erased(receipt));
    store.transition(&started, Change::system(done, at)).await.unwrap();
    deliver_until_quiet(&setup, &mut stream).await;

    let record = record_item(stack, &id.to_string()).await;
    assert_eq!(text(&record, "outcome"), "complied_in_part");
    assert_eq!(text(&record, "in_part_because"), "sources_not_delivered");
}

/// A request of Eve (a seeded person, with an account, chats and presence; no other test reads
/// her mail, so the mail her requests bring disturbs none), made and verified.
async fn eve_asks(world: &crate::rights::World, kind: &str) -> String {
    let body = json!({"email": EVE, "kind": kind, "region": "NL", "name": "Eve Evans"});
    let (status, answer) = submit(&world.intake.deps(), &body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    // The mailbox is the emulator's, shared by every run against it: the link is picked by id.
    let submitted = answer["request_id"].as_str().unwrap().to_owned();
    let mails = world.stack.mail_to(EVE).await;
    let (id, token) = mails.iter().map(link_parts).rfind(|(id, _)| *id == submitted).unwrap();
    assert_eq!(verify_with(&world.verify.verifier(), &id, &token).await.0, 200);
    id
}

#[tokio::test]
async fn a_record_outlives_the_persons_erasure_and_holds_nothing_that_names_them() {
    let mut world = crate::rights::world().await;
    let access = eve_asks(&world, "access").await;
    world.drain().await;
    let before = record_item(&world.stack, &access).await;
    assert_eq!(text(&before, "outcome"), "complied");

    let deletion = eve_asks(&world, "deletion").await;
    world.drain().await;
    let request = world.stack.deps().store.get(RequestId::parse(&deletion).unwrap()).await.unwrap().unwrap();
    assert_eq!(request.status, Status::Completed, "the erasure ran");
    let access_request =
        world.stack.deps().store.get(RequestId::parse(&access).unwrap()).await.unwrap().unwrap();
    assert_eq!(access_request.name, None, "the earlier request was scrubbed");

    assert_eq!(
        record_item(&world.stack, &access).await,
        before,
        "the record of the earlier request outlives it"
    );
    let erasure = record_item(&world.stack, &deletion).await;
    assert_eq!((text(&erasure, "kind"), text(&erasure, "outcome")), ("deletion".into(), "complied".into()));
    for (_, item) in record_items(&world.stack).await {
        let shown = format!("{item:?}").to_lowercase();
        for personal in ["evans", "eve@", "example.net", "@", "u-eve"] {
            assert!(!shown.contains(personal), "{personal} in {shown}");
        }
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        for name in ["email", "name", "details", "closed_reason", "extension_reason", "subject", "agent"] {
            assert!(!names.contains(&name), "{name} in {names:?}");
        }
    }
}

/// A record of a request received on `received` (a 2026 or other date) and answered `days` later.
fn known(
    kind: RequestKind,
    region: &str,
    received: &str,
    outcome: Outcome,
    days: Option<u32>,
) -> ComplianceRecord {
    let received_on = NaiveDate::parse_from_str(received, "%Y-%m-%d").unwrap();
    let received_at: DateTime<Utc> = received_on.and_hms_opt(10, 0, 0).unwrap().and_utc();
    let region = Region::parse(region).unwrap();
    let status = match outcome {
        Outcome::Open => Status::InProgress,
        Outcome::Complied | Outcome::CompliedInPart { .. } => Status::Completed,
        Outcome::Denied { .. } => Status::Denied,
        Outcome::NotVerified => Status::Expired,
        Outcome::Referred => Status::Referred,
        Outcome::RejectedExcessive | Outcome::RejectedLimit => Status::Rejected,
    };
    let responded_on = days.map(|d| received_on + Days::new(u64::from(d)));
    ComplianceRecord {
        request_id: RequestId::generate(),
        version: 5,
        kind,
        regime: region.regime(),
        region,
        channel: Channel::Web,
        by_agent: false,
        received_at,
        received_on,
        verified_on: Some(received_on),
        due_on: received_on + Days::new(30),
        original_due_on: None,
        status,
        outcome,
        responded_on,
        days_to_respond: days,
        keep_until: responded_on.unwrap_or(received_on) + Days::new(731),
    }
}

#[tokio::test]
async fn the_staff_api_reports_a_years_figures_on_known_records_and_lists_them_as_csv() {
    let stack = Stack::new().await;
    let roles = stack.roles(&[]).await;
    let api = staff_api(&stack.signing_as(&roles, "admin"));
    let doc = document("staff-openapi.yaml");
    let store = stack.deps().store;
    let denied = |basis| Outcome::Denied { denial_basis: basis };
    let in_part = Outcome::CompliedInPart { in_part_because: PartReason::KeptForLegalReason };
    use RequestKind::{Access, Deletion};
    let records = [
        known(Access, "NL", "2026-01-05", Outcome::Complied, Some(10)),
        known(Access, "DE", "2026-02-05", Outcome::Complied, Some(20)),
        known(Access, "NL", "2026-03-05", denied(DenialBasis::RightsOfOthers), Some(7)),
        known(Access, "NL", "2026-04-05", Outcome::NotVerified, Some(14)),
        known(Access, "NL", "2026-12-30", Outcome::Open, None),
        known(Deletion, "US-CA", "2026-05-05", in_part, Some(12)),
        known(Deletion, "US-CA", "2026-06-05", denied(DenialBasis::LegalObligation), Some(30)),
        known(Access, "NL", "2025-12-31", Outcome::Complied, Some(3)),
    ];
    for record in &records {
        assert!(store.put_record(record).await.unwrap());
    }

    let (status, report) = staff(&api, "GET", "/staff/reports/2026", None).await;
    assert_eq!(status, 200, "{report}");
    assert_documented(&doc, "/staff/reports/{year}", "get", status, &report);
    assert_eq!(report["year"], 2026);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    let access = &rows[0];
    assert_eq!((&access["kind"], &access["regime"]), (&json!("access"), &json!("gdpr")));
    assert_eq!(access["received"], 5, "2025's request is not 2026's");
    assert_eq!((&access["complied"], &access["complied_in_part"]), (&json!(2), &json!(0)));
    assert_eq!(access["denied"], json!({"total": 1, "by_basis": {"rights_of_others": 1}}));
    assert_eq!(
        (&access["not_verified"], &access["referred"], &access["open"]),
        (&json!(1), &json!(0), &json!(1))
    );
    // Answered in 10, 20 and 7 days; the unverified and the open one were not answered.
    assert_eq!(access["days_to_respond"], json!({"responded": 3, "mean": 12.3, "median": 10.0}));
    let deletion = &rows[1];
    assert_eq!((&deletion["kind"], &deletion["regime"]), (&json!("deletion"), &json!("ccpa")));
    assert_eq!((&deletion["received"], &deletion["complied_in_part"]), (&json!(2), &json!(1)));
    assert_eq!(deletion["denied"], json!({"total": 1, "by_basis": {"legal_obligation": 1}}));
    assert_eq!(deletion["days_to_respond"], json!({"responded": 2, "mean": 21.0, "median": 21.0}));
    assert_eq!(report["total"]["received"], 7);
    assert_eq!(report["total"]["denied"]["total"], 2);

    let response =
        admin::handle(&api, staff_call("GET", "/staff/reports/2026/records", None, Some(STAFF_ARN)))
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"requests-2026.csv\"");
    let csv = String::from_utf8(response.body().to_vec()).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], CSV_HEADER);
    let ids: Vec<String> = lines[1..].iter().map(|l| l.split(',').next().unwrap().to_owned()).collect();
    // In order of receipt: January, February, March, April, May, June, December.
    let expected: Vec<String> =
        [0, 1, 2, 3, 5, 6, 4].iter().map(|&i| records[i].request_id.to_string()).collect();
    assert_eq!(ids, expected);
    let denial: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(denial.len(), CSV_HEADER.split(',').count());
    assert_eq!(&denial[10..16], ["denied", "denied", "rights_of_others", "", "2026-03-12", "7"]);

    let (status, empty) = staff(&api, "GET", "/staff/reports/2024", None).await;
    assert_eq!((status, &empty["rows"], &empty["total"]["received"]), (200, &json!([]), &json!(0)));
    assert_documented(&doc, "/staff/reports/{year}", "get", status, &empty);
    for bad in
        ["/staff/reports/26", "/staff/reports/1999", "/staff/reports/year", "/staff/reports/2026x/records"]
    {
        let (status, body) = staff(&api, "GET", bad, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_year")), "{bad}");
        assert_documented(&doc, "/staff/reports/{year}", "get", status, &body);
    }
    let (status, body) = staff(&api, "POST", "/staff/reports/2026", Some(json!({}))).await;
    assert_eq!(status, 405, "{body}");
    let unsigned = admin::handle(&api, staff_call("GET", "/staff/reports/2026", None, None)).await.unwrap();
    assert_eq!(unsigned.status(), 401);
}

#[tokio::test]
async fn a_record_is_replaced_only_by_one_of_a_later_version_in_either_store() {
    let stack = Stack::new().await;
    let memory = privacy_shared::store::MemoryStore::new();
    let dynamo = stack.deps().store;
    async fn holds<S: Records>(store: &S) {
        let first = known(RequestKind::Access, "NL", "2026-03-01", Outcome::Open, None);
        let later = ComplianceRecord {
            version: first.version + 2,
            status: Status::Completed,
            outcome: Outcome::Complied,
            responded_on: Some(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            days_to_respond: Some(8),
            ..first.clone()
        };
        let between = ComplianceRecord { version: first.version + 1, ..first.clone() };
        assert!(store.put_record(&first).await.unwrap());
        assert!(store.put_record(&later).await.unwrap());
        assert!(!store.put_record(&between).await.unwrap(), "an older version is refused");
        assert!(!store.put_record(&later).await.unwrap(), "the same version is written once");
        assert_eq!(store.records_of_year(2026).await.unwrap(), vec![later]);
        assert!(store.records_of_year(2025).await.unwrap().is_empty());
    }
    holds(&memory).await;
    holds(&dynamo).await;
}

#[test]
fn records_are_kept_at_least_24_months_and_the_template_lets_no_less_through() {
    use privacy_shared::config::{ConfigError, DispatchSettings, Env};
    let base = [
        ("TABLE_NAME", "requests"),
        ("MAIL_FROM", MAIL_FROM),
        ("PUBLIC_BASE_URL", PUBLIC_BASE_URL),
        ("STATUS_LINK_KEY", STATUS_LINK_KEY),
        ("STAFF_ADDRESS", "privacy-team@example.com"),
        ("EXPORT_QUEUE_URL", "https://sqs/export.fifo"),
        ("ERASURE_QUEUE_URL", "https://sqs/erasure.fifo"),
    ];
    let with = |months: &'static str| {
        let mut pairs = base.to_vec();
        pairs.push(("RECORD_RETENTION_MONTHS", months));
        DispatchSettings::load(&Env::from_pairs(&pairs))
    };
    assert_eq!(DispatchSettings::load(&Env::from_pairs(&base)).unwrap().record_retention.as_months(), 24);
    assert_eq!(with("60").unwrap().record_retention.as_months(), 60);
    for short in ["23", "12", "0"] {
        match with(short) {
            Err(ConfigError::Invalid { name, .. }) => assert_eq!(name, "RECORD_RETENTION_MONTHS"),
            other => panic!("{short}: {other:?}"),
        }
    }
    let template = devstack::template::Template::load(&devstack::template::default_path()).unwrap();
    let parameter = &template.raw()["Parameters"]["RecordRetentionMonths"];
    assert_eq!((parameter["Default"].as_u64(), parameter["MinValue"].as_u64()), (Some(24), Some(24)));
    let given = &template.raw()["Resources"]["DispatchFunction"]["Properties"]["Environment"]["Variables"];
    assert!(format!("{:?}", given["RECORD_RETENTION_MONTHS"]).contains("RecordRetentionMonths"));
}

#[tokio::test]
async fn staff_report_prints_the_years_figures_as_a_table_and_with_csv_the_records_as_they_came() {
    const KEY: &str = "records-cli-test-key-0123456789";
    let stack = Stack::new().await;
    let store = stack.deps().store;
    let denial = Outcome::Denied { denial_basis: DenialBasis::LegalObligation };
    let records = [
        known(RequestKind::Deletion, "US-CA", "2026-05-05", Outcome::Complied, Some(12)),
        known(RequestKind::Deletion, "US-CA", "2026-06-05", denial, Some(30)),
    ];
    for record in &records {
        store.put_record(record).await.unwrap();
    }
    let env = stack.env(&[
        ("STAFF_LOCAL_KEY", KEY.to_owned()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000".to_owned()),
    ]);
    let settings = privacy_shared::config::AdminSettings::load(&env).unwrap();
    let base =
        crate::staff_command_line::serve(admin::Admin::with_sdk(&stack.sdk, settings, stack.clock.clone()))
            .await;
    let cli = |args: &'static [&'static str]| {
        let base = base.clone();
        async move {
            let mut argv = vec!["staff", "--endpoint", base.as_str(), "--local-key", KEY];
            argv.extend_from_slice(args);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = staff_cli::run(argv, staff_cli::CredentialSource::AwsChain, &mut out, &mut err).await;
            (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
        }
    };

    let (code, table, err) = cli(&["report", "--year", "2026"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(table.starts_with("Requests received in 2026"), "{table}");
    let row = table.lines().find(|l| l.contains("deletion")).unwrap();
    for cell in ["ccpa", "2", "21.0"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(table.contains("deletion (ccpa): legal_obligation 1"), "{table}");

    let (code, csv, err) = cli(&["report", "--year", "2026", "--csv"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert!(
        lines[1].starts_with(&records[0].request_id.to_string()) && lines[2].contains("legal_obligation")
    );
    assert_eq!(lines.len(), 4, "two records and the last line end: {csv:?}");

    let (code, _, err) = cli(&["report", "--year", "1999"]).await;
    assert_eq!(code, 2, "refused before anything is sent: {err}");
}
