"""A Wireshark dissector (Lua) generated from a frame format and a command registry. Pure.

Why generated: the offsets come from the format's :class:`~frames.format.Layout` (measured from
the construct Struct), the CRC table from crcmod's own table for the variant, and the payload
fields from each command's construct layouts, so the dissector cannot drift from the codec.

The payload compiler understands the construct pieces the standard registry uses (``Int8ub``,
``Int16ul``/``ub``, ``Int32ul``/``ub``, ``Rebuild``, ``Array`` with a fixed or earlier-field
count, ``PascalString``, ``GreedyBytes``); a command with anything else gets no payload fields
(its raw data is still shown). ``Check`` conditions are not translated. As ``framebridge
decode`` does, a payload is tried as a response first, then as a request, and the field that
holds the decoded fields as compact JSON (``framebridge.fields``) is byte-for-byte what
``json.dumps(fields, separators=(",", ":"))`` gives in Python, which is what the tests compare.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import crcmod.predefined
from construct import (
    Array,
    Check,
    Construct,
    Container,
    FormatField,
    GreedyBytes,
    Prefixed,
    Rebuild,
    Renamed,
    StringEncoded,
    Struct,
)

from .commands import STANDARD, CommandRegistry
from .crc import canonical_name
from .errors import DEVICE_ERROR_NAMES
from .format import DEFAULT_FORMAT, FrameFormat

__all__ = ["LUA_TEMPLATE_VERSION", "generate_dissector"]

LUA_TEMPLATE_VERSION = 1

_INTS = {"B": (1, "uint8"), "H": (2, "uint16"), "I": (4, "uint32"), "L": (4, "uint32")}


@dataclass(frozen=True)
class _Op:
    """One payload field: ``kind`` is u8/u16/u32 (``size``, ``le``), array, pstring or rest."""

    name: str
    kind: str
    size: int = 0
    le: bool = True
    count: int | str | None = None  # array: a fixed count or the name of an earlier field
    item: _Op | None = None


class _Unsupported(Exception):
    pass


def _int_op(name: str, con: Construct) -> _Op:
    if isinstance(con, FormatField):
        order, code = con.fmtstr[0], con.fmtstr[-1]
        if code in _INTS and len(con.fmtstr) == 2:
            return _Op(name, f"u{_INTS[code][0] * 8}", _INTS[code][0], order == "<")
    raise _Unsupported(repr(con))


def _count_ref(count: Any, earlier: list[str]) -> int | str:
    if isinstance(count, int):
        return count
    for name in earlier:  # which earlier field does ``this.<name>`` read?
        ctx = Container({n: 0 for n in earlier})
        ctx[name] = 7919
        try:
            if count(ctx) == 7919:
                return name
        except Exception:  # an expression we cannot evaluate this way
            continue
    raise _Unsupported(repr(count))


def _compile(layout: Construct | None) -> list[_Op]:
    """construct Struct → field ops; raises _Unsupported for anything else."""
    if layout is None:
        return []
    if not isinstance(layout, Struct):
        raise _Unsupported(repr(layout))
    ops: list[_Op] = []
    for sub in layout.subcons:
        if isinstance(sub, Check):
            continue
        if not isinstance(sub, Renamed) or not sub.name:
            raise _Unsupported(repr(sub))
        name, con = sub.name, sub.subcon
        if isinstance(con, Rebuild):
            con = con.subcon
        if isinstance(con, Array):
            count = _count_ref(con.count, [o.name for o in ops])
            ops.append(_Op(name, "array", count=count, item=_int_op(name, con.subcon)))
        elif isinstance(con, StringEncoded) and isinstance(con.subcon, Prefixed):
            pre = _int_op(name, con.subcon.lengthfield)
            ops.append(_Op(name, "pstring", pre.size, pre.le))
        elif con is GreedyBytes:
            ops.append(_Op(name, "rest"))
        else:
            ops.append(_int_op(name, con))
    return ops


def _lua_str(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ASCII


def _crc_params(fmt: FrameFormat) -> tuple[int, bool, int, int, list[int]]:
    crc = crcmod.predefined.PredefinedCrc(canonical_name(fmt.crc))
    # crcmod keeps the initial value pre-XORed with xorOut; the register starts at their XOR.
    width = int(crc.digest_size)  # bytes
    return width, bool(crc.reverse), crc.initCrc ^ crc.xorOut, crc.xorOut, list(crc.table)


def _ops_lua(ops: list[_Op]) -> str:
    parts = []
    for op in ops:
        fields = [f"name={_lua_str(op.name)}", f"kind={_lua_str(op.kind)}", f"size={op.size}"]
        fields.append(f"le={'true' if op.le else 'false'}")
        if op.count is not None:
            fields.append(f"count={op.count if isinstance(op.count, int) else _lua_str(op.count)}")
        if op.item is not None:
            fields.append(f"isize={op.item.size}, ile={'true' if op.item.le else 'false'}")
        parts.append("{" + ", ".join(fields) + "}")
    return "{" + ", ".join(parts) + "}"


def generate_dissector(
    fmt: FrameFormat = DEFAULT_FORMAT,
    registry: CommandRegistry = STANDARD,
    *,
    registers: Mapping[int, str] | None = None,
    proto: str = "framebridge",
) -> str:
    """The Lua source of a dissector for ``fmt`` and ``registry`` (``registers``: address →
    name, shown beside ``reg``/``start`` fields and read values)."""
    lay = fmt.layout
    width, reverse, init, xorout, table = _crc_params(fmt)
    if width != lay.crc_size:
        raise AssertionError("crcmod's width disagrees with the layout")
    commands = []
    field_defs: dict[str, str] = {}
    for cmd in registry:
        entry = [f"name={_lua_str(cmd.name)}"]
        for which, layout in (("req", cmd.request), ("resp", cmd.response)):
            try:
                ops = _compile(layout)
            except _Unsupported:
                continue
            entry.append(f"{which}={_ops_lua(ops)}")
            for op in ops:
                kind = {"u8": "uint8", "u16": "uint16", "u32": "uint32", "pstring": "string"}
                ftype = kind.get(op.kind, "bytes")
                if op.kind == "array":
                    ftype = f"uint{op.item.size * 8}" if op.item is not None else "bytes"
                abbrev = f"{proto}.{cmd.name}.{op.name}"
                field_defs[abbrev] = f"ProtoField.{ftype}({_lua_str(abbrev)}, {_lua_str(op.name)})"
        commands.append(f"[{cmd.code}] = {{{', '.join(entry)}}}")
    tag = getattr(lay, "tag_offset", None)
    subs = {
        "@PROTO@": proto,
        "@START@": str(lay.start),
        "@END@": "nil" if lay.end is None else str(lay.end),
        "@HS@": str(lay.header_size),
        "@ADDR@": str(lay.addr_offset),
        "@CMD@": str(lay.cmd_offset),
        "@LEN@": str(lay.length_offset),
        "@TAG@": "nil" if tag is None else str(tag),
        "@CRCFROM@": str(lay.crc_from),
        "@CRCSIZE@": str(width),
        "@CRCLE@": "true" if lay.crc_little else "false",
        "@REVERSE@": "true" if reverse else "false",
        "@INIT@": str(init),
        "@XOROUT@": str(xorout),
        "@MAXP@": str(lay.max_payload),
        "@MASK@": str((1 << (8 * width)) - 1),
        "@TABLE@": "{" + ",".join(str(v) for v in table) + "}",
        "@COMMANDS@": "{\n  " + ",\n  ".join(commands) + "\n}",
        "@FIELDS@": "\n".join(f"CF[{_lua_str(k)}] = {v}" for k, v in sorted(field_defs.items())),
        "@ERRNAMES@": "{"
        + ", ".join(f"[{k}]={_lua_str(v)}" for k, v in sorted(DEVICE_ERROR_NAMES.items()))
        + "}",
        "@REGS@": "{"
        + ", ".join(f"[{k}]={_lua_str(v)}" for k, v in sorted((registers or {}).items()))
        + "}",
        "@DESC@": _lua_str(fmt.describe()),
    }
    from .dissector_lua import LUA_TEMPLATE

    out = LUA_TEMPLATE
    for key, value in subs.items():
        out = out.replace(key, value)
    return out
