//! The typed facade of `cm-api` (`crates/api/src/generated/operations.rs`):
//! one builder per generated operation, whose `send()` returns
//! `Result<cm_api::Response<T>, cm_api::Error>`.
//!
//! It is derived from progenitor's own output, not from the spec: the
//! formatted `client.rs` is parsed with `syn`, and for every method of the
//! generated `impl Client` that returns a `builder::X<'_>`, the builder's
//! setters are copied (signature and all) into the facade's builder, and
//! its `send()` return type (`ResponseValue<T>`, or
//! `ResponseValue<ByteStream>` for a raw body) gives the facade's
//! `Response<T>` (or `Response<Download>`). Whatever progenitor generates
//! for a spec, the facade follows.
//!
//! The facade's builders own their state: a clone of the client (an `Arc`
//! inside) and each parameter set so far, converted as the generated setter
//! would convert it (a failed conversion is kept and reported by `send()`,
//! as the generated builder does). So they are `'static` and `Send`: one
//! can be stored, or built in one task and sent in another. The generated
//! builder, which borrows the generated client, only lives inside `send()`,
//! where every kept value is handed to its setter.
//!
//! The kept values are `pub(crate)`, for the hand-written walkers of the
//! paginated operations (`paginate.rs`), which read the page size and set
//! the cursor of each page on a clone of the builder.
//!
//! A builder's `Debug` is written out, not derived: it shows the operation
//! id and the call options only, never the parameters (a body may hold
//! personal data) or the client, and through it the `reqwest::Client`
//! (proxies, default headers).

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use serde_json::Value;

use crate::spec::{deref, operations};

/// Names the facade builders define themselves; an operation parameter with
/// one of these names would collide.
/// `client` and `options` are the builders' own fields.
const RESERVED_SETTERS: &[&str] = &[
    "with_options",
    "send",
    "new",
    "operation_id",
    "client",
    "options",
];

/// One generated operation, as the facade needs it.
pub struct FacadeOperation {
    /// The operation id, which is also the method name.
    pub id: String,
    /// The builder struct's name (`GetSource`).
    pub builder: syn::Ident,
    /// Doc attributes of the generated `Client` method.
    docs: Vec<syn::Attribute>,
    /// Setters: (name, generics, typed inputs without `self`, argument names).
    setters: Vec<Setter>,
    /// The success type `T` of `ResponseValue<T>`; `None` for a raw body.
    success: Option<syn::Type>,
}

struct Setter {
    ident: syn::Ident,
    generics: syn::Generics,
    inputs: Vec<syn::PatType>,
    kind: SetterKind,
}

/// What a generated setter keeps, and so what the facade keeps for it.
enum SetterKind {
    /// `fn name<V>(self, value: V) where V: TryInto<T>`: the facade keeps
    /// `Option<Result<T, String>>` (unset, converted, or why not).
    Value {
        /// `T`.
        ty: syn::Type,
        /// Whether `V::Error: Display` is required, so the reason can be
        /// kept (progenitor asks it of bodies).
        error_shown: bool,
    },
    /// `fn body_map<F>(self, f: F) where F: FnOnce(B) -> B`: the body is
    /// kept as the typed builder `B` (`Result<B, String>`, from
    /// `B::default()`), which `body` converts into and `body_map` changes.
    BodyMap {
        /// `B`.
        builder: syn::Type,
    },
}

/// Why the facade could not be derived.
pub type FacadeError = String;

