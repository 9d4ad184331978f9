//! Client-credentials exchange, token refresh, 401 handling and redaction.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cm_api::{AuthError, ClientCredentials, Endpoint, Error, RetryPolicy};
use common::{config_file, isolated, with_env};
use httpmock::{HttpMockResponse, MockServer};
use serde_json::json;

const SECRET: &str = "cl13nt-s3cr3t-value";
const TOKEN_PATH: &str = "/identity_/connect/token";

fn cc_client(server: &MockServer, credentials: ClientCredentials) -> cm_api::Client {
    isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .client_credentials(credentials.token_url(server.url(TOKEN_PATH)))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// A token endpoint issuing `access-1`, `access-2`, ... valid for `expires_in` seconds.
async fn token_endpoint(
    server: &MockServer,
    expires_in: u64,
    delay: Duration,
) -> (httpmock::Mock<'_>, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let mock = server
        .mock_async(|when, then| {
            when.method("POST")
                .path(TOKEN_PATH)
                .header("content-type", "application/x-www-form-urlencoded")
                .form_urlencoded_tuple("grant_type", "client_credentials")
                .form_urlencoded_tuple("client_id", "app-id")
                .form_urlencoded_tuple("client_secret", SECRET)
                .form_urlencoded_tuple("scope", "PM.User PM.User.Read Ixp.ApiAccess");
            then.delay(delay).respond_with(move |_| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                HttpMockResponse::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(json!({"access_token": format!("access-{n}"), "expires_in": expires_in, "token_type": "Bearer"}).to_string())
                    .build()
            });
        })
        .await;
    (mock, issued)
}

async fn datasets_for<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    let bearer = format!("Bearer {token}");
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/datasets")
                .header("authorization", bearer);
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "datasets": []}));
        })
        .await
}

#[tokio::test]
async fn exchanges_client_credentials_and_caches_the_token() {
    let server = MockServer::start_async().await;
    let (token, _) = token_endpoint(&server, 3600, Duration::ZERO).await;
    let api = datasets_for(&server, "access-1").await;
    let client = cc_client(&server, ClientCredentials::new("app-id", SECRET));

    client.list_datasets().send().await.unwrap();
    client.list_datasets().send().await.unwrap();

    token.assert_calls_async(1).await;
    api.assert_calls_async(2).await;
}

#[tokio::test]
async fn a_token_shorter_lived_than_the_buffer_is_still_used() {
    let server = MockServer::start_async().await;
    // Tokens live 30 s; the 60 s buffer is capped at half of that, so the
    // token is used for 15 s instead of being exchanged for every request.
    let (token, _) = token_endpoint(&server, 30, Duration::ZERO).await;
    let first = datasets_for(&server, "access-1").await;
    let client = cc_client(
        &server,
        ClientCredentials::new("app-id", SECRET).refresh_buffer(Duration::from_secs(60)),
    );

    client.list_datasets().send().await.unwrap();
    client.list_datasets().send().await.unwrap();

    token.assert_calls_async(1).await;
    first.assert_calls_async(2).await;
}

#[tokio::test]
async fn concurrent_requests_share_one_exchange() {
    let server = MockServer::start_async().await;
    let (token, _) = token_endpoint(&server, 3600, Duration::from_millis(200)).await;
    let api = datasets_for(&server, "access-1").await;
    let client = cc_client(&server, ClientCredentials::new("app-id", SECRET));

    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.list_datasets().send().await })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }

    token.assert_calls_async(1).await;
    api.assert_calls_async(20).await;
}

