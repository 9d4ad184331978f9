//! Generating `crates/api-gen/src/generated/` from the spec, and checking
//! that the committed copy is current.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use progenitor_impl::{GenerationSettings, Generator, HooksMode, InterfaceStyle, TagStyle};
use quote::{ToTokens, quote};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::lint::{Finding, lint_spec};
use crate::spec::{METHODS, Spec, SpecError, operations};

/// The progenitor version in the workspace manifest (`=0.15.1`). Recorded in
/// the generated header; a test keeps it in step with `Cargo.toml`.
pub const PROGENITOR_VERSION: &str = "0.15.1";

/// Where the spec lives, relative to the workspace root.
pub const SPEC_PATH: &str = "spec/openapi.yaml";
/// Where the generated files go, relative to the workspace root.
pub const OUTPUT_DIR: &str = "crates/api-gen/src/generated";
/// Where `cm-api`'s generated facade goes ([`crate::facade`]).
pub const FACADE_DIR: &str = "crates/api/src/generated";

/// Why code generation failed.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The spec could not be read or parsed.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The spec has problems the lint found; each is one line.
    #[error("the spec has {} problem(s):\n{}", .0.len(), join_lines(.0))]
    Lint(Vec<Finding>),
    /// progenitor rejected or panicked on an operation.
    #[error("progenitor failed on {operation}: {message}")]
    Generate {
        /// `METHOD /path (operation_id)`, or `the spec` if no single
        /// operation reproduces the failure.
        operation: String,
        /// progenitor's error or panic message.
        message: String,
    },
    /// The generated tokens are not valid Rust (a progenitor bug).
    #[error("generated code for {file} does not parse: {source}")]
    Format {
        /// Which output file.
        file: &'static str,
        /// syn's error.
        source: syn::Error,
    },
    /// progenitor's output no longer has the shape the post-processing
    /// step rewrites (see `route_success_arms`).
    #[error("cannot post-process the generated client: {0}")]
    PostProcess(String),
    /// An output file could not be written or read.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `--check` found committed files that differ from a fresh generation.
    #[error("generated code is stale; run `cargo xtask codegen` and commit the result\n{0}")]
    Stale(String),
}

fn join_lines(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One generated file: its name under [`OUTPUT_DIR`] and full contents.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// Directory, relative to the workspace root: [`OUTPUT_DIR`], [`FACADE_DIR`]
    /// or [`CLI_DIR`](crate::cli::CLI_DIR).
    pub dir: &'static str,
    /// File name, e.g. `client.rs`.
    pub name: &'static str,
    /// The formatted source, header included.
    pub contents: String,
}

