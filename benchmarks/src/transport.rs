//! The transports compared, each as a one-way link: kernel objects made by
//! the parent, reached by the child through environment variables, and a
//! sending and a receiving end whose loops are monomorphised per transport
//! (no dynamic dispatch inside a timed loop).
//!
//! shmchan, the pipe, the socket and the message queue are the criterion
//! benches' transports too (`crate::shared`, their file included by
//! `#[path]`); ipmpsc, iceoryx2, crossbeam within one child and the bare
//! ring are here, the typed transports in `typed.rs`, and the async ends
//! of shmchan and tokio's `UnixStream` in `aio.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::aio::{AsyncRx, AsyncTx};
use crate::bare::{BareRx, BareSeg, BareTx};
use crate::shared::{Objects, Rx, Shm, Sink, Source, Transport, Tx, crossbeam_bound_for};
use crate::typed::{self, Flavor, IpcRx, IpcTx, SAMPLE_SIZE, TypedRx, TypedTx, ValueRx, ValueTx};
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
    /// shmchan `send` / `recv_into` with a spin budget of zero on every
    /// end (`set_spin(ZERO)`): a side that finds its ring empty or full
    /// parks without spinning (after the one last look before a park);
    /// against `Shm`, what spinning buys or costs (for A/B runs; not in
    /// the default set).
    ShmPark,
    /// shmchan `send` / `recv_into`, one sender on a channel of 8 lanes
    /// (`Options::max_senders(8)`): the receiver also looks at 7 empty
    /// lanes (for A/B runs; not in the default set).
    Shm8Lanes,
    /// shmchan `send` / `recv_many` of up to 32 into reused buffers
    /// (issue 12; throughput only, not in the default set).
    ShmMany,
    /// shmchan `send_batch` of 32 messages at a time / `recv_into`, the
    /// receiver as `Shm`'s (issue 12; throughput only, not in the
    /// default set).
    ShmBatch32,
    /// shmchan `send_batch` of 32 / `recv_many` of up to 32 into reused
    /// buffers (issue 12; throughput only, not in the default set).
    ShmBatch32Many,
    /// shmchan `send` / `recv_many_with` of up to 32, each read in place
    /// (issue 12; throughput only, not in the default set).
    ShmEach,
    /// shmchan `send_batch` of 32 / `recv_many_with` of up to 32, each
    /// read in place (issue 12; throughput only, not in the default set).
    ShmBatch32Each,
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
    /// shmchan `send_value` / `recv_value` of a 64-byte struct
    /// (`typed::Sample`), postcard into the ring (feature `serde`); 64 B
    /// only (not in the default set).
    ShmValue,
    /// The same with `typed::SampleFixint`, the struct whose integers are
    /// encoded fixed-width (`postcard::fixint::le`); 64 B only (not in
    /// the default set).
    ShmValueFixint,
    /// shmchan `send_pod` / `recv_pod` of the same struct (feature
    /// `bytemuck`: its 64 bytes as they are in memory); 64 B only (not in
    /// the default set).
    ShmPod,
    /// ipc-channel 0.23: `IpcSender<Sample>::send` /
    /// `IpcReceiver<Sample>::recv`, the same struct as serde over a Unix
    /// socket; 64 B only (not in the default set).
    IpcChannel,
    /// shmchan `send_async` / `recv_into_async`, each end on a
    /// `current_thread` tokio runtime in its process (`aio.rs`; issue 13,
    /// not in the default set).
    ShmAsync,
    /// shmchan `send` (blocking) / `recv_into_async` on a `current_thread`
    /// runtime: only the receiver async (issue 13; not in the default set,
    /// no round trip).
    ShmAsyncRx,
    /// tokio's `UnixStream` (a `SOCK_STREAM` pair, framed as the pipe),
    /// each end on a `current_thread` runtime (`aio.rs`; issue 13's
    /// reference, not in the default set).
    TokioUds,
}

