"""The half-duplex line as a master sees it: when it may talk, and when a partial frame is given up.

Pure (``now`` is passed in); used by :class:`~frames.master.MasterCore`. Kept apart from the
transaction logic because these rules are about the wire, not about requests:

* the line is quiet ``gap`` seconds after the last byte either way (our transmission's estimated
  end, or the last byte received), the inter-frame gap that keeps frames apart;
* a reply proves our request has left the wire, whatever the estimate said (a pty or a USB
  adapter has no real baud rate), so it ends "busy" at once;
* what arrives goes through the same :class:`~frames.stream.IdleFlush` rule as the slave side:
  ``idle_flush`` seconds of silence give up a partial frame.
"""

from __future__ import annotations

from .errors import FrameValueError
from .frame import Frame
from .stream import IdleFlush, StreamDecoder
from .transaction import char_time, default_gap

__all__ = ["HalfDuplexLine"]


class HalfDuplexLine:
    """When the line is free for the next request, and the decoder with its idle flush."""

    def __init__(
        self,
        decoder: StreamDecoder,
        *,
        baudrate: int,
        gap: float | None = None,
        idle_flush: float | None = None,
    ) -> None:
        self._rx = IdleFlush(decoder, 1.0)  # set for real by retime()
        self.busy_until = float("-inf")  # end of our last transmission
        self.retime(baudrate, gap=gap, idle_flush=idle_flush)

    def retime(
        self, baudrate: int, *, gap: float | None = None, idle_flush: float | None = None
    ) -> None:
        """The timing derived from ``baudrate`` (at start, and when the port's rate changes):
        the character time, and the gap and idle flush unless the caller fixes them."""
        if baudrate <= 0:
            raise FrameValueError("baudrate must be positive")
        new_gap = default_gap(baudrate) if gap is None else gap
        if new_gap < 0:
            raise FrameValueError("gap must be >= 0")
        # A floor keeps scheduler jitter on a pty from splitting a frame that arrived in pieces.
        flush = max(new_gap, 0.005) if idle_flush is None else idle_flush
        if flush <= 0:
            raise FrameValueError("idle_flush must be > 0")
        self.char_time = char_time(baudrate)
        self.gap = new_gap
        self._rx.idle_flush = flush

    @property
    def decoder(self) -> StreamDecoder:
        return self._rx.decoder

    @property
    def idle_flush(self) -> float:
        return self._rx.idle_flush

    def transmitted(self, nbytes: int, now: float) -> float:
        """We start sending ``nbytes`` at ``now``; returns the estimated end of transmission."""
        end = now + nbytes * self.char_time
        self.busy_until = end
        return end

    def reply_seen(self, now: float) -> None:
        """A reply arrived: our request has left the wire, whatever the estimate said."""
        if self.busy_until > now:
            self.busy_until = now

    def free_at(self) -> float:
        """When the inter-frame gap after the last byte either way has passed."""
        return max(self.busy_until, self._rx.last_rx) + self.gap

    def flush_if_idle(self, now: float) -> list[Frame]:
        """Frames left after giving up a partial frame the line has left idle long enough."""
        return self._rx.tick(now)

    def received(self, data: bytes, now: float) -> list[Frame]:
        """Frames completed by ``data`` (call :meth:`flush_if_idle` first)."""
        return self._rx.feed(data, now)

    def flush_deadline(self) -> float | None:
        """When :meth:`flush_if_idle` has work: only while a partial frame is held."""
        return self._rx.next_deadline()

    def reset(self) -> None:
        """The port was (re)opened: nothing is held, nothing was sent or received."""
        self._rx.reset()
        self.busy_until = float("-inf")
