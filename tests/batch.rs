//! Batches (`Sender::send_batch` and its forms), `Receiver::try_iter` and
//! `Receiver::recv_many`. Every claim about processes has its peers as
//! separate processes (this test binary run again, see `peer`):
//!
//! 1. batches of random sizes, some crossing the end of the ring with a
//!    padding frame inside the batch, arrive whole and in order at a
//!    receiver process (reading with `recv`, and with `recv_many`), also
//!    from two senders at once; the counters count every message;
//! 2. `try_send_batch` into a nearly full ring commits exactly the first
//!    `k` messages (`BatchIncomplete { sent: k, source: Full }`);
//! 3. a batch with a message too large sends those before it and says
//!    how many (`BatchIncomplete { sent, source: MessageTooLarge }`);
//! 4. a blocking `send_batch` whose receiver is SIGKILLed midway ends with
//!    `Disconnected` and the count of what it committed;
//! 5. `try_iter` drains exactly what is queued, and keeps an error that is
//!    not the normal end;
//! 6. `recv_many` fills the buffers in order and reuses them, wakes a
//!    sender waiting for room, and keeps the lanes' turns;
//! 7. `recv_many_with` hands the messages in place in the same order,
//!    takes at most `max`, keeps the lanes' turns, and leaves the run its
//!    function panicked on queued for the next call; batches reach it
//!    across processes as in point 1.

mod common;

use std::time::Duration;

use common::{Cleanup, Gate, GateReader, Peer, RingPos, Rng, env, private_channel, say};
use shmchan::{Channel, Error, Key, Options};

/// Env vars the peers read.
const SHMID: &str = "SHMCHAN_BATCH_SHMID";
const INDEX: &str = "SHMCHAN_BATCH_INDEX";
const SEED: &str = "SHMCHAN_BATCH_SEED";
const COUNT: &str = "SHMCHAN_BATCH_COUNT";
const MODE: &str = "SHMCHAN_BATCH_MODE";
const SENDERS: &str = "SHMCHAN_BATCH_SENDERS";
const GATE: &str = "SHMCHAN_BATCH_GATE";
const LEN: &str = "SHMCHAN_BATCH_LEN";

/// Ring bytes in these tests: small, so that batches fill, wrap and pad
/// often.
const RING: usize = 4096;

/// Starts a `gated_sender` peer on `chan` and waits until it has sent
/// messages 0..`count`; it sends `count` more once the gate opens.
fn gated_sender_sent(chan: &Channel, count: u64) -> (Gate, Peer) {
    let gate = Gate::new();
    let mut tx = spawn(
        "gated_sender",
        chan,
        &[(COUNT, count.to_string()), (GATE, gate.env_value())],
    );
    tx.expect_line("sent");
    (gate, tx)
}

/// Queues 40, 5 and 40 messages in the three lanes of each of two
/// channels before anything is read, takes one channel's with single
/// `try_recv` calls and the other's with `read_all` (the call under test,
/// until it finds nothing), checks that both took the same 85 messages in
/// the same order, and returns them. With `fill` above 0, each lane first
/// carries a message of `fill` bytes, received and dropped, so that the
/// messages behind it wrap around the end of the ring (a padding frame
/// inside a run: 3400 puts it after the 28th message of lanes 0 and 2).
fn same_messages_as_try_recv(
    fill: usize,
    read_all: impl FnOnce(&mut shmchan::Receiver) -> Vec<(u8, u64)>,
) -> Vec<(u8, u64)> {
    let opts = Options::new().capacity(RING).max_senders(3);
    let (a, b) = (
        Channel::create(Key::PRIVATE, &opts).expect("create"),
        Channel::create(Key::PRIVATE, &opts).expect("create"),
    );
    let _guards = (Cleanup::of(&a), Cleanup::of(&b));
    let (mut rx_a, mut rx_b) = (a.receiver().expect("rx"), b.receiver().expect("rx"));
    let queue = |chan: &Channel, rx: &mut shmchan::Receiver| {
        let mut txs: Vec<_> = (0..3).map(|_| chan.sender().expect("a lane")).collect();
        if fill > 0 {
            for tx in &mut txs {
                tx.send(&vec![0xee; fill]).expect("filler");
            }
            let dropped = rx.try_iter().count();
            assert_eq!(dropped, 3, "one filler per lane");
        }
        for (lane, count) in [(0u8, 40u64), (1, 5), (2, 40)] {
            let msgs: Vec<Vec<u8>> = (0..count).map(|seq| message(lane, seq, HEAD)).collect();
            txs[usize::from(lane)].send_batch(&msgs).expect("queue");
        }
        txs
    };
    let _senders = (queue(&a, &mut rx_a), queue(&b, &mut rx_b));
    let mut one_by_one = Vec::new();
    while let Ok(m) = rx_a.try_recv() {
        one_by_one.push(check(&m));
    }
    let taken = read_all(&mut rx_b);
    assert_eq!(taken.len(), 85);
    assert_eq!(taken, one_by_one, "the order of as many try_recv calls");
    taken
}

