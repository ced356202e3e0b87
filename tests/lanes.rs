//! Lanes (docs/lanes.md): many senders into one receiver. Every sender
//! is a separate process (this test binary run again, see `peer`), and so
//! is every receiver that must die or drain elsewhere.
//!
//! The project issue's behaviours, in order:
//! 1. four senders' messages arrive once, whole, in order per sender and
//!    attributed to the right sender;
//! 2. a flooding sender cannot delay a slow one past the fairness bound;
//! 3. a SIGKILLed sender (mid-stream, or holding an uncommitted
//!    reservation) loses nothing it committed, publishes nothing it did
//!    not, harms no other lane, and frees its lane for a new sender;
//! 4. a SIGKILLed receiver wakes every sender parked on a full lane, and
//!    the next receiver gets everything committed;
//! 5. `RoleTaken` while every lane is held, a lane free again after a
//!    clean exit or a SIGKILL;
//! 6. 40,000 sender sessions exhaust no semaphore and leak no lane.
//!
//! The tests load both cores of a small VM and one of them measures
//! delays, so they never run at the same time as each other: each holds
//! `SERIAL`.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{
    Cleanup, Gate, GateReader, Peer, RingPos, Rng, env, message_number, monotonic_ns,
    numbered_message, numbered_message_of_len, say, wait_for,
};
use shmchan::{Channel, Error, Key, Options, Receiver, Sender, SenderId};

/// Env vars the peers read.
const SHMID: &str = "SHMCHAN_LANES_SHMID";
const INDEX: &str = "SHMCHAN_LANES_INDEX";
const COUNT: &str = "SHMCHAN_LANES_COUNT";
const GATE: &str = "SHMCHAN_LANES_GATE";
const PAUSE: &str = "SHMCHAN_LANES_PAUSE";

/// Bytes per lane in every test: small, so that lanes fill, wrap and pad
/// often.
const LANE: usize = 4096;
/// Generous limit for another process to reach a state (not a timing
/// bound).
const SETTLE: Duration = Duration::from_secs(30);
/// The receiver's turn (src/channel/receiver.rs, `TURN`): messages taken
/// from one lane before the next lane is served.
const TURN: u64 = 16;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private channel of `lanes` lanes of [`LANE`] bytes, with its cleanup
/// guard.
fn lanes_channel(lanes: u32) -> (Channel, Cleanup) {
    let opts = Options::new().capacity(LANE).max_senders(lanes);
    let chan = Channel::create(Key::PRIVATE, &opts).expect("create a channel with lanes");
    let guard = Cleanup::of(&chan);
    assert_eq!(chan.capacity(), LANE);
    (chan, guard)
}

/// Starts peer `role` on `chan` with `extra` env.
fn spawn(role: &str, chan: &Channel, extra: &[(&str, String)]) -> Peer {
    common::spawn_on(role, SHMID, chan.id(), extra)
}

/// A sender peer's id, the first line it prints (`id 2:17`).
fn peer_id(peer: &mut Peer) -> String {
    peer.line_after("id")
}

/// The lane of a `SenderId`'s display text (`lane:session`).
fn lane_of(id: &str) -> &str {
    id.split_once(':')
        .expect("a SenderId shows as lane:session")
        .0
}

