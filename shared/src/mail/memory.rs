//! A mailer in memory, for flow tests: it keeps what it was asked to send (tags and the id it
//! gave each mail included), and can be told to fail the next sends the way SES does when it
//! refuses a message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{MailError, Mailer, MessageId, OutgoingEmail};

/// Clones share one outbox.
#[derive(Clone, Default)]
pub struct MemoryMailer {
    sent: Arc<Mutex<Vec<(MessageId, OutgoingEmail)>>>,
    failures_left: Arc<Mutex<u32>>,
    next_id: Arc<AtomicU64>,
}

impl MemoryMailer {
    pub fn new() -> MemoryMailer {
        MemoryMailer::default()
    }

    /// Everything sent so far, oldest first.
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        self.sent_with_ids().into_iter().map(|(_, email)| email).collect()
    }

    /// Everything sent so far with the message id each got, oldest first.
    pub fn sent_with_ids(&self) -> Vec<(MessageId, OutgoingEmail)> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What was sent to this address (compared as the address was given).
    pub fn sent_to(&self, address: &str) -> Vec<OutgoingEmail> {
        self.sent().into_iter().filter(|m| m.to.as_str().eq_ignore_ascii_case(address)).collect()
    }

    /// The next `n` sends fail (as SES answers `Throttling`).
    pub fn fail_next(&self, n: u32) {
        *self.failures_left.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<MessageId, MailError> {
        {
            let mut left = self.failures_left.lock().unwrap_or_else(|p| p.into_inner());
            if *left > 0 {
                *left -= 1;
                return Err(MailError::Send { code: "Throttling".into() });
            }
        }
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = MessageId(format!("memory-{n:08}-{}", uuid::Uuid::new_v4().simple()));
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push((id.clone(), email.clone()));
        Ok(id)
    }
}
