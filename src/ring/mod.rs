//! The framed single-producer single-consumer ring over a raw byte region.
//!
//! Pure logic over memory: no system calls, no processes, no semaphores.
//! [`Producer`] and [`Consumer`] each keep their own index privately and a
//! cached copy of the other side's, reloading it only when the cache says
//! full (producer) or empty (consumer). Everything read from the shared
//! region (the peer's index, frame headers) is checked before use; a
//! violation is a [`Corrupt`] and nothing out of bounds is ever touched.
//!
//! `unsafe` is allowed here because frames are read and written through raw
//! pointers into memory that another process shares; every access is to a
//! range checked against the region's capacity first.
//!
//! Frame: `u32 len | u32 kind` (little-endian, 8 bytes), then the payload,
//! padded to a multiple of 8. A frame never wraps: when it does not fit before
//! the end of the region, the producer first publishes a padding frame that
//! runs exactly to the end.
//!
//! How long a consumer waits before it reloads `tail` is not the ring's
//! business: [`Consumer::peek_paced`] reports each reload to a [`Pace`]
//! that the caller owns (the receiver's catch-up pause, `wait::CatchUp`).
//!
//! In the loom build of the unit tests the data region is a slice of loom's checked cells,
//! one per 8-byte word, so that the model checker reports any read of a
//! frame that is not ordered after its write (and any overwrite of a frame
//! still being read); a normal build reads and writes raw memory as below.
#![allow(unsafe_code)]

#[cfg(all(test, not(loom)))]
mod proptests;
#[cfg(all(test, not(loom)))]
mod tests;

use std::num::NonZeroU32;
use std::ptr::NonNull;

use crate::sync::{AtomicU64, Ordering, ordering};

/// Size of a frame header: u32 length, u32 kind.
pub(crate) const FRAME_HEADER: u64 = 8;

/// The data region: raw bytes, or under loom one checked cell per word.
#[cfg(not(all(test, loom)))]
pub(crate) type Data = NonNull<u8>;
/// The data region: raw bytes, or under loom one checked cell per word.
#[cfg(all(test, loom))]
pub(crate) type Data = NonNull<loom::cell::UnsafeCell<u64>>;

/// Frame kind of a message.
pub(crate) const KIND_MESSAGE: u32 = 1;
/// Frame kind of padding up to the end of the region.
pub(crate) const KIND_PADDING: u32 = 2;
/// The frame header's kind word: the kind in its low 8 bits; in a message
/// frame, the upper 24 bits are the low 24 bits of the sending session
/// (the tag the receiver attributes the message by).
const KIND_BITS: u32 = 0xff;

/// The shared ring was found in a state no honest peer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

/// The largest payload a ring of `capacity` bytes carries.
pub(crate) const fn max_message_for(capacity: u64) -> u64 {
    capacity - FRAME_HEADER
}

/// Bytes a frame of `len` payload bytes occupies: the header and the
/// payload padded to 8. Written as one add and one mask (the header is a
/// multiple of 8, so adding it before the rounding is the same): a run's
/// next frame position waits on this sum, message after message.
#[inline(always)]
pub(crate) const fn frame_size(len: u64) -> u64 {
    const { assert!(FRAME_HEADER % 8 == 0) };
    (len + (FRAME_HEADER + 7)) & !7
}

/// Where a ring lives: the two indices and the data region.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingPtrs {
    pub(crate) head: NonNull<AtomicU64>,
    pub(crate) tail: NonNull<AtomicU64>,
    pub(crate) data: Data,
    /// Power of two, a multiple of 8.
    pub(crate) capacity: u64,
}

impl RingPtrs {
    fn head(&self) -> &AtomicU64 {
        // SAFETY: `Producer::new`/`Consumer::new` require the pointers to stay
        // valid for the life of the side that holds them.
        unsafe { self.head.as_ref() }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as for `head`.
        unsafe { self.tail.as_ref() }
    }

    fn offset(&self, pos: u64) -> u64 {
        pos & (self.capacity - 1)
    }

