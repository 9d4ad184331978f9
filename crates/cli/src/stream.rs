//! `cm stream listen`: cm-api's at-least-once [`StreamConsumer`]. Each
//! result is written to stdout as a JSON line and flushed before the
//! consumer advances the stream past its batch: a result the server
//! forgets has left cm. A failed write (a closed pipe) stops cm without
//! advancing, so that batch is fetched again next time.

use std::process::ExitCode;

use cm_api::StreamConsumer;
use cm_api::stream_consumer::{HandlerError, OnHandlerError, Step};

use crate::cli::{Global, ListenArgs, Stream};
use crate::exit::Failure;
use crate::output::JsonLines;
use crate::resources::split;

/// `cm stream ...`.
pub async fn run(global: &Global, command: Stream) -> Result<ExitCode, Failure> {
    match command {
        Stream::Listen(args) => listen(global, args).await,
    }
}

async fn listen(global: &Global, args: ListenArgs) -> Result<ExitCode, Failure> {
    let [project, dataset, stream] = split::<3>(&args.stream, "the stream")?;
    let client = crate::context::client(global)?;
    let consumer = StreamConsumer::new(client, &project, &dataset, &stream)
        .batch_size(args.batch_size)
        // A result that could not be written is not tagged and skipped:
        // cm stops, and the batch is fetched again.
        .on_handler_error(OnHandlerError::Stop)
        .shutdown(crate::ctrl_c_token());
    let out = std::sync::Mutex::new(JsonLines::new());
    let write = |batch: cm_api::types::StreamResultsResponse| {
        let written = (|| {
            let mut out = out.lock().expect("stdout");
            for result in &batch.results {
                out.write(result)?;
            }
            out.flush()
        })();
        async move { written.map_err(|f| HandlerError::new(f.message)) }
    };
    if args.until_empty {
        let mut comments = 0;
        loop {
            match consumer.step(write).await? {
                Some(Step::Handled {
                    comments: n,
                    has_more,
                    ..
                }) => {
                    comments += n;
                    if !has_more {
                        break;
                    }
                }
                Some(Step::Empty { has_more: true, .. }) => {}
                _ => break,
            }
        }
        eprintln!("{comments} results");
    } else {
        let summary = consumer.run(write).await?;
        eprintln!(
            "{} results in {} batches",
            summary.comments, summary.batches
        );
    }
    Ok(ExitCode::SUCCESS)
}
