//! Every function shape `#[isolated]` accepts, each run for real.

#![deny(warnings, clippy::pedantic)]

use std::fmt::Display;
use std::time::{Duration, Instant};

use mem_isolate::errors::CallableStatusUnknownError as Unknown;
use mem_isolate::{isolated, MemIsolateError};
use serde::{Deserialize, Serialize};

#[isolated]
fn free_fn(n: u32) -> u32 {
    n + 1
}

#[isolated]
fn returns_nothing(flag: bool) {
    if flag {
        return;
    }
    std::process::exit(5);
}

/// Doc comments and attributes survive.
#[isolated]
#[inline(never)]
#[must_use = "the result says whether it ran"]
pub fn documented() -> String {
    "documented".to_owned()
}

#[test]
fn free_functions() {
    assert_eq!(free_fn(1).unwrap(), 2);
    let unit: Result<(), MemIsolateError> = returns_nothing(true);
    unit.unwrap();
    assert!(matches!(
        returns_nothing(false),
        Err(MemIsolateError::CallableStatusUnknown(
            Unknown::UnexpectedChildExitStatus(5)
        ))
    ));
    assert_eq!(documented().unwrap(), "documented");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    count: u32,
}

impl Counter {
    #[isolated]
    fn get(&self) -> u32 {
        self.count
    }

    #[isolated]
    fn bump(&mut self) -> u32 {
        self.count += 10;
        self.count
    }

    #[isolated]
    fn into_count(self) -> u32 {
        self.count * 100
    }

    #[isolated]
    fn make(count: u32) -> Self {
        Self { count }
    }
}

#[test]
fn inherent_methods() {
    let mut counter = Counter { count: 1 };
    assert_eq!(counter.get().unwrap(), 1);
    assert_eq!(counter.bump().unwrap(), 11);
    assert_eq!(counter.count, 1, "the mutation happened in the child only");
    assert_eq!(counter.clone().into_count().unwrap(), 100);
    assert_eq!(Counter::make(7).unwrap(), Counter { count: 7 });
}

trait Describe {
    fn describe(&self, prefix: &str) -> Result<String, MemIsolateError>;
}

impl Describe for Counter {
    #[isolated]
    fn describe(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.count)
    }
}

#[test]
fn trait_impl_methods() {
    let counter = Counter { count: 3 };
    assert_eq!(counter.describe("count=").unwrap(), "count=3");
    let dynamic: &dyn Describe = &counter;
    assert_eq!(dynamic.describe("#").unwrap(), "#3");
}

#[isolated]
fn generic<T, U>(items: Vec<T>, extra: U) -> Vec<String>
where
    T: Display,
    U: Display + Copy,
{
    items.iter().map(|item| format!("{item}{extra}")).collect()
}

#[isolated]
fn generic_value<T: Serialize + for<'de> Deserialize<'de> + Clone>(value: T) -> (T, T) {
    (value.clone(), value)
}

#[isolated]
fn impl_trait_arg(shown: impl Display, times: usize) -> String {
    shown.to_string().repeat(times)
}

#[isolated]
fn pattern_args((a, b): (u32, u32), Counter { count }: Counter, [x, y]: [u8; 2]) -> u32 {
    a + b + count + u32::from(x) + u32::from(y)
}

#[isolated]
#[allow(clippy::needless_lifetimes)]
fn explicit_lifetimes<'a, 'b>(first: &'a str, second: &'b [u8]) -> usize {
    first.len() + second.len()
}

#[isolated]
fn elided_lifetimes(text: &str, counter: &Counter) -> String {
    format!("{text}{}", counter.count)
}

/// # Safety
///
/// `ptr` must point to a readable `u64`.
#[isolated]
unsafe fn unsafe_fn(ptr: *const u64) -> u64 {
    // SAFETY: the caller promises `ptr` is readable; the child has a copy of it.
    unsafe { *ptr }
}

#[test]
fn generics_patterns_lifetimes_unsafe() {
    assert_eq!(generic(vec![1, 2], '!').unwrap(), ["1!", "2!"]);
    assert_eq!(
        generic_value("x".to_owned()).unwrap(),
        ("x".to_owned(), "x".to_owned())
    );
    assert_eq!(impl_trait_arg(7, 3).unwrap(), "777");
    assert_eq!(
        pattern_args((1, 2), Counter { count: 3 }, [4, 5]).unwrap(),
        15
    );
    assert_eq!(explicit_lifetimes("abc", &[1, 2]).unwrap(), 5);
    assert_eq!(
        elided_lifetimes("n=", &Counter { count: 9 }).unwrap(),
        "n=9"
    );
    let value = 77u64;
    // SAFETY: `value` is a live u64.
    assert_eq!(unsafe { unsafe_fn(&raw const value) }.unwrap(), 77);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum ParseError {
    Empty,
    NotANumber(String),
}

#[isolated]
fn returns_result(text: &str) -> Result<u32, ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let n: u32 = text
        .parse()
        .map_err(|_| ParseError::NotANumber(text.to_owned()))?;
    Ok(n * 2)
}

