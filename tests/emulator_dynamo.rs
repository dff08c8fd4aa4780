//! The emulator's DynamoDB keeps DynamoDB's semantics where dev/emulator_patches.py changed moto
//! for speed: a transaction is all or nothing, in the table and in its stream; a Query on the
//! key reads the right partition in key order, pages included; results and stream records carry
//! every attribute type as written; a recurring expression is applied with each call's values.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use devstack::stream::StreamReader;
use serde_json::Value;

use crate::support::*;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn put(table: &str, pk: &str, sk: &str, extra: &[(&str, AttributeValue)]) -> TransactWriteItem {
    let mut put = Put::builder().table_name(table).item("pk", s(pk)).item("sk", s(sk));
    for (name, value) in extra {
        put = put.item(*name, value.clone());
    }
    TransactWriteItem::builder().put(put.build().unwrap()).build()
}

async fn item(
    stack: &Stack,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    stack
        .dynamo
        .get_item()
        .table_name(&stack.table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Every stream record of the table so far, as (event name, pk) in order.
async fn stream_of(stack: &Stack) -> Vec<(String, String)> {
    let mut reader = StreamReader::open(&stack.sdk, &stack.table).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let records: Vec<Value> = reader.poll().await.unwrap();
        if records.is_empty() {
            return seen;
        }
        seen.extend(records.iter().map(|r| {
            (
                r["eventName"].as_str().unwrap_or_default().to_owned(),
                r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap_or_default().to_owned(),
            )
        }));
    }
}

#[tokio::test]
async fn a_transaction_cancelled_by_a_condition_writes_nothing_and_leaves_no_stream_record() {
    let stack = Stack::new().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (first, second) = (format!("T#{id}-a"), format!("T#{id}-b"));
    stack
        .dynamo
        .transact_write_items()
        .transact_items(put(&stack.table, &first, "x", &[("n", AttributeValue::N("1".into()))]))
        .send()
        .await
        .unwrap();

    let refused = stack
        .dynamo
        .transact_write_items()
        .transact_items(put(&stack.table, &second, "x", &[]))
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&stack.table)
                        .key("pk", s(&first))
                        .key("sk", s("x"))
                        .condition_expression("n = :two")
                        .expression_attribute_values(":two", AttributeValue::N("2".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Some("TransactionCanceledException"));
    assert!(item(&stack, &second, "x").await.is_none(), "the put of a cancelled transaction is not kept");
    assert_eq!(
        stream_of(&stack).await,
        vec![("INSERT".to_owned(), first)],
        "only the committed write is streamed"
    );
}

#[tokio::test]
async fn a_transaction_whose_later_write_fails_undoes_the_earlier_ones_in_the_table_and_the_stream() {
    let stack = Stack::new().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (kept, added) = (format!("T#{id}-kept"), format!("T#{id}-added"));
    stack
        .dynamo
        .transact_write_items()
        .transact_items(put(&stack.table, &kept, "x", &[("label", s("before"))]))
        .send()
        .await
        .unwrap();

    // Every condition holds; the update then fails on its operand (a string cannot be added to).
    let refused = stack
        .dynamo
        .transact_write_items()
        .transact_items(put(&stack.table, &added, "x", &[]))
        .transact_items(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&stack.table)
                        .key("pk", s(&kept))
                        .key("sk", s("x"))
                        .update_expression("SET #label = :after, counter = #label + :one")
                        .expression_attribute_names("#label", "label")
                        .expression_attribute_values(":after", s("after"))
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();

    assert!(refused.code().is_some(), "refused: {refused:?}");
    assert!(item(&stack, &added, "x").await.is_none(), "the earlier put is undone");
    let label = item(&stack, &kept, "x").await.unwrap().get("label").cloned();
    assert_eq!(label, Some(s("before")), "the failed update changed nothing");
    assert_eq!(stream_of(&stack).await, vec![("INSERT".to_owned(), kept)]);
}

#[tokio::test]
async fn a_query_on_the_key_reads_only_its_partition_in_key_order_across_pages() {
    let stack = Stack::new().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (mine, other) = (format!("Q#{id}-mine"), format!("Q#{id}-other"));
    for sk in ["c", "a", "e", "b", "d"] {
        for pk in [&mine, &other] {
            stack
                .dynamo
                .put_item()
                .table_name(&stack.table)
                .item("pk", s(pk))
                .item("sk", s(sk))
                .send()
                .await
                .unwrap();
        }
    }

    let mut keys = Vec::new();
    let mut start = None;
    loop {
        let page = stack
            .dynamo
            .query()
            .table_name(&stack.table)
            .key_condition_expression("pk = :pk AND sk > :after")
            .expression_attribute_values(":pk", s(&mine))
            .expression_attribute_values(":after", s("a"))
            .scan_index_forward(false)
            .limit(2)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        keys.extend(
            page.items().iter().map(|i| (i["pk"].as_s().unwrap().clone(), i["sk"].as_s().unwrap().clone())),
        );
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }

    let expected: Vec<(String, String)> =
        ["e", "d", "c", "b"].iter().map(|sk| (mine.clone(), (*sk).to_owned())).collect();
    assert_eq!(keys, expected);
}

/// A table keyed by `id` with an index `by_user` on `user` (hash only), as the data map's sources
/// are.
async fn indexed_table(stack: &Stack) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType,
    };
    let name = format!("indexed-{}", uuid::Uuid::new_v4().simple());
    let key = |attr: &str| KeySchemaElement::builder().attribute_name(attr).key_type(KeyType::Hash).build();
    let attr = |attr: &str| {
        AttributeDefinition::builder().attribute_name(attr).attribute_type(ScalarAttributeType::S).build()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name("by_user")
        .key_schema(key("user").unwrap())
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .unwrap();
    stack
        .dynamo
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("id").unwrap())
        .attribute_definitions(attr("id").unwrap())
        .attribute_definitions(attr("user").unwrap())
        .global_secondary_indexes(index)
        .send()
        .await
        .unwrap();
    name
}

