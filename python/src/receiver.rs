//! `shmchan.Receiver`.

use std::future::poll_fn;
use std::task::{Context, Poll};

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use shmchan::{Error, Receiver, RecvGuard};

use crate::buffer::{LARGE, new_bytes, with_buffer};
use crate::errors::{self, to_py};
use std::time::Duration;

use crate::handle::{Closing, Handle, SPIN, Until, in_slices, past, slice_outcome};
use crate::sender::PySenderId;

/// The receiving side of a channel (``Channel.receiver()``).
///
/// Messages arrive whole, each sender's in the order sent. ``recv``
/// returns a new ``bytes`` object made straight from the shared ring (one
/// copy); ``recv_into`` fills a buffer of yours without allocating.
/// ``for msg in rx:`` receives until every sender is gone and every
/// message is read.
///
/// Blocking calls release the GIL and let Ctrl-C through
/// (``KeyboardInterrupt``) without losing a message. Not fork-safe (a
/// child opens its own); any thread may use it, one call at a time.
#[pyclass(frozen, module = "shmchan", name = "Receiver")]
pub(crate) struct PyReceiver {
    handle: Handle<Receiver>,
    /// Fixed for the handle's life: read without waiting for a call in
    /// another thread.
    max_message_len: usize,
}

impl PyReceiver {
    pub(crate) fn wrap(rx: Receiver) -> PyReceiver {
        PyReceiver {
            max_message_len: rx.max_message_len(),
            handle: Handle::new(rx, "Receiver"),
        }
    }

    /// Takes the next message with `take`, waiting as `until` says.
    fn recv_with<T>(
        &self,
        py: Python<'_>,
        until: Until,
        take: impl FnMut(Python<'_>, RecvGuard<'_>) -> PyResult<T>,
    ) -> PyResult<T> {
        self.handle
            .with(py, |rx, closing| recv_on(py, rx, until, closing, take))
    }
}

impl PyReceiver {
    /// One step of an asyncio receive: the library's poll, with the
    /// handle's lock held for the step only; `take` builds the result from
    /// the message in place, with the GIL.
    fn poll_take<T>(
        &self,
        py: Python<'_>,
        cx: &mut Context<'_>,
        take: impl FnOnce(Python<'_>, RecvGuard<'_>) -> PyResult<T>,
    ) -> Poll<PyResult<T>> {
        let step = self.handle.with(py, |rx, _| {
            rx.set_spin(SPIN);
            Ok(match rx.poll_recv_ref(cx) {
                Poll::Ready(Ok(msg)) => Poll::Ready(take(py, msg)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(to_py(py, e))),
                Poll::Pending => Poll::Pending,
            })
        });
        step.unwrap_or_else(|e| Poll::Ready(Err(e)))
    }
}

