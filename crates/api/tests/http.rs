//! Requests against a loopback mock server: the exact request sent and the
//! exact value or error returned.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cm_api::{Error, RetryPolicy, TransportKind, types};
use common::{dataset, fast_retries, isolated, token_client};
use httpmock::{HttpMockResponse, MockServer};
use serde_json::json;

const TIMING: &str = "db;dur=3.5, total;dur=12.5;desc=\"whole request\"";

#[tokio::test]
async fn sends_the_bearer_token_and_strips_the_envelope() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/datasets")
                .header("authorization", "Bearer tok-static-123")
                .header("accept", "application/json")
                .header_prefix("user-agent", "cm-api/")
                .header_missing("api-version");
            then.status(200)
                .header("content-type", "application/json")
                .header("server-timing", TIMING)
                .header("x-request-id", "req-1")
                .json_body(
                    json!({"status": "ok", "datasets": [dataset("triage"), dataset("billing")]}),
                );
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let datasets = client.list_datasets().send().await.unwrap();

    mock.assert_async().await;
    let names: Vec<&str> = datasets.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["triage", "billing"]);
    assert_eq!(datasets.status(), 200);
    assert_eq!(datasets.attempts(), 1);
    assert_eq!(datasets.request_id(), Some("req-1"));
    assert_eq!(
        datasets.server_timing().total(),
        Some(Duration::from_micros(12_500))
    );
    assert_eq!(datasets.server_timing().metrics().len(), 2);
    assert_eq!(
        datasets.server_timing().get("db").unwrap().duration(),
        Some(Duration::from_micros(3_500))
    );
}

#[tokio::test]
async fn any_generated_operation_is_a_method_of_the_client() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/datasets/acme/triage")
                .header("authorization", "Bearer tok-static-123");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "dataset": dataset("triage")}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let response = client
        .get_dataset()
        .project("acme")
        .dataset_name("triage")
        .send()
        .await
        .unwrap();
    let value: types::DatasetResponse = response.into_inner();
    assert_eq!(value.dataset.name, "triage");
    assert_eq!(
        client
            .get_dataset()
            .project("acme")
            .dataset_name("triage")
            .send()
            .await
            .unwrap()
            .dataset
            .owner,
        "acme"
    );
    mock.assert_calls_async(2).await;
}

#[tokio::test]
async fn api_error_envelope_carries_status_message_and_server_timing() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/datasets/acme/missing");
            then.status(404)
                .header("content-type", "application/json")
                .header("server-timing", TIMING)
                .json_body(json!({"status": "error", "message": "Dataset acme/missing not found"}));
        })
        .await;
    let client = token_client(&server, fast_retries(4));

    let err = client
        .get_dataset()
        .project("acme")
        .dataset_name("missing")
        .send()
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "get_dataset: HTTP 404: Dataset acme/missing not found"
    );
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.message(), Some("Dataset acme/missing not found"));
    assert_eq!(err.operation_id(), Some("get_dataset"));
    assert_eq!(
        err.server_timing().and_then(|t| t.total()),
        Some(Duration::from_micros(12_500))
    );
    assert!(!err.is_retryable());
    assert!(matches!(err, Error::Api { attempts: 1, .. }));
}

#[tokio::test]
async fn html_502_from_a_proxy_is_an_unexpected_response_after_retries() {
    let server = MockServer::start_async().await;
    let html = format!(
        "<html><body><h1>502 Bad Gateway</h1>{}</body></html>",
        "x".repeat(500)
    );
    let mock = server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/datasets");
            then.status(502)
                .header("content-type", "text/html")
                .body(html);
        })
        .await;
    let client = token_client(&server, fast_retries(3));

    let err = client.list_datasets().send().await.unwrap_err();

    mock.assert_calls_async(3).await;
    match &err {
        Error::UnexpectedResponse {
            operation,
            status,
            content_type,
            snippet,
            attempts,
            ..
        } => {
            assert_eq!(*operation, Some("list_datasets"));
            assert_eq!(*status, 502);
            assert_eq!(content_type.as_deref(), Some("text/html"));
            assert!(
                snippet.starts_with("<html><body><h1>502 Bad Gateway</h1>xxx"),
                "{snippet}"
            );
            assert_eq!(snippet.chars().count(), 201);
            assert_eq!(*attempts, 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("list_datasets: unexpected HTTP 502 response (text/html): <html>")
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn empty_500_body_is_an_unexpected_response() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(500);
        })
        .await;
    let err = token_client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap_err();
    assert!(
        // A 500 on an idempotent read is retried (issue 19): every attempt got it.
        matches!(&err, Error::UnexpectedResponse { status: 500, snippet, attempts: 3, .. } if snippet.is_empty()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "list_datasets: unexpected HTTP 500 response: "
    );
}

#[tokio::test]
async fn truncated_json_is_a_decode_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(200)
                .header("content-type", "application/json")
                .body(r#"{"status":"ok","datasets":[{"id":"b3d9"#);
        })
        .await;
    let err = token_client(&server, RetryPolicy::none())
        .list_datasets()
        .send()
        .await
        .unwrap_err();
    match &err {
        Error::Decode {
            operation,
            status,
            path,
            snippet,
            ..
        } => {
            assert_eq!(*operation, Some("list_datasets"));
            assert_eq!(*status, 200);
            assert_eq!(path.as_deref(), Some("datasets[0].id"));
            assert_eq!(snippet, r#"{"status":"ok","datasets":[{"id":"b3d9"#);
        }
        other => panic!("{other:?}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    // The decoder's message is the `source()`, not repeated in `Display`.
    assert_eq!(
        err.to_string(),
        "list_datasets: could not decode the HTTP 200 response at `datasets[0].id`"
    );
}

#[tokio::test]
async fn schema_mismatch_names_the_field() {
    let server = MockServer::start_async().await;
    let mut bad = dataset("x");
    bad["has_sentiment"] = json!("yes");
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "datasets": [dataset("ok"), bad]}));
        })
        .await;
    let err = token_client(&server, RetryPolicy::none())
        .list_datasets()
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode { path: Some(p), .. } if p == "datasets[1].has_sentiment"),
        "{err:?}"
    );
}

