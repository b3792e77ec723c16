//! The messages between callers and the zygote: fixed little-endian
//! layouts, decoded with every field checked (a request may come from any
//! process that got hold of the channel; a reply is read by a caller that
//! trusts nothing).
//!
//! A request is one `SOCK_SEQPACKET` datagram on the shared channel with two
//! to five descriptors attached: the write end of the caller's result pipe,
//! the zygote's end of a reply socket made for this call, for arguments too
//! big for the datagram a memfd holding them, and, when the call captures
//! its output, the write ends of its stdout and stderr pipes. Replies go back
//! on the reply socket: `Started` (with the worker's pidfd attached), or
//! why not; then `Ended` once the zygote has reaped the worker.

/// Arguments up to this size travel inside the request datagram.
pub(crate) const INLINE_ARGS_MAX: usize = 32 * 1024;
const MAGIC: u32 = u32::from_le_bytes(*b"MIZ1");
pub(crate) const REQUEST_HEADER_LEN: usize = 40;
pub(crate) const REPLY_LEN: usize = 48;

const FLAG_MEMORY_LIMIT: u8 = 1;
const FLAG_ARGS_IN_MEMFD: u8 = 2;
const FLAG_CAPTURE_OUTPUT: u8 = 4;

/// What a caller asks the zygote to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    /// The worker's entry point, as an offset from the anchor function.
    pub(crate) entry_offset: i64,
    /// The user's function, as an offset from the anchor function.
    pub(crate) function_offset: i64,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) args_len: u64,
    pub(crate) args_in_memfd: bool,
    /// The write ends of two capture pipes follow the other descriptors:
    /// the worker's stdout and stderr.
    pub(crate) capture_output: bool,
}

impl Request {
    /// How many descriptors come with this request.
    pub(crate) fn fd_count(&self) -> usize {
        2 + usize::from(self.args_in_memfd) + 2 * usize::from(self.capture_output)
    }

    /// The datagram: header, then the arguments if they travel inline.
    pub(crate) fn encode(&self, inline_args: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&self.entry_offset.to_le_bytes());
        out.extend_from_slice(&self.function_offset.to_le_bytes());
        out.extend_from_slice(&self.memory_limit.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.args_len.to_le_bytes());
        let mut flags = 0;
        if self.memory_limit.is_some() {
            flags |= FLAG_MEMORY_LIMIT;
        }
        if self.args_in_memfd {
            flags |= FLAG_ARGS_IN_MEMFD;
        }
        if self.capture_output {
            flags |= FLAG_CAPTURE_OUTPUT;
        }
        out.extend_from_slice(&[flags, 0, 0, 0]);
        debug_assert_eq!(out.len(), REQUEST_HEADER_LEN);
        out.extend_from_slice(inline_args);
    }

    /// The request and its inline arguments, if the datagram is well formed.
    pub(crate) fn decode(datagram: &[u8]) -> Option<(Self, &[u8])> {
        let (header, inline) = datagram.split_at_checked(REQUEST_HEADER_LEN)?;
        if u32_at(header, 0) != MAGIC {
            return None;
        }
        let flags = header[36];
        if flags & !(FLAG_MEMORY_LIMIT | FLAG_ARGS_IN_MEMFD | FLAG_CAPTURE_OUTPUT) != 0 {
            return None;
        }
        let request = Self {
            entry_offset: i64::from_le_bytes(header[4..12].try_into().ok()?),
            function_offset: i64::from_le_bytes(header[12..20].try_into().ok()?),
            memory_limit: (flags & FLAG_MEMORY_LIMIT != 0).then(|| u64_at(header, 20)),
            args_len: u64_at(header, 28),
            args_in_memfd: flags & FLAG_ARGS_IN_MEMFD != 0,
            capture_output: flags & FLAG_CAPTURE_OUTPUT != 0,
        };
        let consistent = if request.args_in_memfd {
            inline.is_empty()
        } else {
            inline.len() as u64 == request.args_len
        };
        consistent.then_some((request, inline))
    }
}

/// What the zygote tells a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The worker runs; its pidfd is attached.
    Started { pid: i32 },
    /// The zygote could not fork (`errno`).
    ForkFailed { errno: i32 },
    /// The request was malformed, or named code outside the program.
    Rejected,
    /// The worker ended: its wait status, usage, and what the crate's code
    /// in it recorded (see `report`).
    Ended {
        status: i32,
        user_micros: u64,
        system_micros: u64,
        max_rss_kib: u64,
        failure_code: u32,
        failure_errno: i32,
    },
}

