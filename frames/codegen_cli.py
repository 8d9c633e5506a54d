"""``framebridge codegen c PROFILE``: the C header for a device's register map.

Wired into the ``framebridge`` command by listing this module in ``bridge.cli``'s
``SUBCOMMAND_MODULES``. The map comes from :func:`frames.devicemap.load_device_map` (a shipped
name such as ``thermo`` or a ``.toml`` path); :func:`frames.codegen_c.render_header` writes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .codegen_c import render_header
from .devicemap import load_device_map
from .errors import FramesError

__all__ = ["add_parsers", "cmd_codegen"]


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "codegen",
        help="generate code from a device's register map",
        description="Write a C header (register addresses, scales, units, limits and the "
        "fb_reg_def table of firmware/fb_slave.h) for a device map.",
    )
    p.add_argument("language", choices=["c"], help="target language")
    p.add_argument("profile", help="shipped device map name (thermo, ...) or a .toml path")
    p.add_argument("-o", "--output", help="write the header here (default: stdout)")
    p.add_argument("--prefix", help="macro prefix (default: the map's name, upper case)")
    p.set_defaults(func=cmd_codegen)


def cmd_codegen(args: argparse.Namespace) -> int:
    try:
        text = render_header(
            load_device_map(args.profile), prefix=args.prefix, source=Path(args.profile).name
        )
    except FramesError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
