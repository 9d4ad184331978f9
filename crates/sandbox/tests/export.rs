//! Reading a dataset's comments: `export_dataset` and the dataset query
//! (`query_comments`, `list_recent_comments`), driven through
//! `cm_api::Client`; every answer is checked against the spec.

use std::collections::{BTreeMap, BTreeSet};

use cm_api::Client;
use cm_api::types;
mod common;

use common::{api_error, checked, client, client_with, project_and_source, typed};
use futures::TryStreamExt;
use serde_json::{Value, json};

/// A comment with a country and an amount.
fn comment(id: &str, timestamp: &str, country: &str, amount: f64) -> types::CommentNew {
    typed(json!({
        "id": id,
        "timestamp": timestamp,
        "thread_id": format!("thread-{id}"),
        "user_properties": {"string:Country": country, "number:Amount": amount},
        "messages": [{
            "from": "alice@example.com",
            "to": ["support@example.com"],
            "subject": {"text": format!("About {id}")},
            "body": {"text": format!("Message {id} from {country}")},
        }],
    }))
}

/// `2026-03-01T00:00:00Z` plus `minutes`.
fn at(minutes: u32) -> String {
    format!(
        "2026-03-{:02}T{:02}:{:02}:00Z",
        1 + minutes / 1440,
        minutes / 60 % 24,
        minutes % 60
    )
}

async fn sync(client: &Client, source: &str, comments: Vec<types::CommentNew>) {
    client
        .sync_comments()
        .project("acme")
        .source_name(source)
        .body(types::SyncCommentsRequest { comments })
        .send()
        .await
        .expect("sync_comments");
}

async fn create_source(client: &Client, name: &str) -> String {
    client
        .create_source()
        .project("acme")
        .source_name(name)
        .body(typed::<types::CreateSourceRequest>(json!({"source": {}})))
        .send()
        .await
        .expect("create_source")
        .into_inner()
        .source
        .id
}

/// Project `acme` with sources `inbox` and `chat` in dataset `triage`
/// (labels `Refund` and `Billing`) and a source `other` outside it.
/// Returns the ids of `inbox`, `chat`, `other`.
async fn setup(client: &Client) -> (String, String, String) {
    let inbox = project_and_source(client).await;
    let chat = create_source(client, "chat").await;
    let other = create_source(client, "other").await;
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(json!({"dataset": {
            "source_ids": [inbox, chat],
            "label_defs": [{"name": "Refund"}, {"name": "Billing"}],
        }})))
        .send()
        .await
        .expect("create_dataset");
    (inbox, chat, other)
}

/// Every page of an export, as sent back by the sandbox.
async fn export_pages(
    client: &Client,
    request: types::ExportDatasetRequest,
) -> Vec<types::ExportDatasetResponse> {
    let mut pages = Vec::new();
    let mut continuation = None;
    loop {
        let page = client
            .export_dataset()
            .project("acme")
            .dataset_name("triage")
            .body(types::ExportDatasetRequest {
                continuation: continuation.take(),
                ..request.clone()
            })
            .send()
            .await
            .expect("export_dataset")
            .into_inner();
        continuation = page.continuation.clone();
        pages.push(page);
        if continuation.is_none() {
            return pages;
        }
        assert!(pages.len() < 1_000, "the export does not end");
    }
}

fn uids(comments: &[types::ExportedComment]) -> Vec<String> {
    comments.iter().map(|c| c.comment.uid.clone()).collect()
}

fn result_uids(results: &[types::AnnotatedComment]) -> Vec<String> {
    results.iter().map(|c| c.comment.uid.clone()).collect()
}

fn export_request(value: Value) -> types::ExportDatasetRequest {
    typed(value)
}

