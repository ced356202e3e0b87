//! No wake-up is lost, in either form of the handshake (wait.rs): the
//! asymmetric one (`membarrier` before a park, no fence per message) that
//! channels use by default, and the symmetric one (`Options::membarrier
//! (false)`).
//!
//! The parent sends a message and at once waits for the reply, parking on
//! every wait (spin budget zero). The peer polls without parking and
//! replies after a random delay of 0 to 2 µs, so that its index store
//! keeps landing in the instant the parent announces that it will park:
//! the store-then-load race the handshake exists for. A lost wake-up
//! leaves the parent parked until its park slice runs out (500 ms), which
//! the header counts as `expired`; the test asserts that no park expired
//! and that the parent really parked.
//!
//! What it shows and what it does not: the replies do land in the race
//! window (in most rounds the parent finds the reply between its
//! announcement and its last check), and nothing is lost there in either
//! form. A handshake broken on purpose (the membarrier left out, so that
//! neither side orders its store before its load) was not caught by a lost
//! wake-up in three runs, only by the park count below: the store-load
//! reordering is too rare to show in 30,000 rounds. The proof of the
//! symmetric form is the loom model; the asymmetric form rests on the
//! argument in wait.rs.

mod common;

use std::time::{Duration, Instant};

use common::{Cleanup, Rng, say};
use shmchan::{Channel, Key, Options};

const DATA: &str = "SHMCHAN_TEST_DATA";
const ACK: &str = "SHMCHAN_TEST_ACK";
const SEED: &str = "SHMCHAN_TEST_SEED";
const ROUNDS: u32 = 30_000;
/// Longest delay before a reply, in nanoseconds.
const MAX_DELAY_NS: u64 = 2_000;
/// First byte of a message: a request, or the end of the test.
const REQUEST: u8 = 0;
const STOP: u8 = 1;

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(120);
        match role {
            "reply_after_random_delay" => reply_after_random_delay(),
            "without_membarrier" => without_membarrier(),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Polls DATA without parking; replies on ACK after 0 to 2 µs.
fn reply_after_random_delay() {
    let data = Channel::open_id(common::env(DATA).parse().unwrap()).unwrap();
    let ack = Channel::open_id(common::env(ACK).parse().unwrap()).unwrap();
    let mut rx = data.receiver().unwrap();
    let mut tx = ack.sender().unwrap();
    let mut rng = Rng(common::env(SEED).parse().unwrap());
    say("ready");
    loop {
        let msg = loop {
            match rx.try_recv() {
                Ok(msg) => break msg,
                Err(shmchan::Error::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("try_recv: {e}"),
            }
        };
        if msg != [REQUEST] {
            break;
        }
        busy_wait(Duration::from_nanos(rng.below(MAX_DELAY_NS + 1)));
        tx.send(&[REQUEST]).unwrap();
    }
    say("done");
}

fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn info(chan: &Channel) -> shmchan::admin::ChannelInfo {
    common::channel_info(chan.id())
}

fn replies_racing_the_park(membarrier: bool) {
    let opts = Options::new()
        .capacity(4096)
        .spin(Duration::ZERO)
        .membarrier(membarrier);
    let data = Channel::create(Key::PRIVATE, &opts).unwrap();
    let _data_guard = Cleanup::of(&data);
    let ack = Channel::create(Key::PRIVATE, &opts).unwrap();
    let _ack_guard = Cleanup::of(&ack);
    assert_eq!(
        info(&ack).membarrier,
        membarrier,
        "this kernel (4.16 or later, no seccomp filter here) allows membarrier"
    );
    let mut tx = data.sender().unwrap();
    let mut rx = ack.receiver().unwrap();
    let seed = std::env::var("WAKEUPS_SEED").unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (t.as_nanos() as u64 | 1).to_string()
    });
    eprintln!("replies_racing_the_park(membarrier {membarrier}): WAKEUPS_SEED={seed}");
    let mut peer = common::spawn_peer(
        "peer",
        "reply_after_random_delay",
        &[
            (DATA, data.id().to_string()),
            (ACK, ack.id().to_string()),
            (SEED, seed),
        ],
    );
    peer.expect_line("ready");
    let mut buf = Vec::new();
    for _ in 0..ROUNDS {
        tx.send(&[REQUEST]).unwrap();
        let n = rx.recv_into(&mut buf).unwrap();
        assert_eq!(buf[..n], [REQUEST]);
    }
    tx.send(&[STOP]).unwrap();
    peer.expect_line("done");
    peer.join();

    let a = info(&ack);
    eprintln!("replies: sent {:?}, received {:?}", a.sent, a.received);
    assert_eq!(
        a.received.expired, 0,
        "{} parks ran out: wake-ups were lost",
        a.received.expired
    );
    // The point of the test is the park path: the parent announced and
    // parked for a good share of the replies.
    assert!(
        a.received.parks >= u64::from(ROUNDS) / 20,
        "the parent parked only {} times",
        a.received.parks
    );
}

