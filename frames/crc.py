"""CRC variants by name, backed by crcmod's C extension (from the ``crcmod-plus`` distribution).

Any name from ``crcmod.predefined`` works; the aliases below cover the names firmware authors
use most. CRC-16/MODBUS is the default of the framebridge frame.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import crcmod.predefined

from .errors import FrameValueError

CrcFunction = Callable[[bytes | bytearray | memoryview], int]

ALIASES: dict[str, str] = {
    "crc-16/modbus": "modbus",
    "crc16-modbus": "modbus",
    "crc-16/ccitt-false": "crc-ccitt-false",
    "ccitt-false": "crc-ccitt-false",
    "crc-16/xmodem": "xmodem",
}


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


@cache
def crc_function(name: str) -> CrcFunction:
    """The CRC function for a crcmod predefined name (or alias)."""
    try:
        fun: CrcFunction = crcmod.predefined.mkCrcFun(canonical_name(name))
    except KeyError:
        raise FrameValueError(f"unknown CRC variant {name!r}") from None
    return fun


@cache
def crc_width(name: str) -> int:
    """Width of the CRC in bytes."""
    try:
        crc = crcmod.predefined.PredefinedCrc(canonical_name(name))
    except KeyError:
        raise FrameValueError(f"unknown CRC variant {name!r}") from None
    return int(crc.digest_size)


RawCrc = Callable[[bytes | bytearray, int, object], int]


@cache
def raw_crc(name: str) -> tuple[RawCrc, int, object]:
    """``(fun, init, table)`` such that ``fun(data, init, table)`` is the CRC of ``data``.

    For variants without a final XOR this is crcmod's C function itself, skipping the Python
    wrapper ``mkCrcFun`` returns (a third of the per-frame cost in the stream decoder).
    """
    wrapper = crc_function(name)
    defaults = getattr(wrapper, "__defaults__", None)
    if getattr(wrapper, "__closure__", True) is None and defaults and len(defaults) == 3:
        init, table, fun = defaults
        return fun, int(init), table

    def call(data: bytes | bytearray, _init: int, _table: object) -> int:
        return wrapper(data)

    return call, 0, None
