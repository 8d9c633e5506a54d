"""Issue 10 over the real simulator: one client cannot freeze a bus, noise cannot flood history.

Assertions are about what went over the wire, in order (the bus's own seqs), not about wall
clock durations: "another client's request waits for at most one of the flooder's
transactions", "polls run between the flooder's transactions".
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.client import BridgeClient
from bridge.config import (
    BridgeConfig,
)
from firmware_sim.bus import SimulatedBus

from .conftest import metric, sim_bridge_config

ABSENT = 77  # no device answers there, and it is not configured


def bridge_config(sim: SimulatedBus, poll_s: float, **bus: Any) -> BridgeConfig:
    return sim_bridge_config(
        sim.url, "limits", poll_s=poll_s, history=1024, names=("boiler",), **bus
    )


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimulatedBus]:
    async with SimulatedBus(count=2, profile="thermo", link=tmp_path / "ttyLIMITS") as bus:
        yield bus


async def ask(client: BridgeClient, addr: int, timeout_s: float) -> dict[str, Any]:
    msg = {"type": "request", "bus": "bus0", "addr": addr, "cmd": "identify"}
    return await client.call({**msg, "timeout_s": timeout_s}, 15.0)


async def test_a_client_of_slow_requests_cannot_freeze_polling_or_other_clients(
    sim: SimulatedBus,
) -> None:
    cfg = bridge_config(sim, 0.05, max_timeout_s=0.5, client_requests=3)
    async with (
        Bridge(cfg) as bridge,
        BridgeClient(bridge.ws_url) as flooder,
        BridgeClient(bridge.ws_url) as other,
        BridgeClient(bridge.ws_url) as watcher,
    ):
        await watcher.subscribe(["bus0/*"])
        # over the bus's cap: refused at once, never put on the wire
        refused = await asyncio.wait_for(ask(flooder, ABSENT, 10), 2.0)
        assert refused["error"]["code"] == "bad_request" and "0.5" in refused["error"]["message"]
        # the flooder fills its share of in-flight requests; one more is busy
        flood = [asyncio.create_task(ask(flooder, ABSENT, 0.5)) for _ in range(3)]
        seen: list[dict[str, Any]] = []
        while True:  # its first request is on the wire
            seen.append(msg := await watcher.recv(5))
            if msg["type"] == "frame" and msg["dir"] == "tx" and msg["addr"] == ABSENT:
                break
        assert (await ask(flooder, ABSENT, 0.5))["error"]["code"] == "busy"
        asked_at = bridge.hub.position("bus0").seq
        echo = {"type": "request", "bus": "bus0", "addr": 1, "cmd": "echo", "data": "beef"}
        mine = await other.call({**echo, "timeout_s": 0.5}, 15.0)
        assert mine["ok"] is True and mine["data"] == "beef"
        assert [r["error"]["code"] for r in await asyncio.gather(*flood)] == ["timeout"] * 3
        # what went over the wire, in order
        end = bridge.hub.position("bus0").seq
        while seen[-1].get("seq", 0) < end:
            seen.append(await watcher.recv(5))
        sent = [m for m in seen if m["type"] == "frame" and m["dir"] == "tx"]
        tx = [(m["seq"], m["addr"]) for m in sent]
        flood_at = [i for i, (_, addr) in enumerate(tx) if addr == ABSENT]
        assert len(flood_at) == 3
        for a, b in itertools.pairwise(flood_at):  # polling went on between
            assert {addr for _, addr in tx[a + 1 : b]} >= {1, 2}, tx
        # the other client waited for at most the flood request already on the wire
        other_at = next(i for i, m in enumerate(sent) if m["data"] == "beef")
        assert sent[other_at]["seq"] > asked_at
        assert sum(1 for i in flood_at if tx[i][0] > asked_at and i < other_at) == 0, tx
        state = await watcher.state()
        assert sorted(state["buses"]["bus0"]["devices"]) == ["1", "2"]  # 77 did not become one


async def test_requests_to_unconfigured_addresses_add_no_device_to_state(
    sim: SimulatedBus,
) -> None:
    async with (
        Bridge(bridge_config(sim, 1.0)) as bridge,
        BridgeClient(bridge.ws_url) as client,
    ):
        assert (await ask(client, ABSENT, 0.1))["error"]["code"] == "timeout"
        state = await client.state()
        assert sorted(state["buses"]["bus0"]["devices"]) == ["1", "2"]


async def test_a_noise_line_leaves_the_history_a_minute_of_cover(sim: SimulatedBus) -> None:
    """0xAA at the full 115200-baud byte rate for 2 s: count the history entries it makes.

    Fails on the old code: every read with CRC errors in it was one ``crc_error`` event."""
    async with (
        Bridge(bridge_config(sim, 0.5)) as bridge,
        BridgeClient(bridge.ws_url) as client,
    ):
        await client.subscribe(["bus0/*"])
        while (await client.recv(5)).get("dir") != "rx":  # polling runs
            pass
        pty = sim._pty
        assert pty is not None
        loop = asyncio.get_running_loop()
        crc_before = metric(bridge.metrics, "framebridge_crc_errors_total", bus="bus0")
        seq_before = bridge.hub.position("bus0").seq
        start = loop.time()
        duration, rate = 2.0, 115200 // 10  # bytes per second on the wire
        sent = 0
        while (elapsed := loop.time() - start) < duration:
            due = int(elapsed * rate) - sent
            if due > 0:
                with_room = os.write(pty.master, b"\xaa" * due)
                sent += with_room
            # pacing the noise, not waiting for a result: ~230 bytes per read, 50 reads a second
            # (a read that ends in a silence longer than the idle flush gives up its tail)
            await asyncio.sleep(0.02)
        elapsed = loop.time() - start
        entries = bridge.hub.position("bus0").seq - seq_before
        crc = metric(bridge.metrics, "framebridge_crc_errors_total", bus="bus0") - crc_before
        assert crc >= 100, f"the noise did not reach the bridge ({sent} bytes, {crc} errors)"
        per_s = entries / elapsed
        assert per_s * 60 <= 1024, f"{entries} history entries in {elapsed:.1f}s of noise"


async def test_each_link_change_is_logged_once_at_info(
    sim: SimulatedBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.buses")
    async with (
        Bridge(bridge_config(sim, 1.0)) as bridge,
        BridgeClient(bridge.ws_url) as client,
    ):
        await client.subscribe(["bus0/*"])
        await sim.unplug()
        while (await client.recv(5)).get("event") != "bus_down":
            pass
        await sim.replug()
        while (await client.recv(5)).get("event") != "bus_up":
            pass
    changes = [
        (r.levelno, r.getMessage().split()[0])
        for r in caplog.records
        if r.name == "bridge.buses" and r.getMessage().startswith("event=bus_")
    ]
    assert changes == [
        (logging.INFO, "event=bus_up"),
        (logging.WARNING, "event=bus_down"),
        (logging.INFO, "event=bus_up"),
    ]
