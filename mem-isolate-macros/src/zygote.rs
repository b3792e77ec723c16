//! Phase 4, `#[isolated(zygote)]`: the call goes through `Isolate::call`,
//! which takes a plain `fn(A) -> T` and the arguments `A` as one tuple, so
//! that a zygote (fork server) can run it from its own memory.
//!
//! ```text
//! // Input:
//! #[isolated(zygote)]
//! fn describe(&self, prefix: &str, n: u32) -> String { body }
//!
//! // Output (body of the function):
//! let __isolate = ::mem_isolate::__private::Isolate::new();
//! let __body: fn(_) -> _ = |(__self, __arg1, n): (Cow<'_, Self>, Cow<'_, str>, u32)| -> String {
//!     let __self: &Self = &*__self;
//!     let prefix: &str = &*__arg1;
//!     { body, with `self` written `__self` }
//! };
//! {
//!     fn __call<F, T, A0, A1, A2>(isolate: &Isolate, function: F, a0: A0, a1: A1, a2: A2) -> Result<T, MemIsolateError>
//!     where
//!         F: Into<fn((A0, A1, A2)) -> T>,
//!         T: Serialize + DeserializeOwned,
//!         A0: Serialize + DeserializeOwned, // one bound per argument
//!         ...
//!     {
//!         Isolate::call(isolate, Into::into(function), (a0, a1, a2))
//!     }
//!     __call(&__isolate, __body, Cow::Borrowed(self), Cow::Borrowed(prefix), n)
//! }
//! ```
//!
//! Why each piece:
//!
//! - The body is a closure that captures nothing, coerced to a `fn` pointer:
//!   unlike an inner `fn` item it can name `Self` and the function's
//!   generics, and each instantiation of a generic function is its own
//!   pointer. It cannot take `self`, so the body's `self` is renamed.
//! - Borrowed arguments (`&T`, `&str`, `&[T]`, `&self`) travel as
//!   `Cow::Borrowed`: nothing is cloned in the caller, the bytes sent are
//!   those of `T`, and the worker gets `Cow::Owned`. `Cow` needs
//!   `T: ToOwned` (`Clone` for sized types) for the types to line up.
//! - `__call` has one `Serialize + DeserializeOwned` bound per argument, and
//!   takes the body as a generic `F`: rustc then reports an unmet bound on
//!   the argument it came from (shown at that argument's type), once,
//!   instead of on `Isolate::call` for the whole tuple.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned as _;
use syn::{FnArg, Lifetime, Pat, PatType, Receiver, ReceiverKind, Signature, Type};

use crate::expand::{generated_at, located, Runtime};

/// One argument as the zygote call sees it.
struct Sent {
    /// The element of the argument tuple.
    ty: TokenStream,
    /// What the caller puts in the tuple.
    value: TokenStream,
    /// How the body's closure binds the element.
    pattern: TokenStream,
    /// Statements that turn the element back into the declared argument.
    unpack: TokenStream,
}

