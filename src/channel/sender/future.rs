//! The sender's async calls: `send_async` and `reserve_async`.
//!
//! Each takes the blocking call's fast path first, spins by yielding to
//! the executor, then hands the park to the sender's helper thread
//! (`crate::helper`): no call ever blocks the executor's thread.

use std::future::Future;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use super::{SendGrant, Sender, room_poll, try_reserve};
use crate::channel::party::SemParker;
use crate::error::Result;
use crate::helper::{self, WaitFor, Waits};
use crate::layout::{bump, sem};

impl Sender {
    /// Sends a message, waiting for room without blocking the executor:
    /// the async [`send`](Self::send). When it resolves to `Ok` the
    /// message is committed.
    ///
    /// Room that is there is taken in the first poll, without a system
    /// call. Otherwise the future spins for the sender's budget
    /// ([`set_spin`](Self::set_spin)) by waking itself (the executor runs
    /// other tasks meanwhile), then hands the park to a helper thread that
    /// the sender starts on first need (one per sender, joined when the
    /// sender drops) and that wakes the task when the receiver makes room,
    /// dies, or the channel is removed. Runtime-agnostic: nothing but
    /// `std::task`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is reserved, written and committed in the
    /// poll that completes, so a future dropped before it completed has
    /// committed nothing (and a future that completed has committed all
    /// of it). Its helper may stay parked; the next call of the sender,
    /// async or blocking, takes that park over or back.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send): [`Error::MessageTooLarge`](crate::Error::MessageTooLarge),
    /// [`Error::Disconnected`](crate::Error::Disconnected),
    /// [`Error::Removed`](crate::Error::Removed),
    /// [`Error::Corrupted`](crate::Error::Corrupted); and an
    /// [`Error::Os`](crate::Error::Os) if the helper thread could not be
    /// started.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// rt.block_on(tx.send_async(b"hello"))?;
    /// assert_eq!(rx.recv()?, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_async<'a>(&'a mut self, msg: &'a [u8]) -> impl Future<Output = Result<()>> + 'a {
        self.room_async(msg.len(), |mut grant| {
            grant.copy_from_slice(msg);
            grant.commit()
        })
    }

    /// Reserves `len` bytes in the ring, waiting for room without blocking
    /// the executor: the async [`reserve`](Self::reserve). Write the
    /// payload into the grant, then [`commit`](SendGrant::commit) it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a future dropped before it completed has reserved
    /// nothing. A grant dropped without `commit` publishes nothing.
    ///
    /// # Errors
    ///
    /// As [`send_async`](Self::send_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// rt.block_on(async {
    ///     let mut grant = tx.reserve_async(5).await?;
    ///     grant.copy_from_slice(b"built");
    ///     grant.commit()
    /// })?;
    /// assert_eq!(rx.recv()?, b"built");
    /// # Ok(())
    /// # }
    /// ```
    pub fn reserve_async(
        &mut self,
        len: usize,
    ) -> impl Future<Output = Result<SendGrant<'_>>> + '_ {
        self.room_async(len, Ok)
    }

    /// Polls to send `msg`: the poll under [`send_async`](Self::send_async),
    /// for futures of one's own (an event loop of another language, a
    /// trait of another runtime). Never blocks.
    ///
    /// `Ready(Ok)`: the message is committed. `Pending`: nothing was
    /// written, and `cx`'s waker will be woken when it is worth polling
    /// again (after a spin by self-wakes, by the sender's helper thread).
    /// The sender keeps when its current wait began between polls, and
    /// forgets it at each `Ready`.
    ///
    /// # Errors
    ///
    /// As [`send_async`](Self::send_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// rt.block_on(std::future::poll_fn(|cx| tx.poll_send(cx, b"polled")))?;
    /// assert_eq!(rx.recv()?, b"polled");
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<Result<()>> {
        let grant = ready!(self.poll_reserve(cx, msg.len()));
        Poll::Ready(grant.and_then(|mut grant| {
            grant.copy_from_slice(msg);
            grant.commit()
        }))
    }

    /// Polls to reserve `len` bytes: the poll under
    /// [`reserve_async`](Self::reserve_async), as
    /// [`poll_send`](Self::poll_send) is for `send_async`. Write the
    /// payload into the grant, then [`commit`](SendGrant::commit) it.
    ///
    /// # Errors
    ///
    /// As [`send_async`](Self::send_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut tx = chan.sender()?;
    /// let mut rx = chan.receiver()?;
    /// let mut cx = Context::from_waker(Waker::noop());
    /// match tx.poll_reserve(&mut cx, 2) {
    ///     Poll::Ready(grant) => {
    ///         let mut grant = grant?;
    ///         grant.copy_from_slice(b"ok");
    ///         grant.commit()?;
    ///     }
    ///     Poll::Pending => unreachable!("the ring is empty"),
    /// }
    /// assert_eq!(rx.recv()?, b"ok");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn poll_reserve(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<Result<SendGrant<'_>>> {
        let mut spun = self.poll_spun.take();
        let r = helper::poll_found(self, len, cx, &mut spun);
        match r {
            Poll::Pending => {
                self.poll_spun = spun;
                Poll::Pending
            }
            Poll::Ready(r) => Poll::Ready(r.map(|offset| SendGrant {
                tx: self,
                offset,
                len,
            })),
        }
    }

    /// A future that waits for room for `len` bytes, then hands the grant
    /// to `then` (in the poll that completes: nothing is reserved before).
    #[inline]
    fn room_async<'a, T>(
        &'a mut self,
        len: usize,
        then: impl FnOnce(SendGrant<'a>) -> Result<T> + Unpin + 'a,
    ) -> impl Future<Output = Result<T>> + 'a {
        WaitFor::new(self, len, move |tx, offset| {
            then(SendGrant { tx, offset, len })
        })
    }

    #[cold]
    #[inline(never)]
    fn poll_room_slow(
        &mut self,
        len: usize,
        cx: &mut Context<'_>,
        spun: &mut Option<Instant>,
    ) -> Poll<Result<u64>> {
        if let Err(e) = self.check_room_call(len) {
            return Poll::Ready(Err(e));
        }
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
        let first = spun.is_none();
        let r = helper::poll_wait(
            &refs.tx_waiting.waiting,
            s.fences(),
            self.spin,
            spun,
            &mut self.helper,
            cx,
            &mut parker,
            |phase| {
                room_poll(ring, peer, s, refs, phase, &mut |ring, s, refs, refill| {
                    try_reserve(ring, s, refs, len as u64, refill)
                })
            },
        );
        if first && r.is_pending() {
            bump(&refs.tx.counters.stalls);
        }
        r
    }
}

impl Waits for Sender {
    type Arg = usize;
    type Found = u64;

    #[inline(always)]
    fn fast(&mut self, len: usize) -> Option<u64> {
        self.fast_room(len, true)
    }

    fn poll_slow(
        &mut self,
        len: usize,
        cx: &mut Context<'_>,
        spun: &mut Option<Instant>,
    ) -> Poll<Result<u64>> {
        let r = ready!(self.poll_room_slow(len, cx, spun));
        Poll::Ready(self.poison.record(r))
    }
}
