"""Separate processes for the cluster tests: simulated buses, bridge nodes, WebSocket clients,
and a pausable TCP proxy that cuts a node's Redis link without closing it.

Everything listens on loopback, on free ports; every wait is bounded (``TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.servers import RedisProcess, free_port

__all__ = [
    "TIMEOUT",
    "Client",
    "NodeProc",
    "PausableProxy",
    "redis_cli",
    "start_node",
    "start_sim",
    "until",
    "watching",
]

TIMEOUT = 10.0
EXE = str(Path(sys.executable).parent / "framebridge")


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        EXE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=None if os.environ.get("FB_NODE_LOG") else asyncio.subprocess.DEVNULL,
    )


async def stop_proc(proc: asyncio.subprocess.Process, kill: bool = False) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def start_sim(devices: int = 2) -> tuple[asyncio.subprocess.Process, str]:
    """``framebridge sim`` on TCP; (the process, its socket:// URL)."""
    port = free_port()
    proc = await _spawn("sim", "--tcp", f"127.0.0.1:{port}", "--devices", str(devices))
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
    return proc, line.decode().split("\t")[0].strip()


def node_config(
    path: Path,
    name: str,
    redis_url: str,
    buses: dict[str, str],
    *,
    prefix: str = "fb",
    cluster: bool = False,
    poll_s: float = 0.05,
    history: int = 1024,
    command_timeout_s: float = 0.5,
    ownership_ttl_s: float = 1.5,
) -> Path:
    lines = [
        "[server]", f'node = "{name}"',
        "[history]", f"size = {history}", "ttl_s = 300.0",
        "[redis]", f'url = "{redis_url}"', f'prefix = "{prefix}"',
        f"cluster = {'true' if cluster else 'false'}",
        "connect_timeout_s = 0.5", f"command_timeout_s = {command_timeout_s}",
        f"ownership_ttl_s = {ownership_ttl_s}",
    ]  # fmt: skip
    for bus, url in buses.items():
        lines += [
            "[[bus]]", f'name = "{bus}"', f'url = "{url}"', "timeout_s = 0.2",
            "[[bus.device]]", "addr = 1", 'profile = "thermo"',
            "[[bus.poll]]", 'cmd = "read_regs"', f"interval_s = {poll_s}",
        ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class NodeProc:
    name: str
    config: Path
    port: int
    proc: asyncio.subprocess.Process | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self, timeout: float = TIMEOUT) -> NodeProc:
        self.proc = await _spawn(
            "bridge", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"
        )
        await wait_for(lambda: self.health_now() is not None, "node healthy", timeout)
        return self

    def health_now(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return dict(json.loads(r.read()))
        except (OSError, ValueError, urllib.error.URLError):
            return None

    async def health(self) -> dict[str, Any]:
        h = await asyncio.to_thread(self.health_now)
        assert h is not None, f"node {self.name} does not answer /healthz"
        return h

    async def metrics(self) -> str:
        def get() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return str(r.read().decode())

        return await asyncio.to_thread(get)

    async def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            await stop_proc(self.proc, kill)
            self.proc = None


async def start_node(
    tmp: Path, name: str, redis_url: str, buses: dict[str, str], **kw: Any
) -> NodeProc:
    cfg = node_config(tmp / f"{name}.toml", name, redis_url, buses, **kw)
    return await NodeProc(name, cfg, free_port()).start()


async def watching(*nodes: NodeProc, frames: int = 5) -> list[Client]:
    """A client of each node subscribed to bus0, once the last one has ``frames`` frames."""
    clients = [await Client.open(n.ws_url) for n in nodes]
    for client in clients:
        await client.subscribe(["bus0/*"])
    await wait_for(lambda: len(clients[-1].seqs("bus0")) >= frames, "frames")
    return clients


async def until(pred: Callable[[], Any]) -> None:
    """Until ``pred()`` is truthy (in-process state): bound it with ``asyncio.wait_for``."""
    while not pred():
        await asyncio.sleep(0.01)


def redis_cli(redis: RedisProcess, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True, timeout=10
    )
    return out.stdout.strip()


async def wait_for(pred: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``pred`` (sync or async) every 50 ms until truthy; bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Client:
    """A WebSocket client that keeps every bus message it gets, in arrival order."""

    ws: ClientConnection
    welcome: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)  # len(messages) at each unsequenced reset
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str) -> Client:
        ws = await asyncio.wait_for(connect(url), TIMEOUT)
        await ws.send(json.dumps({"type": "hello", "id": 0}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert welcome["type"] == "welcome", welcome
        client = cls(ws, welcome)
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                data = json.loads(raw)
                for msg in data if isinstance(data, list) else [data]:
                    if msg.get("type") in ("frame", "event"):
                        self.messages.append(msg)
                    elif msg.get("type") == "bus_reset":  # forget the position (websocket.md)
                        self.resets.append(len(self.messages))
                    elif msg.get("type") != "heartbeat":
                        self.answers.append(msg)

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(message))
        mid = message["id"]
        found = await wait_for(
            lambda: next((a for a in self.answers if a.get("id") == mid), None), f"answer {mid}"
        )
        return dict(found)

    async def subscribe(self, topics: list[str], since: dict[str, Any] | None = None) -> Any:
        msg: dict[str, Any] = {"type": "subscribe", "id": f"s{len(self.answers)}", "topics": topics}
        if since:
            msg["since"] = since
        return await self.ask(msg)

    def seqs(self, bus: str) -> list[int]:
        return [m["seq"] for m in self.messages if m["bus"] == bus]

    def last(self, bus: str) -> dict[str, int]:
        m = [m for m in self.messages if m["bus"] == bus][-1]
        return {"epoch": m["epoch"], "seq": m["seq"]}

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class PausableProxy:
    """A TCP proxy to ``port``; :meth:`cut` stops forwarding on every connection open now
    (they stay open: a silent link), while new connections pass. :meth:`pause` holds every
    byte, on every connection, new ones too, until :meth:`resume` (a Redis too slow to answer:
    what was sent is executed late)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = free_port()
        self._links: list[asyncio.Event] = []
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> PausableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        tr, tw = await asyncio.open_connection("127.0.0.1", self.target)
        alive = asyncio.Event()
        alive.set()
        self._links.append(alive)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if not alive.is_set():
                        await asyncio.Event().wait()  # silent: hold the bytes for ever
                    await self._open.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for coro in (pipe(r, tw), pipe(tr, w)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        for alive in self._links:
            alive.clear()
        self._links.clear()

    def pause(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def close(self) -> None:
        self._open.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
