//! `sync_raw_emails`: raw emails (a header block plus plain and/or HTML
//! body) parsed into comments, then stored exactly as `sync_comments`
//! stores comments.

use mail_parser::{Address, HeaderValue, MessageParser};

use super::comments::{Upload, validate_comments};
use super::*;

/// The most documents one request may carry (the vendor's documented limit).
const MAX_RAW_EMAILS: usize = 4_096;

#[derive(Deserialize)]
struct SyncRawEmailsRequest {
    documents: Vec<RawEmailDocument>,
    include_comments: Option<bool>,
    transform_tag: Option<String>,
    /// Accepted: the sandbox's transform derives no user properties from
    /// the email, so the request's always apply.
    #[allow(dead_code)]
    override_user_properties: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawEmailDocument {
    raw_email: RawEmail,
    comment_id: Option<String>,
    user_properties: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawEmail {
    headers: RawEmailHeaders,
    body: RawEmailBody,
    attachments: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct RawEmailHeaders {
    raw: Option<String>,
    parsed: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct RawEmailBody {
    plain: Option<String>,
    html: Option<String>,
}

/// The header block of a document: `raw` as given, or `parsed` written
/// back as `Name: value` lines (a list value as one line, its items
/// joined by `, `, as address lists are written).
fn header_block(headers: &RawEmailHeaders, prefix: &str) -> Result<String, ApiError> {
    match (&headers.raw, &headers.parsed) {
        (Some(raw), None) => Ok(raw.clone()),
        (None, Some(parsed)) => {
            let mut block = String::new();
            for (name, value) in parsed {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Array(items) => items
                        .iter()
                        .map(Value::as_str)
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| not_text(prefix, name))?
                        .join(", "),
                    _ => return Err(not_text(prefix, name)),
                };
                let bad_name = name.is_empty()
                    || name.contains(':')
                    || name.chars().any(|c| c.is_control() || c == ' ');
                if bad_name || text.contains(['\r', '\n']) {
                    return Err(ApiError::unprocessable(format!(
                        "`{prefix}.headers.parsed`: {name:?} is not a header name, or its value \
                         spans lines"
                    )));
                }
                block.push_str(&format!("{name}: {text}\r\n"));
            }
            Ok(block)
        }
        _ => Err(ApiError::unprocessable(format!(
            "`{prefix}.headers`: give exactly one of `raw` and `parsed`"
        ))),
    }
}

fn not_text(prefix: &str, name: &str) -> ApiError {
    ApiError::unprocessable(format!(
        "`{prefix}.headers.parsed.{name}`: a header value is a string or a list of strings"
    ))
}

/// The bare addresses of an address header (display names dropped).
fn addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The first message id of a header such as `References`.
fn first_id(value: &HeaderValue<'_>) -> Option<String> {
    value.as_text_list()?.first().map(|id| id.to_string())
}

/// One document as a `CommentNew`: the comment the sandbox's transform
/// makes of it.
fn comment_of(document: RawEmailDocument, prefix: &str) -> Result<Value, ApiError> {
    let email = &document.raw_email;
    let mut block = header_block(&email.headers, &format!("{prefix}.raw_email"))?;
    if !block.ends_with('\n') {
        block.push_str("\r\n");
    }
    block.push_str("\r\n");
    let parsed = MessageParser::default()
        .parse_headers(block.as_bytes())
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| {
            ApiError::unprocessable(format!("`{prefix}.raw_email.headers`: no header found"))
        })?;
    let message_id = parsed.message_id().map(str::to_owned);
    let id = document
        .comment_id
        .clone()
        .or_else(|| message_id.clone())
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "`{prefix}.comment_id`: required when the email has no Message-ID"
            ))
        })?;
    let sent_at = match parsed.date() {
        Some(date) if date.is_valid() => Some(
            DateTime::<Utc>::from_timestamp(date.to_timestamp(), 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "`{prefix}.raw_email.headers`: the Date is out of range"
                    ))
                })?,
        ),
        Some(_) => {
            return Err(ApiError::unprocessable(format!(
                "`{prefix}.raw_email.headers`: the Date header is not a date"
            )));
        }
        None => None,
    };
    let thread_id = first_id(parsed.references())
        .or_else(|| first_id(parsed.in_reply_to()))
        .or(message_id);
    let text = match (&email.body.plain, &email.body.html) {
        (Some(plain), _) if !plain.trim().is_empty() => plain.clone(),
        (_, Some(html)) => mail_parser::decoders::html::html_to_text(html),
        (Some(plain), None) => plain.clone(),
        (None, None) => String::new(),
    };

    let mut message = Map::new();
    if let Some(from) = addresses(parsed.from()).into_iter().next() {
        message.insert("from".into(), from.into());
    }
    for (key, list) in [
        ("to", addresses(parsed.to())),
        ("cc", addresses(parsed.cc())),
        ("bcc", addresses(parsed.bcc())),
    ] {
        if !list.is_empty() {
            message.insert(key.into(), list.into());
        }
    }
    if let Some(sent_at) = &sent_at {
        message.insert("sent_at".into(), sent_at.clone().into());
    }
    if let Some(subject) = parsed.subject() {
        message.insert("subject".into(), json!({"text": subject}));
    }
    message.insert("body".into(), json!({"text": text}));

    let mut comment = json!({
        "id": id,
        "messages": [Value::Object(message)],
        "text_format": "plain",
    });
    if let Some(sent_at) = sent_at {
        comment["timestamp"] = sent_at.into();
    }
    if let Some(thread_id) = thread_id {
        comment["thread_id"] = thread_id.into();
    }
    if let Some(properties) = document.user_properties {
        comment["user_properties"] = json!(properties);
    }
    if let Some(attachments) = document.raw_email.attachments {
        comment["attachments"] = Value::Array(attachments);
    }
    Ok(comment)
}

