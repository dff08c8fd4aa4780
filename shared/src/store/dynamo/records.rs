//! The records of requests: one item per request under its year of receipt (`RECORD#<yyyy>`),
//! sorted by receipt (`<received_at>#<id>`), so a year is one query. Never under the request's
//! own partition: an erasure or a scrub of the request cannot reach it, and the dispatcher's
//! stream filter (request and task items only) never hands it back. DynamoDB's TTL (`ttl`)
//! removes it the day after its `keep_until`.

use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, Item, aws_error, from_item, n, s, to_item, unless_condition_failed};
use crate::domain::ComplianceRecord;
use crate::store::{Records, StoreError, received_key};

pub(super) fn record_pk(year: i32) -> String {
    format!("RECORD#{year:04}")
}

pub(super) fn record_sk(record: &ComplianceRecord) -> String {
    format!("{}#{}", received_key(record.received_at), record.request_id)
}

/// The moment DynamoDB may delete a record kept until `keep_until` (inclusive): the next day's
/// start, in seconds since the epoch.
pub(super) fn ttl_of(keep_until: NaiveDate) -> i64 {
    let next = keep_until.checked_add_days(Days::new(1)).unwrap_or(keep_until);
    next.and_hms_opt(0, 0, 0).map(|at| at.and_utc().timestamp()).unwrap_or(i64::MAX)
}

#[derive(Serialize, Deserialize)]
struct RecordItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    record: ComplianceRecord,
    ttl: i64,
}

impl RecordItem {
    fn of(record: &ComplianceRecord) -> RecordItem {
        RecordItem {
            pk: record_pk(record.received_on.year()),
            sk: record_sk(record),
            entity: "record".to_owned(),
            record: record.clone(),
            ttl: ttl_of(record.keep_until),
        }
    }
}

impl Records for DynamoStore {
    async fn put_record(&self, record: &ComplianceRecord) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&RecordItem::of(record))?))
            .condition_expression("attribute_not_exists(pk) OR #version < :version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", n(record.version))
            .send()
            .await;
        Ok(unless_condition_failed(result, "PutItem")?.is_some())
    }

    async fn records_of_year(&self, year: i32) -> Result<Vec<ComplianceRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(record_pk(year)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(aws_error("Query"))?;
            for item in out.items.unwrap_or_default() {
                records.push(from_item::<RecordItem>(item)?.record);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    #[test]
    fn a_record_is_deletable_from_the_day_after_it_is_kept_until() {
        let day = NaiveDate::from_ymd_opt(2028, 3, 20).unwrap();
        let expected = NaiveDate::from_ymd_opt(2028, 3, 21).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert_eq!(ttl_of(day), expected.timestamp());
        assert_eq!(record_pk(2026), "RECORD#2026");
    }

    #[test]
    fn the_item_round_trips_with_its_keys_its_outcome_flat_and_its_ttl() {
        use crate::domain::{
            BusinessCalendar, DenialBasis, EmailAddress, Language, OutsideSources, RecordRetention, Region,
            RequestId, RequestKind, RequestRecord, StaffText, Transition,
        };
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let at = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let region = Region::parse("US-CA").unwrap();
        let deadlines = calendar.deadlines(region.regime(), at);
        let email = EmailAddress::parse("a@example.com").unwrap();
        let request = RequestRecord::received(
            RequestId::generate(),
            RequestKind::Access,
            region,
            Language::En,
            email,
            at,
            deadlines,
        );
        let verified = RequestRecord { status: crate::domain::Status::Verified, ..request };
        let deny =
            Transition::Deny { reason: StaffText::parse("No.").unwrap(), basis: DenialBasis::Exemption };
        let denied = verified.apply(&deny, at + chrono::Duration::days(3)).unwrap();
        let record =
            ComplianceRecord::of(&denied, OutsideSources::Delivered, &calendar, RecordRetention::MINIMUM);
        let item = to_item(&RecordItem::of(&record)).unwrap();
        assert_eq!(item["pk"], AttributeValue::S("RECORD#2026".into()));
        assert_eq!(item["sk"], AttributeValue::S(format!("2026-11-28T10:00:00Z#{}", record.request_id)));
        assert_eq!(item["outcome"], AttributeValue::S("denied".into()));
        assert_eq!(item["denial_basis"], AttributeValue::S("exemption".into()));
        assert_eq!(item["ttl"], AttributeValue::N(ttl_of(record.keep_until).to_string()));
        assert!(!item.contains_key("email") && !item.contains_key("closed_reason"));
        assert_eq!(from_item::<RecordItem>(item).unwrap().record, record);
    }
}
