//! No `Debug` output of a public type prints a secret: the token, a
//! proxy's password, a default header's value, a response's `set-cookie`.
//! Each value below is printed with `{:?}` and searched for every secret.

mod common;

use chrono::{DateTime, Utc};
use cm_api::bulk::{CommentsTarget, RawEmailsTarget};
use cm_api::stream_consumer::StreamConsumer;
use cm_api::{CallOptions, Client, ClientBuilder, Endpoint};
use common::isolated;
use httpmock::MockServer;
use std::time::Duration;

const TOKEN: &str = "tok-SECRET-bearer-1";
const PROXY_USER: &str = "proxy-SECRET-user-2";
const PROXY_PASSWORD: &str = "proxy-SECRET-password-3";
const GATEWAY_KEY: &str = "gw-SECRET-key-4";
const COOKIE: &str = "cookie-SECRET-session-5";
const SECRETS: &[&str] = &[TOKEN, PROXY_USER, PROXY_PASSWORD, GATEWAY_KEY, COOKIE];

/// Fails naming `what` and the secrets when `debug` holds any secret (or
/// any part of one: every secret has `SECRET` in it).
fn assert_no_secret(what: &str, debug: &str) {
    let printed: Vec<&str> = SECRETS
        .iter()
        .copied()
        .filter(|s| debug.contains(s))
        .collect();
    assert!(
        printed.is_empty() && !debug.contains("SECRET"),
        "{what} prints a secret ({printed:?}): {debug}"
    );
}

