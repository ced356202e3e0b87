//! Byte offsets in a channel's segment, layout version 2 (docs/layout.md),
//! for the tests that read or write it as a third party would. Lane 0 sits
//! in version 1's blocks; lanes 1 and up in the lane table after them.

pub const MAGIC_AT: usize = 0;
pub const VERSION_AT: usize = 8;
pub const HEADER_SIZE_AT: usize = 12;
pub const CAPACITY_AT: usize = 16;
pub const MAX_MESSAGE_AT: usize = 24;
pub const SEMID_AT: usize = 32;
pub const MAX_SENDERS_AT: usize = 84;
/// The sender's line: `tail`, then its counters.
pub const TAIL_AT: usize = 128;
/// The receiver's line: `head`, then its counters.
pub const HEAD_AT: usize = 256;
pub const RX_WAITING_AT: usize = 384;
pub const TX_WAITING_AT: usize = 512;
pub const TX_CONNECTS_AT: usize = 640;
pub const RX_CONNECTS_AT: usize = 648;
pub const RX_ATTACHED_AT: usize = 660;
pub const CLOSED_AT: usize = 664;
/// The data region (the ring) of a one-lane channel starts here, after
/// the header.
pub const DATA_AT: usize = 768;

/// The lane table: lane `i` >= 1's entry at `768 + 384 × (i − 1)`.
pub const LANE_TABLE_AT: usize = 768;
/// Size of one lane table entry: a sender block, a receiver block and a
/// `tx_waiting` block of 128 bytes each.
pub const LANE_SIZE: usize = 384;
/// In a sender block: `session` (u64) and `attached` (u32).
pub const SESSION_OFF: usize = 56;
pub const ATTACHED_OFF: usize = 64;

/// Where a channel of `lanes` lanes has its data regions (`header_size`).
pub const fn header_size(lanes: usize) -> usize {
    768 + 384 * (lanes - 1)
}

/// Where lane `lane`'s blocks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneAt {
    /// Its sender block: `tail`, counters, `session`, `attached`.
    pub tx: usize,
    /// Its receiver block: `head`.
    pub rx: usize,
    /// Its `tx_waiting` flag.
    pub waiting: usize,
}

/// The blocks of lane `lane`.
pub const fn lane_at(lane: usize) -> LaneAt {
    if lane == 0 {
        return LaneAt {
            tx: TAIL_AT,
            rx: HEAD_AT,
            waiting: TX_WAITING_AT,
        };
    }
    let entry = LANE_TABLE_AT + LANE_SIZE * (lane - 1);
    LaneAt {
        tx: entry,
        rx: entry + 128,
        waiting: entry + 256,
    }
}

/// Where lane `lane`'s data region starts in a channel of `lanes` lanes of
/// `capacity` bytes.
pub const fn data_at(lanes: usize, capacity: usize, lane: usize) -> usize {
    header_size(lanes) + lane * capacity
}
