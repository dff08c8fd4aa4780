//! Reading and changing one person's data in the data map's sources: the port the export
//! collects through and the erasure deletes, anonymises and corrects through, and its one AWS
//! implementation (DynamoDB tables, S3 prefixes).
//!
//! Every change of a record is conditional on the record still belonging to the person: the
//! attribute it was found by must still hold the person's key when the write lands. An index is
//! eventually consistent (and a record can change hands between the read and the write), so a
//! stale entry must never let one person's erasure touch another person's record; such a record
//! is skipped ([`Written::NotTheirs`]), which is not an error.
//!
//! Every change is idempotent, because a worker that crashes halfway runs again: deleting what is
//! gone, anonymising or correcting a record deleted meanwhile, all succeed. Objects are deleted
//! with every version and delete marker, so a versioned bucket keeps nothing to restore. Errors
//! name the source, the operation and the service's error code, never a key, address or value.
//!
//! A person can hold hundreds of thousands of records in one source, so records are read a page
//! at a time ([`PersonalData::records_page`]): a worker holds one page, never the person, and a
//! page's [`Cursor`] can be saved to carry on from there in another invocation.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use crate::aws::error_code;
use crate::datamap::{
    DataMap, Location, Source, SubjectAttribute, WRITTEN_ON_CORRECTION, WRITTEN_ON_ERASURE,
};
use crate::domain::EmailAddress;
use crate::{Clock, SystemClock};

/// Who we are collecting for: the verified address and, once looked up, the user id.
#[derive(Clone)]
pub struct Person {
    pub email: EmailAddress,
    pub user_id: Option<String>,
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Person")
            .field("user_id", &self.user_id.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Person {
    /// The value a source is searched by, if this person has one.
    pub fn key_for(&self, attribute: SubjectAttribute) -> Option<&str> {
        match attribute {
            SubjectAttribute::Email => Some(self.email.normalized()),
            SubjectAttribute::UserId => self.user_id.as_deref(),
        }
    }
}

/// An object of an object source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Names the source and the service's error code, never a record.
    #[error("source `{source_id}`: {operation} failed: {code}")]
    Aws { source_id: String, operation: &'static str, code: String },
    #[error("source `{0}`: a stored record is not readable")]
    Unreadable(String),
    #[error("source `{0}` is not of the kind asked for")]
    WrongKind(String),
    #[error("source `{0}`: the person's key cannot be used in a prefix")]
    UnsafeKey(String),
    /// An object key outside the person's prefix, or one a path normaliser could move out of it.
    #[error("source `{0}`: the object is not under the person's prefix")]
    NotThePersons(String),
    #[error("source `{0}`: only the map's correctable attributes may be corrected")]
    NotCorrectable(String),
    #[error("source `{0}`: the table key cannot be removed or changed")]
    KeyAttribute(String),
    #[error("source `{0}`: a corrected value cannot be stored")]
    UnstorableValue(String),
    /// An S3 operation outside any source (the export bucket).
    #[error("{operation} failed: {code}")]
    Storage { operation: &'static str, code: String },
    #[error("refusing to delete under an empty prefix")]
    EmptyPrefix,
}

/// Where the next page of a person's records in a source starts: the table's own position after
/// the last record read (DynamoDB's `LastEvaluatedKey`), its key values kept with their types so
/// that a saved cursor (the erasure saves it with its progress) gives back exactly that position.
/// It holds key values of the person's records (their address or user id, for a source read
/// through an index), so `Debug` shows none.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor(BTreeMap<String, KeyValue>);

/// A key attribute's value: DynamoDB keys are strings, numbers or binary.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyValue {
    S(String),
    N(String),
    B(Vec<u8>),
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursor(<redacted>)")
    }
}

impl Cursor {
    /// The position a Query (or Scan) page ended at; `None` when the page was the last.
    pub(crate) fn after(
        source: &Source,
        key: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Option<Cursor>, SourceError> {
        let Some(key) = key.filter(|k| !k.is_empty()) else { return Ok(None) };
        let mut values = BTreeMap::new();
        for (name, value) in key {
            let value = match value {
                AttributeValue::S(s) => KeyValue::S(s),
                AttributeValue::N(n) => KeyValue::N(n),
                AttributeValue::B(b) => KeyValue::B(b.into_inner()),
                _ => return Err(SourceError::Unreadable(source.id.clone())),
            };
            values.insert(name, value);
        }
        Ok(Some(Cursor(values)))
    }

    pub(crate) fn into_start_key(self) -> HashMap<String, AttributeValue> {
        self.0
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    KeyValue::S(s) => AttributeValue::S(s),
                    KeyValue::N(n) => AttributeValue::N(n),
                    KeyValue::B(b) => AttributeValue::B(aws_smithy_types::Blob::new(b)),
                };
                (name, value)
            })
            .collect()
    }
}

