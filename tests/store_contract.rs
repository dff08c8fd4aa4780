//! The store's contract, held against both implementations: every behaviour below runs once
//! against DynamoDB (the emulator) and once against the in-memory store, so flow tests on the
//! in-memory store stand for what the deployed one does.

use chrono::{DateTime, Duration, Utc};

use crate::support::*;
use privacy_shared::budget::MailBudgets;
use privacy_shared::domain::{
    Actor, Completion, Dispute, EmailAddress, Event, ExpiryReason, Language, Region, RequestId, RequestKind,
    RequestRecord, Restriction, StaffText, Status, TokenHash, Transition, Triage,
};
use privacy_shared::store::{
    Bound, Change, Claim, Created, DownloadToken, ErasureAt, ErasureMark, ErasureProgress, LiveToken,
    MAX_LIVE_TOKENS, MemoryStore, OpenQuery, RequestStore, StoreError, SuppressionList, TokenSlot,
    WrongAttempt,
};

fn at(minutes: i64) -> DateTime<Utc> {
    start_time() + Duration::minutes(minutes)
}

fn received(address: &str, kind: RequestKind, when: DateTime<Utc>) -> RequestRecord {
    let calendar = privacy_shared::domain::BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
    let region = Region::parse("NL").unwrap();
    let deadlines = calendar.deadlines(region.regime(), when);
    let email = EmailAddress::parse(address).unwrap();
    RequestRecord::received(RequestId::generate(), kind, region, Language::Nl, email, when, deadlines)
}

fn secret(token: &str, expires_at: DateTime<Utc>) -> LiveToken {
    LiveToken { token_hash: TokenHash::of_secret(token), expires_at }
}

/// A new request with its verification secret `token`.
async fn created<S: RequestStore>(
    store: &S,
    kind: RequestKind,
    when: DateTime<Utc>,
    token: &str,
) -> RequestRecord {
    let record = received(&unique_address("contract"), kind, when);
    assert_eq!(
        store.create(&record, &secret(token, when + Duration::hours(24))).await.unwrap(),
        Created::New
    );
    record
}

async fn verified<S: RequestStore>(store: &S, kind: RequestKind, when: DateTime<Utc>) -> RequestRecord {
    let record = created(store, kind, when, "t").await;
    let verify = Transition::Verify { token: TokenHash::of_secret("t") };
    store.transition(&record, Change::new(verify, when, Actor::Requester)).await.unwrap()
}

fn staff_text(text: &str) -> StaffText {
    StaffText::parse(text).unwrap()
}

async fn a_second_request_of_the_same_kind_answers_with_the_open_one<S: RequestStore>(store: &S) {
    let first = created(store, RequestKind::Access, at(0), "a").await;
    let again = RequestRecord { id: RequestId::generate(), ..first.clone() };
    assert_eq!(store.create(&again, &secret("b", at(60))).await.unwrap(), Created::AlreadyOpen(first.id));
    assert!(store.get(again.id).await.unwrap().is_none(), "nothing of the second was written");
    assert_eq!(
        store.open_request(&first.email.subject_key(), RequestKind::Access).await.unwrap(),
        Some(first.id)
    );
    let other_kind =
        RequestRecord { id: RequestId::generate(), kind: RequestKind::Deletion, ..first.clone() };
    assert_eq!(store.create(&other_kind, &secret("c", at(60))).await.unwrap(), Created::New);
}

async fn a_transition_from_a_stale_read_conflicts_and_writes_nothing<S: RequestStore>(store: &S) {
    let pending = created(store, RequestKind::Access, at(0), "t").await;
    let verify = Transition::Verify { token: TokenHash::of_secret("t") };
    let verified =
        store.transition(&pending, Change::new(verify.clone(), at(1), Actor::Requester)).await.unwrap();
    assert_eq!((verified.status, verified.version), (Status::Verified, 2));
    let stale = Change::system(Transition::Expire(ExpiryReason::NotVerified), at(2));
    assert!(matches!(store.transition(&pending, stale).await, Err(StoreError::Conflict)));
    assert_eq!(store.get(pending.id).await.unwrap(), Some(verified));
    let events: Vec<Event> = store.audit_trail(pending.id).await.unwrap().iter().map(|e| e.event).collect();
    assert_eq!(events, [Event::Submitted, Event::Verified]);
}

