//! Phase 1: the attribute's arguments.
//!
//! ```text
//! #[isolated(timeout = "5s", memory_limit = "512 MiB", crate = "path", zygote)]
//! #[isolated(timeout = deadline, memory_limit = self.limit, isolate = &self.isolate)]
//! ```
//!
//! Literals are checked here, at compile time, into plain numbers; any other
//! expression is kept and evaluated by the caller at each call. Every problem
//! is reported, not only the first.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser as _};
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, Path, Token, UnOp};

use crate::quantity::{self, Refused};

const VALID_KEYS: &str = "`timeout`, `memory_limit`, `isolate`, `zygote`, `crate`";

/// A `timeout` or `memory_limit`.
pub(crate) enum Setting {
    /// A literal, checked at compile time: nanoseconds or bytes.
    Fixed(u64),
    /// Any other expression, evaluated in the parent at each call.
    Runtime(Box<Expr>),
}

/// What `#[isolated(...)]` was given.
#[derive(Default)]
pub(crate) struct IsolatedArgs {
    /// `timeout = ...`: nanoseconds, or a `Duration` expression.
    pub(crate) timeout: Option<Setting>,
    /// `memory_limit = ...`: bytes, or a `u64` expression.
    pub(crate) memory_limit: Option<Setting>,
    /// `isolate = ...`: an `Isolate` (or a reference to one) to start from;
    /// `timeout` and `memory_limit` then apply on top of it.
    pub(crate) isolate: Option<Box<Expr>>,
    /// `crate = "..."`: where the runtime is, `::mem_isolate` if unset.
    pub(crate) krate: Option<Path>,
    /// `zygote`: the call goes through `Isolate::call`; the keyword's span.
    pub(crate) zygote: Option<Span>,
}

impl IsolatedArgs {
    /// Parses every argument, and reports every problem at once.
    #[cfg(test)]
    pub(crate) fn parse(args: TokenStream) -> syn::Result<Self> {
        match Self::parse_partial(args) {
            (parsed, None) => Ok(parsed),
            (_, Some(errors)) => Err(errors),
        }
    }

    /// The arguments that parsed, and the errors of those that did not (so
    /// that the error path still knows a `crate = "..."`).
    pub(crate) fn parse_partial(args: TokenStream) -> (Self, Option<syn::Error>) {
        let mut parsed = Self::default();
        let mut errors: Option<syn::Error> = None;
        let mut record = |error: syn::Error| match &mut errors {
            Some(all) => all.combine(error),
            None => errors = Some(error),
        };
        let result = syn::meta::parser(|meta| {
            if let Err(error) = parsed.parse_one(&meta) {
                record(error);
                // Go on with the next argument.
                skip_to_comma(meta.input);
            }
            Ok(())
        })
        .parse2(args);
        if let Err(error) = result {
            record(error);
        }
        (parsed, errors)
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let path = &meta.path;
        if path.is_ident("zygote") {
            if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                return Err(syn::Error::new_spanned(
                    path,
                    "`zygote` takes no value; write `#[isolated(zygote)]`",
                ));
            }
            return set_once(&mut self.zygote, path.span(), path, "zygote");
        }
        let key = if path.is_ident("timeout") {
            Key::Timeout
        } else if path.is_ident("memory_limit") {
            Key::MemoryLimit
        } else if path.is_ident("isolate") {
            Key::Isolate
        } else if path.is_ident("crate") {
            Key::Crate
        } else {
            return Err(syn::Error::new_spanned(
                path,
                format!(
                    "unknown argument `{}`; expected one of: {VALID_KEYS}",
                    path_text(path)
                ),
            ));
        };
        if !meta.input.peek(Token![=]) {
            return Err(syn::Error::new_spanned(
                path,
                format!("`{}` needs a value: {}", key.name(), key.example()),
            ));
        }
        let value = meta.value()?;
        match key {
            Key::Timeout => {
                let setting = duration_setting(value.parse()?)?;
                set_once(&mut self.timeout, setting, path, "timeout")
            }
            Key::MemoryLimit => {
                let setting = size_setting(value.parse()?)?;
                set_once(&mut self.memory_limit, setting, path, "memory_limit")
            }
            Key::Isolate => {
                let expr: Expr = value.parse()?;
                if let Expr::Lit(lit) = strip_groups(&expr) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "expected an expression whose value is a `mem_isolate::Isolate` (or a reference to one), like `isolate = &self.isolate`",
                    ));
                }
                set_once(&mut self.isolate, Box::new(expr), path, "isolate")
            }
            Key::Crate => {
                let lit: LitStr = value.parse()?;
                let krate = lit.parse::<Path>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "expected a path in a string, like `crate = \"my_reexport::mem_isolate\"`",
                    )
                })?;
                set_once(&mut self.krate, krate, path, "crate")
            }
        }
    }
}

