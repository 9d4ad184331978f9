//! Checks the spec for what progenitor cannot handle, or handles silently
//! wrong, before any code is generated. Each finding names the operation and
//! path it is about and the spec line, so it can be fixed without reading
//! generated code.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::codegen::SPEC_PATH;
use crate::json_schema;
use crate::spec::{Operation, Spec, deref, deref_at, operations, resolve};
use crate::yaml::pointer_token;

/// The shared error response every operation must use for `4XX` and `5XX`.
pub const ERROR_RESPONSE_REF: &str = "#/components/responses/Error";
/// The error envelope schema, accepted when a response inlines it.
pub const ERROR_SCHEMA_REF: &str = "#/components/schemas/ErrorResponse";

/// One problem found in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where in the document: a JSON pointer into the raw spec, to the
    /// offending node or, for something missing, to where it belongs.
    pub pointer: String,
    /// Where, for a reader: `METHOD /path (operation_id)`, or the pointer
    /// (`#/...`) outside paths.
    pub location: String,
    /// What is wrong, in one line.
    pub message: String,
    /// The spec line of `pointer`, once known (see [`lint_spec`]).
    pub line: Option<usize>,
}

impl Finding {
    fn new(pointer: impl Into<String>, location: impl Into<String>, message: String) -> Self {
        Self {
            pointer: pointer.into(),
            location: location.into(),
            message,
            line: None,
        }
    }
}

impl fmt::Display for Finding {
    /// `spec/openapi.yaml:LINE: LOCATION: MESSAGE`, without the file and
    /// line when the line is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{SPEC_PATH}:{line}: ")?;
        }
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// [`lint`], with each finding's spec line, in line order.
pub fn lint_spec(spec: &Spec) -> Vec<Finding> {
    let mut findings = lint(&spec.raw);
    for finding in &mut findings {
        finding.line = spec.line_of(&finding.pointer);
    }
    // Stable: findings on one line keep their order.
    findings.sort_by_key(|f| f.line);
    findings
}

/// Runs every check and returns the findings, in document order.
///
/// Unresolved `$ref`s are checked first and alone: with a hole in the
/// schemas, example validation would only repeat the same problem.
pub fn lint(raw: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    dangling_refs(raw, "", raw, &mut findings);
    if !findings.is_empty() {
        return findings;
    }
    let operations = operations(raw);
    duplicate_operation_ids(&operations, &mut findings);
    let validator = json_schema::Validator::new(raw);
    for operation in &operations {
        let mut report = |pointer: String, message: String| {
            findings.push(Finding::new(pointer, operation.describe(), message))
        };
        responses(raw, &validator, operation, &mut report);
        request_body(raw, &validator, operation, &mut report);
    }
    success_schemas(raw, &operations, &mut findings);
    open_enums(raw, "", raw, &mut findings);
    ignored_nullable(raw, "", raw, &mut findings);
    findings
}

/// `nullable: true` that a standard OpenAPI 3.0.3 tool ignores or overrides:
/// beside a `$ref`, on a schema without `type`, or beside `allOf`/`oneOf`/
/// `anyOf` (which still apply to `null`, and reject it). typify reads all
/// three as nullable, docs portals and other generators do not. A nullable
/// reference is written `anyOf: [{$ref: X}, {enum: [null]}]` instead.
fn ignored_nullable(raw: &Value, pointer: &str, value: &Value, findings: &mut Vec<Finding>) {
    match value {
        Value::Object(object) => {
            if object.get("nullable") == Some(&Value::Bool(true)) {
                let composed = ["$ref", "allOf", "oneOf", "anyOf"]
                    .iter()
                    .find(|key| object.contains_key(**key));
                let reason = match composed {
                    Some(key) => Some(format!("beside `{key}`")),
                    None if !object.contains_key("type") => Some("without `type`".to_owned()),
                    None => None,
                };
                if let Some(reason) = reason {
                    findings.push(Finding::new(
                        format!("{pointer}/nullable"),
                        locate(raw, pointer),
                        format!(
                            "`nullable: true` {reason} is ignored by standard OpenAPI 3.0 tools (at #{pointer}); write a nullable reference as `anyOf: [{{$ref: ...}}, {{enum: [null]}}]`"
                        ),
                    ));
                }
            }
            for (key, child) in object {
                if key == "example" || key == "examples" {
                    continue;
                }
                let child_pointer = format!("{pointer}/{}", pointer_token(key));
                ignored_nullable(raw, &child_pointer, child, findings);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                ignored_nullable(raw, &format!("{pointer}/{index}"), child, findings);
            }
        }
        _ => {}
    }
}