/// Starts peer `role` on `chan` with `extra` env.
fn spawn(role: &str, chan: &Channel, extra: &[(&str, String)]) -> Peer {
    common::spawn_on(role, SHMID, chan.id(), extra)
}

// ------------------------------------------------------------ messages

/// Bytes at the head of every message: the sender's index (1), its
/// sequence number (8, little-endian) and the message's length (4).
const HEAD: usize = 13;

/// Message `seq` of sender `index`, `len` (at least [`HEAD`]) bytes: its
/// head, then filler derived from all three.
fn message(index: u8, seq: u64, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.push(index);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&(len as u32).to_le_bytes());
    m.extend((HEAD..len).map(|i| (seq as u8 ^ index).wrapping_mul(7).wrapping_add(i as u8)));
    m
}

/// The sender index and sequence number of a [`message`], checking every
/// byte of it.
fn check(m: &[u8]) -> (u8, u64) {
    assert!(m.len() >= HEAD, "a message of {} bytes", m.len());
    let seq = u64::from_le_bytes(m[1..9].try_into().expect("8 bytes"));
    assert_eq!(
        m,
        message(m[0], seq, m.len()),
        "message {seq} of sender {} is damaged",
        m[0]
    );
    (m[0], seq)
}

/// The batches a sender sends: for each, the lengths of its messages.
/// From a PRNG seeded by `seed`: 1 to 40 messages a batch, most of 13 to
/// 200 bytes, some up to 1500, a few of the largest size.
fn plan(seed: u64, count: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng(seed);
    let max = RING - shmchan::FRAME_OVERHEAD;
    let mut batches = Vec::new();
    let mut left = count;
    while left > 0 {
        let n = (1 + rng.below(40) as usize).min(left);
        let lens = (0..n)
            .map(|_| match rng.below(100) {
                0 => max,
                1..=9 => HEAD + rng.below(1500) as usize,
                _ => HEAD + rng.below(188) as usize,
            })
            .collect();
        batches.push(lens);
        left -= n;
    }
    batches
}

/// Messages of a plan that go behind a padding frame inside their batch
/// (not the first of it), by a simulation of the ring's position: the
/// wraps the test is after.
fn padded_inside(batches: &[Vec<usize>]) -> usize {
    let mut pos = RingPos::new(RING);
    let mut padded = 0;
    for lens in batches {
        for (i, &len) in lens.iter().enumerate() {
            let len = len as u64;
            if i > 0 && pos.frame_start(len) == 0 && pos.to_end() != RING as u64 {
                padded += 1;
            }
            pos.advance(len);
        }
    }
    padded
}

