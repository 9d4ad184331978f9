//! Paginated operations as async streams of items.
//!
//! One generic walker, [`paginate`], turns "cursor in, page out" into a
//! [`Stream`] of items; [`Client::paginate`] puts a thin helper per paginated
//! operation on top. The helpers share one adapter: each only says how to
//! set its cursor on the operation's request and how to split a response
//! into items and the next cursor. Every helper:
//!
//! * keeps the request's filters and parameters on every page (only the
//!   cursor changes);
//! * stops exactly when a page comes back without a cursor;
//! * fails with [`Error::CursorNotAdvancing`] instead of looping when the
//!   server hands back a cursor it already gave;
//! * checks the page size (`limit`) against [`MAX_PAGE_SIZE`] before
//!   sending anything;
//! * after an error, has yielded every item of the pages before it and
//!   exposes [`Paginated::resume_cursor`], from which a new walk continues
//!   with nothing lost.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use cm_api::types::ExportDatasetRequest;
//!
//! # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
//! let request = ExportDatasetRequest { limit: Some(256), ..Default::default() };
//! let mut comments = client.paginate().export_dataset("acme", "triage", request);
//! while let Some(exported) = comments.try_next().await? {
//!     println!("{}", exported.comment.id);
//! }
//! # Ok(()) }
//! ```
//!
//! | helper | operation | cursor |
//! | --- | --- | --- |
//! | [`Paginators::export_dataset`] | `export_dataset` | body `continuation` |
//! | [`Paginators::audit_events`], [`Paginators::audit_event_pages`] | `query_audit_events` | body `continuation` |
//! | [`Paginators::source_comments`] | `list_source_comments` | query `after` (first page: `from_timestamp`) |
//! | [`Paginators::query_comments`] | `query_comments` | body `continuation` |
//! | [`Paginators::recent_comments`] | `list_recent_comments` | body `continuation` |
//! | [`Paginators::bucket_emails`] | `list_bucket_emails` | body `continuation` |
//! | [`Paginators::labellings`] | `get_labellings` | query `after` |
//!
//! The two operations with a timestamp range, `export_dataset` and
//! `list_source_comments`, can also be walked as several time windows at
//! once: [`Paginators::export_dataset_parallel`] and
//! [`Paginators::source_comments_parallel`], see [`parallel`].

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{FusedStream, Stream};

use crate::client::Client;
use crate::error::Error;
use crate::{Operation, operations, types};

pub mod parallel;

/// The largest page size (`limit`) the helpers accept. The specification
/// states no maximum; this is a conservative cap chosen by this crate, and a
/// larger value is rejected with [`Error::InvalidRequest`] before anything
/// is sent.
pub const MAX_PAGE_SIZE: i64 = 1024;

/// One page: its items and the cursor of the next page (`None` on the last).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Page<T, C = String> {
    /// The items, in server order.
    pub items: Vec<T>,
    /// The cursor to fetch the next page with; `None` ends the walk.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page of `items` followed by the page at `next`, if any.
    pub fn new(items: Vec<T>, next: Option<C>) -> Self {
        Self { items, next }
    }
}

type Fetch<'a, T, C> =
    Box<dyn FnMut(Option<C>) -> BoxFuture<'a, Result<Page<T, C>, Error>> + Send + 'a>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Another page is to be fetched with `next`.
    More,
    /// The last page had no cursor.
    Finished,
    /// The last page repeated a cursor: report it once its items are out.
    Repeated,
    /// An error was reported; the stream is over.
    Failed,
}

