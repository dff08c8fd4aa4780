//! The emulator's meter (dev/emulator_patches.py, `make bench-e2e`) bills DynamoDB as AWS does,
//! from item sizes (moto's own ConsumedCapacity is a constant): writes per started kilobyte of the
//! larger of the item before and after, transactions twice, reads per 4 KB (half when eventually
//! consistent, a query on the sum of what it read), and one more write per index entry an item
//! adds, moves, changes or removes. It also counts S3's bytes and each mail's recipients.
//!
//! Each test works on a table (or bucket, or address) of its own and reads only that from the
//! meter, which it turns on itself (`PUT /_local/meter`), so tests may share the emulator.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use serde_json::Value;

use crate::support::*;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// An item of exactly `bytes` as AWS sizes it: names and values of `pk`, `sk` and a padding `d`.
fn item_of(pk: &str, bytes: usize) -> Item {
    let fixed = "pk".len() + pk.len() + "sk".len() + "x".len() + "d".len();
    assert!(bytes > fixed, "an item of {bytes} bytes cannot hold its key");
    Item::from([("pk".into(), s(pk)), ("sk".into(), s("x")), ("d".into(), s(&"a".repeat(bytes - fixed)))])
}

/// What the meter counted for one table (or bucket) and operation, summed over callers.
#[derive(Debug, Default, PartialEq)]
struct Billed {
    requests: f64,
    read_units: f64,
    write_units: f64,
    index_write_units: f64,
    bytes_in: f64,
    bytes_out: f64,
}

async fn meter(stack: &Stack) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{}/_local/meter", stack.endpoint);
    let on = client.put(&url).send().await.expect("the emulator's meter");
    assert!(on.status().is_success(), "PUT /_local/meter answered {}", on.status());
    client.get(&url).send().await.unwrap().json().await.unwrap()
}

async fn billed(stack: &Stack, resource: &str, operation: &str) -> Billed {
    let report = meter(stack).await;
    let mut total = Billed::default();
    for call in report["calls"].as_array().unwrap() {
        if call["resource"] == resource && call["operation"] == operation {
            let n = |name: &str| call[name].as_f64().unwrap_or_default();
            total.requests += n("requests");
            total.read_units += n("read_units");
            total.write_units += n("write_units");
            total.index_write_units += n("index_write_units");
            total.bytes_in += n("bytes_in");
            total.bytes_out += n("bytes_out");
        }
    }
    total
}

/// How `operation` on the stack's table was billed while `work` ran.
async fn billed_for<F: std::future::Future<Output = ()>>(stack: &Stack, operation: &str, work: F) -> Billed {
    let before = billed(stack, &stack.table, operation).await;
    work.await;
    let after = billed(stack, &stack.table, operation).await;
    Billed {
        requests: after.requests - before.requests,
        read_units: after.read_units - before.read_units,
        write_units: after.write_units - before.write_units,
        index_write_units: after.index_write_units - before.index_write_units,
        bytes_in: after.bytes_in - before.bytes_in,
        bytes_out: after.bytes_out - before.bytes_out,
    }
}

async fn put_item(stack: &Stack, item: Item) {
    stack.dynamo.put_item().table_name(&stack.table).set_item(Some(item)).send().await.unwrap();
}

fn transact_put(table: &str, item: Item) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(Put::builder().table_name(table).set_item(Some(item)).build().unwrap())
        .build()
}

#[tokio::test]
async fn a_put_is_billed_per_started_kilobyte_of_the_larger_of_the_item_before_and_after() {
    let stack = Stack::new().await;
    let three_kb = billed_for(&stack, "PutItem", put_item(&stack, item_of("a", 3 * 1024))).await;
    assert_eq!((three_kb.requests, three_kb.write_units), (1.0, 3.0));

    let shrunk = billed_for(&stack, "PutItem", put_item(&stack, item_of("a", 500))).await;
    assert_eq!(shrunk.write_units, 3.0, "the 3 KB item it replaced is the larger");

    let just_over = billed_for(&stack, "PutItem", put_item(&stack, item_of("b", 3 * 1024 + 1))).await;
    assert_eq!(just_over.write_units, 4.0);

    let deleted = billed_for(&stack, "DeleteItem", async {
        stack.delete_item("b", "x").await;
    })
    .await;
    assert_eq!(deleted.write_units, 4.0, "a delete is billed by the item it deleted");
}

