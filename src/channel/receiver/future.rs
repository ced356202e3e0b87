//! The receiver's async calls: `recv_async` and its kin, and `stream`.
//!
//! Each takes the blocking call's fast path first, spins by yielding to
//! the executor, then hands the park to the receiver's helper thread
//! (`crate::helper`): no call ever blocks the executor's thread.

use std::future::Future;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use super::{At, Receiver, RecvGuard, SenderId, frame_poll, known};
use crate::channel::party::SemParker;
use crate::error::Result;
use crate::helper::{self, WaitFor, Waits};
use crate::layout::{bump, sem};

impl Receiver {
    /// Receives the next message, waiting for one without blocking the
    /// executor: the async [`recv`](Self::recv).
    ///
    /// A message that is there is returned in the first poll, without a
    /// system call. Otherwise the future spins for the receiver's budget
    /// ([`set_spin`](Self::set_spin)) by waking itself (the executor runs
    /// other tasks meanwhile), then hands the park to a helper thread that
    /// the receiver starts on first need (one per receiver, joined when
    /// the receiver drops) and that wakes the task when a message, the
    /// sender's death or the channel's removal arrives. Runtime-agnostic:
    /// nothing but `std::task`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a future dropped before it completed has consumed
    /// nothing (the message is taken in the same poll that returns it).
    /// Its helper may stay parked; the next call of the receiver, async or
    /// blocking, takes that park over or back.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv): [`Error::Disconnected`](crate::Error::Disconnected)
    /// once every committed message is received and the sender is gone,
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
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// let sender = std::thread::spawn(move || tx.send(b"hello async"));
    /// let msg = rt.block_on(rx.recv_async())?;
    /// assert_eq!(msg, b"hello async");
    /// sender.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_async(&mut self) -> impl Future<Output = Result<Vec<u8>>> + '_ {
        self.frame_async(|rx, at| {
            let mut buf = Vec::new();
            rx.take_into::<false>(at, &mut buf);
            Ok(buf)
        })
    }

    /// Receives the next message into `buf` (cleared first, its capacity
    /// reused), waiting without blocking the executor: the async
    /// [`recv_into`](Self::recv_into). Returns the message's length.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv_async`](Self::recv_async): `buf` is left
    /// untouched until the poll that completes.
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"one")?;
    /// tx.send(b"two")?;
    /// let mut buf = Vec::with_capacity(64);
    /// rt.block_on(async {
    ///     assert_eq!(rx.recv_into_async(&mut buf).await?, 3);
    ///     assert_eq!(buf, b"one");
    ///     rx.recv_into_async(&mut buf).await?;
    ///     assert_eq!(buf, b"two");
    ///     Ok::<(), shmchan::Error>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_into_async<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> impl Future<Output = Result<usize>> + 'a {
        self.frame_async(|rx, at| Ok(rx.take_into::<false>(at, buf).0))
    }

    /// Receives the next message in place, waiting without blocking the
    /// executor: the async [`recv_ref`](Self::recv_ref). The space goes
    /// back to the sender when the guard drops.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv_async`](Self::recv_async). A guard that the
    /// future returned is a message received: dropping it releases it.
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"in place")?;
    /// rt.block_on(async {
    ///     let msg = rx.recv_ref_async().await?;
    ///     assert_eq!(&*msg, b"in place");
    ///     Ok::<(), shmchan::Error>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_ref_async(&mut self) -> impl Future<Output = Result<RecvGuard<'_>>> + '_ {
        self.frame_async(|rx, at| Ok(RecvGuard { rx, at }))
    }

    /// Receives the next message and the sender it came from, waiting
    /// without blocking the executor: the async
    /// [`recv_from`](Self::recv_from), for a server of many senders.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv_async`](Self::recv_async).
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))?;
    /// let mut rx = chan.receiver()?;
    /// let mut a = chan.sender()?;
    /// let mut b = chan.sender()?;
    /// a.send(b"from a")?;
    /// b.send(b"from b")?;
    /// rt.block_on(async {
    ///     let mut got = vec![rx.recv_from_async().await?, rx.recv_from_async().await?];
    ///     got.sort_by_key(|(msg, _)| msg.clone());
    ///     assert_eq!(got, [(b"from a".to_vec(), a.id()), (b"from b".to_vec(), b.id())]);
    ///     Ok::<(), shmchan::Error>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_from_async(&mut self) -> impl Future<Output = Result<(Vec<u8>, SenderId)>> + '_ {
        self.frame_async(|rx, at| {
            let mut buf = Vec::new();
            let (_, from) = rx.take_into::<true>(at, &mut buf);
            Ok((buf, known(from)))
        })
    }

    /// Polls for the next message, into `buf` (cleared first, its
    /// capacity reused): the poll under [`recv_into_async`](Self::recv_into_async),
    /// for futures and streams of one's own (an event loop of another
    /// language, a trait of another runtime). Never blocks.
    ///
    /// `Ready` takes the message (or gives the error); `Pending` has
    /// consumed nothing and arranged for `cx`'s waker to be woken when it
    /// is worth polling again (after a spin by self-wakes, by the
    /// receiver's helper thread). The receiver keeps when its current
    /// wait began between polls, and forgets it at each `Ready`.
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::task::Poll;
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// let mut buf = Vec::new();
    /// tx.send(b"polled")?;
    /// let len = rt.block_on(std::future::poll_fn(|cx| rx.poll_recv_into(cx, &mut buf)))?;
    /// assert_eq!(&buf[..len], b"polled");
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_recv_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<Result<usize>> {
        let at = ready!(self.poll_frame_kept(cx));
        Poll::Ready(at.map(|at| self.take_into::<false>(at, buf).0))
    }

    /// Polls for the next message and its sender: the poll under
    /// [`recv_from_async`](Self::recv_from_async), as
    /// [`poll_recv_into`](Self::poll_recv_into) is for `recv_into_async`.
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"polled")?;
    /// let (msg, from) = rt.block_on(std::future::poll_fn(|cx| rx.poll_recv_from(cx)))?;
    /// assert_eq!((msg.as_slice(), from), (&b"polled"[..], tx.id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_recv_from(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Vec<u8>, SenderId)>> {
        let at = ready!(self.poll_frame_kept(cx));
        Poll::Ready(at.map(|at| {
            let mut buf = Vec::new();
            let (_, from) = self.take_into::<true>(at, &mut buf);
            (buf, known(from))
        }))
    }

    /// Polls for the next message, read in place: the poll under
    /// [`recv_ref_async`](Self::recv_ref_async), as
    /// [`poll_recv_into`](Self::poll_recv_into) is for `recv_into_async`.
    /// The space goes back to the sender when the guard drops.
    ///
    /// # Errors
    ///
    /// As [`recv_async`](Self::recv_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// let mut tx = chan.sender()?;
    /// tx.send(b"in place")?;
    /// let mut cx = Context::from_waker(Waker::noop());
    /// match rx.poll_recv_ref(&mut cx) {
    ///     Poll::Ready(msg) => assert_eq!(&*msg?, b"in place"),
    ///     Poll::Pending => unreachable!("the message is there"),
    /// }
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn poll_recv_ref(&mut self, cx: &mut Context<'_>) -> Poll<Result<RecvGuard<'_>>> {
        let at = ready!(self.poll_frame_kept(cx));
        Poll::Ready(at.map(|at| RecvGuard { rx: self, at }))
    }

    /// One poll for the next frame (`helper::poll_found`) with the wait's start kept in the
    /// receiver between polls.
    fn poll_frame_kept(&mut self, cx: &mut Context<'_>) -> Poll<Result<At>> {
        let mut spun = self.poll_spun.take();
        let r = helper::poll_found(self, (), cx, &mut spun);
        if r.is_pending() {
            self.poll_spun = spun;
        }
        r
    }

    /// A future that waits for the next frame, then hands it to `then`
    /// (in the poll that completes: nothing is taken before).
    #[inline]
    fn frame_async<'a, T>(
        &'a mut self,
        then: impl FnOnce(&'a mut Receiver, At) -> Result<T> + Unpin + 'a,
    ) -> impl Future<Output = Result<T>> + 'a {
        WaitFor::new(self, (), then)
    }

    #[cold]
    #[inline(never)]
    fn poll_frame_slow(
        &mut self,
        cx: &mut Context<'_>,
        spun: &mut Option<Instant>,
    ) -> Poll<Result<At>> {
        let s = self.hold.shared();
        if let Err(e) = self.poison.check().and_then(|()| s.check_open()) {
            return Poll::Ready(Err(e));
        }
        let (lanes, peer) = (&mut self.lanes, &mut self.peer);
        let h = s.header();
        let mut parker = SemParker {
            shared: s,
            num: sem::RX_WAKE,
            counters: &h.rx.counters,
        };
        let first = spun.is_none();
        let r = helper::poll_wait(
            &h.rx_waiting.waiting,
            s.fences(),
            self.spin,
            spun,
            &mut self.helper,
            cx,
            &mut parker,
            |phase| frame_poll(lanes, peer, s, phase),
        );
        if first && r.is_pending() {
            bump(&h.rx.counters.stalls);
        }
        r
    }
}

