//! Bulk upload, bisection, memory and pagination against a loopback HTTP
//! server that answers every request after a fixed 20 ms.
//!
//! ```sh
//! cargo bench -p cm-api --bench throughput
//! ```
//!
//! Everything is measured in one run and printed with its ratio:
//!
//! 1. `sync_comments` of 100,000 comments in batches of 1,000: 8 batches in
//!    flight vs one at a time (target: at least 4x faster).
//! 2. 10,000 comments of which 1% are rejected: bisection vs retrying a
//!    failed batch one comment at a time (requests and time).
//! 3. Peak heap during the 100,000-comment upload from a lazily generated
//!    input, against the size of the same input held in memory (a counting
//!    global allocator; the in-process server's buffers are included).
//! 4. Walking 100 pages of 256 comments with `ExportDataset::into_stream` vs raw
//!    reqwest + serde_json on the same bodies (target: within 10%).
//! 5. 100,000 comments to a source that rejects every request with the same
//!    422 (a locked source): requests per batch sent (target: at most 4:
//!    the batch, its halves and an empty probe; it was 2n-1 when bisected
//!    down to single items), and how much of the input the job read before
//!    it stopped (3 request-level rejections in a row).
//! 6. Exporting the same 100 pages of 256 comments, spread over a time
//!    range, with `ExportDataset::into_parallel` (8 windows) vs one sequential
//!    walk, every comment checked to come exactly once (target: at least
//!    4x faster). The server honours each window's `from` / `to`.
//! 7. The upload path's own cost: a sequential `sync_comments` of 100,000
//!    comments with no latency, against a raw reqwest + serde_json loop
//!    posting the same batches (target: at most 1.05x). Measured as the CPU
//!    time of the client's thread (the server runs on another), and as
//!    instructions per batch under valgrind's callgrind, which the bench
//!    runs itself when `valgrind` is installed.
//! 8. Bytes on the wire for an export page, with the client's
//!    `Accept-Encoding: gzip` answered compressed, and not.
//! 9. 10,000 comments of which 20 are bad, rejected with a 422 whose
//!    message names no item (`"Invalid request"`): the failures (target:
//!    exactly the 20 bad ones) and the requests, beside the same upload to a
//!    server whose message names the item.
//! 10. `sync_comments` of 100,000 comments (batches of 1,000, 8 in flight)
//!     against the sandbox (`cm-sandbox`, which stores, counts and indexes
//!     every comment), beside the same job against this bench's minimal
//!     server, both without added latency (target: at most 2x), and the
//!     heap the sandbox keeps for those 100,000 comments.
//!
//! `CM_BENCH_ONLY=7` runs figure 7 alone; `CM_BENCH_ONLY=5`, `=9`, `=10`
//! or a list such as `=5,9` run those figures alone.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use cm_api::bulk::{self, CommentsTarget, SyncOptions, SyncTarget};
use cm_api::{Client, Endpoint, types};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LATENCY: Duration = Duration::from_millis(20);
const PAGES: usize = 100;
const PAGE_SIZE: usize = 256;

// ---------------------------------------------------------------------------
// Heap accounting
// ---------------------------------------------------------------------------

struct Counting;

