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

use crate::domain::Language;

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

/// The words of the policy's closed lists (categories, purposes, origins, recipients): each
/// spelled in the map as its snake_case code, and labelled in English and Dutch in the map's
/// `vocabulary`, every word of every list (checked at load). `ALL` lists each word, so the check
/// cannot miss one.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident in $section:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl Word for $name {
            const SECTION: &'static str = stringify!($section);
            const ALL: &'static [$name] = &[$($name::$variant),+];
            fn labels(vocabulary: &Vocabulary) -> &BTreeMap<Self, Text> {
                &vocabulary.$section
            }
        }
    };
}

/// A word of one of the map's closed lists, labelled through [`DataMap::label`].
pub trait Word: Copy + Ord + fmt::Debug + Serialize + serde::de::DeserializeOwned + 'static {
    /// Its list in the map's `vocabulary`.
    const SECTION: &'static str;
    /// Every word of the list.
    const ALL: &'static [Self];
    fn labels(vocabulary: &Vocabulary) -> &BTreeMap<Self, Text>;
}

vocabulary!(Category in categories {
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
});

vocabulary!(
    /// The CCPA categories of the policy's section 12.
    CcpaCategory in ccpa_categories {
        Identifiers,
        SensitivePersonalInformation,
        CommercialInformation,
        ProfessionalInformation,
        InternetActivity,
        Geolocation,
        Inferences,
    }
);

vocabulary!(Purpose in purposes {
    ProvidingServices,
    Advertising,
    AuditingTransactions,
    ResearchAndDevelopment,
    Security,
    DebuggingAndRepair,
    QualityControl,
});

vocabulary!(Origin in origins { ThePerson, MarketingAndDataPartners, AutomaticCollection, InternalAnalytics });

vocabulary!(Recipient in recipients {
    ServiceProviders,
    Affiliates,
    GovernmentRegulators,
    LawEnforcement,
    StrategicallyAlignedCompanies,
});

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

/// A text the requester reads, in each language they may read it in (English and Dutch): the map
/// gives both of every one, none blank (checked at load).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Text {
    en: String,
    nl: String,
}

impl Text {
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::En => &self.en,
            Language::Nl => &self.nl,
        }
    }
}

/// The map's labels of its closed lists' words ([`Word`]), every word of every list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vocabulary {
    categories: BTreeMap<Category, Text>,
    ccpa_categories: BTreeMap<CcpaCategory, Text>,
    purposes: BTreeMap<Purpose, Text>,
    origins: BTreeMap<Origin, Text>,
    recipients: BTreeMap<Recipient, Text>,
}

/// How a value is shown to the requester, where its spelling alone does not say: a number of
/// seconds is a duration, a number of bytes a size. (Dates and times in ISO 8601 are shown as
/// dates and times whatever the hint; the hint makes sure.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Date,
    #[serde(rename = "datetime")]
    DateTime,
    DurationSeconds,
    Milliseconds,
    Percent,
    Bytes,
}

/// Whether an attribute holds other people's identifiers or words (a call's participants, a
/// message's recipients, an applicant's referees): shown to the requester pseudonymised (GDPR
/// Art. 15(4): a copy must not adversely affect the rights of others), unless the map marks it
/// `shareable`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Others {
    /// The requester's own data (`others` and `shareable` both absent).
    #[default]
    None,
    /// `others: true`: each other person replaced by a pseudonym, the same one throughout an export.
    Pseudonymise,
    /// `shareable: true`: other people's details the requester may see as they are (an
    /// organisation's administrator address, say).
    Share,
}

/// One attribute of a source's records, as the requester reads it: its label, how its values
/// are shown, and whose data it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attribute {
    pub name: String,
    label: Text,
    pub format: Option<Format>,
    pub others: Others,
    /// One of the requester's own identifiers (their address, user id, name, username): given
    /// only in the source that provides the user id, and never pseudonymised where it turns up
    /// among other people's.
    pub identifies: bool,
    /// The words of the codes it holds (`free` is "Gratis account"), for the codes the map knows.
    values: Vec<(String, Text)>,
    /// An object's attributes (or those of each object in a list), described the same way.
    pub fields: Vec<Attribute>,
}

impl Attribute {
    pub fn label(&self, language: Language) -> &str {
        self.label.get(language)
    }

    /// The words of code `value`, if the map has them.
    pub fn value_label(&self, value: &str, language: Language) -> Option<&str> {
        self.values.iter().find(|(code, _)| code == value).map(|(_, text)| text.get(language))
    }

    pub fn field(&self, name: &str) -> Option<&Attribute> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The attributes the system writes on the records it changes, labelled here so that a record
/// that was corrected or anonymised reads as well as any other.
fn system_attributes() -> &'static [Attribute; 2] {
    static SYSTEM: OnceLock<[Attribute; 2]> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let written = |name: &str, en: &str, nl: &str| Attribute {
            name: name.to_owned(),
            label: Text { en: en.to_owned(), nl: nl.to_owned() },
            format: Some(Format::DateTime),
            others: Others::None,
            identifies: false,
            values: Vec::new(),
            fields: Vec::new(),
        };
        [
            written(WRITTEN_ON_ERASURE, "Anonymised on", "Geanonimiseerd op"),
            written(WRITTEN_ON_CORRECTION, "Corrected on", "Gecorrigeerd op"),
        ]
    })
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
    /// In English, as staff read it and receipts keep it; [`Source::describe`] in a language.
    pub description: String,
    pub location: Location,
    /// The attribute of this source's record that holds the person's user id.
    pub provides_user_id: Option<String>,
    pub disclosure: Disclosure,
    pub erasure: ErasurePolicy,
    /// Attributes a requester may correct themselves (only tables found by email: the address is
    /// what the requester proved). Never the table key, the find attribute or the user id.
    pub correctable: Vec<String>,
    /// The company keeps this source for its own purposes (marketing, the website, recruitment),
    /// as the controller even for a user of an enterprise customer's account: when such a
    /// user's request is referred to the customer's administrator, this part of it is still
    /// handled here. Every other source holds what the services process for the customer, on its
    /// instructions (policy s4), for such a user.
    pub own_purpose: bool,
    /// What the requester reads about the source, in their language (the methods below).
    texts: SourceTexts,
    /// The attributes of its records, in the order they are shown (tables and webhooks only:
    /// other sources hold files).
    attributes: Vec<Attribute>,
}

