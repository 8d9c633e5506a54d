"""SimulatedBus: simulated devices on a real pseudo-terminal or a TCP port (the I/O layer).

Everything protocol-related happens in the pure :class:`~firmware_sim.core.BusCore`; the bus
owns the devices and the port's lifetime (plug, unplug, replug, the pty symlink), and
:mod:`firmware_sim.bus_ports` moves the bytes:

* **pty**: one :class:`~firmware_sim.bus_ports.PtyPort`, raw both ends; the simulator keeps the
  slave end open, so a host closing and reopening the port never hangs the pty up.
* **time**: the inter-frame gap (a partial frame given up after ``idle_gap`` of silence) is the
  pure view's rule (``next_deadline()``/``tick(now)``); each port keeps one timer at it.
* **tcp**: one server; each client connection is its own view of the bus (its own decoder and
  write queue) over the same devices, for pyserial's ``socket://`` URLs.
* **replies** go through one bounded queue and writer task per port, which carries out the
  fault plan's delays and split pieces and, with ``pacing``, a UART's wire time.

:class:`ThreadedSimulatedBus` runs the same bus on a loop in a background thread for blocking
code (pyserial's sync API); it shares every line of logic with the async one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from frames.format import DEFAULT_FORMAT, FrameFormat

from .bus_ports import PtyPort, TcpConnection, point_link, remove_link
from .config import device_addresses
from .core import BusCore, BusCounters
from .device import SimulatedDevice
from .errors import BusError, ConfigError
from .faults import FaultConfig
from .profile import Profile, load_profile

__all__ = ["SimulatedBus", "parse_tcp"]

log = logging.getLogger(__name__)


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
        self._pty: PtyPort | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._conns: set[TcpConnection] = set()
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
                self._pty = PtyPort(self)
            except OSError as exc:
                raise BusError(f"{self.name}: cannot open a pty: {exc}") from exc
            if self.link is not None:
                try:
                    point_link(self.link, self._pty.path)
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
                remove_link(self.link, pty_path)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = TcpConnection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(conn)
        self._clients.add(task)
        try:
            await conn.serve()
        finally:
            self._conns.discard(conn)
            self._clients.discard(task)
