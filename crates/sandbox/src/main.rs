//! `cargo run -p cm-sandbox -- --port 8080`: a sandbox on loopback, until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: cm-sandbox [--port PORT]   (default port 8080; 0 picks a free one)";

fn port(args: &[String]) -> Result<u16, String> {
    match args {
        [] => Ok(8080),
        [flag, value] if flag == "--port" => value
            .parse()
            .map_err(|_| format!("--port: not a port number: {value:?}")),
        [flag] if flag == "--help" || flag == "-h" => Err(String::new()),
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match port(&args) {
        Ok(port) => port,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("cm-sandbox: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sandbox =
        match cm_sandbox::Sandbox::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await {
            Ok(sandbox) => sandbox,
            Err(error) => {
                eprintln!("cm-sandbox: cannot listen on 127.0.0.1:{port}: {error}");
                return ExitCode::FAILURE;
            }
        };
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