pub const ALL: [Kind; 26] = [
    Kind::Shm,
    Kind::ShmZc,
    Kind::ShmFence,
    Kind::ShmEager,
    Kind::ShmPark,
    Kind::Shm8Lanes,
    Kind::ShmMany,
    Kind::ShmBatch32,
    Kind::ShmBatch32Many,
    Kind::ShmEach,
    Kind::ShmBatch32Each,
    Kind::Ipmpsc,
    Kind::Iceoryx2,
    Kind::Pipe,
    Kind::PipeRaw,
    Kind::Socket,
    Kind::Msgq,
    Kind::Crossbeam,
    Kind::Bare,
    Kind::ShmValue,
    Kind::ShmValueFixint,
    Kind::ShmPod,
    Kind::IpcChannel,
    Kind::ShmAsync,
    Kind::ShmAsyncRx,
    Kind::TokioUds,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shm => "shmchan",
            Kind::ShmZc => "shmchan-zc",
            Kind::ShmFence => "shmchan-fence",
            Kind::ShmEager => "shmchan-eager",
            Kind::ShmPark => "shmchan-park",
            Kind::Shm8Lanes => "shmchan-8lanes",
            Kind::ShmMany => "shmchan-many",
            Kind::ShmBatch32 => "shmchan-batch32",
            Kind::ShmBatch32Many => "shmchan-batch32-many",
            Kind::ShmEach => "shmchan-each",
            Kind::ShmBatch32Each => "shmchan-batch32-each",
            Kind::Ipmpsc => "ipmpsc",
            Kind::Iceoryx2 => "iceoryx2",
            Kind::Pipe => "pipe",
            Kind::PipeRaw => "pipe-raw",
            Kind::Socket => "socket",
            Kind::Msgq => "msgq",
            Kind::Crossbeam => "crossbeam",
            Kind::Bare => "bare",
            Kind::ShmValue => "shmchan-value",
            Kind::ShmValueFixint => "shmchan-value-fixint",
            Kind::ShmPod => "shmchan-pod",
            Kind::IpcChannel => "ipc-channel",
            Kind::ShmAsync => "shmchan-async",
            Kind::ShmAsyncRx => "shmchan-async-rx",
            Kind::TokioUds => "tokio-uds",
        }
    }

    /// Whether it runs when `--transports` is not given: the nine of the
    /// comparison with shmchan's peers; the A/B flavours, the typed and
    /// the async transports are named.
    pub fn in_default_set(self) -> bool {
        matches!(
            self,
            Kind::Shm
                | Kind::ShmZc
                | Kind::Ipmpsc
                | Kind::Iceoryx2
                | Kind::Pipe
                | Kind::Socket
                | Kind::Msgq
                | Kind::Crossbeam
                | Kind::Bare
        )
    }

    /// Whether the sending end runs async (`aio.rs`).
    pub fn async_tx(self) -> bool {
        matches!(self, Kind::ShmAsync | Kind::TokioUds)
    }

    /// Whether the receiving end runs async (`aio.rs`).
    pub fn async_rx(self) -> bool {
        matches!(self, Kind::ShmAsync | Kind::ShmAsyncRx | Kind::TokioUds)
    }

    pub fn parse(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == name)
    }

    /// The shared transport (`crate::shared`) this is, if it is one.
    fn transport(self) -> Option<Transport> {
        let shm = |shm| Some(Transport::Shm(shm));
        match self {
            Kind::Shm | Kind::ShmAsync | Kind::ShmAsyncRx => shm(Shm::COPY),
            Kind::ShmZc => shm(Shm {
                zero_copy: true,
                ..Shm::COPY
            }),
            Kind::ShmFence => shm(Shm {
                fence: true,
                ..Shm::COPY
            }),
            Kind::ShmEager => shm(Shm {
                eager: true,
                ..Shm::COPY
            }),
            Kind::ShmPark => shm(Shm {
                park: true,
                ..Shm::COPY
            }),
            Kind::Shm8Lanes => shm(Shm {
                lanes: 8,
                ..Shm::COPY
            }),
            Kind::ShmMany => shm(Shm {
                many: true,
                ..Shm::COPY
            }),
            Kind::ShmBatch32 => shm(Shm {
                batch: true,
                ..Shm::COPY
            }),
            Kind::ShmBatch32Many => shm(Shm {
                batch: true,
                many: true,
                ..Shm::COPY
            }),
            Kind::ShmEach => shm(Shm {
                each: true,
                ..Shm::COPY
            }),
            Kind::ShmBatch32Each => shm(Shm {
                batch: true,
                each: true,
                ..Shm::COPY
            }),
            Kind::Pipe => Some(Transport::Pipe { buffered: true }),
            Kind::PipeRaw => Some(Transport::Pipe { buffered: false }),
            Kind::Socket => Some(Transport::Socket),
            Kind::TokioUds => Some(Transport::StreamSocket),
            Kind::Msgq => Some(Transport::Msgq),
            Kind::Ipmpsc
            | Kind::Iceoryx2
            | Kind::Crossbeam
            | Kind::Bare
            | Kind::ShmValue
            | Kind::ShmValueFixint
            | Kind::ShmPod
            | Kind::IpcChannel => None,
        }
    }

    /// The typed transport (`typed.rs`) this is, if it is one.
    fn typed(self) -> Option<Flavor> {
        match self {
            Kind::ShmValue => Some(Flavor::Value),
            Kind::ShmValueFixint => Some(Flavor::Fixint),
            Kind::ShmPod => Some(Flavor::Pod),
            Kind::IpcChannel => Some(Flavor::Ipc),
            _ => None,
        }
    }

    /// The one size a transport runs at, if it has one: a typed
    /// transport's message is its struct (`typed::Sample`, 64 bytes), so
    /// it runs at 64 B only and is "n/a" at every other size.
    pub fn only_size(self) -> Option<usize> {
        self.typed().map(|_| SAMPLE_SIZE)
    }

    /// The largest message the transport carries, if it has a limit, and
    /// where the limit comes from: a round of a larger size is skipped
    /// ("n/a" in the tables).
    pub fn max_size(self) -> Option<(usize, &'static str)> {
        self.transport().and_then(Transport::max_size)
    }

    pub fn fits(self, size: usize) -> bool {
        self.max_size().is_none_or(|(max, _)| size <= max)
            && self.only_size().is_none_or(|only| size == only)
    }

    /// Whether it is measured in throughput rounds only: the batching
    /// flavours, whose point is many messages in flight (a round trip has
    /// one), and the half-async flavour (a round trip would mix the two
    /// APIs on each side).
    pub fn throughput_only(self) -> bool {
        matches!(
            self,
            Kind::ShmMany
                | Kind::ShmBatch32
                | Kind::ShmBatch32Many
                | Kind::ShmEach
                | Kind::ShmBatch32Each
                | Kind::ShmAsyncRx
        )
    }

    /// Whether it runs in wake-up rounds: not crossbeam (in one process),
    /// nor the typed kinds (their message is their struct, with no room
    /// for the send time).
    pub fn wakes(self) -> bool {
        self != Kind::Crossbeam && self.typed().is_none()
    }

    /// Whether several sending processes can feed one receiver through it
    /// (`--senders` above 1): every shmchan flavour (a channel of at least
    /// as many lanes as senders) and ipmpsc (a multi-producer ring: each
    /// process makes its `Sender` on the same file).
    pub fn many_senders(self) -> bool {
        matches!(self.transport(), Some(Transport::Shm(_))) || self == Kind::Ipmpsc
    }

    /// The shared transport for a link fed by `senders` senders: a shmchan
    /// channel gets max(its lanes, `senders`) lanes.
    fn transport_for(self, senders: u32) -> Option<Transport> {
        self.transport().map(|t| match t {
            Transport::Shm(shm) => Transport::Shm(Shm {
                lanes: shm.lanes.max(senders),
                ..shm
            }),
            t => t,
        })
    }
}

