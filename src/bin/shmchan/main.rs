//! `shmchan`: see, use and clean up shmchan channels from a shell, the way
//! `ipcs` and `ipcrm` do for raw System V segments, and pipe data through a
//! channel the way one would through a FIFO. docs/cli.md is the reference.
//!
//! Exit codes: 0 success, 1 runtime error (one line on stderr naming the
//! key and the cause), 2 usage error (one line on stderr).
#![deny(unsafe_code)]

mod args;
mod bench;
mod create;
mod gc;
mod human;
mod ls;
mod recv;
mod rm;
mod send;
mod stat;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Message channels over System V shared memory: create, send, receive,
/// list, inspect and remove them.
///
/// KEY, everywhere: a number (decimal, or hex with 0x; 0x80000000 to
/// 0xffffffff are valid) is a raw key; id:N is a segment id (shmid); anything
/// else is a path given to ftok(3) with --proj.
#[derive(Debug, Parser)]
#[command(name = "shmchan", version, arg_required_else_help = true)]
struct Cli {
    /// Project id for a KEY that is a path (ftok's proj_id, 1 to 255).
    #[arg(long, global = true, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..))]
    proj: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Create(create::Args),
    Send(send::Args),
    Recv(recv::Args),
    Ls(ls::Args),
    Stat(stat::Args),
    Rm(rm::Args),
    Gc(gc::Args),
    Bench(bench::Args),
    #[command(name = "bench-peer", hide = true)]
    BenchPeer(bench::PeerArgs),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Create(_) => "create",
            Command::Send(_) => "send",
            Command::Recv(_) => "recv",
            Command::Ls(_) => "ls",
            Command::Stat(_) => "stat",
            Command::Rm(_) => "rm",
            Command::Gc(_) => "gc",
            Command::Bench(_) => "bench",
            Command::BenchPeer(_) => "bench-peer",
        }
    }

    fn run(self, proj: u8) -> Result<(), Failure> {
        match self {
            Command::Create(a) => create::run(a, proj),
            Command::Send(a) => send::run(a, proj),
            Command::Recv(a) => recv::run(a, proj),
            Command::Ls(a) => ls::run(a),
            Command::Stat(a) => stat::run(a, proj),
            Command::Rm(a) => rm::run(a, proj),
            Command::Gc(a) => gc::run(a, proj),
            Command::Bench(a) => bench::run(a),
            Command::BenchPeer(a) => bench::peer(a),
        }
    }
}

/// How a command failed.
#[derive(Debug)]
enum Failure {
    /// A usage error found after parsing (exit 2).
    Usage(String),
    /// A runtime error (exit 1).
    Runtime(String),
    /// Errors already reported line by line; the exit code to end with.
    Reported(u8),
    /// The reader of our output went away (EPIPE): exit 0, say nothing.
    ReaderGone,
}

impl From<shmchan::Error> for Failure {
    fn from(e: shmchan::Error) -> Failure {
        Failure::Runtime(e.to_string())
    }
}

impl Failure {
    /// Maps a write error on our output: EPIPE is the reader leaving.
    fn output(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::ReaderGone
        } else {
            Failure::Runtime(format!("writing output: {e}"))
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let name = cli.command.name();
    match cli.command.run(cli.proj) {
        Ok(()) | Err(Failure::ReaderGone) => ExitCode::SUCCESS,
        Err(Failure::Reported(code)) => ExitCode::from(code),
        Err(Failure::Runtime(msg)) => {
            complain(&format!("shmchan {name}: {msg}"));
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            complain(&format!("shmchan {name}: {msg}"));
            ExitCode::from(2)
        }
    }
}

/// Writes one line to stderr. Unlike `eprintln!`, never panics: with
/// stderr closed there is nobody left to tell.
fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Help and version go out as clap renders them (exit 0); any other parse
/// error becomes one line on stderr, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // A failure to print help (closed stdout) leaves nothing to report.
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    complain(&format!("shmchan: {} (see shmchan --help)", one_line(&e)));
    ExitCode::from(2)
}

/// Clap's message without its usage block, on one line.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let joined = lines.collect::<Vec<_>>().join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}
