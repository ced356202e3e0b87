"""Type stubs of shmchan (the extension module and the exceptions)."""

import os
import sys
from types import TracebackType
from typing import AsyncIterator, Awaitable, Iterator, Optional, Tuple, Type, Union, final

from ._errors import *

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    from typing_extensions import Buffer

if sys.version_info >= (3, 11):
    from typing import Self
else:
    from typing_extensions import Self

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
    # The exceptions (from _errors, as at run time):
    "Error",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "NotAChannel",
    "VersionMismatch",
    "RoleTaken",
    "MessageTooLarge",
    "Full",
    "Empty",
    "Timeout",
    "Disconnected",
    "Busy",
    "Removed",
    "Corrupted",
    "Os",
]

__version__: str
DEFAULT_CAPACITY: int
"""Ring bytes per sender when ``create`` is given no ``capacity``: 4 MiB."""
MIN_CAPACITY: int
"""The smallest ring: smaller capacities are rounded up to it (4096)."""
MAX_SENDERS: int
"""The most senders a channel may have at once (``max_senders``): 64."""
FRAME_OVERHEAD: int
"""Ring bytes a message takes beyond its payload (8)."""

@final
class Key:
    """A System V IPC key naming a channel."""

    PRIVATE: Key
    """``IPC_PRIVATE``: a channel no key names, opened by its id."""

    def __new__(cls, raw: int) -> Key:
        """A key from its number, -2**31 to 2**32 - 1."""
    @staticmethod
    def ftok(path: Union[str, os.PathLike[str]], proj_id: int) -> Key:
        """A key from an existing file and a project id (1 to 255)."""
    @property
    def raw(self) -> int:
        """The key as the kernel's signed 32-bit ``key_t``."""
    @property
    def is_private(self) -> bool:
        """Whether this is ``Key.PRIVATE``."""
    def __int__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class SenderId:
    """Which sender a message came from: its lane and its session."""

    @property
    def lane(self) -> int:
        """The lane (0 to ``max_senders - 1``)."""
    @property
    def session(self) -> int:
        """The session on that lane (1 for its first sender)."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __lt__(self, value: SenderId, /) -> bool: ...
    def __le__(self, value: SenderId, /) -> bool: ...
    def __gt__(self, value: SenderId, /) -> bool: ...
    def __ge__(self, value: SenderId, /) -> bool: ...

@final
class Channel:
    """An open channel: a shared-memory segment (its ring) and its
    semaphore set."""

    @classmethod
    def create(
        cls,
        key: Union[Key, int, None] = None,
        *,
        capacity: int = ...,
        mode: int = 0o600,
        persist: bool = False,
        replace_stale: bool = False,
        max_senders: int = 1,
        group: Union[str, int, None] = None,
    ) -> Channel:
        """Creates a new channel (``key=None``: a private one) and opens it."""
    @classmethod
    def open(cls, key: Union[Key, int]) -> Channel:
        """Opens the existing channel at ``key``; never creates."""
    @classmethod
    def open_id(cls, shmid: int) -> Channel:
        """Opens the existing channel whose segment id is ``shmid``."""
    @property
    def id(self) -> int:
        """The segment id (``shmid``)."""
    @property
    def sem_id(self) -> int:
        """The semaphore set's id (``semid``)."""
    @property
    def key(self) -> Key:
        """The key it was created with (``Key.PRIVATE`` for a private one)."""
    @property
    def capacity(self) -> int:
        """Ring bytes (per sender)."""
    @property
    def max_message_len(self) -> int:
        """The largest message it carries: capacity - 8."""
    @property
    def persists(self) -> bool:
        """Whether the channel outlives its last party."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` (or ``remove()``) was called on this handle."""
    def sender(self) -> Sender:
        """Takes a sending side (one per lane, ``max_senders`` at once)."""
    def receiver(self) -> Receiver:
        """Takes the receiving side (one at a time)."""
    def remove(self) -> None:
        """Removes the channel now, under any open parties, and closes
        this handle."""
    def close(self) -> None:
        """Leaves the channel; closing twice does nothing."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Sender:
    """The sending side of a channel."""

    def send(self, data: Buffer, timeout: Optional[float] = None) -> None:
        """Sends ``data`` (any bytes-like object), waiting while the ring is
        full (for ever, or at most ``timeout`` seconds)."""
    def try_send(self, data: Buffer) -> None:
        """Sends ``data`` if the ring has room now; raises ``Full`` if not."""
    async def send_async(self, data: Buffer) -> None:
        """Sends ``data`` without blocking the event loop (asyncio);
        cancelling the task sends nothing."""
    @property
    def id(self) -> SenderId:
        """This sender's identity, as ``recv_from`` reports it."""
    @property
    def max_message_len(self) -> int:
        """The largest message the channel carries."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
    def close(self) -> None:
        """Lets the sender go: the receiver reads what was sent, then
        gets ``Disconnected``."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Receiver:
    """The receiving side of a channel."""

    def recv(self, timeout: Optional[float] = None) -> bytes:
        """Receives the next message (for ever, or at most ``timeout``
        seconds)."""
    def try_recv(self) -> bytes:
        """Receives a message if one is queued now; raises ``Empty`` if not."""
    def recv_into(self, buffer: Buffer, timeout: Optional[float] = None) -> int:
        """Receives the next message into a writable buffer; returns its
        length. A message longer than the buffer raises
        ``MessageTooLarge`` and stays queued."""
    def recv_from(self, timeout: Optional[float] = None) -> Tuple[bytes, SenderId]:
        """Receives the next message and the sender it came from."""
    def try_recv_from(self) -> Tuple[bytes, SenderId]:
        """``recv_from`` if a message is queued now; raises ``Empty`` if not."""
    async def recv_async(self) -> bytes:
        """Receives the next message without blocking the event loop
        (asyncio); cancelling the task consumes nothing."""
    async def recv_from_async(self) -> Tuple[bytes, SenderId]:
        """``recv_from`` without blocking the event loop."""
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def __anext__(self) -> Awaitable[bytes]: ...
    @property
    def max_message_len(self) -> int:
        """The largest message the channel carries."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
    def close(self) -> None:
        """Lets the receiver go; unread messages wait for the next one."""
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
