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
pub(crate) fn isolated(args: TokenStream, item: TokenStream) -> TokenStream {
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
    args.krate.clone().unwrap_or_else(|| parse_quote!(::mem_isolate))
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
    let value = value_type(&sig);
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
    let block = Group::new(Delimiter::Brace, body);
    let mut block_tokens = TokenStream::new();
    let mut block = block;
    block.set_span(body_span);
    block.to_tokens(&mut block_tokens);
    let outer_from_inner = inner_attrs.into_iter().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    });

    quote! {
        #(#attrs)*
        #(#outer_from_inner)*
        #vis #sig {
            #krate::__private::Isolate::new()
                #timeout
                #memory_limit
                .#execute(move || -> #value #block_tokens)
        }
    }
}

fn fallback(error: syn::Error, function: IsolatedFn) -> TokenStream {
    let IsolatedFn { attrs, vis, mut sig, .. } = function;
    sig.asyncness = None;
    sig.constness = None;
    sig.abi = None;
    sig.variadic = None;
    rewrite_signature(&mut sig, &parse_quote!(::mem_isolate));
    let compile_error = error.into_compile_error();
    quote! {
        #compile_error
        #(#attrs)*
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
