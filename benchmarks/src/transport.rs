//! The transports compared, each as a one-way link: kernel objects made by
//! the parent, reached by the child through environment variables, and a
//! sending and a receiving end whose loops are monomorphised per transport
//! (no dynamic dispatch inside a timed loop).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bare::{BareRx, BareSeg, BareTx};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

/// The transports, in the order of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// shmchan `send` / `recv_into` (copying on both sides).
    Shm,
    /// shmchan `reserve` + fill in place / `recv_ref` + read in place.
    ShmZc,
    /// shmchan `send` / `recv_into` on a channel made with
    /// `Options::membarrier(false)`: a SeqCst fence per message, the
    /// handshake before membarrier (for A/B runs; not in the default set).
    ShmFence,
    /// shmchan `send` / `recv_into` with the receiver's catch-up pause off
    /// (`Receiver::set_catch_up(ZERO)`): the receiver reads each message as
    /// soon as it is published (for A/B runs; not in the default set).
    ShmEager,
    /// ipmpsc 0.5: `Sender::send(&Bytes)` / `zero_copy_context().recv::<&Bytes>()`.
    Ipmpsc,
    /// iceoryx2 0.10 publish-subscribe of `[u8]`: `loan_slice_uninit` +
    /// `write_from_slice` + `send` / busy-polled `receive`.
    Iceoryx2,
    /// An anonymous pipe, 4-byte length prefix + payload, read through a
    /// 64 KiB buffer.
    Pipe,
    /// The same pipe read without a buffer: one `read` for the prefix and
    /// one for the payload of each message (for comparison with the
    /// issue's reference figures; not in the default set).
    PipeRaw,
    /// A Unix domain socket pair: `SOCK_SEQPACKET`, one record per message,
    /// up to `SEQPACKET_MAX` (64 KiB); above, `SOCK_STREAM` framed as the
    /// pipe.
    Socket,
    /// A System V message queue: `msgsnd`/`msgrcv`, mtype 1, one queue
    /// message per message; only up to the kernel's msgmax.
    Msgq,
    /// crossbeam-channel 0.5 carrying `Vec<u8>` between two threads of one
    /// process, a fresh `Vec` per message: the in-process reference. Both
    /// ends live in the child (see `main.rs`).
    Crossbeam,
    /// The ceiling: a bare busy-polling ring over a System V segment with
    /// none of shmchan's guarantees (`bare.rs`).
    Bare,
}

pub const ALL: [Kind; 12] = [
    Kind::Shm,
    Kind::ShmZc,
    Kind::ShmFence,
    Kind::ShmEager,
    Kind::Ipmpsc,
    Kind::Iceoryx2,
    Kind::Pipe,
    Kind::PipeRaw,
    Kind::Socket,
    Kind::Msgq,
    Kind::Crossbeam,
    Kind::Bare,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shm => "shmchan",
            Kind::ShmZc => "shmchan-zc",
            Kind::ShmFence => "shmchan-fence",
            Kind::ShmEager => "shmchan-eager",
            Kind::Ipmpsc => "ipmpsc",
            Kind::Iceoryx2 => "iceoryx2",
            Kind::Pipe => "pipe",
            Kind::PipeRaw => "pipe-raw",
            Kind::Socket => "socket",
            Kind::Msgq => "msgq",
            Kind::Crossbeam => "crossbeam",
            Kind::Bare => "bare",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == name)
    }

    /// The largest message the transport carries, if it has a limit, and
    /// where the limit comes from: a round of a larger size is skipped
    /// ("n/a" in the tables).
    pub fn max_size(self) -> Option<(usize, &'static str)> {
        match self {
            Kind::Msgq => Some((msgmax(), "kernel.msgmax")),
            _ => None,
        }
    }

    pub fn fits(self, size: usize) -> bool {
        self.max_size().is_none_or(|(max, _)| size <= max)
    }
}

/// Ring bytes for messages of `size`: at least twice the message with its
/// framing, at least shmchan's default (4 MiB, larger than a core's L2;
/// see `shmchan::DEFAULT_CAPACITY`), a power of two (shmchan rounds up to
/// one anyway; the others get the same bytes, the pipe and the socket as
/// far as the kernel allows).
pub fn capacity_for(size: usize) -> usize {
    (2 * (size + 64))
        .next_power_of_two()
        .max(shmchan::DEFAULT_CAPACITY)
}

