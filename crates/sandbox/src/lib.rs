//! An in-memory, stateful sandbox of the Communications Mining API.
//!
//! It serves the paths of `spec/openapi.yaml` with the service's wire
//! conventions (the `{"status": ...}` envelope, bearer tokens with
//! permissions, `Server-Timing`, `x-request-id`), keeps projects, sources,
//! comments, datasets, streams, buckets and attachments in memory, and
//! answers every operation it does not implement with a 501 naming it. See
//! `README.md` for the list of implemented operations and `DESIGN.md` for
//! the state model.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let sandbox = cm_sandbox::Sandbox::start().await?;
//! println!("REINFER_ENDPOINT={}", sandbox.base_url());
//! println!("REINFER_TOKEN={}", sandbox.token());
//! // A token that may only read sources:
//! let reader = sandbox.mint_token(["sources-read"]);
//! # let _ = reader;
//! # Ok(())
//! # }
//! ```

mod handlers;
mod spec;
mod state;
mod validate;
mod wire;

pub use crate::validate::{SchemaViolation, validate_response};

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::handlers::Call;
use crate::spec::Unresolved;
use crate::state::{Principal, State};
use crate::wire::{ApiError, Query, json_response, ok};

/// The largest request body the sandbox reads (a full `sync_comments` batch
/// of long emails fits); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The shared state behind the server.
struct App {
    state: Mutex<State>,
    requests: AtomicU64,
    /// Whether each `200` answer is checked against the spec.
    validate_responses: bool,
    /// What those checks found, in the order found.
    violations: Mutex<Vec<SchemaViolation>>,
}

impl App {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A handler never panics while holding the lock (they return
        // errors); should one, the state it left is still served rather
        // than failing every later request.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running sandbox: an HTTP server on loopback and its in-memory state.
///
/// Dropping it stops the server.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    base_url: String,
    token: String,
    app: Arc<AppHandle>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// `App` without its `Debug`-less internals in `Sandbox`'s `Debug`.
struct AppHandle(Arc<App>);

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts an empty sandbox on `127.0.0.1`, on a free port.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// let sandbox = cm_sandbox::Sandbox::start().await?;
    /// let client = cm_api::Client::builder()
    ///     .endpoint(cm_api::Endpoint::parse(sandbox.base_url()).unwrap())
    ///     .token(sandbox.token())
    ///     .build()
    ///     .unwrap();
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Starts an empty sandbox listening on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        Self::builder().addr(addr).start().await
    }

    /// A sandbox with options; see [`SandboxBuilder`].
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// let sandbox = cm_sandbox::Sandbox::builder()
    ///     .validate_responses(true)
    ///     .start()
    ///     .await?;
    /// // ... drive it ...
    /// assert_eq!(sandbox.schema_violations(), vec![]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    async fn start_with(options: SandboxBuilder) -> std::io::Result<Self> {
        let SandboxBuilder {
            addr,
            validate_responses,
        } = options;
        // Read the spec before the first request, so that a request never
        // waits for it (and the first test to fail is not a timeout).
        spec::operations();
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut state = State::new();
        let token = state.new_token();
        state.tokens.insert(
            token.clone(),
            Principal {
                permissions: all_permissions().into_iter().collect(),
            },
        );
        let app = Arc::new(App {
            state: Mutex::new(state),
            requests: AtomicU64::new(0),
            validate_responses,
            violations: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(handle).with_state(app.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(error) = server.await {
                eprintln!("cm-sandbox: server stopped: {error}");
            }
        });
        Ok(Self {
            addr,
            base_url: format!("http://{addr}"),
            token,
            app: Arc::new(AppHandle(app)),
            shutdown: Some(tx),
        })
    }

    /// The base URL to give the client (`REINFER_ENDPOINT`), `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token with every permission (`REINFER_TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A new token holding exactly `permissions` (see [`all_permissions`]).
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// let sandbox = cm_sandbox::Sandbox::start().await?;
    /// let read_only = sandbox.mint_token(["sources-read", "voc-readonly"]);
    /// # let _ = read_only;
    /// # Ok(())
    /// # }
    /// ```
    pub fn mint_token<I, S>(&self, permissions: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut state = self.app.0.lock();
        let token = state.new_token();
        state.tokens.insert(
            token.clone(),
            Principal {
                permissions: permissions.into_iter().map(Into::into).collect(),
            },
        );
        token
    }

    /// How many requests the server has answered.
    pub fn request_count(&self) -> u64 {
        self.app.0.requests.load(Ordering::Relaxed)
    }

