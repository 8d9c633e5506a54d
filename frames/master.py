"""The master side of the protocol as an I/O-free state machine (h11/websockets style).

:class:`MasterCore` takes bytes and the current time and returns bytes to send and events. The
sync :class:`frames.io.Master` and the async :class:`frames.io.AsyncMaster` drive this same core;
tests drive it against :class:`frames.slave.Slave` with a fake clock and no I/O at all.

Driving it::

    token = core.send_request(addr, cmd, data, now)
    port.write(core.data_to_send())
    ... when bytes arrive:          core.receive_data(chunk, now)
    ... at core.next_deadline():    core.tick(now)
    after each of these:            write core.data_to_send(), handle core.events()

Timing rules, in short (docs/master.md says why each exists, with the limits they leave):

* **One transaction on the wire at a time** (a half-duplex bus carries one); further requests
  wait in a bounded FIFO (``max_queue``) and leave in order.
* **Inter-frame gap** before every request (:class:`~frames.line.HalfDuplexLine`): quiet for
  ``gap`` seconds (default 3.5 character times) after the last byte either way; a reply ends our
  transmission's estimated end at once (a pty has no real baud rate).
* **Timeout** per attempt from the end of transmission, then up to ``retries`` more; a reply to
  *any* attempt is accepted. **Early retry**: garbage, a CRC failure or a malformed reply from the
  addressed slave means the reply was hit: resend once the line is quiet, not after the timeout.
* **Matching**: same slave, same command (or ``cmd | 0x80``), and for the standard commands a
  payload that agrees with the request; else ``unexpected``, or ``late`` when it answers an
  earlier timed-out or cancelled request.
* **Guard time** (:class:`~frames.transaction.OwedReplies`): after a transaction ends with
  attempts unanswered, the bus stays quiet for ``guard`` seconds and what arrives is ``late``.
  The default frame has no transaction id, so a reply later than timeout + guard can still pass
  for an identical next request's; the tagged format (``FrameFormat(tagged=True)``: one tag per
  transaction, echoed by the slave) rules that out.
* **Broadcast** (address 0) expects no reply: done after ``turnaround`` seconds.
* **Cancel** of a request on the wire keeps the bus until its reply or its timeout, so the next
  request can never read the cancelled one's reply.
* **Idle flush**: ``idle_flush`` seconds of silence give up a partial frame (a stray start byte
  cannot stall the next reply). **RS-485 local echo** (``discard_echo``): the first frame equal
  to what we just sent is our own echo and is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from .commands import STANDARD, CommandRegistry
from .errors import FrameValueError, LinkDown, MasterClosed, MasterError, QueueFull
from .events import (
    CrcErrorSeen,
    FrameReceived,
    FrameSent,
    LinkStateChanged,
    MasterEvent,
    MasterStats,
    ReplyReceived,
    RequestFailed,
)
from .format import DEFAULT_FORMAT, FrameFormat
from .frame import BROADCAST, Frame
from .line import HalfDuplexLine
from .payloads import (
    parse_read_registers,
    read_registers_request,
    reply_fits,
    write_register_request,
    write_registers_request,
)
from .stream import StreamDecoder
from .transaction import OwedReplies, Transaction, TransactionBuilder, char_time, default_gap

__all__ = [
    "MasterCore",
    "MasterEvent",
    "MasterStats",
    "ReplyReceived",
    "RequestFailed",
    "char_time",
    "default_gap",
    "parse_read_registers",
    "read_registers_request",
    "reply_fits",
    "write_register_request",
    "write_registers_request",
]


class MasterCore:
    """The master's protocol state machine. Pure: no I/O, no clock, no threads."""

    def __init__(
        self,
        *,
        fmt: FrameFormat = DEFAULT_FORMAT,
        registry: CommandRegistry = STANDARD,
        baudrate: int = 115200,
        timeout: float = 0.5,
        retries: int = 2,
        gap: float | None = None,
        turnaround: float = 0.05,
        discard_echo: bool = False,
        idle_flush: float | None = None,
        late_window: float | None = None,
        guard: float | None = None,
        max_queue: int = 1024,
        connected: bool = True,
        wall_offset: float = 0.0,
    ) -> None:
        if timeout <= 0 or retries < 0 or turnaround < 0 or max_queue < 1:
            raise FrameValueError("timeout must be > 0, retries/turnaround >= 0, max_queue >= 1")
        if guard is not None and guard < 0:
            raise FrameValueError("guard must be >= 0")
        self.fmt = fmt
        self.registry = registry
        self.timeout = timeout
        self.retries = retries
        self.decoder = StreamDecoder(fmt)
        self._line = HalfDuplexLine(self.decoder, baudrate=baudrate, gap=gap, idle_flush=idle_flush)
        self.turnaround = turnaround
        self.discard_echo = discard_echo
        self.max_queue = max_queue
        self.wall_offset = wall_offset  # added to ``now`` for traffic events' wall-clock ``ts``
        self.stats = MasterStats()
        self._build = TransactionBuilder(fmt, registry)
        self._queue: deque[Transaction] = deque()
        self._current: Transaction | None = None
        # Late replies and the guard time: quiet after a transaction ends with attempts
        # unanswered (``guard``; None: its timeout, at least ``timeout``).
        self._owed = OwedReplies(registry, timeout=timeout, guard=guard, late_window=late_window)
        self._echo: Frame | None = None
        self._out = bytearray()
        self._events: list[MasterEvent] = []
        self._connected = connected
        self._closed = False
        self._seen_errors = 0

    # -- public API -------------------------------------------------------------------------

    @property
    def char_time(self) -> float:
        """Seconds per character at the line's baud rate."""
        return self._line.char_time

    @property
    def gap(self) -> float:
        return self._line.gap

    @property
    def idle_flush(self) -> float:
        return self._line.idle_flush

    def set_baudrate(
        self, baudrate: int, *, gap: float | None = None, idle_flush: float | None = None
    ) -> None:
        """The port's rate changed: re-derive the timing (``gap``/``idle_flush`` as given to
        the constructor: None means "from the baud rate")."""
        self._line.retime(baudrate, gap=gap, idle_flush=idle_flush)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def guard(self) -> float | None:
        """The guard time setting (None: each transaction's timeout, at least ``timeout``)."""
        return self._owed.guard

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Transactions queued or on the wire (a cancelled one holding the bus included)."""
        return len(self._queue) + (self._current is not None)

    def send_request(
        self,
        addr: int,
        cmd: int | str,
        data: bytes = b"",
        now: float = 0.0,
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> int:
        """Queue a request; returns its token, which its outcome event carries."""
        if self._closed:
            raise MasterClosed("master is closed")
        if not self._connected:
            raise LinkDown("link is down")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"{len(self._queue)} requests already waiting for the bus")
        t = self.timeout if timeout is None else timeout
        r = self.retries if retries is None else retries
        txn = self._build.build(addr, cmd, data, t, r)
        self._queue.append(txn)
        self.stats.requests += 1
        self._advance(now)
        return txn.token

    def cancel(self, token: int, now: float) -> bool:
        """Forget a request. One still queued is dropped; one on the wire keeps the bus until
        its reply (reported as ``late``) or its timeout. Returns False if it was not pending."""
        for txn in self._queue:
            if txn.token == token:
                self._queue.remove(txn)
                self.stats.cancelled += 1
                return True
        cur = self._current
        if cur is None or cur.token != token or cur.cancelled:
            return False
        cur.cancelled = True
        self.stats.cancelled += 1
        if not cur.awaiting:  # a retry was due but not yet sent: nothing holds the bus
            self._finish(cur, now)
        self._advance(now)
        return True

    def receive_data(self, data: bytes, now: float) -> None:
        if not data:
            return
        self._on_frames(self._line.flush_if_idle(now), now)
        self._on_frames(self._line.received(data, now), now)
        self._advance(now)

    def tick(self, now: float) -> None:
        """Let time pass: timeouts, retries, the turnaround delay, the idle flush."""
        self._advance(now)

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def events(self) -> list[MasterEvent]:
        out = self._events
        self._events = []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called; None when nothing is timed."""
        when: float | None = None
        cur = self._current
        if cur is not None and cur.awaiting:
            when = cur.deadline
            if cur.noisy and cur.retries_left and not cur.cancelled:
                when = min(when, self._line_free_at())
        elif cur is not None or self._queue:
            when = self._line_free_at()
        flush_at = self._line.flush_deadline()
        if flush_at is not None:
            when = flush_at if when is None else min(when, flush_at)
        return when

    def link_down(self, now: float, reason: str = "") -> None:
        """The port is gone: fail everything pending with :class:`LinkDown`."""
        was_up = self._connected
        self._connected = False
        self.stats.link_failures += was_up
        self._fail_all(LinkDown(f"link down: {reason}" if reason else "link down"), now)
        if was_up:
            self._events.append(LinkStateChanged(now + self.wall_offset, False, reason))

    def link_up(self, now: float) -> None:
        """The port is (back) open: accept requests again."""
        if self._connected or self._closed:
            return
        self._connected = True
        self._line.reset()
        self._owed.reset_guard()
        self._events.append(LinkStateChanged(now + self.wall_offset, True))

    def close(self, now: float) -> None:
        """Fail everything pending with :class:`MasterClosed`; later requests raise it."""
        if self._closed:
            return
        self._closed = True
        self._fail_all(MasterClosed("master closed"), now)

    # -- internals --------------------------------------------------------------------------

    def _fail_all(self, error: MasterError, now: float) -> None:
        cur = self._current
        if cur is not None and not cur.cancelled:
            self._events.append(RequestFailed(cur.token, cur.request, error, cur.attempts))
        self._current = None
        while self._queue:
            txn = self._queue.popleft()
            self._events.append(RequestFailed(txn.token, txn.request, error, 0))
        self._owed.clear()
        self._echo = None
        self._out.clear()
        self.decoder.reset()

    def _line_free_at(self) -> float:
        return max(self._line.free_at(), self._owed.quiet_until)

    def _ts(self, now: float) -> float:
        return now + self.wall_offset

    def _advance(self, now: float) -> None:
        self._on_frames(self._line.flush_if_idle(now), now)
        cur = self._current
        if cur is not None and cur.awaiting and now >= cur.deadline:
            self._on_deadline(cur, now)
        cur = self._current
        if cur is not None:
            if cur.awaiting and cur.noisy and cur.retries_left and not cur.cancelled:
                if now >= self._line_free_at():
                    cur.retries_left -= 1
                    self.stats.retries += 1
                    if cur.outstanding > 0:
                        # What spoiled the wait was, all but always, the attempt's own reply
                        # damaged on the line: none is owed for it any more, so a reply to the
                        # retry leaves nothing to guard against.
                        cur.outstanding -= 1
                    self._transmit(cur, now)
            elif not cur.awaiting and now >= self._line_free_at():
                self._transmit(cur, now)
        elif self._queue and now >= self._line_free_at():
            self._current = self._queue.popleft()
            self._transmit(self._current, now)

    def _on_deadline(self, cur: Transaction, now: float) -> None:
        cur.awaiting = False
        if cur.cancelled:
            self._finish(cur, now)
        elif cur.broadcast:
            self.stats.broadcasts += 1
            self._events.append(cur.broadcast_done(now))
            self._finish(cur, now)
        elif cur.retries_left:  # resent by _advance as soon as the line is free
            cur.retries_left -= 1
            self.stats.retries += 1
        else:
            self.stats.timeouts += 1
            self._events.append(cur.timed_out())
            self._finish(cur, now)

    def _transmit(self, txn: Transaction, now: float) -> None:
        self._out += txn.wire
        end = self._line.transmitted(len(txn.wire), now)
        txn.attempts += 1
        txn.sent_at = now
        txn.awaiting = True
        txn.noisy = False
        if txn.request.addr == BROADCAST:
            txn.deadline = end + self.turnaround
        else:
            txn.deadline = end + txn.timeout
            txn.outstanding += 1
        if self.discard_echo:
            self._echo = txn.request
        self._events.append(FrameSent(now + self.wall_offset, txn.request))

    def _finish(self, txn: Transaction, now: float) -> None:
        """End ``txn``; replies still owed to it will be reported as late."""
        self._owed.finished(txn, now)
        if self._current is txn:
            self._current = None

    def _on_frames(self, frames: list[Frame], now: float) -> None:
        st = self.decoder.stats
        errors = st.crc_errors + st.end_errors
        noise = errors + st.length_errors + st.abandoned + st.discarded_bytes
        if noise != self._seen_errors:
            self._seen_errors = noise
            cur = self._current
            if cur is not None and cur.awaiting:
                cur.noisy = True
            new_crc = errors - self.stats.crc_errors
            if new_crc > 0:
                self.stats.crc_errors = errors
                self._echo = None  # a damaged echo will not come back intact
                self._events.append(CrcErrorSeen(self._ts(now), new_crc))
        for frame in frames:
            self._on_frame(frame, now)

    def _on_frame(self, frame: Frame, now: float) -> None:
        kind: Literal["reply", "late", "unexpected", "echo"]
        cur = self._current
        if self._echo is not None and frame == self._echo:
            self._echo = None
            self.stats.echoes += 1
            kind = "echo"
        elif (
            cur is not None
            and cur.outstanding > 0
            and frame.tag == cur.request.tag
            and reply_fits(cur.request, frame, self.registry)
        ):
            self._echo = None
            cur.outstanding -= 1
            cur.awaiting = False
            self._line.reply_seen(now)  # the reply proves our request has left the wire
            if cur.cancelled:
                self.stats.late += 1
                kind = "late"
            else:
                self._events.append(FrameReceived(now + self.wall_offset, frame, "reply"))
                self._complete(cur, frame, now)
                self._finish(cur, now)
                return
            self._finish(cur, now)
        elif self._owed.claim(frame, now) or self._owed.is_late(frame, now, cur):
            self.stats.late += 1
            kind = "late"
        else:
            self.stats.unexpected += 1
            kind = "unexpected"
            if cur is not None and cur.awaiting and frame.addr == cur.request.addr:
                cur.noisy = True  # the addressed slave said something we cannot use
        self._events.append(FrameReceived(self._ts(now), frame, kind))

    def _complete(self, cur: Transaction, frame: Frame, now: float) -> None:
        outcome = cur.answered(frame, now)
        if isinstance(outcome, RequestFailed):
            self.stats.device_errors += 1
        else:
            self.stats.replies += 1
        self._events.append(outcome)
