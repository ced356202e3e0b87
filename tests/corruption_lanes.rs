//! Issue 11, point 8: a third process writing hostile values into the
//! header and the lane tables gets the parties `Corrupted` or another
//! clear error, never a crash, an out-of-bounds read or a hang.
//!
//! The property test runs a channel of 1 to 4 lanes of 4 KiB with a
//! receiver and a sender per lane (some lanes without one), all in this
//! process, through random sends and batches (`try_send_batch`,
//! `send_batch_timeout`) on every lane, receives (`try_recv`,
//! `recv_timeout`, `try_recv_from`, `recv_from_timeout`, blocking
//! `recv_from` where it cannot block, `try_recv_ref` and its guard's
//! `sender`; issue 12's batch receives `try_recv_many`,
//! `try_recv_many_with`, `recv_many_with_timeout` and `try_iter`, each
//! checked as the `try_recv` calls it stands for), reservations committed or dropped (and committed after a
//! scribble), senders and the receiver dropped and claimed again, and
//! re-opens by id with `admin::inspect`. Between any two of them a third
//! party (a second read-write attach, tests/common/scribble.rs) writes:
//! every field of every lane's three blocks (lane 0's in the fixed header,
//! the others in the lane table: `tail`, counters, `session`, `attached`,
//! `head`, the reserved receiver fields, `tx_waiting`, padding), a lane's
//! `head` or `tail` moved by a small or a capacity-sized step or set to
//! the other (consistent again, so that claims pass), the identity
//! (`max_senders`, `header_size`, `capacity`, `max_message`, version,
//! magic, the semaphore id, flags, ...; `max_senders` and a matching
//! `header_size` together), `rx_waiting`, the control block, and words of
//! any lane's data region, aimed at the frames queued from `head` on
//! (`common::RingPos`), at `tail` or anywhere. For every input:
//!
//! - nothing panics (debug assertions are on in tests) and no call takes
//!   longer than its timeout (a watchdog aborts the run after 20 s);
//! - a lane whose ring the third party has not touched (its `head`, its
//!   `tail`, or a committed byte of its region: words outside `head..tail`
//!   are never read, so writing them touches nothing) delivers exactly what
//!   was committed on it, byte for byte and in order, each message once;
//!   `recv_from` and `RecvGuard::sender` name its lane and the session
//!   that sent it, exactly: the sender's own while the lane's `session`
//!   word is untouched; once the third party has rewritten it, the one
//!   docs/layout.md, section 3, gives (the frame's tag resolved against
//!   the word as the receiver reads it, and `recv_from`'s per-lane cache
//!   of the last tag resolved, which that section documents);
//! - a message no untouched lane sent next comes only from a touched lane
//!   (and is no untouched lane's later or earlier message), within the
//!   maximum length;
//! - the receiver reports `Corrupted` only after some lane's ring was
//!   touched, a sender only after its own lane's `head` or `tail` was
//!   rewritten; then the handle stays poisoned (every call `Corrupted`);
//! - `Removed` exactly while `closed` is non-zero (unless poisoned);
//!   `Empty`/`Timeout` only while every untouched lane is drained;
//!   `Disconnected` only with no sender (receiver) or no receiver (sender)
//!   and the peer seen, and always where the test knows the peer was seen
//!   and gone; nothing else (no OS error, no `RoleTaken` but with every
//!   lane held);
//! - claiming a sender takes the first free lane with session `session +
//!   1`, or gives `Corrupted` exactly when that lane's indices fail the
//!   span check (and then takes no session); claiming the receiver gives
//!   `Corrupted` exactly when some lane's do;
//! - opening the segment again gives exactly the result of the checks of
//!   docs/layout.md, section 6, on the words there now (a channel,
//!   `NotAChannel`, `VersionMismatch`, `Corrupted`, `Removed`, `NotFound`),
//!   and `admin::inspect` the matching state.
//!
//! Cases: `PROPTEST_CASES` (default 1,024 here, about 2 s;
//! docs/verification.md gives the figures). The plain tests at the end
//! pin the most hostile values to their precise errors, and check that a
//! waiting flag held down delays a wake-up by one park slice at most.

mod common;

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use common::layout::{
    CAPACITY_AT, CLOSED_AT, HEADER_SIZE_AT, MAGIC_AT, MAX_MESSAGE_AT, MAX_SENDERS_AT,
    RX_ATTACHED_AT, RX_CONNECTS_AT, RX_WAITING_AT, SEMID_AT, SESSION_OFF, TX_CONNECTS_AT,
    VERSION_AT, data_at, header_size, lane_at,
};
use common::scribble::{Scribbler, config, frame_word, progress, start_watchdog, value};
use common::{Cleanup, RingPos, numbered_message_of_len};
use proptest::prelude::*;
use shmchan::admin::{self, Kind, State};
use shmchan::{Channel, Error, Key, Options, Receiver, Sender, SenderId};

/// Each lane's ring, and its largest message.
const RING: usize = 4096;
const MAX: usize = RING - 8;
/// `b"SHMCHAN\0"` as a little-endian u64.
const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\0");
/// Timeout of the timed calls.
const WAIT: Duration = Duration::from_millis(1);
/// The largest index a reader accepts (docs/layout.md, section 6).
const MAX_POSITION: u64 = 1 << 60;

/// The three blocks of a lane (docs/layout.md, "The lane table").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Tx,
    Rx,
    Waiting,
}

/// Every field of a lane's blocks: block, offset in it, width, name.
const LANE_FIELDS: &[(Block, usize, usize, &str)] = &[
    (Block::Tx, 0, 8, "tail"),
    (Block::Tx, 8, 8, "tx messages"),
    (Block::Tx, 16, 8, "tx bytes"),
    (Block::Tx, 24, 8, "tx stalls"),
    (Block::Tx, 32, 8, "tx parks"),
    (Block::Tx, 40, 8, "tx wakes"),
    (Block::Tx, 48, 8, "tx expired"),
    (Block::Tx, SESSION_OFF, 8, "session"),
    (Block::Tx, 64, 4, "attached"),
    (Block::Tx, 68, 4, "tx padding"),
    (Block::Tx, 120, 8, "tx padding, last word"),
    (Block::Rx, 0, 8, "head"),
    (Block::Rx, 8, 8, "rx messages (lanes 1..: reserved)"),
    (Block::Rx, 16, 8, "rx bytes (reserved)"),
    (Block::Rx, 24, 8, "rx stalls (reserved)"),
    (Block::Rx, 32, 8, "rx parks (reserved)"),
    (Block::Rx, 40, 8, "rx wakes (reserved)"),
    (Block::Rx, 48, 8, "rx expired (reserved)"),
    (Block::Rx, 56, 8, "reserved (session)"),
    (Block::Rx, 64, 4, "reserved (attached)"),
    (Block::Rx, 120, 8, "rx padding, last word"),
    (Block::Waiting, 0, 4, "tx_waiting"),
    (Block::Waiting, 4, 4, "tx_waiting padding"),
    (Block::Waiting, 120, 8, "tx_waiting padding, last word"),
];
/// Indices in `LANE_FIELDS`.
const TAIL: usize = 0;
const SESSION: usize = 7;
const HEAD: usize = 11;

/// The other fields a third party may write: offset, width, name.
const FIXED_FIELDS: &[(usize, usize, &str)] = &[
    (VERSION_AT, 4, "version"),
    (HEADER_SIZE_AT, 4, "header_size"),
    (CAPACITY_AT, 8, "capacity"),
    (MAX_MESSAGE_AT, 8, "max_message"),
    (36, 4, "creator_pid"),
    (40, 8, "created"),
    (48, 4, "mode"),
    (52, 4, "flags"),
    (56, 4, "key"),
    (64, 8, "path_dev"),
    (72, 8, "path_ino"),
    (80, 4, "creator_uid"),
    (MAX_SENDERS_AT, 4, "max_senders"),
    (88, 8, "identity padding"),
    (RX_WAITING_AT, 4, "rx_waiting"),
    (TX_CONNECTS_AT, 8, "tx_connects"),
    (RX_CONNECTS_AT, 8, "rx_connects"),
    (656, 4, "reserved (version 1's tx_attached)"),
    (RX_ATTACHED_AT, 4, "rx_attached"),
    (CLOSED_AT, 4, "closed"),
    (672, 8, "control padding"),
];

/// Where in a lane's data region a word is written.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Word `n` (modulo the region's words).
    Word(usize),
    /// The start of the `k`-th frame queued from `head` (simulated with
    /// `RingPos` from the messages queued; past them, where the next frame
    /// would start).
    Queued(usize),
    /// Where the lane's `tail` points.
    Tail,
}

/// One write by the third party.
#[derive(Debug, Clone)]
enum Scribble {
    /// `LANE_FIELDS[field]` of lane `lane` (modulo the lanes).
    Lane {
        lane: usize,
        field: usize,
        value: u64,
    },
    /// A lane's `head` (or `tail`) moved by `delta` bytes (wrapping).
    Index { lane: usize, head: bool, delta: i64 },
    /// `FIXED_FIELDS[field]`.
    Fixed { field: usize, value: u64 },
    /// `max_senders` = k with `header_size` = 768 + 384 (k − 1), together.
    Lanes(u32),
    /// The semaphore set id: only negative ids, which no set has (a real
    /// id could name another test's live set; tests/corruption_props.rs).
    SemId(u32),
    /// The magic: never 0, which an opener would wait on as a creator
    /// still at work.
    Magic(u64),
    /// A word of lane `lane`'s data region.
    Data { lane: usize, at: Target, value: u64 },
    /// A lane's `head` set to its `tail` (or, `false`, the other way
    /// round): consistent indices again, so that claims pass.
    Realign { lane: usize, head: bool },
    /// The identity block back as the creator wrote it.
    RestoreIdentity,
    /// `closed` back to 0.
    Unclose,
}