/// One page of `user`'s items through the index: their ids, and where the next page starts.
async fn index_page(
    stack: &Stack,
    table: &str,
    user: &str,
    start: Option<std::collections::HashMap<String, AttributeValue>>,
    forward: bool,
) -> (Vec<String>, Option<std::collections::HashMap<String, AttributeValue>>) {
    let out = stack
        .dynamo
        .query()
        .table_name(table)
        .index_name("by_user")
        .key_condition_expression("#u = :u")
        .expression_attribute_names("#u", "user")
        .expression_attribute_values(":u", s(user))
        .limit(4)
        .scan_index_forward(forward)
        .set_exclusive_start_key(start)
        .send()
        .await
        .unwrap();
    let ids = out.items().iter().map(|i| i["id"].as_s().unwrap().clone()).collect();
    (ids, out.last_evaluated_key.filter(|k| !k.is_empty()))
}

#[tokio::test]
async fn a_query_on_an_index_pages_through_its_partition_and_sees_every_write_between_pages() {
    let stack = Stack::new().await;
    let table = indexed_table(&stack).await;
    let write = |id: String, user: &str| {
        stack.dynamo.put_item().table_name(&table).item("id", s(&id)).item("user", s(user)).send()
    };
    for n in 0..10 {
        write(format!("b{n:02}"), "bob").await.unwrap();
        write(format!("a{n:02}"), "alice").await.unwrap();
    }
    let everything = |ids: &[&str]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();

    // Read whole, forwards and backwards: the partition in key order, no one else's item.
    let mut forward = Vec::new();
    let mut start = None;
    loop {
        let (ids, next) = index_page(&stack, &table, "bob", start, true).await;
        forward.extend(ids);
        match next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    let bobs: Vec<String> = (0..10).map(|n| format!("b{n:02}")).collect();
    assert_eq!(forward, bobs);
    let (backward, _) = index_page(&stack, &table, "bob", None, false).await;
    assert_eq!(backward, everything(&["b09", "b08", "b07", "b06"]));

    // The erasure's pattern: each page's items deleted or moved out of the partition before the
    // next page is read from a key that no longer exists; an item that joins later is seen.
    let (first, next) = index_page(&stack, &table, "bob", None, true).await;
    assert_eq!(first, everything(&["b00", "b01", "b02", "b03"]));
    for id in &first[..3] {
        stack.dynamo.delete_item().table_name(&table).key("id", s(id)).send().await.unwrap();
    }
    stack
        .dynamo
        .update_item()
        .table_name(&table)
        .key("id", s("b03"))
        .update_expression("REMOVE #u")
        .expression_attribute_names("#u", "user")
        .send()
        .await
        .unwrap();
    stack
        .dynamo
        .update_item()
        .table_name(&table)
        .key("id", s("a05"))
        .update_expression("SET #u = :u")
        .expression_attribute_names("#u", "user")
        .expression_attribute_values(":u", s("bob"))
        .send()
        .await
        .unwrap();
    write("b99".into(), "bob").await.unwrap();
    let (second, _) = index_page(&stack, &table, "bob", next, true).await;
    assert_eq!(second, everything(&["b04", "b05", "b06", "b07"]));
    let (now, _) = index_page(&stack, &table, "bob", None, true).await;
    assert_eq!(now, everything(&["a05", "b04", "b05", "b06"]), "moved in, moved out, deleted");
    let (alices, _) = index_page(&stack, &table, "alice", None, true).await;
    assert_eq!(alices, everything(&["a00", "a01", "a02", "a03"]));
}

#[tokio::test]
async fn items_read_back_through_every_read_hold_every_attribute_type_as_written() {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let stack = Stack::new().await;
    let table = indexed_table(&stack).await;
    let item = std::collections::HashMap::from([
        ("id".to_owned(), s("every-type")),
        ("user".to_owned(), s("carol")),
        ("n".to_owned(), AttributeValue::N("-12.5".into())),
        ("b".to_owned(), AttributeValue::B(Blob::new(vec![0, 159, 255, 10]))),
        ("yes".to_owned(), AttributeValue::Bool(true)),
        ("nothing".to_owned(), AttributeValue::Null(true)),
        ("list".to_owned(), AttributeValue::L(vec![s("x"), AttributeValue::N("1".into())])),
        ("map".to_owned(), AttributeValue::M([("inner".to_owned(), s("é ü 😀 \"quoted\""))].into())),
        ("ss".to_owned(), AttributeValue::Ss(vec!["a".into(), "b".into()])),
        ("ns".to_owned(), AttributeValue::Ns(vec!["1".into(), "2".into()])),
        ("bs".to_owned(), AttributeValue::Bs(vec![Blob::new(vec![1]), Blob::new(vec![2, 3])])),
    ]);
    stack.dynamo.put_item().table_name(&table).set_item(Some(item.clone())).send().await.unwrap();
    let sorted = |mut sets: std::collections::HashMap<String, AttributeValue>| {
        for value in sets.values_mut() {
            match value {
                AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.sort(),
                AttributeValue::Bs(v) => v.sort_by(|a, b| a.as_ref().cmp(b.as_ref())),
                _ => {}
            }
        }
        sets
    };
    let key = std::collections::HashMap::from([("id".to_owned(), s("every-type"))]);
    let got = stack.dynamo.get_item().table_name(&table).set_key(Some(key.clone())).send().await.unwrap();
    assert_eq!(sorted(got.item.unwrap()), sorted(item.clone()), "GetItem");
    let queried = stack
        .dynamo
        .query()
        .table_name(&table)
        .index_name("by_user")
        .key_condition_expression("#u = :u")
        .expression_attribute_names("#u", "user")
        .expression_attribute_values(":u", s("carol"))
        .send()
        .await
        .unwrap();
    assert_eq!(queried.count, 1);
    assert_eq!(sorted(queried.items.unwrap().remove(0)), sorted(item.clone()), "Query");
    let scanned = stack.dynamo.scan().table_name(&table).send().await.unwrap();
    assert_eq!(sorted(scanned.items.unwrap().remove(0)), sorted(item.clone()), "Scan");
    let batch = stack
        .dynamo
        .batch_get_item()
        .request_items(&table, KeysAndAttributes::builder().keys(key).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut read = batch.responses.unwrap().remove(&table).unwrap();
    assert_eq!(sorted(read.remove(0)), sorted(item), "BatchGetItem");
    let missing = std::collections::HashMap::from([("id".to_owned(), s("nobody"))]);
    let none = stack.dynamo.get_item().table_name(&table).set_key(Some(missing)).send().await.unwrap();
    assert!(none.item.is_none(), "no item, no error");
}

/// Every attribute type, in the shape the SDK reads back.
fn every_type(pk: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    use aws_sdk_dynamodb::primitives::Blob;
    std::collections::HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("n".to_owned(), AttributeValue::N("-12.5".into())),
        ("b".to_owned(), AttributeValue::B(Blob::new(vec![0, 159, 255, 10]))),
        ("yes".to_owned(), AttributeValue::Bool(true)),
        ("nothing".to_owned(), AttributeValue::Null(true)),
        ("list".to_owned(), AttributeValue::L(vec![s("x"), AttributeValue::N("1".into())])),
        ("map".to_owned(), AttributeValue::M([("inner".to_owned(), s("é ü 😀 \"quoted\""))].into())),
        ("ss".to_owned(), AttributeValue::Ss(vec!["a".into()])),
    ])
}

