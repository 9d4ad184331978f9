//! Requests and server time per operation, from the `cm_api.request` spans
//! every call runs in (fields `operation`, `attempts`, `duration_ms`,
//! `server_ms`): a `tracing` layer, so it counts the bulk upload's, the
//! consumer's and the export's requests as well as direct calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The figures of one operation.
#[derive(Debug, Default, Clone)]
pub struct OperationStats {
    /// Calls made.
    pub calls: u64,
    /// Attempts, retries included.
    pub attempts: u64,
    /// Client-side time of the calls, in ms.
    pub client_ms: f64,
    /// Server time (Server-Timing `total`) of the answers, in ms.
    pub server_ms: f64,
}

/// The figures per operation id, shared with the layer.
#[derive(Debug, Default, Clone)]
pub struct Stats(Arc<Mutex<BTreeMap<String, OperationStats>>>);

impl Stats {
    /// A copy of the figures so far.
    pub fn snapshot(&self) -> BTreeMap<String, OperationStats> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The fields of one request span, filled as they are recorded.
#[derive(Default)]
struct Fields {
    operation: Option<String>,
    attempts: u64,
    duration_ms: f64,
    server_ms: f64,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "operation" {
            self.operation = Some(value.to_owned());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "attempts" {
            self.attempts = value;
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        match field.name() {
            "duration_ms" => self.duration_ms = value,
            "server_ms" => self.server_ms = value,
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for Stats
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "cm_api.request" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(fields) = extensions.get::<Fields>() else {
            return;
        };
        let Ok(mut stats) = self.0.lock() else { return };
        let entry = stats
            .entry(fields.operation.clone().unwrap_or_default())
            .or_default();
        entry.calls += 1;
        entry.attempts += fields.attempts;
        entry.client_ms += fields.duration_ms;
        entry.server_ms += fields.server_ms;
    }
}
