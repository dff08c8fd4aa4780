use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a request is in its life. Extensions change the due date, never the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingVerification,
    Verified,
    InProgress,
    Completed,
    /// Never verified (timed out, or locked after too many wrong tokens).
    Expired,
    /// Refused, with a reason and the right to complain.
    Denied,
    /// Belongs to an enterprise-managed account: the requester is sent to its administrator.
    Referred,
    /// Limit reached or manifestly unfounded, with a reason.
    Rejected,
}

/// Everything that can happen to a request. Each is recorded as one audit event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Submitted,
    Verified,
    WorkStarted,
    Completed,
    Expired,
    Denied,
    Referred,
    Rejected,
    /// The requester fetched their export: audited, but not a change of status.
    Downloaded,
    /// The due date was moved, once, with a reason: a new version, the same status.
    Extended,
    /// The requester was reminded to verify: audited, but not a change of status.
    Reminded,
    /// Dispatch looked the requester up (account, age, limits) and cleared the work to start.
    Triaged,
    /// The requester confirmed, with a second token, the third party an export may go to.
    RecipientConfirmed,
    /// The requester did not confirm the third party by the confirmation's date: the export goes
    /// to the requester only (a new version, the same status).
    RecipientLapsed,
    /// An erasure kept finding new data of the person after its passes: staff were alerted and
    /// the request stays open (audited, not a change of status).
    ErasureStalled,
    /// SES delivered one of the request's mails (the reason names which kind; `at` is when).
    MailDelivered,
    /// One of the request's mails bounced (the reason names the kind and whether for good).
    MailBounced,
    /// The recipient of one of the request's mails reported it as spam.
    MailComplained,
    /// A mail of the request was not sent: its address bounced for good or complained before.
    MailWithheld,
    /// The request's answer went to such an address all the same, and staff were alerted.
    AnswerToSuppressedAddress,
    /// A source outside AWS was asked (a webhook called, or a staff task opened); the reason
    /// names the source and the operation.
    SourceAsked,
    /// A source outside AWS answered: its records are staged, or its erasure receipt is in.
    SourceAnswered,
    /// A webhook source answered against its contract, or not at all (the reason has the
    /// problem's code): staff were alerted and the request waits.
    SourceFailed,
    /// A source outside AWS had not answered by its date: staff were alerted.
    SourceLate,
    /// Staff sent the requester a confirmation of receipt by hand (CCPA regulations §7021(b)):
    /// a new version, the same status.
    ReceiptConfirmed,
    /// The person accepted, by reply, the fee of a request rejected as excessive: the request is
    /// verified again and the work starts over, with a deadline counted from the acceptance.
    FeeAccepted,
    /// After a refused correction, the person disputes the accuracy of their data: the dispute
    /// is noted and processing of the data restricted while it lasts (CCPA regulations
    /// §7023(f); GDPR Art. 18(1)(a)). The request stays denied.
    DisputeRecorded,
    /// The person was told that the restriction of their disputed data will be lifted, on which
    /// day and why, before it is (GDPR Art. 18(3)). The request stays denied.
    RestrictionLiftAnnounced,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a request that is {from} cannot be {event}")]
pub struct TransitionError {
    pub from: Status,
    pub event: Event,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::PendingVerification,
        Status::Verified,
        Status::InProgress,
        Status::Completed,
        Status::Expired,
        Status::Denied,
        Status::Referred,
        Status::Rejected,
    ];

    /// The whole state machine. `Submitted` is not here: it creates a request, it does not move one.
    pub fn apply(self, event: Event) -> Result<Status, TransitionError> {
        use Event as E;
        use Status as S;
        match (self, event) {
            (S::PendingVerification, E::Verified) => Ok(S::Verified),
            (S::PendingVerification, E::Expired) => Ok(S::Expired),
            (S::Verified, E::WorkStarted) => Ok(S::InProgress),
            // A manual step (a rectification, say) is done by staff straight from verified.
            (S::Verified, E::Completed) => Ok(S::Completed),
            (S::Verified | S::InProgress, E::Extended) => Ok(self),
            (S::Verified, E::Triaged | E::RecipientConfirmed | E::RecipientLapsed) => Ok(self),
            (S::Verified | S::InProgress, E::Denied) => Ok(S::Denied),
            (S::Verified, E::Referred) => Ok(S::Referred),
            (S::Verified, E::Rejected) => Ok(S::Rejected),
            (S::InProgress, E::Completed) => Ok(S::Completed),
            (S::PendingVerification | S::Verified | S::InProgress, E::ReceiptConfirmed) => Ok(self),
            // The only ways back from a closed status: the work a fee was accepted for, and what
            // follows a refused correction (the request itself stays refused).
            (S::Rejected, E::FeeAccepted) => Ok(S::Verified),
            (S::Denied, E::DisputeRecorded | E::RestrictionLiftAnnounced) => Ok(self),
            (from, event) => Err(TransitionError { from, event }),
        }
    }

    /// Open requests have a clock running; closed ones leave the due-date index.
    pub fn is_open(self) -> bool {
        matches!(self, Status::PendingVerification | Status::Verified | Status::InProgress)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingVerification => "pending_verification",
            Status::Verified => "verified",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Denied => "denied",
            Status::Referred => "referred",
            Status::Rejected => "rejected",
        }
    }
}

