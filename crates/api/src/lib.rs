//! Rust client for the UiPath Communications Mining API (formerly Re:infer).
//!
//! ```no_run
//! # async fn run() -> Result<(), cm_api::Error> {
//! // Endpoint and credentials from REINFER_ENDPOINT / REINFER_TOKEN or a profile.
//! let client = cm_api::Client::from_env()?;
//!
//! // A convenience wrapper...
//! let datasets = client.datasets().list().await?;
//! println!("{} datasets, server time {:?}", datasets.len(), datasets.server_timing().total());
//!
//! // ...or any generated operation, through the same authenticated client.
//! let response = client
//!     .send(|c| c.list_project_datasets().project("acme").send())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [`Client`] adds, to every generated operation: endpoint selection
//! ([`Endpoint`]), configuration from code, environment and profiles
//! ([`ClientBuilder`], [`config`]), bearer-token or OAuth client-credentials
//! authentication ([`auth`]), retries with backoff ([`retry`]), timeouts,
//! `tracing` spans, Server-Timing ([`ServerTiming`]) and one error type
//! ([`Error`]).
//!
//! For moving data in volume:
//!
//! * [`paginate`]: every paginated operation as a `Stream` of items
//!   ([`Client::paginate`]);
//! * [`stream_consumer`]: at-least-once consumption of a stream
//!   ([`StreamConsumer`]);
//! * [`bulk`]: concurrent, bisecting `sync_comments` / `sync_raw_emails`
//!   uploads from a `Stream` of any length ([`bulk::sync_comments`]).
//!
//! For files:
//!
//! * [`upload`]: the multipart uploads of attachments, call audio and
//!   documents ([`Client::uploads`]);
//! * [`download`]: attachments, documents and CSV query results as a
//!   streamed [`Download`] ([`Client::downloads`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod bulk;
mod client;
pub mod config;
pub mod download;
pub mod endpoint;
pub mod error;
pub mod paginate;
pub mod retry;
mod secret;
pub mod server_timing;
pub mod stream_consumer;
mod transport;
pub mod upload;

pub use auth::{AccessToken, AuthError, ClientCredentials, StaticToken, TokenProvider};
pub use client::{
    Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, Datasets, ErrorBody,
    Response,
};
pub use config::ConfigError;
pub use download::{Download, Downloads};
pub use endpoint::{Endpoint, EndpointError};
pub use error::{Error, TransportKind};
pub use retry::{CallOptions, RateGate, RetryPolicy};
pub use secret::Secret;
pub use server_timing::{Metric, ServerTiming};
pub use stream_consumer::StreamConsumer;
pub use upload::{Upload, Uploads};

/// The generated request and response types, e.g. [`types::Dataset`].
pub use cm_api_gen::types;

/// The workspace README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
