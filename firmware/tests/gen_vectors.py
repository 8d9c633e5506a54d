"""Generate a C header with the shared vectors (tests/vectors/*.json) for one build configuration.

    python3 gen_vectors.py OUT.h [-DFB_NAME=VALUE ...]

The -D options are the same ones the C build gets, so the header holds exactly the vectors whose
frame format (start byte, CRC order, CRC over the start byte, max payload, tag) and decoder
option (lookahead) that build implements; the rest are counted as skipped in the header and
the runner prints the count. Only the standard library: this runs before any venv exists.
Writing C from Python here means the firmware needs no JSON parser.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "vectors"
MODBUS = {"modbus", "crc-16/modbus", "crc16-modbus"}


def config(defines: list[str]) -> dict[str, int]:
    cfg = {
        "FB_START": 0xAA,
        "FB_CRC_BIG_ENDIAN": 0,
        "FB_CRC_COVERS_START": 0,
        "FB_TAGGED": 0,
        "FB_MAX_PAYLOAD": 255,
        "FB_LOOKAHEAD": 1,
    }
    for d in defines:
        name, _, value = d.removeprefix("-D").partition("=")
        if name in cfg:
            cfg[name] = int(value or "1", 0)
    return cfg


def fits(fmt: dict[str, Any], cfg: dict[str, int]) -> bool:
    """Does this build implement the vector's frame format?"""
    return (
        str(fmt.get("crc", "modbus")).lower() in MODBUS
        and fmt.get("end") is None
        and fmt.get("start", 0xAA) == cfg["FB_START"]
        and (fmt.get("crc_byteorder", "little") == "big") == bool(cfg["FB_CRC_BIG_ENDIAN"])
        and bool(fmt.get("crc_covers_start", False)) == bool(cfg["FB_CRC_COVERS_START"])
        and fmt.get("max_payload", 255) == cfg["FB_MAX_PAYLOAD"]
        and bool(fmt.get("tagged", False)) == bool(cfg["FB_TAGGED"])
    )


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def blob(self, data: bytes) -> str:
        """A static byte array; returns its name."""
        self.n += 1
        name = f"b{self.n}"
        body = ",".join(str(b) for b in data) or "0"
        self.lines.append(f"static const uint8_t {name}[] = {{{body}}};")
        return name


def c_str(text: str) -> str:
    return json.dumps(text.encode("ascii", "replace").decode())  # a valid C literal for ASCII


def frame_init(w: Writer, f: dict[str, Any], wire: bytes = b"") -> str:
    data = bytes.fromhex(f["data"])
    return (
        f"{{{f['addr']}, {f['cmd']}, {f.get('tag', 0)}, {w.blob(data)}, {len(data)}, "
        f"{w.blob(wire)}, {len(wire)}, {c_str(f.get('description', ''))}}}"
    )