/// What one generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The files, in a fixed order.
    pub files: Vec<OutputFile>,
    /// Number of operations in the client.
    pub operations: usize,
    /// Operations left to `cm-api` (`x-hand-written`), with the reason.
    pub hand_written: Vec<(String, &'static str)>,
    /// Number of Rust types typify produced.
    pub types: usize,
    /// Operations left out of the httpmock helpers, with the reason.
    pub mock_exclusions: Vec<(String, &'static str)>,
    /// Time spent linting (example validation dominates).
    pub lint_elapsed: Duration,
    /// Time spent linting, generating and formatting.
    pub elapsed: Duration,
}

impl Generation {
    /// Total generated lines, over all files.
    pub fn lines(&self) -> usize {
        self.files.iter().map(|f| f.contents.lines().count()).sum()
    }
}

/// Lints the spec at `root/spec/openapi.yaml` and generates the client.
pub fn generate(root: &Path) -> Result<Generation, CodegenError> {
    let started = Instant::now();
    let spec_path = root.join(SPEC_PATH);
    let spec = Spec::load(&spec_path)?;
    let findings = lint_spec(&spec);
    if !findings.is_empty() {
        return Err(CodegenError::Lint(findings));
    }
    let linted = started.elapsed();
    let (generated_spec, hand_written) = without_operations(&spec.raw, hand_written);
    let typed = spec.typed_from(&spec_path, generated_spec.clone())?;

    let (client, type_names) = run_progenitor(&spec.raw, |generator| {
        let tokens = generator.generate_tokens(&typed)?;
        let names: Vec<String> = generator
            .get_type_space()
            .iter_types()
            .map(|t| t.name())
            .collect();
        Ok((tokens, names))
    })?;
    let types = type_names.len();

    let (mock_spec, mock_exclusions) =
        without_operations(&generated_spec, without_mock_helper(&spec.raw));
    let mock_typed = spec.typed_from(&spec_path, mock_spec)?;
    let (mock, _) = run_progenitor(&spec.raw, |generator| {
        Ok((generator.httpmock(&mock_typed, "crate")?, 0))
    })?;
    let internal = crate::gates::internal_operations(&generated_spec);
    let roots = crate::gates::hand_written_roots(root);
    let mut gates = crate::gates::Gates::default();

    let header = Header::new(&spec);
    let client_note = hand_written
        .iter()
        .map(|(op, _)| format!("//   {op}\n"))
        .collect::<String>();
    let mock_note = mock_exclusions
        .iter()
        .map(|(op, why)| format!("//   {op}: {why}\n"))
        .collect::<String>();
    let client_rs = route_success_arms(
        &format_file("client.rs", client, |file| {
            schemars_behind_feature(file);
            gates = crate::gates::gate_client(file, &internal, &roots);
        })?,
        operations(&generated_spec).len(),
    )?;
    let schemas = component_schemas(&spec.raw, &type_names, &gates.types);
    let facade = crate::facade::generate(&client_rs, &generated_spec, &gates.operations)
        .map_err(CodegenError::PostProcess)?;
    let files = vec![
        OutputFile {
            dir: OUTPUT_DIR,
            name: "client.rs",
            contents: header.render("the generated client")
                + &if client_note.is_empty() {
                    String::new()
                } else {
                    format!(
                        "//\n// Hand-written in cm-api (x-hand-written), not generated:\n{client_note}\n"
                    )
                }
                + &client_rs,
        },
        OutputFile {
            dir: OUTPUT_DIR,
            name: "mock.rs",
            contents: header.render("progenitor's httpmock helpers")
                + &if mock_note.is_empty() {
                    String::new()
                } else {
                    format!("//\n// Operations without helpers:\n{mock_note}\n")
                }
                + &format_file("mock.rs", mock, |file| {
                    crate::gates::gate_mock(file, &gates)
                })?,
        },
        OutputFile {
            dir: OUTPUT_DIR,
            name: "schemas.rs",
            contents: header.render("the JSON Schema of each component's generated type")
                + &format_tokens("schemas.rs", schemas)?,
        },
        OutputFile {
            dir: OUTPUT_DIR,
            name: "provenance.rs",
            contents: header.render("where the generated code came from") + &header.constants(),
        },
        OutputFile {
            dir: crate::cli::CLI_DIR,
            name: "operations.rs",
            contents: header.render("the `cm api` command table")
                + &crate::cli::generate(&generated_spec).map_err(CodegenError::PostProcess)?,
        },
        OutputFile {
            dir: FACADE_DIR,
            name: "operations.rs",
            contents: header.render("cm-api's typed builder for every generated operation")
                + &facade,
        },
    ];
    Ok(Generation {
        files,
        operations: operations(&generated_spec).len(),
        hand_written,
        types,
        mock_exclusions,
        lint_elapsed: linted,
        elapsed: started.elapsed(),
    })
}

/// Writes a generation into `root`, replacing the previous output.
pub fn write(root: &Path, generation: &Generation) -> Result<(), CodegenError> {
    for file in &generation.files {
        let dir = root.join(file.dir);
        std::fs::create_dir_all(&dir).map_err(|source| CodegenError::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(file.name);
        std::fs::write(&path, &file.contents)
            .map_err(|source| CodegenError::Write { path, source })?;
    }
    Ok(())
}

/// Compares a generation with the files in `root`; `Err(Stale)` carries a
/// short summary and the first lines of each diff.
pub fn check(root: &Path, generation: &Generation) -> Result<(), CodegenError> {
    const MAX_DIFF_LINES: usize = 40;
    let mut summary = String::new();
    for file in &generation.files {
        let path = root.join(file.dir).join(file.name);
        let relative = format!("{}/{}", file.dir, file.name);
        let committed = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let _ = writeln!(summary, "{relative}: missing");
                continue;
            }
            Err(source) => return Err(CodegenError::Write { path, source }),
        };
        if committed == file.contents {
            continue;
        }
        let diff = similar::TextDiff::from_lines(&committed, &file.contents);
        let (mut added, mut removed) = (0, 0);
        for change in diff.iter_all_changes() {
            match change.tag() {
                similar::ChangeTag::Insert => added += 1,
                similar::ChangeTag::Delete => removed += 1,
                similar::ChangeTag::Equal => {}
            }
        }
        let _ = writeln!(summary, "{relative}: +{added} -{removed} lines");
        let unified = diff
            .unified_diff()
            .context_radius(1)
            .header(
                &format!("committed/{relative}"),
                &format!("generated/{relative}"),
            )
            .to_string();
        for line in unified.lines().take(MAX_DIFF_LINES) {
            let _ = writeln!(summary, "    {line}");
        }
        if unified.lines().count() > MAX_DIFF_LINES {
            let _ = writeln!(summary, "    ...");
        }
    }
    if summary.is_empty() {
        Ok(())
    } else {
        Err(CodegenError::Stale(summary.trim_end().to_owned()))
    }
}

