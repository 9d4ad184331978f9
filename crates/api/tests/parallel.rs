//! Parallel walks over time windows (`cm_api::paginate::parallel`) against
//! an in-process server that honours the windows: the bounds each window
//! sends, the boundary rule, ordered and unordered output, bounded
//! buffering, the concurrency cap, failures and resuming from the state,
//! boundaries rounded to whole seconds, the cap on windows,
//! and cancellation by drop.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use cm_api::paginate::parallel::ParallelState;
use cm_api::{Client, Endpoint, Error, RateGate, RetryPolicy, types};
use common::fault::{FaultServer, Received, Reply};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

const EXPORT: &str = "/api/v1/datasets/acme/triage/export";
const COMMENTS: &str = "/api/_private/sources/acme/inbox/comments";

/// `seconds` after 2026-01-01T00:00:00Z (millisecond precision).
fn at(seconds: f64) -> DateTime<Utc> {
    let base: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    base + TimeDelta::milliseconds((seconds * 1000.0).round() as i64)
}

fn stamp(seconds: f64) -> String {
    at(seconds).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

type Delay = Box<dyn Fn(usize) -> Duration + Send + Sync>;

/// The comments of the fake server, in timestamp order, and how it answers.
///
/// A page starts at `from` (first page: the first comment at or after it)
/// or at a cursor `c<i>` (the index of its first comment), holds at most
/// `limit` comments before `to` (at or before it with `inclusive_to`, as
/// a server with an inclusive upper bound would), and has a cursor when a
/// comment in range follows.
struct Data {
    comments: Vec<(String, DateTime<Utc>)>,
    inclusive_to: bool,
    /// Compares `from` and `to` truncated to whole seconds, as a server
    /// storing second precision bounds would.
    whole_seconds: bool,
    /// The delay of a page, by the index of its first comment.
    delay: Delay,
    /// Cursors answered with a 500.
    fail: Mutex<HashSet<String>>,
    /// First pages (by their `from`) answered once with a 429 asking for 1 s.
    rate_limit_once: Mutex<HashSet<String>>,
    /// When each request arrived.
    arrivals: Mutex<Vec<Instant>>,
}

struct Asked {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: usize,
}

fn asked(request: &Received) -> Asked {
    let time = |v: Option<&str>| v.map(|s| s.parse::<DateTime<Utc>>().unwrap());
    if request.method == "GET" {
        let q: HashMap<String, String> = url::form_urlencoded::parse(request.query.as_bytes())
            .into_owned()
            .collect();
        Asked {
            from: time(q.get("from_timestamp").map(String::as_str)),
            to: time(q.get("to_timestamp").map(String::as_str)),
            cursor: q.get("after").cloned(),
            limit: q.get("limit").map_or(2, |l| l.parse().unwrap()),
        }
    } else {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        Asked {
            from: time(body["from"].as_str()),
            to: time(body["to"].as_str()),
            cursor: body["continuation"].as_str().map(str::to_owned),
            limit: body["limit"].as_u64().map_or(2, |l| l as usize),
        }
    }
}

/// What a request asked, as compared by the tests: the JSON body of an
/// export, the query parameters of a comment listing.
fn params(request: &Received) -> Value {
    if request.method == "GET" {
        Value::Object(
            url::form_urlencoded::parse(request.query.as_bytes())
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        serde_json::from_slice(&request.body).unwrap()
    }
}

impl Data {
    fn new(comments: &[(&str, f64)]) -> Self {
        Self {
            comments: comments
                .iter()
                .map(|&(id, seconds)| (id.to_owned(), at(seconds)))
                .collect(),
            inclusive_to: false,
            whole_seconds: false,
            delay: Box::new(|_| Duration::ZERO),
            fail: Mutex::default(),
            rate_limit_once: Mutex::default(),
            arrivals: Mutex::default(),
        }
    }

    fn inclusive_to(mut self) -> Self {
        self.inclusive_to = true;
        self
    }

    fn whole_seconds(mut self) -> Self {
        self.whole_seconds = true;
        self
    }

    fn delay(mut self, delay: impl Fn(usize) -> Duration + Send + Sync + 'static) -> Self {
        self.delay = Box::new(delay);
        self
    }

    fn comment(&self, index: usize) -> Value {
        let (id, timestamp) = &self.comments[index];
        let timestamp = timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        json!({"uid": format!("src.{id}"), "id": id, "source_id": "src",
               "timestamp": timestamp, "created_at": timestamp, "messages": []})
    }

    fn answer(&self, request: &Received) -> Reply {
        self.arrivals.lock().unwrap().push(Instant::now());
        let mut asked = asked(request);
        if self.whole_seconds {
            let truncate = |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp(), 0).unwrap();
            asked.from = asked.from.map(truncate);
            asked.to = asked.to.map(truncate);
        }
        let in_range = |i: usize| {
            let t = self.comments[i].1;
            asked
                .to
                .is_none_or(|to| if self.inclusive_to { t <= to } else { t < to })
        };
        let start = match &asked.cursor {
            Some(cursor) => cursor[1..].parse::<usize>().unwrap(),
            None => self
                .comments
                .iter()
                .position(|(_, t)| asked.from.is_none_or(|from| *t >= from))
                .unwrap_or(self.comments.len()),
        };
        let delay = (self.delay)(start);
        if let Some(cursor) = &asked.cursor
            && self.fail.lock().unwrap().contains(cursor)
        {
            return Reply::json(500, json!({"status": "error", "message": "boom"})).after(delay);
        }
        if asked.cursor.is_none() {
            let from = asked.from.map(|f| f.to_rfc3339()).unwrap_or_default();
            if self.rate_limit_once.lock().unwrap().remove(&from) {
                return Reply::json_with(
                    429,
                    json!({"status": "error", "message": "slow down"}),
                    ("retry-after", "1"),
                );
            }
        }
        let mut end = start;
        while end < self.comments.len() && end - start < asked.limit && in_range(end) {
            end += 1;
        }
        let next = (end < self.comments.len() && in_range(end)).then(|| format!("c{end}"));
        let comments: Vec<Value> = (start..end)
            .map(|i| {
                if request.method == "GET" {
                    self.comment(i)
                } else {
                    json!({"comment": self.comment(i)})
                }
            })
            .collect();
        let mut page = json!({"status": "ok", "comments": comments});
        if let Some(next) = next {
            page["continuation"] = json!(next);
        }
        Reply::json(200, page).after(delay)
    }
}

async fn serve(data: Data) -> (FaultServer, Arc<Data>) {
    let data = Arc::new(data);
    let route = Arc::clone(&data);
    let server = FaultServer::start(move |request, _| route.answer(request)).await;
    (server, data)
}

fn client(server: &FaultServer, policy: RetryPolicy) -> Client {
    common::isolated()
        .endpoint(Endpoint::parse(&server.url).expect("server URL"))
        .token("tok-static-123")
        .retry_policy(policy)
        .build()
        .expect("client")
}

fn export_request(from: f64, to: f64) -> types::ExportDatasetRequest {
    types::ExportDatasetRequest {
        source_ids: vec!["src".into()],
        from: Some(at(from)),
        to: Some(at(to)),
        limit: Some(2),
        ..Default::default()
    }
}

/// The body an export window sends: the template with the window's bounds.
fn export_body(from: f64, to: f64, cursor: Option<&str>) -> Value {
    let mut body = json!({"source_ids": ["src"], "from": stamp(from), "to": stamp(to),
                          "limit": 2, "order_by": "timestamp"});
    if let Some(cursor) = cursor {
        body["continuation"] = json!(cursor);
    }
    body
}

/// The query a comment-listing window sends: its first page `from_timestamp`,
/// later ones `after`; `to_timestamp` on every page.
fn comments_params(first: Result<f64, &str>, to: f64, limit: u32) -> Value {
    let mut q = json!({"to_timestamp": stamp(to), "limit": limit.to_string()});
    match first {
        Ok(from) => q["from_timestamp"] = json!(stamp(from)),
        Err(after) => q["after"] = json!(after),
    }
    q
}

/// The requests received (from the `skip`-th on), in a stable order: the
/// windows run concurrently, so arrival order is not part of the contract.
fn requests_from(server: &FaultServer, skip: usize) -> Vec<Value> {
    let mut all: Vec<Value> = server.received().iter().skip(skip).map(params).collect();
    all.sort_by_key(Value::to_string);
    all
}

fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_key(Value::to_string);
    values
}

