//! `cm`: a command line for the UiPath Communications Mining API, on
//! [`cm_api`]. See the crate's README for the commands and examples, and
//! `exit.rs` for what the exit status means.

mod api;
mod bulk;
mod cli;
mod comments;
mod context;
mod exit;
mod output;
mod resources;
mod stream;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::exit::Failure;

fn main() -> ExitCode {
    let matches = match cli::command().try_get_matches() {
        Ok(matches) => matches,
        // --help and --version print and exit 0; a usage error exits 2.
        Err(error) => error.exit(),
    };
    let parsed = match Cli::from_arg_matches(&matches) {
        Ok(parsed) => parsed,
        Err(error) => error.format(&mut Cli::command()).exit(),
    };
    init_tracing(parsed.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(&Failure::io("cannot start the runtime", error)),
    };
    match runtime.block_on(run(parsed, &matches)) {
        Ok(code) => code,
        Err(failure) => exit::report(&failure),
    }
}

async fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<ExitCode, Failure> {
    let global = &cli.global;
    match cli.command {
        Command::Api(_) => {
            let (_, api) = matches.subcommand().expect("clap matched `api`");
            api::run(&context::client(global)?, global, api).await
        }
        Command::Get(get) => resources::get(global, get).await,
        Command::Export(args) => comments::export(global, args).await,
        Command::Create(create) => resources::create(global, create).await,
        Command::Delete(delete) => resources::delete(global, delete).await,
        Command::Stream(stream) => stream::run(global, stream).await,
        Command::Config(config) => context::config(global, config),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli::command(), "cm", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A token that Ctrl-C cancels. The jobs that must end cleanly watch it
/// instead of being killed: an upload still writes its report, a stream
/// stops between batches.
fn ctrl_c_token() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                token.cancel();
            }
        }
    });
    token
}

/// `-v` turns on cm-api's and cm's own logs on stderr (info, then debug,
/// then trace). cm-api never logs a token or a header value.
fn init_tracing(verbose: u8) {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbose {
        0 => return,
        1 => Level::INFO,
        2 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let targets = Targets::new()
        .with_target("cm_api", level)
        .with_target("cm", level);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .finish()
        .with(targets)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        crate::cli::command().debug_assert();
    }
}
