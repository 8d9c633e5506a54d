"""Round-robin by tenant on a real bus: a tenant flooding it does not starve another."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from bridge.app import Bridge
from firmware_sim.bus import SimulatedBus
from tests.bridge.conftest import recv

from .conftest import build, client, tenants_config

log = logging.getLogger("tests.tenants.fairness")

SAMPLES = 100
FLOODERS = 4  # connections of the flooding tenant ...
IN_FLIGHT = 4  # ... each keeping this many requests queued


@pytest.fixture
async def fair_bridge(sim: SimulatedBus) -> AsyncIterator[Bridge]:
    raw = tenants_config(sim.url)
    raw["tenant"][0]["tier"] = "big"  # the calm tenant: no rate limit in the way
    async with Bridge(build(raw)) as b:
        yield b


def req(rid: int, addr: int) -> str:
    msg = {"type": "request", "id": rid, "bus": "bus0", "addr": addr, "cmd": "read_regs"}
    return json.dumps({**msg, "args": {"start": 0, "count": 1}})


async def latencies(ws: ClientConnection, n: int, first_id: int) -> list[float]:
    out = []
    for rid in range(first_id, first_id + n):
        t0 = time.perf_counter()
        await ws.send(req(rid, 1))
        while not ((msg := await recv(ws))["type"] == "reply" and msg.get("id") == rid):
            pass
        assert msg["ok"] is True, msg
        out.append(time.perf_counter() - t0)
    return out


async def flood(ws: ClientConnection, stop: asyncio.Event, sent: list[int]) -> None:
    rid = 0
    for _ in range(IN_FLIGHT):
        rid += 1
        await ws.send(req(rid, 3 + rid % 2))
    while not stop.is_set():
        msg = await recv(ws)
        if msg["type"] == "reply":
            rid += 1
            sent[0] += 1
            await ws.send(req(rid, 3 + rid % 2))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))]


def queue_waits(bridge: Bridge) -> list[float]:
    """Record, for the calm tenant's requests, the time from ``submit`` to the bus owner taking
    the request for the wire: the scheduler's share of the latency, without the event loop's
    client-side work (one process runs simulator, bridge and every client here)."""
    owner: Any = bridge.buses["bus0"]
    submitted: dict[int, float] = {}
    waits: list[float] = []
    submit, take = owner.submit, owner._take

    def timed_submit(request: Any, client: str = "") -> Any:
        if client.startswith("tenant:acme/"):
            submitted[id(request)] = time.perf_counter()
        return submit(request, client=client)

    def timed_take(source: str) -> Any:
        pending = take(source)
        t0 = submitted.pop(id(pending.request), None)
        if t0 is not None:
            waits.append(time.perf_counter() - t0)
        return pending

    owner.submit, owner._take = timed_submit, timed_take
    return waits


async def test_a_flooding_tenant_does_not_starve_another(fair_bridge: Bridge) -> None:
    waits = queue_waits(fair_bridge)
    calm, _ = await client(fair_bridge, "acme")
    await latencies(calm, 20, 1)  # warm up (identify, first polls)
    unloaded = await latencies(calm, SAMPLES, 100)
    queued_unloaded = list(waits)
    waits.clear()
    flooders = [(await client(fair_bridge, "globex"))[0] for _ in range(FLOODERS)]
    stop = asyncio.Event()
    served = [0]
    tasks = [asyncio.create_task(flood(ws, stop, served)) for ws in flooders]
    await asyncio.sleep(0)  # the flood's first requests are queued before ours
    while served[0] < FLOODERS:  # bounded: the bus serves them within milliseconds
        await asyncio.wait(tasks, timeout=0.05)
    loaded = await latencies(calm, SAMPLES, 1000)
    queued_loaded = list(waits)
    stop.set()
    for ws in flooders:
        await ws.close()
    await asyncio.wait(tasks, timeout=5)
    ratio = p99(loaded) / p99(unloaded)
    summary = (
        f"unloaded p99 {p99(unloaded) * 1e3:.1f} ms, loaded p99 {p99(loaded) * 1e3:.1f} ms "
        f"(ratio {ratio:.2f}); medians {sorted(unloaded)[50] * 1e3:.1f} / "
        f"{sorted(loaded)[50] * 1e3:.1f} ms; flood replies meanwhile {served[0]}; "
        f"bus queue wait p99 {p99(queued_unloaded) * 1e3:.2f} -> {p99(queued_loaded) * 1e3:.2f} ms "
        f"(medians {sorted(queued_unloaded)[len(queued_unloaded) // 2] * 1e3:.2f} -> "
        f"{sorted(queued_loaded)[len(queued_loaded) // 2] * 1e3:.2f} ms)"
    )
    print(f"\nfairness: {summary}")
    log.warning("fairness: %s", summary)
    # In bus time ours waits for at most one flooder transaction (test_bus_time_latency_...
    # checks the 2x exactly, with a fake clock); here the simulator, the flood's clients and
    # the bridge share one event loop on a loaded 2-core machine, so CPU adds noise: the bound
    # is loose, and the figures are printed for the report.
    assert served[0] > SAMPLES  # the flood really ran during the measurement
    assert p99(loaded) < max(8 * p99(unloaded), 0.25), summary
    await calm.close()


def test_bus_time_latency_of_a_calm_tenant_stays_within_2x_under_a_flood() -> None:
    """The scheduler alone, in bus time (fake clock): one tenant keeps 16 connections' worth
    of 10 ms requests queued; the other's requests, arriving at random, wait at most one."""
    import random

    from bridge.schedule import PollJob, Scheduler

    rng = random.Random(7)

    def run(flood: bool) -> list[float]:
        sched = Scheduler([PollJob(a, 3, b"", 0.5) for a in (1, 2, 3, 4)], 0.0)
        now, waits = 0.0, []
        arrival = rng.uniform(0, 0.05)
        while len(waits) < 200:
            waiting = [f"tenant:flood/{i}" for i in range(16)] if flood else []
            if arrival <= now:
                waiting.append("tenant:calm/x")
            source = sched.pick(now, waiting)
            if source is None:  # idle: jump to the next arrival
                now = max(now, min(arrival, sched.next_time() or arrival))
                continue
            if source.startswith("<"):
                job = sched.due(now)
                assert job is not None
                sched.done(job, now + 0.005)
            cost = 0.01 if not source.startswith("<") else 0.005
            now += cost
            sched.charge(source, cost, now)
            if source == "tenant:calm/x":
                waits.append(now - arrival)
                arrival = now + rng.uniform(0, 0.05)
        return waits

    unloaded, loaded = p99(run(False)), p99(run(True))
    assert loaded <= 2.0 * unloaded + 1e-9, (unloaded, loaded)
