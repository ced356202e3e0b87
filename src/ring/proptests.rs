//! Property tests of everything the ring reads from shared memory: a third
//! party overwrites the indices and words of the data region between
//! valid sends and receives, and the ring must answer with the data that
//! was sent (with the third party's bytes where it wrote into a payload)
//! or with `Corrupt`, never panic (debug assertions are on in tests) and
//! never touch memory outside the region.
//!
//! The region sits between two `PROT_NONE` guard pages, its end against
//! the second one, so a read or write past either end of a 4096-byte ring
//! (or past the end of a smaller one) kills the test with SIGSEGV.
//!
//! The oracle mirrors the ring: the frames published and not yet released,
//! where each starts, and what each message holds. A corruption is then
//! either harmless (free space, padding bodies), or changes a message's
//! bytes (expected as changed), or must be reported (the other side's
//! index changed, a frame header no honest producer writes there), or is a
//! well-formed forgery (a plausible frame header, a plausible tail), after
//! which the consumer's answers can no longer be predicted and are only
//! checked for bounds.
//!
//! Cases: `PROPTEST_CASES` (default 1024 here; docs/verification.md gives
//! the figures of the CI run and of a long local run).

use std::collections::VecDeque;
use std::ptr::NonNull;

use proptest::prelude::*;

use super::*;

/// A ring whose data region lies between two inaccessible pages.
struct GuardedRing {
    map: NonNull<u8>,
    map_len: usize,
    data: NonNull<u8>,
    capacity: u64,
    head: Box<AtomicU64>,
    tail: Box<AtomicU64>,
}

const PAGE: usize = 4096;

impl GuardedRing {
    fn new(capacity: u64) -> GuardedRing {
        let data_pages = (capacity as usize).div_ceil(PAGE);
        let map_len = (data_pages + 2) * PAGE;
        // SAFETY: an anonymous private mapping; no pointer of ours is involved.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED, "mmap");
        let map = NonNull::new(map.cast::<u8>()).expect("mmap returned null");
        // SAFETY: both guard pages lie inside the mapping just made.
        unsafe {
            let first = map.as_ptr().cast();
            let last = map.as_ptr().add(map_len - PAGE).cast();
            assert_eq!(libc::mprotect(first, PAGE, libc::PROT_NONE), 0);
            assert_eq!(libc::mprotect(last, PAGE, libc::PROT_NONE), 0);
        }
        // SAFETY: the data region ends exactly at the second guard page.
        let data = unsafe { map.add(map_len - PAGE - capacity as usize) };
        GuardedRing {
            map,
            map_len,
            data,
            capacity,
            head: Box::new(AtomicU64::new(0)),
            tail: Box::new(AtomicU64::new(0)),
        }
    }

    fn ptrs(&self) -> RingPtrs {
        RingPtrs {
            head: NonNull::from(&*self.head),
            tail: NonNull::from(&*self.tail),
            data: self.data,
            capacity: self.capacity,
        }
    }

    fn max_message(&self) -> u64 {
        self.capacity - FRAME_HEADER
    }

    /// The third party: writes a word of the region (8-aligned offset).
    fn write_word(&self, off: u64, word: u64) {
        assert!(off % 8 == 0 && off + 8 <= self.capacity);
        // SAFETY: in bounds and aligned, checked above.
        unsafe {
            self.data
                .as_ptr()
                .add(off as usize)
                .cast::<u64>()
                .write_volatile(word)
        };
    }
}

impl Drop for GuardedRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once. An error could
        // only mean it is not mapped, and then there is nothing to release.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

/// Message number `seq` of `len` bytes.
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8) ^ 0x5a)
        .collect()
}

/// What the third party does.
#[derive(Debug, Clone)]
enum Corruption {
    /// Writes the shared head.
    Head(u64),
    /// Writes the shared tail.
    Tail(u64),
    /// Writes the word at an offset of the region.
    Word { off: u64, word: u64 },
    /// Writes the header word of the next unread frame (if any).
    NextHeader(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    /// `Producer::write_run` of messages of these lengths, with `refill`
    /// or not.
    Batch(Vec<usize>, bool),
    Recv,
    /// A run of at most this many frames, released together
    /// (`Consumer::peek_ahead`, `release_run`).
    RecvRun(usize),
    Corrupt(Corruption),
}

/// Index values a hostile or buggy peer might write: near the real ones,
/// unaligned, huge, and anything.
fn index_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..64).prop_map(|k| k * 8),
        0u64..20_000,
        Just(u64::MAX),
        Just(1u64 << 60),
        Just((1u64 << 60) + 8),
        any::<u64>(),
    ]
}

