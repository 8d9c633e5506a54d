"""Multi-bus config files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware_sim.config import load_config, parse_config
from firmware_sim.errors import ConfigError
from firmware_sim.faults import FaultConfig, OfflineWindow
from frames.format import FrameFormat

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim_buses.toml"


def test_example_file() -> None:
    lab, plant = load_config(EXAMPLE)
    assert (lab.name, lab.link, lab.tcp, lab.seed, lab.pacing) == (
        "lab",
        "/tmp/ttySIM0",
        None,
        7,
        True,
    )
    assert [d.address for d in lab.devices] == [1, 2, 3]
    assert lab.faults == FaultConfig(drop_reply=0.01, jitter=0.005)
    assert plant.tcp == "127.0.0.1:7001" and plant.link is None
    assert [(d.address, d.profile.name) for d in plant.devices] == [
        (1, "power_meter"),
        (5, "io_board"),
    ]
    io = plant.devices[1]
    assert io.uid == 0x494F1234 and io.faults is not None
    assert io.faults.offline == (OfflineWindow(60, 10),)
    devices = plant.build_devices()
    assert devices[1].uid == 0x494F1234 and devices[0].uid == 0x504D0001


def test_profile_path_relative_to_config(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "frames" / "devices" / "thermo.toml"
    (tmp_path / "mine.toml").write_text(src.read_text())
    cfg = tmp_path / "sim.toml"
    cfg.write_text('[[bus]]\nprofile = "mine.toml"\ndevices = 2\nformat = { crc = "xmodem" }\n')
    (spec,) = load_config(cfg)
    assert spec.devices[0].profile.name == "mine" and spec.fmt == FrameFormat(crc="xmodem")
    assert spec.build_devices()[0].slave.fmt == FrameFormat(crc="xmodem")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "bus: needs at least one"),
        ({"buses": []}, "buses: unknown key"),
        ({"bus": [{"colour": 1}]}, r"bus\[0\].colour: unknown key"),
        ({"bus": [{"devices": 300}]}, r"bus\[0\].devices: 300 devices"),
        ({"bus": [{"profile": "nope"}]}, r"bus\[0\].profile: nope: no such profile"),
        ({"bus": [{"link": "/tmp/x", "tcp": "127.0.0.1:1"}]}, "exclude each other"),
        ({"bus": [{"faults": {"drop_reply": 7}}]}, r"bus\[0\].faults.drop_reply"),
        ({"bus": [{"format": {"crc": "nope"}}]}, r"bus\[0\].format:"),
        ({"bus": [{"baudrate": 0}]}, r"bus\[0\].baudrate"),
        ({"bus": [{"device": [{"address": 0}]}]}, r"bus\[0\].device\[0\].address"),
        ({"bus": [{"device": [{"address": 1, "profile": "thermo"}] * 2}]}, "'1' is used twice"),
        ({"bus": [{"device": [{"address": 1}]}]}, r"device\[0\].profile: missing"),
        ({"bus": [{"name": "a"}, {"name": "a"}]}, "'a' is used twice"),
        ({"bus": [{"devices": 2, "device": []}]}, "either devices = N"),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(data, source="sim.toml")
    assert str(info.value).startswith("sim.toml: ")


def test_bad_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text("[[bus]\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(cfg)
