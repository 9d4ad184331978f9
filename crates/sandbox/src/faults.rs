//! Faults on demand: latency, error statuses, a gateway's HTML page, a body
//! cut short, a reset connection, injected for the requests that match a
//! route, so that a client's retry and error handling can be tested against
//! the sandbox.
//!
//! Set them in-process with [`Sandbox::faults`](crate::Sandbox::faults), or
//! over HTTP with the control route `/_sandbox/faults` (see the crate's
//! README). A faulted request never reaches the operation's handler unless
//! the fault says so ([`Fault::after_handler`]), so a fault changes no state.
//!
//! ```no_run
//! use std::time::Duration;
//! use cm_sandbox::{Fault, Sandbox};
//!
//! # async fn run() -> std::io::Result<()> {
//! let sandbox = Sandbox::start().await?;
//! // The next two `sync_comments` are answered 503; the third is served.
//! sandbox.faults().inject(Fault::status(503).on("sync_comments").times(2)).unwrap();
//! // Every request waits 200 ms, until cleared.
//! sandbox.faults().inject(Fault::latency(Duration::from_millis(200)).always()).unwrap();
//! // The answer of the first `advance_stream` is lost after it was applied.
//! sandbox.faults().inject(Fault::reset().after_handler().on("advance_stream")).unwrap();
//! sandbox.faults().clear();
//! # Ok(())
//! # }
//! ```

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::response::Response;
use axum::serve::IncomingStream;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::wire::{ApiError, decode, json_response, ok};

/// The prefix of the sandbox's own routes, outside the spec.
pub(crate) const CONTROL_PREFIX: &str = "/_sandbox/";
const FAULTS_PATH: &str = "/_sandbox/faults";

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Wait this long, then serve the request as usual (other faults still
    /// apply to it).
    Latency(Duration),
    /// Answer this status with the error envelope
    /// (`{"status": "error", "message": ...}`), and a `Retry-After` header
    /// (in seconds) when given.
    Status {
        /// The HTTP status, 400 to 599.
        status: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
        /// The envelope's message.
        message: String,
    },
    /// Answer this status with an HTML page (`text/html`), as a gateway in
    /// front of the service does.
    Html {
        /// The HTTP status, 400 to 599.
        status: u16,
    },
    /// Answer with a `Content-Length` larger than the bytes sent: half of
    /// the body, then the connection is closed (FIN).
    CutShort,
    /// Close the connection with a reset (RST) without answering a byte.
    Reset,
    /// Send the status line, the headers and half of the body, then reset
    /// the connection (RST).
    ResetMidBody,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every request (the sandbox's own `/_sandbox/` routes excepted).
    All,
    /// The requests that resolve to this operation id of the spec.
    Operation(String),
    /// The requests whose path starts with `prefix`, under `method` when
    /// given.
    Path {
        /// The method, or any.
        method: Option<Method>,
        /// The start of the path, e.g. `/api/v1/sources/`.
        prefix: String,
    },
}

/// For a lost answer ([`FaultKind::CutShort`], [`FaultKind::Reset`],
/// [`FaultKind::ResetMidBody`]), whether the operation ran first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Timing {
    /// The fault strikes before the handler: nothing was applied (the
    /// cut body is a placeholder). The default.
    #[default]
    BeforeHandler,
    /// The handler ran (a write was applied) and its answer is the one
    /// lost: what a client sees when the service applied a request whose
    /// answer never arrived.
    AfterHandler,
}

/// A fault to inject, built from one of its kinds and narrowed with the
/// builder methods; see [`Faults::inject`].
///
/// By default a fault applies to every request, once (`times(1)`), from
/// the next request on, before the handler.
///
/// ```
/// use std::time::Duration;
/// use cm_sandbox::Fault;
///
/// let rate_limit = Fault::rate_limited(2).on("sync_comments").times(3);
/// let gateway = Fault::html(502).on_path("GET", "/api/v1/datasets").after(1);
/// let slow = Fault::latency(Duration::from_millis(50)).always();
/// assert_eq!(rate_limit.get_times(), Some(3));
/// assert_eq!(slow.get_times(), None);
/// # let _ = gateway;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    kind: FaultKind,
    target: Target,
    times: Option<u32>,
    after: u32,
    timing: Timing,
    /// Why the builder could not take an argument, refused by `inject`.
    invalid: Option<String>,
}