def generate(cfg: dict[str, int]) -> str:
    w = Writer()
    skipped = 0
    # frames.json: encode / decode of single frames
    frames = []
    for v in json.loads((VECTORS / "frames.json").read_text())["vectors"]:
        if fits(v["format"], cfg):
            frames.append(frame_init(w, v, bytes.fromhex(v["wire"])))
        else:
            skipped += 1
    # crc.json: only CRC-16/MODBUS is implemented in C
    crc_checks = [
        str(c["check"])
        for c in json.loads((VECTORS / "crc.json").read_text())["check"]
        if c["name"].lower() in MODBUS
    ]
    # streams.json
    streams = []
    for i, v in enumerate(json.loads((VECTORS / "streams.json").read_text())["streams"]):
        if not fits(v["format"], cfg) or bool(v["lookahead"]) != bool(cfg["FB_LOOKAHEAD"]):
            skipped += 1
            continue
        chunks = [
            "{-1, b0}" if c is None else f"{{{len(bytes.fromhex(c))}, {w.blob(bytes.fromhex(c))}}}"
            for c in v["chunks"]
        ]
        out = [frame_init(w, f) for f in v["frames"]] or ["{0}"]
        st = v["stats"]
        w.lines.append(f"static const vec_chunk s{i}_chunks[] = {{{', '.join(chunks)}}};")
        w.lines.append(f"static const vec_frame s{i}_frames[] = {{{', '.join(out)}}};")
        streams.append(
            f"{{{c_str(v['description'])}, s{i}_chunks, {len(chunks)}, s{i}_frames, "
            f"{len(v['frames'])}, {{{st['frames']}, {st['crc_errors']}, {st['length_errors']}, "
            f"{st['abandoned']}, {st['discarded_bytes']}}}}}"
        )
    # slave.json
    devices = []
    for i, d in enumerate(json.loads((VECTORS / "slave.json").read_text())["devices"]):
        if not fits(d["format"], cfg):
            skipped += 1
            continue
        defs, values = [], []
        for r in sorted(d["registers"], key=lambda r: r["address"]):
            flags = ["0"]
            if r.get("writable"):
                flags.append("FB_REG_WRITABLE")
            if r.get("type") == "i16":
                flags.append("FB_REG_SIGNED")
            if r.get("min") is not None:
                flags.append("FB_REG_MIN")
            if r.get("max") is not None:
                flags.append("FB_REG_MAX")
            defs.append(
                f"{{{r['address']}, {'|'.join(flags)}, {int(r.get('min') or 0)}, "
                f"{int(r.get('max') or 0)}}}"
            )
            values.append(str(int(r.get("initial", 0)) & 0xFFFF))
        steps = [
            f"{{{c_str(s['description'])}, {w.blob(bytes.fromhex(s['request']))}, "
            f"{len(bytes.fromhex(s['request']))}, {w.blob(bytes.fromhex(s['reply']))}, "
            f"{len(bytes.fromhex(s['reply']))}}}"
            for s in d["steps"]
        ]
        ident = d["identity"]
        fw = ", ".join(str(x) for x in ident["firmware"])
        w.lines.append(f"static const fb_reg_def d{i}_defs[] = {{{', '.join(defs)}}};")
        w.lines.append(f"static const uint16_t d{i}_initial[] = {{{', '.join(values)}}};")
        w.lines.append(f"static uint16_t d{i}_values[{len(values)}];")
        w.lines.append(f"static const vec_step d{i}_steps[] = {{{', '.join(steps)}}};")
        devices.append(
            f"{{{c_str(d['description'])}, {d['address']}, {c_str(ident['model'])}, {{{fw}}}, "
            f"{ident['uid']}u, d{i}_defs, d{i}_initial, d{i}_values, {len(values)}, d{i}_steps, "
            f"{len(steps)}}}"
        )
    # payloads.json: malformed requests must get code 3
    bad = []
    for p in json.loads((VECTORS / "payloads.json").read_text())["payloads"]:
        if not p["valid"] and len(bytes.fromhex(p["hex"])) <= cfg["FB_MAX_PAYLOAD"]:
            data = bytes.fromhex(p["hex"])
            bad.append(f"{{{p['code']}, {w.blob(data)}, {len(data)}}}")
    head = [
        "/* Generated by firmware/tests/gen_vectors.py from tests/vectors. Do not edit. */",
        '#include "vec_types.h"',
        "static const uint8_t b0[] = {0};",
    ]
    tail = [
        f"static const vec_frame frame_vectors[] = {{{', '.join(frames) or '{0}'}}};",
        f"#define N_FRAME_VECTORS {len(frames)}",
        f"static const uint16_t crc_checks[] = {{{', '.join(crc_checks) or '0'}}};",
        f"#define N_CRC_CHECKS {len(crc_checks)}",
        f"static const vec_stream stream_vectors[] = {{{', '.join(streams) or '{0}'}}};",
        f"#define N_STREAM_VECTORS {len(streams)}",
        f"static const vec_device device_vectors[] = {{{', '.join(devices) or '{0}'}}};",
        f"#define N_DEVICE_VECTORS {len(devices)}",
        f"static const vec_payload bad_payloads[] = {{{', '.join(bad) or '{0}'}}};",
        f"#define N_BAD_PAYLOADS {len(bad)}",
        f"#define N_SKIPPED {skipped}",
    ]
    # Counts as const variables too, so a loop bound of 0 draws no "always false" warning.
    tail = [
        re.sub(
            r"#define N_(\w+) (\d+)", lambda m: f"static const size_t n_{m[1].lower()} = {m[2]};", t
        )
        if t.startswith("#define")
        else t
        for t in tail
    ]
    return "\n".join(head + w.lines + tail) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    Path(argv[1]).write_text(generate(config(argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
