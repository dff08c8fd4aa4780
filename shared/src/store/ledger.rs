//! The effect-ledger protocol, written once: claim the entries, perform the work, then finish
//! every claimed entry if it succeeded or release them all if it failed, so a retry performs it.
//! One effect is a batch of one; the staff digest claims many lines and sends one mail.

use chrono::{DateTime, Duration, Utc};
use std::future::Future;

use super::{Claim, EffectLedger, StoreError};
use crate::Clock;
use crate::domain::RequestId;

/// Entries of one batch after claiming: the ones this caller now holds (with what the caller
/// attached to each), and how many were done before or are held by someone else.
pub struct Claims<T> {
    pub acquired: Vec<(RequestId, String, T)>,
    pub already_done: usize,
    /// Held by another delivery whose lease has not run out: left for a retry.
    pub busy: usize,
}

/// Claims every entry for `lease`.
pub async fn claim_all<L, T>(
    ledger: &L,
    entries: impl IntoIterator<Item = (RequestId, String, T)>,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Claims<T>, StoreError>
where
    L: EffectLedger + ?Sized,
{
    let mut claims = Claims { acquired: Vec::new(), already_done: 0, busy: 0 };
    for (id, key, payload) in entries {
        match ledger.claim_effect(id, &key, now, lease).await? {
            Claim::Acquired => claims.acquired.push((id, key, payload)),
            Claim::AlreadyDone => claims.already_done += 1,
            Claim::InProgress => claims.busy += 1,
        }
    }
    Ok(claims)
}

impl<T> Claims<T> {
    /// Records how the work on the claimed entries ended: finished on success, released on failure
    /// (the work's own error is the one returned).
    pub async fn settle<L, R, E>(&self, ledger: &L, result: Result<R, E>) -> Result<R, E>
    where
        L: EffectLedger + ?Sized,
        E: From<StoreError>,
    {
        for (id, key, _) in &self.acquired {
            match &result {
                Ok(_) => finish(ledger, *id, key).await?,
                Err(_) => ledger.release_effect(*id, key).await?,
            }
        }
        result
    }
}

/// How often finishing a performed effect is tried, the SDK's own retries aside.
const FINISH_TRIES: u32 = 5;

/// Marks a performed effect done, waiting out a passing failure of the store. The work has
/// happened (a mail went out): an entry left claimed is taken over once its lease runs out and
/// the work performed again, so giving up at the first throttled write sent mail twice (found
/// by the fault run, `make chaos`).
async fn finish<L: EffectLedger + ?Sized>(ledger: &L, id: RequestId, key: &str) -> Result<(), StoreError> {
    let mut pause = std::time::Duration::from_millis(50);
    for _ in 1..FINISH_TRIES {
        match ledger.finish_effect(id, key).await {
            Err(StoreError::Aws { .. }) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    ledger.finish_effect(id, key).await
}

/// What became of one effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Once<R> {
    Performed(R),
    AlreadyDone,
    /// Another delivery holds it right now.
    Busy,
}

/// Performs `work` once for this request and key, however often it is asked: not at all when it
/// was done before or is being done elsewhere.
pub async fn once<L, R, E, F>(
    ledger: &L,
    id: RequestId,
    key: &str,
    now: DateTime<Utc>,
    lease: Duration,
    work: F,
) -> Result<Once<R>, E>
where
    L: EffectLedger + ?Sized,
    E: From<StoreError>,
    F: Future<Output = Result<R, E>>,
{
    let claims = claim_all(ledger, [(id, key.to_owned(), ())], now, lease).await?;
    if claims.acquired.is_empty() {
        return Ok(if claims.busy > 0 { Once::Busy } else { Once::AlreadyDone });
    }
    let result = work.await;
    claims.settle(ledger, result).await.map(Once::Performed)
}

/// One invocation of a function, as long as the platform lets it run: Lambda stops it at its
/// deadline (the function's timeout after it started), so nothing it claimed is still being
/// worked on after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invocation {
    ends_at: DateTime<Utc>,
}

/// How far the clocks of two invocations (and whole-second lease stamps) may disagree.
pub const LEASE_MARGIN: Duration = Duration::seconds(5);
/// How often a waiting invocation asks again whether a held effect came free.
pub const TAKEOVER_POLL: Duration = Duration::seconds(5);

impl Invocation {
    pub fn ending_at(ends_at: DateTime<Utc>) -> Invocation {
        Invocation { ends_at }
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }

    /// The lease for a claim taken at `now`: until this invocation has certainly ended. A lease
    /// that ran out was therefore held by an invocation that is gone (it crashed or timed out)
    /// and may be taken over without two holders ever working at once.
    pub fn lease(&self, now: DateTime<Utc>) -> Duration {
        (self.ends_at - now).max(Duration::zero()) + LEASE_MARGIN
    }
}

/// Like [`once`], but an effect another delivery holds is waited for on `clock`: a live holder
/// finishes it (then it is [`Once::AlreadyDone`]) or releases it, and a crashed holder's lease
/// runs out, when it is taken over and performed here. The wait stops while `invocation` still
/// has `reserve` left for the work and the rest of its batch; then it is [`Once::Busy`], for a
/// later delivery (which outlives the lease, since the holder's invocation is no longer).
#[allow(clippy::too_many_arguments)]
pub async fn once_or_take_over<L, R, E, F>(
    ledger: &L,
    clock: &dyn Clock,
    invocation: Invocation,
    reserve: Duration,
    id: RequestId,
    key: &str,
    work: F,
) -> Result<Once<R>, E>
where
    L: EffectLedger + ?Sized,
    E: From<StoreError>,
    F: Future<Output = Result<R, E>>,
{
    loop {
        let now = clock.now();
        let claims = claim_all(ledger, [(id, key.to_owned(), ())], now, invocation.lease(now)).await?;
        if !claims.acquired.is_empty() {
            let result = work.await;
            return claims.settle(ledger, result).await.map(Once::Performed);
        }
        if claims.already_done > 0 {
            return Ok(Once::AlreadyDone);
        }
        let pause = TAKEOVER_POLL.min(invocation.ends_at - reserve - now);
        if pause <= Duration::zero() {
            return Ok(Once::Busy);
        }
        clock.sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::store::MemoryStore;

    const KEY: &str = "export_queued#v3";

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// A minute-long invocation starting now, keeping 15 seconds for its work.
    fn invocation(clock: &ManualClock) -> Invocation {
        Invocation::ending_at(clock.now() + Duration::seconds(60))
    }

    async fn run(store: &MemoryStore, clock: &ManualClock, id: RequestId, done: &mut u32) -> Once<()> {
        let work = async {
            *done += 1;
            Ok::<(), StoreError>(())
        };
        let reserve = Duration::seconds(15);
        once_or_take_over(store, clock, invocation(clock), reserve, id, KEY, work).await.unwrap()
    }

    #[test]
    fn a_lease_lasts_until_the_invocation_has_certainly_ended() {
        let invocation = Invocation::ending_at(start() + Duration::seconds(60));
        assert_eq!(invocation.lease(start()), Duration::seconds(60) + LEASE_MARGIN);
        assert_eq!(invocation.lease(start() + Duration::seconds(50)), Duration::seconds(10) + LEASE_MARGIN);
        assert_eq!(invocation.lease(start() + Duration::seconds(90)), LEASE_MARGIN);
    }

    #[tokio::test]
    async fn a_claim_left_by_a_crashed_invocation_is_taken_over_once_its_lease_runs_out() {
        let store = MemoryStore::default();
        let clock = ManualClock::new(start());
        let id = RequestId::generate();
        let crashed = invocation(&clock);
        let claim = store.claim_effect(id, KEY, clock.now(), crashed.lease(clock.now())).await.unwrap();
        assert_eq!(claim, Claim::Acquired);

        // Half a minute later a retry outlives the crashed holder's lease and takes it over.
        clock.advance(Duration::seconds(30));
        let mut done = 0;
        assert_eq!(run(&store, &clock, id, &mut done).await, Once::Performed(()));
        assert_eq!(done, 1);
        assert!(clock.now() > start() + crashed.lease(start()), "it waited for the lease");
        assert!(clock.now() <= start() + Duration::seconds(75), "and not much longer");
        assert_eq!(run(&store, &clock, id, &mut done).await, Once::AlreadyDone);
        assert_eq!(done, 1, "performed exactly once");
    }

    #[tokio::test]
    async fn a_retry_right_after_the_crash_gives_up_in_time_and_the_next_one_takes_over() {
        let store = MemoryStore::default();
        let clock = ManualClock::new(start());
        let id = RequestId::generate();
        let crashed = invocation(&clock);
        store.claim_effect(id, KEY, clock.now(), crashed.lease(clock.now())).await.unwrap();

        let mut done = 0;
        assert_eq!(run(&store, &clock, id, &mut done).await, Once::Busy);
        assert_eq!(done, 0);
        assert!(clock.now() <= start() + Duration::seconds(45), "the reserve was kept");
        assert_eq!(run(&store, &clock, id, &mut done).await, Once::Performed(()));
        assert_eq!(done, 1);
    }

    /// A ledger whose first `failing` attempts to finish an effect fail, as a throttled write does.
    struct Throttled {
        store: MemoryStore,
        failing: std::sync::atomic::AtomicU32,
    }

    impl EffectLedger for Throttled {
        async fn claim_effect(
            &self,
            id: RequestId,
            effect: &str,
            now: DateTime<Utc>,
            lease: Duration,
        ) -> Result<Claim, StoreError> {
            self.store.claim_effect(id, effect, now, lease).await
        }

        async fn finish_effect(&self, id: RequestId, effect: &str) -> Result<(), StoreError> {
            use std::sync::atomic::Ordering;
            if self.failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                let code = "ProvisionedThroughputExceededException".to_owned();
                return Err(StoreError::Aws { operation: "UpdateItem", code });
            }
            self.store.finish_effect(id, effect).await
        }

        async fn release_effect(&self, id: RequestId, effect: &str) -> Result<(), StoreError> {
            self.store.release_effect(id, effect).await
        }
    }

    #[tokio::test]
    async fn an_effect_performed_while_the_store_throttles_its_finish_is_still_performed_once() {
        let ledger = Throttled { store: MemoryStore::default(), failing: 2.into() };
        let clock = ManualClock::new(start());
        let id = RequestId::generate();
        let mut sent = 0;
        let reserve = Duration::seconds(15);
        let work = async {
            sent += 1;
            Ok::<(), StoreError>(())
        };
        let first = once_or_take_over(&ledger, &clock, invocation(&clock), reserve, id, KEY, work).await;
        assert_eq!(first.unwrap(), Once::Performed(()));
        // Delivered again long after the first delivery's lease would have run out.
        clock.advance(Duration::minutes(10));
        let work = async {
            sent += 1;
            Ok::<(), StoreError>(())
        };
        let again = once_or_take_over(&ledger, &clock, invocation(&clock), reserve, id, KEY, work).await;
        assert_eq!(again.unwrap(), Once::AlreadyDone);
        assert_eq!(sent, 1, "the mail went out once");
    }

    #[tokio::test]
    async fn an_effect_finished_by_the_holder_meanwhile_is_not_performed_again() {
        let store = MemoryStore::default();
        let clock = ManualClock::new(start());
        let id = RequestId::generate();
        store.claim_effect(id, KEY, clock.now(), invocation(&clock).lease(clock.now())).await.unwrap();
        store.finish_effect(id, KEY).await.unwrap();
        let mut done = 0;
        assert_eq!(run(&store, &clock, id, &mut done).await, Once::AlreadyDone);
        assert_eq!((done, clock.now()), (0, start()), "nothing performed, no wait");
    }
}
