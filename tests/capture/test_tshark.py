"""A real tshark with our generated dissector agrees with ``framebridge decode`` packet by packet.

tshark comes from Debian's package (scripts/setup-system.sh installs it when missing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from frames.capture import Record, WireSegmenter
from frames.codec import encode
from frames.dissector import generate_dissector
from frames.format import DEFAULT_FORMAT, FrameFormat
from frames.frame import Frame
from frames.io.capture import CaptureWriter

from .helpers import GOOD, noisy_stream, records_of

TSHARK = shutil.which("tshark")  # required: `make test` installs it
FIELDS = ["status", "addr", "cmd", "name", "len", "crc.status", "fields", "register"]


def tshark(lua: Path, capture: Path) -> list[dict[str, str]]:
    assert TSHARK is not None, "tshark missing: run scripts/setup-system.sh"
    args = [TSHARK, "-n", "-X", f"lua_script:{lua}", "-r", str(capture), "-T", "fields"]
    args += ["-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in FIELDS:
        args += ["-e", f"framebridge.{f}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.stdout.splitlines()]


def decode_lines(capture: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "decode", str(capture)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return [json.loads(x) for x in out.stdout.splitlines()]


def capture_of(path: Path, recs: list[Record], fmt: FrameFormat = DEFAULT_FORMAT) -> Path:
    with CaptureWriter.open(path, fmt) as w:
        for r in recs:
            w.write(r)
    return path


@pytest.mark.parametrize(
    "fmt",
    [FrameFormat(), FrameFormat(start=0x7E, crc="crc-ccitt-false", crc_byteorder="big", end=0x0D)],
    ids=["default", "variant"],
)
def test_tshark_fields_match_decode(tmp_path: Path, fmt: FrameFormat) -> None:
    data = b"".join(encode(*f, fmt=fmt) for f in GOOD)
    noisy, _ = noisy_stream(5) if fmt == FrameFormat() else (b"\x01\x02" + data[:-1], None)
    seg = WireSegmenter(fmt)
    recs = seg.feed(data + noisy, 1_700_000_000.0) + seg.flush(1_700_000_001.0)
    cap = capture_of(tmp_path / "t.pcapng", recs, fmt)
    lua = tmp_path / "fb.lua"
    lua.write_text(generate_dissector(fmt))
    shark, ours = tshark(lua, cap), decode_lines(cap)
    assert len(shark) == len(ours) == len(recs)
    assert sum(1 for r in recs if r.ok) >= len(GOOD)
    for s, d in zip(shark, ours, strict=True):
        if "status" in d:  # bad bytes
            assert s["status"] == d["status"]
            continue
        assert s["status"] == "ok" and s["crc.status"] == "good"
        assert int(s["addr"]) == d["addr"]
        assert int(s["cmd"], 0) == d["cmd"]
        assert s["name"] == d.get("name", "")
        assert int(s["len"]) == len(str(d["data"])) // 2
        if "fields" in d:
            assert json.loads(s["fields"]) == d["fields"]
            assert s["fields"] == json.dumps(d["fields"], separators=(",", ":"))
        else:
            assert s["fields"] == ""


def test_register_names_from_a_device_map(tmp_path: Path) -> None:
    request, reply = Frame(1, 3, b"\x00\x00\x02"), Frame(1, 3, b"\x02\xd2\x08\x8e\x01")
    write = Frame(1, 6, b"\x02\x00\xfc\x08")
    cap = capture_of(tmp_path / "r.pcapng", records_of([request, reply, write, write]))
    lua = tmp_path / "fb.lua"
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "dissector", "--device-map", "thermo"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lua.write_text(out.stdout)
    rows = tshark(lua, cap)
    assert [r["register"] for r in rows] == [
        "temperature",
        "temperature|humidity",
        "setpoint",
        "setpoint",
    ]


def test_a_crc_error_packet_shows_the_bad_check(tmp_path: Path) -> None:
    wire = bytearray(encode(1, 3, b"\x00\x00\x02"))
    wire[4] ^= 0xFF
    cap = capture_of(tmp_path / "c.pcapng", [Record(1.0, bytes(wire), "crc_error")])
    lua = tmp_path / "fb.lua"
    lua.write_text(generate_dissector())
    (row,) = tshark(lua, cap)
    assert (row["status"], row["crc.status"], row["fields"]) == ("crc_error", "bad", "")


def test_the_shipped_dissector_is_the_generated_one() -> None:
    shipped = resources.files("frames") / "wireshark" / "framebridge.lua"
    assert shipped.read_text(encoding="utf-8") == generate_dissector(), (
        "regenerate: framebridge dissector -o frames/wireshark/framebridge.lua"
    )
