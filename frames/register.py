"""One register of a device map: its type, scale and unit, and words ↔ value. Pure.

On the wire every register is a u16 word. A :class:`RegisterDef` gives one (or two) of them a
meaning, and :meth:`RegisterDef.decode` / :meth:`RegisterDef.encode` convert between the words
and the value, exact inverses for every representable value:

=========  =====  ===========================================================================
type       words  value
=========  =====  ===========================================================================
u16, i16   1      an int (two's complement for i16), times ``scale`` (a float unless 1)
u32, i32   2      the same over two words; ``word_order`` "big" = high word first
f32        2      IEEE 754 single over two words, times ``scale``; NaN/inf decode to None
bool       1      ``False`` for 0, ``True`` otherwise; encodes False/True or 0/1
enum       1      an int; ``labels`` names the values (encode takes a value or a label)
bitfield   1      an int; ``bits`` names bit positions (encode takes an int or {name: bool})
=========  =====  ===========================================================================

NaN and infinities decode to None (no reading) so values stay valid JSON for the bridge.
:mod:`frames.devicemap` holds the map of a whole device and its TOML loader.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import FrameValueError

__all__ = ["INT_RANGE", "REGISTER_TYPES", "RegisterDef", "Value"]

Value = int | float | bool | None
# (lowest, highest) integer of the integer types; bool/enum/bitfield are u16 words.
INT_RANGE: dict[str, tuple[int, int]] = {
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
    "bool": (0, 1),
    "enum": (0, 0xFFFF),
    "bitfield": (0, 0xFFFF),
}
REGISTER_TYPES = ("u16", "i16", "bool", "enum", "bitfield", "u32", "i32", "f32")
_WIDE = frozenset({"u32", "i32", "f32"})
_UNSCALED = frozenset({"bool", "enum", "bitfield"})


@dataclass(frozen=True)
class RegisterDef:
    """One register of a map. ``min``/``max`` (engineering units) bound what a master may write;
    the type's own range bounds what :meth:`encode` can represent at all."""

    address: int
    name: str
    type: str = "u16"
    scale: float = 1.0
    unit: str = ""
    writable: bool = False
    min: float | None = None
    max: float | None = None
    description: str = ""
    labels: Mapping[int, str] = field(default_factory=dict, hash=False)
    bits: Mapping[int, str] = field(default_factory=dict, hash=False)
    word_order: str = "big"

    def __post_init__(self) -> None:
        # The message starts with the field at fault: the loader turns it into a located error.
        if self.type not in REGISTER_TYPES:
            raise FrameValueError(f"type: must be one of {list(REGISTER_TYPES)}, got {self.type!r}")
        if not 0 <= self.address <= 0x10000 - self.count:
            raise FrameValueError(f"address: {self.address} is not 0..{0x10000 - self.count}")
        if not (isinstance(self.scale, (int, float)) and self.scale > 0):
            raise FrameValueError(f"scale: must be a positive number, got {self.scale}")
        if not math.isfinite(self.scale):
            raise FrameValueError(f"scale: must be finite, got {self.scale}")
        if self.type in _UNSCALED and self.scale != 1.0:
            raise FrameValueError(f"scale: a {self.type} register has no scale")
        if self.word_order not in ("big", "little"):
            raise FrameValueError(f"word_order: must be 'big' or 'little', got {self.word_order!r}")
        if self.labels and self.type != "enum":
            raise FrameValueError("labels: only an enum register has labels")
        if self.bits and self.type != "bitfield":
            raise FrameValueError("bits: only a bitfield register has bits")
        for value in self.labels:
            if not 0 <= value <= 0xFFFF:
                raise FrameValueError(f"labels: value {value} is not 0..65535")
        if len(set(self.labels.values())) != len(self.labels):
            raise FrameValueError("labels: two values have the same label")
        for bit in self.bits:
            if not 0 <= bit <= 15:
                raise FrameValueError(f"bits: bit {bit} is not 0..15")

    @property
    def count(self) -> int:
        """Registers (u16 words) this one spans: 2 for u32/i32/f32, else 1."""
        return 2 if self.type in _WIDE else 1

    @property
    def signed(self) -> bool:
        return self.type in ("i16", "i32")

    # -- words ↔ value ----------------------------------------------------------------------

    def decode(self, words: Sequence[int]) -> Value:
        """``count`` raw words (from this register's address on) → the value."""
        if len(words) != self.count:
            raise FrameValueError(f"{self.name}: needs {self.count} word(s), got {len(words)}")
        if any(not 0 <= w <= 0xFFFF for w in words):
            raise FrameValueError(f"{self.name}: words must be 0..65535, got {list(words)}")
        kind = self.type
        if kind == "bool":
            return bool(words[0])
        if kind == "f32":
            packed = struct.pack(">HH", *self._high_first(words))
            value = _shortest_f32(struct.unpack(">f", packed)[0], packed)
            if not math.isfinite(value):
                return None
            return value if self.scale == 1.0 else value * self.scale
        n = self.raw_int(words)
        if self.scale == 1.0:
            return n
        # round() trims binary noise (2150 * 0.01 = 21.500000000000004) to the scale's digits.
        return round(n * self.scale, _digits(self.scale))

    def encode(self, value: Any) -> list[int]:
        """The value → ``count`` raw words. Raises :class:`FrameValueError` when it does not fit
        the type (out of range, not finite, an unknown label or bit name)."""
        kind = self.type
        if kind == "enum" and isinstance(value, str):
            value = self._label_value(value)
        elif kind == "bitfield" and isinstance(value, Mapping):
            value = self._bits_value(value)
        if kind == "f32":
            return self._encode_f32(value)
        if isinstance(value, bool):
            if kind != "bool":
                raise FrameValueError(f"{self.name}: true/false is not a number")
            value = int(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FrameValueError(f"{self.name}: {value!r} is not a finite number")
        n = round(value / self.scale)
        low, high = INT_RANGE[kind]
        if not low <= n <= high or (kind in _UNSCALED and n != value):
            raise FrameValueError(
                f"{self.name}: {value} does not fit {kind}"
                + (f" at scale {self.scale}" if self.scale != 1.0 else "")
            )
        if kind == "enum" and self.labels and n not in self.labels:
            raise FrameValueError(f"{self.name}: {n} is not one of {sorted(self.labels)}")
        return self.raw_words(n)

    def raw_int(self, words: Sequence[int]) -> int:
        """The words as the register's integer before ``scale`` (two's complement if signed)."""
        if self.count == 2:
            high, low = self._high_first(words)
            n = high << 16 | low
        else:
            n = words[0]
        if self.signed and n >= 1 << (16 * self.count - 1):
            n -= 1 << (16 * self.count)
        return n

    def raw_words(self, n: int) -> list[int]:
        """The words of the integer ``n`` (before ``scale``), wrapped at the register's width."""
        n &= (1 << (16 * self.count)) - 1
        return self._from_high_first([n >> 16, n & 0xFFFF] if self.count == 2 else [n])

    def check_limits(self, value: Any) -> None:
        """Refuse a value outside ``[min, max]`` (what a device does with a bad write)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if self.min is not None and value < self.min:
            raise FrameValueError(f"{self.name}: {value} is below {self.min}")
        if self.max is not None and value > self.max:
            raise FrameValueError(f"{self.name}: {value} is above {self.max}")

    def label(self, value: int) -> str | None:
        """An enum value's label (None when unlabelled)."""
        return self.labels.get(value)

    def flags(self, value: int) -> dict[str, bool]:
        """A bitfield value's named bits."""
        return {name: bool(value >> bit & 1) for bit, name in sorted(self.bits.items())}

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for dashboards (the same keys a device file uses)."""
        out: dict[str, Any] = {
            "address": self.address,
            "name": self.name,
            "type": self.type,
            "scale": self.scale,
            "unit": self.unit,
            "writable": self.writable,
            "min": self.min,
            "max": self.max,
            "description": self.description,
            "count": self.count,
        }
        if self.labels:
            out["labels"] = {str(k): v for k, v in sorted(self.labels.items())}
        if self.bits:
            out["bits"] = {str(k): v for k, v in sorted(self.bits.items())}
        if self.count == 2:
            out["word_order"] = self.word_order
        return out

    def _high_first(self, words: Sequence[int]) -> Sequence[int]:
        return words if self.word_order == "big" else list(reversed(words))

    def _from_high_first(self, words: list[int]) -> list[int]:
        return words if self.word_order == "big" else words[::-1]

    def _encode_f32(self, value: Any) -> list[int]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FrameValueError(f"{self.name}: {value!r} is not a number")
        if not math.isfinite(value):
            raise FrameValueError(f"{self.name}: {value!r} is not a finite number")
        try:
            raw = struct.pack(">f", value / self.scale)
        except OverflowError:
            raise FrameValueError(f"{self.name}: {value} does not fit f32") from None
        return self._from_high_first(list(struct.unpack(">HH", raw)))

    def _label_value(self, label: str) -> int:
        for value, name in self.labels.items():
            if name == label:
                return value
        raise FrameValueError(
            f"{self.name}: {label!r} is not one of {sorted(self.labels.values())}"
        )

    def _bits_value(self, flags: Mapping[str, Any]) -> int:
        by_name = {name: bit for bit, name in self.bits.items()}
        n = 0
        for name, on in flags.items():
            if name not in by_name:
                raise FrameValueError(f"{self.name}: no bit {name!r} (has {sorted(by_name)})")
            if on:
                n |= 1 << by_name[name]
        return n


def _shortest_f32(value: float, packed: bytes) -> float:
    """The shortest decimal that is the same f32 (0.9795442, not 0.9795442223548889)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack(">f", short) == packed:
            return short
    return value


def _digits(scale: float) -> int:
    """Decimal places that represent multiples of ``scale`` (0.01 → 2, 0.5 → 1, 10 → 0)."""
    for digits in range(12):
        if abs(round(scale, digits) - scale) < 1e-12 * max(1.0, scale):
            return digits
    return 12
