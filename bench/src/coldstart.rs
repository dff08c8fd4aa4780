//! Measures each bootstrap the way Lambda runs it: this program plays the Lambda Runtime API on
//! loopback, starts the bootstrap with the Lambda environment, and times
//! - init: process start until its first `GET /runtime/invocation/next`,
//! - first response: process start until the first invocation's response,
//! - peak RSS (VmHWM) after a run of warm invocations.
//!
//! Cold starts are interleaved (one of each target per round, in a fresh random order, so drift on
//! a noisy machine hits every target alike) and reported as medians. Each function gets the event
//! its trigger sends (an API Gateway HTTP API v2 request, a DynamoDB stream batch, an SQS batch,
//! the scheduler's payload, an SNS-wrapped SES event), about something seeded in the emulator
//! beforehand, so the first invocation does the function's real work; what each does is printed
//! with the figures.
//! Seeding happens before the process starts, outside every measured span.
//!
//! usage: coldstart [--runs N] [--warm N] [--sizes FILE] NAME=PATH/TO/bootstrap:WORKLOAD ...
//! WORKLOAD: intake | verify | download | admin | dispatch | export | erasure | reminders |
//! mail-events | empty. The AWS environment (endpoint, table, bucket, queues...) is passed
//! through. FILE holds `name<TAB>bytes<TAB>zipped bytes` lines (dev/bin/bench writes it).
//! COLDSTART_LOG_LEVEL=INFO shows the functions' logs (otherwise WARN, and stdout discarded).
//! Each invocation's deadline is the function's timeout from infra/template.yaml, as Lambda's is.
//!
//! usage: coldstart --init-costs STEP... runs the pieces inits are made of (telemetry, config,
//! datamap, dispatch-settings, worker-settings, templates, sdk (as the functions load it) or
//! sdk-default (as the SDK does by itself), then dynamodb | sesv2 | sqs | s3 clients), once each
//! in this fresh process, and prints the microseconds each took: run it many times to see where
//! an init's time goes. Under `valgrind --tool=callgrind` its instruction counts are the same
//! on a busy machine as on an idle one.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

use devstack::stream::StreamReader;
use privacy_shared::datamap::{DataMap, Location};
use privacy_shared::domain::{
    Actor, Completion, Deadlines, EmailAddress, Event, Language, Region, RequestId, RequestKind,
    RequestRecord, Status, Transition, Triage, VerificationToken,
};
use privacy_shared::jobs::{DataChange, ErasureJob, ExportJob, Job};
use privacy_shared::mail::{MailTags, MessageKind};
use privacy_shared::store::{Change, DownloadToken, DynamoStore, LiveToken, Requests, Secrets, TokenSlot};

const TARGET_INIT_RATIO: f64 = 1.25;
const TARGET_RSS_MIB: f64 = 32.0;
const TARGET_ZIPPED_MIB: f64 = 6.0;
const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

struct Api {
    /// The function's timeout: each invocation's deadline is this far off, as Lambda sets it.
    timeout: Duration,
    next_asked: mpsc::UnboundedSender<Instant>,
    events: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    responses: mpsc::UnboundedSender<(Instant, Value)>,
}

fn respond(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    response
}

async fn handle(api: Arc<Api>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if request.method() == hyper::Method::GET && path.ends_with("/runtime/invocation/next") {
        let _ = api.next_asked.send(Instant::now());
        let Some((id, event)) = api.events.lock().await.recv().await else {
            return Ok(respond(500, Bytes::new()));
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d + api.timeout).as_millis())
            .unwrap_or_default();
        let mut response = respond(200, Bytes::from(event.to_string()));
        let headers = response.headers_mut();
        let set = |h: &mut hyper::HeaderMap, k: &'static str, v: String| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        set(headers, "lambda-runtime-aws-request-id", id);
        set(headers, "lambda-runtime-deadline-ms", deadline.to_string());
        set(
            headers,
            "lambda-runtime-invoked-function-arn",
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench"),
        );
        set(headers, "lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".into());
        set(headers, "content-type", "application/json".into());
        return Ok(response);
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if path.ends_with("/response") {
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let _ = api.responses.send((Instant::now(), value));
    } else if path.ends_with("/error") {
        let _ =
            api.responses.send((Instant::now(), json!({"runtime_error": String::from_utf8_lossy(&body)})));
    }
    Ok(respond(202, Bytes::new()))
}

/// What a target's invocations are about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Intake,
    Pages,
    Verify,
    Download,
    Admin,
    Dispatch,
    Export,
    Erasure,
    Reminders,
    MailEvents,
    Empty,
}

