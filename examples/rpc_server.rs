//! The tutorial's server grown up: one server answers many clients at
//! once. It creates a channel with a lane per client (`max_senders`) at an
//! `ftok` key and receives every request with the `SenderId` of the client
//! that sent it. Each client makes a private channel of its own for the
//! answers and names it in its first request (`hello SHMID`); the server
//! opens it by id, takes its sender role, and answers there every request
//! that comes from that `SenderId`.
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
//! or one client that sends each line you type (Ctrl-D to finish):
//! `cargo run --example rpc_client`.
//!
//! Arguments: `[--clients N] [--max-clients M] [PATH [PROJ]]`. PATH and
//! PROJ make the key as for `examples/server.rs` (default
//! `/tmp/shmchan-rpc`, created if missing, and `A`); the clients take the
//! same. `--max-clients` is how many clients may be connected at once
//! (default 8, at most 64: a lane each); one more gets `RoleTaken`.
//! `--clients N` makes the server exit once N clients have finished (said
//! bye, or gone without it), for scripts and tests; without it the server
//! runs until Ctrl-C. Either way it then removes its channel, with any
//! requests still queued, and the channels of the clients still connected
//! (they get `Removed`): `ipcs -m -s` shows nothing left once the clients
//! have exited.
//!
//! No client can stall the server or the other clients: the server
//! answers with `try_send`, and drops a client (removing its answer
//! channel) whose answer channel is full, because it does not read its
//! answers, or whose receiver has gone. It forgets a client when the
//! client says bye; one that died without bye is forgotten once no client
//! is left (the receiver then gets `Disconnected`), since nothing tells
//! the server sooner: a new `SenderId` on the dead client's lane would,
//! but `SenderId` does not expose its lane. The server opens whatever
//! channel a hello names, and sends to it: with the default mode, 0600,
//! only processes of the server's own user can send one. The protocol is
//! in `examples/common/rpc.rs`.

#[path = "common/failure.rs"]
mod failure;
#[path = "common/key_args.rs"]
mod key_args;
#[path = "common/rpc.rs"]
#[allow(
    dead_code,
    reason = "the client uses the other direction of each message"
)]
mod rpc;
#[path = "common/serve.rs"]
mod serve;

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use failure::fail;
use rpc::{Answer, Request};
use serve::show_proj;
use shmchan::{Channel, Key, MAX_SENDERS, Options, Receiver, Sender, SenderId};

/// How often the server looks at the Ctrl-C flag while no request arrives.
const TICK: Duration = Duration::from_millis(200);

/// How often the server looks for a new client while none is connected: a
/// receiver whose senders have all gone gets `Disconnected` at once, and
/// the library has no call that waits for the next sender.
const IDLE: Duration = Duration::from_millis(20);

/// Bytes of each client's lane: requests are short lines.
const LANE: usize = 64 * 1024;

/// Clients connected at once when `--max-clients` is not given.
const DEFAULT_MAX_CLIENTS: u64 = 8;

/// The command line.
struct Args {
    path: std::path::PathBuf,
    proj: u8,
    /// Exit once this many clients have finished.
    clients: Option<u64>,
    max_clients: u32,
}

