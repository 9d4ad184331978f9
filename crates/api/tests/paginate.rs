//! Pagination helpers against a loopback mock server: multi-page walks that
//! keep their filters, the end of a walk, repeated cursors, errors mid-way
//! and resuming after them.

mod common;

use cm_api::paginate::{Page, paginate};
use cm_api::{Error, RetryPolicy, types};
use common::token_client;
use futures::{StreamExt, TryStreamExt};
use httpmock::{HttpMockRequest, MockServer};
use serde_json::{Value, json};

const EXPORT: &str = "/api/v1/datasets/acme/triage/export";

fn comment(id: &str) -> Value {
    json!({
        "uid": format!("18ba5ce699f8da1f.{id}"),
        "id": id,
        "source_id": "18ba5ce699f8da1f",
        "timestamp": "2026-02-11T10:02:00Z",
        "user_properties": {},
        "messages": [{"body": {"text": "Where is my refund?"}}],
        "attachments": [],
        "created_at": "2026-02-11T10:03:12Z",
        "last_modified": "2026-02-11T10:03:12Z"
    })
}

fn thread(num_messages: u32) -> Value {
    json!({"num_messages": num_messages, "num_participants": 2, "duration": null,
           "response_time": null, "first_sender": "jane.doe@customer.example"})
}

fn exported(id: &str) -> Value {
    json!({"comment": comment(id), "annotations": {"labels": {"assigned": []}}, "predictions": {"labels": []}})
}

fn export_page(ids: &[&str], continuation: Option<&str>) -> Value {
    let mut page =
        json!({"status": "ok", "comments": ids.iter().map(|id| exported(id)).collect::<Vec<_>>()});
    if let Some(c) = continuation {
        page["continuation"] = json!(c);
    }
    page
}

/// A matcher: the JSON body has every key of `expected` with that value,
/// and none of the keys whose expected value is `null`.
fn body_is(expected: Value) -> impl Fn(&HttpMockRequest) -> bool + Send + Sync + 'static {
    move |req: &HttpMockRequest| {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(req.body_ref()) else {
            return false;
        };
        expected
            .as_object()
            .into_iter()
            .flatten()
            .all(|(key, value)| match value {
                Value::Null => !body.contains_key(key),
                value => body.get(key) == Some(value),
            })
    }
}

/// The filters every page of the export test must carry.
fn export_filters(continuation: Value) -> Value {
    json!({
        "source_ids": ["18ba5ce699f8da1f"],
        "from": "2026-01-01T00:00:00Z",
        "order_by": "timestamp",
        "limit": 2,
        "continuation": continuation,
    })
}

fn export_request() -> types::ExportDatasetRequest {
    types::ExportDatasetRequest {
        source_ids: vec!["18ba5ce699f8da1f".into()],
        from: Some("2026-01-01T00:00:00Z".parse().unwrap()),
        order_by: Some(types::ExportOrderBy::Timestamp),
        limit: Some(2),
        ..Default::default()
    }
}

fn ids(items: &[types::ExportedComment]) -> Vec<&str> {
    items.iter().map(|c| c.comment.id.as_str()).collect()
}

async fn mock_export_page(
    server: &MockServer,
    continuation: Value,
    page: Value,
) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method("POST")
                .path(EXPORT)
                .is_true(body_is(export_filters(continuation)));
            then.status(200)
                .header("content-type", "application/json")
                .json_body(page);
        })
        .await
}

#[tokio::test]
async fn export_walks_every_page_keeping_the_filters() {
    let server = MockServer::start_async().await;
    let first = mock_export_page(&server, Value::Null, export_page(&["a", "b"], Some("c1"))).await;
    let second = mock_export_page(&server, json!("c1"), export_page(&["c", "d"], Some("c2"))).await;
    let third = mock_export_page(&server, json!("c2"), export_page(&["e"], None)).await;
    let client = token_client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request())
        .into_stream();
    let items: Vec<_> = (&mut walk).try_collect().await.unwrap();

    assert_eq!(ids(&items), ["a", "b", "c", "d", "e"]);
    first.assert_async().await;
    second.assert_async().await;
    third.assert_async().await;
    assert!(walk.is_finished());
    assert_eq!(walk.resume_cursor(), None);
    assert_eq!(walk.pages_fetched(), 3);
    // Fused: polling after the end neither fetches nor fails.
    assert!(walk.next().await.is_none());
    assert_eq!(third.calls_async().await, 1);
}

