//! The one place that reads errno: what a failed call means, named
//! ([`Fail`]), and the retry after a signal ([`retry_on_intr`]). Above
//! `sys`, code says "the set was removed" or "it would block", never
//! `EIDRM` or `EAGAIN`.

use std::io;

/// What a failed System V call means, in the words the layers above use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    /// `EINTR`: a signal arrived while the call slept.
    Interrupted,
    /// `EAGAIN`: an `IPC_NOWAIT` operation would have to wait, or a
    /// `semtimedop` ran out of time.
    WouldBlock,
    /// `EIDRM`, or `EINVAL` on an id: no such object (any more); it was
    /// removed, perhaps while the call waited.
    Removed,
    /// `ERANGE`: a semaphore would pass its maximum (SEMVMX, 32767); from
    /// a `getgr*_r` lookup, its buffer is too small.
    Range,
    /// `EEXIST`: `IPC_CREAT | IPC_EXCL` found an object at the key.
    Exists,
    /// `ENOENT`: no object has that key (from a `getgr*_r` lookup, as
    /// some NSS sources say it: no such group).
    NotFound,
    /// `EACCES` or `EPERM`: the permissions refuse it.
    Denied,
    /// Anything else (limits, memory, a bad argument).
    Other,
}

impl Fail {
    /// What `e` means.
    pub(crate) fn of(e: &io::Error) -> Fail {
        match e.raw_os_error() {
            Some(libc::EINTR) => Fail::Interrupted,
            Some(libc::EAGAIN) => Fail::WouldBlock,
            Some(libc::EIDRM | libc::EINVAL) => Fail::Removed,
            Some(libc::ERANGE) => Fail::Range,
            Some(libc::EEXIST) => Fail::Exists,
            Some(libc::ENOENT) => Fail::NotFound,
            Some(libc::EACCES | libc::EPERM) => Fail::Denied,
            _ => Fail::Other,
        }
    }
}

/// Calls `f` again for as long as it fails with `EINTR`.
///
/// For calls whose repetition means the same thing as the first try: a
/// `semop` that does not wait, or waits without a deadline. Not for a
/// timed wait (`semtimedop`), which must be retried with the time that
/// remains, nor where the caller counts its attempts.
pub(crate) fn retry_on_intr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if Fail::of(&e) == Fail::Interrupted => {}
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_named() {
        let of = |errno| Fail::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EIDRM), Fail::Removed);
        assert_eq!(of(libc::EINVAL), Fail::Removed);
        assert_eq!(of(libc::EPERM), Fail::Denied);
        assert_eq!(of(libc::ENOSPC), Fail::Other);
        assert_eq!(Fail::of(&io::Error::other("no errno")), Fail::Other);
    }

    #[test]
    fn retries_only_interruptions() {
        let mut calls = 0;
        let r: io::Result<()> = retry_on_intr(|| {
            calls += 1;
            match calls {
                1 | 2 => Err(io::Error::from_raw_os_error(libc::EINTR)),
                _ => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
            }
        });
        assert_eq!(
            (calls, r.map_err(|e| Fail::of(&e))),
            (3, Err(Fail::WouldBlock))
        );
    }
}