// ---------------------------------------------------------------- peers

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(180);
        let chan = Channel::open_id(env(SHMID).parse().expect("shmid")).expect("peer opens");
        match role {
            "flow" => flow(&chan),
            "stream" => stream(&chan),
            "reserve_hang" => reserve_hang(&chan),
            "flood" => flood(&chan),
            "slow" => slow(&chan),
            "fill" => fill_lane(&chan),
            "recv_hang" => recv_hang(&chan),
            "hold" => hold(&chan),
            "drain_count" => drain_count(&chan),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Claims a lane and prints its id, the sender's first line.
fn claim(chan: &Channel) -> Sender {
    let tx = chan.sender().expect("peer claims a lane");
    say(format!("id {}", tx.id()));
    tx
}

/// Test 1: sender INDEX's messages, sizes from [`Sizes`], every odd one
/// through `reserve`.
fn flow(chan: &Channel) {
    let mut tx = claim(chan);
    let index: u64 = env(INDEX).parse().expect("index");
    let mut buf = vec![0u8; tx.max_message_len()];
    for (seq, len) in Sizes::new(index, tx.max_message_len()) {
        if seq % 2 == 0 {
            fill(index, seq, &mut buf[..len]);
            tx.send(&buf[..len]).expect("send");
        } else {
            let mut grant = tx.reserve(len).expect("reserve");
            fill(index, seq, &mut grant);
            grant.commit().expect("commit");
        }
    }
    say("done");
}

/// Sends numbered messages 0..COUNT ("forever": until killed), says
/// `sent N`, then waits for the gate GATE (when given) before it leaves.
/// With PAUSE (`N path`), it waits for the gate at `path` before message N.
fn stream(chan: &Channel) {
    let gate = std::env::var(GATE).ok().map(|p| GateReader::open(&p));
    let pause = std::env::var(PAUSE).ok().map(|v| {
        let (at, path) = v.split_once(' ').expect("PAUSE: N path");
        (at.parse::<u64>().expect("N"), GateReader::open(path))
    });
    let (pause_at, mut pause_gate) = match pause {
        Some((at, g)) => (at, Some(g)),
        None => (u64::MAX, None),
    };
    let mut tx = claim(chan);
    let count = match env(COUNT).as_str() {
        "forever" => u64::MAX,
        n => n.parse().expect("count"),
    };
    for seq in 0..count {
        if seq == pause_at {
            pause_gate.take().expect("one pause").wait();
        }
        tx.send(&numbered_message(seq)).expect("send");
    }
    say(format!("sent {count}"));
    if let Some(gate) = gate {
        gate.wait();
    }
}

/// Length of the message `reserve_hang` reserves and never commits.
const RESERVED_LEN: usize = 100;

/// Sends numbered messages 0..COUNT, reserves room for message COUNT and
/// fills it but never commits it, says `reserved`, and hangs until killed.
fn reserve_hang(chan: &Channel) {
    let mut tx = claim(chan);
    let count: u64 = env(COUNT).parse().expect("count");
    for seq in 0..count {
        tx.send(&numbered_message(seq)).expect("send");
    }
    let mut grant = tx.reserve(RESERVED_LEN).expect("reserve");
    grant.copy_from_slice(&numbered_message_of_len(count, RESERVED_LEN));
    say("reserved");
    common::hang();
}

/// How long the flooding sender floods.
const FLOOD_FOR: Duration = Duration::from_secs(1);
/// Messages of the slow sender, one per [`SLOW_EVERY`].
const SLOW_COUNT: u64 = 200;
const SLOW_EVERY: Duration = Duration::from_millis(1);
/// The slow sender starts this long after the gate, when the flood runs.
const SLOW_AFTER: Duration = Duration::from_millis(100);

/// Test 2: after the gate, numbered messages as fast as it can for
/// [`FLOOD_FOR`].
fn flood(chan: &Channel) {
    let gate = GateReader::open(&env(GATE));
    let mut tx = claim(chan);
    gate.wait();
    let start = Instant::now();
    let mut seq = 0;
    while start.elapsed() < FLOOD_FOR {
        for _ in 0..64 {
            tx.send(&numbered_message(seq)).expect("flood send");
            seq += 1;
        }
    }
    say(format!("sent {seq}"));
}

/// Test 2: first one message of the maximum size, which writes (and so
/// faults in) every page of the lane; then, after the gate, one message a
/// millisecond: its number, its CLOCK_MONOTONIC send time, read right
/// before the send, and the time the previous send returned (0 for the
/// first), read right after it.
///
/// Without the first message, the sends that first write a page of the
/// lane (the first one, and the one that crosses into the next page:
/// lanes do not start on a page) take a page fault of 10 to 50 us between
/// the clock read and the commit, and 40 to 90 flood messages are received
/// in it: the sender's own delay, not the receiver's unfairness.
fn slow(chan: &Channel) {
    let gate = GateReader::open(&env(GATE));
    let mut tx = claim(chan);
    tx.send(&vec![0xa5; tx.max_message_len()])
        .expect("warm-up send");
    gate.wait();
    let start = Instant::now() + SLOW_AFTER;
    let mut sent_prev = 0u64;
    for seq in 0..SLOW_COUNT {
        let at = start + SLOW_EVERY * seq as u32;
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let mut msg = seq.to_le_bytes().to_vec();
        msg.extend_from_slice(&monotonic_ns().to_le_bytes());
        msg.extend_from_slice(&sent_prev.to_le_bytes());
        tx.send(&msg).expect("slow send");
        sent_prev = monotonic_ns();
    }
    say(format!("sent {SLOW_COUNT}"));
}

/// Test 4: sends numbered messages until a send fails (the lane fills,
/// the last send parks, the receiver is killed); says how many were
/// committed and what ended it.
fn fill_lane(chan: &Channel) {
    let mut tx = claim(chan);
    let mut committed = 0;
    let end = loop {
        match tx.send(&numbered_message(committed)) {
            Ok(()) => committed += 1,
            Err(e) => break e,
        }
    };
    say(format!("committed {committed}"));
    say(format!("end {end:?}"));
}

/// Test 4: takes the receiver role, says so, receives nothing, hangs.
fn recv_hang(chan: &Channel) {
    let _rx = chan.receiver().expect("peer takes the receiver role");
    say("attached");
    common::hang();
}

/// Test 5: holds a lane until the gate opens, then leaves cleanly.
fn hold(chan: &Channel) {
    let gate = GateReader::open(&env(GATE));
    let tx = claim(chan);
    gate.wait();
    drop(tx);
    say("released");
}

/// Test 6: receives COUNT numbered messages (each from its own sender
/// session), checks that each number comes once, then that the channel
/// ends with `Disconnected`; reports a hash of every (number, sender) pair
/// in number order, and the end.
fn drain_count(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    say("attached");
    let count: usize = env(COUNT).parse().expect("count");
    let mut from: Vec<Option<SenderId>> = vec![None; count];
    for _ in 0..count {
        let (msg, id) = rx.recv_from().expect("receive a session's message");
        let seq = message_number(&msg) as usize;
        assert!(seq < count, "message {seq} out of range");
        assert!(from[seq].is_none(), "message {seq} twice");
        from[seq] = Some(id);
    }
    let ids: Vec<SenderId> = from.into_iter().map(|id| id.expect("every one")).collect();
    say(format!("hash {:016x}", session_hash(&ids)));
    let end = rx.recv_from();
    say(format!("end {:?}", end.map(|(m, id)| (m.len(), id))));
}

/// FNV-1a over `seq id\n` for every message, in number order.
fn session_hash(ids: &[SenderId]) -> u64 {
    let text: String = ids
        .iter()
        .enumerate()
        .map(|(seq, id)| format!("{seq} {id}\n"))
        .collect();
    checksum(text.as_bytes())
}

// ------------------------------------- 1. four senders, a million messages

/// Messages per sender in test 1.
const FLOW: u64 = 250_000;
/// Every SPECIAL_EVERY-th message is aimed at the wrap point or the
/// maximum.
const SPECIAL_EVERY: u64 = 100;
/// Sender index, sequence number and checksum lead every message.
const MSG_HEAD: usize = 24;

/// The sizes a sender of test 1 sends and the receiver expects: random
/// ones from a PRNG seeded by the sender's index, and ones aimed at the
/// wrap point of the sender's lane (a simulation of its ring position:
/// frames are 8 + len rounded up to 8; one that does not fit before the
/// end is preceded by padding) or at `max_message_len()`. Every lane of a
/// new channel starts at 0.
struct Sizes {
    rng: Rng,
    pos: RingPos,
    count: u64,
    max: u64,
}

impl Sizes {
    fn new(index: u64, max: usize) -> Sizes {
        Sizes {
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (index + 1).wrapping_mul(0x51_7cc1_b727_220a)),
            pos: RingPos::new(LANE),
            count: 0,
            max: max as u64,
        }
    }

    fn random(&mut self) -> u64 {
        let head = MSG_HEAD as u64;
        match self.rng.below(16) {
            0 => head + self.rng.below(2048),
            _ => head + self.rng.below(233),
        }
    }

    /// Kind 0: ends exactly at the wrap point; 1: 8 bytes short of it (the
    /// next frame pads); 2: one byte past it (this one pads); 3: the
    /// maximum. A frame too short for the head becomes the maximum.
    fn special(&mut self, kind: u64) -> u64 {
        let to_end = self.pos.to_end();
        let exact = to_end - 8;
        let len = match kind {
            0 => exact,
            1 => exact.saturating_sub(8),
            2 => exact + 1,
            _ => self.max,
        };
        if len < MSG_HEAD as u64 || len > self.max {
            self.max
        } else {
            len
        }
    }

    fn advance(&mut self, len: u64) {
        self.pos.advance(len);
    }

    /// Whether message `seq` is aimed at the wrap point or the maximum.
    fn is_special(seq: u64) -> bool {
        seq % SPECIAL_EVERY == SPECIAL_EVERY - 1
    }
}

