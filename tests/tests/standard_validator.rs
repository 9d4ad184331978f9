//! The two readings of the spec agree: what progenitor's generated types
//! accept, a standard OpenAPI 3.0 validator (`nullable` as OpenAPI 3.0.3
//! defines it, `xtask::json_schema`) accepts too. The spec is what users feed
//! to docs portals, API explorers and other generators.
//!
//! Every example is checked by `examples.rs`, and every minimal and null-pass
//! body by `forward_compat.rs`, with the same validator.

use cm_api_contract_tests::cases::case;
use cm_api_contract_tests::harness::{Answer, exercise};
use cm_api_contract_tests::{spec, success_schema};
use serde_json::{Value, json};
use xtask::json_schema::Validator;

fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Issue 20, finding 3: `null` where the server sends it (a source without
/// a bucket or transform tag, an enabled integration's `disabled_reason`,
/// the last page of labellings) validates, and decodes.
#[tokio::test]
async fn nulls_the_server_sends_validate_and_decode() {
    let validator = Validator::new(spec());
    let answers = [
        (
            "get_source",
            json!({ "status": "ok", "source": {
                "id": "18ba5ce699f8da1f", "owner": "acme", "name": "inbox",
                "bucket_id": null, "email_transform_tag": null
            } }),
        ),
        (
            "get_integration",
            json!({ "status": "ok", "integration": {
                "id": "4f1c2a9e7b3d8e10", "owner": "acme", "name": "exchange",
                "disabled_reason": null
            } }),
        ),
        (
            "get_labellings",
            json!({ "status": "ok", "results": [], "after": null }),
        ),
    ];
    let mut failures = Vec::new();
    for (operation_id, body) in answers {
        let schema = success_schema(operation_id).expect("JSON success");
        for error in validator.validate(schema, &body) {
            failures.push(format!("{operation_id}: standard validator: {error}"));
        }
        if let Err(error) = exercise(&case(operation_id), Answer::json(200, &body)).await {
            failures.push(format!("{operation_id}: generated types: {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 20, finding 4: a nullable reference takes `null` under both
/// readings: a label group's field with `rule_set: null`, as the vendor's
/// taxonomy files carry it, in a request and in an answer.
#[test]
fn a_null_rule_set_validates_and_decodes_as_none() {
    let validator = Validator::new(spec());
    let field = json!({ "name": "Amount", "kind": "money", "rule_set": null });
    let stored_field = json!({ "id": "0000000000000001", "field_id": "6f2b8d4a0c1e3f57",
        "name": "Amount", "kind": "money", "rule_set": null });
    let mut failures = Vec::new();
    for (schema, field) in [
        ("ExtractionFieldDefNew", &field),
        ("ExtractionFieldDef", &stored_field),
    ] {
        for error in validator.validate(&component(schema), field) {
            failures.push(format!("{schema}: standard validator: {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let new: cm_api::types::ExtractionFieldDefNew =
        serde_json::from_value(field.clone()).expect("decodes");
    assert!(new.rule_set.is_none());
    let stored: cm_api::types::ExtractionFieldDef =
        serde_json::from_value(stored_field).expect("decodes");
    assert!(stored.rule_set.is_none());
    // And the referenced shape still validates, and decodes as `Some`.
    let with_rules =
        json!({ "name": "Amount", "rule_set": { "name": "checks", "criticality": "Must" } });
    assert!(
        validator
            .validate(&component("ExtractionFieldDefNew"), &with_rules)
            .is_empty()
    );
    let new: cm_api::types::ExtractionFieldDefNew =
        serde_json::from_value(with_rules).expect("decodes");
    assert!(new.rule_set.is_some());
}

/// Every property written as a nullable reference takes `null` under the
/// standard reading: no `nullable` that only typify honours.
#[test]
fn every_nullable_property_takes_null_under_the_standard_reading() {
    let validator = Validator::new(spec());
    let schemas = spec()["components"]["schemas"]
        .as_object()
        .expect("schemas");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, schema) in schemas {
        for (property, property_schema) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if property_schema.get("nullable") != Some(&Value::Bool(true)) {
                continue;
            }
            checked += 1;
            for error in validator.validate(property_schema, &Value::Null) {
                failures.push(format!("{name}.{property}: {error}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 50, "only {checked} nullable properties");
}
