//! `devstack chaos` (`make chaos`): the fault run. Requests of every kind the public contract
//! offers go through a running local stack while the emulator fails a share of the functions' and
//! the pump's AWS calls as AWS does under stress (dev/emulator_faults.py); in the second pass the
//! pump is also killed (SIGKILL) at random moments and started again. Requesters behave as real
//! clients: a 5xx or 429 is tried again after a pause with the same body, the link comes from the
//! mailbox, and staff complete the tasks that need a person through the staff API.
//!
//! Then the run is judged against what it would have been without faults: every request in the
//! state it would have reached (all of them completed), one request per submission, one mail of
//! each kind per recipient (a retried submission may mail one more link: the contract's
//! "resubmission"), one export object, written once, per export, and an audit trail with an event
//! for every version of each request. What the stack gave up on (the dead-letter queues, the
//! stream's failure queue) is counted, then redriven with the faults off (dev/src/redrive.rs, as
//! `make redrive` does), and the run must complete after it.

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::mailbox::{self, SentMail};
use crate::pump::HttpInvoker;
use crate::redrive;

/// The mix, in order, request `n` being `MIX[n % 10]`: what each kind ends as without faults is
/// completed (the objection by staff, the opt-outs at once).
const MIX: [(&str, &str); 10] = [
    ("access", "NL"),
    ("deletion", "NL"),
    ("opt_out_of_sale", "US-CA"),
    ("access", "US-CA"),
    ("portability", "DE"),
    ("rectification", "NL"),
    ("deletion", "US-CA"),
    ("objection", "DE"),
    ("access", "DE"),
    ("unsubscribe", "NL"),
];
/// Kinds a person on the staff completes.
const STAFF_TASKS: [&str; 3] = ["objection", "restriction", "withdraw_consent"];
const OPT_OUTS: [&str; 2] = ["opt_out_of_sale", "unsubscribe"];
const EXPORTS: [&str; 2] = ["access", "portability"];
const TERMINAL: [&str; 5] = ["completed", "expired", "denied", "referred", "rejected"];

pub struct Settings {
    pub label: String,
    /// The public API (the gateway).
    pub api: String,
    /// `cargo lambda watch`'s invoke endpoint (the redrive invokes functions there).
    pub invoke: String,
    pub emulator: String,
    pub table: String,
    pub bucket: String,
    pub staff_key: String,
    pub staff_address: String,
    pub requests: usize,
    pub clients: usize,
    pub rate: f64,
    pub seed: u64,
    /// How long the stack may take to settle (between a settled state and the next).
    pub patience: Duration,
    /// Kill the pump of the stack in this process group at random (seeded) and start it again.
    pub kill_pump_of: Option<u32>,
    /// Where a restarted pump logs.
    pub log_dir: PathBuf,
}

/// One request as its requester made it.
#[derive(Clone, Debug)]
struct Made {
    kind: &'static str,
    address: String,
    id: Option<String>,
    failure: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub requests: usize,
    pub by_state: BTreeMap<String, usize>,
    /// Requests not completed, with what they are.
    pub unfinished: Vec<String>,
    /// What requesters met that a client cannot get past (a valid link refused, no link mailed).
    pub failures: Vec<String>,
    pub retries: BTreeMap<&'static str, usize>,
    pub duplicate_requests: Vec<String>,
    pub duplicate_mail: Vec<String>,
    /// Links to confirm mailed beyond one per request (each follows a retried submission).
    pub extra_links: usize,
    pub duplicate_objects: Vec<String>,
    pub missing_objects: Vec<String>,
    pub audit_gaps: Vec<String>,
    pub dead_letters: BTreeMap<String, usize>,
    pub redrive: Vec<redrive::Outcome>,
    pub faults: BTreeMap<String, u64>,
    /// The same by `service:Operation`.
    pub faults_by_operation: BTreeMap<String, u64>,
    /// Eligible calls and faults by who made them (a function's role, or the pump).
    pub callers: BTreeMap<String, (u64, u64)>,
    /// Seconds from the start of the pass until each request was seen closed, sorted.
    pub closed_after: Vec<f64>,
    pub calls: u64,
    pub pump_kills: usize,
    pub elapsed: Duration,
}

