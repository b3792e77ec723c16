//! Implementation detail of the `mem-isolate` crate: the `#[isolated]`
//! attribute. Use it as `mem_isolate::isolated`; its documentation is there.

#![warn(missing_docs, unreachable_pub)]

mod args;
mod expand;
mod fallback;
mod parse;
mod quantity;
mod validate;
mod zygote;

#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

/// Runs the function's body in a forked child process; callers get
/// `Result<T, mem_isolate::MemIsolateError>`.
///
/// See the documentation of `mem_isolate::isolated` for the arguments, the
/// supported shapes and examples.
#[proc_macro_attribute]
pub fn isolated(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::isolated(args.into(), &item.into()).into()
}