/// The provenance every generated file starts with.
struct Header {
    sha256: String,
    info_version: String,
}

impl Header {
    fn new(spec: &Spec) -> Self {
        let digest = Sha256::digest(&spec.bytes);
        Self {
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
            info_version: spec.info_version().to_owned(),
        }
    }

    fn render(&self, what: &str) -> String {
        format!(
            "// @generated by `cargo xtask codegen`: {what}. DO NOT EDIT.\n\
             // Source: {SPEC_PATH} (sha256 {sha}, info.version {version})\n\
             // Generator: progenitor {PROGENITOR_VERSION}\n\n",
            sha = self.sha256,
            version = self.info_version,
        )
    }

    fn constants(&self) -> String {
        format!(
            "/// SHA-256 of the `{SPEC_PATH}` this crate was generated from.\n\
             pub const SPEC_SHA256: &str = \"{sha}\";\n\n\
             /// The spec's `info.version`.\n\
             pub const SPEC_VERSION: &str = \"{version}\";\n\n\
             /// The exact progenitor version that generated this crate.\n\
             pub const PROGENITOR_VERSION: &str = \"{PROGENITOR_VERSION}\";\n",
            sha = self.sha256,
            version = self.info_version,
        )
    }
}

fn settings() -> GenerationSettings {
    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        .with_inner_type(quote!(crate::hooks::Hooks))
        .with_hooks(HooksMode::Expected)
        .with_derive("schemars::JsonSchema")
        .with_derive("PartialEq");
    settings
}

type ProgenitorResult<T> = Result<(proc_macro2::TokenStream, T), progenitor_impl::Error>;

/// Runs `job` on a fresh generator with panics caught. On a panic or an
/// error, it finds the operation responsible by generating each one alone.
fn run_progenitor<T>(
    raw: &Value,
    job: impl Fn(&mut Generator) -> ProgenitorResult<T>,
) -> Result<(proc_macro2::TokenStream, T), CodegenError> {
    let failure = match quietly(|| job(&mut Generator::new(&settings()))) {
        Ok(Ok(output)) => return Ok(output),
        Ok(Err(error)) => error.to_string(),
        Err(panic) => format!("panicked: {panic}"),
    };
    Err(CodegenError::Generate {
        operation: culprit(raw).unwrap_or_else(|| "the spec".into()),
        message: failure,
    })
}

/// The first operation that fails to generate when alone in the spec.
fn culprit(raw: &Value) -> Option<String> {
    operations(raw).iter().find_map(|operation| {
        let alone = only_operation(raw, operation.path, operation.method);
        let typed: openapiv3::OpenAPI = serde_json::from_value(alone).ok()?;
        match quietly(|| Generator::new(&settings()).generate_tokens(&typed)) {
            Ok(Ok(_)) => None,
            _ => Some(operation.describe()),
        }
    })
}

/// A copy of `raw` whose `paths` hold just one operation.
fn only_operation(raw: &Value, path: &str, method: &str) -> Value {
    let mut copy = raw.clone();
    if let Some(paths) = copy.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|p, _| p == path);
        if let Some(item) = paths.get_mut(path).and_then(Value::as_object_mut) {
            item.retain(|key, _| key == method || !METHODS.contains(&key.as_str()));
        }
    }
    copy
}

/// Runs `f`, turning a panic into its message without printing a backtrace.
fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let message = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&message);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *sink.lock().unwrap_or_else(|e| e.into_inner()) = format!("{text}{location}");
    }));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|_| message.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// `raw` without the operations `exclude` names a reason for, and the
