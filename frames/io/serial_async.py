"""AsyncMaster: :class:`~frames.master.MasterCore` over ``pyserial-asyncio``.

A thin adapter: bytes from the port go to ``core.receive_data``, a single timer calls
``core.tick`` at ``core.next_deadline()``, and after each of these ``core.data_to_send()`` goes to
the port and ``core.events()`` resolve the callers' futures. Every protocol rule (FIFO order, one
transaction at a time, timeouts, retries, late replies, cancellation) lives in the core.

Why the lifecycle looks like this:

* A lost port (adapter unplugged, pty closed, socket reset) fails every pending request with
  :class:`~frames.errors.LinkDown`; while it is down, requests fail immediately instead of piling
  up. With ``reconnect`` a background task reopens it with :class:`~frames.backoff.Backoff`
  (full jitter, ``reconnect_min`` up to ``reconnect_max``). The backoff is reset only once the
  link has proved itself (a reply arrived, or it stayed up ``reconnect_max`` seconds): a port
  whose open succeeds and then drops at once backs off like one that cannot be opened.
* Opening a port can block (``socket://`` connects, ``rfc2217://`` negotiates), so it runs in a
  worker thread and never stalls the event loop. So does :meth:`AsyncMaster.set_baudrate`.
* ``rfc2217://`` has no fd: :func:`~frames.io.port_link.open_link` serves it with a reader
  thread (:class:`~frames.io.thread_link.ThreadLink`), and :func:`~frames.io.ports.open_port`
  keeps pyserial from renegotiating with the server on every local setting.
* A traffic callback that raises is logged and otherwise ignored: monitoring must never break
  the bus.

Why the port is driven the way it is (the fast path; a request costs a few syscalls and two
event-loop turns):

* On POSIX the port's fd is watched directly (:class:`~frames.io.port_link.PortLink`, the
  shared :class:`~frames.io.fd_link.FdLink`): one ``os.read`` per readable event and requests
  written at once with one ``os.write``, buffered only when the port is full. Elsewhere
  ``pyserial-asyncio``'s transport is used.
* Futures are resolved from ``data_received`` itself, in the same turn as the bytes arrive.
* One timer at the core's next deadline (:class:`~frames.io.fd_link.DeadlineTimer`), moved only
  when that comes *earlier*, never cancelled when a transaction ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from .fd_link import DeadlineTimer
from .port_link import Link, open_link
from .ports import explain_open_error, open_port, retune

__all__ = ["AsyncMaster"]

log = logging.getLogger(__name__)

OPEN_ERRORS = (serial.SerialException, OSError, ValueError)


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: AsyncMaster) -> None:
        self.owner = owner
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.owner._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner._on_lost(self, exc)


class AsyncMaster:
    """The bus master for asyncio. One instance owns one port."""

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
        max_queue: int = 1024,
        serial_options: Mapping[str, Any] | None = None,
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
            max_queue=max_queue,
            connected=False,
        )
        self._backoff = Backoff(reconnect_min, max(reconnect_min, reconnect_max))
        self._up_since = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: Link | None = None
        self._serial: serial.SerialBase | None = None  # the open port under _transport
        self._protocol: _Protocol | None = None
        self._futures: dict[int, asyncio.Future[Frame]] = {}
        self._timer: DeadlineTimer | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._closed = False
        self._link_waiters: set[asyncio.Future[None]] = set()  # wait_connected() callers
        self._cmd_read = registry.resolve_code("read_regs")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the port. Without ``reconnect`` a failure raises :class:`LinkDown`; with it,
        a background task keeps trying and this returns at once."""
        if self._closed:
            raise MasterClosed("master is closed")
        self._loop = asyncio.get_running_loop()
        self._timer = DeadlineTimer(self._loop, self._on_timer)
        self._core.wall_offset = time.time() - self._loop.time()
        try:
            await self._connect()
        except OPEN_ERRORS as exc:
            if not self.reconnect:
                raise LinkDown(
                    f"cannot open {self.url}: {explain_open_error(self.url, exc)}"
                ) from exc
            log.warning(
                "cannot open %s (%s); retrying in the background",
                self.url,
                explain_open_error(self.url, exc),
            )
            self._start_reconnect()

    async def close(self) -> None:
        """Idempotent. Pending requests raise :class:`MasterClosed`."""
        if self._closed:
            return
        self._closed = True
        self._wake_link_waiters()
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
        if self._loop is not None:
            self._core.close(self._loop.time())
            self._pump()
        if self._timer is not None:
            self._timer.cancel()
        transport, protocol = self._transport, self._protocol
        self._transport = self._protocol = None
        self._serial = None
        if transport is not None and protocol is not None:
            transport.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.lost), 2.0)

    async def __aenter__(self) -> AsyncMaster:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._core.connected

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

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the port is open (after a loss, with ``reconnect``); for callers and tests."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.connected:
            if self._closed:
                raise MasterClosed("master is closed")
            waiter: asyncio.Future[None] = loop.create_future()
            self._link_waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, end - loop.time()))
            except TimeoutError:
                raise LinkDown(f"{self.url} not connected after {timeout}s") from None
            finally:
                self._link_waiters.discard(waiter)

    def _wake_link_waiters(self) -> None:
        for waiter in self._link_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def set_baudrate(self, baudrate: int) -> None:
        """Change the line speed: the port's (a local UART's termios; on ``rfc2217://`` a
        SET-BAUDRATE the serial server applies to its tty; nothing on ``socket://``), in a
        worker thread, and the core's timing (gap, transmit time). Kept for reopens. Raises
        LinkDown if the port fails meanwhile (the link then goes down and reconnects)."""
        retune(self._core, baudrate, gap=self._gap_arg, idle_flush=self._idle_flush_arg)
        self.baudrate = baudrate
        ser = self._serial
        if ser is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, setattr, ser, "baudrate", baudrate)
        except OPEN_ERRORS as exc:
            if self._serial is ser and self._transport is not None:
                self._transport.close()  # connection_lost → link_down → reconnect
            raise LinkDown(f"{self.url}: cannot set {baudrate} baud: {exc}") from exc

    # -- requests -------------------------------------------------------------------------

    async def request(
        self,
        addr: int,
        cmd: int | str,
        data: bytes = b"",
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Frame:
        """One transaction; FIFO with other callers. Raises Timeout, DeviceError, LinkDown,
        MasterClosed. A broadcast returns ``Frame(0, cmd)`` after the turnaround delay."""
        if self._closed:
            raise MasterClosed("master is closed")
        loop = self._loop
        if loop is None or not self.connected:
            raise LinkDown(f"{self.url} is not connected")
        token = self._core.send_request(
            addr, cmd, data, loop.time(), timeout=timeout, retries=retries
        )
        fut: asyncio.Future[Frame] = loop.create_future()
        self._futures[token] = fut
        self._pump()
        try:
            return await fut
        except asyncio.CancelledError:
            if self._futures.pop(token, None) is not None:
                self._core.cancel(token, loop.time())
                self._pump()
            raise

    async def identify(self, addr: int) -> dict[str, Any]:
        frame = await self.request(addr, "identify")
        return self.registry.get("identify").decode_response(frame.data)

    async def echo(self, addr: int, data: bytes) -> bytes:
        return (await self.request(addr, "echo", data)).data

    async def read_registers(self, addr: int, start: int, count: int) -> list[int]:
        frame = await self.request(addr, self._cmd_read, read_registers_request(start, count))
        return parse_read_registers(frame.data, count)

    async def write_register(self, addr: int, reg: int, value: int) -> None:
        await self.request(addr, "write_reg", write_register_request(reg, value))

    async def write_registers(self, addr: int, start: int, values: Sequence[int]) -> None:
        await self.request(addr, "write_regs", write_registers_request(start, values))

    # -- driving the core -----------------------------------------------------------------

    def _pump(self) -> None:
        core = self._core
        out = core.data_to_send()
        if out and self._transport is not None:
            self._transport.write(out)
        on_traffic = self.on_traffic
        for ev in core.events():
            if isinstance(ev, ReplyReceived):
                self._backoff.reset()  # the link carried a transaction: it is healthy
                fut = self._futures.pop(ev.token, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev.frame)
            elif isinstance(ev, RequestFailed):
                fut = self._futures.pop(ev.token, None)
                if fut is not None and not fut.done():
                    fut.set_exception(ev.error)
            elif on_traffic is not None:
                try:
                    on_traffic(ev)
                except Exception:
                    log.exception("on_traffic callback failed on %r", ev)
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.arm(self._core.next_deadline())

    def _on_timer(self, now: float) -> None:
        if self._closed:
            return
        self._core.tick(now)
        self._pump()

    def _on_data(self, protocol: _Protocol, data: bytes) -> None:
        if protocol is not self._protocol or self._loop is None:
            return
        self._core.receive_data(data, self._loop.time())
        self._pump()

    def _on_lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is not self._protocol or self._closed:
            return
        self._transport = self._protocol = None
        self._serial = None
        reason = str(exc) if exc is not None else "port closed"
        log.warning("%s lost: %s", self.url, reason)
        assert self._loop is not None
        if self._loop.time() - self._up_since >= self._backoff.max_s:
            self._backoff.reset()  # it stayed up: a fresh loss, not a flapping port
        self._core.link_down(self._loop.time(), reason)
        self._pump()
        if self.reconnect:
            self._start_reconnect()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opener = functools.partial(
            open_port, self.url, baudrate=self.baudrate, **self.serial_options
        )
        ser = await loop.run_in_executor(None, opener)
        if self._closed:
            ser.close()
            raise MasterClosed("master closed while opening")
        protocol = _Protocol(self)
        transport = open_link(loop, protocol, ser)
        self._transport, self._protocol = transport, protocol
        self._serial = ser
        self._up_since = loop.time()
        self._core.link_up(loop.time())
        self._pump()
        self._wake_link_waiters()
        log.info("%s open", self.url)

    def _start_reconnect(self) -> None:
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._backoff.next_delay())
            try:
                await self._connect()
            except MasterClosed:
                return
            except OPEN_ERRORS as exc:
                log.debug("reopen %s failed: %s", self.url, explain_open_error(self.url, exc))
            else:
                return
