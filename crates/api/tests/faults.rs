//! Fault injection over raw TCP (see `common::fault`): each test asserts the
//! exact outcome and the number of attempts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cm_api::{
    AuthError, CallOptions, Client, ClientCredentials, Endpoint, Error, RateGate, RetryPolicy,
    TransportKind,
};
use common::fault::{FaultServer, Received, Reply};
use common::{fast_retries, isolated};
use futures::StreamExt;
use serde_json::json;

const DATASETS: &str = "/api/v1/datasets";
const SECRET: &str = "cl13nt-s3cr3t-value";
const TOKEN_PATH: &str = "/identity/token";

fn ok_datasets() -> Reply {
    Reply::json(200, json!({"status": "ok", "datasets": []}))
}

fn client(server: &FaultServer, policy: RetryPolicy) -> Client {
    isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("tok-static-123")
        .retry_policy(policy)
        .build()
        .unwrap()
}

fn attempts(err: &Error) -> Option<u32> {
    match err {
        Error::Api { attempts, .. }
        | Error::UnexpectedResponse { attempts, .. }
        | Error::Transport { attempts, .. }
        | Error::RateLimited { attempts, .. } => Some(*attempts),
        _ => None,
    }
}

async fn advance(
    client: &Client,
) -> Result<cm_api::Response<cm_api::types::AdvanceStreamResponse>, Error> {
    client
        .advance_stream()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .body(cm_api::types::AdvanceStreamRequest {
            sequence_id: "seq-1".into(),
        })
        .send()
        .await
}

// ---------------------------------------------------------------------------
// Retry-After, retryable statuses
// ---------------------------------------------------------------------------

#[tokio::test]
async fn retry_after_in_seconds_longer_than_max_backoff_reaches_the_caller() {
    let server = FaultServer::script(vec![Reply::json_with(
        429,
        json!({"status": "error", "message": "Too many requests"}),
        ("retry-after", "120"),
    )])
    .await;
    // max_backoff is 2 s: a 120 s wait is returned, not shortened.
    let err = client(&server, fast_retries(4))
        .list_datasets()
        .send()
        .await
        .unwrap_err();

    assert_eq!(err.status(), Some(429));
    assert_eq!(attempts(&err), Some(1));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(err.is_retryable());
    assert_eq!(server.count(DATASETS), 1);
}

#[tokio::test]
async fn retry_after_in_seconds_within_max_backoff_is_waited_once() {
    let server = FaultServer::script(vec![
        Reply::json_with(
            429,
            json!({"status": "error", "message": "slow down"}),
            ("retry-after", "1"),
        ),
        ok_datasets(),
    ])
    .await;
    let gate = Arc::new(RateGate::new());
    let client = client(&server, fast_retries(4));

    let response = gate.scope(client.list_datasets().send()).await.unwrap();

    assert_eq!(response.attempts(), 2);
    assert_eq!(gate.pauses(), 1);
    assert_eq!(server.count(DATASETS), 2);
}

#[tokio::test]
async fn retry_after_as_an_http_date_reaches_the_caller_and_the_gate_pause_is_capped() {
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    let date = httpdate::fmt_http_date(later);
    let server = FaultServer::script(vec![Reply::json_with(
        429,
        json!({"status": "error", "message": "quota"}),
        ("retry-after", &date),
    )])
    .await;
    let gate = Arc::new(RateGate::new());

    let err = gate
        .scope(client(&server, fast_retries(4)).list_datasets().send())
        .await
        .unwrap_err();

    assert_eq!(attempts(&err), Some(1));
    let wait = err.retry_after().expect("the date reaches the caller");
    assert!(
        wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600),
        "{wait:?}"
    );
    // The job's gate is closed for the cap (60 s), not for an hour.
    assert!(gate.remaining() <= cm_api::retry::DEFAULT_MAX_GATE_PAUSE);
    assert!(gate.remaining() > Duration::from_secs(50));
}

#[tokio::test]
async fn a_503_then_success_is_retried_but_not_for_a_state_changing_post() {
    let server = FaultServer::script(vec![
        Reply::json(503, json!({"status": "error", "message": "unavailable"})),
        ok_datasets(),
        Reply::json(503, json!({"status": "error", "message": "unavailable"})),
    ])
    .await;
    let client = client(&server, fast_retries(3));

    assert_eq!(client.list_datasets().send().await.unwrap().attempts(), 2);
    let err = advance(&client).await.unwrap_err();
    assert_eq!((err.status(), attempts(&err)), (Some(503), Some(1)));
}

