//! Every example, run against the sandbox (`cm-sandbox`): the code users
//! copy is the code that is tested. Each example is included as a module
//! and its work function called with a client of a fresh sandbox that
//! checks every answer against the spec.

use std::collections::BTreeSet;

use cm_api::{Client, Endpoint, RetryPolicy, types};
use cm_sandbox::Sandbox;
use futures::TryStreamExt;
use serde_json::json;

#[allow(dead_code)]
#[path = "../examples/quickstart/job.rs"]
mod quickstart;

#[allow(dead_code)]
#[path = "../examples/bulk_upload.rs"]
mod bulk_upload;

#[allow(dead_code)]
#[path = "../examples/export_dataset.rs"]
mod export_dataset;

#[allow(dead_code)]
#[path = "../examples/consume_stream.rs"]
mod consume_stream;

#[allow(dead_code)]
#[path = "../examples/upload_and_download.rs"]
mod upload_and_download;

/// A sandbox that checks its answers against the spec, and a client of it
/// isolated from the environment.
async fn sandbox() -> (Sandbox, Client) {
    let sandbox = Sandbox::builder()
        .validate_responses(true)
        .start()
        .await
        .expect("sandbox");
    let client = Client::builder()
        .env_lookup(|_| None)
        .config_path(std::env::temp_dir().join("cm-api-examples-no-config.toml"))
        .endpoint(Endpoint::parse(sandbox.base_url()).expect("sandbox URL"))
        .token(sandbox.token())
        .retry_policy(RetryPolicy::default().max_attempts(1))
        .build()
        .expect("client");
    (sandbox, client)
}