#[pymethods]
impl PyReceiver {
    /// Receives the next message, waiting for one: for ever, or at most
    /// ``timeout`` seconds.
    ///
    /// The wait releases the GIL; Ctrl-C interrupts it
    /// (``KeyboardInterrupt``) and, like a timeout, consumes nothing: the
    /// next call gets the next message.
    ///
    /// Raises ``Timeout``, ``Disconnected`` once every message is read and
    /// the senders it has seen are gone (a receiver that has seen none
    /// waits for one), ``Removed``, ``Corrupted``.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
        self.recv_with(py, Until::from_timeout(timeout)?, bytes)
    }

    /// Receives a message if one is queued now.
    ///
    /// Raises ``Empty`` when none is, and as ``recv``.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        self.recv_with(py, Until::Now, bytes)
    }

    /// Receives the next message into ``buffer`` (any writable bytes-like
    /// object: ``bytearray``, ``memoryview``, ``array.array``, a numpy
    /// array), from its start, without allocating; returns its length.
    /// Waits as ``recv`` does.
    ///
    /// A message longer than the buffer is not received: it raises
    /// ``MessageTooLarge`` (``len``: the message's length, ``max``: the
    /// buffer's) and stays queued, first in line, for a call with a larger
    /// buffer.
    #[pyo3(signature = (buffer, timeout=None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let until = Until::from_timeout(timeout)?;
        with_buffer(buffer, true, |region| {
            self.recv_with(py, until, |py, msg| {
                if msg.len() > region.len() {
                    let (len, max) = (msg.len(), region.len());
                    msg.keep();
                    return Err(errors::too_small(py, len, max));
                }
                let len = msg.len();
                let copy = move || {
                    region.copy_from(&msg);
                    len
                };
                Ok(match len >= LARGE {
                    true => py.detach(copy),
                    false => copy(),
                })
            })
        })
    }

    /// Receives the next message and the sender it came from, as
    /// ``(bytes, SenderId)``. Waits and raises as ``recv``.
    #[pyo3(signature = (timeout=None))]
    fn recv_from(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<(Py<PyBytes>, PySenderId)> {
        let until = Until::from_timeout(timeout)?;
        self.recv_with(py, until, from)
    }

    /// ``recv_from`` if a message is queued now; raises ``Empty`` when
    /// none is.
    fn try_recv_from(&self, py: Python<'_>) -> PyResult<(Py<PyBytes>, PySenderId)> {
        self.recv_with(py, Until::Now, from)
    }

    /// Receives the next message without blocking the event loop: a
    /// coroutine for asyncio (``await rx.recv_async()``).
    ///
    /// A message that is there is returned at once; otherwise the wait is
    /// handed to the receiver's helper thread (one per receiver), which
    /// wakes the loop when a message, the sender's death or the channel's
    /// removal arrives. Cancelling the awaiting task consumes nothing: the
    /// message is taken in the step that returns it. Raises as ``recv``
    /// (``Disconnected``, ``Removed``, ``Corrupted``).
    async fn recv_async(slf: Py<Self>) -> PyResult<Py<PyBytes>> {
        poll_fn(move |cx| Python::attach(|py| slf.get().poll_take(py, cx, bytes))).await
    }

    /// ``recv_from`` without blocking the event loop:
    /// ``msg, sender = await rx.recv_from_async()``. As ``recv_async``.
    async fn recv_from_async(slf: Py<Self>) -> PyResult<(Py<PyBytes>, PySenderId)> {
        poll_fn(move |cx| Python::attach(|py| slf.get().poll_take(py, cx, from))).await
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// ``async for msg in rx:`` receives with ``recv_async`` until every
    /// message is read and the senders it has seen are gone
    /// (``Disconnected`` ends the iteration); any other error is raised.
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method0(pyo3::intern!(slf.py(), "_anext"))
    }

    /// The coroutine of ``__anext__``.
    async fn _anext(slf: Py<Self>) -> PyResult<Py<PyBytes>> {
        let got = poll_fn(move |cx| Python::attach(|py| slf.get().poll_take(py, cx, bytes))).await;
        Python::attach(|py| match got {
            Err(e) if errors::is_disconnected(py, &e) => Err(PyStopAsyncIteration::new_err(())),
            other => other,
        })
    }

    /// The largest message the channel carries (capacity - 8).
    #[getter]
    fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Lets the receiver go; what it has not received stays queued for the
    /// next receiver. A ``recv`` blocked in another thread returns within
    /// 20 ms with ``ValueError``. Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        self.handle.close(py);
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next message (``recv()``); the iteration ends where ``recv``
    /// raises ``Disconnected``: every message is read and the senders it
    /// has seen are gone. Any other error is raised. Iterating again later
    /// waits for a new sender.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        match self.recv_with(py, Until::Deadline(None), bytes) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) if errors::is_disconnected(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
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

    fn __repr__(&self) -> &'static str {
        match self.handle.is_closed() {
            true => "<shmchan.Receiver closed>",
            false => "<shmchan.Receiver>",
        }
    }
}

/// Receives: a message that is there is taken at once (the GIL held, no
/// system call); else the wait runs in slices with the GIL released, and
/// the slice that finds a message hands it to `take` with the GIL back.
fn recv_on<T>(
    py: Python<'_>,
    rx: &mut Receiver,
    until: Until,
    closing: Closing<'_>,
    mut take: impl FnMut(Python<'_>, RecvGuard<'_>) -> PyResult<T>,
) -> PyResult<T> {
    let first = match until {
        Until::Now => rx.try_recv_ref(),
        Until::Deadline(_) => {
            rx.set_spin(Duration::ZERO);
            rx.recv_ref_deadline(past())
        }
    };
    let deadline = match (first, until) {
        (Ok(msg), _) => return take(py, msg),
        (Err(Error::Empty | Error::Timeout), Until::Deadline(deadline)) => deadline,
        (Err(e), _) => return Err(to_py(py, e)),
    };
    rx.set_spin(SPIN);
    in_slices(py, deadline, closing, |end| {
        let got = py.detach(|| rx.recv_ref_deadline(end));
        match slice_outcome(py, got)? {
            Some(msg) => take(py, msg).map(Some),
            None => Ok(None),
        }
    })
}

/// `recv`'s result: the message as a new `bytes` object.
fn bytes(py: Python<'_>, msg: RecvGuard<'_>) -> PyResult<Py<PyBytes>> {
    new_bytes(py, &msg).map(Bound::unbind)
}

/// `recv_from`'s result.
fn from(py: Python<'_>, msg: RecvGuard<'_>) -> PyResult<(Py<PyBytes>, PySenderId)> {
    let sender = PySenderId(msg.sender());
    Ok((bytes(py, msg)?, sender))
}
