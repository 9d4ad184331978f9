//! Reading YAML into `serde_json::Value`, the one way every crate here does.
//!
//! serde-saphyr, configured to read what serde_yaml read: YAML 1.2 booleans
//! only (`true`/`false`; `y`, `yes`, `on` stay strings, so `required: [x, y]`
//! keeps its `y`), and `0052` or `1_000` stay strings. Integers stay integers
//! and `5120.0` stays a float. Unlike serde_yaml it rejects duplicate keys and
//! non-finite floats, and expands `<<` merge keys. An integer too large for
//! `i64`/`u64` becomes a float (serde_yaml rejected it).

use serde_json::Value;

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
}
