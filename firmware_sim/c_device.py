"""Put the C firmware (firmware/build/fb-device) on a simulated bus, beside the Python devices.

``framebridge sim --c-device ADDR`` uses this. A :class:`CDeviceRelay` is a two-drop wire in
front of a :class:`~firmware_sim.bus.SimulatedBus`'s pty: it makes a new pty (the one a master
opens), runs ``fb-device --pty ADDR...`` (the firmware library's own receive path, compiled for
the host), and copies every byte the master sends to both the simulated bus and the C device,
and every byte either of them sends back to the master — what an RS-485 line does. Requests go
to all devices and only the addressed one answers, so the copies never interleave within a
reply. The relay adds one hop (a few microseconds) on each side; the devices' own timing is
unchanged.

This is an adapter (I/O): the device logic on both sides stays pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from collections.abc import Callable, Sequence
from pathlib import Path

from .bus import SimulatedBus
from .config import BusSpec
from .errors import SimError
from .run import serve

__all__ = ["DEFAULT_PROGRAM", "CDeviceRelay", "serve_with_c_device"]

log = logging.getLogger(__name__)

DEFAULT_PROGRAM = Path(__file__).resolve().parents[1] / "firmware" / "build" / "fb-device"
READ_SIZE = 4096
START_TIMEOUT = 5.0


def _open_raw(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


class CDeviceRelay:
    """Relay between a new pty (for the master), a bus's pty and a C device's pty."""

    def __init__(
        self,
        bus_path: str,
        addresses: Sequence[int],
        *,
        program: str | Path = DEFAULT_PROGRAM,
        gap_ms: int = 5,
    ) -> None:
        if not addresses:
            raise SimError("--c-device: give at least one address")
        self.bus_path = bus_path
        self.addresses = list(addresses)
        self.program = Path(program)
        self.gap_ms = gap_ms
        self.path = ""  # what a master opens, once started
        self._proc: asyncio.subprocess.Process | None = None
        self._fds: dict[str, int] = {}
        self._hold = -1
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> str:
        if not os.access(self.program, os.X_OK):
            raise SimError(f"{self.program} is missing: build it with `make -C firmware`")
        self._loop = loop = asyncio.get_running_loop()
        self._proc = await asyncio.create_subprocess_exec(
            str(self.program),
            "--gap-ms",
            str(self.gap_ms),
            "--pty",
            *(str(a) for a in self.addresses),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise SimError(f"{self.program} did not start within {START_TIMEOUT}s") from None
        if not line:
            await self.close()
            raise SimError(f"{self.program} exited: check the addresses {self.addresses}")
        c_path = line.decode().split("\t")[0]
        master_fd, slave_fd = os.openpty()
        tty.setraw(master_fd)
        tty.setraw(slave_fd)
        os.set_blocking(master_fd, False)
        self._hold = slave_fd  # keeps the pty up while no master has it open
        self.path = os.ttyname(slave_fd)
        self._fds = {"host": master_fd, "bus": _open_raw(self.bus_path), "c": _open_raw(c_path)}
        for name in self._fds:
            loop.add_reader(self._fds[name], self._on_readable, name)
        log.info("C device %s on %s (relay %s)", self.addresses, c_path, self.path)
        return self.path

    def _on_readable(self, name: str) -> None:
        fd = self._fds[name]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the master closed its end; it may reopen
                log.warning("relay: read from %s failed: %s", name, exc)
            data = b""
        if not data:
            return
        targets = ["bus", "c"] if name == "host" else ["host"]
        for target in targets:
            self._write(self._fds[target], data)

    def _write(self, fd: int, data: bytes) -> None:
        """Write what the pty takes; a reader that does not read loses bytes, as on a wire."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(fd, data)

    async def close(self) -> None:
        if self._loop is not None:
            for fd in self._fds.values():
                self._loop.remove_reader(fd)
        for fd in [*self._fds.values(), self._hold]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = {}
        self._hold = -1
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), START_TIMEOUT)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def __aenter__(self) -> CDeviceRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve_with_c_device(
    specs: Sequence[BusSpec],
    addresses: Sequence[int],
    *,
    on_ready: Callable[[list[SimulatedBus], CDeviceRelay], None],
    program: str | Path = DEFAULT_PROGRAM,
    stop: asyncio.Event | None = None,
) -> list[SimulatedBus]:
    """:func:`firmware_sim.run.serve` with a C device relayed onto the first bus (a pty)."""
    stop = stop or asyncio.Event()
    ready: asyncio.Future[list[SimulatedBus]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(specs, on_ready=ready.set_result, stop=stop))
    await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        return await task  # the buses did not open: serve() raises why
    buses = ready.result()
    try:
        if buses[0].path is None:
            raise SimError("--c-device needs a pty bus (not --tcp)")
        taken = set(buses[0].devices) & set(addresses)
        if taken:
            raise SimError(f"--c-device: address {sorted(taken)} is taken by a simulated device")
        async with CDeviceRelay(buses[0].path, addresses, program=program) as relay:
            on_ready(buses, relay)
            return await task
    finally:
        stop.set()
        if not task.done():
            await task
