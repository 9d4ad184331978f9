//! Bodies that are files, not JSON: attachments (`get_attachment`),
//! documents (`get_document`) and the CSV form of the dataset query
//! (`query_comments` with `Accept: text/csv`).
//!
//! Each call returns a [`Download`]: a [`Stream`] of the body's chunks, read
//! from the network as it is consumed, so a download of any size can be
//! written to a file without being held in memory. The transport buffers
//! JSON and error bodies only (to check the envelope); a file's body passes
//! through it unread.
//!
//! ```no_run
//! # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let written = client
//!     .get_document()
//!     .source_id("18ba5ce699f8da1f")
//!     .comment_id("msg-42")
//!     .send()
//!     .await?
//!     .save("invoice.pdf")
//!     .await?;
//! println!("{written} bytes");
//! # Ok(()) }
//! ```
//!
//! A file transfer is bounded by progress, not by its total time: it fails
//! when nothing arrives (headers or body) for the attempt timeout
//! ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout),
//! 120 s by default), however long it takes as a whole (the timeout rules,
//! once: "Timeouts" in the crate's `DESIGN.md`). A file is never buffered
//! nor read as an error envelope, whatever its type: a JSON attachment whose
//! top level says `"status": "error"` is a file like any other. A failure
//! while the body streams is an [`Error::Transport`]; it is not retried,
//! because part of the body was already handed to the caller.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cm_api_gen::ResponseValue;
use cm_api_gen::types::QueryCommentsRequest;
use futures::{Stream, StreamExt};
use progenitor_client::ClientInfo;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::{Client, Response, stalled_error, transport_error};
use crate::error::Error;
use crate::request::{GeneratedError, execute, missing, segment};

/// Capacity of the write buffer [`Download::save`] puts in front of the file.
const SAVE_BUFFER: usize = 64 * 1024;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send + Sync>>;

/// A response body streamed from the network: a [`Stream`] of chunks, plus
/// [`write_to`](Download::write_to) and [`save`](Download::save) to copy it
/// out with a bounded buffer.
///
/// ```no_run
/// use futures::StreamExt;
///
/// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
/// let response = client.get_attachment().attachment_reference("0f3a9c1e2b7d4a6f.0.1").send().await?;
/// let mut body = response.into_inner();
/// println!("{:?}, {:?} bytes", body.content_type(), body.content_length());
/// let mut total = 0;
/// while let Some(chunk) = body.next().await {
///     total += chunk?.len();
/// }
/// # Ok(()) }
/// ```
pub struct Download {
    body: Body,
    content_type: Option<String>,
    content_length: Option<u64>,
    operation: &'static str,
    attempts: u32,
    finished: bool,
    /// The progress timeout and its timer, armed for the next chunk.
    progress: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("operation", &self.operation)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl Download {
    pub(crate) fn new(operation: &'static str, headers: &http::HeaderMap, body: Body) -> Self {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        Self {
            body,
            content_type: header(CONTENT_TYPE).map(str::to_owned),
            content_length: header(CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
            operation,
            attempts: 1,
            finished: false,
            progress: None,
        }
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Fails the body when no chunk arrives for `timeout`, counted from now
    /// and then from each chunk (`None`, or a timeout too large for the
    /// clock: no bound).
    pub(crate) fn with_progress_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.progress = timeout.and_then(|timeout| {
            let at = tokio::time::Instant::now().checked_add(timeout)?;
            Some((timeout, Box::pin(tokio::time::sleep_until(at))))
        });
        self
    }

    /// The body's media type, from `Content-Type`: for a document, its own
    /// type (e.g. `application/pdf`).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The body's size in bytes, when the server announced it
    /// (`Content-Length`); `None` for a chunked body.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Copies the body into `writer` chunk by chunk, then flushes it, and
    /// returns the number of bytes written. At most one network chunk is in
    /// memory at a time.
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// // Append every attachment of a comment to one archive.
    /// let mut archive = tokio::fs::OpenOptions::new()
    ///     .create(true)
    ///     .append(true)
    ///     .open("attachments.bin")
    ///     .await?;
    /// for reference in ["0f3a9c1e2b7d4a6f.0.0", "0f3a9c1e2b7d4a6f.0.1"] {
    ///     let response = client.get_attachment().attachment_reference(reference).send().await?;
    ///     let download = response.into_inner();
    ///     download.write_to(&mut archive).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn write_to<W>(mut self, writer: &mut W) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut written = 0u64;
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            writer
                .write_all(&chunk)
                .await
                .map_err(|source| write_error(None, source))?;
            written += chunk.len() as u64;
        }
        writer
            .flush()
            .await
            .map_err(|source| write_error(None, source))?;
        Ok(written)
    }

    /// Streams the body into the file at `path` (through a 64 KiB buffer)
    /// and returns the number of bytes written. The body is written to
    /// `<path>.part` first and renamed when complete, so `path` never holds
    /// a partial file; on failure the partial file is removed.
    pub async fn save(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        let path = path.as_ref();
        let partial = partial_path(path);
        let at = |source| write_error(Some(&partial), source);
        let file = tokio::fs::File::create(&partial).await.map_err(at)?;
        let mut writer = tokio::io::BufWriter::with_capacity(SAVE_BUFFER, file);
        let written = match self.write_to(&mut writer).await {
            Ok(written) => writer
                .get_ref()
                .sync_all()
                .await
                .map(|()| written)
                .map_err(at),
            Err(Error::Write { source, .. }) => Err(at(source)),
            Err(other) => Err(other),
        };
        drop(writer);
        let result = match written {
            Ok(written) => tokio::fs::rename(&partial, path)
                .await
                .map(|()| written)
                .map_err(|source| write_error(Some(path), source)),
            Err(error) => Err(error),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// The whole body in memory: for small files only; prefer
    /// [`write_to`](Download::write_to) or [`save`](Download::save).
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let mut body = Vec::with_capacity(self.content_length.unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = self.next().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(body))
    }
}

