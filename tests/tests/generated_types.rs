//! The generated Rust types agree with the spec's component schemas: same
//! field names, same required fields, same coarse types. A progenitor or
//! typify change that drops or retypes a field fails here, not in a user's
//! program.

use std::collections::BTreeSet;

use cm_api_contract_tests::{deref, spec};
use serde_json::Value;

/// A schema's shape at the level both sides can agree on.
fn kind(schema: &Value, ref_prefix: &str) -> String {
    // The null branch of a nullable reference, `anyOf: [$ref, {enum: [null]}]`.
    if schema.get("enum") == Some(&serde_json::json!([null])) {
        return "null".into();
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return format!("ref:{}", reference.trim_start_matches(ref_prefix));
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            let kinds: Vec<String> = branches
                .iter()
                .map(|b| kind(b, ref_prefix))
                .filter(|k| k != "null")
                .collect();
            if let [single] = kinds.as_slice() {
                return single.clone();
            }
            return format!("{combinator}({})", kinds.join(","));
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => {
            let types: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            types.join("|")
        }
        _ => "any".into(),
    }
}

fn properties(schema: &Value) -> BTreeSet<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Every disagreement between `document`'s component schemas and the
/// generated types, plus how many fields were compared.
fn drift(document: &Value) -> (Vec<String>, usize) {
    let mut compared = 0;
    let components = document["components"]["schemas"].as_object().unwrap();
    let generated = cm_api_gen::schemas::component_schemas();
    let mut problems = Vec::new();

    let generated_names: BTreeSet<&str> = generated.iter().map(|(name, _)| *name).collect();
    for name in components.keys() {
        if !generated_names.contains(name.as_str()) {
            problems.push(format!("{name}: no generated type"));
        }
    }

    for (name, root) in &generated {
        let ours = deref(document, &components[*name]).unwrap();
        let theirs = serde_json::to_value(&root.schema).unwrap();
        let (ours_props, theirs_props) = (properties(ours), properties(&theirs));
        if ours_props != theirs_props {
            problems.push(format!(
                "{name}: fields differ: spec only {:?}, generated only {:?}",
                ours_props.difference(&theirs_props).collect::<Vec<_>>(),
                theirs_props.difference(&ours_props).collect::<Vec<_>>()
            ));
            continue;
        }
        // A required but nullable field becomes `Option<T>`, which schemars
        // reports as not required; serde still insists on the key.
        let nullable: BTreeSet<String> = ours_props
            .iter()
            .filter(|p| ours["properties"][p.as_str()].get("nullable") == Some(&Value::Bool(true)))
            .cloned()
            .collect();
        let ours_required: BTreeSet<String> =
            required(ours).difference(&nullable).cloned().collect();
        if ours_required != required(&theirs) {
            problems.push(format!(
                "{name}: required fields differ: spec {ours_required:?}, generated {:?}",
                required(&theirs)
            ));
        }
        for property in &ours_props {
            compared += 1;
            let ours_kind = kind(
                &ours["properties"][property.as_str()],
                "#/components/schemas/",
            );
            let theirs_kind = kind(&theirs["properties"][property.as_str()], "#/definitions/");
            if ours_kind != "any" && ours_kind != theirs_kind {
                problems.push(format!(
                    "{name}.{property}: spec {ours_kind}, generated {theirs_kind}"
                ));
            }
        }
    }
    (problems, compared)
}

#[test]
fn generated_types_match_component_schemas() {
    let (problems, compared) = drift(spec());
    assert!(
        problems.is_empty(),
        "{} mismatch(es):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        compared > 500,
        "only {compared} fields compared; the walk is broken"
    );
}

#[test]
fn drift_in_fields_required_sets_and_types_is_reported() {
    let mut document = spec().clone();
    let source = &mut document["components"]["schemas"]["Source"];
    source["properties"]["added_in_spec"] = serde_json::json!({ "type": "string" });
    source["properties"]["name"] = serde_json::json!({ "type": "integer" });
    source["required"] = serde_json::json!(["id"]);
    let removed = document["components"]["schemas"]["Dataset"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    assert!(removed.is_some(), "Dataset has a title field");

    let (problems, _) = drift(&document);

    assert_eq!(
        problems,
        [
            "Dataset: fields differ: spec only [], generated only [\"title\"]",
            "Source: fields differ: spec only [\"added_in_spec\"], generated only []",
        ]
    );
    let mut document = spec().clone();
    document["components"]["schemas"]["Source"]["properties"]["name"] =
        serde_json::json!({ "type": "integer" });
    let (problems, _) = drift(&document);
    assert_eq!(problems, ["Source.name: spec integer, generated string"]);

    let mut document = spec().clone();
    document["components"]["schemas"]["ErrorResponse"]["required"] =
        serde_json::json!(["message", "status"]);
    let (problems, _) = drift(&document);
    assert_eq!(
        problems,
        [
            "ErrorResponse: required fields differ: spec {\"message\", \"status\"}, generated {\"status\"}"
        ]
    );
}
