//! Time as a dependency, so the legal clocks can be tested at any instant.

use chrono::{DateTime, Duration, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// A wait on a clock (boxed, so the clock stays usable as `dyn Clock`).
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Waits `duration` (nothing when it is not positive) as this clock counts time.
    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(duration.to_std().unwrap_or_default()))
    }
}

/// The real clock, for every deployed function.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests and for replaying a day locally.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock on at once: a test waits no real time.
    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        self.advance(duration.max(Duration::zero()));
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::hours(25));
        assert_eq!(clock.now(), t0 + Duration::hours(25));
        clock.set(t0);
        assert_eq!(clock.now(), t0);
    }

    #[tokio::test]
    async fn sleeping_on_a_manual_clock_moves_it_without_waiting() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        let started = std::time::Instant::now();
        clock.sleep(Duration::hours(1)).await;
        clock.sleep(Duration::seconds(-5)).await;
        assert_eq!(clock.now(), t0 + Duration::hours(1));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