#[tokio::test]
async fn a_401_triggers_one_refresh_and_retry() {
    let server = MockServer::start_async().await;
    let (token, _) = token_endpoint(&server, 3600, Duration::ZERO).await;
    let rejected = server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets")
                .header("authorization", "Bearer access-1");
            then.status(401)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "token revoked"}));
        })
        .await;
    let accepted = datasets_for(&server, "access-2").await;
    let client = cc_client(&server, ClientCredentials::new("app-id", SECRET));

    let response = client.list_datasets().send().await.unwrap();

    assert_eq!(response.attempts(), 2);
    token.assert_calls_async(2).await;
    rejected.assert_calls_async(1).await;
    accepted.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_second_401_is_returned() {
    let server = MockServer::start_async().await;
    let (token, _) = token_endpoint(&server, 3600, Duration::ZERO).await;
    let api = server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(401)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "missing scope"}));
        })
        .await;
    let client = cc_client(&server, ClientCredentials::new("app-id", SECRET));
    let err = client.list_datasets().send().await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 401, attempts: 2, message, .. } if message == "missing scope"),
        "{err:?}"
    );
    token.assert_calls_async(2).await;
    api.assert_calls_async(2).await;
}

#[tokio::test]
async fn a_static_token_is_not_retried_on_401() {
    let server = MockServer::start_async().await;
    let api = server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(401)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "bad token"}));
        })
        .await;
    let err = common::token_client(&server, RetryPolicy::none())
        .list_datasets()
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Api {
                status: 401,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    api.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_bad_secret_is_a_typed_auth_error_and_the_api_is_not_called() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.status(400)
                .header("content-type", "application/json")
                .json_body(json!({"error": "invalid_client", "error_description": "Invalid client secret"}));
        })
        .await;
    let api = server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(200);
        })
        .await;
    let client = cc_client(&server, ClientCredentials::new("app-id", SECRET));

    let err = client.list_datasets().send().await.unwrap_err();

    api.assert_calls_async(0).await;
    assert!(
        matches!(&err, Error::Auth(AuthError::Rejected { status: 400, error, description: Some(d) }) if error == "invalid_client" && d == "Invalid client secret"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "authentication failed: the identity server rejected the client credentials with HTTP 400: invalid_client (Invalid client secret)"
    );
    assert_eq!(err.message(), Some("Invalid client secret"));
    assert!(!format!("{err} {err:?}").contains(SECRET));
}

#[tokio::test]
async fn a_non_json_token_answer_is_an_auth_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.status(200)
                .header("content-type", "text/html")
                .body("<html>login</html>");
        })
        .await;
    let err = cc_client(&server, ClientCredentials::new("app-id", SECRET))
        .list_datasets()
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth(AuthError::InvalidResponse { status: 200, .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn profile_scope_and_token_url_are_used() {
    let server = MockServer::start_async().await;
    let token = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/custom/token")
                .form_urlencoded_tuple("client_id", "prof-app")
                .form_urlencoded_tuple("client_secret", SECRET)
                .form_urlencoded_tuple("scope", "Custom.Scope");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"access_token": "p-1", "expires_in": 3600}));
        })
        .await;
    let api = datasets_for(&server, "p-1").await;
    let path = config_file(
        "cc-profile",
        &format!(
            "[profiles.test]\nendpoint = \"{}\"\nclient_id = \"prof-app\"\nclient_secret_env = \"TEST_SECRET\"\nscope = \"Custom.Scope\"\ntoken_url = \"{}\"\n",
            server.base_url(),
            server.url("/custom/token")
        ),
    );
    let client = with_env(&[("REINFER_PROFILE", "test"), ("TEST_SECRET", SECRET)])
        .config_path(path)
        .build()
        .unwrap();
    client.list_datasets().send().await.unwrap();
    token.assert_calls_async(1).await;
    api.assert_calls_async(1).await;
}

