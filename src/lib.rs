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
//! ```
//! use shmchan::{Channel, Key, Options};
//! use std::process::Command;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if std::env::var_os("SHMCHAN_DOC_PEER").is_some() { return Ok(()); }
//! // Process 1: create a channel and take the receiving side.
//! let chan = Channel::create(Key::PRIVATE, &Options::new())?;
//! let mut rx = chan.receiver()?;
//!
//! // Process 2 (here a child, as any program would do it):
//! // `Channel::open_id(id)?.sender()?.send(b"hello world")?`
//! // or, in a shell, a program that opens the same key. Here we use the
//! // sender in-process so that the example runs anywhere:
//! let mut tx = chan.sender()?;
//! tx.send(b"hello world")?;
//! drop(tx);
//!
//! assert_eq!(rx.recv()?, b"hello world");
//! // The sender is gone and everything it sent was received:
//! assert!(matches!(rx.recv(), Err(shmchan::Error::Disconnected)));
//! # let _ = Command::new("true");
//! # Ok(())
//! # }
//! ```
//!
//! See the README for the semantics (ordering, blocking, disconnect,
//! delivery, cleanup, validation) and `docs/layout.md` for the bytes.
#![deny(unsafe_code)]

mod channel;
mod error;
mod layout;
mod ring;
mod sync;
mod sys;
mod wait;

pub use channel::{Channel, Iter, Options, Receiver, RecvGuard, SendGrant, Sender};
pub use error::{Error, Result, Role};
pub use sys::Key;
