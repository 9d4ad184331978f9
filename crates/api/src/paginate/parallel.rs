//! Parallel walks over a time range: the range is cut into windows, and each
//! window's cursor is walked concurrently.
//!
//! A cursor can only be walked one page at a time, so a long export is bound
//! by round trips (one page per round trip). The two operations that take a
//! timestamp range, `export_dataset` (body `from` / `to`) and
//! `list_source_comments` (query `from_timestamp` / `to_timestamp`), can be
//! split instead: each window is an independent walk of its own cursor.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use cm_api::types::ExportDatasetRequest;
//!
//! # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
//! let request = ExportDatasetRequest {
//!     source_ids: vec!["18ba5ce699f8da1f".into()],
//!     from: Some("2026-01-01T00:00:00Z".parse().unwrap()),
//!     to: Some("2026-04-01T00:00:00Z".parse().unwrap()),
//!     limit: Some(512),
//!     ..Default::default()
//! };
//! let mut walk = client
//!     .export_dataset()
//!     .project("acme")
//!     .dataset_name("triage")
//!     .body(request)
//!     .into_parallel()
//!     .windows(8)
//!     .start()?;
//! while let Some(exported) = walk.try_next().await? {
//!     println!("{}", exported.comment.id);
//! }
//! # Ok(()) }
//! ```
//!
//! # Windows and the boundary rule
//!
//! The range is the request's `[from, to)` (`from` / `to`, or
//! `from_timestamp` / `to_timestamp`): both must be set. It is cut either
//! into [`windows(k)`](ParallelWalk::windows) equal windows (the default, 8)
//! or at the instants given to [`split_at`](ParallelWalk::split_at).
//!
//! Windows are **half-open**, `[start, end)`, and contiguous: a window's
//! `end` is the next window's `start`. Each window is asked for exactly its
//! bounds (`from = start`, `to = end`). The spec says `list_source_comments`
//! treats them that way (`from_timestamp` "at or after", `to_timestamp`
//! "before"); for `export_dataset` it only calls them lower and upper
//! bounds. So that a comment exactly on a boundary is yielded exactly once
//! whatever the server does with an upper bound, the walk also keeps, of
//! each page, only the comments whose ordering timestamp is in the window's
//! `[start, end)`: a comment at `end` that a server returns with an
//! inclusive `to` is dropped there and yielded by the next window (counted
//! in [`ParallelPaginated::out_of_window`]). The ordering timestamp is the
//! comment's `timestamp`, or its `created_at` for an export ordered by
//! `created_at`; the parallel export sends `order_by: timestamp` unless the
//! request names an order. A comment without that timestamp is kept (the
//! server placed it in the window). The one assumption left is that the
//! server's lower bound is inclusive, as "at or after" and "lower bound"
//! say.
//!
//! Inner boundaries are whole seconds, rounded down, whether computed by
//! the equal split or given to `split_at`: an instant with no fraction
//! means the same at any precision the server compares timestamps at. A
//! boundary with a fraction would not: against a server that truncates
//! `to` and `from` to seconds, a comment between the whole second and the
//! boundary would be asked by neither window (the first's `to` reads as
//! the second before it, the second drops it as before its start).
//! Boundaries that round to the same second, or to the range's start or
//! before, make one window edge or none, so a range shorter than `k`
//! seconds gets fewer windows (one per second at most). The range's own
//! `from` and `to` are sent as given.
//!
//! A walk has at most [`MAX_WINDOWS`] windows: `windows(k)` clamps `k`
//! to it, as it clamps 0 to 1, and more `split_at` instants (or a state
//! with more windows) are refused with [`Error::InvalidRequest`] before
//! anything is sent.
//!
//! Windows are not derived from `get_source_statistics` /
//! `get_dataset_statistics`: the first only counts comments (balancing
//! windows with it would cost a search of requests), the second is an
//! unstable private route whose time buckets depend on a timezone and a
//! resolution. When the comments are known to be unevenly spread, compute
//! the boundaries (from those counts or otherwise) and pass them to
//! [`split_at`](ParallelWalk::split_at).
//!
//! # Concurrency, order and memory
//!
//! At most [`concurrency`](ParallelWalk::concurrency) pages are in flight
//! (one per window at a time; by default as many as there are windows),
//! all sent through the same [`Client`](crate::Client), so its authentication, retries
//! and timeouts apply to each. Every request of a walk also runs under one
//! [`RateGate`] (its own, or the one given to
//! [`rate_gate`](ParallelWalk::rate_gate)): a 429 answered to one window
//! pauses all of them.
//!
//! Items come out either [`unordered`](ParallelWalk::unordered) (the
//! default: page by page as they arrive, each page's items in server
//! order), or [`ordered`](ParallelWalk::ordered): window by window in time
//! order, so the whole walk is in the order of one sequential walk. Either
//! way a window holds at most [`buffer_pages`](ParallelWalk::buffer_pages)
//! pages fetched and not yet yielded, then stops fetching until the
//! consumer catches up. In order, a window ahead of the one being yielded
//! fills its buffer and waits, so the speed-up needs a buffer of about the
//! number of pages per window; unordered, every window keeps going.
//!
//! Fetches run inside the stream's own `poll_next` (no task is spawned):
//! dropping the stream cancels every request in flight and sends no other,
//! and a [`CallOptions::scope`](crate::CallOptions::scope) around the code
//! that polls the stream applies to every request.
//!
//! # Failures and resuming
//!
//! A failed page ends its window only: the stream yields the error (after
//! the items of that window's earlier pages) and goes on with the other
//! windows. At any time, [`ParallelPaginated::state`] is a
//! [`ParallelState`] (serde-serialisable) with, per window, its bounds, the
//! cursor of the first page not fully yielded, how many of that page's
//! items were yielded (`skip`) and whether the window is done.
//! [`ParallelWalk::resume`] starts a walk from it: done windows are not
//! asked again, the others continue at their cursor and drop the `skip`
//! items already yielded, so the two walks together yield every comment
//! exactly once, provided the server answers a cursor with the same items
//! (as a cursor into a time-ordered listing does).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use futures::stream::{FusedStream, FuturesUnordered, Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::builders::{Walk, body, page_of, set};
use super::{Page, SourceComment, check_page_size};
use crate::error::Error;
use crate::operations::{ExportDataset, ListSourceComments};
use crate::retry::RateGate;
use crate::{Operation, types};