/// iceoryx2 queues samples, not bytes: a subscriber buffer of as many
/// samples as the byte ring (`ring` bytes) holds messages, capped (a deeper
/// queue did not help here, see README), at least 2.
pub fn iceoryx2_buffer_for(size: usize, ring: usize, cap_override: Option<usize>) -> usize {
    let cap = cap_override.unwrap_or(ICEORYX2_MAX_BUFFER);
    (ring / size.max(1)).clamp(2, cap)
}

/// crossbeam's bounded channel queues messages too: as many as the byte
/// ring holds, at least 2 (no cap).
pub fn crossbeam_bound_for(size: usize, ring: usize) -> usize {
    (ring / size.max(1)).max(2)
}

/// Messages up to this size go over a `SOCK_SEQPACKET` socket, one record
/// each; larger ones over a `SOCK_STREAM` socket, framed as the pipe.
pub const SEQPACKET_MAX: usize = 64 << 10;

const ICEORYX2_MAX_BUFFER: usize = 16384;

/// Where a run keeps its files: the ipmpsc ring files and iceoryx2's root
/// directory, all removed at the end of the run.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// On tmpfs (/dev/shm), as shared memory should be: ipmpsc maps a file.
    pub ipmpsc: PathBuf,
    /// iceoryx2's root path (its default is /tmp/iceoryx2).
    pub iceoryx2_root: PathBuf,
    /// iceoryx2's prefix for its /dev/shm objects, unique to the run.
    pub iceoryx2_prefix: String,
}

impl RunDirs {
    pub fn new() -> RunDirs {
        let pid = std::process::id();
        RunDirs {
            ipmpsc: PathBuf::from(format!("/dev/shm/shmchan-peer-bench-{pid}")),
            iceoryx2_root: PathBuf::from(format!("/tmp/shmchan-peer-bench-{pid}")),
            iceoryx2_prefix: format!("shmchanbench{pid}_"),
        }
    }

    pub fn to_env(&self) -> Vec<(String, String)> {
        vec![
            ("BENCH_IPMPSC_DIR".into(), self.ipmpsc.display().to_string()),
            (
                "BENCH_ICEORYX2_ROOT".into(),
                self.iceoryx2_root.display().to_string(),
            ),
            ("BENCH_ICEORYX2_PREFIX".into(), self.iceoryx2_prefix.clone()),
        ]
    }

    pub fn from_env() -> RunDirs {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
        RunDirs {
            ipmpsc: var("BENCH_IPMPSC_DIR").into(),
            iceoryx2_root: var("BENCH_ICEORYX2_ROOT").into(),
            iceoryx2_prefix: var("BENCH_ICEORYX2_PREFIX"),
        }
    }

    pub fn create(&self) {
        std::fs::create_dir_all(&self.ipmpsc).expect("create ipmpsc dir");
        std::fs::create_dir_all(&self.iceoryx2_root).expect("create iceoryx2 root");
    }