/// Frame header words: known and unknown kinds, lengths at the edges.
fn header_word() -> impl Strategy<Value = u64> {
    let kind = prop_oneof![
        Just(0u32),
        Just(KIND_MESSAGE),
        Just(KIND_PADDING),
        Just(3u32),
        any::<u32>()
    ];
    let len = prop_oneof![
        0u32..64,
        4000u32..4200,
        Just(u32::MAX),
        Just(u32::MAX - 7),
        any::<u32>(),
    ];
    prop_oneof![
        (len, kind).prop_map(|(len, kind)| u64::from(len) | (u64::from(kind) << 32)),
        any::<u64>(),
    ]
}

fn corruption(capacity: u64) -> impl Strategy<Value = Corruption> {
    prop_oneof![
        index_value().prop_map(Corruption::Head),
        index_value().prop_map(Corruption::Tail),
        (0..capacity / 8, header_word())
            .prop_map(|(w, word)| Corruption::Word { off: w * 8, word }),
        header_word().prop_map(Corruption::NextHeader),
    ]
}

fn op(capacity: u64) -> impl Strategy<Value = Op> {
    let max = (capacity - FRAME_HEADER) as usize;
    prop_oneof![
        4 => prop_oneof![0..=max.min(40), 0..=max, Just(max)].prop_map(Op::Send),
        2 => (batch_lens(max), any::<bool>()).prop_map(|(lens, refill)| Op::Batch(lens, refill)),
        4 => Just(Op::Recv),
        2 => (1usize..6).prop_map(Op::RecvRun),
        1 => corruption(capacity).prop_map(Op::Corrupt),
    ]
}

/// The lengths of a batch's messages, each at most `max`.
fn batch_lens(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![0..=max.min(40), 0..=max], 0..6)
}

/// A frame the oracle knows to be published and not yet released.
#[derive(Debug, Clone)]
struct Published {
    pos: u64,
    size: u64,
    /// `None` for padding.
    msg: Option<Vec<u8>>,
}

/// What the consumer is expected to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The queued frames, exactly.
    Exact,
    /// `Corrupt` at its next call (its own index was changed).
    CorruptNow,
    /// `Corrupt` when it reaches the first queued frame.
    CorruptAtNextFrame,
    /// Anything in bounds: a well-formed forgery was written.
    Anything,
}

/// The ring under test, the oracle, and the state of both sides.
struct Harness {
    ring: GuardedRing,
    producer: Option<Producer>,
    consumer: Option<Consumer>,
    /// Published, unreleased frames, oldest first.
    queue: VecDeque<Published>,
    /// The producer's own tail (private) and the consumer's own head.
    tail: u64,
    head: u64,
    seq: u64,
    rx: Expect,
    /// The producer's next call must report corruption.
    tx_corrupt_now: bool,
}

