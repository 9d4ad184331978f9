//! progenitor's typed httpmock helpers, used as a downstream crate would use
//! them in its own tests (the README shows the same pattern). Each helper
//! matches the operation's method and path; the typed `body`/`ok` methods
//! take the generated types.

use cm_api::types::{SyncCommentsRequest, SyncCommentsResponse};
use cm_api_contract_tests::harness::client_for;
use cm_api_contract_tests::{request_example, success_example};
use cm_api_gen::mock::MockServerExt;
use httpmock::MockServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_typed_mock_serves_a_typed_answer_to_the_matching_request() {
    let server = MockServer::start();
    let request: SyncCommentsRequest =
        serde_json::from_value(request_example("sync_comments").unwrap().clone()).unwrap();
    let answer: SyncCommentsResponse =
        serde_json::from_value(success_example("sync_comments").unwrap().clone()).unwrap();
    let mock = server.sync_comments(|when, then| {
        when.project(&"acme".parse().unwrap())
            .source_name(&"inbox".parse().unwrap())
            .body(&request);
        then.ok(&answer);
    });
    let client = client_for(&server);

    let response = runtime()
        .block_on(
            client
                .sync_comments()
                .project("acme")
                .source_name("inbox")
                .body(request.clone())
                .send(),
        )
        .expect("the mock answers");

    mock.assert();
    assert_eq!(response.into_inner(), answer);
}

#[test]
fn a_typed_mock_serves_the_error_envelope() {
    let server = MockServer::start();
    let mock = server.list_project_datasets(|when, then| {
        when.project(&"acme".parse().unwrap());
        then.client_error(
            403,
            &cm_api::types::ErrorResponse {
                status: "error".into(),
                message: Some("You do not have permission to view datasets in acme".into()),
            },
        );
    });
    let client = client_for(&server);

    let error = runtime()
        .block_on(client.list_project_datasets().project("acme").send())
        .unwrap_err();

    mock.assert();
    assert_eq!(error.status(), Some(403));
    assert_eq!(
        error.message(),
        Some("You do not have permission to view datasets in acme")
    );
}
