//! Making and finding channels: create (with cleanup of anything half
//! made), open by key or id (with every check of the header and the
//! semaphore set), and replacing a stale channel.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Options;
use super::party::{Party, close_gate};
use super::shared::{Doing, Shared, os_error};
use super::view::View;
use crate::error::{Error, Result};
use crate::layout::{
    FLAG_MEMBARRIER, FLAG_PERSIST, Identify, Invalid, MAX_CAPACITY, MAX_SENDERS, header_size,
    round_capacity, sem,
};
use crate::sys::{self, Fail, Key, Mapping, Perm, SemSet, SemStat, ShmStat};

/// How long `open` waits for a creator to finish the header.
const READY_PATIENCE: Duration = Duration::from_secs(2);
/// How long a blank header with nobody else attached is given to show a
/// creator's magic (it is written right after the creator's shmat).
const BLANK_PATIENCE: Duration = Duration::from_millis(100);

/// Creates a channel and joins it as the first party.
pub(super) fn create(key: Key, options: &Options) -> Result<Party> {
    let name = key_name(key, None);
    let capacity = round_capacity(options.capacity as u64).ok_or_else(|| Error::Os {
        call: "shmget",
        channel: name.clone(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "capacity {} exceeds the maximum of {MAX_CAPACITY} bytes",
                options.capacity
            ),
        ),
    })?;
    let lanes = check_senders(options.max_senders, &name)?;
    let size = header_size(lanes) + u64::from(lanes) * capacity;
    let size = usize::try_from(size).map_err(|_| invalid_input(&name, "shmget", "too large"))?;
    let shmid = create_segment(key, size, options, &name)?;
    let mut undo = Undo {
        shmid: Some(shmid),
        sem: None,
    };
    let name = key_name(key, Some(shmid));
    let view = attach(shmid, &name)?;
    view.header().identify(&Identify {
        capacity,
        max_senders: lanes,
        semid: 0,
        key: key.raw(),
        mode: options.mode,
        flags: flags(options),
        path: key.origin().map(|o| (o.dev, o.ino)),
        creator_pid: sys::pid(),
        creator_uid: sys::euid(),
        created: sys::unix_now(),
    });
    let count = sem::count(lanes as u16);
    let sem = create_sems(key, count, first_mode(options), &name)?;
    undo.sem = Some(sem);
    sem.set_all(&mut vec![0; usize::from(count)])
        .map_err(|e| os_error(Doing::Other, "semctl(SETALL)", &name, e))?;
    if let Some(gid) = options.group {
        give_group(shmid, sem, gid, options.mode, &name)?;
    }
    view.header().set_semid(sem.id());
    let geometry = view
        .header()
        .validate(view.len())
        .map_err(|i| invalid(&name, i))?;
    let shared = Arc::new(Shared {
        view,
        sem,
        shmid,
        key,
        geometry,
        name,
    });
    let party = Party::join(Arc::clone(&shared))?;
    shared.header().publish_ready();
    undo.disarm();
    Ok(party)
}

/// The header's flags for `options`. The asymmetric handshake is chosen
/// only if this process can register for `membarrier`: the kernel has it
/// and no filter refuses it.
fn flags(options: &Options) -> u32 {
    let mut flags = 0;
    if options.persist {
        flags |= FLAG_PERSIST;
    }
    if options.membarrier && sys::membarrier::register().is_ok() {
        flags |= FLAG_MEMBARRIER;
    }
    flags
}

/// The mode the objects are made with. With a group to give, only the
/// owner's bits, until [`give_group`] sets group and mode together: an
/// attach made under the creator's own group in between would keep its
/// access after the change (`shmat` checks permissions once).
fn first_mode(options: &Options) -> u32 {
    match options.group {
        Some(_) => options.mode & 0o700,
        None => options.mode,
    }
}

/// Gives both objects group `gid` and permission bits `mode` (`IPC_SET`),
/// the creator staying the owner. Done before the header turns ready, so
/// that nobody opens a channel whose permissions are half set.
fn give_group(shmid: i32, sem: SemSet, gid: u32, mode: u32, name: &str) -> Result<()> {
    let perm = Perm {
        uid: sys::euid(),
        gid,
        mode,
    };
    sys::shm_set_perm(shmid, perm)
        .map_err(|e| os_error(Doing::Other, "shmctl(IPC_SET)", name, e))?;
    sem.set_perm(perm)
        .map_err(|e| os_error(Doing::Other, "semctl(IPC_SET)", name, e))
}