impl Stream for Download {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some((timeout, timer)) = &mut self.progress {
                    match tokio::time::Instant::now().checked_add(*timeout) {
                        Some(at) => timer.as_mut().reset(at),
                        None => self.progress = None,
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(source))) => {
                // The body is cut: end the stream after reporting why.
                self.finished = true;
                let error =
                    transport_error(Some(self.operation), source, self.attempts, false, true);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some((timeout, timer)) = &mut self.progress else {
                    return Poll::Pending;
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Nothing arrived for the progress timeout: end the stream.
                let after = *timeout;
                self.finished = true;
                let stalled = crate::progress::Stalled { after };
                let error = stalled_error(Some(self.operation), stalled, self.attempts, true);
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.body.size_hint()
    }
}

impl Response<Download> {
    /// [`Download::save`] on the response's body.
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let response = client.get_attachment().attachment_reference("0f3a9c1e2b7d4a6f.0.1").send().await?;
    /// response.save("report.pdf").await?;
    /// # Ok(()) }
    /// ```
    pub async fn save(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        self.into_inner().save(path).await
    }

    /// [`Download::write_to`] on the response's body.
    pub async fn write_to<W>(self, writer: &mut W) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.into_inner().write_to(writer).await
    }
}

/// A failed local write, for [`Error::Write`].
fn write_error(path: Option<&Path>, source: std::io::Error) -> Error {
    Error::Write {
        path: path.map(Path::to_owned),
        source,
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    path.with_file_name(name)
}

/// `query_comments` answered as CSV (`Accept: text/csv`), a form the spec
/// does not describe: from [`Client::query_comments_csv`]. The body is the
/// JSON form's: its filter, order, `limit` and `continuation` apply. Not a
/// paginated walk: one call, one CSV body. A server that ignores the
/// `Accept` header answers JSON instead; check [`Download::content_type`]
/// when that matters.
///
/// ```no_run
/// use cm_api::types::{CommentQueryOrder, QueryCommentsRequest};
///
/// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let request: QueryCommentsRequest = QueryCommentsRequest::builder()
///     .order(CommentQueryOrder::builder().kind("recent"))
///     .limit(1000_i64)
///     .try_into()?;
/// client
///     .query_comments_csv()
///     .project("acme")
///     .dataset_name("support")
///     .body(request)
///     .send()
///     .await?
///     .save("support.csv")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "an operation sends nothing until `send()` is awaited"]
pub struct QueryCommentsCsv {
    client: Client,
    options: crate::CallOptions,
    project: Option<String>,
    dataset_name: Option<String>,
    body: Option<QueryCommentsRequest>,
}

impl Client {
    /// `query_comments` answered as CSV: see [`QueryCommentsCsv`].
    pub fn query_comments_csv(&self) -> QueryCommentsCsv {
        QueryCommentsCsv {
            client: self.clone(),
            options: crate::CallOptions::new(),
            project: None,
            dataset_name: None,
            body: None,
        }
    }
}

impl QueryCommentsCsv {
    /// Name of the project that owns the dataset (required).
    pub fn project(mut self, value: impl Into<String>) -> Self {
        self.project = Some(value.into());
        self
    }

    /// Name of the dataset (required).
    pub fn dataset_name(mut self, value: impl Into<String>) -> Self {
        self.dataset_name = Some(value.into());
        self
    }

    /// The query (required): filter, order, `limit` and `continuation`.
    pub fn body(mut self, value: QueryCommentsRequest) -> Self {
        self.body = Some(value);
        self
    }

    /// Per-call overrides of the attempt timeout, the deadline and the
    /// retry policy, as on every operation.
    pub fn with_options(mut self, options: crate::CallOptions) -> Self {
        self.options = options;
        self
    }

    /// Sends the query and returns the CSV body as a [`Download`].
    pub async fn send(self) -> Result<Response<Download>, Error> {
        const OPERATION: &str = "query_comments";
        let project = self.project.ok_or_else(|| missing(OPERATION, "project"))?;
        let dataset_name = self
            .dataset_name
            .ok_or_else(|| missing(OPERATION, "dataset_name"))?;
        let request = self.body.ok_or_else(|| missing(OPERATION, "body"))?;
        let path = format!(
            "/api/_private/datasets/{}/{}/query",
            segment(OPERATION, "project", &project)?,
            segment(OPERATION, "dataset_name", &dataset_name)?,
        );
        let client = self.client;
        let call = async {
            let c = &client.generated;
            let request = c
                .client()
                .post(format!("{}{path}", c.baseurl()))
                .header(ACCEPT, HeaderValue::from_static("text/csv"))
                .json(&request)
                .build()?;
            let response = execute(c, request, OPERATION).await?;
            match response.status().as_u16() {
                200..=299 => Ok(ResponseValue::stream(response)),
                400..=599 => Err(GeneratedError::ErrorResponse(
                    ResponseValue::from_response(response).await?,
                )),
                _ => Err(GeneratedError::UnexpectedResponse(response)),
            }
        };
        client.call_download(self.options, OPERATION, call).await
    }
}

impl crate::Operation for QueryCommentsCsv {
    type Output = Download;
    const OPERATION_ID: &'static str = "query_comments";

    fn with_options(self, options: crate::CallOptions) -> Self {
        QueryCommentsCsv::with_options(self, options)
    }

    fn send(self) -> impl std::future::Future<Output = Result<Response<Download>, Error>> + Send {
        QueryCommentsCsv::send(self)
    }
}
