//! What a typed message costs each side against raw bytes, in one thread
//! (no second core: the calls' own work), one 64-byte struct per message,
//! the `Sample` of `benchmarks/src/typed.rs`:
//!
//! - `typed/raw`: `send` + `recv_into` of 64 bytes;
//! - `typed/pod`: `send_pod` + `recv_pod` of the struct (feature
//!   `bytemuck`);
//! - `typed/value`: `send_value` + `recv_value` (feature `serde`,
//!   postcard, varints);
//! - `typed/value_fixint`: the same with every integer field marked
//!   `#[serde(with = "postcard::fixint::le")]`;
//! - `typed/send_value`: `send_value` + `recv_into` (the send alone, with
//!   the raw receive).
//!
//! Each iteration sends 100 messages, then receives them (a 256 KiB ring
//! that stays in the caches); the figures are per message. The
//! two-process rates are `benchmarks/`'s `shmchan-value` and
//! `shmchan-pod` (benchmarks/README.md, "Typed values against
//! plain-old-data"). `cargo bench --bench typed --features serde,bytemuck`
//! (the bench profile: LTO).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use shmchan::{Channel, Key, Options};

const BURST: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Pod, Zeroable)]
#[repr(C)]
struct Sample {
    id: u64,
    t: u64,
    x: [f32; 8],
    flags: u32,
    tag: u32,
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct FixedSample {
    #[serde(with = "postcard::fixint::le")]
    id: u64,
    #[serde(with = "postcard::fixint::le")]
    t: u64,
    x: [f32; 8],
    #[serde(with = "postcard::fixint::le")]
    flags: u32,
    #[serde(with = "postcard::fixint::le")]
    tag: u32,
    #[serde(with = "postcard::fixint::le")]
    seq: u64,
}

const SAMPLE: Sample = Sample {
    id: 0x00ab_cdef_0123_4567,
    t: 1_764_950_400_000_000_000,
    x: [0.5, 1.5, -2.25, 3.0, 1e-3, 42.0, -0.125, 7.75],
    flags: 0x8000_0001,
    tag: 300,
    seq: 1 << 49,
};

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(256 << 10))
        .expect("private channel");
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    let fixed = FixedSample {
        id: SAMPLE.id,
        t: SAMPLE.t,
        x: SAMPLE.x,
        flags: SAMPLE.flags,
        tag: SAMPLE.tag,
        seq: SAMPLE.seq,
    };
    let raw: [u8; 64] = bytemuck::cast(SAMPLE);
    let mut buf = Vec::with_capacity(64);
    let mut g = c.benchmark_group("typed");
    g.throughput(Throughput::Elements(BURST));
    g.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                for _ in 0..BURST {
                    tx.send(black_box(&raw)).expect("send");
                }
                for _ in 0..BURST {
                    black_box(rx.recv_into(&mut buf).expect("recv_into"));
                }
            })
        })
    });
    g.bench_function("pod", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                for _ in 0..BURST {
                    tx.send_pod(black_box(&SAMPLE)).expect("send_pod");
                }
                for _ in 0..BURST {
                    black_box(rx.recv_pod::<Sample>().expect("recv_pod"));
                }
            })
        })
    });
    g.bench_function("value", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                for _ in 0..BURST {
                    tx.send_value(black_box(&SAMPLE)).expect("send_value");
                }
                for _ in 0..BURST {
                    black_box(rx.recv_value::<Sample>().expect("recv_value"));
                }
            })
        })
    });
    g.bench_function("value_fixint", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                for _ in 0..BURST {
                    tx.send_value(black_box(&fixed)).expect("send_value");
                }
                for _ in 0..BURST {
                    black_box(rx.recv_value::<FixedSample>().expect("recv_value"));
                }
            })
        })
    });
    g.bench_function("send_value", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                for _ in 0..BURST {
                    tx.send_value(black_box(&SAMPLE)).expect("send_value");
                }
                for _ in 0..BURST {
                    black_box(rx.recv_into(&mut buf).expect("recv_into"));
                }
            })
        })
    });
    g.finish();
    drop((tx, rx));
    chan.remove().expect("remove");
}

/// Runs `burst` `iters` times and says how long that took.
fn bursts(iters: u64, mut burst: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        burst();
    }
    start.elapsed()
}