fn export_ids(items: &[types::ExportedComment]) -> Vec<&str> {
    items.iter().map(|c| c.comment.id.as_str()).collect()
}

fn state(value: Value) -> ParallelState {
    serde_json::from_value(value).unwrap()
}

fn window(from: f64, to: f64, cursor: Option<&str>, skip: u64, done: bool) -> Value {
    json!({"start": stamp(from), "end": stamp(to), "cursor": cursor, "skip": skip, "done": done})
}

/// Comments on both sides of the boundaries 10 s and 20 s of [0, 30 s), one
/// exactly on each, one at 30 s (outside the range).
const AROUND_BOUNDARIES: &[(&str, f64)] = &[
    ("a", 0.0),
    ("b", 5.0),
    ("c", 9.999),
    ("d", 10.0),
    ("e", 15.0),
    ("f", 20.0),
    ("g", 29.0),
    ("h", 30.0),
];

#[tokio::test]
async fn equal_windows_send_their_bounds_and_a_comment_on_a_boundary_comes_once() {
    let (server, _) = serve(Data::new(AROUND_BOUNDARIES)).await;
    let client = client(&server, RetryPolicy::none());
    let walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 30.0))
        .into_parallel()
        .windows(3)
        .ordered();

    let plan = serde_json::to_value(walk.plan().unwrap()).unwrap();
    assert_eq!(
        plan,
        json!({"operation": "export_dataset", "windows": [
            window(0.0, 10.0, None, 0, false),
            window(10.0, 20.0, None, 0, false),
            window(20.0, 30.0, None, 0, false),
        ]})
    );
    let mut walk = walk.start().unwrap();
    let items: Vec<_> = (&mut walk).try_collect().await.unwrap();

    // In time order; `d` (10 s) and `f` (20 s) once each, from the window
    // they start; `h` (30 s) is outside [0, 30 s).
    assert_eq!(export_ids(&items), ["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(
        requests_from(&server, 0),
        sorted(vec![
            export_body(0.0, 10.0, None),
            export_body(0.0, 10.0, Some("c2")),
            export_body(10.0, 20.0, None),
            export_body(20.0, 30.0, None),
        ])
    );
    for request in server.received() {
        assert_eq!(request.path, EXPORT);
        assert_eq!(
            request.header("authorization"),
            Some("Bearer tok-static-123")
        );
    }
    assert!(walk.is_finished());
    assert!(walk.state().is_finished());
    assert_eq!(walk.pages_fetched(), 4);
    assert_eq!(walk.out_of_window(), 0);
    assert!(walk.next().await.is_none());
    assert_eq!(server.received().len(), 4);
}

