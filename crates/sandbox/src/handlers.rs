//! The implemented operations: each operation id with the permissions it
//! needs and the state method that answers it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use crate::state::{File, State};
use crate::wire::{ApiError, Query, decode};

/// What a handler gets: the decoded path parameters, the query and the body.
pub(crate) struct Call<'a> {
    pub(crate) params: &'a BTreeMap<String, String>,
    pub(crate) query: &'a Query,
    pub(crate) body: &'a Bytes,
    /// The request's `Content-Type` (multipart uploads need its boundary).
    pub(crate) content_type: Option<&'a str>,
}

impl Call<'_> {
    fn param(&self, name: &str) -> &str {
        // The resolver filled every parameter of the operation's template.
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn json(&self) -> Result<Value, ApiError> {
        decode(self.body)
    }
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
        handler: |s, c| s.sync_comments(c.param("project"), c.param("source_name"), c.json()?),
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
        id: "create_dataset",
        permissions: &["datasets-admin"],
        handler: |s, c| s.create_dataset(c.param("project"), c.param("dataset_name"), c.json()?),
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
        handler: |s, c| s.add_comments(c.param("project"), c.param("source_name"), c.json()?),
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

#[cfg(test)]
mod tests {
    use super::*;

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
