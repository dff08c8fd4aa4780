//! A burst of access requests through the local stack, the way requesters make them: each one
//! submitted over the API, confirmed with the token its verification mail carries, and waited for
//! until the mail with its download link arrives. Reports the rate at which requests were
//! fulfilled and the CPU the emulator, the functions and the local plumbing spent meanwhile.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mailbox::{self, SentMail};

/// The functions `cargo lambda watch` runs, by binary name.
const FUNCTIONS: [&str; 10] = [
    "intake",
    "verify",
    "dispatch",
    "export",
    "download",
    "reminders",
    "admin",
    "erasure",
    "mail-events",
    "source-callback",
];

pub struct Settings {
    /// The API's base URL (`cargo lambda watch`).
    pub api: String,
    /// The emulator's endpoint (its mail list).
    pub emulator: String,
    pub requests: usize,
    /// Requesters at work at once.
    pub clients: usize,
    /// How long one request may take from submission to its download mail.
    pub patience: Duration,
}

#[derive(Debug)]
pub struct Report {
    pub requests: usize,
    pub fulfilled: usize,
    pub elapsed: Duration,
    /// Seconds from submission to the download mail, sorted.
    pub latencies: Vec<f64>,
    /// Seconds to answer the submission, sorted.
    pub submit_latencies: Vec<f64>,
    /// Seconds from the confirmation's answer to the download mail (the stream, dispatch, the
    /// export queue and the export: the part the pump and the event functions play), sorted.
    pub pipeline_latencies: Vec<f64>,
    /// CPU seconds spent during the burst, per group of processes.
    pub cpu: BTreeMap<&'static str, f64>,
    /// The emulator's resident memory at the end (MiB).
    pub emulator_rss_mib: Option<f64>,
    pub failures: Vec<String>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.fulfilled as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn summary(&self) -> String {
        let quantile = |sorted: &[f64], q: f64| -> f64 {
            if sorted.is_empty() {
                return f64::NAN;
            }
            sorted[((sorted.len() - 1) as f64 * q).round() as usize]
        };
        let cpu = |group: &str| self.cpu.get(group).copied().unwrap_or_default();
        format!(
            "{fulfilled}/{requests} fulfilled in {elapsed:.1} s: {rate:.2} requests/s; \
             submit p50 {sp50:.2} s p95 {sp95:.2} s; fulfilled p50 {p50:.1} s p95 {p95:.1} s \
             (of which confirmed to fulfilled p50 {cp50:.2} s p95 {cp95:.2} s); \
             CPU s: emulator {emu:.1}, functions {fun:.1}, cargo-lambda {router:.1}, \
             gateway {gateway:.1}, pump {pump:.1}; \
             emulator RSS {rss}",
            fulfilled = self.fulfilled,
            requests = self.requests,
            elapsed = self.elapsed.as_secs_f64(),
            rate = self.rate(),
            sp50 = quantile(&self.submit_latencies, 0.5),
            sp95 = quantile(&self.submit_latencies, 0.95),
            p50 = quantile(&self.latencies, 0.5),
            p95 = quantile(&self.latencies, 0.95),
            cp50 = quantile(&self.pipeline_latencies, 0.5),
            cp95 = quantile(&self.pipeline_latencies, 0.95),
            emu = cpu("emulator"),
            fun = cpu("functions"),
            router = cpu("cargo-lambda"),
            gateway = cpu("gateway"),
            pump = cpu("pump"),
            rss = self.emulator_rss_mib.map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "?".into()),
        )
    }
}

struct Done {
    submitted_in: f64,
    confirmed_in: f64,
    fulfilled_in: f64,
}

