//! When a failed request may be sent again, and how long to wait.
//!
//! The whole policy is [`RETRY_TABLE`] plus the method default in
//! [`retry_class`]: a request is repeated only when repeating it cannot change
//! the outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Whether an operation may be sent again after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryClass {
    /// Repeating the request has the same effect as sending it once.
    Idempotent,
    /// Repeating the request could change state twice; never retried blindly.
    Never,
}

/// The exceptions to the method default, one row per operation id, each with
/// the reason. GET, PUT and DELETE are retried and POST is not, unless listed
/// here; operations not in the table (including ones added to the
/// specification later) get the default for their method.
///
/// An idempotent operation is retried after a lost answer (a timeout, a
/// reset) and after a 429, 500, 502, 503 or 504; any operation is retried
/// when nothing reached the server. A 401 answer is different: the request
/// was rejected before it was processed, so it is retried once with a
/// refreshed token whatever its class.
///
/// PUT creations (`create_source`, `create_dataset`, ...) keep the method
/// default: a create whose answer was lost is sent again, and may then be
/// answered 409 "already exists" because the first attempt did create it.
/// Such an error says so: [`Error::maybe_applied`](crate::Error::maybe_applied).
pub const RETRY_TABLE: &[(&str, RetryClass, &str)] = &[
    // POSTs that only read.
    (
        "get_source_statistics",
        RetryClass::Idempotent,
        "read through POST: computes statistics, changes nothing",
    ),
    (
        "export_dataset",
        RetryClass::Idempotent,
        "read through POST: pages through comments by continuation token",
    ),
    (
        "predict_documents",
        RetryClass::Idempotent,
        "read through POST: predictions for the given documents, nothing stored",
    ),
    (
        "predict_comments",
        RetryClass::Idempotent,
        "read through POST: predictions for stored comments, nothing stored",
    ),
    (
        "predict_raw_emails",
        RetryClass::Idempotent,
        "read through POST: predictions for the given emails, nothing stored",
    ),
    (
        "fetch_stream",
        RetryClass::Idempotent,
        "reads the batch at the stream's position; only advance moves it",
    ),
    (
        "fetch_gx_stream",
        RetryClass::Idempotent,
        "reads the batch at the stream's position; only advance moves it",
    ),
    (
        "fetch_trigger",
        RetryClass::Idempotent,
        "legacy name of fetch_stream: reads without moving the position",
    ),
    (
        "query_audit_events",
        RetryClass::Idempotent,
        "read through POST: queries the audit log",
    ),
    (
        "get_thread_themes",
        RetryClass::Idempotent,
        "read through POST: summarises a thread, nothing stored",
    ),
    // POSTs that write, but as an upsert keyed by ids the caller chose.
    (
        "sync_comments",
        RetryClass::Idempotent,
        "upsert by comment id: sending the same batch twice stores it once",
    ),
    (
        "sync_raw_emails",
        RetryClass::Idempotent,
        "upsert by comment id derived from the email: sending twice stores once",
    ),
    (
        "sync_annotations",
        RetryClass::Idempotent,
        "replaces the annotations of the given comment with the values sent",
    ),
    // POSTs that move state: listed to make the decision visible.
    (
        "advance_stream",
        RetryClass::Never,
        "moves the stream position; a repeat after a lost answer could skip comments",
    ),
    (
        "reset_stream",
        RetryClass::Never,
        "moves the stream position; must not be repeated behind the caller's back",
    ),
    (
        "advance_trigger",
        RetryClass::Never,
        "legacy name of advance_stream: moves the position",
    ),
    (
        "reset_trigger",
        RetryClass::Never,
        "legacy name of reset_stream: moves the position",
    ),
    (
        "update_source",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ),
    (
        "update_dataset",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ),
    (
        "update_stream",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ),
    (
        "update_trigger",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ), // Private routes (`/api/_private`).
    (
        "query_comments",
        RetryClass::Idempotent,
        "read through POST (private): pages through a dataset query by continuation",
    ),
    (
        "list_recent_comments",
        RetryClass::Idempotent,
        "read through POST (private): pages through recent comments by continuation",
    ),
    (
        "list_bucket_emails",
        RetryClass::Idempotent,
        "read through POST (private): pages through a bucket's emails by continuation",
    ),
    (
        "query_bucket_emails",
        RetryClass::Idempotent,
        "read through POST (private): pages through a bucket's emails by continuation",
    ),
    (
        "get_dataset_statistics",
        RetryClass::Idempotent,
        "read through POST (private): counts comments, changes nothing",
    ),
    (
        "get_dataset_summary",
        RetryClass::Idempotent,
        "read through POST (private): describes the dataset, changes nothing",
    ),
    (
        "get_label_validation",
        RetryClass::Idempotent,
        "read through POST (private): returns validation metrics",
    ),
    (
        "list_models",
        RetryClass::Idempotent,
        "read through POST (private): lists model versions",
    ),
    (
        "query_keyed_sync_state_ids",
        RetryClass::Idempotent,
        "read through POST (private): finds sync-state keys",
    ),
    (
        "refresh_user_permissions",
        RetryClass::Idempotent,
        "reloads the caller's own permissions; repeating it reloads them again",
    ),
    (
        "send_welcome_email",
        RetryClass::Never,
        "sends an email; a repeat after a lost answer sends it twice",
    ),
    // PUTs that create something new each time (an exception to the method default).
    (
        "upload_document",
        RetryClass::Never,
        "creates a new comment per upload; a repeat after a lost answer stores the document twice",
    ),
    (
        "upload_ixp_document",
        RetryClass::Never,
        "creates a new document per upload; a repeat after a lost answer extracts it twice",
    ),
    (
        "update_labelling",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_project",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_user",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_integration",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "set_quota",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "set_tenant_quota",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    // Internal tier: POSTs that only read, or that set a value outright.
    (
        "preview_alert",
        RetryClass::Idempotent,
        "read through POST: evaluates an alert definition over past data, stores nothing",
    ),
    (
        "query_alert_issues",
        RetryClass::Idempotent,
        "read through POST: lists alert issues matching a filter",
    ),
    (
        "query_conversational_filter",
        RetryClass::Idempotent,
        "read through POST: turns a question into a comment filter, stores nothing",
    ),
    (
        "get_derived_permissions",
        RetryClass::Idempotent,
        "read through POST: expands a permission set, stores nothing",
    ),
    (
        "get_reduced_permissions",
        RetryClass::Idempotent,
        "read through POST: reduces a permission set, stores nothing",
    ),
    (
        "get_login_url",
        RetryClass::Idempotent,
        "read through POST: looks up where a user signs in",
    ),
    (
        "predict_with_latest_model",
        RetryClass::Idempotent,
        "read through POST: predictions for the given documents, nothing stored",
    ),
    (
        "predict_extractions",
        RetryClass::Idempotent,
        "read through POST: extractions for the given documents, nothing stored",
    ),
    (
        "suggest_ixp_taxonomy",
        RetryClass::Idempotent,
        "read through POST: suggests a taxonomy from a description and documents, stores nothing",
    ),
    (
        "get_dataset_comparison",
        RetryClass::Idempotent,
        "read through POST: compares two groups of comments",
    ),
    (
        "query_user_property_values",
        RetryClass::Idempotent,
        "read through POST: counts the values of a user property",
    ),
    (
        "update_tenant_client_subnets",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "update_tenant_default_project_permissions",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "update_tenant_domains",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "update_tenant_entity_def_ids",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "set_tenant_state",
        RetryClass::Idempotent,
        "sets the tenant enabled or disabled; repeating it sets the same state",
    ),
    (
        "update_alert_issue_status",
        RetryClass::Idempotent,
        "sets an issue's status; repeating it sets the same status",
    ),
    // Internal tier: state-changing POSTs.
    (
        "update_bucket",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_label_def",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_alert",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_dashboard",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_tenant",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "add_support_tenant",
        RetryClass::Never,
        "grants access; a repeat after a lost answer may fail as already granted",
    ),
    (
        "remove_support_tenant",
        RetryClass::Never,
        "revokes access; a repeat after a lost answer may fail as already revoked",
    ),
    (
        "create_tenant_service_instance",
        RetryClass::Never,
        "provisions a tenant; a repeat after a lost answer provisions it again or fails",
    ),
    (
        "restore_tenant_service_instance",
        RetryClass::Never,
        "restores a deleted tenant service; a repeat after a lost answer may fail",
    ),
    (
        "import_ixp_taxonomy",
        RetryClass::Never,
        "adds labels and fields to a dataset; a repeat could add them twice",
    ),
    (
        "create_label_group",
        RetryClass::Never,
        "creates a label group; a repeat after a lost answer fails as already existing",
    ),
    (
        "reset_annotations_to_model_version",
        RetryClass::Never,
        "rewrites annotations; the caller decides whether to repeat it",
    ),
    (
        "upload_files",
        RetryClass::Never,
        "stores a new file per call; a repeat after a lost answer stores it twice",
    ),
];

/// The retry class of an operation: its [`RETRY_TABLE`] row, else the default
/// for its HTTP method (GET, HEAD, PUT, DELETE, OPTIONS: idempotent; others: never).
///
/// ```
/// use cm_api::retry::{retry_class, RetryClass};
///
/// assert_eq!(retry_class("sync_comments", "POST"), RetryClass::Idempotent);
/// assert_eq!(retry_class("advance_stream", "POST"), RetryClass::Never);
/// assert_eq!(retry_class("get_dataset", "GET"), RetryClass::Idempotent);
/// ```
pub fn retry_class(operation_id: &str, method: &str) -> RetryClass {
    if let Some((_, class, _)) = RETRY_TABLE.iter().find(|(id, _, _)| *id == operation_id) {
        return *class;
    }
    match method {
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" => RetryClass::Idempotent,
        _ => RetryClass::Never,
    }
}

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
/// attempts, any wait at a [`RateGate`] and a token refresh. Each attempt
/// is bounded separately by the client's attempt timeout
/// ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)).
/// Durations too large to add to the clock (e.g. `Duration::MAX`) mean "no
/// limit"; they never panic. See [`CallOptions`] to change both for one call.
/// Which failures are retried: [`RETRY_TABLE`]'s classes, by the rule in
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

#[cfg(test)]
mod tests {
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