#[test]
fn no_wake_up_lost_with_membarrier() {
    replies_racing_the_park(true);
}

#[test]
fn no_wake_up_lost_with_a_fence_per_message() {
    replies_racing_the_park(false);
}

/// A peer whose `membarrier` calls fail with EPERM (a seccomp filter on its
/// only working thread, as a sandbox might set).
fn without_membarrier() {
    common::seccomp::fail_on_this_thread(&[libc::SYS_membarrier], None, libc::EPERM);
    // A channel made for membarrier: this process could not take part in
    // its handshake, so it may not take a role.
    let fast = Channel::open_id(common::env(DATA).parse().unwrap()).unwrap();
    match fast.sender() {
        Err(shmchan::Error::PermissionDenied { call, .. }) if call.starts_with("membarrier") => {
            say(format!("refused: {call}"));
        }
        other => say(format!("not refused: {other:?}")),
    }
    // One made without it: this process can use it.
    let plain = Channel::open_id(common::env(ACK).parse().unwrap()).unwrap();
    plain.sender().unwrap().send(b"plain").unwrap();
    // One this process makes: it falls back to a fence per message, and a
    // normal peer (the parent) can use it.
    let own = Channel::create(Key::PRIVATE, &Options::new().capacity(4096)).unwrap();
    let _guard = Cleanup::of(&own);
    let mut rx = own.receiver().unwrap();
    rx.set_spin(Duration::ZERO);
    say(format!(
        "own {} membarrier {}",
        own.id(),
        info(&own).membarrier
    ));
    let msg = rx.recv().unwrap();
    say(format!("got {}", String::from_utf8_lossy(&msg)));
}

#[test]
fn a_process_without_membarrier() {
    let fast = Channel::create(Key::PRIVATE, &Options::new().capacity(4096)).unwrap();
    let _fast_guard = Cleanup::of(&fast);
    let plain_opts = Options::new().capacity(4096).membarrier(false);
    let plain = Channel::create(Key::PRIVATE, &plain_opts).unwrap();
    let _plain_guard = Cleanup::of(&plain);
    assert!(info(&fast).membarrier && !info(&plain).membarrier);
    let mut plain_rx = plain.receiver().unwrap();
    let mut peer = common::spawn_peer(
        "peer",
        "without_membarrier",
        &[(DATA, fast.id().to_string()), (ACK, plain.id().to_string())],
    );
    peer.expect_line("refused: membarrier(REGISTER_GLOBAL_EXPEDITED)");
    assert_eq!(plain_rx.recv().unwrap(), b"plain");
    let line = peer.next_line().expect("the peer names its channel");
    let (id, flag) = line
        .strip_prefix("own ")
        .and_then(|rest| rest.split_once(" membarrier "))
        .unwrap_or_else(|| panic!("peer said {line:?}"));
    assert_eq!(flag, "false", "made without membarrier");
    let own = Channel::open_id(id.parse().unwrap()).unwrap();
    // Wait until the peer is parked, so that the send must wake it.
    common::wait_for(Duration::from_secs(10), "the peer to park", || {
        common::parked_on_sem(peer.pid())
    });
    own.sender().unwrap().send(b"woken").unwrap();
    peer.expect_line("got woken");
    drop(own);
    peer.join();
}
