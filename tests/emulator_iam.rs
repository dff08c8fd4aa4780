//! The emulator enforces IAM for role credentials as AWS would (dev/iam_guard.py): a function run
//! locally under its own role fails on every call its role does not allow, so a missing grant in
//! the template shows up here and not first in the deployed stack. Each test makes its own role
//! with one inline policy, assumes it with the developer key and calls with the session's keys.

use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};
use serde_json::{Value, json};
use std::fmt::Debug;

use crate::support::*;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
const INDEX: &str = "by_owner";

/// The developer's SDK (key `test`) and an SDK signed as a fresh role with these statements.
struct Role {
    admin: aws_config::SdkConfig,
    sdk: aws_config::SdkConfig,
}

impl Role {
    async fn with(statements: Value) -> Role {
        let (admin, endpoint) = emulator_sdk().await;
        let iam = aws_sdk_iam::Client::new(&admin);
        let name = format!("fn-{}", uuid::Uuid::new_v4().simple());
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": "lambda.amazonaws.com" },
                "Action": "sts:AssumeRole"
            }]
        });
        let role = iam
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("create role")
            .role
            .expect("a role");
        iam.put_role_policy()
            .role_name(&name)
            .policy_name("inline")
            .policy_document(json!({ "Version": "2012-10-17", "Statement": statements }).to_string())
            .send()
            .await
            .expect("put role policy");
        let session = aws_sdk_sts::Client::new(&admin)
            .assume_role()
            .role_arn(role.arn())
            .role_session_name("local-function")
            .send()
            .await
            .expect("the developer key may assume the role")
            .credentials
            .expect("session credentials");
        let credentials = Credentials::new(
            session.access_key_id(),
            session.secret_access_key(),
            Some(session.session_token().to_owned()),
            None,
            "role",
        );
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .load()
            .await;
        Role { admin, sdk }
    }

    fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    fn admin_dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.admin)
    }
}

fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
}

