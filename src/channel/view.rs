//! `View`: an attached segment seen as a channel header plus its ring.
//!
//! `unsafe` is allowed here to view the start of an attached segment as a
//! [`Header`], which is sound because every field is an atomic integer, and
//! to point into the data region of a validated header.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::shared::Shared;
use crate::layout::{
    FlagBlock, Geometry, HEADER_SIZE, Header, Invalid, LANE_SIZE, LaneBlock, LaneRefs, SideBlock,
};
use crate::ring::{RingPtrs, check_span, holds_messages};
use crate::sys::Mapping;

/// An attached segment seen as a channel header plus its data region.
#[derive(Debug)]
pub(crate) struct View {
    mapping: Mapping,
}

impl View {
    /// Wraps a mapping that is at least as large as a header.
    pub(crate) fn new(mapping: Mapping) -> Result<View, Invalid> {
        if mapping.len() < HEADER_SIZE {
            return Err(Invalid::NotAChannel(format!(
                "a segment of {} bytes is smaller than a shmchan header",
                mapping.len()
            )));
        }
        Ok(View { mapping })
    }

    /// The header at offset 0.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked in
        // `new`) and page-aligned (shmat), so it holds a Header at offset 0;
        // every field is an atomic integer, valid for any bit pattern and
        // safe to share with writers in other processes.
        unsafe { &*self.mapping.as_ptr().cast::<Header>() }
    }

    /// Lane `lane`'s fields, `lane` < `geometry.lanes` (a validated
    /// geometry of this view).
    pub(crate) fn lane(&self, geometry: &Geometry, lane: u16) -> LaneRefs<'_> {
        assert!(u32::from(lane) < geometry.lanes, "lane {lane} out of range");
        let h = self.header();
        if lane == 0 {
            return LaneRefs {
                tx: &h.tx,
                rx: &h.rx,
                tx_waiting: &h.tx_waiting,
            };
        }
        let offset = HEADER_SIZE + (usize::from(lane) - 1) * LANE_SIZE;
        debug_assert!(offset + LANE_SIZE <= geometry.header_size as usize);
        // SAFETY: validate() checked that the header of `lanes` lanes (and
        // their data) fits the mapping, and lane < lanes, so the entry lies
        // inside it; the mapping is page-aligned and the entry's offset a
        // multiple of 128, LaneBlock's alignment; every field is an atomic
        // integer, valid for any bit pattern and shared with other writers.
        let entry = unsafe { &*self.mapping.as_ptr().add(offset).cast::<LaneBlock>() };
        LaneRefs {
            tx: &entry.tx,
            rx: &entry.rx,
            tx_waiting: &entry.tx_waiting,
        }
    }

    /// The ring of lane `lane` of a validated `geometry`.
    pub(crate) fn ring(&self, geometry: &Geometry, lane: u16) -> RingPtrs {
        let lane_refs = self.lane(geometry, lane);
        let offset = geometry.header_size + u64::from(lane) * geometry.capacity;
        debug_assert!(offset + geometry.capacity <= self.mapping.len() as u64);
        // SAFETY: validate() checked header_size + lanes x capacity <=
        // segment size and lane < lanes, so the data region lies inside
        // the mapping.
        let data = unsafe { self.mapping.as_non_null().add(offset as usize) };
        RingPtrs {
            head: NonNull::from(&lane_refs.rx.index),
            tail: NonNull::from(&lane_refs.tx.index),
            data,
            capacity: geometry.capacity,
        }
    }

    /// The lane numbers of a validated `geometry`.
    pub(crate) fn lanes(geometry: &Geometry) -> impl Iterator<Item = u16> {
        0..geometry.lanes as u16
    }

    /// Size of the segment in bytes.
    pub(crate) fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Whether committed messages are still queued (read from the shared
    /// indices: only a hint for lifecycle decisions, never for the ring;
    /// a lone padding frame is no message).
    pub(crate) fn holds_messages(&self, geometry: &Geometry) -> bool {
        View::lanes(geometry).any(|lane| holds_messages(&self.ring(geometry, lane)))
    }

    /// What the shared indices say about the queue now, for inspection.
    pub(crate) fn backlog(&self, geometry: &Geometry) -> Backlog {
        let mut total = Backlog {
            queued: 0,
            has_messages: self.holds_messages(geometry),
            corrupt: None,
        };
        for lane in View::lanes(geometry) {
            let l = self.lane(geometry, lane);
            // SYNC: pair with the Release stores of head and tail in
            // `Consumer::advance` and `Producer::advance` (a snapshot for
            // display; never used to read the ring).
            let head = l.rx.index.load(Ordering::Acquire);
            let tail = l.tx.index.load(Ordering::Acquire);
            total.queued = total.queued.saturating_add(tail.saturating_sub(head));
            if total.corrupt.is_none() {
                total.corrupt = check_span(head, tail, geometry.capacity)
                    .err()
                    .map(|c| format!("lane {lane}: {}", c.0));
            }
        }
        total
    }
}

