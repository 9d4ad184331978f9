//! The sandbox driven through `cm_api::Client`, as a user's code drives the
//! service: every test asserts the state that results, not just a status.

use cm_api::Client;
use cm_api::types;
mod common;

use cm_sandbox::Sandbox;
use common::{api_error, checked, client, client_with, comment, project_and_source, typed};
use serde_json::json;

async fn sync(client: &Client, comments: Vec<types::CommentNew>) -> types::SyncCommentsResponse {
    client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body(types::SyncCommentsRequest { comments })
        .send()
        .await
        .expect("sync_comments")
        .into_inner()
}

#[tokio::test]
async fn a_synced_comment_reads_back_equal_and_syncs_report_real_counts() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    let sent = vec![
        comment("c1", "2026-03-01T10:00:00Z", "Where is my refund?"),
        comment("c2", "2026-03-01T11:00:00Z", "Thanks!"),
    ];

    let first = sync(&client, sent.clone()).await;
    assert_eq!((first.new, first.updated, first.unchanged), (2, 0, 0));

    let got = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c1")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment;
    let want = &sent[0];
    assert_eq!(got.id, want.id);
    assert_eq!(got.uid, format!("{source_id}.c1"));
    assert_eq!(got.source_id.as_deref(), Some(source_id.as_str()));
    assert_eq!(got.timestamp, want.timestamp);
    assert_eq!(got.thread_id, want.thread_id);
    assert_eq!(
        serde_json::to_value(&got.messages).unwrap(),
        serde_json::to_value(&want.messages).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&got.user_properties).unwrap(),
        serde_json::to_value(&want.user_properties).unwrap()
    );

    let again = sync(&client, sent.clone()).await;
    assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 2));

    // One comment with a new property, one with new text.
    let mut changed = sent.clone();
    changed[0] = typed(json!({
        "id": "c1", "timestamp": "2026-03-01T10:00:00Z", "thread_id": "thread-c1",
        "user_properties": {"string:Country": "DE", "number:Amount": 12.5},
        "messages": serde_json::to_value(&sent[0].messages).unwrap(),
    }));
    changed[1] = comment("c2", "2026-03-01T11:00:00Z", "Thanks a lot!");
    let third = sync(&client, changed).await;
    assert_eq!(
        (
            third.new,
            third.updated,
            third.updated_properties_only,
            third.updated_text_changed,
            third.unchanged
        ),
        (0, 2, 1, 1, 0)
    );
    let c2 = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c2")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment;
    assert_eq!(c2.messages[0].body.text, "Thanks a lot!");
}

#[tokio::test]
async fn sources_update_and_delete_and_duplicates_are_409() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;

    let again = client
        .create_source()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::CreateSourceRequest>(json!({"source": {}})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(again).0, 409);

    let updated = client
        .update_source()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::UpdateSourceRequest>(
            json!({"source": {"title": "Main inbox"}}),
        ))
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    assert_eq!(updated.title, "Main inbox");
    let read = client
        .get_source_by_id()
        .source_id(source_id.as_str())
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    assert_eq!(
        (read.title.as_str(), read.name.as_str()),
        ("Main inbox", "inbox")
    );

    client
        .delete_source_by_id()
        .source_id(source_id.as_str())
        .send()
        .await
        .unwrap();
    let gone = client
        .get_source()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);
    let listed = client
        .list_project_sources()
        .project("acme")
        .send()
        .await
        .unwrap()
        .into_inner()
        .sources;
    assert!(listed.is_empty(), "{listed:?}");
    // The name is free again.
    client
        .create_source()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::CreateSourceRequest>(json!({"source": {}})))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn source_comments_list_in_timestamp_order_in_pages_and_deletes_take_effect() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    // Uploaded in reverse time order: the listing sorts by timestamp.
    let comments: Vec<types::CommentNew> = (0..250)
        .rev()
        .map(|i| {
            comment(
                &format!("c{i:03}"),
                &format!("2026-03-01T{:02}:{:02}:00Z", i / 60, i % 60),
                "hello",
            )
        })
        .collect();
    sync(&client, comments).await;

    let list = |after: Option<String>| {
        let client = &client;
        async move {
            let mut call = client
                .list_source_comments()
                .project("acme")
                .source_name("inbox")
                .limit(100);
            if let Some(after) = after {
                call = call.after(after);
            }
            call.send().await.unwrap().into_inner()
        }
    };
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut after = None;
    loop {
        let page = list(after).await;
        pages += 1;
        ids.extend(page.comments.into_iter().map(|c| c.id));
        match page.continuation {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let want: Vec<String> = (0..250).map(|i| format!("c{i:03}")).collect();
    assert_eq!(ids, want);
    assert_eq!(pages, 3);

    let window = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(
            "2026-03-01T01:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        )
        .to_timestamp(
            "2026-03-01T01:05:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = window.comments.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c060", "c061", "c062", "c063", "c064"]);

    client
        .delete_comments()
        .project("acme")
        .source_name("inbox")
        .id(vec!["c000".to_owned(), "c001".to_owned()])
        .send()
        .await
        .unwrap();
    let gone = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c001")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);
    let first = list(None).await;
    assert_eq!(first.comments[0].id, "c002");
}

#[tokio::test]
async fn datasets_keep_their_label_definitions_as_given() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    let created = client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(json!({"dataset": {
            "title": "Triage",
            "source_ids": [source_id],
            "label_defs": [
                {"name": "Refund", "instructions": "Asks for money back", "external_id": "R-1"},
                {"name": "Refund > Late", "trainable": true},
            ],
        }})))
        .send()
        .await
        .unwrap()
        .into_inner()
        .dataset;
    let read = client
        .get_dataset()
        .project("acme")
        .dataset_name("triage")
        .send()
        .await
        .unwrap()
        .into_inner()
        .dataset;
    assert_eq!(read.id, created.id);
    assert_eq!(read.source_ids, vec![source_id]);
    let names: Vec<&str> = read.label_defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["Refund", "Refund > Late"]);
    assert_eq!(read.label_defs[0].instructions, "Asks for money back");
    assert_eq!(read.label_defs[0].external_id.as_deref(), Some("R-1"));
    assert!(read.label_defs[1].trainable);
    assert_eq!(read.label_groups[0].name, "default");
    assert_eq!(read.label_groups[0].label_defs.len(), 2);

    let listed = client
        .list_project_datasets()
        .project("acme")
        .send()
        .await
        .unwrap()
        .into_inner()
        .datasets;
    assert_eq!(listed.len(), 1);
    let again = client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(json!({"dataset": {}})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(again).0, 409);
}