#[tokio::test]
async fn an_empty_first_page_without_cursor_ends_the_walk() {
    let server = MockServer::start_async().await;
    let only = mock_export_page(&server, Value::Null, export_page(&[], None)).await;
    let client = token_client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request())
        .into_stream();
    assert!(walk.next().await.is_none());
    only.assert_async().await;
    assert!(walk.is_finished());
}

#[tokio::test]
async fn empty_pages_with_a_new_cursor_are_followed() {
    let server = MockServer::start_async().await;
    mock_export_page(&server, Value::Null, export_page(&[], Some("c1"))).await;
    mock_export_page(&server, json!("c1"), export_page(&["a"], None)).await;
    let client = token_client(&server, RetryPolicy::none());

    let items: Vec<_> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request())
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(&items), ["a"]);
}

#[tokio::test]
async fn a_repeated_cursor_is_an_error_not_a_loop() {
    let server = MockServer::start_async().await;
    mock_export_page(&server, Value::Null, export_page(&["a"], Some("c1"))).await;
    // The server answers the page at c1 with c1 again.
    let stuck = mock_export_page(&server, json!("c1"), export_page(&["b"], Some("c1"))).await;
    let client = token_client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request())
        .into_stream();
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    while let Some(item) = walk.next().await {
        match item {
            Ok(c) => seen.push(c.comment.id),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(seen, ["a", "b"]);
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(
            errors[0],
            Error::CursorNotAdvancing {
                operation: Some("export_dataset"),
                pages: 2,
                ..
            }
        ),
        "{:?}",
        errors[0]
    );
    assert_eq!(stuck.calls_async().await, 1);
    assert!(!walk.is_finished());
}

#[tokio::test]
async fn an_error_mid_way_keeps_what_was_yielded_and_can_be_resumed() {
    let server = MockServer::start_async().await;
    mock_export_page(&server, Value::Null, export_page(&["a", "b"], Some("c1"))).await;
    let failing = server
        .mock_async(|when, then| {
            when.path(EXPORT)
                .is_true(body_is(export_filters(json!("c1"))));
            then.status(400)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "bad continuation"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request())
        .into_stream();
    let mut yielded = Vec::new();
    let error = loop {
        match walk.next().await {
            Some(Ok(c)) => yielded.push(c.comment.id),
            Some(Err(e)) => break e,
            None => panic!("the walk ended without reporting the error"),
        }
    };
    assert_eq!(yielded, ["a", "b"]);
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.message(), Some("bad continuation"));
    assert!(
        walk.next().await.is_none(),
        "the stream ends after its error"
    );
    let resume = walk.resume_cursor().cloned();
    assert_eq!(resume.as_deref(), Some("c1"));

    // The server recovers; a new walk from the resume cursor yields the rest.
    failing.delete_async().await;
    mock_export_page(&server, json!("c1"), export_page(&["c"], None)).await;
    let request = types::ExportDatasetRequest {
        continuation: resume,
        ..export_request()
    };
    let rest: Vec<_> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(request)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["c"]);
}

#[tokio::test]
async fn page_sizes_outside_the_limits_are_rejected_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    for limit in [0, -1, cm_api::paginate::MAX_PAGE_SIZE + 1] {
        let request = types::ExportDatasetRequest {
            limit: Some(limit),
            ..Default::default()
        };
        let mut walk = client
            .export_dataset()
            .project("acme")
            .dataset_name("triage")
            .body(request)
            .into_stream();
        let error = walk.next().await.unwrap().unwrap_err();
        assert!(
            matches!(error, Error::InvalidRequest { .. }),
            "{limit}: {error:?}"
        );
        assert!(walk.next().await.is_none());
    }
    assert_eq!(any.calls_async().await, 0);
}