#[tokio::test]
async fn a_502_html_page_is_an_unexpected_response_after_every_attempt() {
    let page = format!(
        "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>{}</body>\n</html>",
        "nginx ".repeat(200)
    );
    let server = FaultServer::start(move |_, _| Reply::raw(502, "text/html", &page)).await;

    let err = client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap_err();

    assert!(
        matches!(
            &err,
            Error::UnexpectedResponse {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains('\n') && text.chars().count() < 300, "{text}");
    assert!(text.contains("502 Bad Gateway"), "{text}");
    assert_eq!(server.count(DATASETS), 3);
}

// ---------------------------------------------------------------------------
// Bodies cut, connections reset, slow servers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_truncated_body_is_retried_for_a_get_but_not_for_a_state_changing_post() {
    let partial = br#"{"status":"ok","datas"#.to_vec();
    let server = FaultServer::script(vec![
        Reply::Truncated {
            status: 200,
            declared: 200,
            body: partial.clone(),
        },
        ok_datasets(),
        Reply::Truncated {
            status: 200,
            declared: 200,
            body: partial,
        },
    ])
    .await;
    let client = client(&server, fast_retries(3));

    assert_eq!(client.list_datasets().send().await.unwrap().attempts(), 2);
    // The advance reached the server: a repeat could move the stream twice.
    let err = advance(&client).await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn a_reset_before_the_response_is_retried() {
    let server = FaultServer::script(vec![Reply::Reset, ok_datasets()]).await;
    let response = client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap();
    assert_eq!(response.attempts(), 2);
    assert_eq!(server.count(DATASETS), 2);
}

#[tokio::test]
async fn a_reset_in_the_middle_of_the_body_is_retried() {
    let server = FaultServer::script(vec![
        Reply::ResetMidBody {
            status: 200,
            declared: 4000,
            body: br#"{"status":"ok","datasets":["#.to_vec(),
        },
        ok_datasets(),
    ])
    .await;
    let response = client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap();
    assert_eq!(response.attempts(), 2);
    assert_eq!(server.count(DATASETS), 2);
}

#[tokio::test]
async fn a_body_stalling_past_the_attempt_timeout_is_retried() {
    let server = FaultServer::script(vec![
        Reply::Stall {
            status: 200,
            declared: 500,
            body: br#"{"status":"ok","#.to_vec(),
            hold: Duration::from_secs(30),
        },
        ok_datasets(),
    ])
    .await;
    // 3 s: ample for the second, healthy attempt on a loaded machine.
    let client = isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("t")
        .request_timeout(Duration::from_secs(3))
        .retry_policy(fast_retries(3))
        .build()
        .unwrap();

    let response = client.list_datasets().send().await.unwrap();
    assert_eq!(response.attempts(), 2);
}

#[tokio::test]
async fn a_server_slower_than_the_1s_attempt_timeout_is_a_timeout_after_every_attempt() {
    let server = FaultServer::start(|_, _| ok_datasets().after(Duration::from_secs(5))).await;
    let client = isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("t")
        .request_timeout(Duration::from_secs(1))
        .retry_policy(fast_retries(2))
        .build()
        .unwrap();

    let err = client.list_datasets().send().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Timeout,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.count(DATASETS), 2);
}

#[tokio::test]
async fn a_200_whose_body_says_error_is_an_api_error_with_a_one_line_message() {
    let message = format!(
        "Internal failure:\n  at step 1\n  at step 2\n{}",
        "detail ".repeat(100)
    );
    let server = FaultServer::script(vec![Reply::json(
        200,
        json!({"status": "error", "message": message}),
    )])
    .await;

    let err = client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap_err();

    assert!(
        matches!(
            &err,
            Error::Api {
                status: 200,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.message(), Some(message.as_str()));
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.starts_with("list_datasets: HTTP 200: Internal failure: "),
        "{text}"
    );
    assert!(text.chars().count() < 260 && text.ends_with('…'), "{text}");
}

#[tokio::test]
async fn a_connect_error_is_retried_even_for_a_state_changing_post() {
    // A port with nothing listening: every connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = isolated()
        .endpoint(Endpoint::parse(&url).unwrap())
        .token("t")
        .retry_policy(fast_retries(3))
        .build()
        .unwrap();

    let err = advance(&client).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Connect,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Timeouts, deadlines and extreme durations
// ---------------------------------------------------------------------------

#[tokio::test]
async fn extreme_durations_mean_no_limit_and_never_panic() {
    let server = FaultServer::script(vec![
        Reply::json(503, json!({"status": "error", "message": "unavailable"})),
        ok_datasets(),
    ])
    .await;
    let client = isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("t")
        .connect_timeout(Duration::MAX)
        .request_timeout(Duration::MAX)
        .retry_policy(
            RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::MAX)
                .deadline(Duration::MAX),
        )
        .build()
        .unwrap();

    assert_eq!(client.list_datasets().send().await.unwrap().attempts(), 2);
    let response = CallOptions::new()
        .attempt_timeout(Duration::MAX)
        .deadline(Duration::MAX)
        .scope(client.list_datasets().send())
        .await;
    // The script is exhausted: a 500, not a panic.
    assert_eq!(response.unwrap_err().status(), Some(500));
}

#[tokio::test]
async fn a_download_is_bounded_by_progress_not_by_the_call_deadline() {
    let chunks: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'a' + i; 1000]).collect();
    let expected: Vec<u8> = chunks.concat();
    let server = FaultServer::start(move |_, _| Reply::Trickle {
        status: 200,
        content_type: "application/pdf".into(),
        chunks: chunks.clone(),
        every: Duration::from_millis(300),
    })
    .await;
    // The whole transfer (~1.8 s) outlasts the 1 s deadline; no gap
    // between chunks reaches the 2 s attempt timeout.
    let client = isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("t")
        .request_timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::none().deadline(Duration::from_secs(1)))
        .build()
        .unwrap();

    let body = client
        .get_attachment()
        .attachment_reference("0f3a9c1e2b7d4a6f.0.1")
        .send()
        .await
        .unwrap()
        .into_inner()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), expected.as_slice());
}