impl Waits for Receiver {
    type Arg = ();
    type Found = At;

    #[inline(always)]
    fn fast(&mut self, (): ()) -> Option<At> {
        self.fast_frame()
    }

    fn poll_slow(
        &mut self,
        (): (),
        cx: &mut Context<'_>,
        spun: &mut Option<Instant>,
    ) -> Poll<Result<At>> {
        let r = ready!(self.poll_frame_slow(cx, spun));
        Poll::Ready(self.poison.record(r))
    }
}

#[cfg(feature = "async")]
pub use stream::RecvStream;

#[cfg(feature = "async")]
mod stream {
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};
    use std::time::Instant;

    use crate::error::Error;
    use crate::helper;
    use crate::{Receiver, Result};

    impl Receiver {
        /// The messages as a [`futures_core::Stream`] (feature `async`):
        /// the async [`iter`](Self::iter). Each item is an
        /// [`recv_async`](Self::recv_async).
        ///
        /// It ends (`None`) at [`Error::Disconnected`], the normal end. Any
        /// other error ends it too, and the stream keeps that error for
        /// the caller: [`RecvStream::take_error`] says why it stopped.
        ///
        /// # Cancel safety
        ///
        /// Dropping the stream, or a `next()` future of it, between items
        /// loses nothing: an item is taken in the poll that yields it.
        ///
        /// # Examples
        ///
        /// ```
        /// use shmchan::{Channel, Key, Options};
        /// use std::pin::Pin;
        /// use futures_core::Stream;
        ///
        /// # fn main() -> shmchan::Result<()> {
        /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
        /// let mut rx = chan.receiver()?;
        /// let mut tx = chan.sender()?;
        /// tx.send(b"one")?;
        /// tx.send(b"two")?;
        /// drop(tx); // the stream ends after "two"
        /// let mut stream = rx.stream();
        /// let got = rt.block_on(async {
        ///     let mut got = Vec::new();
        ///     while let Some(msg) =
        ///         std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
        ///     {
        ///         got.push(msg);
        ///     }
        ///     got
        /// });
        /// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        /// assert!(stream.take_error().is_none()); // it ended at Disconnected
        /// # Ok(())
        /// # }
        /// ```
        pub fn stream(&mut self) -> RecvStream<'_> {
            RecvStream {
                rx: self,
                spun: None,
                error: None,
            }
        }
    }

    /// The messages of a receiver as a [`futures_core::Stream`], made by
    /// [`Receiver::stream`] (feature `async`).
    #[derive(Debug)]
    pub struct RecvStream<'a> {
        rx: &'a mut Receiver,
        spun: Option<Instant>,
        error: Option<Error>,
    }

    impl RecvStream<'_> {
        /// The error that ended the stream, unless it was
        /// [`Error::Disconnected`] (the normal end); `None` while it has
        /// not ended. Takes it: a second call returns `None`.
        pub fn take_error(&mut self) -> Option<Error> {
            self.error.take()
        }
    }

    impl futures_core::Stream for RecvStream<'_> {
        type Item = Vec<u8>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
            let this = &mut *self;
            let r: Result<_> = ready!(helper::poll_found(&mut *this.rx, (), cx, &mut this.spun));
            this.spun = None;
            match r {
                Ok(at) => {
                    let mut buf = Vec::new();
                    this.rx.take_into::<false>(at, &mut buf);
                    Poll::Ready(Some(buf))
                }
                Err(Error::Disconnected) => Poll::Ready(None),
                Err(e) => {
                    this.error = Some(e);
                    Poll::Ready(None)
                }
            }
        }
    }
}
