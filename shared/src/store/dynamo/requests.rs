//! Requests: the request item (the domain record, flattened, with its keys around it), its audit
//! events, and the per-person marker of an open request of each kind.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use super::people::{HistoryItem, no_erasure_since, suppression_sk};
use super::recipient_waits::WAIT_SK;
use super::secrets::{DOWNLOAD_SKS, secret_item, secret_sk};
use super::{
    DynamoStore, Item, build_error, key, request_pk, s, stamp, subject_pk, to_item, unless_condition_failed,
};
use crate::domain::{
    Actor, AuditEvent, Completion, Event, RequestId, RequestKind, RequestRecord, SubjectKey, Transition,
};
use crate::store::{
    Change, Created, LiveToken, Requests, StoreError, SuppressionList, TokenSlot, Verification, due_sort_key,
    submitted_event,
};

pub(super) const META: &str = "META";

/// The request as stored: the domain record's fields, plus the keys, the hash of the address
/// (what per-person items are keyed by) and the due-date index keys while it is open. A new field
/// of the record needs nothing here.
#[derive(Serialize, Deserialize)]
struct RequestItem {
    pk: String,
    sk: String,
    entity: String,
    subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_sk: Option<String>,
    #[serde(flatten)]
    record: RequestRecord,
}

impl RequestItem {
    fn of(record: &RequestRecord) -> RequestItem {
        RequestItem {
            pk: request_pk(record.id),
            sk: META.to_owned(),
            entity: "request".to_owned(),
            subject: record.email.subject_key().as_str().to_owned(),
            due_pk: due_sort_key(record).map(|_| due_partition(record)),
            due_sk: due_sort_key(record),
            record: record.clone(),
        }
    }
}

pub(super) fn due_partition(record: &RequestRecord) -> String {
    format!("OPEN#{}", record.status)
}

#[derive(Serialize, Deserialize)]
struct AuditItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    event: AuditEvent,
}

fn audit_sk(version: u32) -> String {
    format!("AUDIT#{version:06}")
}

fn audit_item(event: AuditEvent) -> AuditItem {
    AuditItem {
        pk: request_pk(event.request_id),
        sk: audit_sk(event.version),
        entity: "audit".to_owned(),
        event,
    }
}

#[derive(Serialize, Deserialize)]
struct MarkerItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
}

fn open_sk(kind: RequestKind) -> String {
    format!("OPEN#{kind}")
}

/// The request in a stream record's image, if the image is a request (not an audit event,
/// marker or ledger entry).
pub fn record_from_image(image: serde_dynamo::Item) -> Option<RequestRecord> {
    let is_request = matches!(image.get("sk"), Some(serde_dynamo::AttributeValue::S(sk)) if sk == META);
    if !is_request {
        return None;
    }
    serde_dynamo::from_item::<_, RequestItem>(image).ok().map(|item| item.record)
}

/// An update of the request item that writes exactly what differs between the two versions
/// (so attributes another writer owns, like the acknowledgement stamp, are left alone),
/// conditional on the stored status and version still being those of `current`.
fn update_between(
    table: &str,
    current: &RequestRecord,
    updated: &RequestRecord,
    extra_condition: Option<&str>,
) -> Result<Update, StoreError> {
    let before: BTreeMap<String, AttributeValue> = to_item(&RequestItem::of(current))?.into_iter().collect();
    let after: BTreeMap<String, AttributeValue> = to_item(&RequestItem::of(updated))?.into_iter().collect();
    let mut names = HashMap::from([
        ("#status".to_owned(), "status".to_owned()),
        ("#version".to_owned(), "version".to_owned()),
    ]);
    let mut values: Item = HashMap::from([
        (":from".to_owned(), s(current.status.as_str())),
        (":v".to_owned(), AttributeValue::N(current.version.to_string())),
    ]);
    let mut sets = Vec::new();
    let mut removes = Vec::new();
    for (i, (name, value)) in after.iter().enumerate() {
        if before.get(name) != Some(value) {
            names.insert(format!("#s{i}"), name.clone());
            values.insert(format!(":s{i}"), value.clone());
            sets.push(format!("#s{i} = :s{i}"));
        }
    }
    for (i, name) in before.keys().filter(|name| !after.contains_key(*name)).enumerate() {
        names.insert(format!("#r{i}"), name.clone());
        removes.push(format!("#r{i}"));
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let mut condition = "#status = :from AND #version = :v".to_owned();
    if let Some(extra) = extra_condition {
        condition.push_str(" AND ");
        condition.push_str(extra);
    }
    Update::builder()
        .table_name(table)
        .set_key(Some(key(request_pk(current.id), META)))
        .update_expression(expression)
        .condition_expression(condition)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(build_error("TransactWriteItems"))
}

impl DynamoStore {
    /// A request item exactly as `create` stores it (index keys included), for bulk loads: the
    /// benchmarks fill tables with BatchWriteItem rather than one transaction per request.
    pub fn request_item(record: &RequestRecord) -> Result<Item, StoreError> {
        to_item(&RequestItem::of(record))
    }

    fn delete_item(
        &self,
        pk: String,
        sk: &str,
        condition: Option<(&str, &str, String)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key(pk, sk)));
        if let Some((expression, placeholder, value)) = condition {
            delete =
                delete.condition_expression(expression).expression_attribute_values(placeholder, s(value));
        }
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(build_error("TransactWriteItems"))?)
            .build())
    }
}

