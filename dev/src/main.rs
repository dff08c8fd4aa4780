//! `devstack provision` creates the local resources; `devstack mailbox [ADDRESS]` prints the mail
//! the emulator received; `devstack wait` waits until the emulator answers; `devstack pump` plays
//! the event source mappings and the daily schedule; `devstack sweep` runs the daily sweep once.

use anyhow::{Context, Result, bail};
use devstack::{endpoint, mailbox, provision, template};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("provision") => provision().await,
        Some("mailbox") => print_mailbox(args.get(1).map(String::as_str)).await,
        Some("wait") => wait_for_emulator().await,
        Some("seed") => seed().await,
        Some("pump") => pump().await,
        Some("sweep") => sweep().await,
        Some("burst") => burst(&args[1..]).await,
        _ => bail!(
            "usage: devstack provision | seed | pump | sweep | mailbox [ADDRESS] | wait | burst LABEL REQUESTS [CLIENTS]"
        ),
    }
}

async fn wait_for_emulator() -> Result<()> {
    let url = format!("{}/_local/health", endpoint());
    for _ in 0..120 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("the emulator did not answer at {url} within 30 s")
}

async fn provision() -> Result<()> {
    wait_for_emulator().await?;
    let template = template::Template::load(&template::default_path())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let from_env_or = |name: &str, default: Option<String>| std::env::var(name).ok().or(default);
    let names = provision::LocalStack {
        table: from_env_or("TABLE_NAME", Some("privacy-requests".into())).unwrap_or_default(),
        bucket: from_env_or("EXPORT_BUCKET", Some("privacy-exports-local".into())).unwrap_or_default(),
        mail_from: from_env_or("MAIL_FROM", template.parameter_default("MailFromAddress"))
            .context("no MAIL_FROM and no MailFromAddress default in the template")?,
        configuration_set: from_env_or(
            "SES_CONFIGURATION_SET",
            template.parameter_default("SesConfigurationSetName"),
        )
        .context("no SES_CONFIGURATION_SET and no SesConfigurationSetName default in the template")?,
    };
    let queues = provision::provision_all(&sdk, &template, &names).await?;
    // Each function's role, from the template, with this stack's names; the functions run with
    // these credentials (ROLE_CREDENTIALS_OUT: a shared credentials file, one profile per binary).
    let roles =
        devstack::roles::provision_roles(&sdk, &template, &local_names(&template, &names, &queues)?).await?;
    if let Ok(path) = std::env::var("ROLE_CREDENTIALS_OUT") {
        std::fs::write(&path, devstack::roles::credentials_file(&roles))
            .with_context(|| format!("writing {path}"))?;
    }
    // The settings the functions need that only exist once the resources do (the export and
    // erasure queue URLs, the dispatcher's failure queue).
    if let Ok(path) = std::env::var("RESOURCES_ENV_OUT") {
        std::fs::write(&path, provision::resources_env(&queues)?)
            .with_context(|| format!("writing {path}"))?;
    }
    println!(
        "provisioned at {}: table {} (stream, indexes, TTL), bucket {} (versioning, lifecycle, public access block), \
         SES identity {} with configuration set {}, {} queues, {} function roles",
        endpoint(),
        names.table,
        names.bucket,
        names.mail_from,
        names.configuration_set,
        queues.len(),
        roles.len()
    );
    Ok(())
}

