//! `cm create comments` and `cm get comments` of 100,000 comments against
//! cm-sandbox on loopback with 20 ms of added latency on every request,
//! beside a plain loop doing the same job one request at a time (as the
//! vendor's `re` does), all measured in one run and printed as ratios.
//!
//! ```sh
//! cargo bench -p cm-cli --bench cli
//! ```
//!
//! 1. Upload of 100,000 comments from a file: `cm create comments` (1,024
//!    a request, 8 in flight) vs a plain loop of `sync_comments` calls, one
//!    at a time, in batches of 128 (`re create comments`' default) and of
//!    1,024 (cm's), each into a fresh source.
//! 2. Reading them back as JSON lines: `cm get comments` (one page after
//!    the other), `cm get comments --parallel 8` and `--page-size 1024` vs a
//!    plain loop of `list_source_comments` pages of the server's default
//!    size, each comment serialized as a line.
//!
//! `CM_BENCH_COMMENTS=N` changes the number of comments.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cm_api::{Client, Endpoint, types};
use cm_sandbox::{Fault, Sandbox};

const LATENCY: Duration = Duration::from_millis(20);

/// Comment `i` is timestamped `i` seconds after 2026-11-01T00:00:00Z.
fn timestamp(i: usize) -> String {
    format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}Z",
        1 + i / 86_400 % 28,
        i / 3600 % 24,
        i / 60 % 60,
        i % 60,
    )
}

fn comment_line(i: usize) -> String {
    format!(
        "{{\"id\":\"c{i}\",\"timestamp\":\"{}\",\"messages\":[{{\"body\":{{\"text\":\"Hello, where is my refund for order {i}?\"}}}}],\"user_properties\":{{\"string:Country\":\"France\"}}}}\n",
        timestamp(i),
    )
}

async fn cm(sandbox: &Sandbox, args: &[&str]) -> (Duration, std::process::Output) {
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cm"))
        .args(args)
        .env("REINFER_ENDPOINT", sandbox.base_url())
        .env("REINFER_TOKEN", sandbox.token())
        .env("CM_API_CONFIG", "/nonexistent/cm-bench.toml")
        .env_remove("REINFER_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("cm runs");
    assert!(
        out.status.success(),
        "cm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (started.elapsed(), out)
}

/// `re`'s way: one request at a time.
async fn plain_upload(
    client: &Client,
    source: &str,
    path: &std::path::Path,
    batch: usize,
) -> Duration {
    let started = Instant::now();
    let text = std::fs::read_to_string(path).unwrap();
    let comments: Vec<types::CommentNew> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for chunk in comments.chunks(batch) {
        client
            .sync_comments()
            .project("bench")
            .source_name(source)
            .body(types::SyncCommentsRequest {
                comments: chunk.to_vec(),
            })
            .send()
            .await
            .expect("sync_comments");
    }
    started.elapsed()
}

/// Pages one after the other, each comment written as a JSON line.
async fn plain_read(client: &Client, source: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::sink());
    let mut after: Option<String> = None;
    let mut read = 0;
    loop {
        let mut request = client
            .list_source_comments()
            .project("bench")
            .source_name(source);
        if let Some(after) = &after {
            request = request.after(after.clone());
        }
        let page = request
            .send()
            .await
            .expect("list_source_comments")
            .into_inner();
        for comment in &page.comments {
            serde_json::to_writer(&mut out, &serde_json::json!({"comment": comment})).unwrap();
            out.write_all(b"\n").unwrap();
        }
        read += page.comments.len();
        match page.continuation {
            Some(next) if !page.comments.is_empty() => after = Some(next),
            _ => break,
        }
    }
    (started.elapsed(), read)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("CM_BENCH_COMMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let sandbox = Sandbox::builder()
        .validate_responses(false)
        .start()
        .await
        .expect("sandbox");
    let client = Client::builder()
        .env_lookup(|_| None)
        .endpoint(Endpoint::parse(sandbox.base_url()).unwrap())
        .token(sandbox.token())
        .build()
        .unwrap();
    cm(&sandbox, &["create", "project", "bench"]).await;
    for source in ["cm", "plain128", "plain1024"] {
        cm(&sandbox, &["create", "source", &format!("bench/{source}")]).await;
    }
    let dir = std::env::temp_dir().join(format!("cm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("comments.jsonl");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..n {
            file.write_all(comment_line(i).as_bytes()).unwrap();
        }
    }
    sandbox
        .faults()
        .inject(Fault::latency(LATENCY).on_all().always())
        .unwrap();
    println!(
        "{n} comments, {} ms of latency on every request, {} cores",
        LATENCY.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let (cm_upload, out) = cm(
        &sandbox,
        &[
            "create",
            "comments",
            "bench/cm",
            "-f",
            input.to_str().unwrap(),
            "--no-progress",
        ],
    )
    .await;
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.starts_with(&format!("synced {n} comments")),
        "{summary}"
    );
    let plain128 = plain_upload(&client, "plain128", &input, 128).await;
    let plain1024 = plain_upload(&client, "plain1024", &input, 1024).await;
    println!("1. upload");
    println!(
        "   cm create comments (1024 a request, 8 in flight)  {}",
        secs(cm_upload)
    );
    println!(
        "   plain loop, 128 a request (re's default)          {}  ({:.1}x cm)",
        secs(plain128),
        plain128.as_secs_f64() / cm_upload.as_secs_f64()
    );
    println!(
        "   plain loop, 1024 a request                        {}  ({:.1}x cm)",
        secs(plain1024),
        plain1024.as_secs_f64() / cm_upload.as_secs_f64()
    );

    let (cm_read, out) = cm(&sandbox, &["get", "comments", "bench/cm"]).await;
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), n);
    let (cm_parallel, out) = cm(
        &sandbox,
        &[
            "get",
            "comments",
            "bench/cm",
            "--from",
            &timestamp(0),
            "--to",
            &timestamp(n),
            "--parallel",
            "8",
        ],
    )
    .await;
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), n);
    let (cm_large_pages, out) = cm(
        &sandbox,
        &["get", "comments", "bench/cm", "--page-size", "1024"],
    )
    .await;
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), n);
    let (plain, read) = plain_read(&client, "cm").await;
    assert_eq!(read, n);
    println!("2. read back as JSON lines");
    println!(
        "   plain loop of pages                               {}",
        secs(plain)
    );
    println!(
        "   cm get comments                                   {}  ({:.2}x the loop's time)",
        secs(cm_read),
        cm_read.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "   cm get comments --parallel 8                      {}  ({:.1}x faster than the loop)",
        secs(cm_parallel),
        plain.as_secs_f64() / cm_parallel.as_secs_f64()
    );
    println!(
        "   cm get comments --page-size 1024                  {}  ({:.1}x faster than the loop)",
        secs(cm_large_pages),
        plain.as_secs_f64() / cm_large_pages.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