impl Report {
    /// Whether the run came out as it would have without faults.
    pub fn holds(&self) -> bool {
        self.unfinished.is_empty()
            && self.failures.is_empty()
            && self.duplicate_requests.is_empty()
            && self.duplicate_mail.is_empty()
            && self.duplicate_objects.is_empty()
            && self.missing_objects.is_empty()
            && self.audit_gaps.is_empty()
            && self.redrive.iter().all(|o| o.failed.is_empty())
    }

    pub fn print(&self, label: &str) {
        let join = |m: &BTreeMap<String, usize>| {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        let faults: u64 = self.faults.values().sum();
        println!("{label}: {} requests in {:.0} s", self.requests, self.elapsed.as_secs_f64());
        println!("  final states: {}", join(&self.by_state));
        if let (Some(first), Some(last)) = (self.closed_after.first(), self.closed_after.last()) {
            let median = self.closed_after[self.closed_after.len() / 2];
            println!("  closed after: first {first:.0} s, median {median:.0} s, last {last:.0} s");
        }
        println!(
            "  faults injected: {faults} of {} eligible calls ({})",
            self.calls,
            self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
        let operations: Vec<String> =
            self.faults_by_operation.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("    by operation: {}", operations.join(", "));
        let callers: Vec<String> =
            self.callers.iter().map(|(k, (calls, faults))| format!("{k} {faults}/{calls}")).collect();
        println!("    by caller (faults/calls): {}", callers.join(", "));
        let retries: Vec<String> = self.retries.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "  requester retries (5xx/429): {}",
            if retries.is_empty() { "none".into() } else { retries.join(", ") }
        );
        if self.pump_kills > 0 {
            println!("  pump killed and restarted: {} times", self.pump_kills);
        }
        println!(
            "  duplicates: {} requests, {} mails, {} objects ({} more links to confirm after retried submissions)",
            self.duplicate_requests.len(),
            self.duplicate_mail.len(),
            self.duplicate_objects.len(),
            self.extra_links
        );
        println!("  dead letters before the redrive: {}", join(&self.dead_letters));
        let redriven: Vec<String> = self
            .redrive
            .iter()
            .filter(|o| o.before > 0)
            .map(|o| format!("{} {}/{}", o.queue, o.redriven, o.before))
            .collect();
        println!(
            "  redrive (faults off): {}",
            if redriven.is_empty() { "nothing to redrive".into() } else { redriven.join(", ") }
        );
        for (what, list) in [
            ("unfinished", &self.unfinished),
            ("requester failure", &self.failures),
            ("duplicate request", &self.duplicate_requests),
            ("duplicate mail", &self.duplicate_mail),
            ("duplicate object", &self.duplicate_objects),
            ("missing object", &self.missing_objects),
            ("audit gap", &self.audit_gaps),
        ] {
            for item in list.iter().take(10) {
                println!("  {what}: {item}");
            }
        }
        for outcome in self.redrive.iter().filter(|o| !o.failed.is_empty()) {
            println!("  redrive of {} failed: {}", outcome.queue, outcome.failed.join("; "));
        }
        println!("  {}", if self.holds() { "as without faults" } else { "NOT as without faults" });
    }
}

/// A small seeded generator (SplitMix64): the kill points of a seed are the same every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Between `low` and `high`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis().max(1) as u64;
        low + Duration::from_millis(self.next() % span)
    }
}