/// What the template's names are in the local stack `make dev` runs (stack `STACK_NAME`,
/// default privacy-local; the data map's sources under `DATA_NAME_PREFIX`).
fn local_names(
    template: &template::Template,
    stack: &provision::LocalStack,
    queues: &[(String, String)],
) -> Result<devstack::roles::Names> {
    let env_or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let region = env_or("AWS_REGION", "eu-west-1");
    let mut names = devstack::roles::Names::new(&region, &env_or("STACK_NAME", "privacy-local"))
        .parameter("MailFromAddress", &stack.mail_from)
        .parameter("StaffNotificationAddress", &env_or("STAFF_ADDRESS", "privacy-team@example.com"))
        .parameter("AlarmEmailAddress", &env_or("ALARM_ADDRESS", "alarms@example.com"))
        .parameter("PublicBaseUrl", &env_or("PUBLIC_BASE_URL", "https://privacy.example.com"))
        .parameter("SesConfigurationSetName", &stack.configuration_set)
        .resource("RequestsTable", &stack.table)
        .resource("ExportBucket", &stack.bucket)
        .resource("MailConfigurationSet", &stack.configuration_set);
    for queue in template.queues()? {
        if queues.iter().any(|(id, _)| *id == queue.logical_id) {
            names = names.resource(&queue.logical_id, &queue.local_name());
        }
    }
    let map = privacy_shared::datamap::DataMap::builtin()?;
    Ok(names.sources(&map, &env_or("DATA_NAME_PREFIX", "")))
}

/// The data map's sources with the synthetic people in them (names prefixed by
/// `DATA_NAME_PREFIX`, empty by default).
async fn seed() -> Result<()> {
    wait_for_emulator().await?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let prefix = std::env::var("DATA_NAME_PREFIX").unwrap_or_default();
    let map = privacy_shared::datamap::DataMap::builtin()?.with_name_prefix(&prefix);
    devstack::seed::create_sources(&sdk, &map).await?;
    let written =
        devstack::seed::seed(&sdk, &map, &devstack::seed::SampleData::load(&devstack::seed::default_path())?)
            .await?;
    println!("seeded {} sources of the data map with {written} records and objects", map.sources().len());
    Ok(())
}

