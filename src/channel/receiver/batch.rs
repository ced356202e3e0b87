//! `Receiver`'s calls for several messages at once ([`Receiver::try_iter`],
//! [`Receiver::recv_many`] and its `try_`, `_timeout` and `_deadline`
//! forms) and its deadlines ([`Receiver::recv_deadline`] and the other
//! `_deadline` forms), kept apart from the single-message paths, which
//! they leave as they were.
//!
//! `recv_many` reads a run of frames from one lane and releases them with
//! one store of that lane's `head` (the receiver's own index: when it
//! releases is its choice), followed by one check whether the lane's
//! sender waits for room. It takes the messages in the order that as
//! many `try_recv` calls would, counting each against the lanes' turns,
//! so the fairness bound of docs/layout.md (section 3) holds.
//!
//! `unsafe` is allowed here, as in the parent module, to copy a validated
//! frame's payload out of the mapping and to reach a lane's fields there.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::{How, deadline_after};
use super::{At, Receiver, RecvGuard, RxLane, known, lane_what, wake_sender};
use crate::channel::SenderId;
use crate::error::{Error, Result};
use crate::ring::{Consumer, Frame, frame_size};

impl Receiver {
    /// Receives the next message, waiting for one until `deadline` at the
    /// latest ([`recv_timeout`](Self::recv_timeout) is this with the
    /// deadline `timeout` from now). A message already queued is received
    /// even when the deadline has passed.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_deadline(deadline), Err(Error::Timeout)));
    /// tx.send(b"queued")?;
    /// assert_eq!(rx.recv_deadline(deadline)?, b"queued"); // past, but queued
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into_deadline(&mut buf, deadline)?;
        Ok(buf)
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline` at the
    /// latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut buf = Vec::with_capacity(64);
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_into_deadline(&mut buf, soon), Err(Error::Timeout)));
    /// tx.send(b"into")?;
    /// assert_eq!(rx.recv_into_deadline(&mut buf, soon)?, 4);
    /// assert_eq!(buf, b"into");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_into_deadline(&mut self, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize> {
        self.recv_into_how::<false>(buf, How::Block(Some(deadline)))
            .map(|(len, _)| len)
    }

    /// [`recv_ref`](Self::recv_ref), waiting until `deadline` at the
    /// latest ([`recv_ref_timeout`](Self::recv_ref_timeout) is this with
    /// the deadline `timeout` from now).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_ref_deadline(soon), Err(Error::Timeout)));
    /// tx.send(b"in place")?;
    /// assert_eq!(*rx.recv_ref_deadline(soon)?, *b"in place");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_ref_deadline(&mut self, deadline: Instant) -> Result<RecvGuard<'_>> {
        self.guard_how(How::Block(Some(deadline)))
    }

    /// [`recv_from`](Self::recv_from), waiting until `deadline` at the
    /// latest ([`recv_from_timeout`](Self::recv_from_timeout) is this with
    /// the deadline `timeout` from now).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_from_deadline(soon), Err(Error::Timeout)));
    /// tx.send(b"hi")?;
    /// assert_eq!(rx.recv_from_deadline(soon)?, (b"hi".to_vec(), tx.id()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_from_deadline(&mut self, deadline: Instant) -> Result<(Vec<u8>, SenderId)> {
        let mut buf = Vec::new();
        let (_, from) = self.recv_into_how::<true>(&mut buf, How::Block(Some(deadline)))?;
        Ok((buf, known(from)))
    }

    /// Iterates over the messages queued now, without ever waiting
    /// (crossbeam-channel's `try_iter`): each `next` is a
    /// [`try_recv`](Self::try_recv), so messages committed while it runs
    /// are yielded too. It ends at the first [`Error::Empty`] or
    /// [`Error::Disconnected`], silently; any other error ends it too and
    /// is kept for [`TryIter::take_error`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"a")?;
    /// tx.send(b"b")?;
    /// let mut queued = rx.try_iter();
    /// assert_eq!(queued.by_ref().count(), 2); // then Empty: the sender is still there
    /// assert!(queued.take_error().is_none());
    /// assert_eq!(rx.try_iter().next(), None);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter {
            rx: self,
            error: None,
        }
    }

    /// Receives up to `bufs.len()` messages in one call: waits for the
    /// first as [`recv`](Self::recv) does, then takes the messages queued
    /// now, without waiting, into `bufs` in order; returns how many (at
    /// least 1). Each buffer filled has its contents replaced and its
    /// allocation reused (as [`recv_into`](Self::recv_into)); `bufs[n..]`
    /// are left as they were. With no buffers it returns 0 at once.
    ///
    /// The messages are those that as many [`try_recv`](Self::try_recv)
    /// calls would return, in the same order (the turns across lanes
    /// count each one). The messages read in a row from one lane are
    /// released together, with one store of that lane's index and one
    /// wake-up check of its sender. An error met after the first message
    /// (the channel removed, a corrupt frame) ends the call with the
    /// messages taken so far; the next call reports it.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), only when no message was taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send_batch(&["a", "bb", "ccc"])?;
    /// let mut bufs = vec![Vec::new(); 2]; // their allocations reused call after call
    /// assert_eq!(rx.recv_many(&mut bufs)?, 2);
    /// assert_eq!(bufs, [&b"a"[..], b"bb"]);
    /// assert_eq!(rx.recv_many(&mut bufs)?, 1);
    /// assert_eq!(bufs[0], b"ccc");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_many(&mut self, bufs: &mut [Vec<u8>]) -> Result<usize> {
        self.recv_many_how(bufs, How::Block(None))
    }

    /// [`recv_many`](Self::recv_many) without waiting: what is queued now,
    /// up to `bufs.len()`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when nothing is queued (with no buffers: `Ok(0)`),
    /// and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut bufs = vec![Vec::new(); 8];
    /// assert!(matches!(rx.try_recv_many(&mut bufs), Err(Error::Empty)));
    /// tx.send(b"one")?;
    /// assert_eq!(rx.try_recv_many(&mut bufs)?, 1);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv_many(&mut self, bufs: &mut [Vec<u8>]) -> Result<usize> {
        self.recv_many_how(bufs, How::Try)
    }

    /// [`recv_many`](Self::recv_many), waiting for the first message at
    /// most `timeout`: [`recv_many_deadline`](Self::recv_many_deadline)
    /// with the deadline `timeout` from now (without a deadline when that
    /// lies beyond what an `Instant` holds).
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
    /// let mut bufs = vec![Vec::new(); 4];
    /// let wait = Duration::from_millis(1);
    /// assert!(matches!(rx.recv_many_timeout(&mut bufs, wait), Err(Error::Timeout)));
    /// tx.send_batch(&["x", "y"])?;
    /// assert_eq!(rx.recv_many_timeout(&mut bufs, wait)?, 2);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_many_timeout(&mut self, bufs: &mut [Vec<u8>], timeout: Duration) -> Result<usize> {
        match deadline_after(timeout) {
            Some(deadline) => self.recv_many_deadline(bufs, deadline),
            None => self.recv_many(bufs),
        }
    }

    /// [`recv_many`](Self::recv_many), waiting for the first message until
    /// `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut bufs = vec![Vec::new(); 4];
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_many_deadline(&mut bufs, soon), Err(Error::Timeout)));
    /// tx.send(b"z")?;
    /// assert_eq!(rx.recv_many_deadline(&mut bufs, soon)?, 1); // past, but queued
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_many_deadline(&mut self, bufs: &mut [Vec<u8>], deadline: Instant) -> Result<usize> {
        self.recv_many_how(bufs, How::Block(Some(deadline)))
    }

    /// `recv_many`, the first message as `how` says.
    #[inline]
    fn recv_many_how(&mut self, bufs: &mut [Vec<u8>], how: How) -> Result<usize> {
        if bufs.is_empty() {
            return Ok(0);
        }
        // One call of `take_run`, in a loop, as in `recv_many_with_how`.
        let (mut at, mut n) = (self.next_frame(how)?, 0);
        loop {
            n += self.take_run(at, &mut bufs[n..]);
            // `queued` takes the frame it finds (a turn counted): only
            // when there is room for it.
            match (n < bufs.len()).then(|| self.queued()).flatten() {
                Some(next) => at = next,
                None => return Ok(n),
            }
        }
    }

    /// Receives up to `max` messages in one call, each read in place:
    /// waits for the first as [`recv_ref`](Self::recv_ref) does, then hands
    /// it and the messages queued now behind it (without waiting) to `f`,
    /// one call each, in order, as slices of the ring; returns how many
    /// (at least 1). With `max` 0 it returns 0 at once.
    ///
    /// The messages are those that as many [`try_recv`](Self::try_recv)
    /// calls would return, in the same order, and they are released as
    /// [`recv_many`](Self::recv_many) releases them: a run from one lane
    /// with one store of its index. Nothing is copied: this is the
    /// fastest way to take many small messages (behind a batching sender,
    /// 1.46x `recv_many`'s rate at 8 B between two processes in cargo's
    /// default release profile, 1.36x with LTO; benchmarks/README.md,
    /// "A batch receiver's loop in registers").
    ///
    /// If `f` panics, the panic goes on to the caller, and the messages
    /// of the lane run it was handed (from that run's first message up to
    /// the one it panicked on) are not released: they stay queued, in
    /// order, and the next receive hands them again. The runs this call
    /// finished before (from other lanes, or from the same lane in an
    /// earlier turn) are consumed.
    /// (Releasing the run as the panic unwinds would need its counts kept
    /// in memory at each message, which cost this loop a third of its
    /// rate.)
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), only when no message was taken. An error
    /// met after the first message ends the call with the messages taken
    /// so far; the next call reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send_batch(&["a", "bb", "ccc"])?;
    /// let mut total = 0;
    /// assert_eq!(rx.recv_many_with(2, |m| total += m.len())?, 2); // "a", "bb"
    /// assert_eq!(rx.recv_many_with(32, |m| total += m.len())?, 1); // "ccc"
    /// assert_eq!(total, 6);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn recv_many_with(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize> {
        self.recv_many_with_how(max, f, How::Block(None))
    }

    /// [`recv_many_with`](Self::recv_many_with) if a message is queued
    /// now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] (nothing taken), and as
    /// [`recv_many_with`](Self::recv_many_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// assert!(matches!(rx.try_recv_many_with(8, |_| {}), Err(Error::Empty)));
    /// tx.send(b"x")?;
    /// let mut got = Vec::new();
    /// assert_eq!(rx.try_recv_many_with(8, |m| got.push(m.to_vec()))?, 1);
    /// assert_eq!(got, [b"x"]);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv_many_with(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize> {
        self.recv_many_with_how(max, f, How::Try)
    }

    /// [`recv_many_with`](Self::recv_many_with), waiting for the first
    /// message at most `timeout`:
    /// [`recv_many_with_deadline`](Self::recv_many_with_deadline) with the
    /// deadline `timeout` from now (without a deadline when that lies
    /// beyond what an `Instant` holds).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing taken), and as
    /// [`recv_many_with`](Self::recv_many_with).
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
    /// assert!(matches!(rx.recv_many_with_timeout(8, |_| {}, wait), Err(Error::Timeout)));
    /// tx.send_batch(&["x", "yy"])?;
    /// let mut total = 0;
    /// assert_eq!(rx.recv_many_with_timeout(8, |m| total += m.len(), wait)?, 2);
    /// assert_eq!(total, 3);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_many_with_timeout(
        &mut self,
        max: usize,
        f: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<usize> {
        let how = How::Block(deadline_after(timeout));
        self.recv_many_with_how(max, f, how)
    }

    /// [`recv_many_with`](Self::recv_many_with), waiting for the first
    /// message until `deadline` at the latest (a deadline already past
    /// still takes what is queued).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing taken), and as
    /// [`recv_many_with`](Self::recv_many_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_many_with_deadline(8, |_| {}, soon), Err(Error::Timeout)));
    /// tx.send(b"z")?;
    /// let mut got = Vec::new();
    /// assert_eq!(rx.recv_many_with_deadline(8, |m| got.extend_from_slice(m), soon)?, 1); // past, but queued
    /// assert_eq!(got, b"z");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_many_with_deadline(
        &mut self,
        max: usize,
        f: impl FnMut(&[u8]),
        deadline: Instant,
    ) -> Result<usize> {
        self.recv_many_with_how(max, f, How::Block(Some(deadline)))
    }

    #[inline]
    fn recv_many_with_how(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
        how: How,
    ) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        let mut each = |ring: &Consumer, frame: Frame, _: usize| {
            // SAFETY: peek, peek_ahead or cached_at validated the frame:
            // its payload lies inside the data region and was committed
            // (published with Release, read after the Acquire load of
            // tail), and it is not released before `f` returns (nor
            // written by a sender that keeps the protocol, as for a
            // `RecvGuard`); the slice does not outlive this call of `f`.
            let payload =
                unsafe { std::slice::from_raw_parts(ring.payload(frame), frame.len as usize) };
            f(payload);
        };
        // One call of `take_run_each`, in a loop: inlined, with `f` in it.
        let (mut at, mut n) = (self.next_frame(how)?, 0);
        loop {
            n += self.take_run_each(at, max - n, &mut each);
            // As in `recv_many_how`: `queued` only when `f` may take more.
            match (n < max).then(|| self.queued()).flatten() {
                Some(next) => at = next,
                None => return Ok(n),
            }
        }
    }

    /// The next message queued now, without waiting and without a system
    /// call; `None` too on a poisoned handle or a closed channel, for the
    /// next call to report. Corruption met here poisons the handle.
    #[inline]
    fn queued(&mut self) -> Option<At> {
        if self.poison.is_set() || self.hold.shared().is_closed() {
            return None;
        }
        if let Some(at) = self.lanes.fast() {
            return Some(at);
        }
        match self.lanes.look(self.hold.shared()) {
            Ok(at) => at,
            Err(e) => {
                let _ = self.poison.record::<()>(Err(e));
                None
            }
        }
    }

    /// Copies the message `at` (taken and counted against the turns) into
    /// `bufs[0]`, then the messages behind it in its lane into the next
    /// buffers, while buffers remain and the lane keeps its turn; see
    /// [`take_run_each`](Self::take_run_each).
    #[inline]
    fn take_run(&mut self, at: At, bufs: &mut [Vec<u8>]) -> usize {
        let max = bufs.len();
        self.take_run_each(at, max, |ring, frame, i| {
            copy_out(ring, frame, &mut bufs[i]);
        })
    }

    /// Hands the message `at` (taken and counted against the turns) to
    /// `each` (with its place in the run, from 0), then the messages
    /// behind it in its lane, while fewer than `max` were handed and the
    /// lane keeps its turn (each counted as a single receive is); releases
    /// them together (not if `each` panics: see
    /// [`recv_many_with`](Self::recv_many_with)). Returns how many, at
    /// least 1 (`max` is at least 1). Corruption met on the way ends the
    /// run (what was read before it is received) and poisons the handle.
    #[inline]
    fn take_run_each(
        &mut self,
        mut at: At,
        max: usize,
        mut each: impl FnMut(&Consumer, Frame, usize),
    ) -> usize {
        let lane = at.lane() as usize;
        let (mut n, mut ahead, mut bytes) = (0usize, 0, 0);
        let corrupt = loop {
            // `at` is taken and counted. The common case is the inner loop,
            // with no call in it but `each` (inlined) and one count to
            // test: while the lane keeps its turn with a message to spare,
            // the next frame, already seen in the cached tail, is taken
            // there, and its position follows from the last one's header
            // in two adds and a mask. A call anywhere in that loop (which
            // keeps `ahead` and the caller's state in memory) or the turn's
            // count kept in `lanes` makes each message's update wait for
            // the last one's store (store forwarding). Anything else (the
            // turn's last message, the cache's end, padding) goes the
            // general way below it. Figures: benchmarks/README.md, "A
            // batch receiver's loop in registers".
            let lanes = &mut self.lanes;
            // SAFETY: as in `Lanes::of`: `lane` is the lane of an `At`.
            // (Not `lanes.of(at)`, which takes the lane from `at` again: its
            // build read 0.97x at 8 B, `shmchan-batch32-each`, two 5-round
            // runs, default release profile.)
            let ring = &unsafe { lanes.lanes.get_unchecked(lane) }.ring;
            // When taking `at` passed the turn on, `at` is the run's last.
            let mine = lanes.cursor == lane;
            let left = if mine { lanes.left } else { 1 };
            let first = n;
            let stop = max.min(n.saturating_add(usize::try_from(left).unwrap_or(usize::MAX)));
            let mut pos = ring.run_pos(ahead);
            let mut cache_end = false;
            loop {
                ring.prefetch_at(pos);
                each(ring, at.frame(), n);
                n += 1;
                pos += frame_size(u64::from(at.frame().len));
                bytes += u64::from(at.frame().len);
                if n >= stop {
                    break;
                }
                match ring.cached_at(pos) {
                    Some(frame) => at = At::new(lane, frame),
                    None => {
                        cache_end = true;
                        break;
                    }
                }
            }
            ahead = ring.run_ahead(pos);
            if mine {
                // The messages taken in the loop after `at`: fewer than
                // `left`, which stays at least 1.
                lanes.left -= (n - first - 1) as u64;
            }
            if n >= max || !mine {
                break None;
            }
            let RxLane { ring, pace, .. } = lanes.of_mut(at);
            let cached = if cache_end { None } else { ring.cached_at(pos) };
            let frame = match cached {
                Some(frame) => frame,
                None => {
                    // A copy, so that `ahead`'s address never escapes.
                    let mut past = ahead;
                    let next = ring.peek_ahead(&mut past, pace);
                    ahead = past;
                    match next {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break None,
                        Err(c) => break Some(c),
                    }
                }
            };
            at = At::new(lane, frame);
            // The turn's count and its end, as for any message taken.
            lanes.took(lane);
        };
        self.release_run(at, ahead, n, bytes);
        if let Some(c) = corrupt {
            let s = self.hold.shared();
            let _ = self
                .poison
                .record::<()>(Err(s.corrupted(lane_what(s, lane, c.0))));
        }
        n
    }

    /// Releases a run of `n` messages (`ahead` bytes, padding included) in
    /// the lane of `at`, as [`release`](Self::release) does one: one store
    /// of its head, the counters, one wake-up check of its sender.
    #[inline]
    fn release_run(&mut self, at: At, ahead: u64, n: usize, bytes: u64) {
        self.lanes.of_mut(at).ring.release_run(ahead);
        self.peer.mark_seen();
        // Wrapping: the counters start from values read from the segment.
        self.received = self.received.wrapping_add(n as u64);
        self.bytes = self.bytes.wrapping_add(bytes);
        let s = self.hold.shared();
        let counters = &s.header().rx.counters;
        counters.messages.store(self.received, Ordering::Relaxed);
        counters.bytes.store(self.bytes, Ordering::Relaxed);
        // SAFETY: the receiver's role hold keeps the mapping attached for
        // the life of the Receiver, and the refs do not outlive this call.
        let refs = unsafe { self.lanes.of(at).ptrs.refs() };
        // The messages are ours now; a failed wake-up (the set was
        // removed) is reported by the next call that waits.
        let _ = wake_sender(self.fences, s, at.lane() as usize, refs);
    }
}

