//! The implemented operations: each operation id with the permissions it
//! needs and the state method that answers it.

use std::cell::Cell;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use crate::state::{CheckedComments, File, State};
use crate::wire::{ApiError, Query, parse};

/// What a handler gets: the decoded path parameters, the query and the body.
pub(crate) struct Call<'a> {
    pub(crate) params: &'a BTreeMap<String, String>,
    pub(crate) query: &'a Query,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) body: &'a Bytes,
    /// The request's `Content-Type` (multipart uploads need its boundary).
    pub(crate) content_type: Option<&'a str>,
    /// The id of the user the request's token acts for.
    pub(crate) user: &'a str,
    /// The body as request validation parsed it, taken by the first
    /// `json()` so that a large body is parsed once.
    pub(crate) parsed: Cell<Option<Value>>,
    /// An upload's comments, checked by [`prepare`] before the state's
    /// lock is taken.
    pub(crate) checked: Cell<Option<CheckedComments>>,
}

impl Call<'_> {
    fn param(&self, name: &str) -> &str {
        // The resolver filled every parameter of the operation's template.
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Whether the `Accept` header names `media_type`.
    fn accepts(&self, media_type: &str) -> bool {
        self.headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                item.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type))
            })
    }

    fn json(&self) -> Result<Value, ApiError> {
        match self.parsed.take() {
            Some(value) => Ok(value),
            None => parse(self.body),
        }
    }

    /// The upload's comments, as [`prepare`] checked them.
    fn comments(&self) -> Result<CheckedComments, ApiError> {
        match self.checked.take() {
            Some(checked) => Ok(checked),
            None => Ok(CheckedComments::check(self.json()?)),
        }
    }
}

/// The work of operation `id` that needs no state, done before the
/// state's lock is taken so that concurrent requests do it in parallel:
/// checking and serializing an upload's comments.
pub(crate) fn prepare(id: &str, call: &Call<'_>) -> Result<(), ApiError> {
    if matches!(id, "sync_comments" | "add_comments") {
        call.checked.set(Some(CheckedComments::check(call.json()?)));
    }
    Ok(())
}

