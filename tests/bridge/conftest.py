"""Shared fixtures: an in-process bridge server on loopback with a bus the test drives.

``DrivenBus`` is a real :class:`bridge.server.BusPort` whose traffic the test publishes itself
(no serial port), so the server's contract, batching, resume and slow-consumer logic are tested
fast and deterministically; ``test_e2e.py`` runs the same server over the real simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge import contract as c
from bridge.config import (
    BridgeConfig,
    BusConfig,
    DeviceConfig,
    HistoryConfig,
    Limits,
    PollConfig,
    ServerConfig,
)
from bridge.fanout import InMemoryHub
from bridge.metrics import BridgeMetrics
from bridge.server import BridgeServer
from bridge.writer import Conn

# the dashboard tests' session-wide browser and simulator + bridge stack, and their page
from .dashboard_fixtures import browser, page, stack  # noqa: F401

TIMEOUT = 5.0


class DrivenBus:
    """A bus whose requests the test answers and whose frames the test publishes."""

    def __init__(self, name: str, hub: InMemoryHub) -> None:
        self.name = name
        self.hub = hub
        self.is_up = True
        self.down_reason = ""
        self.requests: asyncio.Queue[tuple[c.Request, asyncio.Future[dict[str, Any]]]] = (
            asyncio.Queue()
        )

    @property
    def up(self) -> bool:
        return self.is_up

    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.requests.put_nowait((request, fut))
        return fut

    def snapshot(self) -> dict[str, Any]:
        return {"1": {"addr": 1, "online": True, "values": {"t": {"value": 1}}}}

    def frame(self, addr: int = 1, data: str = "00", **extra: Any) -> int:
        msg = {"type": "frame", "ts": time.time(), "addr": addr, "cmd": 3, "dir": "rx"}
        msg.update(data=data, **extra)
        return self.hub.publish(self.name, msg, time.time())


class Harness:
    def __init__(self, server: BridgeServer, hub: InMemoryHub, buses: dict[str, DrivenBus]):
        self.server = server
        self.hub = hub
        self.buses = buses
        self.bus = buses["bus0"]
        self.url = ""
        self.http = ""

    async def client(self, hello: bool = True, **kwargs: Any) -> ClientConnection:
        ws = await connect(self.url, compression=None, **kwargs)
        if hello:
            await ws.send(json.dumps({"type": "hello", "token": "t"}))
            welcome = await recv(ws)
            assert welcome["type"] == "welcome"
        return ws

    async def wait_for(self, predicate: Any, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.005)


async def recv_raw(ws: ClientConnection, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """One WebSocket message as its list of contract messages (a batch or a single one)."""
    data = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data if isinstance(data, list) else [data]


# Messages of a received batch not yet handed out, per connection; weak keys, so a closed
# connection's leftovers go with it and can never reach a later one.
_pending: weakref.WeakKeyDictionary[ClientConnection, list[dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next contract message, unbatching transparently."""
    buf = _pending.setdefault(ws, [])
    if not buf:
        buf.extend(await recv_raw(ws, timeout))
    return buf.pop(0)


