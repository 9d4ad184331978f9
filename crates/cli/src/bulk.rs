//! `cm create comments` and `cm create emails`: JSON lines from a file or
//! stdin, uploaded with cm-api's bulk job (`cm_api::bulk`: concurrent
//! batches, bisection of rejected batches, per-item accounting), with a
//! progress bar on stderr.
//!
//! Nothing is lost silently: every input line that is not known to be
//! stored (a line that is not a valid item, an item the server rejected,
//! an item not sent because the job stopped, a line not read yet) is
//! copied, as it was, to the report file, which can be fed back in with
//! `-f`. The exit status is 6 when the report is not empty.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use cm_api::bulk::{self, BulkItem, SyncCounts, SyncEvent, SyncOptions, SyncTarget};
use cm_api::{Client, Error, types};
use futures::future::BoxFuture;
use futures::stream::{self, Stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::api::call;
use crate::cli::{Global, UploadArgs};
use crate::exit::{Failure, code, one_line};
use crate::resources::split;

/// `cm create comments <project/source>`.
pub async fn comments(global: &Global, args: UploadArgs) -> Result<ExitCode, Failure> {
    let [project, source] = split::<2>(&args.target, "the source")?;
    let client = crate::context::client(global)?;
    let target = bulk::CommentsTarget::new(&client, &project, &source).no_charge(args.no_charge);
    upload::<types::CommentNew, _>(&target, &args, "comments", SyncOptions::default()).await
}

/// `cm create emails <project/bucket>`.
pub async fn emails(global: &Global, args: UploadArgs) -> Result<ExitCode, Failure> {
    let [project, bucket] = split::<2>(&args.target, "the bucket")?;
    let client = crate::context::client(global)?;
    let target = EmailsTarget {
        client,
        project,
        bucket,
        no_charge: args.no_charge,
    };
    // Adding an email is not known to be an upsert that takes an empty
    // list, which a probe needs.
    upload::<Email, _>(
        &target,
        &args,
        "emails",
        SyncOptions::default().probes(false),
    )
    .await
}

/// An email of `add_bucket_emails`, named by its id in the report.
struct Email(types::EmailNew);

impl BulkItem for Email {
    fn item_id(&self) -> Option<&str> {
        Some(&self.0.id)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        types::EmailNew::deserialize(d).map(Email)
    }
}

/// `add_bucket_emails` into one bucket.
struct EmailsTarget {
    client: Client,
    project: String,
    bucket: String,
    no_charge: bool,
}

impl SyncTarget<Email> for EmailsTarget {
    fn sync<'a>(&'a self, items: &'a [Email]) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            let emails: Vec<&types::EmailNew> = items.iter().map(|e| &e.0).collect();
            let mut request = call(&self.client, "add_bucket_emails")
                .path_param("project", &self.project)
                .path_param("bucket_name", &self.bucket)
                .body(json!({ "emails": emails }));
            if self.no_charge {
                request = request.query("no_charge", "true");
            }
            request.send().await?;
            // The answer has no counts: every email is counted as new.
            Ok(SyncCounts::new(items.len() as u64, 0, 0))
        })
    }
}

/// The input: its lines, and which item came from which line.
#[derive(Default)]
struct Ledger {
    /// The line (from 0) of each item, by item index.
    item_lines: Vec<u64>,
    /// Items stored, by item index.
    synced: HashSet<u64>,
    /// Lines that are not items, with why.
    invalid: Vec<(u64, String)>,
    /// The lines read, kept only for stdin (a file is read again).
    kept: Option<Vec<String>>,
}

