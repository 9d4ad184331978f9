//! How many attempts and how long to wait: [`RetryPolicy`], and the one
//! function, [`decide`], that turns a failed attempt into the next step.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::RetryClass;

/// HTTP statuses worth another attempt of an idempotent operation: rate
/// limiting, a server error and gateway failures. A 500 is transient often
/// enough (the vendor's client retries every 5xx, aws-sdk's standard mode
/// retries 500) and harmless to repeat for an operation whose repeat has
/// the same effect.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Statuses after which the request may have been applied: the server (or
/// a gateway in front of it) failed without saying the request was refused.
/// A 429 or a 503 is a refusal; a 4xx is a rejection.
fn may_have_applied(status: u16) -> bool {
    matches!(status, 500 | 502 | 504)
}

/// How one attempt failed, as far as deciding what comes next goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing reached the server: the connection could not be made.
    NotSent,
    /// Sent, and then the answer was lost: a timeout, a reset, a body cut
    /// short. The server may have applied the request.
    Lost,
    /// The server answered with this status (and maybe a `Retry-After`).
    Status {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` it sent, parsed.
        retry_after: Option<Duration>,
    },
}

impl Failure {
    /// Whether the server may have applied the request despite the failure.
    pub(crate) fn maybe_applied(self) -> bool {
        match self {
            Self::NotSent => false,
            Self::Lost => true,
            Self::Status { status, .. } => may_have_applied(status),
        }
    }
}

/// Everything the decision after a failed attempt depends on. Built by the
/// transport's retry loop and by the token exchange's, so that both follow
/// [`decide`] and nothing else.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    /// How the attempt failed.
    pub(crate) failure: Failure,
    /// The operation's retry class.
    pub(crate) class: RetryClass,
    /// Attempts made so far, this one included.
    pub(crate) attempt: u32,
    /// The policy's limit on attempts.
    pub(crate) max_attempts: u32,
    /// Whether the request can be sent again (a streamed body cannot).
    pub(crate) replayable: bool,
    /// Whether a 401 may still be answered with a refreshed token.
    pub(crate) may_refresh: bool,
    /// The jittered backoff for this retry, used without a `Retry-After`.
    pub(crate) backoff: Duration,
    /// The longest `Retry-After` waited out ([`RetryPolicy::max_backoff`]).
    pub(crate) max_backoff: Duration,
    /// How long a shared [`RateGate`] stays closed, at least as long to wait.
    pub(crate) gate: Duration,
    /// Time left before the call's deadline (`None`: no deadline).
    pub(crate) time_left: Option<Duration>,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send the request again after `wait`.
    Retry {
        /// The pause before the next attempt.
        wait: Duration,
    },
    /// A 401: get a fresh token and send again at once (once per call).
    Refresh,
    /// Give up and return this failure. `retry_after` is the server's
    /// wait when it asked for one that was not waited out here.
    Return {
        /// The `Retry-After` to hand to the caller.
        retry_after: Option<Duration>,
    },
}

/// The one rule for what follows a failed attempt; see the retry section of
/// `crates/api/DESIGN.md`. Pure, so the table of cases in the tests is the
/// specification:
///
/// 1. A 401 is answered once with a refreshed token, whatever the class.
/// 2. A failure is worth another attempt when nothing was sent (any class),
///    or, for an idempotent operation, when the answer was lost or the
///    status is retryable (429, 500, 502, 503, 504).
/// 3. The wait is the `Retry-After` when sent, else the backoff, and at
///    least as long as a closed rate gate. A `Retry-After` above
///    `max_backoff` is not waited out: the failure is returned with it.
/// 4. No retry past the policy's attempts, for a request that cannot be
///    replayed, or when the wait would end at or after the deadline.
pub(crate) fn decide(a: &Attempt) -> Decision {
    let retry_after = match a.failure {
        Failure::Status {
            status,
            retry_after,
        } if is_retryable_status(status) => retry_after,
        _ => None,
    };
    let give_up = Decision::Return { retry_after };
    if let Failure::Status { status: 401, .. } = a.failure {
        return if a.may_refresh && a.replayable {
            Decision::Refresh
        } else {
            give_up
        };
    }
    let idempotent = a.class == RetryClass::Idempotent;
    let worth_it = match a.failure {
        Failure::NotSent => true,
        Failure::Lost => idempotent,
        Failure::Status { status, .. } => idempotent && is_retryable_status(status),
    };
    if !worth_it || !a.replayable || a.attempt >= a.max_attempts {
        return give_up;
    }
    if retry_after.is_some_and(|w| w > a.max_backoff) {
        return give_up;
    }
    let wait = retry_after.unwrap_or(a.backoff).max(a.gate);
    if a.time_left.is_some_and(|left| wait >= left) {
        return give_up;
    }
    Decision::Retry { wait }
}

/// How many times, and for how long, transient failures are retried.
///
/// Retries use exponential backoff with full jitter (a random wait between
/// zero and `initial_backoff * 2^(attempt-1)`, capped at `max_backoff`), and
/// honour a `Retry-After` header instead when the server sends one; when it
/// asks for longer than `max_backoff`, the response is returned rather than
/// retried early, and the error carries the wait
/// ([`Error::retry_after`](crate::Error::retry_after)). No retry starts when
/// its wait would end after the overall deadline.
///
/// The deadline bounds a whole call: every attempt, every wait between
/// attempts, any wait at a [`RateGate`](super::RateGate) and a token refresh. Each attempt
/// is bounded separately by the client's attempt timeout
/// ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)).
/// Durations too large to add to the clock (e.g. `Duration::MAX`) mean "no
/// limit"; they never panic. See [`CallOptions`](super::CallOptions) to change both for one call.
/// Which failures are retried: [`RETRY_TABLE`](super::RETRY_TABLE)'s classes, by the rule in
/// the crate's `DESIGN.md` ("Retry and timeout model").
///
/// ```
/// use std::time::Duration;
/// use cm_api::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(5)
///     .deadline(Duration::from_secs(60));
/// assert_eq!(policy.get_max_attempts(), 5);
/// assert_eq!(RetryPolicy::none().get_max_attempts(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    deadline: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 500 ms up to 30 s, 5 minutes overall.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy that sends every request once (the 401 refresh still applies).
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// Total attempts, including the first; at least 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The cap on the backoff before the first retry; later ones double it.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between two attempts, including a `Retry-After`.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The overall time budget of one call, across all its attempts.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Total attempts, including the first.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The overall time budget of one call.
    pub fn get_deadline(&self) -> Duration {
        self.deadline
    }

    /// The cap on the backoff before the first retry.
    pub fn get_initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest wait between two attempts.
    pub fn get_max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The jittered wait before retry number `retry` (1 for the first retry).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        let ceiling = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// `now + d`, or `None` ("never") when it overflows the clock.
pub(crate) fn instant_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// The longest duration handed to timers of other crates (some add it to
/// the clock unchecked): about 30 years, i.e. "never".
pub(crate) const TIMER_CAP: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Parses a `Retry-After` value: delay seconds or an HTTP-date (relative to `now`).
/// A date in the past means "now"; anything unparsable is ignored.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}
