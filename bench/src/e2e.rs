//! `make bench-e2e`: the cost of a request. Requests are made end to end, as requesters make
//! them, against release builds of every function, each hosted as Lambda runs it
//! (`lambda_host`), with the emulator metering every AWS call (dev/emulator_patches.py):
//!
//! - access and deletion: `POST /requests` (intake), the verification mail's link opened (`GET
//!   /verify`, `POST /requests/{id}/preview`) and confirmed (`POST /requests/{id}/verify`), the
//!   table's stream delivered to dispatch and the job queues to export and erasure by the pump
//!   (Lambda's event source mappings), until the completion mail arrives; an access request's
//!   download link is then followed (`GET /requests/{id}/download`, then S3 through the presigned
//!   URL);
//! - opt-out of sale: `POST /requests`, completed at once, and its acknowledgement mail;
//! - every mail sent gets its two SES events (send and delivery, as the configuration set
//!   publishes them through SNS) delivered to mail-events.
//!
//! The kinds run one after another (access, then deletion, then opt-out), each from a meter
//! reading to the next, so each kind's cost is its own; the mix is their sum. The daily sweep
//! runs once at the end and is reported apart: it costs per day, not per request.
//!
//! Prints, per function, invocations, billed duration (p50/p95), CPU time and peak memory with a
//! MemorySize recommendation; per request, the AWS calls by service (DynamoDB request units
//! computed from item sizes, as AWS bills them); and the cost per 1,000 fulfilled requests at the
//! list prices in [`PRICES`] (eu-west-1, arm64), printed with their date.
//!
//! Environment: what `make dev` gives the functions (dev/bin/bench-e2e sets it), and
//! E2E_REQUESTS (200: half access, 30% deletion, the rest opt-out), E2E_CLIENTS (4 requesters at
//! once), E2E_CREDENTIALS (the role credentials `devstack provision` wrote: each function runs as
//! its own role, which is also how the meter tells the callers apart), E2E_LAMBDA_DIR
//! (target/lambda), E2E_PATIENCE_SECONDS (600 per request), E2E_LOG=1 (echo the functions' logs).

mod lambda_host;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use devstack::mailbox::SentMail;
use devstack::pump::{Invoker, Pump, QueueMapping, StreamMapping};
use lambda_host::{Hosted, Invocation, Spec};
use privacy_shared::datamap::{DataMap, Location, SubjectAttribute};
use privacy_shared::domain::{RequestId, Status};
use privacy_shared::store::{DynamoStore, Requests};

/// The date the prices below were written down.
const PRICES_AS_OF: &str = "2026-12-02";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Billed {
    LambdaGbSecond,
    LambdaRequest,
    HttpApiRequest,
    DynamoWriteUnit,
    DynamoReadUnit,
    StreamsRead,
    SesMessage,
    SnsPublish,
    S3WriteRequest,
    S3ReadRequest,
    S3TransferOutGb,
    SqsFifoRequest,
    KmsRequest,
    LogsIngestedGb,
    XRayTrace,
}

struct Price {
    item: Billed,
    usd: f64,
    per: f64,
    unit: &'static str,
    basis: &'static str,
}

/// List prices, eu-west-1 (Europe, Ireland), arm64, without free tiers or volume discounts.
const PRICES: [Price; 15] = [
    Price {
        item: Billed::LambdaGbSecond,
        usd: 0.0000133334,
        per: 1.0,
        unit: "GB-second (arm64, first 7.5 billion a month)",
        basis: "aws.amazon.com/lambda/pricing; Ireland charges what N. Virginia does",
    },
    Price {
        item: Billed::LambdaRequest,
        usd: 0.20,
        per: 1e6,
        unit: "invocations",
        basis: "aws.amazon.com/lambda/pricing",
    },
    Price {
        item: Billed::HttpApiRequest,
        usd: 1.11,
        per: 1e6,
        unit: "HTTP API requests (first 300 million a month)",
        basis: "aws.amazon.com/api-gateway/pricing, Ireland (N. Virginia: $1.00); not re-read here",
    },
    Price {
        item: Billed::DynamoWriteUnit,
        usd: 0.7068,
        per: 1e6,
        unit: "on-demand write request units (Standard table class)",
        basis: "Ireland's $1.4135 halved by the 50% on-demand cut of 1 Nov 2024 (N. Virginia $1.25 -> $0.625); \
                the $0.7625 sometimes quoted is Frankfurt's",
    },
    Price {
        item: Billed::DynamoReadUnit,
        usd: 0.1415,
        per: 1e6,
        unit: "on-demand read request units",
        basis: "Ireland's $0.283 halved on 1 Nov 2024 (N. Virginia $0.25 -> $0.125); Frankfurt's is $0.1525",
    },
    Price {
        item: Billed::StreamsRead,
        usd: 0.0,
        per: 1e5,
        unit: "DynamoDB Streams GetRecords made by a Lambda trigger",
        basis: "free for Lambda event source mappings (others: $0.0228 per 100,000 in Ireland)",
    },
    Price {
        item: Billed::SesMessage,
        usd: 0.10,
        per: 1e3,
        unit: "outbound emails (each recipient)",
        basis: "aws.amazon.com/ses/pricing",
    },
    Price {
        item: Billed::SnsPublish,
        usd: 0.50,
        per: 1e6,
        unit: "SNS publishes (SES events; deliveries to Lambda are free)",
        basis: "aws.amazon.com/sns/pricing",
    },
    Price {
        item: Billed::S3WriteRequest,
        usd: 0.005,
        per: 1e3,
        unit: "S3 PUT, COPY, POST, LIST requests (DELETE is free)",
        basis: "aws.amazon.com/s3/pricing, Ireland",
    },
    Price {
        item: Billed::S3ReadRequest,
        usd: 0.0004,
        per: 1e3,
        unit: "S3 GET, HEAD and other requests",
        basis: "aws.amazon.com/s3/pricing, Ireland",
    },
    Price {
        item: Billed::S3TransferOutGb,
        usd: 0.09,
        per: 1.0,
        unit: "GB out to the internet (the downloads; first 10 TB a month)",
        basis: "aws.amazon.com/s3/pricing, Ireland",
    },
    Price {
        item: Billed::SqsFifoRequest,
        usd: 0.50,
        per: 1e6,
        unit: "SQS FIFO requests (each 64 KB)",
        basis: "aws.amazon.com/sqs/pricing",
    },
    Price {
        item: Billed::KmsRequest,
        usd: 0.03,
        per: 1e4,
        unit: "KMS requests",
        basis: "aws.amazon.com/kms/pricing",
    },
    Price {
        item: Billed::LogsIngestedGb,
        usd: 0.57,
        per: 1.0,
        unit: "GB of CloudWatch Logs ingested (standard class)",
        basis: "aws.amazon.com/cloudwatch/pricing, Ireland (N. Virginia $0.50); not re-read here",
    },
    Price {
        item: Billed::XRayTrace,
        usd: 5.0,
        per: 1e6,
        unit: "X-Ray traces recorded",
        basis: "aws.amazon.com/xray/pricing",
    },
];

