"""The writer: one flush for all clients, so fan-out never awaits a client.

A session whose queue becomes non-empty is marked (:meth:`Writer.mark`); one ``call_soon``
flush, however many messages were published in that loop turn, writes what each marked client
has queued straight to its transport — batched as one JSON array per WebSocket frame, a slice
of clients per loop turn so bus I/O is served in between. A client whose transport is above its
write limit gets a small drain task and is marked again when the socket has room. Nothing here
decides who is too slow: the session's bounded queue does, and the server closes it.

This module reaches past websockets' public API (``paused``, ``drain()``, ``send_data()``,
``protocol.writes``, a frame from ``protocol.send_text()`` written to many transports): the
public ``await ws.send()`` per client and ``broadcast()`` measured 56k and 85k deliveries per
CPU-second against this writer's ~1.1M (``benchmarks/bridge.py --phases fanout``, 2,000
clients). So ``pyproject.toml`` pins ``websockets>=14,<18`` and
``tests/bridge/test_websockets_internals.py`` fails when a release changes what is used here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from .contract import dumps
from .messages import Heartbeat
from .session import Session

__all__ = ["Conn", "Writer"]

log = logging.getLogger("bridge.writer")


class OutCounters(Protocol):
    """Where the writer counts what it sent (:class:`bridge.metrics.BridgeMetrics` ``.out``)."""

    messages: int
    frames: int
    bytes: int


class Conn:
    """One client connection as the writer sees it."""

    __slots__ = ("blocked", "closing", "dirty", "peer", "room", "session", "ws")

    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.closing = False
        self.dirty = False  # in the writer's list of connections to flush
        self.blocked = False  # transport above its write limit: a drain task waits for it
        self.room: asyncio.Future[None] | None = None  # the reader waits for the queue to shrink
        self.peer = ws.remote_address[0] if ws.remote_address else "?"


class _LastFrame:
    """The last batch written in a flush and its WebSocket frame, for the next client."""

    __slots__ = ("batch", "frame", "text_len")

    def __init__(self) -> None:
        self.batch: list[str] = []
        self.frame = b""
        self.text_len = 0


class Writer:
    def __init__(
        self,
        out: OutCounters,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        clock: Callable[[], float],
        *,
        flush_clients: int = 100,
        stall_timeout: float = 30.0,
    ) -> None:
        self.out = out
        self.flush_clients = flush_clients  # clients written per loop turn
        self.stall_timeout = stall_timeout  # blocked this long: the client is given up (4000)
        self.spawn = spawn  # runs a task the server owns (and cancels at shutdown)
        self.clock = clock
        self._dirty: list[Conn] = []
        self._pending = False
        self._flushing: list[Conn] | None = None  # the clients of the flush under way
        self._flush_at = 0  # how many of them are written

    def mark(self, conn: Conn) -> None:
        """``conn`` has something queued: write it in the next flush."""
        if conn.dirty:
            return
        conn.dirty = True
        self._dirty.append(conn)
        self._schedule()

    def _schedule(self) -> None:
        if self._pending:
            return
        self._pending = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what every dirty client has queued, ``flush_clients`` clients per loop turn.

        A flush takes the clients that are dirty when it starts; the rest of it goes on in the
        next loop turn, after I/O, so the buses' replies are read between slices and writing to
        thousands of clients never stalls polling. What is published while a flush runs goes
        out as one batch per client in the next one: under load, each client gets one write
        per flush however many frames it carries (the writes, not the JSON, are where a loaded
        bridge spends its CPU); an idle bridge writes at once.
        """
        if self._flushing is None:  # a new flush: the clients dirty now; later ones wait for
            self._flushing, self._dirty = self._dirty, []  # the next flush
            self._flush_at = 0
        at = self._flush_at
        part = self._flushing[at : at + self.flush_clients]
        self._flush_at = at + len(part)
        now = self.clock()
        last = _LastFrame()
        for conn in part:
            conn.dirty = False
            if not conn.closing and not conn.blocked:
                self._write(conn, now, last)
        if self._flush_at < len(self._flushing):
            asyncio.get_running_loop().call_soon(self._flush)  # after this turn's I/O
            return
        self._flushing = None
        self._pending = False
        if self._dirty:
            self._schedule()

    def _write(self, conn: Conn, now: float, last: _LastFrame) -> None:
        """Send the queue as frames of up to ``batch_messages``/``batch_bytes`` while the
        transport takes them (below ``write_limit``); then hand over to a drain task.

        Clients with the same subscriptions get the same batches in a flush: without extensions
        (compression) a server frame does not depend on the connection, so the frame websockets
        built for the previous client is written again instead of being encoded and framed once
        per client.
        """
        session = conn.session
        ws = conn.ws
        protocol = ws.protocol
        transport = ws.transport
        out = self.out
        messages = frames = size = 0
        while len(session):
            if protocol.state is not State.OPEN or transport.is_closing():
                break  # closing: the handler ends and the queue goes with the session
            if ws.paused:  # the transport's buffer is over the high-water mark
                conn.blocked = True
                self.spawn(self._drain(conn))
                break
            batch = session.take_batch()
            try:
                if batch == last.batch and not protocol.extensions:
                    if protocol.writes:  # keep order with control frames, if any
                        ws.send_data()
                    transport.write(last.frame)
                    text_len = last.text_len
                else:
                    text = batch[0] if len(batch) == 1 else "[" + ",".join(batch) + "]"
                    text_len = len(text)
                    protocol.send_text(text.encode())
                    chunks = protocol.data_to_send()
                    for chunk in chunks:
                        if chunk:  # b"" means half-close: not while OPEN
                            transport.write(chunk)
                    if len(chunks) == 1 and not protocol.extensions:
                        last.batch, last.frame, last.text_len = batch, chunks[0], text_len
            except Exception as exc:  # what send() would do: drop the connection
                log.debug("event=write_error session=%s error=%r", session.id, exc)
                conn.closing = True
                transport.abort()
                break
            messages += len(batch)
            frames += 1
            size += text_len
        if frames:
            session.mark_sent(messages, size, now)
            out.messages += messages
            out.frames += frames
            out.bytes += size
            room = conn.room
            if room is not None and not session.backlogged():
                conn.room = None
                if not room.done():
                    room.set_result(None)

    async def _drain(self, conn: Conn) -> None:
        """Wait for the socket to take more; a client that reads nothing for ``stall_timeout``
        is given up (its session overflows: the server closes it with 4000). Without this a
        client that stops reading would hold its connection and queue for good, since
        websockets' own keepalive pings wait behind the full buffer too."""
        try:
            await asyncio.wait_for(conn.ws.drain(), self.stall_timeout)
        except TimeoutError:
            log.info("event=stalled session=%s peer=%s", conn.session.id, conn.peer)
            conn.session.overflow()
            return
        except Exception:  # the connection was lost; its handler cleans up
            return
        finally:
            conn.blocked = False
        if len(conn.session) and not conn.closing:
            conn.session.wake()

    async def heartbeats(self, conns: Mapping[str, Conn], interval: float) -> None:
        """Run for ever: every client that has been sent nothing for ``interval`` seconds gets
        a ``heartbeat`` (one text for all of them), so it can tell a quiet bus from a dead link."""
        tick = min(max(interval / 4, 0.01), 1.0)
        while True:
            await asyncio.sleep(tick)
            now = self.clock()
            text: str | None = None
            for conn in list(conns.values()):
                if conn.session.needs_heartbeat(now, interval):
                    beat: Heartbeat = {"type": "heartbeat", "ts": round(now, 3)}
                    text = text or dumps(beat)
                    conn.session.last_sent = now
                    conn.session.force([text])