async def recv_until(
    ws: ClientConnection, kind: str, timeout: float = TIMEOUT
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Skip to the next message of ``kind``; returns it and what was skipped."""
    skipped: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg, skipped
        skipped.append(msg)


def make_limits(**overrides: Any) -> Limits:
    base = Limits(
        hello_timeout_s=1.0,
        heartbeat_s=30.0,
        ping_interval_s=30.0,
        ping_timeout_s=30.0,
        close_timeout_s=0.5,
        shutdown_grace_s=1.0,
    )
    return replace(base, **overrides)


def sim_bridge_config(
    url: str,
    node: str,
    *,
    poll_s: float,
    history: int = 4096,
    devices: int = 2,
    names: tuple[str, ...] = (),
    limits: Limits | None = None,
    **bus: Any,
) -> BridgeConfig:
    """One bus ``bus0`` at ``url`` with ``devices`` thermo devices (addresses 1.., as the
    simulator numbers them; ``names`` for the first ones) read every ``poll_s``; ``bus`` sets
    other BusConfig fields (timeout_s 0.1 and retries 0 unless given)."""
    fields: dict[str, Any] = {"timeout_s": 0.1, "retries": 0, **bus}
    named = names + ("",) * devices
    addrs = range(1, devices + 1)
    return BridgeConfig(
        server=ServerConfig(host="127.0.0.1", port=0, node=node),
        limits=make_limits() if limits is None else limits,
        history=HistoryConfig(size=history),
        buses=(
            BusConfig(
                "bus0",
                url,
                devices=tuple(DeviceConfig(a, "thermo", named[a - 1]) for a in addrs),
                polls=(PollConfig("read_regs", interval_s=poll_s),),
                **fields,
            ),
        ),
    )


@pytest.fixture
def limits() -> Limits:
    return make_limits()


@contextlib.asynccontextmanager
async def running_harness(
    server_config: ServerConfig,
    lim: Limits,
    *,
    history_size: int = 1024,
    history_ttl_s: float = 300.0,
    ready: bool = True,
) -> AsyncIterator[Harness]:
    """A started server with two driven buses (``bus0``, ``bus1``); ``ready`` False leaves it
    "starting" (``set_ready`` not called)."""
    config = BridgeConfig(
        server=server_config,
        limits=lim,
        buses=(BusConfig("bus0", "unused://"), BusConfig("bus1", "unused://")),
    )
    hub = InMemoryHub(history_size=history_size, history_ttl_s=history_ttl_s)
    hub.add_bus("bus0", 1000)
    hub.add_bus("bus1", 2000)
    buses = {"bus0": DrivenBus("bus0", hub), "bus1": DrivenBus("bus1", hub)}
    server = BridgeServer(config, hub, buses)
    host, port = await server.start()
    if ready:
        server.set_ready()
    h = Harness(server, hub, buses)
    h.url = f"ws://{host}:{port}/ws"
    h.http = f"http://{host}:{port}"
    try:
        yield h
    finally:
        await asyncio.wait_for(server.close(), 10)


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    marker = request.node.get_closest_marker("limits")
    lim = make_limits(**(marker.kwargs if marker else {}))
    hist = request.node.get_closest_marker("history")
    tokens = request.node.get_closest_marker("tokens")
    server_config = ServerConfig(
        host="127.0.0.1", port=0, node="test", tokens=tokens.args if tokens else ()
    )
    async with running_harness(
        server_config,
        lim,
        history_size=hist.kwargs.get("size", 1024) if hist else 1024,
        history_ttl_s=hist.kwargs.get("ttl_s", 300.0) if hist else 300.0,
    ) as h:
        yield h


SLOW_LIMITS = {  # small bounds so a client that stops reading overflows within milliseconds
    "queue_messages": 50,
    "queue_bytes": 20_000,
    "write_limit_bytes": 1024,
    "close_timeout_s": 2.0,  # long enough to read out what was sent before the 4000
}


async def stalled_client(h: Harness, hello: bool = True) -> tuple[ClientConnection, Conn]:
    """A client that stops reading (after its welcome, or before any hello): a 4 KB receive
    buffer and a one-message queue, so the kernel buffers between it and the server fill after
    a few KB. Returns the server's side of it too (``Conn``)."""
    url = urlsplit(h.url)
    assert url.hostname is not None and url.port is not None
    before = set(h.server.conns)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, (url.hostname, url.port)), TIMEOUT)
    ws = await connect(h.url, sock=sock, compression=None, max_queue=1, open_timeout=TIMEOUT)
    if hello:
        await ws.send(json.dumps({"type": "hello", "token": "t"}))
        welcome = await recv(ws)
        assert welcome["type"] == "welcome"
        conn = next(c for c in h.server.conns.values() if c.session.id == welcome["session"])
    else:
        await h.wait_for(lambda: len(set(h.server.conns) - before) == 1)
        (sid,) = set(h.server.conns) - before
        conn = h.server.conns[sid]
    # and the server's send buffer for it small: Linux grows it to megabytes on loopback
    # otherwise (autotuning), which would take thousands of messages to fill
    server_sock = conn.ws.transport.get_extra_info("socket")
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return ws, conn


async def read_until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    """Everything the server sent before it closed the connection (each read bounded)."""
    got: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed):
        while True:
            got.extend(await recv_raw(ws))
    return got


def metric(metrics: BridgeMetrics, name: str, **labels: str) -> float:
    """A sample from the bridge's own registry, as a scrape reads it (0 before the first)."""
    value = metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def rejected(h: Harness, reason: str) -> float:
    """Connections the harness's server refused for ``reason``."""
    return metric(h.server.metrics, "framebridge_rejected_connections_total", reason=reason)


def slow_closes(h: Harness) -> float:
    value = h.server.metrics.registry.get_sample_value("framebridge_slow_consumer_closes_total")
    assert value is not None
    return float(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "limits(**kw): bridge limits for the harness")
    config.addinivalue_line("markers", "history(size, ttl_s): history for the harness")
    config.addinivalue_line("markers", "tokens(*tokens): accepted hello tokens")