// ---------------------------------------------------------------- peers

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(120);
        let chan = Channel::open_id(env(SHMID).parse().expect("shmid")).expect("peer opens");
        match role {
            "batch_sender" => batch_sender(&chan),
            "receiver" => receiver(&chan),
            "taker" => taker(&chan),
            "gated_sender" => gated_sender(&chan),
            "parking_sender" => parking_sender(&chan),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Takes a sender role, says `attached` and waits at the gate GATE; then
/// sends the plan of SEED (COUNT messages) as sender INDEX: odd batches
/// with `send_batch`, even ones with `try_send_batch`, going on from
/// `sent` after each `Full`. Says `sent N`.
fn batch_sender(chan: &Channel) {
    let gate = GateReader::open(&env(GATE));
    let mut tx = chan.sender().expect("peer takes a sender role");
    // Every sender holds its role before any sends: a receiver that saw
    // one sender finish before the next attached would end at
    // `Disconnected` (a sender process that left is gone; the next one
    // is another), and the late sender would fill its lane for no one.
    say("attached");
    gate.wait();
    let index: u8 = env(INDEX).parse().expect("index");
    let batches = plan(
        env(SEED).parse().expect("seed"),
        env(COUNT).parse().expect("count"),
    );
    let mut seq = 0;
    for (b, lens) in batches.iter().enumerate() {
        let msgs: Vec<Vec<u8>> = lens
            .iter()
            .map(|&len| {
                seq += 1;
                message(index, seq - 1, len)
            })
            .collect();
        if b % 2 == 1 {
            tx.send_batch(&msgs).expect("send_batch");
            continue;
        }
        let mut from = 0;
        while let Err(e) = tx.try_send_batch(&msgs[from..]) {
            match e {
                Error::BatchIncomplete { sent, source } if matches!(*source, Error::Full) => {
                    from += sent;
                    std::thread::yield_now();
                }
                other => panic!("try_send_batch: {other:?}"),
            }
        }
    }
    say(format!("sent {seq}"));
}

/// Receives until `Disconnected` with `recv` (MODE `recv`), with
/// `recv_many` into 1 to 50 buffers (MODE `many`) or with
/// `recv_many_with` of at most 1 to 50 (MODE `with`), checking that each of
/// SENDERS senders' messages come whole and in order. Says `got N`, then
/// the end.
fn receiver(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    say("attached");
    let senders: usize = env(SENDERS).parse().expect("senders");
    let mut next = vec![0u64; senders];
    let mut got = 0u64;
    let mut take = |m: &[u8]| {
        let (index, seq) = check(m);
        assert_eq!(seq, next[usize::from(index)], "sender {index}'s order");
        next[usize::from(index)] += 1;
        got += 1;
    };
    let mut rng = Rng(0x5eed);
    let mut bufs = vec![Vec::new(); 50];
    let one_by_one = env(MODE) == "recv";
    let end = loop {
        if one_by_one {
            match rx.recv() {
                Ok(m) => take(&m),
                Err(e) => break e,
            }
            continue;
        }
        let n = 1 + rng.below(50) as usize;
        if env(MODE) == "with" {
            match rx.recv_many_with(n, &mut take) {
                Ok(k) => assert!((1..=n).contains(&k), "{k} of at most {n}"),
                Err(e) => break e,
            }
            continue;
        }
        match rx.recv_many(&mut bufs[..n]) {
            Ok(k) => {
                assert!((1..=n).contains(&k), "{k} of {n} buffers");
                for m in &bufs[..k] {
                    take(m);
                }
            }
            Err(e) => break e,
        }
    };
    say(format!("got {got}"));
    say(format!("end {end:?}"));
}

/// Receives exactly COUNT messages, one by one, checking them; says
/// `took N`, and hangs holding the receiver role (until killed).
fn taker(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    let count: u64 = env(COUNT).parse().expect("count");
    for seq in 0..count {
        assert_eq!(check(&rx.recv().expect("recv")), (0, seq));
    }
    say(format!("took {count}"));
    common::hang();
}

/// Sends messages 0..COUNT, says `sent`, waits for the gate GATE, sends
/// COUNT more, and leaves.
fn gated_sender(chan: &Channel) {
    let gate = GateReader::open(&env(GATE));
    let mut tx = chan.sender().expect("peer takes the sender role");
    let count: u64 = env(COUNT).parse().expect("count");
    for seq in 0..count {
        tx.send(&message(0, seq, HEAD + seq as usize))
            .expect("send");
    }
    say("sent");
    gate.wait();
    for seq in count..2 * count {
        tx.send(&message(0, seq, HEAD + seq as usize))
            .expect("send");
    }
}

/// With a spin budget of zero (a full ring parks at once), sends COUNT
/// messages of LEN bytes; says `sent`.
fn parking_sender(chan: &Channel) {
    let mut tx = chan.sender().expect("peer takes the sender role");
    tx.set_spin(Duration::ZERO);
    let (count, len): (u64, usize) = (
        env(COUNT).parse().expect("count"),
        env(LEN).parse().expect("len"),
    );
    for seq in 0..count {
        tx.send(&message(0, seq, len)).expect("send");
    }
    say("sent");
}

// ------------------------------------------------- 1. across processes

/// Senders `0..senders` send their plans (COUNT messages each) in batches
/// into a receiver process reading with `mode`; every message arrives
/// whole and in its sender's order, and the lanes' counters count them
/// all.
fn batches_arrive_whole_and_in_order(mode: &str, senders: u8) {
    const PER_SENDER: usize = 20_000;
    let opts = Options::new()
        .capacity(RING)
        .max_senders(u32::from(senders));
    let chan = Channel::create(Key::PRIVATE, &opts).expect("create");
    let _guard = Cleanup::of(&chan);
    let seeds: Vec<u64> = (0..senders).map(|i| 0xba7c_4000 + u64::from(i)).collect();
    for &seed in &seeds {
        let padded = padded_inside(&plan(seed, PER_SENDER));
        assert!(
            padded >= 50,
            "only {padded} messages behind padding inside a batch"
        );
    }
    let mut rx = spawn(
        "receiver",
        &chan,
        &[(MODE, mode.to_owned()), (SENDERS, senders.to_string())],
    );
    rx.expect_line("attached");
    let mut gate = Gate::new();
    let mut txs: Vec<Peer> = (0..senders)
        .map(|i| {
            let vars = [
                (INDEX, i.to_string()),
                (SEED, seeds[usize::from(i)].to_string()),
                (COUNT, PER_SENDER.to_string()),
                (GATE, gate.env_value()),
            ];
            spawn("batch_sender", &chan, &vars)
        })
        .collect();
    // The receiver ends at `Disconnected`: with two senders, one that
    // finished before the other attached would end it early, and the
    // other would wait for room for ever (about 1 run in 200 with two
    // test binaries at once, before this gate).
    for tx in &mut txs {
        tx.expect_line("attached");
    }
    gate.open();
    for mut tx in txs {
        assert_eq!(tx.line_after("sent"), PER_SENDER.to_string());
        tx.join();
    }
    let total = PER_SENDER * usize::from(senders);
    assert_eq!(rx.line_after("got"), total.to_string());
    assert_eq!(rx.line_after("end"), "Disconnected");
    rx.join();
    let info = common::channel_info(chan.id());
    let bytes: usize = seeds
        .iter()
        .flat_map(|&s| plan(s, PER_SENDER))
        .flatten()
        .sum();
    assert_eq!(
        info.sent.messages, total as u64,
        "every message counted once"
    );
    assert_eq!(info.sent.bytes, bytes as u64);
    assert_eq!(info.received.messages, total as u64);
    assert_eq!(info.received.bytes, bytes as u64);
}

#[test]
fn batches_cross_processes_whole_and_in_order_to_recv() {
    batches_arrive_whole_and_in_order("recv", 1);
}

#[test]
fn batches_cross_processes_whole_and_in_order_to_recv_many() {
    batches_arrive_whole_and_in_order("many", 1);
}

#[test]
fn batches_from_two_senders_reach_recv_many_in_each_senders_order() {
    batches_arrive_whole_and_in_order("many", 2);
}

#[test]
fn batches_cross_processes_whole_and_in_order_to_recv_many_with() {
    batches_arrive_whole_and_in_order("with", 1);
}

#[test]
fn batches_from_two_senders_reach_recv_many_with_in_each_senders_order() {
    batches_arrive_whole_and_in_order("with", 2);
}

// ------------------------------------------- 2. a batch that does not fit

#[test]
fn try_send_batch_into_a_nearly_full_ring_commits_exactly_the_first_k() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    // Three 1008-byte frames: 3024 bytes used, 1072 free.
    let fillers: Vec<Vec<u8>> = (0..3).map(|seq| message(1, seq, 1000)).collect();
    for m in &fillers {
        tx.try_send(m).expect("filler");
    }
    // 208-byte frames: five fit (1040 bytes), the sixth does not fit in
    // the 32 bytes before the end, and the ring's start is not free.
    let batch: Vec<Vec<u8>> = (0..10).map(|seq| message(0, seq, 200)).collect();
    match tx.try_send_batch(&batch) {
        Err(Error::BatchIncomplete { sent, source }) => {
            assert_eq!(sent, 5);
            assert!(matches!(*source, Error::Full), "{source:?}");
        }
        other => panic!("expected BatchIncomplete {{ sent: 5, Full }}, got {other:?}"),
    }
    let got: Vec<Vec<u8>> = rx.try_iter().collect();
    assert_eq!(got[..3], fillers[..]);
    assert_eq!(got[3..], batch[..5], "exactly the first five, in order");
    let info = common::channel_info(chan.id());
    assert_eq!(
        info.sent.messages, 8,
        "the counters count what was committed"
    );
    assert_eq!(info.sent.bytes, 3 * 1000 + 5 * 200);
    // Going on from `sent` sends the rest.
    tx.try_send_batch(&batch[5..]).expect("the rest fits now");
    let rest: Vec<Vec<u8>> = rx.try_iter().collect();
    assert_eq!(rest, batch[5..]);
}

