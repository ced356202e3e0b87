//! The `#[repr(C)]` header at offset 0 of a channel's segment: layout
//! version 2 (lanes), its constants, and its validation against the real
//! segment.
//!
//! docs/layout.md describes the same bytes for other languages. Every field
//! is a fixed-width atomic, because other processes write this memory at any
//! time; a plain field would be a data race.
//!
//! Each group of fields that one side writes sits in its own 128-byte block.
//! 128, not 64: x86-64's adjacent-line prefetcher pulls cache lines in pairs,
//! so two hot fields 64 bytes apart still ping-pong between cores (the same
//! reason crossbeam-utils' `CachePadded` is 128 bytes there).
//!
//! Pure data and checks: no system call. Who the creator is and when it
//! made the channel come in with [`Identify`]; the channel layer attaches
//! the segment and views it as a `Header`.
//!
//! `unsafe` is allowed only in the tests, which build a `Header` from zeroed
//! memory on the heap.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ring::max_message_for;

/// `b"SHMCHAN\0"` read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\0");
/// The layout version this library reads and writes: 2, lanes (lane 0 in
/// version 1's blocks, lanes 1 and up in a table after them).
pub(crate) const VERSION: u32 = 2;
/// Size of one field block.
pub(crate) const BLOCK: usize = 128;
/// Size of the fixed header (with lane 0); a one-lane channel's data
/// region starts here.
pub(crate) const HEADER_SIZE: usize = 6 * BLOCK;
/// Size of one entry of the lane table (lanes 1 and up).
pub(crate) const LANE_SIZE: usize = 3 * BLOCK;
/// Most lanes (senders) a channel may have: 4 + 2 x 64 semaphores, and a
/// receiver's attach of 2 + 2 x 64 operations in one `semop`.
pub(crate) const MAX_SENDERS: u32 = 64;

/// Where the data regions start in a channel of `lanes` lanes.
pub(crate) const fn header_size(lanes: u32) -> u64 {
    HEADER_SIZE as u64 + (lanes as u64 - 1) * LANE_SIZE as u64
}
/// Smallest data capacity.
pub(crate) const MIN_CAPACITY: u64 = 4096;
/// Largest data capacity: frame lengths are u32.
pub(crate) const MAX_CAPACITY: u64 = 1 << 31;

/// `state`: the header (0 while the creator is still writing it) is complete and the semaphore set initialised.
pub(crate) const STATE_READY: u32 = 1;
/// `flags` bit: keep the channel after the last party leaves.
pub(crate) const FLAG_PERSIST: u32 = 1;
/// `flags` bit: wakers skip the hardware fence and sleepers run
/// `membarrier(2)` instead (every party registered for it; wait.rs).
pub(crate) const FLAG_MEMBARRIER: u32 = 2;

/// Semaphore numbers in the channel's set. 0 to 5 are version 1's, lane 0
/// included; lane `i` >= 1 has `4 + 2i` and `5 + 2i`.
pub(crate) mod sem {
    /// The receiver parks here; any sender posts it.
    pub(crate) const RX_WAKE: u16 = 0;
    /// 1 while a receiver holds the role (SEM_UNDO).
    pub(crate) const RX_ALIVE: u16 = 3;
    /// Number of live parties (SEM_UNDO).
    pub(crate) const PARTIES: u16 = 4;
    /// 1 while the last party out is deciding to remove the channel.
    pub(crate) const CLOSING: u16 = 5;

    /// Lane `lane`'s sender parks here; the receiver posts it.
    pub(crate) const fn tx_wake(lane: u16) -> u16 {
        if lane == 0 { 1 } else { 5 + 2 * lane }
    }

    /// 1 while a sender holds lane `lane` (SEM_UNDO).
    pub(crate) const fn tx_alive(lane: u16) -> u16 {
        if lane == 0 { 2 } else { 4 + 2 * lane }
    }

    /// Number of semaphores in the set of a channel of `lanes` lanes.
    pub(crate) const fn count(lanes: u16) -> u16 {
        4 + 2 * lanes
    }
}

/// Block 0: written once by the creator before `state` turns ready.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) header_size: AtomicU32,
    pub(crate) capacity: AtomicU64,
    pub(crate) max_message: AtomicU64,
    pub(crate) semid: AtomicU32,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) created: AtomicU64,
    pub(crate) mode: AtomicU32,
    pub(crate) flags: AtomicU32,
    pub(crate) key: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) path_dev: AtomicU64,
    pub(crate) path_ino: AtomicU64,
    pub(crate) creator_uid: AtomicU32,
    pub(crate) max_senders: AtomicU32,
}

