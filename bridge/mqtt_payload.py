"""MQTT payloads: a register's value as a state payload, and a ``/set`` payload as words. Pure.

Both directions speak what Home Assistant speaks: ON/OFF for bools, an enum's label, a plain
number in the register's unit (scaled: ``7.25`` V is raw 7250 at scale 0.001). Every refusal is
a :class:`CommandRefused` with a ``reason`` (the metric label); nothing else escapes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from frames.errors import FrameValueError
from frames.register import RegisterDef, Value

from .errors import BridgeError
from .mqtt_discovery import OFF, ON

__all__ = ["MAX_SET_PAYLOAD", "CommandRefused", "format_value", "parse_set_payload"]

MAX_SET_PAYLOAD = 256  # bytes; a longer /set payload is refused unread


class CommandRefused(BridgeError, ValueError):
    """A ``/set`` the bridge will not send (``reason`` is the metric label, ``message`` the
    log text). Raised by :meth:`MqttCore.command`; the adapter counts and logs it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def format_value(reg: RegisterDef, value: Value) -> str:
    """A decoded value as its state payload: ON/OFF, an enum's label, a plain number."""
    if value is None:
        return "None"  # Home Assistant: unknown (an f32 NaN)
    if reg.type == "bool":
        return ON if value else OFF
    if reg.type == "enum" and isinstance(value, int):
        return reg.labels.get(value, str(value))
    if isinstance(value, float) and value.is_integer() and reg.scale >= 1 and reg.type != "f32":
        return str(int(value))
    return str(value)


def _number(text: str) -> float | int:
    try:
        return int(text, 0) if text.lstrip("+-").isdigit() or text.startswith("0x") else float(text)
    except ValueError:
        raise CommandRefused("bad_payload", f"{text[:40]!r} is not a number") from None


def parse_set_payload(reg: RegisterDef, payload: bytes) -> tuple[Value, tuple[int, ...]]:
    """A ``/set`` payload → (value in engineering units, the register words to write).

    Accepts what Home Assistant sends (ON/OFF, a select's label, a number in the register's
    unit) and JSON (``true``, ``21.5``, a bitfield's ``{"in0": true}``). Every refusal is a
    :class:`CommandRefused`; nothing here raises anything else.
    """
    if not reg.writable:
        raise CommandRefused("read_only", f"{reg.name} is read-only")
    if len(payload) > MAX_SET_PAYLOAD:
        raise CommandRefused("bad_payload", f"payload of {len(payload)} bytes is too long")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandRefused("bad_payload", "payload is not UTF-8") from None
    if not text:
        raise CommandRefused("bad_payload", "empty payload")
    value: Any
    if reg.type == "bool":
        lowered = text.lower()
        if lowered in ("on", "true", "1"):
            value = True
        elif lowered in ("off", "false", "0"):
            value = False
        else:
            raise CommandRefused("bad_payload", f"{text[:40]!r} is not ON/OFF")
    elif reg.type == "enum" and text in reg.labels.values():
        value = text
    elif reg.type == "bitfield" and text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise CommandRefused("bad_payload", "not a JSON object of bit names") from None
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            raise CommandRefused("bad_payload", 'bits must be {"name": true|false}')
    elif reg.type == "enum" and reg.labels and not text.lstrip("+-").isdigit():
        raise CommandRefused(
            "bad_payload", f"{text[:40]!r} is not one of {sorted(reg.labels.values())}"
        )
    else:
        value = _number(text)
        if not math.isfinite(value):
            raise CommandRefused("bad_payload", f"{text[:40]!r} is not a finite number")
        if reg.type != "f32":
            steps = value / reg.scale
            if abs(steps - round(steps)) > 1e-6 * max(1.0, abs(steps)):
                raise CommandRefused("bad_payload", f"{value} is not a multiple of {reg.scale:g}")
    try:
        reg.check_limits(value)
    except FrameValueError as exc:
        raise CommandRefused("out_of_range", str(exc)) from None
    try:
        words = reg.encode(value)
    except FrameValueError as exc:
        raise CommandRefused("out_of_range", str(exc)) from None
    return reg.decode(words), tuple(words)