#[tokio::test]
async fn a_per_call_attempt_timeout_overrides_the_client_setting() {
    let server = FaultServer::start(|_, _| Reply::Stall {
        status: 200,
        declared: 100,
        body: b"{".to_vec(),
        hold: Duration::from_secs(3),
    })
    .await;
    let client = client(&server, RetryPolicy::none());

    // Without the override the 120 s timeout never fires: the stall ends in
    // a cut body. With it, the attempt times out first.
    let err = CallOptions::new()
        .attempt_timeout(Duration::from_millis(300))
        .scope(client.list_datasets().send())
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
    let err = client.list_datasets().send().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Connection,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A port with nothing listening: a request that reaches it fails to connect.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn client_at(url: &str, policy: RetryPolicy) -> Client {
    isolated()
        .endpoint(Endpoint::parse(url).unwrap())
        .token("t")
        .retry_policy(policy)
        .build()
        .unwrap()
}

/// The gate was open in time when the call arrived, but is closed again
/// (longer) while the call waits: the wait still ends at the deadline, with
/// nothing sent. Paused clock: nothing touches the network.
#[tokio::test(start_paused = true)]
async fn a_gate_closed_again_while_waiting_still_ends_at_the_deadline() {
    let client = client_at(
        &closed_port(),
        fast_retries(3).deadline(Duration::from_secs(10)),
    );
    let gate = Arc::new(RateGate::new());
    gate.pause_for(Duration::from_secs(5));
    let again = gate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        again.pause_for(Duration::from_secs(30));
    });
    let started = tokio::time::Instant::now();

    let err = gate.scope(client.list_datasets().send()).await.unwrap_err();

    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert!(
        matches!(err, Error::RateLimited { attempts: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(24)));
}

/// A token provider that takes `delay` to hand out a token.
#[derive(Debug)]
struct SlowToken {
    delay: Duration,
}

impl cm_api::TokenProvider for SlowToken {
    fn token(&self) -> cm_api::auth::BoxFuture<'_, Result<cm_api::AccessToken, AuthError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Ok(cm_api::AccessToken::new("t", None))
        })
    }
}

