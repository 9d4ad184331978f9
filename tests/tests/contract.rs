//! Every operation in the spec, called through `cm_api::Client` against a
//! mock that accepts only the documented request, decodes the spec's own
//! example without losing a field.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use cm_api_contract_tests::cases::{ATTACHMENT_BYTES, cases};
use cm_api_contract_tests::harness::{Answer, Canned, Case, Outcome, exercise, normalised};
use cm_api_contract_tests::{operation, operation_ids, spec, success_example};
use serde_json::Value;

/// Runs `check` for every case and collects every failure, a panic (such
/// as httpmock's report of a request that matched nothing) included, under
/// its operation id, so one run lists every broken operation.
async fn for_each_case<F, Fut>(check: F) -> Vec<String>
where
    F: Fn(Case) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut failures = Vec::new();
    for case in cases() {
        let operation_id = case.operation_id;
        match AssertUnwindSafe(check(case)).catch_unwind().await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => failures.push(format!("{operation_id}: {message}")),
            Err(panic) => failures.push(format!("{operation_id}: {}", panic_message(panic))),
        }
    }
    failures
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".into())
}

/// The first place two JSON values differ, as a JSON pointer.
fn first_difference(expected: &Value, actual: &Value, pointer: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            keys.into_iter().find_map(|k| match (e.get(k), a.get(k)) {
                (Some(ev), Some(av)) => first_difference(ev, av, &format!("{pointer}/{k}")),
                (Some(ev), None) => Some(format!("{pointer}/{k}: dropped (expected {ev})")),
                (None, Some(av)) => Some(format!("{pointer}/{k}: appeared ({av})")),
                (None, None) => None,
            })
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| first_difference(ev, av, &format!("{pointer}/{i}"))),
        // `1` and `1.0` are the same JSON number; a `number` field decodes to f64.
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
        _ if expected == actual => None,
        _ => Some(format!("{pointer}: expected {expected}, got {actual}")),
    }
}

fn decodes_the_example(case: &Case, outcome: Outcome) -> Result<(), String> {
    let value = outcome.map_err(|error| format!("call failed: {error}"))?;
    let expected = match case.response {
        Canned::Example => normalised(success_example(case.operation_id).expect("example")),
        Canned::Bytes { body, .. } => Value::from(body.to_vec()),
    };
    match first_difference(&expected, &normalised(&value), "") {
        None => Ok(()),
        Some(difference) => Err(format!(
            "round trip through the generated type differs at {difference}"
        )),
    }
}

#[tokio::test]
async fn every_operation_sends_its_documented_request_and_decodes_its_example() {
    let failures = for_each_case(|case| async move {
        let outcome = exercise(&case, Answer::success(&case)).await;
        decodes_the_example(&case, outcome)
    })
    .await;
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_attachment_download_returns_the_bytes_served() {
    let case = cases()
        .into_iter()
        .find(|c| c.operation_id == "get_attachment")
        .unwrap();
    let bytes = exercise(&case, Answer::success(&case))
        .await
        .expect("download");
    assert_eq!(bytes, Value::from(ATTACHMENT_BYTES.to_vec()));
}

/// Operation ids without a case, and cases naming no operation.
fn coverage(spec_operations: &[&str], case_operations: &[&str]) -> (Vec<String>, Vec<String>) {
    let spec_set: BTreeSet<&str> = spec_operations.iter().copied().collect();
    let case_set: BTreeSet<&str> = case_operations.iter().copied().collect();
    (
        spec_set
            .difference(&case_set)
            .map(|s| s.to_string())
            .collect(),
        case_set
            .difference(&spec_set)
            .map(|s| s.to_string())
            .collect(),
    )
}

fn case_operations() -> Vec<&'static str> {
    cases().iter().map(|c| c.operation_id).collect()
}

#[test]
fn every_operation_in_the_spec_has_a_contract_case() {
    let (missing, unknown) = coverage(&operation_ids(), &case_operations());
    assert!(
        missing.is_empty(),
        "operations without a contract case: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "cases for operations the spec lacks: {unknown:?}"
    );
    let mut seen = BTreeSet::new();
    let duplicates: Vec<_> = case_operations()
        .into_iter()
        .filter(|op| !seen.insert(*op))
        .collect();
    assert!(
        duplicates.is_empty(),
        "operations with two cases: {duplicates:?}"
    );
}

#[test]
fn the_coverage_check_names_an_operation_added_without_a_case() {
    let mut document = spec().clone();
    document["paths"]["/api/v1/widgets"] = serde_json::json!({
        "get": { "operationId": "list_widgets", "responses": {} }
    });
    let ids: Vec<&str> = cm_api_contract_tests::operations(&document)
        .into_iter()
        .filter_map(|op| op.id())
        .collect();

    let (missing, unknown) = coverage(&ids, &case_operations());

    // Whatever else is missing is reported by the test above; here, the
    // new operation must be named.
    let (already_missing, _) = coverage(&operation_ids(), &case_operations());
    let newly_missing: Vec<_> = missing
        .iter()
        .filter(|m| !already_missing.contains(m))
        .collect();
    assert_eq!(newly_missing, ["list_widgets"]);
    assert!(unknown.is_empty());
}

#[test]
fn every_case_uses_its_operations_method_and_path_template() {
    let mut mismatches = Vec::new();
    for case in cases() {
        let op = operation(case.operation_id);
        if op.method.to_uppercase() != case.method {
            mismatches.push(format!(
                "{}: method {} but the spec says {}",
                case.operation_id, case.method, op.method
            ));
        }
        let template: Vec<&str> = op.path.split('/').collect();
        let actual: Vec<&str> = case.path.split('/').collect();
        let matches = template.len() == actual.len()
            && template
                .iter()
                .zip(&actual)
                .all(|(t, a)| match t.find('{') {
                    Some(start) => a.starts_with(&t[..start]) && a.len() > start,
                    None => t == a,
                });
        if !matches {
            mismatches.push(format!(
                "{}: path {} does not fit {}",
                case.operation_id, case.path, op.path
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
