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

use std::error::Error;
use std::fmt;
use std::io::BufRead;
use std::path::PathBuf;

use shmchan::{Channel, Key};

const DEFAULT_PATH: &str = "/tmp/shmchan-example";
const DEFAULT_PROJ: u8 = b'A';

fn main() -> Result<(), Box<dyn Error>> {
    let (path, proj) = parse_args()?;
    let key = Key::ftok(&path, proj).map_err(explain)?;
    let chan = Channel::open(key).map_err(explain)?;
    let mut tx = chan.sender().map_err(explain)?;
    let mut sent = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Failure(format!("cannot read standard input: {e}")))?;
        tx.send(line.as_bytes()).map_err(explain)?;
        sent += 1;
    }
    eprintln!("client: sent {sent} messages to {key}");
    Ok(())
    // `tx` drops here and disconnects: the server drains what is queued,
    // then sees `Disconnected`.
}

/// `[PATH [PROJ]]`, with the defaults.
fn parse_args() -> Result<(PathBuf, u8), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let path = args
        .next()
        .map_or_else(|| DEFAULT_PATH.into(), PathBuf::from);
    let proj = match args.next() {
        None => DEFAULT_PROJ,
        Some(p) => parse_proj(&p.to_string_lossy())?,
    };
    if args.next().is_some() {
        return Err(Failure("usage: client [PATH [PROJ]] < lines".into()).into());
    }
    Ok((path, proj))
}

/// One character (`A`) or a number from 1 to 255.
fn parse_proj(s: &str) -> Result<u8, Box<dyn Error>> {
    let proj = match s.as_bytes() {
        [c] if !c.is_ascii_digit() => Some(*c),
        _ => s.parse::<u8>().ok(),
    };
    match proj {
        Some(p) if p != 0 => Ok(p),
        _ => Err(Failure(format!(
            "PROJ must be one character or a number from 1 to 255, not {s:?}"
        ))
        .into()),
    }
}

/// An error as `main` should print it. Returning `Err` from `main` prints
/// it with `{:?}`, so `Debug` here shows the readable message.
struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Failure {}

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
        _ => return Box::new(Failure(e.to_string())),
    };
    Box::new(Failure(format!("{e}\n  hint: {hint}")))
}
