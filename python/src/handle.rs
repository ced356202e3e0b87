//! What every class shares: the lock around its Rust handle, timeouts,
//! and the blocking loop that releases the GIL and lets Ctrl-C through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use crate::errors;

/// The longest a blocking call waits with the GIL released before it
/// takes the GIL back to run signal handlers: the bound on how late
/// Ctrl-C (or `close()` from another thread) is seen, and on how many
/// times an idle waiter wakes (50 times a second).
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// How long a blocking call spins (then yields) before it parks: the
/// library's default (`Options::spin`). The first look of a blocking call
/// runs with no spin and a deadline already past, which is how the
/// library's `_deadline` calls look once without any system call (its
/// `try_` calls ask the kernel whether the peer is alive when they find
/// nothing); only then does the call spin and park, with the GIL
/// released. A blocking send's look also waits for the refill room, as
/// the library's blocking `send` does.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// A Rust handle shared by the Python threads that hold its object.
///
/// The Rust `Sender` and `Receiver` are `Send` but not `Sync`: one call at
/// a time. A call that finds the handle busy waits for it with the GIL
/// released (`lock_py_attached`), so the thread inside, which takes the
/// GIL back between slices, never waits for a thread that waits for it.
/// `close` marks the handle closing first, so that a call blocked in
/// another thread returns within a slice, and then drops it.
pub(crate) struct Handle<T> {
    slot: Mutex<Option<T>>,
    closing: AtomicBool,
    /// The class name, for the closed error.
    what: &'static str,
}

impl<T: Send> Handle<T> {
    pub(crate) fn new(value: T, what: &'static str) -> Handle<T> {
        Handle {
            slot: Mutex::new(Some(value)),
            closing: AtomicBool::new(false),
            what,
        }
    }

    /// Runs `f` on the handle, with the flag that says it is closing;
    /// `ValueError` once closed.
    pub(crate) fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut T, Closing<'_>) -> PyResult<R>,
    ) -> PyResult<R> {
        // A panic never happens under the lock (nothing here unwraps), and
        // the handle is whole between calls anyway: a poisoned lock is used.
        let mut slot = self
            .slot
            .lock_py_attached(py)
            .unwrap_or_else(PoisonError::into_inner);
        let closing = Closing {
            flag: &self.closing,
            what: self.what,
        };
        match slot.as_mut() {
            Some(value) => f(value, closing),
            None => Err(errors::closed(self.what)),
        }
    }

    /// Takes the handle out, waiting for a call in another thread to
    /// return (within a slice: it sees the closing flag); `None` when it
    /// was closed already.
    pub(crate) fn take(&self, py: Python<'_>) -> Option<T> {
        self.closing.store(true, Ordering::Relaxed);
        self.slot
            .lock_py_attached(py)
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Closes: drops the Rust handle (which leaves the channel) with the
    /// GIL released. Closing twice does nothing.
    pub(crate) fn close(&self, py: Python<'_>) {
        if let Some(value) = self.take(py) {
            py.detach(move || drop(value));
        }
    }

    /// Whether `close` has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
}

/// A handle's closing flag, as a blocking call sees it.
#[derive(Clone, Copy)]
pub(crate) struct Closing<'a> {
    flag: &'a AtomicBool,
    what: &'static str,
}

impl Closing<'_> {
    fn check(self) -> PyResult<()> {
        match self.flag.load(Ordering::Relaxed) {
            true => Err(errors::closed(self.what)),
            false => Ok(()),
        }
    }
}

/// How long a call may wait, from its `timeout` argument.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Not at all (`try_` calls).
    Now,
    /// Until the deadline, or for ever.
    Deadline(Option<Instant>),
}

impl Until {
    /// `timeout` in seconds: `None` (or infinity, or a time too far for an
    /// `Instant`) waits for ever; a negative or NaN one is a `ValueError`.
    pub(crate) fn from_timeout(timeout: Option<f64>) -> PyResult<Until> {
        let Some(secs) = timeout else {
            return Ok(Until::Deadline(None));
        };
        if secs.is_nan() || secs < 0.0 {
            return Err(PyValueError::new_err(format!(
                "timeout must be a non-negative number of seconds or None, not {secs}"
            )));
        }
        let deadline = Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| Instant::now().checked_add(d));
        Ok(Until::Deadline(deadline))
    }
}

/// An instant already past when any call looks (the module's first use):
/// the deadline of a first look that must not wait, without reading the
/// clock on every call.
pub(crate) fn past() -> Instant {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    *START
}

/// Waits in slices: `slice(end)` waits with the GIL released until `end`
/// at the latest and returns `Some` when done, `None` when its slice ran
/// out having consumed nothing. Between slices: `Timeout` once `deadline`
/// has passed, pending signal handlers run (`KeyboardInterrupt` raised
/// from here), and a handle closed by another thread stops the call.
pub(crate) fn in_slices<T>(
    py: Python<'_>,
    deadline: Option<Instant>,
    closing: Closing<'_>,
    mut slice: impl FnMut(Instant) -> PyResult<Option<T>>,
) -> PyResult<T> {
    loop {
        let now = Instant::now();
        let step = now.checked_add(SLICE).unwrap_or(now);
        let end = deadline.map_or(step, |d| d.min(step));
        if let Some(done) = slice(end)? {
            return Ok(done);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(errors::to_py(py, shmchan::Error::Timeout));
        }
        py.check_signals()?;
        closing.check()?;
    }
}

/// A slice's outcome: the library's `Timeout` (the slice ran out) is
/// `None`, any other error the exception.
pub(crate) fn slice_outcome<T>(py: Python<'_>, r: shmchan::Result<T>) -> PyResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(shmchan::Error::Timeout) => Ok(None),
        Err(e) => Err(errors::to_py(py, e)),
    }
}
