//! Bulk uploads: the accounting property against an in-process fake with
//! injected failures, the cost of bisection, streaming without reading
//! ahead, and the HTTP targets (including the shared 429 gate) on a
//! loopback server.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cm_api::bulk::{self, SyncCounts, SyncEvent, SyncOptions, SyncReport, SyncTarget, sync_with};
use cm_api::{Error, RetryPolicy, types};
use common::{fast_retries, token_client};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream;
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use proptest::prelude::*;
use serde_json::{Value, json};

fn comment(id: &str, text: &str) -> types::CommentNew {
    serde_json::from_value(json!({
        "id": id,
        "messages": [{"body": {"text": text}}],
    }))
    .unwrap()
}

/// An in-process `sync_comments`: rejects (422) any request holding a bad
/// id, fails a random share of requests with 429/503 before storing
/// anything, and upserts the rest, counting as the server does.
struct Fake {
    bad: HashSet<String>,
    transient_rate: f64,
    rng: Mutex<fastrand::Rng>,
    store: Mutex<HashMap<String, String>>,
    requests: AtomicU64,
    largest: AtomicUsize,
    /// Rejects every bad item with one message that names none.
    generic: bool,
}

impl Fake {
    fn new(bad: HashSet<String>, transient_rate: f64, seed: u64) -> Self {
        Self {
            bad,
            transient_rate,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            store: Mutex::default(),
            requests: AtomicU64::new(0),
            largest: AtomicUsize::new(0),
            generic: false,
        }
    }
}

fn text(c: &types::CommentNew) -> String {
    serde_json::to_string(&c.messages).unwrap()
}

impl SyncTarget<types::CommentNew> for Fake {
    fn sync<'a>(
        &'a self,
        items: &'a [types::CommentNew],
    ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            self.requests.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(items.len(), Ordering::SeqCst);
            // Let the other batches in flight interleave.
            tokio::task::yield_now().await;
            let transient = {
                let mut rng = self.rng.lock().unwrap();
                (rng.f64() < self.transient_rate).then(|| if rng.bool() { 429 } else { 503 })
            };
            if let Some(status) = transient {
                return Err(Error::api(status, "try again"));
            }
            if let Some(bad) = items.iter().find(|c| self.bad.contains(&c.id)) {
                if self.generic {
                    return Err(Error::api(422, "invalid comment"));
                }
                return Err(Error::api(422, format!("comment {} is invalid", bad.id)));
            }
            let mut store = self.store.lock().unwrap();
            let (mut new, mut updated, mut unchanged) = (0, 0, 0);
            for c in items {
                match store.insert(c.id.clone(), text(c)) {
                    None => new += 1,
                    Some(old) if old == text(c) => unchanged += 1,
                    Some(_) => updated += 1,
                }
            }
            Ok(SyncCounts::new(new, updated, unchanged))
        })
    }
}

/// Every item's fate as told by the progress events.
#[derive(Default)]
struct Seen {
    synced: Vec<u64>,
    failed: Vec<u64>,
}