#[tokio::test]
async fn audit_events_follow_the_continuation_with_the_same_filter() {
    let server = MockServer::start_async().await;
    let event = |id: &str| {
        json!({"event_id": id, "event_type": "create_trigger", "timestamp": "2026-03-04T09:15:00Z",
               "actor_user_id": "u", "actor_tenant_id": "t", "tenant_ids": ["t"]})
    };
    let filter = json!({"timestamp": {"minimum": "2026-03-01T00:00:00Z"}});
    for (cursor, events, next) in [
        (Value::Null, vec![event("e1"), event("e2")], json!("k1")),
        (json!("k1"), vec![event("e3")], Value::Null),
    ] {
        let mut page = json!({"status": "ok", "audit_events": events, "tenants": []});
        if !next.is_null() {
            page["continuation"] = next;
        }
        server
            .mock_async(|when, then| {
                when.method("POST")
                    .path("/api/v1/audit_events/query")
                    .is_true(body_is(
                        json!({"filter": filter, "limit": 2, "continuation": cursor}),
                    ));
                then.status(200)
                    .header("content-type", "application/json")
                    .json_body(page);
            })
            .await;
    }
    let client = token_client(&server, RetryPolicy::none());
    let request = types::QueryAuditEventsRequest {
        limit: Some(2),
        filter: Some(serde_json::from_value(filter.clone()).unwrap()),
        continuation: None,
    };

    let events: Vec<_> = client
        .query_audit_events()
        .body(request.clone())
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3"]);

    let pages: Vec<_> = client
        .query_audit_events()
        .body(request)
        .into_pages()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].audit_events.len(), 1);
}

