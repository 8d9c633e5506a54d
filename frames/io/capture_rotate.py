"""Record a master's traffic into rotating capture files, bounded by size, age and count.

The bridge gives each bus with a ``capture`` table one :class:`TrafficRecorder` and calls
:meth:`TrafficRecorder.traffic` from the master's ``on_traffic`` callback. Files are
``DIR/NAME-YYYYmmddTHHMMSSZ-N.pcapng``; a file is closed and a new one started when it reaches
``max_bytes`` or is ``max_age_s`` old, and only the newest ``keep`` files of the bus are kept, so
the disk used is bounded by about ``keep * max_bytes``. A write that fails (disk full, directory
gone) is logged once per file and the recorder stops until the next rotation: recording must
never break the bus.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from ..capture import Record, record_from_event
from ..errors import FramesError
from ..events import TrafficEvent
from ..format import DEFAULT_FORMAT, FrameFormat
from .capture import CaptureWriter

__all__ = ["TrafficRecorder"]

log = logging.getLogger(__name__)


class TrafficRecorder:
    def __init__(
        self,
        directory: str | Path,
        name: str,
        fmt: FrameFormat = DEFAULT_FORMAT,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 3600.0,
        keep: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0 or keep < 1:
            raise ValueError("max_bytes and max_age_s must be > 0 and keep >= 1")
        self.dir = Path(directory)
        self.name = name
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.keep = keep
        self.clock = clock
        self.files = 0
        self.records = 0
        self._writer: CaptureWriter | None = None
        self._opened = 0.0
        self._size = 0
        self._failed = False

    @property
    def path(self) -> Path | None:
        return Path(self._writer.stream.name) if self._writer is not None else None

    def traffic(self, ev: TrafficEvent) -> None:
        rec = record_from_event(ev, self.fmt)
        if rec is not None:
            self.write(rec)

    def write(self, rec: Record) -> None:
        now = self.clock()
        if self._writer is not None and (
            self._size >= self.max_bytes or now - self._opened >= self.max_age_s
        ):
            self._rotate_out()
        if self._writer is None:
            if self._failed and now - self._opened < self.max_age_s:
                return
            self._open(now)
            if self._writer is None:
                return
        try:
            self._size += self._writer.write(rec)
            self._writer.flush()
            self.records += 1
        except FramesError as exc:
            log.warning("event=capture_failed bus=%s error=%s", self.name, exc)
            self._rotate_out()
            self._failed = True

    def _open(self, now: float) -> None:
        self._opened = now
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.files += 1
            path = self.dir / f"{self.name}-{stamp}-{self.files:06d}.pcapng"
            self._writer = CaptureWriter.open(path, self.fmt, name=self.name)
            self._size = self._writer.stream.tell()
            self._failed = False
        except (OSError, FramesError) as exc:
            log.warning("event=capture_failed bus=%s error=%s", self.name, exc)
            self._writer = None
            self._failed = True
            return
        self._prune()

    def _rotate_out(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:
                log.warning("event=capture_failed bus=%s error=%s", self.name, exc)
            self._writer = None

    def _prune(self) -> None:
        """Delete this bus's oldest files beyond ``keep`` (the one just opened included)."""
        # Only this bus's names: bus "a" must not prune bus "a-b"'s files.
        pattern = re.compile(re.escape(self.name) + r"-\d{8}T\d{6}Z-\d{6}\.pcapng")
        mine = sorted(
            (p for p in self.dir.glob(f"{self.name}-*.pcapng") if pattern.fullmatch(p.name)),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
        for old in mine[: max(0, len(mine) - self.keep)]:
            try:
                old.unlink()
            except OSError as exc:
                log.warning(
                    "event=capture_prune_failed bus=%s file=%s error=%s", self.name, old, exc
                )

    def close(self) -> None:
        self._rotate_out()
