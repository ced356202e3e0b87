//! Receivers: receive into the caller's buffer (a buffer too small
//! consumes nothing), with or without the sender's id, and the zero-copy
//! `shmchan_recv_ref` and `shmchan_release`; each in its three forms.
//!
//! `unsafe` here: entry points read C's pointers (see `arg`) and look
//! their handle up (`handle`); and the message being looked at, a guard
//! that borrows the receiver, is kept beside it in the handle (`Rx`), the
//! receiver boxed so that it does not move.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use shmchan::{Receiver, RecvGuard};

use crate::arg;
use crate::handle::{self, Handled};
use crate::sender::shmchan_sender_id;
use crate::status::{Failure, run, shmchan_status};

/// The receiving side of a channel: one per channel at a time.
///
/// Threads: one thread at a time. A receiver may move to another thread
/// between calls (hand it over with the usual synchronisation); two calls
/// on one receiver must never overlap, and closing it must not race with
/// another call on it. Not fork-safe: a child made by `fork` opens its
/// own.
pub struct shmchan_receiver {
    _opaque: [u8; 0],
}

/// What a receiver handle owns: the receiver, and the message it holds
/// (lent by `shmchan_recv_ref`, or kept back because it did not fit the
/// caller's buffer).
pub(crate) struct Rx {
    /// A `Box<Receiver>` as a raw pointer: `held` borrows it, so it is
    /// freed (in `drop`) only after `held` is gone, and never moved.
    receiver: NonNull<Receiver>,
    held: Option<Held>,
}

/// A message the receiver has in hand and has not released.
struct Held {
    /// Borrows `*Rx::receiver` (hence `'static`: the borrow checker
    /// cannot name the box's life); while it exists, nothing else touches
    /// the receiver.
    guard: RecvGuard<'static>,
    /// Whether C has its address (`shmchan_recv_ref`); if not, it did not
    /// fit a buffer and the next receive returns it.
    lent: bool,
}

impl Handled for Rx {
    const KIND: usize = 3;
    type C = shmchan_receiver;
    const NAME: &'static str = "receiver";
    type Fast = Receiver;

    /// The receiver while no message is held (lent, or kept back because it
    /// did not fit): `recv_queued` may then use it alone.
    fn fast(&mut self) -> *mut Receiver {
        match self.held {
            None => self.receiver.as_ptr(),
            Some(_) => std::ptr::null_mut(),
        }
    }
}

