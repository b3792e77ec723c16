//! On error: the errors, then a stand-in with the rewritten signature and an
//! `unreachable!()` body, so call sites type-check and the user sees the
//! error, not a cascade of errors at every call.
//!
//! ```text
//! // Input (rejected):
//! #[isolated]
//! const fn fetch(mut retries: u8, (a, b): (u8, u8)) -> u8 { body }
//!
//! // Output:
//! ::core::compile_error! { "`#[isolated]` forks a process at run time, so the function cannot be `const` ..." }
//! fn fetch(_: u8, _: (u8, u8)) -> ::core::result::Result<u8, ::mem_isolate::__private::MemIsolateError> {
//!     ::core::unreachable!()
//! }
//! ```
//!
//! The stand-in binds no names (`_` patterns, no `mut self`), so it needs no
//! `#[allow(unused_variables)]`, which a crate's
//! `#![forbid(unused_variables)]` would turn into a second error.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{parse_quote, FnArg, ReturnType};

use crate::expand::{generated_attributes, rewrite_signature, Runtime};
use crate::parse::IsolatedFn;
use crate::validate::{is_isolated_attribute, return_type_problem};

pub(crate) fn fallback(error: syn::Error, runtime: &Runtime, function: IsolatedFn) -> TokenStream {
    let IsolatedFn {
        mut attrs,
        vis,
        mut sig,
        ..
    } = function;
    // Attributes that were themselves the error would only repeat it (a
    // second `#[isolated]` would expand the stand-in again).
    attrs.retain(|attr| {
        !(attr.path().is_ident("should_panic")
            || attr.path().is_ident("track_caller")
            || is_isolated_attribute(attr))
    });
    // `async` stays: callers `.await` the stand-in as they would the function.
    sig.constness = None;
    sig.abi = None;
    sig.variadic = None;
    if let ReturnType::Type(_, ty) = &mut sig.output {
        // An opaque, borrowed or never type cannot be produced by
        // `unreachable!()` without more errors; `()` keeps the stand-in quiet.
        if return_type_problem(ty).is_some() {
            *ty = parse_quote!(());
        }
    }
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(receiver) => receiver.mutability = None,
            FnArg::Typed(typed) => *typed.pat = parse_quote!(_),
        }
    }
    let generated_attrs = generated_attributes(&attrs, &vis, &sig);
    rewrite_signature(&mut sig, runtime);
    let compile_error = error.into_compile_error();
    quote! {
        #compile_error
        #(#attrs)*
        #generated_attrs
        #vis #sig {
            ::core::unreachable!()
        }
    }
}
