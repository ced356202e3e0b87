//! `Receiver`, its zero-copy `RecvGuard`, and `Iter`.
//!
//! `unsafe` is allowed here for two things: building a consumer over the
//! mapping that the receiver's role hold keeps attached, and handing out a
//! validated frame's payload as `&[u8]` for the life of a guard.
//!
//! The bounds of every such read come from the receiver's private, checked
//! copy of the frame, so no input can make it read outside the data region.
//! A hostile process can still scribble on the payload bytes while they are
//! read: the receiver then gets scribbled bytes (memory is shared with that
//! process by design), never an out-of-bounds access.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::party::{PeerWatch, RoleHold, SemParker};
use super::shared::Shared;
use super::{How, Poison, deadline_after};
use crate::error::{Error, Result, Role};
use crate::layout::{bump, sem};
use crate::ring::{Consumer, Frame};
use crate::wait::{self, CatchUp, Phase};

/// The receiving side of a channel. One per channel at a time.
///
/// Messages arrive whole and in the order they were committed. Delivery is
/// exactly once while no receiver dies, and at least once across a
/// receiver's death: a message being read when its receiver was killed
/// (before `recv` returned, or while a [`RecvGuard`] was held) is still in
/// the ring for the next receiver.
///
/// `Send` but not `Sync`. Not fork-safe: a forked child must open its own.
///
/// ```
/// fn send<T: Send>() {}
/// send::<shmchan::Receiver>();
/// ```
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<shmchan::Receiver>(); // not Sync: one receiver, one thread at a time
/// ```
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Error, Key, Options};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new())?;
/// let mut rx = chan.receiver()?;
/// let mut tx = chan.sender()?;
/// tx.send(b"one")?;
/// tx.send(b"two")?;
/// drop(tx);
/// let got: Vec<Vec<u8>> = rx.iter().collect();
/// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
/// assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug)]
pub struct Receiver {
    hold: RoleHold,
    ring: Consumer,
    pace: CatchUp,
    peer: PeerWatch,
    poison: Poison,
    spin: Duration,
    received: u64,
    bytes: u64,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the raw pointers in `ring` point into the mapping that `hold`
// keeps attached; they are valid from any thread, and `&mut self` methods
// keep the single-consumer rule within the process.
unsafe impl Send for Receiver {}

impl Receiver {
    pub(crate) fn attach(shared: Arc<Shared>, spin: Duration) -> Result<Receiver> {
        let watch = PeerWatch::snapshot(&shared, Role::Sender);
        shared.register_fences()?;
        let hold = RoleHold::claim(shared, Role::Receiver)?;
        let s = hold.shared();
        // SAFETY: the ring lies in the mapping that `hold` keeps attached for
        // the life of the Receiver, and the receiver role (held) guarantees
        // no other consumer.
        let ring = unsafe { Consumer::new(s.view.ring(&s.geometry), s.geometry.max_message) }
            .map_err(|c| s.corrupted(c.0))?;
        let peer = watch.start(s, ring.has_cached())?;
        hold.announce();
        let counters = &s.header().rx.counters;
        let received = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let pace = CatchUp::new(s.geometry.capacity);
        Ok(Receiver {
            hold,
            ring,
            pace,
            peer,
            poison: Poison::default(),
            spin,
            received,
            bytes,
            _not_sync: PhantomData,
        })
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] once every committed message is received and
    /// the sender this receiver has seen is gone (a receiver that has seen
    /// no sender waits for one); [`Error::Removed`]; [`Error::Corrupted`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"last words")?;
    /// drop(tx);
    /// assert_eq!(rx.recv()?, b"last words"); // drained first
    /// assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into(&mut buf)?;
        Ok(buf)
    }