fn create_segment(key: Key, size: usize, options: &Options, name: &str) -> Result<i32> {
    let mut tries = 0;
    loop {
        match sys::shm_create(key.raw(), size, first_mode(options)) {
            Ok(id) => return Ok(id),
            Err(e) if Fail::of(&e) == Fail::Exists => {
                if !options.replace_stale || tries == 3 {
                    return Err(Error::AlreadyExists {
                        channel: name.to_owned(),
                    });
                }
                tries += 1;
                replace_stale(key, name)?;
            }
            Err(e) => return Err(os_error(Doing::Other, "shmget", name, e)),
        }
    }
}

/// `max_senders` checked: 1 to [`MAX_SENDERS`], and few enough that a
/// receiver's attach (one `semop` of 2 + 2 per lane operations) fits this
/// kernel's SEMOPM.
fn check_senders(senders: u32, name: &str) -> Result<u32> {
    if !(1..=MAX_SENDERS).contains(&senders) {
        let why = format!("max_senders {senders} is not within 1 to {MAX_SENDERS}");
        return Err(invalid_input(name, "shmget", &why));
    }
    let ops = 2 + 2 * senders as usize;
    match sys::semopm() {
        Some(max) if ops > max => {
            let why = format!(
                "max_senders {senders} needs {ops} operations in one semop, \
                 above this kernel's SEMOPM of {max} (sysctl kernel.sem, third field)"
            );
            Err(invalid_input(name, "semop", &why))
        }
        _ => Ok(senders),
    }
}

/// An `Error::Os` for a request the caller got wrong.
fn invalid_input(name: &str, call: &'static str, why: &str) -> Error {
    Error::Os {
        call,
        channel: name.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()),
    }
}

/// Creates the semaphore set; an orphan set left at the key by a channel
/// whose segment is gone (no party alive) is removed first.
fn create_sems(key: Key, count: u16, mode: u32, name: &str) -> Result<SemSet> {
    match SemSet::create(key.raw(), count, mode) {
        Err(e) if Fail::of(&e) == Fail::Exists => {
            remove_orphan_sems(key, name)?;
            SemSet::create(key.raw(), count, mode)
        }
        r => r,
    }
    .map_err(|e| os_error(Doing::Other, "semget", name, e))
}

fn remove_orphan_sems(key: Key, name: &str) -> Result<()> {
    let exists = || Error::AlreadyExists {
        channel: format!("a semaphore set at {name}"),
    };
    let set = match SemSet::lookup(key.raw()) {
        Ok(set) => set,
        Err(_) => return Ok(()), // gone meanwhile
    };
    let st = set
        .stat()
        .map_err(|e| os_error(Doing::Other, "semctl(IPC_STAT)", name, e))?;
    // Only a set of our shape, made by this user, with no party: another
    // program's set at the same key is never touched.
    let ours = channel_shaped(st.nsems) && st.cuid == sys::euid();
    if !ours || set.get(sem::PARTIES).map_err(|_| exists())? != 0 {
        return Err(exists());
    }
    set.remove()
        .map_err(|e| os_error(Doing::Other, "semctl(IPC_RMID)", name, e))
}

/// Removes what a failed `create` made.
struct Undo {
    shmid: Option<i32>,
    sem: Option<SemSet>,
}

impl Undo {
    fn disarm(&mut self) {
        self.shmid = None;
        self.sem = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        // Errors are ignored: these objects are ours, just made, and a
        // failure to remove one (already gone) leaves nothing to do.
        if let Some(id) = self.shmid {
            let _ = sys::shm_remove(id);
        }
        if let Some(set) = self.sem {
            let _ = set.remove();
        }
    }
}

/// Finds the segment of `key` and opens it.
pub(super) fn open_key(key: Key) -> Result<Arc<Shared>> {
    let name = key_name(key, None);
    if key.is_private() {
        // shmget(IPC_PRIVATE) would create, never find.
        return Err(Error::NotFound { channel: name });
    }
    let shmid =
        sys::shm_lookup(key.raw()).map_err(|e| os_error(Doing::Finding, "shmget", &name, e))?;
    open_id(shmid, Some(key))
}