    /// Removes both directories and any /dev/shm object with the run's
    /// iceoryx2 prefix; returns what had to be removed besides the
    /// directories themselves (should be nothing).
    pub fn remove(&self) -> Vec<String> {
        let mut leftovers = Vec::new();
        for dir in [&self.ipmpsc, &self.iceoryx2_root] {
            leftovers.extend(files_under(dir));
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&self.iceoryx2_prefix) {
                    // iceoryx2 keeps its global management segment on
                    // purpose (it outlives every node); the run's own
                    // prefix lets us remove it without touching anyone
                    // else's. Anything else is a real leftover.
                    if !name.ends_with(".global_mgmt") {
                        leftovers.push(format!("/dev/shm/{name}"));
                    }
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        leftovers
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

fn iceoryx2_config(dirs: &RunDirs) -> Config {
    let mut cfg = Config::default();
    cfg.global.set_root_path(
        &iceoryx2::prelude::Path::new(dirs.iceoryx2_root.as_os_str().as_encoded_bytes())
            .expect("iceoryx2 root path"),
    );
    cfg.global.prefix = FileName::new(dirs.iceoryx2_prefix.as_bytes()).expect("iceoryx2 prefix");
    cfg
}

fn iceoryx2_node(dirs: &RunDirs) -> Node<ipc::Service> {
    NodeBuilder::new()
        .config(&iceoryx2_config(dirs))
        // The benchmark handles no signals; a Ctrl-C ends it like any program.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

/// How a link is used: a stream (lossless, deep queue) or a ping-pong leg
/// (one message in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Stream,
    PingPong,
}

/// The parent's kernel objects of one one-way link, and the env entries
/// (prefixed by the link's name) that tell the child how to reach them.
pub struct Link {
    pub kind: Kind,
    pub size: usize,
    pub env: Vec<(String, String)>,
    shm: Option<shmchan::Channel>,
    ipmpsc_path: Option<PathBuf>,
    fds: Option<(RawFd, RawFd)>,
    ice: Option<IceService>,
    /// shmchan ids, checked for removal at the end of the run.
    pub shm_ids: Option<(i32, i32)>,
    /// The message queue's id: removed when the link drops, and checked
    /// for removal at the end of the run.
    pub msq_id: Option<i32>,
    bare: Option<BareSeg>,
}

struct IceService {
    // Drop order: the factory before its node.
    factory: PortFactory<ipc::Service, [u8], ()>,
    node: Node<ipc::Service>,
}

impl Link {
    /// Makes the kernel objects of a link named `name` (env prefix), for
    /// messages of `size` and `cap` ring bytes (`capacity_for(size)` unless
    /// `--capacity` says otherwise).
    pub fn new(
        kind: Kind,
        size: usize,
        cap: usize,
        name: &str,
        dirs: &RunDirs,
        how: Use,
        ice_buf: Option<usize>,
    ) -> Link {
        let mut link = Link {
            kind,
            size,
            env: vec![
                (format!("{name}_KIND"), kind.name().into()),
                (format!("{name}_SIZE"), size.to_string()),
                (format!("{name}_RING"), cap.to_string()),
            ],
            shm: None,
            ipmpsc_path: None,
            fds: None,
            ice: None,
            shm_ids: None,
            msq_id: None,
            bare: None,
        };
        match kind {
            Kind::Shm | Kind::ShmZc | Kind::ShmFence | Kind::ShmEager => {
                let opts = shmchan::Options::new()
                    .capacity(cap)
                    .membarrier(kind != Kind::ShmFence);
                let chan =
                    shmchan::Channel::create(shmchan::Key::PRIVATE, &opts).expect("shmchan create");
                assert!(
                    chan.max_message_len() >= size,
                    "a {size}-byte message does not fit a {cap}-byte ring"
                );
                link.env
                    .push((format!("{name}_SHMID"), chan.id().to_string()));
                link.shm_ids = Some((chan.id(), chan.sem_id()));
                link.shm = Some(chan);
            }
            Kind::Ipmpsc => {
                let path = dirs.ipmpsc.join(format!("{name}-{size}-{}", unique()));
                let s = path.to_str().expect("utf-8 path");
                // Creating truncates/initialises the file; the parent keeps
                // no handle: each side opens it.
                drop(ipmpsc::SharedRingBuffer::create(s, cap as u32).expect("ipmpsc create"));
                link.env.push((format!("{name}_PATH"), s.to_owned()));
                link.ipmpsc_path = Some(path);
            }
            Kind::Iceoryx2 => {
                let node = iceoryx2_node(dirs);
                let svc = format!("shmchan-bench/{}/{name}/{}", std::process::id(), unique());
                let builder = node
                    .service_builder(&ServiceName::new(&svc).expect("service name"))
                    .publish_subscribe::<[u8]>()
                    .max_publishers(1)
                    .max_subscribers(1)
                    .max_nodes(2)
                    .history_size(0);
                let factory = match how {
                    // Lossless: a full subscriber queue makes the publisher
                    // wait (RetryUntilDelivered, the default), as the other
                    // transports do.
                    Use::Stream => builder
                        .enable_safe_overflow(false)
                        .subscriber_max_buffer_size(iceoryx2_buffer_for(size, cap, ice_buf)),
                    // iceoryx2's own latency benchmark setting.
                    Use::PingPong => builder
                        .enable_safe_overflow(true)
                        .subscriber_max_buffer_size(1),
                }
                .create()
                .expect("iceoryx2 service");
                link.env.push((format!("{name}_SERVICE"), svc));
                link.ice = Some(IceService { factory, node });
            }
            Kind::Pipe | Kind::PipeRaw => {
                let mut fds = [0; 2];
                // SAFETY: fds has room for two descriptors. No O_CLOEXEC:
                // the child inherits them.
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
                // As large as the kernel allows unprivileged (1 MiB here),
                // so that big messages are not all context switches.
                // SAFETY: F_SETPIPE_SZ on our pipe.
                unsafe {
                    libc::fcntl(
                        fds[1],
                        libc::F_SETPIPE_SZ,
                        cap.min(pipe_max()) as libc::c_int,
                    )
                };
                link.env.push((format!("{name}_FD_RX"), fds[0].to_string()));
                link.env.push((format!("{name}_FD_TX"), fds[1].to_string()));
                link.fds = Some((fds[0], fds[1]));
            }
            Kind::Socket => {
                let ty = if size <= SEQPACKET_MAX {
                    libc::SOCK_SEQPACKET
                } else {
                    libc::SOCK_STREAM
                };
                let mut fds = [0; 2];
                // SAFETY: fds has room for two descriptors. No SOCK_CLOEXEC:
                // the child inherits them.
                let r = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
                assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
                // One end the parent's, the other the child's, as the pipe.
                link.env.push((format!("{name}_FD_RX"), fds[0].to_string()));
                link.env.push((format!("{name}_FD_TX"), fds[1].to_string()));
                link.fds = Some((fds[0], fds[1]));
                for fd in fds {
                    socket_buffers(fd, cap);
                }
            }
            Kind::Msgq => {
                // SAFETY: no pointers: a new private queue, ours alone.
                let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
                assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
                link.msq_id = Some(id);
                queue_bytes(id, cap.max(2 * size));
                link.env.push((format!("{name}_MSQID"), id.to_string()));
            }
            // Nothing in the kernel: the child makes the channel and both
            // threads (see `ChildLink::from_env`).
            Kind::Crossbeam => {}
            Kind::Bare => {
                let (seg, id) = BareSeg::create(cap.next_power_of_two());
                link.env.push((format!("{name}_BAREID"), id.to_string()));
                link.bare = Some(seg);
            }
        }
        link
    }

    /// After the child was spawned: closes the parent's copy of the end the
    /// child uses.
    pub fn close_child_end(&mut self, parent_sends: bool) {
        if let Some((rx, tx)) = self.fds {
            let child_end = if parent_sends { rx } else { tx };
            // SAFETY: our copy of an fd the child inherited.
            unsafe { libc::close(child_end) };
            self.fds = Some(if parent_sends { (-1, tx) } else { (rx, -1) });
        }
    }

    pub fn tx(&mut self) -> AnyTx {
        match self.kind {
            Kind::Shm | Kind::ShmZc | Kind::ShmFence | Kind::ShmEager => shm_tx(self.shm.as_ref()),
            Kind::Ipmpsc => AnyTx::Ipmpsc(ipmpsc_tx(self.ipmpsc_path.as_ref().expect("path"))),
            Kind::Iceoryx2 => AnyTx::Iceoryx2(ice_publisher(
                &self.ice.as_ref().expect("service").factory,
                self.size,
            )),
            Kind::Pipe | Kind::PipeRaw | Kind::Socket => {
                let (_, tx) = self.fds.take().expect("pipe or socket");
                fd_tx(self.kind, self.size, tx)
            }
            Kind::Msgq => AnyTx::Msgq(MsgqTx::new(self.msq_id.expect("queue"), self.size)),
            Kind::Crossbeam => AnyTx::InChild,
            Kind::Bare => AnyTx::Bare(BareTx::new(self.bare.take().expect("bare segment"))),
        }
    }

    pub fn rx(&mut self) -> AnyRx {
        match self.kind {
            Kind::Shm | Kind::ShmZc | Kind::ShmFence | Kind::ShmEager => {
                shm_rx(self.kind, self.shm.as_ref())
            }
            Kind::Ipmpsc => AnyRx::Ipmpsc(ipmpsc_rx(self.ipmpsc_path.as_ref().expect("path"))),
            Kind::Iceoryx2 => AnyRx::Iceoryx2(ice_subscriber(
                &self.ice.as_ref().expect("service").factory,
                self.size,
            )),
            Kind::Pipe | Kind::PipeRaw | Kind::Socket => {
                let (rx, _) = self.fds.take().expect("pipe or socket");
                fd_rx(self.kind, self.size, rx)
            }
            Kind::Msgq => AnyRx::Msgq(MsgqRx::new(self.msq_id.expect("queue"), self.size)),
            Kind::Crossbeam => AnyRx::InChild,
            Kind::Bare => AnyRx::Bare(BareRx::new(self.bare.take().expect("bare segment"))),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(p) = &self.ipmpsc_path {
            let _ = std::fs::remove_file(p);
        }
        if let Some((rx, tx)) = self.fds {
            for fd in [rx, tx] {
                if fd >= 0 {
                    // SAFETY: our own fd, not handed to a File.
                    unsafe { libc::close(fd) };
                }
            }
        }
        if let Some(ice) = self.ice.take() {
            drop(ice.factory);
            drop(ice.node);
        }
        if let Some(id) = self.msq_id {
            // The parent made the queue and removes it; the child only
            // sends and receives.
            // SAFETY: IPC_RMID on our queue; no buffer.
            if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
                eprintln!(
                    "msgctl(IPC_RMID) on queue {id}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// A link as the child sees it (from the env entries prefixed `name`).
pub struct ChildLink {
    pub kind: Kind,
    pub size: usize,
    shm: Option<shmchan::Channel>,
    ipmpsc_path: Option<PathBuf>,
    fds: Option<(RawFd, RawFd)>,
    ice: Option<IceService>,
    msq_id: Option<i32>,
    /// Both ends of the in-process channel, one for each of the child's
    /// two threads.
    crossbeam_tx: Option<crossbeam_channel::Sender<Vec<u8>>>,
    crossbeam_rx: Option<crossbeam_channel::Receiver<Vec<u8>>>,
    bare: Option<BareSeg>,
}

impl ChildLink {
    pub fn from_env(name: &str, dirs: &RunDirs) -> ChildLink {
        let var = |k: &str| std::env::var(format!("{name}_{k}")).ok();
        let num = |k: &str| var(k).map(|v| v.parse::<i32>().expect("number"));
        let kind = Kind::parse(&var("KIND").expect("KIND")).expect("known kind");
        let size = var("SIZE").expect("SIZE").parse().expect("size");
        let ring: usize = var("RING").expect("RING").parse().expect("ring bytes");
        let ice = var("SERVICE").map(|svc| {
            let node = iceoryx2_node(dirs);
            let factory = node
                .service_builder(&ServiceName::new(&svc).expect("service name"))
                .publish_subscribe::<[u8]>()
                .open()
                .expect("iceoryx2 open");
            IceService { factory, node }
        });
        let (crossbeam_tx, crossbeam_rx) = if kind == Kind::Crossbeam {
            let (tx, rx) = crossbeam_channel::bounded(crossbeam_bound_for(size, ring));
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        ChildLink {
            kind,
            size,
            shm: num("SHMID").map(|id| shmchan::Channel::open_id(id).expect("shmchan open")),
            ipmpsc_path: var("PATH").map(PathBuf::from),
            fds: num("FD_RX").zip(num("FD_TX")),
            ice,
            msq_id: num("MSQID"),
            crossbeam_tx,
            crossbeam_rx,
            bare: num("BAREID").map(|id| BareSeg::attach(id, ring.next_power_of_two())),
        }
    }

    /// The child's sending end; closes the inherited other end of a pipe
    /// or socket pair. For crossbeam, the sending end of the in-process
    /// channel (whose receiving end `rx` gives).
    pub fn tx(&mut self) -> AnyTx {
        match self.kind {
            Kind::Shm | Kind::ShmZc | Kind::ShmFence | Kind::ShmEager => shm_tx(self.shm.as_ref()),
            Kind::Ipmpsc => AnyTx::Ipmpsc(ipmpsc_tx(self.ipmpsc_path.as_ref().expect("path"))),
            Kind::Iceoryx2 => AnyTx::Iceoryx2(ice_publisher(
                &self.ice.as_ref().expect("service").factory,
                self.size,
            )),
            Kind::Pipe | Kind::PipeRaw | Kind::Socket => {
                let (rx, tx) = self.fds.take().expect("pipe or socket");
                // SAFETY: the inherited other end, unused here.
                unsafe { libc::close(rx) };
                fd_tx(self.kind, self.size, tx)
            }
            Kind::Msgq => AnyTx::Msgq(MsgqTx::new(self.msq_id.expect("queue"), self.size)),
            Kind::Crossbeam => {
                AnyTx::Crossbeam(self.crossbeam_tx.take().expect("crossbeam sender"))
            }
            Kind::Bare => AnyTx::Bare(BareTx::new(self.bare.take().expect("bare segment"))),
        }
    }

    /// The child's receiving end; closes the inherited other end of a pipe
    /// or socket pair.
    pub fn rx(&mut self) -> AnyRx {
        match self.kind {
            Kind::Shm | Kind::ShmZc | Kind::ShmFence | Kind::ShmEager => {
                shm_rx(self.kind, self.shm.as_ref())
            }
            Kind::Ipmpsc => AnyRx::Ipmpsc(ipmpsc_rx(self.ipmpsc_path.as_ref().expect("path"))),
            Kind::Iceoryx2 => AnyRx::Iceoryx2(ice_subscriber(
                &self.ice.as_ref().expect("service").factory,
                self.size,
            )),
            Kind::Pipe | Kind::PipeRaw | Kind::Socket => {
                let (rx, tx) = self.fds.take().expect("pipe or socket");
                // SAFETY: the inherited other end, unused here.
                unsafe { libc::close(tx) };
                fd_rx(self.kind, self.size, rx)
            }
            Kind::Msgq => AnyRx::Msgq(MsgqRx::new(self.msq_id.expect("queue"), self.size)),
            Kind::Crossbeam => {
                AnyRx::Crossbeam(self.crossbeam_rx.take().expect("crossbeam receiver"))
            }
            Kind::Bare => AnyRx::Bare(BareRx::new(self.bare.take().expect("bare segment"))),
        }
    }

    /// Drops the iceoryx2 service and node after the ports (call last).
    pub fn close(mut self) {
        if let Some(ice) = self.ice.take() {
            drop(ice.factory);
            drop(ice.node);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A number from /proc/sys, or `default` if it cannot be read.
fn sysctl(path: &str, default: usize) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn pipe_max() -> usize {
    sysctl("/proc/sys/fs/pipe-max-size", 1 << 20)
}

/// The largest System V message (Linux's default: 8192 bytes).
fn msgmax() -> usize {
    sysctl("/proc/sys/kernel/msgmax", 8192)
}

/// A new queue's byte limit, the most an unprivileged process may set.
fn msgmnb() -> usize {
    sysctl("/proc/sys/kernel/msgmnb", 16384)
}

/// Sets a queue's byte limit (`msg_qbytes`, which bounds its messages too)
/// to `want`: above msgmnb only with CAP_SYS_RESOURCE (root, unless a
/// container dropped it); without it, to msgmnb, and `queue_capped` says
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
                QUEUE_CAPPED.store(bytes, std::sync::atomic::Ordering::Relaxed);
            }
            return;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EPERM),
            "msgctl(IPC_SET, msg_qbytes = {bytes}): {e}"
        );
    }
    panic!("msgctl(IPC_SET): not allowed to set msg_qbytes, even to msgmnb");
}

/// msgmnb, if a queue of the run could not be raised above it.
static QUEUE_CAPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The byte limit the run's message queues were held to, below the ring
/// bytes asked for, if they were (no CAP_SYS_RESOURCE).
pub fn queue_capped() -> Option<usize> {
    match QUEUE_CAPPED.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// Send and receive buffers of `cap` bytes, as the pipe gets
/// `F_SETPIPE_SZ`: the kernel caps them at net.core.wmem_max / rmem_max
/// (and doubles them for its bookkeeping). A `SOCK_SEQPACKET` record must
/// fit the sender's buffer whole; `cap` is at least twice a message.
fn socket_buffers(fd: RawFd, cap: usize) {
    let v = cap.min(i32::MAX as usize / 2) as libc::c_int;
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
        assert_eq!(
            r,
            0,
            "setsockopt(SO_SNDBUF/SO_RCVBUF): {}",
            std::io::Error::last_os_error()
        );
    }
}

fn ipmpsc_tx(path: &Path) -> ipmpsc::Sender {
    ipmpsc::Sender::new(
        ipmpsc::SharedRingBuffer::open(path.to_str().expect("utf-8")).expect("ipmpsc open"),
    )
}

fn ipmpsc_rx(path: &Path) -> ipmpsc::Receiver {
    ipmpsc::Receiver::new(
        ipmpsc::SharedRingBuffer::open(path.to_str().expect("utf-8")).expect("ipmpsc open"),
    )
}

fn ice_publisher(
    f: &PortFactory<ipc::Service, [u8], ()>,
    size: usize,
) -> Publisher<ipc::Service, [u8], ()> {
    f.publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("iceoryx2 publisher")
}

fn ice_subscriber(
    f: &PortFactory<ipc::Service, [u8], ()>,
    _size: usize,
) -> Subscriber<ipc::Service, [u8], ()> {
    f.subscriber_builder()
        .create()
        .expect("iceoryx2 subscriber")
}

/// The sending end of a pipe or socket pair (`fd`, open, ours from here).
fn fd_tx(kind: Kind, size: usize, fd: RawFd) -> AnyTx {
    if kind == Kind::Socket && size <= SEQPACKET_MAX {
        // SAFETY: our open fd; the OwnedFd owns it from here.
        AnyTx::Packet(PacketTx {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    } else {
        // SAFETY: our open fd; the File owns it from here.
        AnyTx::Framed(FramedTx {
            file: unsafe { File::from_raw_fd(fd) },
            scratch: Vec::new(),
        })
    }
}

/// The receiving end of a pipe or socket pair (`fd`, open, ours from here).
fn fd_rx(kind: Kind, size: usize, fd: RawFd) -> AnyRx {
    if kind == Kind::Socket && size <= SEQPACKET_MAX {
        // SAFETY: our open fd; the OwnedFd owns it from here.
        AnyRx::Packet(PacketRx {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            buf: vec![0; size + 1],
        })
    } else {
        // SAFETY: our open fd; the File owns it from here.
        let file = unsafe { File::from_raw_fd(fd) };
        // No buffer: every read goes to the pipe.
        let buffer = if kind == Kind::PipeRaw { 0 } else { 1 << 16 };
        AnyRx::Framed(FramedRx {
            reader: BufReader::with_capacity(buffer, file),
            buf: Vec::new(),
        })
    }
}

/// The sending end of a shmchan link (parent or child side).
fn shm_tx(chan: Option<&shmchan::Channel>) -> AnyTx {
    AnyTx::Shm(chan.expect("channel").sender().expect("sender"))
}

/// The receiving end of a shmchan link; `shmchan-eager` turns the
/// receiver's catch-up pause off.
fn shm_rx(kind: Kind, chan: Option<&shmchan::Channel>) -> AnyRx {
    let mut rx = chan.expect("channel").receiver().expect("receiver");
    if kind == Kind::ShmEager {
        rx.set_catch_up(std::time::Duration::ZERO);
    }
    AnyRx::Shm(rx)
}

/// A sending end.
pub trait Source {
    /// Sends `msg` whole (waiting for room); the zero-copy flavours copy it
    /// into the loaned/reserved payload, so every sender writes every byte.
    fn send(&mut self, msg: &[u8]);
}

/// A receiving end.
pub trait Sink {
    /// Receives the next message (waiting for it) and hands its bytes to
    /// `f`, in place where the transport allows.
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R;
}

pub enum AnyTx {
    Shm(shmchan::Sender),
    Ipmpsc(ipmpsc::Sender),
    Iceoryx2(Publisher<ipc::Service, [u8], ()>),
    /// A pipe, or a `SOCK_STREAM` socket: length-prefixed.
    Framed(FramedTx),
    /// A `SOCK_SEQPACKET` socket.
    Packet(PacketTx),
    Msgq(MsgqTx),
    Crossbeam(crossbeam_channel::Sender<Vec<u8>>),
    Bare(BareTx),
    /// The parent's end of an in-process link: none, both ends are the
    /// child's.
    InChild,
}

pub enum AnyRx {
    Shm(shmchan::Receiver),
    Ipmpsc(ipmpsc::Receiver),
    Iceoryx2(Subscriber<ipc::Service, [u8], ()>),
    Framed(FramedRx),
    Packet(PacketRx),
    Msgq(MsgqRx),
    Crossbeam(crossbeam_channel::Receiver<Vec<u8>>),
    Bare(BareRx),
    InChild,
}

/// shmchan, copying: `send`.
pub struct ShmCopyTx<'a>(pub &'a mut shmchan::Sender);
/// shmchan, zero-copy: `reserve`, fill in place, `commit`.
pub struct ShmZcTx<'a>(pub &'a mut shmchan::Sender);
/// shmchan, copying: `recv_into` a reused buffer.
pub struct ShmCopyRx<'a>(pub &'a mut shmchan::Receiver, pub Vec<u8>);
/// shmchan, zero-copy: `recv_ref`, read in place.
pub struct ShmZcRx<'a>(pub &'a mut shmchan::Receiver);

impl Source for ShmCopyTx<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg).expect("shmchan send");
    }
}

impl Source for ShmZcTx<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let mut grant = self.0.reserve(msg.len()).expect("shmchan reserve");
        grant.copy_from_slice(msg);
        grant.commit().expect("shmchan commit");
    }
}

