//! Every function's environment, read in one place, once at cold start, with one error type. A
//! missing or malformed setting stops the function at init with a message naming the variable,
//! never mid-request. Settings are grouped by concern; each function's settings are the concerns
//! it needs ([`IntakeSettings`] … [`AdminSettings`]), and [`Function::load`] reads them by name,
//! so a test can hold every function to exactly the variables the template gives it.

use chrono::Duration;
use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::budget::MailBudgets;
use crate::datamap::{BuiltinMap, DataMap};
use crate::domain::{
    BusinessCalendar, CalendarError, EmailAddress, MIN_RECORD_RETENTION_MONTHS, RecordRetention, StatusKey,
    TokenHash,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

fn invalid(name: &'static str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { name, why: why.to_string() }
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;
type Names = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// Where settings come from (the process environment, or a table in tests), remembering every
/// variable that was asked for.
pub struct Env {
    lookup: Lookup,
    /// Every name that is set, where the source can be listed.
    names: Option<Names>,
    read: Mutex<BTreeSet<&'static str>>,
}

/// Variables only the local stack and the tests set; the deployed template never gives them.
pub const LOCAL_ONLY: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SES",
    "AWS_ENDPOINT_URL_SESV2",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "DATA_NAME_PREFIX",
    "S3_FORCE_PATH_STYLE",
    "STAFF_LOCAL_KEY",
    // The local stack's reference webhook source, and the map without its sources outside AWS
    // for the runs that measure the AWS side alone: neither is ever deployed.
    "SOURCE_ENDPOINTS",
    "DATA_MAP_SCOPE",
];

impl Env {
    pub fn process() -> Env {
        let names: Names =
            Box::new(|| std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect());
        Env { names: Some(names), ..Env::from_lookup(|name| std::env::var(name).ok()) }
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Env {
        Env { lookup: Box::new(lookup), names: None, read: Mutex::new(BTreeSet::new()) }
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let names: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
        // The last setting of a name wins, as in a shell.
        let env =
            Env::from_lookup(move |name| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
        Env { names: Some(Box::new(move || names.clone())), ..env }
    }

    /// Every set variable whose name starts with `prefix`, with its value (trimmed, blank counts
    /// as unset); `None` where the source cannot be listed (one made [`Env::from_lookup`]).
    pub fn with_prefix(&self, prefix: &'static str) -> Option<Vec<(String, String)>> {
        self.read.lock().unwrap_or_else(|p| p.into_inner()).insert(prefix);
        let mut names: Vec<String> =
            (self.names.as_ref()?)().into_iter().filter(|n| n.starts_with(prefix)).collect();
        names.sort();
        names.dedup();
        let value = |name: &str| (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Some(names.into_iter().filter_map(|name| value(&name).map(|v| (name, v))).collect())
    }

    /// Every variable asked for so far.
    pub fn names_read(&self) -> BTreeSet<&'static str> {
        self.read.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The value, trimmed; blank counts as unset.
    pub fn get(&self, name: &'static str) -> Option<String> {
        self.read.lock().unwrap_or_else(|p| p.into_inner()).insert(name);
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// A whole number in `range`, or `default` when unset.
    fn number(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                invalid(name, format!("must be a whole number from {} to {}", range.start(), range.end()))
            }),
        }
    }

    fn flag(&self, name: &'static str) -> bool {
        self.get(name).is_some_and(|v| v == "true")
    }
}

/// What every function that handles requests needs: the table, mail, the public address and the
/// business calendar.
#[derive(Clone, Debug)]
pub struct Config {
    pub table_name: String,
    /// The verified SES identity mail is sent from.
    pub mail_from: String,
    pub ses_configuration_set: Option<String>,
    /// Where the public API (and the `/verify` page) is reached, without a trailing slash.
    pub public_base_url: String,
    pub calendar: BusinessCalendar,
    pub verification: VerificationPolicy,
    /// Signs the status link in every email to the requester (`STATUS_LINK_KEY`).
    pub status_links: StatusKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationPolicy {
    pub token_lifetime: Duration,
    pub max_wrong_attempts: u32,
    /// What one mailbox, domain, network and everyone together may receive per `email_window`
    /// (the mailbox's limit is `VERIFICATION_EMAILS_PER_HOUR`): the inbox-flood guard.
    pub budgets: MailBudgets,
    pub email_window: Duration,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        VerificationPolicy {
            token_lifetime: Duration::hours(24),
            max_wrong_attempts: 5,
            budgets: MailBudgets::default(),
            email_window: Duration::hours(1),
        }
    }
}

/// `MAIL_BUDGETS_PER_HOUR`: `domain=100,network=20,overall=500`, any of them, the rest default.
fn mail_budgets(env: &Env, per_mailbox: u32) -> Result<MailBudgets, ConfigError> {
    const NAME: &str = "MAIL_BUDGETS_PER_HOUR";
    let mut budgets = MailBudgets { per_mailbox, ..MailBudgets::default() };
    let Some(raw) = env.get(NAME) else { return Ok(budgets) };
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (scope, value) =
            part.split_once('=').ok_or_else(|| invalid(NAME, "expected scope=number pairs"))?;
        let value = value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=1_000_000).contains(v))
            .ok_or_else(|| invalid(NAME, "each limit must be a whole number from 1 to 1000000"))?;
        match scope.trim() {
            "domain" => budgets.per_domain = value,
            "network" => budgets.per_network = value,
            "overall" => budgets.overall = value,
            _ => return Err(invalid(NAME, "scopes are domain, network and overall")),
        }
    }
    Ok(budgets)
}

