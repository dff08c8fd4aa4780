//! `devstack provision` creates the local resources; `devstack mailbox [ADDRESS]` prints the mail
//! the emulator received; `devstack wait` waits until the emulator answers; `devstack pump` plays
//! the event source mappings and the daily schedule; `devstack sweep` runs the daily sweep once;
//! `devstack gateway [ADDRESS]` plays API Gateway's HTTP APIs in front of the functions;
//! `devstack source-server [ADDRESS]` serves the reference webhook source; `devstack mail-preview
//! [DIR]` writes every message in every language for review.

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
        Some("redrive") => redrive().await,
        Some("chaos") => chaos(&args[1..]).await,
        // The HTTP APIs of the template on ADDRESS (default 127.0.0.1:9000), invoking the
        // functions at LAMBDA_INVOKE_URL.
        Some("gateway") => {
            devstack::gateway::run(args.get(1).map_or("127.0.0.1:9000", String::as_str), &invoke_url()).await
        }
        // The reference webhook source (api/source-webhook.yaml) on ADDRESS (default
        // 127.0.0.1:7010), configured from SOURCE_* variables (dev/src/source_server.rs).
        Some("source-server") => {
            devstack::source_server::run(
                args.get(1).map_or(devstack::source_server::DEFAULT_ADDRESS, String::as_str),
            )
            .await
        }
        // The reference webhook source's key (the file KEYFILE) as the Secrets Manager secret ID.
        Some("source-secret") => source_secret(&args[1..]).await,
        Some("mail-preview") => mail_preview(args.get(1).map(String::as_str)),
        _ => bail!(
            "usage: devstack provision | seed | pump | sweep | mailbox [ADDRESS] | wait | burst LABEL REQUESTS [CLIENTS] | gateway [ADDRESS] | source-server [ADDRESS] | source-secret ID KEYFILE | redrive | chaos faults|kills | mail-preview [DIR]"
        ),
    }
}

