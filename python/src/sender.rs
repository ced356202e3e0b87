//! `shmchan.Sender` and `shmchan.SenderId`.

use std::future::poll_fn;
use std::task::Poll;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use shmchan::{Error, SendGrant, Sender, SenderId};

use crate::buffer::{LARGE, Region, with_buffer};
use crate::errors::{check, to_py};
use std::time::Duration;

use crate::handle::{Closing, Handle, SPIN, Until, in_slices, past, slice_outcome};

/// The sending side of a channel (``Channel.sender()``).
///
/// ``send`` takes any bytes-like object (``bytes``, ``bytearray``,
/// ``memoryview``, ``array.array``, a contiguous numpy array, ...) and
/// copies its bytes once, straight into the shared ring: no pickling, no
/// intermediate copy. When it returns, the receiver can see the message.
///
/// ``close()`` (or leaving a ``with`` block) lets the sender go: the
/// receiver gets every message sent, then ``Disconnected``. Not fork-safe
/// (a child opens its own); any thread may use it, one call at a time.
#[pyclass(frozen, module = "shmchan", name = "Sender")]
pub(crate) struct PySender {
    handle: Handle<Sender>,
    /// Fixed for the handle's life: read without waiting for a call in
    /// another thread.
    id: SenderId,
    max_message_len: usize,
}

impl PySender {
    pub(crate) fn wrap(tx: Sender) -> PySender {
        PySender {
            id: tx.id(),
            max_message_len: tx.max_message_len(),
            handle: Handle::new(tx, "Sender"),
        }
    }

    fn send_how(&self, py: Python<'_>, data: &Bound<'_, PyAny>, until: Until) -> PyResult<()> {
        // A `bytes` object is immutable and needs no export; anything else
        // is exported for the length of the call.
        if let Ok(bytes) = data.cast::<PyBytes>() {
            let region = Region::of_bytes(bytes);
            return self
                .handle
                .with(py, |tx, c| send_on(py, tx, region, until, c));
        }
        with_buffer(data, false, |region| {
            self.handle
                .with(py, |tx, c| send_on(py, tx, region, until, c))
        })
    }
}

#[pymethods]
impl PySender {
    /// Sends ``data`` (any bytes-like object), waiting while the ring is
    /// full: for ever, or at most ``timeout`` seconds.
    ///
    /// The wait releases the GIL, and Ctrl-C interrupts it
    /// (``KeyboardInterrupt``) having sent nothing. With no receiver yet,
    /// messages fill the ring, then ``send`` waits for one.
    ///
    /// Raises ``MessageTooLarge`` (longer than ``max_message_len``: nothing
    /// sent), ``Timeout`` (nothing sent), ``Disconnected`` when the
    /// receiver it has seen is gone, ``Removed``, ``Corrupted``.
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.send_how(py, data, Until::from_timeout(timeout)?)
    }

    /// Sends ``data`` if the ring has room for it now.
    ///
    /// Raises ``Full`` when it has not, and as ``send``.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.send_how(py, data, Until::Now)
    }

    /// Sends ``data`` (any bytes-like object) without blocking the event
    /// loop: a coroutine for asyncio (``await tx.send_async(data)``).
    ///
    /// Room that is there is taken at once; otherwise the wait is handed
    /// to the sender's helper thread (one per sender), which wakes the
    /// loop when the receiver makes room, dies, or the channel is removed.
    /// Cancelling the awaiting task sends nothing: the message is written
    /// and committed in the step that completes. Raises as ``send``.
    async fn send_async(slf: Py<Self>, data: Py<PyAny>) -> PyResult<()> {
        poll_fn(move |cx| {
            Python::attach(|py| {
                let data = data.bind(py);
                let mut step = |region: Region| {
                    slf.get().handle.with(py, |tx, _| {
                        tx.set_spin(SPIN);
                        Ok(match tx.poll_reserve(cx, region.len()) {
                            Poll::Ready(Ok(grant)) => Poll::Ready(fill(py, grant, region)),
                            Poll::Ready(Err(e)) => Poll::Ready(Err(to_py(py, e))),
                            Poll::Pending => Poll::Pending,
                        })
                    })
                };
                let r = match data.cast::<PyBytes>() {
                    Ok(bytes) => step(Region::of_bytes(bytes)),
                    Err(_) => with_buffer(data, false, &mut step),
                };
                r.unwrap_or_else(|e| Poll::Ready(Err(e)))
            })
        })
        .await
    }

    /// This sender's identity: the receiver's ``recv_from`` returns it with
    /// each of its messages.
    #[getter]
    fn id(&self) -> PySenderId {
        PySenderId(self.id)
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

    /// Lets the sender go: the receiver gets what was sent, then
    /// ``Disconnected``. A ``send`` blocked in another thread returns
    /// within 20 ms with ``ValueError``. Closing twice does nothing.
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

    fn __repr__(&self) -> String {
        match self.handle.is_closed() {
            true => format!("<shmchan.Sender {} closed>", self.id),
            false => format!("<shmchan.Sender {}>", self.id),
        }
    }
}

/// Sends `data`: at once when there is room (the GIL held, no system
/// call), else waiting in slices with the GIL released, the copy made
/// inside the slice that found room.
fn send_on(
    py: Python<'_>,
    tx: &mut Sender,
    data: Region,
    until: Until,
    closing: Closing<'_>,
) -> PyResult<()> {
    let first = match until {
        Until::Now => tx.try_reserve(data.len()),
        Until::Deadline(_) => {
            tx.set_spin(Duration::ZERO);
            tx.reserve_deadline(data.len(), past())
        }
    };
    let deadline = match (first, until) {
        (Ok(grant), _) => return fill(py, grant, data),
        (Err(Error::Full | Error::Timeout), Until::Deadline(deadline)) => deadline,
        (Err(e), _) => return Err(to_py(py, e)),
    };
    tx.set_spin(SPIN);
    in_slices(py, deadline, closing, |end| {
        let sent = py.detach(|| {
            let mut grant = tx.reserve_deadline(data.len(), end)?;
            data.copy_to(&mut grant);
            grant.commit()
        });
        slice_outcome(py, sent)
    })
}

/// Copies `data` into the reserved frame and commits it; a large message
/// is copied with the GIL released.
fn fill(py: Python<'_>, mut grant: SendGrant<'_>, data: Region) -> PyResult<()> {
    let copy = move || {
        data.copy_to(&mut grant);
        grant.commit()
    };
    let r = match data.len() >= LARGE {
        true => py.detach(copy),
        false => copy(),
    };
    check(py, r)
}

/// Which sender a message came from: its lane and its session on that
/// lane (a new sender on the lane is a new session). Equal, hashable and
/// ordered; ``str()`` gives ``"lane:session"``, the text the Rust library
/// and the ``shmchan`` command print for it.
#[pyclass(frozen, eq, hash, ord, module = "shmchan", name = "SenderId")]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PySenderId(pub(crate) SenderId);

#[pymethods]
impl PySenderId {
    /// The lane (0 to ``max_senders - 1``).
    #[getter]
    fn lane(&self) -> u16 {
        self.0.lane()
    }

    /// The session on that lane (1 for its first sender).
    #[getter]
    fn session(&self) -> u64 {
        self.0.session()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "SenderId(lane={}, session={})",
            self.0.lane(),
            self.0.session()
        )
    }
}
