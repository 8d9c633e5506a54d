"""Closing clients: one close the server starts, and the drain that closes them all.

A close is bounded: websockets' ``close()`` first waits for the write buffer to drain, which a
client that does not read would make last for ever, so the closing handshake gets a timeout and
the connection is then dropped. A drain closes every client with 1001 in batches spread over a
window (the plan is :func:`bridge.drain.drain_batches`), so a node's clients do not all
reconnect to the others in the same second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .contract import CLOSE_GOING_AWAY
from .drain import drain_batches
from .writer import Conn

__all__ = ["close_client", "drain_clients"]

log = logging.getLogger("bridge.server")


async def close_client(ws: ServerConnection, code: int, reason: str, timeout: float) -> None:
    """Close ``ws`` with ``code`` and ``reason``; after ``timeout`` seconds without the
    closing handshake, drop the connection."""
    try:
        await asyncio.wait_for(ws.close(code, reason), timeout)
    except (TimeoutError, ConnectionClosed, OSError):
        pass
    finally:
        if ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()


async def drain_clients(conns: Mapping[str, Conn], window: float, timeout: float) -> None:
    """Close every client of ``conns`` (read live: one gone meanwhile is skipped) with 1001,
    in batches spread over ``window`` seconds; returns when every close has ended."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    waiting = list(conns.values())
    closing: list[asyncio.Task[None]] = []
    plan = drain_batches(len(waiting), window)
    if plan:
        log.info(
            "event=draining clients=%d batches=%d window_s=%s", len(waiting), len(plan), window
        )
    for offset, size in plan:
        delay = start + offset - loop.time()
        if delay > 0:  # the schedule's own clock, not a synchronisation
            await asyncio.sleep(delay)
        batch, waiting = waiting[:size], waiting[size:]
        for conn in batch:
            if conn.session.id in conns:  # not gone by itself meanwhile
                coro = close_client(conn.ws, CLOSE_GOING_AWAY, "shutdown", timeout)
                closing.append(asyncio.create_task(coro))
    await asyncio.gather(*closing)
