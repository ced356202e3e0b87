"""Numbered messages whose every byte can be checked: a header (the
sender's index, the sequence number, a CRC-32 of the body) and a body of
a length and content that follow from the number, so that a lost, torn,
reordered or duplicated message is seen."""

import struct
import zlib

HEADER = struct.Struct("<IQI")
# Bodies are slices of this pattern: 0 to 250 bytes.
PATTERN = bytes((i * 131 + 7) & 0xFF for i in range(4096 + 256))


def body(index, seq):
    """The body of message ``seq`` of sender ``index``."""
    start = (seq * 31 + index * 7) % 4096
    return PATTERN[start : start + (seq * 2654435761 + index) % 251]


def make(index, seq):
    """Message ``seq`` of sender ``index``."""
    b = body(index, seq)
    return HEADER.pack(index, seq, zlib.crc32(b)) + b


def check(msg, index, seq):
    """Fails unless ``msg`` is message ``seq`` of sender ``index``, whole."""
    got_index, got_seq, crc = HEADER.unpack_from(msg)
    assert (got_index, got_seq) == (index, seq), (
        f"expected message {seq} of sender {index}, got {got_seq} of {got_index}"
    )
    b = memoryview(msg)[HEADER.size :]
    assert zlib.crc32(b) == crc, f"message {seq} of sender {index} is torn (checksum)"
    assert b == body(index, seq), f"message {seq} of sender {index} has the wrong body"