/// Attaches segment `shmid` and checks everything before trusting it.
pub(super) fn open_id(shmid: i32, key: Option<Key>) -> Result<Arc<Shared>> {
    let name = key.map_or_else(|| format!("shmid {shmid}"), |k| key_name(k, Some(shmid)));
    let st =
        sys::shm_stat(shmid).map_err(|e| os_error(Doing::Finding, "shmctl(IPC_STAT)", &name, e))?;
    if st.removed {
        return Err(Error::NotFound { channel: name });
    }
    let view = attach(shmid, &name)?;
    wait_ready(&view, shmid, &name)?;
    let geometry = view
        .header()
        .validate(view.len())
        .map_err(|i| invalid(&name, i))?;
    let key = key.unwrap_or(Key::from_raw(st.key));
    check_origin(key, geometry.path, &name)?;
    let sem = SemSet::from_id(geometry.semid);
    check_sems(sem, &st, geometry.lanes, &name)?;
    let shared = Shared {
        view,
        sem,
        shmid,
        key,
        geometry,
        name,
    };
    if shared.check_open().is_err() {
        return Err(Error::NotFound {
            channel: shared.name,
        });
    }
    Ok(Arc::new(shared))
}

fn attach(shmid: i32, name: &str) -> Result<View> {
    let mapping =
        Mapping::attach(shmid, false).map_err(|e| os_error(Doing::Finding, "shmat", name, e))?;
    View::new(mapping).map_err(|i| invalid(name, i))
}

