//! Seeing and cleaning up channels without joining them: what `ipcs` and
//! `ipcrm` are to raw segments, for channels. Used by the `shmchan` command.
//!
//! Inspection attaches read-only and is not a party: it never keeps a
//! channel alive, never changes a byte, and never fails because one
//! segment is unreadable (that segment's entry says why).
//!
//! Removal ([`remove`], [`gc`]) closes the channel's last-out gate first,
//! the same gate its own last party uses, so that nobody can join a
//! channel while it goes and no two removers can race.

mod gc;
mod remove;
mod sysvipc;

pub use gc::{Found, GcEntry, GcOptions, Outcome, PRIVATE_SET_AGE, Scope, gc};
pub use remove::{Removed, remove};

use std::sync::atomic::Ordering;

/// The largest data capacity a channel can have (2 GiB): frame lengths are
/// 32-bit. [`Options::capacity`](crate::Options::capacity) rounds up to a
/// power of two and refuses more than this.
pub const MAX_CAPACITY: u64 = crate::layout::MAX_CAPACITY;

use crate::channel::{self, Doing, SetOwner, View, os_error};
use crate::error::{Error, Result};
use crate::layout::{
    Counters as SharedCounters, FLAG_MEMBARRIER, FLAG_PERSIST, Geometry, Header, sem,
};
use crate::sys::{self, Fail, Key, Mapping, SemSet, ShmStat};

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
    /// Group gid (the creator's, or the one
    /// [`Options::group`](crate::Options::group) gave it); with mode 0660
    /// its members may use the channel. [`group_name`] names it.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Current attaches (any process; not the party count).
    pub nattch: u64,
    /// Marked for removal (`ipcs` shows `dest`): it lives on, keyless,
    /// until its last detach.
    pub removed: bool,
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
    /// Semaphore set id (from the header, checked; -1 when unknown).
    pub semid: i32,
    /// Number of lanes: how many senders may be attached at once (0 when
    /// unknown).
    pub lanes: u32,
    /// Data capacity in bytes.
    pub capacity: u64,
    /// Largest message.
    pub max_message: u64,
    /// Whether it outlives its last party.
    pub persist: bool,
    /// Whether its sides use the asymmetric wake-up handshake (no hardware
    /// fence per message; `membarrier(2)` before a park) rather than a
    /// fence per message. See [`Options::membarrier`](crate::Options::membarrier).
    pub membarrier: bool,
    /// Committed bytes not yet received (frames and padding included).
    pub queued: u64,
    /// Whether those bytes hold at least one message (a lone padding
    /// frame is no message).
    pub has_messages: bool,
    /// Live parties (the PARTIES semaphore), if readable.
    pub parties: Option<u32>,
    /// The semaphore set's group gid, if readable. `create` gives the set
    /// the segment's group; a member of the segment's group whose set has
    /// another one can attach but not take part.
    pub sem_gid: Option<u32>,
    /// The sender role.
    pub sender: Presence,
    /// The receiver role.
    pub receiver: Presence,
    /// Creator's pid (informational: pids are reused).
    pub creator_pid: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Sender-side counters, added up over the lanes.
    pub sent: Counters,
    /// Each lane: its sender and what it holds (empty when unknown).
    pub lane_info: Vec<LaneInfo>,
    /// Receiver-side counters.
    pub received: Counters,
    /// Overall state.
    pub state: State,
}

/// One lane of a channel: a sender's ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneInfo {
    /// Whether a sender holds the lane now, held it, or never did.
    pub sender: Presence,
    /// The lane's session: how many senders have claimed it.
    pub sessions: u64,
    /// Committed bytes not yet received (frames and padding included).
    pub queued: u64,
    /// The counters of the lane's senders.
    pub sent: Counters,
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
    /// Its semaphore set is gone (removed with `ipcrm -s`, or by a removal
    /// that did not finish): nobody can use the channel any more.
    Orphaned,
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
    /// Parks that ran out (a deadline, or the 500 ms slice after which a
    /// parked side checks for removal) instead of being woken. On a busy
    /// channel without deadlines this stays 0: a count there is a wake-up
    /// that came late.
    pub expired: u64,
}

