"""The WebSocket server: a thin adapter between websockets and the connection core.

Per client, the handler reads a message, feeds it to the pure :class:`~bridge.connection.
Connection` with the time, and performs what it returns (queue an answer, subscribe at the hub,
submit a request to a bus owner, close); everything the bridge decides about a client is in
that core and in the admission :mod:`~bridge.policy`. Publishers never await a client: fan-out
puts pre-serialized text in each session's bounded queue (:mod:`bridge.session`) and the writer
(:mod:`bridge.writer`) flushes the queues in batches; a client whose queue overflows is closed
with 4000 by a separate task, so no client ever waits for another.

Reading is how a client is slowed down: the handler reads no more of a client's messages while
its answers wait unsent (``limits.answer_bytes``) or while its message rate is over the token
bucket (``limits.message_rate``); its messages then wait in its own socket buffers.
Connections that have not said hello are counted apart (``limits.max_pending``): when there are
too many, the oldest is closed, so they never lock out clients that authenticate.
The HTTP answers are :mod:`bridge.server_http`'s; closing and draining, :mod:`bridge.closing`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from . import contract as c
from . import server_tenants as tenant_io
from .closing import close_client, drain_clients
from .config import BridgeConfig
from .connection import Action, Close, Connection, Send, Submit, Subscribe, Unsubscribe
from .edge import Edge
from .fanout import Hub
from .metrics import BridgeMetrics
from .policy import Policy, SimplePolicy
from .quota import TenantPolicy
from .series import SeriesStore
from .server_http import ServerHttp
from .session import QueueLimits, Session
from .tenant_metrics import TenantMetrics
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
        policy: Policy | None = None,
        series: SeriesStore | None = None,
    ) -> None:
        self.config = config
        self.series = series
        self.limits = config.limits
        self.hub = hub
        self.buses = buses
        self.metrics = metrics or BridgeMetrics()
        self.clock = clock
        self.conns: dict[str, Conn] = {}  # every connection, with or without hello
        self.pending: dict[str, Conn] = {}  # those without hello yet, oldest first
        self._clients = 0  # connections welcomed and not yet ended
        self.auth = tenant_io.authenticator(config)
        self.tenant_metrics = TenantMetrics(
            self.metrics.registry, lambda: [conn.session for conn in self.conns.values()]
        )
        if policy is None and self.auth.required:  # quotas and per-tenant counts
            policy = TenantPolicy(self.limits.max_clients, clock, self.tenant_metrics.rejected)
        self.policy: Policy = policy or SimplePolicy(self.limits.max_clients)
        self.metrics.attach(lambda: hub.stats, lambda: len(self.conns))
        self.http = ServerHttp(self)  # /healthz, /readyz, /api/state, /api/series
        self.health = self.http.health  # /healthz's answer: (up, body)
        self.routes = routes or self.http.routes()
        self.edge = Edge(config, lambda reason: self.metrics.rejected.labels(reason).inc())
        self.queue_limits = QueueLimits(
            max_messages=self.limits.queue_messages,
            max_bytes=self.limits.queue_bytes,
            batch_messages=self.limits.batch_messages,
            batch_bytes=self.limits.batch_bytes,
            answer_bytes=self.limits.answer_bytes,
        )
        self.node = config.server.node
        self.cluster: Any = None  # a bridge.cluster.node.ClusterNode in cluster mode
        self.started = time.monotonic()
        self.ready = False
        self.draining = False
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._shared: Any = None  # bridge.quota_redis.SharedCounts with [redis]
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
        tls = tenant_io.tls_context(self.config.server.tls)
        self._server = await serve(
            self._handler,
            **self.edge.serve_options(
                host or self.config.server.host,
                self.config.server.port if port is None else port,
                self.http.process_request,
            ),
            compression="deflate" if self.config.server.compression else None,
            ping_interval=lim.ping_interval_s or None,
            ping_timeout=lim.ping_timeout_s or None,
            close_timeout=lim.close_timeout_s,
            max_size=lim.max_message_bytes,
            max_queue=lim.incoming_messages,
            write_limit=lim.write_limit_bytes,
            server_header=None,
            ssl=tls,
        )
        for listener in self._server.sockets:  # accepted sockets inherit both: they bound
            # what websockets parses ahead of a client we stopped reading, and what a client
            # that never reads absorbs (Linux grows loopback send buffers to megabytes)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, lim.receive_buffer_bytes)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, lim.send_buffer_bytes)
        self._ticker = asyncio.create_task(self._writer.heartbeats(self.conns, lim.heartbeat_s))
        self._shared = tenant_io.share_quotas(self.config, self.policy, self.node)
        sock = next(iter(self._server.sockets))
        bound = sock.getsockname()
        tenant_io.announce(self.auth, bound[0], bound[1], tls is not None)
        return bound[0], bound[1]

    def set_ready(self) -> None:
        """The buses have had their first try at opening: ``/healthz`` may answer 200."""
        if not self.draining:
            self.ready = True

    def stop_accepting(self) -> None:
        """Refuse new WebSocket connections (HTTP 503, so a proxy tries another node) and new
        requests. The listener stays open until :meth:`close`, so ``/readyz`` and ``/healthz``
        answer 503 during the whole drain: a load balancer polling them sees it at once."""
        self.ready = False
        self.draining = True

    async def flush(self, timeout: float) -> None:
        """Give writers up to ``timeout`` to send what is queued (replies of finished requests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(not len(conn.session) for conn in self.conns.values()):
                return
            await asyncio.sleep(0.01)

    async def close(self, window: float = 0.0) -> None:
        """Close every client with 1001, in batches spread over ``window`` seconds
        (:mod:`bridge.drain`), and wait for their handlers."""
        self.stop_accepting()
        if self._server is not None:
            # 1001 with a reason, by hand: Server.close() takes a code and reason only from
            # websockets 16 on; it closes whatever is left (with 1001 too)
            await drain_clients(self.conns, window, self.limits.close_timeout_s)
        if self._ticker is not None:  # heartbeats go on for the clients still waiting their turn
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._shared is not None:
            await self._shared.stop()
            await self._shared.redis.aclose()
        self.edge.close()

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Every close the server starts (:func:`bridge.closing.close_client`)."""
        await close_client(ws, code, reason, self.limits.close_timeout_s)

    # -- per connection ----------------------------------------------------------------------

    def clients(self) -> int:
        """Authenticated clients (what ``max_clients`` counts)."""
        return self._clients

    def position(self, bus: str) -> c.Position:
        return self.hub.position(bus)

    async def _handler(self, ws: ServerConnection) -> None:
        if self.draining:
            await self._close(ws, c.CLOSE_GOING_AWAY, "shutting down")
            return
        now = self.clock()
        sid = f"{self._prefix}-{next(self._ids)}"
        session = Session(sid, self.queue_limits, now)
        conn = Conn(ws, session)
        session.wake = lambda: self._wake(conn)
        origin = ws.request.headers.get("Origin") if ws.request is not None else None
        core = Connection(
            session,
            self,
            self.policy,
            self.auth,
            self.limits,
            now,
            origin=origin,
            certified=tenant_io.certified(ws.transport, self.auth),  # TLS client certificate
        )
        self.conns[sid] = conn
        self._admit_pending(conn)
        try:
            while (raw := await self._next(conn, core)) is not None:
                if not await self._perform(conn, core, core.receive(raw, self.clock())):
                    break
                if session.backlogged():
                    await self._room(conn, core)
        except ConnectionClosed:
            pass
        finally:
            self.hub.detach(session)
            session.closing = True
            conn.closing = True
            self.conns.pop(sid, None)
            self.pending.pop(sid, None)
            if session.welcomed:
                self._clients -= 1
                self.policy.release(session.principal)
                self.tenant_metrics.left(session)
            log.debug("event=disconnect session=%s code=%s", sid, ws.close_code)

    def _admit_pending(self, conn: Conn) -> None:
        """Count a connection without hello apart; over ``max_pending`` the oldest goes (1013),
        so idle handshakes never take an authenticating client's place (issue 10, break 3)."""
        self.pending[conn.session.id] = conn
        if len(self.pending) > self.limits.max_pending:
            oldest = self.pending.pop(next(iter(self.pending)))
            oldest.closing = True
            self.metrics.rejected.labels("pending").inc()
            self._spawn(self._close(oldest.ws, c.CLOSE_NODE_FULL, "too many handshakes"))

    def _next(self, conn: Conn, core: Connection) -> Awaitable[str | bytes | None]:
        """The next client message once the rate limit allows it; None: the core closed the
        connection (hello deadline). A welcomed client within its rate waits in websockets'
        ``recv()`` alone: no coroutine frame of ours per idle client (10,000 of them)."""
        if core.next_deadline() is None and core.read_delay(self.clock()) <= 0:
            return conn.ws.recv()
        return self._read(conn, core)

    async def _read(self, conn: Conn, core: Connection) -> str | bytes | None:
        while True:
            delay = core.read_delay(self.clock())
            if delay > 0:  # pacing a client over its rate: its messages wait in its socket
                await asyncio.sleep(delay)
            deadline = core.next_deadline()
            if deadline is None:
                return await conn.ws.recv()
            try:
                return await asyncio.wait_for(conn.ws.recv(), max(deadline - self.clock(), 0))
            except TimeoutError:
                if not await self._perform(conn, core, core.tick(self.clock())):
                    return None

    async def _room(self, conn: Conn, core: Connection) -> None:
        """Read no more of this client until the writer has brought its queue under
        ``answer_bytes`` (or the connection ends, or the hello deadline passes).

        Answers (pongs, replies, replays) are queued past the bound, so a client that asks
        faster than it reads is slowed down here instead: its messages wait in the socket
        buffers (TCP back-pressure) and none is dropped. A client that reads nothing at all is
        given up by the writer after ``stall_timeout_s`` (4000), which ends this wait too.
        """
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.room = room
        closed = asyncio.ensure_future(conn.ws.wait_closed())
        deadline = core.next_deadline()
        timeout = None if deadline is None else max(deadline - self.clock(), 0)
        try:
            await asyncio.wait((room, closed), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            conn.room = None
            closed.cancel()

    async def _perform(self, conn: Conn, core: Connection, actions: list[Action]) -> bool:
        """Do what the core said; False when the connection is to end."""
        session = conn.session
        for action in actions:
            if isinstance(action, Send):
                self._count(action, session)
                session.force([c.dumps(action.message)])
                if action.message["type"] == "welcome":
                    self.pending.pop(session.id, None)
                    self._clients += 1
                    self.tenant_metrics.joined(session.principal.tenant)
                    who = session.principal.name
                    log.debug("event=welcome session=%s peer=%s who=%s", session.id, conn.peer, who)
            elif isinstance(action, Subscribe):
                result = await self.hub.subscribe(
                    session, action.topics, action.since, self.clock()
                )
                answer = core.subscribed(action, result.topics, result.recovered)
                # the answer, then the replay, then live messages: in this order in the queue
                session.force([c.dumps(answer), *result.replay])
                if action.since or action.hidden:
                    log.debug(  # per connection: DEBUG (services log at INFO by default)
                        "event=resume session=%s recovered=%s replayed=%d",
                        session.id,
                        result.recovered,
                        len(result.replay),
                    )
            elif isinstance(action, Unsubscribe):
                gone = self.hub.unsubscribe(session, action.topics)
                session.force([c.dumps(core.unsubscribed(action, gone))])
            elif isinstance(action, Submit):
                self._submit(conn, core, action.request)
            else:
                self._refused(conn, action)
                await self._close(conn.ws, action.code, action.reason)
                return False
        return True

    def _count(self, send: Send, session: Session) -> None:
        message: Any = send.message
        if message["type"] == "error":
            self.metrics.bad_messages.labels(message["code"]).inc()
        if send.outcome is not None:
            self.metrics.requests.labels(*send.outcome).inc()
            if session.welcomed:
                self.tenant_metrics.request(session.principal.tenant, send.outcome[1])

    def _refused(self, conn: Conn, close: Close) -> None:
        if close.label:
            self.metrics.rejected.labels(close.label).inc()
        log.info("event=%s session=%s peer=%s", close.label or "close", conn.session.id, conn.peer)

    def _submit(self, conn: Conn, core: Connection, request: c.Request) -> None:
        session = conn.session
        client = session.principal.client_id(session.id)  # tenant:NAME/SESSION: fair by tenant
        future = self.buses[request.bus].submit(request, client=client)

        def done(fut: asyncio.Future[dict[str, Any]]) -> None:
            send = core.reply(request, None if fut.cancelled() else fut.result())
            self._count(send, session)
            if not session.closing:
                session.force([c.dumps(send.message)])

        if future.done():  # refused at once (bad_request, busy, bus_down): answer in this turn,
            done(future)  # so the reader's back-pressure check counts it
        else:
            future.add_done_callback(done)

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
