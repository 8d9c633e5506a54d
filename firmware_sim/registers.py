"""A simulated register: a ``frames`` register definition plus what the simulator adds.

What a register *is* (address, type, scale, unit, limits, words ↔ value) is
:class:`frames.register.RegisterDef`, shared with the bridge and the dashboard. A simulated
register adds its ``initial`` value and its ``behaviour`` (how it moves over time), and the
conversions a device needs on top: values that wrap (counters) or clamp (live signals) instead
of being refused, and refusals as :class:`~firmware_sim.errors.RegisterError` with the device
error code (3, illegal value) the device answers with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from frames.errors import FrameValueError
from frames.register import INT_RANGE, REGISTER_TYPES, RegisterDef, Value

from .behaviours import Behaviour, Constant
from .errors import RegisterError

__all__ = ["TYPES", "Register"]

TYPES = REGISTER_TYPES

ILLEGAL_VALUE = 3
_F32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Register(RegisterDef):
    """A register as a profile declares it. ``initial``, ``min`` and ``max`` are in engineering
    units (after ``scale``)."""

    initial: float = 0.0
    behaviour: Behaviour = field(default_factory=Constant)

    # -- words ↔ value, as a device needs them ----------------------------------------------

    def value_of(self, words: Sequence[int]) -> Value:
        return self.decode(words)

    def to_words(self, value: float, *, wrap: bool = False) -> list[int]:
        """Value → words. Out of range raises :class:`RegisterError` (code 3), unless ``wrap``
        (counters), which wraps at the register width."""
        if isinstance(value, bool) or not math.isfinite(value):
            raise RegisterError(ILLEGAL_VALUE, f"{self.name}: {value!r} is not a finite number")
        if wrap and self.type != "f32":
            return self.raw_words(round(value / self.scale))
        try:
            return self.encode(value)
        except FrameValueError as exc:
            raise RegisterError(ILLEGAL_VALUE, str(exc)) from exc

    def clamp_words(self, value: float) -> list[int]:
        """Value → words, clamped to what the type holds (for live signals)."""
        if self.type == "f32":
            finite = value if math.isfinite(value) else 0.0
            return self.encode(min(max(finite / self.scale, -_F32_MAX), _F32_MAX) * self.scale)
        low, high = INT_RANGE[self.type]
        n = round(value / self.scale) if math.isfinite(value) else 0
        return self.raw_words(min(max(n, low), high))

    def check_write_words(self, words: Sequence[int]) -> None:
        """Refuse words a device would not take with code 3 (illegal value): outside
        ``[min, max]``, a bool other than 0/1, an enum value without a label, a NaN."""
        value = self.decode(words)
        try:
            if value is None or self.encode(value) != list(words):
                raise FrameValueError(f"{self.name}: {list(words)} is not a valid {self.type}")
            self.check_limits(value)
        except FrameValueError as exc:
            raise RegisterError(ILLEGAL_VALUE, str(exc)) from exc

    # -- one-word shorthands ----------------------------------------------------------------

    def to_value(self, raw: int) -> Value:
        """Raw u16 word → value (a one-word register)."""
        return self.decode([raw & 0xFFFF])

    def to_raw(self, value: float, *, wrap: bool = False) -> int:
        """Value → raw u16 word (a one-word register); see :meth:`to_words`."""
        return self.to_words(value, wrap=wrap)[0]

    def clamp_raw(self, value: float) -> int:
        return self.clamp_words(value)[0]

    def check_write(self, raw: int) -> None:
        self.check_write_words([raw])
