//! Comments: sync (upsert by id), get, delete, list in pages.

use std::borrow::Cow;

use super::*;

/// A validated comment of a sync: id, stored fields, timestamp.
pub(super) type Upload = (String, Fields, Option<DateTime<Utc>>);

/// The comments of an upload (`sync_comments`, `add_comments`), checked
/// and serialized into their stored text, or the first fault. This is the
/// costly part of an upload and needs no state, so the server does it
/// before it takes the state's lock: concurrent uploads check their
/// comments in parallel and queue only to store them.
pub(crate) struct CheckedComments(Result<Vec<Upload>, ApiError>);

impl CheckedComments {
    /// Checks the comments of an upload request's body.
    pub(crate) fn check(body: Value) -> Self {
        Self(comments_of(body).and_then(|comments| validate_comments(comments, "comments")))
    }
}

#[derive(Deserialize)]
struct SyncCommentsRequest {
    comments: Vec<Value>,
}

/// The `comments` of a sync request, moved out of the body (decoding the
/// body into `SyncCommentsRequest` would rebuild every comment's tree);
/// a body of another shape is decoded to name the fault.
fn comments_of(body: Value) -> Result<Vec<Value>, ApiError> {
    match body {
        Value::Object(mut map) if map.get("comments").is_some_and(Value::is_array) => {
            let Some(Value::Array(comments)) = map.remove("comments") else {
                unreachable!("checked: an array");
            };
            Ok(comments)
        }
        body => decode_value::<SyncCommentsRequest>(body, "").map(|r| r.comments),
    }
}

/// `CommentNew`, to check each comment's shape; the comment is stored as
/// sent. Its text borrows from the checked value: the check allocates
/// nothing per field.
#[derive(Deserialize)]
#[allow(dead_code)]
struct CommentNew<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thread_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_properties: Option<BTreeMap<Cow<'a, str>, UserPropertyValue<'a>>>,
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(borrow)]
    text_format: Option<Cow<'a, str>>,
    #[serde(borrow)]
    attachments: Option<Vec<Attachment<'a>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum UserPropertyValue<'a> {
    String(#[serde(borrow)] Cow<'a, str>),
    Number(f64),
    Bool(bool),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Message<'a> {
    #[serde(borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    to: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    cc: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    bcc: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    language: Option<Cow<'a, str>>,
    #[serde(borrow)]
    body: MessageText<'a>,
    #[serde(borrow)]
    subject: Option<MessageText<'a>>,
    #[serde(borrow)]
    signature: Option<MessageText<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct MessageText<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    translated_from: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Attachment<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    size: Option<i64>,
    #[serde(borrow)]
    content_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content_hash: Option<Cow<'a, str>>,
    inline: Option<bool>,
    #[serde(borrow)]
    attachment_reference: Option<Cow<'a, str>>,
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

/// What a sync did, comment by comment.
#[derive(Debug, Default)]
pub(super) struct SyncCounts {
    new: u64,
    properties_only: u64,
    text_changed: u64,
    unchanged: u64,
}

impl SyncCounts {
    /// The counts as `SyncCommentsResponse` (and `SyncRawEmailsResponse`) have them.
    pub(super) fn to_json(&self) -> Value {
        json!({
            "new": self.new,
            "updated": self.properties_only + self.text_changed,
            "updated_properties_only": self.properties_only,
            "updated_text_changed": self.text_changed,
            "unchanged": self.unchanged,
        })
    }
}

/// Checks every comment of an upload (`CommentNew`, under `field[i]`) and
/// returns them as stored, or the first fault; nothing is stored here.
pub(super) fn validate_comments(
    comments: Vec<Value>,
    field: &str,
) -> Result<Vec<Upload>, ApiError> {
    if comments.len() > MAX_SYNC_COMMENTS {
        return Err(ApiError::unprocessable(format!(
            "`{field}`: at most {MAX_SYNC_COMMENTS} comments per request, got {}",
            comments.len()
        )));
    }
    let mut batch: Vec<Upload> = Vec::with_capacity(comments.len());
    for (i, value) in comments.into_iter().enumerate() {
        // Named only in an error: formatting it costs an allocation a comment.
        let prefix = || format!("{field}[{i}]");
        let comment: CommentNew = decode_ref(&value, prefix)?;
        let timestamp = match &comment.timestamp {
            Some(text) => Some(parse_timestamp(text).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "`{}.timestamp`: not a date-time: {text:?}",
                    prefix()
                ))
            })?),
            None => None,
        };
        // What is kept of the check: it borrows `value`, which is stored.
        let stored_time = comment.timestamp.as_deref().and_then(stored_timestamp);
        let id = comment.id.into_owned();
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
                            "`{}.messages[{m}].sent_at`: not a date-time: {text:?}",
                            prefix()
                        ))
                    })?;
                }
            }
        }
        // A timestamp without an offset (the service's examples send
        // `2020-06-03T16:05:00`) is stored as RFC 3339 UTC, so that
        // answers hold the spec's `date-time`; an RFC 3339 one is kept
        // as written.
        if let Some(text) = stored_time {
            fields.insert("timestamp".into(), Value::String(text));
        }
        batch.push((id, Fields::from_map(fields), timestamp));
    }
    Ok(batch)
}

