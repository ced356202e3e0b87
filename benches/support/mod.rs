//! Shared benchmark machinery: the transports (`transport.rs`, which
//! `benchmarks/` runs too), and peers that are separate processes (the
//! bench binary run again with `PEER_ENV` naming the role).
//!
//! A peer is driven over its stdin/stdout: the parent writes a count, the
//! peer does that many operations (receive, or echo) and answers one line.
//! So the parent can time exactly the messages of one criterion sample with
//! `iter_custom`, and the peer process lives for the whole benchmark.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod transport;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use transport::{Objects, Shm, Transport};
pub use transport::{Rx, Sink, Source, Tx, monotonic_ns, touch};

/// The settings every benchmark here uses (short: the whole `cargo bench`
/// stays within minutes), overridable from the command line.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .configure_from_args()
}

/// Env var naming the peer's job (`sink`, `echo`, `stamp`).
pub const PEER_ENV: &str = "SHMCHAN_BENCH_PEER";

/// The transports compared, by the names criterion reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// shmchan, `send` / `recv_into`.
    Shm,
    /// shmchan, `reserve` / `recv_ref`, both sides touching every byte.
    ShmZeroCopy,
    /// shmchan forced to park on every wait (spin budget 0).
    ShmPark,
    /// An anonymous pipe, 4-byte length prefix + payload.
    Pipe,
    /// A Unix socket pair: SOCK_SEQPACKET where the size allows, else
    /// SOCK_STREAM with a length prefix.
    Unix,
    /// A System V message queue.
    MsgQueue,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shm => "shmchan",
            Kind::ShmZeroCopy => "shmchan-zero-copy",
            Kind::ShmPark => "shmchan-park",
            Kind::Pipe => "pipe",
            Kind::Unix => "unix-socket",
            Kind::MsgQueue => "sysv-msgq",
        }
    }

    fn parse(name: &str) -> Kind {
        [
            Kind::Shm,
            Kind::ShmZeroCopy,
            Kind::ShmPark,
            Kind::Pipe,
            Kind::Unix,
            Kind::MsgQueue,
        ]
        .into_iter()
        .find(|k| k.name() == name)
        .expect("known transport")
    }

    /// The shared transport this is (`transport.rs`, which `benchmarks/`
    /// runs too).
    fn transport(self) -> Transport {
        match self {
            Kind::Shm => Transport::Shm(Shm::COPY),
            Kind::ShmZeroCopy => Transport::Shm(Shm {
                zero_copy: true,
                ..Shm::COPY
            }),
            Kind::ShmPark => Transport::Shm(Shm {
                park: true,
                ..Shm::COPY
            }),
            Kind::Pipe => Transport::Pipe { buffered: true },
            Kind::Unix => Transport::Socket,
            Kind::MsgQueue => Transport::Msgq,
        }
    }

    /// Whether this transport carries messages of `size` bytes.
    pub fn carries(self, size: usize) -> bool {
        self.transport().fits(size)
    }
}

/// The kernel objects of one link, created by the parent; the env entries
/// tell a peer how to reach them.
pub struct Link {
    pub kind: Kind,
    pub size: usize,
    pub env: Vec<(String, String)>,
    objects: Objects,
}

impl Link {
    /// A one-way link for `kind`, of `capacity_for(size)` ring bytes;
    /// `name` prefixes its env entries ("A" for parent to peer, "B" for the
    /// way back).
    pub fn new(kind: Kind, size: usize, name: &str) -> Link {
        let mut env = vec![
            (format!("{name}_KIND"), kind.name().into()),
            (format!("{name}_SIZE"), size.to_string()),
        ];
        let ring = transport::capacity_for(size);
        let objects = Objects::create(kind.transport(), size, ring, name, &mut env);
        Link {
            kind,
            size,
            env,
            objects,
        }
    }

    /// The parent's sending end.
    pub fn tx(&mut self) -> Tx {
        self.objects.tx()
    }

    /// The parent's receiving end (for the reply link of a ping-pong).
    pub fn rx(&mut self) -> Rx {
        self.objects.rx()
    }

    /// Closes the fds the parent handed to its peer.
    pub fn close_peer_end(&mut self, parent_sends: bool) {
        self.objects.close_child_end(parent_sends);
    }
}

/// A link as the peer sees it, from the env entries prefixed `name`.
fn peer_link(name: &str) -> Objects {
    let var = |k: &str| std::env::var(format!("{name}_{k}")).expect(k);
    let kind = Kind::parse(&var("KIND"));
    let size = var("SIZE").parse().expect("SIZE");
    Objects::from_env(kind.transport(), size, name)
}

/// A running peer process.
pub struct Peer {
    child: Child,
    ctl: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts this bench binary again as `job` over `link`.
    pub fn spawn(job: &str, link: &Link, extra: &[(&str, String)]) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().expect("bench binary"));
        cmd.env(PEER_ENV, job)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &link.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn peer");
        let ctl = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Peer { child, ctl, out }
    }

    /// Tells the peer to do `n` operations.
    pub fn start(&mut self, n: u64) {
        writeln!(self.ctl, "{n}").expect("peer control");
        self.ctl.flush().expect("peer control");
    }

    /// The peer's answer line.
    pub fn answer(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("peer answer");
        assert!(!line.is_empty(), "peer exited");
        line.trim_end().to_owned()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a bench binary's `main`: runs the peer job named in the env and
/// exits; returns in a normal bench run.
pub fn peer_main() {
    let Ok(job) = std::env::var(PEER_ENV) else {
        return;
    };
    let mut a = peer_link("A");
    let mut rx = a.rx();
    match job.as_str() {
        "sink" => answer_each(|n| {
            for _ in 0..n {
                black_box(rx.recv_with(touch));
            }
            "ok".into()
        }),
        "stamp" => answer_each(|n| stamps(&mut rx, n)),
        "echo" => {
            let mut b = peer_link("B");
            let mut tx = b.tx();
            answer_each(|n| {
                for _ in 0..n {
                    rx.recv_with(|m| tx.send(m));
                }
                "ok".into()
            })
        }
        other => panic!("unknown peer job {other}"),
    }
    std::process::exit(0);
}

/// For each count the parent writes, runs `job` for that many messages and
/// answers with the line it returns.
fn answer_each(mut job: impl FnMut(u64) -> String) {
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let n: u64 = line.expect("control").parse().expect("count");
        let answer = job(n);
        writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .expect("answer");
    }
}

/// Receives `n` stamped messages; the latency of each (receive time minus
/// the send time carried in the message), in ns.
fn stamps(rx: &mut Rx, n: u64) -> String {
    let mut lat = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (now, sent) = rx.recv_with(|m| {
            let now = monotonic_ns();
            (now, u64::from_le_bytes(m[..8].try_into().expect("stamp")))
        });
        lat.push(now.saturating_sub(sent).to_string());
    }
    lat.join(" ")
}

/// Median and 99th percentile of `samples`.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Spins until `deadline` (for evenly spaced sends).
pub fn spin_until(deadline: Instant) {
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}
