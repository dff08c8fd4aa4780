//! Reads a table's stream from the emulator and shapes each record as Lambda delivers it to a
//! stream consumer (`{"Records": [...]}` with DynamoDB-JSON images).

use anyhow::{Context, Result};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// Next iterator per shard.
    iterators: HashMap<String, String>,
    region: String,
}

fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::M(m) => json!({"M": image_json(m)}),
        AttributeValue::L(l) => json!({"L": l.iter().map(attribute_json).collect::<Vec<_>>()}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Bs(v) => json!({"BS": v.iter().map(b64).collect::<Vec<_>>()}),
        _ => Value::Null,
    }
}

fn image_json(image: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(image.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<Map<_, _>>())
}

/// Whether a shard's range holds `sequence` (sequence numbers are decimal, of any length).
fn holds(range: Option<&aws_sdk_dynamodbstreams::types::SequenceNumberRange>, sequence: &str) -> bool {
    let number = |s: &str| (s.len(), s.to_owned());
    let Some(range) = range else { return false };
    let after_start = range.starting_sequence_number().is_none_or(|start| number(start) <= number(sequence));
    let before_end = range.ending_sequence_number().is_none_or(|end| number(sequence) <= number(end));
    after_start && before_end
}

impl StreamReader {
    /// Opens every shard of the table's latest stream at its oldest record.
    pub async fn open(sdk: &aws_config::SdkConfig, table: &str) -> Result<StreamReader> {
        StreamReader::open_from(sdk, table, None).await
    }

    /// Opens the table's latest stream at one record (in the shard whose range holds it), to
    /// read again what a failure destination described (`devstack redrive`).
    pub async fn open_at(sdk: &aws_config::SdkConfig, table: &str, sequence: &str) -> Result<StreamReader> {
        StreamReader::open_from(sdk, table, Some((sequence, ShardIteratorType::AtSequenceNumber))).await
    }

    /// Opens the table's latest stream just after one record: where a pump that processed up to
    /// it goes on (Lambda's mapping keeps such a checkpoint per shard).
    pub async fn open_after(
        sdk: &aws_config::SdkConfig,
        table: &str,
        sequence: &str,
    ) -> Result<StreamReader> {
        StreamReader::open_from(sdk, table, Some((sequence, ShardIteratorType::AfterSequenceNumber))).await
    }

    async fn open_from(
        sdk: &aws_config::SdkConfig,
        table: &str,
        at: Option<(&str, ShardIteratorType)>,
    ) -> Result<StreamReader> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let described =
            dynamo.describe_table().table_name(table).send().await.context("describing the table")?;
        let stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .context("the table has no stream")?
            .to_owned();
        let client = aws_sdk_dynamodbstreams::Client::new(sdk);
        let stream =
            client.describe_stream().stream_arn(&stream_arn).send().await.context("describing the stream")?;
        let mut iterators = HashMap::new();
        for shard in stream.stream_description().map(|d| d.shards()).unwrap_or_default() {
            let shard_id = shard.shard_id().unwrap_or_default().to_owned();
            let (kind, sequence) = match &at {
                None => (ShardIteratorType::TrimHorizon, None),
                Some((sequence, kind)) if holds(shard.sequence_number_range(), sequence) => {
                    (kind.clone(), Some((*sequence).to_owned()))
                }
                Some(_) => continue,
            };
            let iterator = client
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(kind)
                .set_sequence_number(sequence)
                .send()
                .await
                .context("opening a shard")?;
            if let Some(it) = iterator.shard_iterator() {
                iterators.insert(shard_id, it.to_owned());
            }
        }
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "eu-west-1".into());
        Ok(StreamReader { client, stream_arn, iterators, region })
    }

    /// The records written since the last poll, as Lambda event records.
    pub async fn poll(&mut self) -> Result<Vec<Value>> {
        let mut records = Vec::new();
        for iterator in self.iterators.values_mut() {
            let out = self
                .client
                .get_records()
                .shard_iterator(iterator.as_str())
                .send()
                .await
                .context("reading the stream")?;
            for record in out.records() {
                let Some(data) = record.dynamodb() else { continue };
                let mut dynamodb = Map::new();
                dynamodb.insert("Keys".into(), image_json(data.keys().unwrap_or(&HashMap::new())));
                if let Some(new) = data.new_image() {
                    dynamodb.insert("NewImage".into(), image_json(new));
                }
                if let Some(old) = data.old_image() {
                    dynamodb.insert("OldImage".into(), image_json(old));
                }
                if let Some(created) = data.approximate_creation_date_time() {
                    // As Lambda sends it: epoch seconds.
                    dynamodb.insert("ApproximateCreationDateTime".into(), json!(created.secs()));
                }
                dynamodb.insert("SequenceNumber".into(), json!(data.sequence_number().unwrap_or_default()));
                dynamodb.insert("SizeBytes".into(), json!(data.size_bytes().unwrap_or_default()));
                dynamodb.insert("StreamViewType".into(), json!("NEW_AND_OLD_IMAGES"));
                records.push(json!({
                    "eventID": record.event_id().unwrap_or_default(),
                    "eventName": record.event_name().map(|n| n.as_str()).unwrap_or_default(),
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": self.region,
                    "dynamodb": Value::Object(dynamodb),
                    "eventSourceARN": self.stream_arn,
                }));
            }
            if let Some(next) = out.next_shard_iterator() {
                *iterator = next.to_owned();
            }
        }
        Ok(records)
    }
}
