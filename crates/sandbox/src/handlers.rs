//! The implemented operations: each operation id with the permissions it
//! needs and the state method that answers it.

use std::cell::Cell;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use crate::state::State;
use crate::wire::{ApiError, Query, decode};

/// What a handler gets: the decoded path parameters, the query and the body.
pub(crate) struct Call<'a> {
    pub(crate) params: &'a BTreeMap<String, String>,
    pub(crate) query: &'a Query,
    pub(crate) body: &'a Bytes,
    /// The body as request validation parsed it, taken by the first
    /// `json()` so that a large body is parsed once.
    pub(crate) parsed: Cell<Option<Value>>,
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
        match self.parsed.take() {
            Some(value) => Ok(value),
            None => decode(self.body),
        }
    }
}

type Handler = fn(&mut State, &Call<'_>) -> Result<Value, ApiError>;

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
];

/// The implemented operation with this id.
pub(crate) fn implemented(id: &str) -> Option<&'static Implemented> {
    IMPLEMENTED.iter().find(|op| op.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_operation_is_in_the_spec_and_has_one_permission_source() {
        for op in IMPLEMENTED {
            let spec = crate::spec::operation(op.id)
                .unwrap_or_else(|| panic!("{} is not an operation of the spec", op.id));
            assert!(
                spec.permissions.is_empty() || op.permissions.is_empty(),
                "{}: the spec names its permissions ({:?}); the sandbox must not name others",
                op.id,
                spec.permissions
            );
        }
    }
}
