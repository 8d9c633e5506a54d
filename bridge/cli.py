"""The ``framebridge`` command. Each package adds its own subcommands.

A subcommand module exposes ``add_parsers(subparsers)``; each parser sets ``func`` to a callable
taking the parsed namespace and returning an exit code. Modules are imported lazily per run so
``framebridge encode`` does not pay for websockets or redis.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Modules that contribute subcommands, in help order. Missing ones are skipped so the CLI
# keeps working while parts are being built.
SUBCOMMAND_MODULES = (
    "frames.cli",
    "frames.io.cli",
    "frames.io.capture_cli",
    "firmware_sim.cli",
    "bridge.cli_bridge",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framebridge",
        description="Talk to serial microcontrollers, simulate them, bridge them to the web.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
