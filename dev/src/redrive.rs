//! `devstack redrive` (`make redrive`): what the local stack gave up on, put back to work once the
//! cause is gone, the way an operator does it in AWS (infra/README.md, "Redriving dead letters"):
//!
//! - a job queue's dead-letter queue (`ExportDeadLetterQueue`, `ErasureDeadLetterQueue`: the
//!   template's redrive policies) is moved back to its source queue, where the pump delivers it
//!   again (AWS: `aws sqs start-message-move-task`);
//! - each batch the stream's on-failure destination (`DispatchFailureQueue`) describes is read
//!   again from the stream by its sequence range and handed to `dispatch`;
//! - each message of a function's own dead-letter queue (`RemindersDeadLetterQueue`,
//!   `MailEventsDeadLetterQueue`) is the event that function is invoked with again.
//!
//! Every consumer is idempotent (the effect ledger, conditional transitions, deduplicated jobs),
//! so a redriven message that was in fact done does nothing twice. A message leaves its queue only
//! once its work succeeded; what fails again stays for the next redrive.

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

use crate::pump::Invoker;
use crate::stream::StreamReader;
use crate::template::Template;

/// The functions whose own dead-letter queue (asynchronous invocation) the template declares,
/// with the binary a message is replayed to.
pub const FUNCTION_DEAD_LETTERS: [(&str, &str); 2] =
    [("RemindersDeadLetterQueue", "reminders"), ("MailEventsDeadLetterQueue", "mail-events")];

/// The stream's on-failure destination (the dispatch mapping's `DestinationConfig.OnFailure`).
pub const STREAM_FAILURES: &str = "DispatchFailureQueue";

/// What redriving a queue means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Back to the source queue whose redrive policy sent it here.
    MoveTo { queue: String, url: String },
    /// Read the described stream records again and invoke `dispatch` with them.
    ReplayStream,
    /// Invoke the function with the message as its event.
    Invoke { function: &'static str },
}

#[derive(Clone, Debug)]
pub struct DeadLetterQueue {
    /// The queue's logical id in the template.
    pub queue: String,
    pub url: String,
    pub action: Action,
}

/// What one queue held and what became of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub queue: String,
    pub before: usize,
    /// Moved back, or replayed successfully (and removed).
    pub redriven: usize,
    /// Replayed and failed again, or not readable any more: left in the queue.
    pub failed: Vec<String>,
}

/// The URL of a template queue as `devstack provision` names it locally (its logical id), if it
/// exists.
pub async fn local_queue_url(sqs: &aws_sdk_sqs::Client, logical_id: &str) -> Result<Option<String>> {
    let template = Template::load(&crate::template::default_path())?;
    let Some(queue) = template.queues()?.into_iter().find(|q| q.logical_id == logical_id) else {
        return Ok(None);
    };
    Ok(sqs.get_queue_url().queue_name(queue.local_name()).send().await.ok().and_then(|o| o.queue_url))
}

/// Every place of the local stack where something may have been given up on, from the template.
pub async fn dead_letter_queues(sqs: &aws_sdk_sqs::Client) -> Result<Vec<DeadLetterQueue>> {
    let template = Template::load(&crate::template::default_path())?;
    let queues = template.queues()?;
    let url_of = |logical_id: &str| {
        let name = queues.iter().find(|q| q.logical_id == logical_id).map(|q| q.local_name());
        async move {
            match name {
                Some(name) => {
                    sqs.get_queue_url().queue_name(name).send().await.ok().and_then(|o| o.queue_url)
                }
                None => None,
            }
        }
    };
    let mut found = Vec::new();
    for source in &queues {
        let Some((dead_letter, _)) = &source.redrive else { continue };
        if let (Some(url), Some(source_url)) = (url_of(dead_letter).await, url_of(&source.logical_id).await) {
            let action = Action::MoveTo { queue: source.logical_id.clone(), url: source_url };
            found.push(DeadLetterQueue { queue: dead_letter.clone(), url, action });
        }
    }
    if let Some(url) = url_of(STREAM_FAILURES).await {
        found.push(DeadLetterQueue { queue: STREAM_FAILURES.to_owned(), url, action: Action::ReplayStream });
    }
    for (queue, function) in FUNCTION_DEAD_LETTERS {
        if let Some(url) = url_of(queue).await {
            found.push(DeadLetterQueue { queue: queue.to_owned(), url, action: Action::Invoke { function } });
        }
    }
    Ok(found)
}

