"""Test 3: every bytes-like input sends its bytes, and ``recv_into`` fills
any writable buffer; a receiver or sender in another process."""

import array

import pytest

import shmchan
from helpers import parse_records, records

def inputs():
    """(name, object, its bytes) for each kind of bytes-like object."""
    big = bytes(range(256)) * 400  # 102400 bytes: copied without the GIL
    ints = array.array("i", range(-5, 5))
    doubles = array.array("d", [0.5, -1.25, 1e300])
    backing = bytearray(b"0123456789")
    yield "bytes", b"plain bytes", b"plain bytes"
    yield "empty", b"", b""
    yield "bytearray", bytearray(b"a bytearray"), b"a bytearray"
    yield "memoryview", memoryview(b"a memoryview"), b"a memoryview"
    yield "memoryview slice", memoryview(backing)[2:7], b"23456"
    yield "array i", ints, ints.tobytes()
    yield "array d", doubles, doubles.tobytes()
    yield "large bytes", big, big
    yield "large bytearray", bytearray(big), big
    yield "large memoryview", memoryview(big)[1:], big[1:]


def numpy_inputs():
    np = pytest.importorskip("numpy")
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    yield "numpy 2-d", a, a.tobytes()
    yield "numpy rows", a[1:3], a[1:3].tobytes()
    yield "numpy u8", np.frombuffer(b"numpy bytes", dtype=np.uint8), b"numpy bytes"


def send_each_and_collect(new_channel, peers, cases):
    """Sends each case's object to a receiver process; returns what it got."""
    with new_channel(capacity=1 << 20) as chan:
        rx = peers("recv-dump", chan.id, binary_out=True)
        with chan.sender() as tx:
            for _, obj, _ in cases:
                tx.send(obj)
        return parse_records(rx.finish())


def test_every_bytes_like_object_is_sent_as_its_bytes(new_channel, peers):
    cases = list(inputs())
    got = send_each_and_collect(new_channel, peers, cases)
    assert got == [want for _, _, want in cases], [name for name, _, _ in cases]


def test_numpy_arrays_are_sent_as_their_bytes(new_channel, peers):
    cases = list(numpy_inputs())
    got = send_each_and_collect(new_channel, peers, cases)
    assert got == [want for _, _, want in cases]


def test_try_send_takes_every_bytes_like_object_too(new_channel, peers):
    cases = list(inputs())
    with new_channel(capacity=1 << 20) as chan:
        rx = peers("recv-dump", chan.id, binary_out=True)
        with chan.sender() as tx:
            for _, obj, _ in cases:
                tx.try_send(obj)  # 1 MiB holds them all: never Full
        got = parse_records(rx.finish())
    assert got == [want for _, _, want in cases]


def test_what_is_not_bytes_like_is_a_type_error_and_sends_nothing(new_channel):
    with new_channel(capacity=4096) as chan, chan.sender() as tx, chan.receiver() as rx:
        for bad in ("a str", 42, None, [1, 2], object()):
            with pytest.raises(TypeError):
                tx.send(bad)
            with pytest.raises(TypeError):
                tx.try_send(bad)
        # A non-contiguous view cannot be sent as one message.
        with pytest.raises(BufferError):
            tx.send(memoryview(b"abcdef")[::2])
        with pytest.raises(shmchan.Empty):
            rx.try_recv()


def sent_by_peer(new_channel, peers, msgs):
    """A channel whose sender, in another process, sends ``msgs`` and
    leaves; the test receives them with ``rx``."""
    chan = new_channel(capacity=1 << 20)
    rx = chan.receiver()
    peer = peers("send-records", chan.id, stdin_bytes=records(msgs))
    return chan, rx, peer


def test_recv_into_fills_a_bytearray_and_a_memoryview_without_allocating(new_channel, peers):
    msgs = [b"first", b"second message", b"", bytes(range(256)) * 300, b"last"]
    chan, rx, peer = sent_by_peer(new_channel, peers, msgs)
    with chan, rx:
        buf = bytearray(100_000)
        n = rx.recv_into(buf)
        assert (n, bytes(buf[:n])) == (5, b"first")
        view = memoryview(buf)[10:]  # a view into the same storage
        n = rx.recv_into(view)
        assert (n, bytes(buf[10 : 10 + n])) == (14, b"second message")
        assert bytes(buf[:5]) == b"first"  # nothing before the view touched
        assert rx.recv_into(bytearray(0)) == 0
        n = rx.recv_into(view)  # 76800 bytes: copied without the GIL
        assert bytes(view[:n]) == msgs[3]
        arr = array.array("b", bytes(8))
        n = rx.recv_into(arr)
        assert arr.tobytes()[:n] == b"last"
        with pytest.raises(shmchan.Disconnected):
            rx.recv(timeout=30)
    peer.finish()


def test_recv_into_a_numpy_array(new_channel, peers):
    np = pytest.importorskip("numpy")
    values = np.arange(10, dtype=np.int32)
    chan, rx, peer = sent_by_peer(new_channel, peers, [values.tobytes()])
    with chan, rx:
        out = np.zeros(16, dtype=np.int32)
        n = rx.recv_into(out)
        assert n == 40
        assert (out[:10] == values).all() and not out[10:].any()
    peer.finish()


def test_recv_into_a_buffer_too_small_raises_and_keeps_the_message_first(new_channel, peers):
    msgs = [b"x" * 100, b"short"]
    chan, rx, peer = sent_by_peer(new_channel, peers, msgs)
    with chan, rx:
        small = bytearray(10)
        with pytest.raises(shmchan.MessageTooLarge) as e:
            rx.recv_into(small)
        assert (e.value.len, e.value.max) == (100, 10)
        assert isinstance(e.value, ValueError)
        assert small == bytearray(10), "nothing written to the buffer"
        # The message is still there, first: a larger buffer gets it.
        big = bytearray(100)
        assert rx.recv_into(big) == 100 and big == bytearray(b"x" * 100)
        assert rx.recv_into(small) == 5 and small[:5] == b"short"
    peer.finish()


def test_recv_into_refuses_a_read_only_buffer(new_channel):
    with new_channel(capacity=4096) as chan, chan.sender() as tx, chan.receiver() as rx:
        tx.send(b"kept")
        for read_only in (b"immutable", memoryview(b"immutable")):
            with pytest.raises(BufferError):
                rx.recv_into(read_only)
        with pytest.raises(TypeError):
            rx.recv_into("a str")
        assert rx.recv() == b"kept", "a refused call consumes nothing"
