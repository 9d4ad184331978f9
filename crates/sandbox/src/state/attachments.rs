//! Attachment contents: `upload_comment_attachment` (a multipart body with
//! one part, `file`) stores the bytes of an attachment already listed in a
//! comment; `get_attachment` answers them by reference.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::*;

/// The name of the one part of an upload (the spec's, and cm-api's).
const FILE_PART: &str = "file";

/// The stored content of one attachment of a comment.
#[derive(Debug)]
pub(crate) struct Content {
    content_type: String,
    bytes: Bytes,
    /// SHA-256 of `bytes`, lowercase hex.
    hash: String,
}

impl Content {
    /// An uploaded part's content, hashed, with the part's media type, else
    /// `fallback_type`, else `application/octet-stream`.
    pub(super) fn new(part: FilePart, fallback_type: Option<String>) -> Self {
        let hash = Sha256::digest(&part.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            content_type: part
                .content_type
                .or(fallback_type)
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            bytes: part.bytes,
            hash,
        }
    }

    pub(super) fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The content as a download.
    pub(super) fn file(&self) -> File {
        File {
            content_type: self.content_type.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

/// An answer that is a file, not JSON.
#[derive(Debug)]
pub(crate) struct File {
    pub(crate) content_type: String,
    pub(crate) bytes: Bytes,
}

/// The reference `get_attachment` takes: the attachment's place (source,
/// comment, position), hex-encoded, so it stays opaque and path-safe.
pub(super) fn reference(source_id: &str, comment_id: &str, index: usize) -> String {
    hex(format!("{source_id}\n{comment_id}\n{index}").as_bytes())
}

fn parse_reference(text: &str) -> Option<(String, String, usize)> {
    let decoded = String::from_utf8(unhex(text)?).ok()?;
    // Source ids and positions hold no newline; a comment id may.
    let (source_id, rest) = decoded.split_once('\n')?;
    let (comment_id, index) = rest.rsplit_once('\n')?;
    Some((
        source_id.to_owned(),
        comment_id.to_owned(),
        index.parse().ok()?,
    ))
}

/// Adds to each attachment of a comment answer whose content was uploaded
/// its `attachment_reference`, and its `content_hash` and `size` when the
/// uploader left them out.
pub(super) fn describe_contents(
    comment: &mut Map<String, Value>,
    source_id: &str,
    comment_id: &str,
    contents: &BTreeMap<usize, Content>,
) {
    if contents.is_empty() {
        return;
    }
    let Some(Value::Array(list)) = comment.get_mut("attachments") else {
        return;
    };
    for (index, item) in list.iter_mut().enumerate() {
        if let (Some(content), Value::Object(item)) = (contents.get(&index), item) {
            item.insert(
                "attachment_reference".into(),
                reference(source_id, comment_id, index).into(),
            );
            item.entry("content_hash")
                .or_insert_with(|| content.hash.clone().into());
            item.entry("size")
                .or_insert_with(|| content.bytes.len().into());
        }
    }
}

/// The one `file` part of a multipart body: its file name, media type and
/// content.
pub(super) struct FilePart {
    pub(super) file_name: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) bytes: Bytes,
}

/// Parses a `multipart/form-data` body already in memory with `multer`;
/// 400 when it is not one, 422 when its parts are not exactly one `file`.
pub(super) fn parse_upload(content_type: Option<&str>, body: &Bytes) -> Result<FilePart, ApiError> {
    let content_type = content_type.ok_or_else(|| {
        ApiError::bad_request("the body must be multipart/form-data, with one part named `file`")
    })?;
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be multipart/form-data with a boundary ({e}); got Content-Type {content_type:?}"
        ))
    })?;
    let body = body.clone();
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let parse = async move {
        let mut found: Option<FilePart> = None;
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name != FILE_PART {
                return Err(ApiError::unprocessable(format!(
                    "multipart part `{name}`: unknown; the upload has one part, `{FILE_PART}`"
                )));
            }
            if found.is_some() {
                return Err(ApiError::unprocessable(format!(
                    "multipart part `{FILE_PART}`: given twice"
                )));
            }
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let bytes = field.bytes().await.map_err(malformed)?;
            found = Some(FilePart {
                file_name,
                content_type,
                bytes,
            });
        }
        found.ok_or_else(|| {
            ApiError::unprocessable(format!("multipart part `{FILE_PART}`: missing"))
        })
    };
    // The whole body is one ready chunk, so the parse never waits: one
    // poll completes it (a handler holds the state lock and cannot await).
    let mut parse = std::pin::pin!(parse);
    match parse.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(ApiError::bad_request(
            "the multipart body could not be read in one pass",
        )),
    }
}

