"""Prometheus metrics of one bridge, on a registry of its own.

A per-bridge :class:`CollectorRegistry` (not the global default) lets tests and embedders run
several bridges in one process without "duplicated timeseries" errors. Hot counters that change
per message (deliveries, drops, messages/frames/bytes out) are read from plain integers at scrape
time instead of incrementing a locked Prometheus counter 400k times a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .fanout import FanoutStats

__all__ = ["CONTENT_TYPE", "BridgeMetrics", "OutStats"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class OutStats:
    """What the writers sent, as plain integers (read at scrape time)."""

    messages: int = 0
    frames: int = 0
    bytes: int = 0


class _StatsCollector(Collector):
    def __init__(
        self, stats: Callable[[], FanoutStats], clients: Callable[[], int], out: OutStats
    ) -> None:
        self._stats = stats
        self._clients = clients
        self._out = out

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        out = self._out
        yield CounterMetricFamily(
            "framebridge_messages_out", "Messages written to clients", out.messages
        )
        yield CounterMetricFamily(
            "framebridge_ws_frames_out", "WebSocket frames written (a batch is one)", out.frames
        )
        yield CounterMetricFamily("framebridge_bytes_out", "Bytes of message text out", out.bytes)
        yield GaugeMetricFamily(
            "framebridge_clients", "Connected WebSocket clients", self._clients()
        )
        yield CounterMetricFamily(
            "framebridge_published_messages", "Messages published on buses", s.published
        )
        yield CounterMetricFamily(
            "framebridge_deliveries", "Messages queued to clients by fan-out", s.deliveries
        )
        yield CounterMetricFamily(
            "framebridge_queue_drops",
            "Messages not queued because a client was over its bound (it is then closed 4000)",
            s.drops,
        )
        resumes = CounterMetricFamily(
            "framebridge_resumes", "Subscribe with since, by outcome", labels=["result"]
        )
        resumes.add_metric(["recovered"], s.resumes_recovered)
        resumes.add_metric(["not_recovered"], s.resumes_lost)
        yield resumes


class BridgeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.out = OutStats()  # incremented by the writers per frame, not per message
        self.slow_closes = Counter(
            "framebridge_slow_consumer_closes", "Clients closed 4000 (over queue bound)", registry=r
        )
        self.rejected = Counter(
            "framebridge_rejected_connections", "Refused clients", ["reason"], registry=r
        )
        self.bad_messages = Counter(
            "framebridge_bad_messages", "Client messages answered with error", ["code"], registry=r
        )
        self.requests = Counter(
            "framebridge_requests", "Client requests by outcome", ["bus", "outcome"], registry=r
        )
        self.crc_errors = Counter(
            "framebridge_crc_errors", "CRC errors seen on a bus", ["bus"], registry=r
        )
        self.poll_latency = Histogram(
            "framebridge_poll_latency_seconds",
            "Poll request to reply time",
            ["bus"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            "framebridge_polls", "Polls by outcome", ["bus", "outcome"], registry=r
        )
        self.bus_up = Gauge(
            "framebridge_bus_up", "1 when the bus port is open", ["bus"], registry=r
        )

    def attach(self, stats: Callable[[], FanoutStats], clients: Callable[[], int]) -> None:
        self.registry.register(_StatsCollector(stats, clients, self.out))

    def render(self) -> bytes:
        return generate_latest(self.registry)