impl Iterator for Sizes {
    type Item = (u64, usize);

    fn next(&mut self) -> Option<(u64, usize)> {
        if self.count == FLOW {
            return None;
        }
        let seq = self.count;
        self.count += 1;
        let len = if Sizes::is_special(seq) {
            self.special((seq / SPECIAL_EVERY) % 4)
        } else {
            self.random()
        };
        self.advance(len);
        Some((seq, len as usize))
    }
}

/// A message of test 1: sequence number, sender index, checksum of
/// everything else, then bytes derived from index and number.
fn fill(index: u64, seq: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate().skip(MSG_HEAD) {
        *b = (seq as u8).wrapping_mul(31) ^ (i as u8) ^ (index as u8).wrapping_mul(97);
    }
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&index.to_le_bytes());
    let sum = message_sum(buf);
    buf[16..24].copy_from_slice(&sum.to_le_bytes());
}

/// The checksum a test 1 message carries: over its bytes but the sum's.
fn message_sum(msg: &[u8]) -> u64 {
    checksum(&msg[..16]) ^ checksum(&msg[MSG_HEAD..]).rotate_left(17)
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn word(msg: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"))
}

#[test]
fn four_senders_messages_arrive_whole_in_order_and_attributed() {
    const SENDERS: u64 = 4;
    let _serial = serial();
    let (chan, _guard) = lanes_channel(SENDERS as u32);
    let max = chan.max_message_len();
    assert_eq!(max, LANE - 8);
    let mut rx = chan.receiver().expect("receiver role");
    let mut peers: Vec<Peer> = (0..SENDERS)
        .map(|i| spawn("flow", &chan, &[(INDEX, i.to_string())]))
        .collect();
    let ids: Vec<String> = peers.iter_mut().map(peer_id).collect();
    let by_id: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    assert_eq!(by_id.len(), ids.len(), "four senders, four ids: {ids:?}");

    let start = Instant::now();
    let mut sizes: Vec<Sizes> = (0..SENDERS).map(|i| Sizes::new(i, max)).collect();
    let mut got = [0u64; SENDERS as usize];
    let (mut wrap_exact, mut max_sized) = (0u64, 0u64);
    for n in 0..SENDERS * FLOW {
        let (msg, from) = if n % 5 == 0 {
            let guard = rx.recv_ref().expect("recv_ref");
            (guard.to_vec(), guard.sender())
        } else {
            rx.recv_from().expect("recv_from")
        };
        assert!(msg.len() >= MSG_HEAD, "message {n}: {} bytes", msg.len());
        let (seq, index) = (word(&msg, 0), word(&msg, 8));
        assert!(index < SENDERS, "message {n}: sender index {index}");
        let i = index as usize;
        assert_eq!(
            from.to_string(),
            ids[i],
            "message {seq} of sender {index} attributed to {from}"
        );
        assert_eq!(seq, got[i], "sender {index}: gap, duplicate or reorder");
        let (want_seq, want_len) = sizes[i].next().expect("within the sender's count");
        assert_eq!(
            (seq, msg.len()),
            (want_seq, want_len),
            "sender {index}: length"
        );
        assert_eq!(
            word(&msg, 16),
            message_sum(&msg),
            "sender {index} message {seq}: checksum (torn or damaged)"
        );
        got[i] += 1;
        if Sizes::is_special(seq) {
            let to_end = sizes[i].pos.to_end() as usize;
            wrap_exact += u64::from(to_end == LANE && msg.len() != max);
            max_sized += u64::from(msg.len() == max);
        }
    }
    let took = start.elapsed();
    eprintln!(
        "lanes: {SENDERS} senders x {FLOW} messages received in {took:?} \
         ({wrap_exact} ending at the wrap point, {max_sized} of the maximum size)"
    );
    assert_eq!(got, [FLOW; SENDERS as usize]);
    assert!(wrap_exact >= 1000, "only {wrap_exact} wrap-point messages");
    assert!(max_sized >= 1000, "only {max_sized} maximum-size messages");
    for mut p in peers.drain(..) {
        p.expect_line("done");
        p.join();
    }
    let end = rx.recv_from_timeout(SETTLE);
    assert!(matches!(end, Err(Error::Disconnected)), "got {end:?}");
}

// ------------------------------------------------------------ 2. fairness

#[test]
fn a_flood_cannot_delay_a_slow_sender_past_the_turn_bound() {
    let _serial = serial();
    let (chan, _guard) = lanes_channel(2);
    let mut rx = chan.receiver().expect("receiver role");
    let mut gate = Gate::new();
    let mut flooder = spawn("flood", &chan, &[(GATE, gate.env_value())]);
    let flood_id = peer_id(&mut flooder);
    let mut slow = spawn("slow", &chan, &[(GATE, gate.env_value())]);
    let slow_id = peer_id(&mut slow);
    assert_ne!(flood_id, slow_id);
    gate.open();

    // Receipt times of the latest flood messages (CLOCK_MONOTONIC, in
    // receipt order, so sorted); enough to count far past the bound.
    const KEEP: usize = 1 << 16;
    let mut flood_times: VecDeque<u64> = VecDeque::with_capacity(KEEP);
    let (mut floods, mut slows) = (0u64, 0u64);
    // Per slow message: flood messages received after its send began
    // (the clock read before `send`), and after its send had returned
    // (known when the next slow message brings that time).
    let mut overtakes: Vec<usize> = Vec::new();
    let mut after_commit: Vec<usize> = Vec::new();
    let mut prev_receipt = 0u64;
    let mut warmed = false;
    let floods_between = |times: &VecDeque<u64>, from: u64, to: u64| {
        times.partition_point(|&t| t <= to) - times.partition_point(|&t| t <= from)
    };
    let end = loop {
        let r = rx.recv_from_timeout(SETTLE);
        let now = monotonic_ns();
        let (msg, from) = match r {
            Ok(x) => x,
            Err(e) => break e,
        };
        let from = from.to_string();
        if from == flood_id {
            assert_eq!(message_number(&msg), floods, "flood: gap or reorder");
            floods += 1;
            if flood_times.len() == KEEP {
                flood_times.pop_front();
            }
            flood_times.push_back(now);
        } else if from == slow_id && !warmed {
            assert_eq!(
                msg,
                vec![0xa5; chan.max_message_len()],
                "the warm-up message"
            );
            warmed = true;
        } else if from == slow_id {
            assert_eq!(msg.len(), 24, "slow message {slows}");
            assert_eq!(word(&msg, 0), slows, "slow sender: gap or reorder");
            let (sent, prev_returned) = (word(&msg, 8), word(&msg, 16));
            assert!(
                sent <= now,
                "slow message {slows} received before it was sent"
            );
            overtakes.push(floods_between(&flood_times, sent, now));
            if slows > 0 {
                after_commit.push(floods_between(&flood_times, prev_returned, prev_receipt));
            }
            prev_receipt = now;
            slows += 1;
        } else {
            panic!("a message from {from}, neither {flood_id} nor {slow_id}");
        }
    };
    assert!(matches!(end, Error::Disconnected), "ended with {end:?}");
    flooder.expect_line(&format!("sent {floods}"));
    slow.expect_line(&format!("sent {SLOW_COUNT}"));
    flooder.join();
    slow.join();
    assert_eq!(slows, SLOW_COUNT, "every slow message, in order");

    let summary = |v: &[usize]| {
        let mut sorted = v.to_vec();
        sorted.sort_unstable();
        (sorted[sorted.len() / 2], sorted[sorted.len() - 1])
    };
    let (median, worst) = summary(&overtakes);
    let (median_c, worst_c) = summary(&after_commit);
    eprintln!(
        "fairness: {floods} flood messages; flood messages received before a slow \
         message, after its send began: median {median}, max {worst}; after its send \
         returned: median {median_c}, max {worst_c}"
    );
    // A message committed in one lane is received after at most
    // (lanes - 1) x TURN = 16 messages of the other lane. Counted from the
    // clock read right before `send`, the window also holds whatever the
    // flood sent while the slow sender was between that read and its
    // commit, and a slow sender preempted there (two cores, the test
    // binary's other tests beside it) can see any number: `worst` is
    // printed above, not asserted. The bound is asserted below, on the
    // window that starts after the commit.
    // Measured from when the send had returned, the window starts after
    // the commit, so the bound itself holds: at most TURN (a preemption
    // between the commit and the clock read only shortens the window). One more for
    // the flood message the receiver may have been taking at the commit
    // and timestamped after it.
    assert!(
        worst_c <= TURN as usize + 1,
        "a slow message, committed, was overtaken by {worst_c} flood messages \
         (bound {TURN}); all: {after_commit:?}"
    );
    assert!(
        floods > 10 * SLOW_COUNT,
        "the flood flooded ({floods} messages)"
    );
}

// ------------------------------------------------- 3. a sender SIGKILLed

/// How the victim of test 3 is killed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    /// Streaming: killed once the receiver has this many of its messages.
    MidStream(u64),
    /// Holding an uncommitted reservation after this many messages.
    Reserving(u64),
}