impl Fault {
    fn of(kind: FaultKind) -> Self {
        Self {
            kind,
            target: Target::All,
            times: Some(1),
            after: 0,
            timing: Timing::BeforeHandler,
            invalid: None,
        }
    }

    /// Delay the request by `delay`, then serve it.
    pub fn latency(delay: Duration) -> Self {
        Self::of(FaultKind::Latency(delay))
    }

    /// Answer `status` (400 to 599) with the error envelope.
    pub fn status(status: u16) -> Self {
        Self::of(FaultKind::Status {
            status,
            retry_after: None,
            message: format!("sandbox fault: HTTP {status}"),
        })
    }

    /// Answer 429 with `Retry-After: <seconds>` and the error envelope.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::of(FaultKind::Status {
            status: 429,
            retry_after: Some(retry_after_secs),
            message: "sandbox fault: too many requests".into(),
        })
    }

    /// Answer `status` (400 to 599) with a gateway's HTML page (`text/html`).
    pub fn html(status: u16) -> Self {
        Self::of(FaultKind::Html { status })
    }

    /// Answer with half of the body of a larger `Content-Length`, then
    /// close the connection.
    pub fn cut_short() -> Self {
        Self::of(FaultKind::CutShort)
    }

    /// Reset the connection without answering.
    pub fn reset() -> Self {
        Self::of(FaultKind::Reset)
    }

    /// Send the head and half of the body, then reset the connection.
    pub fn reset_mid_body() -> Self {
        Self::of(FaultKind::ResetMidBody)
    }

    /// The envelope's message, for [`Fault::status`] and
    /// [`Fault::rate_limited`]; other kinds are unchanged.
    pub fn message(mut self, text: impl Into<String>) -> Self {
        if let FaultKind::Status { message, .. } = &mut self.kind {
            *message = text.into();
        }
        self
    }

    /// A `Retry-After` in seconds, for [`Fault::status`]; other kinds are
    /// unchanged.
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let FaultKind::Status { retry_after, .. } = &mut self.kind {
            *retry_after = Some(secs);
        }
        self
    }

    /// Only the requests of this operation id (checked against the spec by
    /// [`Faults::inject`]).
    pub fn on(mut self, operation_id: impl Into<String>) -> Self {
        self.target = Target::Operation(operation_id.into());
        self
    }

    /// Only the requests under `method` (e.g. `"POST"`; `"*"`: any) whose
    /// path starts with `prefix`.
    pub fn on_path(mut self, method: &str, prefix: impl Into<String>) -> Self {
        let method = if method == "*" {
            None
        } else {
            match Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
                Ok(m) => Some(m),
                Err(_) => {
                    self.invalid = Some(format!("{method:?} is not an HTTP method"));
                    None
                }
            }
        };
        self.target = Target::Path {
            method,
            prefix: prefix.into(),
        };
        self
    }

    /// Every request (the default).
    pub fn on_all(mut self) -> Self {
        self.target = Target::All;
        self
    }

    /// For the next `n` matching requests (at least 1), then the fault
    /// expires. The default is 1.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n.max(1));
        self
    }

    /// For every matching request, until cleared.
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// Let the first `k` matching requests through before the fault starts.
    pub fn after(mut self, k: u32) -> Self {
        self.after = k;
        self
    }

    /// For a lost answer (cut short, reset): run the handler first, so the
    /// request is applied and its answer lost. Other kinds are unchanged
    /// (they never run the handler, latency always does).
    pub fn after_handler(mut self) -> Self {
        if self.loses_answer() {
            self.timing = Timing::AfterHandler;
        }
        self
    }

    /// What the fault does.
    pub fn get_kind(&self) -> &FaultKind {
        &self.kind
    }

    /// Which requests it applies to.
    pub fn get_target(&self) -> &Target {
        &self.target
    }

    /// How many matching requests it applies to; `None`: until cleared.
    pub fn get_times(&self) -> Option<u32> {
        self.times
    }

    /// How many matching requests it lets through first.
    pub fn get_after(&self) -> u32 {
        self.after
    }

    /// Whether the handler runs before the answer is lost.
    pub fn get_timing(&self) -> Timing {
        self.timing
    }

    fn loses_answer(&self) -> bool {
        matches!(
            self.kind,
            FaultKind::CutShort | FaultKind::Reset | FaultKind::ResetMidBody
        )
    }

    /// Refuses a fault that cannot be served.
    fn check(&self) -> Result<(), InvalidFault> {
        if let Some(why) = &self.invalid {
            return Err(InvalidFault(why.clone()));
        }
        match &self.kind {
            FaultKind::Status { status, .. } | FaultKind::Html { status }
                if !(400..=599).contains(status) =>
            {
                return Err(InvalidFault(format!(
                    "status {status}: a fault's status is 400 to 599"
                )));
            }
            _ => {}
        }
        match &self.target {
            Target::Operation(id) if !crate::spec::operations().iter().any(|op| op.id == *id) => {
                Err(InvalidFault(format!(
                    "`{id}` is not an operation of the spec"
                )))
            }
            Target::Path { prefix, .. } if !prefix.starts_with('/') => Err(InvalidFault(format!(
                "path prefix {prefix:?} does not start with `/`"
            ))),
            _ => Ok(()),
        }
    }

    fn matches(&self, method: &Method, path: &str, operation: Option<&str>) -> bool {
        match &self.target {
            Target::All => true,
            Target::Operation(id) => operation == Some(id.as_str()),
            Target::Path {
                method: want,
                prefix,
            } => want.as_ref().is_none_or(|m| m == method) && path.starts_with(prefix.as_str()),
        }
    }

    /// The control route's JSON form (also what it accepts).
    fn to_json(&self) -> Value {
        let mut out = match &self.kind {
            FaultKind::Latency(d) => json!({"fault": "latency", "ms": d.as_millis() as u64}),
            FaultKind::Status {
                status,
                retry_after,
                message,
            } => {
                json!({"fault": "status", "status": status, "retry_after": retry_after, "message": message})
            }
            FaultKind::Html { status } => json!({"fault": "html", "status": status}),
            FaultKind::CutShort => json!({"fault": "cut_short"}),
            FaultKind::Reset => json!({"fault": "reset"}),
            FaultKind::ResetMidBody => json!({"fault": "reset_mid_body"}),
        };
        match &self.target {
            Target::All => {}
            Target::Operation(id) => out["operation"] = id.clone().into(),
            Target::Path { method, prefix } => {
                out["method"] = method.as_ref().map_or("*", Method::as_str).into();
                out["path_prefix"] = prefix.clone().into();
            }
        }
        out["times"] = self.times.map_or(Value::from("always"), Value::from);
        out["after"] = self.after.into();
        if self.loses_answer() {
            out["handler"] = match self.timing {
                Timing::BeforeHandler => "before",
                Timing::AfterHandler => "after",
            }
            .into();
        }
        out
    }
}