fn price(item: Billed) -> f64 {
    PRICES.iter().find(|p| p.item == item).map_or(0.0, |p| p.usd / p.per)
}

/// Lambda gives a function a full vCPU at 1,769 MB and a proportional share below.
const FULL_CPU_MB: f64 = 1769.0;

/// Peak memory x 1.5, rounded up to a 128 MB step, at least 128.
fn recommended_memory_mb(peak_rss_kib: u64) -> u64 {
    let wanted = peak_rss_kib as f64 / 1024.0 * 1.5;
    ((wanted / 128.0).ceil().max(1.0) as u64) * 128
}

/// The duration Lambda would bill at `memory_mb`: the wall time measured here, with its CPU part
/// stretched by the share of a vCPU that memory size gets (the waiting part does not change).
fn estimated_ms(invocation: &Invocation, memory_mb: u64) -> f64 {
    let wall = invocation.duration.as_secs_f64() * 1000.0;
    let cpu = invocation.cpu.as_secs_f64() * 1000.0;
    let share = (memory_mb as f64 / FULL_CPU_MB).min(1.0);
    ((wall - cpu).max(0.0) + cpu / share).ceil().max(1.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// What is measured

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Access,
    Deletion,
    OptOut,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Access, Kind::Deletion, Kind::OptOut];

    fn wire(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Deletion => "deletion",
            Kind::OptOut => "opt_out_of_sale",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Deletion => "deletion",
            Kind::OptOut => "opt-out",
        }
    }

    /// How many of `total` requests are of this kind: half access, 30% deletion, the rest opt-out.
    fn share(self, total: usize) -> usize {
        let access = total / 2;
        let deletion = total * 3 / 10;
        match self {
            Kind::Access => access,
            Kind::Deletion => deletion,
            Kind::OptOut => total - access - deletion,
        }
    }

    fn has_data(self) -> bool {
        self != Kind::OptOut
    }
}

/// One meter line: a caller's calls of one operation on one resource.
#[derive(Clone, Debug, Default, PartialEq)]
struct Calls {
    requests: f64,
    read_units: f64,
    write_units: f64,
    index_write_units: f64,
    bytes_in: f64,
    bytes_out: f64,
    messages: f64,
    empty: f64,
}

impl Calls {
    fn from_json(call: &Value) -> Calls {
        let n = |name: &str| call[name].as_f64().unwrap_or_default();
        Calls {
            requests: n("requests"),
            read_units: n("read_units"),
            write_units: n("write_units"),
            index_write_units: n("index_write_units"),
            bytes_in: n("bytes_in"),
            bytes_out: n("bytes_out"),
            messages: n("messages"),
            empty: n("empty"),
        }
    }

    fn add(&mut self, other: &Calls, sign: f64) {
        self.requests += sign * other.requests;
        self.read_units += sign * other.read_units;
        self.write_units += sign * other.write_units;
        self.index_write_units += sign * other.index_write_units;
        self.bytes_in += sign * other.bytes_in;
        self.bytes_out += sign * other.bytes_out;
        self.messages += sign * other.messages;
        self.empty += sign * other.empty;
    }
}

/// (caller, service, operation, resource)
type CallKey = (String, String, String, String);

/// A reading of the emulator's meter.
#[derive(Clone, Debug, Default)]
struct Reading {
    calls: BTreeMap<CallKey, Calls>,
    mail: Vec<Value>,
}

impl Reading {
    fn parse(report: &Value) -> Reading {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let calls = report["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let key =
                    (text(&c["caller"]), text(&c["service"]), text(&c["operation"]), text(&c["resource"]));
                (key, Calls::from_json(c))
            })
            .collect();
        Reading { calls, mail: report["mail"].as_array().cloned().unwrap_or_default() }
    }

    /// What was counted after `earlier`.
    fn since(&self, earlier: &Reading) -> Reading {
        let mut calls = self.calls.clone();
        for (key, before) in &earlier.calls {
            calls.entry(key.clone()).or_default().add(before, -1.0);
        }
        calls.retain(|_, c| c.requests > 0.0);
        let seen: HashSet<&str> = earlier.mail.iter().filter_map(|m| m["message_id"].as_str()).collect();
        let mail = self
            .mail
            .iter()
            .filter(|m| !seen.contains(m["message_id"].as_str().unwrap_or_default()))
            .cloned()
            .collect();
        Reading { calls, mail }
    }
}

struct Meter {
    url: String,
    http: reqwest::Client,
}

impl Meter {
    async fn read(&self) -> Result<Reading> {
        let report: Value = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()
            .context("the emulator's meter is off: start it with EMULATOR_METER=1")?
            .json()
            .await?;
        Ok(Reading::parse(&report))
    }

    async fn reset(&self) -> Result<()> {
        self.http.delete(&self.url).send().await?.error_for_status()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The functions, hosted

#[derive(Clone)]
struct Functions(Arc<BTreeMap<String, Arc<Hosted>>>);

impl Functions {
    fn get(&self, name: &str) -> Result<&Arc<Hosted>> {
        self.0.get(name).with_context(|| format!("{name} is not hosted"))
    }
}

impl Invoker for Functions {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        self.get(function)?.invoke(payload).await
    }
}

/// The functions a request's journey runs through (admin is the staff's, not a request's).
const HOSTED: [&str; 8] =
    ["intake", "verify", "download", "dispatch", "export", "erasure", "mail-events", "reminders"];

/// Each function's timeout and memory size from the template.
fn limits(template: &devstack::template::Template, binary: &str) -> (Duration, u64) {
    let root = template.raw();
    let globals = &root["Globals"]["Function"];
    let timeout = globals["Timeout"].as_u64().unwrap_or(3);
    let memory = globals["MemorySize"].as_u64().unwrap_or(128);
    let function = root["Resources"].as_mapping().and_then(|resources| {
        resources.values().find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
    });
    let (timeout, memory) = match function {
        Some(f) => (
            f["Properties"]["Timeout"].as_u64().unwrap_or(timeout),
            f["Properties"]["MemorySize"].as_u64().unwrap_or(memory),
        ),
        None => (timeout, memory),
    };
    (Duration::from_secs(timeout), memory)
}

/// Access key id -> binary, from the credentials file `devstack provision` wrote.
fn role_keys(path: &str) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut keys = HashMap::new();
    let mut profile = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            profile = Some(name.to_owned());
        } else if let Some((name, value)) = line.split_once('=')
            && name.trim() == "aws_access_key_id"
            && let Some(profile) = &profile
        {
            keys.insert(value.trim().to_owned(), profile.clone());
        }
    }
    Ok(keys)
}

