"""The API itself: keys, opening by key and id, properties, context
managers, closing, errors and their classes, iteration."""

import errno
import grp
import inspect
import os
import threading

import pytest

import shmchan
from conftest import wait_parked

SETTLE = 30


def test_keys():
    assert shmchan.Key.PRIVATE.is_private and shmchan.Key.PRIVATE.raw == 0
    assert shmchan.Key(0) == shmchan.Key.PRIVATE
    assert shmchan.Key(0xFFFFFFFF) == shmchan.Key(-1)  # as ipcs prints it, or key_t
    assert shmchan.Key(0xFFFFFFFF).raw == -1
    assert int(shmchan.Key(0xC0FFEE)) == 0xC0FFEE
    assert repr(shmchan.Key(0xC0FFEE)) == "Key(0x00c0ffee)"
    assert str(shmchan.Key(0xC0FFEE)) == "key 0x00c0ffee"
    assert repr(shmchan.Key.PRIVATE) == "Key.PRIVATE"
    assert len({shmchan.Key(5), shmchan.Key(5), shmchan.Key(6)}) == 2
    for bad in (2**32, -(2**31) - 1):
        with pytest.raises(OverflowError):
            shmchan.Key(bad)


def test_ftok_keys(tmp_path):
    path = tmp_path / "k"
    path.touch()
    a = shmchan.Key.ftok(path, 1)
    assert a == shmchan.Key.ftok(str(path), 1) and a != shmchan.Key.ftok(path, 2)
    assert not a.is_private
    with pytest.raises(shmchan.Os) as e:
        shmchan.Key.ftok(tmp_path / "missing", 1)
    assert e.value.errno == errno.ENOENT and e.value.call == "ftok"
    with pytest.raises(shmchan.Os):
        shmchan.Key.ftok(path, 0)
    with pytest.raises(OverflowError):
        shmchan.Key.ftok(path, 256)


def test_create_and_open_by_key_and_by_id(new_channel, temp_key):
    with new_channel(temp_key, capacity=5000, max_senders=3) as chan:
        assert chan.key == temp_key and chan.capacity == 8192
        assert chan.max_message_len == 8192 - shmchan.FRAME_OVERHEAD
        assert not chan.persists and not chan.closed
        assert chan.id >= 0 and chan.sem_id >= 0
        with shmchan.Channel.open(temp_key) as by_key, shmchan.Channel.open_id(chan.id) as by_id:
            assert by_key.id == by_id.id == chan.id
            assert by_key.capacity == 8192
        with shmchan.Channel.open(temp_key.raw) as by_int:  # a number works too
            assert by_int.id == chan.id
        with pytest.raises(shmchan.AlreadyExists) as e:
            shmchan.Channel.create(temp_key)
        assert isinstance(e.value, FileExistsError) and e.value.errno == errno.EEXIST
        assert e.value.channel == str(temp_key)
    # The last party closed: it is gone.
    with pytest.raises(shmchan.NotFound) as e:
        shmchan.Channel.open(temp_key)
    assert isinstance(e.value, FileNotFoundError) and e.value.errno == errno.ENOENT


def test_defaults_and_options(new_channel):
    with new_channel() as chan:
        assert chan.key == shmchan.Key.PRIVATE
        assert chan.capacity == shmchan.DEFAULT_CAPACITY
    with new_channel(capacity=1, persist=True, mode=0o640, group=os.getgid()) as chan:
        assert chan.capacity == shmchan.MIN_CAPACITY and chan.persists
        chan.remove()  # a persistent channel stays until removed
    with new_channel(capacity=4096, group=grp.getgrgid(os.getgid()).gr_name) as chan:
        assert chan.capacity == 4096
    with pytest.raises(TypeError):
        shmchan.Channel.create(capacity=4096, group=1.5)
    with pytest.raises(TypeError):
        shmchan.Channel.create("not a key")
    with pytest.raises(TypeError):
        shmchan.Channel()  # made by create / open / open_id only


def test_handles_are_context_managers_and_closed_handles_refuse(new_channel):
    with new_channel(capacity=4096) as chan:
        with chan.sender() as tx, chan.receiver() as rx:
            tx.send(b"in")
            assert rx.recv() == b"in"
        assert tx.closed and rx.closed
        for call in (lambda: tx.send(b"x"), lambda: rx.recv(), lambda: rx.try_recv()):
            with pytest.raises(ValueError, match="closed"):
                call()
        tx.close()  # twice: nothing
        assert "closed" in repr(tx) and "closed" in repr(rx)
    assert chan.closed
    with pytest.raises(ValueError, match="closed"):
        chan.id
    with pytest.raises(ValueError, match="closed"):
        chan.sender()
    assert repr(chan) == "<shmchan.Channel closed>"


def test_roles_and_sender_ids(new_channel):
    with new_channel(capacity=4096, max_senders=2) as chan, chan.receiver() as rx:
        with pytest.raises(shmchan.RoleTaken) as e:
            chan.receiver()
        assert e.value.role == "receiver" and e.value.errno == errno.EBUSY
        a, b = chan.sender(), chan.sender()
        with pytest.raises(shmchan.RoleTaken) as e:
            chan.sender()
        assert e.value.role == "sender"
        assert (a.id.lane, b.id.lane) == (0, 1) and a.id.session == 1
        assert str(a.id) == "0:1" and repr(b.id) == "SenderId(lane=1, session=1)"
        assert a.id < b.id and a.id == a.id and len({a.id, b.id, a.id}) == 2
        a.send(b"from a")
        b.send(b"from b")
        assert {rx.recv_from(), rx.try_recv_from()} == {(b"from a", a.id), (b"from b", b.id)}
        a.close()
        with chan.sender() as again:  # a's lane, a new session
            assert (again.id.lane, again.id.session) == (0, 2)
        b.close()


