"""Prometheus metrics per tenant: connections, messages out, requests, quota rejections.

The ``tenant`` label takes only configured names (tenants, and ``server.tokens`` names), so the
number of series is bounded by the config, never by clients. Messages out are read at scrape
time from the sessions' own counters (plus what closed sessions had sent), so the writers' hot
path gains nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .session import Session

__all__ = ["TenantMetrics"]


class _Out(Collector):
    def __init__(self, owner: TenantMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "framebridge_tenant_messages_out",
            "Messages written to a tenant's clients",
            labels=["tenant"],
        )
        totals = dict(self.owner.closed_out)
        for session in self.owner.sessions():
            tenant = getattr(session.principal, "tenant", "")
            if tenant:
                totals[tenant] = totals.get(tenant, 0) + session.sent_messages
        for tenant, count in sorted(totals.items()):
            family.add_metric([tenant], count)
        yield family


class TenantMetrics:
    def __init__(
        self, registry: CollectorRegistry, sessions: Callable[[], Iterable[Session]]
    ) -> None:
        self.sessions = sessions
        self.closed_out: dict[str, int] = {}
        self.connections = Gauge(
            "framebridge_tenant_connections",
            "Authenticated connections per tenant",
            ["tenant"],
            registry=registry,
        )
        self.requests = Counter(
            "framebridge_tenant_requests",
            "Requests per tenant by outcome",
            ["tenant", "outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "framebridge_tenant_quota_rejections",
            "Quota refusals per tenant (connections, inflight, rate, subscriptions)",
            ["tenant", "kind"],
            registry=registry,
        )
        registry.register(_Out(self))

    def joined(self, tenant: str) -> None:
        if tenant:
            self.connections.labels(tenant).inc()

    def left(self, session: Session) -> None:
        tenant = getattr(session.principal, "tenant", "")
        if tenant:
            self.connections.labels(tenant).dec()
            self.closed_out[tenant] = self.closed_out.get(tenant, 0) + session.sent_messages

    def request(self, tenant: str, outcome: str) -> None:
        if tenant:
            self.requests.labels(tenant, outcome).inc()

    def rejected(self, tenant: str, kind: str) -> None:
        if tenant:
            self.rejections.labels(tenant, kind).inc()
