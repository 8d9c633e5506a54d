"""A real bridge over the real simulator, run for synchronous tests.

:class:`LiveBridge` runs a :class:`bridge.app.Bridge` and the :class:`firmware_sim.bus.SimulatedBus`
it talks to (on a pty) on one event loop in a background thread, so a test can drive it from a
blocking ``websockets.sync`` client and hypothesis can run (and shrink) one example per call.
Every wait here is bounded: start, stop, connect, close and each receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from websockets.sync.client import ClientConnection, connect

from bridge.app import Bridge
from bridge.config import BridgeConfig, Limits
from firmware_sim.bus import SimulatedBus

from .conftest import sim_bridge_config

__all__ = ["STREAM_TYPES", "LiveBridge", "LiveClient"]

# Server messages that are not answers to a client message (they carry no ``id``).
STREAM_TYPES = frozenset({"frame", "event", "heartbeat"})


class LiveBridge:
    """Bridge + simulated bus (``devices`` thermostats at 1..devices) on a background loop."""

    def __init__(
        self,
        *,
        devices: int = 3,
        bus_timeout_s: float = 0.05,
        poll_interval_s: float = 0.1,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.devices = devices
        self.bus_timeout_s = bus_timeout_s
        self.poll_interval_s = poll_interval_s
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._bridge: Bridge | None = None

    def config(self, sim_url: str) -> BridgeConfig:
        return sim_bridge_config(
            sim_url,
            "fuzz",
            poll_s=self.poll_interval_s,
            history=64,
            devices=self.devices,
            limits=Limits(hello_timeout_s=5.0, close_timeout_s=0.5, shutdown_grace_s=1.0),
            timeout_s=self.bus_timeout_s,
            reconnect_min_s=0.02,
            reconnect_max_s=0.1,
        )

    def start(self) -> None:
        if self._thread is not None:
            return
        ready: Future[str] = Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="fuzz-bridge", daemon=True
        )
        self._thread.start()
        try:
            self.url = ready.result(self.start_timeout)
        except BaseException:
            self.stop()
            raise

    async def _serve(self, ready: Future[str]) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with (
                SimulatedBus(count=self.devices, profile="thermo") as sim,
                Bridge(self.config(sim.url)) as bridge,
            ):
                self._bridge = bridge
                ready.set_result(bridge.ws_url)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            self._bridge = None

    def stop(self) -> None:
        """Stop the bridge (graceful, bounded by its limits) and join the thread (bounded)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended (start failed)
                loop.call_soon_threadsafe(stop.set)
        thread.join(self.stop_timeout)
        self._loop = self._stop = None
        if thread.is_alive():  # a daemon thread: it cannot keep the test run from exiting
            raise RuntimeError(f"bridge thread did not stop within {self.stop_timeout} s")

    def restart(self) -> None:
        self.stop()
        self.start()

    def bus_state(self) -> dict[str, Any]:
        """``up`` and whether the bus worker task is still running, read on the bridge's loop."""
        loop, bridge = self._loop, self._bridge
        assert loop is not None and bridge is not None, "start() first"

        async def read() -> dict[str, Any]:
            owner = bridge.buses["bus0"]
            worker = owner._worker
            return {"up": owner.up, "worker_running": worker is not None and not worker.done()}

        return asyncio.run_coroutine_threadsafe(read(), loop).result(self.stop_timeout)


class LiveClient:
    """A synchronous client of a :class:`LiveBridge`, (re)connected on demand."""

    def __init__(self, live: LiveBridge, timeout: float = 5.0) -> None:
        self.live = live
        self.timeout = timeout
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self._pending: list[dict[str, Any]] = []

    @property
    def ws(self) -> ClientConnection:
        if self._ws is None:
            stack = contextlib.ExitStack()  # websockets >= 17 wants connect() as a context
            ws = stack.enter_context(
                connect(
                    self.live.url, compression=None, open_timeout=self.timeout, close_timeout=1.0
                )
            )
            try:
                ws.send(json.dumps({"type": "hello", "token": "t"}))
                welcome = self._recv_from(ws, self.timeout)
                assert welcome["type"] == "welcome", welcome
            except BaseException:
                stack.close()
                raise
            self._ws, self._stack = ws, stack
        return self._ws

    def _recv_from(self, ws: ClientConnection, timeout: float) -> dict[str, Any]:
        if not self._pending:
            data = json.loads(ws.recv(timeout=max(0.001, timeout)))
            self._pending = data if isinstance(data, list) else [data]
        return self._pending.pop(0)

    def send(self, text: str) -> None:
        self.ws.send(text)

    def recv(self, timeout: float) -> dict[str, Any]:
        """The next contract message (batches unpacked); TimeoutError after ``timeout`` s."""
        return self._recv_from(self.ws, timeout)

    def collect(
        self, keys: set[Any], one_of: set[Any], timeout: float
    ) -> tuple[dict[Any, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Answers by ``id`` (``None``: an error without id) until every key in ``keys`` and one
        in ``one_of`` has one, skipping stream messages; returns them and every answer in
        arrival order. AssertionError (saying what did arrive) when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        by_key: dict[Any, list[dict[str, Any]]] = {}
        order: list[dict[str, Any]] = []
        while not (keys <= by_key.keys() and (not one_of or one_of & by_key.keys())):
            try:
                msg = self.recv(deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(
                    f"not all of {keys} and one of {one_of} answered within {timeout} s: {order}"
                ) from None
            if msg.get("type") in STREAM_TYPES and "id" not in msg:
                continue
            order.append(msg)
            by_key.setdefault(msg.get("id"), []).append(msg)
        return by_key, order

    def next_stream(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """The next stream message (frame, event, heartbeat) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.recv(deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(f"no such stream message within {timeout} s") from None
            if msg.get("type") in STREAM_TYPES and predicate(msg):
                return msg

    def close(self) -> None:
        stack, self._stack, self._ws = self._stack, contextlib.ExitStack(), None
        self._pending = []
        stack.close()  # the close handshake is bounded by close_timeout
