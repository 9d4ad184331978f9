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
/// (the spec without its hand-written operations); an error names an
/// operation the table cannot describe (a header or cookie parameter, a
/// body that is not JSON), rather than leaving part of it out.
pub fn generate(generated_spec: &Value) -> Result<String, String> {
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
        for param in op.parameters() {
            let param = deref(generated_spec, param)
                .ok_or_else(|| format!("{id}: a parameter's $ref does not resolve"))?;
            let name = param
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let location = match param.get("in").and_then(Value::as_str) {
                Some("path") => "Path",
                Some("query") => "Query",
                other => {
                    return Err(format!(
                        "{id}: parameter `{name}` is in {other:?}: `cm api` takes path and query parameters only"
                    ));
                }
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
            Some(body) if body.pointer("/content/application~1json").is_some() => format!(
                "Body::Json {{ required: {} }}",
                body.get("required").and_then(Value::as_bool) == Some(true)
            ),
            Some(_) => return Err(format!("{id}: `cm api` sends JSON bodies only")),
        };
        let _ = writeln!(out, "        body: {body},\n    }},");
    }
    out.push_str("];\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_carry_parameters_with_their_types_and_the_body() {
        let spec = json!({"paths": {"/things/{project}": {
            "parameters": [{"name": "project", "in": "path", "required": true, "schema": {"type": "string"}}],
            "put": {
                "operationId": "put_thing",
                "summary": "Put a thing\nmore text",
                "x-tier": "internal",
                "parameters": [
                    {"name": "id", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                    {"$ref": "#/components/parameters/Flag"},
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {}}}},
            },
        }}, "components": {"parameters": {"Flag": {"name": "flag", "in": "query", "schema": {"type": "boolean"}}}}});
        let table = generate(&spec).unwrap();
        assert!(table.contains("id: \"put_thing\",\n        method: \"PUT\",\n        path: \"/things/{project}\",\n        summary: \"Put a thing\",\n        internal: true,"), "{table}");
        assert!(table.contains("Param { name: \"project\", location: Location::Path, required: true, kind: Kind::String, list: false, help: \"\" }"), "{table}");
        assert!(table.contains("Param { name: \"id\", location: Location::Query, required: false, kind: Kind::Integer, list: true, help: \"\" }"), "{table}");
        assert!(table.contains("Param { name: \"flag\", location: Location::Query, required: false, kind: Kind::Boolean, list: false, help: \"\" }"), "{table}");
        assert!(
            table.contains("body: Body::Json { required: true },"),
            "{table}"
        );
    }

    #[test]
    fn what_the_table_cannot_describe_is_an_error_naming_the_operation() {
        let header = json!({"paths": {"/x": {"get": {
            "operationId": "get_x",
            "parameters": [{"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
        }}}});
        assert!(
            generate(&header)
                .unwrap_err()
                .starts_with("get_x: parameter `X-Trace` is in Some(\"header\")")
        );
        let csv = json!({"paths": {"/x": {"post": {
            "operationId": "post_x",
            "requestBody": {"content": {"text/csv": {"schema": {}}}},
        }}}});
        assert_eq!(
            generate(&csv).unwrap_err(),
            "post_x: `cm api` sends JSON bodies only"
        );
    }
}
