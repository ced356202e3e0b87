//! Arguments from C: buffers and out-parameters, checked for NULL before
//! anything is read or written.
//!
//! `unsafe` here: a pointer and a length from C become a slice, and an
//! out-parameter is written; what C promises about them (the header's
//! rule: a buffer is valid for its length, an out-parameter for one
//! write) is the only thing not checked.
#![allow(unsafe_code)]

use std::time::Duration;

use crate::status::Failure;

/// Whether a buffer of `len` bytes is to be made into a slice: not when
/// it is empty (its pointer may then be NULL); an error when it is NULL
/// with a length, or longer than a slice can be.
#[inline]
fn usable(is_null: bool, len: usize) -> Result<bool, Failure> {
    fits(is_null, len).ok_or_else(|| refused(is_null, len))
}

/// `usable` without the error: `None` where it fails.
#[inline(always)]
fn fits(is_null: bool, len: usize) -> Option<bool> {
    match len {
        0 => Some(false),
        _ if is_null || len > isize::MAX as usize => None,
        _ => Some(true),
    }
}

#[cold]
fn refused(is_null: bool, len: usize) -> Failure {
    if is_null {
        Failure::null("the buffer (with a non-zero length)")
    } else {
        Failure::invalid(format!("a length of {len} bytes"))
    }
}

/// The bytes `data[0..len]`; `data` may be NULL when `len` is 0.
///
/// # Safety
///
/// Unless NULL, `data` is valid for reads of `len` bytes for `'a`.
#[inline]
pub(crate) unsafe fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if !usable(data.is_null(), len)? {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, valid by the caller's
    // promise.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// The writable bytes `buf[0..cap]`; `buf` may be NULL when `cap` is 0.
///
/// # Safety
///
/// Unless NULL, `buf` is valid for writes of `cap` bytes for `'a`, and
/// nothing else reads or writes them meanwhile.
#[inline]
pub(crate) unsafe fn bytes_mut<'a>(buf: *mut u8, cap: usize) -> Result<&'a mut [u8], Failure> {
    if !usable(buf.is_null(), cap)? {
        return Ok(&mut []);
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, valid and unaliased by
    // the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf, cap) })
}

/// `bytes` for an entry point's fast path, outside `catch_unwind`:
/// `None` wherever `bytes` would fail, with no error built.
///
/// # Safety
///
/// As `bytes`.
#[inline(always)]
pub(crate) unsafe fn bytes_fast<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    if !fits(data.is_null(), len)? {
        return Some(&[]);
    }
    // SAFETY: as in `bytes`.
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

/// `bytes_mut` for an entry point's fast path, outside `catch_unwind`:
/// `None` wherever `bytes_mut` would fail, with no error built.
///
/// # Safety
///
/// As `bytes_mut`.
#[inline(always)]
pub(crate) unsafe fn bytes_mut_fast<'a>(buf: *mut u8, cap: usize) -> Option<&'a mut [u8]> {
    if !fits(buf.is_null(), cap)? {
        return Some(&mut []);
    }
    // SAFETY: as in `bytes_mut`.
    Some(unsafe { std::slice::from_raw_parts_mut(buf, cap) })
}

/// An out-parameter, checked for NULL; `what` names it.
///
/// # Safety
///
/// Unless NULL, `ptr` is valid and aligned for writes of a `T` for `'a`.
#[inline]
pub(crate) unsafe fn out<'a, T>(
    ptr: *mut T,
    what: &str,
) -> Result<&'a mut std::mem::MaybeUninit<T>, Failure> {
    // SAFETY: NULL or valid for writes by the caller's promise;
    // `MaybeUninit` reads nothing of what is there.
    unsafe { ptr.cast::<std::mem::MaybeUninit<T>>().as_mut() }.ok_or_else(|| Failure::null(what))
}

/// A `_timeout` form's nanoseconds.
#[inline]
pub(crate) fn timeout(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}