/// A fault [`Faults::inject`] refused, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidFault(String);

impl std::fmt::Display for InvalidFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid fault: {}", self.0)
    }
}

impl std::error::Error for InvalidFault {}

/// An injected fault and how far it has gone, from [`Faults::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveFault {
    /// Its id, for [`Faults::remove`].
    pub id: u64,
    /// The fault as injected.
    pub fault: Fault,
    /// Matching requests still to let through.
    pub to_skip: u32,
    /// Matching requests still to fault; `None`: until cleared.
    pub remaining: Option<u32>,
    /// Requests faulted so far.
    pub fired: u32,
}

impl ActiveFault {
    fn to_json(&self) -> Value {
        let mut out = self.fault.to_json();
        out["id"] = self.id.into();
        out["to_skip"] = self.to_skip.into();
        out["remaining"] = self.remaining.map_or(Value::from("always"), Value::from);
        out["fired"] = self.fired.into();
        out
    }
}

#[derive(Debug, Default)]
pub(crate) struct FaultStore {
    active: Mutex<Vec<ActiveFault>>,
    next_id: AtomicU64,
}

impl FaultStore {
    fn lock(&self) -> MutexGuard<'_, Vec<ActiveFault>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn inject(&self, fault: Fault) -> Result<u64, InvalidFault> {
        fault.check()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().push(ActiveFault {
            id,
            to_skip: fault.after,
            remaining: fault.times,
            fired: 0,
            fault,
        });
        Ok(id)
    }

    /// What happens to this request: faults are tried in the order
    /// injected, each counting the matching requests it sees; a latency
    /// adds its delay and the search goes on, the first other fault that
    /// fires ends it. A fault is dropped once it has fired `times` times.
    pub(crate) fn plan(&self, method: &Method, path: &str) -> Plan {
        let mut plan = Plan::default();
        let mut active = self.lock();
        if active.is_empty() {
            return plan;
        }
        let operation = crate::spec::resolve(method, path)
            .ok()
            .map(|r| r.operation.id.as_str());
        for entry in active.iter_mut() {
            if !entry.fault.matches(method, path, operation) {
                continue;
            }
            if entry.to_skip > 0 {
                entry.to_skip -= 1;
                continue;
            }
            entry.fired += 1;
            if let Some(n) = &mut entry.remaining {
                *n -= 1;
            }
            if let FaultKind::Latency(d) = entry.fault.kind {
                plan.delay += d;
            } else {
                plan.fault = Some(entry.fault.clone());
                break;
            }
        }
        active.retain(|entry| entry.remaining != Some(0));
        plan
    }
}

