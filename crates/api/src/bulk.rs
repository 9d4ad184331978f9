//! Bulk upload: `sync_comments` and `sync_raw_emails` from a [`Stream`] of
//! any length, in concurrent batches, bisecting the batches the server
//! rejects.
//!
//! ```no_run
//! use futures::stream;
//! use cm_api::bulk::{self, SyncOptions};
//! use cm_api::types::CommentNew;
//!
//! # async fn run(client: cm_api::Client, comments: Vec<CommentNew>) {
//! let options = SyncOptions::default()
//!     .batch_size(1024)
//!     .concurrency(8)
//!     .on_progress(|p| eprintln!("{} synced, {} failed", p.totals.synced, p.totals.failed))
//!     .on_failure(|f| eprintln!("comment #{} ({:?}): {}", f.item.index, f.item.id, f.error));
//! let report = bulk::sync_comments(&client, "acme", "inbox", stream::iter(comments), options).await;
//! if let Some(error) = &report.stopped {
//!     eprintln!("stopped: {error}; {} comments not sent", report.not_attempted);
//! }
//! assert_eq!(report.read, report.synced + report.failed + report.not_attempted);
//! # }
//! ```
//!
//! # How it works
//!
//! * **Streaming.** The input is read only as batch slots free up: at most
//!   `concurrency` batches (plus the one being filled) are in memory,
//!   whatever the input's length, and one more batch at most holds the
//!   probe item (below).
//! * **Batches** hold [`batch_size`](SyncOptions::batch_size) items, capped
//!   at [`MAX_BATCH_SIZE`] (16,384, the server's limit per request), and up
//!   to [`concurrency`](SyncOptions::concurrency) of them are in flight. A
//!   batch whose first item has waited
//!   [`max_batch_delay`](SyncOptions::max_batch_delay) (5 s by default) for
//!   the input to fill it is sent as it is, so that a live input (a queue)
//!   does not hold items back.
//! * **Bisection.** A batch rejected for its content (HTTP 400, 409, 413 or
//!   422 by default, see [`bisect_statuses`](SyncOptions::bisect_statuses))
//!   is split in two halves, both sent again, recursively. One bad item in
//!   a batch of `n` costs about `2·log2(n)` extra requests instead of `n`.
//!   A single item that is still rejected is reported as failed with its
//!   own error. A good item is never reported failed for a rejection of
//!   other items: bisection stops early only on evidence that holds for
//!   every item of the part.
//! * **Probes.** When both halves are rejected with the same status and
//!   message (a server whose message names no item, or a rejection of the
//!   request itself), the job sends one request whose items cannot be at
//!   fault: the item it synced first, alone, again (sync is an upsert, so
//!   this changes nothing), or, before it synced any, a request with no
//!   items. Rejected the same way, the rejection is about the request (a
//!   source in the wrong state, a bad transform tag, a quota): the part
//!   fails with that error, 4 requests for a batch. Accepted, rejected
//!   differently or not sent, it proves nothing and both halves are
//!   bisected. The accepted probe is counted in
//!   [`requests`](SyncReport::requests), not as synced. A 413 (payload too
//!   large) is never taken for a whole-request rejection (halving is its
//!   fix), nor are two rejections without a message (a proxy's HTML page).
//!   Probes need a [`SyncTarget`] whose `sync` is an upsert that accepts
//!   an empty slice; [`SyncOptions::probes`] turns them off. Bisection of
//!   one batch is capped at [`max_splits`](SyncOptions::max_splits)
//!   splits; past it, the rejected parts fail whole.
//! * **Sharing.** A batch is held once ([`Arc`]); halves are ranges of it,
//!   and the built-in targets serialize each request straight from the
//!   slice, so neither bisection nor retries copy items.
//! * **Rate limits.** Every request of a job runs under one [`RateGate`]:
//!   a 429 or `Retry-After` answer to any batch pauses all of them. The
//!   client's own retries apply first ([`RetryPolicy`](crate::RetryPolicy));
//!   a batch still failing with a retryable error is retried
//!   [`max_batch_retries`](SyncOptions::max_batch_retries) more times
//!   before its items are reported as failed. A `Retry-After` longer than
//!   the gate's cap ([`RateGate::max_pause`]) is reported as a
//!   [`SyncEvent::Paused`] event before the batch waits it out; one longer
//!   than [`max_retry_after`](SyncOptions::max_retry_after) (15 minutes by
//!   default) fails the batch at once, the wait in its error
//!   ([`Error::retry_after`]).
//! * **Stopping.** A 401, 403 or 404 (a bad token, no permission, a
//!   mistyped source) or a non-retryable authentication failure fails the
//!   batch's items and stops the job. So do
//!   [`max_request_rejections`](SyncOptions::max_request_rejections) (3)
//!   request-level rejections in a row: parts a probe showed to be
//!   rejected whatever their items, or failed without bisection by another
//!   4xx or a `Retry-After` above the cap. A stopped job reads no more
//!   input and sends no new request; items already read but not sent are
//!   counted in [`SyncReport::not_attempted`], and
//!   [`SyncReport::stopped`] holds the error. Other errors (5xx, network)
//!   fail the batch's items without bisection.
//! * **Cancellation.** [`SyncOptions::cancel`] takes a
//!   [`CancellationToken`]: once cancelled, no new request starts and waits
//!   are cut short; requests in flight finish. The report accounts for
//!   every item read, with [`SyncReport::cancelled`] set.
//!
//! # Accounting
//!
//! Every item read from the input is, exactly once, **synced**, **failed**
//! or **not attempted** (the job stopped or was cancelled before sending
//! it): `report.read == report.synced + report.failed + report.not_attempted`.
//! The counts are exact however many items fail; memory is not spent on
//! them: [`SyncReport::failures`] lists the first
//! [`max_failures_kept`](SyncOptions::max_failures_kept) (10,000 by
//! default) failed items with their error,
//! [`SyncReport::failures_not_kept`] counts the others, and
//! [`SyncOptions::on_failure`] sees every one. Not-attempted items are
//! counted, never listed.
//! [`SyncReport::requests`] counts the requests sent, the client's own
//! retries and probes included (a call that sent nothing, such as one whose
//! token exchange failed, counts 0).
//! Items are identified by their position in the input
//! ([`ItemKey::index`]) and their id, if any ([`ItemKey::id`]).
//!
//! The server answers a request with *counts* (new, updated, unchanged),
//! not a status per comment, so "created / updated / unchanged" is known
//! per accepted request, not per item: [`SyncEvent::Synced`] gives, for
//! each accepted request, the keys of its items and its counts, and
//! [`SyncReport::counts`] sums the counts. A request of one item (as
//! bisection ends with) tells that item's status exactly. Items failed
//! together (a non-bisected error) share one `Arc<Error>`.
//!
//! A response whose body cannot be decoded after the server accepted the
//! request is reported as a failure of its items (outcome unknown): sync is
//! an upsert, so sending them again is safe.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use futures::future::{BoxFuture, Either, Future};
use futures::stream::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::Error;
use crate::request::{execute, json_response, segment};
use crate::retry::RateGate;
use crate::scope::count_attempts;
use crate::types;

