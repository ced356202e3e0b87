"""The exceptions of shmchan: ``Error`` and one subclass per error of the
Rust library.

Each class also derives from the closest built-in exception, so that code
which knows nothing of shmchan still catches it sensibly (``except
TimeoutError``, ``except FileNotFoundError``, ...). The message is the
library's; the error's details are attributes (``channel``, ``len``,
``max``, ...), and the ``OSError`` kinds carry ``errno``: the library's
when it reports one (``PermissionDenied``, ``Os``), else the number that
kind stands for (``NotFound`` ENOENT, ``Full`` EAGAIN, ``Timeout``
ETIMEDOUT, ...).

The extension module (``shmchan._shmchan``) raises these classes; they are
written in Python because a class made in Rust cannot derive from two
built-in exceptions.
"""

__all__ = [
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


class Error(Exception):
    """Base class of every error that shmchan raises for the library.

    Errors of the caller's arguments that are not the library's (a wrong
    type, a negative timeout, a call on a closed handle) raise the usual
    ``TypeError`` and ``ValueError`` instead.
    """


class NotFound(Error, FileNotFoundError):
    """No channel exists at that key or id (or it is being removed).

    ``channel`` names the key or id; ``errno`` is ENOENT.
    """

    channel: str


class AlreadyExists(Error, FileExistsError):
    """``Channel.create`` found a segment or semaphore set at that key.

    ``channel`` names the key; ``errno`` is EEXIST.
    """

    channel: str


class PermissionDenied(Error, PermissionError):
    """The kernel refused access (EACCES or EPERM).

    ``channel`` names the key or id, ``call`` the system call refused,
    ``errno`` its error number.
    """

    channel: str
    call: str


class NotAChannel(Error, ValueError):
    """The segment at that key or id is not a shmchan channel.

    ``channel`` names it; ``reason`` says what gave it away.
    """

    channel: str
    reason: str


class VersionMismatch(Error, ValueError):
    """The channel has another layout version than this library speaks.

    ``channel`` names it; ``found`` is its version, ``expected`` ours.
    """

    channel: str
    found: int
    expected: int


class RoleTaken(Error, OSError):
    """Another open handle holds the role asked for: the receiver, or every
    sender lane (``max_senders``).

    ``channel`` names the channel, ``role`` is ``"sender"`` or
    ``"receiver"``; ``errno`` is EBUSY.
    """

    channel: str
    role: str


class MessageTooLarge(Error, ValueError):
    """A message does not fit: nothing was sent or received.

    ``send``: the message is longer than the channel's
    ``max_message_len``. ``recv_into``: the next message is longer than the
    buffer; it stays queued, first in line, for a larger buffer. ``len`` is
    the message's length, ``max`` the limit it exceeded.
    """

    len: int
    max: int


class Full(Error, BlockingIOError):
    """``try_send``: the ring has no room for the message now.

    Like a non-blocking socket's ``BlockingIOError``; ``errno`` is EAGAIN.
    """


class Empty(Error, BlockingIOError):
    """``try_recv``: no message is queued now.

    Like a non-blocking socket's ``BlockingIOError``; ``errno`` is EAGAIN.
    """


class Timeout(Error, TimeoutError):
    """A call with a ``timeout`` ran out of time, having sent or received
    nothing. ``errno`` is ETIMEDOUT."""


class Disconnected(Error, ConnectionError):
    """The peer this handle has seen is gone.

    A receiver gets it once every message is read and every sender it has
    seen is gone (iteration ends there); a sender once the receiver it has
    seen is gone. Not final: a new peer may attach to the same channel.
    """


class Busy(Error, OSError):
    """A removal without force refused a channel in use.

    ``channel`` names it, ``parties`` counts its live parties; ``errno``
    is EBUSY.
    """

    channel: str
    parties: int


class Removed(Error, OSError):
    """The channel was removed (``Channel.remove()``, ``shmchan rm``,
    ``ipcrm``) while this handle was open.

    ``channel`` names it; ``errno`` is EIDRM.
    """

    channel: str


class Corrupted(Error, OSError):
    """The channel's shared header or a message frame failed validation.

    The handle is poisoned: every later call on it raises this again.
    ``channel`` names it, ``what`` says what was wrong.
    """

    channel: str
    what: str


class Os(Error, OSError):
    """Any other error of the operating system.

    ``call`` is the system call, ``channel`` the key, id or path it was
    made on, ``errno`` its error number (``None`` when the library found
    the argument wrong before any call, as ``Key.ftok`` does for a
    ``proj_id`` of 0).
    """

    channel: str
    call: str


# Shown (and pickled) as shmchan.X, where the package exports them.
for _class in (Error, *(globals()[_name] for _name in __all__[1:])):
    _class.__module__ = "shmchan"
del _class
