//! The reference check: every response property of the vendor's reference
//! is modelled by our spec (or listed in `spec/NOTES.md` with its reason),
//! and every property the reference marks nullable takes `null` under a
//! standard OpenAPI 3.0 validator.

use std::collections::BTreeSet;

use cm_api_contract_tests::reference::{
    VendorType, child, left_out, our_operation_id, parse_type, properties, reference,
};
use cm_api_contract_tests::{operation, spec};
use serde_json::Value;
use xtask::json_schema::Validator;

#[derive(Default)]
struct Findings {
    missing: BTreeSet<String>,
    not_nullable: BTreeSet<String>,
    /// (vendor schema, our schema as JSON) pairs already walked.
    seen: BTreeSet<(String, String)>,
    checked: usize,
}

fn walk(
    validator: &Validator,
    left_out: &BTreeSet<String>,
    findings: &mut Findings,
    operation_id: &str,
    pointer: &str,
    vendor_schema: &str,
    ours: &'static Value,
) {
    let Some(vendor) = reference().schemas.get(vendor_schema) else {
        return;
    };
    if !findings
        .seen
        .insert((vendor_schema.to_owned(), ours.to_string()))
    {
        return;
    }
    // A `oneOf` of models: each variant's fields, against the same schema
    // of ours (one record, or a union whose branches `properties` merges).
    for variant in &vendor.variants {
        if let VendorType::Model(name) = parse_type(variant) {
            walk(
                validator,
                left_out,
                findings,
                operation_id,
                pointer,
                name,
                ours,
            );
        }
    }
    let modelled = properties(ours);
    for field in &vendor.fields {
        let at = format!("{pointer}/{}", field.name);
        let entry = format!("{vendor_schema}.{}", field.name);
        findings.checked += 1;
        let Some(property) = modelled.get(field.name.as_str()).copied() else {
            if !left_out.contains(&entry) {
                findings
                    .missing
                    .insert(format!("{operation_id}: {at} ({entry}) is not in the spec"));
            }
            continue;
        };
        if field.nullable && !validator.validate(property, &Value::Null).is_empty() {
            findings.not_nullable.insert(format!(
                "{operation_id}: {at} ({entry}) is nullable in the reference, not in the spec"
            ));
        }
        // Into models, through arrays and maps.
        let mut type_ = field.type_.as_str();
        let mut schema = property;
        let mut at = at;
        loop {
            match parse_type(type_) {
                VendorType::Model(name) => {
                    walk(
                        validator,
                        left_out,
                        findings,
                        operation_id,
                        &at,
                        name,
                        schema,
                    );
                    break;
                }
                kind @ (VendorType::Array(inner) | VendorType::Map(inner)) => {
                    let Some(next) = child(schema, kind) else {
                        break;
                    };
                    schema = next;
                    type_ = inner;
                    at.push_str("/*");
                }
                VendorType::Scalar(_) => break,
            }
        }
    }
}

#[test]
fn every_reference_response_property_is_in_the_spec_and_nullable_where_the_reference_says() {
    let validator = Validator::new(spec());
    let left_out = left_out();
    let mut findings = Findings::default();
    let mut unmatched = Vec::new();
    for vendor in &reference().operations {
        let Some(operation_id) = our_operation_id(vendor) else {
            unmatched.push(format!("{} {}", vendor.method, vendor.path));
            continue;
        };
        let Some(response) = vendor.response.as_deref() else {
            continue;
        };
        let Some(schema) = cm_api_contract_tests::success_schema(operation_id) else {
            continue; // a file download
        };
        let _ = operation(operation_id);
        walk(
            &validator,
            left_out,
            &mut findings,
            operation_id,
            "",
            response,
            schema,
        );
    }
    let mut failures: Vec<String> = unmatched
        .iter()
        .map(|route| format!("the reference's {route} has no operation in the spec"))
        .collect();
    failures.extend(findings.missing.iter().cloned());
    failures.extend(findings.not_nullable.iter().cloned());
    assert!(
        failures.is_empty(),
        "{} finding(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 212 operations; each (reference schema, spec schema) pair is walked once.
    assert!(
        findings.checked > 1_500,
        "only {} reference properties checked",
        findings.checked
    );
}

#[test]
fn the_notes_list_of_left_out_properties_names_reference_fields() {
    for entry in left_out() {
        let (schema, field) = entry
            .split_once('.')
            .unwrap_or_else(|| panic!("`{entry}` is not `Schema.field`"));
        let known = reference()
            .schemas
            .get(schema)
            .is_some_and(|s| s.fields.iter().any(|f| f.name == field));
        assert!(
            known,
            "NOTES lists `{entry}`, which the reference does not have"
        );
    }
}
