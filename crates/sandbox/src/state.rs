//! The in-memory state and the semantics of each implemented operation.
//! See `DESIGN.md` for the model; every method validates its whole input
//! before it changes anything, so a rejected request leaves no trace.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::wire::{
    ApiError, Query, decode_value, format_timestamp, parse_timestamp, stored_timestamp,
};

/// The most comments one `sync_comments` request may carry (the spec's limit).
pub(crate) const MAX_SYNC_COMMENTS: usize = 16_384;
/// The default and largest page of `list_source_comments`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_024;
/// The default and largest batch of `get_stream_results` / `fetch_stream`.
const DEFAULT_BATCH: usize = 16;
const MAX_BATCH: usize = 1_024;

/// A caller: who a token belongs to and what it may do.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) permissions: BTreeSet<String>,
}

/// Everything the sandbox holds.
#[derive(Debug)]
pub(crate) struct State {
    clock: Clock,
    rng: fastrand::Rng,
    pub(crate) tokens: HashMap<String, Principal>,
    projects: BTreeMap<String, Project>,
    /// By id.
    sources: BTreeMap<String, Source>,
    /// (project, name) → id.
    source_names: BTreeMap<(String, String), String>,
    /// By id.
    datasets: BTreeMap<String, Dataset>,
    /// (project, name) → id.
    dataset_names: BTreeMap<(String, String), String>,
    /// The upload log: every stored comment version by sequence number,
    /// the order streams deliver in. A comment has exactly one entry (its
    /// latest version); an update moves it to the end.
    log: BTreeMap<u64, LogEntry>,
    next_seq: u64,
}

#[derive(Debug)]
struct Clock {
    last: DateTime<Utc>,
}

impl Clock {
    /// Now, in microseconds, strictly after every earlier reading: upload
    /// times order comments even when two requests land in the same tick.
    fn now(&mut self) -> DateTime<Utc> {
        let wall = Utc::now()
            .duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or_else(|_| Utc::now());
        let next = self.last + TimeDelta::microseconds(1);
        self.last = wall.max(next);
        self.last
    }
}

#[derive(Debug)]
struct Project {
    id: String,
    name: String,
    title: String,
    description: String,
    user_auto_join: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Source {
    id: String,
    project: String,
    name: String,
    settings: SourceSettings,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    comments: HashMap<String, StoredComment>,
    /// (timestamp, id) of every comment: the listing order.
    by_time: BTreeSet<(DateTime<Utc>, String)>,
}

#[derive(Debug, Clone)]
struct SourceSettings {
    kind: String,
    language: String,
    title: String,
    description: String,
    should_translate: bool,
    sensitive_properties: Vec<String>,
    bucket_id: Option<String>,
    email_transform_tag: Option<String>,
    email_transform_version: Option<i64>,
}

#[derive(Debug)]
struct StoredComment {
    /// The comment's fields exactly as uploaded (the keys of `CommentNew`).
    fields: Map<String, Value>,
    /// The listing order: the comment's `timestamp`, or its upload time
    /// when it has none.
    order: DateTime<Utc>,
    created_at: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    seq: u64,
}

#[derive(Debug)]
struct LogEntry {
    source_id: String,
    comment_id: String,
    at: DateTime<Utc>,
}

#[derive(Debug)]
struct Dataset {
    id: String,
    /// The dataset as `get_dataset` answers it, `source_ids` excepted.
    body: Map<String, Value>,
    source_ids: Vec<String>,
    streams: BTreeMap<String, Stream>,
}

#[derive(Debug)]
struct Stream {
    id: String,
    name: String,
    title: String,
    description: String,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
    comment_filter: Option<StreamFilter>,
    model: Option<Value>,
    /// Comments with a sequence number above this are still to deliver.
    position: u64,
}

/// The part of `CommentFilter` the sandbox applies; other conditions are
/// refused at creation (501), never silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamFilter {
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    timestamp: Option<TimestampRange>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampRange {
    minimum: Option<String>,
    maximum: Option<String>,
}

impl StreamFilter {
    fn to_json(&self) -> Value {
        let mut out = json!({"sources": self.sources});
        if let Some(range) = &self.timestamp {
            let mut r = Map::new();
            if let Some(min) = &range.minimum {
                r.insert("minimum".into(), min.clone().into());
            }
            if let Some(max) = &range.maximum {
                r.insert("maximum".into(), max.clone().into());
            }
            out["timestamp"] = Value::Object(r);
        }
        out
    }

