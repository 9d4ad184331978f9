//! Faults on demand, driven through `cm_api::Client` with its retries:
//! each test asserts what the client saw (attempts, the error's variant)
//! and the state that results (a write applied once, or not at all).

mod common;

use std::time::{Duration, Instant};

use cm_api::{Client, Endpoint, Error, RetryPolicy, TransportKind, types};
use cm_sandbox::{Fault, Sandbox};
use common::{checked, client, comment, project_and_source, typed};
use serde_json::{Value, json};

/// A client of `sandbox` that retries (4 attempts, short backoffs).
fn retrying(sandbox: &Sandbox) -> Client {
    Client::builder()
        .env_lookup(|_| None)
        .config_path(std::env::temp_dir().join("cm-sandbox-tests-no-config.toml"))
        .endpoint(Endpoint::parse(sandbox.base_url()).expect("sandbox URL"))
        .token(sandbox.token().to_owned())
        .retry_policy(
            RetryPolicy::default()
                .max_attempts(4)
                .initial_backoff(Duration::from_millis(10)),
        )
        .build()
        .expect("client")
}

async fn sync_one(
    client: &Client,
    id: &str,
) -> Result<cm_api::Response<types::SyncCommentsResponse>, Error> {
    client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body(types::SyncCommentsRequest {
            comments: vec![comment(id, "2026-03-01T10:00:00Z", "Where is my refund?")],
        })
        .send()
        .await
}

