//! Channels: options, keys, create, open, remove, close, and the sender
//! and receiver handles a channel gives.
//!
//! `unsafe` here: each entry point reads its pointer arguments as the
//! header's rules allow (see `arg`), and looks its handle up (`handle`).
#![allow(unsafe_code)]

use std::ffi::{CStr, OsStr, c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use shmchan::{Channel, Key, Options};

use crate::arg;
use crate::handle::{self, Handled};
use crate::receiver::{Rx, shmchan_receiver};
use crate::sender::{Tx, shmchan_sender};
use crate::status::{Failure, run, shmchan_status};

/// A channel: an attached, validated System V segment and its semaphore
/// set. Opaque; made by `shmchan_create`, `shmchan_open` and their
/// variants, ended by `shmchan_channel_close` or `shmchan_remove`.
///
/// Threads: any thread may use a channel handle, several at once
/// (`shmchan_channel_sender`, `shmchan_channel_id`, ...), except that
/// closing or removing it must not race with another call on it. The
/// channel lives while any party (a channel, sender or receiver handle,
/// in any process) is open; the last one out removes it, unless it
/// persists or still holds messages.
pub struct shmchan_channel {
    _opaque: [u8; 0],
}

impl Handled for Channel {
    const KIND: usize = 1;
    type C = shmchan_channel;
    const NAME: &'static str = "channel";
    type Fast = ();
}

/// `IPC_PRIVATE`: `shmchan_create` with this key makes a channel that
/// other processes reach by its id (`shmchan_channel_id`, `shmchan_open_id`).
pub const SHMCHAN_KEY_PRIVATE: i32 = 0;
/// `shmchan_options.flags`: the channel outlives its last party.
pub const SHMCHAN_PERSIST: u64 = 1;
/// `shmchan_options.flags`: replace a stale channel at the key (no party
/// alive), discarding what it held; never a live one.
pub const SHMCHAN_REPLACE_STALE: u64 = 2;
/// `shmchan_options.flags`: no `membarrier(2)`; a fence per message
/// instead, for processes that a seccomp filter denies `membarrier`.
pub const SHMCHAN_NO_MEMBARRIER: u64 = 4;
/// `shmchan_options.spin_ns`: the library's default spin (50 µs).
pub const SHMCHAN_SPIN_DEFAULT: u64 = u64::MAX;
/// The default ring size in bytes (4 MiB).
pub const SHMCHAN_DEFAULT_CAPACITY: u64 = 4194304;
/// The smallest ring size in bytes.
pub const SHMCHAN_MIN_CAPACITY: u64 = 4096;
/// The most sender lanes a channel can have.
pub const SHMCHAN_MAX_SENDERS: u32 = 64;
/// Bytes of ring each message takes beyond its payload, at most (a frame
/// header, then padding to 8 bytes).
pub const SHMCHAN_FRAME_OVERHEAD: u64 = 8;

const _: () = {
    assert!(SHMCHAN_DEFAULT_CAPACITY == shmchan::DEFAULT_CAPACITY as u64);
    assert!(SHMCHAN_MIN_CAPACITY == shmchan::MIN_CAPACITY as u64);
    assert!(SHMCHAN_MAX_SENDERS == shmchan::MAX_SENDERS);
    assert!(SHMCHAN_FRAME_OVERHEAD == shmchan::FRAME_OVERHEAD as u64);
};

const FLAGS: u64 = SHMCHAN_PERSIST | SHMCHAN_REPLACE_STALE | SHMCHAN_NO_MEMBARRIER;

/// How `shmchan_create` makes a channel. Fill it with
/// `shmchan_options_init`, then change the fields you need.
///
/// It can grow: `size` says how much of it the caller's header knew. A
/// library newer than the caller's header gives the fields it does not
/// know their defaults; an older library than the header refuses a
/// non-zero value in a field it does not know (`SHMCHAN_E_INVALID_ARGUMENT`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmchan_options {
    /// `sizeof(shmchan_options)`, set by `shmchan_options_init`.
    pub size: usize,
    /// Ring bytes per sender lane, rounded up to a power of two, at least
    /// `SHMCHAN_MIN_CAPACITY`. Default `SHMCHAN_DEFAULT_CAPACITY`.
    pub capacity: u64,
    /// Sender lanes: how many senders may be attached at once, 1 to
    /// `SHMCHAN_MAX_SENDERS`. Default 1.
    pub max_senders: u32,
    /// Permission bits of segment and semaphore set. Default 0600.
    pub mode: u32,
    /// The group that owns the channel (with mode 0660, its members may
    /// attach), or -1 for the creator's. Default -1.
    pub group: i64,
    /// How long the creator's handles spin before they park, in
    /// nanoseconds, or `SHMCHAN_SPIN_DEFAULT`. 0 parks at once.
    pub spin_ns: u64,
    /// `SHMCHAN_PERSIST`, `SHMCHAN_REPLACE_STALE`, `SHMCHAN_NO_MEMBARRIER`,
    /// or'ed. Default 0.
    pub flags: u64,
}