fn observe(options: SyncOptions) -> (SyncOptions, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    let options = options.on_progress(move |p| {
        let mut seen = sink.lock().unwrap();
        match &p.event {
            SyncEvent::Synced { items, .. } => seen.synced.extend(items.iter().map(|k| k.index)),
            SyncEvent::Failed { failures } => {
                seen.failed.extend(failures.iter().map(|f| f.item.index))
            }
            _ => {}
        }
        assert_eq!(p.totals.synced, seen.synced.len() as u64);
        assert_eq!(p.totals.failed, seen.failed.len() as u64);
    });
    (options, seen)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

proptest! {
    // A fixed seed keeps the suite deterministic; no regression files are written.
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xb01c_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every input item is synced or failed, exactly once; the bad ones,
    /// and only they (or items of batches that ran out of retries), fail;
    /// what the fake stored is exactly what the report calls synced.
    #[test]
    fn every_item_is_accounted_for_exactly_once(
        n in 0usize..400,
        distinct in 1usize..400,
        bad_share in 0.0f64..0.1,
        transient_rate in 0.0f64..0.3,
        batch_size in 1usize..64,
        concurrency in 1usize..6,
        retries in 0u32..3,
        generic in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = fastrand::Rng::with_seed(seed);
        // Ids repeat (updates), texts vary (updated vs unchanged); so do bad
        // ids, and the fake may reject every bad item with one generic
        // message: two halves rejected the same way then hold several bad
        // items, not a whole-request rejection.
        let input: Vec<types::CommentNew> = (0..n)
            .map(|i| comment(&format!("c{}", i % distinct), &format!("t{}", rng.u8(0..3))))
            .collect();
        let bad: HashSet<String> = input
            .iter()
            .filter(|_| rng.f64() < bad_share)
            .map(|c| c.id.clone())
            .collect();
        let mut fake = Fake::new(bad.clone(), transient_rate, seed);
        fake.generic = generic;
        // 429s that outlast the retries are request-level rejections; the
        // job must not stop for them here (the stop has tests of its own).
        let (options, seen) = observe(
            SyncOptions::default()
                .batch_size(batch_size)
                .concurrency(concurrency)
                .max_batch_retries(retries)
                .retry_backoff(Duration::ZERO)
                .max_request_rejections(u32::MAX),
        );

        let report: SyncReport =
            runtime().block_on(sync_with(&fake, stream::iter(input.clone()), options));

        prop_assert_eq!(report.read, n as u64);
        prop_assert_eq!(report.synced + report.failed, n as u64);
        prop_assert_eq!(report.failures.len() as u64, report.failed);
        prop_assert_eq!(report.failures_not_kept, 0);
        prop_assert_eq!(report.not_attempted, 0);
        prop_assert!(report.stopped.is_none());
        let seen = seen.lock().unwrap();
        let mut all: Vec<u64> = seen.synced.iter().chain(&seen.failed).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n as u64).collect::<Vec<_>>());
        let failed: Vec<u64> = report.failures.iter().map(|f| f.item.index).collect();
        let mut from_events = seen.failed.clone();
        from_events.sort_unstable();
        prop_assert_eq!(&failed, &from_events);

        // A good item never fails for the rejection of another: only with a
        // transient error that outlasted the retries.
        for (index, c) in input.iter().enumerate() {
            let failure = report.failures.iter().find(|f| f.item.index == index as u64);
            match failure {
                Some(f) => {
                    prop_assert_eq!(f.item.id.as_deref(), Some(c.id.as_str()));
                    prop_assert!(
                        bad.contains(&c.id) || f.error.is_retryable(),
                        "good item {} failed with {}", index, f.error
                    );
                }
                None => prop_assert!(!bad.contains(&c.id), "bad item {} was synced", index),
            }
        }
        if transient_rate == 0.0 {
            for f in &report.failures {
                prop_assert_eq!(f.error.status(), Some(422));
            }
        }
        // Stored ids are exactly the ids of synced items.
        let synced_ids: HashSet<&str> = seen
            .synced
            .iter()
            .map(|&i| input[i as usize].id.as_str())
            .collect();
        let store = fake.store.lock().unwrap();
        let stored: HashSet<&str> = store.keys().map(String::as_str).collect();
        prop_assert_eq!(stored, synced_ids);
        prop_assert_eq!(report.counts.total(), report.synced);
        prop_assert!(report.counts_match());
        prop_assert_eq!(report.requests, fake.requests.load(Ordering::SeqCst));
        prop_assert!(fake.largest.load(Ordering::SeqCst) <= batch_size);
    }
}

#[tokio::test]
async fn one_bad_comment_costs_two_requests_per_halving() {
    let input: Vec<_> = (0..1024).map(|i| comment(&format!("c{i}"), "hi")).collect();
    let fake = Fake::new(HashSet::from(["c700".to_owned()]), 0.0, 1);

    let report = sync_with(
        &fake,
        stream::iter(input),
        SyncOptions::default().batch_size(1024),
    )
    .await;

    // 1 rejected batch, then at each of the 10 halvings one good and one bad half.
    assert_eq!(report.requests, 1 + 2 * 10);
    assert_eq!(report.splits, 10);
    assert_eq!(report.synced, 1023);
    assert_eq!(report.counts, SyncCounts::new(1023, 0, 0));
    assert_eq!(report.failed, 1);
    let failure = &report.failures[0];
    assert_eq!(failure.item.index, 700);
    assert_eq!(failure.item.id.as_deref(), Some("c700"));
    assert_eq!(failure.error.status(), Some(422));
    assert_eq!(failure.error.message(), Some("comment c700 is invalid"));
}