#[tokio::test]
async fn an_inclusive_upper_bound_does_not_duplicate_the_comment_on_a_boundary() {
    let (server, _) = serve(Data::new(AROUND_BOUNDARIES).inclusive_to()).await;
    let client = client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 30.0))
        .into_parallel()
        .windows(3)
        .start()
        .unwrap();
    let items: Vec<_> = (&mut walk).try_collect().await.unwrap();

    // Unordered: compare sorted; a duplicate would show.
    let mut ids = export_ids(&items);
    ids.sort_unstable();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "g"]);
    // The server returned `d` and `f` to the window they end, and `h` to
    // the last one; each was dropped there.
    assert_eq!(walk.out_of_window(), 3);
    assert_eq!(
        requests_from(&server, 0),
        sorted(vec![
            export_body(0.0, 10.0, None),
            export_body(0.0, 10.0, Some("c2")),
            export_body(10.0, 20.0, None),
            export_body(10.0, 20.0, Some("c5")),
            export_body(20.0, 30.0, None),
            export_body(20.0, 30.0, Some("c7")),
        ])
    );
}

#[tokio::test]
async fn source_comment_windows_at_given_boundaries_send_from_timestamp_then_after() {
    let (server, _) = serve(Data::new(AROUND_BOUNDARIES)).await;
    let client = client(&server, RetryPolicy::none());

    let items: Vec<_> = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(at(0.0))
        .to_timestamp(at(30.0))
        .limit(2)
        .into_parallel()
        .split_at([at(10.0), at(25.0)])
        .ordered()
        .start()
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    let ids: Vec<_> = items.iter().map(|c| c.comment.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "g"]);
    assert!(server.received().iter().all(|r| r.path == COMMENTS));
    assert_eq!(
        requests_from(&server, 0),
        sorted(vec![
            comments_params(Ok(0.0), 10.0, 2),
            comments_params(Err("c2"), 10.0, 2),
            comments_params(Ok(10.0), 25.0, 2),
            comments_params(Err("c5"), 25.0, 2),
            comments_params(Ok(25.0), 30.0, 2),
        ])
    );
}