impl Config {
    pub fn load(env: &Env) -> Result<Config, ConfigError> {
        let table_name = env.required("TABLE_NAME")?;
        let mail_from = env.required("MAIL_FROM")?;
        let ses_configuration_set = env.get("SES_CONFIGURATION_SET");
        let public_base_url = env.required("PUBLIC_BASE_URL")?.trim_end_matches('/').to_owned();
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://")) {
            return Err(invalid("PUBLIC_BASE_URL", "must start with https:// (or http:// locally)"));
        }
        let zone = env.get("BUSINESS_TIME_ZONE").unwrap_or_else(|| "Europe/Amsterdam".to_owned());
        let holidays = env.get("BUSINESS_HOLIDAYS").unwrap_or_default();
        let calendar = BusinessCalendar::parse(&zone, &holidays).map_err(|e| match e {
            CalendarError::UnknownZone(_) => invalid("BUSINESS_TIME_ZONE", &e),
            CalendarError::BadHoliday(_) => invalid("BUSINESS_HOLIDAYS", &e),
        })?;
        let defaults = VerificationPolicy::default();
        let per_mailbox =
            env.number("VERIFICATION_EMAILS_PER_HOUR", defaults.budgets.per_mailbox.into(), 1..=1000)? as u32;
        let verification = VerificationPolicy { budgets: mail_budgets(env, per_mailbox)?, ..defaults };
        let status_links = status_key(env)?;
        Ok(Config {
            table_name,
            mail_from,
            ses_configuration_set,
            public_base_url,
            calendar,
            verification,
            status_links,
        })
    }
}

impl Config {
    /// What the status link in every email to the requester is made of.
    pub fn status_page(&self) -> crate::mail::templates::StatusLinks<'_> {
        crate::mail::templates::StatusLinks {
            key: &self.status_links,
            public_base_url: &self.public_base_url,
        }
    }
}

/// The business calendar's time zone alone (`BUSINESS_TIME_ZONE`), for telling dates; a function
/// that counts no deadlines needs no holidays.
fn business_zone(env: &Env) -> Result<BusinessCalendar, ConfigError> {
    let zone = env.get("BUSINESS_TIME_ZONE").unwrap_or_else(|| "Europe/Amsterdam".to_owned());
    BusinessCalendar::parse(&zone, "").map_err(|e| invalid("BUSINESS_TIME_ZONE", e))
}

/// `STATUS_LINK_KEY`: the secret every status link's token is derived with.
pub fn status_key(env: &Env) -> Result<StatusKey, ConfigError> {
    const NAME: &str = "STATUS_LINK_KEY";
    StatusKey::parse(&env.required(NAME)?).map_err(|e| invalid(NAME, e))
}

/// Where staff notices and digests go.
pub fn staff_address(env: &Env) -> Result<EmailAddress, ConfigError> {
    EmailAddress::parse(&env.required("STAFF_ADDRESS")?)
        .map_err(|_| invalid("STAFF_ADDRESS", "not an email address"))
}

