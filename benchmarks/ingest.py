"""Ingest benchmark: bridge CPU per bus transaction, with many buses and clients.

What one bridge process costs per transaction when it polls many buses as fast as their devices
answer and fans everything out: the request frame and the reply frame published (numbered,
serialized, kept in history), offered to every subscriber and written to their sockets. Goal
(issue 10): <= 100 µs of bridge CPU per transaction, i.e. one core carries >= 10,000
transactions/s, about 35 RS-485 buses at full 115200-baud wire rate.

Separate processes, so that only the bridge's CPU is counted:

* ``--role sims`` (``--sim-procs`` of them): ``--buses`` simulated buses on ptys in all
  (``--devices`` thermo devices each, unpaced: they answer as fast as they can), symlinked in
  a temp folder;
* ``--role clients``: ``--clients`` WebSocket clients subscribed to ``*`` that read and discard;
* this process: a real :class:`bridge.app.Bridge` polling every device with a 1 ms interval
  (always due: the bus is never idle). Its CPU (``time.process_time``, all its threads) over
  ``--seconds`` is divided by the transactions in that window (history seqs / 2: tx + rx).

    .venv/bin/python benchmarks/ingest.py                      # 8 buses x 4 devices, 10 clients
    .venv/bin/python benchmarks/ingest.py --profile            # and where the time goes

Every wait is bounded (``--timeout``) and every child is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/bridge.py is named like the package it measures: keep this folder off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

GOAL_US = 100.0


# -- child roles -------------------------------------------------------------------------------


async def run_sims(folder: Path, first: int, buses: int, devices: int) -> None:
    from firmware_sim.bus import SimulatedBus

    sims = [
        SimulatedBus(count=devices, profile="thermo", link=folder / f"tty{i}", name=f"sim{i}")
        for i in range(first, first + buses)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims:
            await stack.enter_async_context(sim)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def run_clients(url: str, clients: int, timeout: float) -> None:
    from websockets.asyncio.client import connect

    counts = [0] * clients

    async def one(i: int) -> None:
        async with connect(url, compression=None, max_size=None) as ws:
            await ws.send(json.dumps({"type": "hello", "token": "bench"}))
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
            while True:
                text = await ws.recv()
                counts[i] += len(text)

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    await asyncio.sleep(0.5)  # connected and subscribed: the orchestrator waits for this line
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"bytes": sum(counts)}), flush=True)


# -- the I/O-free part alone -------------------------------------------------------------------


def core_cost(devices: int, clients: int, transactions: int = 20000) -> dict[str, float]:
    """CPU µs per transaction of the bus's pure path alone, no port and no socket: traffic →
    messages (decode, name, book), publish (number, serialize, history) and the offers to
    ``clients`` sessions. The rest of the full figure is the master, asyncio and the writer."""
    from bridge.buses import load_register_maps
    from bridge.config import BusConfig, DeviceConfig
    from bridge.devices import DeviceBook
    from bridge.fanout import InMemoryHub
    from bridge.session import QueueLimits, Session
    from bridge.traffic import TrafficCore
    from frames import STANDARD, Frame
    from frames.events import FrameReceived, FrameSent

    cfg = BusConfig(
        "bus0", "none", devices=tuple(DeviceConfig(a, "thermo") for a in range(1, devices + 1))
    )
    maps = load_register_maps(cfg)
    book = DeviceBook([(d.addr, d.name, d.profile) for d in cfg.devices], maps)
    core = TrafficCore("bus0", STANDARD, book)
    hub = InMemoryHub()
    hub.add_bus("bus0", 1)
    sessions = [Session(f"s{i}", QueueLimits(), 0.0) for i in range(clients)]
    from bridge import contract as c

    for s in sessions:
        hub.fanout.set_topics(s, [c.parse_topic("*")])
    read = STANDARD.resolve_code("read_regs")
    count = len(next(iter(maps.values())))
    request = [Frame(a, read, bytes([0, 0, count])) for a in range(1, devices + 1)]
    replies = [
        [
            Frame(
                a,
                read,
                bytes([count]) + b"".join((v + k).to_bytes(2, "little") for k in range(count)),
            )
            for v in range(8)  # values change now and then, as a polled device's do
        ]
        for a in range(1, devices + 1)
    ]

    def run() -> None:
        for i in range(transactions):
            d = i % devices
            now = float(i)
            for msg in core.traffic(FrameSent(now, request[d]), now):
                hub.publish("bus0", msg, now)
            reply = replies[d][(i // (devices * 8)) % 8]  # a value changes every 8th poll
            for msg in core.traffic(FrameReceived(now, reply), now):
                hub.publish("bus0", msg, now)
            for msg in core.answered(d + 1, now):
                hub.publish("bus0", msg, now)
            if i % 32 == 31:
                for s in sessions:
                    s.take_batch()

    t0 = time.process_time()
    run()
    cpu = time.process_time() - t0
    return {"core_us_per_transaction": round(cpu / transactions * 1e6, 1)}


# -- the orchestrator (and the bridge) ---------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def ready(proc: subprocess.Popen[str], timeout: float) -> None:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), timeout)
    if line.strip() != "ready":
        raise RuntimeError(f"child failed to start: {line!r}")


def stop(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate("", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bridge.app import Bridge
    from bridge.config import (
        BridgeConfig,
        BusConfig,
        DeviceConfig,
        Limits,
        PollConfig,
        ServerConfig,
    )

    folder = Path(tempfile.mkdtemp(prefix="ingest-"))
    procs = max(1, min(args.sim_procs, args.buses))
    sims = [
        spawn(
            "--role",
            "sims",
            "--folder",
            str(folder),
            "--first",
            str(args.buses * k // procs),
            *common(args, buses=args.buses * (k + 1) // procs - args.buses * k // procs),
        )
        for k in range(procs)
    ]
    clients: subprocess.Popen[str] | None = None
    try:
        for sim in sims:
            await ready(sim, args.timeout)
        buses = tuple(
            BusConfig(
                f"bus{i}",
                str(folder / f"tty{i}"),
                timeout_s=0.1,
                retries=0,
                devices=tuple(DeviceConfig(a, "thermo") for a in range(1, args.devices + 1)),
                polls=(PollConfig("read_regs", interval_s=0.001),),
            )
            for i in range(args.buses)
        )
        config = BridgeConfig(
            server=ServerConfig(host="127.0.0.1", port=0, node="ingest"),
            limits=Limits(),
            buses=buses,
        )
        async with Bridge(config) as bridge:
            clients = spawn("--role", "clients", "--url", bridge.ws_url, *common(args))
            await ready(clients, args.timeout)
            await asyncio.sleep(args.warmup)  # the load runs; this only lets it settle
            names = [b.name for b in buses]
            seq0 = {n: bridge.hub.position(n).seq for n in names}
            out0 = bridge.hub.stats.deliveries
            profiler = cProfile.Profile() if args.profile else None
            t0, cpu0, times0 = time.monotonic(), time.process_time(), os.times()
            if profiler is not None:
                profiler.enable()
            await asyncio.sleep(args.seconds)  # the measured window
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
            times1 = os.times()
            user, system = times1.user - times0.user, times1.system - times0.system
            messages = sum(bridge.hub.position(n).seq - seq0[n] for n in names)
            deliveries = bridge.hub.stats.deliveries - out0
        client_out = stop(clients, args.timeout)
        clients = None
    finally:
        if clients is not None:
            stop(clients, args.timeout)
        for sim in sims:
            stop(sim, args.timeout)
    transactions = messages / 2
    result: dict[str, Any] = {
        "buses": args.buses,
        "devices": args.devices,
        "clients": args.clients,
        "wall_s": round(wall, 3),
        "bridge_cpu_s": round(cpu, 3),
        "messages": messages,
        "deliveries": deliveries,
        "transactions_per_s": round(transactions / wall, 1),
        "us_per_transaction": round(cpu / transactions * 1e6, 1) if transactions else None,
        "user_us_per_transaction": round(user / transactions * 1e6, 1) if transactions else None,
        "system_us_per_transaction": round(system / transactions * 1e6, 1)
        if transactions
        else None,
        "client_bytes": json.loads(client_out.strip().splitlines()[-1])["bytes"]
        if client_out.strip()
        else None,
    }
    if profiler is not None:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
        result["areas"] = areas(stats)
    return result


AREAS = [  # (area, substrings of the file or function name), first match wins
    (
        "hub: store, broker, local fan-out, session offers",
        (
            "bridge/store",
            "bridge/broker",
            "bridge/fanout",
            "bridge/local_fanout",
            "bridge/resume_wait",
            "bridge/history",
            "bridge/session",
        ),
    ),
    (
        "bus core: traffic → messages, device book",
        ("bridge/traffic", "bridge/devices", "bridge/schedule"),
    ),
    ("bus owner worker", ("bridge/buses",)),
    ("writer + server (batches to sockets)", ("bridge/writer", "bridge/server", "websockets")),
    ("master, codec (frames)", ("frames/",)),
    ("construct (decoding fields)", ("construct",)),
    ("json", ("json",)),
    ("socket send (kernel)", ("'send' of '_socket",)),
    ("pty write/read (kernel)", ("posix.write", "posix.read")),
    ("event loop, selectors", ("asyncio", "selectors", "epoll")),
    ("metrics", ("prometheus",)),
]


def areas(stats: pstats.Stats) -> dict[str, float]:
    """Own time (tottime) summed by area: where the bridge's CPU goes."""
    out: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (path, _, func), (_, _, tottime, _, _) in raw.items():
        name = f"{path}:{func}"
        area = next((a for a, keys in AREAS if any(k in name for k in keys)), "other")
        out[area] = out.get(area, 0.0) + tottime
    total = sum(out.values()) or 1.0
    return {a: round(100 * t / total, 1) for a, t in sorted(out.items(), key=lambda x: -x[1])}


