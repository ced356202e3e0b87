//! `shmchan bench`: two-process throughput of a shmchan channel against an
//! anonymous pipe and a Unix socket, on the same messages.
//!
//! For each transport this process receives, and a second process (this
//! binary again, as the hidden `bench-peer` command) sends. The peer first
//! sends one message that starts the clock; the clock stops at the last
//! message or at the time limit. Every message is checked (length and
//! sequence number).
//!
//! - shmchan: a private channel; one `send` per message (a copy into the
//!   ring).
//! - pipe: a 4-byte length prefix, one `write(2)` per message; the receiver
//!   reads through a 64 KiB buffer.
//! - Unix socket: `SOCK_SEQPACKET` (one record per message) up to 64 KiB
//!   messages, else `SOCK_STREAM` framed as the pipe.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmchan::{Channel, DEFAULT_CAPACITY, Error, FRAME_OVERHEAD, Key, MIN_CAPACITY, Options};

use crate::Failure;
use crate::args::{parse_capacity, parse_duration, parse_size};
use crate::human;

/// Measure throughput: shmchan vs a pipe vs a Unix socket.
///
/// Two processes per transport, the same messages; prints messages/s,
/// MB/s and the ratio.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Bytes per message (1 to 64M).
    #[arg(long, value_name = "BYTES", default_value = "256", value_parser = parse_message_size)]
    size: usize,
    /// Messages per transport.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Time limit per transport (like 5, 500ms, 2s); a run that reaches it
    /// counts the messages received so far.
    #[arg(long, value_name = "S", default_value = "5", value_parser = parse_duration)]
    seconds: Duration,
    /// Ring size of the shmchan channel [default: 4M, or 4 messages if
    /// larger].
    #[arg(long, value_name = "BYTES", value_parser = parse_capacity)]
    capacity: Option<usize>,
}

/// The sending side, run by `bench` in a second process.
#[derive(Debug, clap::Args)]
pub(crate) struct PeerArgs {
    #[arg(value_enum)]
    transport: Transport,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    messages: u64,
    #[arg(long)]
    shmid: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Shmchan,
    Pipe,
    Seqpacket,
    Stream,
}

/// Largest message size `bench` takes.
const MAX_SIZE: u64 = 64 << 20;
/// Largest message sent as one `SOCK_SEQPACKET` record (the socket's send
/// buffer bounds a record).
const SEQPACKET_MAX: usize = 64 << 10;
/// How long the peer may take to start and send its first message.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// Messages between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;

fn parse_message_size(s: &str) -> Result<usize, String> {
    match parse_size(s)? {
        0 => Err("a message size of 0 bytes measures nothing".into()),
        n if n > MAX_SIZE => Err(format!("message size {s} exceeds the maximum of 64M")),
        n => Ok(n as usize),
    }
}

/// One transport's result.
struct Run {
    name: String,
    messages: u64,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let capacity = args.capacity.unwrap_or_else(|| default_capacity(args.size));
    if args.size + FRAME_OVERHEAD > ring_for(capacity) {
        return Err(Failure::Usage(format!(
            "a {} message does not fit a ring of {}",
            human::bytes(args.size as u64),
            human::bytes(capacity as u64)
        )));
    }
    say(&format!(
        "{}-byte messages, up to {} per transport or {:.1} s; the sender is a second process\n",
        args.size,
        args.messages,
        args.seconds.as_secs_f64()
    ))?;
    let runs = [
        bench_shmchan(&args, capacity)?,
        bench_pipe(&args)?,
        bench_unix(&args)?,
    ];
    say(&table(&runs, args.size))
}

fn say(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Failure::output)
}

/// The library's default (4 MiB), or room for 4 messages when that is
/// more.
fn default_capacity(size: usize) -> usize {
    DEFAULT_CAPACITY.max((size + FRAME_OVERHEAD).next_power_of_two() * 4)
}

/// The ring `Options::capacity(capacity)` makes: rounded up to a power of
/// two, and to the smallest ring.
fn ring_for(capacity: usize) -> usize {
    capacity.next_power_of_two().max(MIN_CAPACITY)
}

fn table(runs: &[Run], size: usize) -> String {
    let base = runs[0].rate();
    let mut t = format!(
        "{:<30} {:>10} {:>9} {:>12} {:>9} {:>7}\n",
        "transport", "messages", "seconds", "messages/s", "MB/s", "ratio"
    );
    for r in runs {
        let mbs = r.rate() * size as f64 / 1e6;
        t += &format!(
            "{:<30} {:>10} {:>9.3} {:>12.0} {:>9.1} {:>7.2}\n",
            r.name,
            r.messages,
            r.elapsed.as_secs_f64(),
            r.rate(),
            mbs,
            base / r.rate().max(1e-9)
        );
    }
    t + "ratio: shmchan's messages/s divided by the transport's (MB/s counts payload bytes, 10^6)\n"
}

