//! The transports both benchmark harnesses run: the criterion benches
//! (`benches/`, as `support::transport`) and the comparison with shmchan's
//! peers (`benchmarks/`, which includes this file by `#[path]`, as rtrb's
//! comparison crate includes its main crate's bench code). So a transport
//! is the same work in both: the same kernel object, sized by the same
//! [`capacity_for`], the same calls on each end, and a receiver that reads
//! every byte with the same [`touch`].
//!
//! It uses shmchan's public API, libc and crossbeam-channel, which both
//! crates have. The transports only `benchmarks/` runs (ipmpsc, iceoryx2,
//! the bare ring, crossbeam within one child) stay there.

// Each harness uses a part: what one leaves unused is the other's.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A sending end.
pub trait Source {
    /// Sends `msg` whole (waiting for room); the zero-copy flavour copies it
    /// into the reserved payload, so every sender writes every byte.
    fn send(&mut self, msg: &[u8]);

    /// Sends `msgs` whole and in order: one call per message, or one for
    /// all of them where the end batches ([`ShmBatchTx`]).
    #[inline]
    fn send_all(&mut self, msgs: &[Vec<u8>]) {
        for msg in msgs {
            self.send(msg);
        }
    }
}

/// A receiving end.
pub trait Sink {
    /// Receives the next message (waiting for it) and hands its bytes to
    /// `f`, in place where the transport allows.
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R;

    /// Receives the next message (waiting for it) and hands its bytes to
    /// `f`, and, where the end takes several at once
    /// ([`ShmEachRx`]), those queued behind it too, each to `f` in order.
    #[inline]
    fn recv_some(&mut self, mut f: impl FnMut(&[u8])) {
        self.recv_with(|m| f(m))
    }
}

// ---------------------------------------------------------------------------
// The transports, their sizes and limits

/// A transport both harnesses run, and how its ends use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A private shmchan channel.
    Shm(Shm),
    /// An anonymous pipe: one `write` of a 4-byte length prefix and the
    /// payload per message. `buffered`: the receiver reads through a
    /// 64 KiB buffer; else one `read` for the prefix and one for the
    /// payload.
    Pipe { buffered: bool },
    /// A Unix socket pair: `SOCK_SEQPACKET`, one record per message, up to
    /// [`SEQPACKET_MAX`]; above, `SOCK_STREAM` framed as the pipe.
    Socket,
    /// A `SOCK_STREAM` Unix socket pair at every size, framed as the pipe
    /// (what tokio's `UnixStream` is: `benchmarks/` runs its ends async).
    StreamSocket,
    /// A System V message queue: one `msgsnd` / `msgrcv` of type 1 per
    /// message, up to the kernel's msgmax.
    Msgq,
}

/// How the two ends of a shmchan link use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shm {
    /// `reserve` + fill in place / `recv_ref` + read in place, instead of
    /// `send` / `recv_into`.
    pub zero_copy: bool,
    /// Both ends park at every wait (a spin budget of zero).
    pub park: bool,
    /// `Options::membarrier(false)`: a SeqCst fence per message.
    pub fence: bool,
    /// The receiver's catch-up pause off (`Receiver::set_catch_up(ZERO)`).
    pub eager: bool,
    /// `Options::max_senders`: lanes of the channel (one sender uses one).
    pub lanes: u32,
    /// The sender sends [`BATCH`] messages at a time with `send_batch`
    /// (where its caller hands it that many: [`Source::send_all`]).
    pub batch: bool,
    /// The receiver takes up to [`BATCH`] messages at a time with
    /// `recv_many`, then hands them out one by one.
    pub many: bool,
    /// The receiver takes up to [`BATCH`] messages at a time in place
    /// with `recv_many_with` ([`Sink::recv_some`]).
    pub each: bool,
}

/// Messages per `send_batch` and per `recv_many` of the batching shmchan
/// ends.
pub const BATCH: usize = 32;

impl Shm {
    /// `send` / `recv_into` with the defaults.
    pub const COPY: Shm = Shm {
        zero_copy: false,
        park: false,
        fence: false,
        eager: false,
        lanes: 1,
        batch: false,
        many: false,
        each: false,
    };
}

impl Transport {
    /// The largest message the transport carries, if it has a limit, and
    /// where the limit comes from.
    pub fn max_size(self) -> Option<(usize, &'static str)> {
        match self {
            Transport::Msgq => Some((msgmax(), "kernel.msgmax")),
            _ => None,
        }
    }