async fn comment_ids(client: &Client) -> Vec<String> {
    client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .expect("list_source_comments")
        .into_inner()
        .comments
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn get_project(
    client: &Client,
    name: &str,
) -> Result<cm_api::Response<types::ProjectResponse>, Error> {
    client.get_project().project(name).send().await
}

async fn create_project(
    client: &Client,
    name: &str,
) -> Result<cm_api::Response<types::ProjectResponse>, Error> {
    client
        .create_project()
        .project(name)
        .body(typed::<types::CreateProjectRequest>(
            json!({"project": {"title": name}}),
        ))
        .send()
        .await
}

fn transport(error: Error) -> (TransportKind, u32, bool) {
    match error {
        Error::Transport {
            kind,
            attempts,
            maybe_applied,
            ..
        } => (kind, attempts, maybe_applied),
        other => panic!("expected Error::Transport, got {other:?}"),
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_the_write_is_applied_once() {
    let sandbox = checked().await;
    let client = retrying(&sandbox);
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(Fault::rate_limited(1).on("sync_comments"))
        .unwrap();

    let started = Instant::now();
    let response = sync_one(&client, "c1").await.expect("sync after a 429");
    assert_eq!(response.attempts(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not waited out ({:?})",
        started.elapsed()
    );
    // The 429 never reached the handler: the second attempt created it.
    assert_eq!((response.new, response.unchanged), (1, 0));
    assert_eq!(comment_ids(&client).await, ["c1"]);
    assert!(sandbox.faults().list().is_empty(), "the fault expired");
}

#[tokio::test]
async fn a_503_twice_then_the_call_succeeds_on_the_third_attempt() {
    let sandbox = checked().await;
    let client = retrying(&sandbox);
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(Fault::status(503).on("sync_comments").times(2))
        .unwrap();

    let response = sync_one(&client, "c1").await.expect("sync after two 503s");
    assert_eq!(response.attempts(), 3);
    assert_eq!((response.new, response.unchanged), (1, 0));
    assert_eq!(comment_ids(&client).await, ["c1"]);
}

#[tokio::test]
async fn a_status_fault_answers_the_envelope_and_a_retry_after() {
    let sandbox = checked().await;
    let client = client(&sandbox); // one attempt
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(
            Fault::status(500)
                .retry_after(7)
                .message("database on fire")
                .on("sync_comments"),
        )
        .unwrap();
    let error = sync_one(&client, "c1").await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(error.message(), Some("database on fire"));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(comment_ids(&client).await.is_empty(), "nothing was applied");
}

#[tokio::test]
async fn an_html_502_is_an_unexpected_response_when_not_retried() {
    let sandbox = checked().await;
    let client = client(&sandbox); // one attempt
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(Fault::html(502).on("get_project"))
        .unwrap();

    match get_project(&client, "acme").await.unwrap_err() {
        Error::UnexpectedResponse {
            status,
            content_type,
            snippet,
            attempts,
            ..
        } => {
            assert_eq!(status, 502);
            assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
            assert!(snippet.contains("502 Bad Gateway"), "{snippet}");
            assert_eq!(attempts, 1);
        }
        other => panic!("expected Error::UnexpectedResponse, got {other:?}"),
    }
    // Expired after one: the next call is served.
    assert_eq!(
        get_project(&client, "acme").await.unwrap().project.name,
        "acme"
    );
}

#[tokio::test]
async fn a_body_cut_short_is_a_transport_error_and_a_retry_reads_it_whole() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(Fault::cut_short().on("get_project"))
        .unwrap();
    let (kind, attempts, maybe_applied) =
        transport(get_project(&client, "acme").await.unwrap_err());
    assert_eq!((kind, attempts), (TransportKind::Connection, 1));
    assert!(maybe_applied, "a lost answer may have been applied");

    // A GET is retried after a lost answer.
    sandbox
        .faults()
        .inject(Fault::cut_short().on("get_project"))
        .unwrap();
    let response = get_project(&retrying(&sandbox), "acme").await.unwrap();
    assert_eq!(response.attempts(), 2);
    assert_eq!(response.project.name, "acme");
}

#[tokio::test]
async fn a_cut_short_answer_declares_more_than_it_sends() {
    let sandbox = checked().await;
    project_and_source(&client(&sandbox)).await;
    sandbox
        .faults()
        .inject(Fault::cut_short().after_handler().on("get_project"))
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!("{}/api/_private/projects/acme", sandbox.base_url()))
        .bearer_auth(sandbox.token())
        .send()
        .await
        .expect("the head arrives");
    assert_eq!(response.status(), 200);
    let declared: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut response = response;
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("the body ended normally after {} bytes", received.len()),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    assert!(!received.is_empty() && received.len() < declared);
    // The part sent is the start of the handler's real answer, whose
    // length was declared.
    let whole = reqwest::Client::new()
        .get(format!("{}/api/_private/projects/acme", sandbox.base_url()))
        .bearer_auth(sandbox.token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.len(), declared);
    assert!(whole.starts_with(&received));
}

#[tokio::test]
async fn a_reset_without_an_answer_and_a_reset_mid_body_are_transport_errors() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;

    sandbox
        .faults()
        .inject(Fault::reset().on("get_project"))
        .unwrap();
    let (kind, attempts, _) = transport(get_project(&client, "acme").await.unwrap_err());
    assert_eq!((kind, attempts), (TransportKind::Connection, 1));

    sandbox
        .faults()
        .inject(Fault::reset_mid_body().on("get_project"))
        .unwrap();
    let (kind, attempts, _) = transport(get_project(&client, "acme").await.unwrap_err());
    assert_eq!((kind, attempts), (TransportKind::Connection, 1));

    // Both expired; the same client is served on a new connection.
    assert_eq!(
        get_project(&client, "acme").await.unwrap().project.name,
        "acme"
    );
}

#[tokio::test]
async fn a_reset_before_the_handler_applies_nothing_and_the_retry_creates() {
    let sandbox = checked().await;
    let client = retrying(&sandbox);
    sandbox
        .faults()
        .inject(Fault::reset().on("create_project"))
        .unwrap();
    let response = create_project(&client, "acme")
        .await
        .expect("create after a reset");
    assert_eq!(response.attempts(), 2);
    assert_eq!(response.project.name, "acme");
}

#[tokio::test]
async fn a_reset_after_the_handler_loses_an_applied_write() {
    let sandbox = checked().await;
    let client = retrying(&sandbox);
    sandbox
        .faults()
        .inject(Fault::reset().after_handler().on("create_project"))
        .unwrap();
    // The PUT is retried after the lost answer, and meets its own creation.
    let error = create_project(&client, "acme").await.unwrap_err();
    assert_eq!(error.status(), Some(409));
    assert!(error.maybe_applied());
    assert_eq!(
        get_project(&client, "acme").await.unwrap().project.title,
        "acme"
    );
}

#[tokio::test]
async fn a_sync_whose_answer_was_lost_is_retried_and_stored_once() {
    let sandbox = checked().await;
    let client = retrying(&sandbox);
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(Fault::reset_mid_body().after_handler().on("sync_comments"))
        .unwrap();
    let response = sync_one(&client, "c1")
        .await
        .expect("sync after a lost answer");
    assert_eq!(response.attempts(), 2);
    // The first attempt stored it; the retry found it unchanged.
    assert_eq!((response.new, response.unchanged), (0, 1));
    assert_eq!(comment_ids(&client).await, ["c1"]);
}

#[tokio::test]
async fn faults_expire_after_n_and_skip_the_first_k() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    sandbox
        .faults()
        .inject(Fault::status(500).on("get_project").after(1).times(2))
        .unwrap();

    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(match get_project(&client, "acme").await {
            Ok(_) => 200,
            Err(error) => error.status().unwrap_or(0),
        });
    }
    assert_eq!(statuses, [200, 500, 500, 200, 200]);
    assert!(sandbox.faults().list().is_empty());
    // Other operations were never matched.
    assert!(comment_ids(&client).await.is_empty());
}