/// The data map, its table and bucket names prefixed by `DATA_NAME_PREFIX` (local tests only).
pub fn data_map(env: &Env) -> Result<DataMap, ConfigError> {
    let prefix = env.get("DATA_NAME_PREFIX").unwrap_or_default();
    let map = DataMap::builtin().map_err(|e| invalid("DATA_NAME_PREFIX", e))?.with_name_prefix(&prefix);
    Ok(if aws_only(env)? { map.aws_only() } else { map })
}

/// `DATA_MAP_SCOPE=aws`: the map without its sources outside AWS ([`DataMap::aws_only`]), for
/// the stacks that measure or fault the AWS side alone (`make chaos`, the benchmarks) and the
/// tests of it. The template never sets it (a test of the template holds it to that): a deployed
/// export that left the webhook and manual sources out would be incomplete.
fn aws_only(env: &Env) -> Result<bool, ConfigError> {
    match env.get("DATA_MAP_SCOPE").as_deref() {
        None | Some("all") => Ok(false),
        Some("aws") => Ok(true),
        Some(_) => Err(invalid("DATA_MAP_SCOPE", "must be `all` or `aws`")),
    }
}

/// The same map, read when first asked for ([`BuiltinMap`]).
pub fn lazy_data_map(env: &Env) -> BuiltinMap {
    let map = BuiltinMap::with_name_prefix(&env.get("DATA_NAME_PREFIX").unwrap_or_default());
    if aws_only(env).unwrap_or(false) { map.aws_only() } else { map }
}

/// `S3_FORCE_PATH_STYLE=true`: the emulator at 127.0.0.1 has no per-bucket host names.
pub fn s3_path_style(env: &Env) -> bool {
    env.flag("S3_FORCE_PATH_STYLE")
}

/// The job queues dispatch feeds.
#[derive(Clone, Debug)]
pub struct QueueUrls {
    pub export: String,
    pub erasure: String,
}

impl QueueUrls {
    pub fn load(env: &Env) -> Result<QueueUrls, ConfigError> {
        Ok(QueueUrls {
            export: env.required("EXPORT_QUEUE_URL")?,
            erasure: env.required("ERASURE_QUEUE_URL")?,
        })
    }
}

/// How long an export (and its download link) is kept.
pub fn export_retention_days(env: &Env) -> Result<u64, ConfigError> {
    env.number("EXPORT_RETENTION_DAYS", 30, 1..=3650)
}

/// How long the de-identified records of requests are kept (CCPA regulations §7101): at least
/// 24 months, the default; less is a configuration error, not a silent minimum.
pub fn record_retention(env: &Env) -> Result<RecordRetention, ConfigError> {
    const NAME: &str = "RECORD_RETENTION_MONTHS";
    let months = env.number(NAME, u64::from(MIN_RECORD_RETENTION_MONTHS), 0..=1200)?;
    let months = u32::try_from(months).map_err(|_| invalid(NAME, "is too large"))?;
    RecordRetention::months(months).map_err(|err| invalid(NAME, err))
}

/// The daily sweep's clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepPolicy {
    pub reminder_after: Duration,
    pub expire_after: Duration,
    pub digest_window_days: u64,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            reminder_after: Duration::days(3),
            expire_after: Duration::days(14),
            digest_window_days: 7,
        }
    }
}

impl SweepPolicy {
    pub fn load(env: &Env) -> Result<SweepPolicy, ConfigError> {
        let defaults = SweepPolicy::default();
        let reminder =
            env.number("UNVERIFIED_REMINDER_DAYS", defaults.reminder_after.num_days() as u64, 1..=365)?;
        let expiry =
            env.number("UNVERIFIED_EXPIRY_DAYS", defaults.expire_after.num_days() as u64, 1..=365)?;
        let window = env.number("DIGEST_WINDOW_DAYS", defaults.digest_window_days, 1..=365)?;
        if reminder >= expiry {
            return Err(invalid(
                "UNVERIFIED_REMINDER_DAYS",
                "the reminder must come before the expiry (UNVERIFIED_EXPIRY_DAYS)",
            ));
        }
        Ok(SweepPolicy {
            reminder_after: Duration::days(reminder as i64),
            expire_after: Duration::days(expiry as i64),
            digest_window_days: window,
        })
    }
}

/// Where the overdue count goes: CloudWatch reads it from the log line (Embedded Metric Format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub namespace: String,
    pub stack: String,
}

impl Metrics {
    pub fn load(env: &Env) -> Option<Metrics> {
        let stack = env.get("STACK_NAME").unwrap_or_else(|| "local".to_owned());
        env.get("METRICS_NAMESPACE").map(|namespace| Metrics { namespace, stack })
    }
}

