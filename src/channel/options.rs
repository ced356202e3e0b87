//! `Options`: how `Channel::create` makes a channel.

use std::time::Duration;

use crate::wait::DEFAULT_SPIN;

/// How [`Channel::create`](crate::Channel::create) makes a channel.
///
/// `Options::new()` equals `Options::default()`: 1 MiB of data, mode 0600,
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

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: 1 << 20,
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
    /// (default 1 MiB). The largest message is this minus 8 bytes.
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
    /// processes in, at the cost of a fence per message.
    pub fn membarrier(mut self, enabled: bool) -> Options {
        self.membarrier = enabled;
        self
    }
}
