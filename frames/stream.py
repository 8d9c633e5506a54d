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

from dataclasses import dataclass
from typing import Literal

from .crc import raw_crc
from .errors import FrameValueError
from .format import DEFAULT_FORMAT, FrameFormat
from .frame import Frame

__all__ = ["DecoderStats", "StreamDecoder"]

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
        self._buf = bytearray()
        self._lay = lay
        self._crc = fmt.crc_function
        self._raw = raw_crc(fmt.crc)
        self._consts = (
            lay.start,
            lay.header_size,
            lay.length_offset,
            lay.addr_offset,
            lay.cmd_offset,
            lay.crc_from,
            lay.crc_size,
            lay.trailer_size,
            lay.max_payload,
            lay.end,
            _residue(fmt),
        )

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget buffered bytes (e.g. after reopening a port); counters are kept."""
        self.stats.discarded_bytes += len(self._buf)
        self._buf.clear()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Frame]:
        """Add bytes; return every frame they complete, in order."""
        self._buf += chunk
        out = self._scan(final=False)
        if len(self._buf) > self.max_buffer:  # only reachable with huge chunks of junk
            drop = len(self._buf) - self.max_buffer
            del self._buf[:drop]
            self.stats.discarded_bytes += drop
            self.stats.overflows += 1
        return out

    def flush(self) -> list[Frame]:
        """The line went idle: give up any incomplete frame and return what the rest holds."""
        return self._scan(final=True)

    def _scan(self, final: bool) -> list[Frame]:
        # Hot loop: constants in locals, the CRC checked as one C call over the frame *with* its
        # CRC bytes against the variant's residue where the variant has one (MODBUS: 0).
        buf = self._buf
        n = len(buf)
        start, hs, lo, ao, co, cfrom, cs, ts, maxp, endb, residue = self._consts
        cfun, cinit, ctable = self._raw
        find = buf.find
        out: list[Frame] = []
        append = out.append
        st = self.stats
        discarded = 0
        pos = 0
        while True:
            i = find(start, pos)
            if i < 0:
                discarded += n - pos
                pos = n
                break
            discarded += i - pos
            if i + hs > n:  # header not all here yet
                if final:
                    discarded += 1
                    st.abandoned += 1
                    pos = i + 1
                    continue
                pos = i
                break
            length = buf[i + lo]
            if length > maxp:
                st.length_errors += 1
                discarded += 1
                pos = i + 1
                continue
            crc_at = i + hs + length
            end = crc_at + ts
            if end > n:
                if final or (self.lookahead and self._frame_after(i + 1)):
                    st.abandoned += 1
                    discarded += 1
                    pos = i + 1
                    continue
                pos = i
                break
            if residue is not None:
                ok = cfun(buf[i + cfrom : crc_at + cs], cinit, ctable) == residue
            else:
                ok = self._crc_ok(buf, i + cfrom, crc_at)
            if not ok:
                st.crc_errors += 1
                discarded += 1
                pos = i + 1
                continue
            if endb is not None and buf[end - 1] != endb:
                st.end_errors += 1
                discarded += 1
                pos = i + 1
                continue
            append(_new_frame(Frame, (buf[i + ao], buf[i + co], bytes(buf[i + hs : crc_at]))))
            pos = end
        if pos:
            del buf[:pos]
        st.discarded_bytes += discarded
        st.frames += len(out)
        return out

    def _crc_ok(self, buf: bytearray, frm: int, crc_at: int) -> bool:
        lay = self._lay
        order: Literal["little", "big"] = "little" if lay.crc_little else "big"
        received = int.from_bytes(buf[crc_at : crc_at + lay.crc_size], order)
        return bool(self._crc(buf[frm:crc_at]) == received)

    def _frame_after(self, j: int) -> bool:
        """Is there a complete, valid frame starting at or after ``j`` in the buffer?"""
        buf = self._buf
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


def _residue(fmt: FrameFormat) -> int | None:
    """CRC over (message + its CRC bytes) when that is the same for every message, else None.

    True for reflected CRCs sent little-endian and plain ones sent big-endian (MODBUS: 0), which
    lets the hot loop check a frame with one C call and no byte juggling.
    """
    lay = fmt.layout
    order: Literal["little", "big"] = "little" if lay.crc_little else "big"
    seen = set()
    for msg in (b"", b"\x01\x02\x03", b"\xfe\x99\x00\x42\xaa", bytes(range(40))):
        crc = fmt.crc_function(msg).to_bytes(lay.crc_size, order)
        seen.add(fmt.crc_function(msg + crc))
    return seen.pop() if len(seen) == 1 else None
