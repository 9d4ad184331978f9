//! `cm get comments` and `cm export`: comments as JSON lines on stdout, one
//! `{"comment": ...}` object a line (with `annotations` and `predictions`
//! when read through a dataset), walked with cm-api's paginators, or over
//! `--parallel N` time windows at once.
//!
//! The time range goes to the server; the user property, review and label
//! filters are applied here, to every comment read, because the export
//! takes no such filter.

use std::process::ExitCode;

use chrono::Utc;
use cm_api::paginate::parallel::{ParallelPaginated, ParallelWalk};
use futures::{Stream, StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::cli::{CommentFilters, ExportArgs, GetCommentsArgs, Global, LabelFilters};
use crate::exit::Failure;
use crate::output::JsonLines;
use crate::resources::split;

/// Comments as JSON values, in the order read.
type Comments = std::pin::Pin<Box<dyn Stream<Item = Result<Value, cm_api::Error>> + Send>>;

/// `cm get comments <project/source>`.
pub async fn get_comments(global: &Global, args: GetCommentsArgs) -> Result<ExitCode, Failure> {
    let client = crate::context::client(global)?;
    if let Some(dataset) = &args.dataset {
        let source_id = crate::resources::source_id(&client, &args.source).await?;
        let comments = exported(&client, dataset, vec![source_id], &args.filters)?;
        return print(comments, &args.filters, &args.labels).await;
    }
    if args.labels.reviewed_only || !args.labels.labels.is_empty() {
        return Err(Failure::usage(
            "--reviewed-only and --label need --dataset: labels belong to a dataset",
        ));
    }
    let [project, source] = split::<2>(&args.source, "the source")?;
    let mut request = client
        .list_source_comments()
        .project(project)
        .source_name(source);
    if let Some(from) = args.filters.from {
        request = request.from_timestamp(from);
    }
    if let Some(limit) = args.filters.page_size {
        request = request.limit(limit);
    }
    if let Some(to) = args.filters.end() {
        request = request.to_timestamp(to);
    }
    let line = |c: cm_api::paginate::SourceComment| match c.thread_properties {
        Some(thread) => json!({"comment": c.comment, "thread_properties": thread}),
        None => json!({"comment": c.comment}),
    };
    let comments: Comments = match args.filters.parallel {
        Some(n) => Box::pin(windows(request.into_parallel(), n)?.map_ok(line)),
        None => Box::pin(request.into_stream().map_ok(line)),
    };
    print(comments, &args.filters, &args.labels).await
}

/// `cm export <project/dataset>`.
pub async fn export(global: &Global, args: ExportArgs) -> Result<ExitCode, Failure> {
    let client = crate::context::client(global)?;
    let comments = exported(&client, &args.dataset, args.source_ids, &args.filters)?;
    print(comments, &args.filters, &args.labels).await
}

/// A dataset's export, of `source_ids` only when not empty.
fn exported(
    client: &cm_api::Client,
    dataset: &str,
    source_ids: Vec<String>,
    filters: &CommentFilters,
) -> Result<Comments, Failure> {
    let [project, dataset] = split::<2>(dataset, "the dataset")?;
    let request = cm_api::types::ExportDatasetRequest {
        source_ids,
        from: filters.from,
        to: filters.end(),
        limit: filters.page_size,
        ..Default::default()
    };
    let export = client
        .export_dataset()
        .project(project)
        .dataset_name(dataset)
        .body(request);
    let as_json = |c: cm_api::types::ExportedComment| {
        serde_json::to_value(c).unwrap_or_else(|e| json!({"error": e.to_string()}))
    };
    Ok(match filters.parallel {
        Some(n) => Box::pin(windows(export.into_parallel(), n)?.map_ok(as_json)),
        None => Box::pin(export.into_stream().map_ok(as_json)),
    })
}

/// `walk` over `n` time windows, all read at once.
fn windows<T: Send + 'static>(
    walk: ParallelWalk<T>,
    n: u16,
) -> Result<ParallelPaginated<T>, cm_api::Error> {
    walk.windows(usize::from(n))
        .concurrency(usize::from(n))
        .start()
}

impl CommentFilters {
    /// The end of the time range: `--to`, or now for a `--parallel` read,
    /// whose windows need one.
    fn end(&self) -> Option<chrono::DateTime<Utc>> {
        self.to.or(self.parallel.map(|_| Utc::now()))
    }
}

/// Writes the comments that pass the filters, up to `--stop-after`.
async fn print(
    mut comments: Comments,
    filters: &CommentFilters,
    labels: &LabelFilters,
) -> Result<ExitCode, Failure> {
    let mut out = JsonLines::new();
    let mut written = 0u64;
    while filters.stop_after.is_none_or(|max| written < max) {
        let Some(comment) = comments.next().await else {
            break;
        };
        let comment = comment?;
        if keep(&comment, filters, labels) {
            out.write(&comment)?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `line` (`{"comment": ..., "annotations": ...}`) passes the
/// user property, review and label filters.
fn keep(line: &Value, filters: &CommentFilters, labels: &LabelFilters) -> bool {
    let properties_match = filters.user_properties.iter().all(|(key, wanted)| {
        match line
            .pointer("/comment/user_properties")
            .and_then(|p| p.get(key))
        {
            Some(Value::String(value)) => value == wanted,
            Some(Value::Null) | None => false,
            Some(other) => serde_json::from_str::<Value>(wanted).is_ok_and(|w| &w == other),
        }
    });
    let assigned = || {
        line.pointer("/annotations/labels/assigned")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|label| label.get("name").and_then(Value::as_str))
    };
    let reviewed = !labels.reviewed_only
        || line
            .pointer("/annotations/labels")
            .is_some_and(|l| !l.is_null());
    let labelled = labels.labels.is_empty()
        || assigned().any(|name| {
            labels.labels.iter().any(|wanted| {
                name == wanted
                    || name
                        .strip_prefix(wanted.as_str())
                        .is_some_and(|rest| rest.starts_with(" > "))
            })
        });
    properties_match && reviewed && labelled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(properties: &[(&str, &str)]) -> CommentFilters {
        CommentFilters {
            from: None,
            to: None,
            user_properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            parallel: None,
            page_size: None,
            stop_after: None,
        }
    }

    #[test]
    fn filters_read_properties_reviews_and_labels_with_their_parents() {
        let line = json!({
            "comment": {"user_properties": {"string:Country": "France", "number:Score": 3}},
            "annotations": {"labels": {"assigned": [{"name": "Billing > Refund"}]}},
        });
        let none = LabelFilters {
            reviewed_only: false,
            labels: vec![],
        };
        let label = |l: &str| LabelFilters {
            reviewed_only: true,
            labels: vec![l.to_owned()],
        };
        assert!(keep(
            &line,
            &filters(&[("string:Country", "France")]),
            &none
        ));
        assert!(keep(&line, &filters(&[("number:Score", "3")]), &none));
        assert!(!keep(
            &line,
            &filters(&[("string:Country", "Spain")]),
            &none
        ));
        assert!(!keep(&line, &filters(&[("string:Missing", "x")]), &none));
        assert!(keep(&line, &filters(&[]), &label("Billing")));
        assert!(keep(&line, &filters(&[]), &label("Billing > Refund")));
        assert!(!keep(&line, &filters(&[]), &label("Bill")));
        let unreviewed = json!({"comment": {}});
        assert!(!keep(
            &unreviewed,
            &filters(&[]),
            &LabelFilters {
                reviewed_only: true,
                labels: vec![]
            }
        ));
    }
}
