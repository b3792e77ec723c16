//! `#[isolated(zygote)]`: the function's calls go through `Isolate::call`,
//! with the arguments (and `self`) sent serialized. Every shape runs for
//! real; without a running zygote, `call` forks the caller directly, with
//! the same results and errors.

#![deny(warnings, clippy::pedantic)]

use std::time::Duration;

use mem_isolate::errors::{CallableExecutedError, CallableStatusUnknownError as Unknown};
use mem_isolate::{isolated, DeserializeOwned, MemIsolateError, Serialize};
use serde::Deserialize;

#[isolated(zygote)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[isolated(zygote)]
fn pid() -> u32 {
    std::process::id()
}

#[isolated(zygote)]
fn nothing_returned(flag: bool) {
    if flag {
        return;
    }
    std::process::exit(4);
}

#[test]
fn free_functions() {
    assert_eq!(add(2, 3).unwrap(), 5);
    assert_ne!(pid().unwrap(), std::process::id());
    nothing_returned(true).unwrap();
    assert!(matches!(
        nothing_returned(false),
        Err(MemIsolateError::CallableStatusUnknown(
            Unknown::UnexpectedChildExitStatus(4)
        ))
    ));
}

#[isolated(zygote)]
fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

#[derive(Clone, Serialize, Deserialize)]
struct Scale {
    factor: u64,
    unit: String,
}

#[isolated(zygote)]
fn total(values: &[u64], scale: &Scale) -> String {
    format!(
        "{}{}",
        values.iter().sum::<u64>() * scale.factor,
        scale.unit
    )
}

#[isolated(zygote)]
fn appended(buffer: &mut String, suffix: &str) -> String {
    buffer.push_str(suffix);
    buffer.clone()
}

#[test]
fn borrowed_arguments_are_sent_as_owned_values() {
    assert_eq!(word_count("one two three").unwrap(), 3);
    let scale = Scale {
        factor: 10,
        unit: "kg".to_owned(),
    };
    assert_eq!(total(&[1, 2, 3], &scale).unwrap(), "60kg");
    let mut buffer = String::from("abc");
    assert_eq!(appended(&mut buffer, "def").unwrap(), "abcdef");
    assert_eq!(buffer, "abc", "the mutation happened in the child only");
}

#[isolated(zygote)]
fn largest<T: Ord + Clone + Serialize + DeserializeOwned>(items: Vec<T>) -> Option<T> {
    items.iter().max().cloned()
}

#[isolated(zygote)]
fn pair<A, B>(a: A, b: &B) -> (A, B)
where
    A: Serialize + DeserializeOwned,
    B: Clone + Serialize + DeserializeOwned,
{
    (a, b.clone())
}

/// The type parameter is known from the return type only.
#[isolated(zygote)]
fn made<T: Default + Serialize + DeserializeOwned>() -> T {
    T::default()
}

#[isolated(zygote)]
#[allow(clippy::needless_lifetimes)]
fn first_word<'a>(text: &'a str, fallback: &'static str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or(fallback)
        .to_owned()
}

#[test]
fn generic_functions() {
    assert_eq!(made::<u32>().unwrap(), 0);
    assert_eq!(made::<String>().unwrap(), "");
    assert_eq!(first_word("hello world", "-").unwrap(), "hello");
    assert_eq!(first_word("", "-").unwrap(), "-");
    assert_eq!(largest(vec![3, 9, 2]).unwrap(), Some(9));
    assert_eq!(
        largest(vec!["b".to_owned(), "a".to_owned()]).unwrap(),
        Some("b".to_owned())
    );
    assert_eq!(largest::<u8>(vec![]).unwrap(), None);
    assert_eq!(pair(1u8, &"x".to_owned()).unwrap(), (1, "x".to_owned()));
}

#[isolated(zygote)]
fn patterns((a, b): (u32, u32), mut n: u32, _: u8, [x, y]: [u8; 2]) -> u32 {
    n += a + b;
    n + u32::from(x) + u32::from(y)
}

