//! Typed values (features `serde` and `bytemuck`): structs through
//! `send_value` / `recv_value` and plain-old-data through `send_pod` /
//! `recv_pod` / `RecvGuard::as_pod`, with the peer a separate process
//! (this test binary run again, see `peer`) wherever the claim is about
//! processes.
//!
//! 1. Structs with a `String` and `Vec`s inside, many of them and some
//!    whose encoding is the largest message the ring carries, go to
//!    another process and come back transformed.
//! 2. A message that does not decode (raw bytes, bytes left over after a
//!    value, an empty message) is `Error::Decode` naming the type, in every
//!    form of the call, and is consumed: the next message is received.
//! 3. A value too large for the ring is `MessageTooLarge`, a failing
//!    `Serialize` is `Encode`; neither sends anything.
//! 4. Pods go to another process and come back; a payload of the wrong
//!    length is `PodMismatch` (consumed by `recv_pod`, not by `as_pod`); a
//!    type aligned to 16 is refused by every call, wherever the payload
//!    lies; `as_pod` reads in place, at an 8-aligned address.
//! 5. examples/typed.rs, run as a person runs it, exchanges structs
//!    between its two processes.

mod common;

use std::cell::Cell;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use common::{Cleanup, env, private_channel, say, spawn_peer};
use serde::{Deserialize, Serialize};
use shmchan::{Channel, Error, Key, Options, Receiver, Sender};

/// Env vars the peers read: the channel they receive on and the one they
/// answer on.
const IN: &str = "SHMCHAN_TYPED_IN";
const OUT: &str = "SHMCHAN_TYPED_OUT";

/// Ring bytes of the cross-process tests: small, so that values wrap and
/// the largest ones fill the ring.
const RING: usize = 16 * 1024;
/// Values per direction in the cross-process tests.
const COUNT: u64 = 3000;

// ---------------------------------------------------------------- types

/// A struct with what serde users send: a `String`, `Vec`s, an enum, an
/// `Option`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    seq: u64,
    name: String,
    data: Vec<u8>,
    weights: Vec<f32>,
    kind: Kind,
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Kind {
    Small,
    Large { parts: u16 },
}

impl Record {
    /// Record `seq` with `len` bytes of data derived from it.
    fn new(seq: u64, len: usize) -> Record {
        Record {
            seq,
            name: format!("record-{seq}"),
            data: (0..len)
                .map(|i| (seq as u8).wrapping_add(i as u8))
                .collect(),
            weights: (0..seq % 5).map(|i| i as f32 * 0.5).collect(),
            kind: if len > 1000 {
                Kind::Large {
                    parts: (len / 1000) as u16,
                }
            } else {
                Kind::Small
            },
            note: (seq % 3 == 0).then(|| "every third".to_owned()),
        }
    }

    /// Record `seq` whose postcard encoding is exactly `target` bytes, or
    /// one byte less where the length prefix's varint makes `target`
    /// itself unreachable.
    fn of_encoded_len(seq: u64, target: usize) -> Record {
        let mut r = Record::new(seq, 0);
        let base = encoded_len(&r);
        let mut len = target - base;
        loop {
            r.data = Record::new(seq, len).data;
            r.kind = Kind::Large { parts: 1 };
            let n = encoded_len(&r);
            if n <= target {
                assert!(n + 1 >= target, "encoded {n} bytes, aiming at {target}");
                return r;
            }
            len -= n - target;
        }
    }

    /// What the echoing peer answers: the name in capitals, the data
    /// reversed, the weights doubled; the same encoded length.
    fn answer(&self) -> Record {
        Record {
            name: self.name.to_uppercase(),
            data: self.data.iter().rev().copied().collect(),
            weights: self.weights.iter().map(|w| w * 2.0).collect(),
            ..self.clone()
        }
    }
}

fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).expect("measure a value")
}

