//! The client's main job, on any endpoint: create a source and a dataset,
//! sync generated comments, label a few, consume a stream with its
//! predictions, export the dataset in parallel windows.
//!
//! `crates/api/tests/examples.rs` runs it against the sandbox.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cm_api::Client;
use cm_api::bulk::{self, SyncOptions};
use cm_api::stream_consumer::{Step, StreamConsumer};
use cm_api::types;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};

/// Errors of the job, from the client or from a check of what it read back.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// The topics of the generated comments, one label each.
pub const LABELS: [&str; 4] = ["Refund", "Delivery", "Account", "Invoice"];

/// What to create and how much to send.
#[derive(Debug, Clone)]
pub struct Job {
    /// The project to work in.
    pub project: String,
    /// Create the project first (the sandbox starts empty).
    pub create_project: bool,
    /// Names of the source, dataset and stream to create.
    pub source: String,
    /// The dataset over `source`.
    pub dataset: String,
    /// The stream of `dataset`.
    pub stream: String,
    /// How many comments to generate and sync.
    pub comments: usize,
    /// How many comments of each topic to label.
    pub labelled_per_topic: usize,
    /// Show progress bars (off in tests).
    pub progress: bool,
}

/// What the job did, for the summary.
#[derive(Debug, Default)]
pub struct JobSummary {
    /// Comments synced (new, updated or unchanged) by the bulk upload.
    pub synced: u64,
    /// Requests the bulk upload made.
    pub sync_requests: u64,
    /// Comments labelled through `update_labelling`.
    pub labelled: usize,
    /// Comments the stream delivered, and how many distinct.
    pub streamed: u64,
    /// Distinct comment ids the stream delivered.
    pub streamed_distinct: usize,
    /// Stream results with at least one predicted label.
    pub predicted: u64,
    /// Of those, results whose most confident label is the comment's topic.
    pub predicted_topic: u64,
    /// Stream batches handled and advanced past.
    pub batches: u64,
    /// Comments exported, and how many distinct.
    pub exported: u64,
    /// Distinct comment ids the export returned.
    pub exported_distinct: usize,
    /// Wall time of each phase.
    pub phases: Vec<(&'static str, Duration)>,
}

/// The generated comments span these two months.
fn first_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}
const SPAN_DAYS: i64 = 59;
const COUNTRIES: [&str; 3] = ["UK", "FR", "DE"];
/// The stream returns a label only when its confidence reaches this.
const PREDICTION_THRESHOLD: f64 = 0.2;

/// Comment `i`: its topic is `LABELS[i % 4]`, its time spread over the span.
pub fn comment(i: usize) -> types::CommentNew {
    let topic = i % LABELS.len();
    let order = 48_213 + i;
    let (subject, body) = match topic {
        0 => (
            "Refund request".to_owned(),
            format!("Hello, I am still waiting for the refund of order {order}. When will the payment be refunded to my card?"),
        ),
        1 => (
            "Parcel not delivered".to_owned(),
            format!("My parcel for order {order} has not been delivered yet and the tracking shows no delivery update since Monday."),
        ),
        2 => (
            "Cannot log in".to_owned(),
            "I cannot log in to my account any more: the password reset link in the email has expired.".to_owned(),
        ),
        _ => (
            "Wrong invoice".to_owned(),
            format!("The invoice for order {order} shows the wrong amount and VAT number; please send a corrected invoice."),
        ),
    };
    let seconds = (i as i64 * 7_919) % (SPAN_DAYS * 86_400);
    serde_json::from_value(serde_json::json!({
        "id": comment_id(i),
        "timestamp": first_day() + TimeDelta::seconds(seconds),
        "user_properties": {"string:Country": COUNTRIES[i % COUNTRIES.len()]},
        "messages": [{
            "from": format!("customer{}@example.com", i % 97),
            "to": ["support@example.com"],
            "subject": {"text": subject},
            "body": {"text": body},
        }],
    }))
    .expect("a CommentNew")
}

/// The id of comment `i`, and back.
fn comment_id(i: usize) -> String {
    format!("qs-{i:06}")
}
fn comment_index(id: &str) -> Option<usize> {
    id.strip_prefix("qs-")?.parse().ok()
}

