"""A Python client for the bridge's wire contract v1, with automatic resume.

It keeps the last ``(epoch, seq)`` seen per bus; when the connection drops for a reason worth
retrying (the close-code table in :mod:`bridge.client_policy`, the same one the browser uses),
it reconnects with full-jitter exponential backoff (:class:`frames.backoff.Backoff`), says hello
again and re-subscribes with ``since`` so the bridge replays what was missed. Messages already
seen are dropped, so a consumer sees every seq of a bus once, in order, unless the bridge
reports ``recovered: false`` (recorded in :attr:`BridgeClient.resumes`; the client then reloads
``state`` and calls ``on_reload``).

A server that stops talking while TCP stays open (a stopped process, a dead NAT entry) is
noticed by its missing heartbeats: nothing for ``DEAD_AFTER_HEARTBEATS`` x ``heartbeat_s`` (from
``welcome``) counts as a lost connection.

Every failure is a :class:`bridge.errors.BridgeError`: a refused token is
:class:`~bridge.errors.Unauthorized`, an end for good :class:`~bridge.errors.ClientClosed`
(with the close ``code``), a call without answer :class:`~bridge.errors.ClientTimeout`.

The inbound queue is bounded: a consumer that stops reading stops the socket reader too, and
the bridge then treats this client as a slow consumer — the same back-pressure a browser gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from frames.backoff import Backoff

from .client_connect import open_connection, reconnect
from .client_connect import remember as _remember
from .client_policy import (
    DEAD_AFTER_HEARTBEATS,
    ResumeTracker,
    close_rule,
    closed_error,
    is_bus_reset,
    parse_messages,
    silence_limit,
)
from .errors import ClientClosed, ClientError, ClientTimeout

__all__ = ["BridgeClient", "ReloadHook"]

log = logging.getLogger("bridge.client")

_ANSWERS = frozenset({"welcome", "subscribed", "unsubscribed", "reply", "pong", "state"})

# on_reload(bus, state, reason): bus None = every bus; reason "bus_reset" or "not_recovered"
ReloadHook = Callable[[str | None, dict[str, Any], str], Awaitable[None] | None]


class BridgeClient:
    """One connection to a bridge, kept alive and resumed; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        reconnect: bool = True,
        max_reconnects: int = 20,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        rng: random.Random | None = None,
        dead_after_heartbeats: float = DEAD_AFTER_HEARTBEATS,
        on_reload: ReloadHook | None = None,
        max_queue: int = 10_000,
        open_timeout_s: float = 5.0,
        **connect_kwargs: Any,
    ) -> None:
        self.url = url
        self.token = token
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s, rng=rng or random.Random())
        self.dead_after_heartbeats = dead_after_heartbeats
        self.on_reload = on_reload
        self.open_timeout_s = open_timeout_s
        self.connect_kwargs: dict[str, Any] = {"compression": None, **connect_kwargs}
        self.tracker = ResumeTracker()  # last (epoch, seq) per bus, duplicates dropped
        self.topics: list[str] = []
        self.welcome: dict[str, Any] = {}
        self.resumes: list[dict[str, Any]] = []  # "subscribed" answers of automatic resumes
        # per reconnect, seconds from the loss to the resumed subscription (or the new welcome)
        self.outages: list[float] = []
        self._lost_at = 0.0
        self.close_codes: list[int | None] = []  # every close seen, in order
        self.delays: list[float] = []  # every reconnect delay slept, in order
        self.reloads: list[dict[str, Any]] = []  # state fetched after bus_reset / lost resume
        self.silent_drops = 0  # connections given up because the server went silent
        self.ws: ClientConnection | None = None
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue(max_queue)
        self._ended: ClientClosed | None = None  # why the connection ended for good
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # reloads in progress
        self._closed = False
        self._connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Open, say hello, and start reading; returns the welcome.

        The first connection is not retried: a wrong URL or token fails here, at once.
        """
        try:
            await self._open()
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            raise ClientError(f"cannot connect to {self.url}: {exc!r}") from exc
        self._reader = asyncio.create_task(self._read_forever())
        return self.welcome

    async def _open(self) -> None:
        self.ws, self.welcome = await open_connection(
            self.url,
            self.token,
            open_timeout_s=self.open_timeout_s,
            connect_kwargs=self.connect_kwargs,
            close_codes=self.close_codes,
        )
        self.tracker.welcome(self.welcome)
        self._connected.set()

    async def close(self) -> None:
        self._closed = True
        if self.ws is not None:
            await self.ws.close()
        for task in [self._reader, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fail_pending(ClientClosed("client closed"))
        if self._ended is None:  # the reader was cancelled before it saw the end
            self._end(ClientClosed("client closed"))

    async def __aenter__(self) -> BridgeClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------------------------

    async def call(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a message with a fresh id and wait for the answer carrying it.

        While a reconnect is in progress the call waits for it (within ``timeout``).
        """
        if self._ended is not None:
            raise self._ended
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            return await asyncio.wait_for(self._send_and_wait(message, msg_id, fut), timeout)
        except asyncio.TimeoutError:
            raise ClientTimeout(f"no answer to {message.get('type')} in {timeout} s") from None
        except ConnectionClosed as exc:
            raise ClientError(f"connection closed while sending ({exc.rcvd})") from None
        finally:
            self._pending.pop(msg_id, None)

    async def _send_and_wait(
        self, message: dict[str, Any], msg_id: int, fut: asyncio.Future[dict[str, Any]]
    ) -> dict[str, Any]:
        await self._connected.wait()
        if self._ended is not None:  # _end sets _connected too, so no call waits for nothing
            raise self._ended
        assert self.ws is not None
        await self.ws.send(json.dumps({**message, "id": msg_id}))
        return await fut

    async def subscribe(
        self, topics: Iterable[str], *, since: dict[str, dict[str, int]] | None = None
    ) -> dict[str, Any]:
        topics = list(topics)
        msg: dict[str, Any] = {"type": "subscribe", "topics": topics}
        if since:
            msg["since"] = since
        answer = await self.call(msg)
        self.topics.extend(t for t in topics if t not in self.topics)
        return answer

    async def unsubscribe(self, topics: Iterable[str]) -> dict[str, Any]:
        topics = list(topics)
        self.topics = [t for t in self.topics if t not in topics]
        return await self.call({"type": "unsubscribe", "topics": topics})

    async def request(
        self,
        bus: str,
        addr: int,
        cmd: int | str,
        data: bytes | str | None = None,
        *,
        args: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "request", "bus": bus, "addr": addr, "cmd": cmd}
        if data is not None:
            msg["data"] = data.hex() if isinstance(data, bytes) else data
        if args is not None:
            msg["args"] = args
        return await self.call(msg, timeout)

    async def state(self) -> dict[str, Any]:
        return await self.call({"type": "state"})

    async def ping(self) -> dict[str, Any]:
        return await self.call({"type": "ping"})

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next frame, event, heartbeat or unsolicited error.

        Raises the :class:`ClientClosed` (or :class:`Unauthorized`) that ended the connection
        once everything before it was read, and :class:`ClientTimeout` after ``timeout``.
        """
        if self._ended is not None and self._queue.empty():
            raise self._ended
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise ClientTimeout(f"nothing received in {timeout} s") from None
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # keep the end visible to later calls
            raise item
        return item

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        """Every message, in order. Ends when :meth:`close` was called; raises any other end."""
        while True:
            try:
                yield await self.recv()
            except ClientClosed:
                if self._closed:
                    return
                raise

    async def frames(self, bus: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Only the ``frame`` messages (of one bus), as ``async for frame in client.frames()``."""
        async for msg in self:
            if msg.get("type") == "frame" and (bus is None or msg.get("bus") == bus):
                yield msg

    # -- reading and resuming ----------------------------------------------------------------

    async def _read_forever(self) -> None:
        try:
            await self._read_and_reconnect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. a server text that is not JSON: end, never hang
            log.warning("event=client_reader_failed url=%s error=%r", self.url, exc)
            self._fail_pending(ClientError(f"reader failed: {exc!r}"))
            self._end(ClientClosed(f"reader failed: {exc!r}", None))

    async def _read_one_connection(self, ws: ClientConnection) -> int | None:
        """Read until the connection ends; its close code (1006 when the server fell silent)."""
        limit = silence_limit(self.welcome.get("heartbeat_s"), self.dead_after_heartbeats)
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), limit)
                for msg in parse_messages(raw):
                    await self._handle(msg)
                self.backoff.reset()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else ws.close_code
        except asyncio.TimeoutError:
            self.silent_drops += 1
            log.warning("event=client_server_silent url=%s after_s=%s", self.url, limit)
            ws.transport.abort()  # no close handshake with a peer that does not answer
            return 1006

    async def _read_and_reconnect(self) -> None:
        while True:
            assert self.ws is not None
            code = await self._read_one_connection(self.ws)
            self._lost_at = asyncio.get_running_loop().time()
            _remember(self.close_codes, code)
            self._connected.clear()
            self._fail_pending(ClientError(f"connection closed ({code})"))
            rule = close_rule(code)
            if self._closed or not self.reconnect or not rule.retry:
                self._end(closed_error(code))
                return
            end = await reconnect(
                self._reopen,
                rule,
                code,
                backoff=self.backoff,
                max_reconnects=self.max_reconnects,
                delays=self.delays,
                url=self.url,
                on_failure=self._connected.clear,  # a hello that worked before the resume failed
            )
            if end is not None:
                self._end(end)
                return

    async def _reopen(self) -> None:
        await self._open()
        await self._resume()

    def _outage_ended(self) -> None:
        _remember(self.outages, asyncio.get_running_loop().time() - self._lost_at)

    async def _resume(self) -> None:
        if not self.topics:
            self._outage_ended()
            return
        assert self.ws is not None
        since = self.tracker.since()
        msg_id = f"resume-{next(self._ids)}"
        await self.ws.send(
            json.dumps({"type": "subscribe", "id": msg_id, "topics": self.topics, "since": since})
        )
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        # the answer arrives through the reader loop, which is this task: do not await it here

        def record(f: asyncio.Future[dict[str, Any]]) -> None:
            if not f.cancelled() and f.exception() is None:
                answer = f.result()
                self._outage_ended()
                _remember(self.resumes, answer)
                for bus, ok in (answer.get("recovered") or {}).items():
                    if not ok:
                        self._reload(bus, "not_recovered")

        fut.add_done_callback(record)

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        msg_id = msg.get("id")
        if kind == "subscribed":
            # Before the answer goes to its caller: the next resume must not ask again for a
            # bus whose resume was refused (epoch changed, gap too old).
            self.tracker.refused(msg)
        if msg_id is not None and (kind in _ANSWERS or kind == "error"):
            fut = self._pending.pop(msg_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
                return
        if kind == "subscribed" or not self.tracker.accept(msg):
            return
        if is_bus_reset(msg):
            bus = msg.get("bus")
            self._reload(bus if isinstance(bus, str) else None, "bus_reset")
        await self._queue.put(msg)

    def _reload(self, bus: str | None, reason: str) -> None:
        """Fetch ``state`` and hand it to ``on_reload``, in a task: the answer comes through
        the reader, which is the caller here."""

        async def reload() -> None:
            try:
                st = await self.state()
                _remember(self.reloads, st)
                if self.on_reload is not None:
                    result = self.on_reload(bus, st, reason)
                    if inspect.isawaitable(result):
                        await result
            except ClientError as exc:  # the connection went again: the next resume retries
                log.info("event=client_reload_failed url=%s bus=%s error=%r", self.url, bus, exc)

        task = asyncio.get_running_loop().create_task(reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end(self, exc: ClientClosed) -> None:
        # Remembered as well as queued: with a full queue the sentinel would be lost and a
        # reader would wait forever once it has drained what is queued.
        self._ended = exc
        self._connected.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(exc)

    def _fail_pending(self, exc: BaseException) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
