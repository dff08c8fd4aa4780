//! What is kept per person, under the hash of their address: the history of verified requests,
//! suppressions; and the mail budgets' counters, under hashed keys of their own.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, key, n, s, subject_pk, unless_condition_failed};
use crate::budget::BudgetCharge;
use crate::domain::{RequestId, RequestKind, RequestRecord, SubjectKey};
use crate::store::{
    PastRequest, People, StoreError, Suppression, SuppressionList, budget_window, received_key,
};

#[derive(Serialize, Deserialize)]
pub(super) struct HistoryItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
    kind: RequestKind,
    received_at: DateTime<Utc>,
}

impl HistoryItem {
    pub(super) fn of(request: &RequestRecord) -> HistoryItem {
        HistoryItem {
            pk: subject_pk(&request.email.subject_key()),
            sk: format!("REQ#{}#{}", received_key(request.received_at), request.id),
            entity: "history".to_owned(),
            request_id: request.id,
            kind: request.kind,
            received_at: request.received_at,
        }
    }
}

pub(super) fn suppression_sk(list: SuppressionList) -> String {
    format!("SUPPRESS#{}", list.as_str())
}

#[derive(Serialize, Deserialize)]
struct SuppressionItem {
    pk: String,
    sk: String,
    entity: String,
    list: String,
    since: DateTime<Utc>,
    request_id: RequestId,
}

impl People for DynamoStore {
    async fn suppressions(&self, subject: &SubjectKey) -> Result<Vec<Suppression>, StoreError> {
        let items: Vec<SuppressionItem> = self.query_prefix(subject_pk(subject), "SUPPRESS#").await?;
        items
            .into_iter()
            .map(|item| {
                let list = SuppressionList::parse(&item.list)
                    .ok_or_else(|| StoreError::Corrupt("suppression list".into()))?;
                Ok(Suppression { list, since: item.since, request_id: item.request_id })
            })
            .collect()
    }

    async fn history(&self, subject: &SubjectKey) -> Result<Vec<PastRequest>, StoreError> {
        let items: Vec<HistoryItem> = self.query_prefix(subject_pk(subject), "REQ#").await?;
        Ok(items
            .into_iter()
            .map(|entry| PastRequest {
                id: entry.request_id,
                kind: entry.kind,
                received_at: entry.received_at,
            })
            .collect())
    }

    async fn charge_budget(
        &self,
        charge: &BudgetCharge,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<bool, StoreError> {
        let (number, ends) = budget_window(now, window);
        // One atomic counter per window: no read, no retry, whatever the concurrency.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("BUDGET#{}", charge.key), &format!("WINDOW#{number}"))))
            .update_expression("ADD sent :one SET entity = :entity, #scope = :scope, #ttl = :ttl")
            .condition_expression("attribute_not_exists(sent) OR sent < :limit")
            .expression_attribute_names("#scope", "scope")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(charge.limit))
            .expression_attribute_values(":entity", s("mail_budget"))
            .expression_attribute_values(":scope", s(charge.scope.as_str()))
            .expression_attribute_values(":ttl", n((ends + window).timestamp()))
            .send()
            .await;
        Ok(unless_condition_failed(result, "UpdateItem")?.is_some())
    }
}