/// The number of windows of an equal split when none is given.
pub const DEFAULT_WINDOWS: usize = 8;

/// The most windows a walk has; a cap chosen by this crate.
/// [`ParallelWalk::windows`] clamps to it; more [`split_at`](ParallelWalk::split_at)
/// instants, or a [`ParallelState`] with more windows, are refused with
/// [`Error::InvalidRequest`] before anything is sent.
///
/// Every window costs at least one request (its first page, even empty)
/// and by default one request in flight, so past a thousand windows a
/// walk mostly adds empty requests and load on the tenant's rate limit.
pub const MAX_WINDOWS: usize = 1024;

/// The pages a window holds, fetched and not yet yielded, when no other
/// bound is given ([`ParallelWalk::buffer_pages`]).
pub const DEFAULT_BUFFER_PAGES: usize = 4;

/// One of the two operations a parallel walk can cut into windows: its
/// builder as the template, and how to ask for one page of one window.
trait Windowed<T>: Send + Sync + 'static {
    /// The operation id, for errors and the state.
    fn operation(&self) -> &'static str;
    /// The builder's own error (a body that failed its conversion).
    fn invalid(&self) -> Option<String>;
    /// The page size asked for (`limit`).
    fn page_size(&self) -> Option<i64>;
    /// The template's `[from, to)`.
    fn range(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    /// Whether the template carries a cursor (`continuation` / `after`).
    fn has_cursor(&self) -> bool;
    /// The page of window `[start, end)` at `cursor` (`None`: its first page).
    fn fetch(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        cursor: Option<String>,
    ) -> BoxFuture<'static, Result<Page<T>, Error>>;
    /// The timestamp the window bounds apply to, if the item has one.
    fn timestamp(&self, item: &T) -> Option<DateTime<Utc>>;
}

/// `export_dataset`'s windows: the builder and its body, as set.
struct ExportWindows {
    call: ExportDataset,
    request: Result<types::ExportDatasetRequest, String>,
}

impl ExportWindows {
    fn request(&self) -> Option<&types::ExportDatasetRequest> {
        self.request.as_ref().ok()
    }
}

impl Windowed<types::ExportedComment> for ExportWindows {
    fn operation(&self) -> &'static str {
        ExportDataset::OPERATION_ID
    }

    fn invalid(&self) -> Option<String> {
        self.request.as_ref().err().cloned()
    }

    fn page_size(&self) -> Option<i64> {
        self.request().and_then(|r| r.limit)
    }

    fn range(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        self.request().map_or((None, None), |r| (r.from, r.to))
    }

    fn has_cursor(&self) -> bool {
        self.request().is_some_and(|r| r.continuation.is_some())
    }

    fn fetch(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        cursor: Option<String>,
    ) -> BoxFuture<'static, Result<Page<types::ExportedComment>, Error>> {
        let window = self
            .call
            .clone()
            .body_map(|body| body.from(Some(start)).to(Some(end)));
        Box::pin(page_of(window.at(cursor)))
    }

    fn timestamp(&self, item: &types::ExportedComment) -> Option<DateTime<Utc>> {
        match self.request().and_then(|r| r.order_by.as_ref()) {
            Some(types::ExportOrderBy::CreatedAt) => item.comment.created_at,
            _ => item.comment.timestamp,
        }
    }
}

