//! `list_quotas`: the tenant's limits, with usage counted from the state.

use serde_json::{Value, json};

use super::State;

/// The sandbox's limit for every quota kind it counts.
const LIMITS: &[(&str, u64)] = &[
    ("projects", 1_000),
    ("sources", 10_000),
    ("datasets", 10_000),
    ("buckets", 1_000),
    ("triggers", 10_000),
    ("users", 1_000),
    ("comments", 100_000_000),
];

impl State {
    pub(crate) fn list_quotas(&self) -> Value {
        let usage = |kind: &str| -> usize {
            match kind {
                "projects" => self.projects.len(),
                "sources" => self.sources.len(),
                "datasets" => self.datasets.len(),
                "buckets" => self.buckets.len(),
                "triggers" => self.datasets.values().map(|d| d.streams.len()).sum(),
                "users" => self.users.len(),
                _ => self.sources.values().map(|s| s.comments.len()).sum(),
            }
        };
        let quotas: Vec<Value> = LIMITS
            .iter()
            .map(|(kind, limit)| {
                json!({"quota_kind": kind, "hard_limit": limit, "current_max_usage": usage(kind)})
            })
            .collect();
        json!({"quotas": quotas})
    }
}
