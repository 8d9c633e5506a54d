"""A Python client for the bridge's wire contract v1, with automatic resume.

It keeps the last ``(epoch, seq)`` seen per bus; when the connection drops for a reason worth
retrying (1001 going away, 4000 slow consumer, 1013 full, 1011/1006 network), it reconnects
with backoff, says hello again and re-subscribes with ``since`` so the bridge replays what was
missed. Messages already seen are dropped, so a consumer sees every seq of a bus once, in order,
unless the bridge reports ``recovered: false`` (recorded in :attr:`BridgeClient.resumes`).

The inbound queue is bounded: a consumer that stops reading stops the socket reader too, and
the bridge then treats this client as a slow consumer — the same back-pressure a browser gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import ClientClosed, ClientError

__all__ = ["RETRY_CLOSE_CODES", "BridgeClient"]

log = logging.getLogger("bridge.client")

RETRY_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 4000})
_ANSWERS = frozenset({"welcome", "subscribed", "unsubscribed", "reply", "pong", "state"})


class BridgeClient:
    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        reconnect: bool = True,
        max_reconnects: int = 20,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        max_queue: int = 10_000,
        open_timeout_s: float = 5.0,
        **connect_kwargs: Any,
    ) -> None:
        self.url = url
        self.token = token
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.open_timeout_s = open_timeout_s
        self.connect_kwargs: dict[str, Any] = {"compression": None, **connect_kwargs}
        self.positions: dict[str, tuple[int, int]] = {}  # bus → (epoch, last seq seen)
        self.topics: list[str] = []
        self.welcome: dict[str, Any] = {}
        self.resumes: list[dict[str, Any]] = []  # "subscribed" answers of automatic resumes
        self.close_codes: list[int | None] = []  # every close seen, in order
        self.duplicates = 0  # replayed messages dropped because already seen
        self.ws: ClientConnection | None = None
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue(max_queue)
        self._ended: BaseException | None = None  # why the connection ended for good
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Open, say hello, and start reading; returns the welcome."""
        await self._open()
        self._reader = asyncio.create_task(self._read_forever())
        return self.welcome

    async def _open(self) -> None:
        ws = await asyncio.wait_for(
            connect(self.url, open_timeout=self.open_timeout_s, **self.connect_kwargs),
            self.open_timeout_s,
        )
        await ws.send(json.dumps({"type": "hello", "token": self.token}))
        while True:
            raw = await asyncio.wait_for(ws.recv(), self.open_timeout_s)
            for msg in _messages(raw):
                if msg.get("type") == "welcome":
                    self.ws = ws
                    self.welcome = msg
                    for bus, pos in msg.get("buses", {}).items():
                        self.positions.setdefault(bus, (pos["epoch"], pos["seq"]))
                    self._connected.set()
                    return
                if msg.get("type") == "error":
                    raise ClientError(f"hello refused: {msg}")

    async def close(self) -> None:
        self._closed = True
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail_pending(ClientClosed("client closed"))

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
        """Send a message with a fresh id and wait for the answer carrying it."""
        await asyncio.wait_for(self._connected.wait(), timeout)
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            assert self.ws is not None
            await self.ws.send(json.dumps({**message, "id": msg_id}))
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(msg_id, None)

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
        """The next frame, event, heartbeat or unsolicited error. Raises ClientClosed at the end."""
        if self._ended is not None and self._queue.empty():
            raise self._ended
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # keep the end visible to later calls
            raise item
        return item

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                yield await self.recv()
            except ClientClosed:
                return

    # -- reading and resuming ----------------------------------------------------------------

    async def _read_forever(self) -> None:
        try:
            await self._read_and_reconnect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. a server text that is not JSON: end, never hang
            log.warning("event=client_reader_failed url=%s error=%r", self.url, exc)
            self._fail_pending(ClientError(f"reader failed: {exc!r}"))
            await self._end(ClientClosed(f"reader failed: {exc!r}", None))

    async def _read_and_reconnect(self) -> None:
        attempts = 0
        while True:
            ws = self.ws
            assert ws is not None
            try:
                async for raw in ws:
                    for msg in _messages(raw):
                        await self._handle(msg)
                    attempts = 0
            except ConnectionClosed:
                pass
            code = ws.close_code
            self.close_codes.append(code)
            self._connected.clear()
            self._fail_pending(ClientError(f"connection closed ({code})"))
            if self._closed or not self.reconnect or code not in RETRY_CLOSE_CODES:
                await self._end(ClientClosed(f"closed by the bridge ({code})", code))
                return
            delay = self.reconnect_min_s
            while True:
                attempts += 1
                if attempts > self.max_reconnects:
                    await self._end(ClientClosed(f"gave up after {attempts - 1} reconnects", code))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                try:
                    await self._open()
                    await self._resume()
                    break
                except (
                    OSError,
                    TimeoutError,
                    InvalidHandshake,
                    ConnectionClosed,
                    ClientError,
                ) as exc:
                    log.info("event=reconnect_failed url=%s error=%r", self.url, exc)

    async def _resume(self) -> None:
        if not self.topics:
            return
        assert self.ws is not None
        since = {bus: {"epoch": e, "seq": s} for bus, (e, s) in self.positions.items()}
        msg_id = f"resume-{next(self._ids)}"
        await self.ws.send(
            json.dumps({"type": "subscribe", "id": msg_id, "topics": self.topics, "since": since})
        )
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        # the answer arrives through the reader loop, which is this task: do not await it here

        def record(f: asyncio.Future[dict[str, Any]]) -> None:
            if not f.cancelled() and f.exception() is None:
                self.resumes.append(f.result())

        fut.add_done_callback(record)

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        msg_id = msg.get("id")
        if kind == "subscribed":
            # A refused resume (epoch changed, gap too old): forget that bus's position, so
            # the next resume does not ask for it again. Before the answer goes to its caller.
            for bus, ok in (msg.get("recovered") or {}).items():
                if not ok:
                    self.positions.pop(bus, None)
        if msg_id is not None and (kind in _ANSWERS or kind == "error"):
            fut = self._pending.pop(msg_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
                return
        if kind == "subscribed":
            return
        if kind in ("frame", "event"):
            bus = msg.get("bus")
            epoch, seq = msg.get("epoch"), msg.get("seq")
            if isinstance(bus, str) and isinstance(epoch, int) and isinstance(seq, int):
                last = self.positions.get(bus)
                if last is not None and last[0] == epoch and seq <= last[1]:
                    self.duplicates += 1
                    return
                self.positions[bus] = (epoch, seq)
        await self._queue.put(msg)

    async def _end(self, exc: BaseException) -> None:
        # Remembered as well as queued: with a full queue the sentinel would be lost and a
        # reader would wait forever once it has drained what is queued.
        self._ended = exc
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(exc)

    def _fail_pending(self, exc: BaseException) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()


def _messages(raw: str | bytes) -> list[dict[str, Any]]:
    """One server text → its messages (a batch is a JSON array)."""
    data = json.loads(raw)
    if isinstance(data, list):
        return [m for m in data if isinstance(m, dict)]
    return [data] if isinstance(data, dict) else []