/// The wait for a token and the rest of the call share one deadline: after
/// 8 s of the 10 s spent waiting for the token, a gate closed for 5 s more
/// no longer fits, and the call ends at once (it used to start a fresh
/// 10 s deadline and wait).
#[tokio::test(start_paused = true)]
async fn the_token_wait_counts_against_the_call_deadline() {
    let client = isolated()
        .endpoint(Endpoint::parse(&closed_port()).unwrap())
        .token_provider(SlowToken {
            delay: Duration::from_secs(8),
        })
        .retry_policy(fast_retries(3).deadline(Duration::from_secs(10)))
        .build()
        .unwrap();
    let gate = Arc::new(RateGate::new());
    gate.pause_for(Duration::from_secs(13));
    let started = tokio::time::Instant::now();

    let err = gate.scope(client.list_datasets().send()).await.unwrap_err();

    assert_eq!(started.elapsed(), Duration::from_secs(8));
    assert!(
        matches!(err, Error::RateLimited { attempts: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_gate_closed_beyond_the_deadline_fails_at_once_without_sending() {
    let server = FaultServer::script(vec![ok_datasets()]).await;
    let client = client(&server, fast_retries(3).deadline(Duration::from_secs(1)));
    let gate = Arc::new(RateGate::new());
    gate.pause_for(Duration::from_secs(30));

    let err = gate.scope(client.list_datasets().send()).await.unwrap_err();

    assert!(
        matches!(err, Error::RateLimited { attempts: 0, .. }),
        "{err:?}"
    );
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(server.received().len(), 0);
}

// ---------------------------------------------------------------------------
// Progress bounds, per-call timeouts that lengthen, 500s, maybe-applied
// (issue 19)
// ---------------------------------------------------------------------------

/// `total` bytes in `pieces` chunks, one every `every`: an upload that
/// keeps moving at a steady pace.
fn paced_body(total: usize, pieces: usize, every: Duration) -> (cm_api::upload::RawBody, Vec<u8>) {
    let content: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<bytes::Bytes> = content
        .chunks(total / pieces)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let stream = futures::stream::iter(chunks).then(move |chunk| async move {
        tokio::time::sleep(every).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let body = cm_api::upload::RawBody::from_stream(
        "application/octet-stream",
        stream,
        Some(total as u64),
    );
    (body, content)
}

fn client_with_attempt_timeout(server: &FaultServer, timeout: Duration) -> Client {
    isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("t")
        .request_timeout(timeout)
        .retry_policy(fast_retries(4))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_streamed_upload_that_keeps_moving_outlasts_the_attempt_timeout() {
    let server = FaultServer::start(|_, _| Reply::json(200, json!({"status": "ok"}))).await;
    let client = client_with_attempt_timeout(&server, Duration::from_secs(1));
    // 4 MiB over about 3 s, a piece every 100 ms: never 1 s without progress.
    let (body, content) = paced_body(4 << 20, 32, Duration::from_millis(100));

    let response = client.upload_files().file(body).send().await.unwrap();

    assert_eq!(response.attempts(), 1);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/api/_private/files/upload");
    assert_eq!(received[0].body, content);
}

#[tokio::test]
async fn an_upload_from_memory_is_tracked_yet_sent_whole_with_its_length_and_retried() {
    let server = FaultServer::script(vec![
        Reply::json(503, json!({"status": "error", "message": "busy"})),
        Reply::json(200, json!({"status": "ok"})),
    ])
    .await;
    let client = client_with_attempt_timeout(&server, Duration::from_secs(5));
    let content: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
    let body = cm_api::upload::RawBody::from_bytes("application/json", content.clone());

    // A PUT that replaces a document: idempotent, so the 503 is retried
    // with the same bytes.
    let response = client
        .update_appliance_config()
        .project("acme")
        .config_key("exchange")
        .document(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.attempts(), 2);
    let received = server.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.header("content-length"), Some("300000"));
        assert_eq!(request.body, content);
    }
}

#[tokio::test]
async fn a_streamed_upload_that_stops_moving_fails_after_the_attempt_timeout() {
    let server = FaultServer::start(|_, _| Reply::json(200, json!({"status": "ok"}))).await;
    let client = client_with_attempt_timeout(&server, Duration::from_millis(500));
    // One piece, then nothing: the stream never ends.
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"id,subject\n",
    ))])
    .chain(futures::stream::pending());
    let body = cm_api::upload::RawBody::from_stream("text/csv", stream, Some(1000));

    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.upload_files().file(body).send(),
    )
    .await
    .expect("the progress bound ends the upload")
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
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(cause, "no progress for 500ms");
}

#[tokio::test]
async fn a_download_that_stops_moving_fails_after_the_attempt_timeout() {
    let server = FaultServer::start(|_, _| Reply::Stall {
        status: 200,
        declared: 1000,
        body: b"%PDF-1.7".to_vec(),
        hold: Duration::from_secs(30),
    })
    .await;
    let client = client_with_attempt_timeout(&server, Duration::from_millis(500));
    let mut download = client
        .get_attachment()
        .attachment_reference("0f3a9c1e2b7d4a6f.0.1")
        .send()
        .await
        .unwrap()
        .into_inner();

    let first = download.next().await.unwrap().unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), download.next())
        .await
        .expect("the progress bound ends the body")
        .unwrap()
        .unwrap_err();

    assert_eq!(first.as_ref(), b"%PDF-1.7");
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(download.next().await.is_none());
}