pub async fn run(settings: Settings) -> Result<Report> {
    // A function's first invocation under `cargo lambda watch` may wait for its build.
    let client = reqwest::Client::builder().timeout(settings.patience).build()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.clients.max(1)));
    let settings = Arc::new(settings);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..settings.requests {
        let (client, slots, settings) = (client.clone(), slots.clone(), settings.clone());
        running.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            one_request(&client, &settings).await
        });
    }
    let (mut latencies, mut submit_latencies, mut pipeline_latencies, mut failures) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while let Some(joined) = running.join_next().await {
        match joined.context("a requester task")? {
            Ok(done) => {
                latencies.push(done.fulfilled_in);
                submit_latencies.push(done.submitted_in);
                pipeline_latencies.push(done.fulfilled_in - done.confirmed_in);
            }
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu_seconds();
    latencies.sort_by(f64::total_cmp);
    submit_latencies.sort_by(f64::total_cmp);
    pipeline_latencies.sort_by(f64::total_cmp);
    let cpu = cpu_after
        .iter()
        .map(|(group, after)| (*group, after - cpu_before.get(group).copied().unwrap_or_default()))
        .collect();
    Ok(Report {
        requests: settings.requests,
        fulfilled: latencies.len(),
        elapsed,
        latencies,
        submit_latencies,
        pipeline_latencies,
        cpu,
        emulator_rss_mib: emulator_rss_mib(),
        failures,
    })
}

async fn one_request(client: &reqwest::Client, settings: &Settings) -> Result<Done> {
    let address = format!("burst-{}@example.com", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let response = client
        .post(format!("{}/requests", settings.api))
        .json(&json!({"email": address, "kind": "access", "region": "NL"}))
        .send()
        .await
        .context("submitting")?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 202 {
        bail!("submitting answered {status}: {}", answer["error"]);
    }
    let submitted_in = started.elapsed().as_secs_f64();
    let mail = wait_for(client, settings, &address, started, |m| !m.verification_links().is_empty()).await?;
    let (id, token) = mail.verification_links().pop().context("a verification link")?;
    let response = client
        .post(format!("{}/requests/{id}/verify", settings.api))
        .json(&json!({"token": token}))
        .send()
        .await
        .context("confirming")?;
    if !response.status().is_success() {
        bail!("confirming answered {}", response.status());
    }
    let confirmed_in = started.elapsed().as_secs_f64();
    wait_for(client, settings, &address, started, |m| m.links().iter().any(|l| l.contains("/download")))
        .await?;
    Ok(Done { submitted_in, confirmed_in, fulfilled_in: started.elapsed().as_secs_f64() })
}

async fn wait_for(
    client: &reqwest::Client,
    settings: &Settings,
    address: &str,
    started: Instant,
    wanted: impl Fn(&SentMail) -> bool,
) -> Result<SentMail> {
    mailbox::wait_for_mail(client, &settings.emulator, address, started, settings.patience, wanted).await
}

/// CPU seconds (user + system) of the local stack's processes so far, per group. A process that
/// ended meanwhile is not counted; `cargo lambda watch` keeps its function processes running.
fn cpu_seconds() -> BTreeMap<&'static str, f64> {
    let mut groups = BTreeMap::new();
    for (command, exe, ticks) in processes() {
        let group = if command.contains("dev/emulator.py") {
            "emulator"
        } else if FUNCTIONS.contains(&exe.as_str()) {
            "functions"
        } else if exe == "cargo-lambda" || command.contains("cargo-lambda") {
            "cargo-lambda"
        } else if exe == "devstack" && command.split('\0').any(|a| a == "pump") {
            "pump"
        } else if exe == "devstack" && command.split('\0').any(|a| a == "gateway") {
            "gateway"
        } else {
            continue;
        };
        *groups.entry(group).or_insert(0.0) += ticks as f64 / 100.0;
    }
    groups
}

/// (command line, executable name, CPU ticks) of every process we may read.
fn processes() -> Vec<(String, String, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            path.file_name()?.to_str()?.parse::<u32>().ok()?;
            let command = std::fs::read_to_string(path.join("cmdline")).ok()?;
            let exe = std::fs::read_link(path.join("exe")).ok()?.file_name()?.to_str()?.to_owned();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Fields after the parenthesised name: utime and stime are the 12th and 13th.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((command, exe, ticks))
        })
        .collect()
}

fn emulator_rss_mib() -> Option<f64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.filter_map(|e| e.ok()).find_map(|entry| {
        let command = std::fs::read_to_string(entry.path().join("cmdline")).ok()?;
        if !command.contains("dev/emulator.py") {
            return None;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verification_link_gives_the_request_and_its_token() {
        let mail = SentMail {
            id: "1".into(),
            source: "privacy@example.com".into(),
            destinations: Default::default(),
            subject: "Confirm".into(),
            body:
                r#"<a href="http://127.0.0.1:9000/verify?lang=en#request_id=abc&amp;token=t0k">confirm</a>"#
                    .into(),
        };
        assert_eq!(mail.verification_links(), vec![("abc".to_owned(), "t0k".to_owned())]);
    }

    #[test]
    fn the_rate_counts_fulfilled_requests_over_the_whole_burst() {
        let report = Report {
            requests: 10,
            fulfilled: 8,
            elapsed: Duration::from_secs(4),
            latencies: vec![],
            submit_latencies: vec![],
            pipeline_latencies: vec![],
            cpu: BTreeMap::new(),
            emulator_rss_mib: None,
            failures: vec![],
        };
        assert_eq!(report.rate(), 2.0);
    }
}
