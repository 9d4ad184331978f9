//! Labellings: the reviewed labels of each comment of a dataset, per label
//! group (assigned, dismissed, uninformative), keyed by comment uid.
//!
//! A labelling is kept only while it holds something; it is removed with its
//! comment (deleted, or its source deleted), and reads skip the labellings of
//! comments that are no longer in the dataset's sources.

use serde::Serialize;

use super::predictions::{Model, Prediction};
use super::*;

/// The labellings of one dataset.
#[derive(Debug, Default)]
pub(super) struct Labellings {
    /// By comment uid (`<source_id>.<comment_id>`).
    by_uid: BTreeMap<String, Labelling>,
    /// The sandbox's model of the dataset: bumped by every change to the
    /// labellings or the label definitions (it "trains" instantly). 0 before
    /// any change.
    pub(super) model_version: u64,
    /// When the model version last changed.
    pub(super) model_time: Option<DateTime<Utc>>,
}

impl Labellings {
    /// A new model version, now.
    pub(super) fn retrain(&mut self, now: DateTime<Utc>) {
        self.model_version += 1;
        self.model_time = Some(now);
    }

    /// Every (uid, group, assigned label names) of the dataset.
    pub(super) fn assigned(&self) -> impl Iterator<Item = (&str, &str, Vec<&str>)> {
        self.by_uid.iter().flat_map(|(uid, l)| {
            l.groups.iter().map(move |(group, labels)| {
                (
                    uid.as_str(),
                    group.as_str(),
                    labels.assigned.iter().map(|a| a.name.as_str()).collect(),
                )
            })
        })
    }

    /// Whether the uid has a labelling (its comment's presence unchecked).
    pub(super) fn has(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// Renames a label of a group in every labelling.
    pub(super) fn rename_label(&mut self, group: &str, from: &str, to: &str) {
        for labelling in self.by_uid.values_mut() {
            if let Some(g) = labelling.groups.get_mut(group) {
                for label in g.assigned.iter_mut().chain(g.dismissed.iter_mut()) {
                    if label.name == from {
                        label.name = to.to_owned();
                    }
                }
            }
        }
    }

    /// Removes a label of a group from every labelling (and the labellings
    /// left empty). Whether any labelling changed.
    pub(super) fn remove_label(&mut self, group: &str, name: &str) -> bool {
        let mut changed = false;
        for labelling in self.by_uid.values_mut() {
            if let Some(g) = labelling.groups.get_mut(group) {
                let before = g.assigned.len() + g.dismissed.len();
                g.assigned.retain(|l| l.name != name);
                g.dismissed.retain(|l| l.name != name);
                changed |= g.assigned.len() + g.dismissed.len() != before;
                if g.is_empty() {
                    labelling.groups.remove(group);
                }
            }
        }
        self.by_uid.retain(|_, l| !l.groups.is_empty());
        changed
    }

    /// Forgets the labellings of these uids. Whether any existed.
    pub(super) fn forget(&mut self, uids: &[String]) -> bool {
        let mut changed = false;
        for uid in uids {
            changed |= self.by_uid.remove(uid).is_some();
        }
        changed
    }
}

/// The reviewed labels of one comment.
#[derive(Debug, Clone)]
struct Labelling {
    /// By label group name; a group is kept only while it holds something.
    groups: BTreeMap<String, GroupLabels>,
    /// When the labelling last changed.
    at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct GroupLabels {
    assigned: Vec<Label>,
    dismissed: Vec<Label>,
    uninformative: Option<Uninformative>,
}

impl GroupLabels {
    fn is_empty(&self) -> bool {
        self.assigned.is_empty() && self.dismissed.is_empty() && self.uninformative.is_none()
    }
}

/// `ExportedLabel`, as stored and answered (`instructions` is not stored).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Label {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

/// `AnnotationMetadata`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Metadata {
    user_id: String,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ui: Option<Ui>,
}

/// `AnnotationUi`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Ui {
    assignment_method: String,
    view: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reviewed_filter_rule: Option<String>,
    retrieval_method: String,
    has_label_filter: bool,
}