fn duplicate_operation_ids(operations: &[Operation<'_>], findings: &mut Vec<Finding>) {
    let mut first_seen: BTreeMap<&str, String> = BTreeMap::new();
    for operation in operations {
        let Some(id) = operation.id() else {
            findings.push(Finding::new(
                operation.pointer(),
                operation.describe(),
                "missing operationId".into(),
            ));
            continue;
        };
        if let Some(first) = first_seen.get(id) {
            findings.push(Finding::new(
                operation.pointer() + "/operationId",
                operation.describe(),
                format!("duplicate operationId `{id}`, also used by {first}"),
            ));
        } else {
            first_seen.insert(id, operation.describe());
        }
    }
}

fn responses(
    raw: &Value,
    validator: &json_schema::Validator,
    operation: &Operation<'_>,
    report: &mut impl FnMut(String, String),
) {
    let at = operation.pointer() + "/responses";
    let Some(responses) = operation.value.get("responses").and_then(Value::as_object) else {
        report(operation.pointer(), "no responses".into());
        return;
    };
    if responses.contains_key("default") {
        report(
            format!("{at}/default"),
            "has a `default` response; use `4XX` and `5XX` instead".into(),
        );
    }
    for class in ["4XX", "5XX"] {
        match responses.get(class) {
            None => report(
                at.clone(),
                format!("no `{class}` response with the error envelope"),
            ),
            Some(response) if !is_error_envelope(raw, response) => report(
                format!("{at}/{class}"),
                format!("`{class}` response is not the error envelope (`{ERROR_RESPONSE_REF}`)"),
            ),
            Some(_) => {}
        }
    }
    let successes: Vec<_> = responses
        .keys()
        .filter(|code| code.starts_with('2'))
        .collect();
    if successes.len() != 1 {
        report(
            at.clone(),
            format!("needs exactly one 2xx response, has {}", successes.len()),
        );
    }
    for code in successes {
        let Some((pointer, response)) = deref_at(
            raw,
            format!("{at}/{}", pointer_token(code)),
            &responses[code],
        ) else {
            continue; // reported as a dangling $ref
        };
        check_examples(
            raw,
            validator,
            &pointer,
            response,
            &format!("response {code}"),
            report,
        );
    }
}

fn is_error_envelope(raw: &Value, response: &Value) -> bool {
    if response.get("$ref").and_then(Value::as_str) == Some(ERROR_RESPONSE_REF) {
        return true;
    }
    deref(raw, response)
        .and_then(|r| r.pointer("/content/application~1json/schema/$ref"))
        .and_then(Value::as_str)
        == Some(ERROR_SCHEMA_REF)
}

fn request_body(
    raw: &Value,
    validator: &json_schema::Validator,
    operation: &Operation<'_>,
    report: &mut impl FnMut(String, String),
) {
    let Some(body) = operation.value.get("requestBody") else {
        return;
    };
    let Some((pointer, body)) = deref_at(raw, operation.pointer() + "/requestBody", body) else {
        return;
    };
    if let Some(content) = body.get("content").and_then(Value::as_object) {
        for media in content.keys().filter(|m| m.starts_with("multipart/")) {
            report(
                format!("{pointer}/content/{}", pointer_token(media)),
                format!(
                    "request body is `{media}`; progenitor cannot generate it, write the call by hand in cm-api"
                ),
            );
        }
    }
    check_examples(raw, validator, &pointer, body, "request body", report);
}

/// Every JSON media type needs an example, and every example must validate.
/// `pointer` is the pointer of `holder`, a response or request body.
fn check_examples(
    raw: &Value,
    validator: &json_schema::Validator,
    pointer: &str,
    holder: &Value,
    what: &str,
    report: &mut impl FnMut(String, String),
) {
    let Some(content) = holder.get("content").and_then(Value::as_object) else {
        return;
    };
    for (media, media_object) in content {
        if !media.contains("json") {
            continue;
        }
        let at = format!("{pointer}/content/{}", pointer_token(media));
        let Some(schema) = media_object.get("schema") else {
            report(at, format!("{what} `{media}` has no schema"));
            continue;
        };
        let mut examples: Vec<(String, String, &Value)> = Vec::new();
        if let Some(example) = media_object.get("example") {
            examples.push(("example".into(), format!("{at}/example"), example));
        }
        if let Some(named) = media_object.get("examples").and_then(Value::as_object) {
            for (name, example) in named {
                let start = format!("{at}/examples/{}", pointer_token(name));
                if let Some((example_at, example)) = deref_at(raw, start, example)
                    && let Some(value) = example.get("value")
                {
                    examples.push((format!("examples/{name}"), example_at + "/value", value));
                }
            }
        }
        if examples.is_empty() {
            report(at.clone(), format!("{what} `{media}` has no example"));
        }
        for (name, example_at, example) in examples {
            for error in validator.validate(schema, example) {
                report(
                    example_at.clone(),
                    format!("{what} {name} does not match its schema at {error}"),
                );
            }
        }
    }
}

/// What a client decodes, every schema reachable from a 2xx response, keeps
/// `required` for keys that are always there:
///
/// - a required property must not be `nullable: true` (directly, as
///   `allOf: [$ref]` beside it, or on the schema it references): a key that
///   may be null may also be missing;
/// - a required property must not be a collection (`type: array`, or a map:
///   `additionalProperties` and no `properties`): collections are optional,
///   with `default: []` or `{}`. The exception is the payload array of the
///   top-level success schema (the one the 2xx response references, e.g.
///   `comments` in `{status, comments}`); the same schema reached from
///   elsewhere gets no exception.
fn success_schemas(raw: &Value, operations: &[Operation<'_>], findings: &mut Vec<Finding>) {
    let mut walk = SchemaWalk {
        raw,
        visited: HashSet::new(),
        reported: HashSet::new(),
        findings,
    };
    for operation in operations {
        let Some(responses) = operation.value.get("responses").and_then(Value::as_object) else {
            continue;
        };
        for (code, response) in responses.iter().filter(|(code, _)| code.starts_with('2')) {
            let start = format!("{}/responses/{}", operation.pointer(), pointer_token(code));
            let Some((pointer, response)) = deref_at(raw, start, response) else {
                continue;
            };
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                continue;
            };
            for (media, media_object) in content {
                if let Some(schema) = media_object.get("schema") {
                    let at = format!("{pointer}/content/{}/schema", pointer_token(media));
                    walk.schema(at, schema, true);
                }
            }
        }
    }
}

/// A collection a required property must not be: which, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Array,
    Map,
}

