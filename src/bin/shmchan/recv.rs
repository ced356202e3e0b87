//! `shmchan recv KEY`: write received messages to stdout (or a file).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shmchan::{Error, Receiver};

use crate::Failure;
use crate::args::{CreateOpts, Framing, KeyArg, parse_duration, parse_key};

/// Receive messages to stdout (or --output).
///
/// Until the sender disconnects (after everything it sent), --count
/// messages, or --timeout; each ends with exit 0. A reader that goes away
/// (`| head`) also ends it quietly with exit 0.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The channel's KEY.
    #[arg(value_parser = parse_key, allow_negative_numbers = true)]
    key: KeyArg,
    #[command(flatten)]
    create: CreateOpts,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long in all (like 500ms, 2s, 1.5s, 1m; a plain
    /// number is seconds).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// lines: each message followed by a newline; len32: a 4-byte
    /// little-endian length, then the payload; raw: the payloads back to
    /// back.
    #[arg(long, value_enum, default_value_t = Framing::Lines)]
    framing: Framing,
    /// Write to this file (created or truncated) instead of stdout.
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,
}

/// Output buffer: flushed whenever the channel runs empty.
const BUFFER: usize = 256 * 1024;

pub(crate) fn run(args: Args, proj: u8) -> Result<(), Failure> {
    let out = open_output(args.output.as_ref())?;
    let chan = args
        .key
        .open_or_create(proj, args.create.options().as_ref())?;
    let mut rx = chan.receiver()?;
    // The role handle is a party of its own: the channel handle can go,
    // so that each process counts as one party.
    drop(chan);
    let mut sink = Sink {
        out: BufWriter::with_capacity(BUFFER, out),
        framing: args.framing,
    };
    // A timeout too far to represent is no timeout.
    let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
    pump(&mut rx, &mut sink, args.count, deadline)?;
    sink.out.flush().map_err(Failure::output)
}

/// Stdout (duplicated, so that it is written without std's line
/// buffering) or the file.
fn open_output(path: Option<&PathBuf>) -> Result<File, Failure> {
    match path {
        Some(p) => File::create(p)
            .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", p.display()))),
        None => io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|e| Failure::Runtime(format!("stdout: {e}"))),
    }
}

/// Where messages go, framed.
struct Sink {
    out: BufWriter<File>,
    framing: Framing,
}

impl Sink {
    fn put(&mut self, msg: &[u8]) -> Result<(), Failure> {
        let out = &mut self.out;
        let r = match self.framing {
            Framing::Lines => out.write_all(msg).and_then(|()| out.write_all(b"\n")),
            Framing::Len32 => write_len32(out, msg),
            Framing::Raw => out.write_all(msg),
        };
        r.map_err(Failure::output)
    }
}

fn write_len32(out: &mut impl Write, msg: &[u8]) -> io::Result<()> {
    // The channel's largest message is below 2 GiB, so its length fits.
    let len = u32::try_from(msg.len()).map_err(io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(msg)
}

/// Moves messages to the sink until the sender is gone, `count` messages
/// or the deadline. Output is flushed before each wait, so that a reader
/// sees every message that has arrived.
fn pump(
    rx: &mut Receiver,
    sink: &mut Sink,
    count: Option<u64>,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let mut got = 0u64;
    while count.is_none_or(|c| got < c) {
        match rx.try_recv_ref() {
            Ok(msg) => {
                sink.put(&msg)?;
                got += 1;
                continue;
            }
            Err(Error::Empty) => {}
            Err(e) => return finished(e),
        }
        sink.out.flush().map_err(Failure::output)?;
        let waited = match deadline {
            Some(d) => rx.recv_ref_timeout(d.saturating_duration_since(Instant::now())),
            None => rx.recv_ref(),
        };
        match waited {
            Ok(msg) => sink.put(&msg)?,
            Err(e) => return finished(e),
        }
        got += 1;
    }
    Ok(())
}

/// The sender leaving (after everything it sent) and the timeout end the
/// run normally; anything else is an error.
fn finished(e: Error) -> Result<(), Failure> {
    match e {
        Error::Disconnected | Error::Timeout => Ok(()),
        e => Err(e.into()),
    }
}
