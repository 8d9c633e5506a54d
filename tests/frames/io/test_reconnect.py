"""Reconnecting masters back off (frames.backoff.Backoff), also when the port opens and drops
at once, and reset only once the link has carried a transaction."""

from __future__ import annotations

import asyncio

import pytest

from frames.io import AsyncMaster, AsyncSlavePort
from frames.slave import SlaveGroup

from .conftest import Pty

pytestmark = pytest.mark.timeout(30)


async def test_a_port_that_opens_and_drops_at_once_backs_off() -> None:
    """A TCP port that accepts and closes at once: every reopen succeeds, the link never
    carries anything, so the backoff keeps growing (before: back to the minimum each time)."""
    accepted = 0
    enough = asyncio.Event()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()
        if accepted >= 5:
            enough.set()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    m = AsyncMaster(f"socket://127.0.0.1:{port}", reconnect_min=0.01, reconnect_max=5.0)
    try:
        await m.open()
        await asyncio.wait_for(enough.wait(), 20)
        assert m.backoff.attempts >= 4
        assert m.backoff.ceiling() >= 0.01 * 2**4
    finally:
        await m.close()
        server.close()
        await server.wait_closed()


async def test_a_reply_resets_the_backoff(pty: Pty, group: SlaveGroup) -> None:
    m = AsyncMaster(pty.path, reconnect_min=0.01, reconnect_max=5.0)
    async with AsyncSlavePort(group, fd=pty.fd), m:
        m.backoff.attempts = 3  # as if it had flapped
        assert await m.echo(1, b"x") == b"x"
        assert m.backoff.attempts == 0
