//! A hostile helper for `tests/attack.rs`: it starts the zygote first thing in
//! `main` (unless the scenario name starts with `direct-`), then runs the
//! scenario named by `argv[1]`. Each scenario prints `key=value` facts and
//! `FAIL ...` lines; it exits 0 only when no check failed, 3 when its
//! watchdog saw it hang.
//!
//! The worker functions here are the attackers: they vandalise every
//! descriptor and shared page they inherited, kill or stop the zygote, fork
//! grandchildren, exhaust descriptors, and so on.

#![allow(
    clippy::needless_pass_by_value,
    clippy::too_many_lines,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    clippy::missing_panics_doc,
    clippy::similar_names,
    clippy::items_after_statements,
    clippy::uninlined_format_args
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mem_isolate::errors::{
    CallableDidNotExecuteError as DidNotExecute, CallableExecutedError as Executed,
    CallableStatusUnknownError as Unknown,
};
use mem_isolate::{zygote, Isolate, MemIsolateError};

static STAGE: Mutex<String> = Mutex::new(String::new());
static FAILED: AtomicBool = AtomicBool::new(false);

fn stage(s: &str) {
    s.clone_into(&mut STAGE.lock().unwrap());
    println!("stage={s}");
}

macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            FAILED.store(true, Ordering::SeqCst);
            println!("FAIL {}", format!($($arg)*));
        }
    };
}

// ---------------------------------------------------------------------------
// OS helpers.

/// `(fd, target)` for every open descriptor of `pid`.
fn fds_of(pid: i32) -> Vec<(i32, String)> {
    let dir = format!("/proc/{pid}/fd");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let target = std::fs::read_link(e.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The directory handle read_dir itself holds.
        if target.ends_with(&format!("{pid}/fd")) || target.ends_with("/fd") {
            continue;
        }
        out.push((fd, target));
    }
    out.sort();
    out
}

fn self_pid() -> i32 {
    std::process::id() as i32
}

/// `(pid, state)` of every process whose parent is `ppid`.
fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut it = stat[close + 2..].split_whitespace();
        let state = it.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let parent: i32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
        if parent == ppid {
            out.push((pid, state));
        }
    }
    out.sort_unstable();
    out
}

fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    stat[close + 2..].chars().next()
}

fn ppid_of(pid: i32) -> i32 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return -1;
    };
    let close = stat.rfind(')').unwrap_or(0);
    stat[close + 2..]
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

fn send_signal(pid: i32, sig: i32) -> i32 {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) }
}

fn pidfd_open(pid: i32) -> i32 {
    // SAFETY: pidfd_open takes two integers and returns a descriptor or -1.
    unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32 }
}

fn close_fd(fd: i32) {
    // SAFETY: closing a descriptor number has no memory-safety preconditions.
    unsafe {
        libc::close(fd);
    }
}

fn set_nonblock(fd: i32) {
    // SAFETY: fcntl on an integer descriptor with integer arguments.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn write_fd(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: buf is valid for buf.len() bytes.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

fn fstat_mode(fd: i32) -> Option<u32> {
    // SAFETY: st is a valid out-pointer for fstat.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &raw mut st) == 0 {
            Some(st.st_mode & libc::S_IFMT)
        } else {
            None
        }
    }
}

/// Sends one datagram (or stream chunk) with `fds` attached, never blocking.
fn send_with_fds(sock: i32, payload: &[u8], fds: &[i32]) -> isize {
    let mut payload = payload.to_vec();
    if payload.is_empty() {
        payload.push(0);
    }
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: every pointer handed to sendmsg points into buffers that live
    // until it returns; the control buffer is sized with CMSG_SPACE.
    unsafe {
        let space = libc::CMSG_SPACE(fd_bytes) as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8) + 1];
        let mut iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: payload.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes as usize,
            );
        }
        libc::sendmsg(
            sock,
            &raw const msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    }
}

/// Forged payloads of many shapes: zeros, ones, a pid, small integers.
fn forged_payloads(pid: i32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for len in [
        0usize, 1, 4, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 96, 128, 256, 1024,
    ] {
        out.push(vec![0u8; len]);
        out.push(vec![0xffu8; len]);
        let mut p = Vec::with_capacity(len);
        while p.len() < len {
            p.extend_from_slice(&pid.to_le_bytes());
        }
        p.truncate(len);
        out.push(p);
        let mut q = Vec::with_capacity(len);
        let mut i = 0u32;
        while q.len() < len {
            q.extend_from_slice(&i.to_le_bytes());
            i += 1;
        }
        q.truncate(len);
        out.push(q);
    }
    out
}

/// Writes `pattern` over every writable shared mapping of this process.
/// Returns the number of bytes written.
fn scribble_shared_pages(pattern: u8) -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut total = 0;
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms)) = (it.next(), it.next()) else {
            continue;
        };
        if !(perms.starts_with("rw") && perms.ends_with('s')) {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // SAFETY: the range is a writable mapping of this process (from
        // /proc/self/maps); writing into it is the attack.
        unsafe {
            std::ptr::write_bytes(a as *mut u8, pattern, b - a);
        }
        total += b - a;
    }
    total
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn zombies_of(pid: i32) -> usize {
    children_of(pid).iter().filter(|(_, s)| *s == 'Z').count()
}

/// The caller's children other than the zygote.
fn non_zygote_children(zpid: i32) -> Vec<(i32, char)> {
    children_of(self_pid())
        .into_iter()
        .filter(|(p, _)| *p != zpid)
        .collect()
}

fn describe(e: &MemIsolateError) -> String {
    let mut s = format!("{e}");
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(" / ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn is_zygote_died(e: &MemIsolateError) -> bool {
    matches!(
        e,
        MemIsolateError::CallableStatusUnknown(Unknown::ZygoteDied)
    )
}

// ---------------------------------------------------------------------------
// Worker functions (the attackers and the victims).

fn square(n: u64) -> u64 {
    n * n
}

fn whoami(_: ()) -> (i32, i32, bool) {
    (self_pid(), ppid_of(self_pid()), zygote::is_running())
}

/// Lists the worker's descriptors.
fn fd_list(_: ()) -> Vec<(i32, String)> {
    fds_of(self_pid())
}

/// Sleeps `ms`, then returns a value derived from `tag`; records its pid.
fn sleeper((ms, tag, pidfile): (u64, u64, String)) -> u64 {
    if !pidfile.is_empty() {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&pidfile)
        {
            let _ = writeln!(f, "{}", self_pid());
        }
    }
    std::thread::sleep(Duration::from_millis(ms));
    tag.wrapping_mul(2_654_435_761).wrapping_add(17)
}

fn expected(tag: u64) -> u64 {
    tag.wrapping_mul(2_654_435_761).wrapping_add(17)
}

