"""The C parser and encoder against the Python side.

* fb-parse (the C parser fed one byte at a time) and StreamDecoder on the same noisy streams:
  the same frames and the same counters.
* fb-master (C encoder + C parser) against the Python slave (firmware_sim on a pty), including
  split and corrupted requests and replies mixed with junk and written in pieces.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.faults import FaultConfig
from firmware_sim.threaded import ThreadedSimulatedBus
from frames import Frame, StreamDecoder, encode

from .vectors import frame_json, stats_json

pytestmark = pytest.mark.timeout(60)


def noisy_stream(seed: int) -> bytes:
    rnd = random.Random(seed)
    parts = []
    for _ in range(300):
        r = rnd.random()
        if r < 0.5:
            wire = bytearray(
                encode(rnd.randint(0, 255), rnd.randint(0, 255), rnd.randbytes(rnd.randint(0, 40)))
            )
            if rnd.random() < 0.2:
                wire[rnd.randrange(len(wire))] ^= 1 << rnd.randrange(8)
            if rnd.random() < 0.1:
                wire = wire[: rnd.randrange(len(wire))]
            parts.append(bytes(wire))
        elif r < 0.7:
            parts.append(b"\xaa" + rnd.randbytes(3))
        else:
            parts.append(rnd.randbytes(rnd.randint(1, 12)).replace(b"\x00", b"\xaa"))
    return b"".join(parts)


def c_parse(firmware: Path, stream: bytes) -> tuple[list[dict[str, Any]], dict[str, int]]:
    done = subprocess.run(
        [str(firmware / "fb-parse")], input=stream, capture_output=True, timeout=20, check=True
    )
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    frames = [{k: v for k, v in f.items() if k != "tag"} for f in lines[:-1]]
    return frames, lines[-1]["stats"]


@pytest.mark.parametrize("seed", range(8))
def test_c_parser_equals_stream_decoder(firmware: Path, seed: int) -> None:
    stream = noisy_stream(seed)
    dec = StreamDecoder()
    want = [f for i in range(len(stream)) for f in dec.feed(stream[i : i + 1])] + dec.flush()
    frames, stats = c_parse(firmware, stream)
    assert frames == [frame_json(f) for f in want]
    assert stats == stats_json(dec)
    assert stats["crc_errors"] > 0 and stats["abandoned"] > 0  # the stream did exercise both


def test_c_parser_frames_do_not_depend_on_the_split(firmware: Path) -> None:
    """The Python side in big random chunks finds the same frames as the C one byte-wise."""
    stream = noisy_stream(99)
    dec = StreamDecoder()
    rnd = random.Random(1)
    got: list[Frame] = []
    i = 0
    while i < len(stream):
        step = rnd.randint(1, 200)
        got += dec.feed(stream[i : i + step])
        i += step
    got += dec.flush()
    assert c_parse(firmware, stream)[0] == [frame_json(f) for f in got]


def c_master(firmware: Path, url: str, lines: list[str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(firmware / "fb-master"), "--timeout-ms", "500", url],
        input="".join(f"{line}\n" for line in lines).encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    out: list[dict[str, Any]] = [json.loads(x) for x in done.stdout.decode().splitlines()]
    return out


def reply(addr: int, cmd: int, data: bytes) -> dict[str, Any]:
    return {"addr": addr, "cmd": cmd, "tag": 0, "data": data.hex()}


def test_c_master_against_the_python_slave(firmware: Path) -> None:
    good = encode(2, 2, b"ok").hex()
    bad = bytearray(encode(2, 2, b"no"))
    bad[-1] ^= 0xFF
    with ThreadedSimulatedBus(count=2, profile="thermo") as bus:
        got = c_master(
            firmware,
            bus.url,
            [
                "1 1 -",  # identify
                "2 2 68656c6c6f",  # echo "hello"
                "split 2 2 6869",  # echo "hi", one byte per write
                "1 6 02001e0a",  # write_reg setpoint 2590
                "1 3 020001",  # read it back
                "1 3 050002",  # past the map: error 2
                "1 66 -",  # unknown command: error 1
                f"raw {bad.hex()}",  # corrupted: no reply
                f"raw 01aa0202f0{good}",  # junk and a stray start byte, then a request
                "0 6 03000100",  # broadcast: heater on everywhere
                "2 3 030001",
            ],
        )
    model = b"THERMO-1"
    identify = bytes([len(model)]) + model + bytes([1, 4, 2]) + (0x54480001).to_bytes(4, "little")
    assert got == [
        reply(1, 1, identify + (6).to_bytes(2, "little")),
        reply(2, 2, b"hello"),
        reply(2, 2, b"hi"),
        reply(1, 6, bytes.fromhex("02001e0a")),
        reply(1, 3, bytes.fromhex("011e0a")),
        reply(1, 0x83, b"\x02"),
        reply(1, 0xC2, b"\x01"),
        {"timeout": True},
        reply(2, 2, b"ok"),
        {"sent": True},
        reply(2, 3, bytes.fromhex("010100")),
    ]


def test_c_master_reads_noisy_split_replies(firmware: Path) -> None:
    """The Python bus sends junk before replies and writes them in pieces: the C parser still
    finds every reply."""
    faults = FaultConfig(garbage=0.5, split_writes=0.7)
    with ThreadedSimulatedBus(count=1, faults=faults, seed=5) as bus:
        payloads = [bytes([i]) * (1 + i % 30) for i in range(40)]
        got = c_master(firmware, bus.url, [f"1 2 {p.hex()}" for p in payloads])
        assert bus.call(lambda: bus.counters.as_dict())  # the bus ran (and counted)
    assert got == [reply(1, 2, p) for p in payloads]
