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

Timing rules (why each exists):

* **One transaction on the wire at a time.** A half-duplex bus cannot carry two; further requests
  wait in a bounded FIFO queue (``max_queue``) and leave in order.
* **Inter-frame gap** before every request: the line must have been quiet (nothing sent or
  received) for ``gap`` seconds, by default 3.5 character times at ``baudrate`` (10 bits/char).
  This also keeps a request from colliding with a late reply still on the wire. "Sent" ends at
  the estimated end of transmission (length x character time), or when the reply arrives if that
  is sooner: a reply proves the request has left the wire, whatever the estimate said (a pty or a
  USB adapter has no real baud rate; without this, every request there would wait out a phantom
  transmission time after the previous reply).
* **Timeout** per attempt, counted from the end of the request's transmission; then up to
  ``retries`` more attempts. A reply to *any* attempt of the current transaction is accepted.
* **Early retry**: garbage, a CRC failure or a malformed reply from the addressed slave while
  waiting means the reply was hit; the request is resent as soon as the line is quiet for a gap
  instead of after the full timeout (a good reply arriving meanwhile still wins).
* **Matching**: a reply must come from the addressed slave with the same command (or
  ``cmd | 0x80``, an error reply), and for the standard commands its payload must agree with the
  request (read count, echoed register...). Anything else is counted and reported as
  ``unexpected``; a frame that answers an earlier timed-out or cancelled request is ``late``.
* **Late replies and the guard time.** The default frame carries no transaction id, so a reply
  to a timed-out request that arrives while an *identical* request waits looks exactly like its
  reply. So after a transaction ends with attempts unanswered (timeout, cancel, or a reply to
  one of several attempts), the bus stays quiet for ``guard`` seconds (default: that
  transaction's timeout, at least the master's ``timeout``) and whatever arrives meanwhile is
  ``late``. A reply later than
  timeout + guard can still be taken for the next identical request's: only the tagged format
  (``FrameFormat(tagged=True)``) rules that out. There every transaction gets the next tag
  (0..255, wrapping), retries keep it, the slave echoes it, and a reply with another tag is
  ``late`` whenever it arrives.
* **Broadcast** (address 0) expects no reply: the transaction ends after ``turnaround`` seconds,
  which gives slaves time to act before the next request.
* **Cancel** of a request already on the wire keeps the bus busy until its reply or its timeout,
  so the next request can never read the cancelled one's reply.
* **Idle flush**: when no byte has arrived for ``idle_flush`` seconds, the stream decoder gives up
  any partial frame, so a stray start byte cannot stall the next reply.
* **RS-485 local echo** (``discard_echo``): the first frame equal to what we just sent is our own
  echo and is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from .codec import encode
