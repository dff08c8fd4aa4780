//! Source tasks: one item per request, operation and source (`REQ#<id>` / `TASK#<op>#<source>`).
//! An unanswered task carries the sparse index's keys in a partition of its own
//! (`OPEN#source_task`, sorted by answer date), so the daily sweep finds the waiting ones without
//! reading the table; answering a task removes them.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{DUE_INDEX, DynamoStore, aws_error, request_pk, s, to_item, unless_condition_failed};
use crate::domain::{RequestId, SourceOperation, SourceTask};
use crate::store::{SourceTasks, StoreError};

const TASK_PARTITION: &str = "OPEN#source_task";

fn task_sk(operation: SourceOperation, source: &str) -> String {
    format!("TASK#{operation}#{source}")
}

#[derive(Serialize, Deserialize)]
struct TaskItem {
    pk: String,
    sk: String,
    entity: String,
    /// Top-level copies: the request id for the index's projection, the version for the
    /// conditional write.
    request_id: RequestId,
    version: u32,
    task: SourceTask,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_sk: Option<String>,
}

impl TaskItem {
    fn of(task: &SourceTask) -> TaskItem {
        let waiting = !task.state.is_answered();
        TaskItem {
            pk: request_pk(task.request_id),
            sk: task_sk(task.operation, &task.source),
            entity: "source_task".to_owned(),
            request_id: task.request_id,
            version: task.version,
            task: task.clone(),
            due_pk: waiting.then(|| TASK_PARTITION.to_owned()),
            due_sk: waiting.then(|| {
                format!("{}#{}#{}#{}", task.answer_by, task.request_id, task.operation, task.source)
            }),
        }
    }
}

/// The task a stream record carries, if it is a task item.
pub fn task_from_image(image: serde_dynamo::Item) -> Option<SourceTask> {
    let is_task =
        matches!(image.get("sk"), Some(serde_dynamo::AttributeValue::S(sk)) if sk.starts_with("TASK#"));
    if !is_task {
        return None;
    }
    serde_dynamo::from_item::<_, TaskItem>(image).ok().map(|item| item.task)
}

impl SourceTasks for DynamoStore {
    async fn open_task(&self, task: &SourceTask) -> Result<SourceTask, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&TaskItem::of(task))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match unless_condition_failed(result, "PutItem")? {
            Some(_) => Ok(task.clone()),
            None => {
                self.task(task.request_id, task.operation, &task.source).await?.ok_or(StoreError::Conflict)
            }
        }
    }

    async fn task(
        &self,
        id: RequestId,
        operation: SourceOperation,
        source: &str,
    ) -> Result<Option<SourceTask>, StoreError> {
        Ok(self
            .get_item::<TaskItem>(request_pk(id), &task_sk(operation, source))
            .await?
            .map(|item| item.task))
    }

    async fn tasks(&self, id: RequestId) -> Result<Vec<SourceTask>, StoreError> {
        let items: Vec<TaskItem> = self.query_prefix(request_pk(id), "TASK#").await?;
        Ok(items.into_iter().map(|item| item.task).collect())
    }

    async fn update_task(&self, next: &SourceTask) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&TaskItem::of(next))?))
            .condition_expression("#v = :before")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(
                ":before",
                AttributeValue::N(next.version.saturating_sub(1).to_string()),
            )
            .send()
            .await;
        match unless_condition_failed(result, "PutItem")? {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict),
        }
    }

    async fn waiting_tasks(&self, limit: u32) -> Result<Vec<SourceTask>, StoreError> {
        let mut tasks = Vec::new();
        let mut start = None;
        while tasks.len() < limit as usize {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_pk = :pk")
                .expression_attribute_values(":pk", s(TASK_PARTITION))
                .limit(limit.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(aws_error("Query"))?;
            for item in out.items.unwrap_or_default() {
                // The index holds the keys; the task itself is read from the table.
                let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                    (item.get("pk"), item.get("sk"))
                else {
                    continue;
                };
                if let Some(task) = self.get_item::<TaskItem>(pk.clone(), sk).await? {
                    tasks.push(task.task);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        tasks.truncate(limit as usize);
        Ok(tasks.into_iter().filter(|t| !t.state.is_answered()).collect())
    }

    async fn retire_task(&self, task: &SourceTask) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(super::key(request_pk(task.request_id), &task_sk(task.operation, &task.source))))
            .update_expression("REMOVE due_pk, due_sk")
            .send()
            .await
            .map_err(aws_error("UpdateItem"))?;
        Ok(())
    }
}