#[tokio::test]
async fn source_comments_send_the_window_on_every_page_and_after_from_page_two() {
    let server = MockServer::start_async().await;
    let path = "/api/_private/sources/acme/inbox/comments";
    let first = server
        .mock_async(|when, then| {
            when.method("GET")
                .path(path)
                .query_param("from_timestamp", "2026-01-01T00:00:00Z")
                .query_param("to_timestamp", "2026-02-01T00:00:00Z")
                .query_param("limit", "2")
                .query_param("include_thread_properties", "true")
                .query_param_missing("after");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({
                    "status": "ok", "comments": [comment("a"), comment("b")],
                    "thread_properties": [thread(1), thread(2)],
                    "continuation": "p2"
                }));
        })
        .await;
    let second = server
        .mock_async(|when, then| {
            when.method("GET")
                .path(path)
                .query_param("after", "p2")
                .query_param("to_timestamp", "2026-02-01T00:00:00Z")
                .query_param("limit", "2")
                .query_param("include_thread_properties", "true")
                .query_param_missing("from_timestamp");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "comments": [comment("c")]}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let comments: Vec<_> = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(
            "2026-01-01T00:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        )
        .to_timestamp(
            "2026-02-01T00:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        )
        .limit(2)
        .include_thread_properties(true)
        .into_stream()
        .try_collect()
        .await
        .unwrap();

    first.assert_async().await;
    second.assert_async().await;
    let ids: Vec<_> = comments.iter().map(|c| c.comment.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(comments[1].thread_properties.is_some());
    assert!(comments[2].thread_properties.is_none());
}

#[tokio::test]
async fn labellings_stop_at_the_first_empty_page() {
    let server = MockServer::start_async().await;
    let path = "/api/_private/datasets/acme/triage/labellings";
    let annotated = |id: &str| json!({"comment": comment(id), "labelling": []});
    server
        .mock_async(|when, then| {
            when.path(path)
                .query_param("source_id", "src")
                .query_param_missing("after");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "entity_defs": [], "results": [annotated("a")], "after": "x1"}));
        })
        .await;
    let last = server
        .mock_async(|when, then| {
            when.path(path)
                .query_param("source_id", "src")
                .query_param("after", "x1");
            // The route keeps sending `after` on its empty last page.
            then.status(200)
                .header("content-type", "application/json")
                .json_body(
                    json!({"status": "ok", "entity_defs": [], "results": [], "after": "x1"}),
                );
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let results: Vec<_> = client
        .get_labellings()
        .project("acme")
        .dataset_name("triage")
        .source_id("src")
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    last.assert_async().await;
}

#[tokio::test]
async fn query_comments_and_bucket_emails_carry_the_continuation_in_the_body() {
    let server = MockServer::start_async().await;
    let annotated = |id: &str| json!({"comment": comment(id), "labelling": []});
    for (cursor, ids, next) in [
        (Value::Null, vec!["a"], json!("q1")),
        (json!("q1"), vec!["b"], Value::Null),
    ] {
        let mut page = json!({"status": "ok", "entity_defs": [],
            "results": ids.iter().map(|id| annotated(id)).collect::<Vec<_>>()});
        if !next.is_null() {
            page["continuation"] = next;
        }
        server
            .mock_async(|when, then| {
                when.path("/api/_private/datasets/acme/triage/query")
                    .is_true(body_is(
                        json!({"order": {"kind": "recent"}, "limit": 1, "continuation": cursor}),
                    ));
                then.status(200)
                    .header("content-type", "application/json")
                    .json_body(page);
            })
            .await;
    }
    let email = |id: &str| {
        json!({"id": id, "mailbox": "support@acme.example", "timestamp": "2026-03-04T09:15:00Z",
               "mime_content": "Subject: hi\r\n\r\nhello\r\n", "metadata": null, "attachments": [],
               "created_at": "2026-03-04T09:16:00Z", "updated_at": null})
    };
    server
        .mock_async(|when, then| {
            when.path("/api/_private/buckets/acme/mail/emails")
                .is_true(body_is(json!({"limit": 5, "continuation": null})));
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "emails": [email("m1")], "continuation": "e1"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/api/_private/buckets/acme/mail/emails")
                .is_true(body_is(json!({"limit": 5, "continuation": "e1"})));
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"status": "ok", "emails": [email("m2")]}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let request: types::QueryCommentsRequest =
        serde_json::from_value(json!({"order": {"kind": "recent"}, "limit": 1})).unwrap();
    let results: Vec<_> = client
        .query_comments()
        .project("acme")
        .dataset_name("triage")
        .body(request)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<_> = results.iter().map(|r| r.comment.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);

    let request = types::BucketEmailsPageRequest {
        limit: Some(5),
        continuation: None,
    };
    let emails: Vec<_> = client
        .list_bucket_emails()
        .project("acme")
        .bucket_name("mail")
        .body(request)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<_> = emails.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"]);
}

/// The generic walker on an in-memory fake: cycles are caught, and the
/// resume cursor of a partly consumed page is that page's.
#[tokio::test]
async fn generic_walker_catches_cycles_and_reports_resume_points() {
    let pages = |cursor: Option<u32>| async move {
        Ok::<_, Error>(match cursor {
            None => Page::new(vec!["a", "b"], Some(1)),
            Some(1) => Page::new(vec!["c"], Some(2)),
            Some(2) => Page::new(vec!["d"], Some(1)),
            Some(_) => Page::new(vec![], None),
        })
    };
    let mut walk = paginate(None, pages);
    assert_eq!(walk.resume_cursor(), None);
    assert_eq!(walk.next().await.unwrap().unwrap(), "a");
    // Mid-page: resuming re-reads this page.
    assert_eq!(walk.resume_cursor(), None);
    assert_eq!(walk.next().await.unwrap().unwrap(), "b");
    assert_eq!(walk.resume_cursor(), Some(&1));
    let rest: Vec<_> = walk.by_ref().collect().await;
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert_eq!(rest[0].as_ref().unwrap(), &"c");
    assert_eq!(rest[1].as_ref().unwrap(), &"d");
    assert!(matches!(
        rest[2],
        Err(Error::CursorNotAdvancing { pages: 3, .. })
    ));

    // A start cursor counts as seen: a page sending it back is a repeat.
    let mut walk = paginate(Some(7u32), |_| async {
        Ok::<_, Error>(Page::new(vec![1], Some(7)))
    });
    assert_eq!(walk.next().await.unwrap().unwrap(), 1);
    assert!(walk.next().await.unwrap().is_err());
    assert!(walk.next().await.is_none());
}

/// `query_bucket_emails` pages like `list_bucket_emails`: the body's filter
/// and limit on every page, the cursor in its `continuation`.
#[tokio::test]
async fn query_bucket_emails_walks_with_its_filter_on_every_page() {
    let server = MockServer::start_async().await;
    let email = |id: &str| {
        json!({"id": id, "mailbox": "support@acme.example", "timestamp": "2026-03-04T09:15:00Z",
               "mime_content": "Subject: hi\r\n\r\nhello\r\n", "metadata": null, "attachments": [],
               "created_at": "2026-03-04T09:16:00Z", "updated_at": null})
    };
    let mut mocks = Vec::new();
    for (cursor, id, next) in [
        (Value::Null, "m1", json!("e1")),
        (json!("e1"), "m2", json!("e2")),
        (json!("e2"), "m3", Value::Null),
    ] {
        let mut page = json!({"status": "ok", "emails": [email(id)]});
        if !next.is_null() {
            page["continuation"] = next;
        }
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method("POST")
                        .path("/api/_private/buckets/acme/mail/emails/query")
                        .is_true(body_is(json!({"limit": 1, "continuation": cursor})));
                    then.status(200)
                        .header("content-type", "application/json")
                        .json_body(page);
                })
                .await,
        );
    }
    let client = token_client(&server, RetryPolicy::none());

    let builder = client
        .query_bucket_emails()
        .project("acme")
        .bucket_name("mail")
        .body_map(|b| b.limit(1));
    let emails: Vec<_> = builder.into_stream().try_collect().await.unwrap();

    let ids: Vec<_> = emails.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    for mock in mocks {
        mock.assert_async().await;
    }
}

