"""Raw u16 words ↔ engineering values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.errors import RegisterError
from firmware_sim.registers import Register


def test_i16_sign_and_scale() -> None:
    reg = Register(0, "t", type="i16", scale=0.01, unit="°C")
    assert reg.to_value(2150) == 21.5
    assert reg.to_value(0xFFFF) == -0.01
    assert reg.to_value(0x8000) == -327.68
    assert reg.to_raw(-0.01) == 0xFFFF
    assert reg.to_raw(21.5) == 2150


def test_unit_scale_gives_ints() -> None:
    reg = Register(0, "n")
    assert reg.to_value(65535) == 65535 and isinstance(reg.to_value(3), int)


@pytest.mark.parametrize("value", [-0.01, 655.36, float("nan"), float("inf")])
def test_out_of_range_is_illegal_value(value: float) -> None:
    reg = Register(0, "v", scale=0.01)
    with pytest.raises(RegisterError) as info:
        reg.to_raw(value)
    assert info.value.code == 3


def test_wrap_and_clamp() -> None:
    reg = Register(0, "c")
    assert reg.to_raw(65537, wrap=True) == 1
    assert reg.clamp_raw(70000) == 65535 and reg.clamp_raw(-5) == 0
    signed = Register(0, "s", type="i16")
    assert signed.clamp_raw(-40000) == 0x8000


def test_check_write_limits() -> None:
    reg = Register(0, "sp", scale=0.1, min=5, max=35)
    reg.check_write(50)
    for raw in (49, 351):
        with pytest.raises(RegisterError) as info:
            reg.check_write(raw)
        assert info.value.code == 3


@pytest.mark.parametrize(("kwargs", "key"), [({"type": "u64"}, "type"), ({"scale": 0}, "scale")])
def test_bad_register_definition(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}:"):
        Register(0, "x", **kwargs)  # type: ignore[arg-type]


@given(
    raw=st.integers(0, 0xFFFF),
    signed=st.booleans(),
    scale=st.sampled_from([1.0, 0.1, 0.01, 0.001, 0.5, 0.25, 10.0]),
)
def test_raw_value_round_trip(raw: int, signed: bool, scale: float) -> None:
    reg = Register(0, "x", type="i16" if signed else "u16", scale=scale)
    assert reg.to_raw(reg.to_value(raw)) == raw
