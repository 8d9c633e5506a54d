"""``framebridge dissector`` and ``framebridge replay``, and the capture side of ``decode`` and
``monitor`` (reading files, filters, printing records).

Exit codes: 0 done, 2 bad arguments or an unreadable capture.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from ..capture import Record, RecordFilter, WireSegmenter
from ..cli import add_format_arguments, format_from_args, frame_to_json
from ..commands import STANDARD, CommandRegistry
from ..devicemap import load_device_map
from ..dissector import generate_dissector
from ..errors import FramesError
from ..format import FrameFormat
from ..replay import ReplayBook
from .capture import CaptureReader, CaptureWriter, read_capture

__all__ = [
    "CaptureMonitor",
    "add_filter_arguments",
    "filter_from_args",
    "is_capture_file",
    "print_capture",
    "record_line",
    "register_names",
]

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def is_capture_file(path: str) -> bool:
    """True if ``path`` is a readable file starting like pcapng (a Section Header Block)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == PCAPNG_MAGIC
    except OSError:
        return False


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("filters")
    g.add_argument("--addr", dest="f_addr", type=int, action="append", default=[], metavar="N")
    g.add_argument(
        "--cmd", dest="f_cmd", action="append", default=[], metavar="CMD", help="name or number"
    )
    e = g.add_mutually_exclusive_group()
    e.add_argument(
        "--errors", dest="f_errors", action="store_const", const=True, default=None,
        help="only CRC errors, garbage and device error replies",
    )  # fmt: skip
    e.add_argument("--no-errors", dest="f_errors", action="store_const", const=False)


def filter_from_args(
    args: argparse.Namespace, registry: CommandRegistry = STANDARD
) -> RecordFilter:
    return RecordFilter.parse(args.f_addr, args.f_cmd, args.f_errors, registry)


def record_json(rec: Record, registry: CommandRegistry = STANDARD) -> dict[str, Any]:
    extra: dict[str, Any] = {"ts": round(rec.ts, 6), "hex": rec.wire.hex()}
    if rec.direction:
        extra["dir"] = rec.direction
    if rec.note:
        extra["note"] = rec.note
    if rec.frame is not None:
        return frame_to_json(rec.frame, registry, **extra)
    return {"status": rec.status, **extra}


def record_line(rec: Record, registry: CommandRegistry = STANDARD, as_json: bool = True) -> str:
    if as_json:
        return json.dumps(record_json(rec, registry))
    from .cli import monitor_line  # the monitor's own format (that module imports this one)

    stamp = dt.datetime.fromtimestamp(rec.ts).isoformat(timespec="microseconds")
    way = f" {rec.direction}" if rec.direction else ""
    frame = rec.frame
    if frame is None:
        return f"{stamp}{way} {rec.status.upper()} {len(rec.wire)} byte(s) hex={rec.wire.hex()}"
    line = monitor_line(rec.ts, frame, rec.wire, registry, False)
    note = f" [{rec.note}]" if rec.note else ""
    return line.replace(" ", way + " ", 1) + note


def print_capture(path: str, out: TextIO, keep: RecordFilter, as_json: bool = True) -> int:
    """``decode FILE``: every kept record of a capture, one line each. Exit 1 if any was bad."""
    bad = 0
    try:
        for rec in read_capture(path):
            bad += not rec.ok
            if keep(rec):
                print(record_line(rec, STANDARD, as_json), file=out)
    except FramesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if bad else 0


def register_names(name: str) -> dict[int, str]:
    """Register address → name from a device map (a shipped name or a TOML path)."""
    return {r.address: r.name for r in load_device_map(name).registers}


def cmd_dissector(args: argparse.Namespace) -> int:
    try:
        fmt = format_from_args(args)
        names: Mapping[int, str] = {}
        for name in args.device_map:
            names = {**names, **register_names(name)}
        text = generate_dissector(fmt, STANDARD, registers=names)
    except Exception as exc:  # the profile loader has its own error tree
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _paced(records: Iterable[Record], speed: float) -> Iterator[Record]:
    """Records at their recorded pace divided by ``speed`` (0: as fast as possible)."""
    t0: float | None = None
    wall0 = time.monotonic()
    for rec in records:
        if speed > 0:
            if t0 is None:
                t0 = rec.ts
            wait = wall0 + (rec.ts - t0) / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # pacing output, not synchronisation
        yield rec