/// The length of record `seq` in the cross-process test: mostly small and
/// varied; every 100th is the largest message the ring carries (or one
/// byte less), every 100th + 1 a few bytes less than that.
fn planned(seq: u64, max: usize) -> Record {
    match seq % 100 {
        50 => Record::of_encoded_len(seq, max),
        51 => Record::of_encoded_len(seq, max - 7),
        _ => Record::new(seq, (seq as usize * 37) % 700),
    }
}

/// A plain-old-data value as a C struct: no padding, alignment 8.
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    qty: u32,
    side: u8,
    venue: [u8; 3],
}

impl Tick {
    fn new(seq: u64) -> Tick {
        Tick {
            seq,
            price: seq as f64 * 0.25,
            qty: (seq * 7) as u32,
            side: (seq % 2) as u8,
            venue: *b"XNY",
        }
    }

    /// What the echoing peer answers.
    fn answer(&self) -> Tick {
        Tick {
            price: -self.price,
            qty: self.qty + 1,
            ..*self
        }
    }
}

/// A type aligned to 16 bytes: payloads are only 8-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
#[repr(C, align(16))]
struct Wide {
    lo: u64,
    hi: u64,
}

// ---------------------------------------------------------------- peers

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(120);
        let open = |var| Channel::open_id(env(var).parse().expect("shmid")).expect("peer opens");
        match role {
            "echo_values" => echo_values(&open(IN), &open(OUT)),
            "echo_values_async" => echo_values_async(&open(IN), &open(OUT)),
            "echo_pods" => echo_pods(&open(IN), &open(OUT)),
            "undecodable" => undecodable(&open(OUT)),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Receives records until the sender leaves, answering each.
fn echo_values(inbound: &Channel, outbound: &Channel) {
    let mut rx = inbound.receiver().expect("receiver");
    let mut tx = outbound.sender().expect("sender");
    let mut first = None;
    let mut n = 0u64;
    loop {
        match rx.recv_value_from::<Record>() {
            Ok((rec, from)) => {
                assert_eq!(*first.get_or_insert(from), from, "one sender");
                assert_eq!(rec.seq, n, "in order");
                tx.send_value(&rec.answer()).expect("answer");
                n += 1;
            }
            Err(Error::Disconnected) => break,
            Err(e) => panic!("peer: recv_value_from: {e}"),
        }
    }
    say(format!("echoed {n}"));
}

/// [`echo_values`] with the async calls, on a current-thread runtime.
fn echo_values_async(inbound: &Channel, outbound: &Channel) {
    let mut rx = inbound.receiver().expect("receiver");
    let mut tx = outbound.sender().expect("sender");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let n = rt.block_on(async {
        let (mut n, mut first) = (0u64, None);
        loop {
            match rx.recv_value_from_async::<Record>().await {
                Ok((rec, from)) => {
                    assert_eq!(*first.get_or_insert(from), from, "one sender");
                    assert_eq!(rec.seq, n, "in order");
                    tx.send_value_async(&rec.answer()).await.expect("answer");
                    n += 1;
                }
                Err(Error::Disconnected) => return n,
                Err(e) => panic!("peer: recv_value_from_async: {e}"),
            }
        }
    });
    say(format!("echoed {n}"));
}

/// Receives ticks until the sender leaves, answering each: even ones read
/// by copy, odd ones in place.
fn echo_pods(inbound: &Channel, outbound: &Channel) {
    let mut rx = inbound.receiver().expect("receiver");
    let mut tx = outbound.sender().expect("sender");
    let mut n = 0u64;
    loop {
        let tick = if n % 2 == 0 {
            match rx.recv_pod::<Tick>() {
                Ok(t) => t,
                Err(Error::Disconnected) => break,
                Err(e) => panic!("peer: recv_pod: {e}"),
            }
        } else {
            match rx.recv_ref() {
                Ok(msg) => *msg.as_pod::<Tick>().expect("a tick in place"),
                Err(Error::Disconnected) => break,
                Err(e) => panic!("peer: recv_ref: {e}"),
            }
        };
        assert_eq!(tick, Tick::new(n), "in order, whole");
        tx.send_pod(&tick.answer()).expect("answer");
        n += 1;
    }
    say(format!("echoed {n}"));
}

/// Sends, in this order: raw bytes that are no record, record 1, record 2
/// followed by 3 more bytes, record 3, an empty message, record 4, record
/// 5; then says `sent`.
fn undecodable(outbound: &Channel) {
    let mut tx = outbound.sender().expect("sender");
    tx.send(b"\xff\xff\xff").expect("raw");
    tx.send_value(&Record::new(1, 10)).expect("record 1");
    let mut two = postcard_bytes(&Record::new(2, 10));
    two.extend_from_slice(b"abc");
    tx.send(&two).expect("record 2 and more");
    tx.send_value(&Record::new(3, 10)).expect("record 3");
    tx.send(b"").expect("empty");
    tx.send_value(&Record::new(4, 10)).expect("record 4");
    tx.send_value(&Record::new(5, 10)).expect("record 5");
    say("sent");
}

/// `value`'s postcard encoding.
fn postcard_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = vec![0; encoded_len(value)];
    postcard::to_slice(value, &mut buf).expect("encode");
    buf
}