impl Harness {
    fn new(capacity: u64) -> Harness {
        let ring = GuardedRing::new(capacity);
        let max = ring.max_message();
        // SAFETY: the ring outlives both sides (fields drop in order, and
        // the sides are dropped explicitly first in `drop`).
        let producer = unsafe { Producer::new(ring.ptrs(), max) }.unwrap();
        // SAFETY: as above.
        let consumer = unsafe { Consumer::new(ring.ptrs(), max) }.unwrap();
        Harness {
            ring,
            producer: Some(producer),
            consumer: Some(consumer),
            queue: VecDeque::new(),
            tail: 0,
            head: 0,
            seq: 0,
            rx: Expect::Exact,
            tx_corrupt_now: false,
        }
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Send(len) => self.send(*len),
            Op::Batch(lens, refill) => self.batch(lens, *refill),
            Op::Recv => self.recv(),
            Op::RecvRun(max) => self.recv_run(*max),
            Op::Corrupt(c) => {
                self.corrupt(c);
                Ok(())
            }
        }
    }

    fn send(&mut self, len: usize) -> Result<(), TestCaseError> {
        let Some(p) = self.producer.as_mut() else {
            return Ok(());
        };
        let off = match p.try_reserve(len as u64) {
            Err(_) => {
                self.producer = None;
                return Ok(());
            }
            Ok(off) => off,
        };
        let padded = p.take_published_padding();
        if self.tx_corrupt_now {
            // The producer compares tail with its own copy whenever it
            // reloads head, which a reservation that found no room did; a
            // padding frame would have written tail back first.
            prop_assert!(
                padded || off.is_some(),
                "tail was changed under the producer, which reloaded head without noticing"
            );
            // Written back by the padding or by the commit below.
            self.tx_corrupt_now = false;
        }
        if padded {
            let to_end = self.ring.capacity - self.tail % self.ring.capacity;
            self.publish(to_end, None);
        }
        let Some(off) = off else { return Ok(()) };
        let p = self.producer.as_mut().expect("checked above");
        let msg = message(self.seq, len);
        self.seq += 1;
        prop_assert_eq!(off, self.tail % self.ring.capacity + FRAME_HEADER);
        // SAFETY: try_reserve reserved len bytes at off (a stray write
        // would hit a guard page).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), p.payload(off), len) };
        p.commit(len as u64);
        self.publish(frame_size(len as u64), Some(msg));
        Ok(())
    }

    fn batch(&mut self, lens: &[usize], refill: bool) -> Result<(), TestCaseError> {
        let Some(p) = self.producer.as_mut() else {
            return Ok(());
        };
        let msgs: Vec<Vec<u8>> = (self.seq..)
            .zip(lens)
            .map(|(seq, &len)| message(seq, len))
            .collect();
        let run = match p.write_run(&msgs, refill) {
            Err(_) => {
                self.producer = None;
                return Ok(());
            }
            Ok(run) => run,
        };
        if self.tx_corrupt_now {
            // Without a publication the run found no room for its first
            // frame, so it reloaded head, and compared tail first.
            prop_assert!(
                run.published || msgs.is_empty(),
                "tail was changed under the producer, which reloaded head without noticing"
            );
            self.tx_corrupt_now = !run.published;
        }
        let cap = self.ring.capacity;
        let bytes: usize = lens[..run.sent].iter().sum();
        prop_assert_eq!(run.bytes, bytes as u64);
        for msg in msgs.into_iter().take(run.sent) {
            let size = frame_size(msg.len() as u64);
            let to_end = cap - self.tail % cap;
            if size > to_end {
                self.publish(to_end, None);
            }
            self.publish(size, Some(msg));
            self.seq += 1;
        }
        // Published with the run: its own end (over any forged tail), and
        // beyond its messages at most the padding for the first one left
        // out.
        let shared = self.ring.tail.load(Ordering::Relaxed);
        if run.published && shared != self.tail {
            let to_end = cap - self.tail % cap;
            prop_assert_eq!(shared, self.tail + to_end, "the run's end");
            self.publish(to_end, None);
        }
        Ok(())
    }

    fn publish(&mut self, size: u64, msg: Option<Vec<u8>>) {
        self.queue.push_back(Published {
            pos: self.tail,
            size,
            msg,
        });
        self.tail += size;
    }

    fn recv(&mut self) -> Result<(), TestCaseError> {
        let Some(c) = self.consumer.as_mut() else {
            return Ok(());
        };
        let got = match c.peek() {
            Err(_) => None,
            Ok(None) => Some(None),
            Ok(Some(frame)) => {
                prop_assert!(u64::from(frame.len) <= self.ring.max_message());
                prop_assert!(
                    u64::from(frame.offset.get()) + u64::from(frame.len) <= self.ring.capacity
                );
                // SAFETY: peek validated the frame; a read out of the region
                // would hit a guard page.
                let bytes =
                    unsafe { std::slice::from_raw_parts(c.payload(frame), frame.len as usize) }
                        .to_vec();
                c.release(frame);
                Some(Some(bytes))
            }
        };
        let ok = got.is_some();
        self.check_recv(got)?;
        if ok {
            // The consumer found its own head in place when it started
            // and has only moved it since: the shared head is its own.
            let own = self.ring.head.load(Ordering::Relaxed);
            if self.rx == Expect::Exact {
                prop_assert_eq!(own, self.head, "the consumer's head");
            }
            self.head = own;
        }
        Ok(())
    }

    fn recv_run(&mut self, max: usize) -> Result<(), TestCaseError> {
        let Some(c) = self.consumer.as_mut() else {
            return Ok(());
        };
        // What each look gave, as `recv` reports it: `None` for `Corrupt`.
        let mut looks = Vec::new();
        let mut ahead = 0;
        while looks.len() < max {
            let found = match ahead {
                0 => c.peek(),
                _ => c.peek_ahead(&mut ahead, &mut ()),
            };
            let frame = match found {
                Err(_) => {
                    looks.push(None);
                    break;
                }
                Ok(None) => {
                    looks.push(Some(None));
                    break;
                }
                Ok(Some(frame)) => frame,
            };
            prop_assert!(u64::from(frame.len) <= self.ring.max_message());
            prop_assert!(
                u64::from(frame.offset.get()) + u64::from(frame.len) <= self.ring.capacity
            );
            // SAFETY: peek / peek_ahead validated the frame; a read out of
            // the region would hit a guard page.
            let bytes = unsafe { std::slice::from_raw_parts(c.payload(frame), frame.len as usize) }
                .to_vec();
            looks.push(Some(Some(bytes)));
            ahead += frame_size(u64::from(frame.len));
        }
        // Released together, those read before any corruption met too (as
        // the receiver does), padding passed on the way included.
        if ahead > 0 {
            c.release_run(ahead);
        }
        let ok = looks.last().is_some_and(Option::is_some);
        for got in looks {
            self.check_recv(got)?;
        }
        if ok && self.consumer.is_some() {
            let own = self.ring.head.load(Ordering::Relaxed);
            if self.rx == Expect::Exact {
                prop_assert_eq!(own, self.head, "the consumer's head after a run");
            }
            self.head = own;
        }
        Ok(())
    }

    /// `got`: `None` for `Corrupt`, else what peek returned.
    fn check_recv(&mut self, got: Option<Option<Vec<u8>>>) -> Result<(), TestCaseError> {
        if got.is_none() {
            self.consumer = None;
        }
        match self.rx {
            Expect::CorruptNow => prop_assert!(got.is_none(), "head changed: {:?}", got),
            Expect::Anything => {}
            Expect::CorruptAtNextFrame if !self.queue.is_empty() => {
                prop_assert!(got.is_none(), "bad header read as {:?}", got);
            }
            Expect::Exact | Expect::CorruptAtNextFrame => {
                while self.queue.front().is_some_and(|f| f.msg.is_none()) {
                    let pad = self.queue.pop_front().unwrap();
                    self.head = pad.pos + pad.size;
                }
                let first = self.queue.front().cloned();
                self.expect_exact(first, got)?;
            }
        }
        Ok(())
    }

    fn expect_exact(
        &mut self,
        first: Option<Published>,
        got: Option<Option<Vec<u8>>>,
    ) -> Result<(), TestCaseError> {
        match first {
            None => prop_assert_eq!(got, Some(None), "nothing was queued"),
            Some(frame) => {
                prop_assert_eq!(&got, &Some(frame.msg.clone()), "frame at {}", frame.pos);
                self.queue.pop_front();
                self.head = frame.pos + frame.size;
            }
        }
        Ok(())
    }

    fn corrupt(&mut self, c: &Corruption) {
        match *c {
            Corruption::Head(v) => {
                self.ring.head.store(v, Ordering::Relaxed);
                if v != self.head && self.consumer.is_some() {
                    self.rx = Expect::CorruptNow;
                } else if self.rx == Expect::CorruptNow {
                    // Put back before the consumer looked, but the producer
                    // may have trusted the wrong head meanwhile.
                    self.rx = Expect::Anything;
                }
            }
            Corruption::Tail(v) => {
                self.ring.tail.store(v, Ordering::Relaxed);
                self.tx_corrupt_now = v != self.tail && self.producer.is_some();
                if v != self.tail {
                    self.untrust_consumer();
                }
            }
            Corruption::Word { off, word } => self.corrupt_word(off, word),
            Corruption::NextHeader(word) => {
                if let Some(first) = self.queue.front() {
                    let off = first.pos % self.ring.capacity;
                    self.corrupt_word(off, word);
                }
            }
        }
    }

    fn untrust_consumer(&mut self) {
        if self.rx != Expect::CorruptNow {
            self.rx = Expect::Anything;
        }
    }

    fn corrupt_word(&mut self, off: u64, word: u64) {
        self.ring.write_word(off, word);
        let cap = self.ring.capacity;
        // Which queued frame, if any, holds that word now?
        let hit = self.queue.iter().position(|f| {
            let start = f.pos % cap;
            (start..start + f.size).contains(&off)
        });
        let Some(i) = hit else { return }; // free space: harmless
        let frame = &mut self.queue[i];
        let start = frame.pos % cap;
        if off == start {
            let verdict = judge_header(word, start, cap, frame);
            self.header_verdict(i, verdict);
        } else if let Some(msg) = frame.msg.as_mut() {
            // A payload word: the message now holds the third party's bytes.
            let at = (off - start - FRAME_HEADER) as usize;
            for (k, b) in word.to_ne_bytes().iter().enumerate() {
                if let Some(slot) = msg.get_mut(at + k) {
                    *slot = *b;
                }
            }
        } // else a padding frame's body, which nobody reads
    }

    fn header_verdict(&mut self, i: usize, verdict: Header) {
        match verdict {
            // Written back as it was: a bad header put there before is gone.
            Header::Same if i == 0 && self.rx == Expect::CorruptAtNextFrame => {
                self.rx = Expect::Exact;
            }
            Header::Same => {}
            Header::Invalid if i == 0 && self.rx == Expect::Exact => {
                self.rx = Expect::CorruptAtNextFrame;
            }
            // A bad header further on, or a plausible one anywhere: what
            // comes out of the ring after it is not predictable here.
            Header::Invalid | Header::Plausible => self.untrust_consumer(),
        }
    }
}

