"""The command registry: payload layouts declared with construct, payloads ↔ dicts.

A :class:`Command` names a command code and the construct layouts of its request and response
payloads. The :data:`STANDARD` registry holds the standard commands every framebridge device
speaks; users build their own registry from it (``STANDARD.copy()``) and :meth:`register` more.
Registers carry a unit and a scale in device profiles (:mod:`firmware_sim.profile`), not here:
on the wire they are raw u16 words.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from construct import (
    Array,
    Check,
    Construct,
    ConstructError,
    FocusedSeq,
    GreedyBytes,
    Int8ub,
    Int16ul,
    Int32ul,
    PascalString,
    Rebuild,
    Struct,
    Terminated,
    len_,
    this,
)

from .errors import DEVICE_ERROR_NAMES, FrameValueError, PayloadError, UnknownCommand
from .frame import ERROR_FLAG, Frame

__all__ = [
    "ECHO",
    "ERROR_REPLY",
    "IDENTIFY",
    "MAX_READ_COUNT",
    "READ_REGS",
    "STANDARD",
    "WRITE_REG",
    "WRITE_REGS",
    "Command",
    "CommandRegistry",
    "ErrorCode",
    "jsonable",
    "plain",
]

MAX_READ_COUNT = 120


class ErrorCode:
    """Device error codes carried by an error reply (``cmd | 0x80``, one data byte)."""

    ILLEGAL_COMMAND = 1
    ILLEGAL_REGISTER = 2
    ILLEGAL_VALUE = 3
    DEVICE_FAILURE = 4
    BUSY = 5


ERROR_REPLY = Struct("code" / Int8ub)


def plain(value: Any) -> Any:
    """construct Containers → plain dicts/lists (JSON-ready), dropping construct's ``_`` keys."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Command:
    """One command: its code, name and payload layouts (``None`` = empty payload)."""

    code: int
    name: str
    request: Construct | None = None
    response: Construct | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.code < ERROR_FLAG:
            raise FrameValueError(f"command code {self.code} must be 0..127 (0x80 flags errors)")

    def encode_request(self, fields: Mapping[str, Any] | None = None) -> bytes:
        return _build(self.request, fields, self.name, "request")

    def decode_request(self, data: bytes) -> dict[str, Any]:
        return _parse(self.request, data, self.name, "request")

    def encode_response(self, fields: Mapping[str, Any] | None = None) -> bytes:
        return _build(self.response, fields, self.name, "response")

    def decode_response(self, data: bytes) -> dict[str, Any]:
        return _parse(self.response, data, self.name, "response")


def _build(
    layout: Construct | None, fields: Mapping[str, Any] | None, name: str, what: str
) -> bytes:
    if layout is None:
        if fields:
            raise FrameValueError(f"{name} {what} takes no fields, got {sorted(fields)}")
        return b""
    fields = dict(fields or {})
    names = {sc.name for sc in getattr(layout, "subcons", ()) if sc.name}
    unknown = sorted(set(fields) - names) if names else []
    if unknown:
        raise FrameValueError(f"{name} {what} has no field(s) {unknown}; it has {sorted(names)}")
    if any(_is_bool(v) for v in fields.values()):
        raise FrameValueError(f"{name} {what}: true/false is not a number")
    try:
        out: bytes = layout.build(fields)
    except KeyError as exc:  # construct names only the key: say what is wrong with it
        missing = _shown(exc.args[0]) if exc.args else "?"
        needs = f"; it needs {sorted(names)}" if names else ""
        raise FrameValueError(
            f"cannot build {name} {what}: missing field {missing}{needs}"
        ) from exc
    except (ConstructError, TypeError, ValueError) as exc:
        raise FrameValueError(f"cannot build {name} {what}: {exc}") from exc
    except RecursionError:  # construct formats a value that nests too deeply to print
        raise FrameValueError(f"cannot build {name} {what}: a value nests too deeply") from None
    return out


