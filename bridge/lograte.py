"""Repeated log lines, rate-limited: the same message key at most ``burst`` times per
``interval_s``, then one line saying how many were suppressed.

An exhausted resource repeats the same failure as fast as the event loop turns (the bridge once
wrote 150 MB of "Too many open files" in a minute), and a log that fills the disk takes down
more than the bridge. The key is (logger, level, message template): ``event=bus_down bus=%s``
for every bus is one key, which is what an operator wants to see once, with a count.

Pure apart from :mod:`logging` itself; time comes from ``clock`` so tests need no sleeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["RateLimitFilter", "install", "uninstall"]

DEFAULT_PREFIXES = ("bridge", "frames", "firmware_sim", "websockets", "asyncio")


@dataclass
class _Window:
    start: float
    emitted: int = 0
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """Let at most ``burst`` records per key through in each ``interval_s`` window.

    The first record of a new window that follows suppressed ones carries
    ``suppressed=K`` (how many of that key were dropped in the windows before). At most
    ``max_keys`` keys are tracked; past that the table is cleared (losing only counts).
    """

    def __init__(
        self,
        burst: int = 10,
        interval_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 4096,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                self._windows.clear()
            window = self._windows[key] = _Window(now)
        elif now - window.start >= self.interval_s:
            carried = window.suppressed
            window.start, window.emitted, window.suppressed = now, 0, carried
        if window.emitted >= self.burst:
            window.suppressed += 1
            self.suppressed_total += 1
            return False
        window.emitted += 1
        if window.suppressed:
            # appended to the template, so a message with args still formats; K has no '%'
            record.msg = f"{record.msg} suppressed={window.suppressed}"
            window.suppressed = 0
        return True


def install(flt: logging.Filter, prefixes: Iterable[str] = DEFAULT_PREFIXES) -> list[str]:
    """Add ``flt`` to every existing logger under ``prefixes`` (and to those loggers
    themselves), once. Logger filters see only records logged on that very logger, so each
    module's logger gets it; modules create their loggers at import, so calling this when the
    server starts covers them all. Returns the names (for :func:`uninstall`)."""
    prefixes = tuple(prefixes)
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if any(name == p or name.startswith(p + ".") for p in prefixes)
    ]
    names += [p for p in prefixes if p not in names]
    for name in names:
        logger = logging.getLogger(name)
        if flt not in logger.filters:
            logger.addFilter(flt)
    return sorted(names)


def uninstall(flt: logging.Filter, names: Iterable[str]) -> None:
    """Undo :func:`install` (a stopped bridge leaves the process's loggers as they were)."""
    for name in names:
        logging.getLogger(name).removeFilter(flt)