async fn a_token_is_consumed_once_and_only_the_stored_one_verifies<S: RequestStore>(store: &S) {
    let pending = created(store, RequestKind::Access, at(0), "right").await;
    let wrong = Transition::Verify { token: TokenHash::of_secret("wrong") };
    assert!(matches!(
        store.transition(&pending, Change::new(wrong, at(1), Actor::Requester)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get(pending.id).await.unwrap().unwrap().status, Status::PendingVerification);
    let right = Transition::Verify { token: TokenHash::of_secret("right") };
    store.transition(&pending, Change::new(right, at(2), Actor::Requester)).await.unwrap();
    assert!(store.secret(pending.id, TokenSlot::Requester).await.unwrap().is_none(), "single use");
    let history = store.history(&pending.email.subject_key()).await.unwrap();
    assert_eq!(
        history.iter().map(|p| (p.id, p.kind)).collect::<Vec<_>>(),
        [(pending.id, RequestKind::Access)]
    );
}

async fn a_recipient_token_confirms_the_recipient_once<S: RequestStore>(store: &S) {
    let record = RequestRecord {
        recipient: Some(EmailAddress::parse(&unique_address("recipient")).unwrap()),
        ..received(&unique_address("portability"), RequestKind::Portability, at(0))
    };
    store.create(&record, &secret("t", at(60))).await.unwrap();
    let verify = Transition::Verify { token: TokenHash::of_secret("t") };
    let verified = store.transition(&record, Change::new(verify, at(1), Actor::Requester)).await.unwrap();
    assert!(store.issue_token(record.id, TokenSlot::Recipient, &secret("r", at(600)), at(1)).await.unwrap());
    let confirm = |token: &str| Transition::ConfirmRecipient { token: TokenHash::of_secret(token) };
    let wrong = store.transition(&verified, Change::new(confirm("x"), at(2), Actor::Requester)).await;
    assert!(matches!(wrong, Err(StoreError::Conflict)));
    let confirmed =
        store.transition(&verified, Change::new(confirm("r"), at(3), Actor::Requester)).await.unwrap();
    assert_eq!(confirmed.recipient_confirmed_at, Some(at(3)));
    assert!(store.secret(record.id, TokenSlot::Recipient).await.unwrap().is_none());
}

async fn an_extension_is_written_once_even_when_two_writers_read_the_same_version<S: RequestStore>(
    store: &S,
) {
    let request = verified(store, RequestKind::Rectification, at(0)).await;
    let extend = |days: u64, reason: &str| Transition::Extend {
        until: request.due_on + chrono::Days::new(days),
        reason: staff_text(reason),
    };
    let staff = Actor::Staff("arn:aws:iam::1:user/a".into());
    let first =
        store.transition(&request, Change::new(extend(10, "first"), at(1), staff.clone())).await.unwrap();
    assert_eq!(first.original_due_on, Some(request.due_on));
    let second = store.transition(&request, Change::new(extend(20, "second"), at(2), staff)).await;
    assert!(matches!(second, Err(StoreError::Conflict)));
    let stored = store.get(request.id).await.unwrap().unwrap();
    assert_eq!((stored.due_on, stored.extension_reason.as_deref()), (first.due_on, Some("first")));
}

async fn closing_deletes_the_verification_data_and_frees_the_kind<S: RequestStore>(store: &S) {
    let pending = created(store, RequestKind::Deletion, at(0), "t").await;
    let closed = store
        .transition(&pending, Change::system(Transition::Expire(ExpiryReason::NotVerified), at(5)))
        .await
        .unwrap();
    assert_eq!((closed.status, closed.closed_reason.as_deref()), (Status::Expired, Some("not_verified")));
    assert!(store.secret(pending.id, TokenSlot::Requester).await.unwrap().is_none());
    assert_eq!(store.open_request(&pending.email.subject_key(), RequestKind::Deletion).await.unwrap(), None);
    let trail = store.audit_trail(pending.id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!(
        (last.event, last.from, last.to),
        (Event::Expired, Some(Status::PendingVerification), Status::Expired)
    );
    assert_eq!(last.reason.as_deref(), Some("not_verified"));
}

async fn a_stamp_written_meanwhile_survives_a_transition<S: RequestStore>(store: &S) {
    let pending = created(store, RequestKind::Access, at(0), "t").await;
    store.mark_acknowledged(pending.id, at(1)).await.unwrap();
    store.mark_acknowledged(pending.id, at(9)).await.unwrap();
    // The transition starts from the copy read before the stamp.
    let verify = Transition::Verify { token: TokenHash::of_secret("t") };
    store.transition(&pending, Change::new(verify, at(2), Actor::Requester)).await.unwrap();
    let stored = store.get(pending.id).await.unwrap().unwrap();
    assert_eq!(stored.acknowledged_at, Some(at(1)), "the first stamp counts and survives");
    assert_eq!(stored.status, Status::Verified);
}

async fn every_kind_of_change_lands_as_the_domain_applies_it<S: RequestStore>(store: &S) {
    let request = verified(store, RequestKind::Deletion, at(0)).await;
    let triaged = Transition::Triage(Triage { has_account: true, child: false });
    let step = store.transition(&request, Change::system(triaged, at(1))).await.unwrap();
    let step = store.transition(&step, Change::system(Transition::StartWork, at(2))).await.unwrap();
    let receipt = privacy_shared::domain::ErasureReceipt { exports_deleted: 1, ..Default::default() };
    let done = Transition::Complete(Completion::Erased(receipt.clone()));
    let expected = step.apply(&done, at(3)).unwrap();
    let written = store.transition(&step, Change::system(done, at(3))).await.unwrap();
    assert_eq!(written, expected);
    assert_eq!(store.get(request.id).await.unwrap(), Some(expected));
    assert_eq!(written.receipt, Some(receipt));
    assert_eq!(written.triage, Some(Triage { has_account: true, child: false }));
}

async fn one_holder_performs_an_effect_until_it_is_finished_released_or_its_lease_lapses<S: RequestStore>(
    store: &S,
) {
    let id = RequestId::generate();
    let lease = Duration::minutes(5);
    assert_eq!(store.claim_effect(id, "mail#v2", at(0), lease).await.unwrap(), Claim::Acquired);
    assert_eq!(store.claim_effect(id, "mail#v2", at(1), lease).await.unwrap(), Claim::InProgress);
    store.release_effect(id, "mail#v2").await.unwrap();
    assert_eq!(store.claim_effect(id, "mail#v2", at(2), lease).await.unwrap(), Claim::Acquired);
    assert_eq!(store.claim_effect(id, "mail#v2", at(8), lease).await.unwrap(), Claim::Acquired, "lapsed");
    store.finish_effect(id, "mail#v2").await.unwrap();
    assert_eq!(store.claim_effect(id, "mail#v2", at(60), lease).await.unwrap(), Claim::AlreadyDone);
    store.release_effect(id, "mail#v2").await.unwrap();
    assert_eq!(
        store.claim_effect(id, "mail#v2", at(61), lease).await.unwrap(),
        Claim::AlreadyDone,
        "done stays done"
    );
    assert_eq!(store.claim_effect(id, "mail#v3", at(61), lease).await.unwrap(), Claim::Acquired);
}

async fn the_due_index_holds_open_requests_per_status_in_order<S: RequestStore>(store: &S) {
    let pending: Vec<RequestRecord> = {
        let mut v = Vec::new();
        for minute in [30, 10, 20] {
            v.push(created(store, RequestKind::Access, at(minute), "t").await);
        }
        v
    };
    let verified = verified(store, RequestKind::Objection, at(40)).await;
    let closed = created(store, RequestKind::Deletion, at(50), "t").await;
    store
        .transition(&closed, Change::system(Transition::Expire(ExpiryReason::NotVerified), at(51)))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let query = OpenQuery { status: Status::PendingVerification, until: None, limit: 2, after };
        let page = store.open_requests(&query).await.unwrap();
        seen.extend(page.requests.iter().map(|r| r.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [pending[1].id, pending[2].id, pending[0].id], "oldest first, every page");
    let bounded = OpenQuery {
        status: Status::PendingVerification,
        until: Some(Bound::ReceivedBy(at(20))),
        limit: 10,
        after: None,
    };
    let page = store.open_requests(&bounded).await.unwrap();
    assert_eq!(page.requests.iter().map(|r| r.id).collect::<Vec<_>>(), [pending[1].id, pending[2].id]);
    assert_eq!(page.items_read, 2, "a bounded read reads only what is in range");
    let due = OpenQuery {
        status: Status::Verified,
        until: Some(Bound::DueBy(verified.due_on)),
        limit: 10,
        after: None,
    };
    let page = store.open_requests(&due).await.unwrap();
    assert_eq!(page.requests.len(), 1);
    assert_eq!((page.requests[0].id, page.requests[0].kind), (verified.id, RequestKind::Objection));
    let before_due = OpenQuery {
        status: Status::Verified,
        until: Some(Bound::DueBy(verified.due_on.pred_opt().unwrap())),
        limit: 10,
        after: None,
    };
    assert!(store.open_requests(&before_due).await.unwrap().requests.is_empty());
    let expired = OpenQuery { status: Status::Expired, until: None, limit: 10, after: None };
    assert!(
        store.open_requests(&expired).await.unwrap().requests.is_empty(),
        "closed requests are not indexed"
    );
}

async fn a_suppression_keeps_its_first_moment_and_request<S: RequestStore>(store: &S) {
    let address = unique_address("optout");
    let first =
        RequestRecord { status: Status::Completed, ..received(&address, RequestKind::OptOutOfSale, at(0)) };
    store.create_opt_out(&first, SuppressionList::Sale).await.unwrap();
    let again = RequestRecord { id: RequestId::generate(), received_at: at(30), ..first.clone() };
    store.create_opt_out(&again, SuppressionList::Sale).await.unwrap();
    let lists = store.suppressions(&first.email.subject_key()).await.unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(
        (lists[0].list, lists[0].since, lists[0].request_id),
        (SuppressionList::Sale, at(0), first.id)
    );
    let email = first.email.clone();
    assert!(privacy_shared::store::is_suppressed(store, &email, SuppressionList::Sale).await.unwrap());
    assert!(!privacy_shared::store::is_suppressed(store, &email, SuppressionList::Marketing).await.unwrap());
    let trail = store.audit_trail(first.id).await.unwrap();
    assert_eq!(trail[0].reason.as_deref(), Some("no_verification_required"));
}

async fn a_mail_budget_grants_its_limit_per_window_then_rolls<S: RequestStore>(store: &S) {
    let address = EmailAddress::parse(&unique_address("rate")).unwrap();
    let charges = MailBudgets { per_mailbox: 3, ..MailBudgets::default() }.charges(&address, None);
    let mailbox = &charges[0];
    let hour = Duration::hours(1);
    for minute in [0, 10, 20] {
        assert!(store.charge_budget(mailbox, at(minute), hour).await.unwrap());
    }
    assert!(!store.charge_budget(mailbox, at(30), hour).await.unwrap());
    assert!(!store.charge_budget(mailbox, at(59), hour).await.unwrap(), "a refusal counts nothing");
    assert!(store.charge_budget(mailbox, at(61), hour).await.unwrap(), "the next window");
    let other =
        &MailBudgets::default().charges(&EmailAddress::parse(&unique_address("else")).unwrap(), None)[0];
    assert!(store.charge_budget(other, at(30), hour).await.unwrap(), "each key its own count");
}

async fn links_add_up_to_a_few_and_wrong_tries_lock_them_without_touching_the_request<S: RequestStore>(
    store: &S,
) {
    let pending = created(store, RequestKind::Access, at(0), "t").await;
    let slot = TokenSlot::Requester;
    for (token, expiry) in [("u", 90), ("v", 100)] {
        assert!(store.issue_token(pending.id, slot, &secret(token, at(expiry)), at(1)).await.unwrap());
    }
    let stored = store.secret(pending.id, slot).await.unwrap().unwrap();
    assert_eq!(stored.tokens, [secret("u", at(90)), secret("v", at(100)), secret("t", at(24 * 60))]);
    assert!(store.issue_token(pending.id, slot, &secret("w", at(110)), at(2)).await.unwrap());
    let stored = store.secret(pending.id, slot).await.unwrap().unwrap();
    assert_eq!(stored.tokens.len(), MAX_LIVE_TOKENS, "the link closest to expiry makes room");
    assert!(!stored.accepts(&TokenHash::of_secret("u"), at(3)));
    assert!(stored.accepts(&TokenHash::of_secret("t"), at(3)));

    assert_eq!(
        store.count_wrong_attempt(pending.id, slot, at(4), 3).await.unwrap(),
        WrongAttempt::Counted(1)
    );
    assert_eq!(
        store.count_wrong_attempt(pending.id, slot, at(4), 3).await.unwrap(),
        WrongAttempt::Counted(2)
    );
    assert_eq!(store.count_wrong_attempt(pending.id, slot, at(5), 3).await.unwrap(), WrongAttempt::Locked);
    let locked = store.secret(pending.id, slot).await.unwrap().unwrap();
    assert!(locked.is_locked() && !locked.accepts(&TokenHash::of_secret("v"), at(6)));
    assert_eq!(store.get(pending.id).await.unwrap().unwrap().status, Status::PendingVerification);
    assert!(store.issue_token(pending.id, slot, &secret("x", at(90)), at(7)).await.unwrap());
    let fresh = store.secret(pending.id, slot).await.unwrap().unwrap();
    assert!(fresh.accepts(&TokenHash::of_secret("x"), at(8)) && !fresh.is_locked());

    let unknown = RequestId::generate();
    assert!(!store.issue_token(unknown, slot, &secret("u", at(90)), at(1)).await.unwrap());
    assert_eq!(store.count_wrong_attempt(unknown, slot, at(1), 3).await.unwrap(), WrongAttempt::NoSecret);
    assert!(store.secret(unknown, TokenSlot::Requester).await.unwrap().is_none());
    assert!(
        !store.issue_token(pending.id, TokenSlot::Recipient, &secret("r", at(90)), at(1)).await.unwrap(),
        "no recipient link before the requester confirmed"
    );

    let download = DownloadToken { token_hash: TokenHash::of_secret("d"), expires_at: at(1000) };
    let third = DownloadToken { token_hash: TokenHash::of_secret("e"), expires_at: at(2000) };
    store.put_download_token(pending.id, TokenSlot::Requester, &download).await.unwrap();
    store.put_download_token(pending.id, TokenSlot::Recipient, &third).await.unwrap();
    assert_eq!(store.download_tokens(pending.id).await.unwrap(), [download, third]);
}

async fn scrubbing_keeps_the_request_and_its_trail_but_no_personal_text_or_secrets<S: RequestStore>(
    store: &S,
) {
    let dispute = Dispute {
        recorded_at: at(0),
        statement: Some(StaffText::parse("My date of birth is 3 May 1990, not 1980.").unwrap()),
        restriction: Restriction::InForce,
    };
    let record = RequestRecord {
        name: Some("Jan Jansen".into()),
        details: Some("my account".into()),
        dispute: Some(dispute),
        ..received(&unique_address("scrub"), RequestKind::Access, at(0))
    };
    store.create(&record, &secret("t", at(60))).await.unwrap();
    let download = DownloadToken { token_hash: TokenHash::of_secret("d"), expires_at: at(1000) };
    store.put_download_token(record.id, TokenSlot::Requester, &download).await.unwrap();
    let standing = ErasureAt { pass: 2, pending: vec!["devices".into()], next: None };
    let progress = ErasureProgress {
        user_id: Some("u-1".into()),
        sources: Vec::new(),
        exports_deleted: Some(0),
        at: Some(standing),
    };
    store.save_erasure_progress(record.id, &progress, at(1)).await.unwrap();
    assert_eq!(store.erasure_progress(record.id).await.unwrap(), Some(progress));

    store.scrub_request(record.id).await.unwrap();
    let stored = store.get(record.id).await.unwrap().unwrap();
    assert_eq!((stored.name, stored.details), (None, None));
    let dispute = stored.dispute.expect("the dispute's restriction is the request's history");
    assert_eq!(dispute.statement, None, "the person's own words go with their data");
    assert!(dispute.restriction == Restriction::InForce);
    assert_eq!(stored.status, Status::PendingVerification);
    assert!(store.secret(record.id, TokenSlot::Requester).await.unwrap().is_none());
    assert!(store.download_tokens(record.id).await.unwrap().is_empty());
    assert!(store.erasure_progress(record.id).await.unwrap().is_none());
    assert_eq!(store.audit_trail(record.id).await.unwrap().len(), 1);
}

async fn events_that_change_nothing_follow_their_transition_in_the_trail<S: RequestStore>(store: &S) {
    let pending = created(store, RequestKind::Access, at(0), "t").await;
    store.record_event(&pending, Event::Reminded, at(3), Actor::System).await.unwrap();
    let verify = Transition::Verify { token: TokenHash::of_secret("t") };
    let verified = store.transition(&pending, Change::new(verify, at(4), Actor::Requester)).await.unwrap();
    store.record_event(&verified, Event::Downloaded, at(5), Actor::Requester).await.unwrap();
    let events: Vec<(Event, u32)> =
        store.audit_trail(pending.id).await.unwrap().iter().map(|e| (e.event, e.version)).collect();
    assert_eq!(
        events,
        [(Event::Submitted, 1), (Event::Reminded, 1), (Event::Verified, 2), (Event::Downloaded, 2)]
    );
}

/// A request of `address` verified at `when`, its work started.
async fn started<S: RequestStore>(
    store: &S,
    address: &str,
    kind: RequestKind,
    when: DateTime<Utc>,
) -> RequestRecord {
    let record = received(address, kind, when);
    store.create(&record, &secret("t", when + Duration::hours(24))).await.unwrap();
    let verify = Transition::Verify { token: TokenHash::of_secret("t") };
    let verified = store.transition(&record, Change::new(verify, when, Actor::Requester)).await.unwrap();
    store.transition(&verified, Change::system(Transition::StartWork, when)).await.unwrap()
}

async fn an_export_completes_only_when_no_erasure_of_the_person_began_since_it_was_verified<
    S: RequestStore,
>(
    store: &S,
) {
    let address = unique_address("erased");
    let subject = EmailAddress::parse(&address).unwrap().subject_key();
    let exported = || Change::system(Transition::Complete(Completion::Exported { found: 1 }), at(2));
    let before = started(store, &address, RequestKind::Access, at(0)).await;
    // Half a second after the mark: compared as text, "…:00Z" would sort after "…:00.5Z".
    let after = started(store, &address, RequestKind::Portability, at(1) + Duration::milliseconds(500)).await;
    let someone_else = started(store, &unique_address("other"), RequestKind::Access, at(0)).await;
    assert_eq!(store.erasure_mark(&subject).await.unwrap(), None);

    let erasure = RequestId::generate();
    store.mark_erasure_started(&subject, erasure, at(1)).await.unwrap();
    store.mark_erasure_started(&subject, erasure, at(1)).await.unwrap();
    store.mark_erasure_started(&subject, RequestId::generate(), at(0)).await.unwrap();
    let mark = ErasureMark { request_id: erasure, started_at: at(1) };
    assert_eq!(store.erasure_mark(&subject).await.unwrap(), Some(mark), "idempotent, and never moved back");

    assert!(matches!(store.transition(&before, exported()).await, Err(StoreError::Conflict)));
    assert_eq!(store.get(before.id).await.unwrap(), Some(before.clone()), "nothing was written");
    assert_eq!(store.audit_trail(before.id).await.unwrap().len(), 3);
    let deny = Transition::Deny {
        reason: staff_text("Erased meanwhile."),
        basis: privacy_shared::domain::DenialBasis::Other,
    };
    let closed = store.transition(&before, Change::system(deny, at(2))).await.unwrap();
    assert_eq!(closed.status, Status::Denied, "the overtaken export closes another way");

    assert_eq!(store.transition(&after, exported()).await.unwrap().status, Status::Completed);
    assert_eq!(store.transition(&someone_else, exported()).await.unwrap().status, Status::Completed);

    // A later erasure moves the mark on, and overtakes what was verified before it.
    let later = started(store, &address, RequestKind::Access, at(3)).await;
    store.mark_erasure_started(&subject, RequestId::generate(), at(3)).await.unwrap();
    assert!(
        matches!(store.transition(&later, exported()).await, Err(StoreError::Conflict)),
        "a tie: erasure wins"
    );
}

macro_rules! held_by_both_stores {
    ($($behaviour:ident),* $(,)?) => {
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let stack = crate::support::Stack::new().await;
                    super::$behaviour(&stack.deps().store).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(&super::MemoryStore::new()).await;
                }
            )*
        }
    };
}

held_by_both_stores!(
    a_second_request_of_the_same_kind_answers_with_the_open_one,
    a_transition_from_a_stale_read_conflicts_and_writes_nothing,
    a_token_is_consumed_once_and_only_the_stored_one_verifies,
    a_recipient_token_confirms_the_recipient_once,
    an_extension_is_written_once_even_when_two_writers_read_the_same_version,
    closing_deletes_the_verification_data_and_frees_the_kind,
    a_stamp_written_meanwhile_survives_a_transition,
    every_kind_of_change_lands_as_the_domain_applies_it,
    one_holder_performs_an_effect_until_it_is_finished_released_or_its_lease_lapses,
    the_due_index_holds_open_requests_per_status_in_order,
    a_suppression_keeps_its_first_moment_and_request,
    a_mail_budget_grants_its_limit_per_window_then_rolls,
    links_add_up_to_a_few_and_wrong_tries_lock_them_without_touching_the_request,
    scrubbing_keeps_the_request_and_its_trail_but_no_personal_text_or_secrets,
    events_that_change_nothing_follow_their_transition_in_the_trail,
    an_export_completes_only_when_no_erasure_of_the_person_began_since_it_was_verified,
);