const _: () = assert!(std::mem::size_of::<shmchan_options>() == 48, "no padding");

impl shmchan_options {
    const DEFAULT: shmchan_options = shmchan_options {
        size: std::mem::size_of::<shmchan_options>(),
        capacity: SHMCHAN_DEFAULT_CAPACITY,
        max_senders: 1,
        mode: 0o600,
        group: -1,
        spin_ns: SHMCHAN_SPIN_DEFAULT,
        flags: 0,
    };

    /// The library's `Options`, each field checked.
    fn to_options(self) -> Result<Options, Failure> {
        let capacity = usize::try_from(self.capacity)
            .map_err(|_| Failure::invalid(format!("capacity {}", self.capacity)))?;
        if self.flags & !FLAGS != 0 {
            return Err(Failure::invalid(format!("unknown flags {:#x}", self.flags)));
        }
        let mut opts = Options::new()
            .capacity(capacity)
            .max_senders(self.max_senders)
            .mode(self.mode)
            .persist(self.flags & SHMCHAN_PERSIST != 0)
            .replace_stale(self.flags & SHMCHAN_REPLACE_STALE != 0)
            .membarrier(self.flags & SHMCHAN_NO_MEMBARRIER == 0);
        match self.group {
            -1 => {}
            g => {
                let gid = u32::try_from(g).map_err(|_| Failure::invalid(format!("group {g}")))?;
                opts = opts.group(gid);
            }
        }
        if self.spin_ns != SHMCHAN_SPIN_DEFAULT {
            opts = opts.spin(Duration::from_nanos(self.spin_ns));
        }
        Ok(opts)
    }
}

/// Reads the caller's options: as many bytes as its `size` says, the rest
/// from the defaults; bytes past this library's struct must be zero.
///
/// # Safety
///
/// Unless NULL, `ptr` points to `size` readable bytes whose first field
/// is `size`.
unsafe fn read_options(ptr: *const shmchan_options) -> Result<Options, Failure> {
    if ptr.is_null() {
        return shmchan_options::DEFAULT.to_options();
    }
    // SAFETY: the first field, readable by the caller's promise.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    let ours = std::mem::size_of::<shmchan_options>();
    if size < std::mem::size_of::<usize>() {
        return Err(Failure::invalid(format!("options size {size}")));
    }
    // SAFETY: `size` bytes are readable by the caller's promise.
    let theirs = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size) };
    if theirs
        .get(ours..)
        .is_some_and(|extra| extra.iter().any(|&b| b != 0))
    {
        return Err(Failure::invalid(format!(
            "options of {size} bytes set fields this library ({ours} bytes) does not know"
        )));
    }
    let mut opts = shmchan_options::DEFAULT;
    let n = size.min(ours);
    // SAFETY: `n` bytes of the caller's struct into ours, which has no
    // padding and only integer fields (any bytes are a valid value).
    unsafe {
        std::ptr::copy_nonoverlapping(theirs.as_ptr(), (&raw mut opts).cast::<u8>(), n);
    }
    opts.to_options()
}

