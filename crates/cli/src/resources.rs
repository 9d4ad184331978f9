//! `cm get|create|delete` for the resources `re` manages: projects,
//! sources, datasets, buckets, streams, users, quotas and audit events.
//! Each is one operation of the spec ([`api::call`]), printed as a table
//! (the columns `re` shows) or, with `-o json|jsonl`, as the server sent it.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::api::call;
use crate::cli::{Create, Delete, Format, Get, Global};
use crate::exit::Failure;
use crate::output::{Table, cell, print_json};

/// `project/name` split in two (or three parts for a stream).
pub fn split<const N: usize>(text: &str, what: &str) -> Result<[String; N], Failure> {
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() != N || parts.iter().any(|p| p.is_empty()) {
        let shape = match N {
            2 => "project/name",
            _ => "project/dataset/stream",
        };
        return Err(Failure::usage(format!(
            "{what} must be {shape}, got {text:?}"
        )));
    }
    Ok(std::array::from_fn(|i| parts[i].to_owned()))
}

/// What a list prints: the answer's key holding the items, and the table's
/// columns as (header, JSON pointer) pairs.
struct Listing {
    key: &'static str,
    columns: &'static [(&'static str, &'static str)],
}

const SOURCES: Listing = Listing {
    key: "sources",
    columns: &[
        ("PROJECT", "/owner"),
        ("NAME", "/name"),
        ("ID", "/id"),
        ("UPDATED", "/updated_at"),
        ("TITLE", "/title"),
    ],
};
const DATASETS: Listing = Listing {
    key: "datasets",
    columns: &[
        ("PROJECT", "/owner"),
        ("NAME", "/name"),
        ("ID", "/id"),
        ("UPDATED", "/last_modified"),
        ("TITLE", "/title"),
    ],
};
const PROJECTS: Listing = Listing {
    key: "projects",
    columns: &[("NAME", "/name"), ("ID", "/id"), ("TITLE", "/title")],
};
const BUCKETS: Listing = Listing {
    key: "buckets",
    columns: &[
        ("PROJECT", "/owner"),
        ("NAME", "/name"),
        ("ID", "/id"),
        ("CREATED", "/created_at"),
        ("TITLE", "/title"),
    ],
};
const STREAMS: Listing = Listing {
    key: "streams",
    columns: &[
        ("NAME", "/name"),
        ("ID", "/id"),
        ("UPDATED", "/updated_at"),
        ("MODEL VERSION", "/model/version"),
        ("TITLE", "/title"),
    ],
};
const USERS: Listing = Listing {
    key: "users",
    columns: &[
        ("NAME", "/username"),
        ("EMAIL", "/email"),
        ("ID", "/id"),
        ("CREATED", "/created"),
    ],
};
const QUOTAS: Listing = Listing {
    key: "quotas",
    columns: &[
        ("KIND", "/quota_kind"),
        ("HARD LIMIT", "/hard_limit"),
        ("USAGE", "/current_max_usage"),
    ],
};
const AUDIT_EVENTS: Listing = Listing {
    key: "audit_events",
    columns: &[
        ("TIMESTAMP", "/timestamp"),
        ("EVENT", "/event_type"),
        ("ACTOR", "/actor_user_id"),
        ("ID", "/event_id"),
    ],
};

fn print_items(items: &[Value], listing: &Listing, format: Format) -> Result<(), Failure> {
    if format != Format::Table {
        return print_json(&items, format);
    }
    let mut table = Table::new(listing.columns.iter().map(|(header, _)| *header));
    for item in items {
        table.row(
            listing
                .columns
                .iter()
                .map(|(_, pointer)| cell(item, pointer)),
        );
    }
    table.print();
    Ok(())
}

