"""Be a device on a real port: a :class:`~frames.slave.Slave` (or a group) behind a serial port,
a pty or a socket.

Thin adapters over the pure responder (``receive_data(bytes) -> bytes`` and ``idle() -> bytes``):
read what arrives, feed it, write the replies, and call ``idle()`` once the line has been quiet
for ``idle_flush`` seconds so a stray start byte cannot stall the next request.

Either a pyserial URL (``/dev/ttyUSB0``, ``socket://``, a pty's ``/dev/pts/N``) or a raw file
descriptor (the controlling side of ``os.openpty()``, which has no path) can be served.
``reply_filter`` lets tests and demos damage or drop replies on their way out (corruption,
silence) without touching device logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

import serial
import serial_asyncio

from .port_link import write_now

__all__ = ["AsyncSlavePort", "ReplyFilter", "Responder", "SlavePort"]

log = logging.getLogger(__name__)

ReplyFilter = Callable[[bytes], bytes | None]


class Responder(Protocol):
    """What a port serves: :class:`~frames.slave.Slave` and :class:`~frames.slave.SlaveGroup`."""

    def receive_data(self, data: bytes) -> bytes: ...

    def idle(self) -> bytes: ...


class _Base:
    def __init__(
        self,
        responder: Responder,
        *,
        url: str | None,
        fd: int | None,
        baudrate: int,
        idle_flush: float,
        reply_filter: ReplyFilter | None,
    ) -> None:
        if (url is None) == (fd is None):
            raise ValueError("give exactly one of url and fd")
        self.responder = responder
        self.url = url
        self.fd = fd
        self.baudrate = baudrate
        self.idle_flush = idle_flush
        self.reply_filter = reply_filter
        self.bytes_in = 0
        self.bytes_out = 0

    def _answer(self, data: bytes | None) -> bytes:
        """Replies for ``data`` (None: the line went idle), after the filter."""
        try:
            if data is None:
                out = self.responder.idle()
            else:
                self.bytes_in += len(data)
                out = self.responder.receive_data(data)
        except Exception:  # a broken responder must not kill the port
            log.exception("responder failed")
            return b""
        if out and self.reply_filter is not None:
            out = self.reply_filter(out) or b""
        self.bytes_out += len(out)
        return out


class _SerialProtocol(asyncio.Protocol):
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
        idle_flush: float = 0.005,
        reply_filter: ReplyFilter | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(
            responder,
            url=url,
            fd=fd,
            baudrate=baudrate,
            idle_flush=idle_flush,
            reply_filter=reply_filter,
        )
        self.delay = delay  # seconds before each reply goes out (a slow device)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: serial_asyncio.SerialTransport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._idle_when = 0.0  # when the idle timer is set to fire
        self._last_rx = 0.0
        self._pending_out = bytearray()
        self.closed: asyncio.Event = asyncio.Event()

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        if self.fd is not None:
            os.set_blocking(self.fd, False)
            loop.add_reader(self.fd, self._readable)
        else:
            assert self.url is not None
            self._transport, _ = await serial_asyncio.create_serial_connection(
                loop, lambda: _SerialProtocol(self), self.url, baudrate=self.baudrate
            )

    async def stop(self) -> None:
        """Stop serving. The fd is left open (the caller owns it); a URL port is closed."""
        if self._idle is not None:
            self._idle.cancel()
        if self.fd is not None and self._loop is not None and not self.closed.is_set():
            self._loop.remove_reader(self.fd)
            if self._pending_out:
                self._loop.remove_writer(self.fd)
        if self._transport is not None:
            self._transport.close()
            self._transport = None
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

    def _readable(self) -> None:
        assert self.fd is not None
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other side of the pty is gone
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        assert self._loop is not None
        out = self._answer(data)
        if out and self.delay > 0:
            self._loop.call_later(self.delay, self._write, out)
        else:
            self._write(out)
        # One idle timer, not one per chunk: when it fires it checks whether bytes came in
        # since it was set and, if so, waits again from the last of them.
        loop = self._loop
        self._last_rx = loop.time()
        if self._idle is None:
            self._idle_when = self._last_rx + self.idle_flush
            self._idle = loop.call_at(self._idle_when, self._on_idle)

    def _on_idle(self) -> None:
        self._idle = None
        if self._loop is None or self.closed.is_set():
            return
        due = self._last_rx + self.idle_flush
        if due > self._idle_when:  # bytes came in after the timer was set: not idle yet
            self._idle_when = due
            self._idle = self._loop.call_at(due, self._on_idle)
            return
        self._write(self._answer(None))

    def _write(self, out: bytes) -> None:
        if not out or self.closed.is_set():
            return
        if self._transport is not None:
            write_now(self._transport, out)
            return
        assert self.fd is not None and self._loop is not None
        if self._pending_out:
            self._pending_out += out
            return
        try:
            n = os.write(self.fd, out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._lost(exc)
            return
        if n < len(out):
            self._pending_out += out[n:]
            self._loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        assert self.fd is not None and self._loop is not None
        try:
            n = os.write(self.fd, self._pending_out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._pending_out[:n]
        if not self._pending_out:
            self._loop.remove_writer(self.fd)

    def _lost(self, exc: BaseException | None) -> None:
        if self.closed.is_set():
            return
        log.info("slave port closed: %s", exc)
        if self.fd is not None and self._loop is not None:
            self._loop.remove_reader(self.fd)
            if self._pending_out:
                self._loop.remove_writer(self.fd)
        if self._idle is not None:
            self._idle.cancel()
        self._transport = None
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
        idle_flush: float = 0.005,
        reply_filter: ReplyFilter | None = None,
    ) -> None:
        super().__init__(
            responder,
            url=url,
            fd=fd,
            baudrate=baudrate,
            idle_flush=idle_flush,
            reply_filter=reply_filter,
        )
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

    def _serve_fd(self, fd: int, poll: float) -> None:
        os.set_blocking(fd, True)
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            dirty = False
            while not self.stop_event.is_set():
                ready = sel.select(self.idle_flush if dirty else poll)
                if not ready:
                    if dirty:
                        dirty = False
                        self._send_fd(fd, self._answer(None))
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                dirty = True
                self._send_fd(fd, self._answer(data))

    @staticmethod
    def _send_fd(fd: int, out: bytes) -> None:
        view = memoryview(out)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def _serve_serial(self, port: serial.Serial, poll: float) -> None:
        dirty = False
        while not self.stop_event.is_set():
            port.timeout = self.idle_flush if dirty else poll
            try:
                first = port.read(1)
                rest = port.read(port.in_waiting) if first and port.in_waiting else b""
            except serial.SerialException:
                return
            if not first:
                if dirty:
                    dirty = False
                    with contextlib.suppress(serial.SerialException):
                        port.write(self._answer(None))
                continue
            dirty = True
            try:
                port.write(self._answer(first + rest))
            except serial.SerialException:
                return
