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

mod batch;
mod future;

pub use batch::TryIter;
#[cfg(feature = "async")]
pub use future::RecvStream;

use std::cell::Cell;
use std::marker::PhantomData;
use std::num::{NonZeroU32, NonZeroU64};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::party::{ChanSleeper, PeerWatch, RoleHold, SemParker};
use super::sender::{SenderId, session_of_tag};
use super::shared::Shared;
use super::view::{HeaderPtr, LanePtrs, View};
use super::{How, Poison, deadline_after};
use crate::error::{Error, Result, Role};
use crate::helper::Helper;
use crate::layout::{LaneRefs, bump, sem};
use crate::ring::{Consumer, Fast, Frame};
use crate::wait::{self, CatchUp, Fences, Phase};

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
    /// Parks for the async calls. First, so that it drops (stopping and
    /// joining its thread, which parks on RX_WAKE) before `hold` gives
    /// the role up: fields drop in declaration order.
    helper: Helper<ChanSleeper>,
    hold: RoleHold,
    /// The header of the mapping that `hold` keeps attached, and its
    /// fences: the fast path's without `hold`'s loads.
    header: HeaderPtr,
    fences: Fences,
    /// The frame the slow path found, for `next_frame` to take.
    found: Option<At>,
    lanes: Lanes,
    peer: PeerWatch,
    poison: Poison,
    spin: Duration,
    received: u64,
    bytes: u64,
    /// When the wait of `poll_recv_into`/`poll_recv_from` began to spin
    /// (the async fns keep their own).
    poll_spun: Option<Instant>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the raw pointers in `ring` and the lane pointers point into