/// Messages of the sender that survives, and of the one that takes the
/// freed lane.
const OTHER: u64 = 20_000;
const NEWCOMER: u64 = 2_000;

fn killed_sender(victim: Victim) {
    let _serial = serial();
    let (chan, _guard) = lanes_channel(2);
    let mut rx = chan.receiver().expect("receiver role");

    // The victim claims lane 0, the other sender lane 1.
    let mut dying = match victim {
        Victim::MidStream(_) => spawn("stream", &chan, &[(COUNT, "forever".into())]),
        Victim::Reserving(k) => spawn("reserve_hang", &chan, &[(COUNT, k.to_string())]),
    };
    let dead_id = peer_id(&mut dying);
    if let Victim::Reserving(_) = victim {
        dying.expect_line("reserved");
    }
    // The other sender stops halfway until the victim is dead, so that
    // whatever the scheduler does, half its messages come after the kill.
    let mut gates = [Gate::new(), Gate::new()];
    let mut halfway = Gate::new();
    let mut other = spawn(
        "stream",
        &chan,
        &[
            (COUNT, OTHER.to_string()),
            (GATE, gates[0].env_value()),
            (PAUSE, format!("{} {}", OTHER / 2, halfway.env_value())),
        ],
    );
    let other_id = peer_id(&mut other);
    assert_ne!(other_id, dead_id);

    let kill_after = match victim {
        Victim::MidStream(n) | Victim::Reserving(n) => n,
    };
    let mut counts: HashMap<String, u64> = HashMap::new();
    let receive = |rx: &mut Receiver, counts: &mut HashMap<String, u64>| {
        let (msg, from) = rx.recv_from_timeout(SETTLE).expect("a message");
        let from = from.to_string();
        let next = counts.entry(from.clone()).or_default();
        // message_number checks every byte: a torn message fails here.
        assert_eq!(message_number(&msg), *next, "from {from}: gap or reorder");
        *next += 1;
        from
    };
    while counts.get(&dead_id).copied().unwrap_or(0) < kill_after {
        receive(&mut rx, &mut counts);
    }
    dying.kill();
    halfway.open();
    let other_at_kill = counts.get(&other_id).copied().unwrap_or(0);

    // A new sender takes the freed lane: a new id on the same lane.
    let mut newcomer = spawn(
        "stream",
        &chan,
        &[(COUNT, NEWCOMER.to_string()), (GATE, gates[1].env_value())],
    );
    let new_id = peer_id(&mut newcomer);
    assert_ne!(new_id, dead_id, "the newcomer has the dead sender's id");
    assert_ne!(new_id, other_id);
    assert_eq!(
        lane_of(&new_id),
        lane_of(&dead_id),
        "the freed lane is taken"
    );

    let mut dead_after_new = 0;
    let count_of = |counts: &HashMap<String, u64>, id: &str| counts.get(id).copied().unwrap_or(0);
    while count_of(&counts, &other_id) < OTHER || count_of(&counts, &new_id) < NEWCOMER {
        let from = receive(&mut rx, &mut counts);
        // The dead sender's prefix comes before the newcomer's messages in
        // their lane.
        if from == dead_id && count_of(&counts, &new_id) > 0 {
            dead_after_new += 1;
        }
        assert!(
            [&dead_id, &other_id, &new_id].contains(&&from),
            "a message from {from}"
        );
    }
    let dead = count_of(&counts, &dead_id);
    eprintln!(
        "killed sender ({victim:?}): its prefix 0..{dead} arrived; {} of the other \
         sender's messages after the kill",
        OTHER - other_at_kill
    );
    assert_eq!(
        dead_after_new, 0,
        "a dead sender's message after the newcomer's"
    );
    assert!(
        other_at_kill <= OTHER / 2,
        "the other sender paused halfway until the kill ({other_at_kill})"
    );
    match victim {
        Victim::MidStream(n) => assert!(dead >= n),
        Victim::Reserving(k) => assert_eq!(dead, k, "the committed prefix, not the reservation"),
    }

    // Every lane drained, both senders alive (waiting at their gates): no
    // message, and not Disconnected.
    let r = rx.try_recv_from();
    assert!(matches!(r, Err(Error::Empty)), "got {r:?}");
    let r = rx.recv_from_timeout(Duration::from_millis(20));
    assert!(matches!(r, Err(Error::Timeout)), "got {r:?}");
    // One sender leaves: still not Disconnected.
    gates[0].open();
    other.expect_line(&format!("sent {OTHER}"));
    other.join();
    let r = rx.recv_from_timeout(Duration::from_millis(20));
    assert!(matches!(r, Err(Error::Timeout)), "got {r:?}");
    gates[1].open();
    newcomer.expect_line(&format!("sent {NEWCOMER}"));
    newcomer.join();
    let end = rx.recv_from_timeout(SETTLE);
    assert!(matches!(end, Err(Error::Disconnected)), "got {end:?}");
}