struct SchemaWalk<'a, 'f> {
    raw: &'a Value,
    /// (schema pointer, reached as a top-level success schema).
    visited: HashSet<(String, bool)>,
    /// (property pointer, rule): each problem once, however reached.
    reported: HashSet<(String, &'static str)>,
    findings: &'f mut Vec<Finding>,
}

impl<'a> SchemaWalk<'a, '_> {
    fn schema(&mut self, pointer: String, schema: &'a Value, top: bool) {
        let Some((pointer, schema)) = deref_at(self.raw, pointer, schema) else {
            return;
        };
        let Some(object) = schema.as_object() else {
            return;
        };
        if !self.visited.insert((pointer.clone(), top)) {
            return;
        }
        let properties = object.get("properties").and_then(Value::as_object);
        let required = object.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            let Some(property) = properties.and_then(|p| p.get(name)) else {
                continue;
            };
            let at = format!("{pointer}/properties/{}", pointer_token(name));
            let owner = schema_name(&pointer);
            if is_nullable(self.raw, property) {
                self.report(
                    at.clone(),
                    "nullable",
                    format!(
                        "`{owner}` property `{name}` is required and `nullable: true`; a key that may be null may also be missing: drop it from `required`"
                    ),
                );
            }
            match collection(self.raw, property) {
                Some(Collection::Array) if top => {} // the payload of the response
                Some(kind) => {
                    let default = if kind == Collection::Array {
                        "[]"
                    } else {
                        "{}"
                    };
                    let what = if kind == Collection::Array {
                        "an array"
                    } else {
                        "a map"
                    };
                    self.report(
                        at,
                        "collection",
                        format!(
                            "`{owner}` property `{name}` is required and {what}; collections are optional, with `default: {default}`"
                        ),
                    );
                }
                None => {}
            }
        }
        for (name, property) in properties.into_iter().flatten() {
            let at = format!("{pointer}/properties/{}", pointer_token(name));
            self.schema(at, property, false);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = object.get(key).filter(|c| c.is_object()) {
                self.schema(format!("{pointer}/{key}"), child, false);
            }
        }
        // A composition of the top-level schema is the top-level schema.
        for key in ["allOf", "oneOf", "anyOf"] {
            for (index, member) in object
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.schema(format!("{pointer}/{key}/{index}"), member, top);
            }
        }
    }

    fn report(&mut self, pointer: String, rule: &'static str, message: String) {
        if self.reported.insert((pointer.clone(), rule)) {
            let location = locate(self.raw, &pointer);
            self.findings.push(Finding::new(pointer, location, message));
        }
    }
}