fn mail_preview(dir: Option<&str>) -> Result<()> {
    let dir = std::path::PathBuf::from(dir.unwrap_or("target/mail"));
    let written = devstack::mail_preview::write_all(&dir)?;
    println!("{} messages written; open {}", written.len(), dir.join("index.html").display());
    Ok(())
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
        tombstones: from_env_or("TOMBSTONES_TABLE", Some("privacy-tombstones".into())).unwrap_or_default(),
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
        "provisioned at {}: table {} (stream, indexes, TTL), tombstones table {}, bucket {} (versioning, lifecycle, \
         public access block), SES identity {} with configuration set {}, {} queues, {} function roles",
        endpoint(),
        names.table,
        names.tombstones,
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
        .resource("TombstonesTable", &stack.tombstones)
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

async fn source_secret(args: &[String]) -> Result<()> {
    let usage = "usage: devstack source-secret ID KEYFILE";
    let (Some(id), Some(file)) = (args.first(), args.get(1)) else { bail!(usage) };
    let key = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let key = key.trim();
    if key.is_empty() {
        bail!("{file} holds no key");
    }
    wait_for_emulator().await?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let change = match devstack::source_server::put_signing_key(&sdk, id, key).await? {
        devstack::source_server::SecretChange::Created => "created",
        devstack::source_server::SecretChange::Updated => "updated (the key before it is AWSPREVIOUS)",
        devstack::source_server::SecretChange::Unchanged => "already holds the key",
    };
    println!("source-secret: {id} {change} at {}", endpoint());
    Ok(())
}

fn invoke_url() -> String {
    std::env::var("LAMBDA_INVOKE_URL").unwrap_or_else(|_| "http://127.0.0.1:9001".to_owned())
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
    // Named, so that the emulator can fail the pump's calls on purpose (EMULATOR_FAULTS_PUMP=1).
    let sdk = devstack::pump::as_pump(&sdk)?;
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "privacy-requests".to_owned());
    let invoke_url = invoke_url();
    let sweep_every = number_from_env("SWEEP_INTERVAL_SECONDS", 3600)?;
    let sweep_retry = number_from_env("SWEEP_RETRY_SECONDS", 60)?;
    let failure_queue = std::env::var("DISPATCH_FAILURE_QUEUE_URL").ok();
    // Where the stream was processed up to, kept in PUMP_CHECKPOINT (when set) as Lambda's mapping
    // keeps it: a pump started again goes on from there instead of delivering the whole stream
    // again, which under the fault run's kills (make chaos) never got past the old records.
    let checkpoint = std::env::var("PUMP_CHECKPOINT").ok().map(std::path::PathBuf::from);
    let after = checkpoint.as_ref().and_then(|file| std::fs::read_to_string(file).ok());
    let reader = match after.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(sequence) => devstack::stream::StreamReader::open_after(&sdk, &table, sequence).await?,
        None => devstack::stream::StreamReader::open(&sdk, &table).await?,
    };
    let stream = devstack::pump::StreamMapping {
        reader,
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
        // As Lambda does after its asynchronous retries: a sweep that failed three times waits in
        // RemindersDeadLetterQueue (make redrive).
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let dead_letters =
            devstack::redrive::local_queue_url(&sqs, "RemindersDeadLetterQueue").await.ok().flatten();
        // The local stand-in for RemindersSchedule (EventBridge Scheduler is not emulated).
        pumps.push(devstack::pump::Pump::new(invoker(), &sdk, None, Vec::new()).with_schedule(
            devstack::pump::ScheduleMapping {
                function: "reminders".to_owned(),
                payload: daily_sweep_payload(),
                every: Duration::from_secs(sweep_every),
                retry_after: Duration::from_secs(sweep_retry),
                dead_letter_queue_url: dead_letters,
            },
        ));
        println!(
            "pump: invoking reminders with {} now and every {sweep_every} s (a failure: again after {sweep_retry} s)",
            daily_sweep_payload()
        );
    }
    let mut running = tokio::task::JoinSet::new();
    for (n, pump) in pumps.into_iter().enumerate() {
        // The first pump is the stream's.
        running.spawn(run_forever(pump, checkpoint.clone().filter(|_| n == 0)));
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

async fn run_forever(
    mut pump: devstack::pump::Pump<devstack::pump::HttpInvoker>,
    checkpoint: Option<std::path::PathBuf>,
) {
    let mut saved = None;
    loop {
        if let Some(file) = &checkpoint
            && pump.stream_checkpoint() != saved.as_deref()
        {
            let sequence = pump.stream_checkpoint().unwrap_or_default().to_owned();
            // Written aside and renamed: a kill never leaves half a checkpoint.
            let aside = file.with_extension("new");
            match std::fs::write(&aside, &sequence).and_then(|()| std::fs::rename(&aside, file)) {
                Ok(()) => saved = Some(sequence),
                Err(err) => eprintln!("pump: the checkpoint was not saved: {err}"),
            }
        }
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

/// A burst of access requests through the running local stack (API_URL, the API as its gateway
/// serves it; the emulator's endpoint): prints one line of figures, labelled, and fails if any
/// request did not complete.
async fn burst(args: &[String]) -> Result<()> {
    let usage = "usage: devstack burst LABEL REQUESTS [CLIENTS]";
    let label = args.first().context(usage)?;
    let requests = args.get(1).context(usage)?.parse().context(usage)?;
    let clients = args.get(2).map(|c| c.parse()).transpose().context(usage)?.unwrap_or(8);
    let report = devstack::burst::run(devstack::burst::Settings {
        api: std::env::var("API_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned()),
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

/// Puts what the running local stack gave up on back to work (dev/src/redrive.rs): each job
/// queue's dead letters back to the queue, the stream batches the failure queue describes to
/// `dispatch`, each dead-lettered sweep to `reminders` (functions at LAMBDA_INVOKE_URL).
async fn redrive() -> Result<()> {
    wait_for_emulator().await?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "privacy-requests".to_owned());
    let queues = devstack::redrive::dead_letter_queues(&aws_sdk_sqs::Client::new(&sdk)).await?;
    let invoker = devstack::pump::HttpInvoker::new(invoke_url());
    let outcomes = devstack::redrive::redrive(&sdk, &table, &invoker, &queues).await?;
    let mut failed = 0;
    for (queue, outcome) in queues.iter().zip(&outcomes) {
        let what = match &queue.action {
            devstack::redrive::Action::MoveTo { queue, .. } => format!("moved back to {queue}"),
            devstack::redrive::Action::ReplayStream => "read again from the stream, to dispatch".to_owned(),
            devstack::redrive::Action::Invoke { function } => format!("invoked {function}"),
        };
        println!("{}: {} of {} {what}", outcome.queue, outcome.redriven, outcome.before);
        for reason in &outcome.failed {
            println!("  left in the queue: {reason}");
        }
        failed += outcome.failed.len();
    }
    if failed > 0 {
        bail!("{failed} dead letters failed again; they stay for the next redrive");
    }
    Ok(())
}

/// One pass of the fault run against the running stack (dev/src/chaos.rs): `faults`, or `kills`
/// (the pump killed at random too). Fails unless the run came out as it would without faults.
async fn chaos(args: &[String]) -> Result<()> {
    let usage = "usage: devstack chaos faults|kills";
    let kills = match args.first().map(String::as_str) {
        Some("faults") => false,
        Some("kills") => true,
        _ => bail!(usage),
    };
    let env = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} is not set ({usage}; dev/bin/chaos)"))
    };
    let state = std::path::PathBuf::from(env("DEV_STATE_DIR")?);
    let label = if kills { "faults and pump kills" } else { "faults" };
    let settings = devstack::chaos::Settings {
        label: label.to_owned(),
        api: env("API_URL")?,
        invoke: invoke_url(),
        emulator: endpoint(),
        table: std::env::var("TABLE_NAME").unwrap_or_else(|_| "privacy-requests".to_owned()),
        bucket: std::env::var("EXPORT_BUCKET").unwrap_or_else(|_| "privacy-exports-local".to_owned()),
        staff_key: std::fs::read_to_string(state.join("staff.key"))
            .context("the stack's staff key")?
            .trim()
            .to_owned(),
        staff_address: std::env::var("STAFF_ADDRESS")
            .unwrap_or_else(|_| "privacy-team@example.com".to_owned()),
        requests: usize::try_from(number_from_env("CHAOS_REQUESTS", 100)?)?,
        clients: usize::try_from(number_from_env("CHAOS_CLIENTS", 8)?)?,
        rate: env("CHAOS_FAULTS")?.parse().context("CHAOS_FAULTS is a share between 0 and 1")?,
        seed: number_from_env("CHAOS_SEED", 1)?,
        patience: Duration::from_secs(number_from_env("CHAOS_PATIENCE_SECONDS", 300)?),
        kill_pump_of: if kills {
            Some(u32::try_from(number_from_env("CHAOS_STACK_GROUP", 0)?)?)
        } else {
            None
        },
        log_dir: state,
    };
    let report = devstack::chaos::run(settings).await?;
    report.print(label);
    if !report.holds() {
        bail!("{label}: the run did not come out as it would without faults");
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
