//! Model checking with loom: the ring and the wait protocol, in every
//! interleaving loom explores, for rings of 16 and 32 bytes.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --lib --release loom`
//! (see docs/verification.md). Under `--cfg loom` the crate's atomics and
//! fences are loom's (`crate::sync`), and the ring's data region is one
//! `loom::cell::UnsafeCell<u64>` per 8-byte word, so loom reports any read
//! of a frame that is not ordered after its write, and any write to a frame
//! that may still be read.
//!
//! What is checked:
//!
//! - no torn or reordered message: the receiver gets exactly the messages
//!   sent, byte for byte and in order, through wrap-around with a padding
//!   frame, a stale cached peer index, an empty message and a message of
//!   the largest size;
//! - no double release: at the end `head == tail`, and the space each frame
//!   took came back exactly once (the producer would see `head` beyond
//!   `tail` as corruption, which panics here);
//! - no lost wake-up: each side waits with the real `wait::wait` on a
//!   parker that counts posts like a semaphore and has no timeout; if a
//!   side parked while the other had published work and then ended, loom
//!   reports a deadlock;
//! - two senders, one receiver (the lanes of DESIGN.md, "Many senders": a
//!   ring per sender, one waiting flag and one wake semaphore for the
//!   receiver): every message of both lanes arrives, in order per lane,
//!   although only one of two senders racing to wake the receiver posts;
//!   the model also checks that it reaches that race (`Race`);
//! - a batch (`Producer::write_run`) of two messages behind a padding
//!   frame, against a consumer that reads runs (`Consumer::peek_ahead`)
//!   and releases each with one store of head: the messages arrive whole
//!   and in order whether the batch goes out in one publication or two
//!   (padding alone first), with both sides polling and with both sides
//!   waiting (a publication of padding alone must wake the consumer too);
//!   the model checks that it reaches both cases (`BATCH_RUNS`);
//! - an async receiver (`crate::helper`): its future runs the handshake
//!   and a helper thread parks for it; every message arrives against a
//!   blocking sender, through wrap-around, with futures that find the
//!   helper still parked for an earlier one; and a future dropped while
//!   its helper parks, followed by blocking receives, loses no wake-up
//!   because the blocking wait recalls the helper first (left out, loom
//!   finds the deadlock).
//!
//! A model that weakens one synchronisation point (`crate::sync::Point`)
//! must fail: that shows the model can see the bugs it is meant to catch.
//!
//! `unsafe` is allowed here to make a producer and a consumer over the
//! model's region, as the channel does over a segment.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use crate::error::Result;
use crate::helper::{Helper, Sleeper};
use crate::ring::{Consumer, Frame, Producer, RingPtrs, frame_size};
use crate::sync::{AtomicU32, AtomicU64, Ordering, Point, weaken};
use crate::wait::{self, Fences, Park, Phase};

/// A counting semaphore on loom's primitives: `post` adds one, `park`
/// waits for a post and takes it, `drain` takes every post without waiting.
/// Like `semtimedop(-1)` with no timeout, and `-value, IPC_NOWAIT`.
struct Sem {
    count: Mutex<u32>,
    posted: Condvar,
    /// Posts ever made, and announcements (waiting flag raised) ever made
    /// by the side that sleeps here: bookkeeping outside the model (loom
    /// runs one modelled thread at a time), so it adds no interleavings.
    posts: AtomicUsize,
    announced: AtomicUsize,
}

impl Sem {
    fn new() -> Sem {
        Sem {
            count: Mutex::new(0),
            posted: Condvar::new(),
            posts: AtomicUsize::new(0),
            announced: AtomicUsize::new(0),
        }
    }

    fn post(&self) {
        self.posts.fetch_add(1, Relaxed);
        *self.count.lock().unwrap() += 1;
        self.posted.notify_one();
    }

    /// Every post but the third party's answers one announcement: the
    /// waker's swap lets only one post through per raised flag, so surplus
    /// posts are bounded by the times the sleeper meant to sleep.
    fn assert_one_post_per_announcement(&self, third_party: usize) {
        let (posts, announced) = (self.posts.load(Relaxed), self.announced.load(Relaxed));
        assert!(
            posts <= announced + third_party,
            "{posts} posts for {announced} announcements"
        );
    }
}

std::thread_local! {
    /// What the modelled threads did in the current interleaving (loom
    /// runs them all on the OS thread of the test), printed if it fails.
    static TRACE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// The number of the current interleaving, from 1.
    static INTERLEAVING: Cell<usize> = const { Cell::new(0) };
}

/// Notes a step of the current interleaving.
fn note(what: String) {
    let who = format!("{:?}", thread::current().id());
    TRACE.with(|t| t.borrow_mut().push(format!("{who}: {what}")));
}

/// Prints the trace of the failing interleaving before the panic message.
fn print_trace_on_panic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let n = INTERLEAVING.with(Cell::get);
            TRACE.with(|t| {
                let trace = t.borrow().join("\n  ");
                eprintln!("@loom failed in interleaving {n}; model trace:\n  {trace}");
            });
            report(info)
        }));
    });
}

