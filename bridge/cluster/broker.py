"""The Redis broker: this node's side of every bus's pub/sub channel.

:meth:`RedisBroker.publish` delivers to this node's receivers at once; the owner calls it
once the store's append script has written the message (XADD and PUBLISH in one atomic step:
:mod:`.store` says why its own clients wait for that). The reader task receives the other
nodes' messages (a node's own come back too and are skipped by origin) and hands them to the
receivers, whose fan-out orders by seq and drops duplicates.

A pub/sub connection can die without an error (a failover, a half-open TCP link: centrifugo
#1189, python-socketio #1411). The reader therefore PINGs on the pub/sub connection every
``ping_s`` and re-makes it when no answer came within ``ping_timeout_s``; each time it is
(re)made, ``on_resubscribed`` runs so the node catches up from the streams. The position check
in :mod:`bridge.cluster.node` is the second net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisClusterException, RedisError

from frames.backoff import Backoff

from ..broker import MemoryBroker
from .keys import PayloadError, decode_payload
from .link import RedisLink

__all__ = ["RedisBroker"]

log = logging.getLogger("bridge.cluster")

REDIS_ERRORS_T = (RedisError, RedisClusterException, OSError, TimeoutError)


class RedisBroker(MemoryBroker):
    """attach/detach/publish are the in-memory broker's: this node's receivers, at once."""

    def __init__(
        self, link: RedisLink, *, ping_s: float = 1.0, ping_timeout_s: float = 3.0
    ) -> None:
        self.link = link
        self.keys = link.keys
        self.ping_s = ping_s
        self.ping_timeout_s = ping_timeout_s
        super().__init__()
        self._channels: dict[str, str] = {}  # channel → bus
        self._extra: dict[str, Any] = {}  # other channels (requests, replies) → handler
        self._task: asyncio.Task[None] | None = None
        self._pubsubs: list[Any] = []
        self._shard_clients: dict[str, Any] = {}
        self._changed = asyncio.Event()
        self.on_resubscribed: Any = lambda: None
        self.backoff = Backoff(0.05, 2.0)
        self.received = 0
        self.reconnects = 0
        self.connected = False
        self._closing = False

    # -- channels ----------------------------------------------------------------------------

    def watch(self, bus: str) -> None:
        """Receive ``bus``'s messages from now on (the reader subscribes on its next turn)."""
        channel = self.keys.channel(bus)
        if channel not in self._channels:
            self._channels[channel] = bus
            self._changed.set()

    def listen(self, channel: str, handler: Any) -> None:
        """Call ``handler(text)`` for each message on ``channel`` (requests, replies)."""
        if channel not in self._extra:
            self._extra[channel] = handler
            self._changed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-pubsub")

    async def close(self, timeout: float = 2.0) -> None:
        """Stop reading, within about ``timeout`` (twice at worst). A cancelled read in
        redis-py's pub/sub can swallow the cancellation and go on reading (seen as a drained
        node that never exited); the readers therefore also stop at ``_closing``, and if that
        is not enough either, closing their connections ends them."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                log.warning("event=pubsub_close_slow timeout_s=%s", timeout)
                await self._drop()
                done, _ = await asyncio.wait({task}, timeout=timeout)
            if done and not task.cancelled():
                with contextlib.suppress(*REDIS_ERRORS_T, RuntimeError):
                    task.result()
        await self._drop()

    # -- the readers ------------------------------------------------------------------------

    async def _drop(self) -> None:
        pubsubs, self._pubsubs = self._pubsubs, []
        self.connected = False
        for ps in pubsubs:
            with contextlib.suppress(*REDIS_ERRORS_T, RuntimeError):
                await asyncio.wait_for(ps.aclose(), 1.0)
        for client in self._shard_clients.values():
            with contextlib.suppress(*REDIS_ERRORS_T, RuntimeError):
                await asyncio.wait_for(client.aclose(), 1.0)
        self._shard_clients.clear()

    def _target(self, channel: str) -> str:
        """Which connection carries ``channel``: the one server, or the shard of its slot."""
        if not self.link.cluster:
            return ""
        return str(self.link.client.get_node_from_key(channel).name)

    def _pubsub_for(self, target: str) -> Any:
        if not self.link.cluster:
            return self.link.client.pubsub()
        # a plain connection to the shard: one reader per shard, each blocking only on its own
        # socket (redis-py's ClusterPubSub polls the shards in turn, one message per turn)
        node = self.link.client.get_node(node_name=target)
        client = aredis.Redis(
            host=node.host,
            port=node.port,
            decode_responses=True,
            socket_connect_timeout=self.link.config.connect_timeout_s,
        )
        self._shard_clients[target] = client
        return client.pubsub()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (*REDIS_ERRORS_T, RuntimeError) as exc:
                if self._closing:
                    return
                self.link.failed("pubsub", exc)
            await self._drop()
            self.reconnects += 1
            await asyncio.sleep(self.backoff.next_delay())

    async def _session(self) -> None:
        """The pub/sub connections (one, or one per shard), from subscribe until one fails or
        goes silent; then all are re-made."""
        await self.link.connect()
        readers: dict[str, set[str]] = {}  # target → its channels
        tasks: set[asyncio.Task[None]] = set()
        first = True
        try:
            while True:
                self._changed.clear()
                for ch in (*self._channels, *self._extra):
                    target = self._target(ch)
                    if target not in readers:
                        readers[target] = set()
                        ps = self._pubsub_for(target)
                        self._pubsubs.append(ps)
                        tasks.add(asyncio.create_task(self._reader(ps, readers[target])))
                    readers[target].add(ch)
                if first:  # every channel is asked for: what was missed, from the streams
                    first = False
                    self.connected = True
                    self.link.ok("pubsub")
                    self.backoff.reset()
                    self.on_resubscribed()
                changed = asyncio.ensure_future(self._changed.wait())
                done, _ = await asyncio.wait({*tasks, changed}, return_when=FIRST_COMPLETED)
                changed.cancel()
                for task in done - {changed}:
                    task.result()  # a reader's error ends the session
                    raise RuntimeError("a pub/sub reader ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _reader(self, ps: Any, channels: set[str]) -> None:
        subscribed: set[str] = set()
        last_heard = time.monotonic()
        next_ping = last_heard
        timeout = self.link.config.command_timeout_s
        while not self._closing:
            new = [ch for ch in channels if ch not in subscribed]
            if new:
                subscribe = ps.ssubscribe if self.link.cluster else ps.subscribe
                await asyncio.wait_for(subscribe(*new), timeout)
                subscribed.update(new)
            now = time.monotonic()
            if now >= next_ping:
                await asyncio.wait_for(ps.ping(), timeout)
                next_ping = now + self.ping_s
            if now - last_heard > self.ping_timeout_s:
                raise TimeoutError("pub/sub connection silent (no pong)")
            msg = await ps.get_message(timeout=min(self.ping_s, 0.25))
            if msg is None:
                continue
            last_heard = time.monotonic()
            if msg.get("type") in ("message", "smessage"):
                self._dispatch(msg["channel"], msg["data"])

    def _dispatch(self, channel: str, data: Any) -> None:
        bus = self._channels.get(channel)
        if bus is None:
            handler = self._extra.get(channel)
            if handler is not None:
                handler(data)
            return
        try:
            stamped, origin = decode_payload(bus, data)
        except PayloadError as exc:
            log.warning("event=bad_payload bus=%s error=%s", bus, exc)
            return
        if origin == self.link.node:
            return  # this node delivered it when it was published
        self.received += 1
        for receiver in self._receivers:
            receiver(stamped)
