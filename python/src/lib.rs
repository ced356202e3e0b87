//! `shmchan._shmchan`: the Python module over the Rust library.
//!
//! The Python package `shmchan` (python/shmchan/) re-exports the classes
//! made here and defines the exceptions (`shmchan._errors`, pure Python:
//! each is a subclass of both `shmchan.Error` and a built-in such as
//! `TimeoutError`, which a class made in Rust cannot be).
//!
//! How the pieces fit:
//!
//! - [`handle`]: the lock around each Rust handle (Python threads may share
//!   a Python object; a Rust `Sender` or `Receiver` serves one thread at a
//!   time), and the blocking loop: the wait runs with the GIL released, in
//!   slices of [`handle::SLICE`], and between slices the thread takes the
//!   GIL back to run signal handlers (Ctrl-C), so no call blocks for longer
//!   than that without looking. A slice that ends consumed nothing (the
//!   library's `_deadline` calls take a message or room whole, or not at
//!   all), so an interrupted call loses no message.
//! - [`buffer`]: bytes-like arguments read and written in place through the
//!   buffer protocol.
//! - [`channel`], [`sender`], [`receiver`], [`key`]: the classes.
//! - [`errors`]: the library's `Error` as the package's exceptions.
//!
//! An `async` form (`recv_async`, `send_async`, `async for`) fits the same
//! shape: the fast path is the one below (a message or room that is there
//! is taken with the GIL held and no system call), and only the wait
//! changes, from a blocking slice to the Rust library's futures.
#![deny(unsafe_code)]

mod buffer;
mod channel;
mod errors;
mod handle;
mod key;
mod receiver;
mod sender;

use pyo3::prelude::*;

/// The module `shmchan._shmchan`; `import shmchan` re-exports all of it.
#[pymodule]
fn _shmchan(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<key::PyKey>()?;
    m.add_class::<channel::PyChannel>()?;
    m.add_class::<sender::PySender>()?;
    m.add_class::<sender::PySenderId>()?;
    m.add_class::<receiver::PyReceiver>()?;
    m.add("DEFAULT_CAPACITY", shmchan::DEFAULT_CAPACITY)?;
    m.add("MIN_CAPACITY", shmchan::MIN_CAPACITY)?;
    m.add("MAX_SENDERS", shmchan::MAX_SENDERS)?;
    m.add("FRAME_OVERHEAD", shmchan::FRAME_OVERHEAD)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
