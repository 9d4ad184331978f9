//! The retry table against the specification: every POST operation has a
//! deliberate row, and every row names an operation that exists.

use std::collections::BTreeMap;

use cm_api::retry::{RETRY_TABLE, RetryClass, retry_class};

/// operation id -> HTTP method, from spec/openapi.yaml.
fn spec_operations() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("spec/openapi.yaml");
    // YAML 1.2 booleans only, as xtask reads the spec: `y` or `on` stay strings.
    let options = serde_saphyr::options! { strict_booleans: true };
    let spec: serde_json::Value =
        serde_saphyr::from_str_with_options(&text, options).expect("valid YAML");
    let mut operations = BTreeMap::new();
    for item in spec["paths"].as_object().expect("paths").values() {
        for (method, operation) in item.as_object().expect("path item") {
            if let Some(id) = operation.get("operationId").and_then(|v| v.as_str()) {
                operations.insert(id.to_owned(), method.to_ascii_uppercase());
            }
        }
    }
    operations
}

#[test]
fn every_post_operation_has_a_row() {
    let operations = spec_operations();
    assert!(!operations.is_empty());
    let missing: Vec<_> = operations
        .iter()
        .filter(|(id, method)| {
            *method == "POST" && !RETRY_TABLE.iter().any(|(row, _, _)| row == id)
        })
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "POST operations without a retry decision in RETRY_TABLE: {missing:?}"
    );
}

#[test]
fn every_row_names_an_existing_operation() {
    let operations = spec_operations();
    for (id, _, _) in RETRY_TABLE {
        assert!(
            operations.contains_key(*id),
            "RETRY_TABLE names unknown operation {id}"
        );
    }
}

#[test]
fn stream_position_changes_are_never_retried() {
    for id in [
        "advance_stream",
        "reset_stream",
        "advance_trigger",
        "reset_trigger",
    ] {
        assert_eq!(retry_class(id, "POST"), RetryClass::Never, "{id}");
    }
    for id in [
        "fetch_stream",
        "sync_comments",
        "sync_raw_emails",
        "export_dataset",
        "predict_comments",
    ] {
        assert_eq!(retry_class(id, "POST"), RetryClass::Idempotent, "{id}");
    }
    assert_eq!(
        retry_class("create_something_new", "POST"),
        RetryClass::Never
    );
    assert_eq!(
        retry_class("delete_dataset", "DELETE"),
        RetryClass::Idempotent
    );
}
