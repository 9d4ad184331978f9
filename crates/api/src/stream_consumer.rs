//! At-least-once consumption of a Communications Mining stream.
//!
//! A [`StreamConsumer`] loops: fetch the batch at the stream's position,
//! hand it to your async handler, and only when the handler succeeded move
//! the stream past the batch (`advance_stream` with the batch's sequence
//! id). A crash, a failed handler or a failed advance therefore leaves the
//! position where it was, and the same batch is delivered again: every
//! comment is handled **at least once**, so make handlers idempotent.
//!
//! ```no_run
//! use cm_api::stream_consumer::{HandlerError, OnHandlerError, StreamConsumer};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
//! let shutdown = CancellationToken::new();
//! let consumer = StreamConsumer::new(client, "acme", "triage", "refunds")
//!     .batch_size(32)
//!     .on_handler_error(OnHandlerError::tag_exceptions("Robot Failure"))
//!     .shutdown(shutdown.clone());
//! let summary = consumer
//!     .run(|batch| async move {
//!         for result in &batch.results {
//!             println!("{}", result.comment.uid);
//!         }
//!         Ok::<_, HandlerError>(())
//!     })
//!     .await?;
//! println!("{} comments in {} batches", summary.comments, summary.batches);
//! # Ok(()) }
//! ```
//!
//! `get_stream_results` is the primary route ([`StreamConsumer::new`],
//! batches of [`types::StreamResultsResponse`]); the legacy `fetch_stream`
//! route is available with [`StreamConsumer::legacy`] (batches of
//! [`types::FetchStreamResponse`]).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{BoxError, Error};
use crate::retry::DEFAULT_MAX_RETRY_AFTER;
use crate::types;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::types::StreamResultsResponse {}
    impl Sealed for crate::types::FetchStreamResponse {}
}

/// A batch of a stream, as one of the two fetch routes returns it. Sealed:
/// implemented for [`types::StreamResultsResponse`] (`get_stream_results`)
/// and [`types::FetchStreamResponse`] (legacy `fetch_stream`).
pub trait StreamBatch: sealed::Sealed + Send + Sized + 'static {
    /// Fetches the batch at the stream's position.
    #[doc(hidden)]
    fn fetch(consumer: &StreamConsumer<Self>) -> BoxFuture<'_, Result<Self, Error>>;

    /// The id that `advance_stream` takes to move past the whole batch.
    fn sequence_id(&self) -> &str;

    /// The uids (`<source_id>.<comment_id>`) of the batch's comments.
    fn comment_uids(&self) -> Vec<String>;

    /// How many comments the batch holds.
    fn len(&self) -> usize;

    /// Whether the batch holds no comment.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Comments the stream's filter skipped while building the batch.
    fn filtered(&self) -> u64;

    /// Whether more comments are already waiting after this batch.
    fn has_more(&self) -> bool;
}

impl StreamBatch for types::StreamResultsResponse {
    fn fetch(consumer: &StreamConsumer<Self>) -> BoxFuture<'_, Result<Self, Error>> {
        Box::pin(async move {
            let response = consumer
                .client
                .send(|c| {
                    let mut call = c
                        .get_stream_results()
                        .project(consumer.project.as_str())
                        .dataset_name(consumer.dataset.as_str())
                        .stream_name(consumer.stream.as_str());
                    if let Some(size) = consumer.batch_size {
                        call = call.max_results(size);
                    }
                    if let Some(max) = consumer.max_filtered {
                        call = call.max_filtered(max);
                    }
                    call.send()
                })
                .await?;
            Ok(response.into_inner())
        })
    }

    fn sequence_id(&self) -> &str {
        &self.continuation
    }

    fn comment_uids(&self) -> Vec<String> {
        self.results.iter().map(|r| r.comment.uid.clone()).collect()
    }

    fn len(&self) -> usize {
        self.results.len()
    }

    fn filtered(&self) -> u64 {
        u64::try_from(self.num_filtered).unwrap_or(0)
    }

    fn has_more(&self) -> bool {
        self.more_results
    }
}

impl StreamBatch for types::FetchStreamResponse {
    fn fetch(consumer: &StreamConsumer<Self>) -> BoxFuture<'_, Result<Self, Error>> {
        Box::pin(async move {
            let body = types::FetchStreamRequest {
                size: consumer.batch_size.unwrap_or(DEFAULT_LEGACY_SIZE),
                max_filtered: consumer.max_filtered,
            };
            let response = consumer
                .client
                .fetch_stream()
                .project(consumer.project.as_str())
                .dataset_name(consumer.dataset.as_str())
                .stream_name(consumer.stream.as_str())
                .body(body)
                .send()
                .await?;
            Ok(response.into_inner())
        })
    }

    fn sequence_id(&self) -> &str {
        &self.sequence_id
    }

    fn comment_uids(&self) -> Vec<String> {
        self.results.iter().map(|r| r.comment.uid.clone()).collect()
    }

    fn len(&self) -> usize {
        self.results.len()
    }

    fn filtered(&self) -> u64 {
        u64::try_from(self.filtered).unwrap_or(0)
    }

    fn has_more(&self) -> bool {
        !self.is_end_sequence
    }
}