/// Walks the pages of `fetch`, starting at `start` (`None` for the first
/// page), and yields their items one by one.
///
/// `fetch` is called with the cursor of each page in turn and returns the
/// page's items with the next cursor. Fetching is lazy: a page is requested
/// only when the previous one has been consumed, so at most one page is
/// held in memory.
///
/// ```
/// use futures::TryStreamExt;
/// use cm_api::paginate::{paginate, Page};
///
/// # futures::executor::block_on(async {
/// // Three pages of a fake API: cursors "1" and "2", then the end.
/// let walk = paginate(None, |cursor: Option<String>| async move {
///     Ok(match cursor.as_deref() {
///         None => Page::new(vec![1, 2], Some("1".to_owned())),
///         Some("1") => Page::new(vec![3], Some("2".to_owned())),
///         _ => Page::new(vec![4, 5], None),
///     })
/// });
/// let items: Vec<i32> = walk.try_collect().await?;
/// assert_eq!(items, [1, 2, 3, 4, 5]);
/// # Ok::<(), cm_api::Error>(()) }).unwrap();
/// ```
pub fn paginate<'a, T, C, F, Fut>(start: Option<C>, mut fetch: F) -> Paginated<'a, T, C>
where
    F: FnMut(Option<C>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page<T, C>, Error>> + Send + 'a,
    T: Send + 'a,
    C: Clone + Eq + Hash + Send + 'a,
{
    Paginated::new(start, Box::new(move |cursor| Box::pin(fetch(cursor))))
}

/// The stream returned by [`paginate`] and the [`Paginators`] helpers: the
/// items of every page, in order, then the end, or one error and the end.
///
/// Besides being a [`Stream`], it tells where it stands:
/// [`resume_cursor`](Self::resume_cursor) is the cursor a new walk would
/// start from to get every item not yet yielded, and
/// [`is_finished`](Self::is_finished) whether the server said there is
/// nothing more.
pub struct Paginated<'a, T, C = String> {
    fetch: Fetch<'a, T, C>,
    in_flight: Option<BoxFuture<'a, Result<Page<T, C>, Error>>>,
    buffer: std::vec::IntoIter<T>,
    /// The cursor the buffered page was fetched with.
    page_cursor: Option<C>,
    /// The cursor of the page after the buffered one.
    next: Option<C>,
    seen: HashSet<C>,
    pages: u64,
    state: State,
    operation: Option<&'static str>,
}

// No field is structurally pinned: the in-flight future is boxed.
impl<T, C> Unpin for Paginated<'_, T, C> {}

impl<T, C: fmt::Debug> fmt::Debug for Paginated<'_, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paginated")
            .field("operation", &self.operation)
            .field("pages", &self.pages)
            .field("buffered", &self.buffer.len())
            .field("next", &self.next)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'a, T, C: Clone + Eq + Hash> Paginated<'a, T, C> {
    fn new(start: Option<C>, fetch: Fetch<'a, T, C>) -> Self {
        let mut seen = HashSet::new();
        if let Some(start) = &start {
            seen.insert(start.clone());
        }
        Self {
            fetch,
            in_flight: None,
            buffer: Vec::new().into_iter(),
            page_cursor: start.clone(),
            next: start,
            seen,
            pages: 0,
            state: State::More,
            operation: None,
        }
    }

    fn operation(mut self, operation: &'static str) -> Self {
        self.operation = Some(operation);
        self
    }

    /// The cursor from which a new walk yields every item this one has not
    /// yielded yet: after an error, pass it back (as the request's
    /// `continuation`, `after`, ...) to resume exactly where the walk
    /// stopped. `None` means "from the start" unless
    /// [`is_finished`](Self::is_finished).
    ///
    /// While a page is only partly consumed this is that page's cursor, so a
    /// walk resumed then repeats the page's items already yielded.
    pub fn resume_cursor(&self) -> Option<&C> {
        if self.buffer.len() > 0 {
            self.page_cursor.as_ref()
        } else {
            self.next.as_ref()
        }
    }

    /// Whether the server sent the last page (one without a cursor) and
    /// every item has been yielded.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished && self.buffer.len() == 0
    }

    /// How many pages have been requested and answered so far.
    pub fn pages_fetched(&self) -> u64 {
        self.pages
    }

    fn accept(&mut self, page: Page<T, C>) {
        self.state = match &page.next {
            None => State::Finished,
            Some(next) if self.seen.insert(next.clone()) => State::More,
            Some(_) => State::Repeated,
        };
        self.page_cursor = std::mem::replace(&mut self.next, page.next);
        self.buffer = page.items.into_iter();
    }
}

impl<T, C: Clone + Eq + Hash> Stream for Paginated<'_, T, C> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.buffer.next() {
                return Poll::Ready(Some(Ok(item)));
            }
            match this.state {
                State::Finished | State::Failed => return Poll::Ready(None),
                State::Repeated => {
                    this.state = State::Failed;
                    return Poll::Ready(Some(Err(Error::CursorNotAdvancing {
                        operation: this.operation,
                        pages: this.pages,
                    })));
                }
                State::More => {}
            }
            let next = this.next.clone();
            let fetch = &mut this.fetch;
            let future = this.in_flight.get_or_insert_with(|| fetch(next));
            let result = match future.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            };
            this.in_flight = None;
            this.pages += 1;
            match result {
                Ok(page) => this.accept(page),
                Err(error) => {
                    this.state = State::Failed;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let buffered = self.buffer.len();
        match self.state {
            State::Finished | State::Failed => (buffered, Some(buffered)),
            State::More | State::Repeated => (buffered, None),
        }
    }
}