#[test]
fn a_sender_killed_mid_stream_loses_nothing_committed_and_frees_its_lane() {
    killed_sender(Victim::MidStream(2_000));
}

#[test]
fn a_sender_killed_holding_a_reservation_publishes_nothing_of_it() {
    // 50 numbered messages (at most 56 bytes of ring each) and the
    // reservation fit in an empty 4 KiB lane: the victim never waits.
    killed_sender(Victim::Reserving(50));
}

// ----------------------------------------------- 4. the receiver SIGKILLed

#[test]
fn a_killed_receiver_wakes_every_parked_sender_and_the_next_gets_all() {
    const SENDERS: usize = 3;
    /// A wake-up by the kernel takes microseconds; a parked side without
    /// one notices the death at its next removal check (every 500 ms).
    const WAKE_LIMIT: Duration = Duration::from_millis(250);
    let _serial = serial();
    let (chan, _guard) = lanes_channel(SENDERS as u32);
    let mut receiver = spawn("recv_hang", &chan, &[]);
    receiver.expect_line("attached");
    let mut senders: Vec<Peer> = (0..SENDERS).map(|_| spawn("fill", &chan, &[])).collect();
    let ids: Vec<String> = senders.iter_mut().map(peer_id).collect();
    for s in &senders {
        wait_for(SETTLE, "a sender to park on its full lane", || {
            common::parked_on_sem(s.pid())
        });
    }

    let killed_at = Instant::now();
    receiver.kill();
    let mut committed = Vec::new();
    for s in &mut senders {
        committed.push(s.line_after("committed").parse::<u64>().expect("a count"));
        s.expect_line("end Disconnected");
    }
    let delay = killed_at.elapsed();
    eprintln!(
        "lanes: SIGKILL of the receiver -> {SENDERS} parked senders' Disconnected: {delay:?}"
    );
    assert!(delay < WAKE_LIMIT, "the senders noticed after {delay:?}");
    for s in senders {
        s.join();
    }

    let mut rx = chan.receiver().expect("a new receiver");
    let mut got: HashMap<String, u64> = HashMap::new();
    let end = loop {
        match rx.recv_from_timeout(SETTLE) {
            Ok((msg, from)) => {
                let next = got.entry(from.to_string()).or_default();
                assert_eq!(message_number(&msg), *next, "from {from}: gap or reorder");
                *next += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Error::Disconnected), "ended with {end:?}");
    let want: HashMap<String, u64> = ids.into_iter().zip(committed).collect();
    assert!(
        want.values().all(|&n| n > 0),
        "every lane took messages: {want:?}"
    );
    assert_eq!(got, want, "messages per sender: received vs committed");
}

// ------------------------------------------------- 5. RoleTaken, reclaim

#[test]
fn every_lane_held_is_role_taken_and_a_freed_lane_can_be_claimed() {
    let _serial = serial();
    let (chan, _guard) = lanes_channel(2);
    let mut gates = [Gate::new(), Gate::new()];
    let mut holders: Vec<Peer> = gates
        .iter()
        .map(|g| spawn("hold", &chan, &[(GATE, g.env_value())]))
        .collect();
    let ids: Vec<String> = holders.iter_mut().map(peer_id).collect();
    assert_ne!(ids[0], ids[1]);
    let taken = |r: Result<Sender, Error>| matches!(r, Err(Error::RoleTaken { .. }));
    assert!(
        taken(chan.sender()),
        "a third sender while two hold both lanes"
    );

    // A clean exit frees its lane.
    let killed = holders.pop().expect("two holders");
    let mut leaving = holders.pop().expect("two holders");
    gates[0].open();
    leaving.expect_line("released");
    leaving.join();
    let mine = chan.sender().expect("the lane freed by a clean exit");
    assert_eq!(lane_of(&mine.id().to_string()), lane_of(&ids[0]));
    assert_ne!(mine.id().to_string(), ids[0]);
    assert!(taken(chan.sender()), "both lanes held again");

    // So does a SIGKILL.
    killed.kill();
    let second = chan.sender().expect("the lane freed by a SIGKILL");
    assert_eq!(lane_of(&second.id().to_string()), lane_of(&ids[1]));
    assert_ne!(second.id().to_string(), ids[1]);
    assert!(taken(chan.sender()), "both lanes held by this process");
    drop((mine, second));
    let (a, b) = (chan.sender().expect("free"), chan.sender().expect("free"));
    assert!(taken(chan.sender()));
    drop((a, b));
    gates[1].open();
}

// ------------------------------------------ 6. 40,000 sessions, no leaks

const SESSIONS: u64 = 40_000;
/// The receiver's wake semaphore (docs/lanes.md, "Semaphores").
const RX_WAKE: i32 = 0;
/// The kernel's SEMVMX.
const SEMVMX: i32 = 32767;

/// Every lane can be claimed at once, and one sender more is `RoleTaken`.
fn assert_no_lane_leaked(chan: &Channel, lanes: usize) {
    let held: Vec<Sender> = (0..lanes)
        .map(|i| {
            chan.sender()
                .unwrap_or_else(|e| panic!("lane {i} of {lanes}: {e}"))
        })
        .collect();
    let r = chan.sender();
    assert!(matches!(r, Err(Error::RoleTaken { .. })), "got {r:?}");
    drop(held);
}

fn semval(chan: &Channel, num: i32) -> i32 {
    // SAFETY: GETVAL takes no fourth argument.
    let v = unsafe { libc::semctl(chan.sem_id(), num, libc::GETVAL) };
    assert!(v >= 0, "GETVAL: {}", std::io::Error::last_os_error());
    v
}

#[test]
fn forty_thousand_sender_sessions_exhaust_no_semaphore_and_leak_no_lane() {
    const LANES: usize = 4;
    let _serial = serial();
    let (chan, _guard) = lanes_channel(LANES as u32);
    let start = Instant::now();

    // No receiver at all: each session's clean release posts RX_WAKE, and
    // nobody drains it, so it reaches SEMVMX on the way.
    let mut committed = 0u64;
    for _ in 0..SESSIONS {
        let mut tx = chan.sender().expect("a session claims a lane");
        match tx.try_send(&numbered_message(committed)) {
            Ok(()) => committed += 1,
            Err(Error::Full) => {}
            Err(e) => panic!("try_send: {e}"),
        }
    }
    assert_eq!(
        semval(&chan, RX_WAKE),
        SEMVMX,
        "RX_WAKE after {SESSIONS} releases"
    );
    assert!(committed > 0);
    assert_no_lane_leaked(&chan, LANES);
    {
        // Sessions spread over the lanes (a claimer prefers an empty
        // lane): every message once, in order within its lane.
        let mut rx = chan.receiver().expect("receiver role");
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut seen = vec![false; committed as usize];
        for _ in 0..committed {
            let (msg, from) = rx.try_recv_from().expect("a committed message");
            let n = message_number(&msg);
            let lane = lane_of(&from.to_string()).to_owned();
            if let Some(&before) = last.get(&lane) {
                assert!(n > before, "lane {lane}: {n} after {before}");
            }
            last.insert(lane, n);
            assert!(!std::mem::replace(&mut seen[n as usize], true), "{n} twice");
        }
        let r = rx.try_recv_from();
        assert!(matches!(r, Err(Error::Disconnected)), "got {r:?}");
    }
    let alone = start.elapsed();

    // A receiver in another process drains; one sender holds a lane all
    // along, so that the receiver never sees every sender gone between two
    // sessions (that is `Disconnected`, by design).
    let mut drain = spawn("drain_count", &chan, &[(COUNT, SESSIONS.to_string())]);
    drain.expect_line("attached");
    let holder = chan.sender().expect("the holder");
    let mut ids = Vec::with_capacity(SESSIONS as usize);
    for seq in 0..SESSIONS {
        let mut tx = chan.sender().expect("a session claims a lane");
        ids.push(tx.id());
        tx.send(&numbered_message(seq)).expect("send");
    }
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "every session its own id");
    drop(holder);
    drain.expect_line(&format!("hash {:016x}", session_hash(&ids)));
    drain.expect_line("end Err(Disconnected)");
    drain.join();
    eprintln!(
        "lanes: {SESSIONS} sessions without a receiver ({committed} messages committed) in \
         {alone:?}; {SESSIONS} more to a receiver in another process in {:?}",
        start.elapsed() - alone
    );
    assert_no_lane_leaked(&chan, LANES);
}

