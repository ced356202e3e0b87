//! The typed transports (issue 12): one [`Sample`], a 64-byte struct, per
//! message, through shmchan's `send_value` / `recv_value` (feature
//! `serde`, postcard into the ring) and through ipc-channel's
//! `IpcSender<Sample>` / `IpcReceiver<Sample>` (serde over a Unix socket).
//! Both run at 64 B only: the message is the struct, not a byte count.
//!
//! They plug into the byte harness (`Source`, `Sink`) as adapters, so
//! that the throughput and round-trip loops, the markers and the checks
//! are the ones every transport runs:
//!
//! - sending: a non-empty `msg` sends the sender's own `Sample` with its
//!   `seq` counted up (the bytes of `msg` are not used: the value is the
//!   message); an empty one, the harness's marker, sends
//!   [`Sample::marker`], a `Sample` whose `flags` say so and whose
//!   encoding is as long as any other;
//! - receiving: the value is decoded into a `Sample` on the stack, and the
//!   harness's function gets its 64 bytes in memory (it reads every one),
//!   or an empty slice for a marker.

use bytemuck::{Pod, Zeroable};
use ipc_channel::ipc::{self, IpcOneShotServer, IpcReceiver, IpcSender};
use serde::{Deserialize, Serialize};

use crate::shared::{Sink, Source};

/// Bytes of a [`Sample`] in memory: the only size the typed kinds run at.
pub const SAMPLE_SIZE: usize = 64;

/// The struct the typed kinds carry: 64 bytes in memory (`repr(C)`, no
/// padding), and 64 bytes in postcard with the values sent
/// ([`Sample::first`]: varints of 8, 9, 5, 2 and 8 bytes, and the 8 floats'
/// 32 bytes, fixed). ipc-channel 0.23 serializes with postcard too, so
/// both kinds carry the same 64 bytes of payload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Pod, Zeroable)]
#[repr(C)]
pub struct Sample {
    /// A source id: 56 bits.
    pub id: u64,
    /// A timestamp in ns since the epoch.
    pub t: u64,
    /// Readings.
    pub x: [f32; 8],
    /// [`MARKER`] for the harness's markers, else [`FLAGS`].
    pub flags: u32,
    pub tag: u32,
    /// Counts up from [`SEQ_BASE`], one per message sent.
    pub seq: u64,
}

const _: () = assert!(size_of::<Sample>() == SAMPLE_SIZE);

/// [`Sample`] as a user who wants the fast decode declares it: every
/// integer field encoded fixed-width with postcard's own
/// `postcard::fixint::le` (the floats are fixed-width in postcard
/// already). Same fields, same layout, so a `Sample` is cast to one; its
/// encoding is the 64 bytes as they are in memory (little-endian), where
/// [`Sample`]'s is 64 bytes of which 32 are varints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Pod, Zeroable)]
#[repr(C)]
pub struct SampleFixint {
    #[serde(with = "postcard::fixint::le")]
    pub id: u64,
    #[serde(with = "postcard::fixint::le")]
    pub t: u64,
    pub x: [f32; 8],
    #[serde(with = "postcard::fixint::le")]
    pub flags: u32,
    #[serde(with = "postcard::fixint::le")]
    pub tag: u32,
    #[serde(with = "postcard::fixint::le")]
    pub seq: u64,
}

/// `flags` of a sample that is a marker (an empty message of the byte
/// harness), and of every other one: both encode in 5 bytes.
const MARKER: u32 = u32::MAX;
const FLAGS: u32 = 0x8000_0001;
/// The first `seq`: 8 bytes as a varint for the next 2^56 - 2^49 samples.
const SEQ_BASE: u64 = 1 << 49;

impl Sample {
    /// The first sample a sender sends; the others differ in `seq`.
    pub fn first() -> Sample {
        Sample {
            id: 0x00ab_cdef_0123_4567,
            t: 1_764_950_400_000_000_000,
            x: [0.5, 1.5, -2.25, 3.0, 1e-3, 42.0, -0.125, 7.75],
            flags: FLAGS,
            tag: 300,
            seq: SEQ_BASE,
        }
    }

    /// The harness's marker, as a sample.
    fn marker() -> Sample {
        Sample {
            flags: MARKER,
            ..Sample::first()
        }
    }

    fn is_marker(&self) -> bool {
        self.flags == MARKER
    }
}

