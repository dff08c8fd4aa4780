//! The request store on one DynamoDB table. Layout (pk / sk):
//!
//! | item                | pk                | sk                      |
//! |---------------------|-------------------|-------------------------|
//! | request             | `REQ#<id>`        | `META`                  |
//! | audit event         | `REQ#<id>`        | `AUDIT#<version:06>`    |
//! | verification secret | `REQ#<id>`        | `VERIFY`                |
//! | recipient secret    | `REQ#<id>`        | `VERIFY#recipient`      |
//! | download token(s)   | `REQ#<id>`        | `DOWNLOAD`, `DOWNLOAD#recipient` |
//! | effect ledger entry | `REQ#<id>`        | `EFFECT#<effect>`       |
//! | erasure progress    | `REQ#<id>`        | `ERASURE`               |
//! | open-request marker | `SUBJ#<subject>`  | `OPEN#<kind>`           |
//! | mail rate window    | `SUBJ#<subject>`  | `RATE#verification`     |
//! | verified request    | `SUBJ#<subject>`  | `REQ#<received>#<id>`   |
//! | suppression         | `SUBJ#<subject>`  | `SUPPRESS#<list>`       |
//!
//! Open requests carry `due_pk`/`due_sk`, the keys of the sparse `by_due_date` index: one
//! partition per open status (`OPEN#<status>`), sorted by receipt time while pending verification
//! (the reminders count from it) and by due date after. Closing a request removes the keys, so the
//! index only ever holds open requests and a sweep never reads a closed one.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::{
    Bound, Change, Claim, Created, ErasureProgress, OpenPage, OpenQuery, OpenRequest, PageKey, PastRequest,
    RequestStore, StoreError, Suppression, SuppressionList, TokenSlot, Verification,
};
use crate::domain::{
    Actor, AuditEvent, CostEstimate, EmailAddress, ErasedSource, ErasureReceipt, Event, Language, Regime,
    Region, RequestId, RequestKind, RequestRecord, Status, SubjectKey, TokenHash, Triage,
};

type Item = HashMap<String, AttributeValue>;

pub const DUE_INDEX: &str = "by_due_date";
const MAX_SLOT_RETRIES: usize = 4;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

#[derive(Serialize, Deserialize)]
struct RequestItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
    status: Status,
    version: u32,
    kind: RequestKind,
    region: Region,
    regime: Regime,
    language: Language,
    email: EmailAddress,
    subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<String>,
    received_at: DateTime<Utc>,
    received_on: NaiveDate,
    due_on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acknowledge_by: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verified_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    original_due_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extension_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    closed_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost_estimate: Option<CostEstimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    triage: Option<Triage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    referral_contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipient: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipient_confirmed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    corrections: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receipt: Option<ErasureReceipt>,
    updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_sk: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct AuditItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    event: AuditEvent,
}

#[derive(Serialize, Deserialize)]
struct VerificationItem {
    pk: String,
    sk: String,
    entity: String,
    token_hash: String,
    expires_at: DateTime<Utc>,
    wrong_attempts: u32,
    /// DynamoDB TTL (epoch seconds): the secret is swept even if nothing else deletes it.
    ttl: i64,
}

#[derive(Serialize, Deserialize)]
struct MarkerItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
}

#[derive(Serialize, Deserialize)]
struct RateItem {
    pk: String,
    sk: String,
    entity: String,
    /// Epoch seconds of the mails sent inside the window.
    sent: Vec<i64>,
    rev: u64,
    ttl: i64,
}

fn request_pk(id: RequestId) -> String {
    format!("REQ#{id}")
}

fn subject_pk(subject: &SubjectKey) -> String {
    format!("SUBJ#{}", subject.as_str())
}

fn audit_sk(version: u32) -> String {
    format!("AUDIT#{version:06}")
}

fn open_sk(kind: RequestKind) -> String {
    format!("OPEN#{kind}")
}