#[test]
fn try_send_batch_into_a_full_ring_commits_nothing() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    tx.try_send(&message(1, 0, RING - 8))
        .expect("fills the ring");
    match tx.try_send_batch(&[message(0, 0, HEAD)]) {
        Err(Error::BatchIncomplete { sent: 0, source }) => {
            assert!(matches!(*source, Error::Full), "{source:?}");
        }
        other => panic!("expected BatchIncomplete {{ sent: 0, Full }}, got {other:?}"),
    }
    assert_eq!(rx.try_iter().count(), 1);
    tx.try_send_batch(&[message(0, 0, HEAD)]).expect("room now");
    assert_eq!(check(&rx.try_recv().expect("the batch")), (0, 0));
}

// --------------------------------------------- 3. a message too large

#[test]
fn a_batch_stops_before_a_message_too_large_and_says_how_many_were_sent() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    let max = tx.max_message_len();
    let batch = [
        message(0, 0, HEAD),
        message(0, 1, max + 1),
        message(0, 2, HEAD),
    ];
    let soon = std::time::Instant::now() + Duration::from_millis(10);
    let results = [
        tx.send_batch(&batch),
        tx.try_send_batch(&batch),
        tx.send_batch_timeout(&batch, Duration::from_millis(10)),
        tx.send_batch_deadline(&batch, soon),
    ];
    let text = results[0].as_ref().map_err(ToString::to_string);
    assert!(
        matches!(&text, Err(t) if t.starts_with("a batch stopped after 1 committed message: ")),
        "{text:?}"
    );
    for r in results {
        match r {
            Err(Error::BatchIncomplete { sent: 1, source }) => match *source {
                Error::MessageTooLarge { len, max: m } => assert_eq!((len, m), (max + 1, max)),
                other => panic!("expected MessageTooLarge, got {other:?}"),
            },
            other => panic!("expected BatchIncomplete after 1, got {other:?}"),
        }
    }
    // Each call sent the message before the long one, and nothing after.
    let got: Vec<_> = rx.try_iter().map(|m| check(&m)).collect();
    assert_eq!(got, [(0, 0); 4]);
    // A batch that starts with one: nothing sent.
    match tx.send_batch(&batch[1..]) {
        Err(Error::BatchIncomplete { sent: 0, source }) => {
            assert!(
                matches!(*source, Error::MessageTooLarge { .. }),
                "{source:?}"
            );
        }
        other => panic!("expected BatchIncomplete after 0, got {other:?}"),
    }
    assert!(
        matches!(rx.try_recv(), Err(Error::Empty)),
        "nothing was sent"
    );
}

