//! One-time secrets: verification tokens per slot and download tokens, stored only as hashes,
//! each with a TTL so DynamoDB sweeps them even if nothing else deletes them.

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, key, n, request_pk, s, stamp, unless_condition_failed};
use crate::domain::{RequestId, TokenHash};
use crate::store::{DownloadToken, Secrets, StoreError, TokenSlot, Verification};

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

#[derive(Serialize, Deserialize)]
pub(super) struct SecretItem {
    pk: String,
    sk: String,
    entity: String,
    token_hash: String,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    wrong_attempts: u32,
    /// DynamoDB TTL (epoch seconds).
    ttl: i64,
}

pub(super) fn secret_item(id: RequestId, slot: TokenSlot, v: &Verification) -> SecretItem {
    SecretItem {
        pk: request_pk(id),
        sk: secret_sk(slot).to_owned(),
        entity: "verification".to_owned(),
        token_hash: v.token_hash.to_hex(),
        expires_at: v.expires_at,
        wrong_attempts: v.wrong_attempts,
        ttl: v.expires_at.timestamp(),
    }
}

fn stored_hash(hex: &str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(hex).ok_or_else(|| StoreError::Corrupt("token_hash".into()))
}

impl Secrets for DynamoStore {
    async fn secret(&self, id: RequestId, slot: TokenSlot) -> Result<Option<Verification>, StoreError> {
        let Some(item) = self.get_item::<SecretItem>(request_pk(id), secret_sk(slot)).await? else {
            return Ok(None);
        };
        Ok(Some(Verification {
            token_hash: stored_hash(&item.token_hash)?,
            expires_at: item.expires_at,
            wrong_attempts: item.wrong_attempts,
        }))
    }

    async fn put_secret(&self, id: RequestId, slot: TokenSlot, v: &Verification) -> Result<(), StoreError> {
        self.put(&secret_item(id, slot, v)).await
    }

    async fn replace_verification(&self, id: RequestId, v: &Verification) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(request_pk(id), secret_sk(TokenSlot::Requester))))
            .update_expression("SET token_hash = :h, expires_at = :e, wrong_attempts = :zero, #ttl = :ttl")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":h", s(v.token_hash.to_hex()))
            .expression_attribute_values(":e", stamp(v.expires_at))
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
            .set_key(Some(key(request_pk(id), secret_sk(TokenSlot::Requester))))
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

    async fn put_download_token(
        &self,
        id: RequestId,
        slot: TokenSlot,
        token: &DownloadToken,
    ) -> Result<(), StoreError> {
        let item = SecretItem {
            pk: request_pk(id),
            sk: download_sk(slot).to_owned(),
            entity: "download_token".to_owned(),
            token_hash: token.token_hash.to_hex(),
            expires_at: token.expires_at,
            wrong_attempts: 0,
            ttl: token.expires_at.timestamp(),
        };
        self.put(&item).await
    }

    async fn download_tokens(&self, id: RequestId) -> Result<Vec<DownloadToken>, StoreError> {
        let mut tokens = Vec::new();
        for slot in [TokenSlot::Requester, TokenSlot::Recipient] {
            if let Some(item) = self.get_item::<SecretItem>(request_pk(id), download_sk(slot)).await? {
                tokens.push(DownloadToken {
                    token_hash: stored_hash(&item.token_hash)?,
                    expires_at: item.expires_at,
                });
            }
        }
        Ok(tokens)
    }
}