/// Whether allocations are being counted: only inside [`peak_during`], so
/// that the other figures (figure 7 above all, which measures CPU time) do
/// not pay for two threads updating the same counters on every allocation.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed since counting started (negative when
/// more memory from before was freed than allocated).
static CURRENT: AtomicIsize = AtomicIsize::new(0);
/// The highest `CURRENT` since counting started.
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let bytes = bytes as isize;
        let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        CURRENT.fetch_sub(bytes as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its output with the peak heap growth above the
/// heap in use when it started.
async fn peak_during<F: std::future::Future>(f: F) -> (F::Output, usize) {
    CURRENT.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f.await;
    COUNTING.store(false, Ordering::Relaxed);
    (out, PEAK.load(Ordering::Relaxed).max(0) as usize)
}

// ---------------------------------------------------------------------------
// The loopback server
// ---------------------------------------------------------------------------

struct Server {
    /// Added before every answer: [`LATENCY`], or none for figure 7.
    latency_ms: AtomicU64,
    /// Whether to gzip an answer whose request accepts it (figure 8).
    compress: AtomicBool,
    /// Body bytes written, as sent (compressed or not).
    body_bytes: AtomicU64,
    sync_requests: AtomicU64,
    pages: Vec<Bytes>,
    /// The dataset `windowed`: one exported comment per second from
    /// [`WINDOWED_START`], rendered once.
    windowed: Vec<Bytes>,
    windowed_times: Vec<DateTime<Utc>>,
    windowed_requests: AtomicU64,
}

#[derive(serde::Deserialize)]
struct SyncBody {
    comments: Vec<IdOnly>,
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(serde::Deserialize)]
struct PageBody {
    continuation: Option<String>,
}

#[derive(serde::Deserialize)]
struct WindowBody {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<usize>,
    continuation: Option<String>,
}

impl Server {
    /// A server that answers after `latency`, with the pages of the `ds`
    /// export and the `windowed` dataset.
    fn new(
        latency: Duration,
        pages: Vec<Bytes>,
        (windowed, windowed_times): (Vec<Bytes>, Vec<DateTime<Utc>>),
    ) -> Self {
        Self {
            latency_ms: AtomicU64::new(latency.as_millis() as u64),
            compress: AtomicBool::new(false),
            body_bytes: AtomicU64::new(0),
            sync_requests: AtomicU64::new(0),
            pages,
            windowed,
            windowed_times,
            windowed_requests: AtomicU64::new(0),
        }
    }

    fn route(&self, path: &str, body: &[u8]) -> (u16, Bytes) {
        if path.ends_with("/rejected/sync") {
            self.sync_requests.fetch_add(1, Ordering::Relaxed);
            (422, error_body("Source bench/rejected is locked"))
        } else if path.ends_with("/generic/sync") || path.ends_with("/named/sync") {
            // Figure 9: a 422 for any request holding a bad comment, whose
            // message names no item (`generic`) or the first bad one.
            self.sync_requests.fetch_add(1, Ordering::Relaxed);
            let Ok(body) = serde_json::from_slice::<SyncBody>(body) else {
                return (400, error_body("bad json"));
            };
            if let Some(bad) = body.comments.iter().find(|c| c.id.starts_with("bad")) {
                let message = if path.ends_with("/generic/sync") {
                    "Invalid request".to_owned()
                } else {
                    format!("comment {} is invalid", bad.id)
                };
                return (422, error_body(&message));
            }
            let n = body.comments.len();
            let answer = json!({"status": "ok", "new": n, "updated": 0, "updated_properties_only": 0,
                                "updated_text_changed": 0, "unchanged": 0});
            (200, Bytes::from(answer.to_string()))
        } else if path.ends_with("/sync") {
            self.sync_requests.fetch_add(1, Ordering::Relaxed);
            let Ok(body) = serde_json::from_slice::<SyncBody>(body) else {
                return (400, error_body("bad json"));
            };
            // One generic message for every bad comment: bisection must not
            // take two rejected halves for a whole-request rejection.
            if body.comments.iter().any(|c| c.id.starts_with("bad")) {
                return (400, error_body("invalid comment"));
            }
            let n = body.comments.len();
            let answer = json!({"status": "ok", "new": n, "updated": 0, "updated_properties_only": 0,
                                "updated_text_changed": 0, "unchanged": 0});
            (200, Bytes::from(answer.to_string()))
        } else if path.ends_with("/windowed/export") {
            self.windowed_requests.fetch_add(1, Ordering::Relaxed);
            match serde_json::from_slice::<WindowBody>(body) {
                Ok(body) => (200, self.window_page(&body)),
                Err(_) => (400, error_body("bad json")),
            }
        } else if path.ends_with("/export") {
            let page = serde_json::from_slice::<PageBody>(body)
                .ok()
                .and_then(|b| b.continuation)
                .and_then(|c| c.strip_prefix('p').and_then(|i| i.parse::<usize>().ok()))
                .unwrap_or(0);
            match self.pages.get(page) {
                Some(bytes) => (200, bytes.clone()),
                None => (400, error_body("bad continuation")),
            }
        } else {
            (404, error_body("no such route"))
        }
    }
}

impl Server {
    /// A page of the `windowed` dataset: comments at or after `from` (or
    /// from the cursor, the index of the page's first comment) and before
    /// `to`, at most `limit`.
    fn window_page(&self, body: &WindowBody) -> Bytes {
        let times = &self.windowed_times;
        let start = match body.continuation.as_deref() {
            Some(cursor) => cursor
                .strip_prefix('w')
                .and_then(|i| i.parse().ok())
                .unwrap_or(times.len()),
            None => body
                .from
                .map_or(0, |from| times.partition_point(|t| *t < from)),
        };
        let bound = body
            .to
            .map_or(times.len(), |to| times.partition_point(|t| *t < to));
        let end = bound.min(start.saturating_add(body.limit.unwrap_or(PAGE_SIZE)));
        let mut page = Vec::with_capacity(PAGE_SIZE * 700);
        page.extend_from_slice(br#"{"status":"ok","comments":["#);
        for (i, comment) in self.windowed[start.min(end)..end].iter().enumerate() {
            if i > 0 {
                page.push(b',');
            }
            page.extend_from_slice(comment);
        }
        page.push(b']');
        if end < bound {
            page.extend_from_slice(format!(r#","continuation":"w{end}""#).as_bytes());
        }
        page.push(b'}');
        Bytes::from(page)
    }
}

fn error_body(message: &str) -> Bytes {
    Bytes::from(json!({"status": "error", "message": message}).to_string())
}

async fn start_server(server: Arc<Server>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(connection(socket, server.clone()));
        }
    });
    format!("http://{address}")
}

/// Serves HTTP/1.1 requests with a `content-length` body, keep-alive.
async fn connection(mut socket: TcpStream, server: Arc<Server>) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            if socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let (status, body) = server.route(&path, &buf[head_end..head_end + length]);
        buf.drain(..head_end + length);
        let latency = server.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let accepts_gzip = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("accept-encoding") && value.contains("gzip")
            })
        });
        let (body, encoding) = if accepts_gzip && server.compress.load(Ordering::Relaxed) {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&body)?;
            (Bytes::from(encoder.finish()?), "content-encoding: gzip\r\n")
        } else {
            (body, "")
        };
        server
            .body_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let reason = if status == 200 { "OK" } else { "Error" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{encoding}content-length: {}\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(&body).await?;
    }
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

fn template() -> types::CommentNew {
    serde_json::from_value(json!({
        "id": "template",
        "timestamp": "2026-03-04T09:15:00Z",
        "thread_id": "7c3f0e2a91b4d5e6",
        "user_properties": {"string:Country": "UK"},
        "messages": [{
            "from": "jane.doe@customer.example",
            "to": ["support@acme.example"],
            "subject": {"text": "Refund for order 48213"},
            "body": {"text": "Hello, I returned my order last week and have not received a refund yet. Could you check where it is? Thanks, Jane"}
        }]
    }))
    .expect("template comment")
}