/// Two bad items rejected with one generic message: both halves of the
/// batch fail the same way, but the probe (an empty request: nothing is
/// synced yet) is accepted, so this is no whole-request rejection and
/// bisection goes on.
#[tokio::test]
async fn two_bad_items_with_one_generic_message_do_not_fail_their_neighbours() {
    let input: Vec<_> = (0..1024).map(|i| comment(&format!("c{i}"), "hi")).collect();
    let mut fake = Fake::new(
        HashSet::from(["c100".to_owned(), "c900".to_owned()]),
        0.0,
        1,
    );
    fake.generic = true;

    let report = sync_with(
        &fake,
        stream::iter(input),
        SyncOptions::default().batch_size(1024),
    )
    .await;

    assert_eq!(report.synced, 1022);
    let failed: Vec<u64> = report.failures.iter().map(|f| f.item.index).collect();
    assert_eq!(failed, [100, 900]);
    for failure in &report.failures {
        assert_eq!(failure.error.message(), Some("invalid comment"));
    }
    assert_eq!(report.requests, fake.requests.load(Ordering::SeqCst));
}

#[tokio::test]
async fn server_counts_never_overflow_the_totals() {
    struct Bogus;
    impl SyncTarget<types::CommentNew> for Bogus {
        fn sync<'a>(
            &'a self,
            _: &'a [types::CommentNew],
        ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
            Box::pin(async { Ok(SyncCounts::new(u64::MAX, u64::MAX, 1)) })
        }
    }
    let input = (0..4).map(|i| comment(&format!("c{i}"), "hi"));

    let report = sync_with(
        &Bogus,
        stream::iter(input),
        SyncOptions::default().batch_size(1),
    )
    .await;

    assert_eq!(report.synced, 4);
    assert_eq!(report.counts.new, u64::MAX);
    assert_eq!(report.counts.total(), u64::MAX);
    assert!(!report.counts_match());
}

#[tokio::test]
async fn errors_of_calls_that_sent_nothing_are_not_counted_as_requests() {
    struct NothingSent;
    impl SyncTarget<types::CommentNew> for NothingSent {
        fn sync<'a>(
            &'a self,
            _: &'a [types::CommentNew],
        ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
            Box::pin(async {
                Err(Error::Auth(cm_api::AuthError::Provider(
                    "no credentials".into(),
                )))
            })
        }
    }
    let input = (0..10).map(|i| comment(&format!("c{i}"), "hi"));

    let report = sync_with(
        &NothingSent,
        stream::iter(input),
        SyncOptions::default().batch_size(5),
    )
    .await;

    assert!(report.stopped.is_some());
    assert_eq!(report.requests, 0);
}

#[tokio::test]
async fn errors_that_do_not_blame_the_content_fail_the_batch_without_bisection() {
    struct Failing(AtomicU64);
    impl SyncTarget<types::CommentNew> for Failing {
        fn sync<'a>(
            &'a self,
            _: &'a [types::CommentNew],
        ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(Error::api(501, "not implemented")) })
        }
    }
    let target = Failing(AtomicU64::new(0));
    let input = (0..100).map(|i| comment(&format!("c{i}"), "hi"));

    let report = sync_with(
        &target,
        stream::iter(input),
        SyncOptions::default().batch_size(50),
    )
    .await;

    assert_eq!(target.0.load(Ordering::SeqCst), 2);
    assert_eq!(report.failed, 100);
    assert_eq!(report.failures.len(), 100);
    assert!(
        report.stopped.is_none(),
        "a 5xx is not a request-level rejection"
    );
    assert_eq!(report.splits, 0);
    // Items of one batch share its error.
    assert!(Arc::ptr_eq(
        &report.failures[0].error,
        &report.failures[49].error
    ));
    assert!(!report.is_complete());
}

#[tokio::test]
async fn the_input_is_read_only_as_batch_slots_free_up() {
    let read = Arc::new(AtomicU64::new(0));
    let most_ahead = Arc::new(AtomicU64::new(0));
    struct Watch {
        read: Arc<AtomicU64>,
        most_ahead: Arc<AtomicU64>,
        done: AtomicU64,
    }
    impl SyncTarget<types::CommentNew> for Watch {
        fn sync<'a>(
            &'a self,
            items: &'a [types::CommentNew],
        ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
            Box::pin(async move {
                let ahead = self.read.load(Ordering::SeqCst) - self.done.load(Ordering::SeqCst);
                self.most_ahead.fetch_max(ahead, Ordering::SeqCst);
                tokio::task::yield_now().await;
                self.done.fetch_add(items.len() as u64, Ordering::SeqCst);
                Ok(SyncCounts::new(items.len() as u64, 0, 0))
            })
        }
    }
    let target = Watch {
        read: read.clone(),
        most_ahead: most_ahead.clone(),
        done: AtomicU64::new(0),
    };
    let counter = read.clone();
    // A long, lazily generated input.
    let input = stream::iter(0..200_000u64).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        comment(&format!("c{i}"), "hi")
    });

    let report = sync_with(
        &target,
        input,
        SyncOptions::default().batch_size(100).concurrency(4),
    )
    .await;

    assert_eq!(report.synced, 200_000);
    assert_eq!(report.batches, 2_000);
    // In flight: at most `concurrency` batches plus the one being filled.
    let ahead = most_ahead.load(Ordering::SeqCst);
    assert!(ahead <= 5 * 100, "read {ahead} items ahead");
}

