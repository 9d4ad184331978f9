//! The client's main job, end to end, printing what happens: create a
//! source and a dataset, sync 10,000 generated comments with a progress
//! bar, label a few, consume a stream with its predictions and advance it,
//! export the dataset in parallel windows, then print the requests and the
//! server time per operation.
//!
//! ```sh
//! # Offline: an in-process sandbox (cm-sandbox), no credentials needed.
//! cargo run -p cm-api --example quickstart
//!
//! # Against a tenant: read-only (lists datasets and sources) ...
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ \
//! REINFER_TOKEN=... cargo run -p cm-api --example quickstart
//! # ... or the whole job, in an existing project (creates a source, a
//! # dataset and a stream named quickstart-<time>):
//! CM_PROJECT=acme REINFER_ENDPOINT=... REINFER_TOKEN=... \
//!     cargo run -p cm-api --example quickstart -- --allow-writes
//! ```
//!
//! Client credentials work too (`REINFER_CLIENT_ID`, `REINFER_CLIENT_SECRET`),
//! or a profile of the config file (`REINFER_PROFILE`), as for
//! `cm_api::Client::from_env`. `--comments N` changes the count.

mod job;
mod stats;

use std::process::ExitCode;
use std::time::Instant;

use cm_api::config::{CLIENT_ID_ENV, ENDPOINT_ENV, PROFILE_ENV, TOKEN_ENV};
use cm_api::{Client, Endpoint};
use tracing_subscriber::layer::SubscriberExt;

use crate::job::{Job, JobError};
use crate::stats::Stats;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let allow_writes = args.iter().any(|a| a == "--allow-writes");
    let comments = match args.iter().position(|a| a == "--comments") {
        Some(i) => match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                eprintln!("usage: quickstart [--allow-writes] [--comments N]");
                return ExitCode::FAILURE;
            }
        },
        None => 10_000,
    };
    // Every call's span feeds the per-operation figures of the summary.
    let stats = Stats::default();
    let subscriber = tracing_subscriber::registry().with(stats.clone());
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("warning: a tracing subscriber was already set; no per-operation figures");
    }

    let started = Instant::now();
    match run(allow_writes, comments).await {
        Ok(()) => {
            print_figures(&stats, started);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(allow_writes: bool, comments: usize) -> Result<(), JobError> {
    let online = [ENDPOINT_ENV, TOKEN_ENV, CLIENT_ID_ENV, PROFILE_ENV]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !online {
        println!("no {ENDPOINT_ENV}: starting an in-process sandbox (cm-sandbox)");
        let sandbox = cm_sandbox::Sandbox::start().await?;
        let client = Client::builder()
            .endpoint(Endpoint::parse(sandbox.base_url())?)
            .token(sandbox.token())
            .build()?;
        let job = Job {
            project: "quickstart".to_owned(),
            create_project: true,
            source: "inbox".to_owned(),
            dataset: "triage".to_owned(),
            stream: "new-mail".to_owned(),
            comments,
            labelled_per_topic: 5,
            progress: true,
        };
        print_summary(&job::run(&client, &job).await?);
        println!("the sandbox answered {} requests", sandbox.request_count());
        return Ok(());
    }

    let client = Client::from_env()?;
    if !allow_writes {
        println!("{ENDPOINT_ENV} is set: read-only (pass --allow-writes to run the whole job)");
        return job::look_around(&client).await;
    }
    let project = std::env::var("CM_PROJECT")
        .map_err(|_| "--allow-writes needs CM_PROJECT, an existing project to write in")?;
    let suffix = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let name = format!("quickstart-{suffix}");
    let job = Job {
        project,
        create_project: false,
        source: name.clone(),
        dataset: name.clone(),
        stream: name,
        comments,
        labelled_per_topic: 5,
        progress: true,
    };
    print_summary(&job::run(&client, &job).await?);
    Ok(())
}

fn print_summary(summary: &job::JobSummary) {
    println!("phases:");
    for (phase, took) in &summary.phases {
        println!("  {phase:<16} {:>9.1} ms", took.as_secs_f64() * 1000.0);
    }
}

fn print_figures(stats: &Stats, started: Instant) {
    let figures = stats.snapshot();
    println!(
        "{:<28} {:>8} {:>9} {:>12} {:>12}",
        "operation", "calls", "attempts", "client ms", "server ms"
    );
    let (mut calls, mut server) = (0, 0.0);
    for (operation, s) in &figures {
        println!(
            "{operation:<28} {:>8} {:>9} {:>12.1} {:>12.1}",
            s.calls, s.attempts, s.client_ms, s.server_ms
        );
        calls += s.calls;
        server += s.server_ms;
    }
    println!(
        "{calls} calls, {server:.1} ms of server time (Server-Timing), {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
