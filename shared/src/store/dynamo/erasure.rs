//! Erasure progress: one item per erasure, saved after each page so the next invocation resumes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, request_pk};
use crate::domain::{ErasedSource, RequestId};
use crate::store::{ErasureAt, ErasureLog, ErasureProgress, StoreError};

pub(super) const ERASURE: &str = "ERASURE";

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<ErasureAt>,
    /// A safety net: progress of a job that never finishes is swept after 30 days.
    ttl: i64,
}

impl ErasureLog for DynamoStore {
    async fn erasure_progress(&self, id: RequestId) -> Result<Option<ErasureProgress>, StoreError> {
        Ok(self.get_item::<ProgressItem>(request_pk(id), ERASURE).await?.map(|item| ErasureProgress {
            user_id: item.user_id,
            sources: item.sources,
            exports_deleted: item.exports_deleted,
            at: item.at,
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
            at: progress.at.clone(),
            ttl: (now + Duration::days(30)).timestamp(),
        };
        self.put(&item).await
    }
}