// ---------------------------------------------------------------------------------------------
// Events as API Gateway and SNS send them

fn api_gateway_event(
    method: &str,
    path: &str,
    route: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
    id: Option<&str>,
) -> Value {
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "headers": {"content-type": "application/json", "host": "privacy.example.test", "user-agent": "bench-e2e"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "privacy.example.test",
            "domainPrefix": "privacy",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10", "userAgent": "bench-e2e"},
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": route, "stage": "$default",
            "time": Utc::now().format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": Utc::now().timestamp_millis()
        },
        "isBase64Encoded": false
    });
    if !query.is_empty() {
        let parameters: serde_json::Map<String, Value> =
            query.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if let Some(id) = id {
        event["pathParameters"] = json!({"id": id});
    }
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    event
}

/// An SES event for one of our tagged mails, wrapped as SNS hands it to Lambda.
fn mail_event(event_type: &str, mail: &Value) -> Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut tags: serde_json::Map<String, Value> = mail["tags"]
        .as_object()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), json!([v]))).collect())
        .unwrap_or_default();
    tags.insert("ses:configuration-set".into(), json!(["privacy-requests"]));
    let to = mail["to"].clone();
    let mut ses = json!({
        "eventType": event_type,
        "mail": {
            "timestamp": now, "source": "privacy@example.com",
            "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/privacy@example.com",
            "sendingAccountId": "123456789012", "messageId": mail["message_id"], "destination": to,
            "headersTruncated": false, "tags": tags
        }
    });
    if event_type == "Delivery" {
        ses["delivery"] = json!({
            "timestamp": now, "processingTimeMillis": 512, "recipients": mail["to"],
            "smtpResponse": "250 2.0.0 OK", "reportingMTA": "a8-1.smtp-out.amazonses.com"
        });
    } else {
        ses["send"] = json!({});
    }
    let topic = "arn:aws:sns:eu-west-1:123456789012:privacy-mail-events";
    json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:{}", uuid::Uuid::new_v4()),
        "Sns": {
            "Type": "Notification", "MessageId": uuid::Uuid::new_v4().to_string(), "TopicArn": topic,
            "Subject": null, "Message": ses.to_string(), "Timestamp": now, "SignatureVersion": "1",
            "Signature": "RXhhbXBsZQ==",
            "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    }]})
}

// ---------------------------------------------------------------------------------------------
// The people whose data the access and deletion requests are about

