//! The async ends (issue 13): shmchan's `send_async` / `recv_into_async`
//! and tokio's `UnixStream`, each driven by a `current_thread` tokio
//! runtime of its own process (IO and timers enabled, as a server's), the
//! loop running as a spawned task, as a server's loops do.
//!
//! The loops are main.rs's blocking ones with `.await` (`stream`, `count`,
//! `echo`, `ping`, `stamps`), over the same bookkeeping (`Tally`,
//! `TripLog`, `Stamps`, `Stamp`), so that an async row does the work of
//! its blocking row. An async link's ends are the shared transport's
//! (`Tx::ShmCopy`, `Tx::Framed` over a `SOCK_STREAM` pair) taken apart
//! inside the runtime; outside one, [`AsyncTx`] sends blocking (the
//! wake-up mode's sender, the same call for every transport).

use std::future::Future;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::shared::{Rx, Source, Tx, monotonic_ns, touch};
use crate::{
    Counted, Plain, Plan, Stamp, Stamps, Tag, Tally, TripLog, batch_for, message, say_ready,
};

/// A sending end, async.
pub(crate) trait AsyncSource {
    async fn send(&mut self, msg: &[u8]);
}

/// A receiving end, async: the next message's bytes, in the end's buffer
/// (both async ends copy: `recv_into_async`, a socket's read).
pub(crate) trait AsyncSink {
    async fn recv(&mut self) -> &[u8];
}

/// The sending end of an async link: shmchan's copying end or a
/// `SOCK_STREAM` socket's framed one, made async inside the runtime.
pub struct AsyncTx(pub Tx);

/// The receiving end of an async link, as [`AsyncTx`].
pub struct AsyncRx(pub Rx);

/// Blocking sends on an async link (outside a runtime): the wake-up
/// mode's sender is the same blocking `send` / `write` for every receiver.
impl Source for AsyncTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg);
    }
}

/// shmchan: `send_async`.
struct ShmTx(shmchan::Sender);

/// shmchan: `recv_into_async` into a reused buffer.
struct ShmRx(shmchan::Receiver, Vec<u8>);

/// tokio's `UnixStream`: one `write_all` of a 4-byte length and the
/// payload, as the pipe's framing.
struct UdsTx {
    stream: UnixStream,
    scratch: Vec<u8>,
}

/// tokio's `UnixStream` through a 64 KiB `BufReader`: `read_exact` of the
/// length, then of the payload.
struct UdsRx {
    reader: BufReader<UnixStream>,
    buf: Vec<u8>,
}

impl AsyncSource for ShmTx {
    #[inline]
    async fn send(&mut self, msg: &[u8]) {
        self.0.send_async(msg).await.expect("shmchan send_async");
    }
}

impl AsyncSink for ShmRx {
    #[inline]
    async fn recv(&mut self) -> &[u8] {
        let n = (self.0.recv_into_async(&mut self.1).await).expect("shmchan recv_into_async");
        &self.1[..n]
    }
}

impl AsyncSource for UdsTx {
    #[inline]
    async fn send(&mut self, msg: &[u8]) {
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(msg.len() as u32).to_le_bytes());
        self.scratch.extend_from_slice(msg);
        (self.stream.write_all(&self.scratch).await).expect("UnixStream write");
    }
}

impl AsyncSink for UdsRx {
    #[inline]
    async fn recv(&mut self) -> &[u8] {
        let mut len = [0u8; 4];
        (self.reader.read_exact(&mut len).await).expect("UnixStream read");
        let n = u32::from_le_bytes(len) as usize;
        self.buf.resize(n, 0);
        (self.reader.read_exact(&mut self.buf[..n]).await).expect("UnixStream read");
        &self.buf[..n]
    }
}

/// A socket's end as tokio's `UnixStream` (inside a runtime).
fn uds(file: std::fs::File) -> UnixStream {
    let std = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
    std.set_nonblocking(true).expect("O_NONBLOCK");
    UnixStream::from_std(std).expect("tokio UnixStream")
}

/// Runs `$body` with `$t` bound to the async form of a sending end (inside
/// a runtime): one monomorphised loop per end type.
macro_rules! on_tx {
    ($tx:expr, |$t:ident| $body:expr) => {
        match $tx.0 {
            Tx::ShmCopy(t) => {
                let mut $t = ShmTx(t.into_inner());
                $body
            }
            Tx::Framed(t) => {
                let mut $t = UdsTx {
                    stream: uds(t.into_file()),
                    scratch: Vec::new(),
                };
                $body
            }
            _ => unreachable!("an async link's end"),
        }
    };
}

/// [`on_tx`] for a receiving end.
macro_rules! on_rx {
    ($rx:expr, |$r:ident| $body:expr) => {
        match $rx.0 {
            Rx::ShmCopy(r) => {
                let mut $r = ShmRx(r.into_inner(), Vec::new());
                $body
            }
            Rx::Framed(r) => {
                let mut $r = UdsRx {
                    reader: BufReader::with_capacity(64 << 10, uds(r.into_file())),
                    buf: Vec::new(),
                };
                $body
            }
            _ => unreachable!("an async link's end"),
        }
    };
}

