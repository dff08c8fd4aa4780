//! The data map (`config/datamap.yaml`): where personal data lives, how to find one person in
//! each place, what the policy discloses about it, what erasure does to it (delete, or keep an
//! anonymised record for a stated legal reason), and which attributes a requester may correct
//! themselves. Checked completely at load, so a bad map fails at cold start with the entry named,
//! never halfway through an export or an erasure. (`dispatch`, which needs it only to triage a
//! verification, reads the checked-in map when it first triages: see [`BuiltinMap`].)

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

const BUILTIN: &str = include_str!("../../config/datamap.yaml");

/// How a person is identified in a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectAttribute {
    /// The normalised email address.
    Email,
    /// The user id, found through the source that `provides_user_id`.
    UserId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Identifiers,
    ContactData,
    ProfessionalInformation,
    AccountData,
    DeviceAndSystemInformation,
    SettingsAndPreferences,
    CustomerContent,
    Recordings,
    ChatTranscripts,
    Presence,
    CallDetailRecords,
    Marketing,
    InternetActivity,
    Geolocation,
    Inferences,
    JobApplication,
}

/// The CCPA categories of the policy's section 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CcpaCategory {
    Identifiers,
    SensitivePersonalInformation,
    CommercialInformation,
    ProfessionalInformation,
    InternetActivity,
    Geolocation,
    Inferences,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    ProvidingServices,
    Advertising,
    AuditingTransactions,
    ResearchAndDevelopment,
    Security,
    DebuggingAndRepair,
    QualityControl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    ThePerson,
    MarketingAndDataPartners,
    AutomaticCollection,
    InternalAnalytics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    ServiceProviders,
    Affiliates,
    GovernmentRegulators,
    LawEnforcement,
    StrategicallyAlignedCompanies,
}

/// Which of the two CCPA lists (policy s12) a source's categories belong on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CcpaDisclosure {
    /// Categories sold or shared, with the recipients.
    SoldOrShared,
    /// Categories disclosed for a business purpose.
    BusinessPurpose,
}

/// Where a source keeps its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A DynamoDB table, read by its key (`find_by == table_key`) or through `index`.
    Table {
        table: String,
        find_by: SubjectAttribute,
        table_key: String,
        index: Option<String>,
        time_attribute: Option<String>,
    },
    /// S3 objects under a per-person prefix, e.g. `recordings/{user_id}/`.
    Objects { bucket: String, prefix: String, find_by: SubjectAttribute },
    /// An HTTPS endpoint of the company's own (`api/source-webhook.yaml`), asked with both of the
    /// person's identifiers; its answer may come later, by a callback or a poll.
    Webhook { endpoint: String, auth: WebhookAuth },
    /// A place with no API (a spreadsheet, a paper archive): staff look, attach what they find and
    /// confirm what they erased. `instructions` tell them where and how.
    Manual { instructions: String },
}

/// How calls to a webhook source are authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookAuth {
    /// HMAC-SHA256 under the Secrets Manager secret `secret` (its current and, while rotating,
    /// previous value); the endpoint signs its callbacks the same way.
    Hmac { secret: String },
    /// SigV4 with the function's own role, for an endpoint behind IAM (API Gateway, a function
    /// URL). Such an endpoint cannot sign a callback, so it is polled.
    SigV4 { region: String, service: String },
}

/// What the policy says about a source: the disclosure's raw material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disclosure {
    pub categories: Vec<Category>,
    pub ccpa_categories: Vec<CcpaCategory>,
    pub purposes: Vec<Purpose>,
    pub origins: Vec<Origin>,
    pub recipients: Vec<Recipient>,
    pub ccpa_disclosure: CcpaDisclosure,
    pub retention: String,
}

/// What erasing a person does to a source's records or objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasurePolicy {
    /// The person's records (or objects, every version) are deleted.
    Delete,
    /// The record is kept for a legal reason, without these attributes. Checked at load: the
    /// attribute the person is found by is always among them (so the kept record can never be
    /// found for the person again), the table key never (the record must stay addressable).
    Anonymise {
        attributes: Vec<String>,
        /// What was kept and why, in words the requester is shown.
        reason: String,
    },
}

/// Attributes the erasure and rectification write themselves, so no policy may name them.
pub const WRITTEN_ON_ERASURE: &str = "anonymised_at";
pub const WRITTEN_ON_CORRECTION: &str = "corrected_at";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub id: String,
    pub description: String,
    pub location: Location,
    /// The attribute of this source's record that holds the person's user id.
    pub provides_user_id: Option<String>,
    pub disclosure: Disclosure,
    pub erasure: ErasurePolicy,
    /// Attributes a requester may correct themselves (only tables found by email: the address is
    /// what the requester proved). Never the table key, the find attribute or the user id.
    pub correctable: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMap {
    sources: Vec<Source>,
    recipients: Vec<RecipientContact>,
}

/// A recipient of the company's data (a processor, a service provider) that must be told when a
/// person's data it received is erased, corrected or restricted (GDPR Art. 19, CCPA regulations
/// §7022(b)): who, where, and which sources it receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecipientContact {
    pub id: String,
    pub name: String,
    /// Where its privacy team is told.
    pub address: String,
    pub category: Recipient,
    pub sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    #[serde(deserialize_with = "as_value")]
    id: String,
    #[serde(deserialize_with = "as_value")]
    name: String,
    #[serde(deserialize_with = "as_value")]
    address: String,
    category: Recipient,
    sources: Vec<String>,
}

/// The checked-in map under a name prefix, read when it is first asked for: for a function that
/// needs the map in only some of its invocations (`dispatch`, to triage a verification), so that
/// its cold start does not pay for reading it (a YAML parse, most of a millisecond). The map is
/// compiled in and the tests read it, so a build whose map does not read never passes them:
/// reading it late cannot fail where reading it at cold start would not have. Clones share the
/// one reading.
#[derive(Clone)]
pub struct BuiltinMap {
    prefix: String,
    aws_only: bool,
    map: Arc<OnceLock<Result<DataMap, DataMapError>>>,
}

impl BuiltinMap {
    pub fn with_name_prefix(prefix: &str) -> BuiltinMap {
        BuiltinMap { prefix: prefix.to_owned(), aws_only: false, map: Arc::new(OnceLock::new()) }
    }

    /// The same, without the sources outside AWS ([`DataMap::aws_only`]).
    pub fn aws_only(self) -> BuiltinMap {
        BuiltinMap { aws_only: true, map: Arc::new(OnceLock::new()), ..self }
    }

    pub fn get(&self) -> Result<&DataMap, DataMapError> {
        let read = self.map.get_or_init(|| {
            DataMap::builtin().map(|map| {
                let map = map.with_name_prefix(&self.prefix);
                if self.aws_only { map.aws_only() } else { map }
            })
        });
        read.as_ref().map_err(Clone::clone)
    }
}

impl fmt::Debug for BuiltinMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltinMap")
            .field("prefix", &self.prefix)
            .field("read", &self.map.get().is_some())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DataMapError {
    /// The entry's id, or its position when it has no readable id, or `(file)`.
    pub entry: String,
    pub problem: String,
}

impl fmt::Display for DataMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "data map entry `{}`: {}", self.entry, self.problem)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    version: u32,
    sources: Vec<serde_norway::Value>,
    #[serde(default)]
    recipient_contacts: Vec<RawContact>,
}

/// The same file read straight into its entries (see [`DataMap::parse`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTypedMap {
    version: u32,
    sources: Vec<RawSource>,
    #[serde(default)]
    recipient_contacts: Vec<RawContact>,
}