/// How a receive gets its next message from the receiver: `recv_ref`,
/// `try_recv_ref` or `recv_ref_timeout`. A closure per entry point, so
/// that each inlines its one call.
trait Get: FnOnce(&'static mut Receiver) -> shmchan::Result<RecvGuard<'static>> {}
impl<F: FnOnce(&'static mut Receiver) -> shmchan::Result<RecvGuard<'static>>> Get for F {}

fn wait() -> impl Get {
    |rx: &'static mut Receiver| rx.recv_ref()
}

fn now() -> impl Get {
    |rx: &'static mut Receiver| rx.try_recv_ref()
}

fn within(timeout_ns: u64) -> impl Get {
    move |rx: &'static mut Receiver| rx.recv_ref_timeout(arg::timeout(timeout_ns))
}

impl Rx {
    pub(crate) fn new(receiver: Receiver) -> Rx {
        Rx {
            receiver: NonNull::from(Box::leak(Box::new(receiver))),
            held: None,
        }
    }

    /// The next message from the receiver, when none is held.
    #[inline]
    fn fresh(&mut self, get: impl Get) -> Result<RecvGuard<'static>, Failure> {
        debug_assert!(self.held.is_none());
        // SAFETY: no guard borrows the box (`held` is None, and callers
        // keep the guard made here in `held` or drop it before they
        // return), and `drop` drops `held` before it frees the box: the
        // unbounded lifetime never outlives the receiver.
        let rx: &'static mut Receiver = unsafe { &mut *self.receiver.as_ptr() };
        Ok(get(rx)?)
    }

    /// The message held back, or the next one, now held.
    fn next(&mut self, get: impl Get) -> Result<&mut Held, Failure> {
        let held = match self.held.take() {
            Some(Held { lent: true, guard }) => {
                self.held = Some(Held { guard, lent: true });
                return Err(lent());
            }
            Some(held) => held,
            None => Held {
                guard: self.fresh(get)?,
                lent: false,
            },
        };
        Ok(self.held.insert(held))
    }

    /// Copies the next message into `buf` and consumes it, or, when it
    /// does not fit, keeps it for the next call.
    /// (`recv_queued` has taken the common case before.)
    fn recv(&mut self, get: impl Get, buf: &mut [u8], to: Out<'_>) -> Result<(), Failure> {
        if self.held.is_some() {
            return self.recv_held(buf, to);
        }
        let guard = self.fresh(get)?;
        match deliver(&guard, buf, to) {
            Ok(()) => Ok(()), // the guard drops: the message is consumed
            Err(e) => {
                self.held = Some(Held { guard, lent: false });
                Err(e)
            }
        }
    }

    /// `recv` with a message in hand: the one that did not fit before.
    #[cold]
    fn recv_held(&mut self, buf: &mut [u8], to: Out<'_>) -> Result<(), Failure> {
        let held = self.next(now())?;
        deliver(&held.guard, buf, to)?;
        self.held = None; // released: consumed
        Ok(())
    }

    /// Lends the next message: its address and length, until release.
    fn recv_ref(
        &mut self,
        get: impl Get,
        data: &mut MaybeUninit<*const c_void>,
        to: Out<'_>,
    ) -> Result<(), Failure> {
        let held = self.next(get)?;
        held.lent = true;
        data.write(held.guard.as_ptr().cast());
        to.len.write(held.guard.len());
        if let Some(from) = to.from {
            shmchan_sender_id::write(from, held.guard.sender());
        }
        Ok(())
    }

    fn release(&mut self) -> Result<(), Failure> {
        match self.held.take() {
            Some(Held { lent: true, guard }) => {
                drop(guard);
                Ok(())
            }
            other => {
                self.held = other;
                Err(Failure::pending(
                    "no message from shmchan_recv_ref is outstanding",
                ))
            }
        }
    }
}

/// Copies a message into `buf` with its length and, if asked, its sender;
/// a `buf` too short gets nothing but the length.
#[inline]
fn deliver(msg: &RecvGuard<'_>, buf: &mut [u8], to: Out<'_>) -> Result<(), Failure> {
    to.len.write(msg.len());
    let Some(dst) = buf.get_mut(..msg.len()) else {
        return Err(Failure::too_small(msg.len(), buf.len()));
    };
    dst.copy_from_slice(msg);
    if let Some(from) = to.from {
        shmchan_sender_id::write(from, msg.sender());
    }
    Ok(())
}

#[cold]
fn lent() -> Failure {
    Failure::pending("a message from shmchan_recv_ref is outstanding: shmchan_release it first")
}

impl Drop for Rx {
    fn drop(&mut self) {
        match self.held.take() {
            // Never delivered (it did not fit): not released, so it stays
            // in the ring for the next receiver, as if never looked at.
            Some(Held { lent: false, guard }) => std::mem::forget(guard),
            // Lent: released, as dropping a Rust guard does.
            held => drop(held),
        }
        // SAFETY: made by `Box::leak` in `new`, and the guard that
        // borrowed it is gone: this is its last use.
        drop(unsafe { Box::from_raw(self.receiver.as_ptr()) });
    }
}

/// Where a receive puts the message's length and, if asked, its sender.
struct Out<'a> {
    len: &'a mut MaybeUninit<usize>,
    from: Option<&'a mut MaybeUninit<shmchan_sender_id>>,
}

/// # Safety
///
/// As `shmchan_recv_from`, with `from` NULL allowed (no sender wanted).
#[inline(always)]
unsafe fn recv(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    from: *mut shmchan_sender_id,
    get: impl Get,
) -> shmchan_status {
    // SAFETY: the pointers as the caller promises.
    if from.is_null() && unsafe { recv_queued(rx, buf, cap, len) } {
        return shmchan_status::SHMCHAN_OK;
    }
    // SAFETY: the pointers as the caller promises.
    unsafe {
        handle::with::<Rx>(rx, move |rx| {
            let len = arg::out(len, "len")?;
            let from = (!from.is_null())
                .then(|| arg::out(from, "from"))
                .transpose()?;
            let buf = arg::bytes_mut(buf.cast::<u8>(), cap)?;
            rx.recv(get, buf, Out { len, from })
        })
    }
}

