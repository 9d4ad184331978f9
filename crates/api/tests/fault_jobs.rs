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
    report.read == report.synced + report.failed + report.not_attempted
        && report.failed == report.failures.len() as u64 + report.failures_not_kept
}

fn ids_in(request: &Received) -> Vec<String> {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    body["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Both halves and a request with no items (nothing synced yet) are
/// rejected the same way: the rejection is about the request. 4 requests per
/// batch (the batch, its halves, the empty probe), and the job stops after
/// 3 such rejections in a row instead of failing all 5,000 comments.
#[tokio::test]
async fn a_whole_request_422_costs_four_requests_per_batch_and_stops_the_job() {
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
        SyncOptions::default().batch_size(1000).concurrency(2),
    )
    .await;

    let stopped = report.stopped.as_ref().expect("stopped");
    assert_eq!(stopped.message(), Some("Source acme/inbox is locked"));
    assert_eq!(report.synced, 0);
    // Batches 1 and 2, then 3 (the third rejection), and 4 in flight beside it.
    assert!(report.batches <= 4, "{} batches", report.batches);
    assert!(
        report.requests <= 4 * report.batches,
        "{} requests; was 9,995 when bisected to single items",
        report.requests
    );
    assert_eq!(server.count(SYNC) as u64, report.requests);
    let received = server.received();
    // The probes: requests with no comments, the exact documented body.
    let probes: Vec<&Received> = received.iter().filter(|r| items_in(r) == 0).collect();
    assert!(probes.len() >= 3, "{} probes", probes.len());
    for probe in probes {
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&probe.body).unwrap(),
            json!({"comments": []})
        );
    }
    assert!(report.failed >= 3000, "{report:?}");
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.error.status() == Some(422))
    );
    assert!(accounted(&report));
}

/// The source is locked after the first batch was synced: the probe is the
/// first synced comment, sent alone again, and the job stops after 3
/// request-level rejections.
#[tokio::test]
async fn once_a_comment_was_synced_it_is_the_probe() {
    let server = FaultServer::start(|request: &Received, n| {
        if n == 0 {
            synced(items_in(request))
        } else {
            Reply::json(
                422,
                json!({"status": "error", "message": "Source acme/inbox is locked"}),
            )
        }
    })
    .await;
    let client = client(&server, fast_retries(3));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter((0..1000).map(comment)),
        SyncOptions::default().batch_size(100).concurrency(1),
    )
    .await;

    assert_eq!(report.synced, 100);
    assert_eq!(report.failed, 300);
    assert_eq!(report.stopped.as_ref().unwrap().status(), Some(422));
    // 1 for the synced batch, then 4 for each rejected one.
    assert_eq!(report.requests, 1 + 3 * 4);
    let received = server.received();
    let probes: Vec<Vec<String>> = received
        .iter()
        .map(ids_in)
        .filter(|ids| ids.len() == 1)
        .collect();
    assert_eq!(probes, vec![vec!["c0".to_owned()]; 3]);
    assert!(received.iter().all(|r| items_in(r) > 0));
    assert!(report.read <= 500, "read {}", report.read);
    assert!(accounted(&report));
}

