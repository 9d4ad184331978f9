//! Audit events: one per successful change, recorded by the dispatcher
//! (`lib.rs`), queried newest first.

use super::*;

/// The default and largest page of `query_audit_events`.
const DEFAULT_AUDIT_PAGE: usize = 128;
const MAX_AUDIT_PAGE: usize = 1_024;

/// The resources a request touched, by kind: id → the reference an audit
/// event answers (`AuditEventProject`, `AuditEventSource`, ...), taken
/// while the resource existed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Refs {
    /// The acting user's reference (kept when the change deleted it).
    actor: Option<Value>,
    users: BTreeMap<String, Value>,
    projects: BTreeMap<String, Value>,
    sources: BTreeMap<String, Value>,
    datasets: BTreeMap<String, Value>,
}

impl Refs {
    /// `other`'s references over `self`'s: the later view of a resource
    /// wins, a resource gone since keeps its earlier one.
    fn merge(mut self, other: Refs) -> Refs {
        self.actor = other.actor.or(self.actor);
        self.users.extend(other.users);
        self.projects.extend(other.projects);
        self.sources.extend(other.sources);
        self.datasets.extend(other.datasets);
        self
    }
}

#[derive(Debug)]
pub(crate) struct AuditRecord {
    id: String,
    at: DateTime<Utc>,
    actor: String,
    operation: String,
    /// The resources the change touched.
    refs: Refs,
    /// The users the change touched (the actor only when it is one).
    user_ids: Vec<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
    continuation: Option<String>,
    #[serde(default)]
    filter: Map<String, Value>,
}

impl State {
    fn project_ref(&self, p: &Project) -> Value {
        json!({"id": p.id, "tenant_id": self.tenant.0, "name": p.name})
    }

    fn project_id_of(&self, name: &str) -> Option<String> {
        self.projects.get(name).map(|p| p.id.clone())
    }

    fn add_source_ref(&self, refs: &mut Refs, id: &str) {
        if let Some(s) = self.sources.get(id) {
            let mut r = json!({"id": s.id, "name": s.name, "title": s.settings.title});
            if let Some(project_id) = self.project_id_of(&s.project) {
                r["project_id"] = project_id.into();
            }
            refs.sources.insert(s.id.clone(), r);
        }
    }

    fn add_dataset_ref(&self, refs: &mut Refs, id: &str) {
        if let Some(d) = self.datasets.get(id) {
            let text = |key: &str| d.body.get(key).and_then(Value::as_str).unwrap_or_default();
            let mut r = json!({"id": d.id, "name": text("name"), "title": text("title")});
            if let Some(project_id) = self.project_id_of(text("owner")) {
                r["project_id"] = project_id.into();
            }
            refs.datasets.insert(d.id.clone(), r);
        }
    }

    fn add_user_ref(&self, refs: &mut Refs, id: &str) {
        if let Some(u) = self.users.get(id) {
            refs.users
                .insert(u.id.clone(), u.audit_json(&self.tenant.0));
        }
    }

    /// The resources a request of `actor` on `params` touches, as they are now; with
    /// `answer`, also those it names at its top level (`user`, `project`,
    /// `source`, `dataset` with an `id`: what a create made).
    pub(crate) fn audit_refs(
        &self,
        actor: &str,
        params: &BTreeMap<String, String>,
        answer: Option<&Value>,
    ) -> Refs {
        let mut refs = Refs {
            actor: self.users.get(actor).map(|u| u.audit_json(&self.tenant.0)),
            ..Refs::default()
        };
        let project = params.get("project");
        if let Some(p) = project.and_then(|name| self.projects.get(name)) {
            refs.projects.insert(p.id.clone(), self.project_ref(p));
        }
        if let (Some(project), Some(name)) = (project, params.get("source_name"))
            && let Some(id) = self.source_names.get(&(project.clone(), name.clone()))
        {
            self.add_source_ref(&mut refs, id);
        }
        if let (Some(project), Some(name)) = (project, params.get("dataset_name"))
            && let Some(id) = self.dataset_names.get(&(project.clone(), name.clone()))
        {
            self.add_dataset_ref(&mut refs, id);
        }
        if let Some(id) = params.get("source_id") {
            self.add_source_ref(&mut refs, id);
        }
        if let Some(id) = params.get("dataset_id") {
            self.add_dataset_ref(&mut refs, id);
        }
        if let Some(id) = params.get("user_id") {
            self.add_user_ref(&mut refs, id);
        }
        let named = |key: &str| {
            answer
                .and_then(|a| a.get(key))
                .and_then(|o| o.get("id"))
                .and_then(Value::as_str)
        };
        if let Some(id) = named("user") {
            self.add_user_ref(&mut refs, id);
        }
        if let Some(id) = named("source") {
            self.add_source_ref(&mut refs, id);
        }
        if let Some(id) = named("dataset") {
            self.add_dataset_ref(&mut refs, id);
        }
        if let Some(p) = named("project").and_then(|id| self.projects.values().find(|p| p.id == id))
        {
            refs.projects.insert(p.id.clone(), self.project_ref(p));
        }
        refs
    }

