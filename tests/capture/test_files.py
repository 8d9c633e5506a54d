"""pcapng files: round trip, what the blocks carry, bad files, rotation; decode FILE."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pcapng
import pytest
from pcapng import blocks

from frames.capture import CaptureError, Record, WireSegmenter
from frames.cli import frame_to_json
from frames.format import DEFAULT_FORMAT, FrameFormat
from frames.io.capture import CaptureReader, CaptureWriter, read_capture
from frames.io.capture_rotate import TrafficRecorder

from .helpers import GOOD, noisy_stream, records_of


def write(path: Path, recs: list[Record], fmt: FrameFormat = DEFAULT_FORMAT) -> None:
    with CaptureWriter.open(path, fmt, name="bus0") as w:
        for r in recs:
            w.write(r)


def noisy_records() -> list[Record]:
    data, _ = noisy_stream(7)
    seg = WireSegmenter()
    return seg.feed(data, 1_700_000_000.123456) + seg.flush(1_700_000_001.0)


def test_round_trip_keeps_bytes_status_direction_note_and_microseconds(tmp_path: Path) -> None:
    recs = [*records_of(GOOD), *noisy_records()]
    recs.append(Record(1_700_000_002.000001, recs[0].wire, "ok", "rx", recs[0].frame, "late"))
    write(tmp_path / "a.pcapng", recs)
    back = list(read_capture(tmp_path / "a.pcapng"))
    assert len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        assert (a.wire, a.status, a.direction, a.frame, a.note) == (
            b.wire, b.status, b.direction, b.frame, b.note
        )  # fmt: skip
        assert round(a.ts * 1e6) == round(b.ts * 1e6)


def test_blocks_are_user0_with_flags_and_comments(tmp_path: Path) -> None:
    recs = noisy_records()
    recs.insert(0, Record(1.0, GOOD[0].data, "ok", "tx", None))
    write(tmp_path / "b.pcapng", recs)
    with open(tmp_path / "b.pcapng", "rb") as f:
        found = list(pcapng.FileScanner(f))
    idb = next(b for b in found if isinstance(b, blocks.InterfaceDescription))
    assert idb.link_type == 147 and idb.options["if_name"] == "bus0"
    epbs = [b for b in found if isinstance(b, blocks.EnhancedPacket)]
    assert epbs[0].options["epb_flags"].inout == "outbound"  # outbound: the master sent it
    for rec, epb in zip(recs[1:], epbs[1:], strict=True):
        comment = epb.options.get("opt_comment")
        assert comment == (None if rec.ok else rec.status)
        if rec.status == "crc_error":
            assert epb.options["epb_flags"].err_crc


def test_the_frame_format_travels_in_the_file(tmp_path: Path) -> None:
    fmt = FrameFormat(start=0x7E, crc="crc-ccitt-false", crc_byteorder="big", end=0x0D)
    from frames.codec import encode

    wire = encode(5, 3, b"\x01\x02", fmt)
    write(tmp_path / "c.pcapng", [Record(1.0, wire)], fmt)
    with open(tmp_path / "c.pcapng", "rb") as f:
        reader = CaptureReader(f)
        (rec,) = list(reader)
    assert reader.fmt == fmt and rec.ok and rec.frame is not None and rec.frame.addr == 5


@pytest.mark.parametrize("content", [b"", b"not a capture at all", b"\x0a\x0d\x0d\x0a\x00"])
def test_bad_files_raise_capture_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.pcapng").write_bytes(content)
    with pytest.raises(CaptureError):
        list(CaptureReader(io.BytesIO(content)))
    if content:
        with pytest.raises(CaptureError):
            list(read_capture(tmp_path / "bad.pcapng"))
    with pytest.raises(CaptureError):
        list(read_capture(tmp_path / "missing.pcapng"))


def test_decode_cli_reads_a_capture(tmp_path: Path) -> None:
    recs = [*records_of(GOOD), *noisy_records()]
    write(tmp_path / "d.pcapng", recs)
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "decode", str(tmp_path / "d.pcapng")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1  # the capture holds bad bytes
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(lines) == len(recs)
    for rec, line in zip(recs, lines, strict=True):
        assert line["hex"] == rec.wire.hex()
        if rec.frame is not None:
            want = frame_to_json(rec.frame)
            assert {k: line[k] for k in want} == want
        else:
            assert line["status"] == rec.status


def test_rotation_bounds_size_age_and_count(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    rec = TrafficRecorder(
        tmp_path, "bus0", max_bytes=600, max_age_s=10, keep=3, clock=lambda: now[0]
    )
    other = tmp_path / "bus0-x-20240101T000000Z-000001.pcapng"
    other.write_bytes(b"another bus's file")
    for r in records_of(GOOD * 3):
        rec.write(r)
        now[0] += 0.01
    files = sorted(tmp_path.glob("bus0-2*.pcapng"))
    assert len(files) == 3 and rec.files > 3
    assert all(f.stat().st_size < 600 + 200 for f in files)
    assert other.exists()
    before = rec.files
    now[0] += 11  # max_age_s passed: the next record opens a new file
    rec.write(records_of(GOOD)[0])
    assert rec.files == before + 1
    rec.close()
    assert sum(len(list(read_capture(f))) for f in files if f.exists()) > 0


def test_unwritable_directory_is_logged_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = TrafficRecorder(blocker / "sub", "bus0")
    rec.write(records_of(GOOD)[0])  # must not raise
    assert rec.records == 0