/// The longest wait before an advance is tried again, whatever the
/// `Retry-After` asks: the handled batch is not held back for longer
/// between two attempts (the next attempt may be answered 429 again, which
/// counts towards [`StreamConsumer::max_consecutive_errors`]).
pub const MAX_ADVANCE_WAIT: Duration = Duration::from_secs(60);

/// Batch size of the legacy route when none is set (`size` is required there).
const DEFAULT_LEGACY_SIZE: i64 = 16;

/// What to do when the handler fails on a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnHandlerError {
    /// Stop: [`StreamConsumer::run`] returns [`Error::Handler`] without
    /// advancing, so the batch is delivered again on the next run.
    #[default]
    Stop,
    /// Tag the failing comments as stream exceptions of this type
    /// (`store_stream_exceptions`), then advance and carry on. The failing
    /// comments are those named by [`HandlerError::for_comments`], else the
    /// whole batch. If tagging fails, the consumer stops without advancing.
    TagExceptions {
        /// The exception's `type`, e.g. `"Robot Failure"`.
        exception_type: String,
    },
}

impl OnHandlerError {
    /// [`OnHandlerError::TagExceptions`] with this exception type.
    pub fn tag_exceptions(exception_type: impl Into<String>) -> Self {
        Self::TagExceptions {
            exception_type: exception_type.into(),
        }
    }
}

/// A handler's failure: the cause and, optionally, which comments of the
/// batch failed (all of them otherwise).
///
/// Whatever converts into a `Box<dyn Error + Send + Sync>` converts into it,
/// so `?` works in handlers on any `std::error::Error + Send + Sync`, on a
/// `Box<dyn Error + Send + Sync>` and on an `anyhow::Error`; build one from a
/// message with [`HandlerError::new`].
pub struct HandlerError {
    source: BoxError,
    comments: Option<Vec<String>>,
}

impl HandlerError {
    /// The whole batch failed because of `source`.
    ///
    /// ```
    /// let failure = cm_api::stream_consumer::HandlerError::new("ERP is down");
    /// assert_eq!(failure.to_string(), "ERP is down");
    /// ```
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
            comments: None,
        }
    }

    /// Only the comments with these uids failed (the others were handled).
    pub fn for_comments<S: Into<String>>(
        uids: impl IntoIterator<Item = S>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            source: source.into(),
            comments: Some(uids.into_iter().map(Into::into).collect()),
        }
    }

    /// The uids of the failing comments, if the handler named them.
    pub fn comments(&self) -> Option<&[String]> {
        self.comments.as_deref()
    }
}

// `HandlerError` itself is not an `Error`, so this blanket impl does not
// overlap `From<T> for T`; it covers `anyhow::Error` (which converts into a
// boxed error but is not an `Error`) and boxed errors themselves.
impl<E: Into<BoxError>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("source", &self.source)
            .field("comments", &self.comments)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

/// What a [`StreamConsumer::run`] did before it returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerSummary {
    /// Batches handled (or tagged) and advanced past.
    pub batches: u64,
    /// Comments in those batches.
    pub comments: u64,
    /// Comments tagged as exceptions.
    pub exceptions: u64,
    /// Comments the stream's filter skipped.
    pub filtered: u64,
}

/// What one [`StreamConsumer::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A batch was handled (or its failures tagged) and the stream advanced.
    Handled {
        /// Comments in the batch.
        comments: u64,
        /// Comments tagged as exceptions.
        exceptions: u64,
        /// Whether more comments were already waiting.
        has_more: bool,
    },
    /// The batch was empty (after the filter skipped `filtered` comments,
    /// which the stream was advanced past).
    Empty {
        /// Comments the filter skipped.
        filtered: u64,
        /// Whether more comments were already waiting.
        has_more: bool,
        /// Whether the stream was advanced (past the skipped comments).
        advanced: bool,
    },
}

