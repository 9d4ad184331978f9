//! The `unstable` feature gates of the generated code.
//!
//! An operation the spec marks `x-tier: internal` (a route the vendor's own
//! client never calls) is compiled only with the `unstable` feature of
//! `cm-api-gen` (and of `cm-api`, which forwards it): its `Client` method,
//! its builder, its httpmock helper, its facade builder, and every
//! generated type that only such operations use.
//!
//! Which types are used is read off the generated code, not the spec:
//! typify names inline schemas itself, so the spec's components are not the
//! whole list. A type is kept when a kept operation's builder or method
//! names it, when `cm-api`'s hand-written code names it (`types::X`), or
//! when a kept type's definition names it (an enum variant that shares a
//! type's name keeps that type: the safe side); everything else that names a
//! gated type is gated with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use serde_json::Value;

use crate::spec::operations;

/// The operations the spec marks `x-tier: internal`.
pub fn internal_operations(spec: &Value) -> BTreeSet<String> {
    operations(spec)
        .into_iter()
        .filter(|op| op.value.get("x-tier").and_then(Value::as_str) == Some("internal"))
        .filter_map(|op| op.id().map(str::to_owned))
        .collect()
}

/// Every capitalised word of `cm-api`'s hand-written code: the generated
/// types it names (`types::X`, `use cm_api_gen::types::{X, Y}`) stay
/// whatever operations use them. A word that is no type costs nothing.
pub fn hand_written_roots(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.join("crates/api/src")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "generated") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.extend(
                    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()))
                        .map(str::to_owned),
                );
            }
        }
    }
    out
}

/// What [`gate_client`] gated, for the other generated files.
#[derive(Debug, Default)]
pub struct Gates {
    /// Gated operation ids.
    pub operations: BTreeSet<String>,
    /// Their builder names (`GetThing`), which also name the mock helpers'
    /// `GetThingWhen` / `GetThingThen`.
    pub builders: BTreeSet<String>,
    /// Gated type names (in `types` and `types::builder`).
    pub types: BTreeSet<String>,
}