#[tokio::test]
async fn a_json_file_is_streamed_as_it_arrives_and_never_read_as_an_envelope() {
    // A JSON attachment whose top level says "error", cut off after its
    // first bytes: the caller gets those bytes at once, as a file.
    let head = br#"{"status":"error","message":"this is the file's own content""#.to_vec();
    let server = FaultServer::start({
        let head = head.clone();
        move |_, _| Reply::Stall {
            status: 200,
            declared: head.len() + 100,
            body: head.clone(),
            hold: Duration::from_secs(10),
        }
    })
    .await;
    let client = client_with_attempt_timeout(&server, Duration::from_secs(30));

    let response = tokio::time::timeout(
        Duration::from_secs(5),
        client
            .get_attachment()
            .attachment_reference("0f3a9c1e2b7d4a6f.0.1")
            .send(),
    )
    .await
    .expect("the headers are enough: the body is not buffered")
    .unwrap();
    let mut download = response.into_inner();

    assert_eq!(download.content_type(), Some("application/json"));
    let first = download.next().await.unwrap().unwrap();
    assert_eq!(first.as_ref(), head.as_slice());
}

#[tokio::test]
async fn a_per_call_attempt_timeout_can_lengthen_the_clients() {
    let server = FaultServer::start(|_, _| ok_datasets().after(Duration::from_millis(2500))).await;
    let client = client_with_attempt_timeout(&server, Duration::from_secs(1));

    let response = client
        .list_datasets()
        .with_options(CallOptions::new().attempt_timeout(Duration::from_secs(10)))
        .send()
        .await
        .unwrap();

    assert_eq!(response.attempts(), 1);
    assert_eq!(server.count(DATASETS), 1);
}

#[tokio::test]
async fn a_500_on_an_idempotent_read_is_retried_within_the_same_budget() {
    let server = FaultServer::script(vec![
        Reply::json(500, json!({"status": "error", "message": "Internal error"})),
        ok_datasets(),
    ])
    .await;

    let response = client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap();

    assert_eq!(response.attempts(), 2);
    assert_eq!(server.count(DATASETS), 2);
}

#[tokio::test]
async fn a_500_on_a_state_changing_post_is_returned_and_may_have_applied() {
    let server = FaultServer::script(vec![Reply::json(
        500,
        json!({"status": "error", "message": "Internal error"}),
    )])
    .await;

    let err = advance(&client(&server, fast_retries(3)))
        .await
        .unwrap_err();

    assert_eq!(err.status(), Some(500));
    assert_eq!(attempts(&err), Some(1));
    assert!(err.maybe_applied());
    assert!(err.is_retryable());
}

fn create_source(
    client: &Client,
) -> impl std::future::Future<Output = Result<cm_api::Response<cm_api::types::SourceResponse>, Error>> + '_
{
    let body: cm_api::types::CreateSourceRequest =
        serde_json::from_value(json!({"source": {}})).unwrap();
    client
        .create_source()
        .project("acme")
        .source_name("inbox")
        .body(body)
        .send()
}

#[tokio::test]
async fn a_create_retried_after_a_lost_answer_says_its_409_may_be_its_own_doing() {
    let server = FaultServer::script(vec![
        // The create is applied, but its answer never arrives in time.
        Reply::json(200, json!({"status": "ok", "source": {}})).after(Duration::from_secs(3)),
        Reply::json(
            409,
            json!({"status": "error", "message": "Source already exists"}),
        ),
    ])
    .await;
    let client = client_with_attempt_timeout(&server, Duration::from_millis(500));

    let err = create_source(&client).await.unwrap_err();

    assert_eq!(err.status(), Some(409));
    assert_eq!(attempts(&err), Some(2));
    assert!(err.maybe_applied(), "{err:?}");
}

#[tokio::test]
async fn a_409_on_the_first_attempt_was_not_applied() {
    let server = FaultServer::script(vec![Reply::json(
        409,
        json!({"status": "error", "message": "Source already exists"}),
    )])
    .await;
    let client = client_with_attempt_timeout(&server, Duration::from_secs(5));

    let err = create_source(&client).await.unwrap_err();

    assert_eq!(err.status(), Some(409));
    assert!(!err.maybe_applied());
}

/// A provider whose refresh never answers.
#[derive(Debug)]
struct HangingRefresh;

impl cm_api::TokenProvider for HangingRefresh {
    fn token(&self) -> cm_api::auth::BoxFuture<'_, Result<cm_api::AccessToken, AuthError>> {
        Box::pin(async { Ok(cm_api::AccessToken::new("rejected-token", None)) })
    }

    fn refresh<'a>(
        &'a self,
        _rejected: &'a cm_api::Secret,
    ) -> cm_api::auth::BoxFuture<'a, Result<Option<cm_api::AccessToken>, AuthError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_hanging_refresh_after_a_401_ends_at_the_call_deadline() {
    let server = FaultServer::start(|_, _| {
        Reply::json(401, json!({"status": "error", "message": "token expired"}))
    })
    .await;
    let client = isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token_provider(HangingRefresh)
        .retry_policy(fast_retries(3).deadline(Duration::from_millis(700)))
        .build()
        .unwrap();

    let err = tokio::time::timeout(Duration::from_secs(20), client.list_datasets().send())
        .await
        .expect("the deadline bounds the refresh")
        .unwrap_err();

    assert!(
        matches!(err, Error::Auth(AuthError::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(server.count(DATASETS), 1);
}

// ---------------------------------------------------------------------------
// OAuth client credentials against a misbehaving identity server
// ---------------------------------------------------------------------------

fn token_reply(token: &str, expires_in: u64) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
    )
}

