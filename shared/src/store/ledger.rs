//! The effect-ledger protocol, written once: claim the entries, perform the work, then finish
//! every claimed entry if it succeeded or release them all if it failed, so a retry performs it.
//! One effect is a batch of one; the staff digest claims many lines and sends one mail.

use chrono::{DateTime, Duration, Utc};
use std::future::Future;

use super::{Claim, EffectLedger, StoreError};
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
                Ok(_) => ledger.finish_effect(*id, key).await?,
                Err(_) => ledger.release_effect(*id, key).await?,
            }
        }
        result
    }
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
