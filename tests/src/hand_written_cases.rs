//! Contract cases for the operations `cm-api` implements by hand
//! (`x-hand-written` in the spec: multipart uploads).
//!
//! The harness matches JSON bodies only, so these cases check the method,
//! the exact (percent-encoded, `id:`-prefixed) path and the token, not the
//! multipart body: `crates/api/tests/uploads.rs` parses that part by part.

use futures::future::BoxFuture;
use serde::Serialize;

use crate::harness::{Canned, Case, Outcome};
use cm_api::upload::Upload;

/// The file every case uploads.
fn file() -> Upload {
    Upload::new(
        "report.pdf",
        "application/pdf",
        b"%PDF-1.7\n\x00\x01".as_slice(),
    )
}

/// The typed answer re-serialised to JSON, as the harness compares it.
fn outcome<T: Serialize>(result: Result<cm_api::Response<T>, cm_api::Error>) -> Outcome {
    Ok(serde_json::to_value(result?.into_inner()).expect("generated types serialise"))
}

/// One case per `x-hand-written` operation.
pub fn cases() -> Vec<Case> {
    vec![
        {
            fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
                Box::pin(async move {
                    let uploads = client.uploads();
                    outcome(
                        uploads
                            .comment_attachment("18ba5ce699f8da1f", "msg 42", 1, file())
                            .await,
                    )
                })
            }
            Case {
                operation_id: "upload_comment_attachment",
                method: "PUT",
                path: "/api/_private/sources/id:18ba5ce699f8da1f/comments/msg%2042/attachments/1",
                query: &[],
                sends_body: false,
                response: Canned::Example,
                call,
            }
        },
        {
            fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
                Box::pin(async move {
                    let uploads = client.uploads();
                    outcome(
                        uploads
                            .comment_audio("18ba5ce699f8da1f", "call/0042", file())
                            .await,
                    )
                })
            }
            Case {
                operation_id: "upload_comment_audio",
                method: "PUT",
                path: "/api/_private/sources/id:18ba5ce699f8da1f/comments/call%2F0042/audio",
                query: &[],
                sends_body: false,
                response: Canned::Example,
                call,
            }
        },
        {
            fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
                Box::pin(async move {
                    outcome(client.uploads().document("18ba5ce699f8da1f", file()).await)
                })
            }
            Case {
                operation_id: "upload_document",
                method: "PUT",
                path: "/api/_private/sources/id:18ba5ce699f8da1f/documents",
                query: &[],
                sends_body: false,
                response: Canned::Example,
                call,
            }
        },
    ]
}
