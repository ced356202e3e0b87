//! Typed values (feature `serde`): any `Serialize` type in, any
//! `DeserializeOwned` type out, one value per message, encoded with
//! postcard (why postcard: the crate docs, "Typed values").
//!
//! Sending serializes into a frame of a guessed length (a flavor of our
//! own writing into the reserved payload) and commits the bytes written;
//! a value longer than the guess is measured first (postcard's `Size`
//! flavor, which writes nothing), then serialized into a frame of exactly
//! that length with the same flavor: no buffer of its own, no
//! allocation per message. Receiving decodes from the payload in place
//! (`recv_ref`) and then drops the guard, so a message that does not
//! decode is consumed like any other: one bad message never blocks the
//! ones behind it. Only the public byte API is used here.

use std::any::type_name;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{How, Receiver, SendGrant, Sender, SenderId, deadline_after};
use crate::error::{Error, Result, byte_count};

impl Sender {
    /// Sends one value, encoded with postcard, waiting while the ring is
    /// full.
    ///
    /// The value is serialized straight into a frame in the ring, never
    /// through a buffer of its own: once, into a frame of a guessed length
    /// (its size in memory, a quarter more and 16 bytes) when one is free
    /// now; else (a longer encoding, or no room for the guess) measured
    /// first, then serialized into a frame of its exact length. When it
    /// returns `Ok`, the value is committed.
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
        send_value_via(self, value, How::Block(None))
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
        send_value_via(self, value, How::Try)
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
        send_value_via(self, value, How::Block(deadline_after(timeout)))
    }

    /// Sends one value, waiting for room until `deadline` at the latest
    /// ([`send_value_timeout`](Self::send_value_timeout) is this with the
    /// deadline `timeout` from now).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (nothing sent), and as
    /// [`send_value`](Self::send_value).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.send_value_deadline(&(1u8, "one"), Instant::now() + Duration::from_millis(1))?;
    /// assert_eq!(rx.recv_value::<(u8, String)>()?, (1, "one".to_owned()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn send_value_deadline<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        deadline: Instant,
    ) -> Result<()> {
        send_value_via(self, value, How::Block(Some(deadline)))
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
        // As `send_value`: one pass into a guessed frame when it fits now.
        if let Some(sent) = send_value_guessed(self, value) {
            return sent;
        }
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

    /// Receives the next value, waiting until `deadline` at the latest (a
    /// message already queued is received even when the deadline has
    /// passed).
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
    /// use std::time::{Duration, Instant};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert!(matches!(rx.recv_value_deadline::<u64>(soon), Err(Error::Timeout)));
    /// tx.send_value(&5u64)?;
    /// assert_eq!(rx.recv_value_deadline::<u64>(soon)?, 5); // past, but queued
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn recv_value_deadline<T: DeserializeOwned>(&mut self, deadline: Instant) -> Result<T> {
        decode(&self.recv_ref_deadline(deadline)?)
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

/// Sends `value` in one serialization pass where it can: into a
/// reservation of a guessed length (the value's size in memory and a
/// quarter more, plus 16 bytes: what postcard needs for a struct of
/// fixed-size fields), committing only the bytes written. Measuring it
/// first, then serializing it into an exact reservation, cost two passes,
/// and the pass into postcard's slice flavor a `memcpy` call per field: a
/// 64-byte struct went at a fifth of the raw bytes' rate
/// (`benchmarks/README.md`, "Typed values"). When the guess is too short
/// (strings, vectors), or the ring has no room for it now (the guess is
/// only ever tried, never waited for), it measures the value and reserves
/// exactly, waiting as `how` says; what was written into the
/// speculative frame is dropped, never published.
#[inline]
fn send_value_via<T: Serialize + ?Sized>(tx: &mut Sender, value: &T, how: How) -> Result<()> {
    if let Some(sent) = send_value_guessed(tx, value) {
        return sent;
    }
    let len = encoded_len(value)?;
    encode_into(value, tx.reserve_how(len, how)?)
}

/// [`send_value_via`]'s one pass: what sending `value` into a frame of
/// the guessed length came to, or `None` when the guess was too short or
/// there is no room for it now on the fast path (nothing sent, nothing
/// counted: measure, then reserve).
///
/// Always inlined: called, its `Option<Result>` came back through memory
/// and cost `send_value` 13 % under LTO (benchmarks/README.md, "Issues 12
/// and 13 in both profiles, one command each (stop 24: c0b2780)", last
/// paragraph).
#[inline(always)]
fn send_value_guessed<T: Serialize + ?Sized>(tx: &mut Sender, value: &T) -> Option<Result<()>> {
    let size = std::mem::size_of_val(value);
    let guess = (size + size / 4 + 16).min(tx.max_message_len());
    // The guess never waits: a frame that would fit might be refused for
    // the guess's extra bytes, and waited for (or timed out) in vain. Nor
    // does it count a stall, or report anything: the measured path that
    // follows a `None` does, once.
    let mut grant = tx.try_reserve_quiet(guess)?;
    match postcard::serialize_with_flavor(value, FrameWriter::new(&mut grant)) {
        Ok(written) => Some(grant.commit_len(written)),
        Err(postcard::Error::SerializeBufferFull) => None,
        Err(e) => Some(Err(encode_error::<T>(cause(e)))),
    }
}

/// A postcard flavor that writes into a reserved frame: small pieces (a
/// varint, a float) are copied inline (see `try_extend`), not with a
/// `memcpy` call each, as postcard's slice flavor does.
struct FrameWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

/// The longest piece [`FrameWriter`] copies a byte at a time (its
/// `bytes!` list has this many indices): a `u64`'s longest varint. Longer
/// pieces (a `u128`'s varint, up to 19 bytes, a long string) go by
/// `copy_from_slice`.
const SHORT: usize = 10;

impl<'a> FrameWriter<'a> {
    fn new(buf: &'a mut [u8]) -> FrameWriter<'a> {
        FrameWriter { buf, pos: 0 }
    }
}

impl postcard::ser_flavors::Flavor for FrameWriter<'_> {
    type Output = usize;

    #[inline(always)]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.pos)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *slot = byte;
        self.pos += 1;
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let dst = self
            .pos
            .checked_add(data.len())
            .and_then(|end| self.buf.get_mut(self.pos..end))
            .ok_or(postcard::Error::SerializeBufferFull)?;
        let n = data.len();
        // A short piece (a varint, a float, a short string) is copied one
        // byte at a time, each under its own test of the length, so that:
        // - a varint, which postcard encodes into a buffer on the stack one
        //   byte store at a time, is read back one byte at a time too: a
        //   wider load of bytes stored apart cannot take them from the
        //   store buffer, and stalls until they reach the cache (about a
        //   dozen cycles a varint);
        // - a piece whose length the compiler knows (a float's 4 bytes) is
        //   folded into one move of that width, the tests gone;
        // - the copy is not turned back into a `memcpy` call, as a loop
        //   over the bytes or a `copy_from_slice` of a length known only at
        //   run time is.
        // Serializing the benchmarks' 64-byte `Sample` (postcard and this
        // flavor alone, no ring; cargo's default release profile) took
        // 37 ns with one `copy_from_slice` per length, and 15.5 ns with
        // this.
        macro_rules! bytes {
            ($($i:literal)*) => { $(if n > $i { dst[$i] = data[$i]; })* };
        }
        if n > SHORT {
            dst.copy_from_slice(data);
        } else {
            bytes!(0 1 2 3 4 5 6 7 8 9);
        }
        self.pos += n;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.pos)
    }
}