/// A server that is both the identity server (`TOKEN_PATH`, answered by
/// `token(n)`) and the API (200 for any bearer in `accepted`, else 401).
async fn identity_and_api(
    token: impl Fn(usize) -> Reply + Send + Sync + 'static,
    accepted: &'static [&'static str],
) -> FaultServer {
    FaultServer::start(move |request: &Received, n| {
        if request.path == TOKEN_PATH {
            return token(n);
        }
        let bearer = request.header("authorization").unwrap_or("");
        if accepted.iter().any(|t| bearer == format!("Bearer {t}")) {
            ok_datasets()
        } else {
            Reply::json(401, json!({"status": "error", "message": "token expired"}))
        }
    })
    .await
}

fn cc_client(server: &FaultServer, credentials: ClientCredentials, policy: RetryPolicy) -> Client {
    isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .client_credentials(credentials.token_url(format!("{}{TOKEN_PATH}", server.url)))
        // Ample for a healthy exchange on a loaded machine.
        .request_timeout(Duration::from_secs(3))
        .retry_policy(policy)
        .build()
        .unwrap()
}

fn bearers(server: &FaultServer) -> Vec<String> {
    server
        .received()
        .iter()
        .filter(|r| r.path == DATASETS)
        .map(|r| r.header("authorization").unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn a_401_refreshes_the_token_through_a_transient_exchange_failure() {
    let server = identity_and_api(
        |n| match n {
            0 => token_reply("access-1", 3600),
            1 => Reply::json(503, json!({"error": "temporarily_unavailable"})),
            _ => token_reply("access-2", 3600),
        },
        &["access-2"],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        fast_retries(3),
    );

    let response = client.list_datasets().send().await.unwrap();

    assert_eq!(response.attempts(), 2);
    assert_eq!(server.count(TOKEN_PATH), 3, "the 503 exchange was retried");
    assert_eq!(bearers(&server), ["Bearer access-1", "Bearer access-2"]);
}

/// Polls `done` every 100 ms for up to 20 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// A refresh buffer longer than the token's life is capped at half of it:
/// the token is used for its first half (not replaced at every call), and
/// replaced after it. Real time (the exchange goes over loopback TCP, which
/// a paused clock would skip through): a 10 s token, so every bound has
/// seconds of margin.
#[tokio::test]
async fn a_huge_refresh_buffer_refreshes_at_half_the_token_life() {
    let server = identity_and_api(
        |n| token_reply(&format!("access-{}", n + 1), 10),
        &["access-1", "access-2"],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET).refresh_buffer(Duration::MAX),
        fast_retries(3),
    );

    client.list_datasets().send().await.unwrap();
    client.list_datasets().send().await.unwrap();
    assert_eq!(server.count(TOKEN_PATH), 1, "used, not replaced at once");

    // Past half its life (5 s): served, and replaced in the background.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    client.list_datasets().send().await.unwrap();
    assert!(eventually(|| server.count(TOKEN_PATH) == 2).await);
    // The replacement is used by the next calls.
    let mut replaced = false;
    for _ in 0..100 {
        client.list_datasets().send().await.unwrap();
        if bearers(&server).last().map(String::as_str) == Some("Bearer access-2") {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replaced, "{:?}", bearers(&server));
    assert_eq!(server.count(TOKEN_PATH), 2);
}

#[tokio::test]
async fn the_still_valid_token_is_served_while_one_background_refresh_runs() {
    // 8 s tokens: the 60 s buffer is capped at 4 s, so a refresh is due
    // after 4 s while the token stays valid until 8 s; the refresh takes
    // 1.5 s (within the 3 s attempt timeout).
    let server = identity_and_api(
        |n| match n {
            0 => token_reply("access-1", 8),
            _ => token_reply("access-2", 3600).after(Duration::from_millis(1500)),
        },
        &["access-1", "access-2"],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        fast_retries(3),
    );
    client.list_datasets().send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;

    // In the refresh window: these do not wait for the slow exchange.
    let calls = (0..5).map(|_| client.list_datasets().send());
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert!(
        bearers(&server).iter().all(|b| b == "Bearer access-1"),
        "{:?}",
        bearers(&server)
    );

    // Once the refresh is done, its token is used.
    let mut replaced = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.list_datasets().send().await.unwrap();
        if bearers(&server).last().map(String::as_str) == Some("Bearer access-2") {
            replaced = true;
            break;
        }
    }
    assert!(replaced, "{:?}", bearers(&server));
    assert_eq!(server.count(TOKEN_PATH), 2, "one background refresh");
}

#[tokio::test]
async fn queued_requests_share_one_failed_exchange() {
    let server = identity_and_api(
        |_| {
            Reply::json(503, json!({"error": "temporarily_unavailable"}))
                .after(Duration::from_millis(300))
        },
        &[],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        RetryPolicy::none(),
    );

    let calls = (0..10).map(|_| client.list_datasets().send());
    for result in futures::future::join_all(calls).await {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::Auth(AuthError::Rejected { status: 503, .. })),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }
    assert_eq!(server.count(TOKEN_PATH), 1);
    assert_eq!(server.count(DATASETS), 0);
}