/// The operations of a formatted generated `client.rs`, in its order.
pub fn operations_of(client_rs: &str) -> Result<Vec<FacadeOperation>, FacadeError> {
    let file = syn::parse_file(client_rs).map_err(|e| format!("client.rs does not parse: {e}"))?;
    // `impl Client { pub fn op(&self) -> builder::Op<'_> { .. } }`
    let mut methods: Vec<(String, syn::Ident, Vec<syn::Attribute>)> = Vec::new();
    let mut builder_mod: Option<&Vec<syn::Item>> = None;
    for item in &file.items {
        match item {
            syn::Item::Impl(imp) if imp.trait_.is_none() && type_is(&imp.self_ty, "Client") => {
                for item in &imp.items {
                    let syn::ImplItem::Fn(f) = item else { continue };
                    if let Some(builder) = builder_return(&f.sig.output) {
                        let docs = f
                            .attrs
                            .iter()
                            .filter(|a| a.path().is_ident("doc"))
                            .cloned()
                            .collect();
                        methods.push((f.sig.ident.to_string(), builder, docs));
                    }
                }
            }
            syn::Item::Mod(m) if m.ident == "builder" => {
                builder_mod = m.content.as_ref().map(|(_, items)| items);
            }
            _ => {}
        }
    }
    let builder_items = builder_mod.ok_or("client.rs has no `mod builder`")?;
    let mut out = Vec::new();
    for (id, builder, docs) in methods {
        let imp = builder_items
            .iter()
            .find_map(|item| match item {
                syn::Item::Impl(imp)
                    if imp.trait_.is_none() && type_is(&imp.self_ty, &builder.to_string()) =>
                {
                    Some(imp)
                }
                _ => None,
            })
            .ok_or_else(|| format!("no `impl builder::{builder}` for `{id}`"))?;
        let mut setters = Vec::new();
        let mut success = None;
        let mut has_send = false;
        for item in &imp.items {
            let syn::ImplItem::Fn(f) = item else { continue };
            let name = f.sig.ident.to_string();
            match name.as_str() {
                "new" => {}
                "send" => {
                    has_send = true;
                    success = success_type(&f.sig.output)
                        .ok_or_else(|| format!("`{id}`: unexpected `send()` return type"))?;
                }
                _ => {
                    if RESERVED_SETTERS.contains(&name.as_str()) {
                        return Err(format!(
                            "`{id}`: parameter `{name}` collides with a facade method"
                        ));
                    }
                    let kind = setter_kind(&f.sig.generics)
                        .ok_or_else(|| format!("`{id}::{name}`: unexpected setter signature"))?;
                    let mut inputs = Vec::new();
                    for input in &f.sig.inputs {
                        if let syn::FnArg::Typed(pat) = input {
                            let syn::Pat::Ident(ident) = &*pat.pat else {
                                return Err(format!("`{id}::{name}`: unnamed argument"));
                            };
                            let mut pat = pat.clone();
                            let plain = ident.ident.clone();
                            pat.pat = Box::new(syn::Pat::Ident(syn::PatIdent {
                                attrs: Vec::new(),
                                by_ref: None,
                                mutability: None,
                                ident: plain.clone(),
                                subpat: None,
                            }));
                            inputs.push(pat);
                        }
                    }
                    if inputs.len() != 1 {
                        return Err(format!("`{id}::{name}`: expected one argument"));
                    }
                    setters.push(Setter {
                        ident: f.sig.ident.clone(),
                        generics: f.sig.generics.clone(),
                        inputs,
                        kind,
                    });
                }
            }
        }
        if !has_send {
            return Err(format!("`builder::{builder}` has no `send()`"));
        }
        let body_map = setters
            .iter()
            .any(|s| matches!(s.kind, SetterKind::BodyMap { .. }));
        if body_map && !setters.iter().any(|s| s.ident == "body") {
            return Err(format!("`{id}`: `body_map` without `body`"));
        }
        out.push(FacadeOperation {
            id,
            builder,
            docs,
            setters,
            success,
        });
    }
    if out.is_empty() {
        return Err("the generated `impl Client` has no operations".into());
    }
    Ok(out)
}

/// The kind of a setter, from its generics and `where` clause.
fn setter_kind(generics: &syn::Generics) -> Option<SetterKind> {
    let predicates: Vec<&syn::PredicateType> = generics
        .where_clause
        .iter()
        .flat_map(|w| &w.predicates)
        .filter_map(|p| match p {
            syn::WherePredicate::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    let first = predicates.first()?;
    let syn::TypeParamBound::Trait(bound) = first.bounds.first()? else {
        return None;
    };
    let last = bound.path.segments.last()?;
    match &last.arguments {
        // `V: TryInto<T>`
        syn::PathArguments::AngleBracketed(args) if last.ident == "TryInto" => {
            let syn::GenericArgument::Type(ty) = args.args.first()? else {
                return None;
            };
            Some(SetterKind::Value {
                ty: ty.clone(),
                error_shown: predicates.len() > 1,
            })
        }
        // `F: FnOnce(B) -> B`
        syn::PathArguments::Parenthesized(args) if last.ident == "FnOnce" => {
            Some(SetterKind::BodyMap {
                builder: args.inputs.first()?.ty.clone(),
            })
        }
        _ => None,
    }
}

/// The last path segment of `ty`, as written (`PathSegment` for
/// `types::PathSegment`), for error messages.
fn short_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.to_token_stream().to_string().replace(' ', ""))
            .unwrap_or_default(),
        other => other.to_token_stream().to_string().replace(' ', ""),
    }
}

