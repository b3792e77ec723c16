//! Phase 3: shapes `#[isolated]` cannot run, each reported on the user's own
//! tokens with what to write instead. All problems are reported at once.

use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, ReturnType, Signature, Type, TypeFnPtr, TypeImplTrait, TypePath,
    TypeReference, TypeTraitObject,
};

use crate::args::IsolatedArgs;
use crate::parse::IsolatedFn;

/// Arguments of a `zygote` call travel in one tuple, and serde implements
/// its traits for tuples of up to 16 elements.
const MAX_ZYGOTE_ARGS: usize = 16;

pub(crate) fn validate(function: &IsolatedFn, args: &IsolatedArgs) -> syn::Result<()> {
    let mut errors = Errors::default();
    check_attributes(&function.attrs, &mut errors);
    check_signature(&function.sig, args.zygote.is_some(), &mut errors);
    if args.zygote.is_some() {
        check_zygote_arguments(&function.sig, &mut errors);
    }
    errors.finish()
}

/// Problems, joined with `syn::Error::combine`.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: &str) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn push_spanned(&mut self, tokens: impl quote::ToTokens, message: &str) {
        let error = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Whether `attr` is `#[isolated]` under any path (`#[mem_isolate::isolated]`).
pub(crate) fn is_isolated_attribute(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "isolated")
}

fn check_attributes(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("track_caller") {
            errors.push_spanned(
                attr,
                "`#[track_caller]` cannot see through `#[isolated]`: the body runs in a closure in a child process, so `Location::caller()` and panic locations would name the generated code; remove `#[track_caller]`",
            );
        } else if path.is_ident("should_panic") {
            errors.push_spanned(
                attr,
                "an `#[isolated]` test panics in its child process, so the test itself never panics and `#[should_panic]` can never pass; remove it and assert on the result instead: `assert!(matches!(result, Err(MemIsolateError::CallableExecuted(CallableExecutedError::CallablePanicked(_)))))`",
            );
        } else if is_isolated_attribute(attr) {
            errors.push_spanned(
                attr,
                "`#[isolated]` is applied more than once; remove this one (one isolated call already runs the whole body in a child)",
            );
        }
    }
}

fn check_signature(sig: &Signature, zygote: bool, errors: &mut Errors) {
    // A plain `#[isolated] async fn` runs through `Isolate::execute_async`.
    if let (Some(token), true) = (&sig.asyncness, zygote) {
        errors.push(
            token.span,
            "`zygote` cannot run an `async fn`: the worker calls a plain `fn`; remove `zygote`, or make it a plain `fn` and block on the future inside it",
        );
    }
    if let Some(token) = &sig.constness {
        errors.push(
            token.span,
            "`#[isolated]` forks a process at run time, so the function cannot be `const`; remove `const`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.push(
            abi.span(),
            "`#[isolated]` cannot change an `extern` function's signature; isolate a plain Rust `fn` that calls it",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(
            variadic.dots.spans[0],
            "`#[isolated]` cannot isolate a variadic function; take a slice or a `Vec` instead",
        );
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some((span, message)) = return_type_problem(ty) {
            errors.push(span, message);
        }
    }
}

/// What is wrong with a return type `#[isolated]` cannot send back, if
/// anything, and where.
pub(crate) fn return_type_problem(ty: &Type) -> Option<(Span, &'static str)> {
    if let Some(impl_trait) = find_impl_trait(ty) {
        return Some((
            impl_trait.span(),
            "`#[isolated]` sends the result back serialized, so it needs a concrete type; replace `impl Trait` with a type that is `Serialize + DeserializeOwned`",
        ));
    }
    if let Type::Never(never) = strip_groups(ty) {
        return Some((
            never.span(),
            "`#[isolated]` sends the function's value back to the caller, and `-> !` never returns one; return `()` (the caller's `MemIsolateError` says how the child ended)",
        ));
    }
    if let Some(reference) = find_borrow(ty) {
        return Some((
            reference.and_token.span,
            "`#[isolated]` returns the result by value from another process, so it cannot hold a borrow; return an owned type (`String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T`)",
        ));
    }
    None
}

/// Looks through parentheses and the invisible group a `macro_rules!`
/// `$ret:ty` leaves.
fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_groups(&group.elem),
        Type::Paren(paren) => strip_groups(&paren.elem),
        other => other,
    }
}

