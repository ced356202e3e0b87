//! `gc`: removing what nobody will use again: stale channels (no party
//! alive, not persisting), channel segments whose semaphore set is gone,
//! and semaphore sets whose channel is gone.
//!
//! Conservative by design: a semaphore set is only ever taken for an
//! orphan when it has the shape of a channel's set (4 + 2 per lane, every
//! role and party count at zero), was created by this user, and no
//! segment claims it: for a keyed set, no segment has its key; for a
//! private one, no shmchan header names it and it is older than
//! [`PRIVATE_SET_AGE`] (a channel being created makes its set a moment
//! before its header names it).

use std::collections::HashSet;

use super::remove::{Verdict, remove_unless};
use super::sysvipc::{self, SemRow};
use super::{ChannelInfo, Kind, SegmentInfo, State};
use crate::channel::channel_shaped;
use crate::error::{Error, Result};
use crate::layout::sem;
use crate::sys::{self, Fail, Key, SemSet};

/// A private semaphore set must be at least this old (seconds since its
/// creation or last `semctl` change) to be taken for an orphan.
pub const PRIVATE_SET_AGE: u64 = 10;

/// What [`gc`] may remove.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Also remove stale channels that still hold messages.
    pub queued: bool,
    /// Change nothing; report what would be removed.
    pub dry_run: bool,
    /// Only these channels and sets (`None`: the whole host).
    pub scope: Option<Scope>,
}

/// Limits [`gc`] to some keys and segment ids.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Segments and semaphore sets with these keys.
    pub keys: Vec<Key>,
    /// Segments with these ids.
    pub shmids: Vec<i32>,
}

impl Scope {
    fn has_segment(&self, seg: &SegmentInfo) -> bool {
        self.shmids.contains(&seg.shmid) || (!seg.key.is_private() && self.keys.contains(&seg.key))
    }

    fn has_set(&self, row: &SemRow) -> bool {
        row.key != 0 && self.keys.contains(&Key::from_raw(row.key))
    }
}

/// Something [`gc`] looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// A channel with no party alive, or whose semaphore set is gone
    /// (`orphaned`).
    Channel {
        /// Segment id.
        shmid: i32,
        /// Key.
        key: Key,
        /// Its semaphore set, if it still has one.
        semid: Option<i32>,
        /// Committed bytes still queued.
        queued: u64,
        /// Whether its semaphore set is gone.
        orphaned: bool,
    },
    /// A semaphore set left behind by a channel that is gone.
    OrphanSet {
        /// Set id.
        semid: i32,
        /// Key.
        key: Key,
    },
}

/// What [`gc`] did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Removed.
    Removed,
    /// Would be removed (dry run).
    WouldRemove,
    /// Left alone, and why.
    Kept(String),
    /// The removal failed, and why.
    Failed(String),
}

/// One line of [`gc`]'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcEntry {
    /// What was found.
    pub found: Found,
    /// What became of it.
    pub outcome: Outcome,
}

/// Removes every stale channel that does not persist and holds no message
/// (with `queued`, also those that do), every channel segment whose
/// semaphore set is gone and that nobody has attached, and every
/// semaphore set orphaned by a removed channel. Stale channels that are
/// kept are reported with the reason.
///
/// # Errors
///
/// [`Error::Os`] only when `/proc/sysvipc` cannot be read; a failed
/// removal is reported in its entry.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options, admin};
///
/// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
/// chan.sender()?.send(b"unread")?;
/// let id = chan.id();
/// drop(chan); // stale: no party left, kept for the message it holds
/// let scope = Some(admin::Scope { shmids: vec![id], ..Default::default() }); // this one only
/// let report = admin::gc(&admin::GcOptions { queued: true, scope, ..Default::default() })?;
/// assert!(matches!(report[0].outcome, admin::Outcome::Removed));
/// # Ok::<(), shmchan::Error>(())
/// ```
pub fn gc(opts: &GcOptions) -> Result<Vec<GcEntry>> {
    // Sets first: a channel's segment is made before its set, so every set
    // listed here whose channel still exists has its segment listed below.
    let sets = sysvipc::sem_rows()?;
    let segs = super::list()?;
    let in_scope = |s: &SegmentInfo| opts.scope.as_ref().is_none_or(|sc| sc.has_segment(s));
    let mut out: Vec<GcEntry> = segs
        .iter()
        .filter(|s| in_scope(s))
        .filter_map(|s| channel_entry(s, opts))
        .collect();
    out.extend(orphan_sets(&sets, &segs, opts));
    Ok(out)
}