/// A side's parker on its own semaphore.
struct SemParker<'a>(&'a Sem);

impl Park for SemParker<'_> {
    fn park(&mut self, _deadline: Option<std::time::Instant>) -> Result<()> {
        let mut count = self.0.count.lock().unwrap();
        note(format!("park (count {})", *count));
        while *count == 0 {
            count = self.0.posted.wait(count).unwrap();
        }
        *count -= 1;
        note("unparked".into());
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        let mut c = self.0.count.lock().unwrap();
        note(format!("drain {}", *c));
        *c = 0;
        Ok(())
    }

    fn heavy_barrier(&mut self) -> Result<()> {
        unreachable!("the models check the symmetric form")
    }
}

/// A ring's part of the segment, on loom's primitives: the two indices
/// and the data region as checked cells.
struct Ring {
    head: AtomicU64,
    tail: AtomicU64,
    cells: Box<[UnsafeCell<u64>]>,
}

impl Ring {
    fn new(capacity: u64) -> Ring {
        Ring {
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            cells: (0..capacity / 8).map(|_| UnsafeCell::new(0)).collect(),
        }
    }

    fn capacity(&self) -> u64 {
        self.cells.len() as u64 * 8
    }

    fn ptrs(&self) -> RingPtrs {
        RingPtrs {
            head: NonNull::from(&self.head),
            tail: NonNull::from(&self.tail),
            data: NonNull::new(self.cells.as_ptr().cast_mut()).expect("a boxed slice"),
            capacity: self.capacity(),
        }
    }

    fn producer(&self) -> Producer {
        // SAFETY: every model keeps an Arc of the ring's owner alive in the
        // thread that uses the producer, and makes one producer per ring.
        unsafe { Producer::new(self.ptrs(), self.capacity() - 8) }.expect("a fresh ring")
    }

    fn consumer(&self) -> Consumer {
        // SAFETY: as for `producer`, with one consumer.
        unsafe { Consumer::new(self.ptrs(), self.capacity() - 8) }.expect("a fresh ring")
    }
}

/// What a one-sender segment holds: the ring, the two waiting flags and
/// the two wake semaphores.
struct Shared {
    ring: Ring,
    rx_waiting: AtomicU32,
    tx_waiting: AtomicU32,
    rx_wake: Sem,
    tx_wake: Sem,
}

impl Shared {
    fn new(capacity: u64) -> Arc<Shared> {
        Arc::new(Shared {
            ring: Ring::new(capacity),
            rx_waiting: AtomicU32::new(0),
            tx_waiting: AtomicU32::new(0),
            rx_wake: Sem::new(),
            tx_wake: Sem::new(),
        })
    }
}

/// The waker's half, as `Sender::commit` and `Receiver::release` do it.
fn wake(flag: &AtomicU32, sem: &Sem) {
    let n = wait::notify(flag, Fences::Symmetric);
    note(format!("notify -> {n}"));
    if n {
        sem.post();
    }
}

/// Message `i` of `len` bytes: no two messages of a model share a byte
/// pattern, so a torn or misplaced read shows.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (0x40 + i * 29 + j) as u8).collect()
}

/// Sends as `Sender::send` does: wait for room (the real `wait::wait`),
/// waking the receiver when a padding frame went out on the way; write;
/// commit; wake the receiver.
fn send_blocking(p: &mut Producer, s: &Shared, msg: &[u8]) {
    let len = msg.len() as u64;
    let off = wait::wait(
        &s.tx_waiting,
        Fences::Symmetric,
        Duration::ZERO,
        None,
        &mut SemParker(&s.tx_wake),
        |phase| {
            if phase == Phase::BeforePark {
                s.tx_wake.announced.fetch_add(1, Relaxed);
            }
            let room = p.try_reserve(len).expect("ring corrupt");
            note(format!("try_reserve {len} -> {room:?}"));
            if p.take_published_padding() {
                wake(&s.rx_waiting, &s.rx_wake);
            }
            Ok(room)
        },
    )
    .expect("the model's parker never fails");
    p.write_payload(off, msg);
    p.commit(len);
    note(format!("committed {len}"));
    wake(&s.rx_waiting, &s.rx_wake);
}

/// Receives as `Receiver::recv` does: wait for a frame (waking the sender
/// when padding was released on the way), copy it out, release, wake the
/// sender.
fn recv_blocking(c: &mut Consumer, s: &Shared) -> Vec<u8> {
    let frame: Frame = wait::wait(
        &s.rx_waiting,
        Fences::Symmetric,
        Duration::ZERO,
        None,
        &mut SemParker(&s.rx_wake),
        |phase| look(c, s, phase),
    )
    .expect("the model's parker never fails");
    take(c, s, frame)
}

/// Runs `model` in every interleaving loom explores (up to `preemptions`
/// preemptions, or all with `None`; `LOOM_MAX_PREEMPTIONS` overrides) and
/// prints how many that was.
fn check(name: &str, preemptions: Option<usize>, model: fn()) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    print_trace_on_panic();
    INTERLEAVING.with(|n| n.set(0));
    builder.check(move || {
        TRACE.with(|t| t.borrow_mut().clear());
        INTERLEAVING.with(|n| n.set(n.get() + 1));
        model();
    });
    let n = INTERLEAVING.with(Cell::get);
    eprintln!(
        "loom model {name}: {n} interleavings explored (preemption bound {:?})",
        builder.preemption_bound
    );
}

