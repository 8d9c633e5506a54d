"""How AsyncMaster drives an open pyserial port: the fast fd path and the portable fallback.

On POSIX :class:`PortLink` watches the port's fd directly: one ``os.read`` per readable event
(pyserial's ``read`` wraps it in two ``select()`` calls) and requests written at once with one
``os.write``, buffered behind a writer callback only when the port is full. A pyserial class
that overrides ``read``/``write`` (``spy://``, ``socket://``) keeps its own methods. Elsewhere
:class:`AsyncioLink` uses ``pyserial-asyncio``'s transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Protocol

import serial
import serial_asyncio

try:
    from serial.serialposix import Serial as PosixSerial
except ImportError:  # pragma: no cover - not POSIX
    PosixSerial = None

__all__ = ["POSIX_FD", "AsyncioLink", "Link", "PortLink", "write_now"]

log = logging.getLogger(__name__)

POSIX_FD = PosixSerial is not None and os.name == "posix"  # PortLink can be used


def write_now(transport: serial_asyncio.SerialTransport, data: bytes) -> None:
    """Write at once when nothing is queued; the transport alone would wait a loop turn (and two
    epoll changes) for writability, which is most of a request's cost on a fast link."""
    if not transport.is_closing() and transport.get_write_buffer_size() == 0:
        try:
            n = transport.serial.write(data)
        except (serial.SerialException, OSError):
            n = 0  # let the transport hit the error again and report the loss its own way
        data = data[n or 0 :]
    if data:
        transport.write(data)


class Link(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class PortLink:
    """An open pyserial port on the event loop (POSIX): a reader callback on its fd, writes that
    go out at once. Reports to ``protocol`` like an asyncio transport: ``data_received``, and
    ``connection_lost`` exactly once (on :meth:`close`, or when the port fails)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, ser: serial.Serial
    ) -> None:
        self._loop = loop
        self._protocol = protocol
        self._serial = ser
        ser.timeout = 0  # non-blocking, for the classes that keep their own read/write
        ser.write_timeout = 0
        self._fd: int = ser.fileno()
        cls = type(ser)
        # Plain OS reads and writes only where pyserial's own would be plain OS reads and writes.
        self._native = (
            PosixSerial is not None
            and cls.read is PosixSerial.read
            and cls.write is PosixSerial.write
        )
        self._out = bytearray()
        self._closing = False
        self._lost = False
        loop.add_reader(self._fd, self._readable)

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        if self._out:
            self._out += data
            return
        try:
            n = os.write(self._fd, data) if self._native else self._serial.write(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:  # serial.SerialException is an OSError too
            self._fail(exc)
            return
        n = n or 0
        if n < len(data):
            self._out += data[n:]
            self._loop.add_writer(self._fd, self._writable)

    def close(self) -> None:
        """Stop reading; the port closes (and ``connection_lost(None)`` is called) once anything
        still buffered has been written."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._out:
            self._loop.call_soon(self._finish, None)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096) if self._native else self._serial.read(4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other side of a pty is gone; a USB adapter unplugged
            self._fail(exc)
            return
        if data:
            self._protocol.data_received(data)
        elif self._native:  # readable with nothing to read: the device is gone
            self._fail(
                serial.SerialException("device reports readiness to read but returned no data")
            )

    def _writable(self) -> None:
        try:
            n = os.write(self._fd, self._out) if self._native else self._serial.write(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        del self._out[: n or 0]
        if not self._out:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._loop.call_soon(self._finish, None)

    def _fail(self, exc: Exception) -> None:
        if self._lost:
            return
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._out.clear()
        self._loop.remove_writer(self._fd)
        self._loop.call_soon(self._finish, exc)  # never re-enter the caller of write()

    def _finish(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        with contextlib.suppress(Exception):
            self._serial.close()
        self._protocol.connection_lost(exc)


class AsyncioLink:
    """``pyserial-asyncio``'s transport, where :class:`PortLink` cannot watch an fd."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, ser: serial.Serial
    ) -> None:
        self._transport = serial_asyncio.SerialTransport(loop, protocol, ser)

    def write(self, data: bytes) -> None:
        write_now(self._transport, data)

    def close(self) -> None:
        self._transport.close()
