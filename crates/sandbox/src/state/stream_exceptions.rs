//! Stream exceptions: a stream's tags on comments a downstream process
//! could not handle, by comment uid (`store_stream_exceptions`,
//! `delete_stream_exceptions`).

use super::*;

#[derive(Deserialize)]
struct StoreStreamExceptionsRequest {
    exceptions: Vec<StreamException>,
}

#[derive(Deserialize)]
struct StreamException {
    uid: String,
    metadata: StreamExceptionMetadata,
}

#[derive(Deserialize)]
struct StreamExceptionMetadata {
    #[serde(rename = "type")]
    kind: String,
}

impl State {
    /// Tags comments of the stream's dataset with an exception type (a
    /// second tag of the same comment replaces the first). Every uid must
    /// name a comment of one of the dataset's sources (404 otherwise).
    pub(crate) fn store_stream_exceptions(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: StoreStreamExceptionsRequest = decode_value(body, "")?;
        let (d, _) = self.stream_ref(project, dataset, stream)?;
        for (i, exception) in request.exceptions.iter().enumerate() {
            let uid = &exception.uid;
            let known = uid.split_once('.').is_some_and(|(source_id, comment_id)| {
                d.source_ids.iter().any(|s| s == source_id)
                    && self
                        .sources
                        .get(source_id)
                        .is_some_and(|s| s.comments.contains_key(comment_id))
            });
            if !known {
                return Err(ApiError::not_found(format!(
                    "`exceptions[{i}].uid`: comment `{uid}` in the sources of dataset \
                     `{project}/{dataset}` (a uid is `<source_id>.<comment_id>`)"
                )));
            }
        }
        let (d, name) = self.stream_mut(project, dataset, stream)?;
        let tags = &mut d.streams.get_mut(&name).expect("checked").exceptions;
        for exception in request.exceptions {
            tags.insert(exception.uid, exception.metadata.kind);
        }
        Ok(json!({}))
    }

    /// Removes the tags of the comments named by `uid` (repeated); a uid
    /// the stream has not tagged is ignored.
    pub(crate) fn delete_stream_exceptions(
        &mut self,
        project: &str,
        dataset: &str,
        stream: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let uids = query.all("uid");
        let (d, name) = self.stream_mut(project, dataset, stream)?;
        if uids.is_empty() {
            return Err(ApiError::bad_request(
                "name the comments to untag with `uid` (repeated)",
            ));
        }
        let tags = &mut d.streams.get_mut(&name).expect("checked").exceptions;
        for uid in uids {
            tags.remove(uid);
        }
        Ok(json!({}))
    }

    /// The exception tags of a stream, uid → type (`None`: no such stream).
    pub(crate) fn stream_exceptions(
        &self,
        project: &str,
        dataset: &str,
        stream: &str,
    ) -> Option<BTreeMap<String, String>> {
        let (_, s) = self.stream_ref(project, dataset, stream).ok()?;
        Some(s.exceptions.clone())
    }

    /// Drops every stream's tags on comments of `source_id` (only those in
    /// `comment_ids` when given): the comments were deleted.
    pub(super) fn forget_exceptions(&mut self, source_id: &str, comment_ids: Option<&[&str]>) {
        let prefix = format!("{source_id}.");
        for stream in self
            .datasets
            .values_mut()
            .flat_map(|d| d.streams.values_mut())
        {
            stream.exceptions.retain(|uid, _| {
                let Some(comment_id) = uid.strip_prefix(&prefix) else {
                    return true;
                };
                comment_ids.is_some_and(|ids| !ids.contains(&comment_id))
            });
        }
    }
}