/// The first `impl Trait` anywhere inside `ty`.
pub(crate) fn find_impl_trait(ty: &Type) -> Option<&TypeImplTrait> {
    struct Finder<'a>(Option<&'a TypeImplTrait>);
    impl<'a> Visit<'a> for Finder<'a> {
        fn visit_type_impl_trait(&mut self, node: &'a TypeImplTrait) {
            self.0.get_or_insert(node);
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// The first reference a value of type `ty` would hold: at the top, in
/// parentheses, tuples, arrays or generic arguments (`Option<&str>`). Not
/// inside `PhantomData<..>` (which holds nothing and deserializes from
/// nothing), function pointers or trait objects (whose references are
/// parameters, not data).
fn find_borrow(ty: &Type) -> Option<&TypeReference> {
    struct Finder<'a>(Option<&'a TypeReference>);
    impl<'a> Visit<'a> for Finder<'a> {
        fn visit_type_reference(&mut self, node: &'a TypeReference) {
            self.0.get_or_insert(node);
        }
        fn visit_type_path(&mut self, node: &'a TypePath) {
            let phantom = node
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "PhantomData");
            if !phantom {
                syn::visit::visit_type_path(self, node);
            }
        }
        fn visit_type_fn_ptr(&mut self, _: &'a TypeFnPtr) {}
        fn visit_type_trait_object(&mut self, _: &'a TypeTraitObject) {}
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// With `zygote`, each argument is sent serialized to a worker that did not
/// see the caller's memory; shapes that only make sense in the caller's
/// memory (closures, trait objects, function pointers) cannot be sent.
fn check_zygote_arguments(sig: &Signature, errors: &mut Errors) {
    if let Some(first_extra) = sig.inputs.iter().nth(MAX_ZYGOTE_ARGS) {
        errors.push_spanned(
            first_extra,
            "`zygote` sends the arguments as one tuple, and serde handles tuples of at most 16 elements; group some arguments in a struct",
        );
    }
    for input in &sig.inputs {
        let attrs = match input {
            FnArg::Receiver(receiver) => &receiver.attrs,
            FnArg::Typed(typed) => &typed.attrs,
        };
        if let Some(attr) = attrs.first() {
            errors.push_spanned(
                attr,
                "`zygote` cannot send an argument with attributes; remove the attribute or drop `zygote`",
            );
        }
        let FnArg::Typed(typed) = input else { continue };
        if let Some((span, what)) = unsendable_shape(&typed.ty) {
            errors.push(
                span,
                &format!("`zygote` sends each argument serialized to a worker process, and {what} cannot be; take a concrete `Serialize + DeserializeOwned` type (or a generic `T: Serialize + DeserializeOwned`), or drop `zygote`"),
            );
        }
    }
}

/// An argument type that can only live in the caller's memory.
fn unsendable_shape(ty: &Type) -> Option<(Span, &'static str)> {
    match strip_groups(ty) {
        Type::Reference(reference) => unsendable_shape(&reference.elem),
        Type::ImplTrait(impl_trait) => Some((
            impl_trait.impl_token.span,
            "an `impl Trait` argument (a closure, an iterator...)",
        )),
        Type::TraitObject(object) => Some((object.span(), "a trait object")),
        Type::FnPtr(pointer) => Some((pointer.span(), "a function pointer")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn problem(ty: &Type) -> Option<&'static str> {
        return_type_problem(ty).map(|(_, message)| message)
    }

    #[test]
    fn borrows_are_found_wherever_the_value_holds_them() {
        for ty in [
            parse_quote!(&'static str),
            parse_quote!((&'static str)),
            parse_quote!(Option<&'static str>),
            parse_quote!((u8, &'static [u8])),
            parse_quote!([&'static str; 2]),
            parse_quote!(Vec<Option<&'static u8>>),
            Type::Group(syn::TypeGroup {
                attrs: Vec::new(),
                group_token: syn::token::Group::default(),
                elem: Box::new(parse_quote!(&'static str)),
            }),
        ] {
            let shown = quote::ToTokens::to_token_stream(&ty).to_string();
            assert!(
                problem(&ty).is_some_and(|m| m.contains("borrow")),
                "{shown}"
            );
        }
        for ty in [
            parse_quote!(PhantomData<&'static str>),
            parse_quote!(std::marker::PhantomData<&'static u8>),
            parse_quote!(Cow<'static, str>),
            parse_quote!(Option<fn(&str) -> u8>),
            parse_quote!(Box<dyn Fn(&str) + Send>),
            parse_quote!(String),
        ] {
            let shown = quote::ToTokens::to_token_stream(&ty).to_string();
            assert_eq!(problem(&ty), None, "{shown}");
        }
    }

    #[test]
    fn never_and_impl_trait_are_refused() {
        assert!(problem(&parse_quote!(!)).is_some_and(|m| m.contains("`-> !`")));
        assert!(problem(&parse_quote!((!))).is_some_and(|m| m.contains("`-> !`")));
        assert!(problem(&parse_quote!(Vec<impl Sized>)).is_some_and(|m| m.contains("impl Trait")));
    }
}