/// The postcard encoding's length of the samples sent and of the marker.
pub fn encoded_sizes() -> (usize, usize) {
    let len = |s: &Sample| postcard::experimental::serialized_size(s).expect("measure a sample");
    let mut last = Sample::first();
    last.seq += 1 << 40; // far beyond any run
    let sent = len(&Sample::first());
    assert_eq!(sent, len(&last), "every sample sent encodes alike");
    let fixint = |s: &Sample| {
        postcard::experimental::serialized_size(&SampleFixint::from(*s)).expect("measure a sample")
    };
    assert_eq!(fixint(&last), SAMPLE_SIZE, "a SampleFixint is its bytes");
    assert_eq!(
        fixint(&Sample::marker()),
        SAMPLE_SIZE,
        "a SampleFixint is its bytes"
    );
    (sent, len(&Sample::marker()))
}

impl From<Sample> for SampleFixint {
    #[inline(always)]
    fn from(s: Sample) -> SampleFixint {
        bytemuck::cast(s)
    }
}

impl From<SampleFixint> for Sample {
    #[inline(always)]
    fn from(s: SampleFixint) -> Sample {
        bytemuck::cast(s)
    }
}

/// Which typed transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// shmchan `send_value` / `recv_value`.
    Value,
    /// The same, of a [`SampleFixint`].
    Fixint,
    /// shmchan `send_pod` / `recv_pod`.
    Pod,
    /// ipc-channel `IpcSender<Sample>::send` / `IpcReceiver<Sample>::recv`.
    Ipc,
}

/// One typed link's objects: the parent's (a shmchan channel, or an
/// ipc-channel one-shot server for the child to connect to) or the
/// child's (what the env names).
pub struct Objects {
    flavor: Flavor,
    chan: Option<shmchan::Channel>,
    /// Parent to child: the child sends the parent an `IpcSender` for its
    /// receiver.
    to_child: Option<IpcOneShotServer<IpcSender<Sample>>>,
    /// Child to parent: the child connects as the sender, and its first
    /// sample is a hello.
    from_child: Option<IpcOneShotServer<Sample>>,
    /// The child's: the parent's server to connect to.
    server: Option<String>,
}

impl Objects {
    fn none(flavor: Flavor) -> Objects {
        Objects {
            flavor,
            chan: None,
            to_child: None,
            from_child: None,
            server: None,
        }
    }

    /// The parent's objects of a link named `name` of `ring` bytes (a
    /// shmchan channel's capacity; ipc-channel has no such knob) that
    /// carries messages from parent to child when `parent_sends`; adds the
    /// env entries [`Objects::from_env`] reads.
    pub fn create(
        flavor: Flavor,
        ring: usize,
        name: &str,
        parent_sends: bool,
        env: &mut Vec<(String, String)>,
    ) -> Objects {
        let mut o = Objects::none(flavor);
        match flavor {
            Flavor::Value | Flavor::Fixint | Flavor::Pod => {
                let opts = shmchan::Options::new().capacity(ring);
                let chan =
                    shmchan::Channel::create(shmchan::Key::PRIVATE, &opts).expect("shmchan create");
                env.push((format!("{name}_VALUE_SHMID"), chan.id().to_string()));
                o.chan = Some(chan);
            }
            Flavor::Ipc if parent_sends => {
                let (server, path) = IpcOneShotServer::new().expect("ipc-channel server");
                env.push((format!("{name}_IPC_SERVER"), path));
                o.to_child = Some(server);
            }
            Flavor::Ipc => {
                let (server, path) = IpcOneShotServer::new().expect("ipc-channel server");
                env.push((format!("{name}_IPC_SERVER"), path));
                o.from_child = Some(server);
            }
        }
        o
    }

    /// The child's objects of the link `name`, from its env.
    pub fn from_env(flavor: Flavor, name: &str) -> Objects {
        let var = |k: &str| std::env::var(format!("{name}_{k}")).ok();
        let mut o = Objects::none(flavor);
        o.chan = var("VALUE_SHMID")
            .map(|id| shmchan::Channel::open_id(id.parse().expect("shmid")).expect("shmchan open"));
        o.server = var("IPC_SERVER");
        o
    }

    /// The shmchan channel's segment and semaphore set ids.
    pub fn shm_ids(&self) -> Option<(i32, i32)> {
        self.chan.as_ref().map(|c| (c.id(), c.sem_id()))
    }

    /// This side's sending end. ipc-channel, in the parent: waits for the
    /// child to connect and send its `IpcSender`; in the child: connects
    /// to the parent's server and says hello.
    pub fn tx(&mut self) -> TypedTx {
        if let Some(chan) = &self.chan {
            return TypedTx::Value(ValueTx {
                tx: chan.sender().expect("shmchan sender"),
                next: Sample::first(),
                flavor: self.flavor,
            });
        }
        let tx = match (self.to_child.take(), self.server.take()) {
            (Some(server), _) => server.accept().expect("ipc-channel accept").1,
            (None, Some(path)) => {
                let tx = IpcSender::connect(path).expect("ipc-channel connect");
                tx.send(Sample::first()).expect("ipc-channel hello");
                tx
            }
            (None, None) => unreachable!("{:?}: no sending end here", self.flavor),
        };
        TypedTx::Ipc(IpcTx {
            tx,
            next: Sample::first(),
        })
    }