/// Two private channels (to the peer, from the peer) with their guards,
/// and the env that names them for the peer.
fn two_channels() -> (Channel, Channel, [Cleanup; 2], Vec<(&'static str, String)>) {
    let (to_peer, g1) = private_channel(RING);
    let (from_peer, g2) = private_channel(RING);
    let env = vec![
        (IN, to_peer.id().to_string()),
        (OUT, from_peer.id().to_string()),
    ];
    (to_peer, from_peer, [g1, g2], env)
}

// ---------------------------------------------------------------- 1

#[test]
fn structs_cross_processes_both_ways() {
    let (to_peer, from_peer, _guards, vars) = two_channels();
    let mut rx = from_peer.receiver().expect("receiver");
    let tx = to_peer.sender().expect("sender");
    let max = tx.max_message_len();
    let mut peer = spawn_peer("peer", "echo_values", &vars);
    // The values go out from a thread while this one takes the answers, so
    // that neither ring's fill stops the other.
    let sending = std::thread::spawn(move || {
        let mut tx = tx;
        let mut largest = 0;
        for seq in 0..COUNT {
            let rec = planned(seq, max);
            largest = largest.max(encoded_len(&rec));
            tx.send_value(&rec).expect("send_value");
        }
        largest // dropping tx disconnects it: the peer ends
    });
    for seq in 0..COUNT {
        let got: Record = rx.recv_value().expect("recv_value");
        assert_eq!(got, planned(seq, max).answer(), "answer {seq}");
    }
    let largest = sending.join().expect("sending thread");
    assert_eq!(largest, max, "the largest value filled a message");
    assert_eq!(
        peer.next_line().as_deref(),
        Some(&*format!("echoed {COUNT}"))
    );
    peer.join();
    assert!(matches!(
        rx.recv_value::<Record>(),
        Err(Error::Disconnected)
    ));
}

/// Point 1 with the async calls on both sides: `send_value_async` and
/// `recv_value_async` here, `recv_value_from_async` and
/// `send_value_async` in the peer.
#[test]
fn structs_cross_processes_both_ways_async() {
    const N: u64 = 2_000;
    let (to_peer, from_peer, _guards, vars) = two_channels();
    let mut rx = from_peer.receiver().expect("receiver");
    let mut tx = to_peer.sender().expect("sender");
    let max = tx.max_message_len();
    let mut peer = spawn_peer("peer", "echo_values_async", &vars);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Sending and receiving in one task, two values at a time (each
        // at most a quarter of the largest message), so that neither
        // ring fills while the other side waits.
        for start in (0..N).step_by(2) {
            let end = (start + 2).min(N);
            for seq in start..end {
                tx.send_value_async(&planned(seq, max / 4))
                    .await
                    .expect("send_value_async");
            }
            for seq in start..end {
                let got: Record = rx.recv_value_async().await.expect("recv_value_async");
                assert_eq!(got, planned(seq, max / 4).answer(), "answer {seq}");
            }
        }
    });
    drop(tx);
    assert_eq!(peer.next_line().as_deref(), Some(&*format!("echoed {N}")));
    peer.join();
}