/// A 413 blames the size, not the items: halving is the fix, even though
/// both halves of a large batch are rejected with the same message.
#[tokio::test]
async fn a_413_for_batches_above_a_size_is_bisected_until_the_batches_fit() {
    const FITS: usize = 100;
    let server = FaultServer::start(|request: &Received, _| {
        if items_in(request) > FITS {
            Reply::json(
                413,
                json!({"status": "error", "message": "Request entity too large"}),
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
        stream::iter((0..2000).map(comment)),
        SyncOptions::default().batch_size(1000).concurrency(2),
    )
    .await;

    assert!(report.is_complete(), "{:?}", report.failures.first());
    assert_eq!(report.synced, 2000);
    assert_eq!(report.counts.new, 2000);
    // 1000 -> 500 -> 250 -> 125 -> 62/63: 1 + 2 + 4 + 8 + 16 requests per batch.
    assert_eq!(report.requests, 2 * 31);
    assert_eq!(report.splits, 2 * 15);
    let received = server.received();
    assert_eq!(received.len(), 62);
    let accepted: usize = received.iter().map(items_in).filter(|&n| n <= FITS).sum();
    assert_eq!(accepted, 2000);
}

/// Two rejections without a message (a proxy's HTML page) are not "the
/// same rejection": nothing tells them apart, so bisection goes on.
#[tokio::test]
async fn html_rejections_without_a_message_are_still_bisected() {
    let server = FaultServer::start(|request: &Received, _| {
        let text = request.body_text();
        if text.contains("\"c3\"") || text.contains("\"c700\"") {
            Reply::raw(400, "text/html", "<html><body>Bad Request</body></html>")
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
        stream::iter((0..1000).map(comment)),
        SyncOptions::default().batch_size(1000),
    )
    .await;

    assert_eq!(report.synced, 998);
    let failed: Vec<u64> = report.failures.iter().map(|f| f.item.index).collect();
    assert_eq!(failed, [3, 700]);
    for failure in &report.failures {
        assert!(
            matches!(
                *failure.error,
                Error::UnexpectedResponse { status: 400, .. }
            ),
            "{:?}",
            failure.error
        );
        assert_eq!(failure.error.message(), None);
    }
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
    assert_eq!(report.failed, 1);
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
    assert!(report.failed <= 200, "{}", report.failed);
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
    assert_eq!(report.failed, 5);
    assert_eq!(report.not_attempted, 5);
    assert!(accounted(&report));
    assert_eq!(target.requests.load(Ordering::SeqCst), 4);
    assert_eq!(report.requests, 4);
}

/// Above the gate's cap (60 s) and within `max_retry_after` (15 minutes).
#[tokio::test(start_paused = true)]
async fn a_retry_after_above_the_gate_cap_is_reported_as_a_pause() {
    let target = Slow {
        bad: HashSet::new(),
        requests: AtomicU64::new(0),
        first_answer: Mutex::new(Some(
            Error::api(429, "quota exceeded").with_retry_after(Duration::from_secs(600)),
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

    assert_eq!(*paused.lock().unwrap(), [(Duration::from_secs(600), 10)]);
    assert_eq!(report.synced, 10);
    assert_eq!(report.requests, 2);
}

/// A target that rejects every request, an empty one too, with the same
/// 422 (a source in the wrong state, a quota): the job stops after a few
/// request-level rejections instead of reading its whole input.
#[tokio::test]
async fn consecutive_request_level_rejections_stop_the_job() {
    struct Locked(AtomicU64);
    impl SyncTarget<types::CommentNew> for Locked {
        fn sync<'a>(
            &'a self,
            _: &'a [types::CommentNew],
        ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::task::yield_now().await;
                Err(Error::api(422, "Source acme/inbox is locked"))
            })
        }
    }
    let target = Locked(AtomicU64::new(0));
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let input = stream::iter(0..100_000u64).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        comment(i)
    });

    let report = sync_with(
        &target,
        input,
        SyncOptions::default().batch_size(100).concurrency(2),
    )
    .await;

    let stopped = report.stopped.as_ref().expect("stopped");
    assert_eq!(stopped.status(), Some(422));
    assert_eq!(stopped.message(), Some("Source acme/inbox is locked"));
    // 3 rejected batches, the one in flight beside them and the one being
    // filled: the input is not read to its end.
    let produced = produced.load(Ordering::Relaxed);
    assert!(produced <= 600, "read {produced}");
    assert_eq!(report.read, produced);
    assert_eq!(report.synced, 0);
    // At most 4 requests per batch: the batch, its halves, one empty probe.
    assert!(report.requests <= 4 * report.batches, "{report:?}");
    assert_eq!(report.requests, target.0.load(Ordering::SeqCst));
    assert!(accounted(&report));
    assert!(report.not_attempted > 0 || report.read < 100_000);
}

/// A `Retry-After` of a day fails the batch at once, with the wait in its
/// error, instead of parking the job for a day.
#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_fails_the_batch_at_once() {
    let target = Slow {
        bad: HashSet::new(),
        requests: AtomicU64::new(0),
        first_answer: Mutex::new(Some(
            Error::api(429, "quota exceeded").with_retry_after(Duration::from_secs(86_400)),
        )),
    };
    let started = tokio::time::Instant::now();

    let report = sync_with(
        &target,
        stream::iter((0..20).map(comment)),
        SyncOptions::default().batch_size(10).concurrency(1),
    )
    .await;

    // Two requests of 1 s each, and no wait between them.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(report.requests, 2);
    assert_eq!(report.synced, 10);
    assert_eq!(report.failed, 10);
    let error = &report.failures[0].error;
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(86_400)));
    assert!(report.failures.iter().all(|f| f.item.index < 10));
    assert!(report.stopped.is_none());
    assert!(accounted(&report));
}

