//! OpenAPI 3.0 schema objects as JSON Schema, so examples can be checked
//! with a standard validator.
//!
//! OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4/5. The only
//! difference that changes what validates is `nullable: true`, read as
//! OpenAPI 3.0.3 defines it (and as standard validators do): it adds `"null"`
//! to the `type` of its own schema object, and only when that object has a
//! `type`. Every other keyword of the object still applies to a `null`: an
//! `enum` without `null`, or an `allOf: [$ref]` to an object schema, rejects
//! it, and `nullable` beside a `$ref` or without `type` changes nothing.
//! (typify reads `nullable` more loosely; `spec/NOTES.md` records the form
//! both readings agree on.) Keywords JSON Schema does not know (`example`,
//! `discriminator`, `x-*`) are ignored by the validator.

use serde_json::{Map, Value, json};

/// Keywords whose value is a single subschema.
const SCHEMA_KEYWORDS: [&str; 3] = ["items", "not", "additionalProperties"];
/// Keywords whose value is a list of subschemas.
const SCHEMA_LIST_KEYWORDS: [&str; 3] = ["allOf", "anyOf", "oneOf"];

/// Converts one OpenAPI schema object (which may contain `$ref`s to
/// `#/components/schemas/...`) to JSON Schema.
pub fn convert(schema: &Value) -> Value {
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

/// Validates instances against schemas of one spec, converting the spec's
/// component schemas once rather than per example.
#[derive(Debug, Clone)]
pub struct Validator {
    components: Value,
}

impl Validator {
    /// Converts every component schema of `spec`.
    pub fn new(spec: &Value) -> Self {
        let components: Map<String, Value> = spec
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|schemas| {
                schemas
                    .iter()
                    .map(|(k, v)| (k.clone(), convert(v)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            components: json!({ "schemas": components }),
        }
    }

    /// A self-contained JSON Schema document for `schema`: the converted
    /// schema plus the converted components, so `#/components/schemas/X`
    /// refs resolve inside it.
    pub fn document(&self, schema: &Value) -> Value {
        json!({ "allOf": [convert(schema)], "components": self.components })
    }

    /// Validates `instance` against the OpenAPI `schema`. Returns one message
    /// per failure, each starting with the JSON pointer into `instance` where
    /// it failed; an empty list means valid.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let document = self.document(schema);
        let validator = match jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&document)
        {
            Ok(validator) => validator,
            Err(error) => return vec![format!("schema is not valid JSON Schema: {error}")],
        };
        let mut messages = Vec::new();
        for error in validator.iter_errors(instance) {
            describe(&error, &mut messages);
        }
        messages
    }
}

/// Validates `instance` against the OpenAPI `schema` of `spec`; see
/// [`Validator::validate`]. Build a [`Validator`] to check many examples.
pub fn validate(spec: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    Validator::new(spec).validate(schema, instance)
}

/// One message per failure. A non-null value failing a nullable reference
/// (`anyOf: [schema, {enum: [null]}]`) fails the `anyOf`; report why it
/// failed `schema` instead, which names the field that is really wrong.
fn describe(error: &jsonschema::ValidationError<'_>, messages: &mut Vec<String>) {
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
                describe(inner, messages);
            }
            return;
        }
    }
    let pointer = error.instance_path().to_string();
    let pointer = if pointer.is_empty() {
        "/".to_owned()
    } else {
        pointer
    };
    messages.push(format!("{pointer}: {error}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({
            "components": { "schemas": {
                "Source": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": { "type": "string" },
                        "updated_at": { "type": "string", "format": "date-time" },
                        "parent": { "anyOf": [{ "$ref": "#/components/schemas/Source" }, { "enum": [null] }] },
                        "legacy_parent": { "type": "object", "allOf": [{ "$ref": "#/components/schemas/Source" }], "nullable": true },
                        "bucket_id": { "type": "string", "nullable": true },
                        "kind": { "type": "string", "nullable": true, "enum": ["a", "b"] },
                        "ref_nullable": { "$ref": "#/components/schemas/Source", "nullable": true }
                    }
                }
            }}
        })
    }

    #[test]
    fn nullable_reference_accepts_null_and_the_referenced_shape() {
        let schema = json!({ "$ref": "#/components/schemas/Source" });
        assert!(validate(&spec(), &schema, &json!({ "name": "a", "parent": null })).is_empty());
        assert!(
            validate(
                &spec(),
                &schema,
                &json!({ "name": "a", "parent": { "name": "b" } })
            )
            .is_empty()
        );
    }

    #[test]
    fn nullable_adds_null_to_the_type_of_its_own_schema_only() {
        let schema = json!({ "$ref": "#/components/schemas/Source" });
        let spec = spec();
        assert!(validate(&spec, &schema, &json!({ "name": "a", "bucket_id": null })).is_empty());
        // OpenAPI 3.0.3: the `allOf` still applies to `null`, and rejects it.
        let errors = validate(
            &spec,
            &schema,
            &json!({ "name": "a", "legacy_parent": null }),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("/legacy_parent: "), "{errors:?}");
        // An `enum` without `null` rejects it.
        let errors = validate(&spec, &schema, &json!({ "name": "a", "kind": null }));
        assert_eq!(errors.len(), 1, "{errors:?}");
        // `nullable` beside a `$ref` is ignored.
        let errors = validate(
            &spec,
            &schema,
            &json!({ "name": "a", "ref_nullable": null }),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn failures_name_the_json_pointer() {
        let schema = json!({ "$ref": "#/components/schemas/Source" });
        let errors = validate(
            &spec(),
            &schema,
            &json!({ "name": "a", "parent": { "name": 7 } }),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("/parent/name: "), "{errors:?}");
    }

    #[test]
    fn timestamps_are_checked_as_rfc3339() {
        let schema = json!({ "$ref": "#/components/schemas/Source" });
        let errors = validate(
            &spec(),
            &schema,
            &json!({ "name": "a", "updated_at": "yesterday" }),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("/updated_at: "), "{errors:?}");
    }

    #[test]
    fn missing_required_field_fails_at_the_root() {
        let schema = json!({ "$ref": "#/components/schemas/Source" });
        let errors = validate(&spec(), &schema, &json!({}));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("/: "), "{errors:?}");
        assert!(errors[0].contains("name"), "{errors:?}");
    }
}
