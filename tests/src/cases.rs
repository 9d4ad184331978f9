//! One contract case per operation of the spec: the exact request the
//! client must send, and the call that sends it through the public client.
//!
//! Path values are chosen to exercise encoding: a space (`get_source`),
//! `/`, `#`, `%` and non-ASCII (`get_comment`, `get_dataset`), the literal
//! `id:` segments, and the `latest` model version (`predict_comments`).

use futures::future::BoxFuture;

use crate::harness::{Canned, Case, Outcome, request_body, run, run_bytes};

/// Declares a [`Case`]: `operation: METHOD "exact/encoded/path"`, optional
/// `query [(key, value), ...]` (exactly the pairs sent), optional
/// `body(name: Type)` (binds the spec's request example, decoded into the
/// generated `Type`, as `name`), then `|client| builder` with the arguments
/// that must produce that request, built on `cm_api::Client` itself (the
/// facade every user calls); `run` sends it through `cm_api::Operation`.
macro_rules! case {
    ($op:ident: $method:ident $path:literal
        $(, query [$(($key:literal, $value:literal)),* $(,)?])?
        $(, body($body:ident: $body_type:ident))?,
        |$client:ident| $builder:expr $(,)?) => {{
        fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
            Box::pin(async move {
                $(let $body: cm_api::types::$body_type = request_body(stringify!($op));)?
                let $client = client;
                run($builder).await
            })
        }
        Case {
            operation_id: stringify!($op),
            method: stringify!($method),
            path: $path,
            query: &[$($(($key, $value)),*)?],
            sends_body: false $(|| { let _ = stringify!($body); true })?,
            response: Canned::Example,
            call,
        }
    }};
}

/// The attachment body a case serves and expects back, byte for byte.
pub const ATTACHMENT_BYTES: &[u8] = b"%PDF-1.7\n\x00\x01binary\xff";

/// Every contract case, one per operation.
pub fn cases() -> Vec<Case> {
    let mut cases = generated_cases();
    cases.extend(crate::hand_written_cases::cases());
    cases
}

/// The contract case of `operation_id`; panics with its name if there is
/// none, since every operation of the spec has one.
pub fn case(operation_id: &str) -> Case {
    cases()
        .into_iter()
        .find(|case| case.operation_id == operation_id)
        .unwrap_or_else(|| panic!("{operation_id} has no contract case"))
}