async fn upload<T, S>(
    target: &S,
    args: &UploadArgs,
    noun: &str,
    options: SyncOptions,
) -> Result<ExitCode, Failure>
where
    T: BulkItem + DeserializeOwned,
    S: SyncTarget<T>,
{
    let (reader, total): (Box<dyn AsyncRead + Send + Unpin>, Option<u64>) = match &args.file {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Failure::io(path.display(), e))?;
            (Box::new(file), count_lines(path).ok())
        }
        None => (Box::new(tokio::io::stdin()), None),
    };
    let ledger = Arc::new(Mutex::new(Ledger {
        kept: args.file.is_none().then(Vec::new),
        ..Ledger::default()
    }));
    let failed_path = args.failed.clone().unwrap_or_else(|| match &args.file {
        Some(path) => PathBuf::from(format!("{}.failed.jsonl", path.display())),
        None => PathBuf::from("cm-failed.jsonl"),
    });
    if let Some(input) = &args.file
        && same_file(input, &failed_path)
    {
        return Err(Failure::usage(format!(
            "--failed {} is the input file: the report would overwrite it",
            failed_path.display()
        )));
    }
    let bar = progress_bar(total, args.no_progress, noun);
    let on_progress = {
        let ledger = ledger.clone();
        let bar = bar.clone();
        move |p: &bulk::Progress<'_>| {
            if let SyncEvent::Synced { items, .. } = &p.event {
                let mut ledger = ledger.lock().expect("ledger");
                ledger.synced.extend(items.iter().map(|k| k.index));
            }
            let t = p.totals;
            bar.set_position(t.synced + t.failed);
            bar.set_message(format!("{} failed, {} requests", t.failed, t.requests));
        }
    };
    let options = options
        // Ctrl-C stops reading and sending; what was read and not stored
        // still goes to the report.
        .cancel(crate::ctrl_c_token())
        .batch_size(args.batch_size as usize)
        .concurrency(args.concurrency as usize)
        .on_progress(on_progress);
    let items = items::<T>(reader, ledger.clone());
    let report = bulk::sync_with(target, items, options).await;
    bar.finish_and_clear();

    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    let left = write_report(&ledger, args.file.as_deref(), &failed_path)?;

    eprintln!(
        "synced {} {noun} ({} new, {} updated, {} unchanged) in {} requests; {} failed, {} not sent, {} invalid lines",
        report.synced,
        report.counts.new,
        report.counts.updated,
        report.counts.unchanged,
        report.requests,
        report.failed,
        report.not_attempted,
        ledger.invalid.len(),
    );
    for (line, why) in ledger.invalid.iter().take(10) {
        eprintln!("  line {}: {why}", line + 1);
    }
    for failure in report.failures.iter().take(10) {
        let line = ledger
            .item_lines
            .get(failure.item.index as usize)
            .copied()
            .unwrap_or(0);
        eprintln!(
            "  line {} ({}): {}",
            line + 1,
            failure.item.id.as_deref().unwrap_or("no id"),
            one_line(failure.error.as_ref())
        );
    }
    if left > 0 {
        eprintln!("{left} lines not stored are in {}", failed_path.display());
    }
    if let Some(error) = &report.stopped {
        return Err(Failure {
            code: crate::exit::code_of(error),
            message: format!("the upload stopped: {}", one_line(error.as_ref())),
        });
    }
    if report.cancelled {
        return Err(Failure {
            code: code::PARTIAL,
            message: "the upload was cancelled".to_owned(),
        });
    }
    Ok(if left > 0 {
        ExitCode::from(code::PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// The items of `reader`'s lines; blank lines are skipped, lines that are
/// not a `T` are recorded in the ledger.
fn items<T: DeserializeOwned + Send + 'static>(
    reader: Box<dyn AsyncRead + Send + Unpin>,
    ledger: Arc<Mutex<Ledger>>,
) -> impl Stream<Item = T> + Send {
    let lines = BufReader::with_capacity(1 << 16, reader).lines();
    stream::unfold(
        (lines, 0u64, ledger),
        |(mut lines, mut number, ledger)| async move {
            loop {
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) => return None,
                    Err(e) => {
                        ledger
                            .lock()
                            .expect("ledger")
                            .invalid
                            .push((number, format!("cannot read: {e}")));
                        return None;
                    }
                };
                let this = number;
                number += 1;
                let mut book = ledger.lock().expect("ledger");
                if let Some(kept) = &mut book.kept {
                    kept.push(line.clone());
                }
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<T>(&line) {
                    Ok(item) => {
                        book.item_lines.push(this);
                        drop(book);
                        return Some((item, (lines, number, ledger)));
                    }
                    Err(e) => book.invalid.push((this, format!("not a valid item: {e}"))),
                }
            }
        },
    )
}

/// Copies every non-blank input line not known to be stored to `path`
/// (removing a stale report when there is none); returns how many.
fn write_report(ledger: &Ledger, file: Option<&Path>, path: &Path) -> Result<u64, Failure> {
    let stored: HashSet<u64> = ledger
        .synced
        .iter()
        .filter_map(|i| ledger.item_lines.get(*i as usize).copied())
        .collect();
    let lines: Box<dyn Iterator<Item = std::io::Result<String>>> = match (&ledger.kept, file) {
        (Some(kept), _) => Box::new(kept.iter().cloned().map(Ok)),
        (None, Some(file)) => {
            let reader = std::fs::File::open(file).map_err(|e| Failure::io(file.display(), e))?;
            Box::new(std::io::BufRead::lines(std::io::BufReader::new(reader)))
        }
        (None, None) => Box::new(std::iter::empty()),
    };
    let mut out: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut left = 0;
    for (number, line) in lines.enumerate() {
        let line = line.map_err(|e| Failure::io("cannot read the input again", e))?;
        if line.trim().is_empty() || stored.contains(&(number as u64)) {
            continue;
        }
        if out.is_none() {
            let created =
                std::fs::File::create(path).map_err(|e| Failure::io(path.display(), e))?;
            out = Some(std::io::BufWriter::new(created));
        }
        let out = out.as_mut().expect("created");
        writeln!(out, "{line}").map_err(|e| Failure::io(path.display(), e))?;
        left += 1;
    }
    match out {
        Some(mut out) => out.flush().map_err(|e| Failure::io(path.display(), e))?,
        None => match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::io(path.display(), e)),
        },
    }
    Ok(left)
}

/// Whether `a` and `b` name the same file (`b` may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 16];
    let mut lines = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

/// A bar on stderr when it is a terminal (hidden otherwise, or with
/// `--no-progress`), over the input's lines when known.
fn progress_bar(total: Option<u64>, hidden: bool, noun: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {prefix} ({per_sec}, {eta} left) {msg}",
            )
            .expect("template"),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{spinner} {pos} {prefix} ({per_sec}) {msg}")
                .expect("template"),
        ),
    };
    bar.set_prefix(noun.to_owned());
    bar.set_draw_target(if hidden {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    bar
}
