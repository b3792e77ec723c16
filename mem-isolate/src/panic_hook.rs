//! Keeps an isolated child off the program's panic hook.
//!
//! Before `catch_unwind` sees a panic, std runs the panic hook; the default
//! one takes std's output and backtrace locks, which another thread of the
//! parent may have held at `fork`: in the child they stay locked forever,
//! and a panicking callable would hang instead of reporting its panic. The
//! message travels back in the result frame anyway, so the crate installs,
//! before its first `fork`, a hook that wraps the program's and stays silent
//! in an isolated child. In every other process it calls the hook it
//! wrapped, so the program's panics print as before.
//!
//! A hook the program installs *after* its first isolated call replaces this
//! one (std keeps one hook), and then runs in the child too.
//!
//! In the child the hook also notes where the panic happened (file, line,
//! column) when the panicking thread is the one that runs the callable, so
//! the location travels back with the message (see [`panic_text`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::sys;

const NOT_INSTALLED: u8 = 0;
const INSTALLING: u8 = 1;
const INSTALLED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(NOT_INSTALLED);

/// The pid of the isolated child this process is, if it is one (set by the
/// child right after `fork`; a process forked from it has another pid).
static ISOLATED_CHILD: AtomicI32 = AtomicI32::new(0);

/// Parent side, before each `fork`: wraps the current hook once. Never
/// waits: a thread that finds another installing it goes on (its child may
/// then run the plain hook, as before this existed).
pub(crate) fn install() {
    if STATE.load(Ordering::Acquire) != NOT_INSTALLED || std::thread::panicking() {
        return;
    }
    if STATE
        .compare_exchange(
            NOT_INSTALLED,
            INSTALLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return;
    }
    let wrapped = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !in_isolated_child() {
            wrapped(info);
        } else if sys::is_first_thread() {
            if let Some(location) = info.location() {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or(NON_STRING_PAYLOAD);
                note_location(
                    location.file(),
                    location.line(),
                    location.column(),
                    message_hash(message),
                );
            }
        }
    }));
    STATE.store(INSTALLED, Ordering::Release);
}

/// Child side, right after `fork`.
pub(crate) fn mark_isolated_child() {
    ISOLATED_CHILD.store(sys::current_pid(), Ordering::Relaxed);
}

fn in_isolated_child() -> bool {
    ISOLATED_CHILD.load(Ordering::Relaxed) == sys::current_pid()
}

/// Bytes of a panic's file name kept (longer names are cut).
const FILE_MAX: usize = 512;

/// Where the callable's thread last panicked, in the child: written by the
/// hook (no lock, no allocation: a lock another thread held at `fork` may
/// be held forever), read by the same thread once `catch_unwind` returns.
static FILE: [AtomicU8; FILE_MAX] = [const { AtomicU8::new(0) }; FILE_MAX];
static FILE_LEN: AtomicUsize = AtomicUsize::new(0);
static LINE: AtomicU32 = AtomicU32::new(0);
static COLUMN: AtomicU32 = AtomicU32::new(0);
/// A hash of the message of the panic whose location is noted: a panic the
/// callable caught leaves its location behind, and a later panic that runs
/// no hook (`resume_unwind`) must not be reported at that location.
static MESSAGE_HASH: AtomicU64 = AtomicU64::new(0);

/// What [`crate::child::panic_message`] says of a payload that is not a string.
pub(crate) const NON_STRING_PAYLOAD: &str = "the panic payload is not a string (Box<dyn Any>)";

/// FNV-1a: no allocation, usable in the hook.
fn message_hash(message: &str) -> u64 {
    message.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn note_location(file: &str, line: u32, column: u32, message_hash: u64) {
    let bytes = file.as_bytes();
    let len = bytes.len().min(FILE_MAX);
    for (slot, byte) in FILE.iter().zip(&bytes[..len]) {
        // A line break would end the location's line in the panic text.
        slot.store(if *byte == b'\n' { b'?' } else { *byte }, Ordering::Relaxed);
    }
    FILE_LEN.store(len, Ordering::Relaxed);
    LINE.store(line, Ordering::Relaxed);
    COLUMN.store(column, Ordering::Relaxed);
    MESSAGE_HASH.store(message_hash, Ordering::Relaxed);
}

/// Marks the first line of a panic frame's text: the location follows.
const LOCATION_PREFIX: &str = "@";

/// Child side: the text of a panic frame: one line with the location the
/// hook noted (`@file:line:column`, or `@` alone when none was noted), then
/// the message. The noted location counts only if it was noted for a panic
/// with this message (not for an earlier one the callable caught).
pub(crate) fn panic_text(message: &str) -> String {
    let mut len = FILE_LEN.swap(0, Ordering::Relaxed);
    if MESSAGE_HASH.load(Ordering::Relaxed) != message_hash(message) {
        len = 0;
    }
    let mut text = String::with_capacity(LOCATION_PREFIX.len() + len + 24 + message.len());
    text.push_str(LOCATION_PREFIX);
    if len > 0 {
        let file: Vec<u8> = FILE[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        text.push_str(&String::from_utf8_lossy(&file));
        let (line, column) = (LINE.load(Ordering::Relaxed), COLUMN.load(Ordering::Relaxed));
        let _ = write!(text, ":{line}:{column}");
    }
    text.push('\n');
    text.push_str(message);
    text
}

/// Parent side: a panic frame's text split into the location (if the child
/// sent one) and the message. Text without the location line (which only a
/// forged frame has) is all message.
pub(crate) fn split_panic_text(text: &str) -> (Option<crate::PanicLocation>, &str) {
    let Some((first, message)) = text
        .strip_prefix(LOCATION_PREFIX)
        .and_then(|rest| rest.split_once('\n'))
    else {
        return (None, text);
    };
    let mut parts = first.rsplitn(3, ':');
    let (Some(column), Some(line), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return (None, message);
    };
    let location = match (line.parse(), column.parse()) {
        (Ok(line), Ok(column)) => Some(crate::PanicLocation {
            file: file.to_owned(),
            line,
            column,
        }),
        _ => None,
    };
    (location, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_odd_text_is_all_message() {
        let (location, message) = split_panic_text("@src/lib.rs:12:5\nboom\nsecond line");
        let location = location.unwrap();
        assert_eq!(
            (location.file.as_str(), location.line, location.column),
            ("src/lib.rs", 12, 5)
        );
        assert_eq!(message, "boom\nsecond line");
        // A file name with colons keeps them.
        let (location, _) = split_panic_text("@C:/src/a.rs:1:2\nm");
        assert_eq!(location.unwrap().file, "C:/src/a.rs");
        assert!(matches!(
            split_panic_text("@\nno location"),
            (None, "no location")
        ));
        assert!(matches!(split_panic_text("plain"), (None, "plain")));
        assert!(matches!(split_panic_text("@a:b:c\nm"), (None, "m")));
    }
}
