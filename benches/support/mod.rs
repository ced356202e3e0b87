//! Shared benchmark machinery: transports, and peers that are separate
//! processes (the bench binary run again with `PEER_ENV` naming the role).
//!
//! A peer is driven over its stdin/stdout: the parent writes a count, the
//! peer does that many operations (receive, or echo) and answers one line.
//! So the parent can time exactly the messages of one criterion sample with
//! `iter_custom`, and the peer process lives for the whole benchmark.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use shmchan::{Channel, Key, Options, Receiver, Sender};

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

/// The transports compared.
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

    /// Whether this transport carries messages of `size` bytes.
    pub fn carries(self, size: usize) -> bool {
        match self {
            Kind::MsgQueue => size <= msgmax(),
            _ => true,
        }
    }
}

/// The kernel's largest System V message.
pub fn msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// Largest message SOCK_SEQPACKET carries here without tuning.
const SEQPACKET_MAX: usize = 64 * 1024;

/// Ring capacity for messages of `size`: at least four times the message,
/// at least the library's default (4 MiB).
pub fn capacity_for(size: usize) -> usize {
    (4 * (size + 8)).max(shmchan::DEFAULT_CAPACITY)
}

/// One direction of a link.
pub enum Tx {
    Shm(Sender, bool),
    Stream(File, Vec<u8>),
    Packet(RawFd),
    MsgQueue(i32, Vec<u8>),
}

pub enum Rx {
    Shm(Receiver, bool),
    Stream(BufReader<File>),
    Packet(RawFd),
    MsgQueue(i32),
}

impl Tx {
    /// Sends `msg` (the zero-copy flavour fills the reserved payload with
    /// `msg` in place, so that it also writes every byte).
    pub fn send(&mut self, msg: &[u8]) {
        match self {
            Tx::Shm(tx, false) => tx.send(msg).expect("shmchan send"),
            Tx::Shm(tx, true) => {
                let mut grant = tx.reserve(msg.len()).expect("shmchan reserve");
                grant.copy_from_slice(msg);
                grant.commit().expect("commit");
            }
            Tx::Stream(f, scratch) => {
                scratch.clear();
                scratch.extend_from_slice(&(msg.len() as u32).to_le_bytes());
                scratch.extend_from_slice(msg);
                f.write_all(scratch).expect("stream write");
            }
            Tx::Packet(fd) => {
                // SAFETY: fd is our open socket; msg is a valid buffer.
                let n = unsafe { libc::send(*fd, msg.as_ptr().cast(), msg.len(), 0) };
                assert_eq!(n, msg.len() as isize, "seqpacket send");
            }
            Tx::MsgQueue(id, buf) => {
                buf.truncate(8);
                buf.extend_from_slice(msg);
                // SAFETY: buf holds a long mtype (1) and msg.len() bytes of text.
                let r = unsafe { libc::msgsnd(*id, buf.as_ptr().cast(), msg.len(), 0) };
                assert_eq!(r, 0, "msgsnd: {}", std::io::Error::last_os_error());
            }
        }
    }
}