    /// Pointer to byte `off` of the region, or one past its end (the
    /// payload of an empty frame in the region's last 8 bytes).
    ///
    /// # Safety
    ///
    /// `off` must be at most the capacity.
    #[cfg(not(all(test, loom)))]
    unsafe fn at(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.capacity);
        // SAFETY: the caller keeps off inside the region or one past it.
        unsafe { self.data.as_ptr().add(off as usize) }
    }

    /// Asks the CPU to start loading the cache line that holds byte `off`
    /// into its second-level cache (a hint: it reads nothing into the
    /// program, cannot fault, and is left out where the architecture has
    /// no stable intrinsic for it).
    #[inline(always)]
    fn prefetch(&self, off: u64) {
        debug_assert!(off < self.capacity);
        #[cfg(all(target_arch = "x86_64", not(all(test, loom))))]
        // SAFETY: `off` is below the capacity (asserted above in debug
        // builds; callers reduce a position modulo the capacity or take
        // it from a validated frame), so the address is in the mapping;
        // and a prefetch is only a hint, which neither reads into the
        // program nor faults.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T1>(self.at(off).cast::<i8>().cast_const());
        }
        #[cfg(not(all(target_arch = "x86_64", not(all(test, loom)))))]
        let _ = off;
    }

    fn write_frame_header(&self, off: u64, len: u32, kind: u32) {
        debug_assert!(off % 8 == 0 && off + FRAME_HEADER <= self.capacity);
        let word = u64::from(len) | (u64::from(kind) << 32);
        self.write_word(off, word.to_le());
    }

    fn read_frame_header(&self, off: u64) -> (u64, u32) {
        debug_assert!(off % 8 == 0 && off + FRAME_HEADER <= self.capacity);
        // Read once, into a local.
        let word = u64::from_le(self.read_word(off));
        (word & 0xffff_ffff, (word >> 32) as u32)
    }

    #[cfg(not(all(test, loom)))]
    #[inline(always)]
    fn write_word(&self, off: u64, word: u64) {
        // SAFETY: callers pass an 8-aligned off with off + 8 <= capacity
        // (frames start at multiples of 8 in a region whose size is a
        // multiple of 8).
        unsafe { self.at(off).cast::<u64>().write_volatile(word) };
    }

    #[cfg(not(all(test, loom)))]
    #[inline(always)]
    fn read_word(&self, off: u64) -> u64 {
        // SAFETY: as in `write_word`.
        unsafe { self.at(off).cast::<u64>().read_volatile() }
    }

    /// Copies `msg` into the region at `off`, the payload of a frame that
    /// fits: `off + msg.len() <= capacity`.
    #[cfg(not(all(test, loom)))]
    #[inline]
    fn copy_in(&self, off: u64, msg: &[u8]) {
        debug_assert!(off + msg.len() as u64 <= self.capacity);
        // SAFETY: the caller keeps off..off + len inside the region (a
        // payload of an empty frame may start one past its end, and copies
        // nothing); the bytes are free room, which nobody else reads or
        // writes until the producer publishes them, so they do not overlap
        // `msg`, whatever memory it lies in.
        unsafe { copy_small(msg.as_ptr(), self.at(off), msg.len()) };
    }

    /// Copies `msg` into the region at `off`, word by word through loom's
    /// checked cells.
    #[cfg(all(test, loom))]
    fn copy_in(&self, off: u64, msg: &[u8]) {
        for (i, chunk) in msg.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_word(off + 8 * i as u64, u64::from_le_bytes(word));
        }
    }

    /// The checked cell of the word at `off`.
    #[cfg(all(test, loom))]
    fn cell(&self, off: u64) -> &loom::cell::UnsafeCell<u64> {
        assert!(
            off % 8 == 0 && off + 8 <= self.capacity,
            "word {off} out of bounds"
        );
        // SAFETY: the region holds capacity / 8 cells and off / 8 is below that.
        unsafe { &*self.data.as_ptr().add(off as usize / 8) }
    }

    #[cfg(all(test, loom))]
    fn write_word(&self, off: u64, word: u64) {
        // SAFETY: loom checks that no access races with this one.
        self.cell(off).with_mut(|p| unsafe { p.write(word) });
    }

    #[cfg(all(test, loom))]
    fn read_word(&self, off: u64) -> u64 {
        // SAFETY: loom checks that no write races with this read.
        self.cell(off).with(|p| unsafe { p.read() })
    }
}

/// Copies `len` bytes from `from` to `to` as `copy_nonoverlapping` does;
/// up to 32 bytes as two fixed-size copies that may overlap (the first
/// and the last bytes), without the call to `memcpy` that a copy of a
/// length known only at run time costs.
///
/// # Safety
///
/// As for `std::ptr::copy_nonoverlapping(from, to, len)`.
#[cfg(not(all(test, loom)))]
#[inline]
unsafe fn copy_small(from: *const u8, to: *mut u8, len: usize) {
    use std::ptr::copy_nonoverlapping as copy;
    // SAFETY: each copy stays within the first `len` bytes of both, which
    // the caller vouches for, and the two ranges do not overlap.
    unsafe {
        match len {
            0 => {}
            1..=3 => {
                *to = *from;
                *to.add(len / 2) = *from.add(len / 2);
                *to.add(len - 1) = *from.add(len - 1);
            }
            4..=7 => {
                copy(from, to, 4);
                copy(from.add(len - 4), to.add(len - 4), 4);
            }
            8..=15 => {
                copy(from, to, 8);
                copy(from.add(len - 8), to.add(len - 8), 8);
            }
            16..=32 => {
                copy(from, to, 16);
                copy(from.add(len - 16), to.add(len - 16), 16);
            }
            _ => copy(from, to, len),
        }
    }
}

/// The writing side. Owns `tail`.
#[derive(Debug)]
pub(crate) struct Producer {
    ring: RingPtrs,
    max_message: u64,
    tail: u64,
    head_cache: u64,
    published_padding: bool,
    /// The kind word of this producer's message frames (its tag included).
    kind_word: u32,
    /// A reload of head found too little room: until there is room for
    /// the frame and [`REFILL`] bytes more, wait (see `has_room`).
    refilling: bool,
}

/// Room beyond its frame that a producer which caught up with the consumer
/// (a reload of `head` found too little room) waits for before it writes
/// again, at most an eighth of the ring.
///
/// A producer that writes as soon as one frame's room is free writes into
/// the cache line the consumer has just left, or is still reading (frames
/// do not end on line boundaries): the line crosses between the cores for
/// every message, the consumer slows down, and the ring stays full, a
/// regime that feeds itself (benchmarks/README.md, "Lanes"). Waiting for a
/// few lines of room makes each line change hands once. The mirror of the
/// receiver's catch-up pause (`wait::CatchUp`).
///
/// The slack is a preference, never a reason to sleep: a waiting sender's
/// last look before it parks takes any room (`channel::sender`), so a
/// consumer that took one message and then stopped (to wait for something
/// this sender does next, say) leaves the sender waiting no longer than
/// its spin budget beside the room it needs.
pub(crate) const REFILL: u64 = 4096;