/// Cases for the operations of the generated client.
fn generated_cases() -> Vec<Case> {
    vec![
        case!(list_sources: GET "/api/v1/sources",
            |c| c.list_sources()),
        case!(list_project_sources: GET "/api/v1/sources/acme",
            |c| c.list_project_sources().project("acme")),
        case!(get_source: GET "/api/v1/sources/acme/inbox%20support",
            |c| c.get_source().project("acme").source_name("inbox support")),
        case!(create_source: PUT "/api/v1/sources/acme/inbox", body(body: CreateSourceRequest),
            |c| c.create_source().project("acme").source_name("inbox").body(body)),
        case!(update_source: POST "/api/v1/sources/acme/inbox", body(body: UpdateSourceRequest),
            |c| c.update_source().project("acme").source_name("inbox").body(body)),
        case!(get_source_by_id: GET "/api/v1/sources/id:18ba5ce699f8da1f",
            |c| c.get_source_by_id().source_id("18ba5ce699f8da1f")),
        case!(delete_source_by_id: DELETE "/api/v1/sources/id:18ba5ce699f8da1f",
            |c| c.delete_source_by_id().source_id("18ba5ce699f8da1f")),
        case!(get_source_statistics: POST "/api/v1/sources/acme/inbox/statistics", body(body: SourceStatisticsRequest),
            |c| c.get_source_statistics().project("acme").source_name("inbox").body(body)),
        case!(sync_comments: POST "/api/v1/sources/acme/inbox/sync", query [("no_charge", "true")], body(body: SyncCommentsRequest),
            |c| c.sync_comments().project("acme").source_name("inbox").no_charge(true).body(body)),
        case!(sync_raw_emails: POST "/api/v1/sources/acme/inbox/sync-raw-emails", query [("no_charge", "false")], body(body: SyncRawEmailsRequest),
            |c| c.sync_raw_emails().project("acme").source_name("inbox").no_charge(false).body(body)),
        case!(get_comment: GET "/api/v1/sources/acme/inbox/comments/msg%2F42%231%25%C3%A9", query [("include_markup", "true")],
            |c| c.get_comment().project("acme").source_name("inbox").comment_id("msg/42#1%é").include_markup(true)),
        case!(delete_comments: DELETE "/api/v1/sources/acme/inbox/comments", query [("id", "0123"), ("id", "0456"), ("ids", "0789,0abc")],
            |c| c.delete_comments().project("acme").source_name("inbox").id(vec!["0123".to_owned(), "0456".to_owned()]).ids("0789,0abc")),
        case!(get_comment_threads: GET "/api/v1/sources/acme/inbox/threads", query [("thread_id", "t-1")],
            |c| c.get_comment_threads().project("acme").source_name("inbox").thread_id(vec!["t-1".to_owned()])),
        case!(list_datasets: GET "/api/v1/datasets",
            |c| c.list_datasets()),
        case!(list_project_datasets: GET "/api/v1/datasets/acme",
            |c| c.list_project_datasets().project("acme")),
        case!(get_dataset: GET "/api/v1/datasets/acme/r%C3%A9clamations",
            |c| c.get_dataset().project("acme").dataset_name("réclamations")),
        case!(create_dataset: PUT "/api/v1/datasets/acme/support", body(body: CreateDatasetRequest),
            |c| c.create_dataset().project("acme").dataset_name("support").body(body)),
        case!(update_dataset: POST "/api/v1/datasets/acme/support", body(body: UpdateDatasetRequest),
            |c| c.update_dataset().project("acme").dataset_name("support").body(body)),
        case!(delete_dataset: DELETE "/api/v1/datasets/acme/support",
            |c| c.delete_dataset().project("acme").dataset_name("support")),
        case!(delete_dataset_by_id: DELETE "/api/v1/datasets/id:0b8a2f4e1c9d3a7b",
            |c| c.delete_dataset_by_id().dataset_id("0b8a2f4e1c9d3a7b")),
        case!(export_dataset: POST "/api/v1/datasets/acme/support/export", body(body: ExportDatasetRequest),
            |c| c.export_dataset().project("acme").dataset_name("support").body(body)),
        case!(sync_annotations: POST "/api/v1/datasets/acme/support/sync-annotations", body(body: SyncAnnotationsRequest),
            |c| c.sync_annotations().project("acme").dataset_name("support").body(body)),
        case!(get_model_validation: GET "/api/v1/datasets/acme/support/labellers/7/validation",
            |c| c.get_model_validation().project("acme").dataset_name("support").model_version("7")),
        case!(predict_documents: POST "/api/v1/datasets/acme/support/labellers/7/predict", body(body: PredictRequest),
            |c| c.predict_documents().project("acme").dataset_name("support").model_version("7").body(body)),
        case!(predict_comments: POST "/api/v1/datasets/acme/support/labellers/latest/predict-comments", body(body: PredictCommentsRequest),
            |c| c.predict_comments().project("acme").dataset_name("support").model_version("latest").body(body)),
        case!(predict_raw_emails: POST "/api/v1/datasets/acme/support/labellers/7/predict-raw-emails", body(body: PredictRawEmailsRequest),
            |c| c.predict_raw_emails().project("acme").dataset_name("support").model_version("7").body(body)),
        case!(list_model_tags: GET "/api/v1/datasets/acme/support/model-tags",
            |c| c.list_model_tags().project("acme").dataset_name("support")),
        case!(list_streams: GET "/api/v1/datasets/acme/support/streams",
            |c| c.list_streams().project("acme").dataset_name("support")),
        case!(create_stream: PUT "/api/v1/datasets/acme/support/streams", body(body: CreateStreamRequest),
            |c| c.create_stream().project("acme").dataset_name("support").body(body)),
        case!(get_stream: GET "/api/v1/datasets/acme/support/streams/urgent",
            |c| c.get_stream().project("acme").dataset_name("support").stream_name("urgent")),
        case!(update_stream: POST "/api/v1/datasets/acme/support/streams/urgent", body(body: UpdateStreamRequest),
            |c| c.update_stream().project("acme").dataset_name("support").stream_name("urgent").body(body)),
        case!(delete_stream: DELETE "/api/v1/datasets/acme/support/streams/urgent",
            |c| c.delete_stream().project("acme").dataset_name("support").stream_name("urgent")),
        case!(get_stream_results: GET "/api/v1/datasets/acme/support/streams/urgent/results", query [("max_results", "16"), ("max_filtered", "8")],
            |c| c.get_stream_results().project("acme").dataset_name("support").stream_name("urgent").max_results(16).max_filtered(8)),
        case!(get_stream_results_preview: GET "/api/preview/datasets/acme/support/streams/urgent/results", query [("max_results", "16"), ("max_filtered", "8")],
            |c| c.get_stream_results_preview().project("acme").dataset_name("support").stream_name("urgent").max_results(16).max_filtered(8)),
        case!(fetch_stream: POST "/api/v1/datasets/acme/support/streams/urgent/fetch", body(body: FetchStreamRequest),
            |c| c.fetch_stream().project("acme").dataset_name("support").stream_name("urgent").body(body)),
        case!(fetch_gx_stream: POST "/api/preview/datasets/acme/support/streams/urgent/gx-fetch", body(body: FetchStreamRequest),
            |c| c.fetch_gx_stream().project("acme").dataset_name("support").stream_name("urgent").body(body)),
        case!(advance_stream: POST "/api/v1/datasets/acme/support/streams/urgent/advance", body(body: AdvanceStreamRequest),
            |c| c.advance_stream().project("acme").dataset_name("support").stream_name("urgent").body(body)),
        case!(reset_stream: POST "/api/v1/datasets/acme/support/streams/urgent/reset", body(body: ResetStreamRequest),
            |c| c.reset_stream().project("acme").dataset_name("support").stream_name("urgent").body(body)),
        case!(store_stream_exceptions: PUT "/api/v1/datasets/acme/support/streams/urgent/exceptions", body(body: StoreStreamExceptionsRequest),
            |c| c.store_stream_exceptions().project("acme").dataset_name("support").stream_name("urgent").body(body)),
        case!(delete_stream_exceptions: DELETE "/api/v1/datasets/acme/support/streams/urgent/exceptions", query [("uid", "18ba5ce699f8da1f.0123")],
            |c| c.delete_stream_exceptions().project("acme").dataset_name("support").stream_name("urgent").uid(vec!["18ba5ce699f8da1f.0123".to_owned()])),
        case!(list_triggers: GET "/api/v1/datasets/acme/support/triggers",
            |c| c.list_triggers().project("acme").dataset_name("support")),
        case!(create_trigger: PUT "/api/v1/datasets/acme/support/triggers", body(body: CreateTriggerRequest),
            |c| c.create_trigger().project("acme").dataset_name("support").body(body)),
        case!(get_trigger: GET "/api/v1/datasets/acme/support/triggers/urgent",
            |c| c.get_trigger().project("acme").dataset_name("support").trigger_name("urgent")),
        case!(update_trigger: POST "/api/v1/datasets/acme/support/triggers/urgent", body(body: UpdateTriggerRequest),
            |c| c.update_trigger().project("acme").dataset_name("support").trigger_name("urgent").body(body)),
        case!(delete_trigger: DELETE "/api/v1/datasets/acme/support/triggers/urgent",
            |c| c.delete_trigger().project("acme").dataset_name("support").trigger_name("urgent")),
        case!(fetch_trigger: POST "/api/v1/datasets/acme/support/triggers/urgent/fetch", body(body: FetchStreamRequest),
            |c| c.fetch_trigger().project("acme").dataset_name("support").trigger_name("urgent").body(body)),
        case!(advance_trigger: POST "/api/v1/datasets/acme/support/triggers/urgent/advance", body(body: AdvanceStreamRequest),
            |c| c.advance_trigger().project("acme").dataset_name("support").trigger_name("urgent").body(body)),
        case!(reset_trigger: POST "/api/v1/datasets/acme/support/triggers/urgent/reset", body(body: ResetStreamRequest),
            |c| c.reset_trigger().project("acme").dataset_name("support").trigger_name("urgent").body(body)),
        case!(store_trigger_exceptions: PUT "/api/v1/datasets/acme/support/triggers/urgent/exceptions", body(body: StoreStreamExceptionsRequest),
            |c| c.store_trigger_exceptions().project("acme").dataset_name("support").trigger_name("urgent").body(body)),
        case!(delete_trigger_exceptions: DELETE "/api/v1/datasets/acme/support/triggers/urgent/exceptions", query [("uid", "18ba5ce699f8da1f.0123")],
            |c| c.delete_trigger_exceptions().project("acme").dataset_name("support").trigger_name("urgent").uid(vec!["18ba5ce699f8da1f.0123".to_owned()])),
        case!(query_audit_events: POST "/api/v1/audit_events/query", body(body: QueryAuditEventsRequest),
            |c| c.query_audit_events().body(body)),
        case!(list_users: GET "/api/v1/users",
            |c| c.list_users()),
        case!(list_projects: GET "/api/v1/projects",
            |c| c.list_projects()),
        case!(get_thread_themes: POST "/api/preview/datasets/acme/support/thread-themes", body(body: ThreadThemesRequest),
            |c| c.get_thread_themes().project("acme").dataset_name("support").body(body)),
        // The `/api/_private` (cli tier) and `/auth` operations.
        case!(get_dataset_by_id: GET "/api/v1/datasets/id:0b8a2f4e1c9d3a7b",
            |c| c.get_dataset_by_id().dataset_id("0b8a2f4e1c9d3a7b")),
        case!(list_buckets: GET "/api/_private/buckets",
            |c| c.list_buckets()),
        case!(list_project_buckets: GET "/api/_private/buckets/acme",
            |c| c.list_project_buckets().project("acme")),
        case!(get_bucket: GET "/api/_private/buckets/acme/shared%20mailbox",
            |c| c.get_bucket().project("acme").bucket_name("shared mailbox")),
        case!(create_bucket: PUT "/api/_private/buckets/acme/shared%20mailbox", body(body: CreateBucketRequest),
            |c| c.create_bucket().project("acme").bucket_name("shared mailbox").body(body)),
        case!(get_bucket_by_id: GET "/api/_private/buckets/id:7c3e9a1b5d2f4e60",
            |c| c.get_bucket_by_id().bucket_id("7c3e9a1b5d2f4e60")),
        case!(delete_bucket_by_id: DELETE "/api/_private/buckets/id:7c3e9a1b5d2f4e60",
            |c| c.delete_bucket_by_id().bucket_id("7c3e9a1b5d2f4e60")),
        case!(get_bucket_statistics: GET "/api/_private/buckets/acme/shared%20mailbox/statistics",
            |c| c.get_bucket_statistics().project("acme").bucket_name("shared mailbox")),
        case!(list_keyed_sync_states: GET "/api/_private/buckets/id:7c3e9a1b5d2f4e60/keyed-sync-states/",
            |c| c.list_keyed_sync_states().bucket_id("7c3e9a1b5d2f4e60")),
        case!(query_keyed_sync_state_ids: POST "/api/_private/buckets/id:7c3e9a1b5d2f4e60/keyed-sync-state-ids", body(body: QueryKeyedSyncStateIdsRequest),
            |c| c.query_keyed_sync_state_ids().bucket_id("7c3e9a1b5d2f4e60").body(body)),
        case!(delete_keyed_sync_state: DELETE "/api/_private/buckets/id:7c3e9a1b5d2f4e60/keyed-sync-state/folder:Inbox%2F2026",
            |c| c.delete_keyed_sync_state().bucket_id("7c3e9a1b5d2f4e60").sync_state_key("folder:Inbox/2026")),
        case!(get_bucket_email: GET "/api/_private/buckets/acme/shared%20mailbox/emails", query [("id", "c0ffee42")],
            |c| c.get_bucket_email().project("acme").bucket_name("shared mailbox").id("c0ffee42")),
        case!(add_bucket_emails: PUT "/api/_private/buckets/acme/shared%20mailbox/emails", query [("no_charge", "true")], body(body: AddEmailsRequest),
            |c| c.add_bucket_emails().project("acme").bucket_name("shared mailbox").no_charge(true).body(body)),
        case!(list_bucket_emails: POST "/api/_private/buckets/acme/shared%20mailbox/emails", body(body: BucketEmailsPageRequest),
            |c| c.list_bucket_emails().project("acme").bucket_name("shared mailbox").body(body)),
        case!(delete_bucket_emails: DELETE "/api/_private/buckets/acme/shared%20mailbox/emails", query [("id", "0123"), ("id", "0456")],
            |c| c.delete_bucket_emails().project("acme").bucket_name("shared mailbox").id(vec!["0123".to_owned(), "0456".to_owned()])),
        case!(query_bucket_emails: POST "/api/_private/buckets/acme/shared%20mailbox/emails/query", body(body: BucketEmailsPageRequest),
            |c| c.query_bucket_emails().project("acme").bucket_name("shared mailbox").body(body)),
        case!(list_source_comments: GET "/api/_private/sources/acme/inbox/comments", query [("from_timestamp", "2026-03-01T00:00:00Z"), ("to_timestamp", "2026-03-01T00:00:00Z"), ("after", "c0ffee42"), ("limit", "50"), ("include_thread_properties", "true"), ("include_markup", "true"), ("direction", "descending")],
            |c| c.list_source_comments().project("acme").source_name("inbox").from_timestamp("2026-03-01T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()).to_timestamp("2026-03-01T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()).after("c0ffee42").limit(50).include_thread_properties(true).include_markup(true).direction("descending")),
        case!(add_comments: PUT "/api/_private/sources/acme/inbox/comments", query [("no_charge", "true")], body(body: AddCommentsRequest),
            |c| c.add_comments().project("acme").source_name("inbox").no_charge(true).body(body)),
        case!(query_comments: POST "/api/_private/datasets/acme/support/query", query [("limit", "50"), ("continuation", "c0ffee42")], body(body: QueryCommentsRequest),
            |c| c.query_comments().project("acme").dataset_name("support").limit(50).continuation("c0ffee42").body(body)),
        case!(list_recent_comments: POST "/api/_private/datasets/acme/support/recent", body(body: RecentCommentsRequest),
            |c| c.list_recent_comments().project("acme").dataset_name("support").body(body)),
        case!(get_labellings: GET "/api/_private/datasets/acme/support/labellings", query [("id", "0123"), ("id", "0456"), ("ids", "c0ffee42"), ("allow_missing", "true"), ("source_id", "c0ffee42"), ("after", "c0ffee42"), ("limit", "50"), ("return_predictions", "true"), ("compute_moon_predictions", "true")],
            |c| c.get_labellings().project("acme").dataset_name("support").id(vec!["0123".to_owned(), "0456".to_owned()]).ids("c0ffee42").allow_missing(true).source_id("c0ffee42").after("c0ffee42").limit(50).return_predictions(true).compute_moon_predictions(true)),
        case!(update_labelling: POST "/api/_private/datasets/acme/support/labellings/18ba5ce699f8da1f.msg-42", body(body: UpdateLabellingRequest),
            |c| c.update_labelling().project("acme").dataset_name("support").comment_uid("18ba5ce699f8da1f.msg-42").body(body)),
        case!(create_label_defs: PUT "/api/_private/datasets/acme/support/labels/default", body(body: CreateLabelDefsRequest),
            |c| c.create_label_defs().project("acme").dataset_name("support").label_group_name("default").body(body)),
        case!(list_models: POST "/api/_private/datasets/acme/support/labellers", body(body: ListModelsRequest),
            |c| c.list_models().project("acme").dataset_name("support").body(body)),
        case!(get_model_validation_details: GET "/api/_private/datasets/acme/support/labellers/latest/validation", query [("beta", "true")],
            |c| c.get_model_validation_details().project("acme").dataset_name("support").model_version("latest").beta(true)),
        case!(get_label_validation: POST "/api/_private/datasets/acme/support/labellers/latest/label-validation", query [("beta", "true")], body(body: LabelValidationRequest),
            |c| c.get_label_validation().project("acme").dataset_name("support").model_version("latest").beta(true).body(body)),
        case!(get_dataset_statistics: POST "/api/_private/datasets/acme/support/statistics", body(body: DatasetStatisticsRequest),
            |c| c.get_dataset_statistics().project("acme").dataset_name("support").body(body)),
        case!(get_dataset_summary: POST "/api/_private/datasets/acme/support/summary", body(body: DatasetSummaryRequest),
            |c| c.get_dataset_summary().project("acme").dataset_name("support").body(body)),
        case!(create_ixp_dataset: PUT "/api/_private/ixp/datasets", body(body: CreateIxpDatasetRequest),
            |c| c.create_ixp_dataset().body(body)),
        case!(list_all_users: GET "/api/_private/users",
            |c| c.list_all_users()),
        case!(create_user: PUT "/api/_private/users", body(body: CreateUserRequest),
            |c| c.create_user().body(body)),
        case!(get_user: GET "/api/_private/users/a1b2c3d4e5f60718",
            |c| c.get_user().user_id("a1b2c3d4e5f60718")),
        case!(update_user: POST "/api/_private/users/a1b2c3d4e5f60718", body(body: UpdateUserRequest),
            |c| c.update_user().user_id("a1b2c3d4e5f60718").body(body)),
        case!(delete_user: DELETE "/api/_private/users/a1b2c3d4e5f60718",
            |c| c.delete_user().user_id("a1b2c3d4e5f60718")),
        case!(send_welcome_email: POST "/api/_private/users/a1b2c3d4e5f60718/welcome-email", body(body: EmptyRequest),
            |c| c.send_welcome_email().user_id("a1b2c3d4e5f60718").body(body)),
        case!(get_current_user: GET "/auth/user",
            |c| c.get_current_user()),
        case!(refresh_user_permissions: POST "/auth/refresh-user-permissions", body(body: EmptyRequest),
            |c| c.refresh_user_permissions().body(body)),
        case!(list_all_projects: GET "/api/_private/projects", query [("cm_only", "true")],
            |c| c.list_all_projects().cm_only(true)),
        case!(get_project: GET "/api/_private/projects/acme",
            |c| c.get_project().project("acme")),
        case!(create_project: PUT "/api/_private/projects/acme", body(body: CreateProjectRequest),
            |c| c.create_project().project("acme").body(body)),
        case!(update_project: POST "/api/_private/projects/acme", body(body: UpdateProjectRequest),
            |c| c.update_project().project("acme").body(body)),
        case!(delete_project: DELETE "/api/_private/projects/acme", query [("force", "true")],
            |c| c.delete_project().project("acme").force(true)),
        case!(list_quotas: GET "/api/_private/quotas",
            |c| c.list_quotas()),
        case!(list_tenant_quotas: GET "/api/_private/quotas/0d4f5a6b7c8d9e0f",
            |c| c.list_tenant_quotas().tenant_id_or_quota_kind("0d4f5a6b7c8d9e0f")),
        case!(set_quota: POST "/api/_private/quotas/0d4f5a6b7c8d9e0f", body(body: SetQuotaRequest),
            |c| c.set_quota().tenant_id_or_quota_kind("0d4f5a6b7c8d9e0f").body(body)),
        case!(set_tenant_quota: POST "/api/_private/quotas/0d4f5a6b7c8d9e0f/num_reviewed_comments", body(body: SetTenantQuotaRequest),
            |c| c.set_tenant_quota().tenant_id("0d4f5a6b7c8d9e0f").quota_kind("num_reviewed_comments").body(body)),
        case!(list_integrations: GET "/api/_private/integrations",
            |c| c.list_integrations()),
        case!(list_project_integrations: GET "/api/_private/integrations/acme",
            |c| c.list_project_integrations().project("acme")),
        case!(get_integration: GET "/api/_private/integrations/acme/exchange-online",
            |c| c.get_integration().project("acme").integration_name("exchange-online")),
        case!(create_integration: PUT "/api/_private/integrations/acme/exchange-online", body(body: CreateIntegrationRequest),
            |c| c.create_integration().project("acme").integration_name("exchange-online").body(body)),
        case!(update_integration: POST "/api/_private/integrations/acme/exchange-online", body(body: UpdateIntegrationRequest),
            |c| c.update_integration().project("acme").integration_name("exchange-online").body(body)),
        {
            fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
                Box::pin(async move {
                    let c = client;
                    run_bytes(
                        c.get_document()
                            .source_id("18ba5ce699f8da1f")
                            .comment_id("msg-42"),
                    )
                    .await
                })
            }
            Case {
                operation_id: "get_document",
                method: "GET",
                path: "/api/_private/sources/id:18ba5ce699f8da1f/documents/msg-42",
                query: &[],
                sends_body: false,
                response: Canned::Bytes {
                    content_type: "application/pdf",
                    body: ATTACHMENT_BYTES,
                },
                call,
            }
        },
        {
            fn call(client: &cm_api::Client) -> BoxFuture<'_, Outcome> {
                Box::pin(async move {
                    let c = client;
                    run_bytes(
                        c.get_attachment()
                            .attachment_reference("0f3a9c1e2b7d4a6f.0.1"),
                    )
                    .await
                })
            }
            Case {
                operation_id: "get_attachment",
                method: "GET",
                path: "/api/v1/attachments/0f3a9c1e2b7d4a6f.0.1",
                query: &[],
                sends_body: false,
                response: Canned::Bytes {
                    content_type: "application/pdf",
                    body: ATTACHMENT_BYTES,
                },
                call,
            }
        },
    ]
}
