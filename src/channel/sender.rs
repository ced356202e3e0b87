//! `Sender` and its zero-copy `SendGrant`.
//!
//! `unsafe` is allowed here for two things: building a producer over the
//! mapping that the sender's role hold keeps attached, and handing out the
//! reserved payload as `&mut [u8]` for the life of a grant.
#![allow(unsafe_code)]

mod batch;
mod future;

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::party::{ChanSleeper, PeerWatch, RoleHold, SemParker};
use super::shared::Shared;
use super::view::{HeaderPtr, LanePtrs};
use super::{How, Poison, deadline_after};
use crate::error::{Error, Result, Role};
use crate::helper::Helper;
use crate::layout::{Header, LaneRefs, bump, sem};
use crate::ring::Producer;
use crate::wait::{self, Fences, Phase};

/// The sending side of a channel. One per channel at a time.
///
/// `Send` but not `Sync`: move it to the thread that sends. Not fork-safe:
/// a forked child must open its own (dropping a copy made by `fork` does
/// nothing).
///
/// ```
/// fn send<T: Send>() {}
/// send::<shmchan::Sender>();
/// ```
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<shmchan::Sender>(); // not Sync: one sender, one thread at a time
/// ```
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new())?;
/// let mut tx = chan.sender()?;
/// let mut rx = chan.receiver()?;
/// tx.send(b"hello world")?;
/// assert_eq!(rx.recv()?, b"hello world");
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug)]
pub struct Sender {
    /// Parks for the async calls. First, so that it drops (stopping and
    /// joining its thread, which parks on the lane's TX_WAKE) before
    /// `hold` gives the lane up: fields drop in declaration order.
    helper: Helper<ChanSleeper>,
    hold: RoleHold,
    /// The header of the mapping that `hold` keeps attached, and the
    /// largest message: the fast path's checks without `hold`'s loads.
    header: HeaderPtr,
    max_message: u64,
    fences: Fences,
    ring: Producer,
    /// This sender's lane and session.
    id: SenderId,
    /// Its lane's fields in the mapping that `hold` keeps attached.
    lane_ptrs: LanePtrs,
    peer: PeerWatch,
    poison: Poison,
    spin: Duration,
    sent: u64,
    bytes: u64,
    /// When the wait of `poll_send` began to spin (the async fns keep
    /// their own).
    poll_spun: Option<Instant>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the raw pointers in `ring` and the lane pointers point into
// the mapping that `hold` keeps attached; they are valid from any thread,
// and `&mut self` methods keep the single-producer rule within the process.
unsafe impl Send for Sender {}

impl Sender {
    pub(crate) fn attach(shared: Arc<Shared>, spin: Duration) -> Result<Sender> {
        let watch = PeerWatch::snapshot(&shared, Role::Receiver);
        shared.register_fences()?;
        let hold = RoleHold::claim(shared, Role::Sender)?;
        let s = hold.shared();
        let lane = hold.lane();
        // SAFETY: the ring lies in the mapping that `hold` keeps attached for
        // the life of the Sender, and holding the lane guarantees no other
        // producer on it.
        let mut ring =
            unsafe { Producer::new(s.view.ring(&s.geometry, lane), s.geometry.max_message) }
                .map_err(|c| s.corrupted(c.0))?;
        let peer = watch.start(s, false)?;
        let refs = s.view.lane(&s.geometry, lane);
        // Only this sender writes the lane's session while it holds the
        // lane; wrapping, because another process may have written anything.
        let session = refs.tx.session.load(Ordering::Relaxed).wrapping_add(1);
        // Relaxed: it is published with this sender's first frame, by the
        // Release store of tail in `Producer::advance`; a receiver that
        // reads the frame (after its Acquire load of tail) reads this
        // session or a later one in `receiver::session_of`.
        refs.tx.session.store(session, Ordering::Relaxed);
        ring.set_tag(session_tag(session));
        hold.announce();
        let sent = refs.tx.counters.messages.load(Ordering::Relaxed);
        let bytes = refs.tx.counters.bytes.load(Ordering::Relaxed);
        let lane_ptrs = LanePtrs::of(refs);
        // SAFETY: the Sender keeps `hold`, and with it the mapping, for as
        // long as it keeps the pointer.
        let header = unsafe { HeaderPtr::new(s) };
        let (max_message, fences) = (s.geometry.max_message, s.fences());
        let helper = Helper::new(ChanSleeper::new(
            hold.shared(),
            sem::tx_wake(lane),
            Some(lane),
        ));
        Ok(Sender {
            helper,
            hold,
            header,
            max_message,
            fences,
            ring,
            id: SenderId { lane, session },
            lane_ptrs,
            peer,
            poison: Poison::default(),
            spin,
            sent,
            bytes,
            poll_spun: None,
            _not_sync: PhantomData,
        })
    }

