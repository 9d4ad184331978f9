//! The command line: global options and every command but `cm api`'s
//! operations, which `api.rs` adds from the spec's table.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// The whole command line: the derived commands, with `cm api`'s
/// operation subcommands added.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("api", |api| api.subcommands(crate::api::subcommands()))
}

/// A command line for the UiPath Communications Mining API.
///
/// Credentials come from the context (`cm config`), or from
/// REINFER_TOKEN (a developer API token) or REINFER_CLIENT_ID and
/// REINFER_CLIENT_SECRET (client credentials); the endpoint from
/// `--endpoint`, the context or REINFER_ENDPOINT. Without a token,
/// cm asks for one when run in a terminal, without echoing it.
#[derive(Debug, Parser)]
#[command(name = "cm", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The API's base URL, e.g. https://cloud.uipath.com/<org>/<tenant>/reinfer_
    /// or https://<domain>.reinfer.io [default: the context's, else $REINFER_ENDPOINT]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The context to use (a profile of the config file) [default: the current one,
    /// else $REINFER_PROFILE]
    #[arg(long, short = 'c', global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The config file [default: $CM_API_CONFIG, else cm-api's, e.g.
    /// ~/.config/cm-api/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format [default: table for resources, json for `cm api`; comments
    /// and stream results are always JSON lines]
    #[arg(long, short = 'o', global = true, value_enum)]
    pub output: Option<Format>,
    /// Log what cm does on stderr (-v info, -vv debug, -vvv trace)
    #[arg(long, short = 'v', global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    Table,
    /// One JSON document (pretty-printed).
    Json,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call any operation of the API by its id, printing the JSON answer
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Api(ApiArgs),
    /// List resources, or read comments as JSON lines
    #[command(subcommand)]
    Get(Get),
    /// Export a dataset's comments (with labels and predictions) as JSON lines
    Export(ExportArgs),
    /// Create resources, or upload comments and emails in bulk
    #[command(subcommand)]
    Create(Create),
    /// Delete resources
    #[command(subcommand)]
    Delete(Delete),
    /// Consume streams
    #[command(subcommand)]
    Stream(Stream),
    /// Manage contexts: endpoints and where their credentials come from
    #[command(subcommand)]
    Config(Config),
    /// Print a shell completion script, e.g. `cm completions bash > /etc/bash_completion.d/cm`
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The operations are added from the spec (`api.rs`).
#[derive(Debug, Args)]
pub struct ApiArgs {}

#[derive(Debug, Subcommand)]
pub enum Get {
    /// A source's comments as JSON lines (`--dataset` for label and review filters)
    Comments(GetCommentsArgs),
    /// Sources, of one project or all
    Sources {
        /// Only this project's
        project: Option<String>,
    },
    /// Datasets, of one project or all
    Datasets {
        /// Only this project's
        project: Option<String>,
    },
    /// Projects
    Projects,
    /// Buckets, of one project or all
    Buckets {
        /// Only this project's
        project: Option<String>,
    },
    /// A dataset's streams
    Streams {
        /// The dataset, as project/dataset
        dataset: String,
    },
    /// Users
    Users,
    /// Quotas: limits and usage
    Quotas,
    /// Audit events, newest first
    AuditEvents {
        /// Only events at or after this instant (RFC 3339)
        #[arg(long, value_name = "TIME")]
        from: Option<DateTime<Utc>>,
        /// Only events before this instant (RFC 3339)
        #[arg(long, value_name = "TIME")]
        to: Option<DateTime<Utc>>,
    },
}