/// A receive's common case, taken before and outside `catch_unwind` (see
/// `lib.rs`): a valid handle holding no message, valid arguments,
/// and a message queued that fits `buf`, which is copied and consumed.
/// Anything else is left untouched for the full path, which checks it all
/// again and says what is wrong: `false`.
///
/// # Safety
///
/// As `shmchan_recv`.
#[inline(always)]
unsafe fn recv_queued(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
) -> bool {
    // SAFETY: no other call uses the handle, by the caller's promise; the
    // receiver comes back only while no guard borrows it (`Rx::fast`).
    let Some(receiver) = (unsafe { handle::find_fast::<Rx>(rx) }) else {
        return false;
    };
    if len.is_null() {
        return false;
    }
    // SAFETY: NULL or writable for `cap` bytes, by the caller's promise.
    let Some(buf) = (unsafe { arg::bytes_mut_fast(buf.cast::<u8>(), cap) }) else {
        return false;
    };
    let Some(n) = receiver.copy_queued(buf) else {
        return false;
    };
    // SAFETY: non-NULL (checked) and writable, by the caller's promise.
    unsafe { len.write(n) };
    true
}

/// # Safety
///
/// As `shmchan_recv_from` (a NULL `from` is an error here).
#[inline]
unsafe fn recv_from(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    from: *mut shmchan_sender_id,
    get: impl Get,
) -> shmchan_status {
    if from.is_null() {
        return run(|| Err(Failure::null("from")));
    }
    // SAFETY: as the caller promises.
    unsafe { recv(rx, buf, cap, len, from, get) }
}

/// Receives the next message into `buf[0..cap]`, waiting for one, and
/// stores its length in `*len`. `buf` may be NULL when `cap` is 0.
///
/// A message longer than `cap` is not consumed: the call returns
/// `SHMCHAN_E_BUFFER_TOO_SMALL` with the message's length in `*len`, and
/// the next receive (of any form) returns the same message. So
/// `shmchan_recv(rx, NULL, 0, &len)` tells the next message's length.
///
/// Messages arrive whole and in the order committed (per sender).
///
/// # Errors
///
/// `SHMCHAN_E_DISCONNECTED` once every message is received and the
/// sender(s) this receiver has seen are gone (a receiver that has seen no
/// sender waits for one); `SHMCHAN_E_BUFFER_TOO_SMALL`;
/// `SHMCHAN_E_REMOVED`; `SHMCHAN_E_CORRUPTED`; `SHMCHAN_E_OS`;
/// `SHMCHAN_E_PENDING` (a message from `shmchan_recv_ref` is outstanding);
/// `SHMCHAN_E_NULL` (`rx`, `len`, or `buf` with `cap` > 0);
/// `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `buf` is NULL or writable for `cap` bytes; `len` is NULL or writable;
/// `rx` is used by no other call meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_recv(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { recv(rx, buf, cap, len, std::ptr::null_mut(), wait()) }
}

/// Receives a message if one is queued now. As `shmchan_recv`, and
/// `SHMCHAN_E_EMPTY`.
///
/// # Safety
///
/// As `shmchan_recv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_try_recv(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { recv(rx, buf, cap, len, std::ptr::null_mut(), now()) }
}

/// Receives, waiting at most `timeout_ns` nanoseconds. As `shmchan_recv`,
/// and `SHMCHAN_E_TIMEOUT`.
///
/// # Safety
///
/// As `shmchan_recv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_recv_timeout(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: u64,
) -> shmchan_status {
    let how = within(timeout_ns);
    // SAFETY: as the caller promises.
    unsafe { recv(rx, buf, cap, len, std::ptr::null_mut(), how) }
}

/// As `shmchan_recv`, and stores the message's sender in `*from` (which
/// must not be NULL).
///
/// # Errors
///
/// As `shmchan_recv`; `SHMCHAN_E_NULL` when `from` is NULL.
///
/// # Safety
///
/// As `shmchan_recv`; `from` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_recv_from(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    from: *mut shmchan_sender_id,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { recv_from(rx, buf, cap, len, from, wait()) }
}

/// As `shmchan_try_recv`, with the sender as `shmchan_recv_from`.
///
/// # Safety
///
/// As `shmchan_recv_from`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_try_recv_from(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    from: *mut shmchan_sender_id,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { recv_from(rx, buf, cap, len, from, now()) }
}