#[tokio::test]
async fn an_always_fault_stays_until_removed_and_a_path_target_matches_by_prefix() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let id = sandbox
        .faults()
        .inject(
            Fault::status(503)
                .on_path("GET", "/api/_private/projects/")
                .always(),
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            get_project(&client, "acme").await.unwrap_err().status(),
            Some(503)
        );
    }
    // Another method on the same prefix is not matched.
    assert_eq!(
        create_project(&client, "other").await.unwrap().project.name,
        "other"
    );
    let listed = sandbox.faults().list();
    assert_eq!(
        (listed.len(), listed[0].fired, listed[0].remaining),
        (1, 3, None)
    );
    assert!(sandbox.faults().remove(id));
    assert!(!sandbox.faults().remove(id));
    assert_eq!(
        get_project(&client, "acme").await.unwrap().project.name,
        "acme"
    );
}

#[tokio::test]
async fn latency_delays_the_answer_and_other_faults_still_apply() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let faults = sandbox.faults();
    faults
        .inject(Fault::latency(Duration::from_millis(300)).on("get_project"))
        .unwrap();
    faults.inject(Fault::status(500).on("get_project")).unwrap();
    let started = Instant::now();
    assert_eq!(
        get_project(&client, "acme").await.unwrap_err().status(),
        Some(500)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(faults.list().is_empty());
}

#[tokio::test]
async fn inject_refuses_what_cannot_be_served() {
    let sandbox = checked().await;
    let faults = sandbox.faults();
    for (fault, why) in [
        (Fault::status(200), "400 to 599"),
        (Fault::html(302), "400 to 599"),
        (Fault::status(503).on("sync_commentz"), "sync_commentz"),
        (
            Fault::reset().on_path("GET", "api/v1"),
            "does not start with `/`",
        ),
        (Fault::reset().on_path("GE T", "/api"), "not an HTTP method"),
    ] {
        let error = faults.inject(fault).unwrap_err();
        assert!(error.to_string().contains(why), "{error}");
    }
    assert!(faults.list().is_empty());
}

// -- the control route, raw: cm-api never sends it ---------------------------

async fn control(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", sandbox.base_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("control route");
    let status = response.status().as_u16();
    (status, response.json().await.expect("an envelope"))
}