impl IsolatedArgs {
    /// The identifiers the run-time options mention (`limit` in
    /// `timeout = limit`): arguments the caller uses even if the body does
    /// not.
    pub(crate) fn runtime_names(&self) -> Vec<String> {
        fn collect(tokens: TokenStream, names: &mut Vec<String>) {
            for tree in tokens {
                match tree {
                    TokenTree::Ident(ident) => names.push(ident.to_string()),
                    TokenTree::Group(group) => collect(group.stream(), names),
                    _ => {}
                }
            }
        }
        let mut names = Vec::new();
        let settings = [&self.timeout, &self.memory_limit]
            .into_iter()
            .filter_map(|setting| match setting {
                Some(Setting::Runtime(expr)) => Some(&**expr),
                _ => None,
            });
        for expr in settings.chain(self.isolate.as_deref()) {
            collect(quote::ToTokens::to_token_stream(expr), &mut names);
        }
        names
    }
}

#[derive(Clone, Copy)]
enum Key {
    Timeout,
    MemoryLimit,
    Isolate,
    Crate,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory_limit",
            Self::Isolate => "isolate",
            Self::Crate => "crate",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Timeout => "`timeout = \"5s\"`, or `timeout = expr` with a `Duration`",
            Self::MemoryLimit => {
                "`memory_limit = \"64 MiB\"`, or `memory_limit = expr` with a `u64` of bytes"
            }
            Self::Isolate => "`isolate = expr` with a `mem_isolate::Isolate`",
            Self::Crate => "`crate = \"path::to::mem_isolate\"`",
        }
    }
}

/// Skips the rest of a malformed argument, up to the next `,`.
fn skip_to_comma(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, path: &Path, name: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            path,
            format!("`{name}` is set more than once; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// `foo::bar` as written (without the spaces tokens print with).
fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    let leading = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{leading}{}", segments.join("::"))
}

/// Looks through the invisible groups a `macro_rules!` `$x:expr` leaves,
/// and through parentheses.
fn strip_groups(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => strip_groups(&group.expr),
        Expr::Paren(paren) => strip_groups(&paren.expr),
        other => other,
    }
}

/// A literal operand of a unary minus: `-1`, `-1.5`.
fn negated_literal(expr: &Expr) -> Option<&ExprLit> {
    match strip_groups(expr) {
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match strip_groups(expr) {
            Expr::Lit(lit) => Some(lit),
            _ => None,
        },
        _ => None,
    }
}

const DURATION_HELP: &str = "expected a duration like \"250ms\", \"5s\", \"1.5 s\" or \"2m\": a number, then one of the units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; or an expression of type `Duration`";

const SIZE_HELP: &str = "expected a size like \"64 MiB\", \"0.5 GiB\", \"512KiB\" or a number of bytes like 4096: units `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB` (`KB` is 1000 bytes, `KiB` 1024); or an expression of type `u64`";

fn duration_message(refused: &Refused) -> String {
    match refused {
        Refused::Malformed => DURATION_HELP.to_owned(),
        Refused::UnknownUnit(unit) => format!("unknown unit `{unit}`; {DURATION_HELP}"),
        Refused::NoUnit(number) => format!(
            "a duration needs a unit: write \"{number}s\" for seconds or \"{number}ms\" for milliseconds (units: `ns`, `us`, `ms`, `s`, `m`, `h`)"
        ),
        Refused::TooLarge => {
            "this duration is too long; the limit is 2^64 nanoseconds (about 584 years)".to_owned()
        }
        Refused::Zero => {
            "a timeout of zero would never let the call run; use a positive duration".to_owned()
        }
        Refused::NotWhole => {
            "a timeout is counted in whole nanoseconds; use fewer decimals or a smaller unit"
                .to_owned()
        }
    }
}

