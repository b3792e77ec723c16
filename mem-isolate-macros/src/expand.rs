//! Phase 4: the rewritten function.
//!
//! ```text
//! // Input:
//! #[isolated(timeout = "5s")]
//! pub fn work(n: u32) -> Report { body }
//!
//! // Output:
//! pub fn work(n: u32) -> ::mem_isolate::__private::Result<Report, ::mem_isolate::__private::MemIsolateError> {
//!     ::mem_isolate::__private::Isolate::new()
//!         .timeout(::core::time::Duration::from_nanos(5000000000))
//!         .execute(move || -> Report { body })
//! }
//! ```

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens as _};
use syn::spanned::Spanned as _;
use syn::{parse_quote, AttrStyle, Path, ReturnType, Signature, Type};

use crate::args::IsolatedArgs;
use crate::parse::IsolatedFn;
use crate::validate::validate;

/// `#[isolated(args)] item` → the rewritten item, or the errors followed by
/// the rewritten signature with an `unreachable!()` body (so the user sees
/// the error, not a cascade of errors at every call site).
pub(crate) fn isolated(args: TokenStream, item: &TokenStream) -> TokenStream {
    let args = IsolatedArgs::parse(args);
    let function = match syn::parse2::<IsolatedFn>(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let mut error = error;
            if let Err(args_error) = args {
                error.combine(args_error);
            }
            let compile_error = error.into_compile_error();
            return quote!(#compile_error #item);
        }
    };
    let result = args.and_then(|args| {
        validate(&function.sig)?;
        Ok(args)
    });
    match result {
        Ok(args) => expand(&args, function),
        Err(error) => fallback(error, function),
    }
}

fn runtime_path(args: &IsolatedArgs) -> Path {
    args.krate
        .clone()
        .unwrap_or_else(|| parse_quote!(::mem_isolate))
}

