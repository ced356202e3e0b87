//! The ring on a heap buffer: wrap-around, padding, validation, and two
//! threads streaming through it.

use std::ptr::NonNull;
use std::sync::Arc;

use super::*;

/// A ring on the heap: indices plus data, 8-aligned.
struct HeapRing {
    head: AtomicU64,
    tail: AtomicU64,
    data: Box<[u64]>,
}

impl HeapRing {
    fn new(capacity: u64) -> Arc<HeapRing> {
        Arc::new(HeapRing {
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            data: vec![0u64; capacity as usize / 8].into_boxed_slice(),
        })
    }

    fn ptrs(&self) -> RingPtrs {
        RingPtrs {
            head: NonNull::from(&self.head),
            tail: NonNull::from(&self.tail),
            data: NonNull::new(self.data.as_ptr() as *mut u8).unwrap(),
            capacity: self.data.len() as u64 * 8,
        }
    }

    fn producer(&self) -> Producer {
        let cap = self.data.len() as u64 * 8;
        // SAFETY: the HeapRing outlives the producer in every test below.
        unsafe { Producer::new(self.ptrs(), max_message_for(cap)) }.unwrap()
    }

    fn consumer(&self) -> Consumer {
        let cap = self.data.len() as u64 * 8;
        // SAFETY: as for `producer`.
        unsafe { Consumer::new(self.ptrs(), max_message_for(cap)) }.unwrap()
    }

    fn write_word(&self, off: u64, word: u64) {
        // SAFETY: test helper on an in-bounds, 8-aligned offset.
        unsafe {
            (self.data.as_ptr() as *mut u64)
                .add(off as usize / 8)
                .write(word)
        };
    }
}

fn send(p: &mut Producer, msg: &[u8]) -> bool {
    match p.try_reserve(msg.len() as u64).unwrap() {
        Some(off) => {
            // SAFETY: try_reserve reserved msg.len() bytes at off.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), p.payload(off), msg.len()) };
            p.commit(msg.len() as u64);
            true
        }
        None => false,
    }
}

fn recv(c: &mut Consumer) -> Option<Vec<u8>> {
    recv_paced(c, &mut ())
}

fn recv_paced(c: &mut Consumer, pace: &mut impl Pace) -> Option<Vec<u8>> {
    let frame = c.peek_paced(pace).unwrap()?;
    // SAFETY: peek validated the frame.
    let v = unsafe { std::slice::from_raw_parts(c.payload(frame), frame.len as usize) }.to_vec();
    c.release(frame);
    Some(v)
}

#[test]
fn frames_are_aligned_to_eight() {
    assert_eq!(frame_size(0), 8);
    assert_eq!(frame_size(1), 16);
    assert_eq!(frame_size(8), 16);
    assert_eq!(frame_size(9), 24);
}

#[test]
fn max_message_fits_wherever_the_ring_stands() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let max = vec![0xab; 4088];
    for start in [0usize, 1, 100, 4000] {
        assert!(send(&mut p, &vec![1; start]));
        assert_eq!(recv(&mut c).unwrap().len(), start);
        // The big one needs the padding skipped first: not in one try.
        if !send(&mut p, &max) {
            assert_eq!(recv(&mut c), None, "only padding was queued");
            assert!(p.take_published_padding() || start == 0);
            assert!(send(&mut p, &max));
        }
        assert_eq!(recv(&mut c).unwrap(), max);
    }
}

#[test]
fn empty_message_in_the_last_eight_bytes() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, &[3; 4080]));
    assert_eq!(recv(&mut c).unwrap().len(), 4080);
    assert!(send(&mut p, b""), "an empty frame fits the last 8 bytes");
    assert_eq!(recv(&mut c).unwrap(), b"");
    assert!(send(&mut p, b"after"));
    assert_eq!(recv(&mut c).unwrap(), b"after");
}

#[test]
fn lone_padding_is_not_a_message() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, &[3; 100]));
    assert!(holds_messages(&ring.ptrs()));
    assert_eq!(recv(&mut c).unwrap().len(), 100);
    assert!(!holds_messages(&ring.ptrs()));
    assert!(!send(&mut p, &[4; 4088]), "needs the padding skipped first");
    assert!(p.take_published_padding());
    assert!(!holds_messages(&ring.ptrs()), "only padding is queued");
}

