"""pyserial's RFC 2217 client, fixed where a bus master needs it (see frames/io/ports.py).

pyserial's ``serial.rfc2217.Serial`` does the option negotiation every server we know accepts,
so :class:`Rfc2217Port` keeps it and changes three things:

* **Settings negotiated only when the server applies them.** The base class renegotiates every
  setting (in 50 ms polling sleeps) on any attribute change, ``timeout`` included, and refuses
  ``write_timeout``. Here ``timeout``/``write_timeout`` stay local; the baud rate, framing and
  flow control are sent at open and when they change (``negotiations`` counts the times).
* **Data in runs, not bytes.** The base reader thread queues every received byte on its own
  (a lock and a wake-up each). Here the telnet layer is decoded by the pure
  :class:`~frames.io.telnet.TelnetDecoder` and each run of data is queued as one ``bytes``.
* **A sink for the event loop.** :meth:`Rfc2217Port.attach` hands each run straight to a
  callback from pyserial's reader thread (and reports the lost connection), so an asyncio link
  needs no thread of its own (:class:`~frames.io.thread_link.ThreadLink`).

Negotiation events go to the base class's own handlers, so its option state stays its own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import serial
from serial import rfc2217
from serial.serialutil import PortNotOpenError, Timeout

from .telnet import Command, Data, Negotiation, Subnegotiation, TelnetDecoder

__all__ = ["Rfc2217Port"]

log = logging.getLogger(__name__)

OnData = Callable[[bytes], None]
OnLost = Callable[[Exception], None]


class Rfc2217Port(rfc2217.Serial):  # type: ignore[misc]  # pyserial has no type hints
    """pyserial's RFC 2217 client; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._negotiated: tuple[Any, ...] | None = None
        self.negotiations = 0
        self._rest = bytearray()  # taken from the queue, not yet read
        self._sink_lock = threading.Lock()
        self._on_data: OnData | None = None
        self._on_lost: OnLost | None = None
        self._ended: Exception | None = None
        super().__init__(*args, **kwargs)

    # -- settings -------------------------------------------------------------------------

    def open(self) -> None:
        self._negotiated = None
        self._rest.clear()
        self._ended = None
        super().open()

    def _server_settings(self) -> tuple[Any, ...]:
        return (
            self._baudrate,
            self._bytesize,
            self._parity,
            self._stopbits,
            self._rtscts,
            self._xonxoff,
        )

    def _reconfigure_port(self) -> None:
        wanted = self._server_settings()
        if wanted == self._negotiated:
            return  # a timeout changed: nothing the server needs to know
        # The base class refuses any write_timeout; writes are a blocking sendall bounded by
        # the socket's own timeout, so the value has nothing to configure here.
        write_timeout: float | None = getattr(self, "_write_timeout")  # noqa: B009 (untyped)
        self._write_timeout = None
        try:
            super()._reconfigure_port()
        finally:
            self._write_timeout = write_timeout
        self._negotiated = wanted
        self.negotiations += 1
        log.debug("%s: negotiated %s", self.portstr, wanted)

    # -- data -----------------------------------------------------------------------------

    def attach(self, on_data: OnData, on_lost: OnLost) -> None:
        """From now on every run of data goes to ``on_data`` and the end of the connection to
        ``on_lost``, both called from pyserial's reader thread; what was queued before goes to
        ``on_data`` first. ``read`` then returns nothing."""
        with self._sink_lock:
            pending = bytes(self._rest)
            self._rest.clear()
            while True:
                try:
                    chunk = self._read_buffer.get_nowait()
                except queue.Empty:
                    break
                if chunk is not None:
                    pending += chunk
            if pending:
                on_data(pending)
            self._on_data, self._on_lost = on_data, on_lost
            ended = self._ended
        if ended is not None:
            on_lost(ended)

    @property
    def in_waiting(self) -> int:
        """A lower bound of the bytes waiting (at least 1 when there are any)."""
        if not self.is_open:
            raise PortNotOpenError()
        return len(self._rest) + int(self._read_buffer.qsize())

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` for the first ones."""
        if not self.is_open:
            raise PortNotOpenError()
        rest = self._rest
        if not rest:
            if self._ended is not None:
                raise serial.SerialException(f"connection failed: {self._ended}")
            if self._thread is None or not self._thread.is_alive():
                raise serial.SerialException("connection failed (reader thread died)")
            try:
                chunk = self._read_buffer.get(True, Timeout(self._timeout).time_left())
            except queue.Empty:
                return b""
            if chunk is None:  # the connection ended: the next read raises
                return b""
            rest += chunk
        while len(rest) < size:  # take what else is queued, without waiting
            try:
                chunk = self._read_buffer.get_nowait()
            except queue.Empty:
                break
            if chunk is None:
                break
            rest += chunk
        out = bytes(rest[:size])
        del rest[:size]
        return out

    def reset_input_buffer(self) -> None:
        super().reset_input_buffer()
        self._rest.clear()

    def _deliver(self, data: bytes) -> None:
        with self._sink_lock:
            sink = self._on_data
            if sink is None:
                self._read_buffer.put(data)
                return
        sink(data)

    def _end(self, exc: Exception) -> None:
        with self._sink_lock:
            self._ended = exc
            on_lost = self._on_lost
            self._read_buffer.put(None)
        if on_lost is not None:
            on_lost(exc)

    def _telnet_read_loop(self) -> None:
        """pyserial's reader thread, with the telnet layer decoded in runs."""
        decoder = TelnetDecoder()
        try:
            while self.is_open:
                try:
                    received = self._socket.recv(4096)
                except TimeoutError:
                    continue  # pyserial's 5 s socket timeout: just look at is_open again
                except OSError as exc:
                    self._end(exc)
                    break
                if not received:
                    self._end(ConnectionResetError("the server closed the connection"))
                    break
                for event in decoder.feed(received):
                    if isinstance(event, Data):
                        self._deliver(event.data)
                    elif isinstance(event, Negotiation):
                        self._telnet_negotiate_option(
                            bytes((event.command,)), bytes((event.option,))
                        )
                    elif isinstance(event, Subnegotiation):
                        self._telnet_process_subnegotiation(event.payload)
                    elif isinstance(event, Command):
                        self._telnet_process_command(bytes((event.command,)))
        except Exception as exc:  # a handler failed: end the connection, never die silently
            log.warning("%s: RFC 2217 reader failed: %r", self.portstr, exc)
            self._end(exc)