impl<T, C: Clone + Eq + Hash> FusedStream for Paginated<'_, T, C> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Finished | State::Failed) && self.buffer.len() == 0
    }
}

fn check_page_size(operation: &'static str, limit: Option<i64>) -> Result<(), Error> {
    match limit {
        Some(limit) if !(1..=MAX_PAGE_SIZE).contains(&limit) => Err(Error::InvalidRequest {
            operation: Some(operation),
            message: format!("page size {limit} is outside 1..={MAX_PAGE_SIZE}"),
        }),
        _ => Ok(()),
    }
}

/// A walk that fails on its first poll, for invalid parameters.
fn invalid<T: Send + 'static>(error: Error) -> Paginated<'static, T> {
    let mut error = Some(error);
    paginate(None, move |_| {
        let error = error.take().unwrap_or_else(|| Error::InvalidRequest {
            operation: None,
            message: "invalid pagination parameters".to_owned(),
        });
        async move { Err(error) }
    })
}

/// Query parameters of [`Paginators::source_comments`]: a timestamp window
/// and the page size. Every page is asked with the same window.
///
/// ```
/// use chrono::{TimeZone, Utc};
///
/// let query = cm_api::paginate::SourceCommentsQuery::default()
///     .from(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
///     .to(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap())
///     .page_size(256);
/// # let _ = query;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SourceCommentsQuery {
    /// Only comments at or after this time (`from_timestamp`).
    pub from: Option<DateTime<Utc>>,
    /// Only comments before this time (`to_timestamp`).
    pub to: Option<DateTime<Utc>>,
    /// Comments per page (`limit`), at most [`MAX_PAGE_SIZE`].
    pub page_size: Option<i64>,
    /// Also return each comment's thread properties.
    pub include_thread_properties: bool,
    /// Message bodies also carry their rich-text markup.
    pub include_markup: bool,
    /// Resume after this cursor (a previous walk's
    /// [`resume_cursor`](Paginated::resume_cursor)) instead of starting at `from`.
    pub after: Option<String>,
}

impl SourceCommentsQuery {
    /// Only comments at or after `from`.
    pub fn from(mut self, from: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self
    }

    /// Only comments before `to`.
    pub fn to(mut self, to: DateTime<Utc>) -> Self {
        self.to = Some(to);
        self
    }

    /// Comments per page, at most [`MAX_PAGE_SIZE`].
    pub fn page_size(mut self, size: i64) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Also return each comment's thread properties.
    pub fn include_thread_properties(mut self, yes: bool) -> Self {
        self.include_thread_properties = yes;
        self
    }

    /// Message bodies also carry their rich-text markup.
    pub fn include_markup(mut self, yes: bool) -> Self {
        self.include_markup = yes;
        self
    }

    /// Resume after `cursor`, a previous walk's [`Paginated::resume_cursor`].
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }
}

/// A comment of [`Paginators::source_comments`], with its thread properties
/// when they were asked for.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SourceComment {
    /// The comment.
    pub comment: types::Comment,
    /// Its thread properties, with `include_thread_properties`.
    pub thread_properties: Option<types::ThreadProperties>,
}

/// Query parameters of [`Paginators::labellings`]: the reviewed comments of
/// one source, page by page.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LabellingsQuery {
    /// The source whose reviewed comments to walk (`source_id`).
    pub source_id: String,
    /// Comments per page (`limit`), at most [`MAX_PAGE_SIZE`].
    pub page_size: Option<i64>,
    /// Also return the latest model's predictions.
    pub return_predictions: bool,
    /// Resume after this cursor.
    pub after: Option<String>,
}

impl LabellingsQuery {
    /// The reviewed comments of the source with id `source_id`.
    pub fn new(source_id: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            ..Self::default()
        }
    }

    /// Comments per page, at most [`MAX_PAGE_SIZE`].
    pub fn page_size(mut self, size: i64) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Also return the latest model's predictions.
    pub fn return_predictions(mut self, yes: bool) -> Self {
        self.return_predictions = yes;
        self
    }

    /// Resume after `cursor`, a previous walk's [`Paginated::resume_cursor`].
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }
}

