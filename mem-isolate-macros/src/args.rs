//! Phase 1: the attribute's arguments, parsed at compile time into plain
//! numbers.
//!
//! `#[isolated(timeout = "5s", memory_limit = "512 MiB", crate = "path")]`

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser as _;
use syn::{Lit, LitStr, Path};

const VALID_KEYS: &str = "`timeout`, `memory_limit`, `crate`";

/// What `#[isolated(...)]` was given.
#[derive(Default)]
pub(crate) struct IsolatedArgs {
    /// The timeout in nanoseconds.
    pub(crate) timeout_nanos: Option<u64>,
    /// The memory limit in bytes.
    pub(crate) memory_limit: Option<u64>,
    /// Where the runtime crate is (`crate = "..."`), `::mem_isolate` if unset.
    pub(crate) krate: Option<Path>,
}

impl IsolatedArgs {
    pub(crate) fn parse(args: TokenStream) -> syn::Result<Self> {
        let mut parsed = Self::default();
        syn::meta::parser(|meta| parsed.parse_one(&meta)).parse2(args)?;
        Ok(parsed)
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("timeout") {
            let lit: LitStr = meta.value()?.parse()?;
            let nanos =
                parse_duration(&lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg))?;
            set_once(&mut self.timeout_nanos, nanos, meta, "timeout")
        } else if meta.path.is_ident("memory_limit") {
            let lit: Lit = meta.value()?.parse()?;
            let bytes = match &lit {
                Lit::Str(s) => parse_size(&s.value()),
                Lit::Int(i) => i
                    .base10_parse::<u64>()
                    .map_err(|e| e.to_string())
                    .and_then(nonzero),
                _ => Err(SIZE_HELP.to_owned()),
            }
            .map_err(|msg| syn::Error::new(lit.span(), msg))?;
            set_once(&mut self.memory_limit, bytes, meta, "memory_limit")
        } else if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            let path = lit.parse::<Path>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "expected a path, like `crate = \"my_reexport::mem_isolate\"`",
                )
            })?;
            set_once(&mut self.krate, path, meta, "crate")
        } else {
            let name = meta
                .path
                .get_ident()
                .map_or_else(|| "this".to_owned(), |i| format!("`{i}`"));
            Err(meta.error(format!(
                "unknown argument {name}; expected one of: {VALID_KEYS}"
            )))
        }
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!("`{name}` is set more than once; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

const DURATION_HELP: &str =
    "expected a duration like \"250ms\", \"5s\", \"2m\" or \"1h\" (a whole number and one of `ms`, `s`, `m`, `h`)";

/// `"250ms" | "5s" | "2m" | "1h"` → nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text.trim()).ok_or_else(|| DURATION_HELP.to_owned())?;
    let nanos_per_unit: u64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(DURATION_HELP.to_owned()),
    };
    number
        .checked_mul(nanos_per_unit)
        .ok_or_else(|| "this duration is too long; the limit is about 584 years".to_owned())
        .and_then(|n| {
            if n == 0 {
                Err(
                    "a timeout of zero would never let the call run; use a positive duration"
                        .to_owned(),
                )
            } else {
                Ok(n)
            }
        })
}

const SIZE_HELP: &str = "expected a size like \"64 MiB\", \"1 GiB\", \"512 KiB\", \"1000 B\" or \"500 MB\" (units: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)";

/// `"64 MiB" | "1 GiB" | "512 KiB" | "1000 B" | "500 MB"` → bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text.trim()).ok_or_else(|| SIZE_HELP.to_owned())?;
    let multiplier: u64 = match unit.trim_start() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(SIZE_HELP.to_owned()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "this size does not fit in 64 bits".to_owned())
        .and_then(nonzero)
}

fn nonzero(bytes: u64) -> Result<u64, String> {
    if bytes == 0 {
        Err("a memory limit of zero would refuse every allocation; use a positive size".to_owned())
    } else {
        Ok(bytes)
    }
}

/// `"512 MiB"` → `(512, " MiB")`; `None` without leading digits.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number = text[..digits].parse().ok()?;
    Some((number, &text[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration("2m"), Ok(120_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        for bad in [
            "",
            "5",
            "s",
            "5 sec",
            "1.5s",
            "-1s",
            "0s",
            "99999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000 B"), Ok(1000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("2 kB"), Ok(2000));
        assert_eq!(parse_size("3 GB"), Ok(3_000_000_000));
        for bad in ["", "64", "MiB", "64 mib", "1.5 GiB", "0 B", "99999999 TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arguments() {
        let args = IsolatedArgs::parse(quote!(
            timeout = "5s",
            memory_limit = "1 GiB",
            crate = "::renamed",
        ))
        .unwrap();
        assert_eq!(args.timeout_nanos, Some(5_000_000_000));
        assert_eq!(args.memory_limit, Some(1 << 30));
        assert!(args.krate.is_some());
        assert!(IsolatedArgs::parse(quote!())
            .unwrap()
            .timeout_nanos
            .is_none());
        let err = IsolatedArgs::parse(quote!(timeout = "1s", timeout = "2s"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("more than once"), "{err}");
        let err = IsolatedArgs::parse(quote!(timout = "1s")).err().unwrap();
        assert!(err.to_string().contains("expected one of"), "{err}");
        assert!(
            IsolatedArgs::parse(quote!(memory_limit = 4096))
                .unwrap()
                .memory_limit
                == Some(4096)
        );
    }
}