#[tokio::test]
async fn an_export_over_several_pages_returns_each_comment_once_as_synced() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let (inbox, chat, other) = setup(&client).await;
    // 130 + 70 comments; chat's share timestamps with inbox's, so the
    // order has ties across sources.
    let inbox_comments: Vec<_> = (0..130)
        .rev()
        .map(|i| comment(&format!("i{i:03}"), &at(i), "FR", f64::from(i)))
        .collect();
    let chat_comments: Vec<_> = (0..70)
        .map(|i| comment(&format!("c{i:03}"), &at(2 * i), "UK", 1.5))
        .collect();
    sync(&client, "inbox", inbox_comments.clone()).await;
    sync(&client, "chat", chat_comments.clone()).await;
    sync(&client, "other", vec![comment("o1", &at(5), "DE", 1.0)]).await;

    let pages = export_pages(&client, export_request(json!({"limit": 32}))).await;
    assert_eq!(pages.len(), 7, "200 comments in pages of 32");
    for (n, page) in pages.iter().enumerate() {
        let last = n == pages.len() - 1;
        assert_eq!(page.comments.len(), if last { 200 - 6 * 32 } else { 32 });
        assert_eq!(page.continuation.is_some(), !last);
    }
    let exported: Vec<types::ExportedComment> =
        pages.into_iter().flat_map(|p| p.comments).collect();
    let unique: BTreeSet<String> = uids(&exported).into_iter().collect();
    assert_eq!(unique.len(), 200, "each comment exactly once");

    // In (timestamp, source, id) order.
    let keys: Vec<_> = exported
        .iter()
        .map(|c| {
            (
                c.comment.timestamp,
                c.comment.source_id.clone(),
                c.comment.id.clone(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // Equal to what was synced; nothing of `other`.
    let sent: BTreeMap<String, &types::CommentNew> = inbox_comments
        .iter()
        .map(|c| (format!("{inbox}.{}", c.id), c))
        .chain(
            chat_comments
                .iter()
                .map(|c| (format!("{chat}.{}", c.id), c)),
        )
        .collect();
    assert_eq!(unique, sent.keys().cloned().collect());
    assert!(!unique.iter().any(|uid| uid.starts_with(&other)));
    for got in &exported {
        let want = sent[&got.comment.uid];
        assert_eq!(got.comment.id, want.id);
        assert_eq!(got.comment.timestamp, want.timestamp);
        assert_eq!(got.comment.thread_id, want.thread_id);
        assert_eq!(
            serde_json::to_value(&got.comment.messages).unwrap(),
            serde_json::to_value(&want.messages).unwrap()
        );
        assert_eq!(
            serde_json::to_value(got.comment.user_properties.clone().unwrap_or_default()).unwrap(),
            serde_json::to_value(&want.user_properties).unwrap()
        );
        // No labelling yet.
        assert!(got.annotations.is_none());
    }

    // The client's paginator walks the same pages.
    let walked: Vec<types::ExportedComment> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(json!({"limit": 50})))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(uids(&walked), uids(&exported));
}

#[tokio::test]
async fn an_export_honours_from_to_source_ids_comment_uids_and_order_by() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let (inbox, chat, _) = setup(&client).await;
    // Synced in three requests, newest timestamps first: created_at order
    // is the reverse of timestamp order.
    for batch in [[50, 40, 30], [20, 10, 0]] {
        sync(
            &client,
            "inbox",
            batch
                .iter()
                .map(|&m| comment(&format!("i{m:02}"), &at(m), "FR", 1.0))
                .collect(),
        )
        .await;
    }
    sync(&client, "chat", vec![comment("c10", &at(10), "UK", 1.0)]).await;

    let all = |request: Value| {
        let client = &client;
        async move {
            export_pages(client, export_request(request))
                .await
                .into_iter()
                .flat_map(|p| p.comments)
                .map(|c| c.comment.uid)
                .collect::<Vec<_>>()
        }
    };
    let i = |m: u32| format!("{inbox}.i{m:02}");
    let c10 = format!("{chat}.c10");

    // `[from, to)`: a comment at `from` is in, one at `to` is out; the
    // two at minute 10 in (source id, comment id) order, as their uids.
    let mut at_10 = vec![i(10), c10.clone()];
    at_10.sort();
    assert_eq!(
        all(json!({"from": at(10), "to": at(40), "limit": 1})).await,
        [at_10, vec![i(20), i(30)]].concat()
    );
    assert_eq!(all(json!({"source_ids": [chat]})).await, vec![c10.clone()]);
    assert_eq!(
        all(json!({"source_ids": [inbox], "to": at(20)})).await,
        vec![i(0), i(10)]
    );
    assert_eq!(
        all(json!({"comment_uids": [i(50), c10.clone(), format!("{inbox}.missing")]})).await,
        vec![c10.clone(), i(50)]
    );
    // created_at: upload order (ties within one request by source and id).
    assert_eq!(
        all(json!({"order_by": "created_at", "source_ids": [inbox], "limit": 2})).await,
        vec![i(30), i(40), i(50), i(0), i(10), i(20)]
    );
    // `from` / `to` bound the ordering's own time.
    let chat_created = client
        .get_comment()
        .project("acme")
        .source_name("chat")
        .comment_id("c10")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment
        .created_at
        .unwrap();
    assert_eq!(
        all(json!({"order_by": "created_at", "from": chat_created.to_rfc3339()})).await,
        vec![c10.clone()]
    );
}

#[tokio::test]
async fn an_export_walk_is_stable_while_comments_are_uploaded() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    setup(&client).await;
    sync(
        &client,
        "inbox",
        (0..10)
            .map(|m| comment(&format!("i{m:02}"), &at(10 * m), "FR", 1.0))
            .collect(),
    )
    .await;

    // Timestamp order: after a first page of 4 (i00..i03), a comment
    // uploaded before the cursor is not returned, one after it is, and an
    // updated comment ahead of the cursor is returned once, as updated.
    let first = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(json!({"limit": 4})))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.comments.len(), 4);
    sync(
        &client,
        "inbox",
        vec![
            comment("early", &at(5), "FR", 1.0),
            comment("late", &at(55), "FR", 1.0),
            comment("i07", &at(70), "DE", 1.0),
        ],
    )
    .await;
    let rest: Vec<types::ExportedComment> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(
            json!({"limit": 4, "continuation": first.continuation}),
        ))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<&str> = first
        .comments
        .iter()
        .chain(&rest)
        .map(|c| c.comment.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "i00", "i01", "i02", "i03", "i04", "i05", "late", "i06", "i07", "i08", "i09"
        ]
    );
    let i07 = rest.iter().find(|c| c.comment.id == "i07").unwrap();
    assert_eq!(
        serde_json::to_value(&i07.comment.user_properties).unwrap()["string:Country"],
        "DE"
    );

    // created_at order: every comment present at the start exactly once,
    // and the ones uploaded during the walk after them, updates included
    // in place (an update keeps its created_at).
    let first = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(
            json!({"limit": 5, "order_by": "created_at"}),
        ))
        .send()
        .await
        .unwrap()
        .into_inner();
    sync(
        &client,
        "inbox",
        vec![
            comment("newest", &at(0), "FR", 1.0),
            comment("i00", &at(0), "UK", 1.0),
        ],
    )
    .await;
    let rest: Vec<types::ExportedComment> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(
            json!({"limit": 5, "order_by": "created_at", "continuation": first.continuation}),
        ))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let all: Vec<&str> = first
        .comments
        .iter()
        .chain(&rest)
        .map(|c| c.comment.id.as_str())
        .collect();
    let unique: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(all.len(), 13, "{all:?}");
    assert_eq!(unique.len(), 13, "{all:?}");
    assert_eq!(all.last(), Some(&"newest"));
}