def _is_bool(value: Any) -> bool:
    """True if ``value`` is or holds a bool; iterative, as JSON from a client can nest deeply."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool):
            return True
        if isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def _shown(key: object) -> str:
    """``key`` for an error message: a client may send a 5,000-digit number or string."""
    if isinstance(key, int) and not isinstance(key, bool) and abs(key) >= 10**12:
        return f"(a {key.bit_length()}-bit number)"
    text = repr(key) if isinstance(key, str) else str(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse(layout: Construct | None, data: bytes, name: str, what: str) -> dict[str, Any]:
    if layout is None:
        if data:
            raise PayloadError(f"{name} {what} must be empty, got {len(data)} bytes")
        return {}
    try:
        result = FocusedSeq("v", "v" / layout, Terminated).parse(data)
    except (ConstructError, ValueError) as exc:
        raise PayloadError(f"bad {name} {what} payload {data.hex()}: {exc}") from exc
    parsed = plain(result)
    if not isinstance(parsed, dict):
        parsed = {"value": parsed}
    return parsed


class CommandRegistry:
    """Commands by code and by name. Not global state: pass the registry you want."""

    def __init__(self, commands: list[Command] | None = None) -> None:
        self._by_code: dict[int, Command] = {}
        self._by_name: dict[str, Command] = {}
        for cmd in commands or []:
            self.register(cmd)

    def register(self, command: Command, *, replace: bool = False) -> Command:
        name = command.name.lower()
        if not replace and (command.code in self._by_code or name in self._by_name):
            raise FrameValueError(
                f"command 0x{command.code:02x} / {command.name!r} already registered"
            )
        self._by_code[command.code] = command
        self._by_name[name] = command
        return command

    def copy(self) -> CommandRegistry:
        return CommandRegistry(list(self._by_code.values()))

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._by_code.values(), key=lambda c: c.code))

    def __contains__(self, key: object) -> bool:
        return self.find(key) is not None  # type: ignore[arg-type]

    def find(self, key: int | str) -> Command | None:
        if isinstance(key, int):
            return self._by_code.get(key & ~ERROR_FLAG)
        key = key.strip().lower()
        if key in self._by_name:
            return self._by_name[key]
        try:
            return self._by_code.get(int(key, 0))
        except ValueError:
            return None

    def get(self, key: int | str) -> Command:
        cmd = self.find(key)
        if cmd is None:
            raise UnknownCommand(f"unknown command {_shown(key)}")
        return cmd

    def resolve_code(self, key: int | str) -> int:
        """A command code from a number, a numeric string ("3", "0x03") or a registered name."""
        if isinstance(key, int):
            if not 0 <= key <= 0xFF:
                raise FrameValueError(f"command {_shown(key)} is not 0..255")
            return key
        try:
            code = int(key, 0)
        except ValueError:
            return self.get(key).code
        return self.resolve_code(code)

    def describe(self, frame: Frame, *, request: bool | None = None) -> dict[str, Any] | None:
        """Decoded fields of ``frame`` or None when the command is unknown or does not fit.

        ``request`` says which layout to use; None tries the response first, then the request
        (a sniffer sees both directions and cannot always tell).
        """
        if frame.is_error:
            code = frame.error_code
            out: dict[str, Any] = {"error_code": code}
            if code is not None:
                out["error"] = DEVICE_ERROR_NAMES.get(code, "unknown error")
            return out
        cmd = self.find(frame.cmd)
        if cmd is None:
            return None
        order = [False, True] if request is None else [request]
        for is_req in order:
            try:
                return cmd.decode_request(frame.data) if is_req else cmd.decode_response(frame.data)
            except PayloadError:
                continue
        return None


_READ_REQUEST = Struct(
    "start" / Int16ul,
    "count" / Int8ub,
    Check((this.count >= 1) & (this.count <= MAX_READ_COUNT)),
)
_WRITE_REG = Struct("reg" / Int16ul, "value" / Int16ul)

IDENTIFY = Command(
    0x01,
    "identify",
    request=None,
    response=Struct(
        "model" / PascalString(Int8ub, "ascii"),
        "firmware" / Array(3, Int8ub),
        "uid" / Int32ul,
        "register_count" / Int16ul,
    ),
    description="model, firmware version, unique id and register count",
)
_ECHO = Struct("data" / GreedyBytes)
ECHO = Command(0x02, "echo", _ECHO, _ECHO, "returns the same bytes")
READ_REGS = Command(
    0x03,
    "read_regs",
    request=_READ_REQUEST,
    response=Struct(
        "count" / Rebuild(Int8ub, len_(this.values)),
        "values" / Array(this.count, Int16ul),
    ),
    description=f"read count (<= {MAX_READ_COUNT}) u16 registers from start",
)
WRITE_REG = Command(0x06, "write_reg", _WRITE_REG, _WRITE_REG, "write one register; echoed")
WRITE_REGS = Command(
    0x10,
    "write_regs",
    request=Struct(
        "start" / Int16ul,
        "count" / Rebuild(Int8ub, len_(this.values)),
        "values" / Array(this.count, Int16ul),
    ),
    response=Struct("start" / Int16ul, "count" / Int8ub),
    description="write consecutive registers from start",
)

STANDARD = CommandRegistry([IDENTIFY, ECHO, READ_REGS, WRITE_REG, WRITE_REGS])


def jsonable(value: Any) -> Any:
    """Decoded fields → JSON-ready values: bytes become hex strings."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
