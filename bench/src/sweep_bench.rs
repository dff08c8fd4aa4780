//! The sweep benchmark: tables of N requests of which DUE are due within the digest window or
//! overdue, filled with BatchWriteItem; then the real sweep runs three times (the first sends the
//! digest, the others find nothing new). Per table size it prints the index items the sweep read
//! (DynamoDB's ScannedCount: what a sweep costs in read capacity), the digest lines, the wall time
//! and the sweep process's own CPU time, as a Markdown table row.
//!
//! Usage: `sweep-bench DUE N...` with AWS_ENDPOINT_URL pointing at the emulator.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::{DateTime, Days, Duration, TimeZone, Utc};
use std::sync::Arc;
use std::time::Instant;

use privacy_shared::config::ReminderSettings;
use privacy_shared::domain::{EmailAddress, Language, Region, RequestId, RequestKind, RequestRecord, Status};
use privacy_shared::store::DynamoStore;
use privacy_shared::{Config, Env, ManualClock};

const MAIL_FROM: &str = "privacy@example.com";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 14, 6, 0, 0).unwrap()
}

/// Request number `i` of a table of `total` with `due` due ones: the first `due` are verified and
/// due from 3 days ago to 7 days ahead; the rest are mostly closed, some open with later dates,
/// some freshly submitted and pending.
fn record(i: usize, due: usize, calendar: &privacy_shared::domain::BusinessCalendar) -> RequestRecord {
    let region = Region::parse(if i.is_multiple_of(3) { "US-CA" } else { "NL" }).unwrap();
    let today = calendar.local_date(now());
    let (status, received_at, due_on) = if i < due {
        let due_on = today - Days::new(3) + Days::new((i % 11) as u64);
        (Status::Verified, now() - Duration::days(30), due_on)
    } else {
        match i % 10 {
            0..=5 => {
                (Status::Completed, now() - Duration::days(60 + (i % 300) as i64), today - Days::new(20))
            }
            6..=8 => (Status::Verified, now() - Duration::days(1), today + Days::new(8 + (i % 30) as u64)),
            _ => (
                Status::PendingVerification,
                now() - Duration::hours(1 + (i % 40) as i64),
                today + Days::new(30),
            ),
        }
    };
    let deadlines = privacy_shared::domain::Deadlines {
        received_on: calendar.local_date(received_at),
        due_on,
        acknowledge_by: None,
    };
    let language = Language::default_for(&region);
    let email = EmailAddress::parse(&format!("person{i}@example.com")).unwrap();
    let kind = RequestKind::ALL[i % RequestKind::ALL.len()];
    RequestRecord {
        status,
        version: 2,
        name: Some(format!("Person {i}")),
        acknowledged_at: Some(received_at),
        verified_at: (status != Status::PendingVerification).then_some(received_at),
        ..RequestRecord::received(
            RequestId::generate(),
            kind,
            region,
            language,
            email,
            received_at,
            deadlines,
        )
    }
}

async fn load(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    total: usize,
    due: usize,
    config: &Config,
) -> Result<()> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    for i in 0..total {
        let item = DynamoStore::request_item(&record(i, due, &config.calendar))?;
        batch.push(
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build(),
        );
        if batch.len() == 25 {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    for chunk in batches {
        let mut pending = Some(chunk);
        while let Some(requests) = pending.take() {
            let out = dynamo.batch_write_item().request_items(table, requests).send().await?;
            pending = out.unprocessed_items.and_then(|mut u| u.remove(table)).filter(|r| !r.is_empty());
        }
    }
    Ok(())
}

/// User plus system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()
        .context("usage: sweep-bench DUE N...")?;
    let (due, sizes) = args.split_first().context("usage: sweep-bench DUE N...")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    devstack::provision::create_mail_identity(&aws_sdk_sesv2::Client::new(&sdk), MAIL_FROM).await?;
    let spec = devstack::template::Template::load(&devstack::template::default_path())?.the_table()?;

    println!(
        "| requests in table | due | index items read (1st / 2nd / 3rd sweep) | digest lines | load s | sweep wall ms (1st / 2nd / 3rd) | sweep CPU ms (1st / 2nd / 3rd) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &total in sizes {
        let table = format!("bench-sweep-{total}-{}", uuid::Uuid::new_v4().simple());
        devstack::provision::create_table(&dynamo, &table, &spec).await?;
        let env = Env::from_pairs(&[
            ("TABLE_NAME", table.as_str()),
            ("MAIL_FROM", MAIL_FROM),
            ("PUBLIC_BASE_URL", "https://privacy.example.test"),
            ("STATUS_LINK_KEY", "a-bench-only-status-link-key-not-a-secret"),
            ("STAFF_ADDRESS", "privacy-team@example.com"),
        ]);
        let settings = ReminderSettings::load(&env)?;
        let config = settings.core.clone();
        let started = Instant::now();
        load(&dynamo, &table, total, *due, &config).await?;
        let load_s = started.elapsed().as_secs_f64();

        let clock = Arc::new(ManualClock::new(now()));
        let sweeper = reminders::Sweeper::with_sdk(&sdk, settings, clock);
        let (mut reads, mut walls, mut cpus, mut lines) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..3 {
            let (cpu, wall) = (cpu_seconds(), Instant::now());
            let report = reminders::sweep(&sweeper).await?;
            walls.push(format!("{:.0}", wall.elapsed().as_secs_f64() * 1000.0));
            cpus.push(format!("{:.0}", (cpu_seconds() - cpu) * 1000.0));
            reads.push(report.index_items_read.to_string());
            lines += report.digest_items;
        }
        println!(
            "| {total} | {due} | {} | {lines} | {load_s:.1} | {} | {} |",
            reads.join(" / "),
            walls.join(" / "),
            cpus.join(" / ")
        );
        dynamo.delete_table().table_name(&table).send().await?;
    }
    Ok(())
}
