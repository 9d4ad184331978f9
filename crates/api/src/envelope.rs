//! Reads the platform's envelope (`"status"` and `"message"` at the top
//! level of a JSON body) without parsing the body.
//!
//! Every buffered answer is checked for a `"status"` that contradicts its
//! HTTP status (an `"error"` body with a 200). The body is decoded into its
//! typed value afterwards anyway, so parsing it a first time just for two
//! members would double the decoding cost of every call: an export page of
//! 256 comments is hundreds of kilobytes. [`scan`] walks the top-level
//! object byte by byte instead, tracking only strings and nesting, and
//! decodes nothing but the two members' values. It does not validate the
//! JSON: a malformed body is the typed decoder's to report.

use std::borrow::Cow;

/// The envelope members of a body, as far as [`scan`] could tell.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// The top-level `"status"`, when it is a string.
    pub(crate) status: Option<Cow<'a, str>>,
    /// The top-level `"message"`, when it is a string.
    pub(crate) message: Option<Cow<'a, str>>,
}

/// The top-level `"status"` and `"message"` strings of `body`, a JSON
/// object. Anything else (an array, a truncated or malformed body, a member
/// that is not a string) gives `None` for what could not be read. When a
/// key repeats, the last one wins, as with serde_json.
pub(crate) fn scan(body: &[u8]) -> Envelope<'_> {
    let mut envelope = Envelope::default();
    let mut at = skip_whitespace(body, 0);
    if body.get(at) != Some(&b'{') {
        return envelope;
    }
    at += 1;
    loop {
        at = skip_whitespace(body, at);
        match body.get(at) {
            Some(b'"') => {}
            _ => return envelope, // `}` (done), or not an object member.
        }
        let Some(key_end) = string_end(body, at) else {
            return envelope;
        };
        let key = &body[at..key_end];
        at = skip_whitespace(body, key_end);
        if body.get(at) != Some(&b':') {
            return envelope;
        }
        let value_start = skip_whitespace(body, at + 1);
        let Some(value_end) = value_end(body, value_start) else {
            return envelope;
        };
        let value = &body[value_start..value_end];
        // A key with escapes is decoded like any string.
        match string_value(key).as_deref() {
            Some("status") => envelope.status = string_value(value),
            Some("message") => envelope.message = string_value(value),
            _ => {}
        }
        at = skip_whitespace(body, value_end);
        match body.get(at) {
            Some(b',') => at += 1,
            _ => return envelope,
        }
    }
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while matches!(body.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the string that starts (with `"`) at `start`.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match body.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// The index just past the value that starts at `start`: a string, an
/// object or array (matched through nested strings and brackets), or a
/// scalar (up to the next delimiter).
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    match body.get(start)? {
        b'"' => string_end(body, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match body.get(at)? {
                    b'"' => {
                        at = string_end(body, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while let Some(byte) = body.get(at) {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

/// A JSON string's text (borrowed when it has no escapes, decoded when it
/// has), or `None` when `value` is not a string.
fn string_value(value: &[u8]) -> Option<Cow<'_, str>> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(value).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> (Option<String>, Option<String>) {
        let envelope = scan(body.as_bytes());
        (
            envelope.status.map(Cow::into_owned),
            envelope.message.map(Cow::into_owned),
        )
    }

    fn some(status: &str, message: Option<&str>) -> (Option<String>, Option<String>) {
        (Some(status.to_owned()), message.map(str::to_owned))
    }

    #[test]
    fn reads_the_envelope_wherever_it_is_in_the_object() {
        assert_eq!(
            read(r#"{"status":"error","message":"no such source"}"#),
            some("error", Some("no such source"))
        );
        assert_eq!(
            read(
                r#" { "comments" : [ {"status": "ok", "x": "}]\"{"} ], "n": -1.5e3, "b": true, "z": null,
                  "status" : "error" , "message": "a \"quoted\" \u00e9 word" } "#
            ),
            some("error", Some("a \"quoted\" é word"))
        );
    }

    #[test]
    fn nested_members_named_status_are_not_the_envelope() {
        assert_eq!(
            read(r#"{"comment":{"status":"error","message":"x"},"list":[{"status":"error"}]}"#),
            (None, None)
        );
    }

    #[test]
    fn escaped_keys_are_decoded_and_the_last_repeat_wins() {
        assert_eq!(
            read(r#"{"st\u0061tus":"ok","status":"error"}"#),
            some("error", None)
        );
        assert_eq!(
            read(r#"{"status":"error","status":"ok"}"#),
            some("ok", None)
        );
    }

    #[test]
    fn anything_but_an_object_with_string_members_reads_as_nothing() {
        for body in [
            "",
            "[]",
            r#"["status","error"]"#,
            "<html>502 Bad Gateway</html>",
            r#"{"status":1}"#,
            r#"{"status":{"code":"error"}}"#,
            r#"{"status":"err"#,
            r#"{"status""#,
            "{",
        ] {
            assert_eq!(read(body).0, None, "{body:?}");
        }
    }

    #[test]
    fn what_was_read_before_a_truncation_is_kept() {
        assert_eq!(
            read(r#"{"status":"ok","comments":[{"id":"a"#),
            some("ok", None)
        );
    }

    #[test]
    fn agrees_with_serde_json_on_valid_bodies() {
        #[derive(serde::Deserialize)]
        struct Parsed {
            status: Option<serde_json::Value>,
            message: Option<serde_json::Value>,
        }
        for body in [
            r#"{"status":"ok"}"#,
            r#"{"message":"m","status":"error","extra":[1,{"a":"]"}]}"#,
            r#"{"a":{"b":{"c":[[[]]]}},"status":"ok","message":null}"#,
            r#"{"status":"ok","message":"tab\tnew\nline \\ back"}"#,
            r#"{}"#,
        ] {
            let parsed: Parsed = serde_json::from_str(body).unwrap();
            let as_str =
                |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_owned));
            assert_eq!(
                read(body),
                (as_str(parsed.status), as_str(parsed.message)),
                "{body}"
            );
        }
    }
}