/// What follows a successful reservation.
#[derive(Debug, Clone)]
enum Then {
    Commit,
    /// The grant dropped uncommitted: nothing is published.
    Drop,
    /// A scribble while the payload is reserved, then the commit: the
    /// message is what the grant holds then.
    ScribbleAndCommit(Scribble),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvKind {
    Try,
    Timeout,
    TryFrom,
    FromTimeout,
    /// Blocking `recv_from`; made a `recv_from_timeout` when the test
    /// cannot tell that it returns at once.
    From,
    /// `try_recv_ref`, the guard's `sender()`, then the guard dropped.
    TryRef,
    /// `try_recv_many` into this many buffers (issue 12's batch receive,
    /// copying).
    TryMany(usize),
    /// `try_recv_many_with` of at most this many (in place: the frames
    /// are read where they are in the ring).
    TryManyWith(usize),
    /// `recv_many_with_timeout` of at most this many.
    ManyWithTimeout(usize),
    /// `try_iter`, at most this many taken, then `take_error`.
    TryIter(usize),
}

impl RecvKind {
    fn is_try(self) -> bool {
        matches!(
            self,
            RecvKind::Try
                | RecvKind::TryFrom
                | RecvKind::TryRef
                | RecvKind::TryMany(_)
                | RecvKind::TryManyWith(_)
                | RecvKind::TryIter(_)
        )
    }

    fn is_timed(self) -> bool {
        matches!(
            self,
            RecvKind::Timeout | RecvKind::FromTimeout | RecvKind::ManyWithTimeout(_)
        )
    }

    /// The most messages one call takes, for the batch receives.
    fn batch(self) -> Option<usize> {
        match self {
            RecvKind::TryMany(max)
            | RecvKind::TryManyWith(max)
            | RecvKind::ManyWithTimeout(max)
            | RecvKind::TryIter(max) => Some(max),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `try_send` (or, `true`, `send_timeout`) by the `pick`-th sender
    /// (modulo the live senders) of a message of `len` bytes.
    Send {
        pick: usize,
        len: usize,
        timed: bool,
    },
    /// `try_send_batch` (or, `true`, `send_batch_timeout`) by the
    /// `pick`-th sender of messages of these lengths.
    SendBatch {
        pick: usize,
        lens: Vec<usize>,
        timed: bool,
    },
    /// `try_reserve` (or `reserve_timeout`), the message written, then
    /// `then`.
    Reserve {
        pick: usize,
        len: usize,
        timed: bool,
        then: Then,
    },
    Recv(RecvKind),
    /// A new sender (the first free lane).
    ClaimSender,
    /// The `pick`-th live sender dropped.
    DropSender(usize),
    /// The receiver dropped (if any) and claimed again.
    ClaimReceiver,
    DropReceiver,
    Scribble(Scribble),
    /// `Channel::open_id` and `admin::inspect`.
    OpenAgain,
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 12usize..64, 2 => 12usize..=MAX, 1 => Just(MAX)]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0..RING / 8).prop_map(Target::Word),
        (0usize..4).prop_map(Target::Queued),
        Just(Target::Tail),
    ]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        (-8i64..=8).prop_map(|k| k * 8),
        -64i64..64,
        Just(RING as i64),
        Just(RING as i64 + 8),
        Just(-(RING as i64) - 8),
        any::<i64>(),
    ]
}

/// A value for a lane's `session` word: next to the wrap of the word or
/// of the 24-bit tag, small, anything.
fn session_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(0u64),
        (0u64..4).prop_map(|k| (1 << 24) - 1 + k),
        0u64..16,
        any::<u64>(),
    ]
}

fn scribble() -> impl Strategy<Value = Scribble> {
    prop_oneof![
        6 => (0usize..4, 0..LANE_FIELDS.len(), value())
            .prop_map(|(lane, field, value)| Scribble::Lane { lane, field, value }),
        1 => (0usize..4, session_value())
            .prop_map(|(lane, value)| Scribble::Lane { lane, field: SESSION, value }),
        2 => (0usize..4, any::<bool>(), delta())
            .prop_map(|(lane, head, delta)| Scribble::Index { lane, head, delta }),
        3 => (0..FIXED_FIELDS.len(), value())
            .prop_map(|(field, value)| Scribble::Fixed { field, value }),
        1 => prop_oneof![0u32..70, Just(u32::MAX)].prop_map(Scribble::Lanes),
        1 => prop_oneof![Just(u32::MAX), Just(0x8000_0000u32), Just(0xdead_beefu32)]
            .prop_map(Scribble::SemId),
        1 => prop_oneof![Just(MAGIC), 1u64..].prop_map(Scribble::Magic),
        4 => (0usize..4, target(), frame_word(RING as u64))
            .prop_map(|(lane, at, value)| Scribble::Data { lane, at, value }),
        1 => (0usize..4, any::<bool>()).prop_map(|(lane, head)| Scribble::Realign { lane, head }),
        1 => Just(Scribble::RestoreIdentity),
        1 => Just(Scribble::Unclose),
    ]
}

fn then() -> impl Strategy<Value = Then> {
    prop_oneof![
        3 => Just(Then::Commit),
        1 => Just(Then::Drop),
        1 => scribble().prop_map(Then::ScribbleAndCommit),
    ]
}

fn recv_kind() -> impl Strategy<Value = RecvKind> {
    prop_oneof![
        3 => Just(RecvKind::Try),
        1 => Just(RecvKind::Timeout),
        3 => Just(RecvKind::TryFrom),
        1 => Just(RecvKind::FromTimeout),
        2 => Just(RecvKind::From),
        1 => Just(RecvKind::TryRef),
        2 => batch_max().prop_map(RecvKind::TryMany),
        2 => batch_max().prop_map(RecvKind::TryManyWith),
        1 => batch_max().prop_map(RecvKind::ManyWithTimeout),
        1 => batch_max().prop_map(RecvKind::TryIter),
    ]
}

/// How many messages a batch receive may take: a few, or enough for runs
/// of many messages from a lane and turns across the lanes.
fn batch_max() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=4, 5usize..=48]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..4, len(), prop::bool::weighted(0.2))
            .prop_map(|(pick, len, timed)| Op::Send { pick, len, timed }),
        2 => (
            0usize..4,
            prop::collection::vec(prop_oneof![4 => 12usize..64, 1 => len()], 1..=12),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(pick, lens, timed)| Op::SendBatch { pick, lens, timed }),
        2 => (0usize..4, len(), prop::bool::weighted(0.2), then())
            .prop_map(|(pick, len, timed, then)| Op::Reserve { pick, len, timed, then }),
        6 => recv_kind().prop_map(Op::Recv),
        1 => Just(Op::ClaimSender),
        1 => (0usize..4).prop_map(Op::DropSender),
        2 => prop_oneof![3 => Just(Op::ClaimReceiver), 1 => Just(Op::DropReceiver)],
        6 => scribble().prop_map(Op::Scribble),
        1 => Just(Op::OpenAgain),
    ]
}

/// The tag a message frame carries for `session` (docs/layout.md, section
/// 3): the low 24 bits of `session − 1`.
fn tag(session: u64) -> u32 {
    (session.wrapping_sub(1) & 0xff_ffff) as u32
}

/// The session a receiver names for `tag` when the lane's `session` word
/// reads `latest`: the last session at or before it with that tag.
fn session_of_tag(tag: u32, latest: u64) -> u64 {
    let back = self::tag(latest).wrapping_sub(tag) & 0xff_ffff;
    latest.wrapping_sub(u64::from(back))
}

/// The lane of a `SenderId` (its text is `lane:session`).
fn lane_of(id: SenderId) -> usize {
    let text = id.to_string();
    let (lane, _) = text
        .split_once(':')
        .expect("a SenderId shows as lane:session");
    lane.parse().expect("a lane number")
}

/// The span check of docs/layout.md, section 6.
fn span_ok(head: u64, tail: u64, capacity: u64) -> bool {
    tail <= MAX_POSITION
        && head <= tail
        && tail - head <= capacity
        && head % 8 == 0
        && tail % 8 == 0
}

/// A committed message not received yet, and the session that sent it.
#[derive(Debug)]
struct Queued {
    msg: Vec<u8>,
    session: u64,
}

/// What is known of one lane.
#[derive(Debug, Default)]
struct LaneModel {
    /// Committed, not yet received, in order.
    queue: VecDeque<Queued>,
    /// Received.
    delivered: HashSet<Vec<u8>>,
    /// Made for the lane and never committed: a failed send, a batch's
    /// messages after those it sent, a reservation filled and dropped.
    /// Its bytes can surface only if the lane's `tail` moves (touched).
    never: HashSet<Vec<u8>>,
    /// The third party changed the lane's `head` or `tail`.
    index_touched: bool,
    /// That, or a committed word of the lane's data region.
    ring_touched: bool,
    /// The third party changed the lane's `session` word.
    session_touched: bool,
}

/// Whether a handle has seen its peer (docs/layout.md, section 7), as far
/// as the test can tell: the connection counter is written by the third
/// party too.
#[derive(Debug)]
struct Seen {
    /// The peer held its role at the claim (or, for a receiver, a lane was
    /// not drained), or a message was received.
    base: bool,
    /// The peer claimed its role since.
    announced: bool,
    /// Scribbles that changed the peer's connection counter, at the claim.
    scribbles_at_claim: u64,
}