impl Event {
    pub const ALL: [Event; 28] = [
        Event::Submitted,
        Event::Verified,
        Event::WorkStarted,
        Event::Completed,
        Event::Expired,
        Event::Denied,
        Event::Referred,
        Event::Rejected,
        Event::Downloaded,
        Event::Extended,
        Event::Reminded,
        Event::Triaged,
        Event::RecipientConfirmed,
        Event::RecipientLapsed,
        Event::ErasureStalled,
        Event::MailDelivered,
        Event::MailBounced,
        Event::MailComplained,
        Event::MailWithheld,
        Event::AnswerToSuppressedAddress,
        Event::SourceAsked,
        Event::SourceAnswered,
        Event::SourceFailed,
        Event::SourceLate,
        Event::ReceiptConfirmed,
        Event::FeeAccepted,
        Event::DisputeRecorded,
        Event::RestrictionLiftAnnounced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Submitted => "submitted",
            Event::Verified => "verified",
            Event::WorkStarted => "work_started",
            Event::Completed => "completed",
            Event::Expired => "expired",
            Event::Denied => "denied",
            Event::Referred => "referred",
            Event::Rejected => "rejected",
            Event::Downloaded => "downloaded",
            Event::Extended => "extended",
            Event::Reminded => "reminded",
            Event::Triaged => "triaged",
            Event::RecipientConfirmed => "recipient_confirmed",
            Event::RecipientLapsed => "recipient_lapsed",
            Event::ErasureStalled => "erasure_stalled",
            Event::MailDelivered => "mail_delivered",
            Event::MailBounced => "mail_bounced",
            Event::MailComplained => "mail_complained",
            Event::MailWithheld => "mail_withheld",
            Event::AnswerToSuppressedAddress => "answer_to_suppressed_address",
            Event::SourceAsked => "source_asked",
            Event::SourceAnswered => "source_answered",
            Event::SourceFailed => "source_failed",
            Event::SourceLate => "source_late",
            Event::ReceiptConfirmed => "receipt_confirmed",
            Event::FeeAccepted => "fee_accepted",
            Event::DisputeRecorded => "dispute_recorded",
            Event::RestrictionLiftAnnounced => "restriction_lift_announced",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use Status as S;

    /// The brief's state machine, written out as the list of allowed moves.
    const ALLOWED: &[(Status, Event, Status)] = &[
        (S::PendingVerification, E::Verified, S::Verified),
        (S::PendingVerification, E::Expired, S::Expired),
        (S::Verified, E::WorkStarted, S::InProgress),
        (S::Verified, E::Denied, S::Denied),
        (S::Verified, E::Referred, S::Referred),
        (S::Verified, E::Rejected, S::Rejected),
        (S::InProgress, E::Completed, S::Completed),
        (S::InProgress, E::Denied, S::Denied),
        (S::Verified, E::Completed, S::Completed),
        (S::Verified, E::Extended, S::Verified),
        (S::InProgress, E::Extended, S::InProgress),
        (S::Verified, E::Triaged, S::Verified),
        (S::Verified, E::RecipientConfirmed, S::Verified),
        (S::Verified, E::RecipientLapsed, S::Verified),
        (S::PendingVerification, E::ReceiptConfirmed, S::PendingVerification),
        (S::Verified, E::ReceiptConfirmed, S::Verified),
        (S::InProgress, E::ReceiptConfirmed, S::InProgress),
        (S::Rejected, E::FeeAccepted, S::Verified),
        (S::Denied, E::DisputeRecorded, S::Denied),
        (S::Denied, E::RestrictionLiftAnnounced, S::Denied),
    ];

    #[test]
    fn every_allowed_transition_reaches_its_target() {
        for &(from, event, to) in ALLOWED {
            assert_eq!(from.apply(event), Ok(to), "{from} --{event}-->");
        }
    }

    #[test]
    fn every_other_pair_of_status_and_event_is_refused() {
        let mut refused = 0;
        for from in Status::ALL {
            for event in Event::ALL {
                if ALLOWED.iter().any(|&(f, e, _)| f == from && e == event) {
                    continue;
                }
                assert_eq!(from.apply(event), Err(TransitionError { from, event }), "{from} --{event}-->");
                refused += 1;
            }
        }
        assert_eq!(refused, Status::ALL.len() * Event::ALL.len() - ALLOWED.len());
    }

    #[test]
    fn closed_statuses_accept_only_what_follows_a_refusal() {
        // A fee accepted reopens a rejection; a dispute of a refused correction and the notice
        // before its restriction is lifted keep the refusal as it is. Nothing else moves a
        // closed request.
        let after_refusal = [E::FeeAccepted, E::DisputeRecorded, E::RestrictionLiftAnnounced];
        for from in Status::ALL.into_iter().filter(|s| !s.is_open()) {
            for event in Event::ALL.into_iter().filter(|e| !after_refusal.contains(e)) {
                assert!(from.apply(event).is_err(), "{from} --{event}-->");
            }
        }
        for from in [S::Completed, S::Expired, S::Referred] {
            for event in after_refusal {
                assert!(from.apply(event).is_err(), "{from} --{event}-->");
            }
        }
    }

    #[test]
    fn only_pending_verified_and_in_progress_are_open() {
        let open: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(open, vec![S::PendingVerification, S::Verified, S::InProgress]);
    }

    #[test]
    fn wire_names_match_serde() {
        for s in Status::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for e in Event::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
    }
}