#[tokio::test]
async fn writes_return_every_attribute_type_as_written_and_the_stream_carries_it() {
    use aws_sdk_dynamodb::types::ReturnValue;
    let stack = Stack::new().await;
    let pk = format!("types-{}", uuid::Uuid::new_v4().simple());
    let item = every_type(&pk, "all");
    let key = std::collections::HashMap::from([("pk".to_owned(), s(&pk)), ("sk".to_owned(), s("all"))]);
    let table = &stack.table;
    let first = stack.dynamo.put_item().table_name(table).set_item(Some(item.clone())).send().await.unwrap();
    assert!(first.attributes.is_none(), "nothing was there before");
    let mut replacement = item.clone();
    replacement.insert("yes".to_owned(), AttributeValue::Bool(false));
    let again = stack
        .dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(replacement.clone()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(again.attributes.unwrap(), item, "PutItem ALL_OLD");
    let updated = stack
        .dynamo
        .update_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .update_expression("SET #n = :n")
        .expression_attribute_names("#n", "n")
        .expression_attribute_values(":n", AttributeValue::N("7".into()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    let mut expected = replacement;
    expected.insert("n".to_owned(), AttributeValue::N("7".into()));
    assert_eq!(updated.attributes.unwrap(), expected, "UpdateItem ALL_NEW");
    let deleted = stack
        .dynamo
        .delete_item()
        .table_name(table)
        .set_key(Some(key))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.attributes.unwrap(), expected, "DeleteItem ALL_OLD");

    let mut reader = StreamReader::open(&stack.sdk, table).await.unwrap();
    let mut records = Vec::new();
    loop {
        let page: Vec<Value> = reader.poll().await.unwrap();
        if page.is_empty() {
            break;
        }
        records.extend(page.into_iter().filter(|r| r["dynamodb"]["Keys"]["pk"]["S"] == pk.as_str()));
    }
    let names: Vec<_> = records.iter().map(|r| r["eventName"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["INSERT", "MODIFY", "MODIFY", "REMOVE"]);
    let image = &records[0]["dynamodb"]["NewImage"];
    assert_eq!(image["b"]["B"], "AJ//Cg==", "binary, base64 once");
    assert_eq!(image["n"]["N"], "-12.5");
    assert_eq!(image["yes"]["BOOL"], true);
    assert_eq!(image["nothing"]["NULL"], true);
    assert_eq!(image["list"]["L"][1]["N"], "1");
    assert_eq!(image["map"]["M"]["inner"]["S"], "é ü 😀 \"quoted\"");
    assert_eq!(image["ss"]["SS"][0], "a");
    assert_eq!(records[1]["dynamodb"]["NewImage"]["yes"]["BOOL"], false);
    assert_eq!(records[2]["dynamodb"]["NewImage"]["n"]["N"], "7");
    assert_eq!(records[3]["dynamodb"]["OldImage"]["n"]["N"], "7");
    let created = records[0]["dynamodb"]["ApproximateCreationDateTime"].as_f64().unwrap_or_default();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - created).abs() < 3600.0, "a creation time in epoch seconds, in UTC: {created} vs {now}");
}

#[tokio::test]
async fn a_recurring_expression_applies_each_requests_own_names_and_values() {
    let stack = Stack::new().await;
    let pk = format!("recur-{}", uuid::Uuid::new_v4().simple());
    let key = std::collections::HashMap::from([("pk".to_owned(), s(&pk)), ("sk".to_owned(), s("x"))]);
    // The same update and condition text, sent again with other names and values.
    let update = |name: &str, value: &str, want: &str| {
        stack
            .dynamo
            .update_item()
            .table_name(&stack.table)
            .set_key(Some(key.clone()))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_not_exists(#s) OR #s = :want")
            .expression_attribute_names("#a", name)
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":v", s(value))
            .expression_attribute_values(":want", s(want))
            .send()
    };
    update("state", "one", "anything").await.unwrap();
    update("colour", "red", "one").await.unwrap();
    update("state", "two", "one").await.unwrap();
    let refused = update("colour", "blue", "one").await.unwrap_err();
    assert_eq!(refused.code(), Some("ConditionalCheckFailedException"));
    let stored = item(&stack, &pk, "x").await.unwrap();
    assert_eq!(stored["state"], s("two"));
    assert_eq!(stored["colour"], s("red"));
}

#[tokio::test]
async fn an_index_follows_new_partitions_and_undone_transactions_between_queries() {
    let stack = Stack::new().await;
    let table = indexed_table(&stack).await;
    let put_user = |id: &str, user: &str| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&table).item("id", s(id)).item("user", s(user)).build().unwrap())
            .build()
    };
    stack.dynamo.transact_write_items().transact_items(put_user("a0", "alice")).send().await.unwrap();
    assert_eq!(index_page(&stack, &table, "alice", None, true).await.0, ["a0"]);

    // A partition that did not exist when the index was first read.
    stack
        .dynamo
        .put_item()
        .table_name(&table)
        .item("id", s("c0"))
        .item("user", s("carol"))
        .send()
        .await
        .unwrap();
    assert_eq!(index_page(&stack, &table, "carol", None, true).await.0, ["c0"]);

    // A transaction whose later write fails: its earlier put (a new carol) and move (alice's item
    // to carol) are undone, in the index too.
    let refused = stack
        .dynamo
        .transact_write_items()
        .transact_items(put_user("c1", "carol"))
        .transact_items(put_user("a0", "carol"))
        .transact_items(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&table)
                        .key("id", s("c0"))
                        .update_expression("SET n = #u + :one")
                        .expression_attribute_names("#u", "user")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await;
    assert!(refused.is_err(), "a string cannot be added to");
    assert_eq!(index_page(&stack, &table, "carol", None, true).await.0, ["c0"]);
    assert_eq!(index_page(&stack, &table, "alice", None, true).await.0, ["a0"]);

    // The same writes, committed.
    stack
        .dynamo
        .transact_write_items()
        .transact_items(put_user("c1", "carol"))
        .transact_items(put_user("a0", "carol"))
        .send()
        .await
        .unwrap();
    assert_eq!(index_page(&stack, &table, "carol", None, true).await.0, ["a0", "c0", "c1"]);
    assert!(index_page(&stack, &table, "alice", None, true).await.0.is_empty());
}