impl Rx {
    /// Receives one message into `buf` (or reads it in place), touching
    /// every byte; returns its length.
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> usize {
        match self {
            Rx::Shm(rx, false) => rx.recv_into(buf).expect("shmchan recv"),
            Rx::Shm(rx, true) => {
                let msg = rx.recv_ref().expect("shmchan recv_ref");
                black_box(touch(&msg));
                msg.len()
            }
            Rx::Stream(r) => {
                let mut len = [0u8; 4];
                r.read_exact(&mut len).expect("stream read");
                buf.resize(u32::from_le_bytes(len) as usize, 0);
                r.read_exact(buf).expect("stream read");
                buf.len()
            }
            Rx::Packet(fd) => {
                buf.resize(SEQPACKET_MAX, 0);
                // SAFETY: fd is our socket; buf has SEQPACKET_MAX bytes.
                let n = unsafe { libc::recv(*fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                assert!(n >= 0, "seqpacket recv");
                buf.truncate(n as usize);
                buf.len()
            }
            Rx::MsgQueue(id) => {
                let max = msgmax();
                buf.resize(8 + max, 0);
                // SAFETY: buf has room for a long and max bytes.
                let n = unsafe { libc::msgrcv(*id, buf.as_mut_ptr().cast(), max, 0, 0) };
                assert!(n >= 0, "msgrcv: {}", std::io::Error::last_os_error());
                buf.truncate(8 + n as usize);
                n as usize
            }
        }
    }
}

/// Reads every byte (so that the zero-copy receiver does real work), a
/// word at a time so that it runs at memory speed.
pub fn touch(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut acc = (&mut words).fold(0u64, |acc, w| {
        acc ^ u64::from_ne_bytes(w.try_into().expect("8 bytes"))
    });
    for &b in words.remainder() {
        acc ^= u64::from(b);
    }
    acc
}

/// The kernel objects of one link, created by the parent; the env entries
/// tell a peer how to reach them.
pub struct Link {
    pub kind: Kind,
    pub size: usize,
    chan: Option<Channel>,
    fds: Vec<RawFd>,
    msgq: Option<i32>,
    pub env: Vec<(String, String)>,
}

impl Link {
    /// A one-way link for `kind`; `name` prefixes its env entries ("A" for
    /// parent to peer, "B" for the way back).
    pub fn new(kind: Kind, size: usize, name: &str) -> Link {
        let mut link = Link {
            kind,
            size,
            chan: None,
            fds: Vec::new(),
            msgq: None,
            env: vec![
                (format!("{name}_KIND"), kind.name().into()),
                (format!("{name}_SIZE"), size.to_string()),
            ],
        };
        match kind {
            Kind::Shm | Kind::ShmZeroCopy | Kind::ShmPark => {
                let mut opts = Options::new().capacity(capacity_for(size));
                if kind == Kind::ShmPark {
                    opts = opts.spin(Duration::ZERO);
                }
                let chan = Channel::create(Key::PRIVATE, &opts).expect("create channel");
                link.env
                    .push((format!("{name}_SHMID"), chan.id().to_string()));
                link.chan = Some(chan);
            }
            Kind::Pipe => link.fds = pipe(),
            Kind::Unix => link.fds = socketpair(size),
            Kind::MsgQueue => {
                // SAFETY: msgget with IPC_PRIVATE creates a new queue.
                let id = unsafe { libc::msgget(libc::IPC_PRIVATE, 0o600) };
                assert!(id >= 0, "msgget");
                link.env.push((format!("{name}_MSGQ"), id.to_string()));
                link.msgq = Some(id);
            }
        }
        if !link.fds.is_empty() {
            link.env
                .push((format!("{name}_FD_RX"), link.fds[0].to_string()));
            link.env
                .push((format!("{name}_FD_TX"), link.fds[1].to_string()));
        }
        link
    }

    /// The parent's sending end.
    pub fn tx(&self) -> Tx {
        tx_from(
            self.kind,
            self.size,
            self.chan.as_ref(),
            self.fds.get(1).copied(),
            self.msgq,
        )
    }

    /// The parent's receiving end (for the reply link of a ping-pong).
    pub fn rx(&self) -> Rx {
        rx_from(
            self.kind,
            self.size,
            self.chan.as_ref(),
            self.fds.first().copied(),
            self.msgq,
        )
    }

    /// Closes the fds the parent handed to its peer.
    pub fn close_peer_end(&mut self, parent_sends: bool) {
        if let [rx, tx] = self.fds[..] {
            let peer_end = if parent_sends { rx } else { tx };
            // SAFETY: closing our copy of an fd the peer inherited.
            unsafe { libc::close(peer_end) };
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(id) = self.msgq {
            // SAFETY: removing the queue we created.
            unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

fn tx_from(
    kind: Kind,
    size: usize,
    chan: Option<&Channel>,
    fd: Option<RawFd>,
    q: Option<i32>,
) -> Tx {
    match kind {
        Kind::Shm | Kind::ShmPark => {
            Tx::Shm(chan.expect("channel").sender().expect("sender"), false)
        }
        Kind::ShmZeroCopy => Tx::Shm(chan.expect("channel").sender().expect("sender"), true),
        Kind::Unix if size <= SEQPACKET_MAX => Tx::Packet(fd.expect("fd")),
        Kind::Pipe | Kind::Unix => {
            // SAFETY: the fd is ours and open; the File owns it from here.
            Tx::Stream(unsafe { File::from_raw_fd(fd.expect("fd")) }, Vec::new())
        }
        Kind::MsgQueue => {
            let mut buf = Vec::new();
            buf.extend_from_slice(&1i64.to_ne_bytes()); // mtype
            Tx::MsgQueue(q.expect("queue"), buf)
        }
    }
}

fn rx_from(
    kind: Kind,
    size: usize,
    chan: Option<&Channel>,
    fd: Option<RawFd>,
    q: Option<i32>,
) -> Rx {
    match kind {
        Kind::Shm | Kind::ShmPark => {
            Rx::Shm(chan.expect("channel").receiver().expect("receiver"), false)
        }
        Kind::ShmZeroCopy => Rx::Shm(chan.expect("channel").receiver().expect("receiver"), true),
        Kind::Unix if size <= SEQPACKET_MAX => Rx::Packet(fd.expect("fd")),
        Kind::Pipe | Kind::Unix => {
            // SAFETY: the fd is ours and open; the File owns it from here.
            let f = unsafe { File::from_raw_fd(fd.expect("fd")) };
            Rx::Stream(BufReader::with_capacity(1 << 16, f))
        }
        Kind::MsgQueue => Rx::MsgQueue(q.expect("queue")),
    }
}

fn pipe() -> Vec<RawFd> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors; no O_CLOEXEC so the peer
    // inherits them.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // Large pipe buffer so that big messages are not all context switches.
    // SAFETY: F_SETPIPE_SZ on our pipe.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
    fds.to_vec()
}

fn socketpair(size: usize) -> Vec<RawFd> {
    let ty = if size <= SEQPACKET_MAX {
        libc::SOCK_SEQPACKET
    } else {
        libc::SOCK_STREAM
    };
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair");
    for fd in fds {
        let buf: libc::c_int = 4 << 20;
        for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: setting an int socket option on our socket.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&buf as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
        }
    }
    fds.to_vec()
}

/// A link as the peer sees it, from the env entries prefixed `name`.
struct PeerLink {
    kind: Kind,
    size: usize,
    chan: Option<Channel>,
    fds: Option<(RawFd, RawFd)>,
    msgq: Option<i32>,
}

impl PeerLink {
    fn from_env(name: &str) -> PeerLink {
        let var = |k: &str| std::env::var(format!("{name}_{k}")).ok();
        let num = |k: &str| var(k).map(|v| v.parse::<i32>().expect("number"));
        PeerLink {
            kind: Kind::parse(&var("KIND").expect("KIND")),
            size: var("SIZE").and_then(|s| s.parse().ok()).expect("SIZE"),
            chan: num("SHMID").map(|id| Channel::open_id(id).expect("open channel")),
            fds: num("FD_RX").zip(num("FD_TX")),
            msgq: num("MSGQ"),
        }
    }

    fn rx(&self) -> Rx {
        let mut rx = rx_from(
            self.kind,
            self.size,
            self.chan.as_ref(),
            self.fds.map(|f| f.0),
            self.msgq,
        );
        if let (Kind::ShmPark, Rx::Shm(r, _)) = (self.kind, &mut rx) {
            r.set_spin(Duration::ZERO);
        }
        rx
    }

    fn tx(&self) -> Tx {
        let mut tx = tx_from(
            self.kind,
            self.size,
            self.chan.as_ref(),
            self.fds.map(|f| f.1),
            self.msgq,
        );
        if let (Kind::ShmPark, Tx::Shm(t, _)) = (self.kind, &mut tx) {
            t.set_spin(Duration::ZERO);
        }
        tx
    }
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
    let a = PeerLink::from_env("A");
    let mut rx = a.rx();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::with_capacity(a.size);
    match job.as_str() {
        "sink" => {
            for line in stdin.lock().lines() {
                let n: u64 = line.expect("control").parse().expect("count");
                for _ in 0..n {
                    black_box(rx.recv(&mut buf));
                }
                writeln!(out, "ok")
                    .and_then(|()| out.flush())
                    .expect("answer");
            }
        }
        "stamp" => stamp_peer(&mut rx, &mut buf, &mut out, stdin),
        "echo" => {
            let b = PeerLink::from_env("B");
            let mut tx = b.tx();
            for line in stdin.lock().lines() {
                let n: u64 = line.expect("control").parse().expect("count");
                for _ in 0..n {
                    let len = rx.recv(&mut buf);
                    tx.send(&buf[..len]);
                }
                writeln!(out, "ok")
                    .and_then(|()| out.flush())
                    .expect("answer");
            }
        }
        other => panic!("unknown peer job {other}"),
    }
    std::process::exit(0);
}

/// Receives stamped messages and answers with the latency of each
/// (receive time minus the send time carried in the message), in ns.
fn stamp_peer(rx: &mut Rx, buf: &mut Vec<u8>, out: &mut impl Write, stdin: std::io::Stdin) {
    for line in stdin.lock().lines() {
        let n: u64 = line.expect("control").parse().expect("count");
        let mut lat = Vec::with_capacity(n as usize);
        for _ in 0..n {
            rx.recv(buf);
            let now = monotonic_ns();
            let sent = u64::from_le_bytes(buf[..8].try_into().expect("stamp"));
            lat.push(now.saturating_sub(sent).to_string());
        }
        writeln!(out, "{}", lat.join(" "))
            .and_then(|()| out.flush())
            .expect("answer");
    }
}

/// CLOCK_MONOTONIC in ns: comparable across processes (unlike `Instant`'s
/// internals).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
