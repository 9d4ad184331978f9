//! `cargo run -p cm-sandbox -- --port 8080 [--seed comments.jsonl]`: a
//! sandbox on loopback, until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use cm_sandbox::{Sandbox, Seed};

const USAGE: &str = "usage: cm-sandbox [--port PORT] [--seed FILE]
  --port PORT   listen on 127.0.0.1:PORT (default 8080; 0 picks a free one)
  --seed FILE   load comments from JSON lines, one a line:
                {\"project\": P, \"source\": S, \"comment\": <CommentNew>}";

/// The command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    port: u16,
    seed: Option<String>,
}

/// `Err("")` asks for the usage alone (`--help`).
fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        port: 8080,
        seed: None,
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--port" => {
                let value = rest.next().ok_or("--port: needs a port number")?;
                parsed.port = value
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {value:?}"))?;
            }
            "--seed" => {
                let value = rest.next().ok_or("--seed: needs a file")?;
                parsed.seed = Some(value.clone());
            }
            other => return Err(format!("unexpected argument: {other}")),
        }
    }
    Ok(parsed)
}

/// The seed file's comments; the error names the file and the line.
fn read_seed(path: &str) -> Result<Seed, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--seed {path}: cannot read: {e}"))?;
    Seed::from_json_lines(&text).map_err(|e| format!("--seed {path}: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("cm-sandbox: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seed = match args.seed.as_deref().map(read_seed).transpose() {
        Ok(seed) => seed.unwrap_or_default(),
        Err(message) => {
            eprintln!("cm-sandbox: {message}");
            return ExitCode::FAILURE;
        }
    };
    let seeded = seed.len();
    let port = args.port;
    let sandbox = match Sandbox::builder()
        .addr(SocketAddr::from(([127, 0, 0, 1], port)))
        .seed(seed)
        .start()
        .await
    {
        Ok(sandbox) => sandbox,
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            // A comment the sandbox refuses; the message names its line.
            let file = args.seed.as_deref().unwrap_or_default();
            eprintln!("cm-sandbox: --seed {file}: {error}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("cm-sandbox: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = &args.seed {
        println!("cm-sandbox: seeded {seeded} comment(s) from {file}");
    }
    println!("cm-sandbox listening on {}", sandbox.base_url());
    println!("export REINFER_ENDPOINT={}", sandbox.base_url());
    println!("export REINFER_TOKEN={}", sandbox.token());
    let app = sandbox.client_credentials();
    println!(
        "# OAuth client credentials of the same user: client id {}, secret {}, token URL {}",
        app.client_id,
        app.client_secret,
        sandbox.token_url()
    );
    println!("(state is in memory and lost on exit; Ctrl-C to stop)");
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("cm-sandbox: cannot wait for Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    drop(sandbox);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_in_any_order() {
        assert_eq!(
            parse(&args(&[])).unwrap(),
            Args {
                port: 8080,
                seed: None
            }
        );
        assert_eq!(
            parse(&args(&["--seed", "c.jsonl", "--port", "0"])).unwrap(),
            Args {
                port: 0,
                seed: Some("c.jsonl".into())
            }
        );
        assert!(
            parse(&args(&["--port", "x"]))
                .unwrap_err()
                .contains("not a port")
        );
        assert!(
            parse(&args(&["--seed"]))
                .unwrap_err()
                .contains("needs a file")
        );
        assert!(
            parse(&args(&["--verbose"]))
                .unwrap_err()
                .contains("--verbose")
        );
        assert_eq!(parse(&args(&["-h"])).unwrap_err(), "");
    }

    #[test]
    fn a_seed_file_error_names_the_file_and_line() {
        let path =
            std::env::temp_dir().join(format!("cm-sandbox-seed-{}.jsonl", std::process::id()));
        std::fs::write(
            &path,
            "{\"project\": \"a\", \"source\": \"b\", \"comment\": {\"id\": \"1\"}}\n{oops\n",
        )
        .unwrap();
        let path = path.to_string_lossy().into_owned();
        let error = read_seed(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            error.starts_with(&format!("--seed {path}: line 2: ")),
            "{error}"
        );
        assert!(
            read_seed("/nonexistent/seed.jsonl")
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