fn check_version(version: u32) -> Result<(), DataMapError> {
    match version {
        1 => Ok(()),
        other => Err(problem("(file)", format!("version {other} is not supported (expected 1)"))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoreKind {
    Dynamodb,
    S3,
    Webhook,
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthKind {
    Hmac,
    Sigv4,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(deserialize_with = "as_value")]
    id: String,
    #[serde(deserialize_with = "as_value")]
    description: String,
    store: StoreKind,
    #[serde(default, deserialize_with = "as_value")]
    table: Option<String>,
    find_by: Option<SubjectAttribute>,
    #[serde(default, deserialize_with = "as_value")]
    table_key: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    index: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    time_attribute: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    provides_user_id: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    bucket: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    prefix: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    endpoint: Option<String>,
    #[serde(default)]
    auth: Option<AuthKind>,
    #[serde(default, deserialize_with = "as_value")]
    secret: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    signing_region: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    signing_service: Option<String>,
    #[serde(default, deserialize_with = "as_value")]
    instructions: Option<String>,
    categories: Vec<Category>,
    ccpa_categories: Vec<CcpaCategory>,
    purposes: Vec<Purpose>,
    origins: Vec<Origin>,
    recipients: Vec<Recipient>,
    ccpa_disclosure: CcpaDisclosure,
    #[serde(deserialize_with = "as_value")]
    retention: String,
    /// `delete` or `{anonymise: [...], reason: ...}`; read by hand so a mistake gets a message
    /// that shows both shapes rather than serde's "did not match any variant".
    erasure: Option<serde_norway::Value>,
    #[serde(default, deserialize_with = "as_value")]
    correctable: Option<Vec<String>>,
}

/// A text field read as the entry-by-entry reading reads it, through a YAML value: there `~`,
/// `365` and `true` are no text, where the one-pass reader alone would take any scalar's spelling
/// (`retention: ~` as the retention "~"). So both readings accept the same maps.
fn as_value<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_norway::Value::deserialize(deserializer)?;
    serde_norway::from_value(value).map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnonymise {
    anonymise: Vec<String>,
    reason: String,
}

const ERASURE_SHAPE: &str = "`delete` or `{anonymise: [attribute, ...], reason: ...}`";

fn problem(entry: &str, text: impl Into<String>) -> DataMapError {
    DataMapError { entry: entry.to_owned(), problem: text.into() }
}

fn required(entry: &str, name: &str, value: Option<String>) -> Result<String, DataMapError> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| problem(entry, format!("`{name}` is required")))
}

fn forbidden(entry: &str, store: &str, fields: &[(&str, bool)]) -> Result<(), DataMapError> {
    match fields.iter().find(|(_, present)| *present) {
        Some((name, _)) => Err(problem(entry, format!("`{name}` does not apply to a {store} source"))),
        None => Ok(()),
    }
}

/// Every name non-empty, none twice, none of the attributes the system writes itself.
fn attribute_list(entry: &str, list: &str, names: &[String]) -> Result<(), DataMapError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if name.trim().is_empty() {
            return Err(problem(entry, format!("`{list}` has an empty attribute name")));
        }
        if !seen.insert(name.as_str()) {
            return Err(problem(entry, format!("`{list}` names `{name}` twice")));
        }
        if name == WRITTEN_ON_ERASURE || name == WRITTEN_ON_CORRECTION {
            return Err(problem(
                entry,
                format!("`{list}` must not name `{name}`: it is written by the system"),
            ));
        }
    }
    Ok(())
}

fn erasure_policy(
    entry: &str,
    raw: Option<serde_norway::Value>,
    location: &Location,
) -> Result<ErasurePolicy, DataMapError> {
    let raw = raw.ok_or_else(|| problem(entry, format!("`erasure` is required: {ERASURE_SHAPE}")))?;
    let anonymise = match raw {
        serde_norway::Value::String(word) if word == "delete" => return Ok(ErasurePolicy::Delete),
        serde_norway::Value::Mapping(_) => serde_norway::from_value::<RawAnonymise>(raw)
            .map_err(|err| problem(entry, format!("`erasure`: {err}")))?,
        _ => return Err(problem(entry, format!("`erasure` must be {ERASURE_SHAPE}"))),
    };
    let Location::Table { find_by, table_key, .. } = location else {
        return Err(problem(
            entry,
            "`erasure` of an s3, webhook or manual source must be `delete`: only a table's records \
             are anonymised here (an endpoint or staff say in their receipt what they kept and why)",
        ));
    };
    if anonymise.reason.trim().is_empty() {
        return Err(problem(
            entry,
            "`erasure.reason` must not be empty: the requester is told what was kept and why",
        ));
    }
    attribute_list(entry, "erasure.anonymise", &anonymise.anonymise)?;
    if anonymise.anonymise.contains(table_key) {
        return Err(problem(
            entry,
            format!(
                "`erasure.anonymise` must not include the table key `{table_key}`: a kept record keeps \
                 its key (use `erasure: delete` to remove the record)"
            ),
        ));
    }
    let find_attribute = subject_attribute_name(*find_by);
    if !anonymise.anonymise.iter().any(|a| a == find_attribute) {
        return Err(problem(
            entry,
            format!(
                "`erasure.anonymise` must include `{find_attribute}`, the attribute the person is found \
                 by, so the kept record can never be found for them again"
            ),
        ));
    }
    Ok(ErasurePolicy::Anonymise { attributes: anonymise.anonymise, reason: anonymise.reason })
}

fn correctable_attributes(
    entry: &str,
    correctable: Vec<String>,
    location: &Location,
    provides_user_id: Option<&str>,
) -> Result<Vec<String>, DataMapError> {
    // S3 sources never get here with a list: `forbidden` refused it already.
    let Location::Table { find_by, table_key, .. } = location else { return Ok(correctable) };
    if correctable.is_empty() {
        return Ok(correctable);
    }
    if *find_by != SubjectAttribute::Email {
        return Err(problem(
            entry,
            "`correctable` needs a source found by email: the requester proved their address only",
        ));
    }
    attribute_list(entry, "correctable", &correctable)?;
    let find_attribute = subject_attribute_name(*find_by);
    for attribute in &correctable {
        if attribute == table_key {
            return Err(problem(
                entry,
                format!("`correctable` must not include the table key `{table_key}`"),
            ));
        }
        if attribute == find_attribute {
            return Err(problem(
                entry,
                format!(
                    "`correctable` must not include `{find_attribute}`, the attribute the person is found by"
                ),
            ));
        }
        if Some(attribute.as_str()) == provides_user_id {
            return Err(problem(
                entry,
                format!(
                    "`correctable` must not include `{attribute}`, the user id that links the other sources"
                ),
            ));
        }
    }
    Ok(correctable)
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Dynamodb => "dynamodb",
            StoreKind::S3 => "s3",
            StoreKind::Webhook => "webhook",
            StoreKind::Manual => "manual",
        }
    }
}

