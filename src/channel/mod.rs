//! The public API: `Channel`, `Options`, `Sender`, `Receiver`.

mod create;
mod options;
mod party;
#[cfg(feature = "bytemuck")]
mod pod;
mod receiver;
mod sender;
mod shared;
#[cfg(feature = "serde")]
mod typed;
mod view;

pub use options::{DEFAULT_CAPACITY, FRAME_OVERHEAD, MAX_SENDERS, MIN_CAPACITY, Options};
#[cfg(feature = "async")]
pub use receiver::RecvStream;
pub use receiver::{Iter, Receiver, RecvGuard, TryIter};
pub use sender::{SendGrant, Sender, SenderId};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::Key;
pub(crate) use create::{SetOwner, channel_shaped, check_origin, foreign_set, key_name};
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
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// // A private channel: other processes reach it by `chan.id()`.
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let (mut tx, mut rx) = (chan.sender()?, chan.receiver()?);
    /// tx.send(b"ping")?;
    /// assert_eq!(rx.recv()?, b"ping");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// // Both programs make the key from the same path and project id.
    /// let path = std::env::temp_dir().join(format!("shmchan-doc-open-{}", std::process::id()));
    /// std::fs::File::create(&path)?;
    /// let key = Key::ftok(&path, b'O')?;
    /// let created = Channel::create(key, &Options::new().capacity(4096))?;
    /// let opened = Channel::open(key)?; // in the other program, usually
    /// assert_eq!(opened.id(), created.id());
    /// # drop((created, opened));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(key: Key) -> Result<Channel> {
        Channel::opened(create::open_key(key)?)
    }

    /// Opens the existing channel with segment id `shmid` (as `ipcs -m` or
    /// [`Channel::id`] shows it); the way to reach an `IPC_PRIVATE` channel.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let other = Channel::open_id(chan.id())?; // in another process, usually
    /// let mut tx = other.sender()?;
    /// let mut rx = chan.receiver()?;
    /// tx.send(b"by id")?;
    /// assert_eq!(rx.recv()?, b"by id");
    /// # Ok::<(), shmchan::Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options, admin};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let seg = admin::inspect(chan.id())?; // as `ipcs -m` lists it
    /// assert_eq!(seg.shmid, chan.id());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn id(&self) -> i32 {
        self.shared().shmid
    }

    /// The semaphore set id (`semid`).
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
    /// assert_eq!(info.semid, chan.sem_id()); // as `ipcs -s` lists it
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn sem_id(&self) -> i32 {
        self.shared().sem.id()
    }

    /// The key the channel was created with ([`Key::PRIVATE`] for a
    /// private one).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// assert_eq!(chan.key(), Key::PRIVATE);
    /// assert!(chan.key().is_private());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn key(&self) -> Key {
        self.shared().key
    }

    /// Data bytes in the ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(64 * 1024))?;
    /// assert_eq!(chan.capacity(), 64 * 1024);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared().geometry.capacity as usize
    }

    /// The largest message the channel carries: capacity minus the 8-byte
    /// frame header. A message of this size gets through wherever the ring
    /// stands.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// assert_eq!(chan.max_message_len(), 4096 - 8);
    /// let mut tx = chan.sender()?;
    /// let too_long = vec![0; chan.max_message_len() + 1];
    /// assert!(matches!(tx.send(&too_long), Err(Error::MessageTooLarge { .. })));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn max_message_len(&self) -> usize {
        self.shared().geometry.max_message as usize
    }

    /// Whether the channel outlives its last party.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// assert!(!chan.persists()); // the default: removed by its last party
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn persists(&self) -> bool {
        self.shared().persists()
    }

    /// Takes the sender role (one per channel at a time).
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] while another live handle holds it, in any
    /// process; [`Error::Removed`]; [`Error::Corrupted`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let tx = chan.sender()?;
    /// assert!(matches!(chan.sender(), Err(Error::RoleTaken { .. })));
    /// drop(tx); // the role is free again
    /// let _tx = chan.sender()?;
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn sender(&self) -> Result<Sender> {
        Sender::attach(Arc::clone(self.party.shared()), self.spin)
    }

    /// Takes the receiver role (one per channel at a time).
    ///
    /// # Errors
    ///
    /// As [`sender`](Self::sender).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let mut rx = chan.receiver()?;
    /// assert!(matches!(chan.receiver(), Err(Error::RoleTaken { .. })));
    /// chan.sender()?.send(b"hi")?; // the sender drops after its send
    /// assert_eq!(rx.recv()?, b"hi");
    /// assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn receiver(&self) -> Result<Receiver> {
        Receiver::attach(Arc::clone(self.party.shared()), self.spin)
    }

    /// Removes the channel now, under any live parties: they see
    /// [`Error::Removed`] on their next call (or `Disconnected`).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] when this user may not remove it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))?;
    /// let other = Channel::open_id(chan.id())?;
    /// let mut tx = other.sender()?;
    /// chan.remove()?;
    /// assert!(matches!(tx.send(b"late"), Err(Error::Removed { .. })));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
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

    /// Remembers a `Corrupted` result. Inline, its copy out of line: the
    /// slow paths hand every result through here, and a `Result` passed
    /// to a call and back goes through memory, where the call read it
    /// with wider loads than it was written with and waited for the
    /// stores (store forwarding: 8-12 % of a batch receiver's samples,
    /// `perf annotate`, default release profile).
    #[inline]
    fn record<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e @ Error::Corrupted { .. }) = &r {
            self.remember(e);
        }
        r
    }

    #[cold]
    #[inline(never)]
    fn remember(&mut self, e: &Error) {
        if let Error::Corrupted { channel, what } = e {
            self.0 = Some(Error::Corrupted {
                channel: channel.clone(),
                what: what.clone(),
            });
        }
    }
}
