"""A bus that plays a capture back: ``url = "replay:///path/file.pcapng?speed=10"``.

The least invasive hook: :class:`ReplayMaster` stands in for the bus's
:class:`~frames.io.serial_async.AsyncMaster` (same ``open``/``connected``/``request``/``close``
and the same ``on_traffic`` events), so the bus owner, the fan-out, history and the clients see a
live bus and nothing else changes. Recorded requests become ``FrameSent``, replies
``FrameReceived`` (``late``/``unexpected`` kept), bad bytes ``CrcErrorSeen``; each event is
stamped with the time it is played (a live bus), at the recorded pace divided by ``speed``
(``speed=0`` or ``max``: as fast as the loop allows, yielding between records). ``loop=1``
starts over at the end. Client requests are refused (``bad_request``): a replay is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from frames.capture import Record
from frames.errors import FramesError, FrameValueError
from frames.events import (
    CrcErrorSeen,
    FrameReceived,
    FrameSent,
    LinkStateChanged,
    TrafficEvent,
)
from frames.frame import Frame
from frames.io.capture import read_capture
from frames.io.capture_rotate import TrafficRecorder
from frames.replay import infer_directions

from .config import BusConfig
from .errors import ConfigError

__all__ = ["ReplayMaster", "capture_recorder", "is_replay_url", "parse_replay_url"]

log = logging.getLogger("bridge.replay")

YIELD_EVERY = 64  # records played between yields to the loop at full speed


def is_replay_url(url: str) -> bool:
    return url.startswith("replay:")


def parse_replay_url(url: str) -> tuple[Path, float, bool]:
    """``replay:///abs/file.pcapng?speed=10&loop=1`` → (path, speed, loop); speed 0 = max."""
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.netloc + parts.path)
    if not path:
        raise ConfigError("url", f"{url!r}: a replay URL names a file: replay:///path.pcapng")
    query = urllib.parse.parse_qs(parts.query)
    text = query.get("speed", ["1"])[-1]
    try:
        speed = 0.0 if text in ("max", "0") else float(text)
    except ValueError:
        raise ConfigError("url", f"{url!r}: speed must be a number or max") from None
    if speed < 0:
        raise ConfigError("url", f"{url!r}: speed must be >= 0")
    loop = query.get("loop", ["0"])[-1] in ("1", "true", "yes")
    return Path(path), speed, loop


class ReplayMaster:
    def __init__(self, url: str, *, on_traffic: Callable[[TrafficEvent], None]) -> None:
        self.path, self.speed, self.loop = parse_replay_url(url)
        self.on_traffic = on_traffic
        self.played = 0
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def open(self) -> None:
        if not self.path.is_file():
            log.warning("event=replay_missing file=%s", self.path)
            return
        self._connected = True
        self.on_traffic(LinkStateChanged(time.time(), True))
        self._task = asyncio.get_running_loop().create_task(self._play(), name="replay")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._connected = False

    async def request(
        self, addr: int, cmd: int, data: bytes = b"", *, timeout: float | None = None
    ) -> Frame:
        raise FrameValueError("this bus replays a capture: it takes no requests")

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._play_once(loop)
            except FramesError as exc:
                log.warning("event=replay_failed file=%s error=%s", self.path, exc)
                break
            if not self.loop:
                break
        self.finished.set()

    async def _play_once(self, loop: asyncio.AbstractEventLoop) -> None:
        t0: float | None = None
        start = loop.time()
        for i, rec in enumerate(infer_directions(read_capture(self.path))):
            if self.speed > 0:
                if t0 is None:
                    t0 = rec.ts
                delay = start + (rec.ts - t0) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            ev = self._event(rec)
            if ev is not None:
                self.played += 1
                self.on_traffic(ev)

    @staticmethod
    def _event(rec: Record) -> TrafficEvent | None:
        now = time.time()
        frame = rec.frame
        if frame is None:
            return CrcErrorSeen(now, 1)
        if rec.direction == "tx":
            return FrameSent(now, frame)
        kind = rec.note if rec.note in ("late", "unexpected") else "reply"
        return FrameReceived(now, frame, kind)  # type: ignore[arg-type]


def capture_recorder(cfg: BusConfig) -> TrafficRecorder | None:
    """The bus's rotating recorder when its config has a ``capture`` table."""
    cap = cfg.capture
    if cap is None:
        return None
    return TrafficRecorder(
        cap.dir,
        cfg.name,
        cfg.format,
        max_bytes=cap.max_bytes,
        max_age_s=cap.max_age_s,
        keep=cap.keep,
    )