/// `UninformativeLabel`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Uninformative {
    mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct UpdateLabellingRequest {
    #[serde(default)]
    #[allow(dead_code)]
    context: Option<String>,
    #[serde(default)]
    labelling: Vec<GroupUpdate>,
    entities: Option<EntitiesUpdate>,
    #[serde(default)]
    moon_forms: Vec<Value>,
}

#[derive(Deserialize)]
struct EntitiesUpdate {
    #[serde(default)]
    assigned: Vec<Value>,
    #[serde(default)]
    dismissed: Vec<Value>,
}

#[derive(Deserialize)]
struct GroupUpdate {
    group: Option<String>,
    assigned: Option<Vec<Label>>,
    dismissed: Option<Vec<Label>>,
    #[serde(default, deserialize_with = "double_option")]
    uninformative: Option<Option<Uninformative>>,
}

fn not_implemented(message: String) -> ApiError {
    ApiError::new(http::StatusCode::NOT_IMPLEMENTED, message)
}

/// The names of a dataset's label groups, in order.
pub(super) fn group_names(d: &Dataset) -> Vec<&str> {
    d.body
        .get("label_groups")
        .and_then(Value::as_array)
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| g.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The label definitions of a group, or `None` when there is no such group.
pub(super) fn group_label_defs<'a>(d: &'a Dataset, group: &str) -> Option<&'a Vec<Value>> {
    d.body
        .get("label_groups")
        .and_then(Value::as_array)?
        .iter()
        .find(|g| g.get("name").and_then(Value::as_str) == Some(group))
        .and_then(|g| g.get("label_defs"))
        .and_then(Value::as_array)
}

/// The label names of a group (empty when there is no such group).
pub(super) fn label_names<'a>(d: &'a Dataset, group: &str) -> Vec<&'a str> {
    group_label_defs(d, group)
        .map(|defs| {
            defs.iter()
                .filter_map(|def| def.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// Stores a metadata timestamp as RFC 3339, 422 naming it otherwise.
fn check_metadata(metadata: &mut Option<Metadata>, at: &str) -> Result<(), ApiError> {
    if let Some(m) = metadata {
        m.timestamp = stored_timestamp(&m.timestamp).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "`{at}.metadata.timestamp`: not a date-time: {:?}",
                m.timestamp
            ))
        })?;
    }
    Ok(())
}