const STARTED: u8 = 1;
const FORK_FAILED: u8 = 2;
const REJECTED: u8 = 3;
const ENDED: u8 = 4;

impl Reply {
    pub(crate) fn encode(&self) -> [u8; REPLY_LEN] {
        let mut out = [0u8; REPLY_LEN];
        match *self {
            Self::Started { pid } => {
                out[0] = STARTED;
                out[4..8].copy_from_slice(&pid.to_le_bytes());
            }
            Self::ForkFailed { errno } => {
                out[0] = FORK_FAILED;
                out[4..8].copy_from_slice(&errno.to_le_bytes());
            }
            Self::Rejected => out[0] = REJECTED,
            Self::Ended {
                status,
                user_micros,
                system_micros,
                max_rss_kib,
                failure_code,
                failure_errno,
            } => {
                out[0] = ENDED;
                out[4..8].copy_from_slice(&status.to_le_bytes());
                out[8..16].copy_from_slice(&user_micros.to_le_bytes());
                out[16..24].copy_from_slice(&system_micros.to_le_bytes());
                out[24..32].copy_from_slice(&max_rss_kib.to_le_bytes());
                out[32..36].copy_from_slice(&failure_code.to_le_bytes());
                out[36..40].copy_from_slice(&failure_errno.to_le_bytes());
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != REPLY_LEN {
            return None;
        }
        let i32_at = |at: usize| {
            i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Some(match bytes[0] {
            STARTED => Self::Started { pid: i32_at(4) },
            FORK_FAILED => Self::ForkFailed { errno: i32_at(4) },
            REJECTED => Self::Rejected,
            ENDED => Self::Ended {
                status: i32_at(4),
                user_micros: u64_at(bytes, 8),
                system_micros: u64_at(bytes, 16),
                max_rss_kib: u64_at(bytes, 24),
                failure_code: u32_at(bytes, 32),
                failure_errno: i32_at(36),
            },
            _ => return None,
        })
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_lies_are_refused() {
        let request = Request {
            entry_offset: -4096,
            function_offset: 123_456,
            memory_limit: Some(64 << 20),
            args_len: 3,
            args_in_memfd: false,
            capture_output: true,
        };
        let mut datagram = Vec::new();
        request.encode(&[1, 2, 3], &mut datagram);
        assert_eq!(
            Request::decode(&datagram),
            Some((request, &[1u8, 2, 3][..]))
        );
        // A length that does not match the inline bytes, a bad magic, unknown
        // flags, a short header: refused.
        assert_eq!(Request::decode(&datagram[..datagram.len() - 1]), None);
        let mut bad = datagram.clone();
        bad[0] ^= 1;
        assert_eq!(Request::decode(&bad), None);
        let mut bad = datagram.clone();
        bad[36] = 0x80;
        assert_eq!(Request::decode(&bad), None);
        assert_eq!(Request::decode(&datagram[..10]), None);
    }

    #[test]
    fn the_descriptor_count_follows_the_flags() {
        let mut request = Request {
            entry_offset: 0,
            function_offset: 0,
            memory_limit: None,
            args_len: 0,
            args_in_memfd: false,
            capture_output: false,
        };
        assert_eq!(request.fd_count(), 2);
        request.args_in_memfd = true;
        assert_eq!(request.fd_count(), 3);
        request.capture_output = true;
        assert_eq!(request.fd_count(), 5);
        assert!(request.fd_count() <= crate::sys::MAX_FDS);
        let mut datagram = Vec::new();
        request.encode(&[], &mut datagram);
        assert_eq!(Request::decode(&datagram).map(|(r, _)| r), Some(request));
    }

    #[test]
    fn replies_round_trip_and_garbage_is_refused() {
        for reply in [
            Reply::Started { pid: 42 },
            Reply::ForkFailed { errno: 11 },
            Reply::Rejected,
            Reply::Ended {
                status: 0x0600,
                user_micros: 1,
                system_micros: 2,
                max_rss_kib: 3,
                failure_code: 4,
                failure_errno: 12,
            },
        ] {
            assert_eq!(Reply::decode(&reply.encode()), Some(reply));
        }
        assert_eq!(Reply::decode(&[9; REPLY_LEN]), None);
        assert_eq!(Reply::decode(&[1; 3]), None);
    }
}
