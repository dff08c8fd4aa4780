//! The local event pump: delivers the emulator's stream records and queue messages to the event
//! functions the way Lambda's event source mappings do — in batches, retrying only what a batch
//! reports as failed, and giving up on a record after a number of tries (stream: to the on-failure
//! queue; SQS: the queue's own redrive moves it to its dead-letter queue).
//!
//! It invokes real function code through an [`Invoker`]: `cargo lambda watch`'s invoke endpoint in
//! the dev stack, the handlers themselves in tests.
//!
//! It also stands in for the EventBridge Scheduler schedule (not emulated locally): a
//! [`ScheduleMapping`] invokes its function with a fixed payload when due — at the first tick,
//! then every interval — the way the deployed schedule invokes the daily sweep.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::stream::StreamReader;

/// The SDK application name in the user agent of the pump's own AWS calls: the emulator fails
/// them on purpose only when asked to (EMULATOR_FAULTS_PUMP=1, dev/emulator_faults.py), never the
/// developer's other calls made with the same key.
pub const APP_NAME: &str = "devstack-pump";

/// `sdk` with the pump's application name.
pub fn as_pump(sdk: &aws_config::SdkConfig) -> Result<aws_config::SdkConfig> {
    Ok(sdk.to_builder().app_name(aws_config::AppName::new(APP_NAME)?).build())
}

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
#[derive(Clone)]
pub struct QueueMapping {
    pub url: String,
    pub arn: String,
    pub function: String,
    pub batch_size: i32,
    /// Local stand-in for the queue's visibility timeout after a failed delivery, so retries come
    /// quickly. While a delivery runs, its messages stay invisible for [`IN_FLIGHT_SECONDS`].
    pub retry_after_seconds: i32,
    /// How long a receive waits for a message (long polling, as Lambda's pollers do: up to 20 s);
    /// 0 answers at once, for a caller that steps the pump tick by tick.
    pub wait_seconds: i32,
}

/// How long received messages stay invisible while their delivery runs: longer than any local
/// invocation, as the deployed queues' visibility timeouts are six times their consumer's timeout.
/// A shorter one delivered a slow job a second time while the first delivery still ran (found by
/// the fault run, `make chaos`: an export written twice). A pump killed meanwhile leaves its
/// messages invisible this long, as a crashed poller does in AWS.
pub const IN_FLIGHT_SECONDS: i32 = 120;

/// A queue of the template and the worker its event source mapping invokes, as the pump plays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueWorker {
    /// The queue's logical id in the template.
    pub queue: &'static str,
    /// The setting that holds the queue's URL: what the senders get (`!Ref <queue>`), what
    /// `devstack provision` writes to RESOURCES_ENV_OUT, and what `devstack pump` reads.
    pub url_variable: &'static str,
    /// The binary the mapping invokes.
    pub function: &'static str,
    pub batch_size: i32,
}

/// Every queue event source of the template (a test holds the two in step).
pub const QUEUE_WORKERS: [QueueWorker; 2] = [
    QueueWorker { queue: "ExportQueue", url_variable: "EXPORT_QUEUE_URL", function: "export", batch_size: 1 },
    QueueWorker {
        queue: "ErasureQueue",
        url_variable: "ERASURE_QUEUE_URL",
        function: "erasure",
        batch_size: 1,
    },
];

pub struct StreamMapping {
    pub reader: StreamReader,
    pub function: String,
    pub batch_size: usize,
    pub max_retries: u32,
    /// Where a batch that failed every retry is described (Lambda's on-failure destination).
    pub on_failure_queue_url: Option<String>,
}

