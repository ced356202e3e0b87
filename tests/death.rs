//! Peer death: a side parked on the channel learns at once, through the
//! kernel's SEM_UNDO, that its peer was SIGKILLed; nothing committed is
//! lost. Every peer is a separate process (this binary run again).

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Peer, numbered_message as msg};
use shmchan::{Channel, Error};

const ID: &str = "SHMCHAN_DEATH_ID";
const COUNT: &str = "SHMCHAN_DEATH_COUNT";

/// How long a side may take to notice a killed peer.
const DEATH_NOTICE: Duration = Duration::from_secs(2);
/// Generous limit for a peer or a thread to reach an expected state.
const SETTLE: Duration = Duration::from_secs(20);

/// Semaphore numbers of layout version 1 (see src/layout.rs, `sem`), read
/// directly from the kernel by `killed_sender_posts_receivers_wake_semaphore`.
const RX_WAKE: i32 = 0;
const TX_ALIVE: i32 = 2;

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(60);
        let chan = Channel::open_id(common::env(ID).parse().unwrap()).expect("peer opens");
        match role {
            "send_then_hang" => send_then_hang(&chan),
            "recv_then_hang" => recv_then_hang(&chan),
            "drain" => drain(&chan),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Sends COUNT numbered messages, says so, and blocks until killed.
fn send_then_hang(chan: &Channel) {
    let mut tx = chan.sender().expect("peer takes the sender role");
    common::say("attached");
    let n: u64 = common::env(COUNT).parse().unwrap();
    for seq in 0..n {
        tx.send(&msg(seq)).expect("peer sends");
    }
    common::say(format!("sent {n}"));
    common::hang();
}

/// Receives COUNT numbered messages, says so, and blocks until killed
/// (without consuming anything more).
fn recv_then_hang(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    let n: u64 = common::env(COUNT).parse().unwrap();
    for seq in 0..n {
        let got = rx.recv().expect("peer receives");
        assert_eq!(common::message_number(&got), seq, "peer receiver");
    }
    common::say(format!("got {n}"));
    common::hang();
}

/// Receives until an error; reports every message number, then the error.
fn drain(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    common::receive_and_report(&mut rx);
}

fn spawn(role: &str, chan: &Channel, count: u64) -> Peer {
    common::spawn_peer(
        "peer",
        role,
        &[(ID, chan.id().to_string()), (COUNT, count.to_string())],
    )
}

/// Waits until thread `tid` of this process is parked on a semaphore.
fn wait_parked_thread(tid: i32, what: &str) {
    let pid = std::process::id() as i32;
    common::wait_for(SETTLE, what, || {
        common::task_blocked_in(pid, tid, common::SEM_WAIT_SYSCALLS)
    });
}

#[test]
fn parked_receiver_drains_then_disconnects_when_sender_is_killed() {
    const N: u64 = 500;
    let (chan, _guard) = common::private_channel(64 * 1024);
    let mut rx = chan.receiver().unwrap();
    let sender = spawn("send_then_hang", &chan, N);

    // The receiver runs on a thread of the test process so that it can be
    // parked in recv() while this thread kills the sender.
    let (about_to_park, parking) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let seqs: Vec<u64> = (0..N)
            .map(|_| common::message_number(&rx.recv().expect("receive a committed message")))
            .collect();
        about_to_park.send((common::gettid(), seqs)).unwrap();
        let end = rx.recv();
        let _ = done_tx.send((end, Instant::now()));
    });
    let (tid, seqs) = parking
        .recv_timeout(SETTLE)
        .expect("receiver got the sender's messages");
    assert_eq!(
        seqs,
        (0..N).collect::<Vec<_>>(),
        "messages in order, none lost"
    );
    wait_parked_thread(tid, "the receiver to park in recv()");

    let killed_at = Instant::now();
    sender.kill();
    let (end, woke_at) = done
        .recv_timeout(DEATH_NOTICE + SETTLE)
        .expect("the parked receiver returned after the sender was killed");
    let delay = woke_at - killed_at;
    eprintln!("death: SIGKILL of the sender -> receiver's Disconnected: {delay:?}");
    assert!(matches!(end, Err(Error::Disconnected)), "got {end:?}");
    assert!(delay < DEATH_NOTICE, "noticed the death after {delay:?}");
}

