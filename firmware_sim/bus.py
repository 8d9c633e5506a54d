"""SimulatedBus: simulated devices on a real pseudo-terminal or a TCP port (the I/O layer).

Everything protocol-related happens in the pure :class:`~firmware_sim.core.BusCore`; this
module only moves bytes and keeps time:

* **pty**: both ends raw (``tty.setraw``) so no byte is translated; the master end is served by
  the same non-blocking :class:`~frames.io.fd_link.FdLink` the masters and slave ports use. The
  simulator keeps its own handle on the slave end open, so a host closing and reopening the port
  never hangs the pty up (no EIO storm) and the bus keeps serving; if an EIO does arrive,
  reading pauses briefly and resumes (the link's ``eof_pause``).
* **time**: the inter-frame gap (a partial frame given up after ``idle_gap`` of silence) is the
  pure view's rule (``next_deadline()``/``tick(now)``); the adapters keep one timer at it.
* **tcp**: one server; each client connection is its own view of the bus (its own decoder and
  write queue) over the same devices, for pyserial's ``socket://`` URLs.
* **replies** go through one bounded queue and writer task per connection, which carries out
  the :class:`~firmware_sim.faults.Delivery` (delay, split pieces) and, with ``pacing``, the
  wire time a UART needs (baud/10 bytes per second), so latencies look like real hardware.

:class:`ThreadedSimulatedBus` runs the same bus on a loop in a background thread for blocking
code (pyserial's sync API); it shares every line of logic with the async one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from frames.format import DEFAULT_FORMAT, FrameFormat
from frames.io.fd_link import READ_SIZE, DeadlineTimer, FdLink

from .config import device_addresses
from .core import BusCore, BusCounters, BusView, Outgoing
from .device import SimulatedDevice
from .errors import BusError, ConfigError
from .faults import FaultConfig, wire_time
from .profile import Profile, load_profile

__all__ = ["SimulatedBus", "parse_tcp"]

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteFn = Callable[[bytes], Awaitable[bool]]

EIO_RETRY = 0.05  # seconds to wait before reading a pty again after EIO
PACE_SLICE = 0.002  # with pacing, bytes go out in slices of about this many seconds


def parse_tcp(value: str | tuple[str, int]) -> tuple[str, int]:
    """``"127.0.0.1:7000"`` (or a tuple) → (host, port); port 0 picks a free one."""
    if isinstance(value, tuple):
        host, port = value
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigError(f"tcp: expected HOST:PORT, got {value!r}")
        port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"tcp: port {port} is not 0..65535")
    return host or "127.0.0.1", port


class _ReplyWriter:
    """Carries out planned replies for one connection, in order, through a bounded queue."""

    def __init__(self, bus: SimulatedBus, write: WriteFn, name: str) -> None:
        self.bus = bus
        self.write = write
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(bus.max_pending)
        self.task = asyncio.get_running_loop().create_task(self._run(), name=name)

    def submit(self, outs: Iterable[Outgoing]) -> None:
        for out in outs:
            try:
                self.queue.put_nowait(out)
            except asyncio.QueueFull:
                self.bus.counters.overflows += 1
                log.warning("%s: write queue full, reply of device %d dropped", self.bus, out.addr)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        bus = self.bus
        while True:
            out = await self.queue.get()
            d = out.delivery
            due = out.received + d.delay
            if bus.pacing:
                due += wire_time(out.request_bytes, bus.baudrate)
            await _sleep_until(loop, due)
            for i, chunk in enumerate(d.chunks):
                if i:
                    await asyncio.sleep(d.gap)
                if not await self._send(loop, chunk):
                    break

    async def _send(self, loop: asyncio.AbstractEventLoop, chunk: bytes) -> bool:
        bus = self.bus
        if not bus.pacing:
            bus.counters.bytes_out += len(chunk)
            return await self.write(chunk)
        rate = bus.baudrate / 10  # bytes per second on an 8N1 UART
        step = max(1, round(rate * PACE_SLICE))
        t = loop.time()
        for i in range(0, len(chunk), step):
            piece = chunk[i : i + step]
            t += len(piece) / rate
            await _sleep_until(loop, t)  # the piece's last bit has left the UART by now
            bus.counters.bytes_out += len(piece)
            if not await self.write(piece):
                return False
        return True


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class _PtyPort:
    """One pseudo-terminal: the master end served, the slave end's path handed to the host."""

    def __init__(self, bus: SimulatedBus) -> None:
        self.bus = bus
        self.loop = asyncio.get_running_loop()
        self.master, self.slave = os.openpty()
        for fd in (self.master, self.slave):
            tty.setraw(fd)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.view: BusView = bus.core.open_view()
        self.writer = _ReplyWriter(bus, self._write, f"sim-pty-writer {self.path}")
        self.closed = False
        self.timer = DeadlineTimer(self.loop, self._on_due)
        self.link = FdLink(self.loop, self.master, self, eof_pause=EIO_RETRY)

    # -- the link's protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.bus.tap_wire("rx", data)
        self.writer.submit(self.view.receive_data(data, self.loop.time()))
        self.timer.arm(self.view.next_deadline())

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.warning("%s: pty failed: %s", self.bus, exc)

    # -- time and replies -----------------------------------------------------------------

    def _on_due(self, now: float) -> None:
        if not self.closed:
            self.writer.submit(self.view.tick(now))
            self.timer.arm(self.view.next_deadline())

    async def _write(self, data: bytes) -> bool:
        """Write one piece; waits while the host is not reading (the link buffers it)."""
        if self.closed:
            return False
        self.bus.tap_wire("tx", data)  # in line order: the link never reorders
        self.link.write(data)
        await self.link.drain()
        return not self.closed and not self.link.closed

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.link.abort()
        await self.writer.close()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _TcpConnection:
    def __init__(
        self, bus: SimulatedBus, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.bus = bus
        self.reader = reader
        self.stream = writer
        self.view = bus.core.open_view()
        self.peer = writer.get_extra_info("peername")
        self.writer = _ReplyWriter(bus, self._write, f"sim-tcp-writer {self.peer}")

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                deadline = self.view.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    self.writer.submit(self.view.tick(max(loop.time(), deadline or 0.0)))
                    continue
                if not data:
                    break
                self.bus.tap_wire("rx", data)
                self.writer.submit(self.view.receive_data(data, loop.time()))
        except ConnectionError as exc:
            log.debug("%s: client %s: %s", self.bus, self.peer, exc)
        finally:
            await self.close()

    async def _write(self, data: bytes) -> bool:
        if self.stream.is_closing():
            return False
        self.bus.tap_wire("tx", data)
        self.stream.write(data)
        try:
            await self.stream.drain()
        except ConnectionError:
            return False
        return True

    async def close(self) -> None:
        await self.writer.close()
        self.stream.close()
        with contextlib.suppress(ConnectionError):
            await self.stream.wait_closed()


class SimulatedBus:
    """Simulated devices answering on one pty (default) or TCP port.

    Devices are ``count`` copies of ``profile`` at addresses ``first_address`` onwards, or the
    given ``devices``. ``faults`` applies to every device without faults of its own. ``link``
    makes a symlink to the pty (stable across :meth:`replug`). ``idle_gap`` is the line
    silence after which a partial frame is given up; ``max_pending`` bounds each connection's
    queue of replies waiting to be written.
    """

    def __init__(
        self,
        count: int = 1,
        profile: Profile | str = "thermo",
        *,
        devices: Iterable[SimulatedDevice] | None = None,
        link: str | os.PathLike[str] | None = None,
        tcp: str | tuple[str, int] | None = None,
        faults: FaultConfig | None = None,
        seed: int | str = 0,
        fmt: FrameFormat = DEFAULT_FORMAT,
        baudrate: int = 115200,
        pacing: bool = False,
        first_address: int = 1,
        idle_gap: float = 0.05,
        max_pending: int = 64,
        name: str = "bus",
    ) -> None:
        if devices is None:
            addresses = device_addresses(count, first_address)
            prof = profile if isinstance(profile, Profile) else load_profile(profile)
            devices = [SimulatedDevice(a, prof, seed=seed, fmt=fmt) for a in addresses]
        if link is not None and tcp is not None:
            raise ConfigError("link: a symlink names a pty; it cannot be combined with tcp")
        if baudrate <= 0:
            raise ConfigError(f"baudrate: must be > 0, got {baudrate}")
        if max_pending < 1 or idle_gap <= 0:
            raise ConfigError("max_pending must be >= 1 and idle_gap > 0")
        self.name = name
        self.core = BusCore(devices, fmt=fmt, faults=faults, idle_gap=idle_gap)
        self.link = Path(link) if link is not None else None
        self.tcp = parse_tcp(tcp) if tcp is not None else None
        self.baudrate = baudrate
        self.pacing = pacing
        self.idle_gap = idle_gap
        self.max_pending = max_pending
        self._pty: _PtyPort | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._conns: set[_TcpConnection] = set()
        self._port = 0
        self._started = False
        self._plugged = False
        # Called with ("rx" | "tx", bytes) for every byte read from / written to a host, so a
        # tap (firmware_sim.tap) can mirror the line; a tap must not block or raise.
        self.wire_taps: list[Callable[[str, bytes], None]] = []

    def tap_wire(self, direction: str, data: bytes) -> None:
        for tap in self.wire_taps:
            tap(direction, data)

    def __repr__(self) -> str:
        return f"SimulatedBus({self.name!r}, {self.url if self._plugged else 'unplugged'})"

    # -- public state ---------------------------------------------------------------------

    @property
    def devices(self) -> dict[int, SimulatedDevice]:
        return self.core.devices

    @property
    def counters(self) -> BusCounters:
        return self.core.counters

    @property
    def faults(self) -> FaultConfig:
        return self.core.faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self.core.faults = config

    @property
    def path(self) -> str | None:
        """The pty's own path (``/dev/pts/N``); None in TCP mode or while unplugged."""
        return self._pty.path if self._pty is not None else None

    @property
    def url(self) -> str:
        """What to hand pyserial: the link, the pty path, or ``socket://host:port``."""
        if self.tcp is not None:
            return f"socket://{self.tcp[0]}:{self._port}"
        if self.link is not None:
            return str(self.link)
        if self._pty is None:
            raise BusError(f"{self.name}: not plugged in")
        return self._pty.path

    @property
    def plugged(self) -> bool:
        return self._plugged

    # -- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedBus:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._started:
            return
        loop = asyncio.get_running_loop()
        for dev in self.devices.values():
            if dev.clock is None:
                dev.clock = loop.time
        self.core.start(loop.time())
        self._started = True
        try:
            await self._plug()
        except BaseException:
            self._started = False
            raise
        log.info("%s: %d device(s) at %s", self.name, len(self.devices), self.url)

    async def close(self) -> None:
        """Stop accepting, close connections, wait for their tasks, remove the port. Idempotent."""
        if not self._started:
            return
        self._started = False
        await self._unplug()

    async def unplug(self) -> None:
        """The adapter is pulled: the pty closes (the host's I/O fails), the link goes away;
        in TCP mode the server stops and every client is disconnected."""
        self._require_started()
        await self._unplug()

    async def replug(self) -> None:
        """A new port appears; the link (and a TCP port number) stays the same."""
        self._require_started()
        if self._plugged:
            await self._unplug()
        await self._plug()

    def _require_started(self) -> None:
        if not self._started:
            raise BusError(f"{self.name}: not started")

    async def _plug(self) -> None:
        if self.tcp is not None:
            host, port = self.tcp
            try:
                self._server = await asyncio.start_server(
                    self._on_client, host, self._port or port, reuse_address=True
                )
            except OSError as exc:
                raise BusError(f"{self.name}: cannot listen on {host}:{port}: {exc}") from exc
            self._port = self._server.sockets[0].getsockname()[1]
        else:
            try:
                self._pty = _PtyPort(self)
            except OSError as exc:
                raise BusError(f"{self.name}: cannot open a pty: {exc}") from exc
            if self.link is not None:
                try:
                    _point_link(self.link, self._pty.path)
                except BusError:
                    await self._pty.close()
                    self._pty = None
                    raise
        self._plugged = True

    async def _unplug(self) -> None:
        self._plugged = False
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns):
                await conn.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        if self._pty is not None:
            pty_path = self._pty.path
            await self._pty.close()
            self._pty = None
            if self.link is not None:
                _remove_link(self.link, pty_path)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _TcpConnection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(conn)
        self._clients.add(task)
        try:
            await conn.serve()
        finally:
            self._conns.discard(conn)
            self._clients.discard(task)


def _point_link(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target``, atomically replacing an older symlink only."""
    if link.exists() and not link.is_symlink():
        raise BusError(f"link: {link} exists and is not a symlink; refusing to replace it")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        raise BusError(f"link: cannot create {link}: {exc}") from exc


def _remove_link(link: Path, target: str) -> None:
    """Remove ``link`` if it still points at ``target`` (someone else may own it by now)."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            link.unlink()
