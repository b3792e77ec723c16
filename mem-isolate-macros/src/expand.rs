//! Phase 4: the rewritten function.
//!
//! ```text
//! // Input:
//! #[isolated(timeout = "5s")]
//! pub fn work(n: u32) -> Report { body }
//!
//! // Output:
//! pub fn work(n: u32) -> ::core::result::Result<Report, ::mem_isolate::__private::MemIsolateError> {
//!     let __isolate = ::mem_isolate::__private::Isolate::new()
//!         .timeout(::core::time::Duration::from_nanos(5000000000u64));
//!     <::mem_isolate::__private::Isolate>::execute(&__isolate, move || -> Report { body })
//! }
//! ```
//!
//! With `zygote`, the call goes through `Isolate::call` instead: see
//! [`crate::zygote`].

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned as _;
use syn::{
    AttrStyle, Attribute, Expr, ExprLit, Lit, Meta, ReturnType, Signature, Type, Visibility,
};

use crate::args::{IsolatedArgs, Setting};
use crate::fallback::fallback;
use crate::parse::IsolatedFn;
use crate::validate::validate;
use crate::zygote;

/// `#[isolated(args)] item` → the rewritten item, or the errors followed by
/// a stand-in with the rewritten signature (see [`fallback`]).
pub(crate) fn isolated(args: TokenStream, item: &TokenStream) -> TokenStream {
    let (args, args_error) = IsolatedArgs::parse_partial(args);
    let function = match syn::parse2::<IsolatedFn>(item.clone()) {
        Ok(function) => function,
        Err(mut error) => {
            if let Some(args_error) = args_error {
                error.combine(args_error);
            }
            let compile_error = error.into_compile_error();
            return quote!(#compile_error #item);
        }
    };
    let error = match (args_error, validate(&function, &args)) {
        (None, Ok(())) => None,
        (Some(error), Ok(())) | (None, Err(error)) => Some(error),
        (Some(mut error), Err(more)) => {
            error.combine(more);
            Some(error)
        }
    };
    let runtime = Runtime::new(&args);
    match error {
        None => expand(&args, &runtime, function),
        Some(error) => fallback(error, &runtime, function),
    }
}

/// Where the runtime crate is: `::mem_isolate`, or the `crate = "..."` path.
pub(crate) struct Runtime {
    path: TokenStream,
}

impl Runtime {
    fn new(args: &IsolatedArgs) -> Self {
        let path = args
            .krate
            .as_ref()
            .map_or_else(|| quote!(::mem_isolate), ToTokens::to_token_stream);
        Self { path }
    }

    /// `path::to::mem_isolate::__private`, the runtime's items for
    /// generated code, as generated code: rustc's `unused_qualifications`
    /// ignores such paths. (A relative `crate = "mem_isolate"` written as the
    /// user's tokens would make it suggest dropping the qualification, and
    /// the suggestion would break the code.)
    ///
    /// A `crate = "..."` path keeps the position of its string literal, so
    /// an error about it (say, a typo) lands there.
    pub(crate) fn private(&self) -> TokenStream {
        let krate = as_generated(self.path.clone());
        quote!(#krate::__private)
    }
}

/// `tokens` as generated code (the macro's call-site hygiene), each where
/// it was.
fn as_generated(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut moved = Group::new(group.delimiter(), as_generated(group.stream()));
                moved.set_span(generated_at(group.span()));
                TokenTree::Group(moved)
            }
            mut other => {
                other.set_span(generated_at(other.span()));
                other
            }
        })
        .collect()
}

/// `tokens`, every one shown at `location` in errors, keeping its hygiene.
pub(crate) fn located(tokens: TokenStream, location: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut moved = Group::new(group.delimiter(), located(group.stream(), location));
                moved.set_span(group.span().located_at(location));
                TokenTree::Group(moved)
            }
            mut other => {
                other.set_span(other.span().located_at(location));
                other
            }
        })
        .collect()
}

/// Generated code shown at `location`: the macro's call-site hygiene (so
/// lints see generated code), with the user's position (so errors land on
/// the user's tokens).
pub(crate) fn generated_at(location: Span) -> Span {
    Span::call_site().located_at(location)
}

/// Where the function's return type is: the declared type, or the `)` after
/// the arguments when there is none.
fn return_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.paren_token.span.close(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}