// ---------------------------------------------------------------- 2

/// The async forms consume a message that does not decode, as the
/// blocking ones do.
#[test]
fn a_message_that_does_not_decode_is_consumed_by_the_async_forms() {
    let (from_peer, _guard) = private_channel(RING);
    let mut rx = from_peer.receiver().expect("receiver");
    let mut peer = spawn_peer("peer", "undecodable", &[(OUT, from_peer.id().to_string())]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let e = rx
            .recv_value_async::<Record>()
            .await
            .expect_err("raw bytes");
        assert_decode_error::<Record>(&e, "");
        let next = rx.recv_value_async::<Record>().await.expect("next");
        assert_eq!(next, Record::new(1, 10));
        let e = rx
            .recv_value_from_async::<Record>()
            .await
            .expect_err("left over");
        assert_decode_error::<Record>(&e, "3 bytes left over");
        let (next, _) = rx.recv_value_from_async::<Record>().await.expect("next");
        assert_eq!(next, Record::new(3, 10));
    });
    peer.expect_line("sent");
    peer.join();
}

#[test]
fn a_message_that_does_not_decode_is_an_error_and_consumed() {
    let (from_peer, _guard) = private_channel(RING);
    let mut rx = from_peer.receiver().expect("receiver");
    let mut peer = spawn_peer("peer", "undecodable", &[(OUT, from_peer.id().to_string())]);
    let wait = Duration::from_secs(30);

    // Raw bytes: no Record. The blocking form.
    let e = rx.recv_value::<Record>().expect_err("raw bytes");
    assert_decode_error::<Record>(&e, "");
    assert_eq!(rx.recv_value::<Record>().expect("next"), Record::new(1, 10));

    // A record and 3 bytes more: the timeout form.
    let e = rx
        .recv_value_timeout::<Record>(wait)
        .expect_err("left over");
    assert_decode_error::<Record>(&e, "3 bytes left over");
    let next = rx.recv_value_timeout::<Record>(wait).expect("next");
    assert_eq!(next, Record::new(3, 10));

    // An empty message: the try form, once everything is queued.
    peer.expect_line("sent");
    let e = rx.try_recv_value::<Record>().expect_err("empty");
    assert_decode_error::<Record>(&e, "");
    assert_eq!(
        rx.try_recv_value::<Record>().expect("next"),
        Record::new(4, 10)
    );

    // `recv_value_from` consumes a bad message too: record 5 read as a
    // String is a length varint of 5 and the bytes after it, with bytes
    // left over.
    let e = rx
        .recv_value_from::<String>()
        .expect_err("a record is no String");
    assert_decode_error::<String>(&e, "");
    peer.join();
    assert!(matches!(
        rx.recv_value::<Record>(),
        Err(Error::Disconnected)
    ));
}