impl Seen {
    fn new(base: bool, scribbles: u64) -> Seen {
        Seen {
            base,
            announced: false,
            scribbles_at_claim: scribbles,
        }
    }

    /// Seen for sure: with the counter untouched since the claim, a claim
    /// of the peer shows at the next look at it, which comes before any
    /// `Disconnected`.
    fn sure(&self, scribbles: u64) -> bool {
        self.base || (self.announced && scribbles == self.scribbles_at_claim)
    }

    /// Perhaps seen.
    fn possible(&self, scribbles: u64) -> bool {
        self.base || self.announced || scribbles != self.scribbles_at_claim
    }
}

struct Tx {
    handle: Sender,
    st: TxState,
}

#[derive(Debug)]
struct TxState {
    lane: usize,
    session: u64,
    poisoned: bool,
    seen: Seen,
}

struct Rx {
    handle: Receiver,
    poisoned: bool,
    /// A batch receive stopped short, its untouched lanes drained, after a
    /// touched lane: it may have met a corrupt frame, which the next call
    /// reports (and then the handle is poisoned), or found nothing more.
    maybe_poisoned: bool,
    seen: Seen,
    /// Per lane, the tag the receiver resolved last for `recv_from` and
    /// the session it named (docs/layout.md, section 3: it loads `session`
    /// again only for another tag).
    cache: Vec<Option<(u32, u64)>>,
}

/// What a receive returned: the message and, with the sender named,
/// whether the receiver's per-lane tag cache was used (`recv_from`) or not
/// (`RecvGuard::sender`).
type Got = shmchan::Result<(Vec<u8>, Option<(SenderId, bool)>)>;

/// The result of `open_id` that the words in the segment call for.
#[derive(Debug, PartialEq, Eq)]
enum Open {
    Channel,
    NotAChannel,
    Version(u32),
    Corrupted,
    Removed,
    NotFound,
}

/// The state `admin::inspect` must report.
#[derive(Debug, PartialEq, Eq)]
enum Inspect {
    Foreign,
    Corrupt,
    Orphaned,
    Closed,
    Ok,
}

/// The segment as the third party sees it, and what is known.
struct Model {
    seg: Scribbler,
    lanes: Vec<LaneModel>,
    /// The identity block as the creator wrote it.
    identity: Vec<u64>,
    /// Number of the next message.
    seq: u64,
    /// Scribbles that changed `tx_connects`, `rx_connects`.
    tx_connects_scribbles: u64,
    rx_connects_scribbles: u64,
}

impl Model {
    fn n(&self) -> usize {
        self.lanes.len()
    }

    fn head(&self, lane: usize) -> u64 {
        self.seg.read_u64(lane_at(lane).rx)
    }

    fn tail(&self, lane: usize) -> u64 {
        self.seg.read_u64(lane_at(lane).tx)
    }

    fn session(&self, lane: usize) -> u64 {
        self.seg.read_u64(lane_at(lane).tx + SESSION_OFF)
    }

    fn closed(&self) -> bool {
        self.seg.read_u32(CLOSED_AT) != 0
    }

    fn span_ok(&self, lane: usize, capacity: u64) -> bool {
        span_ok(self.head(lane), self.tail(lane), capacity)
    }

    /// docs/layout.md, section 4, "Holds messages", on the words there now
    /// (the ring's own geometry, not the header's scribbled one): not when
    /// empty, yes when the indices fail the span check, and otherwise
    /// unless a lone padding frame is all that is queued.
    fn holds_messages(&self, lane: usize) -> bool {
        let (head, tail) = (self.head(lane), self.tail(lane));
        if head == tail {
            return false;
        }
        if !span_ok(head, tail, RING as u64) {
            return true;
        }
        let off = (head & (RING as u64 - 1)) as usize;
        let word = self.seg.read_u64(data_at(self.n(), RING, lane) + off);
        let (len, kind) = (word & 0xffff_ffff, (word >> 32) & 0xff);
        !(kind == 2 && 8 + len == tail - head)
    }

    /// The next message, `len` bytes.
    fn message(&mut self, len: usize) -> Vec<u8> {
        self.seq += 1;
        numbered_message_of_len(self.seq, len)
    }

    fn commit(&mut self, lane: usize, msg: Vec<u8>, session: u64) {
        self.lanes[lane].queue.push_back(Queued { msg, session });
    }

    /// Writes the low `width` bytes of `value` at `at`; whether that
    /// changed the word.
    fn write(&self, at: usize, width: usize, value: u64) -> bool {
        let value = if width == 4 {
            value & 0xffff_ffff
        } else {
            value
        };
        let before = self.seg.read(at, width);
        self.seg.write(at, width, value);
        before != value
    }

    fn touch_index(&mut self, lane: usize) {
        let l = &mut self.lanes[lane];
        l.index_touched = true;
        l.ring_touched = true;
    }

    fn scribble(&mut self, s: &Scribble) {
        let n = self.n();
        match *s {
            Scribble::Lane { lane, field, value } => {
                let lane = lane % n;
                let (block, off, width, _) = LANE_FIELDS[field];
                let at = lane_at(lane);
                let base = match block {
                    Block::Tx => at.tx,
                    Block::Rx => at.rx,
                    Block::Waiting => at.waiting,
                };
                if self.write(base + off, width, value) {
                    match field {
                        TAIL | HEAD => self.touch_index(lane),
                        SESSION => self.lanes[lane].session_touched = true,
                        _ => {}
                    }
                }
            }
            Scribble::Index { lane, head, delta } => {
                let lane = lane % n;
                let at = if head {
                    lane_at(lane).rx
                } else {
                    lane_at(lane).tx
                };
                let moved = self.seg.read_u64(at).wrapping_add(delta as u64);
                if self.write(at, 8, moved) {
                    self.touch_index(lane);
                }
            }
            Scribble::Fixed { field, value } => {
                let (at, width, _) = FIXED_FIELDS[field];
                if self.write(at, width, value) {
                    match at {
                        TX_CONNECTS_AT => self.tx_connects_scribbles += 1,
                        RX_CONNECTS_AT => self.rx_connects_scribbles += 1,
                        _ => {}
                    }
                }
            }
            Scribble::Lanes(k) => {
                let header = 768u64.wrapping_add(384u64.wrapping_mul(u64::from(k).wrapping_sub(1)));
                self.write(MAX_SENDERS_AT, 4, u64::from(k));
                self.write(HEADER_SIZE_AT, 4, header);
            }
            Scribble::SemId(v) => {
                self.write(SEMID_AT, 4, u64::from(v));
            }
            Scribble::Magic(v) => {
                self.write(MAGIC_AT, 8, v);
            }
            Scribble::Data { lane, at, value } => {
                let lane = lane % n;
                let off = self.data_offset(lane, at);
                // Words outside head..tail are never read: the sender
                // writes a frame whole before it publishes it (the bytes
                // after a payload and a padding frame's body are never
                // read), so only a committed word counts.
                let committed = self.committed(lane, off);
                if self.write(data_at(n, RING, lane) + off, 8, value) && committed {
                    self.lanes[lane].ring_touched = true;
                }
            }
            Scribble::Realign { lane, head } => {
                let lane = lane % n;
                let at = lane_at(lane);
                let (to, from) = if head { (at.rx, at.tx) } else { (at.tx, at.rx) };
                if self.write(to, 8, self.seg.read_u64(from)) {
                    self.touch_index(lane);
                }
            }
            Scribble::RestoreIdentity => {
                for (w, &v) in self.identity.iter().enumerate() {
                    self.write(w * 8, 8, v);
                }
            }
            Scribble::Unclose => {
                self.write(CLOSED_AT, 4, 0);
            }
        }
    }

    /// The offset in lane `lane`'s region of the word `at` names.
    fn data_offset(&self, lane: usize, at: Target) -> usize {
        let mask = RING as u64 - 1;
        match at {
            Target::Word(w) => (w % (RING / 8)) * 8,
            Target::Tail => (self.tail(lane) & mask & !7) as usize,
            Target::Queued(k) => {
                let queue = &self.lanes[lane].queue;
                let mut pos = RingPos::at(RING, self.head(lane) & mask & !7);
                for q in queue.iter().take(k) {
                    pos.advance(q.msg.len() as u64);
                }
                let next = queue.get(k).map_or(0, |q| q.msg.len() as u64);
                pos.frame_start(next) as usize
            }
        }
    }

    /// Whether the word at `off` of lane `lane`'s region lies between its
    /// `head` and `tail` (meaningful while they are the parties' own).
    fn committed(&self, lane: usize, off: usize) -> bool {
        let (head, tail) = (self.head(lane), self.tail(lane));
        (off as u64).wrapping_sub(head) & (RING as u64 - 1) < tail.wrapping_sub(head)
    }

    /// The identity checks of docs/layout.md, section 6, steps 4 to 7, on
    /// the words there now: the lanes and capacity they describe.
    fn geometry(&self) -> Option<(usize, u64)> {
        let lanes = self.seg.read_u32(MAX_SENDERS_AT);
        let header = u64::from(self.seg.read_u32(HEADER_SIZE_AT));
        let capacity = self.seg.read_u64(CAPACITY_AT);
        let max_message = self.seg.read_u64(MAX_MESSAGE_AT);
        if !(1..=64).contains(&lanes) || header != 768 + 384 * (u64::from(lanes) - 1) {
            return None;
        }
        if !capacity.is_power_of_two() || !(4096..=1 << 31).contains(&capacity) {
            return None;
        }
        if header + u64::from(lanes) * capacity > self.seg.len() as u64 {
            return None;
        }
        (max_message == capacity - 8).then_some((lanes as usize, capacity))
    }