/// Lengths through a 32-byte ring: a 24-byte frame, then an 8-byte one
/// that does not fit before the end (a padding frame, and the producer's
/// cached head is stale), then an empty message.
const WRAP_32: [usize; 3] = [16, 8, 0];

/// The ring alone, both sides polling (yielding to loom between tries).
fn ring_alone() {
    let s = Shared::new(32);
    let tx = Arc::clone(&s);
    let producer = thread::spawn(move || {
        let mut p = tx.ring.producer();
        for (i, &len) in WRAP_32.iter().enumerate() {
            let msg = message(i, len);
            let off = loop {
                match p.try_reserve(len as u64).expect("ring corrupt") {
                    Some(off) => break off,
                    None => thread::yield_now(),
                }
            };
            p.write_payload(off, &msg);
            p.commit(len as u64);
        }
    });
    let mut c = s.ring.consumer();
    for (i, &len) in WRAP_32.iter().enumerate() {
        let frame = loop {
            match c.peek().expect("ring corrupt") {
                Some(frame) => break frame,
                None => thread::yield_now(),
            }
        };
        assert_eq!(c.read_payload(frame), message(i, len), "message {i}");
        c.release(frame);
    }
    producer.join().unwrap();
    assert_released(&s.ring);
}

/// Every byte published came back once: `head == tail`, at the sum of the
/// frames and the padding.
fn assert_released(r: &Ring) {
    let (head, tail) = (
        r.head.load(Ordering::Relaxed),
        r.tail.load(Ordering::Relaxed),
    );
    assert_eq!(
        head, tail,
        "head {head} and tail {tail} after the last release"
    );
}

/// Sender and receiver threads with the wait protocol, over `capacity`
/// bytes, sending `lens`; `extra_posts` adds a thread that posts both wake
/// semaphores once, as a peer's death or clean drop does.
fn streamed(capacity: u64, lens: &'static [usize], extra_posts: bool) {
    let s = Shared::new(capacity);
    let tx = Arc::clone(&s);
    let producer = thread::spawn(move || {
        let mut p = tx.ring.producer();
        for (i, &len) in lens.iter().enumerate() {
            send_blocking(&mut p, &tx, &message(i, len));
        }
    });
    let poster = extra_posts.then(|| {
        let s = Arc::clone(&s);
        thread::spawn(move || {
            note("post rx".into());
            s.rx_wake.post();
            note("post tx".into());
            s.tx_wake.post();
        })
    });
    let mut c = s.ring.consumer();
    for (i, &len) in lens.iter().enumerate() {
        assert_eq!(recv_blocking(&mut c, &s), message(i, len), "message {i}");
    }
    producer.join().unwrap();
    if let Some(poster) = poster {
        poster.join().unwrap();
    }
    assert_released(&s.ring);
    let third_party = usize::from(extra_posts);
    s.rx_wake.assert_one_post_per_announcement(third_party);
    s.tx_wake.assert_one_post_per_announcement(third_party);
}

/// Wrap-around in a 32-byte ring, both sides blocking.
fn wait_wrap() {
    streamed(32, &WRAP_32, false);
}

/// A 16-byte ring: every message (8 bytes, the largest) fills it, so the
/// sender waits for each release and the receiver for each commit.
fn wait_full() {
    streamed(16, &[8, 8, 8], false);
}

/// As `wait_full`, with surplus posts from a third party.
fn wait_surplus() {
    streamed(16, &[8, 8], true);
}

/// The receiver's wake semaphore, as an async helper parks on it
/// (`crate::helper`).
struct RxSleeper(Arc<Shared>);

// SAFETY: the helper thread touches only the semaphore (a loom mutex and
// condition variable); the ring's cells, which are not `Sync`, are loom's
// checked cells, used by the producer and the consumer only, and loom
// reports any access to them that is not ordered.
unsafe impl Send for RxSleeper {}
// SAFETY: as for `Send`.
unsafe impl Sync for RxSleeper {}

impl Sleeper for RxSleeper {
    fn park(&self) -> Result<()> {
        SemParker(&self.0.rx_wake).park(None)
    }

    fn post(&self) -> Result<()> {
        note("recall: post rx".into());
        self.0.rx_wake.post();
        Ok(())
    }

    fn channel(&self) -> String {
        "model".into()
    }

    fn name(&self) -> &'static str {
        "model-helper"
    }
}

/// The receiver's look, as `receiver::frame_poll` makes it (blocking and
/// async): a frame, and the sender woken when padding was released on the
/// way.
fn look(c: &mut Consumer, s: &Shared, phase: Phase) -> Result<Option<Frame>> {
    if phase == Phase::BeforePark {
        s.rx_wake.announced.fetch_add(1, Relaxed);
    }
    let frame = c.peek().expect("ring corrupt");
    note(format!("peek ({phase:?}) -> {frame:?}"));
    if c.take_released_padding() {
        wake(&s.tx_waiting, &s.tx_wake);
    }
    Ok(frame)
}

