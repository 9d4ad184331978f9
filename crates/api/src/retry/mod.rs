//! When a failed request may be sent again, and how long to wait.
//!
//! The whole policy is [`RETRY_TABLE`] plus the method default in
//! [`retry_class`]: a request is repeated only when repeating it cannot change
//! the outcome.

//! | module | what |
//! | --- | --- |
//! | `table` | [`RetryClass`], [`RETRY_TABLE`], [`retry_class`] |
//! | `policy` | [`RetryPolicy`] and the decision after a failed attempt |
//! | `gate` | [`RateGate`], the pause a 429 puts on a whole job |
//! | `options` | [`CallOptions`], per-call overrides |

mod gate;
mod options;
mod policy;
mod table;

pub use gate::{DEFAULT_MAX_GATE_PAUSE, DEFAULT_MAX_RETRY_AFTER, RateGate};
pub use options::CallOptions;
pub use policy::RetryPolicy;
pub(crate) use policy::{
    Attempt, Decision, Failure, TIMER_CAP, decide, instant_after, is_retryable_status,
    parse_retry_after,
};
pub use table::{RETRY_TABLE, RetryClass, retry_class};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:39 GMT", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_capped_and_never_panics() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1));
        for retry in [0, 1, 2, 10, 64, u32::MAX] {
            assert!(policy.backoff(retry) <= Duration::from_secs(1));
        }
        let huge = RetryPolicy::default()
            .initial_backoff(Duration::MAX)
            .max_backoff(Duration::MAX);
        for retry in [1, 2, 64, u32::MAX] {
            let _ = huge.backoff(retry);
        }
    }

    #[tokio::test]
    async fn gate_pauses_are_capped_and_never_overflow() {
        let gate = RateGate::new();
        assert_eq!(gate.pause_for(Duration::MAX), DEFAULT_MAX_GATE_PAUSE);
        assert!(gate.remaining() <= DEFAULT_MAX_GATE_PAUSE);
        let unbounded = RateGate::new().max_pause(Duration::MAX);
        assert_eq!(unbounded.pause_for(Duration::MAX), Duration::MAX);
        assert!(unbounded.remaining() > Duration::from_secs(365 * 24 * 3600));
    }

    /// The retry rule as a table: one row per case, the decision beside it.
    #[test]
    fn the_decision_after_a_failed_attempt() {
        use Decision::{Refresh, Retry, Return};
        use RetryClass::{Idempotent, Never};
        const S: Duration = Duration::from_secs(1);
        let base = Attempt {
            failure: Failure::Lost,
            class: Idempotent,
            attempt: 1,
            max_attempts: 4,
            replayable: true,
            may_refresh: true,
            backoff: S,
            max_backoff: 30 * S,
            gate: Duration::ZERO,
            time_left: Some(300 * S),
        };
        let status = |status, retry_after| Failure::Status {
            status,
            retry_after,
        };
        let none = Return { retry_after: None };
        #[rustfmt::skip]
        let table: Vec<(&str, Attempt, Decision)> = vec![
            ("lost answer, idempotent", base, Retry { wait: S }),
            ("lost answer, never", Attempt { class: Never, ..base }, none),
            ("nothing sent, never", Attempt { failure: Failure::NotSent, class: Never, ..base }, Retry { wait: S }),
            ("500, idempotent", Attempt { failure: status(500, None), ..base }, Retry { wait: S }),
            ("500, never", Attempt { failure: status(500, None), class: Never, ..base }, none),
            ("501, idempotent", Attempt { failure: status(501, None), ..base }, none),
            ("503, idempotent", Attempt { failure: status(503, None), ..base }, Retry { wait: S }),
            ("422, idempotent", Attempt { failure: status(422, None), ..base }, none),
            ("429 with Retry-After", Attempt { failure: status(429, Some(5 * S)), ..base }, Retry { wait: 5 * S }),
            ("429 with a Retry-After past max_backoff", Attempt { failure: status(429, Some(3600 * S)), ..base }, Return { retry_after: Some(3600 * S) }),
            ("429 with Retry-After, never", Attempt { failure: status(429, Some(5 * S)), class: Never, ..base }, Return { retry_after: Some(5 * S) }),
            ("429 on the last attempt", Attempt { failure: status(429, Some(5 * S)), attempt: 4, ..base }, Return { retry_after: Some(5 * S) }),
            ("the gate closed longer than the backoff", Attempt { gate: 7 * S, ..base }, Retry { wait: 7 * S }),
            ("a wait ending at the deadline", Attempt { time_left: Some(S), ..base }, none),
            ("no deadline", Attempt { time_left: None, backoff: 3600 * S, ..base }, Retry { wait: 3600 * S }),
            ("last attempt", Attempt { attempt: 4, ..base }, none),
            ("a streamed body cannot be replayed", Attempt { replayable: false, ..base }, none),
            ("401, first time", Attempt { failure: status(401, None), class: Never, attempt: 4, ..base }, Refresh),
            ("401, already refreshed", Attempt { failure: status(401, None), may_refresh: false, ..base }, none),
            ("401, streamed body", Attempt { failure: status(401, None), replayable: false, ..base }, none),
        ];
        for (case, attempt, expected) in table {
            assert_eq!(decide(&attempt), expected, "{case}");
        }
        assert!(Failure::Lost.maybe_applied());
        assert!(status(502, None).maybe_applied());
        assert!(!status(503, None).maybe_applied());
        assert!(!status(429, None).maybe_applied());
        assert!(!Failure::NotSent.maybe_applied());
    }

    #[test]
    fn table_rows_are_unique_and_explained() {
        for (i, (id, _, reason)) in RETRY_TABLE.iter().enumerate() {
            assert!(!reason.is_empty(), "{id}");
            assert!(
                RETRY_TABLE[i + 1..].iter().all(|(other, _, _)| other != id),
                "{id}"
            );
        }
    }
}
