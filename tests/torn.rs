//! Issue 2, behaviour 2: no torn reads. A sender in another process writes
//! as fast as it can; the receiver here sees every message whole, in order,
//! and exactly once: never the "he", "ll", "o wor" of the tutorial reader.

mod common;

use std::time::{Duration, Instant};

use common::{Cleanup, Peer, env, numbered_message, peer_main, private_channel, say, spawn_peer};
use shmchan::{Channel, Error, Receiver};

/// How long a sender floods the channel.
const FLOOD: Duration = Duration::from_millis(1500);
/// Most messages a sender sends, whatever the time.
const MAX_MESSAGES: u64 = 2_000_000;
/// A small ring: it wraps (with padding frames) every ~170 messages, and
/// both sides keep meeting it full and empty, which is where tearing lives.
const RING: usize = 4096;
/// A silent sender is a failure, not a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// Entry point of the peer processes (does nothing in a normal run).
#[test]
fn peer() {
    peer_main(|role| {
        // A peer never outlives a stuck test by more than this.
        common::peer_watchdog(60);
        let chan = Channel::open_id(env("SHMID").parse().expect("SHMID")).expect("open by id");
        let mut tx = chan.sender().expect("take the sender role");
        let sent = match role {
            "flood" => flood(|_| tx.send(b"hello world")),
            "numbered" => flood(|n| send_numbered(&mut tx, n)),
            "typist" => flood(|_| type_slowly(&mut tx)),
            other => panic!("unknown role {other}"),
        };
        drop(tx);
        say(format!("sent {sent}"));
    });
}

/// Sends message 0, 1, ... until [`FLOOD`] has passed or [`MAX_MESSAGES`]
/// are sent; returns how many were sent.
fn flood(mut send: impl FnMut(u64) -> shmchan::Result<()>) -> u64 {
    let start = Instant::now();
    let mut n = 0;
    while n < MAX_MESSAGES && (n % 64 != 0 || start.elapsed() < FLOOD) {
        send(n).unwrap_or_else(|e| panic!("send {n} failed: {e}"));
        n += 1;
    }
    n
}

/// Sends message `n` of the numbered stream (`numbered_message`: its
/// length varies, and with it every frame boundary and padding position in
/// the ring). Even messages go through `send`, odd ones through
/// `reserve`/`commit`.
fn send_numbered(tx: &mut shmchan::Sender, n: u64) -> shmchan::Result<()> {
    let msg = numbered_message(n);
    if n % 2 == 0 {
        return tx.send(&msg);
    }
    let mut grant = tx.reserve(msg.len())?;
    grant.copy_from_slice(&msg);
    grant.commit()
}

/// The tutorial writer's way: "hello world" typed into the ring one byte at
/// a time, yielding the CPU between bytes, then committed.
fn type_slowly(tx: &mut shmchan::Sender) -> shmchan::Result<()> {
    let msg = b"hello world";
    let mut grant = tx.reserve(msg.len())?;
    for (slot, &byte) in grant.iter_mut().zip(msg) {
        // SAFETY: slot is a valid, exclusive &mut u8 into the reserved frame.
        unsafe { std::ptr::write_volatile(slot, byte) };
        std::thread::yield_now();
    }
    grant.commit()
}

/// A private channel (its cleanup guard first, so that it drops last), its
/// receiver, and a sender process running `role`.
fn setup(role: &str) -> (Cleanup, Channel, Receiver, Peer) {
    let (chan, guard) = private_channel(RING);
    let rx = chan.receiver().expect("take the receiver role");
    let peer = spawn_peer("peer", role, &[("SHMID", chan.id().to_string())]);
    (guard, chan, rx, peer)
}

/// Reads the sender's final count and checks it against what arrived.
fn finish(mut peer: Peer, received: u64) {
    let said = peer.next_line().expect("the sender reports its count");
    assert_eq!(
        said,
        format!("sent {received}"),
        "messages lost or duplicated"
    );
    assert!(received > 0, "the sender sent nothing");
    eprintln!("{received} messages received intact");
    peer.join();
}

#[test]
fn flood_of_hello_world_is_never_torn() {
    let (_guard, _chan, mut rx, peer) = setup("flood");
    let (mut received, mut buf) = (0u64, Vec::new());
    // recv_into reuses one buffer; the peer's alarm bounds the wait.
    loop {
        match rx.recv_into(&mut buf) {
            Ok(len) => assert_eq!(len, buf.len()),
            Err(Error::Disconnected) => break,
            Err(e) => panic!("recv failed after {received} messages: {e}"),
        }
        assert!(
            buf == b"hello world",
            "message {received} is torn: {:?}",
            String::from_utf8_lossy(&buf)
        );
        received += 1;
    }
    finish(peer, received);
}

#[test]
fn numbered_messages_arrive_whole_in_order_and_once() {
    let (_guard, _chan, mut rx, peer) = setup("numbered");
    let mut received = 0u64;
    loop {
        // Even messages are copied out, odd ones read in place.
        let got = if received % 2 == 0 {
            rx.recv_timeout(PATIENCE)
        } else {
            rx.recv_ref_timeout(PATIENCE).map(|g| g.to_vec())
        };
        let msg = match got {
            Ok(msg) => msg,
            Err(Error::Disconnected) => break,
            Err(e) => panic!("recv failed after {received} messages: {e}"),
        };
        assert!(
            msg == numbered_message(received),
            "message {received} is wrong: {:?}",
            String::from_utf8_lossy(&msg)
        );
        received += 1;
    }
    finish(peer, received);
}

#[test]
fn polling_reader_never_sees_a_slow_writer_mid_word() {
    let (_guard, _chan, mut rx, peer) = setup("typist");
    let start = Instant::now();
    let mut received = 0u64;
    // The tutorial reader polls; so does this one, with try_recv.
    loop {
        match rx.try_recv() {
            Ok(msg) => {
                assert!(
                    msg == b"hello world",
                    "message {received} is torn: {:?}",
                    String::from_utf8_lossy(&msg)
                );
                received += 1;
            }
            Err(Error::Empty) => {
                assert!(start.elapsed() < PATIENCE, "the typist stalled");
                std::hint::spin_loop();
            }
            Err(Error::Disconnected) => break,
            Err(e) => panic!("try_recv failed: {e}"),
        }
    }
    finish(peer, received);
}
