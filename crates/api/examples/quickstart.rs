//! Lists the datasets visible to the caller, then reads one source,
//! authenticating with either a developer API token or the client
//! credentials of an external application, from the same environment
//! variables the crate reads (`cm_api::config`).
//!
//! ```sh
//! # A developer API token:
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ \
//! REINFER_TOKEN=... cargo run -p cm-api --example quickstart
//!
//! # Client credentials (the token URL is derived from a UiPath endpoint):
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ \
//! REINFER_CLIENT_ID=... REINFER_CLIENT_SECRET=... cargo run -p cm-api --example quickstart
//!
//! # Optionally, a source to read: project/source_name
//! CM_EXAMPLE_SOURCE=acme/inbox cargo run -p cm-api --example quickstart
//! ```

use std::process::ExitCode;

use cm_api::Client;
use cm_api::config::{CLIENT_ID_ENV, CLIENT_SECRET_ENV, ENDPOINT_ENV, TOKEN_ENV};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            if matches!(err, cm_api::Error::Config(_)) {
                eprintln!(
                    "(set {ENDPOINT_ENV} and {TOKEN_ENV}, or {ENDPOINT_ENV}, {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV})"
                );
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), cm_api::Error> {
    // Endpoint and credentials from REINFER_ENDPOINT with REINFER_TOKEN or
    // REINFER_CLIENT_ID / REINFER_CLIENT_SECRET, or a profile.
    let client = Client::from_env()?;

    let datasets = client.list_datasets().send().await?;
    println!(
        "{} datasets (server time {:?}, {} attempt(s), request id {:?})",
        datasets.datasets.len(),
        datasets.server_timing().total(),
        datasets.attempts(),
        datasets.request_id(),
    );
    for dataset in &datasets.datasets {
        println!("  {}/{}: {}", dataset.owner, dataset.name, dataset.title);
    }

    if let Ok(source) = std::env::var("CM_EXAMPLE_SOURCE") {
        let (project, name) = source.split_once('/').unwrap_or(("", &source));
        let source = client
            .get_source()
            .project(project)
            .source_name(name)
            .send()
            .await?;
        println!("source {} ({})", source.source.name, source.source.id);
    }
    Ok(())
}
