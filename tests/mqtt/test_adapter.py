"""bridge.mqtt without a broker: the principal of [mqtt] token and the bus's submit decide."""

from __future__ import annotations

import asyncio

from bridge.acl import TokenRule
from bridge.app import Bridge
from bridge.config import (
    BridgeConfig,
    BusConfig,
    DeviceConfig,
    MqttConfig,
    ServerConfig,
)


def make(token: str) -> Bridge:
    return Bridge(
        BridgeConfig(
            server=ServerConfig(
                port=0,
                tokens=(
                    TokenRule("ro", "wall", read_only=True),
                    TokenRule("other", "other", buses=frozenset({"bus1"})),
                    TokenRule("rw", "mqtt"),
                ),
            ),
            buses=(
                BusConfig("bus0", "socket://127.0.0.1:9", devices=(DeviceConfig(1, "io_board"),)),
                BusConfig("bus1", "socket://127.0.0.1:9"),
            ),
            mqtt=MqttConfig(url="mqtt://127.0.0.1:1", token=token),
        )
    )


def outcome(bridge: Bridge, name: str) -> float:
    value = bridge.metrics.registry.get_sample_value(
        "framebridge_mqtt_commands_total", {"outcome": name}
    )
    return 0.0 if value is None else value


async def test_read_only_and_other_bus_tokens_are_forbidden() -> None:
    for token in ("ro", "other"):
        bridge = make(token)
        assert bridge.mqtt is not None
        assert bridge.mqtt.command("framebridge/bus0/1/mode/set", b"manual") is None
        assert outcome(bridge, "forbidden") == 1


async def test_allowed_commands_go_through_the_bus_submit() -> None:
    bridge = make("rw")
    assert bridge.mqtt is not None and bridge.mqtt.principal.name == "mqtt"
    future = bridge.mqtt.command("framebridge/bus0/1/mode/set", b"manual")
    assert future is not None
    seen = asyncio.Event()
    future.add_done_callback(lambda _: seen.set())  # runs after the adapter's own callback
    await asyncio.wait_for(seen.wait(), 5)
    result = future.result()
    assert result["error"]["code"] == "bus_down"  # the bus owner was never started
    assert outcome(bridge, "bus_down") == 1 and outcome(bridge, "forbidden") == 0
