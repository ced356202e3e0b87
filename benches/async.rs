//! What the async calls cost next to the blocking ones (issue 13), in one
//! process:
//!
//! - `async/queued/*`: a 64-byte message sent, then received while it is
//!   queued. `recv_into` (`send`, then `recv_into`: the blocking pair) and
//!   `try_recv` against `recv_into_async` polled once (a no-op waker, no
//!   runtime: the future's own cost, which must be the blocking fast
//!   path's, with no system call and no thread hop) and under a
//!   `current_thread` tokio runtime's `block_on` (what entering a runtime
//!   adds); `send_async` polled once, then `recv_into`, against the
//!   blocking pair.
//! - `async/wakeup/*`: the wake-up of a parked receiver in another
//!   thread, blocking or async on a `current_thread` runtime, by a
//!   message sent 100 µs after the last (it spins 50 µs, then parks):
//!   from the send time in the message to the receiver's having it. The
//!   park, the post and, async, the helper thread's hop to the task's
//!   waker.
//! - `async/hop`: the hop alone, the floor of what waking through a
//!   helper thread adds: a task on a `current_thread` runtime in another
//!   thread, parked (the runtime asleep in `epoll_wait`) for 50 µs, woken
//!   through its `Waker` by this thread, from the wake to the task's
//!   running.
//!
//! The waking thread sleeps while the other is woken (and yields if it
//! must wait longer), never spins: on two CPUs, a busy waker can hold
//! the CPU that the woken thread waits for.
//!
//! `cargo bench --bench async`. Peers in separate processes, and tokio's
//! `UnixStream` beside shmchan: `benchmarks/` (`--transports
//! shmchan-async,...`, `--mode wakeup`).

mod support;

use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::Criterion;
use shmchan::{Channel, Error, Key, Options, Receiver};
use support::monotonic_ns;

const MSG: [u8; 64] = [7; 64];

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    queued(&mut c);
    wakeup(&mut c, Wake::Blocking);
    wakeup(&mut c, Wake::Async);
    hop(&mut c);
    c.final_summary();
}

/// Polls `fut` once with a waker that does nothing; it must be ready (a
/// queued message, room in the ring).
fn ready<T>(fut: impl Future<Output = T>) -> T {
    let fut = pin!(fut);
    match fut.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready in the first poll"),
    }
}

fn queued(c: &mut Criterion) {
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(64 * 1024)).expect("channel");
    let mut tx = chan.sender().expect("sender");
    let mut rx = chan.receiver().expect("receiver");
    let mut buf = Vec::with_capacity(64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("async/queued");
    g.bench_function("recv_into", |b| {
        b.iter(|| {
            tx.send(black_box(&MSG)).expect("send");
            rx.recv_into(&mut buf).expect("recv_into")
        })
    });
    g.bench_function("try_recv", |b| {
        b.iter(|| {
            tx.send(black_box(&MSG)).expect("send");
            rx.try_recv().expect("try_recv")
        })
    });
    g.bench_function("recv_into_async", |b| {
        b.iter(|| {
            tx.send(black_box(&MSG)).expect("send");
            ready(rx.recv_into_async(&mut buf)).expect("recv_into_async")
        })
    });
    g.bench_function("recv_into_async/block_on", |b| {
        b.iter(|| {
            tx.send(black_box(&MSG)).expect("send");
            rt.block_on(rx.recv_into_async(&mut buf))
                .expect("recv_into_async")
        })
    });
    g.bench_function("send_async", |b| {
        b.iter(|| {
            ready(tx.send_async(black_box(&MSG))).expect("send_async");
            rx.recv_into(&mut buf).expect("recv_into")
        })
    });
    g.finish();
}

/// How the woken thread receives.
#[derive(Debug, Clone, Copy)]
enum Wake {
    Blocking,
    Async,
}

/// What a woken receiver reports: how many messages it has taken, and the
/// last one's latency (ns from the send time it carries).
#[derive(Default)]
struct Taken {
    count: AtomicU64,
    latency: AtomicU64,
}