/// Payloads up to this many bytes are copied with their padding to 8, in
/// fixed sizes, rather than by a call to `memcpy`, which costs more than
/// the copy.
const SMALL: usize = 32;

/// Copies the payload of `frame` (validated by `ring`) into `buf`,
/// replacing its contents and reusing its allocation (which, for a
/// payload of up to [`SMALL`] bytes, gets room for its padded length).
#[inline]
fn copy_out(ring: &Consumer, frame: Frame, buf: &mut Vec<u8>) {
    let len = frame.len as usize;
    // Frames are padded to 8 bytes: the payload's padded length lies in
    // the frame too, and the payload starts 8-aligned.
    let padded = (len + 7) & !7;
    buf.clear();
    // SAFETY: peek, peek_ahead or cached_at validated the frame: its
    // payload, and the padding after it up to `padded`, lie inside the
    // data region and were committed (published with Release, read after
    // the Acquire load of tail), and they are not released before this
    // copy; buf has room for `padded` bytes (small payloads; `padded` is
    // 32 in the last arm) or `len`.
    unsafe {
        let from = ring.payload(frame);
        if padded <= SMALL {
            buf.reserve(padded);
            // Fixed sizes, `padded` bytes each: a move or two, no loop to
            // set up.
            let to = buf.as_mut_ptr();
            match padded {
                0 => {}
                8 => std::ptr::copy_nonoverlapping(from, to, 8),
                16 => std::ptr::copy_nonoverlapping(from, to, 16),
                24 => std::ptr::copy_nonoverlapping(from, to, 24),
                _ => std::ptr::copy_nonoverlapping(from, to, SMALL),
            }
        } else {
            buf.reserve(len);
            std::ptr::copy_nonoverlapping(from, buf.as_mut_ptr(), len);
        }
        buf.set_len(len);
    }
}

