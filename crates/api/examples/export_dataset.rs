//! Exports a dataset with its annotations as JSON lines on stdout, page by
//! page, and says where to resume if the export stops half-way.
//!
//! ```sh
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ REINFER_TOKEN=... \
//! CM_PROJECT=acme CM_DATASET=triage [CM_CONTINUATION=...] \
//!     cargo run -p cm-api --example export_dataset > triage.jsonl
//! ```

use std::io::Write;
use std::process::ExitCode;

use cm_api::Client;
use cm_api::types::ExportDatasetRequest;
use futures::StreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    let (Ok(project), Ok(dataset)) = (std::env::var("CM_PROJECT"), std::env::var("CM_DATASET"))
    else {
        eprintln!("set CM_PROJECT and CM_DATASET (and REINFER_ENDPOINT / REINFER_TOKEN)");
        return ExitCode::FAILURE;
    };
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let request = ExportDatasetRequest {
        limit: Some(512),
        // Resume an interrupted export where it stopped.
        continuation: std::env::var("CM_CONTINUATION").ok(),
        ..Default::default()
    };
    let mut comments = client
        .paginate()
        .export_dataset(&project, &dataset, request);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut count = 0u64;
    while let Some(item) = comments.next().await {
        match item {
            Ok(exported) => {
                let line = serde_json::to_string(&exported).unwrap_or_default();
                if writeln!(out, "{line}").is_err() {
                    return ExitCode::FAILURE;
                }
                count += 1;
            }
            Err(err) => {
                let _ = out.flush();
                eprintln!("error after {count} comments: {err}");
                if let Some(cursor) = comments.resume_cursor() {
                    eprintln!("resume with CM_CONTINUATION={cursor}");
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = out.flush();
    eprintln!(
        "exported {count} comments in {} pages",
        comments.pages_fetched()
    );
    ExitCode::SUCCESS
}
