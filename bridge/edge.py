"""The network edge, as websockets hooks: per-source limits, browser checks, file descriptors,
HTTP pipelining. The decisions are :mod:`bridge.guard`'s; this module only reads the socket and
the request and carries them out.

:meth:`Edge.serve_options` gives :func:`websockets.asyncio.server.serve` three things:

- ``create_connection``: :class:`EdgeConnection`, which counts each connection against its
  source from accept to close, refuses or drops it there (before any byte is read) when the
  source or the process's descriptors are over their limits, and holds back whatever a client
  sends after its first HTTP request until that request is answered. websockets would otherwise
  parse a pipelined second request as WebSocket frames while the first is being answered, fail
  the connection, and then trip on its own ``assert not self.eof_sent`` when sending the answer
  (no answer, a traceback in the log). The bridge answers the first request and closes.
- ``process_request``: the refusals decided at accept (429, 503), ``Host`` (403 on every
  path), ``Origin`` (403 on the WebSocket upgrade), then the HTTP routes.
- ``sock``: for an IP-literal listen address, a listening socket whose ``accept()`` backs off for
  a second on ``EMFILE``/``ENFILE``. asyncio's own accept loop keeps calling ``accept()`` after
  that error and schedules a retry for every failure, which turned one exhausted limit into a
  tight loop writing hundreds of thousands of tracebacks a minute. A host name (``localhost``
  binds 127.0.0.1 and ::1) is left to asyncio, with the early refusal and the log limit only.

:meth:`Edge.start` raises ``RLIMIT_NOFILE``'s soft limit to the hard one (logged once) and puts a
:class:`bridge.lograte.RateLimitFilter` on the bridge's, websockets' and asyncio's loggers.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.protocol import State

from . import lograte
from .config import BridgeConfig
from .guard import BrowserGuard, FdZone, SourceLimiter, SourceVerdict, fd_zone
from .web import WS_PATH, http_response

__all__ = ["Edge", "EdgeConnection", "EdgeState", "GuardedSocket", "raise_nofile_limit"]

log = logging.getLogger("bridge.edge")

ProcessRequest = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]

_FD_ERRNOS = (errno.EMFILE, errno.ENFILE)
_ACCEPT_EXHAUSTED = "socket.accept() out of system resource"  # asyncio's context message
HELD_BYTES = 64 * 1024  # bytes read after the first request before reading pauses
TIGHT_HANDSHAKE_S = 2.0  # a connection accepted in the descriptor reserve gets this long
_nofile_logged = False


def raise_nofile_limit() -> int:
    """Raise ``RLIMIT_NOFILE``'s soft limit to the hard one (logged once per process); returns
    the soft limit now in force (0: unlimited or unknown)."""
    global _nofile_logged
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # an infinite hard limit above the kernel's cap
            if not _nofile_logged:
                log.warning("event=fd_limit soft=%d hard=%d raise_failed=%r", soft, hard, exc)
        else:
            if not _nofile_logged:
                log.info("event=fd_limit raised_from=%d soft=%d", soft, hard)
            soft = hard
    elif not _nofile_logged:
        log.info("event=fd_limit soft=%d hard=%d", soft, hard)
    _nofile_logged = True
    return 0 if soft == resource.RLIM_INFINITY else int(soft)


class GuardedSocket(socket.socket):
    """A listening socket whose ``accept()`` backs off on ``EMFILE``/``ENFILE``: it raises the
    error once (asyncio then stops watching the socket and tries again a second later) and
    answers ``BlockingIOError`` (asyncio's "nothing to accept") until the back-off is over."""

    backoff_s = 1.0

    def accept(self) -> tuple[socket.socket, Any]:
        now = time.monotonic()
        if now < getattr(self, "_quiet_until", 0.0):
            raise BlockingIOError(errno.EAGAIN, "accept backing off")
        try:
            return super().accept()
        except OSError as exc:
            if exc.errno not in _FD_ERRNOS:
                raise
            self._quiet_until = now + self.backoff_s
            raise


def bind_guarded(host: str, port: int) -> GuardedSocket | None:
    """A bound :class:`GuardedSocket` for an IP literal (asyncio listens on it); None for a
    name or the empty host (several addresses: left to asyncio)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = GuardedSocket(family, socket.SOCK_STREAM)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(ip), port))
    except OSError:
        sock.close()
        raise
    return sock


class EdgeState:
    """What the edge keeps per connection (see :class:`EdgeConnection`), in one slotted
    object: the connection's own attribute dict stays small (see ``_LATE``)."""

    __slots__ = (
        "handshaking",
        "held",
        "holding",
        "paused",
        "refusal",
        "refusal_reason",
        "request_seen",
        "source",
        "tail",
    )

    def __init__(self) -> None:
        self.source = "?"
        self.refusal: Response | None = None
        self.refusal_reason = ""
        self.handshaking = True
        self.request_seen = False
        self.tail = b""
        self.held: bytearray | None = None  # what followed the first request (rarely any)
        self.holding = False
        self.paused = False


_NO_STATE = EdgeState()  # a connection that is not an EdgeConnection (tests call check())


# The attributes websockets gives a connection in ``connection_made()``, which asyncio calls a
# loop turn after creating it. CPython shares one table of attribute names among a class's
# instances only while it holds them all (30 at most), and each instance created shrinks the
# room left for names not yet seen: when a burst of accepts creates several connections before
# the first one's ``connection_made()``, these names no longer fit and every connection gets a
# dict of its own (~1.3 KiB more per client: the RSS figure was bimodal, 16.9 or 18.2 KiB,
# before the edge existed, and 18.7 with its nine attributes). Set at ``__init__`` they are in
# the table from the first connection on (tests/bridge/test_websockets_internals.py).
_LATE = ("recv_messages", "transport")


class EdgeConnection(ServerConnection):
    """A websockets server connection with the edge's accounting (see the module docstring).
    :meth:`Edge.serve_options` binds a subclass to its :class:`Edge`."""

    edge: Edge

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in _LATE:
            if not hasattr(self, name):
                setattr(self, name, None)
        self.es = EdgeState()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.es.source = str(peer[0])
        sock = transport.get_extra_info("socket")
        self.edge.admit(self, sock.fileno() if sock is not None else -1)

    def connection_lost(self, exc: Exception | None) -> None:
        es = self.es
        self.edge.sources.closed(es.source, handshaking=es.handshaking)
        es.handshaking = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        es = self.es
        if es.holding:
            self._hold(data)
            return
        if es.request_seen:
            super().data_received(data)
            return
        # before the end of the first request: find it, and hold back what follows
        window = es.tail + data
        end = window.find(b"\r\n\r\n")
        if end < 0:
            es.tail = window[-3:]
            super().data_received(data)
            return
        cut = end + 4 - len(es.tail)
        es.tail = b""
        es.request_seen = True
        es.holding = True
        rest = data[cut:]
        super().data_received(data[:cut])
        if rest:
            self._hold(rest)

    def _hold(self, data: bytes) -> None:
        es = self.es
        if es.held is None:
            es.held = bytearray()
        es.held += data
        if len(es.held) > HELD_BYTES and not es.paused and self.transport is not None:
            es.paused = True
            self.transport.pause_reading()

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        finally:
            self._end_handshake()

    def _end_handshake(self) -> None:
        es = self.es
        if es.handshaking:
            es.handshaking = False
            self.edge.sources.handshake_done(es.source)
        es.holding = False
        held, es.held = es.held, None
        if self.protocol.state is not State.OPEN:
            return  # answered with HTTP (and closing): what followed is not read
        if es.paused and self.transport is not None:
            es.paused = False
            self.transport.resume_reading()
        if held:  # frames a client sent right behind its upgrade request
            super().data_received(bytes(held))

    def expire_handshake(self) -> None:
        """Close a connection still in its handshake (the descriptor reserve's short wait)."""
        if self.es.handshaking and self.transport is not None:
            self.transport.abort()


class Edge:
    """The edge of one bridge server: limits and checks around websockets' accept and
    handshake. ``count(reason)`` counts a refusal (the rejected-connections metric)."""

    def __init__(self, config: BridgeConfig, count: Callable[[str], None] | None = None) -> None:
        lim = config.limits
        self.config = config
        self.count = count or (lambda _reason: None)
        self.sources = SourceLimiter(
            lim.max_connections_per_source, lim.max_handshakes_per_source, lim.limit_loopback
        )
        self.fd_reserve = lim.fd_reserve
        self.soft_limit = 0
        self.guard = BrowserGuard.build(
            config.server.host,
            config.server.allowed_origins + config.tenancy.origins(),
            config.server.allowed_hosts,
        )
        self.log_filter = lograte.RateLimitFilter(lim.log_burst, lim.log_interval_s)
        self._filtered: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_handler: Any = None

    # -- lifecycle ---------------------------------------------------------------------------

    def serve_options(self, host: str, port: int, routes: ProcessRequest) -> dict[str, Any]:
        """Keyword arguments for ``serve()``: the listen address (or socket) and the hooks.
        Also starts the edge (file limit, log filter, accept-error handler)."""
        self.start()
        self.guard = BrowserGuard.build(
            host,
            self.config.server.allowed_origins + self.config.tenancy.origins(),
            self.config.server.allowed_hosts,
        )
        edge = self

        class Bound(EdgeConnection):
            pass

        Bound.edge = edge

        def process_request(conn: ServerConnection, request: Request) -> Any:
            refusal = edge.check(conn, request)
            return refusal if refusal is not None else routes(conn, request)

        options: dict[str, Any] = {"create_connection": Bound, "process_request": process_request}
        sock = bind_guarded(host, port)
        if sock is None:
            options.update(host=host, port=port)
        else:
            options["sock"] = sock
        return options

    def start(self) -> None:
        self.soft_limit = raise_nofile_limit()
        if not self._filtered:
            self._filtered = lograte.install(self.log_filter)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._previous_handler = self._loop.get_exception_handler()
            self._loop.set_exception_handler(self._loop_exception)

    def close(self) -> None:
        """Take the log filter and the loop's exception handler back out (idempotent)."""
        lograte.uninstall(self.log_filter, self._filtered)
        self._filtered = []
        loop = self._loop
        if loop is not None and loop.get_exception_handler() == self._loop_exception:
            loop.set_exception_handler(self._previous_handler)
        self._loop = None

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio reports an accept that failed for want of descriptors with a traceback; it is
        a known condition here (the listener backs off): one rate-limited line instead."""
        exc = context.get("exception")
        if context.get("message") == _ACCEPT_EXHAUSTED and isinstance(exc, OSError):
            self.count("fd_limit")
            log.warning("event=accept_backoff errno=%s soft_limit=%d", exc.errno, self.soft_limit)
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # -- per connection ----------------------------------------------------------------------

    def admit(self, conn: EdgeConnection, fd: int) -> None:
        """At accept, before any byte is read: count the source, look at the descriptors."""
        es = conn.es
        verdict = self.sources.opened(es.source)
        zone = fd_zone(fd, self.soft_limit, self.fd_reserve)
        if verdict is SourceVerdict.DROP or zone is FdZone.EXHAUSTED:
            reason = "per_source" if verdict is SourceVerdict.DROP else "fd_limit"
            self.count(reason)
            log.warning("event=refused reason=%s peer=%s fd=%d", reason, es.source, fd)
            conn.transport.abort()
            return
        if verdict is SourceVerdict.TOO_MANY:
            es.refusal = http_response(
                429, b"too many connections from your address\n", _TEXT, Retry_After="5"
            )
            es.refusal_reason = "per_source"
        elif zone is FdZone.TIGHT:
            es.refusal = http_response(
                503, b"bridge is out of connections, retry later\n", _TEXT, Retry_After="5"
            )
            es.refusal_reason = "fd_limit"
            conn.loop.call_later(TIGHT_HANDSHAKE_S, conn.expire_handshake)

    def check(self, conn: ServerConnection, request: Request) -> Response | None:
        """The edge's answer to a request (None: go on to the routes)."""
        path = unquote(urlsplit(request.path).path)
        es: EdgeState = getattr(conn, "es", _NO_STATE)
        refusal = es.refusal
        if refusal is not None and (refusal.status_code == 429 or path == WS_PATH):
            self._refused(conn, es.refusal_reason, "")
            return refusal
        hosts = request.headers.get_all("Host")
        if len(hosts) > 1 or not self.guard.host_ok(hosts[0] if hosts else None):
            self._refused(conn, "host", hosts[0] if hosts else "")
            return http_response(403, b"host not allowed\n", _TEXT)
        if path != WS_PATH:
            return None
        origins = request.headers.get_all("Origin")
        if len(origins) > 1 or not self.guard.origin_ok(
            origins[0] if origins else None, hosts[0] if hosts else None
        ):
            self._refused(conn, "origin", origins[0] if origins else "")
            return http_response(403, b"origin not allowed\n", _TEXT)
        return None

    def _refused(self, conn: ServerConnection, reason: str, value: str) -> None:
        self.count(reason)
        peer = getattr(conn, "es", _NO_STATE).source
        log.info("event=refused reason=%s peer=%s value=%r", reason, peer, value[:100])


_TEXT = "text/plain; charset=utf-8"