#[tokio::test]
async fn an_export_refuses_bad_continuations_limits_sources_and_missing_permissions() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let (_, _, other) = setup(&client).await;
    sync(
        &client,
        "inbox",
        (0..3)
            .map(|m| comment(&format!("i{m}"), &at(m), "FR", 1.0))
            .collect(),
    )
    .await;
    let export = |request: Value| {
        let client = &client;
        async move {
            client
                .export_dataset()
                .project("acme")
                .dataset_name("triage")
                .body(export_request(request))
                .send()
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = export(json!({"limit": 1})).await.unwrap();
    let continuation = first.continuation.clone().unwrap();

    let (status, message) = api_error(
        export(json!({"continuation": "not-a-cursor"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400, "{message}");
    let (status, message) = api_error(
        export(json!({"continuation": continuation, "order_by": "created_at"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("`timestamp` order"), "{message}");
    for limit in [0, 1025] {
        let (status, message) = api_error(export(json!({"limit": limit})).await.unwrap_err());
        assert_eq!(status, 422, "{message}");
        assert!(message.contains("`limit`"), "{message}");
    }
    let (status, message) = api_error(export(json!({"source_ids": [other]})).await.unwrap_err());
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("`source_ids[0]`"), "{message}");

    let missing = client
        .export_dataset()
        .project("acme")
        .dataset_name("nope")
        .body(export_request(json!({})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(missing).0, 404);

    let reader = client_with(
        &sandbox,
        &sandbox.mint_token(["voc-readonly", "sources-read"]),
    );
    let denied = reader
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(json!({})))
        .send()
        .await
        .unwrap_err();
    let (status, message) = api_error(denied);
    assert_eq!(status, 403);
    assert!(message.contains("datasets-export"), "{message}");

    // The good continuation still works after the failures.
    let second = export(json!({"limit": 1, "continuation": first.continuation}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(second.comments[0].comment.id, "i1");
}

fn query_request(value: Value) -> types::QueryCommentsRequest {
    typed(value)
}

/// Every result of a query, paging with `limit`; the pages' sizes too.
async fn query_all(
    client: &Client,
    mut request: Value,
    limit: i64,
) -> (Vec<String>, Vec<usize>, i64) {
    let mut uids = Vec::new();
    let mut sizes = Vec::new();
    let mut filtered = None;
    request["limit"] = limit.into();
    loop {
        let page = client
            .query_comments()
            .project("acme")
            .dataset_name("triage")
            .body(query_request(request.clone()))
            .send()
            .await
            .expect("query_comments")
            .into_inner();
        let counts = page.num_results.expect("num_results");
        assert!(
            filtered.is_none_or(|f| f == counts.filtered),
            "the count is the query's, not the page's"
        );
        filtered = Some(counts.filtered);
        sizes.push(page.results.len());
        uids.extend(result_uids(&page.results));
        match page.continuation {
            Some(next) => request["continuation"] = next.into(),
            None => return (uids, sizes, filtered.unwrap_or_default()),
        }
    }
}

/// Project `acme`, dataset `triage`: inbox comments at minutes 0..12,
/// countries cycling FR, DE, UK, amount = minute; chat comments at minutes
/// 0 and 6, UK.
async fn query_setup(client: &Client) -> (String, String) {
    let (inbox, chat, _) = setup(client).await;
    let countries = ["FR", "DE", "UK"];
    sync(
        client,
        "inbox",
        (0..12)
            .map(|m| {
                comment(
                    &format!("i{m:02}"),
                    &at(m),
                    countries[m as usize % 3],
                    f64::from(m),
                )
            })
            .collect(),
    )
    .await;
    sync(
        client,
        "chat",
        vec![
            comment("c00", &at(0), "UK", 100.0),
            comment("c06", &at(6), "UK", 100.0),
        ],
    )
    .await;
    (inbox, chat)
}

#[tokio::test]
async fn a_query_filters_by_timestamp_range_user_properties_and_sources_in_pages() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let (inbox, chat) = query_setup(&client).await;
    let i = |m: u32| format!("{inbox}.i{m:02}");
    let c = |m: u32| format!("{chat}.c{m:02}");

    // Everything, newest first, ties by source then id, descending.
    let (all, sizes, filtered) = query_all(&client, json!({"order": {"kind": "recent"}}), 5).await;
    let mut want: Vec<String> = (0..12).map(i).chain([c(0), c(6)]).collect();
    want.sort_by_key(|uid| {
        let minute: u32 = uid[uid.len() - 2..].parse().unwrap();
        std::cmp::Reverse((minute, uid.clone()))
    });
    assert_eq!(all, want);
    assert_eq!(sizes, vec![5, 5, 4]);
    assert_eq!(filtered, 14);

    // `[minimum, maximum)` on the timestamp.
    let (got, _, filtered) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {"timestamp": {"minimum": at(3), "maximum": at(6)}}}),
        2,
    )
    .await;
    assert_eq!(got, vec![i(5), i(4), i(3)]);
    assert_eq!(filtered, 3);

    // A string property, with the time range and a source.
    let (got, sizes, _) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {
            "user_properties": {"string:Country": {"one_of": ["UK"]}},
            "timestamp": {"minimum": at(1)},
        }}),
        2,
    )
    .await;
    assert_eq!(got, vec![i(11), i(8), c(6), i(5), i(2)]);
    assert_eq!(sizes, vec![2, 2, 1]);
    let (got, _, _) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {
            "user_properties": {"string:Country": {"one_of": ["UK"]}},
            "sources": [chat],
        }}),
        10,
    )
    .await;
    assert_eq!(got, vec![c(6), c(0)]);
    let (got, _, _) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {
            "user_properties": {"string:Country": {"not_one_of": ["UK", "FR"]}},
        }}),
        10,
    )
    .await;
    assert_eq!(got, vec![i(10), i(7), i(4), i(1)]);
    // A number property's range, both ends inclusive, with a value list.
    let (got, _, _) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {
            "user_properties": {
                "number:Amount": {"minimum": 3, "maximum": 9},
                "string:Country": {"one_of": ["FR", "DE"]},
            },
        }}),
        10,
    )
    .await;
    assert_eq!(got, vec![i(9), i(7), i(6), i(4), i(3)]);
    // The same query through the client's paginator, with the query
    // string's `limit`.
    let walked: Vec<types::AnnotatedComment> = client
        .query_comments()
        .project("acme")
        .dataset_name("triage")
        .body(query_request(
            json!({"order": {"kind": "recent"}, "limit": 3}),
        ))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(result_uids(&walked), want);
    let page = client
        .query_comments()
        .project("acme")
        .dataset_name("triage")
        .limit(4)
        .body(query_request(json!({"order": {"kind": "recent"}})))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result_uids(&page.results), want[..4]);

    // The recent listing shares the filter.
    let recent = client
        .list_recent_comments()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::RecentCommentsRequest>(json!({
            "limit": 3,
            "filter": {"user_properties": {"string:Country": {"one_of": ["DE"]}}},
        })))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result_uids(&recent.results), vec![i(10), i(7), i(4)]);
    let rest = client
        .list_recent_comments()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::RecentCommentsRequest>(json!({
            "limit": 3,
            "filter": {"user_properties": {"string:Country": {"one_of": ["DE"]}}},
            "continuation": recent.continuation.expect("a second page"),
        })))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result_uids(&rest.results), vec![i(1)]);
    assert_eq!(rest.continuation, None);
}

