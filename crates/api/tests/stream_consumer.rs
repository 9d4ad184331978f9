//! The stream consumer against a stateful fake of the Streams API on a
//! loopback server: results are served from the stream's position, which
//! only `advance_stream` moves.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cm_api::stream_consumer::{HandlerError, OnHandlerError, StreamBatch, StreamConsumer};
use cm_api::{Client, Error, RetryPolicy, types};
use common::token_client;
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BASE: &str = "/api/v1/datasets/acme/triage/streams/refunds";

/// The server side of one stream: its comments and position.
#[derive(Default)]
struct FakeStream {
    comments: Vec<String>,
    position: usize,
    advances: Vec<String>,
    exceptions: Vec<(String, String)>,
}

fn comment(uid: &str) -> Value {
    let id = uid.rsplit('.').next().unwrap_or(uid);
    json!({
        "uid": uid, "id": id, "source_id": "18ba5ce699f8da1f",
        "timestamp": "2026-03-04T09:15:00Z", "user_properties": {},
        "messages": [{"body": {"text": "Where is my refund?"}}], "attachments": [],
        "created_at": "2026-03-04T09:16:02Z", "last_modified": "2026-03-04T09:16:02Z"
    })
}

fn json_response(body: Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn query_param(req: &HttpMockRequest, name: &str) -> Option<usize> {
    let uri = req.uri();
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.parse().ok())?
    })
}

/// Serves `get_stream_results`, `fetch_stream`, `advance_stream` and
/// `store_stream_exceptions` from `state`.
async fn serve(server: &MockServer, state: &Arc<Mutex<FakeStream>>) {
    let s = state.clone();
    server
        .mock_async(|when, then| {
            when.method("GET").path(format!("{BASE}/results"));
            then.respond_with(move |req: &HttpMockRequest| {
                let state = s.lock().unwrap();
                let size = query_param(req, "max_results").unwrap_or(2);
                let end = (state.position + size).min(state.comments.len());
                let results: Vec<Value> = (state.position..end)
                    .map(|i| {
                        json!({"comment": comment(&state.comments[i]), "prediction": null,
                               "continuation": format!("pos:{}", i + 1)})
                    })
                    .collect();
                json_response(json!({
                    "status": "ok", "results": results, "num_filtered": 0,
                    "more_results": end < state.comments.len(),
                    "continuation": format!("pos:{end}"),
                }))
            });
        })
        .await;
    let s = state.clone();
    server
        .mock_async(|when, then| {
            when.method("POST").path(format!("{BASE}/fetch"));
            then.respond_with(move |req: &HttpMockRequest| {
                let state = s.lock().unwrap();
                let body: Value = serde_json::from_slice(req.body_ref()).unwrap();
                let size = body["size"].as_u64().unwrap() as usize;
                let end = (state.position + size).min(state.comments.len());
                let results: Vec<Value> = (state.position..end)
                    .map(|i| json!({"comment": comment(&state.comments[i]), "sequence_id": format!("pos:{}", i + 1)}))
                    .collect();
                json_response(json!({
                    "status": "ok", "results": results, "filtered": 0,
                    "is_end_sequence": end == state.comments.len(),
                    "sequence_id": format!("pos:{end}"),
                }))
            });
        })
        .await;
    let s = state.clone();
    server
        .mock_async(|when, then| {
            when.method("POST").path(format!("{BASE}/advance"));
            then.respond_with(move |req: &HttpMockRequest| {
                let mut state = s.lock().unwrap();
                let body: Value = serde_json::from_slice(req.body_ref()).unwrap();
                let sequence_id = body["sequence_id"].as_str().unwrap().to_owned();
                state.position = sequence_id.trim_start_matches("pos:").parse().unwrap();
                state.advances.push(sequence_id.clone());
                json_response(json!({"status": "ok", "sequence_id": sequence_id}))
            });
        })
        .await;
    let s = state.clone();
    server
        .mock_async(|when, then| {
            when.method("PUT").path(format!("{BASE}/exceptions"));
            then.respond_with(move |req: &HttpMockRequest| {
                let mut state = s.lock().unwrap();
                let body: Value = serde_json::from_slice(req.body_ref()).unwrap();
                for e in body["exceptions"].as_array().unwrap() {
                    state.exceptions.push((
                        e["uid"].as_str().unwrap().to_owned(),
                        e["metadata"]["type"].as_str().unwrap().to_owned(),
                    ));
                }
                json_response(json!({"status": "ok"}))
            });
        })
        .await;
}

