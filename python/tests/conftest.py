"""Fixtures: channels that are checked (and, failing that, removed) at the
end of every test, and peer processes that never outlive their test.

Peers are separate Python processes running ``peer.py`` (beside this
file) with a role; they talk back through stdout lines.
"""

import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import shmchan

HERE = Path(__file__).resolve().parent
PEER = HERE / "peer.py"
# Generous limit for another process to reach a state: not a timing bound.
SETTLE = 30.0


def sysv_ids(kind):
    """The ids of the System V segments (``"shm"``) or semaphore sets
    (``"sem"``) that exist now, as /proc/sysvipc lists them."""
    with open(f"/proc/sysvipc/{kind}") as f:
        lines = f.read().splitlines()[1:]
    return {int(line.split()[1]) for line in lines if line.strip()}


def remove_leftovers(channels):
    """Of ``channels`` ((shmid, semid) pairs), those whose segment or
    semaphore set still exists; removes them, whatever they hold."""
    shm, sem = sysv_ids("shm"), sysv_ids("sem")
    left = [(m, s) for m, s in channels if m in shm or s in sem]
    for m, s in left:
        for flag, ident in (("-m", m), ("-s", s)):
            subprocess.run(["ipcrm", flag, str(ident)], capture_output=True, check=False)
    return left


# semtimedop(2)'s number, as /proc/PID/syscall shows it, per machine.
SEMTIMEDOP = {"x86_64": 220, "aarch64": 192}.get(platform.machine())


def parked(pid, tid=None):
    """Whether process ``pid`` (thread ``tid`` of it) is inside
    semtimedop(2) now: parked on a channel's semaphore. On a machine whose
    syscall number this does not know, whether it sleeps at all."""
    base = f"/proc/{pid}" if tid is None else f"/proc/{pid}/task/{tid}"
    try:
        with open(f"{base}/syscall") as f:
            call = f.read().split()
        with open(f"{base}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if SEMTIMEDOP is None:
        return state == "S"
    return bool(call) and call[0] == str(SEMTIMEDOP)


def wait_parked(pid, tid=None, timeout=SETTLE):
    """Waits until ``parked(pid, tid)``; fails the test after ``timeout``."""
    end = time.monotonic() + timeout
    while not parked(pid, tid):
        if time.monotonic() > end:
            pytest.fail(f"process {pid} never parked on a semaphore")
        time.sleep(0.001)


# Every channel made through the fixtures in this run: (shmid, semid).
MADE = []


@pytest.fixture(scope="session", autouse=True)
def no_object_left():
    """Test 8: after the whole run, none of the channels the tests made is
    left (each test also checks its own, below)."""
    yield
    left = remove_leftovers(MADE)
    assert not left, f"System V objects left behind (now removed): {left}"


@pytest.fixture
def new_channel():
    """``new_channel(**create_args)``: ``Channel.create`` whose segment and
    semaphore set must be gone when the test ends, once every handle is
    closed (the last party out removes them). A channel left behind is
    removed and fails the test."""
    made = []

    def make(key=None, **kwargs):
        chan = shmchan.Channel.create(key, **kwargs)
        made.append((chan.id, chan.sem_id))
        MADE.append((chan.id, chan.sem_id))
        return chan

    yield make
    left = remove_leftovers(made)
    assert not left, f"channels left behind by the test (now removed): {left}"


@pytest.fixture
def temp_key(tmp_path):
    """A key from ftok on a fresh file: unique to this test."""
    path = tmp_path / "key"
    path.touch()
    return shmchan.Key.ftok(path, 0x50)


class Peer:
    """A ``peer.py`` process: lines from its stdout, lines to its stdin."""

    def __init__(self, role, *args, stdin_bytes=None, binary_out=False):
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), role, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.binary_out = binary_out
        self._lines = queue.Queue()
        if stdin_bytes is not None:
            threading.Thread(target=self._feed, args=(stdin_bytes,), daemon=True).start()
        if not binary_out:
            threading.Thread(target=self._read, daemon=True).start()

    def _feed(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # it exited early: the test checks its status

    def _read(self):
        for raw in self.proc.stdout:
            self._lines.put(raw.decode().rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout=SETTLE):
        """The next line it printed (fails the test if none comes)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"peer {self.pid} printed nothing for {timeout} s")
        if line is None:
            self.proc.wait(timeout=SETTLE)
            err = self.proc.stderr.read().decode()
            pytest.fail(f"peer {self.pid} exited ({self.proc.returncode}): {err}")
        return line

    def expect(self, prefix):
        """The next line, which must start with ``prefix``; its rest."""
        line = self.line()
        assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
        return line[len(prefix):].strip()

    def tell(self, line):
        """Writes a line to its stdin."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout=SETTLE):
        """Closes its stdin, waits for its exit; its stdout (if binary) and
        stderr. Fails the test unless it exited 0."""
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        out = self.proc.stdout.read() if self.binary_out else b""
        self.proc.wait(timeout=timeout)
        err = self.proc.stderr.read().decode()
        assert self.proc.returncode == 0, f"peer exited {self.proc.returncode}: {err}"
        return out

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)


@pytest.fixture
def peers():
    """``peers(role, *args, ...)`` starts a ``Peer``; any still running
    when the test ends is killed and reaped."""
    started = []

    def start(role, *args, **kwargs):
        p = Peer(role, *args, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()
        p.proc.wait()
        for stream in (p.proc.stdin, p.proc.stdout, p.proc.stderr):
            try:
                stream.close()
            except (BrokenPipeError, OSError):
                pass