/// iceoryx2 queues samples, not bytes: a subscriber buffer of as many
/// samples as the byte ring (`ring` bytes) holds messages, capped (a deeper
/// queue did not help here, see README), at least 2.
pub fn iceoryx2_buffer_for(size: usize, ring: usize, cap_override: Option<usize>) -> usize {
    let cap = cap_override.unwrap_or(ICEORYX2_MAX_BUFFER);
    (ring / size.max(1)).clamp(2, cap)
}

const ICEORYX2_MAX_BUFFER: usize = 16384;

/// Where a run keeps its files: the ipmpsc ring files, iceoryx2's root
/// directory and the temporary directory of ipc-channel's one-shot
/// servers, all removed at the end of the run.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// On tmpfs (/dev/shm), as shared memory should be: ipmpsc maps a file.
    pub ipmpsc: PathBuf,
    /// iceoryx2's root path (its default is /tmp/iceoryx2).
    pub iceoryx2_root: PathBuf,
    /// iceoryx2's prefix for its /dev/shm objects, unique to the run.
    pub iceoryx2_prefix: String,
    /// `TMPDIR` of a run with ipc-channel: each of its one-shot servers
    /// makes a directory for its socket there (see `main`).
    pub tmp: PathBuf,
}

impl RunDirs {
    pub fn new() -> RunDirs {
        let pid = std::process::id();
        RunDirs {
            ipmpsc: PathBuf::from(format!("/dev/shm/shmchan-peer-bench-{pid}")),
            iceoryx2_root: PathBuf::from(format!("/tmp/shmchan-peer-bench-{pid}")),
            iceoryx2_prefix: format!("shmchanbench{pid}_"),
            tmp: PathBuf::from(format!("/tmp/shmchan-peer-bench-{pid}-tmp")),
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
            ("BENCH_TMP".into(), self.tmp.display().to_string()),
        ]
    }