/// A queue as [`View::backlog`] sees it from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backlog {
    /// Committed bytes not yet released (frames and padding included).
    pub(crate) queued: u64,
    /// Whether those bytes hold at least one message.
    pub(crate) has_messages: bool,
    /// Why the indices cannot be right, if they cannot.
    pub(crate) corrupt: Option<String>,
}

/// A lane's fields as pointers, for a handle that reads them on every
/// message and keeps the mapping attached for as long as it holds them
/// (its role hold): `View::lane` recomputed per message cost a tenth of
/// the single-sender hot path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LanePtrs {
    tx: NonNull<SideBlock>,
    rx: NonNull<SideBlock>,
    tx_waiting: NonNull<FlagBlock>,
}

impl LanePtrs {
    /// The pointers of `refs`.
    pub(crate) fn of(refs: LaneRefs<'_>) -> LanePtrs {
        LanePtrs {
            tx: NonNull::from(refs.tx),
            rx: NonNull::from(refs.rx),
            tx_waiting: NonNull::from(refs.tx_waiting),
        }
    }

    /// The lane's fields again.
    ///
    /// # Safety
    ///
    /// The mapping that the `LaneRefs` given to [`of`](Self::of) pointed
    /// into must still be attached for `'a`.
    #[inline]
    pub(crate) unsafe fn refs<'a>(&self) -> LaneRefs<'a> {
        // SAFETY: the caller keeps the mapping attached for 'a; the fields
        // are atomics, shared with other processes by design.
        unsafe {
            LaneRefs {
                tx: self.tx.as_ref(),
                rx: self.rx.as_ref(),
                tx_waiting: self.tx_waiting.as_ref(),
            }
        }
    }
}

/// The header's address, kept in a handle beside the `Arc<Shared>` that
/// keeps it mapped: a fast path then reaches the header with one load,
/// not three (the `Arc`, `Shared`'s view, the mapping). Inlined into a
/// user's loop, the compiler hoists those loads out of it; a call through
/// the C interface cannot, and paid them on every message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderPtr(NonNull<Header>);

impl HeaderPtr {
    /// # Safety
    ///
    /// The caller keeps `shared` (an `Arc` of it) alive for as long as
    /// the `HeaderPtr` is used: a handle that holds a role and this.
    pub(crate) unsafe fn new(shared: &Shared) -> HeaderPtr {
        HeaderPtr(NonNull::from(shared.view.header()))
    }

    /// The header.
    #[inline(always)]
    pub(crate) fn get(&self) -> &Header {
        // SAFETY: `new`'s caller keeps the mapping attached while `self`
        // is used, and the header is only ever read through shared refs
        // (its fields are atomics).
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: the header's fields are atomics, read and written from any
// thread; the pointer is valid as `new`'s contract says.
unsafe impl Send for HeaderPtr {}
