//! The store on one DynamoDB table, one file per item family. Layout (pk / sk):
//!
//! | item                | pk                | sk                      | family      |
//! |---------------------|-------------------|-------------------------|-------------|
//! | request             | `REQ#<id>`        | `META`                  | requests    |
//! | audit event         | `REQ#<id>`        | `AUDIT#<version:06>`    | requests    |
//! | open-request marker | `SUBJ#<subject>`  | `OPEN#<kind>`           | requests    |
//! | verification secret | `REQ#<id>`        | `VERIFY`                | secrets     |
//! | recipient secret    | `REQ#<id>`        | `VERIFY#recipient`      | secrets     |
//! | download token(s)   | `REQ#<id>`        | `DOWNLOAD`, `DOWNLOAD#recipient` | secrets |
//! | effect ledger entry | `REQ#<id>`        | `EFFECT#<effect>`       | ledger      |
//! | erasure progress    | `REQ#<id>`        | `ERASURE`               | erasure     |
//! | verified request    | `SUBJ#<subject>`  | `REQ#<received>#<id>`   | people      |
//! | suppression         | `SUBJ#<subject>`  | `SUPPRESS#<list>`       | people      |
//! | mail suppression    | `SUBJ#<subject>`  | `MAIL#suppressed`       | people      |
//! | mail rate window    | `SUBJ#<subject>`  | `RATE#verification`     | people      |
//! | erasure mark        | `SUBJ#<subject>`  | `ERASURE`               | people      |
//! | source task         | `REQ#<id>`        | `TASK#<op>#<source>`    | tasks       |
//! | recipient wait      | `REQ#<id>`        | `RECIPIENT_WAIT`        | recipient_waits |
//! | record of a request | `RECORD#<yyyy>`   | `<received_at>#<id>`    | records     |
//!
//! Open requests carry `due_pk`/`due_sk`, the keys of the sparse `by_due_date` index: one
//! partition per open status (`OPEN#<status>`), sorted by receipt time while pending verification
//! (the reminders count from it) and by due date after. Closing a request removes the keys, so the
//! index only ever holds open requests and a sweep never reads a closed one.

mod due_index;
mod erasure;
mod ledger;
mod people;
mod recipient_waits;
mod records;
mod requests;
mod secrets;
mod tasks;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

use super::StoreError;
use crate::aws::{error_code, has_code};
use crate::domain::{RequestId, SubjectKey};

pub use due_index::DUE_INDEX;
pub use requests::record_from_image;
pub use tasks::task_from_image;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn request_pk(id: RequestId) -> String {
    format!("REQ#{id}")
}

fn subject_pk(subject: &SubjectKey) -> String {
    format!("SUBJ#{}", subject.as_str())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A time as the items store it (what serde writes for a `DateTime<Utc>`).
fn stamp(at: DateTime<Utc>) -> AttributeValue {
    s(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|_| StoreError::Corrupt(std::any::type_name::<T>().to_owned()))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|_| StoreError::Corrupt(std::any::type_name::<T>().to_owned()))
}

fn aws_error<E: ProvideErrorMetadata, R>(
    operation: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> StoreError {
    move |err| StoreError::Aws { operation, code: error_code(&err) }
}

fn build_error(operation: &'static str) -> impl FnOnce(aws_sdk_dynamodb::error::BuildError) -> StoreError {
    move |_| StoreError::Aws { operation, code: "build_error".to_owned() }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    has_code(err, &["ConditionalCheckFailedException"])
}

/// Whether a transaction was cancelled because one of its conditions did not hold: another
/// writer came first, an answer. Cancelled only for a conflict with a transaction in flight
/// (`TransactionConflict`) or for throughput, it is a transient failure the SDK does not retry:
/// taken for a failed condition, a verification would be refused with a valid token and a
/// transition reported as overtaken by a write that never happened.
fn cancelled_by_condition<R>(err: &SdkError<TransactWriteItemsError, R>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancelled.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

/// The outcome of a conditional write whose failed condition is an answer, not an error:
/// `Some` with the output when it was written, `None` when the condition did not hold.
fn unless_condition_failed<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
    operation: &'static str,
) -> Result<Option<T>, StoreError> {
    match result {
        Ok(out) => Ok(Some(out)),
        Err(err) if is_condition_failure(&err) => Ok(None),
        Err(err) => Err(aws_error(operation)(err)),
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error("TransactWriteItems"))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(err) if cancelled_by_condition(&err) => Err(StoreError::Conflict),
            Err(err) => Err(aws_error("TransactWriteItems")(err)),
        }
    }

    /// An unconditional write of one item.
    async fn put<T: Serialize>(&self, item: &T) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(item)?))
            .send()
            .await
            .map_err(aws_error("PutItem"))?;
        Ok(())
    }

    async fn delete(&self, pk: String, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .map_err(aws_error("DeleteItem"))?;
        Ok(())
    }

    /// Every item of one partition whose sort key starts with `prefix`, strongly consistent.
    async fn query_prefix<T: DeserializeOwned>(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(aws_error("Query"))?;
            for item in out.items.unwrap_or_default() {
                items.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn get_item<T: DeserializeOwned>(&self, pk: String, sk: &str) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_error("GetItem"))?;
        out.item.map(from_item).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::body::SdkBody;

    fn cancelled(codes: &[&str]) -> SdkError<TransactWriteItemsError, HttpResponse> {
        let reasons = codes.iter().map(|code| CancellationReason::builder().code(*code).build()).collect();
        let error = TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons)).build();
        let raw = HttpResponse::new(400.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(TransactWriteItemsError::TransactionCanceledException(error), raw)
    }

    #[test]
    fn a_transaction_cancelled_by_a_failed_condition_is_another_writers_doing() {
        assert!(cancelled_by_condition(&cancelled(&["None", "ConditionalCheckFailed"])));
        assert!(cancelled_by_condition(&cancelled(&["ConditionalCheckFailed", "TransactionConflict"])));
    }

    #[test]
    fn a_transaction_cancelled_for_a_conflict_or_throughput_is_a_transient_failure_not_an_answer() {
        assert!(!cancelled_by_condition(&cancelled(&["None", "TransactionConflict"])));
        assert!(!cancelled_by_condition(&cancelled(&["ThrottlingError", "None"])));
        assert!(!cancelled_by_condition(&cancelled(&["ProvisionedThroughputExceeded"])));
    }
}