/// How far ahead of the frame it reads a consumer asks for the ring's
/// lines ([`Consumer::prefetch_at`]), in bytes.
///
/// A consumer's reads form a chain: where the next frame starts is in the
/// header of the one before it, so each new line of frames costs one
/// whole transfer from the producer's core (or the shared cache), one
/// after the other, and the hardware's own prefetching did not hide it:
/// with 64-byte messages (72-byte frames, a new line for nearly every
/// message) `recv_many` ran at half the rate of `recv_into`. Asking for
/// one line this far ahead per message, among the bytes already
/// published, overlaps those transfers (benchmarks/README.md, "Reading
/// ahead"; 64-512 B 1.3x-2.3x faster in cargo's default release profile,
/// 1.2x-1.5x under LTO). Into the second-level cache, not the first:
/// asking for it into the first cost 1 KiB messages about a tenth of
/// their rate (default release profile).
pub(crate) const PREFETCH_DISTANCE: u64 = 4096;

/// How much of a large payload a zero-copy receive asks for up front
/// ([`Consumer::prefetch_payload`]), in bytes: its first lines, a burst
/// short enough for the line-fill buffers (about a dozen), so that the
/// first transfers overlap while the reader's own loop and the hardware
/// prefetcher get going.
///
/// It was 64 KiB: every line of the payload asked for at once. On the box
/// of stop 25 that left reading 16 and 64 KiB in place at 0.92x and 0.99x
/// of the copying receive (15 rounds, both profiles), likely because
/// hundreds of prefetches in a row wait for fill buffers a dozen at a
/// time, so that the reader waits for most of the payload before its
/// loop begins (not profiled). With 1 KiB: 1.07x / 1.20x at 16 KiB and
/// 1.24x / 1.21x at 64 KiB (default release / LTO). No payload prefetch
/// at all measured the same there;
/// the first lines are kept for the boxes where a reader's first misses
/// cost more (an earlier box, benchmarks/README.md, "Reading ahead").
/// Figures: benchmarks/README.md, "Zero-copy at 16-64 KiB: a short
/// payload prefetch".
pub(crate) const PREFETCH_PAYLOAD: u64 = 1024;

impl Producer {
    /// A producer continuing from the ring's current state.
    ///
    /// # Safety
    ///
    /// The pointers in `ring` must stay valid for the life of the producer,
    /// the region must be `capacity` bytes, and no other producer may run on
    /// the same ring meanwhile.
    pub(crate) unsafe fn new(ring: RingPtrs, max_message: u64) -> Result<Producer, Corrupt> {
        let tail = ring.tail().load(Ordering::Relaxed);
        // SYNC: pairs with the Release store of head in `Consumer::release`.
        let head = ring.head().load(Ordering::Acquire);
        check_span(head, tail, ring.capacity)?;
        Ok(Producer {
            ring,
            max_message,
            tail,
            head_cache: head,
            published_padding: false,
            kind_word: KIND_MESSAGE,
            refilling: false,
        })
    }

    /// Finds room for a frame of `len` payload bytes and returns the payload's
    /// offset in the region, or `None` when the ring has no room now. May
    /// publish a padding frame first (see [`take_published_padding`]).
    ///
    /// [`take_published_padding`]: Self::take_published_padding
    pub(crate) fn try_reserve(&mut self, len: u64) -> Result<Option<u64>, Corrupt> {
        self.reserve_with(len, false)
    }

    /// The ring's capacity in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// [`try_reserve`](Self::try_reserve) for a caller that will wait for
    /// room anyway: once a reload of `head` has found too little room, it
    /// waits for [`REFILL`] bytes more than the frame needs.
    #[inline]
    pub(crate) fn try_reserve_refill(&mut self, len: u64) -> Result<Option<u64>, Corrupt> {
        self.reserve_with(len, true)
    }

    #[inline]
    fn reserve_with(&mut self, len: u64, refill: bool) -> Result<Option<u64>, Corrupt> {
        debug_assert!(len <= self.max_message);
        let frame = frame_size(len);
        loop {
            let off = self.ring.offset(self.tail);
            let to_end = self.ring.capacity - off;
            if frame <= to_end {
                return Ok(self.has_room(frame, refill)?.then_some(off + FRAME_HEADER));
            }
            if !self.has_room(to_end, refill)? {
                return Ok(None);
            }
            self.publish_padding(off, to_end);
        }
    }

    /// The send fast path's reservation: the payload's offset when the
    /// frame fits before the region's end and there is room (as
    /// [`try_reserve_refill`](Self::try_reserve_refill) with `refill`, or
    /// [`try_reserve`](Self::try_reserve)); `None` for anything else (a
    /// padding frame to publish or announce, no room, an index to judge),
    /// which those then handle and name. No `Result`, for the reason
    /// [`Consumer::peek_fast`] gives.
    #[inline(always)]
    pub(crate) fn reserve_fast(&mut self, len: u64, refill: bool) -> Option<u64> {
        if self.published_padding {
            return None;
        }
        let frame = frame_size(len);
        let off = self.ring.offset(self.tail);
        if frame > self.ring.capacity - off {
            return None;
        }
        matches!(self.has_room(frame, refill), Ok(true)).then_some(off + FRAME_HEADER)
    }

