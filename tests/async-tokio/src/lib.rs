//! Tests of the runtime's `tokio` feature (see `tests/`). Nothing here.