    /// Receives the next message into `buf`, replacing its contents and
    /// reusing its allocation; returns the message length.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"first")?;
    /// tx.send(b"2nd")?;
    /// let mut buf = Vec::new(); // one allocation for every message
    /// assert_eq!(rx.recv_into(&mut buf)?, 5);
    /// assert_eq!(rx.recv_into(&mut buf)?, 3);
    /// assert_eq!(buf, b"2nd");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_into_how(buf, How::Block(None))
    }

    /// Receives a message if one is queued now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when none is queued, and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    /// tx.send(b"now")?;
    /// assert_eq!(rx.try_recv()?, b"now");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into_how(&mut buf, How::Try)?;
        Ok(buf)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let r = rx.recv_timeout(Duration::from_millis(1));
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// tx.send(b"in time")?;
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1))?, b"in time");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into_how(&mut buf, How::Block(deadline_after(timeout)))?;
        Ok(buf)
    }

    /// Receives the next message in place: the guard derefs to the payload
    /// in the ring, released when the guard drops.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"in place")?;
    /// let msg = rx.recv_ref()?; // the payload in the ring, not a copy
    /// assert_eq!(&*msg, b"in place");
    /// assert_eq!(msg.len(), 8);
    /// drop(msg); // the space goes back to the sender
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_ref(&mut self) -> Result<RecvGuard<'_>> {
        self.guard_how(How::Block(None))
    }

    /// Receives in place if a message is queued now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// assert!(matches!(rx.try_recv_ref(), Err(Error::Empty)));
    /// tx.send(b"here")?;
    /// assert_eq!(*rx.try_recv_ref()?, *b"here");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv_ref(&mut self) -> Result<RecvGuard<'_>> {
        self.guard_how(How::Try)
    }

    /// Receives in place, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let wait = Duration::from_millis(1);
    /// assert!(matches!(rx.recv_ref_timeout(wait), Err(Error::Timeout)));
    /// tx.send(b"late")?;
    /// assert_eq!(*rx.recv_ref_timeout(wait)?, *b"late");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvGuard<'_>> {
        self.guard_how(How::Block(deadline_after(timeout)))
    }

    /// Iterates over messages until the sender disconnects. Any other error
    /// ends the iteration too, and [`Iter::take_error`] returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// for word in ["a", "b", "c"] {
    ///     tx.send(word.as_bytes())?;
    /// }
    /// drop(tx); // the iterator ends once the sender is gone and all is read
    /// let got: Vec<Vec<u8>> = rx.iter().collect();
    /// assert_eq!(got, [b"a", b"b", b"c"]);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_> {
        Iter {
            rx: self,
            error: None,
        }
    }

    /// The largest message this channel carries (capacity minus 8).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let rx = chan.receiver()?;
    /// assert_eq!(rx.max_message_len(), 4096 - shmchan::FRAME_OVERHEAD);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn max_message_len(&self) -> usize {
        self.hold.shared().geometry.max_message as usize
    }

    /// Sets how long this handle spins (then yields) before parking.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// rx.set_spin(Duration::ZERO); // park at once: no busy core while idle
    /// let r = rx.recv_timeout(Duration::from_millis(1));
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn set_spin(&mut self, budget: Duration) {
        self.spin = budget;
    }

    /// Sets how long this receiver pauses once when it has caught up with
    /// a streaming sender (default 2 µs; zero: never), so that it reads a
    /// batch of finished cache lines instead of pulling each line across
    /// as it is written.
    ///
    /// The trade-off: a message in the middle of a stream may wait up to
    /// this long; one that ends a wait on an empty ring never does, so
    /// round trips are not delayed. When and why it pauses: the README's
    /// "Blocking"; the figures: benchmarks/README.md.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new())?;
    /// let mut rx = chan.receiver()?;
    /// rx.set_catch_up(Duration::ZERO); // read every message as it comes
    /// let mut tx = chan.sender()?;
    /// tx.send(b"now")?;
    /// assert_eq!(rx.recv()?, b"now");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn set_catch_up(&mut self, pause: Duration) {
        self.pace.set_pause(pause);
    }

    #[inline]
    fn recv_into_how(&mut self, buf: &mut Vec<u8>, how: How) -> Result<usize> {
        let frame = self.next_frame(how)?;
        let len = frame.len as usize;
        buf.clear();
        buf.reserve(len);
        // SAFETY: peek validated the frame: its payload lies inside the data
        // region and was committed (published with Release, read after the
        // Acquire load of tail); buf has room for len bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ring.payload(frame), buf.as_mut_ptr(), len);
            buf.set_len(len);
        }
        // The message is ours now; a failed wake-up (the set was removed)
        // is reported by the next call that waits, not by losing it here.
        let _ = self.release(frame);
        Ok(len)
    }

    fn guard_how(&mut self, how: How) -> Result<RecvGuard<'_>> {
        let frame = self.next_frame(how)?;
        Ok(RecvGuard { rx: self, frame })
    }

    /// The next frame: the common case without building a `Result` or
    /// looking at the poison again; everything else (errors, padding,
    /// waiting) on the slow path, which repeats every check and remembers
    /// a `Corrupted`.
    #[inline]
    fn next_frame(&mut self, how: How) -> Result<Frame> {
        match self.fast_frame() {
            Some(frame) => Ok(frame),
            None => {
                let r = self.find_frame_slow(how);
                self.poison.record(r)
            }
        }
    }

    /// Not poisoned, not closed, a frame queued, no released padding to
    /// announce (peek again on the slow path returns the same frame).
    #[inline]
    fn fast_frame(&mut self) -> Option<Frame> {
        if self.poison.is_set() || self.hold.shared().is_closed() {
            return None;
        }
        match self.ring.peek_paced(&mut self.pace) {
            Ok(Some(frame)) if !self.ring.padding_pending() => Some(frame),
            _ => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn find_frame_slow(&mut self, how: How) -> Result<Frame> {
        self.poison.check()?;
        let s = self.hold.shared();
        s.check_open()?;
        if let Some(frame) = peek(&mut self.ring, &mut self.pace, s)? {
            return Ok(frame);
        }
        bump(&s.header().rx.counters.stalls);
        match how {
            How::Try => match self.peer.gone(s)? {
                // The sender may have committed and exited after our peek.
                true => peek(&mut self.ring, &mut self.pace, s)?.ok_or(Error::Disconnected),
                false => Err(Error::Empty),
            },
            How::Block(deadline) => self.wait_frame(deadline),
        }
    }

    fn wait_frame(&mut self, deadline: Option<Instant>) -> Result<Frame> {
        let s = self.hold.shared();
        let (ring, pace, peer) = (&mut self.ring, &mut self.pace, &mut self.peer);
        let h = s.header();
        let mut parker = SemParker {
            shared: s,
            num: sem::RX_WAKE,
            counters: &h.rx.counters,
        };
        wait::wait(
            &h.rx_waiting.waiting,
            s.fences(),
            self.spin,
            deadline,
            &mut parker,
            |phase| {
                if let Some(frame) = peek(ring, pace, s)? {
                    return Ok(Some(frame));
                }
                s.check_open()?;
                if phase == Phase::BeforePark && peer.gone(s)? {
                    // The sender may have committed and exited after our peek.
                    return peek(ring, pace, s)?.map(Some).ok_or(Error::Disconnected);
                }
                Ok(None)
            },
        )
    }

    fn release(&mut self, frame: Frame) -> Result<()> {
        self.ring.release(frame);
        self.peer.mark_seen();
        // Wrapping: the counters start from values read from the segment.
        self.received = self.received.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(frame.len);
        let s = self.hold.shared();
        let counters = &s.header().rx.counters;
        counters.messages.store(self.received, Ordering::Relaxed);
        counters.bytes.store(self.bytes, Ordering::Relaxed);
        wake_sender(s)
    }
}

/// One look at the ring; wakes the sender when padding was released on
/// the way (it may be waiting for exactly that room).
fn peek(ring: &mut Consumer, pace: &mut CatchUp, s: &Shared) -> Result<Option<Frame>> {
    let r = ring.peek_paced(pace);
    // Padding released before a corrupt frame was met is released all
    // the same: wake a sender waiting for that room first.
    if ring.take_released_padding() {
        wake_sender(s)?;
    }
    r.map_err(|c| s.corrupted(c.0))
}

/// The waker's half of the handshake in `wait`, for a sender waiting for
/// room.
fn wake_sender(s: &Shared) -> Result<()> {
    let h = s.header();
    if wait::notify(&h.tx_waiting.waiting, s.fences()) {
        bump(&h.rx.counters.wakes);
        s.post(sem::TX_WAKE)?;
    }
    Ok(())
}

/// A message read in place by [`Receiver::recv_ref`]. Derefs to the payload;
/// the space goes back to the sender when the guard drops. A receiver that
/// dies holding a guard has not released it: the message is still there for
/// the next receiver.
#[derive(Debug)]
pub struct RecvGuard<'a> {
    rx: &'a mut Receiver,
    frame: Frame,
}

