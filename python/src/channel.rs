//! `shmchan.Channel`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};
use shmchan::{Channel, Options};

use crate::errors::check;
use crate::handle::Handle;
use crate::key::{PyKey, key_arg};
use crate::receiver::PyReceiver;
use crate::sender::PySender;

/// An open channel: a System V shared-memory segment (its ring) and its
/// semaphore set.
///
/// Make one with ``Channel.create``, or open one that exists with
/// ``Channel.open(key)`` or ``Channel.open_id(shmid)``; take its sending
/// side with ``sender()`` and its receiving side with ``receiver()``.
///
/// A ``Channel`` is a party: the channel lives while any party (a
/// ``Channel``, ``Sender`` or ``Receiver``, in any process) is open, and
/// the last one to close removes it, unless it persists or still holds
/// messages (those wait for a receiver). ``close()`` (or leaving a
/// ``with`` block) leaves; senders and receivers taken from it stay open.
///
/// Handles are not fork-safe: a child process opens its own (pass it
/// ``chan.id`` or the key). Any thread may use a handle; calls on one
/// handle run one at a time.
#[pyclass(frozen, module = "shmchan", name = "Channel")]
pub(crate) struct PyChannel {
    handle: Handle<Channel>,
}

impl PyChannel {
    fn wrap(chan: Channel) -> PyChannel {
        PyChannel {
            handle: Handle::new(chan, "Channel"),
        }
    }

    /// `f` on the channel, with the GIL held (every call on a channel
    /// returns at once, but for `remove`, which takes it).
    fn get<R>(&self, py: Python<'_>, f: impl FnOnce(&Channel) -> R) -> PyResult<R> {
        self.handle.with(py, |chan, _| Ok(f(chan)))
    }
}

