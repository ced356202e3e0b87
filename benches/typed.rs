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
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use shmchan::{Channel, Key, Options, Receiver, Sender};

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
    let (tx, rx) = (&mut tx, &mut rx);
    pair(
        &mut g,
        "raw",
        tx,
        rx,
        |tx| tx.send(black_box(&raw)),
        |rx| rx.recv_into(&mut buf),
    );
    pair(
        &mut g,
        "pod",
        tx,
        rx,
        |tx| tx.send_pod(black_box(&SAMPLE)),
        |rx| rx.recv_pod::<Sample>(),
    );
    pair(
        &mut g,
        "value",
        tx,
        rx,
        |tx| tx.send_value(black_box(&SAMPLE)),
        |rx| rx.recv_value::<Sample>(),
    );
    pair(
        &mut g,
        "value_fixint",
        tx,
        rx,
        |tx| tx.send_value(black_box(&fixed)),
        |rx| rx.recv_value::<FixedSample>(),
    );
    pair(
        &mut g,
        "send_value",
        tx,
        rx,
        |tx| tx.send_value(black_box(&SAMPLE)),
        |rx| rx.recv_into(&mut buf),
    );
    g.finish();
    chan.remove().expect("remove");
}

/// Benchmarks `name`: per iteration, `BURST` calls of `send`, then as many
/// of `recv` (what each receives goes through `black_box`).
fn pair<R>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    tx: &mut Sender,
    rx: &mut Receiver,
    mut send: impl FnMut(&mut Sender) -> shmchan::Result<()>,
    mut recv: impl FnMut(&mut Receiver) -> shmchan::Result<R>,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..BURST {
                    send(tx).expect("send");
                }
                for _ in 0..BURST {
                    black_box(recv(rx).expect("receive"));
                }
            }
            start.elapsed()
        })
    });
}
