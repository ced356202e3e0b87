//! `Options`: how `Channel::create` makes a channel.

use std::time::Duration;

use crate::wait::DEFAULT_SPIN;

/// How [`Channel::create`](crate::Channel::create) makes a channel.
///
/// `Options::new()` equals `Options::default()`: 4 MiB of data, mode 0600,
/// the creator's group, removed when the last party leaves, never replacing
/// anything.
///
/// # Examples
///
/// ```
/// use shmchan::{Channel, Key, Options};
///
/// let opts = Options::new().capacity(64 * 1024).mode(0o600);
/// let chan = Channel::create(Key::PRIVATE, &opts)?;
/// assert_eq!(chan.capacity(), 64 * 1024);
/// # Ok::<(), shmchan::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub(crate) capacity: usize,
    pub(crate) max_senders: u32,
    pub(crate) mode: u32,
    pub(crate) group: Option<u32>,
    pub(crate) persist: bool,
    pub(crate) replace_stale: bool,
    pub(crate) spin: Duration,
    pub(crate) membarrier: bool,
}

/// The default ring size, 4 MiB: larger than one core's L2 cache.
///
/// A ring that fits in L2 is still in the receiver's cache when the sender
/// comes round to write it again, so each line must first be taken back
/// from the other core; a much larger ring loses again, past what the TLB
/// maps. Pages are allocated as the ring is first written, so a channel
/// that carries little uses little memory. The measurements behind the
/// choice: `benchmarks/README.md`, "What changed", point 5.
pub const DEFAULT_CAPACITY: usize = 4 << 20;

/// The most senders a channel may have at once
/// ([`Options::max_senders`]): 64, so that the semaphore set (4 + 2 per
/// sender) and a receiver's attach (one `semop` of 2 + 2 per sender
/// operations) stay well inside the kernel's SEMMSL and SEMOPM.
pub const MAX_SENDERS: u32 = crate::layout::MAX_SENDERS;

/// The smallest ring capacity, in bytes: [`Options::capacity`] rounds a
/// smaller request up to it (and any request up to a power of two).
pub const MIN_CAPACITY: usize = crate::layout::MIN_CAPACITY as usize;

/// Ring bytes a message takes beyond its payload: an 8-byte frame header
/// (the payload is then padded to a multiple of 8). A message of
/// `len` bytes needs a ring of at least `len + FRAME_OVERHEAD` bytes, and
/// `max_message_len()` is the capacity minus this.
pub const FRAME_OVERHEAD: usize = crate::ring::FRAME_HEADER as usize;

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: DEFAULT_CAPACITY,
            max_senders: 1,
            mode: 0o600,
            group: None,
            persist: false,
            replace_stale: false,
            spin: DEFAULT_SPIN,
            membarrier: true,
        }
    }
}

impl Options {
    /// The default options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, DEFAULT_CAPACITY, Key, Options};
    ///
    /// assert_eq!(Options::new(), Options::default());
    /// let chan = Channel::create(Key::PRIVATE, &Options::new())?;
    /// assert_eq!(chan.capacity(), DEFAULT_CAPACITY);
    /// assert!(!chan.persists());
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn new() -> Options {
        Options::default()
    }