#[tokio::test]
async fn body_status_contradicting_the_http_status_is_an_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "quota exceeded", "datasets": []}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets/acme");
            then.status(503)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let err = client.list_datasets().send().await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 200, message, .. } if message == "quota exceeded"),
        "{err:?}"
    );

    let err = client
        .list_project_datasets()
        .project("acme")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list_project_datasets: HTTP 503: the body claims \"status\": \"ok\" but the HTTP status is 503"
    );
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = isolated()
        .endpoint(cm_api::Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap())
        .token("t")
        .retry_policy(fast_retries(2))
        .build()
        .unwrap();
    let err = client.list_datasets().send().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Connect,
                attempts: 2,
                operation: Some("list_datasets"),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "list_datasets: could not connect after 2 attempt(s)"
    );
    assert!(err.is_retryable());
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn request_timeout_is_a_transport_timeout() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(200)
                .delay(Duration::from_secs(3))
                .json_body(json!({"status": "ok", "datasets": []}));
        })
        .await;
    let client = isolated()
        .endpoint(cm_api::Endpoint::parse(&server.base_url()).unwrap())
        .token("t")
        .request_timeout(Duration::from_millis(200))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.list_datasets().send().await.unwrap_err();
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
}

#[tokio::test]
async fn missing_parameters_are_invalid_requests_and_nothing_is_sent() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let err = client
        .get_dataset()
        .project("acme")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidRequest { message, .. } if message.contains("dataset_name")),
        "{err:?}"
    );
    any.assert_calls_async(0).await;
}

/// A responder that answers `first` once, then `rest`.
fn first_then(
    first: HttpMockResponse,
    rest: HttpMockResponse,
) -> (
    Arc<AtomicUsize>,
    impl Fn(&httpmock::HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    (calls, move |_: &httpmock::HttpMockRequest| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            first.clone()
        } else {
            rest.clone()
        }
    })
}

