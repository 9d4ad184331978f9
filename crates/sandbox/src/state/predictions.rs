//! Deterministic predictions from the labellings already made.
//!
//! The sandbox's "model" of a dataset: for each label of each label group,
//! the token sets of the comments reviewed with it (assigned the label or
//! one of its descendants, `Parent > Child`). A comment's confidence for a
//! label is the largest Jaccard similarity between its tokens and those of
//! one of these reviewed comments; tokens are the lowercased alphanumeric
//! words of the subject and body of every message. A label with no reviewed
//! comment, or sharing no token with any, is not predicted. Same labellings
//! and same comment, same predictions. See `DESIGN.md`.

use super::labellings::{group_names, label_names};
use super::*;

/// The confidence cut-offs the sandbox reports as the service's built-in
/// thresholds (the service computes them per label from validation).
pub(super) const BUILTIN_THRESHOLDS: [(&str, f64); 3] = [
    ("high_recall", 0.25),
    ("balanced", 0.5),
    ("high_precision", 0.75),
];

/// One predicted label of a comment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Prediction {
    pub(super) group: String,
    /// The full name, levels joined by ` > `.
    pub(super) label: String,
    /// In (0, 1].
    pub(super) confidence: f64,
}

impl Prediction {
    /// As a `PredictedLabel` with the name as the list of its levels.
    pub(super) fn predicted_label(&self) -> Value {
        json!({"name": self.levels(), "probability": self.confidence})
    }

    pub(super) fn levels(&self) -> Vec<&str> {
        self.label.split(" > ").collect()
    }

    /// The built-in thresholds the confidence meets.
    pub(super) fn builtin_thresholds(&self) -> Vec<&'static str> {
        BUILTIN_THRESHOLDS
            .iter()
            .filter(|(_, t)| self.confidence >= *t)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// A dataset's labels with the token sets of their reviewed comments.
pub(super) struct Model {
    /// (group, label, reviewed comments' tokens), in group then label order.
    labels: Vec<(String, String, Vec<BTreeSet<String>>)>,
}

impl Model {
    /// The model of a dataset as its labellings stand now; labellings of
    /// comments no longer in its sources do not count.
    pub(super) fn of(state: &State, d: &Dataset) -> Self {
        // (group, label) → uids reviewed with it or with a descendant.
        let mut reviewed: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
        let groups = group_names(d);
        for (uid, group, assigned) in d.labellings.assigned() {
            for name in label_names(d, group) {
                let child = format!("{name} > ");
                if assigned
                    .iter()
                    .any(|a| *a == name || a.starts_with(child.as_str()))
                {
                    reviewed.entry((group, name)).or_default().insert(uid);
                }
            }
        }
        let mut tokens_of: BTreeMap<&str, Option<BTreeSet<String>>> = BTreeMap::new();
        let mut labels = Vec::new();
        for group in groups {
            for name in label_names(d, group) {
                let Some(uids) = reviewed.get(&(group, name)) else {
                    continue;
                };
                let examples: Vec<BTreeSet<String>> = uids
                    .iter()
                    .filter_map(|uid| {
                        tokens_of
                            .entry(uid)
                            .or_insert_with(|| {
                                state.dataset_comment(d, uid).map(|(_, c)| tokens(c))
                            })
                            .clone()
                    })
                    .collect();
                if !examples.is_empty() {
                    labels.push((group.to_owned(), name.to_owned(), examples));
                }
            }
        }
        Self { labels }
    }

    /// The labels predicted for a comment: by group (in the dataset's
    /// order), then by confidence, highest first, then by name.
    pub(super) fn predict(&self, comment: &StoredComment) -> Vec<Prediction> {
        let mine = tokens(comment);
        let mut out: Vec<(usize, Prediction)> = Vec::new();
        let mut group_rank: Vec<&str> = Vec::new();
        for (group, label, examples) in &self.labels {
            let confidence = examples
                .iter()
                .map(|e| jaccard(&mine, e))
                .fold(0.0, f64::max);
            if confidence <= 0.0 {
                continue;
            }
            let rank = match group_rank.iter().position(|g| g == group) {
                Some(rank) => rank,
                None => {
                    group_rank.push(group);
                    group_rank.len() - 1
                }
            };
            out.push((
                rank,
                Prediction {
                    group: group.clone(),
                    label: label.clone(),
                    confidence,
                },
            ));
        }
        out.sort_by(|(ra, a), (rb, b)| {
            ra.cmp(rb)
                .then(b.confidence.total_cmp(&a.confidence))
                .then_with(|| a.label.cmp(&b.label))
        });
        out.into_iter().map(|(_, p)| p).collect()
    }
}

/// The lowercased alphanumeric words of the subject and body of every
/// message of a comment.
pub(super) fn tokens(comment: &StoredComment) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let messages = comment.fields.get("messages");
    let messages = messages
        .as_ref()
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for message in messages {
        for part in ["subject", "body"] {
            if let Some(text) = message
                .get(part)
                .and_then(|p| p.get("text"))
                .and_then(Value::as_str)
            {
                out.extend(
                    text.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(str::to_lowercase),
                );
            }
        }
    }
    out
}

