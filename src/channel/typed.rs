//! Typed values (feature `serde`): any `Serialize` type in, any
//! `DeserializeOwned` type out, one value per message, encoded with
//! postcard (why postcard: the crate docs, "Typed values").
//!
//! Sending measures the encoding first (postcard's `Size` flavor, which
//! writes nothing), reserves a frame of exactly that length, serializes
//! into it with `postcard::to_slice` and commits: no buffer of its own, no
//! allocation per message. Receiving decodes from the payload in place
//! (`recv_ref`) and then drops the guard, so a message that does not
//! decode is consumed like any other: one bad message never blocks the
//! ones behind it. Only the public byte API is used here.

use std::any::type_name;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Receiver, SendGrant, Sender, SenderId};
use crate::error::{Error, Result};

impl Sender {
    /// Sends one value, encoded with postcard, waiting while the ring is
    /// full.
    ///
    /// The value is serialized twice: once to measure it, once into the
    /// reserved frame (never through a buffer of its own). When it returns
    /// `Ok`, the value is committed.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] when its encoding is longer than
    /// [`max_message_len`](Self::max_message_len); [`Error::Encode`] when
    /// its `Serialize` impl fails (or writes other bytes the second time);
    /// and as [`send`](Self::send). On any error nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use shmchan::{Channel, Key, Options};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Order { id: u64, item: String, qty: u32 }
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// let order = Order { id: 7, item: "tea".into(), qty: 2 };
    /// tx.send_value(&order)?; // 1 + 4 + 1 bytes on the wire: varints
    /// assert_eq!(rx.recv_value::<Order>()?, order);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let len = encoded_len(value)?;
        encode_into(value, self.reserve(len)?)
    }

    /// Sends one value if there is room for it now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`], and as [`send_value`](Self::send_value). On any
    /// error nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.try_send_value(&vec![0u8; 4080])?; // 2 bytes of length, then the bytes
    /// assert!(matches!(tx.try_send_value(&1u32), Err(Error::Full)));
    /// assert_eq!(rx.recv_value::<Vec<u8>>()?.len(), 4080);
    /// tx.try_send_value(&1u32)?;
    /// chan.remove()?; // it holds a message: it would outlive us
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let len = encoded_len(value)?;
        encode_into(value, self.try_reserve(len)?)
    }

    /// Sends one value, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and as [`send_value`](Self::send_value). On any
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
    /// let r = tx.send_value_timeout(&"late", Duration::from_millis(1));
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// chan.remove()?; // it holds a message: it would outlive us
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_value_timeout<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        let len = encoded_len(value)?;
        encode_into(value, self.reserve_timeout(len, timeout)?)
    }

    /// Sends one value, waiting for room without blocking the executor:
    /// the async [`send_value`](Self::send_value) (see
    /// [`send_async`](Self::send_async) for how it waits).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the value is encoded into the frame and committed in
    /// the poll that completes; a future dropped before that sent nothing.
    ///
    /// # Errors
    ///
    /// As [`send_value`](Self::send_value).
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use shmchan::{Channel, Key, Options};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Tick { seq: u64, price: f64 }
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// rt.block_on(async {
    ///     tx.send_value_async(&Tick { seq: 1, price: 9.5 }).await?;
    ///     assert_eq!(rx.recv_value_async::<Tick>().await?, Tick { seq: 1, price: 9.5 });
    ///     Ok::<(), shmchan::Error>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_value_async<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let len = encoded_len(value)?;
        encode_into(value, self.reserve_async(len).await?)
    }
}

impl Receiver {
    /// Receives the next message as a value of type `T`, waiting for one.
    ///
    /// The value is decoded from the payload in place, then the message is
    /// released. A message that is not exactly one postcard encoding of a
    /// `T` (one it does not decode as, or one with bytes left over after
    /// the value) is [`Error::Decode`], and **has been consumed**: the next
    /// call receives the message after it.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] (the message consumed), and as
    /// [`recv`](Self::recv) (nothing consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// enum Command { Move { x: i32, y: i32 }, Say(String), Quit }
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.send_value(&Command::Say("hi".into()))?;
    /// tx.send(b"\xff")?; // raw bytes: no Command
    /// tx.send_value(&Command::Quit)?;
    /// assert_eq!(rx.recv_value::<Command>()?, Command::Say("hi".into()));
    /// assert!(matches!(rx.recv_value::<Command>(), Err(Error::Decode { .. })));
    /// assert_eq!(rx.recv_value::<Command>()?, Command::Quit); // the bad one was consumed
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[inline]
    pub fn recv_value<T: DeserializeOwned>(&mut self) -> Result<T> {
        decode(&self.recv_ref()?)
    }