/// `e` is `Decode` naming `T`, with `cause` in its cause.
fn assert_decode_error<T>(e: &Error, cause: &str) {
    match e {
        Error::Decode {
            type_name,
            cause: c,
        } => {
            assert_eq!(*type_name, std::any::type_name::<T>());
            assert!(c.contains(cause), "cause {c:?} lacks {cause:?}");
            assert!(e.to_string().contains(type_name), "{e}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
}

// ---------------------------------------------------------------- 3

#[test]
fn a_value_too_large_for_the_ring_is_message_too_large() {
    let (chan, _guard) = private_channel(4096);
    let (mut tx, mut rx) = (chan.sender().expect("tx"), chan.receiver().expect("rx"));
    let max = tx.max_message_len();
    let just_over = Record::of_encoded_len(1, max + 2);
    let len = encoded_len(&just_over);
    assert!(len > max);
    let too_large = |r: Result<(), Error>| match r {
        Err(Error::MessageTooLarge { len: l, max: m }) => assert_eq!((l, m), (len, max)),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    };
    too_large(tx.send_value(&just_over));
    too_large(tx.try_send_value(&just_over));
    too_large(tx.send_value_timeout(&just_over, Duration::from_millis(1)));
    let huge = vec![0u64; 1 << 20];
    assert!(matches!(
        tx.send_value(&huge),
        Err(Error::MessageTooLarge { .. })
    ));
    // Nothing was sent; the largest value that fits goes through.
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    let fits = Record::of_encoded_len(2, max);
    tx.send_value(&fits).expect("the largest value");
    assert_eq!(rx.recv_value::<Record>().expect("recv"), fits);
}

/// A value whose `Serialize` fails on its `fail_on`-th call (counting
/// from 1; 0: never), and writes `lens[n - 1]` bytes (plus their length)
/// on its n-th call (the last entry after that).
///
/// `send_value` serializes once into a frame of a guessed length (for
/// this type about 70 bytes); only a value too long for the guess is
/// measured (the second call) and then written into an exact frame (the
/// third).
struct Flaky {
    calls: Cell<usize>,
    fail_on: usize,
    lens: [usize; 3],
}

impl Serialize for Flaky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        if n == self.fail_on {
            return Err(serde::ser::Error::custom("refused on purpose"));
        }
        s.serialize_bytes(&vec![7; self.lens[(n - 1).min(2)]])
    }
}

#[test]
fn an_encoding_that_fails_is_an_error_and_sends_nothing() {
    let (chan, _guard) = private_channel(4096);
    let (mut tx, mut rx) = (chan.sender().expect("tx"), chan.receiver().expect("rx"));
    let flaky = |fail_on, lens| Flaky {
        calls: Cell::new(0),
        fail_on,
        lens,
    };
    for (value, cause, calls) in [
        // postcard keeps no custom message (it is no_std): ours says so.
        (flaky(1, [4; 3]), "the type's Serialize failed", 1), // in the one pass
        (flaky(2, [100; 3]), "the type's Serialize failed", 2), // while measuring
        (flaky(3, [100; 3]), "the type's Serialize failed", 3), // while writing
        (flaky(0, [100, 4, 7]), "", 3),                       // longer the third time
        (
            flaky(0, [100, 4, 2]),
            "serialized to 3 bytes after measuring 5",
            3,
        ), // shorter
    ] {
        match tx.send_value(&value) {
            Err(Error::Encode {
                type_name,
                cause: c,
            }) => {
                assert_eq!(type_name, std::any::type_name::<Flaky>());
                assert!(c.contains(cause), "{c}");
            }
            other => panic!("expected Encode, got {other:?}"),
        }
        assert_eq!(value.calls.get(), calls, "the path taken");
        assert!(matches!(rx.try_recv(), Err(Error::Empty)), "nothing sent");
    }
    // One pass, and the measured path: each sends exactly what it wrote.
    tx.send_value(&flaky(0, [4; 3])).expect("a steady value");
    assert_eq!(rx.recv().expect("recv"), [4, 7, 7, 7, 7]);
    let long = flaky(0, [100; 3]);
    tx.send_value(&long).expect("a value longer than the guess");
    assert_eq!(long.calls.get(), 3);
    let mut expected = vec![100];
    expected.extend([7; 100]);
    assert_eq!(rx.recv().expect("recv"), expected);
}

/// The async send takes the same paths: one pass into a guessed frame
/// when the value fits it, measure and write when it does not.
#[test]
fn send_value_async_serializes_once_when_the_guess_fits() {
    let (chan, _guard) = private_channel(4096);
    let (mut tx, mut rx) = (chan.sender().expect("tx"), chan.receiver().expect("rx"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let flaky = |lens| Flaky {
        calls: Cell::new(0),
        fail_on: 0,
        lens,
    };
    let steady = flaky([4; 3]);
    rt.block_on(tx.send_value_async(&steady))
        .expect("a steady value");
    assert_eq!(steady.calls.get(), 1, "one pass");
    assert_eq!(rx.recv().expect("recv"), [4, 7, 7, 7, 7]);
    // Different bytes on each call: the one pass sends what it wrote.
    let changing = flaky([4, 5, 6]);
    rt.block_on(tx.send_value_async(&changing))
        .expect("one pass");
    assert_eq!(rx.recv().expect("recv"), [4, 7, 7, 7, 7]);
    let long = flaky([100; 3]);
    rt.block_on(tx.send_value_async(&long))
        .expect("a value longer than the guess");
    assert_eq!(long.calls.get(), 3, "measured, then written");
    assert_eq!(rx.recv().expect("recv").len(), 101);
}

/// A typed send that finds no room counts one stall, as any send does
/// (docs/layout.md, "Counters": once per call), though it tried a guessed
/// frame before the measured one.
#[test]
fn a_typed_send_without_room_counts_one_stall() {
    let (chan, _guard) = private_channel(4096);
    let mut tx = chan.sender().expect("tx");
    let _rx = chan.receiver().expect("rx");
    while tx.try_send(&[0u8; 100]).is_ok() {}
    let stalls = || common::channel_info(chan.id()).lane_info[0].sent.stalls;
    let before = stalls();
    assert!(matches!(tx.try_send_value(&(7u64, 8u64)), Err(Error::Full)));
    assert_eq!(stalls(), before + 1, "try_send_value");
    let r = tx.send_value_timeout(&(7u64, 8u64), Duration::from_millis(1));
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert_eq!(stalls(), before + 2, "send_value_timeout");
}

// ---------------------------------------------------------------- 4

#[test]
fn pods_cross_processes_both_ways() {
    let (to_peer, from_peer, _guards, vars) = two_channels();
    let mut rx = from_peer.receiver().expect("receiver");
    let tx = to_peer.sender().expect("sender");
    let mut peer = spawn_peer("peer", "echo_pods", &vars);
    let sending = std::thread::spawn(move || {
        let mut tx: Sender = tx;
        for seq in 0..COUNT {
            match seq % 3 {
                0 => tx.send_pod(&Tick::new(seq)),
                1 => tx.send_pod_timeout(&Tick::new(seq), Duration::from_secs(30)),
                _ => loop {
                    match tx.try_send_pod(&Tick::new(seq)) {
                        Err(Error::Full) => std::thread::yield_now(),
                        r => break r,
                    }
                },
            }
            .expect("send a tick");
        }
    });
    for seq in 0..COUNT {
        let got = match seq % 3 {
            0 => rx.recv_pod::<Tick>(),
            1 => rx.recv_pod_timeout::<Tick>(Duration::from_secs(30)),
            _ => loop {
                match rx.try_recv_pod::<Tick>() {
                    Err(Error::Empty) => std::thread::yield_now(),
                    r => break r,
                }
            },
        };
        assert_eq!(
            got.expect("a tick"),
            Tick::new(seq).answer(),
            "answer {seq}"
        );
    }
    sending.join().expect("sending thread");
    assert_eq!(
        peer.next_line().as_deref(),
        Some(&*format!("echoed {COUNT}"))
    );
    peer.join();
    assert!(matches!(rx.recv_pod::<Tick>(), Err(Error::Disconnected)));
}

/// `r` is `PodMismatch` for `T` with a payload of `len` bytes.
fn assert_mismatch<T, U: std::fmt::Debug>(r: Result<U, Error>, len: usize) {
    match r {
        Err(Error::PodMismatch {
            type_name,
            len: l,
            expected,
            align,
        }) => {
            assert_eq!(type_name, std::any::type_name::<T>());
            assert_eq!((l, expected, align), (len, size_of::<T>(), align_of::<T>()));
        }
        other => panic!("expected PodMismatch, got {other:?}"),
    }
}

#[test]
fn a_pod_of_the_wrong_length_is_an_error() {
    let (chan, _guard) = private_channel(4096);
    let (mut tx, mut rx) = (chan.sender().expect("tx"), chan.receiver().expect("rx"));
    let tick = Tick::new(5);
    let bytes = bytemuck::bytes_of(&tick);
    // Short, long, empty: each consumed by recv_pod's three forms.
    tx.send(&bytes[..23]).expect("short");
    tx.send(&[bytes, b"x"].concat()).expect("long");
    tx.send(b"").expect("empty");
    tx.send_pod(&tick).expect("a tick");
    assert_mismatch::<Tick, _>(rx.recv_pod::<Tick>(), 23);
    assert_mismatch::<Tick, _>(rx.try_recv_pod::<Tick>(), 25);
    assert_mismatch::<Tick, _>(rx.recv_pod_timeout::<Tick>(Duration::from_secs(1)), 0);
    assert_eq!(rx.recv_pod::<Tick>().expect("the next one"), tick);
    // And by the deadline and async forms.
    tx.send(&bytes[..8]).expect("short");
    tx.send(&[bytes, bytes].concat()).expect("long");
    tx.send_pod(&tick).expect("a tick");
    let later = std::time::Instant::now() + Duration::from_secs(1);
    assert_mismatch::<Tick, _>(rx.recv_pod_deadline::<Tick>(later), 8);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_mismatch::<Tick, _>(rt.block_on(rx.recv_pod_async::<Tick>()), 48);
    assert_eq!(
        rt.block_on(rx.recv_pod_async::<Tick>())
            .expect("the next one"),
        tick
    );

    // as_pod consumes nothing by itself: the guard still holds the
    // message, which reads as bytes and as a type of the right size.
    tx.send(&bytes[..16]).expect("16 bytes");
    tx.send_pod(&tick).expect("a tick");
    {
        let msg = rx.recv_ref().expect("recv_ref");
        assert_mismatch::<Tick, _>(msg.as_pod::<Tick>(), 16);
        assert_eq!(&*msg, &bytes[..16]);
        assert_eq!(msg.as_pod::<[u64; 2]>().expect("16 bytes")[0], 5);
    } // released here
    assert_eq!(rx.recv_pod::<Tick>().expect("the next one"), tick);
}

#[test]
fn a_type_aligned_to_16_is_refused_wherever_the_payload_lies() {
    assert_eq!(align_of::<Wide>(), 16);
    let (chan, _guard) = private_channel(4096);
    let (mut tx, mut rx) = (chan.sender().expect("tx"), chan.receiver().expect("rx"));
    let wide = Wide { lo: 1, hi: 2 };
    assert_mismatch::<Wide, _>(tx.send_pod(&wide), 16);
    let text = tx.send_pod(&wide).map_err(|e| e.to_string());
    assert!(
        matches!(&text, Err(t) if t.contains("is aligned to 16 bytes, above the 8")),
        "the reason is the alignment: {text:?}"
    );
    assert_mismatch::<Wide, _>(tx.try_send_pod(&wide), 16);
    assert_mismatch::<Wide, _>(tx.send_pod_timeout(&wide, Duration::from_millis(1)), 16);
    let later = std::time::Instant::now() + Duration::from_millis(1);
    assert_mismatch::<Wide, _>(tx.send_pod_deadline(&wide, later), 16);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_mismatch::<Wide, _>(rt.block_on(tx.send_pod_async(&wide)), 16);
    assert!(matches!(rx.try_recv(), Err(Error::Empty)), "nothing sent");
    // Its 16 bytes as raw messages. Each frame is 24 bytes, so payloads
    // alternate between 8 and 0 mod 16; as_pod and recv_pod each meet
    // both (messages 0, 1, 4, 5 and 2, 3, 6, 7) and refuse every one;
    // recv_pod consumes it; the same bytes read as a type aligned to 8.
    let bytes = bytemuck::bytes_of(&wide);
    let mut addresses = [false; 2];
    for i in 0..8 {
        tx.send(bytes).expect("16 bytes");
        if i % 4 < 2 {
            let msg = rx.recv_ref().expect("recv_ref");
            addresses[(msg.as_ptr() as usize % 16) / 8] = true;
            assert_mismatch::<Wide, _>(msg.as_pod::<Wide>(), 16);
            assert_eq!(*msg.as_pod::<[u64; 2]>().expect("align 8"), [1, 2]);
        } else {
            assert_mismatch::<Wide, _>(rx.recv_pod::<Wide>(), 16);
            assert!(matches!(rx.try_recv(), Err(Error::Empty)), "consumed");
        }
    }
    assert_eq!(addresses, [true, true], "both alignments met");
}

#[test]
fn as_pod_reads_in_place_at_8_aligned_addresses() {
    let (chan, _guard) = private_channel(4096);
    let (mut tx, mut rx) = (chan.sender().expect("tx"), chan.receiver().expect("rx"));
    // Messages of every length mod 8 before each tick, so that frames wrap
    // and pad; every payload starts 8-aligned.
    for seq in 0..500u64 {
        tx.send(&vec![1; (seq % 9) as usize * 7]).expect("filler");
        tx.send_pod(&Tick::new(seq)).expect("tick");
        let filler = rx.recv_ref().expect("filler");
        assert_eq!(filler.as_ptr() as usize % 8, 0, "filler payload aligned");
        drop(filler);
        let msg = rx.recv_ref().expect("tick");
        let tick: &Tick = msg.as_pod().expect("a tick in place");
        assert_eq!(*tick, Tick::new(seq));
        assert!(
            std::ptr::eq((tick as *const Tick).cast::<u8>(), msg.as_ptr()),
            "a reference into the ring, not a copy"
        );
    }
}

/// Types the two features cover both ways in one process: a quick check of
/// the plain forms with `recv_value_from` and `RecvGuard::sender`, on a
/// channel of two lanes.
#[test]
fn values_and_pods_share_a_channel_of_lanes() {
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))
        .expect("create");
    let _guard = Cleanup::of(&chan);
    let mut rx: Receiver = chan.receiver().expect("rx");
    let (mut a, mut b) = (chan.sender().expect("a"), chan.sender().expect("b"));
    a.send_value(&Record::new(1, 3)).expect("a value");
    b.send_pod(&Tick::new(2)).expect("a pod");
    assert_eq!(
        rx.recv_value_from::<Record>().expect("a's"),
        (Record::new(1, 3), a.id())
    );
    let msg = rx.recv_ref().expect("b's");
    assert_eq!(
        (*msg.as_pod::<Tick>().expect("tick"), msg.sender()),
        (Tick::new(2), b.id())
    );
}

// ---------------------------------------------------------------- the example

/// examples/typed.rs runs as a person runs it (`cargo run --example typed
/// --features serde`): one command, two processes, structs both ways.
/// Cargo gives tests no path to examples: this builds it with this test
/// binary's profile and target directory (as tests/rpc.rs does) and runs
/// it from there.
#[test]
fn the_example_exchanges_structs_between_two_processes() {
    // This binary is TARGET_DIR/PROFILE_DIR/deps/typed-HASH.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test binary lies in PROFILE_DIR/deps");
    let target_dir = profile_dir.parent().expect("PROFILE_DIR has a parent");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "test",
        Some(name) => name,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--example", "typed", "--features"])
        .args(["serde,bytemuck", "--profile", profile, "--manifest-path"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example typed: {status}");
    let out = std::process::Command::new(profile_dir.join("examples").join("typed"))
        .args(["--requests", "5"])
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("server: from "), 5, "{stdout}");
    assert_eq!(count("client: reply Reply"), 5, "{stdout}");
    assert!(
        stdout.contains("client: 5 replies checked, bye"),
        "{stdout}"
    );
    assert!(stdout.contains("server: answered 5 requests"), "{stdout}");
}