impl Sink for ShmCopyRx<'_> {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let n = self.0.recv_into(&mut self.1).expect("shmchan recv_into");
        f(&self.1[..n])
    }
}

impl Sink for ShmZcRx<'_> {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let msg = self.0.recv_ref().expect("shmchan recv_ref");
        f(&msg)
    }
}

impl Source for ipmpsc::Sender {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        ipmpsc::Sender::send(self, &serde_bytes::Bytes::new(msg)).expect("ipmpsc send");
    }
}

impl Sink for ipmpsc::Receiver {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut ctx = self.zero_copy_context();
        let msg: &serde_bytes::Bytes = ctx.recv().expect("ipmpsc recv");
        f(msg)
        // ctx drops here: the read position advances.
    }
}

impl Source for Publisher<ipc::Service, [u8], ()> {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let sample = self.loan_slice_uninit(msg.len()).expect("iceoryx2 loan");
        let sample = sample.write_from_slice(msg);
        let n = sample.send().expect("iceoryx2 send");
        debug_assert_eq!(n, 1, "iceoryx2: subscriber not connected");
    }
}

impl Sink for Subscriber<ipc::Service, [u8], ()> {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        // Publish-subscribe has no blocking receive: poll, as iceoryx2's own
        // benchmarks do, spinning for the budget shmchan spins by default,
        // then yielding between polls, so that a subscriber sharing a core
        // with its publisher does not starve it for a whole time slice.
        let mut idle = Idle::new();
        loop {
            if let Some(sample) = self.receive().expect("iceoryx2 receive") {
                return f(sample.payload());
            }
            idle.wait();
        }
    }
}

