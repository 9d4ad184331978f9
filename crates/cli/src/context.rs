//! Contexts and the client. A context is a profile of cm-api's config file
//! (`cm_api::config`): an endpoint, where its credentials come from (an
//! environment variable, never the secret itself) and a default project.
//! `cm config` edits that file and keeps whatever else it holds.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cm_api::{Client, ConfigError, Endpoint, Error};
use serde::Deserialize;
use toml::{Table, Value};

use crate::cli::{AddContext, Config, Format, Global};
use crate::exit::Failure;
use crate::output::{Table as Columns, print_json};

/// The client for `global`'s endpoint and context. Without credentials
/// from any of them, a terminal is asked for a developer token, which is
/// not echoed (and not stored).
pub fn client(global: &Global) -> Result<Client, Failure> {
    let mut builder =
        Client::builder().user_agent_suffix(concat!("cm/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &global.config {
        builder = builder.config_path(path);
    }
    if let Some(context) = &global.context {
        builder = builder.profile(context);
    }
    if let Some(endpoint) = &global.endpoint {
        let endpoint = Endpoint::parse(endpoint)
            .map_err(|e| Failure::usage(format!("--endpoint: {}", crate::exit::one_line(&e))))?;
        builder = builder.endpoint(endpoint);
    }
    match builder.clone().build() {
        Err(Error::Config(ConfigError::MissingCredentials | ConfigError::MissingEnvVar { .. }))
            if std::io::stdin().is_terminal() =>
        {
            let token = rpassword::prompt_password("API token (not echoed): ")
                .map_err(|e| Failure::io("cannot read the token", e))?;
            Ok(builder.token(token.trim().to_owned()).build()?)
        }
        other => Ok(other?),
    }
}

/// The config file `cm config` edits: `--config`, else the one the client
/// reads ([`cm_api::config::config_path`]).
fn config_path(global: &Global) -> Result<PathBuf, Failure> {
    global
        .config
        .clone()
        .or_else(cm_api::config::config_path)
        .ok_or_else(|| Failure::usage("no config directory: give --config"))
}

fn load(path: &Path) -> Result<Table, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse::<Table>()
            .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.message()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Table::new()),
        Err(e) => Err(Failure::io(path.display(), e)),
    }
}

fn save(path: &Path, table: &Table) -> Result<(), Failure> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir.display(), e))?;
    }
    std::fs::write(path, table.to_string()).map_err(|e| Failure::io(path.display(), e))
}

fn profiles(table: &mut Table) -> Result<&mut Table, Failure> {
    table
        .entry("profiles")
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| Failure::usage("`profiles` in the config file is not a table"))
}