fn size_message(refused: &Refused) -> String {
    match refused {
        Refused::Malformed | Refused::NoUnit(_) => SIZE_HELP.to_owned(),
        Refused::UnknownUnit(unit) => format!("unknown unit `{unit}`; {SIZE_HELP}"),
        Refused::TooLarge => {
            "this size does not fit in 64 bits (the largest is 18446744073709551615 bytes)"
                .to_owned()
        }
        Refused::Zero => {
            "a memory limit of zero would refuse every allocation; use a positive size".to_owned()
        }
        Refused::NotWhole => {
            "a memory limit is a whole number of bytes; use fewer decimals or a smaller unit"
                .to_owned()
        }
    }
}

/// Integer suffixes that still mean a plain number (`4096u64`).
fn is_integer_suffix(suffix: &str) -> bool {
    matches!(
        suffix,
        "" | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
    )
}

/// The text of a number literal with its suffix, as a user would quote it.
fn quoted_suggestion(lit: &Lit) -> Option<String> {
    match lit {
        Lit::Int(int) => Some(format!("{}{}", int.base10_digits(), int.suffix())),
        Lit::Float(float) => Some(format!("{}{}", float.base10_digits(), float.suffix())),
        _ => None,
    }
}

fn duration_setting(expr: Expr) -> syn::Result<Setting> {
    if negated_literal(&expr).is_some() {
        return Err(syn::Error::new_spanned(
            &expr,
            format!("a timeout cannot be negative; {DURATION_HELP}"),
        ));
    }
    let Expr::Lit(ExprLit { lit, .. }) = strip_groups(&expr) else {
        return Ok(Setting::Runtime(Box::new(expr)));
    };
    let nanos = match lit {
        Lit::Str(text) => quantity::parse_duration(&text.value()).map_err(|refused| duration_message(&refused)),
        Lit::Int(_) | Lit::Float(_) => {
            let written = quoted_suggestion(lit).unwrap_or_default();
            if quantity::parse_duration(&written).is_ok() {
                // `timeout = 5s`: the unit is there, the quotes are not.
                Err(format!(
                    "write the duration in quotes: `timeout = \"{written}\"`"
                ))
            } else {
                let number = match lit {
                    Lit::Int(int) => int.base10_digits(),
                    Lit::Float(float) => float.base10_digits(),
                    _ => &written,
                };
                Err(format!(
                    "a duration needs a unit: write `timeout = \"{number}s\"` for seconds or `timeout = \"{number}ms\"` for milliseconds (units: `ns`, `us`, `ms`, `s`, `m`, `h`)"
                ))
            }
        }
        _ => Err(DURATION_HELP.to_owned()),
    }
    .map_err(|message| syn::Error::new(lit.span(), message))?;
    Ok(Setting::Fixed(nanos))
}

fn size_setting(expr: Expr) -> syn::Result<Setting> {
    if negated_literal(&expr).is_some() {
        return Err(syn::Error::new_spanned(
            &expr,
            format!("a memory limit cannot be negative; {SIZE_HELP}"),
        ));
    }
    let Expr::Lit(ExprLit { lit, .. }) = strip_groups(&expr) else {
        return Ok(Setting::Runtime(Box::new(expr)));
    };
    let bytes = match lit {
        Lit::Str(text) => {
            quantity::parse_size(&text.value()).map_err(|refused| size_message(&refused))
        }
        Lit::Int(int) => int_bytes(int),
        Lit::Float(_) => {
            let written = quoted_suggestion(lit).unwrap_or_default();
            match quantity::parse_size(&written) {
                Ok(_) => Err(format!(
                    "write the size in quotes: `memory_limit = \"{written}\"`"
                )),
                Err(refused) => Err(size_message(&refused)),
            }
        }
        _ => Err(SIZE_HELP.to_owned()),
    }
    .map_err(|message| syn::Error::new(lit.span(), message))?;
    Ok(Setting::Fixed(bytes))
}

