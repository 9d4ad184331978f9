//! [`RateGate`]: one pause shared by every request of a job after a 429.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::policy::{TIMER_CAP, instant_after};

/// A pause shared by every request made under it: when one request is
/// answered 429 (or sends `Retry-After`), every request in the gate's
/// scope waits before its next attempt, so a rate limit slows a whole bulk
/// job down instead of one of its batches.
///
/// [`bulk`](crate::bulk) uploads make one per job unless given one
/// ([`SyncOptions::rate_gate`](crate::bulk::SyncOptions::rate_gate)); share
/// one between concurrent jobs that hit the same tenant.
///
/// A pause is capped at [`max_pause`](RateGate::get_max_pause) (60 s by
/// default): a server asking for an hour does not park a job silently for
/// an hour. The request that was told to wait longer returns its error,
/// which carries the wait ([`Error::retry_after`](crate::Error::retry_after));
/// [`bulk`](crate::bulk) jobs report it as a
/// [`Paused`](crate::bulk::SyncEvent::Paused) event. Waiting at the gate
/// counts against each call's deadline: a call whose deadline ends before
/// the gate opens fails at once with [`Error::RateLimited`](crate::Error::RateLimited),
/// without sending anything.
///
/// ```
/// use std::time::Duration;
///
/// let gate = cm_api::RateGate::new();
/// assert_eq!(gate.remaining(), Duration::ZERO);
/// gate.pause_for(Duration::from_secs(2));
/// assert!(gate.remaining() > Duration::from_secs(1));
///
/// // Pauses are capped.
/// let gate = cm_api::RateGate::new().max_pause(Duration::from_secs(10));
/// assert_eq!(gate.pause_for(Duration::MAX), Duration::from_secs(10));
/// assert!(gate.remaining() <= Duration::from_secs(10));
/// ```
#[derive(Debug)]
pub struct RateGate {
    until: std::sync::Mutex<Option<tokio::time::Instant>>,
    pauses: std::sync::atomic::AtomicU64,
    max_pause: Duration,
}

/// The longest `Retry-After` a long-running job waits out by default
/// ([`StreamConsumer::max_retry_after`](crate::StreamConsumer::max_retry_after),
/// [`SyncOptions::max_retry_after`](crate::bulk::SyncOptions::max_retry_after)):
/// beyond it, the job returns the error, which carries the wait
/// ([`Error::retry_after`](crate::Error::retry_after)), instead of sleeping
/// for as long as the server asks (a day, say).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The default cap on one [`RateGate`] pause.
pub const DEFAULT_MAX_GATE_PAUSE: Duration = Duration::from_secs(60);

impl Default for RateGate {
    fn default() -> Self {
        Self {
            until: std::sync::Mutex::new(None),
            pauses: AtomicU64::new(0),
            max_pause: DEFAULT_MAX_GATE_PAUSE,
        }
    }
}

impl RateGate {
    /// An open gate, with pauses capped at [`DEFAULT_MAX_GATE_PAUSE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest one pause may close the gate for.
    pub fn max_pause(mut self, cap: Duration) -> Self {
        self.max_pause = cap;
        self
    }

    /// The longest one pause may close the gate for.
    pub fn get_max_pause(&self) -> Duration {
        self.max_pause
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<tokio::time::Instant>> {
        // The guarded value is a plain instant; a poisoned lock still holds a valid one.
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the gate for `wait` from now, capped at the
    /// [`max_pause`](Self::max_pause), unless it is already closed for
    /// longer. Returns the pause applied (the capped `wait`).
    pub fn pause_for(&self, wait: Duration) -> Duration {
        let wait = wait.min(self.max_pause);
        // Overflow means "unbounded": closed for as long as the clock allows.
        let Some(end) = instant_after(wait).or_else(|| instant_after(TIMER_CAP)) else {
            return wait;
        };
        let mut until = self.lock();
        if until.is_none_or(|current| current < end) {
            *until = Some(end);
        }
        self.pauses.fetch_add(1, Ordering::Relaxed);
        wait
    }

    /// How long the gate stays closed from now.
    pub fn remaining(&self) -> Duration {
        self.lock()
            .map(|until| until.saturating_duration_since(tokio::time::Instant::now()))
            .unwrap_or(Duration::ZERO)
    }

    /// How many times the gate was closed (by 429s and `Retry-After`s).
    pub fn pauses(&self) -> u64 {
        self.pauses.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the gate is open; returns at once if it is.
    pub async fn wait(&self) {
        loop {
            let until = *self.lock();
            match until {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => return,
            }
        }
    }
}
