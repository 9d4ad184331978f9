//! Sources: create, get, update, delete, list.

use super::*;

#[derive(Deserialize)]
struct SourceRequest {
    source: SourceFields,
}

#[derive(Deserialize, Default)]
struct SourceFields {
    #[serde(rename = "_kind")]
    kind: Option<String>,
    language: Option<String>,
    title: Option<String>,
    description: Option<String>,
    should_translate: Option<bool>,
    sensitive_properties: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    bucket_id: Option<Option<String>>,
    email_transform_tag: Option<String>,
    email_transform_version: Option<i64>,
}

impl State {
    fn source_json(s: &Source) -> Value {
        let mut out = json!({
            "id": s.id,
            "_kind": s.settings.kind,
            "owner": s.project,
            "name": s.name,
            "language": s.settings.language,
            "title": s.settings.title,
            "description": s.settings.description,
            "should_translate": s.settings.should_translate,
            "sensitive_properties": s.settings.sensitive_properties,
            "created_at": ts(s.created_at),
            "updated_at": ts(s.updated_at),
            "last_modified": ts(s.updated_at),
            "bucket_id": s.settings.bucket_id,
            "email_transform_tag": s.settings.email_transform_tag,
        });
        if let Some(version) = s.settings.email_transform_version {
            out["email_transform_version"] = version.into();
        }
        out
    }

    pub(super) fn source_id(&self, project: &str, name: &str) -> Result<String, ApiError> {
        self.named_id(&self.source_names, "source", project, name)
    }

    /// The id `names` holds for `project/name` (a source's or a dataset's),
    /// or a 404 naming the `kind` (also when the project does not exist).
    pub(super) fn named_id(
        &self,
        names: &BTreeMap<(String, String), String>,
        kind: &str,
        project: &str,
        name: &str,
    ) -> Result<String, ApiError> {
        self.require_project(project)?;
        names
            .get(&(project.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("{kind} `{project}/{name}`")))
    }

    /// A source's `bucket_id`, when set, names an existing bucket (422).
    fn require_bucket(&self, bucket_id: Option<&Option<String>>) -> Result<(), ApiError> {
        match bucket_id {
            Some(Some(id)) if !self.has_bucket(id) => Err(ApiError::unprocessable(format!(
                "`source.bucket_id`: no bucket has id `{id}`"
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn create_source(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: SourceRequest = decode_value(body, "")?;
        self.require_project(project)?;
        let key = (project.to_owned(), name.to_owned());
        if self.source_names.contains_key(&key) {
            return Err(ApiError::conflict(format!("source `{project}/{name}`")));
        }
        let f = request.source;
        self.require_bucket(f.bucket_id.as_ref())?;
        let settings = SourceSettings {
            kind: f.kind.unwrap_or_else(|| "unknown".into()),
            language: f.language.unwrap_or_else(|| "en".into()),
            title: f.title.unwrap_or_default(),
            description: f.description.unwrap_or_default(),
            should_translate: f.should_translate.unwrap_or(false),
            sensitive_properties: f.sensitive_properties.unwrap_or_default(),
            bucket_id: f.bucket_id.flatten(),
            email_transform_tag: f.email_transform_tag,
            email_transform_version: f.email_transform_version,
        };
        let now = self.clock.now();
        let id = self.new_id();
        let source = Source {
            id: id.clone(),
            project: project.to_owned(),
            name: name.to_owned(),
            settings,
            created_at: now,
            updated_at: now,
            comments: HashMap::new(),
            by_time: BTreeSet::new(),
        };
        let out = json!({"source": Self::source_json(&source)});
        self.sources.insert(id.clone(), source);
        self.source_names.insert(key, id);
        Ok(out)
    }

    pub(crate) fn update_source(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: SourceRequest = decode_value(body, "")?;
        let id = self.source_id(project, name)?;
        self.require_bucket(request.source.bucket_id.as_ref())?;
        let now = self.clock.now();
        let source = self.sources.get_mut(&id).expect("indexed source exists");
        let f = request.source;
        let s = &mut source.settings;
        if let Some(v) = f.kind {
            s.kind = v;
        }
        if let Some(v) = f.language {
            s.language = v;
        }
        if let Some(v) = f.title {
            s.title = v;
        }
        if let Some(v) = f.description {
            s.description = v;
        }
        if let Some(v) = f.should_translate {
            s.should_translate = v;
        }
        if let Some(v) = f.sensitive_properties {
            s.sensitive_properties = v;
        }
        if let Some(v) = f.bucket_id {
            s.bucket_id = v;
        }
        if let Some(v) = f.email_transform_tag {
            s.email_transform_tag = Some(v);
        }
        if let Some(v) = f.email_transform_version {
            s.email_transform_version = Some(v);
        }
        source.updated_at = now;
        Ok(json!({"source": Self::source_json(source)}))
    }

    pub(crate) fn get_source(&self, project: &str, name: &str) -> Result<Value, ApiError> {
        let id = self.source_id(project, name)?;
        Ok(json!({"source": Self::source_json(&self.sources[&id])}))
    }

    pub(crate) fn get_source_by_id(&self, id: &str) -> Result<Value, ApiError> {
        let source = self
            .sources
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("source with id `{id}`")))?;
        Ok(json!({"source": Self::source_json(source)}))
    }

    pub(crate) fn list_sources(&self, project: Option<&str>) -> Result<Value, ApiError> {
        if let Some(project) = project {
            self.require_project(project)?;
        }
        let sources: Vec<Value> = self
            .source_names
            .iter()
            .filter(|((p, _), _)| project.is_none_or(|project| p == project))
            .map(|(_, id)| Self::source_json(&self.sources[id]))
            .collect();
        Ok(json!({"sources": sources}))
    }

    /// Deletes a source, its comments, and its id from the datasets over it.
    pub(crate) fn delete_source_by_id(&mut self, id: &str) -> Result<Value, ApiError> {
        let source = self
            .sources
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("source with id `{id}`")))?;
        self.source_names
            .remove(&(source.project.clone(), source.name.clone()));
        for comment in source.comments.values() {
            self.log.remove(&comment.seq);
        }
        for dataset in self.datasets.values_mut() {
            dataset.source_ids.retain(|s| s != id);
        }
        let uids: Vec<String> = source
            .comments
            .keys()
            .map(|c| format!("{id}.{c}"))
            .collect();
        self.forget_labellings(&uids);
        self.forget_exceptions(id, None);
        Ok(json!({}))
    }

    // -- comments -----------------------------------------------------------
}
