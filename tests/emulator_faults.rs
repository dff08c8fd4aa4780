//! Faults on purpose (dev/emulator_faults.py): with EMULATOR_FAULTS the emulator answers a share of
//! the functions' calls with the errors AWS returns under stress, in each protocol's wire format,
//! and the AWS SDK for Rust reads them as AWS's own: the throttling codes and the 5xx are retried
//! by its standard retry mode; a transaction cancelled for a conflict is not, and says why.
//!
//! These tests start emulators of their own (the shared one runs without faults); the fault run
//! in `tests/chaos.rs` uses [`FaultyEmulator`] too.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// An emulator of the test's own on a free port, with the settings given; stopped when dropped.
pub struct FaultyEmulator {
    child: Child,
    pub endpoint: String,
    client: reqwest::Client,
}

impl FaultyEmulator {
    pub async fn start(settings: &[(&str, &str)]) -> FaultyEmulator {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = root.join(format!("target/moto-faults-{port}.log"));
        let child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("dev/emulator.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the emulator's log"))
            .spawn()
            .expect("the emulator starts (.venv: make test installs it)");
        let emulator = FaultyEmulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        for _ in 0..240 {
            let health = emulator.client.get(format!("{}/_local/health", emulator.endpoint)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return emulator;
            }
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
        panic!("the emulator did not answer within 30 s (log: {})", log.display());
    }

    pub async fn report(&self) -> Value {
        let url = format!("{}/_local/faults", self.endpoint);
        self.client.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Changes the rate, seed, pump or only setting (PUT /_local/faults); the counts go on.
    pub async fn set(&self, change: Value) -> Value {
        let url = format!("{}/_local/faults", self.endpoint);
        let answer = self.client.put(url).json(&change).send().await.unwrap();
        assert!(answer.status().is_success(), "PUT /_local/faults answered {}", answer.status());
        answer.json().await.unwrap()
    }

    /// The faults injected so far, oldest first: (service, operation, code).
    pub async fn recent(&self) -> Vec<(String, String, String)> {
        let report = self.report().await;
        serde_json::from_value(report["recent"].clone()).unwrap()
    }
}

impl Drop for FaultyEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The standard retry mode with its classification untouched, but quick: up to `attempts` tries
/// with a millisecond's backoff.
fn quick_retries(attempts: u32) -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

fn key(id: &str) -> Item {
    Item::from([("pk".into(), AttributeValue::S(id.into())), ("sk".into(), AttributeValue::S("META".into()))])
}

/// What one SDK call met: the faults of its attempts (in order) and the code it failed with.
#[derive(Debug)]
struct Met {
    faults: Vec<String>,
    failed_with: Option<String>,
}

/// Runs `call` and collects the faults its attempts met.
async fn meeting<F, T, E>(emulator: &FaultyEmulator, call: F) -> Met
where
    F: std::future::Future<Output = Result<T, E>>,
    E: ProvideErrorMetadata,
{
    let before = emulator.recent().await.len();
    let failed_with = call.await.err().map(|e| e.code().unwrap_or("no code").to_owned());
    let faults = emulator.recent().await.into_iter().skip(before).map(|(_, _, code)| code).collect();
    Met { faults, failed_with }
}

/// Every call failed after `attempts` tries, each fault but the last one retried, with the last
/// fault's code as the SDK's error; returns the codes seen, and those that were retried.
fn every_fault_retried(service: &str, met: &[Met], attempts: usize) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut seen, mut retried) = (BTreeSet::new(), BTreeSet::new());
    for one in met {
        assert_eq!(
            one.faults.len(),
            attempts,
            "{service}: every fault was retried until the last try: {one:?}"
        );
        assert_eq!(one.failed_with.as_ref(), one.faults.last(), "{service}: the SDK reports the code sent");
        seen.extend(one.faults.iter().cloned());
        retried.extend(one.faults[..attempts - 1].iter().cloned());
    }
    (seen, retried)
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

