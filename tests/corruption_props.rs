//! Issue 5, check 2: property tests of everything a channel reads from
//! shared memory, at the public API, on a real segment. A third party (a
//! second read-write attach of the segment, made with raw `shmat`) writes
//! header fields and words of the data region between valid sends,
//! receives and re-opens. For every input:
//!
//! - nothing panics (debug assertions are on in tests) and no call takes
//!   longer than its timeout (a watchdog aborts the run after 20 s);
//! - a receiver returns a message that was sent, byte for byte and in
//!   order, while the third party has not touched the ring (head, tail,
//!   data region); after it has, anything within the maximum length, or
//!   `Corrupted`, after which the handle stays poisoned;
//! - `Removed` exactly while the `closed` word is non-zero, `Empty` exactly
//!   while nothing is queued (ring untouched), never `Disconnected` or an
//!   OS error (both parties are alive);
//! - opening the corrupted segment again gives a channel or a clear error
//!   (not a channel, wrong version, corrupted, removed), never a panic.
//!
//! Cases: `PROPTEST_CASES` (default 512 here; docs/verification.md gives
//! the figures of the CI run and of a long local run).

mod common;

use std::time::Duration;

use common::layout::{
    CLOSED_AT, DATA_AT, HEAD_AT, MAGIC_AT, RX_WAITING_AT, SEMID_AT, TAIL_AT, TX_WAITING_AT,
    VERSION_AT,
};
use common::numbered_message_of_len;
use common::scribble::{Scribbler, config, frame_word, progress, start_watchdog, value};
use proptest::prelude::*;
use shmchan::{Channel, Error, Key, Options, Receiver, Sender};

/// Ring size of the channels made here, and its largest message.
const RING: usize = 4096;
const MAX: usize = RING - 8;

/// Header fields a third party may write: offset (docs/layout.md), width in
/// bytes, and name.
const FIELDS: &[(usize, usize, &str)] = &[
    (VERSION_AT, 4, "version"),
    (12, 4, "header_size"),
    (16, 8, "capacity"),
    (24, 8, "max_message"),
    (36, 4, "creator_pid"),
    (40, 8, "created"),
    (48, 4, "mode"),
    (52, 4, "flags"),
    (56, 4, "key"),
    (64, 8, "path_dev"),
    (72, 8, "path_ino"),
    (80, 4, "creator_uid"),
    (TAIL_AT, 8, "tail"),
    (136, 8, "tx messages"),
    (144, 8, "tx bytes"),
    (152, 8, "tx stalls"),
    (160, 8, "tx parks"),
    (168, 8, "tx wakes"),
    (HEAD_AT, 8, "head"),
    (264, 8, "rx messages"),
    (272, 8, "rx bytes"),
    (280, 8, "rx stalls"),
    (288, 8, "rx parks"),
    (296, 8, "rx wakes"),
    (RX_WAITING_AT, 4, "rx_waiting"),
    (TX_WAITING_AT, 4, "tx_waiting"),
    (640, 8, "tx_connects"),
    (648, 8, "rx_connects"),
    (656, 4, "reserved (version 1's tx_attached)"),
    (660, 4, "rx_attached"),
    (CLOSED_AT, 4, "closed"),
];

#[derive(Debug, Clone)]
enum Op {
    TrySend(usize),
    SendTimeout(usize),
    /// `try_reserve`, fill, and commit or (false) drop uncommitted.
    Reserve(usize, bool),
    TryRecv,
    RecvTimeout,
    TryRecvRef,
    /// Writes header field `FIELDS[i]`.
    Field(usize, u64),
    /// Writes the semaphore set id: only negative ids, which no set has
    /// (a real id could name another test's live set).
    SemId(u32),
    /// Writes a word of the data region.
    Data(usize, u64),
    /// Writes the magic: never 0, which an opener would wait on as a
    /// creator still at work (tested elsewhere).
    Magic(u64),
    /// Puts `closed` back to 0.
    Unclose,
    /// Opens the segment again by id and drops the handle.
    OpenAgain,
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![12usize..64, 12usize..=MAX, Just(MAX)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => len().prop_map(Op::TrySend),
        1 => len().prop_map(Op::SendTimeout),
        1 => (len(), any::<bool>()).prop_map(|(l, c)| Op::Reserve(l, c)),
        3 => Just(Op::TryRecv),
        1 => Just(Op::RecvTimeout),
        1 => Just(Op::TryRecvRef),
        2 => (0..FIELDS.len(), value()).prop_map(|(i, v)| Op::Field(i, v)),
        1 => prop_oneof![Just(u32::MAX), Just(0x8000_0000u32), Just(0xdead_beefu32)].prop_map(Op::SemId),
        1 => (0..RING / 8, frame_word(RING as u64)).prop_map(|(w, v)| Op::Data(w * 8, v)),
        1 => prop_oneof![Just(0x004E_4148_434D_4853u64), 1u64..].prop_map(Op::Magic),
        1 => Just(Op::Unclose),
        1 => Just(Op::OpenAgain),
    ]
}

/// One channel, its two handles, the third party, and what is known.
struct World {
    tx: Sender,
    rx: Receiver,
    scribbler: Scribbler,
    shmid: i32,
    sent: Vec<Vec<u8>>,
    /// Index in `sent` of the next message the receiver must return.
    next: usize,
    ring_touched: bool,
    tx_poisoned: bool,
    rx_poisoned: bool,
    _cleanup: common::Cleanup,
}

