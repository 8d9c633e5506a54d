"""Payloads of the standard commands, fast: build requests, parse replies, match replies.

The command registry (:mod:`frames.commands`) declares these layouts with construct; these are
hand-written fast paths for what a master does per transaction, and the tests check them
against the construct layouts. Pure.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from .commands import MAX_READ_COUNT, STANDARD, CommandRegistry
from .errors import FrameValueError, PayloadError
from .frame import Frame

__all__ = [
    "parse_read_registers",
    "read_registers_request",
    "reply_fits",
    "write_register_request",
    "write_registers_request",
]


def read_registers_request(start: int, count: int) -> bytes:
    if not 0 <= start <= 0xFFFF:
        raise FrameValueError(f"register {start} is not 0..65535")
    if not 1 <= count <= MAX_READ_COUNT:
        raise FrameValueError(f"register count {count} is not 1..{MAX_READ_COUNT}")
    return struct.pack("<HB", start, count)


_U16S = tuple(struct.Struct(f"<{n}H") for n in range(256))  # n registers, little-endian


def parse_read_registers(data: bytes, count: int | None = None) -> list[int]:
    if not data or len(data) != 1 + 2 * data[0] or (count is not None and data[0] != count):
        raise PayloadError(f"bad read_regs response payload {data.hex()}")
    return list(_U16S[data[0]].unpack_from(data, 1))


def write_register_request(reg: int, value: int) -> bytes:
    if not 0 <= reg <= 0xFFFF or not 0 <= value <= 0xFFFF:
        raise FrameValueError(f"register {reg} / value {value} must be 0..65535")
    return struct.pack("<HH", reg, value)


def write_registers_request(start: int, values: Sequence[int]) -> bytes:
    if not 0 <= start <= 0xFFFF:
        raise FrameValueError(f"register {start} is not 0..65535")
    if not 1 <= len(values) <= MAX_READ_COUNT:
        raise FrameValueError(f"{len(values)} values is not 1..{MAX_READ_COUNT}")
    if any(not 0 <= v <= 0xFFFF for v in values):
        raise FrameValueError("register values must be 0..65535")
    return struct.pack(f"<HB{len(values)}H", start, len(values), *values)


def _fits_read_regs(req: bytes, rep: bytes) -> bool:
    return len(req) != 3 or (len(rep) == 1 + 2 * req[2] and rep[0] == req[2])


_REPLY_CHECKS: dict[str, Callable[[bytes, bytes], bool]] = {
    "echo": lambda req, rep: req == rep,
    "write_reg": lambda req, rep: req == rep,
    "write_regs": lambda req, rep: rep == req[:3],
    "read_regs": _fits_read_regs,
}


def reply_fits(request: Frame, reply: Frame, registry: CommandRegistry = STANDARD) -> bool:
    """Could ``reply`` be the answer to ``request``? Address and command (or its error form)
    must match; for the standard commands the payload must also agree with the request."""
    if reply.addr != request.addr or reply.base_cmd != request.cmd:
        return False
    if reply.is_error:
        return True
    command = registry.find(request.cmd)
    check = _REPLY_CHECKS.get(command.name) if command is not None else None
    return check is None or check(request.data, reply.data)
