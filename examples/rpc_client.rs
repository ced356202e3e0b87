//! The tutorial's client grown up: one of many clients of `rpc_server`,
//! each with a private channel for its answers. It creates that channel
//! (`Key::PRIVATE`: no key, so no other client can take it), takes its
//! receiver role, claims a sender lane on the server's channel, and sends
//! `hello SHMID` with the private channel's id first. Then it makes its
//! calls, waits for each answer on its own channel and checks it (the
//! number of the call it answers, and the text in capitals), and says bye.
//! Its private channel is removed when it exits.
//!
//! Run one server and three clients at once:
//!
//! ```text
//! # terminal 1: the server, until Ctrl-C
//! cargo run --example rpc_server
//!
//! # terminal 2: build once, then three clients at the same time
//! cargo build --example rpc_client
//! for i in 1 2 3; do target/debug/examples/rpc_client --requests 3 & done; wait
//! ```
//!
//! Arguments: `[--requests K] [PATH [PROJ]]`. With `--requests K` the
//! client makes K numbered calls of its own; without it, one call per line
//! of standard input (type lines, Ctrl-D to finish). PATH and PROJ are the
//! server's (default `/tmp/shmchan-rpc` and `A`). It prints its `SenderId`
//! (`lane:session`, the same text the server prints for it) and every
//! answer, and exits with status 1 and a message if an answer is wrong or
//! missing (none within 10 s), or the server goes away. The protocol is in
//! `examples/common/rpc.rs`.

#[path = "common/failure.rs"]
mod failure;
#[path = "common/key_args.rs"]
mod key_args;
#[path = "common/rpc.rs"]
#[allow(
    dead_code,
    reason = "the server uses the other direction of each message"
)]
mod rpc;

use std::error::Error;
use std::io::BufRead;
use std::time::Duration;

use failure::fail;
use rpc::{Answer, Request};
use shmchan::{Channel, Key, Options, Receiver, Sender, SenderId};

/// Bytes of the private answer channel: as large as the server's lane, so
/// that the answer to any request fits.
const ANSWERS: usize = 64 * 1024;

/// How long the client waits for an answer.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let usage = "usage: rpc_client [--requests K] [PATH [PROJ]]";
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let requests = rpc::take_number(&mut args, "--requests")?;
    let (path, proj) = key_args::parse_key(args, rpc::DEFAULT_PATH, usage)?;
    let key = Key::ftok(&path, proj).map_err(explain)?;
    let server = Channel::open(key).map_err(explain)?;
    let mine = Channel::create(Key::PRIVATE, &Options::new().capacity(ANSWERS)).map_err(explain)?;
    let answers = mine.receiver().map_err(explain)?;
    let calls = server.sender().map_err(explain)?;
    let mut client = Client::new(calls, answers);
    println!(
        "rpc_client {}: connected to {key}, answers on shmid {} (semid {})",
        client.me,
        mine.id(),
        mine.sem_id()
    );
    client.hello(mine.id())?;
    match requests {
        Some(k) => client.numbered(k)?,
        None => client.lines()?,
    }
    client.bye()?;
    let checked = rpc::calls(client.seq);
    println!(
        "rpc_client {}: {checked} answered and checked, bye",
        client.me
    );
    Ok(())
    // `client` (its sender and receiver), then `mine` and `server` drop
    // here: the last party out of the private channel removes it.
}

/// The two ends a client holds: its lane on the server's channel and the
/// receiver of its own.
struct Client {
    calls: Sender,
    answers: Receiver,
    /// This client's id, as the server sees it too.
    me: SenderId,
    /// The last call made.
    seq: u64,
}

impl Client {
    fn new(calls: Sender, answers: Receiver) -> Client {
        Client {
            me: calls.id(),
            calls,
            answers,
            seq: 0,
        }
    }

    /// Says where to answer; the server welcomes us by our `SenderId`.
    fn hello(&mut self, answers: i32) -> Result<(), Box<dyn Error>> {
        self.send(Request::Hello { answers })?;
        let me = self.me.to_string();
        self.expect("hello", Answer::Welcome { id: &me })
    }

    /// Makes `k` calls: `hello 1 from ID`, `hello 2 from ID`, ...
    fn numbered(&mut self, k: u64) -> Result<(), Box<dyn Error>> {
        for i in 1..=k {
            self.call(format!("hello {i} from {}", self.me).as_bytes())?;
        }
        Ok(())
    }

    /// One call per line of standard input.
    fn lines(&mut self) -> Result<(), Box<dyn Error>> {
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| fail(format!("cannot read standard input: {e}")))?;
            self.call(line.as_bytes())?;
        }
        Ok(())
    }

    /// Makes the next call and checks its answer.
    fn call(&mut self, text: &[u8]) -> Result<(), Box<dyn Error>> {
        self.seq += 1;
        let seq = self.seq;
        self.send(Request::Call { seq, text })?;
        let upper = text.to_ascii_uppercase();
        self.expect(&format!("call {seq}"), Answer::Result { seq, text: &upper })?;
        println!(
            "rpc_client {}: call {seq} {:?} answered {:?}",
            self.me,
            String::from_utf8_lossy(text),
            String::from_utf8_lossy(&upper)
        );
        Ok(())
    }

    /// Says bye; the server confirms how many calls it answered.
    fn bye(&mut self) -> Result<(), Box<dyn Error>> {
        self.send(Request::Bye)?;
        let seq = self.seq;
        self.expect("bye", Answer::Bye { answered: seq })
    }

    fn send(&mut self, request: Request) -> Result<(), Box<dyn Error>> {
        self.calls.send(&request.encode()).map_err(explain)
    }

    /// Waits for the answer to `what`, which must be `right`.
    fn expect(&mut self, what: &str, right: Answer) -> Result<(), Box<dyn Error>> {
        let msg = match self.answers.recv_timeout(PATIENCE) {
            Ok(msg) => msg,
            Err(shmchan::Error::Timeout) => {
                return Err(fail(format!("no answer to {what} within {PATIENCE:?}")));
            }
            Err(e) => return Err(explain(e)),
        };
        match Answer::decode(&msg) {
            Some(answer) if answer == right => Ok(()),
            _ => Err(fail(format!(
                "wrong answer to {what}: {:?}",
                String::from_utf8_lossy(&msg)
            ))),
        }
    }
}

/// A library error, with a hint where the user can do something about it.
fn explain(e: shmchan::Error) -> Box<dyn Error> {
    use shmchan::Error as E;
    let hint = match &e {
        E::Os { call: "ftok", .. } | E::NotFound { .. } => {
            "start rpc_server first, with the same PATH and PROJ"
        }
        E::RoleTaken { .. } => "the server has no free lane: rpc_server --max-clients allows more",
        E::Disconnected | E::Removed { .. } => "the server has gone away, or dropped this client",
        E::MessageTooLarge { .. } => "a line is longer than the channel's largest message",
        E::NotAChannel { .. } => "another program uses this key: choose another PATH or PROJ",
        E::PermissionDenied { .. } => "the channel belongs to another user",
        _ => return fail(e.to_string()),
    };
    fail(format!("{e}\n  hint: {hint}"))
}
