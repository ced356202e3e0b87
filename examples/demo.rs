//! A million messages from one process to another, each checked.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --messages 5000000 --size 64
//! ```
//!
//! The demo creates a private channel (a 4 MiB ring by default), starts a
//! second process (itself, told by an environment variable to be the sender
//! and given the channel's shmid, which it opens with `Channel::open_id`),
//! and receives. The sender writes each message in place (`reserve` and
//! `commit`): a sequence number, a checksum, and a body derived from the
//! sequence number, 16 to 256 bytes in all (or `--size` bytes). The receiver
//! reads each into one reused buffer (`recv_into`) and checks its sequence
//! number, its length and its checksum, so a message out of order, lost,
//! duplicated or torn fails the run (exit status 1). Throughput is timed
//! from the first message received to the last.
//!
//! Options: `--messages N` (default 1000000), `--size BYTES` (every message
//! that long, at least 16), `--capacity BYTES` (ring size, default
//! [`shmchan::DEFAULT_CAPACITY`], 4 MiB).
//!
//! The channel is removed when both processes have dropped their handles;
//! on any error the demo kills the sender and removes the channel itself.

#[path = "common/failure.rs"]
mod failure;

use std::error::Error;
use std::fmt;
use std::process::{Child, Command};
use std::time::Instant;

use failure::fail;
use shmchan::{Channel, Key, Options, Receiver};

/// Set (to the shmid) in the sender process.
const SENDER_ENV: &str = "SHMCHAN_DEMO_SENDER_SHMID";
/// A message starts with its sequence number and its checksum.
const MESSAGE_HEADER: usize = 16;
const MAX_RANDOM_SIZE: u64 = 256;

fn main() -> Result<(), Box<dyn Error>> {
    let config = Config::from_args()?;
    match std::env::var(SENDER_ENV) {
        Ok(shmid) => run_sender(&config, &shmid).map_err(|e| fail(format!("sender process: {e}"))),
        Err(_) => run_receiver(&config),
    }
}

/// What both processes agree on (the sender gets the same arguments).
#[derive(Debug, Clone, Copy)]
struct Config {
    messages: u64,
    size: Option<usize>,
    capacity: usize,
}

impl Config {
    fn from_args() -> Result<Config, Box<dyn Error>> {
        let mut config = Config {
            messages: 1_000_000,
            size: None,
            capacity: shmchan::DEFAULT_CAPACITY,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || -> Result<u64, Box<dyn Error>> {
                let v = args
                    .next()
                    .ok_or_else(|| fail(format!("{flag} needs a value")))?;
                v.parse()
                    .map_err(|_| fail(format!("{flag}: {v:?} is not a number")))
            };
            match flag.as_str() {
                "--messages" => config.messages = value()?,
                "--size" => config.size = Some(value()? as usize),
                "--capacity" => config.capacity = value()? as usize,
                _ => return Err(fail(format!("unknown argument {flag:?}\n{USAGE}"))),
            }
        }
        if config.size.is_some_and(|s| s < MESSAGE_HEADER) {
            return Err(fail(format!("--size must be at least {MESSAGE_HEADER}")));
        }
        Ok(config)
    }

    /// The length of message `seq`: fixed, or 16..=256 bytes from a hash.
    fn len_of(&self, seq: u64) -> usize {
        self.size.unwrap_or_else(|| {
            let span = MAX_RANDOM_SIZE - MESSAGE_HEADER as u64 + 1;
            MESSAGE_HEADER + (mix(seq) % span) as usize
        })
    }
}

const USAGE: &str = "usage: demo [--messages N] [--size BYTES] [--capacity BYTES]";

// ---- the receiving process -------------------------------------------------

fn run_receiver(config: &Config) -> Result<(), Box<dyn Error>> {
    let chan =
        Channel::create(Key::PRIVATE, &Options::new().capacity(config.capacity)).map_err(lib)?;
    if let Some(size) = config.size.filter(|&s| s > chan.max_message_len()) {
        return Err(fail(format!(
            "--size {size} exceeds the channel's largest message, {} bytes",
            chan.max_message_len()
        )));
    }
    let mut rx = chan.receiver().map_err(lib)?;
    let mut sender = SenderProcess::spawn(chan.id())?;
    match receive_all(&mut rx, config).and_then(|stats| sender.finish().map(|()| stats)) {
        Ok(stats) => {
            println!("{stats}");
            Ok(()) // `rx` and `chan` drop: the last party out removes the channel
        }
        Err(e) => {
            drop(rx);
            sender.kill();
            // Messages may still be queued, which would keep the channel
            // after the last party leaves: remove it explicitly.
            let _ = chan.remove();
            Err(e)
        }
    }
}