impl Deref for RecvGuard<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the frame was validated by peek (inside the data region,
        // committed); the sender does not reuse it until we release it on
        // drop.
        unsafe {
            std::slice::from_raw_parts(self.rx.ring.payload(self.frame), self.frame.len as usize)
        }
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        // An error here means the semaphore set was removed while waking the
        // sender; the next call on the receiver reports `Removed`.
        let _ = self.rx.release(self.frame);
    }
}

/// Iterator over received messages, made by [`Receiver::iter`]: each
/// `next` is a blocking [`recv`](Receiver::recv).
///
/// It ends (`None`) when `recv` fails. At [`Error::Disconnected`] that is
/// the normal end, as in `std::sync::mpsc`. Any other error (the channel
/// was [`Removed`](Error::Removed) or [`Corrupted`](Error::Corrupted), the
/// kernel refused a call) ends it too, and the iterator keeps that error
/// for the caller: [`take_error`](Iter::take_error) says why it stopped.
/// Iterating again calls `recv` again (a new sender may have attached).
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new())?;
/// let mut rx = chan.receiver()?;
/// let mut tx = chan.sender()?;
/// tx.send(b"one")?;
/// drop(tx); // the sender is gone: the iterator ends after "one"
/// let mut iter = rx.iter();
/// assert_eq!(iter.by_ref().count(), 1);
/// assert!(iter.take_error().is_none()); // it ended at Disconnected
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug)]
pub struct Iter<'a> {
    rx: &'a mut Receiver,
    error: Option<Error>,
}

impl Iter<'_> {
    /// The error that ended the iteration, unless it was
    /// [`Error::Disconnected`] (the normal end); `None` while it has not
    /// ended. Takes it: a second call returns `None`.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

impl Iterator for Iter<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        match self.rx.recv() {
            Ok(msg) => Some(msg),
            Err(Error::Disconnected) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// `for msg in &mut rx` is `rx.iter()`; the iterator is dropped with the
/// loop, so to learn why it ended keep `rx.iter()` in a variable and call
/// [`Iter::take_error`] (or call `recv` once more: `Removed` and
/// `Corrupted` persist).
impl<'a> IntoIterator for &'a mut Receiver {
    type Item = Vec<u8>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