impl Workload {
    fn parse(name: &str) -> Result<Workload> {
        Ok(match name {
            "intake" => Workload::Intake,
            "pages" => Workload::Pages,
            "verify" => Workload::Verify,
            "download" => Workload::Download,
            "admin" => Workload::Admin,
            "dispatch" => Workload::Dispatch,
            "export" => Workload::Export,
            "erasure" => Workload::Erasure,
            "reminders" => Workload::Reminders,
            "mail-events" => Workload::MailEvents,
            "empty" => Workload::Empty,
            other => bail!("unknown workload {other}"),
        })
    }

    /// The binary that serves this workload.
    fn binary(self) -> &'static str {
        match self {
            Workload::Intake | Workload::Pages => "intake",
            Workload::Verify => "verify",
            Workload::Download => "download",
            Workload::Admin => "admin",
            Workload::Dispatch => "dispatch",
            Workload::Export => "export",
            Workload::Erasure => "erasure",
            Workload::Reminders => "reminders",
            Workload::MailEvents => "mail-events",
            Workload::Empty => "floor",
        }
    }

    /// What the invocations do, for the report.
    fn what(self) -> &'static str {
        match self {
            Workload::Intake => {
                "HTTP API v2 `POST /requests`: new requests (10 addresses x 9 kinds, one transaction and a \
                 verification mail each), then repeat submissions (token rotation, a new mail)"
            }
            Workload::Pages => {
                "HTTP API v2 `GET` of the privacy center's pages (intake): first `/privacy`; warm, in turn \
                 the rights of NL and of US-CA (a due date computed each time) and the access and agent forms"
            }
            Workload::Verify => {
                "HTTP API v2 `POST /requests/{id}/verify`: first, a seeded pending request verified with its \
                 token (conditional transition); warm, unknown ids (read, refused)"
            }
            Workload::Download => {
                "HTTP API v2 `GET /requests/{id}/download?token=`: a seeded completed export (token check, \
                 erasure mark, HeadObject, presigned 302, audited)"
            }
            Workload::Admin => {
                "HTTP API v2 with `authorizer.iam` (AWS_IAM route): first, `GET /staff/requests?limit=20` (the \
                 due-date index); warm, alternately that and `GET /staff/requests/{id}` (a request and its audit trail)"
            }
            Workload::Dispatch => {
                "DynamoDB stream batch: the emulator's stream records of a fresh request's creation and \
                 verification; the verification is triaged (account lookup, 12-month limit, transition, \
                 ledger); warm, the same batch redelivered (ledger: done)"
            }
            Workload::Export => {
                "SQS batch, the ExportJob dispatch enqueues, for a fresh triaged access request (an account \
                 record only): every source read, ZIP to S3, completed; warm, redelivered (nothing to export)"
            }
            Workload::Erasure => {
                "SQS batch, the ErasureJob (erase) dispatch enqueues, for a fresh triaged deletion request \
                 (an account record only): every source erased and re-read, receipt, completed; warm, \
                 redelivered (done before)"
            }
            Workload::Reminders => {
                "the schedule's input `{\"sweep\":\"daily\"}`: due-date index queries, reminders, expiries \
                 and the digest through the ledger"
            }
            Workload::MailEvents => {
                "SNS-wrapped SES `Delivery` of a seeded request's verification mail: recorded, receipt \
                 acknowledged (ledger); warm, 10 message ids redelivered (ledger: done)"
            }
            Workload::Empty => "`{}` (the floors answer `{}`)",
        }
    }
}

struct Target {
    name: String,
    path: String,
    workload: Workload,
    limits: Limits,
}

/// What the template gives a function: its timeout and memory size.
#[derive(Clone, Copy)]
struct Limits {
    timeout: Duration,
    memory_mb: u64,
}

/// The limits `infra/template.yaml` gives the function built from `binary` (the globals for a
/// binary it does not deploy, such as a floor).
fn limits(template: &devstack::template::Template, binary: &str) -> Limits {
    let root = template.raw();
    let globals = &root["Globals"]["Function"];
    let default = Limits {
        timeout: Duration::from_secs(globals["Timeout"].as_u64().unwrap_or(3)),
        memory_mb: globals["MemorySize"].as_u64().unwrap_or(128),
    };
    let function = root["Resources"].as_mapping().and_then(|resources| {
        resources.values().find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
    });
    match function {
        Some(f) => Limits {
            timeout: f["Properties"]["Timeout"].as_u64().map_or(default.timeout, Duration::from_secs),
            memory_mb: f["Properties"]["MemorySize"].as_u64().unwrap_or(default.memory_mb),
        },
        None => default,
    }
}

/// One cold start's events: the first, a generator of the warm ones, and what the first must
/// have done.
struct Events {
    first: Value,
    warm: Box<dyn FnMut() -> Value + Send>,
    expect: Expect,
}

impl Events {
    fn same(event: Value, expect: Expect) -> Events {
        let warm = event.clone();
        Events { first: event, warm: Box::new(move || warm.clone()), expect }
    }

