"""Test 4: timeouts end in time and consume nothing; ``try_`` calls raise
``Full`` and ``Empty``; a peer's SIGKILL wakes a blocked call with
``Disconnected``. The peer is another process."""

import os
import threading
import time

import pytest

import shmchan
from conftest import wait_parked
from helpers import fill, numbered

# A timeout may end late by this much on a busy machine, not earlier: the
# bound checks "in time", it does not time the library.
LATE = 1.0
WAIT = 0.2


def test_recv_times_out_in_time_and_then_gets_the_next_message(new_channel, peers):
    with new_channel(capacity=4096) as chan, chan.receiver() as rx:
        tx = peers("hold", chan.id, "sender")
        tx.expect("ready")
        for timeout in (0, 0.001, WAIT):
            start = time.monotonic()
            with pytest.raises(shmchan.Timeout) as e:
                rx.recv(timeout=timeout)
            took = time.monotonic() - start
            assert timeout <= took < timeout + LATE
            assert isinstance(e.value, TimeoutError) and str(e.value) == "timed out"
        # The timed-out calls consumed nothing, and the next message comes.
        tx.tell("send 6e657874")
        tx.expect("sent")
        assert rx.recv(timeout=WAIT) == b"next"
        start = time.monotonic()
        with pytest.raises(shmchan.Timeout):
            rx.recv_from(timeout=WAIT)
        with pytest.raises(shmchan.Timeout):
            rx.recv_into(bytearray(8), timeout=WAIT)
        assert time.monotonic() - start >= 2 * WAIT
        tx.finish()
        with pytest.raises(shmchan.Disconnected):
            rx.recv(timeout=30)


def test_send_times_out_in_time_on_a_full_ring_having_sent_nothing(new_channel, peers):
    with new_channel(capacity=4096) as chan:
        rx = peers("hold", chan.id, "receiver")
        rx.expect("ready")
        with chan.sender() as tx:
            n = fill(tx)
            assert n > 0
            start = time.monotonic()
            with pytest.raises(shmchan.Timeout):
                tx.send(b"late" * 16, timeout=WAIT)
            took = time.monotonic() - start
            assert WAIT <= took < WAIT + LATE
            # The receiver finds exactly what was sent, then room comes.
            for i in range(n):
                rx.tell("recv")
                assert rx.expect("got") == numbered(i).hex()
            tx.send(b"room", timeout=WAIT)
            rx.tell("recv")
            assert rx.expect("got") == b"room".hex()
        rx.finish()


def test_try_recv_raises_empty_and_try_send_raises_full(new_channel, peers):
    with new_channel(capacity=4096) as chan, chan.receiver() as rx:
        with pytest.raises(shmchan.Empty) as e:
            rx.try_recv()
        assert isinstance(e.value, BlockingIOError) and e.value.errno == 11
        with pytest.raises(shmchan.Empty):
            rx.try_recv_from()
        sender = peers("hold", chan.id, "sender")
        sender.expect("ready")
        with pytest.raises(shmchan.Empty):
            rx.try_recv()
        sender.tell("send 00ff")
        sender.expect("sent")
        assert rx.try_recv() == b"\x00\xff"
        sender.finish()
        with pytest.raises(shmchan.Disconnected):
            rx.try_recv()

    with new_channel(capacity=4096) as chan:
        rx = peers("hold", chan.id, "receiver")
        rx.expect("ready")
        with chan.sender() as tx:
            n = fill(tx)
            with pytest.raises(shmchan.Full) as e:
                tx.try_send(b"x")
            assert isinstance(e.value, BlockingIOError)
            rx.tell("recv")
            rx.expect("got")
            tx.try_send(b"x" * 64)  # room for one again
            with pytest.raises(shmchan.Full):
                tx.try_send(b"x")
            for _ in range(n):
                rx.tell("recv")
                rx.expect("got")
        rx.finish()


def kill_when_parked(peer):
    """SIGKILLs ``peer`` from another thread once this thread is parked
    on the channel's semaphore."""
    pid, tid = os.getpid(), threading.get_native_id()

    def kill():
        wait_parked(pid, tid)
        peer.kill()

    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t


def test_a_recv_blocked_on_a_sender_that_is_killed_gets_disconnected(new_channel, peers):
    with new_channel(capacity=4096) as chan, chan.receiver() as rx:
        tx = peers("hold", chan.id, "sender")
        tx.expect("ready")
        tx.tell("send 6c617374")
        tx.expect("sent")
        assert rx.recv(timeout=30) == b"last"
        killer = kill_when_parked(tx)
        start = time.monotonic()
        with pytest.raises(shmchan.Disconnected) as e:
            rx.recv(timeout=30)  # woken by the kernel's undo at the death
        assert time.monotonic() - start < 30
        assert isinstance(e.value, ConnectionError)
        killer.join()


def test_a_send_blocked_on_a_receiver_that_is_killed_gets_disconnected(new_channel, peers):
    with new_channel(capacity=4096) as chan:
        rx = peers("hold", chan.id, "receiver")
        rx.expect("ready")
        with chan.sender() as tx:
            fill(tx)
            killer = kill_when_parked(rx)
            with pytest.raises(shmchan.Disconnected):
                tx.send(b"x" * 64, timeout=30)
            killer.join()
        # The ring still holds what was sent: nothing is dropped silently,
        # so the channel stays for a next receiver; this test removes it.
        chan.remove()
