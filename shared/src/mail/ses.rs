use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};

use super::{MailError, MailTags, Mailer, MessageId, OutgoingEmail};

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

fn build_error<E>(_: E) -> MailError {
    MailError::Send { code: "build_error".into() }
}

fn content(data: &str) -> Result<Content, MailError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(build_error)
}

/// The mail's tags as SES takes them (`EmailTags`); its events hand them back.
pub(super) fn email_tags(tags: &MailTags) -> Result<Vec<MessageTag>, MailError> {
    tags.pairs()
        .into_iter()
        .map(|(name, value)| MessageTag::builder().name(name).value(value).build().map_err(build_error))
        .collect()
}

impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<MessageId, MailError> {
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().simple(message).build())
            .set_email_tags(Some(email_tags(&email.tags)?))
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|err| MailError::Send { code: crate::aws::error_code(&err) })?;
        Ok(MessageId(sent.message_id.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RequestId;
    use crate::mail::MessageKind;

    #[test]
    fn every_mail_carries_its_kind_and_request_as_ses_tags() {
        let id = RequestId::generate();
        let tags = email_tags(&MailTags::new(MessageKind::Reminder, Some(id))).unwrap();
        let pairs: Vec<(&str, &str)> = tags.iter().map(|t| (t.name(), t.value())).collect();
        assert_eq!(pairs, vec![("kind", "reminder"), ("request", id.to_string().as_str())]);
    }
}