fn type_is(ty: &syn::Type, name: &str) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == name))
}

/// `builder::X<'_>` → `X`.
fn builder_return(output: &syn::ReturnType) -> Option<syn::Ident> {
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    let syn::Type::Path(p) = &**ty else {
        return None;
    };
    let segments: Vec<_> = p.path.segments.iter().collect();
    match segments.as_slice() {
        [module, builder] if module.ident == "builder" => Some(builder.ident.clone()),
        _ => None,
    }
}

/// The only generic argument of the last segment of a path type.
fn generic_args(ty: &syn::Type, name: &str) -> Option<Vec<syn::Type>> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
    )
}

/// `Result<ResponseValue<T>, Error<E>>` → `Some(Some(T))`, or `Some(None)`
/// when `T` is `ByteStream`.
fn success_type(output: &syn::ReturnType) -> Option<Option<syn::Type>> {
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    let result = generic_args(ty, "Result")?;
    let value = generic_args(result.first()?, "ResponseValue")?;
    let t = value.first()?.clone();
    if type_is(&t, "ByteStream") {
        Some(None)
    } else {
        Some(Some(t))
    }
}

/// Parameter descriptions of `operation_id` in `spec`, by name.
fn parameter_docs(spec: &Value, operation_id: &str) -> Vec<(String, String)> {
    let Some(op) = operations(spec)
        .into_iter()
        .find(|op| op.id() == Some(operation_id))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for param in op.parameters() {
        let Some(param) = deref(spec, param) else {
            continue;
        };
        if let (Some(name), Some(description)) = (
            param.get("name").and_then(Value::as_str),
            param.get("description").and_then(Value::as_str),
        ) {
            out.push((name.to_owned(), description.trim().to_owned()));
        }
    }
    out
}

