"""Be a device on a real port: a :class:`~frames.slave.Slave` (or a group) behind a serial port,
a pty or a socket.

Thin adapters over the pure responder, shaped like the master's core: bytes and the time in
(``receive_data(data, now) -> bytes``), a deadline out (``next_deadline()``), and ``tick(now)``
when it is due. The inter-frame-gap rule (give up a partial frame after ``idle_flush`` seconds
of silence) lives in the responder; these adapters only keep one timer at its deadline. The
async port writes through the shared :class:`~frames.io.fd_link.FdLink`.

Either a pyserial URL (``/dev/ttyUSB0``, ``socket://``, a pty's ``/dev/pts/N``) or a raw file
descriptor (the controlling side of ``os.openpty()``, which has no path) can be served.
``reply_filter`` lets tests and demos damage or drop replies on their way out (corruption,
silence) without touching device logic.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

import serial

from .fd_link import DeadlineTimer, FdLink
from .port_link import Link, open_link

__all__ = ["AsyncSlavePort", "ReplyFilter", "Responder", "SlavePort"]

log = logging.getLogger(__name__)

ReplyFilter = Callable[[bytes], bytes | None]


class Responder(Protocol):
    """What a port serves: :class:`~frames.slave.Slave` and :class:`~frames.slave.SlaveGroup`."""

    def receive_data(self, data: bytes, now: float) -> bytes: ...

    def next_deadline(self) -> float | None: ...

    def tick(self, now: float) -> bytes: ...


class _Base:
    def __init__(
        self,
        responder: Responder,
        *,
        url: str | None,
        fd: int | None,
        baudrate: int,
        reply_filter: ReplyFilter | None,
    ) -> None:
        if (url is None) == (fd is None):
            raise ValueError("give exactly one of url and fd")
        self.responder = responder
        self.url = url
        self.fd = fd
        self.baudrate = baudrate
        self.reply_filter = reply_filter
        self.bytes_in = 0
        self.bytes_out = 0

    def _answer(self, data: bytes | None, now: float) -> bytes:
        """Replies for ``data`` (None: the responder's deadline came), after the filter."""
        try:
            if data is None:
                out = self.responder.tick(now)
            else:
                self.bytes_in += len(data)
                out = self.responder.receive_data(data, now)
        except Exception:  # a broken responder must not kill the port
            log.exception("responder failed")
            return b""
        if out and self.reply_filter is not None:
            out = self.reply_filter(out) or b""
        self.bytes_out += len(out)
        return out


class _SerialProtocol(asyncio.Protocol):
    """The link's reports, handed to the port."""

    def __init__(self, owner: AsyncSlavePort) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(exc)


class AsyncSlavePort(_Base):
    """Serve a responder on the running event loop until :meth:`stop` or the port dies."""

    def __init__(
        self,
        responder: Responder,
        *,
        url: str | None = None,
        fd: int | None = None,
        baudrate: int = 115200,
        reply_filter: ReplyFilter | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(responder, url=url, fd=fd, baudrate=baudrate, reply_filter=reply_filter)
        self.delay = delay  # seconds before each reply goes out (a slow device)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: Link | None = None
        self._timer: DeadlineTimer | None = None
        self.closed: asyncio.Event = asyncio.Event()

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._timer = DeadlineTimer(loop, self._on_due)
        protocol = _SerialProtocol(self)
        if self.fd is not None:
            os.set_blocking(self.fd, False)
            self._link = FdLink(loop, self.fd, protocol)  # the caller owns (and closes) the fd
        else:
            assert self.url is not None
            opener = functools.partial(serial.serial_for_url, self.url, baudrate=self.baudrate)
            self._link = open_link(loop, protocol, await loop.run_in_executor(None, opener))

    async def stop(self) -> None:
        """Stop serving. The fd is left open (the caller owns it); a URL port is closed."""
        if self._timer is not None:
            self._timer.cancel()
        link, self._link = self._link, None
        if isinstance(link, FdLink):
            link.abort()
        elif link is not None:
            link.close()
        self.closed.set()

    async def __aenter__(self) -> AsyncSlavePort:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _received(self, data: bytes) -> None:
        assert self._loop is not None
        out = self._answer(data, self._loop.time())
        if out and self.delay > 0:
            self._loop.call_later(self.delay, self._write, out)
        else:
            self._write(out)
        self._arm()

    def _on_due(self, now: float) -> None:
        if self.closed.is_set():
            return
        self._write(self._answer(None, now))
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.arm(self.responder.next_deadline())

    def _write(self, out: bytes) -> None:
        if out and self._link is not None and not self.closed.is_set():
            self._link.write(out)

    def _lost(self, exc: BaseException | None) -> None:
        if self.closed.is_set():
            return
        log.info("slave port closed: %s", exc)
        if self._timer is not None:
            self._timer.cancel()
        self._link = None
        self.closed.set()


class SlavePort(_Base):
    """Blocking variant: :meth:`serve` runs until ``stop`` is set (e.g. from another thread)."""

    def __init__(
        self,
        responder: Responder,
        *,
        url: str | None = None,
        fd: int | None = None,
        baudrate: int = 115200,
        reply_filter: ReplyFilter | None = None,
    ) -> None:
        super().__init__(responder, url=url, fd=fd, baudrate=baudrate, reply_filter=reply_filter)
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()

    def serve(self, *, poll: float = 0.05) -> None:
        """Serve until :meth:`stop` or the port dies; ``poll`` bounds how late a stop is seen."""
        if self.fd is not None:
            self._serve_fd(self.fd, poll)
        else:
            assert self.url is not None
            with serial.serial_for_url(self.url, baudrate=self.baudrate) as port:
                self._serve_serial(port, poll)

    def _wait(self, poll: float) -> float:
        """How long to block for input: until the responder's deadline, at most ``poll``."""
        deadline = self.responder.next_deadline()
        if deadline is None:
            return poll
        return min(poll, max(0.0, deadline - time.monotonic()))

    def _serve_fd(self, fd: int, poll: float) -> None:
        os.set_blocking(fd, True)
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not self.stop_event.is_set():
                ready = sel.select(self._wait(poll))
                if not ready:
                    self._send_fd(fd, self._answer(None, time.monotonic()))
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                self._send_fd(fd, self._answer(data, time.monotonic()))

    @staticmethod
    def _send_fd(fd: int, out: bytes) -> None:
        view = memoryview(out)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def _serve_serial(self, port: serial.Serial, poll: float) -> None:
        while not self.stop_event.is_set():
            port.timeout = self._wait(poll)
            try:
                first = port.read(1)
                rest = port.read(port.in_waiting) if first and port.in_waiting else b""
            except serial.SerialException:
                return
            data = first + rest
            out = self._answer(data if data else None, time.monotonic())
            try:
                port.write(out)
            except serial.SerialException:
                return
