//! What is in scope for the calls the current task makes: the one
//! task-local behind [`CallOptions::scope`], [`RateGate::scope`], a bulk
//! job's attempt counter and the state of the call being sent.
//!
//! The first three are set by code around the calls (and nest: an inner
//! scope changes its own field and keeps the others); the last is set by
//! the adapter under every `send()` for the duration of one call, and read
//! and written by the transport's hooks, which progenitor calls without a
//! way to pass anything through.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use crate::error::AuthError;
use crate::progress::Stalled;
use crate::retry::{CallOptions, RateGate};

/// Everything a task's calls see; the default outside any scope.
#[derive(Clone, Debug, Default)]
struct TaskScope {
    /// From [`CallOptions::scope`], merged with any outer scope's.
    options: CallOptions,
    /// From [`RateGate::scope`].
    gate: Option<Arc<RateGate>>,
    /// From [`count_attempts`].
    attempts: Option<Arc<AtomicU64>>,
    /// The call being sent, from [`CallContext::scope`].
    call: Option<CallContext>,
}

tokio::task_local! {
    static SCOPE: TaskScope;
}

/// `future`, run with the current scope changed by `change`. Not an
/// `async fn`: that would hold `future` twice in the caller's state, and a
/// call's future is large enough for that to matter on a thread's stack.
fn with<F: Future>(
    change: impl FnOnce(&mut TaskScope),
    future: F,
) -> TaskLocalFuture<TaskScope, F> {
    let mut scope = SCOPE.try_with(TaskScope::clone).unwrap_or_default();
    change(&mut scope);
    SCOPE.scope(scope, future)
}

impl CallOptions {
    /// Runs `future` with these overrides applied to every call it makes
    /// (a call's own `with_options` still wins, setting by setting; an
    /// outer scope's settings apply to what these leave unset).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cm_api::CallOptions;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let projects = CallOptions::new()
    ///     .deadline(Duration::from_secs(10))
    ///     .scope(client.list_projects().send())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        with(|scope| scope.options = self.or(scope.options), future).await
    }

    /// The overrides in force on the current task (none outside a scope).
    pub fn current() -> Self {
        SCOPE.try_with(|scope| scope.options).unwrap_or_default()
    }
}

impl RateGate {
    /// Runs `future` with this gate in scope: every request it makes
    /// through a [`Client`](crate::Client) waits on the gate before each
    /// attempt, and a 429 or `Retry-After` answer closes the gate.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use cm_api::RateGate;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let gate = Arc::new(RateGate::new());
    /// let sources = gate.scope(client.list_sources().send()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn scope<F: Future>(self: &Arc<Self>, future: F) -> F::Output {
        with(|scope| scope.gate = Some(Arc::clone(self)), future).await
    }
}

/// The gate of the current task, if a [`RateGate::scope`] is active.
pub(crate) fn current_gate() -> Option<Arc<RateGate>> {
    SCOPE.try_with(|scope| scope.gate.clone()).ok().flatten()
}

/// Runs `future` counting, in `counter`, every attempt the transport sends.
pub(crate) async fn count_attempts<F: Future>(counter: Arc<AtomicU64>, future: F) -> F::Output {
    with(|scope| scope.attempts = Some(counter), future).await
}

/// Counts one attempt, inside [`count_attempts`].
pub(crate) fn note_attempt() {
    let _ = SCOPE.try_with(|scope| {
        if let Some(counter) = &scope.attempts {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// What the hooks observed during one call.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    pub(crate) operation: Option<&'static str>,
    pub(crate) auth_error: Option<AuthError>,
    pub(crate) status: Option<u16>,
    pub(crate) headers: Option<http::HeaderMap>,
    pub(crate) attempts: u32,
    /// Set when the body's `"status"` contradicts the HTTP status.
    pub(crate) contradiction: Option<Contradiction>,
    /// Set when the call's deadline cut the last attempt short.
    pub(crate) deadline_hit: bool,
    /// Set when the last attempt, a file transfer, made no progress for
    /// its progress timeout.
    pub(crate) stalled: Option<Stalled>,
    /// Whether an attempt of the call may have been applied by the server
    /// (its answer was lost, or a 500/502/504), reported on the error.
    pub(crate) maybe_applied: bool,
    /// A download's progress timeout, which its body keeps to after the
    /// headers arrived.
    pub(crate) progress_timeout: Option<Duration>,
    /// The last `Retry-After` the server sent, when it was not waited out.
    pub(crate) retry_after: Option<Duration>,
    /// Set when the call gave up at a closed rate gate: how long it stays closed.
    pub(crate) rate_limited: Option<Duration>,
    /// The call's deadline, fixed when first needed (the token wait in
    /// `prepare`) and shared by `send`; `Some(None)`: no deadline.
    pub(crate) deadline: Option<Option<Instant>>,
}

/// A body whose `"status"` field contradicts the HTTP status.
#[derive(Debug)]
pub(crate) struct Contradiction {
    pub(crate) claimed: String,
    pub(crate) message: Option<String>,
}

/// The progress timeout the current call's download keeps to once its
/// headers arrived (`None` outside a call, or for a call without one).
pub(crate) fn progress_timeout() -> Option<Duration> {
    SCOPE
        .try_with(|scope| {
            scope
                .call
                .as_ref()
                .and_then(|ctx| ctx.lock().progress_timeout)
        })
        .ok()
        .flatten()
}

/// Shared per-call state, set by the adapter with [`CallContext::scope`].
#[derive(Clone, Debug, Default)]
pub(crate) struct CallContext(Arc<Mutex<CallState>>);

impl CallContext {
    /// Runs `future` with this context visible to the hooks.
    pub(crate) async fn scope<F: Future>(&self, future: F) -> F::Output {
        with(|scope| scope.call = Some(self.clone()), future).await
    }

    /// Takes the recorded state out.
    pub(crate) fn take(&self) -> CallState {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallState> {
        // A poisoned lock only means a hook panicked mid-update; the data is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current call's deadline, `budget` from the first time it is asked
    /// for in this call (`None`: no deadline, a budget too large for the
    /// clock). Outside a context, `budget` from now.
    pub(crate) fn deadline(budget: Duration) -> Option<Instant> {
        let fresh = || Instant::now().checked_add(budget);
        SCOPE
            .try_with(|scope| {
                scope
                    .call
                    .as_ref()
                    .map(|ctx| *ctx.lock().deadline.get_or_insert_with(fresh))
            })
            .ok()
            .flatten()
            .unwrap_or_else(fresh)
    }

    /// Updates the current call's state, if the call runs inside a context.
    pub(crate) fn update(f: impl FnOnce(&mut CallState)) {
        let _ = SCOPE.try_with(|scope| {
            if let Some(ctx) = &scope.call {
                f(&mut ctx.lock());
            }
        });
    }
}
