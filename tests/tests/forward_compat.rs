//! What a newer server may send still decodes: unknown fields, absent
//! optional fields, values of open enums (`x-known-values`) added later. A missing required field is a decode error that names
//! the field, never a panic.

use cm_api_contract_tests::cases::cases;
use cm_api_contract_tests::harness::{Answer, Canned, Case, exercise};
use cm_api_contract_tests::{deref, spec, success_example, success_schema};
use serde_json::{Map, Value, json};

/// Resolves `$ref`s and single-branch `allOf`s down to the schema that
/// describes the value's shape. Other combinators are returned as they are.
fn shape(schema: &Value) -> &Value {
    let mut schema = deref(spec(), schema).expect("refs resolve");
    while let Some([only]) = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        schema = deref(spec(), only).expect("refs resolve");
    }
    schema
}

/// Applies `edit` to every object in `value` whose schema declares
/// `properties` (records, not free-form maps), depth first.
fn edit_records(
    schema: &Value,
    value: &Value,
    edit: &dyn Fn(&Value, &mut Map<String, Value>),
) -> Value {
    let schema = shape(schema);
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let mut out: Map<String, Value> = object
                .iter()
                .map(|(key, child)| {
                    let child_schema = properties
                        .and_then(|p| p.get(key))
                        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()));
                    let child = match child_schema {
                        Some(s) => edit_records(s, child, edit),
                        None => child.clone(),
                    };
                    (key.clone(), child)
                })
                .collect();
            if properties.is_some() {
                edit(schema, &mut out);
            }
            Value::Object(out)
        }
        Value::Array(items) => match schema.get("items") {
            Some(items_schema) => Value::Array(
                items
                    .iter()
                    .map(|i| edit_records(items_schema, i, edit))
                    .collect(),
            ),
            None => value.clone(),
        },
        other => other.clone(),
    }
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The JSON cases, with their success schema and example.
fn json_cases() -> Vec<(Case, &'static Value, &'static Value)> {
    cases()
        .into_iter()
        .filter(|case| matches!(case.response, Canned::Example))
        .map(|case| {
            let schema = success_schema(case.operation_id).expect("JSON success schema");
            let example = success_example(case.operation_id).expect("success example");
            (case, schema, example)
        })
        .collect()
}

#[tokio::test]
async fn unknown_fields_in_every_record_still_decode() {
    let mut failures = Vec::new();
    for (case, schema, example) in json_cases() {
        let newer = edit_records(schema, example, &|_, record| {
            record.insert(
                "field_added_in_2030".into(),
                json!({ "nested": [1, "two", null] }),
            );
        });
        assert_ne!(&newer, example);
        if let Err(error) = exercise(&case, Answer::json(200, &newer)).await {
            failures.push(format!("{}: {error}", case.operation_id));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn records_without_their_optional_fields_still_decode() {
    let mut failures = Vec::new();
    for (case, schema, example) in json_cases() {
        let sparse = edit_records(schema, example, &|record_schema, record| {
            let keep = required(record_schema);
            record.retain(|key, _| keep.contains(&key.as_str()));
        });
        if let Err(error) = exercise(&case, Answer::json(200, &sparse)).await {
            failures.push(format!("{}: {error}", case.operation_id));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_missing_required_field_is_a_decode_error_naming_it() {
    let mut failures = Vec::new();
    for (case, schema, example) in json_cases() {
        let top = shape(schema);
        let names = required(top);
        // Prefer the payload over the envelope's `status` marker.
        let field = names
            .iter()
            .find(|n| **n != "status")
            .or(names.first())
            .copied();
        let Some(field) = field else { continue };
        let mut broken = example.clone();
        broken.as_object_mut().expect("object body").remove(field);
        match exercise(&case, Answer::json(200, &broken)).await {
            Err(error @ cm_api::Error::Decode { .. })
                if error.to_string().contains(&format!("`{field}`")) => {}
            other => failures.push(format!(
                "{} without `{field}`: got {other:?}",
                case.operation_id
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The value a newer server might put in an open enum.
const NEW_ENUM_VALUE: &str = "value_added_in_2030";

/// Replaces every string whose schema lists `x-known-values` by
/// [`NEW_ENUM_VALUE`]; returns how many were replaced.
fn substitute_known_values(schema: &Value, value: &mut Value) -> usize {
    let schema = shape(schema);
    match value {
        Value::String(text) if schema.get("x-known-values").is_some() => {
            *text = NEW_ENUM_VALUE.into();
            1
        }
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            object
                .iter_mut()
                .map(|(key, child)| {
                    match properties
                        .and_then(|p| p.get(key))
                        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()))
                    {
                        Some(s) => substitute_known_values(s, child),
                        None => 0,
                    }
                })
                .sum()
        }
        Value::Array(items) => match schema.get("items") {
            Some(items_schema) => items
                .iter_mut()
                .map(|i| substitute_known_values(items_schema, i))
                .sum(),
            None => 0,
        },
        _ => 0,
    }
}

#[tokio::test]
async fn open_enums_decode_and_keep_a_value_added_later() {
    let mut failures = Vec::new();
    let mut substituted = 0;
    for (case, schema, example) in json_cases() {
        let mut newer = example.clone();
        let count = substitute_known_values(schema, &mut newer);
        if count == 0 {
            continue;
        }
        substituted += count;
        match exercise(&case, Answer::json(200, &newer)).await {
            Ok(value) => {
                let kept = value.to_string().matches(NEW_ENUM_VALUE).count();
                if kept != count {
                    failures.push(format!(
                        "{}: sent {count} new values, {kept} came back",
                        case.operation_id
                    ));
                }
            }
            Err(error) => failures.push(format!("{}: {error}", case.operation_id)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The examples exercise most of the spec's open enums; fewer means the walk broke.
    assert!(
        substituted >= 30,
        "only {substituted} open-enum values substituted"
    );
}
