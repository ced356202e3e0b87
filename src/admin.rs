//! Seeing and cleaning up channels without joining them: what `ipcs` and
//! `ipcrm` are to raw segments, for channels. Used by the `shmchan` command.
//!
//! Inspection attaches read-only and is not a party: it never keeps a
//! channel alive, never changes a byte, and never fails because one
//! segment is unreadable (that segment's entry says why).

use std::sync::atomic::Ordering;

use crate::channel::close_gate;
use crate::error::{Error, Result};
use crate::layout::{Counters as SharedCounters, FLAG_PERSIST, Header, View, sem};
use crate::ring::check_span;
use crate::sys::{self, Key, Mapping, SemSet};

/// One System V segment, as inspection found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment id.
    pub shmid: i32,
    /// Key (0 for private or removed segments).
    pub key: Key,
    /// Size in bytes.
    pub size: usize,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Current attaches (any process; not the party count).
    pub nattch: u64,
    /// What the segment is.
    pub kind: Kind,
}

/// What a segment is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A shmchan channel.
    Channel(ChannelInfo),
    /// Some other program's segment.
    Foreign {
        /// What gave it away.
        reason: String,
    },
    /// Could not be read (permissions, removed meanwhile).
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// A channel's state, read from its header and semaphores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Semaphore set id (from the header, checked).
    pub semid: i32,
    /// Data capacity in bytes.
    pub capacity: u64,
    /// Largest message.
    pub max_message: u64,
    /// Whether it outlives its last party.
    pub persist: bool,
    /// Committed bytes not yet received.
    pub queued: u64,
    /// Live parties (the PARTIES semaphore), if readable.
    pub parties: Option<u32>,
    /// The sender role.
    pub sender: Presence,
    /// The receiver role.
    pub receiver: Presence,
    /// Creator's pid (informational: pids are reused).
    pub creator_pid: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Sender-side counters.
    pub sent: Counters,
    /// Receiver-side counters.
    pub received: Counters,
    /// Overall state.
    pub state: State,
}

/// Whether a role is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// A live handle holds it.
    Attached,
    /// It was held, and its holder is gone (dropped or died).
    Gone,
    /// Nobody ever held it.
    Never,
}

/// Overall state of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// At least one live party.
    Ok,
    /// No party alive (the bytes still queued are in `queued`).
    Stale,
    /// The creator has not finished (or died while) initialising it.
    Initialising,
    /// Marked closed by a removal in progress.
    Closed,
    /// The header or semaphore set fails validation.
    Corrupt(String),
}

/// One side's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages committed (sender) or received (receiver).
    pub messages: u64,
    /// Payload bytes of those.
    pub bytes: u64,
    /// Times the side found the ring full (sender) or empty (receiver).
    pub stalls: u64,
    /// Times the side parked on its semaphore.
    pub parks: u64,
    /// Times the side woke its peer.
    pub wakes: u64,
}

/// Every System V segment on the host (that this process can see), each
/// inspected; foreign ones included, marked as such.
///
/// # Errors
///
/// [`Error::Os`] only when `/proc/sysvipc/shm` cannot be read.
pub fn list() -> Result<Vec<SegmentInfo>> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").map_err(|e| Error::Os {
        call: "read",
        channel: "/proc/sysvipc/shm".into(),
        source: e,
    })?;
    let ids = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<i32>().ok());
    Ok(ids.filter_map(|id| inspect(id).ok()).collect())
}

/// Inspects one segment without joining it.
///
/// # Errors
///
/// [`Error::NotFound`] when no segment has that id.
pub fn inspect(shmid: i32) -> Result<SegmentInfo> {
    let st = sys::shm_stat(shmid).map_err(|_| Error::NotFound {
        channel: format!("shmid {shmid}"),
    })?;
    let kind = match Mapping::attach(shmid, true) {
        Ok(mapping) => classify(mapping),
        Err(e) => Kind::Unreadable {
            reason: format!("shmat: {e}"),
        },
    };
    Ok(SegmentInfo {
        shmid,
        key: Key::from_raw(st.key),
        size: st.size,
        uid: st.uid,
        mode: st.mode,
        nattch: st.nattch,
        kind,
    })
}

fn classify(mapping: Mapping) -> Kind {
    let view = match View::new(mapping) {
        Ok(v) => v,
        Err(why) => return foreign(why),
    };
    let h = view.header();
    match h.check_magic() {
        Ok(true) => {}
        Ok(false) => {
            return Kind::Foreign {
                reason: "blank (no shmchan header)".into(),
            };
        }
        Err(why) => return foreign(why),
    }
    if !h.is_ready() {
        return Kind::Channel(blank_info(State::Initialising));
    }
    match h.validate(view.len()) {
        Ok(g) => Kind::Channel(describe(h, g.semid, g.capacity, g.flags)),
        Err(why) => Kind::Channel(blank_info(State::Corrupt(format!("{why:?}")))),
    }
}

