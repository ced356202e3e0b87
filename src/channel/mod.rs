//! The public API: `Channel`, `Options`, `Sender`, `Receiver`.

mod create;
mod options;
mod party;
mod receiver;
mod sender;
mod shared;
mod view;

pub use options::{DEFAULT_CAPACITY, FRAME_OVERHEAD, MIN_CAPACITY, Options};
pub use receiver::{Iter, Receiver, RecvGuard};
pub use sender::{SendGrant, Sender};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::Key;
pub(crate) use create::{SetOwner, check_origin, foreign_set, key_name};
use party::Party;
pub(crate) use party::{close_gate, open_gate};
use shared::Shared;
pub(crate) use shared::{Doing, os_error};
pub(crate) use view::View;

/// An attached, validated channel: a System V segment (header + ring) and
/// its semaphore set.
///
/// A `Channel` is a party: the channel lives while any party (a `Channel`,
/// [`Sender`] or [`Receiver`] handle, in any process) is alive; the last one
/// out removes segment and semaphore set, unless the channel persists or
/// still holds committed messages (those wait for a receiver).
///
/// Handles are not fork-safe: a child made by `fork` must open its own.
///
/// # Examples
///
/// Two processes, one channel (the receiver side; the sender opens the same
/// key and calls `sender()`):
///
/// ```no_run
/// use shmchan::{Channel, Key, Options};
///
/// let key = Key::ftok("/tmp", b'q')?;
/// let chan = Channel::create(key, &Options::new())?;
/// let mut rx = chan.receiver()?;
/// for msg in rx.iter() {
///     println!("{}", String::from_utf8_lossy(&msg));
/// }
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug)]
pub struct Channel {
    party: Party,
    spin: Duration,
}

impl Channel {
    /// Creates a new channel at `key` (`IPC_CREAT | IPC_EXCL`).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] when the key is taken (unless
    /// [`Options::replace_stale`] applies), [`Error::PermissionDenied`],
    /// [`Error::NotAChannel`] when `replace_stale` meets a foreign segment,
    /// [`Error::Os`] when the kernel refuses (limits, memory).
    #[doc(alias = "shmget")]
    #[doc(alias = "semget")]
    pub fn create(key: Key, options: &Options) -> Result<Channel> {
        let shared = create::create(key, options)?;
        Ok(Channel {
            party: shared,
            spin: options.spin,
        })
    }

    /// Opens the existing channel at `key`; never creates.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::NotAChannel`], [`Error::VersionMismatch`],
    /// [`Error::Corrupted`].
    pub fn open(key: Key) -> Result<Channel> {
        Channel::opened(create::open_key(key)?)
    }

    /// Opens the existing channel with segment id `shmid` (as `ipcs -m` or
    /// [`Channel::id`] shows it); the way to reach an `IPC_PRIVATE` channel.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_id(shmid: i32) -> Result<Channel> {
        Channel::opened(create::open_id(shmid, None)?)
    }

    fn opened(shared: Arc<Shared>) -> Result<Channel> {
        Ok(Channel {
            party: Party::join(shared)?,
            spin: crate::wait::DEFAULT_SPIN,
        })
    }

    fn shared(&self) -> &Shared {
        self.party.shared()
    }

    /// The segment id (`shmid`).
    pub fn id(&self) -> i32 {
        self.shared().shmid
    }

    /// The semaphore set id (`semid`).
    pub fn sem_id(&self) -> i32 {
        self.shared().sem.id()
    }

    /// The key the channel was created with ([`Key::PRIVATE`] for a
    /// private one).
    pub fn key(&self) -> Key {
        self.shared().key
    }

    /// Data bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.shared().geometry.capacity as usize
    }

    /// The largest message the channel carries: capacity minus the 8-byte
    /// frame header. A message of this size gets through wherever the ring
    /// stands.
    pub fn max_message_len(&self) -> usize {
        self.shared().geometry.max_message as usize
    }

    /// Whether the channel outlives its last party.
    pub fn persists(&self) -> bool {
        self.shared().persists()
    }

    /// Takes the sender role (one per channel at a time).
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] while another live handle holds it, in any
    /// process; [`Error::Removed`]; [`Error::Corrupted`].
    pub fn sender(&self) -> Result<Sender> {
        Sender::attach(Arc::clone(self.party.shared()), self.spin)
    }

    /// Takes the receiver role (one per channel at a time).
    ///
    /// # Errors
    ///
    /// As [`sender`](Self::sender).
    pub fn receiver(&self) -> Result<Receiver> {
        Receiver::attach(Arc::clone(self.party.shared()), self.spin)
    }

    /// Removes the channel now, under any live parties: they see
    /// [`Error::Removed`] on their next call (or `Disconnected`).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] when this user may not remove it.
    #[doc(alias = "IPC_RMID")]
    pub fn remove(self) -> Result<()> {
        let s = self.shared();
        // Closed first, so that parties see `Removed` on their fast paths;
        // taken back if the kernel refuses (not the owner).
        s.mark_closed();
        if let Err(e) = crate::sys::shm_remove(s.shmid) {
            s.unmark_closed();
            return Err(os_error(Doing::Using, "shmctl(IPC_RMID)", &s.name, e));
        }
        s.sem
            .remove()
            .map_err(|e| os_error(Doing::Using, "semctl(IPC_RMID)", &s.name, e))
    }
}

/// How long a call may wait.
#[derive(Debug, Clone, Copy)]
enum How {
    /// Not at all (`try_*`).
    Try,
    /// Until the deadline, or for ever.
    Block(Option<Instant>),
}

/// The deadline `timeout` from now; `None` (wait without one) when it lies
/// beyond what an `Instant` can hold, as crossbeam-channel does.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A handle's poisoned state: once it met corruption, every call says so.
#[derive(Debug, Default)]
struct Poison(Option<Error>);

impl Poison {
    fn check(&self) -> Result<()> {
        match &self.0 {
            Some(Error::Corrupted { channel, what }) => Err(Error::Corrupted {
                channel: channel.clone(),
                what: what.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether the handle is poisoned (the fast paths' one check).
    #[inline]
    fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Remembers a `Corrupted` result.
    fn record<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(Error::Corrupted { channel, what }) = &r {
            self.0 = Some(Error::Corrupted {
                channel: channel.clone(),
                what: what.clone(),
            });
        }
        r
    }
}
