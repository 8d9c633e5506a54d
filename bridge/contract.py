"""Wire contract v1: parse and validate client messages, build server messages. Pure.

Everything a client can send is turned into one of the frozen dataclasses below or a
:class:`~bridge.errors.ContractError` with a stable ``code``, so the server answers bad input with
an ``error`` message and keeps the connection. ``docs/websocket.md`` is the prose version of this
module; change both together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ContractError
from .messages import error_message, reply_error

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_HELLO_TIMEOUT",
    "CLOSE_NODE_FULL",
    "CLOSE_POLICY",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_TOKEN_EXPIRED",
    "CLOSE_UNAUTHORIZED",
    "VERSION",
    "ClientMessage",
    "Hello",
    "Ping",
    "Position",
    "Refresh",
    "Request",
    "StateQuery",
    "Subscribe",
    "Topic",
    "Unsubscribe",
    "batch_text",
    "dumps",
    "error_message",
    "parse_client_message",
    "parse_topic",
    "reply_error",
]

VERSION = 1

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # sustained message flood (the rate limit did not slow it down)
CLOSE_NODE_FULL = 1013
CLOSE_SLOW_CONSUMER = 4000
CLOSE_HELLO_TIMEOUT = 4001
CLOSE_UNAUTHORIZED = 4003
CLOSE_TOKEN_EXPIRED = 4010  # the credential expired and no refresh came (tenants, JWT)

# ``error`` message codes (the message was not understood) ...
BAD_JSON = "bad_json"
BAD_MESSAGE = "bad_message"  # not a JSON object, or a binary frame
UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
BAD_VALUE = "bad_value"
HELLO_REQUIRED = "hello_required"
ALREADY_HELLO = "already_hello"
INTERNAL_ERROR = "internal_error"  # the bridge failed on the message (a bug: logged)
# ... and ``reply.error.code`` values (the request was understood but failed).
REPLY_CODES = (
    "timeout",
    "device_error",
    "bus_down",
    "busy",
    "forbidden",
    "bad_request",
    "quota",  # a tenant's in-flight or rate quota: refused at once, never queued
)
UNAUTHORIZED = "unauthorized"  # a refresh token that is not accepted (the connection goes on)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_ID_LEN = 128


def dumps(message: Mapping[str, Any]) -> str:
    """Compact JSON: serialized once per fan-out, so every byte saved is saved per client."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def batch_text(texts: Sequence[str]) -> str:
    """Several pre-serialized messages as one JSON array text, without parsing them again."""
    if len(texts) == 1:
        return texts[0]
    return "[" + ",".join(texts) + "]"


@dataclass(frozen=True, slots=True)
class Topic:
    """``bus/addr``; ``addr`` None is ``bus/*``; ``bus`` None is ``*`` (everything)."""

    bus: str | None
    addr: int | None

    def __str__(self) -> str:
        if self.bus is None:
            return "*"
        return f"{self.bus}/{'*' if self.addr is None else self.addr}"

    def matches(self, bus: str, addr: int | None) -> bool:
        if self.bus is None:
            return True
        if self.bus != bus:
            return False
        return self.addr is None or addr is None or self.addr == addr


def parse_topic(text: str) -> Topic:
    if text == "*":
        return Topic(None, None)
    bus, sep, addr = text.partition("/")
    if not sep or not _NAME.match(bus):
        raise ValueError(f"topic {text!r} is not '*', 'BUS/*' or 'BUS/ADDR'")
    if addr == "*":
        return Topic(bus, None)
    if not (addr.isascii() and addr.isdigit()) or not 0 <= int(addr) <= 255:
        raise ValueError(f"topic {text!r}: address must be 0..255 or *")
    return Topic(bus, int(addr))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client is in one bus's stream: the bus run (``epoch``) and the last ``seq`` seen."""

    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Hello:
    """``token`` None: the client sent none (accepted only by a bridge without tokens)."""

    token: str | None
    id: Any = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    topics: tuple[Topic, ...]
    since: dict[str, Position] = field(default_factory=dict)
    id: Any = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[Topic, ...]
    id: Any = None


@dataclass(frozen=True, slots=True)
class Request:
    bus: str
    addr: int
    cmd: int | str
    data: bytes | None = None
    args: dict[str, Any] | None = None
    timeout_s: float | None = None
    id: Any = None