    /// This side's receiving end. ipc-channel, in the parent: waits for
    /// the child to connect and takes its hello; in the child: makes the
    /// channel and sends its sender to the parent's server.
    pub fn rx(&mut self) -> TypedRx {
        if let Some(chan) = &self.chan {
            return TypedRx::Value(ValueRx {
                rx: chan.receiver().expect("shmchan receiver"),
                flavor: self.flavor,
            });
        }
        let rx = match (self.from_child.take(), self.server.take()) {
            (Some(server), _) => server.accept().expect("ipc-channel accept").0,
            (None, Some(path)) => {
                let (tx, rx) = ipc::channel::<Sample>().expect("ipc-channel channel");
                IpcSender::<IpcSender<Sample>>::connect(path)
                    .expect("ipc-channel connect")
                    .send(tx)
                    .expect("ipc-channel: the sender to the parent");
                rx
            }
            (None, None) => unreachable!("{:?}: no receiving end here", self.flavor),
        };
        TypedRx::Ipc(IpcRx(rx))
    }
}

/// A typed sending end.
// A shmchan sender makes `Value` the large variant; there is one per link,
// unpacked before any loop (as `AnyRx` does).
#[allow(clippy::large_enum_variant)]
pub enum TypedTx {
    Value(ValueTx),
    Ipc(IpcTx),
}

/// A typed receiving end. The same holds: a shmchan receiver (larger
/// since it holds its async helper) is the large variant.
#[allow(clippy::large_enum_variant)]
pub enum TypedRx {
    Value(ValueRx),
    Ipc(IpcRx),
}

/// shmchan `send_value` of a [`Sample`] or a [`SampleFixint`], or
/// `send_pod` (`flavor`: a branch per message that always goes the same
/// way, so that the kinds share one harness type).
pub struct ValueTx {
    tx: shmchan::Sender,
    next: Sample,
    flavor: Flavor,
}

/// shmchan `recv_value` of a [`Sample`] or a [`SampleFixint`], or
/// `recv_pod`.
pub struct ValueRx {
    rx: shmchan::Receiver,
    flavor: Flavor,
}

/// ipc-channel `IpcSender<Sample>::send`.
pub struct IpcTx {
    tx: IpcSender<Sample>,
    next: Sample,
}

/// ipc-channel `IpcReceiver<Sample>::recv`.
pub struct IpcRx(IpcReceiver<Sample>);

/// The sample to send for the harness's `msg`: the next one, or the
/// marker for an empty `msg`.
///
/// The copy is read before `seq` is stored back: `next.seq += 1; *next`
/// read the struct with 16-byte loads across the 8-byte store just made,
/// a store-forwarding stall that took 77 % of the `shmchan-pod` sender's
/// samples in `perf` (and cost every typed sender the same).
#[inline(always)]
fn sample_for(msg: &[u8], next: &mut Sample) -> Sample {
    if msg.is_empty() {
        return Sample::marker();
    }
    let s = Sample {
        seq: next.seq + 1,
        ..*next
    };
    next.seq = s.seq;
    s
}

/// Hands `f` the sample's bytes in memory, or nothing for a marker.
#[inline(always)]
fn with_sample<R>(s: &Sample, f: impl FnOnce(&[u8]) -> R) -> R {
    if s.is_marker() {
        f(&[])
    } else {
        f(bytemuck::bytes_of(s))
    }
}

impl Source for ValueTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let s = sample_for(msg, &mut self.next);
        match self.flavor {
            Flavor::Pod => self.tx.send_pod(&s).expect("shmchan send_pod"),
            Flavor::Fixint => self
                .tx
                .send_value(&SampleFixint::from(s))
                .expect("shmchan send_value"),
            _ => self.tx.send_value(&s).expect("shmchan send_value"),
        }
    }
}

impl Sink for ValueRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let s: Sample = match self.flavor {
            Flavor::Pod => self.rx.recv_pod().expect("shmchan recv_pod"),
            Flavor::Fixint => self
                .rx
                .recv_value::<SampleFixint>()
                .expect("shmchan recv_value")
                .into(),
            _ => self.rx.recv_value().expect("shmchan recv_value"),
        };
        with_sample(&s, f)
    }
}

impl Source for IpcTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let s = sample_for(msg, &mut self.next);
        self.tx.send(s).expect("ipc-channel send");
    }
}

impl Sink for IpcRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let s = self.0.recv().expect("ipc-channel recv");
        with_sample(&s, f)
    }
}