/// Comments around 10.5 s, a boundary with a fraction: `b` is after the
/// whole second 10 but before 10.5 s.
const AROUND_A_FRACTION: &[(&str, f64)] = &[
    ("a", 9.0),
    ("b", 10.2),
    ("c", 10.5),
    ("d", 10.7),
    ("e", 20.0),
];

#[tokio::test]
async fn a_boundary_with_a_fraction_loses_nothing_against_a_server_comparing_whole_seconds() {
    let (server, _) = serve(Data::new(AROUND_A_FRACTION).whole_seconds()).await;
    let client = client(&server, RetryPolicy::none());
    let walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 30.0))
        .into_parallel()
        .split_at([at(10.5)])
        .ordered();

    // The boundary is rounded down to 10 s, as the equal split's are.
    let plan = serde_json::to_value(walk.plan().unwrap()).unwrap();
    assert_eq!(
        plan,
        json!({"operation": "export_dataset", "windows": [
            window(0.0, 10.0, None, 0, false),
            window(10.0, 30.0, None, 0, false),
        ]})
    );
    let mut walk = walk.start().unwrap();
    let items: Vec<_> = (&mut walk).try_collect().await.unwrap();

    // `b` (10.2 s) is asked by neither window at 10.5 s: the first sends
    // `to` 10.5 s, which the server reads as 10 s, and the second drops
    // it as before its 10.5 s start.
    assert_eq!(export_ids(&items), ["a", "b", "c", "d", "e"]);
    assert_eq!(walk.out_of_window(), 0);
    assert_eq!(
        requests_from(&server, 0),
        sorted(vec![
            export_body(0.0, 10.0, None),
            export_body(10.0, 30.0, None),
            export_body(10.0, 30.0, Some("c3")),
        ])
    );
}

#[tokio::test]
async fn given_boundaries_that_round_to_the_same_second_make_one_window_edge() {
    let (server, _) = serve(Data::new(AROUND_A_FRACTION)).await;
    let client = client(&server, RetryPolicy::none());
    let plan = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(at(0.5))
        .to_timestamp(at(30.0))
        .limit(2)
        .into_parallel()
        .split_at([at(0.9), at(10.2), at(10.7), at(20.0)])
        .plan()
        .unwrap();
    // 0.9 s rounds to 0 s, before the range's start (0.5 s): dropped;
    // 10.2 s and 10.7 s both round to 10 s: one boundary.
    let bounds: Vec<_> = plan.windows.iter().map(|w| (w.start, w.end)).collect();
    assert_eq!(
        bounds,
        [
            (at(0.5), at(10.0)),
            (at(10.0), at(20.0)),
            (at(20.0), at(30.0))
        ]
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn the_number_of_windows_is_capped() {
    use cm_api::paginate::parallel::MAX_WINDOWS;

    let (server, _) = serve(Data::new(THREE_WINDOWS)).await;
    let client = client(&server, RetryPolicy::none());
    // A range of 10,000 s has room for 10,000 one-second windows.
    let export = || {
        client
            .export_dataset()
            .project("acme")
            .dataset_name("triage")
            .body(export_request(0.0, 10_000.0))
            .into_parallel()
    };

    assert_eq!(MAX_WINDOWS, 1024);
    for k in [MAX_WINDOWS, MAX_WINDOWS + 1, 5_000, usize::MAX] {
        let plan = export().windows(k).plan().unwrap();
        assert_eq!(plan.windows.len(), MAX_WINDOWS, "windows({k})");
        assert_eq!(plan.windows[0].start, at(0.0));
        assert_eq!(plan.windows[MAX_WINDOWS - 1].end, at(10_000.0));
    }
    let walk = export().windows(usize::MAX).start().unwrap();
    assert!(format!("{walk:?}").contains("windows: 1024"), "{walk:?}");

    // Boundaries given one by one are the caller's: too many is an error.
    let instants = |n: usize| (1..=n).map(|i| at(i as f64)).collect::<Vec<_>>();
    assert_eq!(
        export()
            .split_at(instants(MAX_WINDOWS - 1))
            .plan()
            .unwrap()
            .windows
            .len(),
        MAX_WINDOWS
    );
    let (operation, message) = refused(export().split_at(instants(MAX_WINDOWS)).start());
    assert_eq!(operation, "export_dataset");
    assert!(message.contains("1024"), "{message}");
    // So is a state to resume with more windows than any walk makes.
    let windows: Vec<Value> = (0..=MAX_WINDOWS)
        .map(|i| window(i as f64, i as f64 + 1.0, None, 0, false))
        .collect();
    let huge = state(json!({"operation": "export_dataset", "windows": windows}));
    let request = export_request(0.0, (MAX_WINDOWS + 1) as f64);
    let (_, message) = refused(
        client
            .export_dataset()
            .project("acme")
            .dataset_name("triage")
            .body(request)
            .into_parallel()
            .resume(huge)
            .start(),
    );
    assert!(message.contains("1024"), "{message}");
    assert!(server.received().is_empty());
}

/// Window [0, 100 s): 3 comments, 2 pages, slow; window [100 s, 200 s): 10
/// comments, 5 pages, fast.
fn slow_then_fast() -> Data {
    let mut comments = vec![("x0", 0.0), ("x1", 1.0), ("x2", 2.0)];
    let ys: Vec<String> = (0..10).map(|i| format!("y{i}")).collect();
    comments.extend(
        ys.iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), 100.0 + i as f64)),
    );
    Data::new(&comments).delay(|start| {
        if start < 3 {
            Duration::from_millis(300)
        } else {
            Duration::ZERO
        }
    })
}