/// One page of a person's records in a source, and where the next page starts (`None`: this
/// was the last). A page may be empty and still have a next one.
#[derive(Clone, Default)]
pub struct Page {
    pub records: Vec<Value>,
    pub next: Option<Cursor>,
}

/// What a conditional change of one record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Written {
    /// The record still belonged to the person, and is changed.
    Applied,
    /// The record is gone, or now belongs to someone else (a stale index entry, or a record that
    /// changed hands): nothing was written.
    NotTheirs,
}

/// The attribute that ties a record to its person (the source's `find_by`), and the person's key
/// as the record carries it: the page that held the record found it by this value.
fn owner_of(source: &Source, record: &Value) -> Result<(&'static str, AttributeValue), SourceError> {
    let attribute = match source.find_by() {
        SubjectAttribute::Email => "email",
        SubjectAttribute::UserId => "user_id",
    };
    match record.get(attribute) {
        Some(Value::String(key)) if !key.is_empty() => Ok((attribute, AttributeValue::S(key.clone()))),
        _ => Err(SourceError::Unreadable(source.id.clone())),
    }
}

/// Whether the person with this key has any record or object in the source: the first page that
/// holds one (a page may be empty and still have a next one). Sources outside AWS are never read
/// here: their answers are their own.
pub async fn holds_any<P: PersonalData + ?Sized>(
    data: &P,
    source: &Source,
    key: &str,
) -> Result<bool, SourceError> {
    match source.location {
        Location::Objects { .. } => return Ok(!data.objects(source, key).await?.is_empty()),
        Location::Table { .. } => {}
        _ => return Ok(false),
    }
    let mut cursor = None;
    loop {
        let page = data.records_page(source, key, cursor).await?;
        if !page.records.is_empty() {
            return Ok(true);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(false),
        }
    }
}

/// `record` is always one `records_page(source, key, _)` returned: its `find_by` attribute holds
/// the person's key, and every change applies only while the stored record still holds it.
pub trait PersonalData: Send + Sync {
    /// One page of the records of `source` that belong to the person with this key: the first
    /// (`cursor` None), or the one starting where an earlier page's `next` points. A page is
    /// bounded (the table's page size, or the implementation's own limit), however many records
    /// the person has.
    fn records_page(
        &self,
        source: &Source,
        key: &str,
        cursor: Option<Cursor>,
    ) -> impl Future<Output = Result<Page, SourceError>> + Send;

