//! Random sequences of operations through `cm_api::Client` against a
//! simple model kept here: syncs (new ids, re-syncs with and without
//! changes, ids repeated in one request, comments with and without a
//! timestamp), deletes, listings and exports in pages of random sizes,
//! and a stream
//! fetched, advanced, drained and reset. After each operation the sandbox
//! must agree with the model:
//!
//! * sync counts (`new`, `updated_*`, `unchanged`) are the model's;
//! * a listing walked page by page holds every stored comment exactly
//!   once, in `(timestamp, id)` order (upload order for comments without a
//!   timestamp), with the content last synced, and as many comments as the
//!   syncs' `new` counts minus the deletes;
//! * a stream delivers, in upload order, exactly the comments changed after
//!   its position: every change at least once, nothing advanced past,
//!   unless reset (to before every upload: everything again; to after:
//!   nothing);
//! * an export walked page by page holds every stored comment exactly
//!   once, as many as the listing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use cm_api::{Client, types};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::json;
mod common;

use common::{client, project_and_source, typed};

const TEXTS: [&str; 3] = ["refund please", "thanks", "where is my parcel?"];
const COUNTRIES: [&str; 2] = ["FR", "DE"];
/// Ids drawn from a small pool, so that re-syncs and deletes hit.
const IDS: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    /// Minutes after 2020-01-01T00:00:00Z; `None`: no timestamp.
    minute: Option<u8>,
    text: u8,
    country: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Sync(Vec<(u8, Fields)>),
    Delete(Vec<u8>),
    List(i64),
    Export(i64),
    Fetch(i64),
    Advance,
    Drain(i64),
    Reset { before_everything: bool },
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        prop::option::weighted(0.8, 0u8..6),
        0u8..TEXTS.len() as u8,
        0u8..COUNTRIES.len() as u8,
    )
        .prop_map(|(minute, text, country)| Fields {
            minute,
            text,
            country,
        })
}

fn page_size() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 1i64..=6, 1 => Just(1024)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop::collection::vec((0..IDS, fields()), 1..6).prop_map(Op::Sync),
        2 => prop::collection::vec(0..IDS + 2, 1..4).prop_map(Op::Delete),
        2 => page_size().prop_map(Op::List),
        2 => page_size().prop_map(Op::Export),
        2 => page_size().prop_map(Op::Fetch),
        2 => Just(Op::Advance),
        1 => page_size().prop_map(Op::Drain),
        1 => any::<bool>().prop_map(|before_everything| Op::Reset { before_everything }),
    ]
}

#[derive(Debug)]
struct Stored {
    fields: Fields,
    /// The upload (sequence) number of the last change: streams deliver in
    /// this order.
    version: u64,
    /// The request of the last change: comments without a timestamp list
    /// in upload order.
    changed_in: u64,
}

#[derive(Debug, Default)]
struct Model {
    comments: BTreeMap<String, Stored>,
    /// The last upload number given (the sandbox's count from 1).
    last_version: u64,
    requests: u64,
    /// The stream's position: changes with a higher number are pending.
    position: u64,
    /// The last batch fetched: the position advancing to its continuation
    /// sets, and that continuation.
    batch: Option<(u64, String)>,
    /// `new` counts answered by the sandbox, and comments deleted.
    answered_new: u64,
    deleted: u64,
}

impl Model {
    /// The comments in listing order.
    fn listing(&self) -> Vec<&str> {
        let mut keys: Vec<_> = self
            .comments
            .iter()
            .map(|(id, c)| {
                let key = match c.fields.minute {
                    Some(m) => (0, u64::from(m)),
                    None => (1, c.changed_in),
                };
                (key, id.as_str())
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, id)| id).collect()
    }

    /// The changes after the stream's position, in upload order.
    fn pending(&self) -> Vec<(u64, &str)> {
        let mut pending: Vec<_> = self
            .comments
            .iter()
            .filter(|(_, c)| c.version > self.position)
            .map(|(id, c)| (c.version, id.as_str()))
            .collect();
        pending.sort();
        pending
    }
}

/// Mostly plain ids; two that need escaping in a query and sort apart.
fn id(n: u8) -> String {
    match n {
        6 => "msg.6/ü x&y=z".to_owned(),
        7 => "A-7".to_owned(),
        n => format!("c{n}"),
    }
}

fn timestamp(minute: u8) -> String {
    format!("2020-01-01T00:{minute:02}:00Z")
}

fn comment_new(id: &str, f: Fields) -> types::CommentNew {
    let mut comment = json!({
        "id": id,
        "messages": [{"body": {"text": TEXTS[f.text as usize]}}],
        "user_properties": {"string:Country": COUNTRIES[f.country as usize]},
    });
    if let Some(m) = f.minute {
        comment["timestamp"] = timestamp(m).into();
    }
    typed(comment)
}