#[test]
fn full_ring_refuses_then_accepts_after_release() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let mut sent = 0;
    while send(&mut p, &[7; 100]) {
        sent += 1;
    }
    assert_eq!(sent, 4096 / 112);
    assert_eq!(recv(&mut c).unwrap(), [7; 100]);
    assert!(send(&mut p, &[7; 100]));
}

#[test]
fn head_beyond_tail_is_corrupt() {
    let ring = HeapRing::new(4096);
    let mut p = ring.producer();
    while send(&mut p, &[1; 500]) {}
    ring.head.store(1 << 20, Ordering::Relaxed);
    assert!(p.try_reserve(500).is_err());
}

#[test]
fn tail_beyond_capacity_is_corrupt() {
    let ring = HeapRing::new(4096);
    let mut c = ring.consumer();
    ring.tail.store(8192, Ordering::Relaxed);
    assert!(c.peek().is_err());
}

#[test]
fn someone_else_writing_our_index_is_corrupt() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, b"x"));
    ring.head.store(8, Ordering::Relaxed);
    assert!(c.peek().is_err());

    // The producer compares when it reloads head, which it does when its
    // cached head says the ring is full.
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, b"x"));
    assert!(send(&mut p, &[7; 4096 - 24]));
    assert_eq!(recv(&mut c).as_deref(), Some(&b"x"[..]));
    assert!(recv(&mut c).is_some());
    ring.tail.store(64, Ordering::Relaxed);
    assert!(p.try_reserve(1).is_err());
}

#[test]
fn a_producer_writes_its_own_tail_back_over_a_forged_one() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, b"x"));
    ring.tail.store(64, Ordering::Relaxed);
    // Room by its cached head: no reload, no look at tail; its commit
    // publishes its own tail again, and the consumer reads both messages.
    assert!(send(&mut p, b"y"));
    assert_eq!(ring.tail.load(Ordering::Relaxed), 32);
    assert_eq!(recv(&mut c).as_deref(), Some(&b"x"[..]));
    assert_eq!(recv(&mut c).as_deref(), Some(&b"y"[..]));
}

#[test]
fn bad_frames_are_corrupt() {
    let cases = [
        (
            u64::from(KIND_MESSAGE) << 32 | 100,
            "length past committed bytes",
        ),
        (
            u64::from(KIND_MESSAGE) << 32 | 5000,
            "length beyond the maximum",
        ),
        (9u64 << 32, "unknown kind"),
        (u64::from(KIND_PADDING) << 32 | 8, "padding not to the end"),
    ];
    for (word, what) in cases {
        let ring = HeapRing::new(4096);
        let (mut p, mut c) = (ring.producer(), ring.consumer());
        assert!(send(&mut p, &[0; 16]));
        ring.write_word(0, word);
        assert!(c.peek().is_err(), "{what}");
    }
}

