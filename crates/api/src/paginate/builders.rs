//! `.into_stream()` and `.into_pages()` on the builder of every paginated
//! operation: the one way to walk pages.
//!
//! The builder is the template: every parameter and body field set on it
//! goes with every page, and only the cursor changes (set on a clone of the
//! builder for each page). Its page size (`limit`) is checked against
//! [`MAX_PAGE_SIZE`](super::MAX_PAGE_SIZE) before anything is sent, and a
//! cursor set on it is where the walk starts. The walk itself is
//! [`paginate`]'s: see the [module](super) for how it
//! ends, fails and resumes.
//!
//! | builder | cursor |
//! | --- | --- |
//! | [`ExportDataset`] | body `continuation` |
//! | [`QueryAuditEvents`] | body `continuation` |
//! | [`ListSourceComments`] | query `after` (the first page: `from_timestamp`) |
//! | [`QueryComments`] | body `continuation` |
//! | [`ListRecentComments`] | body `continuation` |
//! | [`ListBucketEmails`] | body `continuation` |
//! | [`QueryBucketEmails`] | body `continuation` |
//! | [`GetLabellings`] | query `after` |

use super::{Page, Paginated, SourceComment, check_page_size, invalid, paginate};
use crate::error::Error;
use crate::operations::{
    ExportDataset, GetLabellings, ListBucketEmails, ListRecentComments, ListSourceComments,
    QueryAuditEvents, QueryBucketEmails, QueryComments,
};
use crate::{Operation, types};

/// The operations whose builders have `into_stream` and `into_pages`: every
/// operation of the spec whose answer carries a cursor it also accepts (a
/// contract test, `tests/tests/pagination.rs`, derives the list from the spec
/// and compares).
pub const OPERATIONS: &[&str] = &[
    ExportDataset::OPERATION_ID,
    QueryAuditEvents::OPERATION_ID,
    ListSourceComments::OPERATION_ID,
    QueryComments::OPERATION_ID,
    ListRecentComments::OPERATION_ID,
    ListBucketEmails::OPERATION_ID,
    QueryBucketEmails::OPERATION_ID,
    GetLabellings::OPERATION_ID,
];

/// How to walk the pages of one paginated operation's builder (and of
/// each window of a [`parallel`](super::parallel) walk).
pub(super) trait Walk: Operation + Clone + Send + 'static {
    /// One item of a page.
    type Item: Send + 'static;

    /// The page size asked for and the cursor to start from, as set.
    fn limit_and_start(&self) -> (Option<i64>, Option<String>);

    /// This builder for the page at `cursor`; `None`: the first page, as set.
    fn at(&self, cursor: Option<String>) -> Self;

    /// The cursor of the next page; `None` on the last.
    fn next(page: &Self::Output) -> Option<String>;

    /// The items of a page.
    fn items(page: Self::Output) -> Vec<Self::Item>;
}

/// Walks `builder`'s pages, splitting each with `split`.
fn walk<W: Walk, T: Send + 'static>(
    builder: W,
    split: fn(W::Output) -> Page<T>,
) -> Paginated<'static, T> {
    let (limit, start) = builder.limit_and_start();
    if let Err(error) = check_page_size(W::OPERATION_ID, limit) {
        return invalid(error);
    }
    paginate(start, move |cursor| {
        let call = builder.at(cursor);
        async move { Ok(split(call.send().await?.into_inner())) }
    })
    .operation(W::OPERATION_ID)
}

fn items<W: Walk>(page: W::Output) -> Page<W::Item> {
    let next = W::next(&page);
    Page::new(W::items(page), next)
}

/// Sends `call` (a builder already [`at`](Walk::at) its page) and splits
/// the answer into its items and the next cursor.
pub(super) async fn page_of<W: Walk>(call: W) -> Result<Page<W::Item>, Error> {
    Ok(items::<W>(call.send().await?.into_inner()))
}

fn whole<W: Walk>(page: W::Output) -> Page<W::Output> {
    let next = W::next(&page);
    Page::new(vec![page], next)
}

/// The value kept for a parameter, when it was set and converted.
pub(super) fn set<T: Clone>(value: &Option<Result<T, String>>) -> Option<T> {
    value.as_ref().and_then(|v| v.as_ref().ok()).cloned()
}

