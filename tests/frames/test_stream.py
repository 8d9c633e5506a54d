"""StreamDecoder: any split, noise, resync after CRC failure, lookahead/flush, bounds, fuzz."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frames import Frame, FrameFormat, FrameValueError, StreamDecoder, encode

FORMATS = [
    FrameFormat(),
    FrameFormat(crc="crc-ccitt-false", crc_byteorder="big", end=0x0D),
    FrameFormat(crc="modbus", crc_byteorder="big", crc_covers_start=True),
]

frames_st = st.lists(
    st.builds(Frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=24)),
    max_size=12,
)


def feed_in_pieces(dec: StreamDecoder, stream: bytes, cuts: list[int]) -> list[Frame]:
    out: list[Frame] = []
    prev = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        out += dec.feed(stream[prev:cut])
        prev = max(prev, cut)
    return out


@given(
    frames=frames_st,
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
    fmt=st.sampled_from(FORMATS),
)
def test_any_split_gives_the_same_frames(
    frames: list[Frame], cuts: list[int], fmt: FrameFormat
) -> None:
    stream = b"".join(encode(f.addr, f.cmd, f.data, fmt) for f in frames)
    assert feed_in_pieces(StreamDecoder(fmt), stream, cuts) == frames


@settings(max_examples=50)
@given(frames=frames_st)
def test_one_byte_at_a_time(frames: list[Frame]) -> None:
    stream = b"".join(encode(*f) for f in frames)
    dec = StreamDecoder()
    out = [f for i in range(len(stream)) for f in dec.feed(stream[i : i + 1])]
    assert out == frames
    assert dec.stats.frames == len(frames) and dec.stats.discarded_bytes == 0


@given(
    frames=frames_st,
    garbage=st.lists(st.binary(min_size=1, max_size=30), max_size=12),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_garbage_between_frames_costs_nothing_else(
    frames: list[Frame], garbage: list[bytes], cuts: list[int]
) -> None:
    parts: list[bytes] = []
    for i, f in enumerate(frames):
        parts.append(garbage[i] if i < len(garbage) else b"")
        parts.append(encode(*f))
    stream = b"".join(parts)
    dec = StreamDecoder()
    got = feed_in_pieces(dec, stream, cuts) + dec.flush()
    # Garbage may by chance contain a valid frame; every real one must come out, in order.
    it = iter(got)
    assert all(any(g == f for g in it) for f in frames)


def test_resumes_one_byte_after_a_failed_start() -> None:
    good = encode(1, 3, b"\x00\x00\x02")
    bad = bytearray(encode(2, 3, b"\x00\x00\x02"))
    bad[5] ^= 0x10
    # The corrupted frame's payload hides a complete intact frame: it must be recovered.
    inner = encode(4, 2, b"hi")
    host = bytearray(encode(3, 2, b"\x00" + inner + b"\x00"))
    host[-1] ^= 0x01
    dec = StreamDecoder()
    out = dec.feed(bytes(bad) + good + bytes(host) + good)
    assert out == [Frame(1, 3, b"\x00\x00\x02"), Frame(4, 2, b"hi"), Frame(1, 3, b"\x00\x00\x02")]
    assert dec.stats.crc_errors >= 2


def test_stray_start_with_bogus_length_does_not_hide_a_frame() -> None:
    good = encode(1, 3, b"\x00\x00\x02")
    dec = StreamDecoder()
    assert dec.feed(b"\xaa\x01\x02\xf0" + good) == [Frame(1, 3, b"\x00\x00\x02")]
    assert dec.stats.abandoned == 1
    assert dec.pending == 0


def test_without_lookahead_flush_on_idle_recovers_the_frame() -> None:
    good = encode(1, 3, b"\x00\x00\x02")
    dec = StreamDecoder(lookahead=False)
    assert dec.feed(b"\xaa\x01\x02\xf0" + good) == []  # waits for 0xf0 bytes that never come
    assert dec.flush() == [Frame(1, 3, b"\x00\x00\x02")]  # the line went idle
    assert dec.pending == 0


def test_flush_drops_a_partial_frame_and_keeps_counting() -> None:
    dec = StreamDecoder()
    assert dec.feed(encode(1, 1, b"abc")[:-2]) == []
    assert dec.flush() == []
    assert dec.pending == 0
    assert dec.feed(encode(1, 1, b"abc")) == [Frame(1, 1, b"abc")]


def test_buffer_is_bounded() -> None:
    fmt = FrameFormat()
    dec = StreamDecoder(fmt, max_buffer=fmt.layout.max_size)
    dec.feed(b"\xaa\x01\x02\xff" + b"\x00" * 100)  # waits for a 255-byte frame
    dec.feed(b"\x00" * 10_000)
    assert dec.pending <= fmt.layout.max_size
    with pytest.raises(FrameValueError):
        StreamDecoder(fmt, max_buffer=10)


def test_noisy_stream_recovers_every_intact_frame() -> None:
    rnd = random.Random(42)
    parts, intact = [], []
    for _ in range(5000):
        f = Frame(rnd.randint(1, 247), 3, rnd.randbytes(8))
        wire = bytearray(encode(*f))
        if rnd.random() < 0.02:
            wire[rnd.randrange(len(wire))] ^= 1 << rnd.randrange(8)
        else:
            intact.append(f)
        parts.append(bytes(wire))
        if rnd.random() < 0.02:
            parts.append(rnd.randbytes(rnd.randint(1, 30)))
    stream = b"".join(parts)
    dec = StreamDecoder()
    got = [f for i in range(0, len(stream), 64) for f in dec.feed(stream[i : i + 64])] + dec.flush()
    it = iter(got)
    assert all(any(g == f for g in it) for f in intact)
    assert dec.stats.crc_errors > 0


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=20), st.sampled_from(FORMATS))
def test_fuzz_never_raises(chunks: list[bytes], fmt: FrameFormat) -> None:
    dec = StreamDecoder(fmt, max_buffer=fmt.layout.max_size)
    for chunk in chunks:
        for frame in dec.feed(chunk):
            assert isinstance(frame, Frame)
    dec.flush()
    assert dec.pending <= fmt.layout.max_size


def test_bad_end_byte_and_bad_crc_are_counted_apart() -> None:
    fmt = FrameFormat(end=0x0D)
    good = encode(1, 2, b"ok", fmt)
    bad_end = good[:-1] + b"\x0e"
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x01
    dec = StreamDecoder(fmt)
    assert dec.feed(bad_end + bytes(bad_crc) + good) == [Frame(1, 2, b"ok")]
    assert (dec.stats.end_errors, dec.stats.crc_errors) == (1, 1)