/// Consumes a stream at least once; see the [module](self) documentation.
///
/// `B` is the batch type, which selects the fetch route:
/// [`types::StreamResultsResponse`] ([`new`](StreamConsumer::new)) or
/// [`types::FetchStreamResponse`] ([`legacy`](StreamConsumer::legacy)).
pub struct StreamConsumer<B: StreamBatch = types::StreamResultsResponse> {
    client: Client,
    project: String,
    dataset: String,
    stream: String,
    batch_size: Option<i64>,
    max_filtered: Option<i64>,
    on_error: OnHandlerError,
    idle_wait: Duration,
    error_backoff: Duration,
    max_consecutive_errors: u32,
    max_retry_after: Duration,
    shutdown: CancellationToken,
    batch: PhantomData<fn() -> B>,
}

impl<B: StreamBatch> fmt::Debug for StreamConsumer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConsumer")
            .field("project", &self.project)
            .field("dataset", &self.dataset)
            .field("stream", &self.stream)
            .field("batch", &std::any::type_name::<B>())
            .field("batch_size", &self.batch_size)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

impl StreamConsumer<types::StreamResultsResponse> {
    /// A consumer of `project/dataset`'s stream `stream` through
    /// `get_stream_results` (with predictions, including generative
    /// extractions).
    pub fn new(client: Client, project: &str, dataset: &str, stream: &str) -> Self {
        Self::with_route(client, project, dataset, stream)
    }
}

impl StreamConsumer<types::FetchStreamResponse> {
    /// A consumer through the legacy `fetch_stream` route (label and entity
    /// predictions). Its batch size defaults to 16.
    pub fn legacy(client: Client, project: &str, dataset: &str, stream: &str) -> Self {
        Self::with_route(client, project, dataset, stream)
    }
}

impl<B: StreamBatch> StreamConsumer<B> {
    fn with_route(client: Client, project: &str, dataset: &str, stream: &str) -> Self {
        Self {
            client,
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            stream: stream.to_owned(),
            batch_size: None,
            max_filtered: None,
            on_error: OnHandlerError::default(),
            idle_wait: Duration::from_secs(5),
            error_backoff: Duration::from_secs(1),
            max_consecutive_errors: 10,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            shutdown: CancellationToken::new(),
            batch: PhantomData,
        }
    }

    /// Comments per batch (`max_results`, or `size` on the legacy route).
    pub fn batch_size(mut self, size: u32) -> Self {
        self.batch_size = Some(i64::from(size.max(1)));
        self
    }

    /// How many comments the stream's filter may skip while building a batch.
    pub fn max_filtered(mut self, max: u32) -> Self {
        self.max_filtered = Some(i64::from(max));
        self
    }

    /// What to do when the handler fails (default: [`OnHandlerError::Stop`]).
    pub fn on_handler_error(mut self, policy: OnHandlerError) -> Self {
        self.on_error = policy;
        self
    }

    /// How long to wait before asking again when the stream has nothing new
    /// (default 5 s).
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// The first wait after a retryable failure (network, 429, 5xx) of a
    /// fetch or an advance; it doubles on each consecutive failure, up to
    /// one minute (default 1 s).
    pub fn error_backoff(mut self, backoff: Duration) -> Self {
        self.error_backoff = backoff;
        self
    }

    /// How many retryable failures in a row are waited out before
    /// [`run`](Self::run) returns the last one (default 10).
    pub fn max_consecutive_errors(mut self, max: u32) -> Self {
        self.max_consecutive_errors = max;
        self
    }