    /// Whether it carries messages of `size` bytes.
    pub fn fits(self, size: usize) -> bool {
        self.max_size().is_none_or(|(max, _)| size <= max)
    }
}

/// Ring bytes any transport's framing may add to a message (shmchan's is
/// `shmchan::FRAME_OVERHEAD`; ipmpsc's and iceoryx2's are larger): a ring
/// holds a message of `size` bytes if it has `size + FRAMING`.
pub const FRAMING: usize = 64;

/// Ring bytes for messages of `size`: at least twice the message with its
/// framing, at least shmchan's default (`shmchan::DEFAULT_CAPACITY`,
/// larger than a core's L2), a power of two (shmchan rounds up to one
/// anyway). Every transport gets the same bytes, the pipe and the socket as
/// far as the kernel allows.
pub fn capacity_for(size: usize) -> usize {
    (2 * (size + FRAMING))
        .next_power_of_two()
        .max(shmchan::DEFAULT_CAPACITY)
}

/// crossbeam's bounded channel queues messages, not bytes: as many as `ring`
/// bytes hold, at least 2.
pub fn crossbeam_bound_for(size: usize, ring: usize) -> usize {
    (ring / size.max(1)).max(2)
}

/// Messages up to this size go over a `SOCK_SEQPACKET` socket, one record
/// each; larger ones over a `SOCK_STREAM` socket, framed as the pipe.
pub const SEQPACKET_MAX: usize = 64 << 10;

/// Reads every byte of `bytes` (a wrapping sum of 8-byte words, which the
/// compiler vectorises), so that in-place receivers do the work a copy does.
#[inline]
pub fn touch(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        acc = acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    for &b in words.remainder() {
        acc = acc.wrapping_add(u64::from(b));
    }
    acc
}

/// CLOCK_MONOTONIC in ns: one clock for processes and threads that stamp
/// a message with its send time and read it again on receipt (`Instant`
/// reads the same clock, but opaquely).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A number from /proc/sys, or `default` if it cannot be read.
fn sysctl(path: &str, default: usize) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// The largest System V message (Linux's default: 8192 bytes).
pub fn msgmax() -> usize {
    sysctl("/proc/sys/kernel/msgmax", 8192)
}

/// A new queue's byte limit, the most an unprivileged process may set.
fn msgmnb() -> usize {
    sysctl("/proc/sys/kernel/msgmnb", 16384)
}

/// The largest pipe buffer an unprivileged process may set.
fn pipe_max() -> usize {
    sysctl("/proc/sys/fs/pipe-max-size", 1 << 20)
}

// ---------------------------------------------------------------------------
// One link's kernel objects

/// The kernel objects of one one-way link: made by the parent, which names
/// them in env entries for its child, or found there by the child. Each
/// side takes one end ([`Objects::tx`] or [`Objects::rx`]).
pub struct Objects {
    transport: Transport,
    size: usize,
    chan: Option<shmchan::Channel>,
    /// (receiving end, sending end) of a pipe or socket pair; -1 once
    /// closed.
    fds: Option<(RawFd, RawFd)>,
    msq: Option<i32>,
    /// Whether this side made the queue (and removes it on drop).
    owns_msq: bool,
}

impl Objects {
    /// Makes the objects for messages of `size` in `ring` bytes, and adds
    /// the env entries (prefixed `name`) that [`Objects::from_env`] reads.
    pub fn create(
        transport: Transport,
        size: usize,
        ring: usize,
        name: &str,
        env: &mut Vec<(String, String)>,
    ) -> Objects {
        let mut o = Objects::none(transport, size);
        match transport {
            Transport::Shm(shm) => o.chan = Some(shm_channel(shm, size, ring)),
            Transport::Pipe { .. } => o.fds = Some(pipe(ring)),
            Transport::Socket if size <= SEQPACKET_MAX => {
                o.fds = Some(socketpair(libc::SOCK_SEQPACKET, ring))
            }
            Transport::Socket | Transport::StreamSocket => {
                o.fds = Some(socketpair(libc::SOCK_STREAM, ring))
            }
            Transport::Msgq => {
                o.msq = Some(msgq(ring.max(2 * size)));
                o.owns_msq = true;
            }
        }
        env.extend(o.env(name));
        o
    }