/// `nullable: true` on the property or on the schema it references, or a
/// nullable reference (`anyOf`/`oneOf` with an `{enum: [null]}` branch).
fn is_nullable(raw: &Value, schema: &Value) -> bool {
    let flagged = |s: &Value| {
        s.get("nullable").and_then(Value::as_bool) == Some(true)
            || ["anyOf", "oneOf"].iter().any(|key| {
                s.get(*key)
                    .and_then(Value::as_array)
                    .is_some_and(|branches| {
                        branches
                            .iter()
                            .any(|b| b.get("enum") == Some(&serde_json::json!([null])))
                    })
            })
    };
    flagged(schema) || deref(raw, schema).is_some_and(flagged)
}

/// Whether a property schema (through `$ref`, or a one-member `allOf`
/// wrapper) is an array or a map.
fn collection(raw: &Value, schema: &Value) -> Option<Collection> {
    let mut schema = deref(raw, schema)?;
    if schema.get("type").is_none()
        && let Some([member]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
    {
        schema = deref(raw, member)?;
    }
    if schema.get("type").and_then(Value::as_str) == Some("array") {
        return Some(Collection::Array);
    }
    let map_values = schema
        .get("additionalProperties")
        .is_some_and(|a| *a != Value::Bool(false));
    let no_properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(|p| p.is_empty());
    (map_values && no_properties).then_some(Collection::Map)
}

/// A component schema by name, any other schema by its JSON pointer.
fn schema_name(pointer: &str) -> String {
    match pointer.strip_prefix("/components/schemas/") {
        Some(name) if !name.contains('/') => name.replace("~1", "/").replace("~0", "~"),
        _ => format!("#{pointer}"),
    }
}

/// Server-owned enums stay open: a schema listing `x-known-values` must be a
/// plain string without `enum`, so a value added later still decodes; and
/// known values written only in prose must also be listed, so tests can
/// substitute an unknown one.
fn open_enums(raw: &Value, pointer: &str, value: &Value, findings: &mut Vec<Finding>) {
    match value {
        Value::Object(object) => {
            let known = object.get("x-known-values");
            let prose = object
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| d.to_lowercase().contains("known values"));
            let is_string = object.get("type").and_then(Value::as_str) == Some("string");
            let mut report = |at: String, message: &str| {
                findings.push(Finding::new(
                    at,
                    locate(raw, pointer),
                    format!("{message} (at #{pointer})"),
                ))
            };
            if known.is_some() && (!is_string || object.contains_key("enum")) {
                report(
                    format!("{pointer}/x-known-values"),
                    "`x-known-values` belongs on an open `type: string` schema without `enum`",
                );
            }
            if known.is_some_and(|k| !k.is_array()) {
                report(
                    format!("{pointer}/x-known-values"),
                    "`x-known-values` must be a list",
                );
            }
            let items_known = object
                .get("items")
                .is_some_and(|i| i.get("x-known-values").is_some());
            if prose && is_string && known.is_none() && !items_known {
                report(
                    format!("{pointer}/description"),
                    "the description lists known values but the schema has no `x-known-values`",
                );
            }
            for (key, child) in object {
                if key == "example" || key == "examples" {
                    continue;
                }
                let child_pointer = format!("{pointer}/{}", pointer_token(key));
                open_enums(raw, &child_pointer, child, findings);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                open_enums(raw, &format!("{pointer}/{index}"), child, findings);
            }
        }
        _ => {}
    }
}

