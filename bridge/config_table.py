"""Reading one TOML table: typed getters that name the key on error, and a leftovers check. Pure.

Shared by every part of the configuration (:mod:`bridge.config`, :mod:`bridge.config_services`)
so each error reads the same: ``bus[0].timeout_s: must be > 0, got -1``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from .errors import ConfigError

__all__ = ["Table", "dataclass_from", "require_positive", "strings"]


class Table:
    """A TOML table being read: typed getters that name the key on error, and leftovers check."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(where, "must be a table")
        self.raw = raw
        self.where = where
        self.used: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(self.at(key), f"must be {_names(kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise ConfigError(self.at(key), f"must be {_names(kinds)}, got {value!r}")
        return value

    def positive(self, key: str, default: float, *, zero: bool = False) -> Any:
        kind: type = int if isinstance(default, int) else float
        return require_positive(self.at(key), self.get(key, kind, default), zero=zero)

    def done(self) -> None:
        extra = sorted(set(self.raw) - self.used)
        if extra:
            raise ConfigError(self.where or "top level", f"unknown key(s): {', '.join(extra)}")


def _names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_ZERO_ALLOWED = {"size", "ping_interval_s", "ping_timeout_s", "drain_window_s"}  # 0: none / off


def dataclass_from(table: Table, cls: type[Any]) -> Any:
    """Numeric/bool/str dataclass fields read from a table of the same names."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        default = f.default
        if isinstance(default, bool):
            values[f.name] = table.get(f.name, bool, default)
        elif isinstance(default, (int, float)):
            values[f.name] = table.positive(f.name, default, zero=f.name in _ZERO_ALLOWED)
        elif isinstance(default, str):
            values[f.name] = table.get(f.name, str, default)
    return values


def strings(t: Table, key: str, check: Callable[[str], object], what: str) -> tuple[str, ...]:
    """A list of strings, each ``"*"`` or accepted by ``check`` (not None)."""
    out = []
    for i, value in enumerate(t.get(key, list, [])):
        if not isinstance(value, str) or (value.strip() != "*" and check(value) is None):
            raise ConfigError(f"{t.at(key)}[{i}]", f'must be {what} or "*", got {value!r}')
        out.append(value.strip())
    return tuple(out)


def require_positive(where: str, value: Any, *, zero: bool = False) -> Any:
    """The config's rule for every count, size and duration: > 0 (or >= 0 where 0 means off).

    Public so command-line flags that stand for a config key (``demo --interval``) refuse the
    same values with the same message.
    """
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(where, f"must be {'>=' if zero else '>'} 0, got {value}")
    return value