pub async fn run(settings: Settings) -> Result<Report> {
    let started = Instant::now();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let faults = format!("{}/_local/faults", settings.emulator);
    client.delete(&faults).send().await?.error_for_status()?;
    client
        .put(&faults)
        .json(&json!({"rate": settings.rate, "seed": settings.seed, "pump": true}))
        .send()
        .await?
        .error_for_status()
        .context("the emulator's faults (dev/emulator_faults.py)")?;
    println!(
        "{}: {} requests, {} requesters at once, {:.0}% of the functions' and the pump's AWS calls failing (seed {}){}",
        settings.label,
        settings.requests,
        settings.clients,
        settings.rate * 100.0,
        settings.seed,
        if settings.kill_pump_of.is_some() { ", the pump killed at random" } else { "" }
    );

    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = match settings.kill_pump_of {
        Some(group) => {
            let pump = Pump::take_over(group, &settings.log_dir)?;
            let (stop, kills, seed) = (stop.clone(), kills.clone(), settings.seed);
            Some(tokio::spawn(async move { pump.kill_at_random(seed, stop, kills).await }))
        }
        None => None,
    };

    let settings = Arc::new(settings);
    let retries: Arc<std::sync::Mutex<BTreeMap<&'static str, usize>>> = Default::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.clients.max(1)));
    let mut requesters = tokio::task::JoinSet::new();
    for n in 0..settings.requests {
        let (client, settings, retries, slots) =
            (client.clone(), settings.clone(), retries.clone(), slots.clone());
        requesters.spawn(async move {
            let _slot = slots.acquire_owned().await;
            requester(&client, &settings, n, &retries).await
        });
    }
    let mut made = Vec::new();
    while let Some(done) = requesters.join_next().await {
        made.push(done.context("a requester")?);
    }
    // Staff act on their tasks as they come, until the stack has settled.
    let mut closed = HashMap::new();
    settle(&client, &dynamo, &sqs, &settings, &made, &retries, (started, &mut closed)).await?;

    let report_before = client.get(&faults).send().await?.json::<Value>().await?;
    let mut dead_letters = BTreeMap::new();
    let queues = redrive::dead_letter_queues(&sqs).await?;
    for queue in &queues {
        dead_letters.insert(queue.queue.clone(), redrive::depth(&sqs, &queue.url).await?);
    }
    // The redrive, as an operator runs it once the cause is gone: faults off (pump kills stop).
    stop.store(true, Ordering::SeqCst);
    client.put(&faults).json(&json!({"rate": 0.0})).send().await?.error_for_status()?;
    let outcomes =
        redrive::redrive(&sdk, &settings.table, &HttpInvoker::new(settings.invoke.clone()), &queues).await?;
    settle(&client, &dynamo, &sqs, &settings, &made, &retries, (started, &mut closed)).await?;
    let pump = match killer {
        Some(killer) => Some(killer.await.context("the pump killer")?),
        None => None,
    };

    let mut report = judge(&client, &dynamo, &sdk, &settings, &made).await?;
    report.retries = retries.lock().map(|r| r.clone()).unwrap_or_default();
    report.dead_letters = dead_letters;
    report.redrive = outcomes;
    report.calls = report_before["calls"].as_u64().unwrap_or_default();
    if let Some(services) = report_before["injected"].as_object() {
        for (service, operations) in services {
            let sum = operations.as_object().map(|o| o.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
            report.faults.insert(service.clone(), sum);
            for (operation, n) in operations.as_object().into_iter().flatten() {
                report.faults_by_operation.insert(format!("{service}:{operation}"), n.as_u64().unwrap_or(0));
            }
        }
    }
    for (caller, seen) in report_before["callers"].as_object().into_iter().flatten() {
        let n = |name: &str| seen[name].as_u64().unwrap_or(0);
        report.callers.insert(caller.clone(), (n("calls"), n("faults")));
    }
    report.pump_kills = kills.load(Ordering::SeqCst);
    report.closed_after = closed.into_values().collect();
    report.closed_after.sort_by(f64::total_cmp);
    report.elapsed = started.elapsed();
    // The pump started here ends with the run (the stack's own was killed: the stack goes next).
    drop(pump);
    Ok(report)
}

async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(5))).await;
}

fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status.as_u16() == 429
}

