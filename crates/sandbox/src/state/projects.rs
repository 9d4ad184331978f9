//! Projects: create, get, list.

use super::*;

#[derive(Deserialize)]
struct CreateProjectRequest {
    project: ProjectNew,
    #[serde(default)]
    #[allow(dead_code)]
    user_ids: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    uipath_user_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ProjectNew {
    title: Option<String>,
    description: Option<String>,
    user_auto_join: Option<bool>,
}

impl State {
    fn project_json(p: &Project, full: bool) -> Value {
        let mut out = json!({"name": p.name, "title": p.title, "description": p.description});
        if full {
            out["id"] = p.id.clone().into();
            out["created_at"] = ts(p.created_at);
            out["updated_at"] = ts(p.updated_at);
            out["user_auto_join"] = p.user_auto_join.into();
        }
        out
    }

    pub(super) fn require_project(&self, name: &str) -> Result<&Project, ApiError> {
        self.projects
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("project `{name}`")))
    }

    /// Deletes an empty project; one that still holds a source, a dataset
    /// or a bucket is refused with 409 naming it.
    pub(crate) fn delete_project(&mut self, name: &str) -> Result<Value, ApiError> {
        self.require_project(name)?;
        let held = [
            ("source", self.source_names.keys().find(|(p, _)| p == name)),
            (
                "dataset",
                self.dataset_names.keys().find(|(p, _)| p == name),
            ),
            ("bucket", self.bucket_names.keys().find(|(p, _)| p == name)),
        ];
        if let Some((kind, Some((_, held)))) = held.into_iter().find(|(_, key)| key.is_some()) {
            return Err(ApiError::new(
                http::StatusCode::CONFLICT,
                format!("project `{name}` is not empty: it holds {kind} `{held}`"),
            ));
        }
        self.projects.remove(name);
        Ok(json!({}))
    }

    pub(crate) fn create_project(&mut self, name: &str, body: Value) -> Result<Value, ApiError> {
        let request: CreateProjectRequest = decode_value(body, "")?;
        if self.projects.contains_key(name) {
            return Err(ApiError::conflict(format!("project `{name}`")));
        }
        let now = self.clock.now();
        let project = Project {
            id: self.new_id(),
            name: name.to_owned(),
            title: request.project.title.unwrap_or_default(),
            description: request.project.description.unwrap_or_default(),
            user_auto_join: request.project.user_auto_join.unwrap_or(false),
            created_at: now,
            updated_at: now,
        };
        let out = json!({"project": Self::project_json(&project, true)});
        self.projects.insert(name.to_owned(), project);
        Ok(out)
    }

    pub(crate) fn get_project(&self, name: &str) -> Result<Value, ApiError> {
        Ok(json!({"project": Self::project_json(self.require_project(name)?, true)}))
    }

    pub(crate) fn list_projects(&self, full: bool) -> Value {
        let projects: Vec<Value> = self
            .projects
            .values()
            .map(|p| Self::project_json(p, full))
            .collect();
        json!({"projects": projects})
    }

    // -- sources ------------------------------------------------------------
}
