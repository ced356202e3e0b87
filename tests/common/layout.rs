//! Byte offsets in a channel's segment, layout version 2 with one lane
//! (lane 0 sits in version 1's blocks; docs/layout.md), for the tests that
//! read or write it as a third party would.

pub const MAGIC_AT: usize = 0;
pub const VERSION_AT: usize = 8;
pub const SEMID_AT: usize = 32;
/// The sender's line: `tail`, then its counters.
pub const TAIL_AT: usize = 128;
/// The receiver's line: `head`, then its counters.
pub const HEAD_AT: usize = 256;
pub const RX_WAITING_AT: usize = 384;
pub const TX_WAITING_AT: usize = 512;
pub const CLOSED_AT: usize = 664;
/// The data region (the ring) starts here, after the header.
pub const DATA_AT: usize = 768;
