//! Compressed answers: the client asks for gzip, decodes a gzip body
//! transparently (JSON, errors and downloads), and still reads a server
//! that ignores the header.

mod common;

use std::io::Write;

use cm_api::{Error, RetryPolicy};
use common::token_client;
use flate2::Compression;
use flate2::write::GzEncoder;
use httpmock::MockServer;

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// A page of datasets that compresses well, as real pages do.
fn datasets_page() -> String {
    let datasets: Vec<_> = (0..50)
        .map(|i| common::dataset(&format!("inbox-{i}")))
        .collect();
    serde_json::json!({"status": "ok", "datasets": datasets}).to_string()
}

#[tokio::test]
async fn a_gzip_answer_is_asked_for_and_decoded() {
    let server = MockServer::start_async().await;
    let page = datasets_page();
    let compressed = gzip(page.as_bytes());
    assert!(compressed.len() * 4 < page.len(), "the fixture compresses");
    let mock = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/datasets")
                .header("accept-encoding", "gzip");
            then.status(200)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(&compressed);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let datasets = client.list_datasets().send().await.unwrap();

    mock.assert_async().await;
    assert_eq!(datasets.datasets.len(), 50);
    assert_eq!(datasets.datasets[7].name.as_str(), "inbox-7");
}

#[tokio::test]
async fn a_server_that_ignores_the_header_still_works() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/datasets");
            then.status(200)
                .header("content-type", "application/json")
                .body(datasets_page());
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let datasets = client.list_datasets().send().await.unwrap();

    assert_eq!(datasets.datasets.len(), 50);
}

#[tokio::test]
async fn a_gzip_error_envelope_keeps_its_message() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/datasets");
            then.status(404)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gzip(br#"{"status":"error","message":"no such project"}"#));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client.list_datasets().send().await.unwrap_err();

    assert!(
        matches!(&error, Error::Api { status: 404, message, .. } if message == "no such project"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_gzip_download_is_handed_over_decoded() {
    let server = MockServer::start_async().await;
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/attachments/ref-1")
                .header("accept-encoding", "gzip");
            then.status(200)
                .header("content-type", "application/octet-stream")
                .header("content-encoding", "gzip")
                .body(gzip(&content));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let download = client
        .get_attachment()
        .attachment_reference("ref-1")
        .send()
        .await
        .unwrap()
        .into_inner();
    let bytes = download.bytes().await.unwrap();

    assert!(bytes == content, "the download differs from the content");
}

#[tokio::test]
async fn a_corrupt_gzip_body_is_an_error_not_a_panic() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/datasets");
            then.status(200)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body("this is not gzip");
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client.list_datasets().send().await.unwrap_err();

    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
}