type Handler = fn(&mut State, &Call<'_>) -> Result<Value, ApiError>;
type FileHandler = fn(&mut State, &Call<'_>) -> Result<File, ApiError>;

/// One implemented operation.
pub(crate) struct Implemented {
    pub(crate) id: &'static str,
    /// The permissions the sandbox requires when the spec names none
    /// (`x-permissions`); when the spec names some, those apply and this
    /// is empty (a unit test keeps it so).
    pub(crate) permissions: &'static [&'static str],
    pub(crate) handler: Handler,
}

/// Every operation the sandbox implements; everything else answers 501.
pub(crate) const IMPLEMENTED: &[Implemented] = &[
    // projects
    Implemented {
        id: "list_projects",
        permissions: &[],
        handler: |s, _| Ok(s.list_projects(false)),
    },
    Implemented {
        id: "list_all_projects",
        permissions: &[],
        handler: |s, _| Ok(s.list_projects(true)),
    },
    Implemented {
        id: "get_project",
        permissions: &[],
        handler: |s, c| s.get_project(c.param("project")),
    },
    Implemented {
        id: "delete_project",
        permissions: &["projects-admin"],
        handler: |s, c| s.delete_project(c.param("project")),
    },
    Implemented {
        id: "create_project",
        permissions: &["projects-admin"],
        handler: |s, c| s.create_project(c.param("project"), c.json()?),
    },
    // sources
    Implemented {
        id: "list_sources",
        permissions: &[],
        handler: |s, _| s.list_sources(None),
    },
    Implemented {
        id: "list_project_sources",
        permissions: &["sources-read"],
        handler: |s, c| s.list_sources(Some(c.param("project"))),
    },
    Implemented {
        id: "get_source",
        permissions: &["sources-read"],
        handler: |s, c| s.get_source(c.param("project"), c.param("source_name")),
    },
    Implemented {
        id: "get_source_by_id",
        permissions: &["sources-read"],
        handler: |s, c| s.get_source_by_id(c.param("source_id")),
    },
    Implemented {
        id: "create_source",
        permissions: &["sources-admin"],
        handler: |s, c| s.create_source(c.param("project"), c.param("source_name"), c.json()?),
    },
    Implemented {
        id: "update_source",
        permissions: &["sources-admin"],
        handler: |s, c| s.update_source(c.param("project"), c.param("source_name"), c.json()?),
    },
    Implemented {
        id: "delete_source_by_id",
        permissions: &["sources-admin"],
        handler: |s, c| s.delete_source_by_id(c.param("source_id")),
    },
    // comments
    Implemented {
        id: "sync_comments",
        permissions: &[],
        handler: |s, c| s.sync_comments(c.param("project"), c.param("source_name"), c.comments()?),
    },
    Implemented {
        id: "get_comment",
        permissions: &["sources-read"],
        handler: |s, c| {
            s.get_comment(
                c.param("project"),
                c.param("source_name"),
                c.param("comment_id"),
            )
        },
    },
    Implemented {
        id: "delete_comments",
        permissions: &["sources-add-comments"],
        handler: |s, c| s.delete_comments(c.param("project"), c.param("source_name"), c.query),
    },
    Implemented {
        id: "list_source_comments",
        permissions: &["sources-read"],
        handler: |s, c| s.list_source_comments(c.param("project"), c.param("source_name"), c.query),
    },
    // datasets
    Implemented {
        id: "list_datasets",
        permissions: &[],
        handler: |s, _| s.list_datasets(None),
    },
    Implemented {
        id: "list_project_datasets",
        permissions: &["voc-readonly"],
        handler: |s, c| s.list_datasets(Some(c.param("project"))),
    },
    Implemented {
        id: "get_dataset",
        permissions: &["voc-readonly"],
        handler: |s, c| s.get_dataset(c.param("project"), c.param("dataset_name")),
    },
    Implemented {
        id: "delete_dataset",
        permissions: &["datasets-admin"],
        handler: |s, c| s.delete_dataset(c.param("project"), c.param("dataset_name")),
    },
    Implemented {
        id: "create_dataset",
        permissions: &["datasets-admin"],
        handler: |s, c| s.create_dataset(c.param("project"), c.param("dataset_name"), c.json()?),
    },
    // dataset export and query
    Implemented {
        id: "export_dataset",
        permissions: &["datasets-export"],
        handler: |s, c| s.export_dataset(c.param("project"), c.param("dataset_name"), c.json()?),
    },
    Implemented {
        id: "query_comments",
        permissions: &["voc-readonly", "sources-read"],
        handler: |s, c| {
            // The route's CSV form is not served: refused, not answered as JSON.
            if c.accepts("text/csv") {
                return Err(ApiError::new(
                    http::StatusCode::NOT_IMPLEMENTED,
                    "query_comments: the CSV answer (`Accept: text/csv`) is not implemented by the sandbox",
                ));
            }
            s.query_comments(
                c.param("project"),
                c.param("dataset_name"),
                c.query,
                c.json()?,
            )
        },
    },
    Implemented {
        id: "list_recent_comments",
        permissions: &["voc-readonly", "sources-read"],
        handler: |s, c| {
            s.list_recent_comments(c.param("project"), c.param("dataset_name"), c.json()?)
        },
    },
    // streams
    Implemented {
        id: "list_streams",
        permissions: &[],
        handler: |s, c| s.list_streams(c.param("project"), c.param("dataset_name")),
    },
    Implemented {
        id: "create_stream",
        permissions: &[],
        handler: |s, c| s.create_stream(c.param("project"), c.param("dataset_name"), c.json()?),
    },
    Implemented {
        id: "delete_stream",
        permissions: &[],
        handler: |s, c| {
            s.delete_stream(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
            )
        },
    },
    Implemented {
        id: "get_stream",
        permissions: &[],
        handler: |s, c| {
            s.get_stream(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
            )
        },
    },
    Implemented {
        id: "get_stream_results",
        permissions: &[],
        handler: |s, c| {
            s.get_stream_results(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
                c.query,
            )
        },
    },
    Implemented {
        id: "fetch_stream",
        permissions: &[],
        handler: |s, c| {
            s.fetch_stream(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
                c.json()?,
            )
        },
    },
    Implemented {
        id: "advance_stream",
        permissions: &[],
        handler: |s, c| {
            s.advance_stream(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
                c.json()?,
            )
        },
    },
    Implemented {
        id: "reset_stream",
        permissions: &[],
        handler: |s, c| {
            s.reset_stream(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
                c.json()?,
            )
        },
    },
    // stream exceptions
    Implemented {
        id: "store_stream_exceptions",
        permissions: &[],
        handler: |s, c| {
            s.store_stream_exceptions(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
                c.json()?,
            )
        },
    },
    Implemented {
        id: "delete_stream_exceptions",
        permissions: &[],
        handler: |s, c| {
            s.delete_stream_exceptions(
                c.param("project"),
                c.param("dataset_name"),
                c.param("stream_name"),
                c.query,
            )
        },
    },
    // comments, older routes and raw emails
    Implemented {
        id: "add_comments",
        permissions: &["sources-add-comments"],
        handler: |s, c| s.add_comments(c.param("project"), c.param("source_name"), c.comments()?),
    },
    Implemented {
        id: "sync_raw_emails",
        permissions: &[],
        handler: |s, c| s.sync_raw_emails(c.param("project"), c.param("source_name"), c.json()?),
    },
    // attachments (get_attachment answers a file: FILE_OPERATIONS)
    Implemented {
        id: "upload_comment_attachment",
        permissions: &["sources-add-comments"],
        handler: |s, c| {
            s.upload_comment_attachment(
                c.param("source_id"),
                c.param("comment_id"),
                c.param("attachment_index"),
                c.content_type,
                c.body,
            )
        },
    },
    // documents (get_document answers a file: FILE_OPERATIONS)
    Implemented {
        id: "upload_document",
        permissions: &["sources-add-comments"],
        handler: |s, c| s.upload_document(c.param("source_id"), c.content_type, c.body),
    },
    // buckets
    Implemented {
        id: "list_buckets",
        permissions: &["buckets-read"],
        handler: |s, _| s.list_buckets(None),
    },
    Implemented {
        id: "list_project_buckets",
        permissions: &["buckets-read"],
        handler: |s, c| s.list_buckets(Some(c.param("project"))),
    },
    Implemented {
        id: "get_bucket",
        permissions: &["buckets-read"],
        handler: |s, c| s.get_bucket(c.param("project"), c.param("bucket_name")),
    },
    Implemented {
        id: "get_bucket_by_id",
        permissions: &["buckets-read"],
        handler: |s, c| s.get_bucket_by_id(c.param("bucket_id")),
    },
    Implemented {
        id: "create_bucket",
        permissions: &["buckets-admin"],
        handler: |s, c| s.create_bucket(c.param("project"), c.param("bucket_name"), c.json()?),
    },
    Implemented {
        id: "update_bucket",
        permissions: &["buckets-admin"],
        handler: |s, c| s.update_bucket(c.param("project"), c.param("bucket_name"), c.json()?),
    },
    Implemented {
        id: "delete_bucket_by_id",
        permissions: &["buckets-admin"],
        handler: |s, c| s.delete_bucket_by_id(c.param("bucket_id")),
    },
    Implemented {
        id: "get_bucket_statistics",
        permissions: &["buckets-read"],
        handler: |s, c| s.get_bucket_statistics(c.param("project"), c.param("bucket_name")),
    },
    // emails in buckets
    Implemented {
        id: "add_bucket_emails",
        permissions: &["buckets-append"],
        handler: |s, c| s.add_bucket_emails(c.param("project"), c.param("bucket_name"), c.json()?),
    },
    Implemented {
        id: "get_bucket_email",
        permissions: &["buckets-read"],
        handler: |s, c| s.get_bucket_email(c.param("project"), c.param("bucket_name"), c.query),
    },
    Implemented {
        id: "list_bucket_emails",
        permissions: &["buckets-read"],
        handler: |s, c| {
            s.list_bucket_emails(
                c.param("project"),
                c.param("bucket_name"),
                c.json()?,
                "list_bucket_emails",
            )
        },
    },
    Implemented {
        id: "query_bucket_emails",
        permissions: &["buckets-read"],
        handler: |s, c| {
            s.list_bucket_emails(
                c.param("project"),
                c.param("bucket_name"),
                c.json()?,
                "query_bucket_emails",
            )
        },
    },
    Implemented {
        id: "delete_bucket_emails",
        permissions: &["buckets-append"],
        handler: |s, c| s.delete_bucket_emails(c.param("project"), c.param("bucket_name"), c.query),
    },
    // users
    Implemented {
        id: "get_current_user",
        permissions: &[],
        handler: |s, c| s.get_current_user(c.user),
    },
    Implemented {
        id: "refresh_user_permissions",
        permissions: &[],
        handler: |s, c| s.refresh_user_permissions(c.json()?),
    },
    Implemented {
        id: "list_quotas",
        permissions: &[],
        handler: |s, _| Ok(s.list_quotas()),
    },
    Implemented {
        id: "list_users",
        permissions: &[],
        handler: |s, _| Ok(s.list_users(false)),
    },
    Implemented {
        id: "list_all_users",
        permissions: &["tenant-users-read"],
        handler: |s, _| Ok(s.list_users(true)),
    },
    Implemented {
        id: "get_user",
        permissions: &["tenant-users-read"],
        handler: |s, c| s.get_user(c.param("user_id")),
    },
    Implemented {
        id: "create_user",
        permissions: &["tenant-admin"],
        handler: |s, c| s.create_user(c.json()?),
    },
    Implemented {
        id: "update_user",
        permissions: &["tenant-admin"],
        handler: |s, c| s.update_user(c.param("user_id"), c.json()?),
    },
    Implemented {
        id: "delete_user",
        permissions: &["tenant-admin"],
        handler: |s, c| s.delete_user(c.param("user_id")),
    },
    // audit events
    Implemented {
        id: "query_audit_events",
        permissions: &[],
        handler: |s, c| s.query_audit_events(c.json()?),
    },
    // labellings, label definitions, predictions
    Implemented {
        id: "update_labelling",
        permissions: &["voc"],
        handler: |s, c| {
            s.update_labelling(
                c.param("project"),
                c.param("dataset_name"),
                c.param("comment_uid"),
                c.json()?,
            )
        },
    },
    Implemented {
        id: "get_labellings",
        permissions: &["voc-readonly", "sources-read"],
        handler: |s, c| s.get_labellings(c.param("project"), c.param("dataset_name"), c.query),
    },
    Implemented {
        id: "create_label_defs",
        permissions: &["voc"],
        handler: |s, c| {
            s.create_label_defs(
                c.param("project"),
                c.param("dataset_name"),
                c.param("label_group_name"),
                c.json()?,
            )
        },
    },
    Implemented {
        id: "get_label_def",
        permissions: &["voc-readonly"],
        handler: |s, c| {
            s.get_label_def(
                c.param("project"),
                c.param("dataset_name"),
                c.param("label_group_name"),
                c.query,
            )
        },
    },
    Implemented {
        id: "update_label_def",
        permissions: &["voc"],
        handler: |s, c| {
            s.update_label_def(
                c.param("project"),
                c.param("dataset_name"),
                c.param("label_group_name"),
                c.query,
                c.json()?,
            )
        },
    },
    Implemented {
        id: "delete_label_def",
        permissions: &["voc"],
        handler: |s, c| {
            s.delete_label_def(
                c.param("project"),
                c.param("dataset_name"),
                c.param("label_group_name"),
                c.query,
            )
        },
    },
    Implemented {
        id: "list_models",
        permissions: &["voc-readonly"],
        handler: |s, c| s.list_models(c.param("project"), c.param("dataset_name"), c.json()?),
    },
    Implemented {
        id: "predict_comments",
        permissions: &["voc-readonly", "sources-read"],
        handler: |s, c| {
            s.predict_comments(
                c.param("project"),
                c.param("dataset_name"),
                c.param("model_version"),
                c.json()?,
            )
        },
    },
];

/// An implemented operation whose answer is a file, not JSON.
pub(crate) struct FileOperation {
    pub(crate) id: &'static str,
    /// As [`Implemented::permissions`].
    pub(crate) permissions: &'static [&'static str],
    pub(crate) handler: FileHandler,
}