impl Client {
    /// The paginated operations as streams of items; see [`crate::paginate`].
    pub fn paginate(&self) -> Paginators<'_> {
        Paginators { client: self }
    }
}

/// One helper per paginated operation, from [`Client::paginate`].
///
/// The streams own a clone of the client, so they are `'static` and can be
/// moved to another task. Each takes the operation's request (or query) as
/// a template: its filters are sent with every page, its `limit` is the
/// page size and its cursor, if set, is where the walk starts.
#[derive(Clone, Copy, Debug)]
pub struct Paginators<'c> {
    client: &'c Client,
}

/// One paginated operation, as the shared adapter ([`Paginators::walk`])
/// sees it: the request template (path parameters plus the request or
/// query) and how to build the operation's call for the page at a cursor.
/// How to split a response into a [`Page`] is given next to it, per helper,
/// so one call can back several helpers (the audit events).
trait PagedCall: Send + Sync + 'static {
    /// The decoded body of one page.
    type Response;
    /// The operation's builder; its [`Operation::OPERATION_ID`] names the
    /// walk in errors.
    type Call: Operation<Output = Self::Response>;

    /// The page size (`limit`) asked for, checked against [`MAX_PAGE_SIZE`].
    fn page_size(&self) -> Option<i64>;

    /// The cursor the walk starts from; `None` for the first page.
    fn start(&self) -> Option<String>;

    /// The call for the page at `cursor` (`None`: the first page), with
    /// every other parameter of the template unchanged.
    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call;
}

/// `export_dataset`: cursor in the body's `continuation`.
struct ExportDataset {
    project: String,
    dataset: String,
    request: types::ExportDatasetRequest,
}

impl PagedCall for ExportDataset {
    type Response = types::ExportDatasetResponse;
    type Call = operations::ExportDataset;

    fn page_size(&self) -> Option<i64> {
        self.request.limit
    }

    fn start(&self) -> Option<String> {
        self.request.continuation.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let body = types::ExportDatasetRequest {
            continuation: cursor,
            ..self.request.clone()
        };
        client
            .export_dataset()
            .project(self.project.as_str())
            .dataset_name(self.dataset.as_str())
            .body(body)
    }
}

/// `query_audit_events`: cursor in the body's `continuation`.
struct AuditEvents(types::QueryAuditEventsRequest);

impl PagedCall for AuditEvents {
    type Response = types::QueryAuditEventsResponse;
    type Call = operations::QueryAuditEvents;

    fn page_size(&self) -> Option<i64> {
        self.0.limit
    }

    fn start(&self) -> Option<String> {
        self.0.continuation.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let body = types::QueryAuditEventsRequest {
            continuation: cursor,
            ..self.0.clone()
        };
        client.query_audit_events().body(body)
    }
}

/// `list_source_comments`: cursor in the query's `after`; the first page
/// is asked with `from_timestamp` instead.
struct SourceComments {
    project: String,
    source: String,
    query: SourceCommentsQuery,
}

impl PagedCall for SourceComments {
    type Response = types::SourceCommentsResponse;
    type Call = operations::ListSourceComments;

    fn page_size(&self) -> Option<i64> {
        self.query.page_size
    }

    fn start(&self) -> Option<String> {
        self.query.after.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let query = &self.query;
        let mut call = client
            .list_source_comments()
            .project(self.project.as_str())
            .source_name(self.source.as_str());
        match cursor {
            Some(after) => call = call.after(after),
            None => {
                if let Some(from) = query.from {
                    call = call.from_timestamp(from);
                }
            }
        }
        if let Some(to) = query.to {
            call = call.to_timestamp(to);
        }
        if let Some(limit) = query.page_size {
            call = call.limit(limit);
        }
        if query.include_thread_properties {
            call = call.include_thread_properties(true);
        }
        if query.include_markup {
            call = call.include_markup(true);
        }
        call
    }
}

/// `query_comments`: cursor in the body's `continuation`.
struct QueryComments {
    project: String,
    dataset: String,
    request: types::QueryCommentsRequest,
}

impl PagedCall for QueryComments {
    type Response = types::QueryCommentsResponse;
    type Call = operations::QueryComments;

    fn page_size(&self) -> Option<i64> {
        self.request.limit
    }