#[test]
fn pattern_and_mut_arguments() {
    assert_eq!(patterns((1, 2), 3, 0, [4, 5]).unwrap(), 15);
}

#[isolated(zygote)]
fn panics(message: String) -> u8 {
    panic!("{message}");
}

#[isolated(zygote, timeout = "300ms")]
fn sleeps() -> u8 {
    std::thread::sleep(Duration::from_secs(60));
    1
}

#[isolated(zygote, timeout = limit)]
fn sleeps_for(limit: Duration, sleep: Duration) -> u8 {
    std::thread::sleep(sleep);
    2
}

#[test]
fn error_levels_and_options() {
    let err = panics("boom".to_owned()).unwrap_err();
    assert!(
        matches!(&err, MemIsolateError::CallableExecuted(CallableExecutedError::CallablePanicked(m)) if m.contains("boom")),
        "{err:?}"
    );
    let err = sleeps().unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(l)) if l == Duration::from_millis(300)),
        "{err:?}"
    );
    let err = sleeps_for(Duration::from_millis(200), Duration::from_secs(60)).unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(l)) if l == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_eq!(
        sleeps_for(Duration::from_secs(30), Duration::ZERO).unwrap(),
        2
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    count: u32,
    name: String,
}

impl Counter {
    fn helper(n: u32) -> u32 {
        n * 2
    }

    #[isolated(zygote)]
    fn get(&self) -> u32 {
        self.count
    }

    /// `self` in closures, macros and paths inside the body.
    #[isolated(zygote)]
    fn describe(&self, prefix: &str) -> String {
        let doubled: Vec<u32> = (0..2).map(|i| self.count + i).collect();
        format!(
            "{prefix}{}:{doubled:?}:{}",
            self.name,
            Self::helper(self.count)
        )
    }

    #[isolated(zygote)]
    fn bump(&mut self, by: u32) -> u32 {
        self.count += by;
        self.count
    }

    #[isolated(zygote)]
    fn into_name(self) -> String {
        self.name
    }

    #[isolated(zygote)]
    fn boxed(self: Box<Self>) -> u32 {
        self.count + 1
    }

    #[isolated(zygote)]
    fn make(count: u32) -> Self {
        Self {
            count,
            name: "made".to_owned(),
        }
    }
}

#[test]
fn methods() {
    let mut counter = Counter {
        count: 4,
        name: "c".to_owned(),
    };
    assert_eq!(counter.get().unwrap(), 4);
    assert_eq!(counter.describe("#").unwrap(), "#c:[4, 5]:8");
    assert_eq!(counter.bump(10).unwrap(), 14);
    assert_eq!(counter.count, 4, "the mutation happened in the child only");
    assert_eq!(Box::new(counter.clone()).boxed().unwrap(), 5);
    assert_eq!(counter.into_name().unwrap(), "c");
    assert_eq!(
        Counter::make(2).unwrap(),
        Counter {
            count: 2,
            name: "made".to_owned()
        }
    );
}

trait Describe {
    fn describe_twice(&self, times: usize) -> Result<String, MemIsolateError>;
}

impl Describe for Counter {
    #[isolated(zygote)]
    fn describe_twice(&self, times: usize) -> String {
        self.name.repeat(times)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Wrapper<T>(T);

impl<T: Clone + Serialize + DeserializeOwned> Wrapper<T> {
    #[isolated(zygote)]
    fn inner(&self) -> T {
        self.0.clone()
    }
}

#[test]
fn trait_impls_and_generic_impls() {
    let counter = Counter {
        count: 1,
        name: "ab".to_owned(),
    };
    assert_eq!(counter.describe_twice(2).unwrap(), "abab");
    let dynamic: &dyn Describe = &counter;
    assert_eq!(dynamic.describe_twice(3).unwrap(), "ababab");
    assert_eq!(Wrapper(7u64).inner().unwrap(), 7);
    assert_eq!(Wrapper("w".to_owned()).inner().unwrap(), "w");
}
