//! `Receiver::iter` ends at `Disconnected` as std's does, and keeps any
//! other error that ends it for the caller; a timeout too long for an
//! `Instant` waits without a deadline. Peers are separate processes.

mod common;

use std::time::Duration;

use common::{env, peer_main, private_channel, say, spawn_peer};
use shmchan::{Channel, Error};

const ENTRY: &str = "peer_entry";

#[test]
fn peer_entry() {
    peer_main(|role| {
        let id: i32 = env("SHMID").parse().expect("SHMID");
        match role {
            "remover" => {
                let chan = Channel::open_id(id).expect("open");
                chan.remove().expect("remove");
                say("removed");
            }
            "scribbler" => {
                scribble_tail(id);
                say("scribbled");
            }
            "sender" => {
                let chan = Channel::open_id(id).expect("open");
                let mut tx = chan.sender().expect("sender");
                for msg in env("MESSAGES").split(',') {
                    tx.send(msg.as_bytes()).expect("send");
                }
            }
            "taker" => {
                let chan = Channel::open_id(id).expect("open");
                let mut rx = chan.receiver().expect("receiver");
                let msg = rx.recv().expect("recv");
                say(msg.len());
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// A hostile process: sets the sender's `tail` far beyond any message.
fn scribble_tail(shmid: i32) {
    // SAFETY: attaching a segment we were given the id of; null address
    // and no flags: the kernel chooses where.
    let base = unsafe { libc::shmat(shmid, std::ptr::null(), 0) };
    assert_ne!(base as isize, -1, "shmat");
    // SAFETY: the segment is larger than a header, and the tail field is an
    // 8-aligned u64 at common::layout::TAIL_AT; written atomically as the sender would.
    unsafe {
        let tail = &*(base.cast::<u8>().add(common::layout::TAIL_AT)
            as *const std::sync::atomic::AtomicU64);
        tail.store(1 << 40, std::sync::atomic::Ordering::Release);
        libc::shmdt(base);
    }
}

/// A sender process that sends `messages` (comma-separated) and exits.
fn spawn_sender(chan: &Channel, messages: &str) -> common::Peer {
    let env = [
        ("SHMID", chan.id().to_string()),
        ("MESSAGES", messages.to_owned()),
    ];
    spawn_peer(ENTRY, "sender", &env)
}

#[test]
fn iter_ends_at_disconnected_without_an_error() {
    let (chan, _guard) = private_channel(4096);
    let mut rx = chan.receiver().expect("receiver");
    let peer = spawn_sender(&chan, "a,bb,ccc");
    let mut iter = rx.iter();
    let got: Vec<Vec<u8>> = iter.by_ref().collect();
    assert_eq!(got, [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
    assert!(iter.take_error().is_none(), "Disconnected is no error");
    peer.join();
}

#[test]
fn iter_keeps_removed_for_the_caller() {
    let (chan, _guard) = private_channel(4096);
    let mut rx = chan.receiver().expect("receiver");
    let mut tx = chan.sender().expect("sender");
    tx.send(b"one").expect("send");
    tx.send(b"two").expect("send");
    let mut iter = rx.iter();
    assert_eq!(iter.next().as_deref(), Some(&b"one"[..]));
    let mut peer = spawn_peer(ENTRY, "remover", &[("SHMID", chan.id().to_string())]);
    peer.expect_line("removed");
    peer.join();
    assert_eq!(iter.next(), None, "a removed channel ends the iteration");
    match iter.take_error() {
        Some(Error::Removed { .. }) => {}
        other => panic!("expected Removed, got {other:?}"),
    }
    assert!(iter.take_error().is_none(), "taken once");
}

#[test]
fn iter_keeps_corrupted_for_the_caller() {
    let (chan, _guard) = private_channel(4096);
    let mut rx = chan.receiver().expect("receiver");
    let mut peer = spawn_peer(ENTRY, "scribbler", &[("SHMID", chan.id().to_string())]);
    peer.expect_line("scribbled");
    peer.join();
    let mut iter = rx.iter();
    assert_eq!(iter.next(), None, "a corrupt ring ends the iteration");
    match iter.take_error() {
        Some(Error::Corrupted { what, .. }) => assert!(what.contains("tail"), "{what}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn recv_timeout_beyond_any_instant_waits_without_a_deadline() {
    let (chan, _guard) = private_channel(4096);
    let mut rx = chan.receiver().expect("receiver");
    let peer = spawn_sender(&chan, "late");
    let msg = rx
        .recv_timeout(Duration::MAX)
        .expect("the sender's message");
    assert_eq!(msg, b"late");
    peer.join();
    match rx.recv_timeout(Duration::MAX) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[test]
fn send_timeout_beyond_any_instant_waits_without_a_deadline() {
    let (chan, _guard) = private_channel(4096);
    let mut tx = chan.sender().expect("sender");
    let msg = [7u8; 1000];
    while tx.try_send(&msg).is_ok() {}
    let mut peer = spawn_peer(ENTRY, "taker", &[("SHMID", chan.id().to_string())]);
    tx.send_timeout(&msg, Duration::MAX)
        .expect("room made by the receiver");
    peer.expect_line("1000");
    peer.join();
}