    fn admits(&self, source_id: &str, comment: &StoredComment) -> bool {
        if !self.sources.is_empty() && !self.sources.iter().any(|s| s == source_id) {
            return false;
        }
        if let Some(range) = &self.timestamp {
            let t = comment.order;
            if range
                .minimum
                .as_deref()
                .and_then(parse_timestamp)
                .is_some_and(|min| t < min)
            {
                return false;
            }
            if range
                .maximum
                .as_deref()
                .and_then(parse_timestamp)
                .is_some_and(|max| t >= max)
            {
                return false;
            }
        }
        true
    }
}

fn ts(t: DateTime<Utc>) -> Value {
    Value::String(format_timestamp(t))
}

fn seq_id(seq: u64) -> String {
    format!("{seq:016x}")
}

fn parse_seq_id(text: &str) -> Result<u64, ApiError> {
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`sequence_id`: not a sequence id of this sandbox: {text:?}"
            ))
        })
}

/// `Option<Option<T>>` from a field that may be absent, `null` or a value.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------
// Request bodies: the fields the sandbox reads, typed as the spec types them.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateProjectRequest {
    project: ProjectNew,
    #[serde(default)]
    #[allow(dead_code)]
    user_ids: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    uipath_user_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ProjectNew {
    title: Option<String>,
    description: Option<String>,
    user_auto_join: Option<bool>,
}

#[derive(Deserialize)]
struct SourceRequest {
    source: SourceFields,
}

#[derive(Deserialize, Default)]
struct SourceFields {
    #[serde(rename = "_kind")]
    kind: Option<String>,
    language: Option<String>,
    title: Option<String>,
    description: Option<String>,
    should_translate: Option<bool>,
    sensitive_properties: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    bucket_id: Option<Option<String>>,
    email_transform_tag: Option<String>,
    email_transform_version: Option<i64>,
}

/// A validated comment of a sync: id, stored fields, timestamp.
type Upload = (String, Map<String, Value>, Option<DateTime<Utc>>);

#[derive(Deserialize)]
struct SyncCommentsRequest {
    comments: Vec<Value>,
}