/// Every System V segment on the host (that this process can see), each
/// inspected; foreign ones included, marked as such.
///
/// # Errors
///
/// [`Error::Os`] only when `/proc/sysvipc/shm` cannot be read.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options, admin};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
/// let segments = admin::list()?; // what `ipcs -m` shows, each segment inspected
/// let mine = segments.iter().find(|s| s.shmid == chan.id()).expect("listed");
/// assert!(matches!(mine.kind, admin::Kind::Channel(_)));
/// # Ok::<(), shmchan::Error>(())
/// ```
pub fn list() -> Result<Vec<SegmentInfo>> {
    let ids = sysvipc::shm_ids()?;
    // A segment removed between the listing and its inspection is skipped.
    Ok(ids.into_iter().filter_map(|id| inspect(id).ok()).collect())
}

/// Inspects one segment without joining it.
///
/// # Errors
///
/// [`Error::NotFound`] when no segment has that id.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options, admin};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
/// let admin::Kind::Channel(info) = admin::inspect(chan.id())?.kind else {
///     panic!("not a channel");
/// };
/// assert_eq!(info.capacity, 4096);
/// assert_eq!(info.parties, Some(1)); // `chan`; inspecting is not a party
/// # Ok::<(), shmchan::Error>(())
/// ```
pub fn inspect(shmid: i32) -> Result<SegmentInfo> {
    let not_found = || Error::NotFound {
        channel: format!("shmid {shmid}"),
    };
    let st = match sys::shm_stat(shmid) {
        Ok(st) => st,
        Err(e) if Fail::of(&e) == Fail::Denied => {
            return unreadable(shmid, &e)?.ok_or_else(not_found);
        }
        Err(_) => return Err(not_found()),
    };
    let kind = match Mapping::attach(shmid, true) {
        Ok(mapping) => classify(mapping, &st),
        Err(e) => Kind::Unreadable {
            reason: format!("shmat: {e}"),
        },
    };
    Ok(SegmentInfo {
        shmid,
        key: Key::from_raw(st.key),
        size: st.size,
        uid: st.uid,
        gid: st.gid,
        cuid: st.cuid,
        mode: st.mode,
        nattch: st.nattch,
        removed: st.removed,
        kind,
    })
}

/// A segment this process may not even `IPC_STAT`: what the world-readable
/// listing says about it.
fn unreadable(shmid: i32, e: &std::io::Error) -> Result<Option<SegmentInfo>> {
    Ok(sysvipc::shm_row(shmid)?.map(|r| {
        let (mode, removed) = sys::split_mode(r.perms);
        SegmentInfo {
            shmid,
            key: Key::from_raw(r.key),
            size: r.size,
            uid: r.uid,
            gid: r.gid,
            cuid: r.cuid,
            mode,
            nattch: r.nattch,
            removed,
            kind: Kind::Unreadable {
                reason: format!("shmctl(IPC_STAT): {e}"),
            },
        }
    }))
}

/// The gid of the group named `name`, as `getgrnam_r(3)` finds it (every
/// source the host's name service configures, not only `/etc/group`);
/// `None` when no group has that name. For
/// [`Options::group`](crate::Options::group).
///
/// # Errors
///
/// [`Error::Os`] naming `getgrnam_r` when the name service fails (not
/// when it finds no such group).
///
/// # Examples
///
/// ```
/// use shmchan::admin;
///
/// assert_eq!(admin::group_id("no-such-group-here")?, None);
/// let gid = unsafe { libc::getegid() };
/// if let Some(name) = admin::group_name(gid) {
///     assert_eq!(admin::group_id(&name)?, Some(gid));
/// }
/// # Ok::<(), shmchan::Error>(())
/// ```
#[doc(alias = "getgrnam_r")]
pub fn group_id(name: &str) -> Result<Option<u32>> {
    sys::group_id(name)
        .map_err(|e| os_error(Doing::Other, "getgrnam_r", &format!("group {name}"), e))
}

/// The name of group `gid`, as `getgrgid_r(3)` finds it; `None` when the
/// group has no name (or the name service fails: this is for display,
/// where the number stands in).
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options, admin};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
/// let gid = admin::inspect(chan.id())?.gid; // the creator's group
/// let shown = admin::group_name(gid).unwrap_or_else(|| gid.to_string());
/// assert!(!shown.is_empty());
/// # Ok::<(), shmchan::Error>(())
/// ```
#[doc(alias = "getgrgid_r")]
pub fn group_name(gid: u32) -> Option<String> {
    sys::group_name(gid).ok().flatten()
}

/// The name of user `uid`, as `getpwuid_r(3)` finds it; `None` when the
/// user has no name (or the name service fails: this is for display, where
/// the number stands in).
///
/// # Examples
///
/// ```
/// use shmchan::admin;
///
/// assert_eq!(admin::user_name(0).as_deref(), Some("root"));
/// ```
#[doc(alias = "getpwuid_r")]
pub fn user_name(uid: u32) -> Option<String> {
    sys::user_name(uid).ok().flatten()
}

