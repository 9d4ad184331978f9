//! Bulk jobs and the stream consumer under faults: whole-request
//! rejections, fatal errors, cancellation, long `Retry-After`s, empty
//! batches and advances that did not happen.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cm_api::bulk::{self, SyncCounts, SyncEvent, SyncOptions, SyncTarget, sync_with};
use cm_api::stream_consumer::{HandlerError, StreamConsumer};
use cm_api::{Client, Endpoint, Error, RetryPolicy, types};
use common::fault::{FaultServer, Received, Reply};
use common::{fast_retries, isolated};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const SYNC: &str = "/api/v1/sources/acme/inbox/sync";
const BASE: &str = "/api/v1/datasets/acme/triage/streams/refunds";

fn client(server: &FaultServer, policy: RetryPolicy) -> Client {
    isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token("tok-static-123")
        .retry_policy(policy)
        .build()
        .unwrap()
}

fn comment(i: u64) -> types::CommentNew {
    serde_json::from_value(json!({
        "id": format!("c{i}"),
        "timestamp": "2026-03-04T09:15:00Z",
        "messages": [{"body": {"text": "Where is my refund?"}}]
    }))
    .unwrap()
}

fn synced(n: usize) -> Reply {
    Reply::json(
        200,
        json!({"status": "ok", "new": n, "updated": 0, "unchanged": 0,
               "updated_properties_only": 0, "updated_text_changed": 0}),
    )
}

fn items_in(request: &Received) -> usize {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    body["comments"].as_array().unwrap().len()
}

fn accounted(report: &bulk::SyncReport) -> bool {
    report.read == report.synced + report.failures.len() as u64 + report.not_attempted
}

#[tokio::test]
async fn a_whole_request_422_costs_three_requests_per_batch() {
    let server = FaultServer::start(|_, _| {
        Reply::json(
            422,
            json!({"status": "error", "message": "Source acme/inbox is locked"}),
        )
    })
    .await;
    let client = client(&server, fast_retries(3));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter((0..5000).map(comment)),
        SyncOptions::default().batch_size(1000).concurrency(4),
    )
    .await;

    assert_eq!(report.batches, 5);
    assert_eq!(
        report.requests, 15,
        "was 9,995 when bisected to single items"
    );
    assert_eq!(server.count(SYNC), 15);
    assert_eq!(report.splits, 5);
    assert_eq!(report.failures.len(), 5000);
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.error.status() == Some(422))
    );
    assert!(accounted(&report));
}

#[tokio::test]
async fn one_bad_item_still_costs_about_two_requests_per_halving() {
    let server = FaultServer::start(|request: &Received, _| {
        if request.body_text().contains("\"c77\"") {
            Reply::json(
                422,
                json!({"status": "error", "message": "comment c77 has no messages"}),
            )
        } else {
            synced(items_in(request))
        }
    })
    .await;
    let client = client(&server, fast_retries(3));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter((0..1024).map(comment)),
        SyncOptions::default().batch_size(1024),
    )
    .await;

    assert_eq!(report.synced, 1023);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].item.index, 77);
    // 1 + 2 per halving of 1024 down to 1.
    assert_eq!(report.requests, 1 + 2 * 10);
}

#[tokio::test]
async fn a_fatal_404_stops_the_job_and_counts_unread_items_without_listing_them() {
    let server = FaultServer::start(|_, _| {
        Reply::json(
            404,
            json!({"status": "error", "message": "Source acme/inbox not found"}),
        )
    })
    .await;
    let client = client(&server, fast_retries(3));
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    // Ten million comments, generated only as they are read.
    let input = stream::iter(0..10_000_000u64).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        comment(i)
    });

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        input,
        SyncOptions::default().batch_size(100).concurrency(2),
    )
    .await;

    let stopped = report.stopped.as_ref().expect("stopped");
    assert_eq!(stopped.status(), Some(404));
    assert!(
        produced.load(Ordering::Relaxed) <= 400,
        "read {}",
        report.read
    );
    assert!(report.read <= 400);
    assert_eq!(report.synced, 0);
    assert!(report.failures.len() <= 200, "{}", report.failures.len());
    assert!(report.requests <= 2, "{}", report.requests);
    assert_eq!(report.requests, server.count(SYNC) as u64);
    assert!(accounted(&report));
    assert!(!report.is_complete());
}

#[tokio::test]
async fn transport_retries_are_counted_in_requests() {
    let server = FaultServer::start(|request: &Received, n| {
        if n == 0 {
            Reply::json(503, json!({"status": "error", "message": "unavailable"}))
        } else {
            synced(items_in(request))
        }
    })
    .await;
    let client = client(&server, fast_retries(3));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter((0..10).map(comment)),
        SyncOptions::default(),
    )
    .await;

    assert_eq!(report.synced, 10);
    assert_eq!(report.requests, 2);
    assert_eq!(server.count(SYNC), 2);
}

/// A target that takes 1 s per request and rejects items named in `bad`.
struct Slow {
    bad: HashSet<String>,
    requests: AtomicU64,
    first_answer: Mutex<Option<Error>>,
}

