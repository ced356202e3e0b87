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
//! the server sooner: a new `SenderId` on the dead client's lane would
//! (`SenderId::lane`, which this server does not use yet). The server opens whatever
//! channel a hello names, and sends to it: with the default mode, 0600,
//! only processes of the server's own user can send one. The protocol is
//! in `examples/common/rpc.rs`.

#[path = "common/clients.rs"]
mod clients;
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

use std::error::Error;
use std::time::Duration;

use clients::Server;
use shmchan::Receiver;

/// How often the server looks at the Ctrl-C flag while no request arrives.
const TICK: Duration = Duration::from_millis(200);

/// How often the server looks for a new client while none is connected: a
/// receiver whose senders have all gone gets `Disconnected` at once, and
/// the library has no call that waits for the next sender.
const IDLE: Duration = Duration::from_millis(20);

/// The name on every line it prints.
const PROGRAM: &str = "rpc_server";

fn main() -> Result<(), Box<dyn Error>> {
    let (chan, mut rx, limit) = clients::listen(PROGRAM, std::env::args_os().skip(1))?;
    serve::catch_ctrl_c()?;
    let mut server = Server::new(PROGRAM, limit);
    let served = serve(&mut server, &mut rx);
    clients::finish(server, rx, chan, served)
}

/// Answers requests until `--clients` are finished or Ctrl-C.
fn serve(server: &mut Server, rx: &mut Receiver) -> Result<(), Box<dyn Error>> {
    let mut idle = false;
    while !server.finished() {
        if serve::interrupted() {
            println!("{PROGRAM}: interrupted");
            return Ok(());
        }
        match rx.recv_from_timeout(TICK) {
            Ok((msg, from)) => {
                idle = false;
                server.handle(from, &msg);
            }
            Err(shmchan::Error::Timeout) => {}
            // Every client's sender is gone, and all they sent has
            // been received.
            Err(shmchan::Error::Disconnected) if idle => std::thread::sleep(IDLE),
            Err(shmchan::Error::Disconnected) => {
                idle = true;
                server.forget_all();
                println!("{PROGRAM}: no client connected");
            }
            Err(e) => return Err(explain(e)),
        }
    }
    Ok(())
}

/// A library error, with a hint where the user can do something about it.
fn explain(e: shmchan::Error) -> Box<dyn Error> {
    serve::explain(e, PROGRAM)
}