    /// The objects the parent named in the env entries prefixed `name`.
    pub fn from_env(transport: Transport, size: usize, name: &str) -> Objects {
        let num = |k: &str| {
            let v = std::env::var(format!("{name}_{k}")).ok()?;
            Some(v.parse::<i32>().expect("a number"))
        };
        Objects {
            chan: num("SHMID").map(|id| shmchan::Channel::open_id(id).expect("shmchan open")),
            fds: num("FD_RX").zip(num("FD_TX")),
            msq: num("MSQID"),
            ..Objects::none(transport, size)
        }
    }

    fn none(transport: Transport, size: usize) -> Objects {
        Objects {
            transport,
            size,
            chan: None,
            fds: None,
            msq: None,
            owns_msq: false,
        }
    }

    fn env(&self, name: &str) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(chan) = &self.chan {
            env.push((format!("{name}_SHMID"), chan.id().to_string()));
        }
        if let Some((rx, tx)) = self.fds {
            env.push((format!("{name}_FD_RX"), rx.to_string()));
            env.push((format!("{name}_FD_TX"), tx.to_string()));
        }
        if let Some(id) = self.msq {
            env.push((format!("{name}_MSQID"), id.to_string()));
        }
        env
    }

    /// The shmchan channel's segment and semaphore set ids, for a check
    /// at the end of a run that nothing is left.
    pub fn shm_ids(&self) -> Option<(i32, i32)> {
        self.chan.as_ref().map(|c| (c.id(), c.sem_id()))
    }

    /// The message queue's id, for the same check.
    pub fn msq_id(&self) -> Option<i32> {
        self.msq
    }

    /// After the child was spawned: closes the parent's copy of the end the
    /// child uses.
    pub fn close_child_end(&mut self, parent_sends: bool) {
        if let Some((rx, tx)) = self.fds {
            let child_end = if parent_sends { rx } else { tx };
            close(child_end);
            self.fds = Some(if parent_sends { (-1, tx) } else { (rx, -1) });
        }
    }

    /// This side's sending end; closes its copy of the other end of a pipe
    /// or socket pair.
    pub fn tx(&mut self) -> Tx {
        match self.transport {
            Transport::Shm(shm) => shm_tx(shm, self.chan.as_ref()),
            Transport::Pipe { .. } | Transport::Socket | Transport::StreamSocket => {
                fd_tx(self.transport, self.size, self.take_fd(true))
            }
            Transport::Msgq => Tx::Msgq(MsgqTx::new(self.msq.expect("queue"), self.size)),
        }
    }

    /// This side's receiving end; closes its copy of the other end of a
    /// pipe or socket pair.
    pub fn rx(&mut self) -> Rx {
        match self.transport {
            Transport::Shm(shm) => shm_rx(shm, self.chan.as_ref()),
            Transport::Pipe { .. } | Transport::Socket | Transport::StreamSocket => {
                fd_rx(self.transport, self.size, self.take_fd(false))
            }
            Transport::Msgq => Rx::Msgq(MsgqRx::new(self.msq.expect("queue"), self.size)),
        }
    }

    /// This side's end of a pipe or socket pair, the sending or the
    /// receiving one; closes its copy of the other.
    fn take_fd(&mut self, sending: bool) -> RawFd {
        let (rx, tx) = self.fds.take().expect("pipe or socket");
        let (ours, other) = if sending { (tx, rx) } else { (rx, tx) };
        close(other);
        ours
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        if let Some((rx, tx)) = self.fds {
            close(rx);
            close(tx);
        }
        if let (Some(id), true) = (self.msq, self.owns_msq) {
            // SAFETY: IPC_RMID on the queue this side made; no buffer.
            if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
                let e = std::io::Error::last_os_error();
                eprintln!("msgctl(IPC_RMID) on queue {id}: {e}");
            }
        }
    }
}

/// Closes `fd` unless it is -1 (closed already).
fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: our own fd, handed to nothing that owns it.
        unsafe { libc::close(fd) };
    }
}

