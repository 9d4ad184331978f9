//! Every operation reports the platform's error envelope, a proxy's page and
//! an unreadable success body as distinct, typed errors.

use cm_api_contract_tests::cases::cases;
use cm_api_contract_tests::harness::{Answer, Canned, exercise};
use serde_json::json;

/// The statuses the platform answers with its error envelope.
const ENVELOPE_STATUSES: [u16; 9] = [400, 401, 403, 404, 409, 422, 429, 500, 503];

const GATEWAY_PAGE: &[u8] = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>";

#[tokio::test]
async fn the_error_envelope_becomes_an_api_error_with_the_servers_message() {
    let mut failures = Vec::new();
    for case in cases() {
        for status in ENVELOPE_STATUSES {
            let message = format!("{} refused with {status}", case.operation_id);
            let answer = Answer::json(status, &json!({ "status": "error", "message": message }));
            match exercise(&case, answer).await {
                Err(error @ cm_api::Error::Api { .. })
                    if error.status() == Some(status)
                        && error.message() == Some(message.as_str()) =>
                {
                    let display = error.to_string();
                    if !display.contains(&message) || display.contains('\n') {
                        failures.push(format!(
                            "{}/{status}: Display is not one line with the message: {display}",
                            case.operation_id
                        ));
                    }
                }
                other => failures.push(format!("{}/{status}: got {other:?}", case.operation_id)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_gateway_html_page_is_an_unexpected_response_with_status_and_snippet() {
    let mut failures = Vec::new();
    for case in cases() {
        let answer = Answer::raw(502, "text/html", GATEWAY_PAGE);
        match exercise(&case, answer).await {
            Err(error @ cm_api::Error::UnexpectedResponse { .. })
                if error.status() == Some(502) && error.to_string().contains("502 Bad Gateway") => {
            }
            other => failures.push(format!("{}: got {other:?}", case.operation_id)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_success_status_with_a_non_json_body_is_not_trusted() {
    let mut failures = Vec::new();
    for case in cases() {
        // A download's body is not JSON by design.
        if matches!(case.response, Canned::Bytes { .. }) {
            continue;
        }
        let answer = Answer::raw(200, "text/html", b"<html>Please log in</html>");
        match exercise(&case, answer).await {
            Err(
                error @ (cm_api::Error::Decode { .. } | cm_api::Error::UnexpectedResponse { .. }),
            ) if error.status() == Some(200) => {}
            other => failures.push(format!("{}: got {other:?}", case.operation_id)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
