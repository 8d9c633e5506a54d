"""``--log-format json``: one JSON object per log line, for log shippers.

Each line has ``ts`` (ISO 8601, UTC, milliseconds), ``level``, ``logger`` and ``message``; a
message in the bridge's ``event=NAME key=value …`` form also has each key as a field (integers
and decimals as numbers, quoted values unquoted), so a shipper can filter on ``event`` or
``bus`` without parsing the text. A field never replaces one of the four (it is then
``field_<key>``). A traceback goes in ``exc``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["JsonFormatter", "fields_of"]

_PAIR = re.compile(r"""(?<!\S)([A-Za-z_][\w.]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_RESERVED = frozenset({"ts", "level", "logger", "message", "exc"})


def fields_of(message: str) -> dict[str, Any]:
    """The ``key=value`` pairs of an ``event=…`` message ({} for any other message)."""
    if "event=" not in message:
        return {}
    out: dict[str, Any] = {}
    for key, raw in _PAIR.findall(message):
        value: Any = raw
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            value = raw[1:-1]
        elif _NUMBER.fullmatch(raw):
            value = float(raw) if any(ch in raw for ch in ".eE") else int(raw)
        out[f"field_{key}" if key in _RESERVED else key] = value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        ts = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        line.update(fields_of(message))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
