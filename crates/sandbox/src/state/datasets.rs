//! Datasets with their label groups and label definitions.

use super::*;

#[derive(Deserialize)]
struct CreateDatasetRequest {
    dataset: DatasetNew,
}

#[derive(Deserialize, Default)]
struct DatasetNew {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    source_ids: Vec<String>,
    has_sentiment: Option<bool>,
    model_family: Option<String>,
    #[serde(default)]
    label_groups: Vec<LabelGroupNew>,
    #[serde(default)]
    label_defs: Vec<Value>,
    #[serde(default)]
    entity_defs: Vec<Value>,
    #[serde(default)]
    general_fields: Vec<Value>,
    copy_annotations_from: Option<String>,
}

#[derive(Deserialize)]
struct LabelGroupNew {
    name: String,
    #[serde(default)]
    label_defs: Vec<Value>,
    #[serde(default, deserialize_with = "double_option")]
    label_collection_name: Option<Option<String>>,
    trainable: Option<bool>,
    hidden: Option<bool>,
    instructions: Option<String>,
}

#[derive(Deserialize)]
struct LabelDefNew {
    name: String,
    title: Option<String>,
    instructions: Option<String>,
    external_id: Option<String>,
    trainable: Option<bool>,
    pretrained: Option<PretrainedLabelRef>,
    #[serde(default)]
    moon_form: Vec<Value>,
    #[serde(default)]
    properties: Vec<LabelDefProperty>,
}

#[derive(Deserialize)]
struct PretrainedLabelRef {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize, serde::Serialize)]
struct LabelDefProperty {
    name: String,
    value: f64,
}

impl State {
    fn dataset_json(d: &Dataset) -> Value {
        let mut out = d.body.clone();
        out.insert("source_ids".into(), json!(d.source_ids));
        Value::Object(out)
    }

    pub(super) fn dataset_id(&self, project: &str, name: &str) -> Result<String, ApiError> {
        self.named_id(&self.dataset_names, "dataset", project, name)
    }

    /// Forgets the dataset with its labellings and streams; its sources
    /// and their comments stay.
    pub(crate) fn delete_dataset(&mut self, project: &str, name: &str) -> Result<Value, ApiError> {
        let id = self.dataset_id(project, name)?;
        self.datasets.remove(&id);
        self.dataset_names
            .remove(&(project.to_owned(), name.to_owned()));
        Ok(json!({}))
    }

