//! Status codes, the thread's last error, and the wrapper that keeps
//! every panic on the Rust side.
//!
//! `unsafe` here only in `#[unsafe(no_mangle)]`: the exported names are
//! the C interface, unique to this library (prefix `shmchan_`).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::io;
use std::panic::{self, AssertUnwindSafe};

use shmchan::Error;

/// What a call did: `SHMCHAN_OK`, or why it failed.
///
/// Codes 1 to 19 are the library's errors, one per variant of the Rust
/// `shmchan::Error`; codes from 100 are the C interface's own. After a
/// failure, `shmchan_last_error_message()` says more (the channel, the
/// system call) and `shmchan_last_errno()` gives the OS error number where
/// there is one. Values are stable; new codes may be added.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmchan_status {
    /// Success.
    SHMCHAN_OK = 0,
    /// No channel at that key or id (or it is being removed).
    SHMCHAN_E_NOT_FOUND = 1,
    /// `shmchan_create`: a segment or semaphore set already has that key.
    SHMCHAN_E_ALREADY_EXISTS = 2,
    /// The OS refused access (EACCES or EPERM: see `shmchan_last_errno`).
    SHMCHAN_E_PERMISSION_DENIED = 3,
    /// The segment at that key or id is not a shmchan channel.
    SHMCHAN_E_NOT_A_CHANNEL = 4,
    /// The channel has another layout version than this library.
    SHMCHAN_E_VERSION_MISMATCH = 5,
    /// Another live handle holds the role (the receiver, or every sender
    /// lane).
    SHMCHAN_E_ROLE_TAKEN = 6,
    /// The message is longer than the channel's maximum; nothing was sent.
    SHMCHAN_E_MESSAGE_TOO_LARGE = 7,
    /// `try_` send or reserve: no room right now.
    SHMCHAN_E_FULL = 8,
    /// `try_` receive: no message right now.
    SHMCHAN_E_EMPTY = 9,
    /// A `_timeout` call ran out of time.
    SHMCHAN_E_TIMEOUT = 10,
    /// The peer this handle has seen is gone (a receiver gets this only
    /// after every message is received). Not sticky: a new peer may attach.
    SHMCHAN_E_DISCONNECTED = 11,
    /// A removal refused a channel in use (not returned by this interface
    /// today: `shmchan_remove` removes under live parties).
    SHMCHAN_E_BUSY = 12,
    /// The channel was removed (`shmchan_remove`, `shmchan rm`, `ipcrm`).
    SHMCHAN_E_REMOVED = 13,
    /// The shared header or a frame failed validation; the handle is
    /// poisoned and every later call on it returns this again.
    SHMCHAN_E_CORRUPTED = 14,
    /// Typed values only (Rust's feature `serde`): never returned here.
    SHMCHAN_E_ENCODE = 15,
    /// Typed values only (Rust's feature `serde`): never returned here.
    SHMCHAN_E_DECODE = 16,
    /// Plain-old-data values only (Rust's feature `bytemuck`): never
    /// returned here.
    SHMCHAN_E_POD_MISMATCH = 17,
    /// Batches only (Rust's `send_batch`): never returned here.
    SHMCHAN_E_BATCH_INCOMPLETE = 18,
    /// Any other OS error: see `shmchan_last_errno`.
    SHMCHAN_E_OS = 19,
    /// The message is longer than the buffer: its length was stored in
    /// `*len`, and nothing was consumed (the next receive returns it).
    SHMCHAN_E_BUFFER_TOO_SMALL = 100,
    /// A required pointer argument is NULL: a handle, an out-parameter, or
    /// a buffer with a non-zero length.
    SHMCHAN_E_NULL = 101,
    /// The handle was closed, was never issued by this library, or is of
    /// another kind.
    SHMCHAN_E_CLOSED = 102,
    /// An argument or option is out of its range (see the function's
    /// comment): refused before any system call.
    SHMCHAN_E_INVALID_ARGUMENT = 103,
    /// A reservation (`shmchan_reserve`) or a message lent by
    /// `shmchan_recv_ref` is outstanding: commit, cancel or release it
    /// first. Also: commit, cancel or release with none outstanding.
    SHMCHAN_E_PENDING = 104,
    /// A bug in this library: a Rust panic was caught at the boundary.
    /// Close the handle; the message says where.
    SHMCHAN_E_INTERNAL = 105,
}

use shmchan_status::*;

/// A call's failure: the library's error, or the C interface's own.
/// Boxed, so that a call's `Result<(), Failure>` is one word: the fast
/// paths move no error-sized values around.
#[derive(Debug)]
pub(crate) struct Failure(Box<Why>);

#[derive(Debug)]
enum Why {
    Lib(Error),
    Api(shmchan_status, String),
}