/// `4096`, `4096u64` → bytes; `64MiB` (a unit as a literal suffix) gets the
/// quoted form suggested.
fn int_bytes(int: &LitInt) -> Result<u64, String> {
    if is_integer_suffix(int.suffix()) {
        return quantity::bytes_from_digits(int.base10_digits())
            .map_err(|refused| size_message(&refused));
    }
    let written = format!("{}{}", int.base10_digits(), int.suffix());
    match quantity::parse_size(&written) {
        Ok(_) => Err(format!(
            "write the size in quotes: `memory_limit = \"{written}\"`"
        )),
        Err(_) => Err(SIZE_HELP.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn fixed(setting: Option<&Setting>) -> Option<u64> {
        match setting {
            Some(Setting::Fixed(n)) => Some(*n),
            _ => None,
        }
    }

    fn error(args: TokenStream) -> String {
        match IsolatedArgs::parse(args) {
            Ok(_) => panic!("accepted"),
            Err(error) => error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn literals_become_numbers() {
        let args = IsolatedArgs::parse(quote!(
            timeout = "1.5 s",
            memory_limit = "0.5GiB",
            crate = "::renamed",
            zygote,
        ))
        .unwrap();
        assert_eq!(fixed(args.timeout.as_ref()), Some(1_500_000_000));
        assert_eq!(fixed(args.memory_limit.as_ref()), Some(1 << 29));
        assert!(args.krate.is_some());
        assert!(args.zygote.is_some());
        let args = IsolatedArgs::parse(quote!()).unwrap();
        assert!(args.timeout.is_none() && args.zygote.is_none());
        for (tokens, bytes) in [
            (quote!(memory_limit = 4096), 4096),
            (quote!(memory_limit = 4096u64), 4096),
            (quote!(memory_limit = 4_096_usize), 4096),
            (quote!(memory_limit = "4096"), 4096),
            (quote!(memory_limit = 0x1000), 4096),
        ] {
            let args = IsolatedArgs::parse(tokens).unwrap();
            assert_eq!(fixed(args.memory_limit.as_ref()), Some(bytes));
        }
    }

    #[test]
    fn other_expressions_are_kept_for_run_time() {
        let args = IsolatedArgs::parse(quote!(
            timeout = deadline,
            memory_limit = self.limit,
            isolate = &self.isolate,
        ))
        .unwrap();
        assert!(matches!(args.timeout, Some(Setting::Runtime(_))));
        assert!(matches!(args.memory_limit, Some(Setting::Runtime(_))));
        assert!(args.isolate.is_some());
    }

    #[test]
    fn messages_say_what_to_write() {
        assert!(error(quote!(timeout = 5)).contains("\"5s\""));
        assert!(error(quote!(timeout = "5")).contains("\"5s\""));
        assert!(error(quote!(timeout = 1.5)).contains("\"1.5s\""));
        assert!(error(quote!(timeout = 5s)).contains("in quotes: `timeout = \"5s\"`"));
        assert!(error(quote!(memory_limit = -1)).contains("cannot be negative"));
        assert!(error(quote!(memory_limit = 99999999999999999999)).contains("64 bits"));
        assert!(error(quote!(memory_limit = 64MiB)).contains("\"64MiB\""));
        assert!(error(quote!(foo::bar = "x")).contains("unknown argument `foo::bar`"));
        assert!(error(quote!(timeout)).contains("`timeout` needs a value"));
        assert!(error(quote!(zygote = true)).contains("takes no value"));
        assert!(error(quote!(isolate = 5)).contains("mem_isolate::Isolate"));
        assert!(error(quote!(timeout = "1s", timeout = "2s")).contains("more than once"));
        assert!(error(quote!(timout = "1s")).contains("expected one of"));
    }

    #[test]
    fn every_problem_is_reported() {
        let all = error(quote!(
            timeout = 5,
            memory_limit = "lots",
            bogus = 1,
            crate = 7,
            timeout,
            zygote,
            zygote,
        ));
        assert_eq!(all.lines().count(), 6, "{all}");
    }
}
