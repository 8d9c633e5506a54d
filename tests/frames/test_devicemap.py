"""The device model: every register type round-trips, word order, the map, the loader's errors."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frames import FramesError
from frames.devicemap import (
    DeviceMap,
    DeviceMapError,
    available_device_maps,
    load_device_map,
    parse_device_map,
)
from frames.errors import FrameValueError
from frames.register import REGISTER_TYPES, RegisterDef

word = st.integers(0, 0xFFFF)


@pytest.mark.parametrize("kind", ["u16", "i16", "enum", "bitfield"])
@given(w=word)
def test_one_word_types_round_trip(kind: str, w: int) -> None:
    reg = RegisterDef(0, "r", kind)
    assert reg.count == 1
    assert reg.encode(reg.decode([w])) == [w]


@pytest.mark.parametrize("kind", ["u32", "i32", "f32"])
@pytest.mark.parametrize("order", ["big", "little"])
@given(words=st.lists(word, min_size=2, max_size=2))
def test_two_word_types_round_trip(kind: str, order: str, words: list[int]) -> None:
    reg = RegisterDef(10, "r", kind, word_order=order)
    assert reg.count == 2
    value = reg.decode(words)
    if value is None:  # NaN or infinity: no reading
        assert kind == "f32"
        return
    assert reg.encode(value) == words


@given(
    raw=st.integers(-0x80000000, 0x7FFFFFFF),
    scale=st.sampled_from([1.0, 0.1, 0.01, 0.001, 0.5, 10.0]),
)
def test_scaled_i32_round_trip(raw: int, scale: float) -> None:
    reg = RegisterDef(0, "r", "i32", scale=scale)
    words = reg.raw_words(raw)
    assert reg.raw_int(words) == raw
    assert reg.encode(reg.decode(words)) == words


def test_bool() -> None:
    reg = RegisterDef(0, "relay", "bool", writable=True)
    assert reg.decode([0]) is False and reg.decode([1]) is True and reg.decode([7]) is True
    assert reg.encode(True) == [1] and reg.encode(False) == [0] and reg.encode(1) == [1]
    for bad in (2, -1, 0.5):
        with pytest.raises(FrameValueError):
            reg.encode(bad)


def test_word_order() -> None:
    big = RegisterDef(0, "e", "u32")
    little = RegisterDef(0, "e", "u32", word_order="little")
    assert big.encode(0x12345678) == [0x1234, 0x5678]
    assert little.encode(0x12345678) == [0x5678, 0x1234]
    assert big.decode([0x1234, 0x5678]) == little.decode([0x5678, 0x1234]) == 0x12345678
    assert RegisterDef(0, "s", "i32").encode(-2) == [0xFFFF, 0xFFFE]
    assert RegisterDef(0, "s", "i32").decode([0xFFFF, 0xFFFE]) == -2
    assert RegisterDef(0, "f", "f32").encode(1.0) == [0x3F80, 0x0000]
    assert RegisterDef(0, "f", "f32", word_order="little").encode(-2.5) == [0x0000, 0xC020]
    assert RegisterDef(0, "f", "f32").decode([0x3F7A, 0x9FBE]) == 0.979  # shortest decimal
    assert RegisterDef(0, "f", "f32").decode([0x7FC0, 0]) is None  # NaN: no reading


def test_scale_and_ranges() -> None:
    temp = RegisterDef(0, "t", "i16", scale=0.01, unit="°C")
    assert temp.decode([0xF830]) == -20.0 and temp.encode(21.5) == [2150]
    with pytest.raises(FrameValueError, match=r"does not fit i16 at scale 0\.01"):
        temp.encode(400.0)
    with pytest.raises(FrameValueError, match="not a finite number"):
        temp.encode(math.nan)
    with pytest.raises(FrameValueError, match="does not fit u32"):
        RegisterDef(0, "c", "u32").encode(1 << 32)
    with pytest.raises(FrameValueError, match="does not fit f32"):
        RegisterDef(0, "f", "f32").encode(1e39)
    limited = RegisterDef(0, "sp", "i16", scale=0.1, min=5, max=35)
    limited.check_limits(20)
    with pytest.raises(FrameValueError, match="below 5"):
        limited.check_limits(4.9)


def test_enum_and_bitfield() -> None:
    mode = RegisterDef(7, "mode", "enum", labels={0: "auto", 1: "manual"})
    assert mode.encode("manual") == [1] and mode.encode(0) == [0]
    assert mode.decode([1]) == 1 and mode.label(1) == "manual" and mode.label(9) is None
    with pytest.raises(FrameValueError, match="'boost' is not one of"):
        mode.encode("boost")
    with pytest.raises(FrameValueError, match="9 is not one of"):
        mode.encode(9)
    inputs = RegisterDef(0, "inputs", "bitfield", bits={0: "door", 3: "smoke"})
    assert inputs.encode({"door": True, "smoke": True}) == [0b1001]
    assert inputs.flags(0b1000) == {"door": False, "smoke": True}
    with pytest.raises(FrameValueError, match="no bit 'fire'"):
        inputs.encode({"fire": True})


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"type": "u64"}, "type"),
        ({"scale": 0}, "scale"),
        ({"type": "bool", "scale": 0.1}, "scale"),
        ({"word_order": "middle"}, "word_order"),
        ({"labels": {0: "a"}}, "labels"),
        ({"type": "bitfield", "bits": {16: "x"}}, "bits"),
        ({"type": "u32", "address": 0xFFFF}, "address"),
    ],
)
def test_bad_definitions_name_the_field(kwargs: dict[str, object], key: str) -> None:
    args: dict[str, object] = {"address": 0, "name": "x", **kwargs}
    with pytest.raises(FrameValueError, match=f"^{key}:"):
        RegisterDef(**args)  # type: ignore[arg-type]


def test_device_map_find_decode_and_describe() -> None:
    dm = DeviceMap(
        "m",
        "M-1",
        (
            RegisterDef(0, "a"),
            RegisterDef(1, "total", "u32"),
            RegisterDef(3, "pf", "f32", word_order="little"),
        ),
    )
    assert dm.find(1) is dm.find("total") and dm.find(2) is None
    assert dm.span() == (0, 5)
    assert dm.decode(0, [7, 0, 1, 0, 0x3F80]) == {"a": 7, "total": 1, "pf": 1.0}
    assert dm.decode(2, [0, 0]) == {}  # half of "total" and half of "pf": neither decoded
    assert [d["count"] for d in dm.describe()] == [1, 2, 2]
    with pytest.raises(FrameValueError, match="overlaps total"):
        DeviceMap("m", "M", (RegisterDef(1, "total", "u32"), RegisterDef(2, "b")))


def test_shipped_maps_carry_the_new_types() -> None:
    assert {"thermo", "power_meter", "io_board"} <= set(available_device_maps())
    types = {
        r.type
        for name in ("thermo", "power_meter", "io_board")
        for r in load_device_map(name).registers
    }
    assert types == set(REGISTER_TYPES) - {"i32"} | ({"i32"} & types)
    io = load_device_map("io_board")
    assert io.find("mode").type == "enum" and io.find("alarm_relay").type == "bool"  # type: ignore[union-attr]
    assert io.find(0).type == "bitfield"  # type: ignore[union-attr]
    pm = load_device_map("power_meter")
    assert pm.find("energy_total").count == 2  # type: ignore[union-attr]
    assert load_device_map("thermo").find("temperature").unit == "°C"  # type: ignore[union-attr]


GOOD = """
model = "T-1"
firmware = "1.2.3"   # a simulator key: skipped here
[[registers]]
address = 0
name = "total"
type = "u32"
word_order = "little"
behaviour = "uptime" # a simulator key: skipped here
[[registers]]
address = 2
name = "mode"
type = "enum"
labels = { 0 = "off", 1 = "on" }
"""


def test_load_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    dm = load_device_map(path)
    assert dm.name == "mine" and dm.model == "T-1" and dm.source == str(path)
    assert dm.find("total").word_order == "little"  # type: ignore[union-attr]
    assert dm.find("mode").labels == {0: "off", 1: "on"}  # type: ignore[union-attr]
    assert load_device_map(str(path)) == dm


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda s: "colour = 1\n" + s, ": colour: unknown key"),
        (lambda s: s.replace('type = "u32"', 'type = "u64"'), "registers[0] (total).type:"),
        (lambda s: s.replace('"little"', '"middle"'), "registers[0] (total).word_order:"),
        (lambda s: s.replace("address = 2", "address = 1"), "registers[1].address: 1 repeats"),
        (lambda s: s.replace('0 = "off"', 'x = "off"'), "registers[1] (mode).labels: key 'x'"),
        (lambda s: s.replace('type = "enum"', 'type = "u16"'), "registers[1] (mode).labels:"),
        (lambda s: s.replace('model = "T-1"', "model = 3"), ": model: "),
        (lambda s: s.replace('model = "T-1"', "model = "), "invalid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, edit: object, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edit(GOOD))  # type: ignore[operator]
    with pytest.raises(DeviceMapError) as info:
        load_device_map(path)
    assert isinstance(info.value, FramesError)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert key in message, message


def test_unknown_name_and_missing_file() -> None:
    with pytest.raises(DeviceMapError, match=r"no such device map.*thermo"):
        load_device_map("nonexistent")
    with pytest.raises(DeviceMapError, match="cannot read"):
        load_device_map("/nonexistent/dir/gone.toml")
    with pytest.raises(DeviceMapError, match="registers: must be a non-empty"):
        parse_device_map({"model": "X"}, name="x")


def test_f32_bits() -> None:
    reg = RegisterDef(0, "f", "f32")
    hi, lo = reg.encode(0.1)
    assert struct.unpack(">f", struct.pack(">HH", hi, lo))[0] == pytest.approx(0.1)