/// What to do with one request; see [`FaultStore::plan`].
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) delay: Duration,
    pub(crate) fault: Option<Fault>,
}

impl Plan {
    /// Whether the handler runs: no fault, or one after the handler.
    pub(crate) fn runs_handler(&self) -> bool {
        self.fault
            .as_ref()
            .is_none_or(|f| f.timing == Timing::AfterHandler)
    }
}

/// The faults of a running sandbox, from
/// [`Sandbox::faults`](crate::Sandbox::faults).
///
/// ```no_run
/// use cm_sandbox::{Fault, Sandbox};
///
/// # async fn run() -> std::io::Result<()> {
/// let sandbox = Sandbox::start().await?;
/// let id = sandbox.faults().inject(Fault::html(502).on("get_dataset")).unwrap();
/// assert_eq!(sandbox.faults().list()[0].id, id);
/// sandbox.faults().remove(id);
/// assert!(sandbox.faults().list().is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Faults(pub(crate) Arc<FaultStore>);

impl Faults {
    /// Adds a fault after the ones already injected; returns its id.
    /// Refuses a status outside 400–599, an operation id the spec does not
    /// have, and a path prefix without a leading `/`.
    pub fn inject(&self, fault: Fault) -> Result<u64, InvalidFault> {
        self.0.inject(fault)
    }

    /// The faults still active, in the order injected (expired ones are
    /// gone).
    pub fn list(&self) -> Vec<ActiveFault> {
        self.0.lock().clone()
    }

    /// Removes the fault with this id; whether there was one.
    pub fn remove(&self, id: u64) -> bool {
        let mut active = self.0.lock();
        let before = active.len();
        active.retain(|f| f.id != id);
        active.len() != before
    }

    /// Removes every fault; how many there were.
    pub fn clear(&self) -> usize {
        std::mem::take(&mut *self.0.lock()).len()
    }
}

// ---------------------------------------------------------------------------
// Answers

/// The answer of a fault that strikes before the handler.
pub(crate) async fn before_handler(fault: &Fault, conn: &Conn) -> Response {
    match &fault.kind {
        // Latency never ends up here (the plan keeps only its delay).
        FaultKind::Latency(_) => json_response(StatusCode::OK, &ok(json!({}))),
        FaultKind::Status {
            status,
            retry_after,
            message,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = ApiError::new(status, message.clone()).into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            response
        }
        FaultKind::Html { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            let reason = status.canonical_reason().unwrap_or("Error");
            let page = format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n\
                 <center><h1>{code} {reason}</h1></center>\r\n<hr><center>sandbox-gateway</center>\r\n\
                 </body>\r\n</html>\r\n",
                code = status.as_u16()
            );
            let mut response = Response::new(Body::from(page));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        FaultKind::CutShort | FaultKind::Reset | FaultKind::ResetMidBody => {
            let placeholder = json_response(
                StatusCode::OK,
                &ok(json!({"sandbox_fault": "this answer is cut before its end"})),
            );
            lose(fault, placeholder, conn).await
        }
    }
}

/// The answer of a fault that strikes after the handler: `response`, lost.
pub(crate) async fn after_handler(fault: &Fault, response: Response, conn: &Conn) -> Response {
    lose(fault, response, conn).await
}