async fn fake(uids: &[&str]) -> (MockServer, Arc<Mutex<FakeStream>>, Client) {
    let server = MockServer::start_async().await;
    let state = Arc::new(Mutex::new(FakeStream {
        comments: uids.iter().map(|u| (*u).to_owned()).collect(),
        ..FakeStream::default()
    }));
    serve(&server, &state).await;
    let client = token_client(&server, RetryPolicy::none());
    (server, state, client)
}

fn consumer(client: &Client) -> StreamConsumer {
    StreamConsumer::new(client.clone(), "acme", "triage", "refunds")
        .batch_size(2)
        .idle_wait(Duration::from_millis(10))
}

fn uids(batch: &types::StreamResultsResponse) -> Vec<String> {
    batch.comment_uids()
}

const UIDS: [&str; 5] = ["s.c1", "s.c2", "s.c3", "s.c4", "s.c5"];

#[tokio::test]
async fn handles_every_batch_and_advances_after_each() {
    let (_server, state, client) = fake(&UIDS).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer = consumer(&client);
    let shutdown = consumer.shutdown_token();

    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        consumer.run(|batch| {
            let (seen, shutdown) = (seen.clone(), shutdown.clone());
            async move {
                let mut seen = seen.lock().unwrap();
                seen.extend(uids(&batch));
                if seen.len() == UIDS.len() {
                    // Asked during the last batch: it is still advanced past.
                    shutdown.cancel();
                }
                Ok::<_, HandlerError>(())
            }
        }),
    )
    .await
    .expect("the consumer stops on shutdown")
    .unwrap();

    assert_eq!(*seen.lock().unwrap(), UIDS);
    assert_eq!(summary.batches, 3);
    assert_eq!(summary.comments, 5);
    let state = state.lock().unwrap();
    assert_eq!(state.advances, ["pos:2", "pos:4", "pos:5"]);
    assert_eq!(state.position, 5);
}

#[tokio::test]
async fn a_crash_between_handling_and_advancing_redelivers_the_batch() {
    let (_server, state, client) = fake(&UIDS).await;
    let first_run = Arc::new(Mutex::new(Vec::new()));
    let (handled_tx, handled_rx) = tokio::sync::oneshot::channel::<()>();
    let handled_tx = Arc::new(Mutex::new(Some(handled_tx)));

    // Run 1: the handler does its work, then the process "crashes" before
    // the consumer gets to advance.
    let task = {
        let (client, first_run) = (client.clone(), first_run.clone());
        tokio::spawn(async move {
            let consumer = consumer(&client);
            consumer
                .run(|batch| {
                    let (first_run, handled_tx) = (first_run.clone(), handled_tx.clone());
                    async move {
                        first_run.lock().unwrap().extend(uids(&batch));
                        if let Some(tx) = handled_tx.lock().unwrap().take() {
                            let _ = tx.send(());
                        }
                        std::future::pending::<()>().await;
                        Ok::<_, HandlerError>(())
                    }
                })
                .await
        })
    };
    handled_rx.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(state.lock().unwrap().advances.is_empty());

    // Run 2, after a restart: the same batch comes first, then the rest.
    let consumer = consumer(&client);
    let second_run = Arc::new(Mutex::new(Vec::new()));
    let step = consumer
        .step(|batch| {
            let second_run = second_run.clone();
            async move {
                second_run.lock().unwrap().extend(uids(&batch));
                Ok::<_, HandlerError>(())
            }
        })
        .await
        .unwrap();
    assert!(matches!(
        step,
        Some(cm_api::stream_consumer::Step::Handled { comments: 2, .. })
    ));
    assert_eq!(*first_run.lock().unwrap(), ["s.c1", "s.c2"]);
    assert_eq!(*second_run.lock().unwrap(), ["s.c1", "s.c2"]);
    assert_eq!(state.lock().unwrap().advances, ["pos:2"]);
}

#[tokio::test]
async fn a_failing_handler_stops_without_advancing_by_default() {
    let (_server, state, client) = fake(&UIDS).await;
    let consumer = consumer(&client);

    let error = consumer
        .run(|_batch| async { Err(HandlerError::new("ERP is down")) })
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Handler { .. }), "{error:?}");
    assert_eq!(error.to_string(), "handler failed");
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "ERP is down"
    );
    let state = state.lock().unwrap();
    assert!(state.advances.is_empty());
    assert!(state.exceptions.is_empty());
}

