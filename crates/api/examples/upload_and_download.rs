//! Uploads a document to an IXP source, then downloads it again to a file,
//! streaming it to disk.
//!
//! ```sh
//! REINFER_ENDPOINT=https://cloud.uipath.com/acme/DefaultTenant/reinfer_ REINFER_TOKEN=... \
//! CM_SOURCE_ID=18ba5ce699f8da1f CM_FILE=invoice.pdf [CM_CONTENT_TYPE=application/pdf] \
//!     cargo run -p cm-api --example upload_and_download
//! ```
//!
//! The copy is written next to the original as `<file>.downloaded`.

use std::process::ExitCode;

use cm_api::Client;
use cm_api::upload::Upload;

#[tokio::main]
async fn main() -> ExitCode {
    let (Ok(source_id), Ok(file)) = (std::env::var("CM_SOURCE_ID"), std::env::var("CM_FILE"))
    else {
        eprintln!("set CM_SOURCE_ID and CM_FILE (and REINFER_ENDPOINT / REINFER_TOKEN)");
        return ExitCode::FAILURE;
    };
    let content_type =
        std::env::var("CM_CONTENT_TYPE").unwrap_or_else(|_| "application/pdf".to_owned());
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match run(&client, &source_id, &file, &content_type).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Uploads `file` as a document of the source, then downloads it to
/// `<file>.downloaded`; returns the copy's path.
pub async fn run(
    client: &Client,
    source_id: &str,
    file: &str,
    content_type: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let upload = Upload::from_path(file, content_type).await?;
    println!("uploading {} ({} bytes)", upload.file_name(), upload.len());
    let stored = client
        .upload_document()
        .source_id(source_id)
        .file(upload)
        .send()
        .await?;
    println!(
        "stored as comment {} (attachment {:?}), {} attempt(s)",
        stored.comment_id,
        stored.attachment_ref,
        stored.attempts()
    );

    let download = client
        .get_document()
        .source_id(source_id)
        .comment_id(&stored.comment_id)
        .send()
        .await?;
    println!(
        "downloading: {}, {} bytes announced",
        download.content_type().unwrap_or("no content type"),
        download
            .content_length()
            .map_or("no size".to_owned(), |n| n.to_string())
    );
    let copy = format!("{file}.downloaded");
    let written = download.save(&copy).await?;
    println!("wrote {written} bytes to {copy}");
    Ok(copy)
}