impl SyncTarget<types::CommentNew> for Slow {
    fn sync<'a>(
        &'a self,
        items: &'a [types::CommentNew],
    ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            self.requests.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(error) = self.first_answer.lock().unwrap().take() {
                return Err(error);
            }
            if let Some(bad) = items.iter().find(|c| self.bad.contains(&c.id)) {
                return Err(Error::api(422, format!("comment {} is invalid", bad.id)));
            }
            Ok(SyncCounts::new(items.len() as u64, 0, 0))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_ends_the_job_with_a_report_of_every_item_read() {
    let target = Slow {
        bad: HashSet::from(["c13".to_owned()]),
        requests: AtomicU64::new(0),
        first_answer: Mutex::new(None),
    };
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
    });

    // t=0: batches 0-9 and 10-19 sent; t=1: 10-19 is rejected and split,
    // its left half (10-14) and 20-29 sent; t=1.5: cancelled; t=2: both
    // answer; the right half (15-19) is never sent.
    let report = sync_with(
        &target,
        stream::iter((0..1000).map(comment)),
        SyncOptions::default()
            .batch_size(10)
            .concurrency(2)
            .cancel(cancel),
    )
    .await;

    assert!(report.cancelled);
    assert!(report.stopped.is_none());
    assert_eq!(report.read, 30);
    assert_eq!(report.synced, 20);
    assert_eq!(report.failures.len(), 5);
    assert_eq!(report.not_attempted, 5);
    assert!(accounted(&report));
    assert_eq!(target.requests.load(Ordering::SeqCst), 4);
    assert_eq!(report.requests, 4);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_above_the_gate_cap_is_reported_as_a_pause() {
    let target = Slow {
        bad: HashSet::new(),
        requests: AtomicU64::new(0),
        first_answer: Mutex::new(Some(
            Error::api(429, "quota exceeded").with_retry_after(Duration::from_secs(3600)),
        )),
    };
    let paused = Arc::new(Mutex::new(Vec::new()));
    let seen = paused.clone();
    let options = SyncOptions::default().batch_size(10).on_progress(move |p| {
        if let SyncEvent::Paused { wait, items, .. } = &p.event {
            seen.lock().unwrap().push((*wait, *items));
        }
    });

    let report = sync_with(&target, stream::iter((0..10).map(comment)), options).await;

    assert_eq!(*paused.lock().unwrap(), [(Duration::from_secs(3600), 10)]);
    assert_eq!(report.synced, 10);
    assert_eq!(report.requests, 2);
}

// ---------------------------------------------------------------------------
// Stream consumer
// ---------------------------------------------------------------------------

fn stream_comment(uid: &str) -> serde_json::Value {
    json!({
        "uid": uid, "id": uid.rsplit('.').next().unwrap(), "source_id": "18ba5ce699f8da1f",
        "timestamp": "2026-03-04T09:15:00Z", "user_properties": {},
        "messages": [{"body": {"text": "Where is my refund?"}}], "attachments": [],
        "created_at": "2026-03-04T09:16:02Z", "last_modified": "2026-03-04T09:16:02Z"
    })
}

#[tokio::test]
async fn an_empty_batch_that_advances_nothing_waits_before_the_next_fetch() {
    // The server claims more results but returns none and filters none.
    let server = FaultServer::start(|request: &Received, _| {
        assert_eq!(request.path, format!("{BASE}/results"));
        Reply::json(
            200,
            json!({"status": "ok", "results": [], "num_filtered": 0,
                                "more_results": true, "continuation": "pos:0"}),
        )
    })
    .await;
    let consumer = StreamConsumer::new(
        client(&server, fast_retries(3)),
        "acme",
        "triage",
        "refunds",
    )
    .idle_wait(Duration::from_millis(200));
    let shutdown = consumer.shutdown_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        shutdown.cancel();
    });

    let summary = consumer
        .run(|_batch| async { Ok::<_, HandlerError>(()) })
        .await
        .unwrap();

    assert_eq!(summary.batches, 0);
    // 4 fetches in 700 ms at one per 200 ms (a tight loop made thousands).
    let fetches = server.received().len();
    assert!((2..=6).contains(&fetches), "{fetches} fetches");
}

#[tokio::test]
async fn an_advance_answered_429_is_retried_with_the_same_sequence_id_before_redelivery() {
    let server = FaultServer::start(|request: &Received, n| {
        if request.path.ends_with("/results") {
            Reply::json(200, json!({"status": "ok", "num_filtered": 0, "more_results": false,
                "continuation": "pos:1",
                "results": [{"comment": stream_comment("18ba5ce699f8da1f.m1"), "prediction": null, "continuation": "pos:1"}]}))
        } else if n == 0 {
            Reply::json_with(429, json!({"status": "error", "message": "slow down"}), ("retry-after", "1"))
        } else {
            Reply::json(200, json!({"status": "ok", "sequence_id": "pos:1"}))
        }
    })
    .await;
    // The client does not retry advance_stream itself (it is `Never`).
    let consumer = StreamConsumer::new(
        client(&server, fast_retries(3)),
        "acme",
        "triage",
        "refunds",
    )
    .error_backoff(Duration::from_millis(10));
    let shutdown = consumer.shutdown_token();
    let handled = Arc::new(AtomicU64::new(0));
    let count = handled.clone();

    let summary = consumer
        .run(move |_batch| {
            count.fetch_add(1, Ordering::SeqCst);
            // Stop after this batch: it is still advanced past first.
            shutdown.cancel();
            async { Ok::<_, HandlerError>(()) }
        })
        .await
        .unwrap();

    assert_eq!(summary.batches, 1);
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the batch was not redelivered"
    );
    let advances: Vec<String> = server
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/advance"))
        .map(Received::body_text)
        .collect();
    assert_eq!(advances, [r#"{"sequence_id":"pos:1"}"#; 2]);
}
