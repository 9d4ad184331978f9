//! Every paginated operation of the spec can be walked with `into_stream`:
//! the list in `cm_api::paginate::builders::OPERATIONS` is the one the spec
//! implies, so an operation that gains a cursor needs a walker.

use std::collections::BTreeSet;

use cm_api_contract_tests::{deref, operations, spec, success_schema};
use serde_json::Value;

/// The property names of a JSON object schema, through `$ref` and `allOf`.
fn properties(schema: &Value) -> BTreeSet<String> {
    let schema = deref(spec(), schema).unwrap_or(schema);
    let mut names: BTreeSet<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        names.extend(properties(part));
    }
    names
}

/// The names an operation accepts: its parameters and its JSON body's
/// properties.
fn accepted(operation: &Value, path_item: Option<&Value>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let parameters = [
        operation.get("parameters"),
        path_item.and_then(|p| p.get("parameters")),
    ];
    for parameter in parameters
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    {
        let parameter = deref(spec(), parameter).unwrap_or(parameter);
        if let Some(name) = parameter.get("name").and_then(Value::as_str) {
            names.insert(name.to_owned());
        }
    }
    if let Some(body) = operation.get("requestBody") {
        let body = deref(spec(), body).unwrap_or(body);
        if let Some(schema) = body.pointer("/content/application~1json/schema") {
            names.extend(properties(schema));
        }
    }
    names
}

/// The operations whose answer has a cursor (`continuation` or `after`)
/// that the operation also accepts, by name or as the other cursor name.
fn paginated_in_spec() -> BTreeSet<String> {
    let cursors = ["continuation", "after"];
    operations(spec())
        .into_iter()
        .filter_map(|op| {
            let id = op.id()?;
            let answer = properties(success_schema(id)?);
            let takes = accepted(op.value, Some(op.path_item));
            let gives = cursors.iter().any(|c| answer.contains(*c));
            let accepts = cursors.iter().any(|c| takes.contains(*c));
            (gives && accepts).then(|| id.to_owned())
        })
        .collect()
}

#[test]
fn every_paginated_operation_has_a_walker() {
    let walkers: BTreeSet<String> = cm_api::paginate::builders::OPERATIONS
        .iter()
        .map(|id| (*id).to_owned())
        .collect();
    let spec = paginated_in_spec();
    assert_eq!(
        spec.difference(&walkers).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "paginated in the spec, without into_stream"
    );
    assert_eq!(
        walkers.difference(&spec).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "into_stream on an operation the spec does not paginate"
    );
    assert!(spec.contains("export_dataset") && spec.contains("get_labellings"));
}
