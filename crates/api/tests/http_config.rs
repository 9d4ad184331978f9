//! Each HTTP-client setting and per-call override, shown taking effect on
//! the request actually sent: a private root certificate against a local
//! TLS server, a proxy, default headers and a user-agent suffix, and the
//! per-call attempt timeout and retry policy.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cm_api::{CallOptions, Endpoint, Error, RetryPolicy, TransportKind};
use common::{fast_retries, isolated, token_client};
use httpmock::MockServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

const PROJECTS: &str = r#"{"status":"ok","projects":[]}"#;

/// Reads one request head (up to the blank line) and answers `PROJECTS`;
/// returns the head.
async fn answer_once<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PROJECTS}",
        PROJECTS.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    String::from_utf8_lossy(&head).into_owned()
}

/// A TLS server on 127.0.0.1 with a freshly generated self-signed
/// certificate; returns its URL and the certificate's PEM.
async fn tls_server() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let chain = vec![cert.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate aborts the handshake.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer_once(tls).await;
                }
            });
        }
    });
    (url, pem)
}

#[tokio::test]
async fn a_private_root_certificate_is_trusted_and_only_when_added() {
    let (url, pem) = tls_server().await;
    let endpoint = Endpoint::parse(&url).unwrap();

    let untrusting = isolated()
        .endpoint(endpoint.clone())
        .token("t")
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let err = untrusting.list_projects().send().await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. }),
        "a self-signed certificate is refused by default: {err:?}"
    );

    let trusting = isolated()
        .endpoint(endpoint)
        .token("t")
        .retry_policy(RetryPolicy::none())
        .add_root_certificate_pem(pem)
        .build()
        .unwrap();
    let projects = trusting.list_projects().send().await.unwrap();
    assert_eq!(projects.status(), 200);
}

#[test]
fn a_bad_pem_fails_build() {
    let err = isolated()
        .endpoint("https://acme.reinfer.io".parse().unwrap())
        .token("t")
        .add_root_certificate_pem("not a certificate")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("add_root_certificate_pem"),
        "{err}"
    );
}

/// A loopback "proxy" that records each request head and answers itself.
async fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let head = answer_once(tcp).await;
                record.lock().await.push(head);
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn requests_go_through_the_proxy_unless_no_proxy_lists_the_host() {
    let (proxy, seen) = recording_proxy().await;
    // Nothing listens at the endpoint (the discard port): only the proxy can answer.
    let client = isolated()
        .endpoint(Endpoint::parse("http://127.0.0.1:9").unwrap())
        .token("t")
        .retry_policy(RetryPolicy::none())
        .proxy(&proxy)
        .build()
        .unwrap();
    client.list_projects().send().await.unwrap();
    let heads = seen.lock().await.clone();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with("GET http://127.0.0.1:9/api/v1/projects HTTP/1.1"),
        "an absolute-form request to the proxy: {}",
        heads[0]
    );
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer t")
    );

    // A host in `no_proxy` is called directly.
    let server = MockServer::start_async().await;
    let direct = server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/projects");
            then.status(200)
                .header("content-type", "application/json")
                .body(PROJECTS);
        })
        .await;
    let client = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token("t")
        .retry_policy(RetryPolicy::none())
        .proxy(&proxy)
        .no_proxy("127.0.0.1")
        .build()
        .unwrap();
    client.list_projects().send().await.unwrap();
    direct.assert_async().await;
    assert_eq!(seen.lock().await.len(), 1, "the proxy saw nothing more");
}

#[tokio::test]
async fn default_headers_and_the_user_agent_suffix_are_sent_and_response_headers_returned() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/projects")
                .header("x-tenant-route", "blue")
                .header(
                    "user-agent",
                    format!("cm-api/{} my-app/2.1", env!("CARGO_PKG_VERSION")),
                );
            then.status(200)
                .header("content-type", "application/json")
                .header("x-custom", "kept")
                .body(PROJECTS);
        })
        .await;
    let client = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token("t")
        .default_header("X-Tenant-Route", "blue")
        .user_agent_suffix("my-app/2.1")
        .build()
        .unwrap();
    let response = client.list_projects().send().await.unwrap();
    mock.assert_async().await;
    assert_eq!(
        response.headers().get("x-custom").map(|v| v.as_bytes()),
        Some(&b"kept"[..])
    );
}

#[tokio::test]
async fn a_users_own_http_client_is_used_and_conflicts_are_refused() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/projects")
                .header("user-agent", "mine/1.0")
                .header("authorization", "Bearer t");
            then.status(200)
                .header("content-type", "application/json")
                .body(PROJECTS);
        })
        .await;
    let own = reqwest::Client::builder()
        .user_agent("mine/1.0")
        .build()
        .unwrap();
    let client = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token("t")
        .http_client(own.clone())
        .build()
        .unwrap();
    client.list_projects().send().await.unwrap();
    mock.assert_async().await;

    let err = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token("t")
        .http_client(own)
        .proxy("http://127.0.0.1:1")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("ClientBuilder::proxy"), "{err}");
}

#[tokio::test]
async fn a_per_call_attempt_timeout_cuts_one_call_only() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/projects");
            then.status(200)
                .header("content-type", "application/json")
                .delay(Duration::from_millis(1500))
                .body(PROJECTS);
        })
        .await;
    // The client allows 30 s per attempt; this call allows 200 ms.
    let client = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token("t")
        .request_timeout(Duration::from_secs(30))
        .retry_policy(fast_retries(4))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .list_projects()
        .with_options(
            CallOptions::new()
                .attempt_timeout(Duration::from_millis(200))
                .retry_policy(RetryPolicy::none()),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Timeout,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1200));

    // The next call, without options, waits for the slow answer.
    client.list_projects().send().await.unwrap();
}

#[tokio::test]
async fn a_per_call_retry_policy_replaces_the_clients() {
    let server = MockServer::start_async().await;
    let failing = server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/projects");
            then.status(503)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "busy"}));
        })
        .await;
    // The client never retries; this call tries three times.
    let client = token_client(&server, RetryPolicy::none());
    let err = client
        .list_projects()
        .with_options(CallOptions::new().retry_policy(fast_retries(3)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    failing.assert_calls_async(3).await;

    let err = client.list_projects().send().await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    failing.assert_calls_async(4).await;
}
