//! The full-body pass (issue 20): an operation's success example with every
//! optional property present, and the comparison that finds what decoding
//! and re-encoding lost.
//!
//! [`build`] completes every object of the example: each property the spec
//! declares that the example lacks gets a value of its type, and so does
//! each property the vendor's reference lists that the spec does not model
//! (unless `spec/NOTES.md` leaves it out on purpose), with the reference's
//! type. Nested objects and arrays are built recursively (one element per
//! array and map) down to [`MAX_DEPTH`] new levels; below it only required
//! properties are built. Every generated value is non-empty, non-zero and
//! non-`null`, so a value missing after the round trip is a loss, not a
//! default the generated types skip.
//!
//! [`losses`] compares the served body with the re-encoded one: every JSON
//! pointer present in the first must be present in the second with an equal
//! value.

use serde_json::{Map, Value, json};

use crate::reference::{
    VendorField, VendorType, left_out, model_fields, parse_type, properties, reference, shape,
};

/// How many levels of new objects and arrays [`build`] nests below a
/// property the example lacks. Deep enough for every schema of the spec to
/// appear, shallow enough that recursive schemas (filters, label trees)
/// stay small.
pub const MAX_DEPTH: usize = 4;

/// A full body and what went into it.
#[derive(Debug, Default)]
pub struct FullBody {
    /// The body to serve.
    pub body: Value,
    /// Properties added from the spec's schemas, at any depth.
    pub from_spec: usize,
    /// Properties added from the reference that the spec does not model.
    pub from_reference: usize,
    /// Objects matched with a reference model (so its fields were read).
    pub matched_models: usize,
}

/// The example of an operation whose success body is `schema` and whose
/// reference success model is `vendor_model` (if the reference has one),
/// with every optional property present.
pub fn build(schema: &'static Value, vendor_model: Option<&str>, example: &Value) -> FullBody {
    let mut builder = Builder::default();
    let vendor_type = vendor_model.map(|name| format!("ref:{name}"));
    let body = builder.fill(Some(schema), vendor_type.as_deref(), example);
    FullBody {
        body,
        from_spec: builder.from_spec,
        from_reference: builder.from_reference,
        matched_models: builder.matched_models,
    }
}

#[derive(Default)]
struct Builder {
    from_spec: usize,
    from_reference: usize,
    matched_models: usize,
}

/// Reference fields, each with the model that declares it.
type Fields = Vec<(&'static str, &'static VendorField)>;

/// The fields of the reference model a type names (of every variant, for
/// a `oneOf`), if the extract has any.
fn vendor_fields(vendor: Option<&str>) -> Option<Fields> {
    let VendorType::Model(name) = parse_type(vendor?) else {
        return None;
    };
    Some(model_fields(name)).filter(|fields| !fields.is_empty())
}

/// The reference type of the field `key` among `fields`.
fn field_type<'f>(fields: Option<&'f Fields>, key: &str) -> Option<&'f str> {
    fields?
        .iter()
        .find(|(_, f)| f.name == key)
        .map(|(_, f)| f.type_.as_str())
}

/// The type of an array's items or a map's values, in the reference.
fn vendor_inner(vendor: Option<&str>) -> Option<&str> {
    match parse_type(vendor?) {
        VendorType::Array(inner) | VendorType::Map(inner) => Some(inner),
        _ => None,
    }
}

