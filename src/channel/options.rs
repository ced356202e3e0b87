//! `Options`: how `Channel::create` makes a channel.

use std::time::Duration;

use crate::wait::DEFAULT_SPIN;

/// How [`Channel::create`](crate::Channel::create) makes a channel.
///
/// `Options::new()` equals `Options::default()`: 4 MiB of data, mode 0600,
/// removed when the last party leaves, never replacing anything.
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
    pub(crate) mode: u32,
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
            mode: 0o600,
            persist: false,
            replace_stale: false,
            spin: DEFAULT_SPIN,
            membarrier: true,
        }
    }
}

impl Options {
    /// The default options.
    pub fn new() -> Options {
        Options::default()
    }

    /// Data bytes in the ring, rounded up to a power of two, at least 4096
    /// (default 4 MiB, see [`DEFAULT_CAPACITY`]). The largest message is
    /// this minus 8 bytes.
    pub fn capacity(mut self, bytes: usize) -> Options {
        self.capacity = bytes;
        self
    }

    /// Permission bits of the segment and the semaphore set (default 0o600).
    /// Both need read and write for a party to use the channel.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }

    /// Keep the channel after the last party leaves (default false).
    pub fn persist(mut self, persist: bool) -> Options {
        self.persist = persist;
        self
    }

    /// Create over a stale channel of the same key, one whose parties are
    /// all dead, discarding what it held (default false). A live channel,
    /// or a segment that is not a shmchan channel, is never replaced.
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
    pub fn membarrier(mut self, enabled: bool) -> Options {
        self.membarrier = enabled;
        self
    }
}