#[tokio::test]
async fn every_fault_is_an_aws_error_in_its_protocols_format_and_the_sdk_retries_the_retryable_ones() {
    let emulator = FaultyEmulator::start(&[("EMULATOR_FAULTS", "1.0"), ("EMULATOR_FAULTS_SEED", "11")]).await;
    let stack = Stack::at(emulator.endpoint.clone(), &[]).await;
    let roles = stack.roles(&[]).await;
    let signed = roles.sdk(&stack.sdk, "intake");
    const TRIES: u32 = 4;
    const CALLS: usize = 5;

    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&signed).retry_config(quick_retries(TRIES)).build(),
    );
    let mut met = Vec::new();
    for _ in 0..CALLS {
        met.push(
            meeting(&emulator, dynamo.get_item().table_name(&stack.table).set_key(Some(key("a"))).send())
                .await,
        );
    }
    let (seen, retried) = every_fault_retried("DynamoDB", &met, TRIES as usize);
    let dynamodb =
        set(&["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]);
    assert_eq!((&seen, &retried), (&dynamodb, &dynamodb));

    // A transaction may also be cancelled for a conflict with another one: not retried by the
    // SDK, and its reasons say so (the caller retries it, or answers that it could not).
    let put = Put::builder()
        .table_name(&stack.table)
        .set_item(Some(key("t")))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap();
    let (mut conflicts, mut retried) = (0, BTreeSet::new());
    for _ in 0..12 {
        let before = emulator.recent().await.len();
        let result = dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put.clone()).build())
            .send()
            .await;
        let faults: Vec<String> = emulator.recent().await.into_iter().skip(before).map(|f| f.2).collect();
        let error = result.expect_err("every call fails");
        retried.extend(faults[..faults.len() - 1].iter().cloned());
        if faults.last().map(String::as_str) == Some("TransactionCanceledException") {
            conflicts += 1;
            let reasons: Vec<_> = error
                .as_service_error()
                .and_then(|e| match e {
                    TransactWriteItemsError::TransactionCanceledException(e) => Some(e),
                    _ => None,
                })
                .map(|e| {
                    e.cancellation_reasons().iter().filter_map(|r| r.code().map(str::to_owned)).collect()
                })
                .unwrap_or_default();
            assert_eq!(reasons, ["TransactionConflict"], "one reason per item");
        } else {
            assert_eq!(faults.len(), TRIES as usize, "{faults:?}");
        }
    }
    assert!(conflicts > 0, "the seed drew no conflict");
    assert!(!retried.contains("TransactionCanceledException"), "a cancelled transaction is not retried");

    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&signed).retry_config(quick_retries(TRIES)).build(),
    );
    let queue = format!("{}/123456789012/nothing", stack.endpoint);
    let mut met = Vec::new();
    for _ in 0..CALLS {
        met.push(meeting(&emulator, sqs.send_message().queue_url(&queue).message_body("x").send()).await);
    }
    let (seen, retried) = every_fault_retried("SQS", &met, TRIES as usize);
    let sqs_codes = set(&["RequestThrottled", "ThrottlingException", "InternalError"]);
    assert_eq!((&seen, &retried), (&sqs_codes, &sqs_codes));

    let ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&signed).retry_config(quick_retries(TRIES)).build(),
    );
    let mut met = Vec::new();
    for _ in 0..CALLS {
        let content = aws_sdk_sesv2::types::Content::builder().data("x").build().unwrap();
        let message = aws_sdk_sesv2::types::Message::builder()
            .subject(content.clone())
            .body(aws_sdk_sesv2::types::Body::builder().text(content).build())
            .build();
        let send = ses
            .send_email()
            .from_email_address(MAIL_FROM)
            .destination(
                aws_sdk_sesv2::types::Destination::builder().to_addresses(unique_address("f")).build(),
            )
            .content(aws_sdk_sesv2::types::EmailContent::builder().simple(message).build())
            .send();
        met.push(meeting(&emulator, send).await);
    }
    let (seen, retried) = every_fault_retried("SES", &met, TRIES as usize);
    let ses_codes = set(&["TooManyRequestsException", "InternalFailure"]);
    assert_eq!((&seen, &retried), (&ses_codes, &ses_codes));

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&signed)
            .force_path_style(true)
            .retry_config(quick_retries(TRIES))
            .build(),
    );
    let mut met = Vec::new();
    for _ in 0..CALLS {
        let put = s3.put_object().bucket("nobody").key("x").body(b"x".to_vec().into()).send();
        met.push(meeting(&emulator, put).await);
    }
    let (seen, retried) = every_fault_retried("S3", &met, TRIES as usize);
    let s3_codes = set(&["SlowDown", "InternalError"]);
    assert_eq!((&seen, &retried), (&s3_codes, &s3_codes));

    let report = emulator.report().await;
    for (service, operation) in [
        ("dynamodb", "GetItem"),
        ("dynamodb", "TransactWriteItems"),
        ("sqs", "SendMessage"),
        ("sesv2", "SendEmail"),
        ("s3", "PutObject"),
    ] {
        assert!(report["injected"][service][operation].as_u64() > Some(0), "{service} {operation}: {report}");
    }
    assert_eq!(
        report["calls"].as_u64(),
        Some(emulator.recent().await.len() as u64),
        "every eligible call failed"
    );
}