// the mapping that `hold` keeps attached; they are valid from any thread,
// and `&mut self` methods keep the single-consumer rule within the process.
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
        let lanes = Lanes::attach(s)?;
        let peer = watch.start(s, lanes.has_cached())?;
        hold.announce();
        let counters = &s.header().rx.counters;
        let received = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        // SAFETY: the Receiver keeps `hold`, and with it the mapping, for
        // as long as it keeps the pointer.
        let header = unsafe { HeaderPtr::new(s) };
        let fences = s.fences();
        let helper = Helper::new(ChanSleeper::new(hold.shared(), sem::RX_WAKE, None));
        Ok(Receiver {
            helper,
            hold,
            header,
            fences,
            found: None,
            lanes,
            peer,
            poison: Poison::default(),
            spin,
            received,
            bytes,
            poll_spun: None,
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
        self.recv_into_how::<false>(buf, How::Block(None))
            .map(|(len, _)| len)
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
        self.recv_into_how::<false>(&mut buf, How::Try)?;
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
        match deadline_after(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv(),
        }
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
    #[inline]
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
    #[inline]
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
        match deadline_after(timeout) {
            Some(deadline) => self.recv_ref_deadline(deadline),
            None => self.recv_ref(),
        }
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
        for lane in &mut *self.lanes.lanes {
            lane.pace.set_pause(pause);
        }
    }

    /// Receives the next message and the sender it came from, waiting for
    /// one.
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
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"ping")?;
    /// let (msg, from) = rx.recv_from()?;
    /// assert_eq!((msg.as_slice(), from), (&b"ping"[..], tx.id()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_from(&mut self) -> Result<(Vec<u8>, SenderId)> {
        let mut buf = Vec::new();
        let (_, from) = self.recv_into_how::<true>(&mut buf, How::Block(None))?;
        Ok((buf, known(from)))
    }

    /// Receives a message and its sender if one is queued now.
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
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// assert!(matches!(rx.try_recv_from(), Err(Error::Empty)));
    /// tx.send(b"now")?;
    /// assert_eq!(rx.try_recv_from()?.1, tx.id());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv_from(&mut self) -> Result<(Vec<u8>, SenderId)> {
        let mut buf = Vec::new();
        let (_, from) = self.recv_into_how::<true>(&mut buf, How::Try)?;
        Ok((buf, known(from)))
    }

    /// Receives a message and its sender, waiting at most `timeout`.
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
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// let wait = Duration::from_millis(1);
    /// assert!(matches!(rx.recv_from_timeout(wait), Err(Error::Timeout)));
    /// tx.send(b"late")?;
    /// assert_eq!(rx.recv_from_timeout(wait)?.1, tx.id());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_from_timeout(&mut self, timeout: Duration) -> Result<(Vec<u8>, SenderId)> {
        match deadline_after(timeout) {
            Some(deadline) => self.recv_from_deadline(deadline),
            None => self.recv_from(),
        }
    }

    #[inline]
    /// Receives into `buf`; with `FROM`, also says who sent it (the tag
    /// lookup costs a compare per message, so plain receives skip it).
    fn recv_into_how<const FROM: bool>(
        &mut self,
        buf: &mut Vec<u8>,
        how: How,
    ) -> Result<(usize, Option<SenderId>)> {
        let at = self.next_frame(how)?;
        Ok(self.take_into::<FROM>(at, buf))
    }

    /// Copies the message `at` into `buf` and releases it; with `FROM`,
    /// also says who sent it. Always inlined: LTO kept it a call of its
    /// own (seven callers), and `recv_into` at 8 B ran at 0.83x, the
    /// async receive at 0.68x (benchmarks/README.md, "`take_into`
    /// inlined").
    #[inline(always)]
    fn take_into<const FROM: bool>(
        &mut self,
        at: At,
        buf: &mut Vec<u8>,
    ) -> (usize, Option<SenderId>) {
        let len = at.frame().len as usize;
        buf.clear();
        buf.reserve(len);
        // SAFETY: peek validated the frame: its payload lies inside the data
        // region and was committed (published with Release, read after the
        // Acquire load of tail); buf has room for len bytes.
        unsafe {
            let from = self.lanes.of(at).ring.payload(at.frame());
            std::ptr::copy_nonoverlapping(from, buf.as_mut_ptr(), len);
            buf.set_len(len);
        }
        let from = FROM.then(|| self.lanes.sender_of(at, self.hold.shared()));
        // The message is ours now; a failed wake-up (the set was removed)
        // is reported by the next call that waits, not by losing it here.
        let _ = self.release(at);
        (len, from)
    }

    /// For bindings (the C interface), not a stable API: copies the next
    /// message into `buf` and releases it, if one is queued now, fits in
    /// `buf` and needs nothing of the slow path (no error, no padding to
    /// skip). `None` consumes nothing: ask
    /// [`try_recv_ref`](Self::try_recv_ref) or its siblings, which then
    /// say why.
    ///
    /// It exists because a binding hands every message across a call it
    /// cannot inline, and a [`RecvGuard`] returned through memory is
    /// copied with wider loads than it was written with: a
    /// store-forwarding stall on every message, which cost the C
    /// interface 3x at 64 B (`benchmarks/README.md`, "The receive path's
    /// store-forwarding stall"). Here the frame never leaves registers.
    ///
    /// It never panics: the C interface calls it outside `catch_unwind`
    /// (`benchmarks/README.md`, "The C interface's call overhead").
    #[doc(hidden)]
    #[inline(always)]
    pub fn copy_queued(&mut self, buf: &mut [u8]) -> Option<usize> {
        let at = self.fast_frame()?;
        let len = at.frame().len as usize;
        let Some(dst) = buf.get_mut(..len) else {
            self.lanes.unread(at);
            return None;
        };
        // SAFETY: fast_frame validated the frame: its payload lies inside
        // the data region and was committed (published with Release, read
        // after the Acquire load of tail); dst is len bytes.
        unsafe {
            let from = self.lanes.of(at).ring.payload(at.frame());
            std::ptr::copy_nonoverlapping(from, dst.as_mut_ptr(), len);
        }
        // The message is ours now; a failed wake-up (the set was removed)
        // is reported by the next call that waits, not by losing it here.
        let _ = self.release_now(at);
        Some(len)
    }

    #[inline(always)]
    fn guard_how(&mut self, how: How) -> Result<RecvGuard<'_>> {
        let at = self.next_frame(how)?;
        // The caller reads the payload in place: start its lines coming.
        self.lanes.of(at).ring.prefetch_payload(at.frame());
        Ok(RecvGuard { rx: self, at })
    }

    /// The next frame: the common case without building a `Result` or
    /// looking at the poison again; everything else (errors, padding,
    /// waiting) on the slow path, which repeats every check
    /// and remembers a `Corrupted`.
    ///
    /// Always inlined, and the two paths meet on an `At`, not on a
    /// `Result<At>`: that enum lives in memory, and a fast path that
    /// stored its `At` there field by field, for the caller to read it
    /// back with wider loads, stalled on every message
    /// (`benchmarks/README.md`, "The receive path's store-forwarding
    /// stall").
    ///
    /// The slow path leaves its frame in `self.found` rather than
    /// returning it: returned through memory, into the slot where the
    /// compiler merges the two paths' frames, it made the fast path store
    /// its frame there too, field by field, for a wider load to stall on.
    #[inline(always)]
    fn next_frame(&mut self, how: How) -> Result<At> {
        let at = match self.fast_frame() {
            Some(at) => at,
            None => {
                self.slow_frame(how)?;
                match self.found.take() {
                    Some(at) => at,
                    None => return Err(self.lost_frame()),
                }
            }
        };
        Ok(at)
    }

    /// The slow path: on `Ok`, the frame is in `self.found`.
    #[cold]
    #[inline(never)]
    fn slow_frame(&mut self, how: How) -> Result<()> {
        let r = self.find_frame_slow(how);
        self.found = Some(self.poison.record(r)?);
        Ok(())
    }

    /// What `next_frame` says should `slow_frame` ever return `Ok` without
    /// a frame (it cannot: kept rather than a panic).
    #[cold]
    fn lost_frame(&self) -> Error {
        self.hold
            .shared()
            .corrupted("the receiver's slow path returned no frame".to_owned())
    }

    /// Not poisoned, not closed, a message queued, nothing to announce or
    /// record on the way (the slow path looks again and does that).
    #[inline(always)]
    fn fast_frame(&mut self) -> Option<At> {
        if self.poison.is_set() || self.header.get().is_closed() {
            return None;
        }
        self.lanes.fast()
    }

    /// `slow_frame`'s look (it is the one out-of-line call).
    #[inline]
    fn find_frame_slow(&mut self, how: How) -> Result<At> {
        self.poison.check()?;
        let s = self.hold.shared();
        s.check_open()?;
        if let Some(at) = self.lanes.look(s)? {
            return Ok(at);
        }
        bump(&s.header().rx.counters.stalls);
        match how {
            How::Try => match self.peer.gone(s)? {
                // A sender may have committed and exited after our look.
                true => self.lanes.look(s)?.ok_or(Error::Disconnected),
                false => Err(Error::Empty),
            },
            How::Block(deadline) => self.wait_frame(deadline),
        }
    }

    fn wait_frame(&mut self, deadline: Option<Instant>) -> Result<At> {
        // A future's park must end before this thread parks on RX_WAKE.
        self.helper.recall();
        let s = self.hold.shared();
        let (lanes, peer) = (&mut self.lanes, &mut self.peer);
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
            |phase| frame_poll(lanes, peer, s, phase),
        )
    }

    #[inline]
    fn release(&mut self, at: At) -> Result<()> {
        self.release_now(at)
    }

    /// `release`, always inlined: for `copy_queued`, whose callers are
    /// bindings' entry points, where `release` out of line (returning its
    /// `Result` through memory) cost the C pair about a quarter of its
    /// rate at 64 B (`benchmarks/README.md`, "The C interface's call
    /// overhead").
    /// The Rust paths keep `release`, which the compiler inlines or not.
    #[inline(always)]
    fn release_now(&mut self, at: At) -> Result<()> {
        self.lanes.of_mut(at).ring.release(at.frame());
        self.peer.mark_seen();
        // Wrapping: the counters start from values read from the segment.
        self.received = self.received.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(u64::from(at.frame().len));
        let counters = &self.header.get().rx.counters;
        counters.messages.store(self.received, Ordering::Relaxed);
        counters.bytes.store(self.bytes, Ordering::Relaxed);
        // SAFETY: the receiver's role hold keeps the mapping attached for
        // the life of the Receiver, and the refs do not outlive this call.
        let refs = unsafe { self.lanes.of(at).ptrs.refs() };
        wake_sender(self.fences, self.hold.shared(), at.lane() as usize, refs)
    }
}