/// As `shmchan_recv_timeout`, with the sender as `shmchan_recv_from`.
///
/// # Safety
///
/// As `shmchan_recv_from`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_recv_from_timeout(
    rx: *mut shmchan_receiver,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    from: *mut shmchan_sender_id,
    timeout_ns: u64,
) -> shmchan_status {
    let how = within(timeout_ns);
    // SAFETY: as the caller promises.
    unsafe { recv_from(rx, buf, cap, len, from, how) }
}

/// # Safety
///
/// As `shmchan_recv_ref`.
unsafe fn recv_ref(
    rx: *mut shmchan_receiver,
    data: *mut *const c_void,
    len: *mut usize,
    from: *mut shmchan_sender_id,
    get: impl Get,
) -> shmchan_status {
    // SAFETY: the pointers as the caller promises.
    unsafe {
        handle::with::<Rx>(rx, |rx| {
            let data = arg::out(data, "data")?;
            let len = arg::out(len, "len")?;
            let from = (!from.is_null())
                .then(|| arg::out(from, "from"))
                .transpose()?;
            rx.recv_ref(get, data, Out { len, from })
        })
    }
}

/// Receives the next message in place, waiting for one: stores its
/// address in `*data`, its length in `*len` and, unless `from` is NULL,
/// its sender in `*from`. No copy.
///
/// The bytes stay valid, and the message unconsumed, until
/// `shmchan_release` (or `shmchan_receiver_close`, which releases it);
/// meanwhile the sender cannot reuse that space, and every receive on
/// this receiver returns `SHMCHAN_E_PENDING`. A process that dies holding
/// a message has not consumed it: the next receiver gets it.
///
/// Another process shares these bytes: a hostile one could change them
/// while you read (never out of bounds). Copy what you validate.
///
/// # Errors
///
/// As `shmchan_recv` (no `SHMCHAN_E_BUFFER_TOO_SMALL`); `SHMCHAN_E_NULL`
/// when `data` or `len` is NULL.
///
/// # Safety
///
/// `data` and `len` are NULL or writable, `from` too; `rx` is used by no
/// other call meanwhile. Do not write through `*data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_recv_ref(
    rx: *mut shmchan_receiver,
    data: *mut *const c_void,
    len: *mut usize,
    from: *mut shmchan_sender_id,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { recv_ref(rx, data, len, from, wait()) }
}

/// As `shmchan_recv_ref`, if a message is queued now; else
/// `SHMCHAN_E_EMPTY`.
///
/// # Safety
///
/// As `shmchan_recv_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_try_recv_ref(
    rx: *mut shmchan_receiver,
    data: *mut *const c_void,
    len: *mut usize,
    from: *mut shmchan_sender_id,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { recv_ref(rx, data, len, from, now()) }
}

/// As `shmchan_recv_ref`, waiting at most `timeout_ns` nanoseconds; else
/// `SHMCHAN_E_TIMEOUT`.
///
/// # Safety
///
/// As `shmchan_recv_ref`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_recv_ref_timeout(
    rx: *mut shmchan_receiver,
    data: *mut *const c_void,
    len: *mut usize,
    from: *mut shmchan_sender_id,
    timeout_ns: u64,
) -> shmchan_status {
    let how = within(timeout_ns);
    // SAFETY: as the caller promises.
    unsafe { recv_ref(rx, data, len, from, how) }
}

/// Consumes the message lent by `shmchan_recv_ref`: its space goes back
/// to the sender, and the pointer is invalid from here on.
///
/// # Errors
///
/// `SHMCHAN_E_PENDING` when no message is lent, `SHMCHAN_E_NULL`,
/// `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `rx` is used by no other call meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_release(rx: *mut shmchan_receiver) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { handle::with::<Rx>(rx, Rx::release) }
}

/// Closes a receiver: the receiver role is free for another, and senders
/// that have seen it get `SHMCHAN_E_DISCONNECTED`. A message lent by
/// `shmchan_recv_ref` is released (consumed); one kept back because it
/// did not fit a buffer is not (the next receiver gets it).
///
/// # Errors
///
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED` (closed already): nothing is done.
///
/// # Safety
///
/// No other call may be using `rx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_receiver_close(rx: *mut shmchan_receiver) -> shmchan_status {
    run(|| {
        // SAFETY: no other call uses the handle, by the caller's promise.
        drop(unsafe { handle::remove::<Rx>(rx) }?);
        Ok(())
    })
}
