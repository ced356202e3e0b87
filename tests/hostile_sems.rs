//! A third process that rewrites a live channel's semaphores (which no
//! honest party does: `SETVAL` on a live set is forbidden) must not make a
//! party's drop block for ever. Peers are separate processes.

mod common;

use common::{GateReader, env, peer_main, private_channel, say, spawn_peer};
use shmchan::Channel;

const ENTRY: &str = "peer_entry";
/// `TX_ALIVE` in the channel's set (docs/layout.md, section 4).
const TX_ALIVE: libc::c_int = 2;
/// `RX_ALIVE`.
const RX_ALIVE: libc::c_int = 3;

#[test]
fn peer_entry() {
    peer_main(|role| {
        // A peer that hangs is killed and fails the test, never blocks it.
        common::peer_watchdog(20);
        let id: i32 = env("SHMID").parse().expect("SHMID");
        let gate = GateReader::open(&env("GATE"));
        let chan = Channel::open_id(id).expect("open");
        match role {
            "sender" => {
                let tx = chan.sender().expect("sender");
                say("attached");
                gate.wait();
                drop(tx);
            }
            "receiver" => {
                let rx = chan.receiver().expect("receiver");
                say("attached");
                gate.wait();
                drop(rx);
            }
            other => panic!("unknown role {other}"),
        }
        say("dropped");
    });
}

/// Sets semaphore `num` of set `semid` to 0, as a hostile process would.
fn zero(semid: i32, num: libc::c_int) {
    // SAFETY: SETVAL takes the value as the variadic int argument.
    let rc = unsafe { libc::semctl(semid, num, libc::SETVAL, 0) };
    assert_eq!(rc, 0, "SETVAL: {}", std::io::Error::last_os_error());
}

fn drop_after_zeroing(role: &str, alive: libc::c_int) {
    let (chan, _guard) = private_channel(4096);
    let mut gate = common::Gate::new();
    let mut peer = spawn_peer(
        ENTRY,
        role,
        &[("SHMID", chan.id().to_string()), ("GATE", gate.env_value())],
    );
    peer.expect_line("attached");
    zero(chan.sem_id(), alive);
    gate.open();
    peer.expect_line("dropped");
    peer.join();
}

#[test]
fn a_sender_whose_alive_semaphore_was_zeroed_still_drops() {
    drop_after_zeroing("sender", TX_ALIVE);
}

#[test]
fn a_receiver_whose_alive_semaphore_was_zeroed_still_drops() {
    drop_after_zeroing("receiver", RX_ALIVE);
}