/// `n` comments, generated as they are read; those at `bad` positions are
/// rejected by the server.
fn comments(
    n: usize,
    bad: impl Fn(usize) -> bool,
) -> impl futures::Stream<Item = types::CommentNew> {
    let template = template();
    stream::iter(0..n).map(move |i| {
        let mut c = template.clone();
        c.id = if bad(i) {
            format!("bad-{i:08}")
        } else {
            format!("c-{i:08}")
        };
        c
    })
}

/// The first comment of the `windowed` dataset; the others follow one per second.
const WINDOWED_START: &str = "2026-01-01T00:00:00Z";

fn windowed_start() -> DateTime<Utc> {
    WINDOWED_START.parse().expect("start")
}

/// The `windowed` dataset: `PAGES * PAGE_SIZE` exported comments, one per
/// second, each with its timestamp.
fn windowed_comments() -> (Vec<Bytes>, Vec<DateTime<Utc>>) {
    (0..PAGES * PAGE_SIZE)
        .map(|k| {
            let at = windowed_start() + TimeDelta::seconds(k as i64);
            let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let comment = json!({
                "comment": {
                    "uid": format!("18ba5ce699f8da1f.w{k:06}"), "id": format!("w{k:06}"),
                    "source_id": "18ba5ce699f8da1f", "timestamp": stamp,
                    "user_properties": {"string:Country": "UK", "number:Order Value": 249.5},
                    "messages": [{"from": "jane.doe@customer.example", "to": ["support@acme.example"],
                                  "subject": {"text": "Refund for order 48213"},
                                  "body": {"text": "Hello, I returned my order last week and have not received a refund yet."}}],
                    "attachments": [], "created_at": stamp, "last_modified": stamp
                },
                "annotations": {"labels": {"assigned": [{"name": "Refund > Status Request", "sentiment": "negative"}]}},
                "predictions": {"labels": [{"name": "Refund > Status Request", "probability": 0.94}]}
            });
            (Bytes::from(comment.to_string()), at)
        })
        .unzip()
}