/// The attribute every gated item gets.
fn gate() -> syn::Attribute {
    syn::parse_quote!(#[cfg(feature = "unstable")])
}

fn idents(tokens: TokenStream, out: &mut BTreeSet<String>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

fn idents_of(tokens: impl ToTokens) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    idents(tokens.to_token_stream(), &mut out);
    out
}

/// The name an item defines, for structs, enums, aliases and impls (the
/// last segment of the implemented type).
fn item_name(item: &syn::Item) -> Option<String> {
    match item {
        syn::Item::Struct(s) => Some(s.ident.to_string()),
        syn::Item::Enum(e) => Some(e.ident.to_string()),
        syn::Item::Type(t) => Some(t.ident.to_string()),
        syn::Item::Impl(i) => match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn attrs_mut(item: &mut syn::Item) -> Option<&mut Vec<syn::Attribute>> {
    match item {
        syn::Item::Struct(s) => Some(&mut s.attrs),
        syn::Item::Enum(e) => Some(&mut e.attrs),
        syn::Item::Type(t) => Some(&mut t.attrs),
        syn::Item::Impl(i) => Some(&mut i.attrs),
        syn::Item::Fn(f) => Some(&mut f.attrs),
        syn::Item::Const(c) => Some(&mut c.attrs),
        _ => None,
    }
}

fn module_mut<'a>(items: &'a mut [syn::Item], name: &str) -> Option<&'a mut Vec<syn::Item>> {
    items.iter_mut().find_map(|item| match item {
        syn::Item::Mod(m) if m.ident == name => m.content.as_mut().map(|(_, items)| items),
        _ => None,
    })
}

/// Whether an item of `types` or `types::builder` goes with the gated
/// `types`: a definition by its name; an impl by the types in its header
/// (`impl From<Gated> for Kept`), never by its body, where an enum variant
/// may share a gated type's name.
fn goes_with(item: &syn::Item, gated: &BTreeSet<String>) -> bool {
    match item {
        syn::Item::Impl(imp) => {
            let mut header = idents_of(&imp.self_ty);
            if let Some((path, _)) = &imp.trait_ {
                header.extend(idents_of(path));
            }
            header.iter().any(|i| gated.contains(i))
        }
        other => item_name(other).is_some_and(|n| gated.contains(&n)),
    }
}

/// Gates the internal `operations` in the generated client `file`, and the
/// types only they use (`roots`: types to keep whatever uses them).
pub fn gate_client(
    file: &mut syn::File,
    operations: &BTreeSet<String>,
    roots: &BTreeSet<String>,
) -> Gates {
    let mut gates = Gates::default();
    // `impl Client { pub fn op(&self) -> builder::Op<'_> }`
    let mut used = roots.clone();
    for item in file.items.iter_mut() {
        let syn::Item::Impl(imp) = item else { continue };
        let is_client = matches!(&*imp.self_ty, syn::Type::Path(p) if p.path.is_ident("Client"));
        if imp.trait_.is_some() || !is_client {
            continue;
        }
        for item in imp.items.iter_mut() {
            let syn::ImplItem::Fn(f) = item else { continue };
            let id = f.sig.ident.to_string();
            if operations.contains(&id) {
                if let syn::ReturnType::Type(_, ty) = &f.sig.output
                    && let syn::Type::Path(p) = &**ty
                    && let Some(last) = p.path.segments.last()
                {
                    gates.builders.insert(last.ident.to_string());
                }
                f.attrs.push(gate());
                gates.operations.insert(id);
            } else {
                used.extend(idents_of(&*f));
            }
        }
    }
    if let Some(builders) = module_mut(&mut file.items, "builder") {
        for item in builders.iter_mut() {
            match item_name(item) {
                Some(name) if gates.builders.contains(&name) => {
                    if let Some(attrs) = attrs_mut(item) {
                        attrs.push(gate());
                    }
                }
                _ => used.extend(idents_of(&*item)),
            }
        }
    }
    let Some(types) = module_mut(&mut file.items, "types") else {
        return gates;
    };
    // What each type's definition names (its typed builder's too).
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut definitions = |items: &[syn::Item]| {
        for item in items {
            if matches!(item, syn::Item::Impl(_)) {
                continue;
            }
            if let Some(name) = item_name(item) {
                names.entry(name).or_default().extend(idents_of(item));
            }
        }
    };
    definitions(types);
    if let Some(builders) = module_mut(types, "builder") {
        definitions(builders);
    }
    let mut kept: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = used.into_iter().filter(|n| names.contains_key(n)).collect();
    while let Some(name) = todo.pop() {
        if !kept.insert(name.clone()) {
            continue;
        }
        for named in &names[&name] {
            if names.contains_key(named) && !kept.contains(named) {
                todo.push(named.clone());
            }
        }
    }
    gates.types = names
        .keys()
        .filter(|n| !kept.contains(*n))
        .cloned()
        .collect();
    let gate_items = |items: &mut Vec<syn::Item>, gated: &BTreeSet<String>| {
        for item in items.iter_mut() {
            if goes_with(item, gated)
                && let Some(attrs) = attrs_mut(item)
            {
                attrs.push(gate());
            }
        }
    };
    gate_items(types, &gates.types);
    if let Some(builders) = module_mut(types, "builder") {
        gate_items(builders, &gates.types);
    }
    gates
}

/// Gates the httpmock helpers (`mock.rs`) of the gated operations.
pub fn gate_mock(file: &mut syn::File, gates: &Gates) {
    let helpers: BTreeSet<String> = gates
        .builders
        .iter()
        .flat_map(|b| [format!("{b}When"), format!("{b}Then")])
        .collect();
    if let Some(operations) = module_mut(&mut file.items, "operations") {
        for item in operations.iter_mut() {
            if item_name(item).is_some_and(|n| helpers.contains(&n))
                && let Some(attrs) = attrs_mut(item)
            {
                attrs.push(gate());
            }
        }
    }
    for item in file.items.iter_mut() {
        match item {
            syn::Item::Trait(t) => {
                for item in t.items.iter_mut() {
                    if let syn::TraitItem::Fn(f) = item
                        && gates.operations.contains(&f.sig.ident.to_string())
                    {
                        f.attrs.push(gate());
                    }
                }
            }
            syn::Item::Impl(imp) => {
                for item in imp.items.iter_mut() {
                    if let syn::ImplItem::Fn(f) = item
                        && gates.operations.contains(&f.sig.ident.to_string())
                    {
                        f.attrs.push(gate());
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = r#"
        pub mod types {
            pub struct Thing { pub part: Part, pub kind: Kind }
            pub struct Part { pub n: i64 }
            pub enum Kind { Loud, Plain }
            pub struct Secret { pub inner: Inner }
            pub struct Inner { pub s: String }
            pub struct Helper { pub s: String }
            impl From<&Thing> for Thing { fn from(v: &Thing) -> Self { todo!() } }
            impl From<Secret> for Thing { fn from(v: Secret) -> Self { todo!() } }
            impl std::fmt::Display for Kind {
                fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    let _unused: Option<Secret> = None;
                    todo!()
                }
            }
            pub mod builder {
                pub struct Secret { inner: Result<super::Inner, String> }
                impl TryFrom<Secret> for super::Secret { type Error = (); fn try_from(v: Secret) -> Result<Self, ()> { todo!() } }
            }
        }
        impl Client {
            pub fn get_thing(&self) -> builder::GetThing<'_> { todo!() }
            pub fn get_secret(&self) -> builder::GetSecret<'_> { todo!() }
        }
        pub mod builder {
            pub struct GetThing<'a> { body: Result<types::Thing, String> }
            impl<'a> GetThing<'a> { pub async fn send(self) -> Result<ResponseValue<types::Thing>, ()> { todo!() } }
            pub struct GetSecret<'a> { body: Result<types::Secret, String> }
            impl<'a> GetSecret<'a> { pub async fn send(self) -> Result<ResponseValue<types::Secret>, ()> { todo!() } }
        }
    "#;

    fn gated_names(file: &syn::File) -> Vec<String> {
        let text = prettyplease::unparse(file);
        let mut out = Vec::new();
        let mut gate_next = false;
        for line in text.lines().map(str::trim) {
            if line == "#[cfg(feature = \"unstable\")]" {
                gate_next = true;
            } else if gate_next && !line.starts_with("#[") {
                out.push(line.trim_end_matches('{').trim().to_owned());
                gate_next = false;
            }
        }
        out
    }

    #[test]
    fn an_internal_operation_takes_its_builder_and_the_types_only_it_uses() {
        let mut file: syn::File = syn::parse_str(CLIENT).unwrap();
        let internal = BTreeSet::from(["get_secret".to_owned()]);
        let roots = BTreeSet::from(["Helper".to_owned()]);
        let gates = gate_client(&mut file, &internal, &roots);
        assert_eq!(gates.operations, internal);
        assert_eq!(gates.builders, BTreeSet::from(["GetSecret".to_owned()]));
        // `Kind`'s `Display` names `Secret` in its body only: it stays.
        // `Helper` stays as a root.
        assert_eq!(
            gates.types,
            BTreeSet::from(["Inner".to_owned(), "Secret".to_owned()])
        );
        assert_eq!(
            gated_names(&file),
            [
                "pub struct Secret",
                "pub struct Inner",
                "impl From<Secret> for Thing",
                "pub struct Secret",
                "impl TryFrom<Secret> for super::Secret",
                "pub fn get_secret(&self) -> builder::GetSecret<'_>",
                "pub struct GetSecret<'a>",
                "impl<'a> GetSecret<'a>",
            ]
        );
    }

    #[test]
    fn the_mock_helpers_of_a_gated_operation_are_gated() {
        let mut file: syn::File = syn::parse_str(
            r#"
            pub mod operations {
                pub struct GetSecretWhen(When);
                impl GetSecretWhen { pub fn new(w: When) -> Self { todo!() } }
                pub struct GetThingWhen(When);
            }
            pub trait MockServerExt {
                fn get_secret<F>(&self, f: F) -> Mock<'_>;
                fn get_thing<F>(&self, f: F) -> Mock<'_>;
            }
            impl MockServerExt for MockServer {
                fn get_secret<F>(&self, f: F) -> Mock<'_> { todo!() }
                fn get_thing<F>(&self, f: F) -> Mock<'_> { todo!() }
            }
            "#,
        )
        .unwrap();
        let gates = Gates {
            operations: BTreeSet::from(["get_secret".to_owned()]),
            builders: BTreeSet::from(["GetSecret".to_owned()]),
            types: BTreeSet::new(),
        };
        gate_mock(&mut file, &gates);
        assert_eq!(
            gated_names(&file),
            [
                "pub struct GetSecretWhen(When);",
                "impl GetSecretWhen",
                "fn get_secret<F>(&self, f: F) -> Mock<'_>;",
                "fn get_secret<F>(&self, f: F) -> Mock<'_>",
            ]
        );
    }

    #[test]
    fn the_spec_marks_the_internal_tier() {
        let spec = serde_json::json!({
            "paths": {
                "/a": {"get": {"operationId": "get_a", "x-tier": "internal"}},
                "/b": {"get": {"operationId": "get_b"}}
            }
        });
        assert_eq!(
            internal_operations(&spec),
            BTreeSet::from(["get_a".to_owned()])
        );
    }
}