    /// Whether the header names a semaphore set that no longer exists:
    /// only negative ids are written, which name none.
    fn semid_gone(&self) -> bool {
        (self.seg.read_u32(SEMID_AT) as i32) < 0
    }

    fn expected_open(&self) -> Open {
        if self.seg.read_u64(MAGIC_AT) != MAGIC {
            return Open::NotAChannel;
        }
        let version = self.seg.read_u32(VERSION_AT);
        if version != 2 {
            return Open::Version(version);
        }
        let Some((lanes, _)) = self.geometry() else {
            return Open::Corrupted;
        };
        if self.semid_gone() {
            return Open::Removed; // EINVAL from the set's IPC_STAT
        }
        if lanes != self.n() {
            return Open::Corrupted; // the set has 4 + 2n semaphores
        }
        if self.closed() {
            return Open::NotFound;
        }
        Open::Channel
    }

    fn expected_inspect(&self) -> Inspect {
        if self.seg.read_u64(MAGIC_AT) != MAGIC || self.seg.read_u32(VERSION_AT) != 2 {
            return Inspect::Foreign;
        }
        let Some((lanes, capacity)) = self.geometry() else {
            return Inspect::Corrupt;
        };
        if (0..lanes).any(|l| !self.span_ok(l, capacity)) {
            return Inspect::Corrupt;
        }
        if self.semid_gone() {
            return Inspect::Orphaned;
        }
        if lanes != self.n() {
            return Inspect::Corrupt;
        }
        if self.closed() {
            return Inspect::Closed;
        }
        Inspect::Ok
    }

    /// Checks the outcome `r` of a send or reservation by `tx`.
    fn check_send(
        &self,
        tx: &mut TxState,
        rx_present: bool,
        r: Result<(), &Error>,
        elapsed: Duration,
        timed: bool,
    ) -> Result<(), TestCaseError> {
        let lane = tx.lane;
        if tx.poisoned {
            prop_assert!(
                matches!(r, Err(Error::Corrupted { .. })),
                "a poisoned sender said {:?}",
                r
            );
            return Ok(());
        }
        if self.closed() {
            prop_assert!(
                matches!(r, Err(Error::Removed { .. })),
                "closed, a sender said {:?}",
                r
            );
            return Ok(());
        }
        let scribbles = self.rx_connects_scribbles;
        // A receiver seen and cleanly gone: said on every call, before the
        // ring is looked at.
        if !rx_present && tx.seen.sure(scribbles) && self.seg.read_u32(RX_ATTACHED_AT) == 0 {
            prop_assert!(
                matches!(r, Err(Error::Disconnected)),
                "lane {}: the receiver seen is gone, a send said {:?}",
                lane,
                r
            );
            return Ok(());
        }
        match r {
            Ok(()) => {}
            Err(Error::Corrupted { .. }) => {
                prop_assert!(
                    self.lanes[lane].index_touched,
                    "Corrupted, lane {}'s head and tail untouched",
                    lane
                );
                tx.poisoned = true;
            }
            Err(Error::Full) => {
                prop_assert!(!timed, "Full from a timed call");
                prop_assert!(
                    rx_present || !tx.seen.sure(scribbles),
                    "Full, the receiver seen is gone"
                );
            }
            Err(Error::Timeout) => {
                prop_assert!(timed, "Timeout from a try call");
                prop_assert!(elapsed >= WAIT, "Timeout after {:?}", elapsed);
            }
            Err(Error::Disconnected) => prop_assert!(
                !rx_present && tx.seen.possible(scribbles),
                "Disconnected with a receiver or none seen"
            ),
            Err(other) => prop_assert!(false, "a send said {:?}", other),
        }
        Ok(())
    }
}

/// The channel, its handles, the third party, and what is known.
struct World {
    chan: Channel,
    txs: Vec<Option<Tx>>,
    rx: Option<Rx>,
    m: Model,
    _cleanup: Cleanup,
}

impl World {
    fn new(n: usize, senders: usize, receiver_first: bool) -> Result<World, TestCaseError> {
        let opts = Options::new()
            .capacity(RING)
            .max_senders(n as u32)
            .spin(Duration::ZERO);
        let chan = Channel::create(Key::PRIVATE, &opts).expect("create a private channel");
        let cleanup = Cleanup::of(&chan);
        let seg = Scribbler::attach(chan.id());
        assert_eq!(seg.len(), header_size(n) + n * RING);
        let identity = (0..16).map(|w| seg.read_u64(w * 8)).collect();
        let mut world = World {
            chan,
            txs: (0..n).map(|_| None).collect(),
            rx: None,
            m: Model {
                seg,
                lanes: (0..n).map(|_| LaneModel::default()).collect(),
                identity,
                seq: 0,
                tx_connects_scribbles: 0,
                rx_connects_scribbles: 0,
            },
            _cleanup: cleanup,
        };
        if receiver_first {
            world.claim_receiver()?;
        }
        for _ in 0..senders.min(n) {
            world.claim_sender()?;
        }
        if !receiver_first {
            world.claim_receiver()?;
        }
        Ok(world)
    }

