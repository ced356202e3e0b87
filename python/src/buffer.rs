//! Bytes-like objects read and written in place, through the buffer
//! protocol (PEP 3118), and `bytes` objects filled from the ring.
//!
//! One wheel serves CPython 3.9 on (abi3-py39), but the buffer functions
//! joined the limited API only in 3.11, so PyO3 offers no `PyBuffer` on
//! this build. They are declared here instead: `PyObject_GetBuffer`,
//! `PyBuffer_Release` and the `Py_buffer` struct have kept the same
//! symbols and layout since Python 3.3, 3.11 made that a promise, and an
//! extension module on Linux resolves them in whichever interpreter loads
//! it. This is the module's only `unsafe`: the foreign calls, and copies
//! through the raw pointers they hand out.
//!
//! Nothing here builds a `&[u8]` over a buffer another Python thread may
//! write while the GIL is released: bytes go in and out of it with
//! `ptr::copy_nonoverlapping`, as a C extension would copy them.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::marker::PhantomData;
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Messages from this size up are copied with the GIL released.
pub(crate) const LARGE: usize = 64 * 1024;

/// `Py_buffer` (Include/pybuffer.h), unchanged since Python 3.3.
#[repr(C)]
struct PyBufferView {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// `PyBUF_SIMPLE`: contiguous bytes, no format, no shape.
const PYBUF_SIMPLE: c_int = 0;
/// `PyBUF_WRITABLE`.
const PYBUF_WRITABLE: c_int = 0x0001;

// SAFETY: the declarations match CPython's (Include/pybuffer.h, 3.3 on).
unsafe extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBufferView, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBufferView);
}

/// Runs `f` on the contiguous bytes of `obj` (`bytes`, `bytearray`,
/// `memoryview`, `array.array`, a numpy array, ...), writable ones if
/// `writable`, exported for the length of the call.
///
/// The view lives on this frame's stack: an exporter may point fields of
/// the view at the view itself, so it must not move while exported, and
/// the borrow held by the release guard keeps it in place. The guard is
/// neither `Send` nor `Sync`, so it is dropped (the view released) with
/// the GIL held, after `f`, however `f` returns.
///
/// # Errors
///
/// `TypeError` for an object without the buffer protocol, `BufferError`
/// for a non-contiguous one or (when `writable`) a read-only one, and
/// whatever `f` returns.
pub(crate) fn with_buffer<R>(
    obj: &Bound<'_, PyAny>,
    writable: bool,
    f: impl FnOnce(Region) -> PyResult<R>,
) -> PyResult<R> {
    let mut view = PyBufferView {
        buf: ptr::null_mut(),
        obj: ptr::null_mut(),
        len: 0,
        itemsize: 0,
        readonly: 0,
        ndim: 0,
        format: ptr::null_mut(),
        shape: ptr::null_mut(),
        strides: ptr::null_mut(),
        suboffsets: ptr::null_mut(),
        internal: ptr::null_mut(),
    };
    let flags = if writable {
        PYBUF_WRITABLE
    } else {
        PYBUF_SIMPLE
    };
    // SAFETY: obj is a live object and the GIL is held (a `Bound`); view
    // is a zeroed struct of the right layout, filled on success.
    if unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut view, flags) } != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    let exported = Exported {
        view: &mut view,
        _not_send: PhantomData,
    };
    f(Region {
        ptr: exported.view.buf.cast(),
        // A simple buffer's length is never negative.
        len: usize::try_from(exported.view.len).unwrap_or(0),
    })
}

/// Releases an exported view when dropped.
struct Exported<'v> {
    view: &'v mut PyBufferView,
    /// Keeps the guard on the thread that holds the GIL.
    _not_send: PhantomData<*const ()>,
}

impl Drop for Exported<'_> {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer
        // and is released once, on the thread that made it, which holds
        // the GIL (`with_buffer` returns only after this).
        unsafe { PyBuffer_Release(self.view) }
    }
}

/// The bytes of an exported buffer (or a `bytes` object) while it is
/// held: a pointer and a length that may travel to a closure run without
/// the GIL.
#[derive(Clone, Copy)]
pub(crate) struct Region {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a Region is made from a buffer that the calling frame keeps
// exported (or a `bytes` object it keeps alive) for as long as the Region
// is used; the memory stays put and may be read or written from any
// thread while it is.
unsafe impl Send for Region {}

// SAFETY: as for `Send`; a shared `&Region` only copies the pointer and
// length out (closures that run without the GIL capture it by reference).
unsafe impl Sync for Region {}

impl Region {
    /// The bytes of a `bytes` object (immutable), without a buffer export.
    pub(crate) fn of_bytes(bytes: &Bound<'_, PyBytes>) -> Region {
        let b = bytes.as_bytes();
        Region {
            ptr: b.as_ptr().cast_mut(),
            len: b.len(),
        }
    }

    pub(crate) fn len(self) -> usize {
        self.len
    }

    /// Copies the region's bytes to `to` (exactly `len()` bytes long).
    pub(crate) fn copy_to(self, to: &mut [u8]) {
        let len = self.len.min(to.len());
        // SAFETY: the region is readable for `len` bytes while its buffer
        // is held (see `Send` above), and `to` is a distinct slice of at
        // least `len` bytes (the ring, or a new bytes object).
        unsafe { ptr::copy_nonoverlapping(self.ptr, to.as_mut_ptr(), len) }
    }

    /// Copies the region's bytes to `to` (a new object's storage, as
    /// long).
    fn copy_to_raw(self, to: Region) {
        let len = self.len.min(to.len);
        // SAFETY: `self` is readable for `len` bytes (a payload or a held
        // buffer), `to` a new object's storage, written by nothing else.
        unsafe { ptr::copy_nonoverlapping(self.ptr, to.ptr, len) }
    }

    /// Copies `from` (at most `len()` bytes) to the start of the region,
    /// which must be writable.
    pub(crate) fn copy_from(self, from: &[u8]) {
        let len = from.len().min(self.len);
        // SAFETY: the region was exported writable (`Buffer::get(_, true)`)
        // and holds at least `len` bytes; `from` is the ring's payload,
        // which no Python object shares.
        unsafe { ptr::copy_nonoverlapping(from.as_ptr(), self.ptr, len) }
    }
}

/// A new `bytes` object holding `payload`. A large one is copied with the
/// GIL released, into a `bytes` object made uninitialised (no zeroing
/// first, as `PyBytes::new_with` would do).
pub(crate) fn new_bytes<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if payload.len() < LARGE {
        return Ok(PyBytes::new(py, payload));
    }
    let len = ffi::Py_ssize_t::try_from(payload.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("message too large for bytes"))?;
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new reference
    // to an uninitialised bytes object of n bytes, or NULL with an
    // exception set; the GIL is held.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(ptr::null(), len))?
    };
    // SAFETY: obj is a bytes object (just made), so this cannot fail; its
    // storage is n bytes, not yet shared with any other code, written once
    // below before the object is handed out.
    let storage = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) };
    let to = Region {
        ptr: storage.cast(),
        len: payload.len(),
    };
    let from = Region {
        ptr: payload.as_ptr().cast_mut(),
        len: payload.len(),
    };
    py.detach(|| from.copy_to_raw(to));
    // SAFETY: obj was made as a bytes object above.
    Ok(unsafe { obj.cast_into_unchecked() })
}
