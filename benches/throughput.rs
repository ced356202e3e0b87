//! One-way streaming throughput, each receiver a separate process (the
//! in-process crossbeam-channel reference aside): shmchan copying and
//! zero-copy, a pipe, a Unix socket, a System V message queue, and
//! crossbeam-channel carrying `Vec<u8>` between two threads.
//!
//! `cargo bench --bench throughput -- 64B` runs one size.

mod support;

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkGroup, Throughput, measurement::WallTime};
use support::transport::{capacity_for, crossbeam_bound_for};
use support::{Kind, Link, Peer, Sink, Source, touch};

const SIZES: [(usize, &str); 5] = [
    (8, "8B"),
    (64, "64B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1 << 20, "1MiB"),
];

const KINDS: [Kind; 5] = [
    Kind::Shm,
    Kind::ShmZeroCopy,
    Kind::Pipe,
    Kind::Unix,
    Kind::MsgQueue,
];

fn main() {
    support::peer_main();
    let mut c = support::criterion();
    for (size, label) in SIZES {
        let mut group = c.benchmark_group(format!("throughput/{label}"));
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: size as u64,
        });
        for kind in KINDS.into_iter().filter(|k| k.carries(size)) {
            bench_process(&mut group, kind, size);
        }
        bench_crossbeam(&mut group, size);
        group.finish();
    }
    c.final_summary();
}

/// Streams `size`-byte messages to a sink process.
fn bench_process(group: &mut BenchmarkGroup<'_, WallTime>, kind: Kind, size: usize) {
    let mut link = Link::new(kind, size, "A");
    let mut peer = Peer::spawn("sink", &link, &[]);
    link.close_peer_end(true);
    let mut tx = link.tx();
    let msg = vec![0xa5u8; size];
    group.bench_function(kind.name(), |b| {
        b.iter_custom(|iters| {
            peer.start(iters);
            let start = Instant::now();
            for _ in 0..iters {
                tx.send(&msg);
            }
            peer.answer();
            start.elapsed()
        })
    });
}

/// The in-process reference: `Vec<u8>` messages (allocation included)
/// between two threads, bounded as `benchmarks/` bounds it.
fn bench_crossbeam(group: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    let bound = crossbeam_bound_for(size, capacity_for(size));
    let (mut tx, mut rx) = crossbeam_channel::bounded::<Vec<u8>>(bound);
    let (ctl, ctl_rx) = crossbeam_channel::bounded::<u64>(1);
    let (ack_tx, ack) = crossbeam_channel::bounded::<()>(1);
    let sink = std::thread::spawn(move || {
        for n in ctl_rx {
            for _ in 0..n {
                black_box(rx.recv_with(touch));
            }
            ack_tx.send(()).expect("ack");
        }
    });
    let msg = vec![0xa5u8; size];
    group.bench_function("crossbeam-channel", |b| {
        b.iter_custom(|iters| {
            ctl.send(iters).expect("control");
            let start = Instant::now();
            for _ in 0..iters {
                Source::send(&mut tx, &msg);
            }
            ack.recv().expect("ack");
            start.elapsed()
        })
    });
    drop(ctl);
    sink.join().expect("sink thread");
}
