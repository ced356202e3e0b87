//! Removing one channel without joining it (`shmchan rm`, and each
//! removal `gc` makes).

use std::sync::atomic::Ordering;

use super::{ChannelInfo, Kind, SegmentInfo, State, inspect};
use crate::channel::{
    Doing, SetOwner, View, close_gate, foreign_set, key_name, open_gate, os_error,
};
use crate::error::{Error, Result};
use crate::layout::sem;
use crate::sys::{self, Fail, Key, Mapping, SemSet};

/// What a removal took away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The segment id.
    pub shmid: i32,
    /// The segment's key ([`Key::PRIVATE`] for a private channel).
    pub key: Key,
    /// The channel's semaphore set, when it had one of its own that this
    /// removal took away.
    pub semid: Option<i32>,
    /// Committed bytes that were still queued, discarded with it.
    pub queued: u64,
}

/// How a conditional removal ended.
#[derive(Debug)]
pub(super) enum Verdict {
    Removed(Removed),
    /// The condition did not hold once the gate was shut: why.
    Kept(String),
}

/// Removes the channel with segment `shmid` (segment and semaphore set).
///
/// Refuses a segment that is not a shmchan channel, and a channel with a
/// live party unless `force`. Without `force` the last-out gate is closed
/// first, so no party can join while it goes; with `force` the channel is
/// marked closed first, so live parties get [`Error::Removed`].
///
/// A channel whose semaphore set is gone (or cannot be trusted) has no
/// party count: it is idle when no process has the segment attached.
///
/// # Errors
///
/// [`Error::NotFound`], [`Error::NotAChannel`], [`Error::Busy`] when a
/// party is alive and `force` is not set,
/// [`Error::PermissionDenied`] when this user may not remove it.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Error, Key, Options, admin};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).persist(true))?;
/// let id = chan.id();
/// drop(chan); // it persists, with no party left
/// let removed = admin::remove(id, false)?;
/// assert_eq!(removed.shmid, id);
/// // Gone; or, while another process has it attached for a look (a
/// // `shmchan ls` classifying every segment), marked removed until then.
/// assert!(match admin::inspect(id) {
///     Err(Error::NotFound { .. }) => true,
///     Ok(info) => info.removed,
///     Err(_) => false,
/// });
/// # Ok::<(), shmchan::Error>(())
/// ```
pub fn remove(shmid: i32, force: bool) -> Result<Removed> {
    match remove_unless(shmid, force, |_, _| None)? {
        Verdict::Removed(r) => Ok(r),
        Verdict::Kept(why) => Err(Error::Os {
            call: "remove",
            channel: format!("shmid {shmid}"),
            source: std::io::Error::other(why),
        }),
    }
}

/// Removes the channel unless `keep`, asked once nobody can join any more
/// (the gate is shut), gives a reason to keep it.
pub(super) fn remove_unless(
    shmid: i32,
    force: bool,
    keep: impl Fn(&SegmentInfo, &ChannelInfo) -> Option<String>,
) -> Result<Verdict> {
    let name = format!("shmid {shmid}");
    let seg = inspect(shmid)?;
    let chan = channel_of(&seg, &name)?;
    let (gate, holders) = shut_gate(&seg, &chan, &name)?;
    if let (Some(parties), false) = (holders, force) {
        return Err(Error::Busy {
            channel: key_name(seg.key, Some(shmid)),
            parties,
        });
    }
    // Read again now that the gate is shut: nobody can join meanwhile.
    let seg = inspect(shmid)?;
    let chan = channel_of(&seg, &name)?;
    if let Some(why) = keep(&seg, &chan) {
        return Ok(Verdict::Kept(why));
    }
    let removed = destroy(&seg, &chan, &name)?;
    drop(gate);
    Ok(Verdict::Removed(removed))
}

