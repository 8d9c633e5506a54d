"""Per-tenant quotas shared by every node of a cluster through Redis (redis-py asyncio).

The quota checks stay synchronous and in memory (:class:`bridge.quota.TenantPolicy`: a check
must cost microseconds, and a Redis round trip per request would cost a millisecond). What is
shared is each node's *use*: every ``interval_s`` a node writes, per tenant, its connection
count and its request rate into one Redis hash (``PREFIX:tenant:{NAME}:use``, a field per node,
``count rate timestamp``, the key expiring after ``ttl_s``), and reads the other nodes' fields
back into :attr:`TenantUsage.remote_connections` / ``remote_requests``. A node that dies stops
writing: its field is ignored once older than ``ttl_s`` and the key expires with the last node.

So a tenant's connections over all nodes are capped by its tier (a burst of simultaneous
connects may overshoot by what arrives within one interval), and its request bucket drains at
the cluster-wide rate. One pipelined round trip per interval per node, whatever the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from .quota import TenantPolicy

__all__ = ["SharedCounts"]

log = logging.getLogger("bridge.quota_redis")


class SharedCounts:
    def __init__(
        self,
        redis: Any,  # redis.asyncio.Redis (or RedisCluster: each key is one hash slot)
        policy: TenantPolicy,
        node: str,
        *,
        prefix: str = "framebridge",
        interval_s: float = 0.5,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.time,
        tenants: Iterable[str] = (),  # the configured ones: known before their first use here
    ) -> None:
        self.redis = redis
        for tenant in tenants:
            policy.usage_of(tenant)
        self.policy = policy
        self.node = node
        self.prefix = prefix
        self.interval_s = interval_s
        self.ttl_s = ttl_s if ttl_s is not None else 4 * interval_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._last = clock()

    def key(self, tenant: str) -> str:
        return f"{self.prefix}:tenant:{{{tenant}}}:use"

    async def share(self) -> None:
        """One exchange: write this node's use, read the others'."""
        now = self.clock()
        elapsed = max(now - self._last, 1e-3)
        self._last = now
        tenants = list(self.policy.usage.items())
        if not tenants:
            return
        ttl_ms = int(self.ttl_s * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for tenant, usage in tenants:
            rate = usage.requests / elapsed
            usage.requests = 0
            key = self.key(tenant)
            pipe.hset(key, self.node, f"{usage.connections} {rate:.3f} {now:.3f}")
            pipe.pexpire(key, ttl_ms)
            pipe.hgetall(key)
        replies = await pipe.execute()
        for (_tenant, usage), fields in zip(tenants, replies[2::3], strict=True):
            conns, rate_sum = 0, 0.0
            for node, value in fields.items():
                if _text(node) == self.node:
                    continue
                try:
                    count_text, rate_text, at_text = _text(value).split()
                    if now - float(at_text) > self.ttl_s:
                        continue  # a node that stopped writing (gone)
                    conns += int(count_text)
                    rate_sum += float(rate_text)
                except ValueError:
                    continue
            usage.remote_connections = conns
            usage.remote_requests = rate_sum

    async def run(self) -> None:
        while True:
            try:
                await self.share()
            except Exception as exc:  # Redis away: keep the last view, quotas stay local
                log.warning("event=quota_share_failed error=%s", type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
