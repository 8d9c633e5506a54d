"""The C parser (firmware/fb_frame.c) against the Python StreamDecoder on the same stream.

    python benchmarks/firmware_parser.py [--bytes N] [--no-callgrind]

The stream is bus traffic as a master sees it: READ_REGS requests and replies (4..41-byte
payloads) with 2% of frames corrupted and some line noise, fixed seed. Prints, for each side,
bytes/s on this machine (wall clock, best of 3) and instructions per byte counted by
``valgrind --tool=callgrind`` (stable across runs and machines of one architecture; a baseline
run with zero repetitions is subtracted, so start-up does not count). The C parser is fed one
byte per call, as from a UART interrupt; Python is measured in 64-byte chunks (how the serial
adapters read) and one byte per call.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from frames import StreamDecoder, encode  # noqa: E402

log = logging.getLogger("firmware_parser")
BENCH = ROOT / "firmware" / "build" / "fb-bench"


def traffic(size: int, seed: int = 7) -> bytes:
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        addr = rnd.randint(1, 16)
        count = rnd.randint(1, 20)
        start = rnd.randint(0, 100)
        request = encode(addr, 3, start.to_bytes(2, "little") + bytes([count]))
        reply = encode(addr, 3, bytes([count]) + rnd.randbytes(2 * count))
        for wire in (request, reply):
            frame = bytearray(wire)
            if rnd.random() < 0.02:
                frame[rnd.randrange(len(frame))] ^= 1 << rnd.randrange(8)
            out += frame
        if rnd.random() < 0.01:
            out += rnd.randbytes(rnd.randint(1, 16))
    return bytes(out[:size])


def python_feed(stream: bytes, chunk: int, reps: int) -> int:
    frames = 0
    for _ in range(reps):
        dec = StreamDecoder()
        for i in range(0, len(stream), chunk):
            frames += len(dec.feed(stream[i : i + chunk]))
    return frames


def python_rate(stream: bytes, chunk: int) -> float:
    reps = max(1, 2_000_000 // len(stream)) if chunk > 1 else 1
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        python_feed(stream, chunk, reps)
        best = min(best, time.perf_counter() - t0)
    return len(stream) * reps / best


def c_rate(path: Path, nbytes: int) -> tuple[float, int]:
    reps = max(1, 50_000_000 // nbytes)
    best = float("inf")
    frames = 0
    for _ in range(3):
        out = json.loads(
            subprocess.run(
                [str(BENCH), str(path), str(reps)], capture_output=True, check=True
            ).stdout
        )
        best = min(best, out["seconds"])
        frames = out["frames"] // reps
    return nbytes * reps / best, frames


def callgrind_ir(argv: list[str]) -> int:
    """Total instructions (Ir) of one run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", *argv],
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def per_byte(argv_with: list[str], argv_without: list[str], nbytes: int) -> float:
    return (callgrind_ir(argv_with) - callgrind_ir(argv_without)) / nbytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=200_000, help="stream size (200000)")
    parser.add_argument("--no-callgrind", action="store_true", help="skip instruction counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware"), "all"], check=True)
    stream = traffic(args.bytes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.bin"
        path.write_bytes(stream)
        c_bps, c_frames = c_rate(path, len(stream))
        py_frames = python_feed(stream, 64, 1)
        if c_frames != py_frames:
            raise SystemExit(f"frame counts differ: C {c_frames}, Python {py_frames}")
        py64 = python_rate(stream, 64)
        py1 = python_rate(stream[:50_000], 1)
        log.info(
            "stream: %d bytes, %d frames (same count from both parsers)", len(stream), c_frames
        )
        log.info("C parser, 1 byte/call:      %12.0f bytes/s", c_bps)
        log.info("Python, 64-byte chunks:     %12.0f bytes/s  (C is %.1fx)", py64, c_bps / py64)
        log.info("Python, 1 byte/call:        %12.0f bytes/s  (C is %.0fx)", py1, c_bps / py1)
        if args.no_callgrind or shutil.which("valgrind") is None:
            log.info("instructions per byte: skipped (valgrind not installed or --no-callgrind)")
            return 0
        c_ipb = per_byte([str(BENCH), str(path), "1"], [str(BENCH), str(path), "0"], len(stream))
        code = (
            "import sys; sys.path.insert(0, %r); import benchmarks.firmware_parser as b; "
            "s = open(%r, 'rb').read(); b.python_feed(s, %d, %d)"
        )
        py = sys.executable
        py_ipb = {}
        for chunk, part in ((64, len(stream)), (1, 20_000)):
            head = stream[:part]
            (Path(tmp) / f"s{chunk}.bin").write_bytes(head)
            f = str(Path(tmp) / f"s{chunk}.bin")
            py_ipb[chunk] = per_byte(
                [py, "-c", code % (str(ROOT), f, chunk, 1)],
                [py, "-c", code % (str(ROOT), f, chunk, 0)],
                part,
            )
        log.info("instructions per byte (callgrind Ir, start-up subtracted):")
        log.info("  C parser, 1 byte/call:    %8.1f", c_ipb)
        log.info("  Python, 64-byte chunks:   %8.1f  (%.1fx C)", py_ipb[64], py_ipb[64] / c_ipb)
        log.info("  Python, 1 byte/call:      %8.1f  (%.0fx C)", py_ipb[1], py_ipb[1] / c_ipb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