/// The most items the server accepts in one sync request.
pub const MAX_BATCH_SIZE: usize = 16_384;

/// An item that can be uploaded in bulk; it may name itself for the report.
/// Items are never copied: a batch is shared by its halves and retries.
pub trait BulkItem: Send + Sync + 'static {
    /// The item's id, for the report: the comment id.
    fn item_id(&self) -> Option<&str>;
}

impl BulkItem for types::CommentNew {
    fn item_id(&self) -> Option<&str> {
        Some(&self.id)
    }
}

impl BulkItem for types::RawEmailDocument {
    fn item_id(&self) -> Option<&str> {
        self.comment_id.as_deref()
    }
}

/// Where batches go: one request per call. Implemented by
/// [`CommentsTarget`] and [`RawEmailsTarget`]; implement it for a fake in
/// tests, or to upload somewhere else with the same batching.
///
/// With [probes](SyncOptions::probes) on (the default), `sync` is also
/// called with an item it accepted before (alone) and, before the job
/// synced any item, with an empty slice: it must be an upsert keyed by the
/// item (sending an item again changes nothing) that accepts an empty
/// request, as the built-in targets are. Otherwise turn probes off.
pub trait SyncTarget<T>: Send + Sync {
    /// Sends `items` in one request and returns the server's counts.
    fn sync<'a>(&'a self, items: &'a [T]) -> BoxFuture<'a, Result<SyncCounts, Error>>;
}

/// What the server reported for an accepted request (or a whole job).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncCounts {
    /// Comments created.
    pub new: u64,
    /// Existing comments that changed.
    pub updated: u64,
    /// Comments identical to the stored version.
    pub unchanged: u64,
    /// Of `updated`, those whose text did not change.
    pub updated_properties_only: u64,
    /// Of `updated`, those whose text changed.
    pub updated_text_changed: u64,
}

impl SyncCounts {
    /// Counts as a server would report them.
    ///
    /// ```
    /// let counts = cm_api::bulk::SyncCounts::new(3, 1, 0);
    /// assert_eq!(counts.total(), 4);
    /// ```
    pub fn new(new: u64, updated: u64, unchanged: u64) -> Self {
        Self {
            new,
            updated,
            unchanged,
            ..Self::default()
        }
    }

    /// Comments the server accounted for: new + updated + unchanged.
    pub fn total(&self) -> u64 {
        self.new
            .saturating_add(self.updated)
            .saturating_add(self.unchanged)
    }

    fn add(&mut self, other: &Self) {
        // Server-sent numbers: a bogus huge one must not overflow.
        self.new = self.new.saturating_add(other.new);
        self.updated = self.updated.saturating_add(other.updated);
        self.unchanged = self.unchanged.saturating_add(other.unchanged);
        self.updated_properties_only = self
            .updated_properties_only
            .saturating_add(other.updated_properties_only);
        self.updated_text_changed = self
            .updated_text_changed
            .saturating_add(other.updated_text_changed);
    }
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl From<&types::SyncCommentsResponse> for SyncCounts {
    fn from(r: &types::SyncCommentsResponse) -> Self {
        Self {
            new: count(r.new),
            updated: count(r.updated),
            unchanged: count(r.unchanged),
            updated_properties_only: count(r.updated_properties_only),
            updated_text_changed: count(r.updated_text_changed),
        }
    }
}

impl From<&types::SyncRawEmailsResponse> for SyncCounts {
    fn from(r: &types::SyncRawEmailsResponse) -> Self {
        Self {
            new: count(r.new),
            updated: count(r.updated),
            unchanged: count(r.unchanged),
            updated_properties_only: count(r.updated_properties_only),
            updated_text_changed: count(r.updated_text_changed),
        }
    }
}

/// `sync_comments` into one source.
#[derive(Clone, Debug)]
pub struct CommentsTarget {
    client: Client,
    project: String,
    source: String,
    no_charge: bool,
    body_size: Arc<BodySize>,
}

impl CommentsTarget {
    /// Uploads to `project/source`.
    pub fn new(client: &Client, project: &str, source: &str) -> Self {
        Self {
            client: client.clone(),
            project: project.to_owned(),
            source: source.to_owned(),
            no_charge: false,
            body_size: Arc::default(),
        }
    }

    /// Asks the server not to charge AI units for these comments
    /// (`no_charge=true`, honoured for some accounts only).
    ///
    /// ```
    /// # fn f(client: &cm_api::Client) {
    /// let target = cm_api::bulk::CommentsTarget::new(client, "acme", "inbox").no_charge(true);
    /// # }
    /// ```
    pub fn no_charge(mut self, no_charge: bool) -> Self {
        self.no_charge = no_charge;
        self
    }
}

impl SyncTarget<types::CommentNew> for CommentsTarget {
    fn sync<'a>(
        &'a self,
        items: &'a [types::CommentNew],
    ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            // Serialized from the slice (no copy of the items); the client's
            // retries resend the same bytes.
            #[derive(Serialize)]
            struct Body<'b> {
                comments: &'b [types::CommentNew],
            }
            const OPERATION: &str = "sync_comments";
            let path = format!(
                "/api/v1/sources/{}/{}/sync{}",
                segment(OPERATION, "project", &self.project)?,
                segment(OPERATION, "source_name", &self.source)?,
                no_charge_query(self.no_charge),
            );
            let body = self
                .body_size
                .encode(&Body { comments: items }, items.len());
            let response = self
                .client
                .send(|c| post_json::<types::SyncCommentsResponse>(c, path, body, OPERATION))
                .await?;
            Ok(SyncCounts::from(response.value()))
        })
    }
}

/// `sync_raw_emails` into one source.
#[derive(Clone, Debug)]
pub struct RawEmailsTarget {
    client: Client,
    project: String,
    source: String,
    transform_tag: Option<String>,
    override_user_properties: Vec<String>,
    no_charge: bool,
    body_size: Arc<BodySize>,
}