#[test]
fn two_threads_stream_in_order() {
    let ring = HeapRing::new(4096);
    let n = 200_000u32;
    let writer = {
        let ring = Arc::clone(&ring);
        std::thread::spawn(move || {
            let mut p = ring.producer();
            for i in 0..n {
                let len = (i as usize * 7919) % 600 + 4;
                let mut msg = vec![(i % 251) as u8; len];
                msg[..4].copy_from_slice(&i.to_le_bytes());
                while !send(&mut p, &msg) {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let mut c = ring.consumer();
    for i in 0..n {
        let msg = loop {
            if let Some(m) = recv(&mut c) {
                break m;
            }
            std::hint::spin_loop();
        };
        assert_eq!(msg.len(), (i as usize * 7919) % 600 + 4);
        assert_eq!(msg[..4], i.to_le_bytes());
        assert!(msg[4..].iter().all(|&b| b == (i % 251) as u8));
    }
    writer.join().unwrap();
}

#[test]
fn a_streaming_consumer_that_caught_up_waits_once() {
    use crate::wait::CatchUp;
    use std::time::{Duration, Instant};
    let ring = HeapRing::new(1 << 16);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let mut pace = CatchUp::new(1 << 16);
    // Long enough that no scheduling hiccup passes for it.
    let pause = Duration::from_millis(300);
    pace.set_pause(pause);
    let timed = |c: &mut Consumer, pace: &mut CatchUp| {
        let start = Instant::now();
        let got = recv_paced(c, pace).expect("a message");
        (got, start.elapsed())
    };

    // A message that ends a wait on an empty ring is read at once.
    assert_eq!(recv_paced(&mut c, &mut pace), None);
    assert!(send(&mut p, b"one"));
    let (got, took) = timed(&mut c, &mut pace);
    assert_eq!(got, b"one");
    assert!(
        took < pause,
        "the first message after an empty ring waited {took:?}"
    );

    // Streaming (the last reload found data): a reload that finds only a
    // little more waits once.
    assert!(send(&mut p, b"two"));
    let (got, took) = timed(&mut c, &mut pace);
    assert_eq!(got, b"two");
    assert!(
        took >= pause,
        "a caught-up streaming consumer did not wait ({took:?})"
    );

    // Still streaming, but the reload finds 8 KiB or more: no wait.
    for _ in 0..3 {
        assert!(send(&mut p, &[5; 4000]));
    }
    let (got, took) = timed(&mut c, &mut pace);
    assert_eq!(got.len(), 4000);
    assert!(took < pause, "a reload that found a batch waited {took:?}");
    recv_paced(&mut c, &mut pace).unwrap();
    recv_paced(&mut c, &mut pace).unwrap();

    // Found empty: no longer streaming, so the next message is not delayed.
    assert_eq!(recv_paced(&mut c, &mut pace), None);
    assert!(send(&mut p, b"three"));
    let (got, took) = timed(&mut c, &mut pace);
    assert_eq!(got, b"three");
    assert!(
        took < pause,
        "a message after an empty ring waited {took:?}"
    );

    // Streaming again, the same thread sending and receiving: the pause
    // after "two" found nothing new, so the next 16 chances to pause pass
    // unused ("five", then 15 more), and the 17th pauses again.
    assert!(send(&mut p, b"five"));
    let (_, took) = timed(&mut c, &mut pace);
    assert!(
        took < pause,
        "the first chance after a pause that did not pay waited {took:?}"
    );
    for i in 0..15 {
        assert!(send(&mut p, b"more"));
        let (_, took) = timed(&mut c, &mut pace);
        assert!(
            took < pause,
            "chance {i} after a pause that did not pay waited {took:?}"
        );
    }
    assert!(send(&mut p, b"again"));
    let (_, took) = timed(&mut c, &mut pace);
    assert!(took >= pause, "the 17th chance did not pause ({took:?})");

    // Zero turns the wait off.
    pace.set_pause(Duration::ZERO);
    assert!(send(&mut p, b"four"));
    let (_, took) = timed(&mut c, &mut pace);
    assert!(took < pause, "catch-up 0 still waited {took:?}");
}

// ---- Batches (`Producer::write_run`) and runs (`Consumer::peek_ahead`)

/// Receives a run: the next frame and those behind it in the cache (up to
/// `max`), released together; returns the payloads.
fn recv_run(c: &mut Consumer, max: usize) -> Vec<Vec<u8>> {
    let Some(first) = c.peek().unwrap() else {
        return Vec::new();
    };
    let copy = |c: &Consumer, f: Frame| {
        // SAFETY: peek / peek_ahead validated the frame.
        unsafe { std::slice::from_raw_parts(c.payload(f), f.len as usize) }.to_vec()
    };
    let mut got = vec![copy(c, first)];
    let mut ahead = frame_size(u64::from(first.len));
    while got.len() < max {
        let Some(f) = c.peek_ahead(&mut ahead, &mut ()).unwrap() else {
            break;
        };
        got.push(copy(c, f));
        ahead += frame_size(u64::from(f.len));
    }
    c.release_run(ahead);
    got
}

#[test]
fn a_batch_that_fits_is_one_run() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; usize::from(i) * 3]).collect();
    let run = p.write_run(&msgs, false).unwrap();
    let bytes: u64 = msgs.iter().map(|m| m.len() as u64).sum();
    assert_eq!((run.sent, run.bytes, run.published), (10, bytes, true));
    let frames: u64 = msgs.iter().map(|m| frame_size(m.len() as u64)).sum();
    assert_eq!(ring.tail.load(Ordering::Relaxed), frames);
    assert_eq!(recv_run(&mut c, 100), msgs);
    assert_eq!(
        ring.head.load(Ordering::Relaxed),
        frames,
        "released once, all"
    );
}

#[test]
fn a_batch_stops_at_the_first_message_without_room() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let msgs = vec![[7u8; 100]; 50];
    let run = p.write_run(&msgs, false).unwrap();
    assert_eq!(run.sent, 4096 / 112, "36 frames of 112 bytes fit");
    assert_eq!(
        ring.tail.load(Ordering::Relaxed),
        4096,
        "the 37th goes behind padding to the end (64 bytes), which there is room \
         for: published with the run"
    );
    // Full: nothing more, nothing published.
    let more = p.write_run(&msgs[run.sent..], false).unwrap();
    assert_eq!(more, Run::default());
    assert_eq!(recv_run(&mut c, 100).len(), 36);
    let rest = p.write_run(&msgs[run.sent..], false).unwrap();
    assert_eq!(rest.sent, 14);
}

#[test]
fn a_batch_across_the_end_carries_its_padding() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, &[1; 3992])); // a 4000-byte frame: 96 bytes to the end
    assert_eq!(recv(&mut c).unwrap().len(), 3992);
    // 40 + 48 bytes of frames fit before the end, the third (48) does
    // not: padding of 8 bytes, then the third and fourth at offset 0.
    let msgs = [vec![2u8; 32], vec![3; 40], vec![4; 40], vec![5; 0]];
    let run = p.write_run(&msgs, false).unwrap();
    assert_eq!(run.sent, 4);
    assert_eq!(
        ring.tail.load(Ordering::Relaxed),
        4000 + 40 + 48 + 8 + 48 + 8,
        "frames and padding, published by one store"
    );
    assert!(
        !p.take_published_padding(),
        "padding in a run is published with it, and woken for with it"
    );
    assert_eq!(recv_run(&mut c, 100), msgs);
    assert!(!c.take_released_padding(), "released with the run");
    assert_eq!(ring.head.load(Ordering::Relaxed), 4000 + 152);
}