impl RawSource {
    /// Each field that says where a source's data is, whether the entry gives it, and the one
    /// kind of store it belongs to.
    fn location_fields(&self) -> [(&'static str, bool, StoreKind); 15] {
        use StoreKind::{Dynamodb, Manual, S3, Webhook};
        [
            ("correctable", self.correctable.is_some(), Dynamodb),
            ("table", self.table.is_some(), Dynamodb),
            ("find_by", self.find_by.is_some(), Dynamodb),
            ("table_key", self.table_key.is_some(), Dynamodb),
            ("index", self.index.is_some(), Dynamodb),
            ("time_attribute", self.time_attribute.is_some(), Dynamodb),
            ("provides_user_id", self.provides_user_id.is_some(), Dynamodb),
            ("bucket", self.bucket.is_some(), S3),
            ("prefix", self.prefix.is_some(), S3),
            ("endpoint", self.endpoint.is_some(), Webhook),
            ("auth", self.auth.is_some(), Webhook),
            ("secret", self.secret.is_some(), Webhook),
            ("signing_region", self.signing_region.is_some(), Webhook),
            ("signing_service", self.signing_service.is_some(), Webhook),
            ("instructions", self.instructions.is_some(), Manual),
        ]
    }

    /// No field of another kind of store: a `bucket` on a table is a mistake, not ignored.
    fn fields_apply(&self, entry: &str) -> Result<(), DataMapError> {
        let misplaced =
            self.location_fields().into_iter().find(|(_, given, kind)| *given && *kind != self.store);
        match misplaced {
            Some((name, _, _)) => {
                Err(problem(entry, format!("`{name}` does not apply to a {} source", self.store.name())))
            }
            None => Ok(()),
        }
    }

    fn into_source(self) -> Result<Source, DataMapError> {
        let id = self.id.clone();
        let e = id.as_str();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(problem(e, "`id` must be lower-case letters, digits and underscores"));
        }
        for (name, empty) in [
            ("categories", self.categories.is_empty()),
            ("ccpa_categories", self.ccpa_categories.is_empty()),
            ("purposes", self.purposes.is_empty()),
            ("origins", self.origins.is_empty()),
            ("recipients", self.recipients.is_empty()),
            ("retention", self.retention.trim().is_empty()),
            ("description", self.description.trim().is_empty()),
        ] {
            if empty {
                return Err(problem(e, format!("`{name}` must not be empty")));
            }
        }
        self.fields_apply(e)?;
        let location = match self.store {
            StoreKind::Dynamodb => {
                let table = required(e, "table", self.table)?;
                let find_by = self.find_by.ok_or_else(|| problem(e, "`find_by` is required"))?;
                let table_key = required(e, "table_key", self.table_key)?;
                let key_lookup = table_key == subject_attribute_name(find_by);
                match (&self.index, key_lookup) {
                    (Some(_), true) => {
                        return Err(problem(
                            e,
                            "`index` is not needed: the table's key is the `find_by` attribute",
                        ));
                    }
                    (None, false) => {
                        return Err(problem(
                            e,
                            "`index` is required: the table's key is not the `find_by` attribute",
                        ));
                    }
                    _ => {}
                }
                Location::Table {
                    table,
                    find_by,
                    table_key,
                    index: self.index,
                    time_attribute: self.time_attribute,
                }
            }
            StoreKind::S3 => {
                let bucket = required(e, "bucket", self.bucket)?;
                let prefix = required(e, "prefix", self.prefix)?;
                let find_by = match (prefix.matches("{user_id}").count(), prefix.matches("{email}").count()) {
                    (1, 0) => SubjectAttribute::UserId,
                    (0, 1) => SubjectAttribute::Email,
                    _ => return Err(problem(e, "`prefix` must contain exactly one of {user_id} or {email}")),
                };
                if !prefix.ends_with('/') {
                    return Err(problem(
                        e,
                        "`prefix` must end with `/`, so one person's prefix never matches another's",
                    ));
                }
                Location::Objects { bucket, prefix, find_by }
            }
            StoreKind::Webhook | StoreKind::Manual => {
                if self.store == StoreKind::Manual {
                    Location::Manual { instructions: required(e, "instructions", self.instructions)? }
                } else {
                    let endpoint = required(e, "endpoint", self.endpoint)?;
                    check_endpoint(e, &endpoint)?;
                    let auth = match self.auth {
                        Some(AuthKind::Hmac) => {
                            forbidden(
                                e,
                                "webhook with `auth: hmac`",
                                &[
                                    ("signing_region", self.signing_region.is_some()),
                                    ("signing_service", self.signing_service.is_some()),
                                ],
                            )?;
                            WebhookAuth::Hmac { secret: required(e, "secret", self.secret)? }
                        }
                        Some(AuthKind::Sigv4) => {
                            forbidden(e, "webhook with `auth: sigv4`", &[("secret", self.secret.is_some())])?;
                            WebhookAuth::SigV4 {
                                region: required(e, "signing_region", self.signing_region)?,
                                service: required(e, "signing_service", self.signing_service)?,
                            }
                        }
                        None => return Err(problem(e, "`auth` is required: `hmac` or `sigv4`")),
                    };
                    Location::Webhook { endpoint, auth }
                }
            }
        };
        let erasure = erasure_policy(e, self.erasure, &location)?;
        let correctable = correctable_attributes(
            e,
            self.correctable.unwrap_or_default(),
            &location,
            self.provides_user_id.as_deref(),
        )?;
        Ok(Source {
            id: self.id,
            description: self.description,
            location,
            provides_user_id: self.provides_user_id,
            erasure,
            correctable,
            disclosure: Disclosure {
                categories: self.categories,
                ccpa_categories: self.ccpa_categories,
                purposes: self.purposes,
                origins: self.origins,
                recipients: self.recipients,
                ccpa_disclosure: self.ccpa_disclosure,
                retention: self.retention,
            },
        })
    }
}

fn subject_attribute_name(attribute: SubjectAttribute) -> &'static str {
    match attribute {
        SubjectAttribute::Email => "email",
        SubjectAttribute::UserId => "user_id",
    }
}

/// A webhook's base URL: HTTPS, with a host, and no user name, password, query or fragment (the
/// calls add `/access` and `/erasure` to its path). Plain HTTP only on the loopback, for the
/// local stack's reference source.
pub fn check_endpoint(entry: &str, endpoint: &str) -> Result<(), DataMapError> {
    let url = url::Url::parse(endpoint).map_err(|_| problem(entry, "`endpoint` is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(problem(entry, "`endpoint` must be an https URL")),
    }
    if url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(problem(entry, "`endpoint` must be a base URL: a host and a path, nothing else"));
    }
    Ok(())
}

impl Source {
    /// The identifier a source is searched by. A webhook is given both the address and the user
    /// id, and a manual source is searched by staff with the address: both need only the
    /// address, which every person has.
    pub fn find_by(&self) -> SubjectAttribute {
        match &self.location {
            Location::Table { find_by, .. } | Location::Objects { find_by, .. } => *find_by,
            Location::Webhook { .. } | Location::Manual { .. } => SubjectAttribute::Email,
        }
    }

    /// Whether the source is outside AWS: asked (a webhook) or looked through by staff (manual),
    /// with an answer that may come days later.
    pub fn is_external(&self) -> bool {
        matches!(self.location, Location::Webhook { .. } | Location::Manual { .. })
    }
}

/// What an error calls an entry: its id, or its position (from 1) when it has no id to show.
fn entry_name(id: Option<&str>, position: usize) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("#{}", position + 1),
    }
}

impl DataMap {
    /// The map checked in at `config/datamap.yaml`.
    pub fn builtin() -> Result<DataMap, DataMapError> {
        DataMap::parse(BUILTIN)
    }

    pub fn parse(text: &str) -> Result<DataMap, DataMapError> {
        // A map that reads is read in one pass, straight into its entries: the functions that
        // work on the sources read it at cold start, and a YAML value tree built first and then
        // converted entry by entry costs a quarter more. A map that does not read is read again
        // that way, so that the error names the entry.
        let Ok(raw) = serde_norway::from_str::<RawTypedMap>(text) else {
            return DataMap::parse_by_entry(text);
        };
        check_version(raw.version)?;
        let sources = raw
            .sources
            .into_iter()
            .enumerate()
            .map(|(position, raw_source)| (entry_name(Some(&raw_source.id), position), Ok(raw_source)));
        DataMap::checked(sources)?.with_contacts(raw.recipient_contacts)
    }

    fn parse_by_entry(text: &str) -> Result<DataMap, DataMapError> {
        let raw: RawMap = serde_norway::from_str(text).map_err(|err| problem("(file)", err.to_string()))?;
        check_version(raw.version)?;
        let sources = raw.sources.into_iter().enumerate().map(|(position, value)| {
            let entry = entry_name(value["id"].as_str(), position);
            let raw_source = serde_norway::from_value::<RawSource>(value).map_err(|err| err.to_string());
            (entry, raw_source)
        });
        DataMap::checked(sources)?.with_contacts(raw.recipient_contacts)
    }

