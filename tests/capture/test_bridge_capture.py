"""The bridge side: ``[bus.capture]`` config and recording a live bus; replay URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.client import BridgeClient
from bridge.config import (
    BridgeConfig,
    BusConfig,
    CaptureConfig,
    DeviceConfig,
    HistoryConfig,
    ServerConfig,
    parse_config,
)
from bridge.errors import ConfigError
from bridge.replay import ReplayMaster, parse_replay_url
from firmware_sim.bus import SimulatedBus
from frames.events import TrafficEvent
from frames.io.capture import read_capture

from ..bridge.conftest import make_limits, sim_bridge_config


def test_capture_table_is_parsed_and_checked(tmp_path: Path) -> None:
    raw = {"bus": [{"name": "b", "url": "/dev/null", "capture": {"dir": "caps", "keep": 3}}]}
    cfg = parse_config(raw, base=tmp_path)
    assert cfg.buses[0].capture == CaptureConfig(dir=str(tmp_path / "caps"), keep=3)
    assert parse_config({"bus": [{"name": "b", "url": "x"}]}).buses[0].capture is None
    for bad, key in (
        ({"dir": "d", "max_bytes": 0}, "max_bytes"),
        ({"dir": "d", "kept": 1}, "kept"),
        ({"keep": 2}, "dir"),
        ({"dir": "d", "max_age_s": "1h"}, "max_age_s"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_config({"bus": [{"name": "b", "url": "x", "capture": bad}]})


def test_replay_urls() -> None:
    assert parse_replay_url("replay:///tmp/a%20b.pcapng?speed=10&loop=1") == (
        Path("/tmp/a b.pcapng"), 10.0, True
    )  # fmt: skip
    assert parse_replay_url("replay:///x.pcapng?speed=max")[1] == 0.0
    assert parse_replay_url("replay:///x.pcapng")[1:] == (1.0, False)
    for bad in ("replay://", "replay:///x?speed=fast", "replay:///x?speed=-1"):
        with pytest.raises(ConfigError):
            parse_replay_url(bad)


async def test_a_missing_capture_leaves_the_bus_down(tmp_path: Path) -> None:
    events: list[TrafficEvent] = []
    master = ReplayMaster(f"replay://{tmp_path}/none.pcapng", on_traffic=events.append)
    await master.open()
    assert not master.connected and events == []
    await master.close()


async def test_a_recorded_bus_replays_into_another_bridge(tmp_path: Path) -> None:
    caps = tmp_path / "caps"
    async with SimulatedBus(2, "thermo", link=tmp_path / "sim") as sim:
        config = sim_bridge_config(
            sim.url, "rec", poll_s=0.02, timeout_s=0.2, capture=CaptureConfig(dir=str(caps))
        )
        async with Bridge(config) as bridge, BridgeClient(bridge.ws_url) as client:
            await client.subscribe(["bus0/*"])
            rx = 0
            while rx < 10:
                msg = await client.recv(5)
                rx += msg["type"] == "frame" and msg["dir"] == "rx"
    (path,) = caps.glob("bus0-*.pcapng")
    recs = list(read_capture(path))
    assert {r.direction for r in recs} == {"tx", "rx"}
    assert sum(r.direction == "rx" and r.ok for r in recs) >= 10
    assert all(r.frame is not None and r.frame.addr in (1, 2) for r in recs)

    replay = BridgeConfig(
        server=ServerConfig(host="127.0.0.1", port=0, node="play"),
        limits=make_limits(),
        history=HistoryConfig(size=4096),
        buses=(
            BusConfig("bus0", f"replay://{path}?speed=max", devices=(DeviceConfig(1, "thermo"),)),
        ),
    )
    async with Bridge(replay) as bridge:
        master = bridge.buses["bus0"].master
        assert isinstance(master, ReplayMaster)
        await asyncio.wait_for(master.finished.wait(), 5)
        assert master.played == len(recs)
        state = bridge.buses["bus0"].snapshot()
    assert state["1"]["values"]["temperature"]["value"] is not None
