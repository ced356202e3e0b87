//! The classic System V tutorial's writer, done right: open the channel a
//! server made at an `ftok` key and send each line of standard input as one
//! message. The server receives every line whole and in order, and learns
//! that the client is gone when it exits, even if it is killed.
//!
//! Run the pair in two terminals:
//!
//! ```text
//! # terminal 1: create the channel and wait for a client
//! cargo run --example server
//!
//! # terminal 2: send each line you type as one message (Ctrl-D to finish)
//! cargo run --example client
//! ```
//!
//! or from a pipe: `printf 'hello\nworld\n' | cargo run --example client`.
//!
//! Both take the same optional arguments, `[PATH [PROJ]]`: the file that
//! `ftok` turns into a key (default `/tmp/shmchan-example`) and the project
//! id (one character or a number from 1 to 255, default `A`). The client
//! never creates anything: start the server first.

#[path = "common/failure.rs"]
mod failure;
#[path = "common/key_args.rs"]
mod key_args;

use std::error::Error;
use std::io::BufRead;

use failure::fail;
use shmchan::{Channel, Key};

/// The key file when none is given (the server's default too).
const DEFAULT_PATH: &str = "/tmp/shmchan-example";

fn main() -> Result<(), Box<dyn Error>> {
    let usage = "usage: client [PATH [PROJ]] < lines";
    let (path, proj) = key_args::parse_key(std::env::args_os().skip(1), DEFAULT_PATH, usage)?;
    let key = Key::ftok(&path, proj).map_err(explain)?;
    let chan = Channel::open(key).map_err(explain)?;
    let mut tx = chan.sender().map_err(explain)?;
    let mut sent = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| fail(format!("cannot read standard input: {e}")))?;
        tx.send(line.as_bytes()).map_err(explain)?;
        sent += 1;
    }
    eprintln!("client: sent {sent} messages to {key}");
    Ok(())
    // `tx` drops here and disconnects: the server drains what is queued,
    // then sees `Disconnected`.
}

/// A library error, with a hint where the user can do something about it.
fn explain(e: shmchan::Error) -> Box<dyn Error> {
    use shmchan::Error as E;
    let hint = match &e {
        E::Os { call: "ftok", .. } | E::NotFound { .. } => {
            "start the server first, with the same PATH and PROJ"
        }
        E::RoleTaken { .. } => "another client is already sending on this channel",
        E::Disconnected => "the server has gone away",
        E::MessageTooLarge { .. } => "a line is longer than the channel's largest message",
        E::NotAChannel { .. } => "another program uses this key: choose another PATH or PROJ",
        E::PermissionDenied { .. } => "the channel belongs to another user",
        E::Removed { .. } => "someone removed the channel (ipcrm or Channel::remove)",
        _ => return fail(e.to_string()),
    };
    fail(format!("{e}\n  hint: {hint}"))
}
