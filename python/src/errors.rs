//! The library's [`Error`] as the package's exceptions.
//!
//! Each variant has its class in `shmchan._errors` (pure Python, so that a
//! class can also derive from a built-in exception), raised with the
//! library's message and the variant's fields as attributes. Where the
//! library carries an OS error, `errno` is its number; where the class is
//! a built-in `OSError` kind, `errno` is the number that kind stands for
//! (`NotFound` ENOENT, `Full` EAGAIN, ...). A variant that this crate
//! does not know (the enum is `#[non_exhaustive]`) raises `shmchan.Error`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyString};
use shmchan::Error;

/// The module that defines the exception classes.
const ERRORS: &str = "shmchan._errors";

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// One attribute of a raised exception.
type Attr<'py> = (&'static str, Bound<'py, PyAny>);

/// The exception for `e`.
pub(crate) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    let (class, attrs) = describe(py, &e);
    raise(py, class, &message, attrs).unwrap_or_else(|failed| failed)
}

/// `to_py` for a `Result`.
pub(crate) fn check<T>(py: Python<'_>, r: shmchan::Result<T>) -> PyResult<T> {
    r.map_err(|e| to_py(py, e))
}

/// An exception of class `class` (a name in `shmchan._errors`) with
/// `message` and `attrs`; `Err` with the error met on the way (the module
/// could not be imported, say), which is then what the caller raises.
fn raise(py: Python<'_>, class: &str, message: &str, attrs: Vec<Attr<'_>>) -> PyResult<PyErr> {
    let module = MODULE.get_or_try_init(py, || PyModule::import(py, ERRORS).map(Bound::unbind))?;
    let exc = module.bind(py).getattr(class)?.call1((message,))?;
    for (name, value) in attrs {
        exc.setattr(name, value)?;
    }
    Ok(PyErr::from_value(exc))
}

/// The class name and attributes of `e`.
fn describe<'py>(py: Python<'py>, e: &Error) -> (&'static str, Vec<Attr<'py>>) {
    let s = |v: &str| PyString::new(py, v).into_any();
    let n = |v: u64| {
        let Ok(v) = v.into_pyobject(py);
        v.into_any()
    };
    let errno = |v: Option<i32>| match v {
        Some(v) => {
            let Ok(v) = v.into_pyobject(py);
            v.into_any()
        }
        None => py.None().into_bound(py),
    };
    match e {
        Error::NotFound { channel } => (
            "NotFound",
            vec![
                ("channel", s(channel)),
                ("errno", errno(Some(libc::ENOENT))),
            ],
        ),
        Error::AlreadyExists { channel } => (
            "AlreadyExists",
            vec![
                ("channel", s(channel)),
                ("errno", errno(Some(libc::EEXIST))),
            ],
        ),
        Error::PermissionDenied {
            channel,
            call,
            source,
        } => (
            "PermissionDenied",
            vec![
                ("channel", s(channel)),
                ("call", s(call)),
                ("errno", errno(source.raw_os_error())),
            ],
        ),
        Error::NotAChannel { channel, reason } => (
            "NotAChannel",
            vec![("channel", s(channel)), ("reason", s(reason))],
        ),
        Error::VersionMismatch {
            channel,
            found,
            expected,
        } => (
            "VersionMismatch",
            vec![
                ("channel", s(channel)),
                ("found", n(u64::from(*found))),
                ("expected", n(u64::from(*expected))),
            ],
        ),
        Error::RoleTaken { channel, role } => (
            "RoleTaken",
            vec![
                ("channel", s(channel)),
                ("role", s(&role.to_string())),
                ("errno", errno(Some(libc::EBUSY))),
            ],
        ),
        Error::MessageTooLarge { len, max } => (
            "MessageTooLarge",
            vec![("len", n(*len as u64)), ("max", n(*max as u64))],
        ),
        Error::Full => ("Full", vec![("errno", errno(Some(libc::EAGAIN)))]),
        Error::Empty => ("Empty", vec![("errno", errno(Some(libc::EAGAIN)))]),
        Error::Timeout => ("Timeout", vec![("errno", errno(Some(libc::ETIMEDOUT)))]),
        Error::Disconnected => ("Disconnected", vec![]),
        Error::Busy { channel, parties } => (
            "Busy",
            vec![
                ("channel", s(channel)),
                ("parties", n(u64::from(*parties))),
                ("errno", errno(Some(libc::EBUSY))),
            ],
        ),
        Error::Removed { channel } => (
            "Removed",
            vec![("channel", s(channel)), ("errno", errno(Some(libc::EIDRM)))],
        ),
        Error::Corrupted { channel, what } => (
            "Corrupted",
            vec![("channel", s(channel)), ("what", s(what))],
        ),
        Error::Os {
            call,
            channel,
            source,
        } => (
            "Os",
            vec![
                ("channel", s(channel)),
                ("call", s(call)),
                ("errno", errno(source.raw_os_error())),
            ],
        ),
        _ => ("Error", vec![]),
    }
}

/// Whether `e` is `shmchan.Disconnected` (the normal end of an
/// iteration).
pub(crate) fn is_disconnected(py: Python<'_>, e: &PyErr) -> bool {
    let class = MODULE
        .get(py)
        .and_then(|m| m.bind(py).getattr("Disconnected").ok());
    match class {
        Some(class) => e.value(py).is_instance(&class).unwrap_or(false),
        None => false,
    }
}

/// The `ValueError` of a call on a closed handle, as Python's files raise
/// it.
pub(crate) fn closed(what: &str) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(format!("the {what} is closed"))
}

/// `MessageTooLarge` for a received message of `len` bytes that does not
/// fit a buffer of `max` bytes (`recv_into`): the message stays queued.
pub(crate) fn too_small(py: Python<'_>, len: usize, max: usize) -> PyErr {
    let message =
        format!("message of {len} bytes does not fit the buffer of {max} bytes; it stays queued");
    let int = |v: usize| {
        let Ok(v) = v.into_pyobject(py);
        v.into_any()
    };
    let attrs = vec![("len", int(len)), ("max", int(max))];
    raise(py, "MessageTooLarge", &message, attrs).unwrap_or_else(|failed| failed)
}