fn ok_datasets() -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(json!({"status": "ok", "datasets": []}).to_string())
        .build()
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let server = MockServer::start_async().await;
    let limited = HttpMockResponse::builder()
        .status(429)
        .header("retry-after", "1")
        .header("content-type", "application/json")
        .body(r#"{"status":"error","message":"rate limited"}"#)
        .build();
    let (calls, responder) = first_then(limited, ok_datasets());
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.respond_with(responder);
        })
        .await;
    // Backoff alone would wait at most 1 ms: the wait must come from Retry-After.
    let client = token_client(&server, fast_retries(3));
    let started = Instant::now();
    let response = client.list_datasets().send().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.attempts(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_after_longer_than_allowed_returns_the_error() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(503)
                .header("retry-after", "3600")
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "maintenance"}));
        })
        .await;
    let err = token_client(&server, fast_retries(3))
        .list_datasets()
        .send()
        .await
        .unwrap_err();
    mock.assert_calls_async(1).await;
    assert!(
        matches!(
            &err,
            Error::Api {
                status: 503,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn state_changing_post_is_never_retried() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/v1/datasets/acme/triage/streams/s1/advance")
                .json_body(json!({"sequence_id": "seq-9"}));
            then.status(503)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "unavailable"}));
        })
        .await;
    let client = token_client(&server, fast_retries(4));
    let err = client
        .advance_stream()
        .project("acme")
        .dataset_name("triage")
        .stream_name("s1")
        .body_map(|b| b.sequence_id("seq-9"))
        .send()
        .await
        .unwrap_err();
    mock.assert_calls_async(1).await;
    assert!(
        matches!(
            err,
            Error::Api {
                status: 503,
                attempts: 1,
                operation: Some("advance_stream"),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn idempotent_post_is_retried() {
    let server = MockServer::start_async().await;
    let unavailable = HttpMockResponse::builder().status(503).build();
    let ok = HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(r#"{"status":"ok","new":0,"updated":0,"unchanged":0}"#)
        .build();
    let (calls, responder) = first_then(unavailable, ok);
    server
        .mock_async(|when, then| {
            when.method("POST").path("/api/v1/sources/acme/inbox/sync");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, fast_retries(3));
    let result = client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body_map(|b| b.comments(vec![]))
        .send()
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The success body's exact schema belongs to the spec; only the retry matters here.
    match result {
        Ok(response) => assert_eq!(response.attempts(), 2),
        Err(Error::Decode { status: 200, .. }) => {}
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn raw_body_operations_return_a_download() {
    use futures::TryStreamExt;

    let server = MockServer::start_async().await;
    let bytes: Vec<u8> = (0..=255u8).collect();
    let body = bytes.clone();
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/attachments/att-1");
            then.status(200)
                .header("content-type", "application/octet-stream")
                .header("server-timing", "total;dur=2")
                .body(body);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/attachments/att-2");
            then.status(404)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "no such attachment"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let response = client
        .get_attachment()
        .attachment_reference("att-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.server_timing().total(),
        Some(Duration::from_millis(2))
    );
    let chunks: Vec<bytes::Bytes> = response.into_inner().try_collect().await.unwrap();
    assert_eq!(chunks.concat(), bytes);

    let Err(err) = client
        .get_attachment()
        .attachment_reference("att-2")
        .send()
        .await
    else {
        panic!("expected an error");
    };
    assert!(
        matches!(
            &err,
            Error::Api {
                status: 404,
                operation: Some("get_attachment"),
                ..
            }
        ),
        "{err:?}"
    );
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_request_span_records_status_attempts_and_server_time() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/datasets");
            then.status(200)
                .header("content-type", "application/json")
                .header("server-timing", TIMING)
                .json_body(json!({"status": "ok", "datasets": []}));
        })
        .await;

    token_client(&server, fast_retries(1))
        .list_datasets()
        .send()
        .await
        .unwrap();

    let lines = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let closed = lines
        .lines()
        .find(|line| line.contains("cm_api.request") && line.contains("close"))
        .unwrap_or_else(|| panic!("no closed request span in:\n{lines}"));
    for field in [
        "operation=\"list_datasets\"",
        "status=200",
        "attempts=1",
        "server_ms=12.5",
    ] {
        assert!(closed.contains(field), "{field} missing from {closed}");
    }
    // The call's time in fractional ms (an `f64`, so that the sums of fast
    // calls are not rounded down to whole ms each).
    let duration = closed
        .split("duration_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no duration_ms in {closed}"));
    assert!(
        duration.contains('.') && duration.parse::<f64>().unwrap() > 0.0,
        "{closed}"
    );
}

/// Every error that saw a response names its request id and attempt count,
/// in its accessors and its `Display`: the platform's error envelope, a
/// proxy's HTML page, and a success answer that does not decode.
#[tokio::test]
async fn every_error_that_saw_a_response_carries_its_request_id_and_attempts() {
    let cases: [(u16, &str, &str, &str); 3] = [
        (
            404,
            "application/json",
            r#"{"status":"error","message":"no such dataset"}"#,
            "req-api",
        ),
        (
            502,
            "text/html",
            "<html><body>502 Bad Gateway</body></html>",
            "req-html",
        ),
        (
            200,
            "application/json",
            r#"{"status":"ok","datasets":[{"id":7}]}"#,
            "req-decode",
        ),
    ];
    for (status, content_type, body, id) in cases {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.path("/api/v1/datasets");
                then.status(status)
                    .header("content-type", content_type)
                    .header("x-request-id", id)
                    .body(body);
            })
            .await;
        let err = token_client(&server, RetryPolicy::none())
            .list_datasets()
            .send()
            .await
            .unwrap_err();
        let kind = match &err {
            Error::Api { .. } => "api",
            Error::UnexpectedResponse { .. } => "unexpected",
            Error::Decode { .. } => "decode",
            other => panic!("{other:?}"),
        };
        assert_eq!(err.request_id(), Some(id), "{kind}: {err:?}");
        assert_eq!(err.attempts(), Some(1), "{kind}: {err:?}");
        assert_eq!(err.status(), Some(status), "{kind}");
        assert!(
            err.to_string().ends_with(&format!(" (request id {id})")),
            "{kind}: {err}"
        );
    }
}
