"""The shared vector tables (tests/vectors/*.json) as the Python side reads them.

One place for the rules both suites follow, so the Python tests, the generator of the tables and
the C header generator (firmware/tests/gen_vectors.py reads the same JSON) cannot drift:

* streams.json: ``chunks`` is the byte stream as it arrived (hex strings; ``null`` = the line
  went idle for an inter-frame gap, i.e. ``StreamDecoder.flush()`` / ``fb_parser_idle()``);
  the stream ends with an idle too. ``frames`` are the same for any split of the chunks;
  ``stats`` hold for the stream fed one byte at a time (how a UART delivers it; with bigger
  chunks lookahead may see a candidate complete and call it a CRC error instead of abandoned).
* slave.json: one device (register map, identity) and a sequence of request → reply steps on it
  (``reply`` "" = no answer), run through ``frames.slave.Slave`` via firmware_sim's device logic.
* payloads.json: standard command payloads, fields ↔ hex, and malformed requests a slave must
  answer with code 3.

Vectors whose ``format`` uses ``tagged`` need ``FrameFormat(tagged=True)`` (the transaction-tag
variant); until ``frames`` has it the Python side skips them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from firmware_sim.device import SimulatedDevice
from firmware_sim.profile import Profile
from firmware_sim.registers import Register
from frames import Frame, FrameFormat, StreamDecoder

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def frame_format(spec: dict[str, Any]) -> FrameFormat:
    """The FrameFormat a vector names."""
    return FrameFormat(**spec)


def chunks_of(vector: dict[str, Any]) -> list[bytes | None]:
    return [None if c is None else bytes.fromhex(c) for c in vector["chunks"]]


def decode_stream(
    dec: StreamDecoder, chunks: Iterable[bytes | None], *, bytewise: bool = False
) -> list[Frame]:
    """Feed ``chunks`` (None = idle) and a final idle; every frame, in order."""
    out: list[Frame] = []
    for chunk in [*chunks, None]:
        if chunk is None:
            out += dec.flush()
        elif bytewise:
            for i in range(len(chunk)):
                out += dec.feed(chunk[i : i + 1])
        else:
            out += dec.feed(chunk)
    return out


def frame_json(frame: Frame) -> dict[str, Any]:
    return {"addr": frame.addr, "cmd": frame.cmd, "data": frame.data.hex()}


def stats_json(dec: StreamDecoder) -> dict[str, int]:
    st = dec.stats
    return {
        "frames": st.frames,
        "crc_errors": st.crc_errors,
        "length_errors": st.length_errors,
        "abandoned": st.abandoned,
        "discarded_bytes": st.discarded_bytes,
    }


def device_from_vector(vector: dict[str, Any], fmt: FrameFormat) -> SimulatedDevice:
    """The device a slave vector describes: constant registers, its identity, its limits."""
    ident = vector["identity"]
    registers = tuple(
        Register(
            address=r["address"],
            name=f"r{r['address']}",
            type=r.get("type", "u16"),
            writable=r.get("writable", False),
            initial=r.get("initial", 0),
            min=r.get("min"),
            max=r.get("max"),
        )
        for r in vector["registers"]
    )
    profile = Profile(
        name="vector",
        model=ident["model"],
        firmware=tuple(ident["firmware"]),  # type: ignore[arg-type]
        uid=0,
        registers=registers,
    )
    return SimulatedDevice(vector["address"], profile, uid=ident["uid"], fmt=fmt)


def slave_replies(vector: dict[str, Any], fmt: FrameFormat) -> Iterator[tuple[str, bytes]]:
    """Run the steps on a fresh device; yield (description, reply bytes) per step.

    The request bytes go through the slave core's bytes path (``Slave.receive_data`` then
    ``tick`` once the inter-frame gap has passed), so tags and framing are its own."""
    slave = device_from_vector(vector, fmt).slave
    now = 0.0
    for step in vector["steps"]:
        out = slave.receive_data(bytes.fromhex(step["request"]), now)
        now += 1.0  # a quiet line: the gap has passed
        out += slave.tick(now)
        yield step["description"], out
