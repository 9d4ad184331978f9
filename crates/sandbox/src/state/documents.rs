//! IXP documents: `upload_document` stores a file (a multipart body with
//! one part, `file`, as for attachments) as a new comment of the source
//! whose one attachment is the document; `get_document` answers its bytes.

use bytes::Bytes;

use super::attachments::{Content, parse_upload, reference};
use super::*;

impl State {
    /// Creates a comment holding the uploaded document as its attachment 0;
    /// answers the comment's id and the attachment's reference.
    pub(crate) fn upload_document(
        &mut self,
        source_id: &str,
        content_type: Option<&str>,
        body: &Bytes,
    ) -> Result<Value, ApiError> {
        if !self.sources.contains_key(source_id) {
            return Err(ApiError::not_found(format!("source with id `{source_id}`")));
        }
        let part = parse_upload(content_type, body)?;
        let file_name = part
            .file_name
            .clone()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                ApiError::unprocessable("multipart part `file`: the document has no file name")
            })?;
        let content = Content::new(part, None);
        let comment_id = loop {
            let id = self.new_id();
            if !self.sources[source_id].comments.contains_key(&id) {
                break id;
            }
        };
        let mut fields = Map::new();
        fields.insert("id".into(), comment_id.clone().into());
        fields.insert(
            "attachments".into(),
            json!([{"name": file_name, "content_type": content.content_type()}]),
        );
        // Stored like any synced comment: listed, delivered by streams.
        self.store_comments(
            source_id,
            vec![(comment_id.clone(), Fields::from_map(fields), None)],
        );
        self.sources
            .get_mut(source_id)
            .and_then(|s| s.comments.get_mut(&comment_id))
            .expect("stored above")
            .contents
            .insert(0, content);
        Ok(json!({
            "comment_id": comment_id,
            "attachment_ref": reference(source_id, &comment_id, 0),
        }))
    }

    /// The document a comment holds (its attachment 0's content), with the
    /// media type it was uploaded with.
    pub(crate) fn get_document(&self, source_id: &str, comment_id: &str) -> Result<File, ApiError> {
        let source = self
            .sources
            .get(source_id)
            .ok_or_else(|| ApiError::not_found(format!("source with id `{source_id}`")))?;
        let comment = source.comments.get(comment_id).ok_or_else(|| {
            ApiError::not_found(format!("comment `{comment_id}` in source `{source_id}`"))
        })?;
        let content = comment.contents.get(&0).ok_or_else(|| {
            ApiError::not_found(format!(
                "document of comment `{comment_id}` in source `{source_id}` (the comment holds \
                 no uploaded document)"
            ))
        })?;
        Ok(content.file())
    }
}