    fn cycling(first: Value, warm: Vec<Value>, expect: Expect) -> Events {
        let mut at = 0;
        Events {
            first,
            warm: Box::new(move || {
                at += 1;
                warm[(at - 1) % warm.len()].clone()
            }),
            expect,
        }
    }
}

/// What the first invocation of a cold start must have done, checked after it answered: a
/// function that answers without doing its work would otherwise look fast.
enum Expect {
    /// Its API Gateway response has this status.
    Status(u16),
    /// The request was triaged.
    Triaged(RequestId),
    /// The request was completed.
    Completed(RequestId),
    /// The request's audit trail holds more than this many mail deliveries.
    Deliveries(RequestId, usize),
    /// Nothing beyond a successful answer.
    Answer,
}

fn api_gateway_event(
    method: &str,
    path: &str,
    route: &str,
    query: &[(&str, &str)],
    body: Option<String>,
    params: Option<Value>,
    authorizer: Option<Value>,
) -> Value {
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let parameters: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let mut context = json!({
        "accountId": ACCOUNT, "apiId": "bench", "domainName": "bench.example", "domainPrefix": "bench",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
        "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": route, "stage": "$default",
        "time": "28/Nov/2026:10:00:00 +0000", "timeEpoch": 1_795_860_000_000u64
    });
    if let Some(authorizer) = authorizer {
        context["authorizer"] = authorizer;
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "headers": {"content-type": "application/json", "host": "bench.example"},
        "requestContext": context,
        "isBase64Encoded": false
    });
    if !parameters.is_empty() {
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if let Some(params) = params {
        event["pathParameters"] = params;
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// What API Gateway passes for a route whose authoriser is AWS_IAM: the signer's identity.
fn iam_authorizer() -> Value {
    json!({"iam": {
        "accessKey": "AKIAIOSFODNN7EXAMPLE",
        "accountId": ACCOUNT,
        "callerId": "AIDAJQABLZS4A3QDU576Q",
        "cognitoIdentity": null,
        "principalOrgId": null,
        "userArn": format!("arn:aws:iam::{ACCOUNT}:user/bench-staff"),
        "userId": "AIDAJQABLZS4A3QDU576Q"
    }})
}

fn staff_list() -> Value {
    api_gateway_event(
        "GET",
        "/staff/requests",
        "GET /staff/requests",
        &[("limit", "20")],
        None,
        None,
        Some(iam_authorizer()),
    )
}

fn staff_show(id: RequestId) -> Value {
    api_gateway_event(
        "GET",
        &format!("/staff/requests/{id}"),
        "GET /staff/requests/{id}",
        &[],
        None,
        Some(json!({"id": id.to_string()})),
        Some(iam_authorizer()),
    )
}

fn verify_event(id: &str, token: &str) -> Value {
    api_gateway_event(
        "POST",
        &format!("/requests/{id}/verify"),
        "POST /requests/{id}/verify",
        &[],
        Some(json!({"token": token}).to_string()),
        Some(json!({"id": id})),
        None,
    )
}

static SUBMISSIONS: AtomicUsize = AtomicUsize::new(0);
const KINDS: [&str; 9] = [
    "access",
    "portability",
    "rectification",
    "deletion",
    "restriction",
    "objection",
    "withdraw_consent",
    "opt_out_of_sale",
    "unsubscribe",
];

/// Submissions cycle through 10 addresses and the 9 kinds: the first 90 create requests (one
/// transaction each), later ones take the repeat path (token rotation and a new email). The
/// emulator copies a whole table for every transaction, so unbounded growth would measure it.
fn intake_event() -> Value {
    let n = SUBMISSIONS.fetch_add(1, Ordering::Relaxed);
    let body = json!({"email": format!("bench+{}@example.com", n % 10), "kind": KINDS[(n / 10) % 9], "region": "NL"});
    api_gateway_event("POST", "/requests", "POST /requests", &[], Some(body.to_string()), None, None)
}

/// An SQS batch of one job, shaped as Lambda delivers a FIFO queue's message; the queue is the
/// one whose URL is in `url_variable`.
fn sqs_event<J: Job>(url_variable: &str, job: &J) -> Result<Value> {
    let url = std::env::var(url_variable).unwrap_or_default();
    let queue = url.rsplit('/').next().filter(|q| !q.is_empty()).unwrap_or("jobs.fifo");
    let now = Utc::now().timestamp_millis().to_string();
    Ok(json!({"Records": [{
        "messageId": uuid::Uuid::new_v4().to_string(),
        "receiptHandle": "AQEBbench",
        "body": serde_json::to_string(job)?,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SenderId": "AROAEXAMPLE:dispatch",
            "ApproximateFirstReceiveTimestamp": now,
            "MessageGroupId": job.message_group(),
            "MessageDeduplicationId": job.deduplication_id(),
            "SequenceNumber": "18849496460467696128"
        },
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"),
        "awsRegion": REGION
    }]}))
}

/// SES's `Delivery` event for one of our tagged mails, wrapped as SNS hands it to Lambda.
fn mail_event(message_id: &str, tags: MailTags, to: &str) -> Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut ses_tags: serde_json::Map<String, Value> =
        tags.pairs().into_iter().map(|(k, v)| (k.to_owned(), json!([v]))).collect();
    ses_tags.insert("ses:configuration-set".into(), json!(["privacy-requests"]));
    let ses = json!({
        "eventType": "Delivery",
        "mail": {
            "timestamp": now, "source": "privacy@example.com",
            "sourceArn": format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/privacy@example.com"),
            "sendingAccountId": ACCOUNT, "messageId": message_id, "destination": [to],
            "headersTruncated": false, "tags": ses_tags
        },
        "delivery": {
            "timestamp": now, "processingTimeMillis": 512, "recipients": [to],
            "smtpResponse": "250 2.0.0 OK", "reportingMTA": "a8-1.smtp-out.amazonses.com"
        }
    });
    let topic = format!("arn:aws:sns:{REGION}:{ACCOUNT}:privacy-mail-events");
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:{}", uuid::Uuid::new_v4()),
        "Sns": {
            "Type": "Notification",
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "TopicArn": topic,
            "Subject": null,
            "Message": ses.to_string(),
            "Timestamp": now,
            "SignatureVersion": "1",
            "Signature": "RXhhbXBsZQ==",
            "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    }]})
}

/// Everything the stream holds from where the reader stands (a poll returns a bounded batch).
async fn drain(reader: &mut StreamReader) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    loop {
        let records = reader.poll().await?;
        if records.is_empty() {
            return Ok(all);
        }
        all.extend(records);
    }
}

