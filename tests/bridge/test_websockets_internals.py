"""The websockets internals bridge/writer.py relies on, pinned (issue 9 item 6).

The writer bypasses ``await ws.send()`` for speed: it reads ``ServerConnection.paused``, waits
in ``drain()``, flushes control frames with ``send_data()`` when ``protocol.writes`` holds any,
and writes a frame built once by ``protocol.send_text()``/``data_to_send()`` to many
transports. None of that is documented API, so ``pyproject.toml`` pins ``websockets>=14,<18``
(the range these tests pass on) and these tests fail, instead of fan-out breaking silently,
when a release changes any of it. The public-API alternatives measured 56k (``await
ws.send`` per client) and 85k (``broadcast()``) deliveries per CPU-second against the writer's
~1.1M in the same benchmark run (``benchmarks/bridge.py --phases fanout``).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import socket
import sys
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import ServerConnection
from websockets.protocol import Protocol, State

from .conftest import TIMEOUT, Harness, recv


def _server_side(h: Harness) -> ServerConnection:
    (conn,) = h.server.conns.values()
    return conn.ws


def test_the_installed_websockets_is_in_the_pinned_range() -> None:
    major = int(websockets.__version__.split(".")[0])
    assert 14 <= major < 18, "re-check bridge/writer.py against this release, then widen the pin"


def test_the_attributes_the_writer_reads_exist() -> None:
    assert inspect.iscoroutinefunction(ServerConnection.drain)
    assert callable(ServerConnection.send_data)
    assert callable(ServerConnection.pause_writing) and callable(ServerConnection.resume_writing)
    for name in ("send_text", "data_to_send"):
        assert callable(getattr(Protocol, name))


async def test_flow_control_flag_and_drain(harness: Harness) -> None:
    await harness.client()
    ws = _server_side(harness)
    assert ws.paused is False and isinstance(ws.protocol.writes, list)
    assert ws.protocol.state is State.OPEN and ws.protocol.extensions == []
    ws.pause_writing()  # what the transport calls over its high-water mark
    assert ws.paused is True
    drain = asyncio.ensure_future(ws.drain())
    done, _ = await asyncio.wait({drain}, timeout=0.05)
    assert not done  # paused: drain waits (a drain that returns at once would make it spin)
    ws.resume_writing()
    await asyncio.wait_for(drain, TIMEOUT)
    assert ws.paused is False


async def test_a_frame_built_once_reaches_two_clients(harness: Harness) -> None:
    a = await harness.client()
    b = await harness.client()
    servers = [conn.ws for conn in harness.server.conns.values()]
    text = json.dumps({"type": "heartbeat", "ts": 1.0})
    first = servers[0].protocol
    first.send_text(text.encode())
    chunks = first.data_to_send()
    assert len(chunks) == 1  # one frame, no extension: the writer may reuse it
    for ws in servers:
        ws.transport.write(chunks[0])
    assert await recv(a) == await recv(b) == {"type": "heartbeat", "ts": 1.0}


async def test_pending_control_frames_are_flushed_by_send_data(harness: Harness) -> None:
    client = await harness.client()
    ws = _server_side(harness)
    pong = await client.ping(b"x")  # the server's pong is written at once by the library
    await asyncio.wait_for(pong, TIMEOUT)
    ws.protocol.send_ping(b"y")  # queued in protocol.writes, not yet on the transport
    assert ws.protocol.writes
    ws.send_data()
    assert not ws.protocol.writes


async def test_a_burst_of_accepts_keeps_every_connection_dict_key_shared(harness: Harness) -> None:
    """Connections created in one burst (several before the first one's ``connection_made``)
    still share their attribute names: a dict of its own is ~1.3 KiB more per client, the RSS
    figure's regression (bridge/edge.py ``_LATE``). Fails when websockets adds attributes."""
    url = urlsplit(harness.url)
    assert url.hostname is not None and url.port is not None
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (
        f"GET /ws HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    socks: list[socket.socket] = []
    try:
        for _ in range(12):  # the kernel completes these before the loop accepts any of them
            sock = socket.create_connection((url.hostname, url.port), timeout=TIMEOUT)
            sock.sendall(upgrade)
            socks.append(sock)
        await harness.wait_for(lambda: len(harness.server.conns) == len(socks))
        for conn in harness.server.conns.values():
            attrs = vars(conn.ws)
            assert sys.getsizeof(attrs) < sys.getsizeof(dict(attrs)), sorted(attrs)
    finally:
        for sock in socks:
            sock.close()
