//! `shmchan.Key`.

use std::path::PathBuf;

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use shmchan::Key;

use crate::errors;

/// A System V IPC key naming a channel.
///
/// ``Key.ftok(path, proj_id)`` makes one from a file, as ftok(3) does;
/// ``Key(raw)`` takes a number (as ``ipcs`` prints it: ``0x0000abcd``, or
/// the signed ``key_t``); ``Key.PRIVATE`` is ``IPC_PRIVATE``, a channel no
/// key names, reached by its id. Keys are equal when their numbers are.
#[pyclass(frozen, eq, hash, module = "shmchan", name = "Key")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PyKey(pub(crate) Key);

#[pymethods]
impl PyKey {
    /// ``Key(raw)``: a key from its number, -2**31 to 2**32 - 1 (numbers
    /// from 2**31 up are the negative ``key_t`` values, as ``ipcs`` prints
    /// them). ``Key(0)`` is ``Key.PRIVATE``.
    #[new]
    fn new(raw: i64) -> PyResult<PyKey> {
        raw_key(raw).map(|k| PyKey(Key::from_raw(k)))
    }

    /// A key from an existing file and a project id from 1 to 255, as
    /// ftok(3) makes it. Two programs that call it with the same path and
    /// id get the same key. The channel records the file's device and
    /// inode, so two paths that ftok maps to one key are told apart.
    ///
    /// Raises ``shmchan.Os`` when the path does not exist or ``proj_id``
    /// is 0.
    #[staticmethod]
    fn ftok(py: Python<'_>, path: PathBuf, proj_id: u8) -> PyResult<PyKey> {
        errors::check(py, Key::ftok(path, proj_id)).map(PyKey)
    }

    /// ``IPC_PRIVATE``: ``Channel.create(Key.PRIVATE)`` (or ``key=None``)
    /// makes a channel that no key names; other processes open it by its
    /// id (``Channel.open_id``).
    #[classattr]
    #[pyo3(name = "PRIVATE")]
    fn private() -> PyKey {
        PyKey(Key::PRIVATE)
    }

    /// The key's number as the kernel's ``key_t`` (signed 32 bits).
    #[getter]
    fn raw(&self) -> i32 {
        self.0.raw()
    }

    /// Whether this is ``Key.PRIVATE``.
    #[getter]
    fn is_private(&self) -> bool {
        self.0.is_private()
    }

    fn __int__(&self) -> i32 {
        self.0.raw()
    }

    fn __repr__(&self) -> String {
        match self.0.is_private() {
            true => "Key.PRIVATE".to_owned(),
            false => format!("Key(0x{:08x})", self.0.raw() as u32),
        }
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }
}

/// A raw key from -2**31 to 2**32 - 1, as `key_t`.
fn raw_key(raw: i64) -> PyResult<i32> {
    i32::try_from(raw)
        .or_else(|_| u32::try_from(raw).map(|k| k as i32))
        .map_err(|_| PyOverflowError::new_err(format!("key {raw} is not a 32-bit number")))
}

/// A `key` argument: a `Key`, a number, or `None` (private).
pub(crate) fn key_arg(key: Option<&Bound<'_, PyAny>>) -> PyResult<Key> {
    let Some(key) = key else {
        return Ok(Key::PRIVATE);
    };
    if let Ok(k) = key.cast::<PyKey>() {
        return Ok(k.get().0);
    }
    match key.extract::<i64>() {
        Ok(raw) => raw_key(raw).map(Key::from_raw),
        Err(_) => Err(PyTypeError::new_err(format!(
            "key must be a shmchan.Key, an int or None, not {}",
            key.get_type().name()?
        ))),
    }
}
