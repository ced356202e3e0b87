//! What lanes cost the receiver, in one thread (no second core, no cache
//! line crossing: the receiver's own work only):
//!
//! - `lanes/empty/N`: `try_recv` on an empty channel of N lanes, which
//!   looks at every lane once (and at whether a sender is alive) before it
//!   says `Empty`: the cost of finding N lanes empty.
//! - `lanes/one-sender/N`: `send` then `recv_into` of 8 bytes, one sender
//!   on a channel of N lanes: the receiver finds its turn's lane empty
//!   after every message and looks at the N - 1 idle lanes too.
//!
//! `cargo bench --bench lanes`.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use shmchan::{Channel, Error, Key, Options};

const LANES: [u32; 3] = [1, 8, 64];

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for lanes in LANES {
        let opts = Options::new().capacity(64 * 1024).max_senders(lanes);
        let chan = Channel::create(Key::PRIVATE, &opts).expect("private channel");
        let mut tx = chan.sender().expect("sender");
        let mut rx = chan.receiver().expect("receiver");
        c.bench_function(&format!("lanes/empty/{lanes}"), |b| {
            b.iter(|| assert!(matches!(rx.try_recv(), Err(Error::Empty))))
        });
        let msg = [7u8; 8];
        let mut buf = Vec::with_capacity(64);
        c.bench_function(&format!("lanes/one-sender/{lanes}"), |b| {
            b.iter(|| {
                tx.send(black_box(&msg)).expect("send");
                rx.recv_into(&mut buf).expect("recv")
            })
        });
    }
    c.final_summary();
}