/// A 429 from the identity server with a `Retry-After` within the retry
/// policy's `max_backoff` is waited out (not the 1 ms backoff); one beyond
/// it is returned at once, as for API calls.
#[tokio::test]
async fn a_429_from_the_identity_server_honours_retry_after() {
    let server = identity_and_api(
        |n| match n {
            0 => Reply::json_with(429, json!({"error": "slow_down"}), ("retry-after", "1")),
            _ => token_reply("access-1", 3600),
        },
        &["access-1"],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        fast_retries(3),
    );
    let started = std::time::Instant::now();
    client.list_datasets().send().await.unwrap();
    // A lower bound only: any machine load makes it longer.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.count(TOKEN_PATH), 2);

    let server = identity_and_api(
        |_| Reply::json_with(429, json!({"error": "slow_down"}), ("retry-after", "3600")),
        &[],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        fast_retries(3),
    );
    let err = client.list_datasets().send().await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::Rejected { status: 429, .. })),
        "{err:?}"
    );
    assert_eq!(server.count(TOKEN_PATH), 1, "an hour is not waited out");
}

/// A `tracing` writer collecting everything into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The secret never shows in errors, `Debug` output or this crate's
/// `tracing` events at any level, TRACE included.
///
/// Limit: only `tracing` events are captured. reqwest logs through the
/// `log` crate, which this subscriber does not receive (that would need a
/// `tracing-log` `LogTracer`, not a dependency here); reqwest does not log
/// request bodies, where the secret travels.
#[tokio::test]
async fn a_failing_or_slow_token_endpoint_is_a_typed_error_that_never_shows_the_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cases: Vec<(&str, Reply, usize)> = vec![
        (
            "html",
            Reply::raw(200, "text/html", "<html><body>Sign in</body></html>"),
            1,
        ),
        (
            "503",
            Reply::json(503, json!({"error": "temporarily_unavailable"})),
            2,
        ),
        (
            "invalid json",
            Reply::raw(200, "application/json", r#"{"access_token": "#),
            1,
        ),
        (
            "slow",
            token_reply("access-late", 3600).after(Duration::from_secs(15)),
            2,
        ),
    ];
    let mut texts = Vec::new();
    for (name, reply, exchanges) in cases {
        let server = identity_and_api(move |_| reply.clone(), &[]).await;
        let credentials = ClientCredentials::new("app-id", SECRET);
        let client = cc_client(&server, credentials.clone(), fast_retries(2));

        let err = client.list_datasets().send().await.unwrap_err();

        match (name, &err) {
            ("html", Error::Auth(AuthError::InvalidResponse { status: 200, .. })) => {}
            ("503", Error::Auth(AuthError::Rejected { status: 503, .. })) => {
                assert!(err.is_retryable())
            }
            ("invalid json", Error::Auth(AuthError::InvalidResponse { status: 200, .. })) => {}
            ("slow", Error::Auth(AuthError::Timeout { .. })) => assert!(err.is_retryable()),
            _ => panic!("{name}: {err:?}"),
        }
        assert_eq!(server.count(TOKEN_PATH), exchanges, "{name}");
        assert_eq!(server.count(DATASETS), 0, "{name}");
        assert!(
            server.received()[0].body_text().contains(SECRET),
            "the secret is sent"
        );
        texts.push(format!("{err} {err:?} {credentials:?} {client:?}"));
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            texts.push(format!("{cause} {cause:?}"));
            source = cause.source();
        }
    }
    let traces = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(traces.contains("cm_api.token_exchange"), "{traces}");
    for text in texts.iter().chain([&traces]) {
        assert!(!text.contains(SECRET), "the secret leaked into:\n{text}");
    }
}

