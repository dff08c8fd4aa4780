//! Whole sources, a page at a time: what the replay reads, since a tombstone holds no key to look
//! a person up by. A table is scanned (strongly consistent), a bucket's source prefix listed with
//! every version, so an object whose current version is a delete marker is found too.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;

use crate::datamap::{Location, Source};
use crate::sources::{Cursor, Page, SourceError, aws_error, person_prefix};

/// One page of a bucket's keys under a source's prefix: each object key with the person's key
/// its prefix holds, and where the next page starts (`None`: this was the last).
#[derive(Clone, Debug, Default)]
pub struct KeyPage {
    pub objects: Vec<(String, String)>,
    pub next: Option<String>,
}

/// Reads whole sources of the data map (never changes them: the erasure's own port does).
#[derive(Clone, Debug)]
pub struct SourceScanner {
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    page_size: i32,
}

impl SourceScanner {
    /// At most `page_size` records or object versions a page (at least one).
    pub fn new(dynamo: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client, page_size: u32) -> SourceScanner {
        SourceScanner { dynamo, s3, page_size: i32::try_from(page_size.max(1)).unwrap_or(i32::MAX) }
    }

    /// One page of every record of a table source: the first, or the one after `cursor`.
    pub async fn records(&self, source: &Source, cursor: Option<Cursor>) -> Result<Page, SourceError> {
        let Location::Table { table, .. } = &source.location else {
            return Err(SourceError::WrongKind(source.id.clone()));
        };
        let out = self
            .dynamo
            .scan()
            .table_name(table)
            .consistent_read(true)
            .limit(self.page_size)
            .set_exclusive_start_key(cursor.map(Cursor::into_start_key))
            .send()
            .await
            .map_err(|e| aws_error(source, "Scan", &e))?;
        let records = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item: HashMap<String, AttributeValue>| {
                serde_dynamo::from_item(item).map_err(|_| SourceError::Unreadable(source.id.clone()))
            })
            .collect::<Result<Vec<Value>, SourceError>>()?;
        Ok(Page { records, next: Cursor::after(source, out.last_evaluated_key)? })
    }

    /// One page of the keys under an object source's prefix (every version and delete marker
    /// counted, each key once), after the key `after`.
    pub async fn objects(&self, source: &Source, after: Option<String>) -> Result<KeyPage, SourceError> {
        let Location::Objects { bucket, prefix, .. } = &source.location else {
            return Err(SourceError::WrongKind(source.id.clone()));
        };
        let fixed = prefix.split('{').next().unwrap_or_default();
        if fixed.is_empty() {
            return Err(SourceError::EmptyPrefix);
        }
        // A key marker without a version marker starts after every version of that key.
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(fixed)
            .set_key_marker(after)
            .max_keys(self.page_size)
            .send()
            .await
            .map_err(|e| aws_error(source, "ListObjectVersions", &e))?;
        let keys = out
            .versions()
            .iter()
            .filter_map(|v| v.key())
            .chain(out.delete_markers().iter().filter_map(|m| m.key()));
        let mut seen: Vec<&str> = keys.collect();
        seen.sort_unstable();
        seen.dedup();
        let objects = seen
            .iter()
            .filter_map(|key| person_key(source, fixed, key).map(|person| (person, (*key).to_owned())))
            .collect();
        let next = match out.is_truncated() {
            Some(true) => {
                out.next_key_marker().map(str::to_owned).or_else(|| seen.last().map(|k| (*k).to_owned()))
            }
            _ => None,
        };
        Ok(KeyPage { objects, next })
    }
}

/// The person's key an object's key holds (`recordings/{user_id}/…` → the user id), when the key
/// is under that person's prefix as the source builds it; none for anything else.
fn person_key(source: &Source, fixed: &str, key: &str) -> Option<String> {
    let segment = key.strip_prefix(fixed)?.split('/').next()?;
    let prefix = person_prefix(source, segment).ok()?;
    (key.starts_with(&prefix) && key.len() > prefix.len()).then(|| segment.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datamap::DataMap;

    #[test]
    fn an_objects_person_is_the_key_its_prefix_holds() {
        let map = DataMap::builtin().unwrap();
        let recordings = map.source("recordings").unwrap();
        let fixed = "recordings/";
        assert_eq!(person_key(recordings, fixed, "recordings/u-alice/a.mp4").as_deref(), Some("u-alice"));
        assert_eq!(
            person_key(recordings, fixed, "recordings/u-alice/2026/a.mp4").as_deref(),
            Some("u-alice")
        );
        for none in ["recordings/u-alice/", "recordings/a.mp4", "other/u-alice/a.mp4", "recordings//x"] {
            assert_eq!(person_key(recordings, fixed, none), None, "{none}");
        }
    }
}