impl State {
    /// Parses each raw email into a comment and upserts them as
    /// `sync_comments` does, with the same counts; the transform is the
    /// request's `transform_tag`, else the source's `email_transform_tag`.
    pub(crate) fn sync_raw_emails(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: SyncRawEmailsRequest = decode_value(body, "")?;
        let source_id = self.source_id(project, name)?;
        if request.documents.len() > MAX_RAW_EMAILS {
            return Err(ApiError::unprocessable(format!(
                "`documents`: at most {MAX_RAW_EMAILS} emails per request, got {}",
                request.documents.len()
            )));
        }
        let source_tag = self.sources[&source_id]
            .settings
            .email_transform_tag
            .as_deref();
        match (request.transform_tag.as_deref(), source_tag) {
            (None, None) => {
                return Err(ApiError::unprocessable(format!(
                    "`transform_tag`: required, as source `{project}/{name}` has no \
                     `email_transform_tag`"
                )));
            }
            (Some(given), Some(own)) if given != own => {
                return Err(ApiError::unprocessable(format!(
                    "`transform_tag`: {given:?} is not the `email_transform_tag` of source \
                     `{project}/{name}` ({own:?})"
                )));
            }
            _ => {}
        }
        let comments: Vec<Value> = request
            .documents
            .into_iter()
            .enumerate()
            .map(|(i, document)| comment_of(document, &format!("documents[{i}]")))
            .collect::<Result<_, _>>()?;
        let batch: Vec<Upload> = validate_comments(comments, "documents")?;
        let ids: Vec<String> = batch.iter().map(|(id, _, _)| id.clone()).collect();
        let mut out = self.store_comments(&source_id, batch).to_json();
        if request.include_comments == Some(true) {
            let source = &self.sources[&source_id];
            out["comments"] = ids
                .iter()
                .filter_map(|id| source.comments.get(id))
                .map(|c| Self::comment_json(&source_id, c))
                .collect();
        }
        Ok(out)
    }
}
