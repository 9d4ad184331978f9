//! Downloads (attachments, documents, the CSV query) are streamed: the
//! exact request, the bytes, saving to a file, error mapping, and a body
//! larger than 64 MiB copied through a bounded buffer.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use cm_api::types::{CommentQueryOrder, QueryCommentsRequest};
use cm_api::{Endpoint, Error, RetryPolicy, TransportKind};
use common::{isolated, token_client};
use futures::StreamExt;
use httpmock::MockServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const PDF: &[u8] = b"%PDF-1.7\n\x00\x01binary\xff\r\n";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cm-api-downloads-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn an_attachment_is_saved_to_a_file() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/attachments/0f3a9c1e2b7d4a6f.0.1")
                .header("authorization", "Bearer tok-static-123");
            then.status(200)
                .header("content-type", "application/pdf")
                .header("server-timing", "total;dur=2")
                .header("x-request-id", "req-dl-1")
                .body(PDF);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let dir = temp_dir("attachment");
    let path = dir.join("report.pdf");

    let response = client
        .get_attachment()
        .attachment_reference("0f3a9c1e2b7d4a6f.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.request_id(), Some("req-dl-1"));
    assert_eq!(response.content_type(), Some("application/pdf"));
    assert_eq!(response.content_length(), Some(PDF.len() as u64));
    let written = response.save(&path).await.unwrap();

    mock.assert_async().await;
    assert_eq!(written, PDF.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), PDF);
    assert!(!dir.join("report.pdf.part").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_document_is_fetched_from_its_encoded_path_as_a_stream() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/_private/sources/id:18ba5ce699f8da1f/documents/msg%2042%2F7")
                .header("authorization", "Bearer tok-static-123");
            then.status(200)
                .header("content-type", "application/pdf")
                .body(PDF);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let mut body = client
        .get_document()
        .source_id("18ba5ce699f8da1f")
        .comment_id("msg 42/7")
        .send()
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }

    mock.assert_async().await;
    assert_eq!(bytes, PDF);
}

#[tokio::test]
async fn the_csv_query_asks_for_csv_and_sends_the_json_request() {
    let server = MockServer::start_async().await;
    let csv = "comment_id,text\nc1,hello\nc2,\"a, b\"\n";
    let mock = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/_private/datasets/acme/support%20EU/query")
                .header("authorization", "Bearer tok-static-123")
                .header("accept", "text/csv")
                .json_body(json!({"order": {"kind": "recent"}, "limit": 2}));
            then.status(200)
                .header("content-type", "text/csv; charset=utf-8")
                .body(csv);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let request: QueryCommentsRequest = QueryCommentsRequest::builder()
        .order(CommentQueryOrder::builder().kind("recent"))
        .limit(2_i64)
        .try_into()
        .unwrap();

    let download = client
        .query_comments_csv()
        .project("acme")
        .dataset_name("support EU")
        .body(request)
        .send()
        .await
        .unwrap();

    mock.assert_async().await;
    assert_eq!(download.content_type(), Some("text/csv; charset=utf-8"));
    assert_eq!(download.into_inner().bytes().await.unwrap(), csv.as_bytes());
}

#[tokio::test]
async fn an_error_envelope_is_an_api_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET");
            then.status(404)
                .header("content-type", "application/json")
                .header("x-request-id", "req-dl-404")
                .json_body(json!({"status": "error", "message": "no such document"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client
        .get_document()
        .source_id("18ba5ce699f8da1f")
        .comment_id("gone")
        .send()
        .await
        .unwrap_err();

    match &error {
        Error::Api {
            operation,
            status: 404,
            message,
            request_id,
            ..
        } => {
            assert_eq!(*operation, Some("get_document"));
            assert_eq!(message, "no such document");
            assert_eq!(request_id.as_deref(), Some("req-dl-404"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_csv_query_maps_a_gateway_page_and_refuses_bad_names() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method("POST");
            then.status(502)
                .header("content-type", "text/html")
                .body("<html>502 Bad Gateway</html>");
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let request: QueryCommentsRequest = QueryCommentsRequest::builder()
        .order(CommentQueryOrder::builder().kind("recent"))
        .try_into()
        .unwrap();

    let error = client
        .query_comments_csv()
        .project("acme")
        .dataset_name("support")
        .body(request.clone())
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::UnexpectedResponse { status: 502, .. })
            && error.to_string().contains("502 Bad Gateway"),
        "{error:?}"
    );

    let error = client
        .query_comments_csv()
        .project("acme")
        .dataset_name("..")
        .body(request)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidRequest { .. })
            && error.to_string().contains("dataset_name"),
        "{error:?}"
    );
    mock.assert_calls_async(1).await;
}

// --- A raw loopback server, for bodies httpmock would hold in memory. ---

/// Byte `i` of a generated body: a pattern the sink can check without
/// keeping what it has seen.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Serves one GET: a chunked body of `total` pattern bytes in 64 KiB chunks,
/// counting in `sent` what the socket accepted. With `cut_after`, announces
/// `total` in `Content-Length` but closes after that many bytes.
async fn serve_generated(total: u64, cut_after: Option<u64>, sent: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let framing = match cut_after {
            Some(_) => format!("Content-Length: {total}"),
            None => "Transfer-Encoding: chunked".to_owned(),
        };
        let header = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{framing}\r\n\r\n"
        );
        socket.write_all(header.as_bytes()).await.unwrap();
        let limit = cut_after.unwrap_or(total);
        let mut offset = 0u64;
        let mut chunk = Vec::with_capacity(64 * 1024);
        while offset < limit {
            let len = (64 * 1024).min(limit - offset);
            chunk.clear();
            chunk.extend((offset..offset + len).map(pattern));
            let result = if cut_after.is_some() {
                socket.write_all(&chunk).await
            } else {
                let mut framed = format!("{len:x}\r\n").into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                socket.write_all(&framed).await
            };
            if result.is_err() {
                return; // the client went away
            }
            offset += len;
            sent.store(offset, Ordering::SeqCst);
        }
        if cut_after.is_none() {
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
        let _ = socket.shutdown().await;
    });
    address
}

