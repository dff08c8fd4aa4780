//! The mailer port, its SES v2 implementation, and the templates of every email we send.

mod memory;
mod ses;
pub mod templates;

use std::fmt;
use std::future::Future;

use crate::domain::EmailAddress;

pub use memory::MemoryMailer;
pub use ses::SesMailer;

/// A rendered email. `Debug` shows neither the recipient nor the body (the body carries secrets).
#[derive(Clone)]
pub struct OutgoingEmail {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SendEmail failed: {code}")]
    Send { code: String },
    #[error("template failed: {0}")]
    Template(String),
}

pub trait Mailer: Send + Sync {
    fn send(&self, email: &OutgoingEmail) -> impl Future<Output = Result<(), MailError>> + Send;
}
