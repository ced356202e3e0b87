//! Plain-old-data values (feature `bytemuck`): a `bytemuck::Pod` type sent
//! as its bytes and read back by copy or in place, with no encoding at
//! all.
//!
//! Every payload starts 8-byte aligned (docs/layout.md, section 3,
//! "Frames": frames start at 8-aligned offsets of regions that are
//! 128-byte aligned, and the payload follows the 8-byte frame header). So
//! a type aligned to at most 8 bytes can be read in place; one aligned
//! above that is refused by every call here, whether or not a given
//! payload happens to sit at a larger alignment, so that the answer never
//! depends on where the ring stands. The length must be exactly the
//! type's size. Both checks happen before any reference is made, and
//! `bytemuck::try_from_bytes` checks both again: no call here can build a
//! misaligned or short `&T`. Only the public byte API is used.

use std::any::type_name;
use std::mem::{align_of, size_of};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::{How, Receiver, RecvGuard, Sender, deadline_after};
use crate::error::{Error, Result};

/// The alignment every payload has in the ring (docs/layout.md, section 3).
const PAYLOAD_ALIGN: usize = 8;

impl Sender {
    /// Sends a plain-old-data value as its bytes (`size_of::<T>()` of
    /// them, one copy into the ring), waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`Error::PodMismatch`] when `T` is aligned above 8 bytes (a receiver
    /// could not read it in place); and as [`send`](Self::send). On any
    /// error nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytemuck::{Pod, Zeroable};
    /// use shmchan::{Channel, Key, Options};
    ///
    /// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Tick { price: f64, volume: u32, venue: u32 }
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// let tick = Tick { price: 101.5, volume: 300, venue: 7 };
    /// tx.send_pod(&tick)?; // 16 bytes, as they are in memory
    /// assert_eq!(rx.recv_pod::<Tick>()?, tick);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn send_pod<T: Pod>(&mut self, value: &T) -> Result<()> {
        send_pod_via(self, value, How::Block(None))
    }

    /// Sends a plain-old-data value if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`], and as [`send_pod`](Self::send_pod). On any error
    /// nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.try_send_pod(&[7u64; 256])?; // 2048 bytes, 2056 with the frame
    /// tx.try_send(&[0; 2000])?; // 2008 of the 2040 bytes left
    /// assert!(matches!(tx.try_send_pod(&[7u64; 4]), Err(Error::Full)));
    /// assert_eq!(rx.recv_pod::<[u64; 256]>()?, [7; 256]);
    /// tx.try_send_pod(&[7u64; 4])?;
    /// chan.remove()?; // it holds messages: it would outlive us
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_send_pod<T: Pod>(&mut self, value: &T) -> Result<()> {
        send_pod_via(self, value, How::Try)
    }

    /// Sends a plain-old-data value, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`send_pod`](Self::send_pod). On any
    /// error nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let _rx = chan.receiver()?; // attached, but reads nothing
    /// tx.send(&[0; 4088])?; // fills the ring
    /// let r = tx.send_pod_timeout(&1u32, Duration::from_millis(1));
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// chan.remove()?; // it holds a message: it would outlive us
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_pod_timeout<T: Pod>(&mut self, value: &T, timeout: Duration) -> Result<()> {
        send_pod_via(self, value, How::Block(deadline_after(timeout)))
    }

    /// Sends a plain-old-data value, waiting for room until `deadline` at
    /// the latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing sent), and as
    /// [`send_pod`](Self::send_pod).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.send_pod_deadline(&7u64, Instant::now() + Duration::from_millis(1))?;
    /// assert_eq!(rx.recv_pod::<u64>()?, 7);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_pod_deadline<T: Pod>(&mut self, value: &T, deadline: Instant) -> Result<()> {
        send_pod_via(self, value, How::Block(Some(deadline)))
    }

    /// Sends a plain-old-data value, waiting for room without blocking
    /// the executor: the async [`send_pod`](Self::send_pod) (see
    /// [`send_async`](Self::send_async) for how it waits).
    ///
    /// # Cancel safety
    ///
    /// As [`send_async`](Self::send_async): a future dropped before it
    /// completed sent nothing.
    ///
    /// # Errors
    ///
    /// As [`send_pod`](Self::send_pod).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// rt.block_on(async {
    ///     tx.send_pod_async(&[1.5f32, 2.5]).await?;
    ///     assert_eq!(rx.recv_pod_async::<[f32; 2]>().await?, [1.5, 2.5]);
    ///     Ok::<(), shmchan::Error>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_pod_async<T: Pod>(&mut self, value: &T) -> Result<()> {
        check::<T>(size_of::<T>())?;
        self.send_async(bytemuck::bytes_of(value)).await
    }
}