    fn start(&self) -> Option<String> {
        self.request.continuation.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let body = types::QueryCommentsRequest {
            continuation: cursor,
            ..self.request.clone()
        };
        client
            .query_comments()
            .project(self.project.as_str())
            .dataset_name(self.dataset.as_str())
            .body(body)
    }
}

/// `list_recent_comments`: cursor in the body's `continuation`.
struct RecentComments {
    project: String,
    dataset: String,
    request: types::RecentCommentsRequest,
}

impl PagedCall for RecentComments {
    type Response = types::RecentCommentsResponse;
    type Call = operations::ListRecentComments;

    fn page_size(&self) -> Option<i64> {
        Some(self.request.limit)
    }

    fn start(&self) -> Option<String> {
        self.request.continuation.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let body = types::RecentCommentsRequest {
            continuation: cursor,
            ..self.request.clone()
        };
        client
            .list_recent_comments()
            .project(self.project.as_str())
            .dataset_name(self.dataset.as_str())
            .body(body)
    }
}

/// `list_bucket_emails`: cursor in the body's `continuation`.
struct BucketEmails {
    project: String,
    bucket: String,
    request: types::BucketEmailsPageRequest,
}

impl PagedCall for BucketEmails {
    type Response = types::EmailListResponse;
    type Call = operations::ListBucketEmails;

    fn page_size(&self) -> Option<i64> {
        self.request.limit
    }

    fn start(&self) -> Option<String> {
        self.request.continuation.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let body = types::BucketEmailsPageRequest {
            continuation: cursor,
            ..self.request.clone()
        };
        client
            .list_bucket_emails()
            .project(self.project.as_str())
            .bucket_name(self.bucket.as_str())
            .body(body)
    }
}

/// `get_labellings`: cursor in the query's `after`.
struct Labellings {
    project: String,
    dataset: String,
    query: LabellingsQuery,
}

impl PagedCall for Labellings {
    type Response = types::LabellingsResponse;
    type Call = operations::GetLabellings;

    fn page_size(&self) -> Option<i64> {
        self.query.page_size
    }

    fn start(&self) -> Option<String> {
        self.query.after.clone()
    }

    fn call(&self, client: &Client, cursor: Option<String>) -> Self::Call {
        let query = &self.query;
        let mut call = client
            .get_labellings()
            .project(self.project.as_str())
            .dataset_name(self.dataset.as_str())
            .source_id(query.source_id.as_str());
        if let Some(after) = cursor {
            call = call.after(after);
        }
        if let Some(limit) = query.page_size {
            call = call.limit(limit);
        }
        if query.return_predictions {
            call = call.return_predictions(true);
        }
        call
    }
}

/// One page of `export_dataset`.
fn export_page(page: types::ExportDatasetResponse) -> Page<types::ExportedComment> {
    Page::new(page.comments, page.continuation)
}

/// One page of `list_source_comments`: each comment with its thread
/// properties, paired by position.
fn source_comments_page(page: types::SourceCommentsResponse) -> Page<SourceComment> {
    let mut properties = page.thread_properties.into_iter();
    let items = page
        .comments
        .into_iter()
        .map(|comment| SourceComment {
            comment,
            thread_properties: properties.next(),
        })
        .collect();
    Page::new(items, page.continuation)
}

