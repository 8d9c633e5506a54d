"""The simulator's ports: one pty, or one TCP connection, each a view of a bus's devices.

:class:`~firmware_sim.bus.SimulatedBus` owns the devices and the lifetime (plug, unplug,
replug); a port here only moves bytes between a host and its :class:`~firmware_sim.core.BusView`
and keeps that view's one timer (``next_deadline()``/``tick(now)``):

* :class:`PtyPort`: both ends raw (``tty.setraw``) so no byte is translated; the master end is
  served by the same non-blocking :class:`~frames.io.fd_link.FdLink` the masters and slave ports
  use. The simulator keeps its own handle on the slave end open, so a host closing and
  reopening the port never hangs the pty up; if an EIO does arrive, reading pauses briefly and
  resumes (the link's ``eof_pause``).
* :class:`TcpConnection`: one client of the bus's TCP server, for pyserial's ``socket://``.
* :class:`ReplyWriter`: one bounded queue and writer task per port, which carries out the
  :class:`~firmware_sim.faults.Delivery` (delay, split pieces) and, with ``pacing``, the wire
  time a UART needs (baud/10 bytes per second), so latencies look like real hardware.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from frames.io.fd_link import READ_SIZE, DeadlineTimer, FdLink

from .core import BusView, Outgoing
from .errors import BusError
from .faults import wire_time

if TYPE_CHECKING:
    from .bus import SimulatedBus

__all__ = ["PtyPort", "ReplyWriter", "TcpConnection", "point_link", "remove_link"]

log = logging.getLogger("firmware_sim.bus")  # one logger for the bus and its ports

WriteFn = Callable[[bytes], Awaitable[bool]]

EIO_RETRY = 0.05  # seconds to wait before reading a pty again after EIO
PACE_SLICE = 0.002  # with pacing, bytes go out in slices of about this many seconds


class ReplyWriter:
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
            await sleep_until(loop, due)
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
            await sleep_until(loop, t)  # the piece's last bit has left the UART by now
            bus.counters.bytes_out += len(piece)
            if not await self.write(piece):
                return False
        return True


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class PtyPort:
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
        self.writer = ReplyWriter(bus, self._write, f"sim-pty-writer {self.path}")
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


class TcpConnection:
    def __init__(
        self, bus: SimulatedBus, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.bus = bus
        self.reader = reader
        self.stream = writer
        self.view = bus.core.open_view()
        self.peer = writer.get_extra_info("peername")
        self.writer = ReplyWriter(bus, self._write, f"sim-tcp-writer {self.peer}")

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


def point_link(link: Path, target: str) -> None:
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


def remove_link(link: Path, target: str) -> None:
    """Remove ``link`` if it still points at ``target`` (someone else may own it by now)."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            link.unlink()