    /// Sends a message, waiting while the ring is full.
    ///
    /// When it returns `Ok` the message is committed: the receiver can see
    /// it. With no receiver attached yet it fills the ring, then waits.
    ///
    /// Once it has found the ring full, it may wait for a little more room
    /// than the message needs (4 KiB, at most an eighth of the ring), so
    /// that it does not write into the lines the receiver is reading, but
    /// only while it spins (see [`set_spin`](Self::set_spin)): its last
    /// look before it parks takes room for the message alone. A receiver
    /// that stopped reading leaves it waiting no longer than its spin
    /// budget beside room for its message.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] (nothing written), [`Error::Disconnected`]
    /// when a receiver it has seen is gone, [`Error::Removed`],
    /// [`Error::Corrupted`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"hello")?; // committed: the receiver can see it
    /// assert_eq!(rx.recv()?, b"hello");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_how(msg, How::Block(None))
    }

    /// Sends a message if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when there is no room, and as [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.try_send(&[1; 4088])?; // fills the 4 KiB ring
    /// assert!(matches!(tx.try_send(b"more"), Err(Error::Full)));
    /// rx.recv()?; // makes room
    /// tx.try_send(b"more")?;
    /// assert_eq!(rx.recv()?, b"more");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_how(msg, How::Try)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`send`](Self::send).
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
    /// tx.send(&[1; 4088])?; // fills the ring
    /// let r = tx.send_timeout(b"more", Duration::from_millis(1)); // nobody makes room
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// assert_eq!(rx.recv()?.len(), 4088);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        match deadline_after(timeout) {
            Some(deadline) => self.send_deadline(msg, deadline),
            None => self.send(msg),
        }
    }

    /// Reserves room for a message of exactly `len` bytes, waiting while the
    /// ring is full. Write the payload in place, then
    /// [`commit`](SendGrant::commit); a grant dropped without commit
    /// publishes nothing.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut grant = tx.reserve(4)?;
    /// grant.copy_from_slice(&7u32.to_le_bytes()); // written in place
    /// grant.commit()?;
    /// assert_eq!(*rx.recv_ref()?, 7u32.to_le_bytes());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<SendGrant<'_>> {
        self.reserve_how(len, How::Block(None))
    }

    /// Reserves room for `len` bytes if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`], and as [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut grant = tx.try_reserve(3)?;
    /// grant.copy_from_slice(b"abc");
    /// grant.commit()?;
    /// assert!(matches!(tx.try_reserve(4088), Err(Error::Full))); // 16 bytes taken
    /// assert_eq!(rx.recv()?, b"abc");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<SendGrant<'_>> {
        self.reserve_how(len, How::Try)
    }

    /// Reserves room for `len` bytes, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut grant = tx.reserve_timeout(2, Duration::from_millis(10))?;
    /// grant.copy_from_slice(b"ok");
    /// grant.commit()?;
    /// assert_eq!(rx.recv()?, b"ok");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendGrant<'_>> {
        match deadline_after(timeout) {
            Some(deadline) => self.reserve_deadline(len, deadline),
            None => self.reserve(len),
        }
    }

    /// The largest message this channel carries (capacity minus 8).
    ///
    /// A frame never wraps around the ring's end, so a message this large
    /// fits only where the ring's free bytes start at its beginning: into
    /// an empty ring that has carried messages before, the sender first
    /// writes a padding frame to the end, and the message waits until the
    /// receiver has passed over it. A waiting send gets through as soon
    /// as the receiver reads; `try_send` on such a ring returns
    /// [`Error::Full`] until then. The same holds, less often, for any
    /// message longer than the bytes left before the end.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let whole_ring = vec![7; tx.max_message_len()];
    /// tx.send(&whole_ring)?; // a fresh ring: its free bytes start at offset 0
    /// assert_eq!(rx.recv()?, whole_ring);
    /// tx.send(b"x")?;
    /// assert_eq!(rx.recv()?, b"x"); // empty again, its free bytes now at offset 16
    /// assert!(matches!(tx.try_send(&whole_ring), Err(shmchan::Error::Full)));
    /// assert!(matches!(rx.try_recv(), Err(shmchan::Error::Empty))); // passes the padding
    /// tx.try_send(&whole_ring)?;
    /// assert_eq!(rx.recv()?, whole_ring); // (a ring left holding it would outlive us)
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
    /// use shmchan::{Channel, Key, Options};
    /// use std::time::Duration;
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// tx.set_spin(Duration::ZERO); // park at once when the ring is full
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"x")?;
    /// assert_eq!(rx.recv()?, b"x");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn set_spin(&mut self, budget: Duration) {
        self.spin = budget;
    }

    /// For bindings (the C interface), not a stable API: sends `msg` if
    /// there is room now and the send needs nothing of the slow path (no
    /// error, no padding frame, no wait; with `refill`, the room a call
    /// that may wait asks for, `ring::REFILL`). `false` sends nothing and
    /// changes nothing a caller can see (it may refresh the sender's
    /// cached view of the ring): call [`send`](Self::send) or its
    /// siblings, which then wait or say why.
    ///
    /// It never panics (the C interface calls it outside
    /// `catch_unwind`), and it is always inlined, so that a binding's
    /// entry point is one function with its arguments in registers
    /// (`benchmarks/README.md`, "The C interface's call overhead").
    #[doc(hidden)]
    #[inline(always)]
    pub fn send_queued(&mut self, msg: &[u8], refill: bool) -> bool {
        let Some(offset) = self.fast_room(msg.len(), refill) else {
            return false;
        };
        let mut grant = SendGrant {
            tx: self,
            offset,
            len: msg.len(),
        };
        grant.copy_from_slice(msg);
        // Committing cannot fail (a failed wake-up is reported by the next
        // call that waits: see `commit`).
        let _ = grant.commit();
        true
    }

    #[inline]
    fn send_how(&mut self, msg: &[u8], how: How) -> Result<()> {
        let mut grant = self.reserve_how(msg.len(), how)?;
        grant.copy_from_slice(msg);
        grant.commit()
    }

    #[inline]
    pub(super) fn reserve_how(&mut self, len: usize, how: How) -> Result<SendGrant<'_>> {
        let offset = self.find_room(len, how)?;
        Ok(SendGrant {
            tx: self,
            offset,
            len,
        })
    }

    /// A grant of `len` bytes when there is room now on the fast path,
    /// with nothing else looked at and nothing counted: for a speculative
    /// reservation (`send_value`'s guess), whose `None` leaves the call
    /// that follows to count its stall, once (docs/layout.md, "Counters").
    #[cfg(feature = "serde")]
    #[inline(always)]
    pub(super) fn try_reserve_quiet(&mut self, len: usize) -> Option<SendGrant<'_>> {
        let offset = self.fast_room(len, false)?;
        Some(SendGrant {
            tx: self,
            offset,
            len,
        })
    }

    /// Room for `len` bytes: the common case without building a `Result`
    /// or looking at the poison again; everything else (errors, padding,
    /// waiting) on the slow path, which repeats every check and remembers
    /// a `Corrupted`.
    #[inline(always)]
    fn find_room(&mut self, len: usize, how: How) -> Result<u64> {
        // A call that may wait may also wait for more room than it needs
        // (`ring::REFILL`); a try takes whatever room there is.
        match self.fast_room(len, matches!(how, How::Block(_))) {
            Some(off) => Ok(off),
            None => {
                let r = self.find_room_slow(len, how);
                self.poison.record(r)
            }
        }
    }

    /// Not poisoned, not closed, not too large, the receiver not seen to
    /// leave, and room now without a padding frame to announce.
    #[inline(always)]
    fn fast_room(&mut self, len: usize, refill: bool) -> Option<u64> {
        let h = self.header.get();
        if self.poison.is_set() || h.is_closed() || len as u64 > self.max_message {
            return None;
        }
        if self.peer.receiver_maybe_gone(h) {
            return None;
        }
        // Publishes no padding of its own: the slow path does that, and
        // also wakes the receiver for it.
        self.ring.reserve_fast(len as u64, refill)
    }

    #[cold]
    #[inline(never)]
    fn find_room_slow(&mut self, len: usize, how: How) -> Result<u64> {
        self.check_room_call(len)?;
        self.room(len as u64, how)
    }

    /// What a call for room checks before it looks: poison, removal, the
    /// length, and a receiver seen to leave.
    fn check_room_call(&mut self, len: usize) -> Result<()> {
        self.poison.check()?;
        let s = self.hold.shared();
        s.check_open()?;
        if len as u64 > s.geometry.max_message {
            return Err(Error::MessageTooLarge {
                len,
                max: s.geometry.max_message as usize,
            });
        }
        if self.peer.gone_quick(s)? {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    /// Room for a frame of `len` bytes, waiting as `how` says.
    fn room(&mut self, len: u64, how: How) -> Result<u64> {
        let s = self.hold.shared();
        // SAFETY: `hold` keeps the mapping attached for the life of the
        // Sender, and the refs do not outlive this call.
        let refs = unsafe { self.lane_ptrs.refs() };
        if let Some(off) = try_reserve(&mut self.ring, s, refs, len, matches!(how, How::Block(_)))?
        {
            return Ok(off);
        }
        bump(&refs.tx.counters.stalls);
        match how {
            How::Try if self.peer.gone(s)? => Err(Error::Disconnected),
            How::Try => Err(Error::Full),
            How::Block(deadline) => self.wait_room(len, deadline),
        }
    }

    /// This sender's identity: its lane and its session on that lane. A
    /// receiver gets the same value with each of its messages
    /// ([`Receiver::recv_from`](crate::Receiver::recv_from)), and prints
    /// the same text for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"hi")?;
    /// let (_, from) = rx.recv_from()?;
    /// assert_eq!(from, tx.id());
    /// assert_eq!(from.to_string(), tx.id().to_string());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn id(&self) -> SenderId {
        self.id
    }

    fn wait_room(&mut self, len: u64, deadline: Option<Instant>) -> Result<u64> {
        self.wait_with(deadline, |ring, s, refs, refill| {
            try_reserve(ring, s, refs, len, refill)
        })
    }

    /// Waits until `attempt` finds room (spinning, then parked on the
    /// lane's `TX_WAKE`), asking it to wait for the refill room
    /// (`ring::REFILL`) while it spins; the last look before a park takes
    /// any room. Before a park, a receiver found gone gets one last
    /// attempt that takes any room (the receiver may have made room just
    /// before it died); then `Disconnected`.
    fn wait_with<T>(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Producer, &Shared, LaneRefs<'_>, bool) -> Result<Option<T>>,
    ) -> Result<T> {
        // A future's park must end before this thread parks on TX_WAKE.
        self.helper.recall();
        let s = self.hold.shared();
        let (ring, peer) = (&mut self.ring, &mut self.peer);
        // SAFETY: `hold` keeps the mapping attached for the life of the
        // Sender, and the refs do not outlive this call.
        let refs = unsafe { self.lane_ptrs.refs() };
        let mut parker = SemParker {
            shared: s,
            num: sem::tx_wake(self.id.lane),
            counters: &refs.tx.counters,
        };
        wait::wait_paced(
            &refs.tx_waiting.waiting,
            s.fences(),
            self.spin,
            poll_gap(ring.capacity()),
            deadline,
            &mut parker,
            |phase| room_poll(ring, peer, s, refs, phase, &mut attempt),
        )
    }

    #[inline]
    fn commit(&mut self, len: usize) -> Result<()> {
        self.ring.commit(len as u64);
        // Wrapping: the counters start from values read from the segment.
        self.sent = self.sent.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(len as u64);
        // SAFETY: `hold` keeps the mapping attached for the life of the
        // Sender, and the refs do not outlive this call.
        let refs = unsafe { self.lane_ptrs.refs() };
        let counters = &refs.tx.counters;
        counters.messages.store(self.sent, Ordering::Relaxed);
        counters.bytes.store(self.bytes, Ordering::Relaxed);
        // The message is committed: a failed wake-up (the set was removed)
        // is reported by the next call that waits, not as a failed send
        // that the caller would repeat.
        let _ = wake_receiver(self.header.get(), self.fences, self.hold.shared(), refs);
        Ok(())
    }
}