    /// Publishes the frame reserved by the last successful
    /// [`try_reserve`](Self::try_reserve) with `len` payload bytes, which the
    /// caller has written.
    #[inline]
    pub(crate) fn commit(&mut self, len: u64) {
        let off = self.ring.offset(self.tail);
        self.ring
            .write_frame_header(off, len as u32, self.kind_word);
        self.advance(frame_size(len));
    }

    /// Tags every message frame from now on with `tag` (24 bits: the low
    /// bits of the sender's session).
    pub(crate) fn set_tag(&mut self, tag: u32) {
        self.kind_word = KIND_MESSAGE | (tag << 8);
    }

    /// Pointer to the payload at `off` (from `try_reserve`).
    #[cfg(not(all(test, loom)))]
    #[inline]
    pub(crate) fn payload(&self, off: u64) -> *mut u8 {
        // SAFETY: try_reserve returned off = frame start + 8 <= capacity.
        unsafe { self.ring.at(off) }
    }

    /// Writes `msg` as the payload at `off` (from `try_reserve`), word by
    /// word through loom's checked cells.
    #[cfg(all(test, loom))]
    pub(crate) fn write_payload(&self, off: u64, msg: &[u8]) {
        self.ring.copy_in(off, msg);
    }

    /// Whether a padding frame was published since the last call: the
    /// receiver must then be woken like after a commit, or a sender waiting
    /// for it to skip the padding would wait for ever.
    pub(crate) fn take_published_padding(&mut self) -> bool {
        std::mem::take(&mut self.published_padding)
    }

    fn publish_padding(&mut self, off: u64, to_end: u64) {
        self.ring
            .write_frame_header(off, (to_end - FRAME_HEADER) as u32, KIND_PADDING);
        self.advance(to_end);
        self.published_padding = true;
    }

    #[inline]
    fn advance(&mut self, by: u64) {
        self.tail += by;
        // SYNC: pairs with the Acquire load of tail in `Consumer::reload_tail`:
        // the frame written above is visible to whoever sees this tail.
        self.ring
            .tail()
            .store(self.tail, ordering!(TailRelease, Release));
    }

    /// Whether `need` bytes are free; with `refill`, as [`REFILL`] says.
    #[inline(always)]
    fn has_room(&mut self, need: u64, refill: bool) -> Result<bool, Corrupt> {
        if !self.refilling && self.ring.capacity - (self.tail - self.head_cache) >= need {
            return Ok(true);
        }
        self.reload_for(self.tail, need, refill)
    }

    /// `has_room` past the cached head, for bytes written up to `end`
    /// (`tail`, or a batch's unpublished end): a refill in progress, or a
    /// reload.
    fn reload_for(&mut self, end: u64, need: u64, refill: bool) -> Result<bool, Corrupt> {
        let cap = self.ring.capacity;
        // Never more than the ring can hold: the frame plus the slack fit
        // in an empty ring, so the wait ends once the consumer drains it.
        let want = match refill {
            true => need + REFILL.min(cap / 8).min(cap - need),
            false => need,
        };
        if cap - (end - self.head_cache) >= want {
            self.refilling = false;
            return Ok(true);
        }
        // Here, and not on every reservation: see `check_own_index`.
        self.check_own_index()?;
        // SYNC: pairs with the Release store of head in `Consumer::release`:
        // the consumer is done reading the bytes it released.
        let head = self.ring.head().load(Ordering::Acquire);
        if head < self.head_cache {
            return Err(Corrupt(format!(
                "head went back from {} to {head}",
                self.head_cache
            )));
        }
        check_span(head, end, cap)?;
        self.head_cache = head;
        let room = cap - (end - head) >= want;
        self.refilling = !room;
        Ok(room)
    }

    /// Only this side writes tail: any other value there is corruption.
    ///
    /// Checked whenever the producer reloads head (its cached head says
    /// the ring is full, at least once per lap), not on every reservation:
    /// the consumer polls tail's cache line, and a load of it ahead of each
    /// tail store put a cache miss on every message's path
    /// (`benchmarks/README.md`, "What changed", point 6). The producer
    /// never uses the shared value; a tail changed behind its back is
    /// overwritten by its next commit, and the consumer validates whatever
    /// it saw meanwhile.
    fn check_own_index(&self) -> Result<(), Corrupt> {
        let shared = self.ring.tail().load(Ordering::Relaxed);
        if shared != self.tail {
            return Err(Corrupt(format!(
                "tail is {shared}, but this sender last wrote {}",
                self.tail
            )));
        }
        Ok(())
    }
}

/// What one run of a batch published ([`Producer::write_run`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Run {
    /// Messages published: the first `sent` of those given.
    pub(crate) sent: usize,
    /// Their payload bytes.
    pub(crate) bytes: u64,
    /// Whether `tail` moved: messages, or a padding frame alone (which
    /// the consumer must skip before the producer can go on), were
    /// published, and the consumer must be woken like after a commit.
    pub(crate) published: bool,
}

