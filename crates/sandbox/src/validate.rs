//! Answers checked against the spec: each operation's `200` response schema
//! of `spec/openapi.yaml`, read as OpenAPI 3.0 and converted to JSON Schema,
//! compiled once per operation on first use.
//!
//! The conversion is a copy of `xtask/src/json_schema.rs` (the xtask is not
//! a library the sandbox can depend on); `DESIGN.md` records the duplication.
//! `nullable: true` adds `"null"` to the `type` of its own schema object
//! only (OpenAPI 3.0.3); a nullable reference is written
//! `anyOf: [$ref, {enum: [null]}]` and needs no conversion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

use crate::spec::SPEC;

/// One way an answer differs from its operation's success schema.
///
/// ```
/// let violations = cm_sandbox::validate_response("get_project", &serde_json::json!({"status": "ok"}));
/// assert_eq!(violations[0].operation_id, "get_project");
/// assert_eq!(violations[0].pointer, "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaViolation {
    /// The operation whose answer failed (`get_source`).
    pub operation_id: String,
    /// The JSON pointer into the answer where it failed (`""` for the root).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{} at {}: {}", self.operation_id, pointer, self.message)
    }
}

/// Validates `answer`, a whole JSON body (`{"status": "ok", ...}`), against
/// the `200` response schema the spec gives operation `operation_id`. An
/// empty list means valid; an operation with no JSON `200` schema, or not in
/// the spec, yields one violation saying so.
pub fn validate_response(operation_id: &str, answer: &Value) -> Vec<SchemaViolation> {
    let violation = |pointer: String, message: String| SchemaViolation {
        operation_id: operation_id.to_owned(),
        pointer,
        message,
    };
    let validator = match validator(operation_id) {
        Ok(validator) => validator,
        Err(message) => return vec![violation(String::new(), message)],
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(answer) {
        describe(&error, &mut |error| {
            out.push(violation(
                error.instance_path().to_string(),
                error.to_string(),
            ))
        });
    }
    out
}

type Compiled = Result<Arc<jsonschema::Validator>, String>;

/// The compiled validator of one operation, built on first use.
fn validator(operation_id: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(operation_id)
    {
        return found.clone();
    }
    // Compiled outside the lock; two threads may both compile, one wins.
    let compiled = compile(operation_id);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(operation_id.to_owned())
        .or_insert(compiled)
        .clone()
}

/// The spec as JSON, with its component schemas converted, read once.
pub(crate) struct Spec {
    pub(crate) doc: Value,
    pub(crate) components: Value,
}

pub(crate) fn spec() -> &'static Spec {
    static SPEC_JSON: OnceLock<Spec> = OnceLock::new();
    SPEC_JSON.get_or_init(|| {
        // The compiled-in spec is checked by every test of this crate.
        let doc: Value = serde_saphyr::from_str(SPEC).expect("spec/openapi.yaml parses");
        let components: Map<String, Value> = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|schemas| {
                schemas
                    .iter()
                    .map(|(k, v)| (k.clone(), convert(v)))
                    .collect()
            })
            .unwrap_or_default();
        Spec {
            doc,
            components: json!({ "schemas": components }),
        }
    })
}

fn compile(operation_id: &str) -> Compiled {
    let spec = spec();
    let schema = spec
        .doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .find(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
        .ok_or_else(|| format!("operation `{operation_id}` is not in the spec"))?
        .pointer("/responses/200/content/application~1json/schema")
        .ok_or_else(|| format!("operation `{operation_id}` has no JSON 200 response schema"))?;
    let document = with_components(json!({ "allOf": [convert(schema)] }), &spec.components);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&document)
        .map(Arc::new)
        .map_err(|e| format!("the spec's schema is not valid JSON Schema: {e}"))
}