/// A source's texts for the requester, each in English and Dutch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SourceTexts {
    label: Text,
    description: Text,
    retention: Text,
    /// What erasure keeps and why, and the law it rests on (anonymising sources only).
    kept: Option<(Text, Text)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMap {
    sources: Vec<Source>,
    recipients: Vec<RecipientContact>,
    vocabulary: Vocabulary,
}

/// A recipient of the company's data (a processor, a service provider) that must be told when a
/// person's data it received is erased, corrected or restricted (GDPR Art. 19, CCPA regulations
/// §7022(b)): who, where, and which sources it receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecipientContact {
    pub id: String,
    /// Its name as a proper name (`Nimbus Hosting B.V.`), the same in every language.
    pub name: String,
    /// What it does for the company, in words for the requester (`hosting and storage`).
    role: Text,
    /// Where its privacy team is told (parsed at load, so a contact that reads is never skipped).
    pub address: crate::domain::EmailAddress,
    pub category: Recipient,
    pub sources: Vec<String>,
}

impl RecipientContact {
    /// What it does, in `language` (`hosting en opslag`).
    pub fn role(&self, language: Language) -> &str {
        self.role.get(language)
    }

    /// Its name and what it does, as the requester reads it: `Nimbus Hosting B.V. (hosting en
    /// opslag)`.
    pub fn label(&self, language: Language) -> String {
        format!("{} ({})", self.name, self.role(language))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    #[serde(deserialize_with = "as_value")]
    id: String,
    #[serde(deserialize_with = "as_value")]
    name: String,
    role: RawText,
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
    recipient_contacts: Vec<serde_norway::Value>,
    #[serde(default)]
    vocabulary: Option<serde_norway::Value>,
}

/// The same file read straight into its entries (see [`DataMap::parse`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTypedMap {
    version: u32,
    sources: Vec<RawSource>,
    #[serde(default)]
    recipient_contacts: Vec<RawContact>,
    #[serde(default)]
    vocabulary: Option<RawVocabulary>,
}

/// What an error about the map's `vocabulary` names as its entry.
const VOCABULARY: &str = "vocabulary";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVocabulary {
    #[serde(default)]
    categories: Ordered<RawText>,
    #[serde(default)]
    ccpa_categories: Ordered<RawText>,
    #[serde(default)]
    purposes: Ordered<RawText>,
    #[serde(default)]
    origins: Ordered<RawText>,
    #[serde(default)]
    recipients: Ordered<RawText>,
}

/// The labels of one closed list: a known word each, every word of the list.
fn words<W: Word>(raw: Ordered<RawText>) -> Result<BTreeMap<W, Text>, DataMapError> {
    let mut labels = BTreeMap::new();
    for (code, raw_text) in raw.0 {
        let word: W = serde_norway::from_value(serde_norway::Value::String(code.clone()))
            .map_err(|_| problem(VOCABULARY, format!("`{}` has no word `{code}`", W::SECTION)))?;
        labels.insert(word, text(VOCABULARY, &format!("{}.{code}", W::SECTION), raw_text)?);
    }
    if let Some(missing) = W::ALL.iter().find(|w| !labels.contains_key(*w)) {
        let code = serde_json::to_value(missing).ok().and_then(|v| v.as_str().map(str::to_owned));
        return Err(problem(
            VOCABULARY,
            format!(
                "`{}.{}` has no label: every word is shown to requesters, in English and Dutch (`en`, `nl`)",
                W::SECTION,
                code.unwrap_or_else(|| format!("{missing:?}"))
            ),
        ));
    }
    Ok(labels)
}

fn vocabulary(raw: Option<RawVocabulary>) -> Result<Vocabulary, DataMapError> {
    let raw = raw.ok_or_else(|| {
        problem(
            VOCABULARY,
            "`vocabulary` is required: the labels of every category, purpose, origin and recipient",
        )
    })?;
    Ok(Vocabulary {
        categories: words(raw.categories)?,
        ccpa_categories: words(raw.ccpa_categories)?,
        purposes: words(raw.purposes)?,
        origins: words(raw.origins)?,
        recipients: words(raw.recipients)?,
    })
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
    label: RawText,
    description: RawText,
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
    retention: RawText,
    /// The attributes of its records, each with its labels (tables and webhooks).
    #[serde(default)]
    attributes: Option<Ordered<RawAttribute>>,
    /// `delete` or `{anonymise: [...], reason: ...}`; read by hand so a mistake gets a message
    /// that shows both shapes rather than serde's "did not match any variant".
    erasure: Option<serde_norway::Value>,
    #[serde(default, deserialize_with = "as_value")]
    correctable: Option<Vec<String>>,
    #[serde(default)]
    own_purpose: bool,
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

/// A text in English and Dutch, as the map writes it: `{en: ..., nl: ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    #[serde(deserialize_with = "as_value")]
    en: String,
    #[serde(deserialize_with = "as_value")]
    nl: String,
}

/// Both languages given, neither blank: `field` names the text in the error.
fn text(entry: &str, field: &str, raw: RawText) -> Result<Text, DataMapError> {
    for (language, value) in [("en", &raw.en), ("nl", &raw.nl)] {
        if value.trim().is_empty() {
            return Err(problem(
                entry,
                format!(
                    "`{field}.{language}` must not be empty: requesters read every text in English and Dutch"
                ),
            ));
        }
    }
    Ok(Text { en: raw.en.trim().to_owned(), nl: raw.nl.trim().to_owned() })
}