/// A waiting receiver's look (blocking or async): a frame in any lane;
/// before a park, also whether the sender is gone.
fn frame_poll(
    lanes: &mut Lanes,
    peer: &mut PeerWatch,
    s: &Shared,
    phase: Phase,
) -> Result<Option<At>> {
    if let Some(at) = lanes.look(s)? {
        return Ok(Some(at));
    }
    s.check_open()?;
    if phase == Phase::BeforePark && peer.gone(s)? {
        // A sender may have committed and exited after our look.
        return lanes.look(s)?.map(Some).ok_or(Error::Disconnected);
    }
    Ok(None)
}

/// Messages taken from one lane before the receiver moves on to the next
/// (a turn): a message committed in one lane is received after at most
/// `(lanes - 1) x TURN` messages of other lanes.
pub(crate) const TURN: u32 = 16;

/// A message frame and the lane it is in. Made only by [`Lanes`], with an
/// index into its lanes (which never change in number): `lane` is always
/// in bounds.
///
/// Two `u64` words, not the frame's `u32`s and the lane: a pair of scalars
/// travels in two registers across a call, and wherever the compiler puts
/// an `At` in memory (to merge the fast and the slow path's) it stores and
/// loads whole words. Stored as four `u32`s, it was read back with a load
/// spanning two of them, which the store buffer cannot forward: a stall on
/// every message (`benchmarks/README.md`, "The receive path's
/// store-forwarding stall").
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    /// The frame's payload offset (low half, never 0) and length (high).
    span: NonZeroU64,
    /// The lane (low half, below `MAX_SENDERS`) and the frame's tag (high).
    meta: u64,
}