/// The segment id of the channel at `key`, found without joining it.
///
/// A key made by [`Key::ftok`] is checked against the path recorded in the
/// header: ftok keeps only part of the device and inode, so another path's
/// channel may sit at the same key.
///
/// # Errors
///
/// [`Error::NotFound`] when no segment has that key (always for
/// [`Key::PRIVATE`]: a private channel is named by its id),
/// [`Error::PermissionDenied`], [`Error::NotAChannel`] for an ftok
/// collision.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options, admin};
///
/// let path = std::env::temp_dir().join(format!("shmchan-doc-find-{}", std::process::id()));
/// std::fs::File::create(&path)?;
/// let key = Key::ftok(&path, b'F')?;
/// let chan = Channel::create(key, &Options::new().capacity(4096))?;
/// assert_eq!(admin::find(key)?, chan.id());
/// # drop(chan);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find(key: Key) -> Result<i32> {
    let name = key.to_string();
    if key.is_private() {
        return Err(Error::NotFound {
            channel: format!("{name} (a private channel is named by its shmid)"),
        });
    }
    let shmid =
        sys::shm_lookup(key.raw()).map_err(|e| os_error(Doing::Finding, "shmget", &name, e))?;
    check_origin(key, shmid, &name)?;
    Ok(shmid)
}

/// Refuses a channel whose header records another path than `key`'s.
fn check_origin(key: Key, shmid: i32, name: &str) -> Result<()> {
    let (Some(_), Ok(Ok(view))) = (key.origin(), Mapping::attach(shmid, true).map(View::new))
    else {
        return Ok(()); // nothing to compare: inspection reports the rest
    };
    let h = view.header();
    let recorded = match (h.check_magic(), h.is_ready()) {
        (Ok(true), true) => h.validate(view.len()).ok().and_then(|g| g.path),
        _ => None,
    };
    channel::check_origin(key, recorded, &format!("{name} (shmid {shmid})"))
}

fn classify(mapping: Mapping, st: &ShmStat) -> Kind {
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
        Ok(g) => Kind::Channel(describe(&view, &g, st)),
        Err(why) => Kind::Channel(blank_info(State::Corrupt(invalid_text(why)))),
    }
}

fn foreign(why: crate::layout::Invalid) -> Kind {
    Kind::Foreign {
        reason: invalid_text(why),
    }
}

fn invalid_text(why: crate::layout::Invalid) -> String {
    match why {
        crate::layout::Invalid::NotAChannel(r) => r,
        crate::layout::Invalid::Version(v) => format!("shmchan layout version {v}"),
        crate::layout::Invalid::Corrupt(r) => r,
    }
}

fn blank_info(state: State) -> ChannelInfo {
    ChannelInfo {
        semid: -1,
        lanes: 0,
        capacity: 0,
        max_message: 0,
        persist: false,
        membarrier: false,
        queued: 0,
        has_messages: false,
        parties: None,
        sem_gid: None,
        sender: Presence::Never,
        receiver: Presence::Never,
        creator_pid: 0,
        created: 0,
        sent: Counters::default(),
        lane_info: Vec::new(),
        received: Counters::default(),
        state,
    }
}

fn describe(view: &View, g: &Geometry, st: &ShmStat) -> ChannelInfo {
    let h = view.header();
    let set = SemSet::from_id(g.semid);
    let backlog = view.backlog(g);
    let c = &h.control;
    let mut info = ChannelInfo {
        semid: g.semid,
        lanes: g.lanes,
        capacity: g.capacity,
        max_message: g.max_message,
        persist: g.flags & FLAG_PERSIST != 0,
        membarrier: g.flags & FLAG_MEMBARRIER != 0,
        queued: backlog.queued,
        has_messages: backlog.has_messages,
        parties: None,
        sem_gid: None,
        sender: Presence::Never,
        receiver: Presence::Never,
        creator_pid: h.id.creator_pid.load(Ordering::Relaxed),
        created: h.id.created.load(Ordering::Relaxed),
        sent: sent_counters(view, g),
        lane_info: Vec::new(),
        received: counters(&h.rx.counters),
        state: State::Ok,
    };
    info.state = match backlog.corrupt {
        Some(what) => State::Corrupt(what),
        None => set_state(set, st, g.lanes),
    };
    if info.state == State::Ok || info.state == State::Stale {
        // Only a set that belongs to the channel is read: the id in the
        // header is untrusted.
        info.parties = set.get(sem::PARTIES).ok().map(|v| v as u32);
        info.sem_gid = set.stat().ok().map(|st| st.gid);
        info.sender = sender_presence(set, g.lanes, c.tx_connects.load(Ordering::Relaxed));
        info.lane_info = lanes(view, g, set);
        info.receiver = presence(set, sem::RX_ALIVE, c.rx_connects.load(Ordering::Relaxed));
        // SYNC: pairs with the Release store of closed by a remover.
        if c.closed.load(Ordering::Acquire) != 0 {
            info.state = State::Closed;
        } else if info.parties == Some(0) {
            info.state = State::Stale;
        }
    }
    info
}

