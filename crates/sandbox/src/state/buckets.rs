//! Buckets (raw email stores of a project) and the emails in them.

use super::*;

/// The default and largest page of `list_bucket_emails` / `query_bucket_emails`.
const DEFAULT_EMAIL_PAGE: usize = 100;
const MAX_EMAIL_PAGE: usize = 1_024;

#[derive(Debug)]
pub(crate) struct Bucket {
    id: String,
    project: String,
    name: String,
    title: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// `BucketUpdatedBy`, as last given to `update_bucket`.
    last_updated_by: Option<Value>,
    /// By email id: the paging order.
    emails: BTreeMap<String, StoredEmail>,
}

#[derive(Debug)]
struct StoredEmail {
    /// The `EmailNew` fields as uploaded (timestamps stored as RFC 3339).
    fields: Map<String, Value>,
    created_at: DateTime<Utc>,
    /// When it was last replaced by a different email of the same id.
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct CreateBucketRequest {
    bucket: BucketNew,
}

#[derive(Deserialize)]
struct BucketNew {
    title: Option<String>,
    bucket_type: Option<String>,
}

#[derive(Deserialize)]
struct UpdateBucketRequest {
    bucket: BucketUpdate,
}

#[derive(Deserialize)]
struct BucketUpdate {
    title: Option<String>,
    last_updated_by: Option<BucketUpdatedByNew>,
}

#[derive(Deserialize, serde::Serialize)]
struct BucketUpdatedByNew {
    config_owner: String,
    config_key: String,
    shard_index: i64,
    num_shards: i64,
}

#[derive(Deserialize)]
struct AddEmailsRequest {
    emails: Vec<Value>,
}

/// `EmailNew`, to check each email's shape; the email is stored as sent.
#[derive(Deserialize)]
#[allow(dead_code)]
struct EmailNew {
    id: String,
    mailbox: String,
    timestamp: String,
    mime_content: String,
    metadata: Option<EmailMetadataNew>,
    attachments: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct EmailMetadataNew {
    sensitivity: Option<String>,
    size: Option<i64>,
    categories: Option<Vec<String>>,
    importance: Option<String>,
    has_attachments: Option<bool>,
    conversation_id: Option<String>,
    conversation_topic: Option<String>,
    is_read: Option<bool>,
    folder: Option<Vec<String>>,
    received_at: Option<String>,
}

/// The keys of `EmailNew`: what an email stores.
const EMAIL_KEYS: [&str; 6] = [
    "id",
    "mailbox",
    "timestamp",
    "mime_content",
    "metadata",
    "attachments",
];

/// `BucketEmailsPageRequest`; any other member answers 501.
#[derive(Deserialize)]
struct PageRequest {
    limit: Option<i64>,
    continuation: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl State {
    fn bucket_json(b: &Bucket) -> Value {
        let mut out = json!({
            "id": b.id,
            "owner": b.project,
            "name": b.name,
            "title": b.title,
            "created_at": ts(b.created_at),
            "updated_at": ts(b.updated_at),
        });
        if let Some(by) = &b.last_updated_by {
            out["last_updated_by"] = by.clone();
        }
        out
    }

    fn email_json(e: &StoredEmail) -> Value {
        let mut out = e.fields.clone();
        out.entry("metadata").or_insert(Value::Null);
        out.entry("attachments").or_insert_with(|| json!([]));
        out.insert("created_at".into(), ts(e.created_at));
        out.insert(
            "updated_at".into(),
            e.updated_at.map(ts).unwrap_or(Value::Null),
        );
        Value::Object(out)
    }

    fn bucket_id(&self, project: &str, name: &str) -> Result<String, ApiError> {
        self.named_id(&self.bucket_names, "bucket", project, name)
    }

    /// Whether a bucket with this id exists (a source's `bucket_id` must name one).
    pub(super) fn has_bucket(&self, id: &str) -> bool {
        self.buckets.contains_key(id)
    }

    pub(crate) fn create_bucket(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: CreateBucketRequest = decode_value(body, "")?;
        self.require_project(project)?;
        if let Some(kind) = request
            .bucket
            .bucket_type
            .as_deref()
            .filter(|k| *k != "emails")
        {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                format!(
                    "create_bucket: `bucket.bucket_type` {kind:?} is not implemented by the \
                     sandbox (only `emails`)"
                ),
            ));
        }
        let key = (project.to_owned(), name.to_owned());
        if self.bucket_names.contains_key(&key) {
            return Err(ApiError::conflict(format!("bucket `{project}/{name}`")));
        }
        let now = self.clock.now();
        let id = self.new_id();
        let bucket = Bucket {
            id: id.clone(),
            project: project.to_owned(),
            name: name.to_owned(),
            title: request.bucket.title.unwrap_or_default(),
            created_at: now,
            updated_at: now,
            last_updated_by: None,
            emails: BTreeMap::new(),
        };
        let out = json!({"bucket": Self::bucket_json(&bucket)});
        self.buckets.insert(id.clone(), bucket);
        self.bucket_names.insert(key, id);
        Ok(out)
    }