    /// Receives a value if a message is queued now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] (nothing consumed), and as
    /// [`recv_value`](Self::recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// assert!(matches!(rx.try_recv_value::<u64>(), Err(Error::Empty)));
    /// tx.send_value(&(1u8, "two", 3.0f64))?;
    /// let (a, b, c): (u8, String, f64) = rx.try_recv_value()?;
    /// assert_eq!((a, b.as_str(), c), (1, "two", 3.0));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn try_recv_value<T: DeserializeOwned>(&mut self) -> Result<T> {
        decode(&self.try_recv_ref()?)
    }

    /// Receives a value, waiting at most `timeout` for a message.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing consumed), and as
    /// [`recv_value`](Self::recv_value).
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
    /// assert!(matches!(rx.recv_value_timeout::<String>(wait), Err(Error::Timeout)));
    /// tx.send_value("in time")?;
    /// assert_eq!(rx.recv_value_timeout::<String>(wait)?, "in time");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_value_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        decode(&self.recv_ref_timeout(timeout)?)
    }

    /// Receives the next value and the sender it came from, waiting for
    /// one.
    ///
    /// # Errors
    ///
    /// As [`recv_value`](Self::recv_value): on [`Error::Decode`] the
    /// message has been consumed.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let opts = Options::new().capacity(4096).max_senders(2);
    /// let chan = Channel::create(Key::PRIVATE, &opts)?;
    /// let mut rx = chan.receiver()?;
    /// let (mut a, mut b) = (chan.sender()?, chan.sender()?);
    /// a.send_value(&1u32)?;
    /// b.send_value(&2u32)?;
    /// assert_eq!(rx.recv_value_from::<u32>()?, (1, a.id()));
    /// assert_eq!(rx.recv_value_from::<u32>()?, (2, b.id()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_value_from<T: DeserializeOwned>(&mut self) -> Result<(T, SenderId)> {
        decode_from(self.recv_ref()?)
    }

    /// Receives one value, waiting without blocking the executor: the
    /// async [`recv_value`](Self::recv_value) (see
    /// [`recv_async`](Self::recv_async) for how it waits).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a future dropped before it completed has consumed
    /// nothing. A message that does not decode is consumed by the poll
    /// that returns the error, as with `recv_value`.
    ///
    /// # Errors
    ///
    /// As [`recv_value`](Self::recv_value).
    ///
    /// # Examples
    ///
    /// See [`Sender::send_value_async`].
    pub async fn recv_value_async<T: DeserializeOwned>(&mut self) -> Result<T> {
        decode(&self.recv_ref_async().await?)
    }

    /// Receives one value and its sender, waiting without blocking the
    /// executor: the async [`recv_value_from`](Self::recv_value_from).
    ///
    /// # Cancel safety
    ///
    /// As [`recv_value_async`](Self::recv_value_async).
    ///
    /// # Errors
    ///
    /// As [`recv_value`](Self::recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// # fn main() -> shmchan::Result<()> {
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))?;
    /// let (mut rx, mut tx) = (chan.receiver()?, chan.sender()?);
    /// tx.send_value(&("job", 42u32))?;
    /// let (job, from) = rt.block_on(rx.recv_value_from_async::<(String, u32)>())?;
    /// assert_eq!((job, from), (("job".to_string(), 42), tx.id()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_value_from_async<T: DeserializeOwned>(&mut self) -> Result<(T, SenderId)> {
        decode_from(self.recv_ref_async().await?)
    }
}

/// The length of `value`'s postcard encoding, measured without writing it.
#[inline]
fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(|e| encode_error::<T>(e.to_string()))
}

/// Serializes `value` into the grant (reserved for its measured length)
/// and commits it. A `Serialize` impl that writes another length the
/// second time fails here, and the grant is dropped: nothing is sent.
#[inline]
fn encode_into<T: Serialize + ?Sized>(value: &T, mut grant: SendGrant<'_>) -> Result<()> {
    let reserved = grant.len();
    match postcard::to_slice(value, &mut grant) {
        Ok(written) if written.len() == reserved => grant.commit(),
        Ok(written) => Err(encode_error::<T>(format!(
            "it serialized to {} bytes after measuring {reserved}",
            written.len()
        ))),
        Err(e) => Err(encode_error::<T>(e.to_string())),
    }
}

/// `msg` decoded as exactly one `T`: postcard's `take_from_bytes`, which
/// also says what is left over; bytes left over are an error (a message
/// carries one value, so they mean the sender sent another type).
#[inline]
fn decode<T: DeserializeOwned>(msg: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(msg) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(decode_error::<T>(format!(
            "{} bytes left over after the value, in a message of {}",
            rest.len(),
            msg.len()
        ))),
        Err(e) => Err(decode_error::<T>(format!(
            "{e} (a message of {} bytes)",
            msg.len()
        ))),
    }
}

/// Decodes a guard's message and names its sender; the message is
/// consumed as the guard drops, whether it decoded or not.
fn decode_from<T: DeserializeOwned>(msg: super::RecvGuard<'_>) -> Result<(T, SenderId)> {
    let from = msg.sender();
    decode(&msg).map(|value| (value, from))
}

#[cold]
fn encode_error<T: ?Sized>(cause: String) -> Error {
    Error::Encode {
        type_name: type_name::<T>(),
        cause,
    }
}

#[cold]
fn decode_error<T>(cause: String) -> Error {
    Error::Decode {
        type_name: type_name::<T>(),
        cause,
    }
}