/// |a ∩ b| / |a ∪ b|, 0 when both are empty.
pub(super) fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let common = a.intersection(b).count();
    let all = a.len() + b.len() - common;
    if all == 0 {
        0.0
    } else {
        common as f64 / all as f64
    }
}

/// A label filter with per-label thresholds: a stream's
/// `model.label_thresholds` or the `labels` of `predict_comments`.
#[derive(Debug, Default)]
pub(super) struct LabelThresholds(Vec<(String, Option<f64>)>);

#[derive(Deserialize)]
struct LabelThreshold {
    #[serde(default)]
    name: Vec<String>,
    threshold: Option<f64>,
}

impl LabelThresholds {
    /// From a list of `LabelThreshold`, 422 naming the field at fault.
    pub(super) fn decode(value: Value, at: &str) -> Result<Self, ApiError> {
        let list: Vec<LabelThreshold> = decode_value(value, at)?;
        let mut out = Vec::new();
        for (i, t) in list.into_iter().enumerate() {
            if t.name.is_empty() || t.name.iter().any(String::is_empty) {
                return Err(ApiError::unprocessable(format!(
                    "`{at}[{i}].name`: the label's levels, none empty"
                )));
            }
            if let Some(threshold) = t.threshold
                && !(0.0..=1.0).contains(&threshold)
            {
                return Err(ApiError::unprocessable(format!(
                    "`{at}[{i}].threshold`: between 0 and 1, got {threshold}"
                )));
            }
            out.push((t.name.join(" > "), t.threshold));
        }
        Ok(Self(out))
    }