impl Receiver {
    /// Receives the next message as a plain-old-data value (a copy of its
    /// bytes), waiting for one.
    ///
    /// A message whose length is not `size_of::<T>()`, or a `T` aligned
    /// above 8 bytes, is [`Error::PodMismatch`], and the message **has
    /// been consumed**, as `recv_value` (feature `serde`) consumes one
    /// that does not decode: the next call receives the message after it.
    /// To look before consuming, use [`recv_ref`](Self::recv_ref) and
    /// [`RecvGuard::as_pod`].
    ///
    /// # Errors
    ///
    /// [`Error::PodMismatch`] (the message consumed), and as
    /// [`recv`](Self::recv) (nothing consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.send(b"abc")?; // 3 bytes: no u32
    /// tx.send_pod(&42u32)?;
    /// assert!(matches!(rx.recv_pod::<u32>(), Err(Error::PodMismatch { len: 3, .. })));
    /// assert_eq!(rx.recv_pod::<u32>()?, 42); // the short one was consumed
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn recv_pod<T: Pod>(&mut self) -> Result<T> {
        self.recv_ref()?.as_pod::<T>().copied()
    }

    /// Receives a plain-old-data value if a message is queued now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] (nothing consumed), and as
    /// [`recv_pod`](Self::recv_pod).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// assert!(matches!(rx.try_recv_pod::<u16>(), Err(Error::Empty)));
    /// tx.send_pod(&[1u16, 2, 3])?;
    /// assert_eq!(rx.try_recv_pod::<[u16; 3]>()?, [1, 2, 3]);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv_pod<T: Pod>(&mut self) -> Result<T> {
        self.try_recv_ref()?.as_pod::<T>().copied()
    }

    /// Receives a plain-old-data value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing consumed), and as
    /// [`recv_pod`](Self::recv_pod).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// let wait = Duration::from_millis(1);
    /// assert!(matches!(rx.recv_pod_timeout::<f64>(wait), Err(Error::Timeout)));
    /// tx.send_pod(&0.5f64)?;
    /// assert_eq!(rx.recv_pod_timeout::<f64>(wait)?, 0.5);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_pod_timeout<T: Pod>(&mut self, timeout: Duration) -> Result<T> {
        self.recv_ref_timeout(timeout)?.as_pod::<T>().copied()
    }

    /// Receives a plain-old-data value, waiting until `deadline` at the
    /// latest (a value already queued is received even when the deadline
    /// has passed).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing consumed), and as
    /// [`recv_pod`](Self::recv_pod).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_pod_deadline::<u32>(soon), Err(Error::Timeout)));
    /// tx.send_pod(&9u32)?;
    /// assert_eq!(rx.recv_pod_deadline::<u32>(soon)?, 9); // past, but queued
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_pod_deadline<T: Pod>(&mut self, deadline: Instant) -> Result<T> {
        self.recv_ref_deadline(deadline)?.as_pod::<T>().copied()
    }

    /// Receives a plain-old-data value, waiting without blocking the
    /// executor: the async [`recv_pod`](Self::recv_pod) (see
    /// [`recv_async`](Self::recv_async) for how it waits).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a future dropped before it completed has consumed
    /// nothing. A message of the wrong length is consumed by the poll that
    /// returns [`Error::PodMismatch`], as with `recv_pod`.
    ///
    /// # Errors
    ///
    /// As [`recv_pod`](Self::recv_pod).
    ///
    /// # Examples
    ///
    /// See [`Sender::send_pod_async`].
    pub async fn recv_pod_async<T: Pod>(&mut self) -> Result<T> {
        self.recv_ref_async().await?.as_pod::<T>().copied()
    }
}

