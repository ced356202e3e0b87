//! Ping-pong round trip, 8 and 64 bytes, the echo peer a separate process:
//! shmchan with the default wait strategy, shmchan forced to park on every
//! wait, a pipe, a Unix socket, a System V message queue. Prints the median
//! and 99th percentile of every round trip next to criterion's estimate.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, measurement::WallTime};
use support::{Kind, Link, Peer, Sink, Source, percentiles, touch};

const KINDS: [Kind; 5] = [
    Kind::Shm,
    Kind::ShmPark,
    Kind::Pipe,
    Kind::Unix,
    Kind::MsgQueue,
];

fn main() {
    support::peer_main();
    let mut c = support::criterion();
    for (size, label) in [(8, "8B"), (64, "64B")] {
        let mut group = c.benchmark_group(format!("latency/{label}"));
        for kind in KINDS {
            bench_round_trip(&mut group, kind, size, label);
        }
        group.finish();
    }
    c.final_summary();
}

fn bench_round_trip(
    group: &mut BenchmarkGroup<'_, WallTime>,
    kind: Kind,
    size: usize,
    label: &str,
) {
    let mut there = Link::new(kind, size, "A");
    let mut back = Link::new(kind, size, "B");
    let env: Vec<(&str, String)> = back
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut peer = Peer::spawn("echo", &there, &env);
    there.close_peer_end(true);
    back.close_peer_end(false);
    let (mut tx, mut rx) = (there.tx(), back.rx());
    let msg = vec![0x5au8; size];
    let mut samples = Vec::new();
    group.bench_function(kind.name(), |b| {
        b.iter_custom(|iters| {
            peer.start(iters);
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                tx.send(&msg);
                rx.recv_with(|m| black_box(touch(m)));
                let rtt = start.elapsed();
                samples.push(rtt);
                total += rtt;
            }
            peer.answer();
            total
        })
    });
    let (median, p99) = percentiles(&mut samples);
    println!(
        "latency/{label}/{}: round trip median {median:?}, p99 {p99:?} ({} round trips)",
        kind.name(),
        samples.len()
    );
}
