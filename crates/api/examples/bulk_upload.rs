//! Uploads comments from a JSON-lines file (one `CommentNew` per line) with
//! concurrent, bisecting `sync_comments` batches and a progress bar. The
//! file is streamed, never loaded whole.
//!
//! ```sh
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ REINFER_TOKEN=... \
//! CM_PROJECT=acme CM_SOURCE=inbox cargo run -p cm-api --example bulk_upload -- comments.jsonl
//! ```

use std::process::ExitCode;

use cm_api::Client;
use cm_api::bulk::{self, SyncEvent, SyncOptions};
use cm_api::types::CommentNew;
use futures::stream::{self, Stream};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> ExitCode {
    let (Ok(project), Ok(source), Some(path)) = (
        std::env::var("CM_PROJECT"),
        std::env::var("CM_SOURCE"),
        std::env::args().nth(1),
    ) else {
        eprintln!("usage: CM_PROJECT=.. CM_SOURCE=.. bulk_upload <comments.jsonl>");
        return ExitCode::FAILURE;
    };
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match upload(&client, &project, &source, &path, true).await {
        Ok(report) if report.is_complete() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{path}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Uploads the comments of the JSON-lines file at `path` to `project/source`,
/// printing progress (when `show_progress`) and a report.
pub async fn upload(
    client: &Client,
    project: &str,
    source: &str,
    path: &str,
    show_progress: bool,
) -> std::io::Result<bulk::SyncReport> {
    let file = tokio::fs::File::open(path).await?;
    // Sizing the bar needs the file's line count: a cheap first pass.
    let total = std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count() as u64)
        .unwrap_or(0);

    let bar = if show_progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} comments ({per_sec}, eta {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let options = SyncOptions::default()
        .batch_size(2048)
        .concurrency(8)
        .on_progress(move |p| {
            progress.set_position(p.totals.synced + p.totals.failed);
            progress.set_message(format!(
                "{} new, {} updated, {} failed, {} requests",
                p.totals.counts.new, p.totals.counts.updated, p.totals.failed, p.totals.requests
            ));
            if let SyncEvent::Retrying { wait, error, .. } = &p.event {
                progress.println(format!("retrying in {wait:?}: {error}"));
            }
        });

    let report = bulk::sync_comments(client, project, source, comments(file), options).await;
    bar.finish();
    for failure in report.failures.iter().take(20) {
        eprintln!(
            "comment #{} ({:?}): {}",
            failure.item.index, failure.item.id, failure.error
        );
    }
    eprintln!(
        "{} read, {} synced ({} new, {} updated, {} unchanged), {} failed, {} requests",
        report.read,
        report.synced,
        report.counts.new,
        report.counts.updated,
        report.counts.unchanged,
        report.failed,
        report.requests
    );
    if let Some(error) = &report.stopped {
        eprintln!(
            "stopped: {error} ({} comments not sent)",
            report.not_attempted
        );
    }
    Ok(report)
}

/// The file's comments, read line by line as the upload asks for them.
/// Unreadable lines are reported and skipped (they never reach the upload,
/// so they are not in its report).
fn comments(file: tokio::fs::File) -> impl Stream<Item = CommentNew> {
    let lines = BufReader::new(file).lines();
    stream::unfold((lines, 0u64), |(mut lines, mut number)| async move {
        loop {
            number += 1;
            match lines.next_line().await {
                Ok(Some(line)) if line.trim().is_empty() => continue,
                Ok(Some(line)) => match serde_json::from_str::<CommentNew>(&line) {
                    Ok(comment) => return Some((comment, (lines, number))),
                    Err(err) => eprintln!("line {number}: skipped: {err}"),
                },
                Ok(None) => return None,
                Err(err) => {
                    eprintln!("line {number}: {err}");
                    return None;
                }
            }
        }
    })
}