/// The implemented operations that answer files.
pub(crate) const FILE_OPERATIONS: &[FileOperation] = &[
    FileOperation {
        id: "get_attachment",
        permissions: &[],
        handler: |s, c| s.get_attachment(c.param("attachment_reference")),
    },
    FileOperation {
        id: "get_document",
        permissions: &["sources-read"],
        handler: |s, c| s.get_document(c.param("source_id"), c.param("comment_id")),
    },
];

/// The file-answering operation with this id.
pub(crate) fn file_operation(id: &str) -> Option<&'static FileOperation> {
    FILE_OPERATIONS.iter().find(|op| op.id == id)
}

/// Every implemented operation's id and the permissions the sandbox names.
pub(crate) fn all_implemented() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    IMPLEMENTED
        .iter()
        .map(|op| (op.id, op.permissions))
        .chain(FILE_OPERATIONS.iter().map(|op| (op.id, op.permissions)))
}

/// The implemented operation with this id.
pub(crate) fn implemented(id: &str) -> Option<&'static Implemented> {
    IMPLEMENTED.iter().find(|op| op.id == id)
}

/// Verbs of operation ids that read, though some are sent as `POST`
/// (`query_comments`, `fetch_stream`, `predict_comments`, ...).
const READ_VERBS: &[&str] = &[
    "get_",
    "list_",
    "query_",
    "fetch_",
    "predict_",
    "preview_",
    "export_",
    "detect_",
    "validate_",
    "suggest_",
];