/// The facade's tokens for `operations` (see the module documentation).
///
/// The operations in `unstable` (see [`crate::gates`]) are compiled only
/// with `cm-api`'s `unstable` feature.
pub fn facade_tokens(
    spec: &Value,
    operations: &[FacadeOperation],
    unstable: &BTreeSet<String>,
) -> TokenStream {
    let mut client_methods = Vec::new();
    let mut builders = Vec::new();
    let ids: Vec<&str> = operations.iter().map(|o| o.id.as_str()).collect();
    let stable_ids: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !unstable.contains(*id))
        .collect();
    for op in operations {
        let gate = unstable.contains(&op.id).then(|| {
            quote! {
                #[cfg(feature = "unstable")]
                #[cfg_attr(docsrs, doc(cfg(feature = "unstable")))]
            }
        });
        let method = format_ident!("{}", op.id);
        let builder = &op.builder;
        let docs = &op.docs;
        let id = &op.id;
        let body_map = op
            .setters
            .iter()
            .any(|s| matches!(s.kind, SetterKind::BodyMap { .. }));
        // The builder's fields, one per kept value (`body_map` shares `body`'s).
        let mut fields = Vec::new();
        let mut field_types = Vec::new();
        let mut field_inits = Vec::new();
        let mut applies = Vec::new();
        for setter in &op.setters {
            let ident = &setter.ident;
            match &setter.kind {
                SetterKind::BodyMap { builder } => {
                    fields.push(quote!(body));
                    field_types.push(quote!(Result<#builder, String>));
                    field_inits.push(quote!(body: Ok(::std::default::Default::default())));
                    applies.push(quote! {
                        inner = inner.body(body.map_err(cm_api_gen::Error::InvalidRequest)?);
                    });
                }
                SetterKind::Value { .. } if body_map && ident == "body" => {}
                SetterKind::Value { ty, .. } => {
                    fields.push(quote!(#ident));
                    field_types.push(quote!(Option<Result<#ty, String>>));
                    field_inits.push(quote!(#ident: None));
                    applies.push(quote! {
                        if let Some(value) = #ident {
                            inner = inner.#ident(value.map_err(cm_api_gen::Error::InvalidRequest)?);
                        }
                    });
                }
            }
        }
        client_methods.push(quote! {
            #(#docs)*
            #gate
            pub fn #method(&self) -> #builder {
                #builder {
                    client: self.clone(),
                    options: crate::CallOptions::new(),
                    #(#field_inits,)*
                }
            }
        });
        let params = parameter_docs(spec, id);
        let setters = op.setters.iter().map(|s| {
            let ident = &s.ident;
            let name = ident.to_string();
            let doc = match name.as_str() {
                "body" => "The request body.".to_owned(),
                "body_map" => {
                    "Changes the request body with `f`, starting from the body set so far."
                        .to_owned()
                }
                _ => params
                    .iter()
                    .find(|(p, _)| p.replace('-', "_") == name)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_else(|| format!("Sets `{name}`.")),
            };
            let (impl_generics, _, where_clause) = s.generics.split_for_impl();
            let inputs = &s.inputs;
            let arg = match &*inputs[0].pat {
                syn::Pat::Ident(p) => p.ident.clone(),
                _ => unreachable!("setter arguments are plain identifiers"),
            };
            let store = match &s.kind {
                SetterKind::BodyMap { .. } => quote!(self.body = self.body.map(#arg);),
                SetterKind::Value { ty, error_shown } => {
                    let message = format!("conversion to `{}` for {name} failed", short_name(ty));
                    let reason = if *error_shown {
                        let with_reason = format!("{message}: {{}}");
                        quote!(|e| format!(#with_reason, e))
                    } else {
                        quote!(|_| #message.to_owned())
                    };
                    if body_map && name == "body" {
                        quote!(self.body = #arg.try_into().map(From::from).map_err(#reason);)
                    } else {
                        quote!(self.#ident = Some(#arg.try_into().map_err(#reason));)
                    }
                }
            };
            quote! {
                #[doc = #doc]
                pub fn #ident #impl_generics (mut self, #(#inputs),*) -> Self #where_clause {
                    #store
                    self
                }
            }
        });
        let struct_doc = format!(
            "Builder for [`Client::{id}`](crate::Client::{id}): set its parameters, then \
             [`send`](Self::send) it."
        );
        let (output, send_doc, call) = match &op.success {
            Some(t) => (
                quote!(#t),
                format!(
                    "Sends `{id}` with the client's authentication, retries and timeouts \
                     (or this call's [`with_options`](Self::with_options)), and returns \
                     the decoded value with its status, headers and Server-Timing, or a \
                     typed [`Error`](crate::Error)."
                ),
                quote!(call_json),
            ),
            None => (
                quote!(crate::Download),
                format!(
                    "Sends `{id}` with the client's authentication, retries and timeouts \
                     (or this call's [`with_options`](Self::with_options)), and returns \
                     the body as a streamed [`Download`](crate::Download), or a typed \
                     [`Error`](crate::Error)."
                ),
                quote!(call_download),
            ),
        };
        let builder_name = builder.to_string();
        let declare_inner = if applies.is_empty() {
            quote!(let inner = generated.#method();)
        } else {
            quote!(let mut inner = generated.#method();)
        };
        builders.push(quote! {
            #[doc = #struct_doc]
            #gate
            #[derive(Clone)]
            #[must_use = "nothing is sent until `send()` is awaited"]
            pub struct #builder {
                client: crate::Client,
                options: crate::CallOptions,
                #(pub(crate) #fields: #field_types,)*
            }

            #gate
            impl #builder {
                #(#setters)*

                /// Per-call overrides of the attempt timeout, the deadline and
                /// the retry policy, on top of any [`CallOptions::scope`](crate::CallOptions::scope)
                /// around the call and the client's settings.
                pub fn with_options(mut self, options: crate::CallOptions) -> Self {
                    self.options = options;
                    self
                }

                #[doc = #send_doc]
                pub async fn send(self) -> Result<crate::Response<#output>, crate::Error> {
                    let Self { client, options, #(#fields),* } = self;
                    let generated = &client.generated;
                    client.#call(options, #id, async move {
                        #declare_inner
                        #(#applies)*
                        inner.send().await
                    }).await
                }
            }

            // By hand: the parameters may hold personal data, and the
            // client's HTTP client prints its proxies and default headers.
            #gate
            impl std::fmt::Debug for #builder {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.debug_struct(#builder_name)
                        .field("operation", &#id)
                        .field("options", &self.options)
                        .finish_non_exhaustive()
                }
            }

            #gate
            impl crate::Operation for #builder {
                type Output = #output;
                const OPERATION_ID: &'static str = #id;

                fn with_options(self, options: crate::CallOptions) -> Self {
                    #builder::with_options(self, options)
                }

                fn send(self) -> impl std::future::Future<Output = Result<crate::Response<#output>, crate::Error>> + Send {
                    #builder::send(self)
                }
            }
        });
    }
    quote! {
        use cm_api_gen::types;

        /// The id of every operation with a builder here, in the order of
        /// the generated client (with the `unstable` feature: the internal
        /// tier's too).
        #[cfg(feature = "unstable")]
        pub const OPERATION_IDS: &[&str] = &[#(#ids),*];

        /// The id of every operation with a builder here, in the order of
        /// the generated client (with the `unstable` feature: the internal
        /// tier's too).
        #[cfg(not(feature = "unstable"))]
        pub const OPERATION_IDS: &[&str] = &[#(#stable_ids),*];

        impl crate::Client {
            #(#client_methods)*
        }

        #(#builders)*
    }
}

/// Renders a token stream for output as a file (no header).
pub fn render(tokens: TokenStream) -> Result<String, FacadeError> {
    let parsed: syn::File =
        syn::parse2(tokens).map_err(|e| format!("the facade does not parse: {e}"))?;
    Ok(prettyplease::unparse(&parsed))
}

/// For tests: the setter names of each operation.
pub fn setter_names(op: &FacadeOperation) -> Vec<String> {
    op.setters.iter().map(|s| s.ident.to_string()).collect()
}

impl FacadeOperation {
    /// Whether `send()` returns a raw body (a `Download`).
    pub fn is_download(&self) -> bool {
        self.success.is_none()
    }

    /// The success type as written in the generated code.
    pub fn success_type(&self) -> Option<String> {
        self.success
            .as_ref()
            .map(|t| t.to_token_stream().to_string())
    }
}

/// The facade's source (no header) for the formatted generated `client.rs`
/// and the spec it came from.
pub fn generate(
    client_rs: &str,
    spec: &Value,
    unstable: &BTreeSet<String>,
) -> Result<String, FacadeError> {
    let operations = operations_of(client_rs)?;
    render(facade_tokens(spec, &operations, unstable))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = r#"
        pub struct Client;
        impl Client {
            /// Get one.
            pub fn get_thing(&self) -> builder::GetThing<'_> { builder::GetThing::new(self) }
            pub fn get_file(&self) -> builder::GetFile<'_> { builder::GetFile::new(self) }
            pub fn baseurl(&self) -> &String { todo!() }
        }
        pub mod builder {
            pub struct GetThing<'a> { client: &'a super::Client }
            impl<'a> GetThing<'a> {
                pub fn new(client: &'a super::Client) -> Self { todo!() }
                pub fn name<V>(mut self, value: V) -> Self where V: TryInto<types::PathSegment> { self }
                pub async fn send(self) -> Result<ResponseValue<types::Thing>, Error<types::ErrorResponse>> { todo!() }
            }
            pub struct GetFile<'a> { client: &'a super::Client }
            impl<'a> GetFile<'a> {
                pub fn new(client: &'a super::Client) -> Self { todo!() }
                pub async fn send(self) -> Result<ResponseValue<ByteStream>, Error<()>> { todo!() }
            }
        }
    "#;

    #[test]
    fn every_builder_method_becomes_a_facade_operation() {
        let ops = operations_of(CLIENT).unwrap();
        let ids: Vec<&str> = ops.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["get_thing", "get_file"]);
        assert_eq!(setter_names(&ops[0]), ["name"]);
        assert_eq!(ops[0].success_type().as_deref(), Some("types :: Thing"));
        assert!(ops[1].is_download());
        let source = render(facade_tokens(&Value::Null, &ops, &BTreeSet::new())).unwrap();
        assert!(source.contains("pub fn get_thing(&self) -> GetThing {"));
        // 'static: the builder owns a client clone, never a borrowed one.
        assert!(source.contains("client: crate::Client,"), "{source}");
        assert!(!source.contains("<'a>"), "{source}");
        assert!(source.contains("Result<crate::Response<crate::Download>, crate::Error>"));
        // Debug by hand: the operation id and options, not the generated builder.
        assert!(!source.contains("Debug,"), "{source}");
        assert!(!source.contains("derive(Debug"), "{source}");
        assert!(source.contains("impl std::fmt::Debug for GetThing "));
        assert!(source.contains(".field(\"operation\", &\"get_thing\")"));
        assert!(!source.contains(".field(\"inner\""));
    }

    #[test]
    fn a_parameter_named_like_a_facade_method_is_refused() {
        let client = CLIENT.replace("pub fn name<V>", "pub fn with_options<V>");
        let Err(error) = operations_of(&client) else {
            panic!("expected a collision");
        };
        assert!(error.contains("with_options"), "{error}");
    }
}