/// Every request is told to come back in a day: each batch fails at once,
/// and 3 in a row stop the job.
#[tokio::test(start_paused = true)]
async fn retry_afters_beyond_the_cap_in_a_row_stop_the_job() {
    struct Closed(AtomicU64);
    impl SyncTarget<types::CommentNew> for Closed {
        fn sync<'a>(
            &'a self,
            _: &'a [types::CommentNew],
        ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                Err(Error::api(503, "maintenance").with_retry_after(Duration::from_secs(86_400)))
            })
        }
    }
    let target = Closed(AtomicU64::new(0));
    let started = tokio::time::Instant::now();

    let report = sync_with(
        &target,
        stream::iter((0..1000).map(comment)),
        SyncOptions::default().batch_size(10).concurrency(1),
    )
    .await;

    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(target.0.load(Ordering::SeqCst), 3);
    assert_eq!(report.requests, 3);
    assert_eq!(report.failed, 30);
    let stopped = report.stopped.as_ref().expect("stopped");
    assert_eq!(stopped.retry_after(), Some(Duration::from_secs(86_400)));
    assert!(report.read < 1000);
    assert!(accounted(&report));
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
    let server = FaultServer::start(|_, _| {
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
    .idle_wait(Duration::from_millis(500));
    let shutdown = consumer.shutdown_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        shutdown.cancel();
    });

    let summary = consumer
        .run(|_batch| async { Ok::<_, HandlerError>(()) })
        .await
        .unwrap();

    assert_eq!(summary.batches, 0);
    let received = server.received();
    // Checked here: an assertion in the server's task could not fail the test.
    assert!(
        received.iter().all(|r| r.path == format!("{BASE}/results")),
        "{:?}",
        received.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // One fetch per 500 ms in 3 s: at most 7, however slow the machine (a
    // tight loop made thousands); at least 2 on any machine.
    let fetches = received.len();
    assert!((2..=7).contains(&fetches), "{fetches} fetches");
}

fn one_comment_batch() -> Reply {
    Reply::json(
        200,
        json!({"status": "ok", "num_filtered": 0, "more_results": false,
            "continuation": "pos:1",
            "results": [{"comment": stream_comment("18ba5ce699f8da1f.m1"), "prediction": null, "continuation": "pos:1"}]}),
    )
}

fn advances(server: &FaultServer) -> Vec<String> {
    server
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/advance"))
        .map(Received::body_text)
        .collect()
}

