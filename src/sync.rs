//! The atomics the ring and the wait protocol use: from `std`, or from loom
//! when the crate is built with `--cfg loom` to model-check them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