    /// Every record of `source` that belongs to the person with this key, all pages in memory:
    /// for sources that hold a few records per person (the account), never for a whole export.
    fn records(
        &self,
        source: &Source,
        key: &str,
    ) -> impl Future<Output = Result<Vec<Value>, SourceError>> + Send {
        async move {
            let mut records = Vec::new();
            let mut cursor = None;
            loop {
                let page = self.records_page(source, key, cursor.take()).await?;
                records.extend(page.records);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => return Ok(records),
                }
            }
        }
    }

    /// Every object of `source` under the person's prefix.
    fn objects(
        &self,
        source: &Source,
        key: &str,
    ) -> impl Future<Output = Result<Vec<StoredObject>, SourceError>> + Send;

    /// Deletes one record (as a page held it) by the source's table key, only if it still
    /// belongs to the person (a condition on the source's `find_by` attribute): `NotTheirs`
    /// otherwise, and for a record already gone.
    fn delete_record(
        &self,
        source: &Source,
        record: &Value,
    ) -> impl Future<Output = Result<Written, SourceError>> + Send;

    /// Keeps the record without `attributes` and stamps `anonymised_at`, only if it still
    /// belongs to the person. A record deleted meanwhile is left alone (`NotTheirs`): there is
    /// nothing left to anonymise.
    fn anonymise_record(
        &self,
        source: &Source,
        record: &Value,
        attributes: &[String],
    ) -> impl Future<Output = Result<Written, SourceError>> + Send;

    /// Deletes every version and delete marker of one object of the person (`person_key` as for
    /// `objects`); refuses a key outside the person's prefix. An absent object succeeds.
    fn delete_object(
        &self,
        source: &Source,
        person_key: &str,
        object_key: &str,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Sets the changed attributes (each one the map's `correctable` for the source; JSON null
    /// removes the attribute) and stamps `corrected_at`, if the record still belongs to the
    /// person. A record deleted meanwhile is not recreated (`NotTheirs`: it holds nothing
    /// inaccurate any more).
    fn correct(
        &self,
        source: &Source,
        record: &Value,
        changes: &serde_json::Map<String, Value>,
    ) -> impl Future<Output = Result<Written, SourceError>> + Send;
}

/// Looks the person's user id up in the map's account source (if the map has one).
pub async fn find_user_id<P: PersonalData>(
    data: &P,
    map: &DataMap,
    email: &EmailAddress,
) -> Result<Option<String>, SourceError> {
    let Some(source) = map.user_id_source() else { return Ok(None) };
    let attribute = source.provides_user_id.as_deref().unwrap_or("user_id");
    let records = data.records(source, email.normalized()).await?;
    Ok(records.iter().find_map(|r| r.get(attribute).and_then(Value::as_str)).map(str::to_owned))
}

/// The DynamoDB and S3 implementation.
#[derive(Clone)]
pub struct AwsPersonalData {
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    /// Stamps `anonymised_at` and `corrected_at`.
    clock: Arc<dyn Clock>,
    /// The most records one page holds; DynamoDB's own bound (1 MB of items) without it.
    page_size: Option<i32>,
}

impl std::fmt::Debug for AwsPersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsPersonalData").finish_non_exhaustive()
    }
}

impl AwsPersonalData {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client) -> AwsPersonalData {
        AwsPersonalData { dynamo, s3, clock: Arc::new(SystemClock), page_size: None }
    }

    /// The same, with pages of at most `records` records (at least one): a worker that changes
    /// every record of a page bounds the time one page takes.
    pub fn with_page_size(self, records: u32) -> AwsPersonalData {
        let records = i32::try_from(records.max(1)).unwrap_or(i32::MAX);
        AwsPersonalData { page_size: Some(records), ..self }
    }

    /// The same, stamping changes with this clock (the worker's, so tests control the time).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> AwsPersonalData {
        AwsPersonalData { clock, ..self }
    }

    /// An UpdateItem of a record that must still be the person's: updating a record deleted
    /// meanwhile would recreate it, and one that changed hands is someone else's, so a failed
    /// condition is a skip, not a write and not an error.
    async fn update_theirs(
        &self,
        source: &Source,
        record: &Value,
        expression: String,
        mut names: HashMap<String, String>,
        mut values: HashMap<String, AttributeValue>,
    ) -> Result<Written, SourceError> {
        let (table, table_key, key) = record_key(source, record)?;
        let (owner, owned_by) = owner_of(source, record)?;
        names.insert("#owner".to_owned(), owner.to_owned());
        values.insert(":owner".to_owned(), owned_by);
        let result = self
            .dynamo
            .update_item()
            .table_name(table)
            .key(table_key, key)
            .update_expression(expression)
            .condition_expression("#owner = :owner")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        written(source, "UpdateItem", result)
    }

    fn now(&self) -> AttributeValue {
        AttributeValue::S(self.clock.now().to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

/// A conditional write's outcome: a failed condition means the record is not the person's.
fn written<T, E: aws_smithy_types::error::metadata::ProvideErrorMetadata + ConditionFailed, R>(
    source: &Source,
    operation: &'static str,
    result: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
) -> Result<Written, SourceError> {
    match result {
        Ok(_) => Ok(Written::Applied),
        Err(e) if e.as_service_error().is_some_and(ConditionFailed::is_condition_failed) => {
            Ok(Written::NotTheirs)
        }
        Err(e) => Err(aws_error(source, operation, &e)),
    }
}

/// The two conditional writes' errors, alike in what matters here.
trait ConditionFailed {
    fn is_condition_failed(&self) -> bool;
}

impl ConditionFailed for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailed for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// The table and the record's key in it. Only strings and numbers can be DynamoDB keys.
fn record_key<'a>(
    source: &'a Source,
    record: &Value,
) -> Result<(&'a str, &'a str, AttributeValue), SourceError> {
    let Location::Table { table, table_key, .. } = &source.location else {
        return Err(SourceError::WrongKind(source.id.clone()));
    };
    let value = match record.get(table_key) {
        Some(Value::String(s)) if !s.is_empty() => AttributeValue::S(s.clone()),
        Some(Value::Number(n)) => AttributeValue::N(n.to_string()),
        _ => return Err(SourceError::Unreadable(source.id.clone())),
    };
    Ok((table, table_key, value))
}

/// Deletes every version and delete marker under `prefix` (only those of exactly `exact_key`
/// when given), a page at a time. Returns how many were deleted, or the failed operation and
/// the service's error code.
async fn delete_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    exact_key: Option<&str>,
) -> Result<u64, (&'static str, String)> {
    let mut deleted = 0;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| ("ListObjectVersions", error_code(&e)))?;
        let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = page.delete_markers().iter().map(|m| (m.key(), m.version_id()));
        for (key, version) in versions.chain(markers) {
            let Some(key) = key else { continue };
            // The prefix of one key also matches longer keys (`a.mp4` and `a.mp4.part`).
            if exact_key.is_some_and(|exact| exact != key) {
                continue;
            }
            // Deleting by version id removes that version for good; without one, a versioned
            // bucket would only add a delete marker. Deleting after the page is listed leaves
            // the markers of the next page valid: they point past what was deleted.
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version.map(str::to_owned))
                .send()
                .await
                .map_err(|e| ("DeleteObject", error_code(&e)))?;
            deleted += 1;
        }
        if !page.is_truncated().unwrap_or(false) {
            return Ok(deleted);
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() {
            return Ok(deleted);
        }
    }
}