/// The call expression; rewrites `sig`'s argument patterns so that each
/// argument has a name to send (`mut` and destructuring move into the body).
pub(crate) fn call(
    sig: &mut Signature,
    block: &Group,
    runtime: &Runtime,
    value_span: Span,
    closure_output: &TokenStream,
    isolate: &Ident,
    option_names: &[String],
) -> TokenStream {
    let self_name = Ident::new("__self", Span::mixed_site());
    let sent: Vec<Sent> = sig
        .inputs
        .iter_mut()
        .enumerate()
        .map(|(index, input)| match input {
            FnArg::Receiver(receiver) => send_receiver(receiver, &self_name),
            FnArg::Typed(typed) => send_typed(index, typed, option_names),
        })
        .collect();

    let types = sent.iter().map(|s| &s.ty);
    let patterns = sent.iter().map(|s| &s.pattern);
    let values = sent.iter().map(|s| &s.value);
    let unpack = sent.iter().map(|s| &s.unpack);
    let body = rename_self(block.stream(), &self_name);
    let mut body_block = Group::new(Delimiter::Brace, body);
    body_block.set_span(block.span());
    let closure_body = if sent.iter().all(|s| s.unpack.is_empty()) {
        body_block.into_token_stream()
    } else {
        quote!({ #(#unpack)* #body_block })
    };
    let function = Ident::new("__body", Span::mixed_site());
    let helper = call_helper(sent.len(), runtime);
    // An unmet bound on the return type is reported on this name: shown at
    // the user's `-> T`.
    let call_name = Ident::new("__call", Span::mixed_site().located_at(value_span));
    quote! {
        let #function: fn(_) -> _ = |(#(#patterns,)*): (#(#types,)*)| #closure_output #closure_body;
        {
            #helper
            #call_name(&#isolate, #function, #(#values),*)
        }
    }
}

/// `self`, `&self`, `&mut self`, `self: Box<Self>`, `self: &Self`...
fn send_receiver(receiver: &mut Receiver, self_name: &Ident) -> Sent {
    let location = receiver.self_token.span;
    let by_value_mut = receiver.mutability.take();
    let self_value = quote!(self);
    let borrow = match &receiver.kind {
        ReceiverKind::Reference(_, lifetime, mutability) => Some(Borrow {
            elem: quote!(Self),
            lifetime: lifetime.clone(),
            mutable: mutability.is_some(),
        }),
        ReceiverKind::Typed(_, ty) => Borrow::of(ty),
        _ => None,
    };
    if let Some(borrow) = borrow {
        let declared = borrow.declared();
        return borrow.send(
            &self_value,
            self_name,
            &self_name.to_token_stream(),
            &declared,
            location,
        );
    }
    let ty = if let ReceiverKind::Typed(_, ty) = &receiver.kind {
        ty.to_token_stream()
    } else {
        quote!(Self)
    };
    Sent {
        ty,
        value: located(self_value, location),
        pattern: quote!(#by_value_mut #self_name),
        unpack: TokenStream::new(),
    }
}

/// An argument `pattern: Type`.
fn send_typed(index: usize, typed: &mut PatType, option_names: &[String]) -> Sent {
    let location = typed.ty.span();
    let user_pattern = (*typed.pat).clone();
    let name = match &*typed.pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
            ident.ident.clone()
        }
        _ => format_ident!("__arg{}", index, span = Span::mixed_site()),
    };
    // The caller only moves the argument into the tuple: its `mut` (and any
    // destructuring) belongs to the body.
    *typed.pat = syn::parse_quote!(#name);
    let ty = &*typed.ty;
    let mut sent = if let Some(borrow) = Borrow::of(ty) {
        let slot = format_ident!("__arg{}", index, span = Span::mixed_site());
        // Rebound without the declared lifetime: the body borrows its own
        // copy, which does not live as long as the caller's `'a`.
        let declared = borrow.declared();
        borrow.send(
            &name.to_token_stream(),
            &slot,
            &user_pattern.to_token_stream(),
            &declared,
            location,
        )
    } else {
        Sent {
            ty: ty.to_token_stream(),
            value: located(name.to_token_stream(), location),
            pattern: user_pattern.to_token_stream(),
            unpack: TokenStream::new(),
        }
    };
    // An argument an option reads (`timeout = limit`) is used even if the
    // body never mentions it: say so in the body, where it is bound again,
    // or rustc would call it unused.
    if option_names.contains(&name.to_string()) {
        sent.unpack.extend(quote!(let _ = &#name;));
    }
    sent
}

/// A borrowed argument: `&'lifetime mut? elem`.
struct Borrow {
    elem: TokenStream,
    lifetime: Option<Lifetime>,
    mutable: bool,
}

impl Borrow {
    fn of(ty: &Type) -> Option<Self> {
        match strip_groups(ty) {
            Type::Reference(reference) => Some(Self {
                elem: reference.elem.to_token_stream(),
                lifetime: reference.lifetime.clone(),
                mutable: reference.mutability.is_some(),
            }),
            _ => None,
        }
    }

    /// `&elem` or `&mut elem`.
    fn declared(&self) -> TokenStream {
        let elem = &self.elem;
        if self.mutable {
            quote!(&mut #elem)
        } else {
            quote!(&#elem)
        }
    }

    /// Sent as `Cow::Borrowed(value)`, bound in the body as `slot`, then
    /// as `pattern: declared` again.
    fn send(
        &self,
        value: &TokenStream,
        slot: &Ident,
        pattern: &TokenStream,
        declared: &TokenStream,
        location: Span,
    ) -> Sent {
        let cow = quote!(::std::borrow::Cow);
        let elem = &self.elem;
        let lifetime = self
            .lifetime
            .as_ref()
            .map_or_else(|| quote!('_), ToTokens::to_token_stream);
        let span = generated_at(location);
        let value = located(value.clone(), location);
        let ty = quote!(#cow<#lifetime, #elem>);
        if self.mutable {
            // The worker's copy is its own; in a directly forked child the
            // `Cow` still borrows, and `to_mut` copies it there, in the child.
            Sent {
                ty,
                value: quote_spanned!(span=> #cow::Borrowed(&*#value)),
                pattern: quote!(mut #slot),
                unpack: quote!(let #pattern: #declared = #cow::to_mut(&mut #slot);),
            }
        } else {
            Sent {
                ty,
                value: quote_spanned!(span=> #cow::Borrowed(#value)),
                pattern: quote!(#slot),
                unpack: quote!(let #pattern: #declared = &*#slot;),
            }
        }
    }
}

/// The inner `__call` for `count` arguments (see the module docs).
fn call_helper(count: usize, runtime: &Runtime) -> TokenStream {
    let private = runtime.private();
    let params: Vec<Ident> = (0..count).map(|i| format_ident!("A{}", i)).collect();
    let values: Vec<Ident> = (0..count).map(|i| format_ident!("a{}", i)).collect();
    let call_name = Ident::new("__call", Span::mixed_site());
    quote! {
        fn #call_name<F, T, #(#params),*>(
            isolate: &#private::Isolate,
            function: F,
            #(#values: #params),*
        ) -> ::core::result::Result<T, #private::MemIsolateError>
        where
            F: ::core::convert::Into<fn((#(#params,)*)) -> T>,
            T: #private::Serialize + #private::DeserializeOwned,
            #(#params: #private::Serialize + #private::DeserializeOwned,)*
        {
            #private::Isolate::call(
                isolate,
                ::core::convert::Into::into(function),
                (#(#values,)*),
            )
        }
    }
}

/// Looks through parentheses and the invisible group of a `macro_rules!`
/// `$t:ty`.
fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_groups(&group.elem),
        Type::Paren(paren) => strip_groups(&paren.elem),
        other => other,
    }
}

/// The body with its `self` written `to` (a closure cannot take `self`).
///
/// Left alone: `self::path` (a module path), and everything inside a nested
/// `fn`, `impl` or `trait` of the body, whose `self` is its own.
fn rename_self(body: TokenStream, to: &Ident) -> TokenStream {
    let mut out = Vec::new();
    let mut trees = body.into_iter().peekable();
    // After `fn`, `impl` or `trait`: the next `{ ... }` is a nested item's.
    let mut nested_item = false;
    while let Some(tree) = trees.next() {
        match tree {
            TokenTree::Ident(ident) if ident == "fn" || ident == "impl" || ident == "trait" => {
                nested_item = true;
                out.push(TokenTree::Ident(ident));
            }
            TokenTree::Ident(ident) if ident == "self" && !nested_item => {
                let is_path = matches!(
                    trees.peek(),
                    Some(TokenTree::Punct(punct)) if punct.as_char() == ':'
                );
                if is_path {
                    out.push(TokenTree::Ident(ident));
                } else {
                    let mut renamed = to.clone();
                    renamed.set_span(to.span().located_at(ident.span()));
                    out.push(TokenTree::Ident(renamed));
                }
            }
            TokenTree::Punct(punct) if punct.as_char() == ';' || punct.as_char() == '=' => {
                // `let f: fn(u8) = ...;` names a type, not an item.
                nested_item = false;
                out.push(TokenTree::Punct(punct));
            }
            TokenTree::Group(group) => {
                if nested_item && group.delimiter() == Delimiter::Brace {
                    nested_item = false;
                    out.push(TokenTree::Group(group));
                } else if nested_item {
                    out.push(TokenTree::Group(group));
                } else {
                    let mut renamed =
                        Group::new(group.delimiter(), rename_self(group.stream(), to));
                    renamed.set_span(group.span());
                    out.push(TokenTree::Group(renamed));
                }
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(body: TokenStream) -> String {
        rename_self(body, &Ident::new("__self", Span::call_site())).to_string()
    }

    #[test]
    fn self_is_renamed_where_it_means_the_receiver() {
        assert_eq!(
            renamed(quote!(self.count + self::helper(self) + f(|| self.x))),
            quote!(__self.count + self::helper(__self) + f(|| __self.x)).to_string()
        );
        assert_eq!(
            renamed(quote!(println!("{}", self.name);)),
            quote!(println!("{}", __self.name);).to_string()
        );
        // Nested items keep their own `self`.
        assert_eq!(
            renamed(quote!(impl X { fn g(&self) -> u8 { self.0 } } self.1)),
            quote!(impl X { fn g(&self) -> u8 { self.0 } } __self.1).to_string()
        );
        assert_eq!(
            renamed(quote!(let f: fn(u8) = g; { self.y })),
            quote!(let f: fn(u8) = g; { __self.y }).to_string()
        );
    }
}