impl Requests for DynamoStore {
    async fn create(&self, request: &RequestRecord, token: &LiveToken) -> Result<Created, StoreError> {
        let subject = request.email.subject_key();
        let marker = MarkerItem {
            pk: subject_pk(&subject),
            sk: open_sk(request.kind),
            entity: "open_marker".to_owned(),
            request_id: request.id,
        };
        let items = vec![
            self.put_new(to_item(&RequestItem::of(request))?)?,
            self.put_new(to_item(&audit_item(submitted_event(request, None)))?)?,
            self.put_new(to_item(&marker)?)?,
            self.put_new(to_item(&secret_item(
                request.id,
                TokenSlot::Requester,
                &Verification::new(token.clone()),
                1,
            ))?)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(Created::New),
            Err(StoreError::Conflict) => match self.open_request(&subject, request.kind).await? {
                Some(existing) => Ok(Created::AlreadyOpen(existing)),
                None => Err(StoreError::Conflict),
            },
            Err(err) => Err(err),
        }
    }

    async fn create_opt_out(&self, request: &RequestRecord, list: SuppressionList) -> Result<(), StoreError> {
        // The earliest moment counts: a repeat keeps the address on the list since the first.
        let suppression = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(subject_pk(&request.email.subject_key()), &suppression_sk(list))))
            .update_expression(
                "SET since = if_not_exists(since, :at), request_id = if_not_exists(request_id, :id), \
                 #list = :list, entity = :entity",
            )
            .expression_attribute_names("#list", "list")
            .expression_attribute_values(":id", s(request.id.to_string()))
            .expression_attribute_values(":at", stamp(request.received_at))
            .expression_attribute_values(":list", s(list.as_str()))
            .expression_attribute_values(":entity", s("suppression"))
            .build()
            .map_err(build_error("TransactWriteItems"))?;
        let items = vec![
            self.put_new(to_item(&RequestItem::of(request))?)?,
            self.put_new(to_item(&audit_item(submitted_event(request, Some("no_verification_required"))))?)?,
            TransactWriteItem::builder().update(suppression).build(),
        ];
        self.transact(items).await
    }

    async fn get(&self, id: RequestId) -> Result<Option<RequestRecord>, StoreError> {
        Ok(self.get_item::<RequestItem>(request_pk(id), META).await?.map(|item| item.record))
    }

    async fn open_request(
        &self,
        subject: &SubjectKey,
        kind: RequestKind,
    ) -> Result<Option<RequestId>, StoreError> {
        Ok(self.get_item::<MarkerItem>(subject_pk(subject), &open_sk(kind)).await?.map(|m| m.request_id))
    }

    async fn transition(&self, current: &RequestRecord, change: Change) -> Result<RequestRecord, StoreError> {
        let updated = current.apply(&change.transition, change.at)?;
        let audit = change.audit_event(current, updated.status);
        let mut extra_condition = None;
        let mut items = Vec::new();
        match &change.transition {
            Transition::Verify { token } => {
                items.push(self.consume_secret(current.id, TokenSlot::Requester, token)?);
                // The per-person history of verified requests: the right-to-know limit counts it,
                // and an erasure finds the person's earlier exports through it.
                items.push(self.put_new(to_item(&HistoryItem::of(current))?)?);
            }
            Transition::ConfirmRecipient { token } => {
                items.push(self.consume_secret(current.id, TokenSlot::Recipient, token)?);
                items.push(self.delete_item(request_pk(current.id), WAIT_SK, None)?);
            }
            // The confirmation links stop working with the wait they belonged to: a late
            // confirmation cannot send the data to the recipient after all.
            Transition::LapseRecipient => {
                items.push(self.delete_item(
                    request_pk(current.id),
                    secret_sk(TokenSlot::Recipient),
                    None,
                )?);
                items.push(self.delete_item(request_pk(current.id), WAIT_SK, None)?);
            }
            // Once only, whatever the caller checked.
            Transition::Extend { .. } => extra_condition = Some("attribute_not_exists(original_due_on)"),
            // Erasure wins: no export completes over an erasure of the person that began after
            // the request was verified (that erasure may have deleted the exports already).
            Transition::Complete(Completion::Exported { .. } | Completion::ExportedInParts { .. }) => {
                items.push(no_erasure_since(&self.table, current)?)
            }
            // Once only, as the extension.
            Transition::ConfirmReceipt => {
                extra_condition = Some("attribute_not_exists(receipt_confirmed_at)")
            }
            Transition::RecordDispute { .. } => extra_condition = Some("attribute_not_exists(dispute)"),
            Transition::Expire(_)
            | Transition::Triage(_)
            | Transition::Refer { .. }
            | Transition::RejectOverLimit
            | Transition::StartWork
            | Transition::Complete(_)
            | Transition::Deny { .. }
            | Transition::RejectExcessive { .. }
            | Transition::AcceptFee { .. }
            | Transition::AnnounceLift { .. } => {}
        }
        // Closing cleans up once; what follows a refusal (a dispute) finds it done, and the person
        // may since have an open request of this kind whose marker is not ours to touch.
        if !updated.status.is_open() && current.status.is_open() {
            // Verification data is kept only while it can still be used, and the person may open
            // a new request of this kind.
            items.push(self.delete_item(request_pk(current.id), secret_sk(TokenSlot::Requester), None)?);
            items.push(self.delete_item(
                subject_pk(&current.email.subject_key()),
                &open_sk(current.kind),
                Some(("attribute_not_exists(pk) OR request_id = :id", ":id", current.id.to_string())),
            )?);
        }
        items.insert(
            0,
            TransactWriteItem::builder()
                .update(update_between(&self.table, current, &updated, extra_condition)?)
                .build(),
        );
        items.push(self.put_new(to_item(&audit_item(audit))?)?);
        self.transact(items).await?;
        Ok(updated)
    }

    async fn audit_trail(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        let items: Vec<AuditItem> = self.query_prefix(request_pk(id), "AUDIT#").await?;
        Ok(items.into_iter().map(|item| item.event).collect())
    }

    async fn record_event_because(
        &self,
        request: &RequestRecord,
        event: Event,
        at: DateTime<Utc>,
        actor: Actor,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let audit = AuditEvent {
            request_id: request.id,
            version: request.version,
            event,
            from: Some(request.status),
            to: request.status,
            at,
            actor,
            reason,
        };
        let reason_key = audit.reason.clone();
        let mut item = audit_item(audit);
        item.sk = crate::store::event_sort_key(&audit_sk(request.version), event, at, reason_key.as_deref());
        self.put(&item).await
    }

    async fn mark_acknowledged(&self, id: RequestId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), META)))
            .update_expression("SET acknowledged_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(acknowledged_at)")
            .expression_attribute_values(":at", stamp(at))
            .send()
            .await;
        unless_condition_failed(result, "UpdateItem")?;
        Ok(())
    }

    async fn scrub_request(&self, id: RequestId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), META)))
            .update_expression("REMOVE #name, details, corrections, recipient")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#name", "name")
            .send()
            .await;
        unless_condition_failed(result, "UpdateItem")?;
        // A disputed correction keeps its restriction (the request's history), not the person's
        // own words; a nested REMOVE needs its parent, hence the condition and a call of its own.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), META)))
            .update_expression("REMOVE dispute.statement")
            .condition_expression("attribute_exists(dispute.statement)")
            .send()
            .await;
        unless_condition_failed(result, "UpdateItem")?;
        let secrets = [secret_sk(TokenSlot::Requester), secret_sk(TokenSlot::Recipient)];
        for sk in secrets.into_iter().chain(DOWNLOAD_SKS).chain([super::erasure::ERASURE]) {
            self.delete(request_pk(id), sk).await?;
        }
        Ok(())
    }
}
