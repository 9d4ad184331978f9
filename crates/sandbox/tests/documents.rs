//! IXP documents through cm-api's hand-written multipart upload
//! (`upload_document`) and streamed download (`get_document`), and
//! stream exceptions, directly and through cm-api's `StreamConsumer`.

use std::collections::{BTreeMap, BTreeSet};

use cm_api::Client;
use cm_api::stream_consumer::{HandlerError, OnHandlerError, Step, StreamConsumer};
use cm_api::types;
use cm_api::upload::Upload;
mod common;

use common::{api_error, checked, client, comment, project_and_source, typed};
use serde_json::json;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn listed(client: &Client) -> Vec<types::Comment> {
    client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comments
}

async fn sync(client: &Client, comments: Vec<types::CommentNew>) {
    client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body(types::SyncCommentsRequest { comments })
        .send()
        .await
        .expect("sync_comments");
}

#[tokio::test]
async fn a_document_becomes_a_comment_and_downloads_byte_for_byte() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    let mut pdf: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    pdf.extend_from_slice(b"\r\n--boundary\r\n\r\n%%EOF");

    let stored = client
        .upload_document()
        .source_id(&source_id)
        .file(Upload::new("invoice.pdf", "application/pdf", pdf.clone()))
        .send()
        .await
        .expect("upload_document")
        .into_inner();
    let reference = stored.attachment_ref.clone().expect("an attachment_ref");

    let download = client
        .get_document()
        .source_id(&source_id)
        .comment_id(&stored.comment_id)
        .send()
        .await
        .expect("get_document")
        .into_inner();
    assert_eq!(download.content_type(), Some("application/pdf"));
    assert_eq!(download.bytes().await.unwrap().as_ref(), pdf.as_slice());
    // The reference is the attachment's: get_attachment answers it too.
    let same = client
        .get_attachment()
        .attachment_reference(&reference)
        .send()
        .await
        .unwrap()
        .into_inner()
        .bytes()
        .await
        .unwrap();
    assert_eq!(same.as_ref(), pdf.as_slice());

    // The comment holds the document as its one attachment.
    let comments = listed(&client).await;
    assert_eq!(comments.len(), 1);
    let c = &comments[0];
    assert_eq!(c.id, stored.comment_id);
    assert_eq!(c.uid, format!("{source_id}.{}", stored.comment_id));
    assert_eq!(c.attachments.len(), 1);
    let a = &c.attachments[0];
    assert_eq!(a.name, "invoice.pdf");
    assert_eq!(a.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(a.size, Some(pdf.len() as i64));
    assert_eq!(a.content_hash.as_deref(), Some(sha256_hex(&pdf).as_str()));
    assert_eq!(a.attachment_reference.as_deref(), Some(reference.as_str()));

    // Each upload is a new comment, even of the same file.
    let again = client
        .upload_document()
        .source_id(&source_id)
        .file(Upload::new("notes.txt", "text/plain", &b"plain notes"[..]))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.comment_id, stored.comment_id);
    let ids: BTreeSet<String> = listed(&client).await.into_iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([stored.comment_id.clone(), again.comment_id.clone()])
    );
    let notes = client
        .get_document()
        .source_id(&source_id)
        .comment_id(&again.comment_id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(notes.content_type(), Some("text/plain"));
    assert_eq!(notes.bytes().await.unwrap().as_ref(), b"plain notes");

    // Deleting the comment deletes the document.
    client
        .delete_comments()
        .project("acme")
        .source_name("inbox")
        .id(vec![stored.comment_id.clone()])
        .send()
        .await
        .unwrap();
    let gone = client
        .get_document()
        .source_id(&source_id)
        .comment_id(&stored.comment_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);
}