fn slow_then_fast_requests() -> Vec<Value> {
    sorted(vec![
        export_body(0.0, 100.0, None),
        export_body(0.0, 100.0, Some("c2")),
        export_body(100.0, 200.0, None),
        export_body(100.0, 200.0, Some("c5")),
        export_body(100.0, 200.0, Some("c7")),
        export_body(100.0, 200.0, Some("c9")),
        export_body(100.0, 200.0, Some("c11")),
    ])
}

#[tokio::test]
async fn unordered_output_yields_each_page_as_it_arrives() {
    let (server, _) = serve(slow_then_fast()).await;
    let client = client(&server, RetryPolicy::none());

    let items: Vec<_> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 200.0))
        .into_parallel()
        .split_at([at(100.0)])
        .unordered()
        .start()
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    assert_eq!(
        export_ids(&items),
        [
            "y0", "y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8", "y9", "x0", "x1", "x2"
        ]
    );
    assert_eq!(requests_from(&server, 0), slow_then_fast_requests());
}

#[tokio::test]
async fn ordered_output_is_in_time_order_and_a_window_ahead_holds_at_most_n_pages() {
    let (server, _) = serve(slow_then_fast()).await;
    let client = client(&server, RetryPolicy::none());
    let second_window = |server: &FaultServer| {
        server
            .received()
            .iter()
            .filter(|r| params(r)["from"] == json!(stamp(100.0)))
            .count()
    };

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 200.0))
        .into_parallel()
        .split_at([at(100.0)])
        .ordered()
        .buffer_pages(2)
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(walk.try_next().await.unwrap().unwrap().comment.id);
    }
    // 600 ms for the first window's two pages: the second window fetched
    // its first two pages at once, then waited.
    assert_eq!(ids, ["x0", "x1", "x2"]);
    assert_eq!(second_window(&server), 2);
    while let Some(item) = walk.try_next().await.unwrap() {
        ids.push(item.comment.id);
    }

    assert_eq!(
        ids,
        [
            "x0", "x1", "x2", "y0", "y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8", "y9"
        ]
    );
    assert_eq!(requests_from(&server, 0), slow_then_fast_requests());
}

/// Three windows of [0, 300 s): `a` (3 pages), `b` (3 pages), `c` (2 pages).
const THREE_WINDOWS: &[(&str, f64)] = &[
    ("a0", 0.0),
    ("a1", 10.0),
    ("a2", 20.0),
    ("a3", 30.0),
    ("a4", 40.0),
    ("b0", 100.0),
    ("b1", 110.0),
    ("b2", 120.0),
    ("b3", 130.0),
    ("b4", 140.0),
    ("c0", 200.0),
    ("c1", 210.0),
    ("c2", 220.0),
];

fn all_three_windows() -> Vec<String> {
    THREE_WINDOWS
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .collect()
}

