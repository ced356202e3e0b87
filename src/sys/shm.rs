//! System V shared memory segments: `shmget(2)`, `shmat(2)`, `shmdt(2)`,
//! `shmctl(2)`.

use std::io;
use std::ptr::NonNull;

use super::{Perm, cvt};

/// `SHM_DEST` from `<linux/shm.h>`: the segment is marked for removal and
/// lives only until its last detach. The libc crate does not export it.
const SHM_DEST: u32 = 0o1000;

/// Creates a new segment (`shmget(key, size, IPC_CREAT | IPC_EXCL | mode)`)
/// and returns its id.
#[doc(alias = "shmget")]
pub(crate) fn shm_create(key: i32, size: usize, mode: u32) -> io::Result<i32> {
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
    // SAFETY: shmget takes plain integers and has no memory preconditions.
    cvt(unsafe { libc::shmget(key, size, flags) })
}

/// Looks up the existing segment of `key` (`shmget(key, 0, 0)`); never creates.
#[doc(alias = "shmget")]
pub(crate) fn shm_lookup(key: i32) -> io::Result<i32> {
    // SAFETY: shmget takes plain integers and has no memory preconditions.
    cvt(unsafe { libc::shmget(key, 0, 0) })
}

/// Marks a segment for removal (`shmctl(id, IPC_RMID)`).
#[doc(alias = "shmctl")]
pub(crate) fn shm_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so null is allowed.
    cvt(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// Gives a segment its owner, group and permission bits
/// (`shmctl(id, IPC_SET)`).
///
/// Only the segment's owner or creator may (or a process with
/// `CAP_SYS_ADMIN`), else `EPERM`. The kernel does not ask whether the new
/// group is one of the caller's: any gid that the caller's user namespace
/// maps is taken, and one it does not map (such as `u32::MAX`, which is
/// `(gid_t)-1`) is `EINVAL`.
#[doc(alias = "shmctl")]
pub(crate) fn shm_set_perm(id: i32, perm: Perm) -> io::Result<()> {
    // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    ds.shm_perm.uid = perm.uid;
    ds.shm_perm.gid = perm.gid;
    ds.shm_perm.mode = (perm.mode & 0o777) as _;
    // SAFETY: IPC_SET reads the owner, group and mode from ds, a valid
    // shmid_ds that lives until the call returns.
    cvt(unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) }).map(drop)
}

/// What `shmctl(IPC_STAT)` says about a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShmStat {
    /// The key (0 once the segment is marked for removal).
    pub(crate) key: i32,
    /// Size in bytes.
    pub(crate) size: usize,
    /// Owner uid.
    pub(crate) uid: u32,
    /// Group gid.
    pub(crate) gid: u32,
    /// Creator uid.
    pub(crate) cuid: u32,
    /// Permission bits.
    pub(crate) mode: u32,
    /// Number of current attaches.
    pub(crate) nattch: u64,
    /// Marked for removal (`SHM_DEST`).
    pub(crate) removed: bool,
}

/// `shmctl(id, IPC_STAT)`.
#[doc(alias = "shmctl")]
pub(crate) fn shm_stat(id: i32) -> io::Result<ShmStat> {
    // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds for the kernel to fill.
    cvt(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    let (mode, removed) = split_mode(u32::from(ds.shm_perm.mode));
    Ok(ShmStat {
        key: ds.shm_perm.__key,
        size: ds.shm_segsz,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        mode,
        nattch: ds.shm_nattch,
        removed,
    })
}

/// Splits a segment's mode word, as `IPC_STAT` or `/proc/sysvipc/shm`
/// give it, into its permission bits and whether it is marked for removal
/// (`SHM_DEST`).
pub(crate) fn split_mode(mode: u32) -> (u32, bool) {
    (mode & 0o777, mode & SHM_DEST != 0)
}

/// An attached segment (`shmat`), detached on drop (`shmdt`).
///
/// Hands out a raw pointer, never a slice: other processes write this memory
/// at any time, so the layers above read it through atomics or through a
/// validated frame only.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with other processes anyway;
// the pointer is valid in every thread of this process until drop, and all
// access to the bytes goes through atomics or validated frames.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: `&Mapping` only gives out the raw pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Attaches segment `id` read-write, or read-only for inspection.
    /// The length is the segment's size from `IPC_STAT` at attach time.
    #[doc(alias = "shmat")]
    pub(crate) fn attach(id: i32, read_only: bool) -> io::Result<Mapping> {
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose where to map.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if ptr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
        // Built before the size is read so that a failing IPC_STAT detaches.
        let mut mapping = Mapping { ptr, len: 0 };
        mapping.len = shm_stat(id)?.size;
        Ok(mapping)
    }

    /// Start of the mapping. Valid for `len()` bytes until `self` drops.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Start of the mapping, as `NonNull`.
    pub(crate) fn as_non_null(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr came from a successful shmat and is detached only here.
        // An error (EINVAL) could only mean it is not attached, and there is
        // nothing left to release then, so it is ignored.
        unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
    }
}
