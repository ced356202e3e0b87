//! # shmchan
//!
//! Message channels between unrelated processes on one Linux host, over
//! System V shared memory, with a System V semaphore set so that either
//! side can sleep instead of spinning.
//!
//! The textbook System V recipe (`ftok`, `shmget`, `shmat`, write, read in
//! another process) has no synchronisation: a reader sees half-written
//! messages, cannot sleep until data arrives, never learns that the writer
//! died, and a crash leaves the segment behind for ever. shmchan frames
//! messages into a lock-free single-producer single-consumer ring whose
//! indices live in the segment's header, so a message is seen whole or not
//! at all; a side with nothing to do parks on a semaphore; the kernel's
//! `SEM_UNDO` tells a side when its peer died; and the last party out
//! removes segment and semaphore set.
//!
//! ## Two processes
//!
//! One process creates a channel and receives; a second process, started
//! here by the first (any unrelated program that knows the key or the id
//! would do), opens it and sends. The receiver gets every message whole and
//! in order, then `Disconnected` once the sender is gone.
//!
//! ```standalone_crate
//! use shmchan::{Channel, Key, Options};
//! use std::process::Command;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if let Ok(id) = std::env::var("SHMCHAN_EXAMPLE_SHMID") {
//!         // The second process: open the channel by id and send.
//!         let chan = Channel::open_id(id.parse()?)?;
//!         let mut tx = chan.sender()?;
//!         for word in ["hello", "world"] {
//!             tx.send(word.as_bytes())?;
//!         }
//!         return Ok(()); // dropping the sender disconnects it
//!     }
//!     // The first process: create a channel, start the second, receive.
//!     let chan = Channel::create(Key::PRIVATE, &Options::new())?;
//!     let mut rx = chan.receiver()?;
//!     let mut child = Command::new(std::env::current_exe()?)
//!         .env("SHMCHAN_EXAMPLE_SHMID", chan.id().to_string())
//!         .spawn()?;
//!     let got: Vec<Vec<u8>> = rx.iter().collect(); // until Disconnected
//!     assert_eq!(got, [b"hello".to_vec(), b"world".to_vec()]);
//!     assert!(child.wait()?.success());
//!     Ok(()) // the last party out removes segment and semaphore set
//! }
//! ```
//!
//! With a key instead of an id, both programs call `Key::ftok(path, id)`
//! on the same path: `Channel::create(key, ..)` in one, `Channel::open(key)`
//! in the other.
//!
//! ## Async
//!
//! Every blocking call has an async form that never blocks the executor's
//! thread, on any runtime (no runtime is a dependency: only `std::task`):
//! [`Receiver::recv_async`], [`recv_into_async`](Receiver::recv_into_async),
//! [`recv_ref_async`](Receiver::recv_ref_async),
//! [`recv_from_async`](Receiver::recv_from_async); [`Sender::send_async`],
//! [`reserve_async`](Sender::reserve_async); and `Receiver::stream()`, a
//! `futures_core::Stream` (feature `async`, on by default). A future takes
//! the blocking call's fast path first (no system call, no thread hop when
//! a message or room is there), spins by waking itself, then hands only
//! its park to a helper thread of the handle. Every one is cancel safe: a
//! dropped receive future consumed nothing, a dropped send future
//! committed nothing.
//!
//! ```
//! use shmchan::{Channel, Key, Options};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! let chan = Channel::create(Key::PRIVATE, &Options::new().max_senders(4))?;
//! let mut rx = chan.receiver()?;
//! let mut tx = chan.sender()?; // in practice, other processes
//! rt.block_on(async {
//!     tx.send_async(b"request").await?;
//!     tokio::select! {
//!         got = rx.recv_from_async() => {
//!             let (msg, from) = got?;
//!             assert_eq!((msg.as_slice(), from), (&b"request"[..], tx.id()));
//!         }
//!         _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("no message"),
//!     }
//!     Ok::<(), shmchan::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Typed values (features `serde` and `bytemuck`)
//!
//! Two optional features, off by default (a default build has neither
//! postcard nor bytemuck; serde itself comes with the default `cli`
//! feature, for the tool's JSON), carry values instead of bytes, one value
//! per message:
//!
//! - `serde`: `Sender::send_value(&value)` for any `Serialize` type and
//!   `Receiver::recv_value::<T>()` for any `DeserializeOwned` one, with
//!   `try_`, `_timeout`, `_deadline` and `_async` forms, and
//!   `recv_value_from` (the value and its `SenderId`; also `_async`). The
//!   value is serialized straight into the reserved frame, in one pass
//!   when it fits a guessed length, else measured first: no buffer and no
//!   allocation per message on the sending side. A message that does not
//!   decode as exactly one `T` (bytes left over included) is
//!   `Error::Decode`, naming the type and the cause, and is consumed, so
//!   it never blocks the messages behind it.
//! - `bytemuck`: `Sender::send_pod(&value)`, `Receiver::recv_pod::<T>()`
//!   (each with `try_`, `_timeout`, `_deadline` and `_async` forms) and
//!   `RecvGuard::as_pod::<T>()` (read in place, no copy) for any
//!   `bytemuck::Pod` type, its bytes as they are in memory. Payloads are
//!   8-byte aligned in the ring (`docs/layout.md`, section 3, "Frames"):
//!   a type aligned above 8, or a message whose length is not the type's
//!   size, is `Error::PodMismatch`, never undefined behaviour;
//!   `recv_pod` consumes such a message as `recv_value` does.
//!
//! The encoding is [postcard](https://crates.io/crates/postcard) 1.x:
//! compact (integers as varints, no field names, no type tags: a
//! `{ id: 7, qty: 2 }` is 2 bytes), a documented wire format that is
//! stable across 1.x, no_std-capable, able to measure a value without
//! writing it (its `Size` flavor, which the zero-copy send of a long
//! value needs), and
//! kept up (1.2.0 is out; servo's ipc-channel 0.23 moved to it). bincode,
//! the other candidate, is unmaintained: RustSec advisory
//! [RUSTSEC-2025-0141](https://rustsec.org/advisories/RUSTSEC-2025-0141.html)
//! (2025-12-16) says its team ceased development, `cargo deny` flags the
//! 2.x line too, and bincode 3.0.0 on crates.io is a tombstone whose
//! `lib.rs` is a `compile_error!`, its README pointing to alternatives,
//! postcard among them. Because postcard carries no type tags, both sides
//! must agree on the type: a message decodes as any type whose encoding it
//! happens to match (a `u32` sent is a valid `u64`), so `Error::Decode`
//! catches what does not fit, not every mismatch.
//!
//! What a typed value costs is serde's: its derived code makes a call per
//! field, and postcard's serializer and deserializer take a few
//! nanoseconds each. A 64-byte struct of 13 fields took 87 ns to send and
//! receive in one process with the default release profile, 52 ns with
//! LTO, against 17 ns for its bytes and 18 ns through `send_pod` /
//! `recv_pod` (`benches/typed.rs`; benchmarks/README.md, "Typed values
//! against plain-old-data"). Without LTO the generic serde code is split
//! over codegen units and called instead of inlined: a program whose typed
//! throughput matters can set `lto = "thin"` or `codegen-units = 1` in its
//! release profile, and a struct that is plain old data goes fastest as
//! its bytes.
//!
//! See the README for the semantics (ordering, blocking, disconnect,
//! delivery, cleanup, validation) and `docs/layout.md` for the bytes.
#![deny(unsafe_code)]
// When the unit tests are built with `--cfg loom`, only the pure layers
// (ring, wait) are built, for the model checker (src/loom_model.rs); what
// they offer the channel layer is then unused.
#![cfg_attr(all(test, loom), allow(dead_code, unused_imports))]

#[cfg(not(all(test, loom)))]
pub mod admin;
#[cfg(not(all(test, loom)))]
mod channel;
mod error;
mod helper;
#[cfg(not(all(test, loom)))]
mod layout;
#[cfg(all(test, loom))]
mod loom_model;
mod ring;
mod sync;
#[cfg(not(all(test, loom)))]
mod sys;
mod wait;

#[cfg(all(feature = "async", not(all(test, loom))))]
pub use channel::RecvStream;
#[cfg(not(all(test, loom)))]
pub use channel::{
    Channel, DEFAULT_CAPACITY, FRAME_OVERHEAD, Iter, MAX_SENDERS, MIN_CAPACITY, Options, Receiver,
    RecvGuard, SendGrant, Sender, SenderId, TryIter,
};
pub use error::{Error, Result, Role};
#[cfg(not(all(test, loom)))]
pub use sys::Key;

/// The README's Rust examples, run as doctests (the two-process pair is
/// only compiled: each half waits for the other). They use both typed
/// features and tokio, so they run where those are on
/// (`cargo test --features serde,bytemuck --doc`, as `.ci/run` does).
#[cfg(all(doctest, feature = "serde", feature = "bytemuck", feature = "async"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
