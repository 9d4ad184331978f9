//! Every example in the spec validates against its own schema.

use cm_api_contract_tests::spec;
use serde_json::Value;
use xtask::json_schema;

/// An example found in the spec: where it is, its value and its schema.
struct Example<'a> {
    pointer: String,
    value: &'a Value,
    schema: &'a Value,
}

/// Walks the document for `example` and `examples` keys. An object holding
/// `schema` (a media type or a parameter) is checked against that schema; any
/// other object holding `example` is a schema and is checked against itself.
fn collect<'a>(node: &'a Value, pointer: &str, out: &mut Vec<Example<'a>>) {
    let Value::Object(object) = node else {
        if let Value::Array(items) = node {
            for (i, item) in items.iter().enumerate() {
                collect(item, &format!("{pointer}/{i}"), out);
            }
        }
        return;
    };
    let schema = object.get("schema").unwrap_or(node);
    if let Some(value) = object.get("example") {
        out.push(Example {
            pointer: format!("{pointer}/example"),
            value,
            schema,
        });
    }
    if let Some(named) = object.get("examples").and_then(Value::as_object) {
        for (name, example) in named {
            if let Some(value) = example.get("value") {
                out.push(Example {
                    pointer: format!("{pointer}/examples/{name}/value"),
                    value,
                    schema,
                });
            }
        }
    }
    for (key, child) in object {
        if key == "example" || key == "examples" {
            continue;
        }
        let escaped = key.replace('~', "~0").replace('/', "~1");
        collect(child, &format!("{pointer}/{escaped}"), out);
    }
}

fn failures(document: &Value) -> (usize, Vec<String>) {
    let mut examples = Vec::new();
    collect(document, "#", &mut examples);
    let validator = json_schema::Validator::new(document);
    let mut failures = Vec::new();
    for example in &examples {
        for error in validator.validate(example.schema, example.value) {
            failures.push(format!("{}: {error}", example.pointer));
        }
    }
    (examples.len(), failures)
}

#[test]
fn every_example_in_the_spec_matches_its_schema() {
    let (count, failures) = failures(spec());
    assert!(
        failures.is_empty(),
        "{} invalid example(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // One per request body and success body at least; the spec has 81 today.
    assert!(
        count >= 81,
        "only {count} examples found; the walk is broken"
    );
    println!("{count} examples validated");
}

#[test]
fn a_broken_example_is_reported_with_its_json_pointer() {
    let mut document = spec().clone();
    let example = document
        .pointer_mut("/paths/~1api~1v1~1sources~1{project}~1{source_name}/get/responses/200/content/application~1json/example/source/name")
        .expect("get_source example has source.name");
    *example = Value::from(42);

    let (_, failures) = failures(&document);

    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(
            "#/paths/~1api~1v1~1sources~1{project}~1{source_name}/get/responses/200/content/application~1json/example: /source/name: 42 is not of type \"string\""
        ),
        "{failures:?}"
    );
}