#[pymethods]
impl PyChannel {
    /// Creates a new channel and opens it.
    ///
    /// ``key``: a ``Key`` or a number; ``None`` (or ``Key.PRIVATE``) makes
    /// a private channel, which other processes open by its ``id``.
    /// ``capacity``: ring bytes per sender, rounded up to a power of two
    /// (at least 4096); the largest message is ``max_message_len``
    /// (capacity - 8). ``mode``: permission bits (0o600: this user only).
    /// ``persist``: the channel stays when its last party closes (until
    /// ``remove()`` or ``shmchan rm``). ``replace_stale``: replace a
    /// channel at this key that no live process holds (discarding what it
    /// held), never a live one. ``max_senders``: senders at once (1 to
    /// ``MAX_SENDERS``), each with a ring of its own. ``group``: a group
    /// (name or gid) for the channel's objects, so that with a mode such as
    /// 0o660 its members may open it.
    ///
    /// Raises ``AlreadyExists`` when the key is taken, ``PermissionDenied``,
    /// ``NotAChannel`` (``replace_stale`` met a segment that is not a
    /// channel), ``Os`` when the kernel refuses (limits, memory).
    #[classmethod]
    #[pyo3(signature = (
        key=None, *, capacity=shmchan::DEFAULT_CAPACITY, mode=0o600, persist=false,
        replace_stale=false, max_senders=1, group=None
    ))]
    #[allow(clippy::too_many_arguments)] // the signature, keywords all
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        capacity: usize,
        mode: u32,
        persist: bool,
        replace_stale: bool,
        max_senders: u32,
        group: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyChannel> {
        let key = key_arg(key)?;
        let mut opts = Options::new()
            .capacity(capacity)
            .mode(mode)
            .persist(persist)
            .replace_stale(replace_stale)
            .max_senders(max_senders);
        if let Some(group) = group {
            opts = opts.group(gid(py, group)?);
        }
        let chan = py.detach(|| Channel::create(key, &opts));
        check(py, chan).map(PyChannel::wrap)
    }

    /// Opens the existing channel at ``key`` (a ``Key`` or a number);
    /// never creates.
    ///
    /// Raises ``NotFound``, ``PermissionDenied``, ``NotAChannel``,
    /// ``VersionMismatch``, ``Corrupted``.
    #[classmethod]
    fn open(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<PyChannel> {
        let key = key_arg(Some(key))?;
        let chan = py.detach(|| Channel::open(key));
        check(py, chan).map(PyChannel::wrap)
    }

    /// Opens the existing channel whose segment id is ``shmid`` (its
    /// ``id``, as ``ipcs -m`` lists it): the way to a private channel.
    ///
    /// Raises as ``open``.
    #[classmethod]
    fn open_id(_cls: &Bound<'_, PyType>, py: Python<'_>, shmid: i32) -> PyResult<PyChannel> {
        let chan = py.detach(|| Channel::open_id(shmid));
        check(py, chan).map(PyChannel::wrap)
    }

    /// The segment id (``shmid``), by which ``Channel.open_id`` opens it.
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<i32> {
        self.get(py, Channel::id)
    }

    /// The semaphore set's id (``semid``), as ``ipcs -s`` lists it.
    #[getter]
    fn sem_id(&self, py: Python<'_>) -> PyResult<i32> {
        self.get(py, Channel::sem_id)
    }

    /// The key it was created with (``Key.PRIVATE`` for a private one).
    #[getter]
    fn key(&self, py: Python<'_>) -> PyResult<PyKey> {
        self.get(py, |c| PyKey(c.key()))
    }

    /// Ring bytes (per sender).
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<usize> {
        self.get(py, Channel::capacity)
    }

    /// The largest message it carries: capacity - 8. A message of this
    /// size gets through wherever the ring stands.
    #[getter]
    fn max_message_len(&self, py: Python<'_>) -> PyResult<usize> {
        self.get(py, Channel::max_message_len)
    }

    /// Whether the channel outlives its last party.
    #[getter]
    fn persists(&self, py: Python<'_>) -> PyResult<bool> {
        self.get(py, Channel::persists)
    }

    /// Whether ``close()`` (or ``remove()``) was called on this handle.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Takes a sending side. One sender per lane: as many at once as
    /// ``max_senders``, in any processes.
    ///
    /// Raises ``RoleTaken`` while every lane is held, ``Removed``,
    /// ``Corrupted``.
    fn sender(&self, py: Python<'_>) -> PyResult<PySender> {
        self.handle.with(py, |chan, _| {
            let tx = py.detach(|| chan.sender());
            check(py, tx).map(PySender::wrap)
        })
    }

    /// Takes the receiving side (one at a time, in any process).
    ///
    /// Raises ``RoleTaken`` while another receiver is open, ``Removed``,
    /// ``Corrupted``.
    fn receiver(&self, py: Python<'_>) -> PyResult<PyReceiver> {
        self.handle.with(py, |chan, _| {
            let rx = py.detach(|| chan.receiver());
            check(py, rx).map(PyReceiver::wrap)
        })
    }

    /// Removes the channel now, under any open parties (they get
    /// ``Removed`` or ``Disconnected`` on their next call), and closes this
    /// handle.
    ///
    /// Raises ``PermissionDenied`` when this user may not remove it (the
    /// handle is closed all the same).
    fn remove(&self, py: Python<'_>) -> PyResult<()> {
        match self.handle.take(py) {
            Some(chan) => check(py, py.detach(|| chan.remove())),
            None => Err(crate::errors::closed("Channel")),
        }
    }

    /// Leaves the channel: this handle is no longer a party (the last
    /// party out removes the channel, as above). Closing twice does
    /// nothing.
    fn close(&self, py: Python<'_>) {
        self.handle.close(py);
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Closes (``close()``); exceptions go on.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.handle.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.get(py, |c| (c.id(), c.key(), c.capacity())) {
            Ok((id, key, cap)) => format!("<shmchan.Channel id={id} {key} capacity={cap}>"),
            Err(_) => "<shmchan.Channel closed>".to_owned(),
        }
    }
}

/// A `group` argument: a gid, or a group name looked up with `grp`.
fn gid(py: Python<'_>, group: &Bound<'_, PyAny>) -> PyResult<u32> {
    if let Ok(gid) = group.extract::<u32>() {
        return Ok(gid);
    }
    if group.is_instance_of::<pyo3::types::PyString>() {
        let entry = py.import("grp")?.call_method1("getgrnam", (group,))?;
        return entry.getattr("gr_gid")?.extract();
    }
    Err(PyTypeError::new_err(
        "group must be a group name (str) or a gid (int)",
    ))
}
