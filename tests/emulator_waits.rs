//! The emulator's long polls (dev/emulator.py): an SQS receive with WaitTimeSeconds, and a mailbox
//! read asking for more mail, wait outside the lock that serializes the emulator's calls, and
//! answer as soon as what they wait for arrives.
//!
//! The bounds below are far from both outcomes: a wait that works answers in milliseconds, one
//! that holds the lock or sleeps its full time takes the whole 20 s.

use std::time::{Duration, Instant};

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::support::*;

const LONG: i32 = 20;
const FAR_FROM_LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_a_message_is_sent_while_other_calls_go_on() {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let queue = devstack::provision::create_queue(&sqs, &format!("wait-{tag}"), None).await.unwrap();
    let started = Instant::now();
    let poll = tokio::spawn({
        let (sqs, queue) = (sqs.clone(), queue.clone());
        async move { sqs.receive_message().queue_url(queue).wait_time_seconds(LONG).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Served while the poll waits: it does not hold the emulator's lock.
    let read = stack.item("nobody", "nothing").await;
    assert!(read.is_none());
    assert!(started.elapsed() < FAR_FROM_LONG, "a DynamoDB read waited for the long poll");
    sqs.send_message().queue_url(&queue).message_body("wake up").send().await.unwrap();
    let received = poll.await.unwrap();
    assert!(started.elapsed() < FAR_FROM_LONG, "the poll slept through the message");
    let bodies: Vec<_> = received.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["wake up"]);
}

#[tokio::test]
async fn a_long_poll_with_nothing_to_receive_answers_empty_once_its_wait_is_over() {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let queue = devstack::provision::create_queue(&sqs, &format!("idle-{tag}"), None).await.unwrap();
    let started = Instant::now();
    let received = sqs.receive_message().queue_url(&queue).wait_time_seconds(1).send().await.unwrap();
    assert!(received.messages().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900), "it did not wait: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_message_sent_to_another_queue_does_not_end_a_long_poll() {
    let stack = Stack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let waiting = devstack::provision::create_queue(&sqs, &format!("quiet-{tag}"), None).await.unwrap();
    let other = devstack::provision::create_queue(&sqs, &format!("busy-{tag}"), None).await.unwrap();
    let poll = tokio::spawn({
        let (sqs, queue) = (sqs.clone(), waiting.clone());
        async move { sqs.receive_message().queue_url(queue).wait_time_seconds(2).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqs.send_message().queue_url(&other).message_body("not yours").send().await.unwrap();
    assert!(poll.await.unwrap().messages().is_empty());
    let theirs = sqs.receive_message().queue_url(&other).send().await.unwrap();
    assert_eq!(theirs.messages().len(), 1, "the other queue's message is still there");
}

#[tokio::test]
async fn a_mailbox_reader_waiting_for_more_mail_gets_it_as_soon_as_it_is_sent() {
    let stack = Stack::new().await;
    let ses = aws_sdk_sesv2::Client::new(&stack.sdk);
    let address = unique_address("waits");
    let send = |subject: &'static str| {
        let (ses, address) = (ses.clone(), address.clone());
        async move {
            let text = Content::builder().data(subject).build().unwrap();
            let message =
                Message::builder().subject(text.clone()).body(Body::builder().text(text).build()).build();
            ses.send_email()
                .from_email_address(MAIL_FROM)
                .destination(Destination::builder().to_addresses(address).build())
                .content(EmailContent::builder().simple(message).build())
                .send()
                .await
                .unwrap();
        }
    };
    send("first").await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let reader = tokio::spawn({
        let (client, endpoint, address) = (client.clone(), stack.endpoint.clone(), address.clone());
        async move {
            devstack::mailbox::fetch_more_to(
                &client,
                &endpoint,
                &address,
                1,
                Duration::from_secs(LONG as u64),
            )
            .await
            .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    send("second").await;
    let mail = reader.await.unwrap();
    assert!(started.elapsed() < FAR_FROM_LONG, "the reader slept through the mail");
    let subjects: Vec<_> = mail.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, ["first", "second"]);
    // Nothing more to come: the reader gets what there is when its wait is over.
    let again =
        devstack::mailbox::fetch_more_to(&client, &stack.endpoint, &address, 2, Duration::from_millis(500))
            .await;
    assert_eq!(again.unwrap().len(), 2);
}
