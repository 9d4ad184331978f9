//! What a newer server may send still decodes: unknown fields, absent
//! optional fields, values of open enums (`x-known-values`) added later. A missing required field is a decode error that names
//! the field, never a panic.

use cm_api_contract_tests::cases::{case, cases};
use cm_api_contract_tests::full_body;
use cm_api_contract_tests::harness::{Answer, Canned, Case, exercise};
use cm_api_contract_tests::reference::vendor_response_for;
use cm_api_contract_tests::{deref, spec, success_example, success_schema};
use serde_json::{Map, Value, json};
use xtask::json_schema::Validator;

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

/// Like [`shape`], and for a `oneOf`/`anyOf`, the first branch that can
/// describe `value`: a record for an object, a list for an array. A value
/// no branch describes keeps the union schema, and is left as it is.
fn shape_of<'s>(schema: &'s Value, value: &Value) -> &'s Value {
    let schema = shape(schema);
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array);
    let Some(branches) = branches else {
        return schema;
    };
    branches
        .iter()
        .map(shape)
        .find(|branch| match value {
            Value::Object(_) => branch.get("properties").is_some(),
            Value::Array(_) => branch.get("items").is_some(),
            _ => false,
        })
        .unwrap_or(schema)
}

/// Applies `edit` to every object in `value` whose schema declares
/// `properties` (records, not free-form maps), depth first.
fn edit_records(
    schema: &Value,
    value: &Value,
    edit: &dyn Fn(&Value, &mut Map<String, Value>),
) -> Value {
    let schema = shape_of(schema, value);
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

/// The error's one-line `Display` followed by its `source()` chain, as
/// `anyhow`'s `{:#}` prints it: the decoder's own message (which field) is
/// the cause, not part of the error's line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// Where decoding failed, from the client's error: the operation and the
/// body path of the first field the generated type rejected.
fn decode_failure(operation_id: &str, error: &cm_api::Error) -> String {
    match error {
        cm_api::Error::Decode { path, source, .. } => format!(
            "{operation_id}: at {}: {source}",
            path.as_deref()
                .map(json_pointer)
                .unwrap_or_else(|| "/".into())
        ),
        other => format!("{operation_id}: {other}"),
    }
}

/// `results[0].comment.messages` as the JSON pointer
/// `/results/0/comment/messages`.
fn json_pointer(path: &str) -> String {
    path.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|part| !part.is_empty())
        .map(|part| format!("/{part}"))
        .collect()
}

#[test]
fn decode_paths_read_as_json_pointers() {
    assert_eq!(
        json_pointer("results[0].comment.messages"),
        "/results/0/comment/messages"
    );
    assert_eq!(json_pointer("status"), "/status");
}