fn count(retries: &std::sync::Mutex<BTreeMap<&'static str, usize>>, what: &'static str) {
    if let Ok(mut retries) = retries.lock() {
        *retries.entry(what).or_default() += 1;
    }
}

/// POSTs `body` until it is answered with something other than a 5xx or 429 (or a connection
/// error), as a client does; returns the status and the JSON answer.
async fn post_retrying(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
    retries: &std::sync::Mutex<BTreeMap<&'static str, usize>>,
    what: &'static str,
) -> Result<(reqwest::StatusCode, Value)> {
    for attempt in 0..8 {
        let mut request = client.post(url).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send().await {
            Ok(response) if !retryable(response.status()) => {
                let status = response.status();
                return Ok((status, response.json().await.unwrap_or(Value::Null)));
            }
            Ok(_) | Err(_) => {
                count(retries, what);
                pause(attempt).await;
            }
        }
    }
    bail!("{what} failed eight times")
}

async fn requester(
    client: &reqwest::Client,
    settings: &Settings,
    n: usize,
    retries: &std::sync::Mutex<BTreeMap<&'static str, usize>>,
) -> Made {
    let (kind, region) = MIX[n % MIX.len()];
    let address = format!("chaos-{n}-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut made = Made { kind, address, id: None, failure: None };
    if let Err(err) = request(client, settings, &mut made, region, retries).await {
        made.failure = Some(format!("{kind} {}: {err:#}", made.id.as_deref().unwrap_or("(not submitted)")));
    }
    made
}

async fn request(
    client: &reqwest::Client,
    settings: &Settings,
    made: &mut Made,
    region: &str,
    retries: &std::sync::Mutex<BTreeMap<&'static str, usize>>,
) -> Result<()> {
    let started = Instant::now();
    let mut body = json!({"email": made.address, "kind": made.kind, "region": region});
    if made.kind == "rectification" {
        body["corrections"] = json!({"job_title": "Chaos engineer"});
    }
    let (status, answer) =
        post_retrying(client, &format!("{}/requests", settings.api), &body, &[], retries, "submit").await?;
    if status.as_u16() != 202 {
        bail!("submitting answered {status}: {answer}");
    }
    let id = answer["request_id"].as_str().context("a request id")?.to_owned();
    made.id = Some(id.clone());
    if OPT_OUTS.contains(&made.kind) {
        return Ok(());
    }
    let link =
        mailbox::wait_for_mail(client, &settings.emulator, &made.address, started, settings.patience, |m| {
            m.verification_links().iter().any(|(link_id, _)| *link_id == id)
        })
        .await
        .context("no link to confirm came")?;
    let token = link.verification_links().into_iter().rfind(|(link_id, _)| *link_id == id).map(|(_, t)| t);
    let url = format!("{}/requests/{id}/verify", settings.api);
    let (status, answer) =
        post_retrying(client, &url, &json!({"token": token}), &[], retries, "verify").await?;
    if status.as_u16() != 200 {
        bail!("confirming with the mailed link answered {status}: {answer}");
    }
    Ok(())
}

/// The stored state of the requests made: (status, triaged) by id.
async fn states(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    made: &[Made],
) -> Result<HashMap<String, (String, bool)>> {
    let ids: Vec<&String> = made.iter().filter_map(|m| m.id.as_ref()).collect();
    let mut found = HashMap::new();
    for chunk in ids.chunks(100) {
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for id in chunk {
            keys = keys.keys(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(format!("REQ#{id}"))),
                ("sk".to_owned(), AttributeValue::S("META".to_owned())),
            ]));
        }
        let mut pending = Some(HashMap::from([(table.to_owned(), keys.build()?)]));
        while let Some(request) = pending.take().filter(|r| !r.is_empty()) {
            let out = dynamo.batch_get_item().set_request_items(Some(request)).send().await?;
            for item in out.responses().and_then(|r| r.get(table)).into_iter().flatten() {
                let text =
                    |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let id = text("pk").trim_start_matches("REQ#").to_owned();
                found.insert(id, (text("status"), item.get("triage").is_some_and(|t| !t.is_null())));
            }
            pending = out.unprocessed_keys().cloned();
        }
    }
    Ok(found)
}