fn channel_of(seg: &SegmentInfo, name: &str) -> Result<ChannelInfo> {
    match &seg.kind {
        Kind::Channel(c) => Ok(c.clone()),
        Kind::Foreign { reason } | Kind::Unreadable { reason } => Err(Error::NotAChannel {
            channel: name.to_owned(),
            reason: reason.clone(),
        }),
    }
}

/// The channel's semaphore set, checked now (the id in the header is
/// untrusted, and ids can be reused once a set is gone): 4 + 2 per lane,
/// the segment's key (unless the segment lost it to a removal) and creator.
pub(super) fn own_set(seg: &SegmentInfo, chan: &ChannelInfo) -> Option<SemSet> {
    if !matches!(chan.state, State::Ok | State::Stale | State::Closed) {
        return None;
    }
    let set = SemSet::from_id(chan.semid);
    let owner = SetOwner::new(seg.key.raw(), seg.cuid, seg.removed, chan.lanes);
    foreign_set(set, &set.stat().ok()?, owner)
        .is_none()
        .then_some(set)
}

/// The last-out gate, shut by this removal: opened again on drop (which
/// fails harmlessly once the set is removed).
struct Gate(Option<SemSet>);

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(set) = self.0 {
            // An error means the set is gone: there is no gate left to open.
            let _ = open_gate(set);
        }
    }
}

/// Shuts the gate of a channel that has a set of its own, and says how
/// many hold the channel if it is not idle: its live parties, or, with no
/// set to count them, the processes attached.
fn shut_gate(seg: &SegmentInfo, chan: &ChannelInfo, name: &str) -> Result<(Gate, Option<u32>)> {
    if let Some(set) = own_set(seg, chan) {
        let Err(e) = close_gate(set) else {
            return Ok((Gate(Some(set)), None));
        };
        match Fail::of(&e) {
            Fail::WouldBlock => return Ok((Gate(None), Some(parties(set, chan)))),
            // Removed meanwhile: judge by the attaches, as below.
            Fail::Removed => {}
            _ => return Err(os_error(Doing::Other, "semop(close gate)", name, e)),
        }
    }
    let attached = u32::try_from(seg.nattch).unwrap_or(u32::MAX);
    Ok((Gate(None), (attached > 0).then_some(attached)))
}

/// The live parties of a channel whose gate would not shut (read again:
/// the count from inspection may be older than the refusal).
fn parties(set: SemSet, chan: &ChannelInfo) -> u32 {
    let now = set
        .get(sem::PARTIES)
        .ok()
        .and_then(|v| u32::try_from(v).ok());
    now.or(chan.parties).unwrap_or(0)
}

/// Marks the channel closed (so that parties see `Removed` on their fast
/// paths), then removes the segment and the channel's own set.
fn destroy(seg: &SegmentInfo, chan: &ChannelInfo, name: &str) -> Result<Removed> {
    let set = own_set(seg, chan);
    let was = set_closed(seg.shmid, 1);
    if let Err(e) = sys::shm_remove(seg.shmid) {
        if let Some(was) = was {
            set_closed(seg.shmid, was); // not ours to remove: leave it as it was
        }
        return Err(os_error(Doing::Other, "shmctl(IPC_RMID)", name, e));
    }
    // The set may be gone already (ipcrm -s); nothing else to remove then.
    let semid = set.filter(|s| s.remove().is_ok()).map(|s| s.id());
    Ok(Removed {
        shmid: seg.shmid,
        key: seg.key,
        semid,
        queued: chan.queued,
    })
}

/// Sets `closed` in the header through a read-write attach and returns its
/// old value. Best effort: without write permission the removal itself
/// still goes ahead.
fn set_closed(shmid: i32, closed: u32) -> Option<u32> {
    let view = View::new(Mapping::attach(shmid, false).ok()?).ok()?;
    // SYNC: pairs with the Acquire load in the parties' `check_open`.
    Some(view.header().control.closed.swap(closed, Ordering::AcqRel))
}
