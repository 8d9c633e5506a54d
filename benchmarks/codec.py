"""Codec benchmark: framebridge's encode, decode and StreamDecoder against pymavlink and pymodbus.

Run from the repository root (needs the ``bench`` extra: pymavlink, pymodbus)::

    .venv/bin/python benchmarks/codec.py [--frames 100000] [--runs 5] [--chunk 64] [--seed 1]

Every job is timed in CPU seconds (``time.process_time``), ``--runs`` times, interleaved with its
peers, and the median is reported; ratios are framebridge / peer from the same run.

The three streams carry the same traffic: ``--frames`` messages with an 8-byte payload (a
framebridge frame with 8 data bytes, a MAVLink 2 HEARTBEAT with its 9-byte payload, a Modbus RTU
read-holding-registers response with 4 registers), the same ~1% of them with one bit flipped at
the same relative position, the same ~1% followed by a run of 1-32 random garbage bytes, all fed
in ``--chunk``-byte pieces. Each message carries a unique key (its payload, MAVLink's
``custom_mode``, the registers), so "recovered" counts distinct intact messages that came out.

Peers, each used the way its own transport uses it:

* pymavlink: a fresh ``MAVLink`` with ``robust_parsing`` on (off, ``parse_buffer`` raises
  ``MAVError`` at the first bad message), ``parse_buffer(chunk)`` per chunk. It resyncs on the
  next magic byte, so a corrupted length byte can also swallow the message after it.
* pymodbus: ``FramerRTU.handleFrame(buffer, 0, 0)`` once per received chunk, keeping
  ``buffer[used:]`` as its transaction manager does. RTU is request/response, one frame per read:
  ``decode`` returns at most one frame per call and reports the whole buffer as used (after a
  good frame and after a CRC failure alike), so the other frames of a chunk are dropped. The
  table gives both the rate it consumes the stream at ("fed") and the rate of frames it returns.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from _common import fmt_rate, interleaved, markdown_table, ratio
from pymavlink.dialects.v20 import common as mavlink  # type: ignore[import-untyped]
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from frames import Frame, StreamDecoder, decode, encode

PAYLOAD = 8
CORRUPT_RATE = 0.01
GARBAGE_RATE = 0.01
GARBAGE_MAX = 32


@dataclass(frozen=True)
class Damage:
    """What happens to message ``i`` on the wire, the same for every protocol."""

    flip_at: float | None  # relative position of the flipped bit's byte, None = intact
    bit: int
    garbage: bytes  # random bytes sent after the message


def plan(n: int, seed: int) -> list[Damage]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        flip = rnd.random() if rnd.random() < CORRUPT_RATE else None
        bit = rnd.randrange(8)
        junk = rnd.randbytes(rnd.randint(1, GARBAGE_MAX)) if rnd.random() < GARBAGE_RATE else b""
        out.append(Damage(flip, bit, junk))
    return out


@dataclass
class Stream:
    """One protocol's wire: the clean messages, the noisy stream in chunks, intact keys."""

    wires: list[bytes]  # each message alone, undamaged (for the one-frame decode benchmark)
    chunks: list[bytes]
    intact: set[Any]
    size: int  # bytes on the wire


def make_stream(wires: list[bytes], keys: list[Any], damage: list[Damage], chunk: int) -> Stream:
    parts: list[bytes] = []
    intact = set()
    for wire, key, dmg in zip(wires, keys, damage, strict=True):
        if dmg.flip_at is None:
            parts.append(wire)
            intact.add(key)
        else:
            bad = bytearray(wire)
            bad[int(dmg.flip_at * len(bad))] ^= 1 << dmg.bit
            parts.append(bytes(bad))
        parts.append(dmg.garbage)
    data = b"".join(parts)
    return Stream(
        wires, [data[i : i + chunk] for i in range(0, len(data), chunk)], intact, len(data)
    )


# -- framebridge ----------------------------------------------------------------------------------


def fb_fields(n: int, seed: int) -> list[tuple[int, int, bytes]]:
    rnd = random.Random(seed + 1)
    return [(rnd.randint(1, 247), 3, rnd.randbytes(PAYLOAD)) for _ in range(n)]


def fb_stream(chunks: Sequence[bytes]) -> list[Frame]:
    dec = StreamDecoder()
    out: list[Frame] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.flush()


