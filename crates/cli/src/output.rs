//! Printing results: aligned tables for people, JSON for programs, and the
//! JSON-lines writer that the comment and stream commands share.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::cli::Format;
use crate::exit::Failure;

/// Columns of text, aligned when printed.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            rows: vec![headers.into_iter().map(Into::into).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = std::io::stdout().lock();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(
                        ' ',
                        widths[c] - cell.chars().count() + 2,
                    ));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

/// `value` as JSON: pretty for `json`, one line per element of an array for
/// `jsonl` (one line for anything else).
pub fn print_json<T: Serialize>(value: &T, format: Format) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Jsonl => match serde_json::to_value(value) {
            Ok(Value::Array(items)) => items.iter().try_for_each(|item| {
                serde_json::to_writer(&mut out, item)?;
                out.write_all(b"\n").map_err(serde_json::Error::io)
            }),
            Ok(other) => serde_json::to_writer(&mut out, &other)
                .and_then(|()| out.write_all(b"\n").map_err(serde_json::Error::io)),
            Err(e) => Err(e),
        },
        _ => serde_json::to_writer_pretty(&mut out, value)
            .and_then(|()| out.write_all(b"\n").map_err(serde_json::Error::io)),
    };
    written.map_err(|e| Failure::io("cannot write to stdout", e.into()))
}

/// A text cell from `value` at a JSON pointer: strings as they are, other
/// values as JSON, missing or `null` as `-`.
pub fn cell(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Writes JSON lines to stdout through a buffer, flushed on demand: the
/// stream consumer flushes before it advances, so a result is on its way
/// out before the server forgets it.
pub struct JsonLines {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl JsonLines {
    pub fn new() -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
        }
    }

    /// Writes one value as one line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<(), Failure> {
        serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| Failure::io("cannot write to stdout", e))
    }

    /// Pushes what was written to stdout.
    pub fn flush(&mut self) -> Result<(), Failure> {
        self.out
            .flush()
            .map_err(|e| Failure::io("cannot write to stdout", e))
    }
}