/// The body set so far, converted: the builder's own error when a value
/// set on it failed its conversion, or the body's when it is incomplete.
pub(super) fn body<B, X>(body: &Result<B, String>) -> Result<X, String>
where
    B: Clone,
    X: TryFrom<B>,
    X::Error: std::fmt::Display,
{
    let body = body.clone()?;
    X::try_from(body).map_err(|e| e.to_string())
}

/// `into_stream` and `into_pages` on a builder whose [`Walk`] is written
/// below.
macro_rules! pages {
    ($builder:ident, $item:ty, $items:literal, $example:literal) => {
        impl $builder {
            #[doc = concat!("Every ", $items, " of every page, as a `Stream` (see the [module](crate::paginate::builders)).")]
            ///
            /// ```no_run
            /// use futures::TryStreamExt;
            /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
            #[doc = $example]
            /// # Ok(()) }
            /// ```
            pub fn into_stream(self) -> Paginated<'static, $item> {
                walk(self, items::<Self>)
            }

            /// Every page, whole (with its cursor and whatever else the
            /// answer holds), as a `Stream`; an empty page is yielded too.
            pub fn into_pages(self) -> Paginated<'static, <Self as Operation>::Output> {
                walk(self, whole::<Self>)
            }
        }
    };
}

/// [`Walk`] for a builder whose cursor is the body's `continuation`.
macro_rules! body_cursor {
    ($builder:ident, $request:ty, $item:ty, $field:ident, $limit:expr) => {
        impl Walk for $builder {
            type Item = $item;

            fn limit_and_start(&self) -> (Option<i64>, Option<String>) {
                match body::<_, $request>(&self.body) {
                    Ok(request) => ($limit(&request), request.continuation),
                    Err(_) => (None, None),
                }
            }

            fn at(&self, cursor: Option<String>) -> Self {
                let mut call = self.clone();
                if cursor.is_some() {
                    call.body = call.body.map(|b| b.continuation(cursor));
                }
                call
            }

            fn next(page: &Self::Output) -> Option<String> {
                page.continuation.clone()
            }

            fn items(page: Self::Output) -> Vec<$item> {
                page.$field
            }
        }
    };
}

body_cursor!(
    ExportDataset,
    types::ExportDatasetRequest,
    types::ExportedComment,
    comments,
    |r: &types::ExportDatasetRequest| r.limit
);
pages!(
    ExportDataset,
    types::ExportedComment,
    "exported comment",
    r#"let request = cm_api::types::ExportDatasetRequest { limit: Some(256), ..Default::default() };
let mut comments = client.export_dataset().project("acme").dataset_name("triage").body(request).into_stream();
while let Some(exported) = comments.try_next().await? {
    println!("{}", exported.comment.id);
}"#
);

body_cursor!(
    QueryAuditEvents,
    types::QueryAuditEventsRequest,
    types::AuditEvent,
    audit_events,
    |r: &types::QueryAuditEventsRequest| r.limit
);
pages!(
    QueryAuditEvents,
    types::AuditEvent,
    "audit event (newest first; [`into_pages`](Self::into_pages) keeps the users and projects they refer to)",
    r#"let events: Vec<_> = client.query_audit_events().into_stream().try_collect().await?;"#
);

body_cursor!(
    ListRecentComments,
    types::RecentCommentsRequest,
    types::AnnotatedComment,
    results,
    |r: &types::RecentCommentsRequest| Some(r.limit)
);
pages!(
    ListRecentComments,
    types::AnnotatedComment,
    "comment matching the filter, newest first,",
    r#"let recent = client
    .list_recent_comments()
    .project("acme")
    .dataset_name("triage")
    .body_map(|b| b.limit(100))
    .into_stream();
let comments: Vec<_> = recent.try_collect().await?;"#
);

body_cursor!(
    ListBucketEmails,
    types::BucketEmailsPageRequest,
    types::Email,
    emails,
    |r: &types::BucketEmailsPageRequest| r.limit
);
pages!(
    ListBucketEmails,
    types::Email,
    "raw email of the bucket",
    r#"let emails = client.list_bucket_emails().project("acme").bucket_name("inbox").into_stream();
let emails: Vec<_> = emails.try_collect().await?;"#
);