impl Taken {
    /// Records message `m`, taken now.
    fn record(&self, m: &[u8]) {
        let sent = u64::from_le_bytes(m[..8].try_into().expect("a stamp"));
        self.latency
            .store(monotonic_ns().saturating_sub(sent), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Waits (yielding the CPU: the receiver may share it) until the
    /// count passes `seen`; returns the latency.
    fn after(&self, seen: u64) -> Duration {
        while self.count.load(Ordering::Acquire) == seen {
            std::thread::yield_now();
        }
        Duration::from_nanos(self.latency.load(Ordering::Relaxed))
    }
}

fn wakeup(c: &mut Criterion, how: Wake) {
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(64 * 1024)).expect("channel");
    let mut tx = chan.sender().expect("sender");
    let rx = chan.receiver().expect("receiver");
    let taken = Arc::new(Taken::default());
    let t = Arc::clone(&taken);
    let receiver = std::thread::spawn(move || match how {
        Wake::Blocking => take_blocking(rx, &t),
        Wake::Async => take_async(rx, &t),
    });
    let name = match how {
        Wake::Blocking => "async/wakeup/recv_into",
        Wake::Async => "async/wakeup/recv_into_async",
    };
    let mut msg = MSG;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let seen = taken.count.load(Ordering::Acquire);
                msg[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
                tx.send(&msg).expect("send");
                // Asleep while the receiver is woken, and longer than its
                // spin (50 µs): it parks before the next message.
                std::thread::sleep(Duration::from_micros(100));
                total += taken.after(seen);
            }
            total
        })
    });
    // The receiver ends at Disconnected.
    drop(tx);
    receiver.join().expect("receiving thread");
}

/// Takes every message until the sender is gone.
fn take_blocking(mut rx: Receiver, taken: &Taken) {
    let mut buf = Vec::new();
    loop {
        match rx.recv_into(&mut buf) {
            Ok(_) => taken.record(&buf),
            Err(Error::Disconnected) => return,
            Err(e) => panic!("recv_into: {e}"),
        }
    }
}

/// [`take_blocking`] with `recv_into_async`, on a `current_thread` runtime.
fn take_async(mut rx: Receiver, taken: &Taken) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut buf = Vec::new();
        loop {
            match rx.recv_into_async(&mut buf).await {
                Ok(_) => taken.record(&buf),
                Err(Error::Disconnected) => return,
                Err(e) => panic!("recv_into_async: {e}"),
            }
        }
    });
}

/// The task of `async/hop` and the thread that wakes it.
#[derive(Default)]
struct Hop {
    /// The parked task's waker, taken by the waking thread.
    waker: Mutex<Option<Waker>>,
    /// Times the task ran after a wake, and when it last did (ns).
    ran: AtomicU64,
    ran_at: AtomicU64,
    stop: AtomicBool,
}

impl Hop {
    /// The waker of the task, once it has parked again.
    fn parked(&self) -> Waker {
        loop {
            if let Some(w) = self.waker.lock().expect("waker").take() {
                return w;
            }
            std::thread::yield_now();
        }
    }

    /// The task: parks, counts each wake, until told to stop.
    async fn task(&self) {
        while !self.stop.load(Ordering::Acquire) {
            let mut parked = false;
            poll_fn(|cx| {
                if parked {
                    return Poll::Ready(());
                }
                parked = true;
                *self.waker.lock().expect("waker") = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            self.ran_at.store(monotonic_ns(), Ordering::Relaxed);
            self.ran.fetch_add(1, Ordering::Release);
        }
    }
}

fn hop(c: &mut Criterion) {
    let hop = Arc::new(Hop::default());
    let task = Arc::clone(&hop);
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(task.task());
    });
    c.bench_function("async/hop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let w = hop.parked();
                // Long enough for the runtime to go to sleep.
                std::thread::sleep(Duration::from_micros(50));
                let before = hop.ran.load(Ordering::Acquire);
                let t0 = monotonic_ns();
                w.wake();
                // Asleep while the task is woken.
                std::thread::sleep(Duration::from_micros(50));
                while hop.ran.load(Ordering::Acquire) == before {
                    std::thread::yield_now();
                }
                let t1 = hop.ran_at.load(Ordering::Relaxed);
                total += Duration::from_nanos(t1.saturating_sub(t0));
            }
            total
        })
    });
    hop.stop.store(true, Ordering::Release);
    hop.parked().wake();
    runtime.join().expect("runtime thread");
}