/// A table keyed by `pk`, with an index on `owner`.
async fn new_table(dynamo: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("iam-{}", uuid::Uuid::new_v4().simple());
    let key = |attribute: &str| {
        KeySchemaElement::builder().attribute_name(attribute).key_type(KeyType::Hash).build().unwrap()
    };
    let attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    dynamo
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk"))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("owner"))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(INDEX)
                .key_schema(key("owner"))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    name
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The error code of a call that must have been refused.
fn refused<T: Debug, E: ProvideErrorMetadata + Debug>(result: Result<T, E>) -> String {
    let err = result.expect_err("the call must be denied");
    err.code().unwrap_or_else(|| panic!("an error code: {err:?}")).to_owned()
}

fn assert_access_denied<T: Debug, E: ProvideErrorMetadata + Debug>(result: Result<T, E>) {
    let code = refused(result);
    assert!(code == "AccessDeniedException" || code == "AccessDenied", "AccessDenied, not {code}");
}

#[tokio::test]
async fn a_role_allowed_get_and_put_on_a_table_uses_it_but_may_not_put_elsewhere_nor_scan() {
    let admin = aws_sdk_dynamodb::Client::new(&emulator_sdk().await.0);
    let (allowed, other) = (new_table(&admin).await, new_table(&admin).await);
    let role = Role::with(json!([{
        "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table_arn(&allowed)
    }]))
    .await;

    role.dynamo().put_item().table_name(&allowed).item("pk", s("a")).send().await.expect("put allowed");
    let item =
        role.dynamo().get_item().table_name(&allowed).key("pk", s("a")).send().await.expect("get allowed");
    assert_eq!(item.item.and_then(|i| i.get("pk").cloned()), Some(s("a")));
    assert_eq!(
        refused(role.dynamo().put_item().table_name(&other).item("pk", s("a")).send().await),
        "AccessDeniedException"
    );
    assert_eq!(refused(role.dynamo().scan().table_name(&allowed).send().await), "AccessDeniedException");
    let untouched = admin.scan().table_name(&other).send().await.unwrap();
    assert_eq!(untouched.count(), 0, "a denied write changes nothing");
}

async fn put_and_check(role: &Role, table: &str) -> Result<(), impl ProvideErrorMetadata + Debug> {
    let put = Put::builder().table_name(table).item("pk", s("new")).build().unwrap();
    let check = ConditionCheck::builder()
        .table_name(table)
        .key("pk", s("other"))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap();
    role.dynamo()
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .send()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_transaction_with_a_condition_check_needs_condition_check_item() {
    let admin = aws_sdk_dynamodb::Client::new(&emulator_sdk().await.0);
    let table = new_table(&admin).await;
    let put_only = Role::with(json!([{
        "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn(&table)
    }]))
    .await;
    let put_and_check_role = Role::with(json!([{
        "Effect": "Allow",
        "Action": ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"],
        "Resource": table_arn(&table)
    }]))
    .await;

    assert_access_denied(put_and_check(&put_only, &table).await);
    assert_eq!(admin.scan().table_name(&table).send().await.unwrap().count(), 0);
    put_and_check(&put_and_check_role, &table).await.expect("both actions allowed");
    assert_eq!(put_and_check_role.admin_dynamo().scan().table_name(&table).send().await.unwrap().count(), 1);
}

#[tokio::test]
async fn a_query_on_an_index_needs_the_index_arn() {
    let admin = aws_sdk_dynamodb::Client::new(&emulator_sdk().await.0);
    let table = new_table(&admin).await;
    let query = |role: &Role| {
        role.dynamo()
            .query()
            .table_name(&table)
            .index_name(INDEX)
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s("someone"))
            .send()
    };
    let table_only = Role::with(json!([{
        "Effect": "Allow", "Action": "dynamodb:Query", "Resource": table_arn(&table)
    }]))
    .await;
    let with_index = Role::with(json!([{
        "Effect": "Allow", "Action": "dynamodb:Query", "Resource": format!("{}/index/*", table_arn(&table))
    }]))
    .await;

    assert_eq!(refused(query(&table_only).await), "AccessDeniedException");
    query(&with_index).await.expect("the index ARN is allowed");
}

#[tokio::test]
async fn listing_a_bucket_is_allowed_only_under_the_policys_s3_prefix() {
    let admin = emulator_sdk().await.0;
    let bucket = format!("iam-{}", uuid::Uuid::new_v4().simple());
    devstack::provision::create_bucket(&devstack::provision::s3_client(&admin), &bucket).await.unwrap();
    let role = Role::with(json!([{
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": format!("arn:aws:s3:::{bucket}"),
        "Condition": { "StringLike": { "s3:prefix": "exports/*" } }
    }]))
    .await;
    let s3 = devstack::provision::s3_client(&role.sdk);

    s3.list_objects_v2().bucket(&bucket).prefix("exports/").send().await.expect("under exports/");
    assert_access_denied(s3.list_objects_v2().bucket(&bucket).prefix("other/").send().await);
    assert_access_denied(s3.list_objects_v2().bucket(&bucket).send().await);
}

#[tokio::test]
async fn putting_an_object_needs_the_objects_arn() {
    let admin = emulator_sdk().await.0;
    let bucket = format!("iam-{}", uuid::Uuid::new_v4().simple());
    let admin_s3 = devstack::provision::s3_client(&admin);
    devstack::provision::create_bucket(&admin_s3, &bucket).await.unwrap();
    let role = Role::with(json!([{
        "Effect": "Allow", "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/exports/*")
    }]))
    .await;
    let s3 = devstack::provision::s3_client(&role.sdk);
    let put =
        |key: &'static str| s3.put_object().bucket(&bucket).key(key).body(b"zip".to_vec().into()).send();

    put("exports/a.zip").await.expect("under exports/");
    assert_access_denied(put("other/a.zip").await);
    let listed = admin_s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["exports/a.zip"]);
}