/// A table keyed by `id` with an index `by_due` on (`due_pk`, `due_sk`), as the due-date index is.
async fn due_table(stack: &Stack) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType,
    };
    let name = format!("due-{}", uuid::Uuid::new_v4().simple());
    let key =
        |attr: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(attr).key_type(kind).build();
    let attr = |attr: &str| {
        AttributeDefinition::builder().attribute_name(attr).attribute_type(ScalarAttributeType::S).build()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name("by_due")
        .key_schema(key("due_pk", KeyType::Hash).unwrap())
        .key_schema(key("due_sk", KeyType::Range).unwrap())
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .unwrap();
    let mut create = stack
        .dynamo
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("id", KeyType::Hash).unwrap())
        .global_secondary_indexes(index);
    for a in ["id", "due_pk", "due_sk"] {
        create = create.attribute_definitions(attr(a).unwrap());
    }
    create.send().await.unwrap();
    name
}

/// The ids `condition` selects in partition `open`, read two at a time.
async fn due_ids(
    stack: &Stack,
    table: &str,
    condition: &str,
    values: &[(&str, &str)],
    forward: bool,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut start = None;
    loop {
        let mut query = stack
            .dynamo
            .query()
            .table_name(table)
            .index_name("by_due")
            .key_condition_expression(format!("due_pk = :pk AND {condition}"))
            .expression_attribute_values(":pk", s("open"))
            .limit(2)
            .scan_index_forward(forward)
            .set_exclusive_start_key(start.take());
        for (name, value) in values {
            query = query.expression_attribute_values(*name, s(value));
        }
        let out = query.send().await.unwrap();
        ids.extend(out.items().iter().map(|i| i["id"].as_s().unwrap().clone()));
        match out.last_evaluated_key.filter(|k| !k.is_empty()) {
            Some(next) => start = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn a_sort_key_condition_on_an_index_selects_its_slice_of_the_partition_in_order_across_pages() {
    let stack = Stack::new().await;
    let table = due_table(&stack).await;
    let due = |id: &str, partition: &str, day: &str| {
        stack
            .dynamo
            .put_item()
            .table_name(&table)
            .item("id", s(id))
            .item("due_pk", s(partition))
            .item("due_sk", s(&format!("{day}#{id}")))
            .send()
    };
    for (id, day) in [
        ("e", "2026-12-05"),
        ("a", "2026-12-01"),
        ("c", "2026-12-03"),
        ("d", "2026-12-04"),
        ("b", "2026-12-02"),
    ] {
        due(id, "open", day).await.unwrap();
    }
    due("x", "closed", "2026-12-01").await.unwrap();
    let upper = [(":upper", "2026-12-03~")];
    assert_eq!(due_ids(&stack, &table, "due_sk <= :upper", &upper, true).await, ["a", "b", "c"]);
    assert_eq!(due_ids(&stack, &table, "due_sk <= :upper", &upper, false).await, ["c", "b", "a"]);
    assert_eq!(due_ids(&stack, &table, "due_sk > :upper", &upper, true).await, ["d", "e"]);
    let between = [(":from", "2026-12-02"), (":to", "2026-12-04~")];
    assert_eq!(
        due_ids(&stack, &table, "due_sk BETWEEN :from AND :to", &between, true).await,
        ["b", "c", "d"]
    );
    let prefix = [(":day", "2026-12-04")];
    assert_eq!(due_ids(&stack, &table, "begins_with(due_sk, :day)", &prefix, true).await, ["d"]);

    // Writes between queries move items into and out of the slice.
    due("e", "open", "2026-11-30").await.unwrap();
    due("a", "closed", "2026-12-01").await.unwrap();
    stack.dynamo.delete_item().table_name(&table).key("id", s("b")).send().await.unwrap();
    assert_eq!(due_ids(&stack, &table, "due_sk <= :upper", &upper, true).await, ["e", "c"]);
}
