//! Implementation detail of the `mem-isolate` crate.
