"""Master and AsyncMaster against firmware_sim's SimulatedBus: pty, socket://, faults, replug."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.bus import SimulatedBus
from firmware_sim.faults import FaultConfig
from firmware_sim.threaded import ThreadedSimulatedBus
from frames import DeviceError, Frame, LinkDown, Timeout
from frames.events import LinkStateChanged, TrafficEvent
from frames.io import AsyncMaster, Master

pytestmark = pytest.mark.timeout(30)

FAST: dict[str, Any] = {"timeout": 0.2, "retries": 2, "turnaround": 0.01}


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_every_command(transport: str) -> None:
    kw: dict[str, Any] = {"tcp": "127.0.0.1:0"} if transport == "tcp" else {}
    async with (
        SimulatedBus(count=3, profile="thermo", **kw) as bus,
        AsyncMaster(bus.url, reconnect=False, **FAST) as m,
    ):
        for addr in (1, 2, 3):
            info = await m.identify(addr)
            assert isinstance(info["model"], str) and info["register_count"] > 0
            assert await m.echo(addr, b"ping") == b"ping"
        n = (await m.identify(1))["register_count"]
        values = await m.read_registers(1, 0, n)
        assert len(values) == n
        with pytest.raises(DeviceError):
            await m.read_registers(1, n, 1)  # past the register map
        assert await m.request(0, "echo", b"all") == Frame(0, 2)  # broadcast: no reply
        assert m.stats.unexpected == 0


async def test_corrupted_replies_are_retried() -> None:
    async with (
        SimulatedBus(count=2, faults=FaultConfig(corrupt_byte=0.3), seed=3) as bus,
        AsyncMaster(bus.url, reconnect=False, timeout=0.2, retries=5) as m,
    ):
        for i in range(40):
            assert await m.echo(1 + i % 2, bytes([i])) == bytes([i])
        assert m.stats.crc_errors > 0 and m.stats.retries >= m.stats.crc_errors


async def test_silent_device_times_out_while_others_answer() -> None:
    async with SimulatedBus(count=3) as bus:
        bus.devices[2].faults = FaultConfig(drop_reply=1.0)
        async with AsyncMaster(bus.url, reconnect=False, **FAST) as m:
            results = await asyncio.gather(
                *(m.echo(a, b"x") for a in (1, 2, 3, 1, 3)), return_exceptions=True
            )
            assert [r for i, r in enumerate(results) if i != 1] == [b"x"] * 4
            assert isinstance(results[1], Timeout)


async def test_unplug_and_replug(tmp_path: Path) -> None:
    states: list[bool] = []
    back = asyncio.Event()

    def traffic(ev: TrafficEvent) -> None:
        if isinstance(ev, LinkStateChanged):
            states.append(ev.up)
            if ev.up and len(states) > 1:
                back.set()

    async with (
        SimulatedBus(count=2, link=tmp_path / "ttySIM") as bus,
        AsyncMaster(
            bus.url, reconnect_min=0.02, reconnect_max=0.1, on_traffic=traffic, **FAST
        ) as m,
    ):
        assert await m.echo(1, b"a") == b"a"
        await bus.unplug()
        with pytest.raises(LinkDown):
            # The loss shows up on the next I/O; a request in between fails or times out.
            for _ in range(20):
                try:
                    await m.echo(1, b"b")
                except Timeout:
                    continue
        await bus.replug()
        await asyncio.wait_for(back.wait(), 5)
        assert await m.echo(2, b"c") == b"c"
        assert states == [True, False, True]


async def test_concurrency_and_cancellation() -> None:
    async with (
        SimulatedBus(count=3, faults=FaultConfig(delay=0.02)) as bus,
        AsyncMaster(bus.url, reconnect=False, timeout=0.5) as m,
    ):
        tasks = [asyncio.create_task(m.echo(1 + i % 3, bytes([i]))) for i in range(12)]
        tasks[3].cancel()
        tasks[7].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(results):
            if i in (3, 7):
                assert isinstance(r, asyncio.CancelledError)
            else:
                assert r == bytes([i])
        assert m.stats.unexpected == 0


def test_sync_master_against_threaded_bus() -> None:
    with ThreadedSimulatedBus(count=2) as bus, Master(bus.url, **FAST) as m:
        assert m.identify(2)["register_count"] > 0
        assert m.echo(1, b"sync") == b"sync"
        with pytest.raises(Timeout):
            m.request(9, "echo", b"", timeout=0.05, retries=0)


def test_sync_master_over_tcp() -> None:
    with (
        ThreadedSimulatedBus(count=1, tcp="127.0.0.1:0") as bus,
        Master(bus.url, **FAST) as m,
    ):
        assert m.url.startswith("socket://")
        assert m.echo(1, b"tcp") == b"tcp"