/// What the semaphore set says: `Ok` when it belongs to the channel (the
/// caller then reads the party count), or why not. A segment marked for
/// removal has lost its key, so only the creator is compared then.
fn set_state(set: SemSet, seg: &ShmStat, lanes: u32) -> State {
    match set.stat() {
        Ok(st) => {
            let owner = SetOwner::new(seg.key, seg.cuid, seg.removed, lanes);
            channel::foreign_set(set, &st, owner).map_or(State::Ok, State::Corrupt)
        }
        Err(e) if Fail::of(&e) == Fail::Removed => State::Orphaned,
        Err(e) => State::Corrupt(format!("semaphore set {}: {e}", set.id())),
    }
}

fn presence(set: SemSet, alive: u16, connects: u64) -> Presence {
    match set.get(alive) {
        Ok(v) if v > 0 => Presence::Attached,
        _ if connects > 0 => Presence::Gone,
        _ => Presence::Never,
    }
}

/// Whether a sender is attached to any lane, was, or never was.
fn sender_presence(set: SemSet, lanes: u32, connects: u64) -> Presence {
    let alive =
        (0..lanes as u16).any(|lane| matches!(set.get(sem::tx_alive(lane)), Ok(v) if v > 0));
    match () {
        () if alive => Presence::Attached,
        () if connects > 0 => Presence::Gone,
        () => Presence::Never,
    }
}

/// What each lane holds and who holds it.
fn lanes(view: &View, g: &Geometry, set: SemSet) -> Vec<LaneInfo> {
    View::lanes(g)
        .map(|lane| {
            let l = view.lane(g, lane);
            // SYNC: pair with the Release stores of head and tail in the
            // ring (a snapshot for display).
            let head = l.rx.index.load(Ordering::Acquire);
            let tail = l.tx.index.load(Ordering::Acquire);
            let sessions = l.tx.session.load(Ordering::Relaxed);
            let sender = match set.get(sem::tx_alive(lane)) {
                Ok(v) if v > 0 => Presence::Attached,
                _ if sessions > 0 => Presence::Gone,
                _ => Presence::Never,
            };
            LaneInfo {
                sender,
                sessions,
                queued: tail.saturating_sub(head),
                sent: counters(&l.tx.counters),
            }
        })
        .collect()
}

/// The senders' counters, added up over the lanes.
fn sent_counters(view: &View, g: &Geometry) -> Counters {
    let mut total = Counters::default();
    for lane in View::lanes(g) {
        let c = counters(&view.lane(g, lane).tx.counters);
        total.messages = total.messages.wrapping_add(c.messages);
        total.bytes = total.bytes.wrapping_add(c.bytes);
        total.stalls = total.stalls.wrapping_add(c.stalls);
        total.parks = total.parks.wrapping_add(c.parks);
        total.wakes = total.wakes.wrapping_add(c.wakes);
        total.expired = total.expired.wrapping_add(c.expired);
    }
    total
}

fn counters(c: &SharedCounters) -> Counters {
    Counters {
        messages: c.messages.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        stalls: c.stalls.load(Ordering::Relaxed),
        parks: c.parks.load(Ordering::Relaxed),
        wakes: c.wakes.load(Ordering::Relaxed),
        expired: c.expired.load(Ordering::Relaxed),
    }
}

/// The semaphore set id that a segment's header names, whatever state the
/// header is in (`None` when the segment is unreadable or not a shmchan
/// header). For finding orphaned sets: a set named here is not one.
fn named_semid(shmid: i32) -> Option<i32> {
    let view = View::new(Mapping::attach(shmid, true).ok()?).ok()?;
    let h: &Header = view.header();
    match h.check_magic() {
        Ok(true) => Some(h.id.semid.load(Ordering::Relaxed) as i32),
        _ => None,
    }
}
