//! Senders: send in its three forms, and the zero-copy reserve and
//! commit.
//!
//! `unsafe` here: entry points read C's pointers (see `arg`) and look
//! their handle up (`handle`); and a reservation, which borrows the
//! sender, is kept beside it in the handle (`Tx`), the sender boxed so
//! that it does not move.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::NonNull;
use std::time::Duration;

use shmchan::{SendGrant, Sender};

use crate::arg;
use crate::handle::{self, Handled};
use crate::status::{Failure, run, shmchan_status};

/// The sending side of a channel: one lane, held until closed.
///
/// Threads: one thread at a time. A sender may move to another thread
/// between calls (hand it over with the usual synchronisation, a mutex or
/// a thread start); two calls on one sender must never overlap, and
/// closing it must not race with another call on it. Not fork-safe: a
/// child made by `fork` opens its own.
pub struct shmchan_sender {
    _opaque: [u8; 0],
}

/// What a sender handle owns: the sender, and the reservation that
/// `shmchan_reserve` made, if any.
pub(crate) struct Tx {
    /// A `Box<Sender>` as a raw pointer: `grant` borrows it, so it is
    /// freed (in `drop`) only after `grant` is gone, and never moved.
    sender: NonNull<Sender>,
    /// Borrows `*sender` (hence `'static`: the borrow checker cannot
    /// name the box's life); while it is `Some`, nothing else touches
    /// `*sender`.
    grant: Option<SendGrant<'static>>,
    /// The sender's identity, fixed for its life (kept here so that it
    /// can be read while a grant borrows the sender).
    id: shmchan::SenderId,
}

impl Handled for Tx {
    const KIND: usize = 2;
    type C = shmchan_sender;
    const NAME: &'static str = "sender";
    type Fast = Sender;

    /// The sender while no reservation borrows it: `send_queued` may then
    /// use it alone.
    fn fast(&mut self) -> *mut Sender {
        match self.grant {
            None => self.sender.as_ptr(),
            Some(_) => std::ptr::null_mut(),
        }
    }
}

/// How long a call may wait.
#[derive(Clone, Copy)]
enum How {
    Block,
    Try,
    Timeout(Duration),
}

impl Tx {
    pub(crate) fn new(sender: Sender) -> Tx {
        Tx {
            id: sender.id(),
            sender: NonNull::from(Box::leak(Box::new(sender))),
            grant: None,
        }
    }

    /// The sender, when no reservation borrows it.
    #[inline]
    fn sender(&mut self) -> Result<&mut Sender, Failure> {
        if self.grant.is_some() {
            return Err(Failure::pending(
                "a reservation is outstanding: shmchan_commit or shmchan_cancel it first",
            ));
        }
        // SAFETY: the box lives until `drop`, and no grant borrows it; the
        // reference lives no longer than `&mut self`.
        Ok(unsafe { self.sender.as_mut() })
    }

    #[inline]
    fn send(&mut self, msg: &[u8], how: How) -> Result<(), Failure> {
        let tx = self.sender()?;
        match how {
            How::Block => tx.send(msg)?,
            How::Try => tx.try_send(msg)?,
            How::Timeout(t) => tx.send_timeout(msg, t)?,
        }
        Ok(())
    }

    fn reserve(&mut self, len: usize, how: How) -> Result<*mut c_void, Failure> {
        self.sender()?;
        // SAFETY: no grant borrows the box (checked just above), and the
        // grant made here is dropped before the box is freed (`drop`):
        // the unbounded lifetime never outlives the sender.
        let tx: &'static mut Sender = unsafe { &mut *self.sender.as_ptr() };
        let mut grant = match how {
            How::Block => tx.reserve(len)?,
            How::Try => tx.try_reserve(len)?,
            How::Timeout(t) => tx.reserve_timeout(len, t)?,
        };
        let payload = grant.as_mut_ptr().cast::<c_void>();
        self.grant = Some(grant);
        Ok(payload)
    }

    fn take_grant(&mut self) -> Result<SendGrant<'static>, Failure> {
        self.grant
            .take()
            .ok_or_else(|| Failure::pending("no reservation is outstanding"))
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // An uncommitted reservation sends nothing.
        self.grant = None;
        // SAFETY: made by `Box::leak` in `new`, and the grant that
        // borrowed it is gone: this is its last use.
        drop(unsafe { Box::from_raw(self.sender.as_ptr()) });
    }
}

