//! Shared helpers for the contract tests in `tests/tests/`: the spec, read
//! once, and lookups into it by operation id.

use std::sync::LazyLock;

use serde_json::Value;
pub use xtask::spec::{Operation, deref, operations};

/// `spec/openapi.yaml`, embedded so the tests see exactly the committed spec.
pub const SPEC_YAML: &str = include_str!("../../spec/openapi.yaml");

/// The spec as JSON.
pub fn spec() -> &'static Value {
    static SPEC: LazyLock<Value> =
        LazyLock::new(|| xtask::yaml::from_str(SPEC_YAML).expect("spec/openapi.yaml is YAML"));
    &SPEC
}

/// The operation with `operation_id`; panics with its name if absent, since
/// a contract case for an operation the spec lacks is itself a bug.
pub fn operation(operation_id: &str) -> Operation<'static> {
    operations(spec())
        .into_iter()
        .find(|op| op.id() == Some(operation_id))
        .unwrap_or_else(|| panic!("spec has no operation `{operation_id}`"))
}

/// Every operation id in the spec, in document order.
pub fn operation_ids() -> Vec<&'static str> {
    operations(spec())
        .into_iter()
        .filter_map(|op| op.id())
        .collect()
}

/// The success response's JSON example for `operation_id`, if it has one.
pub fn success_example(operation_id: &str) -> Option<&'static Value> {
    let responses = operation(operation_id)
        .value
        .get("responses")?
        .as_object()?;
    let (_, response) = responses.iter().find(|(code, _)| code.starts_with('2'))?;
    deref(spec(), response)?.pointer("/content/application~1json/example")
}

/// The request body's JSON example for `operation_id`, if it has one.
pub fn request_example(operation_id: &str) -> Option<&'static Value> {
    let body = operation(operation_id).value.get("requestBody")?;
    deref(spec(), body)?.pointer("/content/application~1json/example")
}

pub mod cases;
pub mod full_body;
pub mod hand_written_cases;
pub mod harness;
pub mod reference;

/// The JSON schema of `operation_id`'s success body, if it is JSON.
pub fn success_schema(operation_id: &str) -> Option<&'static Value> {
    let responses = operation(operation_id)
        .value
        .get("responses")?
        .as_object()?;
    let (_, response) = responses.iter().find(|(code, _)| code.starts_with('2'))?;
    deref(spec(), response)?.pointer("/content/application~1json/schema")
}
