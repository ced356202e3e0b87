//! `Sender`'s batches ([`Sender::send_batch`] and its `try_`, `_timeout`
//! and `_deadline` forms) and deadlines ([`Sender::send_deadline`],
//! [`Sender::reserve_deadline`]), kept apart from the single-message paths,
//! which they leave as they were: a batch goes through its own ring call
//! ([`Producer::write_run`]), which writes several frames and publishes
//! them with one store of `tail`.
//!
//! `unsafe` is allowed here for one thing, as in the parent module: the
//! lane's fields in the mapping that the sender's role hold keeps
//! attached.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::shared::Shared;
use super::super::{How, deadline_after};
use super::{SendGrant, Sender, wake_receiver};
use crate::error::{Error, Result};
use crate::layout::{LaneRefs, bump};
use crate::ring::{Producer, Run};

impl Sender {
    /// Sends several messages with as few publications as the ring
    /// allows, waiting while it is full.
    ///
    /// Exactly what happens:
    ///
    /// 1. Every length is checked first. A message longer than
    ///    [`max_message_len`](Self::max_message_len) can never be sent:
    ///    the batch is cut before the first such message, the messages
    ///    before it are sent as below, and the call then fails with
    ///    [`Error::BatchIncomplete`]`{ sent, source: MessageTooLarge }`,
    ///    `msgs[sent]` being that message.
    /// 2. The frames are written back to back, and the ring's `tail` is
    ///    published once for all of those that fit (one Release store,
    ///    then one check whether the receiver sleeps): a batch that fits
    ///    is one publication, which the receiver sees whole or not at all.
    ///    A message that does not fit before the end of the ring goes at
    ///    its start behind a padding frame, published with the others.
    /// 3. When the ring fills before the end of the batch, the frames
    ///    written so far are published; the call waits for room as
    ///    [`send`](Self::send) does (spin, then park) and goes on,
    ///    publishing once per such run of frames.
    ///
    /// When it returns `Ok`, every message is committed, in order. An
    /// empty batch does nothing and returns `Ok`. The lane's counters
    /// (`shmchan stat`) count each message, as `send` does.
    ///
    /// # Errors
    ///
    /// Every error comes as [`Error::BatchIncomplete`]`{ sent, source }`:
    /// the first `sent` messages (0 to all but one) are committed, none
    /// after them, and `source` is what stopped the batch:
    /// [`Error::MessageTooLarge`] for `msgs[sent]` (point 1),
    /// [`Error::Disconnected`] when a receiver it has seen is gone (found
    /// at the call, as `send` finds it, with nothing sent; or while the
    /// batch waits for room, after the messages that fitted),
    /// [`Error::Removed`], [`Error::Corrupted`], as for `send`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send_batch(&["one", "two", "three"])?; // one publication
    /// let got: Vec<Vec<u8>> = rx.try_iter().collect();
    /// assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn send_batch<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> Result<()> {
        self.send_batch_how(msgs, How::Block(None))
    }

    /// Sends as many of `msgs`, from the first, as there is room for now,
    /// all with one publication (as [`send_batch`](Self::send_batch)
    /// says); never waits.
    ///
    /// # Errors
    ///
    /// [`Error::BatchIncomplete`]`{ sent, source: Full }` when the ring
    /// had room for only the first `sent` messages (maybe none): those
    /// are committed, and the rest can be sent again from index `sent`.
    /// Otherwise as `send_batch`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let batch = vec![[7u8; 1000]; 5]; // 1008-byte frames: four fit in 4 KiB
    /// match tx.try_send_batch(&batch) {
    ///     Err(Error::BatchIncomplete { sent, source }) => {
    ///         assert_eq!(sent, 4);
    ///         assert!(matches!(*source, Error::Full));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(rx.try_iter().count(), 4);
    /// tx.try_send_batch(&batch[4..])?; // the rest, now that there is room
    /// assert_eq!(rx.try_recv()?, batch[4]);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_send_batch<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> Result<()> {
        self.send_batch_how(msgs, How::Try)
    }

    /// [`send_batch`](Self::send_batch), waiting for room at most
    /// `timeout` in all: [`send_batch_deadline`](Self::send_batch_deadline)
    /// with the deadline `timeout` from now (without a deadline when that
    /// lies beyond what an `Instant` holds, as with `Duration::MAX`).
    ///
    /// # Errors
    ///
    /// As `send_batch_deadline`.
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
    /// let batch = vec![[1u8; 2000]; 3]; // two fit, nobody makes room for the third
    /// let r = tx.send_batch_timeout(&batch, Duration::from_millis(1));
    /// assert!(matches!(r, Err(Error::BatchIncomplete { sent: 2, .. })));
    /// assert_eq!(rx.try_iter().count(), 2);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_batch_timeout<M: AsRef<[u8]>>(
        &mut self,
        msgs: &[M],
        timeout: Duration,
    ) -> Result<()> {
        match deadline_after(timeout) {
            Some(deadline) => self.send_batch_deadline(msgs, deadline),
            None => self.send_batch(msgs),
        }
    }

    /// [`send_batch`](Self::send_batch), waiting for room until
    /// `deadline` at the latest. A deadline already past still sends what
    /// fits now.
    ///
    /// # Errors
    ///
    /// [`Error::BatchIncomplete`]`{ sent, source: Timeout }` when the
    /// deadline passed with only the first `sent` messages committed;
    /// otherwise as `send_batch`.
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
    /// tx.send_batch_deadline(&["in", "time"], deadline)?; // room: no wait
    /// let batch = vec![[1u8; 3000]; 2]; // the second waits for room, in vain
    /// let r = tx.send_batch_deadline(&batch, deadline);
    /// match r {
    ///     Err(Error::BatchIncomplete { sent: 1, source }) => {
    ///         assert!(matches!(*source, Error::Timeout));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(rx.try_iter().count(), 3);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_batch_deadline<M: AsRef<[u8]>>(
        &mut self,
        msgs: &[M],
        deadline: Instant,
    ) -> Result<()> {
        self.send_batch_how(msgs, How::Block(Some(deadline)))
    }

    /// Sends a message, waiting for room until `deadline` at the latest
    /// ([`send_timeout`](Self::send_timeout) is this with the deadline
    /// `timeout` from now). A message there is room for is sent even when
    /// the deadline has passed.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing written), and as [`send`](Self::send).
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
    /// tx.send_deadline(&[1; 4088], deadline)?; // fills the ring
    /// let r = tx.send_deadline(b"more", deadline); // nobody makes room
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// assert_eq!(rx.recv()?.len(), 4088);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<()> {
        self.send_how(msg, How::Block(Some(deadline)))
    }

    /// Reserves room for a message of exactly `len` bytes, waiting until
    /// `deadline` at the latest ([`reserve_timeout`](Self::reserve_timeout)
    /// is this with the deadline `timeout` from now).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut grant = tx.reserve_deadline(2, Instant::now() + Duration::from_millis(10))?;
    /// grant.copy_from_slice(b"ok");
    /// grant.commit()?;
    /// assert_eq!(rx.recv()?, b"ok");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn reserve_deadline(&mut self, len: usize, deadline: Instant) -> Result<SendGrant<'_>> {
        self.reserve_how(len, How::Block(Some(deadline)))
    }

    /// A batch, waiting as `how` says: the lengths, then the runs of the
    /// messages before the first too long; every error as
    /// [`Error::BatchIncomplete`].
    #[inline]
    fn send_batch_how<M: AsRef<[u8]>>(&mut self, msgs: &[M], how: How) -> Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let max = self.hold.shared().geometry.max_message;
        let fit = msgs
            .iter()
            .position(|m| m.as_ref().len() as u64 > max)
            .unwrap_or(msgs.len());
        let mut sent = 0;
        let r = match fit {
            0 => Ok(()),
            _ => self.batch_runs(&msgs[..fit], how, &mut sent),
        };
        let r = r.and_then(|()| match msgs.get(fit) {
            Some(m) => Err(Error::MessageTooLarge {
                len: m.as_ref().len(),
                max: max as usize,
            }),
            None => Ok(()),
        });
        self.poison.record(r).map_err(|e| Error::BatchIncomplete {
            sent,
            source: Box::new(e),
        })
    }

    /// Publishes `msgs` run by run, counting in `sent` those committed,
    /// waiting for room between runs as `how` says.
    #[inline]
    fn batch_runs<M: AsRef<[u8]>>(&mut self, msgs: &[M], how: How, sent: &mut usize) -> Result<()> {
        self.poison.check()?;
        self.hold.shared().check_open()?;
        if self.peer.gone_quick(self.hold.shared())? {
            return Err(Error::Disconnected);
        }
        // As for one message: a call that may wait may wait for more room
        // than it needs (`ring::REFILL`); a try takes whatever there is.
        let refill = matches!(how, How::Block(_));
        let mut run = self.run(&msgs[*sent..], refill)?;
        loop {
            self.count(run);
            *sent += run.sent;
            if *sent == msgs.len() {
                return Ok(());
            }
            // SAFETY: `hold` keeps the mapping attached for the life of
            // the Sender, and the refs do not outlive this statement.
            bump(&unsafe { self.lane_ptrs.refs() }.tx.counters.stalls);
            run = match how {
                How::Try if self.peer.gone(self.hold.shared())? => {
                    return Err(Error::Disconnected);
                }
                How::Try => return Err(Error::Full),
                How::Block(deadline) => self.wait_run(&msgs[*sent..], deadline)?,
            };
        }
    }

    /// One run: what fits of `msgs` now, published at once.
    #[inline]
    fn run<M: AsRef<[u8]>>(&mut self, msgs: &[M], refill: bool) -> Result<Run> {
        let s = self.hold.shared();
        // SAFETY: `hold` keeps the mapping attached for the life of the
        // Sender, and the refs do not outlive this call.
        let refs = unsafe { self.lane_ptrs.refs() };
        publish_run(&mut self.ring, s, refs, msgs, refill)
    }

    /// Counts a run's messages in the lane's counters, as `commit` counts
    /// one.
    #[inline]
    fn count(&mut self, run: Run) {
        if run.sent == 0 {
            return;
        }
        // Wrapping: the counters start from values read from the segment.
        self.sent = self.sent.wrapping_add(run.sent as u64);
        self.bytes = self.bytes.wrapping_add(run.bytes);
        // SAFETY: `hold` keeps the mapping attached for the life of the
        // Sender, and the refs do not outlive this call.
        let counters = &unsafe { self.lane_ptrs.refs() }.tx.counters;
        counters.messages.store(self.sent, Ordering::Relaxed);
        counters.bytes.store(self.bytes, Ordering::Relaxed);
    }

    /// Waits for room for the first of `msgs` (as `wait_room` does for one
    /// message), then publishes the run that fits: at least one message.
    fn wait_run<M: AsRef<[u8]>>(&mut self, msgs: &[M], deadline: Option<Instant>) -> Result<Run> {
        self.wait_with(deadline, |ring, s, refs, refill| {
            let run = publish_run(ring, s, refs, msgs, refill)?;
            Ok((run.sent > 0).then_some(run))
        })
    }
}

/// Writes and publishes one run of `msgs` (`Producer::write_run`); after a
/// publication, one check whether the receiver sleeps (a run of padding
/// alone too: the receiver must skip it before the sender can go on).
#[inline]
fn publish_run<M: AsRef<[u8]>>(
    ring: &mut Producer,
    s: &Shared,
    refs: LaneRefs<'_>,
    msgs: &[M],
    refill: bool,
) -> Result<Run> {
    let run = ring.write_run(msgs, refill).map_err(|c| s.corrupted(c.0))?;
    if run.published {
        // The run is committed: a failed wake-up (the set was removed) is
        // reported by the next call that waits, as after `commit`, not as
        // a failed batch whose count would then be wrong.
        let _ = wake_receiver(s.header(), s.fences(), s, refs);
    }
    Ok(run)
}