impl At {
    #[inline(always)]
    fn new(lane: usize, frame: Frame) -> At {
        At {
            span: NonZeroU64::from(frame.offset) | (u64::from(frame.len) << 32),
            meta: lane as u64 | (u64::from(frame.tag) << 32),
        }
    }

    /// The lane's index.
    #[inline(always)]
    fn lane(self) -> u32 {
        self.meta as u32
    }

    /// The frame.
    #[inline(always)]
    fn frame(self) -> Frame {
        let span = self.span.get();
        Frame {
            // SAFETY: the low half came from a `NonZeroU32` in `new`.
            offset: unsafe { NonZeroU32::new_unchecked(span as u32) },
            len: (span >> 32) as u32,
            tag: (self.meta >> 32) as u32,
        }
    }
}

/// One lane as the receiver reads it.
#[derive(Debug)]
struct RxLane {
    ring: Consumer,
    pace: CatchUp,
    /// The last tag seen, and the session it stood for.
    tag: u32,
    session: u64,
    /// The lane's fields in the mapping.
    ptrs: LanePtrs,
}

/// Every lane of the channel, served in turns (docs/lanes.md).
#[derive(Debug)]
struct Lanes {
    lanes: Box<[RxLane]>,
    /// The lane whose turn it is (always in bounds), and the messages it
    /// may still give in this turn (never 0 between calls).
    cursor: usize,
    left: u64,
    /// Messages per turn: [`TURN`], or with one lane `u64::MAX` (no turns:
    /// the count never runs out in practice, and if it did the cursor
    /// would move from lane 0 to lane 0).
    turn: u64,
}

