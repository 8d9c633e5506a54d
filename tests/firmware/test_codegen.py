"""frames.codegen_c: the generated header compiles with the firmware library, and its raw limits
refuse exactly the words the host's register logic refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from firmware_sim.errors import RegisterError
from firmware_sim.profile import available_profiles, load_profile
from frames.codegen_c import CRegister, c_identifier, raw_limits, render_header
from frames.errors import FrameValueError

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

PROGRAM = r"""
#include <stdio.h>
#include "map.h"
static const fb_reg_def defs[] = %(P)s_REG_DEFS;
int main(void)
{
    unsigned i;
    printf("%%u\n", (unsigned)%(P)s_REG_COUNT);
    for (i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        printf("%%u %%u %%ld %%ld\n", (unsigned)defs[i].address, (unsigned)defs[i].flags,
               (long)defs[i].min, (long)defs[i].max);
    }
    return 0;
}
"""


@pytest.mark.parametrize("name", available_profiles())
def test_header_compiles_and_holds_the_map(name: str, tmp_path: Path) -> None:
    profile = load_profile(name)
    (tmp_path / "map.h").write_text(render_header(profile, source=f"{name}.toml"))
    prefix = c_identifier(profile.name)
    (tmp_path / "main.c").write_text(PROGRAM % {"P": prefix})
    exe = tmp_path / "dump"
    subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{FIRMWARE}",
         f"-I{tmp_path}", "-o", str(exe), str(tmp_path / "main.c")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    lines = out.split("\n")
    words = [(reg, reg.address + i) for reg in profile.registers for i in range(reg.count)]
    assert int(lines[0]) == len(words)  # one fb_reg_def per word: 32-bit registers take two
    rows = [tuple(int(x) for x in line.split()) for line in lines[1:] if line]
    assert [r[0] for r in rows] == [address for _, address in words]
    for (_, flags, lo, hi), (reg, _) in zip(rows, words, strict=True):
        assert bool(flags & 0x01) == reg.writable, reg.name
        assert bool(flags & 0x02) == (reg.type == "i16"), reg.name
        # a two-word value's limits cannot be checked word by word: none in the table
        want_lo, want_hi = raw_limits(CRegister.of(reg)) if reg.count == 1 else (None, None)
        assert (lo if flags & 0x04 else None) == want_lo, reg.name
        assert (hi if flags & 0x08 else None) == want_hi, reg.name


def _refused(reg: object, raw: int) -> bool:
    try:
        reg.check_write(raw)  # type: ignore[attr-defined]
    except RegisterError:
        return True
    return False


@pytest.mark.parametrize("name", available_profiles())
def test_raw_limits_refuse_what_the_host_refuses(name: str) -> None:
    checked = 0
    for reg in load_profile(name).registers:
        lo, hi = raw_limits(CRegister.of(reg))
        if lo is None and hi is None:
            continue
        signed = reg.type == "i16"
        for edge in (lo, hi):
            if edge is None:
                continue
            for n in range(edge - 3, edge + 4):
                raw = n & 0xFFFF
                word = raw - 0x10000 if signed and raw >= 0x8000 else raw
                c_refuses = (lo is not None and word < lo) or (hi is not None and word > hi)
                assert c_refuses == _refused(reg, raw), (reg.name, n)
                checked += 1
    assert checked > 0 or name == "io_board"


def test_two_word_and_bool_registers() -> None:
    regs = [
        SimpleNamespace(address=10, name="energy", type="u32", scale=0.1, unit="kWh",
                        writable=False, min=None, max=1e6),
        SimpleNamespace(address=2, name="relay on", type="bool", scale=1.0, unit="",
                        writable=True, min=None, max=None),
        SimpleNamespace(address=3, name="offset", type="i16", scale=0.5, unit="°C",
                        writable=True, min=-10.0, max=10.0, description="*/ tricky"),
    ]  # fmt: skip
    text = render_header(SimpleNamespace(name="power meter", model="PM-1", registers=regs))
    assert "#define POWER_METER_ENERGY 10u" in text and "#define POWER_METER_REG_COUNT 4u" in text
    assert "{10u, 0, 0, 0}, \\" in text and "{11u, 0, 0, 0}, \\" in text  # no per-word limits
    assert "{2u, FB_REG_WRITABLE | FB_REG_MIN | FB_REG_MAX, 0, 1}" in text
    assert "{3u, FB_REG_WRITABLE | FB_REG_SIGNED | FB_REG_MIN | FB_REG_MAX, -20, 20}" in text
    assert '#define POWER_METER_OFFSET_UNIT "\\302\\260C"' in text
    assert "*/ tricky" not in text


def test_bad_maps_are_refused() -> None:
    with pytest.raises(FrameValueError):
        render_header(SimpleNamespace(name="x", registers=[]))
    twice = [SimpleNamespace(address=1, name=n, type="u16") for n in ("a", "b")]
    with pytest.raises(FrameValueError):
        render_header(SimpleNamespace(name="x", registers=twice))
    assert c_identifier("2nd stage/ß") == "R_2ND_STAGE"
    with pytest.raises(FrameValueError):
        c_identifier("//")


def test_cli_writes_the_header_of_a_device_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``framebridge codegen c NAME``: the map comes from frames.devicemap.load_device_map."""
    import argparse

    from frames import codegen_cli

    parser = argparse.ArgumentParser()
    codegen_cli.add_parsers(parser.add_subparsers())
    args = parser.parse_args(["codegen", "c", "thermo", "-o", str(tmp_path / "t.h")])
    assert args.func(args) == 0
    assert "#define THERMO_SETPOINT_MAX_RAW (3500)" in (tmp_path / "t.h").read_text()
    args = parser.parse_args(["codegen", "c", "no-such-profile"])
    assert args.func(args) == 2
    assert "no-such-profile" in capsys.readouterr().err