/// A private channel of `ring` bytes, which must hold a `size`-byte
/// message.
fn shm_channel(shm: Shm, size: usize, ring: usize) -> shmchan::Channel {
    let mut opts = shmchan::Options::new()
        .capacity(ring)
        .max_senders(shm.lanes)
        .membarrier(!shm.fence);
    if shm.park {
        opts = opts.spin(Duration::ZERO);
    }
    let chan = shmchan::Channel::create(shmchan::Key::PRIVATE, &opts).expect("shmchan create");
    assert!(
        chan.max_message_len() >= size,
        "a {size}-byte message does not fit a {ring}-byte ring"
    );
    chan
}

/// A pipe whose buffer is `ring` bytes, or as large as the kernel allows
/// unprivileged (1 MiB here), so that big messages are not all context
/// switches. No O_CLOEXEC: the child inherits both ends.
fn pipe(ring: usize) -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    let bytes = ring.min(pipe_max()) as libc::c_int;
    // SAFETY: F_SETPIPE_SZ on our pipe; an int argument.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, bytes) };
    (fds[0], fds[1])
}

/// A Unix socket pair of type `ty` (`SOCK_SEQPACKET`, `SOCK_STREAM`) with
/// buffers of `ring` bytes. No SOCK_CLOEXEC: the child inherits both ends.
fn socketpair(ty: libc::c_int, ring: usize) -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors socketpair writes.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    for fd in fds {
        socket_buffers(fd, ring);
    }
    (fds[0], fds[1])
}

/// Send and receive buffers of `ring` bytes, as the pipe gets
/// `F_SETPIPE_SZ`: the kernel caps them at net.core.wmem_max / rmem_max
/// (and doubles them for its bookkeeping). A `SOCK_SEQPACKET` record must
/// fit the sender's buffer whole; `ring` is at least twice a message.
fn socket_buffers(fd: RawFd, ring: usize) {
    let v = ring.min(i32::MAX as usize / 2) as libc::c_int;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: an int option on our socket, passed with its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&raw const v).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let e = std::io::Error::last_os_error();
        assert_eq!(r, 0, "setsockopt(SO_SNDBUF/SO_RCVBUF): {e}");
    }
}

/// A new private message queue holding `bytes` (see [`queue_bytes`]).
fn msgq(bytes: usize) -> i32 {
    // SAFETY: no pointers: a new private queue, ours alone.
    let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
    queue_bytes(id, bytes);
    id
}

/// Sets a queue's byte limit (`msg_qbytes`, which bounds its messages too)
/// to `want`: above msgmnb only with CAP_SYS_RESOURCE (root, unless a
/// container dropped it); without it, to msgmnb, and [`queue_capped`] says
/// so.
fn queue_bytes(id: i32, want: usize) {
    // SAFETY: msqid_ds is plain data; IPC_STAT fills it from our queue.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT on our queue into a msqid_ds of ours.
    let r = unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) };
    assert_eq!(
        r,
        0,
        "msgctl(IPC_STAT): {}",
        std::io::Error::last_os_error()
    );
    for bytes in [want, want.min(msgmnb())] {
        ds.msg_qbytes = bytes as libc::msglen_t;
        // SAFETY: IPC_SET on our queue from the msqid_ds IPC_STAT filled.
        if unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) } == 0 {
            if bytes < want {
                QUEUE_CAPPED.store(bytes, Ordering::Relaxed);
            }
            return;
        }
        let e = std::io::Error::last_os_error();
        let why = format!("msgctl(IPC_SET, msg_qbytes = {bytes}): {e}");
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{why}");
    }
    panic!("msgctl(IPC_SET): not allowed to set msg_qbytes, even to msgmnb");
}

/// msgmnb, if a queue of the run could not be raised above it.
static QUEUE_CAPPED: AtomicUsize = AtomicUsize::new(0);

