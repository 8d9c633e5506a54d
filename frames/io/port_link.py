"""How a master or slave drives an open pyserial port on the event loop.

On POSIX :class:`PortLink` is the shared :class:`~frames.io.fd_link.FdLink` on the port's fd:
one ``os.read`` per readable event (pyserial's ``read`` wraps it in two ``select()`` calls) and
writes at once with one ``os.write``, buffered only when the port is full. A pyserial class that
overrides ``read``/``write`` (``spy://``, ``socket://``) keeps its own methods. A port with no
fd to watch (``rfc2217://``, ``loop://``) gets a reader thread
(:class:`~frames.io.thread_link.ThreadLink`). Elsewhere :class:`AsyncioLink` uses
``pyserial-asyncio``'s transport. :func:`open_link` picks one.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

import serial
import serial_asyncio

from .fd_link import FdLink
from .thread_link import ThreadLink

try:
    from serial.serialposix import Serial as PosixSerial
except ImportError:  # pragma: no cover - not POSIX
    PosixSerial = None

__all__ = [
    "POSIX_FD",
    "AsyncioLink",
    "Link",
    "PortLink",
    "ThreadLink",
    "has_fd",
    "open_link",
    "write_now",
]

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


class PortLink(FdLink):
    """An open pyserial port on the event loop (POSIX): :class:`FdLink` on its fd, closing the
    port when the link ends. Reports to ``protocol`` like an asyncio transport."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, ser: serial.Serial
    ) -> None:
        ser.timeout = 0  # non-blocking, for the classes that keep their own read/write
        ser.write_timeout = 0
        cls = type(ser)
        # Plain OS reads and writes only where pyserial's own would be plain OS reads and writes.
        native = (
            PosixSerial is not None
            and cls.read is PosixSerial.read
            and cls.write is PosixSerial.write
        )
        super().__init__(
            loop,
            ser.fileno(),
            protocol,
            reader=None if native else ser.read,
            writer=None if native else ser.write,
            on_close=ser.close,
            empty_is_eof=native,
        )


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


def has_fd(ser: serial.SerialBase) -> bool:
    """Whether the port has a file descriptor the loop can watch (pyserial raises, or has no
    ``fileno`` at all, for ``rfc2217://`` and ``loop://``)."""
    try:
        return isinstance(ser.fileno(), int)
    except (AttributeError, NotImplementedError, serial.SerialException, OSError):
        return False


def open_link(
    loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, ser: serial.Serial
) -> Link:
    """The link for an open port: :class:`ThreadLink` for a port without an fd, else
    :class:`PortLink` on POSIX and :class:`AsyncioLink` elsewhere. Closes ``ser`` if the link
    cannot be set up."""
    try:
        if not has_fd(ser):
            return ThreadLink(loop, protocol, ser)
        return PortLink(loop, protocol, ser) if POSIX_FD else AsyncioLink(loop, protocol, ser)
    except Exception:
        ser.close()
        raise