async fn stream_setup(client: &Client) {
    let source_id = project_and_source(client).await;
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(
            json!({"dataset": {"source_ids": [source_id]}}),
        ))
        .send()
        .await
        .unwrap();
    client
        .create_stream()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateStreamRequest>(
            json!({"stream": {"name": "refunds"}}),
        ))
        .send()
        .await
        .unwrap();
}

async fn results(client: &Client, max: i64) -> types::StreamResultsResponse {
    client
        .get_stream_results()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .max_results(max)
        .send()
        .await
        .unwrap()
        .into_inner()
}

async fn advance(client: &Client, sequence_id: &str) {
    client
        .advance_stream()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .body(types::AdvanceStreamRequest {
            sequence_id: sequence_id.to_owned(),
        })
        .send()
        .await
        .unwrap();
}

fn ids(batch: &types::StreamResultsResponse) -> Vec<&str> {
    batch
        .results
        .iter()
        .map(|r| r.comment.id.as_str())
        .collect()
}

#[tokio::test]
async fn a_stream_batch_not_advanced_is_delivered_again_and_an_advanced_one_is_not() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    stream_setup(&client).await;
    // Two uploads: one sync's comments share its upload time.
    let batch = |range: std::ops::RangeInclusive<i32>| -> Vec<types::CommentNew> {
        range
            .map(|i| comment(&format!("c{i}"), "2026-03-01T10:00:00Z", "refund please"))
            .collect()
    };
    sync(&client, batch(1..=3)).await;
    sync(&client, batch(4..=5)).await;

    let first = results(&client, 3).await;
    assert_eq!(ids(&first), ["c1", "c2", "c3"]);
    assert!(first.more_results);
    // Not advanced: the same batch again.
    let again = results(&client, 3).await;
    assert_eq!(ids(&again), ["c1", "c2", "c3"]);

    advance(&client, &first.continuation).await;
    let second = results(&client, 3).await;
    assert_eq!(ids(&second), ["c4", "c5"]);
    assert!(!second.more_results);
    advance(&client, &second.continuation).await;
    assert!(results(&client, 3).await.results.is_empty());

    // An updated comment is delivered again.
    sync(
        &client,
        vec![comment("c2", "2026-03-01T10:00:00Z", "refund, now")],
    )
    .await;
    let updated = results(&client, 3).await;
    assert_eq!(ids(&updated), ["c2"]);

    // Reset to the upload time of c4 and c5: they and the later c2 again.
    let c4 = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c4")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment;
    client
        .reset_stream()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .body(types::ResetStreamRequest {
            to_comment_created_at: c4.created_at.unwrap(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&results(&client, 10).await), ["c4", "c5", "c2"]);
}