/// For a `oneOf`/`anyOf` left after [`shape`], the branch that describes
/// `value`: for an object, the first record branch whose properties include
/// all of the value's keys (else the first record branch); for an array,
/// the first list branch; for a scalar, the first branch of its type.
fn branch_for(schema: &'static Value, value: &Value) -> &'static Value {
    let schema = shape(schema);
    let Some(branches) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    else {
        return schema;
    };
    let branches: Vec<&'static Value> = branches.iter().map(shape).collect();
    let of_type = |t: &str| {
        branches
            .iter()
            .copied()
            .find(|b| b.get("type").and_then(Value::as_str) == Some(t))
    };
    let found = match value {
        Value::Object(object) => {
            let records: Vec<_> = branches
                .iter()
                .copied()
                .filter(|b| b.get("properties").is_some())
                .collect();
            records
                .iter()
                .copied()
                .find(|b| {
                    let props = properties(b);
                    object.keys().all(|k| props.contains_key(k.as_str()))
                })
                .or(records.first().copied())
        }
        Value::Array(_) => of_type("array"),
        Value::String(_) => of_type("string"),
        Value::Bool(_) => of_type("boolean"),
        Value::Number(n) if n.is_f64() => of_type("number"),
        Value::Number(_) => of_type("integer").or_else(|| of_type("number")),
        Value::Null => None,
    };
    found.unwrap_or(schema)
}

/// The first branch of a union left after [`shape`] (the one an untagged
/// enum tries first), or the schema itself.
fn first_branch(schema: &'static Value) -> &'static Value {
    let schema = shape(schema);
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .and_then(|branches| branches.first())
        .map(shape)
        .unwrap_or(schema)
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Builder {
    /// `value` (from the example) with every object completed.
    fn fill(
        &mut self,
        schema: Option<&'static Value>,
        vendor: Option<&str>,
        value: &Value,
    ) -> Value {
        let schema = schema.map(|s| branch_for(s, value));
        match value {
            Value::Object(object) => {
                let own = schema.map(properties).unwrap_or_default();
                let values = schema
                    .and_then(|s| s.get("additionalProperties"))
                    .filter(|s| s.is_object());
                let fields = vendor_fields(vendor);
                if fields.is_some() {
                    self.matched_models += 1;
                }
                let mut out: Map<String, Value> = object
                    .iter()
                    .map(|(key, child)| {
                        let child_schema = own.get(key.as_str()).copied().or(values);
                        let child_type =
                            field_type(fields.as_ref(), key).or_else(|| vendor_inner(vendor));
                        let filled = self.fill(child_schema, child_type, child);
                        (key.clone(), filled)
                    })
                    .collect();
                self.complete(&own, fields.as_ref(), &mut out, 0);
                Value::Object(out)
            }
            Value::Array(items) => {
                let items_schema = schema.and_then(|s| s.get("items"));
                let inner = vendor_inner(vendor);
                Value::Array(
                    items
                        .iter()
                        .map(|item| self.fill(items_schema, inner, item))
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }

    /// Adds to `out` each property of `own` (the spec's) and of `fields`
    /// (the reference's, when the spec lacks it and NOTES does not leave it
    /// out) that it lacks.
    fn complete(
        &mut self,
        own: &std::collections::BTreeMap<&'static str, &'static Value>,
        fields: Option<&Fields>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) {
        for (name, property) in own {
            if !out.contains_key(*name) {
                let value = self.generate(Some(property), field_type(fields, name), depth + 1);
                out.insert((*name).to_owned(), value);
                self.from_spec += 1;
            }
        }
        for (model, field) in fields.into_iter().flatten() {
            if out.contains_key(&field.name)
                || own.contains_key(field.name.as_str())
                || left_out().contains(&format!("{model}.{}", field.name))
            {
                continue;
            }
            let value = self.generate(None, Some(&field.type_), depth + 1);
            out.insert(field.name.clone(), value);
            self.from_reference += 1;
        }
    }

    /// A new value of the spec's `schema` (or, without one, of the
    /// reference's `vendor` type), `depth` levels below the example.
    fn generate(
        &mut self,
        schema: Option<&'static Value>,
        vendor: Option<&str>,
        depth: usize,
    ) -> Value {
        let Some(schema) = schema else {
            return self.generate_vendor(vendor, depth);
        };
        let schema = first_branch(schema);
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|values| values.iter().find(|v| !v.is_null()))
        {
            return first.clone();
        }
        if let Some(known) = schema
            .get("x-known-values")
            .and_then(Value::as_array)
            .and_then(|values| values.first())
        {
            return known.clone();
        }
        let scalar_example = schema
            .get("example")
            .filter(|e| !e.is_object() && !e.is_array() && !is_empty(e));
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => json!("2026-03-04T09:15:00Z"),
                _ => scalar_example.cloned().unwrap_or(json!("text")),
            },
            Some("integer") => scalar_example.cloned().unwrap_or(json!(3)),
            Some("number") => json!(2.5),
            Some("boolean") => json!(true),
            Some("array") => {
                // One element: non-empty, so an absent list is a loss.
                json!([self.generate(schema.get("items"), vendor_inner(vendor), depth + 1)])
            }
            Some("object") | None => self.generate_object(schema, vendor, depth),
            Some(_) => json!("value"),
        }
    }

    /// A new object of the spec's record, map or free-form `schema`.
    fn generate_object(
        &mut self,
        schema: &'static Value,
        vendor: Option<&str>,
        depth: usize,
    ) -> Value {
        let own = properties(schema);
        let values = schema.get("additionalProperties").filter(|s| s.is_object());
        if own.is_empty() {
            if let Some(values) = values {
                return json!({ "key": self.generate(Some(values), vendor_inner(vendor), depth + 1) });
            }
            // Free-form (any JSON value): the reference's type, if it has one.
            return match vendor {
                Some(_) => self.generate_vendor(vendor, depth),
                None if schema.get("type").is_some() => json!({ "key": "value" }),
                None => json!("value"),
            };
        }
        let fields = vendor_fields(vendor);
        if fields.is_some() {
            self.matched_models += 1;
        }
        let mut out = Map::new();
        if depth >= MAX_DEPTH {
            // Only what decoding requires.
            let needed = required(schema);
            for (name, property) in &own {
                if needed.contains(name) {
                    let value =
                        self.generate(Some(property), field_type(fields.as_ref(), name), depth + 1);
                    out.insert((*name).to_owned(), value);
                }
            }
            return Value::Object(out);
        }
        self.complete(&own, fields.as_ref(), &mut out, depth);
        Value::Object(out)
    }

    /// A new value of a reference type, for a property the spec does not model.
    fn generate_vendor(&mut self, vendor: Option<&str>, depth: usize) -> Value {
        let Some(vendor) = vendor else {
            return json!("value");
        };
        match parse_type(vendor) {
            VendorType::Scalar("integer") => json!(3),
            VendorType::Scalar("number") => json!(2.5),
            VendorType::Scalar("boolean") => json!(true),
            VendorType::Scalar(_) => json!("text"),
            VendorType::Array(inner) => json!([self.generate_vendor(Some(inner), depth + 1)]),
            VendorType::Map(inner) => {
                json!({ "key": self.generate_vendor(Some(inner), depth + 1) })
            }
            VendorType::Model(name) => {
                let Some(fields) = vendor_fields(Some(vendor)) else {
                    // An enum (its first value), a union of scalars (its
                    // first variant), or a model the extract lacks.
                    let schema = reference().schemas.get(name);
                    if let Some(first) = schema.and_then(|s| s.values.first()) {
                        return json!(first);
                    }
                    return match schema.and_then(|s| s.variants.first()) {
                        Some(variant) if depth < 2 * MAX_DEPTH => {
                            self.generate_vendor(Some(variant), depth + 1)
                        }
                        _ => json!("value"),
                    };
                };
                self.matched_models += 1;
                let mut out = Map::new();
                for (model, field) in fields {
                    if out.contains_key(&field.name)
                        || (depth >= MAX_DEPTH && !field.required)
                        || left_out().contains(&format!("{model}.{}", field.name))
                    {
                        continue;
                    }
                    out.insert(
                        field.name.clone(),
                        self.generate_vendor(Some(&field.type_), depth + 1),
                    );
                }
                Value::Object(out)
            }
        }
    }
}

/// `null`, `[]` or `{}`: what the generated types write as an absent
/// optional member, and the API reads the same.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

/// One JSON pointer reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every JSON pointer of `served` that `decoded` lacks or holds a different
/// value at, outermost only. A member served as `null`, `[]` or `{}` may be
/// absent; `1` and `1.0` are the same number.
pub fn losses(served: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare(served, decoded, "", &mut out);
    out
}

fn compare(served: &Value, decoded: &Value, pointer: &str, out: &mut Vec<String>) {
    match (served, decoded) {
        (Value::Object(served), Value::Object(decoded)) => {
            for (key, value) in served {
                let at = format!("{pointer}/{}", escape(key));
                match decoded.get(key) {
                    Some(back) => compare(value, back, &at, out),
                    None if is_empty(value) => {}
                    None => out.push(at),
                }
            }
        }
        (Value::Array(served), Value::Array(decoded)) => {
            for (index, value) in served.iter().enumerate() {
                let at = format!("{pointer}/{index}");
                match decoded.get(index) {
                    Some(back) => compare(value, back, &at, out),
                    None => out.push(at),
                }
            }
        }
        (Value::Number(s), Value::Number(d)) if s.as_f64() == d.as_f64() => {}
        _ if served == decoded => {}
        _ => out.push(format!("{pointer}: sent {served}, got back {decoded}")),
    }
}