impl Lanes {
    fn attach(s: &Shared) -> Result<Lanes> {
        let mut lanes = Vec::with_capacity(s.geometry.lanes as usize);
        for lane in View::lanes(&s.geometry) {
            // SAFETY: the ring lies in the mapping that the receiver's role
            // hold keeps attached for the life of the Receiver, and the
            // receiver role (held) guarantees no other consumer.
            let ring =
                unsafe { Consumer::new(s.view.ring(&s.geometry, lane), s.geometry.max_message) }
                    .map_err(|c| s.corrupted(lane_what(s, lane as usize, c.0)))?;
            lanes.push(RxLane {
                ring,
                pace: CatchUp::new(s.geometry.capacity),
                tag: u32::MAX, // no frame's: the first message looks up its session
                session: 0,
                ptrs: LanePtrs::of(s.view.lane(&s.geometry, lane)),
            });
        }
        let turn = if lanes.len() > 1 {
            u64::from(TURN)
        } else {
            u64::MAX
        };
        Ok(Lanes {
            lanes: lanes.into_boxed_slice(),
            cursor: 0,
            left: turn,
            turn,
        })
    }

    /// The lane of a message found here.
    #[inline]
    fn of(&self, at: At) -> &RxLane {
        debug_assert!((at.lane() as usize) < self.lanes.len());
        // SAFETY: `At`s are made only by `fast`, `fast_others` and `look`
        // below, from an index they have just used on `lanes`, whose length
        // never changes.
        unsafe { self.lanes.get_unchecked(at.lane() as usize) }
    }

    /// [`of`](Self::of), to change.
    #[inline]
    fn of_mut(&mut self, at: At) -> &mut RxLane {
        debug_assert!((at.lane() as usize) < self.lanes.len());
        // SAFETY: as in `of`.
        unsafe { self.lanes.get_unchecked_mut(at.lane() as usize) }
    }

    /// Whether any lane holds committed bytes, as last seen.
    fn has_cached(&self) -> bool {
        self.lanes.iter().any(|l| l.ring.has_cached())
    }

    /// The sender of the message `at`: its frame's tag, resolved against
    /// the lane's latest session when it is not the tag seen last.
    fn sender_of(&mut self, at: At, s: &Shared) -> SenderId {
        let lane = self.of_mut(at);
        if at.frame().tag != lane.tag {
            lane.session = session_of(at, s);
            lane.tag = at.frame().tag;
        }
        SenderId {
            lane: at.lane() as u16,
            session: lane.session,
        }
    }

    /// The next message without anything to record on the way: no padding
    /// released, no error. The lane whose turn it is first: with one lane,
    /// or one busy sender, that is the only look. Always inlined: an `At`
    /// returned through memory is copied with wider loads than it was
    /// stored with, a store-forwarding stall on every message (see
    /// [`Consumer::peek_fast`]).
    #[inline(always)]
    fn fast(&mut self) -> Option<At> {
        let i = self.cursor;
        debug_assert!(i < self.lanes.len());
        // SAFETY: `cursor` is always in bounds: it starts at 0 and is set
        // only by `took` and `end_turn`, to indices below `lanes.len()`,
        // which never changes.
        let lane = unsafe { self.lanes.get_unchecked_mut(i) };
        match lane.ring.peek_fast(&mut lane.pace) {
            Fast::Message(frame) => {
                self.left -= 1;
                if self.left == 0 {
                    self.end_turn();
                }
                Some(At::new(i, frame))
            }
            Fast::Empty if self.lanes.len() > 1 => self.fast_others(),
            Fast::Empty | Fast::Slow => None,
        }
    }

