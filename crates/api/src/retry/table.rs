//! Which operations may be repeated: [`RETRY_TABLE`] and the method
//! default in [`retry_class`].

/// Whether an operation may be sent again after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryClass {
    /// Repeating the request has the same effect as sending it once.
    Idempotent,
    /// Repeating the request could change state twice; never retried blindly.
    Never,
}

/// The exceptions to the method default, one row per operation id, each with
/// the reason. GET, PUT and DELETE are retried and POST is not, unless listed
/// here; operations not in the table (including ones added to the
/// specification later) get the default for their method.
///
/// An idempotent operation is retried after a lost answer (a timeout, a
/// reset) and after a 429, 500, 502, 503 or 504; any operation is retried
/// when nothing reached the server. A 401 answer is different: the request
/// was rejected before it was processed, so it is retried once with a
/// refreshed token whatever its class.
///
/// PUT creations (`create_source`, `create_dataset`, ...) keep the method
/// default: a create whose answer was lost is sent again, and may then be
/// answered 409 "already exists" because the first attempt did create it.
/// Such an error says so: [`Error::maybe_applied`](crate::Error::maybe_applied).
pub const RETRY_TABLE: &[(&str, RetryClass, &str)] = &[
    // POSTs that only read.
    (
        "get_source_statistics",
        RetryClass::Idempotent,
        "read through POST: computes statistics, changes nothing",
    ),
    (
        "export_dataset",
        RetryClass::Idempotent,
        "read through POST: pages through comments by continuation token",
    ),
    (
        "predict_documents",
        RetryClass::Idempotent,
        "read through POST: predictions for the given documents, nothing stored",
    ),
    (
        "predict_comments",
        RetryClass::Idempotent,
        "read through POST: predictions for stored comments, nothing stored",
    ),
    (
        "predict_raw_emails",
        RetryClass::Idempotent,
        "read through POST: predictions for the given emails, nothing stored",
    ),
    (
        "fetch_stream",
        RetryClass::Idempotent,
        "reads the batch at the stream's position; only advance moves it",
    ),
    (
        "fetch_gx_stream",
        RetryClass::Idempotent,
        "reads the batch at the stream's position; only advance moves it",
    ),
    (
        "fetch_trigger",
        RetryClass::Idempotent,
        "legacy name of fetch_stream: reads without moving the position",
    ),
    (
        "query_audit_events",
        RetryClass::Idempotent,
        "read through POST: queries the audit log",
    ),
    (
        "get_thread_themes",
        RetryClass::Idempotent,
        "read through POST: summarises a thread, nothing stored",
    ),
    // POSTs that write, but as an upsert keyed by ids the caller chose.
    (
        "sync_comments",
        RetryClass::Idempotent,
        "upsert by comment id: sending the same batch twice stores it once",
    ),
    (
        "sync_raw_emails",
        RetryClass::Idempotent,
        "upsert by comment id derived from the email: sending twice stores once",
    ),
    (
        "sync_annotations",
        RetryClass::Idempotent,
        "replaces the annotations of the given comment with the values sent",
    ),
    // POSTs that move state: listed to make the decision visible.
    (
        "advance_stream",
        RetryClass::Never,
        "moves the stream position; a repeat after a lost answer could skip comments",
    ),
    (
        "reset_stream",
        RetryClass::Never,
        "moves the stream position; must not be repeated behind the caller's back",
    ),
    (
        "advance_trigger",
        RetryClass::Never,
        "legacy name of advance_stream: moves the position",
    ),
    (
        "reset_trigger",
        RetryClass::Never,
        "legacy name of reset_stream: moves the position",
    ),
    (
        "update_source",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ),
    (
        "update_dataset",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ),
    (
        "update_stream",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ),
    (
        "update_trigger",
        RetryClass::Never,
        "state-changing POST; the caller decides whether to repeat it",
    ), // Private routes (`/api/_private`).
    (
        "query_comments",
        RetryClass::Idempotent,
        "read through POST (private): pages through a dataset query by continuation",
    ),
    (
        "list_recent_comments",
        RetryClass::Idempotent,
        "read through POST (private): pages through recent comments by continuation",
    ),
    (
        "list_bucket_emails",
        RetryClass::Idempotent,
        "read through POST (private): pages through a bucket's emails by continuation",
    ),
    (
        "query_bucket_emails",
        RetryClass::Idempotent,
        "read through POST (private): pages through a bucket's emails by continuation",
    ),
    (
        "get_dataset_statistics",
        RetryClass::Idempotent,
        "read through POST (private): counts comments, changes nothing",
    ),
    (
        "get_dataset_summary",
        RetryClass::Idempotent,
        "read through POST (private): describes the dataset, changes nothing",
    ),
    (
        "get_label_validation",
        RetryClass::Idempotent,
        "read through POST (private): returns validation metrics",
    ),
    (
        "list_models",
        RetryClass::Idempotent,
        "read through POST (private): lists model versions",
    ),
    (
        "query_keyed_sync_state_ids",
        RetryClass::Idempotent,
        "read through POST (private): finds sync-state keys",
    ),
    (
        "refresh_user_permissions",
        RetryClass::Idempotent,
        "reloads the caller's own permissions; repeating it reloads them again",
    ),
    (
        "send_welcome_email",
        RetryClass::Never,
        "sends an email; a repeat after a lost answer sends it twice",
    ),
    // PUTs that create something new each time (an exception to the method default).
    (
        "upload_document",
        RetryClass::Never,
        "creates a new comment per upload; a repeat after a lost answer stores the document twice",
    ),
    (
        "upload_ixp_document",
        RetryClass::Never,
        "creates a new document per upload; a repeat after a lost answer extracts it twice",
    ),
    (
        "update_labelling",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_project",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_user",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_integration",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "set_quota",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "set_tenant_quota",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    // Internal tier: POSTs that only read, or that set a value outright.
    (
        "preview_alert",
        RetryClass::Idempotent,
        "read through POST: evaluates an alert definition over past data, stores nothing",
    ),
    (
        "query_alert_issues",
        RetryClass::Idempotent,
        "read through POST: lists alert issues matching a filter",
    ),
    (
        "query_conversational_filter",
        RetryClass::Idempotent,
        "read through POST: turns a question into a comment filter, stores nothing",
    ),
    (
        "get_derived_permissions",
        RetryClass::Idempotent,
        "read through POST: expands a permission set, stores nothing",
    ),
    (
        "get_reduced_permissions",
        RetryClass::Idempotent,
        "read through POST: reduces a permission set, stores nothing",
    ),
    (
        "get_login_url",
        RetryClass::Idempotent,
        "read through POST: looks up where a user signs in",
    ),
    (
        "predict_with_latest_model",
        RetryClass::Idempotent,
        "read through POST: predictions for the given documents, nothing stored",
    ),
    (
        "predict_extractions",
        RetryClass::Idempotent,
        "read through POST: extractions for the given documents, nothing stored",
    ),
    (
        "suggest_ixp_taxonomy",
        RetryClass::Idempotent,
        "read through POST: suggests a taxonomy from a description and documents, stores nothing",
    ),
    (
        "get_dataset_comparison",
        RetryClass::Idempotent,
        "read through POST: compares two groups of comments",
    ),
    (
        "query_user_property_values",
        RetryClass::Idempotent,
        "read through POST: counts the values of a user property",
    ),
    (
        "update_tenant_client_subnets",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "update_tenant_default_project_permissions",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "update_tenant_domains",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "update_tenant_entity_def_ids",
        RetryClass::Idempotent,
        "replaces the whole list; repeating it sets the same list",
    ),
    (
        "set_tenant_state",
        RetryClass::Idempotent,
        "sets the tenant enabled or disabled; repeating it sets the same state",
    ),
    (
        "update_alert_issue_status",
        RetryClass::Idempotent,
        "sets an issue's status; repeating it sets the same status",
    ),
    // Internal tier: state-changing POSTs.
    (
        "update_bucket",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_label_def",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_alert",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_dashboard",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "update_tenant",
        RetryClass::Never,
        "state-changing POST (private); the caller decides whether to repeat it",
    ),
    (
        "add_support_tenant",
        RetryClass::Never,
        "grants access; a repeat after a lost answer may fail as already granted",
    ),
    (
        "remove_support_tenant",
        RetryClass::Never,
        "revokes access; a repeat after a lost answer may fail as already revoked",
    ),
    (
        "create_tenant_service_instance",
        RetryClass::Never,
        "provisions a tenant; a repeat after a lost answer provisions it again or fails",
    ),
    (
        "restore_tenant_service_instance",
        RetryClass::Never,
        "restores a deleted tenant service; a repeat after a lost answer may fail",
    ),
    (
        "import_ixp_taxonomy",
        RetryClass::Never,
        "adds labels and fields to a dataset; a repeat could add them twice",
    ),
    (
        "create_label_group",
        RetryClass::Never,
        "creates a label group; a repeat after a lost answer fails as already existing",
    ),
    (
        "reset_annotations_to_model_version",
        RetryClass::Never,
        "rewrites annotations; the caller decides whether to repeat it",
    ),
    (
        "upload_files",
        RetryClass::Never,
        "stores a new file per call; a repeat after a lost answer stores it twice",
    ),
];

/// The retry class of an operation: its [`RETRY_TABLE`] row, else the default
/// for its HTTP method (GET, HEAD, PUT, DELETE, OPTIONS: idempotent; others: never).
///
/// ```
/// use cm_api::retry::{retry_class, RetryClass};
///
/// assert_eq!(retry_class("sync_comments", "POST"), RetryClass::Idempotent);
/// assert_eq!(retry_class("advance_stream", "POST"), RetryClass::Never);
/// assert_eq!(retry_class("get_dataset", "GET"), RetryClass::Idempotent);
/// ```
pub fn retry_class(operation_id: &str, method: &str) -> RetryClass {
    if let Some((_, class, _)) = RETRY_TABLE.iter().find(|(id, _, _)| *id == operation_id) {
        return *class;
    }
    match method {
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" => RetryClass::Idempotent,
        _ => RetryClass::Never,
    }
}