impl RecvGuard<'_> {
    /// The payload read in place as a plain-old-data value, for as long
    /// as the guard is held (no copy). Payloads are 8-byte aligned in the
    /// ring, so any `T` aligned to at most 8 bytes can be read.
    ///
    /// This consumes nothing by itself: the message is released when the
    /// guard drops, whether or not it was a `T`.
    ///
    /// The bytes stay in shared memory while the reference lives: a
    /// well-behaved sender never touches them before the guard drops, but
    /// a hostile process with access to the segment could change them
    /// under it (any bit pattern is still a valid `T`, which is what
    /// `Pod` promises).
    ///
    /// # Errors
    ///
    /// [`Error::PodMismatch`] when the payload's length is not
    /// `size_of::<T>()` or `T` is aligned above 8 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytemuck::{Pod, Zeroable};
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Frame { seq: u64, samples: [i16; 256] }
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.send_pod(&Frame { seq: 9, samples: [3; 256] })?;
    /// let msg = rx.recv_ref()?;
    /// let frame: &Frame = msg.as_pod()?; // in the ring, not a copy
    /// assert_eq!((frame.seq, frame.samples[255]), (9, 3));
    /// assert!(matches!(msg.as_pod::<u64>(), Err(Error::PodMismatch { .. })));
    /// drop(msg); // released here
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn as_pod<T: Pod>(&self) -> Result<&T> {
        let payload: &[u8] = self;
        check::<T>(payload.len())?;
        bytemuck::try_from_bytes(payload).map_err(|_| mismatch::<T>(payload.len()))
    }
}

/// Sends `value` into a frame reserved for its size, copied as a `T` (a
/// move the compiler sizes, inline), not as bytes through `send`: in the
/// default release profile `send` is a call, so the copy's length is not
/// known there, and the `memcpy` it calls loads a 64-byte struct with one
/// 64-byte load, which a value just stored field by field (a struct built
/// before the call) cannot feed from the store buffer: it stalls until
/// those stores reach the cache.
#[inline]
fn send_pod_via<T: Pod>(tx: &mut Sender, value: &T, how: How) -> Result<()> {
    check::<T>(size_of::<T>())?;
    let mut grant = tx.reserve_how(size_of::<T>(), how)?;
    match bytemuck::try_from_bytes_mut::<T>(&mut grant) {
        Ok(slot) => *slot = *value,
        // Not met: `check` refused a type aligned above the payload's 8
        // bytes, and the grant holds exactly `size_of::<T>()` bytes.
        Err(_) => grant.copy_from_slice(bytemuck::bytes_of(value)),
    }
    grant.commit()
}

/// Whether a payload of `len` bytes can be a `T` in the ring: `T` aligned
/// to at most [`PAYLOAD_ALIGN`] and `len` its size.
#[inline]
fn check<T>(len: usize) -> Result<()> {
    if align_of::<T>() > PAYLOAD_ALIGN || len != size_of::<T>() {
        return Err(mismatch::<T>(len));
    }
    Ok(())
}

#[cold]
fn mismatch<T>(len: usize) -> Error {
    Error::PodMismatch {
        type_name: type_name::<T>(),
        len,
        expected: size_of::<T>(),
        align: align_of::<T>(),
    }
}