    /// The longest `Retry-After` [`run`](Self::run) waits out (default
    /// [`DEFAULT_MAX_RETRY_AFTER`], 15 minutes). When the server asks for
    /// longer, `run` returns its error, which carries the wait
    /// ([`Error::retry_after`]), instead of sleeping that long.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cm_api::StreamConsumer;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let consumer = StreamConsumer::new(client, "acme", "triage", "refunds")
    ///     .max_retry_after(Duration::from_secs(60));
    /// match consumer.run(|_batch| async { Ok(()) }).await {
    ///     Err(err) if err.retry_after().is_some() => {
    ///         eprintln!("the service asks to wait {:?}; try again later", err.retry_after());
    ///     }
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// Stops [`run`](Self::run) cleanly when `token` is cancelled: a fetch
    /// or wait in progress is abandoned, but a batch being handled is
    /// finished and its advance sent first. If that advance has to be
    /// retried, shutdown cuts the wait short and the batch is delivered
    /// again by the next run.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// The token that stops [`run`](Self::run) (a fresh one unless set with
    /// [`shutdown`](Self::shutdown)); cancel it from anywhere.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until shutdown is requested, returning what was consumed, or
    /// until a failure that is not waited out: a non-retryable API error,
    /// too many retryable ones in a row, or a handler failure under
    /// [`OnHandlerError::Stop`] ([`Error::Handler`]). A batch is advanced
    /// past only after the handler succeeded (or its failures were tagged).
    pub async fn run<F, Fut>(&self, mut handler: F) -> Result<ConsumerSummary, Error>
    where
        F: FnMut(B) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        let mut summary = ConsumerSummary::default();
        let mut errors = 0u32;
        while !self.shutdown.is_cancelled() {
            match self.step(&mut handler).await {
                Ok(None) => break,
                Ok(Some(Step::Handled {
                    comments,
                    exceptions,
                    ..
                })) => {
                    errors = 0;
                    summary.batches += 1;
                    summary.comments += comments;
                    summary.exceptions += exceptions;
                }
                Ok(Some(Step::Empty {
                    filtered,
                    has_more,
                    advanced,
                    ..
                })) => {
                    errors = 0;
                    summary.filtered += filtered;
                    // Nothing moved (whatever `has_more` says): wait before asking again.
                    let idle = !has_more || !advanced;
                    if idle && !self.pause(self.idle_wait).await {
                        break;
                    }
                }
                // Shutdown during an advance's retry: the batch is redelivered later.
                Err(error) if error.is_retryable() && self.shutdown.is_cancelled() => {
                    tracing::info!(%error, "stream consumer: shutdown before the batch was advanced past");
                    break;
                }
                Err(error)
                    if error.is_retryable()
                        && errors < self.max_consecutive_errors
                        && error
                            .retry_after()
                            .is_none_or(|wait| wait <= self.max_retry_after) =>
                {
                    errors += 1;
                    let factor = 2u32.saturating_pow(errors - 1);
                    let wait = self
                        .error_backoff
                        .saturating_mul(factor)
                        .min(Duration::from_secs(60))
                        .max(error.retry_after().unwrap_or_default());
                    tracing::warn!(%error, attempt = errors, wait_ms = wait.as_millis() as u64, "stream consumer: retryable failure, waiting");
                    if !self.pause(wait).await {
                        break;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(summary)
    }

    /// Sleeps for `wait`; `false` if shutdown was requested meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// One round: fetch the batch at the stream's position, handle it and
    /// advance past it; for callers that drive their own loop. `None` when
    /// shutdown was requested before a batch arrived. Once a batch is
    /// fetched, the handler and the advance run to completion whatever the
    /// shutdown token says.
    ///
    /// A non-empty batch is advanced past only after `handler` succeeded
    /// or, under [`OnHandlerError::TagExceptions`], after its failures were
    /// tagged. An empty batch is advanced past only when the filter skipped
    /// comments to build it.
    pub async fn step<F, Fut>(&self, handler: F) -> Result<Option<Step>, Error>
    where
        F: FnOnce(B) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        let batch = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return Ok(None),
            batch = B::fetch(self) => batch?,
        };
        let has_more = batch.has_more();
        let filtered = batch.filtered();
        let sequence_id = batch.sequence_id().to_owned();
        if batch.is_empty() {
            let advanced = filtered > 0;
            if advanced {
                self.advance(sequence_id).await?;
            }
            return Ok(Some(Step::Empty {
                filtered,
                has_more,
                advanced,
            }));
        }
        let comments = batch.len() as u64;
        // Only needed to tag a whole failed batch; taken before the handler owns it.
        let uids = match self.on_error {
            OnHandlerError::TagExceptions { .. } => batch.comment_uids(),
            OnHandlerError::Stop => Vec::new(),
        };
        let mut exceptions = 0;
        if let Err(failure) = handler(batch).await {
            match &self.on_error {
                OnHandlerError::Stop => {
                    return Err(Error::Handler {
                        source: failure.source,
                    });
                }
                OnHandlerError::TagExceptions { exception_type } => {
                    tracing::warn!(error = %failure.source, "stream handler failed: tagging exceptions");
                    let failed = failure.comments.unwrap_or(uids);
                    exceptions = failed.len() as u64;
                    self.store_exceptions(failed, exception_type).await?;
                }
            }
        }
        self.advance(sequence_id).await?;
        Ok(Some(Step::Handled {
            comments,
            exceptions,
            has_more,
        }))
    }

    /// Moves the stream past `sequence_id`. An advance that certainly did
    /// not happen (nothing was sent: a connect error, a closed rate gate;
    /// or a 429) is retried with the same id, up to
    /// [`max_consecutive_errors`](Self::max_consecutive_errors) times, before
    /// the error is returned and the batch is redelivered. Any other failure
    /// is returned at once: the advance may have happened. Each wait is at
    /// most [`MAX_ADVANCE_WAIT`]; shutdown cuts it short, and the error is
    /// returned (the batch is redelivered by the next run).
    async fn advance(&self, sequence_id: String) -> Result<(), Error> {
        self.advance_with(|| {
            let body = types::AdvanceStreamRequest {
                sequence_id: sequence_id.clone(),
            };
            async move {
                self.client
                    .advance_stream()
                    .project(self.project.as_str())
                    .dataset_name(self.dataset.as_str())
                    .stream_name(self.stream.as_str())
                    .body(body)
                    .send()
                    .await
                    .map(drop)
            }
        })
        .await
    }

    /// [`advance`](Self::advance)'s retries around `send`, one attempt per call.
    async fn advance_with<F, Fut>(&self, mut send: F) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), Error>>,
    {
        let mut failures = 0u32;
        loop {
            let result = send().await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let not_done = error.status() == Some(429)
                || matches!(
                    error,
                    Error::Transport {
                        kind: crate::error::TransportKind::Connect,
                        ..
                    } | Error::RateLimited { .. }
                );
            if !not_done || failures >= self.max_consecutive_errors {
                return Err(error);
            }
            failures += 1;
            let wait = self
                .error_backoff
                .saturating_mul(2u32.saturating_pow(failures - 1))
                .max(error.retry_after().unwrap_or_default())
                .min(MAX_ADVANCE_WAIT);
            tracing::warn!(%error, attempt = failures, wait_ms = wait.as_millis() as u64, "stream advance not applied, retrying with the same sequence id");
            if !self.pause(wait).await {
                tracing::warn!(%error, "shutdown while an advance waited to be retried: the batch will be delivered again");
                return Err(error);
            }
        }
    }

