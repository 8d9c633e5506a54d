"""Traffic for the capture tests: good frames of every standard command, bad bytes between."""

from __future__ import annotations

import random

from frames.capture import Record
from frames.codec import encode
from frames.frame import Frame

IDENTIFY_REPLY = (
    bytes([5]) + b"TH-01" + bytes([1, 2, 3]) + (1234567).to_bytes(4, "little") + b"\x08\x00"
)

GOOD = [
    Frame(1, 3, b"\x00\x00\x02"),
    Frame(1, 3, b"\x02\x10\x00\x20\x00"),
    Frame(1, 1, b""),
    Frame(1, 1, IDENTIFY_REPLY),
    Frame(2, 2, b"hello"),
    Frame(2, 2, b""),
    Frame(3, 0x83, b"\x02"),
    Frame(3, 0x86, b""),
    Frame(4, 0x55, b"\x01"),
    Frame(1, 6, b"\x01\x00\x05\x00"),
    Frame(1, 0x10, b"\x00\x00\x02\x01\x00\x02\x00"),
    Frame(1, 0x10, b"\x00\x00\x02"),
]


def corrupted(frame: Frame) -> bytes:
    wire = bytearray(encode(*frame))
    wire[-1] ^= 0x01
    return bytes(wire)


def noisy_stream(seed: int = 1) -> tuple[bytes, list[tuple[bytes, str]]]:
    """Bytes of GOOD frames with garbage and corrupted frames between; and the expected
    (wire, status) pieces in order."""
    rng = random.Random(seed)
    out = bytearray()
    expected: list[tuple[bytes, str]] = []
    for frame in GOOD:
        roll = rng.random()
        if roll < 0.3:
            junk = bytes(rng.choice([0x01, 0x02, 0x7F, 0xFE]) for _ in range(rng.randint(1, 5)))
            out += junk
            expected.append((junk, "garbage"))
        elif roll < 0.5:
            bad = corrupted(frame)
            out += bad
            expected.append((bad, "crc_error"))
        wire = encode(*frame)
        out += wire
        expected.append((wire, "ok"))
    return bytes(out), expected


def records_of(frames: list[Frame], t0: float = 1_700_000_000.0) -> list[Record]:
    """Alternating request/reply records a millisecond apart (direction known)."""
    return [
        Record(t0 + i / 1000, encode(*f), "ok", "tx" if i % 2 == 0 else "rx", f)
        for i, f in enumerate(frames)
    ]
