"""The vector tables shared with the C firmware (tests/vectors/), run against the Python side.

firmware/ runs the same files (``make -C firmware test``); see tests/firmware/vectors.py for what
each table means.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from frames import StreamDecoder, decode, encode
from frames.commands import STANDARD, ErrorCode
from frames.slave import Slave
from tests.firmware.vectors import (
    chunks_of,
    decode_stream,
    frame_format,
    frame_json,
    load,
    slave_replies,
    stats_json,
)

STREAMS = load("streams.json")["streams"]
DEVICES = load("slave.json")["devices"]
PAYLOADS = load("payloads.json")["payloads"]


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["description"] for v in vectors]


def _frames(vector: dict[str, Any]) -> list[dict[str, Any]]:
    """Expected frames without the tag field (the tag-free Frame has none)."""
    return [{k: v for k, v in f.items() if k != "tag"} for f in vector["frames"]]


@pytest.mark.parametrize("vector", STREAMS, ids=_ids(STREAMS))
def test_stream_one_byte_at_a_time(vector: dict[str, Any]) -> None:
    fmt = frame_format(vector["format"])
    dec = StreamDecoder(fmt, lookahead=vector["lookahead"])
    got = decode_stream(dec, chunks_of(vector), bytewise=True)
    assert [frame_json(f) for f in got] == _frames(vector)
    assert stats_json(dec) == vector["stats"]


# some vectors pin the one-byte-at-a-time result only (larger chunks may count a bad candidate
# as a CRC error instead of "abandoned"; the frames never differ)
ANY_SPLIT = [v for v in STREAMS if v.get("any_split", True)]


@pytest.mark.parametrize("vector", ANY_SPLIT, ids=_ids(ANY_SPLIT))
def test_stream_in_any_split(vector: dict[str, Any]) -> None:
    fmt = frame_format(vector["format"])
    rnd = random.Random(vector["description"])
    for _ in range(5):
        pieces: list[bytes | None] = []
        for chunk in chunks_of(vector):
            if chunk is None:
                pieces.append(None)
                continue
            cuts = sorted(rnd.randrange(len(chunk) + 1) for _ in range(rnd.randint(0, 4)))
            pieces += [chunk[a:b] for a, b in zip([0, *cuts], [*cuts, len(chunk)], strict=True)]
        dec = StreamDecoder(fmt, lookahead=vector["lookahead"])
        assert [frame_json(f) for f in decode_stream(dec, pieces)] == _frames(vector)


def test_the_stream_table_covers_every_counter() -> None:
    totals = {k: sum(v["stats"][k] for v in STREAMS) for k in STREAMS[0]["stats"]}
    assert all(n > 0 for n in totals.values()), totals
    assert any(not v["lookahead"] for v in STREAMS) and any(None in v["chunks"] for v in STREAMS)


@pytest.mark.parametrize("vector", DEVICES, ids=_ids(DEVICES))
def test_slave_request_reply_pairs(vector: dict[str, Any]) -> None:
    fmt = frame_format(vector["format"])
    for (description, got), step in zip(slave_replies(vector, fmt), vector["steps"], strict=True):
        assert got.hex() == step["reply"], description


def test_slave_table_has_every_error_code_it_can_produce() -> None:
    codes = set()
    for step in DEVICES[0]["steps"]:
        for frame in StreamDecoder().feed(bytes.fromhex(step["reply"])):
            if frame.is_error:
                codes.add(frame.data[0])
    assert codes == {ErrorCode.ILLEGAL_COMMAND, ErrorCode.ILLEGAL_REGISTER, ErrorCode.ILLEGAL_VALUE}


@pytest.mark.parametrize("vector", [p for p in PAYLOADS if p["valid"]], ids=lambda p: p["hex"])
def test_payload_encodes_and_decodes(vector: dict[str, Any]) -> None:
    cmd = STANDARD.get(vector["command"])
    assert cmd.code == vector["code"]
    fields = {k: bytes.fromhex(v) if k == "data" else v for k, v in vector["fields"].items()}
    data = bytes.fromhex(vector["hex"])
    if vector["direction"] == "request":
        assert cmd.encode_request(fields) == data
        assert cmd.decode_request(data) == fields
    else:
        assert cmd.encode_response(fields) == data
        assert cmd.decode_response(data) == fields


@pytest.mark.parametrize("vector", [p for p in PAYLOADS if not p["valid"]], ids=lambda p: p["hex"])
def test_malformed_request_gets_illegal_value(vector: dict[str, Any]) -> None:
    slave = Slave(1)
    slave.add_handler(vector["code"], lambda req: b"")  # reached only if the payload parses
    reply = slave.receive_data(encode(1, vector["code"], bytes.fromhex(vector["hex"])), 0.0)
    assert decode(reply).data == bytes([ErrorCode.ILLEGAL_VALUE])