/// A YAML mapping read in its order, each key text (through a YAML value, as [`as_value`] reads
/// a text, so both readings of the map accept the same keys), none twice.
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mapping = serde_norway::Mapping::deserialize(deserializer)?;
        let mut entries = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let serde_norway::Value::String(key) = key else {
                return Err(serde::de::Error::custom("every name must be text"));
            };
            let value = serde_norway::from_value(value)
                .map_err(|err| serde::de::Error::custom(format!("`{key}`: {err}")))?;
            entries.push((key, value));
        }
        Ok(Ordered(entries))
    }
}

/// An attribute as the map writes it, under its name in `attributes` (or `fields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    #[serde(deserialize_with = "as_value")]
    en: String,
    #[serde(deserialize_with = "as_value")]
    nl: String,
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    others: bool,
    #[serde(default)]
    shareable: bool,
    #[serde(default)]
    identifies: bool,
    #[serde(default)]
    values: Ordered<RawText>,
    #[serde(default)]
    fields: Ordered<RawAttribute>,
}

/// The attributes under `path` (`attributes`, or an attribute's `fields`), each checked: a
/// name, a label in both languages, not both `others` and `shareable`, `identifies` only where
/// `identifying` (the source that provides the user id, at the top level).
fn attributes(
    entry: &str,
    path: &str,
    raw: Ordered<RawAttribute>,
    identifying: bool,
) -> Result<Vec<Attribute>, DataMapError> {
    let mut out: Vec<Attribute> = Vec::with_capacity(raw.0.len());
    for (name, raw) in raw.0 {
        let at = format!("{path}.{name}");
        if name.trim().is_empty() {
            return Err(problem(entry, format!("`{path}` has an empty attribute name")));
        }
        if name == WRITTEN_ON_ERASURE || name == WRITTEN_ON_CORRECTION {
            return Err(problem(
                entry,
                format!("`{path}` must not name `{name}`: it is written by the system"),
            ));
        }
        let others = match (raw.others, raw.shareable) {
            (true, true) => {
                return Err(problem(
                    entry,
                    format!(
                        "`{at}` is either `others` (pseudonymised) or `shareable` (shown as it is), not both"
                    ),
                ));
            }
            (true, false) => Others::Pseudonymise,
            (false, true) => Others::Share,
            (false, false) => Others::None,
        };
        if raw.identifies && !identifying {
            return Err(problem(
                entry,
                format!(
                    "`{at}`: only the source that provides the user id names the person's own identifiers"
                ),
            ));
        }
        if raw.identifies && others != Others::None {
            return Err(problem(entry, format!("`{at}` identifies the person: it holds no one else's data")));
        }
        let values = (raw.values.0.into_iter())
            .map(|(code, label)| Ok((code.clone(), text(entry, &format!("{at}.values.{code}"), label)?)))
            .collect::<Result<Vec<_>, DataMapError>>()?;
        out.push(Attribute {
            label: text(entry, &at, RawText { en: raw.en, nl: raw.nl })?,
            format: raw.format,
            others,
            identifies: raw.identifies,
            values,
            fields: attributes(entry, &format!("{at}.fields"), raw.fields, false)?,
            name,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnonymise {
    anonymise: Vec<String>,
    reason: RawText,
    legal_basis: RawText,
}

const ERASURE_SHAPE: &str =
    "`delete` or `{anonymise: [attribute, ...], reason: {en, nl}, legal_basis: {en, nl}}`";

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

/// What erasure does to a source, and, for a record it keeps, why and on what law, in both
/// languages.
fn erasure_policy(
    entry: &str,
    raw: Option<serde_norway::Value>,
    location: &Location,
) -> Result<(ErasurePolicy, Option<(Text, Text)>), DataMapError> {
    let raw = raw.ok_or_else(|| problem(entry, format!("`erasure` is required: {ERASURE_SHAPE}")))?;
    let anonymise = match raw {
        serde_norway::Value::String(word) if word == "delete" => return Ok((ErasurePolicy::Delete, None)),
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
    let reason = text(entry, "erasure.reason", anonymise.reason)?;
    let legal_basis = text(entry, "erasure.legal_basis", anonymise.legal_basis)?;
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
    let policy = ErasurePolicy::Anonymise { attributes: anonymise.anonymise, reason: reason.en.clone() };
    Ok((policy, Some((reason, legal_basis))))
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
        ] {
            if empty {
                return Err(problem(e, format!("`{name}` must not be empty")));
            }
        }
        self.fields_apply(e)?;
        let label = text(e, "label", self.label)?;
        let description = text(e, "description", self.description)?;
        let retention = text(e, "retention", self.retention)?;
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
        if self.own_purpose && self.provides_user_id.is_some() {
            return Err(problem(
                e,
                "`own_purpose` does not apply to the account source: for a user of an enterprise \
                 customer, the account is the customer's",
            ));
        }
        let (erasure, kept) = erasure_policy(e, self.erasure, &location)?;
        let correctable = correctable_attributes(
            e,
            self.correctable.unwrap_or_default(),
            &location,
            self.provides_user_id.as_deref(),
        )?;
        let attributes = source_attributes(
            e,
            self.attributes,
            &location,
            self.provides_user_id.as_deref(),
            &erasure,
            &correctable,
        )?;
        Ok(Source {
            id: self.id,
            description: description.en.clone(),
            location,
            provides_user_id: self.provides_user_id,
            erasure,
            correctable,
            own_purpose: self.own_purpose,
            texts: SourceTexts { label, description, retention: retention.clone(), kept },
            attributes,
            disclosure: Disclosure {
                categories: self.categories,
                ccpa_categories: self.ccpa_categories,
                purposes: self.purposes,
                origins: self.origins,
                recipients: self.recipients,
                ccpa_disclosure: self.ccpa_disclosure,
                retention: retention.en,
            },
        })
    }
}

/// A table's or a webhook's attributes: given, and among them every attribute the entry names
/// elsewhere (the key, the user id, the time attribute, what erasure removes, what may be
/// corrected), so that whatever the requester is shown or told about has its label. Files
/// (s3, manual) have none.
fn source_attributes(
    entry: &str,
    raw: Option<Ordered<RawAttribute>>,
    location: &Location,
    provides_user_id: Option<&str>,
    erasure: &ErasurePolicy,
    correctable: &[String],
) -> Result<Vec<Attribute>, DataMapError> {
    let named: Vec<&str> = match location {
        Location::Table { find_by, table_key, time_attribute, .. } => {
            let mut named = vec![subject_attribute_name(*find_by), table_key.as_str()];
            named.extend(time_attribute.as_deref());
            named.extend(provides_user_id);
            if let ErasurePolicy::Anonymise { attributes, .. } = erasure {
                named.extend(attributes.iter().map(String::as_str));
            }
            named.extend(correctable.iter().map(String::as_str));
            named
        }
        Location::Webhook { .. } => Vec::new(),
        Location::Objects { .. } | Location::Manual { .. } => {
            return match raw {
                Some(_) => {
                    Err(problem(entry, "`attributes` does not apply to a source of files (s3, manual)"))
                }
                None => Ok(Vec::new()),
            };
        }
    };
    let Some(raw) = raw.filter(|r| !r.0.is_empty()) else {
        return Err(problem(
            entry,
            "`attributes` is required: the label of each attribute of its records, in English and Dutch",
        ));
    };
    let attributes = attributes(entry, "attributes", raw, provides_user_id.is_some())?;
    if let Some(missing) = named.iter().find(|n| !attributes.iter().any(|a| a.name == **n)) {
        return Err(problem(entry, format!("`attributes` must describe `{missing}`, which the entry names")));
    }
    Ok(attributes)
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

    /// Its name for the requester, short enough for a heading (`Gesprekken`).
    pub fn label(&self, language: Language) -> &str {
        self.texts.label.get(language)
    }

    /// What it holds, in a sentence.
    pub fn describe(&self, language: Language) -> &str {
        self.texts.description.get(language)
    }

    /// How long its data is kept.
    pub fn retention(&self, language: Language) -> &str {
        self.texts.retention.get(language)
    }

    /// What erasure keeps here and why, for the requester (sources that anonymise only).
    pub fn kept_reason(&self, language: Language) -> Option<&str> {
        self.texts.kept.as_ref().map(|(reason, _)| reason.get(language))
    }

    /// The law a kept record rests on (sources that anonymise only).
    pub fn legal_basis(&self, language: Language) -> Option<&str> {
        self.texts.kept.as_ref().map(|(_, basis)| basis.get(language))
    }

    /// The attributes of its records, in the order they are shown (none for files).
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// Attribute `name` of its records: one the map describes, or one the system writes
    /// (`corrected_at`, `anonymised_at`); none for anything else (a webhook may answer more than
    /// the map knows).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        (self.attributes.iter().chain(system_attributes())).find(|a| a.name == name)
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
        let contacts = (raw.recipient_contacts.into_iter().enumerate())
            .map(|(position, contact)| (entry_name(Some(&contact.id), position), Ok(contact)));
        DataMap::checked(sources)?.with_contacts(contacts)?.with_vocabulary(raw.vocabulary)
    }

    fn parse_by_entry(text: &str) -> Result<DataMap, DataMapError> {
        let raw: RawMap = serde_norway::from_str(text).map_err(|err| problem("(file)", err.to_string()))?;
        check_version(raw.version)?;
        let sources = raw.sources.into_iter().enumerate().map(|(position, value)| {
            let entry = entry_name(value["id"].as_str(), position);
            let raw_source = serde_norway::from_value::<RawSource>(value).map_err(|err| err.to_string());
            (entry, raw_source)
        });
        let contacts = raw.recipient_contacts.into_iter().enumerate().map(|(position, value)| {
            let entry = entry_name(value["id"].as_str(), position);
            (entry, serde_norway::from_value::<RawContact>(value).map_err(|err| err.to_string()))
        });
        let vocabulary = raw
            .vocabulary
            .map(serde_norway::from_value::<RawVocabulary>)
            .transpose()
            .map_err(|err| problem(VOCABULARY, err.to_string()))?;
        DataMap::checked(sources)?.with_contacts(contacts)?.with_vocabulary(vocabulary)
    }

    fn with_vocabulary(self, raw: Option<RawVocabulary>) -> Result<DataMap, DataMapError> {
        Ok(DataMap { vocabulary: vocabulary(raw)?, ..self })
    }

    /// The requester's words for `word` (a category, purpose, origin or recipient).
    pub fn label<W: Word>(&self, word: W, language: Language) -> &str {
        // Every word has its labels: the map does not load otherwise.
        W::labels(&self.vocabulary).get(&word).map_or("", |text| text.get(language))
    }

    /// The recipient contacts, each checked against the sources: a known source that names the
    /// contact's category among its recipients, an address that reads, no id twice.
    fn with_contacts(
        mut self,
        contacts: impl Iterator<Item = (String, Result<RawContact, String>)>,
    ) -> Result<DataMap, DataMapError> {
        let mut ids = BTreeSet::new();
        for (entry, raw) in contacts {
            let raw = raw.map_err(|why| problem(&entry, why))?;
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
            let role = text(&e, "role", raw.role)?;
            let Ok(address) = crate::domain::EmailAddress::parse(&raw.address) else {
                return Err(problem(&e, "a recipient's `address` must be an email address"));
            };
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
                role,
                address,
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
        Ok(DataMap { sources, recipients: Vec::new(), vocabulary: Vocabulary::default() })
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
        DataMap { sources, recipients, vocabulary: self.vocabulary.clone() }
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// The sources the company keeps for its own purposes ([`Source::own_purpose`]), in the
    /// map's order: what a referred request still covers.
    pub fn own_purpose_sources(&self) -> Vec<&Source> {
        self.sources.iter().filter(|s| s.own_purpose).collect()
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
    fn the_checked_in_map_marks_the_company_s_own_purposes_and_never_the_customer_s_account() {
        let map = DataMap::builtin().unwrap();
        let own: Vec<&str> = map.own_purpose_sources().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(own, ["marketing", "job_applications", "website_analytics"]);
        let account = "    provides_user_id: user_id\n";
        let marked = BUILTIN.replacen(account, &format!("{account}    own_purpose: true\n"), 1);
        let err = DataMap::parse(&marked).unwrap_err().to_string();
        assert!(err.contains("accounts") && err.contains("`own_purpose`"), "{err}");
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
                    assert!(reason.contains("25 months") && reason.contains("legal claims"), "{reason}");
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

    /// Walks a sample record: every attribute (and nested field) the map describes, and every
    /// code of an attribute whose codes the map labels has its words.
    fn undescribed(attributes: &[Attribute], value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        let Some(object) = value.as_object() else { return };
        for (name, value) in object {
            let at = format!("{path}.{name}");
            let Some(attribute) = attributes.iter().find(|a| &a.name == name) else {
                out.push(at);
                continue;
            };
            let items: Vec<&serde_json::Value> = match value {
                serde_json::Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                match item {
                    serde_json::Value::Object(_) => undescribed(&attribute.fields, item, &at, out),
                    serde_json::Value::String(code)
                        if !attribute.values.is_empty()
                            && attribute.value_label(code, Language::Nl).is_none() =>
                    {
                        out.push(format!("{at} = {code:?}"));
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_attribute_of_the_sample_data_is_described_and_every_code_has_its_words() {
        let map = DataMap::builtin().unwrap();
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../dev/seed/sample-data.json")).unwrap();
        let mut missing = Vec::new();
        let mut seen = BTreeSet::new();
        for group in ["items", "webhook_sources"] {
            for (id, records) in sample[group].as_object().unwrap() {
                let source = map.source(id).unwrap_or_else(|| panic!("{id} is in the map"));
                seen.insert(id.as_str());
                for record in records.as_array().unwrap() {
                    undescribed(source.attributes(), record, id, &mut missing);
                }
            }
        }
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "not described in config/datamap.yaml: {missing:?}");
        assert!(seen.len() >= 8, "{seen:?}");
        let accounts = map.source("accounts").unwrap();
        assert_eq!(
            accounts.attribute("account_type").unwrap().value_label("free", Language::Nl),
            Some("Gratis account")
        );
        assert_eq!(
            accounts.attribute("corrected_at").unwrap().label(Language::Nl),
            "Gecorrigeerd op",
            "the system's own"
        );
        assert!(accounts.attribute("no_such_thing").is_none());
    }

    #[test]
    fn other_peoples_attributes_are_marked_and_the_persons_own_identifiers_too() {
        let map = DataMap::builtin().unwrap();
        let others = |id: &str| -> Vec<String> {
            fn walk(attributes: &[Attribute], path: &str, out: &mut Vec<String>) {
                for a in attributes {
                    if a.others == Others::Pseudonymise {
                        out.push(format!("{path}{}", a.name));
                    }
                    walk(&a.fields, &format!("{path}{}.", a.name), out);
                }
            }
            let mut out = Vec::new();
            walk(map.source(id).unwrap().attributes(), "", &mut out);
            out
        };
        assert_eq!(others("call_detail_records"), ["participants"]);
        assert_eq!(others("chat_transcripts"), ["recipients", "read_by"]);
        assert_eq!(others("meeting_rooms"), ["invitations", "participants"]);
        assert_eq!(others("job_applications"), ["references.name"]);
        assert!(others("accounts").is_empty());
        let accounts = map.source("accounts").unwrap();
        assert_eq!(accounts.attribute("administrator_contact").unwrap().others, Others::Share);
        let own: Vec<&str> =
            accounts.attributes().iter().filter(|a| a.identifies).map(|a| a.name.as_str()).collect();
        assert_eq!(own, ["email", "user_id", "name", "username"]);
    }

    #[test]
    fn every_text_a_requester_reads_is_there_in_english_and_dutch() {
        let map = DataMap::builtin().unwrap();
        for source in map.sources() {
            for language in [Language::En, Language::Nl] {
                assert!(!source.label(language).is_empty() && !source.retention(language).is_empty());
            }
            assert_ne!(source.describe(Language::En), source.describe(Language::Nl), "{}", source.id);
            assert_eq!(source.description, source.describe(Language::En), "staff read the English");
        }
        assert_eq!(map.label(Purpose::Security, Language::Nl), "Beveiliging en fraudepreventie");
        assert_eq!(
            map.label(Recipient::ServiceProviders, Language::En),
            "Service providers working on our behalf"
        );
        let cdrs = map.source("call_detail_records").unwrap();
        assert!(cdrs.legal_basis(Language::Nl).unwrap().contains("Artikel 17, derde lid, onder e, AVG"));
        assert!(
            cdrs.kept_reason(Language::En).unwrap().contains("Article 17(3)(e) GDPR"),
            "the reason names the law"
        );
        let hosting = &map.recipient_contacts()[0];
        assert_eq!(hosting.label(Language::Nl), "Nimbus Hosting B.V. (hosting en opslag)");
        // The opt-out and the unsubscription are for good: the retention says so (it said 30 days).
        let marketing = map.source("marketing").unwrap();
        assert!(
            marketing.retention(Language::En).contains("for good"),
            "{}",
            marketing.retention(Language::En)
        );
        assert!(marketing.retention(Language::Nl).contains("blijvend"));
        assert!(!marketing.retention(Language::En).contains("30 days"));
    }

    #[test]
    fn a_word_of_the_vocabulary_without_labels_is_refused_by_name() {
        let text = with_entry("").replace(
            "    security: {en: Security and fraud prevention, nl: Beveiliging en fraudepreventie}\n",
            "",
        );
        let err = DataMap::parse(&text).unwrap_err();
        assert_eq!(
            (err.entry.as_str(), err.problem.contains("`purposes.security` has no label")),
            ("vocabulary", true),
            "{err}"
        );
        let text = with_entry("").replace("nl: Beveiliging en fraudepreventie}", "nl: ''}");
        assert!(
            DataMap::parse(&text).unwrap_err().problem.contains("`purposes.security.nl` must not be empty")
        );
        let text = with_entry("").replace("    security: {en:", "    safety: {en:");
        assert!(DataMap::parse(&text).unwrap_err().problem.contains("`purposes` has no word `safety`"));
        let text = with_entry("").replace("\nvocabulary:", "\nunused:");
        assert!(DataMap::parse(&text).is_err());
        let without = &with_entry("")[..with_entry("").find("\nvocabulary:").unwrap() + 1];
        assert_eq!(DataMap::parse(without).unwrap_err().entry, "vocabulary");
    }

    #[test]
    fn a_recipient_without_its_role_in_both_languages_is_refused_by_name() {
        let contacts = "recipient_contacts:\n  - id: hosting\n    name: Nimbus\n    role: {en: hosting}\n    address: p@nimbus.example\n    category: affiliates\n    sources: [accounts]\n";
        let text = with_entry("").replace("\nvocabulary:", &format!("\n{contacts}vocabulary:"));
        let err = DataMap::parse(&text).unwrap_err();
        assert_eq!(err.entry, "hosting", "{err}");
        assert!(err.problem.contains("missing field `nl`"), "{err}");
        let good = text.replace("role: {en: hosting}", "role: {en: hosting, nl: hosting}");
        assert_eq!(DataMap::parse(&good).unwrap().recipient_contacts()[0].role(Language::Nl), "hosting");
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

    /// A source's label and description in both languages.
    const TEXTS: &str = "    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n";

    /// The checked-in map's labels of the closed lists, which every map needs.
    pub(super) fn vocabulary_yaml() -> &'static str {
        &BUILTIN[BUILTIN.find("\nvocabulary:").expect("the map has a vocabulary")..]
    }

    fn with_entry(entry: &str) -> String {
        format!(
            "version: 1\nsources:\n  - id: accounts\n{TEXTS}    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    provides_user_id: user_id\n    categories: [identifiers]\n    ccpa_categories: [identifiers]\n    purposes: [security]\n    origins: [the_person]\n    recipients: [affiliates]\n    ccpa_disclosure: business_purpose\n    retention: {{en: r, nl: r}}\n    erasure: delete\n    attributes: {{email: {{en: e, nl: e}}, user_id: {{en: u, nl: u}}, name: {{en: n, nl: n}}}}\n{entry}{}",
            vocabulary_yaml()
        )
    }

    const WEBHOOK: &str = "  - id: ats\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: webhook\n    endpoint: https://ats.example.com/privacy\n    auth: hmac\n    secret: s\n    categories: [job_application]\n    ccpa_categories: [professional_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: {en: r, nl: r}\n    erasure: delete\n    attributes: {cv: {en: CV, nl: Cv}}\n";
    const MANUAL: &str = "  - id: crm\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: manual\n    instructions: look in the CRM\n    categories: [contact_data]\n    ccpa_categories: [identifiers]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: {en: r, nl: r}\n    erasure: delete\n";

    const GOOD_ENTRY: &str = "  - id: cdrs\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: dynamodb\n    table: cdrs\n    find_by: user_id\n    table_key: call_id\n    index: by_user\n    categories: [call_detail_records]\n    ccpa_categories: [internet_activity]\n    purposes: [quality_control]\n    origins: [automatic_collection]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: {en: r, nl: r}\n    erasure: delete\n    attributes: {call_id: {en: c, nl: c}, user_id: {en: u, nl: u}, participants: {en: p, nl: d, others: true}}\n";

    const GOOD_RECORDINGS: &str = "  - id: recs\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: s3\n    bucket: b\n    prefix: 'recordings/{user_id}/'\n    categories: [recordings]\n    ccpa_categories: [sensitive_personal_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: {en: r, nl: r}\n    erasure: delete\n";

    /// Found by email through an index: the table key and the find attribute differ.
    const GOOD_NEWSLETTER: &str = "  - id: newsletter\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: dynamodb\n    table: newsletter\n    find_by: email\n    table_key: contact_id\n    index: by_email\n    categories: [marketing]\n    ccpa_categories: [identifiers]\n    purposes: [advertising]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: sold_or_shared\n    retention: {en: r, nl: r}\n    erasure: delete\n    correctable: [first_name]\n    attributes: {email: {en: e, nl: e}, contact_id: {en: c, nl: c}, first_name: {en: f, nl: v}}\n";

    const KEPT_CDRS: &str = "    erasure:\n      anonymise: [user_id, participants]\n      reason: {en: billing, nl: facturen}\n      legal_basis: {en: tax law, nl: belastingwet}\n";

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
        let cdrs = map.source("cdrs").unwrap();
        assert_eq!(cdrs.kept_reason(Language::Nl), Some("facturen"));
        assert_eq!(cdrs.legal_basis(Language::En), Some("tax law"));
        assert_eq!(map.source("recs").unwrap().kept_reason(Language::En), None);
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
            (GOOD_ENTRY.replace("    retention: {en: r, nl: r}\n", "    retention: {en: r, nl: ''}\n"), "cdrs", "`retention.nl` must not be empty"),
            (GOOD_ENTRY.replace("    retention: {en: r, nl: r}\n", "    retention: {en: r}\n"), "cdrs", "missing field `nl`"),
            (GOOD_ENTRY.replace("    retention: {en: r, nl: r}\n", "    retention: r\n"), "cdrs", "invalid type"),
            (GOOD_ENTRY.replace("    label: {en: l, nl: l}\n", ""), "cdrs", "missing field `label`"),
            (GOOD_ENTRY.replace("    label: {en: l, nl: l}\n", "    label: {en: ' ', nl: l}\n"), "cdrs", "`label.en` must not be empty"),
            (GOOD_ENTRY.replace("description: {en: d, nl: d}", "description: {en: d, nl: d, de: d}"), "cdrs", "unknown field `de`"),
            // Attributes: each the requester may be shown, labelled in both languages.
            (GOOD_ENTRY.replace("participants: {en: p, nl: d, others: true}", "participants: {en: p, others: true}"), "cdrs", "missing field `nl`"),
            (GOOD_ENTRY.replace("participants: {en: p, nl: d, others: true}", "participants: {en: p, nl: '', others: true}"), "cdrs", "`attributes.participants.nl` must not be empty"),
            (GOOD_ENTRY.replace("others: true}", "others: true, shareable: true}"), "cdrs", "not both"),
            (GOOD_ENTRY.replace("others: true}", "identifies: true}"), "cdrs", "only the source that provides the user id"),
            (GOOD_ENTRY.replace("others: true}", "others: true, format: minutes}"), "cdrs", "unknown variant `minutes`"),
            (GOOD_ENTRY.replace(", user_id: {en: u, nl: u}", ""), "cdrs", "must describe `user_id`"),
            (GOOD_ENTRY.replace("{call_id: {en: c, nl: c}, ", "{"), "cdrs", "must describe `call_id`"),
            (GOOD_ENTRY.replace("    index: by_user\n", "    index: by_user\n    time_attribute: started_at\n"), "cdrs", "must describe `started_at`"),
            (GOOD_ENTRY.replace("    attributes: {", "    attributes: {anonymised_at: {en: a, nl: a}, "), "cdrs", "must not name `anonymised_at`"),
            (
                GOOD_ENTRY.replace("participants: {en: p, nl: d, others: true}", "network: {en: n, nl: n, values: {wifi: {en: Wi-Fi}}}"),
                "cdrs",
                "missing field `nl`",
            ),
            (
                GOOD_ENTRY.replace("participants: {en: p, nl: d, others: true}", "quality: {en: q, nl: k, fields: {jitter: {en: j, nl: ' '}}}"),
                "cdrs",
                "`attributes.quality.fields.jitter.nl` must not be empty",
            ),
            (GOOD_ENTRY.replace("    attributes: {call_id: {en: c, nl: c}, user_id: {en: u, nl: u}, participants: {en: p, nl: d, others: true}}\n", ""), "cdrs", "`attributes` is required"),
            (format!("{GOOD_RECORDINGS}    attributes: {{key: {{en: k, nl: k}}}}\n"), "recs", "`attributes` does not apply"),
            (GOOD_ENTRY.replace("[service_providers]", "[]"), "cdrs", "`recipients` must not be empty"),
            (GOOD_ENTRY.replace("    index: by_user\n", "    index: by_user\n    colour: blue\n"), "cdrs", "unknown field"),
            (GOOD_ENTRY.replace("id: cdrs", "id: accounts"), "accounts", "used twice"),
            (GOOD_ENTRY.replace("id: cdrs", "id: CDRs"), "CDRs", "lower-case"),
            (GOOD_ENTRY.replace("    index: by_user\n", "    index: by_user\n    bucket: b\n"), "cdrs", "`bucket` does not apply"),
            (
                "  - id: recs\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: s3\n    bucket: b\n    prefix: recordings/\n    categories: [recordings]\n    ccpa_categories: [sensitive_personal_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: {en: r, nl: r}\n".to_owned(),
                "recs",
                "exactly one of {user_id} or {email}",
            ),
            (
                "  - id: recs\n    label: {en: l, nl: l}\n    description: {en: d, nl: d}\n    store: s3\n    bucket: b\n    prefix: 'recordings/{user_id}'\n    categories: [recordings]\n    ccpa_categories: [sensitive_personal_information]\n    purposes: [providing_services]\n    origins: [the_person]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: {en: r, nl: r}\n".to_owned(),
                "recs",
                "must end with `/`",
            ),
            ("  - label: {en: no id, nl: geen id}\n".to_owned(), "#2", "missing field `id`"),
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
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("reason: {en: billing,", "reason: {en: ' ',")),
                "cdrs",
                "`erasure.reason.en` must not be empty",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("      legal_basis: {en: tax law, nl: belastingwet}\n", "")),
                "cdrs",
                "missing field `legal_basis`",
            ),
            (
                GOOD_ENTRY.replace("    erasure: delete\n", &KEPT_CDRS.replace("      reason: {en: billing, nl: facturen}\n", "")),
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
            "    erasure: {anonymise: [email, name], reason: {en: kept, nl: bewaard}, legal_basis: {en: law, nl: wet}}\n",
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
                    "    categories: [{c}]\n    ccpa_categories: [{cc}]\n    purposes: [{p}]\n    origins: [{o}]\n    recipients: [{r}]\n    ccpa_disclosure: {d}\n    retention: {{en: '{retention}', nl: '{retention} (nl)'}}\n"
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

    /// Each attribute named (once), labelled in both languages.
    fn attributes_yaml(names: &[String]) -> String {
        let mut seen = BTreeSet::new();
        let mut out = "    attributes:\n".to_owned();
        for name in names.iter().filter(|n| seen.insert(n.as_str())) {
            out.push_str(&format!("      '{name}': {{en: '{name}', nl: '{name} (nl)'}}\n"));
        }
        out
    }

    fn source_yaml(id: &str, spec: &Spec, disclosure: &str) -> String {
        let head = format!(
            "  - id: {id}\n    label: {{en: '{id}', nl: '{id} (nl)'}}\n    description: {{en: 'the {id} source', nl: 'de bron {id}'}}\n"
        );
        let body = match spec {
            Spec::ByUserId { anonymise, time_attribute } => {
                let mut s = format!(
                    "    store: dynamodb\n    table: t_{id}\n    find_by: user_id\n    table_key: call_id\n    index: by_user\n"
                );
                let mut named = vec!["user_id".to_owned(), "call_id".to_owned()];
                if let Some(attribute) = time_attribute {
                    s.push_str(&format!("    time_attribute: {attribute}\n"));
                    named.push(attribute.clone());
                }
                match anonymise {
                    Some(attributes) => {
                        s.push_str(&format!(
                            "    erasure:\n      anonymise: {}\n      reason: {{en: 'kept for tax law', nl: 'bewaard voor de belastingwet'}}\n      legal_basis: {{en: 'art. 52 AWR', nl: 'art. 52 AWR'}}\n",
                            yaml_list(attributes)
                        ));
                        named.extend(attributes.iter().cloned());
                    }
                    None => s.push_str("    erasure: delete\n"),
                }
                s.push_str(&attributes_yaml(&named));
                s
            }
            Spec::ByEmail { correctable } => {
                let mut s = format!(
                    "    store: dynamodb\n    table: t_{id}\n    find_by: email\n    table_key: contact_id\n    index: by_email\n    erasure: delete\n"
                );
                let names: Vec<String> = correctable.iter().map(|a| format!("{a}_{id}")).collect();
                if !correctable.is_empty() {
                    s.push_str(&format!("    correctable: {}\n", yaml_list(&names)));
                }
                let named: Vec<String> =
                    ["email".to_owned(), "contact_id".to_owned()].into_iter().chain(names).collect();
                s.push_str(&attributes_yaml(&named));
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
                    "version: 1\nsources:\n  - id: accounts\n    label: {{en: Account, nl: Account}}\n    description: {{en: accounts, nl: accounts}}\n    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    provides_user_id: user_id\n    erasure: delete\n{account_disclosure}"
                );
                if !account_correctable.is_empty() {
                    text.push_str(&format!("    correctable: {}\n", yaml_list(&account_correctable)));
                }
                let named: Vec<String> =
                    ["email".to_owned(), "user_id".to_owned()].into_iter().chain(account_correctable.clone()).collect();
                text.push_str(&attributes_yaml(&named));
                for (id, (spec, disclosure)) in ids.iter().zip(&specs) {
                    text.push_str(&source_yaml(id, spec, disclosure));
                }
                text.push_str(super::tests::vocabulary_yaml());
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
        for language in [Language::En, Language::Nl] {
            prop_assert!(Category::ALL.iter().all(|w| !map.label(*w, language).is_empty()));
            prop_assert!(CcpaCategory::ALL.iter().all(|w| !map.label(*w, language).is_empty()));
            prop_assert!(Purpose::ALL.iter().all(|w| !map.label(*w, language).is_empty()));
            prop_assert!(Origin::ALL.iter().all(|w| !map.label(*w, language).is_empty()));
            prop_assert!(Recipient::ALL.iter().all(|w| !map.label(*w, language).is_empty()));
        }
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
            for language in [Language::En, Language::Nl] {
                prop_assert!(!source.label(language).trim().is_empty());
                prop_assert!(!source.describe(language).trim().is_empty());
                prop_assert!(!source.retention(language).trim().is_empty());
                prop_assert_eq!(
                    source.kept_reason(language).is_some(),
                    matches!(source.erasure, ErasurePolicy::Anonymise { .. })
                );
                for attribute in source.attributes() {
                    prop_assert!(!attribute.label(language).trim().is_empty());
                }
            }
            let find_attribute = subject_attribute_name(source.find_by());
            match &source.location {
                Location::Table { table_key, index, time_attribute, .. } => {
                    prop_assert_eq!(index.is_none(), table_key == find_attribute);
                    for named in [Some(table_key), time_attribute.as_ref()].into_iter().flatten() {
                        prop_assert!(source.attribute(named).is_some(), "{} is described", named);
                    }
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
                        || err.entry == VOCABULARY
                        || err.entry.strip_prefix('#').is_some_and(|n| n.parse::<usize>().is_ok())
                        || (!err.entry.is_empty() && text.contains(&format!("id: {}", err.entry)));
                    prop_assert!(named, "{} names no entry of\n{}", err, text);
                }
            }
        }
    }

    fn account_with(line: &str) -> String {
        format!(
            "version: 1\nsources:\n  - id: accounts\n    label: {{en: a, nl: a}}\n    description: {{en: a, nl: a}}\n    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    categories: [identifiers]\n    ccpa_categories: [identifiers]\n    purposes: [security]\n    origins: [the_person]\n    recipients: [affiliates]\n    ccpa_disclosure: business_purpose\n    erasure: delete\n    attributes: {{email: {{en: e, nl: e}}}}\n{line}{}",
            super::tests::vocabulary_yaml()
        )
    }

    /// Found by `a_broken_map_is_refused_the_same_way_in_one_pass_or_entry_by_entry`: the one-pass
    /// reading took any scalar's spelling for text, so a map with no retention (`~`) loaded, with
    /// the retention "~" to be shown to requesters, while the entry-by-entry reading refused it.
    #[test]
    fn a_text_field_that_is_null_a_number_or_a_boolean_is_refused_in_both_readings() {
        for line in [
            "    retention: {en: ~, nl: r}",
            "    retention: {en: r, nl: null}",
            "    retention: {en: 365, nl: r}",
            "    retention: {en: r, nl: true}",
        ] {
            let text = account_with(line);
            let err = DataMap::parse(&text).unwrap_err();
            assert_eq!(err.entry, "accounts", "{line}: {err}");
            assert!(err.problem.contains("invalid type"), "{line}: {err}");
            assert_eq!(DataMap::parse_by_entry(&text), Err(err));
        }
        let none = account_with("    retention: ~");
        assert_eq!(DataMap::parse(&none).unwrap_err().problem, "missing field `en`");
        assert_eq!(DataMap::parse(&none), DataMap::parse_by_entry(&none));
        assert!(DataMap::parse(&account_with("    retention: {en: '365 days', nl: '365 dagen'}")).is_ok());
        assert!(DataMap::parse(&account_with("    retention: {en: \"365\", nl: \"365\"}")).is_ok());
    }

    /// Found by the same property: an empty id was the entry's name, so the error named no entry.
    #[test]
    fn an_entry_with_an_empty_id_is_named_by_its_position() {
        let text = account_with("    retention: {en: r, nl: r}").replace("id: accounts", "id: ''");
        let err = DataMap::parse(&text).unwrap_err();
        assert_eq!(err.entry, "#1", "{err}");
        assert!(err.problem.contains("lower-case letters"), "{err}");
    }
}