    async fn store_exceptions(&self, uids: Vec<String>, exception_type: &str) -> Result<(), Error> {
        if uids.is_empty() {
            return Ok(());
        }
        let exceptions = uids
            .into_iter()
            .map(|uid| types::StreamException {
                uid,
                metadata: types::StreamExceptionMetadata {
                    type_: exception_type.to_owned(),
                },
            })
            .collect();
        let body = types::StoreStreamExceptionsRequest { exceptions };
        self.client
            .store_stream_exceptions()
            .project(self.project.as_str())
            .dataset_name(self.dataset.as_str())
            .stream_name(self.stream.as_str())
            .body(body)
            .send()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;
    use crate::Endpoint;

    fn consumer() -> StreamConsumer {
        // Never sends anything: `advance_with` is given its own `send`.
        let client = Client::builder()
            .env_lookup(|_| None)
            .config_path(std::env::temp_dir().join("cm-api-no-such-dir/config.toml"))
            .endpoint(Endpoint::parse("http://127.0.0.1:9").unwrap())
            .token("t")
            .build()
            .unwrap();
        StreamConsumer::new(client, "acme", "triage", "refunds")
    }

    fn slow_down() -> Error {
        Error::api(429, "slow down").with_retry_after(Duration::from_secs(3600))
    }

    #[tokio::test(start_paused = true)]
    async fn an_advance_retry_waits_at_most_the_cap_whatever_the_retry_after() {
        let consumer = consumer();
        let calls = Arc::new(AtomicU32::new(0));
        let started = Instant::now();

        let result = consumer
            .advance_with(|| {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move { if call == 0 { Err(slow_down()) } else { Ok(()) } }
            })
            .await;

        result.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(started.elapsed(), MAX_ADVANCE_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_an_advance_retry_wait_early() {
        let consumer = consumer();
        let shutdown = consumer.shutdown_token();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            shutdown.cancel();
        });
        let calls = Arc::new(AtomicU32::new(0));
        let started = Instant::now();

        let result = consumer
            .advance_with(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(slow_down()) }
            })
            .await;

        assert_eq!(result.unwrap_err().status(), Some(429));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}

#[cfg(test)]
mod handler_error_tests {
    use super::HandlerError;

    fn io() -> Result<(), std::io::Error> {
        Err(std::io::Error::other("disk full"))
    }
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("ERP is down".into())
    }
    fn anyhow() -> anyhow::Result<()> {
        Err(anyhow::anyhow!("robot failed"))
    }

    fn handler(which: u8) -> Result<(), HandlerError> {
        match which {
            0 => io()?,
            1 => boxed()?,
            _ => anyhow()?,
        }
        Ok(())
    }

    #[test]
    fn handlers_use_question_mark_on_std_boxed_and_anyhow_errors() {
        assert_eq!(handler(0).unwrap_err().to_string(), "disk full");
        assert_eq!(handler(1).unwrap_err().to_string(), "ERP is down");
        assert_eq!(handler(2).unwrap_err().to_string(), "robot failed");
    }
}