/// Sends `data[0..len]` as one message, waiting while the ring is full.
/// `data` may be NULL when `len` is 0 (an empty message).
///
/// When it returns `SHMCHAN_OK` the message is committed: the receiver can
/// see it. With no receiver attached yet, it fills the ring, then waits.
///
/// # Errors
///
/// `SHMCHAN_E_MESSAGE_TOO_LARGE` (nothing written),
/// `SHMCHAN_E_DISCONNECTED` (a receiver this sender has seen is gone),
/// `SHMCHAN_E_REMOVED`, `SHMCHAN_E_CORRUPTED`, `SHMCHAN_E_OS`,
/// `SHMCHAN_E_PENDING` (a reservation is outstanding), `SHMCHAN_E_NULL`
/// (`tx`, or `data` with `len` > 0), `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `data` is NULL or readable for `len` bytes; `tx` is used by no other
/// call meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_send(
    tx: *mut shmchan_sender,
    data: *const c_void,
    len: usize,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { send(tx, data, len, How::Block) }
}

/// Sends if the ring has room now. As `shmchan_send`, and
/// `SHMCHAN_E_FULL` when it has none (nothing written).
///
/// # Safety
///
/// As `shmchan_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_try_send(
    tx: *mut shmchan_sender,
    data: *const c_void,
    len: usize,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { send(tx, data, len, How::Try) }
}

/// Sends, waiting at most `timeout_ns` nanoseconds for room. As
/// `shmchan_send`, and `SHMCHAN_E_TIMEOUT` (nothing written).
///
/// # Safety
///
/// As `shmchan_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_send_timeout(
    tx: *mut shmchan_sender,
    data: *const c_void,
    len: usize,
    timeout_ns: u64,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { send(tx, data, len, How::Timeout(arg::timeout(timeout_ns))) }
}

/// # Safety
///
/// As `shmchan_send`.
#[inline(always)]
unsafe fn send(
    tx: *mut shmchan_sender,
    data: *const c_void,
    len: usize,
    how: How,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    if unsafe { send_queued(tx, data, len, how) } {
        return shmchan_status::SHMCHAN_OK;
    }
    // SAFETY: as the caller promises.
    unsafe {
        handle::with::<Tx>(tx, move |tx| {
            let msg = arg::bytes(data.cast::<u8>(), len)?;
            tx.send(msg, how)
        })
    }
}

/// A send's common case, taken before and outside `catch_unwind` (see
/// `lib.rs`): a valid handle with no reservation outstanding, a valid
/// buffer, and room now, into which the message is copied and committed.
/// Anything else is left untouched for the full path, which checks it all
/// again and says what is wrong: `false`.
///
/// # Safety
///
/// As `shmchan_send`.
#[inline(always)]
unsafe fn send_queued(tx: *mut shmchan_sender, data: *const c_void, len: usize, how: How) -> bool {
    // SAFETY: no other call uses the handle, by the caller's promise; the
    // sender comes back only while no grant borrows it (`Tx::fast`).
    let Some(sender) = (unsafe { handle::find_fast::<Tx>(tx) }) else {
        return false;
    };
    // SAFETY: NULL or readable for `len` bytes, by the caller's promise.
    let Some(msg) = (unsafe { arg::bytes_fast(data.cast::<u8>(), len) }) else {
        return false;
    };
    sender.send_queued(msg, !matches!(how, How::Try))
}

/// Reserves room for a message of exactly `len` bytes, waiting while the
/// ring is full, and stores a pointer to its payload in `*payload`: write
/// the message there, then `shmchan_commit` (or `shmchan_cancel`).
///
/// The payload is 8-byte aligned and valid until `shmchan_commit`,
/// `shmchan_cancel` or `shmchan_sender_close`; the receiver sees nothing
/// before the commit. While it is outstanding, every other call on the
/// sender but those three returns `SHMCHAN_E_PENDING`.
///
/// # Errors
///
/// As `shmchan_send`; `SHMCHAN_E_NULL` when `payload` is NULL.
///
/// # Safety
///
/// `payload` is NULL or writable; `tx` is used by no other call meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_reserve(
    tx: *mut shmchan_sender,
    len: usize,
    payload: *mut *mut c_void,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { reserve(tx, len, payload, How::Block) }
}

