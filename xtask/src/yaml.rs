//! Reading YAML into `serde_json::Value`, the one way every crate here does.
//!
//! serde-saphyr, configured to read what serde_yaml read: YAML 1.2 booleans
//! only (`true`/`false`; `y`, `yes`, `on` stay strings, so `required: [x, y]`
//! keeps its `y`), and `0052` or `1_000` stay strings. Integers stay integers
//! and `5120.0` stays a float. Unlike serde_yaml it rejects duplicate keys and
//! non-finite floats, and expands `<<` merge keys. An integer too large for
//! `i64`/`u64` becomes a float (serde_yaml rejected it).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// The parser's error; its `Display` names line and column.
pub type Error = serde_saphyr::Error;

/// The options every read uses.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        // One-line errors: `line L column C: what`.
        with_snippet: false,
    }
}

/// Parses YAML text into a JSON value.
pub fn from_str(text: &str) -> Result<Value, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Parses YAML bytes (UTF-8, or UTF-16/32 with a BOM) into a JSON value.
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    serde_saphyr::from_slice_with_options(bytes, options())
}

/// Parses YAML bytes into a JSON value and the line of each of its nodes.
pub fn from_slice_with_lines(bytes: &[u8]) -> Result<(Value, Lines), Error> {
    let root: Spanned<Node> = serde_saphyr::from_slice_with_options(bytes, options())?;
    let mut lines = Lines::default();
    lines.insert(String::new(), root.referenced.line());
    let mut pointer = String::new();
    let value = root.value.into_value(&mut pointer, &mut lines);
    Ok((value, lines))
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Where each node of a YAML document starts: the 1-based line of a
/// mapping entry's key, or of a sequence item, by JSON pointer. A node that
/// came from an alias is placed at the alias.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    by_pointer: HashMap<String, usize>,
}

impl Lines {
    fn insert(&mut self, pointer: String, line: u64) {
        // Line 0 means the parser had no location (a buffered value).
        if let Ok(line @ 1..) = usize::try_from(line) {
            self.by_pointer.insert(pointer, line);
        }
    }

    /// The line of the node at `pointer` or, for a pointer to something
    /// absent (a missing key), of its nearest present ancestor.
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        let mut pointer = pointer;
        loop {
            if let Some(line) = self.by_pointer.get(pointer) {
                return Some(*line);
            }
            pointer = &pointer[..pointer.rfind('/')?];
        }
    }
}

/// A YAML node with the location of each key and item, as serde-saphyr's
/// `Spanned` reports them; turned into a `Value` and [`Lines`] at once.
enum Node {
    Scalar(Value),
    Sequence(Vec<Spanned<Node>>),
    Mapping(Vec<(Spanned<String>, Node)>),
}

impl Node {
    fn into_value(self, pointer: &mut String, lines: &mut Lines) -> Value {
        let parent = pointer.len();
        match self {
            Node::Scalar(value) => value,
            Node::Sequence(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        pointer.push_str(&format!("/{index}"));
                        lines.insert(pointer.clone(), item.referenced.line());
                        let value = item.value.into_value(pointer, lines);
                        pointer.truncate(parent);
                        value
                    })
                    .collect(),
            ),
            Node::Mapping(entries) => {
                let mut map = Map::new();
                for (key, node) in entries {
                    pointer.push('/');
                    pointer.push_str(&pointer_token(&key.value));
                    lines.insert(pointer.clone(), key.referenced.line());
                    let value = node.into_value(pointer, lines);
                    pointer.truncate(parent);
                    map.insert(key.value, value);
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v)
            .map(|n| Node::Scalar(Value::Number(n)))
            .ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Spanned<String>, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Mapping(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_number_types_and_yaml_1_2_booleans() {
        let value = from_str(
            "a: 5120\nb: 5120.0\nc: -3\nd: 18446744073709551615\ne: [x, y, yes, on, true]\nf: 0052\ng: 1_000\nh: ~\n",
        )
        .unwrap();
        assert_eq!(
            value,
            json!({ "a": 5120, "b": 5120.0, "c": -3, "d": 18446744073709551615u64,
                    "e": ["x", "y", "yes", "on", true], "f": "0052", "g": "1_000", "h": null })
        );
        assert!(value["b"].is_f64() && value["a"].is_u64());
    }

    #[test]
    fn anchors_are_expanded() {
        let value = from_str("a: &s {type: string}\nb: *s\n").unwrap();
        assert_eq!(
            value,
            json!({ "a": { "type": "string" }, "b": { "type": "string" } })
        );
    }

    #[test]
    fn duplicate_keys_are_an_error_with_a_line() {
        let error = from_str("a: 1\nb: 2\na: 3\n").unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");
    }

    #[test]
    fn lines_are_those_of_keys_and_items() {
        let text = "\
openapi: 3.0.3
paths:
  /a/b:
    get:
      responses:
        200: {description: ok}
        '4XX':
          $ref: '#/x'
tags:
  - name: one
  - name: two
alias: &n
  deep:
    key: 1
copy: *n
";
        let (value, lines) = from_slice_with_lines(text.as_bytes()).unwrap();
        assert_eq!(value, from_str(text).unwrap());
        let line = |p: &str| lines.line_of(p);
        assert_eq!(line(""), Some(1));
        assert_eq!(line("/paths/~1a~1b/get"), Some(4));
        assert_eq!(line("/paths/~1a~1b/get/responses/200/description"), Some(6));
        assert_eq!(line("/paths/~1a~1b/get/responses/4XX/$ref"), Some(8));
        assert_eq!(line("/tags/1/name"), Some(11));
        assert_eq!(line("/alias/deep/key"), Some(14));
        // Inside an alias: where the alias is used.
        assert_eq!(line("/copy/deep/key"), Some(15));
        // Absent: the nearest ancestor.
        assert_eq!(line("/paths/~1a~1b/get/responses/5XX"), Some(5));
        assert_eq!(line("/nowhere"), Some(1));
    }
}
