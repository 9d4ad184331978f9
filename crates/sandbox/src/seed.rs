//! Comments loaded at start: `cm-sandbox --seed FILE` and
//! [`SandboxBuilder::seed`](crate::SandboxBuilder::seed).
//!
//! A seed file is JSON lines, one comment a line, each naming where it goes:
//!
//! ```text
//! {"project": "acme", "source": "inbox", "comment": {"id": "c1", "timestamp": "2026-03-01T10:00:00Z", "messages": [{"body": {"text": "Where is my refund?"}}]}}
//! {"project": "acme", "source": "inbox", "comment": {"id": "c2", "messages": [{"body": {"text": "Thanks!"}}]}}
//! ```
//!
//! `comment` is a `CommentNew` of the spec, as `sync_comments` takes it.
//! Projects and sources are created when missing; blank lines are skipped;
//! a comment id given twice is upserted as `sync_comments` does. A line
//! that is not such an object, or a comment `sync_comments` would refuse,
//! is an error naming the line, and the sandbox does not start.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::{CheckedComments, State};

/// Comments to load into a sandbox when it starts; see the module docs for
/// the JSON-lines form.
///
/// ```
/// use cm_sandbox::Seed;
/// use serde_json::json;
///
/// let seed = Seed::from_json_lines(
///     r#"{"project": "acme", "source": "inbox", "comment": {"id": "c1", "messages": [{"body": {"text": "Hi"}}]}}"#,
/// )
/// .unwrap();
/// let seed = seed.comments("acme", "archive", [json!({"id": "c2", "messages": [{"body": {"text": "Old"}}]})]);
/// assert_eq!(seed.len(), 2);
///
/// let error = Seed::from_json_lines("\n{\"project\": \"acme\"}\n").unwrap_err();
/// assert_eq!(error.line(), Some(2));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Seed {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    origin: Origin,
    project: String,
    source: String,
    /// The comment, or why it could not be serialised.
    comment: Result<Value, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A line of a JSON-lines text, from 1.
    Line(usize),
    /// The n-th comment given to `Seed::comments`, from 1.
    Given(usize),
}

/// One line of a seed file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    project: String,
    source: String,
    comment: Value,
}

/// A seed that cannot be loaded: the line (or comment) at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedError {
    origin: Option<Origin>,
    message: String,
}

impl SeedError {
    /// The line of the JSON-lines text at fault (from 1), when the comment
    /// came from one.
    pub fn line(&self) -> Option<usize> {
        match self.origin {
            Some(Origin::Line(n)) => Some(n),
            _ => None,
        }
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin {
            Some(Origin::Line(n)) => write!(f, "line {n}: {}", self.message),
            Some(Origin::Given(n)) => write!(f, "seed comment {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SeedError {}

/// A project or source name as the spec's `PathSegment` allows it: any
/// text but empty, `.` and `..` (a client percent-encodes the rest).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        Err(format!("`{what}`: not a usable name: {name:?}"))
    } else {
        Ok(())
    }
}

impl Seed {
    /// An empty seed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads JSON lines, `{"project", "source", "comment"}` each; blank
    /// lines are skipped. The first line that is not such an object is the
    /// error, with its number.
    pub fn from_json_lines(text: &str) -> Result<Self, SeedError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let origin = Origin::Line(index + 1);
            if raw.trim().is_empty() {
                continue;
            }
            let at = |message: String| SeedError {
                origin: Some(origin),
                message,
            };
            let line: Line = serde_json::from_str(raw)
                .map_err(|e| at(format!("not a {{project, source, comment}} object: {e}")))?;
            check_name("project", &line.project).map_err(at)?;
            check_name("source", &line.source).map_err(at)?;
            if !line.comment.is_object() {
                return Err(at("`comment`: not an object".into()));
            }
            entries.push(Entry {
                origin,
                project: line.project,
                source: line.source,
                comment: Ok(line.comment),
            });
        }
        Ok(Self { entries })
    }

    /// Adds comments (a `CommentNew` each, e.g. `cm_api::types::CommentNew`
    /// or JSON) for `project`/`source`.
    pub fn comments<C: Serialize>(
        mut self,
        project: impl Into<String>,
        source: impl Into<String>,
        comments: impl IntoIterator<Item = C>,
    ) -> Self {
        let (project, source) = (project.into(), source.into());
        let first = self
            .entries
            .iter()
            .filter(|e| matches!(e.origin, Origin::Given(_)))
            .count();
        for (index, comment) in comments.into_iter().enumerate() {
            self.entries.push(Entry {
                origin: Origin::Given(first + index + 1),
                project: project.clone(),
                source: source.clone(),
                comment: serde_json::to_value(comment).map_err(|e| e.to_string()),
            });
        }
        self
    }

