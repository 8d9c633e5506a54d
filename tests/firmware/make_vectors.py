"""Write tests/vectors/streams.json, slave.json and payloads.json (run by hand, output committed).

``python -m tests.firmware.make_vectors`` — expected results come from the Python reference
(StreamDecoder, the slave core with firmware_sim's register logic, the command registry); the
cases themselves are chosen here, each with a description saying what it pins. Both test suites
then check their implementation against the committed files, so a change on either side that
alters behaviour shows up as a failing vector, not as a silently regenerated one.

The transaction-tag variant cannot come from the Python reference until ``frames`` has it, so
its cases use :func:`tagged_wire` and only streams whose answer is plain (intact frames among
noise without the start byte, a corrupted CRC) and slave steps the tag-free table pins.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

from frames import FrameFormat, StreamDecoder, encode
from frames.commands import STANDARD
from frames.crc import crc_function

from .vectors import (
    VECTORS,
    chunks_of,
    decode_stream,
    frame_json,
    slave_replies,
    stats_json,
)

log = logging.getLogger(__name__)


def tagged_wire(addr: int, cmd: int, tag: int, data: bytes) -> bytes:
    """A tagged frame: ``AA addr cmd tag len data crc`` (MODBUS over addr..data, little)."""
    body = bytes([addr, cmd, tag, len(data)]) + data
    return b"\xaa" + body + crc_function("modbus")(body).to_bytes(2, "little")


def _stream(
    description: str,
    chunks: list[bytes | None],
    fmt: dict[str, Any] | None = None,
    *,
    lookahead: bool = True,
) -> dict[str, Any]:
    fmt = fmt or {}
    vector: dict[str, Any] = {
        "description": description,
        "format": fmt,
        "lookahead": lookahead,
        "chunks": [None if c is None else c.hex() for c in chunks],
    }
    dec = StreamDecoder(FrameFormat(**fmt), lookahead=lookahead)
    frames = decode_stream(dec, chunks_of(vector), bytewise=True)
    vector["frames"] = [frame_json(f) for f in frames]
    vector["stats"] = stats_json(dec)
    return vector


def _noisy(seed: int, fmt: FrameFormat, n: int) -> list[bytes | None]:
    rnd = random.Random(seed)
    start = bytes([fmt.start])
    out: list[bytes | None] = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.5:
            size = rnd.randint(0, min(20, fmt.max_payload))
            w = bytearray(
                encode(rnd.randint(0, 255), rnd.randint(0, 255), rnd.randbytes(size), fmt)
            )
            if rnd.random() < 0.25:
                w[rnd.randrange(len(w))] ^= 1 << rnd.randrange(8)
            if rnd.random() < 0.1:
                w = w[: rnd.randrange(len(w))]
            out.append(bytes(w))
        elif r < 0.7:
            out.append(start + rnd.randbytes(3))
        elif r < 0.95:
            out.append(rnd.randbytes(rnd.randint(1, 10)).replace(b"\x00", start))
        else:
            out.append(None)
    return out


def streams() -> list[dict[str, Any]]:
    good = encode(1, 3, b"\x00\x00\x02")
    bad = bytearray(encode(2, 3, b"\x00\x00\x02"))
    bad[5] ^= 0x10
    inner = encode(4, 2, b"hi")
    host = bytearray(encode(3, 2, b"\x00" + inner + b"\x00"))
    host[-1] ^= 0x01
    big = encode(247, 2, bytes(range(255)))
    variant = {"start": 0x7E, "crc_byteorder": "big", "crc_covers_start": True, "max_payload": 16}
    vfmt = FrameFormat(**variant)
    out = [
        _stream("two frames back to back", [good + encode(5, 1, b"")]),
        _stream("the same, one byte per chunk", [good[i : i + 1] for i in range(len(good))]),
        _stream("garbage before, between and after", [b"\x01\x02" + good + b"zz" + good + b"q"]),
        _stream(
            "corrupted frames: one byte lost each, the frame hidden in a payload recovered",
            [bytes(bad) + good + bytes(host) + good],
        ),
        _stream("stray start byte with a bogus length: lookahead", [b"\xaa\x01\x02\xf0" + good]),
        _stream(
            "the same without lookahead: the idle gap recovers it",
            [b"\xaa\x01\x02\xf0" + good, None],
            lookahead=False,
        ),
        _stream("truncated frame, idle, then a good one", [good[:-3], None, good]),
        _stream("a frame cut by an idle gap is lost", [good[:4], None, good[4:], good]),
        _stream("a run of start bytes before a frame", [b"\xaa" * 20 + good]),
        _stream("start bytes with lengths running past the end", [b"\xaa\x01\x01\xff" * 3]),
        _stream(
            "valid frame nested in a valid frame, no lookahead: only the outer",
            [encode(3, 2, inner)],
            lookahead=False,
        ),
        {
            **_stream(
                "nested frame, byte at a time: lookahead takes the inner (its known blind spot)",
                [encode(3, 2, inner)],
            ),
            "any_split": False,
        },
        _stream("max payload in odd chunks", [big[:7], big[7:100], big[100:]]),
        _stream("header split after the start byte", [good[:1], good[1:2], good[2:]]),
        _stream(
            "variant: length above max_payload",
            [b"\x7e\x01\x02\x11" + encode(1, 2, b"ab", vfmt)],
            variant,
        ),
        _stream(
            "variant: start 0x7E, CRC big-endian over the start byte",
            [encode(9, 6, b"\x01\x00\x2a\x00", vfmt)],
            variant,
        ),
        _stream(
            "variant: corrupted then intact",
            [encode(9, 6, b"\x01", vfmt)[:-1] + b"\x00" + encode(9, 6, b"\x02", vfmt)],
            variant,
        ),
    ]
    for seed in range(6):
        out.append(_stream(f"noisy stream, seed {seed}", _noisy(seed, FrameFormat(), 40)))
    for seed in range(3):
        out.append(
            _stream(
                f"noisy stream without lookahead, seed {seed}",
                _noisy(seed, FrameFormat(), 40),
                lookahead=False,
            )
        )
    for seed in range(2):
        out.append(_stream(f"variant noisy stream, seed {seed}", _noisy(seed, vfmt, 40), variant))
    out += tagged_streams()
    return out


def tagged_streams() -> list[dict[str, Any]]:
    a = tagged_wire(1, 3, 7, b"\x00\x00\x02")
    b = tagged_wire(2, 0x83, 255, b"\x02")
    c = tagged_wire(0, 6, 0, b"\x01\x00\x2a\x00")
    broken = bytearray(a)
    broken[-1] ^= 0xFF
    frames = [
        {"addr": 1, "cmd": 3, "tag": 7, "data": "000002"},
        {"addr": 2, "cmd": 0x83, "tag": 255, "data": "02"},
        {"addr": 0, "cmd": 6, "tag": 0, "data": "01002a00"},
    ]
    return [
        {
            "description": "tagged: three frames, noise without start bytes between",
            "format": {"tagged": True},
            "lookahead": True,
            "chunks": [(b"\x01" + a + b"\x02\x03" + b).hex(), (c[:5]).hex(), c[5:].hex()],
            "frames": frames,
            "stats": {
                "frames": 3,
                "crc_errors": 0,
                "length_errors": 0,
                "abandoned": 0,
                "discarded_bytes": 3,
            },
        },
        {
            "description": "tagged: a frame with a bad CRC costs its start byte only",
            "format": {"tagged": True},
            "lookahead": True,
            "chunks": [(bytes(broken) + a).hex()],
            "frames": frames[:1],
            "stats": {
                "frames": 1,
                "crc_errors": 1,
                "length_errors": 0,
                "abandoned": 0,
                "discarded_bytes": len(broken),
            },
        },
    ]


REGISTERS = [
    {"address": 0, "type": "i16", "initial": -150},
    {"address": 1, "initial": 450},
    {"address": 2, "type": "i16", "writable": True, "initial": 2200, "min": -500, "max": 3500},
    {"address": 3, "writable": True, "initial": 0, "min": 0, "max": 1},
    {"address": 4, "writable": True, "initial": 7},
    {"address": 5, "writable": True, "initial": 8},
    {"address": 10, "initial": 1000},
    {"address": 65535, "writable": True, "initial": 65535},
]


def _req(addr: int, cmd: int, data: bytes = b"") -> str:
    return encode(addr, cmd, data).hex()


def slave_vectors() -> list[dict[str, Any]]:
    a = 5
    steps: list[tuple[str, str]] = [
        ("identify", _req(a, 1)),
        ("identify with a payload: illegal value", _req(a, 1, b"\x00")),
        ("echo", _req(a, 2, b"ping")),
        ("echo empty", _req(a, 2)),
        ("echo 255 bytes", _req(a, 2, bytes(range(255)))),
        ("read all of 0..5", _req(a, 3, b"\x00\x00\x06")),
        ("read one signed", _req(a, 3, b"\x00\x00\x01")),
        ("read count 0: illegal value", _req(a, 3, b"\x00\x00\x00")),
        ("read count 121: illegal value", _req(a, 3, b"\x00\x00\x79")),
        ("read with 2-byte payload: illegal value", _req(a, 3, b"\x00\x00")),
        ("read across the gap 6..9: illegal register", _req(a, 3, b"\x05\x00\x02")),
        ("read register 10", _req(a, 3, b"\x0a\x00\x01")),
        ("read 65535 and past the end: illegal register", _req(a, 3, b"\xff\xff\x02")),
        ("read 65535", _req(a, 3, b"\xff\xff\x01")),
        ("write_reg setpoint", _req(a, 6, b"\x02\x00\x10\x27"[:2] + (3000).to_bytes(2, "little"))),
        (
            "write_reg negative setpoint within min",
            _req(a, 6, b"\x02\x00" + (-400 & 0xFFFF).to_bytes(2, "little")),
        ),
        (
            "write_reg below min (signed): illegal value",
            _req(a, 6, b"\x02\x00" + (-501 & 0xFFFF).to_bytes(2, "little")),
        ),
        (
            "write_reg above max: illegal value",
            _req(a, 6, b"\x02\x00" + (3501).to_bytes(2, "little")),
        ),
        ("write_reg read-only: illegal register", _req(a, 6, b"\x00\x00\x01\x00")),
        ("write_reg missing: illegal register", _req(a, 6, b"\x07\x00\x01\x00")),
        ("write_reg 3-byte payload: illegal value", _req(a, 6, b"\x03\x00\x01")),
        ("write_reg 65535", _req(a, 6, b"\xff\xff\x34\x12")),
        ("read back", _req(a, 3, b"\x00\x00\x06")),
        ("write_regs 3..5", _req(a, 0x10, b"\x03\x00\x03\x01\x00\x63\x00\x64\x00")),
        (
            "write_regs with 3 out of limits: none written",
            _req(
                a, 0x10, b"\x03\x00\x03\x00\x00\x01\x00\x02\x00"[:3] + b"\x02\x00\x09\x00\x09\x00"
            ),
        ),
        (
            "write_regs into a read-only register: illegal register",
            _req(a, 0x10, b"\x05\x00\x02\x01\x00\x01\x00"),
        ),
        ("read back: unchanged", _req(a, 3, b"\x03\x00\x03")),
        (
            "write_regs count disagrees with payload: illegal value",
            _req(a, 0x10, b"\x03\x00\x02\x01\x00"),
        ),
        ("write_regs count 0", _req(a, 0x10, b"\x03\x00\x00")),
        ("write_regs 2-byte payload: illegal value", _req(a, 0x10, b"\x03\x00")),
        ("unknown command: illegal command", _req(a, 0x42, b"\x01")),
        ("error frame: ignored", _req(a, 0x83, b"\x02")),
        ("other address: ignored", _req(6, 3, b"\x00\x00\x01")),
        ("broadcast write_reg: acted on, not answered", _req(0, 6, b"\x04\x00\x2a\x00")),
        ("broadcast unknown command: not answered", _req(0, 0x42)),
        ("read back the broadcast write", _req(a, 3, b"\x04\x00\x01")),
        ("corrupted request: no reply", _req(a, 2, b"x")[:-2] + "0000"),
        ("two requests in one burst", _req(a, 2, b"1") + _req(a, 2, b"2")),
        ("noise, a stray start byte, then a request", "0102aa0503ff" + _req(a, 2, b"ok")),
        ("partial request, ended by the idle gap", _req(a, 2, b"lost")[:8]),
        ("the next request is served", _req(a, 2, b"next")),
    ]
    vector: dict[str, Any] = {
        "description": "a device at address 5 with a gap in its map and limits",
        "format": {},
        "address": a,
        "identity": {"model": "VEC-1", "firmware": [1, 2, 3], "uid": 0x12345678},
        "registers": REGISTERS,
        "steps": [{"description": d, "request": r} for d, r in steps],
    }
    fmt = FrameFormat()
    for step, (_, reply) in zip(vector["steps"], slave_replies(vector, fmt), strict=True):
        step["reply"] = reply.hex()
    tagged = {
        "description": "tagged: replies echo the request's tag, error replies too",
        "format": {"tagged": True},
        "address": 9,
        "identity": {"model": "T", "firmware": [0, 0, 1], "uid": 1},
        "registers": [{"address": 0, "writable": True, "initial": 5}],
        "steps": [
            {
                "description": "echo, tag 0x42",
                "request": tagged_wire(9, 2, 0x42, b"t").hex(),
                "reply": tagged_wire(9, 2, 0x42, b"t").hex(),
            },
            {
                "description": "read, tag 255",
                "request": tagged_wire(9, 3, 255, b"\x00\x00\x01").hex(),
                "reply": tagged_wire(9, 3, 255, b"\x01\x05\x00").hex(),
            },
            {
                "description": "missing register, tag 0",
                "request": tagged_wire(9, 3, 0, b"\x01\x00\x01").hex(),
                "reply": tagged_wire(9, 0x83, 0, b"\x02").hex(),
            },
            {
                "description": "broadcast: no reply",
                "request": tagged_wire(0, 6, 3, b"\x00\x00\x06\x00").hex(),
                "reply": "",
            },
            {
                "description": "read back the broadcast, tag 1",
                "request": tagged_wire(9, 3, 1, b"\x00\x00\x01").hex(),
                "reply": tagged_wire(9, 3, 1, b"\x01\x06\x00").hex(),
            },
        ],
    }
    return [vector, tagged]


def payload_vectors() -> list[dict[str, Any]]:
    """Standard payloads both ways, and malformed requests (a slave answers code 3)."""
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("read_regs", "request", {"start": 0x1234, "count": 120}),
        ("read_regs", "response", {"count": 2, "values": [1, 0xFFFF]}),
        ("write_reg", "request", {"reg": 2, "value": 0xBEEF}),
        ("write_regs", "request", {"start": 3, "count": 2, "values": [1, 2]}),
        ("write_regs", "response", {"start": 3, "count": 2}),
        (
            "identify",
            "response",
            {"model": "THERMO-1", "firmware": [1, 4, 2], "uid": 0x54480001, "register_count": 6},
        ),
        ("echo", "request", {"data": b"\x00\xaa\xff"}),
    ]
    out: list[dict[str, Any]] = []
    for name, direction, fields in cases:
        cmd = STANDARD.get(name)
        data = cmd.encode_request(fields) if direction == "request" else cmd.encode_response(fields)
        shown = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in fields.items()}
        out.append(
            {
                "command": name,
                "code": cmd.code,
                "direction": direction,
                "fields": shown,
                "hex": data.hex(),
                "valid": True,
            }
        )
    bad = [
        ("identify", "00"),
        ("read_regs", "000000"),
        ("read_regs", "000079"),
        ("read_regs", "0000"),
        ("read_regs", "00000101"),
        ("write_reg", "000001"),
        ("write_reg", "0000010000"),
        ("write_regs", "0000"),
        ("write_regs", "00000201000200ff"),
        ("write_regs", "0000020100"),
    ]
    for name, hexdata in bad:
        out.append(
            {
                "command": name,
                "code": STANDARD.get(name).code,
                "direction": "request",
                "hex": hexdata,
                "valid": False,
            }
        )
    return out


def main() -> None:
    files = {
        "streams.json": {
            "comment": "Byte streams (null = idle gap) and the frames in them; "
            "stats hold for one byte at a time. See tests/firmware/vectors.py.",
            "streams": streams(),
        },
        "slave.json": {
            "comment": "Slave request -> reply steps on one device each "
            "(reply '' = none). See tests/firmware/vectors.py.",
            "devices": slave_vectors(),
        },
        "payloads.json": {
            "comment": "Standard command payloads; valid=false requests get "
            "error code 3 from a slave.",
            "payloads": payload_vectors(),
        },
    }
    for name, data in files.items():
        (VECTORS / name).write_text(json.dumps(data, indent=1) + "\n")
        log.info("wrote %s", VECTORS / name)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
