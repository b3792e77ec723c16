//! Events for the optional `tracing` feature; without it these expand to
//! nothing, arguments included.

/// A debug-level event (feature `tracing`).
macro_rules! debug {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::debug!($($arg)*);
        }
    };
}

pub(crate) use debug;