/// `list_source_comments`' windows: the builder, as set.
struct SourceWindows(ListSourceComments);

impl Windowed<SourceComment> for SourceWindows {
    fn operation(&self) -> &'static str {
        ListSourceComments::OPERATION_ID
    }

    fn invalid(&self) -> Option<String> {
        None
    }

    fn page_size(&self) -> Option<i64> {
        set(&self.0.limit)
    }

    fn range(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (set(&self.0.from_timestamp), set(&self.0.to_timestamp))
    }

    fn has_cursor(&self) -> bool {
        self.0.after.is_some()
    }

    /// The window is `[from_timestamp, to_timestamp)` = `[start, end)`;
    /// its later pages are asked as every walk of this operation asks them
    /// ([`Walk::at`]: `after` instead of `from_timestamp`).
    fn fetch(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        cursor: Option<String>,
    ) -> BoxFuture<'static, Result<Page<SourceComment>, Error>> {
        let window = self.0.clone().from_timestamp(start).to_timestamp(end);
        Box::pin(page_of(window.at(cursor)))
    }

    fn timestamp(&self, item: &SourceComment) -> Option<DateTime<Utc>> {
        item.comment.timestamp
    }
}

impl ExportDataset {
    /// This export over several time windows at once; see [`parallel`](self).
    ///
    /// The builder is the template of every window: its path, its body's
    /// filters (`source_ids`, `comment_uids`, ...), `limit` and `order_by`
    /// go with every page; its body's `[from, to)` (both required) is the
    /// range to cut; it must not carry a `continuation` (resume from a
    /// [`ParallelState`] instead). Without an `order_by`, `timestamp` is
    /// sent, so that the window bounds and the boundary rule apply to a
    /// known timestamp. Call options set with `with_options` apply to every
    /// page.
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let request = cm_api::types::ExportDatasetRequest {
    ///     from: Some("2026-01-01T00:00:00Z".parse().unwrap()),
    ///     to: Some("2026-02-01T00:00:00Z".parse().unwrap()),
    ///     limit: Some(512),
    ///     ..Default::default()
    /// };
    /// let all: Vec<_> = client
    ///     .export_dataset()
    ///     .project("acme")
    ///     .dataset_name("triage")
    ///     .body(request)
    ///     .into_parallel()
    ///     .windows(16)
    ///     .concurrency(8)
    ///     .start()?
    ///     .try_collect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn into_parallel(self) -> ParallelWalk<types::ExportedComment> {
        let mut request = body::<_, types::ExportDatasetRequest>(&self.body);
        let call = match &mut request {
            Ok(request) if request.order_by.is_none() => {
                request.order_by = Some(types::ExportOrderBy::Timestamp);
                self.body(request.clone())
            }
            _ => self,
        };
        ParallelWalk::new(Arc::new(ExportWindows { call, request }))
    }
}

impl ListSourceComments {
    /// This listing (unstable private route) over several time windows at
    /// once; see [`parallel`](self).
    ///
    /// The builder is the template of every window: `limit` and the
    /// `include_*` flags go with every page; its `[from_timestamp,
    /// to_timestamp)` (both required) is the range to cut; it must not carry
    /// an `after` (resume from a [`ParallelState`] instead). Each window's
    /// first page is asked with `from_timestamp` = its start, later ones
    /// with `after`; every page carries `to_timestamp` = its end.
    ///
    /// ```no_run
    /// use chrono::{TimeZone, Utc};
    /// use futures::TryStreamExt;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let mut walk = client
    ///     .list_source_comments()
    ///     .project("acme")
    ///     .source_name("inbox")
    ///     .from_timestamp(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
    ///     .to_timestamp(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap())
    ///     .limit(256)
    ///     .into_parallel()
    ///     .split_at([Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()])
    ///     .ordered()
    ///     .start()?;
    /// while let Some(item) = walk.try_next().await? {
    ///     println!("{:?} {}", item.comment.timestamp, item.comment.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_parallel(self) -> ParallelWalk<SourceComment> {
        ParallelWalk::new(Arc::new(SourceWindows(self)))
    }
}

/// How the range is cut.
#[derive(Clone, Debug)]
enum Split {
    Equal(usize),
    At(Vec<DateTime<Utc>>),
}