/// How long a waiting sender lets pass between two looks at `head`, in a
/// ring of `capacity` bytes: the time a fast receiver ([`DRAIN_RATE`])
/// takes to read an eighth of the ring, within [`POLL_GAP_MIN`] and
/// [`POLL_GAP_MAX`].
///
/// The receiver stores `head` once per message (`recv_into`) or run
/// (`recv_many`), and each look takes that line from it: its next store
/// then waits for the line to come back. A sender that finds the ring full
/// (a streaming sender faster than its receiver, which is where it spends
/// its waits) has no use for a fresher view: the ring holds most of its
/// capacity for the receiver to read meanwhile, and what the sender finds
/// freed a gap later it writes in one go. Looking every 16 spin-loop hints
/// (about 1 µs on this machine's CPU) cost the receiver of a full 4 MiB
/// ring a tenth to a fifth of its rate at 8-64 B, up to a quarter behind
/// `send_batch`, in both profiles; this gap gave it back
/// (benchmarks/README.md, "A waiting sender's pace"). A fixed gap of about
/// 8 µs starved the receiver of a 16 KiB ring at 1 KiB (0.82x-0.91x):
/// hence the gap follows the capacity. In time, not in hints, whose
/// length differs tenfold between CPUs.
fn poll_gap(capacity: u64) -> Duration {
    let ns = capacity / 8 / DRAIN_RATE;
    Duration::from_nanos(ns).clamp(POLL_GAP_MIN, POLL_GAP_MAX)
}