/// How far a seeded request has come.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Pending,
    Verified,
    Triaged,
    Exported,
}

/// The emulator's side: what the events refer to, seeded through the request store.
struct Stack {
    store: DynamoStore,
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    bucket: String,
    accounts_table: Option<String>,
    stream: Option<StreamReader>,
    /// A completed export with its download token (for `download` and the staff `show`).
    download: Option<(RequestId, VerificationToken)>,
    /// A pending request whose verification mail `mail-events` hears about.
    mailed: Option<(RequestId, String)>,
    people: usize,
}

impl Stack {
    async fn open(workloads: &[Workload]) -> Result<Stack> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = std::env::var("TABLE_NAME").context("TABLE_NAME is not set")?;
        let bucket = std::env::var("EXPORT_BUCKET").context("EXPORT_BUCKET is not set")?;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let needs = |w: &[Workload]| workloads.iter().any(|x| w.contains(x));
        let mut accounts_table = None;
        if needs(&[Workload::Dispatch, Workload::Export, Workload::Erasure]) {
            let map = DataMap::builtin()?
                .aws_only()
                .with_name_prefix(&std::env::var("DATA_NAME_PREFIX").unwrap_or_default());
            devstack::seed::create_sources(&sdk, &map).await?;
            accounts_table = map.user_id_source().and_then(|s| match &s.location {
                Location::Table { table, .. } => Some(table.clone()),
                _ => None,
            });
        }
        let stream = if needs(&[Workload::Dispatch]) {
            let mut reader = StreamReader::open(&sdk, &table).await?;
            drain(&mut reader).await?; // what earlier runs wrote is not ours to deliver
            Some(reader)
        } else {
            None
        };
        Ok(Stack {
            store: DynamoStore::new(dynamo.clone(), table),
            dynamo,
            s3: devstack::provision::s3_client(&sdk),
            bucket,
            accounts_table,
            stream,
            download: None,
            mailed: None,
            people: 0,
        })
    }

    /// A request of a person no earlier request knows, with an account record where the data
    /// map has an account source, brought to `stage`.
    async fn request(
        &mut self,
        kind: RequestKind,
        stage: Stage,
    ) -> Result<(RequestRecord, VerificationToken)> {
        self.people += 1;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let address = format!("bench-{}-{}@example.com", self.people, &tag[..8]);
        if let Some(table) = &self.accounts_table {
            let account = json!({"email": address, "user_id": format!("u-bench-{}", &tag[..12]), "name": "Bench Person"});
            self.dynamo
                .put_item()
                .table_name(table)
                .set_item(Some(serde_dynamo::to_item(account)?))
                .send()
                .await
                .context("seeding an account")?;
        }
        let now = Utc::now();
        let day = now.date_naive();
        let deadlines =
            Deadlines { received_on: day, due_on: day + chrono::Days::new(30), acknowledge_by: None };
        let mut record = RequestRecord::received(
            RequestId::generate(),
            kind,
            Region::parse("NL")?,
            Language::En,
            EmailAddress::parse(&address)?,
            now,
            deadlines,
        );
        let token = VerificationToken::generate();
        let live = LiveToken { token_hash: token.hash(), expires_at: now + chrono::Duration::hours(24) };
        self.store.create(&record, &live).await.context("seeding a request")?;
        let mut steps = vec![
            (Stage::Verified, Change::new(Transition::Verify { token: token.hash() }, now, Actor::Requester)),
            (
                Stage::Triaged,
                Change::system(Transition::Triage(Triage { has_account: true, child: false }), now),
            ),
            (Stage::Exported, Change::system(Transition::StartWork, now)),
            (Stage::Exported, Change::system(Transition::Complete(Completion::Exported { found: 1 }), now)),
        ];
        steps.retain(|(at, _)| *at <= stage);
        for (_, change) in steps {
            record = self.store.transition(&record, change).await.context("seeding a transition")?;
        }
        Ok((record, token))
    }

    async fn download(&mut self) -> Result<(RequestId, VerificationToken)> {
        if let Some((id, token)) = &self.download {
            return Ok((*id, token.clone()));
        }
        let (record, _) = self.request(RequestKind::Access, Stage::Exported).await?;
        let token = VerificationToken::generate();
        let stored =
            DownloadToken { token_hash: token.hash(), expires_at: Utc::now() + chrono::Duration::days(30) };
        self.store.put_download_token(record.id, TokenSlot::Requester, &stored).await?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(format!("exports/{}/export.zip", record.id))
            .body(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec().into())
            .send()
            .await
            .context("seeding an export")?;
        self.download = Some((record.id, token.clone()));
        Ok((record.id, token))
    }

    async fn deliveries(&self, id: RequestId) -> Result<usize> {
        let trail = self.store.audit_trail(id).await?;
        Ok(trail.iter().filter(|e| e.event == Event::MailDelivered).count())
    }

    /// Why the first invocation did not do what it should have, if it did not.
    async fn check(&self, expect: &Expect, response: &Value) -> Result<Option<String>> {
        let request = |id: RequestId| async move {
            self.store.get(id).await?.with_context(|| format!("request {id} is gone"))
        };
        Ok(match *expect {
            Expect::Status(status) => {
                let got = response.get("statusCode").and_then(Value::as_u64);
                (got != Some(status.into())).then(|| format!("answered {got:?}, not {status}"))
            }
            Expect::Triaged(id) => {
                let record = request(id).await?;
                record.triage.is_none().then(|| format!("left the request {} and untriaged", record.status))
            }
            Expect::Completed(id) => {
                let record = request(id).await?;
                (record.status != Status::Completed).then(|| format!("left the request {}", record.status))
            }
            Expect::Deliveries(id, before) => {
                let now = self.deliveries(id).await?;
                (now <= before).then(|| "recorded no delivery".to_owned())
            }
            Expect::Answer => None,
        })
    }

    /// The events of one cold start (seeding what they refer to).
    async fn events(&mut self, workload: Workload) -> Result<Events> {
        Ok(match workload {
            Workload::Intake => {
                Events { first: intake_event(), warm: Box::new(intake_event), expect: Expect::Status(202) }
            }
            Workload::Pages => {
                let page = |path: &str, query: &[(&str, &str)]| {
                    let route = if path == "/privacy" { "GET /privacy" } else { "GET /privacy/{kind}" };
                    api_gateway_event("GET", path, route, query, None, None, None)
                };
                let warm = vec![
                    page("/privacy", &[("region", "NL"), ("lang", "nl")]),
                    page("/privacy", &[("region", "US-CA")]),
                    page("/privacy/access", &[("region", "DE")]),
                    page("/privacy/deletion", &[("region", "US-CA"), ("for", "someone")]),
                ];
                Events::cycling(page("/privacy", &[]), warm, Expect::Status(200))
            }
            Workload::Verify => {
                let (record, token) = self.request(RequestKind::Access, Stage::Pending).await?;
                let first = verify_event(&record.id.to_string(), token.expose_secret());
                let wrong = "A".repeat(43);
                Events {
                    first,
                    warm: Box::new(move || verify_event(&RequestId::generate().to_string(), &wrong)),
                    expect: Expect::Status(200),
                }
            }
            Workload::Download => {
                let (id, token) = self.download().await?;
                let event = api_gateway_event(
                    "GET",
                    &format!("/requests/{id}/download"),
                    "GET /requests/{id}/download",
                    &[("token", token.expose_secret())],
                    None,
                    Some(json!({"id": id.to_string()})),
                    None,
                );
                Events::same(event, Expect::Status(302))
            }
            Workload::Admin => {
                let (id, _) = self.download().await?;
                Events::cycling(staff_list(), vec![staff_show(id), staff_list()], Expect::Status(200))
            }
            Workload::Dispatch => {
                // Only the seeded request's records: what other functions wrote meanwhile (a
                // completion would make dispatch replace the download fixture's link) is left out.
                drain(self.stream.as_mut().context("no stream open")?).await?;
                let (record, _) = self.request(RequestKind::Access, Stage::Verified).await?;
                let records = drain(self.stream.as_mut().context("no stream open")?).await?;
                let key = format!("REQ#{}", record.id);
                let records: Vec<Value> = records
                    .into_iter()
                    .filter(|r| r["dynamodb"]["Keys"]["pk"]["S"] == key.as_str())
                    .collect();
                if records.is_empty() {
                    bail!("the emulator's stream held nothing of the seeded request");
                }
                Events::same(json!({ "Records": records }), Expect::Triaged(record.id))
            }
            Workload::Export => {
                let (record, _) = self.request(RequestKind::Access, Stage::Triaged).await?;
                let job = ExportJob { request_id: record.id, version: record.version };
                Events::same(sqs_event("EXPORT_QUEUE_URL", &job)?, Expect::Completed(record.id))
            }
            Workload::Erasure => {
                let (record, _) = self.request(RequestKind::Deletion, Stage::Triaged).await?;
                let job =
                    ErasureJob { request_id: record.id, version: record.version, change: DataChange::Erase };
                Events::same(sqs_event("ERASURE_QUEUE_URL", &job)?, Expect::Completed(record.id))
            }
            Workload::Reminders => Events::same(json!({"sweep": "daily"}), Expect::Answer),
            Workload::MailEvents => {
                let (id, to) = match &self.mailed {
                    Some(mailed) => mailed.clone(),
                    None => {
                        let (record, _) = self.request(RequestKind::Access, Stage::Pending).await?;
                        let mailed = (record.id, record.email.normalized().to_owned());
                        self.mailed = Some(mailed.clone());
                        mailed
                    }
                };
                let tags = MailTags::new(MessageKind::Verification, Some(id));
                let message = |n: &str| format!("0102019{}-bench-{n}-000000", uuid::Uuid::new_v4().simple());
                let first = mail_event(&message("first"), tags, &to);
                let warm = (0..10).map(|n| mail_event(&message(&n.to_string()), tags, &to)).collect();
                let delivered = self.deliveries(id).await?;
                Events::cycling(first, warm, Expect::Deliveries(id, delivered))
            }
            Workload::Empty => Events::same(json!({}), Expect::Answer),
        })
    }
}