/// `response` with its body cut or its connection reset.
async fn lose(fault: &Fault, response: Response, conn: &Conn) -> Response {
    let (mut parts, body) = response.into_parts();
    match fault.kind {
        FaultKind::Reset => {
            // Nothing of the answer reaches the wire: the connection's
            // writes fail from now on, and it closes with a reset.
            conn.reset.store(true, Ordering::SeqCst);
            Response::from_parts(parts, body)
        }
        FaultKind::CutShort | FaultKind::ResetMidBody => {
            // The sandbox's answers are in memory: reading them cannot fail.
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            // At least two bytes declared and one fewer sent: always short.
            let declared = bytes.len().max(2);
            let half = bytes.slice(..(bytes.len() / 2).min(declared - 1));
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
            let body = Body::new(CutBody {
                state: CutState::Half(half),
                reset: (fault.kind == FaultKind::ResetMidBody).then(|| conn.reset.clone()),
            });
            Response::from_parts(parts, body)
        }
        _ => Response::from_parts(parts, body),
    }
}

/// A body of which only a first part is sent, under a `Content-Length` of
/// the whole (set on the response). hyper writes the head with the
/// header's length, sends the part, and on the body's error aborts the
/// connection: it closes without the rest (FIN), or, with `reset`, with an
/// RST.
struct CutBody {
    state: CutState,
    reset: Option<Arc<AtomicBool>>,
}

enum CutState {
    Half(Bytes),
    Pause(Pin<Box<tokio::time::Sleep>>),
    Done,
}

impl http_body::Body for CutBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.state {
            CutState::Half(half) => {
                let half = std::mem::take(half);
                // Let hyper flush the part before the connection ends.
                self.state =
                    CutState::Pause(Box::pin(tokio::time::sleep(Duration::from_millis(30))));
                Poll::Ready(Some(Ok(Frame::data(half))))
            }
            CutState::Pause(sleep) => {
                ready!(sleep.as_mut().poll(cx));
                self.state = CutState::Done;
                if let Some(reset) = &self.reset {
                    reset.store(true, Ordering::SeqCst);
                }
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "sandbox fault: body cut short",
                ))))
            }
            CutState::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

// ---------------------------------------------------------------------------
// Connections

/// The server's listener: TCP, each connection wrapped so that a fault can
/// reset it.
pub(crate) struct FaultListener(pub(crate) TcpListener);

