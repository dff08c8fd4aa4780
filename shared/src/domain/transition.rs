//! Every change of a request, one variant each, carrying exactly the data it needs. Applying one
//! to a request is pure: the store only has to write what [`RequestRecord::apply`] returns.

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    CostEstimate, DenialBasis, Dispute, ErasureReceipt, Event, RequestKind, RequestRecord, Restriction,
    StaffText, TokenHash, TransitionError, Triage,
};

/// Why a request that was never verified was closed (kept in the audit trail and shown to staff).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryReason {
    /// The reminder went out and the address was still not confirmed in time.
    NotVerified,
    /// Too many wrong tokens were presented.
    TooManyAttempts,
}

impl ExpiryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryReason::NotVerified => "not_verified",
            ExpiryReason::TooManyAttempts => "too_many_attempts",
        }
    }
}

/// Why a request was referred to an enterprise account's administrator (audit trail, staff).
pub const ENTERPRISE_REASON: &str = "enterprise_managed";
/// Why a CCPA right-to-know request over the yearly limit was rejected (audit trail, staff).
pub const LIMIT_REASON: &str = "right_to_know_limit";

/// How a request came to be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The export exists; the completion notice carries its link. `found`: how many records and
    /// files it holds (none: the notice says that nothing was found).
    Exported { found: u64 },
    /// A big export exists as `parts` numbered parts (two or more); the notice links each.
    ExportedInParts { parts: u32, found: u64 },
    /// The person's data is gone; the receipt says what went where, and what was kept and why.
    Erased(ErasureReceipt),
    /// Self-service corrections were applied; the note tells the requester which.
    Corrected { note: String },
    /// Staff did the work by hand, optionally with a note for the requester.
    ByStaff { note: Option<StaffText> },
}

/// A change the store writes as one conditional transaction (the request at its expected status
/// and version, plus its audit event and whatever clean-up the change implies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The requester proved the address with this (single-use) token.
    Verify {
        token: TokenHash,
    },
    /// Closed without ever being verified.
    Expire(ExpiryReason),
    /// Dispatch looked the requester up and cleared the work to start.
    Triage(Triage),
    /// An enterprise-managed account: the requester is sent to its administrator. `customer` is
    /// the organisation that manages the account, `contact` its administrator.
    Refer {
        customer: Option<String>,
        contact: Option<String>,
    },
    /// A third CCPA right-to-know request within twelve months.
    RejectOverLimit,
    /// The requester confirmed, with the second token, the third party the export may go to.
    ConfirmRecipient {
        token: TokenHash,
    },
    /// The requester did not confirm the third party by the confirmation's date: the export goes
    /// ahead, to the requester only, and the confirmation link stops working.
    LapseRecipient,
    StartWork,
    Complete(Completion),
    /// Staff moved the due date, once, with a reason for the requester.
    Extend {
        until: NaiveDate,
        reason: StaffText,
    },
    /// Refused, with a reason for the requester and a coded basis for the records.
    Deny {
        reason: StaffText,
        basis: DenialBasis,
    },
    /// Manifestly unfounded or excessive: refused with the reason and what the work would cost.
    RejectExcessive {
        reason: StaffText,
        estimate: CostEstimate,
    },
    /// Staff sent the requester a confirmation of receipt by hand (CCPA regulations §7021(b)):
    /// once per request; it counts as the request's acknowledgement.
    ConfirmReceipt,
    /// The person accepted, by reply on `accepted_on`, the fee of a request rejected as
    /// excessive: it is verified again and due on `due_on`, a fresh legal period from that day.
    AcceptFee {
        accepted_on: NaiveDate,
        due_on: NaiveDate,
    },
    /// After a refused correction the person disputes the accuracy of their data: noted (with
    /// their statement, if they gave one), and the disputed data restricted while it lasts.
    RecordDispute {
        statement: Option<StaffText>,
    },
    /// The restriction of the disputed data is lifted on `on`, for `reason`: the person is told
    /// now, before it is (GDPR Art. 18(3)).
    AnnounceLift {
        on: NaiveDate,
        reason: StaffText,
    },
}