#[tokio::test]
async fn a_window_failing_mid_way_then_resuming_from_the_state_yields_every_comment_once() {
    let (server, data) = serve(Data::new(THREE_WINDOWS)).await;
    // The second page of window [100 s, 200 s).
    data.fail.lock().unwrap().insert("c7".into());
    let client = client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 300.0))
        .into_parallel()
        .windows(3)
        .start()
        .unwrap();
    let (mut first, mut errors) = (Vec::new(), Vec::new());
    while let Some(result) = walk.next().await {
        match result {
            Ok(item) => first.push(item.comment.id),
            Err(error) => errors.push(error),
        }
    }

    // The other windows went on to their end.
    first.sort();
    assert_eq!(
        first,
        ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "c0", "c1", "c2"]
    );
    assert_eq!(errors.len(), 1);
    assert!(matches!(
        errors[0],
        Error::Api {
            status: 500,
            operation: Some("export_dataset"),
            ..
        }
    ));
    let saved = walk.state();
    assert_eq!(
        saved,
        state(json!({"operation": "export_dataset", "windows": [
            window(0.0, 100.0, None, 0, true),
            window(100.0, 200.0, Some("c7"), 0, false),
            window(200.0, 300.0, None, 0, true),
        ]}))
    );
    assert!(!walk.is_finished());
    let saved: ParallelState =
        serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();

    data.fail.lock().unwrap().clear();
    let before = server.received().len();
    let mut resumed = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 300.0))
        .into_parallel()
        .resume(saved)
        .start()
        .unwrap();
    let rest: Vec<_> = (&mut resumed).try_collect().await.unwrap();

    assert_eq!(export_ids(&rest), ["b2", "b3", "b4"]);
    // Only the failed window is asked again, from its cursor.
    assert_eq!(
        requests_from(&server, before),
        sorted(vec![
            export_body(100.0, 200.0, Some("c7")),
            export_body(100.0, 200.0, Some("c9")),
        ])
    );
    assert!(resumed.state().is_finished());
    let mut all: Vec<String> = first
        .into_iter()
        .chain(rest.into_iter().map(|c| c.comment.id))
        .collect();
    all.sort();
    assert_eq!(all, all_three_windows());
}

#[tokio::test]
async fn stopping_at_the_error_and_resuming_from_the_state_yields_every_comment_once() {
    // The first and last windows are slow, so that they are mid-way when
    // the second one fails.
    let data = Data::new(THREE_WINDOWS).delay(|start| {
        if (5..10).contains(&start) {
            Duration::ZERO
        } else {
            Duration::from_millis(300)
        }
    });
    let (server, data) = serve(data).await;
    data.fail.lock().unwrap().insert("c7".into());
    let client = client(&server, RetryPolicy::none());

    let mut walk = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 300.0))
        .into_parallel()
        .windows(3)
        .start()
        .unwrap();
    let mut seen = Vec::new();
    let error = loop {
        match walk.next().await {
            Some(Ok(item)) => seen.push(item.comment.id),
            Some(Err(error)) => break error,
            None => panic!("the walk ended without the error"),
        }
    };
    assert_eq!(error.status(), Some(500));
    let saved = walk.state();
    drop(walk);
    assert_eq!(saved.windows[1].cursor.as_deref(), Some("c7"));
    assert!(!saved.windows[1].done);
    assert!(!saved.windows[0].done && !saved.windows[2].done);

    data.fail.lock().unwrap().clear();
    let rest: Vec<_> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 300.0))
        .into_parallel()
        .resume(saved)
        .start()
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    seen.extend(rest.into_iter().map(|c| c.comment.id));
    seen.sort();
    assert_eq!(seen, all_three_windows());
}