/// Counters kept by one side, beside its index.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Messages committed (sender) or released (receiver).
    pub(crate) messages: AtomicU64,
    /// Payload bytes of those messages.
    pub(crate) bytes: AtomicU64,
    /// Times the side found the ring full (sender) or empty (receiver)
    /// and had to wait.
    pub(crate) stalls: AtomicU64,
    /// Times the side parked on its semaphore.
    pub(crate) parks: AtomicU64,
    /// Times the side posted the peer's wake semaphore.
    pub(crate) wakes: AtomicU64,
    /// Parks that ran out (a deadline, or the park slice after which a
    /// parked side checks for removal) rather than being woken.
    pub(crate) expired: AtomicU64,
}

/// Increments one of the [`Counters`] of the calling side. Only that side
/// writes it, so a plain load and store does (no read-modify-write on the
/// fast path); wrapping, because another process may have written anything
/// there.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Blocks 1 and 2 (lane 0), and the first two blocks of each lane table
/// entry: an index and counters, written only by one side.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct SideBlock {
    /// `tail` in the sender block, `head` in the receiver block.
    pub(crate) index: AtomicU64,
    /// The sender's counters in the sender block; in the receiver block,
    /// lane 0's are the receiver's over all lanes, other lanes' unused.
    pub(crate) counters: Counters,
    /// The sender block: the lane's session, bumped by each claimer. The
    /// receiver block: unused (reserved, 0).
    pub(crate) session: AtomicU64,
    /// The sender block: 1 while a sender is attached to the lane (cleared
    /// at a clean release). Unused in the receiver block.
    pub(crate) attached: AtomicU32,
}

/// One entry of the lane table: lane `i` >= 1.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct LaneBlock {
    pub(crate) tx: SideBlock,
    pub(crate) rx: SideBlock,
    pub(crate) tx_waiting: FlagBlock,
}

/// A lane's fields, wherever they live (lane 0 in the fixed header, the
/// others in the lane table).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneRefs<'a> {
    /// `tail`, the sender's counters, `session`, `attached`.
    pub(crate) tx: &'a SideBlock,
    /// `head`.
    pub(crate) rx: &'a SideBlock,
    /// The lane's sender waits for room with this flag.
    pub(crate) tx_waiting: &'a FlagBlock,
}

/// Blocks 3 and 4: one waiting flag each.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct FlagBlock {
    pub(crate) waiting: AtomicU32,
}

/// Block 5: attach state, read on every call, written only at attach,
/// detach and removal.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) tx_connects: AtomicU64,
    pub(crate) rx_connects: AtomicU64,
    /// Reserved (version 1's `tx_attached`; each lane has its own now).
    pub(crate) reserved: AtomicU32,
    pub(crate) rx_attached: AtomicU32,
    pub(crate) closed: AtomicU32,
}

/// The fixed header, with lane 0.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) id: Identity,
    pub(crate) tx: SideBlock,
    pub(crate) rx: SideBlock,
    pub(crate) rx_waiting: FlagBlock,
    pub(crate) tx_waiting: FlagBlock,
    pub(crate) control: Control,
}

impl Header {
    /// Whether the channel was marked closed (the fast paths' check).
    #[inline(always)]
    pub(crate) fn is_closed(&self) -> bool {
        // SYNC: pairs with the Release store of closed in
        // `Shared::mark_closed`.
        self.control.closed.load(Ordering::Acquire) != 0
    }
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(offset_of!(Header, tx) == BLOCK);
    assert!(offset_of!(Header, rx) == 2 * BLOCK);
    assert!(offset_of!(Header, rx_waiting) == 3 * BLOCK);
    assert!(offset_of!(Header, tx_waiting) == 4 * BLOCK);
    assert!(offset_of!(Header, control) == 5 * BLOCK);
    assert!(offset_of!(Identity, version) == 8);
    assert!(offset_of!(Identity, capacity) == 16);
    assert!(offset_of!(Identity, semid) == 32);
    assert!(offset_of!(Identity, created) == 40);
    assert!(offset_of!(Identity, key) == 56);
    assert!(offset_of!(Identity, state) == 60);
    assert!(offset_of!(Identity, path_dev) == 64);
    assert!(offset_of!(Identity, creator_uid) == 80);
    assert!(offset_of!(Identity, max_senders) == 84);
    assert!(offset_of!(SideBlock, session) == 56);
    assert!(offset_of!(SideBlock, attached) == 64);
    assert!(size_of::<LaneBlock>() == LANE_SIZE);
    assert!(offset_of!(LaneBlock, rx) == BLOCK);
    assert!(offset_of!(LaneBlock, tx_waiting) == 2 * BLOCK);
    assert!(offset_of!(Control, reserved) == 16);
    assert!(offset_of!(Control, closed) == 24);
    assert!(HEADER_SIZE % 64 == 0);
};