#[tokio::test]
async fn a_query_answers_501_for_what_the_sandbox_does_not_apply() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    query_setup(&client).await;
    let query = |request: Value| {
        let client = &client;
        async move {
            client
                .query_comments()
                .project("acme")
                .dataset_name("triage")
                .body(query_request(request))
                .send()
                .await
                .map(|r| r.into_inner())
        }
    };
    for (request, named) in [
        (
            json!({"order": {"kind": "recent"}, "filter": {"messages": {"from": {"one_of": ["a@b.c"]}}}}),
            "`filter.messages`",
        ),
        (
            json!({"order": {"kind": "recent"}, "filter": {"annotations": {"labels": {"one_of": ["Refund"]}}}}),
            "`filter.annotations`",
        ),
        (json!({"order": {"kind": "sample", "seed": 7}}), "`sample`"),
        (
            json!({"order": {"kind": "text_search", "query": "refund"}}),
            "`text_search`",
        ),
        (
            json!({"order": {"kind": "recent"}, "collapse_mode": "thread_id"}),
            "`collapse_mode`",
        ),
        (
            json!({"order": {"kind": "recent"}, "attribute_filters": [
                {"attribute": "labels", "filter": {"kind": "string_search", "query": "refund"}},
            ]}),
            "`attribute_filters`",
        ),
    ] {
        let error = query(request.clone()).await.unwrap_err();
        let (status, message) = api_error(error);
        assert_eq!(status, 501, "{request}: {message}");
        assert!(message.contains(named), "{request}: {message}");
    }
    // Malformed, rather than unsupported: 422.
    for request in [
        json!({"order": {"kind": "recent"}, "filter": {"reviewed": "sometimes"}}),
        json!({"order": {"kind": "recent", "seed": 3}}),
        json!({"order": {"kind": "recent"}, "limit": 0}),
    ] {
        let (status, message) = api_error(query(request.clone()).await.unwrap_err());
        assert_eq!(status, 422, "{request}: {message}");
    }
    // A query `limit` that differs from the body's.
    let (status, message) = api_error(
        client
            .query_comments()
            .project("acme")
            .dataset_name("triage")
            .limit(2)
            .body(query_request(
                json!({"order": {"kind": "recent"}, "limit": 3}),
            ))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400, "{message}");
    // An empty condition is no condition.
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/api/_private/datasets/acme/triage/query",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .json(&json!({"order": {"kind": "recent"}, "filter": {"trigger_exceptions": {}, "messages": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["results"].as_array().map(Vec::len), Some(14));
    // The route's CSV form is refused, not answered as JSON.
    let csv = reqwest::Client::new()
        .post(format!(
            "{}/api/_private/datasets/acme/triage/query",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .header("accept", "text/csv")
        .json(&json!({"order": {"kind": "recent"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 501);
    let body: Value = csv.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("text/csv")),
        "{body}"
    );
}

async fn label(client: &Client, uid: &str, labels: &[&str]) {
    let assigned: Vec<Value> = labels.iter().map(|name| json!({"name": name})).collect();
    client
        .update_labelling()
        .project("acme")
        .dataset_name("triage")
        .comment_uid(uid)
        .body(typed::<types::UpdateLabellingRequest>(json!({
            "labelling": [{"group": "default", "assigned": assigned}],
        })))
        .send()
        .await
        .expect("update_labelling");
}

#[tokio::test]
async fn the_reviewed_filter_follows_update_labelling() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let (inbox, chat) = query_setup(&client).await;
    let i = |m: u32| format!("{inbox}.i{m:02}");
    label(&client, &i(3), &["Refund"]).await;
    label(&client, &format!("{chat}.c06"), &["Billing"]).await;

    let (reviewed, _, filtered) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {"reviewed": "only_reviewed"}}),
        1,
    )
    .await;
    assert_eq!(reviewed, vec![format!("{chat}.c06"), i(3)]);
    assert_eq!(filtered, 2);
    let (unreviewed, _, filtered) = query_all(
        &client,
        json!({"order": {"kind": "recent"}, "filter": {"reviewed": "only_unreviewed"}}),
        5,
    )
    .await;
    assert_eq!(filtered, 12);
    assert!(!unreviewed.contains(&i(3)));
    assert_eq!(unreviewed.len(), 12);

    // The results carry the labelling.
    let page = client
        .query_comments()
        .project("acme")
        .dataset_name("triage")
        .body(query_request(json!({
            "order": {"kind": "recent"},
            "filter": {"reviewed": "only_reviewed", "sources": [inbox]},
        })))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result_uids(&page.results), vec![i(3)]);
    let group = page.results[0]
        .labelling
        .iter()
        .find(|g| g.group == "default")
        .expect("the default group");
    let names: Vec<&str> = group.assigned.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["Refund"]);
}