impl RawEmailsTarget {
    /// Uploads to `project/source`.
    pub fn new(client: &Client, project: &str, source: &str) -> Self {
        Self {
            client: client.clone(),
            project: project.to_owned(),
            source: source.to_owned(),
            transform_tag: None,
            override_user_properties: Vec::new(),
            no_charge: false,
            body_size: Arc::default(),
        }
    }

    /// Asks the server not to charge AI units for these emails
    /// (`no_charge=true`, honoured for some accounts only).
    ///
    /// ```
    /// # fn f(client: &cm_api::Client) {
    /// let target = cm_api::bulk::RawEmailsTarget::new(client, "acme", "inbox").no_charge(true);
    /// # }
    /// ```
    pub fn no_charge(mut self, no_charge: bool) -> Self {
        self.no_charge = no_charge;
        self
    }

    /// The email transform to parse with (`transform_tag`).
    pub fn transform_tag(mut self, tag: impl Into<String>) -> Self {
        self.transform_tag = Some(tag.into());
        self
    }

    /// User property keys whose value from the request replaces the one
    /// parsed from the email.
    pub fn override_user_properties<S: Into<String>>(
        mut self,
        keys: impl IntoIterator<Item = S>,
    ) -> Self {
        self.override_user_properties = keys.into_iter().map(Into::into).collect();
        self
    }
}

impl SyncTarget<types::RawEmailDocument> for RawEmailsTarget {
    fn sync<'a>(
        &'a self,
        items: &'a [types::RawEmailDocument],
    ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            // The generated `SyncRawEmailsRequest`'s wire form, serialized from the slice.
            #[derive(Serialize)]
            struct Body<'b> {
                documents: &'b [types::RawEmailDocument],
                include_comments: bool,
                #[serde(skip_serializing_if = "<[String]>::is_empty")]
                override_user_properties: &'b [String],
                #[serde(skip_serializing_if = "Option::is_none")]
                transform_tag: Option<&'b str>,
            }
            const OPERATION: &str = "sync_raw_emails";
            let path = format!(
                "/api/v1/sources/{}/{}/sync-raw-emails{}",
                segment(OPERATION, "project", &self.project)?,
                segment(OPERATION, "source_name", &self.source)?,
                no_charge_query(self.no_charge),
            );
            let body = Body {
                documents: items,
                // The parsed comments are not needed for the report, and would be large.
                include_comments: false,
                override_user_properties: &self.override_user_properties,
                transform_tag: self.transform_tag.as_deref(),
            };
            let body = self.body_size.encode(&body, items.len());
            let response = self
                .client
                .send(|c| post_json::<types::SyncRawEmailsResponse>(c, path, body, OPERATION))
                .await?;
            Ok(SyncCounts::from(response.value()))
        })
    }
}

/// The query string of a target's `no_charge` flag: sent only when set, as
/// the server's default is to charge.
fn no_charge_query(no_charge: bool) -> &'static str {
    if no_charge { "?no_charge=true" } else { "" }
}

/// A JSON `POST` of `body` through the generated client's hooks, as the
/// generated operation `operation` would send it.
async fn post_json<T: serde::de::DeserializeOwned>(
    c: &cm_api_gen::Client,
    path: String,
    body: Result<Vec<u8>, serde_json::Error>,
    operation: &'static str,
) -> Result<cm_api_gen::ResponseValue<T>, crate::request::GeneratedError> {
    use progenitor_client::ClientInfo;
    let body = body.map_err(|e| {
        cm_api_gen::Error::InvalidRequest(format!(
            "the request body cannot be written as JSON: {e}"
        ))
    })?;
    let request = c
        .client()
        .post(format!("{}{path}", c.baseurl()))
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(body)
        .build()?;
    json_response(execute(c, request, operation).await?).await
}

/// The size of a target's last request body, per item: the next body is
/// written into a buffer of about its size. Grown from empty, the buffer of
/// a batch of a few hundred kilobytes is reallocated (and copied) a dozen
/// times: 1.7% of a sequential job's instructions (bench figure 7).
#[derive(Debug, Default)]
struct BodySize {
    per_item: AtomicUsize,
}

/// The largest buffer [`BodySize`] reserves ahead. A larger body grows past
/// it as usual; the cap bounds what a wrong estimate costs (one huge item
/// alone, as bisection sends it, followed by a full batch of small ones).
const MAX_RESERVED_BODY: usize = 4 << 20;

impl BodySize {
    /// `body`, of `items` items, as JSON bytes.
    fn encode<B: Serialize + ?Sized>(
        &self,
        body: &B,
        items: usize,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let items = items.max(1);
        // An eighth more than the last body's rate, so that a slightly
        // larger batch still fits.
        let expected = self.per_item.load(Ordering::Relaxed).saturating_mul(items);
        let reserved = expected
            .saturating_add(expected / 8)
            .clamp(128, MAX_RESERVED_BODY);
        let mut buffer = Vec::with_capacity(reserved);
        serde_json::to_writer(&mut buffer, body)?;
        self.per_item
            .store(buffer.len().div_ceil(items), Ordering::Relaxed);
        Ok(buffer)
    }
}

/// Which input item: its position in the input stream (from 0) and its id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ItemKey {
    /// Position in the input stream, from 0.
    pub index: u64,
    /// The item's id ([`BulkItem::item_id`]), if it has one.
    pub id: Option<String>,
}

/// An item that was not synced, with the reason.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ItemFailure {
    /// Which item.
    pub item: ItemKey,
    /// Why: its own rejection after bisection, or the error of the whole
    /// part (shared) when the error did not call for bisection or was
    /// shown to be about the request.
    pub error: Arc<Error>,
}

/// Running totals of a job, passed with every [`Progress`] event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncTotals {
    /// Items read from the input so far.
    pub read: u64,
    /// Items in accepted requests.
    pub synced: u64,
    /// Items reported as failed (all of them, listed or not).
    pub failed: u64,
    /// Items read but never sent: the job stopped or was cancelled.
    pub not_attempted: u64,
    /// Requests sent (including bisection and retries).
    pub requests: u64,
    /// The server's counts, summed.
    pub counts: SyncCounts,
}