impl World {
    fn new() -> World {
        let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(RING))
            .expect("create a private channel");
        let cleanup = common::Cleanup::of(&chan);
        let mut tx = chan.sender().expect("sender");
        let mut rx = chan.receiver().expect("receiver");
        tx.set_spin(Duration::ZERO);
        rx.set_spin(Duration::ZERO);
        World {
            tx,
            rx,
            scribbler: Scribbler::attach(chan.id()),
            shmid: chan.id(),
            sent: Vec::new(),
            next: 0,
            ring_touched: false,
            tx_poisoned: false,
            rx_poisoned: false,
            _cleanup: cleanup,
        }
    }

    fn closed(&self) -> bool {
        self.scribbler.read_u32(CLOSED_AT) != 0
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::TrySend(len) => {
                let msg = numbered_message_of_len(self.sent.len() as u64, len);
                let r = self.tx.try_send(&msg);
                self.after_send(r, msg)
            }
            Op::SendTimeout(len) => {
                let msg = numbered_message_of_len(self.sent.len() as u64, len);
                let r = self.tx.send_timeout(&msg, Duration::from_millis(2));
                self.after_send(r, msg)
            }
            Op::Reserve(len, commit) => self.reserve(len, commit),
            Op::TryRecv => {
                let r = self.rx.try_recv();
                self.after_recv(r)
            }
            Op::RecvTimeout => {
                let r = self.rx.recv_timeout(Duration::from_millis(2));
                self.after_recv(r)
            }
            Op::TryRecvRef => {
                let r = self.rx.try_recv_ref().map(|g| g.to_vec());
                self.after_recv(r)
            }
            Op::Field(i, v) => {
                let (off, width, _) = FIELDS[i];
                self.scribbler.write(off, width, v);
                self.ring_touched |= off == TAIL_AT || off == HEAD_AT;
                Ok(())
            }
            Op::SemId(v) => {
                self.scribbler.write(SEMID_AT, 4, u64::from(v));
                Ok(())
            }
            Op::Data(off, v) => {
                self.scribbler.write(DATA_AT + off, 8, v);
                self.ring_touched = true;
                Ok(())
            }
            Op::Magic(v) => {
                self.scribbler.write(MAGIC_AT, 8, v);
                Ok(())
            }
            Op::Unclose => {
                self.scribbler.write(CLOSED_AT, 4, 0);
                Ok(())
            }
            Op::OpenAgain => self.open_again(),
        }
    }

    fn reserve(&mut self, len: usize, commit: bool) -> Result<(), TestCaseError> {
        let msg = numbered_message_of_len(self.sent.len() as u64, len);
        let r = match self.tx.try_reserve(len) {
            Ok(mut grant) => {
                grant.copy_from_slice(&msg);
                if commit {
                    grant.commit()
                } else {
                    return Ok(());
                }
            }
            Err(e) => Err(e),
        };
        self.after_send(r, msg)
    }

    fn after_send(&mut self, r: shmchan::Result<()>, msg: Vec<u8>) -> Result<(), TestCaseError> {
        let was_poisoned = self.tx_poisoned;
        match r {
            Ok(()) => {
                prop_assert!(!was_poisoned && !self.closed(), "send succeeded");
                self.sent.push(msg);
            }
            Err(Error::Corrupted { .. }) => {
                prop_assert!(self.ring_touched, "Corrupted with the ring untouched");
                self.tx_poisoned = true;
            }
            Err(e) => {
                prop_assert!(!was_poisoned, "a poisoned sender said {e:?}");
                match e {
                    Error::Removed { .. } => prop_assert!(self.closed(), "Removed, not closed"),
                    Error::Full | Error::Timeout => prop_assert!(!self.closed()),
                    other => prop_assert!(false, "send: {other:?}"),
                }
            }
        }
        Ok(())
    }

    fn after_recv(&mut self, r: shmchan::Result<Vec<u8>>) -> Result<(), TestCaseError> {
        let was_poisoned = self.rx_poisoned;
        match r {
            Ok(msg) => {
                prop_assert!(!was_poisoned && !self.closed(), "recv succeeded");
                prop_assert!(msg.len() <= MAX);
                if !self.ring_touched {
                    prop_assert_eq!(Some(&msg), self.sent.get(self.next), "in order");
                    self.next += 1;
                }
            }
            Err(Error::Corrupted { .. }) => {
                prop_assert!(self.ring_touched, "Corrupted with the ring untouched");
                self.rx_poisoned = true;
            }
            Err(e) => {
                prop_assert!(!was_poisoned, "a poisoned receiver said {e:?}");
                let queued = self.next < self.sent.len();
                match e {
                    Error::Removed { .. } => prop_assert!(self.closed(), "Removed, not closed"),
                    Error::Empty | Error::Timeout => {
                        prop_assert!(!self.closed());
                        prop_assert!(self.ring_touched || !queued, "{e:?} with messages queued");
                    }
                    other => prop_assert!(false, "recv: {other:?}"),
                }
            }
        }
        Ok(())
    }

    fn open_again(&mut self) -> Result<(), TestCaseError> {
        match Channel::open_id(self.shmid) {
            Ok(chan) => drop(chan),
            Err(
                Error::NotAChannel { .. }
                | Error::VersionMismatch { .. }
                | Error::Corrupted { .. }
                | Error::Removed { .. }
                | Error::NotFound { .. },
            ) => {}
            Err(other) => prop_assert!(false, "open_id: {other:?}"),
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn channel_survives_a_scribbling_third_party(ops in prop::collection::vec(op(), 1..120)) {
        start_watchdog("corruption_props");
        let mut world = World::new();
        for op in &ops {
            world.run(op)?;
            progress();
        }
    }
}
