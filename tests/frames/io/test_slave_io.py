"""AsyncSlavePort's idle handling over a real pty."""

from __future__ import annotations

import asyncio
import os

import pytest

from frames.io import AsyncSlavePort

from .conftest import Pty

pytestmark = pytest.mark.timeout(20)


class Recorder:
    """A responder that notes when bytes and idle calls come in (loop time)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.rx: list[float] = []
        self.idles: list[float] = []
        self.got = asyncio.Event()
        self.went_idle = asyncio.Event()

    def receive_data(self, data: bytes) -> bytes:
        self.rx.append(self.loop.time())
        self.got.set()
        return b""

    def idle(self) -> bytes:
        self.idles.append(self.loop.time())
        self.went_idle.set()
        return b""


async def test_idle_once_after_the_last_chunk(pty: Pty) -> None:
    """One idle call per quiet spell, ``idle_flush`` after the *last* chunk, however many came."""
    rec = Recorder()
    flush = 0.2
    async with AsyncSlavePort(rec, fd=pty.fd, idle_flush=flush):
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
