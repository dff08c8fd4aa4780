//! The suppression check every sender of requester mail makes: an address that bounced for good
//! or complained gets no more of our mail, except the answer the law owes the requester.

use chrono::{DateTime, Utc};

use super::{MailError, Mailer, MessageId, OutgoingEmail};
use crate::domain::{Actor, Event, RequestRecord};
use crate::store::{MailSuppression, People, Requests, StoreError};

/// What may be done with one mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    Send,
    /// The address is suppressed and the mail is not an answer: it is not sent.
    Withhold(MailSuppression),
    /// The address is suppressed but the mail is the request's answer: it is sent, and staff are
    /// told (by the caller, who knows where staff are).
    SendDespite(MailSuppression),
}

/// Decides by the recipient's suppression, if any. Staff mail is never held back.
pub async fn guard<S: People + ?Sized>(store: &S, email: &OutgoingEmail) -> Result<Guard, StoreError> {
    if email.tags.kind.is_to_staff() {
        return Ok(Guard::Send);
    }
    Ok(match store.mail_suppression(&email.to.subject_key()).await? {
        None => Guard::Send,
        Some(suppression) if email.tags.kind.is_answer() => Guard::SendDespite(suppression),
        Some(suppression) => Guard::Withhold(suppression),
    })
}

/// Records on the request that its mail was not sent to a suppressed address.
pub async fn record_withheld<S: Requests + ?Sized>(
    store: &S,
    request: &RequestRecord,
    email: &OutgoingEmail,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let kind = email.tags.kind;
    tracing::info!(request_id = %request.id, kind = %kind, "mail withheld: the address is suppressed");
    store.record_event_because(request, Event::MailWithheld, at, Actor::System, Some(kind.to_string())).await
}

/// Sends a mail of `request` unless its address is suppressed; then records that it was
/// withheld and returns `None`. For anything but an answer (an answer is sent whatever, with a
/// staff alert first: see [`guard`]).
pub async fn send_guarded<S, M, E>(
    store: &S,
    mailer: &M,
    request: &RequestRecord,
    email: &OutgoingEmail,
    at: DateTime<Utc>,
) -> Result<Option<MessageId>, E>
where
    S: People + Requests + ?Sized,
    M: Mailer + ?Sized,
    E: From<StoreError> + From<MailError>,
{
    match guard(store, email).await? {
        Guard::Withhold(_) => {
            record_withheld(store, request, email, at).await?;
            Ok(None)
        }
        Guard::Send | Guard::SendDespite(_) => Ok(Some(mailer.send(email).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Deadlines, EmailAddress, Language, Region, RequestId, RequestKind};
    use crate::mail::{MailTags, MemoryMailer, MessageKind};
    use crate::store::{MemoryStore, SuppressionCause};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_860_000 + seconds, 0).unwrap()
    }

    fn mail(to: &EmailAddress, kind: MessageKind, request: RequestId) -> OutgoingEmail {
        OutgoingEmail {
            to: to.clone(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            tags: MailTags::new(kind, Some(request)),
        }
    }

    fn request(email: &EmailAddress) -> RequestRecord {
        let deadlines =
            Deadlines { received_on: at(0).date_naive(), due_on: at(0).date_naive(), acknowledge_by: None };
        let region = Region::parse("NL").unwrap();
        RequestRecord::received(
            RequestId::generate(),
            RequestKind::Access,
            region,
            Language::En,
            email.clone(),
            at(0),
            deadlines,
        )
    }

    #[tokio::test]
    async fn a_suppressed_address_gets_its_answer_and_staff_mail_but_nothing_else() {
        let store = MemoryStore::new();
        let person = EmailAddress::parse("Person@Example.com").unwrap();
        let record = request(&person);
        let reminder = mail(&person, MessageKind::Reminder, record.id);
        assert_eq!(guard(&store, &reminder).await.unwrap(), Guard::Send);

        let first =
            MailSuppression { cause: SuppressionCause::Bounce, since: at(1), request_id: Some(record.id) };
        store.suppress_mail(&person.subject_key(), &first).await.unwrap();
        let later = MailSuppression { cause: SuppressionCause::Complaint, since: at(2), request_id: None };
        store.suppress_mail(&person.subject_key(), &later).await.unwrap();
        // The same mailbox however it is spelt; the first suppression stands.
        let spelt = EmailAddress::parse("person@example.com").unwrap();
        assert_eq!(store.mail_suppression(&spelt.subject_key()).await.unwrap(), Some(first.clone()));

        assert_eq!(guard(&store, &reminder).await.unwrap(), Guard::Withhold(first.clone()));
        let answer = mail(&person, MessageKind::Completed, record.id);
        assert_eq!(guard(&store, &answer).await.unwrap(), Guard::SendDespite(first));
        let staff = mail(&person, MessageKind::Digest, record.id);
        assert_eq!(guard(&store, &staff).await.unwrap(), Guard::Send, "staff mail is never held back");

        let mailer = MemoryMailer::new();
        let sent =
            send_guarded::<_, _, StoreErrorOrMail>(&store, &mailer, &record, &reminder, at(3)).await.unwrap();
        assert_eq!(sent, None);
        assert!(mailer.sent().is_empty());
        let trail = store.audit_trail(record.id).await.unwrap();
        assert_eq!(
            trail.last().map(|e| (e.event, e.reason.as_deref())),
            Some((Event::MailWithheld, Some("reminder")))
        );
    }

    #[derive(Debug)]
    enum StoreErrorOrMail {
        Store,
        Mail,
    }

    impl From<StoreError> for StoreErrorOrMail {
        fn from(_: StoreError) -> Self {
            StoreErrorOrMail::Store
        }
    }

    impl From<MailError> for StoreErrorOrMail {
        fn from(_: MailError) -> Self {
            StoreErrorOrMail::Mail
        }
    }
}
