//! `Shared`: one process's attachment to a channel, shared by its handles;
//! the mapping from errno to the public error at each kind of call.

use std::io;
use std::sync::atomic::Ordering;

use super::view::View;
use crate::error::{Error, Result};
use crate::layout::{FLAG_MEMBARRIER, Geometry, Header};
use crate::sys::{Fail, Key, SemSet, sop};
use crate::wait::Fences;

/// A validated attachment: the segment's view, its semaphore set, and the
/// private copy of its geometry. Detached when the last handle drops.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) view: View,
    pub(crate) sem: SemSet,
    pub(crate) shmid: i32,
    pub(crate) key: Key,
    pub(crate) geometry: Geometry,
    /// `key 0x…` or `shmid N`, for error messages.
    pub(crate) name: String,
}

impl Shared {
    pub(crate) fn header(&self) -> &Header {
        self.view.header()
    }

    pub(crate) fn removed(&self) -> Error {
        Error::Removed {
            channel: self.name.clone(),
        }
    }

    pub(crate) fn corrupted(&self, what: String) -> Error {
        Error::Corrupted {
            channel: self.name.clone(),
            what,
        }
    }

    /// `Removed` once `Channel::remove` or `shmchan rm` has marked the
    /// channel closed: one load, for the fast paths.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(self.removed());
        }
        Ok(())
    }

    /// Whether the channel was marked closed (the fast paths' check).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.header().is_closed()
    }

    pub(crate) fn mark_closed(&self) {
        // SYNC: pairs with the Acquire load in `check_open`.
        self.header().control.closed.store(1, Ordering::Release);
    }

    /// Undoes `mark_closed` after a removal the kernel refused.
    pub(crate) fn unmark_closed(&self) {
        // SYNC: pairs with the Acquire loads in `check_open`/`is_closed`.
        self.header().control.closed.store(0, Ordering::Release);
    }

    /// Value of semaphore `num`.
    pub(crate) fn sem_value(&self, num: u16) -> Result<i32> {
        self.sem
            .get(num)
            .map_err(|e| os_error(Doing::Using, "semctl(GETVAL)", &self.name, e))
    }

    /// Posts a wake semaphore. ERANGE (already at SEMVMX) counts as
    /// delivered: the sleeper has more than enough posts to wake.
    pub(crate) fn post(&self, num: u16) -> Result<()> {
        match self.sem.op(&mut [sop(num, 1)]) {
            Err(e) if Fail::of(&e) == Fail::Range => Ok(()),
            r => r.map_err(|e| os_error(Doing::Using, "semop", &self.name, e)),
        }
    }

    /// The form of the wake-up handshake, fixed by the creator.
    #[inline]
    pub(crate) fn fences(&self) -> Fences {
        if self.geometry.flags & FLAG_MEMBARRIER != 0 {
            Fences::Asymmetric
        } else {
            Fences::Symmetric
        }
    }

    /// Before a sender or receiver takes part in the handshake: on a
    /// channel of the asymmetric form, registers this process as a target
    /// of the sleeper's `membarrier`. Without that registration this side's
    /// wake-ups could be lost, so failing it fails the attach.
    pub(crate) fn register_fences(&self) -> Result<()> {
        match self.fences() {
            Fences::Symmetric => Ok(()),
            Fences::Asymmetric => crate::sys::membarrier::register().map_err(|e| {
                let call = "membarrier(REGISTER_GLOBAL_EXPEDITED)";
                os_error(Doing::Other, call, &self.name, e)
            }),
        }
    }

    /// Whether the channel keeps its objects after the last party leaves.
    pub(crate) fn persists(&self) -> bool {
        self.geometry.flags & crate::layout::FLAG_PERSIST != 0
    }

    /// Whether committed messages are still queued (read from the shared
    /// indices: only a hint for lifecycle decisions, never for the ring;
    /// a lone padding frame is no message).
    pub(crate) fn holds_messages(&self) -> bool {
        self.view.holds_messages(&self.geometry)
    }

    /// Removes segment and semaphore set. Errors are ignored: both may be
    /// gone already (another remover, `ipcrm`), and there is nothing
    /// better to do with the handle than let it report `Removed` later.
    pub(crate) fn destroy(&self) {
        let _ = crate::sys::shm_remove(self.shmid);
        let _ = self.sem.remove();
    }
}

/// What a call on a channel was doing, where that changes what its failure
/// means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doing {
    /// Looking for a channel (by key, or by id before it is validated):
    /// its object missing or gone is [`Error::NotFound`].
    Finding,
    /// Using a channel already found and validated: its object gone is
    /// [`Error::Removed`].
    Using,
    /// Making or removing objects, anything else: only a refusal
    /// ([`Error::PermissionDenied`]) is told apart from [`Error::Os`].
    Other,
}

/// The one mapping from a failed call on `channel` to the public error.
pub(crate) fn os_error(doing: Doing, call: &'static str, channel: &str, e: io::Error) -> Error {
    let channel = channel.to_owned();
    match (Fail::of(&e), doing) {
        (Fail::Denied, _) => Error::PermissionDenied {
            channel,
            call,
            source: e,
        },
        (Fail::NotFound | Fail::Removed, Doing::Finding) => Error::NotFound { channel },
        // EIDRM while waiting, EINVAL afterwards: the set was removed.
        (Fail::Removed, Doing::Using) => Error::Removed { channel },
        _ => Error::Os {
            call,
            channel,
            source: e,
        },
    }
}
