//! A raw-TCP HTTP/1.1 server that misbehaves on purpose: cut bodies,
//! resets before and in the middle of a response, stalls and trickles.
//! httpmock cannot do any of these.
//!
//! Loopback only (`127.0.0.1:0`), one request per connection
//! (`connection: close`), and bounded: it accepts at most
//! [`MAX_CONNECTIONS`] connections and stops by itself after [`LIFETIME`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections accepted before the server stops.
pub const MAX_CONNECTIONS: usize = 200;
/// How long the server lives, whatever happens.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// Largest request head or body read.
const MAX_REQUEST: usize = 8 << 20;

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A complete response.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `declared` bytes, sends `body` (shorter) and closes.
    Truncated {
        status: u16,
        declared: usize,
        body: Vec<u8>,
    },
    /// Reads the request, then resets the connection without answering.
    Reset,
    /// Announces `declared` bytes, sends `body` (shorter) and resets.
    ResetMidBody {
        status: u16,
        declared: usize,
        body: Vec<u8>,
    },
    /// Waits `delay`, then does the inner reply.
    Delay(Duration, Box<Reply>),
    /// Headers announcing the chunks' total, then each chunk after `every`.
    Trickle {
        status: u16,
        content_type: String,
        chunks: Vec<Vec<u8>>,
        every: Duration,
    },
    /// Headers announcing `declared` bytes and `body` (shorter), then holds
    /// the connection open for `hold` without sending more.
    Stall {
        status: u16,
        declared: usize,
        body: Vec<u8>,
        hold: Duration,
    },
}

impl Reply {
    /// A JSON response.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::Full {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A JSON response with one more header.
    pub fn json_with(status: u16, body: serde_json::Value, header: (&str, &str)) -> Self {
        Self::Full {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (header.0.into(), header.1.into()),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    /// A response of any content type.
    pub fn raw(status: u16, content_type: &str, body: &str) -> Self {
        Self::Full {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// This reply after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Self::Delay(delay, Box::new(self))
    }
}

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, without the `?` (empty when there is none).
    pub query: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Route = dyn Fn(&Received, usize) -> Reply + Send + Sync;

/// A running fault server.
#[derive(Clone)]
pub struct FaultServer {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    listener: Arc<Listener>,
}

/// The server's listening socket, which [`FaultServer::close`] drops (its
/// port then refuses connections) and [`FaultServer::reopen`] binds again.
struct Listener {
    address: std::net::SocketAddr,
    socket: Mutex<Option<TcpListener>>,
    /// The accept loop's last waker, woken by `reopen`.
    waker: Mutex<Option<std::task::Waker>>,
}

impl Listener {
    async fn accept(&self) -> Option<TcpStream> {
        std::future::poll_fn(|cx| {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            match self.socket.lock().unwrap().as_ref() {
                Some(listener) => listener
                    .poll_accept(cx)
                    .map(|accepted| accepted.ok().map(|(socket, _)| socket)),
                None => std::task::Poll::Pending,
            }
        })
        .await
    }
}

impl FaultServer {
    /// Serves every request with `route(request, n)`, where `n` counts the
    /// earlier requests to the same path (from 0).
    pub async fn start(route: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let url = format!("http://{address}");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let route: Arc<Route> = Arc::new(route);
        let log = received.clone();
        let listener = Arc::new(Listener {
            address,
            socket: Mutex::new(Some(listener)),
            waker: Mutex::new(None),
        });
        let accepting = listener.clone();
        tokio::spawn(async move {
            let serve = async {
                for _ in 0..MAX_CONNECTIONS {
                    let Some(socket) = accepting.accept().await else {
                        return;
                    };
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(connection(socket, route.clone(), log.clone()));
                }
            };
            let _ = tokio::time::timeout(LIFETIME, serve).await;
        });
        Self {
            url,
            received,
            listener,
        }
    }

    /// Closes the listening socket at once: connections to the port are
    /// refused until [`reopen`](Self::reopen).
    pub fn close(&self) {
        drop(self.listener.socket.lock().unwrap().take());
    }

    /// Listens on the same port again (inside a tokio runtime).
    pub fn reopen(&self) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // The closed listener's connections may linger in TIME_WAIT.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(self.listener.address)
            .expect("bind the same port");
        let listener = socket.listen(128).expect("listen");
        *self.listener.socket.lock().unwrap() = Some(listener);
        if let Some(waker) = self.listener.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    /// Serves the `n`-th request (overall) with `replies[n]`, and any later
    /// one with a 500 saying the script ran out.
    pub async fn script(replies: Vec<Reply>) -> Self {
        let next = Arc::new(Mutex::new(0usize));
        Self::start(move |_, _| {
            let mut next = next.lock().unwrap();
            let reply = replies.get(*next).cloned();
            *next += 1;
            reply.unwrap_or_else(|| {
                Reply::json(
                    500,
                    serde_json::json!({"status": "error", "message": "script exhausted"}),
                )
            })
        })
        .await
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// How many requests went to `path`.
    pub fn count(&self, path: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_REQUEST || socket.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while buf.len() < head_end + length {
        if socket.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
    Some(Received {
        method,
        path,
        query,
        headers,
        body: buf[head_end..head_end + length].to_vec(),
    })
}

fn head(status: u16, headers: &[(String, String)], length: usize) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status} Status\r\ncontent-length: {length}\r\nconnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn json_type() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

#[allow(deprecated)] // SO_LINGER 0: close with a reset, which is the point here.
fn reset(socket: TcpStream) {
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
}

async fn connection(mut socket: TcpStream, route: Arc<Route>, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let reply = {
        let mut log = log.lock().unwrap();
        let n = log.iter().filter(|r| r.path == request.path).count();
        log.push(request.clone());
        drop(log);
        route(&request, n)
    };
    let mut reply = reply;
    while let Reply::Delay(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let _ = socket.write_all(&head(status, &headers, body.len())).await;
            let _ = socket.write_all(&body).await;
            let _ = socket.shutdown().await;
        }
        Reply::Truncated {
            status,
            declared,
            body,
        } => {
            let _ = socket
                .write_all(&head(status, &json_type(), declared))
                .await;
            let _ = socket.write_all(&body).await;
            let _ = socket.shutdown().await;
        }
        Reply::Reset => reset(socket),
        Reply::ResetMidBody {
            status,
            declared,
            body,
        } => {
            let _ = socket
                .write_all(&head(status, &json_type(), declared))
                .await;
            let _ = socket.write_all(&body).await;
            let _ = socket.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(socket);
        }
        Reply::Trickle {
            status,
            content_type,
            chunks,
            every,
        } => {
            let total = chunks.iter().map(Vec::len).sum();
            let headers = vec![("content-type".to_owned(), content_type)];
            let _ = socket.write_all(&head(status, &headers, total)).await;
            for chunk in chunks {
                tokio::time::sleep(every).await;
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = socket.shutdown().await;
        }
        Reply::Stall {
            status,
            declared,
            body,
            hold,
        } => {
            let _ = socket
                .write_all(&head(status, &json_type(), declared))
                .await;
            let _ = socket.write_all(&body).await;
            tokio::time::sleep(hold).await;
        }
        Reply::Delay(..) => unreachable!(),
    }
}