/// Writes `count` people into the data map's sources, each a copy of the sample's first account
/// holder (every source of theirs, their recordings), and returns their addresses.
async fn seed_people(
    sdk: &aws_config::SdkConfig,
    map: &DataMap,
    count: usize,
    run: &str,
) -> Result<Vec<String>> {
    let sample = devstack::seed::SampleData::load(&devstack::seed::default_path())?;
    let accounts = map.user_id_source().context("the data map has no account source")?;
    let template =
        sample.items.get(&accounts.id).and_then(|items| items.first()).context("no sample account")?;
    let id_attribute = accounts.provides_user_id.as_deref().unwrap_or("user_id");
    let (email, user_id) = (
        template["email"].as_str().context("sample account email")?.to_owned(),
        template[id_attribute].as_str().context("sample account user id")?.to_owned(),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = devstack::provision::s3_client(sdk);
    let mut people = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    for n in 0..count {
        let tag = format!("{run}-{n}");
        let (new_email, new_id) = (format!("person-{tag}@example.com"), format!("u-{tag}"));
        people.push(new_email.clone());
        let mut items = Vec::new();
        let mut objects = Vec::new();
        for source in map.sources() {
            let their = |v: &str, by: SubjectAttribute| match by {
                SubjectAttribute::Email => v == email,
                SubjectAttribute::UserId => v == user_id,
            };
            let swap = |text: &str| text.replace(&email, &new_email).replace(&user_id, &new_id);
            match &source.location {
                Location::Table { table, find_by, table_key, .. } => {
                    let by = match find_by {
                        SubjectAttribute::Email => "email",
                        SubjectAttribute::UserId => "user_id",
                    };
                    for item in sample.items.get(&source.id).into_iter().flatten() {
                        if !item[by].as_str().is_some_and(|v| their(v, *find_by)) {
                            continue;
                        }
                        let mut copy: Value = serde_json::from_str(&swap(&item.to_string()))?;
                        if table_key != by {
                            let key = copy[table_key.as_str()].as_str().unwrap_or_default().to_owned();
                            copy[table_key.as_str()] = json!(format!("{key}-{tag}"));
                        }
                        items.push((table.clone(), copy));
                    }
                }
                Location::Objects { bucket, .. } => {
                    for object in sample.objects.get(&source.id).into_iter().flatten() {
                        if object.key.contains(&user_id) || object.key.contains(&email) {
                            objects.push((bucket.clone(), swap(&object.key), object.size));
                        }
                    }
                }
                // The benchmark's stacks run the AWS side alone (DATA_MAP_SCOPE=aws).
                Location::Webhook { .. } | Location::Manual { .. } => {}
            }
        }
        let (dynamo, s3) = (dynamo.clone(), s3.clone());
        running.spawn(async move {
            for (table, item) in items {
                dynamo
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(serde_dynamo::to_item(item)?))
                    .send()
                    .await?;
            }
            for (bucket, key, size) in objects {
                let body = devstack::seed::object_bytes(&key, size);
                s3.put_object().bucket(&bucket).key(&key).body(body.into()).send().await?;
            }
            anyhow::Ok(())
        });
        while running.len() >= 4 {
            running.join_next().await.context("seeding")???;
        }
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(people)
}

// ---------------------------------------------------------------------------------------------
// Requesters

struct World {
    functions: Functions,
    emulator: String,
    http: reqwest::Client,
    patience: Duration,
    /// API Gateway requests made, by route.
    api_requests: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

const COMPLETED_SUBJECT: &str = "Your privacy request has been completed";

struct Outcome {
    id: RequestId,
    kind: Kind,
    downloaded_bytes: Option<usize>,
}

impl World {
    /// An API Gateway request to `function`: its status and its response.
    async fn api(&self, function: &str, route: &'static str, event: Value) -> Result<(u16, Value)> {
        if let Ok(mut routes) = self.api_requests.lock() {
            *routes.entry(route).or_default() += 1;
        }
        let answer = self.functions.get(function)?.invoke(event).await?;
        let status = answer["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0);
        Ok((status, answer))
    }

    async fn mail_to(&self, address: &str, wanted: impl Fn(&SentMail) -> bool) -> Result<SentMail> {
        devstack::mailbox::wait_for_mail(
            &self.http,
            &self.emulator,
            address,
            Instant::now(),
            self.patience,
            wanted,
        )
        .await
    }

    async fn request(&self, kind: Kind, address: &str) -> Result<Outcome> {
        let body = json!({"email": address, "kind": kind.wire(), "region": "NL", "language": "en"});
        let (status, answer) = self
            .api(
                "intake",
                "POST /requests",
                api_gateway_event("POST", "/requests", "POST /requests", &[], Some(body), None),
            )
            .await?;
        if status != 202 {
            bail!("submitting answered {status}");
        }
        let submitted: Value = serde_json::from_str(answer["body"].as_str().unwrap_or("{}"))?;
        let id: RequestId =
            submitted["request_id"].as_str().context("no request id")?.parse().context("request id")?;
        if kind.has_data() {
            let mail = self.mail_to(address, |m| !m.verification_links().is_empty()).await?;
            let (linked, token) = mail.verification_links().pop().context("no verification link")?;
            if linked != id.to_string() {
                bail!("the verification mail is about another request");
            }
            let page = api_gateway_event("GET", "/verify", "GET /verify", &[], None, None);
            let (status, _) = self.api("verify", "GET /verify", page).await?;
            if status != 200 {
                bail!("the confirmation page answered {status}");
            }
            let path = |action: &str| format!("/requests/{id}/{action}");
            let preview = api_gateway_event(
                "POST",
                &path("preview"),
                "POST /requests/{id}/preview",
                &[],
                Some(json!({"token": token, "confirm": "request"})),
                Some(&linked),
            );
            let (status, _) = self.api("verify", "POST /requests/{id}/preview", preview).await?;
            if status != 200 {
                bail!("the preview answered {status}");
            }
            let confirm = api_gateway_event(
                "POST",
                &path("verify"),
                "POST /requests/{id}/verify",
                &[],
                Some(json!({"token": token})),
                Some(&linked),
            );
            let (status, _) = self.api("verify", "POST /requests/{id}/verify", confirm).await?;
            if status != 200 {
                bail!("confirming answered {status}");
            }
        }
        let done = self
            .mail_to(address, |m| {
                m.subject == COMPLETED_SUBJECT && (kind != Kind::Access || !download_link(m).is_empty())
            })
            .await?;
        let mut downloaded_bytes = None;
        if kind == Kind::Access {
            let (linked, token) = download_link(&done).pop().context("no download link")?;
            let event = api_gateway_event(
                "GET",
                &format!("/requests/{linked}/download"),
                "GET /requests/{id}/download",
                &[("token", &token)],
                None,
                Some(&linked),
            );
            let (status, answer) = self.api("download", "GET /requests/{id}/download", event).await?;
            let location = answer["headers"]["location"]
                .as_str()
                .or_else(|| answer["headers"]["Location"].as_str())
                .filter(|_| status == 302)
                .with_context(|| format!("the download answered {status}"))?;
            // The requester's browser follows the redirect to S3 (the presigned URL).
            let zip = self.http.get(location).send().await?.error_for_status()?.bytes().await?;
            if !zip.starts_with(b"PK") {
                bail!("the download is not a ZIP");
            }
            downloaded_bytes = Some(zip.len());
        }
        Ok(Outcome { id, kind, downloaded_bytes })
    }
}

/// (request id, token) of each download link in the mail: `…/requests/{id}/download?token=…`.
fn download_link(mail: &SentMail) -> Vec<(String, String)> {
    mail.links()
        .iter()
        .filter_map(|link| {
            let (path, query) = link.split_once('?')?;
            let id = path.strip_suffix("/download")?.rsplit('/').next()?.to_owned();
            let token = query.split('&').find_map(|pair| pair.strip_prefix("token="))?.to_owned();
            Some((id, token))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The pump, running beside the requesters

struct Pumping {
    /// Consecutive idle ticks so far.
    idle_ticks: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Pumping {
    fn start(mut pump: Pump<Functions>) -> Pumping {
        let idle_ticks = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (idle, failed, stopping) = (idle_ticks.clone(), failures.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !stopping.load(Ordering::Relaxed) {
                match pump.tick().await {
                    Ok(tick) if tick.idle() => {
                        idle.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(tick) => {
                        idle.store(0, Ordering::Relaxed);
                        let given_up = tick.messages_failed + tick.stream_records_given_up;
                        failed.fetch_add(given_up as u64, Ordering::Relaxed);
                    }
                    Err(err) => {
                        idle.store(0, Ordering::Relaxed);
                        eprintln!("pump: {err:#}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Pumping { idle_ticks, failures, stop, task }
    }

    /// Waits until the pump found nothing to deliver a few times in a row.
    async fn settle(&self) {
        self.idle_ticks.store(0, Ordering::Relaxed);
        while self.idle_ticks.load(Ordering::Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

// ---------------------------------------------------------------------------------------------
// One phase: the requests of one kind, their mail events, and what they cost

struct Phase {
    label: String,
    fulfilled: usize,
    failed: Vec<String>,
    calls: Reading,
    /// Invocations made in the phase, per function.
    invocations: BTreeMap<String, Vec<Invocation>>,
    log_bytes: BTreeMap<String, u64>,
    api_requests: u64,
    mail_events: u64,
    downloaded_bytes: u64,
}

struct Mark {
    reading: Reading,
    invocations: BTreeMap<String, usize>,
    log_bytes: BTreeMap<String, u64>,
    api_requests: u64,
}

async fn mark(world: &World, meter: &Meter) -> Result<Mark> {
    Ok(Mark {
        reading: meter.read().await?,
        invocations: world.functions.0.iter().map(|(n, f)| (n.clone(), f.invocations().len())).collect(),
        log_bytes: world.functions.0.iter().map(|(n, f)| (n.clone(), f.log_bytes())).collect(),
        api_requests: world.api_requests.lock().map(|r| r.values().sum()).unwrap_or_default(),
    })
}

/// Delivers each new mail's SES events (send, delivery) to mail-events, as SNS would.
async fn mail_events(world: &World, mails: &[Value]) -> Result<u64> {
    let mut delivered = 0;
    for mail in mails.iter().filter(|m| m["caller"] != "developer") {
        for event_type in ["Send", "Delivery"] {
            world.functions.get("mail-events")?.invoke(mail_event(event_type, mail)).await?;
            delivered += 1;
        }
    }
    Ok(delivered)
}

async fn finish_phase(
    world: &World,
    meter: &Meter,
    pumping: &Pumping,
    start: &Mark,
    label: String,
) -> Result<Phase> {
    pumping.settle().await;
    let mails = meter.read().await?.since(&start.reading).mail;
    let events = mail_events(world, &mails).await?;
    pumping.settle().await;
    let end = mark(world, meter).await?;
    let invocations = world
        .functions
        .0
        .iter()
        .map(|(n, f)| (n.clone(), f.invocations()[start.invocations[n]..end.invocations[n]].to_vec()))
        .collect();
    let log_bytes = end.log_bytes.iter().map(|(n, b)| (n.clone(), b - start.log_bytes[n])).collect();
    Ok(Phase {
        label,
        fulfilled: 0,
        failed: Vec::new(),
        calls: end.reading.since(&start.reading),
        invocations,
        log_bytes,
        api_requests: end.api_requests - start.api_requests,
        mail_events: events,
        downloaded_bytes: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// The report

/// Who made a call: a function (by its role's key), the event source mappings (the pump signs
/// with the developer key, as Lambda's pollers act for the account), or a requester's browser
/// (an S3 GET through download's presigned URL).
fn caller_name(keys: &HashMap<String, String>, caller: &str, service: &str, operation: &str) -> String {
    match keys.get(caller).map(String::as_str) {
        Some("download") if service == "s3" && operation == "GetObject" => "requester (presigned URL)".into(),
        Some(binary) => binary.to_owned(),
        None if caller == "developer" => "event source mappings".into(),
        None => caller.to_owned(),
    }
}

#[derive(Default)]
struct Costs {
    lines: BTreeMap<&'static str, f64>,
}

/// S3 operations billed at the PUT/COPY/POST/LIST rate; DELETE and abort are free; the rest GET's.
fn s3_rate(operation: &str) -> Option<Billed> {
    match operation {
        "DeleteObject" | "DeleteObjects" | "AbortMultipartUpload" => None,
        op if op.starts_with("Put")
            || op.starts_with("List")
            || op.starts_with("Post")
            || matches!(
                op,
                "CopyObject" | "UploadPart" | "CreateMultipartUpload" | "CompleteMultipartUpload"
            ) =>
        {
            Some(Billed::S3WriteRequest)
        }
        _ => Some(Billed::S3ReadRequest),
    }
}

fn costs(phase: &Phase, memory: &BTreeMap<String, u64>, requests_counted_on: impl Fn(&str) -> bool) -> Costs {
    let mut c = Costs::default();
    let mut add = |line: &'static str, usd: f64| *c.lines.entry(line).or_default() += usd;
    for (function, invocations) in &phase.invocations {
        if !requests_counted_on(function) {
            continue;
        }
        let mb = memory.get(function).copied().unwrap_or(128);
        let ms: f64 = invocations.iter().map(|i| estimated_ms(i, mb)).sum();
        add("Lambda duration", ms / 1000.0 * mb as f64 / 1024.0 * price(Billed::LambdaGbSecond));
        add("Lambda invocations", invocations.len() as f64 * price(Billed::LambdaRequest));
        add(
            "X-Ray traces (upper bound: every invocation sampled)",
            invocations.len() as f64 * price(Billed::XRayTrace),
        );
        let logged = phase.log_bytes.get(function).copied().unwrap_or_default() as f64;
        add("CloudWatch Logs ingestion", logged / 1e9 * price(Billed::LogsIngestedGb));
    }
    add("API Gateway HTTP API", phase.api_requests as f64 * price(Billed::HttpApiRequest));
    add("SNS (SES events published)", phase.mail_events as f64 * price(Billed::SnsPublish));
    for ((_, service, operation, _), calls) in &phase.calls.calls {
        match service.as_str() {
            "dynamodb" => {
                add(
                    "DynamoDB writes",
                    (calls.write_units + calls.index_write_units) * price(Billed::DynamoWriteUnit),
                );
                add("DynamoDB reads", calls.read_units * price(Billed::DynamoReadUnit));
            }
            "dynamodbstreams" if operation == "GetRecords" => {
                add("DynamoDB Streams reads", calls.requests * price(Billed::StreamsRead));
            }
            "sesv2" => add("SES", calls.messages * price(Billed::SesMessage)),
            "s3" => {
                if let Some(rate) = s3_rate(operation) {
                    add("S3 requests", calls.requests * price(rate));
                }
                if operation == "GetObject" {
                    add("S3 transfer out", calls.bytes_out / 1e9 * price(Billed::S3TransferOutGb));
                }
            }
            // Empty receives are the pollers' fixed cost, not a request's.
            "sqs" => add("SQS (FIFO)", (calls.requests - calls.empty) * price(Billed::SqsFifoRequest)),
            "kms" => add("KMS", calls.requests * price(Billed::KmsRequest)),
            _ => {}
        }
    }
    c
}

fn print_report(
    phases: &[Phase],
    sweep: &Phase,
    functions: &Functions,
    keys: &HashMap<String, String>,
    settings: &Settings,
) {
    let total_fulfilled: usize = phases.iter().map(|p| p.fulfilled).sum();
    let requested: usize = Kind::ALL.iter().map(|k| k.share(settings.requests)).sum();
    println!(
        "# make bench-e2e: {total_fulfilled} of {requested} requests fulfilled end to end ({})",
        phases.iter().map(|p| format!("{} {}", p.fulfilled, p.label)).collect::<Vec<_>>().join(", ")
    );
    println!();
    println!(
        "Release builds of every function (x86_64 here), each one process behind a local Lambda Runtime API, \
         one invocation at a time; {} requesters at once; the emulator meters every AWS call. Durations are \
         measured against the emulator (moto), not AWS.",
        settings.clients
    );
    for phase in phases.iter().filter(|p| !p.failed.is_empty()) {
        println!();
        println!("{}: {} failed, e.g. {}", phase.label, phase.failed.len(), phase.failed[0]);
    }

    // Per function, over the whole run (sweep included).
    println!();
    println!("## Functions");
    println!();
    println!(
        "| function | invocations | errors | billed ms p50 | billed ms p95 | CPU ms p50 | CPU ms p95 | peak RSS (MiB) | init (ms) | log bytes / invocation | MemorySize (template) | recommended | billed ms p95 at MemorySize, CPU-scaled |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, hosted) in functions.0.iter() {
        let all: Vec<Invocation> =
            phases.iter().chain([sweep]).flat_map(|p| p.invocations[name].clone()).collect();
        if all.is_empty() {
            continue;
        }
        let mut billed: Vec<f64> = all.iter().map(|i| i.billed_ms() as f64).collect();
        billed.sort_by(f64::total_cmp);
        let mut cpu: Vec<f64> = all.iter().map(|i| i.cpu.as_secs_f64() * 1000.0).collect();
        cpu.sort_by(f64::total_cmp);
        let mut scaled: Vec<f64> = all.iter().map(|i| estimated_ms(i, hosted.memory_mb)).collect();
        scaled.sort_by(f64::total_cmp);
        let peak = all.iter().map(|i| i.peak_rss_kib).max().unwrap_or_default();
        let logged: u64 = phases.iter().chain([sweep]).map(|p| p.log_bytes[name]).sum();
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} | {:.0} |",
            all.len(),
            all.iter().filter(|i| !i.ok).count(),
            quantile(&billed, 0.5),
            quantile(&billed, 0.95),
            quantile(&cpu, 0.5),
            quantile(&cpu, 0.95),
            peak as f64 / 1024.0,
            hosted.init.as_secs_f64() * 1000.0,
            logged as f64 / all.len() as f64,
            hosted.memory_mb,
            recommended_memory_mb(peak),
            quantile(&scaled, 0.95),
        );
    }
    println!();
    println!(
        "recommended = peak RSS x 1.5, rounded up to a 128 MB step (at least 128). Lambda gives a function the \
         CPU share of its memory (a full vCPU at {FULL_CPU_MB:.0} MB): the last column stretches each invocation's CPU \
         time by that share, which is what the cost below uses. Init is billed too (custom runtime), once per cold start."
    );

    // AWS calls per fulfilled request, the mix.
    println!();
    println!("## AWS calls per fulfilled request (the mix; DynamoDB units computed from item sizes)");
    println!();
    println!(
        "| service | operation | caller | calls | RRU | WRU (table + index) | bytes in | bytes out | messages |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows: BTreeMap<(String, String, String), Calls> = BTreeMap::new();
    for phase in phases {
        for ((caller, service, operation, _), calls) in &phase.calls.calls {
            let who = caller_name(keys, caller, service, operation);
            let row = rows.entry((service.clone(), operation.clone(), who)).or_default();
            row.add(calls, 1.0);
            // Empty receives are the pollers' fixed cost: shown below, not per request.
            row.requests -= calls.empty;
            row.empty = 0.0;
        }
    }
    let per = |v: f64| v / total_fulfilled.max(1) as f64;
    let cell =
        |v: f64, digits: usize| if v == 0.0 { String::new() } else { format!("{:.*}", digits, per(v)) };
    for ((service, operation, who), calls) in rows.iter().filter(|(_, c)| c.requests > 0.0) {
        println!(
            "| {service} | {operation} | {who} | {} | {} | {} | {} | {} | {} |",
            cell(calls.requests, 2),
            cell(calls.read_units, 2),
            cell(calls.write_units + calls.index_write_units, 2),
            cell(calls.bytes_in, 0),
            cell(calls.bytes_out, 0),
            cell(calls.messages, 2),
        );
    }
    let api: u64 = phases.iter().map(|p| p.api_requests).sum();
    let sns: u64 = phases.iter().map(|p| p.mail_events).sum();
    println!("| apigateway | HTTP API requests | requester | {:.2} | | | | | |", per(api as f64));
    println!("| sns | Publish (SES send and delivery events) | SES | {:.2} | | | | | |", per(sns as f64));
    let empty: f64 = phases.iter().flat_map(|p| p.calls.calls.values()).map(|c| c.empty).sum();
    println!();
    println!(
        "Not per request: {empty:.0} empty ReceiveMessage calls by the local pump while it waited (deployed, Lambda's SQS \
         pollers long-poll each queue all day: a fixed cost of cents a month). DynamoDB Streams reads by the stream's \
         event source mapping are free. KMS: the emulator sees no KMS call. DynamoDB and SQS cache their data keys \
         (about 0 KMS requests per request); the export bucket has S3 Bucket Keys enabled (infra/template.yaml, \
         BucketKeyEnabled), so its SSE-KMS objects cost KMS a request per bucket key and period, not per object: \
         estimated 0 per request. Without Bucket Keys it would be one per PutObject, CreateMultipartUpload and GetObject \
         of an export ({:.2} per request here).",
        per(rows
            .iter()
            .filter(|((s, o, _), _)| s == "s3"
                && matches!(o.as_str(), "PutObject" | "CreateMultipartUpload" | "GetObject"))
            .map(|(_, c)| c.requests)
            .sum()),
    );

    // Cost per 1,000 fulfilled requests.
    println!();
    println!("## Cost per 1,000 fulfilled requests (USD, eu-west-1, arm64, list prices of {PRICES_AS_OF})");
    println!();
    let memory: BTreeMap<String, u64> = functions.0.iter().map(|(n, f)| (n.clone(), f.memory_mb)).collect();
    let per_phase: Vec<Costs> = phases.iter().map(|p| costs(p, &memory, |_| true)).collect();
    let mut header = String::from("| item |");
    let mut rule = String::from("|---|");
    for phase in phases {
        header.push_str(&format!(" {} (x{}) |", phase.label, phase.fulfilled));
        rule.push_str("---|");
    }
    header.push_str(" the mix |");
    rule.push_str("---|");
    println!("{header}");
    println!("{rule}");
    let mut items: Vec<&'static str> = per_phase.iter().flat_map(|c| c.lines.keys().copied()).collect();
    items.sort();
    items.dedup();
    let thousand = |usd: f64, n: usize| if n == 0 { f64::NAN } else { usd / n as f64 * 1000.0 };
    let mut totals = vec![0.0; phases.len()];
    for item in &items {
        let mut line = format!("| {item} |");
        let mut mix = 0.0;
        for (i, (phase, c)) in phases.iter().zip(&per_phase).enumerate() {
            let usd = c.lines.get(item).copied().unwrap_or_default();
            totals[i] += usd;
            mix += usd;
            line.push_str(&format!(" {:.4} |", thousand(usd, phase.fulfilled)));
        }
        line.push_str(&format!(" {:.4} |", thousand(mix, total_fulfilled)));
        println!("{line}");
    }
    let mut line = String::from("| **total** |");
    for (phase, total) in phases.iter().zip(&totals) {
        line.push_str(&format!(" **{:.4}** |", thousand(*total, phase.fulfilled)));
    }
    line.push_str(&format!(" **{:.4}** |", thousand(totals.iter().sum(), total_fulfilled)));
    println!("{line}");
    let downloaded: u64 = phases.iter().map(|p| p.downloaded_bytes).sum();
    println!();
    println!(
        "Lambda at each function's MemorySize in infra/template.yaml; X-Ray is an upper bound (Tracing: Active, every \
         invocation sampled; the default rule samples 1 a second and 5% beyond). Downloads: {:.0} KiB per export ZIP on \
         average. Storage (DynamoDB, S3 for the 30 days an export is kept) is not included.",
        downloaded as f64
            / 1024.0
            / phases.iter().find(|p| p.label == "access").map_or(1, |p| p.fulfilled.max(1)) as f64
    );

    // The daily sweep.
    let sweep_costs = costs(sweep, &memory, |_| true);
    let sweep_total: f64 = sweep_costs.lines.values().sum();
    let sweep_calls: f64 = sweep.calls.calls.values().map(|c| c.requests).sum();
    let sweep_units: (f64, f64) = sweep
        .calls
        .calls
        .values()
        .fold((0.0, 0.0), |(r, w), c| (r + c.read_units, w + c.write_units + c.index_write_units));
    println!();
    println!(
        "Per day, not per request: one daily sweep over what this run left open made {sweep_calls:.0} AWS calls \
         ({:.1} RRU, {:.1} WRU) in {} invocation(s): ${sweep_total:.6} a run.",
        sweep_units.0,
        sweep_units.1,
        sweep.invocations.values().map(Vec::len).sum::<usize>()
    );

    println!();
    println!("## Prices used (eu-west-1, arm64, {PRICES_AS_OF}; list prices, no free tier)");
    println!();
    println!("| USD | per | basis |");
    println!("|---|---|---|");
    for p in &PRICES {
        let per = if p.per >= 1e6 {
            format!("{} million {}", p.per / 1e6, p.unit)
        } else if p.per > 1.0 {
            format!("{:.0} {}", p.per, p.unit)
        } else {
            p.unit.to_owned()
        };
        println!("| {} | {per} | {} |", p.usd, p.basis);
    }
}

// ---------------------------------------------------------------------------------------------

struct Settings {
    requests: usize,
    clients: usize,
    credentials: String,
    lambda_dir: PathBuf,
    patience: Duration,
    echo_logs: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let number = |name: &str, default: u64| -> Result<u64> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().with_context(|| format!("{name}={v:?} is not a whole number")),
                Err(_) => Ok(default),
            }
        };
        Ok(Settings {
            requests: usize::try_from(number("E2E_REQUESTS", 200)?)?,
            clients: usize::try_from(number("E2E_CLIENTS", 4)?)?.max(1),
            credentials: std::env::var("E2E_CREDENTIALS")
                .context("E2E_CREDENTIALS: the role credentials file")?,
            lambda_dir: std::env::var("E2E_LAMBDA_DIR").unwrap_or_else(|_| "target/lambda".into()).into(),
            patience: Duration::from_secs(number("E2E_PATIENCE_SECONDS", 600)?),
            echo_logs: std::env::var("E2E_LOG").is_ok_and(|v| v == "1"),
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let emulator = devstack::endpoint();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let meter = Meter { url: format!("{}/_local/meter", emulator.trim_end_matches('/')), http: http.clone() };
    let template = devstack::template::Template::load(&devstack::template::default_path())?;
    let table = std::env::var("TABLE_NAME").context("TABLE_NAME")?;
    let prefix = std::env::var("DATA_NAME_PREFIX").unwrap_or_default();
    let map = DataMap::builtin()?.aws_only().with_name_prefix(&prefix);
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();

    eprintln!("== seeding the data map's sources with the people of the access and deletion requests");
    devstack::seed::create_sources(&sdk, &map).await?;
    let people_needed = Kind::Access.share(settings.requests) + Kind::Deletion.share(settings.requests);
    let mut people = seed_people(&sdk, &map, people_needed, &run).await?.into_iter();

    eprintln!("== starting the functions");
    let keys = role_keys(&settings.credentials)?;
    let mut hosted = BTreeMap::new();
    for name in HOSTED {
        let (timeout, memory_mb) = limits(&template, name);
        let spec = Spec {
            name: name.to_owned(),
            bootstrap: settings.lambda_dir.join(name).join("bootstrap"),
            timeout,
            memory_mb,
            env: vec![
                ("AWS_SHARED_CREDENTIALS_FILE".into(), settings.credentials.clone()),
                ("AWS_PROFILE".into(), name.to_owned()),
            ],
            env_remove: vec![
                "AWS_ACCESS_KEY_ID".into(),
                "AWS_SECRET_ACCESS_KEY".into(),
                "AWS_SESSION_TOKEN".into(),
            ],
        };
        hosted.insert(name.to_owned(), Arc::new(Hosted::start(spec, settings.echo_logs).await?));
    }
    let functions = Functions(Arc::new(hosted));

    // Lambda's event source mappings: the table's stream to dispatch, the job queues to their workers.
    let mut queues = Vec::new();
    for worker in devstack::pump::QUEUE_WORKERS {
        let url = std::env::var(worker.url_variable).with_context(|| worker.url_variable.to_owned())?;
        let arn = devstack::provision::queue_arn(&aws_sdk_sqs::Client::new(&sdk), &url).await?;
        queues.push(QueueMapping {
            url,
            arn,
            function: worker.function.to_owned(),
            batch_size: worker.batch_size,
            retry_after_seconds: 5,
            wait_seconds: 0,
        });
    }
    let stream = StreamMapping {
        reader: devstack::stream::StreamReader::open(&sdk, &table).await?,
        function: "dispatch".to_owned(),
        batch_size: 25,
        max_retries: 5,
        on_failure_queue_url: std::env::var("DISPATCH_FAILURE_QUEUE_URL").ok(),
    };
    let pump = Pump::new(functions.clone(), &sdk, Some(stream), queues);
    meter.reset().await?;
    let pumping = Pumping::start(pump);

    let world = Arc::new(World {
        functions: functions.clone(),
        emulator: emulator.clone(),
        http: http.clone(),
        patience: settings.patience,
        api_requests: std::sync::Mutex::new(BTreeMap::new()),
    });
    let mut phases = Vec::new();
    let mut outcomes = Vec::new();
    for kind in Kind::ALL {
        let count = kind.share(settings.requests);
        eprintln!("== {count} {} requests", kind.label());
        let start = mark(&world, &meter).await?;
        let started = Instant::now();
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.clients));
        let mut running = tokio::task::JoinSet::new();
        for n in 0..count {
            let address = match kind {
                Kind::OptOut => format!("optout-{run}-{n}@example.com"),
                _ => people.next().context("not enough people seeded")?,
            };
            let (world, slots) = (world.clone(), slots.clone());
            running.spawn(async move {
                let _slot = slots.acquire_owned().await?;
                world.request(kind, &address).await
            });
        }
        let mut done = Vec::new();
        let mut failed = Vec::new();
        while let Some(joined) = running.join_next().await {
            match joined? {
                Ok(outcome) => done.push(outcome),
                Err(err) => failed.push(format!("{err:#}")),
            }
        }
        let mut phase = finish_phase(&world, &meter, &pumping, &start, kind.label().to_owned()).await?;
        eprintln!(
            "   {} done, {} failed in {:.0} s",
            done.len(),
            failed.len(),
            started.elapsed().as_secs_f64()
        );
        phase.failed = failed;
        phase.downloaded_bytes = done.iter().filter_map(|o| o.downloaded_bytes).map(|b| b as u64).sum();
        outcomes.extend(done);
        phases.push(phase);
    }

    eprintln!("== the daily sweep, once");
    let start = mark(&world, &meter).await?;
    functions.get("reminders")?.invoke(json!({"sweep": "daily"})).await?;
    let sweep = finish_phase(&world, &meter, &pumping, &start, "daily sweep".into()).await?;
    let given_up = pumping.failures.load(Ordering::Relaxed);
    pumping.stop().await;
    for f in functions.0.values() {
        f.stop().await;
    }

    // Fulfilled: completed in the store (read after the last meter reading), and downloaded.
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    let mut fulfilled: BTreeMap<Kind, usize> = BTreeMap::new();
    for outcome in &outcomes {
        let record = store.get(outcome.id).await?.context("a request is gone")?;
        if record.status == Status::Completed
            && (outcome.kind != Kind::Access || outcome.downloaded_bytes.is_some())
        {
            *fulfilled.entry(outcome.kind).or_default() += 1;
        }
    }
    for (phase, kind) in phases.iter_mut().zip(Kind::ALL) {
        phase.fulfilled = fulfilled.get(&kind).copied().unwrap_or_default();
    }
    if given_up > 0 {
        eprintln!("the pump gave up on (or saw fail) {given_up} deliveries");
    }
    print_report(&phases, &sweep, &functions, &keys, &settings);
    if phases.iter().any(|p| !p.failed.is_empty()) {
        bail!("some requests were not fulfilled (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_recommended_at_one_and_a_half_times_the_peak_in_128_mb_steps() {
        assert_eq!(recommended_memory_mb(0), 128);
        assert_eq!(recommended_memory_mb(20 * 1024), 128, "30 MiB fits 128");
        assert_eq!(recommended_memory_mb(86 * 1024), 256, "129 MiB needs the next step");
        assert_eq!(recommended_memory_mb(170 * 1024), 256);
        assert_eq!(recommended_memory_mb(171 * 1024), 384);
    }

    #[test]
    fn cpu_time_is_stretched_by_the_cpu_share_of_the_memory_size() {
        let invocation = Invocation {
            duration: Duration::from_millis(30),
            cpu: Duration::from_millis(2),
            peak_rss_kib: 0,
            ok: true,
        };
        let at_128 = estimated_ms(&invocation, 128);
        assert!((at_128 - (28.0 + (2.0 * FULL_CPU_MB / 128.0)).ceil()).abs() < 1e-9, "{at_128}");
        assert_eq!(estimated_ms(&invocation, 1769), 30.0);
        assert_eq!(estimated_ms(&invocation, 4096), 30.0, "no more than a full CPU counts here");
    }

    #[test]
    fn the_mix_is_half_access_thirty_percent_deletion_and_the_rest_opt_out() {
        assert_eq!(Kind::ALL.map(|k| k.share(200)), [100, 60, 40]);
        assert_eq!(Kind::ALL.map(|k| k.share(7)).iter().sum::<usize>(), 7);
    }

    #[test]
    fn a_meter_reading_since_an_earlier_one_holds_only_what_came_after() {
        let report = |requests: f64, wcu: f64, mails: &[&str]| {
            json!({"calls": [{"caller": "k", "service": "dynamodb", "operation": "PutItem", "resource": "t",
                              "requests": requests, "write_units": wcu}],
                   "mail": mails.iter().map(|id| json!({"message_id": id})).collect::<Vec<_>>()})
        };
        let earlier = Reading::parse(&report(2.0, 3.0, &["a"]));
        let later = Reading::parse(&report(5.0, 10.0, &["a", "b"]));
        let since = later.since(&earlier);
        let calls = &since.calls[&("k".into(), "dynamodb".into(), "PutItem".into(), "t".into())];
        assert_eq!((calls.requests, calls.write_units), (3.0, 7.0));
        assert_eq!(since.mail.len(), 1);
        assert_eq!(since.mail[0]["message_id"], "b");
    }

    #[test]
    fn s3_deletes_are_free_and_uploads_cost_the_put_rate() {
        assert_eq!(s3_rate("DeleteObject"), None);
        assert_eq!(s3_rate("UploadPart"), Some(Billed::S3WriteRequest));
        assert_eq!(s3_rate("ListObjectVersions"), Some(Billed::S3WriteRequest));
        assert_eq!(s3_rate("GetObject"), Some(Billed::S3ReadRequest));
        assert_eq!(s3_rate("HeadObject"), Some(Billed::S3ReadRequest));
    }

    #[test]
    fn download_and_verification_links_give_the_request_and_its_token() {
        let mail = |body: &str| SentMail {
            id: "1".into(),
            source: "privacy@example.com".into(),
            destinations: Default::default(),
            subject: COMPLETED_SUBJECT.into(),
            body: body.into(),
        };
        let download = mail(r#"<a href="https://p.example/requests/abc/download?token=t0k&amp;x=1">get</a>"#);
        assert_eq!(download_link(&download), vec![("abc".to_owned(), "t0k".to_owned())]);
        let verify =
            mail(r#"<a href="https://p.example/verify?lang=en#request_id=abc&amp;token=t0k">ok</a>"#);
        assert_eq!(verify.verification_links(), vec![("abc".to_owned(), "t0k".to_owned())]);
        assert!(download_link(&verify).is_empty());
    }
}