fn export_pages() -> Vec<Bytes> {
    let comment = |p: usize, i: usize| {
        json!({
            "comment": {
                "uid": format!("18ba5ce699f8da1f.{p:04}{i:04}"), "id": format!("{p:04}{i:04}"),
                "source_id": "18ba5ce699f8da1f", "timestamp": "2026-02-11T10:02:00Z",
                "user_properties": {"string:Country": "UK", "number:Order Value": 249.5},
                "messages": [{"from": "jane.doe@customer.example", "to": ["support@acme.example"],
                              "subject": {"text": "Refund for order 48213"},
                              "body": {"text": "Hello, I returned my order last week and have not received a refund yet."}}],
                "attachments": [], "created_at": "2026-02-11T10:03:12Z", "last_modified": "2026-02-11T10:03:12Z"
            },
            "annotations": {"labels": {"assigned": [{"name": "Refund > Status Request", "sentiment": "negative"}]}},
            "predictions": {"labels": [{"name": "Refund > Status Request", "probability": 0.94}]}
        })
    };
    (0..PAGES)
        .map(|p| {
            let mut page = json!({"status": "ok", "comments": (0..PAGE_SIZE).map(|i| comment(p, i)).collect::<Vec<_>>()});
            if p + 1 < PAGES {
                page["continuation"] = json!(format!("p{}", p + 1));
            }
            Bytes::from(page.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

fn client(base_url: &str) -> Client {
    Client::builder()
        .env_lookup(|_| None)
        .config_path(std::env::temp_dir().join("cm-api-bench-no-config.toml"))
        .endpoint(Endpoint::parse(base_url).expect("endpoint"))
        .token("bench-token")
        .build()
        .expect("client")
}

async fn upload(
    client: &Client,
    server: &Server,
    n: usize,
    batch: usize,
    concurrency: usize,
) -> (Duration, u64, bulk::SyncReport) {
    let before = server.sync_requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let report = bulk::sync_comments(
        client,
        "bench",
        "src",
        comments(n, |_| false),
        SyncOptions::default()
            .batch_size(batch)
            .concurrency(concurrency),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(report.synced, n as u64, "{:?}", report.failures.first());
    (
        elapsed,
        server.sync_requests.load(Ordering::Relaxed) - before,
        report,
    )
}

/// The vendor client's strategy: a failed batch is retried one comment at a
/// time (here with the same number of batches in flight).
async fn one_by_one(
    target: &CommentsTarget,
    n: usize,
    batch: usize,
    concurrency: usize,
    bad: fn(usize) -> bool,
) -> (u64, u64) {
    let requests = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    comments(n, bad)
        .chunks(batch)
        .for_each_concurrent(concurrency, |items| {
            let (requests, failed) = (&requests, &failed);
            async move {
                requests.fetch_add(1, Ordering::Relaxed);
                if target.sync(&items).await.is_ok() {
                    return;
                }
                for item in &items {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if target.sync(std::slice::from_ref(item)).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .await;
    (requests.into_inner(), failed.into_inner())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    // A child of figure 7's instruction count, run under callgrind.
    if let Ok(variant) = std::env::var(COUNT_VARIANT) {
        upload_cost(Some(&variant));
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    // `CM_BENCH_ONLY=7` runs figure 7 alone (for profiling the upload path).
    let only = std::env::var("CM_BENCH_ONLY").ok();
    if only.as_deref() == Some("7") {
        upload_cost(None);
        return;
    }
    let server = Arc::new(Server::new(LATENCY, export_pages(), windowed_comments()));
    let base_url = start_server(server.clone()).await;
    let client = client(&base_url);
    println!(
        "loopback server {base_url}, {} ms per request\n",
        LATENCY.as_millis()
    );

    // Warm up connections and code paths.
    upload(&client, &server, 8_000, 1_000, 8).await;

    // `CM_BENCH_ONLY=5`, `=9` or `=5,9`: those figures alone.
    if let Some(only) = only {
        for figure in only.split(',') {
            match figure.trim() {
                "5" => whole_request_rejection(&client, &server).await,
                "9" => generic_rejections(&client, &server).await,
                "10" => sandbox_upload().await,
                other => {
                    panic!("CM_BENCH_ONLY: figure {other} does not run alone (5, 7, 9 or 10)")
                }
            }
        }
        return;
    }

    // 1. Concurrency.
    let n = 100_000;
    let batch = 1_000;
    let (sequential, seq_requests, _) = upload(&client, &server, n, batch, 1).await;
    let ((concurrent, conc_requests, _), peak) =
        peak_during(upload(&client, &server, n, batch, 8)).await;
    println!("1. sync_comments, {n} comments, batches of {batch}");
    println!(
        "   sequential (1 in flight):  {:>10}  {seq_requests} requests",
        ms(sequential)
    );
    println!(
        "   concurrent (8 in flight):  {:>10}  {conc_requests} requests",
        ms(concurrent)
    );
    println!(
        "   speed-up: {:.2}x (target >= 4x)\n",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );

    // 2. Bisection vs one by one.
    let n = 10_000;
    let batch = 1_000;
    let concurrency = 10;
    // 1%: every 100th comment, offset so that bad ones are spread in each batch.
    fn bad(i: usize) -> bool {
        i % 100 == 37
    }
    let before = server.sync_requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let report = bulk::sync_comments(
        &client,
        "bench",
        "src",
        comments(n, bad),
        SyncOptions::default()
            .batch_size(batch)
            .concurrency(concurrency),
    )
    .await;
    let bisect_time = started.elapsed();
    let bisect_requests = server.sync_requests.load(Ordering::Relaxed) - before;
    assert_eq!(report.failed, (n / 100) as u64);
    let target = CommentsTarget::new(&client, "bench", "src");
    let started = Instant::now();
    let (single_requests, single_failed) = one_by_one(&target, n, batch, concurrency, bad).await;
    let single_time = started.elapsed();
    assert_eq!(single_failed, (n / 100) as u64);
    println!("2. {n} comments, 1% rejected, batches of {batch}, {concurrency} in flight");
    println!(
        "   bisection:             {:>10}  {bisect_requests} requests",
        ms(bisect_time)
    );
    println!(
        "   one-by-one retry:      {:>10}  {single_requests} requests",
        ms(single_time)
    );
    println!(
        "   bisection: {:.1}x fewer requests, {:.1}x faster\n",
        single_requests as f64 / bisect_requests as f64,
        single_time.as_secs_f64() / bisect_time.as_secs_f64()
    );

    // 3. Memory.
    let (_, peak_small) = peak_during(upload(&client, &server, 20_000, 1_000, 8)).await;
    let (held, held_bytes) =
        peak_during(async { comments(100_000, |_| false).collect::<Vec<_>>().await }).await;
    drop(held);
    println!("3. peak heap during a streamed upload (batches of 1000, 8 in flight)");
    println!("   100,000 comments: {}", mib(peak));
    println!("    20,000 comments: {}", mib(peak_small));
    println!(
        "   (the 100,000 comments held in a Vec: {})\n",
        mib(held_bytes)
    );

    // 4. Pagination overhead.
    let walk = || async {
        let request = types::ExportDatasetRequest {
            limit: Some(PAGE_SIZE as i64),
            ..Default::default()
        };
        let started = Instant::now();
        let items: Vec<_> = client
            .export_dataset()
            .project("bench")
            .dataset_name("ds")
            .body(request)
            .into_stream()
            .try_collect()
            .await
            .expect("walk");
        assert_eq!(items.len(), PAGES * PAGE_SIZE);
        started.elapsed()
    };
    let http = reqwest::Client::new();
    let url = format!("{base_url}/api/v1/datasets/bench/ds/export");
    let raw = || async {
        let started = Instant::now();
        let mut continuation: Option<String> = None;
        let mut count = 0;
        loop {
            let body = json!({"limit": PAGE_SIZE, "continuation": continuation});
            let bytes = http
                .post(&url)
                .bearer_auth("bench-token")
                .json(&body)
                .send()
                .await
                .expect("send")
                .bytes()
                .await
                .expect("body");
            let page: types::ExportDatasetResponse =
                serde_json::from_slice(&bytes).expect("decode");
            count += page.comments.len();
            match page.continuation {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        assert_eq!(count, PAGES * PAGE_SIZE);
        started.elapsed()
    };
    walk().await;
    raw().await;
    let (mut helper, mut baseline) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        helper = helper.min(walk().await);
        baseline = baseline.min(raw().await);
    }
    let per_page = |d: Duration| ms(d / PAGES as u32);
    println!("4. {PAGES} pages of {PAGE_SIZE} comments (best of 3)");
    println!(
        "   into_stream:             {:>10} per page",
        per_page(helper)
    );
    println!(
        "   reqwest + serde_json:    {:>10} per page",
        per_page(baseline)
    );
    println!(
        "   ratio: {:.3} (target <= 1.10)\n",
        helper.as_secs_f64() / baseline.as_secs_f64()
    );

    // 5. Whole-request rejection.
    whole_request_rejection(&client, &server).await;

    // 6. Parallel vs sequential export.
    parallel_export(&client, &server).await;

    // 7. The upload path against raw reqwest, without latency.
    tokio::task::spawn_blocking(|| upload_cost(None))
        .await
        .expect("figure 7");

    // 8. Compressed vs uncompressed export pages.
    compressed_pages(&client, &server).await;

    // 9. A 422 whose message names no item.
    generic_rejections(&client, &server).await;

    // 10. The sandbox against the minimal server.
    sandbox_upload().await;
}

/// Figure 10: the same upload to the sandbox and to the minimal server,
/// in paired rounds (median of each), then the sandbox's retained heap.
async fn sandbox_upload() {
    const N: usize = 100_000;
    const ROUNDS: usize = 3;
    let minimal = Arc::new(Server::new(
        Duration::ZERO,
        Vec::new(),
        (Vec::new(), Vec::new()),
    ));
    let minimal_client = client(&start_server(minimal.clone()).await);
    let sandbox = cm_sandbox::Sandbox::start().await.expect("sandbox");
    // The same sandbox without its spec checks of each request, to show
    // what they cost.
    let unchecked = cm_sandbox::Sandbox::builder()
        .validate_requests(false)
        .start()
        .await
        .expect("sandbox");
    // A fresh source per round, so that every round stores new comments.
    let source = |round: usize| format!("src-{round}");
    let mut clients = Vec::new();
    for sandbox in [&sandbox, &unchecked] {
        let client = Client::builder()
            .env_lookup(|_| None)
            .config_path(std::env::temp_dir().join("cm-api-bench-no-config.toml"))
            .endpoint(Endpoint::parse(sandbox.base_url()).expect("endpoint"))
            .token(sandbox.token())
            .build()
            .expect("client");
        client
            .create_project()
            .project("bench")
            .body_map(|b| b.project(types::ProjectNew::builder()))
            .send()
            .await
            .expect("create_project");
        for round in 0..=ROUNDS {
            client
                .create_source()
                .project("bench")
                .source_name(source(round).as_str())
                .body_map(|b| b.source(types::SourceNew::builder()))
                .send()
                .await
                .expect("create_source");
        }
        clients.push(client);
    }
    let (sandbox_client, unchecked_client) = (&clients[0], &clients[1]);
    let options = || SyncOptions::default().batch_size(1_000).concurrency(8);
    let job = |client: &Client, source: String| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let report =
                bulk::sync_comments(&client, "bench", &source, comments(N, |_| false), options())
                    .await;
            assert_eq!(report.synced, N as u64, "{:?}", report.stopped);
            (started.elapsed(), report.counts.new)
        }
    };

    // Round 0 warms both up and measures the heap the sandbox keeps: what
    // the upload allocated and did not free (the client frees its batches).
    job(&minimal_client, "src".to_owned()).await;
    let before = CURRENT.load(Ordering::Relaxed);
    let ((_, new), _) = peak_during(job(sandbox_client, source(0))).await;
    let kept = CURRENT.load(Ordering::Relaxed) - before;
    assert_eq!(new, N as u64);
    job(unchecked_client, source(0)).await;
    let (mut to_sandbox, mut to_unchecked, mut to_minimal) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        to_minimal.push(job(&minimal_client, "src".to_owned()).await.0);
        to_sandbox.push(job(sandbox_client, source(round)).await.0);
        to_unchecked.push(job(unchecked_client, source(round)).await.0);
    }
    let (sandbox_time, unchecked_time, minimal_time) =
        (median(to_sandbox), median(to_unchecked), median(to_minimal));
    // A floor for any server that reads every field: parsing the same
    // bodies into `serde_json::Value` on one thread, nothing else.
    let template = template();
    let bodies: Vec<Vec<u8>> = (0..N / 1_000)
        .map(|b| {
            let batch: Vec<types::CommentNew> = (0..1_000)
                .map(|i| {
                    let mut c = template.clone();
                    c.id = format!("c-{:08}", b * 1_000 + i);
                    c
                })
                .collect();
            serde_json::to_vec(&json!({ "comments": batch })).expect("a body")
        })
        .collect();
    let started = Instant::now();
    for body in &bodies {
        let value: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        std::hint::black_box(value);
    }
    let parse_time = started.elapsed();
    println!(
        "10. sync_comments of {N} comments (batches of 1,000, 8 in flight), no added latency, median of {ROUNDS}"
    );
    println!("   to cm-sandbox:           {:>10}", ms(sandbox_time));
    println!(
        "   to cm-sandbox, requests not checked against the spec: {:>10}",
        ms(unchecked_time)
    );
    println!("   to the minimal server:   {:>10}", ms(minimal_time));
    println!(
        "   parsing the {} MiB of bodies into serde_json::Value, one thread: {:>10}",
        bodies.iter().map(Vec::len).sum::<usize>() >> 20,
        ms(parse_time)
    );
    println!(
        "   ratio: {:.2} (target <= 2.00); {:.2} unchecked; the sandbox keeps {} of heap per {N} comments\n",
        sandbox_time.as_secs_f64() / minimal_time.as_secs_f64(),
        unchecked_time.as_secs_f64() / minimal_time.as_secs_f64(),
        mib(kept.max(0) as usize)
    );
}

/// Figure 5: every request rejected with the same 422 (a locked source).
async fn whole_request_rejection(client: &Client, server: &Server) {
    let n = 100_000;
    let batch = 1_000;
    let before = server.sync_requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let report = bulk::sync_comments(
        client,
        "bench",
        "rejected",
        comments(n, |_| false),
        SyncOptions::default().batch_size(batch).concurrency(8),
    )
    .await;
    let elapsed = started.elapsed();
    let requests = server.sync_requests.load(Ordering::Relaxed) - before;
    assert!(report.stopped.is_some(), "the job did not stop");
    assert_eq!(report.synced, 0);
    assert_eq!(report.read, report.failed + report.not_attempted);
    println!(
        "5. {n} comments, every request rejected with the same 422, batches of {batch}, 8 in flight"
    );
    println!(
        "   {:>10}  {requests} requests for {} batches: {:.1} requests per batch (target <= 4; bisecting to single items: {})",
        ms(elapsed),
        report.batches,
        requests as f64 / report.batches as f64,
        2 * batch as u64 - 1,
    );
    println!(
        "   stopped after 3 request-level rejections in a row: {} of {n} comments read ({} failed, {} not attempted)\n",
        report.read, report.failed, report.not_attempted
    );
}

/// Figure 9: 20 bad comments among 10,000, rejected with a 422 whose
/// message names no item, against one that names it. The layout is seed 2
/// of `tests/bulk.rs`'s reproduction, on which the job before the fix (an
/// item of the right half probed alone) reported 1,040 failures.
async fn generic_rejections(client: &Client, server: &Server) {
    let n = 10_000;
    let mut rng = fastrand::Rng::with_seed(2);
    let mut bad = std::collections::HashSet::new();
    while bad.len() < 20 {
        bad.insert(rng.u64(0..n as u64) as usize);
    }
    let options = SyncOptions::default();
    println!(
        "9. {n} comments, 20 bad, rejected with a 422 (batches of {}, 8 in flight)",
        options.get_batch_size()
    );
    let mut figures = Vec::new();
    for (source, label) in [
        ("generic", "message names no item:"),
        ("named", "message names the item:"),
    ] {
        let before = server.sync_requests.load(Ordering::Relaxed);
        let started = Instant::now();
        let report = bulk::sync_comments(
            client,
            "bench",
            source,
            comments(n, |i| bad.contains(&i)),
            options.clone(),
        )
        .await;
        let elapsed = started.elapsed();
        let requests = server.sync_requests.load(Ordering::Relaxed) - before;
        assert_eq!(report.failed, 20, "{source}: {} failures", report.failed);
        let mut failed: Vec<usize> = report
            .failures
            .iter()
            .map(|f| f.item.index as usize)
            .collect();
        let mut expected: Vec<usize> = bad.iter().copied().collect();
        failed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(failed, expected, "{source}: not exactly the bad comments");
        assert_eq!(report.synced, (n - 20) as u64);
        println!(
            "   {label:<25} {:>3} failed (target: exactly 20)  {requests:>4} requests  {:>10}",
            report.failed,
            ms(elapsed)
        );
        figures.push(requests);
    }
    println!(
        "   probes: {} more requests when the message names no item\n",
        figures[0] as i64 - figures[1] as i64
    );
}

/// Figure 7: what the client's upload path costs on top of sending the
/// bytes, with nothing to wait for. The raw loop serialises each batch with
/// serde_json, posts it with reqwest and decodes the answer, as a
/// hand-written uploader would; `sync_comments` does the same through
/// batching, the transport (auth, retries, rate gate, tracing) and the
/// envelope check.
///
/// Measured as CPU time of the one thread that runs the client: the server
/// runs on a thread of its own, so its work does not count, nor does
/// waiting for a core. On two shared cores that time still spreads by
/// ±20% from round to round, so the figure is the median of paired rounds;
/// the instruction count ([`instruction_counts`]) is the steady one.
/// Wall-clock time is printed beside it.
///
/// With `counted`, only that variant runs, once warmed up, inside
/// [`counted_run`]: the child of [`instruction_counts`].
fn upload_cost(counted: Option<&str>) {
    let server = Arc::new(Server::new(
        Duration::ZERO,
        Vec::new(),
        (Vec::new(), Vec::new()),
    ));
    let (serving, address) = std::sync::mpsc::channel();
    // Detached: it serves until the bench exits.
    let server_thread = std::thread::Builder::new().name("bench-server".into());
    drop(
        server_thread
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                runtime.block_on(async {
                    serving.send(start_server(server).await).expect("address");
                    std::future::pending::<()>().await
                });
            })
            .expect("server thread"),
    );
    let base_url = address.recv().expect("server address");
    let counted = counted.map(str::to_owned);
    // On its own thread: the caller may be a runtime's worker.
    std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || upload_cost_on(&base_url, counted.as_deref()))
        .expect("client thread")
        .join()
        .expect("figure 7");
}

/// The client side of figure 7, on this thread alone.
fn upload_cost_on(base_url: &str, counted: Option<&str>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    // Under callgrind, fewer: the count per batch does not depend on how many.
    let n = if counted.is_some() {
        COUNTED_COMMENTS
    } else {
        100_000
    };
    let batch = FIGURE7_BATCH;
    let client = client(base_url);
    let http = reqwest::Client::new();
    let url = format!("{base_url}/api/v1/sources/bench/src/sync");
    let raw = || async {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            comments: &'a [types::CommentNew],
        }
        let mut synced = 0;
        let mut batches = comments(n, |_| false).chunks(batch);
        while let Some(items) = batches.next().await {
            let body = serde_json::to_vec(&Body { comments: &items }).expect("encode");
            let bytes = http
                .post(&url)
                .bearer_auth("bench-token")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send")
                .bytes()
                .await
                .expect("body");
            let answer: types::SyncCommentsResponse =
                serde_json::from_slice(&bytes).expect("decode");
            synced += answer.new;
        }
        assert_eq!(synced, n as i64);
    };
    let helper = || async {
        let report = bulk::sync_comments(
            &client,
            "bench",
            "src",
            comments(n, |_| false),
            SyncOptions::default().batch_size(batch).concurrency(1),
        )
        .await;
        assert_eq!(report.synced, n as u64, "{:?}", report.failures.first());
    };
    // The client without the bulk job: one `CommentsTarget::sync` per batch.
    let target = CommentsTarget::new(&client, "bench", "src");
    let direct = || async {
        let mut synced = 0;
        let mut batches = comments(n, |_| false).chunks(batch);
        while let Some(items) = batches.next().await {
            synced += target.sync(&items).await.expect("sync").new;
        }
        assert_eq!(synced, n as u64);
    };
    let measure = |work: std::pin::Pin<Box<dyn Future<Output = ()> + '_>>| {
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        runtime.block_on(work);
        Sample {
            cpu: thread_cpu_time() - cpu,
            wall: wall.elapsed(),
        }
    };
    if let Some(variant) = counted {
        let run = || -> std::pin::Pin<Box<dyn Future<Output = ()> + '_>> {
            match variant {
                "job" => Box::pin(helper()),
                "raw" => Box::pin(raw()),
                other => panic!("{COUNT_VARIANT}: unknown variant {other:?}"),
            }
        };
        runtime.block_on(run());
        counted_run(|| runtime.block_on(run()));
        return;
    }
    // Warm up connections, allocator and code paths.
    measure(Box::pin(helper()));
    measure(Box::pin(raw()));
    measure(Box::pin(direct()));
    // Each round runs the job and the raw loop back to back, in alternating
    // order (so that neither always runs on the heap the other left
    // behind), and the round's ratio compares the two. The median ratio is
    // the figure: one slow round, of either side, does not move it.
    let (mut ours, mut baseline, mut single, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (job, loop_) = if round % 2 == 0 {
            let job = measure(Box::pin(helper()));
            (job, measure(Box::pin(raw())))
        } else {
            let loop_ = measure(Box::pin(raw()));
            (measure(Box::pin(helper())), loop_)
        };
        ratios.push(job.cpu.as_secs_f64() / loop_.cpu.as_secs_f64());
        ours.push(job);
        baseline.push(loop_);
        single.push(measure(Box::pin(direct())));
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "7. sync_comments of {n} comments in batches of {batch}, one at a time, no latency \
         (CPU time of the client's thread, {ROUNDS} rounds; median, and wall-clock beside it)"
    );
    for (name, samples) in [
        ("bulk::sync_comments:", &ours),
        ("CommentsTarget::sync:", &single),
        ("reqwest + serde_json:", &baseline),
    ] {
        let cpu = median(samples.iter().map(|s| s.cpu).collect());
        let wall = median(samples.iter().map(|s| s.wall).collect());
        println!("   {name:<22} {:>10} CPU  {:>10} wall", ms(cpu), ms(wall));
    }
    println!(
        "   CPU ratio per round: median {:.3} (target <= 1.05), from {:.3} to {:.3}",
        ratios[ROUNDS / 2],
        ratios[0],
        ratios[ROUNDS - 1],
    );
    match instruction_counts() {
        Ok((job, raw)) => println!(
            "   instructions per batch (callgrind): {} against {}, ratio {:.3}\n",
            job / (COUNTED_COMMENTS / FIGURE7_BATCH) as u64,
            raw / (COUNTED_COMMENTS / FIGURE7_BATCH) as u64,
            job as f64 / raw as f64
        ),
        Err(why) => println!("   instructions per batch: not counted ({why})\n"),
    }
}

/// The environment variable that makes the bench a child of
/// [`instruction_counts`]: `job` or `raw`, the variant to count.
const COUNT_VARIANT: &str = "CM_BENCH_COUNT";
/// Comments of the counted run (figure 7's batches of [`FIGURE7_BATCH`]).
const COUNTED_COMMENTS: usize = 10_000;
/// Figure 7's batch size.
const FIGURE7_BATCH: usize = 1_000;

/// Figure 7 again as instructions, which unlike CPU time on shared cores
/// vary by well under 1% from run to run: this bench re-run under valgrind's callgrind,
/// once per variant, counting only what [`counted_run`] runs on the
/// client's thread (one warmed-up run, not the server's work). `Err` when
/// valgrind is not installed.
fn instruction_counts() -> Result<(u64, u64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let count = |variant: &str| -> Result<u64, String> {
        let out = std::env::temp_dir().join(format!(
            "cm-api-bench-{variant}-{}.callgrind",
            std::process::id()
        ));
        let status = std::process::Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg("--toggle-collect=*counted_run*")
            .arg(&exe)
            .env(COUNT_VARIANT, variant)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("valgrind: {e}"))?;
        if !status.success() {
            return Err(format!("valgrind exited with {status}"));
        }
        let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&out);
        text.lines()
            .find_map(|line| line.strip_prefix("summary:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| "no summary in callgrind's output".to_owned())
    };
    Ok((count("job")?, count("raw")?))
}

/// Runs `f`; callgrind counts only inside this function
/// (`--toggle-collect`), so it must stay a function of its own.
#[inline(never)]
fn counted_run(f: impl FnOnce()) {
    f();
    std::hint::black_box(());
}

/// Rounds of figure 7 (odd, so that the median is one of them).
const ROUNDS: usize = 21;

/// One run of a figure-7 variant.
#[derive(Clone, Copy)]
struct Sample {
    /// CPU time of the client's thread.
    cpu: Duration,
    /// Wall-clock time.
    wall: Duration,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// CPU time used by the calling thread (user and system).
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Elsewhere, wall-clock time since the first call stands in.
#[cfg(not(unix))]
fn thread_cpu_time() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Figure 8: body bytes of the same export walk, answered uncompressed and
/// gzip-compressed (the client always sends `Accept-Encoding: gzip`).
async fn compressed_pages(client: &Client, server: &Server) {
    let mut figures = Vec::new();
    for compress in [false, true] {
        server.compress.store(compress, Ordering::Relaxed);
        let before = server.body_bytes.load(Ordering::Relaxed);
        let started = Instant::now();
        let request = types::ExportDatasetRequest {
            limit: Some(PAGE_SIZE as i64),
            ..Default::default()
        };
        let items: Vec<_> = client
            .export_dataset()
            .project("bench")
            .dataset_name("ds")
            .body(request)
            .into_stream()
            .try_collect()
            .await
            .expect("walk");
        assert_eq!(items.len(), PAGES * PAGE_SIZE);
        let bytes = server.body_bytes.load(Ordering::Relaxed) - before;
        figures.push((bytes / PAGES as u64, started.elapsed()));
    }
    server.compress.store(false, Ordering::Relaxed);
    let [(plain, plain_time), (gzip, gzip_time)] = figures[..] else {
        unreachable!("two runs")
    };
    println!("8. export pages of {PAGE_SIZE} comments on the wire ({PAGES} pages, 20 ms latency)");
    println!(
        "   uncompressed:  {:>9} bytes per page  ({} for the walk)",
        plain,
        ms(plain_time)
    );
    println!(
        "   gzip:          {:>9} bytes per page  ({} for the walk)",
        gzip,
        ms(gzip_time)
    );
    println!(
        "   {:.1}x fewer bytes with gzip\n",
        plain as f64 / gzip as f64
    );
}

/// How the export of figure 6 is walked.
#[derive(Clone, Copy)]
enum ExportWalk {
    Sequential,
    Unordered,
    Ordered,
}

const WINDOWS: usize = 8;
/// Enough for a window ahead of the one being yielded to fetch all its
/// pages (100 pages / 8 windows, rounded up) without waiting.
const ORDERED_BUFFER: usize = 16;

/// One export of the `windowed` dataset: its time, and the requests sent.
/// Checks that every comment came exactly once (and, ordered, in time order).
async fn export_once(client: &Client, server: &Server, walk: ExportWalk) -> (Duration, u64) {
    let total = PAGES * PAGE_SIZE;
    let request = types::ExportDatasetRequest {
        from: Some(windowed_start()),
        to: Some(windowed_start() + TimeDelta::seconds(total as i64)),
        limit: Some(PAGE_SIZE as i64),
        ..Default::default()
    };
    let export = client
        .export_dataset()
        .project("bench")
        .dataset_name("windowed")
        .body(request);
    let parallel = || export.clone().into_parallel().windows(WINDOWS);
    let before = server.windowed_requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let items: Vec<types::ExportedComment> = match walk {
        ExportWalk::Sequential => export.clone().into_stream().try_collect().await,
        ExportWalk::Unordered => parallel().start().expect("walk").try_collect().await,
        ExportWalk::Ordered => {
            parallel()
                .ordered()
                .buffer_pages(ORDERED_BUFFER)
                .start()
                .expect("walk")
                .try_collect()
                .await
        }
    }
    .expect("export");
    let elapsed = started.elapsed();
    let requests = server.windowed_requests.load(Ordering::Relaxed) - before;
    let unique: std::collections::HashSet<&str> =
        items.iter().map(|c| c.comment.id.as_str()).collect();
    assert_eq!(items.len(), total, "every comment once");
    assert_eq!(unique.len(), total, "no comment twice");
    if !matches!(walk, ExportWalk::Unordered) {
        assert!(
            items
                .windows(2)
                .all(|w| w[0].comment.timestamp < w[1].comment.timestamp),
            "in time order"
        );
    }
    (elapsed, requests)
}

async fn parallel_export(client: &Client, server: &Server) {
    let best = |runs: &[(Duration, u64)]| runs.iter().copied().min().expect("runs");
    export_once(client, server, ExportWalk::Unordered).await;
    let (mut sequential, mut unordered, mut ordered) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        sequential.push(export_once(client, server, ExportWalk::Sequential).await);
        unordered.push(export_once(client, server, ExportWalk::Unordered).await);
        ordered.push(export_once(client, server, ExportWalk::Ordered).await);
    }
    let (sequential, seq_requests) = best(&sequential);
    let (unordered, unordered_requests) = best(&unordered);
    let (ordered, ordered_requests) = best(&ordered);
    let total = PAGES * PAGE_SIZE;
    println!(
        "\n6. export of {total} comments ({PAGES} pages of {PAGE_SIZE}) over a time range (best of 3)"
    );
    let rows = [
        ("sequential walk:".to_owned(), sequential, seq_requests),
        (
            format!("parallel, {WINDOWS} windows, unordered:"),
            unordered,
            unordered_requests,
        ),
        (
            format!("parallel, {WINDOWS} windows, ordered ({ORDERED_BUFFER} pages):"),
            ordered,
            ordered_requests,
        ),
    ];
    for (label, time, requests) in rows {
        println!("   {label:<40} {:>10}  {requests} requests", ms(time));
    }
    println!(
        "   speed-up: {:.2}x unordered, {:.2}x ordered (target >= 4x); every comment exactly once\n",
        sequential.as_secs_f64() / unordered.as_secs_f64(),
        sequential.as_secs_f64() / ordered.as_secs_f64()
    );
}