fn json_response(status: u16, body: Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

/// A loopback `sync_comments` that rejects requests holding an id
/// starting with "bad", and records every request's ids.
async fn sync_server(
    server: &MockServer,
    path: &str,
    key: &'static str,
) -> Arc<Mutex<Vec<Vec<String>>>> {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    server
        .mock_async(|when, then| {
            when.method("POST").path(path);
            then.respond_with(move |req: &HttpMockRequest| {
                let body: Value = serde_json::from_slice(req.body_ref()).unwrap();
                let ids: Vec<String> = body[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        let id = if key == "comments" {
                            &c["id"]
                        } else {
                            &c["comment_id"]
                        };
                        id.as_str().unwrap().to_owned()
                    })
                    .collect();
                log.lock().unwrap().push(ids.clone());
                if ids.iter().any(|id| id.starts_with("bad")) {
                    return json_response(
                        400,
                        json!({"status": "error", "message": "invalid comment"}),
                    );
                }
                json_response(
                    200,
                    json!({"status": "ok", "new": ids.len(), "updated": 0,
                    "updated_properties_only": 0, "updated_text_changed": 0, "unchanged": 0}),
                )
            });
        })
        .await;
    requests
}

#[tokio::test]
async fn sync_comments_over_http_bisects_and_reports_per_item() {
    let server = MockServer::start_async().await;
    let requests = sync_server(&server, "/api/v1/sources/acme/inbox/sync", "comments").await;
    let client = token_client(&server, RetryPolicy::none());
    let ids = ["c0", "c1", "c2", "bad3", "c4", "c5", "c6", "c7", "c8", "c9"];
    let input = ids.map(|id| comment(id, "hello"));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter(input),
        SyncOptions::default().batch_size(4).concurrency(2),
    )
    .await;

    assert_eq!(report.read, 10);
    assert_eq!(report.synced, 9);
    assert_eq!(report.counts.new, 9);
    assert_eq!(report.batches, 3);
    assert_eq!(report.failed, 1);
    assert_eq!(report.failures[0].item.id.as_deref(), Some("bad3"));
    assert_eq!(report.failures[0].error.status(), Some(400));
    assert_eq!(
        report.failures[0].error.operation_id(),
        Some("sync_comments")
    );
    let requests = requests.lock().unwrap();
    // [c0..bad3] fails, [c0 c1] ok, [c2 bad3] fails, [c2] ok, [bad3] fails; two good batches.
    assert_eq!(requests.len(), 7);
    assert_eq!(report.requests, 7);
    assert!(requests.iter().all(|r| r.len() <= 4));
}

/// The exact requests of a job: each batch's body is written into a buffer
/// sized from the previous body, which must not change a byte of it, for
/// a batch larger or smaller than the one before.
#[tokio::test]
async fn sync_comments_sends_each_batch_as_the_documented_json_request() {
    let server = MockServer::start_async().await;
    let batch = |ids: &[&str]| json!({"comments": ids.iter().map(|id| json!({"id": id, "messages": [{"body": {"text": "hello"}}]})).collect::<Vec<_>>()});
    let ok = json!({"status": "ok", "new": 1, "updated": 0, "unchanged": 0});
    let mut mocks = Vec::new();
    for ids in [&["c0", "c1", "c2"][..], &["c3", "c4", "c5"], &["c6"]] {
        let body = batch(ids);
        let ok = ok.clone();
        mocks.push(
            server
                .mock_async(move |when, then| {
                    when.method("POST")
                        .path("/api/v1/sources/acme/inbox/sync")
                        .header("authorization", "Bearer tok-static-123")
                        .header("content-type", "application/json")
                        .header("accept", "application/json")
                        .json_body(body);
                    then.status(200)
                        .header("content-type", "application/json")
                        .json_body(ok);
                })
                .await,
        );
    }
    let client = token_client(&server, RetryPolicy::none());
    let input = (0..7).map(|i| comment(&format!("c{i}"), "hello"));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter(input),
        SyncOptions::default().batch_size(3),
    )
    .await;

    assert_eq!(report.synced, 7, "{:?}", report.failures.first());
    assert_eq!(report.requests, 3);
    for mock in &mocks {
        mock.assert_async().await;
    }
}