impl Args {
    fn parse() -> Result<Args, Box<dyn Error>> {
        let usage = "usage: rpc_server [--clients N] [--max-clients M] [PATH [PROJ]]";
        let mut args: Vec<_> = std::env::args_os().skip(1).collect();
        let clients = rpc::take_number(&mut args, "--clients")?;
        let max = rpc::take_number(&mut args, "--max-clients")?.unwrap_or(DEFAULT_MAX_CLIENTS);
        let max_clients = match u32::try_from(max) {
            Ok(m) if (1..=MAX_SENDERS).contains(&m) => m,
            _ => {
                return Err(fail(format!(
                    "--max-clients must be from 1 to {MAX_SENDERS}"
                )));
            }
        };
        let (path, proj) = key_args::parse_key(args, rpc::DEFAULT_PATH, usage)?;
        Ok(Args {
            path,
            proj,
            clients,
            max_clients,
        })
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse()?;
    serve::ensure_file(&args.path)?;
    let key = Key::ftok(&args.path, args.proj).map_err(explain)?;
    // replace_stale: a server killed by SIGKILL leaves a channel with no
    // party alive; replace it instead of failing. A live one is never
    // replaced.
    let options = Options::new()
        .capacity(LANE)
        .max_senders(args.max_clients)
        .replace_stale(true);
    let chan = Channel::create(key, &options).map_err(explain)?;
    let mut rx = chan.receiver().map_err(explain)?;
    serve::catch_ctrl_c()?;
    println!(
        "rpc_server: listening at {key} (ftok of {} and {}), shmid {}, semid {}, up to {} clients at once",
        args.path.display(),
        show_proj(args.proj),
        chan.id(),
        chan.sem_id(),
        args.max_clients,
    );
    let mut server = Server::new(args.clients);
    let served = server.serve(&mut rx);
    server.close();
    // Requests still queued will never be answered: remove the channel
    // rather than let them keep it after its last party.
    drop(rx);
    let removed = chan.remove();
    served?;
    removed.map_err(explain)?;
    println!(
        "rpc_server: {} clients finished ({} said bye, {} lost)",
        server.done + server.lost,
        server.done,
        server.lost
    );
    Ok(())
}

/// A connected client: where its answers go.
struct Client {
    /// The sender role on the client's private channel.
    answers: Sender,
    /// That channel, opened by the id the client sent.
    chan: Channel,
    /// Calls answered so far.
    answered: u64,
}

impl Client {
    /// Opens the client's answer channel and takes its sender role.
    fn connect(shmid: i32) -> shmchan::Result<Client> {
        let chan = Channel::open_id(shmid)?;
        let answers = chan.sender()?;
        Ok(Client {
            answers,
            chan,
            answered: 0,
        })
    }

    /// Leaves the client's channel and removes it, for a client that is
    /// gone or dropped: answers it never read would otherwise keep the
    /// channel after its last party (a live client sees `Removed`).
    fn remove(self) {
        let Client { answers, chan, .. } = self;
        drop(answers);
        // It fails only when the channel is gone already, or belongs to a
        // user this one may not remove for: nothing more to do either way.
        let _ = chan.remove();
    }
}

/// The clients and what has become of those that left.
struct Server {
    clients: HashMap<SenderId, Client>,
    /// Clients that said bye.
    done: u64,
    /// Clients dropped, gone without bye, or never connected.
    lost: u64,
    /// `--clients`.
    limit: Option<u64>,
}

impl Server {
    fn new(limit: Option<u64>) -> Server {
        Server {
            clients: HashMap::new(),
            done: 0,
            lost: 0,
            limit,
        }
    }

    fn finished(&self) -> bool {
        self.limit.is_some_and(|n| self.done + self.lost >= n)
    }

    /// Answers requests until `--clients` are finished or Ctrl-C.
    fn serve(&mut self, rx: &mut Receiver) -> Result<(), Box<dyn Error>> {
        let mut idle = false;
        while !self.finished() {
            if serve::interrupted() {
                println!("rpc_server: interrupted");
                return Ok(());
            }
            match rx.recv_from_timeout(TICK) {
                Ok((msg, from)) => {
                    idle = false;
                    self.handle(from, &msg);
                }
                Err(shmchan::Error::Timeout) => {}
                // Every client's sender is gone, and all they sent has
                // been received.
                Err(shmchan::Error::Disconnected) if idle => std::thread::sleep(IDLE),
                Err(shmchan::Error::Disconnected) => {
                    idle = true;
                    self.forget_all();
                    println!("rpc_server: no client connected");
                }
                Err(e) => return Err(explain(e)),
            }
        }
        Ok(())
    }