#[tokio::test]
async fn a_failing_handler_can_tag_exceptions_and_carry_on() {
    let (_server, state, client) = fake(&UIDS).await;
    let consumer = consumer(&client).on_handler_error(OnHandlerError::tag_exceptions("Robot"));
    let shutdown = consumer.shutdown_token();
    let calls = Arc::new(Mutex::new(0));

    let summary = consumer
        .run(|batch| {
            let (calls, shutdown) = (calls.clone(), shutdown.clone());
            async move {
                let call = {
                    let mut calls = calls.lock().unwrap();
                    *calls += 1;
                    *calls
                };
                match call {
                    // First batch: one comment failed.
                    1 => Err(HandlerError::for_comments(
                        ["s.c2"],
                        std::io::Error::other("no order number"),
                    )),
                    // Second batch: everything failed, via `?`.
                    2 => Err(std::io::Error::other("ERP is down"))?,
                    _ => {
                        assert_eq!(uids(&batch), ["s.c5"]);
                        shutdown.cancel();
                        Ok(())
                    }
                }
            }
        })
        .await
        .unwrap();

    assert_eq!(summary.batches, 3);
    assert_eq!(summary.exceptions, 3);
    let state = state.lock().unwrap();
    let tagged: Vec<_> = state
        .exceptions
        .iter()
        .map(|(uid, _)| uid.as_str())
        .collect();
    assert_eq!(tagged, ["s.c2", "s.c3", "s.c4"]);
    assert!(state.exceptions.iter().all(|(_, kind)| kind == "Robot"));
    assert_eq!(state.advances, ["pos:2", "pos:4", "pos:5"]);
}

#[tokio::test]
async fn shutdown_while_waiting_for_comments_returns_promptly() {
    let (_server, state, client) = fake(&[]).await;
    let token = CancellationToken::new();
    let consumer = consumer(&client)
        .idle_wait(Duration::from_secs(3600))
        .shutdown(token.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        token.cancel();
    });

    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        consumer.run(|_batch| async { Ok::<_, HandlerError>(()) }),
    )
    .await
    .expect("shutdown interrupts the idle wait")
    .unwrap();
    canceller.await.unwrap();

    assert_eq!(summary.batches, 0);
    assert!(state.lock().unwrap().advances.is_empty());
}

#[tokio::test]
async fn the_legacy_fetch_route_is_consumed_the_same_way() {
    let (_server, state, client) = fake(&UIDS[..3]).await;
    let consumer = StreamConsumer::legacy(client.clone(), "acme", "triage", "refunds")
        .batch_size(2)
        .idle_wait(Duration::from_millis(10));
    let shutdown = consumer.shutdown_token();
    let seen = Arc::new(Mutex::new(Vec::new()));

    let summary = consumer
        .run(|batch: types::FetchStreamResponse| {
            let (seen, shutdown) = (seen.clone(), shutdown.clone());
            async move {
                let mut seen = seen.lock().unwrap();
                seen.extend(batch.comment_uids());
                if seen.len() == 3 {
                    shutdown.cancel();
                }
                Ok::<_, HandlerError>(())
            }
        })
        .await
        .unwrap();

    assert_eq!(*seen.lock().unwrap(), &UIDS[..3]);
    assert_eq!(summary.comments, 3);
    assert_eq!(state.lock().unwrap().advances, ["pos:2", "pos:3"]);
}

/// A `Retry-After` of a day is not slept through: `run` returns the error,
/// which carries the wait, as soon as the server asks for longer than
/// `max_retry_after`.
#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_returned_not_slept_through() {
    let server = MockServer::start_async().await;
    let fetches = server
        .mock_async(|when, then| {
            when.method("GET").path(format!("{BASE}/results"));
            then.status(429)
                .header("content-type", "application/json")
                .header("retry-after", "86400")
                .body(r#"{"status":"error","message":"Too many requests"}"#);
        })
        .await;
    let client = token_client(&server, RetryPolicy::none());
    let consumer = StreamConsumer::new(client, "acme", "triage", "refunds")
        .max_retry_after(Duration::from_secs(3600));

    let result = tokio::time::timeout(
        Duration::from_secs(20),
        consumer.run(|_batch| async { Ok(()) }),
    )
    .await
    .expect("run returns instead of sleeping for a day");

    let err = result.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(86400)));
    assert_eq!(fetches.calls_async().await, 1);
}
