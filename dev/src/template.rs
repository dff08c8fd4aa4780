//! Reads the SAM template, so the local stack is built from the definitions the deployed stack
//! uses. Only literal properties are read; intrinsic functions (`!Ref`, `!Sub`) are left alone.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_norway::Value;
use std::path::{Path, PathBuf};

/// The workspace's `infra/template.yaml`, or `INFRA_TEMPLATE` (to run the checks against another
/// revision of it, e.g. `git show HEAD~1:infra/template.yaml`).
pub fn default_path() -> PathBuf {
    match std::env::var_os("INFRA_TEMPLATE") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
    }
}

pub struct Template {
    root: Value,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Projection {
    pub projection_type: String,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GlobalSecondaryIndex {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: Projection,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    pub stream_view_type: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLive {
    pub attribute_name: String,
    pub enabled: bool,
}

/// The properties of an `AWS::DynamoDB::Table` that decide its shape.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    pub stream_specification: Option<StreamSpecification>,
    pub time_to_live_specification: Option<TimeToLive>,
    pub billing_mode: Option<String>,
}

/// The properties of an `AWS::S3::Bucket` the local stack reproduces.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct BucketSpec {
    pub versioning_configuration: Option<Versioning>,
    pub lifecycle_configuration: Option<Lifecycle>,
    pub public_access_block_configuration: Option<PublicAccessBlock>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Versioning {
    pub status: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Lifecycle {
    pub rules: Vec<LifecycleRule>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleRule {
    pub id: String,
    pub status: String,
    pub expiration_in_days: Option<i32>,
    pub noncurrent_version_expiration: Option<NoncurrentExpiration>,
    pub abort_incomplete_multipart_upload: Option<AbortIncomplete>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct NoncurrentExpiration {
    pub noncurrent_days: i32,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AbortIncomplete {
    pub days_after_initiation: i32,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub block_public_policy: bool,
    pub ignore_public_acls: bool,
    pub restrict_public_buckets: bool,
}

/// An `AWS::SQS::Queue` as the local stack creates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub fifo: bool,
    /// The dead-letter queue's logical id and the receives before a message moves there.
    pub redrive: Option<(String, u32)>,
}

impl QueueSpec {
    /// The local queue name: the logical id, with `.fifo` where SQS requires it.
    pub fn local_name(&self) -> String {
        if self.fifo { format!("{}.fifo", self.logical_id) } else { self.logical_id.clone() }
    }
}

/// A queue event source of a function (`Events: {Type: SQS}`): what Lambda polls and invokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEventSource {
    /// The queue's logical id (`Queue: !GetAtt <id>.Arn`).
    pub queue: String,
    /// The function's logical id and the binary it runs.
    pub function: String,
    pub binary: String,
    pub batch_size: Option<u64>,
    pub reports_batch_item_failures: bool,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Template::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Template> {
        Ok(Template { root: serde_norway::from_str(text)? })
    }

    /// The logical ids of the resources of one type, in file order.
    pub fn resources_of_type(&self, kind: &str) -> Vec<String> {
        self.root["Resources"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .filter(|(_, r)| r["Type"].as_str() == Some(kind))
                    .filter_map(|(id, _)| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn table(&self, logical_id: &str) -> Result<TableSpec> {
        let resource = &self.root["Resources"][logical_id];
        if resource["Type"].as_str() != Some("AWS::DynamoDB::Table") {
            bail!("{logical_id} is not an AWS::DynamoDB::Table");
        }
        serde_norway::from_value(resource["Properties"].clone())
            .with_context(|| format!("{logical_id} properties"))
    }

    /// The requests table (`RequestsTable`): the table of the stack (the other, the erasure
    /// tombstones, is [`Template::tombstones_table`]).
    pub fn the_table(&self) -> Result<TableSpec> {
        self.table("RequestsTable")
    }

    /// The erasure tombstones' table (`TombstonesTable`), which a restore never rolls back.
    pub fn tombstones_table(&self) -> Result<TableSpec> {
        self.table("TombstonesTable")
    }

    /// The properties of a resource with every `!Ref` to a parameter replaced by its default,
    /// as the local stack has no other parameter values.
    pub fn resolved_properties(&self, logical_id: &str) -> Value {
        self.resolve(&self.root["Resources"][logical_id]["Properties"])
    }

    fn resolve(&self, value: &Value) -> Value {
        match value {
            Value::Tagged(tagged) if tagged.tag == "Ref" => match tagged.value.as_str() {
                Some(name) if !self.root["Parameters"][name].is_null() => {
                    self.root["Parameters"][name]["Default"].clone()
                }
                _ => value.clone(),
            },
            Value::Mapping(map) => {
                Value::Mapping(map.iter().map(|(k, v)| (k.clone(), self.resolve(v))).collect())
            }
            Value::Sequence(items) => Value::Sequence(items.iter().map(|v| self.resolve(v)).collect()),
            other => other.clone(),
        }
    }

    pub fn bucket(&self, logical_id: &str) -> Result<BucketSpec> {
        if self.root["Resources"][logical_id]["Type"].as_str() != Some("AWS::S3::Bucket") {
            bail!("{logical_id} is not an AWS::S3::Bucket");
        }
        serde_norway::from_value(self.resolved_properties(logical_id))
            .with_context(|| format!("{logical_id} properties"))
    }

    /// Every queue, dead-letter queues first (they must exist before the queues that use them).
    pub fn queues(&self) -> Result<Vec<QueueSpec>> {
        let mut queues = Vec::new();
        for id in self.resources_of_type("AWS::SQS::Queue") {
            let properties = self.resolved_properties(&id);
            let fifo = properties["FifoQueue"].as_bool().unwrap_or(false);
            let redrive = match &properties["RedrivePolicy"] {
                Value::Null => None,
                policy => {
                    let target = match &policy["deadLetterTargetArn"] {
                        Value::Tagged(t) if t.tag == "GetAtt" => {
                            t.value.as_str().and_then(|s| s.strip_suffix(".Arn")).map(str::to_owned)
                        }
                        _ => None,
                    }
                    .with_context(|| format!("{id}: deadLetterTargetArn must be !GetAtt <Queue>.Arn"))?;
                    let receives = policy["maxReceiveCount"]
                        .as_u64()
                        .with_context(|| format!("{id}: maxReceiveCount must be a number"))?;
                    Some((target, receives as u32))
                }
            };
            queues.push(QueueSpec { logical_id: id, fifo, redrive });
        }
        queues.sort_by_key(|q| q.redrive.is_some());
        Ok(queues)
    }

    /// Every function's SQS event sources, in file order.
    pub fn queue_event_sources(&self) -> Result<Vec<QueueEventSource>> {
        let mut sources = Vec::new();
        for function in self.resources_of_type("AWS::Serverless::Function") {
            let resource = &self.root["Resources"][function.as_str()];
            let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
            for (name, event) in events {
                if event["Type"].as_str() != Some("SQS") {
                    continue;
                }
                let properties = &event["Properties"];
                let queue = match &properties["Queue"] {
                    Value::Tagged(t) if t.tag == "GetAtt" => {
                        t.value.as_str().and_then(|s| s.strip_suffix(".Arn")).map(str::to_owned)
                    }
                    _ => None,
                }
                .with_context(|| format!("{function} event {name:?}: Queue must be !GetAtt <Queue>.Arn"))?;
                let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .with_context(|| format!("{function} has no BuildProperties.Binary"))?
                    .to_owned();
                let reports_batch_item_failures = properties["FunctionResponseTypes"]
                    .as_sequence()
                    .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
                sources.push(QueueEventSource {
                    queue,
                    function: function.clone(),
                    binary,
                    batch_size: properties["BatchSize"].as_u64(),
                    reports_batch_item_failures,
                });
            }
        }
        Ok(sources)
    }

    /// The environment variables (of `Globals` or any function) set to `!Ref <logical_id>`.
    pub fn variables_referring_to(&self, logical_id: &str) -> Vec<String> {
        let mut environments = vec![&self.root["Globals"]["Function"]["Environment"]["Variables"]];
        for function in self.resources_of_type("AWS::Serverless::Function") {
            environments
                .push(&self.root["Resources"][function.as_str()]["Properties"]["Environment"]["Variables"]);
        }
        let mut names: Vec<String> = environments
            .into_iter()
            .filter_map(Value::as_mapping)
            .flat_map(|variables| variables.iter())
            .filter(|(_, value)| {
                matches!(value, Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some(logical_id))
            })
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn parameter_default(&self, name: &str) -> Option<String> {
        match &self.root["Parameters"][name]["Default"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn raw(&self) -> &Value {
        &self.root
    }
}