impl Transition {
    pub fn event(&self) -> Event {
        match self {
            Transition::Verify { .. } => Event::Verified,
            Transition::Expire(_) => Event::Expired,
            Transition::Triage(_) => Event::Triaged,
            Transition::Refer { .. } => Event::Referred,
            Transition::RejectOverLimit | Transition::RejectExcessive { .. } => Event::Rejected,
            Transition::ConfirmRecipient { .. } => Event::RecipientConfirmed,
            Transition::LapseRecipient => Event::RecipientLapsed,
            Transition::StartWork => Event::WorkStarted,
            Transition::Complete(_) => Event::Completed,
            Transition::Extend { .. } => Event::Extended,
            Transition::Deny { .. } => Event::Denied,
            Transition::ConfirmReceipt => Event::ReceiptConfirmed,
            Transition::AcceptFee { .. } => Event::FeeAccepted,
            Transition::RecordDispute { .. } => Event::DisputeRecorded,
            Transition::AnnounceLift { .. } => Event::RestrictionLiftAnnounced,
        }
    }

    /// What the audit event records as the reason (and, when the change closes the request, what
    /// the request keeps as its closing reason).
    pub fn reason(&self) -> Option<String> {
        match self {
            Transition::Expire(why) => Some(why.as_str().to_owned()),
            Transition::Refer { .. } => Some(ENTERPRISE_REASON.to_owned()),
            Transition::RejectOverLimit => Some(LIMIT_REASON.to_owned()),
            Transition::Complete(Completion::Corrected { note }) => Some(note.clone()),
            Transition::Complete(Completion::ByStaff { note }) => {
                note.as_ref().map(|n| n.as_str().to_owned())
            }
            Transition::Extend { reason, .. }
            | Transition::Deny { reason, .. }
            | Transition::RejectExcessive { reason, .. } => Some(reason.as_str().to_owned()),
            Transition::AcceptFee { accepted_on, due_on } => {
                Some(format!("fee accepted on {accepted_on}; due {due_on}"))
            }
            Transition::AnnounceLift { on, reason } => Some(format!("lifted on {on}: {}", reason.as_str())),
            // The person's statement stays on the request, out of the audit trail that outlives
            // an erasure.
            Transition::ConfirmReceipt | Transition::RecordDispute { .. } => None,
            Transition::Verify { .. }
            | Transition::Triage(_)
            | Transition::ConfirmRecipient { .. }
            | Transition::LapseRecipient
            | Transition::StartWork
            | Transition::Complete(
                Completion::Exported { .. } | Completion::ExportedInParts { .. } | Completion::Erased(_),
            ) => None,
        }
    }
}

impl RequestRecord {
    /// A third party is named and the requester has neither confirmed it nor let the
    /// confirmation's date pass: the export waits.
    pub fn awaits_recipient(&self) -> bool {
        self.recipient.is_some()
            && self.recipient_confirmed_at.is_none()
            && self.recipient_lapsed_at.is_none()
    }

    /// Whether the system fulfils this request itself (the export, the erasure, a self-service
    /// correction) and closes it with its own completion. Staff completing one by hand would
    /// tell the requester it was done while the work may never have run.
    pub fn fulfilled_automatically(&self) -> bool {
        match self.kind {
            RequestKind::Access | RequestKind::Portability | RequestKind::Deletion => true,
            RequestKind::Rectification => self.corrections.is_some(),
            RequestKind::Restriction
            | RequestKind::Objection
            | RequestKind::WithdrawConsent
            | RequestKind::OptOutOfSale
            | RequestKind::Unsubscribe => false,
        }
    }