/// Reserves if the ring has room now. As `shmchan_reserve`, and
/// `SHMCHAN_E_FULL`.
///
/// # Safety
///
/// As `shmchan_reserve`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_try_reserve(
    tx: *mut shmchan_sender,
    len: usize,
    payload: *mut *mut c_void,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { reserve(tx, len, payload, How::Try) }
}

/// Reserves, waiting at most `timeout_ns` nanoseconds for room. As
/// `shmchan_reserve`, and `SHMCHAN_E_TIMEOUT`.
///
/// # Safety
///
/// As `shmchan_reserve`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_reserve_timeout(
    tx: *mut shmchan_sender,
    len: usize,
    payload: *mut *mut c_void,
    timeout_ns: u64,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { reserve(tx, len, payload, How::Timeout(arg::timeout(timeout_ns))) }
}

/// # Safety
///
/// As `shmchan_reserve`.
unsafe fn reserve(
    tx: *mut shmchan_sender,
    len: usize,
    payload: *mut *mut c_void,
    how: How,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe {
        handle::with::<Tx>(tx, |tx| {
            let out = arg::out(payload, "payload")?;
            out.write(std::ptr::null_mut());
            out.write(tx.reserve(len, how)?);
            Ok(())
        })
    }
}

/// Publishes the reserved message: when this returns `SHMCHAN_OK` the
/// receiver can see it. The payload pointer is invalid from here on.
///
/// # Errors
///
/// `SHMCHAN_E_PENDING` when no reservation is outstanding,
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `tx` is used by no other call meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_commit(tx: *mut shmchan_sender) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { handle::with::<Tx>(tx, |tx| Ok(tx.take_grant()?.commit()?)) }
}

/// Drops the reservation unpublished: nothing is sent. Errors as
/// `shmchan_commit`.
///
/// # Safety
///
/// As `shmchan_commit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_cancel(tx: *mut shmchan_sender) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { handle::with::<Tx>(tx, |tx| tx.take_grant().map(drop)) }
}

/// A sender's identity: its lane and the lane's session (how many senders
/// have claimed the lane, this one included). `shmchan_recv_from` gives
/// the same for each message.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmchan_sender_id {
    /// The lane, 0 to `max_senders - 1`.
    pub lane: u16,
    /// The lane's session, from 1.
    pub session: u64,
}

impl shmchan_sender_id {
    /// Writes the fields one by one: the padding after `lane` is C's.
    pub(crate) fn write(out: &mut std::mem::MaybeUninit<shmchan_sender_id>, id: shmchan::SenderId) {
        let p = out.as_mut_ptr();
        // SAFETY: `p` is valid for writes (a live `&mut`), and each field
        // pointer is in bounds of it.
        unsafe {
            (&raw mut (*p).lane).write(id.lane());
            (&raw mut (*p).session).write(id.session());
        }
    }
}

/// This sender's identity, into `*id`.
///
/// # Errors
///
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `id` is NULL or writable; `tx` is used by no other call meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_sender_get_id(
    tx: *mut shmchan_sender,
    id: *mut shmchan_sender_id,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe {
        handle::with::<Tx>(tx, |tx| {
            shmchan_sender_id::write(arg::out(id, "id")?, tx.id);
            Ok(())
        })
    }
}

/// Closes a sender: its lane is free for another sender, and a receiver
/// that has seen it and finds no other sender gets
/// `SHMCHAN_E_DISCONNECTED` after the last message. An outstanding
/// reservation is dropped unsent.
///
/// # Errors
///
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED` (closed already): nothing is done.
///
/// # Safety
///
/// No other call may be using `tx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_sender_close(tx: *mut shmchan_sender) -> shmchan_status {
    run(|| {
        // SAFETY: no other call uses the handle, by the caller's promise.
        drop(unsafe { handle::remove::<Tx>(tx) }?);
        Ok(())
    })
}