    /// Every way an answer differed from its operation's `200` response
    /// schema in `spec/openapi.yaml`, since the start; always empty unless
    /// built with [`SandboxBuilder::validate_responses`]. Tests assert it
    /// is empty at their end.
    pub fn schema_violations(&self) -> Vec<SchemaViolation> {
        self.app
            .0
            .violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The exception tags of a stream (`store_stream_exceptions`), comment
    /// uid → exception type; `None` when there is no such stream. The API
    /// shows them in `query_comments`' `trigger_exceptions`, which the
    /// sandbox does not implement yet; tests read them here.
    pub fn stream_exceptions(
        &self,
        project: &str,
        dataset_name: &str,
        stream_name: &str,
    ) -> Option<BTreeMap<String, String>> {
        self.app
            .0
            .lock()
            .stream_exceptions(project, dataset_name, stream_name)
    }

    /// The ids of the operations the sandbox implements; every other
    /// operation of the spec answers 501.
    pub fn implemented_operations() -> Vec<&'static str> {
        handlers::all_implemented().map(|(id, _)| id).collect()
    }
}

/// Options of a [`Sandbox`], from [`Sandbox::builder`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SandboxBuilder {
    addr: SocketAddr,
    validate_responses: bool,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            validate_responses: false,
        }
    }
}

impl SandboxBuilder {
    /// The address to listen on; `127.0.0.1` on a free port by default.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Check every `200` answer against its operation's response schema in
    /// `spec/openapi.yaml` (OpenAPI 3.0 semantics) and record each
    /// difference for [`Sandbox::schema_violations`]; off by default. The
    /// answer is sent unchanged either way. Each operation's schema is
    /// compiled once, on its first answer.
    pub fn validate_responses(mut self, on: bool) -> Self {
        self.validate_responses = on;
        self
    }

    /// Starts the sandbox.
    pub async fn start(self) -> std::io::Result<Sandbox> {
        Sandbox::start_with(self).await
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Every permission name an operation may require: the spec's
/// `x-permissions` and the sandbox's own for the operations the spec
/// leaves silent. The token of [`Sandbox::token`] holds them all.
pub fn all_permissions() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = spec::operations()
        .iter()
        .flat_map(|op| op.permissions.iter().cloned())
        .collect();
    for (_, permissions) in handlers::all_implemented() {
        all.extend(permissions.iter().map(|p| (*p).to_owned()));
    }
    all
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Every request: route, authenticate, authorise, answer; then the headers
/// every answer carries.
async fn handle(AxumState(app): AxumState<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = format!("sbx-{:012x}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed));
    let mut response = match answer(&app, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    app.requests.fetch_add(1, Ordering::Relaxed);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    let dur = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("total;dur={dur:.3}")) {
        headers.insert("server-timing", value);
    }
    response
}

async fn answer(app: &App, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let resolved = match spec::resolve(&parts.method, parts.uri.path()) {
        Ok(resolved) => resolved,
        Err(Unresolved::NotFound) => {
            return Err(ApiError::not_found(format!(
                "route {} {}",
                parts.method,
                parts.uri.path()
            )));
        }
        Err(Unresolved::MethodNotAllowed(allowed)) => {
            let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} is not allowed on {}; allowed: {}",
                    parts.method,
                    parts.uri.path(),
                    list.join(", ")
                ),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return Ok(response);
        }
    };
    let operation = resolved.operation;

    let principal = {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "authentication required: send `Authorization: Bearer <token>`",
                )
            })?;
        app.lock().tokens.get(token).cloned().ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid")
        })?
    };

    let implemented = handlers::implemented(&operation.id);
    let file_operation = handlers::file_operation(&operation.id);
    let Some(own_permissions) = implemented
        .map(|op| op.permissions)
        .or(file_operation.map(|op| op.permissions))
    else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "operation `{}` ({} {}) is not implemented by the sandbox",
                operation.id, operation.method, operation.template
            ),
        ));
    };
    let required: Vec<&str> = if operation.permissions.is_empty() {
        own_permissions.to_vec()
    } else {
        operation.permissions.iter().map(String::as_str).collect()
    };
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|p| !principal.permissions.contains(*p))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "operation `{}` requires the permission(s): {}",
                operation.id,
                missing.join(", ")
            ),
        ));
    }

    let body: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes, or was cut short"),
            )
        })?;
    let query = Query::parse(parts.uri.query());
    let call = Call {
        params: &resolved.params,
        query: &query,
        body: &body,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    };
    let Some(implemented) = implemented else {
        // A file answer (`get_attachment`): the bytes as stored, not JSON.
        let handler = file_operation.expect("one of the two tables").handler;
        let file = handler(&mut app.lock(), &call)?;
        let mut response = Response::new(axum::body::Body::from(file.bytes));
        let content_type = HeaderValue::from_str(&file.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        return Ok(response);
    };
    let value = (implemented.handler)(&mut app.lock(), &call)?;
    let answer = ok(value);
    if app.validate_responses {
        let found = validate::validate_response(&operation.id, &answer);
        if !found.is_empty() {
            app.violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(found);
        }
    }
    Ok(json_response(StatusCode::OK, &answer))
}