#[test]
fn a_kept_message_comes_next_even_at_the_end_of_its_lanes_turn() {
    let _serial = serial();
    let (chan, _guard) = lanes_channel(2);
    let mut rx = chan.receiver().expect("receiver");
    let (mut a, mut b) = (claim(&chan), claim(&chan));
    for i in 0..=TURN {
        a.send(format!("a{i}").as_bytes()).expect("send on lane 0");
        b.send(format!("b{i}").as_bytes()).expect("send on lane 1");
    }
    // Each message is kept once before it is taken. Taking the last of a
    // lane's turn passes the turn on; keeping it must give the turn back,
    // so that the order is the one without keeps: a turn of each lane.
    let mut got = Vec::new();
    for _ in 0..2 * (TURN + 1) {
        let msg = rx.try_recv_ref().expect("a message");
        let first = msg.to_vec();
        msg.keep();
        let msg = rx.try_recv_ref().expect("the kept message");
        assert_eq!(&*msg, &first[..], "the kept message comes next");
        got.push(String::from_utf8(first).expect("utf-8"));
    }
    let turn =
        |lane: &'static str, from: u64, to: u64| (from..to).map(move |i| format!("{lane}{i}"));
    let want: Vec<String> = turn("a", 0, TURN)
        .chain(turn("b", 0, TURN))
        .chain(turn("a", TURN, TURN + 1))
        .chain(turn("b", TURN, TURN + 1))
        .collect();
    assert_eq!(got, want);
    assert!(matches!(rx.try_recv_ref(), Err(Error::Empty)));
}
