//! # libshmchan: the C interface of shmchan
//!
//! This crate builds `libshmchan.so` and `libshmchan.a`, whose functions
//! `include/shmchan.h` (at the repository's root) declares; the header is
//! generated from this source by cbindgen, and `tests/header.rs` fails
//! when the committed one differs. It wraps the Rust library, one
//! implementation for every language: see the header for the C API and
//! its rules (ownership, threads, errors), and the README's "C and C++"
//! section for building and installing.
//!
//! How the boundary is kept safe:
//!
//! - every entry point runs inside `catch_unwind` (`status::run`): a
//!   panic becomes `SHMCHAN_E_INTERNAL`, never an unwind into C. The one
//!   exception is the common case of a send or a receive
//!   (`sender::send_queued`, `receiver::recv_queued`: room or a message
//!   there now, nothing to report), tried first and outside it: the
//!   closure `catch_unwind` calls stays out of line and takes the
//!   arguments through memory, and at 64 B every instruction of a call
//!   that costs 5 ns in Rust shows in the C rate (`benchmarks/README.md`,
//!   "The C interface's call overhead"). That path is built from code that
//!   does not panic: the table
//!   lookup, NULL checks, and the core's fast paths, which validate every
//!   value read from the segment (the design's rule for the whole crate:
//!   no content of the segment may cause a panic).
//!   Should a bug make it panic anyway, Rust aborts at the `extern "C"`
//!   boundary; it never unwinds into C;
//! - a handle is a token looked up in a table (`handle`), never a
//!   pointer C could leave dangling: a NULL, closed, foreign or wrong-kind
//!   handle is an error code;
//! - every pointer argument is checked for NULL (`arg`), and lengths for
//!   what a slice can hold.
//!
//! `unsafe` is denied here and allowed in the modules that read C's
//! pointers or keep a borrow beside what it borrows, each saying why.
#![deny(unsafe_code)]
// The C names (`shmchan_sender`, `shmchan_status`, ...) are the header's.
#![allow(non_camel_case_types)]

// In the header's order (cbindgen keeps the order it parses); a blank
// line between them, so that rustfmt does not sort them.
pub mod status;

pub mod channel;

pub mod sender;

pub mod receiver;

mod arg;
mod handle;

// What the handles' thread rules in the header rest on: a channel handle
// may be shared by threads, a sender or receiver only moved between them.
const _: () = {
    const fn sync_and_send<T: Sync + Send>() {}
    const fn send<T: Send>() {}
    sync_and_send::<shmchan::Channel>();
    send::<shmchan::Sender>();
    send::<shmchan::Receiver>();
};
