"""Reading and writing hold one record at a time: peak memory does not grow with the file.

The full-size check (1,000,000 records, MB/s and peak RSS) is ``benchmarks/capture.py``.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from frames.capture import Record
from frames.codec import encode
from frames.frame import Frame
from frames.io.capture import CaptureWriter, read_capture

FRAME = Frame(1, 3, b"\x04\xd2\x08\x8e\x01\x34\x08\x00\x00")


def records(n: int) -> Iterator[Record]:
    wire = encode(*FRAME)
    return (Record(1e9 + i / 1000, wire, "ok", "rx", FRAME) for i in range(n))


def peaks(path: Path, n: int) -> tuple[int, int, int]:
    """(write peak, read peak, records read), traced bytes."""
    tracemalloc.start()
    try:
        with CaptureWriter.open(path) as w:
            for rec in records(n):
                w.write(rec)
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        count = sum(1 for rec in read_capture(path) if rec.frame == FRAME)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return write_peak, read_peak, count


def test_peak_memory_is_flat_in_the_number_of_records(tmp_path: Path) -> None:
    # python-pcapng's flag objects are reference cycles, freed by the cyclic collector in its
    # own time: memory is bounded by that cadence, not by the file. 10x the records must not
    # cost anything like 10x the memory.
    small = peaks(tmp_path / "small.pcapng", 400)
    large = peaks(tmp_path / "large.pcapng", 4000)
    assert (small[2], large[2]) == (400, 4000)
    for s, big in zip(small[:2], large[:2], strict=True):
        assert big < 2 * s + 64 * 1024, (small, large)
