"""Per-tenant quotas: connections, requests in flight, request rate, timeouts, topics. Pure.

:class:`TenantPolicy` is a :class:`~bridge.policy.Policy`: the connection core asks it after
hello and before each subscribe and request, and tells it when a request has its answer. Every
answer is decided at once from counters in memory, so a request over a quota is refused
(``quota``) without ever being queued, and a check costs about a microsecond
(``benchmarks/quota.py``).

With Redis (``[redis]``), :class:`bridge.quota_redis.SharedCounts` adds what the tenant uses on
the other nodes (``remote``), so a tenant cannot multiply its quota by connecting to several.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .acl import Principal
from .contract import CLOSE_NODE_FULL, Request, Topic
from .policy import Refusal

__all__ = ["Bucket", "TenantPolicy", "TenantUsage"]


class Bucket:
    """A token bucket: ``rate`` per second, ``burst`` deep."""

    __slots__ = ("at", "burst", "level", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.at = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        if now > self.at:
            self.level = min(self.burst, self.level + (now - self.at) * self.rate)
            self.at = now
        if self.level < cost:
            return False
        self.level -= cost
        return True


@dataclass(slots=True)
class TenantUsage:
    connections: int = 0
    inflight: int = 0
    bucket: Bucket | None = None
    remote_connections: int = 0  # on other nodes (shared counts)
    remote_requests: float = 0.0  # requests/s the other nodes saw lately
    requests: int = 0  # admitted here since the last share (shared counts read and reset it)
    rejections: dict[str, int] = field(default_factory=dict)  # kind → count


class TenantPolicy:
    """Node-wide ``max_clients`` plus each principal's :class:`~bridge.acl.Tier`.

    ``on_reject(tenant, kind)`` is called for every quota refusal (metrics).
    """

    def __init__(
        self,
        max_clients: int,
        clock: Callable[[], float],
        on_reject: Callable[[str, str], None] | None = None,
    ) -> None:
        self.max_clients = max_clients
        self.clock = clock
        self.on_reject = on_reject or (lambda _tenant, _kind: None)
        self.usage: dict[str, TenantUsage] = {}

    def usage_of(self, tenant: str) -> TenantUsage:
        usage = self.usage.get(tenant)
        if usage is None:
            usage = self.usage[tenant] = TenantUsage()
        return usage

    def _reject(self, principal: Principal, kind: str, refusal: Refusal) -> Refusal:
        usage = self.usage_of(principal.tenant)
        usage.rejections[kind] = usage.rejections.get(kind, 0) + 1
        self.on_reject(principal.tenant, kind)
        return refusal

    # -- the Policy protocol -----------------------------------------------------------------

    def admit_connection(self, principal: Principal, clients: int) -> Refusal | None:
        if clients >= self.max_clients:
            return Refusal("full", "node full", CLOSE_NODE_FULL)
        limit = principal.tier.connections
        if principal.tenant:
            usage = self.usage_of(principal.tenant)
            if limit is not None and usage.connections + usage.remote_connections >= limit:
                tier = principal.tier.name
                text = f"tenant {principal.tenant} has {limit} connections (tier {tier})"
                return self._reject(
                    principal, "connections", Refusal("quota", text, CLOSE_NODE_FULL)
                )
            usage.connections += 1
        return None

    def release(self, principal: Principal) -> None:
        usage = self.usage.get(principal.tenant)
        if usage is not None and usage.connections > 0:
            usage.connections -= 1

    def admit_subscription(
        self, principal: Principal, topics: Sequence[Topic], held: int
    ) -> Refusal | None:
        limit = principal.tier.subscriptions
        if limit is not None and held + len(topics) > limit:
            text = f"at most {limit} topics per connection (tier {principal.tier.name})"
            return self._reject(principal, "subscriptions", Refusal("quota", text))
        return None

    def admit_request(self, principal: Principal, request: Request) -> Refusal | None:
        if not principal.may_request(request.bus, request.addr, request.cmd):
            return Refusal("forbidden", "this token may not send this request here")
        tier = principal.tier
        cap = tier.max_timeout_s
        if cap is not None and request.timeout_s is not None and request.timeout_s > cap:
            return Refusal("bad_request", f"timeout_s must be <= {cap:g} (tier {tier.name})")
        if not principal.tenant:
            return None
        usage = self.usage_of(principal.tenant)
        if tier.inflight is not None and usage.inflight >= tier.inflight:
            text = f"{tier.inflight} requests of tenant {principal.tenant} are in progress"
            return self._reject(principal, "inflight", Refusal("quota", text))
        rate = tier.requests_per_s
        if rate is not None:
            bucket = usage.bucket
            now = self.clock()
            if bucket is None:
                burst = tier.requests_burst or max(1.0, rate)
                bucket = usage.bucket = Bucket(rate, burst, now)
            # the other nodes' recent rate drains this node's bucket too (shared counts)
            cost = 1.0 + usage.remote_requests / rate if usage.remote_requests else 1.0
            if not bucket.take(now, min(cost, bucket.burst)):
                text = f"over {rate:g} requests/s (tier {tier.name})"
                return self._reject(principal, "rate", Refusal("quota", text))
        usage.inflight += 1
        usage.requests += 1
        return None

    def request_done(self, principal: Principal, request: Request) -> None:
        if not principal.tenant:
            return
        usage = self.usage.get(principal.tenant)
        if usage is not None and usage.inflight > 0:
            usage.inflight -= 1