/// A stale or orphaned channel's entry; `None` for anything else.
fn channel_entry(seg: &SegmentInfo, opts: &GcOptions) -> Option<GcEntry> {
    let Kind::Channel(chan) = &seg.kind else {
        return None;
    };
    let orphaned = chan.state == State::Orphaned;
    if !orphaned && chan.state != State::Stale {
        return None;
    }
    let found = Found::Channel {
        shmid: seg.shmid,
        key: seg.key,
        semid: (!orphaned).then_some(chan.semid),
        queued: chan.queued,
        orphaned,
    };
    let outcome = match keep_reason(seg, chan, opts.queued) {
        Some(why) => Outcome::Kept(why),
        None if opts.dry_run => Outcome::WouldRemove,
        None => collect(seg.shmid, opts.queued)?,
    };
    Some(GcEntry { found, outcome })
}

/// Why a stale or orphaned channel stays, if it does.
fn keep_reason(seg: &SegmentInfo, chan: &ChannelInfo, queued: bool) -> Option<String> {
    if !matches!(chan.state, State::Stale | State::Orphaned) {
        return Some("a party joined meanwhile".into());
    }
    if chan.persist {
        return Some("it persists (shmchan rm removes it)".into());
    }
    if chan.has_messages && !queued {
        return Some(format!(
            "{} bytes still queued (--queued removes it)",
            chan.queued
        ));
    }
    if chan.state == State::Orphaned && seg.nattch > 0 {
        return Some(format!("attached by {} processes", seg.nattch));
    }
    None
}

/// Removes one channel, checking again once its gate is shut. `None` when
/// it vanished meanwhile.
fn collect(shmid: i32, queued: bool) -> Option<Outcome> {
    let keep = |seg: &SegmentInfo, chan: &ChannelInfo| keep_reason(seg, chan, queued);
    match remove_unless(shmid, false, keep) {
        Ok(Verdict::Removed(_)) => Some(Outcome::Removed),
        Ok(Verdict::Kept(why)) => Some(Outcome::Kept(why)),
        Err(Error::NotFound { .. }) => None,
        Err(Error::Busy { .. }) => Some(Outcome::Kept("a party joined meanwhile".into())),
        // Another user's channel: not ours to remove, and no failure of gc.
        Err(e @ Error::PermissionDenied { .. }) => Some(Outcome::Kept(e.to_string())),
        Err(e) => Some(Outcome::Failed(e.to_string())),
    }
}

fn orphan_sets(sets: &[SemRow], segs: &[SegmentInfo], opts: &GcOptions) -> Vec<GcEntry> {
    let named: HashSet<i32> = segs
        .iter()
        .filter_map(|s| super::named_semid(s.shmid))
        .collect();
    let me = sys::euid();
    // A segment of ours that cannot be read might name a private set.
    let blind = segs
        .iter()
        .any(|s| s.cuid == me && matches!(s.kind, Kind::Unreadable { .. }));
    let in_scope = |r: &SemRow| opts.scope.as_ref().is_none_or(|sc| sc.has_set(r));
    sets.iter()
        .filter(|r| in_scope(r) && is_orphan(r, &named, blind))
        .map(|r| orphan_entry(r, &named, blind, opts.dry_run))
        .collect()
}

/// Whether a set is a channel's set whose channel is gone.
fn is_orphan(r: &SemRow, named: &HashSet<i32>, blind: bool) -> bool {
    if !channel_shaped(r.nsems) || r.cuid != sys::euid() || named.contains(&r.semid) {
        return false;
    }
    let set = SemSet::from_id(r.semid);
    let lanes = ((r.nsems - 4) / 2) as u16;
    let mut counts = vec![sem::RX_ALIVE, sem::PARTIES, sem::CLOSING];
    counts.extend((0..lanes).map(sem::tx_alive));
    if !counts.iter().all(|&n| matches!(set.get(n), Ok(0))) {
        return false;
    }
    if r.key != 0 {
        return matches!(sys::shm_lookup(r.key), Err(e) if Fail::of(&e) == Fail::NotFound);
    }
    !blind && sys::unix_now().saturating_sub(r.ctime) >= PRIVATE_SET_AGE
}

fn orphan_entry(r: &SemRow, named: &HashSet<i32>, blind: bool, dry_run: bool) -> GcEntry {
    let set = SemSet::from_id(r.semid);
    let outcome = if dry_run {
        Outcome::WouldRemove
    } else if !is_orphan(r, named, blind) {
        Outcome::Kept("in use again".into()) // checked again just before
    } else {
        match set.remove() {
            Ok(()) => Outcome::Removed,
            Err(e) => Outcome::Failed(format!("semctl(IPC_RMID): {e}")),
        }
    };
    GcEntry {
        found: Found::OrphanSet {
            semid: r.semid,
            key: Key::from_raw(r.key),
        },
        outcome,
    }
}