/// Fills `*options` with the defaults and sets its `size`.
///
/// # Errors
///
/// `SHMCHAN_E_NULL` if `options` is NULL.
///
/// # Safety
///
/// `options` is NULL or valid for writing a `shmchan_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_options_init(options: *mut shmchan_options) -> shmchan_status {
    run(|| {
        // SAFETY: NULL or writable by the caller's promise.
        unsafe { arg::out(options, "options") }?.write(shmchan_options::DEFAULT);
        Ok(())
    })
}

/// Makes the key `ftok(path, proj_id)` would, into `*key`.
///
/// Prefer `shmchan_create_path` and `shmchan_open_path`: they also record
/// the file's device and inode and so catch two paths whose keys collide
/// (ftok keeps only part of them).
///
/// # Errors
///
/// `SHMCHAN_E_NULL`; `SHMCHAN_E_INVALID_ARGUMENT` unless `proj_id` is 1
/// to 255; `SHMCHAN_E_OS` when the path cannot be read.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `key` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_ftok(
    path: *const c_char,
    proj_id: c_int,
    key: *mut i32,
) -> shmchan_status {
    run(|| {
        // SAFETY: NULL or writable by the caller's promise.
        let key = unsafe { arg::out(key, "key") }?;
        // SAFETY: NULL or NUL-terminated by the caller's promise.
        let made = unsafe { ftok(path, proj_id) }?;
        key.write(made.raw());
        Ok(())
    })
}

/// `Key::ftok` of a C path.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string.
unsafe fn ftok(path: *const c_char, proj_id: c_int) -> Result<Key, Failure> {
    if path.is_null() {
        return Err(Failure::null("path"));
    }
    let proj = u8::try_from(proj_id)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| Failure::invalid(format!("proj_id {proj_id} (1 to 255)")))?;
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Ok(Key::ftok(Path::new(OsStr::from_bytes(bytes)), proj)?)
}

/// Writes a new channel's handle to `*out` (NULL first, so that a failed
/// call leaves NULL there).
///
/// # Safety
///
/// `out` is NULL or writable.
unsafe fn new_channel(
    out: *mut *mut shmchan_channel,
    make: impl FnOnce() -> Result<Channel, Failure>,
) -> shmchan_status {
    run(|| {
        // SAFETY: NULL or writable by the caller's promise.
        let out = unsafe { arg::out(out, "out") }?;
        out.write(std::ptr::null_mut());
        out.write(handle::insert(make()?)?);
        Ok(())
    })
}

/// Creates a channel at `key` (`SHMCHAN_KEY_PRIVATE` for a private one)
/// and stores its handle in `*out`.
///
/// `options` may be NULL for the defaults. Never opens an existing channel
/// (`IPC_CREAT | IPC_EXCL`). On failure `*out` is NULL.
///
/// # Errors
///
/// `SHMCHAN_E_ALREADY_EXISTS` (unless `SHMCHAN_REPLACE_STALE` applies),
/// `SHMCHAN_E_PERMISSION_DENIED`, `SHMCHAN_E_NOT_A_CHANNEL` (replace_stale
/// met a foreign segment), `SHMCHAN_E_INVALID_ARGUMENT` (an option out of
/// range), `SHMCHAN_E_OS` (kernel limits, memory), `SHMCHAN_E_NULL`.
///
/// # Safety
///
/// `options` is NULL or as `shmchan_options` says; `out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_create(
    key: i32,
    options: *const shmchan_options,
    out: *mut *mut shmchan_channel,
) -> shmchan_status {
    // SAFETY: `out` and `options` as the caller promises.
    unsafe {
        new_channel(out, || {
            Ok(Channel::create(
                Key::from_raw(key),
                &read_options(options)?,
            )?)
        })
    }
}