/// Deletes every object under `prefix` in `bucket` with all its versions and delete markers (the
/// export bucket, outside the data map). Returns how many object versions were deleted. An
/// empty prefix is refused: it would be the whole bucket.
pub async fn delete_all_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<u64, SourceError> {
    if prefix.is_empty() {
        return Err(SourceError::EmptyPrefix);
    }
    delete_versions(s3, bucket, prefix, None)
        .await
        .map_err(|(operation, code)| SourceError::Storage { operation, code })
}

pub(crate) fn aws_error<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    source: &Source,
    operation: &'static str,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> SourceError {
    SourceError::Aws { source_id: source.id.clone(), operation, code: error_code(err) }
}

/// Whether `object_key` lies under the person's prefix for good: not merely a string prefix
/// match, but with no `.` or `..` segment a path normaliser on the way could resolve into
/// another person's prefix.
fn is_under(prefix: &str, object_key: &str) -> bool {
    match object_key.strip_prefix(prefix) {
        Some(rest) => !rest.is_empty() && !rest.split('/').any(|segment| segment == "." || segment == ".."),
        None => false,
    }
}

/// The object prefix of one person. Keys with a `/` (or empty) could reach another person's
/// prefix, so they are refused.
pub fn person_prefix(source: &Source, key: &str) -> Result<String, SourceError> {
    let Location::Objects { prefix, .. } = &source.location else {
        return Err(SourceError::WrongKind(source.id.clone()));
    };
    if key.is_empty() || key.contains('/') || key.contains('{') {
        return Err(SourceError::UnsafeKey(source.id.clone()));
    }
    Ok(prefix.replace("{user_id}", key).replace("{email}", key))
}