body_cursor!(
    QueryBucketEmails,
    types::BucketEmailsPageRequest,
    types::Email,
    emails,
    |r: &types::BucketEmailsPageRequest| r.limit
);
pages!(
    QueryBucketEmails,
    types::Email,
    "raw email of the bucket",
    r#"let emails = client.query_bucket_emails().project("acme").bucket_name("inbox").into_stream();
let emails: Vec<_> = emails.try_collect().await?;"#
);

impl Walk for QueryComments {
    type Item = types::AnnotatedComment;

    fn limit_and_start(&self) -> (Option<i64>, Option<String>) {
        match body::<_, types::QueryCommentsRequest>(&self.body) {
            Ok(request) => (request.limit, request.continuation),
            Err(_) => (None, None),
        }
    }

    /// The cursor goes in the body; in the query too if one was set there,
    /// so a stale query cursor never travels with a new body cursor.
    fn at(&self, cursor: Option<String>) -> Self {
        let mut call = self.clone();
        if let Some(cursor) = cursor {
            if call.continuation.is_some() {
                call.continuation = Some(Ok(cursor.clone()));
            }
            call.body = call.body.map(|b| b.continuation(Some(cursor)));
        }
        call
    }

    fn next(page: &Self::Output) -> Option<String> {
        page.continuation.clone()
    }

    fn items(page: Self::Output) -> Vec<Self::Item> {
        page.results
    }
}
pages!(
    QueryComments,
    types::AnnotatedComment,
    "comment matching the request's filter, in its order,",
    r#"let matching = client
    .query_comments()
    .project("acme")
    .dataset_name("triage")
    .body_map(|b| b.limit(256))
    .into_stream();
let comments: Vec<_> = matching.try_collect().await?;"#
);

impl Walk for ListSourceComments {
    type Item = SourceComment;

    fn limit_and_start(&self) -> (Option<i64>, Option<String>) {
        (set(&self.limit), set(&self.after))
    }

    /// Later pages are asked by `after` alone: `from_timestamp` only
    /// places the first.
    fn at(&self, cursor: Option<String>) -> Self {
        let mut call = self.clone();
        if let Some(cursor) = cursor {
            call.after = Some(Ok(cursor));
            call.from_timestamp = None;
        }
        call
    }

    fn next(page: &Self::Output) -> Option<String> {
        page.continuation.clone()
    }

    /// Each comment with its thread properties, paired by position.
    fn items(page: Self::Output) -> Vec<SourceComment> {
        let mut properties = page.thread_properties.into_iter();
        page.comments
            .into_iter()
            .map(|comment| SourceComment {
                comment,
                thread_properties: properties.next(),
            })
            .collect()
    }
}
pages!(
    ListSourceComments,
    SourceComment,
    "comment of the source (with its thread properties), in increasing timestamp order,",
    r#"let comments = client
    .list_source_comments()
    .project("acme")
    .source_name("inbox")
    .from_timestamp(chrono::Utc::now() - chrono::Duration::days(7))
    .limit(256)
    .into_stream();
let comments: Vec<_> = comments.try_collect().await?;"#
);

impl Walk for GetLabellings {
    type Item = types::AnnotatedComment;

    fn limit_and_start(&self) -> (Option<i64>, Option<String>) {
        (set(&self.limit), set(&self.after))
    }

    fn at(&self, cursor: Option<String>) -> Self {
        let mut call = self.clone();
        if let Some(cursor) = cursor {
            call.after = Some(Ok(cursor));
        }
        call
    }

    /// This route may keep sending an `after` on its last page, so the walk
    /// also ends at the first empty page (as the vendor's own client does).
    fn next(page: &Self::Output) -> Option<String> {
        page.after.clone().filter(|_| !page.results.is_empty())
    }

    fn items(page: Self::Output) -> Vec<Self::Item> {
        page.results
    }
}
pages!(
    GetLabellings,
    types::AnnotatedComment,
    "reviewed comment of the source, with its annotations,",
    r#"let reviewed = client
    .get_labellings()
    .project("acme")
    .dataset_name("triage")
    .source_id("18ba5ce699f8da1f")
    .into_stream();
let reviewed: Vec<_> = reviewed.try_collect().await?;"#
);
