//! Phase 2: the annotated item, read as attributes, visibility, signature and
//! a body kept as tokens (re-parsing every statement would only slow builds).

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::{braced, Attribute, LitStr, Signature, Token, Visibility};

/// A function or method under `#[isolated]`.
pub(crate) struct IsolatedFn {
    pub(crate) attrs: Vec<Attribute>,
    /// `#![...]` at the top of the body; they move onto the function, since
    /// the body becomes a closure's block where they cannot stay.
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: TokenStream,
    pub(crate) body_span: Span,
}

impl Parse for IsolatedFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        if !starts_signature(input) {
            return Err(input.error(if starts_impl(input) {
                "`#[isolated]` applies to functions and methods only; put it on each method of the `impl` block"
            } else {
                "`#[isolated]` applies to functions and methods only; put it on a `fn` with a body"
            }));
        }
        let sig: Signature = input.parse()?;
        if input.peek(Token![;]) {
            return Err(input.error(
                "`#[isolated]` needs the function's body; put it on the `fn` in the `impl`, not on the declaration",
            ));
        }
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        Ok(Self {
            attrs,
            inner_attrs,
            vis,
            sig,
            body,
            body_span: brace.span.join(),
        })
    }
}

/// Whether the next tokens begin an `impl` block (`unsafe impl` too).
fn starts_impl(input: ParseStream<'_>) -> bool {
    input.peek(Token![impl]) || (input.peek(Token![unsafe]) && input.peek2(Token![impl]))
}

/// Whether the next tokens begin a function signature: qualifiers, then
/// `fn`. Looking past the qualifiers tells `const fn` from a `const` item,
/// `unsafe fn` from `unsafe impl` and `extern "C" fn` from `extern crate` or
/// an `extern` block, so each of those gets this crate's message.
fn starts_signature(input: ParseStream<'_>) -> bool {
    let ahead = input.fork();
    let _ = ahead.parse::<Option<Token![const]>>();
    let _ = ahead.parse::<Option<Token![async]>>();
    let _ = ahead.parse::<Option<Token![unsafe]>>();
    if ahead
        .parse::<Option<Token![extern]>>()
        .is_ok_and(|e| e.is_some())
    {
        let _ = ahead.parse::<Option<LitStr>>();
    }
    ahead.peek(Token![fn])
}
