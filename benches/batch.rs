//! What batching saves each side, in one thread (no second core, no cache
//! line crossing: the calls' own work), 32 messages of 8 bytes at a time
//! through a 256 KiB ring (it stays in the caches):
//!
//! - `batch/send` and `batch/send_batch`: 32 `send` calls, or one
//!   `send_batch` of 32; the receiver drains them untimed;
//! - `batch/recv_into` and `batch/recv_many`: 32 `recv_into` calls, or one
//!   `recv_many` into 32 buffers; the sender queues them untimed.
//!
//! The two-process rates, where the receiver may bound both, are
//! `benchmarks/`'s `shmchan-batch32` and `shmchan-batch32-many` (see
//! benchmarks/README.md). `cargo bench --bench batch`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use shmchan::{Channel, Key, Options, Receiver, Sender};

const BATCH: usize = 32;

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(256 << 10))
        .expect("private channel");
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    let msgs = vec![[7u8; 8]; BATCH];
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(64)).collect();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("send", |b| {
        b.iter_custom(|iters| {
            timed_sends(iters, &mut rx, &mut bufs, || {
                for m in &msgs {
                    tx.send(black_box(m)).expect("send");
                }
            })
        })
    });
    g.bench_function("send_batch", |b| {
        b.iter_custom(|iters| {
            timed_sends(iters, &mut rx, &mut bufs, || {
                tx.send_batch(black_box(&msgs)).expect("send_batch")
            })
        })
    });
    g.bench_function("recv_into", |b| {
        b.iter_custom(|iters| {
            timed_receives(iters, &mut tx, &msgs, |bufs| {
                for buf in bufs.iter_mut() {
                    rx.recv_into(buf).expect("recv_into");
                }
            })
        })
    });
    g.bench_function("recv_many", |b| {
        b.iter_custom(|iters| {
            timed_receives(iters, &mut tx, &msgs, |bufs| {
                assert_eq!(rx.recv_many(bufs).expect("recv_many"), BATCH);
            })
        })
    });
    g.finish();
    c.final_summary();
}

/// `iters` times: `send` (32 messages) timed, then a drain untimed.
fn timed_sends(
    iters: u64,
    rx: &mut Receiver,
    bufs: &mut [Vec<u8>],
    mut send: impl FnMut(),
) -> Duration {
    let mut took = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        send();
        took += start.elapsed();
        let mut got = 0;
        while got < BATCH {
            got += rx.recv_many(&mut bufs[got..]).expect("drain");
        }
    }
    took
}

/// `iters` times: 32 messages queued untimed, then `recv` into the
/// buffers, timed.
fn timed_receives(
    iters: u64,
    tx: &mut Sender,
    msgs: &[[u8; 8]],
    mut recv: impl FnMut(&mut [Vec<u8>]),
) -> Duration {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(64)).collect();
    let mut took = Duration::ZERO;
    for _ in 0..iters {
        tx.send_batch(msgs).expect("queue");
        let start = Instant::now();
        recv(&mut bufs);
        took += start.elapsed();
    }
    black_box(&bufs);
    took
}