# -- pymavlink ------------------------------------------------------------------------------------


def mav_heartbeat(mav: Any, i: int) -> bytes:
    msg = mav.heartbeat_encode(2, 3, 81, i, 4)  # type quadrotor, autopilot ArduPilot, custom_mode i
    out: bytes = msg.pack(mav)
    return out


def mav_new() -> Any:
    return mavlink.MAVLink(None, srcSystem=1, srcComponent=1)


def mav_stream(chunks: Sequence[bytes]) -> list[Any]:
    mav = mav_new()
    mav.robust_parsing = True
    parse = mav.parse_buffer
    out: list[Any] = []
    for chunk in chunks:
        msgs = parse(chunk)
        if msgs:
            out += msgs
    return [m for m in out if m.get_msgId() == mavlink.MAVLINK_MSG_ID_HEARTBEAT]


def mav_decode(wires: Sequence[bytes]) -> list[Any]:
    mav = mav_new()
    dec = mav.decode
    return [dec(bytearray(w)) for w in wires]


# -- pymodbus -------------------------------------------------------------------------------------


def mb_framer() -> FramerRTU:
    return FramerRTU(DecodePDU(is_server=False))


def mb_registers(n: int, seed: int) -> list[tuple[int, list[int]]]:
    rnd = random.Random(seed + 2)
    return [
        (rnd.randint(1, 247), [i & 0xFFFF, i >> 16, rnd.getrandbits(16), rnd.getrandbits(16)])
        for i in range(n)
    ]


def mb_encode(framer: FramerRTU, regs: Iterable[tuple[int, list[int]]]) -> list[bytes]:
    build = framer.buildFrame
    return [build(ReadHoldingRegistersResponse(dev_id=a, registers=r)) for a, r in regs]


def mb_stream(chunks: Sequence[bytes]) -> list[Any]:
    framer = mb_framer()
    handle = framer.handleFrame
    out: list[Any] = []
    buf = b""
    for chunk in chunks:  # one handleFrame call per received chunk, as its transport does
        buf += chunk
        try:
            used, pdu = handle(buf, 0, 0)
        except ModbusIOException:
            used, pdu = len(buf), None
        buf = buf[used:]
        if pdu is not None:
            out.append(pdu)
    return out


def mb_decode(wires: Sequence[bytes]) -> list[Any]:
    handle = mb_framer().handleFrame
    return [handle(w, 0, 0)[1] for w in wires]


# -- the run --------------------------------------------------------------------------------------