async fn send_mail(role: &Role, configuration_set: &str) -> Result<(), impl ProvideErrorMetadata + Debug> {
    use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
    let text = |data: &str| Content::builder().data(data).build().unwrap();
    aws_sdk_sesv2::Client::new(&role.sdk)
        .send_email()
        .from_email_address(MAIL_FROM)
        .destination(Destination::builder().to_addresses(unique_address("iam")).build())
        .content(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(text("subject"))
                        .body(Body::builder().text(text("body")).build())
                        .build(),
                )
                .build(),
        )
        .configuration_set_name(configuration_set)
        .send()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn sending_mail_through_a_configuration_set_needs_the_sets_arn_too() {
    let admin = aws_sdk_sesv2::Client::new(&emulator_sdk().await.0);
    devstack::provision::create_mail_identity(&admin, MAIL_FROM).await.unwrap();
    let set = format!("iam-{}", uuid::Uuid::new_v4().simple());
    devstack::provision::create_configuration_set(&admin, &set).await.unwrap();
    let identity = format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/{MAIL_FROM}");
    let identity_only =
        Role::with(json!([{ "Effect": "Allow", "Action": "ses:SendEmail", "Resource": identity }])).await;
    let both = Role::with(json!([{
        "Effect": "Allow",
        "Action": "ses:SendEmail",
        "Resource": [identity, format!("arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{set}")]
    }]))
    .await;

    assert_eq!(refused(send_mail(&identity_only, &set).await), "AccessDeniedException");
    send_mail(&both, &set).await.expect("identity and configuration set allowed");
}

#[tokio::test]
async fn a_role_may_send_to_its_queue_and_not_to_another() {
    let admin = aws_sdk_sqs::Client::new(&emulator_sdk().await.0);
    let mut urls = Vec::new();
    let mut names = Vec::new();
    for _ in 0..2 {
        let name = format!("iam-{}", uuid::Uuid::new_v4().simple());
        urls.push(admin.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap());
        names.push(name);
    }
    let role = Role::with(json!([{
        "Effect": "Allow", "Action": "sqs:SendMessage",
        "Resource": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{}", names[0])
    }]))
    .await;
    let sqs = aws_sdk_sqs::Client::new(&role.sdk);

    sqs.send_message().queue_url(&urls[0]).message_body("job").send().await.expect("its own queue");
    assert_access_denied(sqs.send_message().queue_url(&urls[1]).message_body("job").send().await);
}

#[tokio::test]
async fn an_explicit_deny_beats_an_allow() {
    let admin = aws_sdk_dynamodb::Client::new(&emulator_sdk().await.0);
    let table = new_table(&admin).await;
    let role = Role::with(json!([
        { "Effect": "Allow", "Action": "dynamodb:*", "Resource": "*" },
        { "Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": table_arn(&table) }
    ]))
    .await;

    role.dynamo()
        .put_item()
        .table_name(&table)
        .item("pk", s("a"))
        .send()
        .await
        .expect("allowed by dynamodb:*");
    assert_eq!(
        refused(role.dynamo().delete_item().table_name(&table).key("pk", s("a")).send().await),
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn the_developer_key_is_never_denied() {
    let admin = emulator_sdk().await.0;
    let dynamo = aws_sdk_dynamodb::Client::new(&admin);
    let table = new_table(&dynamo).await;
    // A role denied everything exists; the developer key is no role and is not checked.
    let _denied = Role::with(json!([{ "Effect": "Deny", "Action": "*", "Resource": "*" }])).await;

    dynamo.put_item().table_name(&table).item("pk", s("a")).send().await.expect("put");
    dynamo.scan().table_name(&table).send().await.expect("scan");
    dynamo.delete_item().table_name(&table).key("pk", s("a")).send().await.expect("delete");
    aws_sdk_iam::Client::new(&admin).list_roles().send().await.expect("iam");
    let bucket = format!("iam-{}", uuid::Uuid::new_v4().simple());
    let s3 = devstack::provision::s3_client(&admin);
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    s3.list_objects_v2().bucket(&bucket).send().await.expect("list without a prefix");
}

#[tokio::test]
async fn a_key_the_emulator_never_issued_is_rejected() {
    let (_, endpoint) = emulator_sdk().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new(
            "ASIANEVERISSUED",
            "secret",
            Some("token".into()),
            None,
            "forged",
        ))
        .load()
        .await;

    let code = refused(aws_sdk_dynamodb::Client::new(&sdk).list_tables().send().await);
    assert_eq!(code, "UnrecognizedClientException");
}