fn invoke_url() -> String {
    std::env::var("LAMBDA_INVOKE_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned())
}

/// What the deployed schedule (RemindersSchedule) sends the sweep.
fn daily_sweep_payload() -> serde_json::Value {
    serde_json::json!({"sweep": "daily"})
}

fn number_from_env(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().with_context(|| format!("{name}={value:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// Invokes the daily sweep once through `cargo lambda watch` (LAMBDA_INVOKE_URL) and prints its
/// answer.
async fn sweep() -> Result<()> {
    use devstack::pump::Invoker;
    let result = devstack::pump::HttpInvoker::new(invoke_url())
        .invoke("reminders", daily_sweep_payload())
        .await
        .context("the sweep failed (is the local stack running? make dev)")?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

/// Delivers the table's stream to `dispatch`, the export queue to `export` and the erasure queue
/// to `erasure` (each queue whose URL is set: EXPORT_QUEUE_URL, ERASURE_QUEUE_URL) through
/// `cargo lambda watch` (LAMBDA_INVOKE_URL), and invokes the daily sweep at start and every
/// SWEEP_INTERVAL_SECONDS (default 3600; 0 turns it off), until stopped.
async fn pump() -> Result<()> {
    wait_for_emulator().await?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "privacy-requests".to_owned());
    let invoke_url = invoke_url();
    let sweep_every = number_from_env("SWEEP_INTERVAL_SECONDS", 3600)?;
    let sweep_retry = number_from_env("SWEEP_RETRY_SECONDS", 60)?;
    let failure_queue = std::env::var("DISPATCH_FAILURE_QUEUE_URL").ok();
    let stream = devstack::pump::StreamMapping {
        reader: devstack::stream::StreamReader::open(&sdk, &table).await?,
        function: "dispatch".to_owned(),
        batch_size: 25,
        max_retries: 5,
        on_failure_queue_url: failure_queue,
    };
    let mut queues = Vec::new();
    let mut delivering = vec![format!("the stream of {table} to dispatch")];
    for worker in devstack::pump::QUEUE_WORKERS {
        let Some(url) = std::env::var(worker.url_variable).ok().filter(|url| !url.is_empty()) else {
            println!(
                "pump: {} is not set, so nothing delivers {} to {}",
                worker.url_variable, worker.queue, worker.function
            );
            continue;
        };
        let arn = devstack::provision::queue_arn(&aws_sdk_sqs::Client::new(&sdk), &url).await?;
        delivering.push(format!("{} to {}", worker.queue, worker.function));
        queues.push(devstack::pump::QueueMapping {
            url,
            arn,
            function: worker.function.to_owned(),
            batch_size: worker.batch_size,
            retry_after_seconds: 5,
            wait_seconds: 20,
        });
    }
    // As Lambda runs them: the stream's batches one after another (one shard), each queue's
    // batches by several pollers at once (PUMP_QUEUE_CONCURRENCY, default 4; the queue's
    // visibility keeps them apart), and the schedule on its own, so none waits for the others.
    let pollers = usize::try_from(number_from_env("PUMP_QUEUE_CONCURRENCY", 4)?)?.max(1);
    let invoker = || devstack::pump::HttpInvoker::new(invoke_url.clone());
    let mut pumps = vec![devstack::pump::Pump::new(invoker(), &sdk, Some(stream), Vec::new())];
    for queue in queues {
        for _ in 0..pollers {
            pumps.push(devstack::pump::Pump::new(invoker(), &sdk, None, vec![queue.clone()]));
        }
    }
    println!("pump: delivering {} ({pollers} pollers per queue)", delivering.join(", "));
    if sweep_every > 0 {
        // The local stand-in for RemindersSchedule (EventBridge Scheduler is not emulated).
        pumps.push(devstack::pump::Pump::new(invoker(), &sdk, None, Vec::new()).with_schedule(
            devstack::pump::ScheduleMapping {
                function: "reminders".to_owned(),
                payload: daily_sweep_payload(),
                every: Duration::from_secs(sweep_every),
                retry_after: Duration::from_secs(sweep_retry),
            },
        ));
        println!(
            "pump: invoking reminders with {} now and every {sweep_every} s (a failure: again after {sweep_retry} s)",
            daily_sweep_payload()
        );
    }
    let mut running = tokio::task::JoinSet::new();
    for pump in pumps {
        running.spawn(run_forever(pump));
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

async fn run_forever(mut pump: devstack::pump::Pump<devstack::pump::HttpInvoker>) {
    loop {
        match pump.tick().await {
            Ok(tick) if !tick.idle() => {
                if let Some(error) = &tick.scheduled_error {
                    eprintln!("pump: the scheduled sweep failed, retrying on a later tick: {error}");
                }
                println!("pump: {tick:?}");
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(err) => {
                eprintln!("pump: {err:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A burst of access requests through the running local stack (LAMBDA_INVOKE_URL, the
/// emulator's endpoint): prints one line of figures, labelled, and fails if any request did not
/// complete.
async fn burst(args: &[String]) -> Result<()> {
    let usage = "usage: devstack burst LABEL REQUESTS [CLIENTS]";
    let label = args.first().context(usage)?;
    let requests = args.get(1).context(usage)?.parse().context(usage)?;
    let clients = args.get(2).map(|c| c.parse()).transpose().context(usage)?.unwrap_or(8);
    let report = devstack::burst::run(devstack::burst::Settings {
        api: invoke_url(),
        emulator: endpoint(),
        requests,
        clients,
        patience: Duration::from_secs(number_from_env("BURST_PATIENCE_SECONDS", 300)?),
    })
    .await?;
    println!("{label}: {}", report.summary());
    for failure in report.failures.iter().take(5) {
        eprintln!("{label}: a request failed: {failure}");
    }
    if !report.failures.is_empty() {
        bail!("{label}: {} of {} requests failed", report.failures.len(), report.requests);
    }
    Ok(())
}

async fn print_mailbox(to: Option<&str>) -> Result<()> {
    let mails = match to {
        Some(address) => mailbox::fetch_to(&endpoint(), address).await?,
        None => mailbox::fetch(&endpoint()).await?,
    };
    let shown: Vec<_> = mails.iter().collect();
    if shown.is_empty() {
        println!("(no mail)");
    }
    for mail in shown {
        println!("──────────────────────────────────────────────");
        println!("From:    {}", mail.source);
        println!("To:      {}", mail.destinations.to_addresses.join(", "));
        println!("Subject: {}", mail.subject);
        println!();
        println!("{}", mail.plain_text());
        for link in mail.links() {
            println!("Link:    {link}");
        }
    }
    Ok(())
}
