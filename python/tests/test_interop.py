"""Test 2: one channel between Python and the ``shmchan`` command (the
Rust library's own CLI), each way.

The command is found through ``SHMCHAN_BIN`` (``.ci/run`` builds it and
sets it), else in the repository's target/ folder; where neither has it,
the tests are skipped with the reason.
"""

import os
import random
import subprocess
import threading
from pathlib import Path

import pytest

import shmchan
from helpers import parse_records, records


REPO = Path(__file__).resolve().parents[2]
MESSAGES = 20_000
# Generous limit for the other side to act: not a timing bound.
SETTLE = 60


def cli():
    """The ``shmchan`` command's path."""
    named = os.environ.get("SHMCHAN_BIN")
    if named:
        assert Path(named).is_file(), f"SHMCHAN_BIN={named} is not a file"
        return named
    found = [REPO / "target" / p / "shmchan" for p in ("debug", "release")]
    found = [p for p in found if p.is_file()]
    if not found:
        pytest.skip("no shmchan command: set SHMCHAN_BIN or cargo build --bin shmchan")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def messages(seed, max_len):
    """Random binary messages, empty and longest included."""
    rng = random.Random(seed)
    out = [b"", b"\n", bytes(range(256)), bytes(max_len)]
    while len(out) < MESSAGES:
        out.append(rng.randbytes(rng.choice((1, 7, 8, 9, 64, 300, 4000))))
    return out


def receive_all(rx):
    """Every message until the sender is gone (failing, not hanging, if
    none comes for SETTLE seconds)."""
    got = []
    while True:
        try:
            got.append(rx.recv(timeout=SETTLE))
        except shmchan.Disconnected:
            return got


def test_a_python_sender_and_the_shmchan_command_as_receiver(new_channel, tmp_path):
    out = tmp_path / "received"
    with new_channel(capacity=64 * 1024) as chan:
        msgs = messages(1, chan.max_message_len)
        recv = subprocess.Popen(
            [cli(), "recv", f"id:{chan.id}", "--framing", "len32", "--output", str(out)],
            stderr=subprocess.PIPE,
        )
        with chan.sender() as tx:
            for m in msgs:
                tx.send(m, timeout=SETTLE)
        # The command exits at Disconnected, having written everything.
        err = recv.communicate(timeout=SETTLE)[1]
    assert recv.returncode == 0, err.decode()
    assert parse_records(out.read_bytes()) == msgs


def test_the_shmchan_command_as_sender_and_a_python_receiver(new_channel):
    with new_channel(capacity=64 * 1024) as chan, chan.receiver() as rx:
        msgs = messages(2, chan.max_message_len)
        send = subprocess.Popen(
            [cli(), "send", f"id:{chan.id}", "--framing", "len32"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Fed by another thread while this one receives.
        result = {}

        def feed():
            result["err"] = send.communicate(records(msgs), timeout=SETTLE)[1]

        feeder = threading.Thread(target=feed)
        feeder.start()
        got = receive_all(rx)  # until the command is gone
        feeder.join()
    assert send.returncode == 0, result.get("err")
    assert got == msgs

