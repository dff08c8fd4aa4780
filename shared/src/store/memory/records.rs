//! The records of requests in memory: by year of receipt, then receipt and id, as the table sorts
//! them. Nothing expires here (DynamoDB's TTL is not played).

use chrono::Datelike;

use super::MemoryStore;
use crate::domain::ComplianceRecord;
use crate::store::{Records, StoreError, received_key};

/// Where a record sits: its year, then its sort key in the table.
pub(super) type RecordKey = (i32, String);

fn key(record: &ComplianceRecord) -> RecordKey {
    (record.received_on.year(), format!("{}#{}", received_key(record.received_at), record.request_id))
}

impl Records for MemoryStore {
    async fn put_record(&self, record: &ComplianceRecord) -> Result<bool, StoreError> {
        let mut state = self.state();
        let key = key(record);
        if state.records.get(&key).is_some_and(|stored| stored.version >= record.version) {
            return Ok(false);
        }
        state.records.insert(key, record.clone());
        Ok(true)
    }

    async fn records_of_year(&self, year: i32) -> Result<Vec<ComplianceRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .records
            .range((year, String::new())..(year + 1, String::new()))
            .map(|(_, r)| r.clone())
            .collect())
    }
}
