//! The data map's sources in the emulator, filled with the synthetic people of
//! `dev/seed/sample-data.json`.

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use privacy_shared::datamap::{DataMap, Location, SubjectAttribute};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seed/sample-data.json")
}

#[derive(Debug, Deserialize)]
pub struct SampleData {
    /// Records per data-map source id.
    pub items: BTreeMap<String, Vec<Value>>,
    /// Objects per data-map source id.
    pub objects: BTreeMap<String, Vec<SampleObject>>,
}

#[derive(Debug, Deserialize)]
pub struct SampleObject {
    pub key: String,
    pub content_type: String,
    pub size: usize,
}

impl SampleData {
    pub fn load(path: &Path) -> Result<SampleData> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Deterministic bytes standing in for a recording.
pub fn object_bytes(key: &str, size: usize) -> Vec<u8> {
    key.bytes().chain(b" ".iter().copied()).cycle().take(size).collect()
}

fn attribute_name(attribute: SubjectAttribute) -> &'static str {
    match attribute {
        SubjectAttribute::Email => "email",
        SubjectAttribute::UserId => "user_id",
    }
}

/// Creates every table and bucket of the map (as the company's own services would have them:
/// keyed as the map says, with the index the map reads).
pub async fn create_sources(sdk: &aws_config::SdkConfig, map: &DataMap) -> Result<()> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = crate::provision::s3_client(sdk);
    for source in map.sources() {
        match &source.location {
            Location::Table { table, find_by, table_key, index, .. } => {
                let mut attributes = vec![table_key.clone()];
                let mut request = dynamo
                    .create_table()
                    .table_name(table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(table_key)
                            .key_type(KeyType::Hash)
                            .build()?,
                    );
                if let Some(index) = index {
                    let key = attribute_name(*find_by);
                    attributes.push(key.to_owned());
                    request = request.global_secondary_indexes(
                        GlobalSecondaryIndex::builder()
                            .index_name(index)
                            .key_schema(
                                KeySchemaElement::builder()
                                    .attribute_name(key)
                                    .key_type(KeyType::Hash)
                                    .build()?,
                            )
                            .projection(Projection::builder().projection_type(ProjectionType::All).build())
                            .build()?,
                    );
                }
                for name in attributes {
                    request = request.attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(name)
                            .attribute_type(ScalarAttributeType::S)
                            .build()?,
                    );
                }
                match request.send().await {
                    Ok(_) => {}
                    Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
                    Err(err) => return Err(err).with_context(|| format!("creating source table {table}")),
                }
            }
            Location::Objects { bucket, .. } => crate::provision::create_bucket(&s3, bucket).await?,
            // The company's own systems: the reference webhook source serves `webhook_sources`
            // of the sample data itself (dev/src/source_server.rs); a manual source has no store.
            Location::Webhook { .. } | Location::Manual { .. } => {}
        }
    }
    Ok(())
}

/// Writes the sample records and objects into the map's sources.
pub async fn seed(sdk: &aws_config::SdkConfig, map: &DataMap, data: &SampleData) -> Result<usize> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = crate::provision::s3_client(sdk);
    let mut written = 0;
    for (id, items) in &data.items {
        let Some(Location::Table { table, .. }) = map.source(id).map(|s| &s.location) else {
            bail!("sample data names `{id}`, which is not a table source of the data map");
        };
        for item in items {
            dynamo
                .put_item()
                .table_name(table)
                .set_item(Some(serde_dynamo::to_item(item)?))
                .send()
                .await
                .with_context(|| format!("seeding {table}"))?;
            written += 1;
        }
    }
    for (id, objects) in &data.objects {
        let Some(Location::Objects { bucket, .. }) = map.source(id).map(|s| &s.location) else {
            bail!("sample data names `{id}`, which is not an object source of the data map");
        };
        for object in objects {
            s3.put_object()
                .bucket(bucket)
                .key(&object.key)
                .content_type(&object.content_type)
                .body(object_bytes(&object.key, object.size).into())
                .send()
                .await
                .with_context(|| format!("seeding s3://{bucket}/{}", object.key))?;
            written += 1;
        }
    }
    Ok(written)
}
