"""The MQTT side against a real mosquitto, a real bridge and `framebridge sim`."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from bridge import contract as c
from bridge.app import Bridge
from bridge.client import BridgeClient
from tests.servers import MosquittoProcess

from .conftest import FRAMEBRIDGE, TIMEOUT, bridge_config, subscriber

pytestmark = pytest.mark.timeout(90)

CFG = "homeassistant/{}/framebridge_bus0_{}/{}/config"


def config(sub: Any, comp: str, addr: int, obj: str) -> dict[str, Any]:
    return json.loads(sub.latest[CFG.format(comp, addr, obj)])  # type: ignore[no-any-return]


def metric(bridge: Bridge, name: str, **labels: str) -> float:
    value = bridge.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def read_reg(bridge: Bridge, addr: int, reg: int) -> int:
    """Read a register of the simulated device over the wire (not from the bridge's book)."""
    req = c.Request("bus0", addr, "read_regs", args={"start": reg, "count": 1})
    reply = await asyncio.wait_for(bridge.buses["bus0"].submit(req, client="test"), TIMEOUT)
    assert reply["ok"], reply
    return int(reply["fields"]["values"][0])


async def test_subscriber_sees_discovery_and_values(
    bridge: Bridge, broker: MosquittoProcess
) -> None:
    relay = CFG.format("switch", 1, "alarm_relay")
    async with subscriber(broker.port) as first:
        await first.wait_for(
            lambda: relay in first.latest and "framebridge/bus0/2/uptime" in first.latest
        )
    async with subscriber(broker.port) as sub:
        await sub.wait_for(
            lambda: relay in sub.latest and "framebridge/bus0/2/uptime" in sub.latest
        )
        # a later subscriber gets them from the broker's store: retained
        assert sub.retained[relay] and sub.retained["framebridge/$availability"]
        assert sub.retained["framebridge/bus0/2/uptime"]
        assert sub.latest["framebridge/$availability"] == b"online"
        assert config(sub, "number", 1, "analog_out_0")["command_topic"] == (
            "framebridge/bus0/1/analog_out_0/set"
        )
        assert config(sub, "select", 1, "mode")["options"] == ["auto", "manual", "off"]
        assert config(sub, "sensor", 2, "analog_in_1")["unit_of_measurement"] == "V"
        assert config(sub, "binary_sensor", 1, "inputs_in2")["state_topic"] == (
            "framebridge/bus0/1/inputs/in2"
        )
        # device info from IDENTIFY: model, firmware, uid
        await sub.wait_for(
            lambda: "sw_version" in config(sub, "switch", 1, "alarm_relay")["device"]
        )
        device = config(sub, "switch", 1, "alarm_relay")["device"]
        assert device["model"] == "IO-8" and device["sw_version"] == "0.9.7"
        assert device["name"] == "panel" and device["serial_number"] == "494F0001"
        # values: named, scaled, in their unit; availability per device
        await sub.wait_for(lambda: "framebridge/bus0/1/$availability" in sub.latest)
        assert sub.latest["framebridge/bus0/1/$availability"] == b"online"
        assert sub.latest["framebridge/bus0/1/inputs/in0"] == b"ON"  # inputs = 5
        assert sub.latest["framebridge/bus0/1/mode"] == b"auto"
        volts = float(await sub.next_on("framebridge/bus0/1/analog_in_0"))
        assert 1.0 <= volts <= 4.0  # sine 2.5 +- 1 V (raw millivolts scaled by 0.001)
    assert metric(bridge, "framebridge_mqtt_connected") == 1.0


async def test_set_commands_reach_the_simulated_device(
    bridge: Bridge, broker: MosquittoProcess
) -> None:
    async with subscriber(broker.port) as sub:
        await sub.wait_for(lambda: bridge.mqtt is not None and bridge.mqtt.connected.is_set())
        await sub.wait_for(lambda: "framebridge/bus0/2/mode" in sub.latest)
        await sub.client.publish("framebridge/bus0/2/analog_out_0/set", "7.25")
        await sub.client.publish("framebridge/bus0/2/alarm_relay/set", "ON")
        await sub.client.publish("framebridge/bus0/2/mode/set", "manual")
        await sub.wait_for(
            lambda: (
                sub.latest.get("framebridge/bus0/2/mode") == b"manual"
                and sub.latest.get("framebridge/bus0/2/alarm_relay") == b"ON"
                and sub.latest.get("framebridge/bus0/2/analog_out_0") == b"7.25"
            )
        )
    # the device has them (read back over the serial line), scaled back to raw words
    assert await read_reg(bridge, 2, 4) == 7250
    assert await read_reg(bridge, 2, 8) == 1
    assert await read_reg(bridge, 2, 7) == 1
    assert metric(bridge, "framebridge_mqtt_commands_total", outcome="ok") == 3


async def test_broker_restart_resumes_values_and_republishes_retained(
    bridge: Bridge, broker: MosquittoProcess
) -> None:
    assert bridge.mqtt is not None
    async with subscriber(broker.port) as sub:
        await sub.wait_for(lambda: "framebridge/bus0/1/uptime" in sub.latest)
    broker.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while bridge.mqtt.connected.is_set():  # the adapter notices (bounded)
        assert loop.time() < deadline, "the adapter did not notice the broker going away"
        await asyncio.sleep(0.05)
    # WebSocket clients are served meanwhile
    async with BridgeClient(bridge.ws_url) as client:
        reply = await client.request("bus0", 1, "read_regs", args={"start": 7, "count": 1})
        assert reply["ok"], reply
    broker.start()  # same port, empty: persistence is off, every retained message is gone
    await asyncio.wait_for(bridge.mqtt.connected.wait(), TIMEOUT)
    relay = CFG.format("switch", 1, "alarm_relay")
    wanted = (relay, "framebridge/bus0/1/mode", "framebridge/bus0/2/$availability")
    async with subscriber(broker.port) as first:
        await first.wait_for(lambda: all(t in first.latest for t in wanted))
    async with subscriber(broker.port) as sub:
        await sub.wait_for(lambda: all(t in sub.latest for t in wanted))
        assert sub.retained[relay]  # republished by the bridge, retained again
        assert sub.latest["framebridge/$availability"] == b"online"
        first = int(await sub.next_on("framebridge/bus0/1/pulses"))  # values resume
        later = int(await sub.next_on("framebridge/bus0/1/pulses"))
        assert later > first
    assert metric(bridge, "framebridge_mqtt_connects_total") >= 2


BAD = [
    ("framebridge/bus0/1/analog_out_0/set", b"\xff\xfe"),
    ("framebridge/bus0/1/analog_out_0/set", b""),
    ("framebridge/bus0/1/analog_out_0/set", b"nan"),
    ("framebridge/bus0/1/analog_out_0/set", b"twelve"),
    ("framebridge/bus0/1/analog_out_0/set", b"99"),  # above max = 10
    ("framebridge/bus0/1/analog_out_0/set", b"7" * 5000),
    ("framebridge/bus0/1/analog_in_0/set", b"1"),  # read-only
    ("framebridge/bus0/1/nothing/set", b"1"),
    ("framebridge/bus0/99/mode/set", b"auto"),
    ("framebridge/nobus/1/mode/set", b"auto"),
    ("framebridge/bus0/1/mode/set", b"turbo"),
    ("framebridge/bus0/1/alarm_relay/set", b"{]"),
]


async def test_malformed_set_payloads_are_counted_not_fatal(
    bridge: Bridge, broker: MosquittoProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    assert bridge.mqtt is not None
    async with subscriber(broker.port) as sub:
        await asyncio.wait_for(bridge.mqtt.connected.wait(), TIMEOUT)
        await sub.wait_for(lambda: "framebridge/bus0/1/mode" in sub.latest)
        for _ in range(5):  # 60 bad commands: well over the log's burst
            for topic, payload in BAD:
                await sub.client.publish(topic, payload)
        await sub.client.publish("framebridge/bus0/1/outputs/set", "42")  # then a good one
        await sub.wait_for(lambda: sub.latest.get("framebridge/bus0/1/outputs") == b"42")
        # nothing else lost: values still flow, the connection was never dropped
        await sub.next_on("framebridge/bus0/1/uptime")
    assert await read_reg(bridge, 1, 1) == 42
    refused = {
        reason: metric(bridge, "framebridge_mqtt_commands_total", outcome=reason)
        for reason in ("bad_payload", "out_of_range", "read_only", "unknown_topic")
    }
    assert refused == {"bad_payload": 35, "out_of_range": 5, "read_only": 5, "unknown_topic": 15}
    assert metric(bridge, "framebridge_mqtt_commands_total", outcome="ok") == 1
    assert metric(bridge, "framebridge_mqtt_connects_total") == 1
    lines = [r for r in caplog.records if "mqtt_command_refused" in r.getMessage()]
    assert 0 < len(lines) <= bridge.config.limits.log_burst + 1  # rate-limited
    assert not any(r.exc_info for r in caplog.records)  # no traceback anywhere


async def test_a_device_that_left_the_config_is_removed(
    sim_url: str, broker: MosquittoProcess
) -> None:
    async with Bridge(bridge_config(sim_url, broker.url)) as first:
        assert first.mqtt is not None
        async with subscriber(broker.port) as sub:
            await sub.wait_for(lambda: CFG.format("select", 2, "mode") in sub.latest)
    two = bridge_config(sim_url, broker.url)
    bus = two.buses[0]
    one = type(two)(
        server=two.server,
        buses=(type(bus)(bus.name, bus.url, devices=bus.devices[:1], polls=bus.polls),),
        mqtt=two.mqtt,
    )
    stale = CFG.format("select", 2, "mode")
    async with subscriber(broker.port) as watcher:
        await watcher.wait_for(lambda: watcher.latest.get(stale))  # still there, retained
        async with Bridge(one) as second:
            assert second.mqtt is not None
            # the second bridge reads the first one's $retained list and clears device 2
            await watcher.wait_for(lambda: watcher.latest.get(stale) == b"")
            await watcher.wait_for(lambda: watcher.latest.get("framebridge/bus0/2/mode") == b"")
    async with subscriber(broker.port) as sub:
        await sub.client.publish("test/marker", "x")  # after every retained message
        await sub.wait_for(lambda: "test/marker" in sub.latest)
        assert CFG.format("switch", 1, "alarm_relay") in sub.latest
        assert "framebridge/bus0/1/mode" in sub.latest
        assert not any("framebridge_bus0_2" in t or "/bus0/2/" in t for t in sub.latest)


async def test_demo_mqtt_flag(broker: MosquittoProcess) -> None:
    async with subscriber(broker.port) as sub:
        proc = await asyncio.create_subprocess_exec(
            FRAMEBRIDGE,
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--devices",
            "1",
            "--mqtt",
            broker.url,
            "--duration",
            "20",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await sub.wait_for(lambda: "framebridge/bus0/1/temperature" in sub.latest, 20)
            assert "homeassistant/sensor/framebridge_bus0_1/temperature/config" in sub.latest
        finally:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
        # the graceful stop said offline (retained)
        await sub.wait_for(lambda: sub.latest.get("framebridge/$availability") == b"offline")


async def test_demo_refuses_a_bad_mqtt_url() -> None:
    proc = await asyncio.create_subprocess_exec(
        FRAMEBRIDGE,
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--mqtt",
        "http://127.0.0.1:1883",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert b"mqtt.url" in err and b"Traceback" not in err


async def test_mqtts_uses_tls(sim_url: str) -> None:
    config = bridge_config(sim_url, "mqtts://127.0.0.1:8883")
    tls = Bridge(config).mqtt._tls()  # type: ignore[union-attr]
    assert tls is not None and tls.verify_mode.name == "CERT_REQUIRED"
