"""A peer process for the tests: ``python peer.py ROLE SHMID [ARGS]``.

It opens the channel by id, takes a side and plays its role, telling the
test what it does through stdout lines (or len32 records, for
``recv-dump``). Run by ``conftest.Peer``.
"""

import signal
import sys
import time

import seqmsg
from helpers import LEN32, fill, numbered, read_records
import shmchan

SETTLE = 30.0


def say(*words):
    print(*words, flush=True)


def send_seq(chan, index, count):
    """Sends messages 0..count-1 of sender ``index`` (seqmsg), one call
    each; says its id first."""
    with chan.sender() as tx:
        say("id", tx.id)
        for seq in range(int(count)):
            tx.send(seqmsg.make(int(index), seq))
    say("done")


def send_async_seq(chan, index, count):
    """``send_seq`` with ``send_async`` on an asyncio loop."""
    import asyncio

    async def run(tx):
        for seq in range(int(count)):
            await tx.send_async(seqmsg.make(int(index), seq))

    with chan.sender() as tx:
        say("id", tx.id)
        asyncio.run(run(tx))
    say("done")


def send_later(chan, delay):
    """Takes the sender, says "ready", sends one message ``b"late"`` after
    ``delay`` seconds, then leaves."""
    with chan.sender() as tx:
        say("ready")
        time.sleep(float(delay))
        tx.send(b"late")
    say("done")


def recv_dump(chan):
    """Receives until the sender is gone; writes each message to stdout as
    a len32 record."""
    out = sys.stdout.buffer
    with chan.receiver() as rx:
        for msg in rx:
            out.write(LEN32.pack(len(msg)) + msg)
    out.flush()


def send_records(chan):
    """Sends each len32 record of stdin as a message, then leaves."""
    with chan.sender() as tx:
        for msg in read_records(sys.stdin.buffer):
            tx.send(msg)


def hold(chan, side):
    """Takes ``side`` and says "ready"; then obeys stdin lines: "send HEX"
    sends, "recv" receives and says "got HEX"; leaves at the end of stdin.
    """
    handle = chan.sender() if side == "sender" else chan.receiver()
    say("ready")
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "send":
            handle.send(bytes.fromhex(arg))
            say("sent")
        elif cmd == "recv":
            say("got", handle.recv(timeout=SETTLE).hex())
    handle.close()


def recv_sigint(chan, then):
    """Blocks in recv on an empty channel until SIGINT; says when the
    KeyboardInterrupt came, then receives ``then`` messages."""
    with chan.receiver() as rx:
        say("ready")
        try:
            msg = rx.recv()
            say("received", msg.hex())  # the test fails on this line
        except KeyboardInterrupt:
            say("interrupted", repr(time.monotonic()))
        for _ in range(int(then)):
            say("got", rx.recv(timeout=SETTLE).hex())


def send_sigint(chan):
    """Fills the ring, blocks in send until SIGINT, says when the
    KeyboardInterrupt came, then sends the same message again (waiting for
    room) and leaves."""
    with chan.sender() as tx:
        n = fill(tx)
        say("full", n)
        try:
            tx.send(numbered(n))
            say("sent-early")  # the test fails on this line
        except KeyboardInterrupt:
            say("interrupted", repr(time.monotonic()))
        tx.send(numbered(n), timeout=SETTLE)
        say("sent", n + 1)


ROLES = {
    "send-seq": send_seq,
    "recv-dump": recv_dump,
    "send-records": send_records,
    "hold": hold,
    "send-async-seq": send_async_seq,
    "send-later": send_later,
    "recv-sigint": recv_sigint,
    "send-sigint": send_sigint,
}


def main():
    # Ctrl-C raises KeyboardInterrupt even where the test runner was
    # started with SIGINT ignored (a background job of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    role, shmid, *args = sys.argv[1:]
    with shmchan.Channel.open_id(int(shmid)) as chan:
        ROLES[role](chan, *args)


if __name__ == "__main__":
    main()
