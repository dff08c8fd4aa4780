//! The local event pump, delivering to the real dispatcher: what Lambda's event source mappings
//! promise (batches, partial retries, a failure destination, redrive) holds locally too.

use anyhow::Result;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use devstack::pump::{Invoker, Pump, QueueMapping, StreamMapping};
use devstack::stream::StreamReader;

/// Calls the handlers in-process: `dispatch` for real, `consumer` as a stand-in queue worker
/// that fails a message's first two deliveries.
struct Direct {
    dispatcher: AwsDispatcher,
    consumer_calls: AtomicUsize,
    seen: Mutex<Vec<String>>,
}

impl Invoker for Direct {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        match function {
            "dispatch" => {
                let event: StreamEvent = serde_json::from_value(payload)?;
                let response =
                    dispatch::handle(&self.dispatcher, LambdaEvent::new(event, Context::default())).await?;
                Ok(serde_json::to_value(response)?)
            }
            _ => {
                self.consumer_calls.fetch_add(1, Ordering::SeqCst);
                let mut failures = Vec::new();
                for record in payload["Records"].as_array().unwrap() {
                    let receives: u32 =
                        record["attributes"]["ApproximateReceiveCount"].as_str().unwrap().parse()?;
                    self.seen.lock().unwrap().push(record["body"].as_str().unwrap().to_owned());
                    if record["body"] == "poison" || receives < 3 {
                        failures.push(json!({"itemIdentifier": record["messageId"]}));
                    }
                }
                Ok(json!({ "batchItemFailures": failures }))
            }
        }
    }
}

#[tokio::test]
async fn the_pump_delivers_verified_requests_to_dispatch_which_queues_one_export_each() {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue =
        devstack::provision::create_queue(&sqs, &format!("e-{}.fifo", uuid::Uuid::new_v4().simple()), None)
            .await
            .unwrap();
    let staff = unique_address("staff");
    let direct = Direct {
        dispatcher: dispatcher(&stack, &queue, &staff).await,
        consumer_calls: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    };
    let stream = StreamMapping {
        reader: StreamReader::open(&stack.sdk, &stack.table).await.unwrap(),
        function: "dispatch".into(),
        batch_size: 3,
        max_retries: 2,
        on_failure_queue_url: None,
    };
    let mut pump = Pump::new(direct, &stack.sdk, Some(stream), Vec::new());

    let deps = stack.deps();
    let verifier = stack.verifier();
    for kind in ["access", "portability", "deletion"] {
        let address = unique_address("pumped");
        submit(&deps, &submission(&address, kind, "DE")).await;
        let (id, token) = link_parts(&stack.mail_to(&address).await[0]);
        assert_eq!(verify_with(&verifier, &id, &token).await.0, 200);
    }
    let total = pump.drain(50).await.unwrap();
    assert_eq!(total.stream_records_given_up, 0);
    assert!(total.stream_records_done >= 6, "{total:?}");

    let received = sqs.receive_message().queue_url(&queue).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(received.messages().len(), 2, "access and portability, once each");
    assert_eq!(stack.mail_to(&staff).await.len(), 3, "one staff notice per verified request");
}