/// Runs `task` on a new `current_thread` runtime, spawned as a task, and
/// returns what it returns.
fn run<F>(task: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async { tokio::spawn(task).await.expect("the async loop") })
}

// ---------------------------------------------------------------------------
// Throughput

/// The sending side of a throughput round, async (main.rs's `stream`).
pub fn stream(tx: AsyncTx, size: usize, warm: Duration, measure: Duration, tag: Option<u8>) -> u64 {
    run(async move {
        on_tx!(tx, |t| match tag {
            None => stream_stamped(&mut t, size, warm, measure, &mut Plain).await,
            Some(i) => {
                let mut tag = Tag::first(i);
                stream_stamped(&mut t, size, warm, measure, &mut tag).await
            }
        })
    })
}

async fn stream_stamped<S: AsyncSource, T: Stamp>(
    tx: &mut S,
    size: usize,
    warm: Duration,
    measure: Duration,
    stamp: &mut T,
) -> u64 {
    let mut msg = message(size);
    let batch = batch_for(size);
    burst(tx, &mut msg, batch, warm, stamp).await;
    tx.send(&[]).await;
    let n = burst(tx, &mut msg, batch, measure, stamp).await;
    tx.send(&[]).await;
    n
}

/// Sends `msg` for `d`, reading the clock once per `batch`.
async fn burst<S: AsyncSource, T: Stamp>(
    tx: &mut S,
    msg: &mut [u8],
    batch: u64,
    d: Duration,
    stamp: &mut T,
) -> u64 {
    let end = std::time::Instant::now() + d;
    let mut n = 0;
    loop {
        for _ in 0..batch {
            stamp.stamp(msg);
            tx.send(msg).await;
        }
        n += batch;
        if std::time::Instant::now() >= end {
            return n;
        }
    }
}

/// The receiving child of a throughput round, async (main.rs's `sink`).
pub fn sink(rx: AsyncRx, out: &mut impl Write, plan: Plan) -> Counted {
    say_ready(out);
    let senders = plan.senders;
    if plan.tagged {
        run(async move { on_rx!(rx, |r| count::<_, true>(&mut r, senders).await) })
    } else {
        run(async move { on_rx!(rx, |r| count::<_, false>(&mut r, senders).await) })
    }
}

async fn count<K: AsyncSink, const TAGGED: bool>(rx: &mut K, senders: usize) -> Counted {
    let mut tally = Tally::<TAGGED>::new(senders);
    loop {
        let (len, sum, tag) = Tally::<TAGGED>::read(rx.recv().await);
        if let Some(c) = tally.add(len, sum, tag) {
            return c;
        }
    }
}

// ---------------------------------------------------------------------------
// Round trip

/// The pinging parent, async (main.rs's `ping`).
pub fn ping(tx: AsyncTx, rx: AsyncRx, size: usize, warm: Duration, measure: Duration) -> Vec<u32> {
    run(async move {
        on_tx!(tx, |t| on_rx!(rx, |r| ping_loop(
            &mut t, &mut r, size, warm, measure
        )
        .await))
    })
}

async fn ping_loop<S: AsyncSource, K: AsyncSink>(
    tx: &mut S,
    rx: &mut K,
    size: usize,
    warm: Duration,
    measure: Duration,
) -> Vec<u32> {
    let msg = message(size);
    let end = std::time::Instant::now() + warm;
    while std::time::Instant::now() < end {
        tx.send(&msg).await;
        std::hint::black_box(touch(rx.recv().await));
    }
    let mut log = TripLog::new(size, measure);
    loop {
        let t0 = std::time::Instant::now();
        tx.send(&msg).await;
        let n = TripLog::read(rx.recv().await);
        if !log.add(t0, n) {
            break;
        }
    }
    tx.send(&[]).await;
    assert_eq!(rx.recv().await.len(), 0);
    log.samples
}

/// The echoing child, async (main.rs's `echo`).
pub fn echo(rx: AsyncRx, tx: AsyncTx, out: &mut impl Write) {
    say_ready(out);
    run(async move {
        on_tx!(tx, |t| on_rx!(rx, |r| loop {
            let m = r.recv().await;
            t.send(m).await;
            if m.is_empty() {
                break;
            }
        }))
    });
}

// ---------------------------------------------------------------------------
// Wake-up

/// The receiving child of a wake-up round, async (main.rs's `stamps`):
/// each message's latency from its send, taken as the task gets it.
pub fn stamps(rx: AsyncRx, out: &mut impl Write) -> Vec<u32> {
    say_ready(out);
    run(async move {
        on_rx!(rx, |r| {
            let mut st = Stamps::default();
            while st.add(r.recv().await, monotonic_ns()) {}
            st.latencies
        })
    })
}