/// The length of `value`'s postcard encoding, measured without writing it.
#[inline]
fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(|e| encode_error::<T>(cause(e)))
}

/// Serializes `value` into the grant (reserved for its measured length)
/// and commits it. A `Serialize` impl that writes another length the
/// second time fails here, and the grant is dropped: nothing is sent.
#[inline]
fn encode_into<T: Serialize + ?Sized>(value: &T, mut grant: SendGrant<'_>) -> Result<()> {
    let reserved = grant.len();
    match postcard::serialize_with_flavor(value, FrameWriter::new(&mut grant)) {
        Ok(written) if written == reserved => grant.commit(),
        Ok(written) => Err(encode_error::<T>(format!(
            "it serialized to {written} bytes after measuring {reserved}"
        ))),
        Err(e) => Err(encode_error::<T>(cause(e))),
    }
}

/// `msg` decoded as exactly one `T` with postcard's `Deserializer`, whose
/// `finalize` says what is left over; bytes left over are an error (a
/// message carries one value, so they mean the sender sent another type).
/// The value is returned as `T::deserialize` built it, not through
/// `take_from_bytes`'s `(T, &[u8])`: each move of a freshly built struct
/// reads with wide loads what was stored field by field, and stalls until
/// the stores reach the cache; one move fewer took `recv_value` of the
/// 64-byte `Sample` from 39 to 32 ns in one thread, in cargo's default
/// release profile (benchmarks/README.md,
/// "Typed values: short pieces copied a byte at a time").
#[inline]
fn decode<T: DeserializeOwned>(msg: &[u8]) -> Result<T> {
    let mut de = postcard::Deserializer::from_bytes(msg);
    let value = match T::deserialize(&mut de) {
        Ok(value) => value,
        Err(e) => {
            return Err(decode_error::<T>(format!(
                "{} (a message of {})",
                cause(e),
                byte_count(msg.len())
            )));
        }
    };
    match de.finalize() {
        Ok([]) => Ok(value),
        Ok(rest) => Err(decode_error::<T>(format!(
            "{} left over after the value, in a message of {}",
            byte_count(rest.len()),
            byte_count(msg.len())
        ))),
        Err(e) => Err(decode_error::<T>(format!(
            "{} (a message of {})",
            cause(e),
            byte_count(msg.len())
        ))),
    }
}