/// The minimal body: every record of every operation's success example
/// keeps only its `required` members, at every depth. Generated from the
/// spec, so an operation added later is covered without a new case.
#[tokio::test]
async fn every_success_body_decodes_with_only_its_required_fields() {
    let validator = Validator::new(spec());
    let mut failures = Vec::new();
    let mut removed = 0;
    for (case, schema, example) in json_cases() {
        let minimal = edit_records(schema, example, &|record_schema, record| {
            let keep = required(record_schema);
            record.retain(|key, _| keep.contains(&key.as_str()));
        });
        removed += example.to_string().len() - minimal.to_string().len();
        if let Err(error) = exercise(&case, Answer::json(200, &minimal)).await {
            failures.push(decode_failure(case.operation_id, &error));
        }
        // The standard reading of the spec accepts it too.
        for error in validator.validate(schema, &minimal) {
            failures.push(format!(
                "{}: standard validator: {error}",
                case.operation_id
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Most of every example is optional; far less removed means the walk broke.
    assert!(
        removed > 20_000,
        "only {removed} bytes of optional members removed"
    );
}

/// Validates each `(operation, schema, body)` under the standard reading, in
/// one document (one schema compilation, not one per operation): each
/// failure reads `operation_id: standard validator: /pointer ...`.
fn validate_all(validator: &Validator, bodies: &[(&str, &Value, Value)]) -> Vec<String> {
    let schema = json!({
        "type": "object",
        "properties": bodies.iter().map(|(id, schema, _)| (id.to_string(), (*schema).clone())).collect::<Map<_, _>>(),
    });
    let instance: Map<String, Value> = bodies
        .iter()
        .map(|(id, _, body)| (id.to_string(), body.clone()))
        .collect();
    validator
        .validate(&schema, &Value::Object(instance))
        .into_iter()
        .map(|error| {
            let (pointer, message) = error.split_once(": ").unwrap_or(("", &error));
            let pointer = pointer.strip_prefix('/').unwrap_or(pointer);
            let (id, rest) = pointer.split_once('/').unwrap_or((pointer, ""));
            format!("{id}: standard validator: /{rest}: {message}")
        })
        .collect()
}

/// The full body: every record of every operation's success example with
/// every optional property present, those the spec declares and those the
/// vendor's reference lists (`full_body::build`). It decodes, re-encodes
/// with nothing dropped or changed (each loss is reported as
/// `operation_id: /json/pointer`), and validates under the standard reading.
/// Generated from the spec, so an operation added later is covered.
#[tokio::test]
async fn every_success_body_keeps_every_optional_property_it_is_sent() {
    let validator = Validator::new(spec());
    let mut failures = Vec::new();
    let (mut from_spec, mut from_reference, mut matched) = (0, 0, 0);
    let mut bodies = Vec::new();
    for (case, schema, example) in json_cases() {
        let vendor = vendor_response_for(case.operation_id);
        let full = full_body::build(schema, vendor, example);
        from_spec += full.from_spec;
        from_reference += full.from_reference;
        matched += full.matched_models;
        match exercise(&case, Answer::json(200, &full.body)).await {
            Ok(decoded) => failures.extend(
                full_body::losses(&full.body, &decoded)
                    .into_iter()
                    .map(|loss| format!("{}: {loss}", case.operation_id)),
            ),
            Err(error) => failures.push(decode_failure(case.operation_id, &error)),
        }
        bodies.push((case.operation_id, schema, full.body));
    }
    // The standard reading of the spec accepts them too.
    failures.extend(validate_all(&validator, &bodies));
    assert!(
        failures.is_empty(),
        "{} loss(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most records of the examples leave optional members out, and most
    // operations have a reference model; far fewer means the walk broke.
    assert!(from_spec > 1_000, "only {from_spec} optional members added");
    assert!(
        matched > 500,
        "only {matched} records matched with the reference"
    );
    eprintln!(
        "full bodies: {from_spec} members added from the spec, {from_reference} from the reference, {matched} records matched"
    );
}

/// The full-body pass fails on a property the spec does not model, naming
/// the JSON pointer, and on a value that comes back changed.
#[tokio::test]
async fn the_full_body_pass_names_what_decoding_dropped() {
    let case = case("get_source");
    let mut served = success_example("get_source").expect("example").clone();
    served["source"]["field_the_spec_lacks"] = json!({ "a/b": 1 });
    served["source"]["bucket_id"] = Value::Null;
    let decoded = exercise(&case, Answer::json(200, &served))
        .await
        .expect("decodes");
    assert_eq!(
        full_body::losses(&served, &decoded),
        ["/source/field_the_spec_lacks"]
    );
    let mut changed = decoded.clone();
    changed["source"]["name"] = json!("other");
    changed["status"] = json!("ok"); // unchanged
    assert_eq!(
        full_body::losses(&decoded, &changed),
        [format!(
            "/source/name: sent {}, got back \"other\"",
            decoded["source"]["name"]
        )]
    );
    let mut numbers = json!({ "n": 5120.0, "m": [1, {"x~y": 2}] });
    assert!(full_body::losses(&numbers, &json!({ "n": 5120, "m": [1.0, {"x~y": 2}] })).is_empty());
    numbers["m"][1] = json!({});
    assert_eq!(
        full_body::losses(&json!({ "m": [1, {"x~y": 2}] }), &numbers),
        ["/m/1/x~0y"]
    );
}

/// A property the reference lists and the spec does not model is added to
/// the full body with the reference's type, and its loss is named. Here
/// `get_source`'s body is completed as if the reference's model were
/// `GetDatasetResponse`, whose `dataset` our `get_source` does not have.
#[tokio::test]
async fn the_full_body_pass_adds_and_names_a_reference_property_the_spec_lacks() {
    let schema = success_schema("get_source").expect("schema");
    let example = success_example("get_source").expect("example");
    let full = full_body::build(schema, Some("GetDatasetResponse"), example);
    assert_eq!(full.from_reference, 1);
    // Built from the reference's `Dataset`: every field, with its type.
    let dataset = full.body["dataset"].as_object().expect("an object");
    assert!(dataset.len() > 10, "{dataset:?}");
    assert!(dataset["name"].is_string());
    // The spec's own record is completed too.
    assert!(full.from_spec > 0);
    let decoded = exercise(&case("get_source"), Answer::json(200, &full.body))
        .await
        .expect("decodes");
    assert_eq!(full_body::losses(&full.body, &decoded), ["/dataset"]);
}

/// `nullable: true`, or a nullable reference (`anyOf: [$ref, {enum: [null]}]`).
fn is_nullable(property: &Value) -> bool {
    let Some(property) = deref(spec(), property) else {
        return false;
    };
    property.get("nullable").and_then(Value::as_bool) == Some(true)
        || ["anyOf", "oneOf"].iter().any(|key| {
            property
                .get(*key)
                .and_then(Value::as_array)
                .is_some_and(|branches| {
                    branches
                        .iter()
                        .any(|b| b.get("enum") == Some(&json!([null])))
                })
        })
}

/// Every property the spec marks `nullable` is sent as `null`, whether the
/// example had it or not, in every record of every success body.
#[tokio::test]
async fn every_nullable_field_decodes_as_null() {
    let validator = Validator::new(spec());
    let mut failures = Vec::new();
    let mut nulled = 0usize;
    for (case, schema, example) in json_cases() {
        let count = std::cell::Cell::new(0usize);
        let with_nulls = edit_records(schema, example, &|record_schema, record| {
            let properties = record_schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten();
            for (name, property) in properties {
                if is_nullable(property) {
                    record.insert(name.clone(), Value::Null);
                    count.set(count.get() + 1);
                }
            }
        });
        nulled += count.get();
        if let Err(error) = exercise(&case, Answer::json(200, &with_nulls)).await {
            failures.push(decode_failure(case.operation_id, &error));
        }
        // The standard reading of the spec accepts it too.
        for error in validator.validate(schema, &with_nulls) {
            failures.push(format!(
                "{}: standard validator: {error}",
                case.operation_id
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(nulled >= 50, "only {nulled} nullable members set to null");
}

/// A success the platform answers with another 2xx status is still a
/// success: `201` with the documented body, and `204` with no body for the
/// operations that return nothing but `{"status":"ok"}`.
#[tokio::test]
async fn any_2xx_status_is_a_success() {
    let mut failures = Vec::new();
    let mut empty_bodied = 0;
    for (case, schema, example) in json_cases() {
        if let Err(error) = exercise(&case, Answer::json(201, example)).await {
            failures.push(format!("{} as 201: {error}", case.operation_id));
        }
        if schema.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/OkResponse") {
            empty_bodied += 1;
            match exercise(&case, Answer::raw(204, "application/json", b"")).await {
                Ok(value) if value == json!({ "status": "ok" }) => {}
                other => failures.push(format!("{} as 204: {other:?}", case.operation_id)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        empty_bodied >= 10,
        "only {empty_bodied} OkResponse operations"
    );
}

/// A 204 for an operation with a payload is not silently an empty value:
/// it fails to decode, naming the payload.
#[tokio::test]
async fn an_empty_body_for_an_operation_with_a_payload_names_the_payload() {
    let case = case("get_source");
    match exercise(&case, Answer::raw(204, "application/json", b"")).await {
        Err(error @ cm_api::Error::Decode { .. }) => {
            assert!(with_causes(&error).contains("`source`"), "{error}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
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
                if with_causes(&error).contains(&format!("`{field}`")) => {}
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

/// Answers shaped as the vendor's own client has been seen to receive them,
/// each of which a spec that required every documented field rejected.
#[tokio::test]
async fn answers_the_official_client_accepts_decode() {
    let answers = [
        // An older platform: no `updated_properties_only` / `updated_text_changed`.
        (
            "sync_comments",
            json!({ "status": "ok", "new": 3, "updated": 1, "unchanged": 0 }),
        ),
        // A comment without `attachments`, `user_properties` as `null`, and
        // a `null` cursor on the last page.
        (
            "list_source_comments",
            json!({
                "status": "ok",
                "comments": [{
                    "uid": "18ba5ce699f8da1f.0123",
                    "id": "0123",
                    "timestamp": "2026-03-04T09:15:00Z",
                    "user_properties": null,
                    "messages": [{ "body": { "text": "Hello" } }]
                }],
                "continuation": null
            }),
        ),
        // Counts the platform computes as floats.
        (
            "get_source_statistics",
            json!({ "status": "ok", "statistics": { "num_comments": 5120.0 } }),
        ),
        // A project from a deployment that sends no ids or timestamps.
        (
            "list_projects",
            json!({ "status": "ok", "projects": [{ "name": "acme" }] }),
        ),
    ];
    let mut failures = Vec::new();
    for (operation_id, body) in answers {
        if let Err(error) = exercise(&case(operation_id), Answer::json(200, &body)).await {
            failures.push(decode_failure(operation_id, &error));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 20, finding 1: answers the vendor's client takes, with nothing but
/// what it reads. `reset_stream`'s answer is ignored by the vendor's client
/// (`{"status":"ok"}` is enough), and its `upload_document` does not require
/// `attachment_ref`.
#[tokio::test]
async fn bare_answers_the_official_client_accepts_decode() {
    let answers = [
        ("reset_stream", json!({ "status": "ok" })),
        (
            "upload_document",
            json!({ "status": "ok", "comment_id": "0123" }),
        ),
    ];
    let mut failures = Vec::new();
    for (operation_id, body) in answers {
        match exercise(&case(operation_id), Answer::json(200, &body)).await {
            Ok(value) if value == body => {}
            Ok(value) => failures.push(format!("{operation_id}: decoded as {value}")),
            Err(error) => failures.push(decode_failure(operation_id, &error)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 20, finding 2: fields the server sends come back after decoding
/// and re-encoding, instead of being dropped by serde.
#[tokio::test]
async fn fields_the_server_sends_survive_decoding() {
    let answers = [
        (
            "query_bucket_emails",
            json!({ "status": "ok", "emails": [], "continuation": "ZW1h", "more_results": true }),
        ),
        (
            "get_source_statistics",
            json!({ "status": "ok", "statistics": {
                "num_comments": 12.0,
                "label_counts": { "Refund": { "positive": 1.0, "negative": 3.5 } }
            } }),
        ),
    ];
    let mut failures = Vec::new();
    for (operation_id, body) in answers {
        match exercise(&case(operation_id), Answer::json(200, &body)).await {
            Ok(value) if value == body => {}
            Ok(value) => failures.push(format!("{operation_id}: sent {body}, got back {value}")),
            Err(error) => failures.push(decode_failure(operation_id, &error)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
