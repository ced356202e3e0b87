//! The only code that calls libc: thin, safe wrappers over System V IPC.
//!
//! `unsafe` is allowed here because every System V call is an FFI call; each
//! wrapper turns the C sentinel (`-1`, `(void *)-1`) into an [`io::Error`]
//! carrying errno and hands back an owning or plain-data type, so that no
//! layer above needs `unsafe` to talk to the kernel. Each wrapper names the C
//! call and its man page.
#![allow(unsafe_code)]

mod errno;
mod key;
pub(crate) mod membarrier;
mod names;
mod sem;
mod shm;

pub(crate) use errno::{Fail, retry_on_intr};
pub use key::Key;
pub(crate) use names::{group_id, group_name, user_name};
pub(crate) use sem::{SemOp, SemSet, SemStat, sop};
pub(crate) use shm::{
    Mapping, ShmStat, shm_create, shm_lookup, shm_remove, shm_set_perm, shm_stat, split_mode,
};

use std::io;

/// Turns a C `int` result into `io::Result`, reading errno on `-1`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// What `IPC_SET` gives a segment or a semaphore set: its owner, its group
/// and its permission bits (the low nine; the kernel keeps the status
/// bits). The creator (`cuid`) stays whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Perm {
    /// Owner uid.
    pub(crate) uid: u32,
    /// Group gid.
    pub(crate) gid: u32,
    /// Permission bits; only `mode & 0o777` is used.
    pub(crate) mode: u32,
}

/// The calling process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// The time now, in whole seconds since the Unix epoch (0 for a clock set
/// before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The calling process's effective uid.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// SEMOPM, the most operations one `semop` may take here (the third field
/// of /proc/sys/kernel/sem); `None` when it cannot be read.
pub(crate) fn semopm() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/kernel/sem").ok()?;
    text.split_whitespace().nth(2)?.parse().ok()
}
