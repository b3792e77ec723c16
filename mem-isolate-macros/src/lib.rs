//! Implementation detail of the `mem-isolate` crate: the `#[isolated]`
//! attribute. Use it as `mem_isolate::isolated`; its documentation is there.
//!
//! The attribute works in phases, one module each: `args` (the attribute's
//! arguments, with `quantity`, the grammar of durations and sizes), `parse`
//! (the function, its body kept as tokens), `validate` (shapes that cannot
//! run, reported on the user's tokens), `expand` (the rewritten function;
//! `zygote` for `#[isolated(zygote)]`), and `fallback` (on error: the errors
//! and a stand-in with the rewritten signature).

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

/// # Argument grammar
///
/// `timeout` and `memory_limit` take a string: a number, whole or decimal,
/// optional spaces, then a unit. Both share this grammar.
///
/// | | units | examples |
/// | --- | --- | --- |
/// | `timeout` | `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h` | `"250ms"`, `"5s"`, `"5 s"`, `"1.5s"`, `"2m"` |
/// | `memory_limit` | `B`, `KB` (or `kB`), `KiB`, `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB`; none: bytes | `"64 MiB"`, `"64MiB"`, `"0.5 GiB"`, `"4096"` |
///
/// - `KB`, `MB`, `GB` and `TB` are powers of 1000, as the SI prefixes (and
///   `kB`) mean; `KiB`, `MiB`, `GiB` and `TiB` are powers of 1024. Units are
///   case-sensitive.
/// - `memory_limit` also takes an integer literal of bytes, with or without
///   a suffix: `67108864`, `64_000_000`, `67108864u64`.
/// - A duration without a unit (`timeout = 5` or `"5"`) is an error that
///   suggests `"5s"` and `"5ms"`: there is no default unit to guess.
/// - The value must be a whole number of nanoseconds or bytes, above zero,
///   that fits in a `u64`.
/// - Any other expression (`timeout = deadline`, `memory_limit = self.limit`,
///   `timeout = Duration::from_secs(n)`) is evaluated by the caller at each
///   call, before the arguments move into the body; it must be a `Duration`
///   or a `u64` of bytes. `isolate = expr` takes an `Isolate` or a reference
///   to one, and `timeout` and `memory_limit` given with it apply on top.
///
/// ```text
/// #[isolated(timeout = "1.5 s", memory_limit = "0.5 GiB")]
/// #[isolated(timeout = "250ms", memory_limit = 67_108_864u64)]
/// #[isolated(timeout = Duration::from_secs(limit), memory_limit = self.budget)]
/// #[isolated(isolate = &self.isolate, timeout = "1s", zygote)]
/// ```
///
/// Every malformed argument is a compile error on its own tokens, and all of
/// them are reported at once. (This crate cannot run examples of its own
/// attribute: the runnable ones are in `mem_isolate`'s documentation.)
#[proc_macro_attribute]
pub fn isolated(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::isolated(args.into(), &item.into()).into()
}