#[tokio::test]
async fn a_new_stream_starts_after_the_comments_already_uploaded() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    sync(
        &client,
        vec![comment("old", "2026-03-01T10:00:00Z", "before")],
    )
    .await;
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(
            json!({"dataset": {"source_ids": [source_id]}}),
        ))
        .send()
        .await
        .unwrap();
    client
        .create_stream()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateStreamRequest>(
            json!({"stream": {"name": "refunds"}}),
        ))
        .send()
        .await
        .unwrap();
    sync(
        &client,
        vec![comment("new", "2026-03-01T10:00:00Z", "after")],
    )
    .await;
    assert_eq!(ids(&results(&client, 10).await), ["new"]);
}

#[tokio::test]
async fn a_token_without_the_permission_gets_403_and_no_change() {
    let sandbox = checked().await;
    project_and_source(&client(&sandbox)).await;
    let reader = client_with(&sandbox, &sandbox.mint_token(["sources-read"]));

    let source = reader
        .get_source()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    assert_eq!(source.name, "inbox");

    let denied = reader
        .create_source()
        .project("acme")
        .source_name("other")
        .body(typed::<types::CreateSourceRequest>(json!({"source": {}})))
        .send()
        .await
        .unwrap_err();
    let (status, message) = api_error(denied);
    assert_eq!(status, 403);
    assert!(message.contains("sources-admin"), "{message}");
    let sources = reader
        .list_project_sources()
        .project("acme")
        .send()
        .await
        .unwrap()
        .into_inner()
        .sources;
    assert_eq!(sources.len(), 1);
}

#[tokio::test]
async fn an_operation_the_sandbox_does_not_implement_answers_501_naming_it() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let error = client
        .get_model_validation_details()
        .project("acme")
        .dataset_name("triage")
        .model_version("latest")
        .send()
        .await
        .unwrap_err();
    let (status, message) = api_error(error);
    assert_eq!(status, 501);
    assert!(
        message.contains("`get_model_validation_details`"),
        "{message}"
    );
    assert!(!Sandbox::implemented_operations().contains(&"get_model_validation_details"));
}

#[tokio::test]
async fn bulk_sync_of_thousands_of_comments_reads_back_the_exact_count() {
    use futures::stream;

    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let n = 3_000;
    let comments = (0..n).map(|i| {
        comment(
            &format!("bulk-{i:05}"),
            &format!("2026-03-01T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
            "bulk",
        )
    });
    let report = cm_api::bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter(comments),
        cm_api::bulk::SyncOptions::default().batch_size(256),
    )
    .await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.counts.new, n);

    let mut count = 0;
    let mut after: Option<String> = None;
    loop {
        let mut call = client
            .list_source_comments()
            .project("acme")
            .source_name("inbox")
            .limit(1024);
        if let Some(a) = after.take() {
            call = call.after(a);
        }
        let page = call.send().await.unwrap().into_inner();
        count += page.comments.len() as u64;
        match page.continuation {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(count, n);
}

/// The names under `key` (`projects`, `sources`, ...) of a listing.
fn names<T: serde::Serialize>(listing: T, key: &str) -> Vec<String> {
    let value = serde_json::to_value(listing).unwrap();
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {value}"))
        .iter()
        .map(|item| item["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test]
async fn listings_and_fetch_read_back_what_was_created() {
    // Every implemented operation answers here or above, each answer checked
    // against the spec's success schema by `checked`.
    let sandbox = checked().await;
    let client = client(&sandbox);
    stream_setup(&client).await;
    sync(
        &client,
        vec![
            comment("c1", "2026-03-01T10:00:00Z", "refund please"),
            comment("c2", "2026-03-01T11:00:00Z", "where is my order"),
        ],
    )
    .await;

    let got = client.get_project().project("acme").send().await.unwrap();
    let got = serde_json::to_value(got.into_inner()).unwrap();
    assert_eq!(got["project"]["name"], "acme");
    let listed = client.list_projects().send().await.unwrap().into_inner();
    assert_eq!(names(listed, "projects"), ["acme"]);
    let listed = client
        .list_all_projects()
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(listed, "projects"), ["acme"]);
    let listed = client.list_sources().send().await.unwrap().into_inner();
    assert_eq!(names(listed, "sources"), ["inbox"]);
    let listed = client.list_datasets().send().await.unwrap().into_inner();
    assert_eq!(names(listed, "datasets"), ["triage"]);
    let listed = client
        .list_project_datasets()
        .project("acme")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(listed, "datasets"), ["triage"]);
    let listed = client
        .list_streams()
        .project("acme")
        .dataset_name("triage")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(listed, "streams"), ["refunds"]);

    let fetched = client
        .fetch_stream()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .body(typed::<types::FetchStreamRequest>(json!({"size": 10})))
        .send()
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = fetched
        .results
        .iter()
        .map(|r| r.comment.id.as_str())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(sandbox.schema_violations(), vec![]);
}