/// What the creator writes into the identity block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identify {
    pub(crate) capacity: u64,
    pub(crate) max_senders: u32,
    pub(crate) semid: i32,
    pub(crate) key: i32,
    pub(crate) mode: u32,
    pub(crate) flags: u32,
    pub(crate) path: Option<(u64, u64)>,
    /// The creating process.
    pub(crate) creator_pid: u32,
    /// The creating process's effective uid.
    pub(crate) creator_uid: u32,
    /// When it was made, in seconds since the Unix epoch.
    pub(crate) created: u64,
}

/// The validated, private copy of what a channel's header says. Read once at
/// attach; never re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Bytes of each lane's data region.
    pub(crate) capacity: u64,
    /// Number of lanes, 1..=MAX_SENDERS.
    pub(crate) lanes: u32,
    /// Offset of lane 0's data region.
    pub(crate) header_size: u64,
    pub(crate) max_message: u64,
    pub(crate) semid: i32,
    pub(crate) flags: u32,
    pub(crate) path: Option<(u64, u64)>,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not a shmchan header at all.
    NotAChannel(String),
    /// A shmchan header of another layout version.
    Version(u32),
    /// A shmchan header whose values cannot be right.
    Corrupt(String),
}

/// Rounds a requested capacity up to a valid one (power of two, at least
/// [`MIN_CAPACITY`]); `None` when it would exceed [`MAX_CAPACITY`].
pub(crate) fn round_capacity(requested: u64) -> Option<u64> {
    let cap = requested.max(MIN_CAPACITY).checked_next_power_of_two()?;
    (cap <= MAX_CAPACITY).then_some(cap)
}

impl Header {
    /// Writes the identity block of a freshly created, zeroed segment. The
    /// caller stores `state = READY` later, once the semaphores are set.
    pub(crate) fn identify(&self, what: &Identify) {
        let id = &self.id;
        id.version.store(VERSION, Ordering::Relaxed);
        id.header_size
            .store(header_size(what.max_senders) as u32, Ordering::Relaxed);
        id.max_senders.store(what.max_senders, Ordering::Relaxed);
        id.capacity.store(what.capacity, Ordering::Relaxed);
        id.max_message
            .store(max_message_for(what.capacity), Ordering::Relaxed);
        id.semid.store(what.semid as u32, Ordering::Relaxed);
        id.creator_pid.store(what.creator_pid, Ordering::Relaxed);
        id.created.store(what.created, Ordering::Relaxed);
        id.mode.store(what.mode & 0o777, Ordering::Relaxed);
        id.flags.store(what.flags, Ordering::Relaxed);
        id.key.store(what.key as u32, Ordering::Relaxed);
        let (dev, ino) = what.path.unwrap_or((0, 0));
        id.path_dev.store(dev, Ordering::Relaxed);
        id.path_ino.store(ino, Ordering::Relaxed);
        id.creator_uid.store(what.creator_uid, Ordering::Relaxed);
        // SYNC: pairs with the Acquire load of magic in `check_magic`: an
        // opener that sees the magic also sees the version written above.
        id.magic.store(MAGIC, Ordering::Release);
    }

    /// Records the semaphore set's id (before `publish_ready`).
    pub(crate) fn set_semid(&self, semid: i32) {
        self.id.semid.store(semid as u32, Ordering::Relaxed);
    }

    /// Marks the header complete.
    pub(crate) fn publish_ready(&self) {
        // SYNC: pairs with the Acquire load of state in `is_ready`: whoever
        // sees READY sees the whole identity block and the initialised
        // semaphore set.
        self.id.state.store(STATE_READY, Ordering::Release);
    }

    /// Whether the creator has finished.
    pub(crate) fn is_ready(&self) -> bool {
        // SYNC: pairs with the Release store in `publish_ready`.
        self.id.state.load(Ordering::Acquire) == STATE_READY
    }

