//! `cm api <operation>`: every generated operation of the spec as a
//! command, built at run time from the table that `cargo xtask codegen`
//! writes (`generated/operations.rs`), and sent with
//! [`Client::untyped`](cm_api::Client::untyped), which prints the answer
//! exactly as the server sent it. The internal tier's operations are there
//! with the `unstable` feature, as in cm-api. The resource commands find
//! their routes here too ([`call`]), so no path is written twice.

use std::io::Read;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgGroup, ArgMatches, Command};
use cm_api::http::Method;
use cm_api::{Client, UntypedCall};

use crate::cli::{Format, Global};
use crate::exit::Failure;

#[rustfmt::skip]
#[path = "generated/operations.rs"]
mod generated;

/// One operation of the spec.
pub struct Op {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub internal: bool,
    pub params: &'static [Param],
    pub body: Body,
}

/// One path or query parameter.
pub struct Param {
    pub name: &'static str,
    pub location: Location,
    pub required: bool,
    pub kind: Kind,
    /// A list: the option may be repeated, one query parameter each.
    pub list: bool,
    pub help: &'static str,
}

pub enum Location {
    Path,
    Query,
}

/// The JSON type of a parameter: its value is checked before sending.
pub enum Kind {
    String,
    Integer,
    #[allow(dead_code, reason = "no parameter of today's spec is a number")]
    Number,
    Boolean,
}

pub enum Body {
    None,
    Json { required: bool },
}

/// The operations `cm api` offers: the internal tier's only with `unstable`.
pub fn operations() -> impl Iterator<Item = &'static Op> {
    generated::OPERATIONS
        .iter()
        .filter(|op| cfg!(feature = "unstable") || !op.internal)
}

fn command_name(id: &str) -> String {
    id.replace('_', "-")
}

/// One subcommand per operation: `get-source` (alias `get_source`).
pub fn subcommands() -> impl Iterator<Item = Command> {
    operations().map(|op| {
        let mut command = Command::new(command_name(op.id))
            .alias(op.id)
            .about(op.summary)
            .long_about(format!("{}\n\n{} {}", op.summary, op.method, op.path));
        for param in op.params {
            let mut arg = Arg::new(param.name)
                .long(command_name(param.name))
                .help(param.help)
                .required(param.required && !param.list)
                .value_name(match param.kind {
                    Kind::String => "STRING",
                    Kind::Integer => "INTEGER",
                    Kind::Number => "NUMBER",
                    Kind::Boolean => "true|false",
                });
            arg = match param.kind {
                Kind::String => arg,
                Kind::Integer => arg.value_parser(|s: &str| {
                    s.parse::<i64>()
                        .map(|_| s.to_owned())
                        .map_err(|e| e.to_string())
                }),
                Kind::Number => arg.value_parser(|s: &str| {
                    s.parse::<f64>()
                        .map(|_| s.to_owned())
                        .map_err(|e| e.to_string())
                }),
                Kind::Boolean => arg.value_parser(["true", "false"]),
            };
            if param.list {
                arg = arg.action(ArgAction::Append).required(param.required);
            }
            command = command.arg(arg);
        }
        if let Body::Json { required } = op.body {
            command = command
                .arg(
                    Arg::new("body")
                        .long("body")
                        .value_name("JSON|-")
                        .help("The JSON body, or - to read it from stdin"),
                )
                .arg(
                    Arg::new("body-file")
                        .long("body-file")
                        .value_name("FILE")
                        .help("Read the JSON body from this file"),
                )
                .group(
                    ArgGroup::new("request-body")
                        .args(["body", "body-file"])
                        .required(required),
                );
        }
        command
    })
}

impl Op {
    /// A call to this operation.
    fn call(&self, client: &Client) -> UntypedCall {
        let method =
            Method::from_bytes(self.method.as_bytes()).expect("the spec's methods are valid");
        client.untyped(self.id, method, self.path)
    }
}

/// A call to operation `id` (which must be in the table).
pub fn call(client: &Client, id: &str) -> UntypedCall {
    generated::OPERATIONS
        .iter()
        .find(|op| op.id == id)
        .unwrap_or_else(|| panic!("operation {id} is not in the spec"))
        .call(client)
}

/// Runs the operation `matches` names and prints its JSON answer.
pub async fn run(
    client: &Client,
    global: &Global,
    matches: &ArgMatches,
) -> Result<ExitCode, Failure> {
    let (name, args) = matches
        .subcommand()
        .ok_or_else(|| Failure::usage("name an operation: cm api --help lists them"))?;
    let op = operations()
        .find(|op| command_name(op.id) == name)
        .ok_or_else(|| Failure::usage(format!("no operation {name}")))?;
    let mut call = op.call(client);
    for param in op.params {
        for value in args.get_many::<String>(param.name).into_iter().flatten() {
            call = match param.location {
                Location::Path => call.path_param(param.name, value),
                Location::Query => call.query(param.name, value),
            };
        }
    }
    if let Some(body) = body(args)? {
        call = call.body(body);
    }
    let answer = call.send().await?;
    crate::output::print_json(answer.value(), global.output.unwrap_or(Format::Json))?;
    Ok(ExitCode::SUCCESS)
}

/// The body from `--body` (text, or `-` for stdin) or `--body-file`, which
/// must be JSON: anything else is refused before sending.
fn body(args: &ArgMatches) -> Result<Option<serde_json::Value>, Failure> {
    let (text, origin) = if let Ok(Some(path)) = args.try_get_one::<String>("body-file") {
        let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))?;
        (text, path.clone())
    } else if let Ok(Some(body)) = args.try_get_one::<String>("body") {
        if body == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::io("cannot read the body from stdin", e))?;
            (text, "stdin".to_owned())
        } else {
            (body.clone(), "--body".to_owned())
        }
    } else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Failure::usage(format!("the body from {origin} is not JSON: {e}")))
}