#[tokio::test]
async fn a_transaction_bills_each_of_its_items_twice_condition_checks_included() {
    let stack = Stack::new().await;
    let two_puts = billed_for(&stack, "TransactWriteItems", async {
        stack
            .dynamo
            .transact_write_items()
            .transact_items(transact_put(&stack.table, item_of("a", 1536)))
            .transact_items(transact_put(&stack.table, item_of("b", 1536)))
            .send()
            .await
            .unwrap();
    })
    .await;
    assert_eq!(two_puts.write_units, 8.0, "two 1.5 KB items: 2 KB each, twice");

    let check_and_put = billed_for(&stack, "TransactWriteItems", async {
        let check = ConditionCheck::builder()
            .table_name(&stack.table)
            .key("pk", s("a"))
            .key("sk", s("x"))
            .condition_expression("attribute_exists(pk)")
            .build()
            .unwrap();
        stack
            .dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(transact_put(&stack.table, item_of("c", 100)))
            .send()
            .await
            .unwrap();
    })
    .await;
    assert_eq!(check_and_put.write_units, 6.0, "the checked 1.5 KB item 2 x 2, the new one 2 x 1");
}

#[tokio::test]
async fn a_failed_condition_still_bills_the_item_it_found() {
    let stack = Stack::new().await;
    put_item(&stack, item_of("a", 2000)).await;
    let refused = billed_for(&stack, "PutItem", async {
        let result = stack
            .dynamo
            .put_item()
            .table_name(&stack.table)
            .set_item(Some(item_of("a", 100)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        assert!(result.is_err(), "the condition fails");
    })
    .await;
    assert_eq!((refused.requests, refused.write_units), (1.0, 2.0));
}

#[tokio::test]
async fn reads_are_billed_per_4_kb_half_when_eventually_consistent_and_a_query_by_the_sum_it_read() {
    let stack = Stack::new().await;
    put_item(&stack, item_of("big", 5000)).await;
    let get = |consistent: bool, pk: &'static str| {
        let stack = &stack;
        async move {
            stack
                .dynamo
                .get_item()
                .table_name(&stack.table)
                .key("pk", s(pk))
                .key("sk", s("x"))
                .consistent_read(consistent)
                .send()
                .await
                .unwrap();
        }
    };
    assert_eq!(billed_for(&stack, "GetItem", get(false, "big")).await.read_units, 1.0, "8 KB, halved");
    assert_eq!(billed_for(&stack, "GetItem", get(true, "big")).await.read_units, 2.0);
    assert_eq!(
        billed_for(&stack, "GetItem", get(false, "none")).await.read_units,
        0.5,
        "a miss costs a unit"
    );

    for sk in ["1", "2", "3"] {
        let mut item = item_of("many", 1536);
        item.insert("sk".into(), s(sk));
        put_item(&stack, item).await;
    }
    let query = billed_for(&stack, "Query", async {
        let out = stack
            .dynamo
            .query()
            .table_name(&stack.table)
            .key_condition_expression("pk = :pk")
            .filter_expression("attribute_exists(nothing_has_this)")
            .expression_attribute_values(":pk", s("many"))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert_eq!(out.count, 0, "the filter drops every item it read");
    })
    .await;
    assert_eq!(query.read_units, 2.0, "4.5 KB read, filtered or not");
}

#[tokio::test]
async fn an_index_is_billed_a_write_when_an_item_enters_changes_in_or_leaves_it_and_two_when_it_moves() {
    let stack = Stack::new().await;
    let update = |expression: &'static str, values: Vec<(&'static str, &'static str)>| {
        let stack = &stack;
        async move {
            let mut update = stack
                .dynamo
                .update_item()
                .table_name(&stack.table)
                .key("pk", s("REQ#meter"))
                .key("sk", s("META"))
                .update_expression(expression);
            if expression.contains("#status") {
                update = update.expression_attribute_names("#status", "status");
            }
            for (name, value) in values {
                update = update.expression_attribute_values(name, s(value));
            }
            update.send().await.unwrap();
        }
    };
    // `by_due_date` is sparse: an item is in it while it has due_pk and due_sk.
    let outside = billed_for(&stack, "UpdateItem", update("SET note = :n", vec![(":n", "a")])).await;
    assert_eq!((outside.write_units, outside.index_write_units), (1.0, 0.0));
    let enters = billed_for(
        &stack,
        "UpdateItem",
        update("SET due_pk = :p, due_sk = :s", vec![(":p", "DUE#verified"), (":s", "2026-12-01")]),
    )
    .await;
    assert_eq!(enters.index_write_units, 1.0);
    let unprojected = billed_for(&stack, "UpdateItem", update("SET note = :n", vec![(":n", "b")])).await;
    assert_eq!(unprojected.index_write_units, 0.0, "the index does not hold `note`");
    let projected =
        billed_for(&stack, "UpdateItem", update("SET #status = :s", vec![(":s", "verified")])).await;
    assert_eq!(projected.index_write_units, 1.0, "the index holds `status`");
    let moves = billed_for(&stack, "UpdateItem", update("SET due_sk = :s", vec![(":s", "2026-12-02")])).await;
    assert_eq!(moves.index_write_units, 2.0, "out of its old place, into its new one");
    let leaves = billed_for(&stack, "UpdateItem", update("REMOVE due_pk", vec![])).await;
    assert_eq!(leaves.index_write_units, 1.0);
}