#[isolated]
fn question_mark_on_option(values: Vec<u8>) -> Option<u8> {
    let first = values.first()?;
    Some(first + 1)
}

#[test]
fn results_and_early_returns_keep_their_meaning() {
    assert_eq!(returns_result("21").unwrap(), Ok(42));
    assert_eq!(returns_result("").unwrap(), Err(ParseError::Empty));
    assert_eq!(
        returns_result("x").unwrap(),
        Err(ParseError::NotANumber("x".into()))
    );
    assert_eq!(question_mark_on_option(vec![]).unwrap(), None);
    assert_eq!(question_mark_on_option(vec![1]).unwrap(), Some(2));
}

mod nested {
    pub mod deeper {
        use mem_isolate::isolated;

        #[isolated]
        pub fn from_a_module(n: u8) -> u8 {
            helper(n)
        }

        fn helper(n: u8) -> u8 {
            n * 3
        }

        #[isolated]
        pub(crate) fn crate_visible() -> [u8; 2] {
            [1, 2]
        }
    }
}

#[test]
fn functions_in_nested_modules() {
    assert_eq!(nested::deeper::from_a_module(5).unwrap(), 15);
    assert_eq!(nested::deeper::crate_visible().unwrap(), [1, 2]);
}

#[isolated(timeout = "300ms")]
fn sleeps_too_long() -> u8 {
    std::thread::sleep(Duration::from_secs(60));
    1
}

#[isolated(timeout = "2m")]
fn quick_with_a_timeout() -> u8 {
    2
}

#[isolated(memory_limit = "64 MiB")]
fn allocates(bytes: usize) -> usize {
    let v = vec![1u8; bytes];
    v.iter().map(|&b| usize::from(b)).sum()
}

#[isolated(timeout = "10s", memory_limit = "1 GiB")]
fn both_options() -> u8 {
    3
}

#[test]
fn the_timeout_really_kills() {
    let start = Instant::now();
    let err = sleeps_too_long().unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(limit)) if limit == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(300) + Duration::from_secs(1));
    assert_eq!(quick_with_a_timeout().unwrap(), 2);
    assert_eq!(both_options().unwrap(), 3);
}

#[test]
fn the_memory_limit_really_refuses() {
    assert_eq!(allocates(8 << 20).unwrap(), 8 << 20);
    let err = allocates(512 << 20).unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(s)) if s == libc::SIGABRT),
        "{err:?}"
    );
}

/// A trait in scope whose by-value methods share the runtime's names, for
/// every type (diesel's `RunQueryDsl::execute` is one): the expansion calls
/// the runtime by path, so none of them takes the call over.
mod hijack {
    use std::time::Duration;

    use mem_isolate::{isolated, MemIsolateError};

    pub trait Hijack: Sized {
        /// Runs `f` right here, in the caller's process.
        fn execute<F: FnOnce() -> T, T>(self, f: F) -> Result<T, MemIsolateError> {
            Ok(f())
        }
        fn timeout(self, _: Duration) -> Self {
            self
        }
        fn memory_limit(self, _: u64) -> Self {
            self
        }
    }

    impl<T> Hijack for T {}

    #[isolated]
    pub fn pid() -> u32 {
        std::process::id()
    }

    #[isolated(timeout = "300ms")]
    pub fn sleeps() -> u8 {
        std::thread::sleep(Duration::from_secs(60));
        1
    }
}

#[test]
fn a_trait_with_the_runtimes_method_names_changes_nothing() {
    use hijack::Hijack as _;
    // The trait is in scope and would be picked by method syntax.
    assert_eq!(7u8.timeout(Duration::ZERO).memory_limit(1), 7);
    assert_eq!(7u8.execute(std::process::id).unwrap(), std::process::id());

    assert_ne!(hijack::pid().unwrap(), std::process::id());
    let err = hijack::sleeps().unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(limit)) if limit == Duration::from_millis(300)),
        "{err:?}"
    );
}

/// `PhantomData<&T>` holds no borrow: it is not a borrowed return type.
#[isolated]
fn phantom_borrow() -> (u8, std::marker::PhantomData<&'static str>) {
    (9, std::marker::PhantomData)
}

#[test]
fn phantom_data_of_a_reference_is_returned() {
    assert_eq!(phantom_borrow().unwrap().0, 9);
}
