use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::{MailError, Mailer, OutgoingEmail};

/// Sends through SES v2 from one verified identity, optionally under a configuration set
/// (bounce and complaint tracking).
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> SesMailer {
        SesMailer { client, from: from.into(), configuration_set }
    }
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|_| MailError::Send { code: "build_error".into() })
}

impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|err| MailError::Send { code: crate::aws::error_code(&err) })?;
        Ok(())
    }
}
