//! What every operation builder has in common, for code that is generic
//! over operations.

use std::future::Future;

use crate::{CallOptions, Error, Response};

/// An operation ready to send: every builder in [`operations`](crate::operations)
/// (from `Client::get_source()` and its siblings) implements it, so a helper
/// can take any operation without naming the generated crates.
///
/// ```no_run
/// use std::time::Duration;
/// use cm_api::{CallOptions, Operation};
///
/// /// Sends any operation with a 5 s deadline and logs its server time.
/// async fn quick<O: Operation>(operation: O) -> Result<cm_api::Response<O::Output>, cm_api::Error> {
///     let response = operation
///         .with_options(CallOptions::new().deadline(Duration::from_secs(5)))
///         .send()
///         .await?;
///     println!("{}: {:?}", O::OPERATION_ID, response.server_timing().total());
///     Ok(response)
/// }
///
/// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
/// let sources = quick(client.list_sources()).await?;
/// let dataset = quick(client.get_dataset().project("acme").dataset_name("support")).await?;
/// # Ok(()) }
/// ```
pub trait Operation: Sized + Send {
    /// The success value: a generated type, or a [`Download`](crate::Download).
    type Output;
    /// The spec's operation id.
    const OPERATION_ID: &'static str;
    /// Per-call overrides of timeouts and retries.
    fn with_options(self, options: CallOptions) -> Self;
    /// Sends the request.
    fn send(self) -> impl Future<Output = Result<Response<Self::Output>, Error>> + Send;
}
