"""A C header from a device's register map, so the firmware and the dashboard share one definition.

``render_header(device_map)`` is pure: it takes a :class:`frames.devicemap.DeviceMap` (or any
object with ``.registers`` of :class:`frames.register.RegisterDef`-like values and optional
``.name``/``.model``) and returns the header text. For each register it writes the
address, scale, unit and limits as macros, and one initializer for the firmware library's
``fb_reg_def`` table (firmware/fb_slave.h), with the limits converted to raw words exactly as
the host checks them: a write of raw ``n`` is refused when ``n * scale`` is outside
``[min, max]``, so ``MIN_RAW = ceil(min / scale)`` and ``MAX_RAW = floor(max / scale)``
(tests/firmware/test_codegen.py checks the two agree word by word near every limit).

32-bit registers (u32, i32, f32) take two words; the firmware's per-word check cannot see the
combined value, so their limits are written as engineering macros only, not enforced per word.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import FrameValueError

__all__ = ["CRegister", "c_identifier", "raw_limits", "render_header"]

_TWO_WORDS = {"u32", "i32", "f32"}
_SIGNED = {"i16", "i32"}


@dataclass(frozen=True)
class CRegister:
    """What the header needs from one register, read off a RegisterDef-like object."""

    address: int
    name: str
    type: str
    scale: float
    unit: str
    writable: bool
    min: float | None
    max: float | None
    description: str

    @classmethod
    def of(cls, reg: Any) -> CRegister:
        return cls(
            address=int(reg.address),
            name=str(reg.name),
            type=str(getattr(reg, "type", "u16")),
            scale=float(getattr(reg, "scale", 1.0)),
            unit=str(getattr(reg, "unit", "")),
            writable=bool(getattr(reg, "writable", False)),
            min=getattr(reg, "min", None),
            max=getattr(reg, "max", None),
            description=str(getattr(reg, "description", "")),
        )

    @property
    def words(self) -> int:
        return 2 if self.type in _TWO_WORDS else 1


def c_identifier(text: str) -> str:
    """``"Power meter/1"`` → ``"POWER_METER_1"``: upper case, anything else an underscore."""
    ident = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").upper()
    if not ident:
        raise FrameValueError(f"{text!r} has no letters or digits for a C name")
    return f"R_{ident}" if ident[0].isdigit() else ident


def raw_limits(reg: CRegister) -> tuple[int | None, int | None]:
    """The raw-word bounds the host enforces: ``[min, max]`` at this scale; 0..1 for a bool."""
    lo = hi = None
    # The tolerance absorbs binary noise (35 / 0.01 = 3499.9999999999995) the way the host's
    # rounding of n * scale to the scale's digits does.
    if reg.min is not None:
        lo = math.ceil(reg.min / reg.scale - 1e-9)
    if reg.max is not None:
        hi = math.floor(reg.max / reg.scale + 1e-9)
    if reg.type == "bool":  # the host refuses anything but 0 and 1 (error 3)
        lo = 0 if lo is None else lo
        hi = 1 if hi is None else hi
    return lo, hi


def _c_string(text: str) -> str:
    """A C string literal; non-ASCII as octal escapes (a hex escape would eat what follows)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    return text.replace("*/", "* /").replace("\n", " ")


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else f"{float(value):.1f}"


def _register_lines(prefix: str, reg: CRegister) -> list[str]:
    name = f"{prefix}_{c_identifier(reg.name)}"
    access = "writable" if reg.writable else "read-only"
    unit = f" {reg.unit}" if reg.unit else ""
    lines = [
        f"/* {_comment(reg.name)}: {reg.type}, x{reg.scale:g}{_comment(unit)}, {access}"
        + (f" -- {_comment(reg.description)}" if reg.description else "")
        + " */",
        f"#define {name} {reg.address}u",
        f"#define {name}_SCALE {_number(reg.scale)}",
        f"#define {name}_UNIT {_c_string(reg.unit)}",
    ]
    if reg.min is not None:
        lines.append(f"#define {name}_MIN {_number(reg.min)}")
    if reg.max is not None:
        lines.append(f"#define {name}_MAX {_number(reg.max)}")
    if reg.words == 1:
        lo, hi = raw_limits(reg)
        if lo is not None:
            lines.append(f"#define {name}_MIN_RAW ({lo})")
        if hi is not None:
            lines.append(f"#define {name}_MAX_RAW ({hi})")
    return lines


def _defs(regs: Iterable[CRegister]) -> list[str]:
    """``fb_reg_def`` entries, one per word, sorted by address (fb_slave_find needs that)."""
    entries: list[tuple[int, str]] = []
    for reg in regs:
        for word in range(reg.words):
            flags = []
            if reg.writable:
                flags.append("FB_REG_WRITABLE")
            lo = hi = None
            if reg.words == 1:
                if reg.type in _SIGNED:
                    flags.append("FB_REG_SIGNED")
                lo, hi = raw_limits(reg)
                if lo is not None:
                    flags.append("FB_REG_MIN")
                if hi is not None:
                    flags.append("FB_REG_MAX")
            address = reg.address + word
            text = " | ".join(flags) or "0"
            entries.append((address, f"{{{address}u, {text}, {lo or 0}, {hi or 0}}}"))
    entries.sort()
    for (a, _), (b, _) in itertools.pairwise(entries):
        if a == b:
            raise FrameValueError(f"two registers at address {a}")
    return [text for _, text in entries]


def render_header(device_map: Any, *, prefix: str | None = None, source: str = "") -> str:
    """The header text for ``device_map`` (see the module docstring)."""
    name = str(getattr(device_map, "name", "device"))
    prefix = c_identifier(prefix or name)
    regs = sorted((CRegister.of(r) for r in device_map.registers), key=lambda r: r.address)
    guard = f"FB_MAP_{prefix}_H"
    if not regs:
        raise FrameValueError(f"{name}: no registers to generate a header for")
    defs = _defs(regs)
    lines = [
        f"/* Generated by `framebridge codegen c`{' from ' + _comment(source) if source else ''}."
        " Do not edit: regenerate. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        '#include "fb_slave.h"',
        "",
    ]
    model = getattr(device_map, "model", None)
    if model:
        lines.append(f"#define {prefix}_MODEL {_c_string(str(model))}")
    lines += [f"#define {prefix}_REG_COUNT {len(defs)}u", ""]
    for reg in regs:
        lines += [*_register_lines(prefix, reg), ""]
    lines += [
        "/* static const fb_reg_def defs[] = " + prefix + "_REG_DEFS; (sorted by address) */",
        f"#define {prefix}_REG_DEFS \\",
        "    { \\",
        *(f"        {d}, \\" for d in defs),
        "    }",
        "",
        f"#endif /* {guard} */",
    ]
    return "\n".join(lines) + "\n"