impl From<Error> for Failure {
    #[cold]
    fn from(e: Error) -> Failure {
        Failure(Box::new(Why::Lib(e)))
    }
}

impl Failure {
    #[cold]
    fn api(code: shmchan_status, msg: String) -> Failure {
        Failure(Box::new(Why::Api(code, msg)))
    }

    pub(crate) fn null(what: &str) -> Failure {
        Failure::api(SHMCHAN_E_NULL, format!("{what} is NULL"))
    }

    pub(crate) fn closed(what: &str) -> Failure {
        let msg = format!("the {what} handle was closed, or is not a {what} handle");
        Failure::api(SHMCHAN_E_CLOSED, msg)
    }

    pub(crate) fn invalid(msg: String) -> Failure {
        Failure::api(SHMCHAN_E_INVALID_ARGUMENT, msg)
    }

    pub(crate) fn pending(msg: &str) -> Failure {
        Failure::api(SHMCHAN_E_PENDING, msg.to_owned())
    }

    pub(crate) fn too_small(len: usize, cap: usize) -> Failure {
        let msg = format!("the message has {len} bytes, the buffer {cap}; nothing was consumed");
        Failure::api(SHMCHAN_E_BUFFER_TOO_SMALL, msg)
    }

    pub(crate) fn too_many_handles(max: usize) -> Failure {
        let msg = format!("this process has {max} handles open, the most it can");
        Failure::api(SHMCHAN_E_INVALID_ARGUMENT, msg)
    }

    pub(crate) fn internal_table() -> Failure {
        Failure::api(SHMCHAN_E_INTERNAL, "handle table: slot missing".to_owned())
    }