#[test]
fn committed_messages_outlive_a_killed_sender() {
    const N: u64 = 300;
    let (chan, _guard) = common::private_channel(64 * 1024);
    let mut rx = chan.receiver().unwrap();
    let mut sender = spawn("send_then_hang", &chan, N);
    sender.expect_line("attached");
    sender.expect_line(&format!("sent {N}"));
    sender.kill();

    for seq in 0..N {
        let got = rx.recv_timeout(SETTLE).expect("a committed message");
        assert_eq!(common::message_number(&got), seq);
    }
    let end = rx.recv_timeout(SETTLE);
    assert!(matches!(end, Err(Error::Disconnected)), "got {end:?}");
}

/// The mechanism behind the wake-up, seen in the kernel: a sender's death
/// posts the receiver's wake semaphore through the sender's SEM_UNDO. (A
/// parked side also re-checks every 500 ms for an `ipcrm -m`, so the timing
/// bound above alone cannot tell this wake-up from that re-check.)
#[test]
fn killed_sender_posts_receivers_wake_semaphore() {
    let (chan, _guard) = common::private_channel(4096);
    let _rx = chan.receiver().unwrap();
    let mut sender = spawn("send_then_hang", &chan, 0);
    sender.expect_line("attached");
    sender.expect_line("sent 0");
    let getval = |num| {
        // SAFETY: GETVAL takes no fourth argument.
        let v = unsafe { libc::semctl(chan.sem_id(), num, libc::GETVAL) };
        assert!(v >= 0, "GETVAL: {}", std::io::Error::last_os_error());
        v
    };
    assert_eq!(getval(TX_ALIVE), 1, "sender role held");
    assert_eq!(getval(RX_WAKE), 0, "nothing posted yet");
    sender.kill();
    assert_eq!(getval(TX_ALIVE), 0, "the kernel released the sender role");
    assert_eq!(
        getval(RX_WAKE),
        1,
        "the kernel posted the receiver's wake-up"
    );
}

#[test]
fn killed_receiver_disconnects_parked_sender_and_next_receiver_gets_the_rest() {
    const K: u64 = 10;
    let (chan, _guard) = common::private_channel(4096);
    let mut tx = chan.sender().unwrap();
    for seq in 0..K {
        tx.send(&msg(seq)).unwrap();
    }
    let mut first = spawn("recv_then_hang", &chan, K);
    first.expect_line(&format!("got {K}"));

    // Fill the ring: the first receiver consumes nothing more.
    let mut committed = K;
    loop {
        match tx.try_send(&msg(committed)) {
            Ok(()) => committed += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("try_send: {e}"),
        }
    }
    assert!(committed > K + 1, "the ring took messages ({committed})");

    let (about_to_park, parking) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        about_to_park.send(common::gettid()).unwrap();
        let end = tx.send(&msg(committed));
        let _ = done_tx.send((end, Instant::now()));
        // tx drops here: the sender leaves the channel.
    });
    let tid = parking.recv_timeout(SETTLE).unwrap();
    wait_parked_thread(tid, "the sender to park on the full ring");

    let killed_at = Instant::now();
    first.kill();
    let (end, woke_at) = done
        .recv_timeout(DEATH_NOTICE + SETTLE)
        .expect("the parked sender returned after the receiver was killed");
    let delay = woke_at - killed_at;
    eprintln!("death: SIGKILL of the receiver -> sender's Disconnected: {delay:?}");
    assert!(matches!(end, Err(Error::Disconnected)), "got {end:?}");
    assert!(delay < DEATH_NOTICE, "noticed the death after {delay:?}");

    // A new receiver gets exactly what was committed and not consumed.
    let mut next = spawn("drain", &chan, 0);
    let expected: Vec<String> = (K..committed).map(|s| s.to_string()).collect();
    next.expect_line(&format!("seqs {}", expected.join(",")));
    next.expect_line("end Disconnected");
    next.join();
}
