//! One-time secrets: the live verification links of each slot and download tokens, stored only
//! as hashes, each item with a TTL so DynamoDB sweeps it even if nothing else deletes it.

use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::requests::META;
use super::{DynamoStore, build_error, key, n, request_pk, s, to_item};
use crate::domain::{RequestId, TokenHash};
use crate::store::{
    DownloadToken, LiveToken, Requests, Secrets, StoreError, TokenSlot, Verification, WrongAttempt,
};

/// Read-modify-write rounds before giving up on a slot others keep changing.
const MAX_ROUNDS: usize = 6;
/// How long a slot locked by wrong tries (and given no new link since) is kept.
const LOCK_KEPT_DAYS: i64 = 366;

pub(super) fn secret_sk(slot: TokenSlot) -> &'static str {
    match slot {
        TokenSlot::Requester => "VERIFY",
        TokenSlot::Recipient => "VERIFY#recipient",
    }
}

fn download_sk(slot: TokenSlot) -> &'static str {
    match slot {
        TokenSlot::Requester => "DOWNLOAD",
        TokenSlot::Recipient => "DOWNLOAD#recipient",
    }
}

pub(super) const DOWNLOAD_SKS: [&str; 2] = ["DOWNLOAD", "DOWNLOAD#recipient"];

/// The live links of a slot: token hash (hex) -> until when it works.
#[derive(Serialize, Deserialize)]
pub(super) struct SecretItem {
    pk: String,
    sk: String,
    entity: String,
    tokens: BTreeMap<String, DateTime<Utc>>,
    #[serde(default)]
    wrong_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locked_at: Option<DateTime<Utc>>,
    /// Bumped on every write: the condition of the next read-modify-write.
    #[serde(default)]
    rev: u64,
    /// DynamoDB TTL (epoch seconds): when the last link expires.
    ttl: i64,
}

pub(super) fn secret_item(id: RequestId, slot: TokenSlot, v: &Verification, rev: u64) -> SecretItem {
    let last = v.tokens.iter().map(|t| t.expires_at).max();
    // A lock is kept until the request can no longer be pending (UNVERIFIED_EXPIRY_DAYS is at
    // most 365): closing it as never verified tells the person why, locked or timed out, and
    // deletes the item itself. It holds hashes and counts only.
    let ttl = last
        .or(v.locked_at.map(|at| at + Duration::days(LOCK_KEPT_DAYS)))
        .map(|t| t.timestamp())
        .unwrap_or_default();
    SecretItem {
        pk: request_pk(id),
        sk: secret_sk(slot).to_owned(),
        entity: "verification".to_owned(),
        tokens: v.tokens.iter().map(|t| (t.token_hash.to_hex(), t.expires_at)).collect(),
        wrong_attempts: v.wrong_attempts,
        locked_at: v.locked_at,
        rev,
        ttl,
    }
}