/// Batches: several frames written back to back and published with one
/// store of `tail` (DESIGN.md allows it inside one call that takes them
/// all). The single-message path above does not go through here.
impl Producer {
    /// Writes the frames of the first messages of `msgs` that there is
    /// room for now, back to back from `tail` (a message that does not fit
    /// before the end of the region goes at offset 0, behind a padding
    /// frame to the end), then publishes them all, padding included, with
    /// one Release store of `tail`. Room is measured as by
    /// [`try_reserve`](Self::try_reserve), or with `refill` as by
    /// [`try_reserve_refill`](Self::try_reserve_refill); the run stops at
    /// the first message there is no room for.
    ///
    /// Every message must be at most the maximum length (the caller checks
    /// the whole batch first). On corruption, met when reloading `head`,
    /// nothing of this run is published: the frames written are as a
    /// killed sender's, invisible.
    #[inline]
    pub(crate) fn write_run<M: AsRef<[u8]>>(
        &mut self,
        msgs: &[M],
        refill: bool,
    ) -> Result<Run, Corrupt> {
        let mut end = self.tail;
        let mut run = Run::default();
        for msg in msgs {
            let msg = msg.as_ref();
            let len = msg.len() as u64;
            debug_assert!(len <= self.max_message);
            let frame = frame_size(len);
            let Some(off) = self.place(&mut end, frame, refill)? else {
                break;
            };
            self.ring.copy_in(off + FRAME_HEADER, msg);
            self.ring
                .write_frame_header(off, len as u32, self.kind_word);
            end += frame;
            run.sent += 1;
            run.bytes += len;
        }
        run.published = end != self.tail;
        if run.published {
            // One store for the run: every frame above, and any padding,
            // written before it (see `advance`).
            self.advance(end - self.tail);
        }
        Ok(run)
    }

    /// Where in the region a frame of `frame` bytes written at position
    /// `end` goes, if there is room for it: at `end`, or at offset 0
    /// behind a padding frame written (not published) at `end`, which then
    /// moves past the padding. `None` when there is no room; a padding
    /// frame written before that stays written, to be published with the
    /// run.
    #[inline]
    fn place(&mut self, end: &mut u64, frame: u64, refill: bool) -> Result<Option<u64>, Corrupt> {
        let off = self.ring.offset(*end);
        let to_end = self.ring.capacity - off;
        if frame <= to_end {
            return Ok(self.room_at(*end, frame, refill)?.then_some(off));
        }
        if !self.room_at(*end, to_end, refill)? {
            return Ok(None);
        }
        self.ring
            .write_frame_header(off, (to_end - FRAME_HEADER) as u32, KIND_PADDING);
        *end += to_end;
        // At offset 0 now, where every frame fits before the end.
        Ok(self.room_at(*end, frame, refill)?.then_some(0))
    }

    /// [`has_room`](Self::has_room) for bytes written up to `end`.
    #[inline]
    fn room_at(&mut self, end: u64, need: u64, refill: bool) -> Result<bool, Corrupt> {
        if !self.refilling && self.ring.capacity - (end - self.head_cache) >= need {
            return Ok(true);
        }
        self.reload_for(end, need, refill)
    }
}

/// A validated message frame: where its payload is and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// In the data region, whose capacity a consumer checks fits in 32
    /// bits (so that a frame is 12 bytes and travels in registers); never
    /// 0, as a payload follows its frame header, which gives `Option`s of
    /// frames a niche.
    pub(crate) offset: NonZeroU32,
    pub(crate) len: u32,
    /// The sending session's tag (the kind word's upper 24 bits).
    pub(crate) tag: u32,
}

/// What [`Consumer::peek_fast`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fast {
    /// A valid message frame at `head`.
    Message(Frame),
    /// Nothing queued (`tail` reloaded).
    Empty,
    /// Something for [`Consumer::peek_paced`] to judge.
    Slow,
}

/// The reading side. Owns `head`.
#[derive(Debug)]
pub(crate) struct Consumer {
    ring: RingPtrs,
    max_message: u64,
    head: u64,
    tail_cache: u64,
    released_padding: bool,
}

/// The caller's say in when a consumer reloads `tail`: told of every
/// reload, it may wait and ask for one more.
pub(crate) trait Pace {
    /// A reload of `tail` found `queued` bytes (0: the ring is empty).
    /// Returning `true` means the pacer has waited and wants `tail`
    /// reloaded once more before the consumer reads on.
    fn reloaded(&mut self, queued: u64) -> bool;
    /// After the extra reload asked for: whether it found more than before.
    fn waited(&mut self, grew: bool);
}

/// No pacing: read whatever a reload finds at once.
impl Pace for () {
    #[inline]
    fn reloaded(&mut self, _queued: u64) -> bool {
        false
    }

    #[inline]
    fn waited(&mut self, _grew: bool) {}
}

impl Consumer {
    /// A consumer continuing from the ring's current state.
    ///
    /// # Safety
    ///
    /// As for [`Producer::new`], with "consumer" for "producer".
    pub(crate) unsafe fn new(ring: RingPtrs, max_message: u64) -> Result<Consumer, Corrupt> {
        // Frames keep 32-bit offsets; the layout's largest capacity is 2^31.
        if ring.capacity > u64::from(u32::MAX) {
            return Err(Corrupt(format!(
                "a ring of {} bytes is above the 4 GiB a consumer reads",
                ring.capacity
            )));
        }
        let head = ring.head().load(Ordering::Relaxed);
        // SYNC: pairs with the Release store of tail in `Producer::advance`.
        let tail = ring.tail().load(Ordering::Acquire);
        check_span(head, tail, ring.capacity)?;
        Ok(Consumer {
            ring,
            max_message,
            head,
            tail_cache: tail,
            released_padding: false,
        })
    }

    /// The next message frame, validated, or `None` when the ring is empty.
    /// Padding frames are released on the way.
    #[cfg(test)]
    pub(crate) fn peek(&mut self) -> Result<Option<Frame>, Corrupt> {
        self.peek_paced(&mut ())
    }

