//! The data map (`config/datamap.yaml`): where personal data lives, how to find one person in
//! each place, and what the policy discloses about it. Checked completely at load, so a bad map
//! fails at cold start with the entry named, never halfway through an export.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub id: String,
    pub description: String,
    pub location: Location,
    /// The attribute of this source's record that holds the person's user id.
    pub provides_user_id: Option<String>,
    pub disclosure: Disclosure,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMap {
    sources: Vec<Source>,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoreKind {
    Dynamodb,
    S3,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: String,
    description: String,
    store: StoreKind,
    table: Option<String>,
    find_by: Option<SubjectAttribute>,
    table_key: Option<String>,
    index: Option<String>,
    time_attribute: Option<String>,
    provides_user_id: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    categories: Vec<Category>,
    ccpa_categories: Vec<CcpaCategory>,
    purposes: Vec<Purpose>,
    origins: Vec<Origin>,
    recipients: Vec<Recipient>,
    ccpa_disclosure: CcpaDisclosure,
    retention: String,
}

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

impl RawSource {
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
        let location = match self.store {
            StoreKind::Dynamodb => {
                forbidden(
                    e,
                    "dynamodb",
                    &[("bucket", self.bucket.is_some()), ("prefix", self.prefix.is_some())],
                )?;
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
                forbidden(
                    e,
                    "s3",
                    &[
                        ("table", self.table.is_some()),
                        ("find_by", self.find_by.is_some()),
                        ("table_key", self.table_key.is_some()),
                        ("index", self.index.is_some()),
                        ("time_attribute", self.time_attribute.is_some()),
                        ("provides_user_id", self.provides_user_id.is_some()),
                    ],
                )?;
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
        };
        Ok(Source {
            id: self.id,
            description: self.description,
            location,
            provides_user_id: self.provides_user_id,
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

impl Source {
    pub fn find_by(&self) -> SubjectAttribute {
        match &self.location {
            Location::Table { find_by, .. } | Location::Objects { find_by, .. } => *find_by,
        }
    }
}

impl DataMap {
    /// The map checked in at `config/datamap.yaml`.
    pub fn builtin() -> Result<DataMap, DataMapError> {
        DataMap::parse(BUILTIN)
    }

    pub fn parse(text: &str) -> Result<DataMap, DataMapError> {
        let raw: RawMap = serde_norway::from_str(text).map_err(|err| problem("(file)", err.to_string()))?;
        if raw.version != 1 {
            return Err(problem("(file)", format!("version {} is not supported (expected 1)", raw.version)));
        }
        let mut sources = Vec::new();
        let mut ids = BTreeSet::new();
        for (position, value) in raw.sources.into_iter().enumerate() {
            let entry =
                value["id"].as_str().map(str::to_owned).unwrap_or_else(|| format!("#{}", position + 1));
            let raw_source: RawSource =
                serde_norway::from_value(value).map_err(|err| problem(&entry, err.to_string()))?;
            let source = raw_source.into_source()?;
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
        Ok(DataMap { sources })
    }

    /// The same map with every table and bucket name prefixed: one isolated copy of the sources
    /// per test, or per environment sharing an account.
    pub fn with_name_prefix(&self, prefix: &str) -> DataMap {
        let mut map = self.clone();
        for source in &mut map.sources {
            match &mut source.location {
                Location::Table { table, .. } => *table = format!("{prefix}{table}"),
                Location::Objects { bucket, .. } => *bucket = format!("{prefix}{bucket}"),
            }
        }
        map
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

    fn with_entry(entry: &str) -> String {
        format!(
            "version: 1\nsources:\n  - id: accounts\n    description: a\n    store: dynamodb\n    table: accounts\n    find_by: email\n    table_key: email\n    provides_user_id: user_id\n    categories: [identifiers]\n    ccpa_categories: [identifiers]\n    purposes: [security]\n    origins: [the_person]\n    recipients: [affiliates]\n    ccpa_disclosure: business_purpose\n    retention: r\n{entry}"
        )
    }

    const GOOD_ENTRY: &str = "  - id: cdrs\n    description: d\n    store: dynamodb\n    table: cdrs\n    find_by: user_id\n    table_key: call_id\n    index: by_user\n    categories: [call_detail_records]\n    ccpa_categories: [internet_activity]\n    purposes: [quality_control]\n    origins: [automatic_collection]\n    recipients: [service_providers]\n    ccpa_disclosure: business_purpose\n    retention: r\n";

    #[test]
    fn a_good_entry_parses() {
        let map = DataMap::parse(&with_entry(GOOD_ENTRY)).unwrap();
        assert_eq!(map.sources().len(), 2);
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
        ];
        for (entry, named, says) in cases {
            let err = DataMap::parse(&with_entry(&entry)).unwrap_err();
            assert_eq!(err.entry, named, "{err}");
            assert!(err.problem.contains(says), "{err} should say {says:?}");
            assert!(err.to_string().starts_with(&format!("data map entry `{named}`")));
        }
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
