"""The only part of ``frames`` that touches ports: thin adapters over the pure protocol core.

* :class:`Master` (blocking, pyserial) and :class:`AsyncMaster` (asyncio, pyserial-asyncio) both
  drive one :class:`~frames.master.MasterCore`; neither has protocol logic of its own.
* :class:`SlavePort` / :class:`AsyncSlavePort` serve a :class:`~frames.slave.Slave` (or a
  :class:`~frames.slave.SlaveGroup`) on a port, so a Python program can *be* a device.
* :class:`~frames.io.fd_link.FdLink` is the one non-blocking fd link under all of them (and the
  simulator's pty); :class:`~frames.io.fd_link.DeadlineTimer` the one timer at a core's deadline.

Any pyserial URL works where a port goes: ``/dev/ttyUSB0``, ``COM3``, ``socket://host:port``,
``rfc2217://host:port``, ``spy://PORT?file=...``.
"""

from .serial_async import AsyncMaster
from .serial_sync import Master
from .slave_io import AsyncSlavePort, Responder, SlavePort

__all__ = ["AsyncMaster", "AsyncSlavePort", "Master", "Responder", "SlavePort"]
