//! The effect ledger: one item per side effect of a committed change, claimed with a lease,
//! then marked done (or deleted again when the effect failed).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{
    DynamoStore, aws_error, is_condition_failure, key, n, request_pk, s, to_item, unless_condition_failed,
};
use crate::domain::RequestId;
use crate::store::{Claim, EffectLedger, StoreError};

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

impl EffectLedger for DynamoStore {
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
}