fn malformed(error: multer::Error) -> ApiError {
    ApiError::bad_request(format!("the multipart body is malformed: {error}"))
}

impl State {
    /// Stores the content of attachment `index` of a comment; the comment
    /// must list an attachment there. Answers the content's SHA-256.
    pub(crate) fn upload_comment_attachment(
        &mut self,
        source_id: &str,
        comment_id: &str,
        index: &str,
        content_type: Option<&str>,
        body: &Bytes,
    ) -> Result<Value, ApiError> {
        let index: usize = index.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "path `attachment_index`: not a position (0, 1, ...): {index:?}"
            ))
        })?;
        let source = self
            .sources
            .get(source_id)
            .ok_or_else(|| ApiError::not_found(format!("source with id `{source_id}`")))?;
        let comment = source.comments.get(comment_id).ok_or_else(|| {
            ApiError::not_found(format!("comment `{comment_id}` in source `{source_id}`"))
        })?;
        let attachments = comment.fields.get("attachments");
        let listed = attachments
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|list| list.get(index))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "attachment {index} of comment `{comment_id}` (sync the comment with its \
                     attachments' metadata first)"
                ))
            })?;
        let listed_type = listed
            .get("content_type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let part = parse_upload(content_type, body)?;
        // The part's own type, else the type the metadata lists.
        let content = Content::new(part, listed_type);
        let hash = content.hash.clone();
        self.sources
            .get_mut(source_id)
            .and_then(|s| s.comments.get_mut(comment_id))
            .expect("checked above")
            .contents
            .insert(index, content);
        Ok(json!({"content_hash": hash}))
    }

    /// The stored bytes of an attachment, with the media type they were
    /// uploaded with.
    pub(crate) fn get_attachment(&self, reference: &str) -> Result<File, ApiError> {
        let missing = || ApiError::not_found(format!("attachment `{reference}`"));
        let (source_id, comment_id, index) = parse_reference(reference).ok_or_else(missing)?;
        let content = self
            .sources
            .get(&source_id)
            .and_then(|s| s.comments.get(&comment_id))
            .and_then(|c| c.contents.get(&index))
            .ok_or_else(missing)?;
        Ok(content.file())
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn references_round_trip_and_reject_garbage() {
        let r = reference("18ba5ce699f8da1f", "msg.42\nx", 3);
        assert_eq!(
            parse_reference(&r),
            Some(("18ba5ce699f8da1f".into(), "msg.42\nx".into(), 3))
        );
        assert_eq!(parse_reference("abc"), None);
        assert_eq!(parse_reference("zz"), None);
        assert_eq!(parse_reference(""), None);
    }

    #[test]
    fn a_body_that_is_not_multipart_is_400() {
        let body = Bytes::from_static(b"hello");
        let error = parse_upload(Some("application/octet-stream"), &body)
            .err()
            .unwrap();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let error = parse_upload(None, &body).err().unwrap();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_multipart_body_without_a_file_part_is_422() {
        let body = Bytes::from_static(
            b"--XYZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XYZ--\r\n",
        );
        let error = parse_upload(Some("multipart/form-data; boundary=XYZ"), &body)
            .err()
            .unwrap();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.message.contains("`other`"), "{}", error.message);
    }
}
