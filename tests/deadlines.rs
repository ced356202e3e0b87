//! Deadlines: every `_deadline` form gives `Timeout` at once for a
//! deadline already past, returns no earlier than a deadline in the future
//! (and not much later), and ends its wait when the peer, a separate
//! process (this test binary run again, see `peer`), does what it waited
//! for; a `_timeout` beyond what an `Instant` holds waits without a
//! deadline.
//!
//! These tests measure time, so they never run at the same time as each
//! other: each holds `SERIAL`. Bounds are generous (a noisy 2-core VM), as
//! in tests/timing.rs; none asserts speed, and no test sleeps in the hope
//! that a peer got somewhere: a peer says where it is.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Gate, GateReader, Peer, env, private_channel, say, spawn_peer};
use shmchan::{Channel, Error};

/// Env vars the peers read.
const SHMID: &str = "SHMCHAN_DEADLINES_SHMID";
const GATE: &str = "SHMCHAN_DEADLINES_GATE";
const COUNT: &str = "SHMCHAN_DEADLINES_COUNT";

/// Ring bytes.
const RING: usize = 4096;
/// Slack allowed past a deadline, and the most "at once" may take.
const MARGIN: Duration = Duration::from_millis(500);
/// Deadlines in the future that must be kept: a short one, and one that
/// outlasts a park slice of the library (500 ms).
const AHEAD: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(700)];
/// A deadline that a peer's action must beat (not a timing bound).
const LIMIT: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------- peers

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(60);
        let chan = Channel::open_id(env(SHMID).parse().expect("shmid")).expect("peer opens");
        let gate = GateReader::open(&env(GATE));
        match role {
            "idle_sender" => {
                let _tx = chan.sender().expect("peer takes the sender role");
                say("ready");
                gate.wait();
            }
            "idle_receiver" => {
                let _rx = chan.receiver().expect("peer takes the receiver role");
                say("ready");
                gate.wait();
            }
            "gated_sender" => {
                let mut tx = chan.sender().expect("peer takes the sender role");
                say("ready");
                gate.wait();
                tx.send(b"late").expect("send");
            }
            "gated_drainer" => {
                let mut rx = chan.receiver().expect("peer takes the receiver role");
                say("ready");
                gate.wait();
                let count: usize = env(COUNT).parse().expect("count");
                for _ in 0..count {
                    rx.recv().expect("recv");
                }
                say("drained");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// Peer `role` on `chan`, held at `gate`, once it said it is ready.
fn spawn(role: &str, chan: &Channel, gate: &Gate, extra: &[(&str, String)]) -> Peer {
    let mut vars = vec![(SHMID, chan.id().to_string()), (GATE, gate.env_value())];
    vars.extend(extra.iter().cloned());
    let mut peer = spawn_peer("peer", role, &vars);
    peer.expect_line("ready");
    peer
}

/// Fills the ring with messages of 1000 bytes (four 1008-byte frames);
/// returns how many.
fn fill(tx: &mut shmchan::Sender) -> usize {
    let mut n = 0;
    while tx.try_send(&[7; 1000]).is_ok() {
        n += 1;
    }
    n
}

/// Runs `call`, which must give `Timeout` (or, for a batch, `sent`
/// messages then `Timeout`) no earlier than `deadline` and within
/// [`MARGIN`] of it (or of the call's start, for a deadline already
/// past).
fn assert_times_out<T: std::fmt::Debug>(
    what: &str,
    deadline: Instant,
    sent: Option<usize>,
    call: impl FnOnce(Instant) -> Result<T, Error>,
) {
    let start = Instant::now();
    let got = call(deadline);
    let end = Instant::now();
    match (&got, sent) {
        (Err(Error::Timeout), None) => {}
        (Err(Error::BatchIncomplete { sent: n, source }), Some(k))
            if *n == k && matches!(**source, Error::Timeout) => {}
        _ => panic!("{what}: expected a timeout after {sent:?} messages, got {got:?}"),
    }
    assert!(end >= deadline, "{what} gave up {:?} early", deadline - end);
    let late = end - deadline.max(start);
    assert!(late < MARGIN, "{what} returned {late:?} after its deadline");
}

// ------------------------------------------------------------ the tests

#[test]
fn a_deadline_in_the_past_times_out_at_once_on_every_receive() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let mut gate = Gate::new();
    let tx = spawn("idle_sender", &chan, &gate, &[]);
    let mut buf = Vec::new();
    let mut bufs = vec![Vec::new(); 4];
    let past = Instant::now();
    assert_times_out("recv_deadline", past, None, |d| rx.recv_deadline(d));
    assert_times_out("recv_into_deadline", past, None, |d| {
        rx.recv_into_deadline(&mut buf, d)
    });
    assert_times_out("recv_ref_deadline", past, None, |d| {
        rx.recv_ref_deadline(d).map(|g| g.len())
    });
    assert_times_out("recv_from_deadline", past, None, |d| {
        rx.recv_from_deadline(d)
    });
    assert_times_out("recv_many_deadline", past, None, |d| {
        rx.recv_many_deadline(&mut bufs, d)
    });
    gate.open();
    tx.join();
}

#[test]
fn a_deadline_in_the_past_times_out_at_once_on_every_send() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut gate = Gate::new();
    let rx = spawn("idle_receiver", &chan, &gate, &[]);
    fill(&mut tx);
    let past = Instant::now();
    assert_times_out("send_deadline", past, None, |d| tx.send_deadline(b"x", d));
    assert_times_out("reserve_deadline", past, None, |d| {
        tx.reserve_deadline(1, d).map(|g| g.len())
    });
    assert_times_out("send_batch_deadline", past, Some(0), |d| {
        tx.send_batch_deadline(&["x", "y"], d)
    });
    gate.open();
    rx.join();
}