/// A fast receiver's drain rate for [`poll_gap`], in bytes per ns: above
/// a copying receiver's rate on this machine at any size (13 B/ns at
/// 64 KiB).
const DRAIN_RATE: u64 = 16;
/// The shortest gap between two looks of a waiting sender: a clock read
/// and a few spin-loop hints.
const POLL_GAP_MIN: Duration = Duration::from_nanos(100);
/// The longest gap, reached from 1 MiB rings up.
const POLL_GAP_MAX: Duration = Duration::from_micros(8);

/// A waiting sender's look (blocking or async): `attempt` with the refill
/// rule while it spins; before a park, one that takes any room (a sender
/// never parks beside room for its message: a receiver that stopped
/// reading would post no wake-up for it), then whether the receiver is
/// gone, and if so one last attempt.
fn room_poll<T>(
    ring: &mut Producer,
    peer: &mut PeerWatch,
    s: &Shared,
    refs: LaneRefs<'_>,
    phase: Phase,
    attempt: &mut impl FnMut(&mut Producer, &Shared, LaneRefs<'_>, bool) -> Result<Option<T>>,
) -> Result<Option<T>> {
    if let Some(found) = attempt(ring, s, refs, phase == Phase::Spin)? {
        return Ok(Some(found));
    }
    s.check_open()?;
    if phase == Phase::BeforePark && peer.gone(s)? {
        return attempt(ring, s, refs, false)?
            .map(Some)
            .ok_or(Error::Disconnected);
    }
    Ok(None)
}

/// One reservation attempt; wakes the receiver when a padding frame was
/// published on the way (it must skip it before the sender can go on).
fn try_reserve(
    ring: &mut Producer,
    s: &Shared,
    refs: LaneRefs<'_>,
    len: u64,
    refill: bool,
) -> Result<Option<u64>> {
    let r = match refill {
        true => ring.try_reserve_refill(len),
        false => ring.try_reserve(len),
    };
    // Padding published before corruption was met is published all the
    // same: wake a receiver that must skip it first.
    if ring.take_published_padding() {
        wake_receiver(s.header(), s.fences(), s, refs)?;
    }
    r.map_err(|c| s.corrupted(c.0))
}

/// The waker's half of the handshake in `wait`: post only if the receiver
/// announced it would sleep.
///
/// `h` and `fences` are `s`'s header and fences, which a Sender keeps
/// beside `s` (its fast path reads them without `s`).
#[inline(always)]
fn wake_receiver(h: &Header, fences: Fences, s: &Shared, refs: LaneRefs<'_>) -> Result<()> {
    if wait::notify(&h.rx_waiting.waiting, fences) {
        post_receiver(s, refs)?;
    }
    Ok(())
}

/// Posts the receiver's wake semaphore, which it announced it would sleep
/// on, and counts the post.
#[cold]
fn post_receiver(s: &Shared, refs: LaneRefs<'_>) -> Result<()> {
    bump(&refs.tx.counters.wakes);
    s.post(sem::RX_WAKE)
}

/// Room for one message, reserved by [`Sender::reserve`]. Derefs to the
/// payload (`&mut [u8]` of exactly the reserved length); invisible to the
/// receiver until [`commit`](SendGrant::commit).
#[derive(Debug)]
pub struct SendGrant<'a> {
    tx: &'a mut Sender,
    offset: u64,
    len: usize,
}