/// The byte limit the run's message queues were held to, below the ring
/// bytes asked for, if they were (no CAP_SYS_RESOURCE).
pub fn queue_capped() -> Option<usize> {
    match QUEUE_CAPPED.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

// ---------------------------------------------------------------------------
// The ends

/// A sending end of a [`Transport`].
pub enum Tx {
    ShmCopy(ShmCopyTx),
    ShmZc(ShmZcTx),
    ShmBatch(ShmBatchTx),
    /// A pipe, or a `SOCK_STREAM` socket: length-prefixed.
    Framed(FramedTx),
    /// A `SOCK_SEQPACKET` socket.
    Packet(PacketTx),
    Msgq(MsgqTx),
}

/// A receiving end of a [`Transport`].
pub enum Rx {
    ShmCopy(ShmCopyRx),
    ShmZc(ShmZcRx),
    ShmMany(ShmManyRx),
    ShmEach(ShmEachRx),
    Framed(FramedRx),
    Packet(PacketRx),
    Msgq(MsgqRx),
}

/// One branch per message, for a harness that accepts it (the criterion
/// benches); `benchmarks/` matches once and runs a loop per end type.
impl Source for Tx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        match self {
            Tx::ShmCopy(t) => t.send(msg),
            Tx::ShmZc(t) => t.send(msg),
            Tx::ShmBatch(t) => t.send(msg),
            Tx::Framed(t) => t.send(msg),
            Tx::Packet(t) => t.send(msg),
            Tx::Msgq(t) => t.send(msg),
        }
    }
}

impl Sink for Rx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Rx::ShmCopy(r) => r.recv_with(f),
            Rx::ShmZc(r) => r.recv_with(f),
            Rx::ShmMany(r) => r.recv_with(f),
            Rx::ShmEach(r) => r.recv_with(f),
            Rx::Framed(r) => r.recv_with(f),
            Rx::Packet(r) => r.recv_with(f),
            Rx::Msgq(r) => r.recv_with(f),
        }
    }
}

/// The sending end of a shmchan link.
fn shm_tx(shm: Shm, chan: Option<&shmchan::Channel>) -> Tx {
    let mut tx = chan.expect("channel").sender().expect("sender");
    if shm.park {
        tx.set_spin(Duration::ZERO);
    }
    if shm.batch {
        Tx::ShmBatch(ShmBatchTx(tx))
    } else if shm.zero_copy {
        Tx::ShmZc(ShmZcTx(tx))
    } else {
        Tx::ShmCopy(ShmCopyTx(tx))
    }
}

/// The receiving end of a shmchan link.
fn shm_rx(shm: Shm, chan: Option<&shmchan::Channel>) -> Rx {
    let mut rx = chan.expect("channel").receiver().expect("receiver");
    if shm.park {
        rx.set_spin(Duration::ZERO);
    }
    if shm.eager {
        rx.set_catch_up(Duration::ZERO);
    }
    if shm.each {
        Rx::ShmEach(ShmEachRx(rx))
    } else if shm.many {
        Rx::ShmMany(ShmManyRx {
            rx,
            bufs: vec![Vec::new(); BATCH],
            next: 0,
            filled: 0,
        })
    } else if shm.zero_copy {
        Rx::ShmZc(ShmZcRx(rx))
    } else {
        Rx::ShmCopy(ShmCopyRx(rx, Vec::new()))
    }
}

/// The sending end of a pipe or socket pair (`fd`, open, ours from here).
fn fd_tx(transport: Transport, size: usize, fd: RawFd) -> Tx {
    if transport == Transport::Socket && size <= SEQPACKET_MAX {
        // SAFETY: our open fd; the OwnedFd owns it from here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Tx::Packet(PacketTx { fd })
    } else {
        // SAFETY: our open fd; the File owns it from here.
        let file = unsafe { File::from_raw_fd(fd) };
        Tx::Framed(FramedTx {
            file,
            scratch: Vec::new(),
        })
    }
}

/// The receiving end of a pipe or socket pair (`fd`, open, ours from here).
fn fd_rx(transport: Transport, size: usize, fd: RawFd) -> Rx {
    if transport == Transport::Socket && size <= SEQPACKET_MAX {
        // SAFETY: our open fd; the OwnedFd owns it from here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Rx::Packet(PacketRx {
            fd,
            buf: vec![0; size + 1],
        })
    } else {
        // SAFETY: our open fd; the File owns it from here.
        let file = unsafe { File::from_raw_fd(fd) };
        // Unbuffered, every read goes to the pipe.
        let buffer = match transport {
            Transport::Pipe { buffered: false } => 0,
            _ => 64 << 10,
        };
        Rx::Framed(FramedRx {
            reader: BufReader::with_capacity(buffer, file),
            buf: Vec::new(),
        })
    }
}

