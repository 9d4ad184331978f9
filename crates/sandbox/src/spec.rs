//! The routing table: every operation of `spec/openapi.yaml`, read once.
//!
//! The sandbox routes by the spec, not by a hand-written list of paths, so
//! its paths are the spec's by construction: a path the spec does not have
//! is a 404, a path it has under another method a 405, and an operation the
//! sandbox does not implement a 501 naming that operation.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use http::Method;
use serde::Deserialize;

/// The spec the sandbox serves, embedded at build time.
pub(crate) const SPEC: &str = include_str!("../../../spec/openapi.yaml");

/// One operation of the spec.
#[derive(Debug)]
pub(crate) struct SpecOperation {
    pub(crate) id: String,
    pub(crate) method: Method,
    /// The path template, as the spec writes it.
    pub(crate) template: String,
    segments: Vec<Segment>,
    /// `x-permissions`, when the spec names them.
    pub(crate) permissions: Vec<String>,
}

#[derive(Debug)]
enum Segment {
    /// A literal segment.
    Static(String),
    /// `{name}` or `prefix{name}` (`id:{source_id}`).
    Param { prefix: String, name: String },
}

/// The operation a request resolved to, with its decoded path parameters.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) operation: &'static SpecOperation,
    pub(crate) params: BTreeMap<String, String>,
}

/// Why a request resolved to no operation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// No operation has this path.
    NotFound,
    /// Operations have this path, under these methods.
    MethodNotAllowed(Vec<Method>),
}

#[derive(Deserialize)]
struct Doc {
    paths: BTreeMap<String, PathItem>,
}

#[derive(Deserialize)]
struct PathItem {
    get: Option<OpHead>,
    put: Option<OpHead>,
    post: Option<OpHead>,
    delete: Option<OpHead>,
    patch: Option<OpHead>,
}

#[derive(Deserialize)]
struct OpHead {
    #[serde(rename = "operationId")]
    operation_id: String,
    #[serde(rename = "x-permissions", default)]
    permissions: Vec<String>,
}

/// Every operation of the embedded spec.
pub(crate) fn operations() -> &'static [SpecOperation] {
    static OPERATIONS: OnceLock<Vec<SpecOperation>> = OnceLock::new();
    OPERATIONS.get_or_init(|| {
        // The spec is compiled in and checked by the workspace's contract
        // tests; a spec this crate cannot read is a build defect, caught by
        // every test of this crate.
        let doc: Doc = serde_saphyr::from_str(SPEC).expect("spec/openapi.yaml parses");
        let mut out = Vec::new();
        for (template, item) in doc.paths {
            for (method, op) in [
                (Method::GET, item.get),
                (Method::PUT, item.put),
                (Method::POST, item.post),
                (Method::DELETE, item.delete),
                (Method::PATCH, item.patch),
            ] {
                if let Some(op) = op {
                    out.push(SpecOperation {
                        id: op.operation_id,
                        method,
                        segments: parse_template(&template),
                        template: template.clone(),
                        permissions: op.permissions,
                    });
                }
            }
        }
        out
    })
}

/// The spec operation with this id.
#[cfg(test)]
pub(crate) fn operation(id: &str) -> Option<&'static SpecOperation> {
    operations().iter().find(|op| op.id == id)
}

fn parse_template(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .skip(1)
        .map(|seg| match seg.find('{') {
            Some(open) if seg.ends_with('}') => Segment::Param {
                prefix: seg[..open].to_owned(),
                name: seg[open + 1..seg.len() - 1].to_owned(),
            },
            _ => Segment::Static(seg.to_owned()),
        })
        .collect()
}