/// Checks a comment the sandbox answered against the model's.
fn check_comment(comment: &types::Comment, model: &Model) -> Result<(), TestCaseError> {
    let stored = model
        .comments
        .get(&comment.id)
        .ok_or_else(|| TestCaseError::fail(format!("{} is not stored in the model", comment.id)))?;
    let text = comment.messages.first().map(|m| m.body.text.as_str());
    prop_assert_eq!(text, Some(TEXTS[stored.fields.text as usize]));
    let answered = comment
        .timestamp
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    prop_assert_eq!(answered, stored.fields.minute.map(timestamp));
    let country = serde_json::to_value(&comment.user_properties).unwrap()["string:Country"].clone();
    prop_assert_eq!(country, json!(COUNTRIES[stored.fields.country as usize]));
    Ok(())
}

async fn apply(client: &Client, model: &mut Model, op: Op) -> Result<(), TestCaseError> {
    let fail = |e: cm_api::Error| TestCaseError::fail(format!("{e}"));
    match op {
        Op::Sync(items) => {
            model.requests += 1;
            let (mut new, mut properties, mut text, mut unchanged) = (0, 0, 0, 0);
            for &(n, f) in &items {
                match model.comments.get_mut(&id(n)) {
                    None => {
                        new += 1;
                        model.last_version += 1;
                        model.comments.insert(
                            id(n),
                            Stored {
                                fields: f,
                                version: model.last_version,
                                changed_in: model.requests,
                            },
                        );
                    }
                    Some(c) if c.fields == f => unchanged += 1,
                    Some(c) => {
                        if c.fields.text == f.text {
                            properties += 1;
                        } else {
                            text += 1;
                        }
                        model.last_version += 1;
                        *c = Stored {
                            fields: f,
                            version: model.last_version,
                            changed_in: model.requests,
                        };
                    }
                }
            }
            let answer = client
                .sync_comments()
                .project("acme")
                .source_name("inbox")
                .body(types::SyncCommentsRequest {
                    comments: items.iter().map(|&(n, f)| comment_new(&id(n), f)).collect(),
                })
                .send()
                .await
                .map_err(fail)?
                .into_inner();
            prop_assert_eq!(
                (
                    answer.new,
                    answer.updated,
                    answer.updated_properties_only,
                    answer.updated_text_changed,
                    answer.unchanged
                ),
                (new, properties + text, properties, text, unchanged)
            );
            model.answered_new += answer.new as u64;
        }
        Op::Delete(ids) => {
            let ids: Vec<String> = ids.into_iter().map(id).collect();
            for id in ids.iter().collect::<BTreeSet<_>>() {
                if model.comments.remove(id).is_some() {
                    model.deleted += 1;
                }
            }
            client
                .delete_comments()
                .project("acme")
                .source_name("inbox")
                .id(ids)
                .send()
                .await
                .map_err(fail)?;
        }
        Op::List(limit) => {
            let mut listed: Vec<types::Comment> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut call = client
                    .list_source_comments()
                    .project("acme")
                    .source_name("inbox")
                    .limit(limit);
                if let Some(after) = after.take() {
                    call = call.after(after);
                }
                let page = call.send().await.map_err(fail)?.into_inner();
                prop_assert!(page.comments.len() as i64 <= limit);
                let empty = page.comments.is_empty();
                listed.extend(page.comments);
                match page.continuation {
                    Some(next) => {
                        // A continuation promises more: no empty page.
                        prop_assert!(!empty, "an empty page with a continuation");
                        after = Some(next);
                    }
                    None => break,
                }
                prop_assert!(
                    listed.len() <= model.comments.len() + 1,
                    "the listing does not end"
                );
            }
            let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
            prop_assert_eq!(ids, model.listing());
            prop_assert_eq!(
                listed.len() as u64,
                model.answered_new - model.deleted,
                "the count of new comments minus the deleted ones"
            );
            for c in &listed {
                check_comment(c, model)?;
            }
        }
        Op::Export(limit) => {
            let mut exported: Vec<String> = Vec::new();
            let mut continuation: Option<String> = None;
            loop {
                let request = types::ExportDatasetRequest::builder()
                    .limit(Some(limit))
                    .continuation(continuation.take());
                let page = client
                    .export_dataset()
                    .project("acme")
                    .dataset_name("triage")
                    .body(request)
                    .send()
                    .await
                    .map_err(fail)?
                    .into_inner();
                prop_assert!(page.comments.len() as i64 <= limit);
                let empty = page.comments.is_empty();
                exported.extend(page.comments.into_iter().map(|c| c.comment.id));
                match page.continuation {
                    Some(next) => {
                        prop_assert!(!empty, "an empty export page with a continuation");
                        continuation = Some(next);
                    }
                    None => break,
                }
                prop_assert!(
                    exported.len() <= model.comments.len() + 1,
                    "the export does not end"
                );
            }
            // Every stored comment exactly once, and as many as the counts say.
            let distinct: BTreeSet<&str> = exported.iter().map(String::as_str).collect();
            prop_assert_eq!(distinct.len(), exported.len(), "a comment exported twice");
            let stored: BTreeSet<&str> = model.comments.keys().map(String::as_str).collect();
            prop_assert_eq!(distinct, stored);
            prop_assert_eq!(exported.len() as u64, model.answered_new - model.deleted);
        }
        Op::Fetch(max) => {
            let batch = client
                .get_stream_results()
                .project("acme")
                .dataset_name("triage")
                .stream_name("refunds")
                .max_results(max)
                .send()
                .await
                .map_err(fail)?
                .into_inner();
            let pending = model.pending();
            let expected: Vec<&str> = pending
                .iter()
                .take(max as usize)
                .map(|(_, id)| *id)
                .collect();
            let got: Vec<&str> = batch
                .results
                .iter()
                .map(|r| r.comment.id.as_str())
                .collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(batch.more_results, pending.len() > max as usize);
            for r in &batch.results {
                check_comment(&r.comment, model)?;
            }
            let position = pending
                .get(batch.results.len().wrapping_sub(1))
                .map_or(model.position, |(v, _)| *v);
            model.batch = Some((position, batch.continuation));
        }
        Op::Advance => {
            if let Some((position, continuation)) = model.batch.clone() {
                client
                    .advance_stream()
                    .project("acme")
                    .dataset_name("triage")
                    .stream_name("refunds")
                    .body(types::AdvanceStreamRequest {
                        sequence_id: continuation,
                    })
                    .send()
                    .await
                    .map_err(fail)?;
                model.position = position;
            }
        }
        Op::Drain(max) => {
            let expected: Vec<String> = model
                .pending()
                .iter()
                .map(|(_, id)| id.to_string())
                .collect();
            let mut delivered = Vec::new();
            loop {
                let batch = client
                    .get_stream_results()
                    .project("acme")
                    .dataset_name("triage")
                    .stream_name("refunds")
                    .max_results(max)
                    .send()
                    .await
                    .map_err(fail)?
                    .into_inner();
                if batch.results.is_empty() {
                    prop_assert!(!batch.more_results);
                    break;
                }
                delivered.extend(batch.results.iter().map(|r| r.comment.id.clone()));
                prop_assert!(delivered.len() <= expected.len(), "the stream does not end");
                client
                    .advance_stream()
                    .project("acme")
                    .dataset_name("triage")
                    .stream_name("refunds")
                    .body(types::AdvanceStreamRequest {
                        sequence_id: batch.continuation,
                    })
                    .send()
                    .await
                    .map_err(fail)?;
            }
            prop_assert_eq!(delivered, expected);
            model.position = model
                .comments
                .values()
                .map(|c| c.version)
                .max()
                .unwrap_or(0)
                .max(model.position);
            prop_assert!(model.pending().is_empty());
        }
        Op::Reset { before_everything } => {
            let to = if before_everything {
                "2000-01-01T00:00:00Z"
            } else {
                "2100-01-01T00:00:00Z"
            };
            client
                .reset_stream()
                .project("acme")
                .dataset_name("triage")
                .stream_name("refunds")
                .body(typed::<types::ResetStreamRequest>(
                    json!({"to_comment_created_at": to}),
                ))
                .send()
                .await
                .map_err(fail)?;
            // Before every upload: everything stored is delivered again;
            // after: the position is the last stored change.
            model.position = if before_everything {
                0
            } else {
                model
                    .comments
                    .values()
                    .map(|c| c.version)
                    .max()
                    .unwrap_or(0)
            };
        }
    }
    Ok(())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let sandbox = cm_sandbox::Sandbox::builder()
        .validate_responses(true)
        .start()
        .await
        .map_err(|e| TestCaseError::fail(format!("sandbox: {e}")))?;
    let client = client(&sandbox);
    let source_id = project_and_source(&client).await;
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(
            json!({"dataset": {"source_ids": [source_id]}}),
        ))
        .send()
        .await
        .expect("create_dataset");
    client
        .create_stream()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateStreamRequest>(
            json!({"stream": {"name": "refunds"}}),
        ))
        .send()
        .await
        .expect("create_stream");
    let mut model = Model::default();
    for op in ops {
        apply(&client, &mut model, op).await?;
    }
    // Whatever happened, a final listing and drain agree with the model.
    apply(&client, &mut model, Op::List(3)).await?;
    apply(&client, &mut model, Op::Export(2)).await?;
    apply(&client, &mut model, Op::Drain(2)).await?;
    let violations = sandbox.schema_violations();
    prop_assert!(violations.is_empty(), "{:?}", violations);
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 40,
        // Deterministic: a failure is found again, and shrunk the same way.
        rng_seed: RngSeed::Fixed(0x5a_4d_b0_c5),
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    })]

    #[test]
    fn the_sandbox_agrees_with_a_model_of_syncs_deletes_listings_and_a_stream(
        ops in prop::collection::vec(op(), 1..30)
    ) {
        runtime().block_on(run_case(ops))?;
    }
}
