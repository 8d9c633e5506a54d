"""Run simulated buses until SIGINT or SIGTERM (what ``framebridge sim`` does)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence

from .bus import SimulatedBus
from .config import BusSpec

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(
    specs: Sequence[BusSpec],
    *,
    on_ready: Callable[[list[SimulatedBus]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[SimulatedBus]:
    """Open every bus, call ``on_ready``, wait for a signal (or ``stop``), close them all.

    Returns the (closed) buses so a caller can report their counters. If one bus fails to
    open, the ones already open are closed before the error propagates.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    buses = [SimulatedBus(**spec.bus_kwargs()) for spec in specs]
    try:
        async with contextlib.AsyncExitStack() as stack:
            for bus in buses:
                await stack.enter_async_context(bus)
            if on_ready is not None:
                on_ready(buses)
            await stop.wait()
            log.info("stopping %d bus(es)", len(buses))
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return buses