    /// [`fast`](Self::fast) for the lanes after the cursor's, which was
    /// empty: an idle lane costs two loads of lines nobody writes.
    #[inline(never)]
    fn fast_others(&mut self) -> Option<At> {
        let n = self.lanes.len();
        let mut i = self.cursor;
        for _ in 1..n {
            i = next(i, n);
            let lane = &mut self.lanes[i];
            if lane.ring.is_idle(&mut lane.pace) {
                continue;
            }
            match lane.ring.peek_fast(&mut lane.pace) {
                Fast::Message(frame) => {
                    self.took(i);
                    return Some(At::new(i, frame));
                }
                Fast::Empty => {}
                Fast::Slow => return None,
            }
        }
        None
    }

    /// Counts a message taken from lane `i` against the turns.
    #[inline]
    fn took(&mut self, i: usize) {
        if i != self.cursor {
            self.cursor = i;
            self.left = self.turn;
        }
        self.left -= 1;
        if self.left == 0 {
            self.end_turn();
        }
    }

    /// Puts the message `at` back at the front: the next look starts at
    /// its lane, with the turn that lane had before it was taken (the
    /// frame itself was never released, so its lane still holds it).
    fn unread(&mut self, at: At) {
        let lane = at.lane() as usize;
        if self.cursor == lane {
            // Taking it counted one message against this turn; when it was
            // the last of the turn, `end_turn` found every other lane idle
            // and left the turn here, full: either way one more is fine.
            self.left = self.left.saturating_add(1);
        } else {
            // It ended the lane's turn, which passed on: give it back its
            // last message.
            self.cursor = lane;
            self.left = 1;
        }
    }

    /// The cursor's lane has had its turn: the turn passes to the first
    /// lane after it that is not idle, or stays with it when every other
    /// lane is idle (where a look from the next lane would pass them all
    /// and take from it again). Deciding here, once per turn, keeps idle
    /// lanes off the per-message path; the bound of docs/layout.md
    /// (section 3) holds: a lane that gets a message just after this pass
    /// waits for one more turn of this lane and one of each lane between,
    /// at most `n - 1` turns in all.
    #[cold]
    fn end_turn(&mut self) {
        self.left = self.turn;
        let n = self.lanes.len();
        let mut i = self.cursor;
        for _ in 1..n {
            i = next(i, n);
            let lane = &mut self.lanes[i];
            if !lane.ring.is_idle(&mut lane.pace) {
                self.cursor = i;
                return;
            }
        }
    }

    /// One look at every lane, from the one whose turn it is: the first
    /// message found; released padding wakes the lane's sender.
    fn look(&mut self, s: &Shared) -> Result<Option<At>> {
        let n = self.lanes.len();
        let mut i = self.cursor;
        for _ in 0..n {
            if let Some(frame) = self.look_at(i, s)? {
                self.took(i);
                return Ok(Some(At::new(i, frame)));
            }
            i = next(i, n);
        }
        Ok(None)
    }

    /// One look at lane `i`; released padding wakes the lane's sender.
    fn look_at(&mut self, i: usize, s: &Shared) -> Result<Option<Frame>> {
        let lane = &mut self.lanes[i];
        if lane.ring.is_idle(&mut lane.pace) {
            return Ok(None);
        }
        let r = lane.ring.peek_paced(&mut lane.pace);
        // Padding released before a corrupt frame was met is released all
        // the same: wake a sender waiting for that room first.
        if lane.ring.take_released_padding() {
            // SAFETY: the receiver's role hold keeps the mapping attached for
            // the life of the Receiver, and the refs do not outlive this call.
            wake_sender(s.fences(), s, i, unsafe { lane.ptrs.refs() })?;
        }
        r.map_err(|c| s.corrupted(lane_what(s, i, c.0)))
    }
}

/// The lane after `i` of `n`, without a division.
#[inline]
fn next(i: usize, n: usize) -> usize {
    if i + 1 == n { 0 } else { i + 1 }
}

/// The sender `recv_into_how::<true>` found (always there).
fn known(from: Option<SenderId>) -> SenderId {
    from.unwrap_or(SenderId {
        lane: 0,
        session: 0,
    })
}

