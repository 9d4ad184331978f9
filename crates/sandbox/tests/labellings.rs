//! Labellings, label definitions and the sandbox's deterministic
//! predictions, driven through `cm_api::Client`; every test reads back the
//! state it changed.

use cm_api::Client;
use cm_api::types;
mod common;

use common::{api_error, checked, client, client_with, project_and_source, typed};
use serde_json::{Value, json};

/// Project `acme`, source `inbox`, dataset `triage` over it with labels
/// `Refund`, `Refund > Late`, `Shipping`, `Billing`; returns the source id.
async fn setup(client: &Client) -> String {
    let source_id = project_and_source(client).await;
    client
        .create_dataset()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateDatasetRequest>(json!({"dataset": {
            "source_ids": [source_id],
            "label_defs": [
                {"name": "Refund"},
                {"name": "Refund > Late"},
                {"name": "Shipping"},
                {"name": "Billing"},
            ],
        }})))
        .send()
        .await
        .expect("create_dataset");
    source_id
}

async fn sync(client: &Client, comments: &[(&str, &str)]) {
    let comments = comments
        .iter()
        .enumerate()
        .map(|(i, (id, text))| {
            typed(json!({
                "id": id,
                "timestamp": format!("2026-03-01T10:{i:02}:00Z"),
                "messages": [{"from": "alice@example.com", "body": {"text": text}}],
            }))
        })
        .collect();
    client
        .sync_comments()
        .project("acme")
        .source_name("inbox")
        .body(types::SyncCommentsRequest { comments })
        .send()
        .await
        .expect("sync_comments");
}

async fn label(client: &Client, uid: &str, update: Value) -> Result<Value, cm_api::Error> {
    client
        .update_labelling()
        .project("acme")
        .dataset_name("triage")
        .comment_uid(uid)
        .body(typed::<types::UpdateLabellingRequest>(update))
        .send()
        .await
        .map(|r| serde_json::to_value(r.into_inner()).unwrap())
}

async fn assign(client: &Client, uid: &str, labels: &[&str]) {
    let assigned: Vec<Value> = labels.iter().map(|l| json!({"name": l})).collect();
    label(
        client,
        uid,
        json!({"labelling": [{"group": "default", "assigned": assigned}]}),
    )
    .await
    .expect("update_labelling");
}

/// The annotated comments of these uids (with predictions when asked).
async fn labellings(client: &Client, uids: &[&str], predictions: bool) -> Vec<Value> {
    let answer = client
        .get_labellings()
        .project("acme")
        .dataset_name("triage")
        .id(uids.iter().map(|u| u.to_string()).collect::<Vec<_>>())
        .return_predictions(predictions)
        .send()
        .await
        .expect("get_labellings")
        .into_inner();
    let value = serde_json::to_value(answer).unwrap();
    value["results"].as_array().unwrap().clone()
}

/// The uids of the reviewed comments of a source, page by page.
async fn reviewed(client: &Client, source_id: &str, limit: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut request = client
            .get_labellings()
            .project("acme")
            .dataset_name("triage")
            .source_id(source_id)
            .limit(limit);
        if let Some(after) = &after {
            request = request.after(after.clone());
        }
        let page = serde_json::to_value(request.send().await.unwrap().into_inner()).unwrap();
        let results = page["results"].as_array().unwrap();
        assert!(results.len() as i64 <= limit);
        out.extend(
            results
                .iter()
                .map(|r| r["comment"]["uid"].as_str().unwrap().to_owned()),
        );
        match page["after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return out,
        }
    }
}

