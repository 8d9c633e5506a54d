"""Profiles: the shipped ones, the public helpers, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.behaviours import RandomWalk, Sine, Uptime
from firmware_sim.errors import ProfileError, RegisterError, UnknownRegister
from firmware_sim.profile import available_profiles, load_profile

GOOD = """
model = "T-1"
firmware = "1.2.3"
uid = 0x100

[[registers]]
address = 1
name = "b"
type = "i16"
scale = 0.1
unit = "C"

[[registers]]
address = 0
name = "a"
writable = true
initial = 7
"""


@pytest.mark.parametrize("name", ["thermo", "power_meter", "io_board"])
def test_shipped_profiles_load(name: str) -> None:
    prof = load_profile(name)
    assert name in available_profiles()
    assert prof.name == name and prof.model and prof.register_count == len(prof.registers)
    words = [r.address + i for r in prof.registers for i in range(r.count)]
    assert words == list(range(len(words)))  # contiguous from 0: one read gets them all
    assert any(
        not isinstance(r.behaviour, type(prof.registers[0].behaviour)) for r in prof.registers
    )


def test_thermo_details() -> None:
    prof = load_profile("thermo")
    assert prof.model == "THERMO-1" and prof.firmware == (1, 4, 2)
    temp = prof.register("temperature")
    assert (temp.type, temp.scale, temp.unit, temp.writable) == ("i16", 0.01, "°C", False)
    assert isinstance(temp.behaviour, Sine)
    assert isinstance(prof.register("humidity").behaviour, RandomWalk)
    assert isinstance(prof.register(4).behaviour, Uptime)
    assert prof.register("setpoint").writable


def test_load_by_path_orders_registers(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    prof = load_profile(path)
    assert prof.name == "mine" and prof.source == str(path)
    assert [r.name for r in prof.registers] == ["a", "b"]
    assert prof.firmware_version == "1.2.3"
    assert load_profile(str(path)).registers == prof.registers


def test_decode_and_encode_helpers() -> None:
    prof = load_profile("thermo")
    values = prof.decode(0, [0xF830, 455, 2200, 1, 60, 0])
    assert values == {
        "temperature": -20.0,
        "humidity": 45.5,
        "setpoint": 22.0,
        "heater": 1,
        "uptime": 60,
        "status": 0,
    }
    assert prof.decode(4, [1, 2, 3]) == {"uptime": 1, "status": 2}  # address 6 is not mapped
    assert prof.encode({"setpoint": -1.5, "heater": 1}) == {2: 0xFF6A, 3: 1}
    with pytest.raises(UnknownRegister, match="no register 'nope'"):
        prof.encode({"nope": 1})
    with pytest.raises(RegisterError):
        prof.encode({"setpoint": 1000.0})
    assert prof.describe()[0]["name"] == "temperature"


def test_unknown_profile_lists_shipped() -> None:
    with pytest.raises(ProfileError, match=r"no such profile.*thermo"):
        load_profile("nonexistent")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda s: s.replace('model = "T-1"', "model = 3"), ": model: "),
        (lambda s: s.replace('"1.2.3"', '"1.2"'), ": firmware: "),
        (lambda s: s.replace("0x100", "-1"), ": uid: "),
        (lambda s: "colour = 1\n" + s, ": colour: unknown key"),
        (lambda s: s.replace('type = "i16"', 'type = "f64"'), "registers[0] (b).type:"),
        (lambda s: s.replace("address = 1", "address = 0"), "registers[1].address: 0 repeats"),
        (lambda s: s.replace('name = "b"', 'name = "a"'), "registers[1].name: 'a' repeats"),
        (lambda s: s.replace('name = "b"', 'name = "b c"'), "registers[0].name:"),
        (lambda s: s.replace("scale = 0.1", "scale = -2"), "registers[0] (b).scale:"),
        (lambda s: s.replace('unit = "C"', "unit = 1"), "registers[0] (b).unit:"),
        (lambda s: s.replace('unit = "C"', "colour = 1"), "registers[0].colour: unknown key"),
        (lambda s: s.replace("initial = 7", "initial = 70000"), "registers[1] (a).initial:"),
        (
            lambda s: s.replace('unit = "C"', 'behaviour = { kind = "sine", period = 0 }'),
            "registers[0] (b).behaviour: period: must be > 0",
        ),
        (lambda s: s.replace("[[registers]]", "[[regs]]"), ": regs: unknown key"),
        (lambda s: s + "\n[[registers]]\nname = 'x'\n", "registers[2].address:"),
        (lambda s: s.replace('model = "T-1"', "model = "), "invalid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, edit: object, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edit(GOOD))  # type: ignore[operator]
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert key in message, message


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "gone.toml")
