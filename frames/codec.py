"""Encode and decode one whole frame.

The fast paths here use the :class:`~frames.format.Layout` measured from the construct Struct;
:func:`frames.format.build_with_construct` and ``fmt.struct.parse`` remain the reference.
"""

from __future__ import annotations

from typing import Literal

from .commands import STANDARD, CommandRegistry
from .crc import RawCrc, raw_crc
from .errors import (
    BadEnd,
    BadLength,
    BadStart,
    CrcMismatch,
    FrameValueError,
    TrailingBytes,
    Truncated,
)
from .format import DEFAULT_FORMAT, FrameFormat
from .frame import Frame, TaggedFrame

__all__ = ["decode", "encode", "encode_frame"]

Buffer = bytes | bytearray | memoryview

_new_frame = tuple.__new__

# Per format, what the fast paths need, computed once: the Layout's numbers, crcmod's C function
# called directly (``raw_crc``) and the variant's CRC residue. Keyed by ``id(fmt)`` with the format
# kept alongside (hashing a dataclass on every call would cost more than the encoding itself).
_Fast = tuple[
    int, int, int, int, int, int, int, bool, bytes, int, int, int | None, int | None,
    RawCrc, int, object, int,
]  # fmt: skip
_FAST: dict[int, tuple[FrameFormat, _Fast]] = {}
_FAST_MAX = 64


def _fast(fmt: FrameFormat) -> _Fast:
    hit = _FAST.get(id(fmt))
    if hit is not None and hit[0] is fmt:
        return hit[1]
    lay = fmt.layout
    cfun, cinit, ctable = raw_crc(fmt.crc)
    consts: _Fast = (
        lay.start,
        lay.header_size,
        lay.length_offset,
        lay.addr_offset,
        lay.cmd_offset,
        lay.crc_from,
        lay.crc_size,
        lay.crc_little,
        b"" if lay.end is None else bytes((lay.end,)),
        lay.min_size,
        lay.max_payload,
        lay.end,
        crc_residue(fmt),
        cfun,
        cinit,
        ctable,
        -1 if lay.tag_offset is None else lay.tag_offset,
    )
    if len(_FAST) >= _FAST_MAX:  # formats are long-lived values; this only bounds misuse
        _FAST.clear()
    _FAST[id(fmt)] = (fmt, consts)
    return consts


def crc_residue(fmt: FrameFormat) -> int | None:
    """CRC over (message + its CRC bytes) when that is the same for every message, else None.

    True for reflected CRCs sent little-endian and plain ones sent big-endian (MODBUS: 0), which
    lets a frame be checked with one C call and no byte juggling.
    """
    lay = fmt.layout
    order: Literal["little", "big"] = "little" if lay.crc_little else "big"
    seen = set()
    for msg in (b"", b"\x01\x02\x03", b"\xfe\x99\x00\x42\xaa", bytes(range(40))):
        crc = fmt.crc_function(msg).to_bytes(lay.crc_size, order)
        seen.add(fmt.crc_function(msg + crc))
    return seen.pop() if len(seen) == 1 else None


_DEFAULT_FAST = _fast(DEFAULT_FORMAT)  # the common case skips even the cache lookup


def encode(
    addr: int,
    cmd: int | str,
    data: Buffer = b"",
    fmt: FrameFormat = DEFAULT_FORMAT,
    tag: int | None = None,
    registry: CommandRegistry = STANDARD,
) -> bytes:
    """Bytes on the wire for one frame. Raises :class:`FrameValueError` for impossible input.

    ``cmd`` is a code or a command name the registry knows (``"read_regs"``), as on the command
    line. ``tag`` is the transaction tag of a tagged format (0 when not given); an untagged
    format refuses one. (Not keyword-only on purpose: CPython 3.11 specialises calls to
    functions without keyword-only parameters, ~90 ns of this function's ~600.)
    """
    if cmd.__class__ is not int:  # a name (``"read_regs"``): resolved off the hot path
        cmd = registry.resolve_code(cmd)
    if not (0 <= addr <= 0xFF and 0 <= cmd <= 0xFF):
        raise FrameValueError(
            f"address {addr} is not 0..255" if not 0 <= addr <= 0xFF else
            f"command {cmd} is not 0..255"
        )  # fmt: skip
    data = bytes(data)
    start, _, _, _, _, cfrom, cs, little, tail, _, maxp, _, _, cfun, cinit, ctable, to = (
        _DEFAULT_FAST if fmt is DEFAULT_FORMAT else _fast(fmt)
    )
    n = len(data)
    if n > maxp:
        raise FrameValueError(f"payload of {n} bytes exceeds max_payload {maxp}")
    if to < 0:
        if tag is not None:
            raise FrameValueError("this frame format has no tag (FrameFormat(tagged=True) has)")
        body = bytes((start, addr, cmd, n)) + data
    else:
        t = 0 if tag is None else tag
        if not 0 <= t <= 0xFF:
            raise FrameValueError(f"tag {t} is not 0..255")
        body = bytes((start, addr, cmd, t, n)) + data
    crc = cfun(body[cfrom:] if cfrom else body, cinit, ctable)
    return body + crc.to_bytes(cs, "little" if little else "big") + tail


def encode_frame(frame: Frame, fmt: FrameFormat = DEFAULT_FORMAT) -> bytes:
    """``frame`` on the wire; a :class:`TaggedFrame`'s tag goes into a tagged format."""
    return encode(frame.addr, frame.cmd, frame.data, fmt, tag=frame.tag if fmt.tagged else None)


def decode(buf: Buffer, fmt: FrameFormat = DEFAULT_FORMAT) -> Frame:
    """Exactly one frame from ``buf``; any defect raises a :class:`~frames.errors.FrameError`."""
    (start, hs, lo, ao, co, cfrom, cs, little, _, mins, maxp, endb, residue, cfun, cinit, ctable,
     to) = _DEFAULT_FAST if fmt is DEFAULT_FORMAT else _fast(fmt)  # fmt: skip
    buf = bytes(buf)
    n = len(buf)
    if n == 0:
        raise Truncated("empty input")
    if buf[0] != start:
        raise BadStart(f"first byte 0x{buf[0]:02x} is not the start byte 0x{start:02x}")
    if n < mins:
        raise Truncated(f"{n} bytes is shorter than the smallest frame ({mins})")
    length = buf[lo]
    if length > maxp:
        raise BadLength(f"declared length {length} exceeds max_payload {maxp}")
    total = mins + length
    if n < total:
        raise Truncated(f"declared length {length} needs {total} bytes, got {n}")
    if n > total:
        raise TrailingBytes(f"{n - total} bytes after the end of the frame")
    crc_at = hs + length
    # One C call over the frame with its CRC where the variant has a residue; the two values
    # are computed only to report a mismatch (or for variants without a residue).
    if residue is None or cfun(buf[cfrom : crc_at + cs], cinit, ctable) != residue:
        expected = cfun(buf[cfrom:crc_at], cinit, ctable)
        received = int.from_bytes(buf[crc_at : crc_at + cs], "little" if little else "big")
        if expected != received:
            raise CrcMismatch(expected, received)
    if endb is not None and buf[total - 1] != endb:
        raise BadEnd(f"end byte 0x{buf[total - 1]:02x} is not 0x{endb:02x}")
    if to >= 0:
        return _new_frame(TaggedFrame, (buf[ao], buf[co], buf[hs:crc_at], buf[to]))
    return _new_frame(Frame, (buf[ao], buf[co], buf[hs:crc_at]))