mod local_key;
pub use local_key::local_staff_key;

/// `intake` and `verify`.
pub type IntakeSettings = Config;

#[derive(Clone, Debug)]
pub struct DispatchSettings {
    pub core: Config,
    pub staff: EmailAddress,
    pub queues: QueueUrls,
    pub export_retention_days: u64,
    /// How long the records of requests it writes from the stream are kept.
    pub record_retention: RecordRetention,
    /// Only triage reads it, so it is read at the first triage, not at cold start.
    pub data_map: BuiltinMap,
    pub s3_path_style: bool,
    /// The function's timeout (the template's `Timeout`): how long an invocation that brings no
    /// deadline of its own may hold and wait for effects. Lambda's deadline, when given, wins.
    pub timeout: Duration,
}

impl DispatchSettings {
    pub fn load(env: &Env) -> Result<DispatchSettings, ConfigError> {
        Ok(DispatchSettings {
            core: Config::load(env)?,
            staff: staff_address(env)?,
            queues: QueueUrls::load(env)?,
            export_retention_days: export_retention_days(env)?,
            record_retention: record_retention(env)?,
            data_map: lazy_data_map(env),
            s3_path_style: s3_path_style(env),
            timeout: Duration::seconds(60),
        })
    }
}

/// `export`, `erasure`: the workers over the data map's sources.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub table_name: String,
    pub export_bucket: String,
    /// The export worker's key for the objects it writes (SSE-KMS); S3's own key without it.
    pub export_kms_key_id: Option<String>,
    pub data_map: DataMap,
    pub s3_path_style: bool,
    /// The erasure's: how a job that runs out of time goes on.
    pub continuation: Option<ContinuationSettings>,
    /// The export's: how an export too big for one invocation is split into parts; none without
    /// `EXPORT_QUEUE_URL` (every export is then written whole).
    pub export_parts: Option<PartSettings>,
    /// How the webhook sources are reached.
    pub outside: OutsideSettings,
    /// The erasure's: where each erasure's tombstone is kept and what it is hashed with.
    pub tombstones: Option<TombstoneSettings>,
    /// The export's pages tell dates and times in the business time zone (`BUSINESS_TIME_ZONE`);
    /// the erasure tells none (UTC, not read).
    pub calendar: BusinessCalendar,
}

/// Where erasure tombstones are kept (`TOMBSTONES_TABLE`, a table a restore never rolls back),
/// the key identifiers are hashed with (`TOMBSTONE_KEY`, Secrets Manager) and how long a
/// tombstone outlives its erasure (`TOMBSTONE_RETENTION_DAYS`, at least the 35 days of
/// point-in-time recovery; 42 by default). See [`crate::tombstones`].
#[derive(Clone, Debug)]
pub struct TombstoneSettings {
    pub table: String,
    pub key: crate::tombstones::TombstoneKey,
    pub retention: crate::tombstones::TombstoneRetention,
}

impl TombstoneSettings {
    pub fn load(env: &Env) -> Result<TombstoneSettings, ConfigError> {
        const KEY: &str = "TOMBSTONE_KEY";
        Ok(TombstoneSettings {
            table: env.required("TOMBSTONES_TABLE")?,
            key: crate::tombstones::TombstoneKey::parse(&env.required(KEY)?).map_err(|e| invalid(KEY, e))?,
            retention: tombstone_retention(env)?,
        })
    }
}

fn tombstone_retention(env: &Env) -> Result<crate::tombstones::TombstoneRetention, ConfigError> {
    const NAME: &str = "TOMBSTONE_RETENTION_DAYS";
    match env.get(NAME) {
        None => Ok(crate::tombstones::TombstoneRetention::default()),
        Some(raw) => crate::tombstones::TombstoneRetention::parse(&raw).map_err(|e| invalid(NAME, e)),
    }
}

/// The staff API's replays of the erasures after a restore: where runs are recorded (the
/// tombstones table), the erasure queue their jobs go to, and the tombstones' retention (a
/// backup older than it cannot be replayed over). None without `TOMBSTONES_TABLE` (the
/// in-memory stack): the replay routes then answer as unavailable.
#[derive(Clone, Debug)]
pub struct ReplaySettings {
    pub table: String,
    pub erasure_queue_url: String,
    pub retention: crate::tombstones::TombstoneRetention,
}