/// excluded operations with their reasons.
fn without_operations(
    raw: &Value,
    exclude: impl Fn(&crate::spec::Operation<'_>) -> Option<&'static str>,
) -> (Value, Vec<(String, &'static str)>) {
    let mut excluded = Vec::new();
    let mut keep = Vec::new();
    for operation in operations(raw) {
        match exclude(&operation) {
            Some(reason) => excluded.push((operation.describe(), reason)),
            None => keep.push((operation.path.to_owned(), operation.method.to_owned())),
        }
    }
    let mut copy = raw.clone();
    if let Some(paths) = copy.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                item.retain(|key, _| {
                    !METHODS.contains(&key.as_str())
                        || keep.iter().any(|(p, m)| p == path && m == key)
                });
            }
        }
        paths.retain(|_, item| METHODS.iter().any(|m| item.get(*m).is_some()));
    }
    (copy, excluded)
}

/// Operations the spec marks `x-hand-written` (multipart uploads) are
/// described for readers and coverage, but progenitor would generate a
/// call with the wrong wire format, so `cm-api` implements them by hand.
fn hand_written(operation: &crate::spec::Operation<'_>) -> Option<&'static str> {
    operation
        .value
        .get("x-hand-written")
        .map(|_| "x-hand-written: implemented in cm-api")
}

/// progenitor #1260: an array query parameter makes the generated `When`
/// method call `query_param` with a `Vec`, which does not type-check.
fn without_mock_helper(
    raw: &Value,
) -> impl Fn(&crate::spec::Operation<'_>) -> Option<&'static str> + '_ {
    move |operation| {
        has_array_query_parameter(raw, operation)
            .then_some("array query parameter (progenitor #1260)")
    }
}

fn has_array_query_parameter(raw: &Value, operation: &crate::spec::Operation<'_>) -> bool {
    operation
        .parameters()
        .filter_map(|p| crate::spec::deref(raw, p))
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
        .filter_map(|p| p.get("schema").and_then(|s| crate::spec::deref(raw, s)))
        .any(|schema| schema.get("type").and_then(Value::as_str) == Some("array"))
}

/// `component_schemas()`: each spec component's name with the JSON Schema
/// schemars derives for its generated type, so tests can compare the two.
fn component_schemas(
    raw: &Value,
    type_names: &[String],
    gated: &std::collections::BTreeSet<String>,
) -> proc_macro2::TokenStream {
    let components = raw
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| schemas.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    // typify names a component's type after the component; those it renamed
    // or folded away have no entry.
    let entries = components
        .iter()
        .filter(|name| type_names.contains(name))
        .map(|name| {
            let ident = quote::format_ident!("{}", name);
            let gate = gated
                .contains(name.as_str())
                .then(|| quote!(#[cfg(feature = "unstable")]));
            quote! { #gate schemas.push((#name, ::schemars::schema_for!(crate::types::#ident))); }
        });
    quote! {
        /// Each component schema's name in `spec/openapi.yaml`, with the JSON
        /// Schema that `schemars` derives for its generated type.
        pub fn component_schemas() -> ::std::vec::Vec<(&'static str, ::schemars::schema::RootSchema)> {
            let mut schemas = ::std::vec::Vec::new();
            #(#entries)*
            schemas
        }
    }
}

/// progenitor's success arm.
const JSON_SUCCESS_ARM: &str = "200u16 => ResponseValue::from_response(response).await,";
/// The same arm for binary downloads.
const STREAM_SUCCESS_ARM: &str = "200u16 => Ok(ResponseValue::stream(response)),";

/// Routes every operation's success arm through the hand-written seam:
/// any 2xx status counts as the documented success (a platform that answers
/// `201` or `204` for a `200` has still succeeded), and JSON bodies are
/// decoded by `crate::hooks::decode_success`, which has no recursion limit
/// (progenitor's `serde_json::from_slice` stops at 128 levels, which deep
/// HTML-email markup exceeds). A count check makes a change in progenitor's
/// output fail loudly instead of silently skipping operations.
fn route_success_arms(client: &str, operations: usize) -> Result<String, CodegenError> {
    let json = client.matches(JSON_SUCCESS_ARM).count();
    let stream = client.matches(STREAM_SUCCESS_ARM).count();
    if json + stream != operations {
        return Err(CodegenError::PostProcess(format!(
            "expected one success arm per operation ({operations}), found {json} JSON and {stream} binary"
        )));
    }
    Ok(client
        .replace(
            JSON_SUCCESS_ARM,
            "200u16..=299u16 => crate::hooks::decode_success(response).await,",
        )
        .replace(
            STREAM_SUCCESS_ARM,
            "200u16..=299u16 => Ok(ResponseValue::stream(response)),",
        ))
}

fn format_tokens(
    file: &'static str,
    tokens: proc_macro2::TokenStream,
) -> Result<String, CodegenError> {
    format_file(file, tokens, |_| {})
}

/// Like [`format_tokens`], with `edit` applied to the parsed file first.
fn format_file(
    file: &'static str,
    tokens: proc_macro2::TokenStream,
    edit: impl FnOnce(&mut syn::File),
) -> Result<String, CodegenError> {
    let mut parsed: syn::File =
        syn::parse2(tokens).map_err(|source| CodegenError::Format { file, source })?;
    edit(&mut parsed);
    Ok(prettyplease::unparse(&parsed))
}

/// The path of the derive that `settings()` asks typify for, which
/// `cm-api-gen` keeps behind its `schemars` feature.
const SCHEMARS_DERIVE: &str = "schemars :: JsonSchema";

/// Moves `schemars::JsonSchema` out of every `#[derive(..)]` in `file` into
/// `#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]`, so
/// users who do not ask for the schemas do not compile 500 derives (and
/// schemars is not part of the types' API unless asked for).
fn schemars_behind_feature(file: &mut syn::File) {
    fn attrs(attrs: &mut Vec<syn::Attribute>) {
        let Some((at, kept)) = attrs.iter().enumerate().find_map(|(at, attr)| {
            if !attr.path().is_ident("derive") {
                return None;
            }
            let paths = attr
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
                )
                .ok()?;
            let before = paths.len();
            let kept: Vec<syn::Path> = paths
                .into_iter()
                .filter(|p| p.to_token_stream().to_string() != SCHEMARS_DERIVE)
                .collect();
            (kept.len() != before).then_some((at, kept))
        }) else {
            return;
        };
        // Right after the derive it came from, before any helper attribute.
        let derive: syn::Attribute = if kept.is_empty() {
            syn::parse_quote!(#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))])
        } else {
            attrs.insert(
                at + 1,
                syn::parse_quote!(#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]),
            );
            syn::parse_quote!(#[derive(#(#kept),*)])
        };
        attrs[at] = derive;
    }
    fn items(list: &mut [syn::Item]) {
        for item in list {
            match item {
                syn::Item::Struct(s) => attrs(&mut s.attrs),
                syn::Item::Enum(e) => attrs(&mut e.attrs),
                syn::Item::Mod(m) => {
                    if let Some((_, content)) = &mut m.content {
                        items(content);
                    }
                }
                _ => {}
            }
        }
    }
    items(&mut file.items);
}

impl Spec {
    /// Like [`Spec::typed`], for a modified copy of the raw document.
    fn typed_from(&self, path: &Path, raw: Value) -> Result<openapiv3::OpenAPI, SpecError> {
        Spec {
            bytes: Vec::new(),
            raw,
            lines: Default::default(),
        }
        .typed(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_success_arm_accepts_any_2xx_and_decodes_through_the_hooks() {
        let client = format!("match s {{ {JSON_SUCCESS_ARM} }} match t {{ {STREAM_SUCCESS_ARM} }}");
        let routed = route_success_arms(&client, 2).expect("two operations, two arms");
        assert_eq!(
            routed,
            "match s { 200u16..=299u16 => crate::hooks::decode_success(response).await, } \
             match t { 200u16..=299u16 => Ok(ResponseValue::stream(response)), }"
        );
    }

    #[test]
    fn a_success_arm_progenitor_no_longer_writes_is_an_error() {
        let client = format!("match s {{ {JSON_SUCCESS_ARM} }}");
        let error = route_success_arms(&client, 2).expect_err("one arm for two operations");
        assert_eq!(
            error.to_string(),
            "cannot post-process the generated client: expected one success arm per operation (2), found 1 JSON and 0 binary"
        );
    }

    #[test]
    fn progenitor_version_matches_the_workspace_pin() {
        let manifest = include_str!("../../Cargo.toml");
        assert!(
            manifest.contains(&format!("progenitor-impl = \"={PROGENITOR_VERSION}\"")),
            "update PROGENITOR_VERSION with the pin in Cargo.toml"
        );
        assert!(manifest.contains(&format!("progenitor-client = \"={PROGENITOR_VERSION}\"")));
    }

    #[test]
    fn quietly_turns_a_panic_into_its_message() {
        let result = quietly(|| -> () { panic!("boom {}", 7) });
        let message = result.unwrap_err();
        assert!(message.starts_with("boom 7 at "), "{message}");
    }
}
