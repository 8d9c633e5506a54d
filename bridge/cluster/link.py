"""The Redis connection a node shares between its parts, and whether Redis is reachable.

One command client (redis-py keeps a pool and reconnects per command) for the store, leases
and requests; the pub/sub connections belong to :mod:`bridge.cluster.broker`. ``degraded`` is
set by whichever part last failed to reach Redis and cleared by the next success, so
``/healthz`` and the metrics tell the truth within one command timeout.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from ..config import RedisConfig
from .keys import Keys

__all__ = ["REDIS_ERRORS", "RedisLink"]

log = logging.getLogger("bridge.cluster")

# what "Redis is unreachable or refused" looks like to a caller (timeouts included)
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,  # not a RedisError: slots not known yet, a cluster that is down
    OSError,
    TimeoutError,
)


class RedisLink:
    def __init__(self, config: RedisConfig, node: str) -> None:
        self.config = config
        self.node = node
        self.keys = Keys(config.prefix)
        self.cluster = config.cluster
        opts: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": config.connect_timeout_s,
            "socket_timeout": config.command_timeout_s,
        }
        self.client: Any
        if config.cluster:
            self.client = RedisCluster.from_url(config.url, **opts)
        else:
            self.client = aredis.Redis.from_url(config.url, **opts)
        self.publish_command = "spublish" if config.cluster else "publish"
        self._down: set[str] = set()  # parts that cannot reach Redis now
        self.failures = 0
        self.round_trips = 0  # commands and scripts sent (a benchmark's denominator)

    @property
    def degraded(self) -> bool:
        return bool(self._down)

    def failed(self, part: str, exc: BaseException) -> None:
        self.failures += 1
        if part not in self._down:
            log.warning("event=redis_down part=%s error=%r", part, exc)
        self._down.add(part)

    def ok(self, part: str) -> None:
        if part in self._down:
            self._down.discard(part)
            log.info("event=redis_up part=%s", part)

    async def publish(self, channel: str, text: str) -> int:
        """PUBLISH (SPUBLISH to the shard that holds ``channel``'s slot on a cluster); the
        number of subscribers that got it."""
        self.round_trips += 1
        if self.cluster:
            node = self.client.get_node_from_key(channel)
            return int(
                await self.client.execute_command("SPUBLISH", channel, text, target_nodes=node)
            )
        return int(await self.client.publish(channel, text))

    async def connect(self) -> None:
        """A cluster client must learn the slots before the first routed command."""
        if self.cluster:
            await self.client.initialize()

    def script(self, text: str) -> Any:
        return self.client.register_script(text)

    async def close(self) -> None:
        await self.client.aclose()