def common(args: argparse.Namespace, buses: int | None = None) -> list[str]:
    return [
        "--buses",
        str(args.buses if buses is None else buses),
        "--devices",
        str(args.devices),
        "--clients",
        str(args.clients),
        "--timeout",
        str(args.timeout),
    ]


def report(result: dict[str, Any]) -> None:
    us = result["us_per_transaction"]
    met = "met" if us is not None and us <= GOAL_US else "NOT met"
    rows = [
        (
            "setup",
            f"{result['buses']} buses x {result['devices']} devices, "
            f"{result['clients']} clients on `*`",
        ),
        ("transactions/s (tx + rx published each)", f"{result['transactions_per_s']:.0f}"),
        ("deliveries in the window", str(result["deliveries"])),
        ("bridge CPU s / wall s", f"{result['bridge_cpu_s']} / {result['wall_s']}"),
        ("bridge CPU per transaction", f"{us} µs (goal <= {GOAL_US:.0f} µs: {met})"),
        (
            "of it, the pure path (traffic core + hub + offers; no I/O, same clients)",
            f"{result.get('core_us_per_transaction')} µs",
        ),
        (
            "of which user / system (kernel: pty and socket writes)",
            f"{result['user_us_per_transaction']} / {result['system_us_per_transaction']} µs",
        ),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if "profile" in result:
        print("\nWhere the bridge's time goes (cProfile own time, % by area):\n")
        print("| area | % |\n|---|---|")
        for area, pct in result["areas"].items():
            print(f"| {area} | {pct} |")
        print("\n" + result["profile"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--role", choices=["main", "sims", "clients"], default="main")
    p.add_argument("--buses", type=int, default=8)
    p.add_argument("--devices", type=int, default=4)
    p.add_argument("--sim-procs", type=int, default=4, help="processes the simulators run in")
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--folder", type=Path)
    p.add_argument("--url")
    args = p.parse_args()
    if args.role == "sims":
        asyncio.run(run_sims(args.folder, args.first, args.buses, args.devices))
    elif args.role == "clients":
        asyncio.run(run_clients(args.url, args.clients, args.timeout))
    else:
        result = asyncio.run(measure(args))
        result.update(core_cost(args.devices, args.clients))
        if args.json:
            print(json.dumps(result))
        else:
            report(result)


if __name__ == "__main__":
    main()