    /// Checks magic and version. `Ok(false)` means "all zero so far": a
    /// creator may still be writing.
    pub(crate) fn check_magic(&self) -> Result<bool, Invalid> {
        // SYNC: pairs with the Release store of magic in `identify`.
        match self.id.magic.load(Ordering::Acquire) {
            MAGIC => {}
            0 => return Ok(false),
            other => {
                return Err(Invalid::NotAChannel(format!(
                    "magic {other:#018x} is not shmchan's"
                )));
            }
        }
        match self.id.version.load(Ordering::Relaxed) {
            VERSION => Ok(true),
            found => Err(Invalid::Version(found)),
        }
    }

    /// Validates a ready header against the real segment size and returns
    /// the private copy of its geometry. Each field is read once.
    pub(crate) fn validate(&self, segment_size: usize) -> Result<Geometry, Invalid> {
        let id = &self.id;
        let header = u64::from(id.header_size.load(Ordering::Relaxed));
        let capacity = id.capacity.load(Ordering::Relaxed);
        let max_message = id.max_message.load(Ordering::Relaxed);
        let lanes = id.max_senders.load(Ordering::Relaxed);
        let corrupt = |what: String| Err(Invalid::Corrupt(what));
        if !(1..=MAX_SENDERS).contains(&lanes) {
            return corrupt(format!("{lanes} lanes, expected 1 to {MAX_SENDERS}"));
        }
        if header != header_size(lanes) {
            return corrupt(format!(
                "header size {header}, expected {} for {lanes} lanes",
                header_size(lanes)
            ));
        }
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return corrupt(format!("capacity {capacity} is not a valid ring size"));
        }
        // At most 2^6 lanes of 2^31 bytes after a header of under 2^15:
        // no overflow in u64.
        if header + u64::from(lanes) * capacity > segment_size as u64 {
            return corrupt(format!(
                "{lanes} lanes of {capacity} bytes do not fit a segment of {segment_size} bytes"
            ));
        }
        if max_message != max_message_for(capacity) {
            return corrupt(format!("max message {max_message} for capacity {capacity}"));
        }
        let (dev, ino) = (
            id.path_dev.load(Ordering::Relaxed),
            id.path_ino.load(Ordering::Relaxed),
        );
        Ok(Geometry {
            capacity,
            lanes,
            header_size: header,
            max_message,
            semid: id.semid.load(Ordering::Relaxed) as i32,
            flags: id.flags.load(Ordering::Relaxed),
            path: (dev, ino).ne(&(0, 0)).then_some((dev, ino)),
        })
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    fn zeroed() -> Box<Header> {
        // SAFETY: every field of Header is an atomic integer, for which
        // all-zero bytes are a valid value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    fn identified(capacity: u64) -> Box<Header> {
        let h = zeroed();
        h.identify(&Identify {
            capacity,
            max_senders: 1,
            semid: 7,
            key: 0x1234,
            mode: 0o600,
            flags: 0,
            path: None,
            creator_pid: 1,
            creator_uid: 0,
            created: 0,
        });
        h.publish_ready();
        h
    }

    #[test]
    fn zero_header_is_initialising() {
        assert_eq!(zeroed().check_magic(), Ok(false));
    }

    #[test]
    fn foreign_magic_is_not_a_channel() {
        let h = zeroed();
        h.id.magic
            .store(u64::from_le_bytes(*b"hello wo"), Ordering::Relaxed);
        assert!(matches!(h.check_magic(), Err(Invalid::NotAChannel(_))));
    }

    #[test]
    fn other_version_is_refused() {
        let h = identified(4096);
        h.id.version.store(1, Ordering::Relaxed);
        assert_eq!(h.check_magic(), Err(Invalid::Version(1)));
    }

    #[test]
    fn valid_header_round_trips() {
        let h = identified(8192);
        assert_eq!(h.check_magic(), Ok(true));
        let g = h.validate(HEADER_SIZE + 8192).unwrap();
        assert_eq!((g.capacity, g.max_message, g.semid), (8192, 8184, 7));
    }

    #[test]
    fn capacity_beyond_segment_is_corrupt() {
        let h = identified(8192);
        assert!(matches!(
            h.validate(HEADER_SIZE + 4096),
            Err(Invalid::Corrupt(_))
        ));
        h.id.capacity.store(5000, Ordering::Relaxed);
        assert!(matches!(h.validate(1 << 20), Err(Invalid::Corrupt(_))));
    }

    #[test]
    fn capacity_rounds_up() {
        assert_eq!(round_capacity(0), Some(4096));
        assert_eq!(round_capacity(5000), Some(8192));
        assert_eq!(round_capacity(u64::MAX), None);
        assert_eq!(round_capacity(MAX_CAPACITY + 1), None);
    }
}