/// One poll of an async receive (`helper::poll_wait`, no spinning).
fn poll_recv(
    c: &mut Consumer,
    s: &Shared,
    helper: &mut Helper<RxSleeper>,
    spun: &mut Option<std::time::Instant>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Frame> {
    let r = crate::helper::poll_wait(
        &s.rx_waiting,
        Fences::Symmetric,
        Duration::ZERO,
        spun,
        helper,
        cx,
        &mut SemParker(&s.rx_wake),
        |phase| look(c, s, phase),
    );
    r.map(|f| f.expect("the model's parker never fails"))
}

/// Takes frame `frame` as `Receiver::recv` and `recv_async` do: copies it
/// out, releases it, wakes the sender.
fn take(c: &mut Consumer, s: &Shared, frame: Frame) -> Vec<u8> {
    let msg = c.read_payload(frame);
    c.release(frame);
    note("released".into());
    wake(&s.tx_waiting, &s.tx_wake);
    msg
}

/// A blocking sender against an async receiver whose helper thread parks
/// for it: every message arrives, none is lost to a wake-up that went to
/// the helper before or after its park.
fn async_receiver(capacity: u64, lens: &'static [usize]) {
    let s = Shared::new(capacity);
    let tx = Arc::clone(&s);
    let producer = thread::spawn(move || {
        let mut p = tx.ring.producer();
        for (i, &len) in lens.iter().enumerate() {
            send_blocking(&mut p, &tx, &message(i, len));
        }
    });
    let mut helper = Helper::new(RxSleeper(Arc::clone(&s)));
    let mut c = s.ring.consumer();
    for (i, &len) in lens.iter().enumerate() {
        let mut spun = None;
        let frame = loom::future::block_on(std::future::poll_fn(|cx| {
            poll_recv(&mut c, &s, &mut helper, &mut spun, cx)
        }));
        assert_eq!(take(&mut c, &s, frame), message(i, len), "message {i}");
    }
    // Stops and joins the helper thread: one post of its own if a park
    // was still under way (a later future found its message first).
    drop(helper);
    producer.join().unwrap();
    assert_released(&s.ring);
    s.rx_wake.assert_one_post_per_announcement(1);
}

/// An async receive polled once and dropped (its helper may be parked by
/// then), then blocking receives: the blocking wait recalls the helper
/// first, so the two never park on the semaphore at once and no wake-up
/// goes to the helper instead of the waiting thread.
fn async_cancelled(capacity: u64, lens: &'static [usize]) {
    let s = Shared::new(capacity);
    let tx = Arc::clone(&s);
    let producer = thread::spawn(move || {
        let mut p = tx.ring.producer();
        for (i, &len) in lens.iter().enumerate() {
            send_blocking(&mut p, &tx, &message(i, len));
        }
    });
    let mut helper = Helper::new(RxSleeper(Arc::clone(&s)));
    let mut c = s.ring.consumer();
    let mut first = 0;
    let mut spun = None;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if let std::task::Poll::Ready(frame) = poll_recv(&mut c, &s, &mut helper, &mut spun, &mut cx) {
        assert_eq!(take(&mut c, &s, frame), message(0, lens[0]), "message 0");
        first = 1;
    }
    // The future is dropped here; the receiver blocks from now on.
    helper.recall();
    for (i, &len) in lens.iter().enumerate().skip(first) {
        assert_eq!(recv_blocking(&mut c, &s), message(i, len), "message {i}");
    }
    drop(helper);
    producer.join().unwrap();
    assert_released(&s.ring);
    // The recall may add one post of its own (the drop none: no park is
    // under way after a recall).
    s.rx_wake.assert_one_post_per_announcement(1);
}

/// Async receiver, a 16-byte ring full with each message.
fn async_full() {
    async_receiver(16, &[8, 8]);
}

/// Async receiver through wrap-around with padding.
fn async_wrap() {
    async_receiver(32, &WRAP_32);
}

/// An async receive dropped, then blocking ones.
fn async_then_blocking() {
    async_cancelled(16, &[8, 8]);
}

/// Many senders (DESIGN.md, "Many senders"): one lane per sender, each
/// lane a ring of its own, and on the receiver's side one waiting flag and
/// one wake semaphore that any sender may post.
struct Lanes {
    lanes: [Ring; 2],
    rx_waiting: AtomicU32,
    rx_wake: Sem,
    race: Race,
}

/// Bookkeeping outside the model, as in `Sem`: whether an interleaving
/// reached the race the two-sender model is about.
struct Race {
    /// The receiver's rounds: each a poll that found every lane empty, just
    /// before the receiver drains and raises its flag.
    rounds: AtomicUsize,
    /// Per lane, the round in which its sender last won the flag.
    won: [AtomicUsize; 2],
    /// Per lane, the last message whose sender posted nothing because the
    /// other sender had taken the flag down in the same round, and that
    /// round.
    lost: [(AtomicUsize, AtomicUsize); 2],
    /// A sender lost the race.
    any_lost: AtomicBool,
    /// The receiver found a message that lost the race in its last check
    /// of a later round, after raising the flag again.
    found_later: AtomicBool,
}

const UNSET: usize = usize::MAX;

impl Race {
    fn new() -> Race {
        let none = || AtomicUsize::new(UNSET);
        Race {
            rounds: AtomicUsize::new(0),
            won: [none(), none()],
            lost: [(none(), none()), (none(), none())],
            any_lost: AtomicBool::new(false),
            found_later: AtomicBool::new(false),
        }
    }

    /// The sender of `lane` notified after committing message `i`.
    fn notified(&self, lane: usize, i: usize, won: bool) {
        let round = self.rounds.load(Relaxed);
        if won {
            self.won[lane].store(round, Relaxed);
        } else if self.won[1 - lane].load(Relaxed) == round {
            self.lost[lane].0.store(i, Relaxed);
            self.lost[lane].1.store(round, Relaxed);
            self.any_lost.store(true, Relaxed);
        }
    }

    /// The receiver found message `i` of `lane` in its poll of `phase`.
    fn found(&self, lane: usize, i: usize, phase: Phase) {
        let (msg, round) = &self.lost[lane];
        if phase == Phase::BeforePark
            && msg.load(Relaxed) == i
            && round.load(Relaxed) < self.rounds.load(Relaxed)
        {
            self.found_later.store(true, Relaxed);
        }
    }

    /// Adds this interleaving's outcome to the model's counts.
    fn count(&self) {
        COUNTS.with(|c| {
            let (lost, found_later) = c.get();
            c.set((
                lost + usize::from(self.any_lost.load(Relaxed)),
                found_later + usize::from(self.found_later.load(Relaxed)),
            ));
        });
    }
}

std::thread_local! {
    /// Interleavings of the current model in which a sender lost the race
    /// to wake the receiver, and in which the receiver found the loser's
    /// message only after raising its flag again (see `Race`).
    static COUNTS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Message `i` of lane `lane`: no two messages of the model, in either
/// lane, share a byte pattern.
fn lane_message(lane: usize, i: usize, len: usize) -> Vec<u8> {
    message(4 * lane + i, len)
}

/// Two senders, each sending `lens` into its own lane, and one receiver
/// that takes every message of both lanes, parking at once (spin budget 0)
/// whenever it finds them all empty. The lanes are large enough for all
/// their messages, so only the receiver ever waits. A sender commits and
/// then wakes the receiver as `Sender::send` does: F2, and a post only if
/// its `swap` took the flag down; with both senders racing, one of them
/// at most posts per announcement. The receiver's poll looks at every
/// lane, round-robin from the lane after the last one served, in the
/// spin phase and in its last check after raising the flag.
fn two_senders(lens: &'static [usize]) {
    let capacity = lens
        .iter()
        .map(|&len| frame_size(len as u64))
        .sum::<u64>()
        .next_power_of_two()
        .max(16);
    let s = Arc::new(Lanes {
        lanes: [Ring::new(capacity), Ring::new(capacity)],
        rx_waiting: AtomicU32::new(0),
        rx_wake: Sem::new(),
        race: Race::new(),
    });
    let senders = [0, 1].map(|lane| {
        let tx = Arc::clone(&s);
        thread::spawn(move || {
            let mut p = tx.lanes[lane].producer();
            for (i, &len) in lens.iter().enumerate() {
                let off = p
                    .try_reserve(len as u64)
                    .expect("ring corrupt")
                    .expect("a lane holds all its sender's messages");
                if p.take_published_padding() {
                    wake(&tx.rx_waiting, &tx.rx_wake);
                }
                p.write_payload(off, &lane_message(lane, i, len));
                p.commit(len as u64);
                note(format!("lane {lane}: committed {len}"));
                // As `wake`, noting who won: no loom operation between
                // the swap in `notify` and the note of the round.
                let won = wait::notify(&tx.rx_waiting, Fences::Symmetric);
                note(format!("lane {lane}: notify -> {won}"));
                tx.race.notified(lane, i, won);
                if won {
                    tx.rx_wake.post();
                }
            }
        })
    });
    let mut consumers = [s.lanes[0].consumer(), s.lanes[1].consumer()];
    let mut received = [0; 2];
    let mut next = 0;
    for _ in 0..2 * lens.len() {
        let (lane, frame) = wait::wait(
            &s.rx_waiting,
            Fences::Symmetric,
            Duration::ZERO,
            None,
            &mut SemParker(&s.rx_wake),
            |phase| {
                if phase == Phase::BeforePark {
                    s.rx_wake.announced.fetch_add(1, Relaxed);
                }
                for lane in [next, 1 - next] {
                    let frame = consumers[lane].peek().expect("ring corrupt");
                    note(format!("lane {lane}: peek -> {frame:?}"));
                    if let Some(frame) = frame {
                        s.race.found(lane, received[lane], phase);
                        return Ok(Some((lane, frame)));
                    }
                }
                if phase == Phase::Spin {
                    s.race.rounds.fetch_add(1, Relaxed);
                }
                Ok(None)
            },
        )
        .expect("the model's parker never fails");
        let c = &mut consumers[lane];
        let msg = c.read_payload(frame);
        c.release(frame);
        let i = received[lane];
        assert!(i < lens.len(), "lane {lane}: more messages than sent");
        assert_eq!(
            msg,
            lane_message(lane, i, lens[i]),
            "lane {lane}, message {i}"
        );
        received[lane] += 1;
        next = 1 - lane;
    }
    for sender in senders {
        sender.join().unwrap();
    }
    for ring in &s.lanes {
        assert_released(ring);
    }
    s.rx_wake.assert_one_post_per_announcement(0);
    s.race.count();
}

/// Two senders, one 8-byte message each.
fn two_senders_one_each() {
    two_senders(&[8]);
}

/// Two senders, two 8-byte messages each.
fn two_senders_two_each() {
    two_senders(&[8, 8]);
}

/// A batch model's messages in a 32-byte ring: a first one sent alone,
/// then a batch of two.
#[derive(Debug, Clone, Copy)]
struct BatchCase {
    first: usize,
    batch: [usize; 2],
}

/// A first message of 16 bytes (a 24-byte frame), then a batch of an
/// 8-byte and an empty message. The first of the batch does not fit in
/// the 8 bytes before the end: padding, then both at offset 0, where there
/// is room once the consumer has released the first message. So the batch
/// goes out in one store of tail (padding and both frames) or in two
/// (padding alone, then both), as the consumer goes.
const ONE_OR_TWO: BatchCase = BatchCase {
    first: 16,
    batch: [8, 0],
};

/// A first message of 8 bytes (16-byte frame), then a batch of a 16-byte
/// and an empty message: the first of the batch goes behind 16 bytes of
/// padding, at offset 0, where there is room only once the consumer has
/// skipped the padding too. So the padding always goes out alone, and the
/// consumer must be woken for it.
const PADDING_FIRST: BatchCase = BatchCase {
    first: 8,
    batch: [16, 0],
};

std::thread_local! {
    /// Interleavings of the current batch model in which the batch went
    /// out in one publication, and in which it took more.
    static BATCH_RUNS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Counts how a batch went out: `runs` publications.
fn count_batch_runs(runs: usize) {
    BATCH_RUNS.with(|c| {
        let (one, more) = c.get();
        c.set(match runs {
            1 => (one + 1, more),
            _ => (one, more + 1),
        });
    });
}

impl BatchCase {
    /// The batch's messages, numbered after the first one.
    fn batch(self) -> Vec<Vec<u8>> {
        self.batch
            .iter()
            .enumerate()
            .map(|(i, &len)| message(1 + i, len))
            .collect()
    }

    /// Every message, in order.
    fn all(self) -> Vec<Vec<u8>> {
        let mut all = vec![message(0, self.first)];
        all.extend(self.batch());
        all
    }
}

/// Reads a run as `Receiver::recv_many` does, from `first` (taken by a
/// peek): the frames behind it by `peek_ahead`, then one release.
fn read_run(c: &mut Consumer, first: Frame) -> Vec<Vec<u8>> {
    let mut got = vec![c.read_payload(first)];
    let mut ahead = frame_size(u64::from(first.len));
    while let Some(f) = c.peek_ahead(&mut ahead, &mut ()).expect("ring corrupt") {
        got.push(c.read_payload(f));
        ahead += frame_size(u64::from(f.len));
    }
    note(format!("release run of {} ({ahead} bytes)", got.len()));
    c.release_run(ahead);
    got
}

/// The batch model with both sides polling (yielding to loom between
/// tries).
fn batch_polling(case: BatchCase) {
    let s = Shared::new(32);
    let tx = Arc::clone(&s);
    let producer = thread::spawn(move || {
        let mut p = tx.ring.producer();
        let off = loop {
            match p.try_reserve(case.first as u64).expect("ring corrupt") {
                Some(off) => break off,
                None => thread::yield_now(),
            }
        };
        p.write_payload(off, &message(0, case.first));
        p.commit(case.first as u64);
        let batch = case.batch();
        let (mut sent, mut runs) = (0, 0);
        while sent < batch.len() {
            let run = p.write_run(&batch[sent..], false).expect("ring corrupt");
            note(format!("write_run -> {run:?}"));
            runs += usize::from(run.published);
            sent += run.sent;
            if sent < batch.len() {
                thread::yield_now();
            }
        }
        count_batch_runs(runs);
    });
    let mut c = s.ring.consumer();
    let mut got = Vec::new();
    while got.len() < 1 + case.batch.len() {
        match c.peek().expect("ring corrupt") {
            Some(first) => got.extend(read_run(&mut c, first)),
            None => thread::yield_now(),
        }
    }
    producer.join().unwrap();
    assert_eq!(got, case.all());
    assert_released(&s.ring);
}

/// Sends a batch as `Sender::send_batch` does: each run waits for room
/// (the real `wait::wait`), and every publication, padding alone
/// included, is followed by one wake-up check of the receiver.
fn send_batch_blocking(p: &mut Producer, s: &Shared, msgs: &[Vec<u8>]) -> usize {
    let (mut sent, mut runs) = (0, 0);
    while sent < msgs.len() {
        let run = wait::wait(
            &s.tx_waiting,
            Fences::Symmetric,
            Duration::ZERO,
            None,
            &mut SemParker(&s.tx_wake),
            |phase| {
                if phase == Phase::BeforePark {
                    s.tx_wake.announced.fetch_add(1, Relaxed);
                }
                let run = p.write_run(&msgs[sent..], false).expect("ring corrupt");
                note(format!("write_run -> {run:?}"));
                if run.published {
                    runs += 1;
                    wake(&s.rx_waiting, &s.rx_wake);
                }
                Ok((run.sent > 0).then_some(run))
            },
        )
        .expect("the model's parker never fails");
        sent += run.sent;
    }
    runs
}

/// Receives a run as `Receiver::recv_many` does: waits for a first frame
/// (waking the sender when padding was released on the way), reads the
/// run, releases it, wakes the sender once.
fn recv_run_blocking(c: &mut Consumer, s: &Shared) -> Vec<Vec<u8>> {
    let first = wait::wait(
        &s.rx_waiting,
        Fences::Symmetric,
        Duration::ZERO,
        None,
        &mut SemParker(&s.rx_wake),
        |phase| look(c, s, phase),
    )
    .expect("the model's parker never fails");
    let got = read_run(c, first);
    wake(&s.tx_waiting, &s.tx_wake);
    got
}

/// The batch model with both sides waiting, parking at once.
fn batch_blocking(case: BatchCase) {
    let s = Shared::new(32);
    let tx = Arc::clone(&s);
    let producer = thread::spawn(move || {
        let mut p = tx.ring.producer();
        send_blocking(&mut p, &tx, &message(0, case.first));
        let runs = send_batch_blocking(&mut p, &tx, &case.batch());
        count_batch_runs(runs);
    });
    let mut c = s.ring.consumer();
    let mut got = Vec::new();
    while got.len() < 1 + case.batch.len() {
        got.extend(recv_run_blocking(&mut c, &s));
    }
    producer.join().unwrap();
    assert_eq!(got, case.all());
    assert_released(&s.ring);
    s.rx_wake.assert_one_post_per_announcement(0);
    s.tx_wake.assert_one_post_per_announcement(0);
}

fn batch_polling_one_or_two() {
    batch_polling(ONE_OR_TWO);
}

fn batch_blocking_one_or_two() {
    batch_blocking(ONE_OR_TWO);
}

fn batch_blocking_padding_first() {
    batch_blocking(PADDING_FIRST);
}

/// Runs a batch model as `check` does, and checks which ways the batch
/// went out: in one publication in some interleavings (when `one`) and
/// in more in others.
fn check_batch(name: &str, preemptions: Option<usize>, model: fn(), one: bool) {
    BATCH_RUNS.with(|c| c.set((0, 0)));
    check(name, preemptions, model);
    let (once, more) = BATCH_RUNS.with(Cell::get);
    eprintln!(
        "loom model {name}: the batch went out in one publication in {once} interleavings, \
         in more in {more}"
    );
    assert_eq!(
        once > 0,
        one,
        "{name}: went out in one publication {once} times"
    );
    assert!(
        more > 0,
        "{name}: the batch always went out in one publication"
    );
}

#[test]
fn loom_batch_polling() {
    check_batch("batch_polling", None, batch_polling_one_or_two, true);
}

#[test]
fn loom_batch_blocking() {
    check_batch("batch_blocking", Some(5), batch_blocking_one_or_two, true);
}

#[test]
fn loom_batch_blocking_padding_first() {
    check_batch(
        "batch_blocking_padding_first",
        Some(5),
        batch_blocking_padding_first,
        false,
    );
}

#[test]
fn loom_ring_alone() {
    check("ring_alone", None, ring_alone);
}

#[test]
fn loom_wait_wrap() {
    check("wait_wrap", Some(5), wait_wrap);
}

#[test]
fn loom_wait_full() {
    check("wait_full", Some(5), wait_full);
}

#[test]
fn loom_wait_surplus_posts() {
    check("wait_surplus_posts", Some(3), wait_surplus);
}

#[test]
fn loom_async_receiver_full() {
    check("async_receiver_full", Some(3), async_full);
}

#[test]
fn loom_async_receiver_wrap() {
    check("async_receiver_wrap", Some(2), async_wrap);
}

#[test]
fn loom_async_cancelled_then_blocking() {
    check(
        "async_cancelled_then_blocking",
        Some(3),
        async_then_blocking,
    );
}

/// Runs a two-sender model as `check` does, and checks that it reached
/// the race it is about: a sender finding the flag already taken down by
/// the other in the same round, so posting nothing, and the receiver
/// finding that sender's message only in the last check of a later round.
fn check_two_senders(name: &str, preemptions: Option<usize>, model: fn()) {
    COUNTS.with(|c| c.set((0, 0)));
    check(name, preemptions, model);
    let (lost, found_later) = COUNTS.with(Cell::get);
    eprintln!(
        "loom model {name}: a sender lost the race to wake the receiver in {lost} \
         interleavings, its message found after a new announcement in {found_later}"
    );
    assert!(lost > 0, "{name}: no sender ever lost the race");
    assert!(
        found_later > 0,
        "{name}: no lost race was caught by a later announcement"
    );
}

#[test]
fn loom_two_senders_one_each() {
    check_two_senders("two_senders_one_each", Some(5), two_senders_one_each);
}

#[test]
fn loom_two_senders_two_each() {
    check_two_senders("two_senders_two_each", Some(2), two_senders_two_each);
}

/// Env var naming the point a child run weakens (see `must_fail`).
const WEAKEN_ENV: &str = "SHMCHAN_LOOM_WEAKEN";

/// The models that run with a point weakened, by name.
fn weakened_model(name: &str) -> (Point, Option<usize>, fn()) {
    match name {
        "NotifyFence" => (Point::NotifyFence, Some(3), wait_full),
        "AnnounceFence" => (Point::AnnounceFence, Some(3), wait_full),
        "TailRelease" => (Point::TailRelease, None, ring_alone),
        "HeadRelease" => (Point::HeadRelease, Some(3), wait_full),
        "TwoSenders/NotifyFence" => (Point::NotifyFence, Some(3), two_senders_one_each),
        "TwoSenders/AnnounceFence" => (Point::AnnounceFence, Some(3), two_senders_one_each),
        "TwoSenders/TailRelease" => (Point::TailRelease, Some(3), two_senders_one_each),
        "Batch/TailRelease" => (Point::TailRelease, None, batch_polling_one_or_two),
        "Batch/HeadRelease" => (Point::HeadRelease, None, batch_polling_one_or_two),
        "Batch/NotifyFence" => (Point::NotifyFence, Some(3), batch_blocking_padding_first),
        "Async/AnnounceFence" => (Point::AnnounceFence, Some(3), async_full),
        "Async/Recall" => (Point::Recall, Some(3), async_then_blocking),
        other => panic!("no weakened model {other}"),
    }
}

/// Not a test of its own: the child process of `must_fail`, which runs
/// one model with one point weakened (a loom deadlock report unwinds
/// through the model's other threads and aborts, so it cannot be caught
/// in the parent's process).
#[test]
fn loom_weakened_child() {
    let Ok(name) = std::env::var(WEAKEN_ENV) else {
        return;
    };
    let (point, preemptions, model) = weakened_model(&name);
    weaken::set(Some(point));
    check(&format!("{name} weakened"), preemptions, model);
    weaken::set(None);
    eprintln!("@loom found nothing wrong with {name} weakened");
}

/// Runs the model of `name` with its point weakened, in a child process
/// (this test binary again), and returns what loom reported: the child
/// must fail.
fn must_fail(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args(["loom_model::loom_weakened_child", "--exact", "--nocapture"])
        .args(["--test-threads=1"])
        .env(WEAKEN_ENV, name)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run the weakened model");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && !stderr.contains("@loom found nothing wrong"),
        "loom found nothing wrong with {name} weakened:\n{stderr}"
    );
    let report = stderr
        .lines()
        .filter(|l| {
            l.contains("deadlock") || l.contains("Causality violation") || l.contains("@loom")
        })
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("loom with {name} weakened: {}\n{report}", out.status);
    report
}

#[test]
fn loom_async_catches_missing_announce_fence() {
    assert!(must_fail("Async/AnnounceFence").contains("deadlock"));
}

#[test]
fn loom_async_catches_missing_recall() {
    assert!(must_fail("Async/Recall").contains("deadlock"));
}

#[test]
fn loom_catches_missing_notify_fence() {
    assert!(must_fail("NotifyFence").contains("deadlock"));
}

#[test]
fn loom_catches_missing_announce_fence() {
    assert!(must_fail("AnnounceFence").contains("deadlock"));
}

#[test]
fn loom_catches_relaxed_tail_store() {
    assert!(must_fail("TailRelease").contains("Causality violation"));
}

#[test]
fn loom_catches_relaxed_head_store() {
    assert!(must_fail("HeadRelease").contains("Causality violation"));
}

#[test]
fn loom_two_senders_catch_missing_notify_fence() {
    assert!(must_fail("TwoSenders/NotifyFence").contains("deadlock"));
}

#[test]
fn loom_two_senders_catch_missing_announce_fence() {
    assert!(must_fail("TwoSenders/AnnounceFence").contains("deadlock"));
}

#[test]
fn loom_two_senders_catch_relaxed_tail_store() {
    assert!(must_fail("TwoSenders/TailRelease").contains("Causality violation"));
}

#[test]
fn loom_batch_catches_relaxed_tail_store() {
    assert!(must_fail("Batch/TailRelease").contains("Causality violation"));
}

#[test]
fn loom_batch_catches_relaxed_head_store() {
    assert!(must_fail("Batch/HeadRelease").contains("Causality violation"));
}

#[test]
fn loom_batch_catches_missing_notify_fence() {
    assert!(must_fail("Batch/NotifyFence").contains("deadlock"));
}