/// The value type the body produces: the declared return type, or `()`.
fn value_type(sig: &Signature) -> Type {
    match &sig.output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// `-> T` becomes `-> Result<T, MemIsolateError>` (`-> ()` when omitted).
fn rewrite_signature(sig: &mut Signature, krate: &Path) {
    let value = value_type(sig);
    let span = match &sig.output {
        ReturnType::Default => sig.paren_token.span.close(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let result: Type = parse_quote_spanned!(span=>
        #krate::__private::Result<#value, #krate::__private::MemIsolateError>
    );
    sig.output = ReturnType::Type(syn::Token![->](span), Box::new(result));
}

fn expand(args: &IsolatedArgs, function: IsolatedFn) -> TokenStream {
    let IsolatedFn {
        attrs,
        inner_attrs,
        vis,
        mut sig,
        body,
        body_span,
    } = function;
    let krate = runtime_path(args);
    // No `-> ()` on the closure of a function that returns nothing.
    let closure_output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(arrow, ty) => Some(quote!(#arrow #ty)),
    };
    // The bound `T: Serialize + DeserializeOwned` is checked at this call;
    // spanning it on the return type puts an unmet bound on the user's `-> T`.
    let value_span = match &sig.output {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    rewrite_signature(&mut sig, &krate);

    let timeout = args
        .timeout_nanos
        .map(|nanos| quote!(.timeout(::core::time::Duration::from_nanos(#nanos))));
    let memory_limit = args.memory_limit.map(|bytes| quote!(.memory_limit(#bytes)));
    let execute = quote_spanned!(value_span=> execute);
    let mut block = Group::new(Delimiter::Brace, body);
    block.set_span(body_span);
    let block_tokens = block.to_token_stream();
    let outer_from_inner = inner_attrs.into_iter().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    });

    let call = quote! {
        #krate::__private::Isolate::new()
            #timeout
            #memory_limit
            .#execute(move || #closure_output #block_tokens)
    };
    // The function's own braces carry the user's span: an item whose span
    // ends inside the macro's expansion counts as macro-generated, and rustc
    // would then stay silent about it (`dead_code` on an unused function).
    let mut fn_body = Group::new(Delimiter::Brace, call);
    fn_body.set_span(body_span);
    let errors_doc = errors_doc_section(&attrs);
    quote! {
        #(#attrs)*
        #errors_doc
        #(#outer_from_inner)*
        #vis #sig #fn_body
    }
}

/// The function now returns a `Result`, so documented functions get the
/// `# Errors` section readers (and `clippy::missing_errors_doc`) expect,
/// unless the docs already have one.
fn errors_doc_section(attrs: &[syn::Attribute]) -> Option<TokenStream> {
    let mut last_doc = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        last_doc = Some(attr.span());
        if attr.to_token_stream().to_string().contains("# Errors") {
            return None;
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

fn fallback(error: syn::Error, function: IsolatedFn) -> TokenStream {
    let IsolatedFn {
        attrs,
        vis,
        mut sig,
        ..
    } = function;
    sig.asyncness = None;
    sig.constness = None;
    sig.abi = None;
    sig.variadic = None;
    if let ReturnType::Type(_, ty) = &mut sig.output {
        // An opaque or borrowed type cannot be produced by `unreachable!()`
        // without more errors; `()` keeps the stand-in quiet.
        if crate::validate::find_impl_trait(ty).is_some() || matches!(**ty, Type::Reference(_)) {
            *ty = parse_quote!(());
        }
    }
    rewrite_signature(&mut sig, &parse_quote!(::mem_isolate));
    let compile_error = error.into_compile_error();
    quote! {
        #compile_error
        #(#attrs)*
        // A stand-in so that call sites type-check: only the error above matters.
        #[allow(unused_variables, unused_mut, clippy::all)]
        #vis #sig {
            ::core::unreachable!()
        }
    }
}

macro_rules! parse_quote_spanned {
    ($span:expr=> $($tt:tt)*) => {
        syn::parse2(quote_spanned!($span=> $($tt)*)).expect("generated tokens parse")
    };
}
use parse_quote_spanned;

#[cfg(test)]
mod tests {
    use super::*;
    use syn::ItemFn;

    fn expand_to_fn(args: TokenStream, item: &TokenStream) -> ItemFn {
        syn::parse2(isolated(args, item)).expect("the expansion is one function")
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
        // `/// docs` and `#[inline]`, plus the generated `# Errors` section.
        assert_eq!(
            out.attrs
                .iter()
                .filter(|a| a.path().is_ident("inline"))
                .count(),
            1
        );
        let docs = out
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .count();
        assert!(docs > 1, "{docs}");
        assert_eq!(out.sig.inputs.len(), 2);
        assert!(out.sig.generics.where_clause.is_some());
        let output = out.sig.output.to_token_stream().to_string();
        assert!(
            output.contains(":: mem_isolate :: __private :: Result < Vec < T >"),
            "{output}"
        );
        let body = out.block.to_token_stream().to_string();
        assert!(body.contains("execute (move | | -> Vec < T >"), "{body}");
    }

    #[test]
    fn options_become_plain_numbers() {
        let out = expand_to_fn(
            quote!(timeout = "2m", memory_limit = "1 KiB"),
            &quote!(
                fn f() {}
            ),
        );
        let body = out.block.to_token_stream().to_string();
        assert!(body.contains("from_nanos (120000000000u64)"), "{body}");
        assert!(body.contains("memory_limit (1024u64)"), "{body}");
        let output = out.sig.output.to_token_stream().to_string();
        assert!(output.contains("Result < () ,"), "{output}");
    }

    #[test]
    fn errors_still_emit_the_rewritten_signature() {
        let out = isolated(
            quote!(),
            &quote!(
                async fn f() -> u8 {
                    1
                }
            ),
        );
        let text = out.to_string();
        assert!(text.contains("compile_error"), "{text}");
        assert!(text.contains("unreachable"), "{text}");
        assert!(text.contains("__private :: Result < u8"), "{text}");
        assert!(!text.contains("async fn f"), "{text}");
    }

    #[test]
    fn independent_problems_are_reported_together() {
        let text = isolated(
            quote!(),
            &quote!(
                const async fn f() -> impl Sized {}
            ),
        )
        .to_string();
        assert_eq!(text.matches("compile_error").count(), 3, "{text}");
    }

    #[test]
    fn errors_section_is_added_once_and_only_to_documented_fns() {
        let count = |item: TokenStream| {
            isolated(quote!(), &item)
                .to_string()
                .matches("# Errors")
                .count()
        };
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
        assert_eq!(
            count(quote!(
                fn f() {}
            )),
            0
        );
    }
}