#[tokio::test]
async fn resuming_mid_page_skips_the_items_already_yielded() {
    let (server, _) = serve(Data::new(&[
        ("a0", 0.0),
        ("a1", 10.0),
        ("a2", 20.0),
        ("a3", 30.0),
        ("a4", 40.0),
        ("b0", 100.0),
        ("b1", 110.0),
    ]))
    .await;
    let client = client(&server, RetryPolicy::none());
    let mut walk = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(at(0.0))
        .to_timestamp(at(200.0))
        .limit(2)
        .into_parallel()
        .windows(2)
        .ordered()
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(walk.try_next().await.unwrap().unwrap().comment.id);
    }
    let saved = walk.state();
    drop(walk);

    // One item of the page at `c2` was yielded.
    assert_eq!(ids, ["a0", "a1", "a2"]);
    assert_eq!(
        saved,
        state(json!({"operation": "list_source_comments", "windows": [
            window(0.0, 100.0, Some("c2"), 1, false),
            window(100.0, 200.0, None, 0, false),
        ]}))
    );

    // Resumed with a smaller page: the page at `c2` is now only `a2`,
    // skipped whole, and the walk goes on from its cursor.
    let before = server.received().len();
    let rest: Vec<_> = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(at(0.0))
        .to_timestamp(at(200.0))
        .limit(2)
        .limit(1)
        .into_parallel()
        .resume(saved)
        .ordered()
        .start()
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    let rest: Vec<_> = rest.iter().map(|c| c.comment.id.as_str()).collect();
    assert_eq!(rest, ["a3", "a4", "b0", "b1"]);
    assert_eq!(
        requests_from(&server, before),
        sorted(vec![
            comments_params(Err("c2"), 100.0, 1),
            comments_params(Err("c3"), 100.0, 1),
            comments_params(Err("c4"), 100.0, 1),
            comments_params(Ok(100.0), 200.0, 1),
            comments_params(Err("c6"), 200.0, 1),
        ])
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_every_window() {
    // Four windows of [0, 400 s); the first is fast and has 3 pages, the
    // others answer after 300 ms.
    let data = Data::new(&[
        ("a0", 0.0),
        ("a1", 1.0),
        ("a2", 2.0),
        ("a3", 3.0),
        ("a4", 4.0),
        ("b0", 100.0),
        ("b1", 101.0),
        ("b2", 102.0),
        ("c0", 200.0),
        ("c1", 201.0),
        ("c2", 202.0),
        ("d0", 300.0),
        ("d1", 301.0),
        ("d2", 302.0),
    ])
    .delay(|start| {
        if start < 5 {
            Duration::ZERO
        } else {
            Duration::from_millis(300)
        }
    });
    let (server, _) = serve(data).await;
    let client = client(&server, RetryPolicy::none());
    let walk = || {
        client
            .export_dataset()
            .project("acme")
            .dataset_name("triage")
            .body(export_request(0.0, 400.0))
            .into_parallel()
            .windows(4)
            .start()
            .unwrap()
    };

    // Dropped after the first item: the first window's second page may be
    // on its way, the others' first pages are in flight.
    let mut first = walk();
    let item = first.try_next().await.unwrap().unwrap();
    assert_eq!(item.comment.id, "a0");
    drop(first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_drop = server.received().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        server.received().len(),
        at_drop,
        "no request after the drop"
    );
    let received = requests_from(&server, 0);
    assert!(
        received
            .iter()
            .all(|r| r["continuation"].is_null() || r["continuation"] == json!("c2")),
        "{received:?}"
    );
    for from in [100.0, 200.0, 300.0] {
        let window: Vec<_> = received
            .iter()
            .filter(|r| r["from"] == json!(stamp(from)))
            .collect();
        assert_eq!(window, [&export_body(from, from + 100.0, None)]);
    }

    // Dropped while every window waits for its first page.
    let slow = Data::new(&[("a0", 0.0), ("b0", 100.0), ("c0", 200.0), ("d0", 300.0)])
        .delay(|_| Duration::from_millis(300));
    let (server, _) = serve(slow).await;
    let client = self::client(&server, RetryPolicy::none());
    let mut waiting = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 400.0))
        .into_parallel()
        .windows(4)
        .start()
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), waiting.next())
            .await
            .is_err()
    );
    assert_eq!(server.received().len(), 4);
    drop(waiting);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.received().len(), 4);
}

#[tokio::test]
async fn concurrency_caps_the_pages_in_flight() {
    let latency = Duration::from_millis(150);
    let data =
        Data::new(&[("a", 0.0), ("b", 100.0), ("c", 200.0), ("d", 300.0)]).delay(move |_| latency);
    let (server, data) = serve(data).await;
    let client = client(&server, RetryPolicy::none());

    let mut items: Vec<_> = client
        .export_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(export_request(0.0, 400.0))
        .into_parallel()
        .windows(4)
        .concurrency(2)
        .start()
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    items.sort_by(|x, y| x.comment.id.cmp(&y.comment.id));
    assert_eq!(export_ids(&items), ["a", "b", "c", "d"]);
    // Every answer takes `latency`: requests that arrived within `latency`
    // of each other were in flight together.
    let arrivals = data.arrivals.lock().unwrap().clone();
    let most = arrivals
        .iter()
        .map(|&t| {
            arrivals
                .iter()
                .filter(|&&u| u <= t && t < u + latency)
                .count()
        })
        .max();
    assert_eq!(arrivals.len(), 4);
    assert_eq!(most, Some(2));
}