#[tokio::test]
async fn the_control_route_sets_lists_and_clears_faults() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let admin = Some(sandbox.token());
    use reqwest::Method as M;

    let (status, body) = control(
        &sandbox,
        M::POST,
        "/_sandbox/faults",
        admin,
        Some(json!({"fault": "rate_limited", "retry_after": 3, "operation": "get_project", "times": "always"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    let id = body["fault"]["id"].as_u64().unwrap();
    assert_eq!(body["fault"]["fault"], "status");
    assert_eq!(body["fault"]["status"], 429);
    assert_eq!(body["fault"]["remaining"], "always");

    let (status, body) = control(
        &sandbox,
        M::POST,
        "/_sandbox/faults",
        admin,
        Some(json!({"fault": "cut_short", "method": "POST", "path_prefix": "/api/v1/sources/", "handler": "after", "times": 2, "after": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // In force: get_project is rate limited with the Retry-After asked for.
    let error = get_project(&client, "acme").await.unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));

    let (status, body) = control(&sandbox, M::GET, "/_sandbox/faults", admin, None).await;
    assert_eq!(status, 200);
    let listed = body["faults"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"].as_u64(), Some(id));
    assert_eq!(listed[0]["fired"], 1);
    assert_eq!(listed[1]["handler"], "after");
    assert_eq!(listed[1]["to_skip"], 1);
    assert_eq!(listed[1]["path_prefix"], "/api/v1/sources/");
    assert_eq!(listed[1]["method"], "POST");
    assert_eq!(
        sandbox.faults().list().len(),
        2,
        "the same faults in-process"
    );

    let (status, _) = control(
        &sandbox,
        M::DELETE,
        &format!("/_sandbox/faults/{id}"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = control(
        &sandbox,
        M::DELETE,
        &format!("/_sandbox/faults/{id}"),
        admin,
        None,
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (404, Some("error")));
    assert_eq!(
        get_project(&client, "acme").await.unwrap().project.name,
        "acme"
    );

    let (status, body) = control(&sandbox, M::DELETE, "/_sandbox/faults", admin, None).await;
    assert_eq!((status, body["cleared"].as_u64()), (200, Some(1)));
    assert!(sandbox.faults().list().is_empty());
}

#[tokio::test]
async fn the_control_route_takes_only_the_admin_token_and_valid_faults() {
    let sandbox = checked().await;
    use reqwest::Method as M;
    let fault = json!({"fault": "status", "status": 503});
    let minted = sandbox.mint_token(cm_sandbox::all_permissions());

    let (status, body) = control(
        &sandbox,
        M::POST,
        "/_sandbox/faults",
        None,
        Some(fault.clone()),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (401, Some("error")));
    let (status, body) = control(
        &sandbox,
        M::POST,
        "/_sandbox/faults",
        Some("sbx-nope"),
        Some(fault.clone()),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (401, Some("error")));
    let (status, body) = control(
        &sandbox,
        M::POST,
        "/_sandbox/faults",
        Some(&minted),
        Some(fault),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (403, Some("error")));
    assert!(sandbox.faults().list().is_empty());

    let admin = Some(sandbox.token());
    for (body, field) in [
        (json!({"fault": "status"}), "`status`"),
        (json!({"fault": "status", "status": 200}), "400 to 599"),
        (json!({"fault": "explode"}), "`fault`"),
        (json!({"fault": "latency"}), "`ms`"),
        (json!({"fault": "reset", "times": 0}), "`times`"),
        (json!({"fault": "reset", "times": "forever"}), "`times`"),
        (
            json!({"fault": "status", "status": 500, "handler": "after"}),
            "`handler`",
        ),
        (json!({"fault": "reset", "operation": "nope"}), "`nope`"),
        (
            json!({"fault": "reset", "operation": "get_project", "path_prefix": "/a"}),
            "`operation`",
        ),
        (json!({"fault": "reset", "colour": "red"}), "colour"),
    ] {
        let (status, answer) = control(
            &sandbox,
            M::POST,
            "/_sandbox/faults",
            admin,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body} → {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(field), "{body} → {message}");
    }
    assert!(
        sandbox.faults().list().is_empty(),
        "a refused fault leaves no trace"
    );

    let (status, _) = control(&sandbox, M::PUT, "/_sandbox/faults", admin, None).await;
    assert_eq!(status, 405);
    let (status, _) = control(&sandbox, M::GET, "/_sandbox/nothing", admin, None).await;
    assert_eq!(status, 404);
    // Not an operation of the spec, and never faulted.
    sandbox
        .faults()
        .inject(Fault::status(500).always())
        .unwrap();
    let (status, body) = control(&sandbox, M::GET, "/_sandbox/faults", admin, None).await;
    assert_eq!(
        (status, body["faults"].as_array().map(Vec::len)),
        (200, Some(1))
    );
}

// -- on the wire: what a raw TCP client receives ------------------------------

/// Sends a `get_project` over a new TCP connection and reads until the
/// server closes it: the bytes received, and how the read ended.
async fn raw_get_project(sandbox: &Sandbox) -> (Vec<u8>, std::io::Result<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(sandbox.addr())
        .await
        .unwrap();
    let request = format!(
        "GET /api/_private/projects/acme HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        sandbox.token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return (received, Ok(())),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) => return (received, Err(error)),
        }
    }
}

#[tokio::test]
async fn on_the_wire_a_reset_is_an_rst_and_a_cut_body_a_close_before_its_length() {
    let sandbox = checked().await;
    project_and_source(&client(&sandbox)).await;
    let faults = sandbox.faults();

    faults.inject(Fault::reset().on("get_project")).unwrap();
    let (received, end) = raw_get_project(&sandbox).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);

    faults
        .inject(Fault::reset_mid_body().on("get_project"))
        .unwrap();
    let (received, end) = raw_get_project(&sandbox).await;
    assert!(received.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);

    faults.inject(Fault::cut_short().on("get_project")).unwrap();
    let (received, end) = raw_get_project(&sandbox).await;
    end.expect("an orderly close (FIN), not a reset");
    let text = String::from_utf8_lossy(&received);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let declared: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert!(
        !body.is_empty() && body.len() < declared,
        "{} of {declared}",
        body.len()
    );

    // Without a fault, the same request reads whole and ends with a close.
    let (received, end) = raw_get_project(&sandbox).await;
    end.unwrap();
    assert!(String::from_utf8_lossy(&received).ends_with('}'));
}