#[test]
fn a_batch_publishes_padding_alone_when_the_frame_after_it_has_no_room() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, &[1; 100]));
    assert_eq!(recv(&mut c).unwrap().len(), 100);
    assert!(send(&mut p, &[1; 3900])); // to 4016: 80 bytes to the end
    let run = p.write_run(&[[9u8; 200]], false).unwrap();
    assert_eq!((run.sent, run.published), (0, true), "padding only");
    assert_eq!(ring.tail.load(Ordering::Relaxed), 4096);
    assert_eq!(recv(&mut c).unwrap().len(), 3900);
    assert_eq!(recv(&mut c), None, "padding skipped, no message");
    let run = p.write_run(&[[9u8; 200]], false).unwrap();
    assert_eq!(run.sent, 1);
    assert_eq!(recv(&mut c).unwrap(), [9; 200]);
}

#[test]
fn a_refilling_batch_waits_for_the_slack() {
    let ring = HeapRing::new(1 << 16);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let msgs = vec![[3u8; 1016]; 100]; // 1 KiB frames
    let run = p.write_run(&msgs, true).unwrap();
    assert_eq!(run.sent, 64, "the ring, full");
    assert_eq!(recv_run(&mut c, 2).len(), 2);
    // 2 KiB free, not the frame and REFILL (4 KiB) more.
    assert_eq!(p.write_run(&msgs, true).unwrap().sent, 0);
    assert_eq!(
        p.write_run(&msgs, false).unwrap().sent,
        2,
        "a try takes any room"
    );
    assert_eq!(recv_run(&mut c, 5).len(), 5);
    assert_eq!(
        p.write_run(&msgs, true).unwrap().sent,
        5,
        "room for one and REFILL"
    );
}

