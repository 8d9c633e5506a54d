"""``framebridge check-config FILE``: every error of a bridge configuration, each with its key.

:func:`bridge.config.parse_config` stops at the first error, which makes fixing a file a loop of
edit and retry. Here, when the whole file fails, each top-level table (and each ``[[bus]]``
entry) is also parsed on its own, and every error found that way is reported too. An error of
a part parsed alone counts only when it names a key of that part: one that comes from the part
missing its context (a bus list a token refers to, say) would be a false alarm. Pure but for
reading the file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import BridgeConfig, parse_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found]
from .errors import ConfigError

__all__ = ["check_config", "config_errors"]


def config_errors(raw: Mapping[str, Any], base: Path | None = None) -> list[ConfigError]:
    """Every error found in a parsed TOML document; [] when it is valid."""
    try:
        parse_config(raw, base=base)
    except ConfigError as exc:
        first = exc
    else:
        return []
    found: dict[str, ConfigError] = {str(first): first}
    for key, value in raw.items():
        parts: list[tuple[str, Any]] = [(key, value)]
        if key == "bus" and isinstance(value, list):
            parts = [(f"bus[{i}]", [entry]) for i, entry in enumerate(value)]
        for where, part in parts:
            _collect(found, {key: part}, base, key, where)
        if isinstance(value, Mapping):  # each key of a table alone: a table's every error
            for sub, item in value.items():
                _collect(found, {key: {sub: item}}, base, f"{key}.{sub}", key)
    return list(found.values())


def _collect(
    found: dict[str, ConfigError], raw: Mapping[str, Any], base: Path | None, key: str, where: str
) -> None:
    """Parse ``raw`` (one part of the file); keep its error if it names a key of that part."""
    try:
        parse_config(raw, base=base)
    except ConfigError as exc:
        err = _renamed(exc, where) if where.startswith("bus[") else exc
        if _within(err.where, key) and str(err) not in found:
            found[str(err)] = err


def _renamed(exc: ConfigError, where: str) -> ConfigError:
    """An error of ``[[bus]]`` entry i parsed alone (where it was ``bus[0]``), renamed back."""
    if not exc.where.startswith("bus[0]"):
        return exc
    located = where + exc.where[len("bus[0]") :]
    message = str(exc)[len(exc.where) + 2 :] if str(exc).startswith(exc.where) else str(exc)
    return ConfigError(located, message)


def _within(where: str, key: str) -> bool:
    return re.match(rf"{re.escape(key)}(\b|\[|\.|$)", where) is not None


def check_config(path: str | Path) -> tuple[BridgeConfig | None, list[ConfigError]]:
    """The configuration (None when invalid) and its errors, read from ``path``."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [ConfigError(str(path), f"cannot read: {exc.strerror}")]
    except tomllib.TOMLDecodeError as exc:
        return None, [ConfigError(str(path), f"not valid TOML: {exc}")]
    errors = config_errors(raw, Path(path).parent)
    if errors:
        return None, errors
    return parse_config(raw, base=Path(path).parent), []