/// Something that happened during a job.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncEvent<'a> {
    /// A request was accepted: these items are stored, and the server
    /// counted them as `counts`.
    Synced {
        /// The items of the request.
        items: &'a [ItemKey],
        /// The server's counts for this request.
        counts: SyncCounts,
    },
    /// These items failed for good.
    Failed {
        /// The failed items and their errors.
        failures: &'a [ItemFailure],
    },
    /// A batch of `items` items was rejected for its content and is being
    /// bisected.
    Split {
        /// Size of the rejected batch.
        items: usize,
        /// The rejection.
        error: &'a Error,
    },
    /// A batch of `items` items failed with a retryable error and is sent
    /// again after `wait` (every batch waits when the error is a 429).
    Retrying {
        /// Size of the batch.
        items: usize,
        /// The error.
        error: &'a Error,
        /// The pause before the next attempt.
        wait: Duration,
    },
    /// The server asked to wait longer than the rate gate's cap
    /// ([`RateGate::max_pause`]), and no longer than
    /// [`SyncOptions::max_retry_after`]: the batch waits `wait` before its
    /// next attempt (cut short by [`SyncOptions::cancel`]).
    Paused {
        /// Size of the batch.
        items: usize,
        /// The error carrying the `Retry-After`.
        error: &'a Error,
        /// How long the batch waits.
        wait: Duration,
    },
    /// The job stopped: a fatal error (401, 403, 404, rejected
    /// credentials), or the last of
    /// [`max_request_rejections`](SyncOptions::max_request_rejections)
    /// request-level rejections in a row. It reads no more input and sends
    /// no new request.
    Stopped {
        /// The error.
        error: &'a Error,
    },
}

/// A progress report: an event and the job's totals right after it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// What happened.
    pub event: SyncEvent<'a>,
    /// The totals, including this event.
    pub totals: SyncTotals,
}

type ProgressFn = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;
type FailureFn = Arc<dyn Fn(&ItemFailure) + Send + Sync>;

/// The default of [`SyncOptions::max_batch_delay`].
pub const DEFAULT_MAX_BATCH_DELAY: Duration = Duration::from_secs(5);
/// The default of [`SyncOptions::max_retry_after`], shared with the
/// stream consumer's.
pub use crate::retry::DEFAULT_MAX_RETRY_AFTER;
/// The default of [`SyncOptions::max_failures_kept`].
pub const DEFAULT_MAX_FAILURES_KEPT: usize = 10_000;

/// How a bulk job runs.
///
/// ```
/// use std::time::Duration;
/// use cm_api::bulk::SyncOptions;
///
/// let options = SyncOptions::default()
///     .batch_size(50_000) // capped at 16,384
///     .concurrency(4)
///     .max_batch_retries(3)
///     .retry_backoff(Duration::from_secs(2))
///     .max_batch_delay(Duration::from_secs(1))
///     .max_request_rejections(5)
///     .max_failures_kept(1_000);
/// assert_eq!(options.get_batch_size(), 16_384);
/// ```
#[derive(Clone)]
pub struct SyncOptions {
    batch_size: usize,
    concurrency: usize,
    max_batch_retries: u32,
    retry_backoff: Duration,
    max_retry_after: Duration,
    max_batch_delay: Option<Duration>,
    bisect_statuses: Vec<u16>,
    max_splits: u32,
    probes: bool,
    max_request_rejections: u32,
    max_failures_kept: usize,
    failure_sink: Option<FailureFn>,
    rate_gate: Option<Arc<RateGate>>,
    cancel: Option<CancellationToken>,
    progress: Option<ProgressFn>,
}

impl Default for SyncOptions {
    /// Batches of 1024, 8 in flight, a partial batch sent after 5 s
    /// ([`DEFAULT_MAX_BATCH_DELAY`]), 2 extra attempts per batch for
    /// retryable errors from 1 s, `Retry-After`s of up to 15 minutes waited
    /// out ([`DEFAULT_MAX_RETRY_AFTER`]), bisection on 400/409/413/422 with
    /// at most 128 splits per batch, probes on, a stop after 3 request-level
    /// rejections in a row, and 10,000 failures listed
    /// ([`DEFAULT_MAX_FAILURES_KEPT`]).
    fn default() -> Self {
        Self {
            batch_size: 1024,
            concurrency: 8,
            max_batch_retries: 2,
            retry_backoff: Duration::from_secs(1),
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            max_batch_delay: Some(DEFAULT_MAX_BATCH_DELAY),
            bisect_statuses: vec![400, 409, 413, 422],
            max_splits: 128,
            probes: true,
            max_request_rejections: 3,
            max_failures_kept: DEFAULT_MAX_FAILURES_KEPT,
            failure_sink: None,
            rate_gate: None,
            cancel: None,
            progress: None,
        }
    }
}

