"""A pty whose devices answer as a capture recorded them (``framebridge replay FILE --sim``).

The thin I/O around :class:`frames.replay.ReplayBook`: requests read from the pty are decoded,
and each one's recorded replies (bad bytes included) are written back after the recorded delay
divided by ``speed`` (``speed`` 0: at once). One bounded queue and one writer task keep the
replies in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from pathlib import Path

from ..capture import Record
from ..format import FrameFormat
from ..frame import Frame
from ..replay import ReplayBook
from ..stream import StreamDecoder

__all__ = ["ReplayPty"]

log = logging.getLogger(__name__)


class ReplayPty:
    def __init__(
        self,
        book: ReplayBook,
        fmt: FrameFormat,
        *,
        speed: float = 1.0,
        link: str | None = None,
        idle_gap: float = 0.05,
        max_pending: int = 256,
    ) -> None:
        self.book = book
        self.fmt = fmt
        self.speed = speed
        self.link = Path(link) if link else None
        self.idle_gap = idle_gap
        self.decoder = StreamDecoder(fmt)
        self.answered = 0
        self.unknown = 0
        self._queue: asyncio.Queue[tuple[float, Record]] = asyncio.Queue(max_pending)
        self._master = self._slave = -1
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self.path = ""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._master, self._slave = os.openpty()
        for fd in (self._master, self._slave):
            tty.setraw(fd)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            os.symlink(self.path, self.link)
        loop.add_reader(self._master, self._on_readable)
        self._task = loop.create_task(self._writer(), name="replay-pty-writer")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._master >= 0:
            loop.remove_reader(self._master)
        if self._idle is not None:
            self._idle.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(OSError):
                self.link.unlink()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:
            data = b""
        if not data:
            return
        self._handle(self.decoder.feed(data))
        if self._idle is not None:
            self._idle.cancel()
        if self.decoder.pending:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.idle_gap, lambda: self._handle(self.decoder.flush()))

    def _handle(self, frames: list[Frame]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for frame in frames:
            answers = self.book.answer(frame)
            if not answers:
                self.unknown += 1
                log.info("replay: no recorded answer to %s", frame)
                continue
            self.answered += 1
            for delay, rec in answers:
                due = now + (delay / self.speed if self.speed > 0 else 0.0)
                try:
                    self._queue.put_nowait((due, rec))
                except asyncio.QueueFull:
                    log.warning("replay: reply queue full, reply dropped")

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, rec = await self._queue.get()
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                os.write(self._master, rec.wire)
            except BlockingIOError:
                log.warning("replay: nobody reads the pty, reply dropped")
            except OSError as exc:
                log.debug("replay: write failed: %s", exc)
