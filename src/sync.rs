//! The atomics the ring and the wait protocol use: from `std`, or from loom
//! when the crate's own unit tests are built with `--cfg loom` to
//! model-check them. loom is a dev-dependency, so the switch is
//! `all(test, loom)`: a crate that depends on shmchan and is built with
//! `--cfg loom` for its own models gets the normal build.
//!
//! Every ordering the protocol depends on is written with [`ordering!`] or
//! [`seqcst_fence!`], naming its synchronisation [`Point`]. In a normal build
//! both macros expand to exactly `Ordering::X` and `fence(SeqCst)`: nothing
//! is added to the hot path. Under loom a model can weaken one point on
//! purpose ([`weaken::set`]) to show that the checker catches the bug that
//! follows (see `src/loom_model.rs` and docs/verification.md).

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// The helper thread's lock, condition variable and thread (`crate::helper`):
/// from `std`, or from loom under the models.
#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// A helper thread's handle.
#[cfg(all(test, loom))]
pub(crate) type JoinHandle = loom::thread::JoinHandle<()>;
/// A helper thread's handle.
#[cfg(not(all(test, loom)))]
pub(crate) type JoinHandle = std::thread::JoinHandle<()>;

/// Stack of a helper thread: it parks and wakes a task, nothing more.
#[cfg(not(all(test, loom)))]
const HELPER_STACK: usize = 64 * 1024;

/// Starts a helper thread named `name` with a small stack.
#[cfg(not(all(test, loom)))]
pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(HELPER_STACK)
        .spawn(f)
}

/// Starts a modelled helper thread.
#[cfg(all(test, loom))]
pub(crate) fn spawn(_name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle> {
    Ok(loom::thread::spawn(f))
}

/// A synchronisation point of the ring or the wait protocol, named so that
/// a model can weaken it (under loom only; a normal build ignores the name).
#[cfg(all(test, loom))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// F1, the SeqCst fence after the sleeper raises its waiting flag
    /// (`wait::announce`). Weakened: the fence is left out.
    AnnounceFence,
    /// F2, the SeqCst fence before the waker reads the waiting flag
    /// (`wait::notify`). Weakened: the fence is left out.
    NotifyFence,
    /// The Release store of `tail` that publishes a frame
    /// (`Producer::advance`). Weakened: Relaxed.
    TailRelease,
    /// The Release store of `head` that hands space back
    /// (`Consumer::advance`). Weakened: Relaxed.
    HeadRelease,
    /// The recall of a parked async helper before its handle waits on its
    /// own (`helper::Helper::recall`). Weakened: left out.
    Recall,
}

/// The switch a loom model uses to weaken one [`Point`].
#[cfg(all(test, loom))]
pub(crate) mod weaken {
    use std::cell::Cell;

    use super::{Ordering, Point};

    std::thread_local! {
        // loom runs every modelled thread of one model on the OS thread
        // that called `model`, so a thread-local is one switch per test.
        static WEAKENED: Cell<Option<Point>> = const { Cell::new(None) };
    }

    /// Weakens `point` (or nothing) for the models run on this thread.
    pub(crate) fn set(point: Option<Point>) {
        WEAKENED.with(|w| w.set(point));
    }

    /// Whether `point` is weakened.
    pub(crate) fn is(point: Point) -> bool {
        WEAKENED.with(|w| w.get()) == Some(point)
    }

    /// `strong`, or Relaxed while `point` is weakened.
    pub(crate) fn ordering(point: Point, strong: Ordering) -> Ordering {
        if is(point) { Ordering::Relaxed } else { strong }
    }
}

/// `Ordering::$ord`, the ordering of synchronisation point `$point`. Under
/// loom, Relaxed while a model weakens that point.
#[cfg(not(all(test, loom)))]
macro_rules! ordering {
    ($point:ident, $ord:ident) => {
        $crate::sync::Ordering::$ord
    };
}
#[cfg(all(test, loom))]
macro_rules! ordering {
    ($point:ident, $ord:ident) => {
        $crate::sync::weaken::ordering($crate::sync::Point::$point, $crate::sync::Ordering::$ord)
    };
}

/// `fence(SeqCst)` at synchronisation point `$point`. Under loom, left out
/// while a model weakens that point.
#[cfg(not(all(test, loom)))]
macro_rules! seqcst_fence {
    ($point:ident) => {
        $crate::sync::fence($crate::sync::Ordering::SeqCst)
    };
}
#[cfg(all(test, loom))]
macro_rules! seqcst_fence {
    ($point:ident) => {
        if !$crate::sync::weaken::is($crate::sync::Point::$point) {
            $crate::sync::fence($crate::sync::Ordering::SeqCst)
        }
    };
}

pub(crate) use {ordering, seqcst_fence};
