//! The in-memory state and the semantics of each implemented operation.
//! See `DESIGN.md` for the model; every method validates its whole input
//! before it changes anything, so a rejected request leaves no trace.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod attachments;
mod audit;
mod buckets;
mod comments;
mod datasets;
mod documents;
mod label_defs;
mod labellings;
mod predictions;
mod projects;
mod query;
mod quotas;
mod raw_emails;
mod sources;
mod stream_exceptions;
mod streams;
mod users;

use audit::AuditRecord;
pub use users::OAuthClient;
pub(crate) use users::{GrantRefused, Refused};
use users::{OAuthApp, Token, User};

pub(crate) use attachments::File;
pub(crate) use comments::CheckedComments;

use crate::wire::{
    ApiError, Query, decode_ref, decode_value, format_timestamp, parse_timestamp, stored_timestamp,
};

/// The most comments one `sync_comments` request may carry (the spec's limit).
pub(crate) const MAX_SYNC_COMMENTS: usize = 16_384;
/// The default and largest page of `list_source_comments`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_024;
/// The default and largest batch of `get_stream_results` / `fetch_stream`.
const DEFAULT_BATCH: usize = 16;
const MAX_BATCH: usize = 1_024;

/// Everything the sandbox holds.
#[derive(Debug)]
pub(crate) struct State {
    clock: Clock,
    rng: fastrand::Rng,
    /// The sandbox's one tenant: `(id, name)`.
    tenant: (String, String),
    /// By id.
    users: BTreeMap<String, User>,
    /// Bearer token → the user it belongs to (and its expiry).
    tokens: HashMap<String, Token>,
    /// OAuth client id → the application registered to a user.
    oauth_clients: HashMap<String, OAuthApp>,
    /// The audit log, oldest first.
    audit: Vec<AuditRecord>,
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
    /// By id.
    buckets: BTreeMap<String, buckets::Bucket>,
    /// (project, name) → id.
    bucket_names: BTreeMap<(String, String), String>,
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
    fields: Fields,
    /// The listing order: the comment's `timestamp`, or its upload time
    /// when it has none.
    order: DateTime<Utc>,
    created_at: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    seq: u64,
    /// Uploaded attachment contents, by position in `attachments`.
    contents: BTreeMap<usize, attachments::Content>,
}

/// A JSON object kept as its text: a stored comment's tree of small maps
/// costs about eight times the bytes of its text (a `BTreeMap` node is
/// ~600 bytes however few keys it holds), and its allocations dominated the
/// time of a large sync. Reads parse it again: they are rarer than writes,
/// and a comment's text parses in microseconds.
///
/// The text is canonical: compact, with every object's keys in order (a
/// `Map` is sorted), so two comments are equal exactly when their texts are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields(Box<str>);

impl Fields {
    fn from_map(map: Map<String, Value>) -> Self {
        let mut text = Vec::with_capacity(512);
        serde_json::to_writer(&mut text, &map).expect("a map serializes");
        Self(
            String::from_utf8(text)
                .expect("serde_json writes UTF-8")
                .into_boxed_str(),
        )
    }

    /// The object, parsed.
    fn map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).expect("stored fields are a JSON object")
    }

    /// One member, parsed.
    fn get(&self, key: &str) -> Option<Value> {
        self.map().remove(key)
    }
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
    /// Reviewed labels by comment uid, and the model version they make.
    labellings: labellings::Labellings,
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
    /// Exception tags: comment uid → exception `type`.
    exceptions: BTreeMap<String, String>,
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

/// `bytes` as lowercase hex: opaque, path- and query-safe tokens.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a `hex` token; `None` when it is not one.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
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

impl State {
    pub(crate) fn new() -> Self {
        let mut state = Self {
            clock: Clock {
                last: DateTime::<Utc>::MIN_UTC,
            },
            rng: fastrand::Rng::new(),
            tenant: (String::new(), "sandbox".to_owned()),
            users: BTreeMap::new(),
            tokens: HashMap::new(),
            oauth_clients: HashMap::new(),
            audit: Vec::new(),
            projects: BTreeMap::new(),
            sources: BTreeMap::new(),
            source_names: BTreeMap::new(),
            datasets: BTreeMap::new(),
            dataset_names: BTreeMap::new(),
            log: BTreeMap::new(),
            next_seq: 1,
            buckets: BTreeMap::new(),
            bucket_names: BTreeMap::new(),
        };
        state.tenant.0 = state.new_id();
        state
    }

    /// A fresh 16-hex-digit id.
    pub(crate) fn new_id(&mut self) -> String {
        format!("{:016x}", self.rng.u64(..))
    }

    /// A fresh token.
    pub(crate) fn new_token(&mut self) -> String {
        format!("sbx-{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..))
    }
}