#[tokio::test]
async fn an_advance_answered_429_is_retried_with_the_same_sequence_id_before_redelivery() {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = FaultServer::start(move |request: &Received, n| {
        if request.path.ends_with("/results") {
            one_comment_batch()
        } else if n == 0 {
            Reply::json_with(
                429,
                json!({"status": "error", "message": "slow down"}),
                ("retry-after", "1"),
            )
        } else {
            // Stop once the batch is advanced past.
            stop.cancel();
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
    .error_backoff(Duration::from_millis(10))
    .shutdown(shutdown);
    let handled = Arc::new(AtomicU64::new(0));
    let count = handled.clone();

    let summary = consumer
        .run(move |_batch| {
            count.fetch_add(1, Ordering::SeqCst);
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
    assert_eq!(advances(&server), [r#"{"sequence_id":"pos:1"}"#; 2]);
}

/// A shutdown requested while an advance waits to be retried (here for a
/// `Retry-After` of an hour) ends the wait: `run` returns without having
/// advanced, and the batch is delivered again by the next run.
#[tokio::test]
async fn shutdown_cuts_an_advance_retry_wait_short() {
    let server = FaultServer::start(|request: &Received, _| {
        if request.path.ends_with("/results") {
            one_comment_batch()
        } else {
            Reply::json_with(
                429,
                json!({"status": "error", "message": "slow down"}),
                ("retry-after", "3600"),
            )
        }
    })
    .await;
    let consumer = StreamConsumer::new(
        client(&server, fast_retries(3)),
        "acme",
        "triage",
        "refunds",
    );
    let shutdown = consumer.shutdown_token();

    let run = consumer.run(move |_batch| {
        // Stop after this batch: its advance is still sent first.
        shutdown.cancel();
        async { Ok::<_, HandlerError>(()) }
    });
    // Generous: it returns at once; before the fix it slept for an hour.
    let summary = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the advance's retry wait ignored the shutdown")
        .unwrap();

    assert_eq!(summary.batches, 0, "not advanced past");
    assert_eq!(advances(&server), [r#"{"sequence_id":"pos:1"}"#]);
}

/// A token provider that reopens the fault server's port before the
/// `reopen_at`-th token it hands out (from 0).
struct ReopenBefore {
    server: FaultServer,
    reopen_at: usize,
    calls: AtomicU64,
}

impl std::fmt::Debug for ReopenBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReopenBefore").finish_non_exhaustive()
    }
}

impl cm_api::TokenProvider for ReopenBefore {
    fn token(&self) -> cm_api::auth::BoxFuture<'_, Result<cm_api::AccessToken, cm_api::AuthError>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
        if call == self.reopen_at {
            self.server.reopen();
        }
        Box::pin(async { Ok(cm_api::AccessToken::new("tok-static-123", None)) })
    }
}

/// An advance that could not connect certainly did not happen: the
/// consumer sends it again with the same sequence id, and the batch is not
/// redelivered.
#[tokio::test]
async fn an_advance_that_could_not_connect_is_retried_with_the_same_sequence_id() {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = FaultServer::start(move |request: &Received, _| {
        if request.path.ends_with("/results") {
            one_comment_batch()
        } else {
            stop.cancel();
            Reply::json(200, json!({"status": "ok", "sequence_id": "pos:1"}))
        }
    })
    .await;
    // Tokens: 0 for the fetch, 1 for the advance (refused: the port is
    // closed by the handler), 2 for its retry (the port is open again).
    let client = isolated()
        .endpoint(Endpoint::parse(&server.url).unwrap())
        .token_provider(ReopenBefore {
            server: server.clone(),
            reopen_at: 2,
            calls: AtomicU64::new(0),
        })
        .retry_policy(fast_retries(2))
        .build()
        .unwrap();
    let consumer = StreamConsumer::new(client, "acme", "triage", "refunds")
        .error_backoff(Duration::from_millis(10))
        .shutdown(shutdown);
    let handled = Arc::new(AtomicU64::new(0));
    let count = handled.clone();
    let closer = server.clone();

    let summary = consumer
        .run(move |_batch| {
            count.fetch_add(1, Ordering::SeqCst);
            closer.close();
            async { Ok::<_, HandlerError>(()) }
        })
        .await
        .unwrap();

    assert_eq!(summary.batches, 1);
    assert_eq!(handled.load(Ordering::SeqCst), 1, "not redelivered");
    // Only the retry reached the server, with the same sequence id.
    assert_eq!(advances(&server), [r#"{"sequence_id":"pos:1"}"#]);
    assert_eq!(server.count(&format!("{BASE}/results")), 1);
}
