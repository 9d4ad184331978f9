//! Paginated operations as async streams of items.
//!
//! The builder of every paginated operation has `.into_stream()` (its
//! items) and `.into_pages()` (its pages, whole): the one way to walk pages,
//! see [`builders`] for the list. Both run on one generic walker,
//! [`paginate`], which turns "cursor in, page out" into a [`Stream`]. Every
//! walk:
//!
//! * keeps every parameter and body field set on the builder on every page
//!   (only the cursor changes);
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
//! let mut comments = client
//!     .export_dataset()
//!     .project("acme")
//!     .dataset_name("triage")
//!     .body(request)
//!     .into_stream();
//! while let Some(exported) = comments.try_next().await? {
//!     println!("{}", exported.comment.id);
//! }
//! # Ok(()) }
//! ```
//!
//! The two operations with a timestamp range, `export_dataset` and
//! `list_source_comments`, can also be walked as several time windows at
//! once with `.into_parallel()`: see [`parallel`].

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FusedStream, Stream};

use crate::error::Error;
use crate::types;

pub mod builders;
pub mod parallel;

/// The largest page size (`limit`) a walk accepts. The specification
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

/// The stream returned by [`paginate`] and every builder's `into_stream`: the
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

/// A comment of `list_source_comments`, with its thread properties when
/// they were asked for (`include_thread_properties`): the item of
/// [`ListSourceComments::into_stream`](crate::operations::ListSourceComments::into_stream).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SourceComment {
    /// The comment.
    pub comment: types::Comment,
    /// Its thread properties, with `include_thread_properties`.
    pub thread_properties: Option<types::ThreadProperties>,
}
