//! The local event pump: delivers the emulator's stream records and queue messages to the event
//! functions the way Lambda's event source mappings do — in batches, retrying only what a batch
//! reports as failed, and giving up on a record after a number of tries (stream: to the on-failure
//! queue; SQS: the queue's own redrive moves it to its dead-letter queue).
//!
//! It invokes real function code through an [`Invoker`]: `cargo lambda watch`'s invoke endpoint in
//! the dev stack, the handlers themselves in tests.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;

use crate::stream::StreamReader;

pub trait Invoker: Send + Sync {
    fn invoke(&self, function: &str, payload: Value) -> impl Future<Output = Result<Value>> + Send;
}

/// Invokes functions served by `cargo lambda watch`.
pub struct HttpInvoker {
    base: String,
    client: reqwest::Client,
}

impl HttpInvoker {
    pub fn new(base: impl Into<String>) -> HttpInvoker {
        HttpInvoker { base: base.into(), client: reqwest::Client::new() }
    }
}

impl Invoker for HttpInvoker {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base.trim_end_matches('/'));
        let response = self
            .client
            .post(&url)
            .json(&payload)
            .send()
            .await
            .with_context(|| format!("invoking {function}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("{function} failed ({status}): {body}");
        }
        Ok(body)
    }
}

/// A queue and the function its event source mapping invokes.
pub struct QueueMapping {
    pub url: String,
    pub arn: String,
    pub function: String,
    pub batch_size: i32,
    /// Local stand-in for the queue's visibility timeout, so retries come quickly.
    pub retry_after_seconds: i32,
}

pub struct StreamMapping {
    pub reader: StreamReader,
    pub function: String,
    pub batch_size: usize,
    pub max_retries: u32,
    /// Where a batch that failed every retry is described (Lambda's on-failure destination).
    pub on_failure_queue_url: Option<String>,
}

pub struct Pump<I: Invoker> {
    invoker: I,
    sqs: aws_sdk_sqs::Client,
    stream: Option<StreamMapping>,
    /// Records read from the stream but not yet processed, in order.
    pending: Vec<Value>,
    attempts: u32,
    queues: Vec<QueueMapping>,
    region: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    pub stream_records_done: usize,
    pub stream_records_given_up: usize,
    pub messages_done: usize,
    pub messages_failed: usize,
}

impl Tick {
    pub fn idle(&self) -> bool {
        *self == Tick::default()
    }
}

fn failed_ids(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|failures| {
            failures.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

impl<I: Invoker> Pump<I> {
    pub fn new(
        invoker: I,
        sdk: &aws_config::SdkConfig,
        stream: Option<StreamMapping>,
        queues: Vec<QueueMapping>,
    ) -> Self {
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "eu-west-1".into());
        Pump {
            invoker,
            sqs: aws_sdk_sqs::Client::new(sdk),
            stream,
            pending: Vec::new(),
            attempts: 0,
            queues,
            region,
        }
    }

    /// One pass: a stream batch, then one receive per queue.
    pub async fn tick(&mut self) -> Result<Tick> {
        let mut tick = Tick::default();
        self.tick_stream(&mut tick).await?;
        for index in 0..self.queues.len() {
            self.tick_queue(index, &mut tick).await?;
        }
        Ok(tick)
    }

    /// Ticks until nothing is left to deliver (bounded, so a poison message cannot spin forever).
    pub async fn drain(&mut self, max_ticks: usize) -> Result<Tick> {
        let mut total = Tick::default();
        for _ in 0..max_ticks {
            let tick = self.tick().await?;
            if tick.idle() && self.pending.is_empty() {
                return Ok(total);
            }
            total.stream_records_done += tick.stream_records_done;
            total.stream_records_given_up += tick.stream_records_given_up;
            total.messages_done += tick.messages_done;
            total.messages_failed += tick.messages_failed;
        }
        Ok(total)
    }

    async fn tick_stream(&mut self, tick: &mut Tick) -> Result<()> {
        let Some(mapping) = self.stream.as_mut() else { return Ok(()) };
        self.pending.extend(mapping.reader.poll().await?);
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch: Vec<Value> = self.pending.iter().take(mapping.batch_size).cloned().collect();
        let outcome = self.invoker.invoke(&mapping.function, json!({ "Records": batch })).await;
        // A function error fails the whole batch; a partial response fails from its first failure.
        let first_failed = match &outcome {
            Err(_) => Some(0),
            Ok(response) => failed_ids(response).first().and_then(|seq| {
                batch.iter().position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(seq.as_str()))
            }),
        };
        let done = first_failed.unwrap_or(batch.len());
        self.pending.drain(..done);
        tick.stream_records_done += done;
        if first_failed.is_none() {
            self.attempts = 0;
            return Ok(());
        }
        self.attempts += 1;
        if self.attempts > mapping.max_retries {
            // Give the failing record up, as the mapping's on-failure destination would.
            let record = self.pending.remove(0);
            self.attempts = 0;
            tick.stream_records_given_up += 1;
            if let Some(url) = &mapping.on_failure_queue_url {
                let description = json!({
                    "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": mapping.function},
                    "DDBStreamBatchInfo": {
                        "startSequenceNumber": record["dynamodb"]["SequenceNumber"],
                        "endSequenceNumber": record["dynamodb"]["SequenceNumber"],
                        "batchSize": 1,
                    }
                });
                self.sqs.send_message().queue_url(url).message_body(description.to_string()).send().await?;
            }
        }
        Ok(())
    }

    async fn tick_queue(&mut self, index: usize, tick: &mut Tick) -> Result<()> {
        let mapping = &self.queues[index];
        let received = self
            .sqs
            .receive_message()
            .queue_url(&mapping.url)
            .max_number_of_messages(mapping.batch_size)
            .visibility_timeout(mapping.retry_after_seconds)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .context("receiving")?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(());
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect())
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": mapping.arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        let outcome = self.invoker.invoke(&mapping.function, json!({ "Records": records })).await;
        let failed: HashSet<String> = match &outcome {
            Err(_) => messages.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect(),
            Ok(response) => failed_ids(response).into_iter().collect(),
        };
        for message in messages {
            if message.message_id().is_some_and(|id| failed.contains(id)) {
                // Left alone: visible again after the timeout; the queue's redrive counts receives.
                tick.messages_failed += 1;
                continue;
            }
            self.sqs
                .delete_message()
                .queue_url(&mapping.url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .context("deleting a processed message")?;
            tick.messages_done += 1;
        }
        Ok(())
    }
}