/// The peer process; killed (if still running) and reaped on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        // The peer may have exited already; nothing to do then.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(t: Transport, args: &Args, shmid: Option<i32>, stdout: Stdio) -> Result<Peer, Failure> {
    let exe = std::env::current_exe().map_err(|e| runtime("finding this program", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench-peer")
        .arg(format!("{t:?}").to_lowercase())
        .args(["--size", &args.size.to_string()])
        .args(["--messages", &args.messages.to_string()]);
    if let Some(id) = shmid {
        cmd.args(["--shmid", &id.to_string()]);
    }
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit());
    // `cmd` drops on return: our copy of the peer's end closes with it.
    cmd.spawn()
        .map(Peer)
        .map_err(|e| runtime("starting the peer", e))
}

fn runtime(what: &str, e: io::Error) -> Failure {
    Failure::Runtime(format!("{what}: {e}"))
}

/// Checks a message: its length, and its sequence number in the first
/// (up to) 8 bytes.
fn check(msg: &[u8], seq: u64, size: usize) -> Result<(), Failure> {
    let k = size.min(8);
    if msg.len() != size || msg[..k] != seq.to_le_bytes()[..k] {
        return Err(Failure::Runtime(format!(
            "message {seq} arrived damaged or out of order ({} bytes)",
            msg.len()
        )));
    }
    Ok(())
}

/// Counts messages against the limit and the clock.
struct Meter {
    start: Instant,
    deadline: Instant,
    got: u64,
    want: u64,
}

impl Meter {
    fn start(args: &Args) -> Meter {
        let start = Instant::now();
        // A limit too far to represent: a year is as good as for ever.
        let year = Duration::from_secs(365 * 86400);
        Meter {
            start,
            deadline: start.checked_add(args.seconds).unwrap_or(start + year),
            got: 0,
            want: args.messages,
        }
    }

    /// Whether to go on (checks the clock every `CLOCK_EVERY` messages).
    fn more(&self) -> bool {
        self.got < self.want && (self.got % CLOCK_EVERY != 0 || Instant::now() < self.deadline)
    }

    fn done(self, name: String) -> Run {
        Run {
            name,
            messages: self.got,
            elapsed: self.start.elapsed(),
        }
    }
}

/// Removes the benchmark's channel however the run ends.
struct Removal(Option<Channel>);

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(chan) = self.0.take() {
            // Already gone is fine; there is nothing else to clean.
            let _ = chan.remove();
        }
    }
}

fn bench_shmchan(args: &Args, capacity: usize) -> Result<Run, Failure> {
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(capacity))?;
    let name = format!("shmchan ({} ring)", human::bytes(chan.capacity() as u64));
    let mut rx = chan.receiver()?;
    let shmid = chan.id();
    let _removal = Removal(Some(chan));
    let _peer = spawn(Transport::Shmchan, args, Some(shmid), Stdio::null())?;
    check(&rx.recv_timeout(START_PATIENCE)?, 0, args.size)?;
    let mut m = Meter::start(args);
    while m.more() {
        match rx.try_recv_ref() {
            Ok(msg) => {
                m.got += 1;
                check(&msg, m.got, args.size)?;
                continue;
            }
            Err(Error::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        match rx.recv_ref_timeout(m.deadline.saturating_duration_since(Instant::now())) {
            Ok(msg) => {
                m.got += 1;
                check(&msg, m.got, args.size)?;
            }
            Err(Error::Timeout) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(m.done(name))
}

/// The peer's stdout is the pipe (`Stdio::piped` makes an anonymous one).
fn bench_pipe(args: &Args) -> Result<Run, Failure> {
    let mut peer = spawn(Transport::Pipe, args, None, Stdio::piped())?;
    let reader = peer
        .0
        .stdout
        .take()
        .ok_or_else(|| Failure::Runtime("the peer's pipe is missing".into()))?;
    receive_framed(reader, args, "pipe (4-byte length prefix)".into())
}

fn bench_unix(args: &Args) -> Result<Run, Failure> {
    if args.size > SEQPACKET_MAX {
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| runtime("socketpair", e))?;
        let _peer = spawn(
            Transport::Stream,
            args,
            None,
            Stdio::from(OwnedFd::from(theirs)),
        )?;
        return receive_framed(ours, args, "unix SOCK_STREAM (prefix)".into());
    }
    let (ours, theirs) = seqpacket_pair().map_err(|e| runtime("socketpair", e))?;
    let _peer = spawn(Transport::Seqpacket, args, None, Stdio::from(theirs))?;
    receive_packets(File::from(ours), args)
}

/// A connected pair of `AF_UNIX`, `SOCK_SEQPACKET` sockets (std has no
/// such socket).
#[allow(unsafe_code)]
fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: fds has room for the two descriptors socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both are open descriptors that nothing
    // else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Receives length-prefixed messages from a byte stream.
fn receive_framed(stream: impl Read, args: &Args, name: String) -> Result<Run, Failure> {
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let mut buf = vec![0u8; args.size];
    read_framed(&mut r, &mut buf)?;
    check(&buf, 0, args.size)?;
    let mut m = Meter::start(args);
    while m.more() {
        read_framed(&mut r, &mut buf)?;
        m.got += 1;
        check(&buf, m.got, args.size)?;
    }
    Ok(m.done(name))
}

fn read_framed(r: &mut impl Read, buf: &mut [u8]) -> Result<(), Failure> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| runtime("reading", e))?;
    if u32::from_le_bytes(len) as usize != buf.len() {
        return Err(Failure::Runtime("a message of the wrong length".into()));
    }
    r.read_exact(buf).map_err(|e| runtime("reading", e))
}

