//! Two processes exchanging structs both ways: typed values (feature
//! `serde`).
//!
//! ```text
//! cargo run --example typed --features serde
//! cargo run --example typed --features serde -- --requests 5
//! ```
//!
//! One command shows both sides. The program is the server: it creates two
//! private channels, one for requests (client to server) and one for
//! replies (server to client), and starts a second process, itself again,
//! told by an environment variable to be the client and given both
//! channels' ids (`Channel::open_id`). The client sends `Request` structs
//! with `send_value`; the server receives each with `recv_value_from`
//! (the value and the client's `SenderId`), prices it and sends back a
//! `Reply` struct, which the client receives with `recv_value` and checks.
//! Each struct holds a `String` and a `Vec`; postcard encodes them
//! compactly straight into the ring. When the client is done it drops its
//! sender: the server's next `recv_value_from` returns `Disconnected` and
//! both exit. Both channels are removed by their last party.
//!
//! Each side prints one line per message, prefixed with its role.

#[path = "common/failure.rs"]
mod failure;

use std::error::Error;
use std::process::{Child, Command};

use failure::fail;
use serde::{Deserialize, Serialize};
use shmchan::{Channel, Key, Options};

/// Set (to "REQUESTS_SHMID REPLIES_SHMID") in the client process.
const CLIENT_ENV: &str = "SHMCHAN_TYPED_CLIENT";

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Request {
    id: u64,
    symbol: String,
    /// Quantities to price, one line each.
    lots: Vec<u32>,
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reply {
    id: u64,
    /// The price of each lot, in cents, in the request's order.
    line_cents: Vec<u64>,
    total_cents: u64,
    note: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    let requests = requests_from_args()?;
    match std::env::var(CLIENT_ENV) {
        Ok(ids) => run_client(&ids, requests).map_err(|e| fail(format!("client: {e}"))),
        Err(_) => run_server().map_err(|e| fail(format!("server: {e}"))),
    }
}

/// `--requests N` (default 3); the client gets the same arguments.
fn requests_from_args() -> Result<u64, Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(3),
        [flag, n] if flag == "--requests" => n
            .parse()
            .map_err(|_| fail(format!("--requests: {n:?} is not a number"))),
        _ => Err(fail("usage: typed [--requests N]".into())),
    }
}

// ---- the server -------------------------------------------------------------

fn run_server() -> Result<(), Box<dyn Error>> {
    let opts = Options::new().capacity(64 * 1024);
    let requests = Channel::create(Key::PRIVATE, &opts)?;
    let replies = Channel::create(Key::PRIVATE, &opts)?;
    let mut rx = requests.receiver()?;
    let mut tx = replies.sender()?;
    let mut client = spawn_client(requests.id(), replies.id())?;
    let served = serve(&mut rx, &mut tx);
    // Leaving both roles disconnects them: a client still waiting for a
    // reply gets `Disconnected` instead of waiting for ever.
    drop((rx, tx));
    if served.is_err() {
        let _ = client.kill(); // it may have exited already
    }
    let status = client.wait()?;
    match served {
        Ok(n) if status.success() => {
            println!("server: answered {n} requests; the client is gone, bye");
            Ok(())
        }
        Ok(_) => Err(fail(format!("the client failed: {status}"))),
        Err(e) => Err(e),
    }
}

/// The client: this program again, with both channels' ids in its env and
/// the same arguments.
fn spawn_client(requests: i32, replies: i32) -> Result<Child, Box<dyn Error>> {
    Ok(Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .env(CLIENT_ENV, format!("{requests} {replies}"))
        .spawn()?)
}

/// Answers every request until the client disconnects; returns how many.
fn serve(rx: &mut shmchan::Receiver, tx: &mut shmchan::Sender) -> Result<u64, Box<dyn Error>> {
    let mut answered = 0;
    loop {
        let (req, from) = match rx.recv_value_from::<Request>() {
            Ok(got) => got,
            Err(shmchan::Error::Disconnected) => return Ok(answered),
            Err(e) => return Err(e.into()),
        };
        println!("server: from {from}: {req:?}");
        tx.send_value(&price(&req))?;
        answered += 1;
    }
}

/// The server's work: a made-up price per unit, from the symbol.
fn price(req: &Request) -> Reply {
    let unit = req.symbol.bytes().map(u64::from).sum::<u64>();
    let line_cents: Vec<u64> = req.lots.iter().map(|&q| unit * u64::from(q)).collect();
    Reply {
        id: req.id,
        total_cents: line_cents.iter().sum(),
        line_cents,
        note: format!("{} at {unit} cents", req.symbol),
    }
}

// ---- the client -------------------------------------------------------------

fn run_client(ids: &str, count: u64) -> Result<(), Box<dyn Error>> {
    let (req_id, rep_id) = ids
        .split_once(' ')
        .ok_or_else(|| fail(format!("{CLIENT_ENV}={ids:?}: expected two ids")))?;
    let requests = Channel::open_id(req_id.parse()?)?;
    let replies = Channel::open_id(rep_id.parse()?)?;
    let mut tx = requests.sender()?;
    let mut rx = replies.receiver()?;
    let symbols = ["ACME", "INITECH", "GLOBEX"];
    for id in 1..=count {
        let req = Request {
            id,
            symbol: symbols[(id as usize - 1) % symbols.len()].to_owned(),
            lots: (1..=id as u32).map(|i| i * 10).collect(),
        };
        tx.send_value(&req)?;
        let reply: Reply = rx.recv_value()?;
        if reply != price(&req) {
            return Err(fail(format!("request {id}: wrong reply {reply:?}")));
        }
        println!("client: reply {reply:?}");
    }
    println!("client: {count} replies checked, bye");
    Ok(()) // dropping the sender disconnects it: the server stops
}