const META: &str = "META";
const VERIFY: &str = "VERIFY";
const ERASURE: &str = "ERASURE";

fn secret_sk(slot: TokenSlot) -> &'static str {
    match slot {
        TokenSlot::Requester => VERIFY,
        TokenSlot::Recipient => "VERIFY#recipient",
    }
}

fn download_sk(slot: TokenSlot) -> &'static str {
    match slot {
        TokenSlot::Requester => DOWNLOAD,
        TokenSlot::Recipient => "DOWNLOAD#recipient",
    }
}

fn history_sk(received_at: DateTime<Utc>, id: RequestId) -> String {
    format!("REQ#{}#{id}", received_key(received_at))
}

fn suppression_sk(list: SuppressionList) -> String {
    format!("SUPPRESS#{}", list.as_str())
}

#[derive(Serialize, Deserialize)]
struct HistoryItem {
    pk: String,
    sk: String,
    entity: String,
    request_id: RequestId,
    kind: RequestKind,
    received_at: DateTime<Utc>,
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

#[derive(Serialize, Deserialize)]
struct ProgressItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    sources: Vec<ErasedSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exports_deleted: Option<u32>,
    /// A safety net: progress of a job that never finishes is swept after 30 days.
    ttl: i64,
}
const RATE_VERIFICATION: &str = "RATE#verification";
const DOWNLOAD: &str = "DOWNLOAD";

#[derive(Serialize, Deserialize)]
struct DownloadItem {
    pk: String,
    sk: String,
    entity: String,
    token_hash: String,
    expires_at: DateTime<Utc>,
    ttl: i64,
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

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|_| StoreError::Corrupt(std::any::type_name::<T>().to_owned()))
}

fn attribute<T: Serialize>(value: &T, name: &str) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|_| StoreError::Corrupt(name.to_owned()))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|_| StoreError::Corrupt(std::any::type_name::<T>().to_owned()))
}