impl fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncOptions")
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .field("max_batch_retries", &self.max_batch_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("max_batch_delay", &self.max_batch_delay)
            .field("bisect_statuses", &self.bisect_statuses)
            .field("max_splits", &self.max_splits)
            .field("probes", &self.probes)
            .field("max_request_rejections", &self.max_request_rejections)
            .field("max_failures_kept", &self.max_failures_kept)
            .field("on_failure", &self.failure_sink.is_some())
            .field("rate_gate", &self.rate_gate)
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl SyncOptions {
    /// Items per request, from 1 to [`MAX_BATCH_SIZE`] (values outside are
    /// clamped).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.clamp(1, MAX_BATCH_SIZE);
        self
    }

    /// The batch size in force.
    pub fn get_batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches in flight at once, at least 1.
    pub fn concurrency(mut self, batches: usize) -> Self {
        self.concurrency = batches.max(1);
        self
    }

    /// Extra attempts for a batch that still fails with a retryable error
    /// (network, 429, 502-504) after the client's own retries.
    pub fn max_batch_retries(mut self, retries: u32) -> Self {
        self.max_batch_retries = retries;
        self
    }

    /// The first wait before such an extra attempt; it doubles each time.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The longest `Retry-After` a batch waits out before its next attempt
    /// (default 15 minutes, [`DEFAULT_MAX_RETRY_AFTER`]). A batch told to
    /// wait longer fails at once with that error
    /// ([`Error::retry_after`] holds the wait), and counts as a
    /// request-level rejection ([`max_request_rejections`](Self::max_request_rejections)).
    /// Waits above the rate gate's cap ([`RateGate::max_pause`]) and up to
    /// this one are reported as [`SyncEvent::Paused`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use cm_api::bulk::SyncOptions;
    ///
    /// // Fail rather than wait more than a minute.
    /// let options = SyncOptions::default().max_retry_after(Duration::from_secs(60));
    /// ```
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// How long a batch may wait for the input to fill it, from its first
    /// item (default 5 s, [`DEFAULT_MAX_BATCH_DELAY`]): after that, the
    /// items read so far are sent as a smaller batch. For a live input (a
    /// queue), so that items read are not held back until enough others
    /// come. `Duration::MAX` waits for full batches (or the input's end).
    /// The timer is tokio's, as for the client's own timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cm_api::bulk::SyncOptions;
    ///
    /// // Whatever a queue yielded goes within 200 ms.
    /// let options = SyncOptions::default().max_batch_delay(Duration::from_millis(200));
    /// ```
    pub fn max_batch_delay(mut self, delay: Duration) -> Self {
        self.max_batch_delay = (delay != Duration::MAX).then_some(delay);
        self
    }

    /// The HTTP statuses that blame a batch's content and so trigger
    /// bisection (default 400, 409, 413, 422). A batch failing with any
    /// other error fails as a whole.
    pub fn bisect_statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.bisect_statuses = statuses.into_iter().collect();
        self
    }

    /// The most splits the bisection of one batch may make (default 128);
    /// past it, the rejected parts fail as a whole. One bad item in a batch
    /// of `n` needs `log2(n)` splits.
    pub fn max_splits(mut self, splits: u32) -> Self {
        self.max_splits = splits;
        self
    }

    /// Whether bisection may send probes (default on): when both halves
    /// of a part are rejected with the same status and message, the job
    /// sends the item it synced first, alone, again (or, before it synced
    /// any, a request with no items); if that is rejected the same way,
    /// the rejection is about the request, not the part's items. This
    /// needs a target whose `sync` is an upsert that accepts an empty
    /// slice, as the built-in ones are (see [`SyncTarget`]). Off, such a
    /// part is always bisected down to single items (up to
    /// [`max_splits`](Self::max_splits)), and a rejection of every request
    /// with a status of [`bisect_statuses`](Self::bisect_statuses) is never
    /// recognised as one.
    pub fn probes(mut self, enabled: bool) -> Self {
        self.probes = enabled;
        self
    }

    /// How many request-level rejections in a row stop the job (default 3,
    /// at least 1): a part shown by a probe ([`probes`](Self::probes)) to
    /// be rejected whatever its items, or failed without bisection by a 4xx
    /// (other than 401/403/404, which stop the job at once) or by a
    /// `Retry-After` above [`max_retry_after`](Self::max_retry_after).
    /// Any accepted request resets the count. The stop is as for a fatal
    /// error: [`SyncReport::stopped`] holds the error, no more input is
    /// read, and items read but not sent are counted in
    /// [`SyncReport::not_attempted`]. `u32::MAX`: never stop for them.
    pub fn max_request_rejections(mut self, rejections: u32) -> Self {
        self.max_request_rejections = rejections.max(1);
        self
    }

    /// How many failures [`SyncReport::failures`] lists (default 10,000,
    /// [`DEFAULT_MAX_FAILURES_KEPT`]): the first ones reported. The others
    /// are counted ([`SyncReport::failed`], [`SyncReport::failures_not_kept`])
    /// and seen by [`on_failure`](Self::on_failure), so that a job failing
    /// millions of items stays within bounded memory. `usize::MAX` lists
    /// them all.
    pub fn max_failures_kept(mut self, failures: usize) -> Self {
        self.max_failures_kept = failures;
        self
    }

    /// Calls `sink` with every failed item, whether or not the report lists
    /// it ([`max_failures_kept`](Self::max_failures_kept)): to write the
    /// failures to a file, say. Calls are serialised with those of
    /// [`on_progress`](Self::on_progress); keep the callback short.
    ///
    /// ```no_run
    /// use std::sync::{Arc, Mutex};
    /// use cm_api::bulk::{self, SyncOptions};
    ///
    /// # async fn run(client: cm_api::Client, comments: Vec<cm_api::types::CommentNew>) {
    /// let failed = Arc::new(Mutex::new(Vec::new()));
    /// let sink = failed.clone();
    /// let options = SyncOptions::default()
    ///     .max_failures_kept(0)
    ///     .on_failure(move |f| sink.lock().unwrap().push((f.item.index, f.error.to_string())));
    /// let report = bulk::sync_comments(&client, "acme", "inbox", futures::stream::iter(comments), options).await;
    /// assert_eq!(failed.lock().unwrap().len() as u64, report.failed);
    /// # }
    /// ```
    pub fn on_failure(mut self, sink: impl Fn(&ItemFailure) + Send + Sync + 'static) -> Self {
        self.failure_sink = Some(Arc::new(sink));
        self
    }

    /// Ends the job when `token` is cancelled, with a report that accounts
    /// for every item read: no new request starts, waits are cut short,
    /// requests in flight finish, and unsent items are counted in
    /// [`SyncReport::not_attempted`].
    ///
    /// ```no_run
    /// use tokio_util::sync::CancellationToken;
    /// use cm_api::bulk::{self, SyncOptions};
    ///
    /// # async fn run(client: cm_api::Client, comments: Vec<cm_api::types::CommentNew>) {
    /// let cancel = CancellationToken::new();
    /// let on_ctrl_c = cancel.clone();
    /// tokio::spawn(async move {
    ///     let _ = tokio::signal::ctrl_c().await;
    ///     on_ctrl_c.cancel();
    /// });
    /// let options = SyncOptions::default().cancel(cancel);
    /// let report = bulk::sync_comments(&client, "acme", "inbox", futures::stream::iter(comments), options).await;
    /// if report.cancelled {
    ///     eprintln!("cancelled: {} synced, {} not sent", report.synced, report.not_attempted);
    /// }
    /// # }
    /// ```
    pub fn cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Shares a [`RateGate`] with other jobs, so that a rate limit hit by
    /// one pauses all of them. Each job has its own gate otherwise.
    pub fn rate_gate(mut self, gate: Arc<RateGate>) -> Self {
        self.rate_gate = Some(gate);
        self
    }

    /// Calls `callback` after each event, with the job's totals. Calls are
    /// serialised; keep the callback short (e.g. update a progress bar or
    /// send to a channel).
    pub fn on_progress(mut self, callback: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(callback));
        self
    }
}

/// The outcome of a job: every item read is synced, failed or not attempted.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SyncReport {
    /// Items read from the input.
    pub read: u64,
    /// Items in accepted requests.
    pub synced: u64,
    /// The server's counts, summed over accepted requests.
    pub counts: SyncCounts,
    /// Items sent but not synced.
    pub failed: u64,
    /// The failed items with their errors, in input order: the first
    /// [`max_failures_kept`](SyncOptions::max_failures_kept) reported.
    pub failures: Vec<ItemFailure>,
    /// Failed items not in [`failures`](Self::failures) (the list was full):
    /// `failed == failures.len() + failures_not_kept`.
    pub failures_not_kept: u64,
    /// Items read but never sent, because the job stopped
    /// ([`stopped`](Self::stopped)) or was [`cancelled`](Self::cancelled).
    pub not_attempted: u64,
    /// The error that stopped the job, if one did: a fatal error (401,
    /// 403, 404, rejected credentials) or the last of
    /// [`max_request_rejections`](SyncOptions::max_request_rejections)
    /// request-level rejections in a row.
    pub stopped: Option<Arc<Error>>,
    /// Whether the job ended because [`SyncOptions::cancel`]'s token was cancelled.
    pub cancelled: bool,
    /// Requests sent: bisection, the job's retries and the client's own
    /// retries included.
    pub requests: u64,
    /// Batches formed from the input (before bisection).
    pub batches: u64,
    /// Bisections (rejected batches split in two).
    pub splits: u64,
}