/// A builder whose body is incomplete (`list_recent_comments` requires a
/// `filter` and a `limit`) fails its walk on the first poll, with the
/// builder's own error, and sends nothing.
#[tokio::test]
async fn an_incomplete_builder_fails_its_walk_without_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());

    let mut walk = client
        .list_recent_comments()
        .project("acme")
        .dataset_name("triage")
        .into_stream();
    let error = walk.next().await.unwrap().unwrap_err();

    assert!(
        matches!(&error, Error::InvalidRequest { message, .. } if message.contains("filter") || message.contains("limit")),
        "{error:?}"
    );
    assert!(walk.next().await.is_none());
    assert_eq!(any.calls_async().await, 0);
}

/// The builder's call options go with every page: a walk whose client does
/// not retry gets through a 503 on its second page when the builder allows
/// a second attempt.
#[tokio::test]
async fn the_builders_call_options_apply_to_every_page() {
    let server = MockServer::start_async().await;
    let first = mock_export_page(&server, Value::Null, export_page(&["a"], Some("c1"))).await;
    let flaky = server
        .mock_async(|when, then| {
            when.method("POST")
                .path(EXPORT)
                .is_true(body_is(export_filters(json!("c1"))));
            then.status(503)
                .header("content-type", "application/json")
                .json_body(json!({"status": "error", "message": "busy"}));
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let builder = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request());

    // Without options: the client's policy, one attempt, the 503 ends it.
    let error = builder
        .clone()
        .into_stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503), "{error:?}");
    assert_eq!(flaky.calls_async().await, 1);

    // With two attempts on the builder, the second page is asked twice.
    let options = cm_api::CallOptions::new().retry_policy(
        RetryPolicy::default()
            .max_attempts(2)
            .initial_backoff(std::time::Duration::from_millis(1)),
    );
    let error = builder
        .with_options(options)
        .into_stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503), "{error:?}");
    assert_eq!(error.attempts(), Some(2), "{error:?}");
    assert_eq!(flaky.calls_async().await, 3);
    assert_eq!(first.calls_async().await, 2);
    flaky.delete_async().await;
}
