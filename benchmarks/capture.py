"""Capture benchmark: write and read a pcapng capture of many frames with bounded memory.

Run from the repository root::

    .venv/bin/python benchmarks/capture.py [--frames 1000000] [--dir /tmp]

The records are made lazily (a request and its read_regs reply, alternating, 1% of them bad
bytes), written one by one with :class:`frames.io.capture.CaptureWriter`, then read back one by one
with :func:`frames.io.capture.read_capture` and checked (count, frames, statuses). It prints the
file size, MB/s and records/s both ways (CPU seconds, as the machine is shared) and the process's
peak RSS after each phase: the peak stays a few tens of MB whatever ``--frames`` is, because
neither side holds more than one record. The figures measure python-pcapng, which is pure Python.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from frames.capture import Record
from frames.codec import encode
from frames.frame import Frame
from frames.io.capture import CaptureWriter, read_capture

REQUEST = Frame(1, 3, b"\x00\x00\x04")
REPLY = Frame(1, 3, b"\x04\xd2\x08\x8e\x01\x34\x08\x00\x00")
BAD = b"\xaa\x01\x03\x03\x00\x00\x04\x00\x00"


def records(n: int) -> Iterator[Record]:
    req, rep = encode(*REQUEST), encode(*REPLY)
    t0 = 1_700_000_000.0
    for i in range(n):
        ts = t0 + i * 0.001
        if i % 100 == 99:
            yield Record(ts, BAD, "crc_error", "rx")
        elif i % 2 == 0:
            yield Record(ts, req, "ok", "tx", REQUEST)
        else:
            yield Record(ts, rep, "ok", "rx", REPLY)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--dir", default=None, help="where the temporary capture goes")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.pcapng"
        rss0 = peak_rss_mb()
        t0 = time.process_time()
        with CaptureWriter.open(path) as w:
            for rec in records(args.frames):
                w.write(rec)
        t_write = time.process_time() - t0
        rss_write = peak_rss_mb()
        size = os.path.getsize(path)
        t0 = time.process_time()
        count = ok = 0
        for rec in read_capture(path):
            count += 1
            ok += rec.frame is not None
        t_read = time.process_time() - t0
        rss_read = peak_rss_mb()
    want_ok = args.frames - args.frames // 100
    if count != args.frames or ok != want_ok:
        print(f"error: read {count} records ({ok} frames), wrote {args.frames}", file=sys.stderr)
        return 1
    mb = size / 1e6
    print(f"capture of {args.frames:,} records: {mb:.1f} MB ({size / args.frames:.0f} B/record)")
    print("| phase | CPU s | MB/s | records/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    print(f"| start | | | | {rss0:.1f} |")
    for name, t, rss in (("write", t_write, rss_write), ("read", t_read, rss_read)):
        print(f"| {name} | {t:.1f} | {mb / t:.2f} | {args.frames / t:,.0f} | {rss:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