fn verification_of(item: &SecretItem) -> Result<Verification, StoreError> {
    let mut tokens = item
        .tokens
        .iter()
        .map(|(hash, expires_at)| {
            let token_hash =
                TokenHash::from_hex(hash).ok_or_else(|| StoreError::Corrupt("token_hash".into()))?;
            Ok(LiveToken { token_hash, expires_at: *expires_at })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The map keeps no order of issue; expiry is the order the domain keeps.
    tokens.sort_by_key(|t: &LiveToken| t.expires_at);
    Ok(Verification { tokens, wrong_attempts: item.wrong_attempts, locked_at: item.locked_at })
}

#[derive(Serialize, Deserialize)]
struct DownloadItem {
    pk: String,
    sk: String,
    entity: String,
    token_hash: String,
    expires_at: DateTime<Utc>,
    ttl: i64,
}

impl DynamoStore {
    /// Deletes a slot's secrets only if `hash` is one of its live links: a token is single-use
    /// even under concurrent requests.
    pub(super) fn consume_secret(
        &self,
        id: RequestId,
        slot: TokenSlot,
        hash: &TokenHash,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), secret_sk(slot))))
            .condition_expression("attribute_exists(#tokens.#h)")
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_names("#h", hash.to_hex())
            .build()
            .map_err(build_error("TransactWriteItems"))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    async fn secret_item(&self, id: RequestId, slot: TokenSlot) -> Result<Option<SecretItem>, StoreError> {
        self.get_item::<SecretItem>(request_pk(id), secret_sk(slot)).await
    }

    /// Writes the slot's next state if nobody wrote it since `seen` (its rev), together with
    /// `guard` (a condition on the request). Conflict when either does not hold.
    async fn write_secret(
        &self,
        id: RequestId,
        slot: TokenSlot,
        next: &Verification,
        seen: Option<u64>,
        guard: Option<ConditionCheck>,
    ) -> Result<(), StoreError> {
        let item = to_item(&secret_item(id, slot, next, seen.map_or(1, |rev| rev + 1)))?;
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match seen {
            Some(rev) => put.condition_expression("rev = :rev").expression_attribute_values(":rev", n(rev)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        let mut items = vec![
            TransactWriteItem::builder().put(put.build().map_err(build_error("TransactWriteItems"))?).build(),
        ];
        if let Some(guard) = guard {
            items.push(TransactWriteItem::builder().condition_check(guard).build());
        }
        self.transact(items).await
    }
}

impl Secrets for DynamoStore {
    async fn secret(&self, id: RequestId, slot: TokenSlot) -> Result<Option<Verification>, StoreError> {
        self.secret_item(id, slot).await?.as_ref().map(verification_of).transpose()
    }

    async fn issue_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &LiveToken,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let status = slot.usable_in();
        for _ in 0..MAX_ROUNDS {
            let stored = self.secret_item(id, slot).await?;
            let current = stored.as_ref().map(verification_of).transpose()?.unwrap_or_default();
            let next = current.with_token(token.clone(), now);
            let guard = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(request_pk(id), META)))
                .condition_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .build()
                .map_err(build_error("TransactWriteItems"))?;
            match self.write_secret(id, slot, &next, stored.map(|item| item.rev), Some(guard)).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict) => {
                    // Either the request moved on (nothing to issue for) or another write came first.
                    let still = self.get(id).await?.is_some_and(|r| r.status == status);
                    if !still {
                        return Ok(false);
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn count_wrong_attempt(
        &self,
        id: RequestId,
        slot: TokenSlot,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<WrongAttempt, StoreError> {
        for _ in 0..MAX_ROUNDS {
            let Some(stored) = self.secret_item(id, slot).await? else { return Ok(WrongAttempt::NoSecret) };
            let (next, outcome) = verification_of(&stored)?.after_wrong_attempt(now, limit);
            match self.write_secret(id, slot, &next, Some(stored.rev), None).await {
                Ok(()) => return Ok(outcome),
                Err(StoreError::Conflict) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn put_download_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &DownloadToken,
    ) -> Result<(), StoreError> {
        let item = DownloadItem {
            pk: request_pk(id),
            sk: download_sk(slot).to_owned(),
            entity: "download_token".to_owned(),
            token_hash: token.token_hash.to_hex(),
            expires_at: token.expires_at,
            ttl: token.expires_at.timestamp(),
        };
        self.put(&item).await
    }

    async fn download_tokens(&self, id: RequestId) -> Result<Vec<DownloadToken>, StoreError> {
        let mut tokens = Vec::new();
        for slot in [TokenSlot::Requester, TokenSlot::Recipient] {
            if let Some(item) = self.get_item::<DownloadItem>(request_pk(id), download_sk(slot)).await? {
                let token_hash = TokenHash::from_hex(&item.token_hash)
                    .ok_or_else(|| StoreError::Corrupt("token_hash".into()))?;
                tokens.push(DownloadToken { token_hash, expires_at: item.expires_at });
            }
        }
        Ok(tokens)
    }
}
