//! Consumes a stream at least once until Ctrl-C: prints each comment with
//! its predicted labels, tags the comments it cannot handle as exceptions,
//! and advances the stream only after a batch was handled.
//!
//! ```sh
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ REINFER_TOKEN=... \
//! CM_PROJECT=acme CM_DATASET=triage CM_STREAM=refunds \
//!     cargo run -p cm-api --example consume_stream
//! ```

use std::process::ExitCode;
use std::time::Duration;

use cm_api::Client;
use cm_api::stream_consumer::{HandlerError, OnHandlerError, StreamConsumer};
use cm_api::types::StreamResultsResponse;

#[tokio::main]
async fn main() -> ExitCode {
    let vars = ["CM_PROJECT", "CM_DATASET", "CM_STREAM"].map(std::env::var);
    let [Ok(project), Ok(dataset), Ok(stream)] = vars else {
        eprintln!(
            "set CM_PROJECT, CM_DATASET and CM_STREAM (and REINFER_ENDPOINT / REINFER_TOKEN)"
        );
        return ExitCode::FAILURE;
    };
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let consumer = consumer(client, &project, &dataset, &stream);

    // Ctrl-C: finish the batch in hand, advance past it, then stop.
    let shutdown = consumer.shutdown_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the current batch...");
            shutdown.cancel();
        }
    });

    match consumer.run(handle).await {
        Ok(summary) => {
            eprintln!(
                "{} comments in {} batches, {} exceptions",
                summary.comments, summary.batches, summary.exceptions
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("stopped: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The stream's consumer: batches of 16, a 10 s wait when the stream is
/// drained, failures tagged as exceptions.
pub fn consumer(client: Client, project: &str, dataset: &str, stream: &str) -> StreamConsumer {
    StreamConsumer::new(client, project, dataset, stream)
        .batch_size(16)
        .idle_wait(Duration::from_secs(10))
        .on_handler_error(OnHandlerError::tag_exceptions("Example Consumer Failure"))
}

/// Prints each comment's labels; a comment without any prediction is a
/// failure, tagged as an exception by the consumer.
pub async fn handle(batch: StreamResultsResponse) -> Result<(), HandlerError> {
    let mut unpredicted = Vec::new();
    for result in &batch.results {
        match &result.prediction {
            Some(prediction) => {
                let labels: Vec<&str> = prediction
                    .taxonomies
                    .iter()
                    .flat_map(|t| t.labels.iter().map(|l| l.name.as_str()))
                    .collect();
                println!("{}\t{}", result.comment.uid, labels.join(", "));
            }
            None => unpredicted.push(result.comment.uid.clone()),
        }
    }
    if unpredicted.is_empty() {
        Ok(())
    } else {
        Err(HandlerError::for_comments(unpredicted, "no prediction"))
    }
}