impl ReplaySettings {
    pub fn load(env: &Env) -> Result<Option<ReplaySettings>, ConfigError> {
        let Some(table) = env.get("TOMBSTONES_TABLE") else { return Ok(None) };
        Ok(Some(ReplaySettings {
            table,
            erasure_queue_url: env.required("ERASURE_QUEUE_URL")?,
            retention: tombstone_retention(env)?,
        }))
    }
}

/// The webhook sources: base URLs that replace the map's (`SOURCE_ENDPOINTS`, `id=url,...`: the
/// local stack's reference source), and the public API's base URL their callbacks go to
/// (`PUBLIC_BASE_URL`; without it they are polled).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutsideSettings {
    pub endpoints: std::collections::HashMap<String, String>,
    pub callback_base: Option<String>,
}

impl OutsideSettings {
    pub fn load(env: &Env) -> Result<OutsideSettings, ConfigError> {
        let endpoints = crate::webhook::parse_overrides(&env.get("SOURCE_ENDPOINTS").unwrap_or_default())
            .map_err(|e| invalid("SOURCE_ENDPOINTS", e))?;
        let callback_base = env.get("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        Ok(OutsideSettings { endpoints, callback_base })
    }
}

/// An export whose recordings come to more than `part_bytes` (`EXPORT_PART_BYTES`) is written as
/// numbered parts of at most that much each (a larger recording alone in its part), each part
/// its own job on the export queue (`EXPORT_QUEUE_URL`), run side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartSettings {
    pub queue_url: String,
    pub part_bytes: u64,
}

/// What one export invocation writes in its 15 minutes (the template's timeout), with room to
/// spare. `make bench-export` writes 0.1-0.2 GiB/s into the emulator with a core to itself (and
/// 12-15 MB/s on a 2-core machine loaded three times over), most of it deflating the recordings.
/// The function has 256 MB, about a seventh of a vCPU (Lambda gives a whole one at 1,769 MB), so
/// count on 0.1 GiB/s / 7, some 15 MB/s: 4 GiB is then under 5 minutes, a third of the timeout,
/// leaving the rest for slow sources, S3 and a retry's re-reads.
pub const DEFAULT_EXPORT_PART_BYTES: u64 = 4 << 30;

/// An erasure that would outlast its invocation stops this long before the invocation's
/// deadline (`ERASURE_STOP_BEFORE_DEADLINE_SECONDS`, default 30) and continues in a fresh one,
/// through its own queue (`ERASURE_QUEUE_URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinuationSettings {
    pub queue_url: String,
    pub stop_before_deadline: std::time::Duration,
}

impl WorkerSettings {
    fn load(env: &Env, writes_exports: bool) -> Result<WorkerSettings, ConfigError> {
        Ok(WorkerSettings {
            table_name: env.required("TABLE_NAME")?,
            export_bucket: env.required("EXPORT_BUCKET")?,
            export_kms_key_id: if writes_exports { env.get("EXPORT_KMS_KEY_ID") } else { None },
            data_map: data_map(env)?,
            s3_path_style: s3_path_style(env),
            continuation: None,
            export_parts: if writes_exports { PartSettings::load(env)? } else { None },
            outside: OutsideSettings::load(env)?,
            tombstones: None,
            calendar: if writes_exports { business_zone(env)? } else { BusinessCalendar::utc() },
        })
    }

    pub fn export(env: &Env) -> Result<WorkerSettings, ConfigError> {
        WorkerSettings::load(env, true)
    }

    pub fn erasure(env: &Env) -> Result<WorkerSettings, ConfigError> {
        let margin = env.number("ERASURE_STOP_BEFORE_DEADLINE_SECONDS", 30, 1..=900)?;
        let continuation = ContinuationSettings {
            queue_url: env.required("ERASURE_QUEUE_URL")?,
            stop_before_deadline: std::time::Duration::from_secs(margin),
        };
        Ok(WorkerSettings {
            continuation: Some(continuation),
            tombstones: Some(TombstoneSettings::load(env)?),
            ..WorkerSettings::load(env, false)?
        })
    }
}

impl PartSettings {
    fn load(env: &Env) -> Result<Option<PartSettings>, ConfigError> {
        // From 1 MiB (a part is at least one S3 upload part) to S3's largest object, 5 TiB.
        let part_bytes = env.number("EXPORT_PART_BYTES", DEFAULT_EXPORT_PART_BYTES, (1 << 20)..=(5 << 40))?;
        Ok(env.get("EXPORT_QUEUE_URL").map(|queue_url| PartSettings { queue_url, part_bytes }))
    }
}