/// Writes garbage into every descriptor, sends forged datagrams with pidfds
/// of the caller and the zygote attached on every socket, sets `O_NONBLOCK`
/// everywhere and scribbles over every shared page. Returns what it found.
fn vandal(caller: i32) -> Vec<String> {
    let me = self_pid();
    let zyg = ppid_of(me);
    let found: Vec<String> = fds_of(me)
        .into_iter()
        .map(|(fd, t)| format!("{fd}:{t}"))
        .collect();
    let pidfd_caller = pidfd_open(caller);
    let pidfd_zyg = pidfd_open(zyg);
    let attach: Vec<i32> = [pidfd_caller, pidfd_zyg]
        .into_iter()
        .filter(|&f| f >= 0)
        .collect();
    let payloads = forged_payloads(caller);
    let garbage = vec![0xa5u8; 65536];
    for round in 0..3 {
        for fd in 0..1024 {
            if fd == pidfd_caller || fd == pidfd_zyg {
                continue;
            }
            let Some(mode) = fstat_mode(fd) else { continue };
            set_nonblock(fd);
            if mode == libc::S_IFSOCK {
                for p in &payloads {
                    send_with_fds(fd, p, &attach);
                    send_with_fds(fd, p, &attach[..1.min(attach.len())]);
                    send_with_fds(fd, p, &[]);
                }
            } else if mode == libc::S_IFIFO && fd > 2 {
                write_fd(fd, &garbage);
            }
        }
        scribble_shared_pages([0xff, 0x00, 0x01][round]);
        std::thread::sleep(Duration::from_millis(20));
    }
    found
}

/// Closes every descriptor, then returns.
fn close_everything(_: ()) -> u32 {
    for fd in 0..4096 {
        close_fd(fd);
    }
    11
}

/// `dup2`s a fresh pipe over every descriptor, then returns.
fn dup_over_everything(_: ()) -> u32 {
    let mut p = [0i32; 2];
    // SAFETY: p is a valid 2-int buffer for pipe.
    unsafe {
        libc::pipe(p.as_mut_ptr());
    }
    for fd in 0..1024 {
        if fd != p[0] && fd != p[1] {
            // SAFETY: dup2 on integers.
            unsafe {
                libc::dup2(p[0], fd);
            }
        }
    }
    12
}

/// Sends `sig` to the zygote (its parent), then returns after `ms`.
fn signal_parent((sig, ms): (i32, u64)) -> u32 {
    send_signal(ppid_of(self_pid()), sig);
    std::thread::sleep(Duration::from_millis(ms));
    13
}

/// Forks a grandchild that keeps the worker's descriptors for `secs`,
/// flooding them with garbage after 30 ms, and returns at once.
fn grandchild_holder(secs: u64) -> u32 {
    // SAFETY: fork in a single-threaded worker; the child only sleeps,
    // writes and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        std::thread::sleep(Duration::from_millis(30));
        let garbage = vec![0x5au8; 1 << 16];
        for fd in 3..256 {
            if fstat_mode(fd) == Some(libc::S_IFIFO) {
                set_nonblock(fd);
                write_fd(fd, &garbage);
            }
        }
        std::thread::sleep(Duration::from_secs(secs));
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(0) };
    }
    14
}

fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

fn abort_now(_: ()) -> u32 {
    std::process::abort()
}

fn big_string(n: usize) -> String {
    "x".repeat(n)
}

/// Opens descriptors until `EMFILE`, then returns a string of `n` bytes.
fn exhaust_fds(n: usize) -> (u32, String) {
    let mut count = 0;
    loop {
        // SAFETY: open with a NUL-terminated literal path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            break;
        }
        count += 1;
        if count > 1_000_000 {
            break;
        }
    }
    (count, "y".repeat(n))
}

/// Sets `O_NONBLOCK` on all descriptors, then returns `n` bytes.
fn nonblock_then_big(n: usize) -> String {
    for fd in 0..1024 {
        if fstat_mode(fd).is_some() {
            set_nonblock(fd);
        }
    }
    "z".repeat(n)
}

fn stop_self(_: ()) -> u32 {
    send_signal(self_pid(), libc::SIGSTOP);
    15
}

/// A worker that itself calls `call`: it has no zygote, so it forks directly.
fn nested(_: ()) -> (bool, u64, String) {
    let running = zygote::is_running();
    let v = Isolate::new().call(square, 9).unwrap_or(0);
    let req = match Isolate::new().require_zygote(true).call(square, 3) {
        Ok(v) => format!("ok {v}"),
        Err(e) => describe(&e),
    };
    (running, v, req)
}

/// A checksum of the argument bytes, for victims to verify.
fn checksum(v: Vec<u8>) -> u64 {
    v.iter().enumerate().fold(0u64, |a, (i, &b)| {
        a.wrapping_mul(31).wrapping_add(u64::from(b) ^ i as u64)
    })
}

fn victim_bytes(tag: u64) -> Vec<u8> {
    (0..40_000u64)
        .map(|i| (i.wrapping_mul(tag + 7) >> 3) as u8)
        .collect()
}

/// Lists its descriptors, then leaves a grandchild that for `ms` writes
/// garbage into every file, memfd and shared page it inherited (also through
/// a read-write reopen of `/proc/self/fd/N`).
fn big_arg_vandal((_v, ms): (Vec<u8>, u64)) -> Vec<(i32, String)> {
    let fds = fds_of(self_pid());
    let maps: Vec<String> = std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|p| p.ends_with('s'))
        })
        .map(str::to_owned)
        .collect();
    // SAFETY: fork in a single-threaded worker; the child writes and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let t = Instant::now();
        let garbage = vec![0xeeu8; 1 << 17];
        let mut reopened = Vec::new();
        for (fd, _) in &fds {
            let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
            // SAFETY: NUL-terminated path.
            let r = unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
            if r >= 0 {
                reopened.push(r);
            }
        }
        let mut round = 0u8;
        while t.elapsed() < Duration::from_millis(ms) {
            round = round.wrapping_add(1);
            for fd in (3..256).chain(reopened.iter().copied()) {
                if fstat_mode(fd) == Some(libc::S_IFREG) {
                    for off in [0i64, 8, 16, 4096, 32768] {
                        // SAFETY: garbage is valid for its length.
                        unsafe {
                            libc::pwrite(fd, garbage.as_ptr().cast(), garbage.len(), off);
                        }
                    }
                }
            }
            scribble_shared_pages(round);
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(0) };
    }
    let mut out = fds;
    for m in maps {
        out.push((-1, m));
    }
    out
}

// ---------------------------------------------------------------------------
// Scenarios.

struct Ctx {
    zpid: i32,
    caller_fds_before: usize,
    zygote_fds_before: Vec<(i32, String)>,
}

