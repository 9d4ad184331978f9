//! The hand-written uploads against a loopback mock server: the exact
//! path, the bearer token, one `file` part with its name, type and bytes
//! (multipart) or the body byte for byte (raw bodies, from memory, a file
//! or a stream), the decoded answer, retries and error mapping.

mod common;

use std::sync::{Arc, Mutex};

use cm_api::upload::{RawBody, Upload};
use cm_api::{Error, RetryPolicy};
use common::{fast_retries, token_client};
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use serde_json::json;

/// Content that looks like a multipart delimiter and is not UTF-8, so a
/// sloppy encoder or parser would corrupt it.
const CONTENT: &[u8] = b"%PDF-1.7\r\n--not-a-boundary\r\n\x00\x01\xfe\xff\r\n";

/// The percent-encoded form of the ids below, as they must appear on the wire.
const SOURCE_ID: &str = "18ba5ce699f8da1f";
const COMMENT_ID: &str = "msg 42/é";
const COMMENT_ID_ENCODED: &str = "msg%2042%2F%C3%A9";

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// What the server received.
#[derive(Debug)]
struct Received {
    content_type: String,
    content_length: String,
    transfer_encoding: String,
    authorization: String,
    body: Vec<u8>,
}

impl Received {
    fn parts(&self) -> Vec<Part> {
        let boundary = self
            .content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap_or_else(|| panic!("not multipart: {}", self.content_type));
        parse_multipart(&self.body, boundary)
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A strict RFC 7578 reader: the body must start with the delimiter and end
/// with the close delimiter; each part is headers, a blank line, data.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    assert!(
        body.starts_with(delimiter.as_bytes()),
        "no opening delimiter"
    );
    let mut pos = delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..] == *b"--\r\n" {
            return parts;
        }
        assert_eq!(
            &body[pos..pos + 2],
            b"\r\n",
            "delimiter not followed by CRLF"
        );
        pos += 2;
        let end = find(body, next_delimiter.as_bytes(), pos).expect("close delimiter");
        let part = &body[pos..end];
        let split = find(part, b"\r\n\r\n", 0).expect("part headers end");
        let headers = std::str::from_utf8(&part[..split]).expect("ASCII headers");
        let mut parsed = Part {
            name: String::new(),
            file_name: None,
            content_type: None,
            data: part[split + 4..].to_vec(),
        };
        for line in headers.split("\r\n") {
            let (key, value) = line.split_once(':').expect("header line");
            match key.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    let params = disposition_params(value.trim());
                    parsed.name = params.get("name").cloned().expect("name");
                    parsed.file_name = params.get("filename").cloned();
                }
                "content-type" => parsed.content_type = Some(value.trim().to_owned()),
                other => panic!("unexpected part header {other}"),
            }
        }
        parts.push(parsed);
        pos = end + next_delimiter.len();
    }
}

/// `form-data; name="file"; filename="a \"b\".pdf"` → {name, filename}.
fn disposition_params(value: &str) -> std::collections::HashMap<String, String> {
    let (kind, mut rest) = value.split_once(';').expect("parameters");
    assert_eq!(kind.trim(), "form-data");
    let mut params = std::collections::HashMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ';']);
        if rest.is_empty() {
            return params;
        }
        let (key, after) = rest.split_once("=\"").expect("quoted parameter");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next().expect("escaped char").1),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        params.insert(key.trim().to_owned(), value);
        rest = &after[end..];
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A responder that records each request and answers the next of `answers`
/// (the last one repeats).
fn recording(
    answers: Vec<HttpMockResponse>,
) -> (
    Log,
    impl Fn(&HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static,
) {
    let log: Log = Arc::default();
    let seen = log.clone();
    (log, move |request: &HttpMockRequest| {
        let headers = request.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let mut seen = seen.lock().unwrap();
        seen.push(Received {
            content_type: header("content-type"),
            content_length: header("content-length"),
            transfer_encoding: header("transfer-encoding"),
            authorization: header("authorization"),
            body: request.body_vec(),
        });
        answers[(seen.len() - 1).min(answers.len() - 1)].clone()
    })
}

fn json_answer(status: u16, body: serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", "req-up-1")
        .header("server-timing", "total;dur=4")
        .body(body.to_string())
        .build()
}

fn assert_one_file_part(received: &Received, file_name: &str, content_type: &str) {
    assert_eq!(received.authorization, "Bearer tok-static-123");
    let parts = received.parts();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = &parts[0];
    assert_eq!(part.name, "file");
    assert_eq!(part.file_name.as_deref(), Some(file_name));
    assert_eq!(part.content_type.as_deref(), Some(content_type));
    assert_eq!(part.data, CONTENT);
}

#[tokio::test]
async fn a_comment_attachment_is_one_file_part_at_its_encoded_path() {
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(
        200,
        json!({"status": "ok", "content_hash": "9f86d081"}),
    )]);
    let mock = server
        .mock_async(|when, then| {
            when.method("PUT")
                .path(format!(
                    "/api/_private/sources/id:{SOURCE_ID}/comments/{COMMENT_ID_ENCODED}/attachments/2"
                ))
                .header("accept", "application/json")
                .header_missing("api-version");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let stored = client
        .upload_comment_attachment()
        .source_id(SOURCE_ID)
        .comment_id(COMMENT_ID)
        .attachment_index(2)
        .file(Upload::new(
            "Q3 \"final\" report.pdf",
            "application/pdf",
            CONTENT,
        ))
        .send()
        .await
        .unwrap();

    mock.assert_async().await;
    assert_eq!(stored.content_hash, "9f86d081");
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.request_id(), Some("req-up-1"));
    assert_eq!(
        stored.server_timing().total(),
        Some(std::time::Duration::from_millis(4))
    );
    let log = log.lock().unwrap();
    assert_one_file_part(&log[0], "Q3 \"final\" report.pdf", "application/pdf");
}

