//! Inspection and removal without joining: `admin::inspect`, `list`,
//! `remove`, with the channel's parties in another process.

mod common;

use common::{channel_info, env, peer_main, spawn_peer};
use shmchan::admin::{self, Kind, Presence, State};
use shmchan::{Channel, Error};

#[test]
fn peer() {
    peer_main(|role| {
        let chan = Channel::open_id(env("SHMID").parse().expect("shmid")).expect("open");
        assert_eq!(role, "sender");
        let mut tx = chan.sender().expect("sender");
        tx.send(b"queued").expect("send");
        common::say("sent");
        std::thread::sleep(std::time::Duration::from_secs(60));
    });
}

#[test]
fn inspect_follows_roles_and_is_not_a_party() {
    let (chan, _cleanup) = common::private_channel(8192);
    let info = channel_info(chan.id());
    assert_eq!((info.capacity, info.max_message), (8192, 8184));
    assert_eq!(
        (info.sender, info.receiver),
        (Presence::Never, Presence::Never)
    );
    assert_eq!((info.state.clone(), info.parties), (State::Ok, Some(1)));

    let mut peer = spawn_peer("peer", "sender", &[("SHMID", chan.id().to_string())]);
    peer.expect_line("sent");
    let info = channel_info(chan.id());
    assert_eq!(info.sender, Presence::Attached);
    assert_eq!((info.queued, info.sent.messages), (16, 1));
    assert!(
        admin::list()
            .expect("list")
            .iter()
            .any(|s| s.shmid == chan.id())
    );

    peer.kill();
    let info = channel_info(chan.id());
    assert_eq!(info.sender, Presence::Gone);
    assert_eq!(info.parties, Some(1), "the killed peer is uncounted");

    // Inspection attaches are not parties: dropping the last handle still
    // leaves only because a message is queued.
    let (shmid, semid) = (chan.id(), chan.sem_id());
    drop(chan);
    let info = channel_info(shmid);
    assert_eq!((info.state, info.queued), (State::Stale, 16));
    admin::remove(shmid, false).expect("remove a stale channel");
    assert!(!common::shm_exists(shmid) && !common::sem_exists(semid));
}

#[test]
fn remove_refuses_live_channels_unless_forced() {
    let (chan, _cleanup) = common::private_channel(4096);
    let mut rx = chan.receiver().expect("receiver");
    match admin::remove(chan.id(), false) {
        Err(Error::Busy { parties, .. }) => assert_eq!(parties, 2),
        other => panic!("removed a live channel: {other:?}"),
    }
    admin::remove(chan.id(), true).expect("forced removal");
    assert!(matches!(rx.try_recv(), Err(Error::Removed { .. })));
}

#[test]
fn foreign_segments_are_marked_and_never_removed() {
    // SAFETY: plain shmget of a private 1 KiB segment.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 1024, 0o600) };
    assert!(id >= 0);
    let _guard = common::Cleanup {
        shmid: id,
        semid: -1,
    };
    assert!(matches!(
        admin::inspect(id).expect("inspect").kind,
        Kind::Foreign { .. }
    ));
    assert!(matches!(
        admin::remove(id, true),
        Err(Error::NotAChannel { .. })
    ));
    assert!(common::shm_exists(id));
}
