"""Frame formats as values, and the construct Struct that is the layout's single source of truth.

The default frame is ``0xAA | addr | cmd | len | data[len] | crc16`` (CRC-16/MODBUS over
addr..data, little-endian). The opt-in *tagged* variant (``FrameFormat(tagged=True)``) adds one
transaction-tag byte after ``cmd`` (``0xAA | addr | cmd | tag | len | data | crc16``, the CRC
covering the tag like the other header bytes): the slave echoes it, so a master can tell a late
reply from the one it waits for, which the default format cannot do with certainty.

Real devices differ in details, so a :class:`FrameFormat` names the variant and
:func:`frame_struct` builds the matching ``construct`` Struct from it.

construct is declarative but slow (~200k frames/s compiled, and ``Checksum``/``RawCopy`` do not
compile), so the hot paths in :mod:`frames.codec` and :mod:`frames.stream` run on a
:class:`Layout`: offsets and sizes *measured from the Struct* (never typed in twice). A test checks
the fast paths against the Struct's own ``parse``/``build`` on random frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from construct import Bytes as CBytes
from construct import (
    BytesInteger,
    Checksum,
    Const,
    Construct,
    Int8ub,
    Pass,
    RawCopy,
    Rebuild,
    Struct,
    len_,
    this,
)

from .crc import CrcFunction, crc_function, crc_width
from .errors import FrameValueError

__all__ = ["DEFAULT_FORMAT", "FrameFormat", "Layout", "frame_struct"]


@dataclass(frozen=True)
class FrameFormat:
    """One frame variant. Frozen and hashable, so it can key caches and be shared freely."""

    start: int = 0xAA
    end: int | None = None
    crc: str = "modbus"
    crc_byteorder: Literal["little", "big"] = "little"
    crc_covers_start: bool = False
    max_payload: int = 255
    tagged: bool = False  # a transaction-tag byte between cmd and len, echoed by the slave

    def __post_init__(self) -> None:
        if not 0 <= self.start <= 0xFF:
            raise FrameValueError(f"start byte {self.start} is not a byte")
        if self.end is not None and not 0 <= self.end <= 0xFF:
            raise FrameValueError(f"end byte {self.end} is not a byte")
        if not 0 <= self.max_payload <= 255:
            raise FrameValueError("max_payload must be 0..255 (the length field is one byte)")
        if self.crc_byteorder not in ("little", "big"):
            raise FrameValueError("crc_byteorder must be 'little' or 'big'")
        crc_width(self.crc)  # raises FrameValueError for an unknown variant

    @cached_property
    def struct(self) -> Construct:
        return frame_struct(self)

    @cached_property
    def layout(self) -> Layout:
        return Layout.from_format(self)

    @cached_property
    def crc_function(self) -> CrcFunction:
        return crc_function(self.crc)

    def describe(self) -> str:
        end = f" | 0x{self.end:02X}" if self.end is not None else ""
        covers = "start..data" if self.crc_covers_start else "addr..data"
        tag = " tag |" if self.tagged else ""
        return (
            f"0x{self.start:02X} | addr | cmd |{tag} len | data[len<={self.max_payload}] | "
            f"{self.crc} over {covers} ({self.crc_byteorder}-endian){end}"
        )


DEFAULT_FORMAT = FrameFormat()


def _crc_field(fmt: FrameFormat) -> Construct:
    return BytesInteger(crc_width(fmt.crc), swapped=fmt.crc_byteorder == "little")


def frame_struct(fmt: FrameFormat) -> Construct:
    """The construct Struct for ``fmt``: parse checks the start byte, CRC and end byte."""
    crc_fun = crc_function(fmt.crc)
    start = "start" / Const(bytes([fmt.start]))
    body_fields: list[Any] = [
        "addr" / Int8ub,
        "cmd" / Int8ub,
        *(["tag" / Int8ub] if fmt.tagged else []),
        "length" / Rebuild(Int8ub, len_(this.data)),
        "data" / CBytes(this.length),
    ]
    if fmt.crc_covers_start:
        head: list[Any] = ["covered" / RawCopy(Struct(start, *body_fields))]
    else:
        head = [start, "covered" / RawCopy(Struct(*body_fields))]
    tail: Any = "end" / Const(bytes([fmt.end])) if fmt.end is not None else "end" / Pass
    return Struct(
        *head,
        "crc" / Checksum(_crc_field(fmt), lambda data: crc_fun(data), this.covered.data),
        tail,
    )


@dataclass(frozen=True)
class Layout:
    """Byte offsets of one format, measured from its construct Struct for the fast paths."""

    start: int
    end: int | None
    header_size: int  # bytes before data: start, addr, cmd, (tag,) len
    addr_offset: int
    cmd_offset: int
    length_offset: int
    tag_offset: int | None  # None: the format has no tag
    crc_from: int  # first byte the CRC covers
    crc_size: int
    crc_little: bool
    trailer_size: int  # crc + end byte
    max_payload: int

    @property
    def min_size(self) -> int:
        return self.header_size + self.trailer_size

    @property
    def max_size(self) -> int:
        return self.min_size + self.max_payload

    @classmethod
    def from_format(cls, fmt: FrameFormat) -> Layout:
        # Build two frames with construct and read the offsets off the bytes, so the Struct
        # stays the one place that says where each field sits.
        struct = fmt.struct
        probe_a = struct.build({"covered": {"value": _fields(fmt, 0x11, 0x22, b"", 0x33)}})
        probe_b = struct.build({"covered": {"value": _fields(fmt, 0x11, 0x22, b"\x5a", 0x33)}})
        head = bytes([0x11, 0x22, 0x33, 0x00] if fmt.tagged else [0x11, 0x22, 0x00])
        header_size = probe_a.index(head) + len(head)
        if probe_b[header_size] != 0x5A:
            raise AssertionError("data does not follow the header in the Struct")
        crc_size = crc_width(fmt.crc)
        end_size = 0 if fmt.end is None else 1
        if len(probe_a) != header_size + crc_size + end_size:
            raise AssertionError("Struct size disagrees with the measured layout")
        addr_offset = header_size - len(head)
        return cls(
            start=fmt.start,
            end=fmt.end,
            header_size=header_size,
            addr_offset=addr_offset,
            cmd_offset=addr_offset + 1,
            length_offset=header_size - 1,
            tag_offset=addr_offset + 2 if fmt.tagged else None,
            crc_from=0 if fmt.crc_covers_start else addr_offset,
            crc_size=crc_size,
            crc_little=fmt.crc_byteorder == "little",
            trailer_size=crc_size + end_size,
            max_payload=fmt.max_payload,
        )


def _fields(fmt: FrameFormat, addr: int, cmd: int, data: bytes, tag: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"addr": addr, "cmd": cmd, "data": data}
    if fmt.tagged:
        fields["tag"] = tag
    if fmt.crc_covers_start:
        fields["start"] = bytes([fmt.start])
    return fields


def build_with_construct(fmt: FrameFormat, addr: int, cmd: int, data: bytes, tag: int = 0) -> bytes:
    """Reference encoder (slow): construct's own ``build``. Used by tests and the docs."""
    out: bytes = fmt.struct.build({"covered": {"value": _fields(fmt, addr, cmd, data, tag)}})
    return out
