"""The device's register logic behind frames.slave.Slave, driven with a fake ``now``."""

from __future__ import annotations

import struct

import pytest

from firmware_sim.device import SimulatedDevice
from firmware_sim.errors import RegisterError, UnknownRegister
from firmware_sim.faults import FaultConfig, OfflineWindow
from frames.commands import STANDARD
from frames.frame import Frame


def dev(addr: int = 1, profile: str = "thermo", **kw: object) -> SimulatedDevice:
    d = SimulatedDevice(addr, profile, **kw)  # type: ignore[arg-type]
    d.start(100.0)
    return d


def read(d: SimulatedDevice, start: int, count: int, now: float = 100.0) -> Frame | None:
    return d.handle(Frame(d.address, 0x03, struct.pack("<HB", start, count)), now)


def test_identify() -> None:
    d = dev(3)
    reply = d.handle(Frame(3, 0x01), 100.0)
    assert reply is not None and not reply.is_error
    fields = STANDARD.get("identify").decode_response(reply.data)
    assert fields == {
        "model": "THERMO-1",
        "firmware": [1, 4, 2],
        "uid": 0x54480003,
        "register_count": 6,
    }


def test_echo_and_unknown_command() -> None:
    d = dev()
    assert d.handle(Frame(1, 0x02, b"\x00\xffhello"), 100.0) == Frame(1, 0x02, b"\x00\xffhello")
    assert d.handle(Frame(1, 0x42), 100.0) == Frame(1, 0xC2, b"\x01")


def test_read_regs_values_and_errors() -> None:
    d = dev()
    reply = read(d, 0, 6)
    assert reply is not None
    values = STANDARD.get("read_regs").decode_response(reply.data)["values"]
    assert d.profile.decode(0, values) == d.snapshot(100.0)
    assert values[2] == 2200  # setpoint 22.00
    assert read(d, 5, 2) == Frame(1, 0x83, b"\x02")  # runs past the map
    assert read(d, 0, 121) == Frame(1, 0x83, b"\x03")  # count > 120: illegal value
    assert d.handle(Frame(1, 0x03, b"\x00"), 100.0) == Frame(1, 0x83, b"\x03")  # short payload


def test_live_values_move_with_now() -> None:
    d = dev()
    assert d.get("uptime", 100.0) == 0
    assert d.get("uptime", 161.5) == 61
    assert d.get("temperature", 130.0) == pytest.approx(23.0)  # a quarter of the 120 s period


def test_same_seed_same_values() -> None:
    a, b, c = dev(seed=5), dev(seed=5), dev(seed=6)
    times = [100.0 + t for t in range(0, 40, 3)]
    assert [a.get("humidity", t) for t in times] == [b.get("humidity", t) for t in times]
    assert [a.get("humidity", t) for t in times] != [c.get("humidity", t) for t in times]


def test_write_reg_and_rules() -> None:
    d = dev()
    assert d.handle(Frame(1, 0x06, struct.pack("<HH", 2, 2350)), 100.0) == Frame(
        1, 0x06, struct.pack("<HH", 2, 2350)
    )
    assert d.get("setpoint") == 23.5
    assert d.handle(Frame(1, 0x06, struct.pack("<HH", 0, 1)), 100.0) == Frame(1, 0x86, b"\x02")
    assert d.handle(Frame(1, 0x06, struct.pack("<HH", 99, 1)), 100.0) == Frame(1, 0x86, b"\x02")
    assert d.handle(Frame(1, 0x06, struct.pack("<HH", 2, 4000)), 100.0) == Frame(1, 0x86, b"\x03")
    assert d.get("setpoint") == 23.5


def test_write_regs_is_all_or_nothing() -> None:
    d = dev()
    ok = d.handle(Frame(1, 0x10, struct.pack("<HB2H", 2, 2, 1800, 1)), 100.0)
    assert ok == Frame(1, 0x10, struct.pack("<HB", 2, 2))
    assert (d.get("setpoint"), d.get("heater")) == (18.0, 1)
    bad = d.handle(Frame(1, 0x10, struct.pack("<HB3H", 2, 3, 2000, 0, 5)), 100.0)
    assert bad == Frame(1, 0x90, b"\x02")  # register 4 (uptime) is read-only
    assert (d.get("setpoint"), d.get("heater")) == (18.0, 1)  # nothing changed


