"""``framebridge request`` (one transaction) and ``framebridge monitor`` (a passive sniffer).

Exit codes of ``request``: 0 reply printed, 2 bad arguments, 3 timeout, 4 device error,
5 link down (port missing or lost). ``monitor`` exits 0 after ``--count`` frames or
``--duration`` seconds (or Ctrl-C), 5 if the port cannot be opened or is lost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

import serial

from ..cli import _hex_bytes, add_format_arguments, format_from_args, frame_to_json
from ..codec import encode_frame
from ..commands import STANDARD, CommandRegistry, jsonable
from ..errors import DeviceError, FramesError, LinkDown, Timeout
from ..format import FrameFormat
from ..frame import Frame
from ..stream import StreamDecoder
from .capture_cli import CaptureMonitor, add_filter_arguments, filter_from_args
from .ports import explain_open_error, open_port
from .serial_sync import Master

EXIT_BAD_ARGS = 2
EXIT_TIMEOUT = 3
EXIT_DEVICE_ERROR = 4
EXIT_LINK_DOWN = 5


def parse_value(text: str) -> Any:
    """A named argument's value: an int (``12``, ``0x0c``), a list of ints (``1,2,3``),
    bytes (``hex:0a0b``) or else the text itself."""
    if text.startswith("hex:"):
        return _hex_bytes(text[4:])
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part.strip()]
    try:
        return int(text, 0)
    except ValueError:
        return text


def parse_fields(pairs: Sequence[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {pair!r}")
        fields[key.strip()] = parse_value(value.strip())
    return fields


def build_payload(
    registry: CommandRegistry, cmd: str, data: bytes | None, pairs: Sequence[str]
) -> tuple[int, bytes]:
    """The command code and the request payload from ``--data`` or named arguments."""
    code = registry.resolve_code(cmd)
    if pairs:
        if data is not None:
            raise argparse.ArgumentTypeError("give either --data or named arguments, not both")
        return code, registry.get(code).encode_request(parse_fields(pairs))
    return code, data or b""


def cmd_request(args: argparse.Namespace) -> int:
    try:
        fmt = format_from_args(args)
        code, payload = build_payload(STANDARD, args.cmd, args.data, [*args.arg, *args.fields])
    except (FramesError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        with Master(
            args.port,
            baudrate=args.baudrate,
            timeout=args.timeout,
            retries=args.retries,
            fmt=fmt,
            gap=args.gap,
            reconnect=False,
        ) as master:
            started = time.monotonic()
            reply = master.request(args.addr, code, payload)
            elapsed = time.monotonic() - started
    except Timeout as exc:
        print(f"error: timeout: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DEVICE_ERROR
    except LinkDown as exc:
        print(f"error: link down: {exc}", file=sys.stderr)
        return EXIT_LINK_DOWN
    except FramesError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    print(json.dumps(frame_to_json(reply, STANDARD, elapsed_ms=round(elapsed * 1000, 3))))
    return 0


def monitor_line(
    ts: float, frame: Frame, wire: bytes, registry: CommandRegistry, as_json: bool
) -> str:
    stamp = dt.datetime.fromtimestamp(ts).isoformat(timespec="microseconds")
    if as_json:
        return json.dumps(frame_to_json(frame, registry, ts=ts, hex=wire.hex()))
    command = registry.find(frame.base_cmd)
    name = command.name if command is not None else "?"
    if frame.is_error:
        name += " ERROR"
    fields = registry.describe(frame)
    decoded = json.dumps(jsonable(fields)) if fields is not None else f"data={frame.data.hex()}"
    return f"{stamp} addr={frame.addr} cmd=0x{frame.cmd:02x} {name} {decoded} hex={wire.hex()}"


class Monitor:
    """Decode everything on a line and print it; bounded by a frame count and a duration."""

    def __init__(
        self,
        fmt: FrameFormat,
        out: TextIO,
        *,
        as_json: bool = False,
        registry: CommandRegistry = STANDARD,
        idle_flush: float = 0.005,
    ) -> None:
        self.fmt = fmt
        self.out = out
        self.as_json = as_json
        self.registry = registry
        self.idle_flush = idle_flush
        self.decoder = StreamDecoder(fmt)
        self.frames = 0
        self._errors_seen = 0

    def feed(self, data: bytes, ts: float) -> None:
        self._emit(self.decoder.feed(data), ts)

    def idle(self, ts: float) -> None:
        self._emit(self.decoder.flush(), ts)

    def _emit(self, frames: list[Frame], ts: float) -> None:
        st = self.decoder.stats
        errors = st.crc_errors + st.end_errors + st.length_errors
        if errors > self._errors_seen:
            n = errors - self._errors_seen
            self._errors_seen = errors
            stamp = dt.datetime.fromtimestamp(ts).isoformat(timespec="microseconds")
            if self.as_json:
                print(json.dumps({"ts": ts, "crc_errors": n}), file=self.out)
            else:
                print(f"{stamp} CRC/framing error x{n}", file=self.out)
        for frame in frames:
            self.frames += 1
            wire = encode_frame(frame, self.fmt)
            print(monitor_line(ts, frame, wire, self.registry, self.as_json), file=self.out)
        self.out.flush()


def cmd_monitor(args: argparse.Namespace) -> int:
    fmt = format_from_args(args)
    mon: Monitor | CaptureMonitor = Monitor(fmt, sys.stdout, as_json=args.json)
    try:
        if args.write or args.f_addr or args.f_cmd or args.f_errors is not None:
            keep = filter_from_args(args)
            mon = CaptureMonitor(
                fmt, sys.stdout, as_json=args.json, keep=keep, write=args.write, limit=args.count
            )
    except (FramesError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        port = open_port(args.port, baudrate=args.baudrate, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as exc:
        reason = explain_open_error(args.port, exc)
        print(f"error: link down: cannot open {args.port}: {reason}", file=sys.stderr)
        return EXIT_LINK_DOWN
    end = None if args.duration is None else time.monotonic() + args.duration
    # SIGTERM stops the sniffer like Ctrl-C: flush what is half-received, print the summary.
    # (Only the main thread may set handlers; embedded in a thread, the caller owns signals.)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        with port:
            _sniff(args, port, mon, end)
    except KeyboardInterrupt:
        pass
    except (serial.SerialException, OSError) as exc:
        print(f"error: link down: {exc}", file=sys.stderr)
        return EXIT_LINK_DOWN
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        mon.idle(time.time())
        if isinstance(mon, CaptureMonitor):
            mon.close()
    st = mon.decoder.stats
    print(
        f"{mon.frames} frame(s), {st.crc_errors} CRC error(s), {st.discarded_bytes} byte(s) "
        "discarded",
        file=sys.stderr,
    )
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sniff(
    args: argparse.Namespace,
    port: serial.SerialBase,
    mon: Monitor | CaptureMonitor,
    end: float | None,
) -> None:
    dirty = False
    while args.count is None or mon.frames < args.count:
        now = time.monotonic()
        if end is not None and now >= end:
            break
        wait = mon.idle_flush if dirty else 0.05
        port.timeout = wait if end is None else max(0.0, min(wait, end - now))
        first = port.read(1)
        rest = port.read(port.in_waiting) if first and port.in_waiting else b""
        if first:
            dirty = True
            mon.feed(first + rest, time.time())
        elif dirty:
            dirty = False
            mon.idle(time.time())


class _FieldsParser(argparse.ArgumentParser):
    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        words = [e for e in extras if not e.startswith("-")]
        ns.fields = [*(getattr(ns, "fields", None) or []), *words]
        return ns, [e for e in extras if e not in words]


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "request",
        help="send one request and print the reply as JSON",
        description="Payload from --data HEX or named fields: --arg start=0 --arg count=4, or "
        "just start=0 count=4. Exit 3 on timeout, 4 on a device error, 5 if the port is down.",
    )
    p.add_argument("port", metavar="PORT", help="/dev/ttyUSB0, COM3, socket://host:port, ...")
    p.add_argument("--addr", type=int, required=True, help="slave address (0 = broadcast)")
    p.add_argument("--cmd", required=True, help="command number (3, 0x03) or name (read_regs)")
    p.add_argument("--data", type=_hex_bytes, default=None, help="raw payload in hex")
    p.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    # default=[]: without it argparse lists an empty nargs="*" positional as required.
    p.add_argument(
        "fields", nargs="*", default=[], metavar="NAME=VALUE", help="named payload fields"
    )
    # argparse stops taking positionals once options follow them ("PORT --addr 1 start=0");
    # this parser class collects such trailing NAME=VALUE words instead of rejecting them.
    p.__class__ = _FieldsParser
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=0.5, help="seconds per attempt")
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--gap", type=float, default=None, help="inter-frame gap in s (3.5 chars)")
    add_format_arguments(p)
    p.set_defaults(func=cmd_request)

    p = sub.add_parser("monitor", help="passively decode and print everything on a bus")
    p.add_argument("port", metavar="PORT")
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--count", type=int, default=None, help="stop after N frames")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--write", metavar="FILE.pcapng", help="also record a pcapng capture")
    add_filter_arguments(p)
    add_format_arguments(p)
    p.set_defaults(func=cmd_monitor)