/// `CommentNew`, to check each comment's shape; the comment is stored as sent.
#[derive(Deserialize)]
#[allow(dead_code)]
struct CommentNew {
    id: String,
    timestamp: Option<String>,
    thread_id: Option<String>,
    user_properties: Option<BTreeMap<String, UserPropertyValue>>,
    messages: Option<Vec<Message>>,
    text_format: Option<String>,
    attachments: Option<Vec<Attachment>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum UserPropertyValue {
    String(String),
    Number(f64),
    Bool(bool),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Message {
    from: Option<String>,
    to: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    bcc: Option<Vec<String>>,
    sent_at: Option<String>,
    language: Option<String>,
    body: MessageText,
    subject: Option<MessageText>,
    signature: Option<MessageText>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct MessageText {
    text: String,
    translated_from: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Attachment {
    name: String,
    size: Option<i64>,
    content_type: Option<String>,
    content_hash: Option<String>,
    inline: Option<bool>,
    attachment_reference: Option<String>,
}

/// Removes every `null` member of `object` and of the objects inside it
/// (array items stay, so positions do not shift).
fn drop_nulls(object: &mut Map<String, Value>) {
    object.retain(|_, v| !v.is_null());
    for value in object.values_mut() {
        drop_nulls_in(value);
    }
}

fn drop_nulls_in(value: &mut Value) {
    match value {
        Value::Object(object) => drop_nulls(object),
        Value::Array(items) => items.iter_mut().for_each(drop_nulls_in),
        _ => {}
    }
}

/// The keys of `CommentNew`: what a comment stores.
const COMMENT_KEYS: [&str; 7] = [
    "id",
    "timestamp",
    "thread_id",
    "user_properties",
    "messages",
    "text_format",
    "attachments",
];

#[derive(Deserialize)]
struct CreateDatasetRequest {
    dataset: DatasetNew,
}

#[derive(Deserialize, Default)]
struct DatasetNew {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    source_ids: Vec<String>,
    has_sentiment: Option<bool>,
    model_family: Option<String>,
    #[serde(default)]
    label_groups: Vec<LabelGroupNew>,
    #[serde(default)]
    label_defs: Vec<Value>,
    #[serde(default)]
    entity_defs: Vec<Value>,
    #[serde(default)]
    general_fields: Vec<Value>,
    copy_annotations_from: Option<String>,
}

#[derive(Deserialize)]
struct LabelGroupNew {
    name: String,
    #[serde(default)]
    label_defs: Vec<Value>,
    #[serde(default, deserialize_with = "double_option")]
    label_collection_name: Option<Option<String>>,
    trainable: Option<bool>,
    hidden: Option<bool>,
    instructions: Option<String>,
}

#[derive(Deserialize)]
struct LabelDefNew {
    name: String,
    title: Option<String>,
    instructions: Option<String>,
    external_id: Option<String>,
    trainable: Option<bool>,
    pretrained: Option<PretrainedLabelRef>,
    #[serde(default)]
    moon_form: Vec<Value>,
    #[serde(default)]
    properties: Vec<LabelDefProperty>,
}

#[derive(Deserialize)]
struct PretrainedLabelRef {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize, serde::Serialize)]
struct LabelDefProperty {
    name: String,
    value: f64,
}

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
    pub(crate) fn new() -> Self {
        Self {
            clock: Clock {
                last: DateTime::<Utc>::MIN_UTC,
            },
            rng: fastrand::Rng::new(),
            tokens: HashMap::new(),
            projects: BTreeMap::new(),
            sources: BTreeMap::new(),
            source_names: BTreeMap::new(),
            datasets: BTreeMap::new(),
            dataset_names: BTreeMap::new(),
            log: BTreeMap::new(),
            next_seq: 1,
        }
    }

    /// A fresh 16-hex-digit id.
    pub(crate) fn new_id(&mut self) -> String {
        format!("{:016x}", self.rng.u64(..))
    }

    /// A fresh token.
    pub(crate) fn new_token(&mut self) -> String {
        format!("sbx-{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..))
    }

    // -- projects -----------------------------------------------------------

    fn project_json(p: &Project, full: bool) -> Value {
        let mut out = json!({"name": p.name, "title": p.title, "description": p.description});
        if full {
            out["id"] = p.id.clone().into();
            out["created_at"] = ts(p.created_at);
            out["updated_at"] = ts(p.updated_at);
            out["user_auto_join"] = p.user_auto_join.into();
        }
        out
    }

    fn require_project(&self, name: &str) -> Result<&Project, ApiError> {
        self.projects
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("project `{name}`")))
    }

    pub(crate) fn create_project(&mut self, name: &str, body: Value) -> Result<Value, ApiError> {
        let request: CreateProjectRequest = decode_value(body, "")?;
        if self.projects.contains_key(name) {
            return Err(ApiError::conflict(format!("project `{name}`")));
        }
        let now = self.clock.now();
        let project = Project {
            id: self.new_id(),
            name: name.to_owned(),
            title: request.project.title.unwrap_or_default(),
            description: request.project.description.unwrap_or_default(),
            user_auto_join: request.project.user_auto_join.unwrap_or(false),
            created_at: now,
            updated_at: now,
        };
        let out = json!({"project": Self::project_json(&project, true)});
        self.projects.insert(name.to_owned(), project);
        Ok(out)
    }

    pub(crate) fn get_project(&self, name: &str) -> Result<Value, ApiError> {
        Ok(json!({"project": Self::project_json(self.require_project(name)?, true)}))
    }

    pub(crate) fn list_projects(&self, full: bool) -> Value {
        let projects: Vec<Value> = self
            .projects
            .values()
            .map(|p| Self::project_json(p, full))
            .collect();
        json!({"projects": projects})
    }

    // -- sources ------------------------------------------------------------

    fn source_json(s: &Source) -> Value {
        let mut out = json!({
            "id": s.id,
            "_kind": s.settings.kind,
            "owner": s.project,
            "name": s.name,
            "language": s.settings.language,
            "title": s.settings.title,
            "description": s.settings.description,
            "should_translate": s.settings.should_translate,
            "sensitive_properties": s.settings.sensitive_properties,
            "created_at": ts(s.created_at),
            "updated_at": ts(s.updated_at),
            "last_modified": ts(s.updated_at),
            "bucket_id": s.settings.bucket_id,
            "email_transform_tag": s.settings.email_transform_tag,
        });
        if let Some(version) = s.settings.email_transform_version {
            out["email_transform_version"] = version.into();
        }
        out
    }

    fn source_id(&self, project: &str, name: &str) -> Result<String, ApiError> {
        self.named_id(&self.source_names, "source", project, name)
    }

    /// The id `names` holds for `project/name` (a source's or a dataset's),
    /// or a 404 naming the `kind` (also when the project does not exist).
    fn named_id(
        &self,
        names: &BTreeMap<(String, String), String>,
        kind: &str,
        project: &str,
        name: &str,
    ) -> Result<String, ApiError> {
        self.require_project(project)?;
        names
            .get(&(project.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("{kind} `{project}/{name}`")))
    }

    pub(crate) fn create_source(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: SourceRequest = decode_value(body, "")?;
        self.require_project(project)?;
        let key = (project.to_owned(), name.to_owned());
        if self.source_names.contains_key(&key) {
            return Err(ApiError::conflict(format!("source `{project}/{name}`")));
        }
        let f = request.source;
        let settings = SourceSettings {
            kind: f.kind.unwrap_or_else(|| "unknown".into()),
            language: f.language.unwrap_or_else(|| "en".into()),
            title: f.title.unwrap_or_default(),
            description: f.description.unwrap_or_default(),
            should_translate: f.should_translate.unwrap_or(false),
            sensitive_properties: f.sensitive_properties.unwrap_or_default(),
            bucket_id: f.bucket_id.flatten(),
            email_transform_tag: f.email_transform_tag,
            email_transform_version: f.email_transform_version,
        };
        let now = self.clock.now();
        let id = self.new_id();
        let source = Source {
            id: id.clone(),
            project: project.to_owned(),
            name: name.to_owned(),
            settings,
            created_at: now,
            updated_at: now,
            comments: HashMap::new(),
            by_time: BTreeSet::new(),
        };
        let out = json!({"source": Self::source_json(&source)});
        self.sources.insert(id.clone(), source);
        self.source_names.insert(key, id);
        Ok(out)
    }

    pub(crate) fn update_source(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: SourceRequest = decode_value(body, "")?;
        let id = self.source_id(project, name)?;
        let now = self.clock.now();
        let source = self.sources.get_mut(&id).expect("indexed source exists");
        let f = request.source;
        let s = &mut source.settings;
        if let Some(v) = f.kind {
            s.kind = v;
        }
        if let Some(v) = f.language {
            s.language = v;
        }
        if let Some(v) = f.title {
            s.title = v;
        }
        if let Some(v) = f.description {
            s.description = v;
        }
        if let Some(v) = f.should_translate {
            s.should_translate = v;
        }
        if let Some(v) = f.sensitive_properties {
            s.sensitive_properties = v;
        }
        if let Some(v) = f.bucket_id {
            s.bucket_id = v;
        }
        if let Some(v) = f.email_transform_tag {
            s.email_transform_tag = Some(v);
        }
        if let Some(v) = f.email_transform_version {
            s.email_transform_version = Some(v);
        }
        source.updated_at = now;
        Ok(json!({"source": Self::source_json(source)}))
    }

    pub(crate) fn get_source(&self, project: &str, name: &str) -> Result<Value, ApiError> {
        let id = self.source_id(project, name)?;
        Ok(json!({"source": Self::source_json(&self.sources[&id])}))
    }

    pub(crate) fn get_source_by_id(&self, id: &str) -> Result<Value, ApiError> {
        let source = self
            .sources
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("source with id `{id}`")))?;
        Ok(json!({"source": Self::source_json(source)}))
    }

    pub(crate) fn list_sources(&self, project: Option<&str>) -> Result<Value, ApiError> {
        if let Some(project) = project {
            self.require_project(project)?;
        }
        let sources: Vec<Value> = self
            .source_names
            .iter()
            .filter(|((p, _), _)| project.is_none_or(|project| p == project))
            .map(|(_, id)| Self::source_json(&self.sources[id]))
            .collect();
        Ok(json!({"sources": sources}))
    }

    /// Deletes a source, its comments, and its id from the datasets over it.
    pub(crate) fn delete_source_by_id(&mut self, id: &str) -> Result<Value, ApiError> {
        let source = self
            .sources
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("source with id `{id}`")))?;
        self.source_names
            .remove(&(source.project.clone(), source.name.clone()));
        for comment in source.comments.values() {
            self.log.remove(&comment.seq);
        }
        for dataset in self.datasets.values_mut() {
            dataset.source_ids.retain(|s| s != id);
        }
        Ok(json!({}))
    }

    // -- comments -----------------------------------------------------------

    fn comment_json(source_id: &str, c: &StoredComment) -> Value {
        let mut out = c.fields.clone();
        let id = c
            .fields
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        out.insert("uid".into(), format!("{source_id}.{id}").into());
        out.insert("source_id".into(), source_id.into());
        out.insert("created_at".into(), ts(c.created_at));
        out.insert("last_modified".into(), ts(c.last_modified));
        out.insert("has_annotations".into(), false.into());
        Value::Object(out)
    }

    /// Upserts by id: a new id is created, a changed comment updated (and
    /// delivered again by streams), an identical one left alone.
    pub(crate) fn sync_comments(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: SyncCommentsRequest = decode_value(body, "")?;
        let source_id = self.source_id(project, name)?;
        if request.comments.len() > MAX_SYNC_COMMENTS {
            return Err(ApiError::unprocessable(format!(
                "`comments`: at most {MAX_SYNC_COMMENTS} comments per request, got {}",
                request.comments.len()
            )));
        }
        // Validate everything before changing anything.
        let mut batch: Vec<Upload> = Vec::with_capacity(request.comments.len());
        for (i, value) in request.comments.into_iter().enumerate() {
            let prefix = format!("comments[{i}]");
            let comment: CommentNew = decode_value(value.clone(), &prefix)?;
            let timestamp = match &comment.timestamp {
                Some(text) => Some(parse_timestamp(text).ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "`{prefix}.timestamp`: not a date-time: {text:?}"
                    ))
                })?),
                None => None,
            };
            let Value::Object(mut fields) = value else {
                unreachable!("decoded as a struct, so an object");
            };
            fields.retain(|k, _| COMMENT_KEYS.contains(&k.as_str()));
            // A `null` optional field is stored as absent (the spec's
            // comments have no nullable fields), at any depth.
            drop_nulls(&mut fields);
            if let Some(Value::Array(messages)) = fields.get_mut("messages") {
                for (m, message) in messages.iter_mut().enumerate() {
                    if let Some(Value::String(text)) = message.get_mut("sent_at") {
                        *text = stored_timestamp(text).ok_or_else(|| {
                            ApiError::unprocessable(format!(
                                "`{prefix}.messages[{m}].sent_at`: not a date-time: {text:?}"
                            ))
                        })?;
                    }
                }
            }
            // A timestamp without an offset (the service's examples send
            // `2020-06-03T16:05:00`) is stored as RFC 3339 UTC, so that
            // answers hold the spec's `date-time`; an RFC 3339 one is kept
            // as written.
            if let Some(text) = comment.timestamp.as_deref().and_then(stored_timestamp) {
                fields.insert("timestamp".into(), Value::String(text));
            }
            batch.push((comment.id, fields, timestamp));
        }

        let now = self.clock.now();
        let (mut new, mut properties_only, mut text_changed, mut unchanged) =
            (0u64, 0u64, 0u64, 0u64);
        // In request order: an id given twice is created, then updated.
        let source = self
            .sources
            .get_mut(&source_id)
            .expect("indexed source exists");
        for (id, fields, timestamp) in batch {
            let order = timestamp.unwrap_or(now);
            let seq = self.next_seq;
            match source.comments.get_mut(&id) {
                Some(stored) if stored.fields == fields => unchanged += 1,
                Some(stored) => {
                    if stored.fields.get("messages") == fields.get("messages")
                        && stored.fields.get("text_format") == fields.get("text_format")
                    {
                        properties_only += 1;
                    } else {
                        text_changed += 1;
                    }
                    source.by_time.remove(&(stored.order, id.clone()));
                    source.by_time.insert((order, id.clone()));
                    self.log.remove(&stored.seq);
                    stored.fields = fields;
                    stored.order = order;
                    stored.last_modified = now;
                    stored.seq = seq;
                    self.next_seq += 1;
                    self.log.insert(
                        seq,
                        LogEntry {
                            source_id: source_id.clone(),
                            comment_id: id,
                            at: now,
                        },
                    );
                }
                None => {
                    new += 1;
                    source.by_time.insert((order, id.clone()));
                    source.comments.insert(
                        id.clone(),
                        StoredComment {
                            fields,
                            order,
                            created_at: now,
                            last_modified: now,
                            seq,
                        },
                    );
                    self.next_seq += 1;
                    self.log.insert(
                        seq,
                        LogEntry {
                            source_id: source_id.clone(),
                            comment_id: id,
                            at: now,
                        },
                    );
                }
            }
        }
        Ok(json!({
            "new": new,
            "updated": properties_only + text_changed,
            "updated_properties_only": properties_only,
            "updated_text_changed": text_changed,
            "unchanged": unchanged,
        }))
    }

    pub(crate) fn get_comment(
        &self,
        project: &str,
        name: &str,
        comment_id: &str,
    ) -> Result<Value, ApiError> {
        let source_id = self.source_id(project, name)?;
        let comment = self.sources[&source_id]
            .comments
            .get(comment_id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "comment `{comment_id}` in source `{project}/{name}`"
                ))
            })?;
        Ok(json!({"comment": Self::comment_json(&source_id, comment)}))
    }

    /// Deletes the comments named by `id` (repeated) or `ids`
    /// (comma-separated); ids the source does not hold are ignored.
    pub(crate) fn delete_comments(
        &mut self,
        project: &str,
        name: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let source_id = self.source_id(project, name)?;
        let mut ids: Vec<&str> = query.all("id");
        for list in query.all("ids") {
            ids.extend(list.split(',').filter(|s| !s.is_empty()));
        }
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "name the comments to delete with `id` or `ids`",
            ));
        }
        let source = self
            .sources
            .get_mut(&source_id)
            .expect("indexed source exists");
        for id in ids {
            if let Some(stored) = source.comments.remove(id) {
                source.by_time.remove(&(stored.order, id.to_owned()));
                self.log.remove(&stored.seq);
            }
        }
        Ok(json!({}))
    }

    /// One page of a source's comments in `(timestamp, id)` order; the
    /// continuation names the last comment of the page.
    pub(crate) fn list_source_comments(
        &self,
        project: &str,
        name: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let source_id = self.source_id(project, name)?;
        let from = query.timestamp("from_timestamp")?;
        let to = query.timestamp("to_timestamp")?;
        let limit = match query.integer("limit")? {
            None => DEFAULT_PAGE,
            Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "query `limit`: between 1 and {MAX_PAGE}, got {n}"
                )));
            }
        };
        if query
            .get("include_thread_properties")
            .is_some_and(|v| v == "true")
        {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                "list_source_comments: `include_thread_properties` is not implemented by the sandbox",
            ));
        }
        let after = query.get("after").map(decode_cursor).transpose()?;
        let source = &self.sources[&source_id];
        let start = match (&after, from) {
            (Some(cursor), _) => std::ops::Bound::Excluded(cursor.clone()),
            (None, Some(from)) => std::ops::Bound::Included((from, String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let mut page = Vec::new();
        let mut last = None;
        let mut more = false;
        for key in source.by_time.range((start, std::ops::Bound::Unbounded)) {
            if from.is_some_and(|from| key.0 < from) {
                continue;
            }
            if to.is_some_and(|to| key.0 >= to) {
                break;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(Self::comment_json(&source_id, &source.comments[&key.1]));
            last = Some(key);
        }
        let continuation = match (more, last) {
            (true, Some(key)) => Value::String(encode_cursor(key)),
            _ => Value::Null,
        };
        Ok(json!({"comments": page, "continuation": continuation}))
    }

    // -- datasets -----------------------------------------------------------

    fn dataset_json(d: &Dataset) -> Value {
        let mut out = d.body.clone();
        out.insert("source_ids".into(), json!(d.source_ids));
        Value::Object(out)
    }

    fn dataset_id(&self, project: &str, name: &str) -> Result<String, ApiError> {
        self.named_id(&self.dataset_names, "dataset", project, name)
    }

    pub(crate) fn create_dataset(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: CreateDatasetRequest = decode_value(body, "")?;
        self.require_project(project)?;
        let key = (project.to_owned(), name.to_owned());
        if self.dataset_names.contains_key(&key) {
            return Err(ApiError::conflict(format!("dataset `{project}/{name}`")));
        }
        let d = request.dataset;
        for (i, id) in d.source_ids.iter().enumerate() {
            if !self.sources.contains_key(id) {
                return Err(ApiError::not_found(format!(
                    "`dataset.source_ids[{i}]`: source with id `{id}`"
                )));
            }
        }
        for (field, given) in [
            ("entity_defs", d.entity_defs.is_empty()),
            ("general_fields", d.general_fields.is_empty()),
            ("copy_annotations_from", d.copy_annotations_from.is_none()),
        ] {
            if !given {
                return Err(ApiError::new(
                    http::StatusCode::NOT_IMPLEMENTED,
                    format!("create_dataset: `dataset.{field}` is not implemented by the sandbox"),
                ));
            }
        }
        // Label groups as given; top-level `label_defs` belong to `default`.
        let mut groups: Vec<LabelGroupNew> = Vec::new();
        let mut default_defs = Vec::new();
        for (i, def) in d.label_defs.into_iter().enumerate() {
            default_defs.push(self.label_def(def, &format!("dataset.label_defs[{i}]"))?);
        }
        let mut label_groups = Vec::new();
        let mut names = BTreeSet::new();
        for (g, group) in d.label_groups.into_iter().enumerate() {
            if !names.insert(group.name.clone()) {
                return Err(ApiError::unprocessable(format!(
                    "`dataset.label_groups[{g}].name`: label group {:?} appears twice",
                    group.name
                )));
            }
            groups.push(group);
        }
        let mut default_given = false;
        for (g, group) in groups.into_iter().enumerate() {
            let mut defs = Vec::new();
            for (i, def) in group.label_defs.into_iter().enumerate() {
                defs.push(
                    self.label_def(def, &format!("dataset.label_groups[{g}].label_defs[{i}]"))?,
                );
            }
            if group.name == "default" {
                default_given = true;
                defs.splice(0..0, default_defs.drain(..));
            }
            label_groups.push(json!({
                "name": group.name,
                "label_defs": defs,
                "label_collection_name": group.label_collection_name.flatten(),
                "trainable": group.trainable.unwrap_or(false),
                "hidden": group.hidden.unwrap_or(false),
                "instructions": group.instructions.unwrap_or_default(),
            }));
        }
        if !default_given {
            label_groups.insert(
                0,
                json!({
                    "name": "default",
                    "label_defs": default_defs,
                    "label_collection_name": null,
                    "trainable": false,
                    "hidden": false,
                    "instructions": "",
                }),
            );
        }
        let top_level_defs = label_groups
            .iter()
            .find(|g| g["name"] == "default")
            .map(|g| g["label_defs"].clone())
            .unwrap_or_else(|| json!([]));

        let now = self.clock.now();
        let id = self.new_id();
        let body = json!({
            "id": id,
            "owner": project,
            "name": name,
            "title": d.title.unwrap_or_default(),
            "description": d.description.unwrap_or_default(),
            "created": ts(now),
            "last_modified": ts(now),
            "model_family": d.model_family.unwrap_or_else(|| "english".into()),
            "has_sentiment": d.has_sentiment.unwrap_or(false),
            "limited_access": false,
            "readonly": false,
            "entity_defs": [],
            "general_fields": [],
            "label_groups": label_groups,
            "label_defs": top_level_defs,
        });
        let Value::Object(body) = body else {
            unreachable!("an object literal")
        };
        let dataset = Dataset {
            id: id.clone(),
            body,
            source_ids: d.source_ids,
            streams: BTreeMap::new(),
        };
        let out = json!({"dataset": Self::dataset_json(&dataset), "num_copied": 0});
        self.datasets.insert(id.clone(), dataset);
        self.dataset_names.insert(key, id);
        Ok(out)
    }

    /// `LabelDefNew` → `LabelDef`: the given fields, the spec's defaults,
    /// and ids for the extraction fields.
    fn label_def(&mut self, value: Value, at: &str) -> Result<Value, ApiError> {
        let def: LabelDefNew = decode_value(value, at)?;
        if !def.moon_form.is_empty() {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                format!("create_dataset: `{at}.moon_form` is not implemented by the sandbox"),
            ));
        }
        let mut out = json!({
            "name": def.name,
            "title": def.title.unwrap_or_default(),
            "instructions": def.instructions.unwrap_or_default(),
            "trainable": def.trainable.unwrap_or(false),
            "properties": def.properties,
            "moon_form": [],
            "_flags": [],
        });
        if let Some(external_id) = def.external_id {
            out["external_id"] = external_id.into();
        }
        if let Some(pretrained) = def.pretrained {
            let name = pretrained.name.unwrap_or_else(|| pretrained.id.clone());
            out["pretrained"] =
                json!({"id": pretrained.id, "name": name, "description": "", "properties": []});
        }
        Ok(out)
    }

    pub(crate) fn get_dataset(&self, project: &str, name: &str) -> Result<Value, ApiError> {
        let id = self.dataset_id(project, name)?;
        Ok(json!({"dataset": Self::dataset_json(&self.datasets[&id])}))
    }

    pub(crate) fn list_datasets(&self, project: Option<&str>) -> Result<Value, ApiError> {
        if let Some(project) = project {
            self.require_project(project)?;
        }
        let datasets: Vec<Value> = self
            .dataset_names
            .iter()
            .filter(|((p, _), _)| project.is_none_or(|project| p == project))
            .map(|(_, id)| Self::dataset_json(&self.datasets[id]))
            .collect();
        Ok(json!({"datasets": datasets}))
    }

    // -- streams ------------------------------------------------------------

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

    fn stream_ref(
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

    fn stream_mut(
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
                    label_thresholds: Vec<Value>,
                }
                decode_value::<StreamModel>(model.clone(), "stream.model")?;
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
        };
        let out = json!({"stream": Self::stream_json(&dataset_id, &stream)});
        dataset_ref.streams.insert(name, stream);
        Ok(out)
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
        let d = &self.datasets[&id];
        let streams: Vec<Value> = d
            .streams
            .values()
            .map(|s| Self::stream_json(&d.id, s))
            .collect();
        Ok(json!({"streams": streams}))
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
                batch
                    .results
                    .push((seq, Self::comment_json(&entry.source_id, comment)));
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
        let results: Vec<Value> = batch
            .results
            .into_iter()
            .map(|(seq, comment)| {
                json!({"comment": comment, "prediction": null, "continuation": seq_id(seq)})
            })
            .collect();
        Ok(json!({
            "results": results,
            "num_filtered": batch.filtered,
            "more_results": batch.more,
            "continuation": seq_id(batch.last_seq),
            "model": null,
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
        let results: Vec<Value> = batch
            .results
            .into_iter()
            .map(|(seq, comment)| {
                json!({"comment": comment, "sequence_id": seq_id(seq), "labels": [], "entities": [], "label_properties": []})
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

struct Batch {
    results: Vec<(u64, Value)>,
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

/// A listing cursor: the (timestamp, id) of the last comment of a page, hex-encoded.
fn encode_cursor((t, id): &(DateTime<Utc>, String)) -> String {
    let text = format!(
        "{}\n{id}",
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    );
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(text: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "query `after`: not a continuation of this sandbox: {text:?}"
        ))
    };
    if !text.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .ok_or_else(invalid)?;
    let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (t, id) = decoded.split_once('\n').ok_or_else(invalid)?;
    Ok((parse_timestamp(t).ok_or_else(invalid)?, id.to_owned()))
}
