"""Encode and decode one whole frame.

The fast paths here use the :class:`~frames.format.Layout` measured from the construct Struct;
:func:`frames.format.build_with_construct` and ``fmt.struct.parse`` remain the reference.
"""

from __future__ import annotations

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
from .frame import Frame

__all__ = ["decode", "encode", "encode_frame"]

Buffer = bytes | bytearray | memoryview


def encode(addr: int, cmd: int, data: Buffer = b"", fmt: FrameFormat = DEFAULT_FORMAT) -> bytes:
    """Bytes on the wire for one frame. Raises :class:`FrameValueError` for impossible input."""
    if not 0 <= addr <= 0xFF:
        raise FrameValueError(f"address {addr} is not 0..255")
    if not 0 <= cmd <= 0xFF:
        raise FrameValueError(f"command {cmd} is not 0..255")
    data = bytes(data)
    lay = fmt.layout
    if len(data) > lay.max_payload:
        raise FrameValueError(f"payload of {len(data)} bytes exceeds max_payload {lay.max_payload}")
    head = bytes((lay.start, addr, cmd, len(data)))
    covered = head[lay.crc_from :] + data
    crc = fmt.crc_function(covered).to_bytes(lay.crc_size, "little" if lay.crc_little else "big")
    out = head + data + crc
    if lay.end is not None:
        out += bytes((lay.end,))
    return out


def encode_frame(frame: Frame, fmt: FrameFormat = DEFAULT_FORMAT) -> bytes:
    return encode(frame.addr, frame.cmd, frame.data, fmt)


def decode(buf: Buffer, fmt: FrameFormat = DEFAULT_FORMAT) -> Frame:
    """Exactly one frame from ``buf``; any defect raises a :class:`~frames.errors.FrameError`."""
    lay = fmt.layout
    buf = bytes(buf)
    n = len(buf)
    if n == 0:
        raise Truncated("empty input")
    if buf[0] != lay.start:
        raise BadStart(f"first byte 0x{buf[0]:02x} is not the start byte 0x{lay.start:02x}")
    if n < lay.min_size:
        raise Truncated(f"{n} bytes is shorter than the smallest frame ({lay.min_size})")
    length = buf[lay.length_offset]
    if length > lay.max_payload:
        raise BadLength(f"declared length {length} exceeds max_payload {lay.max_payload}")
    total = lay.min_size + length
    if n < total:
        raise Truncated(f"declared length {length} needs {total} bytes, got {n}")
    if n > total:
        raise TrailingBytes(f"{n - total} bytes after the end of the frame")
    crc_at = lay.header_size + length
    expected = fmt.crc_function(buf[lay.crc_from : crc_at])
    received = int.from_bytes(
        buf[crc_at : crc_at + lay.crc_size], "little" if lay.crc_little else "big"
    )
    if expected != received:
        raise CrcMismatch(expected, received)
    if lay.end is not None and buf[total - 1] != lay.end:
        raise BadEnd(f"end byte 0x{buf[total - 1]:02x} is not 0x{lay.end:02x}")
    return Frame(buf[lay.addr_offset], buf[lay.cmd_offset], buf[lay.header_size : crc_at])
