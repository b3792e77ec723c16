//! Expansion snapshots: each `tests/expand/NAME.rs` is expanded by
//! [`crate::expand::isolated`] and compared with the committed
//! `tests/expand/NAME.expanded.rs`, so the generated code cannot drift
//! unnoticed. After a deliberate change, refresh them with
//! `MEM_ISOLATE_BLESS=1 cargo test -p mem-isolate-macros snapshots` and
//! review the diff.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use syn::{Attribute, ImplItem, Item, Meta};

/// Removes the `#[isolated(..)]` attribute, returning its arguments.
fn take_isolated(attrs: &mut Vec<Attribute>) -> Option<TokenStream> {
    let index = attrs.iter().position(|a| a.path().is_ident("isolated"))?;
    Some(match attrs.remove(index).meta {
        Meta::List(list) => list.tokens,
        _ => TokenStream::new(),
    })
}

fn expand_file(source: &str) -> String {
    let mut file = syn::parse_file(source).expect("snapshot input parses");
    for item in &mut file.items {
        match item {
            Item::Fn(function) => {
                if let Some(args) = take_isolated(&mut function.attrs) {
                    let out = crate::expand::isolated(args, &function.to_token_stream());
                    *item = syn::parse2(out).expect("expansion is an item");
                }
            }
            Item::Impl(block) => {
                for member in &mut block.items {
                    if let ImplItem::Fn(method) = member {
                        if let Some(args) = take_isolated(&mut method.attrs) {
                            let out = crate::expand::isolated(args, &method.to_token_stream());
                            *member = syn::parse2(out).expect("expansion is an impl item");
                        }
                    }
                }
            }
            _ => {}
        }
    }
    prettyplease::unparse(&file)
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand")
}

#[test]
fn expansions_match_their_snapshots() {
    let bless = std::env::var_os("MEM_ISOLATE_BLESS").is_some();
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(snapshot_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "rs")
                && !p.to_string_lossy().ends_with(".expanded.rs")
        })
        .collect();
    entries.sort();
    for input in entries {
        let expected_path = input.with_extension("expanded.rs");
        let actual = expand_file(&std::fs::read_to_string(&input).unwrap());
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} drifted; expected:\n{expected}\nactual:\n{actual}\n(refresh with MEM_ISOLATE_BLESS=1)",
            expected_path.display()
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} snapshots found");
}