/// Runs the whole job; see the module documentation.
pub async fn run(client: &Client, job: &Job) -> Result<JobSummary, JobError> {
    let mut summary = JobSummary::default();
    let started = Instant::now();

    // 1. A project (in the sandbox), a source, and a dataset with one label per topic.
    if job.create_project {
        client
            .create_project()
            .project(&job.project)
            .body_map(|b| b.project(types::ProjectNew::builder().title("Quickstart".to_owned())))
            .send()
            .await?;
    }
    let source = client
        .create_source()
        .project(&job.project)
        .source_name(job.source.as_str())
        .body_map(|b| b.source(types::SourceNew::builder().title("Quickstart inbox".to_owned())))
        .send()
        .await?
        .into_inner()
        .source;
    let label_defs: Vec<types::LabelDefNew> = LABELS
        .iter()
        .map(|name| serde_json::from_value(serde_json::json!({ "name": name })))
        .collect::<Result<_, _>>()?;
    client
        .create_dataset()
        .project(&job.project)
        .dataset_name(&job.dataset)
        .body_map(|b| {
            b.dataset(
                types::DatasetNew::builder()
                    .title("Quickstart triage".to_owned())
                    .source_ids(vec![source.id.clone()])
                    .label_defs(label_defs),
            )
        })
        .send()
        .await?;
    println!(
        "created source {}/{} ({}) and dataset {}/{} with labels {}",
        job.project,
        job.source,
        source.id,
        job.project,
        job.dataset,
        LABELS.join(", ")
    );
    summary.phases.push(("set up", started.elapsed()));

    // 2. Sync the comments: concurrent batches, split on a rejected item.
    let started = Instant::now();
    let bar = progress_bar(job.progress, job.comments as u64, "comments synced");
    let on_progress = bar.clone();
    let options = SyncOptions::default()
        .batch_size(1024)
        .concurrency(4)
        .on_progress(move |p| on_progress.set_position(p.totals.synced + p.totals.failed));
    let comments = futures::stream::iter((0..job.comments).map(comment));
    let report = bulk::sync_comments(client, &job.project, &job.source, comments, options).await;
    bar.finish_and_clear();
    if let Some(error) = &report.stopped {
        return Err(format!("the upload stopped: {error}").into());
    }
    summary.synced = report.synced;
    summary.sync_requests = report.requests;
    println!(
        "synced {} comments ({} new, {} updated, {} unchanged, {} failed) in {} requests",
        report.synced,
        report.counts.new,
        report.counts.updated,
        report.counts.unchanged,
        report.failed,
        report.requests
    );
    summary.phases.push(("sync comments", started.elapsed()));

    // 3. Label a few comments of each topic: the predictions learn from them.
    let started = Instant::now();
    for i in 0..(job.labelled_per_topic * LABELS.len()).min(job.comments) {
        let label = types::ExportedLabel::builder().name(LABELS[i % LABELS.len()].to_owned());
        let group = types::LabellingGroupUpdate::builder()
            .group("default".to_owned())
            .assigned(vec![label.try_into()?]);
        client
            .update_labelling()
            .project(&job.project)
            .dataset_name(&job.dataset)
            .comment_uid(format!("{}.{}", source.id, comment_id(i)))
            .body_map(|b| b.labelling(vec![group.try_into().expect("a labelling group")]))
            .send()
            .await?;
        summary.labelled += 1;
    }
    println!("labelled {} comments", summary.labelled);
    summary.phases.push(("label", started.elapsed()));

    // 4. A stream over the dataset that returns the predictions of the
    // latest model version (the labels made one), with a confidence
    // threshold per label; reset to the start so that it delivers every
    // comment, consumed at least once: each batch is advanced past only
    // after it was handled.
    let started = Instant::now();
    let models = client
        .list_models()
        .project(&job.project)
        .dataset_name(&job.dataset)
        .body_map(|b| b.limit(Some(1)))
        .send()
        .await?
        .into_inner();
    let version = models
        .labellers
        .iter()
        .map(|model| model.version)
        .max()
        .ok_or("no model version yet: label some comments first")?;
    let thresholds = LABELS
        .iter()
        .map(|label| {
            types::LabelThreshold::builder()
                .name(vec![(*label).to_owned()])
                .threshold(Some(PREDICTION_THRESHOLD))
                .try_into()
        })
        .collect::<Result<Vec<types::LabelThreshold>, _>>()?;
    let model = types::StreamModel::builder()
        .version(version)
        .label_thresholds(thresholds);
    client
        .create_stream()
        .project(&job.project)
        .dataset_name(&job.dataset)
        .body_map(|b| {
            b.stream(
                types::StreamNew::builder()
                    .name(job.stream.clone())
                    .title("Quickstart triage".to_owned())
                    .model(Some(model.try_into().expect("a stream model"))),
            )
        })
        .send()
        .await?;
    println!("created stream {} on model version {version}", job.stream);
    client
        .reset_stream()
        .project(&job.project)
        .dataset_name(&job.dataset)
        .stream_name(job.stream.as_str())
        .body_map(|b| b.to_comment_created_at(first_day() - TimeDelta::days(3650)))
        .send()
        .await?;
    let consumer = StreamConsumer::new(client.clone(), &job.project, &job.dataset, &job.stream)
        .batch_size(256);
    let bar = progress_bar(job.progress, job.comments as u64, "comments streamed");
    let mut seen = BTreeSet::new();
    loop {
        let mut batch_stats = (0u64, 0u64, 0u64, Vec::new());
        let step = consumer
            .step(|batch: types::StreamResultsResponse| {
                for result in &batch.results {
                    batch_stats.0 += 1;
                    batch_stats.3.push(result.comment.id.clone());
                    if let Some(top) = top_label(result.prediction.as_ref()) {
                        batch_stats.1 += 1;
                        let topic =
                            comment_index(&result.comment.id).map(|i| LABELS[i % LABELS.len()]);
                        if topic == Some(top.as_str()) {
                            batch_stats.2 += 1;
                        }
                    }
                }
                async { Ok(()) }
            })
            .await?;
        summary.streamed += batch_stats.0;
        summary.predicted += batch_stats.1;
        summary.predicted_topic += batch_stats.2;
        seen.extend(batch_stats.3);
        bar.set_position(summary.streamed);
        match step {
            Some(Step::Handled { has_more, .. }) => {
                summary.batches += 1;
                if !has_more {
                    break;
                }
            }
            Some(Step::Empty { has_more: true, .. }) => continue,
            _ => break,
        }
    }
    bar.finish_and_clear();
    summary.streamed_distinct = seen.len();
    println!(
        "streamed {} comments in {} batches; {} with predictions, {} of them topped by their topic's label",
        summary.streamed, summary.batches, summary.predicted, summary.predicted_topic
    );
    summary.phases.push(("consume stream", started.elapsed()));

    // 5. Export the dataset over 8 time windows, 4 at a time.
    let started = Instant::now();
    let mut walk = client
        .export_dataset()
        .project(&job.project)
        .dataset_name(&job.dataset)
        .body_map(|body| {
            body.from(first_day())
                .to(first_day() + TimeDelta::days(SPAN_DAYS + 1))
                .limit(512)
        })
        .into_parallel()
        .windows(8)
        .concurrency(4)
        .start()?;
    let mut exported = BTreeSet::new();
    while let Some(item) = walk.try_next().await? {
        summary.exported += 1;
        exported.insert(item.comment.id);
    }
    summary.exported_distinct = exported.len();
    println!(
        "exported {} comments ({} distinct) in {} pages",
        summary.exported,
        summary.exported_distinct,
        walk.pages_fetched()
    );
    summary.phases.push(("export", started.elapsed()));
    Ok(summary)
}

/// The most confident predicted label of a stream result, if any.
fn top_label(prediction: Option<&types::StreamCommentPrediction>) -> Option<String> {
    prediction?
        .taxonomies
        .iter()
        .flat_map(|t| t.labels.iter())
        .max_by(|a, b| confidence(a).total_cmp(&confidence(b)))
        .map(|label| label.name.clone())
}

fn confidence(label: &types::StreamLabelPrediction) -> f64 {
    label
        .occurrence_confidence
        .as_ref()
        .and_then(|c| c.value)
        .unwrap_or(0.0)
}

fn progress_bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Read-only: what the caller can see. For a tenant without `--allow-writes`.
pub async fn look_around(client: &Client) -> Result<(), JobError> {
    let datasets = client.list_datasets().send().await?;
    println!("{} datasets:", datasets.datasets.len());
    for dataset in &datasets.datasets {
        println!("  {}/{}: {}", dataset.owner, dataset.name, dataset.title);
    }
    let sources = client.list_sources().send().await?;
    println!("{} sources:", sources.sources.len());
    for source in sources.sources.iter().take(20) {
        println!("  {}/{} ({})", source.owner, source.name, source.id);
    }
    Ok(())
}