fn dangling_refs(raw: &Value, pointer: &str, value: &Value, findings: &mut Vec<Finding>) {
    match value {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str)
                && resolve(raw, reference).is_none()
            {
                findings.push(Finding::new(
                    format!("{pointer}/$ref"),
                    locate(raw, pointer),
                    format!("unresolved $ref `{reference}`"),
                ));
            }
            for (key, child) in object {
                // Examples are data, not schema: a `$ref` key inside one is content.
                if key == "example" {
                    continue;
                }
                let child_pointer = format!("{pointer}/{}", pointer_token(key));
                dangling_refs(raw, &child_pointer, child, findings);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                dangling_refs(raw, &format!("{pointer}/{index}"), child, findings);
            }
        }
        _ => {}
    }
}

/// Names the operation a JSON pointer falls in, or the pointer itself.
fn locate(raw: &Value, pointer: &str) -> String {
    operations(raw)
        .into_iter()
        .find(|op| {
            let prefix = op.pointer();
            pointer == prefix || pointer.starts_with(&(prefix + "/"))
        })
        .map(|op| op.describe())
        .unwrap_or_else(|| format!("#{pointer}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_with(path_item: Value) -> Value {
        json!({
            "openapi": "3.0.3",
            "paths": { "/api/v1/things": path_item },
            "components": {
                "responses": { "Error": { "description": "error", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/ErrorResponse" } } } } },
                "schemas": {
                    "ErrorResponse": { "type": "object", "properties": { "status": { "type": "string" } } },
                    "Thing": { "type": "object", "required": ["status"], "properties": {
                        "status": { "type": "string" }, "count": { "type": "integer" } } }
                }
            }
        })
    }

    fn ok_response(example: Value) -> Value {
        json!({ "description": "ok", "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/Thing" }, "example": example } } })
    }

    fn operation(id: &str) -> Value {
        json!({
            "operationId": id,
            "responses": {
                "200": ok_response(json!({ "status": "ok", "count": 1 })),
                "4XX": { "$ref": ERROR_RESPONSE_REF },
                "5XX": { "$ref": ERROR_RESPONSE_REF }
            }
        })
    }

    fn messages(spec: &Value) -> Vec<String> {
        lint(spec).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_clean_spec_has_no_findings() {
        let spec = spec_with(json!({ "get": operation("list_things") }));
        assert_eq!(messages(&spec), Vec::<String>::new());
    }

    #[test]
    fn duplicate_operation_ids_name_both_operations() {
        let spec = spec_with(json!({ "get": operation("things"), "put": operation("things") }));
        assert_eq!(
            messages(&spec),
            [
                "PUT /api/v1/things (things): duplicate operationId `things`, also used by GET /api/v1/things (things)"
            ]
        );
    }

    #[test]
    fn default_response_is_rejected() {
        let mut op = operation("list_things");
        op["responses"]["default"] = json!({ "$ref": ERROR_RESPONSE_REF });
        let spec = spec_with(json!({ "get": op }));
        assert_eq!(
            messages(&spec),
            [
                "GET /api/v1/things (list_things): has a `default` response; use `4XX` and `5XX` instead"
            ]
        );
    }

    #[test]
    fn missing_or_wrong_error_envelope_is_reported() {
        let mut op = operation("list_things");
        op["responses"].as_object_mut().unwrap().remove("5XX");
        op["responses"]["4XX"] = json!({ "description": "plain" });
        let spec = spec_with(json!({ "get": op }));
        assert_eq!(
            messages(&spec),
            [
                "GET /api/v1/things (list_things): `4XX` response is not the error envelope (`#/components/responses/Error`)",
                "GET /api/v1/things (list_things): no `5XX` response with the error envelope",
            ]
        );
    }

    #[test]
    fn multipart_bodies_are_rejected() {
        let mut op = operation("upload_thing");
        op["requestBody"] =
            json!({ "content": { "multipart/form-data": { "schema": { "type": "object" } } } });
        let spec = spec_with(json!({ "post": op }));
        assert_eq!(
            messages(&spec),
            [
                "POST /api/v1/things (upload_thing): request body is `multipart/form-data`; progenitor cannot generate it, write the call by hand in cm-api"
            ]
        );
    }

    #[test]
    fn dangling_refs_name_the_operation() {
        let mut op = operation("list_things");
        op["responses"]["200"]["content"]["application/json"]["schema"] =
            json!({ "$ref": "#/components/schemas/Missing" });
        let spec = spec_with(json!({ "get": op }));
        let found = messages(&spec);
        assert!(
            found.contains(
                &"GET /api/v1/things (list_things): unresolved $ref `#/components/schemas/Missing`"
                    .to_owned()
            ),
            "{found:?}"
        );
    }

    #[test]
    fn invalid_and_missing_examples_are_reported() {
        let mut op = operation("list_things");
        op["responses"]["200"] = ok_response(json!({ "status": "ok", "count": "many" }));
        op["requestBody"] = json!({ "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/Thing" } } } });
        let spec = spec_with(json!({ "post": op }));
        let found = messages(&spec);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with(
            "POST /api/v1/things (list_things): response 200 example does not match its schema at /count: "
        ), "{found:?}");
        assert_eq!(
            found[1],
            "POST /api/v1/things (list_things): request body `application/json` has no example"
        );
    }

    #[test]
    fn known_values_must_be_open_and_listed() {
        let mut spec = spec_with(json!({ "get": operation("list_things") }));
        let thing = &mut spec["components"]["schemas"]["Thing"]["properties"];
        thing["kind"] = json!({ "type": "string", "enum": ["a"], "x-known-values": ["a"] });
        thing["mode"] = json!({ "type": "string", "description": "Known values: `x`, `y`." });
        assert_eq!(
            messages(&spec),
            [
                "#/components/schemas/Thing/properties/kind: `x-known-values` belongs on an open `type: string` schema without `enum` (at #/components/schemas/Thing/properties/kind)",
                "#/components/schemas/Thing/properties/mode: the description lists known values but the schema has no `x-known-values` (at #/components/schemas/Thing/properties/mode)",
            ]
        );
    }

    fn required_findings(spec: &Value) -> Vec<String> {
        messages(spec)
            .into_iter()
            .filter(|m| m.contains(" is required and "))
            .collect()
    }

    #[test]
    fn required_and_nullable_in_a_success_schema_is_reported() {
        let mut spec = spec_with(json!({
            "get": operation("get_thing"),
            "post": {
                "operationId": "create_input",
                "requestBody": { "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Input" }, "example": {} } } },
                "responses": {
                    "204": { "description": "done" },
                    "4XX": { "$ref": ERROR_RESPONSE_REF },
                    "5XX": { "$ref": ERROR_RESPONSE_REF }
                }
            }
        }));
        let schemas = &mut spec["components"]["schemas"];
        schemas["Thing"]["required"] = json!(["status", "owner", "note", "parent", "count"]);
        let thing = &mut schemas["Thing"]["properties"];
        thing["owner"] =
            json!({ "anyOf": [{ "$ref": "#/components/schemas/Owner" }, { "enum": [null] }] });
        thing["note"] = json!({ "type": "string", "nullable": true });
        thing["parent"] = json!({ "$ref": "#/components/schemas/MaybeOwner" });
        thing["optional"] = json!({ "type": "string", "nullable": true });
        schemas["Owner"] = json!({ "type": "object", "required": ["name", "nick"], "properties": {
            "name": { "type": "string" }, "nick": { "type": "string", "nullable": true } } });
        schemas["MaybeOwner"] = json!({ "type": "object", "nullable": true, "properties": {} });
        // Only in a request body: not a success schema.
        schemas["Input"] = json!({ "type": "object", "required": ["maybe"], "properties": {
            "maybe": { "type": "string", "nullable": true } } });
        assert_eq!(
            required_findings(&spec),
            [
                "#/components/schemas/Thing/properties/owner: `Thing` property `owner` is required and `nullable: true`; a key that may be null may also be missing: drop it from `required`",
                "#/components/schemas/Thing/properties/note: `Thing` property `note` is required and `nullable: true`; a key that may be null may also be missing: drop it from `required`",
                "#/components/schemas/Thing/properties/parent: `Thing` property `parent` is required and `nullable: true`; a key that may be null may also be missing: drop it from `required`",
                "#/components/schemas/Owner/properties/nick: `Owner` property `nick` is required and `nullable: true`; a key that may be null may also be missing: drop it from `required`",
            ]
        );
    }

    #[test]
    fn nullable_that_standard_tools_ignore_is_reported() {
        let mut spec = spec_with(json!({ "get": operation("get_thing") }));
        let schemas = &mut spec["components"]["schemas"];
        schemas["Owner"] = json!({ "type": "object", "properties": {} });
        let thing = &mut schemas["Thing"]["properties"];
        thing["legacy"] = json!({ "type": "object", "allOf": [{ "$ref": "#/components/schemas/Owner" }], "nullable": true });
        thing["beside_ref"] = json!({ "$ref": "#/components/schemas/Owner", "nullable": true });
        thing["untyped"] = json!({ "nullable": true });
        thing["fine"] =
            json!({ "anyOf": [{ "$ref": "#/components/schemas/Owner" }, { "enum": [null] }] });
        thing["fine_scalar"] = json!({ "type": "string", "nullable": true });
        let found: Vec<String> = messages(&spec)
            .into_iter()
            .filter(|m| m.contains("ignored by standard"))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        for (property, reason) in [
            ("legacy", "beside `allOf`"),
            ("beside_ref", "beside `$ref`"),
            ("untyped", "without `type`"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|m| m.contains(&format!("/properties/{property})")) && m.contains(reason)),
                "{property}: {found:?}"
            );
        }
    }

    #[test]
    fn required_collections_are_reported_except_the_top_level_payload() {
        let mut spec = spec_with(json!({ "get": operation("list_things") }));
        let schemas = &mut spec["components"]["schemas"];
        schemas["Thing"]["required"] = json!(["status", "items", "by_name", "fixed", "wrapped"]);
        let thing = &mut schemas["Thing"]["properties"];
        thing["items"] =
            json!({ "type": "array", "items": { "$ref": "#/components/schemas/Item" } });
        thing["by_name"] =
            json!({ "type": "object", "additionalProperties": { "type": "integer" } });
        thing["fixed"] = json!({ "type": "object", "additionalProperties": false });
        thing["wrapped"] = json!({ "allOf": [{ "$ref": "#/components/schemas/Tags" }] });
        schemas["Tags"] = json!({ "type": "array", "items": { "type": "string" } });
        schemas["Item"] = json!({ "type": "object", "required": ["tags"], "properties": {
            "tags": { "$ref": "#/components/schemas/Tags" } } });
        let map = "#/components/schemas/Thing/properties/by_name: `Thing` property `by_name` is required and a map; collections are optional, with `default: {}`";
        let item = "#/components/schemas/Item/properties/tags: `Item` property `tags` is required and an array; collections are optional, with `default: []`";
        // Thing is the top-level schema of list_things: its arrays are payload.
        assert_eq!(required_findings(&spec), [map, item]);

        // Reached inside another operation's response, Thing has no exception.
        let mut envelope = operation("get_wrapper");
        envelope["responses"]["200"]["content"]["application/json"]["schema"] = json!({ "type": "object", "required": ["thing"], "properties": {
                "thing": { "$ref": "#/components/schemas/Thing" } } });
        spec["paths"]["/api/v1/wrapper"] = json!({ "get": envelope });
        let found = required_findings(&spec);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.contains(&"#/components/schemas/Thing/properties/items: `Thing` property `items` is required and an array; collections are optional, with `default: []`".to_owned()), "{found:?}");
        assert!(found.contains(&"#/components/schemas/Thing/properties/wrapped: `Thing` property `wrapped` is required and an array; collections are optional, with `default: []`".to_owned()), "{found:?}");
    }
}