/// The session of the message `at`, from its tag and the lane's latest
/// session (read from the segment: an identity, never an index).
fn session_of(at: At, s: &Shared) -> u64 {
    let refs = s.view.lane(&s.geometry, at.lane() as u16);
    // Relaxed: the frame was read after the Acquire load of tail that pairs
    // with its sender's Release store, which follows the sender's store of
    // its session (`Sender::attach`): this load sees that session or later.
    session_of_tag(at.frame().tag, refs.tx.session.load(Ordering::Relaxed))
}

/// What was wrong, naming the lane when there is more than one.
fn lane_what(s: &Shared, lane: usize, what: String) -> String {
    if s.geometry.lanes > 1 {
        format!("lane {lane}: {what}")
    } else {
        what
    }
}

/// The waker's half of the handshake in `wait`, for lane `lane`'s sender
/// waiting for room (`fences`: the channel's, which a Receiver keeps).
#[inline(always)]
fn wake_sender(fences: Fences, s: &Shared, lane: usize, refs: LaneRefs<'_>) -> Result<()> {
    if wait::notify(&refs.tx_waiting.waiting, fences) {
        post_sender(s, lane)?;
    }
    Ok(())
}

/// Posts lane `lane`'s sender's wake semaphore, which it announced it
/// would sleep on, and counts the post.
#[cold]
fn post_sender(s: &Shared, lane: usize) -> Result<()> {
    bump(&s.header().rx.counters.wakes);
    s.post(sem::tx_wake(lane as u16))
}

/// A message read in place by [`Receiver::recv_ref`]. Derefs to the payload;
/// the space goes back to the sender when the guard drops. A receiver that
/// dies holding a guard has not released it: the message is still there for
/// the next receiver.
#[derive(Debug)]
pub struct RecvGuard<'a> {
    rx: &'a mut Receiver,
    at: At,
}

impl RecvGuard<'_> {
    /// The sender this message came from.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"in place")?;
    /// let msg = rx.recv_ref()?;
    /// assert_eq!((&*msg, msg.sender()), (&b"in place"[..], tx.id()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn sender(&self) -> SenderId {
        SenderId {
            lane: self.at.lane() as u16,
            session: session_of(self.at, self.rx.hold.shared()),
        }
    }

    /// Leaves the message in the ring, unreceived: the next receive
    /// returns it again, before any other lane's. For a caller that looked
    /// at the message and cannot take it now (a fixed buffer too small for
    /// it, as the Python binding's `recv_into` has).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))?;
    /// let mut rx = chan.receiver()?;
    /// let (mut a, mut b) = (chan.sender()?, chan.sender()?);
    /// a.send(b"a long message")?;
    /// b.send(b"short")?;
    /// let mut buf = [0u8; 8];
    /// let msg = rx.recv_ref()?;
    /// assert!(msg.len() > buf.len());
    /// msg.keep(); // too long for buf: leave it queued
    /// let msg = rx.recv_ref()?; // the same message, not b's
    /// assert_eq!(&*msg, b"a long message");
    /// drop(msg); // received: b's message is next
    /// let msg = rx.recv_ref()?;
    /// buf[..msg.len()].copy_from_slice(&msg);
    /// assert_eq!(&buf[..msg.len()], b"short");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn keep(self) {
        // Not dropped: dropping releases the frame.
        let mut this = std::mem::ManuallyDrop::new(self);
        let at = this.at;
        this.rx.lanes.unread(at);
    }
}

impl Deref for RecvGuard<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the frame was validated by peek (inside the data region,
        // committed); the sender does not reuse it until we release it on
        // drop.
        unsafe {
            let ring = &self.rx.lanes.of(self.at).ring;
            std::slice::from_raw_parts(ring.payload(self.at.frame()), self.at.frame().len as usize)
        }
    }
}

impl Drop for RecvGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // An error here means the semaphore set was removed while waking the
        // sender; the next call on the receiver reports `Removed`.
        let _ = self.rx.release(self.at);
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
