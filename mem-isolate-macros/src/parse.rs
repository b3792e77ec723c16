//! Phase 2: the annotated item, read as attributes, visibility, signature and
//! a body kept as tokens (re-parsing every statement would only slow builds).

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::{braced, Attribute, Signature, Token, Visibility};

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
            return Err(input.error(
                "`#[isolated]` applies to functions and methods only; put it on a `fn` with a body",
            ));
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

/// Whether the next tokens can begin a function signature.
fn starts_signature(input: ParseStream<'_>) -> bool {
    input.peek(Token![fn])
        || input.peek(Token![const])
        || input.peek(Token![async])
        || input.peek(Token![unsafe])
        || input.peek(Token![extern])
}