/// A builder with every kind of secret: a token, a proxy with a user name
/// and password (not used for loopback: `no_proxy`), a default header.
fn builder(server: &MockServer) -> ClientBuilder {
    isolated()
        .endpoint(Endpoint::parse(&server.base_url()).unwrap())
        .token(TOKEN)
        .proxy(format!(
            "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:3128"
        ))
        .no_proxy("127.0.0.1,localhost")
        .default_header("x-gateway-key", GATEWAY_KEY)
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn no_debug_output_prints_a_token_a_proxy_password_a_header_value_or_a_cookie() {
    let server = MockServer::start_async().await;
    let projects = server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/projects")
                .header("x-gateway-key", GATEWAY_KEY);
            then.status(200)
                .header("content-type", "application/json")
                .header("set-cookie", format!("session={COOKIE}; HttpOnly"))
                .header("x-request-id", "req-1")
                .body(r#"{"status":"ok","projects":[]}"#);
        })
        .await;
    let attachment = server
        .mock_async(|when, then| {
            when.method("GET").path("/api/v1/attachments/a.0.1");
            then.status(200)
                .header("content-type", "application/pdf")
                .header("set-cookie", format!("session={COOKIE}"))
                .body("%PDF");
        })
        .await;

    let builder = builder(&server);
    let debug = format!("{builder:?}");
    assert_no_secret("ClientBuilder", &debug);
    // What the proxy is stays visible: scheme, host and port.
    assert!(
        debug.contains(r#"proxy: Some("http://***@127.0.0.1:3128")"#),
        "{debug}"
    );
    assert!(debug.contains("x-gateway-key"), "{debug}");

    let client = builder.build().unwrap();
    assert_no_secret("Client", &format!("{client:?}"));

    // Operation builders, bare and with parameters and options set.
    let get_source = client.get_source().project("p");
    let debug = format!("{get_source:?}");
    assert_no_secret("GetSource", &debug);
    assert!(debug.contains("get_source"), "{debug}");
    let with_options = client
        .get_source()
        .project("p")
        .source_name("s")
        .with_options(CallOptions::new().attempt_timeout(Duration::from_secs(7)));
    let debug = format!("{with_options:?}");
    assert_no_secret("GetSource with options", &debug);
    assert!(debug.contains("7s"), "the call options are shown: {debug}");
    assert_no_secret("ListProjects", &format!("{:?}", client.list_projects()));
    assert_no_secret(
        "ExportDataset",
        &format!(
            "{:?}",
            client
                .export_dataset()
                .project("acme")
                .dataset_name("triage")
        ),
    );
    assert_no_secret("GetDocument", &format!("{:?}", client.get_document()));

    // The hand-written helpers and long-running walkers.
    assert_no_secret(
        "UploadDocument",
        &format!("{:?}", client.upload_document().source_id("src")),
    );
    assert_no_secret(
        "QueryCommentsCsv",
        &format!("{:?}", client.query_comments_csv().project("acme")),
    );
    let listing = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(at("2026-01-01T00:00:00Z"))
        .to_timestamp(at("2026-01-02T00:00:00Z"));
    let paginated = listing.clone().into_stream();
    assert_no_secret("Paginated", &format!("{paginated:?}"));
    let walk = listing.into_parallel();
    assert_no_secret("ParallelWalk", &format!("{walk:?}"));
    assert_no_secret("ParallelPaginated", &format!("{:?}", walk.start().unwrap()));
    let consumer = StreamConsumer::new(client.clone(), "acme", "triage", "urgent");
    assert_no_secret("StreamConsumer", &format!("{consumer:?}"));
    assert_no_secret(
        "CommentsTarget",
        &format!("{:?}", CommentsTarget::new(&client, "acme", "inbox")),
    );
    assert_no_secret(
        "RawEmailsTarget",
        &format!("{:?}", RawEmailsTarget::new(&client, "acme", "inbox")),
    );

    // Responses: header names stay visible, values do not.
    let response = client.list_projects().send().await.unwrap();
    projects.assert_async().await;
    let debug = format!("{response:?}");
    assert_no_secret("Response", &debug);
    assert!(debug.contains("set-cookie"), "{debug}");
    assert_eq!(response.request_id(), Some("req-1"));
    let download = client
        .get_attachment()
        .attachment_reference("a.0.1")
        .send()
        .await
        .unwrap();
    attachment.assert_async().await;
    assert_no_secret("Response<Download>", &format!("{download:?}"));
    // The headers themselves are still there for the caller.
    assert!(
        download
            .headers()
            .get("set-cookie")
            .is_some_and(|v| v.as_bytes().ends_with(COOKIE.as_bytes()))
    );
}

#[test]
fn a_malformed_proxy_url_is_not_printed_and_a_plain_one_is() {
    let userinfo = format!("{PROXY_USER}:{PROXY_PASSWORD}");
    for proxy in [
        format!("http//{userinfo}@proxy:3128"),
        format!("http://{userinfo}@proxy:99999"),
        format!("http://{userinfo}@[::1"),
        format!("{userinfo}@"),
        format!("http://proxy:3128/{userinfo}?{userinfo}#{userinfo}"),
        format!("http://proxy:3128/#{PROXY_USER}%3A{PROXY_PASSWORD}"),
    ] {
        let debug = format!("{:?}", isolated().proxy(proxy.clone()));
        assert_no_secret("ClientBuilder", &debug);
        let built = isolated()
            .endpoint("https://acme.reinfer.io".parse().unwrap())
            .token(TOKEN)
            .proxy(proxy)
            .build();
        if let Err(error) = built {
            assert_no_secret(
                "the proxy's configuration error",
                &format!("{error} {error:?}"),
            );
        }
    }
    // Without a scheme, as reqwest reads it: http.
    let debug = format!("{:?}", isolated().proxy(format!("{userinfo}@proxy:3128")));
    assert_no_secret("ClientBuilder", &debug);
    assert!(
        debug.contains(r#"proxy: Some("http://***@proxy:3128")"#),
        "{debug}"
    );
    for (proxy, shown) in [
        ("http://proxy.internal:3128", "http://proxy.internal:3128"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
        ("socks5://proxy", "socks5://proxy"),
    ] {
        let debug = format!("{:?}", isolated().proxy(proxy));
        assert!(
            debug.contains(&format!("proxy: Some({shown:?})")),
            "{debug}"
        );
    }
}

#[test]
fn a_client_built_with_a_default_header_does_not_print_it() {
    let client: Client = isolated()
        .endpoint("https://acme.reinfer.io".parse().unwrap())
        .token(TOKEN)
        .default_header("x-gateway-key", GATEWAY_KEY)
        .build()
        .unwrap();
    // The generated facade's builders held the whole HTTP client.
    assert_no_secret("QueryComments", &format!("{:?}", client.query_comments()));
}