/// Resolves a request path (still percent-encoded) and method to an operation.
///
/// When several templates match (`/api/v1/sources/id:{source_id}` and
/// `/api/v1/sources/{project}`), the most specific wins: segment by
/// segment, a literal beats a prefixed parameter, which beats a parameter.
pub(crate) fn resolve(method: &Method, path: &str) -> Result<Resolved, Unresolved> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Unresolved::NotFound);
    };
    let raw: Vec<&str> = rest.split('/').collect();
    let mut best: Option<(Vec<u8>, &'static SpecOperation, BTreeMap<String, String>)> = None;
    let mut allowed = Vec::new();
    for op in operations() {
        let Some((score, params)) = match_segments(&op.segments, &raw) else {
            continue;
        };
        if op.method != *method {
            allowed.push(op.method.clone());
            continue;
        }
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, op, params));
        }
    }
    match best {
        Some((_, operation, params)) => Ok(Resolved { operation, params }),
        None if allowed.is_empty() => Err(Unresolved::NotFound),
        None => {
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            allowed.dedup();
            Err(Unresolved::MethodNotAllowed(allowed))
        }
    }
}

fn match_segments(
    segments: &[Segment],
    raw: &[&str],
) -> Option<(Vec<u8>, BTreeMap<String, String>)> {
    if segments.len() != raw.len() {
        return None;
    }
    let mut score = Vec::with_capacity(raw.len());
    let mut params = BTreeMap::new();
    for (segment, raw) in segments.iter().zip(raw) {
        match segment {
            Segment::Static(literal) => {
                if literal != raw {
                    return None;
                }
                score.push(2);
            }
            Segment::Param { prefix, name } => {
                let value = raw.strip_prefix(prefix.as_str())?;
                let decoded = percent_decode(value)?;
                // `PathSegment`: not empty, not `.` or `..`.
                if decoded.is_empty() || decoded == "." || decoded == ".." {
                    return None;
                }
                params.insert(name.clone(), decoded);
                score.push(if prefix.is_empty() { 0 } else { 1 });
            }
        }
    }
    Some((score, params))
}

/// Why a segment of a request path (still percent-encoded) can name no
/// resource, if one cannot: empty, `.` or `..` (the spec's `PathSegment`),
/// or not percent-encoded UTF-8. For the 404 of a path that matched nothing.
pub(crate) fn unusable_segment(path: &str) -> Option<String> {
    path.strip_prefix('/')?
        .split('/')
        .find_map(|raw| match percent_decode(raw) {
            None => Some(format!("path segment `{raw}` is not percent-encoded UTF-8")),
            Some(decoded) if decoded.is_empty() => Some("a path segment is empty".to_owned()),
            Some(decoded) if decoded == "." || decoded == ".." => Some(format!(
                "path segment `{raw}` is `{decoded}`, which names no resource"
            )),
            Some(_) => None,
        })
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8 or an escape
/// is malformed.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(method: Method, path: &str) -> Result<String, Unresolved> {
        resolve(&method, path).map(|r| r.operation.id.clone())
    }

    #[test]
    fn the_most_specific_template_wins() {
        assert_eq!(
            id(Method::GET, "/api/v1/sources/id:18ba5ce699f8da1f").unwrap(),
            "get_source_by_id"
        );
        assert_eq!(
            id(Method::GET, "/api/v1/sources/acme").unwrap(),
            "list_project_sources"
        );
        let resolved = resolve(&Method::GET, "/api/v1/sources/acme/in%20box").unwrap();
        assert_eq!(resolved.operation.id, "get_source");
        assert_eq!(resolved.params["source_name"], "in box");
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        assert_eq!(id(Method::GET, "/api/v1/nope"), Err(Unresolved::NotFound));
        assert_eq!(
            id(Method::PATCH, "/api/v1/sources/acme/inbox"),
            Err(Unresolved::MethodNotAllowed(vec![
                Method::GET,
                Method::POST,
                Method::PUT
            ]))
        );
        // `..` never names a resource.
        assert_eq!(
            id(Method::GET, "/api/v1/sources/acme/%2E%2E"),
            Err(Unresolved::NotFound)
        );
        assert_eq!(
            id(Method::GET, "/api/v1/sources/acme/"),
            Err(Unresolved::NotFound)
        );
    }
}