/// shmchan, copying: `send`.
pub struct ShmCopyTx(shmchan::Sender);
/// shmchan, zero-copy: `reserve`, fill in place, `commit`.
pub struct ShmZcTx(shmchan::Sender);
/// shmchan, copying: `recv_into` a reused buffer.
pub struct ShmCopyRx(shmchan::Receiver, Vec<u8>);
/// shmchan, zero-copy: `recv_ref`, read in place.
pub struct ShmZcRx(shmchan::Receiver);
/// shmchan, batching: `send_batch` of the messages handed to
/// [`Source::send_all`] (one publication for those that fit); a message
/// handed alone goes by `send`.
pub struct ShmBatchTx(shmchan::Sender);
/// shmchan, taking up to [`BATCH`] messages per `recv_many` into reused
/// buffers, handed out one by one.
pub struct ShmManyRx {
    rx: shmchan::Receiver,
    bufs: Vec<Vec<u8>>,
    /// The next buffer to hand out, and how many the last call filled.
    next: usize,
    filled: usize,
}

impl Source for ShmBatchTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg).expect("shmchan send");
    }

    #[inline]
    fn send_all(&mut self, msgs: &[Vec<u8>]) {
        self.0.send_batch(msgs).expect("shmchan send_batch");
    }
}

impl Sink for ShmManyRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.next == self.filled {
            self.filled = self
                .rx
                .recv_many(&mut self.bufs)
                .expect("shmchan recv_many");
            self.next = 0;
        }
        self.next += 1;
        f(&self.bufs[self.next - 1])
    }
}

/// shmchan, taking up to [`BATCH`] messages per `recv_many_with`, each
/// read in place.
pub struct ShmEachRx(shmchan::Receiver);

impl Sink for ShmEachRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        self.0
            .recv_many_with(1, |m| out = f.take().map(|f| f(m)))
            .expect("shmchan recv_many_with");
        out.expect("one message")
    }

    #[inline]
    fn recv_some(&mut self, f: impl FnMut(&[u8])) {
        self.0
            .recv_many_with(BATCH, f)
            .expect("shmchan recv_many_with");
    }
}

impl ShmCopyTx {
    /// The sender, for a harness that drives it otherwise (async).
    pub fn into_inner(self) -> shmchan::Sender {
        self.0
    }
}

impl ShmCopyRx {
    /// The receiver, for a harness that drives it otherwise (async).
    pub fn into_inner(self) -> shmchan::Receiver {
        self.0
    }
}

impl Source for ShmCopyTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg).expect("shmchan send");
    }
}

impl Source for ShmZcTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let mut grant = self.0.reserve(msg.len()).expect("shmchan reserve");
        grant.copy_from_slice(msg);
        grant.commit().expect("shmchan commit");
    }
}

impl Sink for ShmCopyRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let n = self.0.recv_into(&mut self.1).expect("shmchan recv_into");
        f(&self.1[..n])
    }
}

impl Sink for ShmZcRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let msg = self.0.recv_ref().expect("shmchan recv_ref");
        f(&msg)
    }
}

/// A byte stream (a pipe or a `SOCK_STREAM` socket), sending.
pub struct FramedTx {
    file: File,
    scratch: Vec<u8>,
}

/// A byte stream, receiving through a buffer (64 KiB, or none).
pub struct FramedRx {
    reader: BufReader<File>,
    buf: Vec<u8>,
}

impl FramedTx {
    /// The byte stream, for a harness that drives it otherwise (async).
    pub fn into_file(self) -> File {
        self.file
    }
}

impl FramedRx {
    /// The byte stream, unread (a harness that drives it otherwise takes
    /// it before the first message, with nothing buffered).
    pub fn into_file(self) -> File {
        assert!(self.reader.buffer().is_empty(), "bytes buffered");
        self.reader.into_inner()
    }
}

impl Source for FramedTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        // One write of prefix + payload.
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(msg.len() as u32).to_le_bytes());
        self.scratch.extend_from_slice(msg);
        self.file
            .write_all(&self.scratch)
            .expect("pipe/socket write");
    }
}

impl Sink for FramedRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut len).expect("pipe/socket read");
        let n = u32::from_le_bytes(len) as usize;
        self.buf.resize(n, 0);
        self.reader
            .read_exact(&mut self.buf[..n])
            .expect("pipe/socket read");
        f(&self.buf[..n])
    }
}

/// A `SOCK_SEQPACKET` socket, sending one record per message.
pub struct PacketTx {
    fd: OwnedFd,
}

