"""Capture files: :class:`~frames.capture.Record` s ↔ pcapng, through python-pcapng.

Why pcapng and this layout:

* One Enhanced Packet Block per record, on one interface whose link type is ``LINKTYPE_USER0``
  (147): Wireshark hands such packets to a user dissector (``framebridge dissector``).
* Timestamps in microseconds (pcapng's default resolution, so no ``if_tsresol`` option).
* Direction in the EPB flags (inbound = ``rx``, read by the master; outbound = ``tx``); a tap
  that cannot tell leaves it 0 ("not available").
* Bad bytes carry the ``err_crc`` flag bit (crc_error) and a packet comment naming the status
  (``crc_error`` / ``garbage``), followed by any note; a good frame has a comment only when it
  has a note (``late``, ``unexpected``).
* The frame format travels in the interface description as JSON, so ``decode FILE`` needs no
  format options to read a file written for a variant.

python-pcapng is pure Python: about 15-20k packets/s each way on one core (see
``benchmarks/capture.py``), far above what a serial line carries. Reading is streaming (block by
block), so memory stays bounded for any file size.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pcapng
from pcapng import blocks
from pcapng.exceptions import PcapngException

from ..capture import CaptureError, Direction, Record, Status
from ..codec import decode
from ..errors import FramesError
from ..format import DEFAULT_FORMAT, FrameFormat

__all__ = ["LINKTYPE_USER0", "CaptureReader", "CaptureWriter", "format_from_json", "read_capture"]

LINKTYPE_USER0 = 147
_INBOUND, _OUTBOUND = 1, 2
_ERR_CRC = 1 << 24  # epb_flags link-layer error bit "CRC error"
_DIR_FLAGS = {"rx": _INBOUND, "tx": _OUTBOUND, "": 0}
_APP = "framebridge"


def format_to_json(fmt: FrameFormat) -> dict[str, Any]:
    return {f.name: getattr(fmt, f.name) for f in dataclasses.fields(fmt)}


def format_from_json(raw: Any) -> FrameFormat:
    """A FrameFormat from its JSON object; unknown keys (a newer writer) are ignored."""
    if not isinstance(raw, dict):
        raise CaptureError("capture: the frame format is not a JSON object")
    known = {f.name for f in dataclasses.fields(FrameFormat)}
    try:
        return FrameFormat(**{k: v for k, v in raw.items() if k in known})
    except (FramesError, TypeError, ValueError) as exc:
        raise CaptureError(f"capture: bad frame format {raw!r}: {exc}") from None


class CaptureWriter:
    """Write records to a binary stream as pcapng (one section, one interface named ``name``)."""

    def __init__(
        self, stream: IO[bytes], fmt: FrameFormat = DEFAULT_FORMAT, *, name: str = "bus"
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.packets = 0
        self._shb = blocks.SectionHeader(options={"shb_userappl": _APP})
        self._shb.new_member(
            blocks.InterfaceDescription,
            link_type=LINKTYPE_USER0,
            options={
                "if_name": name,
                "if_description": json.dumps({"framebridge": 1, "format": format_to_json(fmt)}),
            },
        )
        try:
            self._writer = pcapng.FileWriter(stream, self._shb)
        except OSError as exc:
            raise CaptureError(f"capture: cannot write: {exc}") from None

    @classmethod
    def open(
        cls, path: str | Path, fmt: FrameFormat = DEFAULT_FORMAT, *, name: str = "bus"
    ) -> CaptureWriter:
        try:
            stream = open(path, "wb")  # noqa: SIM115 - owned by the writer, closed by close()
        except OSError as exc:
            raise CaptureError(f"capture: cannot create {path}: {exc.strerror}") from None
        return cls(stream, fmt, name=name)

    def write(self, rec: Record) -> int:
        """Append one packet; returns the bytes it took in the file (for size-bounded files)."""
        epb = self._shb.new_member(blocks.EnhancedPacket)
        us = round(rec.ts * 1_000_000)
        epb.timestamp_high, epb.timestamp_low = us >> 32, us & 0xFFFFFFFF
        epb.packet_data = rec.wire
        flags = _DIR_FLAGS[rec.direction] | (_ERR_CRC if rec.status == "crc_error" else 0)
        if flags:
            epb.options["epb_flags"] = flags
        comment: str = rec.status if rec.status != "ok" else ""
        if rec.note:
            comment = f"{comment} {rec.note}".strip()
        if comment:
            epb.options["opt_comment"] = comment
        before = self.stream.tell() if self.stream.seekable() else 0
        try:
            self._writer.write_block(epb)
        except OSError as exc:
            raise CaptureError(f"capture: cannot write: {exc}") from None
        self.packets += 1
        return (self.stream.tell() - before) if self.stream.seekable() else 0

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CaptureReader:
    """Records of a pcapng stream, read lazily block by block (bounded memory).

    ``fmt`` is the frame format from the file's interface description, or ``default`` when the
    file was written by another program; it is known once the first interface block is read.
    """

    def __init__(self, stream: IO[bytes], default: FrameFormat = DEFAULT_FORMAT) -> None:
        self.stream = stream
        self.fmt = default
        self.name = ""
        self.packets = 0

    def __iter__(self) -> Iterator[Record]:
        blocks_seen = 0
        try:
            for blk in pcapng.FileScanner(self.stream):
                blocks_seen += 1
                if isinstance(blk, blocks.InterfaceDescription):
                    self._interface(blk)
                elif isinstance(blk, blocks.EnhancedPacket):
                    self.packets += 1
                    yield self._record(blk)
        except OSError as exc:
            raise CaptureError(f"capture: cannot read: {exc}") from None
        except (PcapngException, EOFError, ValueError, struct.error) as exc:
            raise CaptureError(f"capture: not a readable pcapng file: {exc}") from None
        if not blocks_seen:
            raise CaptureError("capture: no pcapng section (an empty or truncated file)")

    def _interface(self, blk: Any) -> None:
        self.name = str(blk.options.get("if_name", ""))
        desc = blk.options.get("if_description")
        if not desc:
            return
        try:
            meta = json.loads(desc)
        except ValueError:
            return  # another program's description: keep the default format
        if isinstance(meta, dict) and meta.get("framebridge") and "format" in meta:
            self.fmt = format_from_json(meta["format"])

    def _record(self, blk: Any) -> Record:
        wire = bytes(blk.packet_data)
        comment = str(blk.options.get("opt_comment", "") or "")
        word, _, rest = comment.partition(" ")
        status: Status = "ok"
        note = comment
        if word in ("crc_error", "garbage"):
            status = word  # type: ignore[assignment]
            note = rest
        direction: Direction = ""
        flags = blk.options.get("epb_flags")
        if flags is not None:
            inout = int(flags) & 3
            direction = "rx" if inout == _INBOUND else "tx" if inout == _OUTBOUND else ""
            if status == "ok" and int(flags) & _ERR_CRC:
                status = "crc_error"
        frame = None
        if status == "ok":
            try:
                frame = decode(wire, self.fmt)
            except FramesError:
                status, note = "garbage", (note + " undecodable").strip()
        ts = blk.timestamp_high << 32 | blk.timestamp_low
        res = blk.timestamp_resolution
        return Record(
            ts * res if res != 1e-6 else ts / 1_000_000, wire, status, direction, frame, note
        )


def read_capture(path: str | Path, default: FrameFormat = DEFAULT_FORMAT) -> Iterator[Record]:
    """Every record of the file at ``path``, lazily; the file is closed when iteration ends."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the generator's with below
    except OSError as exc:
        raise CaptureError(f"capture: cannot open {path}: {exc.strerror}") from None
    with stream:
        yield from CaptureReader(stream, default)