    /// `None` when the filter drops the prediction; otherwise whether a
    /// threshold of its own applied (and was met).
    pub(super) fn admit(&self, p: &Prediction) -> Option<bool> {
        if self.0.is_empty() {
            return Some(false);
        }
        let (_, threshold) = self.0.iter().find(|(name, _)| *name == p.label)?;
        match threshold {
            None => Some(false),
            Some(t) if p.confidence >= *t => Some(true),
            Some(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct PredictCommentsRequest {
    uids: Vec<String>,
    threshold: Option<Value>,
    labels: Option<Value>,
}

impl State {
    /// The model version a path names: `latest`, or a version the dataset's
    /// model has had (the sandbox keeps only the latest model; an earlier
    /// version number answers its predictions).
    pub(super) fn model_version(&self, d: &Dataset, version: &str) -> Result<u64, ApiError> {
        let latest = d.labellings.model_version;
        if version == "latest" {
            return Ok(latest);
        }
        match version.parse::<u64>() {
            Ok(n) if (1..=latest).contains(&n) => Ok(n),
            Ok(n) => Err(ApiError::not_found(format!(
                "model version {n} of dataset `{}/{}` (the latest is {latest})",
                d.body["owner"].as_str().unwrap_or_default(),
                d.body["name"].as_str().unwrap_or_default(),
            ))),
            Err(_) => Err(ApiError::bad_request(format!(
                "`model_version`: a version number or `latest`, got {version:?}"
            ))),
        }
    }

    /// `PredictionsModel` of a dataset at a version.
    pub(super) fn predictions_model(d: &Dataset, version: u64) -> Value {
        let mut out = json!({"version": version});
        if let Some(time) = d.labellings.model_time {
            out["time"] = ts(time);
        }
        out
    }

    /// Predictions for stored comments of the dataset, by uid, in request
    /// order; `threshold` (a number, or `auto` for the `balanced` cut-off)
    /// and `labels` filter them.
    pub(crate) fn predict_comments(
        &self,
        project: &str,
        dataset: &str,
        model_version: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: PredictCommentsRequest = decode_value(body, "")?;
        let dataset_id = self.dataset_id(project, dataset)?;
        let d = &self.datasets[&dataset_id];
        let version = self.model_version(d, model_version)?;
        let threshold = match request.threshold {
            None | Some(Value::Null) => 0.0,
            Some(Value::String(s)) if s == "auto" => BUILTIN_THRESHOLDS[1].1,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(t) if (0.0..=1.0).contains(&t) => t,
                _ => {
                    return Err(ApiError::unprocessable(format!(
                        "`threshold`: between 0 and 1, got {n}"
                    )));
                }
            },
            Some(other) => {
                return Err(ApiError::unprocessable(format!(
                    "`threshold`: a number between 0 and 1 or `auto`, got {other}"
                )));
            }
        };
        let filter = match request.labels {
            None | Some(Value::Null) => LabelThresholds::default(),
            Some(labels) => LabelThresholds::decode(labels, "labels")?,
        };
        let mut comments = Vec::with_capacity(request.uids.len());
        for (i, uid) in request.uids.iter().enumerate() {
            let (_, comment) = self.dataset_comment(d, uid).ok_or_else(|| {
                ApiError::not_found(format!(
                    "`uids[{i}]`: comment `{uid}` in the sources of dataset `{project}/{dataset}`"
                ))
            })?;
            comments.push((uid, comment));
        }
        let model = Model::of(self, d);
        let predictions: Vec<Value> = comments
            .into_iter()
            .map(|(uid, comment)| {
                let labels: Vec<Value> = model
                    .predict(comment)
                    .iter()
                    .filter(|p| p.confidence >= threshold && filter.admit(p).is_some())
                    .map(Prediction::predicted_label)
                    .collect();
                json!({"uid": uid, "labels": labels})
            })
            .collect();
        Ok(json!({
            "predictions": predictions,
            "model": Self::predictions_model(d, version),
        }))
    }
}

#[derive(Deserialize)]
struct ListModelsRequest {
    older_than_version: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    limit: Option<Option<i64>>,
    #[allow(dead_code)]
    include_deleted: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    starred: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    validated: Option<Option<bool>>,
}

impl State {
    /// The dataset's model versions: the sandbox keeps only its latest
    /// model (none before the first labelling or label change), never
    /// starred, pinned or validated; the filters apply to it.
    pub(crate) fn list_models(
        &self,
        project: &str,
        dataset: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: ListModelsRequest = decode_value(body, "")?;
        if let Some(Some(limit)) = request.limit
            && limit < 0
        {
            return Err(ApiError::unprocessable(format!(
                "`limit`: must not be negative, got {limit}"
            )));
        }
        let dataset_id = self.dataset_id(project, dataset)?;
        let d = &self.datasets[&dataset_id];
        let latest = d.labellings.model_version;
        let listed = latest > 0
            && request
                .older_than_version
                .is_none_or(|older| (latest as i64) < older)
            && request.limit.flatten().is_none_or(|limit| limit > 0)
            && request.starred.flatten() != Some(true)
            && request.validated.flatten() != Some(true);
        let labellers = if listed {
            let mut reviewed_counts = Map::new();
            for group in super::labellings::group_names(d) {
                let count = d
                    .labellings
                    .assigned()
                    .filter(|(uid, g, _)| *g == group && self.is_reviewed(&dataset_id, uid))
                    .count();
                reviewed_counts.insert(group.to_owned(), count.into());
            }
            let mut model = json!({
                "version": latest,
                "model_name": "cm",
                "validated": false,
                "pinned": false,
                "used_by_triggers": d.streams.values().any(|s| s.model.is_some()),
                "reviewed_counts": reviewed_counts,
                "settings": {"starred": false, "description": ""},
                "freshness": "fresh",
                "flags": [],
            });
            if let Some(time) = d.labellings.model_time {
                model["trained_time"] = ts(time);
            }
            // The last change of a labelling the model learns from.
            if let Some(time) = d
                .labellings
                .assigned()
                .filter_map(|(uid, _, _)| self.labelled_at(&dataset_id, uid))
                .max()
            {
                model["input_updated_at"] = ts(time);
            }
            vec![model]
        } else {
            Vec::new()
        };
        Ok(json!({"labellers": labellers, "model_tags": []}))
    }
}