    fn n(&self) -> usize {
        self.m.n()
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            &Op::Send { pick, len, timed } => self.send(pick, len, timed),
            Op::SendBatch { pick, lens, timed } => self.send_batch(*pick, lens, *timed),
            Op::Reserve {
                pick,
                len,
                timed,
                then,
            } => self.reserve(*pick, *len, *timed, then),
            &Op::Recv(kind) => self.recv(kind),
            Op::ClaimSender => self.claim_sender(),
            &Op::DropSender(pick) => {
                if let Some(lane) = self.pick_sender(pick) {
                    self.txs[lane] = None;
                }
                Ok(())
            }
            Op::ClaimReceiver => self.claim_receiver(),
            Op::DropReceiver => {
                self.rx = None;
                Ok(())
            }
            Op::Scribble(s) => {
                self.m.scribble(s);
                Ok(())
            }
            Op::OpenAgain => self.open_again(),
        }
    }

    /// The lane of the `pick`-th live sender (modulo their number).
    fn pick_sender(&self, pick: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.n()).filter(|&l| self.txs[l].is_some()).collect();
        (!live.is_empty()).then(|| live[pick % live.len()])
    }

    fn claim_sender(&mut self) -> Result<(), TestCaseError> {
        // docs/layout.md, section 4, "Claim a role": the free lanes that
        // hold no message first, then the others, each in order.
        let mut free_lanes = (0..self.n()).filter(|&l| self.txs[l].is_none());
        let free = free_lanes
            .clone()
            .find(|&l| !self.m.holds_messages(l))
            .or_else(|| free_lanes.next());
        let before = free.map(|lane| self.m.session(lane));
        let span = free.map(|lane| self.m.span_ok(lane, RING as u64));
        let r = self.chan.sender();
        match (free, r) {
            (None, Err(Error::RoleTaken { .. })) => {}
            (Some(lane), Ok(handle)) => {
                prop_assert_eq!(span, Some(true), "lane {} claimed with a bad span", lane);
                let session = before.unwrap().wrapping_add(1);
                prop_assert_eq!(handle.id().to_string(), format!("{lane}:{session}"));
                prop_assert_eq!(self.m.session(lane), session, "lane {}'s session", lane);
                if let Some(rx) = &mut self.rx {
                    rx.seen.announced = true;
                }
                let seen = Seen::new(self.rx.is_some(), self.m.rx_connects_scribbles);
                self.txs[lane] = Some(Tx {
                    handle,
                    st: TxState {
                        lane,
                        session,
                        poisoned: false,
                        seen,
                    },
                });
            }
            (Some(lane), Err(Error::Corrupted { .. })) => {
                prop_assert_eq!(span, Some(false), "lane {} refused with a good span", lane);
                prop_assert_eq!(
                    self.m.session(lane),
                    before.unwrap(),
                    "a refused claim of lane {} took a session",
                    lane
                );
            }
            (free, r) => prop_assert!(false, "sender claim, first free lane {:?}: {:?}", free, r),
        }
        Ok(())
    }

    fn claim_receiver(&mut self) -> Result<(), TestCaseError> {
        self.rx = None;
        let n = self.n();
        let spans = (0..n).all(|l| self.m.span_ok(l, RING as u64));
        let queued = (0..n).any(|l| self.m.head(l) != self.m.tail(l));
        match self.chan.receiver() {
            Ok(handle) => {
                prop_assert!(spans, "a receiver claimed with a lane's span bad");
                let senders = self.txs.iter().any(Option::is_some);
                for tx in self.txs.iter_mut().flatten() {
                    tx.st.seen.announced = true;
                }
                self.rx = Some(Rx {
                    handle,
                    poisoned: false,
                    maybe_poisoned: false,
                    seen: Seen::new(senders || queued, self.m.tx_connects_scribbles),
                    cache: vec![None; n],
                });
            }
            Err(Error::Corrupted { .. }) => {
                prop_assert!(!spans, "receiver claim refused, every span good");
            }
            Err(e) => prop_assert!(false, "receiver claim: {:?}", e),
        }
        Ok(())
    }

    fn send(&mut self, pick: usize, len: usize, timed: bool) -> Result<(), TestCaseError> {
        let Some(lane) = self.pick_sender(pick) else {
            return Ok(());
        };
        let msg = self.m.message(len);
        let rx_present = self.rx.is_some();
        let tx = self.txs[lane].as_mut().expect("a live sender");
        let start = Instant::now();
        let r = if timed {
            tx.handle.send_timeout(&msg, WAIT)
        } else {
            tx.handle.try_send(&msg)
        };
        let r = r.as_ref().map(|_| ());
        self.m
            .check_send(&mut tx.st, rx_present, r, start.elapsed(), timed)?;
        if r.is_ok() {
            let session = tx.st.session;
            self.m.commit(lane, msg, session);
        } else {
            self.m.lanes[lane].never.insert(msg);
        }
        Ok(())
    }

    /// A batch: the first `sent` messages are committed, in order, and
    /// what stopped it is checked as a send's error; a handle poisoned or a
    /// channel closed before the call sends nothing.
    fn send_batch(
        &mut self,
        pick: usize,
        lens: &[usize],
        timed: bool,
    ) -> Result<(), TestCaseError> {
        let Some(lane) = self.pick_sender(pick) else {
            return Ok(());
        };
        let msgs: Vec<Vec<u8>> = lens.iter().map(|&len| self.m.message(len)).collect();
        let rx_present = self.rx.is_some();
        // Refused whole, before the ring is looked at, as `send` is: a
        // poisoned sender, a closed channel, a receiver seen and cleanly
        // gone (`check_send` requires `Disconnected` then).
        let scribbles = self.m.rx_connects_scribbles;
        let refused = self.m.closed()
            || self.txs[lane].as_ref().is_some_and(|t| {
                t.st.poisoned
                    || (!rx_present
                        && t.st.seen.sure(scribbles)
                        && self.m.seg.read_u32(RX_ATTACHED_AT) == 0)
            });
        let tx = self.txs[lane].as_mut().expect("a live sender");
        let start = Instant::now();
        let r = if timed {
            tx.handle.send_batch_timeout(&msgs, WAIT)
        } else {
            tx.handle.try_send_batch(&msgs)
        };
        let elapsed = start.elapsed();
        let sent = match &r {
            Ok(()) => msgs.len(),
            Err(Error::BatchIncomplete { sent, source }) => {
                prop_assert!(
                    *sent < msgs.len(),
                    "{} of {} sent, and {:?}",
                    sent,
                    msgs.len(),
                    source
                );
                self.m
                    .check_send(&mut tx.st, rx_present, Err(&**source), elapsed, timed)?;
                *sent
            }
            Err(e) => {
                prop_assert!(false, "a batch said {:?}, not BatchIncomplete", e);
                0
            }
        };
        if refused {
            prop_assert_eq!(
                sent,
                0,
                "a batch sent on a poisoned sender or a closed channel"
            );
        } else if r.is_ok() {
            self.m
                .check_send(&mut tx.st, rx_present, Ok(()), elapsed, timed)?;
        }
        let session = tx.st.session;
        let mut msgs = msgs.into_iter();
        for msg in msgs.by_ref().take(sent) {
            self.m.commit(lane, msg, session);
        }
        self.m.lanes[lane].never.extend(msgs);
        Ok(())
    }

    fn reserve(
        &mut self,
        pick: usize,
        len: usize,
        timed: bool,
        then: &Then,
    ) -> Result<(), TestCaseError> {
        let Some(lane) = self.pick_sender(pick) else {
            return Ok(());
        };
        let msg = self.m.message(len);
        let rx_present = self.rx.is_some();
        let tx = self.txs[lane].as_mut().expect("a live sender");
        let start = Instant::now();
        let r = if timed {
            tx.handle.reserve_timeout(len, WAIT)
        } else {
            tx.handle.try_reserve(len)
        };
        self.m.check_send(
            &mut tx.st,
            rx_present,
            r.as_ref().map(|_| ()),
            start.elapsed(),
            timed,
        )?;
        let Ok(mut grant) = r else {
            return Ok(());
        };
        prop_assert_eq!(grant.len(), len);
        grant.copy_from_slice(&msg);
        let msg = match then {
            Then::Drop => {
                self.m.lanes[lane].never.insert(msg);
                return Ok(());
            }
            Then::Commit => msg,
            Then::ScribbleAndCommit(s) => {
                self.m.scribble(s);
                grant.to_vec()
            }
        };
        let committed = grant.commit();
        prop_assert!(committed.is_ok(), "commit: {:?}", committed);
        self.m.commit(lane, msg, tx.st.session);
        Ok(())
    }

    /// Whether a blocking receive returns at once: poisoned, closed, a
    /// message queued in an untouched lane, or nothing to wait for.
    fn recv_returns(&self) -> bool {
        let Some(rx) = &self.rx else {
            return false;
        };
        rx.poisoned
            || self.m.closed()
            || self
                .m
                .lanes
                .iter()
                .any(|l| !l.ring_touched && !l.queue.is_empty())
            || self.must_disconnect(rx)
    }

    /// Whether the receiver must say `Disconnected` now: no sender, every
    /// lane untouched and drained, a sender seen for sure.
    fn must_disconnect(&self, rx: &Rx) -> bool {
        !self.txs.iter().any(Option::is_some)
            && self
                .m
                .lanes
                .iter()
                .all(|l| !l.ring_touched && l.queue.is_empty())
            && rx.seen.sure(self.m.tx_connects_scribbles)
    }

    fn recv(&mut self, kind: RecvKind) -> Result<(), TestCaseError> {
        if self.rx.is_none() {
            return Ok(());
        }
        if let Some(max) = kind.batch() {
            return self.recv_batch(kind, max);
        }
        let kind = if kind == RecvKind::From && !self.recv_returns() {
            RecvKind::FromTimeout
        } else {
            kind
        };
        // The session words as the receiver will read them.
        let sessions: Vec<u64> = (0..self.n()).map(|l| self.m.session(l)).collect();
        let rx = &mut self.rx.as_mut().expect("a receiver").handle;
        let start = Instant::now();
        let r: Got = match kind {
            RecvKind::Try => rx.try_recv().map(|m| (m, None)),
            RecvKind::Timeout => rx.recv_timeout(WAIT).map(|m| (m, None)),
            RecvKind::TryFrom => rx.try_recv_from().map(|(m, id)| (m, Some((id, true)))),
            RecvKind::FromTimeout => rx
                .recv_from_timeout(WAIT)
                .map(|(m, id)| (m, Some((id, true)))),
            RecvKind::From => rx.recv_from().map(|(m, id)| (m, Some((id, true)))),
            RecvKind::TryRef => rx
                .try_recv_ref()
                .map(|g| (g.to_vec(), Some((g.sender(), false)))),
            RecvKind::TryMany(_)
            | RecvKind::TryManyWith(_)
            | RecvKind::ManyWithTimeout(_)
            | RecvKind::TryIter(_) => unreachable!("{kind:?}: a batch, received by recv_batch"),
        };
        let elapsed = start.elapsed();
        self.after_recv(kind, r, &sessions, elapsed)
    }

    /// A batch receive of at most `max` messages: each message is checked
    /// as one `try_recv` returning it would be (the batch receives return
    /// what as many `try_recv` calls would, in order), and the call's end
    /// as that of a single receive: an error only with nothing taken, and
    /// fewer than `max` messages only with every untouched lane drained
    /// or a touched one met (whose error the next call reports).
    fn recv_batch(&mut self, kind: RecvKind, max: usize) -> Result<(), TestCaseError> {
        let rx = &mut self.rx.as_mut().expect("a receiver").handle;
        let mut got: Vec<Vec<u8>> = Vec::new();
        let start = Instant::now();
        let r: shmchan::Result<usize> = match kind {
            RecvKind::TryMany(_) => {
                let mut bufs = vec![b"stale".to_vec(); max];
                let r = rx.try_recv_many(&mut bufs);
                let n = *r.as_ref().unwrap_or(&0);
                prop_assert!(n <= max, "{} messages into {} buffers", n, max);
                prop_assert!(
                    bufs[n..].iter().all(|b| b == b"stale"),
                    "buffers past the {} filled were written",
                    n
                );
                got.extend(bufs.into_iter().take(n));
                r
            }
            RecvKind::TryManyWith(_) => rx.try_recv_many_with(max, |m| got.push(m.to_vec())),
            RecvKind::ManyWithTimeout(_) => {
                rx.recv_many_with_timeout(max, |m| got.push(m.to_vec()), WAIT)
            }
            _ => {
                let mut it = rx.try_iter();
                got.extend(it.by_ref().take(max));
                match it.take_error() {
                    Some(e) => Err(e),
                    None => Ok(got.len()),
                }
            }
        };
        let elapsed = start.elapsed();
        let any_touched = self.m.lanes.iter().any(|l| l.ring_touched);
        let one = if kind.is_timed() {
            RecvKind::Timeout
        } else {
            RecvKind::Try
        };
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                if matches!(kind, RecvKind::TryIter(_)) {
                    // The messages before the `try_recv` that failed were
                    // returned; the error is that call's.
                    for msg in got {
                        self.after_recv(one, Ok((msg, None)), &[], elapsed)?;
                    }
                } else {
                    prop_assert!(
                        got.is_empty(),
                        "{:?}: {} messages, then {:?}",
                        kind,
                        got.len(),
                        e
                    );
                }
                return self.after_recv(one, Err(e), &[], elapsed);
            }
        };
        prop_assert_eq!(n, got.len(), "{:?} said {} and gave {}", kind, n, got.len());
        prop_assert!(n <= max, "{:?}: {} messages", kind, n);
        let try_iter = matches!(kind, RecvKind::TryIter(_));
        prop_assert!(n >= 1 || try_iter, "{:?} said Ok(0)", kind);
        for msg in got {
            self.after_recv(one, Ok((msg, None)), &[], elapsed)?;
        }
        if n < max {
            let drained = self
                .m
                .lanes
                .iter()
                .all(|l| l.ring_touched || l.queue.is_empty());
            prop_assert!(
                drained || any_touched,
                "{:?} stopped at {} with untouched lanes' messages queued, rings untouched",
                kind,
                n
            );
            if try_iter {
                // It ended on Empty or Disconnected, as `try_recv` would.
                prop_assert!(
                    drained,
                    "try_iter ended with untouched lanes' messages queued"
                );
            } else if n > 0 {
                // Stopped short with an untouched lane's message queued:
                // by a corrupt frame, which the next call reports (no other
                // error can arise within the call). Drained, it may have.
                let rx = self.rx.as_mut().expect("a receiver");
                if drained {
                    rx.maybe_poisoned = any_touched;
                } else {
                    rx.poisoned = true;
                }
            }
        }
        Ok(())
    }

    fn after_recv(
        &mut self,
        kind: RecvKind,
        r: Got,
        sessions: &[u64],
        elapsed: Duration,
    ) -> Result<(), TestCaseError> {
        let n = self.n();
        let live_senders = self.txs.iter().any(Option::is_some);
        let any_touched = self.m.lanes.iter().any(|l| l.ring_touched);
        let drained = self
            .m
            .lanes
            .iter()
            .all(|l| l.ring_touched || l.queue.is_empty());
        let must_disconnect = self.must_disconnect(self.rx.as_ref().expect("a receiver"));
        let closed = self.m.closed();
        let scribbles = self.m.tx_connects_scribbles;
        let rx = self.rx.as_mut().expect("a receiver");
        if std::mem::take(&mut rx.maybe_poisoned) && matches!(r, Err(Error::Corrupted { .. })) {
            rx.poisoned = true;
            return Ok(());
        }
        if rx.poisoned {
            prop_assert!(
                matches!(r, Err(Error::Corrupted { .. })),
                "a poisoned receiver said {:?}",
                r
            );
            return Ok(());
        }
        if closed {
            prop_assert!(
                matches!(r, Err(Error::Removed { .. })),
                "closed, the receiver said {:?}",
                r
            );
            return Ok(());
        }
        let (msg, from) = match r {
            Ok(got) => got,
            Err(Error::Corrupted { .. }) => {
                prop_assert!(any_touched, "Corrupted, every ring untouched");
                rx.poisoned = true;
                return Ok(());
            }
            Err(Error::Disconnected) => {
                prop_assert!(!live_senders, "Disconnected with a sender attached");
                prop_assert!(drained, "Disconnected with messages queued");
                prop_assert!(rx.seen.possible(scribbles), "Disconnected, no sender seen");
                return Ok(());
            }
            Err(Error::Empty) => {
                prop_assert!(kind.is_try(), "Empty from {:?}", kind);
                prop_assert!(drained, "Empty with messages queued");
                prop_assert!(!must_disconnect, "Empty, every sender seen gone");
                return Ok(());
            }
            Err(Error::Timeout) => {
                prop_assert!(kind.is_timed(), "Timeout from {:?}", kind);
                prop_assert!(elapsed >= WAIT, "Timeout after {:?}", elapsed);
                prop_assert!(drained, "Timeout with messages queued");
                return Ok(());
            }
            Err(e) => {
                prop_assert!(false, "{:?}: {:?}", kind, e);
                return Ok(());
            }
        };
        prop_assert!(msg.len() <= MAX, "a message of {} bytes", msg.len());
        rx.seen.base = true; // a sender existed
        let from_lane = from.map(|(id, _)| lane_of(id));
        if let Some(l) = from_lane {
            prop_assert!(l < n, "a message from lane {}", l);
        }
        let next = (0..n).find(|&l| {
            let lane = &self.m.lanes[l];
            !lane.ring_touched && lane.queue.front().is_some_and(|q| q.msg == msg)
        });
        let Some(lane) = next else {
            // No untouched lane's next message: a touched lane's, and no
            // untouched lane's later or earlier one.
            match from_lane {
                Some(l) => prop_assert!(
                    self.m.lanes[l].ring_touched,
                    "untouched lane {} gave a message that is not its next",
                    l
                ),
                None => prop_assert!(any_touched, "a message no lane sent next, rings untouched"),
            }
            for (l, lane) in self.m.lanes.iter().enumerate() {
                if !lane.ring_touched {
                    prop_assert!(
                        !lane.delivered.contains(&msg) && !lane.queue.iter().any(|q| q.msg == msg),
                        "lane {}'s message out of order or twice",
                        l
                    );
                    prop_assert!(
                        !lane.never.contains(&msg),
                        "lane {}'s message that was never committed",
                        l
                    );
                    // An untouched lane's message cut short or run on: its
                    // number and every byte they share, at least 12 (the
                    // shortest message sent; a scribbled word alone could
                    // match a number). A lane's bytes are in its own region
                    // only, so no touched lane holds them.
                    let mis_sized = lane
                        .queue
                        .iter()
                        .map(|q| &q.msg)
                        .chain(&lane.delivered)
                        .find(|q| {
                            let common = q.len().min(msg.len());
                            common >= 12 && q[..common] == msg[..common]
                        });
                    prop_assert!(
                        mis_sized.is_none(),
                        "lane {}'s message of {} bytes came with {}",
                        l,
                        mis_sized.map_or(0, |q| q.len()),
                        msg.len()
                    );
                }
            }
            return Ok(());
        };
        if let Some(l) = from_lane {
            prop_assert_eq!(l, lane, "lane {}'s message named lane {}", lane, l);
        }
        let q = self.m.lanes[lane].queue.pop_front().expect("the front");
        if let Some((id, cached)) = from {
            let tag = tag(q.session);
            let expected = match rx.cache[lane] {
                Some((t, session)) if cached && t == tag => session,
                _ => session_of_tag(tag, sessions[lane]),
            };
            if cached {
                rx.cache[lane] = Some((tag, expected));
            }
            if !self.m.lanes[lane].session_touched {
                prop_assert_eq!(
                    expected,
                    q.session,
                    "lane {}: the sender's own session",
                    lane
                );
            }
            prop_assert_eq!(id.to_string(), format!("{lane}:{expected}"));
        }
        self.m.lanes[lane].delivered.insert(q.msg);
        Ok(())
    }

    fn open_again(&mut self) -> Result<(), TestCaseError> {
        let shmid = self.chan.id();
        let expect = self.m.expected_open();
        let r = Channel::open_id(shmid);
        let got = match &r {
            Ok(_) => Open::Channel,
            Err(Error::NotAChannel { .. }) => Open::NotAChannel,
            Err(Error::VersionMismatch {
                found, expected: 2, ..
            }) => Open::Version(*found),
            Err(Error::Corrupted { .. }) => Open::Corrupted,
            Err(Error::Removed { .. }) => Open::Removed,
            Err(Error::NotFound { .. }) => Open::NotFound,
            Err(other) => {
                prop_assert!(false, "open_id: {:?}", other);
                return Ok(());
            }
        };
        prop_assert_eq!(&got, &expect, "open_id: {:?}", r.as_ref().err());
        drop(r);
        let expect = self.m.expected_inspect();
        let info = admin::inspect(shmid);
        let got = match &info {
            Ok(seg) => match &seg.kind {
                Kind::Foreign { .. } => Inspect::Foreign,
                Kind::Channel(c) => match c.state {
                    State::Corrupt(_) => Inspect::Corrupt,
                    State::Orphaned => Inspect::Orphaned,
                    State::Closed => Inspect::Closed,
                    State::Ok => {
                        prop_assert_eq!((c.lanes as usize, c.capacity), (self.n(), RING as u64));
                        let sessions: Vec<u64> = c.lane_info.iter().map(|l| l.sessions).collect();
                        let words: Vec<u64> = (0..self.n()).map(|l| self.m.session(l)).collect();
                        prop_assert_eq!(sessions, words, "inspect: the lanes' sessions");
                        Inspect::Ok
                    }
                    ref other => {
                        prop_assert!(false, "inspect: {:?}", other);
                        return Ok(());
                    }
                },
                other => {
                    prop_assert!(false, "inspect: {:?}", other);
                    return Ok(());
                }
            },
            Err(e) => {
                prop_assert!(false, "inspect: {:?}", e);
                return Ok(());
            }
        };
        prop_assert_eq!(got, expect, "inspect: {:?}", info);
        Ok(())
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn lanes_survive_a_scribbling_third_party(
        lanes in 1usize..=4,
        senders in 0usize..=4,
        receiver_first in any::<bool>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        start_watchdog("corruption_lanes");
        let mut world = World::new(lanes, senders, receiver_first)?;
        for op in &ops {
            world.run(op)?;
            progress();
        }
    }
}

