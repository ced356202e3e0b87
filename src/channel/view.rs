//! `View`: an attached segment seen as a channel header plus its ring.
//!
//! `unsafe` is allowed here to view the start of an attached segment as a
//! [`Header`], which is sound because every field is an atomic integer, and
//! to point into the data region of a validated header.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use crate::layout::{Geometry, HEADER_SIZE, Header, Invalid};
use crate::ring::RingPtrs;
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
}
