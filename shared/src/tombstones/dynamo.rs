//! The tombstones table (`TombstonesTable`; pk / sk, TTL `ttl`, no stream), which a restore never
//! rolls back. Layout:
//!
//! | item       | pk                  | sk          | kept                          |
//! |------------|---------------------|-------------|-------------------------------|
//! | tombstone  | `TOMB#<request id>` | `TOMBSTONE` | until `ttl` (the retention)   |
//! | replay run | `REPLAY#<run id>`   | `RUN`       | for good: the staff's receipt |
//!
//! The staff API may only touch `REPLAY#` items (an IAM condition on `dynamodb:LeadingKeys`).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::{IdentifierHash, ReplayRun, ReplayRunId, Tombstone};
use crate::aws::{error_code, has_code};
use crate::domain::RequestId;
use crate::store::StoreError;

const TOMBSTONE: &str = "TOMBSTONE";
const RUN: &str = "RUN";

#[derive(Clone, Debug)]
pub struct DynamoTombstones {
    client: Client,
    table: String,
}

#[derive(Serialize, Deserialize)]
struct TombstoneItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
    erased_at: DateTime<Utc>,
    /// `erased_at` in microseconds, to compare as a number (RFC 3339 text does not sort as time).
    erased_us: i64,
    email_hash: IdentifierHash,
    #[serde(default)]
    user_id_hashes: Vec<IdentifierHash>,
    requests: Vec<RequestId>,
    ttl: i64,
}

#[derive(Serialize, Deserialize)]
struct RunItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    run: ReplayRun,
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn aws(operation: &'static str) -> impl Fn(String) -> StoreError {
    move |code| StoreError::Aws { operation, code }
}

fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(value).map_err(|_| StoreError::Corrupt(std::any::type_name::<T>().to_owned()))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: HashMap<String, AttributeValue>) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|_| StoreError::Corrupt(std::any::type_name::<T>().to_owned()))
}

fn run_pk(id: ReplayRunId) -> String {
    format!("REPLAY#{id}")
}

impl DynamoTombstones {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoTombstones {
        DynamoTombstones { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the tombstone of an erasure unless it has one: the first write stands, so a
    /// redelivered erasure keeps the moment it first completed at.
    pub async fn put_tombstone(&self, tombstone: &Tombstone) -> Result<(), StoreError> {
        let item = TombstoneItem {
            pk: format!("TOMB#{}", tombstone.request_id),
            sk: TOMBSTONE.to_owned(),
            entity: "tombstone".to_owned(),
            request_id: tombstone.request_id,
            erased_at: tombstone.erased_at,
            erased_us: tombstone.erased_at.timestamp_micros(),
            email_hash: tombstone.email.clone(),
            user_id_hashes: tombstone.user_ids.clone(),
            requests: tombstone.requests.clone(),
            ttl: tombstone.expires_at.timestamp(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if has_code(&err, &["ConditionalCheckFailedException"]) => Ok(()),
            Err(err) => Err(aws("PutItem")(error_code(&err))),
        }
    }

    /// Every tombstone of an erasure completed from `from` to `until` (both included), in the
    /// order they were written. The table holds a retention's worth of erasures, read once per
    /// replay invocation.
    pub async fn tombstones_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Tombstone>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#entity = :tombstone AND #at BETWEEN :from AND :until")
                .expression_attribute_names("#entity", "entity")
                .expression_attribute_names("#at", "erased_us")
                .expression_attribute_values(":tombstone", AttributeValue::S("tombstone".into()))
                .expression_attribute_values(":from", AttributeValue::N(from.timestamp_micros().to_string()))
                .expression_attribute_values(
                    ":until",
                    AttributeValue::N(until.timestamp_micros().to_string()),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws("Scan")(error_code(&e)))?;
            for item in out.items.unwrap_or_default() {
                let item: TombstoneItem = from_item(item)?;
                found.push(Tombstone {
                    request_id: item.request_id,
                    erased_at: item.erased_at,
                    email: item.email_hash,
                    user_ids: item.user_id_hashes,
                    requests: item.requests,
                    expires_at: DateTime::from_timestamp(item.ttl, 0).unwrap_or(item.erased_at),
                });
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        found.sort_by_key(|t| (t.erased_at, t.request_id.to_string()));
        Ok(found)
    }

    /// Writes a run staff asked for; false if one of that id exists (never overwritten).
    pub async fn start_replay(&self, run: &ReplayRun) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&self.run_item(run))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if has_code(&err, &["ConditionalCheckFailedException"]) => Ok(false),
            Err(err) => Err(aws("PutItem")(error_code(&err))),
        }
    }

    pub async fn replay(&self, id: ReplayRunId) -> Result<Option<ReplayRun>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(run_pk(id), RUN)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws("GetItem")(error_code(&e)))?;
        Ok(out.item.map(from_item::<RunItem>).transpose()?.map(|item| item.run))
    }

    /// Saves a run's progress and receipt (its one writer is the run's job, one part at a time).
    pub async fn save_replay(&self, run: &ReplayRun) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&self.run_item(run))?))
            .send()
            .await
            .map_err(|e| aws("PutItem")(error_code(&e)))?;
        Ok(())
    }

    fn run_item(&self, run: &ReplayRun) -> RunItem {
        RunItem { pk: run_pk(run.id), sk: RUN.to_owned(), entity: "replay".to_owned(), run: run.clone() }
    }
}
