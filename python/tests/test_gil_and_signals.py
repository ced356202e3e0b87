"""Test 5: a blocked call releases the GIL, so another thread runs
meanwhile. Test 6: SIGINT to a process blocked in ``recv`` (or ``send``)
raises ``KeyboardInterrupt`` within 100 ms, and no message is lost."""

import os
import signal
import threading
import time

import shmchan
from conftest import wait_parked
from helpers import fill, numbered

# The bound on Ctrl-C.
CTRL_C = 0.100
SETTLE = 30


def test_another_thread_runs_while_recv_blocks(new_channel, peers):
    with new_channel(capacity=4096) as chan, chan.receiver() as rx:
        tx = peers("hold", chan.id, "sender")
        tx.expect("ready")
        main = threading.get_native_id()
        done = []

        def other_thread():
            # Runs only if recv released the GIL: it waits until the main
            # thread is parked, works, then has the message sent.
            wait_parked(os.getpid(), main)
            total = 0
            for i in range(200_000):
                total += i
            done.append(total)
            tx.tell("send " + b"after the work".hex())

        t = threading.Thread(target=other_thread)
        t.start()
        msg = rx.recv(timeout=SETTLE)
        t.join()
        assert msg == b"after the work"
        assert done == [sum(range(200_000))]
        tx.finish()


def test_another_thread_runs_while_send_blocks(new_channel, peers):
    with new_channel(capacity=4096) as chan:
        rx = peers("hold", chan.id, "receiver")
        rx.expect("ready")
        with chan.sender() as tx:
            n = fill(tx)
            main = threading.get_native_id()

            def other_thread():
                wait_parked(os.getpid(), main)
                for _ in range(n + 1):  # drains the ring, and then some
                    rx.tell("recv")

            t = threading.Thread(target=other_thread)
            t.start()
            tx.send(numbered(n), timeout=SETTLE)
            t.join()
            for i in range(n + 1):
                assert rx.expect("got") == numbered(i).hex()
        rx.finish()


def interrupt(peer):
    """SIGINT to ``peer`` once it is parked; how long until its
    KeyboardInterrupt was caught (both clocks are CLOCK_MONOTONIC)."""
    wait_parked(peer.pid)
    sent = time.monotonic()
    os.kill(peer.pid, signal.SIGINT)
    caught = float(peer.expect("interrupted"))
    print(f"KeyboardInterrupt {(caught - sent) * 1000:.1f} ms after SIGINT")
    return caught - sent


def test_sigint_interrupts_a_blocked_recv_at_once_and_loses_no_message(new_channel, peers):
    with new_channel(capacity=4096) as chan, chan.sender() as tx:
        rx = peers("recv-sigint", chan.id, 3)
        rx.expect("ready")
        late = interrupt(rx)
        assert 0 <= late < CTRL_C, f"KeyboardInterrupt {late * 1000:.1f} ms after SIGINT"
        for word in (b"one", b"two", b"three"):
            tx.send(word)
        for word in (b"one", b"two", b"three"):
            assert rx.expect("got") == word.hex()
        rx.finish()


def test_sigint_interrupts_a_blocked_send_having_sent_nothing(new_channel, peers):
    with new_channel(capacity=4096) as chan, chan.receiver() as rx:
        tx = peers("send-sigint", chan.id)
        full = int(tx.expect("full"))
        late = interrupt(tx)
        assert 0 <= late < CTRL_C, f"KeyboardInterrupt {late * 1000:.1f} ms after SIGINT"
        # Every message once, in order: the interrupted one is sent again
        # after the interrupt, and only then.
        got = [rx.recv(timeout=SETTLE) for _ in range(full + 1)]
        assert got == [numbered(i) for i in range(full + 1)]
        assert int(tx.expect("sent")) == full + 1
        tx.finish()
        try:
            extra = rx.recv(timeout=SETTLE)
        except shmchan.Disconnected:
            extra = None
        assert extra is None