#[tokio::test]
async fn sync_raw_emails_over_http() {
    let server = MockServer::start_async().await;
    let requests = sync_server(
        &server,
        "/api/v1/sources/acme/inbox/sync-raw-emails",
        "documents",
    )
    .await;
    let client = token_client(&server, RetryPolicy::none());
    let email = |id: &str| -> types::RawEmailDocument {
        serde_json::from_value(json!({
            "comment_id": id,
            "raw_email": {"headers": {"raw": "Subject: hi\r\n"}, "body": {"plain": "hello"}},
        }))
        .unwrap()
    };

    let report = bulk::sync_raw_emails(
        &client,
        "acme",
        "inbox",
        stream::iter([email("e1"), email("bad2"), email("e3")]),
        SyncOptions::default().batch_size(3),
    )
    .await;

    assert_eq!(report.synced, 2);
    assert_eq!(report.failed, 1);
    assert_eq!(report.failures[0].item.id.as_deref(), Some("bad2"));
    // [e1 bad2 e3] fails, [e1] ok, [bad2 e3] fails, [bad2] fails, [e3] ok.
    assert_eq!(requests.lock().unwrap().len(), 5);
}

/// A 429 with `Retry-After` on one batch pauses every batch: no request of
/// the job reaches the server during the pause.
#[tokio::test]
async fn a_rate_limit_on_one_batch_pauses_the_whole_upload() {
    let server = MockServer::start_async().await;
    let arrivals: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let log = arrivals.clone();
    let limited = Arc::new(AtomicUsize::new(0));
    server
        .mock_async(|when, then| {
            when.method("POST").path("/api/v1/sources/acme/inbox/sync");
            then.respond_with(move |req: &HttpMockRequest| {
                let body: Value = serde_json::from_slice(req.body_ref()).unwrap();
                let n = body["comments"].as_array().unwrap().len();
                // The third request is rate limited, once.
                let status = if log.lock().unwrap().len() == 2
                    && limited.fetch_add(1, Ordering::SeqCst) == 0
                {
                    429
                } else {
                    200
                };
                log.lock().unwrap().push((Instant::now(), status));
                if status == 429 {
                    return HttpMockResponse::builder()
                        .status(429)
                        .header("retry-after", "1")
                        .header("content-type", "application/json")
                        .body(r#"{"status":"error","message":"slow down"}"#)
                        .build();
                }
                json_response(
                    200,
                    json!({"status": "ok", "new": n, "updated": 0,
                    "updated_properties_only": 0, "updated_text_changed": 0, "unchanged": 0}),
                )
            });
        })
        .await;
    let client = token_client(&server, fast_retries(3));
    let input = (0..16).map(|i| comment(&format!("c{i}"), "hi"));

    let report = bulk::sync_comments(
        &client,
        "acme",
        "inbox",
        stream::iter(input),
        SyncOptions::default().batch_size(2).concurrency(2),
    )
    .await;

    assert!(report.is_complete(), "{:?}", report.failures);
    assert_eq!(report.synced, 16);
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 9, "8 batches plus one retry");
    let (limited_at, _) = arrivals.iter().find(|(_, s)| *s == 429).unwrap();
    let mut after: Vec<Duration> = arrivals
        .iter()
        .filter(|(at, _)| at > limited_at)
        .map(|(at, _)| at.duration_since(*limited_at))
        .collect();
    after.sort();
    // Every later request, of any batch, waited out the Retry-After, except
    // at most the other batch's request already in flight when the 429 came.
    let early = after
        .iter()
        .filter(|d| **d < Duration::from_millis(900))
        .count();
    assert!(early <= 1, "{after:?}");
    assert!(after.len() - early >= 5, "{after:?}");
}

// ---------------------------------------------------------------------------
// One generic message for every bad item (issue 19, item 3)
// ---------------------------------------------------------------------------

/// A `sync_comments` that rejects any request holding a bad comment with a
/// 422 whose message names no item, accepts the rest (an empty request
/// too), and logs every request's ids.
#[derive(Default)]
struct Generic {
    bad: HashSet<String>,
    log: Mutex<Vec<Vec<String>>>,
    stored: Mutex<HashSet<String>>,
}