def recovery(name: str, unit: str, got: Iterable[Any], intact: set[Any]) -> str:
    found = len(intact.intersection(got))
    pct = 100.0 * found / len(intact) if intact else 100.0
    return f"{name}: intact {unit} recovered: {found}/{len(intact)} ({pct:.2f}%)"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=100_000, help="messages per stream")
    ap.add_argument("--runs", type=int, default=5, help="runs per job; the median is reported")
    ap.add_argument("--chunk", type=int, default=64, help="bytes per feed() call")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    n: int = args.frames
    t0 = time.perf_counter()

    damage = plan(n, args.seed)
    fields = fb_fields(n, args.seed)
    fb = make_stream([encode(*f) for f in fields], [Frame(*f) for f in fields], damage, args.chunk)
    mav_enc = mav_new()
    mav_wires = [mav_heartbeat(mav_enc, i) for i in range(n)]
    mav = make_stream(mav_wires, list(range(n)), damage, args.chunk)
    regs = mb_registers(n, args.seed)
    mb = make_stream(mb_encode(mb_framer(), regs), [tuple(r) for _, r in regs], damage, args.chunk)

    # Results are checked once, outside the timed runs.
    fb_got = fb_stream(fb.chunks)
    mav_got = mav_stream(mav.chunks)
    mb_got = mb_stream(mb.chunks)
    mb_decoded = mb_decode(mb.wires)
    if [decode(w) for w in fb.wires] != [Frame(*f) for f in fields]:
        raise AssertionError("framebridge decode does not round-trip")
    if [m.custom_mode for m in mav_decode(mav.wires)] != list(range(n)):
        raise AssertionError("pymavlink decode does not round-trip")
    if [p.registers for p in mb_decoded] != [r for _, r in regs]:
        raise AssertionError("pymodbus decode does not round-trip")

    mb_enc = mb_framer()
    jobs: dict[str, Callable[[], object]] = {
        "fb encode": lambda: [encode(a, c, d) for a, c, d in fields],
        "mav encode": lambda: [mav_heartbeat(mav_enc, i) for i in range(n)],
        "mb encode": lambda: mb_encode(mb_enc, regs),
        "fb decode": lambda: [decode(w) for w in fb.wires],
        "mav decode": lambda: mav_decode(mav.wires),
        "mb decode": lambda: mb_decode(mb.wires),
        "fb stream": lambda: fb_stream(fb.chunks),
        "mav stream": lambda: mav_stream(mav.chunks),
        "mb stream": lambda: mb_stream(mb.chunks),
    }
    timings = interleaved(jobs, args.runs)
    secs = {name: t.median for name, t in timings.items()}
    done = {"fb stream": len(fb_got), "mav stream": len(mav_got), "mb stream": len(mb_got)}
    rate = {name: done.get(name, n) / s for name, s in secs.items()}

    fb_rate = rate["fb stream"]
    fb_best = len(fb_got) / timings["fb stream"].best
    mav_ratio = fb_rate / rate["mav stream"]
    fb_found = len(fb.intact.intersection(fb_got))
    stream = f"stream: {n // 1000}k frames, {args.chunk}-byte chunks, ~1% corrupt + garbage"
    peers = {
        "encode": ("pymavlink HEARTBEAT pack", "pymodbus RTU buildFrame"),
        "decode": ("pymavlink decode", "pymodbus RTU handleFrame"),
        "stream": ("pymavlink parse_buffer", "pymodbus RTU handleFrame per chunk"),
    }
    labels = {"encode": "encode one frame", "decode": "decode one frame", "stream": stream}
    rows: list[list[str]] = []
    for job, (mav_name, mb_name) in peers.items():
        ours = rate[f"fb {job}"]
        mav_text = f"{mav_name}: {fmt_rate(rate[f'mav {job}'], 'msg/s')}"
        rows.append([labels[job], fmt_rate(ours), mav_text, ratio(ours, rate[f"mav {job}"])])
        mb_text = f"{mb_name}: {fmt_rate(rate[f'mb {job}'])}"
        mb_ratio = ratio(ours, rate[f"mb {job}"])
        if job == "stream":  # it consumes the stream at one rate and returns far fewer frames
            fed = n / secs["mb stream"]
            mb_text = f"{mb_name}: {fmt_rate(fed)} fed, {fmt_rate(rate['mb stream'])} recovered"
            mb_ratio = f"{ratio(ours, fed)} fed, {mb_ratio} recovered"
        rows.append([labels[job], fmt_rate(ours), mb_text, mb_ratio])

    print(
        f"{n} messages, median CPU time of {args.runs} interleaved runs, Python "
        f"{sys.version_info.major}.{sys.version_info.minor}; streams: framebridge {fb.size} B, "
        f"MAVLink 2 {mav.size} B, Modbus RTU {mb.size} B"
    )
    print()
    print(markdown_table(["benchmark", "framebridge", "peer", "ratio"], rows))
    print()
    print(recovery("framebridge StreamDecoder", "frames", fb_got, fb.intact))
    mav_keys = (m.custom_mode for m in mav_got)
    print(recovery("pymavlink parse_buffer", "HEARTBEATs", mav_keys, mav.intact))
    mb_keys = (tuple(p.registers) for p in mb_got)
    print(recovery("pymodbus FramerRTU", "responses", mb_keys, mb.intact))
    print()
    checks = [
        (f"StreamDecoder {fmt_rate(fb_rate)}", ">= 1M frames/s", fb_rate >= 1e6),
        (f"{mav_ratio:.1f}x pymavlink parse_buffer", ">= 4x", mav_ratio >= 4),
        (f"{fb_found}/{len(fb.intact)} intact frames", "100%", fb_found == len(fb.intact)),
    ]
    for what, target, met in checks:
        print(f"target {target}: {what} -> {'met' if met else 'NOT met'}")
    print(
        f"(medians; StreamDecoder's fastest run: {fmt_rate(fb_best)}, "
        f"{fb_best / (len(mav_got) / timings['mav stream'].best):.1f}x pymavlink's fastest)"
    )
    print(f"(total {time.perf_counter() - t0:.0f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