/// The messages in a queue, visible or being received.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<usize> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .context("reading a queue's depth")?;
    let count = |name: QueueAttributeName| {
        out.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0)
    };
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// Redrives every queue of `queues`; `table` is the requests table (whose stream is replayed).
pub async fn redrive<I: Invoker>(
    sdk: &aws_config::SdkConfig,
    table: &str,
    invoker: &I,
    queues: &[DeadLetterQueue],
) -> Result<Vec<Outcome>> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut outcomes = Vec::new();
    for queue in queues {
        let mut outcome = Outcome {
            queue: queue.queue.clone(),
            before: depth(&sqs, &queue.url).await?,
            ..Default::default()
        };
        // Each message is received once per redrive: what fails stays invisible until the next.
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .with_context(|| format!("receiving from {}", queue.queue))?;
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                let body = message.body().unwrap_or_default();
                let done = match &queue.action {
                    Action::MoveTo { url, .. } => move_back(&sqs, url, message).await.map(|_| true),
                    Action::ReplayStream => replay_batch(sdk, table, invoker, body).await,
                    Action::Invoke { function } => match serde_json::from_str::<Value>(body) {
                        Ok(event) => invoker.invoke(function, event).await.map(|_| true),
                        Err(err) => Err(err).context("the message is not an event"),
                    },
                };
                match done {
                    Ok(true) => {
                        let handle = message.receipt_handle().unwrap_or_default();
                        sqs.delete_message().queue_url(&queue.url).receipt_handle(handle).send().await?;
                        outcome.redriven += 1;
                    }
                    Ok(false) => outcome.failed.push("its work failed again".to_owned()),
                    Err(err) => outcome.failed.push(format!("{err:#}")),
                }
            }
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Sends a dead letter back to its source queue, in its message group for a FIFO queue (with a
/// deduplication id of its own: the original one may still be inside the queue's window).
async fn move_back(
    sqs: &aws_sdk_sqs::Client,
    source_url: &str,
    message: &aws_sdk_sqs::types::Message,
) -> Result<()> {
    let attribute =
        |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name)).cloned();
    let mut send = sqs.send_message().queue_url(source_url).message_body(message.body().unwrap_or_default());
    if source_url.ends_with(".fifo") {
        let group =
            attribute(MessageSystemAttributeName::MessageGroupId).context("a FIFO message has a group")?;
        send = send
            .message_group_id(group)
            .message_deduplication_id(format!("redrive-{}", message.message_id().unwrap_or_default()));
    }
    send.send().await.context("sending a dead letter back to its queue")?;
    Ok(())
}

/// Reads the records a failure description names from the stream and invokes `dispatch` with
/// them; true when dispatch took them all.
async fn replay_batch<I: Invoker>(
    sdk: &aws_config::SdkConfig,
    table: &str,
    invoker: &I,
    body: &str,
) -> Result<bool> {
    let description: Value = serde_json::from_str(body).context("a stream failure description")?;
    let info = &description["DDBStreamBatchInfo"];
    let (start, end) = match (info["startSequenceNumber"].as_str(), info["endSequenceNumber"].as_str()) {
        (Some(start), Some(end)) => (start.to_owned(), end.to_owned()),
        _ => anyhow::bail!("no sequence range in {description}"),
    };
    let number = |s: &str| (s.len(), s.to_owned());
    let mut reader = StreamReader::open_at(sdk, table, &start).await?;
    let mut records = Vec::new();
    loop {
        let read = reader.poll().await?;
        if read.is_empty() {
            break;
        }
        let past_end = read
            .iter()
            .any(|r| r["dynamodb"]["SequenceNumber"].as_str().is_some_and(|s| number(s) > number(&end)));
        records.extend(read.into_iter().filter(|r| {
            r["dynamodb"]["SequenceNumber"]
                .as_str()
                .is_some_and(|s| number(s) >= number(&start) && number(s) <= number(&end))
        }));
        if past_end {
            break;
        }
    }
    if records.is_empty() {
        anyhow::bail!("the stream no longer holds {start}..{end} (DynamoDB keeps 24 hours of it)");
    }
    let answer = invoker.invoke("dispatch", json!({ "Records": records })).await?;
    Ok(answer["batchItemFailures"].as_array().is_none_or(|failures| failures.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dead_letter_place_of_the_template_has_a_redrive() {
        let template = Template::load(&crate::template::default_path()).unwrap();
        let queues = template.queues().unwrap();
        let ids: Vec<&str> = queues.iter().map(|q| q.logical_id.as_str()).collect();
        for (queue, _) in FUNCTION_DEAD_LETTERS {
            assert!(ids.contains(&queue), "{queue} is a queue of the template");
        }
        assert!(ids.contains(&STREAM_FAILURES));
        // Every queue that is some source's dead-letter queue, or a function's, or the stream's:
        // nothing else of the template ends in "DeadLetterQueue".
        let dead_letters: Vec<&str> =
            ids.iter().copied().filter(|id| id.ends_with("DeadLetterQueue")).collect();
        for id in dead_letters {
            let a_source = queues.iter().any(|q| q.redrive.as_ref().is_some_and(|(target, _)| target == id));
            let a_function = FUNCTION_DEAD_LETTERS.iter().any(|(queue, _)| *queue == id);
            assert!(a_source || a_function, "{id} has no redrive");
        }
    }
}