impl Generic {
    fn new(bad: impl IntoIterator<Item = u64>) -> Self {
        Self {
            bad: bad.into_iter().map(|i| format!("c{i}")).collect(),
            ..Self::default()
        }
    }
}

impl SyncTarget<types::CommentNew> for Generic {
    fn sync<'a>(
        &'a self,
        items: &'a [types::CommentNew],
    ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            let ids: Vec<String> = items.iter().map(|c| c.id.clone()).collect();
            self.log.lock().unwrap().push(ids);
            tokio::task::yield_now().await;
            if items.iter().any(|c| self.bad.contains(&c.id)) {
                return Err(Error::api(422, "Invalid request"));
            }
            let mut stored = self.stored.lock().unwrap();
            let new = items.iter().filter(|c| stored.insert(c.id.clone())).count() as u64;
            Ok(SyncCounts::new(new, items.len() as u64 - new, 0))
        })
    }
}

/// Uploads `n` comments `c0..` to a [`Generic`] target rejecting those at
/// `bad`, and checks that exactly the bad ones failed, each sent alone and
/// rejected with its own error, and that every good one was stored.
async fn only_bad_items_fail(n: u64, bad: &[u64], options: SyncOptions) -> SyncReport {
    let target = Generic::new(bad.iter().copied());
    let input = (0..n).map(|i| comment(&format!("c{i}"), "hi"));

    let report = sync_with(&target, stream::iter(input), options).await;

    let failed: Vec<u64> = report.failures.iter().map(|f| f.item.index).collect();
    let mut expected = bad.to_vec();
    expected.sort_unstable();
    assert!(
        failed == expected,
        "{} failures for {} bad items, first {:?}",
        failed.len(),
        bad.len(),
        &failed[..failed.len().min(24)]
    );
    assert_eq!(report.failed, bad.len() as u64);
    assert_eq!(report.synced, n - bad.len() as u64);
    assert_eq!(report.not_attempted, 0);
    assert!(report.stopped.is_none());
    let log = target.log.lock().unwrap();
    for failure in &report.failures {
        assert_eq!(failure.error.status(), Some(422));
        assert_eq!(failure.error.message(), Some("Invalid request"));
        let id = failure.item.id.clone().unwrap();
        assert!(
            log.iter().any(|request| *request == [id.clone()]),
            "{id} was never sent alone"
        );
    }
    let stored = target.stored.lock().unwrap();
    assert_eq!(stored.len() as u64, n - bad.len() as u64);
    assert!((0..n).all(|i| bad.contains(&i) || stored.contains(&format!("c{i}"))));
    assert_eq!(report.requests, log.len() as u64);
    report
}

/// The reproduction: 10,000 comments, 20 bad at random, one message naming
/// none, default options. The unfixed job failed good comments for 4 of
/// these 32 layouts (26 to 1,041 failures): an item probed alone that was
/// itself bad was taken for proof of a whole-request rejection.
#[tokio::test]
async fn a_generic_rejection_fails_exactly_the_bad_items() {
    for seed in 0..32 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bad = HashSet::new();
        while bad.len() < 20 {
            bad.insert(rng.u64(0..10_000));
        }
        let bad: Vec<u64> = bad.into_iter().collect();

        let report = only_bad_items_fail(10_000, &bad, SyncOptions::default()).await;

        assert_eq!(report.failed, 20, "seed {seed}");
    }
}

/// A bad item as the first item of a right half, the position the unfixed
/// job probed alone: both halves of the batch are rejected the same way.
#[tokio::test]
async fn a_bad_item_first_in_a_right_half_does_not_fail_the_batch() {
    // Batch of 1024: halves at 512, quarters at 256 and 768.
    only_bad_items_fail(2048, &[100, 512], SyncOptions::default()).await;
    only_bad_items_fail(
        2048,
        &[600, 768, 1024 + 3, 1024 + 512],
        SyncOptions::default(),
    )
    .await;
}

#[tokio::test]
async fn adjacent_bad_items_do_not_fail_their_neighbours() {
    // Straddling the halves (511 | 512), and side by side within one half.
    only_bad_items_fail(2048, &[511, 512], SyncOptions::default()).await;
    only_bad_items_fail(2048, &[300, 301, 302, 1500, 1501], SyncOptions::default()).await;
}