    /// The recipient contacts, each checked against the sources: a known source that names the
    /// contact's category among its recipients, an address that reads, no id twice.
    fn with_contacts(mut self, contacts: Vec<RawContact>) -> Result<DataMap, DataMapError> {
        let mut ids = BTreeSet::new();
        for raw in contacts {
            let e = raw.id.clone();
            if e.is_empty() || !e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(problem(
                    &e,
                    "a recipient's `id` must be lower-case letters, digits and underscores",
                ));
            }
            if !ids.insert(e.clone()) {
                return Err(problem(&e, "the recipient id is used twice"));
            }
            if raw.name.trim().is_empty() {
                return Err(problem(&e, "a recipient's `name` must not be empty"));
            }
            if crate::domain::EmailAddress::parse(&raw.address).is_err() {
                return Err(problem(&e, "a recipient's `address` must be an email address"));
            }
            if raw.sources.is_empty() {
                return Err(problem(&e, "a recipient's `sources` must not be empty"));
            }
            for id in &raw.sources {
                let Some(source) = self.source(id) else {
                    return Err(problem(&e, format!("`sources` names `{id}`, which the map does not have")));
                };
                if !source.disclosure.recipients.contains(&raw.category) {
                    return Err(problem(
                        &e,
                        format!("`{id}` does not list this recipient's category among its `recipients`"),
                    ));
                }
            }
            self.recipients.push(RecipientContact {
                id: raw.id,
                name: raw.name.trim().to_owned(),
                address: raw.address.trim().to_owned(),
                category: raw.category,
                sources: raw.sources,
            });
        }
        Ok(self)
    }

    /// The recipients to tell of a change to the person's data in any of `sources` (each once).
    pub fn recipients_of<'a>(&'a self, sources: &[&str]) -> Vec<&'a RecipientContact> {
        self.recipients.iter().filter(|r| r.sources.iter().any(|s| sources.contains(&s.as_str()))).collect()
    }

    pub fn recipient_contacts(&self) -> &[RecipientContact] {
        &self.recipients
    }

    /// Each entry checked, then the map as a whole. An entry is its name (the id, or its position
    /// when it has none) and what was read of it.
    fn checked(
        entries: impl Iterator<Item = (String, Result<RawSource, String>)>,
    ) -> Result<DataMap, DataMapError> {
        let mut sources = Vec::new();
        let mut ids = BTreeSet::new();
        for (entry, raw_source) in entries {
            let source = raw_source
                .map_err(|why| problem(&entry, why))?
                .into_source()
                .map_err(|err| DataMapError { entry: entry.clone(), ..err })?;
            if !ids.insert(source.id.clone()) {
                return Err(problem(&entry, "the id is used twice"));
            }
            sources.push(source);
        }
        if sources.is_empty() {
            return Err(problem("(file)", "no sources"));
        }
        let providers: Vec<&Source> = sources.iter().filter(|s| s.provides_user_id.is_some()).collect();
        if let [.., second] = providers.as_slice()
            && providers.len() > 1
        {
            return Err(problem(&second.id, "only one source may provide the user id"));
        }
        if let Some(provider) = providers.first()
            && provider.find_by() != SubjectAttribute::Email
        {
            return Err(problem(&provider.id, "the source that provides the user id must be found by email"));
        }
        if let Some(needs) = sources.iter().find(|s| s.find_by() == SubjectAttribute::UserId)
            && providers.is_empty()
        {
            return Err(problem(&needs.id, "is found by user_id, but no source provides the user id"));
        }
        // One source per correctable attribute, so a requested correction has exactly one place
        // to go.
        let mut correctable_in: BTreeMap<&str, &str> = BTreeMap::new();
        for source in &sources {
            for attribute in &source.correctable {
                if let Some(first) = correctable_in.insert(attribute, &source.id) {
                    return Err(problem(
                        &source.id,
                        format!("`correctable` attribute `{attribute}` is already correctable in `{first}`"),
                    ));
                }
            }
        }
        Ok(DataMap { sources, recipients: Vec::new() })
    }

    /// The same map with every table and bucket name prefixed: one isolated copy of the sources
    /// per test, or per environment sharing an account.
    pub fn with_name_prefix(&self, prefix: &str) -> DataMap {
        let mut map = self.clone();
        for source in &mut map.sources {
            match &mut source.location {
                Location::Table { table, .. } => *table = format!("{prefix}{table}"),
                Location::Objects { bucket, .. } => *bucket = format!("{prefix}{bucket}"),
                Location::Webhook { .. } | Location::Manual { .. } => {}
            }
        }
        map
    }

    /// The map without its sources outside AWS: for runs that measure or fault the AWS side
    /// alone (the benchmarks, the fault run) and the tests of it, where no webhook answers and no
    /// staff member attaches files.
    pub fn aws_only(&self) -> DataMap {
        let sources: Vec<Source> = self.sources.iter().filter(|s| !s.is_external()).cloned().collect();
        let recipients = (self.recipients.iter())
            .map(|r| RecipientContact {
                sources: r.sources.iter().filter(|s| sources.iter().any(|k| &k.id == *s)).cloned().collect(),
                ..r.clone()
            })
            .filter(|r| !r.sources.is_empty())
            .collect();
        DataMap { sources, recipients }
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// The source that maps an address to a user id, if any source needs one.
    pub fn user_id_source(&self) -> Option<&Source> {
        self.sources.iter().find(|s| s.provides_user_id.is_some())
    }

    /// Every attribute a requester may correct themselves, with the source that holds it, in map
    /// order.
    pub fn correctable_fields(&self) -> Vec<(&Source, &str)> {
        self.sources.iter().flat_map(|s| s.correctable.iter().map(move |a| (s, a.as_str()))).collect()
    }

    /// The one source where `field` may be corrected, or `None` if it is not self-service
    /// correctable anywhere (the load check makes the source unique).
    pub fn correction_source(&self, field: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.correctable.iter().any(|a| a == field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_map_loads_and_covers_the_policys_data() {
        let map = DataMap::builtin().unwrap();
        let ids: Vec<&str> = map.sources().iter().map(|s| s.id.as_str()).collect();
        for expected in [
            "accounts",
            "call_detail_records",
            "chat_transcripts",
            "meeting_rooms",
            "recordings",
            "presence",
            "marketing",
        ] {
            assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
        }
        assert_eq!(map.user_id_source().map(|s| s.id.as_str()), Some("accounts"));
        assert!(matches!(
            map.source("recordings").unwrap().location,
            Location::Objects { find_by: SubjectAttribute::UserId, .. }
        ));
        let both_lists: BTreeSet<CcpaDisclosure> =
            map.sources().iter().map(|s| s.disclosure.ccpa_disclosure).collect();
        assert_eq!(both_lists.len(), 2, "the policy's two CCPA lists both have entries");
    }

    #[test]
    fn the_checked_in_map_says_what_erasure_keeps_and_what_may_be_corrected() {
        let map = DataMap::builtin().unwrap();
        for source in map.sources() {
            match &source.erasure {
                ErasurePolicy::Delete => assert_ne!(source.id, "call_detail_records"),
                ErasurePolicy::Anonymise { attributes, reason } => {
                    assert_eq!(source.id, "call_detail_records");
                    assert_eq!(attributes, &["user_id", "participants"]);
                    assert!(reason.contains("25 months") && reason.contains("tax"), "{reason}");
                }
            }
        }
        let fields: Vec<(&str, &str)> =
            map.correctable_fields().into_iter().map(|(s, a)| (s.id.as_str(), a)).collect();
        assert_eq!(
            fields,
            ["name", "employer", "job_title", "phone", "locale"].map(|a| ("accounts", a)).to_vec()
        );
        assert_eq!(map.correction_source("job_title").map(|s| s.id.as_str()), Some("accounts"));
        for not_self_service in ["email", "user_id", "plan", "participants", "corrected_at"] {
            assert!(map.correction_source(not_self_service).is_none(), "{not_self_service}");
        }
    }

    #[test]
    fn the_built_in_map_is_read_when_first_asked_for_and_once() {
        let lazy = BuiltinMap::with_name_prefix("t1-");
        assert!(lazy.map.get().is_none(), "nothing read before it is asked for");
        let shared = lazy.clone();
        let map = lazy.get().unwrap();
        assert_eq!(map, &DataMap::builtin().unwrap().with_name_prefix("t1-"));
        assert!(std::ptr::eq(map, shared.get().unwrap()), "clones share the one reading");
    }

    #[test]
    fn a_map_read_in_one_pass_is_the_map_read_entry_by_entry() {
        let one_pass = DataMap::parse(BUILTIN).unwrap();
        assert_eq!(one_pass, DataMap::parse_by_entry(BUILTIN).unwrap());
        let bad = with_entry("  - id: broken\n    store: dynamodb\n");
        assert_eq!(DataMap::parse(&bad).unwrap_err().entry, "broken", "the error names the entry");
    }

    fn with_entry(entry: &str) -> String {
        format!(
            "version: 1\nsources:\n  - id: accounts\n    description: a\n    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    provides_user_id: user_id\n    categories: [identifiers]\n    ccpa_categories: [identifiers]\n    purposes: [security]\n    origins: [the_person]\n    recipients: [affiliates]\n    ccpa_disclosure: business_purpose\n    retention: r\n    erasure: delete\n{entry}"
        )
    }

    const WEBHOOK: &str = "  - id: ats\n    description: d\n    store: webhook\n    endpoint: https://ats.example.com/privacy\n    auth: hmac\n    secret: s\n    categories: [job_application]\n    ccpa_categories: [professional_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n    erasure: delete\n";
    const MANUAL: &str = "  - id: crm\n    description: d\n    store: manual\n    instructions: look in the CRM\n    categories: [contact_data]\n    ccpa_categories: [identifiers]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n    erasure: delete\n";

    const GOOD_ENTRY: &str = "  - id: cdrs\n    description: d\n    store: dynamodb\n    table: cdrs\n    find_by: user_id\n    table_key: call_id\n    index: by_user\n    categories: [call_detail_records]\n    ccpa_categories: [internet_activity]\n    purposes: [quality_control]\n    origins: [automatic_collection]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n    erasure: delete\n";

    const GOOD_RECORDINGS: &str = "  - id: recs\n    description: d\n    store: s3\n    bucket: b\n    prefix: 'recordings/{user_id}/'\n    categories: [recordings]\n    ccpa_categories: [sensitive_personal_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n    erasure: delete\n";

    /// Found by email through an index: the table key and the find attribute differ.
    const GOOD_NEWSLETTER: &str = "  - id: newsletter\n    description: d\n    store: dynamodb\n    table: newsletter\n    find_by: email\n    table_key: contact_id\n    index: by_email\n    categories: [marketing]\n    ccpa_categories: [identifiers]\n    purposes: [advertising]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: sold_or_shared\n    retention: r\n    erasure: delete\n    correctable: [first_name]\n";

    const KEPT_CDRS: &str = "    erasure:\n      anonymise: [user_id, participants]\n      reason: billing\n";

    #[test]
    fn a_good_entry_parses() {
        let map = DataMap::parse(&with_entry(GOOD_ENTRY)).unwrap();
        assert_eq!(map.sources().len(), 2);
        assert_eq!(map.source("cdrs").unwrap().erasure, ErasurePolicy::Delete);
        assert!(map.source("cdrs").unwrap().correctable.is_empty());
    }

    #[test]
    fn good_erasure_and_correction_entries_parse() {
        let text = with_entry(&format!(
            "{}{GOOD_RECORDINGS}{GOOD_NEWSLETTER}",
            GOOD_ENTRY.replace("    erasure: delete\n", KEPT_CDRS)
        ));
        let map = DataMap::parse(&text).unwrap();
        assert_eq!(
            map.source("cdrs").unwrap().erasure,
            ErasurePolicy::Anonymise {
                attributes: vec!["user_id".into(), "participants".into()],
                reason: "billing".into()
            }
        );
        assert_eq!(map.source("recs").unwrap().erasure, ErasurePolicy::Delete);
        assert_eq!(map.correction_source("first_name").map(|s| s.id.as_str()), Some("newsletter"));
        assert_eq!(map.correction_source("user_id"), None);
    }

    #[test]
    fn a_webhook_and_a_manual_source_load_with_their_own_fields() {
        let map = DataMap::parse(&with_entry(&format!("{WEBHOOK}{MANUAL}"))).unwrap();
        let ats = map.source("ats").unwrap();
        assert_eq!(
            ats.location,
            Location::Webhook {
                endpoint: "https://ats.example.com/privacy".into(),
                auth: WebhookAuth::Hmac { secret: "s".into() }
            }
        );
        assert!(ats.is_external() && ats.find_by() == SubjectAttribute::Email);
        let crm = map.source("crm").unwrap();
        assert_eq!(crm.location, Location::Manual { instructions: "look in the CRM".into() });
        let sigv4 = WEBHOOK.replace(
            "    auth: hmac\n    secret: s\n",
            "    auth: sigv4\n    signing_region: eu-west-1\n    signing_service: execute-api\n",
        );
        let map = DataMap::parse(&with_entry(&sigv4)).unwrap();
        assert_eq!(
            map.source("ats").unwrap().location,
            Location::Webhook {
                endpoint: "https://ats.example.com/privacy".into(),
                auth: WebhookAuth::SigV4 { region: "eu-west-1".into(), service: "execute-api".into() }
            }
        );
        let local = WEBHOOK.replace("https://ats.example.com/privacy", "http://127.0.0.1:7010");
        assert!(DataMap::parse(&with_entry(&local)).is_ok(), "plain http on the loopback only");
    }

    #[test]
    fn every_kind_of_mistake_fails_at_load_naming_the_entry() {
        let cases: Vec<(String, &str, &str)> = vec![
            (GOOD_ENTRY.replace("[call_detail_records]", "[call_records]"), "cdrs", "unknown variant"),
            (GOOD_ENTRY.replace("    index: by_user\n", ""), "cdrs", "`index` is required"),
            (GOOD_ENTRY.replace("    table: cdrs\n", ""), "cdrs", "`table` is required"),
            (GOOD_ENTRY.replace("    retention: r\n", "    retention: ''\n"), "cdrs", "`retention` must not be empty"),
            (GOOD_ENTRY.replace("[service_providers]", "[]"), "cdrs", "`recipients` must not be empty"),
            (GOOD_ENTRY.replace("    index: by_user\n", "    index: by_user\n    colour: blue\n"), "cdrs", "unknown field"),
            (GOOD_ENTRY.replace("id: cdrs", "id: accounts"), "accounts", "used twice"),
            (GOOD_ENTRY.replace("id: cdrs", "id: CDRs"), "CDRs", "lower-case"),
            (GOOD_ENTRY.replace("    index: by_user\n", "    index: by_user\n    bucket: b\n"), "cdrs", "`bucket` does not apply"),
            (
                "  - id: recs\n    description: d\n    store: s3\n    bucket: b\n    prefix: recordings/\n    categories: [recordings]\n    ccpa_categories: [sensitive_personal_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n".to_owned(),
                "recs",
                "exactly one of {user_id} or {email}",
            ),
            (
                "  - id: recs\n    description: d\n    store: s3\n    bucket: b\n    prefix: 'recordings/{user_id}'\n    categories: [recordings]\n    ccpa_categories: [sensitive_personal_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n".to_owned(),
                "recs",
                "must end with `/`",
            ),
            ("  - description: no id\n".to_owned(), "#2", "missing field `id`"),
            // Sources outside AWS.
            (WEBHOOK.replace("https://ats.example.com/privacy", "http://ats.example.com/privacy"), "ats", "must be an https URL"),
            (WEBHOOK.replace("https://ats.example.com/privacy", "https://ats.example.com/p?key=1"), "ats", "a base URL"),
            (WEBHOOK.replace("https://ats.example.com/privacy", "https://u:p@ats.example.com/"), "ats", "a base URL"),
            (WEBHOOK.replace("    auth: hmac\n", ""), "ats", "`auth` is required"),
            (WEBHOOK.replace("    secret: s\n", ""), "ats", "`secret` is required"),
            (WEBHOOK.replace("    auth: hmac\n", "    auth: sigv4\n"), "ats", "`secret` does not apply"),
            (WEBHOOK.replace("    auth: hmac\n    secret: s\n", "    auth: sigv4\n    signing_region: eu-west-1\n"), "ats", "`signing_service` is required"),
            (WEBHOOK.replace("    secret: s\n", "    secret: s\n    table: t\n"), "ats", "`table` does not apply to a webhook source"),
            (WEBHOOK.replace("    secret: s\n", "    secret: s\n    instructions: look\n"), "ats", "`instructions` does not apply"),
            (WEBHOOK.replace("    erasure: delete\n", KEPT_CDRS), "ats", "must be `delete`"),
            (MANUAL.replace("    instructions: look in the CRM\n", ""), "crm", "`instructions` is required"),
            (MANUAL.replace("    instructions: look in the CRM\n", "    instructions: look in the CRM\n    endpoint: https://x.example/\n"), "crm", "`endpoint` does not apply to a manual source"),
            // Erasure policy.
            (GOOD_ENTRY.replace("    erasure: delete\n", ""), "cdrs", "`erasure` is required"),
            (GOOD_ENTRY.replace("erasure: delete", "erasure: erase"), "cdrs", "`erasure` must be `delete` or"),
            (GOOD_ENTRY.replace("erasure: delete", "erasure: [delete]"), "cdrs", "`erasure` must be `delete` or"),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("[user_id, participants]", "[participants]")),
                "cdrs",
                "must include `user_id`, the attribute the person is found by",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("participants]", "call_id]")),
                "cdrs",
                "must not include the table key `call_id`",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("reason: billing", "reason: ' '")),
                "cdrs",
                "`erasure.reason` must not be empty",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("      reason: billing\n", "")),
                "cdrs",
                "missing field `reason`",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("reason:", "because:")),
                "cdrs",
                "unknown field `because`",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("participants]", "user_id]")),
                "cdrs",
                "names `user_id` twice",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("participants]", "anonymised_at]")),
                "cdrs",
                "must not name `anonymised_at`",
            ),
            (
                GOOD_RECORDINGS.replace("    erasure: delete\n", KEPT_CDRS),
                "recs",
                "`erasure` of an s3, webhook or manual source must be `delete`",
            ),
            // Self-service correction.
            (format!("{GOOD_ENTRY}    correctable: [network]\n"), "cdrs", "needs a source found by email"),
            (format!("{GOOD_RECORDINGS}    correctable: [title]\n"), "recs", "`correctable` does not apply"),
            (
                GOOD_NEWSLETTER.replace("[first_name]", "[first_name, contact_id]"),
                "newsletter",
                "must not include the table key `contact_id`",
            ),
            (
                GOOD_NEWSLETTER.replace("[first_name]", "[email]"),
                "newsletter",
                "must not include `email`, the attribute the person is found by",
            ),
            (
                GOOD_NEWSLETTER.replace("[first_name]", "[first_name, corrected_at]"),
                "newsletter",
                "must not name `corrected_at`",
            ),
            (
                format!("{GOOD_NEWSLETTER}{}", GOOD_NEWSLETTER.replace("id: newsletter", "id: newsletter_2")),
                "newsletter_2",
                "`first_name` is already correctable in `newsletter`",
            ),
        ];
        for (entry, named, says) in cases {
            let err = DataMap::parse(&with_entry(&entry)).unwrap_err();
            assert_eq!(err.entry, named, "{err}");
            assert!(err.problem.contains(says), "{err} should say {says:?}");
            assert!(err.to_string().starts_with(&format!("data map entry `{named}`")));
        }
    }

    #[test]
    fn the_account_source_may_not_offer_its_key_or_the_user_id_for_correction() {
        for (list, says) in [
            ("[name, email]", "must not include the table key `email`"),
            ("[name, user_id]", "must not include `user_id`, the user id that links"),
        ] {
            let text = with_entry(GOOD_ENTRY).replacen(
                "    erasure: delete\n",
                &format!("    erasure: delete\n    correctable: {list}\n"),
                1,
            );
            let err = DataMap::parse(&text).unwrap_err();
            assert_eq!(err.entry, "accounts");
            assert!(err.problem.contains(says), "{err} should say {says:?}");
        }
    }

    #[test]
    fn a_table_found_by_its_key_cannot_be_anonymised() {
        // The find attribute is the key: keeping the record would keep it findable.
        let text = with_entry(GOOD_ENTRY).replacen(
            "    erasure: delete\n",
            "    erasure: {anonymise: [email, name], reason: kept}\n",
            1,
        );
        let err = DataMap::parse(&text).unwrap_err();
        assert_eq!(err.entry, "accounts");
        assert!(err.problem.contains("must not include the table key `email`"), "{err}");
    }

    #[test]
    fn a_user_id_source_without_a_provider_is_refused() {
        let text = with_entry(GOOD_ENTRY).replace("    provides_user_id: user_id\n", "");
        let err = DataMap::parse(&text).unwrap_err();
        assert_eq!(err.entry, "cdrs");
        assert!(err.problem.contains("no source provides the user id"));
    }

    #[test]
    fn file_level_problems_are_reported_as_such() {
        assert_eq!(DataMap::parse("version: 2\nsources: []\n").unwrap_err().entry, "(file)");
        assert_eq!(DataMap::parse("version: 1\nsources: []\n").unwrap_err().problem, "no sources");
        assert_eq!(DataMap::parse(": : :").unwrap_err().entry, "(file)");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const CATEGORIES: &[&str] = &[
        "identifiers",
        "contact_data",
        "professional_information",
        "account_data",
        "device_and_system_information",
        "settings_and_preferences",
        "customer_content",
        "recordings",
        "chat_transcripts",
        "presence",
        "call_detail_records",
        "marketing",
        "internet_activity",
        "geolocation",
        "inferences",
        "job_application",
    ];
    const CCPA_CATEGORIES: &[&str] = &[
        "identifiers",
        "sensitive_personal_information",
        "commercial_information",
        "professional_information",
        "internet_activity",
        "geolocation",
        "inferences",
    ];
    const PURPOSES: &[&str] = &[
        "providing_services",
        "advertising",
        "auditing_transactions",
        "research_and_development",
        "security",
        "debugging_and_repair",
        "quality_control",
    ];
    const ORIGINS: &[&str] =
        &["the_person", "marketing_and_data_partners", "automatic_collection", "internal_analytics"];
    const RECIPIENTS: &[&str] = &[
        "service_providers",
        "affiliates",
        "government_regulators",
        "law_enforcement",
        "strategically_aligned_companies",
    ];

    /// What the policy says about a source, as YAML lines.
    fn disclosure() -> impl Strategy<Value = String> {
        let list = |names: &'static [&'static str]| {
            prop::sample::subsequence(names, 1..=names.len()).prop_map(|l| l.join(", "))
        };
        (
            list(CATEGORIES),
            list(CCPA_CATEGORIES),
            list(PURPOSES),
            list(ORIGINS),
            list(RECIPIENTS),
            prop::sample::select(vec!["sold_or_shared", "business_purpose"]),
            "[A-Za-z][A-Za-z0-9 ]{0,20}",
        )
            .prop_map(|(c, cc, p, o, r, d, retention)| {
                format!(
                    "    categories: [{c}]\n    ccpa_categories: [{cc}]\n    purposes: [{p}]\n    origins: [{o}]\n    recipients: [{r}]\n    ccpa_disclosure: {d}\n    retention: '{retention}'\n"
                )
            })
    }

    /// An attribute name that is none of the names the rules single out.
    fn attribute() -> impl Strategy<Value = String> {
        "[a-z][a-z_]{1,8}".prop_filter("not a reserved name", |a| {
            !["email", "user_id", "contact_id", "call_id", WRITTEN_ON_ERASURE, WRITTEN_ON_CORRECTION]
                .contains(&a.as_str())
        })
    }

    /// One source of a map that keeps every rule, and what loading it must give.
    #[derive(Clone, Debug)]
    enum Spec {
        ByUserId { anonymise: Option<Vec<String>>, time_attribute: Option<String> },
        ByEmail { correctable: Vec<String> },
        Objects { placeholder: &'static str },
    }

    fn spec() -> impl Strategy<Value = Spec> {
        prop_oneof![
            (prop::option::of(prop::collection::btree_set(attribute(), 0..3)), prop::option::of(attribute()))
                .prop_map(|(anonymise, time_attribute)| Spec::ByUserId {
                    anonymise: anonymise
                        .map(|extra| { std::iter::once("user_id".to_owned()).chain(extra).collect() }),
                    time_attribute,
                }),
            prop::collection::btree_set(attribute(), 0..3)
                .prop_map(|c| Spec::ByEmail { correctable: c.into_iter().collect() }),
            prop::sample::select(vec!["{user_id}", "{email}"])
                .prop_map(|placeholder| Spec::Objects { placeholder }),
        ]
    }

    #[derive(Debug)]
    struct Generated {
        text: String,
        ids: Vec<String>,
        specs: Vec<Spec>,
        account_correctable: Vec<String>,
    }

    fn yaml_list(items: &[String]) -> String {
        format!("[{}]", items.join(", "))
    }

    fn source_yaml(id: &str, spec: &Spec, disclosure: &str) -> String {
        let head = format!("  - id: {id}\n    description: 'the {id} source'\n");
        let body = match spec {
            Spec::ByUserId { anonymise, time_attribute } => {
                let mut s = format!(
                    "    store: dynamodb\n    table: t_{id}\n    find_by: user_id\n    table_key: call_id\n    index: by_user\n"
                );
                if let Some(attribute) = time_attribute {
                    s.push_str(&format!("    time_attribute: {attribute}\n"));
                }
                match anonymise {
                    Some(attributes) => s.push_str(&format!(
                        "    erasure:\n      anonymise: {}\n      reason: 'kept for tax law'\n",
                        yaml_list(attributes)
                    )),
                    None => s.push_str("    erasure: delete\n"),
                }
                s
            }
            Spec::ByEmail { correctable } => {
                let mut s = format!(
                    "    store: dynamodb\n    table: t_{id}\n    find_by: email\n    table_key: contact_id\n    index: by_email\n    erasure: delete\n"
                );
                if !correctable.is_empty() {
                    let names: Vec<String> = correctable.iter().map(|a| format!("{a}_{id}")).collect();
                    s.push_str(&format!("    correctable: {}\n", yaml_list(&names)));
                }
                s
            }
            Spec::Objects { placeholder } => format!(
                "    store: s3\n    bucket: b-{id}\n    prefix: 'files/{placeholder}/'\n    erasure: delete\n"
            ),
        };
        format!("{head}{body}{disclosure}")
    }

    /// A map that keeps every rule: the account source (found by email, providing the user id)
    /// and up to six more.
    fn valid_map() -> impl Strategy<Value = Generated> {
        (
            prop::collection::btree_set(attribute(), 0..4),
            prop::collection::btree_set("[a-z][a-z0-9_]{0,10}", 0..6),
            prop::collection::vec((spec(), disclosure()), 6),
            disclosure(),
        )
            .prop_map(|(account_correctable, ids, specs, account_disclosure)| {
                let ids: Vec<String> = ids.into_iter().filter(|id| id != "accounts").collect();
                let specs: Vec<(Spec, String)> = specs.into_iter().take(ids.len()).collect();
                let account_correctable: Vec<String> = account_correctable.into_iter().collect();
                let mut text = format!(
                    "version: 1\nsources:\n  - id: accounts\n    description: accounts\n    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    provides_user_id: user_id\n    erasure: delete\n{account_disclosure}"
                );
                if !account_correctable.is_empty() {
                    text.push_str(&format!("    correctable: {}\n", yaml_list(&account_correctable)));
                }
                for (id, (spec, disclosure)) in ids.iter().zip(&specs) {
                    text.push_str(&source_yaml(id, spec, disclosure));
                }
                let specs = specs.into_iter().map(|(spec, _)| spec).collect();
                Generated { text, ids, specs, account_correctable }
            })
    }

    /// Lines that break a rule, a shape or the YAML itself.
    const JUNK: &[&str] = &[
        "    colour: blue",
        "  - id: accounts",
        "  - id: Bad-Id",
        "  - description: no id",
        "version: 2",
        "sources: []",
        "    erasure: {anonymise: [user_id], reason: ' '}",
        "    erasure: {anonymise: [email], reason: kept}",
        "    erasure: [delete]",
        "    correctable: [email]",
        "    correctable: [user_id, corrected_at]",
        "    find_by: user_id",
        "    find_by: phone",
        "    store: s3",
        "    store: postgres",
        "    prefix: 'p/{email}{user_id}/'",
        "    prefix: p/{email}",
        "    bucket: b",
        "    provides_user_id: uid",
        "    id: 12",
        "    id: ''",
        "    id:",
        "    retention: 365",
        "    retention: ~",
        "    description: yes",
        "    table: 2024",
        "    index: 12",
        "    time_attribute: ''",
        "    categories: []",
        "    table_key: user_id",
        "\t- tab",
        ": :",
        "&a x",
        "*a",
        "!!binary x",
        "<<: *a",
        "  - &e {id: e}",
        "  - *e",
        "'unterminated",
        "{",
        "- [",
    ];

    fn mutate(text: &str, edits: &[(u8, prop::sample::Index, prop::sample::Index)]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for (op, a, b) in edits {
            let i = a.index(lines.len().max(1));
            match op % 5 {
                0 if !lines.is_empty() => {
                    lines.remove(i);
                }
                1 if !lines.is_empty() => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                2 if !lines.is_empty() => {
                    let j = b.index(lines.len());
                    lines.swap(i, j);
                }
                3 => lines.insert(i.min(lines.len()), b.get(JUNK).to_string()),
                _ if !lines.is_empty() => {
                    // Cut a line short, on a character boundary.
                    let line = &lines[i];
                    let cut = b.index(line.len() + 1);
                    let cut = (0..=cut).rev().find(|c| line.is_char_boundary(*c)).unwrap_or(0);
                    lines[i] = line[..cut].to_owned();
                }
                _ => {}
            }
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }

    fn edits() -> impl Strategy<Value = Vec<(u8, prop::sample::Index, prop::sample::Index)>> {
        prop::collection::vec((any::<u8>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..4)
    }

    /// What every loaded map keeps, whatever text it came from (the rules of the module's docs).
    fn assert_rules_hold(map: &DataMap) -> Result<(), TestCaseError> {
        let sources = map.sources();
        prop_assert!(!sources.is_empty());
        let ids: BTreeSet<&str> = sources.iter().map(|s| s.id.as_str()).collect();
        prop_assert_eq!(ids.len(), sources.len(), "ids are unique");
        let providers: Vec<&Source> = sources.iter().filter(|s| s.provides_user_id.is_some()).collect();
        prop_assert!(providers.len() <= 1);
        prop_assert!(providers.iter().all(|p| p.find_by() == SubjectAttribute::Email));
        if sources.iter().any(|s| s.find_by() == SubjectAttribute::UserId) {
            prop_assert_eq!(providers.len(), 1);
        }
        let mut correctable = BTreeSet::new();
        for source in sources {
            prop_assert!(
                !source.id.is_empty()
                    && source.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            let d = &source.disclosure;
            prop_assert!(!d.categories.is_empty() && !d.ccpa_categories.is_empty() && !d.purposes.is_empty());
            prop_assert!(!d.origins.is_empty() && !d.recipients.is_empty() && !d.retention.trim().is_empty());
            let find_attribute = subject_attribute_name(source.find_by());
            match &source.location {
                Location::Table { table_key, index, .. } => {
                    prop_assert_eq!(index.is_none(), table_key == find_attribute);
                    if let ErasurePolicy::Anonymise { attributes, reason } = &source.erasure {
                        prop_assert!(attributes.iter().any(|a| a == find_attribute));
                        prop_assert!(!attributes.contains(table_key));
                        prop_assert!(!reason.trim().is_empty());
                    }
                    if !source.correctable.is_empty() {
                        prop_assert_eq!(source.find_by(), SubjectAttribute::Email);
                    }
                    for attribute in &source.correctable {
                        prop_assert!(attribute != table_key && attribute != find_attribute);
                        prop_assert!(Some(attribute) != source.provides_user_id.as_ref());
                        prop_assert!(attribute != WRITTEN_ON_CORRECTION && attribute != WRITTEN_ON_ERASURE);
                        prop_assert!(correctable.insert(attribute.clone()), "one source per attribute");
                    }
                }
                Location::Objects { prefix, .. } => {
                    prop_assert!(prefix.ends_with('/'));
                    prop_assert_eq!(
                        prefix.matches("{user_id}").count() + prefix.matches("{email}").count(),
                        1
                    );
                    prop_assert_eq!(&source.erasure, &ErasurePolicy::Delete);
                    prop_assert!(source.correctable.is_empty() && source.provides_user_id.is_none());
                }
                Location::Webhook { endpoint, .. } => {
                    prop_assert!(check_endpoint(&source.id, endpoint).is_ok());
                    prop_assert_eq!(&source.erasure, &ErasurePolicy::Delete);
                    prop_assert!(source.correctable.is_empty() && source.provides_user_id.is_none());
                }
                Location::Manual { instructions } => {
                    prop_assert!(!instructions.trim().is_empty());
                    prop_assert_eq!(&source.erasure, &ErasurePolicy::Delete);
                    prop_assert!(source.correctable.is_empty() && source.provides_user_id.is_none());
                }
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(text in any::<String>()) {
            let _ = DataMap::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = DataMap::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn a_map_that_keeps_the_rules_loads_as_written(generated in valid_map()) {
            let map = DataMap::parse(&generated.text)
                .map_err(|err| TestCaseError::fail(format!("{err}\n{}", generated.text)))?;
            assert_rules_hold(&map)?;
            let ids: Vec<&str> = map.sources().iter().map(|s| s.id.as_str()).collect();
            let expected: Vec<&str> = std::iter::once("accounts").chain(generated.ids.iter().map(String::as_str)).collect();
            prop_assert_eq!(ids, expected);
            let accounts = map.source("accounts").unwrap();
            prop_assert_eq!(&accounts.correctable, &generated.account_correctable);
            prop_assert_eq!(map.user_id_source().map(|s| s.id.as_str()), Some("accounts"));
            for (id, spec) in generated.ids.iter().zip(&generated.specs) {
                let source = map.source(id).unwrap();
                match spec {
                    Spec::ByUserId { anonymise, time_attribute } => {
                        let Location::Table { table, find_by, index, time_attribute: time, .. } = &source.location else {
                            return Err(TestCaseError::fail("not a table"));
                        };
                        prop_assert_eq!(table, &format!("t_{id}"));
                        prop_assert_eq!(*find_by, SubjectAttribute::UserId);
                        prop_assert_eq!(index.as_deref(), Some("by_user"));
                        prop_assert_eq!(time, time_attribute);
                        let expected = match anonymise {
                            Some(attributes) => ErasurePolicy::Anonymise { attributes: attributes.clone(), reason: "kept for tax law".into() },
                            None => ErasurePolicy::Delete,
                        };
                        prop_assert_eq!(&source.erasure, &expected);
                    }
                    Spec::ByEmail { correctable } => {
                        prop_assert_eq!(source.find_by(), SubjectAttribute::Email);
                        let names: Vec<String> = correctable.iter().map(|a| format!("{a}_{id}")).collect();
                        prop_assert_eq!(&source.correctable, &names);
                        for name in &names {
                            prop_assert_eq!(map.correction_source(name).map(|s| s.id.as_str()), Some(id.as_str()));
                        }
                    }
                    Spec::Objects { placeholder } => {
                        let expected = Location::Objects {
                            bucket: format!("b-{id}"),
                            prefix: format!("files/{placeholder}/"),
                            find_by: if *placeholder == "{email}" { SubjectAttribute::Email } else { SubjectAttribute::UserId },
                        };
                        prop_assert_eq!(&source.location, &expected);
                    }
                }
            }
            let prefixed = map.with_name_prefix("p-");
            for (plain, renamed) in map.sources().iter().zip(prefixed.sources()) {
                let mut back = renamed.clone();
                match &mut back.location {
                    Location::Table { table, .. } => *table = table.strip_prefix("p-").unwrap().to_owned(),
                    Location::Objects { bucket, .. } => *bucket = bucket.strip_prefix("p-").unwrap().to_owned(),
                    Location::Webhook { .. } | Location::Manual { .. } => {}
                }
                prop_assert_eq!(&back, plain, "only table and bucket names change");
            }
        }

        /// The one-pass reading and the entry-by-entry reading are one reading: the same map, or
        /// the same error naming the same entry.
        #[test]
        fn a_broken_map_is_refused_the_same_way_in_one_pass_or_entry_by_entry(
            generated in valid_map(),
            edits in edits(),
        ) {
            let text = mutate(&generated.text, &edits);
            let one_pass = DataMap::parse(&text);
            prop_assert_eq!(&one_pass, &DataMap::parse_by_entry(&text), "{}", text);
            match one_pass {
                Ok(map) => assert_rules_hold(&map)?,
                Err(err) => {
                    let named = err.entry == "(file)"
                        || err.entry.strip_prefix('#').is_some_and(|n| n.parse::<usize>().is_ok())
                        || (!err.entry.is_empty() && text.contains(&format!("id: {}", err.entry)));
                    prop_assert!(named, "{} names no entry of\n{}", err, text);
                }
            }
        }
    }

    fn account_with(line: &str) -> String {
        format!(
            "version: 1\nsources:\n  - id: accounts\n    description: a\n    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    categories: [identifiers]\n    ccpa_categories: [identifiers]\n    purposes: [security]\n    origins: [the_person]\n    recipients: [affiliates]\n    ccpa_disclosure: business_purpose\n    erasure: delete\n{line}\n"
        )
    }

    /// Found by `a_broken_map_is_refused_the_same_way_in_one_pass_or_entry_by_entry`: the one-pass
    /// reading took any scalar's spelling for text, so a map with no retention (`~`) loaded, with
    /// the retention "~" to be shown to requesters, while the entry-by-entry reading refused it.
    #[test]
    fn a_text_field_that_is_null_a_number_or_a_boolean_is_refused_in_both_readings() {
        for line in ["    retention: ~", "    retention: null", "    retention: 365", "    retention: true"] {
            let text = account_with(line);
            let err = DataMap::parse(&text).unwrap_err();
            assert_eq!(err.entry, "accounts", "{line}: {err}");
            assert!(err.problem.contains("invalid type"), "{line}: {err}");
            assert_eq!(DataMap::parse_by_entry(&text), Err(err));
        }
        assert!(DataMap::parse(&account_with("    retention: '365 days'")).is_ok());
        assert!(DataMap::parse(&account_with("    retention: \"365\"")).is_ok());
    }

    /// Found by the same property: an empty id was the entry's name, so the error named no entry.
    #[test]
    fn an_entry_with_an_empty_id_is_named_by_its_position() {
        let text = account_with("    retention: r").replace("id: accounts", "id: ''");
        let err = DataMap::parse(&text).unwrap_err();
        assert_eq!(err.entry, "#1", "{err}");
        assert!(err.problem.contains("lower-case letters"), "{err}");
    }
}
