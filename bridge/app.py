"""A whole bridge in one object: hub, bus owners, server; ordered start and graceful stop.

Shutdown order matters (it mirrors websockets' own server close): stop accepting connections
and requests, let in-flight and queued requests finish so their replies reach the clients, flush
the writers, close every client with 1001 (reconnect elsewhere) in batches spread over
``limits.drain_window_s`` (no reconnect storm on the other nodes), and only then stop polling,
release the ports and, in cluster mode, give the bus leases up so a standby takes over at once.
From the first step on, ``/readyz`` and ``/healthz`` answer 503 and WebSocket upgrades get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from .buses import BusOwner
from .config import BridgeConfig, BusConfig
from .errors import ConfigError
from .fanout import Hub, InMemoryHub
from .history import make_epoch
from .metrics import BridgeMetrics
from .mqtt import MqttBridge
from .series import SeriesStore
from .server import BridgeServer

if TYPE_CHECKING:
    from .cluster.node import ClusterNode

__all__ = ["Bridge"]

log = logging.getLogger("bridge.app")


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.config = config
        self.metrics = BridgeMetrics()
        self.series = SeriesStore()  # recent values per register, for /api/series
        self.cluster: ClusterNode | None = None

        def make_owner(bus: BusConfig) -> BusOwner:
            return BusOwner(
                bus,
                self.hub,
                self.metrics,
                request_queue=config.limits.request_queue,
                offline_after=config.limits.offline_after,
                clock=clock,
                series=self.series,
            )

        self.hub: Hub
        if config.redis is not None:  # a cluster node: buses are polled where leases are held
            from .cluster.setup import build_cluster

            self.cluster, self.hub, served = build_cluster(
                config, self.metrics, make_owner, clock=clock, rng=rng
            )
            self.buses: dict[str, BusOwner] = self.cluster.owned  # type: ignore[assignment]
        else:
            self.hub = InMemoryHub(
                history_size=config.history.size, history_ttl_s=config.history.ttl_s
            )
            self.buses = {}
            for bus in config.buses:
                self.hub.add_bus(bus.name, make_epoch(clock(), rng.randrange(1000)))
                self.buses[bus.name] = make_owner(bus)
            served = self.buses
        self.server = BridgeServer(
            config, self.hub, served, self.metrics, clock=clock, series=self.series
        )
        self.server.cluster = self.cluster
        self.mqtt: MqttBridge | None = None  # [mqtt]: values, discovery and /set (bridge/mqtt.py)
        if config.mqtt is not None and self.cluster is not None:  # its device list is built
            # once from the buses polled here, which a cluster node only knows later
            raise ConfigError("mqtt", "not available together with [redis] in this version")
        if config.mqtt is not None:
            self.mqtt = MqttBridge(config, self.hub, self.buses, self.metrics, clock=clock, rng=rng)
        self.address: tuple[str, int] | None = None
        self._stopped = False

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Listen first (``/healthz`` answers 503 "starting"), then open the buses; ready when
        each has had its first try (a bus that cannot open yet keeps retrying: ``bus_down``)."""
        self.address = await self.server.start(host, port)
        if self.cluster is not None:  # takes the leases it can and starts those owners
            await self.cluster.start()
        for owner in self.buses.values() if self.cluster is None else ():
            await owner.start()
        if self.mqtt is not None:
            await self.mqtt.start()  # connects in the background: a broker down delays nothing
        self.server.set_ready()
        return self.address

    @property
    def ws_url(self) -> str:
        assert self.address is not None, "start() first"
        host, port = self.address
        scheme = "wss" if self.config.server.tls is not None else "ws"
        return f"{scheme}://{host}:{port}/ws"

    @property
    def http_url(self) -> str:
        assert self.address is not None, "start() first"
        host, port = self.address
        scheme = "https" if self.config.server.tls is not None else "http"
        return f"{scheme}://{host}:{port}"

    async def stop(self) -> None:
        """Idempotent graceful stop (see the module docstring for the order)."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.limits.shutdown_grace_s
        log.info("event=stopping clients=%d", len(self.server.conns))
        self.server.stop_accepting()
        if self.mqtt is not None:  # no new /set commands either; the broker hears "offline"
            await self.mqtt.stop()
        deadline = time.monotonic() + grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(b.wait_idle() for b in self.buses.values())), grace
            )
        await self.server.flush(min(1.0, max(0.0, deadline - time.monotonic())) or 0.1)
        await self.server.close(self.config.limits.drain_window_s)
        if self.cluster is not None:  # stops its owners, writes what waits, gives leases up
            await self.cluster.stop()
        for owner in self.buses.values() if self.cluster is None else ():
            await owner.stop(grace=0)
        log.info("event=stopped")

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