/// `predict_comments` of the latest model: per uid, (label, probability).
async fn predict(client: &Client, uids: &[&str], body: Value) -> Vec<Vec<(String, f64)>> {
    let mut body = body;
    body["uids"] = json!(uids);
    let answer = client
        .predict_comments()
        .project("acme")
        .dataset_name("triage")
        .model_version("latest")
        .body(typed::<types::PredictCommentsRequest>(body))
        .send()
        .await
        .expect("predict_comments")
        .into_inner();
    let value = serde_json::to_value(answer).unwrap();
    value["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(uids)
        .map(|(p, uid)| {
            assert_eq!(p["uid"], *uid);
            arr(&p["labels"])
                .iter()
                .map(|l| {
                    let levels: Vec<&str> = l["name"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap())
                        .collect();
                    (levels.join(" > "), l["probability"].as_f64().unwrap())
                })
                .collect()
        })
        .collect()
}

/// An array of an answer; a typed answer re-serialized leaves empty
/// (default) arrays out.
fn arr(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn group<'a>(annotated: &'a Value, name: &str) -> &'a Value {
    annotated["labelling"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {annotated}"))
}

fn names(labels: &Value) -> Vec<&str> {
    labels
        .as_array()
        .map(|a| a.iter().map(|l| l["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_labelling_set_reads_back_equal_and_a_partial_update_keeps_the_rest() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = setup(&client).await;
    sync(
        &client,
        &[("c1", "Where is my refund?"), ("c2", "Hello"), ("c3", "Hi")],
    )
    .await;
    let uid = format!("{source_id}.c1");

    let assigned = json!([{
        "name": "Refund",
        "sentiment": "negative",
        "metadata": {"user_id": "u1", "timestamp": "2026-03-02T09:00:00Z",
            "ui": {"assignment_method": "manual", "view": "explore",
                   "retrieval_method": "recent", "has_label_filter": false}},
    }]);
    let dismissed = json!([{"name": "Shipping"}]);
    // Typed answers leave empty arrays out: compare what is set.
    let answer = label(
        &client,
        &uid,
        json!({"context": "test", "labelling": [{"assigned": assigned, "dismissed": dismissed}]}),
    )
    .await
    .unwrap();
    assert_eq!(answer["comment"]["uid"], uid.as_str());
    assert_eq!(answer["comment"]["has_annotations"], true);
    assert_eq!(group(&answer, "default")["assigned"], assigned);
    assert_eq!(group(&answer, "default")["dismissed"], dismissed);

    let read = labellings(&client, &[&uid], false).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0]["labelling"], answer["labelling"]);
    assert_eq!(read[0]["comment"]["has_annotations"], true);

    // Only `dismissed` given: `assigned` stays as it was.
    let answer = label(
        &client,
        &uid,
        json!({"labelling": [{"group": "default", "dismissed": [{"name": "Billing"}]}]}),
    )
    .await
    .unwrap();
    assert_eq!(group(&answer, "default")["assigned"], assigned);
    assert_eq!(names(&group(&answer, "default")["dismissed"]), ["Billing"]);
    let read = labellings(&client, &[&uid], false).await;
    assert_eq!(read[0]["labelling"], answer["labelling"]);

    // Reviewed comments of the source, in pages: c1 and c3, not c2.
    assign(&client, &format!("{source_id}.c3"), &["Shipping"]).await;
    assert_eq!(
        reviewed(&client, &source_id, 1).await,
        [uid.clone(), format!("{source_id}.c3")]
    );
    // Several uids at once, in the order asked, with `id` and with `ids`.
    let (c1, c3) = (uid.clone(), format!("{source_id}.c3"));
    let both = labellings(&client, &[&c3, &c1], false).await;
    let order: Vec<&str> = both
        .iter()
        .map(|r| r["comment"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(order, [c3.as_str(), c1.as_str()]);
    let by_ids = client
        .get_labellings()
        .project("acme")
        .dataset_name("triage")
        .ids(format!("{c3},{c1}"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::to_value(by_ids).unwrap()["results"],
        json!(both)
    );
    // An unreviewed comment reads back with empty groups.
    let unreviewed = labellings(&client, &[&format!("{source_id}.c2")], false).await;
    assert_eq!(unreviewed[0]["comment"]["has_annotations"], false);
    assert_eq!(unreviewed[0]["labelling"], json!([{"group": "default"}]));

    // Emptying both lists un-reviews the comment. cm-api leaves empty lists
    // out of the request (which keeps them), so this one is sent raw.
    let cleared = reqwest::Client::new()
        .post(format!(
            "{}/api/_private/datasets/acme/triage/labellings/{uid}",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .json(&json!({"labelling": [{"assigned": [], "dismissed": []}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(
        reviewed(&client, &source_id, 10).await,
        [format!("{source_id}.c3")]
    );
    let read = labellings(&client, &[&uid], false).await;
    assert_eq!(read[0]["comment"]["has_annotations"], false);
}

#[tokio::test]
async fn an_unknown_label_group_or_comment_is_refused_and_changes_nothing() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = setup(&client).await;
    sync(&client, &[("c1", "Where is my refund?")]).await;
    let uid = format!("{source_id}.c1");
    assign(&client, &uid, &["Refund"]).await;
    let before = labellings(&client, &[&uid], true).await;

    let refused = [
        (
            json!({"labelling": [{"assigned": [{"name": "Refund"}, {"name": "Nope"}]}]}),
            422,
            "Nope",
        ),
        (
            json!({"labelling": [{"group": "other", "assigned": [{"name": "Refund"}]}]}),
            422,
            "other",
        ),
        (
            json!({"labelling": [{"assigned": [{"name": "Billing"}], "dismissed": [{"name": "Billing"}]}]}),
            422,
            "Billing",
        ),
        (
            json!({"labelling": [{"assigned": [{"name": "Billing", "sentiment": "meh"}]}]}),
            422,
            "sentiment",
        ),
    ];
    for (body, status, named) in refused {
        let (got, message) = api_error(label(&client, &uid, body.clone()).await.unwrap_err());
        assert_eq!(got, status, "{body}: {message}");
        assert!(message.contains(named), "{body}: {message}");
        assert_eq!(labellings(&client, &[&uid], true).await, before);
    }

    // A comment that is not in the dataset's sources.
    for missing in [
        format!("{source_id}.nope"),
        "0000000000000000.c1".to_owned(),
        "no-dot".to_owned(),
    ] {
        let error = label(&client, &missing, json!({"labelling": []}))
            .await
            .unwrap_err();
        assert_eq!(api_error(error).0, 404, "{missing}");
    }
    let error = client
        .get_labellings()
        .project("acme")
        .dataset_name("triage")
        .id(vec![uid.clone(), format!("{source_id}.nope")])
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);
    let skipped = client
        .get_labellings()
        .project("acme")
        .dataset_name("triage")
        .ids(format!("{uid},{source_id}.nope"))
        .allow_missing(true)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(skipped.results.len(), 1);

    // A reader may read labellings, not change them.
    let reader = client_with(
        &sandbox,
        &sandbox.mint_token(["voc-readonly", "sources-read"]),
    );
    assert_eq!(labellings(&reader, &[&uid], true).await, before);
    let error = label(
        &reader,
        &uid,
        json!({"labelling": [{"assigned": [{"name": "Billing"}]}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(api_error(error).0, 403);
    assert_eq!(labellings(&client, &[&uid], true).await, before);

    // Entities are not stored by the sandbox: 501, nothing changed.
    let error = label(
        &client,
        &uid,
        json!({"labelling": [{"assigned": []}], "entities": {"assigned": [{"name": "order", "kind": "order", "formatted_value": "1"}]}}),
    )
    .await
    .unwrap_err();
    let (status, message) = api_error(error);
    assert_eq!(status, 501);
    assert!(message.contains("entities"), "{message}");
    assert_eq!(labellings(&client, &[&uid], true).await, before);
}

#[tokio::test]
async fn predictions_are_deterministic_and_rank_the_label_sharing_words_first() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = setup(&client).await;
    let uid = |id: &str| format!("{source_id}.{id}");
    sync(
        &client,
        &[
            ("r1", "I want my money back for order 123"),
            ("s1", "The parcel was never delivered by the courier"),
            ("q1", "Please send my money back for this order"),
            ("q2", "Lovely weather today"),
            ("l1", "My refund is late, still waiting for my money"),
        ],
    )
    .await;
    // Nothing reviewed yet: nothing predicted.
    assert_eq!(
        predict(&client, &[&uid("q1")], json!({})).await,
        [Vec::<(String, f64)>::new()]
    );
    assign(&client, &uid("r1"), &["Refund"]).await;
    assign(&client, &uid("s1"), &["Shipping"]).await;

    let (q1, q2) = (uid("q1"), uid("q2"));
    let first = predict(&client, &[&q1, &q2], json!({})).await;
    let again = predict(&client, &[&q1, &q2], json!({})).await;
    assert_eq!(first, again, "same input, same output");
    let q1_labels = &first[0];
    assert_eq!(q1_labels[0].0, "Refund", "{q1_labels:?}");
    assert!(q1_labels.iter().all(|(_, p)| (0.0..=1.0).contains(p)));
    if let Some((_, shipping)) = q1_labels.iter().find(|(l, _)| l == "Shipping") {
        assert!(q1_labels[0].1 > *shipping);
    }
    // No word in common with any reviewed comment: no prediction. Labels
    // without reviewed comments (Billing) are never predicted.
    assert!(first[1].is_empty(), "{first:?}");
    assert!(!q1_labels.iter().any(|(l, _)| l == "Billing"));
    // A reviewed comment predicts its own label with certainty.
    assert_eq!(
        predict(&client, &[&uid("r1")], json!({})).await[0][0],
        ("Refund".to_owned(), 1.0)
    );

    // A child label's reviewed comments count for its parent.
    assign(&client, &uid("l1"), &["Refund > Late"]).await;
    let q1_labels = &predict(&client, &[&q1], json!({})).await[0];
    let p = |name: &str| q1_labels.iter().find(|(l, _)| l == name).map(|(_, p)| *p);
    assert!(p("Refund").unwrap() >= p("Refund > Late").unwrap());

    // The thresholds of predict_comments filter; get_labellings answers the
    // same predictions per group.
    let refund = p("Refund").unwrap();
    let above: Vec<String> = predict(&client, &[&q1], json!({"threshold": refund}))
        .await
        .remove(0)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert!(above.contains(&"Refund".to_owned()));
    assert!(
        above
            .iter()
            .all(|l| q1_labels.iter().any(|(m, p)| m == l && *p >= refund))
    );
    let only_shipping = predict(&client, &[&q1], json!({"labels": [{"name": ["Shipping"]}]})).await;
    assert!(only_shipping[0].iter().all(|(l, _)| l == "Shipping"));

    let annotated = labellings(&client, &[&q1], true).await;
    let predicted: Vec<(String, f64)> = arr(&group(&annotated[0], "default")["predicted"])
        .iter()
        .map(|l| {
            let levels: Vec<&str> = l["name"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            (levels.join(" > "), l["probability"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(&predicted, q1_labels);
    let version = annotated[0]["model_version"].as_i64().unwrap();
    assert!(version >= 3);

    // list_models: the latest model only, with its reviewed counts; a
    // version it never had is a 404.
    let models = client
        .list_models()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::ListModelsRequest>(json!({})))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(models.labellers.len(), 1);
    assert_eq!(models.labellers[0].version, version);
    assert_eq!(models.labellers[0].reviewed_counts["default"], 3);
    assert!(models.labellers[0].input_updated_at.is_some());
    assert!(models.labellers[0].trained_time >= models.labellers[0].input_updated_at);
    let error = client
        .predict_comments()
        .project("acme")
        .dataset_name("triage")
        .model_version((version + 1).to_string())
        .body(typed::<types::PredictCommentsRequest>(
            json!({"uids": [q1]}),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);
}

async fn create_stream(client: &Client, stream: Value) {
    client
        .create_stream()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateStreamRequest>(
            json!({"stream": stream}),
        ))
        .send()
        .await
        .expect("create_stream");
}

/// The stream's results: per comment id, (label, confidence, thresholds met).
async fn stream_labels(client: &Client, stream: &str) -> Vec<(String, Vec<(String, f64, Value)>)> {
    let answer = client
        .get_stream_results()
        .project("acme")
        .dataset_name("triage")
        .stream_name(stream)
        .send()
        .await
        .expect("get_stream_results")
        .into_inner();
    let value = serde_json::to_value(answer).unwrap();
    value["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = arr(&r["prediction"]["taxonomies"])
                .iter()
                .flat_map(|t| arr(&t["labels"]).iter())
                .map(|l| {
                    (
                        l["name"].as_str().unwrap().to_owned(),
                        l["occurrence_confidence"]["value"].as_f64().unwrap(),
                        json!(arr(&l["occurrence_confidence"]["thresholds"])),
                    )
                })
                .collect();
            (r["comment"]["id"].as_str().unwrap().to_owned(), labels)
        })
        .collect()
}

#[tokio::test]
async fn stream_results_carry_predictions_and_a_threshold_filters_them() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = setup(&client).await;
    sync(
        &client,
        &[
            ("r1", "I want my money back for order 123"),
            ("s1", "The parcel was never delivered by the courier"),
        ],
    )
    .await;
    assign(&client, &format!("{source_id}.r1"), &["Refund"]).await;
    assign(&client, &format!("{source_id}.s1"), &["Shipping"]).await;

    create_stream(&client, json!({"name": "plain"})).await;
    create_stream(&client, json!({"name": "all", "model": {"version": 1}})).await;
    create_stream(
        &client,
        json!({"name": "refunds", "model": {"version": 1, "label_thresholds": [
            {"name": ["Refund"], "threshold": 0.4},
        ]}}),
    )
    .await;
    // q1 is close to r1 (Refund); q2 shares a word or two with r1 and s1.
    sync(
        &client,
        &[
            ("q1", "I want my money back for order 456"),
            ("q2", "Was my order delivered"),
        ],
    )
    .await;
    let uids = [format!("{source_id}.q1"), format!("{source_id}.q2")];
    let predicted = predict(&client, &[&uids[0], &uids[1]], json!({})).await;
    let confidence = |i: usize, label: &str| {
        predicted[i]
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, p)| *p)
    };
    let (q1_refund, q2_refund) = (
        confidence(0, "Refund").unwrap(),
        confidence(1, "Refund").unwrap(),
    );
    assert!(q1_refund >= 0.4 && q2_refund < 0.4, "{predicted:?}");

    // No model: no prediction.
    let plain = client
        .get_stream_results()
        .project("acme")
        .dataset_name("triage")
        .stream_name("plain")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.results.len(), 2);
    assert!(plain.results.iter().all(|r| r.prediction.is_none()));
    assert!(plain.model.is_none());

    // A model without thresholds: every prediction, as predict_comments.
    let all = stream_labels(&client, "all").await;
    assert_eq!(all.len(), 2);
    for (i, (id, labels)) in all.iter().enumerate() {
        assert_eq!(*id, ["q1", "q2"][i]);
        let plain: Vec<(String, f64)> = labels.iter().map(|(l, p, _)| (l.clone(), *p)).collect();
        assert_eq!(plain, predicted[i]);
        assert!(
            labels
                .iter()
                .all(|(_, _, t)| !t.as_array().unwrap().contains(&json!("stream")))
        );
    }

    // Thresholds: only Refund, and only at or above 0.4, marked `stream`.
    let refunds = stream_labels(&client, "refunds").await;
    assert_eq!(refunds[0].1.len(), 1, "{refunds:?}");
    let (name, value, thresholds) = &refunds[0].1[0];
    assert_eq!((name.as_str(), *value), ("Refund", q1_refund));
    // 7 of 9 words in common with r1: every built-in cut-off is met.
    assert_eq!(q1_refund, 7.0 / 9.0);
    assert_eq!(
        thresholds,
        &json!(["high_recall", "balanced", "high_precision", "stream"])
    );
    // The model's definition: the label groups as taxonomies.
    let answer = client
        .get_stream_results()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .send()
        .await
        .unwrap()
        .into_inner();
    let definition = serde_json::to_value(answer.model).unwrap();
    let taxonomy = &definition["definition"]["taxonomies"][0];
    assert_eq!(taxonomy["name"], "default");
    assert_eq!(
        names(&taxonomy["labels"]),
        ["Refund", "Refund > Late", "Shipping", "Billing"]
    );
    assert!(refunds[1].1.is_empty(), "{refunds:?}");

    // The legacy fetch applies the same filter.
    let fetched = client
        .fetch_stream()
        .project("acme")
        .dataset_name("triage")
        .stream_name("refunds")
        .body(typed::<types::FetchStreamRequest>(json!({"size": 10})))
        .send()
        .await
        .unwrap()
        .into_inner();
    let fetched = serde_json::to_value(fetched).unwrap();
    assert_eq!(
        fetched["results"][0]["labels"],
        json!([{"name": ["Refund"], "probability": q1_refund}])
    );
    assert!(arr(&fetched["results"][1]["labels"]).is_empty());

    // A threshold outside [0, 1] is refused at creation.
    let error = client
        .create_stream()
        .project("acme")
        .dataset_name("triage")
        .body(typed::<types::CreateStreamRequest>(json!({"stream": {
            "name": "bad", "model": {"version": 1, "label_thresholds": [{"name": ["Refund"], "threshold": 2}]}
        }})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 422);
}

async fn get_def(client: &Client, name: &str) -> Result<Value, (u16, String)> {
    client
        .get_label_def()
        .project("acme")
        .dataset_name("triage")
        .label_group_name("default")
        .label_name(name)
        .send()
        .await
        .map(|r| serde_json::to_value(r.into_inner().label).unwrap())
        .map_err(api_error)
}

async fn dataset_labels(client: &Client) -> Vec<String> {
    let d = client
        .get_dataset()
        .project("acme")
        .dataset_name("triage")
        .send()
        .await
        .unwrap()
        .into_inner()
        .dataset;
    let top: Vec<String> = d.label_defs.iter().map(|l| l.name.clone()).collect();
    let default: Vec<String> = d.label_groups[0]
        .label_defs
        .iter()
        .map(|l| l.name.clone())
        .collect();
    assert_eq!(top, default);
    top
}

#[tokio::test]
async fn label_defs_create_get_update_delete_round_trip() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = setup(&client).await;
    let put = |defs: Value| {
        client
            .create_label_defs()
            .project("acme")
            .dataset_name("triage")
            .label_group_name("default")
            .body(typed::<types::CreateLabelDefsRequest>(
                json!({"label_defs": defs}),
            ))
            .send()
    };
    put(json!([
        {"name": "Order > Cancel", "instructions": "Wants to cancel", "external_id": "X-1"},
        {"name": "Urgent", "trainable": true},
    ]))
    .await
    .unwrap();
    let def = get_def(&client, "Order > Cancel").await.unwrap();
    assert_eq!(def["instructions"], "Wants to cancel");
    assert_eq!(def["external_id"], "X-1");
    assert_eq!(get_def(&client, "Urgent").await.unwrap()["trainable"], true);
    assert_eq!(
        dataset_labels(&client).await,
        [
            "Refund",
            "Refund > Late",
            "Shipping",
            "Billing",
            "Order > Cancel",
            "Urgent"
        ]
    );

    // An existing label takes only the fields given.
    put(json!([{"name": "Order > Cancel", "title": "Cancel"}]))
        .await
        .unwrap();
    let def = get_def(&client, "Order > Cancel").await.unwrap();
    assert_eq!(
        (def["title"].as_str(), def["instructions"].as_str()),
        (Some("Cancel"), Some("Wants to cancel"))
    );
    // A bad name refuses the whole request.
    let error = put(json!([{"name": "Fine"}, {"name": "Bad >  > Name"}]))
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 422);
    assert_eq!(get_def(&client, "Fine").await.unwrap_err().0, 404);

    // Rename: the labellings follow.
    sync(&client, &[("c1", "Please cancel my order")]).await;
    let uid = format!("{source_id}.c1");
    assign(&client, &uid, &["Order > Cancel"]).await;
    let updated = client
        .update_label_def()
        .project("acme")
        .dataset_name("triage")
        .label_group_name("default")
        .label_name("Order > Cancel")
        .body(typed::<types::UpdateLabelDefRequest>(json!({"label": {
            "name": "Order > Cancellation", "instructions": "Cancels an order", "pretrained": null,
        }})))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.num_modified, 1);
    assert_eq!(updated.label.name, "Order > Cancellation");
    assert_eq!(get_def(&client, "Order > Cancel").await.unwrap_err().0, 404);
    let def = get_def(&client, "Order > Cancellation").await.unwrap();
    assert_eq!(def["instructions"], "Cancels an order");
    assert_eq!(def["title"], "Cancel");
    assert_eq!(def["external_id"], "X-1");
    let read = labellings(&client, &[&uid], false).await;
    assert_eq!(
        names(&group(&read[0], "default")["assigned"]),
        ["Order > Cancellation"]
    );
    // Renaming onto an existing label is a conflict.
    let error = client
        .update_label_def()
        .project("acme")
        .dataset_name("triage")
        .label_group_name("default")
        .label_name("Urgent")
        .body(typed::<types::UpdateLabelDefRequest>(
            json!({"label": {"name": "Billing"}}),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 409);

    // Delete: gone from the dataset and from the labellings; again is 0.
    let delete = |name: &'static str| {
        client
            .delete_label_def()
            .project("acme")
            .dataset_name("triage")
            .label_group_name("default")
            .label_name(name)
            .send()
    };
    assert_eq!(
        delete("Order > Cancellation")
            .await
            .unwrap()
            .into_inner()
            .num_modified,
        1
    );
    assert_eq!(
        get_def(&client, "Order > Cancellation")
            .await
            .unwrap_err()
            .0,
        404
    );
    assert!(
        !dataset_labels(&client)
            .await
            .contains(&"Order > Cancellation".to_owned())
    );
    let read = labellings(&client, &[&uid], false).await;
    assert_eq!(read[0]["comment"]["has_annotations"], false);
    assert_eq!(
        delete("Order > Cancellation")
            .await
            .unwrap()
            .into_inner()
            .num_modified,
        0
    );
    // An unknown group is a 404.
    let error = client
        .get_label_def()
        .project("acme")
        .dataset_name("triage")
        .label_group_name("nope")
        .label_name("Urgent")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);
}

#[tokio::test]
async fn a_deleted_comment_or_source_takes_its_labellings_along() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    let source_id = setup(&client).await;
    sync(
        &client,
        &[
            ("r1", "I want my money back"),
            ("q1", "I want my money back now"),
        ],
    )
    .await;
    let (r1, q1) = (format!("{source_id}.r1"), format!("{source_id}.q1"));
    assign(&client, &r1, &["Refund"]).await;
    assert_eq!(predict(&client, &[&q1], json!({})).await[0][0].0, "Refund");

    client
        .delete_comments()
        .project("acme")
        .source_name("inbox")
        .id(vec!["r1".to_owned()])
        .send()
        .await
        .unwrap();
    assert!(predict(&client, &[&q1], json!({})).await[0].is_empty());
    assert!(reviewed(&client, &source_id, 10).await.is_empty());
    // Uploaded again, the comment is not reviewed.
    sync(&client, &[("r1", "I want my money back")]).await;
    assert_eq!(
        labellings(&client, &[&r1], false).await[0]["comment"]["has_annotations"],
        false
    );

    assign(&client, &q1, &["Refund"]).await;
    client
        .delete_source_by_id()
        .source_id(source_id.as_str())
        .send()
        .await
        .unwrap();
    let error = client
        .get_labellings()
        .project("acme")
        .dataset_name("triage")
        .id(vec![q1.clone()])
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);
}
