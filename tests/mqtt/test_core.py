"""bridge.mqtt_core: topics, payloads, discovery configs and /set parsing, without a broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.mqtt_core import (
    CommandRefused,
    DeviceSpec,
    MqttCore,
    component,
    expire_after,
    format_value,
    parse_set_payload,
)
from frames.devicemap import load_device_map
from frames.register import RegisterDef

IO = load_device_map("io_board")
PM = load_device_map("power_meter")


def core(**kw: Any) -> MqttCore:
    devices = [
        DeviceSpec("bus0", 1, IO.registers, "", IO.model, 30.0),
        DeviceSpec("bus.1", 7, PM.registers, "meter", PM.model, 0.0),
    ]
    return MqttCore(devices, **kw)


def reg(name: str, device: Any = IO) -> RegisterDef:
    found = device.find(name)
    assert found is not None
    return found  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("register", "expected"),
    [
        (RegisterDef(0, "a", "bool", writable=True), "switch"),
        (RegisterDef(0, "a", "bool"), "binary_sensor"),
        (RegisterDef(0, "a", "enum", writable=True, labels={0: "x"}), "select"),
        (RegisterDef(0, "a", "enum", labels={0: "x"}), "sensor"),
        (RegisterDef(0, "a", "enum", writable=True), "number"),  # no labels: a number
        (RegisterDef(0, "a", "u16", writable=True), "number"),
        (RegisterDef(0, "a", "f32", writable=True), "number"),
        (RegisterDef(0, "a", "i32"), "sensor"),
        (RegisterDef(0, "a", "bitfield", bits={0: "b"}), "binary_sensor"),
    ],
)
def test_component_from_register_type(register: RegisterDef, expected: str) -> None:
    assert component(register) == expected


def test_format_value() -> None:
    assert format_value(reg("alarm_relay"), True) == "ON"
    assert format_value(reg("alarm_relay"), False) == "OFF"
    assert format_value(reg("mode"), 1) == "manual"
    assert format_value(reg("mode"), 9) == "9"  # unlabelled value: the number
    assert format_value(reg("analog_in_0"), 2.5) == "2.5"
    assert format_value(reg("power_factor", PM), None) == "None"
    assert format_value(reg("uptime"), 12) == "12"


@pytest.mark.parametrize(
    ("name", "payload", "value", "words"),
    [
        ("analog_out_0", b"7.25", 7.25, (7250,)),
        ("analog_out_0", b" 10 ", 10, (10000,)),
        ("alarm_relay", b"ON", True, (1,)),
        ("alarm_relay", b"false", False, (0,)),
        ("mode", b"manual", 1, (1,)),
        ("mode", b"2", 2, (2,)),
        ("outputs", b"0x0f", 15, (15,)),
    ],
)
def test_set_payload_converts_back_to_words(
    name: str, payload: bytes, value: Any, words: tuple[int, ...]
) -> None:
    assert parse_set_payload(reg(name), payload) == (value, words)


def test_set_payload_two_word_register() -> None:
    wide = RegisterDef(10, "total", "u32", scale=0.1, writable=True)
    assert parse_set_payload(wide, b"6553.7") == (6553.7, (1, 1))
    floating = RegisterDef(10, "pf", "f32", writable=True, word_order="little")
    value, words = parse_set_payload(floating, b"0.5")
    assert value == 0.5 and words == (0x0000, 0x3F00)


def test_set_payload_bitfield_by_name() -> None:
    bits = RegisterDef(0, "io", "bitfield", writable=True, bits={0: "a", 3: "d"})
    assert parse_set_payload(bits, b'{"a": true, "d": true}') == (9, (9,))
    with pytest.raises(CommandRefused) as info:
        parse_set_payload(bits, b'{"zz": true}')
    assert info.value.reason == "out_of_range"


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("analog_in_0", b"1", "read_only"),
        ("analog_out_0", b"", "bad_payload"),
        ("analog_out_0", b"   ", "bad_payload"),
        ("analog_out_0", b"\xff\xfe", "bad_payload"),
        ("analog_out_0", b"abc", "bad_payload"),
        ("analog_out_0", b"nan", "bad_payload"),
        ("analog_out_0", b"1e999", "bad_payload"),
        ("analog_out_0", b"1.0001", "bad_payload"),  # finer than the scale
        ("analog_out_0", b"10.5", "out_of_range"),  # max = 10
        ("analog_out_0", b"-1", "out_of_range"),
        ("analog_out_0", b"9" * 300, "bad_payload"),
        ("alarm_relay", b"maybe", "bad_payload"),
        ("mode", b"turbo", "bad_payload"),
        ("mode", b"7", "out_of_range"),  # not one of the labels' values
        ("outputs", b"256", "out_of_range"),
        ("outputs", b"{}", "bad_payload"),
    ],
)
def test_bad_set_payloads_are_refused_with_a_reason(name: str, payload: bytes, reason: str) -> None:
    with pytest.raises(CommandRefused) as info:
        parse_set_payload(reg(name), payload)
    assert info.value.reason == reason


def test_command_topic_to_write() -> None:
    c = core()
    cmd = c.command("framebridge/bus0/1/analog_out_0/set", b"2.5")
    assert (cmd.bus, cmd.addr, cmd.cmd, cmd.args) == (
        "bus0",
        1,
        "write_reg",
        {"reg": 4, "value": 2500},
    )
    ok = c.command("framebridge/bus.1/7/energy/set", b"0")
    assert ok.args == {"reg": 4, "value": 0}
    for topic in (
        "framebridge/bus0/2/analog_out_0/set",  # no such device
        "framebridge/bus0/1/nope/set",
        "framebridge/bus0/x/mode/set",
        "other/bus0/1/mode/set",
        "framebridge/bus0/1/mode/get",
    ):
        with pytest.raises(CommandRefused) as info:
            c.command(topic, b"1")
        assert info.value.reason == "unknown_topic"


def test_two_word_command_uses_write_regs() -> None:
    wide = RegisterDef(10, "total", "u32", writable=True)
    c = MqttCore([DeviceSpec("b", 3, (wide,))])
    cmd = c.command("framebridge/b/3/total/set", b"70000")
    assert cmd.cmd == "write_regs" and cmd.args == {"start": 10, "values": [1, 4464]}


def discovery(c: MqttCore) -> dict[str, dict[str, Any]]:
    return {m.topic: json.loads(m.payload) for m in c.discovery_messages()}


def test_discovery_configs_per_register() -> None:
    d = discovery(core())
    base = "homeassistant/{}/framebridge_bus0_1/{}/config"
    switch = d[base.format("switch", "alarm_relay")]
    assert switch["command_topic"] == "framebridge/bus0/1/alarm_relay/set"
    assert switch["state_topic"] == "framebridge/bus0/1/alarm_relay"
    assert switch["availability"] == [
        {"topic": "framebridge/$availability"},
        {"topic": "framebridge/bus0/1/$availability"},
    ]
    assert switch["availability_mode"] == "all"
    assert switch["expire_after"] == 30
    assert switch["device"]["identifiers"] == ["framebridge_bus0_1"]
    assert switch["device"]["model"] == "IO-8"
    number = d[base.format("number", "analog_out_0")]
    assert (number["min"], number["max"], number["step"]) == (0, 10, 0.001)
    assert number["unit_of_measurement"] == "V" and number["device_class"] == "voltage"
    outputs = d[base.format("number", "outputs")]
    assert (outputs["min"], outputs["max"], outputs["step"]) == (0, 255, 1.0)
    select = d[base.format("select", "mode")]
    assert select["options"] == ["auto", "manual", "off"]
    sensor = d[base.format("sensor", "analog_in_0")]
    assert "command_topic" not in sensor and sensor["state_class"] == "measurement"
    bits = [t for t in d if "/binary_sensor/framebridge_bus0_1/inputs_" in t]
    assert len(bits) == 8
    in2 = d[base.format("binary_sensor", "inputs_in2")]
    assert in2["state_topic"] == "framebridge/bus0/1/inputs/in2"
    assert (in2["payload_on"], in2["payload_off"]) == ("ON", "OFF")
    # the meter: a named device, a counter, no expire_after (0 = never), a dotted bus name
    meter = d["homeassistant/sensor/framebridge_bus_1_7/energy_total/config"]
    assert meter["state_class"] == "total_increasing" and meter["device"]["name"] == "meter"
    assert "expire_after" not in meter
    assert meter["state_topic"] == "framebridge/bus.1/7/energy_total"


def test_no_discovery_when_disabled() -> None:
    c = core(discovery=False)
    assert c.discovery_messages() == []
    assert not any(t.startswith("homeassistant/") for t in c.owned)


def frame(addr: int, named: dict[str, Any], cmd: int = 3) -> dict[str, Any]:
    return {
        "type": "frame",
        "dir": "rx",
        "addr": addr,
        "cmd": cmd,
        "fields": {"values": [], "named": named},
    }


def test_values_published_on_change_and_refresh() -> None:
    c = core(refresh_s=10.0)
    out = c.bus_message("bus0", frame(1, {"analog_in_0": 2.5, "inputs": 5}), now=0.0)
    topics = {m.topic: m.payload for m in out}
    assert topics["framebridge/bus0/1/analog_in_0"] == "2.5"
    assert topics["framebridge/bus0/1/inputs"] == "5"
    assert topics["framebridge/bus0/1/inputs/in0"] == "ON"
    assert topics["framebridge/bus0/1/inputs/in1"] == "OFF"
    assert all(m.retain for m in out)
    assert c.bus_message("bus0", frame(1, {"analog_in_0": 2.5}), now=5.0) == []  # unchanged
    again = c.bus_message("bus0", frame(1, {"analog_in_0": 2.5}), now=10.0)  # refresh due
    assert [m.payload for m in again] == ["2.5"]
    changed = c.bus_message("bus0", frame(1, {"analog_in_0": 2.6}), now=11.0)
    assert [m.payload for m in changed] == ["2.6"]
    # frames that are not register replies, and unknown devices, publish nothing
    assert c.bus_message("bus0", {**frame(1, {"x": 1}), "dir": "tx"}, 0.0) == []
    assert c.bus_message("bus0", frame(9, {"analog_in_0": 1.0}), 0.0) == []
    assert c.bus_message("bus0", {**frame(1, {"mode": 1}), "kind": "late"}, 0.0) == []


def avail(out: list[Any]) -> dict[str, str]:
    return {m.topic: m.payload for m in out if m.topic.endswith("$availability")}


def test_availability_follows_device_and_bus_events() -> None:
    c = core()
    t = "framebridge/bus0/1/$availability"
    on = {"type": "event", "event": "device_online", "addr": 1}
    assert avail(c.bus_message("bus0", on, 0.0)) == {t: "online"}
    down = {"type": "event", "event": "bus_down"}
    assert avail(c.bus_message("bus0", down, 0.0)) == {t: "offline"}
    assert avail(c.online_messages())[t] == "offline"  # a reconnect now says offline
    up = {"type": "event", "event": "bus_up"}
    assert avail(c.bus_message("bus0", up, 0.0)) == {t: "online"}
    off = {"type": "event", "event": "device_offline", "addr": 1}
    assert avail(c.bus_message("bus0", off, 0.0)) == {t: "offline"}


def test_identify_reply_reannounces_the_device() -> None:
    c = core()
    ident = {
        "type": "frame",
        "dir": "rx",
        "addr": 1,
        "cmd": 1,
        "fields": {"model": "IO-8", "firmware": [0, 9, 7], "uid": 0x494F0001},
    }
    out = c.bus_message("bus0", ident, 0.0)
    assert len(out) == len([t for t in c.owned if "framebridge_bus0_1/" in t])
    device = json.loads(out[0].payload)["device"]
    assert device["sw_version"] == "0.9.7" and device["serial_number"] == "494F0001"
    assert c.bus_message("bus0", ident, 1.0) == []  # the same identity: nothing new


def test_reconnect_republishes_everything_retained() -> None:
    c = core()
    c.bus_message("bus0", {"type": "event", "event": "device_online", "addr": 1}, 0.0)
    c.bus_message("bus0", frame(1, {"mode": 2}), 0.0)
    out = {m.topic: m for m in c.online_messages()}
    assert out["framebridge/$availability"].payload == "online"
    assert out["framebridge/bus0/1/mode"].payload == "off"
    assert out["framebridge/bus0/1/$availability"].payload == "online"
    assert "homeassistant/select/framebridge_bus0_1/mode/config" in out
    listed = json.loads(out["framebridge/$retained"].payload)
    assert set(listed) == set(c.owned)
    assert c.offline_message().payload == "offline" and c.offline_message().retain


def test_devices_that_left_are_removed() -> None:
    before = core()
    old_list = json.dumps(sorted(before.owned)).encode()
    after = MqttCore([DeviceSpec("bus0", 1, IO.registers)])  # the meter left the config
    cleared = after.stale_messages(old_list)
    topics = {m.topic for m in cleared}
    assert "homeassistant/sensor/framebridge_bus_1_7/energy_total/config" in topics
    assert "framebridge/bus.1/7/energy_total" in topics
    assert not any("bus0" in t for t in topics)
    assert all(m.payload == "" and m.retain for m in cleared)
    assert after.stale_messages(json.dumps(sorted(after.owned)).encode()) == []
    # garbage in the retained list (someone else's) is ignored, not a crash
    assert after.stale_messages(b"\xff") == [] and after.stale_messages(b'{"a":1}') == []
    assert after.stale_messages(b'["elsewhere/x", 3]') == []


def test_home_assistant_birth_republishes() -> None:
    c = core()
    assert c.ha_status(b"offline") == []
    assert len(c.ha_status(b"online")) == len(c.online_messages())


def test_written_value_published_at_once() -> None:
    c = core()
    cmd = c.command("framebridge/bus0/1/alarm_relay/set", b"on")
    assert [(m.topic, m.payload) for m in c.written(cmd, 0.0)] == [
        ("framebridge/bus0/1/alarm_relay", "ON")
    ]


def test_expire_after_default_and_explicit() -> None:
    assert expire_after([0.5, 2.0], None) == 30.0
    assert expire_after([20.0], None) == 100.0
    assert expire_after([20.0], 0.0) == 0.0
    assert expire_after([], 12.0) == 12.0
