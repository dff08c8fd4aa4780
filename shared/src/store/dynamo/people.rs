//! What is kept per person, under the hash of their address: the history of verified requests,
//! suppressions, the mail suppression (bounces and complaints) and the mark of an erasure that
//! began; and the mail budgets' counters, under hashed keys of their own.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, build_error, key, n, s, stamp, subject_pk, unless_condition_failed};
use crate::budget::BudgetCharge;
use crate::domain::{RequestId, RequestKind, RequestRecord, SubjectKey};
use crate::store::{
    ErasureMark, MailSuppression, PastRequest, People, StoreError, Suppression, SuppressionCause,
    SuppressionList, budget_window, erasure_instant, export_asked_at, received_key,
};

/// The sort key of the person's erasure mark.
const ERASURE_MARK: &str = "ERASURE";
/// The sort key of the person's mail suppression (not under `SUPPRESS#`: that prefix is the
/// lists other systems ask about).
const MAIL_SUPPRESSION: &str = "MAIL#suppressed";

#[derive(Serialize, Deserialize)]
struct MailSuppressionItem {
    cause: String,
    since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
}

#[derive(Serialize, Deserialize)]
struct ErasureMarkItem {
    request_id: RequestId,
    started_at: DateTime<Utc>,
}

/// The condition an export's completion carries in its transaction: no erasure of the person
/// began deleting exports at or after the request was verified (see [`ErasureMark::overtakes`]).
pub(super) fn no_erasure_since(
    table: &str,
    request: &RequestRecord,
) -> Result<TransactWriteItem, StoreError> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key(subject_pk(&request.email.subject_key()), ERASURE_MARK)))
        .condition_expression("attribute_not_exists(started_us) OR started_us < :asked")
        .expression_attribute_values(":asked", n(erasure_instant(export_asked_at(request))))
        .build()
        .map_err(build_error("TransactWriteItems"))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

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

    async fn erasure_mark(&self, subject: &SubjectKey) -> Result<Option<ErasureMark>, StoreError> {
        let item = self.get_item::<ErasureMarkItem>(subject_pk(subject), ERASURE_MARK).await?;
        Ok(item.map(|m| ErasureMark { request_id: m.request_id, started_at: m.started_at }))
    }

    async fn mark_erasure_started(
        &self,
        subject: &SubjectKey,
        request_id: RequestId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // `started_us` is what conditions compare; `started_at` is what people read.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(subject_pk(subject), ERASURE_MARK)))
            .update_expression("SET started_us = :us, started_at = :at, request_id = :id, entity = :entity")
            .condition_expression("attribute_not_exists(started_us) OR started_us <= :us")
            .expression_attribute_values(":us", n(erasure_instant(at)))
            .expression_attribute_values(":at", stamp(at))
            .expression_attribute_values(":id", s(request_id.to_string()))
            .expression_attribute_values(":entity", s("erasure_mark"))
            .send()
            .await;
        // A failed condition: a later start is stored already, and it stands.
        unless_condition_failed(result, "UpdateItem")?;
        Ok(())
    }

    async fn mail_suppression(&self, subject: &SubjectKey) -> Result<Option<MailSuppression>, StoreError> {
        let Some(item) = self.get_item::<MailSuppressionItem>(subject_pk(subject), MAIL_SUPPRESSION).await?
        else {
            return Ok(None);
        };
        let cause = SuppressionCause::parse(&item.cause)
            .ok_or_else(|| StoreError::Corrupt("mail suppression".into()))?;
        Ok(Some(MailSuppression { cause, since: item.since, request_id: item.request_id }))
    }

    async fn suppress_mail(
        &self,
        subject: &SubjectKey,
        suppression: &MailSuppression,
    ) -> Result<(), StoreError> {
        // The first cause and moment stand; a redelivered event or a later bounce changes nothing.
        let mut expression =
            "SET entity = :entity, cause = if_not_exists(cause, :cause), since = if_not_exists(since, :since)"
                .to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(subject_pk(subject), MAIL_SUPPRESSION)))
            .expression_attribute_values(":entity", s("mail_suppression"))
            .expression_attribute_values(":cause", s(suppression.cause.as_str()))
            .expression_attribute_values(":since", stamp(suppression.since));
        if let Some(id) = suppression.request_id {
            expression.push_str(", request_id = if_not_exists(request_id, :id)");
            update = update.expression_attribute_values(":id", s(id.to_string()));
        }
        update = update.update_expression(expression);
        update.send().await.map_err(super::aws_error("UpdateItem"))?;
        Ok(())
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

    async fn refund_budget(
        &self,
        charge: &BudgetCharge,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<(), StoreError> {
        let (number, _) = budget_window(now, window);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("BUDGET#{}", charge.key), &format!("WINDOW#{number}"))))
            .update_expression("ADD sent :minus_one")
            .condition_expression("sent > :zero")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        unless_condition_failed(result, "UpdateItem")?;
        Ok(())
    }
}