/// An `AsyncWrite` that keeps nothing: it checks the pattern, counts the
/// bytes, and records the largest single write and how far the server had
/// got ahead of it.
#[derive(Default)]
struct CountingSink {
    received: u64,
    largest_write: usize,
    writes: u64,
    largest_lead: u64,
    sent: Arc<AtomicU64>,
}

impl AsyncWrite for CountingSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        for (i, byte) in buf.iter().enumerate() {
            assert_eq!(
                *byte,
                pattern(self.received + i as u64),
                "corrupt at {}",
                self.received + i as u64
            );
        }
        self.received += buf.len() as u64;
        self.writes += 1;
        self.largest_write = self.largest_write.max(buf.len());
        let lead = self
            .sent
            .load(Ordering::SeqCst)
            .saturating_sub(self.received);
        self.largest_lead = self.largest_lead.max(lead);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn client_for(address: &str) -> cm_api::Client {
    isolated()
        .endpoint(Endpoint::parse(address).unwrap())
        .token("tok-static-123")
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_body_over_64_mib_streams_through_a_bounded_buffer() {
    let total = 65 * MIB + 123;
    let sent = Arc::new(AtomicU64::new(0));
    let address = serve_generated(total, None, sent.clone()).await;
    let client = client_for(&address);
    let mut sink = CountingSink {
        sent,
        ..Default::default()
    };

    let download = client
        .get_attachment()
        .attachment_reference("big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(download.content_length(), None, "chunked");
    let written = download.write_to(&mut sink).await.unwrap();

    assert_eq!(written, total);
    assert_eq!(sink.received, total);
    // The body arrived in many small pieces, never as one buffer...
    assert!(sink.writes > 64, "{} writes", sink.writes);
    assert!(
        sink.largest_write as u64 <= MIB,
        "largest write {} bytes",
        sink.largest_write
    );
    // ...and the server could never get further ahead of the sink than the
    // socket buffers and one read buffer allow: the client reads only as
    // fast as the sink takes the bytes.
    assert!(
        sink.largest_lead < 48 * MIB,
        "server got {} bytes ahead",
        sink.largest_lead
    );
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_error_and_leaves_no_file() {
    let sent = Arc::new(AtomicU64::new(0));
    let address = serve_generated(4 * MIB, Some(MIB / 2), sent).await;
    let client = client_for(&address);
    let dir = temp_dir("cut");
    let path = dir.join("big.bin");

    let download = client
        .get_attachment()
        .attachment_reference("big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(download.content_length(), Some(4 * MIB));
    let error = download.save(&path).await.unwrap_err();

    match &error {
        Error::Transport {
            operation, kind, ..
        } => {
            assert_eq!(*operation, Some("get_attachment"));
            assert_eq!(*kind, TransportKind::Connection);
        }
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
    assert!(!dir.join("big.bin.part").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// A writer whose disk is always full.
struct FullDisk;

impl AsyncWrite for FullDisk {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::new(io::ErrorKind::StorageFull, "disk full")))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_failing_writer_is_a_write_error_not_an_api_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET");
            then.status(200)
                .header("content-type", "application/pdf")
                .body(PDF);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client
        .get_attachment()
        .attachment_reference("ref")
        .send()
        .await
        .unwrap()
        .write_to(&mut FullDisk)
        .await
        .unwrap_err();

    assert!(
        matches!(&error, Error::Write { source, .. } if source.kind() == io::ErrorKind::StorageFull),
        "{error:?}"
    );
    // The cause is the `source()`, not repeated in `Display`.
    assert_eq!(error.to_string(), "could not write the download");
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "disk full"
    );
}
