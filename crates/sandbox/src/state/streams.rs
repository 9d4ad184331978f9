//! Streams: create, read results at least once, advance, reset.

use super::labellings::group_names;
use super::predictions::{LabelThresholds, Model, Prediction};
use super::*;

#[derive(Deserialize)]
struct CreateStreamRequest {
    stream: StreamNew,
}

#[derive(Deserialize)]
struct StreamNew {
    name: Option<String>,
    title: Option<String>,
    description: Option<String>,
    comment_filter: Option<Value>,
    model: Option<Value>,
}

#[derive(Deserialize)]
struct FetchStreamRequest {
    size: i64,
    max_filtered: Option<i64>,
}

#[derive(Deserialize)]
struct AdvanceStreamRequest {
    sequence_id: String,
}

#[derive(Deserialize)]
struct ResetStreamRequest {
    to_comment_created_at: String,
}

impl State {
    fn stream_json(dataset_id: &str, s: &Stream) -> Value {
        let mut out = json!({
            "id": s.id,
            "dataset_id": dataset_id,
            "name": s.name,
            "title": s.title,
            "description": s.description,
            "created_at": ts(s.created_at),
            "updated_at": s.updated_at.map(ts),
        });
        if let Some(filter) = &s.comment_filter {
            out["comment_filter"] = filter.to_json();
        }
        if let Some(model) = &s.model {
            out["model"] = model.clone();
        }
        out
    }

    pub(super) fn stream_ref(
        &self,
        project: &str,
        dataset: &str,
        stream: &str,
    ) -> Result<(&Dataset, &Stream), ApiError> {
        let d = &self.datasets[&self.dataset_id(project, dataset)?];
        let s = d
            .streams
            .get(stream)
            .ok_or_else(|| ApiError::not_found(format!("stream `{project}/{dataset}/{stream}`")))?;
        Ok((d, s))
    }

    pub(super) fn stream_mut(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
    ) -> Result<(&mut Dataset, String), ApiError> {
        let id = self.dataset_id(project, dataset)?;
        let dataset_ref = self.datasets.get_mut(&id).expect("indexed dataset exists");
        if !dataset_ref.streams.contains_key(stream) {
            return Err(ApiError::not_found(format!(
                "stream `{project}/{dataset}/{stream}`"
            )));
        }
        Ok((dataset_ref, stream.to_owned()))
    }