    pub(crate) fn create_dataset(
        &mut self,
        project: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: CreateDatasetRequest = decode_value(body, "")?;
        self.require_project(project)?;
        let key = (project.to_owned(), name.to_owned());
        if self.dataset_names.contains_key(&key) {
            return Err(ApiError::conflict(format!("dataset `{project}/{name}`")));
        }
        let d = request.dataset;
        for (i, id) in d.source_ids.iter().enumerate() {
            if !self.sources.contains_key(id) {
                return Err(ApiError::not_found(format!(
                    "`dataset.source_ids[{i}]`: source with id `{id}`"
                )));
            }
        }
        for (field, given) in [
            ("entity_defs", d.entity_defs.is_empty()),
            ("general_fields", d.general_fields.is_empty()),
            ("copy_annotations_from", d.copy_annotations_from.is_none()),
        ] {
            if !given {
                return Err(ApiError::new(
                    http::StatusCode::NOT_IMPLEMENTED,
                    format!("create_dataset: `dataset.{field}` is not implemented by the sandbox"),
                ));
            }
        }
        // Label groups as given; top-level `label_defs` belong to `default`.
        let mut groups: Vec<LabelGroupNew> = Vec::new();
        let mut default_defs = Vec::new();
        for (i, def) in d.label_defs.into_iter().enumerate() {
            default_defs.push(self.label_def(def, &format!("dataset.label_defs[{i}]"))?);
        }
        let mut label_groups = Vec::new();
        let mut names = BTreeSet::new();
        for (g, group) in d.label_groups.into_iter().enumerate() {
            if !names.insert(group.name.clone()) {
                return Err(ApiError::unprocessable(format!(
                    "`dataset.label_groups[{g}].name`: label group {:?} appears twice",
                    group.name
                )));
            }
            groups.push(group);
        }
        let mut default_given = false;
        for (g, group) in groups.into_iter().enumerate() {
            let mut defs = Vec::new();
            for (i, def) in group.label_defs.into_iter().enumerate() {
                defs.push(
                    self.label_def(def, &format!("dataset.label_groups[{g}].label_defs[{i}]"))?,
                );
            }
            if group.name == "default" {
                default_given = true;
                defs.splice(0..0, default_defs.drain(..));
            }
            label_groups.push(json!({
                "name": group.name,
                "label_defs": defs,
                "label_collection_name": group.label_collection_name.flatten(),
                "trainable": group.trainable.unwrap_or(false),
                "hidden": group.hidden.unwrap_or(false),
                "instructions": group.instructions.unwrap_or_default(),
            }));
        }
        if !default_given {
            label_groups.insert(
                0,
                json!({
                    "name": "default",
                    "label_defs": default_defs,
                    "label_collection_name": null,
                    "trainable": false,
                    "hidden": false,
                    "instructions": "",
                }),
            );
        }
        let top_level_defs = label_groups
            .iter()
            .find(|g| g["name"] == "default")
            .map(|g| g["label_defs"].clone())
            .unwrap_or_else(|| json!([]));

        let now = self.clock.now();
        let id = self.new_id();
        let body = json!({
            "id": id,
            "owner": project,
            "name": name,
            "title": d.title.unwrap_or_default(),
            "description": d.description.unwrap_or_default(),
            "created": ts(now),
            "last_modified": ts(now),
            "model_family": d.model_family.unwrap_or_else(|| "english".into()),
            "has_sentiment": d.has_sentiment.unwrap_or(false),
            "limited_access": false,
            "readonly": false,
            "entity_defs": [],
            "general_fields": [],
            "label_groups": label_groups,
            "label_defs": top_level_defs,
        });
        let Value::Object(body) = body else {
            unreachable!("an object literal")
        };
        let dataset = Dataset {
            id: id.clone(),
            body,
            source_ids: d.source_ids,
            streams: BTreeMap::new(),
            labellings: Default::default(),
        };
        let out = json!({"dataset": Self::dataset_json(&dataset), "num_copied": 0});
        self.datasets.insert(id.clone(), dataset);
        self.dataset_names.insert(key, id);
        Ok(out)
    }

    /// `LabelDefNew` → `LabelDef`: the given fields, the spec's defaults,
    /// and ids for the extraction fields.
    fn label_def(&mut self, value: Value, at: &str) -> Result<Value, ApiError> {
        self.label_def_of(value, at, "create_dataset")
    }

    /// `label_def` for the operation `op` (named in a 501).
    pub(super) fn label_def_of(
        &mut self,
        value: Value,
        at: &str,
        op: &str,
    ) -> Result<Value, ApiError> {
        let def: LabelDefNew = decode_value(value, at)?;
        if !def.moon_form.is_empty() {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                format!("{op}: `{at}.moon_form` is not implemented by the sandbox"),
            ));
        }
        let mut out = json!({
            "name": def.name,
            "title": def.title.unwrap_or_default(),
            "instructions": def.instructions.unwrap_or_default(),
            "trainable": def.trainable.unwrap_or(false),
            "properties": def.properties,
            "moon_form": [],
            "_flags": [],
        });
        if let Some(external_id) = def.external_id {
            out["external_id"] = external_id.into();
        }
        if let Some(pretrained) = def.pretrained {
            let name = pretrained.name.unwrap_or_else(|| pretrained.id.clone());
            out["pretrained"] =
                json!({"id": pretrained.id, "name": name, "description": "", "properties": []});
        }
        Ok(out)
    }

    pub(crate) fn get_dataset(&self, project: &str, name: &str) -> Result<Value, ApiError> {
        let id = self.dataset_id(project, name)?;
        Ok(json!({"dataset": Self::dataset_json(&self.datasets[&id])}))
    }

    pub(crate) fn list_datasets(&self, project: Option<&str>) -> Result<Value, ApiError> {
        if let Some(project) = project {
            self.require_project(project)?;
        }
        let datasets: Vec<Value> = self
            .dataset_names
            .iter()
            .filter(|((p, _), _)| project.is_none_or(|project| p == project))
            .map(|(_, id)| Self::dataset_json(&self.datasets[id]))
            .collect();
        Ok(json!({"datasets": datasets}))
    }

    // -- streams ------------------------------------------------------------
}