fn assert_no_violations(sandbox: &Sandbox) {
    let violations = sandbox.schema_violations();
    assert!(
        violations.is_empty(),
        "answers violated the spec:\n{}",
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A project `acme`, a source `inbox` holding `n` quickstart comments and
/// a dataset `triage` over it; returns the source id.
async fn acme_with_comments(client: &Client, n: usize) -> String {
    client
        .create_project()
        .project("acme")
        .body_map(|b| b.project(types::ProjectNew::builder().title("ACME".to_owned())))
        .send()
        .await
        .unwrap();
    let source = client
        .create_source()
        .project("acme")
        .source_name("inbox")
        .body_map(|b| b.source(types::SourceNew::builder()))
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    let comments: Vec<types::CommentNew> = (0..n).map(quickstart::comment).collect();
    for chunk in comments.chunks(1000) {
        client
            .sync_comments()
            .project("acme")
            .source_name("inbox")
            .body_map(|b| b.comments(chunk.to_vec()))
            .send()
            .await
            .unwrap();
    }
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body_map(|b| {
            b.dataset(
                types::DatasetNew::builder()
                    .source_ids(vec![source.id.clone()])
                    .label_defs(
                        quickstart::LABELS
                            .iter()
                            .map(|name| serde_json::from_value(json!({ "name": name })).unwrap())
                            .collect::<Vec<types::LabelDefNew>>(),
                    ),
            )
        })
        .send()
        .await
        .unwrap();
    source.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_job_runs_end_to_end_and_every_comment_arrives_once() {
    let (sandbox, client) = sandbox().await;
    let job = quickstart::Job {
        project: "quickstart".to_owned(),
        create_project: true,
        source: "inbox".to_owned(),
        dataset: "triage".to_owned(),
        stream: "new-mail".to_owned(),
        comments: 1_200,
        labelled_per_topic: 3,
        progress: false,
    };

    let summary = quickstart::run(&client, &job).await.expect("the job");

    assert_eq!(summary.synced, 1_200);
    assert_eq!(summary.labelled, 12);
    assert_eq!(
        (summary.streamed, summary.streamed_distinct),
        (1_200, 1_200)
    );
    assert_eq!(
        (summary.exported, summary.exported_distinct),
        (1_200, 1_200)
    );
    // Every comment shares words with its topic's labelled comments.
    assert_eq!(summary.predicted, 1_200);
    assert_eq!(summary.predicted_topic, 1_200);
    // The stream was advanced past everything it delivered.
    let rest = client
        .get_stream_results()
        .project("quickstart")
        .dataset_name("triage")
        .stream_name("new-mail")
        .send()
        .await
        .unwrap();
    assert!(
        rest.results.is_empty(),
        "{} results left",
        rest.results.len()
    );
    assert_no_violations(&sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_upload_example_uploads_every_good_line_of_its_file() {
    let (sandbox, client) = sandbox().await;
    acme_with_comments(&client, 0).await;
    let path = std::env::temp_dir().join(format!("cm-api-example-{}.jsonl", std::process::id()));
    let mut lines: Vec<String> = (0..300)
        .map(|i| serde_json::to_string(&quickstart::comment(i)).unwrap())
        .collect();
    lines.insert(120, "{not json".to_owned());
    lines.insert(40, String::new());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let report = bulk_upload::upload(&client, "acme", "inbox", path.to_str().unwrap(), false)
        .await
        .expect("the upload");
    let _ = std::fs::remove_file(&path);

    assert!(report.is_complete());
    assert_eq!(
        (report.read, report.synced, report.counts.new),
        (300, 300, 300)
    );
    let stored: Vec<_> = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored.len(), 300);
    assert_no_violations(&sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_example_writes_each_comment_once() {
    let (sandbox, client) = sandbox().await;
    acme_with_comments(&client, 1_100).await;

    let mut out = Vec::new();
    let exported = export_dataset::export(&client, "acme", "triage", None, &mut out)
        .await
        .expect("the export");

    assert_eq!(exported.comments, 1_100);
    assert_eq!(exported.pages, 3);
    let ids: BTreeSet<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let exported: types::ExportedComment = serde_json::from_str(line).unwrap();
            exported.comment.id
        })
        .collect();
    assert_eq!(ids, (0..1_100).map(|i| format!("qs-{i:06}")).collect());
    assert_no_violations(&sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_example_handles_every_comment_and_advances_past_it() {
    let (sandbox, client) = sandbox().await;
    client
        .create_project()
        .project("acme")
        .body_map(|b| b.project(types::ProjectNew::builder()))
        .send()
        .await
        .unwrap();
    acme_source_dataset_stream(&client).await;
    let comments: Vec<types::CommentNew> = (0..100).map(quickstart::comment).collect();
    client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body_map(|b| b.comments(comments))
        .send()
        .await
        .unwrap();

    let consumer = consume_stream::consumer(client.clone(), "acme", "triage", "refunds");
    let mut handled = 0;
    loop {
        match consumer.step(consume_stream::handle).await.unwrap() {
            Some(cm_api::stream_consumer::Step::Handled {
                comments, has_more, ..
            }) => {
                handled += comments;
                if !has_more {
                    break;
                }
            }
            other => panic!("unexpected step {other:?}"),
        }
    }

    assert_eq!(handled, 100);
    let rest = client
        .get_stream_results()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .send()
        .await
        .unwrap();
    assert!(rest.results.is_empty());
    assert_no_violations(&sandbox);
}

/// `acme/inbox`, `acme/triage` over it, and its stream `refunds`.
async fn acme_source_dataset_stream(client: &Client) {
    let source = client
        .create_source()
        .project("acme")
        .source_name("inbox")
        .body_map(|b| b.source(types::SourceNew::builder()))
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body_map(|b| b.dataset(types::DatasetNew::builder().source_ids(vec![source.id])))
        .send()
        .await
        .unwrap();
    client
        .create_stream()
        .project("acme")
        .dataset_name("triage")
        .body_map(|b| b.stream(types::StreamNew::builder().name("refunds".to_owned())))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_example_downloads_exactly_the_bytes_it_uploaded() {
    let (sandbox, client) = sandbox().await;
    client
        .create_project()
        .project("acme")
        .body_map(|b| b.project(types::ProjectNew::builder()))
        .send()
        .await
        .unwrap();
    let source = client
        .create_source()
        .project("acme")
        .source_name("documents")
        .body_map(|b| b.source(types::SourceNew::builder().kind("ixp_design".to_owned())))
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    let dir = std::env::temp_dir().join(format!("cm-api-example-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("invoice.pdf");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();

    let copy = upload_and_download::run(
        &client,
        &source.id,
        file.to_str().unwrap(),
        "application/pdf",
    )
    .await
    .expect("upload and download");

    assert_eq!(std::fs::read(&copy).unwrap(), content);
    let _ = std::fs::remove_dir_all(&dir);
    assert_no_violations(&sandbox);
}
