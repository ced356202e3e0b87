//! `View`: an attached segment seen as a channel header plus its ring.
//!
//! `unsafe` is allowed here to view the start of an attached segment as a
//! [`Header`], which is sound because every field is an atomic integer, and
//! to point into the data region of a validated header.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::layout::{Geometry, HEADER_SIZE, Header, Invalid};
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

    /// The ring over the data region of a validated `geometry`.
    pub(crate) fn ring(&self, geometry: &Geometry) -> RingPtrs {
        debug_assert!(HEADER_SIZE as u64 + geometry.capacity <= self.mapping.len() as u64);
        let header = self.header();
        // SAFETY: validate() checked HEADER_SIZE + capacity <= segment size,
        // so the data region lies inside the mapping.
        let data = unsafe { self.mapping.as_non_null().add(HEADER_SIZE) };
        RingPtrs {
            head: NonNull::from(&header.rx.index),
            tail: NonNull::from(&header.tx.index),
            data,
            capacity: geometry.capacity,
        }
    }

    /// Size of the segment in bytes.
    pub(crate) fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Whether committed messages are still queued (read from the shared
    /// indices: only a hint for lifecycle decisions, never for the ring;
    /// a lone padding frame is no message).
    pub(crate) fn holds_messages(&self, geometry: &Geometry) -> bool {
        holds_messages(&self.ring(geometry))
    }

    /// What the shared indices say about the queue now, for inspection.
    pub(crate) fn backlog(&self, geometry: &Geometry) -> Backlog {
        let h = self.header();
        // SYNC: pair with the Release stores of head and tail in
        // `Consumer::advance` and `Producer::advance` (a snapshot for
        // display; never used to read the ring).
        let head = h.rx.index.load(Ordering::Acquire);
        let tail = h.tx.index.load(Ordering::Acquire);
        Backlog {
            queued: tail.saturating_sub(head),
            has_messages: self.holds_messages(geometry),
            corrupt: check_span(head, tail, geometry.capacity).err().map(|c| c.0),
        }
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