/// Decodes a guard's message and names its sender; the message is
/// consumed as the guard drops, whether it decoded or not.
fn decode_from<T: DeserializeOwned>(msg: super::RecvGuard<'_>) -> Result<(T, SenderId)> {
    let from = msg.sender();
    decode(&msg).map(|value| (value, from))
}

/// What postcard's error `e` means, in words. A `Serialize` or
/// `Deserialize` impl's own error (`serde::de::Error::custom`, which the
/// derived code also uses for an enum variant the type does not have)
/// reaches us without its text: postcard's error type keeps none.
#[cold]
fn cause(e: postcard::Error) -> String {
    match e {
        postcard::Error::SerdeDeCustom => "the type's Deserialize refused these bytes (an enum \
             variant it does not have, or a value its own checks reject; postcard keeps no \
             text of that error)"
            .to_owned(),
        postcard::Error::SerdeSerCustom => {
            "the type's Serialize failed (postcard keeps no text of that error)".to_owned()
        }
        e => e.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::{FrameWriter, SHORT, decode};
    use crate::error::Error;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    /// Every piece `FrameWriter::try_extend` copies: varints of every
    /// length (u16 to u128, zigzagged i64), fixed-width floats, and
    /// strings and byte vectors on both sides of `SHORT`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Mixed {
        a: u8,
        b: u16,
        c: u32,
        d: u64,
        e: u128,
        f: i64,
        g: f32,
        h: f64,
        s: String,
        v: Vec<u8>,
        o: Option<u64>,
        x: [f32; 3],
    }

    fn mixed() -> impl Strategy<Value = Mixed> {
        // Integers drawn by bit length, so that every varint length shows up.
        let u64s = (0u32..=64).prop_flat_map(|bits| {
            let top = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            (top / 2)..=top
        });
        (
            (any::<u8>(), any::<u16>(), any::<u32>(), u64s.clone()),
            (any::<u128>(), any::<i64>(), any::<f32>(), any::<f64>()),
            (".{0,24}", prop::collection::vec(any::<u8>(), 0..=2 * SHORT)),
            (prop::option::of(u64s), any::<[f32; 3]>()),
        )
            .prop_map(|((a, b, c, d), (e, f, g, h), (s, v), (o, x))| Mixed {
                a,
                b,
                c,
                d,
                e,
                f,
                g,
                h,
                s,
                v,
                o,
                x,
            })
    }

    proptest! {
        /// The frame writer writes exactly postcard's own bytes, and they
        /// decode back to the value (floats compared by their bits: NaN).
        #[test]
        fn frame_writer_writes_postcards_bytes(m in mixed()) {
            let mut ours = [0u8; 256];
            let mut theirs = [0u8; 256];
            let n = postcard::serialize_with_flavor(&m, FrameWriter::new(&mut ours));
            let expected = postcard::to_slice(&m, &mut theirs).map(|b| b.to_vec());
            prop_assert_eq!(n.map(|n| ours[..n].to_vec()), expected.clone());
            let expected = expected.unwrap_or_default();
            let back: Mixed = decode(&expected).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(postcard::to_slice(&back, &mut theirs).map(|b| b.to_vec()), Ok(expected));
        }

        /// Any bytes at all (a confused or hostile sender's) decode to a
        /// value or give `Error::Decode`: never a panic, and never an
        /// allocation that the message's length does not back (a length
        /// prefix is only a promise).
        #[test]
        fn any_bytes_decode_or_give_decode(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let results = [
                decode::<Mixed>(&bytes).map(drop),
                decode::<Vec<String>>(&bytes).map(drop),
                decode::<(u128, Option<Vec<u64>>, char)>(&bytes).map(drop),
                decode::<std::collections::BTreeMap<u16, Vec<u8>>>(&bytes).map(drop),
            ];
            for r in results {
                prop_assert!(matches!(r, Ok(()) | Err(Error::Decode { .. })), "{:?}", r);
            }
        }

        /// A frame too short for the value is refused, never overrun.
        #[test]
        fn frame_writer_refuses_a_short_frame(m in mixed(), cut in 1usize..=16) {
            let mut theirs = [0u8; 256];
            let full = postcard::to_slice(&m, &mut theirs).map(|b| b.len()).unwrap_or(0);
            let mut ours = vec![0u8; full.saturating_sub(cut)];
            let r = postcard::serialize_with_flavor(&m, FrameWriter::new(&mut ours));
            prop_assert_eq!(r, Err(postcard::Error::SerializeBufferFull));
        }
    }

    #[test]
    fn decode_names_left_over_bytes_and_bad_input() {
        let mut buf = [0u8; 16];
        let two = postcard::to_slice(&(7u32, 9u32), &mut buf).map(|b| b.to_vec());
        let two = two.unwrap_or_default();
        match decode::<u32>(&two) {
            Err(Error::Decode { type_name, cause }) => {
                assert_eq!(type_name, "u32");
                assert!(cause.contains("1 byte left over"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
        match decode::<u64>(&[0x80; 11]) {
            Err(Error::Decode { cause, .. }) => assert!(cause.contains("11 bytes"), "{cause}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode::<u8>(&[]), Err(Error::Decode { .. })));
        // A length of 2^35 - 1 elements in 5 bytes: refused when the bytes
        // run out, without allocating for the count first.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3];
        match decode::<Vec<u64>>(&huge) {
            Err(Error::Decode { type_name, cause }) => {
                assert!(type_name.contains("Vec<u64>"), "{type_name}");
                assert!(cause.contains("a message of 8 bytes"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A type's own refusal, and a variant it does not have: postcard
    /// keeps no text for them, and the cause says so, not "Serde
    /// Deserialization Error".
    #[test]
    fn decode_says_when_the_type_refused_the_bytes() {
        #[derive(Debug, Deserialize)]
        #[serde(try_from = "u8")]
        struct Digit(#[allow(dead_code)] u8);
        impl TryFrom<u8> for Digit {
            type Error = String;
            fn try_from(v: u8) -> Result<Digit, String> {
                if v < 10 {
                    Ok(Digit(v))
                } else {
                    Err(format!("{v} is not a digit"))
                }
            }
        }
        #[derive(Debug, Deserialize)]
        enum Three {
            A,
            B,
            C,
        }
        let refused = [
            decode::<Digit>(&[200]).map(|_| ()),
            decode::<Three>(&[7]).map(|_| ()),
        ];
        for r in refused {
            match r {
                Err(Error::Decode { cause, .. }) => {
                    assert!(cause.contains("the type's Deserialize refused"), "{cause}");
                    assert!(cause.contains("a message of 1 byte)"), "{cause}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(decode::<Three>(&[2]), Ok(Three::C)));
        assert!(matches!(decode::<Digit>(&[9]), Ok(Digit(9))));
    }
}