    pub(crate) fn create_stream(
        &mut self,
        project: &str,
        dataset: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: CreateStreamRequest = decode_value(body, "")?;
        let dataset_id = self.dataset_id(project, dataset)?;
        let s = request.stream;
        let name = s
            .name
            .ok_or_else(|| ApiError::unprocessable("`stream.name`: missing field `name`"))?;
        if name.is_empty()
            || name.len() > 256
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ApiError::unprocessable(format!(
                "`stream.name`: must match [A-Za-z0-9-_]{{1,256}}, got {name:?}"
            )));
        }
        let mut comment_filter = match s.comment_filter {
            None => None,
            Some(value) => Some(
                serde_path_to_error::deserialize::<_, StreamFilter>(value).map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner().to_string();
                    if inner.starts_with("unknown field") {
                        ApiError::new(
                            http::StatusCode::NOT_IMPLEMENTED,
                            format!("create_stream: `stream.comment_filter`: {inner}; the sandbox applies `sources` and `timestamp` only"),
                        )
                    } else {
                        ApiError::unprocessable(format!("`stream.comment_filter.{path}`: {inner}"))
                    }
                })?,
            ),
        };
        if let Some(range) = comment_filter.as_mut().and_then(|f| f.timestamp.as_mut()) {
            for (field, value) in [
                ("minimum", &mut range.minimum),
                ("maximum", &mut range.maximum),
            ] {
                if let Some(text) = value {
                    *text = stored_timestamp(text).ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "`stream.comment_filter.timestamp.{field}`: not a date-time: {text:?}"
                        ))
                    })?;
                }
            }
        }
        let model = match s.model {
            None | Some(Value::Null) => None,
            Some(model) => {
                #[derive(Deserialize)]
                #[allow(dead_code)]
                struct StreamModel {
                    version: i64,
                    #[serde(default)]
                    label_thresholds: Value,
                }
                let decoded = decode_value::<StreamModel>(model.clone(), "stream.model")?;
                if !decoded.label_thresholds.is_null() {
                    LabelThresholds::decode(
                        decoded.label_thresholds,
                        "stream.model.label_thresholds",
                    )?;
                }
                Some(model)
            }
        };
        let now = self.clock.now();
        let id = self.new_id();
        // A new stream starts at the current end of the upload log: it
        // delivers comments uploaded after its creation (reset it to go back).
        let position = self.next_seq - 1;
        let dataset_ref = self
            .datasets
            .get_mut(&dataset_id)
            .expect("indexed dataset exists");
        if dataset_ref.streams.contains_key(&name) {
            return Err(ApiError::conflict(format!(
                "stream `{project}/{dataset}/{name}`"
            )));
        }
        let stream = Stream {
            id,
            name: name.clone(),
            title: s.title.unwrap_or_default(),
            description: s.description.unwrap_or_default(),
            created_at: now,
            updated_at: None,
            comment_filter,
            model,
            position,
            exceptions: BTreeMap::new(),
        };
        let out = json!({"stream": Self::stream_json(&dataset_id, &stream)});
        dataset_ref.streams.insert(name, stream);
        Ok(out)
    }

    /// Forgets the stream and its position.
    pub(crate) fn delete_stream(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
    ) -> Result<Value, ApiError> {
        let (d, name) = self.stream_mut(project, dataset, stream)?;
        d.streams.remove(&name);
        Ok(json!({}))
    }

    pub(crate) fn get_stream(
        &self,
        project: &str,
        dataset: &str,
        stream: &str,
    ) -> Result<Value, ApiError> {
        let (d, s) = self.stream_ref(project, dataset, stream)?;
        Ok(json!({"stream": Self::stream_json(&d.id, s)}))
    }

    pub(crate) fn list_streams(&self, project: &str, dataset: &str) -> Result<Value, ApiError> {
        let id = self.dataset_id(project, dataset)?;
        Ok(json!({"streams": Self::streams_json(&self.datasets[&id])}))
    }

    /// The dataset's streams as `list_streams` answers them.
    pub(super) fn streams_json(d: &Dataset) -> Vec<Value> {
        d.streams
            .values()
            .map(|s| Self::stream_json(&d.id, s))
            .collect()
    }

    /// The next batch after the stream's position, without moving it.
    fn next_batch(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        max_results: usize,
        max_filtered: Option<usize>,
    ) -> Result<Batch, ApiError> {
        let (d, s) = self.stream_ref(project, dataset, stream)?;
        let sources: BTreeSet<&str> = d.source_ids.iter().map(String::as_str).collect();
        // A stream with a model answers its predictions (the sandbox's
        // latest model, whatever version it pins).
        let model = s.model.as_ref().map(|_| Model::of(self, d));
        let mut batch = Batch {
            results: Vec::new(),
            filtered: 0,
            last_seq: s.position,
            more: false,
        };
        for (&seq, entry) in self.log.range(s.position + 1..) {
            if !sources.contains(entry.source_id.as_str()) {
                continue;
            }
            let comment = &self.sources[&entry.source_id].comments[&entry.comment_id];
            let admitted = s
                .comment_filter
                .as_ref()
                .is_none_or(|f| f.admits(&entry.source_id, comment));
            if admitted && batch.results.len() == max_results
                || !admitted && max_filtered.is_some_and(|m| batch.filtered == m)
            {
                batch.more = true;
                break;
            }
            if admitted {
                let uid = format!("{}.{}", entry.source_id, entry.comment_id);
                let mut json = Self::comment_json(&entry.source_id, comment);
                json["has_annotations"] = d.labellings.has(&uid).into();
                batch.results.push(StreamItem {
                    seq,
                    comment: json,
                    predictions: model.as_ref().map(|m| m.predict(comment)),
                });
            } else {
                batch.filtered += 1;
            }
            batch.last_seq = seq;
        }
        Ok(batch)
    }

    pub(crate) fn get_stream_results(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let max_results = batch_size(query.integer("max_results")?, "query `max_results`")?;
        let max_filtered = non_negative(query.integer("max_filtered")?, "query `max_filtered`")?;
        let batch = self.next_batch(project, dataset, stream, max_results, max_filtered)?;
        let (d, s) = self.stream_ref(project, dataset, stream)?;
        let thresholds = stream_thresholds(s);
        let groups = group_names(d);
        let results: Vec<Value> = batch
            .results
            .into_iter()
            .map(|item| {
                let prediction = item.predictions.map_or(Value::Null, |predictions| {
                    stream_prediction(&groups, &predictions, &thresholds)
                });
                json!({"comment": item.comment, "prediction": prediction, "continuation": seq_id(item.seq)})
            })
            .collect();
        let model = match &s.model {
            Some(_) => json!({"definition": model_definition(d)}),
            None => Value::Null,
        };
        Ok(json!({
            "results": results,
            "num_filtered": batch.filtered,
            "more_results": batch.more,
            "continuation": seq_id(batch.last_seq),
            "model": model,
        }))
    }

    pub(crate) fn fetch_stream(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: FetchStreamRequest = decode_value(body, "")?;
        let size = batch_size(Some(request.size), "`size`")?;
        let max_filtered = non_negative(request.max_filtered, "`max_filtered`")?;
        let batch = self.next_batch(project, dataset, stream, size, max_filtered)?;
        let (_, s) = self.stream_ref(project, dataset, stream)?;
        let thresholds = stream_thresholds(s);
        let results: Vec<Value> = batch
            .results
            .into_iter()
            .map(|item| {
                let labels: Vec<Value> = item
                    .predictions
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| thresholds.admit(p).is_some())
                    .map(Prediction::predicted_label)
                    .collect();
                json!({"comment": item.comment, "sequence_id": seq_id(item.seq), "labels": labels, "entities": [], "label_properties": []})
            })
            .collect();
        Ok(json!({
            "filtered": batch.filtered,
            "sequence_id": seq_id(batch.last_seq),
            "is_end_sequence": !batch.more,
            "results": results,
        }))
    }

    /// Moves the stream to a sequence id (forwards or backwards).
    pub(crate) fn advance_stream(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: AdvanceStreamRequest = decode_value(body, "")?;
        let seq = parse_seq_id(&request.sequence_id)?;
        if seq >= self.next_seq {
            return Err(ApiError::bad_request(format!(
                "`sequence_id`: {:?} is past the end of the stream",
                request.sequence_id
            )));
        }
        let (d, name) = self.stream_mut(project, dataset, stream)?;
        d.streams.get_mut(&name).expect("checked").position = seq;
        Ok(json!({"sequence_id": seq_id(seq)}))
    }

    /// Moves the stream so that it resumes at the comments uploaded at or
    /// after `to_comment_created_at`.
    pub(crate) fn reset_stream(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: ResetStreamRequest = decode_value(body, "")?;
        let to = parse_timestamp(&request.to_comment_created_at).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "`to_comment_created_at`: not a date-time: {:?}",
                request.to_comment_created_at
            ))
        })?;
        // Upload times grow with sequence numbers: the position is the last
        // entry uploaded before `to`.
        let position = self
            .log
            .iter()
            .take_while(|(_, e)| e.at < to)
            .last()
            .map_or(0, |(&seq, _)| seq);
        let now = self.clock.now();
        let (d, name) = self.stream_mut(project, dataset, stream)?;
        let s = d.streams.get_mut(&name).expect("checked");
        s.position = position;
        s.updated_at = Some(now);
        Ok(
            json!({"sequence_id": seq_id(position), "stream": Self::stream_json(&d.id, &d.streams[&name])}),
        )
    }
}