    /// [`peek`](Self::peek), telling `pace` of each reload of `tail`.
    #[inline]
    pub(crate) fn peek_paced(&mut self, pace: &mut impl Pace) -> Result<Option<Frame>, Corrupt> {
        self.check_own_index()?;
        loop {
            if self.head == self.tail_cache && !self.reload_paced(self.head, pace)? {
                return Ok(None);
            }
            let off = self.ring.offset(self.head);
            let avail = self.tail_cache - self.head;
            let (len, word) = self.ring.read_frame_header(off);
            match word & KIND_BITS {
                KIND_MESSAGE => {
                    return self
                        .check_message(self.head, off, len, avail, word >> 8)
                        .map(Some);
                }
                KIND_PADDING => self.skip_padding(off, len, avail)?,
                other => {
                    return Err(Corrupt(format!(
                        "unknown frame kind {other} at {}",
                        self.head
                    )));
                }
            }
        }
    }

    /// The receive fast path's look: a valid message frame at `head`, or
    /// an empty ring, or "look the slow way" for anything else (padding,
    /// released padding not yet taken, an index to judge). Returns no
    /// `Result`: a `Corrupt` carries a `String`, and a `Frame` that came
    /// back through that enum's memory was read with a wider load than it
    /// was written with, a store-forwarding stall on every message that
    /// also waited for the previous message's `head` store to leave the
    /// store buffer (`benchmarks/README.md`, "The receive path's
    /// store-forwarding stall"). [`peek_paced`](Self::peek_paced) repeats
    /// every check and names what it finds.
    #[inline(always)]
    pub(crate) fn peek_fast(&mut self, pace: &mut impl Pace) -> Fast {
        if self.released_padding || self.ring.head().load(Ordering::Relaxed) != self.head {
            return Fast::Slow;
        }
        if self.head == self.tail_cache {
            match self.reload_paced(self.head, pace) {
                Ok(true) => {}
                Ok(false) => return Fast::Empty,
                Err(_) => return Fast::Slow,
            }
        }
        let off = self.ring.offset(self.head);
        let avail = self.tail_cache - self.head;
        let (len, word) = self.ring.read_frame_header(off);
        self.prefetch_at(self.head);
        if word & KIND_BITS != KIND_MESSAGE {
            return Fast::Slow;
        }
        match self.message_at(off, len, avail, word >> 8) {
            Some(frame) => Fast::Message(frame),
            None => Fast::Slow,
        }
    }

    /// Pointer to a frame's payload.
    #[cfg(not(all(test, loom)))]
    #[inline]
    pub(crate) fn payload(&self, frame: Frame) -> *const u8 {
        // SAFETY: peek validated frame.offset + len <= capacity.
        unsafe { self.ring.at(u64::from(frame.offset.get())) }
    }