    fn handle(&mut self, from: SenderId, msg: &[u8]) {
        match Request::decode(msg) {
            Some(Request::Hello { answers }) => self.hello(from, answers),
            Some(Request::Call { seq, text }) => self.call(from, seq, text),
            Some(Request::Bye) => self.bye(from),
            None => self.refuse(from, "not a request"),
        }
    }

    fn hello(&mut self, from: SenderId, shmid: i32) {
        if self.clients.contains_key(&from) {
            return self.refuse(from, "a second hello");
        }
        match Client::connect(shmid) {
            Ok(client) => {
                self.clients.insert(from, client);
                println!("rpc_server: {from} connected, answers go to shmid {shmid}");
                let id = from.to_string();
                self.answer(from, Answer::Welcome { id: &id });
            }
            Err(e) => {
                self.lost += 1;
                println!("rpc_server: {from} lost: cannot answer on shmid {shmid}: {e}");
            }
        }
    }

    fn call(&mut self, from: SenderId, seq: u64, text: &[u8]) {
        let text = text.to_ascii_uppercase();
        if self.answer(from, Answer::Result { seq, text: &text }) {
            if let Some(client) = self.clients.get_mut(&from) {
                client.answered += 1;
            }
        }
    }

    fn bye(&mut self, from: SenderId) {
        let Some(answered) = self.clients.get(&from).map(|c| c.answered) else {
            return self.ignore(from);
        };
        if self.answer(from, Answer::Bye { answered }) {
            // Dropped normally: the client reads its last answer and is
            // then the last party out of its channel.
            self.clients.remove(&from);
            self.done += 1;
            println!("rpc_server: {from} said bye after {}", rpc::calls(answered));
        }
    }

    /// Answers a request it could not make sense of.
    fn refuse(&mut self, from: SenderId, what: &str) {
        self.answer(from, Answer::Error { what });
    }

    /// Sends `answer` to `to` without waiting; drops the client if that
    /// fails. Whether it was sent.
    fn answer(&mut self, to: SenderId, answer: Answer) -> bool {
        let Some(client) = self.clients.get_mut(&to) else {
            self.ignore(to);
            return false;
        };
        match client.answers.try_send(&answer.encode()) {
            Ok(()) => true,
            Err(e) => {
                self.drop_client(to, &why_dropped(e));
                false
            }
        }
    }

    /// A request from a sender that is not a connected client (it sent no
    /// hello, or was dropped).
    fn ignore(&self, from: SenderId) {
        println!("rpc_server: {from} is not connected; request ignored");
    }

    fn drop_client(&mut self, id: SenderId, why: &str) {
        if let Some(client) = self.clients.remove(&id) {
            client.remove();
            self.lost += 1;
            println!("rpc_server: {id} dropped: {why}");
        }
    }

    /// After `Disconnected`: every client still here died without bye.
    fn forget_all(&mut self) {
        for (id, client) in self.clients.drain() {
            client.remove();
            self.lost += 1;
            println!("rpc_server: {id} lost: gone without bye");
        }
    }

    /// At exit: removes the channels of the clients still connected (a
    /// live one then gets `Removed`).
    fn close(&mut self) {
        for (id, client) in self.clients.drain() {
            client.remove();
            println!("rpc_server: {id} still connected at exit; its answer channel is removed");
        }
    }
}

/// Why an answer could not be sent, for the line that drops the client.
fn why_dropped(e: shmchan::Error) -> String {
    match e {
        shmchan::Error::Full => "its answer channel is full: it does not read its answers".into(),
        shmchan::Error::Disconnected => "it stopped reading its answers".into(),
        e => e.to_string(),
    }
}

/// A library error, with a hint where the user can do something about it.
fn explain(e: shmchan::Error) -> Box<dyn Error> {
    serve::explain(e, "rpc_server")
}
