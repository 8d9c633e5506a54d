"""Server → client messages of contract v1, as types mypy can check. Pure.

Each message is a :class:`~typing.TypedDict` named after its ``type``: the values stay plain
dicts (so :func:`bridge.contract.dumps` is the one serializer, and fan-out keeps serializing a
message once), while ``mypy --strict`` checks every field the bridge builds against this file.
``docs/websocket.md`` shows each of them; ``tests/bridge/test_messages.py`` checks every JSON
example there against these types, so the prose and the code cannot drift apart.

``id`` is echoed only when the client gave one. Optional keys are in a ``total=False`` class
(Python 3.10 has no ``NotRequired``): ``_Welcome`` holds the required ones, ``Welcome`` adds
the optional ``id``. Field types that the contract
leaves open (a device's ``state`` entry, a reply's decoded ``fields``) are ``Any``.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "SERVER_TYPES",
    "BusPosition",
    "BusState",
    "ErrorMessage",
    "EventMessage",
    "FrameMessage",
    "Heartbeat",
    "Pong",
    "Refreshed",
    "Reply",
    "ReplyError",
    "ServerMessage",
    "StateAnswer",
    "Subscribed",
    "Unsubscribed",
    "Welcome",
    "error_message",
    "pong",
    "reply_error",
]


class _BusPosition(TypedDict):
    epoch: int
    seq: int


class BusPosition(_BusPosition, total=False):
    owner: str | None  # cluster mode: the node polling the bus (None: none right now)


class _Welcome(TypedDict):
    type: Literal["welcome"]
    session: str
    node: str
    version: int
    buses: dict[str, BusPosition]
    heartbeat_s: float


class Access(TypedDict):
    read: list[str]  # topic patterns this client may subscribe to
    write: list[str]  # topic patterns (devices) this client may send requests to


class Welcome(_Welcome, total=False):
    id: int | str
    access: Access


class _Subscribed(TypedDict):
    type: Literal["subscribed"]
    topics: list[str]
    recovered: dict[str, bool]


class Subscribed(_Subscribed, total=False):
    id: int | str


class _Unsubscribed(TypedDict):
    type: Literal["unsubscribed"]
    topics: list[str]


class Unsubscribed(_Unsubscribed, total=False):
    id: int | str


class _ReplyError(TypedDict):
    code: str
    message: str


class ReplyError(_ReplyError, total=False):
    device_code: int


class _Reply(TypedDict):
    type: Literal["reply"]
    ok: bool


class Reply(_Reply, total=False):
    """A request's answer: ``ok`` true with the transaction's fields, or false with ``error``."""

    id: int | str
    error: ReplyError
    bus: str
    addr: int
    cmd: int
    data: str
    fields: dict[str, Any]
    rtt_ms: float


class _BusState(TypedDict):
    up: bool
    reason: str
    url: str  # the port (or URL) the bus owner opens, as configured
    epoch: int
    seq: int
    devices: dict[str, Any]


class BusState(_BusState, total=False):
    owner: str | None  # cluster mode: the node polling the bus (None: none right now)


class _StateAnswer(TypedDict):
    type: Literal["state"]
    buses: dict[str, BusState]


class StateAnswer(_StateAnswer, total=False):
    id: int | str


class _Pong(TypedDict):
    type: Literal["pong"]


class Pong(_Pong, total=False):
    id: int | str


class _Refreshed(TypedDict):
    type: Literal["refreshed"]
    expires: float | None  # when the new credential ends (epoch seconds); null: never


class Refreshed(_Refreshed, total=False):
    """The answer to ``refresh``: the new credential is in force (tenants)."""

    id: int | str


class Heartbeat(TypedDict):
    type: Literal["heartbeat"]
    ts: float


class _ErrorMessage(TypedDict):
    type: Literal["error"]
    code: str
    message: str


class ErrorMessage(_ErrorMessage, total=False):
    id: int | str


class _FrameMessage(TypedDict):
    type: Literal["frame"]
    bus: str
    seq: int
    epoch: int
    ts: float
    addr: int
    cmd: int
    dir: Literal["tx", "rx"]
    data: str


class FrameMessage(_FrameMessage, total=False):
    """Published by bus owners (``bridge.devices``); listed here so the contract is whole."""

    fields: dict[str, Any]
    kind: Literal["late", "unexpected"]


class _EventMessage(TypedDict):
    """``event`` is one of bus_up, bus_down, device_online, device_offline, crc_error,
    frames_dropped, ... and ``bus_reset`` (cluster mode: the bus's history was lost and a new
    ``epoch`` starts with this event as its seq 1; reload ``state``, old positions are gone)."""

    type: Literal["event"]
    bus: str
    seq: int
    epoch: int
    ts: float
    event: str


class EventMessage(_EventMessage, total=False):
    addr: int
    reason: str
    count: int
    awaiting: int


ServerMessage = (
    Welcome
    | Subscribed
    | Unsubscribed
    | Reply
    | StateAnswer
    | Pong
    | Refreshed
    | Heartbeat
    | ErrorMessage
    | FrameMessage
    | EventMessage
)

SERVER_TYPES: dict[str, type[Any]] = {
    "welcome": Welcome,
    "subscribed": Subscribed,
    "unsubscribed": Unsubscribed,
    "reply": Reply,
    "state": StateAnswer,
    "pong": Pong,
    "refreshed": Refreshed,
    "heartbeat": Heartbeat,
    "error": ErrorMessage,
    "frame": FrameMessage,
    "event": EventMessage,
}


def error_message(code: str, message: str, msg_id: Any = None) -> ErrorMessage:
    if msg_id is None:
        return {"type": "error", "code": code, "message": message}
    return {"type": "error", "id": msg_id, "code": code, "message": message}


def reply_error(code: str, message: str, msg_id: Any = None, **extra: Any) -> Reply:
    error: ReplyError = {"code": code, "message": message, **extra}  # type: ignore[typeddict-item]
    if msg_id is None:
        return {"type": "reply", "ok": False, "error": error}
    return {"type": "reply", "id": msg_id, "ok": False, "error": error}


def pong(msg_id: Any = None) -> Pong:
    return {"type": "pong"} if msg_id is None else {"type": "pong", "id": msg_id}
