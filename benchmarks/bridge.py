"""Bridge benchmark: memory per connection, fan-out CPU cost, latency, slow-client isolation.

The server runs in this process (a real :class:`bridge.server.BridgeServer`, hub and queues; the
bus is driven by the script so the rate is exact); clients run in a child process on loopback.

    .venv/bin/python benchmarks/bridge.py                 # quick: 1,000 clients
    .venv/bin/python benchmarks/bridge.py --clients 10000 --latency-clients 1000

Fan-out is measured as server CPU seconds (process_time) per delivered message, for the bridge's
path (serialize once, queue, batching writer) and for a naive per-client ``await ws.send`` loop,
interleaved in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# This file is named like the package it measures: keep its folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_common", _HERE / "_common.py")
assert _spec is not None and _spec.loader is not None
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
markdown_table = _common.markdown_table

from bridge.config import BridgeConfig, BusConfig, Limits, ServerConfig  # noqa: E402
from bridge.fanout import InMemoryHub  # noqa: E402
from bridge.server import BridgeServer  # noqa: E402


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- client process --------------------------------------------------------------------------


async def run_clients(url: str, count: int, stall: float, seconds: float) -> None:
    from websockets.asyncio.client import connect

    raise_nofile()
    conns = []
    for _ in range(count):
        ws = await connect(url, compression=None, ping_interval=None, max_queue=None)
        await ws.send('{"type":"hello","token":"b"}')
        await ws.recv()
        await ws.send('{"type":"subscribe","id":1,"topics":["bus0/*"]}')
        await ws.recv()
        conns.append(ws)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stalled = set(range(int(count * stall)))
    lat: dict[str, list[float]] = {"healthy": [], "stalled": []}
    counts = [0] * count

    async def reader(i: int, ws: Any) -> None:
        if i in stalled:
            ws.transport.pause_reading()
            return
        try:
            async for raw in ws:
                now = time.time()
                data = json.loads(raw)
                for m in data if isinstance(data, list) else [data]:
                    if m.get("type") == "frame":
                        counts[i] += 1
                        if m.get("data") == "lat":
                            lat["healthy"].append(now - m["ts"])
        except Exception:
            pass

    tasks = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(conns)]
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    del line
    for t in tasks:
        t.cancel()
    out = {"p99_ms": p99(lat["healthy"]), "samples": len(lat["healthy"]), "received": sum(counts)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)


# -- server side -----------------------------------------------------------------------------


class _NoBus:
    """The benchmark publishes directly; clients only subscribe."""

    name = "bus0"
    up = True

    def snapshot(self) -> dict[str, Any]:
        return {}

    def idle(self) -> bool:
        return True


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.hub = InMemoryHub(history_size=1024)
        self.hub.add_bus("bus0", 1)
        cfg = BridgeConfig(
            server=ServerConfig(port=0),
            limits=Limits(
                max_clients=100_000, ping_interval_s=0, heartbeat_s=3600, batch_messages=16
            ),
            buses=(BusConfig("bus0", "none"),),
        )
        self.server = BridgeServer(cfg, self.hub, {"bus0": _NoBus()})  # type: ignore[dict-item]
        self.url = ""

    async def start(self) -> None:
        host, port = await self.server.start("127.0.0.1", 0)
        self.url = f"ws://{host}:{port}/ws"

    async def spawn(self, count: int, stall: float = 0.0) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--role",
            "clients",
            "--url",
            self.url,
            "--count",
            str(count),
            "--stall",
            str(stall),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        assert line.strip() == b"ready", line
        return proc

    async def finish(self, proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        await proc.wait()
        return json.loads(line)  # type: ignore[no-any-return]

    async def drained(self) -> None:
        while any(len(c.session) for c in self.server.conns.values()):
            await asyncio.sleep(0.001)

    async def fanout(self, messages: int) -> float:
        """CPU s per delivery through the bridge path: publish + writers until queues drain."""
        before = self.hub.stats.deliveries
        t0 = time.process_time()
        for i in range(messages):
            self.hub.publish(
                "bus0",
                {
                    "type": "frame",
                    "ts": time.time(),
                    "addr": 1,
                    "cmd": 3,
                    "dir": "rx",
                    "data": f"{i:08x}",
                },
                time.time(),
            )
            if i % 16 == 15:
                await asyncio.sleep(0)
        await self.drained()
        delivered = self.hub.stats.deliveries - before
        assert delivered == messages * len(self.server.conns), delivered
        return (time.process_time() - t0) / delivered

    async def naive(self, messages: int) -> float:
        conns = [c.ws for c in self.server.conns.values()]
        t0 = time.process_time()
        for i in range(messages):
            msg = {
                "type": "frame",
                "bus": "bus0",
                "seq": i,
                "epoch": 1,
                "ts": time.time(),
                "addr": 1,
                "cmd": 3,
                "dir": "rx",
                "data": f"{i:08x}",
            }
            for ws in conns:
                await ws.send(json.dumps(msg))
        return (time.process_time() - t0) / (messages * len(conns))

    async def latency(self, seconds: float, rate: float) -> None:
        n = int(seconds * rate)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            now = time.time()
            self.hub.publish(
                "bus0",
                {"type": "frame", "ts": now, "addr": 1, "cmd": 3, "dir": "rx", "data": "lat"},
                now,
            )


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100)[98] * 1000


async def main(args: argparse.Namespace) -> None:
    raise_nofile()
    logging.basicConfig(level=logging.ERROR)
    rows: list[list[str]] = []
    b = Bench(args)
    await b.start()

    # 1. memory per idle connection
    import gc

    gc.collect()
    before = rss_kib()
    proc = await b.spawn(args.clients)
    gc.collect()
    per = (rss_kib() - before) / args.clients
    rows.append(
        [
            f"RSS per idle client ({args.clients} clients)",
            f"{per:.1f} KiB",
            "<= 25 KiB",
            "ok" if per <= 25 else "MISSED",
        ]
    )

    # 2. fan-out CPU cost, interleaved with the naive loop
    ours, naive = [], []
    for _ in range(3):
        ours.append(await b.fanout(args.messages))
        naive.append(await b.naive(max(1, args.messages // 4)))
    rate, nrate = 1 / statistics.median(ours), 1 / statistics.median(naive)
    rows.append(
        [
            "fan-out deliveries / server CPU-s",
            f"{rate / 1000:.0f}k",
            ">= 400k",
            "ok" if rate >= 400_000 else "MISSED",
        ]
    )
    rows.append(["naive per-client await send", f"{nrate / 1000:.0f}k", "", ""])
    rows.append(
        [
            "speed-up vs naive",
            f"{rate / nrate:.1f}x",
            ">= 2x",
            "ok" if rate >= 2 * nrate else "MISSED",
        ]
    )
    await b.finish(proc)
    await b.server.close()

    base = float("nan")
    # 3. latency with N subscribed clients at 100 frames/s, then with 10 % stalled
    for stall in (0.0, 0.1):
        b = Bench(args)
        await b.start()
        proc = await b.spawn(args.latency_clients, stall)
        await b.latency(args.seconds, 100.0)
        await asyncio.sleep(0.5)
        res = await b.finish(proc)
        value = res["p99_ms"]
        label = f"p99 latency, {args.latency_clients} clients @100 fps" + (
            ", 10% stalled" if stall else ""
        )
        if stall:
            ratio = value / base if base else float("nan")
            rows.append(
                [
                    label,
                    f"{value:.1f} ms ({ratio:.2f}x)",
                    "<= 1.5x",
                    "ok" if ratio <= 1.5 else "MISSED",
                ]
            )
        else:
            base = value
            rows.append([label, f"{value:.1f} ms", "<= 20 ms", "ok" if value <= 20 else "MISSED"])
        await b.server.close()
    print(markdown_table(["measure", "value", "target", ""], rows))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--role", default="server")
    p.add_argument("--url", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--stall", type=float, default=0.0)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--latency-clients", type=int, default=1000)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args()
    if a.role == "clients":
        asyncio.run(run_clients(a.url, a.count, a.stall, a.seconds))
    else:
        asyncio.run(main(a))
