"""Requests for a bus another node owns: through Redis to the owner, the reply back here.

The asking node publishes the request on the bus's request channel (only its owner listens)
with an id (``<node>:<n>``); the owner puts it in the bus's own queue (:meth:`bridge.buses.
BusOwner.submit`, so the same per-bus bound, per-client bound, timeouts and error codes apply)
and publishes the reply on the asker's reply channel. Pub/sub delivers a message at most once,
and the owner also drops an id it has already seen, so a request is executed at most once. The
asker gives up after the request's timeout plus ``margin_s`` (``timeout``); a reply that comes
later is dropped and counted. No owner (its lease expired) or nobody listening: ``bus_down``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from .. import contract as c
from .link import REDIS_ERRORS, RedisLink

__all__ = ["RemoteBus", "RequestRouter"]

log = logging.getLogger("bridge.cluster")


def _fail(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class Submitter(Protocol):
    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]: ...


class RequestRouter:
    """Both ends: :meth:`ask` on the asking node, :meth:`serve` on the owner."""

    def __init__(
        self, link: RedisLink, *, default_timeout_s: float = 5.0, margin_s: float = 2.0
    ) -> None:
        self.link = link
        self.keys = link.keys
        self.default_timeout_s = default_timeout_s
        self.margin_s = margin_s
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()  # ids executed here (bounded)
        self._owned: dict[str, Submitter] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.late_replies = 0
        self.duplicates = 0
        self.routed = 0
        self.served = 0

    # -- the asking node ---------------------------------------------------------------------

    def ask(self, request: c.Request, client: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        rid = f"{self.link.node}:{next(self._ids)}"
        body: dict[str, Any] = {
            "id": rid,
            "from": self.link.node,
            "client": client,
            "bus": request.bus,
            "addr": request.addr,
            "cmd": request.cmd,
            "timeout_s": request.timeout_s,
        }
        if request.args is not None:
            body["args"] = request.args
        if request.data is not None:
            body["data"] = base64.b64encode(request.data).decode()
        self._waiting[rid] = fut
        self.routed += 1
        task = asyncio.create_task(self._send(request.bus, rid, json.dumps(body), request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return fut

    async def _send(self, bus: str, rid: str, text: str, request: c.Request) -> None:
        fut = self._waiting[rid]
        try:
            listeners = await self.link.publish(self.keys.requests(bus), text)
        except REDIS_ERRORS as exc:
            self.link.failed("requests", exc)
            self._finish(rid, _fail("bus_down", f"cannot reach the owner of bus {bus}"))
            return
        if not listeners:
            self._finish(rid, _fail("bus_down", f"bus {bus} has no owner listening"))
            return
        timeout = (request.timeout_s or self.default_timeout_s) + self.margin_s
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self._finish(rid, _fail("timeout", f"no reply from the owner of bus {bus}"))

    def _finish(self, rid: str, result: dict[str, Any]) -> None:
        fut = self._waiting.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_result(result)

    def on_reply(self, data: str) -> None:
        try:
            msg = json.loads(data)
            rid, result = str(msg["id"]), msg["result"]
        except (ValueError, KeyError, TypeError):
            log.warning("event=bad_reply data=%r", str(data)[:80])
            return
        if rid not in self._waiting:
            self.late_replies += 1
            log.info("event=late_reply id=%s", rid)
            return
        self._finish(rid, result)

    # -- the owner ---------------------------------------------------------------------------

    def own(self, bus: str, owner: Submitter) -> None:
        self._owned[bus] = owner

    def disown(self, bus: str) -> None:
        self._owned.pop(bus, None)

    def on_request(self, data: str) -> None:
        try:
            msg = json.loads(data)
            rid, asker, bus = str(msg["id"]), str(msg["from"]), str(msg["bus"])
            raw = msg.get("data")
            request = c.Request(
                bus=bus,
                addr=int(msg["addr"]),
                cmd=msg["cmd"],
                data=None if raw is None else base64.b64decode(raw),
                args=msg.get("args"),
                timeout_s=msg.get("timeout_s"),
            )
            client = f"{asker}/{msg.get('client', '')}"
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("event=bad_request error=%s", exc)
            return
        owner = self._owned.get(bus)
        if owner is None:  # a node that owned the bus before still listens: the owner answers
            return
        if rid in self._seen:  # delivered twice: executed once
            self.duplicates += 1
            return
        self._seen[rid] = None
        if len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        fut = owner.submit(request, client=client)
        self.served += 1
        fut.add_done_callback(lambda f: self._reply(asker, rid, f))

    def _reply(self, asker: str, rid: str, fut: asyncio.Future[dict[str, Any]]) -> None:
        result = _fail("bus_down", "cancelled") if fut.cancelled() else fut.result()
        text = json.dumps({"id": rid, "result": result})
        task = asyncio.create_task(self._publish_reply(asker, text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_reply(self, asker: str, text: str) -> None:
        try:
            await self.link.publish(self.keys.replies(asker), text)
        except REDIS_ERRORS as exc:
            self.link.failed("requests", exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for rid in list(self._waiting):
            self._finish(rid, _fail("bus_down", "bridge stopping"))


class RemoteBus:
    """A bus owned by another node, as the server sees it (a :class:`bridge.server.BusPort`)."""

    def __init__(self, name: str, router: RequestRouter, owner: Callable[[], str | None]) -> None:
        self.name = name
        self.router = router
        self._owner = owner
        self.note = ""  # why this node does not poll it although configured for it

    @property
    def owner(self) -> str | None:
        return self._owner()

    @property
    def up(self) -> bool:
        return self._owner() is not None

    @property
    def down_reason(self) -> str:
        return "" if self.up else f"bus {self.name} has no owner node"

    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]:
        if not self.up:
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            fut.set_result(_fail("bus_down", self.down_reason))
            return fut
        return self.router.ask(request, client)

    def snapshot(self) -> dict[str, Any]:
        return {}  # the devices are the owner's (its /api/state has them)
