//! The classic System V tutorial's reader, done right: create a channel at a
//! key made with `ftok`, then print every message a client sends, whole and
//! in order, until the client disconnects. The channel is removed when both
//! programs are gone.
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
//! Both take the same optional arguments, `[PATH [PROJ]]`: the file that
//! `ftok` turns into a key (default `/tmp/shmchan-example`, which the server
//! creates if it is missing) and the project id (one character or a number
//! from 1 to 255, default `A`). The server exits when the client disconnects,
//! or on Ctrl-C; either way the channel's segment and semaphore set are
//! removed (`ipcs -m -s` shows nothing left).

#[path = "common/failure.rs"]
mod failure;
#[path = "common/key_args.rs"]
mod key_args;
#[path = "common/serve.rs"]
mod serve;

use std::error::Error;
use std::time::Duration;

use serve::show_proj;
use shmchan::{Channel, Key, Options};

/// The key file when none is given (the client's default too).
const DEFAULT_PATH: &str = "/tmp/shmchan-example";

/// How often the server looks at the Ctrl-C flag while no message arrives.
const TICK: Duration = Duration::from_millis(200);

fn main() -> Result<(), Box<dyn Error>> {
    let usage = "usage: server [PATH [PROJ]]";
    let (path, proj) = key_args::parse_key(std::env::args_os().skip(1), DEFAULT_PATH, usage)?;
    serve::ensure_file(&path)?;
    let key = Key::ftok(&path, proj).map_err(explain)?;
    // replace_stale: a server killed by SIGKILL leaves a channel with no
    // party alive; replace it (discarding what it held) instead of failing.
    // A channel with a live party is never replaced.
    let options = Options::new().replace_stale(true);
    let chan = Channel::create(key, &options).map_err(explain)?;
    let mut rx = chan.receiver().map_err(explain)?;
    serve::catch_ctrl_c()?;
    println!(
        "server: channel at {key} (ftok of {} and {}), shmid {}, semid {}, {} bytes of ring",
        path.display(),
        show_proj(proj),
        chan.id(),
        chan.sem_id(),
        chan.capacity(),
    );
    println!("server: waiting for a client; Ctrl-C to stop");
    receive(&mut rx)
    // `rx` and `chan` drop here: the last party out removes the channel.
}

/// Prints messages until the client disconnects or Ctrl-C.
fn receive(rx: &mut shmchan::Receiver) -> Result<(), Box<dyn Error>> {
    let mut count = 0u64;
    loop {
        match rx.recv_timeout(TICK) {
            Ok(msg) => {
                count += 1;
                println!("[{count}] {}", String::from_utf8_lossy(&msg));
            }
            Err(shmchan::Error::Timeout) if serve::interrupted() => {
                println!("server: interrupted ({count} messages received)");
                return Ok(());
            }
            Err(shmchan::Error::Timeout) => {}
            Err(shmchan::Error::Disconnected) => {
                println!("server: the client disconnected ({count} messages received)");
                return Ok(());
            }
            Err(e) => return Err(explain(e)),
        }
    }
}

/// A library error, with a hint where the user can do something about it.
fn explain(e: shmchan::Error) -> Box<dyn Error> {
    serve::explain(e, "server")
}