def cmd_replay(args: argparse.Namespace) -> int:
    keep = filter_from_args(args)
    if args.sim:
        return _replay_sim(args)
    try:
        for rec in _paced(read_capture(args.file), args.speed):
            if keep(rec):
                print(record_line(rec, STANDARD, not args.text), flush=True)
    except FramesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _replay_sim(args: argparse.Namespace) -> int:
    from .replay_pty import ReplayPty

    try:
        with open(args.file, "rb") as stream:
            reader = CaptureReader(stream)
            book = ReplayBook(reader)
    except (OSError, FramesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        pty = ReplayPty(book, reader.fmt, speed=args.speed, link=args.link)
        await pty.start()
        print(f"{args.link or pty.path}\treplay\t{pty.path}\trequests={book.requests}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except TimeoutError:
            pass
        finally:
            await pty.close()
        print(f"answered {pty.answered}, unknown {pty.unknown}", file=sys.stderr)

    asyncio.run(serve())
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("dissector", help="print a Wireshark Lua dissector for the frame format")
    p.add_argument(
        "--device-map", action="append", default=[], metavar="NAME",
        help="name registers from this device map (shipped name or .toml path)",
    )  # fmt: skip
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    add_format_arguments(p)
    p.set_defaults(func=cmd_dissector)

    p = sub.add_parser(
        "replay",
        help="play a capture back: to stdout, or as a pty whose devices answer as recorded",
        description='Into the bridge: a bus with url = "replay:///path/file.pcapng?speed=10".',
    )
    p.add_argument("file", metavar="FILE.pcapng")
    p.add_argument(
        "--speed", type=float, default=0.0, help="1 = recorded pace, 10 = 10x, 0 = no waiting"
    )
    p.add_argument("--text", action="store_true", help="text lines instead of JSON")
    p.add_argument("--sim", action="store_true", help="serve a pty answering recorded requests")
    p.add_argument("--link", help="with --sim: also make this symlink to the pty")
    p.add_argument("--duration", type=float, default=None, help="with --sim: stop after S s")
    add_filter_arguments(p)
    p.set_defaults(func=cmd_replay)


class CaptureMonitor:
    """``monitor`` with ``--write`` or filters: every record printed if kept, written if asked.

    Same interface as :class:`frames.io.cli.Monitor` (``feed``, ``idle``, ``frames``,
    ``decoder``), so the sniffing loop is shared.
    """

    def __init__(
        self,
        fmt: FrameFormat,
        out: TextIO,
        *,
        as_json: bool = False,
        keep: RecordFilter | None = None,
        write: str | None = None,
        name: str = "bus",
        idle_flush: float = 0.005,
        limit: int | None = None,
    ) -> None:
        self.out = out
        self.limit = limit  # --count: frames printed and written, then nothing more
        self.as_json = as_json
        self.keep = keep or RecordFilter()
        self.idle_flush = idle_flush
        self.segmenter = WireSegmenter(fmt)
        self.decoder = self.segmenter.decoder
        self.writer = CaptureWriter.open(write, fmt, name=name) if write else None
        self.frames = 0

    def feed(self, data: bytes, ts: float) -> None:
        self._emit(self.segmenter.feed(data, ts))

    def idle(self, ts: float) -> None:
        self._emit(self.segmenter.flush(ts))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _emit(self, records: list[Record]) -> None:
        for rec in records:
            if not self.keep(rec) or (self.limit is not None and self.frames >= self.limit):
                continue
            self.frames += rec.frame is not None
            if self.writer is not None:
                self.writer.write(rec)
            print(record_line(rec, STANDARD, self.as_json), file=self.out)
        self.out.flush()
        if self.writer is not None and records:
            self.writer.flush()