impl PersonalData for AwsPersonalData {
    async fn records_page(
        &self,
        source: &Source,
        key: &str,
        cursor: Option<Cursor>,
    ) -> Result<Page, SourceError> {
        let Location::Table { table, find_by, index, .. } = &source.location else {
            return Err(SourceError::WrongKind(source.id.clone()));
        };
        let attribute = match find_by {
            SubjectAttribute::Email => "email",
            SubjectAttribute::UserId => "user_id",
        };
        let out = self
            .dynamo
            .query()
            .table_name(table)
            .set_index_name(index.clone())
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attribute)
            .expression_attribute_values(":v", AttributeValue::S(key.to_owned()))
            .set_consistent_read(index.is_none().then_some(true))
            .set_limit(self.page_size)
            .set_exclusive_start_key(cursor.map(Cursor::into_start_key))
            .send()
            .await
            .map_err(|e| aws_error(source, "Query", &e))?;
        let records = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(|_| SourceError::Unreadable(source.id.clone())))
            .collect::<Result<Vec<Value>, SourceError>>()?;
        Ok(Page { records, next: Cursor::after(source, out.last_evaluated_key)? })
    }

    async fn objects(&self, source: &Source, key: &str) -> Result<Vec<StoredObject>, SourceError> {
        let prefix = person_prefix(source, key)?;
        let Location::Objects { bucket, .. } = &source.location else {
            return Err(SourceError::WrongKind(source.id.clone()));
        };
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| aws_error(source, "ListObjectsV2", &e))?;
            for object in out.contents() {
                objects.push(StoredObject {
                    bucket: bucket.clone(),
                    key: object.key().unwrap_or_default().to_owned(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    last_modified: object
                        .last_modified()
                        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => return Ok(objects),
            }
        }
    }

    async fn delete_object(
        &self,
        source: &Source,
        person_key: &str,
        object_key: &str,
    ) -> Result<(), SourceError> {
        let prefix = person_prefix(source, person_key)?;
        let Location::Objects { bucket, .. } = &source.location else {
            return Err(SourceError::WrongKind(source.id.clone()));
        };
        if !is_under(&prefix, object_key) {
            return Err(SourceError::NotThePersons(source.id.clone()));
        }
        delete_versions(&self.s3, bucket, object_key, Some(object_key)).await.map_err(
            |(operation, code)| SourceError::Aws { source_id: source.id.clone(), operation, code },
        )?;
        Ok(())
    }

    async fn delete_record(&self, source: &Source, record: &Value) -> Result<Written, SourceError> {
        let (table, table_key, key) = record_key(source, record)?;
        let (owner, owned_by) = owner_of(source, record)?;
        // A record already gone fails the condition too: a rerun is a skip, not an error.
        let result = self
            .dynamo
            .delete_item()
            .table_name(table)
            .key(table_key, key)
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", owner)
            .expression_attribute_values(":owner", owned_by)
            .send()
            .await;
        written(source, "DeleteItem", result)
    }

    async fn anonymise_record(
        &self,
        source: &Source,
        record: &Value,
        attributes: &[String],
    ) -> Result<Written, SourceError> {
        let (_, table_key, _) = record_key(source, record)?;
        if attributes.iter().any(|a| a == table_key) {
            return Err(SourceError::KeyAttribute(source.id.clone()));
        }
        let mut names = HashMap::new();
        let mut removed = Vec::new();
        for (i, attribute) in attributes.iter().filter(|a| *a != WRITTEN_ON_ERASURE).enumerate() {
            // Placeholders, because attribute names like `name` are reserved words.
            names.insert(format!("#r{i}"), attribute.clone());
            removed.push(format!("#r{i}"));
        }
        names.insert("#at".to_owned(), WRITTEN_ON_ERASURE.to_owned());
        let mut expression = "SET #at = :now".to_owned();
        if !removed.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&removed.join(", "));
        }
        let values = HashMap::from([(":now".to_owned(), self.now())]);
        // The find attribute is among those removed (the map checks it), so a second run finds
        // the record no longer the person's and leaves the first stamp as it was.
        self.update_theirs(source, record, expression, names, values).await
    }

    async fn correct(
        &self,
        source: &Source,
        record: &Value,
        changes: &serde_json::Map<String, Value>,
    ) -> Result<Written, SourceError> {
        record_key(source, record)?;
        if changes.keys().any(|attribute| !source.correctable.contains(attribute)) {
            return Err(SourceError::NotCorrectable(source.id.clone()));
        }
        if changes.is_empty() {
            return Ok(Written::Applied);
        }
        let mut names = HashMap::from([("#at".to_owned(), WRITTEN_ON_CORRECTION.to_owned())]);
        let mut values = HashMap::from([(":now".to_owned(), self.now())]);
        let mut set = vec!["#at = :now".to_owned()];
        let mut removed = Vec::new();
        for (i, (attribute, value)) in changes.iter().enumerate() {
            names.insert(format!("#c{i}"), attribute.clone());
            if value.is_null() {
                removed.push(format!("#c{i}"));
            } else {
                let stored = serde_dynamo::to_attribute_value(value)
                    .map_err(|_| SourceError::UnstorableValue(source.id.clone()))?;
                values.insert(format!(":c{i}"), stored);
                set.push(format!("#c{i} = :c{i}"));
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !removed.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        self.update_theirs(source, record, expression, names, values).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persons_prefix_cannot_reach_another_persons() {
        let map = DataMap::builtin().unwrap();
        let recordings = map.source("recordings").unwrap();
        assert_eq!(person_prefix(recordings, "u-alice").unwrap(), "recordings/u-alice/");
        for bad in ["", "u-alice/../u-bob", "a/b", "{email}"] {
            assert!(person_prefix(recordings, bad).is_err(), "{bad:?}");
        }
        assert!(person_prefix(map.source("accounts").unwrap(), "x").is_err());
    }

    #[test]
    fn an_object_key_must_stay_under_the_persons_prefix() {
        let prefix = "recordings/u-alice/";
        assert!(is_under(prefix, "recordings/u-alice/a.mp4"));
        assert!(is_under(prefix, "recordings/u-alice/2026/a.mp4"));
        for outside in [
            "recordings/u-alice-2/not-alices.mp4",
            "recordings/u-alice/",
            "recordings/u-alice/../u-bob/b.mp4",
            "recordings/u-alice/./x",
            "recordings/u-bob/b.mp4",
            "u-alice/a.mp4",
        ] {
            assert!(!is_under(prefix, outside), "{outside}");
        }
    }

    #[test]
    fn errors_name_the_source_and_never_the_data() {
        let shown = [
            SourceError::NotCorrectable("accounts".into()),
            SourceError::NotThePersons("recordings".into()),
            SourceError::Storage { operation: "DeleteObject", code: "AccessDenied".into() },
        ]
        .map(|e| e.to_string());
        assert_eq!(shown[0], "source `accounts`: only the map's correctable attributes may be corrected");
        assert_eq!(shown[2], "DeleteObject failed: AccessDenied");
    }

    #[test]
    fn a_record_key_is_taken_from_the_record() {
        let map = DataMap::builtin().unwrap();
        let cdrs = map.source("call_detail_records").unwrap();
        let (table, key_name, key) = record_key(cdrs, &serde_json::json!({"call_id": "c-1"})).unwrap();
        assert_eq!(
            (table, key_name, key),
            ("call_detail_records", "call_id", AttributeValue::S("c-1".into()))
        );
        for bad in [serde_json::json!({"user_id": "u-1"}), serde_json::json!({"call_id": ["c-1"]})] {
            assert!(matches!(record_key(cdrs, &bad), Err(SourceError::Unreadable(_))), "{bad}");
        }
        assert!(matches!(
            record_key(map.source("recordings").unwrap(), &serde_json::json!({"call_id": "c-1"})),
            Err(SourceError::WrongKind(_))
        ));
    }

    #[test]
    fn a_cursor_survives_saving_with_its_key_types_and_shows_no_key_in_debug() {
        let map = DataMap::builtin().unwrap();
        let chats = map.source("chat_transcripts").unwrap();
        let last = HashMap::from([
            ("message_id".to_owned(), AttributeValue::S("m-1".into())),
            ("user_id".to_owned(), AttributeValue::S("u-secret".into())),
            ("sent".to_owned(), AttributeValue::N("1764320400".into())),
            ("bin".to_owned(), AttributeValue::B(aws_smithy_types::Blob::new(vec![1, 2]))),
        ]);
        let cursor = Cursor::after(chats, Some(last.clone())).unwrap().expect("a next page");
        let saved: HashMap<String, AttributeValue> = serde_dynamo::to_item(&cursor).unwrap();
        let loaded: Cursor = serde_dynamo::from_item(saved).unwrap();
        assert_eq!(loaded.clone().into_start_key(), last);
        assert!(!format!("{loaded:?}").contains("u-secret"));
        assert!(Cursor::after(chats, None).unwrap().is_none(), "the last page");
        assert!(Cursor::after(chats, Some(HashMap::new())).unwrap().is_none(), "the last page");
        let odd = HashMap::from([("x".to_owned(), AttributeValue::Bool(true))]);
        assert!(matches!(Cursor::after(chats, Some(odd)), Err(SourceError::Unreadable(_))));
    }

    #[test]
    fn debug_of_a_person_shows_neither_address_nor_id() {
        let p = Person {
            email: EmailAddress::parse("x.person@example.com").unwrap(),
            user_id: Some("u-xp".into()),
        };
        let shown = format!("{p:?}");
        assert!(!shown.contains("x.person@example.com"), "{shown}");
        assert!(!shown.contains("u-xp"), "{shown}");
    }
}
