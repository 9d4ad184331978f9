//! Bounds by progress for file transfers: a transfer fails when nothing
//! moves for the progress timeout, however long it takes as a whole.
//!
//! reqwest's `read_timeout` cannot do this for uploads: it is one timer
//! from the start of a request until its response headers, and sending the
//! body never resets it. So the transport keeps its own clock
//! ([`Progress`]): the request body is wrapped ([`Tracked`]) so that every
//! chunk hyper takes from it counts as progress (hyper takes the next chunk
//! only once the previous one is written, so the clock follows the
//! network), and [`Progress::watch`] fails the wait for the response when
//! the clock has not moved for the timeout. A download's body is bounded
//! the same way, chunk by chunk, by [`Download`](crate::Download).
//!
//! The rule, with the others on timeouts, is stated in `crates/api/DESIGN.md`
//! ("Timeouts").

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// The largest piece of a request body handed to hyper at once: a body
/// held in memory is one frame, and hyper writing it in one go would show
/// no progress until the last byte is written.
const PIECE: usize = 64 * 1024;

/// The failure of a transfer that made no progress for `after`: the
/// `source()` of the [`Error::Transport`](crate::Error::Transport) timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stalled {
    /// The progress timeout that passed without progress.
    pub(crate) after: Duration,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no progress for {:?}", self.after)
    }
}

impl std::error::Error for Stalled {}

/// When a transfer last moved, shared by the body it tracks and the
/// watchdog that reads it.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    origin: Instant,
    /// Milliseconds since `origin` of the last progress.
    last: Arc<AtomicU64>,
    idle: Duration,
}

impl Progress {
    /// A clock that starts now and allows `idle` without progress.
    pub(crate) fn start(idle: Duration) -> Self {
        Self {
            origin: Instant::now(),
            last: Arc::default(),
            idle,
        }
    }

    /// Records progress now.
    pub(crate) fn tick(&self) {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(elapsed, Ordering::Relaxed);
    }

    /// When the transfer stalls unless it moves before (`None`: never, the
    /// timeout is too large for the clock).
    fn stalls_at(&self) -> Option<Instant> {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.checked_add(last)?.checked_add(self.idle)
    }

    /// Runs `future` until it completes, or fails with [`Stalled`] once the
    /// clock has not moved for the timeout.
    pub(crate) async fn watch<F: Future>(&self, future: F) -> Result<F::Output, Stalled> {
        let mut future = std::pin::pin!(future);
        loop {
            let Some(at) = self.stalls_at() else {
                return Ok(future.await);
            };
            tokio::select! {
                biased;
                output = &mut future => return Ok(output),
                () = tokio::time::sleep_until(at) => {
                    // The body may have moved while we slept: look again.
                    if self.stalls_at().is_some_and(|at| at <= Instant::now()) {
                        return Err(Stalled { after: self.idle });
                    }
                }
            }
        }
    }

    /// `body`, wrapped so that each piece hyper takes from it ticks this clock.
    pub(crate) fn track(&self, body: reqwest::Body) -> reqwest::Body {
        reqwest::Body::wrap(Tracked {
            inner: body,
            rest: Bytes::new(),
            progress: self.clone(),
        })
    }
}

/// A request body that ticks a [`Progress`] clock for every piece taken
/// from it, cutting frames larger than [`PIECE`] (without copying).
struct Tracked {
    inner: reqwest::Body,
    /// What is left of the last data frame.
    rest: Bytes,
    progress: Progress,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.rest.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.rest = data,
                    Err(other) => {
                        this.progress.tick();
                        return Poll::Ready(Some(Ok(other)));
                    }
                },
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(None) => {
                    this.progress.tick();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let piece = this.rest.split_to(this.rest.len().min(PIECE));
        this.progress.tick();
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.remaining() as u64;
        hint.set_lower(hint.lower().saturating_add(rest));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_moving_transfer_is_never_cut_and_a_still_one_is() {
        let progress = Progress::start(Duration::from_secs(1));
        let ticking = progress.clone();
        // Moves every 900 ms for 5 s: never 1 s without progress.
        let transfer = async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                ticking.tick();
            }
            "done"
        };
        assert_eq!(progress.watch(transfer).await, Ok("done"));

        let progress = Progress::start(Duration::from_secs(1));
        let started = Instant::now();
        let still = tokio::time::sleep(Duration::from_secs(60));
        assert_eq!(
            progress.watch(still).await,
            Err(Stalled {
                after: Duration::from_secs(1)
            })
        );
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_too_large_for_the_clock_means_no_limit() {
        let progress = Progress::start(Duration::MAX);
        let slow = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(progress.watch(slow).await, Ok(()));
    }

    #[tokio::test]
    async fn a_body_in_memory_is_handed_over_in_pieces_unchanged() {
        use http_body::Body as _;
        let content: Vec<u8> = (0..PIECE * 2 + 10).map(|i| i as u8).collect();
        let progress = Progress::start(Duration::from_secs(1));
        let mut body = Tracked {
            inner: reqwest::Body::from(content.clone()),
            rest: Bytes::new(),
            progress: progress.clone(),
        };
        let mut pieces = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            pieces.push(frame.unwrap().into_data().unwrap());
        }
        let sizes: Vec<usize> = pieces.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [PIECE, PIECE, 10]);
        assert_eq!(pieces.concat(), content);
        assert!(body.is_end_stream());
    }
}
