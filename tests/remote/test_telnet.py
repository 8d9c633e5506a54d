"""The telnet decoder under RFC 2217 (pure), fed whole and in every split, and the thread link
on a port without an fd."""

from __future__ import annotations

import asyncio
import random

import serial

from frames.io.port_link import has_fd, open_link
from frames.io.telnet import (
    Command,
    Data,
    Event,
    Negotiation,
    Subnegotiation,
    TelnetDecoder,
)
from frames.io.thread_link import ThreadLink

IAC, SB, SE, WILL, DO, NOP = 0xFF, 0xFA, 0xF0, 0xFB, 0xFD, 0xF1

STREAM = (
    bytes([0x01, 0x02, IAC, IAC, 0x03])  # data with an escaped 0xFF
    + bytes([IAC, WILL, 0x2C])  # WILL COM-PORT-OPTION
    + bytes([IAC, SB, 0x2C, 101, 0x00, 0x01, IAC, IAC, 0x00, IAC, SE])  # an answer with an 0xFF
    + bytes([0x04, IAC, NOP, 0x05])
    + bytes([IAC, DO, 0x00])
)
EXPECTED: list[Event] = [
    Data(b"\x01\x02\xff\x03"),
    Negotiation(WILL, 0x2C),
    Subnegotiation(bytes([0x2C, 101, 0x00, 0x01, 0xFF, 0x00])),
    Data(b"\x04"),
    Command(NOP),
    Data(b"\x05"),
    Negotiation(DO, 0x00),
]


def merged(events: list[Event]) -> list[Event]:
    """Adjacent data runs joined: how a stream is split must not change what it says."""
    out: list[Event] = []
    for ev in events:
        if isinstance(ev, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out


def test_whole_stream() -> None:
    assert TelnetDecoder().feed(STREAM) == EXPECTED


def test_plain_data_is_one_run() -> None:
    assert TelnetDecoder().feed(b"\xaa\x01\x03\x00") == [Data(b"\xaa\x01\x03\x00")]
    assert TelnetDecoder().feed(b"") == []


def test_every_split_and_byte_by_byte() -> None:
    for cut in range(len(STREAM) + 1):
        d = TelnetDecoder()
        assert merged(d.feed(STREAM[:cut]) + d.feed(STREAM[cut:])) == EXPECTED
    d = TelnetDecoder()
    assert merged([ev for b in STREAM for ev in d.feed(bytes([b]))]) == EXPECTED
    rng = random.Random(7)
    for _ in range(50):
        d, events, i = TelnetDecoder(), [], 0
        while i < len(STREAM):
            n = rng.randint(1, 6)
            events += d.feed(STREAM[i : i + n])
            i += n
        assert merged(events) == EXPECTED


def test_oversized_subnegotiation_is_dropped_data_kept() -> None:
    d = TelnetDecoder(max_sub=4)
    events = d.feed(bytes([IAC, SB]) + b"\x2c" * 10 + bytes([IAC, SE]) + b"ok")
    assert events == [Data(b"ok")]
    assert d.feed(bytes([IAC, SB, 1, 2, IAC, SE])) == [Subnegotiation(b"\x01\x02")]


async def test_thread_link_on_a_port_without_fd() -> None:
    ser = serial.serial_for_url("loop://", timeout=0.1)
    assert not has_fd(ser)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()
    lost = loop.create_future()

    class Proto(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            got.put_nowait(data)

        def connection_lost(self, exc: Exception | None) -> None:
            lost.set_result(exc)

    link = open_link(loop, Proto(), ser)
    assert isinstance(link, ThreadLink)
    link.write(b"hello")
    data = b""
    while len(data) < 5:
        data += await asyncio.wait_for(got.get(), 5)
    assert data == b"hello"
    link.close()
    assert await asyncio.wait_for(lost, 5) is None
    assert not ser.is_open
