//! Attachment contents through cm-api's hand-written multipart upload
//! (`upload_comment_attachment`) and streamed download
//! (`get_attachment`): what the client sends, the sandbox accepts.

use cm_api::Client;
use cm_api::types;
use cm_api::upload::Upload;
mod common;

use common::{api_error, checked, client, project_and_source, typed};
use serde_json::json;
use sha2::{Digest, Sha256};

async fn sync_with_attachments(client: &Client, attachments: serde_json::Value) {
    client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body(types::SyncCommentsRequest {
            comments: vec![typed(json!({
                "id": "c1",
                "timestamp": "2026-03-01T10:00:00Z",
                "messages": [{"body": {"text": "See attached."}}],
                "attachments": attachments,
            }))],
        })
        .send()
        .await
        .expect("sync_comments");
}

async fn attachments_of(client: &Client) -> Vec<types::Attachment> {
    client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c1")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment
        .attachments
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn attachment_bytes_round_trip_byte_for_byte() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    sync_with_attachments(
        &client,
        json!([
            {"name": "report.pdf", "content_type": "application/pdf"},
            {"name": "empty.txt"},
            {"name": "not-uploaded.bin"},
        ]),
    )
    .await;
    // Every byte value, CRLFs and something that looks like a boundary.
    let mut content: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    content.extend_from_slice(b"\r\n--boundary\r\n\r\n%%EOF");

    let stored = client
        .upload_comment_attachment()
        .source_id(&source_id)
        .comment_id("c1")
        .attachment_index(0)
        .file(Upload::new(
            "report.pdf",
            "application/pdf",
            content.clone(),
        ))
        .send()
        .await
        .expect("upload_comment_attachment")
        .into_inner();
    assert_eq!(stored.content_hash, sha256_hex(&content));
    client
        .upload_comment_attachment()
        .source_id(&source_id)
        .comment_id("c1")
        .attachment_index(1)
        .file(Upload::new("empty.txt", "text/plain", Vec::new()))
        .send()
        .await
        .expect("an empty file uploads");

    let listed = attachments_of(&client).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[0].content_hash.as_deref(),
        Some(stored.content_hash.as_str())
    );
    assert_eq!(listed[0].size, Some(content.len() as i64));
    assert_eq!(listed[2].attachment_reference, None);
    let reference = listed[0].attachment_reference.clone().expect("a reference");

    let download = client
        .get_attachment()
        .attachment_reference(&reference)
        .send()
        .await
        .expect("get_attachment")
        .into_inner();
    assert_eq!(download.content_type(), Some("application/pdf"));
    let bytes = download.bytes().await.unwrap();
    assert_eq!(bytes.len(), content.len());
    assert!(bytes[..] == content[..], "the bytes differ");

    let empty = client
        .get_attachment()
        .attachment_reference(
            listed[1]
                .attachment_reference
                .as_deref()
                .expect("a reference"),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.content_type(), Some("text/plain"));
    assert!(empty.bytes().await.unwrap().is_empty());

    // A second upload to the same place replaces the content.
    client
        .upload_comment_attachment()
        .source_id(&source_id)
        .comment_id("c1")
        .attachment_index(0)
        .file(Upload::new(
            "report.pdf",
            "application/pdf",
            b"%PDF-1.7 v2".as_slice(),
        ))
        .send()
        .await
        .unwrap();
    let again = client
        .get_attachment()
        .attachment_reference(&reference)
        .send()
        .await
        .unwrap()
        .into_inner()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&again[..], b"%PDF-1.7 v2");
}

#[tokio::test]
async fn uploads_need_a_listed_attachment_and_contents_follow_the_comment() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    sync_with_attachments(
        &client,
        json!([{"name": "a.txt", "content_type": "text/plain"}]),
    )
    .await;
    let file = || Upload::new("a.txt", "text/plain", b"hello".as_slice());

    for (source, comment, index, status) in [
        (source_id.as_str(), "c1", 1, 404),
        (source_id.as_str(), "missing", 0, 404),
        ("0000000000000000", "c1", 0, 404),
    ] {
        let error = client
            .upload_comment_attachment()
            .source_id(source)
            .comment_id(comment)
            .attachment_index(index)
            .file(file())
            .send()
            .await
            .unwrap_err();
        assert_eq!(api_error(error).0, status, "{source}/{comment}/{index}");
    }
    let unknown = client
        .get_attachment()
        .attachment_reference("not-a-reference")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(unknown).0, 404);

    // A body that is not multipart is a 400, and stores nothing.
    let raw = reqwest::Client::new()
        .put(format!(
            "{}/api/_private/sources/id:{source_id}/comments/c1/attachments/0",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .header("content-type", "application/octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(attachments_of(&client).await[0].attachment_reference, None);

    client
        .upload_comment_attachment()
        .source_id(&source_id)
        .comment_id("c1")
        .attachment_index(0)
        .file(file())
        .send()
        .await
        .unwrap();
    let reference = attachments_of(&client).await[0]
        .attachment_reference
        .clone()
        .expect("a reference");

    // Re-syncing the same metadata keeps the content.
    sync_with_attachments(
        &client,
        json!([{"name": "a.txt", "content_type": "text/plain"}]),
    )
    .await;
    assert_eq!(
        attachments_of(&client).await[0]
            .attachment_reference
            .as_deref(),
        Some(reference.as_str())
    );
    // New attachment metadata drops the content uploaded for the old.
    sync_with_attachments(&client, json!([{"name": "b.txt"}])).await;
    assert_eq!(attachments_of(&client).await[0].attachment_reference, None);
    let gone = client
        .get_attachment()
        .attachment_reference(&reference)
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);

    // Deleting the comment deletes its contents.
    sync_with_attachments(&client, json!([{"name": "a.txt"}])).await;
    client
        .upload_comment_attachment()
        .source_id(&source_id)
        .comment_id("c1")
        .attachment_index(0)
        .file(file())
        .send()
        .await
        .unwrap();
    client
        .get_attachment()
        .attachment_reference(&reference)
        .send()
        .await
        .expect("uploaded again");
    client
        .delete_comments()
        .project("acme")
        .source_name("inbox")
        .id(vec!["c1".to_owned()])
        .send()
        .await
        .unwrap();
    let gone = client
        .get_attachment()
        .attachment_reference(&reference)
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);
}