#[tokio::test]
async fn document_uploads_that_fail_store_nothing() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    let file = || Upload::new("a.pdf", "application/pdf", &b"%PDF-1.7"[..]);

    let error = client
        .upload_document()
        .source_id("0000000000000000")
        .file(file())
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);

    let put = |content_type: &'static str, body: &'static [u8]| {
        reqwest::Client::new()
            .put(format!(
                "{}/api/_private/sources/id:{source_id}/documents",
                sandbox.base_url()
            ))
            .bearer_auth(sandbox.token())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // Not multipart: 400.
    let raw = put("application/pdf", b"%PDF-1.7").await.unwrap();
    assert_eq!(raw.status(), 400);
    // A `file` part without a file name, and a part that is not `file`: 422.
    let raw = put(
        "multipart/form-data; boundary=XYZ",
        b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n%PDF\r\n--XYZ--\r\n",
    )
    .await
    .unwrap();
    assert_eq!(raw.status(), 422);
    let raw = put(
        "multipart/form-data; boundary=XYZ",
        b"--XYZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.pdf\"\r\n\r\n%PDF\r\n--XYZ--\r\n",
    )
    .await
    .unwrap();
    assert_eq!(raw.status(), 422);
    assert!(listed(&client).await.is_empty());

    // A comment that holds no document, and one that does not exist: 404.
    sync(
        &client,
        vec![comment("c1", "2026-03-01T10:00:00Z", "no document")],
    )
    .await;
    for comment_id in ["c1", "c2"] {
        let error = client
            .get_document()
            .source_id(&source_id)
            .comment_id(comment_id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(api_error(error).0, 404, "{comment_id}");
    }
    let error = client
        .get_document()
        .source_id("0000000000000000")
        .comment_id("c1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);

    // Permissions: uploading adds comments, downloading reads sources.
    let reader = common::client_with(&sandbox, &sandbox.mint_token(["sources-read"]));
    let error = reader
        .upload_document()
        .source_id(&source_id)
        .file(file())
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 403);
    let writer = common::client_with(&sandbox, &sandbox.mint_token(["sources-add-comments"]));
    let stored = writer
        .upload_document()
        .source_id(&source_id)
        .file(file())
        .send()
        .await
        .unwrap()
        .into_inner();
    let error = writer
        .get_document()
        .source_id(&source_id)
        .comment_id(&stored.comment_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 403);
    reader
        .get_document()
        .source_id(&source_id)
        .comment_id(&stored.comment_id)
        .send()
        .await
        .expect("a reader downloads");
}

/// A source `inbox` with comments `c0`..`c{n-1}`, a dataset `triage` over it
/// and a stream `refunds` that started before them; returns the source id.
async fn stream_with_comments(client: &Client, n: usize) -> String {
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
    sync(
        client,
        (0..n)
            .map(|i| {
                comment(
                    &format!("c{i}"),
                    &format!("2026-03-01T10:{i:02}:00Z"),
                    "refund please",
                )
            })
            .collect(),
    )
    .await;
    source_id
}

fn exception(uid: &str, kind: &str) -> types::StreamException {
    typed(json!({"uid": uid, "metadata": {"type": kind}}))
}

async fn store(
    client: &Client,
    exceptions: Vec<types::StreamException>,
) -> Result<(), cm_api::Error> {
    client
        .store_stream_exceptions()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .body(types::StoreStreamExceptionsRequest { exceptions })
        .send()
        .await
        .map(drop)
}

#[tokio::test]
async fn stream_exceptions_are_tagged_retagged_untagged_and_forgotten_with_their_comment() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = stream_with_comments(&client, 4).await;
    let uid = |i: usize| format!("{source_id}.c{i}");
    let tags = || {
        sandbox
            .stream_exceptions("acme", "triage", "refunds")
            .unwrap()
    };
    assert_eq!(tags(), BTreeMap::new());

    store(
        &client,
        vec![
            exception(&uid(0), "No Prediction"),
            exception(&uid(1), "Wrong Prediction"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        tags(),
        BTreeMap::from([
            (uid(0), "No Prediction".to_owned()),
            (uid(1), "Wrong Prediction".to_owned()),
        ])
    );
    // A second tag replaces the first.
    store(&client, vec![exception(&uid(0), "Robot Failure")])
        .await
        .unwrap();
    assert_eq!(tags()[&uid(0)], "Robot Failure");

    // A uid that names no comment of the dataset rejects the whole request.
    for bad in [
        format!("{source_id}.nope"),
        "0000000000000000.c2".to_owned(),
        "c2".to_owned(),
    ] {
        let error = store(
            &client,
            vec![exception(&uid(2), "No Prediction"), exception(&bad, "x")],
        )
        .await
        .unwrap_err();
        let (status, message) = api_error(error);
        assert_eq!(status, 404, "{bad}: {message}");
        assert!(message.contains("exceptions[1].uid"), "{message}");
    }
    assert_eq!(tags().len(), 2);
    // An unknown stream is a 404.
    let error = client
        .store_stream_exceptions()
        .project("acme")
        .dataset_name("triage")
        .stream_name("other")
        .body(types::StoreStreamExceptionsRequest {
            exceptions: vec![exception(&uid(2), "x")],
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);

    // Untagging: named uids go, unknown ones are ignored.
    client
        .delete_stream_exceptions()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .uid(vec![uid(1), uid(3), "nothing".to_owned()])
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(),
        BTreeMap::from([(uid(0), "Robot Failure".to_owned())])
    );
    // Untagging names its comments (cm-api requires `uid`): none is a 400.
    let raw = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/datasets/acme/triage/streams/refunds/exceptions",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // The spec's permissions: consuming streams and reading sources.
    let reader = common::client_with(&sandbox, &sandbox.mint_token(["sources-read"]));
    let error = store(&reader, vec![exception(&uid(2), "x")])
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 403);
    let consumer = common::client_with(
        &sandbox,
        &sandbox.mint_token(["sources-read", "triggers-consume"]),
    );
    store(&consumer, vec![exception(&uid(2), "No Prediction")])
        .await
        .unwrap();
    consumer
        .delete_stream_exceptions()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .uid(vec![uid(2)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(),
        BTreeMap::from([(uid(0), "Robot Failure".to_owned())])
    );

    // Deleting a comment forgets its tag: re-created, it is untagged.
    client
        .delete_comments()
        .project("acme")
        .source_name("inbox")
        .id(vec!["c0".to_owned()])
        .send()
        .await
        .unwrap();
    assert_eq!(tags(), BTreeMap::new());
    sync(
        &client,
        vec![comment("c0", "2026-03-01T10:00:00Z", "refund please")],
    )
    .await;
    assert_eq!(tags(), BTreeMap::new());
    assert_eq!(sandbox.stream_exceptions("acme", "triage", "other"), None);
}

#[tokio::test]
async fn a_tagging_consumer_tags_exactly_the_failed_comments_and_moves_on() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = stream_with_comments(&client, 10).await;
    // The handler fails on c2, c5 and c7, and on the whole batch holding c9.
    let failing = |id: &str| ["c2", "c5", "c7"].contains(&id);
    let consumer = StreamConsumer::new(client.clone(), "acme", "triage", "refunds")
        .batch_size(4)
        .on_handler_error(OnHandlerError::tag_exceptions("Robot Failure"));

    let mut handled = Vec::new();
    let mut tagged = 0;
    loop {
        let step = consumer
            .step(|batch: types::StreamResultsResponse| {
                let ids: Vec<(String, String)> = batch
                    .results
                    .iter()
                    .map(|r| (r.comment.id.clone(), r.comment.uid.clone()))
                    .collect();
                handled.extend(ids.iter().map(|(id, _)| id.clone()));
                async move {
                    if ids.iter().any(|(id, _)| id == "c9") {
                        return Err(HandlerError::new("the whole batch failed"));
                    }
                    let failed: Vec<&String> = ids
                        .iter()
                        .filter(|(id, _)| failing(id))
                        .map(|(_, uid)| uid)
                        .collect();
                    if failed.is_empty() {
                        Ok(())
                    } else {
                        Err(HandlerError::for_comments(failed, "ERP rejected them"))
                    }
                }
            })
            .await
            .expect("a step")
            .expect("no shutdown");
        match step {
            Step::Handled { exceptions, .. } => tagged += exceptions,
            Step::Empty {
                has_more: false, ..
            } => break,
            other => panic!("unexpected {other:?}"),
        }
    }

    // Every comment was handled exactly once: the stream advanced past
    // failed batches too.
    let expected: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    assert_eq!(handled, expected);
    // Batches of 4: c8 and c9 form the last batch, which failed whole.
    let uid = |id: &str| format!("{source_id}.{id}");
    let want: BTreeMap<String, String> = ["c2", "c5", "c7", "c8", "c9"]
        .into_iter()
        .map(|id| (uid(id), "Robot Failure".to_owned()))
        .collect();
    assert_eq!(tagged, 5);
    assert_eq!(
        sandbox.stream_exceptions("acme", "triage", "refunds"),
        Some(want)
    );
    let rest = client
        .get_stream_results()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(rest.results.is_empty(), "{:?}", rest.results);
}

#[tokio::test]
async fn the_dataset_query_shows_each_comments_tags_keyed_by_stream_id() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = stream_with_comments(&client, 3).await;
    store(
        &client,
        vec![exception(&format!("{source_id}.c1"), "No Prediction")],
    )
    .await
    .unwrap();
    let page = client
        .query_comments()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::QueryCommentsRequest>(
            json!({"order": {"kind": "recent"}}),
        ))
        .send()
        .await
        .unwrap()
        .into_inner();
    let [stream] = &page.triggers[..] else {
        panic!("one stream: {:?}", page.triggers);
    };
    assert_eq!(stream.name, "refunds");
    let tags: BTreeMap<String, BTreeMap<String, String>> = page
        .results
        .iter()
        .map(|r| {
            let tags = r
                .trigger_exceptions
                .iter()
                .map(|(stream, tag)| (stream.clone(), tag.type_.clone()))
                .collect();
            (r.comment.id.clone(), tags)
        })
        .collect();
    let tagged = BTreeMap::from([(stream.id.clone(), "No Prediction".to_owned())]);
    assert_eq!(
        tags,
        BTreeMap::from([
            ("c0".to_owned(), BTreeMap::new()),
            ("c1".to_owned(), tagged),
            ("c2".to_owned(), BTreeMap::new()),
        ])
    );
}