    /// Changes the title and/or records the sync process writing to the bucket.
    pub(crate) fn update_bucket(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: UpdateBucketRequest = decode_value(body, "")?;
        let id = self.bucket_id(project, name)?;
        let by = request
            .bucket
            .last_updated_by
            .map(|by| serde_json::to_value(by).expect("plain fields serialise"));
        let now = self.clock.now();
        let bucket = self.buckets.get_mut(&id).expect("indexed bucket exists");
        if let Some(title) = request.bucket.title {
            bucket.title = title;
        }
        if by.is_some() {
            bucket.last_updated_by = by;
        }
        bucket.updated_at = now;
        Ok(json!({"bucket": Self::bucket_json(bucket)}))
    }

    pub(crate) fn get_bucket(&self, project: &str, name: &str) -> Result<Value, ApiError> {
        let id = self.bucket_id(project, name)?;
        Ok(json!({"bucket": Self::bucket_json(&self.buckets[&id])}))
    }

    pub(crate) fn get_bucket_by_id(&self, id: &str) -> Result<Value, ApiError> {
        let bucket = self
            .buckets
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("bucket with id `{id}`")))?;
        Ok(json!({"bucket": Self::bucket_json(bucket)}))
    }

    /// Every bucket, or a project's (404 when the project does not exist),
    /// by project and name.
    pub(crate) fn list_buckets(&self, project: Option<&str>) -> Result<Value, ApiError> {
        if let Some(project) = project {
            self.require_project(project)?;
        }
        let buckets: Vec<Value> = self
            .bucket_names
            .iter()
            .filter(|((p, _), _)| project.is_none_or(|project| p == project))
            .map(|(_, id)| Self::bucket_json(&self.buckets[id]))
            .collect();
        Ok(json!({"buckets": buckets}))
    }

    /// Deletes a bucket and its emails; 409 while a source names it as its
    /// `bucket_id` (detach it with `update_source` first).
    pub(crate) fn delete_bucket_by_id(&mut self, id: &str) -> Result<Value, ApiError> {
        if !self.buckets.contains_key(id) {
            return Err(ApiError::not_found(format!("bucket with id `{id}`")));
        }
        let users: Vec<String> = self
            .sources
            .values()
            .filter(|s| s.settings.bucket_id.as_deref() == Some(id))
            .map(|s| format!("`{}/{}`", s.project, s.name))
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                http::StatusCode::CONFLICT,
                format!(
                    "bucket with id `{id}` feeds source(s) {}; set their `bucket_id` to null first",
                    users.join(", ")
                ),
            ));
        }
        let bucket = self.buckets.remove(id).expect("checked above");
        self.bucket_names.remove(&(bucket.project, bucket.name));
        Ok(json!({}))
    }

    /// The exact number of emails in the bucket.
    pub(crate) fn get_bucket_statistics(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let id = self.bucket_id(project, name)?;
        let count = self.buckets[&id].emails.len();
        Ok(json!({"statistics": {"count": {"kind": "exact", "value": count}}}))
    }

    /// Stores emails by id: a new id is added, an existing one replaced
    /// (`updated_at` set when it differs), in request order.
    pub(crate) fn add_bucket_emails(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: AddEmailsRequest = decode_value(body, "")?;
        let id = self.bucket_id(project, name)?;
        let mut batch = Vec::with_capacity(request.emails.len());
        for (i, value) in request.emails.into_iter().enumerate() {
            let prefix = || format!("emails[{i}]");
            let email: EmailNew = decode_ref(&value, prefix)?;
            let Value::Object(mut fields) = value else {
                unreachable!("decoded as a struct, so an object");
            };
            fields.retain(|k, v| EMAIL_KEYS.contains(&k.as_str()) && !v.is_null());
            let timestamp = stored_timestamp(&email.timestamp).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "`{}.timestamp`: not a date-time: {:?}",
                    prefix(),
                    email.timestamp
                ))
            })?;
            fields.insert("timestamp".into(), timestamp.into());
            if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
                metadata.retain(|_, v| !v.is_null());
                if let Some(Value::String(text)) = metadata.get_mut("received_at") {
                    *text = stored_timestamp(text).ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "`{}.metadata.received_at`: not a date-time: {text:?}",
                            prefix()
                        ))
                    })?;
                }
            }
            batch.push((email.id, fields));
        }
        let now = self.clock.now();
        let bucket = self.buckets.get_mut(&id).expect("indexed bucket exists");
        for (email_id, fields) in batch {
            match bucket.emails.get_mut(&email_id) {
                Some(stored) if stored.fields == fields => {}
                Some(stored) => {
                    stored.fields = fields;
                    stored.updated_at = Some(now);
                }
                None => {
                    bucket.emails.insert(
                        email_id,
                        StoredEmail {
                            fields,
                            created_at: now,
                            updated_at: None,
                        },
                    );
                }
            }
        }
        Ok(json!({}))
    }

    /// The email with the `id` of the query, as a list of one (empty when
    /// the bucket has none).
    pub(crate) fn get_bucket_email(
        &self,
        project: &str,
        name: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let id = self.bucket_id(project, name)?;
        let email_id = query
            .get("id")
            .ok_or_else(|| ApiError::bad_request("query `id`: required"))?;
        let emails: Vec<Value> = self.buckets[&id]
            .emails
            .get(email_id)
            .map(Self::email_json)
            .into_iter()
            .collect();
        Ok(json!({"emails": emails}))
    }

    /// One page of a bucket's emails in id order; the continuation names
    /// the last email of the page. `query_bucket_emails` also says
    /// `more_results`.
    pub(crate) fn list_bucket_emails(
        &self,
        project: &str,
        name: &str,
        body: Value,
        operation: &str,
    ) -> Result<Value, ApiError> {
        let request: PageRequest = decode_value(body, "")?;
        if let Some(key) = request.other.keys().next() {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                format!("{operation}: `{key}` is not implemented by the sandbox"),
            ));
        }
        let limit = match request.limit {
            None => DEFAULT_EMAIL_PAGE,
            Some(n) if (1..=MAX_EMAIL_PAGE as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::unprocessable(format!(
                    "`limit`: between 1 and {MAX_EMAIL_PAGE}, got {n}"
                )));
            }
        };
        let after = request
            .continuation
            .as_deref()
            .map(|c| {
                decode_email_cursor(c).ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "`continuation`: not a continuation of this sandbox: {c:?}"
                    ))
                })
            })
            .transpose()?;
        let id = self.bucket_id(project, name)?;
        let emails = &self.buckets[&id].emails;
        let start = match &after {
            Some(last) => std::ops::Bound::Excluded(last.as_str()),
            None => std::ops::Bound::Unbounded,
        };
        let mut range = emails.range::<str, _>((start, std::ops::Bound::Unbounded));
        let page: Vec<(&String, &StoredEmail)> = range.by_ref().take(limit).collect();
        let more = range.next().is_some();
        let continuation = match (more, page.last()) {
            (true, Some((last, _))) => Value::String(encode_email_cursor(last)),
            _ => Value::Null,
        };
        let mut out = json!({
            "emails": page.into_iter().map(|(_, e)| Self::email_json(e)).collect::<Vec<_>>(),
            "continuation": continuation,
        });
        if operation == "query_bucket_emails" {
            out["more_results"] = more.into();
        }
        Ok(out)
    }

    /// Deletes the emails named by `id` (repeated); ids the bucket does not
    /// hold are ignored.
    pub(crate) fn delete_bucket_emails(
        &mut self,
        project: &str,
        name: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let id = self.bucket_id(project, name)?;
        let ids = query.all("id");
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "name the emails to delete with `id` (repeated)",
            ));
        }
        let bucket = self.buckets.get_mut(&id).expect("indexed bucket exists");
        for email_id in ids {
            bucket.emails.remove(email_id);
        }
        Ok(json!({}))
    }
}

fn encode_email_cursor(id: &str) -> String {
    hex(id.as_bytes())
}

fn decode_email_cursor(text: &str) -> Option<String> {
    String::from_utf8(unhex(text).filter(|b| !b.is_empty())?).ok()
}
