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
    let continuation = std::env::var("CM_CONTINUATION").ok();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let outcome = export(&client, &project, &dataset, continuation, &mut out).await;
    let _ = out.flush();
    match outcome {
        Ok(Exported { comments, pages }) => {
            eprintln!("exported {comments} comments in {pages} pages");
            ExitCode::SUCCESS
        }
        Err(stopped) => {
            eprintln!(
                "error after {} comments: {}",
                stopped.comments, stopped.error
            );
            if let Some(cursor) = &stopped.resume {
                eprintln!("resume with CM_CONTINUATION={cursor}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    /// Comments written.
    pub comments: u64,
    /// Pages fetched.
    pub pages: u64,
}

/// Why an export stopped, and where to resume it.
#[derive(Debug)]
pub struct Stopped {
    /// Comments written before the error.
    pub comments: u64,
    /// What stopped the export.
    pub error: Box<dyn std::error::Error + Send + Sync>,
    /// The cursor to resume from (`CM_CONTINUATION`).
    pub resume: Option<String>,
}

/// Writes every comment of `project/dataset` to `out`, one JSON line each,
/// starting at `continuation` (a page's cursor) when given.
pub async fn export(
    client: &Client,
    project: &str,
    dataset: &str,
    continuation: Option<String>,
    out: &mut impl Write,
) -> Result<Exported, Stopped> {
    let request = ExportDatasetRequest {
        limit: Some(512),
        // Resume an interrupted export where it stopped.
        continuation,
        ..Default::default()
    };
    let mut comments = client
        .export_dataset()
        .project(project)
        .dataset_name(dataset)
        .body(request)
        .into_stream();
    let mut count = 0u64;
    while let Some(item) = comments.next().await {
        let written = item
            .map_err(Into::into)
            .and_then(|exported| Ok(serde_json::to_writer(&mut *out, &exported)?))
            .and_then(|()| Ok(writeln!(out)?));
        if let Err(error) = written {
            return Err(Stopped {
                comments: count,
                error,
                resume: comments.resume_cursor().cloned(),
            });
        }
        count += 1;
    }
    Ok(Exported {
        comments: count,
        pages: comments.pages_fetched(),
    })
}
