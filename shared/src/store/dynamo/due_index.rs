//! The sparse `by_due_date` index: only open requests carry its keys (see the module above).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::HashMap;

use super::requests::META;
use super::{DynamoStore, aws_error, from_item, request_pk, s};
use crate::domain::{Language, Regime, RequestId, RequestKind, Status};
use crate::store::{
    DueIndex, OpenPage, OpenQuery, OpenRequest, PageKey, StoreError, page_key_id, upper_sort_key,
};

pub const DUE_INDEX: &str = "by_due_date";

/// An open request as the index projects it.
#[derive(Deserialize)]
struct OpenItem {
    due_sk: String,
    request_id: RequestId,
    status: Status,
    version: u32,
    kind: RequestKind,
    regime: Regime,
    language: Language,
    received_at: DateTime<Utc>,
    due_on: NaiveDate,
    #[serde(default)]
    original_due_on: Option<NaiveDate>,
    #[serde(default)]
    acknowledge_by: Option<NaiveDate>,
    #[serde(default)]
    acknowledged_at: Option<DateTime<Utc>>,
}

impl DueIndex for DynamoStore {
    async fn open_requests(&self, query: &OpenQuery) -> Result<OpenPage, StoreError> {
        if !query.status.is_open() {
            return Ok(OpenPage::default());
        }
        let partition = format!("OPEN#{}", query.status);
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .expression_attribute_values(":pk", s(partition.clone()))
            .limit(query.limit.clamp(1, 1000) as i32);
        request = match query.until {
            Some(bound) => request
                .key_condition_expression("due_pk = :pk AND due_sk <= :upper")
                .expression_attribute_values(":upper", s(upper_sort_key(bound))),
            None => request.key_condition_expression("due_pk = :pk"),
        };
        if let Some(after) = &query.after {
            let id = page_key_id(after, query.status)?;
            request = request.set_exclusive_start_key(Some(HashMap::from([
                ("due_pk".to_owned(), s(partition.clone())),
                ("due_sk".to_owned(), s(after.sort_key.clone())),
                ("pk".to_owned(), s(request_pk(id))),
                ("sk".to_owned(), s(META)),
            ])));
        }
        let out = request.send().await.map_err(aws_error("Query"))?;
        let mut page = OpenPage { items_read: out.scanned_count.max(0) as u64, ..OpenPage::default() };
        for item in out.items.unwrap_or_default() {
            let open: OpenItem = from_item(item)?;
            page.requests.push(OpenRequest {
                id: open.request_id,
                status: open.status,
                version: open.version,
                kind: open.kind,
                regime: open.regime,
                language: open.language,
                received_at: open.received_at,
                due_on: open.due_on,
                original_due_on: open.original_due_on,
                acknowledge_by: open.acknowledge_by,
                acknowledged_at: open.acknowledged_at,
            });
            page.next = Some(PageKey { status: query.status, sort_key: open.due_sk });
        }
        if out.last_evaluated_key.is_none_or(|k| k.is_empty()) {
            page.next = None;
        }
        Ok(page)
    }
}
