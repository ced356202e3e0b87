//! The cost of being woken: a receiver process that parks on an empty
//! channel, a sender that sends one message every 100 µs; the time from
//! send to the receiver's return (median, p99), against a pipe reader woken
//! the same way.

mod support;

use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, measurement::WallTime};
use support::{Kind, Link, Peer, Source, monotonic_ns, percentiles, spin_until};

const INTERVAL: Duration = Duration::from_micros(100);

fn main() {
    support::peer_main();
    let mut c = support::criterion();
    let mut group = c.benchmark_group("blocking");
    for kind in [Kind::Shm, Kind::ShmPark, Kind::Pipe] {
        bench_wake(&mut group, kind);
    }
    group.finish();
    c.final_summary();
}

fn bench_wake(group: &mut BenchmarkGroup<'_, WallTime>, kind: Kind) {
    let mut link = Link::new(kind, 16, "A");
    let mut peer = Peer::spawn("stamp", &link, &[]);
    link.close_peer_end(true);
    let mut tx = link.tx();
    let mut samples = Vec::new();
    let mut msg = [0u8; 16];
    group.bench_function(kind.name(), |b| {
        b.iter_custom(|iters| {
            peer.start(iters);
            let mut next = Instant::now();
            for _ in 0..iters {
                next += INTERVAL;
                spin_until(next);
                msg[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
                tx.send(&msg);
            }
            let answer = peer.answer();
            let lat: Vec<Duration> = answer
                .split_whitespace()
                .map(|ns| Duration::from_nanos(ns.parse().expect("latency")))
                .collect();
            samples.extend_from_slice(&lat);
            lat.iter().sum()
        })
    });
    let (median, p99) = percentiles(&mut samples);
    println!(
        "blocking/{}: send to receive median {median:?}, p99 {p99:?} ({} wake-ups)",
        kind.name(),
        samples.len()
    );
}