/// A `SOCK_SEQPACKET` socket, receiving one record per message into a
/// buffer one byte longer than a message (a longer record would show;
/// the kernel cuts a record to the buffer silently).
pub struct PacketRx {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Source for PacketTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let fd = self.fd.as_raw_fd();
        loop {
            // SAFETY: msg is readable for msg.len() bytes; our socket.
            let n = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
            if n >= 0 {
                assert_eq!(n as usize, msg.len(), "socket: short record");
                return;
            }
            interrupted_or_panic("socket send");
        }
    }
}

impl Sink for PacketRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let (fd, buf) = (self.fd.as_raw_fd(), &mut self.buf);
        let n = loop {
            // SAFETY: buf is writable for buf.len() bytes; our socket.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                break n as usize;
            }
            interrupted_or_panic("socket recv");
        };
        // An empty record is a marker; so is end of file (the sender gone),
        // which the caller then finds short or out of step.
        assert!(n < buf.len(), "socket: a record longer than a message");
        f(&buf[..n])
    }
}

/// After a failed call: returns if it was interrupted (retry), else panics
/// with the error.
fn interrupted_or_panic(call: &str) {
    let e = std::io::Error::last_os_error();
    if e.kind() != ErrorKind::Interrupted {
        panic!("{call}: {e}");
    }
}

/// A System V message: the type (a long, 1) then the payload, in words so
/// that the type is aligned.
fn msgbuf(size: usize) -> Vec<libc::c_long> {
    let word = std::mem::size_of::<libc::c_long>();
    let mut buf = vec![0; 1 + size.div_ceil(word)];
    buf[0] = MTYPE;
    buf
}

/// The payload bytes of a `msgbuf`.
fn mtext(buf: &mut [libc::c_long]) -> &mut [u8] {
    let text = &mut buf[1..];
    let len = std::mem::size_of_val(text);
    // SAFETY: the words after the type, seen as bytes for as long as the
    // borrow of `buf` lasts: u8 has no alignment and any bytes are valid
    // longs.
    unsafe { std::slice::from_raw_parts_mut(text.as_mut_ptr().cast::<u8>(), len) }
}

const MTYPE: libc::c_long = 1;

/// A System V message queue, sending: `msgsnd` of a message of type 1.
pub struct MsgqTx {
    id: i32,
    buf: Vec<libc::c_long>,
}

/// A System V message queue, receiving: `msgrcv` of the next message of
/// type 1 (no `MSG_NOERROR`: a longer message fails with E2BIG).
pub struct MsgqRx {
    id: i32,
    size: usize,
    buf: Vec<libc::c_long>,
}

impl MsgqTx {
    fn new(id: i32, size: usize) -> MsgqTx {
        MsgqTx {
            id,
            buf: msgbuf(size),
        }
    }
}

impl MsgqRx {
    fn new(id: i32, size: usize) -> MsgqRx {
        MsgqRx {
            id,
            size,
            buf: msgbuf(size),
        }
    }
}

impl Source for MsgqTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        mtext(&mut self.buf)[..msg.len()].copy_from_slice(msg);
        // SAFETY: buf holds the type and then at least msg.len() bytes.
        // Interrupted (resumed after a stop signal: System V calls are not
        // restarted): send again.
        while unsafe { libc::msgsnd(self.id, self.buf.as_ptr().cast(), msg.len(), 0) } != 0 {
            interrupted_or_panic("msgsnd");
        }
    }
}

impl Sink for MsgqRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let (id, size) = (self.id, self.size);
        let n = loop {
            let buf = self.buf.as_mut_ptr().cast();
            // SAFETY: buf holds the type and then room for size bytes, the
            // most msgrcv writes.
            let n = unsafe { libc::msgrcv(id, buf, size, MTYPE, 0) };
            if n >= 0 {
                break n as usize;
            }
            interrupted_or_panic("msgrcv");
        };
        f(&mtext(&mut self.buf)[..n])
    }
}

/// crossbeam-channel, the in-process reference: a fresh `Vec` per message,
/// as an in-process channel of bytes needs (the receiver frees it).
impl Source for crossbeam_channel::Sender<Vec<u8>> {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        crossbeam_channel::Sender::send(self, msg.to_vec()).expect("crossbeam send");
    }
}

impl Sink for crossbeam_channel::Receiver<Vec<u8>> {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let msg = self.recv().expect("crossbeam recv");
        f(&msg)
    }
}
