//! The `Server-Timing` response header (W3C Server Timing).

use std::fmt;
use std::time::Duration;

/// Server-side timing metrics reported in a response's `Server-Timing` headers.
///
/// The platform reports at least a `total` metric; [`ServerTiming::total`]
/// gives it as a [`Duration`]. Parsing follows the W3C grammar
/// (`metric;dur=12.5;desc="text", other`), with optional whitespace, quoted
/// strings and several headers. It never fails: malformed entries are skipped,
/// so a header that is entirely malformed yields no metrics.
///
/// ```
/// use std::time::Duration;
/// use cm_api::ServerTiming;
///
/// let timing = ServerTiming::parse(r#"db;dur=53, total;dur=120.5;desc="whole request""#);
/// assert_eq!(timing.total(), Some(Duration::from_micros(120_500)));
/// assert_eq!(timing.get("db").and_then(|m| m.duration()), Some(Duration::from_millis(53)));
/// assert_eq!(timing.metrics().len(), 2);
/// assert!(ServerTiming::parse("=;;,\"").is_empty());
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct ServerTiming {
    /// One pointer, not a `Vec` (three words): every [`crate::Error`] that
    /// carries a response holds one, and the error must stay under 128
    /// bytes (clippy's `result_large_err`). `None` when there are none.
    #[expect(clippy::box_collection, reason = "one word instead of three")]
    metrics: Option<Box<Vec<Metric>>>,
}

impl fmt::Debug for ServerTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTiming")
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// The metrics as stored: nothing allocated when there are none.
#[expect(clippy::box_collection, reason = "see `ServerTiming::metrics`")]
fn stored(metrics: Vec<Metric>) -> Option<Box<Vec<Metric>>> {
    (!metrics.is_empty()).then(|| Box::new(metrics))
}

/// One `Server-Timing` metric: a name with an optional duration and description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    name: String,
    duration: Option<Duration>,
    description: Option<String>,
}

impl Metric {
    /// The metric's name, e.g. `total`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `dur` parameter (milliseconds on the wire), if present and a
    /// valid non-negative number.
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// The `desc` parameter, if present.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

impl ServerTiming {
    /// The name of the metric covering the whole request on the server.
    pub const TOTAL: &'static str = "total";

    /// Parses one header value; malformed entries are skipped.
    pub fn parse(value: &str) -> Self {
        let mut metrics = Vec::new();
        parse_into(value.as_bytes(), &mut metrics);
        Self {
            metrics: stored(metrics),
        }
    }

    /// Parses every `Server-Timing` header of a response, in order.
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Self {
        let mut metrics = Vec::new();
        for value in headers.get_all("server-timing") {
            parse_into(value.as_bytes(), &mut metrics);
        }
        Self {
            metrics: stored(metrics),
        }
    }

    /// The server's total time for the request (the `total` metric's duration).
    pub fn total(&self) -> Option<Duration> {
        self.get(Self::TOTAL).and_then(Metric::duration)
    }

    /// The first metric with this name.
    pub fn get(&self, name: &str) -> Option<&Metric> {
        self.metrics().iter().find(|m| m.name == name)
    }

    /// All metrics, in header order.
    pub fn metrics(&self) -> &[Metric] {
        self.metrics.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Whether no metric was reported.
    pub fn is_empty(&self) -> bool {
        self.metrics().is_empty()
    }
}

/// `tchar` from RFC 9110.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        let bytes = self.s.get(start..self.i)?;
        if bytes.is_empty() {
            return None;
        }
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// `quoted-string` with `\` escapes; `None` if unterminated.
    fn quoted_string(&mut self) -> Option<String> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    /// One metric, stopping before the `,` or end that follows it.
    fn metric(&mut self) -> Option<Metric> {
        let name = self.token()?;
        let mut metric = Metric {
            name,
            duration: None,
            description: None,
        };
        let (mut seen_dur, mut seen_desc) = (false, false);
        loop {
            self.skip_ows();
            if self.peek() != Some(b';') {
                return Some(metric);
            }
            self.i += 1;
            self.skip_ows();
            let param = self.token()?;
            self.skip_ows();
            let value = if self.peek() == Some(b'=') {
                self.i += 1;
                self.skip_ows();
                match self.peek()? {
                    b'"' => self.quoted_string()?,
                    _ => self.token()?,
                }
            } else {
                String::new()
            };
            // The first occurrence of a parameter wins.
            if param.eq_ignore_ascii_case("dur") && !seen_dur {
                seen_dur = true;
                metric.duration = parse_millis(&value);
            } else if param.eq_ignore_ascii_case("desc") && !seen_desc {
                seen_desc = true;
                metric.description = Some(value);
            }
        }
    }

    /// Skips to just after the next `,` outside a quoted string (or to the end).
    fn skip_entry(&mut self) {
        let mut quoted = false;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'\\' if quoted => self.i += 1,
                b'"' => quoted = !quoted,
                b',' if !quoted => return,
                _ => {}
            }
        }
    }
}

fn parse_into(s: &[u8], out: &mut Vec<Metric>) {
    let mut p = Parser { s, i: 0 };
    loop {
        p.skip_ows();
        match p.peek() {
            None => return,
            Some(b',') => {
                p.i += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = p.i;
        match p.metric() {
            Some(metric) if matches!(p.peek(), None | Some(b',')) => out.push(metric),
            _ => {
                p.i = start;
                p.skip_entry();
            }
        }
    }
}

fn parse_millis(value: &str) -> Option<Duration> {
    let millis: f64 = value.parse().ok()?;
    if !millis.is_finite() || millis < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(millis / 1000.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params_quotes_and_whitespace() {
        let t = ServerTiming::parse(
            "cache;desc=\"Cache \\\"Read\\\"\";dur=23.2 , db ; dur = 53,app;dur=47.2;DUR=1, miss",
        );
        let names: Vec<_> = t.metrics().iter().map(Metric::name).collect();
        assert_eq!(names, ["cache", "db", "app", "miss"]);
        assert_eq!(t.metrics()[0].description(), Some("Cache \"Read\""));
        assert_eq!(
            t.metrics()[0].duration(),
            Some(Duration::from_micros(23_200))
        );
        assert_eq!(t.metrics()[1].duration(), Some(Duration::from_millis(53)));
        assert_eq!(
            t.metrics()[2].duration(),
            Some(Duration::from_micros(47_200))
        );
        assert_eq!(t.metrics()[3].duration(), None);
        assert_eq!(t.total(), None);
    }

    #[test]
    fn skips_malformed_entries_only() {
        let t = ServerTiming::parse("bad name;dur=1, total;dur=5, x;desc=\"open, y;dur=2");
        let names: Vec<_> = t.metrics().iter().map(Metric::name).collect();
        assert_eq!(names, ["total"]);
        assert_eq!(t.total(), Some(Duration::from_millis(5)));
    }

    #[test]
    fn rejects_bad_durations() {
        for header in [
            "total;dur=-1",
            "total;dur=NaN",
            "total;dur=inf",
            "total;dur=1e400",
            "total;dur=abc",
        ] {
            assert_eq!(ServerTiming::parse(header).total(), None, "{header}");
        }
    }
}
