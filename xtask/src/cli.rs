//! The `cm api` command table: one entry per generated operation of the
//! spec (method, path, parameters, body, tier), written to
//! `crates/cli/src/generated/operations.rs`. The CLI builds its `cm api`
//! subcommands from it at run time, so a spec change adds, removes or
//! changes a command when `cargo xtask codegen` runs, and `--check` fails
//! until it has.

use std::fmt::Write as _;

use serde_json::Value;

use crate::spec::{deref, operations};

/// Where the table goes, relative to the workspace root.
pub const CLI_DIR: &str = "crates/cli/src/generated";

/// The table's Rust source (without the header), for `generated_spec`
/// (the spec without its hand-written operations).
pub fn generate(generated_spec: &Value) -> String {
    let mut ops = operations(generated_spec);
    ops.sort_by_key(|op| op.id().unwrap_or_default());
    let mut out = String::from(
        "use crate::api::{Body, Kind, Location, Op, Param};\n\n\
         /// Every generated operation of the spec, by operation id.\n\
         pub const OPERATIONS: &[Op] = &[\n",
    );
    for op in ops {
        let Some(id) = op.id() else { continue };
        let internal = op.value.get("x-tier").and_then(Value::as_str) == Some("internal");
        let summary = op
            .value
            .get("summary")
            .and_then(Value::as_str)
            .or_else(|| op.value.get("description").and_then(Value::as_str))
            .and_then(|s| s.lines().next())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    Op {{\n        id: {id:?},\n        method: {:?},\n        path: {:?},\n        summary: {:?},\n        internal: {internal},\n        params: &[",
            op.method.to_uppercase(),
            op.path,
            summary.trim(),
        );
        let params = op
            .path_item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                op.value
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
        for param in params {
            let Some(param) = deref(generated_spec, param) else {
                continue;
            };
            let name = param
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let location = match param.get("in").and_then(Value::as_str) {
                Some("path") => "Path",
                Some("query") => "Query",
                _ => continue,
            };
            let required = param.get("required").and_then(Value::as_bool) == Some(true);
            let schema = param
                .get("schema")
                .and_then(|s| deref(generated_spec, s))
                .cloned()
                .unwrap_or(Value::Null);
            let (list, item) = match schema.get("type").and_then(Value::as_str) {
                Some("array") => (
                    true,
                    schema
                        .get("items")
                        .and_then(|s| deref(generated_spec, s))
                        .cloned()
                        .unwrap_or(Value::Null),
                ),
                _ => (false, schema),
            };
            let kind = match item.get("type").and_then(Value::as_str) {
                Some("integer") => "Integer",
                Some("number") => "Number",
                Some("boolean") => "Boolean",
                _ => "String",
            };
            let help = param
                .get("description")
                .and_then(Value::as_str)
                .and_then(|s| s.lines().next())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "            Param {{ name: {name:?}, location: Location::{location}, required: {required}, kind: Kind::{kind}, list: {list}, help: {:?} }},",
                help.trim(),
            );
        }
        out.push_str("        ],\n");
        let body = match op
            .value
            .get("requestBody")
            .and_then(|b| deref(generated_spec, b))
        {
            None => "Body::None".to_owned(),
            Some(body) => format!(
                "Body::Json {{ required: {} }}",
                body.get("required").and_then(Value::as_bool) == Some(true)
            ),
        };
        let _ = writeln!(out, "        body: {body},\n    }},");
    }
    out.push_str("];\n");
    out
}