    /// The request after `transition` at `at`: the next status (by the state machine), the next
    /// version, and the fields the change sets. Refused when the state machine forbids it.
    pub fn apply(
        &self,
        transition: &Transition,
        at: DateTime<Utc>,
    ) -> Result<RequestRecord, TransitionError> {
        let event = transition.event();
        let to = self.status.apply(event)?;
        let refused = || TransitionError { from: self.status, event };
        let mut next = self.clone();
        next.status = to;
        next.version = self.version + 1;
        next.updated_at = at;
        // What follows a refusal (a dispute, a lift announced) keeps the refusal's reason.
        if !to.is_open() && to != self.status {
            next.closed_reason = transition.reason();
        }
        match transition {
            Transition::Verify { .. } => next.verified_at = Some(at),
            Transition::Triage(triage) => next.triage = Some(triage.clone()),
            Transition::Refer { customer, contact } => {
                next.referral_customer = customer.clone();
                next.referral_contact = contact.clone();
            }
            Transition::ConfirmRecipient { .. } => {
                if !self.awaits_recipient() {
                    return Err(refused());
                }
                next.recipient_confirmed_at = Some(at);
            }
            // Once, and only while the confirmation is still awaited (confirmed meanwhile: the
            // recipient gets its copy after all).
            Transition::LapseRecipient => {
                if !self.awaits_recipient() {
                    return Err(refused());
                }
                next.recipient_lapsed_at = Some(at);
            }
            // Only the system's own completion closes what the system fulfils.
            Transition::Complete(Completion::ByStaff { .. }) if self.fulfilled_automatically() => {
                return Err(refused());
            }
            Transition::Complete(Completion::Erased(receipt)) => next.receipt = Some(receipt.clone()),
            Transition::Complete(Completion::Exported { found }) => next.export_found = Some(*found),
            Transition::Complete(Completion::ExportedInParts { parts, found }) => {
                next.export_parts = Some(*parts);
                next.export_found = Some(*found);
            }
            Transition::Extend { until, reason } => {
                if self.original_due_on.is_some() {
                    return Err(refused());
                }
                next.original_due_on = Some(self.due_on);
                next.due_on = *until;
                next.extension_reason = Some(reason.as_str().to_owned());
            }
            Transition::RejectExcessive { estimate, .. } => next.cost_estimate = Some(estimate.clone()),
            Transition::Deny { basis, .. } => next.denial_basis = Some(*basis),
            Transition::ConfirmReceipt => {
                if self.receipt_confirmed_at.is_some() {
                    return Err(refused());
                }
                next.receipt_confirmed_at = Some(at);
                // Staff confirmed it themselves: the digest stops asking for one.
                next.acknowledged_at = self.acknowledged_at.or(Some(at));
            }
            Transition::AcceptFee { accepted_on, due_on } => {
                // Only a rejection with a fee to accept (not the CCPA limit, which has none).
                let excessive =
                    self.cost_estimate.is_some() && self.closed_reason.as_deref() != Some(LIMIT_REASON);
                if !excessive {
                    return Err(refused());
                }
                next.fee_accepted_on = Some(*accepted_on);
                next.due_on = *due_on;
                // A fresh legal period: the old deadline and its extension no longer apply (the
                // audit trail keeps them), and the rejection's reason no longer stands.
                next.original_due_on = None;
                next.extension_reason = None;
                next.closed_reason = None;
            }
            Transition::RecordDispute { statement } => {
                if self.kind != RequestKind::Rectification || self.dispute.is_some() {
                    return Err(refused());
                }
                next.dispute = Some(Dispute::new(at, statement.clone()));
            }
            Transition::AnnounceLift { on, reason } => {
                let Some(dispute) = self.dispute.as_ref().filter(|d| d.restriction == Restriction::InForce)
                else {
                    return Err(refused());
                };
                let restriction = Restriction::Lifting { on: *on, reason: reason.clone(), announced_at: at };
                next.dispute = Some(Dispute { restriction, ..dispute.clone() });
            }
            Transition::Expire(_)
            | Transition::RejectOverLimit
            | Transition::StartWork
            | Transition::Complete(_) => {}
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Deadlines, EmailAddress, Language, Region, RequestId, Status};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn request(status: Status) -> RequestRecord {
        let received = at("2026-11-28T09:00:00Z");
        let day = received.date_naive();
        let due = NaiveDate::from_ymd_opt(2026, 12, 28).unwrap();
        let deadlines = Deadlines { received_on: day, due_on: due, acknowledge_by: None };
        let record = RequestRecord::received(
            RequestId::generate(),
            RequestKind::Access,
            Region::parse("NL").unwrap(),
            Language::Nl,
            EmailAddress::parse("a@example.com").unwrap(),
            received,
            deadlines,
        );
        RequestRecord { status, version: 3, ..record }
    }

    fn text(s: &str) -> StaffText {
        StaffText::parse(s).unwrap()
    }

    #[test]
    fn each_transition_moves_status_and_version_and_stamps_the_time() {
        let now = at("2026-12-01T10:00:00Z");
        let verified = request(Status::PendingVerification)
            .apply(&Transition::Verify { token: TokenHash::of_secret("t") }, now);
        let verified = verified.unwrap();
        assert_eq!(
            (verified.status, verified.version, verified.verified_at),
            (Status::Verified, 4, Some(now))
        );
        assert_eq!(verified.updated_at, now);
        assert_eq!(verified.closed_reason, None);
    }

    #[test]
    fn an_extension_keeps_the_original_date_and_the_reason_and_happens_once() {
        let now = at("2026-12-01T10:00:00Z");
        let until = NaiveDate::from_ymd_opt(2027, 2, 26).unwrap();
        let before = request(Status::Verified);
        let extended =
            before.apply(&Transition::Extend { until, reason: text("Three systems.") }, now).unwrap();
        assert_eq!(extended.status, Status::Verified);
        assert_eq!(extended.due_on, until);
        assert_eq!(extended.original_due_on, Some(before.due_on));
        assert_eq!(extended.extension_reason.as_deref(), Some("Three systems."));
        assert_eq!(extended.closed_reason, None, "an extension closes nothing");
        let again = extended.apply(&Transition::Extend { until, reason: text("Again.") }, now);
        assert_eq!(again, Err(TransitionError { from: Status::Verified, event: Event::Extended }));
    }

    #[test]
    fn closing_changes_keep_their_reason_on_the_request() {
        let now = at("2026-12-01T10:00:00Z");
        let cases = [
            (Status::PendingVerification, Transition::Expire(ExpiryReason::NotVerified), "not_verified"),
            (Status::Verified, Transition::RejectOverLimit, LIMIT_REASON),
            (Status::Verified, Transition::Refer { customer: None, contact: None }, ENTERPRISE_REASON),
            (Status::Verified, Transition::Deny { reason: text("No."), basis: DenialBasis::Other }, "No."),
            (
                Status::Verified,
                Transition::Complete(Completion::Corrected { note: "Corrected: job title.".into() }),
                "Corrected: job title.",
            ),
        ];
        for (from, transition, reason) in cases {
            let closed = request(from).apply(&transition, now).unwrap();
            assert!(!closed.status.is_open(), "{transition:?}");
            assert_eq!(closed.closed_reason.as_deref(), Some(reason), "{transition:?}");
            assert_eq!(transition.reason().as_deref(), Some(reason));
        }
    }

    #[test]
    fn the_data_of_a_change_lands_on_the_request() {
        let now = at("2026-12-01T10:00:00Z");
        let triage = Triage { has_account: true, child: true };
        assert_eq!(
            request(Status::Verified).apply(&Transition::Triage(triage.clone()), now).unwrap().triage,
            Some(triage)
        );
        let contact = Some("admin@customer.example".to_owned());
        let customer = Some("Voorbeeld Zorg B.V.".to_owned());
        let refer = Transition::Refer { customer: customer.clone(), contact: contact.clone() };
        let referred = request(Status::Verified).apply(&refer, now).unwrap();
        assert_eq!((referred.referral_contact, referred.referral_customer), (contact, customer));
        let estimate = CostEstimate::parse("25.00", "EUR").unwrap();
        let excessive =
            Transition::RejectExcessive { reason: text("Tenth copy."), estimate: estimate.clone() };
        let rejected = request(Status::Verified).apply(&excessive, now).unwrap();
        assert_eq!((rejected.status, rejected.cost_estimate), (Status::Rejected, Some(estimate)));
        let receipt = ErasureReceipt { exports_deleted: 2, ..ErasureReceipt::default() };
        let done = request(Status::InProgress)
            .apply(&Transition::Complete(Completion::Erased(receipt.clone())), now);
        assert_eq!(done.unwrap().receipt, Some(receipt));
    }

    #[test]
    fn a_recipient_is_confirmed_only_where_there_is_one_and_only_once() {
        let now = at("2026-12-01T10:00:00Z");
        let confirm = Transition::ConfirmRecipient { token: TokenHash::of_secret("t") };
        assert!(request(Status::Verified).apply(&confirm, now).is_err(), "no recipient named");
        let named = RequestRecord {
            recipient: Some(EmailAddress::parse("new@example.org").unwrap()),
            ..request(Status::Verified)
        };
        let confirmed = named.apply(&confirm, now).unwrap();
        assert_eq!(confirmed.recipient_confirmed_at, Some(now));
        assert!(confirmed.apply(&confirm, now).is_err(), "confirmed before");
    }

    #[test]
    fn a_recipient_not_confirmed_by_its_date_lapses_once_and_can_no_longer_be_confirmed() {
        let now = at("2026-12-09T06:00:00Z");
        let lapse = Transition::LapseRecipient;
        let confirm = Transition::ConfirmRecipient { token: TokenHash::of_secret("t") };
        assert!(request(Status::Verified).apply(&lapse, now).is_err(), "no recipient named");
        let named = RequestRecord {
            recipient: Some(EmailAddress::parse("new@example.org").unwrap()),
            ..request(Status::Verified)
        };
        assert!(named.awaits_recipient());
        let lapsed = named.apply(&lapse, now).unwrap();
        assert_eq!((lapsed.status, lapsed.version), (Status::Verified, named.version + 1));
        assert_eq!((lapsed.recipient_lapsed_at, lapsed.recipient_confirmed_at), (Some(now), None));
        assert_eq!((lapsed.closed_reason.as_deref(), lapse.reason()), (None, None), "nothing closes");
        assert!(!lapsed.awaits_recipient());
        assert!(lapsed.apply(&lapse, now).is_err(), "once");
        assert!(lapsed.apply(&confirm, now).is_err(), "too late to confirm");
        let confirmed = named.apply(&confirm, now).unwrap();
        assert!(confirmed.apply(&lapse, now).is_err(), "confirmed in time: nothing lapses");
        let started = RequestRecord { status: Status::InProgress, ..named };
        assert!(started.apply(&lapse, now).is_err(), "only while verified");
    }

    #[test]
    fn staff_cannot_complete_by_hand_what_the_system_fulfils() {
        let now = at("2026-12-01T10:00:00Z");
        let by_staff = Transition::Complete(Completion::ByStaff { note: Some(text("Done.")) });
        let of = |kind: RequestKind, status: Status| RequestRecord { kind, ..request(status) };
        for kind in [RequestKind::Access, RequestKind::Portability, RequestKind::Deletion] {
            for status in [Status::Verified, Status::InProgress] {
                let err = of(kind, status).apply(&by_staff, now).unwrap_err();
                assert_eq!(err, TransitionError { from: status, event: Event::Completed }, "{kind}");
            }
        }
        let corrections = [("job_title".to_owned(), "Lead".to_owned())].into();
        let self_service = RequestRecord {
            corrections: Some(corrections),
            ..of(RequestKind::Rectification, Status::Verified)
        };
        assert!(self_service.fulfilled_automatically());
        assert!(self_service.apply(&by_staff, now).is_err(), "a self-service correction completes itself");
        for kind in [RequestKind::Rectification, RequestKind::Restriction, RequestKind::Objection] {
            let done = of(kind, Status::Verified).apply(&by_staff, now).unwrap();
            assert_eq!(done.status, Status::Completed, "{kind} is done by hand");
        }
        let exported = of(RequestKind::Access, Status::InProgress)
            .apply(&Transition::Complete(Completion::Exported { found: 1 }), now);
        assert_eq!(exported.unwrap().status, Status::Completed, "the system's own completion still works");
    }

    #[test]
    fn an_export_completed_in_parts_keeps_how_many_and_one_in_one_piece_keeps_none() {
        let now = at("2026-12-01T10:00:00Z");
        let nothing = Transition::Complete(Completion::Exported { found: 0 });
        let whole = request(Status::InProgress).apply(&nothing, now).unwrap();
        assert_eq!((whole.export_parts, whole.export_found), (None, Some(0)), "nothing found, and so said");
        let parts = Transition::Complete(Completion::ExportedInParts { parts: 3, found: 12 });
        let done = request(Status::InProgress).apply(&parts, now).unwrap();
        assert_eq!(
            (done.status, done.export_parts, done.export_found),
            (Status::Completed, Some(3), Some(12))
        );
        assert_eq!(parts.reason(), None, "nothing to tell beyond the links");
    }

    #[test]
    fn the_state_machine_still_decides() {
        let now = at("2026-12-01T10:00:00Z");
        let err = request(Status::Completed).apply(&Transition::StartWork, now).unwrap_err();
        assert_eq!(err, TransitionError { from: Status::Completed, event: Event::WorkStarted });
    }

    #[test]
    fn a_confirmation_of_receipt_is_sent_once_and_counts_as_the_acknowledgement() {
        let now = at("2026-12-01T10:00:00Z");
        for status in [Status::PendingVerification, Status::Verified, Status::InProgress] {
            let confirmed = request(status).apply(&Transition::ConfirmReceipt, now).unwrap();
            assert_eq!(confirmed.status, status, "the status stays");
            assert_eq!((confirmed.receipt_confirmed_at, confirmed.acknowledged_at), (Some(now), Some(now)));
            assert!(confirmed.apply(&Transition::ConfirmReceipt, now).is_err(), "once");
        }
        let delivered = at("2026-11-29T10:00:00Z");
        let earlier = RequestRecord { acknowledged_at: Some(delivered), ..request(Status::Verified) };
        let confirmed = earlier.apply(&Transition::ConfirmReceipt, now).unwrap();
        assert_eq!(confirmed.acknowledged_at, Some(delivered), "the first acknowledgement stands");
        assert!(request(Status::Denied).apply(&Transition::ConfirmReceipt, now).is_err());
    }

    #[test]
    fn an_accepted_fee_reopens_an_excessive_request_with_a_fresh_deadline() {
        let now = at("2026-12-10T10:00:00Z");
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let estimate = CostEstimate::parse("25.00", "EUR").unwrap();
        let excessive =
            Transition::RejectExcessive { reason: text("Tenth copy."), estimate: estimate.clone() };
        let extended = RequestRecord {
            original_due_on: Some(day(28)),
            extension_reason: Some("More time.".into()),
            ..request(Status::Verified)
        };
        let rejected = extended.apply(&excessive, now).unwrap();
        let accept = Transition::AcceptFee {
            accepted_on: day(9),
            due_on: NaiveDate::from_ymd_opt(2027, 1, 11).unwrap(),
        };
        let reopened = rejected.apply(&accept, now).unwrap();
        assert_eq!(reopened.status, Status::Verified);
        assert_eq!(reopened.fee_accepted_on, Some(day(9)));
        assert_eq!(reopened.due_on, NaiveDate::from_ymd_opt(2027, 1, 11).unwrap());
        assert_eq!(
            (reopened.original_due_on, reopened.extension_reason, reopened.closed_reason),
            (None, None, None)
        );
        assert_eq!(reopened.cost_estimate, Some(estimate), "the fee stays on the request");
        assert_eq!(reopened.received_on, rejected.received_on, "received when it was received");

        let limit = request(Status::Verified).apply(&Transition::RejectOverLimit, now).unwrap();
        assert!(limit.apply(&accept, now).is_err(), "the CCPA limit has no fee to accept");
        assert!(request(Status::Denied).apply(&accept, now).is_err());
    }

    #[test]
    fn a_dispute_of_a_refused_correction_restricts_until_a_lift_is_announced_and_keeps_the_refusal() {
        let now = at("2026-12-10T10:00:00Z");
        let deny = Transition::Deny { reason: text("Uw geboortedatum klopt."), basis: DenialBasis::Other };
        let refused = RequestRecord { kind: RequestKind::Rectification, ..request(Status::Verified) }
            .apply(&deny, now)
            .unwrap();
        let statement = Some(text("Mijn geboortedatum is 3 mei 1980."));
        let disputed =
            refused.apply(&Transition::RecordDispute { statement: statement.clone() }, now).unwrap();
        assert_eq!(disputed.status, Status::Denied);
        assert_eq!(disputed.closed_reason, refused.closed_reason, "the refusal's reason stands");
        let dispute = disputed.dispute.clone().unwrap();
        assert_eq!(
            (dispute.recorded_at, dispute.statement, dispute.restriction),
            (now, statement, Restriction::InForce)
        );
        assert!(disputed.apply(&Transition::RecordDispute { statement: None }, now).is_err(), "once");

        let on = NaiveDate::from_ymd_opt(2026, 12, 24).unwrap();
        let lift = Transition::AnnounceLift { on, reason: text("Nagekeken bij de bron.") };
        let lifting = disputed.apply(&lift, now).unwrap();
        assert_eq!(lifting.dispute.as_ref().unwrap().lifting().map(|(d, _)| d), Some(on));
        assert_eq!(lifting.closed_reason, refused.closed_reason);
        assert!(lifting.apply(&lift, now).is_err(), "announced once");
        assert!(refused.apply(&lift, now).is_err(), "nothing to lift without a dispute");

        let other =
            RequestRecord { kind: RequestKind::Objection, ..request(Status::Verified) }.apply(&deny, now);
        let other = other.unwrap();
        assert!(
            other.apply(&Transition::RecordDispute { statement: None }, now).is_err(),
            "a correction only"
        );
        let open = RequestRecord { kind: RequestKind::Rectification, ..request(Status::Verified) };
        assert!(open.apply(&Transition::RecordDispute { statement: None }, now).is_err(), "refused first");
    }
}
