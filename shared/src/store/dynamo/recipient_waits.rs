//! Waits for a third-party recipient's confirmation: one item per request
//! (`REQ#<id>` / `RECIPIENT_WAIT`) carrying the sparse index's keys in a partition of its own
//! (`OPEN#recipient_wait`, sorted by the moment the wait lapses), so the daily sweep finds the
//! lapsed ones without reading the table. The transitions that end a wait delete the item in
//! their own transaction (see `requests.rs`).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DUE_INDEX, DynamoStore, aws_error, request_pk, s};
use crate::domain::RequestId;
use crate::store::{RecipientWait, RecipientWaits, StoreError, received_key};

pub(super) const WAIT_SK: &str = "RECIPIENT_WAIT";
const WAIT_PARTITION: &str = "OPEN#recipient_wait";

#[derive(Serialize, Deserialize)]
struct WaitItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
    lapses_at: DateTime<Utc>,
    due_pk: String,
    /// `<lapses_at, fixed width>#<id>`: the index sorts the waits by when they lapse.
    due_sk: String,
}

fn wait_sort_key(wait: &RecipientWait) -> String {
    format!("{}#{}", received_key(wait.lapses_at), wait.request_id)
}

/// The wait an index entry stands for, read from its sort key (the index projects no more).
fn wait_of(due_sk: &str) -> Option<RecipientWait> {
    let (at, id) = due_sk.split_once('#')?;
    let lapses_at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some(RecipientWait { request_id: RequestId::parse(id).ok()?, lapses_at })
}

impl RecipientWaits for DynamoStore {
    async fn await_recipient(&self, wait: &RecipientWait) -> Result<(), StoreError> {
        let item = WaitItem {
            pk: request_pk(wait.request_id),
            sk: WAIT_SK.to_owned(),
            entity: "recipient_wait".to_owned(),
            request_id: wait.request_id,
            lapses_at: wait.lapses_at,
            due_pk: WAIT_PARTITION.to_owned(),
            due_sk: wait_sort_key(wait),
        };
        self.put(&item).await
    }

    async fn lapsed_recipient_waits(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RecipientWait>, StoreError> {
        let mut waits = Vec::new();
        let mut start = None;
        while waits.len() < limit as usize {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_pk = :pk AND due_sk <= :upper")
                .expression_attribute_values(":pk", s(WAIT_PARTITION))
                .expression_attribute_values(":upper", s(format!("{}~", received_key(now))))
                .limit(limit.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(aws_error("Query"))?;
            for item in out.items.unwrap_or_default() {
                let Some(AttributeValue::S(due_sk)) = item.get("due_sk") else { continue };
                waits.push(wait_of(due_sk).ok_or_else(|| StoreError::Corrupt("recipient wait".into()))?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        waits.truncate(limit as usize);
        Ok(waits)
    }

    async fn end_recipient_wait(&self, id: RequestId) -> Result<(), StoreError> {
        self.delete(request_pk(id), WAIT_SK).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_read_back_from_its_sort_key_and_the_keys_sort_by_time() {
        let wait = RecipientWait {
            request_id: RequestId::generate(),
            lapses_at: DateTime::from_timestamp(1_795_860_000, 0).unwrap(),
        };
        assert_eq!(wait_of(&wait_sort_key(&wait)), Some(wait));
        let later = RecipientWait { lapses_at: wait.lapses_at + chrono::Duration::seconds(1), ..wait };
        assert!(wait_sort_key(&wait) < wait_sort_key(&later));
        assert!(wait_sort_key(&later) <= format!("{}~", received_key(later.lapses_at)));
        assert_eq!(wait_of("not a key"), None);
    }
}