fn settle(ctx: &Ctx, label: &str, zygote_alive: bool) {
    let me = self_pid();
    let clean = wait_until(Duration::from_secs(3), || {
        non_zygote_children(ctx.zpid).is_empty() && zombies_of(me) == 0
    });
    let kids = children_of(me);
    println!("{label}.caller_children={kids:?}");
    check!(clean, "{label}: caller still has children/zombies {kids:?}");
    if zygote_alive {
        let zclean = wait_until(Duration::from_secs(3), || children_of(ctx.zpid).is_empty());
        let zk = children_of(ctx.zpid);
        println!("{label}.zygote_children={zk:?}");
        check!(zclean, "{label}: zygote still has children {zk:?}");
        let zf = fds_of(ctx.zpid);
        println!("{label}.zygote_fds={}", zf.len());
        check!(
            zf.len() == ctx.zygote_fds_before.len(),
            "{label}: zygote fds {:?} != before {:?}",
            zf,
            ctx.zygote_fds_before
        );
    }
    let ok = wait_until(Duration::from_secs(3), || {
        fds_of(me).len() <= ctx.caller_fds_before
    });
    let now = fds_of(me);
    println!(
        "{label}.caller_fds={} before={}",
        now.len(),
        ctx.caller_fds_before
    );
    check!(
        ok,
        "{label}: caller fds grew from {} to {}: {:?}",
        ctx.caller_fds_before,
        now.len(),
        now
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn pidfile(name: &str) -> String {
    let p = format!("/tmp/attack-probe-{}-{name}", self_pid());
    let _ = std::fs::remove_file(&p);
    p
}

fn read_pids(path: &str) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    matches!(state_of(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Runs `victims` threads of `per` calls each through the zygote while
/// `attack` runs; every victim result must be exactly right.
fn victims_while(
    threads: u64,
    per: u64,
    ms: u64,
    attack: impl FnOnce() + Send,
) -> (usize, usize, Vec<String>) {
    let ok = AtomicUsize::new(0);
    let bad = Mutex::new(Vec::new());
    let zdied = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let ok = &ok;
            let bad = &bad;
            let zdied = &zdied;
            s.spawn(move || {
                let iso = Isolate::new().timeout(Duration::from_secs(10));
                for i in 0..per {
                    let tag = t * 1000 + i;
                    let (r, el) = timed(|| iso.call(sleeper, (ms, tag, String::new())));
                    match r {
                        Ok(v) if v == expected(tag) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(v) => bad.lock().unwrap().push(format!(
                            "tag {tag}: WRONG VALUE {v} (want {})",
                            expected(tag)
                        )),
                        Err(e) if is_zygote_died(&e) => {
                            zdied.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => bad
                            .lock()
                            .unwrap()
                            .push(format!("tag {tag}: {} after {el:?}", describe(&e))),
                    }
                }
            });
        }
        s.spawn(attack);
    });
    (
        ok.into_inner(),
        zdied.into_inner(),
        bad.into_inner().unwrap(),
    )
}

fn run(scenario: &str, ctx: &Ctx) {
    let me = self_pid();
    match scenario {
        // What a worker holds: README says only its own pipe (and stdio).
        "worker-fds" => {
            stage("worker-fds");
            let mut lists = Vec::new();
            std::thread::scope(|s| {
                // Keep other calls in flight while the listing worker runs.
                for t in 0..3 {
                    s.spawn(move || {
                        let _ = Isolate::new().call(sleeper, (400, t, String::new()));
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
                lists.push(Isolate::new().call(fd_list, ()));
            });
            let l = lists.pop().unwrap();
            match l {
                Ok(l) => {
                    println!("worker_fds={l:?}");
                    let extra: Vec<_> = l.iter().filter(|(fd, _)| *fd > 2).collect();
                    check!(
                        extra.len() == 1 && extra[0].1.starts_with("pipe:"),
                        "worker holds more than its own pipe: {extra:?}"
                    );
                }
                Err(e) => check!(false, "fd_list call failed: {}", describe(&e)),
            }
            let (who, _) = timed(|| Isolate::new().call(whoami, ()));
            let (wpid, wppid, running) = who.unwrap();
            println!("worker_pid={wpid} worker_ppid={wppid} worker_sees_running={running}");
            check!(
                wppid == ctx.zpid,
                "worker's parent {wppid} is not the zygote {}",
                ctx.zpid
            );
            check!(!running, "is_running() is true inside a worker");
            settle(ctx, "worker-fds", true);
        }

        // A vandal worker attacks while victims call; one victim times out,
        // so its caller kills through whatever pidfd it holds.
        "vandal" => {
            stage("vandal");
            let pf = pidfile("vandal");
            let pf2 = pf.clone();
            let (ok, zd, bad) = victims_while(3, 8, 30, move || {
                for _ in 0..4 {
                    let r = Isolate::new()
                        .timeout(Duration::from_secs(10))
                        .call(vandal, self_pid());
                    match r {
                        Ok(found) => println!("vandal_found={found:?}"),
                        Err(e) => println!("vandal_err={}", describe(&e)),
                    }
                    // A victim that times out: killed through its pidfd.
                    let (r, el) = timed(|| {
                        Isolate::new()
                            .timeout(Duration::from_millis(200))
                            .call(sleeper, (5000, 1, pf2.clone()))
                    });
                    println!("timeout_victim={:?} in {el:?}", r.map_err(|e| describe(&e)));
                }
            });
            println!("victims_ok={ok} zygote_died={zd} bad={bad:?}");
            check!(bad.is_empty(), "victims corrupted: {bad:?}");
            check!(zd == 0, "ZygoteDied although nothing killed the zygote");
            check!(
                zygote::is_running(),
                "zygote no longer running after vandal"
            );
            for p in read_pids(&pf) {
                check!(!alive(p), "timed-out worker {p} still alive");
            }
            let r = Isolate::new().require_zygote(true).call(square, 5);
            check!(
                matches!(r, Ok(25)),
                "call after vandal: {:?}",
                r.map_err(|e| describe(&e))
            );
            settle(ctx, "vandal", true);
        }

        "close-dup" => {
            for (name, f) in [
                ("close_everything", close_everything as fn(()) -> u32),
                ("dup_over_everything", dup_over_everything),
            ] {
                stage(name);
                let (r, el) = timed(|| Isolate::new().timeout(Duration::from_secs(5)).call(f, ()));
                println!("{name}={:?} in {el:?}", r.map_err(|e| describe(&e)));
                check!(el < Duration::from_secs(3), "{name} took {el:?}");
                let r = Isolate::new().require_zygote(true).call(square, 6);
                check!(
                    matches!(r, Ok(36)),
                    "after {name}: {:?}",
                    r.map_err(|e| describe(&e))
                );
            }
            settle(ctx, "close-dup", true);
        }

        // A worker SIGKILLs the zygote while other calls are in flight.
        "worker-kills-zygote" => {
            stage("worker-kills-zygote");
            let pf = pidfile("wkz");
            let pf2 = pf.clone();
            let (ok, zd, bad) = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    victims_while(3, 6, 100, || {
                        std::thread::sleep(Duration::from_millis(150));
                        let (r, el) = timed(|| {
                            Isolate::new()
                                .timeout(Duration::from_secs(5))
                                .call(signal_parent, (libc::SIGKILL, 2000))
                        });
                        println!("killer_call={:?} in {el:?}", r.map_err(|e| describe(&e)));
                    })
                });
                // Long in-flight worker that must die with the zygote.
                let (r, el) = timed(|| {
                    Isolate::new()
                        .timeout(Duration::from_secs(20))
                        .call(sleeper, (10_000, 2, pf2.clone()))
                });
                println!("long_inflight={:?} in {el:?}", r.map_err(|e| describe(&e)));
                check!(
                    el < Duration::from_secs(5),
                    "long in-flight call took {el:?}"
                );
                h.join().unwrap()
            });
            println!("victims_ok={ok} zygote_died={zd} bad={bad:?}");
            check!(bad.is_empty(), "victims: {bad:?}");
            check!(
                !zygote::is_running(),
                "is_running() still true after zygote killed"
            );
            for p in read_pids(&pf) {
                let st = state_of(p);
                println!("inflight_worker {p} state={st:?} ppid={}", ppid_of(p));
                check!(!alive(p), "worker {p} outlived the zygote");
            }
            let zst = state_of(ctx.zpid);
            println!("zygote_state={zst:?}");
            let (r, el) = timed(|| Isolate::new().call(square, 7));
            println!("fallback={:?} in {el:?}", r.as_ref().map_err(describe));
            check!(matches!(r, Ok(49)), "fallback call failed");
            let r = Isolate::new().require_zygote(true).call(square, 7);
            check!(
                matches!(
                    r,
                    Err(MemIsolateError::CallableDidNotExecute(
                        DidNotExecute::ZygoteUnavailable(_)
                    ))
                ),
                "require_zygote after death: {:?}",
                r.map_err(|e| describe(&e))
            );
            let zombie = wait_until(Duration::from_secs(3), || state_of(ctx.zpid).is_none());
            check!(
                zombie,
                "dead zygote {} not reaped: state {:?}",
                ctx.zpid,
                state_of(ctx.zpid)
            );
            settle(ctx, "worker-kills-zygote", false);
        }

        // The caller's main thread kills the zygote while 6 threads call.
        "kill-zygote-midway" => {
            stage("kill-zygote-midway");
            let t0 = Instant::now();
            let (ok, zd, bad) = victims_while(6, 30, 15, || {
                std::thread::sleep(Duration::from_millis(400));
                println!("killing zygote {} at {:?}", ctx.zpid, t0.elapsed());
                send_signal(ctx.zpid, libc::SIGKILL);
            });
            println!(
                "victims_ok={ok} zygote_died={zd} bad={bad:?} total={:?}",
                t0.elapsed()
            );
            check!(bad.is_empty(), "victims: {bad:?}");
            check!(ok + zd == 180, "lost calls: ok {ok} + died {zd} != 180");
            check!(
                zd <= 6,
                "more ZygoteDied ({zd}) than calls that can be in flight (6)"
            );
            check!(!zygote::is_running(), "is_running() still true");
            let gone = wait_until(Duration::from_secs(3), || state_of(ctx.zpid).is_none());
            check!(
                gone,
                "zygote {} not reaped: {:?}",
                ctx.zpid,
                state_of(ctx.zpid)
            );
            settle(ctx, "kill-zygote-midway", false);
        }

        // is_running() right after an outside kill, before any call.
        "is-running-after-kill" => {
            stage("is-running-after-kill");
            check!(zygote::is_running(), "not running after start");
            send_signal(ctx.zpid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(200));
            let r = zygote::is_running();
            println!(
                "is_running_200ms_after_kill={r} zygote_state={:?}",
                state_of(ctx.zpid)
            );
            check!(
                !r,
                "is_running() true 200 ms after the zygote was SIGKILLed"
            );
            let (v, el) = timed(|| Isolate::new().call(square, 4));
            println!(
                "first_call_after_kill={:?} in {el:?}",
                v.as_ref().map_err(describe)
            );
            check!(
                matches!(v, Ok(16)),
                "first call after an idle kill must fall back"
            );
            println!("is_running_after_call={}", zygote::is_running());
            let gone = wait_until(Duration::from_secs(2), || state_of(ctx.zpid).is_none());
            check!(gone, "zygote {} left as {:?}", ctx.zpid, state_of(ctx.zpid));
        }

        // A worker SIGSTOPs the zygote.
        "stop-zygote" => {
            stage("stop-zygote: stopper");
            let (r, el) = timed(|| {
                Isolate::new()
                    .timeout(Duration::from_secs(3))
                    .call(signal_parent, (libc::SIGSTOP, 0))
            });
            println!("stopper={:?} in {el:?}", r.as_ref().map_err(describe));
            println!("zygote_state={:?}", state_of(ctx.zpid));
            stage("stop-zygote: timed call");
            let (r, el) = timed(|| {
                Isolate::new()
                    .timeout(Duration::from_secs(1))
                    .call(square, 3)
            });
            println!("timed_call={:?} in {el:?}", r.as_ref().map_err(describe));
            check!(
                el < Duration::from_millis(2100),
                "a call with a 1 s timeout took {el:?} with the zygote stopped"
            );
            stage("stop-zygote: untimed call");
            let done = Arc::new(AtomicBool::new(false));
            let d2 = done.clone();
            let h = std::thread::spawn(move || {
                let r = timed(|| Isolate::new().call(square, 4));
                d2.store(true, Ordering::SeqCst);
                r
            });
            let finished = wait_until(Duration::from_secs(5), || done.load(Ordering::SeqCst));
            // Reported here; checked (and found hanging) in stop-zygote-untimed.
            println!("untimed_call_finished_within_5s={finished}");
            println!("sending SIGCONT");
            send_signal(ctx.zpid, libc::SIGCONT);
            let finished = wait_until(Duration::from_secs(5), || done.load(Ordering::SeqCst));
            println!("untimed_call_finished_after_cont={finished}");
            if finished {
                let (r, el) = h.join().unwrap();
                println!("untimed_call={:?} in {el:?}", r.map_err(|e| describe(&e)));
            }
            let r = Isolate::new()
                .timeout(Duration::from_secs(3))
                .call(square, 5);
            println!(
                "after_cont={:?} running={}",
                r.as_ref().map_err(describe),
                zygote::is_running()
            );
            check!(matches!(r, Ok(25)), "after SIGCONT");
            settle(ctx, "stop-zygote", zygote::is_running());
        }

        // Grandchildren holding and flooding the result pipe.
        "grandchildren" => {
            stage("grandchildren");
            for i in 0..5 {
                let (r, el) = timed(|| {
                    Isolate::new()
                        .timeout(Duration::from_secs(5))
                        .call(grandchild_holder, 3)
                });
                println!(
                    "grandchild_holder[{i}]={:?} in {el:?}",
                    r.as_ref().map_err(describe)
                );
                check!(matches!(r, Ok(14)), "grandchild holder call {i}");
                check!(
                    el < Duration::from_secs(2),
                    "grandchild holder call took {el:?}"
                );
            }
            let (r, el) = timed(|| {
                Isolate::new()
                    .timeout(Duration::from_secs(5))
                    .call_with_usage(grandchild_holder, 3)
            });
            println!(
                "grandchild_holder_usage={:?} in {el:?}",
                r.as_ref().map(|x| x.0).map_err(describe)
            );
            check!(el < Duration::from_secs(2), "call_with_usage took {el:?}");
            // The zygote is the grandchildren's reaper? Wait for them to end.
            std::thread::sleep(Duration::from_secs(4));
            let zk = children_of(ctx.zpid);
            println!("zygote_children_after_grandchildren={zk:?}");
            settle(ctx, "grandchildren", true);
        }

        "levels" => {
            stage("levels");
            let iso = Isolate::new().timeout(Duration::from_secs(5));
            let r = iso.call(exit_with, 7);
            println!("exit7={:?}", r.as_ref().map_err(describe));
            check!(
                matches!(
                    r,
                    Err(MemIsolateError::CallableStatusUnknown(
                        Unknown::UnexpectedChildExitStatus(7)
                    ))
                ),
                "exit(7)"
            );
            let r = iso.call(exit_with, 0);
            println!("exit0={:?}", r.as_ref().map_err(describe));
            check!(
                matches!(
                    r,
                    Err(MemIsolateError::CallableStatusUnknown(
                        Unknown::CallableProcessDiedDuringExecution
                    ))
                ),
                "exit(0)"
            );
            let r = iso.call(abort_now, ());
            println!("abort={:?}", r.as_ref().map_err(describe));
            check!(
                matches!(
                    r,
                    Err(MemIsolateError::CallableStatusUnknown(
                        Unknown::ChildProcessKilledBySignal(libc::SIGABRT)
                    ))
                ),
                "abort"
            );
            let pf = pidfile("to");
            let (r, el) = timed(|| {
                Isolate::new()
                    .timeout(Duration::from_millis(300))
                    .call(sleeper, (30_000, 3, pf.clone()))
            });
            println!("timeout={:?} in {el:?}", r.as_ref().map_err(describe));
            check!(
                matches!(
                    r,
                    Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_)))
                ),
                "timeout level"
            );
            check!(el < Duration::from_millis(1300), "timeout took {el:?}");
            for p in read_pids(&pf) {
                check!(!alive(p), "timed-out worker {p} alive");
            }
            let (r, el) = timed(|| {
                Isolate::new()
                    .timeout(Duration::from_millis(300))
                    .call(stop_self, ())
            });
            println!("stop_self={:?} in {el:?}", r.as_ref().map_err(describe));
            check!(
                el < Duration::from_millis(1300),
                "self-stopped worker took {el:?}"
            );
            let r = Isolate::new()
                .max_result_size(1 << 20)
                .call(big_string, 8 << 20);
            println!(
                "too_large={:?}",
                r.as_ref().map(String::len).map_err(describe)
            );
            check!(
                matches!(
                    r,
                    Err(MemIsolateError::CallableExecuted(
                        Executed::ResultTooLarge { .. }
                    ))
                ),
                "ResultTooLarge"
            );
            let (r, el) = timed(|| Isolate::new().call(big_string, 32 << 20));
            println!(
                "big_ok={:?} in {el:?}",
                r.as_ref().map(String::len).map_err(describe)
            );
            check!(
                matches!(r.as_ref().map(String::len), Ok(n) if n == 32 << 20),
                "32 MiB result"
            );
            let r = Isolate::new().call(exhaust_fds, 4 << 20);
            println!(
                "exhaust_fds={:?}",
                r.as_ref().map(|(c, s)| (*c, s.len())).map_err(describe)
            );
            check!(r.is_ok(), "worker at EMFILE could not send its result");
            let r = Isolate::new()
                .timeout(Duration::from_secs(10))
                .call(nonblock_then_big, 8 << 20);
            println!(
                "nonblock_big={:?}",
                r.as_ref().map(String::len).map_err(describe)
            );
            check!(
                r.is_ok(),
                "worker that set O_NONBLOCK on its pipe could not send 8 MiB"
            );
            let r = Isolate::new().call(nested, ());
            println!("nested={r:?}");
            if let Ok((running, v, req)) = &r {
                check!(!running && *v == 81, "nested call in worker");
                check!(req.contains("no zygote"), "require_zygote in worker: {req}");
            }
            settle(ctx, "levels", true);
        }

        // The caller near its descriptor limit.
        "caller-emfile" => {
            stage("caller-emfile");
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid out-pointer.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
            let pf = pidfile("emfile");
            for slack in 0..6 {
                let base = fds_of(me).len() as u64;
                let new = libc::rlimit {
                    rlim_cur: base + 3 + slack,
                    rlim_max: lim.rlim_max,
                };
                // The limit is on the descriptor number: find the highest.
                let highest = fds_of(me).iter().map(|(f, _)| *f).max().unwrap_or(2) as u64;
                let new = libc::rlimit {
                    rlim_cur: new.rlim_cur.max(highest + 1),
                    ..new
                };
                // Fill every free slot below the limit but `slack`.
                // SAFETY: valid pointer.
                unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const new) };
                let mut held = Vec::new();
                loop {
                    // SAFETY: literal path.
                    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
                    if fd < 0 {
                        break;
                    }
                    held.push(fd);
                }
                for _ in 0..slack {
                    if let Some(fd) = held.pop() {
                        close_fd(fd);
                    }
                }
                let (r, el) = timed(|| {
                    Isolate::new()
                        .timeout(Duration::from_millis(500))
                        .call(sleeper, (100, slack, String::new()))
                });
                println!(
                    "slack{slack}.short={:?} in {el:?}",
                    r.as_ref().map_err(describe)
                );
                match &r {
                    Ok(v) => check!(*v == expected(slack), "slack {slack}: wrong value"),
                    Err(MemIsolateError::CallableDidNotExecute(_)) => {}
                    Err(e) => check!(false, "slack {slack}: wrong level {}", describe(e)),
                }
                let (r, el) = timed(|| {
                    Isolate::new()
                        .timeout(Duration::from_millis(300))
                        .call(sleeper, (5000, slack, pf.clone()))
                });
                println!(
                    "slack{slack}.timeout={:?} in {el:?}",
                    r.as_ref().map_err(describe)
                );
                check!(
                    el < Duration::from_millis(1300),
                    "slack {slack}: timed call took {el:?}"
                );
                for fd in held {
                    close_fd(fd);
                }
                // SAFETY: valid pointer.
                unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
                std::thread::sleep(Duration::from_millis(400));
                for p in read_pids(&pf) {
                    check!(!alive(p), "slack {slack}: timed-out worker {p} still alive");
                }
                let r = Isolate::new().require_zygote(true).call(square, slack);
                check!(
                    matches!(r, Ok(v) if v == slack * slack),
                    "slack {slack}: call after: {:?}",
                    r.map_err(|e| describe(&e))
                );
            }
            settle(ctx, "caller-emfile", true);
        }

        // Direct mode: children scribble over shared pages and pipes while
        // other threads' calls are in flight.
        "direct-vandal" => {
            stage("direct-vandal");
            let bad = Mutex::new(Vec::<String>::new());
            let okc = AtomicUsize::new(0);
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                for t in 0..3u64 {
                    let bad = &bad;
                    let okc = &okc;
                    s.spawn(move || {
                        for i in 0..40u64 {
                            let tag = t * 100 + i;
                            // Alternate: a value, a panic, a memory-limited value.
                            let r = match i % 3 {
                                0 => Isolate::new().execute(move || {
                                    std::thread::sleep(Duration::from_millis(5));
                                    Ok::<u64, String>(expected(tag))
                                }),
                                1 => Isolate::new().execute(move || -> Result<u64, String> {
                                    std::thread::sleep(Duration::from_millis(5));
                                    panic!("victim {tag}")
                                }),
                                _ => Isolate::new().memory_limit(256 << 20).execute(move || {
                                    std::thread::sleep(Duration::from_millis(5));
                                    Ok::<u64, String>(expected(tag))
                                }),
                            };
                            let good = match (i % 3, &r) {
                                (0 | 2, Ok(Ok(v))) => *v == expected(tag),
                                (
                                    1,
                                    Err(MemIsolateError::CallableExecuted(
                                        Executed::CallablePanicked(m),
                                    )),
                                ) => *m == format!("victim {tag}"),
                                _ => false,
                            };
                            if good {
                                okc.fetch_add(1, Ordering::SeqCst);
                            } else {
                                bad.lock().unwrap().push(format!(
                                    "tag {tag} kind {}: {:?}",
                                    i % 3,
                                    r.map_err(|e| describe(&e))
                                ));
                            }
                        }
                    });
                }
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) && n < 60 {
                        n += 1;
                        let r = Isolate::new().timeout(Duration::from_secs(5)).execute(|| {
                            let mut total = 0;
                            for round in 0..30u8 {
                                total += scribble_shared_pages(round.wrapping_mul(37));
                                for fd in 3..1024 {
                                    if fstat_mode(fd) == Some(libc::S_IFIFO) {
                                        set_nonblock(fd);
                                        write_fd(fd, &[round; 4096]);
                                    }
                                }
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            total
                        });
                        if n == 1 {
                            println!("direct_vandal_first={:?}", r.map_err(|e| describe(&e)));
                        }
                    }
                });
            });
            stop.store(true, Ordering::SeqCst);
            let bad = bad.into_inner().unwrap();
            println!("direct_ok={} bad={}", okc.load(Ordering::SeqCst), bad.len());
            for b in &bad {
                println!("direct_bad {b}");
            }
            check!(
                bad.is_empty(),
                "{} victim calls corrupted in direct mode",
                bad.len()
            );
            let clean = wait_until(Duration::from_secs(3), || children_of(me).is_empty());
            check!(clean, "children left: {:?}", children_of(me));
        }

        // Display texts of each level, for a reader.
        "display" => {
            stage("display");
            let errs = [
                Isolate::new().call(exit_with, 3).unwrap_err(),
                Isolate::new().call(abort_now, ()).unwrap_err(),
                Isolate::new()
                    .timeout(Duration::from_millis(50))
                    .call(sleeper, (2000, 0, String::new()))
                    .unwrap_err(),
                Isolate::new()
                    .max_result_size(10)
                    .call(big_string, 100)
                    .unwrap_err(),
            ];
            for e in &errs {
                println!("display: {e} | chain: {} | debug: {e:?}", describe(e));
            }
            settle(ctx, "display", true);
        }

        // A timed call made while the zygote is stopped: once the zygote
        // continues, does a worker start late, past the caller's limit, and
        // run beyond the caller's reach?
        "stop-zygote-late-worker" => {
            stage("stop-zygote-late-worker");
            let pf = pidfile("late");
            send_signal(ctx.zpid, libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(50));
            let (r, el) = timed(|| {
                Isolate::new()
                    .timeout(Duration::from_millis(500))
                    .call(sleeper, (4000, 9, pf.clone()))
            });
            println!(
                "stopped_timed_call={:?} in {el:?}",
                r.as_ref().map_err(describe)
            );
            send_signal(ctx.zpid, libc::SIGCONT);
            let cont = Instant::now();
            let mut lived = Duration::ZERO;
            while cont.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
                let p = read_pids(&pf);
                if !p.is_empty() && p.iter().all(|&q| !alive(q)) {
                    break;
                }
                lived = cont.elapsed();
            }
            println!("late_worker_alive_until={lived:?} after SIGCONT");
            let pids = read_pids(&pf);
            let live: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
            println!("late_workers={pids:?} alive_at_end={live:?}");
            check!(
                live.is_empty(),
                "worker(s) {live:?} still alive 5 s after SIGCONT"
            );
            check!(
                pids.is_empty(),
                "the callable of a call that had already returned TimedOut started after SIGCONT (worker {pids:?}) and ran for {lived:?}"
            );
            std::thread::sleep(Duration::from_millis(3500));
            settle(ctx, "stop-zygote-late-worker", true);
        }

        // The untimed half of stop-zygote on its own.
        "stop-zygote-untimed" => {
            stage("stop-zygote-untimed");
            send_signal(ctx.zpid, libc::SIGSTOP);
            let done = Arc::new(AtomicBool::new(false));
            let d2 = done.clone();
            let h = std::thread::spawn(move || {
                let r = timed(|| Isolate::new().call(square, 4));
                d2.store(true, Ordering::SeqCst);
                r
            });
            let finished = wait_until(Duration::from_secs(5), || done.load(Ordering::SeqCst));
            println!(
                "untimed_call_finished_within_5s={finished} zygote_state={:?}",
                state_of(ctx.zpid)
            );
            check!(finished, "a call without timeout blocks for as long as the zygote is stopped (5 s and counting)");
            send_signal(ctx.zpid, libc::SIGCONT);
            let (r, el) = h.join().unwrap();
            println!("untimed_call={:?} in {el:?}", r.map_err(|e| describe(&e)));
        }

        // Big arguments (memfd) and a grandchild scribbling over every file,
        // memfd and shared page it inherited while victims send big arguments.
        "bigargs-grandchild" => {
            stage("bigargs-grandchild");
            let bad = Mutex::new(Vec::<String>::new());
            let okc = AtomicUsize::new(0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..3 {
                        let r = Isolate::new()
                            .timeout(Duration::from_secs(5))
                            .call(big_arg_vandal, (vec![1u8; 100_000], 1500));
                        if i == 0 {
                            println!(
                                "big_arg_worker_fds_and_shared_maps={:?}",
                                r.map_err(|e| describe(&e))
                            );
                        }
                        std::thread::sleep(Duration::from_millis(300));
                    }
                });
                for t in 0..3u64 {
                    let bad = &bad;
                    let okc = &okc;
                    s.spawn(move || {
                        for i in 0..25u64 {
                            let tag = t * 100 + i;
                            let v = victim_bytes(tag);
                            let want = checksum(v.clone());
                            let r = Isolate::new()
                                .timeout(Duration::from_secs(5))
                                .call(checksum, v);
                            match r {
                                Ok(x) if x == want => {
                                    okc.fetch_add(1, Ordering::SeqCst);
                                }
                                other => bad.lock().unwrap().push(format!(
                                    "tag {tag}: {:?} want {want}",
                                    other.map_err(|e| describe(&e))
                                )),
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    });
                }
            });
            let bad = bad.into_inner().unwrap();
            println!("bigargs_ok={} bad={bad:?}", okc.load(Ordering::SeqCst));
            check!(bad.is_empty(), "big-argument victims corrupted: {bad:?}");
            std::thread::sleep(Duration::from_millis(1600));
            settle(ctx, "bigargs-grandchild", true);
        }

        // A thread keeps grabbing every free descriptor for a few ms at a
        // time while calls (some timing out) run: any step may fail, but at
        // the right level, in time, and never leaving a worker alive.
        "emfile-race" | "emfile-race-long" => {
            stage(scenario);
            let all_long = scenario == "emfile-race-long";
            let pf = pidfile("race");
            let stop = AtomicBool::new(false);
            let bad = Mutex::new(Vec::<String>::new());
            let counts = Mutex::new(BTreeMap::<String, usize>::new());
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid out-pointer.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
            let low = libc::rlimit {
                rlim_cur: 64,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: valid pointer.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const low) };
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut k = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        k += 1;
                        let mut held = Vec::new();
                        loop {
                            // SAFETY: literal path.
                            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
                            if fd < 0 {
                                break;
                            }
                            held.push(fd);
                        }
                        std::thread::sleep(Duration::from_micros(100 + (k % 7) * 60));
                        for fd in held {
                            close_fd(fd);
                        }
                        std::thread::sleep(Duration::from_micros(300 + (k % 5) * 400));
                    }
                });
                let hs: Vec<_> = (0..3u64)
                    .map(|t| {
                        let pf = pf.clone();
                        let bad = &bad;
                        let counts = &counts;
                        s.spawn(move || {
                            for i in 0..60u64 {
                                let tag = t * 100 + i;
                                let long = i % 4 == 0 || all_long;
                                let ms = if long { 3000 } else { 2 };
                                let (r, el) = timed(|| {
                                    Isolate::new().timeout(Duration::from_millis(300)).call(
                                        sleeper,
                                        (ms, tag, if long { format!("{pf}-{tag}") } else { String::new() }),
                                    )
                                });
                                if long {
                                    // How long does this call's worker outlive the call?
                                    let back = Instant::now();
                                    let own = format!("{pf}-{tag}");
                                    let mut outlived = Duration::ZERO;
                                    // The hog thread may hold every descriptor: read
                                    // the pid file until it opens; probe liveness with
                                    // kill(pid, 0), which needs none.
                                    let mut pids = Vec::new();
                                    while back.elapsed() < Duration::from_secs(3) {
                                        match std::fs::read_to_string(&own) {
                                            Ok(text) => {
                                                pids = text
                                                    .lines()
                                                    .filter_map(|l| l.trim().parse::<i32>().ok())
                                                    .collect();
                                            }
                                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                                            Err(_) => {
                                                std::thread::sleep(Duration::from_millis(1));
                                                continue;
                                            }
                                        }
                                        if pids.iter().any(|&q| send_signal(q, 0) == 0) {
                                            outlived = back.elapsed();
                                        } else if !pids.is_empty()
                                            || back.elapsed() > Duration::from_millis(500)
                                        {
                                            break;
                                        }
                                        std::thread::sleep(Duration::from_millis(5));
                                    }
                                    if outlived > Duration::from_millis(200) {
                                        let what = r.as_ref().map_or_else(describe, |v| format!("Ok({v})"));
                                        bad.lock().unwrap().push(format!(
                                            "tag {tag}: its worker {pids:?} outlived the call by {outlived:?} (call returned {what} after {el:?})"
                                        ));
                                    }
                                    let _ = std::fs::remove_file(&own);
                                }
                                let key = match &r {
                                    Ok(_) => "ok".to_owned(),
                                    Err(e) => describe(e),
                                };
                                *counts.lock().unwrap().entry(key).or_default() += 1;
                                if el > Duration::from_millis(1300) {
                                    bad.lock().unwrap().push(format!("tag {tag} took {el:?}"));
                                }
                                // Any error level may come from a step that
                                // ran out of descriptors; a value must be right.
                                if let Ok(v) = r {
                                    if long || v != expected(tag) {
                                        bad.lock()
                                            .unwrap()
                                            .push(format!("tag {tag} long={long}: Ok({v})"));
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                stop.store(true, Ordering::SeqCst);
            });
            // SAFETY: valid pointer.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
            for (k, n) in counts.into_inner().unwrap() {
                println!("race_outcome {n} x {k}");
            }
            let bad = bad.into_inner().unwrap();
            println!("race_bad={bad:?}");
            check!(bad.is_empty(), "emfile race: {bad:?}");
            std::thread::sleep(Duration::from_millis(500));
            let pids = read_pids(&pf);
            let live: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
            println!("race_long_workers={} alive={live:?}", pids.len());
            let t = Instant::now();
            while live.iter().any(|&p| alive(p)) && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !live.is_empty() {
                println!("race_survivors_died_after_further={:?}", t.elapsed());
            }
            check!(live.is_empty(), "timed-out workers still alive: {live:?}");
            println!("zygote_running={}", zygote::is_running());
            let r = Isolate::new().call(square, 8);
            check!(
                matches!(r, Ok(64)),
                "call after race: {:?}",
                r.map_err(|e| describe(&e))
            );
            std::thread::sleep(Duration::from_secs(3));
            settle(ctx, "emfile-race", zygote::is_running());
        }

        // New-user semantics of start().
        "start-twice" => {
            stage("start-twice");
            send_signal(ctx.zpid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(200));
            let r = zygote::start();
            println!(
                "start_after_death={:?}",
                r.as_ref().map_err(|e| (e.kind(), e.to_string()))
            );
            println!("running_after_restart={}", zygote::is_running());
        }
        "direct-start-after-execute" => {
            stage("direct-start-after-execute");
            let v = Isolate::new().execute(|| 1u8);
            println!("execute={v:?}");
            let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
            let r = zygote::start();
            println!(
                "threads={threads} start_after_execute={:?}",
                r.as_ref().map_err(|e| (e.kind(), e.to_string()))
            );
            println!("running={}", zygote::is_running());
        }

        // Direct mode: a child writes a well-formed forged frame (a `Value`
        // frame: one chunk holding the u64 42, the end, then the done mark) into every pipe it
        // inherited while other threads' calls are in flight. A victim that
        // returns Ok(42) got another child's forged value as its own.
        "direct-forge" => {
            stage("direct-forge");
            let forged: [u8; 11] = [0xA1, 1, 0, 0, 0, 42, 0, 0, 0, 0, 0xD0];
            let wrong = Mutex::new(Vec::<String>::new());
            let failed = AtomicUsize::new(0);
            let okc = AtomicUsize::new(0);
            let stop = AtomicBool::new(false);
            let forgers = AtomicUsize::new(0);
            std::thread::scope(|s| {
                let victims: Vec<_> = (0..3u64)
                    .map(|t| {
                        let wrong = &wrong;
                        let failed = &failed;
                        let okc = &okc;
                        s.spawn(move || {
                            for i in 0..150u64 {
                                let want = 1000 + t * 1000 + i;
                                let r = Isolate::new().timeout(Duration::from_secs(5)).execute(
                                    move || {
                                        std::thread::sleep(Duration::from_millis(3));
                                        want
                                    },
                                );
                                match r {
                                    Ok(v) if v == want => {
                                        okc.fetch_add(1, Ordering::SeqCst);
                                    }
                                    Ok(v) => wrong
                                        .lock()
                                        .unwrap()
                                        .push(format!("call wanting {want} returned Ok({v})")),
                                    Err(_) => {
                                        failed.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                s.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        forgers.fetch_add(1, Ordering::SeqCst);
                        let _ = Isolate::new()
                            .timeout(Duration::from_secs(5))
                            .execute(move || {
                                for _ in 0..20 {
                                    for fd in 3..1024 {
                                        if fstat_mode(fd) == Some(libc::S_IFIFO) {
                                            set_nonblock(fd);
                                            write_fd(fd, &forged);
                                        }
                                    }
                                    std::thread::sleep(Duration::from_micros(500));
                                }
                                0u64
                            });
                    }
                });
                for v in victims {
                    v.join().unwrap();
                }
                stop.store(true, Ordering::SeqCst);
            });
            let wrong = wrong.into_inner().unwrap();
            println!(
                "forge_ok={} forge_failed={} forge_wrong={} forgers={}",
                okc.load(Ordering::SeqCst),
                failed.load(Ordering::SeqCst),
                wrong.len(),
                forgers.load(Ordering::SeqCst)
            );
            for w in &wrong {
                println!("forge_wrong {w}");
            }
            check!(
                wrong.is_empty(),
                "{} calls returned a value forged by another call's child",
                wrong.len()
            );
        }

        // No hostility: calls with a 1 ms timeout. Does any worker start or
        // keep running after its call returned TimedOut?
        "tiny-timeout" => {
            stage("tiny-timeout");
            let pf = pidfile("tiny");
            let mut outcomes = BTreeMap::<String, usize>::new();
            for i in 0..30u64 {
                let r = Isolate::new()
                    .timeout(Duration::from_millis(1))
                    .call(sleeper, (3000, i, pf.clone()));
                let returned = Instant::now();
                let before = read_pids(&pf).len();
                *outcomes
                    .entry(r.map_or_else(|e| describe(&e), |_| "ok".into()))
                    .or_default() += 1;
                std::thread::sleep(Duration::from_millis(100));
                let pids = read_pids(&pf);
                let live: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
                let mut lived = returned.elapsed();
                while live.iter().any(|&p| alive(p)) && returned.elapsed() < Duration::from_secs(4)
                {
                    std::thread::sleep(Duration::from_millis(10));
                    lived = returned.elapsed();
                }
                if pids.len() > before || !live.is_empty() {
                    println!("call {i}: worker(s) {pids:?} alive until {lived:?} after the call returned");
                    println!(
                        "call {i}: {} worker(s) started after the call returned, {} alive {:?} later",
                        pids.len() - before,
                        live.len(),
                        returned.elapsed()
                    );
                }
                check!(
                    live.is_empty(),
                    "call {i}: worker(s) {live:?} alive 100 ms after TimedOut"
                );
                std::thread::sleep(Duration::from_secs(1));
                let _ = std::fs::remove_file(&pf);
            }
            println!("tiny_outcomes={outcomes:?}");
        }

        other => {
            println!("FAIL unknown scenario {other}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let fds_pre = fds_of(self_pid()).len();
    let mut zpid = -1;
    if !scenario.starts_with("direct-") {
        zygote::start().expect("zygote::start");
        let kids = children_of(self_pid());
        assert_eq!(
            kids.len(),
            1,
            "one child (the zygote) after start: {kids:?}"
        );
        zpid = kids[0].0;
        if scenario == "start-twice" {
            // Still single-threaded: only the zygote check can refuse.
            let r = zygote::start();
            println!(
                "second_start_single_threaded={:?}",
                r.as_ref().map_err(|e| (e.kind(), e.to_string()))
            );
            check!(
                matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists),
                "second start while single-threaded is not AlreadyExists"
            );
        }
    }
    let ctx = Ctx {
        zpid,
        caller_fds_before: fds_of(self_pid()).len(),
        zygote_fds_before: fds_of(zpid),
    };
    println!(
        "caller_fds_pre_start={fds_pre} after_start={} zygote={zpid} zygote_fds={:?}",
        ctx.caller_fds_before, ctx.zygote_fds_before
    );
    let limit: u64 = std::env::var("ATTACK_WATCHDOG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(limit));
        println!("HANG at stage {:?} after {limit}s", STAGE.lock().unwrap());
        let zp = zpid;
        if zp > 0 {
            println!("zygote_state={:?}", state_of(zp));
        }
        std::process::exit(3);
    });
    run(&scenario, &ctx);
    // The pid files the scenario's workers wrote.
    let prefix = format!("attack-probe-{}-", self_pid());
    for e in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if FAILED.load(Ordering::SeqCst) {
        println!("RESULT fail");
        std::process::exit(1);
    }
    println!("RESULT ok");
}