/// Receives and checks every message, then expects `Disconnected`.
fn receive_all(rx: &mut Receiver, config: &Config) -> Result<Stats, Box<dyn Error>> {
    let mut buf = Vec::with_capacity(rx.max_message_len());
    let mut bytes = 0u64;
    let mut start = None;
    for seq in 0..config.messages {
        rx.recv_into(&mut buf)
            .map_err(|e| fail(format!("receiving message {seq}: {e}")))?;
        start.get_or_insert_with(Instant::now);
        check(seq, &buf, config)?;
        bytes += buf.len() as u64;
    }
    let elapsed = start.map_or_else(Default::default, |s| s.elapsed());
    match rx.recv_into(&mut buf) {
        Err(shmchan::Error::Disconnected) => {}
        Ok(_) => return Err(fail("the sender sent more messages than it should".into())),
        Err(e) => return Err(lib(e)),
    }
    Ok(Stats {
        messages: config.messages,
        bytes,
        seconds: elapsed.as_secs_f64(),
    })
}

/// Checks that `msg` is message `seq`: sequence number, length, checksum.
fn check(seq: u64, msg: &[u8], config: &Config) -> Result<(), Box<dyn Error>> {
    if msg.len() < MESSAGE_HEADER {
        return Err(fail(format!(
            "message {seq}: {} bytes, shorter than its header",
            msg.len()
        )));
    }
    let got_seq = read_u64(msg, 0);
    if got_seq != seq {
        return Err(fail(format!(
            "out of order: expected message {seq}, got {got_seq}"
        )));
    }
    if msg.len() != config.len_of(seq) {
        return Err(fail(format!(
            "message {seq}: {} bytes, expected {}",
            msg.len(),
            config.len_of(seq)
        )));
    }
    if read_u64(msg, 8) != checksum(seq, &msg[MESSAGE_HEADER..]) {
        return Err(fail(format!("message {seq} is torn: bad checksum")));
    }
    Ok(())
}

struct Stats {
    messages: u64,
    bytes: u64,
    seconds: f64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.seconds.max(1e-9);
        write!(
            f,
            "{} messages, {:.1} MB in {:.2} s: {:.2} M msg/s, {:.0} MB/s \
             (verified: in order, none torn)",
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.messages as f64 / secs / 1e6,
            self.bytes as f64 / secs / 1e6,
        )
    }
}

/// The sending process; killed and reaped on drop unless it finished.
struct SenderProcess {
    child: Option<Child>,
}

impl SenderProcess {
    /// Runs this program again, as the sender, with the same arguments.
    fn spawn(shmid: i32) -> Result<SenderProcess, Box<dyn Error>> {
        let exe = std::env::current_exe()
            .map_err(|e| fail(format!("cannot find this program to re-run it: {e}")))?;
        let child = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(SENDER_ENV, shmid.to_string())
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", exe.display())))?;
        Ok(SenderProcess { child: Some(child) })
    }

    /// Waits for the sender to exit; an error unless it succeeded.
    fn finish(&mut self) -> Result<(), Box<dyn Error>> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child
            .wait()
            .map_err(|e| fail(format!("cannot wait for the sender: {e}")))?;
        if !status.success() {
            return Err(fail(format!("the sender process failed: {status}")));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it has exited already; wait() reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SenderProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- the sending process ---------------------------------------------------

fn run_sender(config: &Config, shmid: &str) -> Result<(), Box<dyn Error>> {
    let shmid = shmid
        .parse()
        .map_err(|_| fail(format!("{SENDER_ENV}={shmid:?} is not a shmid")))?;
    let chan = Channel::open_id(shmid).map_err(lib)?;
    let result = send_all(&chan, config);
    if result.is_err() {
        // The receiver is gone or failed: remove the channel rather than
        // leave the queued messages behind in a private segment.
        let _ = chan.remove();
    }
    result
}

fn send_all(chan: &Channel, config: &Config) -> Result<(), Box<dyn Error>> {
    let mut tx = chan.sender().map_err(lib)?;
    for seq in 0..config.messages {
        let mut grant = tx.reserve(config.len_of(seq)).map_err(lib)?;
        fill(seq, &mut grant);
        grant.commit().map_err(lib)?;
    }
    Ok(())
}

/// Writes message `seq` in place: sequence number, checksum, body.
fn fill(seq: u64, msg: &mut [u8]) {
    let (header, body) = msg.split_at_mut(MESSAGE_HEADER);
    let mut word = mix(seq);
    for chunk in body.chunks_mut(8) {
        word = word.wrapping_add(0x9e37_79b9_7f4a_7c15);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
    header[..8].copy_from_slice(&seq.to_le_bytes());
    header[8..].copy_from_slice(&checksum(seq, body).to_le_bytes());
}

// ---- shared by both ----------------------------------------------------------

/// splitmix64's finaliser: a well-spread hash of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fast checksum of the body, seeded with the sequence number and length,
/// eight bytes at a time.
fn checksum(seq: u64, body: &[u8]) -> u64 {
    let mut h = mix(seq ^ (body.len() as u64).rotate_left(32));
    for chunk in body.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    mix(h)
}

fn read_u64(msg: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&msg[at..at + 8]);
    u64::from_le_bytes(word)
}

/// A library error, printed with its `Display` message.
fn lib(e: shmchan::Error) -> Box<dyn Error> {
    fail(e.to_string())
}