#[tokio::test]
async fn only_the_functions_roles_meet_faults_and_the_pump_only_when_asked() {
    let emulator = FaultyEmulator::start(&[("EMULATOR_FAULTS", "1.0")]).await;
    // The developer's key sets the stack up, seeds the data map and makes the roles: never failed.
    let stack = Stack::at(emulator.endpoint.clone(), &[]).await;
    let roles = stack.roles(&[]).await;
    assert!(stack.item("nobody", "META").await.is_none());
    let address = unique_address("local");
    assert!(stack.mail_to(&address).await.is_empty(), "/_local/mail is never failed");
    assert_eq!(emulator.report().await["calls"], 0, "{}", emulator.report().await);

    let pump = devstack::pump::as_pump(&stack.sdk).unwrap();
    let pump_dynamo = aws_sdk_dynamodb::Client::new(&pump);
    let read = pump_dynamo.get_item().table_name(&stack.table).set_key(Some(key("p"))).send().await;
    assert!(read.is_ok(), "the pump is not failed unless asked: {read:?}");
    emulator.set(json!({"pump": true})).await;
    let read = pump_dynamo.get_item().table_name(&stack.table).set_key(Some(key("p"))).send().await;
    assert!(read.is_err(), "now it is");
    assert!(stack.item("nobody", "META").await.is_none(), "and the developer still is not");

    // The stream, as the pump reads it: every call failed, each retried (3 tries by default).
    emulator.set(json!({"only": ["dynamodbstreams"]})).await;
    let before = emulator.recent().await.len();
    let opened = devstack::stream::StreamReader::open(&pump, &stack.table).await;
    assert!(opened.is_err(), "the stream could not be described");
    let streams: Vec<_> = emulator.recent().await.into_iter().skip(before).collect();
    assert_eq!(streams.len(), 3, "{streams:?}");
    for (service, operation, code) in &streams {
        assert_eq!((service.as_str(), operation.as_str()), ("dynamodbstreams", "DescribeStream"));
        assert!(["LimitExceededException", "InternalServerError"].contains(&code.as_str()), "{code}");
    }

    // A role's call outside `only` goes through (to the IAM guard and moto).
    let intake = aws_sdk_dynamodb::Client::new(&roles.sdk(&stack.sdk, "intake"));
    let read = intake.get_item().table_name(&stack.table).set_key(Some(key("r"))).send().await;
    assert!(read.is_ok(), "{read:?}");
}

/// The outcome of each of `n` single-try reads signed by a role: the code it failed with, or "ok".
async fn outcomes(client: &aws_sdk_dynamodb::Client, table: &str, n: usize) -> Vec<String> {
    let mut outcomes = Vec::new();
    for i in 0..n {
        let read = client.get_item().table_name(table).set_key(Some(key(&format!("k{i}")))).send().await;
        outcomes.push(match read {
            Ok(_) => "ok".to_owned(),
            Err(err) => err.code().unwrap_or("no code").to_owned(),
        });
    }
    outcomes
}

#[tokio::test]
async fn the_same_seed_fails_the_same_calls_in_the_same_way() {
    let emulator = FaultyEmulator::start(&[("EMULATOR_FAULTS", "0.5"), ("EMULATOR_FAULTS_SEED", "42")]).await;
    let stack = Stack::at(emulator.endpoint.clone(), &[]).await;
    let roles = stack.roles(&[]).await;
    let once = aws_config::retry::RetryConfig::standard().with_max_attempts(1);
    let intake = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&roles.sdk(&stack.sdk, "intake")).retry_config(once).build(),
    );
    let first = outcomes(&intake, &stack.table, 40).await;
    let failed = first.iter().filter(|o| *o != "ok").count();
    assert!((8..=32).contains(&failed), "about half fail: {first:?}");

    // The same seed again (set at run time this time): the same sequence.
    emulator.set(json!({"seed": 42})).await;
    assert_eq!(outcomes(&intake, &stack.table, 40).await, first);
    emulator.set(json!({"seed": 43})).await;
    assert_ne!(outcomes(&intake, &stack.table, 40).await, first, "another seed, another sequence");

    let report = emulator.report().await;
    assert_eq!(report["seed"], 43);
    assert_eq!(report["calls"], 120);
}

#[tokio::test]
async fn without_emulator_faults_nothing_is_failed() {
    // The shared emulator runs with EMULATOR_FAULTS unset: no share of anything fails.
    let stack = Stack::new().await;
    let roles = stack.roles(&[]).await;
    let intake = roles.sdk(&stack.sdk, "intake");
    let dynamo = aws_sdk_dynamodb::Client::new(&intake);
    for i in 0..20 {
        let read =
            dynamo.get_item().table_name(&stack.table).set_key(Some(key(&format!("z{i}")))).send().await;
        assert!(read.is_ok(), "{read:?}");
    }
    let report: Value =
        reqwest::get(format!("{}/_local/faults", stack.endpoint)).await.unwrap().json().await.unwrap();
    assert_eq!(report["rate"], 0.0);
    let injected: BTreeMap<String, Value> = serde_json::from_value(report["injected"].clone()).unwrap();
    assert!(injected.is_empty(), "{report}");
}