/// Iterator over the messages queued now, made by [`Receiver::try_iter`]:
/// each `next` is a [`try_recv`](Receiver::try_recv).
///
/// It ends (`None`) at the first [`Error::Empty`] or
/// [`Error::Disconnected`], which are not errors here. Any other error
/// ([`Removed`](Error::Removed), [`Corrupted`](Error::Corrupted), the
/// kernel refusing a call) ends it too, and the iterator keeps it for the
/// caller: [`take_error`](TryIter::take_error) says why it stopped.
/// Iterating again tries again.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
/// let mut rx = chan.receiver()?;
/// let other = shmchan::Channel::open_id(chan.id())?;
/// let mut tx = chan.sender()?;
/// tx.send(b"before")?;
/// other.remove()?; // under the parties' feet
/// let mut queued = rx.try_iter();
/// assert_eq!(queued.next(), None);
/// assert!(matches!(queued.take_error(), Some(shmchan::Error::Removed { .. })));
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug)]
pub struct TryIter<'a> {
    rx: &'a mut Receiver,
    error: Option<Error>,
}

impl TryIter<'_> {
    /// The error that ended the iteration, unless it was
    /// [`Error::Empty`] or [`Error::Disconnected`] (the normal ends);
    /// `None` while it has not ended. Takes it: a second call returns
    /// `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut queued = rx.try_iter();
    /// assert_eq!(queued.next(), None); // Empty: the normal end
    /// assert!(queued.take_error().is_none());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

impl Iterator for TryIter<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        match self.rx.try_recv() {
            Ok(msg) => Some(msg),
            Err(Error::Empty | Error::Disconnected) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}
