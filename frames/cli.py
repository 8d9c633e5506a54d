"""``framebridge encode`` and ``framebridge decode``: the codec on the command line."""

from __future__ import annotations

import argparse
import json
import string
import sys
from typing import Any

from .codec import decode, encode
from .commands import STANDARD, CommandRegistry, jsonable
from .errors import FrameError, FramesError
from .format import FrameFormat
from .frame import Frame
from .stream import StreamDecoder


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """Options selecting a frame-format variant; :func:`format_from_args` reads them."""
    g = parser.add_argument_group("frame format")
    g.add_argument("--start", type=lambda s: int(s, 0), default=0xAA, help="start byte (0xAA)")
    g.add_argument("--end", type=lambda s: int(s, 0), default=None, help="end byte (none)")
    g.add_argument(
        "--crc",
        default="modbus",
        help="crcmod predefined name (modbus, crc-ccitt-false, xmodem, ...)",
    )
    g.add_argument("--crc-byteorder", choices=["little", "big"], default="little")
    g.add_argument("--crc-covers-start", action="store_true", help="CRC includes the start byte")
    g.add_argument("--max-payload", type=int, default=255)
    g.add_argument(
        "--tagged",
        action="store_true",
        help="a transaction-tag byte after cmd, echoed by the slave (the device must support it)",
    )


def format_from_args(args: argparse.Namespace) -> FrameFormat:
    return FrameFormat(
        start=args.start,
        end=args.end,
        crc=args.crc,
        crc_byteorder=args.crc_byteorder,
        crc_covers_start=args.crc_covers_start,
        max_payload=args.max_payload,
        tagged=args.tagged,
    )


def frame_to_json(
    frame: Frame, registry: CommandRegistry = STANDARD, **extra: Any
) -> dict[str, Any]:
    """One frame as the JSON object the CLI prints (and the bridge sends): hex data, fields."""
    cmd = registry.find(frame.base_cmd)
    out: dict[str, Any] = {"addr": frame.addr, "cmd": frame.cmd}
    if frame.tag is not None:
        out["tag"] = frame.tag
    if cmd is not None:
        out["name"] = cmd.name
    out["data"] = frame.data.hex()
    if frame.is_error:
        out["error"] = True
    fields = registry.describe(frame)
    if fields is not None:
        out["fields"] = jsonable(fields)
    out.update(extra)
    return out


def _hex_bytes(text: str) -> bytes:
    cleaned = "".join(text.split()).removeprefix("0x")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex (e.g. aa0101...)") from None


def cmd_encode(args: argparse.Namespace) -> int:
    fmt = format_from_args(args)
    try:
        cmd = STANDARD.resolve_code(args.cmd)
        print(encode(args.addr, cmd, args.data, fmt, tag=args.tag if fmt.tagged else None).hex())
    except FramesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    fmt = format_from_args(args)
    failed = False
    if args.frames == ["-"]:
        return _decode_stream(fmt, raw=args.raw)
    from .capture import RecordFilter
    from .io.capture_cli import is_capture_file, print_capture

    if len(args.frames) == 1 and is_capture_file(args.frames[0]):  # a .pcapng capture
        return print_capture(args.frames[0], sys.stdout, RecordFilter(), not args.text)
    for text in args.frames:
        try:
            frame = decode(_hex_bytes(text), fmt)
        except argparse.ArgumentTypeError as exc:  # not a frame at all: a plain message
            failed = True
            print(f"error: {exc}", file=sys.stderr)
            continue
        except FrameError as exc:  # the defect by name (CrcMismatch, Truncated, ...)
            failed = True
            print(f"error: {text}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(json.dumps(frame_to_json(frame)))
    return 1 if failed else 0


def _decode_stream(fmt: FrameFormat, raw: bool) -> int:
    data = sys.stdin.buffer.read()
    stripped = bytes(data).strip()
    hexdigits = set(string.hexdigits.encode() + b" \t\r\n")
    if not raw and stripped and all(b in hexdigits for b in stripped):
        data = _hex_bytes(stripped.decode())
    decoder = StreamDecoder(fmt)
    for frame in decoder.feed(data) + decoder.flush():
        print(json.dumps(frame_to_json(frame)))
    st = decoder.stats
    bad = st.crc_errors + st.length_errors + st.end_errors
    if bad or st.discarded_bytes:
        print(
            f"error: {st.crc_errors} CRC error(s), {st.length_errors} bad length(s), "
            f"{st.end_errors} bad end byte(s), {st.discarded_bytes} byte(s) discarded",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("encode", help="print one frame in hex")
    p.add_argument("--addr", type=int, required=True, help="slave address 0..255 (0 = broadcast)")
    p.add_argument("--cmd", required=True, help="command number (3, 0x03) or name (read_regs)")
    p.add_argument("--data", type=_hex_bytes, default=b"", help="payload in hex")
    p.add_argument("--tag", type=int, default=0, help="transaction tag 0..255 (with --tagged)")
    add_format_arguments(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "decode", help="decode frames given in hex, a byte stream on stdin (-), or a capture file"
    )
    p.add_argument(
        "frames", nargs="+", metavar="HEX", help="one frame per argument, - for stdin, or FILE"
    )
    p.add_argument("--text", action="store_true", help="a capture file as text lines, not JSON")
    p.add_argument("--raw", action="store_true", help="stdin is raw bytes, not hex")
    add_format_arguments(p)
    p.set_defaults(func=cmd_decode)