/// A schedule and the function it invokes (the deployed stack's `AWS::Scheduler::Schedule`).
pub struct ScheduleMapping {
    pub function: String,
    pub payload: Value,
    /// Fires at the first tick, then this long after each successful invocation.
    pub every: Duration,
    /// A failed invocation (the function reports an error, or is not reachable yet) is tried
    /// again at the first tick this long afterwards (capped at `every`), as Lambda retries a
    /// failed asynchronous invocation.
    pub retry_after: Duration,
    /// Where the payload goes once [`ASYNC_ATTEMPTS`] invocations in a row failed (Lambda's
    /// asynchronous retries are spent: the function's dead-letter queue), the next one then due
    /// after `every`; without it a failure is retried until it succeeds.
    pub dead_letter_queue_url: Option<String>,
}

/// Lambda's asynchronous invocation: the first try and its two retries.
pub const ASYNC_ATTEMPTS: u32 = 3;

/// When a [`ScheduleMapping`] is due; the time is passed in, so it is testable without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleClock {
    next: Option<Instant>,
}

impl ScheduleClock {
    /// Due at the first check.
    pub fn new() -> ScheduleClock {
        ScheduleClock { next: None }
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// Records the outcome of the invocation made at `now` and sets the next due time. A late
    /// tick does not make the schedule fire several times to catch up.
    pub fn fired(&mut self, now: Instant, succeeded: bool, every: Duration, retry_after: Duration) {
        let wait = if succeeded { every } else { retry_after.min(every) };
        self.next = Some(now + wait);
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }
}

impl Default for ScheduleClock {
    fn default() -> Self {
        ScheduleClock::new()
    }
}

pub struct Pump<I: Invoker> {
    invoker: I,
    sqs: aws_sdk_sqs::Client,
    stream: Option<StreamMapping>,
    /// Records read from the stream but not yet processed, in order.
    pending: Vec<Value>,
    /// The sequence number of the last stream record done with (processed, or given up).
    checkpoint: Option<String>,
    attempts: u32,
    queues: Vec<QueueMapping>,
    region: String,
    /// The schedule, when it is next due, and its invocations that failed in a row.
    schedule: Option<(ScheduleMapping, ScheduleClock, u32)>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    pub stream_records_done: usize,
    pub stream_records_given_up: usize,
    pub messages_done: usize,
    pub messages_failed: usize,
    /// Scheduled invocations that succeeded / failed (failed ones are retried, see
    /// [`ScheduleMapping::retry_after`]).
    pub scheduled_done: usize,
    pub scheduled_failed: usize,
    /// What the last scheduled invocation of the tick answered, or why it failed.
    pub scheduled_result: Option<Value>,
    pub scheduled_error: Option<String>,
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
            checkpoint: None,
            attempts: 0,
            queues,
            region,
            schedule: None,
        }
    }

    /// The last stream record done with: a pump started again goes on after it
    /// ([`StreamReader::open_after`]) instead of delivering the whole stream again.
    pub fn stream_checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// What the pump invokes functions through (a redrive invokes them the same way).
    pub fn invoker(&self) -> &I {
        &self.invoker
    }

    /// Adds a schedule: its function is invoked at the first tick, then every `every`.
    pub fn with_schedule(mut self, schedule: ScheduleMapping) -> Self {
        self.schedule = Some((schedule, ScheduleClock::new(), 0));
        self
    }

    /// One pass: the schedule if due, a stream batch, then one receive per queue.
    pub async fn tick(&mut self) -> Result<Tick> {
        self.tick_at(Instant::now()).await
    }

    /// [`Pump::tick`] as if it were `now` (for the schedule; the stream and queues are read now).
    pub async fn tick_at(&mut self, now: Instant) -> Result<Tick> {
        let mut tick = Tick::default();
        self.tick_schedule(now, &mut tick).await;
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
            total.scheduled_done += tick.scheduled_done;
            total.scheduled_failed += tick.scheduled_failed;
            total.scheduled_result = tick.scheduled_result.or(total.scheduled_result);
            total.scheduled_error = tick.scheduled_error.or(total.scheduled_error);
        }
        Ok(total)
    }

    /// Invokes the scheduled function if it is due. Its failure is reported in the tick and tried
    /// again later, never an error of the pump (the stream and queues go on).
    async fn tick_schedule(&mut self, now: Instant, tick: &mut Tick) {
        let Some((mapping, clock, failures)) = self.schedule.as_mut() else { return };
        if !clock.is_due(now) {
            return;
        }
        let outcome = self.invoker.invoke(&mapping.function, mapping.payload.clone()).await;
        *failures = if outcome.is_ok() { 0 } else { *failures + 1 };
        let spent = *failures >= ASYNC_ATTEMPTS && mapping.dead_letter_queue_url.is_some();
        clock.fired(now, outcome.is_ok() || spent, mapping.every, mapping.retry_after);
        match outcome {
            Ok(result) => {
                tick.scheduled_done += 1;
                tick.scheduled_result = Some(result);
            }
            Err(err) => {
                tick.scheduled_failed += 1;
                tick.scheduled_error = Some(format!("{err:#}"));
            }
        }
        if let (true, Some(url)) = (spent, &mapping.dead_letter_queue_url) {
            let sent =
                self.sqs.send_message().queue_url(url).message_body(mapping.payload.to_string()).send();
            match sent.await {
                Ok(_) => *failures = 0,
                // Kept as failed: the next tick tries the function, then this queue, again.
                Err(err) => {
                    clock.fired(now, false, mapping.every, mapping.retry_after);
                    tick.scheduled_error = Some(format!("dead-lettering the payload failed: {err}"));
                }
            }
        }
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
        let last_done = done.checked_sub(1).and_then(|i| batch[i]["dynamodb"]["SequenceNumber"].as_str());
        if let Some(last) = last_done {
            self.checkpoint = Some(last.to_owned());
        }
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
                let sent =
                    self.sqs.send_message().queue_url(url).message_body(description.to_string()).send();
                if let Err(err) = sent.await {
                    // Not described, so not given up: it stays first, and its next failure gives
                    // it up again (else the record would be lost without a trace).
                    self.pending.insert(0, record);
                    self.attempts = mapping.max_retries;
                    tick.stream_records_given_up -= 1;
                    return Err(err).context("describing a given-up record on the failure queue");
                }
            }
            if let Some(given_up) = record["dynamodb"]["SequenceNumber"].as_str() {
                self.checkpoint = Some(given_up.to_owned());
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
            .visibility_timeout(IN_FLIGHT_SECONDS)
            .wait_time_seconds(mapping.wait_seconds)
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
                // Visible again soon (the queue's redrive counts receives); should this fail, it
                // is after the in-flight timeout.
                let _ = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(&mapping.url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .visibility_timeout(mapping.retry_after_seconds)
                    .send()
                    .await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_pumps_queue_workers_are_the_templates_queue_event_sources() {
        let template = crate::template::Template::load(&crate::template::default_path()).unwrap();
        let sources = template.queue_event_sources().unwrap();
        let mut declared: Vec<(String, String, Option<u64>)> =
            sources.iter().map(|s| (s.queue.clone(), s.binary.clone(), s.batch_size)).collect();
        declared.sort();
        let mut played: Vec<(String, String, Option<u64>)> = QUEUE_WORKERS
            .iter()
            .map(|w| (w.queue.to_owned(), w.function.to_owned(), Some(w.batch_size as u64)))
            .collect();
        played.sort();
        assert_eq!(played, declared);
        assert!(sources.iter().all(|s| s.reports_batch_item_failures), "{sources:?}");
        for worker in QUEUE_WORKERS {
            assert_eq!(
                template.variables_referring_to(worker.queue),
                [worker.url_variable],
                "the senders of {} get its URL as {}",
                worker.queue,
                worker.url_variable
            );
        }
        assert!(QUEUE_WORKERS.iter().any(|w| w.queue == "ErasureQueue" && w.function == "erasure"));
    }

    #[test]
    fn a_schedule_is_due_at_once_then_after_its_interval() {
        let start = Instant::now();
        let (every, retry) = (Duration::from_secs(3600), Duration::from_secs(60));
        let mut clock = ScheduleClock::new();
        assert!(clock.is_due(start), "fires at pump start");
        clock.fired(start, true, every, retry);
        assert!(!clock.is_due(start));
        assert!(!clock.is_due(start + Duration::from_secs(3599)));
        assert!(clock.is_due(start + every));
        // A late tick fires once, and the interval counts from then (no catch-up burst).
        let late = start + every * 3;
        clock.fired(late, true, every, retry);
        assert_eq!(clock.next_due(), Some(late + every));
    }

    #[test]
    fn a_failed_scheduled_invocation_is_retried_soon_but_never_later_than_the_interval() {
        let start = Instant::now();
        let mut clock = ScheduleClock::new();
        clock.fired(start, false, Duration::from_secs(3600), Duration::from_secs(60));
        assert!(!clock.is_due(start + Duration::from_secs(59)));
        assert!(clock.is_due(start + Duration::from_secs(60)));
        clock.fired(start, false, Duration::from_secs(30), Duration::from_secs(60));
        assert_eq!(clock.next_due(), Some(start + Duration::from_secs(30)));
    }

    /// Records its invocations; fails while `failing` is set.
    struct Recorder {
        calls: Mutex<Vec<(String, Value)>>,
        failing: Mutex<bool>,
    }

    impl Invoker for &Recorder {
        async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
            self.calls.lock().unwrap().push((function.to_owned(), payload));
            if *self.failing.lock().unwrap() {
                anyhow::bail!("{function} is not reachable yet");
            }
            Ok(json!({"reminded": 0}))
        }
    }

    fn offline_sdk() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build()
    }

    fn sweep() -> ScheduleMapping {
        ScheduleMapping {
            function: "reminders".to_owned(),
            payload: json!({"sweep": "daily"}),
            every: Duration::from_secs(3600),
            retry_after: Duration::from_secs(60),
            dead_letter_queue_url: None,
        }
    }

    #[tokio::test]
    async fn the_pump_fires_its_schedule_when_due_and_retries_a_failure() {
        let recorder = Recorder { calls: Mutex::new(Vec::new()), failing: Mutex::new(true) };
        let mut pump = Pump::new(&recorder, &offline_sdk(), None, Vec::new()).with_schedule(sweep());
        let start = Instant::now();

        let tick = pump.tick_at(start).await.unwrap();
        assert_eq!((tick.scheduled_done, tick.scheduled_failed), (0, 1));
        assert!(tick.scheduled_error.unwrap().contains("not reachable"));
        assert!(pump.tick_at(start + Duration::from_secs(30)).await.unwrap().idle());

        *recorder.failing.lock().unwrap() = false;
        let tick = pump.tick_at(start + Duration::from_secs(61)).await.unwrap();
        assert_eq!((tick.scheduled_done, tick.scheduled_failed), (1, 0));
        assert_eq!(tick.scheduled_result, Some(json!({"reminded": 0})));
        assert!(pump.tick_at(start + Duration::from_secs(1800)).await.unwrap().idle());
        let tick = pump.tick_at(start + Duration::from_secs(61 + 3600)).await.unwrap();
        assert_eq!(tick.scheduled_done, 1);

        let calls = recorder.calls.lock().unwrap();
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|(f, p)| f == "reminders" && *p == json!({"sweep": "daily"})));
    }

    #[tokio::test]
    async fn a_pump_without_a_schedule_invokes_nothing() {
        let recorder = Recorder { calls: Mutex::new(Vec::new()), failing: Mutex::new(false) };
        let mut pump = Pump::new(&recorder, &offline_sdk(), None, Vec::new());
        assert!(pump.tick_at(Instant::now()).await.unwrap().idle());
        assert!(pump.drain(3).await.unwrap().idle());
        assert!(recorder.calls.lock().unwrap().is_empty());
    }
}
