//! The server side of the rpc examples (examples/rpc_server.rs, and
//! examples/async_server.rs on tokio): the connected clients, where their
//! answers go, and what each request does. The serving loops are the
//! programs' own.

use std::collections::HashMap;
use std::error::Error;

use crate::failure::fail;
use crate::rpc::{self, Answer, Request};
use crate::{key_args, serve};
use shmchan::{Channel, Key, MAX_SENDERS, Options, Receiver, Sender, SenderId};

/// Bytes of each client's lane: requests are short lines.
const LANE: usize = 64 * 1024;

/// Clients connected at once when `--max-clients` is not given.
const DEFAULT_MAX_CLIENTS: u64 = 8;

/// The command line.
pub(crate) struct Args {
    path: std::path::PathBuf,
    proj: u8,
    /// Exit once this many clients have finished.
    clients: Option<u64>,
    max_clients: u32,
}

impl Args {
    fn parse(
        program: &str,
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Args, Box<dyn Error>> {
        let usage = format!("usage: {program} [--clients N] [--max-clients M] [PATH [PROJ]]");
        let mut args: Vec<_> = args.into_iter().collect();
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
        let (path, proj) = key_args::parse_key(args, rpc::DEFAULT_PATH, &usage)?;
        Ok(Args {
            path,
            proj,
            clients,
            max_clients,
        })
    }
}

/// Parses the command line, creates the server's channel (a lane per
/// client) and takes its receiver; prints the line that says it listens.
/// `args` are the arguments after the program's name. Returns the
/// channel, the receiver and `--clients`.
pub(crate) fn listen(
    program: &str,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<(Channel, Receiver, Option<u64>), Box<dyn Error>> {
    let explain = |e| serve::explain(e, program);
    let args = Args::parse(program, args)?;
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
    let rx = chan.receiver().map_err(explain)?;
    println!(
        "{program}: listening at {key} (ftok of {} and {}), shmid {}, semid {}, up to {} clients at once",
        args.path.display(),
        serve::show_proj(args.proj),
        chan.id(),
        chan.sem_id(),
        args.max_clients,
    );
    Ok((chan, rx, args.clients))
}

/// After the serving loop: removes the clients' channels and the server's
/// own (requests still queued will never be answered: remove the channel
/// rather than let them keep it after its last party), then says how many
/// clients finished.
pub(crate) fn finish(
    mut server: Server,
    rx: Receiver,
    chan: Channel,
    served: Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    server.close();
    drop(rx);
    let removed = chan.remove();
    served?;
    removed.map_err(|e| serve::explain(e, server.name))?;
    println!(
        "{}: {} clients finished ({} said bye, {} lost)",
        server.name,
        server.done + server.lost,
        server.done,
        server.lost
    );
    Ok(())
}

/// A connected client: where its answers go.
pub(crate) struct Client {
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
pub(crate) struct Server {
    clients: HashMap<SenderId, Client>,
    /// Clients that said bye.
    pub(crate) done: u64,
    /// Clients dropped, gone without bye, or never connected.
    pub(crate) lost: u64,
    /// `--clients`.
    limit: Option<u64>,
    /// The program, first on each line it prints.
    name: &'static str,
}

impl Server {
    pub(crate) fn new(name: &'static str, limit: Option<u64>) -> Server {
        Server {
            clients: HashMap::new(),
            done: 0,
            lost: 0,
            limit,
            name,
        }
    }

    /// Clients connected now.
    #[allow(dead_code, reason = "only async_server prints a status line")]
    pub(crate) fn connected(&self) -> usize {
        self.clients.len()
    }

    pub(crate) fn finished(&self) -> bool {
        self.limit.is_some_and(|n| self.done + self.lost >= n)
    }

    pub(crate) fn handle(&mut self, from: SenderId, msg: &[u8]) {
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
                println!(
                    "{}: {from} connected, answers go to shmid {shmid}",
                    self.name
                );
                let id = from.to_string();
                self.answer(from, Answer::Welcome { id: &id });
            }
            Err(e) => {
                self.lost += 1;
                println!(
                    "{}: {from} lost: cannot answer on shmid {shmid}: {e}",
                    self.name
                );
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
            println!(
                "{}: {from} said bye after {}",
                self.name,
                rpc::calls(answered)
            );
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
        println!("{}: {from} is not connected; request ignored", self.name);
    }

    fn drop_client(&mut self, id: SenderId, why: &str) {
        if let Some(client) = self.clients.remove(&id) {
            client.remove();
            self.lost += 1;
            println!("{}: {id} dropped: {why}", self.name);
        }
    }

    /// After `Disconnected`: every client still here died without bye.
    pub(crate) fn forget_all(&mut self) {
        for (id, client) in self.clients.drain() {
            client.remove();
            self.lost += 1;
            println!("{}: {id} lost: gone without bye", self.name);
        }
    }

    /// At exit: removes the channels of the clients still connected (a
    /// live one then gets `Removed`).
    pub(crate) fn close(&mut self) {
        for (id, client) in self.clients.drain() {
            client.remove();
            println!(
                "{}: {id} still connected at exit; its answer channel is removed",
                self.name
            );
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