/// A `tracing` writer collecting everything into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_display_errors_or_traces() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start_async().await;
    let (_token, _) = token_endpoint(&server, 3600, Duration::ZERO).await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/datasets");
            then.status(401)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "no"}));
        })
        .await;

    // Client credentials: Debug of the inputs, the client, and errors.
    let credentials = ClientCredentials::new("app-id", SECRET);
    let builder = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .client_credentials(credentials.clone().token_url(server.url(TOKEN_PATH)));
    let builder_debug = format!("{builder:?}");
    let client = builder.build().unwrap();
    let err = client.list_datasets().send().await.unwrap_err();

    // A static token, over a 401 as well.
    let token = "tok-static-123";
    let token_builder = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token(token);
    let token_builder_debug = format!("{token_builder:?}");
    let token_client = token_builder.build().unwrap();
    let token_err = token_client.list_datasets().send().await.unwrap_err();

    let access = cm_api::AccessToken::new("access-1", None);
    let texts = [
        format!("{credentials:?}"),
        builder_debug,
        format!("{client:?}"),
        format!("{err} {err:?}"),
        token_builder_debug,
        format!("{token_client:?}"),
        format!("{token_err} {token_err:?}"),
        format!("{access:?} {}", access.secret()),
    ];
    let traces = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        traces.contains("cm_api.request"),
        "no request span captured:\n{traces}"
    );
    assert!(
        traces.contains("cm_api.token_exchange"),
        "no exchange span captured:\n{traces}"
    );
    for text in texts.iter().chain([&traces]) {
        for secret in [SECRET, token, "access-1", "access-2"] {
            assert!(!text.contains(secret), "`{secret}` leaked into:\n{text}");
        }
    }
    assert!(texts[0].contains("[REDACTED]"));
}

/// A caller that gives up while the identity server is slow does not take
/// the exchange down with it: the exchange completes on its own and caches
/// its token, and a later call uses it without a new exchange, even after
/// the exchange's attempt timeout (2 s) has passed. (It used to resume the
/// abandoned exchange, whose timer had run out: `AuthError::Timeout`.)
#[tokio::test]
async fn an_abandoned_token_wait_still_caches_the_token_for_the_next_call() {
    let server = MockServer::start_async().await;
    let (token, _) = token_endpoint(&server, 3600, Duration::from_millis(500)).await;
    let api = datasets_for(&server, "access-1").await;
    let client = isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .client_credentials(
            ClientCredentials::new("app-id", SECRET).token_url(server.url(TOKEN_PATH)),
        )
        .request_timeout(Duration::from_secs(2))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();

    let abandoned =
        tokio::time::timeout(Duration::from_millis(100), client.list_datasets().send()).await;
    assert!(abandoned.is_err(), "the call was expected to be dropped");
    api.assert_calls_async(0).await;

    // Past the exchange's answer (0.5 s) and its attempt timeout (2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client.list_datasets().send().await.unwrap();

    token.assert_calls_async(1).await;
    api.assert_calls_async(1).await;
}

/// An exchange whose tokio runtime shuts down under it fails its other
/// waiters with a typed error (no panic, no hang), and the next call runs
/// a new exchange.
#[test]
fn an_exchange_cancelled_with_its_runtime_is_a_typed_error_and_the_next_call_exchanges_again() {
    let server = MockServer::start();
    let token = server.mock(|when, then| {
        when.method("POST").path(TOKEN_PATH);
        then.delay(Duration::from_millis(1000))
            .status(200)
            .header("content-type", "application/json")
            .json_body(json!({"access_token": "access-1", "expires_in": 3600}));
    });
    let api = server.mock(|when, then| {
        when.method("GET")
            .path("/api/v1/datasets")
            .header("authorization", "Bearer access-1");
        then.status(200)
            .header("content-type", "application/json")
            .json_body(json!({"status": "ok", "datasets": []}));
    });
    let client = cc_client(&server, ClientCredentials::new("app-id", SECRET));

    // Runtime A starts the exchange; its call waits in A.
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let in_a = client.clone();
    first.spawn(async move { in_a.list_datasets().send().await });
    for _ in 0..200 {
        if token.calls() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(token.calls(), 1, "the exchange did not start");

    // Runtime B joins it; A shuts down while the identity server is still
    // answering.
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shutdown = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        first.shutdown_background();
    });
    let err = second.block_on(client.list_datasets().send()).unwrap_err();
    shutdown.join().unwrap();
    assert!(
        matches!(&err, Error::Auth(AuthError::Provider(_))),
        "{err:?}"
    );
    let cause = std::error::Error::source(&err).map(|c| c.to_string());
    assert_eq!(
        cause.as_deref(),
        Some("the token exchange was cancelled: its tokio runtime shut down")
    );

    second.block_on(client.list_datasets().send()).unwrap();
    assert_eq!(token.calls(), 2);
    api.assert_calls(1);
}