    /// Copies a frame's payload out, word by word through loom's checked
    /// cells.
    #[cfg(all(test, loom))]
    pub(crate) fn read_payload(&self, frame: Frame) -> Vec<u8> {
        let mut out = Vec::with_capacity(frame.len as usize + 8);
        for i in 0..u64::from(frame.len).div_ceil(8) {
            let word = self.ring.read_word(u64::from(frame.offset.get()) + 8 * i);
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.truncate(frame.len as usize);
        out
    }

    /// Releases `frame` (the one `peek` returned last) to the producer.
    #[inline]
    pub(crate) fn release(&mut self, frame: Frame) {
        self.advance(frame_size(u64::from(frame.len)));
    }

    /// Whether a padding frame was released since the last call (the
    /// sender may be waiting for that room).
    pub(crate) fn take_released_padding(&mut self) -> bool {
        std::mem::take(&mut self.released_padding)
    }

    /// Whether committed bytes are queued, as last seen (no reload).
    pub(crate) fn has_cached(&self) -> bool {
        self.head != self.tail_cache
    }

    /// Whether the ring is empty and untouched, by one look at each index:
    /// the cheap way to pass over a lane nobody sends on. `false` means
    /// "peek to find out" (something queued, released padding not yet
    /// taken, or an index that [`peek_paced`](Self::peek_paced) must
    /// judge). An empty answer is a reload that found nothing, and `pace`
    /// is told so, as `peek_paced` would tell it.
    #[inline]
    pub(crate) fn is_idle(&mut self, pace: &mut impl Pace) -> bool {
        if self.head != self.tail_cache || self.released_padding {
            return false;
        }
        // Relaxed, both: nothing is read on the strength of these loads.
        // When they say empty we read nothing; otherwise `peek_paced`
        // checks head and reloads tail with Acquire before reading.
        if self.ring.head().load(Ordering::Relaxed) != self.head
            || self.ring.tail().load(Ordering::Relaxed) != self.head
        {
            return false;
        }
        let pause = pace.reloaded(0);
        debug_assert!(!pause, "no pace pauses on an empty ring");
        true
    }

    #[inline]
    fn advance(&mut self, by: u64) {
        self.head += by;
        // SYNC: pairs with the Acquire load of head in `Producer::has_room`:
        // our reads of the released bytes happen before the producer reuses them.
        self.ring
            .head()
            .store(self.head, ordering!(HeadRelease, Release));
    }

    /// Reloads tail, and once more if `pace` waited; returns whether
    /// anything is queued from position `from` (head, or a run's end).
    fn reload_paced(&mut self, from: u64, pace: &mut impl Pace) -> Result<bool, Corrupt> {
        self.reload_tail()?;
        if pace.reloaded(self.tail_cache - from) {
            let before = self.tail_cache;
            self.reload_tail()?;
            pace.waited(self.tail_cache != before);
        }
        Ok(self.tail_cache != from)
    }

    /// Reloads tail; returns whether anything is queued.
    fn reload_tail(&mut self) -> Result<bool, Corrupt> {
        // SYNC: pairs with the Release store of tail in `Producer::advance`.
        let tail = self.ring.tail().load(Ordering::Acquire);
        if tail < self.tail_cache {
            return Err(Corrupt(format!(
                "tail went back from {} to {tail}",
                self.tail_cache
            )));
        }
        check_span(self.head, tail, self.ring.capacity)?;
        self.tail_cache = tail;
        Ok(tail != self.head)
    }

    /// The message frame at position `pos` (region offset `off`, `avail`
    /// committed bytes from there), validated.
    #[inline(always)]
    fn check_message(
        &self,
        pos: u64,
        off: u64,
        len: u64,
        avail: u64,
        tag: u32,
    ) -> Result<Frame, Corrupt> {
        self.message_at(off, len, avail, tag)
            .ok_or_else(|| self.bad_message(pos, len, avail))
    }

    /// The message frame of `len` payload bytes at region offset `off`,
    /// `avail` committed bytes from there, if it is valid: no longer than
    /// the maximum, inside the committed bytes and the region.
    #[inline(always)]
    fn message_at(&self, off: u64, len: u64, avail: u64, tag: u32) -> Option<Frame> {
        let size = frame_size(len);
        if len > self.max_message || size > avail || size > self.ring.capacity - off {
            return None;
        }
        // Both fit: off + FRAME_HEADER + size <= capacity, which `new`
        // checked is at most u32::MAX.
        // 1 + (off + FRAME_HEADER - 1): off + FRAME_HEADER, never 0.
        let offset = NonZeroU32::MIN.saturating_add((off + FRAME_HEADER - 1) as u32);
        Some(Frame {
            offset,
            len: len as u32,
            tag,
        })
    }

    /// Why [`check_message`](Self::check_message) refused a frame: kept out
    /// of line, so that the accepted frame stays in registers on the way
    /// back (a `Frame` returned through memory from a call cost a
    /// store-forwarding stall behind the previous message's `head` store).
    #[cold]
    #[inline(never)]
    fn bad_message(&self, pos: u64, len: u64, avail: u64) -> Corrupt {
        if len > self.max_message {
            return Corrupt(format!(
                "frame at {pos} claims {len} bytes, above the maximum {}",
                self.max_message
            ));
        }
        Corrupt(format!(
            "frame at {pos} of {len} bytes runs past the {avail} committed bytes"
        ))
    }

    fn skip_padding(&mut self, off: u64, len: u64, avail: u64) -> Result<(), Corrupt> {
        let size = self.padding_size(self.head, off, len, avail)?;
        self.advance(size);
        self.released_padding = true;
        Ok(())
    }

    /// The size of the padding frame at position `pos` (as
    /// [`check_message`](Self::check_message)), validated: it must run
    /// exactly to the end of the region.
    fn padding_size(&self, pos: u64, off: u64, len: u64, avail: u64) -> Result<u64, Corrupt> {
        let size = FRAME_HEADER + len;
        if size != self.ring.capacity - off || size > avail {
            return Err(Corrupt(format!(
                "padding frame at {pos} of {len} bytes does not end the region"
            )));
        }
        Ok(size)
    }

    /// Only this side writes head: any other value there is corruption.
    fn check_own_index(&self) -> Result<(), Corrupt> {
        let shared = self.ring.head().load(Ordering::Relaxed);
        if shared != self.head {
            return Err(Corrupt(format!(
                "head is {shared}, but this receiver last wrote {}",
                self.head
            )));
        }
        Ok(())
    }
}

/// Runs: frames read one after the other and released together, with one
/// store of `head` (the consumer's own index: when it releases is its
/// choice). The single-message path above does not go through here.
impl Consumer {
    /// The next message frame `ahead` bytes past `head`, validated: the
    /// frames before it are read and not yet released (a run, begun with
    /// a frame from [`peek_paced`](Self::peek_paced)). Reloads `tail`
    /// when the cached copy ends there, telling `pace` as `peek_paced`
    /// does. A padding frame on the way is passed over: `ahead` moves past
    /// it, and it is released with the run.
    pub(crate) fn peek_ahead(
        &mut self,
        ahead: &mut u64,
        pace: &mut impl Pace,
    ) -> Result<Option<Frame>, Corrupt> {
        loop {
            let pos = self.head + *ahead;
            debug_assert!(pos <= self.tail_cache);
            if pos == self.tail_cache && !self.reload_paced(pos, pace)? {
                return Ok(None);
            }
            let off = self.ring.offset(pos);
            let avail = self.tail_cache - pos;
            let (len, word) = self.ring.read_frame_header(off);
            match word & KIND_BITS {
                KIND_MESSAGE => {
                    return self
                        .check_message(pos, off, len, avail, word >> 8)
                        .map(Some);
                }
                KIND_PADDING => *ahead += self.padding_size(pos, off, len, avail)?,
                other => return Err(Corrupt(format!("unknown frame kind {other} at {pos}"))),
            }
        }
    }

    /// [`cached_at`](Self::cached_at) `ahead` bytes past `head`.
    #[cfg(test)]
    pub(crate) fn cached_ahead(&self, ahead: u64) -> Option<Frame> {
        self.cached_at(self.head + ahead)
    }