#[tokio::test]
async fn a_rate_limited_window_closes_the_gate_of_the_walk() {
    let (server, data) = serve(Data::new(THREE_WINDOWS)).await;
    data.rate_limit_once
        .lock()
        .unwrap()
        .insert(at(100.0).to_rfc3339());
    let client = client(&server, common::fast_retries(3));
    let gate = Arc::new(RateGate::new());

    let mut items: Vec<_> = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .from_timestamp(at(0.0))
        .to_timestamp(at(300.0))
        .limit(2)
        .into_parallel()
        .windows(3)
        .rate_gate(Arc::clone(&gate))
        .start()
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    items.sort_by(|x, y| x.comment.id.cmp(&y.comment.id));
    let ids: Vec<_> = items.iter().map(|c| c.comment.id.clone()).collect();
    assert_eq!(ids, all_three_windows());
    // The 429 closed the walk's gate, and the client retried the page.
    assert_eq!(gate.pauses(), 1);
    let first_page = comments_params(Ok(100.0), 200.0, 2);
    let asked = requests_from(&server, 0);
    assert_eq!(asked.iter().filter(|r| **r == first_page).count(), 2);
}

/// The operation and message of an `InvalidRequest`.
fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> (&'static str, String) {
    match result {
        Err(Error::InvalidRequest {
            operation: Some(operation),
            message,
            ..
        }) => (operation, message),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn invalid_settings_are_refused_before_anything_is_sent() {
    let (server, _) = serve(Data::new(THREE_WINDOWS)).await;
    let client = client(&server, RetryPolicy::none());
    let export = |request: types::ExportDatasetRequest| {
        client
            .export_dataset()
            .project("acme")
            .dataset_name("triage")
            .body(request)
            .into_parallel()
    };

    let open_ended = types::ExportDatasetRequest {
        to: None,
        ..export_request(0.0, 300.0)
    };
    assert!(refused(export(open_ended).start()).1.contains("both ends"));
    assert!(
        refused(export(export_request(5.0, 5.0)).start())
            .1
            .contains("empty")
    );
    for boundaries in [vec![at(50.0), at(20.0)], vec![at(0.0)], vec![at(300.0)]] {
        let (operation, message) = refused(
            export(export_request(0.0, 300.0))
                .split_at(boundaries)
                .start(),
        );
        assert_eq!(operation, "export_dataset");
        assert!(message.contains("boundary"), "{message}");
    }
    let with_cursor = types::ExportDatasetRequest {
        continuation: Some("c3".into()),
        ..export_request(0.0, 300.0)
    };
    assert!(
        refused(export(with_cursor).start())
            .1
            .contains("ParallelState")
    );
    let huge_page = types::ExportDatasetRequest {
        limit: Some(5_000),
        ..export_request(0.0, 300.0)
    };
    refused(export(huge_page).start());
    let comments_state = state(json!({"operation": "list_source_comments", "windows": [
        window(0.0, 300.0, None, 0, false)]}));
    assert!(
        refused(
            export(export_request(0.0, 300.0))
                .resume(comments_state)
                .start()
        )
        .1
        .contains("list_source_comments")
    );
    let own_state = state(json!({"operation": "export_dataset", "windows": [
        window(0.0, 300.0, None, 0, false)]}));
    refused(
        export(export_request(0.0, 300.0))
            .resume(own_state.clone())
            .windows(2)
            .start(),
    );
    refused(export(export_request(0.0, 200.0)).resume(own_state).start());
    let overlapping = state(json!({"operation": "export_dataset", "windows": [
        window(0.0, 200.0, None, 0, false), window(100.0, 300.0, None, 0, false)]}));
    assert!(
        refused(
            export(export_request(0.0, 300.0))
                .resume(overlapping)
                .start()
        )
        .1
        .contains("overlap")
    );
    let (operation, _) = refused(
        client
            .list_source_comments()
            .project("acme")
            .source_name("inbox")
            .from_timestamp(at(0.0))
            .into_parallel()
            .start(),
    );
    assert_eq!(operation, "list_source_comments");

    assert!(server.received().is_empty());
}
