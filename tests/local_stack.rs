//! The local stack is built from the deployed stack's template: what the emulator holds after
//! provisioning is what the template declares, so local and deployed cannot drift.

use devstack::template::{self, Template};
use integration_tests::*;
use privacy_shared::store::DUE_INDEX;

#[tokio::test]
async fn the_provisioned_table_matches_the_template() {
    let stack = Stack::new().await;
    let spec = Template::load(&template::default_path())
        .unwrap()
        .the_table()
        .unwrap();
    let table = stack
        .dynamo
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();

    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    let declared: Vec<(String, String)> = spec
        .key_schema
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
        .collect();
    assert_eq!(keys, declared);

    let stream = table.stream_specification().expect("stream enabled");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        spec.stream_specification
            .as_ref()
            .map(|s| s.stream_view_type.as_str())
    );
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        Some("NEW_AND_OLD_IMAGES")
    );

    let indexes: Vec<(String, Vec<String>, String)> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap_or_default().to_owned(),
                g.key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_owned())
                    .collect(),
                g.projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let declared: Vec<(String, Vec<String>, String)> = spec
        .global_secondary_indexes
        .iter()
        .map(|g| {
            (
                g.index_name.clone(),
                g.key_schema
                    .iter()
                    .map(|k| k.attribute_name.clone())
                    .collect(),
                g.projection.projection_type.clone(),
            )
        })
        .collect();
    assert_eq!(indexes, declared);
    assert!(
        indexes.iter().any(|(name, _, _)| name == DUE_INDEX),
        "the code's index name is the template's"
    );

    let ttl = stack
        .dynamo
        .describe_time_to_live()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(
        ttl.attribute_name(),
        spec.time_to_live_specification
            .as_ref()
            .map(|t| t.attribute_name.as_str())
    );
}

#[test]
fn the_functions_environment_is_declared_for_every_function() {
    let template = Template::load(&template::default_path()).unwrap();
    let vars = template.raw()["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    for name in [
        "TABLE_NAME",
        "MAIL_FROM",
        "PUBLIC_BASE_URL",
        "BUSINESS_TIME_ZONE",
        "BUSINESS_HOLIDAYS",
    ] {
        assert!(
            vars.contains_key(name),
            "{name} is not set for the deployed functions"
        );
    }
    let functions = template.resources_of_type("AWS::Serverless::Function");
    assert_eq!(functions.len(), 2);
}