#[test]
fn a_batch_meeting_corruption_publishes_nothing_of_its_run() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, &[1; 4000]));
    assert_eq!(recv(&mut c).unwrap().len(), 4000);
    ring.head.store(1 << 20, Ordering::Relaxed);
    let msgs = vec![[2u8; 40]; 10];
    // Two fit by the cached head (96 bytes to the end of the ring, which
    // was free when head was last loaded), the third needs a reload.
    assert!(p.write_run(&msgs, false).is_err());
    assert_eq!(ring.tail.load(Ordering::Relaxed), 4008, "nothing published");
}

#[test]
fn a_run_reads_ahead_and_releases_once() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    for i in 0..5u8 {
        assert!(send(&mut p, &[i; 10]));
    }
    let first = c.peek().unwrap().unwrap();
    let mut ahead = frame_size(u64::from(first.len));
    for _ in 1..5 {
        let f = c.peek_ahead(&mut ahead, &mut ()).unwrap().unwrap();
        ahead += frame_size(u64::from(f.len));
    }
    assert_eq!(c.peek_ahead(&mut ahead, &mut ()).unwrap(), None);
    assert_eq!(ring.head.load(Ordering::Relaxed), 0, "nothing released yet");
    // Messages sent meanwhile are found by the run's reload of tail.
    assert!(send(&mut p, &[5; 10]));
    let f = c.peek_ahead(&mut ahead, &mut ()).unwrap().unwrap();
    ahead += frame_size(u64::from(f.len));
    c.release_run(ahead);
    assert_eq!(ring.head.load(Ordering::Relaxed), 6 * 24);
    assert_eq!(recv(&mut c), None);
}

