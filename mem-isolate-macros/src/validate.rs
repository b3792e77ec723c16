//! Phase 3: shapes `#[isolated]` cannot run, each reported on the user's own
//! tokens with what to write instead. All problems are reported at once.

use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::{ReturnType, Signature, Type, TypeImplTrait};

pub(crate) fn validate(sig: &Signature) -> syn::Result<()> {
    let mut errors: Vec<syn::Error> = Vec::new();
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new(
            token.span,
            "`#[isolated]` cannot run an `async fn` in a child process; make it a plain `fn` and block on the future inside it",
        ));
    }
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(
            token.span,
            "`#[isolated]` forks a process at run time, so the function cannot be `const`; remove `const`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new(
            abi.span(),
            "`#[isolated]` cannot change an `extern` function's signature; isolate a plain Rust `fn` that calls it",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.dots.spans[0],
            "`#[isolated]` cannot isolate a variadic function; take a slice or a `Vec` instead",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some(impl_trait) = find_impl_trait(ty) {
            errors.push(syn::Error::new(
                impl_trait.span(),
                "`#[isolated]` sends the result back serialized, so it needs a concrete type; replace `impl Trait` with a type that is `Serialize + DeserializeOwned`",
            ));
        } else if let Type::Reference(reference) = &**ty {
            errors.push(syn::Error::new(
                reference.span(),
                "`#[isolated]` returns the result by value from another process; return an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)",
            ));
        }
    }
    match errors.into_iter().reduce(|mut all, next| {
        all.combine(next);
        all
    }) {
        Some(all) => Err(all),
        None => Ok(()),
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