#[derive(Clone, Debug)]
pub struct DownloadSettings {
    pub table_name: String,
    pub export_bucket: String,
    pub s3_path_style: bool,
    /// Checks the status page's tokens.
    pub status_links: StatusKey,
    /// Tells the status page's dates as the emails do (`BUSINESS_TIME_ZONE`).
    pub calendar: BusinessCalendar,
}

impl DownloadSettings {
    pub fn load(env: &Env) -> Result<DownloadSettings, ConfigError> {
        Ok(DownloadSettings {
            table_name: env.required("TABLE_NAME")?,
            export_bucket: env.required("EXPORT_BUCKET")?,
            s3_path_style: s3_path_style(env),
            status_links: status_key(env)?,
            calendar: business_zone(env)?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct ReminderSettings {
    pub core: Config,
    pub staff: EmailAddress,
    pub policy: SweepPolicy,
    pub metrics: Option<Metrics>,
}

impl ReminderSettings {
    pub fn load(env: &Env) -> Result<ReminderSettings, ConfigError> {
        Ok(ReminderSettings {
            core: Config::load(env)?,
            staff: staff_address(env)?,
            policy: SweepPolicy::load(env)?,
            metrics: Metrics::load(env),
        })
    }
}

#[derive(Clone, Debug)]
pub struct AdminSettings {
    pub core: Config,
    pub local_key: Option<TokenHash>,
    /// The data map, for the tasks of its sources outside AWS that staff see and answer (manual
    /// sources); read when first needed, not at cold start.
    pub data_map: BuiltinMap,
    /// Where files staff attach for a manual source are staged (`staging/` of the export
    /// bucket), encrypted with the export's key (`EXPORT_KMS_KEY_ID`; S3's own key without it).
    pub export_bucket: String,
    pub export_kms_key_id: Option<String>,
    pub s3_path_style: bool,
    /// Replays of the erasures after a restore (`POST /staff/erasures/replays`).
    pub replays: Option<ReplaySettings>,
}

impl AdminSettings {
    pub fn load(env: &Env) -> Result<AdminSettings, ConfigError> {
        Ok(AdminSettings {
            core: Config::load(env)?,
            local_key: local_staff_key(env)?,
            data_map: lazy_data_map(env),
            export_bucket: env.required("EXPORT_BUCKET")?,
            export_kms_key_id: env.get("EXPORT_KMS_KEY_ID"),
            s3_path_style: s3_path_style(env),
            replays: ReplaySettings::load(env)?,
        })
    }
}

/// `mail-events`: the table, and the mail it sends staff when an answer bounces.
#[derive(Clone, Debug)]
pub struct MailEventsSettings {
    pub table_name: String,
    pub mail_from: String,
    pub ses_configuration_set: Option<String>,
    pub staff: EmailAddress,
}

impl MailEventsSettings {
    pub fn load(env: &Env) -> Result<MailEventsSettings, ConfigError> {
        Ok(MailEventsSettings {
            table_name: env.required("TABLE_NAME")?,
            mail_from: env.required("MAIL_FROM")?,
            ses_configuration_set: env.get("SES_CONFIGURATION_SET"),
            staff: staff_address(env)?,
        })
    }
}

/// Every function, by the name the template and `cargo lambda` give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Intake,
    Verify,
    Dispatch,
    Export,
    Download,
    Reminders,
    Admin,
    Erasure,
    MailEvents,
}

impl Function {
    pub const ALL: [Function; 9] = [
        Function::Intake,
        Function::Verify,
        Function::Dispatch,
        Function::Export,
        Function::Download,
        Function::Reminders,
        Function::Admin,
        Function::Erasure,
        Function::MailEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Intake => "intake",
            Function::Verify => "verify",
            Function::Dispatch => "dispatch",
            Function::Export => "export",
            Function::Download => "download",
            Function::Reminders => "reminders",
            Function::Admin => "admin",
            Function::Erasure => "erasure",
            Function::MailEvents => "mail-events",
        }
    }

    /// Reads this function's settings, as its cold start does.
    pub fn load(self, env: &Env) -> Result<(), ConfigError> {
        match self {
            Function::Intake | Function::Verify => Config::load(env).map(drop),
            Function::Dispatch => DispatchSettings::load(env).map(drop),
            Function::Export => WorkerSettings::export(env).map(drop),
            Function::Erasure => WorkerSettings::erasure(env).map(drop),
            Function::Download => DownloadSettings::load(env).map(drop),
            Function::Reminders => ReminderSettings::load(env).map(drop),
            Function::Admin => AdminSettings::load(env).map(drop),
            Function::MailEvents => MailEventsSettings::load(env).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "requests"),
        ("MAIL_FROM", "privacy@example.com"),
        ("PUBLIC_BASE_URL", "https://privacy.example.com/"),
        ("STATUS_LINK_KEY", "a-local-status-link-key-for-the-config-tests"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = BASE.to_vec();
        pairs.extend_from_slice(extra);
        Env::from_pairs(&pairs)
    }

    #[test]
    fn defaults_follow_the_policy() {
        let c = Config::load(&with(&[])).unwrap();
        assert_eq!(c.public_base_url, "https://privacy.example.com");
        assert_eq!(c.verification, VerificationPolicy::default());
        assert_eq!(c.verification.budgets.per_mailbox, 3);
        assert_eq!(c.calendar.zone_name(), "Europe/Amsterdam");
    }

    #[test]
    fn the_email_cap_is_configurable() {
        let c = Config::load(&with(&[
            ("VERIFICATION_EMAILS_PER_HOUR", "10"),
            ("MAIL_BUDGETS_PER_HOUR", "domain=40, overall=900"),
        ]))
        .unwrap();
        assert_eq!(
            c.verification.budgets,
            MailBudgets { per_mailbox: 10, per_domain: 40, overall: 900, ..MailBudgets::default() }
        );
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            Config::load(&Env::from_pairs(&BASE[..2])).unwrap_err(),
            ConfigError::Missing("PUBLIC_BASE_URL")
        );
        assert_eq!(
            Config::load(&Env::from_pairs(&BASE[..3])).unwrap_err(),
            ConfigError::Missing("STATUS_LINK_KEY")
        );
        for (name, value) in [
            ("PUBLIC_BASE_URL", "ftp://x"),
            ("BUSINESS_TIME_ZONE", "Nowhere/Land"),
            ("BUSINESS_HOLIDAYS", "tomorrow"),
            ("VERIFICATION_EMAILS_PER_HOUR", "0"),
            ("MAIL_BUDGETS_PER_HOUR", "domain=0"),
            ("MAIL_BUDGETS_PER_HOUR", "street=5"),
            ("MAIL_BUDGETS_PER_HOUR", "overall"),
            ("STATUS_LINK_KEY", "too-short"),
        ] {
            match Config::load(&with(&[(name, value)])) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_sweep_needs_its_reminder_before_its_expiry() {
        let policy = SweepPolicy::load(&with(&[("UNVERIFIED_REMINDER_DAYS", "2")])).unwrap();
        assert_eq!(policy.reminder_after, Duration::days(2));
        for (name, value) in [("UNVERIFIED_REMINDER_DAYS", "14"), ("DIGEST_WINDOW_DAYS", "0")] {
            assert!(matches!(SweepPolicy::load(&with(&[(name, value)])), Err(ConfigError::Invalid { .. })));
        }
    }

    #[test]
    fn the_erasure_continues_through_its_own_queue_and_stops_before_its_deadline() {
        let base = [
            ("EXPORT_BUCKET", "exports"),
            ("ERASURE_QUEUE_URL", "https://sqs/erasure.fifo"),
            ("TOMBSTONES_TABLE", "tombstones"),
            ("TOMBSTONE_KEY", "a-local-tombstone-key-for-the-config-tests"),
        ];
        let settings = WorkerSettings::erasure(&with(&base)).unwrap();
        let expected = ContinuationSettings {
            queue_url: "https://sqs/erasure.fifo".into(),
            stop_before_deadline: std::time::Duration::from_secs(30),
        };
        assert_eq!(settings.continuation, Some(expected));
        let mut later = base.to_vec();
        later.push(("ERASURE_STOP_BEFORE_DEADLINE_SECONDS", "60"));
        let settings = WorkerSettings::erasure(&with(&later)).unwrap();
        assert_eq!(settings.continuation.unwrap().stop_before_deadline.as_secs(), 60);
        let missing = WorkerSettings::erasure(&with(&base[..1]));
        assert_eq!(missing.unwrap_err(), ConfigError::Missing("ERASURE_QUEUE_URL"));
        assert!(WorkerSettings::export(&with(&base[..1])).unwrap().continuation.is_none());
    }

    #[test]
    fn the_export_splits_above_its_part_size_through_its_own_queue_and_only_with_one() {
        let base = [("EXPORT_BUCKET", "exports"), ("EXPORT_QUEUE_URL", "https://sqs/export.fifo")];
        let settings = WorkerSettings::export(&with(&base)).unwrap();
        let expected = PartSettings {
            queue_url: "https://sqs/export.fifo".into(),
            part_bytes: DEFAULT_EXPORT_PART_BYTES,
        };
        assert_eq!(settings.export_parts, Some(expected));
        let mut smaller = base.to_vec();
        smaller.push(("EXPORT_PART_BYTES", "1073741824"));
        assert_eq!(
            WorkerSettings::export(&with(&smaller)).unwrap().export_parts.unwrap().part_bytes,
            1 << 30
        );
        smaller.push(("EXPORT_PART_BYTES", "1000"));
        assert!(matches!(WorkerSettings::export(&with(&smaller)), Err(ConfigError::Invalid { .. })));
        assert_eq!(
            WorkerSettings::export(&with(&base[..1])).unwrap().export_parts,
            None,
            "no queue, no parts"
        );
        let erasure = [
            ("EXPORT_BUCKET", "exports"),
            ("ERASURE_QUEUE_URL", "https://sqs/erasure.fifo"),
            ("TOMBSTONES_TABLE", "tombstones"),
            ("TOMBSTONE_KEY", "a-local-tombstone-key-for-the-config-tests"),
        ];
        assert_eq!(WorkerSettings::erasure(&with(&erasure)).unwrap().export_parts, None);
    }

    #[test]
    fn records_of_requests_are_kept_24_months_or_longer_and_never_less() {
        assert_eq!(record_retention(&with(&[])).unwrap(), RecordRetention::MINIMUM);
        let longer = record_retention(&with(&[("RECORD_RETENTION_MONTHS", "36")])).unwrap();
        assert_eq!(longer.as_months(), 36);
        for short in ["23", "0", "12"] {
            match record_retention(&with(&[("RECORD_RETENTION_MONTHS", short)])) {
                Err(ConfigError::Invalid { name, why }) => {
                    assert_eq!(name, "RECORD_RETENTION_MONTHS");
                    assert!(why.contains("24 months"), "{why}");
                }
                other => panic!("{short}: {other:?}"),
            }
        }
        for bad in ["two years", "-24", "24.5", "1201"] {
            assert!(record_retention(&with(&[("RECORD_RETENTION_MONTHS", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_erasure_keeps_a_tombstone_for_at_least_the_backups_retention() {
        let base = [
            ("EXPORT_BUCKET", "exports"),
            ("ERASURE_QUEUE_URL", "https://sqs/erasure.fifo"),
            ("TOMBSTONES_TABLE", "tombstones"),
            ("TOMBSTONE_KEY", "a-local-tombstone-key-for-the-config-tests"),
        ];
        let tombstones = WorkerSettings::erasure(&with(&base)).unwrap().tombstones.unwrap();
        assert_eq!((tombstones.table.as_str(), tombstones.retention.as_days()), ("tombstones", 42));
        assert!(!format!("{tombstones:?}").contains("config-tests"), "the key is never printed");
        for missing in ["TOMBSTONES_TABLE", "TOMBSTONE_KEY"] {
            let pairs: Vec<_> = base.iter().copied().filter(|(name, _)| *name != missing).collect();
            assert_eq!(WorkerSettings::erasure(&with(&pairs)).unwrap_err(), ConfigError::Missing(missing));
        }
        for (name, value) in [("TOMBSTONE_RETENTION_DAYS", "34"), ("TOMBSTONE_KEY", "short")] {
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            match WorkerSettings::erasure(&with(&pairs)) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(WorkerSettings::export(&with(&base)).unwrap().tombstones.is_none(), "the export keeps none");
    }

    #[test]
    fn every_variable_asked_for_is_remembered() {
        let env = with(&[]);
        Config::load(&env).unwrap();
        let read = env.names_read();
        for name in ["TABLE_NAME", "MAIL_FROM", "BUSINESS_HOLIDAYS", "VERIFICATION_EMAILS_PER_HOUR"] {
            assert!(read.contains(name), "{name}");
        }
    }
}
