//! `membarrier(2)`: the heavy half of an asymmetric fence.
//!
//! A waker that publishes an index and then reads its peer's waiting flag
//! needs a full fence between the two (store→load order), on every message.
//! With membarrier the waker only keeps the compiler from reordering, and
//! the sleeper, which is about to park anyway, pays for both:
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` runs a full memory barrier on every
//! CPU that is running a thread of a process registered with
//! `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` before it returns (a thread
//! that is not running is already in such a state: the context switch was
//! one). See wait.rs for the handshake built on it.

use std::io;
use std::sync::Mutex;

/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` from `<linux/membarrier.h>`.
const CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`.
const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// The process that registered (and its errno if registration failed): a
/// registration belongs to an address space, so a forked child registers
/// again.
static REGISTERED: Mutex<Option<(u32, Option<i32>)>> = Mutex::new(None);

fn membarrier(cmd: libc::c_int) -> io::Result<()> {
    // SAFETY: membarrier(2) takes a command, flags and a cpu id by value and
    // touches no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    // These two commands return 0 or -1.
    super::cvt(ret as libc::c_int).map(drop)
}

/// Registers this process as a target of global expedited barriers, once
/// per process (`membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)`).
///
/// # Errors
///
/// The errno of the registration (ENOSYS, EINVAL on a kernel without the
/// command, EPERM under a seccomp filter), remembered for the process.
pub(crate) fn register() -> io::Result<()> {
    let pid = super::pid();
    // A poisoned lock only means a panic elsewhere while holding it; the
    // cached value is a plain pair and still meaningful.
    let mut cached = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = match *cached {
        Some((who, outcome)) if who == pid => outcome,
        _ => {
            let outcome = membarrier(CMD_REGISTER_GLOBAL_EXPEDITED)
                .err()
                .map(|e| e.raw_os_error().unwrap_or(libc::EINVAL));
            *cached = Some((pid, outcome));
            outcome
        }
    };
    match outcome {
        None => Ok(()),
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// A full memory barrier on every running thread of every registered
/// process, this one included
/// (`membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`).
///
/// # Errors
///
/// The errno of the call.
pub(crate) fn barrier() -> io::Result<()> {
    membarrier(CMD_GLOBAL_EXPEDITED)
}
