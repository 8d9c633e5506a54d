"""The WebSocket server: one reader (the handler) per client and one writer for all of them.

The handler parses each client message (:mod:`bridge.contract`) and answers it; bad input gets
an ``error`` message and the loop goes on. Publishers never await a client: fan-out puts
pre-serialized text in each session's bounded queue (:mod:`bridge.session`) and the writer
(:mod:`bridge.writer`) flushes the queues in batches; a client whose queue overflows is closed
with 4000 by a separate task, so no client ever waits for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from . import contract as c
from .acl import Principal, check_token
from .config import BridgeConfig
from .edge import Edge
from .errors import ContractError
from .fanout import Hub
from .metrics import BridgeMetrics
from .session import QueueLimits, Session
from .web import HttpRoutes
from .writer import Conn, Writer

__all__ = ["BridgeServer", "BusPort"]

log = logging.getLogger("bridge.server")


class BusPort(Protocol):
    """What the server needs from a bus owner (:class:`bridge.buses.BusOwner`)."""

    name: str
    down_reason: str  # why the bus is down ("" while up), for ``state``

    @property
    def up(self) -> bool: ...
    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]: ...
    def snapshot(self) -> dict[str, Any]: ...


class BridgeServer:
    def __init__(
        self,
        config: BridgeConfig,
        hub: Hub,
        buses: Mapping[str, BusPort],
        metrics: BridgeMetrics | None = None,
        *,
        routes: HttpRoutes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.limits = config.limits
        self.hub = hub
        self.buses = buses
        self.metrics = metrics or BridgeMetrics()
        self.clock = clock
        self.conns: dict[str, Conn] = {}
        self.metrics.attach(lambda: hub.stats, lambda: len(self.conns))
        self.routes = routes or HttpRoutes(self.health, self.metrics.render, self.state_json)
        self.edge = Edge(config, lambda reason: self.metrics.rejected.labels(reason).inc())
        self.queue_limits = QueueLimits(
            max_messages=self.limits.queue_messages,
            max_bytes=self.limits.queue_bytes,
            batch_messages=self.limits.batch_messages,
            batch_bytes=self.limits.batch_bytes,
        )
        self.started = time.monotonic()
        self.ready = False
        self.draining = False
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writer = Writer(
            self.metrics.out,
            self._spawn,
            clock,
            flush_clients=self.limits.flush_clients,
            stall_timeout=self.limits.stall_timeout_s,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        lim = self.limits
        self._server = await serve(
            self._handler,
            **self.edge.serve_options(
                host or self.config.server.host,
                self.config.server.port if port is None else port,
                self.routes.process_request,
            ),
            compression="deflate" if self.config.server.compression else None,
            ping_interval=lim.ping_interval_s or None,
            ping_timeout=lim.ping_timeout_s or None,
            close_timeout=lim.close_timeout_s,
            max_size=lim.max_message_bytes,
            max_queue=lim.incoming_messages,
            write_limit=lim.write_limit_bytes,
            server_header=None,
        )
        self._ticker = asyncio.create_task(self._heartbeats())
        sock = next(iter(self._server.sockets))
        bound = sock.getsockname()
        log.info("event=listening host=%s port=%s", bound[0], bound[1])
        return bound[0], bound[1]

    def set_ready(self) -> None:
        """The buses have had their first try at opening: ``/healthz`` may answer 200."""
        if not self.draining:
            self.ready = True

    def stop_accepting(self) -> None:
        """Refuse new connections (the listening socket closes) and new requests."""
        self.ready = False
        self.draining = True
        if self._server is not None:
            self._server.server.close()

    async def flush(self, timeout: float) -> None:
        """Give writers up to ``timeout`` to send what is queued (replies of finished requests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(not len(conn.session) for conn in self.conns.values()):
                return
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close every client with 1001 and wait for their handlers."""
        self.stop_accepting()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            # 1001 with a reason, by hand: Server.close() takes a code and reason only from
            # websockets 16 on; it closes whatever is left (with 1001 too)
            await asyncio.gather(
                *(
                    self._close(conn.ws, c.CLOSE_GOING_AWAY, "shutdown")
                    for conn in list(self.conns.values())
                )
            )
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        self.edge.close()

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Every close the server starts. The closing handshake gets ``close_timeout_s``, then
        the connection is dropped: websockets' ``close()`` first waits for the write buffer to
        drain, which a client that does not read would make last for ever."""
        try:
            await asyncio.wait_for(ws.close(code, reason), self.limits.close_timeout_s)
        except (TimeoutError, ConnectionClosed, OSError):
            pass
        finally:
            if ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()

    # -- per connection ----------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        if self.draining:
            await self._close(ws, c.CLOSE_GOING_AWAY, "shutting down")
            return
        if len(self.conns) >= self.limits.max_clients:
            self.metrics.rejected.labels("full").inc()
            await self._close(ws, c.CLOSE_NODE_FULL, "node full")
            return
        sid = f"{self._prefix}-{next(self._ids)}"
        session = Session(sid, self.queue_limits, self.clock())
        conn = Conn(ws, session)
        session.wake = lambda: self._wake(conn)
        self.conns[sid] = conn
        try:
            if not await self._hello(conn):
                return
            async for raw in ws:
                await self._dispatch(conn, raw)
                if session.backlogged():
                    await self._room(conn)
        except ConnectionClosed:
            pass
        finally:
            self.hub.detach(session)
            session.closing = True
            conn.closing = True
            self.conns.pop(sid, None)
            log.debug("event=disconnect session=%s code=%s", sid, ws.close_code)

    async def _room(self, conn: Conn) -> None:
        """Read no more of this client until the writer has brought its queue under half the
        bound.

        Answers (pongs, replies, replays) are queued past the bound, so a client that sends
        faster than it reads is slowed down here instead: its messages wait in the socket
        buffers (TCP back-pressure) and none is dropped. A client that reads nothing at all is
        given up by the writer after ``stall_timeout_s`` (4000), which ends this wait too: a
        backlogged client is always either being written or blocked in the writer's drain.
        """
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.room = room
        try:
            await asyncio.wait(
                (room, conn.ws.connection_lost_waiter), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            conn.room = None

    async def _hello(self, conn: Conn) -> bool:
        """Wait for a valid hello; answer anything else with an error. False: connection ends."""
        ws = conn.ws
        deadline = time.monotonic() + self.limits.hello_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                raw = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                self.metrics.rejected.labels("hello_timeout").inc()
                await self._close(ws, c.CLOSE_HELLO_TIMEOUT, "hello timeout")
                return False
            try:
                msg = c.parse_client_message(raw, max_topics=self.limits.max_topics)
                if not isinstance(msg, c.Hello):
                    raise ContractError(c.HELLO_REQUIRED, "send hello first", msg.id)
            except ContractError as exc:
                self.metrics.bad_messages.labels(exc.code).inc()
                error = c.dumps(c.error_message(exc.code, exc.message, exc.msg_id))
                try:  # a client that sends junk and never reads must not outlive the deadline
                    await asyncio.wait_for(ws.send(error), max(deadline - time.monotonic(), 0.01))
                except TimeoutError:
                    self.metrics.rejected.labels("hello_timeout").inc()
                    await self._close(ws, c.CLOSE_HELLO_TIMEOUT, "hello timeout")
                    return False
                continue
            principal = check_token(msg.token, self.config.server.tokens)
            if principal is None:
                self.metrics.rejected.labels("unauthorized").inc()
                log.info("event=unauthorized peer=%s", conn.peer)
                await self._close(ws, c.CLOSE_UNAUTHORIZED, "unauthorized")
                return False
            conn.session.principal = principal
            conn.session.welcomed = True
            conn.session.force([c.dumps(self._welcome(conn.session, msg.id))])
            log.info(
                "event=welcome session=%s peer=%s who=%s",
                conn.session.id,
                conn.peer,
                principal.name,
            )
            return True

    def _welcome(self, session: Session, msg_id: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "welcome"}
        if msg_id is not None:
            out["id"] = msg_id
        buses = {}
        for name in session.principal.visible(self.hub.buses()):
            pos = self.hub.position(name)
            buses[name] = {"epoch": pos.epoch, "seq": pos.seq}
        out.update(
            session=session.id,
            node=self.config.server.node,
            version=c.VERSION,
            buses=buses,
            heartbeat_s=self.limits.heartbeat_s,
        )
        return out

    def _wake(self, conn: Conn) -> None:
        """The session's queue became non-empty (or overflowed): flush it this loop turn."""
        if conn.session.overflowed:
            if not conn.closing:
                conn.closing = True
                self.metrics.slow_closes.inc()
                log.warning("event=slow_consumer session=%s peer=%s", conn.session.id, conn.peer)
                self._spawn(self._close_slow(conn))
            return
        self._writer.mark(conn)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_slow(self, conn: Conn) -> None:
        self.hub.detach(conn.session)
        await self._close(conn.ws, c.CLOSE_SLOW_CONSUMER, "slow consumer")

    async def _heartbeats(self) -> None:
        interval = self.limits.heartbeat_s
        tick = min(max(interval / 4, 0.01), 1.0)
        while True:
            await asyncio.sleep(tick)
            now = self.clock()
            text: str | None = None
            for conn in list(self.conns.values()):
                if conn.session.needs_heartbeat(now, interval):
                    text = text or c.dumps({"type": "heartbeat", "ts": round(now, 3)})
                    conn.session.last_sent = now
                    conn.session.force([text])

    # -- messages ----------------------------------------------------------------------------

    async def _dispatch(self, conn: Conn, raw: str | bytes) -> None:
        session = conn.session
        msg: c.ClientMessage | None = None
        try:
            msg = c.parse_client_message(raw, max_topics=self.limits.max_topics)
            answer = await self._answer(conn, msg)
        except ContractError as exc:
            self.metrics.bad_messages.labels(exc.code).inc()
            log.debug("event=bad_message session=%s code=%s msg=%s", session.id, exc.code, exc)
            answer = c.error_message(exc.code, exc.message, exc.msg_id)
        except Exception:  # a bridge bug: this message fails, the connection and the rest go on
            self.metrics.bad_messages.labels(c.INTERNAL_ERROR).inc()
            log.exception("event=internal_error session=%s", session.id)
            msg_id = None if msg is None else msg.id
            answer = c.error_message(c.INTERNAL_ERROR, "the bridge failed on this message", msg_id)
        if answer is not None:
            session.force([c.dumps(answer)])

    async def _answer(self, conn: Conn, msg: c.ClientMessage) -> dict[str, Any] | None:
        session = conn.session
        if isinstance(msg, c.Hello):
            raise ContractError(c.ALREADY_HELLO, "hello was already accepted", msg.id)
        if isinstance(msg, c.Ping):
            return _with_id({"type": "pong"}, msg.id)
        if isinstance(msg, c.Subscribe):
            await self._subscribe(session, msg)
            return None
        if isinstance(msg, c.Unsubscribe):
            gone = self.hub.unsubscribe(session, self._visible_topics(session, msg.topics))
            return _with_id({"type": "unsubscribed", "topics": gone}, msg.id)
        if isinstance(msg, c.StateQuery):
            return _with_id({"type": "state", "buses": self._state_for(session.principal)}, msg.id)
        return self._request(conn, msg)

    def _visible_topics(self, session: Session, topics: Sequence[c.Topic]) -> list[c.Topic]:
        """For a token limited to some buses, ``*`` is those buses (``BUS/*`` each)."""
        principal: Principal = session.principal
        if not principal.restricted:
            return list(topics)
        out: list[c.Topic] = []
        for topic in topics:
            if topic.bus is None:
                out += [c.Topic(bus, None) for bus in principal.visible(self.buses)]
            else:
                out.append(topic)
        return out

    async def _subscribe(self, session: Session, msg: c.Subscribe) -> None:
        principal: Principal = session.principal
        topics = self._visible_topics(session, msg.topics)
        for topic in topics:
            # a bus the token may not see is answered like one that does not exist: a limited
            # token learns nothing of the others
            if topic.bus is not None and not (
                topic.bus in self.buses and principal.may_see(topic.bus, topic.addr)
            ):
                raise ContractError(c.BAD_VALUE, f"no bus named {topic.bus!r}", msg.id)
        since = {b: p for b, p in msg.since.items() if principal.may_see(b, None)}
        result = await self.hub.subscribe(session, topics, since, self.clock())
        recovered = dict(result.recovered)
        for bus in msg.since.keys() - since.keys():
            recovered[bus] = False  # as for an unknown bus
        answer = _with_id({"type": "subscribed"}, msg.id)
        answer.update(topics=result.topics, recovered=recovered)
        # the answer, then the replay, then live messages: all queued before any other publish
        session.force([c.dumps(answer), *result.replay])
        if msg.since:
            log.info(
                "event=resume session=%s recovered=%s replayed=%d",
                session.id,
                result.recovered,
                len(result.replay),
            )

    def _request(self, conn: Conn, msg: c.ClientMessage) -> dict[str, Any] | None:
        assert isinstance(msg, c.Request)
        session = conn.session
        bus = self.buses.get(msg.bus)
        if bus is None or not session.principal.may_see(msg.bus, None):
            # not labelled with the client's bus name (labels must stay few); a bus the token
            # may not see is answered like one that does not exist
            self.metrics.requests.labels("", "bad_request").inc()
            return c.reply_error("bad_request", f"no bus named {msg.bus!r}", msg.id)
        if not session.principal.may_request(msg.bus, msg.addr):
            self.metrics.requests.labels(msg.bus, "forbidden").inc()
            return c.reply_error("forbidden", "this token may not send requests here", msg.id)
        if self.draining:
            self.metrics.requests.labels(msg.bus, "busy").inc()
            return c.reply_error("busy", "bridge is shutting down", msg.id)
        future = bus.submit(msg, client=session.id)

        def reply_for(fut: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
            if fut.cancelled():
                reply = c.reply_error("bus_down", "request cancelled (bridge stopping)", msg.id)
            else:
                reply = _with_id({"type": "reply"}, msg.id)
                reply.update(fut.result())
            outcome = "ok" if reply.get("ok") else str(reply["error"]["code"])
            self.metrics.requests.labels(msg.bus, outcome).inc()
            return reply

        def done(fut: asyncio.Future[dict[str, Any]]) -> None:
            reply = reply_for(fut)
            if not session.closing:
                session.force([c.dumps(reply)])

        if future.done():  # refused at once (bad_request, busy, bus_down): answer in this turn,
            return reply_for(future)  # so the reader's back-pressure check counts it
        future.add_done_callback(done)
        return None

    # -- state and health --------------------------------------------------------------------

    def _state_for(self, principal: Principal) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, bus in self.buses.items():
            if not principal.may_see(name, None):
                continue
            pos = self.hub.position(name)
            snap = bus.snapshot()
            snap = {a: d for a, d in snap.items() if principal.may_see(name, int(a))}
            out[name] = {
                "up": bus.up,
                "reason": bus.down_reason,
                "epoch": pos.epoch,
                "seq": pos.seq,
                "devices": snap,
            }
        return out

    def state_json(self, token: str | None = None) -> dict[str, Any] | None:
        """``/api/state``: what ``token`` may see; None (401) when tokens are configured and
        this one is missing or not among them."""
        principal = check_token(token or "", self.config.server.tokens)
        if principal is None:  # no token is "", never an accepted one
            return None
        return {
            "node": self.config.server.node,
            "ts": self.clock(),
            "buses": self._state_for(principal),
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        buses = {}
        for name, bus in self.buses.items():
            pos = self.hub.position(name)
            snap = bus.snapshot()
            online = sum(1 for d in snap.values() if d.get("online"))
            buses[name] = {
                "up": bus.up,
                "epoch": pos.epoch,
                "seq": pos.seq,
                "devices": len(snap),
                "devices_online": online,
            }
        up = [b["up"] for b in buses.values()]
        if self.draining:
            status = "stopping"
        elif not self.ready:
            status = "starting"  # listening, the buses' first open not yet tried
        else:  # a bus that is down is retried, and its clients stay: still ready, not healthy
            status = "ok" if all(up) else "degraded"
        ready = status in ("ok", "degraded")
        body = {
            "status": status,
            "node": self.config.server.node,
            "clients": len(self.conns),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "buses": buses,
        }
        return ready, body


def _with_id(message: dict[str, Any], msg_id: Any) -> dict[str, Any]:
    if msg_id is not None:
        message["id"] = msg_id
    return message