/// `schema` with the component schemas (of `components`, converted) it
/// reaches through `$ref`, and only those: the validator then checks and compiles a small document rather
/// than the whole spec's components (most of a compile's cost).
pub(crate) fn with_components(mut schema: Value, components: &Value) -> Value {
    const PREFIX: &str = "#/components/schemas/";
    let all = &components["schemas"];
    let mut reached = Map::new();
    let mut pending = Vec::new();
    collect_refs(&schema, &mut pending);
    while let Some(reference) = pending.pop() {
        let Some(name) = reference.strip_prefix(PREFIX) else {
            continue;
        };
        if reached.contains_key(name) {
            continue;
        }
        // A reference to a missing component fails the build, naming it.
        if let Some(component) = all.get(name) {
            collect_refs(component, &mut pending);
            reached.insert(name.to_owned(), component.clone());
        }
    }
    schema["components"] = json!({ "schemas": reached });
    schema
}

/// Every `$ref` string in `value`, at any depth.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                out.push(reference.clone());
            }
            object.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Keywords whose value is a single subschema.
pub(crate) const SCHEMA_KEYWORDS: [&str; 3] = ["items", "not", "additionalProperties"];
/// Keywords whose value is a list of subschemas.
pub(crate) const SCHEMA_LIST_KEYWORDS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// One OpenAPI 3.0 schema object as JSON Schema: `nullable: true` becomes
/// `"null"` in its own `type` (when it has one); everything else is kept.
pub(crate) fn convert(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    let mut nullable = false;
    for (key, value) in object {
        match key.as_str() {
            "nullable" => nullable = value.as_bool().unwrap_or(false),
            "properties" => {
                let properties = value
                    .as_object()
                    .map(|props| props.iter().map(|(k, v)| (k.clone(), convert(v))).collect())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(properties));
            }
            k if SCHEMA_KEYWORDS.contains(&k) => {
                out.insert(key.clone(), convert(value));
            }
            k if SCHEMA_LIST_KEYWORDS.contains(&k) => {
                let list = value
                    .as_array()
                    .map(|items| items.iter().map(convert).collect())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Array(list));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if nullable && let Some(Value::String(type_name)) = out.get("type").cloned() {
        out.insert("type".into(), json!([type_name, "null"]));
    }
    Value::Object(out)
}

/// One report per failure. A non-null value failing a nullable reference
/// (`anyOf: [schema, {enum: [null]}]`) fails the `anyOf`; report why it
/// failed `schema` instead, which names the field that is really wrong.
pub(crate) fn describe(
    error: &jsonschema::ValidationError<'_>,
    report: &mut dyn FnMut(&jsonschema::ValidationError<'_>),
) {
    if let jsonschema::error::ValidationErrorKind::AnyOf { context } = error.kind() {
        let is_null_branch = |branch: &Vec<jsonschema::ValidationError<'static>>| {
            matches!(branch.as_slice(), [only] if matches!(only.kind(),
                jsonschema::error::ValidationErrorKind::Enum { options }
                    if **options == json!([null]))
                && only.instance_path() == error.instance_path())
        };
        let real: Vec<_> = context.iter().filter(|b| !is_null_branch(b)).collect();
        if let [branch] = real.as_slice() {
            for inner in branch.iter() {
                describe(inner, report);
            }
            return;
        }
    }
    report(error);
}

/// How a value differs from one component schema of the spec (for unit
/// tests of values that are parts of answers).
#[cfg(test)]
pub(crate) fn component_violations(schema: &str, value: &Value) -> Vec<String> {
    let document = json!({
        "allOf": [{"$ref": format!("#/components/schemas/{schema}")}],
        "components": spec().components,
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&document)
        .expect("the spec's schemas compile");
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_adds_null_to_its_own_type_only() {
        let converted = convert(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"$ref": "#/components/schemas/X", "nullable": true},
            }
        }));
        assert_eq!(
            converted["properties"]["a"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            converted["properties"]["b"],
            json!({"$ref": "#/components/schemas/X"})
        );
    }

    #[test]
    fn every_implemented_operation_has_a_compiled_success_schema() {
        for op in crate::handlers::IMPLEMENTED {
            if let Err(message) = validator(op.id) {
                panic!("{}: {message}", op.id);
            }
        }
    }

    #[test]
    fn an_unknown_operation_is_a_violation_not_a_pass() {
        let violations = validate_response("no_such_operation", &json!({"status": "ok"}));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("not in the spec"));
    }
}