#[tokio::test]
async fn a_record_that_keeps_failing_goes_to_the_failure_queue_and_the_stream_moves_on() {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let failures =
        devstack::provision::create_queue(&sqs, &format!("f-{}", uuid::Uuid::new_v4().simple()), None)
            .await
            .unwrap();
    let missing_queue = format!("{}/missing.fifo", stack.endpoint);
    let staff = unique_address("staff");
    let direct = Direct {
        dispatcher: dispatcher(&stack, &missing_queue, &staff).await,
        consumer_calls: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    };
    let stream = StreamMapping {
        reader: StreamReader::open(&stack.sdk, &stack.table).await.unwrap(),
        function: "dispatch".into(),
        batch_size: 10,
        max_retries: 2,
        on_failure_queue_url: Some(failures.clone()),
    };
    let mut pump = Pump::new(direct, &stack.sdk, Some(stream), Vec::new());
    let address = unique_address("stuck");
    submit(&stack.deps(), &submission(&address, "access", "NL")).await;
    let (id, token) = link_parts(&stack.mail_to(&address).await[0]);
    verify_with(&stack.verifier(), &id, &token).await;

    let total = pump.drain(20).await.unwrap();
    assert_eq!(total.stream_records_given_up, 1, "{total:?}");
    let described = sqs.receive_message().queue_url(&failures).send().await.unwrap();
    let body: Value = serde_json::from_str(described.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert!(body["DDBStreamBatchInfo"]["startSequenceNumber"].is_string());
}

#[tokio::test]
async fn queue_messages_are_retried_until_they_succeed_and_poison_goes_to_the_dead_letter_queue() {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let dlq = devstack::provision::create_queue(&sqs, &format!("dlq-{tag}"), None).await.unwrap();
    let dlq_arn = devstack::provision::queue_arn(&sqs, &dlq).await.unwrap();
    let queue =
        devstack::provision::create_queue(&sqs, &format!("jobs-{tag}"), Some((&dlq_arn, 4))).await.unwrap();
    for body in ["job-1", "job-2", "poison"] {
        sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }
    let direct = Direct {
        dispatcher: dispatcher(&stack, &queue, &unique_address("staff")).await,
        consumer_calls: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    };
    let mapping = QueueMapping {
        arn: devstack::provision::queue_arn(&sqs, &queue).await.unwrap(),
        url: queue.clone(),
        function: "consumer".into(),
        batch_size: 10,
        retry_after_seconds: 0,
        wait_seconds: 0,
    };
    let mut pump = Pump::new(direct, &stack.sdk, None, vec![mapping]);
    let total = pump.drain(30).await.unwrap();
    assert_eq!(total.messages_done, 2, "{total:?}");

    let left = sqs.receive_message().queue_url(&queue).send().await.unwrap();
    assert!(left.messages().is_empty(), "nothing stays in the queue");
    let dead = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    let dead: Vec<&str> = dead.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(dead, vec!["poison"]);
}

/// The whole journey of an access request through the local stack's event path, every stream
/// record and queue message delivered twice.
struct Everything {
    dispatcher: AwsDispatcher,
    exporter: export::Exporter<privacy_shared::store::DynamoStore, privacy_shared::sources::AwsPersonalData>,
}

impl Invoker for Everything {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value> {
        let mut last = Value::Null;
        for _ in 0..2 {
            last = match function {
                "dispatch" => {
                    let event: StreamEvent = serde_json::from_value(payload.clone())?;
                    serde_json::to_value(
                        dispatch::handle(&self.dispatcher, LambdaEvent::new(event, Context::default()))
                            .await?,
                    )?
                }
                "export" => {
                    let event: export::SqsEvent = serde_json::from_value(payload.clone())?;
                    serde_json::to_value(
                        export::handle(&self.exporter, LambdaEvent::new(event, Context::default())).await?,
                    )?
                }
                other => anyhow::bail!("no function {other}"),
            };
        }
        Ok(last)
    }
}

#[tokio::test]
async fn submit_verify_pump_export_email_download_with_every_delivery_doubled() {
    use privacy_shared::datamap::DataMap;
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let s3 = devstack::provision::s3_client(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let queue = devstack::provision::create_queue(&sqs, &format!("export-{tag}.fifo"), None).await.unwrap();
    let map = DataMap::builtin().unwrap().aws_only().with_name_prefix(&format!("t{tag}-"));
    devstack::seed::create_sources(&stack.sdk, &map).await.unwrap();
    let sample = devstack::seed::SampleData::load(&devstack::seed::default_path()).unwrap();
    devstack::seed::seed(&stack.sdk, &map, &sample).await.unwrap();
    let bucket = format!("t{tag}-exports");
    devstack::provision::create_bucket(&s3, &bucket).await.unwrap();
    let everything = Everything {
        dispatcher: dispatcher(&stack, &queue, &unique_address("staff")).await,
        exporter: export::Exporter {
            store: stack.deps().store,
            data: privacy_shared::sources::AwsPersonalData::new(stack.dynamo.clone(), s3.clone()),
            map,
            s3: s3.clone(),
            target: export::ExportTarget { bucket: bucket.clone(), kms_key_id: None },
            clock: stack.clock.clone(),
            outside: crate::support::no_outside(&stack.sdk),
            calendar: privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap(),
        },
    };
    let stream = StreamMapping {
        reader: StreamReader::open(&stack.sdk, &stack.table).await.unwrap(),
        function: "dispatch".into(),
        batch_size: 10,
        max_retries: 3,
        on_failure_queue_url: None,
    };
    let mapping = QueueMapping {
        arn: devstack::provision::queue_arn(&sqs, &queue).await.unwrap(),
        url: queue.clone(),
        function: "export".into(),
        batch_size: 1,
        retry_after_seconds: 0,
        wait_seconds: 0,
    };
    let mut pump = Pump::new(everything, &stack.sdk, Some(stream), vec![mapping]);

    submit(&stack.deps(), &submission("carol@example.org", "access", "NL")).await;
    let (id, token) = link_parts(&stack.mail_to("carol@example.org").await.pop().unwrap());
    assert_eq!(verify_with(&stack.verifier(), &id, &token).await.0, 200);
    let total = pump.drain(60).await.unwrap();
    assert_eq!((total.messages_done, total.stream_records_given_up), (1, 0), "{total:?}");

    let objects = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(objects.contents().len(), 1, "one object");
    let mails = stack.mail_to("carol@example.org").await;
    let notices: Vec<_> = mails
        .iter()
        .filter(|m| m.links().iter().any(|l| l.contains(&format!("{id}/download?token="))))
        .collect();
    assert_eq!(notices.len(), 1, "one completion email");
    let link = notices[0].links().into_iter().find(|l| l.contains("/download?token=")).unwrap();
    let token = link.split_once("token=").unwrap().1.to_owned();
    let status = download::StatusPages::from_config(&stack.config());
    let downloads = download::Downloads {
        store: stack.deps().store,
        s3: s3.clone(),
        bucket,
        clock: stack.clock.clone(),
        status,
    };
    let request = {
        use lambda_http::RequestExt;
        http("GET", &format!("/requests/{id}/download"), None, lambda_http::Body::Empty)
            .with_path_parameters(std::collections::HashMap::from([("id".to_owned(), id.clone())]))
            .with_query_string_parameters(std::collections::HashMap::from([("token".to_owned(), token)]))
    };
    let response = download::handle(&downloads, request).await.unwrap();
    assert_eq!(response.status(), 302);
    let zip =
        reqwest::get(response.headers()["location"].to_str().unwrap()).await.unwrap().bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let data: Value = serde_json::from_reader(archive.by_name("data.json").unwrap()).unwrap();
    assert_eq!(data["sources"]["accounts"]["records"][0]["user_id"], "u-carol");
    let stored = stack.deps().store.get(privacy_shared::domain::RequestId::parse(&id).unwrap()).await;
    assert_eq!(stored.unwrap().unwrap().status, privacy_shared::domain::Status::Completed);
}
