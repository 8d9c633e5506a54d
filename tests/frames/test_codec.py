"""Codec: vectors, construct agreement, round trips, every corruption detected, fuzz."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frames import (
    BadEnd,
    BadLength,
    BadStart,
    CrcMismatch,
    Frame,
    FrameError,
    FrameFormat,
    FrameValueError,
    TrailingBytes,
    Truncated,
    UnknownCommand,
    decode,
    encode,
    encode_frame,
)
from frames.commands import STANDARD
from frames.crc import crc_function
from frames.format import build_with_construct
from frames.frame import TaggedFrame

VECTORS = Path(__file__).parent.parent / "vectors"
FRAME_VECTORS = json.loads((VECTORS / "frames.json").read_text())["vectors"]
CRC_VECTORS = json.loads((VECTORS / "crc.json").read_text())["check"]

FORMATS = [
    FrameFormat(),
    FrameFormat(crc="crc-ccitt-false", crc_byteorder="big"),
    FrameFormat(crc="xmodem", crc_byteorder="big", crc_covers_start=True, end=0x55),
    FrameFormat(start=0x7E, max_payload=64),
    FrameFormat(crc="modbus", crc_byteorder="big"),  # no constant residue: the slow CRC path
]


@pytest.mark.parametrize("vec", CRC_VECTORS, ids=lambda v: v["name"])
def test_crc_catalogue_check_values(vec: dict[str, Any]) -> None:
    assert crc_function(vec["name"])(b"123456789") == vec["check"]


def test_docs_example_is_a_valid_read_regs_request() -> None:
    """The README's and protocol.md's example: READ_REGS (cmd 3) to addr 1, start 0, count 2 (the
    old example carried a 4-byte payload, which READ_REGS refuses)."""
    wire = encode(1, "read_regs", bytes.fromhex("000002"))
    assert wire.hex() == "aa010303000002c44f"
    frame = decode(wire)
    assert STANDARD.get(frame.cmd).decode_request(frame.data) == {"start": 0, "count": 2}


def test_encode_takes_command_names() -> None:
    assert encode(1, "read_regs", b"\x00\x00\x02") == encode(1, 3, b"\x00\x00\x02")
    with pytest.raises(UnknownCommand):
        encode(1, "no_such_command")


def test_tagged_frames() -> None:
    fmt = FrameFormat(tagged=True)
    wire = encode(1, 3, b"\x00\x00\x02", fmt, tag=7)
    assert wire[3] == 7 and len(wire) == len(encode(1, 3, b"\x00\x00\x02")) + 1
    frame = decode(wire, fmt)
    assert frame == TaggedFrame(1, 3, b"\x00\x00\x02", 7) and frame.tag == 7
    assert frame != Frame(1, 3, b"\x00\x00\x02")  # a tagged frame is never an untagged one
    assert Frame(1, 3).tag is None
    assert encode_frame(frame, fmt) == wire
    bad = bytearray(wire)
    bad[3] ^= 1  # the CRC covers the tag
    with pytest.raises(CrcMismatch):
        decode(bytes(bad), fmt)
    with pytest.raises(FrameValueError, match="no tag"):
        encode(1, 3, b"", tag=1)
    with pytest.raises(FrameValueError, match="tag 256"):
        encode(1, 3, b"", fmt, tag=256)
    assert "tag" in fmt.describe() and fmt.layout.tag_offset == 3


@pytest.mark.parametrize("vec", FRAME_VECTORS, ids=lambda v: v["description"])
def test_vectors(vec: dict[str, Any]) -> None:
    fmt = FrameFormat(**vec["format"])
    wire = bytes.fromhex(vec["wire"])
    data = bytes.fromhex(vec["data"])
    tag = vec.get("tag")
    assert encode(vec["addr"], vec["cmd"], data, fmt, tag=tag) == wire
    want = Frame(vec["addr"], vec["cmd"], data)
    assert decode(wire, fmt) == (want if tag is None else TaggedFrame(*want, tag))
    assert build_with_construct(fmt, vec["addr"], vec["cmd"], data, tag or 0) == wire


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.describe())
def test_fast_paths_agree_with_construct(fmt: FrameFormat) -> None:
    rnd = random.Random(7)
    for _ in range(300):
        addr, cmd = rnd.randrange(256), rnd.randrange(256)
        data = rnd.randbytes(rnd.randint(0, fmt.max_payload))
        wire = encode(addr, cmd, data, fmt)
        assert wire == build_with_construct(fmt, addr, cmd, data)
        parsed = fmt.struct.parse(wire)
        assert (parsed.covered.value.addr, parsed.covered.value.cmd) == (addr, cmd)
        assert parsed.covered.value.data == data
        assert decode(wire, fmt) == Frame(addr, cmd, data)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.describe())
def test_construct_rejects_what_decode_rejects(fmt: FrameFormat) -> None:
    wire = bytearray(encode(1, 3, b"\x01\x02", fmt))
    wire[-1 if fmt.end is None else -2] ^= 0x01
    with pytest.raises(FrameError):
        decode(bytes(wire), fmt)
    with pytest.raises(Exception, match=r"(?i)checksum|wrong"):
        fmt.struct.parse(bytes(wire))


@given(
    addr=st.integers(0, 255),
    cmd=st.integers(0, 255),
    data=st.binary(max_size=255),
    fmt=st.sampled_from(FORMATS),
)
def test_round_trip(addr: int, cmd: int, data: bytes, fmt: FrameFormat) -> None:
    if len(data) > fmt.max_payload:
        with pytest.raises(FrameValueError):
            encode(addr, cmd, data, fmt)
        return
    assert decode(encode(addr, cmd, data, fmt), fmt) == Frame(addr, cmd, data)


@settings(max_examples=60)
@given(data=st.binary(max_size=40), fmt=st.sampled_from(FORMATS))
def test_every_single_byte_corruption_is_detected(data: bytes, fmt: FrameFormat) -> None:
    data = data[: fmt.max_payload]
    wire = encode(9, 2, data, fmt)
    for pos in range(len(wire)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(wire)
            bad[pos] ^= flip
            with pytest.raises(FrameError):
                decode(bytes(bad), fmt)


def test_typed_errors() -> None:
    good = encode(1, 3, b"\x00\x00\x04")
    with pytest.raises(Truncated):
        decode(b"")
    with pytest.raises(BadStart):
        decode(b"\x55" + good[1:])
    with pytest.raises(Truncated):
        decode(good[:-1])
    with pytest.raises(TrailingBytes):
        decode(good + b"\x00")
    with pytest.raises(CrcMismatch):
        decode(good[:-1] + bytes([good[-1] ^ 1]))
    small = FrameFormat(max_payload=4)
    with pytest.raises(BadLength):
        decode(encode(1, 2, b"12345"), small)
    ended = FrameFormat(end=0x55)
    wire = encode(1, 2, b"", ended)
    with pytest.raises(BadEnd):
        decode(wire[:-1] + b"\x56", ended)
    assert issubclass(FrameError, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [{"start": 256}, {"end": -1}, {"max_payload": 256}, {"crc": "no-such-crc"}],
)
def test_bad_format_is_a_typed_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(FrameValueError):
        FrameFormat(**kwargs)


@pytest.mark.parametrize("args", [(256, 1, b""), (1, -1, b""), (1, 1, bytes(256))])
def test_encode_rejects_impossible_frames(args: tuple[int, int, bytes]) -> None:
    with pytest.raises(FrameValueError):
        encode(*args)


@settings(max_examples=500)
@given(st.binary(max_size=300), st.sampled_from(FORMATS))
def test_fuzz_decode_raises_only_frame_errors(blob: bytes, fmt: FrameFormat) -> None:
    try:
        frame = decode(blob, fmt)
    except FrameError:
        return
    assert encode(frame.addr, frame.cmd, frame.data, fmt) == blob


def test_frame_value_type() -> None:
    err = Frame(3, 0x83, b"\x02")
    assert err.is_error and err.error_code == 2 and err.base_cmd == 3
    ok = Frame(0, 6, b"\x01\x00")
    assert ok.is_broadcast and not ok.is_error and ok.error_code is None
    long = str(Frame(1, 2, bytes(100)))
    assert "+84 bytes" in long and len(long) < 120
    assert hash(Frame(1, 2, b"x")) == hash(Frame(1, 2, b"x"))
    with pytest.raises(AttributeError):
        ok.addr = 5  # type: ignore[misc]