/// Whether a successful `method` request of operation `id` changed
/// something, and so records an audit event: every method but `GET`,
/// except the reads sent as `POST` (named by [`READ_VERBS`]).
pub(crate) fn is_change(method: &http::Method, id: &str) -> bool {
    method != http::Method::GET && !READ_VERBS.iter().any(|verb| id.starts_with(verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_the_writes_not_the_reads_sent_as_post() {
        use http::Method;
        for (method, id) in [
            (Method::PUT, "create_source"),
            (Method::POST, "sync_comments"),
            (Method::DELETE, "delete_user"),
            (Method::POST, "advance_stream"),
        ] {
            assert!(is_change(&method, id), "{method} {id}");
        }
        for (method, id) in [
            (Method::GET, "get_source"),
            (Method::POST, "query_audit_events"),
            (Method::POST, "fetch_stream"),
            (Method::POST, "get_source_statistics"),
            (Method::POST, "predict_comments"),
        ] {
            assert!(!is_change(&method, id), "{method} {id}");
        }
    }

    #[test]
    fn every_implemented_operation_is_in_the_spec_and_has_one_permission_source() {
        for (id, permissions) in all_implemented() {
            let spec = crate::spec::operation(id)
                .unwrap_or_else(|| panic!("{id} is not an operation of the spec"));
            assert!(
                spec.permissions.is_empty() || permissions.is_empty(),
                "{id}: the spec names its permissions ({:?}); the sandbox must not name others",
                spec.permissions
            );
        }
    }
}
