//! What is kept per person, under the hash of their address: the history of verified requests,
//! suppressions, and the sliding window of mail sent to them.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, aws_error, is_condition_failure, n, subject_pk, to_item};
use crate::domain::{RequestId, RequestKind, RequestRecord, SubjectKey};
use crate::store::{PastRequest, People, StoreError, Suppression, SuppressionList, received_key};

const RATE_VERIFICATION: &str = "RATE#verification";
const MAX_SLOT_RETRIES: usize = 4;

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