/// `cm config ...`.
pub fn config(global: &Global, command: Config) -> Result<ExitCode, Failure> {
    let path = config_path(global)?;
    let mut file = load(&path)?;
    match command {
        Config::Path => println!("{}", path.display()),
        Config::List => list(&file, global.output.unwrap_or(Format::Table))?,
        Config::Add(add) => {
            let name = add.name.clone();
            let make_current = add.make_current || !file.contains_key("default_profile");
            profiles(&mut file)?.insert(name.clone(), Value::Table(profile_of(add)));
            if make_current {
                file.insert("default_profile".into(), Value::String(name.clone()));
            }
            save(&path, &file)?;
            eprintln!("context {name} saved in {}", path.display());
        }
        Config::Use { name } => {
            if !profiles(&mut file)?.contains_key(&name) {
                return Err(Failure::not_found(format!("no context named {name:?}")));
            }
            file.insert("default_profile".into(), Value::String(name));
            save(&path, &file)?;
        }
        Config::Remove { name } => {
            if profiles(&mut file)?.remove(&name).is_none() {
                return Err(Failure::not_found(format!("no context named {name:?}")));
            }
            if file.get("default_profile").and_then(Value::as_str) == Some(name.as_str()) {
                file.remove("default_profile");
            }
            save(&path, &file)?;
        }
        Config::ImportRe { file: re_file } => {
            let re_path = match re_file {
                Some(path) => path,
                None => dirs::config_dir()
                    .map(|dir| dir.join("reinfer").join("contexts.json"))
                    .ok_or_else(|| Failure::usage("no config directory: give --file"))?,
            };
            import_re(&re_path, &mut file)?;
            save(&path, &file)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn profile_of(add: AddContext) -> Table {
    let mut profile = Table::new();
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            profile.insert(key.into(), Value::String(value));
        }
    };
    set("endpoint", add.endpoint);
    set("token_env", add.token_env);
    set("client_id", add.client_id);
    set("client_secret_env", add.client_secret_env);
    set("default_project", add.project);
    profile
}

fn list(file: &Table, format: Format) -> Result<(), Failure> {
    let current = file.get("default_profile").and_then(Value::as_str);
    let empty = Table::new();
    let profiles = file
        .get("profiles")
        .and_then(Value::as_table)
        .unwrap_or(&empty);
    let field = |p: &Value, key: &str| p.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    if format != Format::Table {
        let rows: Vec<serde_json::Value> = profiles
            .iter()
            .map(|(name, p)| {
                serde_json::json!({
                    "name": name,
                    "current": Some(name.as_str()) == current,
                    "endpoint": field(p, "endpoint"),
                    "token_env": field(p, "token_env"),
                    "client_id": field(p, "client_id"),
                    "client_secret_env": field(p, "client_secret_env"),
                    "default_project": field(p, "default_project"),
                })
            })
            .collect();
        return print_json(&rows, format);
    }
    let mut table = Columns::new(["", "CONTEXT", "ENDPOINT", "CREDENTIALS", "PROJECT"]);
    for (name, p) in profiles {
        let credentials = match (field(p, "token_env"), field(p, "client_id")) {
            (_, id) if !id.is_empty() => {
                format!("client {id} (secret in ${})", field(p, "client_secret_env"))
            }
            (var, _) if !var.is_empty() => format!("token in ${var}"),
            _ => format!("token in ${}", cm_api::config::TOKEN_ENV),
        };
        table.row([
            if Some(name.as_str()) == current {
                "*"
            } else {
                ""
            }
            .to_owned(),
            name.clone(),
            field(p, "endpoint"),
            credentials,
            field(p, "default_project"),
        ]);
    }
    table.print();
    Ok(())
}

/// `re`'s contexts file (reinfer-cli's `ReinferConfig`), as much as cm uses.
#[derive(Deserialize)]
struct ReConfig {
    #[serde(default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<ReContext>,
}

#[derive(Deserialize)]
struct ReContext {
    name: String,
    endpoint: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    proxy: Option<String>,
    #[serde(default)]
    accept_invalid_certificates: bool,
}

/// The environment variable an imported context's token is read from.
fn token_env_for(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CM_TOKEN_{upper}")
}

/// Adds (or replaces) one profile per `re` context. `re` keeps tokens in
/// its file; cm keeps none in files, so each imported context reads its
/// token from `CM_TOKEN_<NAME>`, and stderr says which variable to set.
fn import_re(path: &Path, file: &mut Table) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path.display(), e))?;
    let re: ReConfig = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: not a re contexts file: {e}", path.display())))?;
    let profiles = profiles(file)?;
    for context in &re.contexts {
        let mut profile = Table::new();
        profile.insert("endpoint".into(), Value::String(context.endpoint.clone()));
        let var = token_env_for(&context.name);
        profile.insert("token_env".into(), Value::String(var.clone()));
        profiles.insert(context.name.clone(), Value::Table(profile));
        let token_note = if context.token.is_some() {
            format!("its token is not copied (cm keeps no secret in files): set ${var}")
        } else {
            format!("set ${var} to its token")
        };
        eprintln!("imported context {}: {token_note}", context.name);
        if context.proxy.is_some() || context.accept_invalid_certificates {
            eprintln!(
                "  note: its proxy and certificate settings are not imported (use HTTPS_PROXY)"
            );
        }
    }
    if let Some(current) = re.current_context
        && !file.contains_key("default_profile")
    {
        file.insert("default_profile".into(), Value::String(current));
    }
    eprintln!(
        "{} context(s) imported from {}",
        re.contexts.len(),
        path.display()
    );
    Ok(())
}