/// Every item of a batch is bad: each is sent alone and fails with its own
/// rejection, and the job goes on (nothing shows the request is at fault).
#[tokio::test]
async fn a_batch_of_bad_items_fails_item_by_item_and_the_job_goes_on() {
    let options = || SyncOptions::default().batch_size(8).concurrency(1);
    // After a synced batch (a known good item exists).
    only_bad_items_fail(32, &(8..16).collect::<Vec<_>>(), options()).await;
    // As the first batch (none is known good yet).
    only_bad_items_fail(32, &(0..8).collect::<Vec<_>>(), options()).await;
    // Several whole batches in a row.
    only_bad_items_fail(64, &(8..40).collect::<Vec<_>>(), options()).await;
}

// ---------------------------------------------------------------------------
// A live input (issue 19, item 13)
// ---------------------------------------------------------------------------

/// Records when each request came, after the job started, and its ids.
struct Arrivals {
    started: tokio::time::Instant,
    log: Mutex<Vec<(Duration, Vec<String>)>>,
}

impl SyncTarget<types::CommentNew> for Arrivals {
    fn sync<'a>(
        &'a self,
        items: &'a [types::CommentNew],
    ) -> BoxFuture<'a, Result<SyncCounts, Error>> {
        Box::pin(async move {
            let ids = items.iter().map(|c| c.id.clone()).collect();
            self.log.lock().unwrap().push((self.started.elapsed(), ids));
            Ok(SyncCounts::new(items.len() as u64, 0, 0))
        })
    }
}

/// A queue that yields 3 items and then stays open: by default they are
/// sent 5 s after the first was read, a partial batch, while the input is
/// still open.
#[tokio::test(start_paused = true)]
async fn a_live_input_has_its_items_sent_after_the_default_delay() {
    let (sender, receiver) = futures::channel::mpsc::unbounded();
    for i in 0..3 {
        sender
            .unbounded_send(comment(&format!("c{i}"), "hi"))
            .unwrap();
    }
    let target = Arrivals {
        started: tokio::time::Instant::now(),
        log: Mutex::default(),
    };
    let job = sync_with(&target, receiver, SyncOptions::default().batch_size(100));
    let watch = async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let log = target.log.lock().unwrap().clone();
        // Only now does the input end.
        drop(sender);
        log
    };

    let (report, log) = tokio::join!(job, watch);

    let ids = vec!["c0".to_owned(), "c1".to_owned(), "c2".to_owned()];
    assert_eq!(log, [(Duration::from_secs(5), ids)]);
    assert_eq!(report.synced, 3);
    assert_eq!(report.batches, 1);
}

/// The same queue with a delay of 2 s; then it yields 2 more items, sent
/// 2 s after the first of them, and ends.
#[tokio::test(start_paused = true)]
async fn max_batch_delay_sends_a_partial_batch_while_the_input_is_open() {
    let (sender, receiver) = futures::channel::mpsc::unbounded();
    for i in 0..3 {
        sender
            .unbounded_send(comment(&format!("c{i}"), "hi"))
            .unwrap();
    }
    let target = Arrivals {
        started: tokio::time::Instant::now(),
        log: Mutex::default(),
    };
    let options = SyncOptions::default()
        .batch_size(100)
        .max_batch_delay(Duration::from_secs(2));
    let job = sync_with(&target, receiver, options);
    let feed = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let sent = target.log.lock().unwrap().len();
        for i in 3..5 {
            sender
                .unbounded_send(comment(&format!("c{i}"), "hi"))
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(sender);
        sent
    };

    let (report, sent_before_more) = tokio::join!(job, feed);

    assert_eq!(sent_before_more, 1);
    let ids = |r: std::ops::Range<u32>| r.map(|i| format!("c{i}")).collect::<Vec<_>>();
    assert_eq!(
        *target.log.lock().unwrap(),
        [
            (Duration::from_secs(2), ids(0..3)),
            (Duration::from_secs(12), ids(3..5))
        ]
    );
    assert_eq!(report.synced, 5);
    assert_eq!(report.batches, 2);
}

/// `Duration::MAX`: batches wait to be full, or for the input's end.
#[tokio::test(start_paused = true)]
async fn without_a_batch_delay_a_partial_batch_waits_for_the_input_to_end() {
    let (sender, receiver) = futures::channel::mpsc::unbounded();
    for i in 0..3 {
        sender
            .unbounded_send(comment(&format!("c{i}"), "hi"))
            .unwrap();
    }
    let target = Arrivals {
        started: tokio::time::Instant::now(),
        log: Mutex::default(),
    };
    let options = SyncOptions::default()
        .batch_size(100)
        .max_batch_delay(Duration::MAX);
    let job = sync_with(&target, receiver, options);
    let close = async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(sender);
    };

    let (report, ()) = tokio::join!(job, close);

    let ids = vec!["c0".to_owned(), "c1".to_owned(), "c2".to_owned()];
    assert_eq!(
        *target.log.lock().unwrap(),
        [(Duration::from_secs(3600), ids)]
    );
    assert_eq!(report.synced, 3);
}