impl State {
    /// The stored comment a uid names, when it is in one of the dataset's
    /// sources: `(source_id, comment)`.
    pub(super) fn dataset_comment<'a>(
        &'a self,
        d: &Dataset,
        uid: &str,
    ) -> Option<(&'a str, &'a StoredComment)> {
        let (source_id, comment_id) = uid.split_once('.')?;
        if !d.source_ids.iter().any(|s| s == source_id) {
            return None;
        }
        let (id, source) = self.sources.get_key_value(source_id)?;
        Some((id.as_str(), source.comments.get(comment_id)?))
    }

    /// The labelling of a uid, when its comment is still in the dataset.
    fn live_labelling(&self, dataset_id: &str, uid: &str) -> Option<&Labelling> {
        let d = self.datasets.get(dataset_id)?;
        self.dataset_comment(d, uid)?;
        d.labellings.by_uid.get(uid)
    }

    /// Whether the comment (uid `<source_id>.<comment_id>`) has a reviewed
    /// labelling in the dataset.
    pub(super) fn is_reviewed(&self, dataset_id: &str, uid: &str) -> bool {
        self.live_labelling(dataset_id, uid).is_some()
    }

    /// When the comment's labelling last changed, if it has one.
    pub(super) fn labelled_at(&self, dataset_id: &str, uid: &str) -> Option<DateTime<Utc>> {
        self.live_labelling(dataset_id, uid).map(|l| l.at)
    }

    /// ExportedComment's `annotations` (schema ExportedAnnotations): the
    /// assigned labels of every group, in group order; `None` when the
    /// comment has no labelling.
    pub(super) fn exported_annotations(&self, dataset_id: &str, uid: &str) -> Option<Value> {
        let labelling = self.live_labelling(dataset_id, uid)?;
        let d = &self.datasets[dataset_id];
        let assigned: Vec<&Label> = group_names(d)
            .into_iter()
            .filter_map(|g| labelling.groups.get(g))
            .flat_map(|g| g.assigned.iter())
            .collect();
        Some(json!({"labels": {"assigned": assigned}}))
    }

    /// ExportedComment's `predictions` (schema ExportedPredictions): label
    /// names as strings; `None` when there are none.
    pub(super) fn exported_predictions(&self, dataset_id: &str, uid: &str) -> Option<Value> {
        let predictions = self.predict_uid(dataset_id, uid);
        if predictions.is_empty() {
            return None;
        }
        let labels: Vec<Value> = predictions
            .iter()
            .map(|p| json!({"name": p.label, "probability": p.confidence}))
            .collect();
        Some(json!({"labels": labels}))
    }

    /// AnnotatedComment's `labelling` (array of LabellingGroup): one entry
    /// per label group of the dataset, in order, with its assigned and
    /// dismissed labels, and `predicted` when `with_predictions`.
    pub(super) fn labelling_groups(
        &self,
        dataset_id: &str,
        uid: &str,
        with_predictions: bool,
    ) -> Value {
        let Some(d) = self.datasets.get(dataset_id) else {
            return json!([]);
        };
        let labelling = self.live_labelling(dataset_id, uid);
        let predictions = if with_predictions {
            self.predict_uid(dataset_id, uid)
        } else {
            Vec::new()
        };
        let empty = GroupLabels::default();
        let groups: Vec<Value> = group_names(d)
            .into_iter()
            .map(|name| {
                let labels = labelling.and_then(|l| l.groups.get(name)).unwrap_or(&empty);
                let mut out = json!({
                    "group": name,
                    "assigned": labels.assigned,
                    "dismissed": labels.dismissed,
                });
                if let Some(u) = &labels.uninformative {
                    out["uninformative"] = json!(u);
                }
                if with_predictions {
                    out["predicted"] = predictions
                        .iter()
                        .filter(|p| p.group == name)
                        .map(Prediction::predicted_label)
                        .collect();
                }
                out
            })
            .collect();
        Value::Array(groups)
    }

    /// A comment as answered in a dataset: `has_annotations` says whether
    /// it has a labelling there.
    pub(super) fn dataset_comment_json(&self, dataset_id: &str, uid: &str) -> Option<Value> {
        let d = self.datasets.get(dataset_id)?;
        let (source_id, comment) = self.dataset_comment(d, uid)?;
        let mut out = Self::comment_json(source_id, comment);
        out["has_annotations"] = self.is_reviewed(dataset_id, uid).into();
        Some(out)
    }

    fn annotated_comment(&self, dataset_id: &str, uid: &str, with_predictions: bool) -> Value {
        let mut out = json!({
            "comment": self.dataset_comment_json(dataset_id, uid),
            "labelling": self.labelling_groups(dataset_id, uid, with_predictions),
        });
        if with_predictions {
            out["model_version"] = self.datasets[dataset_id].labellings.model_version.into();
        }
        out
    }

    /// Replaces the given parts of a comment's labelling (a list given
    /// replaces the stored one; groups and lists left out are unchanged).
    pub(crate) fn update_labelling(
        &mut self,
        project: &str,
        dataset: &str,
        uid: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: UpdateLabellingRequest = decode_value(body, "")?;
        let dataset_id = self.dataset_id(project, dataset)?;
        let d = &self.datasets[&dataset_id];
        if self.dataset_comment(d, uid).is_none() {
            return Err(ApiError::not_found(format!(
                "comment `{uid}` in the sources of dataset `{project}/{dataset}`"
            )));
        }
        if request
            .entities
            .as_ref()
            .is_some_and(|e| !e.assigned.is_empty() || !e.dismissed.is_empty())
        {
            return Err(not_implemented(
                "update_labelling: `entities` is not implemented by the sandbox".into(),
            ));
        }
        if !request.moon_forms.is_empty() {
            return Err(not_implemented(
                "update_labelling: `moon_forms` is not implemented by the sandbox".into(),
            ));
        }

        // Validate every group update against the label definitions and
        // merge it into a copy of the stored labelling.
        let stored = d.labellings.by_uid.get(uid);
        let mut groups = stored.map(|l| l.groups.clone()).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (g, update) in request.labelling.into_iter().enumerate() {
            let at = format!("labelling[{g}]");
            let group = update.group.unwrap_or_else(|| "default".into());
            if !seen.insert(group.clone()) {
                return Err(ApiError::unprocessable(format!(
                    "`{at}.group`: label group {group:?} appears twice"
                )));
            }
            if group_label_defs(d, &group).is_none() {
                return Err(ApiError::unprocessable(format!(
                    "`{at}.group`: dataset `{project}/{dataset}` has no label group {group:?}"
                )));
            }
            let names = label_names(d, &group);
            let entry = groups.entry(group.clone()).or_default();
            for (list, given) in [
                ("assigned", update.assigned),
                ("dismissed", update.dismissed),
            ] {
                let Some(mut labels) = given else { continue };
                let mut in_list = BTreeSet::new();
                for (i, label) in labels.iter_mut().enumerate() {
                    let at = format!("{at}.{list}[{i}]");
                    if !names.contains(&label.name.as_str()) {
                        return Err(ApiError::unprocessable(format!(
                            "`{at}.name`: label {:?} is not defined in label group {group:?} of dataset `{project}/{dataset}`",
                            label.name
                        )));
                    }
                    if !in_list.insert(label.name.clone()) {
                        return Err(ApiError::unprocessable(format!(
                            "`{at}.name`: label {:?} appears twice",
                            label.name
                        )));
                    }
                    if let Some(s) = &label.sentiment
                        && s != "positive"
                        && s != "negative"
                    {
                        return Err(ApiError::unprocessable(format!(
                            "`{at}.sentiment`: `positive` or `negative`, got {s:?}"
                        )));
                    }
                    check_metadata(&mut label.metadata, &at)?;
                }
                if list == "assigned" {
                    entry.assigned = labels;
                } else {
                    entry.dismissed = labels;
                }
            }
            if let Some(uninformative) = update.uninformative {
                entry.uninformative = match uninformative {
                    Some(mut u) => {
                        check_metadata(&mut u.metadata, &format!("{at}.uninformative"))?;
                        Some(u)
                    }
                    None => None,
                };
            }
            if let Some(label) = entry
                .assigned
                .iter()
                .find(|a| entry.dismissed.iter().any(|d| d.name == a.name))
            {
                return Err(ApiError::unprocessable(format!(
                    "`{at}`: label {:?} would be both assigned and dismissed",
                    label.name
                )));
            }
        }
        groups.retain(|_, g| !g.is_empty());

        let changed =
            stored.map(|l| &l.groups) != Some(&groups) && !(stored.is_none() && groups.is_empty());
        if changed {
            let now = self.clock.now();
            let d = self.datasets.get_mut(&dataset_id).expect("indexed dataset");
            if groups.is_empty() {
                d.labellings.by_uid.remove(uid);
            } else {
                d.labellings
                    .by_uid
                    .insert(uid.to_owned(), Labelling { groups, at: now });
            }
            d.labellings.retrain(now);
        }
        Ok(self.annotated_comment(&dataset_id, uid, false))
    }

    /// The named comments with their labellings, or one page of the
    /// reviewed comments of a source (in uid order; `after` is the last uid
    /// of the previous page).
    pub(crate) fn get_labellings(
        &self,
        project: &str,
        dataset: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let dataset_id = self.dataset_id(project, dataset)?;
        let d = &self.datasets[&dataset_id];
        let flag = |key: &str| -> Result<bool, ApiError> {
            match query.get(key) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(v) => Err(ApiError::bad_request(format!(
                    "query `{key}`: not a boolean: {v:?}"
                ))),
            }
        };
        let allow_missing = flag("allow_missing")?;
        let with_predictions = flag("return_predictions")?;
        if flag("compute_moon_predictions")? {
            return Err(not_implemented(
                "get_labellings: `compute_moon_predictions` is not implemented by the sandbox"
                    .into(),
            ));
        }
        let mut uids: Vec<&str> = query.all("id");
        for list in query.all("ids") {
            uids.extend(list.split(',').filter(|s| !s.is_empty()));
        }
        let source_id = query.get("source_id");
        let (results, after) = match (uids.is_empty(), source_id) {
            (false, Some(_)) => {
                return Err(ApiError::bad_request(
                    "name comments with `id`/`ids` or page a source with `source_id`, not both",
                ));
            }
            (true, None) => {
                return Err(ApiError::bad_request(
                    "name comments with `id`/`ids`, or page a source with `source_id`",
                ));
            }
            (false, None) => {
                let mut results = Vec::new();
                for uid in uids {
                    if self.dataset_comment(d, uid).is_none() {
                        if allow_missing {
                            continue;
                        }
                        return Err(ApiError::not_found(format!(
                            "comment `{uid}` in the sources of dataset `{project}/{dataset}`"
                        )));
                    }
                    results.push(self.annotated_comment(&dataset_id, uid, with_predictions));
                }
                (results, Value::Null)
            }
            (true, Some(source_id)) => {
                if !d.source_ids.iter().any(|s| s == source_id) {
                    return Err(ApiError::not_found(format!(
                        "source with id `{source_id}` in dataset `{project}/{dataset}`"
                    )));
                }
                let limit = match query.integer("limit")? {
                    None => DEFAULT_PAGE,
                    Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
                    Some(n) => {
                        return Err(ApiError::bad_request(format!(
                            "query `limit`: between 1 and {MAX_PAGE}, got {n}"
                        )));
                    }
                };
                let prefix = format!("{source_id}.");
                let start = match query.get("after") {
                    Some(after) if after.starts_with(&prefix) => {
                        std::ops::Bound::Excluded(after.to_owned())
                    }
                    Some(after) => {
                        return Err(ApiError::bad_request(format!(
                            "query `after`: not a page of source `{source_id}`: {after:?}"
                        )));
                    }
                    None => std::ops::Bound::Included(prefix.clone()),
                };
                let mut page = Vec::new();
                let mut more = false;
                for uid in d
                    .labellings
                    .by_uid
                    .range::<String, _>((start, std::ops::Bound::Unbounded))
                    .map(|(uid, _)| uid)
                    .take_while(|uid| uid.starts_with(&prefix))
                    .filter(|uid| self.dataset_comment(d, uid).is_some())
                {
                    if page.len() == limit {
                        more = true;
                        break;
                    }
                    page.push(uid.as_str());
                }
                let after = match (more, page.last()) {
                    (true, Some(last)) => Value::String((*last).to_owned()),
                    _ => Value::Null,
                };
                let results = page
                    .into_iter()
                    .map(|uid| self.annotated_comment(&dataset_id, uid, with_predictions))
                    .collect();
                (results, after)
            }
        };
        Ok(json!({"results": results, "entity_defs": [], "after": after}))
    }

    /// Forgets the labellings of these comments in every dataset (the
    /// comments were deleted).
    pub(super) fn forget_labellings(&mut self, uids: &[String]) {
        if uids.is_empty() {
            return;
        }
        let now = self.clock.now();
        for d in self.datasets.values_mut() {
            if d.labellings.forget(uids) {
                d.labellings.retrain(now);
            }
        }
    }

    /// The predictions of a comment of a dataset (empty when the comment is
    /// not in it).
    pub(super) fn predict_uid(&self, dataset_id: &str, uid: &str) -> Vec<Prediction> {
        let Some(d) = self.datasets.get(dataset_id) else {
            return Vec::new();
        };
        let Some((_, comment)) = self.dataset_comment(d, uid) else {
            return Vec::new();
        };
        Model::of(self, d).predict(comment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::component_violations;

    /// A dataset `acme/triage` over source `acme/inbox` with labels
    /// `Refund` and `Shipping`, and comments `r1`, `q1`, `q2`; returns
    /// (dataset id, source id).
    fn state() -> (State, String, String) {
        let mut s = State::new();
        s.create_project("acme", json!({"project": {}})).unwrap();
        let source = s
            .create_source("acme", "inbox", json!({"source": {}}))
            .unwrap();
        let source_id = source["source"]["id"].as_str().unwrap().to_owned();
        let dataset = s
            .create_dataset(
                "acme",
                "triage",
                json!({"dataset": {"source_ids": [source_id],
                    "label_defs": [{"name": "Refund"}, {"name": "Shipping"}]}}),
            )
            .unwrap();
        let dataset_id = dataset["dataset"]["id"].as_str().unwrap().to_owned();
        let comment =
            |id: &str, text: &str| json!({"id": id, "messages": [{"body": {"text": text}}]});
        s.sync_comments(
            "acme",
            "inbox",
            CheckedComments::check(json!({"comments": [
                comment("r1", "money back please"),
                comment("q1", "I want my money back"),
                comment("q2", "nothing in common"),
            ]})),
        )
        .unwrap();
        (s, dataset_id, source_id)
    }

    #[test]
    fn exported_annotations_and_predictions_follow_the_labellings_and_the_spec() {
        let (mut s, dataset_id, source_id) = state();
        let r1 = format!("{source_id}.r1");
        let q1 = format!("{source_id}.q1");
        let q2 = format!("{source_id}.q2");
        assert_eq!(s.exported_annotations(&dataset_id, &r1), None);
        assert_eq!(s.exported_predictions(&dataset_id, &q1), None);
        assert!(!s.is_reviewed(&dataset_id, &r1));

        s.update_labelling(
            "acme",
            "triage",
            &r1,
            json!({"labelling": [{"assigned": [{"name": "Refund", "sentiment": "negative"}],
                                  "dismissed": [{"name": "Shipping"}]}]}),
        )
        .unwrap();
        assert!(s.is_reviewed(&dataset_id, &r1));
        let annotations = s.exported_annotations(&dataset_id, &r1).unwrap();
        assert_eq!(
            annotations,
            json!({"labels": {"assigned": [{"name": "Refund", "sentiment": "negative"}]}})
        );
        assert_eq!(
            component_violations("ExportedAnnotations", &annotations),
            Vec::<String>::new()
        );

        // q1 shares "money" and "back" with r1: {money, back, please} vs
        // {i, want, my, money, back} → 2 / 6.
        let predictions = s.exported_predictions(&dataset_id, &q1).unwrap();
        assert_eq!(
            predictions,
            json!({"labels": [{"name": "Refund", "probability": 2.0 / 6.0}]})
        );
        assert_eq!(
            component_violations("ExportedPredictions", &predictions),
            Vec::<String>::new()
        );
        assert_eq!(s.exported_predictions(&dataset_id, &q2), None);
        let groups = s.labelling_groups(&dataset_id, &q1, true);
        assert_eq!(
            groups,
            json!([{"group": "default", "assigned": [], "dismissed": [],
                    "predicted": [{"name": ["Refund"], "probability": 2.0 / 6.0}]}])
        );

        // Gone with the comment.
        s.delete_comments("acme", "inbox", &crate::wire::Query::parse(Some("id=r1")))
            .unwrap();
        assert_eq!(s.exported_annotations(&dataset_id, &r1), None);
        assert_eq!(s.exported_predictions(&dataset_id, &q1), None);
    }
}
