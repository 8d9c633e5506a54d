"""The child-process roles of ``benchmarks/bridge.py``: bulk and probe clients, and the
synthetic server. Each speaks one JSON line per answer on stdout (:func:`emit`) and takes
commands on stdin; ``bridge.py --role ...`` runs them, the orchestration stays in ``bridge.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import logging
import os
import resource
import selectors
import socket
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def frame_message(i: int) -> dict[str, Any]:
    """A realistic rx frame: a read_regs reply of a thermo device (~330 bytes as JSON)."""
    return {
        "type": "frame",
        "ts": time.time(),
        "addr": 1,
        "cmd": 3,
        "dir": "rx",
        "data": f"04{i % 65536:04x}01c5089800000000",
        "fields": {
            "count": 4,
            "values": [i % 65536, 453, 2200, 0],
            "named": {"temperature": 21.5, "humidity": 45.3, "setpoint": 22.0, "heater": 0},
        },
    }


# -- bulk clients: raw sockets ---------------------------------------------------------------


def _masked_text(payload: bytes) -> bytes:
    assert len(payload) < 126
    # A zero masking key is a valid key: the payload goes as is.
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def _raw_connect(
    host: str, port: int, path: str, stalled: bool, deadline: float, token: str = "bench"
) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if stalled:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), deadline - time.monotonic())
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    hello = _masked_text(json.dumps({"type": "hello", "token": token}).encode())
    sub = _masked_text(b'{"type":"subscribe","id":1,"topics":["bus0/*"]}')
    await loop.sock_sendall(sock, request + hello + sub)
    buf = b""
    while b'"subscribed"' not in buf:  # 101 response, welcome, subscribed
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - time.monotonic())
        if not chunk:
            raise ConnectionError(f"closed during setup: {buf[:200]!r}")
        buf += chunk
        if len(buf) > 1 << 20:
            raise ConnectionError("no subscribed answer")
    if not buf.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(buf[:200].decode(errors="replace"))
    return sock


async def _connect_all(
    url: str,
    count: int,
    stall: int,
    concurrency: int,
    timeout: float,
    tokens: tuple[str, ...] = ("bench",),
) -> tuple[list[socket.socket], list[socket.socket]]:
    u = urlsplit(url)
    host, port, path = u.hostname or "127.0.0.1", u.port or 80, u.path or "/"
    deadline = time.monotonic() + timeout
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> socket.socket:
        async with sem:
            for attempt in range(5):  # a full accept backlog drops SYNs: retry
                try:
                    token = tokens[i % len(tokens)]
                    return await _raw_connect(host, port, path, i < stall, deadline, token)
                except (ConnectionError, OSError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.1 * (attempt + 1))
            raise AssertionError("unreachable")

    socks = await asyncio.gather(*(one(i) for i in range(count)))
    return list(socks[stall:]), list(socks[:stall])


def run_bulk(args: argparse.Namespace) -> None:
    raise_nofile()
    healthy, stalled = asyncio.run(
        _connect_all(
            args.url,
            args.count,
            args.stall_count,
            args.concurrency,
            args.timeout,
            tuple(args.tokens.split(",")),
        )
    )
    emit({"ready": len(healthy) + len(stalled)})
    sel = selectors.DefaultSelector()
    for s in healthy:
        sel.register(s, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    received = 0
    closed = 0
    buf = bytearray(1 << 18)
    poll = args.bulk_poll_ms / 1000
    deadline = time.monotonic() + args.timeout
    running = True
    while running and time.monotonic() < deadline:
        for key, _ in sel.select(poll):
            if key.fileobj is sys.stdin:
                sys.stdin.readline()
                running = False
                continue
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if n == 0:
                sel.unregister(sock)
                closed += 1
            received += n
        time.sleep(poll)  # read in large chunks: one pass per poll interval
    emit({"received_bytes": received, "closed": closed})
    os._exit(0)


# -- probe clients: full websockets clients that measure latency -------------------------------


async def run_probe(args: argparse.Namespace) -> None:
    from websockets.asyncio.client import connect

    conns = []
    for _ in range(args.count):
        ws = await connect(args.url, compression=None, ping_interval=None, max_queue=None)
        await ws.send('{"type":"hello","token":"bench"}')
        await ws.recv()
        await ws.send('{"type":"subscribe","id":1,"topics":["bus0/*"]}')
        await ws.recv()
        conns.append(ws)
    lat: list[float] = []
    measuring = [False]
    frames = [0]

    async def reader(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                now = time.time()
                data = json.loads(raw)
                if not measuring[0]:
                    continue
                for m in data if isinstance(data, list) else [data]:
                    if m.get("type") == "frame":
                        frames[0] += 1
                        lat.append(now - m["ts"])

    tasks = [asyncio.create_task(reader(ws)) for ws in conns]
    emit({"ready": len(conns)})
    loop = asyncio.get_running_loop()
    line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.timeout)
    assert line.strip() == "start", line
    measuring[0] = True
    t0 = time.monotonic()
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.timeout)
    measuring[0] = False
    elapsed = time.monotonic() - t0
    for t in tasks:
        t.cancel()
    emit(
        {
            "p50_ms": pct(lat, 50) * 1000,
            "p99_ms": pct(lat, 99) * 1000,
            "max_ms": max(lat, default=float("nan")) * 1000,
            "samples": len(lat),
            "frames_per_s_per_client": frames[0] / max(elapsed, 1e-9) / max(len(conns), 1),
        }
    )
    os._exit(0)


# -- synthetic server: the bridge's server and hub, publishing as fast as possible -------------


class _NoBus:
    name = "bus0"
    up = True

    def snapshot(self) -> dict[str, Any]:
        return {}

    def idle(self) -> bool:
        return True


async def run_server(args: argparse.Namespace) -> None:
    from websockets.asyncio.server import broadcast

    from bridge.config import BridgeConfig, BusConfig, Limits, ServerConfig
    from bridge.contract import dumps
    from bridge.fanout import InMemoryHub
    from bridge.server import BridgeServer

    raise_nofile()
    logging.basicConfig(level=logging.ERROR)
    hub = InMemoryHub(history_size=1024)
    hub.add_bus("bus0", 1)
    cfg = BridgeConfig(
        server=ServerConfig(port=0),
        # Library defaults except: room for the clients, and pings rare enough that the raw
        # clients (which do not answer them) are not closed during the run.
        limits=Limits(max_clients=args.count + 100, ping_interval_s=300, ping_timeout_s=300),
        buses=(BusConfig("bus0", "none"),),
    )
    if args.tenants:
        cfg = tenants_config(cfg)
    server = BridgeServer(cfg, hub, {"bus0": _NoBus()})  # type: ignore[dict-item]
    host, port = await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    gc.collect()
    emit({"url": f"ws://{host}:{port}/ws"})

    async def drained(deadline: float) -> None:
        while time.monotonic() < deadline:
            if all(
                not len(c.session) and c.ws.transport.get_write_buffer_size() == 0
                for c in server.conns.values()
            ):
                return
            await asyncio.sleep(0.005)
        raise TimeoutError("queues did not drain")

    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), 3600)
        cmd, *rest = line.split() or ["quit"]
        if cmd == "quit":
            break
        deadline = time.monotonic() + args.timeout
        if cmd == "collect":
            gc.collect()
            emit({"clients": len(server.conns)})
        elif cmd == "fanout":
            messages, burst = int(rest[0]), int(rest[1])
            before, frames_before = hub.stats.deliveries, server.metrics.out.frames
            for i in range(messages):
                hub.publish("bus0", frame_message(i), time.time())
                if i % burst == burst - 1:
                    await asyncio.sleep(0)
            await drained(deadline)
            frames = server.metrics.out.frames - frames_before
            emit({"deliveries": hub.stats.deliveries - before, "frames": frames})
        elif cmd in ("naive", "broadcast"):
            messages = int(rest[0])
            conns = [c.ws for c in server.conns.values()]
            for i in range(messages):
                msg = frame_message(i)
                msg.update(bus="bus0", seq=i, epoch=1)
                text = dumps(msg)  # serialized once: the naive part is the per-client send
                if cmd == "naive":
                    for ws in conns:
                        await ws.send(text)
                else:
                    broadcast(conns, text)
                    await asyncio.sleep(0)
            await drained(deadline)
            emit({"deliveries": messages * len(conns), "frames": messages * len(conns)})
    await server.close()
    os._exit(0)


TENANT_TOKENS = ("alpha-token", "beta-token")


def tenants_config(base: Any) -> Any:
    """``base`` with two tenants (tokens :data:`TENANT_TOKENS`), ACL patterns (one whole-bus,
    one per device) and every quota on, for the tenants' fan-out comparison."""
    from dataclasses import replace

    from bridge.config import parse_config
    from bridge.tenants import hash_token

    tier = {
        "connections": base.limits.max_clients,
        "inflight": 10,
        "max_timeout_s": 60.0,
        "requests_per_s": 100.0,
        "subscriptions": 64,
        "messages_per_s": 200.0,
        "bytes_per_s": 65536.0,
        "bad_messages": 20,
    }
    raw = {
        "bus": [{"name": "bus0", "url": "none"}],
        "tiers": {"bench": tier},
        "tenant": [
            {
                "name": "alpha",
                "tier": "bench",
                "token_sha256": [hash_token(TENANT_TOKENS[0])],
                "read": ["bus0/*"],
                "write": ["bus0/1"],
            },
            {
                "name": "beta",
                "tier": "bench",
                "token_sha256": [hash_token(TENANT_TOKENS[1])],
                "read": ["bus0/1", "bus0/2"],
                "write": ["bus0/2:write_reg"],
            },
        ],
    }
    return replace(base, tenancy=parse_config(raw).tenancy)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
