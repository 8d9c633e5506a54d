"""The device model: every register type round-trips, word order, the map, the loader's errors."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frames import FramesError
from frames.devicemap import (
    DEVICE_DIR,
    DeviceMap,
    DeviceMapError,
    available_device_maps,
    device_file,
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


# --- pinned by mutation testing (issue 18, docs/testing.md)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "u32", "address": 0xFFFF}, "address: 65535 is not 0..65534"),
        ({"scale": math.inf}, "scale: must be finite, got inf"),
        ({"bits": {0: "x"}}, "bits: only a bitfield register has bits"),
        ({"type": "enum", "labels": {0x10000: "x"}}, "labels: value 65536 is not 0..65535"),
        ({"type": "enum", "labels": {0: "x", 1: "x"}}, "labels: two values have the same label"),
        ({"type": "bitfield", "bits": {16: "x"}}, "bits: bit 16 is not 0..15"),
    ],
)
def test_bad_definitions_say_exactly_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(FrameValueError, match=f"^{re.escape(message)}$"):
        RegisterDef(**{"address": 0, "name": "r", **kwargs})


def test_the_last_label_value_and_bit_are_allowed() -> None:
    assert RegisterDef(0, "m", "enum", labels={0xFFFF: "top"}).encode("top") == [0xFFFF]
    assert RegisterDef(0, "b", "bitfield", bits={15: "top"}).encode({"top": True}) == [0x8000]
    # only the named bits are set
    assert RegisterDef(0, "b", "bitfield", bits={0: "a", 3: "d"}).encode({"d": True}) == [8]


def test_decode_refusals_say_what_is_wrong() -> None:
    reg = RegisterDef(0, "r", "u32")
    with pytest.raises(FrameValueError, match=r"^r: needs 2 word\(s\), got 1$"):
        reg.decode([1])
    with pytest.raises(FrameValueError, match=r"^r: words must be 0\.\.65535, got \[0, 65536\]$"):
        reg.decode([0, 0x10000])
    with pytest.raises(FrameValueError, match=r"^u: words must be 0\.\.65535, got \[65536\]$"):
        RegisterDef(0, "u").decode([0x10000])


def test_i16_turns_negative_at_0x8000() -> None:
    reg = RegisterDef(0, "s", "i16")
    assert reg.decode([0x7FFF]) == 0x7FFF and reg.decode([0x8000]) == -0x8000


@pytest.mark.parametrize(("scale", "words", "value"), [(2.0, [3], 6.0), (0.5, [3], 1.5)])
def test_scale_multiplies_integers_and_floats(scale: float, words: list[int], value: float) -> None:
    assert RegisterDef(0, "r", scale=scale).decode(words) == value
    f32 = RegisterDef(0, "f", "f32", scale=scale)
    wire = f32.encode(value)
    assert struct.unpack(">f", struct.pack(">HH", *wire))[0] == 3.0
    assert f32.decode(wire) == value


@pytest.mark.parametrize(
    ("scale", "words", "value"),
    [
        (0.01, [0x075B, 0xCD15], 1234567.89),  # 123456789 * 0.01: the binary noise trimmed
        (1.5000000000007, [0, 1], 1.5),  # within 1e-12 of 1.5: rounded to 1 place
        (0.5000000000014, [0, 1], 0.500000000001),  # not within: 12 places
        (1e-12, [0, 1], 1e-12),  # 12 places at most
        (1.5e-12, [0, 1], 2e-12),
    ],
)
def test_a_scaled_value_has_the_scales_decimal_places(
    scale: float, words: list[int], value: float
) -> None:
    assert RegisterDef(0, "r", "u32", scale=scale).decode(words) == value


def test_f32_decodes_to_the_shortest_decimal_even_when_subnormal() -> None:
    reg = RegisterDef(0, "f", "f32")
    assert reg.decode(reg.encode(0.9795442)) == 0.9795442  # 7 digits
    assert reg.decode([0x8005, 0x33AC]) == -4.77714e-40  # 6 digits suffice here, not 7


def test_encode_refusals_say_what_is_wrong() -> None:
    with pytest.raises(FrameValueError, match=r"^u: true/false is not a number$"):
        RegisterDef(0, "u").encode(True)
    with pytest.raises(FrameValueError, match=r"^u: 65536 does not fit u16$"):
        RegisterDef(0, "u").encode(65536)
    with pytest.raises(FrameValueError, match=r"^u: 200000 does not fit u16 at scale 2\.0$"):
        RegisterDef(0, "u", scale=2.0).encode(200000)
    f32 = RegisterDef(0, "f", "f32")
    for bad in ("x", True, None):
        with pytest.raises(FrameValueError, match=rf"^f: {re.escape(repr(bad))} is not a number$"):
            f32.encode(bad)
    with pytest.raises(FrameValueError, match=r"^f: inf is not a finite number$"):
        f32.encode(math.inf)


def test_check_limits_includes_the_bounds_and_ignores_non_numbers() -> None:
    reg = RegisterDef(0, "sp", "i16", min=5, max=35)
    for ok in (5, 35, 20.5, True, "x", None):
        reg.check_limits(ok)
    with pytest.raises(FrameValueError, match=r"^sp: 36 is above 35$"):
        reg.check_limits(36)
    with pytest.raises(FrameValueError, match=r"^sp: 4 is below 5$"):
        reg.check_limits(4)


def test_describe_gives_every_key_a_device_file_uses() -> None:
    u32 = RegisterDef(4, "energy", "u32", scale=0.1, unit="kWh", writable=True, min=0, max=9,
                      description="total", word_order="little")  # fmt: skip
    assert u32.describe() == {
        "address": 4, "name": "energy", "type": "u32", "scale": 0.1, "unit": "kWh",
        "writable": True, "min": 0, "max": 9, "description": "total", "count": 2,
        "word_order": "little",
    }  # fmt: skip
    enum = RegisterDef(1, "mode", "enum", labels={2: "b", 0: "a"})
    assert enum.describe() == {
        "address": 1, "name": "mode", "type": "enum", "scale": 1.0, "unit": "",
        "writable": False, "min": None, "max": None, "description": "", "count": 1,
        "labels": {"0": "a", "2": "b"},
    }  # fmt: skip
    bits = RegisterDef(2, "io", "bitfield", bits={3: "d", 0: "a"}).describe()
    assert bits["bits"] == {"0": "a", "3": "d"} and "labels" not in bits
    assert "word_order" not in bits and "bits" not in enum.describe()


def test_span_and_decode_away_from_address_zero() -> None:
    dm = DeviceMap("m", "M", (RegisterDef(10, "a"), RegisterDef(11, "b", "u32")))
    assert dm.span() == (10, 3)
    assert dm.decode(10, [1, 0, 2]) == {"a": 1, "b": 2}
    assert dm.decode(11, [0, 3]) == {"b": 3}


def test_device_file_tells_a_path_from_a_shipped_name(tmp_path: Path) -> None:
    assert device_file("thermo") == DEVICE_DIR / "thermo.toml"
    assert device_file("mine.toml") == Path("mine.toml")
    assert device_file("some/dir/thermo") == Path("some/dir/thermo")
    assert device_file(Path("thermo")) == Path("thermo")
    with pytest.raises(DeviceMapError) as info:
        device_file("nonexistent")
    shipped = ", ".join(available_device_maps())
    assert str(info.value) == f"nonexistent: no such device map (shipped: {shipped})"
    assert (info.value.source, info.value.key) == ("nonexistent", "")
    gone = tmp_path / "gone.toml"
    with pytest.raises(DeviceMapError) as info:
        load_device_map(gone)
    assert str(info.value) == f"{gone}: cannot read: No such file or directory"
    assert (info.value.source, info.value.key) == (str(gone), "")
    gone.write_text("model = ")
    with pytest.raises(DeviceMapError) as info:
        load_device_map(gone)
    assert str(info.value).startswith(f"{gone}: invalid TOML: ") and info.value.key == ""


def test_every_key_of_a_device_file_is_read_and_the_rest_default() -> None:
    data = {
        "model": "M" * 255,
        "description": "a device",
        "registers": [
            {"address": 0xFFFF, "name": "flags", "type": "bitfield",
             "bits": {"0": "a", "0x3": "d"}},
            {"address": 2, "name": "mode", "type": "enum", "labels": {"0x10": "sixteen"}},
            {
                "address": 0, "name": "total", "type": "u32", "scale": 2, "unit": "Wh",
                "writable": True, "min": 1, "max": 9, "description": "energy",
                "word_order": "little",
            },
            {"address": 3, "name": "plain"},
        ],
    }  # fmt: skip
    dm = parse_device_map(data, name="dev")
    assert (dm.name, dm.model, dm.description, dm.source) == (
        "dev",
        "M" * 255,
        "a device",
        "<memory>",
    )
    assert dm.registers == (
        RegisterDef(0, "total", "u32", scale=2.0, unit="Wh", writable=True, min=1.0, max=9.0,
                    description="energy", word_order="little"),
        RegisterDef(2, "mode", "enum", labels={16: "sixteen"}),
        RegisterDef(3, "plain"),
        RegisterDef(0xFFFF, "flags", "bitfield", bits={0: "a", 3: "d"}),
    )  # fmt: skip
    total, mode, plain, flags = dm.registers
    assert (mode.labels, flags.bits) == ({16: "sixteen"}, {0: "a", 3: "d"})  # not in ==
    assert (plain.unit, plain.writable, plain.description, plain.min, plain.max) == (
        "", False, "", None, None
    )  # fmt: skip
    assert type(total.scale) is float and type(total.min) is float and type(total.max) is float
    assert parse_device_map({"model": "M", "registers": [{"address": 0, "name": "a"}]},
                            name="n").description == ""  # fmt: skip


REG = {"address": 0, "name": "a"}
MODEL = "model: must be a non-empty ASCII string of at most 255 characters"
ADDR = "registers[0].address: must be an integer 0..65535, got "
IDENT = "registers[0].name: must be an identifier (letters, digits, _), got "
TABLE = 'must be a table like { "0" = "off", "1" = "on" }'
NO_NAME = "registers[0] (a).labels: 0: the name must be a non-empty string"
TOP_KEYS = "['description', 'firmware', 'model', 'registers', 'uid']"
REG_KEYS = (
    "['address', 'behaviour', 'bits', 'description', 'initial', 'labels', 'max', 'min', "
    "'name', 'scale', 'type', 'unit', 'word_order', 'writable']"
)


def regs(*tables: object) -> dict[str, object]:
    return {"registers": list(tables)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": 1}, f"colour: unknown key (expected {TOP_KEYS})"),
        ({"model": ""}, MODEL),
        ({"model": "é"}, MODEL),
        ({"model": "M" * 256}, MODEL),
        ({"description": 3}, "description: must be a string"),
        ({"registers": "abc"}, "registers: must be a non-empty array of tables ([[registers]])"),
        ({"registers": [{}] * 0x10000}, "registers: too many registers"),
        ({"registers": [{}] * 0xFFFF}, ADDR + "None"),
        (regs(3), "registers[0]: must be a table"),
        (regs({**REG, "colour": 1}), f"registers[0].colour: unknown key (expected {REG_KEYS})"),
        (regs({"address": True}), ADDR + "True"),
        (regs({"address": "x"}), ADDR + "'x'"),
        (regs({"address": 0x10000}), ADDR + "65536"),
        (regs({"address": 0, "name": "a b"}), IDENT + "'a b'"),
        (regs({"address": 0, "name": 3}), IDENT + "3"),
        (regs({**REG, "scale": "x"}), "registers[0] (a).scale: has the wrong type: 'x'"),
        (regs({**REG, "scale": True}), "registers[0] (a).scale: has the wrong type: True"),
        (regs({**REG, "unit": 3}), "registers[0] (a).unit: has the wrong type: 3"),
        (regs({**REG, "type": "enum", "labels": 3}), "registers[0] (a).labels: " + TABLE),
        (regs({**REG, "type": "bitfield", "bits": 3}), "registers[0] (a).bits: " + TABLE),
        (regs({**REG, "type": "enum", "labels": {"0": ""}}), NO_NAME),
        (regs({**REG, "type": "enum", "labels": {"0": 3}}), NO_NAME),
        (
            regs({**REG, "word_order": "x: y"}),
            "registers[0] (a).word_order: must be 'big' or 'little', got 'x: y'",
        ),
        (regs(REG, {**REG, "address": 0}), "registers[1].address: 0 repeats registers[0]"),
        (regs(REG, {**REG, "address": 1}), "registers[1].name: 'a' repeats registers[0]"),
    ],
)
def test_parse_errors_say_exactly_where_and_what(data: dict[str, Any], message: str) -> None:
    full: dict[str, Any] = {"model": "M", "registers": [REG], **data}
    with pytest.raises(DeviceMapError) as info:
        parse_device_map(full, name="x")
    assert str(info.value) == f"<memory>: {message}"


def test_a_register_error_names_its_key_apart_from_the_message() -> None:
    with pytest.raises(DeviceMapError) as info:
        parse_device_map({"model": "M", **regs({**REG, "word_order": "x: y"})}, name="x")
    assert info.value.key == "registers[0] (a).word_order"
    assert info.value.detail == "must be 'big' or 'little', got 'x: y'"
