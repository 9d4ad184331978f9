//! The vendor's reference, read beside our spec: which operation of ours is
//! which of the reference's, and the fields the reference says each success
//! body can carry.
//!
//! `tests/fixtures/vendor-responses.json` is an extract of
//! `shared/reference/vendor-surface.json` (the vendor's generated client,
//! branch `edward/rust-client`): every operation with its success schema,
//! and the fields (name, type, required, nullable) of every schema reachable
//! from a success body, through the variants of a `oneOf` too; enums carry
//! their values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::{deref, operations, spec};

/// One operation of the reference.
#[derive(Debug, Clone, Deserialize)]
pub struct VendorOperation {
    /// The vendor's name.
    pub operation_id: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Path with the vendor's parameter names.
    pub path: String,
    /// The success body's schema name, `binary`, or none.
    pub response: Option<String>,
}

/// One field of a reference schema.
#[derive(Debug, Clone, Deserialize)]
pub struct VendorField {
    /// The JSON key.
    pub name: String,
    /// `string|integer|number|boolean|any|binary|array<T>|map<string,T>|ref:Model`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the reference requires it.
    pub required: bool,
    /// Whether the reference allows `null`.
    pub nullable: bool,
}

/// One schema of the reference.
#[derive(Debug, Clone, Deserialize)]
pub struct VendorSchema {
    /// `object`, or another kind the generator emitted.
    pub kind: Option<String>,
    /// Its fields (none for a non-object).
    #[serde(default)]
    pub fields: Vec<VendorField>,
    /// For a `oneOf`, the type of each variant (`ref:Model`, or a scalar
    /// or array type for an untagged union of those).
    #[serde(default)]
    pub variants: Vec<String>,
    /// For an enum, its values.
    #[serde(default)]
    pub values: Vec<String>,
}

/// The fields of the reference model `name`, each with the model that
/// declares it: an object's own fields, or for a `oneOf` those of every
/// variant model (an answer may take any variant). Empty for an enum, a
/// union of scalars, or a model the extract lacks.
pub fn model_fields(name: &str) -> Vec<(&'static str, &'static VendorField)> {
    fn collect(name: &str, depth: usize, out: &mut Vec<(&'static str, &'static VendorField)>) {
        let Some((name, schema)) = reference().schemas.get_key_value(name) else {
            return;
        };
        out.extend(schema.fields.iter().map(|f| (name.as_str(), f)));
        if depth < 4 {
            for variant in &schema.variants {
                if let VendorType::Model(inner) = parse_type(variant) {
                    collect(inner, depth + 1, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    collect(name, 0, &mut out);
    out
}

/// The extract.
#[derive(Debug, Deserialize)]
pub struct Reference {
    /// Every operation.
    pub operations: Vec<VendorOperation>,
    /// Every schema reachable from a success body.
    pub schemas: BTreeMap<String, VendorSchema>,
}

/// The extract, read once.
pub fn reference() -> &'static Reference {
    static REFERENCE: LazyLock<Reference> = LazyLock::new(|| {
        serde_json::from_str(include_str!("../fixtures/vendor-responses.json"))
            .expect("tests/fixtures/vendor-responses.json is the reference extract")
    });
    &REFERENCE
}

/// A path with every `{parameter}` replaced by `{}`: the reference names
/// parameters differently (`{owner}` is our `{project}`).
fn normalised_path(path: &str) -> String {
    let mut out = String::new();
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push_str("{}");
            }
            '}' => in_parameter = false,
            _ if in_parameter => {}
            _ => out.push(c),
        }
    }
    out
}

/// Our operation id for a reference operation (same method and path).
pub fn our_operation_id(vendor: &VendorOperation) -> Option<&'static str> {
    let want = normalised_path(&vendor.path);
    operations(spec())
        .into_iter()
        .find(|op| {
            op.method.eq_ignore_ascii_case(&vendor.method) && normalised_path(op.path) == want
        })
        .and_then(|op| op.id())
}

