//! The wire as the service has it, for requests cm-api would never send:
//! every answer is the envelope and carries `Server-Timing` and
//! `x-request-id`; a bad request changes nothing.

mod common;

use cm_sandbox::Sandbox;
use common::checked;
use serde_json::{Value, json};

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn send(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", sandbox.base_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("the sandbox answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Answer {
        status,
        body,
        headers,
    }
}

/// The error envelope's message, after checking the envelope's shape and
/// the headers every answer carries.
fn error_message(answer: &Answer, status: u16) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["status"], "error", "{}", answer.body);
    assert_eq!(answer.body.as_object().unwrap().len(), 2, "{}", answer.body);
    assert_common_headers(answer);
    answer.body["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

fn assert_common_headers(answer: &Answer) {
    let timing = answer.headers["server-timing"].to_str().unwrap();
    let dur = timing
        .strip_prefix("total;dur=")
        .unwrap_or_else(|| panic!("Server-Timing: {timing}"));
    assert!(dur.parse::<f64>().is_ok(), "Server-Timing: {timing}");
    assert!(
        answer.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("sbx-")
    );
}

#[tokio::test]
async fn unknown_routes_methods_and_tokens_answer_the_envelope() {
    let sandbox = checked().await;
    let token = Some(sandbox.token());

    let ok = send(
        &sandbox,
        reqwest::Method::GET,
        "/api/v1/projects",
        token,
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, json!({"status": "ok", "projects": []}));
    assert_common_headers(&ok);

    let message = error_message(
        &send(
            &sandbox,
            reqwest::Method::GET,
            "/api/v1/nowhere",
            token,
            None,
        )
        .await,
        404,
    );
    assert!(message.contains("/api/v1/nowhere"), "{message}");

    let not_allowed = send(
        &sandbox,
        reqwest::Method::PATCH,
        "/api/v1/projects",
        token,
        None,
    )
    .await;
    error_message(&not_allowed, 405);
    assert_eq!(not_allowed.headers["allow"], "GET");

    let message = error_message(
        &send(
            &sandbox,
            reqwest::Method::GET,
            "/api/v1/projects",
            None,
            None,
        )
        .await,
        401,
    );
    assert!(message.contains("Bearer"), "{message}");
    error_message(
        &send(
            &sandbox,
            reqwest::Method::GET,
            "/api/v1/projects",
            Some("sbx-forged"),
            None,
        )
        .await,
        401,
    );

    let message = error_message(
        &send(
            &sandbox,
            reqwest::Method::POST,
            "/api/_private/datasets/acme/triage/conversational-filter-query",
            token,
            Some(r#"{"query": "refunds"}"#),
        )
        .await,
        501,
    );
    assert!(
        message.contains("`query_conversational_filter`"),
        "{message}"
    );

    let message = error_message(
        &send(
            &sandbox,
            reqwest::Method::GET,
            "/api/v1/sources/acme/inbox",
            token,
            None,
        )
        .await,
        404,
    );
    assert!(message.contains("project `acme`"), "{message}");
}

#[tokio::test]
async fn a_malformed_or_mismatched_body_is_rejected_naming_the_field_and_changes_nothing() {
    let sandbox = checked().await;
    let token = Some(sandbox.token());
    let put = reqwest::Method::PUT;
    let created = send(
        &sandbox,
        put.clone(),
        "/api/_private/projects/acme",
        token,
        Some(r#"{"project": {}}"#),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let created = send(
        &sandbox,
        put.clone(),
        "/api/v1/sources/acme/inbox",
        token,
        Some(r#"{"source": {}}"#),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);

    let sync = "/api/v1/sources/acme/inbox/sync";
    let post = reqwest::Method::POST;
    error_message(
        &send(
            &sandbox,
            post.clone(),
            sync,
            token,
            Some(r#"{"comments": [}"#),
        )
        .await,
        400,
    );
    error_message(&send(&sandbox, post.clone(), sync, token, None).await, 400);
    // The second comment's body text is a number: nothing is stored, not even the first.
    let bad = json!({"comments": [
        {"id": "ok", "messages": [{"body": {"text": "fine"}}]},
        {"id": "bad", "messages": [{"body": {"text": 42}}]},
    ]});
    let message = error_message(
        &send(&sandbox, post.clone(), sync, token, Some(&bad.to_string())).await,
        422,
    );
    assert!(
        message.contains("comments[1].messages[0].body.text"),
        "{message}"
    );
    let message = error_message(
        &send(
            &sandbox,
            post.clone(),
            sync,
            token,
            Some(r#"{"comments": [{"id": "t", "timestamp": "yesterday"}]}"#),
        )
        .await,
        422,
    );
    assert!(message.contains("comments[0].timestamp"), "{message}");
    let listed = send(
        &sandbox,
        reqwest::Method::GET,
        "/api/_private/sources/acme/inbox/comments",
        token,
        None,
    )
    .await;
    assert_eq!(listed.body["comments"], json!([]), "{}", listed.body);

    // A `..` path segment never names a resource.
    error_message(
        &send(
            &sandbox,
            reqwest::Method::GET,
            "/api/v1/sources/acme/%2E%2E",
            token,
            None,
        )
        .await,
        404,
    );
}

/// A project `acme` with a source `inbox`, through raw requests.
async fn acme_inbox(sandbox: &Sandbox) {
    for (path, body) in [
        ("/api/_private/projects/acme", r#"{"project": {}}"#),
        ("/api/v1/sources/acme/inbox", r#"{"source": {}}"#),
    ] {
        let created = send(
            sandbox,
            reqwest::Method::PUT,
            path,
            Some(sandbox.token()),
            Some(body),
        )
        .await;
        assert_eq!(created.status, 200, "{}", created.body);
    }
}

#[tokio::test]
async fn a_corrupted_answer_is_reported_with_its_operation_and_pointer() {
    let sandbox = checked().await;
    acme_inbox(&sandbox).await;
    let got = send(
        &sandbox,
        reqwest::Method::GET,
        "/api/v1/sources/acme/inbox",
        Some(sandbox.token()),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    // The real answer is valid; the same answer corrupted is not.
    assert_eq!(
        cm_sandbox::validate_response("get_source", &got.body),
        vec![]
    );
    let mut corrupted = got.body.clone();
    corrupted["source"]["name"] = json!(7);
    corrupted["source"]
        .as_object_mut()
        .unwrap()
        .remove("id")
        .expect("an id");
    let violations = cm_sandbox::validate_response("get_source", &corrupted);
    let found: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.operation_id.as_str(), v.pointer.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![("get_source", "/source"), ("get_source", "/source/name")],
        "{violations:?}"
    );
    assert!(violations[0].message.contains("\"id\""), "{violations:?}");
    // A null where the spec has no `nullable`, and a wrong date-time.
    let mut corrupted = got.body.clone();
    corrupted["source"]["created_at"] = json!("yesterday");
    let violations = cm_sandbox::validate_response("get_source", &corrupted);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].pointer, "/source/created_at");
}

#[tokio::test]
async fn a_comment_timestamp_without_an_offset_reads_back_as_rfc3339() {
    // The service's examples send `2020-06-03T16:05:00`; the sandbox
    // accepts it, and its answers must still be the spec's `date-time`.
    let sandbox = checked().await;
    acme_inbox(&sandbox).await;
    let token = Some(sandbox.token());
    let synced = send(
        &sandbox,
        reqwest::Method::POST,
        "/api/v1/sources/acme/inbox/sync",
        token,
        Some(r#"{"comments": [{"id": "c1", "timestamp": "2020-06-03T16:05:00", "messages": [{"body": {"text": "hi"}}]}]}"#),
    )
    .await;
    assert_eq!(synced.status, 200, "{}", synced.body);
    let got = send(
        &sandbox,
        reqwest::Method::GET,
        "/api/v1/sources/acme/inbox/comments/c1",
        token,
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(sandbox.schema_violations(), vec![]);
    assert_eq!(got.body["comment"]["timestamp"], "2020-06-03T16:05:00Z");
}

#[tokio::test]
async fn a_stream_filter_timestamp_without_an_offset_reads_back_as_rfc3339() {
    let sandbox = checked().await;
    acme_inbox(&sandbox).await;
    let token = Some(sandbox.token());
    let put = reqwest::Method::PUT;
    let created = send(
        &sandbox,
        put.clone(),
        "/api/v1/datasets/acme/triage",
        token,
        Some(r#"{"dataset": {}}"#),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let created = send(
        &sandbox,
        put,
        "/api/v1/datasets/acme/triage/streams",
        token,
        Some(
            r#"{"stream": {"name": "s", "comment_filter": {"timestamp": {"minimum": "2020-06-03T16:05:00", "maximum": "2021-01-01T00:00:00+01:00"}}}}"#,
        ),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let got = send(
        &sandbox,
        reqwest::Method::GET,
        "/api/v1/datasets/acme/triage/streams/s",
        token,
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(sandbox.schema_violations(), vec![]);
    assert_eq!(
        got.body["stream"]["comment_filter"]["timestamp"],
        json!({"minimum": "2020-06-03T16:05:00Z", "maximum": "2021-01-01T00:00:00+01:00"})
    );
}

#[tokio::test]
async fn a_comment_with_nulls_and_an_offsetless_sent_at_reads_back_in_the_specs_shape() {
    let sandbox = checked().await;
    acme_inbox(&sandbox).await;
    let token = Some(sandbox.token());
    let synced = send(
        &sandbox,
        reqwest::Method::POST,
        "/api/v1/sources/acme/inbox/sync",
        token,
        Some(
            r#"{"comments": [{"id": "c1", "timestamp": null, "thread_id": null, "user_properties": null, "messages": [{"body": {"text": "hi", "translated_from": null}, "sent_at": "2020-06-03T16:05:00", "to": null, "subject": null}]}]}"#,
        ),
    )
    .await;
    assert_eq!(synced.status, 200, "{}", synced.body);
    let got = send(
        &sandbox,
        reqwest::Method::GET,
        "/api/v1/sources/acme/inbox/comments/c1",
        token,
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(sandbox.schema_violations(), vec![]);
    assert_eq!(
        got.body["comment"]["messages"][0]["sent_at"],
        "2020-06-03T16:05:00Z"
    );
    assert_eq!(got.body["comment"].get("thread_id"), None);
    // A `sent_at` that is no date-time is refused, naming it.
    let message = error_message(
        &send(
            &sandbox,
            reqwest::Method::POST,
            "/api/v1/sources/acme/inbox/sync",
            token,
            Some(r#"{"comments": [{"id": "c1", "messages": [{"body": {"text": "hi"}, "sent_at": "yesterday"}]}]}"#),
        )
        .await,
        422,
    );
    assert!(
        message.contains("`comments[0].messages[0].sent_at`"),
        "{message}"
    );
}
