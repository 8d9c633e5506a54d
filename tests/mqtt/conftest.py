"""A real mosquitto on a free port, `framebridge sim` in a subprocess, a real bridge in-process,
and a subscriber that remembers the latest message of each topic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from bridge.app import Bridge
from bridge.config import (
    BridgeConfig,
    BusConfig,
    DeviceConfig,
    MqttConfig,
    PollConfig,
    ServerConfig,
)
from tests.servers import MosquittoProcess, mosquitto_server

TIMEOUT = 10.0
FRAMEBRIDGE = str(Path(sys.executable).with_name("framebridge"))


@pytest.fixture
def broker() -> Iterator[MosquittoProcess]:
    with mosquitto_server() as server:
        yield server


@pytest.fixture
async def sim_url(tmp_path: Path) -> AsyncIterator[str]:
    """Two io_board devices (addresses 1, 2) served by `framebridge sim` on a pty."""
    proc = await asyncio.create_subprocess_exec(
        FRAMEBRIDGE,
        "sim",
        "--devices",
        "2",
        "--profile",
        "io_board",
        "--link",
        str(tmp_path / "ttySIM"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        assert line, "framebridge sim printed nothing"
        yield line.decode().split("\t")[0]
    finally:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), TIMEOUT)


def bridge_config(sim_url: str, mqtt_url: str, **mqtt: object) -> BridgeConfig:
    return BridgeConfig(
        server=ServerConfig(host="127.0.0.1", port=0, node="mqtt-test"),
        buses=(
            BusConfig(
                "bus0",
                sim_url,
                timeout_s=0.2,
                retries=1,
                devices=(DeviceConfig(1, "io_board", "panel"), DeviceConfig(2, "io_board")),
                polls=(PollConfig("read_regs", interval_s=0.1),),
            ),
        ),
        mqtt=MqttConfig(url=mqtt_url, reconnect_min_s=0.05, reconnect_max_s=0.5, **mqtt),  # type: ignore[arg-type]
    )


@pytest.fixture
async def bridge(sim_url: str, broker: MosquittoProcess) -> AsyncIterator[Bridge]:
    async with Bridge(bridge_config(sim_url, broker.url)) as b:
        yield b


@dataclass
class Subscriber:
    """Everything seen on ``#``: the latest payload per topic, and every message in order."""

    client: aiomqtt.Client
    latest: dict[str, bytes] = field(default_factory=dict)
    retained: dict[str, bool] = field(default_factory=dict)
    log: list[tuple[str, bytes]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async for msg in self.client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else b""
            topic = str(msg.topic)
            self.latest[topic] = payload
            self.retained[topic] = msg.retain
            self.log.append((topic, payload))
            self.changed.set()

    async def wait_for(self, check: Callable[[], object], timeout: float = TIMEOUT) -> None:
        """Until ``check()`` is true after some message (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting; topics seen: {sorted(self.latest)[:20]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def next_on(self, topic: str, timeout: float = TIMEOUT) -> bytes:
        """The next message on ``topic`` from now on."""
        start = len(self.log)
        await self.wait_for(lambda: any(t == topic for t, _ in self.log[start:]), timeout)
        return next(p for t, p in self.log[start:] if t == topic)


@contextlib.asynccontextmanager
async def subscriber(port: int, topic: str = "#") -> AsyncIterator[Subscriber]:
    async with aiomqtt.Client("127.0.0.1", port, timeout=TIMEOUT) as client:
        sub = Subscriber(client)
        await client.subscribe(topic)
        task = asyncio.create_task(sub.run())
        try:
            yield sub
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