/// Waits for a creator to finish the header; a creator that died while
/// initialising (nobody else attached) is reported at once.
fn wait_ready(view: &View, shmid: i32, name: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let h = view.header();
        let has_magic = h.check_magic().map_err(|i| invalid(name, i))?;
        if has_magic && h.is_ready() {
            return Ok(());
        }
        // A creator attaches right after shmget and writes the magic at
        // once: a blank header alone for BLANK_PATIENCE is nobody's channel.
        let alone = sys::shm_stat(shmid).map_or(true, |st| st.nattch <= 1);
        let given_up = if has_magic {
            alone
        } else {
            alone && start.elapsed() > BLANK_PATIENCE
        };
        if given_up || start.elapsed() > READY_PATIENCE {
            let reason = if has_magic {
                "its creator never finished initialising it (died?); \
                 create with replace_stale to replace it"
            } else {
                "its header is blank"
            };
            return Err(Error::NotAChannel {
                channel: name.to_owned(),
                reason: reason.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// ftok keeps only part of the device and inode: a header made for
/// another path under the same key is a collision, not our channel.
pub(crate) fn check_origin(key: Key, recorded: Option<(u64, u64)>, name: &str) -> Result<()> {
    match (key.origin(), recorded) {
        (Some(o), Some(r)) if (o.dev, o.ino) != r => Err(Error::NotAChannel {
            channel: name.to_owned(),
            reason: format!(
                "ftok key collision: it was made for another path (device {:#x}, inode {})",
                r.0, r.1
            ),
        }),
        _ => Ok(()),
    }
}

/// The set id in the header is untrusted: it must be the segment's own.
fn check_sems(sem: SemSet, seg: &ShmStat, lanes: u32, name: &str) -> Result<()> {
    let st = sem
        .stat()
        .map_err(|e| os_error(Doing::Using, "semctl(IPC_STAT)", name, e))?;
    match foreign_set(
        sem,
        &st,
        SetOwner::new(seg.key, seg.cuid, seg.removed, lanes),
    ) {
        Some(what) => Err(Error::Corrupted {
            channel: name.to_owned(),
            what,
        }),
        None => Ok(()),
    }
}

/// The segment that a channel's semaphore set must belong to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetOwner {
    /// The segment's key; `None` once a removal has taken it (a segment
    /// marked for removal shows key 0).
    key: Option<i32>,
    /// The segment's creator.
    cuid: u32,
    /// The channel's lanes (its header's, validated).
    lanes: u32,
}

impl SetOwner {
    /// The segment of key `key` made by `cuid`, perhaps marked `removed`,
    /// whose header says `lanes` lanes.
    pub(crate) fn new(key: i32, cuid: u32, removed: bool, lanes: u32) -> SetOwner {
        SetOwner {
            key: (!removed).then_some(key),
            cuid,
            lanes,
        }
    }
}

/// Why semaphore set `set`, as `st` describes it, is not the one of
/// `owner`'s channel, if it is not. The set id in a header is untrusted,
/// and ids are reused once a set is gone: it must have a channel set's
/// size, the segment's key (unless a removal took it) and its creator.
pub(crate) fn foreign_set(set: SemSet, st: &SemStat, owner: SetOwner) -> Option<String> {
    let key_ok = owner.key.is_none_or(|key| key == st.key);
    let nsems = u64::from(sem::count(owner.lanes as u16));
    if st.nsems == nsems && key_ok && st.cuid == owner.cuid {
        return None;
    }
    Some(format!(
        "semaphore set {} (key {:#010x}, {} semaphores, creator uid {}) does not belong to it",
        set.id(),
        st.key as u32,
        st.nsems,
        st.cuid
    ))
}

/// Removes the channel at `key` if it is a shmchan channel whose parties
/// are all dead; refuses a live or foreign one.
fn replace_stale(key: Key, name: &str) -> Result<()> {
    let shmid = match sys::shm_lookup(key.raw()) {
        Ok(id) => id,
        Err(e) if Fail::of(&e) == Fail::NotFound => return Ok(()),
        Err(e) => return Err(os_error(Doing::Finding, "shmget", name, e)),
    };
    let mapping =
        Mapping::attach(shmid, true).map_err(|e| os_error(Doing::Finding, "shmat", name, e))?;
    // Read after our own attach, so that nattch counts it.
    let st =
        sys::shm_stat(shmid).map_err(|e| os_error(Doing::Finding, "shmctl(IPC_STAT)", name, e))?;
    let view = View::new(mapping).map_err(|i| invalid(name, i))?;
    let h = view.header();
    if !h.check_magic().map_err(|i| invalid(name, i))? {
        if st.nattch > 1 {
            // Perhaps a creator between its shmat and its first write.
            return Err(Error::AlreadyExists {
                channel: name.to_owned(),
            });
        }
        return Err(invalid(
            name,
            Invalid::NotAChannel("its header is blank".into()),
        ));
    }
    if !h.is_ready() {
        return remove_half_made(key, shmid, &st, name);
    }
    let geometry = h.validate(view.len()).map_err(|i| invalid(name, i))?;
    let set = SemSet::from_id(geometry.semid);
    if let Err(e) = set.stat() {
        if Fail::of(&e) == Fail::Removed {
            // The set is gone: nothing counts parties, the segment is an orphan.
            return sys::shm_remove(shmid)
                .map_err(|e| os_error(Doing::Other, "shmctl(IPC_RMID)", name, e));
        }
        return Err(os_error(Doing::Other, "semctl(IPC_STAT)", name, e));
    }
    check_sems(set, &st, geometry.lanes, name)?;
    match close_gate(set) {
        Ok(()) => {
            let _ = sys::shm_remove(shmid);
            set.remove()
                .map_err(|e| os_error(Doing::Other, "semctl(IPC_RMID)", name, e))
        }
        Err(e) if Fail::of(&e) == Fail::WouldBlock => Err(Error::AlreadyExists {
            channel: format!("{name} (live)"),
        }),
        Err(e) => Err(os_error(Doing::Other, "semop", name, e)),
    }
}

/// A segment whose creator died before it turned ready.
fn remove_half_made(key: Key, shmid: i32, st: &ShmStat, name: &str) -> Result<()> {
    if st.nattch > 1 {
        // Our own read-only attach is one; someone else is still at work.
        return Err(Error::AlreadyExists {
            channel: name.to_owned(),
        });
    }
    sys::shm_remove(shmid).map_err(|e| os_error(Doing::Other, "shmctl(IPC_RMID)", name, e))?;
    match remove_orphan_sems(key, name) {
        Err(Error::AlreadyExists { .. }) => Ok(()), // a set of someone else's: leave it
        r => r,
    }
}

fn invalid(name: &str, why: Invalid) -> Error {
    let channel = name.to_owned();
    match why {
        Invalid::NotAChannel(reason) => Error::NotAChannel { channel, reason },
        Invalid::Version(found) => Error::VersionMismatch {
            channel,
            found,
            expected: crate::layout::VERSION,
        },
        Invalid::Corrupt(what) => Error::Corrupted { channel, what },
    }
}

/// `key 0x…` (with the shmid once known), or `shmid N` for a private one.
pub(crate) fn key_name(key: Key, shmid: Option<i32>) -> String {
    match (key.is_private(), shmid) {
        (true, Some(id)) => format!("private channel (shmid {id})"),
        (true, None) => "a private channel".to_owned(),
        (false, Some(id)) => format!("{key} (shmid {id})"),
        (false, None) => key.to_string(),
    }
}

/// Whether a set of `nsems` semaphores has a channel's shape: 4 + 2 per
/// lane, for 1 to [`MAX_SENDERS`] lanes.
pub(crate) fn channel_shaped(nsems: u64) -> bool {
    nsems >= 6 && nsems % 2 == 0 && (nsems - 4) / 2 <= u64::from(MAX_SENDERS)
}
