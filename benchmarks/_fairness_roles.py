"""The child-process roles of ``benchmarks/fairness.py``: the flooding tenant and the probe
(the calm tenant and an observer of the bus's frames). Each answers its parent in one JSON line
per command read from stdin; the orchestration stays in ``fairness.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

TOKENS = {"calm": "calm-secret", "flood": "flood-secret", "ops": "ops-secret"}
CALM_ADDR, FLOOD_ADDRS = 1, (3, 4)
READ_ONE = {"start": 0, "count": 1}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def request(rid: int, addr: int) -> str:
    msg = {"type": "request", "id": rid, "bus": "bus0", "addr": addr, "cmd": "read_regs"}
    return json.dumps({**msg, "args": READ_ONE})


async def hello(url: str, tenant: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(url, compression=None, ping_interval=None, max_queue=None)
    await ws.send(json.dumps({"type": "hello", "token": TOKENS[tenant]}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


def messages(raw: str | bytes) -> list[dict[str, Any]]:
    data = json.loads(raw)
    return data if isinstance(data, list) else [data]


async def command() -> str:
    """The next command from the parent ("quit" at EOF: the parent is gone)."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip() or "quit"


# -- the flood -------------------------------------------------------------------------------


async def run_flood(args: argparse.Namespace) -> None:
    conns = [await hello(args.url, "flood") for _ in range(args.flood_conns)]
    on = asyncio.Event()
    outcomes: dict[str, int] = {}
    outstanding = [0]
    ids = iter(range(1, 1 << 62))

    async def send(ws: Any) -> None:
        outstanding[0] += 1
        await ws.send(request(next(ids), FLOOD_ADDRS[outstanding[0] % 2]))

    async def pump(ws: Any) -> None:
        async for raw in ws:
            for m in messages(raw):
                if m.get("type") != "reply":
                    continue
                outstanding[0] -= 1
                key = "ok" if m["ok"] else m["error"]["code"]
                outcomes[key] = outcomes.get(key, 0) + 1
                if on.is_set():
                    await send(ws)

    tasks = [asyncio.create_task(pump(ws)) for ws in conns]
    emit({"ready": len(conns)})
    while (line := await command()) != "quit":
        if line == "start":
            outcomes.clear()
            on.set()
            for ws in conns:
                for _ in range(args.flood_depth):
                    await send(ws)
            emit({"started": True})
        elif line == "stop":
            on.clear()
            deadline = time.monotonic() + args.timeout
            while outstanding[0] > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # draining: the bus answers within milliseconds
            emit({"outcomes": dict(outcomes), "outstanding": outstanding[0]})
    for t in tasks:
        t.cancel()


# -- the probe -------------------------------------------------------------------------------


async def run_probe(args: argparse.Namespace) -> None:
    calm = await hello(args.url, "calm")
    ops = await hello(args.url, "ops")
    await ops.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus0/*"]}))
    frames: list[tuple[float, str, int, str]] = []  # (ts, dir, addr, data hex)

    async def observe() -> None:
        async for raw in ops:
            for m in messages(raw):
                if m.get("type") == "frame":
                    frames.append((m["ts"], m["dir"], m["addr"], m["data"]))

    observer = asyncio.create_task(observe())
    rng = random.Random(1)
    rid = 0
    emit({"ready": True})
    while (line := await command()) != "quit":
        n = int(line.split()[1])
        frames.clear()
        sends: list[float] = []
        lat: list[float] = []
        errors = 0
        for _ in range(n):
            await asyncio.sleep(rng.uniform(0.5, 1.5) / args.rate)
            rid += 1
            sends.append(time.time())
            t0 = time.perf_counter()
            await calm.send(request(rid, CALM_ADDR))
            m = await reply_to(calm, rid, args.timeout)
            if m["ok"]:  # a refused request (busy) never reached the wire
                lat.append(time.perf_counter() - t0)
            else:
                sends.pop()
                errors += 1
        deadline = time.monotonic() + 5.0
        while len(own_frames(frames, sends[-1:])) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the observer's copy of our last frame is on its way
        ahead, own_ms = transactions_ahead(frames, sends)
        emit({"lat": lat, "ahead": ahead, "own_ms": own_ms, "errors": errors})
    observer.cancel()


async def reply_to(ws: Any, rid: int, timeout: float) -> dict[str, Any]:
    while True:
        for m in messages(await asyncio.wait_for(ws.recv(), timeout)):
            if m.get("type") == "reply" and m.get("id") == rid:
                return m


def own_frames(frames: list[tuple[float, str, int, str]], sends: list[float]) -> list[float]:
    """The bus's stamps of the probe's request frames, one per send (the first after it)."""
    from frames import STANDARD

    code = STANDARD.resolve_code("read_regs")
    read_one_hex = STANDARD.get(code).encode_request(READ_ONE).hex()
    mine = [
        ts
        for ts, d, addr, data in frames
        if d == "tx" and addr == CALM_ADDR and data == read_one_hex
    ]
    out, i = [], 0
    for sent in sends:
        while i < len(mine) and mine[i] < sent:
            i += 1
        if i < len(mine):
            out.append(mine[i])
            i += 1
    return out


def transactions_ahead(
    frames: list[tuple[float, str, int, str]], sends: list[float]
) -> tuple[list[int], list[float]]:
    """Per request: transactions that ended (rx frames) between its send and its own tx frame;
    and its own transaction's bus time (its tx frame to the next rx frame of its device)."""
    ends = sorted(ts for ts, d, _addr, _data in frames if d == "rx")
    replies = sorted(ts for ts, d, addr, _data in frames if d == "rx" and addr == CALM_ADDR)
    ahead, own = [], []
    for sent, tx in zip(sends, own_frames(frames, sends), strict=False):
        ahead.append(sum(1 for ts in ends if sent < ts < tx))
        rx = next((ts for ts in replies if ts > tx), None)
        if rx is not None:
            own.append((rx - tx) * 1000)
    return ahead, own