/// Waits until every request is closed, or nothing has changed for a while with the job queues
/// empty (what is left is for the redrive). Staff complete their tasks meanwhile.
async fn settle(
    client: &reqwest::Client,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    settings: &Settings,
    made: &[Made],
    retries: &std::sync::Mutex<BTreeMap<&'static str, usize>>,
    (started, closed_after): (Instant, &mut HashMap<String, f64>),
) -> Result<()> {
    let queues: Vec<String> = {
        let mut urls = Vec::new();
        for worker in crate::pump::QUEUE_WORKERS {
            if let Some(url) = redrive::local_queue_url(sqs, worker.queue).await? {
                urls.push(url);
            }
        }
        urls
    };
    let mut last: Option<HashMap<String, (String, bool)>> = None;
    let mut still_since = Instant::now();
    let mut completed_by_staff: std::collections::HashSet<String> = Default::default();
    loop {
        let now = states(dynamo, &settings.table, made).await?;
        for m in made.iter().filter(|m| STAFF_TASKS.contains(&m.kind)) {
            let Some(id) = &m.id else { continue };
            if completed_by_staff.contains(id) || now.get(id) != Some(&("verified".to_owned(), true)) {
                continue;
            }
            let url = format!("{}/staff/requests/{id}/complete", settings.api);
            let note = json!({"note": "We stopped the processing you objected to."});
            let key = [("x-staff-key", settings.staff_key.as_str())];
            let (status, answer) = post_retrying(client, &url, &note, &key, retries, "staff").await?;
            // 409: completed already (an earlier try whose answer was lost).
            if status.is_success() || status.as_u16() == 409 {
                completed_by_staff.insert(id.clone());
            } else {
                eprintln!("chaos: staff could not complete {id}: {status} {answer}");
            }
        }
        for (id, (status, _)) in &now {
            if TERMINAL.contains(&status.as_str()) {
                closed_after.entry(id.clone()).or_insert_with(|| started.elapsed().as_secs_f64());
            }
        }
        let closed = made
            .iter()
            .filter_map(|m| m.id.as_ref())
            .all(|id| now.get(id).is_some_and(|(status, _)| TERMINAL.contains(&status.as_str())));
        if closed {
            // The last answers leave through the stream a moment after the last transition.
            tokio::time::sleep(Duration::from_secs(5)).await;
            return Ok(());
        }
        if last.as_ref() != Some(&now) {
            last = Some(now);
            still_since = Instant::now();
        }
        let mut idle = true;
        for url in &queues {
            idle &= redrive::depth(sqs, url).await? == 0;
        }
        if idle && still_since.elapsed() > Duration::from_secs(45)
            || still_since.elapsed() > settings.patience
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Judges the run by what the stack stored, mailed and wrote.
async fn judge(
    client: &reqwest::Client,
    dynamo: &aws_sdk_dynamodb::Client,
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    made: &[Made],
) -> Result<Report> {
    let mut report = Report { requests: made.len(), ..Default::default() };
    report.failures = made.iter().filter_map(|m| m.failure.clone()).collect();
    let states = states(dynamo, &settings.table, made).await?;
    for m in made {
        let Some(id) = &m.id else { continue };
        let state = states.get(id).map(|(s, _)| s.clone()).unwrap_or_else(|| "missing".to_owned());
        *report.by_state.entry(state.clone()).or_default() += 1;
        if state != "completed" {
            report.unfinished.push(format!("{} {id}: {state}", m.kind));
        }
    }

    // One request per submission: the stored requests by address and kind.
    let mut stored: HashMap<(String, String), usize> = HashMap::new();
    let mut start = None;
    loop {
        let out = dynamo
            .scan()
            .table_name(&settings.table)
            .filter_expression("entity = :request")
            .expression_attribute_values(":request", AttributeValue::S("request".into()))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in out.items() {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            *stored.entry((text("email"), text("kind"))).or_default() += 1;
        }
        start = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        if start.is_none() {
            break;
        }
    }
    for m in made {
        let n = stored.get(&(m.address.clone(), m.kind.to_owned())).copied().unwrap_or(0);
        if n > 1 {
            report.duplicate_requests.push(format!("{} for {}: {n} requests", m.kind, m.address));
        }
    }

    // One mail of each kind per recipient and request.
    let mut staff_mail: Vec<SentMail> =
        mailbox::fetch_to_with(client, &settings.emulator, &settings.staff_address).await?;
    staff_mail.retain(|m| made.iter().any(|r| r.id.as_ref().is_some_and(|id| m.body.contains(id.as_str()))));
    for m in made {
        let Some(id) = &m.id else { continue };
        let mails = mailbox::fetch_to_with(client, &settings.emulator, &m.address).await?;
        let links = mails.iter().filter(|mail| !mail.verification_links().is_empty()).count();
        report.extra_links += links.saturating_sub(1);
        let mut answers: BTreeMap<&str, usize> = BTreeMap::new();
        for mail in mails.iter().filter(|mail| mail.verification_links().is_empty()) {
            *answers.entry(mail.subject.as_str()).or_default() += 1;
        }
        for (subject, n) in answers.iter().filter(|(_, n)| **n > 1) {
            report.duplicate_mail.push(format!("{} {id}: \"{subject}\" {n} times to the requester", m.kind));
        }
        let mut notices: BTreeMap<&str, usize> = BTreeMap::new();
        for mail in staff_mail.iter().filter(|mail| mail.body.contains(id.as_str())) {
            *notices.entry(mail.subject.as_str()).or_default() += 1;
        }
        for (subject, n) in notices.iter().filter(|(_, n)| **n > 1) {
            report.duplicate_mail.push(format!("{} {id}: \"{subject}\" {n} times to staff", m.kind));
        }
    }

    // One export object per export request, written once (the bucket keeps every version).
    let s3 = crate::provision::s3_client(sdk);
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(&settings.bucket)
            .prefix("exports/")
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await?;
        for version in page.versions() {
            *versions.entry(version.key().unwrap_or_default().to_owned()).or_default() += 1;
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    for m in made.iter().filter(|m| EXPORTS.contains(&m.kind)) {
        let Some(id) = &m.id else { continue };
        let key = format!("exports/{id}/export.zip");
        match versions.get(&key) {
            None => report.missing_objects.push(format!("{} {id}", m.kind)),
            Some(n) if *n > 1 => report.duplicate_objects.push(format!("{key}: written {n} times")),
            Some(_) => {}
        }
    }

    // An audit event for every version of each request, the submission first, one completion.
    for m in made {
        let Some(id) = &m.id else { continue };
        let out = dynamo
            .query()
            .table_name(&settings.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("REQ#{id}")))
            .consistent_read(true)
            .send()
            .await?;
        let mut version = 0;
        let mut audited = Vec::new();
        let mut events = Vec::new();
        for item in out.items() {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if sk == "META" {
                version =
                    item.get("version").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
            } else if let Some(number) = sk.strip_prefix("AUDIT#") {
                if let Ok(v) = number.parse::<u32>() {
                    audited.push(v);
                }
                let event = item.get("event").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                events.push(event);
            }
        }
        audited.sort_unstable();
        if audited != (1..=version).collect::<Vec<u32>>() {
            report.audit_gaps.push(format!("{} {id}: version {version}, audited {audited:?}", m.kind));
        }
        let completions = events.iter().filter(|e| *e == "completed").count();
        let expected = usize::from(!OPT_OUTS.contains(&m.kind));
        if events.first().map(String::as_str) != Some("submitted") || completions != expected {
            report.audit_gaps.push(format!("{} {id}: events {events:?}", m.kind));
        }
    }
    Ok(report)
}

/// The stack's pump, taken over to be killed: started again from the same program with the
/// environment the stack gave it.
struct Pump {
    child: Option<std::process::Child>,
    program: PathBuf,
    env: Environment,
    log: PathBuf,
}

impl Pump {
    /// Finds the pump of the stack in process group `group`, kills it and starts its own.
    fn take_over(group: u32, log_dir: &std::path::Path) -> Result<Pump> {
        let (pid, env) = find_pump(group)?.context("no pump runs in the stack's process group")?;
        kill(pid)?;
        let mut pump =
            Pump { child: None, program: std::env::current_exe()?, env, log: log_dir.join("pump-chaos.log") };
        pump.start()?;
        Ok(pump)
    }

    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = std::process::Command::new(&self.program)
            .arg("pump")
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the pump again")?;
        self.child = Some(child);
        Ok(())
    }

    async fn kill_at_random(mut self, seed: u64, stop: Arc<AtomicBool>, kills: Arc<AtomicUsize>) -> Pump {
        let mut random = Seeded(seed);
        while !stop.load(Ordering::SeqCst) {
            let kill_at = Instant::now() + random.between(Duration::from_secs(2), Duration::from_secs(12));
            while Instant::now() < kill_at && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                // A pump that could not start (its own calls failing) is started again, as a
                // process supervisor would.
                if self.child.as_mut().is_none_or(|child| child.try_wait().ok().flatten().is_some()) {
                    self.restart();
                }
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if let Some(mut child) = self.child.take() {
                // SIGKILL: no chance to finish a batch or delete a message.
                let _ = child.kill();
                let _ = child.wait();
                kills.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(random.between(Duration::ZERO, Duration::from_secs(2))).await;
            self.restart();
        }
        // The redrive and the settling after it need a pump.
        if self.child.as_mut().is_none_or(|child| child.try_wait().ok().flatten().is_some()) {
            self.restart();
        }
        self
    }

    fn restart(&mut self) {
        if let Err(err) = self.start() {
            eprintln!("chaos: {err:#}");
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process's environment, as (name, value) pairs.
type Environment = Vec<(String, String)>;

/// The `devstack pump` process of process group `group`, and its environment.
fn find_pump(group: u32) -> Result<Option<(u32, Environment)>> {
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Some(pid) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        // After the parenthesised name: state, parent, process group.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(group) {
            continue;
        }
        let Ok(command) = std::fs::read(path.join("cmdline")) else { continue };
        let args: Vec<String> =
            command.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_owned()).unwrap_or_default();
        if program != "devstack" || args.get(1).map(String::as_str) != Some("pump") {
            continue;
        }
        let environ = std::fs::read(path.join("environ"))?;
        let env = environ
            .split(|b| *b == 0)
            .filter_map(|pair| {
                String::from_utf8_lossy(pair).split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        return Ok(Some((pid, env)));
    }
    Ok(None)
}

fn kill(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status()?;
    if !status.success() {
        bail!("kill -KILL {pid} failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_kill_points_every_time() {
        let points = |seed| {
            let mut random = Seeded(seed);
            (0..5)
                .map(|_| random.between(Duration::from_secs(2), Duration::from_secs(12)))
                .collect::<Vec<_>>()
        };
        assert_eq!(points(7), points(7));
        assert_ne!(points(7), points(8));
        assert!(points(7).iter().all(|d| (Duration::from_secs(2)..Duration::from_secs(12)).contains(d)));
    }

    #[test]
    fn the_mix_holds_every_kind_of_the_contract_that_ends_without_staff_or_with_a_staff_task() {
        let kinds: std::collections::BTreeSet<&str> = MIX.iter().map(|(kind, _)| *kind).collect();
        for kind in [
            "access",
            "portability",
            "deletion",
            "rectification",
            "objection",
            "opt_out_of_sale",
            "unsubscribe",
        ] {
            assert!(kinds.contains(kind), "{kind}");
        }
        for (kind, _) in MIX {
            assert!(kind.parse::<privacy_shared::domain::RequestKind>().is_ok(), "{kind}");
        }
    }
}
