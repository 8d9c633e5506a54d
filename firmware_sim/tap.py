"""A read-only mirror of a simulated bus on a second pty (``framebridge sim --tap PATH``).

Why a second pty: a pty is a pipe with two ends, not a bus. Every byte the simulator writes is
read by exactly one reader, so a ``monitor`` opened on the same pty as the master *takes* the
replies the master is waiting for. On real RS-485 every transceiver hears the pair; the tap gives
the simulator the same property: each byte read from or written to a host is also written to the
tap's pty, which nobody writes back through (bytes written into the tap are read and dropped).

The tap never blocks or slows the bus: its pty master is non-blocking, and when the tap's reader
falls behind (or nobody has the tap open), the oldest unread bytes are discarded (``dropped``
counts them) rather than the new ones being held. A monitor attaching late may therefore first
see some older traffic, cut anywhere: the decoder treats that as garbage and resynchronises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from pathlib import Path

from .bus import SimulatedBus
from .errors import BusError

__all__ = ["PtyTap"]


class PtyTap:
    """Attach with :meth:`open` (inside the bus's running loop); detach with :meth:`close`."""

    def __init__(self, bus: SimulatedBus, link: str | os.PathLike[str]) -> None:
        self.bus = bus
        self.link = Path(link)
        self.bytes = 0
        self.dropped = 0
        self._master = self._slave = -1
        self.path = ""

    def open(self) -> PtyTap:
        if self.link.exists() and not self.link.is_symlink():
            raise BusError(f"tap: {self.link} exists and is not a symlink; refusing to replace it")
        try:
            self._master, self._slave = os.openpty()
            for fd in (self._master, self._slave):
                tty.setraw(fd)
            os.set_blocking(self._master, False)
            self.path = os.ttyname(self._slave)
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            os.symlink(self.path, self.link)
        except OSError as exc:
            self.close()
            raise BusError(f"tap: cannot create {self.link}: {exc}") from exc
        # Read and drop whatever a sniffer writes into the tap: it must not reach the bus.
        asyncio.get_running_loop().add_reader(self._master, self._drain)
        self.bus.wire_taps.append(self._mirror)
        return self

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._master, 4096)

    def _mirror(self, direction: str, data: bytes) -> None:
        if self._master < 0:
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            return
        if n < len(data):  # nobody is reading: drop what waits unread, keep the newest bytes
            with contextlib.suppress(OSError, termios.error):
                termios.tcflush(self._slave, termios.TCIFLUSH)
            with contextlib.suppress(OSError):
                n += os.write(self._master, data[n:])
            self.dropped += len(data) - n
        self.bytes += n

    def close(self) -> None:
        if self._mirror in self.bus.wire_taps:
            self.bus.wire_taps.remove(self._mirror)
        if self._master >= 0:
            with contextlib.suppress(RuntimeError):  # loop already closed
                asyncio.get_running_loop().remove_reader(self._master)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        with contextlib.suppress(OSError):
            if self.path and os.readlink(self.link) == self.path:
                self.link.unlink()