#[tokio::test]
async fn comment_audio_is_one_file_part_at_its_encoded_path() {
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(200, json!({"status": "ok"}))]);
    let mock = server
        .mock_async(|when, then| {
            when.method("PUT").path(format!(
                "/api/_private/sources/id:{SOURCE_ID}/comments/{COMMENT_ID_ENCODED}/audio"
            ));
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let stored = client
        .upload_comment_audio()
        .source_id(SOURCE_ID)
        .comment_id(COMMENT_ID)
        .file(Upload::new("call-0042.mp3", "audio/mpeg", CONTENT))
        .send()
        .await
        .unwrap();

    mock.assert_async().await;
    assert_eq!(stored.status, "ok");
    assert_one_file_part(&log.lock().unwrap()[0], "call-0042.mp3", "audio/mpeg");
}

#[tokio::test]
async fn a_document_is_one_file_part_and_names_its_new_comment() {
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(
        200,
        json!({"status": "ok", "comment_id": "1b3d5f7a", "attachment_ref": "CjQSEIEx"}),
    )]);
    let mock = server
        .mock_async(|when, then| {
            // `%` in the id must not be read as an escape.
            when.method("PUT")
                .path("/api/_private/sources/id:src%2525/documents");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let stored = client
        .upload_document()
        .source_id("src%25")
        .file(Upload::new("invoice-é.pdf", "application/pdf", CONTENT))
        .send()
        .await
        .unwrap();

    mock.assert_async().await;
    assert_eq!(stored.comment_id, "1b3d5f7a");
    assert_eq!(stored.attachment_ref.as_deref(), Some("CjQSEIEx"));
    assert_one_file_part(&log.lock().unwrap()[0], "invoice-é.pdf", "application/pdf");
}

#[tokio::test]
async fn an_upload_read_from_a_file_is_named_after_it() {
    let dir = std::env::temp_dir().join(format!("cm-api-uploads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scan 7.pdf");
    std::fs::write(&path, CONTENT).unwrap();
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(
        200,
        json!({"status": "ok", "comment_id": "c", "attachment_ref": "r"}),
    )]);
    server
        .mock_async(|when, then| {
            when.method("PUT")
                .path(format!("/api/_private/sources/id:{SOURCE_ID}/documents"));
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let upload = Upload::from_path(&path, "application/pdf").await.unwrap();
    client
        .upload_document()
        .source_id(SOURCE_ID)
        .file(upload)
        .send()
        .await
        .unwrap();

    assert_one_file_part(&log.lock().unwrap()[0], "scan 7.pdf", "application/pdf");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn an_error_envelope_is_an_api_error() {
    let server = MockServer::start_async().await;
    let (_, responder) = recording(vec![json_answer(
        422,
        json!({"status": "error", "message": "attachment 2 is not in the comment's metadata"}),
    )]);
    server
        .mock_async(|when, then| {
            when.method("PUT");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client
        .upload_comment_attachment()
        .source_id(SOURCE_ID)
        .comment_id("msg-42")
        .attachment_index(2)
        .file(Upload::new("a.pdf", "application/pdf", CONTENT))
        .send()
        .await
        .unwrap_err();

    match &error {
        Error::Api {
            operation,
            status,
            message,
            request_id,
            attempts,
            ..
        } => {
            assert_eq!(*operation, Some("upload_comment_attachment"));
            assert_eq!(*status, 422);
            assert_eq!(message, "attachment 2 is not in the comment's metadata");
            assert_eq!(request_id.as_deref(), Some("req-up-1"));
            assert_eq!(*attempts, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "upload_comment_attachment: HTTP 422: attachment 2 is not in the comment's metadata (request id req-up-1)"
    );
}

#[tokio::test]
async fn a_success_body_of_the_wrong_shape_is_a_decode_error_naming_the_field() {
    let server = MockServer::start_async().await;
    let (_, responder) = recording(vec![json_answer(
        200,
        // `comment_id` is required; `attachment_ref` is not (issue 20).
        json!({"status": "ok", "attachment_ref": "r"}),
    )]);
    server
        .mock_async(|when, then| {
            when.method("PUT");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let error = client
        .upload_document()
        .source_id(SOURCE_ID)
        .file(Upload::new("a.pdf", "application/pdf", CONTENT))
        .send()
        .await
        .unwrap_err();

    assert!(
        matches!(&error, Error::Decode { status: 200, source, .. } if source.to_string().contains("comment_id")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_retried_upload_sends_the_same_body_again() {
    let server = MockServer::start_async().await;
    let unavailable = HttpMockResponse::builder().status(503).build();
    let (log, responder) = recording(vec![unavailable, json_answer(200, json!({"status": "ok"}))]);
    server
        .mock_async(|when, then| {
            when.method("PUT");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, fast_retries(3));

    let stored = client
        .upload_comment_audio()
        .source_id(SOURCE_ID)
        .comment_id("call-7")
        .file(Upload::new("call-7.wav", "audio/wav", CONTENT))
        .send()
        .await
        .unwrap();

    assert_eq!(stored.attempts(), 2);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].body, log[1].body);
    assert_eq!(log[0].content_type, log[1].content_type);
    assert_one_file_part(&log[1], "call-7.wav", "audio/wav");
}

#[tokio::test]
async fn bad_ids_names_and_types_fail_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let pdf = || Upload::new("a.pdf", "application/pdf", CONTENT);

    let cases = [
        (
            "source_id",
            client
                .upload_document()
                .source_id("")
                .file(pdf())
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "comment_id",
            client
                .upload_comment_attachment()
                .source_id(SOURCE_ID)
                .comment_id("..")
                .attachment_index(0)
                .file(pdf())
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "comment_id",
            client
                .upload_comment_audio()
                .source_id(SOURCE_ID)
                .comment_id(".")
                .file(pdf())
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "file name",
            client
                .upload_document()
                .source_id(SOURCE_ID)
                .file(Upload::new("", "application/pdf", CONTENT))
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "content type",
            client
                .upload_document()
                .source_id(SOURCE_ID)
                .file(Upload::new("a.pdf", "pdf please", CONTENT))
                .send()
                .await
                .map(|_| ()),
        ),
    ];

    for (what, result) in cases {
        match result {
            Err(error @ Error::InvalidRequest { .. }) => {
                assert!(error.to_string().contains(what), "{what}: {error}");
                assert!(error.operation_id().is_some(), "{what}: {error:?}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    any.assert_calls_async(0).await;
}

/// CSV rows that are not all UTF-8 (a Latin-1 `é`), so any text handling
/// of a raw body would show.
const CSV: &[u8] = b"id,subject\r\n1,Caf\xe9 invoice\r\n2,\"quoted, comma\"\r\n";

/// A file under the system's temporary directory holding `content`,
/// removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("cm-api-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn a_csv_file_is_streamed_as_the_raw_body_with_its_length() {
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(
        200,
        json!({"status": "ok", "new": 2, "updated": 0, "unchanged": 0}),
    )]);
    let mock = server
        .mock_async(|when, then| {
            when.method("PUT")
                .path("/api/_private/sources/acme/tickets%20%C3%A9/sync-csv")
                .header("accept", "application/json");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    // Larger than one 64 KiB read, so the file goes out in several chunks.
    let content: Vec<u8> = CSV.iter().copied().cycle().take(200_000).collect();
    let file = TempFile::new("tickets.csv", &content);

    let body = RawBody::from_path(&file.0, "text/csv; charset=latin1")
        .await
        .unwrap();
    assert_eq!(body.len(), Some(200_000));
    let synced = client
        .sync_comments_from_csv()
        .project("acme")
        .source_name("tickets é")
        .csv(body)
        .send()
        .await
        .unwrap();

    mock.assert_async().await;
    assert_eq!((synced.new, synced.updated), (2, 0));
    assert_eq!(synced.request_id(), Some("req-up-1"));
    let log = log.lock().unwrap();
    assert_eq!(log[0].authorization, "Bearer tok-static-123");
    assert_eq!(log[0].content_type, "text/csv; charset=latin1");
    assert_eq!(log[0].content_length, "200000");
    assert!(log[0].body == content, "the body differs from the file");
}

#[tokio::test]
async fn a_stream_of_unknown_length_is_sent_chunked() {
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(
        200,
        json!({"status": "ok", "columns": ["id", "subject"], "encoding": "latin1", "delimiter": ","}),
    )]);
    server
        .mock_async(|when, then| {
            when.method("PUT").path("/api/_private/sources/sniff-csv");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let rows = futures::stream::iter(CSV.chunks(7).map(|c| Ok(bytes::Bytes::copy_from_slice(c))));

    let format = client
        .detect_csv_format()
        .csv(RawBody::from_stream("text/csv", rows, None))
        .send()
        .await
        .unwrap();

    assert_eq!(format.columns, ["id", "subject"]);
    assert_eq!(format.delimiter.as_deref(), Some(","));
    let log = log.lock().unwrap();
    assert_eq!(log[0].body, CSV);
    assert_eq!(log[0].transfer_encoding, "chunked");
    assert_eq!(log[0].content_type, "text/csv");
}

#[tokio::test]
async fn a_streamed_body_is_sent_once_and_a_body_in_memory_is_retried() {
    let server = MockServer::start_async().await;
    let unavailable = HttpMockResponse::builder()
        .status(503)
        .header("content-type", "application/json")
        .body(r#"{"status":"error","message":"try later"}"#)
        .build();
    let (log, responder) = recording(vec![unavailable, json_answer(200, json!({"status": "ok"}))]);
    server
        .mock_async(|when, then| {
            when.method("POST").path("/api/_private/files/upload");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, fast_retries(3));
    let file = TempFile::new("retry.bin", CSV);

    // upload_files is a POST, never retried blindly: one attempt either way.
    let streamed = RawBody::from_path(&file.0, "application/octet-stream")
        .await
        .unwrap();
    let error = client
        .upload_files()
        .file(streamed)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Api { status, message, .. } if *status == 503 && message == "try later"),
        "{error:?}"
    );
    assert_eq!(log.lock().unwrap().len(), 1);

    // A PUT from memory is retried with the same bytes; from a file it is not.
    let (log, responder) = recording(vec![
        HttpMockResponse::builder().status(503).build(),
        json_answer(200, json!({"status": "ok", "changes": null})),
        json_answer(503, json!({"status": "error", "message": "try later"})),
    ]);
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("PUT")
                .path("/api/_private/appliance-configs/acme/exchange");
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, fast_retries(3));
    let stored = client
        .update_appliance_config()
        .project("acme")
        .config_key("exchange")
        .document(RawBody::from_bytes("application/json", CSV))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.attempts(), 2);
    {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!((log[0].body.as_slice(), log[1].body.as_slice()), (CSV, CSV));
    }
    let streamed = RawBody::from_path(&file.0, "application/json")
        .await
        .unwrap();
    let error = client
        .update_appliance_config()
        .project("acme")
        .config_key("exchange")
        .document(streamed)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Api { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(
        log.lock().unwrap().len(),
        3,
        "the streamed body was sent once"
    );
}

#[tokio::test]
async fn a_failing_stream_aborts_the_upload_with_a_transport_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).body(r#"{"status":"ok"}"#);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let rows = futures::stream::iter([
        Ok(bytes::Bytes::from_static(b"id,subject\n")),
        Err(std::io::Error::other("disk vanished")),
    ]);

    let error = client
        .detect_csv_format()
        .csv(RawBody::from_stream("text/csv", rows, None))
        .send()
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
}

#[tokio::test]
async fn email_and_ixp_documents_are_one_file_part_at_their_encoded_paths() {
    let server = MockServer::start_async().await;
    let (log, responder) = recording(vec![json_answer(
        200,
        json!({"status": "ok", "content_hash": "9f86d081", "document": {"id": "0a2c4e6b8d1f3c59"}}),
    )]);
    let email = server
        .mock_async(|when, then| {
            when.method("PUT").path(
                "/api/_private/buckets/id:5c1d9e0a7f3b2e48/emails/AAMk%2Fx%201/attachments/3",
            );
            then.respond_with(responder);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let stored = client
        .upload_email_attachment()
        .bucket_id("5c1d9e0a7f3b2e48")
        .email_id("AAMk/x 1")
        .attachment_index(3)
        .file(Upload::new("a.pdf", "application/pdf", CONTENT))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.content_hash, "9f86d081");
    email.assert_async().await;
    assert_one_file_part(&log.lock().unwrap()[0], "a.pdf", "application/pdf");
}

#[tokio::test]
async fn raw_bodies_with_bad_media_types_or_paths_fail_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let csv = |content_type: &str| RawBody::from_bytes(content_type.to_owned(), CSV);

    let cases = [
        (
            "content type",
            client
                .detect_csv_format()
                .csv(csv("csv"))
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "content type",
            client
                .detect_csv_format()
                .csv(csv("text/csv\r\nx: y"))
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "content type",
            client
                .upload_files()
                .file(csv("text /csv"))
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "source_name",
            client
                .sync_comments_from_csv()
                .project("acme")
                .source_name("..")
                .csv(csv("text/csv"))
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "config_key",
            client
                .update_appliance_config()
                .project("acme")
                .config_key("")
                .document(csv("text/csv"))
                .send()
                .await
                .map(|_| ()),
        ),
    ];

    for (what, result) in cases {
        let error = result.unwrap_err();
        assert!(
            matches!(&error, Error::InvalidRequest { .. }) && error.to_string().contains(what),
            "{what}: {error:?}"
        );
    }
    assert_eq!(any.calls_async().await, 0);
}

#[tokio::test]
async fn a_missing_file_fails_when_the_body_is_made() {
    let error = RawBody::from_path("/nonexistent/cm-api/tickets.csv", "text/csv")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
}

/// An upload builder left without a required value fails `send()` naming
/// it, and sends nothing.
#[tokio::test]
async fn an_upload_missing_a_value_names_it_and_sends_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let pdf = || Upload::new("a.pdf", "application/pdf", CONTENT);

    let cases = [
        (
            "comment_id",
            client
                .upload_comment_audio()
                .source_id(SOURCE_ID)
                .file(pdf())
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "file",
            client
                .upload_document()
                .source_id(SOURCE_ID)
                .send()
                .await
                .map(|_| ()),
        ),
        (
            "csv",
            client
                .sync_comments_from_csv()
                .project("acme")
                .source_name("tickets")
                .send()
                .await
                .map(|_| ()),
        ),
    ];
    for (name, result) in cases {
        let error = result.unwrap_err();
        assert!(
            matches!(&error, Error::InvalidRequest { message, .. } if message.contains(&format!("`{name}`"))),
            "{name}: {error:?}"
        );
    }
    assert_eq!(any.calls_async().await, 0);
}

/// An upload's `with_options` overrides the client's retry policy for that
/// call: a 503 is retried once more, as asked.
#[tokio::test]
async fn an_uploads_options_apply_to_its_call() {
    let server = MockServer::start_async().await;
    let busy = server
        .mock_async(|when, then| {
            when.method("PUT").path(format!(
                "/api/_private/sources/id:{SOURCE_ID}/comments/{COMMENT_ID_ENCODED}/audio"
            ));
            then.status(503)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "busy"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let upload = client
        .upload_comment_audio()
        .source_id(SOURCE_ID)
        .comment_id(COMMENT_ID)
        .file(Upload::new("call.mp3", "audio/mpeg", CONTENT));

    let error = upload.clone().send().await.unwrap_err();
    assert_eq!((error.status(), error.attempts()), (Some(503), Some(1)));

    let options = cm_api::CallOptions::new().retry_policy(
        RetryPolicy::default()
            .max_attempts(2)
            .initial_backoff(std::time::Duration::from_millis(1)),
    );
    let error = upload.with_options(options).send().await.unwrap_err();
    assert_eq!((error.status(), error.attempts()), (Some(503), Some(2)));
    assert_eq!(busy.calls_async().await, 3);
}