// ---- Plain tests: the most hostile values, each with its precise error ----

/// A private channel of `lanes` lanes of [`RING`] bytes that parks at once,
/// its cleanup guard and the third party's attach.
fn lanes_channel(lanes: u32) -> (Channel, Cleanup, Scribbler) {
    let opts = Options::new()
        .capacity(RING)
        .max_senders(lanes)
        .spin(Duration::ZERO);
    let chan = Channel::create(Key::PRIVATE, &opts).expect("create a private channel");
    let guard = Cleanup::of(&chan);
    let seg = Scribbler::attach(chan.id());
    (chan, guard, seg)
}

/// The `what` of a `Corrupted`, or a panic naming what came instead.
fn corrupted<T: std::fmt::Debug>(r: shmchan::Result<T>, call: &str) -> String {
    match r {
        Err(Error::Corrupted { what, .. }) => what,
        other => panic!("{call}: expected Corrupted, got {other:?}"),
    }
}

/// The reason `admin::inspect` gives for a corrupt channel.
fn inspect_corrupt(shmid: i32) -> String {
    match common::channel_info(shmid).state {
        State::Corrupt(what) => what,
        other => panic!("inspect: expected Corrupt, got {other:?}"),
    }
}

/// One message from each sender, received with `recv_from`: each arrives
/// whole and named by its sender's id.
fn one_each(txs: &mut [Sender], rx: &mut Receiver, label: &str) {
    let mut expected: Vec<(Vec<u8>, String)> = txs
        .iter_mut()
        .map(|tx| {
            let msg = format!("{label} from {}", tx.id()).into_bytes();
            tx.try_send(&msg).expect("send");
            (msg, tx.id().to_string())
        })
        .collect();
    let mut got: Vec<(Vec<u8>, String)> = (0..txs.len())
        .map(|_| {
            let (msg, from) = rx.try_recv_from().expect("receive");
            (msg, from.to_string())
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "{label}");
    assert!(matches!(rx.try_recv(), Err(Error::Empty)), "{label}: more");
}

/// Words written into the identity: offset, width, value.
type Writes<'a> = &'a [(usize, usize, u64)];

#[test]
fn identity_lanes_that_do_not_fit_the_segment_or_the_set_are_corrupted() {
    let (chan, _guard, seg) = lanes_channel(3);
    let shmid = chan.id();
    let size = header_size(3) + 3 * RING;
    assert_eq!(seg.len(), size);
    let mut txs: Vec<Sender> = (0..3).map(|_| chan.sender().expect("sender")).collect();
    let mut rx = chan.receiver().expect("receiver");
    let identity: Vec<u64> = (0..16).map(|w| seg.read_u64(w * 8)).collect();
    let restore = || {
        for (w, &v) in identity.iter().enumerate() {
            seg.write(w * 8, 8, v);
        }
    };
    let cases: &[(&str, Writes, &str)] = &[
        (
            "max_senders raised beyond what header_size allows",
            &[(MAX_SENDERS_AT, 4, 4)],
            "header size 1536, expected 1920 for 4 lanes",
        ),
        (
            "max_senders raised with a header_size to match",
            &[
                (MAX_SENDERS_AT, 4, 4),
                (HEADER_SIZE_AT, 4, header_size(4) as u64),
            ],
            &format!("4 lanes of 4096 bytes do not fit a segment of {size} bytes"),
        ),
        (
            "max_senders 64 with a header_size to match",
            &[
                (MAX_SENDERS_AT, 4, 64),
                (HEADER_SIZE_AT, 4, header_size(64) as u64),
            ],
            &format!("64 lanes of 4096 bytes do not fit a segment of {size} bytes"),
        ),
        (
            "max_senders lowered with a header_size to match",
            &[
                (MAX_SENDERS_AT, 4, 2),
                (HEADER_SIZE_AT, 4, header_size(2) as u64),
            ],
            // The set has 4 + 2 x 3: not a 2-lane channel's.
            "10 semaphores, creator uid",
        ),
        (
            "max_senders 0",
            &[(MAX_SENDERS_AT, 4, 0)],
            "0 lanes, expected 1 to 64",
        ),
        (
            "max_senders 65",
            &[(MAX_SENDERS_AT, 4, 65)],
            "65 lanes, expected 1 to 64",
        ),
        (
            "max_senders u32::MAX",
            &[(MAX_SENDERS_AT, 4, u32::MAX as u64)],
            "4294967295 lanes, expected 1 to 64",
        ),
        (
            "header_size of one lane",
            &[(HEADER_SIZE_AT, 4, 768)],
            "header size 768, expected 1536 for 3 lanes",
        ),
        (
            "header_size u32::MAX",
            &[(HEADER_SIZE_AT, 4, u32::MAX as u64)],
            "header size 4294967295, expected 1536 for 3 lanes",
        ),
        (
            "capacity doubled",
            &[(CAPACITY_AT, 8, 8192), (MAX_MESSAGE_AT, 8, 8184)],
            &format!("3 lanes of 8192 bytes do not fit a segment of {size} bytes"),
        ),
        (
            "capacity 2^32",
            &[(CAPACITY_AT, 8, 1 << 32)],
            "capacity 4294967296 is not a valid ring size",
        ),
    ];
    for (i, &(what, writes, why)) in cases.iter().enumerate() {
        for &(at, width, value) in writes {
            seg.write(at, width, value);
        }
        let said = corrupted(Channel::open_id(shmid), what);
        assert!(said.contains(why), "{what}: open_id said {said:?}");
        let said = inspect_corrupt(shmid);
        assert!(said.contains(why), "{what}: inspect said {said:?}");
        // The parties keep the geometry they validated when they opened.
        one_each(&mut txs, &mut rx, &format!("{i}: {what}"));
        restore();
        drop(Channel::open_id(shmid).unwrap_or_else(|e| panic!("{what}, restored: {e}")));
    }
}

#[test]
fn a_lane_session_word_set_to_a_huge_value_names_senders_by_the_tag_rule() {
    let (chan, _guard, seg) = lanes_channel(3);
    let mut rx = chan.receiver().expect("receiver");
    let mut other = chan.sender().expect("sender of lane 0");
    let mut a = chan.sender().expect("sender of lane 1");
    assert_eq!(a.id().to_string(), "1:1");
    let session_at = lane_at(1).tx + SESSION_OFF;
    assert_eq!(seg.read_u64(session_at), 1);

    a.try_send(b"before").unwrap();
    seg.write(session_at, 8, u64::MAX);
    a.try_send(b"after").unwrap(); // A keeps its own tag, 0
    assert_eq!(a.id().to_string(), "1:1", "a sender's id is its own copy");
    // Resolved against the scribbled word: the last session at or before
    // u64::MAX whose tag is 0. Wrong, as docs/layout.md says a hostile
    // session word makes it; no worse.
    let wrong = u64::MAX - 0xff_fffe;
    assert_eq!(wrong, session_of_tag(0, u64::MAX));
    for expected in [&b"before"[..], b"after"] {
        let (msg, from) = rx.try_recv_from().unwrap();
        assert_eq!(
            (msg.as_slice(), from.to_string()),
            (expected, format!("1:{wrong}"))
        );
    }
    // Another lane is named by its own word.
    other.try_send(b"lane 0").unwrap();
    let (msg, from) = rx.try_recv_from().unwrap();
    assert_eq!((msg.as_slice(), from), (&b"lane 0"[..], other.id()));

    // A word 2^24 sessions on: the next sender's tag is A's. The receiver
    // still holds that tag and names the session it resolved for it
    // (it loads the word again only for another tag); resolved afresh,
    // the guard names the new sender.
    drop(a);
    seg.write(session_at, 8, 1 << 24);
    let mut c = chan.sender().expect("sender of lane 1, second");
    assert_eq!(c.id().to_string(), format!("1:{}", (1u64 << 24) + 1));
    assert_eq!(tag((1 << 24) + 1), tag(1), "its tag is A's");
    c.try_send(b"from c").unwrap();
    let (msg, from) = rx.try_recv_from().unwrap();
    assert_eq!(
        (msg.as_slice(), from.to_string()),
        (&b"from c"[..], format!("1:{wrong}"))
    );
    c.try_send(b"in place").unwrap();
    let guard = rx.try_recv_ref().unwrap();
    assert_eq!((&*guard, guard.sender()), (&b"in place"[..], c.id()));
    drop(guard);

    // The word at u64::MAX: the next sender wraps it to session 0 (tag
    // 0xffffff, another tag) and is named exactly.
    drop(c);
    seg.write(session_at, 8, u64::MAX);
    let mut b = chan.sender().expect("sender of lane 1, third");
    assert_eq!(b.id().to_string(), "1:0");
    assert_eq!(seg.read_u64(session_at), 0);
    b.try_send(b"from b").unwrap();
    let (msg, from) = rx.try_recv_from().unwrap();
    assert_eq!((msg.as_slice(), from), (&b"from b"[..], b.id()));
    let info = common::channel_info(chan.id());
    assert_eq!(info.state, State::Ok);
    assert_eq!(info.lane_info[1].sessions, 0);
}

#[test]
fn a_lane_tail_beyond_the_capacity_is_refused_by_every_reader() {
    let (chan, _guard, seg) = lanes_channel(3);
    let shmid = chan.id();
    let mut rx = chan.receiver().expect("receiver");
    let mut tx0 = chan.sender().expect("lane 0");
    let mut tx1 = chan.sender().expect("lane 1");
    drop(chan.sender().expect("lane 2")); // lane 2: session 1, no sender now
    tx0.try_send(b"zero").unwrap();
    tx1.try_send(b"one").unwrap();
    let tail2 = lane_at(2).tx;
    assert_eq!((seg.read_u64(lane_at(2).rx), seg.read_u64(tail2)), (0, 0));
    let beyond = RING as u64 + 8;
    seg.write(tail2, 8, beyond);
    let why = format!("tail {beyond} is more than the capacity {RING} beyond head 0");

    // Opening checks the identity, not the lanes: it still opens.
    drop(Channel::open_id(shmid).expect("open_id"));
    let said = inspect_corrupt(shmid);
    assert_eq!(said, format!("lane 2: {why}"));
    // A sender's claim of lane 2 is refused, takes no session and leaves
    // the lane free.
    let said = corrupted(chan.sender(), "claim of lane 2");
    assert_eq!(said, why);
    assert_eq!(seg.read_u64(lane_at(2).tx + SESSION_OFF), 1);
    // The live receiver meets lane 2 at its first look at it, perhaps
    // after a message of lane 0 or 1 (the lanes' order is its own).
    let mut queued = vec![
        (b"zero".to_vec(), tx0.id().to_string()),
        (b"one".to_vec(), tx1.id().to_string()),
    ];
    let said = loop {
        match rx.try_recv_from() {
            Ok((msg, from)) => {
                let got = (msg, from.to_string());
                let i = queued.iter().position(|q| *q == got);
                queued.remove(i.unwrap_or_else(|| panic!("received {got:?}")));
            }
            r => break corrupted(r, "try_recv_from"),
        }
    };
    assert_eq!(said, format!("lane 2: {why}"));
    // Poisoned: the same error on every call, blocking ones too, even
    // once the tail is back and a message waits.
    seg.write(tail2, 8, 0);
    tx0.try_send(b"later").unwrap();
    assert_eq!(corrupted(rx.recv(), "recv"), format!("lane 2: {why}"));
    assert_eq!(
        corrupted(rx.recv_from(), "recv_from"),
        format!("lane 2: {why}")
    );
    // A new receiver is refused while the tail is bad, naming the lane.
    drop(rx);
    seg.write(tail2, 8, beyond);
    let said = corrupted(chan.receiver(), "receiver claim");
    assert_eq!(said, format!("lane 2: {why}"));
    // Once it is back, everything works again, lane 2 included.
    seg.write(tail2, 8, 0);
    let mut rx = chan.receiver().expect("receiver, tail restored");
    let mut tx2 = chan.sender().expect("lane 2, tail restored");
    assert_eq!(tx2.id().to_string(), "2:2");
    tx2.try_send(b"two").unwrap();
    queued.push((b"later".to_vec(), tx0.id().to_string()));
    queued.push((b"two".to_vec(), tx2.id().to_string()));
    let mut got: Vec<(Vec<u8>, String)> = (0..queued.len())
        .map(|_| {
            let (m, f) = rx.try_recv_from().unwrap();
            (m, f.to_string())
        })
        .collect();
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    got.sort();
    queued.sort();
    assert_eq!(got, queued, "what the poisoned receiver left, and the rest");
    assert_eq!(common::channel_info(shmid).state, State::Ok);
}

#[test]
fn a_lane_head_beyond_its_tail_poisons_both_sides_naming_the_lane() {
    let (chan, _guard, seg) = lanes_channel(3);
    let mut rx = chan.receiver().expect("receiver");
    let mut txs: Vec<Sender> = (0..3).map(|_| chan.sender().expect("sender")).collect();
    one_each(&mut txs, &mut rx, "before");
    let (head1, tail1) = (lane_at(1).rx, lane_at(1).tx);
    let at = seg.read_u64(tail1);
    assert_eq!(seg.read_u64(head1), at);
    let bad = at + 2 * RING as u64;
    seg.write(head1, 8, bad);
    // Lane 1's sender looks at head only when its cached copy says full
    // (docs/layout.md, section 6): a small message goes; the whole ring
    // does not fit before the end, so it publishes padding to the end
    // (room by its cached head), then reloads head for the frame at 0 and
    // refuses it.
    txs[1].try_send(b"small").expect("room by the cached head");
    let said = corrupted(
        txs[1].try_send(&[7; MAX]),
        "lane 1's send of the whole ring",
    );
    assert_eq!(said, format!("head {bad} is beyond tail {RING}"));
    assert!(matches!(
        txs[1].try_send(b"x"),
        Err(Error::Corrupted { .. })
    ));
    // The receiver compares lane 1's head with its own at its next look
    // at lane 1.
    let said = corrupted(rx.try_recv(), "try_recv");
    assert_eq!(
        said,
        format!("lane 1: head is {bad}, but this receiver last wrote {at}")
    );
    // Poisoned, whatever the lane; the other senders go on.
    txs[0].try_send(b"zero").unwrap();
    txs[2].try_send(b"two").unwrap();
    assert!(matches!(rx.recv(), Err(Error::Corrupted { .. })));
}

#[test]
fn hostile_words_outside_the_rings_change_nothing() {
    let (chan, _guard, seg) = lanes_channel(4);
    let shmid = chan.id();
    let mut rx = chan.receiver().expect("receiver");
    let mut txs: Vec<Sender> = (0..4).map(|_| chan.sender().expect("sender")).collect();
    for lane in 0..4 {
        for &(block, off, width, name) in LANE_FIELDS {
            if name == "tail" || name == "head" || name == "session" {
                continue;
            }
            let at = lane_at(lane);
            let base = match block {
                Block::Tx => at.tx,
                Block::Rx => at.rx,
                Block::Waiting => at.waiting,
            };
            seg.write(base + off, width, u64::MAX);
        }
    }
    for (at, width) in [
        (RX_WAITING_AT, 4),
        (TX_CONNECTS_AT, 8),
        (RX_CONNECTS_AT, 8),
        (656, 4),
        (RX_ATTACHED_AT, 4),
    ] {
        seg.write(at, width, u64::MAX);
    }
    // Words of every ring's free space (all of it: the rings are empty).
    for lane in 0..4 {
        for w in (16..RING / 8).step_by(5) {
            seg.write(data_at(4, RING, lane) + w * 8, 8, u64::MAX);
        }
    }
    for round in 0..40 {
        one_each(&mut txs, &mut rx, &format!("round {round}"));
        // A big one per lane, so that frames wrap with padding.
        for tx in txs.iter_mut() {
            let msg = numbered_message_of_len(round, 1000 + round as usize);
            tx.send_timeout(&msg, Duration::from_secs(5)).unwrap();
            let (got, from) = rx.recv_from_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!((got, from), (msg, tx.id()));
        }
    }
    // Claims go on from the sessions, whatever the counters say.
    drop(txs.remove(2));
    let tx = chan.sender().expect("lane 2 again");
    assert_eq!(tx.id().to_string(), "2:2");
    drop(rx);
    let rx = chan.receiver().expect("receiver again");
    drop(Channel::open_id(shmid).expect("open_id"));
    let info = common::channel_info(shmid);
    assert_eq!(info.state, State::Ok);
    assert_eq!(
        info.lane_info
            .iter()
            .map(|l| l.sessions)
            .collect::<Vec<_>>(),
        [1, 1, 2, 1]
    );
    drop((tx, rx));
}

/// Longest a wake-up may come late when the third party holds a waiting
/// flag down: one park slice (500 ms, docs/layout.md section 4), with room
/// for a loaded host.
const LATE: Duration = Duration::from_secs(2);

/// Runs `wait` on a thread of its own, lets `wake` make its wait end once
/// that thread is parked on a semaphore with its waiting flag `flag` held
/// down by the third party (so that no post comes), and returns what
/// `wait` returned and how long it took.
fn wake_with_flag_down<T: Send>(
    flag: &std::sync::atomic::AtomicU32,
    wait: impl FnOnce() -> T + Send,
    wake: impl FnOnce(),
) -> (T, Duration) {
    use std::sync::atomic::Ordering::SeqCst;
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let waiter = s.spawn(move || {
            tid_tx.send(common::gettid()).expect("send the tid");
            let start = Instant::now();
            let got = wait();
            (got, start.elapsed())
        });
        let tid = tid_rx.recv().expect("the waiter's tid");
        let pid = std::process::id() as i32;
        common::wait_for(LATE, "the waiter to park", || {
            common::task_blocked_in(pid, tid, common::SEM_WAIT_SYSCALLS)
        });
        assert_eq!(flag.swap(0, SeqCst), 1, "a parked waiter's flag is up");
        wake();
        waiter.join().expect("the waiter")
    })
}