/// The stream's `model.label_thresholds` (checked at creation).
fn stream_thresholds(s: &Stream) -> LabelThresholds {
    s.model
        .as_ref()
        .and_then(|m| m.get("label_thresholds"))
        .filter(|t| !t.is_null())
        .and_then(|t| LabelThresholds::decode(t.clone(), "stream.model.label_thresholds").ok())
        .unwrap_or_default()
}

/// `StreamCommentPrediction`: one taxonomy per label group, with the
/// labels the stream's thresholds admit; `thresholds` names the built-in
/// cut-offs met, and `stream` when the stream's own threshold applied.
fn stream_prediction(
    groups: &[&str],
    predictions: &[Prediction],
    thresholds: &LabelThresholds,
) -> Value {
    let taxonomies: Vec<Value> = groups
        .iter()
        .map(|group| {
            let labels: Vec<Value> = predictions
                .iter()
                .filter(|p| p.group == *group)
                .filter_map(|p| {
                    let own = thresholds.admit(p)?;
                    let mut met = p.builtin_thresholds();
                    if own {
                        met.push("stream");
                    }
                    Some(json!({
                        "name": p.label,
                        "occurrence_confidence": {"value": p.confidence, "thresholds": met},
                    }))
                })
                .collect();
            json!({"name": group, "labels": labels})
        })
        .collect();
    json!({"taxonomies": taxonomies})
}

/// `ModelDefinition`: the dataset's label groups as taxonomies.
fn model_definition(d: &Dataset) -> Value {
    let groups = d
        .body
        .get("label_groups")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let taxonomies: Vec<Value> = groups
        .iter()
        .map(|g| {
            let labels: Vec<Value> = g["label_defs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|def| json!({"name": def["name"], "instructions": def["instructions"]}))
                .collect();
            json!({"name": g["name"], "instructions": g["instructions"], "labels": labels})
        })
        .collect();
    json!({"taxonomies": taxonomies})
}

/// One comment of a batch: its sequence number, as answered, and its
/// predictions when the stream has a model.
struct StreamItem {
    seq: u64,
    comment: Value,
    predictions: Option<Vec<Prediction>>,
}

struct Batch {
    results: Vec<StreamItem>,
    filtered: usize,
    /// The last sequence number looked at: advancing to it moves past the
    /// whole batch, filtered comments included.
    last_seq: u64,
    more: bool,
}

fn batch_size(n: Option<i64>, what: &str) -> Result<usize, ApiError> {
    match n {
        None => Ok(DEFAULT_BATCH),
        Some(n) if (1..=MAX_BATCH as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::bad_request(format!(
            "{what}: between 1 and {MAX_BATCH}, got {n}"
        ))),
    }
}

fn non_negative(n: Option<i64>, what: &str) -> Result<Option<usize>, ApiError> {
    match n {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::bad_request(format!(
            "{what}: must not be negative, got {n}"
        ))),
    }
}
