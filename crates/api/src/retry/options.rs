//! [`CallOptions`]: per-call overrides of timeouts and retries.

use std::time::Duration;

use super::RetryPolicy;

/// Per-call overrides of the attempt timeout, the deadline and the retry
/// policy: set on one call with the builders' `with_options`, or for every
/// call made inside [`CallOptions::scope`] (on the same task).
///
/// The client's settings
/// ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)
/// for each attempt, [`ClientBuilder::retry_policy`](crate::ClientBuilder::retry_policy)
/// and its [`RetryPolicy::deadline`] for the whole call) apply to whatever
/// is not overridden; an override may be shorter or longer than the
/// client's. A call's own options override those of a scope around it,
/// setting by setting. `Duration::MAX` means "no limit". (The timeout
/// rules, once: "Timeouts" in the crate's `DESIGN.md`.)
///
/// ```no_run
/// use std::time::Duration;
/// use cm_api::{CallOptions, RetryPolicy};
///
/// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
/// // A latency-sensitive read: one attempt of at most 2 s.
/// let source = client
///     .get_source()
///     .project("acme")
///     .source_name("inbox")
///     .with_options(
///         CallOptions::new()
///             .attempt_timeout(Duration::from_secs(2))
///             .retry_policy(RetryPolicy::none()),
///     )
///     .send()
///     .await?;
///
/// // Every call of a slow export: attempts of up to 5 minutes, 10 overall.
/// let datasets = CallOptions::new()
///     .attempt_timeout(Duration::from_secs(300))
///     .deadline(Duration::from_secs(600))
///     .scope(client.list_datasets().send())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Bound on one attempt, instead of the client's request timeout.
    pub attempt_timeout: Option<Duration>,
    /// Bound on the whole call, instead of the retry policy's deadline.
    pub deadline: Option<Duration>,
    /// The retry policy, instead of the client's (its deadline applies
    /// unless [`deadline`](Self::deadline) is set too).
    pub retry: Option<RetryPolicy>,
}

impl CallOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds each attempt of the call, shorter or longer than the
    /// client's [`request_timeout`](crate::ClientBuilder::request_timeout):
    /// from connecting to the end of a JSON answer. For a file transfer it
    /// bounds the time without progress and, set here, the whole transfer.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Bounds the call, across its attempts and waits.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries the call by `policy` instead of the client's policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// These options, with `outer`'s for whatever these leave unset.
    pub fn or(self, outer: CallOptions) -> Self {
        Self {
            attempt_timeout: self.attempt_timeout.or(outer.attempt_timeout),
            deadline: self.deadline.or(outer.deadline),
            retry: self.retry.or(outer.retry),
        }
    }
}