#[test]
fn waiting_flags_held_down_delay_a_wake_up_by_one_park_slice_at_most() {
    let (chan, _guard, seg) = lanes_channel(3);
    let mut rx = chan.receiver().expect("receiver");
    let _lane0 = chan.sender().expect("lane 0");
    let mut tx = chan.sender().expect("lane 1");
    // Lane 1's sender waits for room; the receiver makes room and, its
    // flag down, posts nothing: the sender finds the room at the end of
    // its park slice.
    tx.send(&[1; MAX]).unwrap();
    let flag = seg.atomic_u32(lane_at(1).waiting);
    let (sent, took) = wake_with_flag_down(
        flag,
        || tx.send(b"after"),
        || assert_eq!(rx.try_recv().unwrap().len(), MAX),
    );
    sent.expect("send once there is room");
    assert!(
        took >= Duration::from_millis(250),
        "woken by a post? {took:?}"
    );
    assert!(took < LATE, "the sender woke after {took:?}");
    assert_eq!(rx.try_recv().unwrap(), b"after");
    // The receiver waits for a message; lane 1's sender commits one and,
    // the receiver's flag down, posts nothing.
    let flag = seg.atomic_u32(RX_WAITING_AT);
    let (got, took) = wake_with_flag_down(flag, || rx.recv(), || tx.try_send(b"late").unwrap());
    assert_eq!(got.expect("receive once there is a message"), b"late");
    assert!(
        took >= Duration::from_millis(250),
        "woken by a post? {took:?}"
    );
    assert!(took < LATE, "the receiver woke after {took:?}");
}
