//! Property tests of the Server-Timing parser.

use std::time::Duration;

use cm_api::ServerTiming;
use proptest::prelude::*;

/// Optional whitespace.
fn ows() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dur_micros: Option<u32>,
    desc: Option<String>,
    quote_desc: bool,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}",
        proptest::option::of(any::<u32>()),
        proptest::option::of("[ -~]{0,16}"),
        any::<bool>(),
    )
        .prop_map(|(name, dur_micros, desc, quote_desc)| Entry {
            name,
            dur_micros,
            desc,
            quote_desc,
        })
}

fn render(entry: &Entry, ws: &[String]) -> String {
    let mut out = entry.name.clone();
    if let Some(micros) = entry.dur_micros {
        out += &format!(
            "{};{}dur{}={}{}.{:03}",
            ws[0],
            ws[1],
            ws[2],
            ws[3],
            micros / 1000,
            micros % 1000
        );
    }
    if let Some(desc) = &entry.desc {
        let token_like = !desc.is_empty()
            && desc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let value = if token_like && !entry.quote_desc {
            desc.clone()
        } else {
            format!("\"{}\"", desc.replace('\\', "\\\\").replace('"', "\\\""))
        };
        out += &format!("{};{}desc{}={}{}", ws[1], ws[0], ws[3], ws[2], value);
    }
    out
}

proptest! {
    // A fixed seed keeps the suite deterministic; no regression files are written.
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5e12_7e12),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics_on_arbitrary_input(input in ".{0,200}") {
        let _ = ServerTiming::parse(&input);
    }

    #[test]
    fn never_panics_on_header_like_noise(input in "[a-z;=,\" \\\\.0-9-]{0,80}") {
        let timing = ServerTiming::parse(&input);
        for metric in timing.metrics() {
            prop_assert!(!metric.name().is_empty());
        }
    }

    #[test]
    fn well_formed_headers_round_trip(
        entries in proptest::collection::vec(entry(), 0..6),
        ws in proptest::collection::vec(ows(), 4),
        sep in (ows(), ows()),
    ) {
        let header = entries
            .iter()
            .map(|e| render(e, &ws))
            .collect::<Vec<_>>()
            .join(&format!("{},{}", sep.0, sep.1));
        let timing = ServerTiming::parse(&header);
        prop_assert_eq!(timing.metrics().len(), entries.len(), "{}", header);
        for (metric, entry) in timing.metrics().iter().zip(&entries) {
            prop_assert_eq!(metric.name(), entry.name.as_str());
            prop_assert_eq!(metric.duration(), entry.dur_micros.map(|m| Duration::from_micros(u64::from(m))));
            prop_assert_eq!(metric.description(), entry.desc.as_deref());
        }
    }
}

#[test]
fn total_is_found_among_other_metrics() {
    let timing = ServerTiming::parse("cache;desc=hit, total;dur=0.5");
    assert_eq!(timing.total(), Some(Duration::from_micros(500)));
    assert_eq!(
        timing.get("cache").and_then(|m| m.description()),
        Some("hit")
    );
}
