//! The rpc server on tokio: `examples/rpc_server.rs` with async receives,
//! serving the same clients (`examples/rpc_client.rs`) on a channel with a
//! lane per client, while the same task does other async work: it prints a
//! status line every `--status SECS` seconds (default 10) and waits for
//! Ctrl-C with `tokio::signal`, all in one `tokio::select!` on a
//! current-thread runtime. No receive ever blocks the runtime: a
//! `recv_from_async` that finds no request hands its wait to the
//! receiver's helper thread, and the interval and the signal go on.
//!
//! ```text
//! # terminal 1: the server, until Ctrl-C
//! cargo run --example async_server
//!
//! # terminal 2: three clients at once
//! cargo build --example rpc_client
//! for i in 1 2 3; do target/debug/examples/rpc_client --requests 3 & done; wait
//! ```
//!
//! Arguments: `[--clients N] [--max-clients M] [--status SECS] [PATH [PROJ]]`,
//! as for `rpc_server` (the key, by default `/tmp/shmchan-rpc` and `A`,
//! is the same, so run one server or the other). The protocol is in
//! `examples/common/rpc.rs`, what the server does with each request in
//! `examples/common/clients.rs`.

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
#[allow(dead_code, reason = "tokio catches Ctrl-C here")]
mod serve;

use std::error::Error;
use std::time::Duration;

use clients::Server;
use shmchan::Receiver;

/// The name on every line it prints.
const PROGRAM: &str = "async_server";

/// How often the server looks for a new client while none is connected
/// (a receiver whose senders have all gone gets `Disconnected` at once).
const IDLE: Duration = Duration::from_millis(20);

fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<_> = std::env::args_os().collect();
    let status = rpc::take_number(&mut args, "--status")?.unwrap_or(10);
    if status == 0 {
        return Err(failure::fail("--status must be at least 1 second".into()));
    }
    // `listen` parses the rest of the command line itself.
    let (chan, mut rx, limit) = clients::listen(PROGRAM, args.into_iter().skip(1))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut server = Server::new(PROGRAM, limit);
    let served = runtime.block_on(serve(&mut server, &mut rx, Duration::from_secs(status)));
    clients::finish(server, rx, chan, served)
}

/// Answers requests until `--clients` are finished or Ctrl-C, printing a
/// status line every `status`.
async fn serve(
    server: &mut Server,
    rx: &mut Receiver,
    status: Duration,
) -> Result<(), Box<dyn Error>> {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + status, status);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut idle = false;
    while !server.finished() {
        tokio::select! {
            got = rx.recv_from_async(), if !idle => match got {
                Ok((msg, from)) => server.handle(from, &msg),
                // Every client's sender is gone, and all they sent has
                // been received: look again after a while.
                Err(shmchan::Error::Disconnected) => {
                    idle = true;
                    server.forget_all();
                    println!("{PROGRAM}: no client connected");
                }
                Err(e) => return Err(serve::explain(e, PROGRAM)),
            },
            _ = tokio::time::sleep(IDLE), if idle => idle = false,
            _ = ticks.tick() => println!(
                "{PROGRAM}: {} clients connected, {} finished",
                server.connected(),
                server.done + server.lost
            ),
            signal = &mut ctrl_c => {
                signal?;
                println!("{PROGRAM}: interrupted");
                return Ok(());
            }
        }
    }
    Ok(())
}