    /// How many comments it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The other seed's comments after this one's.
    pub(crate) fn extend(&mut self, other: Seed) {
        let base = self
            .entries
            .iter()
            .filter(|e| matches!(e.origin, Origin::Given(_)))
            .count();
        self.entries.extend(other.entries.into_iter().map(|mut e| {
            if let Origin::Given(n) = e.origin {
                e.origin = Origin::Given(base + n);
            }
            e
        }));
    }

    /// Loads every comment into `state`, creating projects and sources as
    /// needed; the number of comments loaded. Stops at the first comment
    /// `sync_comments` refuses (the sandbox then does not start, so what
    /// was loaded before it is never served).
    pub(crate) fn load(&self, state: &mut State) -> Result<usize, SeedError> {
        for entry in &self.entries {
            let at = |message: String| SeedError {
                origin: Some(entry.origin),
                message,
            };
            check_name("project", &entry.project).map_err(at)?;
            check_name("source", &entry.source).map_err(at)?;
            let comment = entry.comment.clone().map_err(at)?;
            if state.get_project(&entry.project).is_err() {
                state
                    .create_project(&entry.project, json!({"project": {}}))
                    .map_err(|e| at(e.message))?;
            }
            if state.get_source(&entry.project, &entry.source).is_err() {
                state
                    .create_source(&entry.project, &entry.source, json!({"source": {}}))
                    .map_err(|e| at(e.message))?;
            }
            state
                .sync_comments(
                    &entry.project,
                    &entry.source,
                    CheckedComments::check(json!({"comments": [comment]})),
                )
                .map_err(|e| {
                    // `comments[0].messages...` names the field within the comment.
                    at(e.message.replacen("`comments[0].", "`comment.", 1))
                })?;
        }
        Ok(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"project": "acme", "source": "inbox", "comment": {"id": "c1", "timestamp": "2026-03-01T10:00:00Z", "messages": [{"body": {"text": "Refund?"}}]}}
{"project": "acme", "source": "inbox", "comment": {"id": "c2", "messages": [{"body": {"text": "Thanks"}}]}}

{"project": "acme", "source": "archive", "comment": {"id": "c1", "messages": [{"body": {"text": "Old"}}]}}
"#;

    fn line_error(text: &str) -> SeedError {
        Seed::from_json_lines(text).unwrap_err()
    }

    #[test]
    fn a_good_file_loads_every_comment_into_the_sources_it_names() {
        let seed = Seed::from_json_lines(GOOD).unwrap();
        assert_eq!(seed.len(), 3);
        let mut state = State::new();
        assert_eq!(seed.load(&mut state).unwrap(), 3);
        let inbox = state
            .list_source_comments("acme", "inbox", &crate::wire::Query::parse(None))
            .unwrap();
        let ids: Vec<&str> = inbox["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c1", "c2"]);
        let archive = state.get_comment("acme", "archive", "c1").unwrap();
        assert_eq!(archive["comment"]["messages"][0]["body"]["text"], "Old");
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_number() {
        let cases = [
            (
                format!("{GOOD}not json\n"),
                5,
                "not a {project, source, comment}",
            ),
            (
                "\n\n{\"project\": \"acme\", \"source\": \"inbox\"}".to_owned(),
                3,
                "comment",
            ),
            (
                r#"{"project": "acme", "source": "inbox", "comment": [], "x": 1}"#.to_owned(),
                1,
                "unknown field `x`",
            ),
            (
                r#"{"project": "acme", "source": "..", "comment": {}}"#.to_owned(),
                1,
                "`source`",
            ),
            (
                r#"{"project": "acme", "source": "inbox", "comment": 7}"#.to_owned(),
                1,
                "`comment`: not an object",
            ),
        ];
        for (text, line, needle) in cases {
            let error = line_error(&text);
            assert_eq!(error.line(), Some(line), "{error}");
            assert!(error.message().contains(needle), "{error}");
            assert!(error.to_string().starts_with(&format!("line {line}: ")));
        }
    }

    #[test]
    fn a_comment_sync_comments_refuses_names_its_line_and_field() {
        let text = format!(
            "{GOOD}{}\n",
            r#"{"project": "acme", "source": "inbox", "comment": {"id": "c9", "messages": [{"body": {}}]}}"#
        );
        let seed = Seed::from_json_lines(&text).unwrap();
        let error = seed.load(&mut State::new()).unwrap_err();
        assert_eq!(error.line(), Some(5), "{error}");
        assert!(
            error.message().contains("`comment.messages[0].body"),
            "{error}"
        );
    }

    #[test]
    fn given_comments_are_numbered_in_errors() {
        let seed = Seed::new().comments("acme", "inbox", [json!({"id": "c1"}), json!({"id": 5})]);
        let error = seed.load(&mut State::new()).unwrap_err();
        assert_eq!(error.line(), None);
        assert!(error.to_string().starts_with("seed comment 2: "), "{error}");
    }
}