/// `-> T` becomes `-> Result<T, MemIsolateError>` (`-> ()` when omitted).
///
/// The generated tokens are shown at the user's return type, so an error
/// about the new type (a trait whose method still returns `T`) lands on
/// `-> T` and not on the attribute.
pub(crate) fn rewrite_signature(sig: &mut Signature, runtime: &Runtime) {
    let location = return_span(sig);
    let span = generated_at(location);
    let value = match &sig.output {
        ReturnType::Default => quote_spanned!(span=> ()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    // The type starts with `::core` rather than the runtime's path: a wrong
    // `crate = "..."` is then reported once, on its string, and not also
    // here with a suggestion to replace the user's return type.
    let private = runtime.private();
    // The closing `>` is the user's own position, hygiene and all: the
    // signature's span runs from `fn` (or `pub`) to it, and a span that ends
    // in generated code would put item-level errors (`missing_docs`) on the
    // attribute instead of on the function.
    let mut close = Punct::new('>', Spacing::Alone);
    close.set_span(location);
    let result: Type = syn::parse2(quote_spanned! {span=>
        ::core::result::Result<#value, #private::MemIsolateError #close
    })
    .expect("generated return type parses");
    sig.output = ReturnType::Type(syn::Token![->](span), Box::new(result));
}

fn expand(args: &IsolatedArgs, runtime: &Runtime, function: IsolatedFn) -> TokenStream {
    let IsolatedFn {
        attrs,
        inner_attrs,
        vis,
        mut sig,
        body,
        body_span,
    } = function;
    let generated_attrs = generated_attributes(&attrs, &vis, &sig);
    // The closure's return type is the function's `T`; `()` for a function
    // that declares none, so that a unit function whose last expression
    // lacks its `;` gets the type error on that expression.
    let closure_output = match &sig.output {
        ReturnType::Default => quote!(-> ()),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    // The bound `T: Serialize + DeserializeOwned` is checked at the call;
    // showing the call's path at the return type puts an unmet bound on the
    // user's `-> T`.
    let value_span = return_span(&sig);

    let isolate = Ident::new("__isolate", Span::mixed_site());
    let setup = isolate_setup(args, runtime, &isolate);
    let mut block = Group::new(Delimiter::Brace, body);
    block.set_span(body_span);
    let call = if args.zygote.is_some() {
        zygote::call(
            &mut sig,
            &block,
            runtime,
            value_span,
            &closure_output,
            &isolate,
            &args.runtime_names(),
        )
    } else {
        // A path, not a method call: a trait in scope with a by-value
        // `execute` method for every type (diesel's `RunQueryDsl`) would win
        // over the inherent `&self` method.
        //
        // The call is shown at the return type (its path and its
        // parentheses: the span of a call runs from one to the other), so
        // that an unmet `T: Serialize + DeserializeOwned` lands on `-> T`.
        // The runtime's path inside `<...>` keeps its own position: a wrong
        // `crate = "..."` is reported on its string only.
        let private = runtime.private();
        let span = generated_at(value_span);
        if sig.asyncness.is_some() {
            // `async fn`: the call is a future, and in the child the body is
            // a future too, driven to completion there (see `async_body`).
            let execute = quote_spanned!(span=> <#private::Isolate>::execute_async);
            let body = async_body(runtime, &block, value_span);
            let mut arguments = Group::new(
                Delimiter::Parenthesis,
                quote!(&#isolate, move || #closure_output { #body }),
            );
            arguments.set_span(generated_at(value_span));
            quote!(#execute #arguments .await)
        } else {
            let execute = quote_spanned!(span=> <#private::Isolate>::execute);
            let mut arguments = Group::new(
                Delimiter::Parenthesis,
                quote!(&#isolate, move || #closure_output #block),
            );
            arguments.set_span(generated_at(value_span));
            quote!(#execute #arguments)
        }
    };
    rewrite_signature(&mut sig, runtime);

    let outer_from_inner = inner_attrs.into_iter().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    });
    // The function's own braces carry the user's span: an item whose span
    // ends inside the macro's expansion counts as macro-generated, and rustc
    // would then stay silent about it (`dead_code` on an unused function).
    let mut fn_body = Group::new(Delimiter::Brace, quote!(#setup #call));
    fn_body.set_span(body_span);
    quote! {
        #(#attrs)*
        #generated_attrs
        #(#outer_from_inner)*
        #vis #sig #fn_body
    }
}

/// In the child, an `async fn`'s body: a future made on the thread that
/// drives it, run to completion by the runtime (a fresh tokio runtime with
/// feature `tokio`, a minimal executor without). The block keeps its
/// braces, so `return` and `?` leave the async block with the function's
/// `T`, which the closure around it declares.
///
/// ```text
/// <Runtime>::__private::run_async_body(move || async move { body })
/// ```
///
/// The call is shown at the return type: an unmet `Send` (an argument the
/// body's thread cannot take) lands on `-> T`, next to the other bounds.
fn async_body(runtime: &Runtime, block: &Group, value_span: Span) -> TokenStream {
    let private = runtime.private();
    let span = generated_at(value_span);
    let run = quote_spanned!(span=> #private::run_async_body);
    let maker = quote_spanned!(span=> move || async move);
    let mut arguments = Group::new(Delimiter::Parenthesis, quote!(#maker #block));
    arguments.set_span(span);
    quote!(#run #arguments)
}

/// Statements that build the call's `Isolate` into `isolate`.
///
/// Every option is evaluated here, in the caller, before the body's closure
/// takes the arguments: `timeout = deadline` may read an argument the body
/// then moves. A runtime value gets a typed `let`, so a wrong type is
/// reported on the user's expression.
///
/// ```text
/// let __timeout: ::core::time::Duration = deadline;        // timeout = deadline
/// let __isolate = <Isolate as Clone>::clone(&(self.isolate)) // isolate = self.isolate
///     .timeout(__timeout)
///     .memory_limit(67108864u64);                           // memory_limit = "64 MiB"
/// ```
///
/// The builder methods take `self` by value, so an inherent method wins
/// over any trait method of the same name: method syntax is safe there.
fn isolate_setup(args: &IsolatedArgs, runtime: &Runtime, isolate: &Ident) -> TokenStream {
    let private = runtime.private();
    let mut lets = TokenStream::new();
    let base = match &args.isolate {
        None => quote!(#private::Isolate::new()),
        Some(expr) => {
            // `Isolate` and `&Isolate` (or anything that derefs to it) all
            // work through `&(expr)`; cloning ends the borrow before the
            // body's closure takes `self`.
            let span = generated_at(expr.span());
            let located_private = located(private.clone(), expr.span());
            lets.extend(quote_spanned! {span=>
                let #isolate: &#located_private::Isolate = &(#expr);
            });
            quote!(<#private::Isolate as ::core::clone::Clone>::clone(#isolate))
        }
    };
    let mut option = |setting: Option<&Setting>,
                      name: &str,
                      ty: TokenStream,
                      fixed: &dyn Fn(u64) -> TokenStream| {
        setting.map(|setting| match setting {
            Setting::Fixed(value) => fixed(*value),
            Setting::Runtime(expr) => {
                let local = Ident::new(&format!("__{name}"), Span::mixed_site());
                let span = generated_at(expr.span());
                lets.extend(quote_spanned!(span=> let #local: #ty = #expr;));
                local.into_token_stream()
            }
        })
    };
    let timeout = option(
        args.timeout.as_ref(),
        "timeout",
        quote!(::core::time::Duration),
        &|nanos| quote!(::core::time::Duration::from_nanos(#nanos)),
    )
    .map(|value| quote!(.timeout(#value)));
    let memory_limit = option(
        args.memory_limit.as_ref(),
        "memory_limit",
        quote!(u64),
        &|bytes| quote!(#bytes),
    )
    .map(|value| quote!(.memory_limit(#value)));
    quote! {
        #lets
        let #isolate = #base #timeout #memory_limit;
    }
}

/// Attributes the expansion adds next to the user's, for what it changed:
/// the function now returns a `Result`.
pub(crate) fn generated_attributes(
    attrs: &[Attribute],
    vis: &Visibility,
    sig: &Signature,
) -> TokenStream {
    let mut out = TokenStream::new();
    if has_doc_text(attrs) {
        out.extend(errors_doc_section(attrs));
    } else if matches!(vis, Visibility::Public(_)) && !returns_result(sig) {
        // `clippy::missing_errors_doc` now sees a `pub fn` returning
        // `Result` without an `# Errors` section. The user's undocumented
        // function would not have had it, and an `# Errors` section would
        // make an undocumented function look documented (`missing_docs`
        // would go quiet), so the lint is allowed instead, on this function
        // only. A function that already returned a `Result` keeps its lint.
        out.extend(quote!(#[allow(clippy::missing_errors_doc)]));
    }
    if attrs.iter().any(is_bare_must_use) {
        // `Result` is `#[must_use]` already: `clippy::double_must_use`
        // would blame the user's attribute for the type the expansion chose.
        out.extend(quote!(#[allow(clippy::double_must_use)]));
    }
    out
}

/// `#[must_use]` without a message (the one `double_must_use` flags).
fn is_bare_must_use(attr: &Attribute) -> bool {
    attr.path().is_ident("must_use") && matches!(attr.meta, Meta::Path(_))
}

/// Whether the function declares a `Result` (any path ending in `Result`,
/// like `io::Result<T>`).
fn returns_result(sig: &Signature) -> bool {
    let ReturnType::Type(_, ty) = &sig.output else {
        return false;
    };
    let mut ty = &**ty;
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            Type::Path(path) => {
                return path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == "Result")
            }
            _ => return false,
        }
    }
}

/// What a `#[doc = ...]` attribute (a `///` line) says.
enum DocText {
    /// A literal.
    Literal(String),
    /// `#[doc = include_str!("..")]`: text we cannot read.
    Opaque,
}

/// The text of a `#[doc = ...]` attribute; `None` for `#[doc(alias = "..")]`,
/// `#[doc(hidden)]` and other attributes that add no text.
fn doc_text(attr: &Attribute) -> Option<DocText> {
    if !attr.path().is_ident("doc") {
        return None;
    }
    let Meta::NameValue(name_value) = &attr.meta else {
        return None;
    };
    Some(match &name_value.value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => DocText::Literal(text.value()),
        _ => DocText::Opaque,
    })
}

/// Whether the function has documentation text of its own (not only empty
/// `///` lines or `#[doc(alias)]`).
fn has_doc_text(attrs: &[Attribute]) -> bool {
    attrs.iter().filter_map(doc_text).any(|text| match text {
        DocText::Literal(text) => !text.trim().is_empty(),
        DocText::Opaque => true,
    })
}

/// The function now returns a `Result`, so documented functions get the
/// `# Errors` section readers (and `clippy::missing_errors_doc`) expect,
/// unless the docs already have one.
fn errors_doc_section(attrs: &[Attribute]) -> Option<TokenStream> {
    let mut last_doc = None;
    for attr in attrs {
        if let Some(text) = doc_text(attr) {
            last_doc = Some(attr.span());
            let heading = |line: &str| line.trim_start().starts_with("# Errors");
            if matches!(text, DocText::Literal(text) if text.lines().any(heading)) {
                return None;
            }
        }
    }
    // Spanned on the user's docs: lints ignore doc attributes that come
    // from a macro.
    last_doc.map(|span| {
        quote_spanned! {span=>
            #[doc = ""]
            #[doc = " # Errors"]
            #[doc = ""]
            #[doc = " Runs in a child process through `#[isolated]`: fails with `MemIsolateError` if the"]
            #[doc = " child could not be started, panicked, crashed, timed out or sent no result."]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::ItemFn;

    fn expand_to_fn(args: TokenStream, item: &TokenStream) -> ItemFn {
        syn::parse2(isolated(args, item)).expect("the expansion is one function")
    }

    fn text(args: TokenStream, item: &TokenStream) -> String {
        isolated(args, item).to_string()
    }

    #[test]
    fn return_type_is_wrapped_and_signature_kept() {
        let out = expand_to_fn(
            quote!(),
            &quote! {
                /// docs
                #[inline]
                pub(crate) unsafe fn f<'a, T: Clone>(x: &'a T, (a, b): (u8, u8)) -> Vec<T> where T: Send { vec![x.clone()] }
            },
        );
        assert_eq!(out.sig.ident, "f");
        assert!(matches!(out.sig.safety, syn::Safety::Unsafe(_)));
        assert_eq!(
            out.attrs
                .iter()
                .filter(|a| a.path().is_ident("inline"))
                .count(),
            1
        );
        assert_eq!(out.sig.inputs.len(), 2);
        assert!(out.sig.generics.where_clause.is_some());
        let output = out.sig.output.to_token_stream().to_string();
        assert!(
            output.contains(":: core :: result :: Result < Vec < T >"),
            "{output}"
        );
        let body = out.block.to_token_stream().to_string();
        assert!(
            body.contains("__private :: Isolate > :: execute (& __isolate , move | | -> Vec < T >"),
            "{body}"
        );
    }

    #[test]
    fn the_runtime_is_called_by_path_not_by_method() {
        for args in [quote!(), quote!(timeout = "1s"), quote!(zygote)] {
            let body = text(
                args,
                &quote!(
                    fn f(n: u8) -> u8 {
                        n
                    }
                ),
            );
            assert!(!body.contains(". execute"), "{body}");
            assert!(!body.contains(". call"), "{body}");
        }
    }

    #[test]
    fn options_become_plain_numbers_or_typed_lets() {
        let body = text(
            quote!(timeout = "2m", memory_limit = "1 KiB"),
            &quote!(
                fn f() {}
            ),
        );
        assert!(body.contains("from_nanos (120000000000u64)"), "{body}");
        assert!(body.contains("memory_limit (1024u64)"), "{body}");
        assert!(body.contains("Result < () ,"), "{body}");
        let body = text(
            quote!(timeout = limit, isolate = &self.isolate),
            &quote!(
                fn f(&self, limit: Duration) {}
            ),
        );
        assert!(
            body.contains("let __timeout : :: core :: time :: Duration = limit ;"),
            "{body}"
        );
        assert!(body.contains("= & (& self . isolate) ;"), "{body}");
        // Evaluated before the closure takes the arguments.
        assert!(
            body.find("__timeout").unwrap() < body.find("move").unwrap(),
            "{body}"
        );
    }

    #[test]
    fn errors_still_emit_the_rewritten_signature() {
        let out = text(
            quote!(),
            &quote!(
                const fn f(mut a: u8, (b, c): (u8, u8)) -> u8 {
                    1
                }
            ),
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("unreachable"), "{out}");
        assert!(out.contains(":: core :: result :: Result < u8"), "{out}");
        assert!(!out.contains("const fn"), "{out}");
        // No names to leave unused, so no `allow` a `forbid` would refuse.
        assert!(out.contains("fn f (_ : u8 , _ : (u8 , u8))"), "{out}");
        assert!(!out.contains("allow"), "{out}");
    }

    #[test]
    fn independent_problems_are_reported_together() {
        let out = text(
            quote!(timeout = 5, bogus),
            &quote!(
                #[track_caller]
                const async fn f() -> impl Sized {}
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 5, "{out}");
    }

    #[test]
    fn errors_section_only_for_real_docs() {
        let count = |item: TokenStream| text(quote!(), &item).matches("# Errors").count();
        assert_eq!(
            count(quote!(
                /// Docs.
                fn f() {}
            )),
            1
        );
        assert_eq!(
            count(quote!(
                /// Docs.
                ///
                /// # Errors
                ///
                /// Mine.
                fn f() {}
            )),
            1
        );
        // Mentioning the heading is not having one.
        assert_eq!(
            count(quote!(
                /// Gets a generated `# Errors` section.
                fn f() {}
            )),
            2
        );
        assert_eq!(
            count(quote!(
                fn f() {}
            )),
            0
        );
        assert_eq!(
            count(quote!(
                #[doc(alias = "g")]
                fn f() {}
            )),
            0
        );
        assert_eq!(
            count(quote!(
                ///
                fn f() {}
            )),
            0
        );
    }

    #[test]
    fn lints_the_expansion_causes_are_allowed_narrowly() {
        let allows = |item: TokenStream| {
            let out = expand_to_fn(quote!(), &item);
            out.attrs
                .iter()
                .filter(|a| a.path().is_ident("allow"))
                .map(|a| a.meta.to_token_stream().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            allows(quote!(
                pub fn f() -> u8 {
                    1
                }
            )),
            ["allow (clippy :: missing_errors_doc)"]
        );
        // Private, documented, or already returning a `Result`: the lint
        // would not fire, or was the user's own.
        assert!(allows(quote!(
            fn f() -> u8 {
                1
            }
        ))
        .is_empty());
        assert!(allows(quote!(
            /// Docs.
            pub fn f() -> u8 {
                1
            }
        ))
        .is_empty());
        assert!(allows(quote!(
            pub fn f() -> io::Result<u8> {
                Ok(1)
            }
        ))
        .is_empty());
        assert_eq!(
            allows(quote!(
                /// Docs.
                #[must_use]
                pub fn f() -> u8 {
                    1
                }
            )),
            ["allow (clippy :: double_must_use)"]
        );
        assert!(allows(quote!(
            /// Docs.
            #[must_use = "why"]
            pub fn f() -> u8 {
                1
            }
        ))
        .is_empty());
    }
}