fn items_of(answer: &Value, key: &str) -> Vec<Value> {
    answer
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `cm get ...`.
pub async fn get(global: &Global, what: Get) -> Result<ExitCode, Failure> {
    let format = global.output.unwrap_or(Format::Table);
    let client = || crate::context::client(global);
    let by_project = |all: &str, one: &str, project: Option<String>| {
        let client = client()?;
        Ok::<_, Failure>(match project {
            Some(project) => call(&client, one).path_param("project", project),
            None => call(&client, all),
        })
    };
    let (request, listing) = match what {
        Get::Comments(args) => return crate::comments::get_comments(global, args).await,
        Get::Sources { project } => (
            by_project("list_sources", "list_project_sources", project)?,
            &SOURCES,
        ),
        Get::Datasets { project } => (
            by_project("list_datasets", "list_project_datasets", project)?,
            &DATASETS,
        ),
        Get::Buckets { project } => (
            by_project("list_buckets", "list_project_buckets", project)?,
            &BUCKETS,
        ),
        Get::Projects => (call(&client()?, "list_projects"), &PROJECTS),
        Get::Users => (call(&client()?, "list_users"), &USERS),
        Get::Quotas => (call(&client()?, "list_quotas"), &QUOTAS),
        Get::Streams { dataset } => {
            let [project, dataset] = split::<2>(&dataset, "the dataset")?;
            let request = call(&client()?, "list_streams")
                .path_param("project", project)
                .path_param("dataset_name", dataset);
            (request, &STREAMS)
        }
        Get::AuditEvents { from, to } => {
            let events = audit_events(&client()?, from, to).await?;
            print_items(&events, &AUDIT_EVENTS, format)?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let answer = request.send().await?.into_inner();
    print_items(&items_of(&answer, listing.key), listing, format)?;
    Ok(ExitCode::SUCCESS)
}

/// Every audit event in the range, page after page.
async fn audit_events(
    client: &cm_api::Client,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<Value>, Failure> {
    let mut events = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let mut timestamp = serde_json::Map::new();
        if let Some(from) = from {
            timestamp.insert("minimum".into(), json!(from));
        }
        if let Some(to) = to {
            timestamp.insert("maximum".into(), json!(to));
        }
        let mut body = json!({"filter": {"timestamp": timestamp}});
        if let Some(continuation) = &continuation {
            body["continuation"] = json!(continuation);
        }
        let answer = call(client, "query_audit_events")
            .body(body)
            .send()
            .await?
            .into_inner();
        events.extend(items_of(&answer, "audit_events"));
        match answer.get("continuation").and_then(Value::as_str) {
            Some(next) if !next.is_empty() && Some(next) != continuation.as_deref() => {
                continuation = Some(next.to_owned());
            }
            _ => return Ok(events),
        }
    }
}

/// Drops the keys whose value is `None`, so that the server's defaults apply.
fn object(fields: &[(&str, Option<Value>)]) -> Value {
    Value::Object(
        fields
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
            .collect(),
    )
}

/// `cm create ...`.
pub async fn create(global: &Global, what: Create) -> Result<ExitCode, Failure> {
    let format = global.output.unwrap_or(Format::Table);
    let client = || crate::context::client(global);
    let (answer, key, listing) = match what {
        Create::Comments(args) => return crate::bulk::comments(global, args).await,
        Create::Emails(args) => return crate::bulk::emails(global, args).await,
        Create::Project {
            name,
            title,
            description,
        } => {
            let client = client()?;
            let body = json!({"project": object(&[("title", title.map(Value::from)), ("description", description.map(Value::from))])});
            (
                call(&client, "create_project")
                    .path_param("project", name)
                    .body(body)
                    .send()
                    .await?,
                "project",
                &PROJECTS,
            )
        }
        Create::Source {
            source,
            title,
            description,
            language,
            kind,
            bucket_id,
        } => {
            let client = client()?;
            let [project, name] = split::<2>(&source, "the source")?;
            let body = json!({"source": object(&[
                ("title", title.map(Value::from)),
                ("description", description.map(Value::from)),
                ("language", language.map(Value::from)),
                ("_kind", kind.map(Value::from)),
                ("bucket_id", bucket_id.map(Value::from)),
            ])});
            let request = call(&client, "create_source")
                .path_param("project", project)
                .path_param("source_name", name);
            (request.body(body).send().await?, "source", &SOURCES)
        }
        Create::Dataset {
            dataset,
            sources,
            title,
            description,
            has_sentiment,
        } => {
            let client = client()?;
            let [project, name] = split::<2>(&dataset, "the dataset")?;
            let mut source_ids = Vec::new();
            for source in &sources {
                source_ids.push(Value::from(source_id(&client, source).await?));
            }
            let body = json!({"dataset": object(&[
                ("title", title.map(Value::from)),
                ("description", description.map(Value::from)),
                ("source_ids", Some(Value::Array(source_ids))),
                ("has_sentiment", Some(Value::from(has_sentiment))),
            ])});
            let request = call(&client, "create_dataset")
                .path_param("project", project)
                .path_param("dataset_name", name);
            (request.body(body).send().await?, "dataset", &DATASETS)
        }
        Create::Bucket { bucket, title } => {
            let client = client()?;
            let [project, name] = split::<2>(&bucket, "the bucket")?;
            let body = json!({"bucket": object(&[("title", title.map(Value::from))])});
            let request = call(&client, "create_bucket")
                .path_param("project", project)
                .path_param("bucket_name", name);
            (request.body(body).send().await?, "bucket", &BUCKETS)
        }
        Create::Stream {
            stream,
            title,
            description,
            model_version,
        } => {
            let client = client()?;
            let [project, dataset, name] = split::<3>(&stream, "the stream")?;
            let body = json!({"stream": object(&[
                ("name", Some(Value::from(name))),
                ("title", title.map(Value::from)),
                ("description", description.map(Value::from)),
                ("model", model_version.map(|v| json!({"version": v}))),
            ])});
            let request = call(&client, "create_stream")
                .path_param("project", project)
                .path_param("dataset_name", dataset);
            (request.body(body).send().await?, "stream", &STREAMS)
        }
    };
    let created = answer.value().get(key).cloned().unwrap_or(Value::Null);
    print_items(std::slice::from_ref(&created), listing, format)?;
    Ok(ExitCode::SUCCESS)
}

/// The id of `project/source`.
pub async fn source_id(client: &cm_api::Client, source: &str) -> Result<String, Failure> {
    let [project, name] = split::<2>(source, "the source")?;
    let answer = call(client, "get_source")
        .path_param("project", project)
        .path_param("source_name", name)
        .send()
        .await?;
    id_of(answer.value(), "/source/id", source)
}

fn id_of(answer: &Value, pointer: &str, what: &str) -> Result<String, Failure> {
    answer
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Failure::not_found(format!("{what}: the answer holds no id")))
}

/// `cm delete ...`.
pub async fn delete(global: &Global, what: Delete) -> Result<ExitCode, Failure> {
    let client = crate::context::client(global)?;
    let (request, what) = match what {
        Delete::Project { name } => (
            call(&client, "delete_project").path_param("project", &name),
            format!("project {name}"),
        ),
        Delete::Source { source } => {
            let id = source_id(&client, &source).await?;
            (
                call(&client, "delete_source_by_id").path_param("source_id", id),
                format!("source {source}"),
            )
        }
        Delete::Dataset { dataset } => {
            let [project, name] = split::<2>(&dataset, "the dataset")?;
            (
                call(&client, "delete_dataset")
                    .path_param("project", project)
                    .path_param("dataset_name", name),
                format!("dataset {dataset}"),
            )
        }
        Delete::Bucket { bucket } => {
            let [project, name] = split::<2>(&bucket, "the bucket")?;
            let answer = call(&client, "get_bucket")
                .path_param("project", project)
                .path_param("bucket_name", name)
                .send()
                .await?;
            let id = id_of(answer.value(), "/bucket/id", &bucket)?;
            (
                call(&client, "delete_bucket_by_id").path_param("bucket_id", id),
                format!("bucket {bucket}"),
            )
        }
        Delete::Stream { stream } => {
            let [project, dataset, name] = split::<3>(&stream, "the stream")?;
            let request = call(&client, "delete_stream")
                .path_param("project", project)
                .path_param("dataset_name", dataset)
                .path_param("stream_name", name);
            (request, format!("stream {stream}"))
        }
    };
    request.send().await?;
    eprintln!("deleted {what}");
    Ok(ExitCode::SUCCESS)
}