from .commands import STANDARD, CommandRegistry
from .errors import (
    DeviceError,
    FrameValueError,
    LinkDown,
    MasterClosed,
    MasterError,
    QueueFull,
    Timeout,
)
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
from .frame import BROADCAST, ERROR_FLAG, Frame, TaggedFrame
from .payloads import (
    parse_read_registers,
    read_registers_request,
    reply_fits,
    write_register_request,
    write_registers_request,
)
from .stream import StreamDecoder
from .transaction import OwedReplies, Transaction, char_time, default_gap

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
        if baudrate <= 0:
            raise FrameValueError("baudrate must be positive")
        if timeout <= 0 or retries < 0 or turnaround < 0 or max_queue < 1:
            raise FrameValueError("timeout must be > 0, retries/turnaround >= 0, max_queue >= 1")
        if guard is not None and guard < 0:
            raise FrameValueError("guard must be >= 0")
        self.fmt = fmt
        self.registry = registry
        self.timeout = timeout
        self.retries = retries
        self.char_time = char_time(baudrate)
        self.gap = default_gap(baudrate) if gap is None else gap
        if self.gap < 0:
            raise FrameValueError("gap must be >= 0")
        # A floor keeps scheduler jitter on a pty from splitting a frame that arrived in pieces.
        self.idle_flush = max(self.gap, 0.005) if idle_flush is None else idle_flush
        self.turnaround = turnaround
        self.discard_echo = discard_echo
        self.max_queue = max_queue
        self.wall_offset = wall_offset  # added to ``now`` for traffic events' wall-clock ``ts``
        self.stats = MasterStats()
        self.decoder = StreamDecoder(fmt)
        self._queue: deque[Transaction] = deque()
        self._current: Transaction | None = None
        # Late replies and the guard time: quiet after a transaction ends with attempts
        # unanswered (``guard``; None: its timeout, at least ``timeout``).
        self._owed = OwedReplies(registry, timeout=timeout, guard=guard, late_window=late_window)
        self._echo: Frame | None = None
        self._out = bytearray()
        self._events: list[MasterEvent] = []
        self._next_token = 1
        self._next_tag = 0  # the tagged format's transaction tag, 0..255 wrapping
        self._line_busy_until = float("-inf")  # end of our last transmission
        self._last_rx = float("-inf")
        self._connected = connected
        self._closed = False
        self._seen_errors = 0

    # -- public API -------------------------------------------------------------------------

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
        # A plain code (the hot path) needs no registry lookup; anything else is resolved.
        code = (
            cmd if type(cmd) is int and 0 <= cmd < ERROR_FLAG else self.registry.resolve_code(cmd)
        )
        if code & ERROR_FLAG:
            raise FrameValueError(f"command 0x{code:02x} has the error flag set")
        wire = encode(addr, code, data, self.fmt)  # validates address and payload size
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"{len(self._queue)} requests already waiting for the bus")
        t = self.timeout if timeout is None else timeout
        r = self.retries if retries is None else retries
        if t <= 0 or r < 0:
            raise FrameValueError("timeout must be > 0 and retries >= 0")
        if self.fmt.tagged:
            tag = self._next_tag
            self._next_tag = (tag + 1) & 0xFF
            request: Frame = TaggedFrame(addr, code, bytes(data), tag)
            wire = encode(addr, code, data, self.fmt, tag=tag)
        else:
            request = Frame(addr, code, bytes(data))
        txn = Transaction(self._next_token, request, wire, t, r)
        self._next_token += 1
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
        dec = self.decoder
        if dec.pending and now >= self._last_rx + self.idle_flush:
            self._on_frames(dec.flush(), now)
        self._last_rx = now
        self._on_frames(dec.feed(data), now)
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
        if self.decoder.pending:
            flush_at = self._last_rx + self.idle_flush
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
        self.decoder.reset()
        self._last_rx = float("-inf")
        self._line_busy_until = float("-inf")
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
        return max(max(self._line_busy_until, self._last_rx) + self.gap, self._owed.quiet_until)

    def _ts(self, now: float) -> float:
        return now + self.wall_offset

    def _advance(self, now: float) -> None:
        dec = self.decoder
        if dec.pending and now >= self._last_rx + self.idle_flush:
            self._on_frames(dec.flush(), now)
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
            self._events.append(
                ReplyReceived(
                    cur.token, cur.request, Frame(BROADCAST, cur.request.cmd), now - cur.sent_at, 1
                )
            )
            self._finish(cur, now)
        elif cur.retries_left:  # resent by _advance as soon as the line is free
            cur.retries_left -= 1
            self.stats.retries += 1
        else:
            self.stats.timeouts += 1
            req = cur.request
            err = Timeout(
                f"no reply from addr {req.addr} to cmd 0x{req.cmd:02x} after "
                f"{cur.attempts} attempt(s) of {cur.timeout:g}s"
            )
            self._events.append(RequestFailed(cur.token, req, err, cur.attempts))
            self._finish(cur, now)

    def _transmit(self, txn: Transaction, now: float) -> None:
        wire = txn.wire
        self._out += wire
        end = now + len(wire) * self.char_time
        self._line_busy_until = end
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
            if self._line_busy_until > now:  # the reply proves our request has left the wire
                self._line_busy_until = now
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
        if frame.cmd & ERROR_FLAG:
            self.stats.device_errors += 1
            code = frame.error_code if frame.error_code is not None else 0
            err = DeviceError(code, frame.addr, frame.base_cmd)
            self._events.append(RequestFailed(cur.token, cur.request, err, cur.attempts))
        else:
            self.stats.replies += 1
            self._events.append(
                ReplyReceived(cur.token, cur.request, frame, now - cur.sent_at, cur.attempts)
            )