fn foreign(why: crate::layout::Invalid) -> Kind {
    Kind::Foreign {
        reason: match why {
            crate::layout::Invalid::NotAChannel(r) => r,
            crate::layout::Invalid::Version(v) => format!("shmchan layout version {v}"),
            crate::layout::Invalid::Corrupt(r) => r,
        },
    }
}

fn blank_info(state: State) -> ChannelInfo {
    ChannelInfo {
        semid: -1,
        capacity: 0,
        max_message: 0,
        persist: false,
        queued: 0,
        parties: None,
        sender: Presence::Never,
        receiver: Presence::Never,
        creator_pid: 0,
        created: 0,
        sent: Counters::default(),
        received: Counters::default(),
        state,
    }
}

fn describe(h: &Header, semid: i32, capacity: u64, flags: u32) -> ChannelInfo {
    let set = SemSet::from_id(semid);
    let head = h.rx.index.load(Ordering::Acquire);
    let tail = h.tx.index.load(Ordering::Acquire);
    let c = &h.control;
    let mut info = ChannelInfo {
        semid,
        capacity,
        max_message: h.id.max_message.load(Ordering::Relaxed),
        persist: flags & FLAG_PERSIST != 0,
        queued: tail.saturating_sub(head),
        parties: set.get(sem::PARTIES).ok().map(|v| v as u32),
        sender: presence(set, sem::TX_ALIVE, c.tx_connects.load(Ordering::Relaxed)),
        receiver: presence(set, sem::RX_ALIVE, c.rx_connects.load(Ordering::Relaxed)),
        creator_pid: h.id.creator_pid.load(Ordering::Relaxed),
        created: h.id.created.load(Ordering::Relaxed),
        sent: counters(&h.tx.counters),
        received: counters(&h.rx.counters),
        state: State::Ok,
    };
    info.state = if let Err(c) = check_span(head, tail, capacity) {
        State::Corrupt(c.0)
    } else if c.closed.load(Ordering::Acquire) != 0 {
        State::Closed
    } else {
        match (set.stat(), info.parties) {
            (Ok(st), _) if st.nsems != u64::from(sem::COUNT) => {
                State::Corrupt(format!("semaphore set {semid} has {} semaphores", st.nsems))
            }
            (Err(e), _) => State::Corrupt(format!("semaphore set {semid}: {e}")),
            (Ok(_), Some(0)) => State::Stale,
            (Ok(_), _) => State::Ok,
        }
    };
    info
}

fn presence(set: SemSet, alive: u16, connects: u64) -> Presence {
    match set.get(alive) {
        Ok(v) if v > 0 => Presence::Attached,
        _ if connects > 0 => Presence::Gone,
        _ => Presence::Never,
    }
}

fn counters(c: &SharedCounters) -> Counters {
    Counters {
        messages: c.messages.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        stalls: c.stalls.load(Ordering::Relaxed),
        parks: c.parks.load(Ordering::Relaxed),
        wakes: c.wakes.load(Ordering::Relaxed),
    }
}

/// Removes the channel with segment `shmid` (segment and semaphore set).
///
/// Refuses a segment that is not a shmchan channel, and a channel with a
/// live party unless `force`. Without `force` the last-out gate is closed
/// first, so no party can join while it goes; with `force` the channel is
/// marked closed first, so live parties get [`Error::Removed`].
///
/// # Errors
///
/// [`Error::NotFound`], [`Error::NotAChannel`], [`Error::Os`] with `EBUSY`
/// when a party is alive and `force` is not set,
/// [`Error::PermissionDenied`] when this user may not remove it.
pub fn remove(shmid: i32, force: bool) -> Result<()> {
    let name = format!("shmid {shmid}");
    let chan = match inspect(shmid)?.kind {
        Kind::Channel(c) => c,
        Kind::Foreign { reason } | Kind::Unreadable { reason } => {
            return Err(Error::NotAChannel {
                channel: name,
                reason,
            });
        }
    };
    let set = SemSet::from_id(chan.semid);
    let idle = chan.state == State::Initialising || chan.semid < 0 || close_gate(set).is_ok();
    if !force && !idle {
        return Err(Error::Os {
            call: "remove",
            channel: name,
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        });
    }
    set_closed(shmid, 1);
    if let Err(e) = sys::shm_remove(shmid) {
        set_closed(shmid, 0); // not ours to remove: leave it as it was
        return Err(crate::channel::os_error("shmctl(IPC_RMID)", &name, e));
    }
    if chan.semid >= 0 {
        let _ = set.remove(); // may be gone already (ipcrm -s)
    }
    Ok(())
}

/// Sets `closed` in the header through a read-write attach, so that live
/// parties see `Removed` on their fast paths. Best effort: without write
/// permission the removal itself still goes ahead.
fn set_closed(shmid: i32, closed: u32) {
    if let Ok(Ok(view)) = Mapping::attach(shmid, false).map(View::new) {
        // SYNC: pairs with the Acquire load in the parties' `check_open`.
        view.header()
            .control
            .closed
            .store(closed, Ordering::Release);
    }
}