    pub fn from_env() -> RunDirs {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
        RunDirs {
            ipmpsc: var("BENCH_IPMPSC_DIR").into(),
            iceoryx2_root: var("BENCH_ICEORYX2_ROOT").into(),
            iceoryx2_prefix: var("BENCH_ICEORYX2_PREFIX"),
            tmp: var("BENCH_TMP").into(),
        }
    }

    pub fn create(&self) {
        std::fs::create_dir_all(&self.ipmpsc).expect("create ipmpsc dir");
        std::fs::create_dir_all(&self.iceoryx2_root).expect("create iceoryx2 root");
        std::fs::create_dir_all(&self.tmp).expect("create the run's temporary directory");
    }

    /// Removes both directories and any /dev/shm object with the run's
    /// iceoryx2 prefix; returns what had to be removed besides the
    /// directories themselves (should be nothing).
    pub fn remove(&self) -> Vec<String> {
        let mut leftovers = Vec::new();
        for dir in [&self.ipmpsc, &self.iceoryx2_root, &self.tmp] {
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

/// How a link is used: a stream (lossless, deep queue) from `senders`
/// sending processes, or a ping-pong leg (one message in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Stream { senders: u32 },
    PingPong,
}

/// One one-way link: the parent's (its kernel objects, and the env entries,
/// prefixed by the link's name, that tell the child how to reach them) or
/// the child's (what it found there).
pub struct Link {
    pub kind: Kind,
    pub size: usize,
    /// The parent's env entries for the child.
    pub env: Vec<(String, String)>,
    /// A transport the criterion benches run too.
    shared: Option<Objects>,
    /// A typed transport (`typed.rs`).
    typed: Option<typed::Objects>,
    ipmpsc_path: Option<PathBuf>,
    /// Whether this side made the ipmpsc file (and removes it).
    made_ipmpsc: bool,
    ice: Option<IceService>,
    bare: Option<BareSeg>,
    /// The child's: both ends of the in-process channel, one for each of
    /// its two threads.
    crossbeam_tx: Option<crossbeam_channel::Sender<Vec<u8>>>,
    crossbeam_rx: Option<crossbeam_channel::Receiver<Vec<u8>>>,
}

/// A service and the node it lives in, dropped in that order (the
/// fields' order).
struct IceService {
    factory: PortFactory<ipc::Service, [u8], ()>,
    _node: Node<ipc::Service>,
}

impl Link {
    fn empty(kind: Kind, size: usize) -> Link {
        Link {
            kind,
            size,
            env: Vec::new(),
            shared: None,
            typed: None,
            ipmpsc_path: None,
            made_ipmpsc: false,
            ice: None,
            bare: None,
            crossbeam_tx: None,
            crossbeam_rx: None,
        }
    }

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
        let mut link = Link::empty(kind, size);
        link.env = vec![
            (format!("{name}_KIND"), kind.name().into()),
            (format!("{name}_SIZE"), size.to_string()),
            (format!("{name}_RING"), cap.to_string()),
        ];
        let senders = match how {
            Use::Stream { senders } => senders,
            Use::PingPong => 1,
        };
        if let Some(t) = kind.transport_for(senders) {
            link.shared = Some(Objects::create(t, size, cap, name, &mut link.env));
            return link;
        }
        if let Some(f) = kind.typed() {
            let to_child = parent_sends(name);
            link.typed = Some(typed::Objects::create(
                f,
                cap,
                name,
                to_child,
                &mut link.env,
            ));
            return link;
        }
        match kind {
            Kind::Ipmpsc => {
                let path = ipmpsc_ring(dirs, name, size, cap);
                link.env
                    .push((format!("{name}_PATH"), path.display().to_string()));
                link.ipmpsc_path = Some(path);
                link.made_ipmpsc = true;
            }
            Kind::Iceoryx2 => {
                let (svc, ice) = ice_service(dirs, name, iceoryx2_queue(how, size, cap, ice_buf));
                link.env.push((format!("{name}_SERVICE"), svc));
                link.ice = Some(ice);
            }
            // Nothing in the kernel: the child makes the channel and both
            // threads (see `Link::from_env`).
            Kind::Crossbeam => {}
            Kind::Bare => {
                let (seg, id) = BareSeg::create(cap.next_power_of_two());
                link.env.push((format!("{name}_BAREID"), id.to_string()));
                link.bare = Some(seg);
            }
            _ => unreachable!("a shared transport"),
        }
        link
    }

    /// The link named `name` as the child finds it in its env.
    pub fn from_env(name: &str, dirs: &RunDirs) -> Link {
        let var = |k: &str| std::env::var(format!("{name}_{k}")).ok();
        let kind = Kind::parse(&var("KIND").expect("KIND")).expect("known kind");
        let size = var("SIZE").expect("SIZE").parse().expect("size");
        let ring: usize = var("RING").expect("RING").parse().expect("ring bytes");
        let mut link = Link::empty(kind, size);
        link.shared = kind.transport().map(|t| Objects::from_env(t, size, name));
        link.typed = kind.typed().map(|f| typed::Objects::from_env(f, name));
        link.ipmpsc_path = var("PATH").map(PathBuf::from);
        link.ice = var("SERVICE").map(|svc| ice_open(dirs, &svc));
        if let Some(id) = var("BAREID") {
            let id = id.parse().expect("bare segment id");
            link.bare = Some(BareSeg::attach(id, ring.next_power_of_two()));
        }
        if kind == Kind::Crossbeam {
            let (tx, rx) = crossbeam_channel::bounded(crossbeam_bound_for(size, ring));
            (link.crossbeam_tx, link.crossbeam_rx) = (Some(tx), Some(rx));
        }
        link
    }

    /// The shmchan channel's ids, checked for removal at the end of the
    /// run.
    pub fn shm_ids(&self) -> Option<(i32, i32)> {
        match (&self.shared, &self.typed) {
            (Some(o), _) => o.shm_ids(),
            (None, Some(t)) => t.shm_ids(),
            (None, None) => None,
        }
    }

    /// A shmchan channel's counters, read from its header (`admin::inspect`):
    /// the receiver's and its senders' added up over the lanes. Read after
    /// a round, while the parent's link still holds the channel.
    pub fn shm_counters(&self) -> Option<(shmchan::admin::Counters, shmchan::admin::Counters)> {
        let (shmid, _) = self.shm_ids()?;
        match shmchan::admin::inspect(shmid).ok()?.kind {
            shmchan::admin::Kind::Channel(info) => Some((info.received, info.sent)),
            _ => None,
        }
    }

    /// The message queue's id: removed when the parent's link drops, and
    /// checked for removal at the end of the run.
    pub fn msq_id(&self) -> Option<i32> {
        self.shared.as_ref()?.msq_id()
    }

    /// After the child was spawned: closes the parent's copy of the end the
    /// child uses.
    pub fn close_child_end(&mut self, parent_sends: bool) {
        if let Some(o) = &mut self.shared {
            o.close_child_end(parent_sends);
        }
    }

    /// This side's sending end; for crossbeam, the parent's is none and the
    /// child's is the sending end of the in-process channel (whose
    /// receiving end `rx` gives).
    pub fn tx(&mut self) -> AnyTx {
        if let Some(o) = &mut self.shared {
            return match self.kind.async_tx() {
                true => AnyTx::Async(AsyncTx(o.tx())),
                false => AnyTx::Shared(o.tx()),
            };
        }
        if let Some(t) = &mut self.typed {
            return match t.tx() {
                TypedTx::Value(v) => AnyTx::Value(v),
                TypedTx::Ipc(i) => AnyTx::Ipc(i),
            };
        }
        match self.kind {
            Kind::Ipmpsc => AnyTx::Ipmpsc(ipmpsc::Sender::new(self.ipmpsc_ring())),
            Kind::Iceoryx2 => AnyTx::Iceoryx2(ice_publisher(self.ice_factory(), self.size)),
            Kind::Crossbeam => self
                .crossbeam_tx
                .take()
                .map_or(AnyTx::InChild, AnyTx::Crossbeam),
            Kind::Bare => AnyTx::Bare(BareTx::new(self.bare.take().expect("bare segment"))),
            _ => unreachable!("a shared transport"),
        }
    }

    /// This side's receiving end.
    pub fn rx(&mut self) -> AnyRx {
        if let Some(o) = &mut self.shared {
            return match self.kind.async_rx() {
                true => AnyRx::Async(AsyncRx(o.rx())),
                false => AnyRx::Shared(o.rx()),
            };
        }
        if let Some(t) = &mut self.typed {
            return match t.rx() {
                TypedRx::Value(v) => AnyRx::Value(v),
                TypedRx::Ipc(i) => AnyRx::Ipc(i),
            };
        }
        match self.kind {
            Kind::Ipmpsc => AnyRx::Ipmpsc(ipmpsc::Receiver::new(self.ipmpsc_ring())),
            Kind::Iceoryx2 => AnyRx::Iceoryx2(ice_subscriber(self.ice_factory())),
            Kind::Crossbeam => self
                .crossbeam_rx
                .take()
                .map_or(AnyRx::InChild, AnyRx::Crossbeam),
            Kind::Bare => AnyRx::Bare(BareRx::new(self.bare.take().expect("bare segment"))),
            _ => unreachable!("a shared transport"),
        }
    }

    fn ipmpsc_ring(&self) -> ipmpsc::SharedRingBuffer {
        let path = self.ipmpsc_path.as_ref().expect("path");
        ipmpsc::SharedRingBuffer::open(path.to_str().expect("utf-8")).expect("ipmpsc open")
    }

    fn ice_factory(&self) -> &PortFactory<ipc::Service, [u8], ()> {
        &self.ice.as_ref().expect("service").factory
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let (Some(p), true) = (&self.ipmpsc_path, self.made_ipmpsc) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Whether the link `name` carries messages from the parent to the child:
/// link A does (a throughput round's only link, a round trip's ping), link
/// B carries the echo back (see `throughput_round` and `roundtrip_round`,
/// which close each link's child end accordingly). Only ipc-channel needs
/// to know it before the child starts: which end the parent's one-shot
/// server hands over.
fn parent_sends(name: &str) -> bool {
    match name {
        "A" => true,
        "B" => false,
        other => unreachable!("a link named {other:?}"),
    }
}

/// A new ipmpsc ring file of `cap` bytes for the link `name`.
fn ipmpsc_ring(dirs: &RunDirs, name: &str, size: usize, cap: usize) -> PathBuf {
    let path = dirs.ipmpsc.join(format!("{name}-{size}-{}", unique()));
    let s = path.to_str().expect("utf-8 path");
    // Creating truncates/initialises the file; the parent keeps no handle:
    // each side opens it.
    drop(ipmpsc::SharedRingBuffer::create(s, cap as u32).expect("ipmpsc create"));
    path
}

/// The subscriber queue (samples) and whether it may overflow.
#[derive(Debug, Clone, Copy)]
struct IceQueue {
    safe_overflow: bool,
    samples: usize,
}

fn iceoryx2_queue(how: Use, size: usize, cap: usize, ice_buf: Option<usize>) -> IceQueue {
    match how {
        // Lossless: a full subscriber queue makes the publisher wait
        // (RetryUntilDelivered, the default), as the other transports do.
        Use::Stream { .. } => IceQueue {
            safe_overflow: false,
            samples: iceoryx2_buffer_for(size, cap, ice_buf),
        },
        // iceoryx2's own latency benchmark setting.
        Use::PingPong => IceQueue {
            safe_overflow: true,
            samples: 1,
        },
    }
}

/// A new publish-subscribe service of `[u8]` for the link `name`; returns
/// its name for the child.
fn ice_service(dirs: &RunDirs, name: &str, queue: IceQueue) -> (String, IceService) {
    let node = iceoryx2_node(dirs);
    let svc = format!("shmchan-bench/{}/{name}/{}", std::process::id(), unique());
    let factory = node
        .service_builder(&ServiceName::new(&svc).expect("service name"))
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .max_nodes(2)
        .history_size(0)
        .enable_safe_overflow(queue.safe_overflow)
        .subscriber_max_buffer_size(queue.samples)
        .create()
        .expect("iceoryx2 service");
    (
        svc,
        IceService {
            factory,
            _node: node,
        },
    )
}

/// The service `svc` the parent made.
fn ice_open(dirs: &RunDirs, svc: &str) -> IceService {
    let node = iceoryx2_node(dirs);
    let factory = node
        .service_builder(&ServiceName::new(svc).expect("service name"))
        .publish_subscribe::<[u8]>()
        .open()
        .expect("iceoryx2 open");
    IceService {
        factory,
        _node: node,
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
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

fn ice_subscriber(f: &PortFactory<ipc::Service, [u8], ()>) -> Subscriber<ipc::Service, [u8], ()> {
    f.subscriber_builder()
        .create()
        .expect("iceoryx2 subscriber")
}

/// A sending end of any transport.
pub enum AnyTx {
    /// shmchan, a pipe, a socket or a message queue.
    Shared(Tx),
    Ipmpsc(ipmpsc::Sender),
    Iceoryx2(Publisher<ipc::Service, [u8], ()>),
    Crossbeam(crossbeam_channel::Sender<Vec<u8>>),
    Bare(BareTx),
    Value(ValueTx),
    Ipc(IpcTx),
    /// An end driven by a tokio runtime (`aio.rs`).
    Async(AsyncTx),
    /// The parent's end of an in-process link: none, both ends are the
    /// child's.
    InChild,
}

/// A receiving end of any transport.
// A shmchan receiver makes `Shared` the large variant; there is one per
// link, unpacked before any loop.
#[allow(clippy::large_enum_variant)]
pub enum AnyRx {
    Shared(Rx),
    Ipmpsc(ipmpsc::Receiver),
    Iceoryx2(Subscriber<ipc::Service, [u8], ()>),
    Crossbeam(crossbeam_channel::Receiver<Vec<u8>>),
    Bare(BareRx),
    Value(ValueRx),
    Ipc(IpcRx),
    Async(AsyncRx),
    InChild,
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