/// Keeps the operation and the service's error code; drops the message.
fn aws_error<E: ProvideErrorMetadata, R>(
    operation: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> StoreError {
    move |err| {
        let code = match &err {
            SdkError::ServiceError(service) => {
                service.err().code().unwrap_or("unknown_service_error").to_owned()
            }
            SdkError::TimeoutError(_) => "timeout".to_owned(),
            SdkError::DispatchFailure(_) => "dispatch_failure".to_owned(),
            SdkError::ResponseError(_) => "response_error".to_owned(),
            SdkError::ConstructionFailure(_) => "construction_failure".to_owned(),
            _ => "unknown".to_owned(),
        };
        StoreError::Aws { operation, code }
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

fn build_error(operation: &'static str) -> impl FnOnce(aws_sdk_dynamodb::error::BuildError) -> StoreError {
    move |_| StoreError::Aws { operation, code: "build_error".to_owned() }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err.as_service_error().and_then(|e| e.code()),
        Some("ConditionalCheckFailedException" | "TransactionCanceledException")
    )
}

impl RequestItem {
    fn from_record(r: &RequestRecord) -> RequestItem {
        RequestItem {
            pk: request_pk(r.id),
            sk: META.to_owned(),
            entity: "request".to_owned(),
            request_id: r.id,
            status: r.status,
            version: r.version,
            kind: r.kind,
            region: r.region.clone(),
            regime: r.regime,
            language: r.language,
            email: r.email.clone(),
            subject: r.email.subject_key().as_str().to_owned(),
            name: r.name.clone(),
            details: r.details.clone(),
            received_at: r.received_at,
            received_on: r.received_on,
            due_on: r.due_on,
            acknowledge_by: r.acknowledge_by,
            acknowledged_at: r.acknowledged_at,
            verified_at: r.verified_at,
            original_due_on: r.original_due_on,
            extension_reason: r.extension_reason.clone(),
            closed_reason: r.closed_reason.clone(),
            cost_estimate: r.cost_estimate.clone(),
            triage: r.triage.clone(),
            referral_contact: r.referral_contact.clone(),
            recipient: r.recipient.clone(),
            recipient_confirmed_at: r.recipient_confirmed_at,
            corrections: r.corrections.clone(),
            receipt: r.receipt.clone(),
            updated_at: r.updated_at,
            due_pk: due_keys(r).map(|(pk, _)| pk),
            due_sk: due_keys(r).map(|(_, sk)| sk),
        }
    }

    fn into_record(self) -> RequestRecord {
        RequestRecord {
            id: self.request_id,
            status: self.status,
            version: self.version,
            kind: self.kind,
            region: self.region,
            regime: self.regime,
            language: self.language,
            email: self.email,
            name: self.name,
            details: self.details,
            received_at: self.received_at,
            received_on: self.received_on,
            due_on: self.due_on,
            acknowledge_by: self.acknowledge_by,
            acknowledged_at: self.acknowledged_at,
            verified_at: self.verified_at,
            original_due_on: self.original_due_on,
            extension_reason: self.extension_reason,
            closed_reason: self.closed_reason,
            cost_estimate: self.cost_estimate,
            triage: self.triage,
            referral_contact: self.referral_contact,
            recipient: self.recipient,
            recipient_confirmed_at: self.recipient_confirmed_at,
            corrections: self.corrections,
            receipt: self.receipt,
            updated_at: self.updated_at,
        }
    }
}

fn due_partition(status: Status) -> String {
    format!("OPEN#{status}")
}

/// Fixed width, so the index sorts receipt times as text.
fn received_key(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The request's keys in the due-date index, or none once it is closed.
fn due_keys(r: &RequestRecord) -> Option<(String, String)> {
    match r.status {
        Status::PendingVerification => {
            Some((due_partition(r.status), format!("{}#{}", received_key(r.received_at), r.id)))
        }
        Status::Verified | Status::InProgress => {
            Some((due_partition(r.status), format!("{}#{}", r.due_on, r.id)))
        }
        _ => None,
    }
}

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

fn verification_item(id: RequestId, v: &Verification) -> VerificationItem {
    VerificationItem {
        pk: request_pk(id),
        sk: VERIFY.to_owned(),
        entity: "verification".to_owned(),
        token_hash: v.token_hash.to_hex(),
        expires_at: v.expires_at,
        wrong_attempts: v.wrong_attempts,
        ttl: v.expires_at.timestamp(),
    }
}

fn audit_item(event: AuditEvent) -> AuditItem {
    AuditItem {
        pk: request_pk(event.request_id),
        sk: audit_sk(event.version),
        entity: "audit".to_owned(),
        event,
    }
}

/// The request in a stream record's image, if the image is a request (not an audit event,
/// marker or ledger entry).
pub fn record_from_image(image: HashMap<String, serde_dynamo::AttributeValue>) -> Option<RequestRecord> {
    let item: serde_dynamo::Item = image.into();
    let is_request = matches!(item.get("sk"), Some(serde_dynamo::AttributeValue::S(sk)) if sk == META);
    if !is_request {
        return None;
    }
    serde_dynamo::from_item::<_, RequestItem>(item).ok().map(RequestItem::into_record)
}

#[derive(Serialize, Deserialize)]
struct EffectItem {
    pk: String,
    sk: String,
    entity: String,
    state: String,
    /// Epoch seconds until which a claim is held; gone once the effect is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claimed_until: Option<i64>,
}

fn effect_sk(effect: &str) -> String {
    format!("EFFECT#{effect}")
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// A request exactly as `create` stores it (index keys included), for bulk loads: the
    /// benchmarks fill tables with BatchWriteItem rather than one transaction per request.
    pub fn request_item(record: &RequestRecord) -> Result<Item, StoreError> {
        to_item(&RequestItem::from_record(record))
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

    /// Every item of one partition whose sort key starts with `prefix`, strongly consistent.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
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
            items.extend(out.items.unwrap_or_default());
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

impl RequestStore for DynamoStore {
    async fn create(
        &self,
        request: &RequestRecord,
        verification: &Verification,
    ) -> Result<Created, StoreError> {
        let subject = request.email.subject_key();
        let submitted = AuditEvent {
            request_id: request.id,
            version: request.version,
            event: Event::Submitted,
            from: None,
            to: request.status,
            at: request.received_at,
            actor: crate::domain::Actor::Requester,
            reason: None,
        };
        let marker = MarkerItem {
            pk: subject_pk(&subject),
            sk: open_sk(request.kind),
            entity: "open_marker".to_owned(),
            request_id: request.id,
        };
        let items = vec![
            self.put_new(to_item(&RequestItem::from_record(request))?)?,
            self.put_new(to_item(&audit_item(submitted))?)?,
            self.put_new(to_item(&marker)?)?,
            self.put_new(to_item(&verification_item(request.id, verification))?)?,
        ];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(Created::New),
            Err(err) if is_condition_failure(&err) => {
                match self.open_request(&subject, request.kind).await? {
                    Some(existing) => Ok(Created::AlreadyOpen(existing)),
                    None => Err(StoreError::Conflict),
                }
            }
            Err(err) => Err(aws_error("TransactWriteItems")(err)),
        }
    }

    async fn get(&self, id: RequestId) -> Result<Option<RequestRecord>, StoreError> {
        Ok(self.get_item::<RequestItem>(request_pk(id), META).await?.map(RequestItem::into_record))
    }

    async fn open_request(
        &self,
        subject: &SubjectKey,
        kind: RequestKind,
    ) -> Result<Option<RequestId>, StoreError> {
        Ok(self.get_item::<MarkerItem>(subject_pk(subject), &open_sk(kind)).await?.map(|m| m.request_id))
    }

    async fn verification(&self, id: RequestId) -> Result<Option<Verification>, StoreError> {
        let Some(item) = self.get_item::<VerificationItem>(request_pk(id), VERIFY).await? else {
            return Ok(None);
        };
        let token_hash =
            TokenHash::from_hex(&item.token_hash).ok_or_else(|| StoreError::Corrupt("token_hash".into()))?;
        Ok(Some(Verification {
            token_hash,
            expires_at: item.expires_at,
            wrong_attempts: item.wrong_attempts,
        }))
    }

    async fn replace_verification(&self, id: RequestId, v: &Verification) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), VERIFY)))
            .update_expression("SET token_hash = :h, expires_at = :e, wrong_attempts = :zero, #ttl = :ttl")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":h", s(v.token_hash.to_hex()))
            .expression_attribute_values(
                ":e",
                s(v.expires_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ttl", n(v.expires_at.timestamp()))
            .send()
            .await;
        Ok(unless_condition_failed(result, "UpdateItem")?.is_some())
    }

    async fn count_wrong_attempt(&self, id: RequestId) -> Result<Option<u32>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), VERIFY)))
            .update_expression("ADD wrong_attempts :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let Some(out) = unless_condition_failed(result, "UpdateItem")? else { return Ok(None) };
        let count = out
            .attributes
            .and_then(|mut a| a.remove("wrong_attempts"))
            .and_then(|v| v.as_n().ok().and_then(|n| n.parse::<u32>().ok()))
            .ok_or_else(|| StoreError::Corrupt("wrong_attempts".into()))?;
        Ok(Some(count))
    }

    async fn transition(&self, current: &RequestRecord, change: Change) -> Result<RequestRecord, StoreError> {
        let to = current.status.apply(change.event)?;
        let next_version = current.version + 1;
        let closing = !to.is_open();
        let stamp = |at: DateTime<Utc>| s(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));

        let mut updated = current.clone();
        updated.status = to;
        updated.version = next_version;
        updated.updated_at = change.at;

        let mut sets = vec!["#status = :to", "#version = :next", "updated_at = :at"];
        let mut values: Item = HashMap::from([
            (":to".to_owned(), s(to.as_str())),
            (":next".to_owned(), n(next_version)),
            (":at".to_owned(), stamp(change.at)),
            (":from".to_owned(), s(current.status.as_str())),
            (":v".to_owned(), n(current.version)),
        ]);
        let mut condition = "#status = :from AND #version = :v".to_owned();
        if change.event == Event::Verified {
            sets.push("verified_at = :at");
            updated.verified_at = Some(change.at);
        }
        if let (true, Some(reason)) = (closing, &change.reason) {
            sets.push("closed_reason = :reason");
            values.insert(":reason".to_owned(), s(reason.clone()));
            updated.closed_reason = Some(reason.clone());
        }
        if change.event == Event::Extended {
            let until =
                change.extend_to.ok_or_else(|| StoreError::Corrupt("extension without a date".into()))?;
            sets.extend(["due_on = :due", "original_due_on = :original", "extension_reason = :why"]);
            values.insert(":due".to_owned(), s(until.to_string()));
            values.insert(":original".to_owned(), s(current.due_on.to_string()));
            values.insert(":why".to_owned(), s(change.reason.clone().unwrap_or_default()));
            // Once only, whatever the caller checked.
            condition.push_str(" AND attribute_not_exists(original_due_on)");
            updated.original_due_on = Some(current.due_on);
            updated.due_on = until;
            updated.extension_reason = change.reason.clone();
        }
        if let Some(estimate) = &change.cost_estimate {
            sets.push("cost_estimate = :estimate");
            let value = serde_dynamo::to_attribute_value(estimate)
                .map_err(|_| StoreError::Corrupt("cost_estimate".into()))?;
            values.insert(":estimate".to_owned(), value);
            updated.cost_estimate = Some(estimate.clone());
        }
        if let Some(triage) = &change.triage {
            sets.push("triage = :triage");
            values.insert(":triage".to_owned(), attribute(triage, "triage")?);
            updated.triage = Some(triage.clone());
        }
        if let Some(contact) = &change.referral_contact {
            sets.push("referral_contact = :contact");
            values.insert(":contact".to_owned(), s(contact.clone()));
            updated.referral_contact = Some(contact.clone());
        }
        if let Some(receipt) = &change.receipt {
            sets.push("receipt = :receipt");
            values.insert(":receipt".to_owned(), attribute(receipt, "receipt")?);
            updated.receipt = Some(receipt.clone());
        }
        if change.event == Event::RecipientConfirmed {
            sets.push("recipient_confirmed_at = :at");
            updated.recipient_confirmed_at = Some(change.at);
        }
        let expression = match due_keys(&updated) {
            Some((pk, sk)) => {
                sets.extend(["due_pk = :due_pk", "due_sk = :due_sk"]);
                values.insert(":due_pk".to_owned(), s(pk));
                values.insert(":due_sk".to_owned(), s(sk));
                format!("SET {}", sets.join(", "))
            }
            None => format!("SET {} REMOVE due_pk, due_sk", sets.join(", ")),
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(current.id), META)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#version", "version")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error("TransactWriteItems"))?;

        let audit = AuditEvent {
            request_id: current.id,
            version: next_version,
            event: change.event,
            from: Some(current.status),
            to,
            at: change.at,
            actor: change.actor,
            reason: change.reason,
        };
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.put_new(to_item(&audit_item(audit))?)?,
        ];
        // Verification data is kept only while it can still be used.
        if change.consume_token.is_some() || closing {
            let slot = if change.consume_token.is_some() { change.token_slot } else { TokenSlot::Requester };
            let mut delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(request_pk(current.id), secret_sk(slot))));
            if let Some(hash) = &change.consume_token {
                delete = delete
                    .condition_expression("token_hash = :h")
                    .expression_attribute_values(":h", s(hash.to_hex()));
            }
            items.push(
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(build_error("TransactWriteItems"))?)
                    .build(),
            );
        }
        if closing && change.consume_token.is_some() && change.token_slot == TokenSlot::Recipient {
            // A closing change never consumes the recipient secret; keep the two apart.
            return Err(StoreError::Corrupt("recipient token on a closing change".into()));
        }
        if change.event == Event::Verified {
            // The per-person history of verified requests: the right-to-know limit counts it,
            // and an erasure finds the person's earlier exports through it.
            let entry = HistoryItem {
                pk: subject_pk(&current.email.subject_key()),
                sk: history_sk(current.received_at, current.id),
                entity: "history".to_owned(),
                request_id: current.id,
                kind: current.kind,
                received_at: current.received_at,
            };
            items.push(self.put_new(to_item(&entry)?)?);
        }
        if closing {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(subject_pk(&current.email.subject_key()), &open_sk(current.kind))))
                .condition_expression("attribute_not_exists(pk) OR request_id = :id")
                .expression_attribute_values(":id", s(current.id.to_string()))
                .build()
                .map_err(build_error("TransactWriteItems"))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(updated),
            Err(err) if is_condition_failure(&err) => Err(StoreError::Conflict),
            Err(err) => Err(aws_error("TransactWriteItems")(err)),
        }
    }

    async fn audit_trail(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        let items = self.query_prefix(request_pk(id), "AUDIT#").await?;
        items.into_iter().map(|item| Ok(from_item::<AuditItem>(item)?.event)).collect()
    }

    async fn put_download_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = DownloadItem {
            pk: request_pk(id),
            sk: download_sk(slot).to_owned(),
            entity: "download_token".to_owned(),
            token_hash: hash.to_hex(),
            expires_at,
            ttl: expires_at.timestamp(),
        };
        self.put(&item).await
    }

    async fn download_tokens(&self, id: RequestId) -> Result<Vec<(TokenHash, DateTime<Utc>)>, StoreError> {
        let mut tokens = Vec::new();
        for slot in [TokenSlot::Requester, TokenSlot::Recipient] {
            if let Some(item) = self.get_item::<DownloadItem>(request_pk(id), download_sk(slot)).await? {
                let hash = TokenHash::from_hex(&item.token_hash)
                    .ok_or_else(|| StoreError::Corrupt("token_hash".into()))?;
                tokens.push((hash, item.expires_at));
            }
        }
        Ok(tokens)
    }

    async fn create_opt_out(&self, request: &RequestRecord, list: SuppressionList) -> Result<(), StoreError> {
        let submitted = AuditEvent {
            request_id: request.id,
            version: request.version,
            event: Event::Submitted,
            from: None,
            to: request.status,
            at: request.received_at,
            actor: Actor::Requester,
            reason: Some("no_verification_required".to_owned()),
        };
        // The earliest moment counts: a repeat keeps the address on the list since the first.
        let suppression = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(subject_pk(&request.email.subject_key()), &suppression_sk(list))))
            .update_expression(
                "SET since = if_not_exists(since, :at), request_id = if_not_exists(request_id, :id), \
                 #list = :list, entity = :entity",
            )
            .expression_attribute_values(":id", s(request.id.to_string()))
            .expression_attribute_names("#list", "list")
            .expression_attribute_values(
                ":at",
                s(request.received_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            )
            .expression_attribute_values(":list", s(list.as_str()))
            .expression_attribute_values(":entity", s("suppression"))
            .build()
            .map_err(build_error("TransactWriteItems"))?;
        let items = vec![
            self.put_new(to_item(&RequestItem::from_record(request))?)?,
            self.put_new(to_item(&audit_item(submitted))?)?,
            TransactWriteItem::builder().update(suppression).build(),
        ];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Err(StoreError::Conflict),
            Err(err) => Err(aws_error("TransactWriteItems")(err)),
        }
    }

    async fn suppressions(&self, subject: &SubjectKey) -> Result<Vec<Suppression>, StoreError> {
        let items = self.query_prefix(subject_pk(subject), "SUPPRESS#").await?;
        let mut lists = Vec::new();
        for item in items {
            let item: SuppressionItem = from_item(item)?;
            let list = match item.list.as_str() {
                "marketing" => SuppressionList::Marketing,
                "sale" => SuppressionList::Sale,
                _ => return Err(StoreError::Corrupt("suppression list".into())),
            };
            lists.push(Suppression { list, since: item.since, request_id: item.request_id });
        }
        Ok(lists)
    }

    async fn history(&self, subject: &SubjectKey) -> Result<Vec<PastRequest>, StoreError> {
        let items = self.query_prefix(subject_pk(subject), "REQ#").await?;
        items
            .into_iter()
            .map(|item| {
                let entry: HistoryItem = from_item(item)?;
                Ok(PastRequest { id: entry.request_id, kind: entry.kind, received_at: entry.received_at })
            })
            .collect()
    }

    async fn put_secret(&self, id: RequestId, slot: TokenSlot, v: &Verification) -> Result<(), StoreError> {
        let mut item = verification_item(id, v);
        item.sk = secret_sk(slot).to_owned();
        self.put(&item).await
    }

    async fn secret(&self, id: RequestId, slot: TokenSlot) -> Result<Option<Verification>, StoreError> {
        let Some(item) = self.get_item::<VerificationItem>(request_pk(id), secret_sk(slot)).await? else {
            return Ok(None);
        };
        let token_hash =
            TokenHash::from_hex(&item.token_hash).ok_or_else(|| StoreError::Corrupt("token_hash".into()))?;
        Ok(Some(Verification {
            token_hash,
            expires_at: item.expires_at,
            wrong_attempts: item.wrong_attempts,
        }))
    }

    async fn erasure_progress(&self, id: RequestId) -> Result<Option<ErasureProgress>, StoreError> {
        Ok(self.get_item::<ProgressItem>(request_pk(id), ERASURE).await?.map(|item| ErasureProgress {
            user_id: item.user_id,
            sources: item.sources,
            exports_deleted: item.exports_deleted,
        }))
    }

    async fn save_erasure_progress(
        &self,
        id: RequestId,
        progress: &ErasureProgress,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = ProgressItem {
            pk: request_pk(id),
            sk: ERASURE.to_owned(),
            entity: "erasure_progress".to_owned(),
            user_id: progress.user_id.clone(),
            sources: progress.sources.clone(),
            exports_deleted: progress.exports_deleted,
            ttl: (now + Duration::days(30)).timestamp(),
        };
        self.put(&item).await
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
        for sk in [VERIFY, "VERIFY#recipient", DOWNLOAD, "DOWNLOAD#recipient", ERASURE] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(request_pk(id), sk)))
                .send()
                .await
                .map_err(aws_error("DeleteItem"))?;
        }
        Ok(())
    }

    async fn record_event(
        &self,
        request: &RequestRecord,
        event: Event,
        at: DateTime<Utc>,
        actor: Actor,
    ) -> Result<(), StoreError> {
        let audit = AuditEvent {
            request_id: request.id,
            version: request.version,
            event,
            from: Some(request.status),
            to: request.status,
            at,
            actor,
            reason: None,
        };
        let mut item = audit_item(audit);
        // After the transition it follows, unique per moment.
        item.sk = format!(
            "{}#{event}#{}",
            audit_sk(request.version),
            at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        );
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
            .expression_attribute_values(":at", s(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .send()
            .await;
        unless_condition_failed(result, "UpdateItem")?;
        Ok(())
    }

    async fn open_requests(&self, query: &OpenQuery) -> Result<OpenPage, StoreError> {
        if !query.status.is_open() {
            return Ok(OpenPage::default());
        }
        let partition = due_partition(query.status);
        // `~` sorts after every digit and `#`: "up to and including this key prefix".
        let upper = query.until.map(|bound| match bound {
            Bound::ReceivedBy(at) => format!("{}~", received_key(at)),
            Bound::DueBy(day) => format!("{day}~"),
        });
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .expression_attribute_values(":pk", s(partition.clone()))
            .limit(query.limit.clamp(1, 1000) as i32);
        request = match upper {
            Some(upper) => request
                .key_condition_expression("due_pk = :pk AND due_sk <= :upper")
                .expression_attribute_values(":upper", s(upper)),
            None => request.key_condition_expression("due_pk = :pk"),
        };
        if let Some(after) = &query.after {
            let id = after
                .sort_key
                .rsplit_once('#')
                .and_then(|(_, id)| RequestId::parse(id).ok())
                .filter(|_| after.status == query.status)
                .ok_or_else(|| StoreError::Corrupt("page key".into()))?;
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

    async fn claim_effect(
        &self,
        id: RequestId,
        effect: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let item = EffectItem {
            pk: request_pk(id),
            sk: effect_sk(effect),
            entity: "effect".to_owned(),
            state: "claimed".to_owned(),
            claimed_until: Some((now + lease).timestamp()),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk) OR (#state = :claimed AND claimed_until < :now)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(err) if is_condition_failure(&err) => {
                match self.get_item::<EffectItem>(request_pk(id), &effect_sk(effect)).await? {
                    Some(existing) if existing.state == "done" => Ok(Claim::AlreadyDone),
                    _ => Ok(Claim::InProgress),
                }
            }
            Err(err) => Err(aws_error("PutItem")(err)),
        }
    }

    async fn finish_effect(&self, id: RequestId, effect: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), &effect_sk(effect))))
            .update_expression("SET #state = :done REMOVE claimed_until")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(aws_error("UpdateItem"))?;
        Ok(())
    }

    async fn release_effect(&self, id: RequestId, effect: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), &effect_sk(effect))))
            .condition_expression("#state = :claimed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claimed", s("claimed"))
            .send()
            .await;
        unless_condition_failed(result, "DeleteItem")?;
        Ok(())
    }

    async fn take_mail_slot(
        &self,
        subject: &SubjectKey,
        now: DateTime<Utc>,
        limit: u32,
        window: Duration,
    ) -> Result<bool, StoreError> {
        let pk = subject_pk(subject);
        for _ in 0..MAX_SLOT_RETRIES {
            let existing = self.get_item::<RateItem>(pk.clone(), RATE_VERIFICATION).await?;
            let since = (now - window).timestamp();
            let (mut sent, rev) = match &existing {
                Some(item) => {
                    (item.sent.iter().copied().filter(|t| *t > since).collect::<Vec<_>>(), Some(item.rev))
                }
                None => (Vec::new(), None),
            };
            if sent.len() >= limit as usize {
                return Ok(false);
            }
            sent.push(now.timestamp());
            let item = RateItem {
                pk: pk.clone(),
                sk: RATE_VERIFICATION.to_owned(),
                entity: "mail_rate".to_owned(),
                sent,
                rev: rev.map_or(1, |r| r + 1),
                ttl: (now + window).timestamp(),
            };
            let mut put = self.client.put_item().table_name(&self.table).set_item(Some(to_item(&item)?));
            put = match rev {
                Some(r) => put.condition_expression("rev = :rev").expression_attribute_values(":rev", n(r)),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            match put.send().await {
                Ok(_) => return Ok(true),
                Err(err) if is_condition_failure(&err) => continue,
                Err(err) => return Err(aws_error("PutItem")(err)),
            }
        }
        // Persistent contention on one address looks like a flood: fail closed, send nothing.
        Ok(false)
    }
}
