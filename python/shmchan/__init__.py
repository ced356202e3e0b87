"""shmchan: message channels between processes on one Linux host, over
System V shared memory.

A channel is a ring of messages in a shared-memory segment, with a
semaphore set for sleeping and for noticing a peer's death. One process
creates it and receives; others open it (by key or by id) and send. Each
message arrives whole and in order, copied once into the ring and once
out: no pickling, no trip through the kernel for the bytes.

Two processes::

    # receiver.py
    import shmchan

    with shmchan.Channel.create() as chan, chan.receiver() as rx:
        print(chan.id)              # give this to the sender
        for msg in rx:              # until the sender is gone
            print(msg)

    # sender.py
    import sys, shmchan

    with shmchan.Channel.open_id(int(sys.argv[1])) as chan, chan.sender() as tx:
        tx.send(b"hello")
        tx.send(bytearray(b"world"))

With a key instead of an id, both call ``shmchan.Key.ftok(path, proj_id)``
on the same file: ``Channel.create(key)`` in one, ``Channel.open(key)`` in
the other.

Blocking calls release the GIL and let Ctrl-C through, losing no message.
For asyncio, ``await rx.recv_async()``, ``await rx.recv_from_async()``,
``async for msg in rx`` and ``await tx.send_async(data)`` never block the
event loop, and a cancelled one consumes or sends nothing.
Errors are ``shmchan.Error`` and its subclasses, each also a built-in
exception (``Timeout`` is a ``TimeoutError``, ``Disconnected`` a
``ConnectionError``, ...). The same channels are open to Rust programs
(the ``shmchan`` crate), the ``shmchan`` command and C.
"""

from ._errors import *  # noqa: F403 (Error and its subclasses)
from ._errors import __all__ as _errors_all
from ._shmchan import (
    DEFAULT_CAPACITY,
    FRAME_OVERHEAD,
    MAX_SENDERS,
    MIN_CAPACITY,
    Channel,
    Key,
    Receiver,
    Sender,
    SenderId,
    __version__,
)

__all__ = [
    "Channel",
    "Key",
    "Sender",
    "Receiver",
    "SenderId",
    "DEFAULT_CAPACITY",
    "FRAME_OVERHEAD",
    "MAX_SENDERS",
    "MIN_CAPACITY",
    "__version__",
    *_errors_all,
]
