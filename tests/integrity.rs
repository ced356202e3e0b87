//! Order and integrity: a million messages of random sizes, plus thousands
//! aimed at the wrap point (ending exactly at it, one byte either side) and
//! at `max_message_len()`, from a sender process to this one, each checked
//! for its sequence number, its length and every byte.

mod common;

use common::{RingPos, Rng, env, peer_main, spawn_peer};
use shmchan::{Channel, Error};

const CAPACITY: usize = 64 * 1024;
const RANDOM: u64 = 1_000_000;
/// Every SPECIAL_EVERY-th message is aimed at the wrap point or the maximum.
const SPECIAL_EVERY: u64 = 250;

/// The sizes both sides agree on: a deterministic PRNG for the random ones,
/// and a simulation of the ring position (frames are 8 + len rounded up to
/// 8; a frame that does not fit before the end is preceded by padding) for
/// the ones aimed at the wrap point.
struct Sizes {
    rng: Rng,
    pos: RingPos,
    count: u64,
    max: u64,
}

impl Sizes {
    fn new(max: usize) -> Sizes {
        Sizes {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            pos: RingPos::new(CAPACITY),
            count: 0,
            max: max as u64,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng.below(4097)
    }

    fn special(&mut self, kind: u64) -> u64 {
        let to_end = self.pos.to_end();
        let exact = to_end - 8; // payload that ends the frame at the wrap point
        match kind {
            0 => exact,
            1 => exact.saturating_sub(1),
            2 => (exact + 1).min(self.max),
            _ => self.max,
        }
    }

    fn advance(&mut self, len: u64) {
        self.pos.advance(len);
    }
}

impl Iterator for Sizes {
    type Item = (u64, usize);

    fn next(&mut self) -> Option<(u64, usize)> {
        let total = RANDOM + RANDOM / SPECIAL_EVERY;
        if self.count == total {
            return None;
        }
        let seq = self.count;
        self.count += 1;
        let len = if seq % (SPECIAL_EVERY + 1) == SPECIAL_EVERY {
            self.special((seq / (SPECIAL_EVERY + 1)) % 4)
        } else {
            self.random()
        } % (self.max + 1);
        self.advance(len);
        Some((seq, len as usize))
    }
}

/// Fills a message: sequence number and checksum first (where they fit),
/// then bytes derived from the sequence number.
fn fill(seq: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31) ^ (i as u8);
    }
    if buf.len() >= 16 {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        let sum = checksum(&buf[16..]);
        buf[8..16].copy_from_slice(&sum.to_le_bytes());
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn verify(seq: u64, len: usize, got: &[u8]) {
    assert_eq!(got.len(), len, "message {seq}: wrong length");
    if len >= 16 {
        let got_seq = u64::from_le_bytes(got[..8].try_into().expect("8 bytes"));
        assert_eq!(got_seq, seq, "gap or duplicate");
        let sum = u64::from_le_bytes(got[8..16].try_into().expect("8 bytes"));
        assert_eq!(sum, checksum(&got[16..]), "message {seq}: checksum");
    }
    let mut want = vec![0; len];
    fill(seq, &mut want);
    assert!(got == want.as_slice(), "message {seq}: corrupt bytes");
}

#[test]
fn peer() {
    peer_main(|role| {
        assert_eq!(role, "sender");
        let chan = Channel::open_id(env("SHMID").parse().expect("shmid")).expect("open");
        let mut tx = chan.sender().expect("sender role");
        let mut buf = vec![0u8; tx.max_message_len()];
        for (seq, len) in Sizes::new(tx.max_message_len()) {
            if seq % 2 == 0 {
                fill(seq, &mut buf[..len]);
                tx.send(&buf[..len]).expect("send");
            } else {
                let mut grant = tx.reserve(len).expect("reserve");
                fill(seq, &mut grant);
                grant.commit().expect("commit");
            }
        }
    });
}

#[test]
fn a_million_messages_arrive_whole_and_in_order() {
    let (chan, _cleanup) = common::private_channel(CAPACITY);
    assert_eq!(chan.capacity(), CAPACITY);
    let max = chan.max_message_len();
    assert_eq!(max, CAPACITY - 8);
    let mut rx = chan.receiver().expect("receiver role");
    let sender = spawn_peer("peer", "sender", &[("SHMID", chan.id().to_string())]);
    let mut buf = Vec::new();
    let (mut wrap_aimed, mut max_sized) = (0, 0);
    for (seq, len) in Sizes::new(max) {
        if seq % 3 == 0 {
            let msg = rx.recv_ref().expect("recv_ref");
            verify(seq, len, &msg);
        } else {
            rx.recv_into(&mut buf).expect("recv_into");
            verify(seq, len, &buf);
        }
        if seq % (SPECIAL_EVERY + 1) == SPECIAL_EVERY {
            wrap_aimed += 1;
            max_sized += usize::from(len == max);
        }
    }
    assert!(wrap_aimed >= 4000, "only {wrap_aimed} wrap-point messages");
    assert!(max_sized >= 1000, "only {max_sized} maximum-size messages");
    sender.join();
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
}