struct Measured {
    init: Vec<Duration>,
    init_cpu: Vec<Duration>,
    first_response: Vec<Duration>,
    peak_rss_kib: u64,
    warm_per_invocation: Duration,
    failures: usize,
    invocations: usize,
}

/// Whether an invocation succeeded: no runtime error, no 5xx, no failed batch items.
fn ok(response: &Value) -> bool {
    if response.get("runtime_error").is_some() {
        return false;
    }
    let failed_items =
        response.get("batchItemFailures").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    // HTTP functions answer with an API Gateway response; anything below 500 is a handled request.
    !failed_items && response.get("statusCode").and_then(Value::as_u64).is_none_or(|s| s < 500)
}

/// The time a process's threads have run on a CPU (the first field of each thread's schedstat, in
/// nanoseconds).
fn cpu_time(pid: u32) -> Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).context("schedstat")?;
    }
    Ok(Duration::from_nanos(total))
}

fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")
}

struct Run {
    init: Duration,
    /// CPU time the process spent until then, all its threads: steadier than the wall clock on
    /// a machine that is busy with other work.
    init_cpu: Duration,
    first_response: Duration,
    /// Peak RSS and time per warm invocation, when there were warm invocations.
    warm: Option<(u64, Duration)>,
    failures: usize,
}