/// How long a polling receiver spins before it yields between polls
/// (shmchan's default spin budget).
const POLL_SPIN: Duration = Duration::from_micros(50);

/// The wait between two polls of a side that cannot block (iceoryx2's
/// subscriber, the bare ring): spin for [`POLL_SPIN`], then yield.
pub struct Idle(Option<Instant>);

impl Idle {
    pub fn new() -> Idle {
        Idle(None)
    }

    /// Call after each poll that found nothing.
    pub fn wait(&mut self) {
        match self.0 {
            None => self.0 = Some(Instant::now()),
            Some(t) if t.elapsed() >= POLL_SPIN => std::thread::yield_now(),
            Some(_) => std::hint::spin_loop(),
        }
    }
}

/// A byte stream (a pipe or a `SOCK_STREAM` socket), sending.
pub struct FramedTx {
    file: File,
    scratch: Vec<u8>,
}

/// A byte stream, receiving through a 64 KiB buffer.
pub struct FramedRx {
    reader: BufReader<File>,
    buf: Vec<u8>,
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
        loop {
            // SAFETY: msg is readable for msg.len() bytes; our socket.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
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
        let n = loop {
            // SAFETY: buf is writable for buf.len() bytes; our socket.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n >= 0 {
                break n as usize;
            }
            interrupted_or_panic("socket recv");
        };
        // An empty record is a marker; so is end of file (the sender gone),
        // which the round then finds short or out of step.
        assert!(n < self.buf.len(), "socket: a record longer than a message");
        f(&self.buf[..n])
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
        let n = loop {
            // SAFETY: buf holds the type and then room for size bytes, the
            // most msgrcv writes.
            let n =
                unsafe { libc::msgrcv(self.id, self.buf.as_mut_ptr().cast(), self.size, MTYPE, 0) };
            if n >= 0 {
                break n as usize;
            }
            interrupted_or_panic("msgrcv");
        };
        f(&mtext(&mut self.buf)[..n])
    }
}

/// crossbeam: a fresh `Vec` per message, as an in-process channel of
/// bytes needs (the receiver frees it).
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
