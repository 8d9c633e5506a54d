"""StreamDecoder: bytes in any split → frames, surviving noise.

Why it looks the way it does:

* It finds candidates by the start byte, checks the declared length against ``max_payload`` and
  the CRC, and on any failure resumes **one byte after the failed start byte**. So a stray start
  byte, a corrupted frame or garbage costs only the bytes that were bad; every intact frame after
  them is recovered.
* A stray start byte followed by a large bogus length would make a naive decoder wait for bytes
  that never come while a complete, intact frame sits in the buffer behind it. Two rules prevent
  that: *lookahead* (on by default) gives the candidate up as soon as a complete CRC-valid frame
  starts after it, and :meth:`StreamDecoder.flush`, which an I/O adapter calls when the line has
  been idle for an inter-frame gap, gives up any incomplete candidate.
  Lookahead's one blind spot: a long frame whose *payload* embeds a whole valid frame and arrives
  split right after that embedded frame. Turn ``lookahead`` off for such traffic and rely on
  ``flush()``.
* Any split of the input (one byte at a time included) yields the same frames: the decoder only
  decides on bytes it has, and keeps at most one partial frame (bounded by ``max_buffer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from struct import Struct
from typing import Literal

from .codec import crc_residue
from .crc import RawCrc, raw_crc
from .errors import FrameValueError
from .format import DEFAULT_FORMAT, FrameFormat, Layout
from .frame import Frame, TaggedFrame

__all__ = ["DecoderStats", "IdleFlush", "StreamDecoder"]

_new_frame = tuple.__new__


@dataclass
class DecoderStats:
    frames: int = 0
    crc_errors: int = 0
    length_errors: int = 0
    end_errors: int = 0
    abandoned: int = 0  # incomplete candidates given up by lookahead or flush()
    discarded_bytes: int = 0
    overflows: int = 0  # times the buffer bound dropped bytes


class StreamDecoder:
    """Incremental decoder. Pure: no I/O, no clock; adapters call :meth:`flush` on idle."""

    def __init__(
        self,
        fmt: FrameFormat = DEFAULT_FORMAT,
        *,
        max_buffer: int = 4096,
        lookahead: bool = True,
    ) -> None:
        lay = fmt.layout
        if max_buffer < lay.max_size:
            raise FrameValueError(f"max_buffer must hold one whole frame ({lay.max_size} bytes)")
        self.fmt = fmt
        self.max_buffer = max_buffer
        self.lookahead = lookahead
        self.stats = DecoderStats()
        # The bytes held between calls, as immutable ``bytes``: a frame's payload is then one
        # slice (a bytearray needs a slice *and* a bytes() copy), and when nothing is pending
        # ``b"" + chunk`` is ``chunk`` itself, no copy.
        self._rest = b""
        self._final = False  # set only while flush() runs the scan
        self._lay = lay
        self._crc = fmt.crc_function
        # Everything the hot loop needs, unpacked into locals with one instruction per feed():
        # check(covered bytes .. end of frame, cinit, ctable) == residue when the CRC (and the
        # end byte, if the format has one) is right (see _frame_check); fields[n](buf, i) is
        # (addr, cmd, data) of the frame at i with an n-byte payload, one C call whose tuple
        # becomes the Frame. The loop finds the length byte last in the header and reads
        # fields[length] for the max_payload check.
        if lay.length_offset != lay.header_size - 1:
            raise AssertionError("the length byte is not the header's last byte")
        self._consts = (
            lay.start,
            lay.header_size,
            lay.length_offset,
            lay.crc_from,
            lay.min_size,
            *_frame_check(fmt),
            _field_readers(lay),
            Frame if lay.tag_offset is None else TaggedFrame,
        )

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._rest)

    def reset(self) -> None:
        """Forget buffered bytes (e.g. after reopening a port); counters are kept."""
        self.stats.discarded_bytes += len(self._rest)
        self._rest = b""

    def flush(self) -> list[Frame]:
        """The line went idle: give up any incomplete frame and return what the rest holds."""
        self._final = True
        try:
            return self.feed(b"")
        finally:
            self._final = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Frame]:
        """Add bytes; return every frame they complete, in order."""
        # The hot loop, inline (with 64-byte chunks the per-call cost is a fifth of the total).
        # The next frame usually starts right where the last one ended, so that byte is tested
        # before searching; the CRC is one C call over the frame *with* its CRC bytes compared
        # with the variant's residue where it has one (MODBUS: 0); the Frame is made with
        # ``tuple.__new__`` from the fields' tuple, skipping ``Frame.__new__``.
        data = self._rest + chunk
        n = len(data)
        start, hs, lo, cfrom, mins, check, cinit, ctable, residue, fields, cls = self._consts
        final = self._final
        out: list[Frame] = []
        append = out.append
        new = _new_frame
        discarded = 0
        pos = 0
        while pos < n:
            if data[pos] == start:
                i = pos
            else:
                i = data.find(start, pos)
                if i < 0:
                    discarded += n - pos
                    pos = n
                    break
                discarded += i - pos
            try:  # free unless raised: both checks below cost nothing on the common path
                length = data[i + lo]  # the header's last byte
                read = fields[length]  # one reader per allowed payload length
            except IndexError:
                if i + hs > n:  # header not all here yet
                    if final:
                        discarded += 1
                        self.stats.abandoned += 1
                        pos = i + 1
                        continue
                    pos = i
                    break
                self.stats.length_errors += 1  # length > max_payload
                discarded += 1
                pos = i + 1
                continue
            end = i + mins + length  # min_size: header + CRC (+ end byte)
            if end > n:
                # Lookahead: only a start byte early enough to begin a whole frame (one C call
                # to rule out, as it usually is) is worth the full check.
                if final or (
                    self.lookahead
                    and data.find(start, i + 1, n - mins + 1) >= 0
                    and self._frame_after(data, i + 1)
                ):
                    self.stats.abandoned += 1
                    discarded += 1
                    pos = i + 1
                    continue
                pos = i
                break
            # One call checks the CRC and (for formats that have one) the end byte.
            if check(data[i + cfrom : end], cinit, ctable) != residue:
                self._count_bad(data, end)
                discarded += 1
                pos = i + 1
                continue
            append(new(cls, read(data, i)))
            pos = end
        st = self.stats
        st.frames += len(out)
        if pos < n:
            rest = data[pos:] if pos else data
            if len(rest) > self.max_buffer:  # only reachable with huge chunks of junk
                drop = len(rest) - self.max_buffer
                rest = rest[drop:]
                discarded += drop
                st.overflows += 1
            self._rest = rest
        else:
            self._rest = b""
        if discarded:
            st.discarded_bytes += discarded
        return out

    def _count_bad(self, data: bytes, end: int) -> None:
        """A candidate failed the check: count it as a bad end byte or a CRC error."""
        lay = self._lay
        if lay.end is not None and data[end - 1] != lay.end:
            self.stats.end_errors += 1
        else:
            self.stats.crc_errors += 1

    def _crc_ok(self, buf: bytes, frm: int, crc_at: int) -> bool:
        lay = self._lay
        order: Literal["little", "big"] = "little" if lay.crc_little else "big"
        received = int.from_bytes(buf[crc_at : crc_at + lay.crc_size], order)
        return bool(self._crc(buf[frm:crc_at]) == received)

    def _frame_after(self, buf: bytes, j: int) -> bool:
        """Is there a complete, valid frame starting at or after ``j`` in ``buf``?"""
        n = len(buf)
        lay = self._lay
        while True:
            j = buf.find(lay.start, j)
            if j < 0 or j + lay.header_size > n:
                return False
            length = buf[j + lay.length_offset]
            crc_at = j + lay.header_size + length
            end = crc_at + lay.trailer_size
            if (
                length <= lay.max_payload
                and end <= n
                and self._crc_ok(buf, j + lay.crc_from, crc_at)
                and (lay.end is None or buf[end - 1] == lay.end)
            ):
                return True
            j += 1


class IdleFlush:
    """A decoder with the inter-frame-gap rule: ``idle_flush`` seconds of silence give up a
    partial frame. Pure (``now`` is passed in); the slave-side cores (:class:`~frames.slave.Slave`,
    the simulator's bus view) keep the rule here so no adapter re-writes it: they call
    :meth:`feed` with what arrived, :meth:`tick` at :meth:`next_deadline`.
    """

    def __init__(self, decoder: StreamDecoder, idle_flush: float) -> None:
        if idle_flush <= 0:
            raise FrameValueError("idle_flush must be > 0")
        self.decoder = decoder
        self.idle_flush = idle_flush
        self._last_rx = float("-inf")

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> list[Frame]:
        """Frames completed by ``data``, after giving up a partial frame the line left idle."""
        dec = self.decoder
        frames = dec.flush() if dec.pending and now >= self._last_rx + self.idle_flush else []
        self._last_rx = now
        if frames:
            return frames + dec.feed(data)
        return dec.feed(data)

    @property
    def last_rx(self) -> float:
        """When bytes last arrived (``-inf`` before any)."""
        return self._last_rx

    def reset(self) -> None:
        """Forget any partial frame and when bytes last arrived (the port was reopened)."""
        self.decoder.reset()
        self._last_rx = float("-inf")

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run: only while a partial frame is held."""
        return self._last_rx + self.idle_flush if self.decoder.pending else None

    def tick(self, now: float) -> list[Frame]:
        """Give up a partial frame if the line has been idle long enough."""
        if self.decoder.pending and now >= self._last_rx + self.idle_flush:
            return self.decoder.flush()
        return []


def _frame_check(fmt: FrameFormat) -> tuple[RawCrc, int, object, int]:
    """``(check, init, table, residue)``: ``check(covered + crc, init, table) == residue`` iff the
    CRC bytes are right.

    Where the variant has a residue (MODBUS: 0) that is crcmod's C function itself, one call per
    frame; otherwise a Python function comparing the computed and the received CRC.
    """
    residue = crc_residue(fmt)
    endb = fmt.layout.end
    if residue is not None and endb is None:
        fun, init, table = raw_crc(fmt.crc)
        return fun, init, table, residue
    crc = fmt.crc_function
    size = fmt.layout.crc_size
    tail = 0 if endb is None else 1
    order: Literal["little", "big"] = "little" if fmt.layout.crc_little else "big"

    def check(frame: bytes | bytearray, _init: int, _table: object) -> int:
        # ``frame`` runs from the first CRC-covered byte to the end of the frame.
        if tail and frame[-1] != endb:
            return 1
        body, crc_bytes = frame[: -size - tail], frame[len(frame) - size - tail : len(frame) - tail]
        return 0 if crc(body) == int.from_bytes(crc_bytes, order) else 1

    return check, 0, None, 0


_Reader = Callable[[bytes, int], tuple[int, int, bytes] | tuple[int, int, bytes, int]]


@cache
def _field_readers(lay: Layout) -> tuple[_Reader, ...]:
    """For each payload length n, a function reading ``(addr, cmd, data)`` of a frame at i
    (``(addr, cmd, data, tag)`` for a tagged format, the tuple a :class:`TaggedFrame` is)."""
    if not lay.addr_offset < lay.cmd_offset < lay.header_size:
        raise AssertionError("the layout's fields are not in addr, cmd, data order")
    gap = lay.cmd_offset - lay.addr_offset - 1
    if lay.tag_offset is None:
        head = f"{lay.addr_offset}xB{gap}xB{lay.header_size - lay.cmd_offset - 1}x"
        return tuple(Struct(f"{head}{n}s").unpack_from for n in range(lay.max_payload + 1))
    if lay.tag_offset != lay.cmd_offset + 1 or lay.length_offset != lay.tag_offset + 1:
        raise AssertionError("the tagged layout is not addr, cmd, tag, len")
    head = f"{lay.addr_offset}xB{gap}xBBx"
    return tuple(_tagged_reader(Struct(f"{head}{n}s")) for n in range(lay.max_payload + 1))


def _tagged_reader(layout: Struct) -> _Reader:
    unpack = layout.unpack_from

    def read(buf: bytes, i: int) -> tuple[int, int, bytes, int]:
        addr, cmd, tag, data = unpack(buf, i)
        return addr, cmd, data, tag

    return read