/// The reference's success schema for our `operation_id`, if it has one
/// with fields.
pub fn vendor_response_for(operation_id: &str) -> Option<&'static str> {
    // Matching every reference route against every spec route is slow in a
    // debug build; do it once.
    static RESPONSES: LazyLock<BTreeMap<&'static str, Option<&'static str>>> =
        LazyLock::new(|| {
            let mut out = BTreeMap::new();
            for vendor in &reference().operations {
                if let Some(ours) = our_operation_id(vendor) {
                    // The first reference operation on the route.
                    out.entry(ours).or_insert_with(|| {
                        vendor
                            .response
                            .as_deref()
                            .filter(|name| reference().schemas.contains_key(*name))
                    });
                }
            }
            out
        });
    RESPONSES.get(operation_id).copied().flatten()
}

/// A reference type, parsed one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorType<'a> {
    /// `ref:Model`.
    Model(&'a str),
    /// `array<T>`.
    Array(&'a str),
    /// `map<string,T>`.
    Map(&'a str),
    /// Any other leaf.
    Scalar(&'a str),
}

/// Parses one level of a reference type.
pub fn parse_type(type_: &str) -> VendorType<'_> {
    if let Some(name) = type_.strip_prefix("ref:") {
        VendorType::Model(name)
    } else if let Some(inner) = type_
        .strip_prefix("array<")
        .and_then(|t| t.strip_suffix('>'))
    {
        VendorType::Array(inner)
    } else if let Some(inner) = type_
        .strip_prefix("map<string,")
        .and_then(|t| t.strip_suffix('>'))
    {
        VendorType::Map(inner)
    } else {
        VendorType::Scalar(type_)
    }
}

/// Resolves `$ref`s and single-branch `allOf`s. For a nullable reference
/// (`anyOf`/`oneOf` with an `{enum: [null]}` branch and one other), the
/// other branch.
pub fn shape(schema: &'static Value) -> &'static Value {
    let mut schema = deref(spec(), schema).expect("refs resolve");
    loop {
        if let Some([only]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = deref(spec(), only).expect("refs resolve");
            continue;
        }
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            let non_null: Vec<_> = branches.iter().filter(|b| !is_null_branch(b)).collect();
            if non_null.len() == 1 && non_null.len() < branches.len() {
                schema = deref(spec(), non_null[0]).expect("refs resolve");
                continue;
            }
        }
        return schema;
    }
}

/// `{enum: [null]}`, the null branch of a nullable reference.
pub fn is_null_branch(schema: &Value) -> bool {
    schema.get("enum") == Some(&serde_json::json!([null]))
}

/// The properties `schema` describes, its own and those of the branches
/// of a `oneOf`/`anyOf`/`allOf` (an object may take any branch).
pub fn properties(schema: &'static Value) -> BTreeMap<&'static str, &'static Value> {
    let schema = shape(schema);
    let mut out = BTreeMap::new();
    for key in ["allOf", "oneOf", "anyOf"] {
        for branch in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !is_null_branch(branch) {
                out.extend(properties(branch));
            }
        }
    }
    if let Some(own) = schema.get("properties").and_then(Value::as_object) {
        out.extend(own.iter().map(|(k, v)| (k.as_str(), v)));
    }
    out
}

/// The schema of an array's items or a map's values, through branches.
pub fn child(schema: &'static Value, vendor: VendorType<'_>) -> Option<&'static Value> {
    let schema = shape(schema);
    let own = match vendor {
        VendorType::Array(_) => schema.get("items"),
        VendorType::Map(_) => schema.get("additionalProperties").filter(|s| s.is_object()),
        _ => None,
    };
    own.or_else(|| {
        ["oneOf", "anyOf"]
            .iter()
            .filter_map(|key| schema.get(*key).and_then(Value::as_array))
            .flatten()
            .find_map(|branch| child(branch, vendor))
    })
}

/// `spec/NOTES.md`, whose section "Reference properties left out" lists
/// `Schema.field` entries the spec leaves out on purpose.
const NOTES: &str = include_str!("../../spec/NOTES.md");

/// The `Schema.field` bullets of the NOTES section "Reference properties
/// left out": the reference check and the full-body pass skip them.
pub fn left_out() -> &'static BTreeSet<String> {
    static LEFT_OUT: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
        let mut in_section = false;
        let mut out = BTreeSet::new();
        for line in NOTES.lines() {
            if line.starts_with('#') {
                in_section = line.trim_start_matches('#').trim() == "Reference properties left out";
                continue;
            }
            if in_section
                && let Some(rest) = line.strip_prefix("- `")
                && let Some((entry, _)) = rest.split_once('`')
            {
                out.insert(entry.to_owned());
            }
        }
        out
    });
    &LEFT_OUT
}
