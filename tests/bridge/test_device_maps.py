"""The bridge reads device maps from ``frames`` only, two-word registers included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bridge.buses import load_register_maps
from bridge.config import BusConfig, DeviceConfig
from bridge.devices import DeviceBook
from bridge.errors import ConfigError

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"


@pytest.mark.parametrize("name", ["buses.py", "devices.py", "config.py"])
def test_register_maps_need_no_simulator(name: str) -> None:
    tree = ast.parse((BRIDGE / name).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    assert not [m for m in imported if m.split(".")[0] == "firmware_sim"]


def test_two_word_registers_are_decoded_whole() -> None:
    cfg = BusConfig("b", "/dev/null", devices=(DeviceConfig(4, "power_meter"),))
    maps = load_register_maps(cfg)
    assert sorted(maps[4]) == list(range(11))  # words 0..10: one read covers every register
    book = DeviceBook([(4, "meter", "power_meter")], maps)
    described = book.snapshot()["4"]["register_map"]
    assert [r["name"] for r in described][-2:] == ["energy_total", "power_factor"]
    assert [r["count"] for r in described][-2:] == [2, 2]
    named = book.registers(4, 6, [100, 0x0001, 0x0004, 0x3F00, 0x0000], ts=1.0)
    assert named == {"ct_ratio": 100, "energy_total": 65540, "power_factor": 0.5}
    assert book.snapshot()["4"]["values"]["energy_total"]["raw"] == [1, 4]
    assert book.names(4, 8, [4, 0x3F00]) == {}  # halves of two registers: neither decoded


def test_enum_and_bitfield_values_carry_labels_and_flags() -> None:
    cfg = BusConfig("b", "/dev/null", devices=(DeviceConfig(2, "io_board"),))
    book = DeviceBook([(2, "io", "io_board")], load_register_maps(cfg))
    book.registers(2, 0, [0b101], ts=1.0)
    book.registers(2, 7, [1, 1], ts=1.0)
    values = book.snapshot()["2"]["values"]
    assert values["inputs"]["flags"]["in0"] is True and values["inputs"]["flags"]["in1"] is False
    assert values["mode"]["label"] == "manual" and values["alarm_relay"]["value"] is True


def test_a_bad_map_is_a_config_error_naming_the_device(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "X"\n[[registers]]\naddress = 0\nname = "a"\ntype = "u64"\n')
    cfg = BusConfig("b", "/dev/null", devices=(DeviceConfig(1, str(bad)),))
    with pytest.raises(ConfigError, match=r"device\[0\]\.profile.*bad\.toml.*type"):
        load_register_maps(cfg)


def test_bus_format_tagged_is_parsed() -> None:
    from bridge.config import parse_config

    bus = {"name": "b", "url": "loop://", "format": {"tagged": True}}
    assert parse_config({"bus": [bus]}).buses[0].format.tagged is True
    assert parse_config({"bus": [{"name": "b", "url": "loop://"}]}).buses[0].format.tagged is False
    with pytest.raises(ConfigError, match="tagged"):
        parse_config({"bus": [{**bus, "format": {"tagged": "yes"}}]})
