//! Contract cases for the operations `cm-api` implements by hand
//! (`x-hand-written` in the spec: multipart uploads and raw bodies).
//!
//! The harness matches JSON bodies only, so these cases check the method,
//! the exact (percent-encoded, `id:`-prefixed) path and the token, not the
//! body: `crates/api/tests/uploads.rs` parses multipart bodies part by part
//! and checks raw bodies byte for byte.

use futures::future::BoxFuture;
use serde::Serialize;

use crate::harness::{Canned, Case, Outcome};
use cm_api::upload::{RawBody, Upload};

/// The file every case uploads.
fn file() -> Upload {
    Upload::new(
        "report.pdf",
        "application/pdf",
        b"%PDF-1.7\n\x00\x01".as_slice(),
    )
}

/// The raw body every raw-body case sends.
fn raw() -> RawBody {
    RawBody::from_bytes("text/csv", "id,subject\n1,Invoice overdue\n")
}

/// The typed answer re-serialised to JSON, as the harness compares it.
fn outcome<T: Serialize>(result: Result<cm_api::Response<T>, cm_api::Error>) -> Outcome {
    Ok(serde_json::to_value(result?.into_inner()).expect("generated types serialise"))
}

/// Declares a hand-written case: `operation: METHOD "exact/encoded/path",
/// |client| call` with `call` the operation's builder, ready to send.
macro_rules! hand_written {
    ($op:ident: $method:ident $path:literal, |$uploads:ident| $call:expr $(,)?) => {{
        fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
            Box::pin(async move {
                let $uploads = client;
                outcome($call.send().await)
            })
        }
        Case {
            operation_id: stringify!($op),
            method: stringify!($method),
            path: $path,
            query: &[],
            sends_body: false,
            response: Canned::Example,
            call,
        }
    }};
}

/// One case per `x-hand-written` operation.
pub fn cases() -> Vec<Case> {
    vec![
        hand_written!(upload_comment_attachment: PUT "/api/_private/sources/id:18ba5ce699f8da1f/comments/msg%2042/attachments/1",
            |u| u.upload_comment_attachment().source_id("18ba5ce699f8da1f").comment_id("msg 42").attachment_index(1).file(file())),
        hand_written!(upload_comment_audio: PUT "/api/_private/sources/id:18ba5ce699f8da1f/comments/call%2F0042/audio",
            |u| u.upload_comment_audio().source_id("18ba5ce699f8da1f").comment_id("call/0042").file(file())),
        hand_written!(upload_document: PUT "/api/_private/sources/id:18ba5ce699f8da1f/documents",
            |u| u.upload_document().source_id("18ba5ce699f8da1f").file(file())),
        hand_written!(upload_email_attachment: PUT "/api/_private/buckets/id:5c1d9e0a7f3b2e48/emails/AAMk%2Fx%201/attachments/0",
            |u| u.upload_email_attachment().bucket_id("5c1d9e0a7f3b2e48").email_id("AAMk/x 1").attachment_index(0).file(file())),
        hand_written!(upload_ixp_document: PUT "/api/_private/ixp/projects/3f2a9c1e-7b4d-4e8a-9c2f-1d5e6a7b8c9d/models/latest/documents",
            |u| u.upload_ixp_document().project_uuid("3f2a9c1e-7b4d-4e8a-9c2f-1d5e6a7b8c9d").model_version("latest").file(file())),
        hand_written!(update_appliance_config: PUT "/api/_private/appliance-configs/acme/exchange%20support",
            |u| u.update_appliance_config().project("acme").config_key("exchange support").document(raw())),
        hand_written!(upload_files: POST "/api/_private/files/upload",
            |u| u.upload_files().file(raw())),
        hand_written!(detect_csv_format: PUT "/api/_private/sources/sniff-csv",
            |u| u.detect_csv_format().csv(raw())),
        hand_written!(sync_comments_from_csv: PUT "/api/_private/sources/acme/tickets%20%C3%A9/sync-csv",
            |u| u.sync_comments_from_csv().project("acme").source_name("tickets é").csv(raw())),
    ]
}
