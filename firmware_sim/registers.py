"""One register of a device's map: its wire type, scale and unit, and raw ↔ value conversion.

On the wire every register is a u16 word. A profile gives it meaning: ``i16`` words are two's
complement, ``scale`` turns the integer into engineering units (raw 2150 * 0.01 = 21.5 °C).
The bridge uses these to name and scale register fields on dashboards, so the conversions live
here, in one place, and are exact inverses for every representable value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .behaviours import Behaviour, Constant
from .errors import RegisterError

__all__ = ["TYPES", "Register", "RegisterType"]

RegisterType = Literal["u16", "i16"]
# (lowest, highest) integer each type can hold.
TYPES: dict[str, tuple[int, int]] = {"u16": (0, 0xFFFF), "i16": (-0x8000, 0x7FFF)}

ILLEGAL_VALUE = 3


@dataclass(frozen=True)
class Register:
    """A register as a profile declares it. ``initial``, ``minimum`` and ``maximum`` are in
    engineering units (after ``scale``)."""

    address: int
    name: str
    type: RegisterType = "u16"
    scale: float = 1.0
    unit: str = ""
    writable: bool = False
    initial: float = 0.0
    behaviour: Behaviour = field(default_factory=Constant)
    minimum: float | None = None  # writes outside [minimum, maximum] get "illegal value"
    maximum: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"address: {self.address} is not 0..65535")
        if self.type not in TYPES:
            raise ValueError(f"type: {self.type!r} is not one of {sorted(TYPES)}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale: must be a positive number, got {self.scale}")

    @property
    def signed(self) -> bool:
        return self.type == "i16"

    def to_int(self, raw: int) -> int:
        """The u16 word as the register's integer (two's complement for ``i16``)."""
        raw &= 0xFFFF
        return raw - 0x10000 if self.signed and raw >= 0x8000 else raw

    def to_value(self, raw: int) -> float | int:
        """Raw u16 word → engineering value. An int when ``scale`` is 1 (counts stay counts)."""
        n = self.to_int(raw)
        if self.scale == 1.0:
            return n
        # round() trims binary noise (2150 * 0.01 = 21.500000000000004) to the scale's digits.
        return round(n * self.scale, _digits(self.scale))

    def to_raw(self, value: float, *, wrap: bool = False) -> int:
        """Engineering value → u16 word. Out of range raises :class:`RegisterError` (code 3),
        unless ``wrap`` (counters), which wraps at the register width."""
        if isinstance(value, bool) or not math.isfinite(value):
            raise RegisterError(ILLEGAL_VALUE, f"{self.name}: {value!r} is not a finite number")
        n = round(value / self.scale)
        low, high = TYPES[self.type]
        if wrap:
            return n & 0xFFFF
        if not low <= n <= high:
            raise RegisterError(
                ILLEGAL_VALUE,
                f"{self.name}: {value} does not fit {self.type} at scale {self.scale}",
            )
        return n & 0xFFFF

    def clamp_raw(self, value: float) -> int:
        """Engineering value → u16 word, clamped to the type's range (for live signals)."""
        low, high = TYPES[self.type]
        n = round(value / self.scale) if math.isfinite(value) else 0
        return min(max(n, low), high) & 0xFFFF

    def check_write(self, raw: int) -> None:
        """Refuse a raw word outside ``[minimum, maximum]`` with code 3 (illegal value)."""
        value = self.to_value(raw)
        if self.minimum is not None and value < self.minimum:
            raise RegisterError(ILLEGAL_VALUE, f"{self.name}: {value} is below {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise RegisterError(ILLEGAL_VALUE, f"{self.name}: {value} is above {self.maximum}")


def _digits(scale: float) -> int:
    """Decimal places that represent multiples of ``scale`` (0.01 → 2, 0.5 → 1, 10 → 0)."""
    for digits in range(12):
        if abs(round(scale, digits) - scale) < 1e-12 * max(1.0, scale):
            return digits
    return 12