impl axum::serve::Listener for FaultListener {
    type Io = FaultIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (FaultIo, std::net::SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        FaultIo {
                            stream,
                            reset: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                // Out of file descriptors and the like: wait, try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

/// One connection. Once `reset` is set, reads and writes fail, so hyper
/// drops the connection, and dropping it sends an RST (`SO_LINGER` 0).
pub(crate) struct FaultIo {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl FaultIo {
    fn check(&self) -> io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "sandbox fault: connection reset",
            ))
        } else {
            Ok(())
        }
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The handler's handle on its connection (axum's connect info).
#[derive(Clone)]
pub(crate) struct Conn {
    reset: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, FaultListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        Self {
            reset: stream.io().reset.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// The control route

/// Who sent a control request, as far as its bearer token goes.
pub(crate) enum Caller {
    /// The sandbox's admin token ([`Sandbox::token`](crate::Sandbox::token)).
    Admin,
    /// A token of the sandbox, not the admin's.
    Other,
    /// No token, or one the sandbox never issued.
    Unknown,
}

/// `POST /_sandbox/faults`: one fault in its JSON form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    fault: String,
    status: Option<u16>,
    retry_after: Option<u64>,
    message: Option<String>,
    ms: Option<u64>,
    operation: Option<String>,
    method: Option<String>,
    path_prefix: Option<String>,
    times: Option<Times>,
    #[serde(default)]
    after: u32,
    handler: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Times {
    Count(u32),
    Word(String),
}

impl FaultRequest {
    fn into_fault(self) -> Result<Fault, ApiError> {
        let bad = |field: &str, why: &str| ApiError::unprocessable(format!("`{field}`: {why}"));
        let mut fault = match self.fault.as_str() {
            "latency" => Fault::latency(Duration::from_millis(
                self.ms
                    .ok_or_else(|| bad("ms", "required by a latency fault"))?,
            )),
            "status" => {
                let status = self
                    .status
                    .ok_or_else(|| bad("status", "required by a status fault"))?;
                let mut f = Fault::status(status);
                if let Some(secs) = self.retry_after {
                    f = f.retry_after(secs);
                }
                f
            }
            "rate_limited" => Fault::rate_limited(self.retry_after.unwrap_or(1)),
            "html" => Fault::html(self.status.unwrap_or(502)),
            "cut_short" => Fault::cut_short(),
            "reset" => Fault::reset(),
            "reset_mid_body" => Fault::reset_mid_body(),
            other => {
                return Err(bad(
                    "fault",
                    &format!(
                        "unknown fault {other:?}; one of latency, status, rate_limited, html, \
                         cut_short, reset, reset_mid_body"
                    ),
                ));
            }
        };
        if let Some(message) = self.message {
            fault = fault.message(message);
        }
        fault = match (self.operation, self.method, self.path_prefix) {
            (None, None, None) => fault,
            (Some(id), None, None) => fault.on(id),
            (None, method, Some(prefix)) => fault.on_path(method.as_deref().unwrap_or("*"), prefix),
            (None, Some(_), None) => return Err(bad("method", "needs a `path_prefix`")),
            (Some(_), _, _) => {
                return Err(bad(
                    "operation",
                    "give either `operation` or `method` + `path_prefix`, not both",
                ));
            }
        };
        fault = match self.times {
            None => fault,
            Some(Times::Count(0)) => return Err(bad("times", "at least 1, or \"always\"")),
            Some(Times::Count(n)) => fault.times(n),
            Some(Times::Word(w)) if w == "always" => fault.always(),
            Some(Times::Word(w)) => {
                return Err(bad("times", &format!("a count or \"always\", not {w:?}")));
            }
        };
        fault = fault.after(self.after);
        match self.handler.as_deref() {
            None | Some("before") => {}
            Some("after") if fault.loses_answer() => fault = fault.after_handler(),
            Some("after") => {
                return Err(bad(
                    "handler",
                    "only a lost answer (cut_short, reset, reset_mid_body) runs the handler",
                ));
            }
            Some(other) => {
                return Err(bad(
                    "handler",
                    &format!("\"before\" or \"after\", not {other:?}"),
                ));
            }
        }
        Ok(fault)
    }
}

/// The sandbox's own routes under `/_sandbox/`, outside the spec:
/// `GET`/`POST`/`DELETE /_sandbox/faults`, `DELETE /_sandbox/faults/{id}`,
/// for the admin token only.
pub(crate) async fn control(
    store: &FaultStore,
    caller: Caller,
    method: &Method,
    path: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let id = match path.strip_prefix(FAULTS_PATH) {
        Some("") => None,
        Some(rest) => match rest.strip_prefix('/').map(str::parse::<u64>) {
            Some(Ok(id)) => Some(id),
            _ => return Err(ApiError::not_found(format!("route {method} {path}"))),
        },
        None => return Err(ApiError::not_found(format!("route {method} {path}"))),
    };
    let allowed = if id.is_some() {
        "DELETE"
    } else {
        "GET, POST, DELETE"
    };
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}; allowed: {allowed}"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allowed));
        return Ok(response);
    }
    match caller {
        Caller::Admin => {}
        Caller::Other => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the sandbox's control routes need its admin token (`Sandbox::token`)",
            ));
        }
        Caller::Unknown => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication required: send `Authorization: Bearer <admin token>`",
            ));
        }
    }
    let answer = match (method.as_str(), id) {
        ("GET", _) => {
            let list: Vec<Value> = store.lock().iter().map(ActiveFault::to_json).collect();
            json!({"faults": list})
        }
        ("DELETE", None) => {
            let cleared = std::mem::take(&mut *store.lock()).len();
            json!({"cleared": cleared})
        }
        ("DELETE", Some(id)) => {
            let mut active = store.lock();
            let Some(at) = active.iter().position(|f| f.id == id) else {
                return Err(ApiError::not_found(format!("fault {id}")));
            };
            let removed = active.remove(at);
            json!({"fault": removed.to_json()})
        }
        _ => {
            let bytes = axum::body::to_bytes(body, 1024 * 1024)
                .await
                .map_err(|_| ApiError::bad_request("the request body is too large"))?;
            let request: FaultRequest = decode(&bytes)?;
            let fault = request.into_fault()?;
            // Described as injected: a request may fire it before we answer.
            let mut entry = ActiveFault {
                id: 0,
                to_skip: fault.after,
                remaining: fault.times,
                fired: 0,
                fault: fault.clone(),
            };
            entry.id = store
                .inject(fault)
                .map_err(|e| ApiError::unprocessable(e.0))?;
            json!({"fault": entry.to_json()})
        }
    };
    Ok(json_response(StatusCode::OK, &ok(answer)))
}
