//! Reading one person's data from the data map's sources: the port the export (and later
//! erasure) collects through, and its one AWS implementation (DynamoDB tables, S3 prefixes).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;

use crate::datamap::{DataMap, Location, Source, SubjectAttribute};
use crate::domain::EmailAddress;

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
}

pub trait PersonalData: Send + Sync {
    /// Every record of `source` that belongs to the person with this key.
    fn records(
        &self,
        source: &Source,
        key: &str,
    ) -> impl Future<Output = Result<Vec<Value>, SourceError>> + Send;

    /// Every object of `source` under the person's prefix.
    fn objects(
        &self,
        source: &Source,
        key: &str,
    ) -> impl Future<Output = Result<Vec<StoredObject>, SourceError>> + Send;
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
#[derive(Clone, Debug)]
pub struct AwsPersonalData {
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

impl AwsPersonalData {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client) -> AwsPersonalData {
        AwsPersonalData { dynamo, s3 }
    }
}

fn aws_error<E: ProvideErrorMetadata>(source: &Source, operation: &'static str, err: &E) -> SourceError {
    SourceError::Aws {
        source_id: source.id.clone(),
        operation,
        code: err.code().unwrap_or("dispatch_failure").to_owned(),
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
    async fn records(&self, source: &Source, key: &str) -> Result<Vec<Value>, SourceError> {
        let Location::Table { table, find_by, index, .. } = &source.location else {
            return Err(SourceError::WrongKind(source.id.clone()));
        };
        let attribute = match find_by {
            SubjectAttribute::Email => "email",
            SubjectAttribute::UserId => "user_id",
        };
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .dynamo
                .query()
                .table_name(table)
                .set_index_name(index.clone())
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attribute)
                .expression_attribute_values(":v", AttributeValue::S(key.to_owned()))
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error(source, "Query", &e))?;
            for item in out.items.unwrap_or_default() {
                let value: Value =
                    serde_dynamo::from_item(item).map_err(|_| SourceError::Unreadable(source.id.clone()))?;
                records.push(value);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(records),
            }
        }
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
