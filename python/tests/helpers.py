"""What the tests and their peer processes share: len32 records (a 4-byte
little-endian length, then the bytes; the ``shmchan`` command's
``--framing len32``) and numbered messages that fill a ring."""

import struct

import shmchan

LEN32 = struct.Struct("<I")


def records(msgs):
    """``msgs`` as len32 records."""
    return b"".join(LEN32.pack(len(m)) + m for m in msgs)


def parse_records(data):
    """The messages of len32 records."""
    out, at = [], 0
    while at < len(data):
        (n,) = LEN32.unpack_from(data, at)
        out.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return out


def read_records(stream):
    """The messages of len32 records read from a binary stream."""
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        (n,) = LEN32.unpack(head)
        yield stream.read(n)


def numbered(n):
    """Message ``n`` of a run that fills a ring: 64 bytes."""
    return LEN32.pack(n) * 16


def fill(tx):
    """Sends ``numbered`` messages 0, 1, ... until the ring is full; how
    many it sent."""
    n = 0
    while True:
        try:
            tx.try_send(numbered(n))
        except shmchan.Full:
            return n
        n += 1