@dataclass(frozen=True, slots=True)
class StateQuery:
    id: Any = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: Any = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A new credential for this connection before the current one expires (tenants)."""

    token: str
    id: Any = None


ClientMessage = Hello | Subscribe | Unsubscribe | Request | StateQuery | Ping | Refresh


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], msg_id: Any) -> Any:
    if key not in obj:
        raise ContractError(MISSING_FIELD, f"'{key}' is required", msg_id)
    value = obj[key]
    # no field is a boolean, and JSON true is not an integer (Python's bool is an int)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ContractError(WRONG_TYPE, f"'{key}' must be {_kind_name(kind)}", msg_id)
    return value


def _opt(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], msg_id: Any) -> Any:
    if key not in obj or obj[key] is None:
        return None
    return _get(obj, key, kind, msg_id)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list"}
    names[dict] = "an object"
    return " or ".join(names[k] for k in _as_tuple(kind))


def _topics(obj: Mapping[str, Any], msg_id: Any, max_topics: int) -> tuple[Topic, ...]:
    raw = _get(obj, "topics", list, msg_id)
    if len(raw) > max_topics:
        raise ContractError(BAD_VALUE, f"at most {max_topics} topics per message", msg_id)
    out: list[Topic] = []
    for item in raw:
        if not isinstance(item, str):
            raise ContractError(WRONG_TYPE, "'topics' must be a list of strings", msg_id)
        try:
            out.append(parse_topic(item))
        except ValueError as exc:
            raise ContractError(BAD_VALUE, str(exc), msg_id) from None
    return tuple(out)


def _since(obj: Mapping[str, Any], msg_id: Any) -> dict[str, Position]:
    raw = _opt(obj, "since", dict, msg_id)
    if raw is None:
        return {}
    out: dict[str, Position] = {}
    for bus, pos in raw.items():
        if not isinstance(pos, dict):
            raise ContractError(WRONG_TYPE, f"'since.{bus}' must be an object", msg_id)
        epoch = _get(pos, "epoch", int, msg_id)
        seq = _get(pos, "seq", int, msg_id)
        if seq < 0:
            raise ContractError(BAD_VALUE, f"'since.{bus}.seq' must be >= 0", msg_id)
        out[str(bus)] = Position(epoch, seq)
    return out


def _request(obj: Mapping[str, Any], msg_id: Any) -> Request:
    bus = _get(obj, "bus", str, msg_id)
    addr = _get(obj, "addr", int, msg_id)
    if not 0 <= addr <= 255:
        raise ContractError(BAD_VALUE, "'addr' must be 0..255", msg_id)
    cmd = _get(obj, "cmd", (int, str), msg_id)
    if isinstance(cmd, int) and not 0 <= cmd <= 127:
        raise ContractError(BAD_VALUE, "'cmd' must be 0..127 or a command name", msg_id)
    data_hex = _opt(obj, "data", str, msg_id)
    args = _opt(obj, "args", dict, msg_id)
    if data_hex is not None and args is not None:
        raise ContractError(BAD_VALUE, "give either 'data' or 'args', not both", msg_id)
    data: bytes | None = None
    if data_hex is not None:
        try:
            data = bytes.fromhex(data_hex)
        except ValueError:
            raise ContractError(BAD_VALUE, "'data' must be hex", msg_id) from None
        if len(data) > 255:
            raise ContractError(BAD_VALUE, "'data' is longer than 255 bytes", msg_id)
    timeout = _opt(obj, "timeout_s", (int, float), msg_id)
    if timeout is not None and not 0 < timeout <= 60:
        raise ContractError(BAD_VALUE, "'timeout_s' must be in (0, 60]", msg_id)
    return Request(bus, addr, cmd, data, args, None if timeout is None else float(timeout), msg_id)


def _encodable(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_client_message(text: str | bytes, *, max_topics: int = 64) -> ClientMessage:
    """One client message → a typed value, or :class:`ContractError` saying what is wrong."""
    if isinstance(text, bytes):
        raise ContractError(BAD_MESSAGE, "binary messages are not part of the contract")
    try:
        obj = json.loads(text)
        return _message(obj, text, max_topics)
    except RecursionError:
        # nesting deeper than the interpreter's stack (in the parser, or later when a nested
        # value is encoded again): no valid message nests, so it is bad JSON, not a bridge bug
        raise ContractError(BAD_JSON, "not JSON: nested too deeply") from None
    except ValueError as exc:
        if isinstance(exc, ContractError):
            raise
        raise ContractError(BAD_JSON, f"not JSON: {str(exc)[:120]}") from None


def _message(obj: Any, text: str, max_topics: int) -> ClientMessage:
    if not isinstance(obj, dict):
        raise ContractError(BAD_MESSAGE, "a message must be a JSON object")
    if "\\u" in text and not _encodable(obj):
        # JSON escapes can smuggle in lone surrogates ("\ud800"), which no UTF-8 reply (not
        # even an error echoing the id) can carry: refuse the message, without its id.
        raise ContractError(BAD_VALUE, "strings must be valid Unicode (no lone surrogates)")
    msg_id = obj.get("id")
    if msg_id is not None and not (isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool)):
        raise ContractError(WRONG_TYPE, "'id' must be a string or an integer")
    if isinstance(msg_id, str) and len(msg_id) > _MAX_ID_LEN:
        raise ContractError(BAD_VALUE, f"'id' is longer than {_MAX_ID_LEN} characters")
    if isinstance(msg_id, int) and abs(msg_id) > 2**53:
        raise ContractError(BAD_VALUE, "'id' must fit a JSON-safe integer")
    kind = _get(obj, "type", str, msg_id)
    if kind == "hello":
        return Hello(_opt(obj, "token", str, msg_id), msg_id)
    if kind == "subscribe":
        return Subscribe(_topics(obj, msg_id, max_topics), _since(obj, msg_id), msg_id)
    if kind == "unsubscribe":
        return Unsubscribe(_topics(obj, msg_id, max_topics), msg_id)
    if kind == "request":
        return _request(obj, msg_id)
    if kind == "state":
        return StateQuery(msg_id)
    if kind == "ping":
        return Ping(msg_id)
    if kind == "refresh":
        return Refresh(_get(obj, "token", str, msg_id), msg_id)
    raise ContractError(UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}", msg_id)