/// Receives one `SOCK_SEQPACKET` record per message.
fn receive_packets(mut sock: File, args: &Args) -> Result<Run, Failure> {
    // One byte more than a message: a longer record would show.
    let mut buf = vec![0u8; args.size + 1];
    let n = sock.read(&mut buf).map_err(|e| runtime("recv", e))?;
    check(&buf[..n], 0, args.size)?;
    let mut m = Meter::start(args);
    while m.more() {
        let n = sock.read(&mut buf).map_err(|e| runtime("recv", e))?;
        m.got += 1;
        check(&buf[..n], m.got, args.size)?;
    }
    Ok(m.done("unix SOCK_SEQPACKET".into()))
}

/// The peer: sends message 0 (which starts the clock), then messages 1 to
/// N, each stamped with its number.
///
/// `bench` stops reading at its time limit and closes its end while the
/// peer may still be sending: the peer then ends quietly (exit 0, nothing
/// on stderr), as a writer into a closed pipe does. Any other failure is
/// reported.
pub(crate) fn peer(a: PeerArgs) -> Result<(), Failure> {
    let mut payload = vec![0xa5u8; a.size];
    match a.transport {
        Transport::Shmchan => {
            let shmid = a
                .shmid
                .ok_or_else(|| Failure::Usage("--shmid is required".into()))?;
            let chan = Channel::open_id(shmid)?;
            let mut tx = chan.sender()?;
            for seq in 0..=a.messages {
                stamp(&mut payload, seq);
                tx.send(&payload).map_err(channel_error)?;
            }
            Ok(())
        }
        Transport::Pipe | Transport::Stream => send_framed(&mut payload, a.messages),
        Transport::Seqpacket => send_packets(&mut payload, a.messages),
    }
}

/// Maps a send error on the peer's channel: the receiver gone is `bench`
/// having stopped.
fn channel_error(e: Error) -> Failure {
    match e {
        Error::Disconnected => Failure::ReaderGone,
        e => e.into(),
    }
}

/// Maps a write error on the peer's pipe or socket. The reader closing its
/// end is `bench` having stopped: EPIPE, or ECONNRESET when it closed a
/// socket with messages still unread in it (as it does at its time limit).
fn link_error(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::ConnectionReset {
        Failure::ReaderGone
    } else {
        Failure::output(e)
    }
}

fn stamp(payload: &mut [u8], seq: u64) {
    let k = payload.len().min(8);
    payload[..k].copy_from_slice(&seq.to_le_bytes()[..k]);
}

/// Our stdout (the pipe or socket `bench` gave us), unbuffered.
fn stdout_file() -> Result<File, Failure> {
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| runtime("stdout", e))
}

/// One `write(2)` per message: length prefix and payload together.
fn send_framed(payload: &mut [u8], messages: u64) -> Result<(), Failure> {
    let mut out = stdout_file()?;
    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(payload);
    for seq in 0..=messages {
        stamp(&mut record[4..], seq);
        out.write_all(&record).map_err(link_error)?;
    }
    Ok(())
}

/// One `write(2)`, one record, per message.
fn send_packets(payload: &mut [u8], messages: u64) -> Result<(), Failure> {
    let mut out = stdout_file()?;
    for seq in 0..=messages {
        stamp(payload, seq);
        let n = out.write(payload).map_err(link_error)?;
        if n != payload.len() {
            return Err(Failure::Runtime(format!("short record: {n} bytes")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_leaving_ends_the_peer_quietly() {
        for kind in [io::ErrorKind::BrokenPipe, io::ErrorKind::ConnectionReset] {
            assert!(matches!(
                link_error(io::Error::from(kind)),
                Failure::ReaderGone
            ));
        }
        assert!(matches!(
            channel_error(Error::Disconnected),
            Failure::ReaderGone
        ));
    }

    #[test]
    fn other_errors_still_surface() {
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(link_error(e), Failure::Runtime(m) if m.starts_with("writing output: ")));
        assert!(matches!(
            channel_error(Error::Removed {
                channel: "id:1".into()
            }),
            Failure::Runtime(_)
        ));
    }
}
