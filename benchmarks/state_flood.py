"""Memory held by clients that pipeline ``state`` and never read (issue 10, break 7).

A bridge process (a real :class:`~bridge.server.BridgeServer`, two buses whose ``state`` is
about 8 KB, like ten profiled devices) is measured from outside (``/proc/PID/status`` VmRSS)
while ``--flooders`` raw clients each send hello and ``--states`` ``state`` messages as fast as
the socket takes them, and never read (4 KB receive buffers). Meanwhile ``--honest`` websockets
clients ping every 10 ms: their round-trip p99 is taken before and during the flood.

    .venv/bin/python benchmarks/state_flood.py                 # 300 flooders
    .venv/bin/python benchmarks/state_flood.py --src /tmp/main # another checkout's bridge

Every wait is bounded; the bridge child is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import asyncio, json, sys, logging
from bridge.config import BridgeConfig, BusConfig, Limits, ServerConfig
from bridge.fanout import InMemoryHub
from bridge.server import BridgeServer

logging.basicConfig(level=logging.ERROR)
DEVICE = {"addr": 1, "online": True, "registers": {str(r): 1000 + r for r in range(12)},
          "register_map": [{"address": r, "name": f"reg{r}", "type": "u16", "scale": 0.01,
                            "unit": "C", "writable": False} for r in range(6)]}

class Bus:
    down_reason = ""
    up = True
    def snapshot(self):
        return {str(a): dict(DEVICE, addr=a) for a in range(1, 6)}
    def submit(self, request, client=""):
        raise NotImplementedError

async def main():
    hub = InMemoryHub()
    for name in ("bus0", "bus1"):
        hub.add_bus(name, 1)
    cfg = BridgeConfig(server=ServerConfig(port=0),
                       limits=Limits(ping_interval_s=300, ping_timeout_s=300),
                       buses=(BusConfig("bus0", "none"), BusConfig("bus1", "none")))
    server = BridgeServer(cfg, hub, {"bus0": Bus(), "bus1": Bus()})
    host, port = await server.start("127.0.0.1", 0)
    print(json.dumps({"port": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def masked_text(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([0x81]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    )
    return head + mask + body


def flooder(port: int, states: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(4096)
    assert b" 101 " in reply, reply[:80]
    data = masked_text(json.dumps({"type": "hello", "token": "t"}))
    data += masked_text(json.dumps({"type": "state"})) * states
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        sock.send(data)  # as much as the kernel takes; the rest is never sent
    return sock


async def honest(port: int, seconds: float, out: list[float]) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "token": "t"}))
        await asyncio.wait_for(ws.recv(), 10)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "ping", "id": i}))
            while True:
                data = json.loads(await asyncio.wait_for(ws.recv(), 30))
                msgs = data if isinstance(data, list) else [data]
                if any(m.get("id") == i for m in msgs):
                    break
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.01)


async def p99(port: int, clients: int, seconds: float) -> float:
    rtts: list[float] = []
    await asyncio.gather(*(honest(port, seconds, rtts) for _ in range(clients)))
    return statistics.quantiles(rtts, n=100)[98]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flooders", type=int, default=300)
    p.add_argument("--states", type=int, default=20_000)
    p.add_argument("--honest", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--src", default=str(Path(__file__).resolve().parents[1]))
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=args.src)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
        cwd=args.src,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        port = json.loads(child.stdout.readline())["port"]
        time.sleep(0.5)
        base_rss = rss_mib(child.pid)
        base_p99 = asyncio.run(p99(port, args.honest, args.seconds))
        socks = [flooder(port, args.states) for _ in range(args.flooders)]
        time.sleep(2.0)  # let the bridge read what it will read
        flood_p99 = asyncio.run(p99(port, args.honest, args.seconds))
        flood_rss = rss_mib(child.pid)
        for s in socks:
            s.close()
        time.sleep(2.0)
        after_rss = rss_mib(child.pid)
        print(f"bridge source: {args.src}")
        print(
            f"RSS idle {base_rss:.1f} MiB; with {args.flooders} state flooders "
            f"{flood_rss:.1f} MiB (+{flood_rss - base_rss:.1f} MiB, "
            f"{(flood_rss - base_rss) * 1024 / args.flooders:.0f} KiB each); "
            f"after they closed {after_rss:.1f} MiB"
        )
        print(
            f"honest ping p99: {base_p99:.2f} ms idle, {flood_p99:.2f} ms during the flood "
            f"({flood_p99 / base_p99:.2f}x)"
        )
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
