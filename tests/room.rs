//! A waiting send takes the room it needs once the receiver, a separate
//! process, has made it, even when that receiver then stops reading: the
//! ring is full of 100-byte messages, the receiver takes one (112 bytes of
//! room, where a 5-byte message needs 16) and waits for the parent to end
//! the test. A sender that waits for room to spare (`ring::REFILL`, 4 KiB
//! beyond its frame) only while it spins sends by the end of its spin
//! budget; one that waited for it regardless, as the first build of the
//! refill rule did, parks with nothing left to wake it and waits until its
//! deadline (or for ever).
//!
//! Every waiting form is covered: `send_timeout`, `send_deadline`,
//! `reserve_timeout`, `send_batch_timeout`, `send_async`, and a sender
//! with a spin budget of zero, which parks at its first wait and so
//! depends on its last look before the park. The deadlines are far past
//! what the send needs (a failed check, not a timing bound); the messages
//! are checked to arrive whole and in order afterwards, by this process
//! taking the receiver role once the peer has left.

mod common;

use std::time::{Duration, Instant};

use common::{Gate, GateReader, env, private_channel, say, spawn_peer};
use shmchan::{Channel, Error, Sender};

const SHMID: &str = "SHMCHAN_ROOM_SHMID";
const GATE: &str = "SHMCHAN_ROOM_GATE";

/// Ring bytes: the refill slack is an eighth of it (512 bytes), still
/// more than the one message the receiver takes frees.
const RING: usize = 4096;
/// The filler messages' length: 112-byte frames.
const FILL: usize = 100;
/// What the waiting send sends: a 16-byte frame.
const SMALL: &[u8] = b"small";
/// A deadline the send must beat: reached only if it waits for the slack.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(60);
        let chan = Channel::open_id(env(SHMID).parse().expect("shmid")).expect("peer opens");
        let gate = GateReader::open(&env(GATE));
        match role {
            "take_one_then_stop" => {
                let mut rx = chan.receiver().expect("peer takes the receiver role");
                let first = rx.recv().expect("peer receives");
                assert_eq!(first, filler(0));
                say("took one");
                gate.wait();
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn filler(n: usize) -> Vec<u8> {
    vec![n as u8; FILL]
}

/// Fills a fresh ring, lets the peer take one message, then runs `send`
/// (which must send `SMALL` and return once it has) and checks what the
/// ring holds afterwards.
fn after_one_taken(spin: Option<Duration>, send: impl FnOnce(&mut Sender) -> shmchan::Result<()>) {
    let (chan, _cleanup) = private_channel(RING);
    let mut tx = chan.sender().unwrap();
    if let Some(spin) = spin {
        tx.set_spin(spin);
    }
    let mut filled = 0;
    loop {
        match tx.try_send(&filler(filled)) {
            Ok(()) => filled += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    assert!(filled > 30, "{filled} messages fill the ring");
    let mut gate = Gate::new();
    let mut peer = spawn_peer(
        "peer",
        "take_one_then_stop",
        &[(SHMID, chan.id().to_string()), (GATE, gate.env_value())],
    );
    assert_eq!(peer.next_line().as_deref(), Some("took one"));
    // The peer holds the receiver role and reads no more.
    let start = Instant::now();
    let sent = send(&mut tx);
    let took = start.elapsed();
    gate.open();
    assert!(peer.child.wait().unwrap().success(), "peer failed");
    sent.unwrap_or_else(|e| panic!("the send, with room for it, gave {e} after {took:?}"));
    // Everything after the first message is there, whole and in order.
    let mut rx = chan.receiver().unwrap();
    for n in 1..filled {
        assert_eq!(rx.try_recv().unwrap(), filler(n));
    }
    assert_eq!(rx.try_recv().unwrap(), SMALL);
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
}

#[test]
fn send_timeout_takes_the_room_a_stopped_receiver_left() {
    after_one_taken(None, |tx| tx.send_timeout(SMALL, LIMIT));
}

#[test]
fn send_deadline_takes_the_room_a_stopped_receiver_left() {
    after_one_taken(None, |tx| tx.send_deadline(SMALL, Instant::now() + LIMIT));
}

#[test]
fn reserve_timeout_takes_the_room_a_stopped_receiver_left() {
    after_one_taken(None, |tx| {
        let mut grant = tx.reserve_timeout(SMALL.len(), LIMIT)?;
        grant.copy_from_slice(SMALL);
        grant.commit()
    });
}

#[test]
fn send_batch_timeout_takes_the_room_a_stopped_receiver_left() {
    after_one_taken(None, |tx| tx.send_batch_timeout(&[SMALL], LIMIT));
}

#[test]
fn a_sender_that_parks_at_once_takes_the_room_a_stopped_receiver_left() {
    after_one_taken(Some(Duration::ZERO), |tx| tx.send_timeout(SMALL, LIMIT));
}

#[test]
fn send_async_takes_the_room_a_stopped_receiver_left() {
    after_one_taken(None, |tx| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            match tokio::time::timeout(LIMIT, tx.send_async(SMALL)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout),
            }
        })
    });
}
