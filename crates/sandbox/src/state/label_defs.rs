//! Label definitions of a label group: create (or update) in bulk, get,
//! update (rename), delete. They live in the dataset's `label_groups` as
//! `get_dataset` answers them; the top-level `label_defs` mirror `default`.

use super::*;

#[derive(Deserialize)]
struct CreateLabelDefsRequest {
    label_defs: Vec<Value>,
}

#[derive(Deserialize)]
struct UpdateLabelDefRequest {
    label: LabelDefUpdate,
}

#[derive(Deserialize)]
struct LabelDefUpdate {
    name: Option<String>,
    title: Option<String>,
    instructions: Option<String>,
    external_id: Option<String>,
    properties: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    pretrained: Option<Option<PretrainedRef>>,
    #[serde(default, deserialize_with = "double_option")]
    trainable: Option<Option<bool>>,
    moon_form: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct PretrainedRef {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Property {
    name: String,
    value: f64,
}

/// The keys of `LabelDefNew`: the fields a bulk create may update.
const LABEL_DEF_KEYS: [&str; 8] = [
    "name",
    "title",
    "instructions",
    "external_id",
    "trainable",
    "pretrained",
    "moon_form",
    "properties",
];

/// A full label name: levels joined by ` > `, none empty.
fn check_label_name(name: &str, at: &str) -> Result<(), ApiError> {
    if name.split(" > ").any(|level| level.trim().is_empty()) {
        return Err(ApiError::unprocessable(format!(
            "`{at}`: a label name is its levels joined by ` > `, none empty; got {name:?}"
        )));
    }
    Ok(())
}

fn label_name_query(query: &Query) -> Result<&str, ApiError> {
    query
        .get("label_name")
        .ok_or_else(|| ApiError::bad_request("query `label_name` is required"))
}

impl State {
    /// The index of a group in a dataset's `label_groups`, 404 when absent.
    fn group_index(
        &self,
        project: &str,
        dataset: &str,
        group: &str,
    ) -> Result<(String, usize), ApiError> {
        let id = self.dataset_id(project, dataset)?;
        let index = self.datasets[&id]
            .body
            .get("label_groups")
            .and_then(Value::as_array)
            .and_then(|groups| groups.iter().position(|g| g["name"] == group))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "label group `{group}` of dataset `{project}/{dataset}`"
                ))
            })?;
        Ok((id, index))
    }

    fn group_defs(&self, dataset_id: &str, index: usize) -> &Vec<Value> {
        self.datasets[dataset_id].body["label_groups"][index]["label_defs"]
            .as_array()
            .expect("a label group holds label_defs")
    }

    /// Replaces a group's label definitions: keeps the top-level
    /// `label_defs` (group `default`) and `last_modified` in step, and makes
    /// a new model version.
    fn store_group_defs(&mut self, dataset_id: &str, index: usize, defs: Vec<Value>) {
        let now = self.clock.now();
        let d = self.datasets.get_mut(dataset_id).expect("indexed dataset");
        let group = &mut d.body["label_groups"][index];
        let is_default = group["name"] == "default";
        group["label_defs"] = Value::Array(defs.clone());
        if is_default {
            d.body.insert("label_defs".into(), Value::Array(defs));
        }
        d.body.insert("last_modified".into(), ts(now));
        d.labellings.retrain(now);
    }

    /// Adds label definitions to a group; a label that exists takes the
    /// fields given.
    pub(crate) fn create_label_defs(
        &mut self,
        project: &str,
        dataset: &str,
        group: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let request: CreateLabelDefsRequest = decode_value(body, "")?;
        let (dataset_id, index) = self.group_index(project, dataset, group)?;
        let mut defs = self.group_defs(&dataset_id, index).clone();
        let mut names = BTreeSet::new();
        for (i, raw) in request.label_defs.into_iter().enumerate() {
            let at = format!("label_defs[{i}]");
            let given: Vec<String> = raw
                .as_object()
                .map(|o| {
                    o.keys()
                        .filter(|k| LABEL_DEF_KEYS.contains(&k.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let def = self.label_def_of(raw, &at, "create_label_defs")?;
            let name = def["name"].as_str().unwrap_or_default().to_owned();
            check_label_name(&name, &format!("{at}.name"))?;
            if !names.insert(name.clone()) {
                return Err(ApiError::unprocessable(format!(
                    "`{at}.name`: label {name:?} appears twice"
                )));
            }
            match defs.iter_mut().find(|d| d["name"] == name.as_str()) {
                Some(existing) => {
                    for key in given {
                        match def.get(&key) {
                            Some(value) => existing[&key] = value.clone(),
                            // `trainable: null`, say: back to the default.
                            None => {
                                if let Some(o) = existing.as_object_mut() {
                                    o.remove(&key);
                                }
                            }
                        }
                    }
                }
                None => defs.push(def),
            }
        }
        if defs != *self.group_defs(&dataset_id, index) {
            self.store_group_defs(&dataset_id, index, defs);
        }
        Ok(json!({}))
    }

    pub(crate) fn get_label_def(
        &self,
        project: &str,
        dataset: &str,
        group: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let name = label_name_query(query)?;
        let (dataset_id, index) = self.group_index(project, dataset, group)?;
        let def = self
            .group_defs(&dataset_id, index)
            .iter()
            .find(|d| d["name"] == name)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "label {name:?} in label group `{group}` of dataset `{project}/{dataset}`"
                ))
            })?;
        Ok(json!({"label": def}))
    }

    /// Changes the given fields of a label definition; a new `name` renames
    /// the label, in the labellings too.
    pub(crate) fn update_label_def(
        &mut self,
        project: &str,
        dataset: &str,
        group: &str,
        query: &Query,
        body: Value,
    ) -> Result<Value, ApiError> {
        let name = label_name_query(query)?.to_owned();
        let request: UpdateLabelDefRequest = decode_value(body, "")?;
        let (dataset_id, index) = self.group_index(project, dataset, group)?;
        let mut defs = self.group_defs(&dataset_id, index).clone();
        let Some(position) = defs.iter().position(|d| d["name"] == name.as_str()) else {
            return Err(ApiError::not_found(format!(
                "label {name:?} in label group `{group}` of dataset `{project}/{dataset}`"
            )));
        };
        let u = request.label;
        if u.moon_form.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(ApiError::new(
                http::StatusCode::NOT_IMPLEMENTED,
                "update_label_def: `label.moon_form` is not implemented by the sandbox",
            ));
        }
        let rename = u.name.filter(|new| *new != name);
        if let Some(new) = &rename {
            check_label_name(new, "label.name")?;
            if defs.iter().any(|d| d["name"] == new.as_str()) {
                return Err(ApiError::conflict(format!(
                    "label {new:?} in label group `{group}` of dataset `{project}/{dataset}`"
                )));
            }
        }
        let properties = match u.properties {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for (i, p) in list.into_iter().enumerate() {
                    let p: Property = decode_value(p, &format!("label.properties[{i}]"))?;
                    out.push(json!({"name": p.name, "value": p.value}));
                }
                Some(out)
            }
        };
        let def = &mut defs[position];
        if let Some(new) = &rename {
            def["name"] = new.as_str().into();
        }
        for (key, value) in [
            ("title", u.title),
            ("instructions", u.instructions),
            ("external_id", u.external_id),
        ] {
            if let Some(value) = value {
                def[key] = value.into();
            }
        }
        if let Some(properties) = properties {
            def["properties"] = properties.into();
        }
        if let Some(trainable) = u.trainable {
            def["trainable"] = trainable.unwrap_or(false).into();
        }
        match u.pretrained {
            None => {}
            Some(None) => {
                if let Some(o) = def.as_object_mut() {
                    o.remove("pretrained");
                }
            }
            Some(Some(p)) => {
                let pname = p.name.unwrap_or_else(|| p.id.clone());
                def["pretrained"] =
                    json!({"id": p.id, "name": pname, "description": "", "properties": []});
            }
        }
        if u.moon_form.is_some() {
            def["moon_form"] = json!([]);
        }
        let label = def.clone();
        self.store_group_defs(&dataset_id, index, defs);
        if let Some(new) = &rename {
            let d = self.datasets.get_mut(&dataset_id).expect("indexed dataset");
            d.labellings.rename_label(group, &name, new);
        }
        Ok(json!({"num_modified": 1, "label": label}))
    }

    /// Removes a label definition and its annotations; `num_modified` is 0
    /// when there was no such label.
    pub(crate) fn delete_label_def(
        &mut self,
        project: &str,
        dataset: &str,
        group: &str,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let name = label_name_query(query)?.to_owned();
        let (dataset_id, index) = self.group_index(project, dataset, group)?;
        let mut defs = self.group_defs(&dataset_id, index).clone();
        let before = defs.len();
        defs.retain(|d| d["name"] != name.as_str());
        if defs.len() == before {
            return Ok(json!({"num_modified": 0}));
        }
        self.store_group_defs(&dataset_id, index, defs);
        let d = self.datasets.get_mut(&dataset_id).expect("indexed dataset");
        d.labellings.remove_label(group, &name);
        Ok(json!({"num_modified": 1}))
    }
}
