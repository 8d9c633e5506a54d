"""A pyserial port without a file descriptor on the event loop, served from a thread.

pyserial's RFC 2217 client (``rfc2217://``) has no fd to watch: its own thread reads the TCP
socket and strips the telnet layer. For our :class:`~frames.io.rfc2217.Rfc2217Port`,
:class:`ThreadLink` attaches to that thread: each run of data it decodes is handed to the loop
(``call_soon_threadsafe``) and no other thread is involved. Any other port without an fd
(``loop://``) gets a reader thread of ours running a blocking ``read`` loop. Writes go straight
to the port from the loop thread (for RFC 2217 a ``sendall`` on a socket that pyserial bounds
with a 5 s timeout).

Why a thread rather than our own asyncio telnet transport: pyserial's client already does the
option negotiation every server we know accepts (and the settings changes); the one thread hop
costs little against a network round trip (``benchmarks/remote.py`` measures it; see
docs/remote-ports.md).

It reports like an asyncio transport: ``connection_lost`` exactly once, after :meth:`close`
(``None``) or when the port fails (the exception). Closing a port can block (pyserial's RFC 2217
``close`` joins its thread and sleeps 0.3 s), so it runs in the loop's executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import serial

from .fd_link import LinkProtocol
from .rfc2217 import Rfc2217Port

__all__ = ["POLL_S", "ThreadLink"]

log = logging.getLogger(__name__)

POLL_S = 0.2  # the reader's read timeout: how often it looks at the closing flag


class ThreadLink:
    """An open pyserial port served by a reader thread. See the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: LinkProtocol,
        ser: serial.SerialBase,
        *,
        poll: float = POLL_S,
    ) -> None:
        self._loop = loop
        self._protocol = protocol
        self._ser = ser
        self._closing = False
        self._lost = False
        self._thread: threading.Thread | None = None
        if isinstance(ser, Rfc2217Port):
            ser.attach(self._from_thread, self._lost_from_thread)
            return
        ser.timeout = poll  # set once, before the thread starts
        self._thread = threading.Thread(
            target=self._run, name=f"framebridge reader {ser.portstr}", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closing or self._lost

    def write(self, data: bytes) -> None:
        if self._closing or self._lost or not data:
            return
        try:
            self._ser.write(data)
        except (serial.SerialException, OSError) as exc:
            self._fail(exc)

    def close(self) -> None:
        """Stop; ``connection_lost(None)`` follows once the port is closed."""
        if self._closing or self._lost:
            return
        self._closing = True
        fut = self._loop.run_in_executor(None, self._shutdown)
        fut.add_done_callback(lambda _: self._finish(None))

    # -- internals --------------------------------------------------------------------------

    def _run(self) -> None:
        ser = self._ser
        try:
            while not self._closing:
                data: bytes = ser.read(1)
                if not data:
                    continue  # the poll timeout, or a lost connection (the next read raises)
                waiting = ser.in_waiting
                if waiting:
                    data += ser.read(waiting)
                self._loop.call_soon_threadsafe(self._deliver, data)
        except Exception as exc:  # any failure of the port ends the link
            if not self._closing:
                try:
                    self._loop.call_soon_threadsafe(self._fail, exc)
                except RuntimeError:  # the loop is closed: nobody is left to tell
                    log.debug("%s: %s after the loop closed", ser.portstr, exc)

    def _from_thread(self, data: bytes) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to read
            self._loop.call_soon_threadsafe(self._deliver, data)

    def _lost_from_thread(self, exc: Exception) -> None:
        if self._closing:
            return
        try:
            self._loop.call_soon_threadsafe(self._fail, exc)
        except RuntimeError:
            log.debug("%s: %s after the loop closed", self._ser.portstr, exc)

    def _deliver(self, data: bytes) -> None:
        if not self._closing and not self._lost:
            self._protocol.data_received(data)

    def _fail(self, exc: BaseException) -> None:
        if self._closing or self._lost:
            return
        self._closing = True
        self._loop.run_in_executor(None, self._shutdown)
        error = exc if isinstance(exc, Exception) else ConnectionError(str(exc))
        self._loop.call_soon(self._finish, error)

    def _shutdown(self) -> None:
        try:
            self._ser.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("closing %s: %s", self._ser.portstr, exc)
        if self._thread is not None:
            self._thread.join(self._ser.timeout + 1.0 if self._ser.timeout else 1.0)

    def _finish(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._protocol.connection_lost(exc)