/// Starts the bootstrap against a fresh Runtime API and sends it `events`: the first, then
/// `warm` more.
async fn run_once(stack: &Stack, target: &Target, mut events: Events, warm: usize) -> Result<Run> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (next_tx, mut next_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (response_tx, mut response_rx) = mpsc::unbounded_channel();
    let api = Arc::new(Api {
        timeout: target.limits.timeout,
        next_asked: next_tx,
        events: Mutex::new(event_rx),
        responses: response_tx,
    });
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(api.clone(), request));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });

    // The functions' own logs, for finding out why one fails: COLDSTART_LOG_LEVEL=INFO.
    let log_level = std::env::var("COLDSTART_LOG_LEVEL").ok();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&target.path)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &target.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", target.limits.memory_mb.to_string())
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", log_level.as_deref().unwrap_or("WARN"))
        .stdout(if log_level.is_some() { Stdio::inherit() } else { Stdio::null() })
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", target.path))?;
    let pid = child.id().context("pid")?;

    let timeout = Duration::from_secs(60);
    let asked = tokio::time::timeout(timeout, next_rx.recv()).await?.context("runtime API closed")?;
    let init = asked - started;
    // It waits for its first event now, so its CPU time stands still.
    let init_cpu = cpu_time(pid)?;
    event_tx.send((uuid::Uuid::new_v4().to_string(), events.first))?;
    let (answered, first) =
        tokio::time::timeout(timeout, response_rx.recv()).await?.context("no response")?;
    let first_response = answered - started;
    let mut failures = 0;
    if !ok(&first) {
        eprintln!("{}: first invocation failed: {first}", target.name);
        failures += 1;
    } else if let Some(why) = stack.check(&events.expect, &first).await? {
        eprintln!("{}: first invocation did not do its work: {why}", target.name);
        failures += 1;
    }

    let mut warm_result = None;
    if warm > 0 {
        let warm_start = Instant::now();
        for _ in 0..warm {
            event_tx.send((uuid::Uuid::new_v4().to_string(), (events.warm)()))?;
            let (_, response) =
                tokio::time::timeout(timeout, response_rx.recv()).await?.context("no response")?;
            if !ok(&response) {
                if failures == 0 {
                    eprintln!("{}: warm invocation failed: {response}", target.name);
                }
                failures += 1;
            }
        }
        let per = warm_start.elapsed() / warm as u32;
        // The process now waits for its next event: its high-water mark covers every invocation.
        tokio::time::timeout(timeout, next_rx.recv()).await?;
        warm_result = Some((peak_rss_kib(pid)?, per));
    }
    child.kill().await.ok();
    server.abort();
    Ok(Run { init, init_cpu, first_response, warm: warm_result, failures })
}

