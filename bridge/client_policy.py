"""What a client does when the bridge closes the connection: one table, pure.

The Python client (:mod:`bridge.client`) reads this table; the browser client has the same one
(``bridge/static/js/wire.js`` ``CLOSE_CODES``) and ``docs/websocket.md`` prints it. A test holds
the three equal, so the two clients cannot drift apart again.

Every code that is retried is also resumed: the client reconnects with full-jitter backoff,
says hello and subscribes with ``since`` its last positions. ``slow`` codes mean "the bridge
asked for time" (node full): the backoff starts three doublings higher.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import ClientClosed, Unauthorized

__all__ = [
    "CLOSE_CODES",
    "DEAD_AFTER_HEARTBEATS",
    "SLOW_BACKOFF_STEPS",
    "UNKNOWN_CLOSE",
    "CloseRule",
    "ResumeTracker",
    "close_rule",
    "closed_error",
    "http_rule",
    "is_bus_reset",
    "parse_messages",
    "silence_limit",
]


@dataclass(frozen=True)
class CloseRule:
    """How a client treats one close code."""

    label: str
    retry: bool  # reconnect with backoff and resume with ``since``
    slow: bool = False  # start the backoff higher: the bridge asked for time


CLOSE_CODES: Mapping[int, CloseRule] = MappingProxyType(
    {
        1000: CloseRule("normal closure", True),
        1001: CloseRule("going away", True),
        1005: CloseRule("closed without a code", True),
        1006: CloseRule("connection lost", True),
        1008: CloseRule("policy violation", False),
        1009: CloseRule("message too big", False),
        1011: CloseRule("server error or missed pongs", True),
        1012: CloseRule("service restart", True),
        1013: CloseRule("node full, try again later", True, slow=True),
        4000: CloseRule("slow consumer", True),
        4001: CloseRule("no hello in time", True),
        4002: CloseRule("server silent (closed by the client)", True),
        4003: CloseRule("unauthorized", False),
        4010: CloseRule("token expired (no refresh in time)", False),
    }
)

# A code this table does not know (a newer bridge): retry with backoff, the connection was fine
# until then; max_reconnects bounds it.
UNKNOWN_CLOSE = CloseRule("closed", True)

SLOW_BACKOFF_STEPS = 3  # 1013: the first delay's ceiling is 2**3 times the minimum

# The bridge sends *something* (at least a heartbeat) every heartbeat_s; silence for this many
# heartbeats means the server or the path to it is dead even though TCP still looks open
# (a stopped process, a dropped NAT entry). 2.5 leaves room for one late heartbeat.
DEAD_AFTER_HEARTBEATS = 2.5


def close_rule(code: int | None) -> CloseRule:
    """The rule for a close code; ``None`` (no close frame at all) is a lost connection."""
    if code is None:
        return CLOSE_CODES[1006]
    return CLOSE_CODES.get(code, UNKNOWN_CLOSE)


# Refusals before the upgrade (docs/websocket.md, "Refused before the upgrade"): 403 is the
# bridge's Host/Origin check, which no retry changes; 429 (too many from this address) and 503
# (no descriptors left, draining) ask for time, like 1013.
HTTP_REFUSALS: Mapping[int, CloseRule] = MappingProxyType(
    {
        403: CloseRule("forbidden (Host or Origin refused)", False),
        429: CloseRule("too many connections from this address", True, slow=True),
        503: CloseRule("unavailable, try again later", True, slow=True),
    }
)


def http_rule(status: int) -> CloseRule:
    """The rule for an HTTP status that refused the WebSocket upgrade."""
    return HTTP_REFUSALS.get(status, UNKNOWN_CLOSE)


def silence_limit(heartbeat_s: object, factor: float = DEAD_AFTER_HEARTBEATS) -> float | None:
    """Seconds without any message after which the server counts as dead (``None``: never).

    ``heartbeat_s`` comes from the bridge's ``welcome``; anything that is not a positive number
    (an older or a foreign server) disables the check rather than guessing.
    """
    if isinstance(heartbeat_s, bool) or not isinstance(heartbeat_s, (int, float)):
        return None
    if heartbeat_s <= 0 or factor <= 0:
        return None
    return float(heartbeat_s) * factor


def closed_error(code: int | None, reason: str = "") -> ClientClosed:
    """The typed end for a close code: 4003 is :class:`Unauthorized`, the rest ClientClosed."""
    if code == 4003:
        return Unauthorized()
    why = f": {reason}" if reason else ""
    return ClientClosed(f"closed by the bridge ({code} {close_rule(code).label}{why})", code)


def is_bus_reset(msg: Mapping[str, Any]) -> bool:
    """Both spellings: an ``event`` ``bus_reset`` on the bus stream, or a ``bus_reset`` message."""
    kind = msg.get("type")
    return kind == "bus_reset" or (kind == "event" and msg.get("event") == "bus_reset")


def parse_messages(raw: str | bytes) -> list[dict[str, Any]]:
    """One server text → its messages (a batch is a JSON array)."""
    data = json.loads(raw)
    if isinstance(data, list):
        return [m for m in data if isinstance(m, dict)]
    return [data] if isinstance(data, dict) else []


class ResumeTracker:
    """Per bus, the last ``(epoch, seq)`` processed: what is a duplicate, what to resume from.

    The resume algorithm of ``docs/websocket.md``, as data; the browser's ``ResumeTracker`` in
    ``wire.js`` is the same bookkeeping.
    """

    def __init__(self) -> None:
        self.positions: dict[str, tuple[int, int]] = {}
        self.duplicates = 0  # replayed messages dropped because already seen

    def welcome(self, msg: Mapping[str, Any]) -> None:
        """Buses seen for the first time start at the welcome's position."""
        for bus, pos in (msg.get("buses") or {}).items():
            self.positions.setdefault(bus, (pos["epoch"], pos["seq"]))

    def refused(self, subscribed: Mapping[str, Any]) -> None:
        """Forget the buses a ``subscribed`` answer could not recover."""
        for bus, ok in (subscribed.get("recovered") or {}).items():
            if not ok:
                self.positions.pop(bus, None)

    def accept(self, msg: Mapping[str, Any]) -> bool:
        """False for a message already processed; True (and remembered) otherwise."""
        bus, epoch, seq = msg.get("bus"), msg.get("epoch"), msg.get("seq")
        if isinstance(bus, str) and isinstance(epoch, int) and isinstance(seq, int):
            last = self.positions.get(bus)
            if last is not None and last[0] == epoch and seq <= last[1]:
                self.duplicates += 1
                return False
            self.positions[bus] = (epoch, seq)
        elif is_bus_reset(msg):  # an unsequenced reset: the old position means nothing now
            if isinstance(bus, str):
                self.positions.pop(bus, None)
            else:
                self.positions.clear()
        return True

    def since(self) -> dict[str, dict[str, int]]:
        """The ``since`` of a resuming ``subscribe``."""
        return {bus: {"epoch": e, "seq": s} for bus, (e, s) in self.positions.items()}
