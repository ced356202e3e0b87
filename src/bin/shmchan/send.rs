//! `shmchan send KEY`: send stdin (or a file) as messages.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmchan::{Error, Sender};

use crate::Failure;
use crate::args::{CreateOpts, Framing, KeyArg, parse_key};

/// Send stdin (or --file) as messages.
///
/// Ends at the end of the input; the receiver then gets everything sent,
/// and after it "disconnected". A progress bar shows on stderr when stderr
/// is a terminal and the input's size is known.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The channel's KEY.
    #[arg(value_parser = parse_key, allow_negative_numbers = true)]
    key: KeyArg,
    #[command(flatten)]
    create: CreateOpts,
    /// lines: each line without its newline is a message; len32: records of
    /// a 4-byte little-endian length and the payload; raw: the bytes in
    /// chunks of at most the maximum message size.
    #[arg(long, value_enum, default_value_t = Framing::Lines)]
    framing: Framing,
    /// Read this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

/// Input buffer; also the largest raw chunk.
const CHUNK: usize = 1 << 20;

pub(crate) fn run(args: Args, proj: u8) -> Result<(), Failure> {
    let (input, name) = open_input(args.file.as_ref())?;
    let progress = progress_bar(&input);
    let chan = args
        .key
        .open_or_create(proj, args.create.options().as_ref())?;
    // The role handle is a party of its own: the channel handle can go,
    // so that each process counts as one party.
    let mut out = Out {
        tx: chan.sender()?,
        sent: 0,
    };
    drop(chan);
    let reader = Counted {
        inner: input,
        bar: progress.clone(),
    };
    let r = match args.framing {
        Framing::Lines => send_lines(&mut out, reader, &name),
        Framing::Len32 => send_len32(&mut out, reader, &name),
        Framing::Raw => send_raw(&mut out, reader, &name),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    r
}

/// Stdin or the file, as a `File` (stdin is duplicated, so that its size
/// can be asked and it is read without std's lock and buffer).
fn open_input(path: Option<&PathBuf>) -> Result<(File, String), Failure> {
    match path {
        Some(p) => File::open(p)
            .map(|f| (f, p.display().to_string()))
            .map_err(|e| Failure::Runtime(format!("cannot open {}: {e}", p.display()))),
        None => io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(|fd| (File::from(fd), "stdin".to_owned()))
            .map_err(|e| Failure::Runtime(format!("stdin: {e}"))),
    }
}

/// A progress bar on stderr, only when stderr is a terminal and the input
/// is a regular file (its size known).
fn progress_bar(input: &File) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let meta = input.metadata().ok().filter(|m| m.is_file())?;
    let bar = ProgressBar::with_draw_target(Some(meta.len()), ProgressDrawTarget::stderr());
    let template = "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    Some(bar)
}

/// The input, counting the bytes read into the progress bar.
struct Counted {
    inner: File,
    bar: Option<ProgressBar>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// The sender and how many messages it has sent (for error messages).
struct Out {
    tx: Sender,
    sent: u64,
}

impl Out {
    fn send(&mut self, msg: &[u8]) -> Result<(), Failure> {
        let sent = self.sent;
        self.tx.send(msg).map_err(|e| failure(e, msg.len(), sent))?;
        self.sent += 1;
        Ok(())
    }

    /// Sends a message of `len` bytes read straight into the ring.
    fn send_from(&mut self, len: usize, input: &mut impl Read, name: &str) -> Result<(), Failure> {
        let sent = self.sent;
        let mut grant = self.tx.reserve(len).map_err(|e| failure(e, len, sent))?;
        // Dropping the grant on a short read publishes nothing.
        input.read_exact(&mut grant).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                Failure::Runtime(format!("{name} ends inside a len32 record of {len} bytes"))
            }
            _ => read_error(name, e),
        })?;
        grant.commit()?;
        self.sent += 1;
        Ok(())
    }
}

/// A send error, told with the message's number (`sent` went before it).
fn failure(e: Error, len: usize, sent: u64) -> Failure {
    let n = sent + 1;
    Failure::Runtime(match e {
        Error::MessageTooLarge { max, .. } => {
            format!("message {n} has {len} bytes, more than the channel's maximum of {max}")
        }
        Error::Disconnected => format!("the receiver went away; {sent} messages were sent"),
        e => e.to_string(),
    })
}

fn read_error(name: &str, e: io::Error) -> Failure {
    Failure::Runtime(format!("reading {name}: {e}"))
}

/// Each line, without its newline, is a message; a last line without one
/// is sent as it is.
fn send_lines(out: &mut Out, input: impl Read, name: &str) -> Result<(), Failure> {
    let mut input = BufReader::with_capacity(CHUNK, input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error(name, e))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        out.send(&line)?;
    }
}

/// Records of a 4-byte little-endian length and that many bytes.
fn send_len32(out: &mut Out, input: impl Read, name: &str) -> Result<(), Failure> {
    let mut input = BufReader::with_capacity(CHUNK, input);
    loop {
        let mut len = [0u8; 4];
        match read_full(&mut input, &mut len).map_err(|e| read_error(name, e))? {
            0 => return Ok(()),
            4 => {}
            n => {
                return Err(Failure::Runtime(format!(
                    "{name} ends inside a len32 length ({n} of 4 bytes)"
                )));
            }
        }
        let len = u32::from_le_bytes(len) as usize;
        out.send_from(len, &mut input, name)?;
    }
}

/// Whatever each read returns, up to the maximum message size, is a
/// message.
fn send_raw(out: &mut Out, mut input: impl Read, name: &str) -> Result<(), Failure> {
    let mut buf = vec![0u8; out.tx.max_message_len().min(CHUNK)];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(name, e)),
        };
        out.send(&buf[..n])?;
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
