//! An in-memory, stateful sandbox of the Communications Mining API.
//!
//! It serves the paths of `spec/openapi.yaml` with the service's wire
//! conventions (the `{"status": ...}` envelope, bearer tokens with
//! permissions, `Server-Timing`, `x-request-id`), keeps projects, sources,
//! comments, datasets (with their labellings), streams, buckets and
//! attachments in memory, and answers every operation it does not implement
//! with a 501 naming it. It can start with comments ([`Seed`]) and fail on
//! demand ([`Sandbox::faults`], [`Fault`]). See
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

mod faults;
mod handlers;
mod oauth;
mod seed;
mod spec;
mod state;
mod validate;
mod validate_request;
mod wire;

pub use crate::faults::{ActiveFault, Fault, FaultKind, Faults, InvalidFault, Target, Timing};
pub use crate::seed::{Seed, SeedError};
pub use crate::state::OAuthClient;
pub use crate::validate::{SchemaViolation, validate_response};

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::handlers::Call;
use crate::spec::Unresolved;
use crate::state::{Refused, State};
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
    /// Whether each request is checked against the spec (on by default).
    validate_requests: bool,
    /// What those checks found, in the order found.
    violations: Mutex<Vec<SchemaViolation>>,
    /// How long an OAuth access token is valid.
    access_token_lifetime: Duration,
    /// The token of `Sandbox::token`, the only one the control routes take.
    admin_token: String,
    /// Faults on demand.
    faults: Arc<faults::FaultStore>,
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
    admin_user_id: String,
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
            access_token_lifetime,
            seed,
            validate_requests,
        } = options;
        // Read the spec before the first request, so that a request never
        // waits for it (and the first test to fail is not a timeout).
        spec::operations();
        let mut state = State::new();
        seed.load(&mut state).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("seed: {e}"))
        })?;
        if validate_requests {
            validate_request::prepare();
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (admin_user_id, token) = state.add_admin(all_permissions());
        let app = Arc::new(App {
            state: Mutex::new(state),
            requests: AtomicU64::new(0),
            validate_responses,
            validate_requests,
            violations: Mutex::new(Vec::new()),
            access_token_lifetime,
            admin_token: token.clone(),
            faults: Arc::default(),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(app.clone())
            .into_make_service_with_connect_info::<faults::Conn>();
        let listener = faults::FaultListener(listener);
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
            admin_user_id,
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

    /// A token with every permission (`REINFER_TOKEN`): the API token of
    /// the user `admin`, who holds every permission globally.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The id of the user `admin`, whose token is [`Sandbox::token`].
    pub fn admin_user_id(&self) -> &str {
        &self.admin_user_id
    }

    /// A new token holding exactly `permissions` (see [`all_permissions`]):
    /// the API token of a new user (`user-<n>`) holding them globally, in
    /// every project.
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
        self.app
            .0
            .lock()
            .mint_user(permissions.into_iter().map(Into::into).collect())
    }

    /// A new API token for the user `user_id` (for instance one made with
    /// `create_user`, holding permissions per project); `None` when there
    /// is no such user. The user's other tokens stay valid.
    pub fn token_for_user(&self, user_id: &str) -> Option<String> {
        self.app.0.lock().token_for_user(user_id)
    }

    /// A new OAuth application registered to the user `admin`: its client
    /// id and secret, to exchange at [`Sandbox::token_url`] for access
    /// tokens acting as `admin`. Once `admin` is deleted, the credentials
    /// returned are refused (`invalid_client`).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = cm_sandbox::Sandbox::start().await?;
    /// let app = sandbox.client_credentials();
    /// let client = cm_api::Client::builder()
    ///     .endpoint(cm_api::Endpoint::parse(sandbox.base_url())?)
    ///     .client_credentials(
    ///         cm_api::ClientCredentials::new(app.client_id, app.client_secret)
    ///             .token_url(sandbox.token_url()),
    ///     )
    ///     .build()?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    pub fn client_credentials(&self) -> OAuthClient {
        self.client_credentials_for(&self.admin_user_id)
            .unwrap_or_else(|| {
                // The admin was deleted: an application nobody can use.
                OAuthClient {
                    client_id: "sbx-app-of-a-deleted-user".to_owned(),
                    client_secret: String::new(),
                }
            })
    }

    /// A new OAuth application registered to the user `user_id`; `None`
    /// when there is no such user. Deleting the user deletes it.
    pub fn client_credentials_for(&self, user_id: &str) -> Option<OAuthClient> {
        self.app.0.lock().register_oauth_client(user_id)
    }

    /// The OAuth token endpoint, `{base_url}/identity_/connect/token` (the
    /// path cm-api derives on UiPath hosts), for
    /// `cm_api::ClientCredentials::token_url`.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.base_url, oauth::TOKEN_PATH)
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

    /// The faults injected into this sandbox's answers: add, list, remove.
    ///
    /// ```no_run
    /// use cm_sandbox::{Fault, Sandbox};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let sandbox = Sandbox::start().await?;
    /// sandbox
    ///     .faults()
    ///     .inject(Fault::rate_limited(1).on("sync_comments"))
    ///     .expect("a valid fault");
    /// # Ok(())
    /// # }
    /// ```
    pub fn faults(&self) -> Faults {
        Faults(self.app.0.faults.clone())
    }

    /// The exception tags of a stream (`store_stream_exceptions`), comment
    /// uid → exception type; `None` when there is no such stream. The API
    /// shows them in `query_comments`' `trigger_exceptions`; this reads them
    /// without a request.
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
    access_token_lifetime: Duration,
    seed: Seed,
    validate_requests: bool,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            validate_responses: false,
            access_token_lifetime: Duration::from_secs(3600),
            seed: Seed::new(),
            validate_requests: true,
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

    /// How long the OAuth access tokens of the token endpoint are valid
    /// (`expires_in`); an hour by default, as UiPath's identity server.
    /// Whole seconds, at least one.
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = Duration::from_secs(lifetime.as_secs().max(1));
        self
    }

    /// Comments to load before the first request (after any given
    /// before); see [`Seed`]. A comment `sync_comments` would refuse makes
    /// [`start`](Self::start) fail with an `InvalidData` error naming it.
    pub fn seed(mut self, seed: Seed) -> Self {
        self.seed.extend(seed);
        self
    }

    /// Comments (`CommentNew`, e.g. `cm_api::types::CommentNew`, or JSON)
    /// to load into `project`/`source`, both created when missing.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// let sandbox = cm_sandbox::Sandbox::builder()
    ///     .seed_comments("acme", "inbox", [serde_json::json!({
    ///         "id": "c1",
    ///         "messages": [{"body": {"text": "Where is my refund?"}}],
    ///     })])
    ///     .start()
    ///     .await?;
    /// # let _ = sandbox;
    /// # Ok(())
    /// # }
    /// ```
    pub fn seed_comments<C: serde::Serialize>(
        self,
        project: impl Into<String>,
        source: impl Into<String>,
        comments: impl IntoIterator<Item = C>,
    ) -> Self {
        self.seed(Seed::new().comments(project, source, comments))
    }

    /// Check every request against `spec/openapi.yaml` before it is
    /// answered (on by default): path and query parameters against their
    /// schemas (400 naming the parameter), a JSON body against the
    /// operation's request schema (422 naming the field by path and JSON
    /// pointer). Off, handlers still refuse what they cannot read, but a
    /// request the spec forbids may pass; for measuring the checks' cost.
    pub fn validate_requests(mut self, on: bool) -> Self {
        self.validate_requests = on;
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
async fn handle(
    AxumState(app): AxumState<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<faults::Conn>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let request_id = format!("sbx-{:012x}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed));
    let mut response = if request.uri().path().starts_with(faults::CONTROL_PREFIX) {
        control(&app, request).await
    } else {
        let plan = app.faults.plan(request.method(), request.uri().path());
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        match (&plan.fault, plan.runs_handler()) {
            (Some(fault), false) => faults::before_handler(fault, &conn).await,
            (fault, _) => {
                let response = match answer(&app, request).await {
                    Ok(response) => response,
                    Err(error) => error.into_response(),
                };
                match fault {
                    Some(fault) => faults::after_handler(fault, response, &conn).await,
                    None => response,
                }
            }
        }
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

/// The sandbox's own routes (`/_sandbox/...`), for the admin token only.
async fn control(app: &App, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let caller = match token {
        Some(t) if t == app.admin_token => faults::Caller::Admin,
        Some(t) if app.lock().authenticate(t).is_ok() => faults::Caller::Other,
        _ => faults::Caller::Unknown,
    };
    faults::control(&app.faults, caller, &parts.method, parts.uri.path(), body)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn answer(app: &App, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // The identity server's token endpoint is not an operation of the spec.
    if parts.uri.path() == oauth::TOKEN_PATH {
        return Ok(oauth::token(app, parts, body).await);
    }
    let resolved = match spec::resolve(&parts.method, parts.uri.path()) {
        Ok(resolved) => resolved,
        Err(Unresolved::NotFound) => {
            let why = spec::unusable_segment(parts.uri.path())
                .map(|why| format!(": {why}"))
                .unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("route {} {} not found{why}", parts.method, parts.uri.path()),
            ));
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

    let caller = {
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
        app.lock().authenticate(token).map_err(|refused| {
            let message = match refused {
                Refused::Unknown => "the bearer token is not valid",
                Refused::Expired => "the bearer token has expired",
            };
            ApiError::new(StatusCode::UNAUTHORIZED, message)
        })?
    };

    let implemented = handlers::implemented(&operation.id);
    let file_operation = handlers::file_operation(&operation.id);
    let Some(own_permissions) = implemented
        .map(|op| op.permissions)
        .or(file_operation.map(|op| op.permissions))
    else {
        // Checked against the spec all the same: a request the spec
        // refuses is named as such, not answered 501.
        if app.validate_requests {
            let body = read_body(body).await?;
            let query = Query::parse(parts.uri.query());
            validate_request::validate_request(&operation.id, &resolved.params, &query, &body)?;
        }
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
    // Global permissions, or those held in the path's project.
    let project = resolved.params.get("project").map(String::as_str);
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|p| !caller.holds(p, project))
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

    let body = read_body(body).await?;
    let query = Query::parse(parts.uri.query());
    // A handler never sees a request the spec refuses.
    let parsed = if app.validate_requests {
        validate_request::validate_request(&operation.id, &resolved.params, &query, &body)?
    } else {
        None
    };
    let call = Call {
        params: &resolved.params,
        query: &query,
        headers: &parts.headers,
        body: &body,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        user: &caller.user_id,
        parsed: std::cell::Cell::new(parsed),
        checked: std::cell::Cell::new(None),
    };
    handlers::prepare(&operation.id, &call)?;
    let implemented = match (implemented, file_operation) {
        (Some(implemented), _) => implemented,
        (None, Some(file_operation)) => {
            // A file answer (`get_attachment`): the bytes as stored, not JSON.
            let file = (file_operation.handler)(&mut app.lock(), &call)?;
            let mut response = Response::new(axum::body::Body::from(file.bytes));
            let content_type = HeaderValue::from_str(&file.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            return Ok(response);
        }
        // Answered 501 above.
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                operation.id.clone(),
            ));
        }
    };
    let value = {
        let mut state = app.lock();
        if handlers::is_change(&parts.method, &operation.id) {
            // Recorded under the same lock as the change: the log's order
            // is the order of the changes.
            let before = state.audit_refs(&caller.user_id, &resolved.params, None);
            let value = (implemented.handler)(&mut state, &call)?;
            let after = state.audit_refs(&caller.user_id, &resolved.params, Some(&value));
            state.record_audit_event(&caller.user_id, &operation.id, before, after);
            value
        } else {
            (implemented.handler)(&mut state, &call)?
        }
    };
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

async fn read_body(body: axum::body::Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes, or was cut short"),
            )
        })
}
