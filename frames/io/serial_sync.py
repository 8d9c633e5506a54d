"""Master: :class:`~frames.master.MasterCore` over blocking ``pyserial``.

The same core as :class:`~frames.io.AsyncMaster`: this adapter only writes
``core.data_to_send()``, reads with a timeout that ends at ``core.next_deadline()``, feeds what
arrived to ``core.receive_data`` and calls ``core.tick``, until the request's outcome event comes
out. Not thread-safe: one thread per instance (wrap it in a lock to share it).

A lost port raises :class:`~frames.errors.LinkDown`; with ``reconnect`` the next request tries to
reopen it, at most once per backoff interval (:class:`~frames.backoff.Backoff`: full jitter,
``reconnect_min`` up to ``reconnect_max``), so a dead adapter costs callers a fast error, not a
hang. The backoff is reset only once the link has proved itself (a reply arrived, or it stayed
up ``reconnect_max`` seconds), so a port that opens and drops at once backs off too.

The port is opened by :func:`~frames.io.ports.open_port`: on ``rfc2217://`` the per-read
``timeout`` stays local and the settings reach the serial server only at open and on
:meth:`Master.set_baudrate`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import serial

from ..backoff import Backoff
from ..commands import STANDARD, CommandRegistry
from ..errors import LinkDown, MasterClosed
from ..events import TrafficEvent
from ..format import DEFAULT_FORMAT, FrameFormat
from ..frame import Frame
from ..master import (
    MasterCore,
    MasterStats,
    ReplyReceived,
    RequestFailed,
    parse_read_registers,
    read_registers_request,
    write_register_request,
    write_registers_request,
)
from .ports import explain_open_error, open_port, retune

__all__ = ["Master"]

log = logging.getLogger(__name__)

OPEN_ERRORS = (serial.SerialException, OSError, ValueError)
IO_ERRORS = (serial.SerialException, OSError)


class Master:
    """The bus master, blocking. ``with Master("/dev/ttyUSB0") as m: m.read_registers(1, 0, 4)``"""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        timeout: float = 0.5,
        retries: int = 2,
        fmt: FrameFormat = DEFAULT_FORMAT,
        registry: CommandRegistry = STANDARD,
        gap: float | None = None,
        discard_echo: bool = False,
        reconnect: bool = True,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        on_traffic: Callable[[TrafficEvent], None] | None = None,
        turnaround: float = 0.05,
        idle_flush: float | None = None,
        serial_options: Mapping[str, Any] | None = None,
        open: bool = True,
        guard: float | None = None,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.registry = registry
        self.reconnect = reconnect
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.on_traffic = on_traffic
        self.serial_options = dict(serial_options or {})
        self._gap_arg, self._idle_flush_arg = gap, idle_flush  # None: derived from the baud rate
        self._core = MasterCore(
            fmt=fmt,
            registry=registry,
            baudrate=baudrate,
            timeout=timeout,
            retries=retries,
            gap=gap,
            turnaround=turnaround,
            discard_echo=discard_echo,
            idle_flush=idle_flush,
            guard=guard,
            connected=False,
            wall_offset=time.time() - time.monotonic(),
        )
        self._port: serial.SerialBase | None = None
        self._port_timeout: float | None = None
        self._closed = False
        self._next_attempt = 0.0
        self._backoff = Backoff(reconnect_min, max(reconnect_min, reconnect_max))
        self._up_since = 0.0
        self._cmd_read = registry.resolve_code("read_regs")
        if open:
            self.open()

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Open the port; raises :class:`LinkDown` if it cannot be opened."""
        if self._closed:
            raise MasterClosed("master is closed")
        if self._port is not None:
            return
        try:
            port = open_port(self.url, baudrate=self.baudrate, **self.serial_options)
        except OPEN_ERRORS as exc:
            self._next_attempt = time.monotonic() + self._backoff.next_delay()
            raise LinkDown(f"cannot open {self.url}: {explain_open_error(self.url, exc)}") from exc
        self._port = port
        self._port_timeout = None
        self._up_since = time.monotonic()
        self._core.link_up(self._up_since)
        self._drain_events(None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._core.close(time.monotonic())
        self._drain_events(None)
        self._close_port()

    def __enter__(self) -> Master:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._port is not None and self._core.connected

    @property
    def stats(self) -> MasterStats:
        return self._core.stats

    @property
    def core(self) -> MasterCore:
        return self._core

    @property
    def backoff(self) -> Backoff:
        """The reconnect backoff (``attempts`` counts reopen attempts since the link last
        proved itself)."""
        return self._backoff

    def set_baudrate(self, baudrate: int) -> None:
        """Change the line speed: the port's (a local UART's termios; on ``rfc2217://`` a
        SET-BAUDRATE the serial server applies to its tty; nothing on ``socket://``), and the
        core's timing (gap, transmit time). Kept for reopens. Raises LinkDown if the port
        fails meanwhile."""
        retune(self._core, baudrate, gap=self._gap_arg, idle_flush=self._idle_flush_arg)
        self.baudrate = baudrate
        port = self._port
        if port is None:
            return
        try:
            port.baudrate = baudrate
        except IO_ERRORS as exc:
            self._lost(exc)
            raise LinkDown(f"{self.url}: cannot set {baudrate} baud: {exc}") from exc

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        addr: int,
        cmd: int | str,
        data: bytes = b"",
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Frame:
        """One transaction. Raises Timeout, DeviceError, LinkDown or MasterClosed."""
        if self._closed:
            raise MasterClosed("master is closed")
        self._ensure_open()
        core = self._core
        token = core.send_request(
            addr, cmd, data, time.monotonic(), timeout=timeout, retries=retries
        )
        try:
            return self._run(token)
        except BaseException:
            # KeyboardInterrupt and the like: keep the core's state consistent for later calls.
            if core.cancel(token, time.monotonic()):
                self._drain_events(None)
            raise

    def _run(self, token: int) -> Frame:
        core = self._core
        while True:
            port = self._port
            out = core.data_to_send()
            if out and port is not None:
                try:
                    port.write(out)
                except IO_ERRORS as exc:
                    self._lost(exc)
            result = self._drain_events(token)
            if result is not None:
                return result
            port = self._port
            if port is None:  # lost while writing; the outcome event is out already
                continue
            deadline = core.next_deadline()
            now = time.monotonic()
            wait = 0.1 if deadline is None else max(0.0, deadline - now)
            try:
                data_in = self._read(port, wait)
            except IO_ERRORS as exc:
                self._lost(exc)
                continue
            now = time.monotonic()
            if data_in:
                core.receive_data(data_in, now)
            core.tick(now)

    def identify(self, addr: int) -> dict[str, Any]:
        frame = self.request(addr, "identify")
        return self.registry.get("identify").decode_response(frame.data)

    def echo(self, addr: int, data: bytes) -> bytes:
        return self.request(addr, "echo", data).data

    def read_registers(self, addr: int, start: int, count: int) -> list[int]:
        frame = self.request(addr, self._cmd_read, read_registers_request(start, count))
        return parse_read_registers(frame.data, count)

    def write_register(self, addr: int, reg: int, value: int) -> None:
        self.request(addr, "write_reg", write_register_request(reg, value))

    def write_registers(self, addr: int, start: int, values: Sequence[int]) -> None:
        self.request(addr, "write_regs", write_registers_request(start, values))

    # -- internals ------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._port is not None:
            return
        if not self.reconnect:
            raise LinkDown(f"{self.url} is not open")
        if time.monotonic() < self._next_attempt:
            raise LinkDown(f"{self.url} is down; next reopen attempt later")
        self.open()

    def _read(self, port: serial.SerialBase, wait: float) -> bytes:
        self._set_timeout(port, wait)
        first: bytes = port.read(1)
        if not first:
            return b""
        self._set_timeout(port, 0)
        rest: bytes = port.read(4096)
        return first + rest

    def _set_timeout(self, port: serial.SerialBase, value: float) -> None:
        if self._port_timeout != value:
            port.timeout = value
            self._port_timeout = value

    def _lost(self, exc: BaseException) -> None:
        log.warning("%s lost: %s", self.url, exc)
        self._close_port()
        now = time.monotonic()
        if now - self._up_since >= self._backoff.max_s:
            self._backoff.reset()  # it stayed up: a fresh loss, not a flapping port
        self._next_attempt = now + self._backoff.next_delay()
        self._core.link_down(now, str(exc))

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except IO_ERRORS as exc:
                log.debug("closing %s: %s", self.url, exc)

    def _drain_events(self, token: int | None) -> Frame | None:
        """Dispatch traffic events; return (or raise) ``token``'s outcome if it is out."""
        outcome: ReplyReceived | RequestFailed | None = None
        for ev in self._core.events():
            if isinstance(ev, (ReplyReceived, RequestFailed)):
                if isinstance(ev, ReplyReceived):
                    self._backoff.reset()  # the link carried a transaction: it is healthy
                if ev.token == token:
                    outcome = ev
            elif self.on_traffic is not None:
                try:
                    self.on_traffic(ev)
                except Exception:
                    log.exception("on_traffic callback failed on %r", ev)
        if outcome is None:
            return None
        if isinstance(outcome, RequestFailed):
            raise outcome.error
        return outcome.frame
