"""The whole bridge over the real simulator on a pty, with real websockets clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.client import BridgeClient
from firmware_sim.bus import SimulatedBus

from .conftest import sim_bridge_config


async def next_event(client: BridgeClient, name: str, timeout: float = 5.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await client.recv(max(0.01, deadline - loop.time()))
        if msg["type"] == "event" and msg["event"] == name:
            return msg


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimulatedBus]:
    async with SimulatedBus(count=2, profile="thermo", link=tmp_path / "ttyBRIDGE") as bus:
        yield bus


@pytest.fixture
async def bridge(sim: SimulatedBus) -> AsyncIterator[Bridge]:
    config = sim_bridge_config(
        sim.url,
        "e2e",
        poll_s=0.05,
        names=("boiler",),
        reconnect_min_s=0.02,
        reconnect_max_s=0.1,
    )
    async with Bridge(config) as b:
        yield b


async def test_polls_reach_clients_with_named_fields_and_state(bridge: Bridge) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/1"])
        while True:  # the first poll reply (an IDENTIFY reply may come first: skip it)
            msg = await client.recv(5)
            if msg["type"] == "frame" and msg["dir"] == "rx" and msg["cmd"] == 3:
                break
        assert msg["addr"] == 1
        assert "temperature" in msg["fields"]["named"]
        state = await client.state()
        dev = state["buses"]["bus0"]["devices"]["1"]
        assert dev["online"] is True and dev["name"] == "boiler"
        assert dev["values"]["temperature"]["unit"]


async def test_request_reply_and_errors_over_the_real_bus(
    bridge: Bridge, sim: SimulatedBus
) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        ok = await client.request("bus0", 2, "write_reg", args={"reg": 2, "value": 2300})
        assert ok["ok"] is True and ok["fields"] == {"reg": 2, "value": 2300}
        assert ok["rtt_ms"] > 0
        assert sim.devices[2].get("setpoint") == 23.0
        raw = await client.request("bus0", 2, 3, "020001")
        assert raw["ok"] and raw["fields"]["values"] == [2300]
        assert raw["fields"]["named"] == {"setpoint": 23.0}
        bad = await client.request("bus0", 2, "write_reg", args={"reg": 200, "value": 1})
        assert bad["ok"] is False and bad["error"]["code"] == "device_error"
        assert bad["error"]["device_code"] == 2
        gone = await client.request("bus0", 77, "identify")
        assert gone["error"]["code"] == "timeout"
        unknown = await client.request("bus0", 1, "frobnicate")
        assert unknown["error"]["code"] == "bad_request"


async def test_device_offline_and_online_events(bridge: Bridge, sim: SimulatedBus) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/2"])
        sim.devices[2].go_offline()
        off = await next_event(client, "device_offline")
        assert off["addr"] == 2 and off["bus"] == "bus0"
        sim.devices[2].go_online()
        on = await next_event(client, "device_online")
        assert on["addr"] == 2 and on["seq"] > off["seq"]


async def test_requests_beyond_the_queue_bound_get_busy(bridge: Bridge) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        replies = await asyncio.gather(
            *(client.request("bus0", 99, "identify") for _ in range(40)), return_exceptions=False
        )
        codes = [r["error"]["code"] for r in replies]
        # one client may have client_requests (4) queued or on the wire: the rest are busy
        assert (codes.count("timeout"), codes.count("busy")) == (4, 36)


async def test_adapter_unplug_and_replug(bridge: Bridge, sim: SimulatedBus) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/*"])
        await sim.unplug()
        down = await next_event(client, "bus_down")
        assert (await client.state())["buses"]["bus0"]["reason"]  # says why it is down
        reply = await client.request("bus0", 1, "identify")
        assert reply["error"]["code"] == "bus_down"
        await sim.replug()
        up = await next_event(client, "bus_up")
        assert up["seq"] > down["seq"]
        assert (await client.state())["buses"]["bus0"]["reason"] == ""
        while True:  # polling resumed
            msg = await client.recv(5)
            if msg["type"] == "frame" and msg["dir"] == "rx":
                break
        assert client.close_codes == []  # stayed connected throughout
        ok = await client.request("bus0", 1, "identify")
        assert ok["ok"] and ok["fields"]["model"]


async def test_state_carries_identity_register_map_and_error_counters(
    bridge: Bridge, sim: SimulatedBus
) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/1"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:  # the bus owner identifies a device once it has come online
            dev = (await client.state())["buses"]["bus0"]["devices"]["1"]
            if dev["model"] is not None or loop.time() > deadline:
                break
            await client.recv(1)  # let more traffic pass (bounded by the deadline)
        assert dev["model"] == sim.devices[1].profile.model
        assert dev["firmware"] == list(sim.devices[1].profile.firmware)
        assert isinstance(dev["uid"], int)
        regs = {r["name"]: r for r in dev["register_map"]}
        assert regs["setpoint"]["writable"] is True and regs["temperature"]["writable"] is False
        assert regs["temperature"]["unit"] == "°C"
        before = dev["errors"]["device_errors"]
        bad = await client.request("bus0", 1, "write_reg", args={"reg": 0, "value": 1})
        assert bad["error"]["code"] == "device_error"  # temperature is read-only
        after = (await client.state())["buses"]["bus0"]["devices"]["1"]["errors"]
        assert after["device_errors"] == before + 1


async def test_corrupted_replies_count_crc_errors_against_the_device(
    bridge: Bridge, sim: SimulatedBus
) -> None:
    from firmware_sim.faults import FaultConfig

    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/*"])
        sim.devices[2].faults = FaultConfig(corrupt_byte=1.0)  # every reply of addr 2 damaged
        event = await next_event(client, "crc_error")
        assert event["awaiting"] == 2 and event["count"] >= 1
        errors = (await client.state())["buses"]["bus0"]["devices"]["2"]["errors"]
        assert errors["crc_errors"] >= 1
        sim.devices[2].faults = FaultConfig()
        healthy = (await client.state())["buses"]["bus0"]["devices"]["1"]["errors"]
        assert healthy["crc_errors"] == 0


async def test_stop_lets_an_in_flight_request_finish_before_closing(
    bridge: Bridge, sim: SimulatedBus
) -> None:
    from bridge.errors import ClientClosed
    from firmware_sim.faults import FaultConfig

    async with BridgeClient(bridge.ws_url, reconnect=False) as client:
        await client.subscribe(["bus0/2"])
        sim.devices[2].faults = FaultConfig(delay=0.05)  # the reply takes a while
        asked = asyncio.create_task(client.request("bus0", 2, "echo", "c0ffee", timeout=5))
        while True:  # the request is on the wire once its tx frame is published
            msg = await client.recv(5)
            if msg["type"] == "frame" and msg["dir"] == "tx" and msg["data"] == "c0ffee":
                break
        await bridge.stop()
        reply = await asyncio.wait_for(asked, 5)
        assert reply["ok"] is True and reply["data"] == "c0ffee"
        with pytest.raises(ClientClosed):
            while True:
                await client.recv(5)
        assert client.close_codes == [1001]
