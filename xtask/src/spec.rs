//! Reading the spec, once, into both the typed and the raw form.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::yaml::{Lines, pointer_token};

/// The spec as written, in the two shapes the pipeline needs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Bytes exactly as read; their SHA-256 is recorded in the output.
    pub bytes: Vec<u8>,
    /// Untyped view, for lints that look at things `openapiv3` hides
    /// (dangling `$ref`s, `nullable` siblings, raw examples).
    pub raw: Value,
    /// The line of each node of `raw`, by JSON pointer.
    pub lines: Lines,
}

/// Why the spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        /// The file's path.
        path: PathBuf,
        /// The parser's error, with line and column (boxed: it is large).
        source: Box<crate::yaml::Error>,
    },
    /// The YAML is not an OpenAPI 3.0 document progenitor can read.
    #[error("{path} is not an OpenAPI 3.0 document: {message}")]
    NotOpenApi {
        /// The file's path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Spec {
    /// Reads and parses the spec at `path`.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let bytes = std::fs::read(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Parses spec text already in memory; `path` only names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, SpecError> {
        let (raw, lines) =
            crate::yaml::from_slice_with_lines(&bytes).map_err(|source| SpecError::Yaml {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let version = raw.get("openapi").and_then(Value::as_str).unwrap_or("");
        if !version.starts_with("3.0.") {
            return Err(SpecError::NotOpenApi {
                path: path.to_owned(),
                message: format!("`openapi` is {version:?}; progenitor needs 3.0.x"),
            });
        }
        Ok(Self { bytes, raw, lines })
    }

    /// The spec line of the node at a JSON pointer into [`Spec::raw`] (or of
    /// its nearest ancestor, for something absent).
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        self.lines.line_of(pointer)
    }

    /// The typed document progenitor consumes. Only call after [`crate::lint`]
    /// passed: the lint reports structural problems with better locations.
    pub fn typed(&self, path: &Path) -> Result<openapiv3::OpenAPI, SpecError> {
        serde_json::from_value(self.raw.clone()).map_err(|error| SpecError::NotOpenApi {
            path: path.to_owned(),
            message: error.to_string(),
        })
    }

    /// `info.version`, which progenitor also embeds in the client.
    pub fn info_version(&self) -> &str {
        self.raw
            .pointer("/info/version")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Every operation as (method, path, operation object), in document order.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        operations(&self.raw)
    }
}

/// The HTTP methods an OpenAPI path item may hold.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the spec, borrowed from the raw document.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// Lower-case HTTP method.
    pub method: &'a str,
    /// The path template, e.g. `/api/v1/sources/{project}/{source_name}`.
    pub path: &'a str,
    /// The operation object.
    pub value: &'a Value,
    /// The enclosing path item (it may declare shared parameters).
    pub path_item: &'a Value,
}

impl<'a> Operation<'a> {
    /// The `operationId`, if there is one.
    pub fn id(&self) -> Option<&'a str> {
        self.value.get("operationId").and_then(Value::as_str)
    }

    /// The operation's parameter objects as written (a `$ref` not followed):
    /// the path item's shared ones, then its own.
    pub fn parameters(&self) -> impl Iterator<Item = &'a Value> + use<'a> {
        [
            self.path_item.get("parameters"),
            self.value.get("parameters"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    }

    /// The JSON pointer of the operation object, `/paths/{path}/{method}`.
    pub fn pointer(&self) -> String {
        format!("/paths/{}/{}", pointer_token(self.path), self.method)
    }

    /// `METHOD /path (operation_id)`, how lint messages name an operation.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({})",
            self.method.to_uppercase(),
            self.path,
            self.id().unwrap_or("no operationId")
        )
    }
}

/// Every operation of a raw OpenAPI document, in document order.
pub fn operations(raw: &Value) -> Vec<Operation<'_>> {
    let Some(paths) = raw.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter_map(move |method| {
                item.get(*method).map(|value| Operation {
                    method,
                    path,
                    value,
                    path_item: item,
                })
            })
        })
        .collect()
}

/// Resolves a local `$ref` (`#/a/b`) against the document.
pub fn resolve<'a>(raw: &'a Value, reference: &str) -> Option<&'a Value> {
    reference.strip_prefix('#').and_then(|ptr| raw.pointer(ptr))
}

/// Like [`deref`], also returning the JSON pointer of the value reached,
/// starting from `pointer`, the pointer of `value`.
pub fn deref_at<'a>(
    raw: &'a Value,
    mut pointer: String,
    mut value: &'a Value,
) -> Option<(String, &'a Value)> {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                value = resolve(raw, reference)?;
                pointer = reference.strip_prefix('#')?.to_owned();
            }
            None => return Some((pointer, value)),
        }
    }
    None
}

/// Follows `$ref`s (a bounded number of hops) until reaching an inline value.
pub fn deref<'a>(raw: &'a Value, mut value: &'a Value) -> Option<&'a Value> {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => value = resolve(raw, reference)?,
            None => return Some(value),
        }
    }
    None
}