#[test]
fn a_deadline_in_the_future_is_kept_by_every_receive() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let mut gate = Gate::new();
    let tx = spawn("idle_sender", &chan, &gate, &[]);
    let mut buf = Vec::new();
    let mut bufs = vec![Vec::new(); 4];
    for ahead in AHEAD {
        let at = || Instant::now() + ahead;
        assert_times_out("recv_deadline", at(), None, |d| rx.recv_deadline(d));
        assert_times_out("recv_into_deadline", at(), None, |d| {
            rx.recv_into_deadline(&mut buf, d)
        });
        assert_times_out("recv_ref_deadline", at(), None, |d| {
            rx.recv_ref_deadline(d).map(|g| g.len())
        });
        assert_times_out("recv_from_deadline", at(), None, |d| {
            rx.recv_from_deadline(d)
        });
        assert_times_out("recv_many_deadline", at(), None, |d| {
            rx.recv_many_deadline(&mut bufs, d)
        });
    }
    gate.open();
    tx.join();
}

#[test]
fn a_deadline_in_the_future_is_kept_by_every_send() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut gate = Gate::new();
    let rx = spawn("idle_receiver", &chan, &gate, &[]);
    fill(&mut tx);
    for ahead in AHEAD {
        let at = || Instant::now() + ahead;
        assert_times_out("send_deadline", at(), None, |d| tx.send_deadline(b"x", d));
        assert_times_out("reserve_deadline", at(), None, |d| {
            tx.reserve_deadline(1, d).map(|g| g.len())
        });
        assert_times_out("send_batch_deadline", at(), Some(0), |d| {
            tx.send_batch_deadline(&["x", "y"], d)
        });
    }
    gate.open();
    rx.join();
}

#[test]
fn a_batch_keeps_its_deadline_after_a_first_run() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut gate = Gate::new();
    let rx = spawn("idle_receiver", &chan, &gate, &[]);
    // Three 1008-byte frames fit, the fourth and fifth wait in vain.
    tx.send(&[1; 1000]).expect("send");
    let batch = vec![[2u8; 1000]; 5];
    let deadline = Instant::now() + AHEAD[1];
    assert_times_out("send_batch_deadline", deadline, Some(3), |d| {
        tx.send_batch_deadline(&batch, d)
    });
    gate.open();
    rx.join();
}

#[test]
fn a_receive_waiting_for_a_deadline_ends_when_a_message_comes() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut gate = Gate::new();
    let mut rx = chan.receiver().expect("receiver");
    let tx = spawn("gated_sender", &chan, &gate, &[]);
    let deadline = Instant::now() + LIMIT;
    gate.open();
    assert_eq!(rx.recv_deadline(deadline).expect("the message"), b"late");
    assert!(Instant::now() < deadline, "the message ended the wait");
    tx.join();
    let mut bufs = vec![Vec::new(); 4];
    match rx.recv_many_deadline(&mut bufs, deadline) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[test]
fn a_send_waiting_for_a_deadline_ends_when_room_is_made() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut gate = Gate::new();
    let mut tx = chan.sender().expect("sender");
    // The ring full, one more message and a batch of twelve that needs
    // three rings' worth of room.
    let count = fill(&mut tx) + 1 + 12;
    let rx = spawn("gated_drainer", &chan, &gate, &[(COUNT, count.to_string())]);
    let deadline = Instant::now() + LIMIT;
    gate.open();
    tx.send_deadline(&[8; 1000], deadline).expect("room made");
    let batch = vec![[9u8; 1000]; 12];
    tx.send_batch_deadline(&batch, deadline)
        .expect("room made, run after run");
    assert!(Instant::now() < deadline, "the room ended the waits");
    rx.join();
}

#[test]
fn timeouts_beyond_any_instant_wait_without_a_deadline() {
    let _serial = serial();
    let (chan, _guard) = private_channel(RING);
    let mut gate = Gate::new();
    let mut tx = chan.sender().expect("sender");
    let count = fill(&mut tx) + 12;
    let rx = spawn("gated_drainer", &chan, &gate, &[(COUNT, count.to_string())]);
    gate.open();
    let batch = vec![[9u8; 1000]; 12];
    tx.send_batch_timeout(&batch, Duration::MAX)
        .expect("room made by the receiver");
    rx.join();
    drop(tx);

    let (chan, _guard) = private_channel(RING);
    let mut gate = Gate::new();
    let mut rx = chan.receiver().expect("receiver");
    let tx = spawn("gated_sender", &chan, &gate, &[]);
    gate.open();
    let mut bufs = vec![Vec::new(); 4];
    assert_eq!(
        rx.recv_many_timeout(&mut bufs, Duration::MAX)
            .expect("late"),
        1
    );
    assert_eq!(bufs[0], b"late");
    tx.join();
}