/// Creates a channel at the key of `ftok(path, proj_id)`, recording the
/// file's device and inode so that a colliding key is reported rather than
/// shared. As `shmchan_create` otherwise.
///
/// # Errors
///
/// As `shmchan_create` and `shmchan_ftok`.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; the rest as `shmchan_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_create_path(
    path: *const c_char,
    proj_id: c_int,
    options: *const shmchan_options,
    out: *mut *mut shmchan_channel,
) -> shmchan_status {
    // SAFETY: the pointers as the caller promises.
    unsafe {
        new_channel(out, || {
            Ok(Channel::create(
                ftok(path, proj_id)?,
                &read_options(options)?,
            )?)
        })
    }
}

/// Opens the existing channel at `key`; never creates. On failure `*out`
/// is NULL.
///
/// # Errors
///
/// `SHMCHAN_E_NOT_FOUND`, `SHMCHAN_E_PERMISSION_DENIED`,
/// `SHMCHAN_E_NOT_A_CHANNEL`, `SHMCHAN_E_VERSION_MISMATCH`,
/// `SHMCHAN_E_CORRUPTED`, `SHMCHAN_E_NULL`.
///
/// # Safety
///
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_open(key: i32, out: *mut *mut shmchan_channel) -> shmchan_status {
    // SAFETY: `out` as the caller promises.
    unsafe { new_channel(out, || Ok(Channel::open(Key::from_raw(key))?)) }
}

/// Opens the existing channel at the key of `ftok(path, proj_id)`. As
/// `shmchan_open`, and `shmchan_ftok`'s errors.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_open_path(
    path: *const c_char,
    proj_id: c_int,
    out: *mut *mut shmchan_channel,
) -> shmchan_status {
    // SAFETY: the pointers as the caller promises.
    unsafe { new_channel(out, || Ok(Channel::open(ftok(path, proj_id)?)?)) }
}

/// Opens the existing channel whose segment id is `shmid` (as `ipcs -m`
/// or `shmchan_channel_id` shows it): the way to reach a private channel.
/// As `shmchan_open` otherwise.
///
/// # Safety
///
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_open_id(
    shmid: i32,
    out: *mut *mut shmchan_channel,
) -> shmchan_status {
    // SAFETY: `out` as the caller promises.
    unsafe { new_channel(out, || Ok(Channel::open_id(shmid)?)) }
}

/// Closes a channel handle. Sender and receiver handles made from it stay
/// open. If this was the channel's last party, the channel is removed
/// (unless it persists or holds messages).
///
/// # Errors
///
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED` (closed already, or not a channel
/// handle): nothing is done.
///
/// # Safety
///
/// No other thread may be using `chan` (any value is safe otherwise).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_close(chan: *mut shmchan_channel) -> shmchan_status {
    run(|| {
        // SAFETY: no other call uses the handle, by the caller's promise.
        drop(unsafe { handle::remove::<Channel>(chan) }?);
        Ok(())
    })
}

/// Removes the channel now, under any live parties (they see
/// `SHMCHAN_E_REMOVED`), and closes this handle, whatever the result
/// except `SHMCHAN_E_NULL` and `SHMCHAN_E_CLOSED`.
///
/// # Errors
///
/// `SHMCHAN_E_PERMISSION_DENIED` when this user may not remove it (the
/// handle is closed all the same), `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// No other thread may be using `chan`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_remove(chan: *mut shmchan_channel) -> shmchan_status {
    run(|| {
        // SAFETY: no other call uses the handle, by the caller's promise.
        let chan = unsafe { handle::remove::<Channel>(chan) }?;
        Ok(chan.remove()?)
    })
}

