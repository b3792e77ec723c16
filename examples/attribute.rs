//! `#[isolated]`: write an ordinary function, call it, get a `Result`.
//!
//! `cargo run --example attribute`

use std::collections::BTreeMap;

use mem_isolate::{isolated, MemIsolateError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct WordCount {
    words: usize,
    most_common: Option<(String, usize)>,
}

/// Counts words; runs in a child process with a timeout and a memory cap.
#[isolated(timeout = "5s", memory_limit = "256 MiB")]
fn count_words(text: String) -> WordCount {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_default() += 1;
    }
    // A leak here would stay in the child.
    std::mem::forget(vec![0u8; 64 << 20]);
    WordCount {
        words: counts.values().sum(),
        most_common: counts
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(w, n)| ((*w).to_owned(), *n)),
    }
}

struct Parser {
    strict: bool,
}

impl Parser {
    /// Methods work too; `?` inside the body keeps its meaning.
    #[isolated]
    fn parse_number(&self, text: &str) -> Result<i64, String> {
        let trimmed = if self.strict { text } else { text.trim() };
        let n: i64 = trimmed.parse().map_err(|e| format!("{trimmed:?}: {e}"))?;
        Ok(n)
    }
}

#[isolated(timeout = "200ms")]
fn never_finishes() -> u8 {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn main() -> Result<(), MemIsolateError> {
    let counted = count_words("the cat saw the other cat and the dog".to_owned())?;
    println!("{counted:?}");

    let parser = Parser { strict: false };
    println!("parsed: {:?}", parser.parse_number(" 42 ")?);
    println!("parsed: {:?}", parser.parse_number("forty-two")?);

    match never_finishes() {
        Ok(_) => unreachable!(),
        Err(e) => println!(
            "never_finishes: {e} ({})",
            std::error::Error::source(&e).unwrap()
        ),
    }
    Ok(())
}