/// How a header word written over a queued frame's header reads.
enum Header {
    Same,
    Invalid,
    Plausible,
}

fn judge_header(word: u64, start: u64, cap: u64, frame: &Published) -> Header {
    let (len, kind) = (word & 0xffff_ffff, (word >> 32) as u32);
    let to_end = cap - start;
    let original = match &frame.msg {
        Some(m) => (m.len() as u64, KIND_MESSAGE),
        None => (frame.size - FRAME_HEADER, KIND_PADDING),
    };
    if (len, kind) == original {
        return Header::Same;
    }
    // The kind is the low 8 bits; a message's upper 24 are its sender's tag.
    let plausible = match kind & 0xff {
        KIND_MESSAGE => len <= cap - FRAME_HEADER && frame_size(len) <= to_end,
        KIND_PADDING => FRAME_HEADER + len == to_end,
        _ => false,
    };
    if plausible {
        Header::Plausible
    } else {
        Header::Invalid
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The sides point into the ring: drop them before it.
        self.producer = None;
        self.consumer = None;
    }
}

/// Cases per property: `PROPTEST_CASES`, else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// A page-sized ring (guards at both ends), any corruption.
    #[test]
    fn page_ring_survives_corruption(ops in prop::collection::vec(op(4096), 1..200)) {
        let mut h = Harness::new(4096);
        for op in &ops {
            h.run(op)?;
        }
    }

    /// A 64-byte ring (guard at its end): wraps, pads and fills all the time.
    #[test]
    fn small_ring_survives_corruption(ops in prop::collection::vec(op(64), 1..300)) {
        let mut h = Harness::new(64);
        for op in &ops {
            h.run(op)?;
        }
    }

    /// Valid traffic alone: exactly what was sent comes out, through any
    /// mix of sizes, fills and wraps.
    #[test]
    fn traffic_alone_is_exact(sends in prop::collection::vec((0usize..=56, 0usize..4), 1..300)) {
        let mut h = Harness::new(64);
        for (len, recvs) in sends {
            h.run(&Op::Send(len))?;
            for _ in 0..recvs {
                h.run(&Op::Recv)?;
            }
        }
        prop_assert!(h.producer.is_some() && h.consumer.is_some());
    }

    /// Valid traffic alone, in batches and runs too: exactly what was
    /// sent comes out.
    #[test]
    fn batches_and_runs_alone_are_exact(ops in prop::collection::vec((batch_lens(56), any::<bool>(), 1usize..6, 0usize..3), 1..200)) {
        let mut h = Harness::new(64);
        for (lens, refill, run, recvs) in ops {
            h.run(&Op::Batch(lens, refill))?;
            h.run(&Op::RecvRun(run))?;
            for _ in 0..recvs {
                h.run(&Op::Recv)?;
            }
        }
        prop_assert!(h.producer.is_some() && h.consumer.is_some());
    }
}