    /// Records that `actor` changed something with `operation`: `before`
    /// and `after` are [`State::audit_refs`] around the change.
    pub(crate) fn record_audit_event(
        &mut self,
        actor: &str,
        operation: &str,
        before: Refs,
        after: Refs,
    ) {
        let refs = before.merge(after);
        let user_ids: Vec<String> = refs.users.keys().cloned().collect();
        let record = AuditRecord {
            id: self.new_id(),
            at: self.clock.now(),
            actor: actor.to_owned(),
            operation: operation.to_owned(),
            refs,
            user_ids,
        };
        self.audit.push(record);
    }

    fn audit_event_json(&self, e: &AuditRecord) -> Value {
        let ids = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        json!({
            "event_id": e.id,
            "event_type": e.operation,
            "timestamp": ts(e.at),
            "actor_user_id": e.actor,
            "actor_tenant_id": self.tenant.0,
            "tenant_ids": [self.tenant.0],
            "user_ids": e.user_ids,
            "project_ids": ids(&e.refs.projects),
            "source_ids": ids(&e.refs.sources),
            "dataset_ids": ids(&e.refs.datasets),
            "trigger_ids": [],
        })
    }

    /// Audit events newest first, `limit` a page; `continuation` is the
    /// position (hex) of the last event of the previous page.
    pub(crate) fn query_audit_events(&self, body: Value) -> Result<Value, ApiError> {
        let Value::Object(fields) = &body else {
            return Err(ApiError::unprocessable(
                "the request body: expected a JSON object",
            ));
        };
        if let Some(key) = fields
            .keys()
            .find(|k| !["limit", "continuation", "filter"].contains(&k.as_str()))
        {
            return Err(not_supported(&format!("`{key}`")));
        }
        let query: AuditQuery = decode_value(body, "")?;
        let limit = match query.limit {
            None => DEFAULT_AUDIT_PAGE,
            Some(n) if (1..=MAX_AUDIT_PAGE as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "`limit`: between 1 and {MAX_AUDIT_PAGE}, got {n}"
                )));
            }
        };
        let mut range = TimestampRange::default();
        for (key, value) in query.filter {
            if key != "timestamp" {
                return Err(not_supported(&format!("filter `{key}`")));
            }
            range = decode_value(value, "filter.timestamp")?;
        }
        let bound = |text: &Option<String>, which: &str| {
            text.as_deref()
                .map(|t| {
                    parse_timestamp(t).ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "`filter.timestamp.{which}`: not a date-time: {t:?}"
                        ))
                    })
                })
                .transpose()
        };
        let minimum = bound(&range.minimum, "minimum")?;
        let maximum = bound(&range.maximum, "maximum")?;
        // Events before this position (the previous page's last) remain.
        let before = match &query.continuation {
            None => self.audit.len(),
            Some(text) => usize::from_str_radix(text, 16)
                .ok()
                .filter(|&n| text.len() == 16 && n <= self.audit.len())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`continuation`: not a continuation of this sandbox: {text:?}"
                    ))
                })?,
        };
        let mut page: Vec<usize> = Vec::new();
        let mut more = false;
        for i in (0..before).rev() {
            let e = &self.audit[i];
            if minimum.is_some_and(|m| e.at < m) || maximum.is_some_and(|m| e.at > m) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(i);
        }
        let continuation = match (more, page.last()) {
            (true, Some(&last)) => Some(format!("{last:016x}")),
            _ => None,
        };
        // Oldest first, so that the newest view of a resource wins.
        let mut refs = Refs::default();
        for &i in page.iter().rev() {
            let event = self.audit[i].refs.clone();
            if let Some(actor) = &event.actor {
                refs.users
                    .insert(self.audit[i].actor.clone(), actor.clone());
            }
            refs = refs.merge(event);
        }
        let events: Vec<Value> = page
            .iter()
            .map(|&i| self.audit_event_json(&self.audit[i]))
            .collect();
        let values = |m: BTreeMap<String, Value>| m.into_values().collect::<Vec<_>>();
        Ok(json!({
            "audit_events": events,
            "tenants": [{"id": self.tenant.0, "name": self.tenant.1}],
            "users": values(refs.users),
            "projects": values(refs.projects),
            "sources": values(refs.sources),
            "datasets": values(refs.datasets),
            "triggers": [],
            "continuation": continuation,
        }))
    }
}

fn not_supported(what: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_IMPLEMENTED,
        format!("query_audit_events: {what} is not supported by the sandbox"),
    )
}