    /// The status code, the message and the errno.
    fn parts(&self) -> (shmchan_status, String, c_int) {
        match &*self.0 {
            Why::Lib(e) => (code_of(e), e.to_string(), errno_of(e)),
            Why::Api(code, msg) => (*code, msg.clone(), 0),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Result<(), Failure>>() == std::mem::size_of::<usize>());

/// The code of a library error.
fn code_of(e: &Error) -> shmchan_status {
    match e {
        Error::NotFound { .. } => SHMCHAN_E_NOT_FOUND,
        Error::AlreadyExists { .. } => SHMCHAN_E_ALREADY_EXISTS,
        Error::PermissionDenied { .. } => SHMCHAN_E_PERMISSION_DENIED,
        Error::NotAChannel { .. } => SHMCHAN_E_NOT_A_CHANNEL,
        Error::VersionMismatch { .. } => SHMCHAN_E_VERSION_MISMATCH,
        Error::RoleTaken { .. } => SHMCHAN_E_ROLE_TAKEN,
        Error::MessageTooLarge { .. } => SHMCHAN_E_MESSAGE_TOO_LARGE,
        Error::Full => SHMCHAN_E_FULL,
        Error::Empty => SHMCHAN_E_EMPTY,
        Error::Timeout => SHMCHAN_E_TIMEOUT,
        Error::Disconnected => SHMCHAN_E_DISCONNECTED,
        Error::Busy { .. } => SHMCHAN_E_BUSY,
        Error::Removed { .. } => SHMCHAN_E_REMOVED,
        Error::Corrupted { .. } => SHMCHAN_E_CORRUPTED,
        Error::BatchIncomplete { .. } => SHMCHAN_E_BATCH_INCOMPLETE,
        // The library's own refusal of a value (max_senders out of range,
        // a path with a NUL): no system call failed.
        Error::Os { source, .. }
            if source.raw_os_error().is_none() && source.kind() == io::ErrorKind::InvalidInput =>
        {
            SHMCHAN_E_INVALID_ARGUMENT
        }
        Error::Os { .. } => SHMCHAN_E_OS,
        // The typed-value variants (Encode, Decode, PodMismatch) exist
        // when another crate of the build turns on the library's `serde`
        // or `bytemuck` feature; no C call reaches them. A variant added
        // later lands here too, until it gets a code of its own.
        _ => SHMCHAN_E_INTERNAL,
    }
}

/// The OS error number behind a library error, or 0.
fn errno_of(e: &Error) -> c_int {
    match e {
        Error::Os { source, .. } | Error::PermissionDenied { source, .. } => {
            source.raw_os_error().unwrap_or(0)
        }
        Error::BatchIncomplete { source, .. } => errno_of(source),
        _ => 0,
    }
}

/// The last failure of a call made on this thread.
struct LastError {
    message: CString,
    errno: c_int,
}

thread_local! {
    static LAST: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

fn set_last(message: String, errno: c_int) {
    // An interior NUL (from a path, say) would end the C string early:
    // shown as U+FFFD instead.
    let message = CString::new(message.replace('\0', "\u{fffd}")).unwrap_or_default();
    let _ = LAST.try_with(|l| *l.borrow_mut() = Some(LastError { message, errno }));
}

/// Runs one entry point: its `Ok` is `SHMCHAN_OK`, its failure a code
/// (remembered as the thread's last error), and a panic, caught here so
/// that it never unwinds into C, `SHMCHAN_E_INTERNAL`.
#[inline]
pub(crate) fn run(f: impl FnOnce() -> Result<(), Failure>) -> shmchan_status {
    // The status is made inside the closure, so that what crosses
    // `catch_unwind` (through memory) is one `c_int`: a `Result<(),
    // Failure>` there was stored in pieces and copied out whole, a
    // store-forwarding stall on every call.
    let body = AssertUnwindSafe(move || match f() {
        Ok(()) => SHMCHAN_OK,
        Err(failure) => record(&failure),
    });
    panic::catch_unwind(body).unwrap_or_else(record_panic)
}

#[cold]
#[inline(never)]
fn record(failure: &Failure) -> shmchan_status {
    let (code, message, errno) = failure.parts();
    set_last(message, errno);
    code
}

#[cold]
#[inline(never)]
fn record_panic(payload: Box<dyn std::any::Any + Send>) -> shmchan_status {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    set_last(format!("internal error in libshmchan: {what}"), 0);
    // The payload's own drop might panic; a second panic here would abort.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(payload)));
    SHMCHAN_E_INTERNAL
}

/// A short, constant description of a status code.
///
/// Returns a static string (never NULL, never to be freed); an unknown
/// code gives "unknown shmchan status code". Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn shmchan_strerror(code: c_int) -> *const c_char {
    let s: &'static std::ffi::CStr = match code {
        0 => c"success",
        1 => c"no such channel",
        2 => c"channel already exists",
        3 => c"permission denied",
        4 => c"not a shmchan channel",
        5 => c"layout version mismatch",
        6 => c"role already taken",
        7 => c"message too large",
        8 => c"channel is full",
        9 => c"channel is empty",
        10 => c"timed out",
        11 => c"peer disconnected",
        12 => c"channel in use",
        13 => c"channel was removed",
        14 => c"channel is corrupted",
        15 => c"could not encode a value",
        16 => c"could not decode a value",
        17 => c"plain-old-data size or alignment mismatch",
        18 => c"batch stopped before its end",
        19 => c"operating system error",
        100 => c"buffer too small for the message",
        101 => c"NULL argument",
        102 => c"handle closed or invalid",
        103 => c"invalid argument",
        104 => c"a reservation or lent message is outstanding",
        105 => c"internal error in libshmchan",
        _ => c"unknown shmchan status code",
    };
    s.as_ptr()
}

/// The message of the last call on this thread that failed: what failed
/// and on which channel, with the system call and errno for OS errors.
///
/// Returns "" if no call on this thread has failed. The string belongs to
/// the library and stays valid until the next failing call on this thread
/// (or the thread's exit): copy it to keep it. A successful call leaves it
/// as it was.
#[unsafe(no_mangle)]
pub extern "C" fn shmchan_last_error_message() -> *const c_char {
    let found = LAST.try_with(|l| match &*l.borrow() {
        // The CString's heap buffer stays put until the next set_last on
        // this thread replaces it.
        Some(last) => last.message.as_ptr(),
        None => c"".as_ptr(),
    });
    found.unwrap_or(c"".as_ptr())
}

/// The OS error number (errno) of the last call on this thread that
/// failed, or 0 if it had none (or no call has failed).
#[unsafe(no_mangle)]
pub extern "C" fn shmchan_last_errno() -> c_int {
    let found = LAST.try_with(|l| l.borrow().as_ref().map_or(0, |last| last.errno));
    found.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_string_and_unknown_ones_too() {
        for code in (0..=19).chain(100..=105) {
            // SAFETY: shmchan_strerror returns a static C string.
            let s = unsafe { std::ffi::CStr::from_ptr(shmchan_strerror(code)) };
            assert_ne!(s.to_bytes(), b"unknown shmchan status code", "{code}");
        }
        // SAFETY: as above.
        let s = unsafe { std::ffi::CStr::from_ptr(shmchan_strerror(-1)) };
        assert_eq!(s.to_bytes(), b"unknown shmchan status code");
    }

    #[test]
    fn a_panic_is_a_code_and_a_message() {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let code = run(|| panic!("boom"));
        panic::set_hook(prev);
        assert_eq!(code, SHMCHAN_E_INTERNAL);
        // SAFETY: a C string owned by this thread's last error.
        let msg = unsafe { std::ffi::CStr::from_ptr(shmchan_last_error_message()) };
        assert!(msg.to_string_lossy().contains("boom"));
    }
}