    /// Data bytes in the ring, rounded up to a power of two, at least 4096
    /// (default 4 MiB, see [`DEFAULT_CAPACITY`]). The largest message is
    /// this minus 8 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, FRAME_OVERHEAD, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(5000))?;
    /// assert_eq!(chan.capacity(), 8192); // rounded up to a power of two
    /// assert_eq!(chan.max_message_len(), 8192 - FRAME_OVERHEAD);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn capacity(mut self, bytes: usize) -> Options {
        self.capacity = bytes;
        self
    }

    /// How many senders may be attached at once (default 1; at most
    /// [`MAX_SENDERS`]). Each sender gets a lane of its own, a ring of
    /// [`capacity`](Self::capacity) bytes, so the channel takes
    /// `max_senders` x `capacity` bytes of memory (pages are allocated as
    /// first written); `max_message_len()` is per lane. A further sender
    /// gets [`Error::RoleTaken`](crate::Error::RoleTaken) while every lane is
    /// held; a lane whose sender died (even by SIGKILL) is free again, with
    /// its committed messages still queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).max_senders(2))?;
    /// let mut rx = chan.receiver()?;
    /// let (mut a, mut b) = (chan.sender()?, chan.sender()?);
    /// a.send(b"from a")?;
    /// b.send(b"from b")?;
    /// let (msg, from) = rx.recv_from()?;
    /// assert_eq!((msg.as_slice(), from), (&b"from a"[..], a.id()));
    /// let (msg, from) = rx.recv_from()?;
    /// assert_eq!((msg.as_slice(), from), (&b"from b"[..], b.id()));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn max_senders(mut self, senders: u32) -> Options {
        self.max_senders = senders;
        self
    }

    /// Permission bits of the segment and the semaphore set (default 0o600).
    /// Both need read and write for a party to use the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options, admin};
    ///
    /// let opts = Options::new().capacity(4096).mode(0o660); // the owner's group too
    /// let chan = Channel::create(Key::PRIVATE, &opts)?;
    /// assert_eq!(admin::inspect(chan.id())?.mode & 0o777, 0o660);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }

    /// The group of the segment and the semaphore set (default: none given,
    /// so the kernel's choice stands, the creator's effective gid). With
    /// [`mode(0o660)`](Self::mode), every member of the group may open the
    /// channel and send (or receive), whoever created it; a user outside
    /// the group gets [`Error::PermissionDenied`](crate::Error::PermissionDenied).
    ///
    /// `create` gives both objects the group and the mode (`IPC_SET`)
    /// before the channel turns ready, and until then only the creator may
    /// attach them: nobody opens a channel whose permissions are half set.
    /// The kernel lets the creator give any group, one it is not a member
    /// of too. A gid that the kernel refuses (one the user namespace does
    /// not map, such as `u32::MAX`) fails `create` with
    /// [`Error::Os`](crate::Error::Os) naming `shmctl(IPC_SET)`, and leaves
    /// nothing behind. To find a gid by name: [`admin::group_id`](crate::admin::group_id).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options, admin};
    ///
    /// let gid = unsafe { libc::getegid() }; // in practice, a group the senders' users share
    /// let opts = Options::new().capacity(4096).mode(0o660).group(gid);
    /// let chan = Channel::create(Key::PRIVATE, &opts)?;
    /// let seg = admin::inspect(chan.id())?;
    /// assert_eq!((seg.gid, seg.mode), (gid, 0o660));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn group(mut self, gid: u32) -> Options {
        self.group = Some(gid);
        self
    }

    /// Keep the channel after the last party leaves (default false).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options};
    ///
    /// let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).persist(true))?;
    /// let id = chan.id();
    /// drop(chan); // the last party leaves; the channel stays
    /// let chan = Channel::open_id(id)?;
    /// assert!(chan.persists());
    /// chan.remove()?; // a persisting channel goes when it is removed
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn persist(mut self, persist: bool) -> Options {
        self.persist = persist;
        self
    }

    /// Create over a stale channel of the same key, one whose parties are
    /// all dead, discarding what it held (default false). A live channel,
    /// or a segment that is not a shmchan channel, is never replaced.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    ///
    /// let path = std::env::temp_dir().join(format!("shmchan-doc-stale-{}", std::process::id()));
    /// std::fs::File::create(&path)?;
    /// let key = Key::ftok(&path, b'S')?;
    /// drop(Channel::create(key, &Options::new().persist(true))?); // stale: nobody left
    /// let again = Channel::create(key, &Options::new());
    /// assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    /// let chan = Channel::create(key, &Options::new().replace_stale(true))?;
    /// assert!(!chan.persists()); // the new channel, removed when `chan` drops
    /// # drop(chan);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replace_stale(mut self, replace: bool) -> Options {
        self.replace_stale = replace;
        self
    }

    /// How long the creator's handles spin (then yield) before parking on
    /// the semaphore (default 50 µs). Handles opened elsewhere use the
    /// default; each can change its own with `set_spin`.
    ///
    /// A longer spin catches a peer that is about to act without a system
    /// call on either side, but keeps a core busy while nothing comes, and
    /// under load can hold the CPU the peer needs (`benchmarks/README.md`,
    /// "What limits shmchan", point 1). Zero parks after the first look.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Error, Key, Options};
    /// use std::time::Duration;
    ///
    /// let opts = Options::new().capacity(4096).spin(Duration::ZERO); // park at once
    /// let chan = Channel::create(Key::PRIVATE, &opts)?;
    /// let mut rx = chan.receiver()?;
    /// let r = rx.recv_timeout(Duration::from_millis(1));
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn spin(mut self, budget: Duration) -> Options {
        self.spin = budget;
        self
    }

    /// Let each side skip the hardware fence it otherwise runs on every
    /// message, by having a side that is about to park call `membarrier(2)`
    /// instead (default true). Used only where the creator's kernel allows
    /// it; every process that opens the channel must then be allowed it
    /// too (a seccomp filter that refuses `membarrier` makes `sender()` and
    /// `receiver()` fail with the call and errno). Turn it off to let such
    /// processes in, at the cost of a fence per message (what it costs:
    /// `benchmarks/README.md`, "What changed", point 2).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmchan::{Channel, Key, Options, admin};
    ///
    /// let opts = Options::new().capacity(4096).membarrier(false);
    /// let chan = Channel::create(Key::PRIVATE, &opts)?;
    /// let admin::Kind::Channel(info) = admin::inspect(chan.id())?.kind else {
    ///     panic!("not a channel");
    /// };
    /// assert!(!info.membarrier); // a fence per message instead
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn membarrier(mut self, enabled: bool) -> Options {
        self.membarrier = enabled;
        self
    }
}