/// Reads one property of a channel into `*out`.
///
/// # Safety
///
/// `out` is NULL or writable; `chan` is not being closed.
unsafe fn property<T>(
    chan: *mut shmchan_channel,
    out: *mut T,
    get: impl FnOnce(&Channel) -> T,
) -> shmchan_status {
    run(|| {
        // SAFETY: NULL or writable by the caller's promise.
        let out = unsafe { arg::out(out, "out") }?;
        // SAFETY: not closed meanwhile, by the caller's promise.
        let chan = unsafe { handle::get::<Channel>(chan) }?;
        out.write(get(chan));
        Ok(())
    })
}

/// The segment id (`shmid`), for `shmchan_open_id` in another process.
///
/// # Errors
///
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `id` is NULL or writable; `chan` is not being closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_id(
    chan: *mut shmchan_channel,
    id: *mut i32,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { property(chan, id, Channel::id) }
}

/// The key the channel was made with (`SHMCHAN_KEY_PRIVATE` for a private
/// one). Errors and safety as `shmchan_channel_id`.
///
/// # Safety
///
/// As `shmchan_channel_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_key(
    chan: *mut shmchan_channel,
    key: *mut i32,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { property(chan, key, |c| c.key().raw()) }
}

/// The ring's bytes per lane. Errors and safety as `shmchan_channel_id`.
///
/// # Safety
///
/// As `shmchan_channel_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_capacity(
    chan: *mut shmchan_channel,
    bytes: *mut usize,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { property(chan, bytes, Channel::capacity) }
}

/// The largest message the channel carries (capacity minus the 8-byte
/// frame header). Errors and safety as `shmchan_channel_id`.
///
/// # Safety
///
/// As `shmchan_channel_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_max_message_len(
    chan: *mut shmchan_channel,
    bytes: *mut usize,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { property(chan, bytes, Channel::max_message_len) }
}

/// Takes a sender role (a lane) on the channel and stores the sender's
/// handle in `*out` (NULL on failure).
///
/// # Errors
///
/// `SHMCHAN_E_ROLE_TAKEN` while every lane is held by a live sender, in
/// any process; `SHMCHAN_E_REMOVED`; `SHMCHAN_E_CORRUPTED`; `SHMCHAN_E_OS`;
/// `SHMCHAN_E_NULL`, `SHMCHAN_E_CLOSED`.
///
/// # Safety
///
/// `out` is NULL or writable; `chan` is not being closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_sender(
    chan: *mut shmchan_channel,
    out: *mut *mut shmchan_sender,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { new_role(chan, out, |c| Ok(Tx::new(c.sender()?))) }
}

/// Takes the receiver role (one per channel) and stores the receiver's
/// handle in `*out` (NULL on failure). Errors as `shmchan_channel_sender`.
///
/// # Safety
///
/// As `shmchan_channel_sender`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmchan_channel_receiver(
    chan: *mut shmchan_channel,
    out: *mut *mut shmchan_receiver,
) -> shmchan_status {
    // SAFETY: as the caller promises.
    unsafe { new_role(chan, out, |c| Ok(Rx::new(c.receiver()?))) }
}

/// A role handle made from a channel, into `*out`.
///
/// # Safety
///
/// `out` is NULL or writable; `chan` is not being closed.
unsafe fn new_role<T: Handled>(
    chan: *mut shmchan_channel,
    out: *mut *mut T::C,
    make: impl FnOnce(&Channel) -> Result<T, Failure>,
) -> shmchan_status {
    run(|| {
        // SAFETY: NULL or writable by the caller's promise.
        let out = unsafe { arg::out(out, "out") }?;
        out.write(std::ptr::null_mut());
        // SAFETY: not closed meanwhile, by the caller's promise.
        let chan = unsafe { handle::get::<Channel>(chan) }?;
        out.write(handle::insert(make(chan)?)?);
        Ok(())
    })
}