// ----------------------------------------- 4. the receiver killed midway

#[test]
fn a_blocking_batch_whose_receiver_is_killed_says_how_many_it_committed() {
    const TAKEN: u64 = 20;
    let (chan, _guard) = private_channel(RING);
    let mut taker = spawn("taker", &chan, &[(COUNT, TAKEN.to_string())]);
    let mut tx = chan.sender().expect("sender");
    // 112-byte frames: 36 to a ring; the receiver takes 20 and stops.
    let batch: Vec<Vec<u8>> = (0..200).map(|seq| message(0, seq, 100)).collect();
    let sending = std::thread::spawn(move || {
        let r = tx.send_batch(&batch);
        (r, batch)
    });
    assert_eq!(taker.line_after("took"), TAKEN.to_string());
    taker.kill();
    let (r, batch) = sending.join().expect("the sending thread");
    let sent = match r {
        Err(Error::BatchIncomplete { sent, source }) => {
            assert!(matches!(*source, Error::Disconnected), "{source:?}");
            sent
        }
        other => panic!("expected BatchIncomplete {{ .., Disconnected }}, got {other:?}"),
    };
    assert!(
        (TAKEN as usize + 30..batch.len()).contains(&sent),
        "{sent} committed: the 20 taken and a ring's worth"
    );
    // The next receiver finds exactly the rest of the first `sent`, then
    // the end (the sender left with the thread).
    let mut rx = chan.receiver().expect("a new receiver");
    let rest: Vec<Vec<u8>> = rx.iter().collect();
    assert_eq!(rest, batch[TAKEN as usize..sent]);
}

