//! Lists the datasets visible to the caller, authenticating with either a
//! developer API token or the client credentials of an external application.
//!
//! ```sh
//! # A developer API token:
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ \
//! REINFER_TOKEN=... cargo run -p cm-api --example quickstart
//!
//! # Client credentials (the token URL is derived from a UiPath endpoint):
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ \
//! CM_CLIENT_ID=... CM_CLIENT_SECRET=... cargo run -p cm-api --example quickstart
//! ```

use std::process::ExitCode;

use cm_api::{Client, ClientCredentials, Endpoint};

#[tokio::main]
async fn main() -> ExitCode {
    let client = match build_client() {
        Ok(client) => client,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match client.datasets().list().await {
        Ok(datasets) => {
            println!(
                "{} datasets (server time {:?}, {} attempt(s))",
                datasets.len(),
                datasets.server_timing().total(),
                datasets.attempts()
            );
            for dataset in datasets.iter() {
                println!("  {}/{}: {}", dataset.owner, dataset.name, dataset.title);
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn build_client() -> Result<Client, String> {
    // Client credentials when both variables are set, explicitly in code...
    if let (Ok(id), Ok(secret)) = (
        std::env::var("CM_CLIENT_ID"),
        std::env::var("CM_CLIENT_SECRET"),
    ) {
        let endpoint = std::env::var("REINFER_ENDPOINT")
            .map_err(|_| "set REINFER_ENDPOINT to your tenant's URL".to_owned())?;
        let endpoint = Endpoint::parse(&endpoint).map_err(|e| e.to_string())?;
        return Client::builder()
            .endpoint(endpoint)
            .client_credentials(ClientCredentials::new(id, secret))
            .build()
            .map_err(|e| e.to_string());
    }
    // ...otherwise everything from REINFER_ENDPOINT / REINFER_TOKEN or a profile.
    Client::from_env().map_err(|e| {
        format!(
            "{e}\n(set REINFER_ENDPOINT and REINFER_TOKEN, or CM_CLIENT_ID and CM_CLIENT_SECRET)"
        )
    })
}
