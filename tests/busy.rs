//! Removing a channel in use: `admin::remove` without `force` refuses it
//! with `Error::Busy`, naming the channel and how many parties hold it,
//! while a party in another process holds it.

mod common;

use common::{Cleanup, TempKey, env, peer_main, spawn_peer};
use shmchan::admin;
use shmchan::{Channel, Error, Options};

#[test]
fn peer() {
    peer_main(|role| {
        common::peer_watchdog(60);
        assert_eq!(role, "receiver");
        let chan = Channel::open_id(env("SHMID").parse().expect("shmid")).expect("open");
        let _rx = chan.receiver().expect("receiver");
        common::say("attached");
        common::hang();
    });
}

#[test]
fn removing_a_channel_held_by_another_process_is_busy() {
    let tk = TempKey::new();
    let chan = Channel::create(tk.key, &Options::new()).expect("create");
    let _cleanup = Cleanup::of(&chan);
    let shmid = chan.id();
    let mut peer = spawn_peer("peer", "receiver", &[("SHMID", shmid.to_string())]);
    peer.expect_line("attached");
    drop(chan); // only the peer's channel and receiver hold it now

    let err = admin::remove(shmid, false).expect_err("removed a channel in use");
    let Error::Busy { channel, parties } = &err else {
        panic!("expected Busy, got {err:?}");
    };
    assert_eq!(*parties, 2, "the peer's channel and receiver");
    assert!(
        channel.contains(&format!("{:#010x}", tk.key.raw() as u32)),
        "{channel}"
    );
    assert!(err.to_string().contains("in use by 2 parties"), "{err}");
    assert!(common::shm_exists(shmid), "a refused removal removed it");

    admin::remove(shmid, true).expect("forced removal");
    peer.kill(); // its detach lets the segment go
    assert!(!common::shm_exists(shmid), "a forced removal left it");
}

#[test]
fn busy_counts_its_parties_in_words() {
    let busy = |parties| Error::Busy {
        channel: "key 0x00000001".into(),
        parties,
    };
    assert_eq!(busy(1).to_string(), "key 0x00000001 is in use by 1 party");
    assert_eq!(busy(3).to_string(), "key 0x00000001 is in use by 3 parties");
}