// --------------------------------------------------------- 5. try_iter

#[test]
fn try_iter_drains_exactly_the_queued_messages() {
    const COUNT_EACH: u64 = 10;
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let (mut gate, tx) = gated_sender_sent(&chan, COUNT_EACH);
    let mut queued = rx.try_iter();
    let first: Vec<u64> = queued.by_ref().map(|m| check(&m).1).collect();
    assert_eq!(first, (0..COUNT_EACH).collect::<Vec<_>>());
    assert!(queued.take_error().is_none(), "Empty is the normal end");
    assert_eq!(rx.try_iter().next(), None, "the sender is there, silent");
    gate.open();
    tx.join();
    let mut queued = rx.try_iter();
    let second: Vec<u64> = queued.by_ref().map(|m| check(&m).1).collect();
    assert_eq!(second, (COUNT_EACH..2 * COUNT_EACH).collect::<Vec<_>>());
    assert!(
        queued.take_error().is_none(),
        "Disconnected is the normal end"
    );
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

#[test]
fn try_iter_keeps_an_error_that_is_not_the_end() {
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let mut tx = chan.sender().expect("sender");
    tx.send_batch(&["one", "two"]).expect("batch");
    let mut queued = rx.try_iter();
    assert_eq!(queued.next().as_deref(), Some(&b"one"[..]));
    Channel::open_id(chan.id())
        .expect("open")
        .remove()
        .expect("remove");
    assert_eq!(queued.next(), None, "a removed channel ends it");
    match queued.take_error() {
        Some(Error::Removed { .. }) => {}
        other => panic!("expected Removed, got {other:?}"),
    }
    assert!(queued.take_error().is_none(), "taken once");
}

// -------------------------------------------------------- 6. recv_many

#[test]
fn recv_many_fills_buffers_in_order_and_reuses_them() {
    const SENT: u64 = 10;
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let (mut gate, tx) = gated_sender_sent(&chan, SENT);
    assert_eq!(rx.recv_many(&mut []).expect("no buffers"), 0);
    let mut bufs: Vec<Vec<u8>> = (0..4).map(|_| Vec::with_capacity(256)).collect();
    let places: Vec<*const u8> = bufs.iter().map(|b| b.as_ptr()).collect();
    assert_eq!(rx.recv_many(&mut bufs).expect("recv_many"), 4);
    for (seq, buf) in bufs.iter().enumerate() {
        assert_eq!(check(buf), (0, seq as u64));
    }
    let after: Vec<*const u8> = bufs.iter().map(|b| b.as_ptr()).collect();
    assert_eq!(after, places, "each buffer's allocation reused");
    // Eight buffers, six messages queued: the last two are left alone.
    bufs.resize(8, Vec::new());
    bufs[6] = b"left".to_vec();
    bufs[7] = b"alone".to_vec();
    assert_eq!(rx.recv_many(&mut bufs).expect("recv_many"), 6);
    let seqs: Vec<u64> = bufs[..6].iter().map(|b| check(b).1).collect();
    assert_eq!(seqs, (4..SENT).collect::<Vec<_>>());
    assert_eq!(bufs[6..], [b"left".to_vec(), b"alone".to_vec()]);
    assert!(matches!(rx.try_recv_many(&mut bufs), Err(Error::Empty)));
    gate.open();
    tx.join();
    let mut n = 0;
    let end = loop {
        match rx.recv_many(&mut bufs) {
            Ok(k) => n += k,
            Err(e) => break e,
        }
    };
    assert_eq!(n, SENT as usize, "the second half");
    assert!(matches!(end, Error::Disconnected), "{end:?}");
}

#[test]
fn recv_many_wakes_a_sender_waiting_for_room() {
    const SENT: u64 = 3000;
    const MSG_LEN: usize = 500; // 512-byte frames: 8 to a ring
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let tx = spawn(
        "parking_sender",
        &chan,
        &[(COUNT, SENT.to_string()), (LEN, MSG_LEN.to_string())],
    );
    let mut bufs = vec![Vec::new(); 5];
    let (mut next, mut pause_at) = (0, 0);
    while next < SENT {
        // Now and then, let the sender fill the ring and park (it does not
        // spin) before receiving on: the wake-up of a parked sender is
        // what this test is about, and a receiver that keeps pace with
        // the sender might never leave it a reason to park.
        if next >= pause_at {
            common::wait_for(Duration::from_secs(30), "the sender to park", || {
                common::parked_on_sem(tx.pid())
            });
            pause_at += 500;
        }
        let n = rx.recv_many(&mut bufs).expect("recv_many");
        for buf in &bufs[..n] {
            assert_eq!(check(buf), (0, next));
            next += 1;
        }
    }
    tx.join();
    let info = common::channel_info(chan.id());
    // A park that nobody ends runs out after its 500 ms slice (`expired`):
    // if a released run did not wake the parked sender, most parks would.
    assert!(
        info.sent.parks > 0,
        "the sender never parked: {:?}",
        info.sent
    );
    assert!(
        info.sent.expired * 10 <= info.sent.parks,
        "parks that ran out instead of being woken: {:?}",
        info.sent
    );
}

#[test]
fn recv_many_keeps_the_lanes_turns() {
    let many = same_messages_as_try_recv(0, |rx| {
        let (mut many, mut bufs) = (Vec::new(), vec![Vec::new(); 7]);
        while let Ok(n) = rx.try_recv_many(&mut bufs) {
            many.extend(bufs[..n].iter().map(|m| check(m)));
        }
        many
    });
    // Turns of 16 from lane 0, where the cursor starts; lane 1 runs dry
    // in its first turn, and the rest of its turn goes to lane 2.
    let runs: Vec<(u8, usize)> = many
        .chunk_by(|x, y| x.0 == y.0)
        .map(|r| (r[0].0, r.len()))
        .collect();
    assert_eq!(
        runs,
        [(0, 16), (1, 5), (2, 16), (0, 16), (2, 16), (0, 8), (2, 8)]
    );
    // A padding frame inside the runs changes nothing of it.
    same_messages_as_try_recv(3400, |rx| {
        let (mut many, mut bufs) = (Vec::new(), vec![Vec::new(); 32]);
        while let Ok(n) = rx.try_recv_many(&mut bufs) {
            many.extend(bufs[..n].iter().map(|m| check(m)));
        }
        many
    });
}

#[test]
fn recv_many_copies_every_small_length_exactly() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    let msgs: Vec<Vec<u8>> = (0..=40u8)
        .map(|len| (0..len).map(|i| len ^ i).collect())
        .collect();
    tx.send_batch(&msgs).expect("batch");
    // Buffers of every state: empty, with room, with old contents longer
    // and shorter than what comes.
    let mut bufs: Vec<Vec<u8>> = (0..msgs.len())
        .map(|i| match i % 4 {
            0 => Vec::new(),
            1 => Vec::with_capacity(3),
            2 => vec![0xee; 64],
            _ => vec![0xee; 1],
        })
        .collect();
    assert_eq!(rx.recv_many(&mut bufs).expect("recv_many"), msgs.len());
    assert_eq!(bufs, msgs);
}