/// Filters shared by `cm get comments` and `cm export`.
#[derive(Clone, Debug, Args)]
pub struct CommentFilters {
    /// Only comments at or after this instant (RFC 3339)
    #[arg(long = "from", alias = "from-timestamp", value_name = "TIME")]
    pub from: Option<DateTime<Utc>>,
    /// Only comments before this instant (RFC 3339) [default with --parallel: now]
    #[arg(long = "to", alias = "to-timestamp", value_name = "TIME")]
    pub to: Option<DateTime<Utc>>,
    /// Only comments with this user property value (KEY=VALUE, e.g.
    /// 'string:Country=France'); repeat for several (all must match)
    #[arg(long = "user-property", short = 'p', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub user_properties: Vec<(String, String)>,
    /// Read this many time windows at once (needs --from)
    #[arg(long, value_name = "N", requires = "from", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: Option<u16>,
    /// Comments per request [default: the server's]; fewer, larger pages are
    /// fewer round trips
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub page_size: Option<i64>,
    /// Stop after this many comments
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

/// Filters that need a dataset (its labellings).
#[derive(Clone, Debug, Args)]
pub struct LabelFilters {
    /// Only reviewed comments (those the dataset's export gives labels for)
    #[arg(long)]
    pub reviewed_only: bool,
    /// Only comments with this label assigned (or a label under it, `Parent > Child`);
    /// repeat for any of several
    #[arg(long = "label", short = 'l', value_name = "LABEL")]
    pub labels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GetCommentsArgs {
    /// The source, as project/source
    pub source: String,
    /// Read the comments through this dataset's export (project/dataset), with its
    /// labels and predictions; needed for --reviewed-only and --label
    #[arg(long, short = 'd', value_name = "PROJECT/DATASET")]
    pub dataset: Option<String>,
    #[command(flatten)]
    pub filters: CommentFilters,
    #[command(flatten)]
    pub labels: LabelFilters,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The dataset, as project/dataset
    pub dataset: String,
    /// Only comments of this source id; repeat for several
    #[arg(long = "source-id", value_name = "ID")]
    pub source_ids: Vec<String>,
    #[command(flatten)]
    pub filters: CommentFilters,
    #[command(flatten)]
    pub labels: LabelFilters,
}

#[derive(Debug, Subcommand)]
pub enum Create {
    /// Upload comments (JSON lines of CommentNew) to a source, in concurrent batches;
    /// existing ids are updated
    Comments(UploadArgs),
    /// Upload emails (JSON lines of EmailNew) to a bucket, in concurrent batches
    Emails(UploadArgs),
    /// Create a project
    Project {
        /// The project's name
        name: String,
        /// Its title
        #[arg(long)]
        title: Option<String>,
        /// Its description
        #[arg(long)]
        description: Option<String>,
    },
    /// Create a source
    Source {
        /// The source, as project/source
        source: String,
        /// Its title
        #[arg(long)]
        title: Option<String>,
        /// Its description
        #[arg(long)]
        description: Option<String>,
        /// Its language (e.g. en)
        #[arg(long)]
        language: Option<String>,
        /// Its kind (e.g. call, chat, unknown)
        #[arg(long)]
        kind: Option<String>,
        /// The bucket (id) it syncs emails from
        #[arg(long)]
        bucket_id: Option<String>,
    },
    /// Create a dataset on sources
    Dataset {
        /// The dataset, as project/dataset
        dataset: String,
        /// A source it reads, as project/source; repeat for several
        #[arg(long = "source", short = 's', value_name = "PROJECT/SOURCE")]
        sources: Vec<String>,
        /// Its title
        #[arg(long)]
        title: Option<String>,
        /// Its description
        #[arg(long)]
        description: Option<String>,
        /// Whether it models sentiment
        #[arg(long)]
        has_sentiment: bool,
    },
    /// Create a bucket (of emails)
    Bucket {
        /// The bucket, as project/bucket
        bucket: String,
        /// Its title
        #[arg(long)]
        title: Option<String>,
    },
    /// Create a stream on a dataset
    Stream {
        /// The stream, as project/dataset/stream
        stream: String,
        /// Its title
        #[arg(long)]
        title: Option<String>,
        /// Its description
        #[arg(long)]
        description: Option<String>,
        /// The model version whose predictions it carries
        #[arg(long, value_name = "N")]
        model_version: Option<i64>,
    },
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The target: a source (project/source) for comments, a bucket
    /// (project/bucket) for emails
    pub target: String,
    /// The JSON lines to upload [default: stdin]
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Items per request (at most 16384)
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub batch_size: u32,
    /// Requests in flight at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Ask the server not to charge AI units (honoured for some accounts only)
    #[arg(long, short = 'n')]
    pub no_charge: bool,
    /// Where to copy the input lines not stored (rejected, invalid, or not sent
    /// because the upload stopped), to feed back in with -f [default:
    /// <FILE>.failed.jsonl, or cm-failed.jsonl for stdin]
    #[arg(long, value_name = "FILE")]
    pub failed: Option<PathBuf>,
    /// No progress bar (there is none when stderr is not a terminal)
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum Delete {
    /// Delete a project (it must be empty)
    Project {
        /// The project's name
        name: String,
    },
    /// Delete a source and its comments
    Source {
        /// The source, as project/source
        source: String,
    },
    /// Delete a dataset
    Dataset {
        /// The dataset, as project/dataset
        dataset: String,
    },
    /// Delete a bucket and its emails
    Bucket {
        /// The bucket, as project/bucket
        bucket: String,
    },
    /// Delete a stream
    Stream {
        /// The stream, as project/dataset/stream
        stream: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Stream {
    /// Print a stream's results as JSON lines, advancing past each batch only
    /// after it was written (at least once); stops on Ctrl-C
    Listen(ListenArgs),
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The stream, as project/dataset/stream
    pub stream: String,
    /// Comments per batch
    #[arg(long, default_value_t = 64)]
    pub batch_size: u32,
    /// Stop once the stream has no more results, instead of waiting for more
    #[arg(long)]
    pub until_empty: bool,
}

#[derive(Debug, Subcommand)]
pub enum Config {
    /// List the contexts
    #[command(alias = "ls")]
    List,
    /// Add a context, or replace one of the same name
    Add(AddContext),
    /// Make a context the current one
    Use {
        /// The context's name
        name: String,
    },
    /// Remove a context
    #[command(alias = "rm")]
    Remove {
        /// The context's name
        name: String,
    },
    /// Import the contexts of the `re` command line (its contexts.json)
    ImportRe {
        /// re's contexts file [default: ~/.config/reinfer/contexts.json]
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the config file's path
    Path,
}

#[derive(Debug, Args)]
pub struct AddContext {
    /// The context's name
    pub name: String,
    /// The API's base URL
    #[arg(long, required = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The environment variable holding its developer API token [default: REINFER_TOKEN]
    #[arg(long, value_name = "VAR", conflicts_with_all = ["client_id", "client_secret_env"])]
    pub token_env: Option<String>,
    /// Its client id (client credentials)
    #[arg(long, value_name = "ID", requires = "client_secret_env")]
    pub client_id: Option<String>,
    /// The environment variable holding its client secret
    #[arg(long, value_name = "VAR", requires = "client_id")]
    pub client_secret_env: Option<String>,
    /// The project commands use when given none
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Make it the current context
    #[arg(long = "use")]
    pub make_current: bool,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    if key.is_empty() {
        return Err("the key is empty".to_owned());
    }
    Ok((key.to_owned(), value.to_owned()))
}
