"""AsyncSlavePort's timing over a real pty: it ticks the responder at the responder's deadline."""

from __future__ import annotations

import asyncio
import os

import pytest

from frames import Frame, Slave, encode
from frames.io import AsyncSlavePort
from frames.stream import StreamDecoder

from .conftest import Pty

pytestmark = pytest.mark.timeout(20)


class Recorder:
    """A responder with an idle rule of its own (``flush`` after the last byte) that notes when
    bytes and ticks come in (loop time)."""

    def __init__(self, flush: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.flush = flush
        self.rx: list[float] = []
        self.idles: list[float] = []
        self.ticks = 0
        self.dirty = False
        self.got = asyncio.Event()
        self.went_idle = asyncio.Event()

    def receive_data(self, data: bytes, now: float) -> bytes:
        self.rx.append(now)
        self.dirty = True
        self.got.set()
        return b""

    def next_deadline(self) -> float | None:
        return self.rx[-1] + self.flush if self.dirty else None

    def tick(self, now: float) -> bytes:
        self.ticks += 1
        if self.dirty and now >= self.rx[-1] + self.flush:
            self.dirty = False
            self.idles.append(self.loop.time())
            self.went_idle.set()
        return b""


async def test_one_idle_after_the_last_chunk(pty: Pty) -> None:
    """One idle per quiet spell, ``flush`` after the *last* chunk, however many came."""
    flush = 0.2
    rec = Recorder(flush)
    async with AsyncSlavePort(rec, fd=pty.fd):
        for chunk in (b"\xaa", b"\x01", b"\x02"):
            rec.got.clear()
            os.write(pty.hold, chunk)
            await asyncio.wait_for(rec.got.wait(), 2)
        await asyncio.wait_for(rec.went_idle.wait(), 2)
        assert len(rec.rx) == 3 and len(rec.idles) == 1
        assert rec.idles[0] >= rec.rx[-1] + flush
        # and again for the next quiet spell
        rec.went_idle.clear()
        os.write(pty.hold, b"\xaa")
        await asyncio.wait_for(rec.went_idle.wait(), 2)
        assert len(rec.idles) == 2 and rec.idles[1] >= rec.rx[-1] + flush


async def test_a_stray_start_byte_is_given_up_by_the_slave_core(pty: Pty) -> None:
    """The slave core's own idle rule, driven by the port's timer: a start byte with a bogus
    length stalls nothing once the line has been quiet for ``idle_flush``."""
    slave = Slave(5, idle_flush=0.02)
    slave.add_handler("echo", lambda req: req.frame.data)
    loop = asyncio.get_running_loop()
    async with AsyncSlavePort(slave, fd=pty.fd):
        os.write(pty.hold, b"\xaa\x05\x02\xf0")  # claims 240 bytes that never come
        end = loop.time() + 2
        while slave.decoder.pending and loop.time() < end:
            await asyncio.sleep(0.01)
        assert slave.decoder.pending == 0
        os.set_blocking(pty.hold, False)
        os.write(pty.hold, encode(5, 2, b"x"))
        dec = StreamDecoder()
        frames: list[Frame] = []
        while not frames:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(pty.hold, readable.set_result, None)
            try:
                await asyncio.wait_for(readable, 2)
            finally:
                loop.remove_reader(pty.hold)
            frames += dec.feed(os.read(pty.hold, 4096))
        assert frames == [Frame(5, 2, b"x")]