impl SyncReport {
    /// Whether every item read was synced (and the job was neither stopped
    /// nor cancelled).
    pub fn is_complete(&self) -> bool {
        self.failed == 0 && self.not_attempted == 0
    }

    /// Whether the server's counts add up to the items synced. They may
    /// not when a request holds the same id twice.
    pub fn counts_match(&self) -> bool {
        self.counts.total() == self.synced
    }
}

/// Uploads `comments` to `project/source` with `sync_comments`.
pub async fn sync_comments(
    client: &Client,
    project: &str,
    source: &str,
    comments: impl Stream<Item = types::CommentNew>,
    options: SyncOptions,
) -> SyncReport {
    sync_with(
        &CommentsTarget::new(client, project, source),
        comments,
        options,
    )
    .await
}

/// Uploads raw `emails` to `project/source` with `sync_raw_emails`. For a
/// transform tag or overridden user properties, use [`RawEmailsTarget`]
/// with [`sync_with`]. Raw emails are large: consider a smaller
/// [`batch_size`](SyncOptions::batch_size) than for comments.
pub async fn sync_raw_emails(
    client: &Client,
    project: &str,
    source: &str,
    emails: impl Stream<Item = types::RawEmailDocument>,
    options: SyncOptions,
) -> SyncReport {
    sync_with(
        &RawEmailsTarget::new(client, project, source),
        emails,
        options,
    )
    .await
}

/// Uploads `input` to any [`SyncTarget`]; see the [module](self)
/// documentation.
pub async fn sync_with<T: BulkItem, S: SyncTarget<T> + ?Sized>(
    target: &S,
    input: impl Stream<Item = T>,
    options: SyncOptions,
) -> SyncReport {
    let stop = options
        .cancel
        .as_ref()
        .map(CancellationToken::child_token)
        .unwrap_or_default();
    let job = Job {
        target,
        gate: options.rate_gate.clone().unwrap_or_default(),
        options,
        stop,
        shared: Mutex::new(Shared::default()),
        known_good: OnceLock::new(),
        rejections_in_a_row: AtomicU32::new(0),
    };
    let job = &job;
    let input = until_cancelled(input, job.stop.clone());
    let size = job.options.batch_size;
    // A partial batch goes once its first item has waited `max_batch_delay`
    // (a live input); without one, batches wait to be full.
    let batches = match job.options.max_batch_delay {
        Some(delay) => Either::Left(tokio_stream::StreamExt::chunks_timeout(input, size, delay)),
        None => Either::Right(input.chunks(size)),
    };
    let batches = batches
        .map(|items| {
            // One lock per batch, not per item: the items are counted read
            // as their batch is formed.
            let first = {
                let mut shared = job.shared();
                let first = shared.read;
                shared.read += items.len() as u64;
                shared.report.batches += 1;
                first
            };
            job.run_batch(Batch::new(first, items))
        })
        .buffer_unordered(job.options.concurrency);
    batches.for_each(|()| async {}).await;
    let mut shared = job.shared();
    let mut report = std::mem::take(&mut shared.report);
    report.read = shared.read;
    report.cancelled = job
        .options
        .cancel
        .as_ref()
        .is_some_and(CancellationToken::is_cancelled);
    report.failures.sort_by_key(|f| f.item.index);
    report
}

/// `input` until `stop` is cancelled. While items are ready the token is
/// checked with an atomic load; its future (which takes a lock to register
/// a waker) is polled only when the input is pending, so that a job blocked
/// on a slow input still ends at once when cancelled. `take_until` polls
/// that future for every item, a measurable cost on the upload path.
fn until_cancelled<S: Stream>(input: S, stop: CancellationToken) -> impl Stream<Item = S::Item> {
    let mut input = Box::pin(input);
    let mut cancelled = Box::pin(stop.clone().cancelled_owned());
    futures::stream::poll_fn(move |cx| {
        if stop.is_cancelled() {
            return Poll::Ready(None);
        }
        match input.as_mut().poll_next(cx) {
            Poll::Pending => cancelled.as_mut().poll(cx).map(|()| None),
            ready => ready,
        }
    })
}

/// Items shared by a batch and every part bisection makes of it.
struct Batch<T> {
    // `Arc<Vec<_>>`, not `Arc<[_]>`: the batch's vector is shared as it was
    // built, without copying a thousand items into a new block.
    items: Arc<Vec<T>>,
    /// Each item's key, built on first use: only progress events and
    /// failures need them, and building one allocates the item's id.
    keys: Arc<OnceLock<Vec<ItemKey>>>,
    /// The input position of `items[0]`.
    first_index: u64,
    range: Range<usize>,
}

impl<T: BulkItem> Batch<T> {
    fn new(first_index: u64, items: Vec<T>) -> Self {
        let range = 0..items.len();
        Self {
            items: Arc::new(items),
            keys: Arc::default(),
            first_index,
            range,
        }
    }

    fn items(&self) -> &[T] {
        &self.items[self.range.clone()]
    }

    fn keys(&self) -> &[ItemKey] {
        let keys = self.keys.get_or_init(|| {
            self.items
                .iter()
                .zip(self.first_index..)
                .map(|(item, index)| ItemKey {
                    index,
                    id: item.item_id().map(str::to_owned),
                })
                .collect()
        });
        &keys[self.range.clone()]
    }

    fn len(&self) -> usize {
        self.range.len()
    }

    /// The two halves, sharing this batch's items.
    fn split(&self) -> (Self, Self) {
        let mid = self.range.start + self.len() / 2;
        let part = |range| Batch {
            items: Arc::clone(&self.items),
            keys: Arc::clone(&self.keys),
            first_index: self.first_index,
            range,
        };
        (part(self.range.start..mid), part(mid..self.range.end))
    }
}

/// What one request (with its retries) came to.
enum Answer {
    Synced(SyncCounts),
    Failed(Error),
    /// The job stopped or was cancelled before it was sent.
    NotSent,
}

