"""Build a cluster node from the configuration (what :class:`bridge.app.Bridge` calls with
``[redis]`` set), and its metrics."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..config import BridgeConfig, BusConfig
from ..metrics import BridgeMetrics
from .broker import RedisBroker
from .link import RedisLink
from .node import ClusterHub, ClusterNode
from .owned import Owner
from .store import RedisStore

__all__ = ["build_cluster"]


class _Collector:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        n = self.node
        yield GaugeMetricFamily(
            "framebridge_cluster_degraded", "1 while Redis cannot be reached", int(n.degraded)
        )
        yield GaugeMetricFamily(
            "framebridge_cluster_backlog",
            "Messages published while Redis was away, not yet written",
            sum(n.store.backlog_of(b) for b in n.leases),
        )
        yield CounterMetricFamily(
            "framebridge_cluster_catch_ups",
            "Times the stream had what pub/sub had not",
            n.catch_ups,
        )
        yield CounterMetricFamily(
            "framebridge_cluster_late_replies", "Routed replies after their timeout (dropped)",
            n.router.late_replies,
        )  # fmt: skip
        yield CounterMetricFamily(
            "framebridge_cluster_redis_round_trips", "Commands and scripts sent to Redis",
            n.link.round_trips,
        )  # fmt: skip
        yield CounterMetricFamily(
            "framebridge_cluster_bus_resets", "bus_reset seen: a bus's history was lost",
            n.hub.stats.epoch_changes,
        )  # fmt: skip
        yield CounterMetricFamily(
            "framebridge_cluster_epoch_resets", "New epochs started by this node's buses",
            n.store.resets,
        )  # fmt: skip
        yield CounterMetricFamily(
            "framebridge_cluster_withdrawals",
            "Times this node withdrew seqs it had served that the stream does not have",
            n.hub.stats.withdrawals,
        )
        yield CounterMetricFamily(
            "framebridge_cluster_overdue_waits",
            "Sessions closed after waiting too long for this node to catch up",
            n.hub.stats.overdue,
        )


def build_cluster(
    config: BridgeConfig,
    metrics: BridgeMetrics,
    make_owner: Callable[[BusConfig], Owner],
    *,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> tuple[ClusterNode, ClusterHub, dict[str, Any]]:
    """(the node, its hub, the server's bus map, filled as leases and buses are found)."""
    assert config.redis is not None
    link = RedisLink(config.redis, config.server.node)
    store = RedisStore(
        link, size=config.history.size, ttl_s=config.history.ttl_s, rng=rng, clock=clock
    )
    broker = RedisBroker(link)
    hub = ClusterHub(store, broker)
    buses: dict[str, Any] = {}
    configured = {b.name: b for b in config.buses}
    node = ClusterNode(link, hub, broker, buses, configured, make_owner, clock=clock, rng=rng)
    metrics.registry.register(_Collector(node))
    return node, hub, buses