/// A parallel walk to start: how to cut the range, how many pages in
/// flight, in which order to yield. From
/// [`ExportDataset::into_parallel`] or
/// [`ListSourceComments::into_parallel`]; [`start`](Self::start) checks
/// the settings and returns the stream.
///
/// ```no_run
/// # async fn run(client: cm_api::Client, request: cm_api::types::ExportDatasetRequest) -> Result<(), cm_api::Error> {
/// let walk = client
///     .export_dataset()
///     .project("acme")
///     .dataset_name("triage")
///     .body(request)
///     .into_parallel()
///     .windows(12)
///     .concurrency(6)
///     .ordered()
///     .buffer_pages(8);
/// println!("{} windows", walk.plan()?.windows.len());
/// let stream = walk.start()?;
/// # Ok(()) }
/// ```
#[must_use = "a parallel walk sends nothing until started and polled"]
pub struct ParallelWalk<T> {
    call: Arc<dyn Windowed<T>>,
    split: Option<Split>,
    concurrency: Option<usize>,
    ordered: bool,
    buffer_pages: usize,
    gate: Option<Arc<RateGate>>,
    resume: Option<ParallelState>,
}

impl<T: 'static> fmt::Debug for ParallelWalk<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelWalk")
            .field("operation", &self.call.operation())
            .field("split", &self.split)
            .field("concurrency", &self.concurrency)
            .field("ordered", &self.ordered)
            .field("buffer_pages", &self.buffer_pages)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> ParallelWalk<T> {
    fn new(call: Arc<dyn Windowed<T>>) -> Self {
        Self {
            call,
            split: None,
            concurrency: None,
            ordered: false,
            buffer_pages: DEFAULT_BUFFER_PAGES,
            gate: None,
            resume: None,
        }
    }

    /// Cuts `[from, to)` into `k` windows of equal length (from 1 to
    /// [`MAX_WINDOWS`], values outside are clamped; the default is
    /// [`DEFAULT_WINDOWS`]), inner boundaries rounded down to whole seconds.
    /// `k` is a speed setting, which does not change what the walk yields,
    /// so it is clamped rather than refused.
    pub fn windows(mut self, k: usize) -> Self {
        self.split = Some(Split::Equal(k.clamp(1, MAX_WINDOWS)));
        self
    }

    /// Cuts `[from, to)` at these instants, which must be strictly
    /// increasing and strictly between `from` and `to`: `n` instants make
    /// `n + 1` windows, `n` below [`MAX_WINDOWS`]. For comments known to be
    /// unevenly spread over time.
    ///
    /// Each instant is rounded down to a whole second, as the equal
    /// split's are (see [the boundary rule](self#windows-and-the-boundary-rule)):
    /// instants that round to the same second make one boundary, and one
    /// that rounds to `from` or before makes none. [`plan`](Self::plan)
    /// shows the windows as they will be sent.
    ///
    /// ```no_run
    /// # fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let request = cm_api::types::ExportDatasetRequest {
    ///     from: Some("2026-01-01T00:00:00Z".parse().unwrap()),
    ///     to: Some("2026-01-02T00:00:00Z".parse().unwrap()),
    ///     ..Default::default()
    /// };
    /// let plan = client
    ///     .export_dataset()
    ///     .project("acme")
    ///     .dataset_name("triage")
    ///     .body(request)
    ///     .into_parallel()
    ///     .split_at(["2026-01-01T08:30:00.750Z".parse().unwrap()])
    ///     .plan()?;
    /// assert_eq!(plan.windows[1].start, "2026-01-01T08:30:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    /// # Ok(()) }
    /// ```
    pub fn split_at(mut self, boundaries: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
        self.split = Some(Split::At(boundaries.into_iter().collect()));
        self
    }

    /// At most `n` pages in flight (at least 1); by default one per window.
    /// Windows with a lower start get the free slots first.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// Yields window by window, in time order: the items of a window only
    /// after every item of the windows before it.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Yields each page's items as soon as the page arrives, whatever its
    /// window (the default).
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// A window holds at most `n` pages (at least 1; by default
    /// [`DEFAULT_BUFFER_PAGES`]) fetched and not yet fully yielded, then
    /// waits for the consumer before fetching more.
    pub fn buffer_pages(mut self, n: usize) -> Self {
        self.buffer_pages = n.max(1);
        self
    }

    /// Runs every request under `gate`, shared with other walks or jobs
    /// hitting the same tenant; each walk has its own gate otherwise.
    pub fn rate_gate(mut self, gate: Arc<RateGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Starts from `state` (a previous walk's [`ParallelPaginated::state`])
    /// instead of cutting the range: its windows, cursors and progress are
    /// taken as they are. The request's other parameters must be the same
    /// as the first walk's (the page size may differ).
    pub fn resume(mut self, state: ParallelState) -> Self {
        self.resume = Some(state);
        self
    }

    fn invalid(&self, message: impl Into<String>) -> Error {
        Error::InvalidRequest {
            operation: Some(self.call.operation()),
            message: message.into(),
        }
    }

    /// The windows the walk will run, as the state it starts from; fails as
    /// [`start`](Self::start) would.
    ///
    /// ```no_run
    /// # fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let request = cm_api::types::ExportDatasetRequest {
    ///     from: Some("2026-01-01T00:00:00Z".parse().unwrap()),
    ///     to: Some("2026-01-01T00:00:30Z".parse().unwrap()),
    ///     ..Default::default()
    /// };
    /// let plan = client
    ///     .export_dataset()
    ///     .project("acme")
    ///     .dataset_name("triage")
    ///     .body(request)
    ///     .into_parallel()
    ///     .windows(3)
    ///     .plan()?;
    /// assert_eq!(plan.windows[1].start, "2026-01-01T00:00:10Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    /// # Ok(()) }
    /// ```
    pub fn plan(&self) -> Result<ParallelState, Error> {
        let operation = self.call.operation();
        if let Some(message) = self.call.invalid() {
            return Err(self.invalid(message));
        }
        check_page_size(operation, self.call.page_size())?;
        if self.call.has_cursor() {
            return Err(self.invalid(
                "a parallel walk starts every window at its beginning: resume from a ParallelState, not a cursor",
            ));
        }
        let (from, to) = self.call.range();
        if let Some(state) = &self.resume {
            return self.check_resumed(state, from, to);
        }
        let (Some(from), Some(to)) = (from, to) else {
            return Err(self.invalid("a parallel walk needs both ends of its time range"));
        };
        if from >= to {
            return Err(self.invalid(format!(
                "the time range is empty: {from} is not before {to}"
            )));
        }
        let inner = match &self.split {
            None => equal_split(from, to, DEFAULT_WINDOWS),
            Some(Split::Equal(k)) => equal_split(from, to, *k),
            Some(Split::At(boundaries)) => {
                if boundaries.len() >= MAX_WINDOWS {
                    return Err(self.invalid(format!(
                        "{} window boundaries make more than {MAX_WINDOWS} windows",
                        boundaries.len()
                    )));
                }
                let mut previous = from;
                for &boundary in boundaries {
                    if boundary <= previous || boundary >= to {
                        return Err(self.invalid(format!(
                            "window boundary {boundary} is not strictly increasing inside ({from}, {to})"
                        )));
                    }
                    previous = boundary;
                }
                whole_seconds(from, to, boundaries.iter().copied())
            }
        };
        let starts = std::iter::once(from).chain(inner.iter().copied());
        let ends = inner.iter().copied().chain(std::iter::once(to));
        Ok(ParallelState {
            operation: operation.to_owned(),
            windows: starts
                .zip(ends)
                .map(|(start, end)| WindowState {
                    start,
                    end,
                    cursor: None,
                    skip: 0,
                    done: false,
                })
                .collect(),
        })
    }

    fn check_resumed(
        &self,
        state: &ParallelState,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<ParallelState, Error> {
        let operation = self.call.operation();
        if self.split.is_some() {
            return Err(self.invalid(
                "a resumed walk takes its windows from the state: do not also set windows or split_at",
            ));
        }
        if state.operation != operation {
            return Err(self.invalid(format!(
                "the state is of a {} walk, not {operation}",
                state.operation
            )));
        }
        let (Some(first), Some(last)) = (state.windows.first(), state.windows.last()) else {
            return Err(self.invalid("the state has no window"));
        };
        if state.windows.len() > MAX_WINDOWS {
            return Err(self.invalid(format!(
                "the state has {} windows, more than {MAX_WINDOWS}",
                state.windows.len()
            )));
        }
        if from.is_some_and(|from| from != first.start) || to.is_some_and(|to| to != last.end) {
            return Err(self.invalid(format!(
                "the state covers [{}, {}), not the request's time range",
                first.start, last.end
            )));
        }
        for window in &state.windows {
            if window.start >= window.end {
                return Err(self.invalid(format!(
                    "the state has an empty window [{}, {})",
                    window.start, window.end
                )));
            }
        }
        for pair in state.windows.windows(2) {
            if pair[0].end > pair[1].start {
                return Err(self.invalid(format!(
                    "the state's windows overlap: [{}, {}) and [{}, {})",
                    pair[0].start, pair[0].end, pair[1].start, pair[1].end
                )));
            }
        }
        Ok(state.clone())
    }

    /// Checks the settings and returns the stream; nothing is sent before
    /// it is polled.
    ///
    /// Fails with [`Error::InvalidRequest`] when the time range is missing
    /// or empty, a boundary is out of order, there are [`MAX_WINDOWS`] or
    /// more boundaries, the page size is outside
    /// `1..=`[`MAX_PAGE_SIZE`](super::MAX_PAGE_SIZE), the request carries a
    /// cursor, or the state to resume from is of another operation, range
    /// or shape.
    pub fn start(self) -> Result<ParallelPaginated<T>, Error> {
        let state = self.plan()?;
        let windows: Vec<Run<T>> = state.windows.into_iter().map(Run::new).collect();
        let concurrency = self.concurrency.unwrap_or(windows.len()).max(1);
        Ok(ParallelPaginated {
            operation: self.call.operation(),
            call: self.call,
            gate: self.gate.unwrap_or_default(),
            windows,
            in_flight: FuturesUnordered::new(),
            concurrency,
            buffer_pages: self.buffer_pages,
            ordered: self.ordered,
            head: 0,
            arrivals: VecDeque::new(),
            pages: 0,
            out_of_window: 0,
            terminated: false,
        })
    }
}

/// The inner boundaries of an equal split of `[from, to)` into `k` (at
/// most [`MAX_WINDOWS`]): each `from + (to - from)·i/k`, through
/// [`whole_seconds`].
fn equal_split(from: DateTime<Utc>, to: DateTime<Utc>, k: usize) -> Vec<DateTime<Utc>> {
    const NANOS: i128 = 1_000_000_000;
    let span = to - from;
    let span = i128::from(span.num_seconds()) * NANOS + i128::from(span.subsec_nanos());
    let k = i128::try_from(k.clamp(1, MAX_WINDOWS)).unwrap_or(1);
    let instants = (1..k).filter_map(|i| {
        let offset = span * i / k;
        let seconds = i64::try_from(offset / NANOS)
            .ok()
            .and_then(TimeDelta::try_seconds)?;
        let nanos = TimeDelta::nanoseconds(i64::try_from(offset % NANOS).unwrap_or(0));
        from.checked_add_signed(seconds + nanos)
    });
    whole_seconds(from, to, instants)
}

/// Increasing instants as inner boundaries of `[from, to)`: each rounded
/// down to a whole second, kept when strictly after the previous one kept
/// (and `from`) and before `to`.
fn whole_seconds(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    instants: impl IntoIterator<Item = DateTime<Utc>>,
) -> Vec<DateTime<Utc>> {
    let mut boundaries = Vec::new();
    let mut previous = from;
    for instant in instants {
        let Some(boundary) = DateTime::from_timestamp(instant.timestamp(), 0) else {
            continue;
        };
        if boundary > previous && boundary < to {
            boundaries.push(boundary);
            previous = boundary;
        }
    }
    boundaries
}

/// Where a parallel walk stands, window by window: what
/// [`ParallelWalk::resume`] needs to yield every item not yet yielded, and
/// only those. Serialisable, to be saved between runs.
///
/// ```
/// let json = r#"{"operation": "export_dataset", "windows": [
///     {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "cursor": null, "skip": 0, "done": true},
///     {"start": "2026-01-02T00:00:00Z", "end": "2026-01-03T00:00:00Z", "cursor": "c7", "skip": 3, "done": false}
/// ]}"#;
/// let state: cm_api::paginate::parallel::ParallelState = serde_json::from_str(json).unwrap();
/// assert!(!state.is_finished());
/// assert_eq!(state.windows[1].cursor.as_deref(), Some("c7"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParallelState {
    /// The operation walked (`export_dataset`, `list_source_comments`); a
    /// state is only resumed by a walk of the same operation.
    pub operation: String,
    /// The windows, in time order.
    pub windows: Vec<WindowState>,
}

impl ParallelState {
    /// Whether every window is done.
    pub fn is_finished(&self) -> bool {
        self.windows.iter().all(|window| window.done)
    }
}

/// One window of a [`ParallelState`].
///
/// ```
/// # let state: cm_api::paginate::parallel::ParallelState = serde_json::from_str(
/// #     r#"{"operation": "export_dataset", "windows": [{"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}]}"#).unwrap();
/// let window = &state.windows[0];
/// // Not started: no cursor, nothing to skip.
/// assert_eq!((window.cursor.as_deref(), window.skip, window.done), (None, 0, false));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WindowState {
    /// The first instant of the window (included).
    pub start: DateTime<Utc>,
    /// The end of the window (excluded).
    pub end: DateTime<Utc>,
    /// The cursor of the first page not fully yielded; `None` for the
    /// window's first page (or, when `done`, nothing left).
    #[serde(default)]
    pub cursor: Option<String>,
    /// How many items from `cursor` on were already yielded: a resumed walk
    /// drops that many first.
    #[serde(default)]
    pub skip: u64,
    /// Whether the window's last page was fetched and every item of it yielded.
    #[serde(default)]
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fetch {
    /// The page at `next` is to be fetched.
    Idle,
    /// The page at `next` is being fetched.
    InFlight,
    /// The last page (one without a cursor) was fetched.
    Finished,
    /// A page failed, or repeated a cursor; the window goes no further.
    Failed,
}

/// A fetched page not yet fully yielded.
struct Held<T> {
    /// The cursor the page was fetched with.
    cursor: Option<String>,
    items: std::vec::IntoIter<T>,
    /// Items of the page (and of pages skipped before it) already yielded.
    yielded: u64,
}

/// One window of a running walk.
struct Run<T> {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The cursor of the page after the held ones.
    next: Option<String>,
    /// Items from `next` on still to drop (resumed from a `skip`).
    skip: u64,
    fetch: Fetch,
    held: VecDeque<Held<T>>,
    /// A failure of this window, yielded after its held pages.
    error: Option<Error>,
    seen: HashSet<String>,
    pages: u64,
}

impl<T> Run<T> {
    fn new(window: WindowState) -> Self {
        let seen = window.cursor.iter().cloned().collect();
        Self {
            start: window.start,
            end: window.end,
            next: window.cursor,
            skip: window.skip,
            fetch: if window.done {
                Fetch::Finished
            } else {
                Fetch::Idle
            },
            held: VecDeque::new(),
            error: None,
            seen,
            pages: 0,
        }
    }

    fn state(&self) -> WindowState {
        let (cursor, skip, done) = match self.held.front() {
            Some(held) => (held.cursor.clone(), held.yielded, false),
            None => (
                self.next.clone(),
                self.skip,
                self.fetch == Fetch::Finished && self.error.is_none(),
            ),
        };
        WindowState {
            start: self.start,
            end: self.end,
            cursor,
            skip,
            done,
        }
    }
}

type PageFuture<T> = BoxFuture<'static, (usize, Result<Page<T>, Error>)>;

/// The stream of a parallel walk, from [`ParallelWalk::start`]: the items of
/// every window, then the end. A failed window's error is yielded in its
/// place and the other windows go on; see [`parallel`](self).
///
/// Besides being a [`Stream`], it tells where it stands:
/// [`state`](Self::state) is what [`ParallelWalk::resume`] continues from.
pub struct ParallelPaginated<T> {
    operation: &'static str,
    call: Arc<dyn Windowed<T>>,
    gate: Arc<RateGate>,
    windows: Vec<Run<T>>,
    in_flight: FuturesUnordered<PageFuture<T>>,
    concurrency: usize,
    buffer_pages: usize,
    ordered: bool,
    /// Ordered: the window being yielded; those before it are over.
    head: usize,
    /// Unordered: one entry per held page or pending error, in arrival order.
    arrivals: VecDeque<usize>,
    pages: u64,
    out_of_window: u64,
    terminated: bool,
}

// No field is structurally pinned: the in-flight futures are boxed.
impl<T> Unpin for ParallelPaginated<T> {}

impl<T> fmt::Debug for ParallelPaginated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelPaginated")
            .field("operation", &self.operation)
            .field("windows", &self.windows.len())
            .field("in_flight", &self.in_flight.len())
            .field("pages", &self.pages)
            .field("ordered", &self.ordered)
            .field("terminated", &self.terminated)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> ParallelPaginated<T> {
    /// Where the walk stands: per window, the cursor and count from which a
    /// walk [resumed](ParallelWalk::resume) with it yields exactly the items
    /// this one has not yielded yet. Items fetched but not yet yielded
    /// count as not yielded.
    pub fn state(&self) -> ParallelState {
        ParallelState {
            operation: self.operation.to_owned(),
            windows: self.windows.iter().map(Run::state).collect(),
        }
    }

    /// Whether every window's last page was fetched and every item yielded.
    pub fn is_finished(&self) -> bool {
        self.windows
            .iter()
            .all(|run| run.fetch == Fetch::Finished && run.held.is_empty())
    }

    /// How many pages have been requested and answered so far, all windows
    /// together (failed requests included).
    pub fn pages_fetched(&self) -> u64 {
        self.pages
    }

    /// How many items the server returned outside their window's
    /// `[start, end)` and the walk dropped (a comment at a window's end
    /// returned by an inclusive upper bound: the next window yields it).
    pub fn out_of_window(&self) -> u64 {
        self.out_of_window
    }

    /// Starts the fetch of every window that may fetch, up to the
    /// concurrency.
    fn launch(&mut self) {
        let first = if self.ordered { self.head } else { 0 };
        for (index, run) in self.windows.iter_mut().enumerate().skip(first) {
            if self.in_flight.len() >= self.concurrency {
                return;
            }
            if run.fetch != Fetch::Idle || run.held.len() >= self.buffer_pages {
                continue;
            }
            run.fetch = Fetch::InFlight;
            let page = self.call.fetch(run.start, run.end, run.next.clone());
            let gate = Arc::clone(&self.gate);
            self.in_flight
                .push(Box::pin(async move { (index, gate.scope(page).await) }));
        }
    }

    /// Takes in the answer to window `index`'s fetch.
    fn complete(&mut self, index: usize, result: Result<Page<T>, Error>) {
        self.pages += 1;
        let call = &self.call;
        let Some(run) = self.windows.get_mut(index) else {
            return;
        };
        run.pages += 1;
        let page = match result {
            Ok(page) => page,
            Err(error) => {
                run.fetch = Fetch::Failed;
                run.error = Some(error);
                if !self.ordered {
                    self.arrivals.push_back(index);
                }
                return;
            }
        };
        let cursor = std::mem::replace(&mut run.next, page.next);
        let mut items = page.items;
        let before = items.len();
        let (start, end) = (run.start, run.end);
        items.retain(|item| {
            call.timestamp(item)
                .is_none_or(|at| start <= at && at < end)
        });
        self.out_of_window += (before - items.len()) as u64;
        let skipped = usize::try_from(run.skip)
            .unwrap_or(usize::MAX)
            .min(items.len());
        items.drain(..skipped);
        run.skip -= skipped as u64;
        if !items.is_empty() {
            run.held.push_back(Held {
                cursor,
                items: items.into_iter(),
                yielded: skipped as u64,
            });
            if !self.ordered {
                self.arrivals.push_back(index);
            }
        }
        run.fetch = match &run.next {
            None => Fetch::Finished,
            Some(next) if run.seen.insert(next.clone()) => Fetch::Idle,
            Some(_) => {
                run.error = Some(Error::CursorNotAdvancing {
                    operation: Some(self.operation),
                    pages: run.pages,
                });
                if !self.ordered {
                    self.arrivals.push_back(index);
                }
                Fetch::Failed
            }
        };
    }

    /// The next item (or error) that may be yielded now, if any.
    fn take(&mut self) -> Option<Result<T, Error>> {
        if self.ordered {
            while let Some(run) = self.windows.get_mut(self.head) {
                if let Some(item) = take_item(run) {
                    return Some(Ok(item));
                }
                if let Some(error) = run.error.take() {
                    self.head += 1;
                    return Some(Err(error));
                }
                match run.fetch {
                    Fetch::Finished | Fetch::Failed => self.head += 1,
                    Fetch::Idle | Fetch::InFlight => return None,
                }
            }
            None
        } else {
            while let Some(&index) = self.arrivals.front() {
                let Some(run) = self.windows.get_mut(index) else {
                    self.arrivals.pop_front();
                    continue;
                };
                let held = run.held.len();
                if let Some(item) = take_item(run) {
                    if run.held.len() < held {
                        // The last item of the page this entry stands for.
                        self.arrivals.pop_front();
                    }
                    return Some(Ok(item));
                }
                self.arrivals.pop_front();
                if let Some(error) = run.error.take() {
                    return Some(Err(error));
                }
            }
            None
        }
    }
}

/// The next item of `run`'s first held page; a page is dropped as soon as
/// its last item is taken, so the state never points at a page with
/// nothing left.
fn take_item<T>(run: &mut Run<T>) -> Option<T> {
    let held = run.held.front_mut()?;
    let item = held.items.next();
    held.yielded += 1;
    if held.items.len() == 0 {
        run.held.pop_front();
    }
    item
}

impl<T: Send + 'static> Stream for ParallelPaginated<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        loop {
            // Start what may start, and take in every answer already there,
            // before yielding: a window whose page just arrived asks for
            // its next one at once.
            this.launch();
            let idle = loop {
                match this.in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some((index, result))) => {
                        this.complete(index, result);
                        this.launch();
                    }
                    Poll::Ready(None) => break true,
                    Poll::Pending => break false,
                }
            };
            if let Some(item) = this.take() {
                return Poll::Ready(Some(item));
            }
            if !idle {
                // Woken by the next answer.
                return Poll::Pending;
            }
            // Nothing in flight and nothing to yield: the walk is over
            // unless taking moved on to a window that can fetch.
            this.launch();
            if this.in_flight.is_empty() {
                this.terminated = true;
                return Poll::Ready(None);
            }
        }
    }
}

impl<T: Send + 'static> FusedStream for ParallelPaginated<T> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn equal_split_rounds_inner_boundaries_down_to_seconds() {
        let b = equal_split(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:10Z"), 3);
        assert_eq!(b, [at("2026-01-01T00:00:03Z"), at("2026-01-01T00:00:06Z")]);
        let b = equal_split(
            at("2026-01-01T00:00:00.5Z"),
            at("2026-01-01T00:01:00.5Z"),
            2,
        );
        assert_eq!(b, [at("2026-01-01T00:00:30Z")]);
    }

    #[test]
    fn a_range_shorter_than_k_seconds_gets_fewer_windows() {
        let b = equal_split(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:02Z"), 8);
        assert_eq!(b, [at("2026-01-01T00:00:01Z")]);
        let b = equal_split(
            at("2026-01-01T00:00:00.2Z"),
            at("2026-01-01T00:00:00.9Z"),
            8,
        );
        assert!(b.is_empty());
    }

    #[test]
    fn equal_split_of_a_long_range_does_not_overflow() {
        let b = equal_split(at("1000-01-01T00:00:00Z"), at("9000-01-01T00:00:00Z"), 4);
        assert_eq!(b.len(), 3);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }
}