def test_counter_reset_by_write() -> None:
    d = dev(profile="power_meter")
    assert d.get("energy", 110.0) == 10
    d.handle(Frame(1, 0x06, struct.pack("<HH", 4, 0)), 110.0)
    assert d.get("energy", 110.0) == 0 and d.get("energy", 115.0) == 5


def test_direct_set_bypasses_writable() -> None:
    d = dev()
    d.set("temperature", -5.25)
    assert d.get("temperature") == -5.25 and d.get_raw("temperature") == 0xFDF3
    with pytest.raises(UnknownRegister):
        d.set("nope", 1)
    with pytest.raises(RegisterError):
        d.set("humidity", -1)


def test_broadcast_acts_without_reply() -> None:
    d = dev()
    assert d.handle(Frame(0, 0x06, struct.pack("<HH", 3, 1)), 100.0) is None
    assert d.get("heater") == 1
    assert d.counters.broadcasts == 1 and d.counters.replies_out == 0


def test_other_addresses_ignored() -> None:
    d = dev(2)
    assert d.handle(Frame(1, 0x01), 100.0) is None
    assert d.counters.frames_in == 0


def test_offline_manual_timed_and_windows() -> None:
    d = dev()
    d.go_offline()
    assert d.handle(Frame(1, 0x01), 100.0) is None
    assert d.handle(Frame(0, 0x06, struct.pack("<HH", 3, 1)), 100.0) is None
    assert d.get("heater") == 0  # an off device does not act on broadcasts either
    d.go_online()
    assert d.handle(Frame(1, 0x01), 100.0) is not None
    d.go_offline(5.0, now=100.0)
    assert not d.is_online(104.9) and d.is_online(105.0)
    d.faults = FaultConfig(offline=(OfflineWindow(10, 2),))
    assert d.is_online(109.9) and not d.is_online(110.0) and d.is_online(112.0)
    assert d.counters.ignored_offline == 2


def test_counters() -> None:
    d = dev()
    d.handle(Frame(1, 0x01), 100.0)
    d.handle(Frame(1, 0x42), 100.0)
    c = d.counters.as_dict()
    assert (c["frames_in"], c["replies_out"], c["error_replies"]) == (2, 2, 1)


def test_clock_used_when_no_now() -> None:
    t = [500.0]
    d = SimulatedDevice(1, "thermo", clock=lambda: t[0])
    d.start(500.0)
    t[0] = 530.0
    assert d.get("uptime") == 30


def write_regs(d: SimulatedDevice, start: int, values: list[int]) -> Frame | None:
    data = struct.pack(f"<HB{len(values)}H", start, len(values), *values)
    return d.handle(Frame(d.address, 0x10, data), 100.0)


def test_two_word_registers_read_and_write_whole() -> None:
    d = dev(profile="power_meter")
    d.set("energy_total", 0x12345678)
    reply = read(d, 7, 2)
    assert reply is not None and reply.data == struct.pack("<B2H", 2, 0x1234, 0x5678)
    assert d.get("energy_total") == 0x12345678
    d.set("power_factor", 0.5)
    assert d.get_words("power_factor") == [0x3F00, 0x0000] and d.get("power_factor") == 0.5
    # Half of a two-word register is refused (code 2); the whole register is not writable.
    for start, values in ((8, [1]), (7, [0, 1])):
        reply = write_regs(d, start, values)
        assert reply is not None and reply.is_error and reply.data == b"\x02"


def test_bool_and_enum_writes_are_checked() -> None:
    d = dev(profile="io_board")
    assert write_regs(d, 7, [2]) == Frame(1, 0x10, struct.pack("<HB", 7, 1))
    assert d.get("mode") == 2
    for start, value in ((7, 3), (8, 2)):  # no label 3; a bool is 0 or 1
        reply = write_regs(d, start, [value])
        assert reply is not None and reply.is_error and reply.data == b"\x03"
    assert write_regs(d, 8, [1]) is not None and d.get("alarm_relay") is True