/// The order of one round's targets: random, so that no target always starts right after the
/// same one (whose aftermath in the emulator would land on it in every round).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    // A v4 UUID's 122 random bits pick one of n! orders for any n a bench has (20! < 2^62).
    let mut bits = uuid::Uuid::new_v4().as_u128();
    for i in (1..n).rev() {
        let choices = i as u128 + 1;
        order.swap(i, (bits % choices) as usize);
        bits /= choices;
    }
    order
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

const MIB: f64 = 1024.0 * 1024.0;

/// `name<TAB>bytes<TAB>zipped bytes` lines.
fn read_sizes(path: &str) -> Result<HashMap<String, (u64, u64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut sizes = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, bytes, zipped] = fields.as_slice() else { bail!("{path}: bad line {line:?}") };
        sizes.insert((*name).to_owned(), (bytes.parse()?, zipped.parse()?));
    }
    Ok(sizes)
}

/// `--init-costs STEP...`: runs the pieces a function's init is made of, in this order, once
/// each in this fresh process (the first use is what a cold start pays), and prints what each
/// took. Run it many times and compare medians to see where an init's time goes.
async fn init_costs(steps: &[String]) -> Result<()> {
    use privacy_shared::config::{DispatchSettings, Env, WorkerSettings};
    let mut sdk = None;
    let mut report = Vec::new();
    for step in steps {
        let started = Instant::now();
        match step.as_str() {
            "telemetry" => privacy_shared::telemetry::init(),
            "config" => drop(privacy_shared::Config::load(&Env::process())?),
            "datamap" => drop(DataMap::builtin()?),
            "dispatch-settings" => drop(DispatchSettings::load(&Env::process())?),
            "worker-settings" => drop(WorkerSettings::erasure(&Env::process())?),
            "templates" => drop(privacy_shared::mail::templates::Templates::new()),
            "sdk" => sdk = Some(privacy_shared::deps::sdk_from_env().await),
            // What the SDK does left to itself: an HTTPS client per SDK client.
            "sdk-default" => {
                sdk = Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
            }
            client => {
                let sdk = sdk.as_ref().context("`sdk` first")?;
                match client {
                    "dynamodb" => drop(aws_sdk_dynamodb::Client::new(sdk)),
                    "sesv2" => drop(aws_sdk_sesv2::Client::new(sdk)),
                    "sqs" => drop(aws_sdk_sqs::Client::new(sdk)),
                    "s3" => drop(privacy_shared::deps::s3_client(sdk, true)),
                    other => bail!("unknown step {other}"),
                }
            }
        }
        report.push(format!("{step}={}", started.elapsed().as_micros()));
    }
    println!("{}", report.join(" "));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("--init-costs") {
        return init_costs(&all[1..]).await;
    }
    let mut args = all.into_iter();
    let mut runs = 15;
    let mut warm = 200;
    let mut sizes = HashMap::new();
    let mut targets = Vec::new();
    let template = devstack::template::Template::load(&devstack::template::default_path())?;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--warm" => warm = args.next().context("--warm N")?.parse()?,
            "--sizes" => sizes = read_sizes(&args.next().context("--sizes FILE")?)?,
            spec => {
                let (name, rest) = spec.split_once('=').context("NAME=PATH:WORKLOAD")?;
                let (path, workload) = rest.rsplit_once(':').context("NAME=PATH:WORKLOAD")?;
                let workload = Workload::parse(workload)?;
                let limits = limits(&template, workload.binary());
                targets.push(Target { name: name.into(), path: path.into(), workload, limits });
            }
        }
    }
    if targets.is_empty() || runs == 0 {
        bail!("usage: coldstart [--runs N] [--warm N] [--sizes FILE] NAME=PATH:WORKLOAD ...");
    }
    let workloads: Vec<Workload> = targets.iter().map(|t| t.workload).collect();
    let mut stack = Stack::open(&workloads).await?;
    for target in &targets {
        // Brings the binary into the page cache and checks the events work; not counted.
        let events = stack.events(target.workload).await?;
        let run = run_once(&stack, target, events, 0).await?;
        if run.failures > 0 {
            eprintln!("{}: the unmeasured first start failed (see above)", target.name);
        }
    }
    let mut results: Vec<Measured> = targets
        .iter()
        .map(|_| Measured {
            init: Vec::new(),
            init_cpu: Vec::new(),
            first_response: Vec::new(),
            peak_rss_kib: 0,
            warm_per_invocation: Duration::ZERO,
            failures: 0,
            invocations: 0,
        })
        .collect();
    for run in 0..runs {
        for at in shuffled(targets.len()) {
            let (target, m) = (&targets[at], &mut results[at]);
            // The last round also drives the warm invocations.
            let warm_now = if run + 1 == runs { warm } else { 0 };
            let events = stack.events(target.workload).await?;
            let result = run_once(&stack, target, events, warm_now).await?;
            m.init.push(result.init);
            m.init_cpu.push(result.init_cpu);
            m.first_response.push(result.first_response);
            m.failures += result.failures;
            m.invocations += 1 + warm_now;
            if let Some((rss, per)) = result.warm {
                m.peak_rss_kib = rss;
                m.warm_per_invocation = per;
            }
        }
    }
    let floor_at = targets.iter().position(|t| t.name == "floor-sdk");
    let floor = floor_at.map(|i| median(&results[i].init));
    let floor_cpu = floor_at.map(|i| median(&results[i].init_cpu));
    let times = |d: Duration, of: Option<Duration>| of.map(|f| d.as_secs_f64() / f.as_secs_f64());
    println!(
        "Medians of {runs} interleaved cold starts (random order per round); peak RSS (VmHWM) after {warm} warm invocations. \
         Targets: init <= {TARGET_INIT_RATIO}x the SDK floor, peak RSS < {TARGET_RSS_MIB} MiB, zipped < {TARGET_ZIPPED_MIB} MiB. \
         Init CPU is the CPU time the process used until it asked for its first event (all threads): \
         steadier than the wall clock when the machine is busy."
    );
    println!();
    println!(
        "| function | zipped (MiB) | init median (ms) | init / SDK floor | init CPU median (ms) | init CPU / SDK floor | first response median (ms) | peak RSS (MiB) | warm per invocation (ms) | failures | targets |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (target, m) in targets.iter().zip(&results) {
        let init = median(&m.init);
        let ratio = times(init, floor);
        let init_cpu = median(&m.init_cpu);
        let rss = m.peak_rss_kib as f64 / 1024.0;
        let zipped = sizes.get(&target.name).map(|(_, z)| *z as f64 / MIB);
        let mut missed = Vec::new();
        if ratio.is_some_and(|r| r > TARGET_INIT_RATIO) {
            missed.push("init");
        }
        if warm > 0 && rss >= TARGET_RSS_MIB {
            missed.push("RSS");
        }
        if zipped.is_some_and(|z| z >= TARGET_ZIPPED_MIB) {
            missed.push("size");
        }
        if m.failures > 0 {
            missed.push("failures");
        }
        let verdict = if target.workload == Workload::Empty {
            "floor".to_owned()
        } else if missed.is_empty() {
            "met".to_owned()
        } else {
            format!("missed: {}", missed.join(", "))
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {}/{} | {} |",
            target.name,
            zipped.map(|z| format!("{z:.2}")).unwrap_or_else(|| "-".into()),
            ms(init),
            ratio.map(|r| format!("{r:.2}x")).unwrap_or_default(),
            ms(init_cpu),
            times(init_cpu, floor_cpu).map(|r| format!("{r:.2}x")).unwrap_or_default(),
            ms(median(&m.first_response)),
            rss,
            ms(m.warm_per_invocation),
            m.failures,
            m.invocations,
            verdict
        );
    }
    println!();
    println!("| function | what its invocations do |");
    println!("|---|---|");
    for target in &targets {
        println!("| {} | {} |", target.name, target.workload.what());
    }
    Ok(())
}
