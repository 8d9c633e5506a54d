"""One non-blocking fd link for every port on the event loop: master, slave and simulator.

:class:`FdLink` watches a file descriptor with ``loop.add_reader``: one read per readable event,
handed to the protocol's ``data_received``; writes go out at once with one ``os.write`` and are
buffered behind a writer callback only when the port is full (never reordered). It reports like
an asyncio transport: ``connection_lost`` exactly once, on :meth:`FdLink.close` (after anything
buffered has been written), :meth:`FdLink.abort`, or when the port fails.

Why one class: the master (:class:`~frames.io.port_link.PortLink`), the slave port and the
simulator's pty all need exactly this, and three copies of a partial-write loop drift apart.
The differences are parameters:

* ``reader``/``writer``: a pyserial class that overrides ``read``/``write`` (``spy://``,
  ``socket://``) keeps its own methods; otherwise plain ``os.read``/``os.write``.
* ``eof_pause``: a pty whose other end nobody holds reads EIO; the master treats that as the
  port gone, the simulator (which must keep serving whoever opens the port next) pauses reading
  for ``eof_pause`` seconds and tries again, and drops what it cannot write.

:class:`DeadlineTimer` is the other shared piece: the one loop timer an adapter keeps at its
core's ``next_deadline()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable
from typing import Protocol

__all__ = ["READ_SIZE", "DeadlineTimer", "FdLink", "LinkProtocol"]

log = logging.getLogger(__name__)

READ_SIZE = 4096


class LinkProtocol(Protocol):
    """What a link reports to (``asyncio.Protocol`` fits)."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class FdLink:
    """A non-blocking fd on the event loop (POSIX). See the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        protocol: LinkProtocol,
        *,
        reader: Callable[[int], bytes] | None = None,
        writer: Callable[[bytes], int | None] | None = None,
        on_close: Callable[[], object] | None = None,
        empty_is_eof: bool = True,
        eof_pause: float | None = None,
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._protocol = protocol
        self._read: Callable[[int], bytes] = reader or functools.partial(os.read, fd)
        self._write: Callable[[bytes], int | None] = writer or functools.partial(os.write, fd)
        self._on_close = on_close
        self._empty_is_eof = empty_is_eof  # a plain read of 0 bytes: the other side is gone
        self._eof_pause = eof_pause
        self._out = bytearray()
        self._closing = False
        self._lost = False
        self._paused: asyncio.TimerHandle | None = None
        self._drained: list[asyncio.Future[None]] = []
        loop.add_reader(fd, self._readable)

    @property
    def closed(self) -> bool:
        """Closing or lost: writes are ignored."""
        return self._closing or self._lost

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the port."""
        return len(self._out)

    def write(self, data: bytes) -> None:
        if self._closing or self._lost or not data:
            return
        if self._out:
            self._out += data
            return
        try:
            n = self._write(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:  # serial.SerialException is an OSError too
            self._write_failed(exc)
            return
        n = n or 0
        if n < len(data):
            self._out += data[n:]
            self._loop.add_writer(self._fd, self._writable)

    async def drain(self) -> None:
        """Until everything written has been taken by the port (or the link is gone)."""
        if not self._out or self._lost:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drained.append(waiter)
        await waiter

    def close(self) -> None:
        """Stop reading; ``connection_lost(None)`` follows once anything buffered is written."""
        if self._closing or self._lost:
            return
        self._closing = True
        self._stop_reading()
        if not self._out:
            self._loop.call_soon(self._finish, None)

    def abort(self) -> None:
        """Stop now: drop what is buffered, ``connection_lost(None)`` before returning."""
        if self._lost:
            return
        self._closing = True
        self._stop_reading()
        self._drop_output()
        self._finish(None)

    # -- internals --------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self._read(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other side of a pty is gone; a USB adapter unplugged
            self._eof(exc)
            return
        if data:
            self._protocol.data_received(data)
        elif self._empty_is_eof:  # readable with nothing to read: the device is gone
            self._eof(ConnectionError("device reports readiness to read but returned no data"))

    def _eof(self, exc: Exception) -> None:
        if self._eof_pause is None:
            self._fail(exc)
            return
        # Pause instead of spinning on EIO until someone opens the other end again.
        log.debug("fd %d: %s; reading again in %gs", self._fd, exc, self._eof_pause)
        self._stop_reading()
        self._paused = self._loop.call_later(self._eof_pause, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if not self._closing and not self._lost:
            self._loop.add_reader(self._fd, self._readable)

    def _stop_reading(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        else:
            self._loop.remove_reader(self._fd)

    def _writable(self) -> None:
        try:
            n = self._write(bytes(self._out))
        except BlockingIOError:
            return
        except OSError as exc:
            self._write_failed(exc)
            return
        del self._out[: n or 0]
        if not self._out:
            self._loop.remove_writer(self._fd)
            self._wake_drained()
            if self._closing:
                self._loop.call_soon(self._finish, None)

    def _write_failed(self, exc: OSError) -> None:
        if self._eof_pause is None:
            self._fail(exc)
            return
        log.debug("fd %d: write failed: %s; output dropped", self._fd, exc)
        self._drop_output()

    def _drop_output(self) -> None:
        if self._out:
            self._out.clear()
            self._loop.remove_writer(self._fd)
        self._wake_drained()

    def _wake_drained(self) -> None:
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._lost:
            return
        if not self._closing:
            self._closing = True
            self._stop_reading()
        self._drop_output()
        self._loop.call_soon(self._finish, exc)  # never re-enter the caller of write()

    def _finish(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._wake_drained()
        if self._on_close is not None:
            with contextlib.suppress(Exception):
                self._on_close()
        self._protocol.connection_lost(exc)


class DeadlineTimer:
    """One loop timer kept at a core's ``next_deadline()``; ``on_due(now)`` when it fires.

    Moved only when a deadline comes *earlier*, never cancelled when nothing is due: a timer
    that fires for nothing ticks the core (a no-op) and is set again from its next deadline.
    A busy link arms about one timer per timeout instead of one (and a cancel) per frame.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_due: Callable[[float], None]) -> None:
        self._loop = loop
        self._on_due = on_due
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0

    def arm(self, deadline: float | None) -> None:
        if deadline is None:
            return
        handle = self._handle
        if handle is not None:
            if self._when <= deadline:
                return  # fires early at worst; the callback re-arms
            handle.cancel()
        self._when = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        # The loop may run a timer up to its clock resolution early: treat it as due.
        self._on_due(max(self._loop.time(), self._when))