impl Paginators<'_> {
    /// The shared adapter: checks the page size, then walks the pages of
    /// `paged` on a clone of the client, sending each page's call and
    /// splitting its response with `split`.
    fn walk<P: PagedCall, T: Send + 'static>(
        &self,
        paged: P,
        split: fn(P::Response) -> Page<T>,
    ) -> Paginated<'static, T> {
        let operation = <P::Call as Operation>::OPERATION_ID;
        if let Err(error) = check_page_size(operation, paged.page_size()) {
            return invalid(error);
        }
        let client = self.client.clone();
        let paged = Arc::new(paged);
        paginate(paged.start(), move |cursor| {
            let (client, paged) = (client.clone(), Arc::clone(&paged));
            async move {
                let response = paged.call(&client, cursor).send().await?.into_inner();
                Ok(split(response))
            }
        })
        .operation(operation)
    }

    /// `export_dataset`: the dataset's comments with annotations and
    /// predictions.
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let request = cm_api::types::ExportDatasetRequest {
    ///     source_ids: vec!["18ba5ce699f8da1f".into()],
    ///     limit: Some(512),
    ///     ..Default::default()
    /// };
    /// let all: Vec<_> = client.paginate().export_dataset("acme", "triage", request).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn export_dataset(
        &self,
        project: &str,
        dataset: &str,
        request: types::ExportDatasetRequest,
    ) -> Paginated<'static, types::ExportedComment> {
        let (project, dataset) = (project.to_owned(), dataset.to_owned());
        self.walk(
            ExportDataset {
                project,
                dataset,
                request,
            },
            export_page,
        )
    }

    /// `query_audit_events`: the tenant's audit events, newest first.
    /// The users, projects, ... the events refer to are on each page; use
    /// [`audit_event_pages`](Self::audit_event_pages) to keep them.
    pub fn audit_events(
        &self,
        request: types::QueryAuditEventsRequest,
    ) -> Paginated<'static, types::AuditEvent> {
        self.walk(AuditEvents(request), |page| {
            Page::new(page.audit_events, page.continuation)
        })
    }

    /// `query_audit_events`, one whole page (events plus the users,
    /// projects, ... they refer to) per item. Empty pages are yielded too.
    pub fn audit_event_pages(
        &self,
        request: types::QueryAuditEventsRequest,
    ) -> Paginated<'static, types::QueryAuditEventsResponse> {
        self.walk(AuditEvents(request), |mut page| {
            let next = page.continuation.take();
            Page::new(vec![page], next)
        })
    }

    /// `list_source_comments` (unstable private route): a source's comments
    /// in increasing timestamp order, within the query's time window.
    ///
    /// The first page is asked with `from_timestamp`, later ones with
    /// `after` set to the previous page's `continuation`; `to_timestamp`,
    /// `limit` and the `include_*` flags go with every page.
    pub fn source_comments(
        &self,
        project: &str,
        source: &str,
        query: SourceCommentsQuery,
    ) -> Paginated<'static, SourceComment> {
        let (project, source) = (project.to_owned(), source.to_owned());
        self.walk(
            SourceComments {
                project,
                source,
                query,
            },
            source_comments_page,
        )
    }

    /// `query_comments` (unstable private route): the dataset's comments
    /// matching the request's filter, in its order, with annotations. The
    /// cursor travels in the body's `continuation`.
    pub fn query_comments(
        &self,
        project: &str,
        dataset: &str,
        request: types::QueryCommentsRequest,
    ) -> Paginated<'static, types::AnnotatedComment> {
        let (project, dataset) = (project.to_owned(), dataset.to_owned());
        self.walk(
            QueryComments {
                project,
                dataset,
                request,
            },
            |page| Page::new(page.results, page.continuation),
        )
    }

    /// `list_recent_comments` (unstable private route): the dataset's
    /// comments matching a filter, newest first, with annotations.
    pub fn recent_comments(
        &self,
        project: &str,
        dataset: &str,
        request: types::RecentCommentsRequest,
    ) -> Paginated<'static, types::AnnotatedComment> {
        let (project, dataset) = (project.to_owned(), dataset.to_owned());
        self.walk(
            RecentComments {
                project,
                dataset,
                request,
            },
            |page| Page::new(page.results, page.continuation),
        )
    }

    /// `list_bucket_emails` (unstable private route, the one the vendor's
    /// own client pages with): the raw emails stored in a bucket.
    pub fn bucket_emails(
        &self,
        project: &str,
        bucket: &str,
        request: types::BucketEmailsPageRequest,
    ) -> Paginated<'static, types::Email> {
        let (project, bucket) = (project.to_owned(), bucket.to_owned());
        self.walk(
            BucketEmails {
                project,
                bucket,
                request,
            },
            |page| Page::new(page.emails, page.continuation),
        )
    }

    /// `get_labellings` (unstable private route): the reviewed comments of
    /// one source with their annotations.
    ///
    /// Unlike the other routes, this one may keep sending an `after` on its
    /// last page, so the walk also ends at the first *empty* page (as the
    /// vendor's own client does).
    pub fn labellings(
        &self,
        project: &str,
        dataset: &str,
        query: LabellingsQuery,
    ) -> Paginated<'static, types::AnnotatedComment> {
        let (project, dataset) = (project.to_owned(), dataset.to_owned());
        self.walk(
            Labellings {
                project,
                dataset,
                query,
            },
            |page| {
                let next = page.after.filter(|_| !page.results.is_empty());
                Page::new(page.results, next)
            },
        )
    }
}
