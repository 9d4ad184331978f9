//! Every request is checked against `spec/openapi.yaml` before a handler
//! runs: a body of the wrong shape is a 422 naming the field (dotted path
//! and JSON pointer), a bad path or query parameter a 400 naming it, and
//! neither changes anything. Raw requests, for what cm-api never sends.

mod common;

use std::time::Instant;

use cm_sandbox::Sandbox;
use common::{checked, client, comment, project_and_source};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status and JSON body of one request, sent byte for byte as given
/// (no client-side normalisation of the path), over its own connection.
async fn raw(sandbox: &Sandbox, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(sandbox.addr())
        .await
        .expect("connect");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: sandbox\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        sandbox.token(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8(answer).expect("UTF-8 answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, body)
}

/// The error envelope's message, after checking its status and shape.
fn error_message(answer: &(u16, Value), status: u16) -> String {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

async fn ok(sandbox: &Sandbox, method: &str, path: &str, body: Option<&str>) -> Value {
    let (status, body) = raw(sandbox, method, path, body).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A project `acme` with a source `inbox`, a dataset `triage` over it and a
/// stream `s`, through raw requests.
async fn acme(sandbox: &Sandbox) {
    ok(
        sandbox,
        "PUT",
        "/api/_private/projects/acme",
        Some(r#"{"project": {}}"#),
    )
    .await;
    let source = ok(
        sandbox,
        "PUT",
        "/api/v1/sources/acme/inbox",
        Some(r#"{"source": {"title": "Inbox"}}"#),
    )
    .await;
    let id = source["source"]["id"].as_str().unwrap().to_owned();
    ok(
        sandbox,
        "PUT",
        "/api/v1/datasets/acme/triage",
        Some(&json!({"dataset": {"source_ids": [id]}}).to_string()),
    )
    .await;
    ok(
        sandbox,
        "PUT",
        "/api/v1/datasets/acme/triage/streams",
        Some(r#"{"stream": {"name": "s"}}"#),
    )
    .await;
}

async fn comments(sandbox: &Sandbox) -> Value {
    ok(
        sandbox,
        "GET",
        "/api/_private/sources/acme/inbox/comments",
        None,
    )
    .await["comments"]
        .clone()
}

async fn source(sandbox: &Sandbox) -> Value {
    ok(sandbox, "GET", "/api/v1/sources/acme/inbox", None).await["source"].clone()
}

#[tokio::test]
async fn a_body_field_of_the_wrong_type_is_422_naming_it_and_changes_nothing() {
    let sandbox = checked().await;
    acme(&sandbox).await;
    let before = source(&sandbox).await;

    // A field the sandbox does not even read is checked: `should_translate`.
    let message = error_message(
        &raw(
            &sandbox,
            "POST",
            "/api/v1/sources/acme/inbox",
            Some(r#"{"source": {"title": "Renamed", "should_translate": "yes"}}"#),
        )
        .await,
        422,
    );
    assert!(
        message.contains("`source.should_translate` (JSON pointer /source/should_translate)"),
        "{message}"
    );
    assert!(message.contains("\"boolean\""), "{message}");
    assert_eq!(source(&sandbox).await, before);

    // Deep in a batch: nothing of the batch is stored, not even the good one.
    let message = error_message(
        &raw(
            &sandbox,
            "POST",
            "/api/v1/sources/acme/inbox/sync",
            Some(
                &json!({"comments": [
                    {"id": "good", "messages": [{"body": {"text": "fine"}}]},
                    {"id": "bad", "messages": [{"body": {"text": "x"}, "to": "bob@example.com"}]},
                ]})
                .to_string(),
            ),
        )
        .await,
        422,
    );
    assert!(
        message.contains("`comments[1].messages[0].to` (JSON pointer /comments/1/messages/0/to)"),
        "{message}"
    );
    assert!(message.contains("\"array\""), "{message}");
    assert_eq!(comments(&sandbox).await, json!([]));
    assert_eq!(sandbox.schema_violations(), vec![]);
}

#[tokio::test]
async fn a_missing_required_field_is_422_naming_it_and_changes_nothing() {
    let sandbox = checked().await;
    acme(&sandbox).await;

    let message = error_message(
        &raw(
            &sandbox,
            "POST",
            "/api/v1/sources/acme/inbox/sync",
            Some(r#"{"comments": [{"id": "a"}, {"messages": [{"body": {}}]}]}"#),
        )
        .await,
        422,
    );
    // Both are named: the comment's `id` and its first message's `body.text`.
    assert!(
        message.contains("`comments[1].id` (JSON pointer /comments/1/id): required"),
        "{message}"
    );
    assert!(
        message.contains("`comments[1].messages[0].body.text`"),
        "{message}"
    );
    assert_eq!(comments(&sandbox).await, json!([]));

    // A stream fetch without its `size`: the stream does not move.
    let stream = "/api/v1/datasets/acme/triage/streams/s";
    let before = ok(&sandbox, "GET", stream, None).await;
    let message = error_message(
        &raw(&sandbox, "POST", &format!("{stream}/fetch"), Some("{}")).await,
        422,
    );
    assert!(message.contains("`size` (JSON pointer /size)"), "{message}");
    assert_eq!(ok(&sandbox, "GET", stream, None).await, before);
    // And the root itself must be an object.
    let message = error_message(
        &raw(&sandbox, "POST", &format!("{stream}/fetch"), Some("[]")).await,
        422,
    );
    assert!(message.starts_with("the request body: "), "{message}");
}

#[tokio::test]
async fn an_enum_value_outside_the_spec_is_422_naming_it() {
    let sandbox = checked().await;
    acme(&sandbox).await;
    let dataset = ok(&sandbox, "GET", "/api/v1/datasets/acme/triage", None).await;
    let export = "/api/v1/datasets/acme/triage/export";
    let message = error_message(
        &raw(&sandbox, "POST", export, Some(r#"{"order_by": "newest"}"#)).await,
        422,
    );
    assert!(
        message.contains("`order_by` (JSON pointer /order_by)"),
        "{message}"
    );
    assert!(message.contains("\"timestamp\""), "{message}");
    // The same request with a value of the enum passes the check.
    let page = ok(
        &sandbox,
        "POST",
        export,
        Some(r#"{"order_by": "created_at"}"#),
    )
    .await;
    assert_eq!(page["comments"], serde_json::json!([]), "{page}");
    assert_eq!(
        ok(&sandbox, "GET", "/api/v1/datasets/acme/triage", None).await,
        dataset
    );
}

#[tokio::test]
async fn a_request_to_an_unimplemented_operation_is_checked_before_the_501() {
    // `create_trigger` (a legacy alias, not implemented) requires `trigger`.
    let sandbox = checked().await;
    acme(&sandbox).await;
    let triggers = "/api/v1/datasets/acme/triage/triggers";
    let message = error_message(&raw(&sandbox, "PUT", triggers, Some("{}")).await, 422);
    assert!(message.contains("`trigger`"), "{message}");
    let message = error_message(
        &raw(
            &sandbox,
            "PUT",
            triggers,
            Some(r#"{"trigger": {"name": "t"}}"#),
        )
        .await,
        501,
    );
    assert!(message.contains("`create_trigger`"), "{message}");
}

#[tokio::test]
async fn a_raw_bytes_body_is_not_read_as_json() {
    // `upload_ixp_document` takes `application/octet-stream` (not
    // implemented: 501); its body is not JSON and is not checked as JSON,
    // while its path parameters still are.
    let sandbox = checked().await;
    let upload = "/api/_private/ixp/projects/0b9c/models/latest/documents";
    let message = error_message(
        &raw(&sandbox, "PUT", upload, Some("%PDF-1.4 {not json")).await,
        501,
    );
    assert!(message.contains("`upload_ixp_document`"), "{message}");
    let message = error_message(
        &raw(
            &sandbox,
            "PUT",
            "/api/_private/ixp/projects/a%0Ab/models/latest/documents",
            Some("%PDF-1.4"),
        )
        .await,
        400,
    );
    assert!(
        message.starts_with("path parameter `project_uuid`"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_fields_pass_where_the_spec_allows_them_and_are_not_stored() {
    // The spec has no `additionalProperties: false` (a unit test of
    // `validate_request` covers that refusal); elsewhere an unknown field is
    // accepted, as the service does, and dropped.
    let sandbox = checked().await;
    acme(&sandbox).await;
    ok(
        &sandbox,
        "POST",
        "/api/v1/sources/acme/inbox/sync",
        Some(r#"{"comments": [{"id": "c1", "colour": "red", "messages": [{"body": {"text": "hi"}}]}], "extra": 1}"#),
    )
    .await;
    let listed = comments(&sandbox).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], "c1");
    assert_eq!(listed[0].get("colour"), None, "{listed}");
}

#[tokio::test]
async fn a_bad_query_parameter_is_400_naming_it_and_changes_nothing() {
    let sandbox = checked().await;
    acme(&sandbox).await;
    let body = r#"{"comments": [{"id": "c1", "messages": [{"body": {"text": "hi"}}]}]}"#;

    let message = error_message(
        &raw(
            &sandbox,
            "POST",
            "/api/v1/sources/acme/inbox/sync?no_charge=maybe",
            Some(body),
        )
        .await,
        400,
    );
    assert!(
        message.starts_with("query parameter `no_charge`: "),
        "{message}"
    );
    assert!(message.contains("\"boolean\""), "{message}");
    assert_eq!(comments(&sandbox).await, json!([]));

    let message = error_message(
        &raw(
            &sandbox,
            "GET",
            "/api/_private/sources/acme/inbox/comments?limit=ten",
            None,
        )
        .await,
        400,
    );
    assert_eq!(
        message,
        "query parameter `limit`: \"ten\" is not of type \"integer\""
    );
    let message = error_message(
        &raw(
            &sandbox,
            "GET",
            "/api/_private/sources/acme/inbox/comments?from_timestamp=yesterday",
            None,
        )
        .await,
        400,
    );
    assert!(
        message.starts_with("query parameter `from_timestamp`: "),
        "{message}"
    );
    let message = error_message(
        &raw(
            &sandbox,
            "GET",
            "/api/_private/sources/acme/inbox/comments?limit=1&limit=2",
            None,
        )
        .await,
        400,
    );
    assert!(message.contains("`limit`: given 2 times"), "{message}");

    // The stream's results are read with an integer or not at all; its
    // position does not move either way.
    let stream = "/api/v1/datasets/acme/triage/streams/s";
    let before = ok(&sandbox, "GET", stream, None).await;
    let message = error_message(
        &raw(
            &sandbox,
            "GET",
            &format!("{stream}/results?max_results=1.5"),
            None,
        )
        .await,
        400,
    );
    assert!(
        message.starts_with("query parameter `max_results`: "),
        "{message}"
    );
    assert_eq!(ok(&sandbox, "GET", stream, None).await, before);
}

#[tokio::test]
async fn a_valid_request_still_passes_with_every_option() {
    let sandbox = checked().await;
    acme(&sandbox).await;
    // Nulls for optional fields and an offset-less date-time: the sandbox
    // reads them as absent and as UTC (DESIGN.md), as before.
    ok(
        &sandbox,
        "POST",
        "/api/v1/sources/acme/inbox/sync?no_charge=true",
        Some(
            r#"{"comments": [{"id": "c1", "timestamp": "2026-03-01T10:00:00", "thread_id": null,
                "user_properties": {"string:Country": "FR", "number:Amount": 12.5},
                "messages": [{"from": "a@example.com", "to": ["b@example.com"], "sent_at": null,
                              "body": {"text": "hi"}, "subject": {"text": "Refund"}}]}]}"#,
        ),
    )
    .await;
    let page = ok(
        &sandbox,
        "GET",
        "/api/_private/sources/acme/inbox/comments?limit=10&from_timestamp=2026-03-01T00:00:00Z&include_markup=false",
        None,
    )
    .await;
    assert_eq!(page["comments"][0]["id"], "c1", "{page}");
    assert_eq!(page["comments"][0]["timestamp"], "2026-03-01T10:00:00Z");
    let deleted = ok(
        &sandbox,
        "DELETE",
        "/api/v1/sources/acme/inbox/comments?id=c1&id=c2",
        None,
    )
    .await;
    assert_eq!(deleted["status"], "ok");
    assert_eq!(comments(&sandbox).await, json!([]));
    assert_eq!(sandbox.schema_violations(), vec![]);
}

#[tokio::test]
async fn path_injection_in_names_is_refused_with_the_envelope_and_changes_nothing() {
    let sandbox = checked().await;
    acme(&sandbox).await;
    let sources = || async {
        ok(&sandbox, "GET", "/api/v1/sources/acme", None).await["sources"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(sources().await, vec!["inbox"]);
    let create = |name: &'static str| {
        let sandbox = &sandbox;
        async move {
            raw(
                sandbox,
                "PUT",
                &format!("/api/v1/sources/acme/{name}"),
                Some(r#"{"source": {}}"#),
            )
            .await
        }
    };

    // Dot segments, raw or encoded, and empty ones name no resource: 404
    // saying so, as the spec's `PathSegment` says.
    for (name, why) in [
        ("..", "is `..`, which names no resource"),
        ("%2E%2E", "is `..`, which names no resource"),
        (".", "is `.`, which names no resource"),
        ("%2e", "is `.`, which names no resource"),
        ("", "a path segment is empty"),
    ] {
        let message = error_message(&create(name).await, 404);
        assert!(message.ends_with(why), "{name}: {message}");
    }
    // `/` inside a name (`%2F`) and control characters: 400 naming the parameter.
    for (name, what) in [
        ("a%2Fb", "may not contain `/`"),
        ("..%2F..%2Fetc", "may not contain `/`"),
        ("in%00box", "control characters"),
        ("in%0D%0Abox", "control characters"),
        ("in%7Fbox", "control characters"),
    ] {
        let message = error_message(&create(name).await, 400);
        assert!(
            message.starts_with("path parameter `source_name`: "),
            "{name}: {message}"
        );
        assert!(message.contains(what), "{name}: {message}");
    }
    // Escapes that are not UTF-8 or not escapes at all: 404, never a panic.
    for name in ["%FF", "%zz", "%", "%C3"] {
        let message = error_message(&create(name).await, 404);
        assert!(
            message.ends_with("is not percent-encoded UTF-8"),
            "{name}: {message}"
        );
    }
    // The same rules on reads, for every name of the path.
    error_message(
        &raw(&sandbox, "GET", "/api/v1/sources/ac%2Fme/inbox", None).await,
        400,
    );
    let message = error_message(
        &raw(
            &sandbox,
            "GET",
            "/api/v1/datasets/acme/triage/streams/s%00",
            None,
        )
        .await,
        400,
    );
    assert!(
        message.starts_with("path parameter `stream_name`"),
        "{message}"
    );
    // Nothing was created, and what exists still answers.
    assert_eq!(sources().await, vec!["inbox"]);
    ok(&sandbox, "GET", "/api/v1/sources/acme/inbox", None).await;
    // A comment id is free text: `/` is allowed in it (only control characters are not).
    ok(
        &sandbox,
        "POST",
        "/api/v1/sources/acme/inbox/sync",
        Some(r#"{"comments": [{"id": "a/b", "messages": [{"body": {"text": "hi"}}]}]}"#),
    )
    .await;
    let got = ok(
        &sandbox,
        "GET",
        "/api/v1/sources/acme/inbox/comments/a%2Fb",
        None,
    )
    .await;
    assert_eq!(got["comment"]["id"], "a/b");
}

#[tokio::test]
async fn with_request_validation_off_only_the_handlers_judge() {
    let sandbox = Sandbox::builder()
        .validate_responses(true)
        .validate_requests(false)
        .start()
        .await
        .unwrap();
    acme(&sandbox).await;
    // What the spec refuses but no handler reads now passes...
    let triggers = "/api/v1/datasets/acme/triage/triggers";
    error_message(&raw(&sandbox, "PUT", triggers, Some("{}")).await, 501);
    ok(
        &sandbox,
        "POST",
        "/api/v1/sources/acme/inbox/sync?no_charge=maybe",
        Some(r#"{"comments": [{"id": "c1", "messages": [{"body": {"text": "hi"}}]}]}"#),
    )
    .await;
    // ...and what a handler reads is still refused by its typed decoding.
    let message = error_message(
        &raw(
            &sandbox,
            "POST",
            "/api/v1/sources/acme/inbox/sync",
            Some(r#"{"comments": [{"id": 7}]}"#),
        )
        .await,
        422,
    );
    assert!(message.contains("comments[0]"), "{message}");
    assert_eq!(sandbox.schema_violations(), vec![]);
}

/// A timing, not an assertion: `cargo nextest run -p cm-sandbox --run-ignored
/// only --no-capture request_validation_cost`.
#[tokio::test]
#[ignore = "a timing to read, not a test"]
async fn request_validation_cost_of_a_4096_comment_sync() {
    let mut figures = Vec::new();
    for validate in [true, false] {
        let sandbox = Sandbox::builder()
            .validate_requests(validate)
            .start()
            .await
            .unwrap();
        let client = client(&sandbox);
        project_and_source(&client).await;
        let batch = |round: usize| cm_api::types::SyncCommentsRequest {
            comments: (0..4096)
                .map(|i| {
                    comment(
                        &format!("c{i:05}"),
                        "2026-03-01T10:00:00Z",
                        &format!("round {round}: where is my refund? {i}"),
                    )
                })
                .collect(),
        };
        // The first request also compiles the operation's checks.
        let started = Instant::now();
        sync_batch(&client, batch(0)).await;
        let first = started.elapsed();
        let rounds = 5;
        let started = Instant::now();
        for round in 1..=rounds {
            sync_batch(&client, batch(round)).await;
        }
        let each = started.elapsed() / rounds as u32;
        figures.push((validate, first, each));
    }
    for (validate, first, each) in figures {
        println!(
            "sync_comments of 4096 comments, request validation {}: first {first:?}, then {each:?} each",
            if validate { "on " } else { "off" }
        );
    }
}

async fn sync_batch(client: &cm_api::Client, body: cm_api::types::SyncCommentsRequest) {
    let report = client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body(body)
        .send()
        .await
        .expect("sync_comments")
        .into_inner();
    assert_eq!(report.new + report.updated + report.unchanged, 4096);
}