impl State {
    pub(super) fn comment_json(source_id: &str, c: &StoredComment) -> Value {
        let mut out = c.fields.map();
        let id: String = out
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        out.insert("uid".into(), format!("{source_id}.{id}").into());
        out.insert("source_id".into(), source_id.into());
        out.insert("created_at".into(), ts(c.created_at));
        out.insert("last_modified".into(), ts(c.last_modified));
        out.insert("has_annotations".into(), false.into());
        attachments::describe_contents(&mut out, source_id, &id, &c.contents);
        Value::Object(out)
    }

    /// Upserts by id: a new id is created, a changed comment updated (and
    /// delivered again by streams), an identical one left alone.
    pub(crate) fn sync_comments(
        &mut self,
        project: &str,
        name: &str,
        comments: CheckedComments,
    ) -> Result<Value, ApiError> {
        let source_id = self.source_id(project, name)?;
        let batch = comments.0?;
        Ok(self.store_comments(&source_id, batch).to_json())
    }

    /// Adds new comments (the older upload route): an id the source
    /// already holds, or one given twice, is a 409 and nothing is stored.
    pub(crate) fn add_comments(
        &mut self,
        project: &str,
        name: &str,
        comments: CheckedComments,
    ) -> Result<Value, ApiError> {
        let source_id = self.source_id(project, name)?;
        let batch = comments.0?;
        let source = &self.sources[&source_id];
        let mut seen = BTreeSet::new();
        for (i, (id, _, _)) in batch.iter().enumerate() {
            if source.comments.contains_key(id) || !seen.insert(id.as_str()) {
                return Err(ApiError::new(
                    http::StatusCode::CONFLICT,
                    format!(
                        "`comments[{i}].id`: comment `{id}` already exists in source \
                         `{project}/{name}` (add_comments only adds; sync_comments updates)"
                    ),
                ));
            }
        }
        self.store_comments(&source_id, batch);
        Ok(json!({}))
    }

    /// Stores a validated batch in request order (an id given twice is
    /// created, then updated) and counts what happened to each comment.
    pub(super) fn store_comments(&mut self, source_id: &str, batch: Vec<Upload>) -> SyncCounts {
        let now = self.clock.now();
        let mut counts = SyncCounts::default();
        let source = self
            .sources
            .get_mut(source_id)
            .expect("indexed source exists");
        for (id, fields, timestamp) in batch {
            let order = timestamp.unwrap_or(now);
            let seq = self.next_seq;
            match source.comments.get_mut(&id) {
                Some(stored) => {
                    // Both texts are canonical (compact, keys sorted), so
                    // equal texts are equal comments.
                    if stored.fields == fields {
                        counts.unchanged += 1;
                        continue;
                    }
                    let (before, after) = (stored.fields.map(), fields.map());
                    if before.get("messages") == after.get("messages")
                        && before.get("text_format") == after.get("text_format")
                    {
                        counts.properties_only += 1;
                    } else {
                        counts.text_changed += 1;
                    }
                    // Contents were uploaded against the attachment list
                    // they belong to; a new list drops them.
                    if before.get("attachments") != after.get("attachments") {
                        stored.contents.clear();
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
                            source_id: source_id.to_owned(),
                            comment_id: id,
                            at: now,
                        },
                    );
                }
                None => {
                    counts.new += 1;
                    source.by_time.insert((order, id.clone()));
                    source.comments.insert(
                        id.clone(),
                        StoredComment {
                            fields,
                            order,
                            created_at: now,
                            last_modified: now,
                            seq,
                            contents: BTreeMap::new(),
                        },
                    );
                    self.next_seq += 1;
                    self.log.insert(
                        seq,
                        LogEntry {
                            source_id: source_id.to_owned(),
                            comment_id: id,
                            at: now,
                        },
                    );
                }
            }
        }
        counts
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
        let mut deleted = Vec::new();
        for id in &ids {
            if let Some(stored) = source.comments.remove(*id) {
                source.by_time.remove(&(stored.order, (*id).to_owned()));
                self.log.remove(&stored.seq);
                deleted.push(format!("{source_id}.{id}"));
            }
        }
        self.forget_labellings(&deleted);
        self.forget_exceptions(&source_id, Some(&ids));
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
}

/// A listing cursor: the (timestamp, id) of the last comment of a page, hex-encoded.
fn encode_cursor((t, id): &(DateTime<Utc>, String)) -> String {
    let text = format!(
        "{}\n{id}",
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    );
    hex(text.as_bytes())
}

fn decode_cursor(text: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "query `after`: not a continuation of this sandbox: {text:?}"
        ))
    };
    let bytes = unhex(text).ok_or_else(invalid)?;
    let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (t, id) = decoded.split_once('\n').ok_or_else(invalid)?;
    Ok((parse_timestamp(t).ok_or_else(invalid)?, id.to_owned()))
}