#[tokio::test]
async fn an_export_carries_the_annotations_set_by_update_labelling() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let (inbox, _, _) = setup(&client).await;
    sync(
        &client,
        "inbox",
        (0..5)
            .map(|m| comment(&format!("i{m}"), &at(m), "FR", 1.0))
            .collect(),
    )
    .await;
    label(&client, &format!("{inbox}.i1"), &["Refund", "Billing"]).await;
    label(&client, &format!("{inbox}.i4"), &["Billing"]).await;

    let exported: Vec<types::ExportedComment> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(json!({"limit": 2})))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(exported.len(), 5);
    for c in &exported {
        let names: BTreeSet<&str> = c
            .annotations
            .iter()
            .flat_map(|a| a.labels.iter())
            .flat_map(|l| l.assigned.iter())
            .map(|l| l.name.as_str())
            .collect();
        let want: BTreeSet<&str> = match c.comment.id.as_str() {
            "i1" => ["Refund", "Billing"].into(),
            "i4" => ["Billing"].into(),
            _ => BTreeSet::new(),
        };
        assert_eq!(names, want, "{}", c.comment.id);
        if want.is_empty() {
            assert!(
                c.annotations.is_none(),
                "{}: {:?}",
                c.comment.id,
                c.annotations
            );
        }
    }
}