/// Whether two rejections are the same, and so possibly about the request
/// rather than its items: the same status and the same message. A 413
/// (payload too large) never is (halving is its fix), nor are two errors
/// without a message (a proxy's HTML page): they tell nothing apart.
fn same_rejection(a: &Error, b: &Error) -> bool {
    a.status().is_some()
        && a.status() != Some(413)
        && a.status() == b.status()
        && a.message().is_some()
        && a.message() == b.message()
}

/// Errors of a call that sent nothing: a bad configuration or request, a
/// failed token exchange (the API was not called), a closed rate gate.
fn sent_nothing(error: &Error) -> bool {
    matches!(
        error,
        Error::Config(_)
            | Error::InvalidRequest { .. }
            | Error::Auth(_)
            | Error::RateLimited { attempts: 0, .. }
    )
}

/// Errors after which no other request of the job can succeed.
fn is_fatal(error: &Error) -> bool {
    matches!(error.status(), Some(401 | 403 | 404))
        || matches!(error, Error::Auth(auth) if !auth.is_retryable())
}

#[derive(Default)]
struct Shared {
    read: u64,
    report: SyncReport,
}

struct Job<'t, S: ?Sized, T> {
    target: &'t S,
    options: SyncOptions,
    gate: Arc<RateGate>,
    /// Cancelled by the caller's token or when the job stops.
    stop: CancellationToken,
    shared: Mutex<Shared>,
    /// An item this job synced (its batch's items and its position in
    /// them): the probe of a rejection shared by both halves of a part.
    /// Holds one batch in memory at most.
    known_good: OnceLock<(Arc<Vec<T>>, usize)>,
    /// Request-level rejections since the last accepted request.
    rejections_in_a_row: AtomicU32,
}