#[test]
fn a_run_meets_bad_frames_as_peek_does() {
    for (word, what) in [
        (u64::from(KIND_MESSAGE) << 32 | 100, "runs past"),
        (9u64 << 32, "unknown frame kind"),
        (u64::from(KIND_PADDING) << 32 | 8, "does not end the region"),
    ] {
        let ring = HeapRing::new(4096);
        let (mut p, mut c) = (ring.producer(), ring.consumer());
        assert!(send(&mut p, &[0; 16]));
        assert!(send(&mut p, &[0; 16]));
        ring.write_word(24, word);
        let first = c.peek().unwrap().unwrap();
        let mut ahead = frame_size(u64::from(first.len));
        match c.peek_ahead(&mut ahead, &mut ()) {
            Err(Corrupt(why)) => assert!(why.contains(what) && why.contains("at 24"), "{why}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn two_threads_stream_batches_and_runs_in_order() {
    let ring = HeapRing::new(4096);
    let n = 100_000u32;
    let msg = |i: u32| {
        let len = (i as usize * 7919) % 300 + 4;
        let mut m = vec![(i % 251) as u8; len];
        m[..4].copy_from_slice(&i.to_le_bytes());
        m
    };
    let writer = {
        let ring = Arc::clone(&ring);
        std::thread::spawn(move || {
            let mut p = ring.producer();
            let mut i = 0;
            while i < n {
                let batch: Vec<Vec<u8>> = (i..(i + 1 + i % 40).min(n)).map(msg).collect();
                let mut sent = 0;
                while sent < batch.len() {
                    sent += p.write_run(&batch[sent..], i % 2 == 0).unwrap().sent;
                    std::hint::spin_loop();
                }
                i += batch.len() as u32;
            }
        })
    };
    let mut c = ring.consumer();
    let mut i = 0;
    while i < n {
        for got in recv_run(&mut c, 1 + i as usize % 23) {
            assert_eq!(got, msg(i), "message {i}");
            i += 1;
        }
        std::hint::spin_loop();
    }
    writer.join().unwrap();
    assert_eq!(recv(&mut c), None);
}

#[test]
fn cached_ahead_takes_only_valid_message_frames_already_seen() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    assert!(send(&mut p, &[1; 3992])); // 96 bytes to the end
    assert_eq!(recv(&mut c).unwrap().len(), 3992);
    assert!(send(&mut p, &[2; 40])); // 48 bytes
    assert!(send(&mut p, &[3; 41])); // 56 bytes, behind 48 of padding
    let b = c.peek().unwrap().unwrap();
    let mut ahead = frame_size(u64::from(b.len));
    assert_eq!(c.cached_ahead(ahead), None, "padding is left to peek_ahead");
    let third = c.peek_ahead(&mut ahead, &mut ()).unwrap().unwrap();
    assert_eq!(ahead, 48 + 48, "past the padding");
    assert_eq!(c.cached_ahead(ahead), Some(third), "seen and valid");
    ahead += frame_size(u64::from(third.len));
    assert_eq!(c.cached_ahead(ahead), None, "the cache ends here");
    // Published after the last reload: peek_ahead reloads, cached_ahead
    // does not.
    assert!(send(&mut p, &[4; 8]));
    assert_eq!(c.cached_ahead(ahead), None);
    let fourth = c.peek_ahead(&mut ahead, &mut ()).unwrap().unwrap();
    assert_eq!(c.cached_ahead(ahead), Some(fourth));
    // A bad frame is left to peek_ahead, which reports it.
    ring.write_word(56, u64::from(KIND_MESSAGE) << 32 | 5000);
    assert_eq!(c.cached_ahead(ahead), None);
    assert!(c.peek_ahead(&mut ahead, &mut ()).is_err());
}

#[test]
fn a_batch_copies_every_small_length_exactly() {
    let ring = HeapRing::new(4096);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let msgs: Vec<Vec<u8>> = (0..=40u8)
        .map(|len| (0..len).map(|i| len.wrapping_mul(31) ^ i).collect())
        .collect();
    assert_eq!(p.write_run(&msgs, false).unwrap().sent, msgs.len());
    assert_eq!(recv_run(&mut c, 100), msgs);
}

/// The fast path's look, with the slow one for what it leaves (padding).
fn recv_fast(c: &mut Consumer) -> Option<Vec<u8>> {
    let frame = match c.peek_fast(&mut ()) {
        Fast::Message(frame) => frame,
        Fast::Empty => return None,
        Fast::Slow => c.peek().unwrap()?,
    };
    c.prefetch_payload(frame);
    // SAFETY: peek_fast and peek validated the frame.
    let v = unsafe { std::slice::from_raw_parts(c.payload(frame), frame.len as usize) }.to_vec();
    c.release(frame);
    Some(v)
}

#[test]
fn reading_ahead_stays_in_the_region_and_changes_nothing_read() {
    // 16 KiB: the line read ahead (PREFETCH_DISTANCE) lies in the
    // published bytes of a full ring and wraps past the region's end;
    // sizes that do not divide the ring put frames and that line
    // everywhere, lap after lap; a payload above a page has its lines
    // asked for too. A debug build checks every line's offset.
    let cap = 16 * 1024;
    assert!(PREFETCH_DISTANCE + 64 < cap);
    let ring = HeapRing::new(cap);
    let (mut p, mut c) = (ring.producer(), ring.consumer());
    let sizes = [0usize, 1, 7, 8, 56, 64, 65, 200, 1000, 5000];
    let (mut sent, mut got) = (0u32, 0u32);
    let msg = |n: u32| {
        let len = sizes[n as usize % sizes.len()];
        (0..len)
            .map(|i| (n as usize + i) as u8)
            .collect::<Vec<u8>>()
    };
    for _ in 0..40 {
        while send(&mut p, &msg(sent)) {
            sent += 1;
        }
        // Read most of it, so that the ring stays nearly full and the
        // next lap starts elsewhere.
        while sent - got > 3 {
            assert_eq!(recv_fast(&mut c).as_deref(), Some(&msg(got)[..]));
            got += 1;
        }
    }
    while let Some(m) = recv_fast(&mut c) {
        assert_eq!(m, msg(got));
        got += 1;
    }
    assert_eq!(got, sent);
    assert!(sent > 40 * 10, "{sent} messages: the ring never filled");
}