impl SendGrant<'_> {
    /// Publishes the message: when this returns, the receiver can see it.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for checks a later layout may
    /// need.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.reserve(5)?.copy_from_slice(b"never"); // dropped uncommitted: nothing sent
    /// let mut grant = tx.reserve(3)?;
    /// grant.copy_from_slice(b"yes");
    /// grant.commit()?;
    /// assert_eq!(rx.try_recv()?, b"yes");
    /// assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn commit(self) -> Result<()> {
        self.tx.commit(self.len)
    }

    /// Publishes the first `len` bytes of the reservation (at most its
    /// length) as the message: a frame for fewer bytes than were reserved,
    /// which is what the ring needs (room is checked at reservation, and
    /// a commit writes the frame header with the length it is given).
    #[cfg(feature = "serde")]
    #[inline]
    pub(crate) fn commit_len(self, len: usize) -> Result<()> {
        debug_assert!(len <= self.len);
        self.tx.commit(len.min(self.len))
    }
}

impl Deref for SendGrant<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: offset..offset+len was reserved by try_reserve inside the
        // data region and is not visible to the receiver until commit.
        unsafe { std::slice::from_raw_parts(self.tx.ring.payload(self.offset), self.len) }
    }
}

impl DerefMut for SendGrant<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.tx.ring.payload(self.offset), self.len) }
    }
}

