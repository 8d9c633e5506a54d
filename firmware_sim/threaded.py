"""ThreadedSimulatedBus: a :class:`~firmware_sim.bus.SimulatedBus` for blocking code.

pyserial's blocking API (and the sync :class:`frames.io.Master`) cannot share a thread with an
asyncio simulator, so this runs the bus on its own event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from .bus import SimulatedBus
from .core import BusCounters
from .device import SimulatedDevice
from .errors import BusError

__all__ = ["ThreadedSimulatedBus"]

T = TypeVar("T")


class ThreadedSimulatedBus:
    """A :class:`SimulatedBus` on an event loop in a background thread, for blocking code.

    Takes the same arguments. Use :meth:`call` to touch devices from the calling thread
    safely (it runs the function on the bus's loop).
    """

    def __init__(self, *args: Any, start_timeout: float = 10.0, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        self._timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bus: SimulatedBus | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready: Future[None] = Future()

    def __enter__(self) -> ThreadedSimulatedBus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def bus(self) -> SimulatedBus:
        if self._bus is None:
            raise BusError("threaded bus not started")
        return self._bus

    @property
    def url(self) -> str:
        return self.bus.url

    @property
    def devices(self) -> dict[int, SimulatedDevice]:
        return self.bus.devices

    @property
    def counters(self) -> BusCounters:
        return self.bus.counters

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="ThreadedSimulatedBus", daemon=True)
        self._thread.start()
        self._ready.result(self._timeout)

    def close(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._timeout)
        self._thread = None

    def call(self, func: Callable[[], T]) -> T:
        """Run ``func`` on the bus's loop thread and return its result."""

        async def run() -> T:
            return func()

        return self._run(run())

    def unplug(self) -> None:
        self._run(self.bus.unplug())

    def replug(self) -> None:
        self._run(self.bus.replug())

    def _run(self, coro: Awaitable[T]) -> T:
        if self._loop is None:
            raise BusError("threaded bus not started")

        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result(self._timeout)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            bus = SimulatedBus(*self._args, **self._kwargs)
            await bus.start()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._bus = bus
        self._ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await bus.close()