#[tokio::test]
async fn secrets_from_the_environment_are_trimmed_and_checked_at_build() {
    let server = identity_and_api(|_| token_reply("access-1", 3600), &["access-1"]).await;
    let path = common::config_file(
        "trimmed-secret",
        &format!(
            "[profiles.k8s]\nendpoint = \"{}\"\nclient_id_env = \"K8S_ID\"\nclient_secret_env = \"K8S_SECRET\"\ntoken_url = \"{}{TOKEN_PATH}\"\n",
            server.url, server.url
        ),
    );
    let secret_file = format!("{SECRET}\n");
    let client = common::with_env(&[
        ("REINFER_PROFILE", "k8s"),
        ("K8S_ID", "app-id\n"),
        ("K8S_SECRET", &secret_file),
    ])
    .config_path(&path)
    .build()
    .unwrap();
    client.list_datasets().send().await.unwrap();
    let exchange = server.received()[0].body_text();
    assert!(
        exchange.contains(&format!("client_secret={SECRET}&")),
        "{exchange}"
    );
    assert!(exchange.contains("client_id=app-id&"), "{exchange}");

    let broken = format!("{SECRET}\u{7}x");
    let err = common::with_env(&[
        ("REINFER_PROFILE", "k8s"),
        ("K8S_ID", "app-id"),
        ("K8S_SECRET", &broken),
    ])
    .config_path(&path)
    .build()
    .unwrap_err();
    assert!(
        matches!(err, Error::Config(cm_api::ConfigError::Invalid { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("K8S_SECRET"), "{err}");
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
    let err = common::with_env(&[
        ("REINFER_ENDPOINT", &server.url),
        ("REINFER_TOKEN", "tok en"),
    ])
    .config_path(common::no_config())
    .build()
    .unwrap_err();
    assert!(err.to_string().contains("REINFER_TOKEN"), "{err}");
}

/// A call whose deadline runs out while it waits for a slow token exchange
/// gives up (a typed, retryable `AuthError::Timeout`), but the exchange runs
/// on: a fresh call after the exchange's attempt timeout (3 s) uses its
/// token, with no second exchange. (It used to resume the abandoned
/// exchange, whose timer had run out, and exchange again.)
#[tokio::test]
async fn a_cancelled_token_waiter_followed_by_a_fresh_call() {
    let server = identity_and_api(
        |n| token_reply(&format!("access-{}", n + 1), 3600).after(Duration::from_millis(500)),
        &["access-1", "access-2"],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        fast_retries(3),
    );

    let err = CallOptions::new()
        .deadline(Duration::from_millis(100))
        .scope(client.list_datasets().send())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::Timeout { .. })),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(server.count(DATASETS), 0);

    tokio::time::sleep(Duration::from_millis(3500)).await;
    client.list_datasets().send().await.unwrap();

    assert_eq!(server.count(TOKEN_PATH), 1);
    assert_eq!(bearers(&server), ["Bearer access-1"]);
}

/// The exchange of a waiter that gave up still completes, so a token in its
/// refresh window is later served and replaced in the background as usual.
/// 8 s tokens: the refresh is due 4 s after the (0.5 s) exchange; the next
/// call comes at 5 s, past the abandoned exchange's attempt timeout (3 s).
#[tokio::test]
async fn proactive_refresh_still_runs_after_an_abandoned_token_wait() {
    let server = identity_and_api(
        |n| match n {
            0 => token_reply("access-1", 8).after(Duration::from_millis(500)),
            _ => token_reply("access-2", 3600),
        },
        &["access-1", "access-2"],
    )
    .await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET),
        fast_retries(3),
    );

    let abandoned =
        tokio::time::timeout(Duration::from_millis(100), client.list_datasets().send()).await;
    assert!(abandoned.is_err(), "the call was expected to be dropped");

    tokio::time::sleep(Duration::from_secs(5)).await;
    // In the refresh window: served the cached token, refreshed in the background.
    client.list_datasets().send().await.unwrap();
    assert_eq!(bearers(&server), ["Bearer access-1"]);
    assert!(eventually(|| server.count(TOKEN_PATH) == 2).await);

    let mut replaced = false;
    for _ in 0..100 {
        client.list_datasets().send().await.unwrap();
        if bearers(&server).last().map(String::as_str) == Some("Bearer access-2") {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replaced, "{:?}", bearers(&server));
    assert_eq!(server.count(TOKEN_PATH), 2);
}

// ---------------------------------------------------------------------------
// Counting helper for the consumer tests
// ---------------------------------------------------------------------------

#[allow(dead_code)]
fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[allow(dead_code)]
fn load(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}
