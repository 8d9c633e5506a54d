"""Capture records: the wire cut into frames and runs of bad bytes, and filters over them. Pure.

A capture file (``frames.io.capture``) holds one packet per :class:`Record`. A record is either
a decoded frame (``status == "ok"``) or a run of bytes the decoder could not use: ``crc_error``
when the run is one whole candidate frame whose CRC (or end byte) is wrong, ``garbage`` for
anything else. Keeping the bad bytes, rather than a count, is what lets Wireshark and
``framebridge decode`` show the same thing the line carried.

:class:`WireSegmenter` wraps the :class:`~frames.stream.StreamDecoder` (the one place that knows
how frames are found in noise) and only attributes bytes: every byte fed ends up in exactly one
record, in order. It takes ``ts`` with the bytes (no clock) and keeps bounded state: the decoder's
bound plus at most ``max_run`` bytes of a bad run, after which the run is cut into a record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from .codec import encode_frame
from .commands import STANDARD, CommandRegistry
from .errors import FramesError
from .events import CrcErrorSeen, FrameReceived, FrameSent, TrafficEvent
from .format import DEFAULT_FORMAT, FrameFormat
from .frame import Frame
from .stream import StreamDecoder

__all__ = [
    "CaptureError",
    "Direction",
    "Record",
    "RecordFilter",
    "Status",
    "WireSegmenter",
    "record_from_event",
    "split_bad_run",
]

Status = Literal["ok", "crc_error", "garbage"]
# "tx": written by the master (a request); "rx": read by the master (a reply, late or unexpected
# frame); "": not known (a passive tap sees both directions on one line).
Direction = Literal["tx", "rx", ""]


class CaptureError(FramesError):
    """A capture file cannot be read or written (not pcapng, truncated, unwritable)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One packet of a capture: when, which bytes, what they were, and which way they went."""

    ts: float  # wall-clock seconds (time.time()), microsecond resolution in files
    wire: bytes
    status: Status = "ok"
    direction: Direction = ""
    frame: Frame | None = None  # the decoded frame when status == "ok"
    note: str = ""  # free text kept in the packet comment after the status (e.g. "late")

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def split_bad_run(run: bytes, fmt: FrameFormat = DEFAULT_FORMAT) -> list[tuple[bytes, Status]]:
    """Cut a run of undecodable bytes into whole bad-CRC candidates and garbage between them.

    A candidate is a start byte whose declared length fits the format and the run; its bytes are
    a ``crc_error`` record (a corrupted frame, most likely), everything else is ``garbage``.
    """
    lay = fmt.layout
    out: list[tuple[bytes, Status]] = []
    junk_from = 0
    i = 0
    n = len(run)
    while i < n:
        if run[i] == lay.start and i + lay.header_size <= n:
            length = run[i + lay.length_offset]
            size = lay.min_size + length
            if length <= lay.max_payload and i + size <= n:
                if junk_from < i:
                    out.append((run[junk_from:i], "garbage"))
                out.append((run[i : i + size], "crc_error"))
                i += size
                junk_from = i
                continue
        i += 1
    if junk_from < n:
        out.append((run[junk_from:], "garbage"))
    return out


class WireSegmenter:
    """Bytes (with the time they arrived) → :class:`Record` s, every byte in exactly one record.

    ``direction`` is stamped on every record (a master's own link knows it; a tap does not).
    Call :meth:`flush` when the line has been idle for an inter-frame gap, as for the decoder.
    """

    def __init__(
        self,
        fmt: FrameFormat = DEFAULT_FORMAT,
        *,
        direction: Direction = "",
        max_run: int = 4096,
    ) -> None:
        self.fmt = fmt
        self.direction: Direction = direction
        self.max_run = max_run
        self.decoder = StreamDecoder(fmt)
        self._raw = b""  # bytes fed and not yet attributed; the decoder's pending is its tail
        self._bad = bytearray()  # the current run of undecodable bytes
        self._bad_ts = 0.0

    def feed(self, data: bytes, ts: float) -> list[Record]:
        return self._attribute(self.decoder.feed(data), data, ts)

    def flush(self, ts: float) -> list[Record]:
        out = self._attribute(self.decoder.flush(), b"", ts)
        out.extend(self._end_run())
        return out

    def _attribute(self, frames: list[Frame], data: bytes, ts: float) -> list[Record]:
        raw = self._raw + data
        out: list[Record] = []
        pos = 0
        for frame in frames:
            wire = encode_frame(frame, self.fmt)
            at = raw.find(wire, pos)
            if at < 0:  # cannot happen: the decoder returns frames it found in these bytes
                raise AssertionError("decoded frame not found in the bytes fed")
            self._add_bad(raw[pos:at], ts, out)
            out.extend(self._end_run())
            out.append(Record(ts, wire, "ok", self.direction, frame))
            pos = at + len(wire)
        done = len(raw) - self.decoder.pending
        self._add_bad(raw[pos:done], ts, out)
        self._raw = raw[max(done, pos) :]
        return out

    def _add_bad(self, chunk: bytes, ts: float, out: list[Record]) -> None:
        while chunk:
            if not self._bad:
                self._bad_ts = ts
            take = self.max_run - len(self._bad)
            self._bad += chunk[:take]
            chunk = chunk[take:]
            if len(self._bad) >= self.max_run:
                out.extend(self._end_run())

    def _end_run(self) -> Iterator[Record]:
        if not self._bad:
            return iter(())
        run, ts = bytes(self._bad), self._bad_ts
        self._bad.clear()
        return iter(
            [
                Record(ts, piece, status, self.direction)
                for piece, status in split_bad_run(run, self.fmt)
            ]
        )


@dataclass(frozen=True)
class RecordFilter:
    """Which records to keep: by address, by command (without the error flag), by error.

    ``addrs``/``cmds`` None keep all; a record without a frame (bad bytes) has no address or
    command, so it passes only when neither is set. ``errors`` True keeps only bad bytes and
    device error replies; False drops them; None keeps both.
    """

    addrs: frozenset[int] | None = None
    cmds: frozenset[int] | None = None
    errors: bool | None = None

    @classmethod
    def parse(
        cls,
        addrs: Iterable[int] = (),
        cmds: Iterable[str | int] = (),
        errors: bool | None = None,
        registry: CommandRegistry = STANDARD,
    ) -> RecordFilter:
        a = frozenset(addrs)
        c = frozenset(registry.resolve_code(x) & 0x7F for x in cmds)
        return cls(a or None, c or None, errors)

    def __call__(self, rec: Record) -> bool:
        frame = rec.frame
        if self.addrs is not None and (frame is None or frame.addr not in self.addrs):
            return False
        if self.cmds is not None and (frame is None or frame.base_cmd not in self.cmds):
            return False
        if self.errors is not None:
            bad = frame is None or frame.is_error
            return bad == self.errors
        return True


def record_from_event(ev: TrafficEvent, fmt: FrameFormat = DEFAULT_FORMAT) -> Record | None:
    """A master's traffic event as a record (its link knows the direction); None for link
    changes. A CRC error carries no bytes (the master keeps none): an empty ``crc_error`` packet
    whose note gives the count."""
    if isinstance(ev, FrameSent):
        return Record(ev.ts, encode_frame(ev.frame, fmt), "ok", "tx", ev.frame)
    if isinstance(ev, FrameReceived):
        note = "" if ev.kind == "reply" else ev.kind
        return Record(ev.ts, encode_frame(ev.frame, fmt), "ok", "rx", ev.frame, note)
    if isinstance(ev, CrcErrorSeen):
        return Record(ev.ts, b"", "crc_error", "rx", None, f"count={ev.count}")
    return None