    /// Where a run that has read `ahead` bytes goes on: the position
    /// [`cached_at`](Self::cached_at) and [`prefetch_at`](Self::prefetch_at)
    /// take. A run's loop follows positions rather than lengths read: one
    /// add fewer between a frame's header and the next one's load.
    #[inline(always)]
    pub(crate) fn run_pos(&self, ahead: u64) -> u64 {
        self.head + ahead
    }

    /// How far past `head` the position `pos` (from
    /// [`run_pos`](Self::run_pos)) lies.
    #[inline(always)]
    pub(crate) fn run_ahead(&self, pos: u64) -> u64 {
        pos - self.head
    }

    /// [`peek_ahead`](Self::peek_ahead)'s common case, inline and without
    /// building a `Result`: the message frame at position `pos` (a run's,
    /// at or past `head`: [`run_pos`](Self::run_pos)) when it lies in the
    /// committed bytes already seen and is valid (the same checks as
    /// `peek_ahead`, on one read of its header). `None` means "ask
    /// `peek_ahead`": the cache ends there, or the frame is padding, or
    /// something is wrong with it, which `peek_ahead` reads again and
    /// reports.
    #[inline]
    pub(crate) fn cached_at(&self, pos: u64) -> Option<Frame> {
        debug_assert!(self.head <= pos && pos <= self.tail_cache);
        if pos == self.tail_cache {
            return None;
        }
        let off = self.ring.offset(pos);
        let (len, word) = self.ring.read_frame_header(off);
        if word & KIND_BITS != KIND_MESSAGE || len > self.max_message {
            return None;
        }
        let size = frame_size(len);
        if size > self.tail_cache - pos || size > self.ring.capacity - off {
            return None;
        }
        // As in `check_message`: off + FRAME_HEADER, at most the capacity,
        // which fits in 32 bits, and never 0.
        let offset = NonZeroU32::MIN.saturating_add((off + FRAME_HEADER - 1) as u32);
        Some(Frame {
            offset,
            len: len as u32,
            tag: word >> 8,
        })
    }

    /// Asks for the line [`PREFETCH_DISTANCE`] bytes past position `pos`,
    /// if all of that line is published: a line that reaches past `tail`
    /// may be the one the producer is writing, and taking it from its
    /// core would slow both.
    #[inline(always)]
    pub(crate) fn prefetch_at(&self, pos: u64) {
        let line = (pos + PREFETCH_DISTANCE) & !63;
        if line + 64 <= self.tail_cache {
            self.ring.prefetch(self.ring.offset(line));
        }
    }

    /// Asks for the lines of `frame`'s payload beyond its first, up to
    /// [`PREFETCH_PAYLOAD`] bytes, when the payload is more than a page:
    /// for a reader that reads a message in place (`recv_ref`), whose
    /// first reads would otherwise wait for the lines, which the sender's
    /// core holds, one after the other. Smaller payloads are covered by the
    /// line read ahead of each frame ([`prefetch_at`](Self::prefetch_at)).
    #[inline]
    pub(crate) fn prefetch_payload(&self, frame: Frame) {
        let len = u64::from(frame.len);
        if len <= 4096 {
            return;
        }
        let start = u64::from(frame.offset.get());
        let end = start + len.min(PREFETCH_PAYLOAD);
        let mut off = (start + 64) & !63;
        // Inside the payload, which the consumer validated to lie in the
        // region: every line asked for is below the capacity.
        while off < end {
            self.ring.prefetch(off);
            off += 64;
        }
    }

    /// Releases the `ahead` bytes of a run (the frame `peek_paced` gave,
    /// and those [`peek_ahead`](Self::peek_ahead) passed) with one Release
    /// store of `head`.
    #[inline]
    pub(crate) fn release_run(&mut self, ahead: u64) {
        debug_assert!(self.head + ahead <= self.tail_cache);
        self.advance(ahead);
    }
}

/// Whether committed messages lie between head and tail, read from the
/// shared indices (a hint for lifecycle decisions, never for reading): a
/// lone padding frame does not count; indices that fail validation do, so
/// that nothing is dropped on a guess.
pub(crate) fn holds_messages(ring: &RingPtrs) -> bool {
    // SYNC: pair with the Release stores in `Producer::advance` and
    // `Consumer::advance`: the frame header read below is the one published.
    let head = ring.head().load(Ordering::Acquire);
    let tail = ring.tail().load(Ordering::Acquire);
    if head == tail {
        return false;
    }
    if check_span(head, tail, ring.capacity).is_err() {
        return true;
    }
    let (len, word) = ring.read_frame_header(ring.offset(head));
    !(word & KIND_BITS == KIND_PADDING && FRAME_HEADER + len == tail - head)
}

/// Largest index accepted from the segment: far beyond any real traffic
/// (an exbibyte), and low enough that our own arithmetic cannot overflow.
const MAX_POSITION: u64 = 1 << 60;

/// `head <= tail <= MAX_POSITION`, `tail - head <= capacity`, both
/// frame-aligned.
pub(crate) fn check_span(head: u64, tail: u64, capacity: u64) -> Result<(), Corrupt> {
    if tail > MAX_POSITION {
        return Err(Corrupt(format!("tail {tail} is beyond any real position")));
    }
    if head > tail {
        return Err(Corrupt(format!("head {head} is beyond tail {tail}")));
    }
    if tail - head > capacity {
        return Err(Corrupt(format!(
            "tail {tail} is more than the capacity {capacity} beyond head {head}"
        )));
    }
    if head % 8 != 0 || tail % 8 != 0 {
        return Err(Corrupt(format!(
            "head {head} or tail {tail} is not 8-aligned"
        )));
    }
    Ok(())
}
