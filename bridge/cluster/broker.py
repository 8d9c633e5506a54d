"""The Redis broker: this node's side of every bus's pub/sub channel.

:meth:`RedisBroker.publish` delivers to this node's receivers at once (the owner's local
clients never wait for Redis); the message reaches Redis through the store's append script,
which publishes it in the same atomic step as the XADD. The reader task receives the other
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
from typing import Any

from redis.exceptions import RedisError

from frames.backoff import Backoff

from ..broker import Receiver
from ..store import Stamped
from .keys import PayloadError, decode_payload
from .link import REDIS_ERRORS, RedisLink

__all__ = ["RedisBroker"]

log = logging.getLogger("bridge.cluster")


class RedisBroker:
    def __init__(
        self, link: RedisLink, *, ping_s: float = 1.0, ping_timeout_s: float = 3.0
    ) -> None:
        self.link = link
        self.keys = link.keys
        self.ping_s = ping_s
        self.ping_timeout_s = ping_timeout_s
        self._receivers: list[Receiver] = []
        self._channels: dict[str, str] = {}  # channel → bus
        self._extra: dict[str, Any] = {}  # other channels (requests, replies) → handler
        self._task: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._changed = asyncio.Event()
        self.on_resubscribed: Any = lambda: None
        self.backoff = Backoff(0.05, 2.0)
        self.received = 0
        self.reconnects = 0
        self.connected = False

    # -- the Broker protocol -----------------------------------------------------------------

    def attach(self, receiver: Receiver) -> None:
        self._receivers.append(receiver)

    def detach(self, receiver: Receiver) -> None:
        self._receivers.remove(receiver)

    def publish(self, message: Stamped) -> None:
        for receiver in self._receivers:
            receiver(message)

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

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    # -- the reader --------------------------------------------------------------------------

    async def _drop(self) -> None:
        ps, self._pubsub = self._pubsub, None
        self.connected = False
        if ps is not None:
            with contextlib.suppress(*REDIS_ERRORS, RuntimeError):
                await asyncio.wait_for(ps.aclose(), 1.0)

    async def _subscribe(self, ps: Any, channels: list[str]) -> None:
        if not channels:
            return
        if self.link.cluster:
            await ps.ssubscribe(*channels)
        else:
            await ps.subscribe(*channels)

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
                self.link.failed("pubsub", exc)
            await self._drop()
            self.reconnects += 1
            await asyncio.sleep(self.backoff.next_delay())

    async def _session(self) -> None:
        """One pub/sub connection, from subscribe until it fails or goes silent."""
        self._pubsub = ps = self.link.client.pubsub()
        subscribed: set[str] = set()
        wanted = [*self._channels, *self._extra]
        await asyncio.wait_for(self._subscribe(ps, wanted), self.link.config.command_timeout_s)
        subscribed.update(wanted)
        self.connected = True
        self.link.ok("pubsub")
        self.backoff.reset()
        self.on_resubscribed()  # what was published while unsubscribed: from the streams
        last_heard = time.monotonic()
        next_ping = last_heard + self.ping_s
        get = ps.get_sharded_message if self.link.cluster else ps.get_message
        while True:
            if self._changed.is_set():
                self._changed.clear()
                new = [ch for ch in (*self._channels, *self._extra) if ch not in subscribed]
                await self._subscribe(ps, new)
                subscribed.update(new)
            now = time.monotonic()
            if now >= next_ping and not self.link.cluster:
                await ps.ping()
                next_ping = now + self.ping_s
            if now - last_heard > self.ping_timeout_s and not self.link.cluster:
                raise TimeoutError("pub/sub connection silent (no pong)")
            msg = await get(timeout=min(self.ping_s, 0.25))
            if msg is None:
                continue
            last_heard = time.monotonic()
            kind = msg.get("type")
            if kind in ("message", "smessage"):
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