impl<S: ?Sized + SyncTarget<T>, T: BulkItem> Job<'_, S, T> {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Plain counters: a poisoned lock (a panicking callback) still holds valid data.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `update` to the report and tells the progress callback;
    /// `event` is built only when there is a callback to tell.
    fn record<'e>(
        &self,
        event: impl FnOnce() -> SyncEvent<'e>,
        update: impl FnOnce(&mut SyncReport),
    ) {
        let mut shared = self.shared();
        update(&mut shared.report);
        if let Some(progress) = &self.options.progress {
            let report = &shared.report;
            let totals = SyncTotals {
                read: shared.read,
                synced: report.synced,
                failed: report.failed,
                not_attempted: report.not_attempted,
                requests: report.requests,
                counts: report.counts,
            };
            progress(&Progress {
                event: event(),
                totals,
            });
        }
    }

    async fn run_batch(&self, batch: Batch<T>) {
        let mut splits = 0u32;
        let sent = self.send(batch.items()).await;
        // The halves of rejected parts, depth-first: both halves of a split
        // are sent, then compared.
        let mut pending: Vec<(Batch<T>, Batch<T>)> = Vec::new();
        pending.extend(self.settle(batch, sent, &mut splits));
        while let Some((left, right)) = pending.pop() {
            let left_sent = self.send(left.items()).await;
            let right_sent = self.send(right.items()).await;
            let (left_sent, right_sent) = match (left_sent, right_sent) {
                (Answer::Failed(a), Answer::Failed(b))
                    if self.blames_content(&a) && same_rejection(&a, &b) =>
                {
                    if self.rejected_whatever_the_items(&a).await {
                        // A request whose items cannot be at fault is
                        // rejected the same way: the rejection is about the
                        // request (a source in the wrong state, a quota),
                        // not these items.
                        let error = Arc::new(a);
                        self.fail(&left, &error);
                        self.fail(&right, &error);
                        self.request_rejected(&error);
                        continue;
                    }
                    (Answer::Failed(a), Answer::Failed(b))
                }
                answers => answers,
            };
            // Nothing shows the request is at fault: bisect both.
            let right_split = self.settle(right, right_sent, &mut splits);
            let left_split = self.settle(left, left_sent, &mut splits);
            pending.extend(right_split);
            pending.extend(left_split);
        }
    }

    /// Whether a request whose items cannot be at fault is rejected as
    /// `rejection` was: the item this job synced first, sent alone, or,
    /// before any was synced, a request with no items. Anything else (the
    /// probe accepted, rejected another way, not sent, probes off) is
    /// inconclusive: the caller bisects.
    async fn rejected_whatever_the_items(&self, rejection: &Error) -> bool {
        if !self.options.probes {
            return false;
        }
        let known_good = self.known_good.get().and_then(|(items, at)| items.get(*at));
        let sent = match known_good {
            Some(item) => self.send(std::slice::from_ref(item)).await,
            None => self.send(&[]).await,
        };
        match sent {
            // Sync is an upsert: the item is stored already, and the
            // accepted probe is neither counted as synced nor reported.
            Answer::Synced(_) => {
                self.accepted();
                false
            }
            Answer::Failed(error) if is_fatal(&error) => {
                self.stop_job(&Arc::new(error));
                false
            }
            Answer::Failed(error) => same_rejection(rejection, &error),
            Answer::NotSent => false,
        }
    }

    /// Records what `sent` means for `batch`; returns its halves when it is
    /// to be bisected.
    fn settle(
        &self,
        batch: Batch<T>,
        sent: Answer,
        splits: &mut u32,
    ) -> Option<(Batch<T>, Batch<T>)> {
        match sent {
            Answer::Synced(counts) => {
                self.accepted();
                if self.options.probes && batch.len() > 0 && self.known_good.get().is_none() {
                    let _ = self
                        .known_good
                        .set((Arc::clone(&batch.items), batch.range.start));
                }
                self.record(
                    || SyncEvent::Synced {
                        items: batch.keys(),
                        counts,
                    },
                    |r| {
                        r.synced += batch.len() as u64;
                        r.counts.add(&counts);
                    },
                );
                None
            }
            Answer::NotSent => {
                self.shared().report.not_attempted += batch.len() as u64;
                None
            }
            Answer::Failed(error)
                if batch.len() > 1
                    && !self.stop.is_cancelled()
                    && *splits < self.options.max_splits
                    && self.blames_content(&error) =>
            {
                *splits += 1;
                self.record(
                    || SyncEvent::Split {
                        items: batch.len(),
                        error: &error,
                    },
                    |r| r.splits += 1,
                );
                Some(batch.split())
            }
            Answer::Failed(error) => {
                let error = Arc::new(error);
                let fatal = is_fatal(&error);
                if fatal {
                    self.stop_job(&error);
                }
                self.fail(&batch, &error);
                if !fatal && self.about_the_request(&error) {
                    self.request_rejected(&error);
                }
                None
            }
        }
    }

    /// Whether an error that fails a part without bisection is a rejection
    /// of the request: a 4xx that does not blame the content (a 429 still
    /// answered after the retries, say), or a `Retry-After` beyond
    /// [`SyncOptions::max_retry_after`]. Network errors and 5xx are not.
    fn about_the_request(&self, error: &Error) -> bool {
        error
            .status()
            .is_some_and(|status| (400..500).contains(&status) && !self.blames_content(error))
            || error
                .retry_after()
                .is_some_and(|wait| wait > self.options.max_retry_after)
    }

    /// A request was accepted: request-level rejections are no longer "in a row".
    fn accepted(&self) {
        if self.rejections_in_a_row.load(Ordering::Relaxed) != 0 {
            self.rejections_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a request-level rejection; stops the job at the
    /// [`max_request_rejections`](SyncOptions::max_request_rejections)-th in a row.
    fn request_rejected(&self, error: &Arc<Error>) {
        if self.stop.is_cancelled() {
            // Stopped or cancelled already: a wait cut short, say.
            return;
        }
        let in_a_row = self.rejections_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(in_a_row, %error, "bulk request rejected whatever its items");
        if in_a_row >= self.options.max_request_rejections {
            self.stop_job(error);
        }
    }

    /// Stops the job (the first error that does is kept).
    fn stop_job(&self, error: &Arc<Error>) {
        let first = {
            let mut shared = self.shared();
            let first = shared.report.stopped.is_none();
            if first {
                shared.report.stopped = Some(Arc::clone(error));
            }
            first
        };
        if first {
            tracing::error!(%error, "bulk job stopped");
            self.record(|| SyncEvent::Stopped { error }, |_| {});
        }
        self.stop.cancel();
    }

    /// Reports `batch`'s items as failed with `error`: counted, passed to
    /// the sinks, and listed while the list has room.
    fn fail(&self, batch: &Batch<T>, error: &Arc<Error>) {
        let options = &self.options;
        // Every failure when a callback sees them; otherwise only those
        // the list may still keep (its room only shrinks), so that a job
        // failing millions of items builds no key for them.
        let wanted = if options.progress.is_some() || options.failure_sink.is_some() {
            batch.len()
        } else {
            let kept = self.shared().report.failures.len();
            batch
                .len()
                .min(options.max_failures_kept.saturating_sub(kept))
        };
        let keys = if wanted > 0 { batch.keys() } else { &[] };
        let failures: Vec<ItemFailure> = keys[..wanted]
            .iter()
            .map(|item| ItemFailure {
                item: item.clone(),
                error: Arc::clone(error),
            })
            .collect();
        self.record(
            || SyncEvent::Failed {
                failures: &failures,
            },
            |r| {
                let failed = batch.len() as u64;
                r.failed += failed;
                let room = options.max_failures_kept.saturating_sub(r.failures.len());
                let kept = failures.len().min(room);
                r.failures.extend(failures[..kept].iter().cloned());
                r.failures_not_kept += failed - kept as u64;
                if let Some(sink) = &options.failure_sink {
                    failures.iter().for_each(|failure| sink(failure));
                }
            },
        );
    }

    fn blames_content(&self, error: &Error) -> bool {
        error
            .status()
            .is_some_and(|status| self.options.bisect_statuses.contains(&status))
    }

    /// Waits `wait`; `false` if the job stopped meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// One request for `items`, under the job's gate, with the extra
    /// attempts for retryable errors.
    async fn send(&self, items: &[T]) -> Answer {
        let mut retries = 0;
        loop {
            if self.stop.is_cancelled() {
                return Answer::NotSent;
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Answer::NotSent,
                _ = self.gate.wait() => {}
            }
            let counter = Arc::new(AtomicU64::new(0));
            let result = count_attempts(
                Arc::clone(&counter),
                self.gate.scope(self.target.sync(items)),
            )
            .await;
            // Requests the client sent; a target that does not go through a
            // `Client` (a fake) counts as one per call, unless its error
            // says nothing was sent.
            let sent = match counter.load(Ordering::Relaxed) {
                0 if !result.as_ref().is_err_and(sent_nothing) => 1,
                n => n,
            };
            self.shared().report.requests += sent;
            let error = match result {
                Ok(counts) => return Answer::Synced(counts),
                Err(error)
                    if error.is_retryable()
                        && !is_fatal(&error)
                        && retries < self.options.max_batch_retries =>
                {
                    error
                }
                Err(error) => return Answer::Failed(error),
            };
            if let Some(wait) = error.retry_after()
                && wait > self.options.max_retry_after
            {
                // Not worth parking the batch for: it fails, the wait in its error.
                tracing::warn!(wait_s = wait.as_secs(), %error, "bulk batch failed: Retry-After beyond max_retry_after");
                return Answer::Failed(error);
            }
            retries += 1;
            let backoff = self
                .options
                .retry_backoff
                .saturating_mul(2u32.saturating_pow(retries - 1));
            let wait = error.retry_after().unwrap_or(backoff);
            if wait > self.gate.get_max_pause() {
                tracing::warn!(wait_s = wait.as_secs(), %error, "bulk job paused by a long Retry-After");
                self.record(
                    || SyncEvent::Paused {
                        items: items.len(),
                        error: &error,
                        wait,
                    },
                    |_| {},
                );
            } else {
                self.record(
                    || SyncEvent::Retrying {
                        items: items.len(),
                        error: &error,
                        wait,
                    },
                    |_| {},
                );
            }
            if error.status() == Some(429) {
                // Rate limited: every batch of the job waits, not just this one.
                self.gate.pause_for(wait);
            }
            if !self.pause(wait).await {
                // Cancelled while waiting: the batch was sent and failed.
                return Answer::Failed(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_written_into_a_buffer_sized_from_the_last_one() {
        let size = BodySize::default();
        let batch = vec!["x".repeat(100); 10];
        let first = size.encode(&batch, 10).unwrap();
        assert_eq!(first, serde_json::to_vec(&batch).unwrap());
        // The same shape again fits the reserved buffer without growing it.
        let second = size.encode(&batch, 10).unwrap();
        assert_eq!(second, first);
        assert!(second.capacity() >= second.len());
        assert!(second.capacity() <= (first.len() + 10) * 9 / 8);
    }

    #[test]
    fn one_huge_item_does_not_reserve_a_huge_buffer_for_the_next_batch() {
        let size = BodySize::default();
        size.encode(&["x".repeat(1 << 20)], 1).unwrap();
        let small = vec!["y".to_owned(); 1000];
        let body = size.encode(&small, 1000).unwrap();
        assert_eq!(body, serde_json::to_vec(&small).unwrap());
        assert!(body.capacity() <= MAX_RESERVED_BODY);
    }
}