// --------------------------------------------------- 7. recv_many_with

#[test]
fn recv_many_with_hands_messages_in_place_in_order_up_to_max() {
    const SENT: u64 = 10;
    let (chan, _guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let (mut gate, tx) = gated_sender_sent(&chan, SENT);
    let mut calls = 0;
    assert_eq!(rx.recv_many_with(0, |_| calls += 1).expect("max 0"), 0);
    assert_eq!(calls, 0, "max 0 hands nothing");
    let mut got = Vec::new();
    assert_eq!(rx.recv_many_with(4, |m| got.push(check(m))).expect("4"), 4);
    assert_eq!(rx.recv_many_with(50, |m| got.push(check(m))).expect("6"), 6);
    let seqs: Vec<u64> = got
        .iter()
        .map(|&(sender, seq)| {
            assert_eq!(sender, 0);
            seq
        })
        .collect();
    assert_eq!(seqs, (0..SENT).collect::<Vec<_>>());
    assert!(matches!(
        rx.try_recv_many_with(8, |_| {}),
        Err(Error::Empty)
    ));
    let soon = Duration::from_millis(5);
    assert!(matches!(
        rx.recv_many_with_timeout(8, |_| {}, soon),
        Err(Error::Timeout)
    ));
    let past = std::time::Instant::now();
    assert!(matches!(
        rx.recv_many_with_deadline(8, |_| {}, past),
        Err(Error::Timeout)
    ));
    gate.open();
    tx.join();
    let mut n = 0;
    let end = loop {
        // The timeout form, which ends at `Disconnected` as the others do.
        let each = |m: &[u8]| {
            assert_eq!(check(m), (0, SENT + n));
            n += 1;
        };
        match rx.recv_many_with_timeout(3, each, Duration::from_secs(30)) {
            Ok(k) => assert!((1..=3).contains(&k)),
            Err(e) => break e,
        }
    };
    assert_eq!(n, SENT, "the second half");
    assert!(matches!(end, Error::Disconnected), "{end:?}");
    let info = common::channel_info(chan.id());
    assert_eq!(info.received.messages, 2 * SENT, "each counted once");
}

#[test]
fn recv_many_with_keeps_the_lanes_turns() {
    // Calls that end inside a turn, at its end, one past it, and runs
    // that a turn's end cuts (turns are 16 messages).
    // With and without a padding frame inside the lanes' runs.
    for (max, fill) in [1, 7, 15, 16, 17, 32]
        .into_iter()
        .flat_map(|m| [(m, 0), (m, 3400)])
    {
        same_messages_as_try_recv(fill, |rx| {
            let mut with = Vec::new();
            while rx.try_recv_many_with(max, |m| with.push(check(m))).is_ok() {}
            with
        });
    }
}

#[test]
fn recv_many_with_leaves_the_run_its_function_panics_on_queued() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    let msgs: Vec<Vec<u8>> = (0..6).map(|seq| message(0, seq, HEAD)).collect();
    tx.send_batch(&msgs).expect("batch");
    assert_eq!(rx.recv_many_with(2, |_| {}).expect("0 and 1"), 2);
    let mut seen = Vec::new();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.recv_many_with(32, |m| {
            let (_, seq) = check(m);
            seen.push(seq);
            assert_ne!(seq, 4, "refused on purpose");
        })
    }));
    assert!(panicked.is_err(), "the panic reaches the caller");
    assert_eq!(seen, [2, 3, 4]);
    // The run the panic interrupted (2, 3, 4) is still queued, in order,
    // and the receiver works on.
    let mut again = Vec::new();
    assert_eq!(
        rx.recv_many_with(32, |m| again.push(check(m).1))
            .expect("again"),
        4
    );
    assert_eq!(again, [2, 3, 4, 5]);
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    let info = common::channel_info(chan.id());
    assert_eq!(info.received.messages, 6, "each counted once");
}