#[tokio::test]
async fn s3_is_counted_with_its_bytes_and_each_mail_with_its_recipients_and_tags() {
    let stack = Stack::new().await;
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let bucket = format!("meter-{}", uuid::Uuid::new_v4().simple());
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    s3.put_object().bucket(&bucket).key("k").body(vec![7u8; 3000].into()).send().await.unwrap();
    let got = s3.get_object().bucket(&bucket).key("k").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 3000);
    let put = billed(&stack, &bucket, "PutObject").await;
    assert_eq!((put.requests, put.bytes_in), (1.0, 3000.0));
    let get = billed(&stack, &bucket, "GetObject").await;
    assert_eq!((get.requests, get.bytes_out), (1.0, 3000.0));

    let to = format!("meter-{}@example.com", uuid::Uuid::new_v4().simple());
    let ses = aws_sdk_sesv2::Client::new(&stack.sdk);
    let tag = |name: &str, value: &str| {
        aws_sdk_sesv2::types::MessageTag::builder().name(name).value(value).build().unwrap()
    };
    let simple = |text: &str| aws_sdk_sesv2::types::Content::builder().data(text).build().unwrap();
    ses.send_email()
        .from_email_address(MAIL_FROM)
        .destination(aws_sdk_sesv2::types::Destination::builder().to_addresses(&to).build())
        .content(
            aws_sdk_sesv2::types::EmailContent::builder()
                .simple(
                    aws_sdk_sesv2::types::Message::builder()
                        .subject(simple("Meter"))
                        .body(aws_sdk_sesv2::types::Body::builder().text(simple("counted")).build())
                        .build(),
                )
                .build(),
        )
        .email_tags(tag("kind", "verification"))
        .send()
        .await
        .unwrap();
    let report = meter(&stack).await;
    let mail: Vec<&Value> =
        report["mail"].as_array().unwrap().iter().filter(|m| m["to"][0] == to.as_str()).collect();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["tags"]["kind"], "verification");
    assert!(mail[0]["message_id"].as_str().is_some_and(|id| !id.is_empty()));
}