// ---------------------------------------------------------------------------
// Bounded failures (issue 19, item 4)
// ---------------------------------------------------------------------------

/// A job failing many items keeps `k` of them, counts all of them exactly,
/// and passes every one to the sink.
#[tokio::test]
async fn failures_beyond_the_kept_ones_are_counted_and_reach_the_sink() {
    let bad: Vec<u64> = (0..3000).filter(|i| i % 3 == 0).collect();
    let target = Generic::new(bad.iter().copied());
    let sunk = Arc::new(Mutex::new(Vec::new()));
    let sink = sunk.clone();
    let options = SyncOptions::default()
        .batch_size(64)
        .max_failures_kept(10)
        .on_failure(move |f| {
            assert_eq!(f.error.message(), Some("Invalid request"));
            sink.lock().unwrap().push(f.item.index);
        });
    let input = (0..3000).map(|i| comment(&format!("c{i}"), "hi"));

    let report = sync_with(&target, stream::iter(input), options).await;

    assert_eq!(report.failed, 1000);
    assert_eq!(report.synced, 2000);
    assert_eq!(report.failures.len(), 10);
    assert_eq!(report.failures_not_kept, 990);
    assert!(report.failures.iter().all(|f| f.item.index % 3 == 0));
    assert!(report.failures.is_sorted_by_key(|f| f.item.index));
    let mut sunk = sunk.lock().unwrap().clone();
    sunk.sort_unstable();
    assert_eq!(sunk, bad);
    assert_eq!(
        report.read,
        report.synced + report.failed + report.not_attempted
    );
    assert!(!report.is_complete());
}

/// Kept failures are the first reported; 0 keeps none and counts all.
#[tokio::test]
async fn max_failures_kept_zero_lists_none() {
    let target = Generic::new([3, 5, 8]);
    let input = (0..16).map(|i| comment(&format!("c{i}"), "hi"));

    let report = sync_with(
        &target,
        stream::iter(input),
        SyncOptions::default().batch_size(4).max_failures_kept(0),
    )
    .await;

    assert_eq!(report.failed, 3);
    assert!(report.failures.is_empty());
    assert_eq!(report.failures_not_kept, 3);
    assert_eq!(report.synced, 13);
}

/// `no_charge(true)` adds `no_charge=true` to every request of the job, for
/// comments and raw emails; without it the parameter is not sent at all.
#[tokio::test]
async fn no_charge_is_sent_on_every_request_only_when_asked() {
    let server = MockServer::start_async().await;
    let ok = json!({"status": "ok", "new": 1, "updated": 0, "unchanged": 0});
    let charged = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/v1/sources/acme/charged/sync")
                .query_param_missing("no_charge");
            then.status(200).json_body(ok.clone());
        })
        .await;
    let free = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/v1/sources/acme/free/sync")
                .query_param("no_charge", "true");
            then.status(200).json_body(ok.clone());
        })
        .await;
    let free_emails = server
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/v1/sources/acme/free/sync-raw-emails")
                .query_param("no_charge", "true");
            then.status(200).json_body(ok.clone());
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let options = || SyncOptions::default().batch_size(1);
    let comments = || stream::iter((0..2).map(|i| comment(&format!("c{i}"), "hello")));

    let report = bulk::sync_comments(&client, "acme", "charged", comments(), options()).await;
    assert_eq!(report.synced, 2, "{:?}", report.failures.first());
    let target = bulk::CommentsTarget::new(&client, "acme", "free").no_charge(true);
    let report = bulk::sync_with(&target, comments(), options()).await;
    assert_eq!(report.synced, 2, "{:?}", report.failures.first());
    let email: types::RawEmailDocument = serde_json::from_value(json!({
        "comment_id": "e1",
        "raw_email": {"headers": {"raw": "Subject: hi\r\n"}, "body": {"plain": "hello"}},
    }))
    .unwrap();
    let target = bulk::RawEmailsTarget::new(&client, "acme", "free").no_charge(true);
    let report = bulk::sync_with(&target, stream::iter([email]), options()).await;
    assert_eq!(report.synced, 1, "{:?}", report.failures.first());

    assert_eq!(charged.calls_async().await, 2);
    assert_eq!(free.calls_async().await, 2);
    assert_eq!(free_emails.calls_async().await, 1);
}
