//! System V semaphore sets: `semget(2)`, `semop(2)`, `semtimedop(2)`,
//! `semctl(2)`.

use std::io;
use std::time::Duration;

use super::{Perm, cvt};

unsafe extern "C" {
    /// `semtimedop(2)`, exported by glibc but not declared by the libc crate
    /// for Linux (0.2).
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// One semaphore operation (`struct sembuf`), made by [`sop`] and given
/// its flags by name.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct SemOp(libc::sembuf);

/// `{num, op, 0}`: add `op` to semaphore `num`; waits while that would go
/// below 0 (and, for `op == 0`, until the value is 0).
pub(crate) const fn sop(num: u16, op: i16) -> SemOp {
    SemOp(libc::sembuf {
        sem_num: num,
        sem_op: op,
        sem_flg: 0,
    })
}

impl SemOp {
    /// `IPC_NOWAIT`: fail with EAGAIN ([`Fail::WouldBlock`](super::Fail))
    /// rather than wait.
    pub(crate) const fn nowait(self) -> SemOp {
        self.with(libc::IPC_NOWAIT)
    }

    /// `SEM_UNDO`: the kernel reverses the operation when the process
    /// exits, however it dies.
    pub(crate) const fn undo(self) -> SemOp {
        self.with(libc::SEM_UNDO)
    }

    const fn with(mut self, flag: libc::c_int) -> SemOp {
        self.0.sem_flg |= flag as libc::c_short;
        self
    }
}

/// What `semctl(IPC_STAT)` says about a set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SemStat {
    /// The key the set was created with.
    pub(crate) key: i32,
    /// Number of semaphores.
    pub(crate) nsems: u64,
    /// Creator uid.
    pub(crate) cuid: u32,
    /// Group gid.
    pub(crate) gid: u32,
}

/// A semaphore set, by id. Not owning: removal is an explicit decision of
/// the channel's lifecycle, never a side effect of dropping a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SemSet {
    id: i32,
}

impl SemSet {
    /// Creates a new set (`semget(key, nsems, IPC_CREAT | IPC_EXCL | mode)`).
    #[doc(alias = "semget")]
    pub(crate) fn create(key: i32, nsems: u16, mode: u32) -> io::Result<SemSet> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
        // SAFETY: semget takes plain integers.
        let id = cvt(unsafe { libc::semget(key, libc::c_int::from(nsems), flags) })?;
        Ok(SemSet { id })
    }

    /// Looks up the existing set of `key` (`semget(key, 0, 0)`).
    #[doc(alias = "semget")]
    pub(crate) fn lookup(key: i32) -> io::Result<SemSet> {
        // SAFETY: semget takes plain integers.
        let id = cvt(unsafe { libc::semget(key, 0, 0) })?;
        Ok(SemSet { id })
    }

    /// A set by id; nothing is checked until it is used.
    pub(crate) fn from_id(id: i32) -> SemSet {
        SemSet { id }
    }

    /// The set's id.
    pub(crate) fn id(&self) -> i32 {
        self.id
    }

    /// `semctl(id, 0, IPC_STAT)`.
    #[doc(alias = "semctl")]
    pub(crate) fn stat(&self) -> io::Result<SemStat> {
        // SAFETY: semid_ds is plain old data; all-zero is a valid value.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: for IPC_STAT the variadic `union semun` argument is a
        // pointer to a semid_ds, which ds is, valid and writable.
        cvt(unsafe { libc::semctl(self.id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) })?;
        Ok(SemStat {
            key: ds.sem_perm.__key,
            nsems: ds.sem_nsems,
            cuid: ds.sem_perm.cuid,
            gid: ds.sem_perm.gid,
        })
    }

    /// `semctl(id, 0, IPC_SET)`: gives the set its owner, group and
    /// permission bits. Who may, and which groups the kernel takes, as for
    /// [`shm_set_perm`](super::shm_set_perm): the owner or creator (else
    /// `EPERM`), any gid the user namespace maps (else `EINVAL`).
    #[doc(alias = "semctl")]
    pub(crate) fn set_perm(&self, perm: Perm) -> io::Result<()> {
        // SAFETY: semid_ds is plain old data; all-zero is a valid value.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        ds.sem_perm.uid = perm.uid;
        ds.sem_perm.gid = perm.gid;
        ds.sem_perm.mode = (perm.mode & 0o777) as _;
        // SAFETY: for IPC_SET the variadic `union semun` argument is a
        // pointer to a semid_ds, which ds is, valid until the call returns.
        cvt(unsafe { libc::semctl(self.id, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds) })
            .map(drop)
    }

    /// `semctl(id, num, GETVAL)`.
    #[doc(alias = "semctl")]
    pub(crate) fn get(&self, num: u16) -> io::Result<i32> {
        // SAFETY: GETVAL takes no fourth argument.
        cvt(unsafe { libc::semctl(self.id, libc::c_int::from(num), libc::GETVAL) })
    }

    /// `semctl(id, 0, SETALL)`. Only for a set nobody else uses yet: setting
    /// a live set clears every process's undo values.
    #[doc(alias = "semctl")]
    pub(crate) fn set_all(&self, values: &mut [u16]) -> io::Result<()> {
        // SAFETY: for SETALL the `union semun` argument is a pointer to one
        // unsigned short per semaphore; the caller passes nsems of them.
        cvt(unsafe { libc::semctl(self.id, 0, libc::SETALL, values.as_mut_ptr()) }).map(drop)
    }

    /// `semctl(id, 0, IPC_RMID)`: removes the set at once for everyone.
    #[doc(alias = "semctl")]
    pub(crate) fn remove(&self) -> io::Result<()> {
        // SAFETY: IPC_RMID takes no fourth argument.
        cvt(unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) }).map(drop)
    }

    /// `semop(2)`: all of `ops` atomically. Not retried on EINTR (see
    /// [`retry_on_intr`](super::retry_on_intr)).
    #[doc(alias = "semop")]
    pub(crate) fn op(&self, ops: &mut [SemOp]) -> io::Result<()> {
        // SAFETY: ops points to ops.len() valid sembuf values (SemOp is a
        // transparent sembuf).
        cvt(unsafe { libc::semop(self.id, ops.as_mut_ptr().cast(), ops.len()) }).map(drop)
    }

    /// `semtimedop(2)`: like [`op`](Self::op), giving up with EAGAIN after
    /// `timeout` (None waits for ever). Not retried on EINTR: the caller
    /// retries with the time that remains.
    #[doc(alias = "semtimedop")]
    pub(crate) fn timed_op(&self, ops: &mut [SemOp], timeout: Option<Duration>) -> io::Result<()> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: ops points to ops.len() valid sembuf values (SemOp is a
        // transparent sembuf); ts_ptr is null or points to a timespec that
        // lives until the call returns.
        cvt(unsafe { semtimedop(self.id, ops.as_mut_ptr().cast(), ops.len(), ts_ptr) }).map(drop)
    }
}