/// The identity of one sender's session on one lane of a channel: which
/// sender a message came from ([`Receiver::recv_from`](crate::Receiver::recv_from),
/// [`Sender::id`]). A new sender on the same lane is a new `SenderId`.
///
/// Its `Display` text (`lane:session`, for example `2:17`) is the same in
/// every process, so a sender can print its id and a receiver recognise
/// it.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))?;
/// let a = chan.sender()?.id();
/// let b = chan.sender()?.id();
/// assert_ne!(a, b);
/// assert!(a.to_string().contains(':'));
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderId {
    pub(crate) lane: u16,
    pub(crate) session: u64,
}

impl SenderId {
    /// The lane (0 to `max_senders - 1`) this sender holds: what the C
    /// API and other bindings carry beside [`session`](Self::session).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let id = chan.sender()?.id();
    /// assert_eq!(id.lane(), 0); // the only lane of a one-sender channel
    /// assert_eq!(id.to_string(), format!("{}:{}", id.lane(), id.session()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn lane(&self) -> u16 {
        self.lane
    }

    /// The lane's session: how many senders have claimed this lane, this
    /// one included (1 for the first).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let first = chan.sender()?.id(); // dropped at once: the lane is free
    /// let second = chan.sender()?.id();
    /// assert_eq!((first.session(), second.session()), (1, 2));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn session(&self) -> u64 {
        self.session
    }
}

/// Bits of a session carried in each message frame's kind word.
const TAG_BITS: u32 = 24;

/// The tag a message frame carries for `session`: the low 24 bits of
/// `session - 1`, so that the first sender on a lane (session 1) writes
/// tag 0 and its frames' kind words are version 1's.
pub(crate) fn session_tag(session: u64) -> u32 {
    (session.wrapping_sub(1) & ((1 << TAG_BITS) - 1)) as u32
}

/// The session whose tag is `tag`, given that the lane's latest session is
/// `latest`: the last one at or before it with that tag. Exact while fewer
/// than 2^24 senders have claimed the lane since the message was sent.
pub(crate) fn session_of_tag(tag: u32, latest: u64) -> u64 {
    let back = session_tag(latest).wrapping_sub(tag) & ((1 << TAG_BITS) - 1);
    latest.wrapping_sub(u64::from(back))
}

impl std::fmt::Display for SenderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.lane, self.session)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_poll_gap_follows_the_capacity_within_its_bounds() {
        // An eighth of the ring at 16 bytes a nanosecond.
        assert_eq!(poll_gap(16 << 10), Duration::from_nanos(128));
        assert_eq!(poll_gap(256 << 10), Duration::from_nanos(2048));
        // Bounded: a clock read's worth below, 8 µs from 1 MiB up.
        assert_eq!(poll_gap(4096), POLL_GAP_MIN);
        assert_eq!(poll_gap(1 << 20), POLL_GAP_MAX);
        assert_eq!(poll_gap(4 << 20), POLL_GAP_MAX);
        assert_eq!(poll_gap(1 << 40), POLL_GAP_MAX);
    }
}
