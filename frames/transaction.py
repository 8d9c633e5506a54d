"""What a master remembers about transactions: the one in progress, and the replies still owed
by finished ones (late replies and the guard time). Pure; used by :mod:`frames.master`.

Why the owed replies are kept apart: a transaction that ends with attempts unanswered (timeout,
cancel, a reply to one of several attempts) may still be answered. :class:`OwedReplies` keeps
those requests for a while (``late_window``, default 2x their timeout) so their replies are
recognised as ``late``, and holds the bus quiet for a guard time after them (default: the
transaction's timeout, at least the master's) so such a reply arrives while no identical request
waits. See the master's docstring for the limit this leaves in the default frame format.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .codec import encode
from .commands import CommandRegistry
from .errors import DeviceError, FrameValueError, Timeout
from .events import ReplyReceived, RequestFailed
from .format import FrameFormat
from .frame import BROADCAST, ERROR_FLAG, Frame, TaggedFrame
from .payloads import reply_fits

__all__ = [
    "BITS_PER_CHAR",
    "OwedReplies",
    "Transaction",
    "TransactionBuilder",
    "char_time",
    "default_gap",
]

BITS_PER_CHAR = 10  # 8N1: start + 8 data + stop


def char_time(baudrate: int, bits_per_char: int = BITS_PER_CHAR) -> float:
    return bits_per_char / baudrate


def default_gap(baudrate: int, bits_per_char: int = BITS_PER_CHAR) -> float:
    """3.5 character times, the classic RTU frame gap."""
    return 3.5 * char_time(baudrate, bits_per_char)


@dataclass(eq=False, slots=True)
class Transaction:
    token: int
    request: Frame
    wire: bytes
    timeout: float
    retries_left: int
    attempts: int = 0
    sent_at: float = 0.0
    deadline: float = 0.0
    awaiting: bool = False  # an attempt is on the wire and its time is running
    outstanding: int = 0  # attempts sent and not yet answered
    cancelled: bool = False
    noisy: bool = False  # garbage or a bad reply arrived: retry as soon as the line is quiet

    @property
    def broadcast(self) -> bool:
        return self.request.addr == BROADCAST

    def answered(self, frame: Frame, now: float) -> ReplyReceived | RequestFailed:
        """The outcome ``frame`` (a reply that fits) gives: an error reply is a failure."""
        if frame.cmd & ERROR_FLAG:
            code = frame.error_code if frame.error_code is not None else 0
            err = DeviceError(code, frame.addr, frame.base_cmd)
            return RequestFailed(self.token, self.request, err, self.attempts)
        return ReplyReceived(self.token, self.request, frame, now - self.sent_at, self.attempts)

    def broadcast_done(self, now: float) -> ReplyReceived:
        """A broadcast's outcome once its turnaround has passed (no reply comes)."""
        reply = Frame(BROADCAST, self.request.cmd)
        return ReplyReceived(self.token, self.request, reply, now - self.sent_at, 1)

    def timed_out(self) -> RequestFailed:
        req = self.request
        err = Timeout(
            f"no reply from addr {req.addr} to cmd 0x{req.cmd:02x} after "
            f"{self.attempts} attempt(s) of {self.timeout:g}s"
        )
        return RequestFailed(self.token, req, err, self.attempts)


class TransactionBuilder:
    """Turns a request into a :class:`Transaction`: its command resolved, its wire bytes, its
    token (the handle its outcome event carries) and, in the tagged format, its tag (0..255,
    wrapping, one per transaction: retries keep it)."""

    def __init__(self, fmt: FrameFormat, registry: CommandRegistry) -> None:
        self.fmt = fmt
        self.registry = registry
        self._next_token = 1
        self._next_tag = 0

    def build(
        self, addr: int, cmd: int | str, data: bytes, timeout: float, retries: int
    ) -> Transaction:
        """Raises :class:`FrameValueError` (or ``UnknownCommand``) for a request that cannot
        be sent; nothing is numbered then."""
        # A plain code (the hot path) needs no registry lookup; anything else is resolved.
        code = (
            cmd if type(cmd) is int and 0 <= cmd < ERROR_FLAG else self.registry.resolve_code(cmd)
        )
        if code & ERROR_FLAG:
            raise FrameValueError(f"command 0x{code:02x} has the error flag set")
        wire = encode(addr, code, data, self.fmt)  # validates address and payload size
        if timeout <= 0 or retries < 0:
            raise FrameValueError("timeout must be > 0 and retries >= 0")
        if self.fmt.tagged:
            tag = self._next_tag
            self._next_tag = (tag + 1) & 0xFF
            request: Frame = TaggedFrame(addr, code, bytes(data), tag)
            wire = encode(addr, code, data, self.fmt, tag=tag)
        else:
            request = Frame(addr, code, bytes(data))
        txn = Transaction(self._next_token, request, wire, timeout, retries)
        self._next_token += 1
        return txn


@dataclass(eq=False)
class _Owed:
    request: Frame
    outstanding: int
    expires: float


class OwedReplies:
    """Replies finished transactions may still send, and the guard time they impose."""

    def __init__(
        self,
        registry: CommandRegistry,
        *,
        timeout: float,
        guard: float | None,
        late_window: float | None,
        max_entries: int = 64,
    ) -> None:
        self.registry = registry
        self.timeout = timeout
        self.guard = guard
        self.late_window = late_window
        self.quiet_until = float("-inf")  # the bus stays quiet until then
        self._owed: deque[_Owed] = deque(maxlen=max_entries)

    def finished(self, txn: Transaction, now: float) -> None:
        """``txn`` is over; if attempts are unanswered, remember them and start the guard."""
        if txn.outstanding <= 0:
            return
        window = txn.timeout * 2 if self.late_window is None else self.late_window
        self._owed.append(_Owed(txn.request, txn.outstanding, now + window))
        # A request may carry a tiny timeout of its own; the device is no faster for it.
        guard = max(txn.timeout, self.timeout) if self.guard is None else self.guard
        self.quiet_until = max(self.quiet_until, now + guard)

    def claim(self, frame: Frame, now: float) -> bool:
        """Is ``frame`` a reply an earlier transaction is owed? (Then it is ``late``.)"""
        owed = self._owed
        while owed and owed[0].expires <= now:
            owed.popleft()
        for entry in owed:
            if entry.request.tag == frame.tag and reply_fits(entry.request, frame, self.registry):
                entry.outstanding -= 1
                if entry.outstanding <= 0:
                    owed.remove(entry)
                return True
        return False

    def is_late(self, frame: Frame, now: float, current: Transaction | None) -> bool:
        """Late without an entry to claim: it arrived in the guard time with no transaction
        on the wire, or (tagged format) it fits the current request but carries another
        transaction's tag."""
        if current is None or not current.awaiting:
            return now < self.quiet_until
        return (
            frame.tag is not None
            and frame.tag != current.request.tag
            and reply_fits(current.request, frame, self.registry)
        )

    def clear(self) -> None:
        """The link went down: nothing is owed any more."""
        self._owed.clear()

    def reset_guard(self) -> None:
        self.quiet_until = float("-inf")