def test_message_too_large_sends_nothing(new_channel):
    with new_channel(capacity=4096) as chan, chan.sender() as tx, chan.receiver() as rx:
        assert tx.max_message_len == rx.max_message_len == 4088
        with pytest.raises(shmchan.MessageTooLarge) as e:
            tx.send(bytes(4089))
        assert (e.value.len, e.value.max) == (4089, 4088)
        assert isinstance(e.value, ValueError)
        tx.send(bytes(4088))
        assert rx.recv() == bytes(4088)
        with pytest.raises(shmchan.Empty):
            rx.try_recv()


def test_iteration_ends_where_the_sender_is_gone(new_channel):
    with new_channel(capacity=4096) as chan, chan.receiver() as rx:
        with chan.sender() as tx:
            for word in (b"a", b"b", b"c"):
                tx.send(word)
        assert list(rx) == [b"a", b"b", b"c"]
        assert list(rx) == []  # still ended
        with chan.sender() as tx:  # a new sender: the iteration goes on
            tx.send(b"d")
        assert list(rx) == [b"d"]


def test_remove_under_live_parties(new_channel):
    chan = new_channel(capacity=4096)
    other = shmchan.Channel.open_id(chan.id)
    tx, rx = other.sender(), other.receiver()
    chan.remove()
    assert chan.closed
    with pytest.raises(shmchan.Removed) as e:
        tx.send(b"late")
    assert isinstance(e.value, OSError) and e.value.errno == errno.EIDRM
    with pytest.raises(shmchan.Removed):
        rx.recv(timeout=SETTLE)
    with pytest.raises(shmchan.Removed):
        list(rx)  # not the normal end: raised
    with pytest.raises(ValueError):
        chan.remove()
    for h in (tx, rx, other):
        h.close()


def test_timeout_arguments(new_channel):
    with new_channel(capacity=4096) as chan, chan.sender() as tx, chan.receiver() as rx:
        for bad in (-1, -0.001, float("nan")):
            with pytest.raises(ValueError):
                rx.recv(timeout=bad)
            with pytest.raises(ValueError):
                tx.send(b"x", timeout=bad)
        with pytest.raises(TypeError):
            rx.recv(timeout="1")
        tx.send(b"now")
        assert rx.recv(timeout=float("inf")) == b"now"  # infinity: no deadline
        tx.send(b"then")
        assert rx.recv(timeout=1e300) == b"then"  # beyond any clock: no deadline


def test_close_from_another_thread_ends_a_blocked_recv(new_channel):
    with new_channel(capacity=4096) as chan:
        tx, rx = chan.sender(), chan.receiver()  # a sender: recv waits
        main = threading.get_native_id()

        def closer():
            wait_parked(os.getpid(), main)
            rx.close()

        t = threading.Thread(target=closer)
        t.start()
        with pytest.raises(ValueError, match="closed"):
            rx.recv(timeout=SETTLE)
        t.join()
        assert rx.closed
        tx.close()


def test_threads_share_a_receiver_one_call_at_a_time(new_channel):
    with new_channel(capacity=1 << 16) as chan, chan.sender() as tx, chan.receiver() as rx:
        got = []

        def worker():
            for _ in range(1000):
                got.append(rx.recv(timeout=SETTLE))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(4000):
            tx.send(i.to_bytes(4, "little"), timeout=SETTLE)
        for t in threads:
            t.join()
        assert sorted(int.from_bytes(m, "little") for m in got) == list(range(4000))


def test_exception_classes():
    expected = {
        "NotFound": FileNotFoundError,
        "AlreadyExists": FileExistsError,
        "PermissionDenied": PermissionError,
        "NotAChannel": ValueError,
        "VersionMismatch": ValueError,
        "RoleTaken": OSError,
        "MessageTooLarge": ValueError,
        "Full": BlockingIOError,
        "Empty": BlockingIOError,
        "Timeout": TimeoutError,
        "Disconnected": ConnectionError,
        "Busy": OSError,
        "Removed": OSError,
        "Corrupted": OSError,
        "Os": OSError,
    }
    for name, builtin in expected.items():
        cls = getattr(shmchan, name)
        assert issubclass(cls, shmchan.Error) and issubclass(cls, builtin), name
        assert cls.__module__ == "shmchan" and cls.__doc__, name
    assert issubclass(shmchan.Error, Exception)
    assert set(expected) | {"Error"} <= set(shmchan.__all__)


def test_everything_public_has_a_docstring():
    for name in shmchan.__all__:
        obj = getattr(shmchan, name)
        if isinstance(obj, type):
            assert obj.__doc__, name
            for attr, member in vars(obj).items():
                public = not attr.startswith("_")
                described = callable(member) or inspect.isgetsetdescriptor(member)
                if public and (described or isinstance(member, property)):
                    assert getattr(member, "__doc__", None), f"{name}.{attr}"
    assert shmchan.__doc__
